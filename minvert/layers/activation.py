"""Element-wise activations: ReLU, LeakyReLU, sigmoid. Any shape in, same shape out.

Every cache keeps the OUTPUT, not the input: the next layer holds a reference to it
anyway, so the cache costs no memory, and each derivative can be written in terms of
the output:

    relu:        dx = dout * [out > 0]
    leaky relu:  dx = dout * (1 if out > 0 else alpha)      (alpha >= 0, so out > 0 <=> x > 0)
    sigmoid:     dx = dout * out * (1 - out)

At the kink x = 0 the derivative used is the left one (0 for ReLU, alpha for LeakyReLU),
like PyTorch. Backward never modifies dout in place (a residual add hands the same dout
to two branches).

Reference: minvert/layers/reference/activation.py. This version adds memory (the cache holds
the output, alive in the next layer anyway, instead of x), speed (leaky ReLU as max(x, alpha x)
in place, not where()) and a sigmoid that never overflows.
"""
import threading

import numpy as np

from .. import threads
from ..backend import get_array_module
from .base import Layer, check_floating
from .shape import last_cache

# NumPy's maximum runs about 4x slower against the scalar 0 than against an array of zeros
# (measured, NumPy 2.4, 0.8 M float32: 294 vs 78 us; its fast loop wants two arrays), so on
# the CPU the zeros come from a small buffer (one per thread: workers run ReLUs at the same
# time), RELU_PIECE elements at a time
RELU_PIECE = 1 << 16
_ZEROS = {}  # (dtype, thread) -> RELU_PIECE zeros, never written


# ReLU ---------------------------------------------------------------------------------
def relu(a, out=None):
    """out = max(a, 0), elementwise (NaN stays NaN); in place when ``out`` is None or a.
    a and out: the same shape, any strides (fastest when contiguous, or when the last axis
    is, like a band of a convolution's output). Returns out."""
    xp = get_array_module(a)
    out = a if out is None else out
    if xp is not np or a.size == 0:
        return xp.maximum(a, 0, out=out)
    if a.ndim > 2 and not (a.flags.c_contiguous and out.flags.c_contiguous):
        for a_k, out_k in zip(a, out):  # the first axis (samples): a few
            relu(a_k, out_k)
        return out
    if a.flags.c_contiguous and out.flags.c_contiguous:
        rows, out_rows = a.reshape(1, -1), out.reshape(1, -1)
    else:
        rows, out_rows = a.reshape(-1, a.shape[-1]), out.reshape(-1, out.shape[-1])  # 2-D: views
    key = (a.dtype.str, threading.get_ident())
    zeros = _ZEROS.get(key)
    if zeros is None:
        zeros = _ZEROS[key] = np.zeros(RELU_PIECE, dtype=a.dtype)
    R, L = rows.shape
    step = max(1, RELU_PIECE // L)  # rows per piece; a long row goes in pieces of columns
    for r in range(0, R, step):
        for c in range(0, L, RELU_PIECE):
            piece, into = rows[r:r + step, c:c + RELU_PIECE], out_rows[r:r + step, c:c + RELU_PIECE]
            np.maximum(piece, zeros[:piece.size].reshape(piece.shape), out=into)
    return out


def relu_forward(x):
    """out = max(x, 0)."""
    check_floating(x)
    xp = get_array_module(x)
    out = xp.empty_like(x)
    threads.split_flat(relu, x, out)
    cache = {"out": out}  # out > 0 is the mask; out is alive in the next layer anyway
    return out, cache


def relu_backward(dout, cache):
    """dx = dout where out > 0, else 0."""
    xp, out = get_array_module(dout), cache["out"]
    dx = xp.empty(dout.shape, dtype=dout.dtype)
    threads.split_flat(lambda d, o, r: xp.multiply(d, o > 0, out=r), dout, out, dx)
    return dx


# LeakyReLU ----------------------------------------------------------------------------
def leaky_relu_forward(x, alpha=0.2):
    """out = x if x > 0 else alpha * x, with 0 <= alpha (Keras default 0.3, paper B uses 0.2)."""
    check_floating(x)
    if not alpha >= 0:
        raise ValueError(f"leaky ReLU alpha={alpha}: use alpha >= 0")
    xp = get_array_module(x)
    out = x * alpha
    # max(x, alpha x) for alpha <= 1, min otherwise: two passes, where() is several times slower
    (xp.maximum if alpha <= 1 else xp.minimum)(x, out, out=out)
    cache = {"out": out, "alpha": alpha}  # alpha >= 0 keeps the sign, so out > 0 is the mask
    return out, cache


def leaky_relu_backward(dout, cache):
    """dx = dout where out > 0, else alpha * dout; as dout * (alpha + (1 - alpha) [out > 0])."""
    alpha = cache["alpha"]
    dx = (cache["out"] > 0).astype(dout.dtype)
    dx *= 1 - alpha
    dx += alpha
    dx *= dout
    return dx


# sigmoid ------------------------------------------------------------------------------
def sigmoid(x):
    """1 / (1 + exp(-x)) = exp(min(x, 0)) / (1 + exp(-|x|)): neither exp can overflow, and
    both branches keep full relative precision (1 / (1 + exp(-x)) would overflow for
    x << 0; 0.5 (1 + tanh(x / 2)) loses the tiny values)."""
    xp = get_array_module(x)
    out = xp.exp(xp.minimum(x, 0))
    den = xp.exp(-xp.abs(x))
    den += 1
    out /= den
    return out


def sigmoid_forward(x):
    check_floating(x)
    out = sigmoid(x)
    cache = {"out": out}  # sigma'(x) = out * (1 - out) needs only the output
    return out, cache


def sigmoid_backward(dout, cache):
    """dx = dout * out * (1 - out)."""
    out = cache["out"]
    return dout * out * (1 - out)


# classes ------------------------------------------------------------------------------
class ReLU(Layer):
    def forward(self, x):
        out, self.cache = relu_forward(x)
        return out

    def backward(self, dout):
        return relu_backward(dout, last_cache(self))


class LeakyReLU(Layer):
    def __init__(self, alpha=0.2):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        out, self.cache = leaky_relu_forward(x, self.alpha)
        return out

    def backward(self, dout):
        return leaky_relu_backward(dout, last_cache(self))

    def __repr__(self):
        return f"LeakyReLU(alpha={self.alpha})"


class Sigmoid(Layer):
    def forward(self, x):
        out, self.cache = sigmoid_forward(x)
        return out

    def backward(self, dout):
        return sigmoid_backward(dout, last_cache(self))
