"""The command line of paper 003: ``minvert reconstruct extract | train | evaluate | decode``."""
import argparse

from ..bounds import MANY, SEED_MAX, float_range, fraction_text, int_list, int_range
from ..errors import MinvertError, check_options
from ..weights.bundled import bundled_encoders
from . import figures
from .evaluate import decode, evaluate
from .features import extract
from .figures import PAPER_EPOCHS, PAPER_SIZE_EPOCHS, PAPER_SIZES
from .invert_cli import add_invert_cli
from .train import SAMPLE_EVERY, train


_ints = int_list(1, MANY, "positive integers separated by commas, e.g. 64,32,16")
_widths = int_list(1, 65_536, "positive integers separated by commas, e.g. 64,32,16")
_rows = int_list(0, MANY, "cache rows (0, 1, ...) separated by commas")


def _split(text):
    """argparse type for --split: paper, none, or fraction:F with 0 < F < 1."""
    if text in ("paper", "none"):
        return text
    if text.startswith("fraction:"):
        try:
            fraction_text(text[len("fraction:"):], "--split")
            return text
        except MinvertError as e:
            raise argparse.ArgumentTypeError(str(e).replace("--split: ", "", 1)) from None
    raise argparse.ArgumentTypeError(f"{text[:40]!r}: use paper, none or fraction:F (0 < F < 1)")


_split.bounds = (0, 1)  # the F of fraction:F


def add_cli(parser, device_args):
    """Add the sub-commands of paper 003 to the ``minvert reconstruct`` parser;
    device_args(p) adds minvert's --device option to each."""
    def _cmd(sub, name, help, handler, description):
        p = sub.add_parser(name, help=help, description=description,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(handler=handler)
        device_args(p)
        return p

    parser.set_defaults(handler=lambda args: parser.print_help() or 2)
    sub = parser.add_subparsers(title="steps", metavar="STEP")
    _add_extract(sub, _cmd)
    _add_train(sub, _cmd)
    _add_figures(sub, _cmd)
    add_invert_cli(sub, _cmd)  # invert, compare
    _add_evaluate(sub, _cmd)
    _add_decode(sub, _cmd)
    return parser


def _add_extract(sub, _cmd):
    p = _cmd(sub, "extract", "images -> feature cache (pooled ResNet features + target images)",
             _run_extract,
             "Encode images with a ResNet: the global-average-pooled feature (never one spatial position)\n"
             "at the model's input size and preprocessing, plus the image resized to --target-size as the\n"
             "decoder's target. Re-running with the same --out adds only files not yet in the cache;\n"
             "unreadable files are skipped and listed. The cache ORDER matters: --split paper holds out\n"
             "the first 10 images.\n\n"
             "example:\n  minvert reconstruct extract photos/ --model resnet50 --out cache.h5")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files, folders (their files, sorted), or a folder of class sub-folders "
                        "(what `minvert dataset` writes: the classes in turn, so the first 10 mix them)")
    p.add_argument("--model", required=True,
                   help=f"encoder: resnet50 (the paper's), {', '.join(bundled_encoders())} (bundled), "
                        "or a .h5 path")
    p.add_argument("--out", required=True, metavar="CACHE.h5", help="feature cache to create or extend")
    p.add_argument("--batch", type=int_range(1, 4096), default=16, metavar="N", help="images per forward pass (default 16)")
    p.add_argument("--target-size", type=int_range(4, 4096), default=256, metavar="S",
                   help="side of the stored target images (default 256, the paper's)")


