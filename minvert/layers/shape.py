"""Layers that only move values around: flatten, reshape, zero-padding, residual add.

Their backward passes move the gradient back the same way, so none of them needs more
than the input shape (and the padding) in its cache.

    flatten:   x (N, C, H, W) -> out (N, C*H*W), channel-major: out[n, c*H*W + h*W + w]
    reshape:   x (N, ...)     -> out (N, *shape)
    zero-pad:  x (N, C, H, W) -> out (N, C, H + top + bottom, W + left + right)
    add:       a, b (same shape) -> out = a + b
"""
from ..backend import get_array_module
from ..errors import ShapeError
from .base import Layer, check_floating, check_rank, last_cache
from .geometry import normalize_pad, normalize_pair  # noqa: F401  (also imported from here)


# flatten / reshape -------------------------------------------------------------------
def flatten_forward(x):
    """x: (N, ...) -> out: (N, prod(...)), a view when x is C-contiguous.

    For NCHW input the feature index is c*H*W + h*W + w (channel-major, torchvision's
    order), which is what Dense weights (out, in) expect.
    """
    check_floating(x)
    if x.ndim < 2:
        raise ShapeError(f"input has shape {tuple(x.shape)}; flatten needs (N, ...), N the batch")
    out = x.reshape(x.shape[0], -1)  # (N, C*H*W)
    cache = {"x_shape": x.shape}  # backward only has to undo the reshape
    return out, cache


def flatten_backward(dout, cache):
    """dout: (N, C*H*W) -> dx: (N, C, H, W)."""
    return dout.reshape(cache["x_shape"])


def reshape_forward(x, shape):
    """x: (N, ...) -> out: (N, *shape); shape excludes the batch axis and may hold one -1."""
    check_floating(x)
    shape = tuple(int(s) for s in shape)
    try:
        out = x.reshape((x.shape[0],) + shape)
    except ValueError:
        raise ShapeError(f"cannot reshape input {tuple(x.shape)} to (N, *{shape}): "
                         f"the per-sample sizes differ") from None
    cache = {"x_shape": x.shape}  # backward only has to undo the reshape
    return out, cache


def reshape_backward(dout, cache):
    return dout.reshape(cache["x_shape"])


# zero padding ------------------------------------------------------------------------
def zeropad2d_forward(x, pad):
    """x: (N, C, H, W), pad int or (top, bottom, left, right)
    -> out: (N, C, H + top + bottom, W + left + right), zeros around x.
    """
    check_floating(x)
    check_rank(x, 4, "(N, C, H, W)")
    xp = get_array_module(x)
    top, bottom, left, right = normalize_pad(pad)
    N, C, H, W = x.shape
    out = xp.zeros((N, C, H + top + bottom, W + left + right), dtype=x.dtype)
    out[:, :, top:top + H, left:left + W] = x
    cache = {"pad": (top, bottom, left, right), "x_shape": x.shape}  # where x sits inside out
    return out, cache


def zeropad2d_backward(dout, cache):
    """dout: (N, C, H_pad, W_pad) -> dx: (N, C, H, W), the interior of dout (padding
    positions are constants, their gradient is dropped)."""
    xp = get_array_module(dout)
    top, _, left, _ = cache["pad"]
    H, W = cache["x_shape"][2:]
    return xp.ascontiguousarray(dout[:, :, top:top + H, left:left + W])


# residual add ------------------------------------------------------------------------
def add_forward(a, b):
    """Residual add: a, b same shape -> out = a + b (no broadcasting, on purpose).

    No cache: the local derivative of a sum is 1 for both terms.
    """
    if a.shape != b.shape:
        raise ShapeError(f"residual add of shapes {tuple(a.shape)} and {tuple(b.shape)}: "
                         f"the branches must have the same shape (check the projection)")
    return a + b


def add_backward(dout):
    """-> (da, db) = (dout, dout): both branches receive the full upstream gradient.

    Both are the SAME array object (no copy). Never modify either in place; a caller
    that accumulates into one must copy it first (``da = da + other`` is fine).
    """
    return dout, dout


# classes -----------------------------------------------------------------------------
class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), channel-major."""

    def forward(self, x):
        out, self.cache = flatten_forward(x)
        return out

    def backward(self, dout):
        return flatten_backward(dout, last_cache(self))


class Reshape(Layer):
    """(N, ...) -> (N, *shape); ``shape`` excludes the batch axis, like Keras' Reshape."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def forward(self, x):
        out, self.cache = reshape_forward(x, self.shape)
        return out

    def backward(self, dout):
        return reshape_backward(dout, last_cache(self))

    def __repr__(self):
        return f"Reshape({self.shape})"


class ZeroPad2D(Layer):
    """Zero padding by (top, bottom, left, right) (or one int for all four sides)."""

    def __init__(self, pad):
        super().__init__()
        self.pad = normalize_pad(pad)

    def forward(self, x):
        out, self.cache = zeropad2d_forward(x, self.pad)
        return out

    def backward(self, dout):
        return zeropad2d_backward(dout, last_cache(self))

    def __repr__(self):
        return f"ZeroPad2D({self.pad})"
