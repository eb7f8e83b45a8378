"""The ``minvert`` command. Each subcommand parses its arguments here and calls the library.

Any failure prints one line ``minvert: error: ...`` and exits 1 (MinvertError carries a message
written for the user; other exceptions are described without their class name); usage errors
exit 2, Ctrl-C 130. Set MINVERT_DEBUG=1 to see tracebacks.
"""
import argparse
import json
import os
import sys

EPILOG = """first steps:
  minvert demo --out demo/            the whole project on its bundled models, offline (~1-2 min)
  minvert gradcheck                   check every hand-written backward pass numerically
  minvert weights download vgg19      fetch and convert real ImageNet weights (needs network)
  minvert info                        versions, GPU devices and whether CUDA works, where weights are looked for
"""


LONG_COMMANDS = ("demo", "transform", "reconstruct", "train", "bench")  # where BLAS threads matter


def main(argv=None):
    """Run the command; the exit status follows docs/architecture.md's table (0 ok, 1 error,
    2 usage, 130 interrupted). Every failure is one ``minvert: error: ...`` line."""
    import warnings
    warnings.showwarning = _one_line_warning
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "handler", None):
            parser.print_help()
            return 2
        command = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), "")
        if command in LONG_COMMANDS and sys.stderr.isatty():  # a note for a person, not for a log
            from .backend import oversubscription_note
            note = oversubscription_note()
            if note:
                print(note, file=sys.stderr)
        status = args.handler(args) or 0
        sys.stdout.flush()  # a closed pipe shows up here, inside the handler below
        return status
    except SystemExit:
        raise  # argparse: --help (0) or a usage error (2), already printed
    except KeyboardInterrupt:
        print("minvert: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`minvert bench ... | head`): no message, no traceback at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except BaseException as e:  # noqa: BLE001 - the one place that turns any failure into a line
        if os.environ.get("MINVERT_DEBUG"):
            raise
        print(f"minvert: error: {describe_error(e)}", file=sys.stderr)
        return 1


def describe_error(e):
    """One bounded line for the user: MinvertError's own message, else what the built-in
    exception says, never its class name, never an unbounded object (a huge dict key, say)."""
    from .errors import MinvertError
    if isinstance(e, MinvertError):
        text = str(e)
    elif isinstance(e, MemoryError):
        text = "out of memory; the input asks for more than this machine has (or is damaged)"
    elif isinstance(e, RecursionError):
        text = "the input is nested too deeply to process; it is damaged or hostile"
    elif isinstance(e, OSError) and (e.strerror or (e.args and isinstance(e.args[0], str))):
        where = " ".join(f"{f}:" for f in (e.filename, e.filename2) if f)
        text = f"{where} {(e.strerror or e.args[0])[:300]}".strip()
    else:
        words = [a for a in e.args if isinstance(a, str)]  # formatting other args may never end
        text = (f"unexpected failure ({words[0][:300]})" if words else "unexpected failure")
        text += "; rerun with MINVERT_DEBUG=1 for the traceback and please report it"
    return " ".join(text.split())[:2000]


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"minvert: warning: {' '.join(str(message).split())[:500]}", file=file or sys.stderr)


def build_parser():
    from . import __version__
    parser = argparse.ArgumentParser(
        prog="minvert", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="CNN inversion from scratch: classify, transform an image into another class "
                    "(paper 000), reconstruct images from ResNet features (paper 003).")
    parser.add_argument("--version", action="version", version=f"minvert {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in (_add_classify, _add_transform, _add_reconstruct, _add_train, _add_dataset,
                _add_convert, _add_weights, _add_gradcheck, _add_bench, _add_demo, _add_exercise,
                _add_info):
        add(sub)
    return parser


def _cmd(sub, name, help, description=None, handler=None):
    p = sub.add_parser(name, help=help, description=description or help,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler=handler)
    return p


def _device_spec(text):
    """argparse type for --device: the spelling is checked here, the hardware when it is used."""
    from .backend import parse_device
    from .errors import DeviceError
    try:
        parse_device(text)
    except DeviceError as e:
        raise argparse.ArgumentTypeError(str(e).replace("--device ", "", 1)) from None
    return text


