"""Pure helpers of :mod:`._core`: what a view is, what fresh device memory holds, flags."""
import numpy as _np


def _is_basic(key):
    """True for an index of integers, slices, None and Ellipsis only (a view in CuPy)."""
    parts = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, slice) or
               (isinstance(k, (int, _np.integer)) and not isinstance(k, (bool, _np.bool_)))
               for k in parts)


def _view_key(key):
    """A basic index that gives a 0-d view, not a NumPy scalar, when it selects one element
    (CuPy's ``a[i]`` is a view of ``a``: later writes to ``a`` show in it)."""
    parts = key if isinstance(key, tuple) else (key,)
    return parts if any(k is Ellipsis for k in parts) else parts + (Ellipsis,)


def garbage(a):
    """Fill a fresh buffer with what uninitialised device memory may hold."""
    if a.dtype.kind in "fc":
        a.fill(_np.nan)
    elif a.size:
        a[...] = _np.random.default_rng().integers(0, 127, a.shape).astype(a.dtype)
    return a


class Flags:
    """CuPy's ndarray.flags: three flags only (NumPy's writeable, aligned... do not exist)."""

    def __init__(self, a):
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.flags.owndata

    def __getitem__(self, name):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[name]
