"""Exercise 1: a dense (fully connected) layer, forward and backward.

    out[n, o] = b[o] + sum_i x[n, i] * w[o, i]        x (N, in), w (out, in), b (out,)

Write the functions that raise NotImplementedError, then check them:

    minvert exercise check tutorials/exercises/ex01_dense.py

(or ``python tutorials/exercises/ex01_dense.py``). The checker runs them on random inputs,
new every run, and names the usual mistake when something is off.
"""
import numpy as np


def dense_forward(x, w, b):
    """x: (N, in), w: (out, in), b: (out,) -> (out (N, out), cache).

    Hint: one matrix product; mind the layout of w, (out, in).
    """
    raise NotImplementedError("write dense_forward")


def dense_backward(dout, cache):
    """dout: (N, out) -> (dx (N, in), dw (out, in), db (out,)).

    Hints: write out[n, o] for N = 1 and two features by hand; each
    gradient has the shape of what it belongs to (dx like x, dw like w, db like b).
    """
    raise NotImplementedError("write dense_backward")


if __name__ == "__main__":  # `python ex01_dense.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