def _device_args(p):
    p.add_argument("--device", type=_device_spec, default=None, metavar="DEVICE",
                   help="where to compute: cpu, gpu, gpu:N (CUDA device N; cuda, cuda:N too). "
                        "Default: $MINVERT_DEVICE, else the GPU if CuPy sees one, else the CPU")


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
    from .errors import check_options
    check_options(args, minimum={"top": 1})
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
             description="Train tiny-vgg or tiny-resnet on a generated dataset (textures, shapes) "
                         "or on a folder of images (one sub-folder per class). Writes run.json (the "
                         "settings), checkpoint.h5 (resumable), log.jsonl and model.h5 into --out; on "
                         "generated data the test accuracy on --test-n new images per class is recorded "
                         "in model.h5.")
    p.add_argument("--data",
                   help="a generated dataset, 'textures' (8 pattern classes, default) or 'shapes' "
                        "(32 colour x shape x background classes), or a folder of class sub-folders")
    p.add_argument("--arch", choices=["tiny-vgg", "tiny-resnet"], help="default tiny-vgg")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--epochs", type=int, help="epochs in total (default 8; may grow on --resume)")
    p.add_argument("--batch", type=int, help="batch size (default 32)")
    p.add_argument("--optimizer", choices=["adam", "sgd", "adadelta"], help="default adam")
    p.add_argument("--lr", type=float, help="learning rate (default: adam 1e-3, sgd 0.05, adadelta 1.0)")
    p.add_argument("--schedule", choices=["cosine", "constant"],
                   help="learning rate over the epochs (default cosine annealing)")
    p.add_argument("--n", type=int, help="generated images per class for training (generated data; default 300)")
    p.add_argument("--val-n", type=int, help="generated validation images per class (generated data; default 50)")
    p.add_argument("--test-n", type=int,
                   help="after training, accuracy on this many new generated images per class "
                        "(generated data; default 100)")
    p.add_argument("--val-fraction", type=float, help="held-out fraction of a folder (default 0.1)")
    p.add_argument("--size", type=int, help="image side (default 64)")
    p.add_argument("--seed", type=int, help="weights, data and shuffling (default 0)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint, with the settings in its "
                        "run.json (options given must agree with them, except --epochs, --test-n)")
    _device_args(p)


def _run_train(args):
    from .train import train_command
    train_command(args)


def _add_dataset(sub):
    p = _cmd(sub, "dataset", "write a generated dataset (textures or shapes) as PNG files",
             handler=_run_dataset,
             description="Write a generated dataset as DIR/<class>/<class>_00000.png ... plus "
                         "DIR/dataset.json. textures: 8 classes of patterns in random colours (the "
                         "bundled tiny-vgg/tiny-resnet-textures). shapes: 16 classes <colour>-<shape> "
                         "(red/yellow/green/blue x circle/square/triangle/cross) at random positions "
                         "and sizes on varied backgrounds (tiny-resnet-shapes, paper 003's encoder). "
                         "The same --seed always gives the same images.")
    p.add_argument("kind", choices=["textures", "shapes"], help="which generated dataset")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--n", type=int, default=20, help="images per class (default 20)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)


def _run_dataset(args):
    from .datasets import write_dataset
    from .errors import check_options
    check_options(args, minimum={"n": 1, "size": 8, "seed": 0})
    write_dataset(args.out, args.n, size=args.size, seed=args.seed, kind=args.kind)


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
    print(f"  source         {json.dumps(source)[:2000]}")
    if isinstance(history, list) and history and isinstance(history[-1], dict):
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
                         "(float64, central differences h = 1e-5, random upstream gradient). A check "
                         "passes when ||analytic - numerical|| / (||analytic|| + ||numerical||) < 1e-7; "
                         "a failure says which element is worst and how many differ. Exit 0 only if "
                         "all pass. --plant KEY swaps in a broken backward to show a failure.\n\n"
                         "FILE.py:NAME checks your own layer instead, written either as two functions\n"
                         "  NAME_forward(x, w, ...) -> (out, cache)   arrays = the parameters without default\n"
                         "  NAME_backward(dout, cache) -> (dx, dw, ...)   one gradient per array, same order\n"
                         "or as a class NAME() with forward(x) -> out, backward(dout) -> dx and optional\n"
                         "dicts params/grads. Arrays are random normal float64; x is (2, 3, 6, 5) unless\n"
                         "--shape says otherwise, e.g.\n"
                         "  minvert gradcheck my_dense.py:dense --shape x=4,12 w=5,12 b=5")
    p.add_argument("layer", nargs="?", metavar="FILE.py:NAME", help="check your own layer (see above)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--shape", nargs="+", metavar="NAME=D1,D2", help="array shapes for FILE.py:NAME")
    p.add_argument("--plant", metavar="KEY", help="plant a bug: relu, maxpool, sigmoid, batchnorm_train, softmax_ce")
    _device_args(p)