def _add_train(sub, _cmd):
    p = _cmd(sub, "train", "train the upsampling decoder on a feature cache", _run_train,
             "Train paper 003's decoder (4x4 start, 3x3 convs (--kernel 4: 4x4) + LeakyReLU 0.2 + nearest\n"
             "2x upsampling, 2x2 sigmoid output) on the cache's features. Defaults are the paper code's:\n"
             "BCE loss, Adadelta lr 1 rho 0.95 eps 1e-8, batch 30, the first 10 images held out. Writes\n"
             "run.json, checkpoint.h5, log.jsonl, decoder.h5, loss.png, psnr.png into --out. Progress\n"
             "within an epoch (images/s, ETA); every --sample-every K epochs a usable decoder.h5 and\n"
             "samples.png, so evaluate/decode work on an unfinished run. Ctrl-C or SIGTERM saves a\n"
             "checkpoint; --resume continues it bit-identically with the settings in run.json.\n\n"
             "example (64x64 output from 128-d features):\n"
             "  minvert reconstruct train cache.h5 --out run/ --widths 128,64,32,16 --epochs 200")
    p.add_argument("cache", metavar="CACHE.h5")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder")
    p.add_argument("--epochs", type=int_range(1, MANY), help="epochs in total (default 100; may grow on --resume)")
    p.add_argument("--batch", type=int_range(1, 65_536), dest="batch_size", metavar="N", help="batch size (default 30)")
    p.add_argument("--loss", choices=["bce", "mse"],
                   help="bce on the sigmoid output (default, the paper's) or mse")
    p.add_argument("--optimizer", choices=["adadelta", "adam"],
                   help="adadelta (default, the paper's) or adam")
    p.add_argument("--lr", type=float_range(0, 1e6, above=True), help="learning rate (default: adadelta 1.0, adam 1e-3)")
    p.add_argument("--rho", type=float_range(0, 1, above=True), help="Adadelta decay (default 0.95)")
    p.add_argument("--eps", type=float_range(0, 1, above=True),
                   help="Adadelta epsilon (default 1e-8, tf.keras 2.1.2-tf in TF 1.5.0 as the paper ran; "
                        "later Keras: 1e-7; Zeiler's paper: 1e-6)")
    p.add_argument("--split", type=_split, help="paper (first 10 held out, default), none, or fraction:F (seeded random)")
    p.add_argument("--n-train", type=int_range(1, MANY), metavar="N", help="use only the first N training images")
    p.add_argument("--widths", type=_widths, metavar="W1,W2,..",
                   help="conv widths, one per 2x stage (default: the paper's last stages that "
                        "reach the target size)")
    p.add_argument("--kernel", type=int_range(3, 4), choices=[3, 4],
                   help="hidden conv kernel: 3 (default, the paper's) or 4 (the 4x4 the paper also "
                        "tried; 'same' padding as TensorFlow: 1 top/left, 2 bottom/right)")
    p.add_argument("--start", type=_widths, metavar="H,H,C",
                   help="feature reshaped to HxHxC, H*H*C = feature size (default 4,4,D/16)")
    p.add_argument("--seed", type=int_range(0, SEED_MAX), help="weights and shuffling (default 0)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--checkpoint-every", type=int_range(1, MANY), default=1, metavar="K",
                   help="checkpoint every K epochs (default 1)")
    _watch_options(p)


def _add_evaluate(sub, _cmd):
    p = _cmd(sub, "evaluate", "measure reconstructions: PSNR, SSIM, re-identification", _run_evaluate,
             "On training and held-out images separately: MSE, PSNR, SSIM against the mean-image\n"
             "baseline; re-identification (each reconstruction's re-encoded feature ranked against\n"
             "every cached feature, top-1/top-5); decodes of random vectors. Writes evaluation.json\n"
             "and contact_sheet.png into RUN.")
    p.add_argument("run", metavar="RUN")
    p.add_argument("cache", metavar="CACHE.h5")
    p.add_argument("--encoder", help="model that made the features (default: the one the cache records)")
    p.add_argument("--max-train", type=int_range(1, MANY), default=500, metavar="N",
                   help="score at most N training images (default 500)")


