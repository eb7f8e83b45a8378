"""The ``minvert`` command: the parser, and the one place where any failure becomes one line.

Each command family adds its subcommands from its own module (papers, train, weights, tools) and
calls the library from its handlers.

Any failure prints one line ``minvert: error: ...`` and exits 1 (MinvertError carries a message
written for the user; other exceptions are described without their class name); usage errors
exit 2, Ctrl-C 130. Set MINVERT_DEBUG=1 to see tracebacks.
"""
import argparse
import os
import sys

from . import papers, tools, train, weights
from ..text import escape_text
from .common import OneLineParser, parse_arguments

EPILOG = """first steps:
  minvert demo --out demo/            the whole project on its bundled models, offline (README: Speed)
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
        args = parse_arguments(parser, sys.argv[1:] if argv is None else argv)
        if not getattr(args, "handler", None):
            parser.print_help()
            return 2
        check_environment()
        command = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), "")
        if command in LONG_COMMANDS and sys.stderr.isatty():  # a note for a person, not for a log
            from ..backend import oversubscription_note
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


def check_environment():
    """Every MINVERT_* variable in its range, before any work."""
    from ..backend import parse_device
    from ..bounds import check_environment as check_numbers_and_paths
    check_numbers_and_paths()
    if os.environ.get("MINVERT_DEVICE", "").strip():
        parse_device(os.environ["MINVERT_DEVICE"], "MINVERT_DEVICE")


def describe_error(e):
    """One bounded line for the user: MinvertError's own message, else what the built-in
    exception says, never its class name, never an unbounded object (a huge dict key, say)."""
    from ..errors import MinvertError
    from ..files import write_failure
    if isinstance(e, MinvertError):
        text = str(e)
    elif isinstance(e, MemoryError):
        text = "out of memory; the input asks for more than this machine has (or is damaged)"
    elif isinstance(e, RecursionError):
        text = "the input is nested too deeply to process; it is damaged or hostile"
    elif isinstance(e, OSError) and write_failure(e, e.filename or "a file") is not None:
        text = str(write_failure(e, e.filename or "a file"))  # full disk, size limit: say which
    elif isinstance(e, OSError) and (e.strerror or (e.args and isinstance(e.args[0], str))):
        where = " ".join(f"{f}:" for f in (e.filename, e.filename2) if f)
        text = f"{where} {(e.strerror or e.args[0])[:300]}".strip()
    else:
        words = [a for a in e.args if isinstance(a, str)]  # formatting other args may never end
        text = (f"unexpected failure ({words[0][:300]})" if words else "unexpected failure")
        text += "; rerun with MINVERT_DEBUG=1 for the traceback and please report it"
    return " ".join(escape_text(text).split())[:2000]


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"minvert: warning: {' '.join(escape_text(message).split())[:500]}", file=file or sys.stderr)


def build_parser():
    from ..version import __version__
    parser = OneLineParser(
        prog="minvert", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="CNN inversion from scratch: classify, transform an image into another class "
                    "(paper 000), reconstruct images from ResNet features (paper 003).")
    parser.add_argument("--version", action="version", version=f"minvert {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in (papers.add_classify, papers.add_transform, papers.add_reconstruct, train.add_train,
                train.add_dataset, weights.add_convert, weights.add_weights, tools.add_gradcheck,
                tools.add_bench, tools.add_demo, tools.add_exercise, tools.add_info):
        add(sub)
    return parser
