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


if __name__ == "__main__":  # `python solutions/ex01_dense.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
