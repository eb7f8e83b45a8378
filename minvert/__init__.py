"""minvert: CNN inversion from scratch, with every forward and backward written by hand."""
__version__ = "0.1.0"

from .errors import MinvertError  # noqa: F401
