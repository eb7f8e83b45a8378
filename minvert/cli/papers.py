"""``minvert classify``, and the two papers' commands (``transform``, ``reconstruct``), whose
options live with them."""
import json

from ..bounds import int_range
from ..text import escape_text
from .common import add_command, add_device_option


def add_classify(sub):
    from ..weights.bundled import BUNDLED
    p = add_command(sub, "classify", "print the top classes a network gives each image", handler=_run_classify,
             description=
             f"Classify images with a network: a bundled model ({', '.join(BUNDLED)}), a "
             "downloaded or installed one by name (vgg19, resnet50, ...; `minvert weights list`) "
             "or a project weight file (.h5).")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any format Pillow reads)")
    p.add_argument("--model", required=True, help="model name or path to a minvert .h5 file")
    p.add_argument("--top", type=int_range(1, 100_000), default=5, metavar="K", help="how many classes to show (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object per image instead of text")
    add_device_option(p)


def _run_classify(args):
    from ..classify import classify_files
    from ..errors import check_options
    check_options(args, minimum={"top": 1})
    results = classify_files(args.images, args.model, top=args.top, device=args.device)
    for r in results:
        if args.json:
            print(json.dumps(r))
        else:
            print(f"{escape_text(r['image'])}  ({r['view']})")
            for c in r["top"]:
                print(f"  {c['probability']:7.2%}  {c['index']:>4}  {escape_text(c['label'])}")


def add_transform(sub):
    from ..transform.cli import add_cli
    add_cli(sub, add_command, add_device_option)


def add_reconstruct(sub):
    from ..reconstruct.cli import add_cli
    add_cli(add_command(sub, "reconstruct", "paper 003: decode images from ResNet feature vectors",
                        description="Paper 003: extract ResNet features, train the upsampling decoder, "
                                    "evaluate how much of seen and unseen images comes back."),
            add_device_option)
