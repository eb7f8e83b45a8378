"""The command line of paper 000: ``minvert transform``."""
import re

from ..bounds import MANY, SEED_MAX, float_range, int_range
from ..errors import MinvertError, check_options
from ..images import load_image, load_mask
from ..labels import net_labels
from ..weights import load_model
from .checks import check_args
from .losses import COLOR_KINDS, CONTENT_KINDS, Multipliers, paper_layer_to_tap
from .objective import DEFAULT_LR, GD_FIRST_STEP, OPTIMIZERS, Settings
from .optimize import transform
from .presets import PRESETS, preset_help


def add_cli(sub, command, device_args):
    """Add ``minvert transform`` to the sub-command parsers ``sub``; command(sub, name, help,
    description, handler) makes a parser, device_args(p) adds --device."""
    p = command(sub, "transform", "alter an image until the network calls it TARGET (paper 000)",
                handler=run, description=(
                 "Paper 000: L-BFGS-B (or gradient steps) on the pixels of IMAGE minimising\n"
                 "  class + content*C + style*S + TV*T + colour*K\n"
                 "so that the network classifies it as TARGET, as strongly as possible.\n"
                 "Writes result.png, panel.png (original | result | amplified difference),\n"
                 "log.jsonl (one line per iteration) and summary.json into --out. At the start\n"
                 "and the end it prints each term's raw value, multiplier x value and share of the\n"
                 "total and of the gradient norm, and warns about a term with < 0.1 % of the gradient.\n\n"
                 "presets (the rows of the paper's results table; a preset sets the target, the four\n"
                 "multipliers and, for the jittered rows, --jitter 16; options given override it):\n"
                 + preset_help()))
    # the paper's multipliers are written -1e-11: let such a value follow --content as a number
    # (argparse's own rule knows only -1 and -.5 forms); no option here looks like a number
    p._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$", re.IGNORECASE)
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--target", metavar="CLASS",
                   help="class name (case/spaces/underscores ignored), index or WordNet id; "
                        "default: the preset's target")
    p.add_argument("--model", default="vgg19",
                   help="model name or .h5 path (default vgg19; offline: tiny-vgg-textures)")
    p.add_argument("--out", required=True, metavar="DIR|IMAGE",
                   help="output folder (result.png, panel.png, summary.json, log.jsonl), or an image "
                        "path like tiger.png: the result there, the run's files beside it "
                        "(tiger.panel.png, tiger.summary.json, tiger.log.jsonl)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="multipliers from a row of the paper's table")
    for name, h in (("content", "content-loss multiplier (negative loosens geometry)"),
                    ("style", "style-loss multiplier"), ("tv", "total-variation multiplier"),
                    ("color", "colour-similarity multiplier")):
        p.add_argument(f"--{name}", type=float_range(-1e6, 1e6), default=None, help=h + " (default 0, or the preset's)")
    p.add_argument("--mask", metavar="IMAGE", help="greyscale mask: white = may change, black = kept exactly")
    p.add_argument("--jitter", type=int_range(0, 4096), default=0, metavar="PX",
                   help="random shift of up to PX pixels per step (paper: 16); needs gradient steps")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                   help="lbfgs (default; L-BFGS-B as fzliu), gd (plain gradient descent, the paper's "
                        "with jitter and the default there), normalized (deepdream: mean step = lr) or adam")
    p.add_argument("--lr", type=float_range(0, 1e6, above=True), default=None, metavar="PX",
                   help="gradient-step size in 0..255 pixel units: gd p -= lr*dL/dp (default: set once "
                        f"so the first step moves pixels {GD_FIRST_STEP:g} levels on average, then fixed), "
                        f"normalized mean step (default {DEFAULT_LR['normalized']:g}), adam (default "
                        f"{DEFAULT_LR['adam']:g})")
    p.add_argument("--init", choices=["image", "noise", "mix"], default=None,
                   help="start from the image (default), random noise, or a mix")
    p.add_argument("--init-image", metavar="PATH",
                   help="start from this image instead, e.g. an earlier result.png to continue a run; "
                        "content, style and colour still compare with IMAGE")
    p.add_argument("--iters", type=int_range(1, MANY), default=100, help="iterations (default 100)")
    p.add_argument("--history", type=int_range(1, 1000), default=None,
                   help="L-BFGS memory (default 8; lbfgs only)")
    p.add_argument("--original-colors", action="store_true",
                   help="keep the photo's colours, take only the result's luminance (YIQ, as "
                        "neural-style's -original_colors); a grey photo stays grey")
    p.add_argument("--size", type=int_range(1, 16_384), default=None, metavar="PX",
                   help="long side in pixels, aspect ratio kept (default: the net's input size); a VGG "
                        "with fc layers then runs fully convolutionally on the whole photo (each side "
                        "at least its input size); without --size it takes the central square")
    p.add_argument("--class-view", choices=["dense", "downsampled"], default="dense",
                   help="with --size on a VGG with fc layers: dense (default) averages the class score "
                        "over every window; downsampled scores the photo shrunk to the input size")
    p.add_argument("--content-layer", metavar="LAYER",
                   help="content layer, Caffe (conv4_2) or minvert (relu4_2) name (default conv4_2)")
    p.add_argument("--style-layers", metavar="L1,L2,..",
                   help="style layers, comma-separated (default conv1_1,conv2_1,conv3_1,conv4_1,conv5_1)")
    p.add_argument("--content-kind", choices=CONTENT_KINDS, default="gram",
                   help="gram: ½Σ(G-A)² on Gram matrices as the paper writes (default); raw: fzliu's ½Σ(F-P)²")
    p.add_argument("--color-kind", choices=COLOR_KINDS, default="pixel",
                   help="pixel: pixels whose RGB distance exceeds 30 %% (default); channel: channel "
                        "values beyond 30 %%; hinge: smooth per-channel excess (docs/losses.md)")
    p.add_argument("--print-every", type=int_range(1, MANY), default=1, metavar="N", help="print every N-th iteration "
                   "(log.jsonl keeps every one)")
    p.add_argument("--seed", type=int_range(0, SEED_MAX), default=0)
    p.add_argument("--snapshot-every", type=int_range(0, MANY), default=0, metavar="K", help="also save every K-th iterate")
    p.add_argument("--force", action="store_true", help="replace an earlier result in --out (kept "
                   "whole until the new run has written its files)")
    device_args(p)


