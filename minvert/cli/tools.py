"""``minvert gradcheck``, ``bench``, ``demo``, ``exercise`` and ``info``: the checks, benchmarks and
tools built on the library."""
import os

from ..bounds import SEED_MAX, int_range, named_shape
from ..text import escape_text
from .common import add_command, add_device_option


def add_gradcheck(sub):
    p = add_command(sub, "gradcheck", "check every layer's backward against numerical gradients",
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
                         "  minvert gradcheck my_dense.py:dense --shape x=4,12 w=5,12 b=5\n"
                         "FILE.py alone checks every layer the file defines, one table each.\n"
                         "Before blaming your backward it rules out the causes outside it and names\n"
                         "them: a forward that is not float64 or not deterministic (not checked), a\n"
                         "gradient that is not float64 (not checked), a kink within h of an input\n"
                         "(inconclusive at a kink), an h too small for the magnitude of the values\n"
                         "or too large (inconclusive; it names an --h that passes, if one does). The\n"
                         "last line is the verdict; exit 0 only on PASS.")
    p.add_argument("layer", nargs="?", metavar="FILE.py:NAME",
                   help="check your own layer (see above); FILE.py alone: every layer in it")
    p.add_argument("--seed", type=int_range(0, SEED_MAX), default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--shape", nargs="+", type=named_shape(100_000, 1_000_000), metavar="NAME=D1,D2", help="array shapes for FILE.py:NAME")
    p.add_argument("--h", metavar="STEP",
                   help="central-difference step for FILE.py:NAME, 1e-8 to 0.1 (default 1e-5)")
    p.add_argument("--plant", metavar="KEY", help="plant a bug: relu, maxpool, sigmoid, batchnorm_train, softmax_ce")
    add_device_option(p)


def _run_gradcheck(args):
    from ..errors import MinvertError
    from ..gradcheck_catalogue import check_layers
    if args.layer:
        from ..exercises.studentfile import check_own_layer, parse_shapes
        if args.plant:
            raise MinvertError("--plant works on minvert's own layers, not with FILE.py:NAME")
        rows = check_own_layer(args.layer, parse_shapes(args.shape), seed=args.seed,
                               h=1e-5 if args.h is None else args.h)  # checked there
        return 0 if all(r.ok for r in rows) else 1
    if args.shape or args.h is not None:
        raise MinvertError(f"{'--shape' if args.shape else '--h'} goes with FILE.py:NAME (your own "
                           f"layer); minvert's own layers are checked at h = 1e-5")
    try:
        rows = check_layers(plant=args.plant, seed=args.seed, device=args.device)
    except ValueError as e:
        raise MinvertError(str(e)) from None
    return 0 if all(r.ok for r in rows) else 1


def add_bench(sub):
    p = add_command(sub, "bench", "measure speed and memory", handler=_run_bench,
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
    p.add_argument("--repeats", type=int_range(1, 10_000), default=3)
    add_device_option(p)


def _run_bench(args):
    from .. import bench
    from ..errors import check_options
    check_options(args, minimum={"repeats": 1})
    from ..backend import select_device
    device = select_device(args.device)  # 'cpu' or 'gpu' (gpu:N made current)
    if args.what == "layers":
        bench.bench_layers(repeats=args.repeats, device=device)
    elif args.what == "nets":
        bench.bench_nets(repeats=args.repeats, compare=args.compare, device=device)
    elif args.what == "presets":
        from ..transform.scales import bench_presets
        bench_presets(model=args.model, device=device, content_kind=args.content_kind)
    else:
        bench.bench_decoder(repeats=args.repeats, compare=args.compare, device=device)


def add_demo(sub):
    p = add_command(sub, "demo", "run both papers on the bundled models and write an HTML page", handler=_run_demo,
             description="Classify generated images, run paper 000 (dots -> stripes on tiny-vgg-textures) "
                         "and paper 003 (reconstruct 160 unseen shapes images from tiny-resnet-shapes "
                         "features), then write DIR/index.html explaining every result. How long it "
                         "takes: README.md, 'Speed'. On a busy machine set OPENBLAS_NUM_THREADS=1 (small "
                         "matrices: extra BLAS threads only wait for each other).")
    p.add_argument("--out", default="minvert-demo", metavar="DIR", help="output folder (default minvert-demo)")
    p.add_argument("--force", action="store_true", help="overwrite a demo already in --out")
    add_device_option(p)


def _run_demo(args):
    from ..demo import run_demo
    run_demo(args.out, force=args.force, device=args.device)


def add_exercise(sub):
    p = add_command(sub, "exercise", "check your own backward passes (tutorials/exercises)")
    esub = p.add_subparsers(title="actions", metavar="ACTION")
    e = add_command(esub, "check", "check the exercise functions in FILE (or every ex*.py in a folder)",
             handler=_run_exercise,
             description="Run the exercise functions FILE defines on random float64 inputs (new "
                         "shapes every run; --seed repeats one), compare forwards with minvert's, "
                         "gradients with central differences (||yours - numerical|| / (||yours|| + "
                         "||numerical||) < 1e-7), call each backward twice and fail it if it changes "
                         "dout, its cache or its input in place. A failure names the usual mistake.")
    e.add_argument("file", metavar="FILE")
    e.add_argument("--seed", type=int_range(0, SEED_MAX), help="repeat the inputs of an earlier run (it prints its seed)")


def _run_exercise(args):
    from ..errors import MinvertError
    from ..exercises import check_file
    if not os.path.exists(args.file):
        raise MinvertError(f"{args.file}: no such file or folder; give an exercise file, e.g. "
                           "tutorials/exercises/ex01_dense.py, or a folder of them")
    return 0 if check_file(args.file, seed=args.seed) else 1


def add_info(sub):
    add_command(sub, "info", "versions, GPU devices, whether a CUDA kernel compiles, where weights are looked for",
         handler=_run_info)


def _run_info(args):
    import platform
    from importlib.metadata import PackageNotFoundError, version
    from ..version import __version__
    from ..backend import describe_blas, gpu_report, select_device
    from ..layers import fast
    from ..errors import DeviceError
    from ..weights.zoo import weights_search_path
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
    print("weights  looked for in: " + escape_text(", ".join(str(p) for p in weights_search_path())))
    return 1 if problem else 0