def _run_gradcheck(args):
    from .errors import MinvertError
    from .gradcheck import check_layers
    if args.layer:
        from .studentfile import check_own_layer, parse_shapes
        if args.plant:
            raise MinvertError("--plant works on minvert's own layers, not with FILE.py:NAME")
        rows = check_own_layer(args.layer, parse_shapes(args.shape), seed=args.seed)
        return 0 if all(r.ok for r in rows) else 1
    if args.shape:
        raise MinvertError("--shape goes with FILE.py:NAME (your own layer)")
    try:
        rows = check_layers(plant=args.plant, seed=args.seed, device=args.device)
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
                         "in fresh processes; docs/performance.md has results. presets: each "
                         "paper-000 preset's terms, their values and shares of the gradient norm at "
                         "the start and a few steps in (full-size VGG-19 with random weights, or --model).")
    p.add_argument("what", choices=["layers", "nets", "decoder", "presets"])
    p.add_argument("--model", help="presets: a 1000-class model name or .h5 (default: random VGG-19)")
    p.add_argument("--content-kind", choices=["gram", "raw"], default="gram",
                   help="presets: the paper's Gram content loss (default) or fzliu's raw-map one")
    p.add_argument("--compare", choices=["torch"], help="also time PyTorch with the same weights")
    p.add_argument("--repeats", type=int, default=3)
    _device_args(p)


def _run_bench(args):
    from . import bench
    from .errors import check_options
    check_options(args, minimum={"repeats": 1})
    from .backend import select_device
    device = select_device(args.device)  # 'cpu' or 'gpu' (gpu:N made current)
    if args.what == "layers":
        bench.bench_layers(repeats=args.repeats, device=device)
    elif args.what == "nets":
        bench.bench_nets(repeats=args.repeats, compare=args.compare, device=device)
    elif args.what == "presets":
        from .transform.scales import bench_presets
        bench_presets(model=args.model, content_kind=args.content_kind)
    else:
        bench.bench_decoder(repeats=args.repeats, compare=args.compare, device=device)


def _add_demo(sub):
    p = _cmd(sub, "demo", "run both papers on the bundled models and write an HTML page", handler=_run_demo,
             description="Classify generated images, run paper 000 (dots -> stripes on tiny-vgg-textures) "
                         "and paper 003 (reconstruct 160 unseen shapes images from tiny-resnet-shapes "
                         "features), then write DIR/index.html explaining every result. About 30 s of "
                         "CPU; on a busy machine set OPENBLAS_NUM_THREADS=1 (small matrices: extra BLAS "
                         "threads only wait for each other).")
    p.add_argument("--out", default="minvert-demo", metavar="DIR", help="output folder (default minvert-demo)")
    p.add_argument("--force", action="store_true", help="overwrite a demo already in --out")
    _device_args(p)


def _run_demo(args):
    from .demo import run_demo
    run_demo(args.out, force=args.force, device=args.device)


def _add_exercise(sub):
    p = _cmd(sub, "exercise", "check your own backward passes (tutorials/exercises)")
    esub = p.add_subparsers(title="actions", metavar="ACTION")
    e = _cmd(esub, "check", "check the exercise functions in FILE (or every ex*.py in a folder)",
             handler=_run_exercise,
             description="Run the exercise functions FILE defines on random float64 inputs (new "
                         "shapes every run; --seed repeats one), compare forwards with minvert's, "
                         "gradients with central differences (||yours - numerical|| / (||yours|| + "
                         "||numerical||) < 1e-7), call each backward twice and fail it if it changes "
                         "dout, its cache or its input in place. A failure names the usual mistake.")
    e.add_argument("file", metavar="FILE")
    e.add_argument("--seed", type=int, help="repeat the inputs of an earlier run (it prints its seed)")


def _run_exercise(args):
    from .exercises import check_file
    return 0 if check_file(args.file, seed=args.seed) else 1


def _add_info(sub):
    _cmd(sub, "info", "versions, GPU devices, whether a CUDA kernel compiles, where weights are looked for",
         handler=_run_info)


def _run_info(args):
    import platform
    from importlib.metadata import PackageNotFoundError, version
    from . import __version__
    from .backend import describe_blas, gpu_report, select_device
    from .layers import fast
    from .errors import DeviceError
    from .weights.zoo import weights_search_path
    print(f"minvert  {__version__} (Python {platform.python_version()})")
    for package in ("numpy", "scipy", "h5py", "pillow"):
        try:
            print(f"{package:<8} {version(package)}")
        except PackageNotFoundError:
            print(f"{package:<8} MISSING (pip install minvert)")
    print(f"cpu      {describe_blas()}")
    print(f"layers   {fast.describe()}")
    for line in gpu_report():
        print(line)
    try:
        problem, default = None, select_device()
    except DeviceError as e:
        problem, default = str(e), "none"
    print(f"device   {default} by default ($MINVERT_DEVICE={os.environ.get('MINVERT_DEVICE', '')!r})"
          + (f": {problem}" if problem else ""))
    print("weights  looked for in: " + ", ".join(str(p) for p in weights_search_path()))
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
