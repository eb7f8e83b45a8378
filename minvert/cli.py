"""The ``minvert`` command. Each subcommand parses its arguments here and calls the library.

Errors the user can fix (MinvertError: missing or corrupt files, wrong shapes, unknown
names) print one line and exit 1; set MINVERT_DEBUG=1 to see tracebacks.
"""
import argparse
import json
import os
import sys

EPILOG = """first steps:
  minvert demo --out demo/            the whole project on its bundled models, offline (~1-2 min)
  minvert gradcheck                   check every hand-written backward pass numerically
  minvert weights download vgg19      fetch and convert real ImageNet weights (needs network)
"""


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from .errors import MinvertError
    try:
        return args.handler(args) or 0
    except MinvertError as e:
        if os.environ.get("MINVERT_DEBUG"):
            raise
        print(f"minvert: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("minvert: interrupted", file=sys.stderr)
        return 130
    except (OSError, RuntimeError, ValueError) as e:
        if os.environ.get("MINVERT_DEBUG"):
            raise
        print(f"minvert: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


def build_parser():
    from . import __version__
    parser = argparse.ArgumentParser(
        prog="minvert", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="CNN inversion from scratch: classify, transform an image into another class "
                    "(paper 000), reconstruct images from ResNet features (paper 003).")
    parser.add_argument("--version", action="version", version=f"minvert {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in (_add_classify, _add_transform, _add_reconstruct, _add_train, _add_dataset,
                _add_convert, _add_weights, _add_gradcheck, _add_bench, _add_demo, _add_exercise):
        add(sub)
    return parser


def _cmd(sub, name, help, description=None, handler=None):
    p = sub.add_parser(name, help=help, description=description or help,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler=handler)
    return p


def _device_args(p):
    p.add_argument("--device", choices=["cpu", "gpu"], default=None,
                   help="where to compute (default: $MINVERT_DEVICE, else GPU if CuPy sees one, else CPU)")


# classify ------------------------------------------------------------------------
def _add_classify(sub):
    p = _cmd(sub, "classify", "print the top classes a network gives each image", handler=_run_classify,
             description=
             "Classify images with a network: a bundled model (tiny-vgg-textures, "
             "tiny-resnet-textures), a downloaded one by name (vgg19, resnet50, ...) or a "
             "project weight file (.h5).")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any format Pillow reads)")
    p.add_argument("--model", required=True, help="model name or path to a minvert .h5 file")
    p.add_argument("--top", type=int, default=5, metavar="K", help="how many classes to show (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object per image instead of text")
    _device_args(p)


def _run_classify(args):
    from .classify import classify_files
    results = classify_files(args.images, args.model, top=args.top, device=args.device)
    for r in results:
        if args.json:
            print(json.dumps(r))
        else:
            print(r["image"])
            for c in r["top"]:
                print(f"  {c['probability']:7.2%}  {c['index']:>4}  {c['label']}")


# the papers: their command lines live with them ------------------------------------------
def _add_transform(sub):
    from .transform.cli import add_cli
    add_cli(sub, _cmd, _device_args)


def _add_reconstruct(sub):
    from .reconstruct.cli import add_cli
    add_cli(_cmd(sub, "reconstruct", "paper 003: decode images from ResNet feature vectors",
                 description="Paper 003: extract ResNet features, train the upsampling decoder, "
                             "evaluate how much of seen and unseen images comes back."),
            _device_args)


# train / dataset ------------------------------------------------------------------------
def _add_train(sub):
    p = _cmd(sub, "train", "train a small classifier with minvert's own backprop", handler=_run_train,
             description="Train tiny-vgg or tiny-resnet on the generated textures or on a folder of "
                         "images (one sub-folder per class). Writes checkpoint.h5 (resumable), "
                         "log.jsonl and model.h5 into --out.")
    p.add_argument("--data", default="textures", help="'textures' (generated) or a folder of class sub-folders")
    p.add_argument("--arch", choices=["tiny-vgg", "tiny-resnet"], default="tiny-vgg")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--optimizer", choices=["adam", "sgd", "adadelta"], default="adam")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: adam 1e-3, sgd 0.05, adadelta 1.0)")
    p.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                   help="learning rate over the epochs (default cosine annealing)")
    p.add_argument("--n", type=int, default=300, help="generated images per class for training (textures)")
    p.add_argument("--val-n", type=int, default=50, help="generated validation images per class (textures)")
    p.add_argument("--test-n", type=int, default=100,
                   help="after training, accuracy on this many new generated images per class (textures)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held-out fraction of a folder")
    p.add_argument("--size", type=int, default=64, help="image side (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    _device_args(p)


def _run_train(args):
    from .train import train_command
    train_command(args)


def _add_dataset(sub):
    p = _cmd(sub, "dataset", "write the generated texture dataset as PNG files", handler=_run_dataset)
    p.add_argument("kind", choices=["textures"])
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--n", type=int, default=20, help="images per class (default 20)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)


def _run_dataset(args):
    from .datasets import write_dataset
    write_dataset(args.out, args.n, size=args.size, seed=args.seed)


# weights ---------------------------------------------------------------------------------
def _add_convert(sub):
    p = _cmd(sub, "convert", "convert Keras .h5 / torch .pth weights into minvert's format",
             handler=_run_convert,
             description="Convert a Keras .h5 or a torchvision .pth (zip or legacy) file into a minvert "
                         ".h5 file; the architecture is detected from the names and shapes.")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--arch", help="override detection: vgg16, vgg19, resnet18, resnet34, resnet50, resnet101, resnet152")
    p.add_argument("--force", action="store_true", help="overwrite DST")


