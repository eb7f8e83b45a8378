"""Exercise 1 (solution): a dense (fully connected) layer, forward and backward.

    out[n, o] = b[o] + sum_i x[n, i] * w[o, i]        x (N, in), w (out, in), b (out,)
"""
import numpy as np


def dense_forward(x, w, b):
    """x: (N, in), w: (out, in), b: (out,) -> (out (N, out), cache)."""
    out = x @ w.T + b
    cache = (x, w)  # dw needs x, dx needs w
    return out, cache


def dense_backward(dout, cache):
    """dout: (N, out) -> (dx (N, in), dw (out, in), db (out,))."""
    x, w = cache
    dx = dout @ w  # out[n, o] uses x[n, i] through w[o, i]: sum over o
    dw = dout.T @ x  # ... and w[o, i] through x[n, i]: sum over the batch n
    db = dout.sum(axis=0)  # b[o] is added to every row
    return dx, dw, db
