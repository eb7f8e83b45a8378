"""Refusals and notes of ``minvert transform`` before any work: option values no run can use,
options that contradict each other, and what a negative multiplier or a mask means for this run."""
import math

from ..errors import MinvertError
from .outputs import check_out

MAX_MULTIPLIER = 1e12  # the paper's are 1e-14 .. 1e-6; beyond this the weighted terms overflow
MAX_HISTORY = 1000     # L-BFGS memory; scipy allocates (2 * history) vectors of the image's size
MAX_SIZE = 8192        # --size: long side in pixels
MEANING = {"content": "the result is pushed away from the photo's content",
           "style": "the result is pushed away from the photo's textures",
           "tv": "noise and sharp edges are encouraged",
           "color": "colours far from the photo's are encouraged"}


def plural(n, word):
    """'1 iteration', '2 iterations'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def check_args(args, jitter, optimizer):
    """Refuse contradictions and values out of range (one line each) before anything is read.
    jitter/optimizer: the values the run will use (a preset may set jitter)."""
    check_out(args.out)
    for name in ("content", "style", "tv", "color"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and abs(value) <= MAX_MULTIPLIER):
            raise MinvertError(f"--{name} {value:g}: multipliers must lie within ±{MAX_MULTIPLIER:g} "
                               "(the paper's are 1e-14 .. 1e-6; larger ones overflow the total)")
    if args.style_layers is not None and not [n for n in args.style_layers.split(",") if n.strip()]:
        raise MinvertError("--style-layers is empty; give layers like conv1_1,conv2_1 or leave the "
                           "option out for the paper's five")
    if args.content_layer is not None and not args.content_layer.strip():
        raise MinvertError("--content-layer is empty; give a layer like conv4_2 or leave it out")
    if args.init_image and args.init not in (None, "image"):
        raise MinvertError(f"--init-image starts from that image, --init {args.init} from "
                           f"{'noise' if args.init == 'noise' else 'a noisy mix'}: give one of them")
    used = optimizer or ("gd" if jitter else "lbfgs")
    if jitter and used == "lbfgs":
        raise MinvertError("L-BFGS cannot follow an objective that moves every step (jitter); "
                           "use --optimizer gd (the paper's), normalized or adam")
    if args.history is not None and used != "lbfgs":
        raise MinvertError(f"--history is L-BFGS's memory; --optimizer {used} is first-order and "
                           "keeps none: drop --history or use --optimizer lbfgs")
    if args.history is not None and args.history > MAX_HISTORY:
        raise MinvertError(f"--history {args.history}: at most {MAX_HISTORY} (fzliu uses 8)")
    if args.size is not None and args.size > MAX_SIZE:
        raise MinvertError(f"--size {args.size}: at most {MAX_SIZE} pixels")


def check_run(s, shape, mask_arr, log):
    """What only the fitted image tells: jitter beyond it is refused; a negative multiplier and
    a mask that frees nothing are said."""
    h, w = shape
    if s.jitter >= min(h, w):
        raise MinvertError(f"--jitter {s.jitter}: the image the network sees is {w}x{h}; a shift "
                           f"of {s.jitter} px wraps it around (paper: 16 px on 224x224); use at most "
                           f"{min(h, w) - 1}")
    for name in ("content", "style", "tv", "color"):
        value = s.multipliers.weight(name)
        if value < 0:
            log(f"note: --{name} {value:g} is negative: the {name} term is rewarded rather than "
                f"penalised ({MEANING[name]}), as in some rows of the paper's table")
    if mask_arr is not None and not (mask_arr > 0).any():
        log("warning: the mask leaves no pixel free in the part of the image the network sees "
            "(its white part lies outside it): the result will equal the input")
