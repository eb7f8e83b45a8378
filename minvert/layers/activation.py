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
the output, alive in the next layer anyway, instead of x), speed (leaky ReLU as max(x, alpha x),
not where()) and a sigmoid that never overflows. With the fast engine on, ReLU's forward
runs fast.relu_forward (the same values, computed against a buffer of zeros).
"""
from ..backend import get_array_module
from . import fast
from .base import Layer, check_floating, last_cache

# ReLU ---------------------------------------------------------------------------------
def relu_forward(x):
    """out = max(x, 0)."""
    check_floating(x)
    out = get_array_module(x).maximum(x, 0)
    cache = {"out": out}  # out > 0 is the mask; out is alive in the next layer anyway
    return out, cache


def relu_backward(dout, cache):
    """dx = dout where out > 0, else 0."""
    return dout * (cache["out"] > 0)


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
        if fast.enabled():  # the same values, faster on the CPU (layers/fast/elementwise.py)
            out, self.cache = fast.relu_forward(x)
        else:
            out, self.cache = relu_forward(x)
        return out

    def backward(self, dout):
        cache = last_cache(self)
        backward = fast.relu_backward if cache.get("fast") else relu_backward  # fast path, as forward ran
        return backward(dout, cache)


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
