"""The ``minvert`` command: :mod:`.main` builds the parser and turns any failure into one line; one
module per command family adds its subcommands. The library is imported only inside the command
handlers, so ``minvert --help`` starts without loading NumPy, h5py or the networks."""
from .main import build_parser, describe_error, main  # noqa: F401  (minvert = "minvert.cli:main")
