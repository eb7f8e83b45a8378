"""What every subcommand shares: how it is added to the parser, and its --device option."""
import argparse

from ..text import escape_text


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, like every other minvert error
    (argparse prints the whole usage first); subcommand parsers inherit the class."""

    def error(self, message):
        text = escape_text(" ".join(message.split()))[:2000]
        self.exit(2, f"minvert: error: {text} (see `{self.prog} --help`)\n")


def add_command(sub, name, help, description=None, handler=None):
    """A subparser ``name`` whose parsed arguments go to ``handler(args)``."""
    p = sub.add_parser(name, help=help, description=description or help,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler=handler)
    return p


def _device_spec(text):
    """argparse type for --device: the spelling is checked here, the hardware when it is used."""
    from ..backend import parse_device
    from ..errors import DeviceError
    try:
        parse_device(text)
    except DeviceError as e:
        raise argparse.ArgumentTypeError(str(e).replace("--device ", "", 1)) from None
    return text


def add_device_option(p):
    """--device, checked for its spelling when parsed (the hardware only when used)."""
    p.add_argument("--device", type=_device_spec, default=None, metavar="DEVICE",
                   help="where to compute: cpu, gpu, gpu:N (CUDA device N; cuda, cuda:N too). "
                        "Default: $MINVERT_DEVICE, else the GPU if CuPy sees one, else the CPU")


def parse_arguments(parser, argv):
    """``parser.parse_args(argv)``, except that an unknown option is reported with the usage of
    the sub-command it was given to (argparse's own answer shows the top-level usage)."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        innermost(parser, argv).error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def innermost(parser, argv):
    """The (sub-)parser that the words of ``argv`` select: minvert, minvert reconstruct, ..."""
    for word in argv:
        choices = [a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if choices and word in choices[0]:
            parser = choices[0][word]
    return parser