def run(args):
    """``minvert transform``: check the options, load the image, mask and model, run
    :func:`transform`. Exit 0 done, 1 stopped early by a non-finite loss (the last good image is
    written), 130 interrupted (the last good image is written, and said)."""
    check_options(args, minimum={"iters": 1, "history": 1, "jitter": 0, "size": 1, "seed": 0,
                                 "snapshot_every": 0, "print_every": 1},
                  positive=("lr",), finite=("content", "style", "tv", "color"))
    preset = PRESETS[args.preset] if args.preset else None
    if args.target is None and preset is None:
        raise MinvertError("say which class to aim for: --target CLASS (or a --preset)")
    jitter = 16 if preset is not None and preset.jitter and not args.jitter else args.jitter
    check_args(args, jitter, args.optimizer)
    img = load_image(args.image)
    mask = load_mask(args.mask, img.shape[:2]) if args.mask else None
    start = load_image(args.init_image) if args.init_image else None
    if jitter != args.jitter:
        args.jitter = jitter
        print(f"preset {args.preset}: jittered in the paper, so --jitter 16")
    if preset is not None and preset.mask and not args.mask:
        print(f"preset {args.preset}: the paper used a {preset.mask} mask; pass it with --mask FILE")
    net = load_model(args.model, device=args.device)
    if net.config.get("arch") != "vgg":
        raise MinvertError(f"--model {args.model} is a {net.config.get('arch')}; transform needs a "
                           "VGG classifier (vgg19, tiny-vgg-textures or a VGG .h5)")
    target = net_labels(net).index(args.target if args.target is not None else preset.target)
    base = preset.multipliers if preset else Multipliers()
    mult = Multipliers(*(getattr(base, k) if getattr(args, k) is None else getattr(args, k)
                         for k in ("content", "style", "tv", "color")))
    settings = Settings(target=target, multipliers=mult, iters=args.iters, history=args.history or 8,
                        init=args.init or "image", jitter=args.jitter, optimizer=args.optimizer,
                        lr=args.lr, seed=args.seed, snapshot_every=args.snapshot_every,
                        print_every=args.print_every, content_kind=args.content_kind,
                        color_kind=args.color_kind, original_colors=args.original_colors,
                        **_layers(args, net))
    summary = transform(net, img, settings, mask=mask, out_dir=args.out, force=args.force, size=args.size,
                        start_image=start, class_view=args.class_view)
    if summary["interrupted"]:
        raise KeyboardInterrupt  # after the last good image is written: `minvert` exits 130
    if summary["stopped_early"] is not None:
        raise MinvertError(f"{summary['stopped_early']} (written to --out {args.out}); a multiplier or "
                           "--lr too large for this network makes the loss overflow")
    return 0


def _layers(args, net):
    """--content-layer / --style-layers as taps; a name the net lacks is refused as it was given
    (conv9_9, not the relu9_9 it is read as), with the layers the net has."""
    names = set(net.names)
    given = [n.strip() for n in [args.content_layer or ""] + (args.style_layers or "").split(",")]
    taps = {n: paper_layer_to_tap(n) for n in given if n}
    for name, tap in taps.items():
        if tap not in names:
            convs = [n for n in net.names if n.startswith("conv") and "_" in n]
            raise MinvertError(f"the network has no layer {name!r}"
                               + (f" (read as its ReLU output {tap!r})" if tap != name else "")
                               + f"; it has {', '.join(convs)} (or their relu names)")
    layers = {}
    if args.content_layer:
        layers["content_layer"] = paper_layer_to_tap(args.content_layer.strip())
    if args.style_layers:
        layers["style_layers"] = tuple(paper_layer_to_tap(n.strip()) for n in args.style_layers.split(",")
                                       if n.strip())
    return layers