def _run_convert(args):
    from .weights.convert import convert
    net = convert(args.src, args.dst, arch=args.arch, force=args.force)
    c = net.config
    print(f"wrote {args.dst}: {c['arch']}{c.get('depth') or ''} {c.get('variant', '')} "
          f"({net.num_params():,} parameters, {net.preprocessing.mode} preprocessing)")


def _add_weights(sub):
    p = _cmd(sub, "weights", "list, download, inspect or verify pretrained weights")
    wsub = p.add_subparsers(title="actions", metavar="ACTION")
    w = _cmd(wsub, "list", "known downloads and where they are", handler=_run_weights_list)
    w.add_argument("-v", "--verbose", action="store_true", help="with descriptions")
    w = _cmd(wsub, "download", "download, verify the hash, convert", handler=_run_weights_download)
    w.add_argument("name", metavar="NAME")
    w.add_argument("--dir", help="where to put the files (default: $MINVERT_WEIGHTS or the user cache)")
    w.add_argument("--force", action="store_true", help="download again even if present")
    w = _cmd(wsub, "info", "describe a minvert weight file", handler=_run_weights_info)
    w.add_argument("file", metavar="FILE")
    w = _cmd(wsub, "verify", "check a downloaded original against the zoo's hash", handler=_run_weights_verify)
    w.add_argument("file", metavar="FILE")


def _run_weights_list(args):
    from .weights.zoo import list_weights
    list_weights(sys.stdout, verbose=args.verbose)


def _run_weights_download(args):
    from .weights.convert import convert
    from .weights.download import download_weights
    path = download_weights(args.name, dest_dir=args.dir, convert=convert, force=args.force)
    print(f"ready: {path}  (load it with --model {args.name})")


def _run_weights_info(args):
    from .weights.project import read_header
    h = read_header(args.file)
    c = h["config"]
    print(f"{args.file}: minvert weights, format {h['format_version']}")
    print(f"  arch           {json.dumps(c)}")
    print(f"  preprocessing  {json.dumps(h['preprocessing'])}")
    labels = h["labels"] or []
    print(f"  labels         {len(labels)} classes{': ' + ', '.join(labels[:5]) + ' ...' if labels else ''}")
    source = dict(h["source"] or {})
    history = source.pop("history", None)
    print(f"  source         {json.dumps(source)}")
    if history:
        last = history[-1]
        print(f"  training       {len(history)} epochs; last: " + ", ".join(
            f"{k} {v:.4g}" for k, v in last.items() if k != "epoch" and isinstance(v, float)))


def _run_weights_verify(args):
    from .weights.download import verify_file
    print(verify_file(args.file).message)


# checks and benchmarks -----------------------------------------------------------------------
def _add_gradcheck(sub):
    p = _cmd(sub, "gradcheck", "check every layer's backward against numerical gradients",
             handler=_run_gradcheck,
             description="Gradient-check every hand-written layer w.r.t. every input and parameter "
                         "(float64, central differences, random upstream gradient). Exit 0 only if "
                         "all pass. --plant KEY swaps in a broken backward to show a failure.")
    p.add_argument("--plant", metavar="KEY", help="plant a bug: relu, maxpool, sigmoid, batchnorm_train, softmax_ce")


def _run_gradcheck(args):
    from .errors import MinvertError
    from .gradcheck import check_layers
    try:
        rows = check_layers(plant=args.plant)
    except ValueError as e:
        raise MinvertError(str(e)) from None
    return 0 if all(r.ok for r in rows) else 1


def _add_bench(sub):
    p = _cmd(sub, "bench", "measure speed and memory", handler=_run_bench,
             description="layers: 3x3 conv forward/backward (im2col and Winograd) vs a bare "
                         "matmul. nets: VGG-19 forward, forward + backward to the pixels and one "
                         "evaluation of paper 000's five-term objective, ResNet-50 inference "
                         "(add --compare torch to time PyTorch in the same run, same weights). "
                         "decoder: paper 003's decoder training step. Peak memory is measured "
                         "in fresh processes; docs/performance.md has results.")
    p.add_argument("what", choices=["layers", "nets", "decoder"])
    p.add_argument("--compare", choices=["torch"], help="also time PyTorch with the same weights")
    p.add_argument("--repeats", type=int, default=3)


def _run_bench(args):
    from . import bench
    if args.what == "layers":
        bench.bench_layers(repeats=args.repeats)
    elif args.what == "nets":
        bench.bench_nets(repeats=args.repeats, compare=args.compare)
    else:
        bench.bench_decoder(repeats=args.repeats, compare=args.compare)


def _add_demo(sub):
    p = _cmd(sub, "demo", "run both papers on the bundled models and write an HTML page", handler=_run_demo)
    p.add_argument("--out", default="minvert-demo", metavar="DIR")
    p.add_argument("--force", action="store_true")


def _run_demo(args):
    from .demo import run_demo
    run_demo(args.out, force=args.force)


def _add_exercise(sub):
    p = _cmd(sub, "exercise", "check your own backward passes (tutorials/exercises)")
    esub = p.add_subparsers(title="actions", metavar="ACTION")
    e = _cmd(esub, "check", "gradient-check the functions in FILE", handler=_run_exercise)
    e.add_argument("file", metavar="FILE")


def _run_exercise(args):
    from .exercises import check_file
    return 0 if check_file(args.file) else 1


if __name__ == "__main__":
    sys.exit(main())
