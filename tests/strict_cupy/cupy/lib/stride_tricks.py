"""cupy.lib.stride_tricks: views of device memory with chosen strides."""
from numpy.lib import stride_tricks as _st

from .._core import call as _call


def as_strided(x, shape=None, strides=None):
    return _call(_st.as_strided, x, shape=shape, strides=strides)


def sliding_window_view(x, window_shape, axis=None, *, subok=False, writeable=False):
    return _call(_st.sliding_window_view, x, window_shape, axis=axis, writeable=writeable)
