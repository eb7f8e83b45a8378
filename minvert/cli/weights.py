"""``minvert convert`` and ``minvert weights list | download | info | verify``."""
import json
import sys

from ..bounds import float_range
from ..text import escape_text
from .common import add_command


def add_convert(sub):
    p = add_command(sub, "convert", "convert Keras .h5 / torch .pth weights into minvert's format",
             handler=_run_convert,
             description="Convert a Keras .h5 or a torchvision .pth (zip or legacy) file into a minvert "
                         ".h5 file; the architecture is detected from the names and shapes. DST is a "
                         "file path (ending in .h5, or with a folder), or a NAME: then the file is "
                         "installed as NAME.h5 in the weights folder ($MINVERT_WEIGHTS, else the user "
                         "cache), listed by `minvert weights list` and found by --model NAME.\n\n"
                         "examples:\n"
                         "  minvert convert vgg19_weights_tf_dim_ordering_tf_kernels.h5 vgg19\n"
                         "  minvert convert resnet50-0676ba61.pth resnet50-tv.h5")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST|NAME", help="a file path ending in .h5, or a NAME to install under")
    p.add_argument("--arch", help="override detection: vgg16, vgg19, resnet18, resnet34, resnet50, resnet101, resnet152")
    p.add_argument("--force", action="store_true", help="overwrite DST")


def _run_convert(args):
    from ..weights.catalogue import install_path, is_model_name
    from ..weights.convert import convert
    dst = install_path(args.dst) if is_model_name(args.dst) else args.dst
    net = convert(args.src, dst, arch=args.arch, force=args.force)
    c = net.config
    print(f"wrote {escape_text(dst)}: {c['arch']}{c.get('depth') or ''} {c.get('variant', '')} "
          f"({net.num_params():,} parameters, {net.preprocessing.mode} preprocessing)")
    if dst != args.dst:
        name = escape_text(args.dst)
        print(f"installed as {name}: use it with --model {name} (`minvert weights list` shows it)")


def add_weights(sub):
    p = add_command(sub, "weights", "list, download, inspect or verify pretrained weights")
    wsub = p.add_subparsers(title="actions", metavar="ACTION")
    w = add_command(wsub, "list", "every model found by name: bundled, downloads, installed conversions",
                    handler=_run_weights_list)
    w.add_argument("-v", "--verbose", action="store_true", help="with descriptions")
    w = add_command(wsub, "download", "download, verify the hash, convert", handler=_run_weights_download)
    w.add_argument("name", metavar="NAME")
    w.add_argument("--dir", help="where to put the files (default: $MINVERT_WEIGHTS or the user cache)")
    w.add_argument("--force", action="store_true", help="download again even if present")
    w.add_argument("--speed-limit", type=float_range(0, 1e12), default=1000, metavar="BYTES",
                   help="with --speed-time: a transfer slower than this many bytes/s for that long "
                        "stops and is retried, like curl's (default 1000; 0: no minimum rate)")
    w.add_argument("--speed-time", type=float_range(0, 86_400, above=True), default=60, metavar="SECONDS", help="default 60")
    w = add_command(wsub, "info", "describe a minvert weight file, or a model by name", handler=_run_weights_info)
    w.add_argument("file", metavar="FILE|NAME", help="a minvert .h5 file, or a model name (`weights list`)")
    w = add_command(wsub, "verify", "check a downloaded original against the zoo's hash", handler=_run_weights_verify)
    w.add_argument("file", metavar="FILE")


def _run_weights_list(args):
    from ..weights.catalogue import list_models
    list_models(sys.stdout, verbose=args.verbose)


def _run_weights_download(args):
    from ..weights.convert import convert
    from ..weights.download import download_weights
    path = download_weights(args.name, dest_dir=args.dir, convert=convert, force=args.force,
                            speed=(args.speed_limit, args.speed_time))
    print(f"ready: {escape_text(path)}  (load it with --model {args.name})")


def _run_weights_info(args):
    from ..weights import resolve_model
    from ..weights.project import read_header
    path = resolve_model(args.file)
    h = read_header(path)
    c = h["config"]
    print(f"{escape_text(path)}: minvert weights, format {h['format_version']}")
    print(f"  arch           {json.dumps(c)}")
    print(f"  preprocessing  {json.dumps(h['preprocessing'])}")
    labels = h["labels"] or []
    shown = escape_text(", ".join(labels[:5]))
    print(f"  labels         {len(labels)} classes{': ' + shown + ' ...' if labels else ''}")
    source = dict(h["source"] or {})
    history = source.pop("history", None)
    print(f"  source         {json.dumps(source)[:2000] if source else 'not recorded'}")
    if isinstance(history, list) and history and isinstance(history[-1], dict):
        last = history[-1]
        print(f"  training       {len(history)} epochs; last: " + ", ".join(
            f"{k} {v:.4g}" for k, v in last.items() if k != "epoch" and isinstance(v, float)))


def _run_weights_verify(args):
    from ..weights.download import verify_file
    print(verify_file(args.file).message)
