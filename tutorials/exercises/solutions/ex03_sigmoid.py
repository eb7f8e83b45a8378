"""Exercise 3 (solution): the sigmoid, forward and backward.

    out = s(x) = 1 / (1 + exp(-x))        x, out: any shape
"""
import numpy as np


def sigmoid_forward(x):
    """x: any shape -> (out, cache); out = 1 / (1 + exp(-x)), the shape of x."""
    out = 1 / (1 + np.exp(-x))
    cache = out  # s'(x) = s (1 - s): the output is all backward needs
    return out, cache


def sigmoid_backward(dout, cache):
    """dout: the shape of x -> dx: the shape of x."""
    s = cache
    return dout * s * (1 - s)
