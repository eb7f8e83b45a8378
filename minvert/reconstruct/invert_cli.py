"""``minvert reconstruct invert`` and ``minvert reconstruct compare``: the parsers."""
from ..bounds import MANY, SEED_MAX, float_range, int_list, int_range
from ..errors import MinvertError
from .invert import OPTIMIZERS, InvertSettings
from .invert_run import run_compare
from .invert_run import run_inversion


def _settings_options(p, iters):
    d = InvertSettings()
    p.add_argument("--iters", type=int_range(1, MANY), default=iters, help=f"iterations (default {iters})")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs",
                   help="lbfgs (L-BFGS-B, default) or gd (momentum gradient descent, M&V's; with --jitter)")
    p.add_argument("--alpha", type=float_range(1, 100), default=d.alpha, help=f"alpha-norm exponent (default {d.alpha:g})")
    p.add_argument("--lambda-alpha", type=float_range(0, 1e12), default=d.lambda_alpha,
                   help=f"alpha-norm multiplier (default {d.lambda_alpha:g})")
    p.add_argument("--beta", type=float_range(1, 100), default=d.beta, help=f"TV exponent (default {d.beta:g})")
    p.add_argument("--lambda-tv", type=float_range(0, 1e12), default=d.lambda_tv,
                   help=f"total-variation multiplier (default {d.lambda_tv:g})")
    p.add_argument("--jitter", type=int_range(0, 4096), default=0, metavar="PX", help="gd: random shift of up to PX per step")
    p.add_argument("--lr", type=float_range(0, 1e12, above=True), default=d.lr, help=f"gd step (default {d.lr:g})")
    p.add_argument("--seed", type=int_range(0, SEED_MAX), default=0)


def settings_from(args, iters=None):
    return InvertSettings(alpha=args.alpha, lambda_alpha=args.lambda_alpha, beta=args.beta,
                          lambda_tv=args.lambda_tv, iters=iters or args.iters, optimizer=args.optimizer,
                          jitter=args.jitter, lr=args.lr, seed=args.seed)


def add_invert_cli(sub, cmd):
    """Add ``invert`` and ``compare`` to the ``minvert reconstruct`` sub-parsers;
    cmd(sub, name, help, handler, description) makes one."""
    p = cmd(sub, "invert", "feature vectors -> images by optimising the pixels (Mahendran & Vedaldi)",
            _run_invert,
            "Minimise ||Phi(x) - Phi0||^2/||Phi0||^2 + lambda_alpha R_alpha(x) + lambda_tv R_TV(x) over the\n"
            "pixels x (minvert/reconstruct/invert.py; docs/reproducing.md). Vectors from .npy files ((D,) or (N, D)), images (encoded\n"
            "first) or --cache rows. Starts from mid-grey (--init), or with --run from that run's decoder\n"
            "output (decoder-initialised refinement). Writes <name>_invert.png and invert.json into --out.\n\n"
            "examples:\n  minvert reconstruct invert --cache cache.h5 --rows 0,1,2 --run run/ --out refined/\n"
            "  minvert reconstruct invert photo.jpg --encoder resnet50 --out inverted/ --device gpu")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help=".npy feature files or images")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--encoder", help="the model that made the vectors (default: the one --run or --cache records)")
    p.add_argument("--run", metavar="RUN", help="start from this trained decoder's output")
    p.add_argument("--cache", metavar="CACHE.h5", help="take vectors from this feature cache (with --rows)")
    p.add_argument("--rows", type=int_list(0, MANY, "cache rows separated by commas", 100_000), default=[], metavar="R1,R2,..", help="cache rows to invert")
    p.add_argument("--init", choices=["grey", "noise"], default="grey", help="start without --run (default grey)")
    p.add_argument("--force", action="store_true", help="overwrite earlier results in --out")
    _settings_options(p, InvertSettings().iters)

    p = cmd(sub, "compare", "mean image, decoder, optimisation, decoder + refinement on held-out images",
            _run_compare,
            "The four ways back from a vector on the same held-out images of RUN: PSNR, SSIM, re-identification\n"
            "top-1 (each with a 95 % interval), feature distance ||Phi(image) - Phi0|| / ||Phi0|| and time per\n"
            "image. Optimisation alone starts from the mean training image, refinement from the decoder's\n"
            "output with --refine-iters. Writes comparison.json and comparison.png into RUN.")
    p.add_argument("run", metavar="RUN")
    p.add_argument("cache", metavar="CACHE.h5")
    p.add_argument("--encoder", help="model that made the features (default: the one the cache records)")
    p.add_argument("--max-images", type=int_range(1, MANY), metavar="N", help="only the first N held-out images")
    p.add_argument("--refine-iters", type=int_range(1, MANY), default=None, metavar="N",
                   help="iterations of the refinement (default: half of --iters)")
    _settings_options(p, InvertSettings().iters)


def _run_invert(args):
    if args.rows and not args.cache:
        raise MinvertError("--rows needs --cache CACHE.h5")
    run_inversion(args.inputs, args.out, settings_from(args), model=args.encoder, run_dir=args.run,
                  cache_path=args.cache, rows=args.rows, init=args.init, force=args.force,
                  device=args.device)
    return 0


def _run_compare(args):
    settings = settings_from(args)
    refine = settings_from(args, iters=args.refine_iters or max(1, args.iters // 2))
    run_compare(args.run, args.cache, settings, refine, max_images=args.max_images, encoder=args.encoder,
                device=args.device)
    return 0
