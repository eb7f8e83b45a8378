"""Errors that carry a one-line message meant for the user.

The CLI prints ``minvert: error: <message>`` for these and exits non-zero, never a
traceback. They also subclass the built-in type a Python caller would expect.
"""
import math


class MinvertError(Exception):
    """Bad input or state the user can fix; the message says what and how."""


class ShapeError(MinvertError, ValueError):
    """An array has the wrong rank, size or channel count."""


class DTypeError(MinvertError, TypeError):
    """An array has a dtype no layer accepts (integer, boolean)."""


class FormatError(MinvertError, ValueError):
    """A file is not in the format expected (corrupt, truncated, another kind of file)."""


class DeviceError(MinvertError, RuntimeError):
    """A device that is not there (no CuPy, no CUDA device, gpu:N out of range), or a host
    array given to a device network (or the reverse)."""


def check_options(args, minimum=(), positive=(), finite=()):
    """Refuse option values no run can use, before any work (``minvert: error: --iters 0: ...``).

    minimum: {attribute: lowest allowed value}; positive: attributes that must be > 0 and finite;
    finite: attributes that must be finite numbers. Attributes that are None are not given.
    """
    for name, low in dict(minimum).items():
        value = getattr(args, name, None)
        if value is not None and not value >= low:
            raise MinvertError(f"--{name.replace('_', '-')} {value}: must be at least {low}")
    for name in positive:
        value = getattr(args, name, None)
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise MinvertError(f"--{name.replace('_', '-')} {value}: must be a positive number")
    for name in finite:
        value = getattr(args, name, None)
        if value is not None and not math.isfinite(value):
            raise MinvertError(f"--{name.replace('_', '-')} {value}: must be a finite number")