def _add_decode(sub, _cmd):
    p = _cmd(sub, "decode", "turn feature vectors (.npy) or images into reconstructions", _run_decode,
             "Decode .npy files holding (D,) or (N, D) feature vectors, or images (encoded first with\n"
             "the run's encoder), into <name>_recon.png files in --out.")
    p.add_argument("run", metavar="RUN")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".npy feature files or images")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--model", help="encoder for image inputs (default: the one the run's cache records)")
    p.add_argument("--force", action="store_true", help="overwrite existing reconstructions")


def _add_figures(sub, _cmd):
    fig = sub.add_parser("figure", help="the paper's figures, one command each (docs/reproducing.md)",
                         description="Paper 003's figures: epochs (Fig. 1), features (Fig. 2), random "
                                     "(Fig. 3), sizes (Figs. 4-5).")
    fig.set_defaults(handler=lambda args: fig.print_help() or 2)
    figs = fig.add_subparsers(title="figures", metavar="FIGURE")

    def fcmd(name, *rest):
        p = _cmd(figs, name, *rest)
        p.set_defaults(handler_figure=name)
        return p
    epochs = ",".join(map(str, PAPER_EPOCHS))
    p = fcmd("epochs", "Fig. 1: one image after 1, 10, 50, ... epochs, in one strip", _run_figure,
             "Train a decoder into --out, snapshotting the reconstruction of --rows after each epoch\n"
             f"in --at (default the paper's {epochs}), and write --out/figure_epochs.png.\n"
             "An --out that holds the run already is continued.")
    p.add_argument("cache", metavar="CACHE.h5")
    p.add_argument("--at", type=_ints, default=list(PAPER_EPOCHS), metavar="E1,E2,..",
                   help=f"epochs to snapshot (default {epochs})")
    p.add_argument("--rows", type=_rows, metavar="R1,..", help="cache rows (default: the first training image)")
    p.add_argument("--n-train", type=int_range(1, MANY), default=1, metavar="N",
                   help="train on the first N training images (default 1: the caption's one image)")
    _figure_training(p)
    p = fcmd("features", "Fig. 2: two images learnt for 4000 epochs, beside their reconstructions",
             _run_figure, "Train a decoder into --out on the first --n-train (default 2) training images for\n"
                          "--epochs (default 4000, the caption's), then write --out/figure_features.png:\n"
                          "each image beside its reconstruction from its feature vector. --out is the\n"
                          "model of Fig. 3 too. An --out that holds the run already is continued.")
    p.add_argument("cache", metavar="CACHE.h5")
    p.add_argument("--n-train", type=int_range(1, MANY), default=2, metavar="N", help="training images (default 2)")
    p.add_argument("--epochs", type=int_range(1, MANY), default=4000, help="epochs (default 4000)")
    p.add_argument("--rows", type=_rows, metavar="R1,..", help="cache rows to show (default: the training images)")
    _figure_training(p)
    p = fcmd("random", "Fig. 3: decodes of random feature vectors", _run_figure,
             "Decode --count |N(0,1)| vectors scaled to the real features' mean and --count raw N(0,1)\n"
             "vectors (the paper's code) with RUN's decoder (the paper: Fig. 2's); write --out and how\n"
             "near each comes to a training image.")
    p.add_argument("run", metavar="RUN")
    p.add_argument("cache", metavar="CACHE.h5")
    p.add_argument("--count", type=int_range(1, 10_000), default=8, metavar="N", help="vectors of each kind (default 8)")
    p.add_argument("--seed", type=int_range(0, SEED_MAX), default=0)
    p.add_argument("--out", required=True, metavar="PNG")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    sizes = ",".join(map(str, PAPER_SIZES))
    p = fcmd("sizes", "Figs. 4-5: training on 100 / 1000 / 10000 images, train and unseen",
             _run_figure, f"Train one decoder per --sizes (default {sizes}) on the first N training images\n"
                          "into --out/train_N for the matching --epochs, then write --out/figure_sizes.png:\n"
                          "per size, training and held-out reconstructions beside their originals.")
    p.add_argument("cache", metavar="CACHE.h5")
    p.add_argument("--sizes", type=_ints, default=list(PAPER_SIZES), metavar="N1,N2,..",
                   help=f"training-set sizes (default {sizes})")
    size_epochs = ",".join(map(str, PAPER_SIZE_EPOCHS))
    p.add_argument("--epochs", type=_ints, default=list(PAPER_SIZE_EPOCHS), metavar="E1,E2,..",
                   help=f"epochs per size, or one for all (default {size_epochs}, the paper's)")
    _figure_training(p)


def _figure_training(p):
    p.add_argument("--out", required=True, metavar="DIR", help="run folder(s) and the figure")
    p.add_argument("--widths", type=_widths, metavar="W1,W2,..", help="as for train")
    p.add_argument("--kernel", type=int_range(3, 4), choices=[3, 4], help="as for train")
    p.add_argument("--batch", type=int_range(1, 65_536), dest="batch_size", metavar="N", help="as for train (default 30)")
    p.add_argument("--optimizer", choices=["adadelta", "adam"], help="as for train (default adadelta)")
    p.add_argument("--split", type=_split, help="as for train (default paper)")
    p.add_argument("--seed", type=int_range(0, SEED_MAX), help="as for train (default 0)")
    p.add_argument("--sample-every", type=int_range(0, MANY), default=SAMPLE_EVERY, metavar="K", help="as for train")


def _run_figure(args):
    name = args.handler_figure
    if name == "random":
        figures.figure_random(args.run, args.cache, args.out, count=args.count, seed=args.seed,
                              device=args.device, force=args.force)
        return 0
    decoder = {k: v for k, v in (("widths", args.widths), ("kernel", args.kernel)) if v is not None}
    settings = {k: getattr(args, k) for k in ("batch_size", "optimizer", "split", "seed")}
    settings.update(decoder=decoder or None, device=args.device, sample_every=args.sample_every)
    if name == "epochs":
        figures.figure_epochs(args.cache, args.out, at=args.at, rows=args.rows, n_train=args.n_train,
                              **settings)
    elif name == "features":
        figures.figure_features(args.cache, args.out, n_train=args.n_train, epochs=args.epochs,
                                rows=args.rows, **settings)
    else:
        epochs = args.epochs[0] if len(args.epochs) == 1 else args.epochs
        figures.figure_sizes(args.cache, args.out, sizes=args.sizes, epochs=epochs, **settings)
    return 0


def _watch_options(p):
    p.add_argument("--sample-every", type=int_range(0, MANY), default=SAMPLE_EVERY, metavar="K",
                   help=f"write decoder.h5 and samples.png every K epochs (default {SAMPLE_EVERY}; "
                        "0: only at the end)")
    p.add_argument("--snapshot-epochs", type=_ints, default=(), metavar="E1,E2,..",
                   help="save epochs/epoch_E.png, the reconstruction of --snapshot-rows after these epochs")
    p.add_argument("--snapshot-rows", type=_rows, metavar="R1,..",
                   help="cache rows to snapshot (default: the first training image)")


def _run_extract(args):
    check_options(args, minimum={"batch": 1, "target_size": 4})
    r = extract(args.images, args.model, args.out, batch_size=args.batch, target_size=args.target_size,
                device=args.device)
    return 1 if r["total"] == 0 else 0


def _run_train(args):
    check_options(args, minimum={"epochs": 1, "batch_size": 1, "n_train": 1, "seed": 0,
                                 "checkpoint_every": 1}, positive=("lr", "rho", "eps"))
    if args.rho is not None and not args.rho < 1:
        raise MinvertError(f"--rho {args.rho}: Adadelta's decay must be below 1")
    decoder = {k: v for k, v in (("widths", args.widths), ("start", args.start), ("kernel", args.kernel))
               if v is not None}
    train(args.cache, args.out, decoder=decoder or None, epochs=args.epochs, batch_size=args.batch_size,
          loss=args.loss, optimizer=args.optimizer, lr=args.lr, rho=args.rho, eps=args.eps,
          seed=args.seed, split=args.split, n_train=args.n_train, resume=args.resume,
          checkpoint_every=args.checkpoint_every, device=args.device, sample_every=args.sample_every,
          snapshot_epochs=args.snapshot_epochs, snapshot_rows=args.snapshot_rows)
    return 0


def _run_evaluate(args):
    check_options(args, minimum={"max_train": 1})
    evaluate(args.run, args.cache, encoder=args.encoder, max_train=args.max_train, device=args.device)
    return 0


def _run_decode(args):
    decode(args.run, args.inputs, args.out, model=args.model, force=args.force, device=args.device)
    return 0
