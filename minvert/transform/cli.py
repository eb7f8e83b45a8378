"""The command line of paper 000: ``minvert transform``."""
from ..errors import MinvertError, check_options
from .losses import Multipliers
from .objective import Settings
from .optimize import transform
from .presets import PRESETS


def add_cli(sub, command, device_args):
    """Add ``minvert transform`` to the sub-command parsers ``sub``; command(sub, name, help,
    description, handler) makes a parser, device_args(p) adds --device."""
    presets = "\n".join(f"  {k:<18} {v.caption}" for k, v in PRESETS.items())
    p = command(sub, "transform", "alter an image until the network calls it TARGET (paper 000)",
                handler=run, description=(
                 "Paper 000: L-BFGS-B on the pixels of IMAGE minimising\n"
                 "  class + content*C + style*S + TV*T + colour*K\n"
                 "so that the network classifies it as TARGET, as strongly as possible.\n"
                 "Writes result.png, panel.png (original | result | amplified difference),\n"
                 "log.jsonl (one line per iteration) and summary.json into --out.\n\n"
                 "presets (the rows of the paper's results table):\n" + presets))
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--target", metavar="CLASS",
                   help="class name (case/spaces/underscores ignored), index or WordNet id; "
                        "default: the preset's target")
    p.add_argument("--model", default="vgg19",
                   help="model name or .h5 path (default vgg19; offline: tiny-vgg-textures)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--preset", choices=sorted(PRESETS), help="multipliers from a row of the paper's table")
    for name, h in (("content", "content-loss multiplier (negative loosens geometry)"),
                    ("style", "style-loss multiplier"), ("tv", "total-variation multiplier"),
                    ("color", "colour-similarity multiplier")):
        p.add_argument(f"--{name}", type=float, default=None, help=h + " (default 0, or the preset's)")
    p.add_argument("--mask", metavar="IMAGE", help="greyscale mask: white = may change, black = kept exactly")
    p.add_argument("--jitter", type=int, default=0, metavar="PX",
                   help="random shift of up to PX pixels per step (paper: 16); uses gradient steps")
    p.add_argument("--step", choices=["normalized", "adam"], default="normalized", help="jitter path optimiser")
    p.add_argument("--lr", type=float, default=2.0, help="jitter path step size (default 2.0)")
    p.add_argument("--init", choices=["image", "noise", "mix"], default="image",
                   help="start from the image (default), random noise, or a mix")
    p.add_argument("--iters", type=int, default=100, help="iterations (default 100)")
    p.add_argument("--history", type=int, default=8, help="L-BFGS memory (default 8)")
    p.add_argument("--size", type=int, default=None, help="input side in pixels (default: the net's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snapshot-every", type=int, default=0, metavar="K", help="also save every K-th iterate")
    p.add_argument("--force", action="store_true", help="overwrite an earlier result in --out")
    device_args(p)


def run(args):
    """``minvert transform``: load the image, mask and model, run :func:`transform`."""
    from ..images import load_image, load_mask
    from ..labels import net_labels
    from ..weights import load_model
    check_options(args, minimum={"iters": 1, "history": 1, "jitter": 0, "size": 1, "seed": 0,
                                 "snapshot_every": 0},
                  positive=("lr",), finite=("content", "style", "tv", "color"))
    img = load_image(args.image)
    mask = load_mask(args.mask, img.shape[:2]) if args.mask else None
    preset = PRESETS[args.preset] if args.preset else None
    if args.target is None and preset is None:
        raise MinvertError("say which class to aim for: --target CLASS (or a --preset)")
    if preset is not None and preset.jitter and not args.jitter:
        args.jitter = 16
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
    settings = Settings(target=target, multipliers=mult, iters=args.iters, history=args.history,
                        init=args.init, jitter=args.jitter, step=args.step, lr=args.lr,
                        seed=args.seed, snapshot_every=args.snapshot_every)
    summary = transform(net, img, settings, mask=mask, out_dir=args.out, force=args.force, size=args.size)
    return 0 if summary["stopped_early"] is None else 1
