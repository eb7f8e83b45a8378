"""Reference activations, element by element. Vectorised: ../activation.py.

    relu:       out = max(x, 0)              dx = dout * [x > 0]
    leaky relu: out = x if x > 0 else a x    dx = dout * (1 if x > 0 else a)
    sigmoid:    out = 1 / (1 + exp(-x))      dx = dout * out * (1 - out)
"""
from ...backend import get_array_module


def relu_forward(x):
    """x: any shape -> (out, cache)."""
    xp = get_array_module(x)
    return xp.maximum(x, 0), {"x": x}


def relu_backward(dout, cache):
    return dout * (cache["x"] > 0)


def leaky_relu_forward(x, alpha=0.2):
    xp = get_array_module(x)
    return xp.where(x > 0, x, alpha * x), {"x": x, "alpha": alpha}


def leaky_relu_backward(dout, cache):
    xp = get_array_module(dout)
    return dout * xp.where(cache["x"] > 0, 1.0, cache["alpha"])


def sigmoid_forward(x):
    """1 / (1 + exp(-x)) as written; exp overflows to inf for x < -709 in float64, which still
    gives out = 0 (the fast version avoids the overflow warning)."""
    xp = get_array_module(x)
    out = 1 / (1 + xp.exp(-x))
    return out, {"out": out}


def sigmoid_backward(dout, cache):
    out = cache["out"]
    return dout * out * (1 - out)
