"""Exercise 6: average pooling, forward and backward.

    out[n, c, oh, ow] = mean of x[n, c, oh*stride : oh*stride+size, ow*stride : ow*stride+size]

Write the functions that raise NotImplementedError, then check them:

    minvert exercise check tutorials/exercises/ex06_avgpool.py

(or ``python tutorials/exercises/ex06_avgpool.py``). The checker runs them on random inputs,
new every run, and names the usual mistake when something is off.
"""
import numpy as np


def avgpool_forward(x, size=2, stride=2):
    """x: (N, C, H, W) -> (out (N, C, H_out, W_out), cache).

    H_out = (H - size) // stride + 1,  W_out = (W - size) // stride + 1.

    Hint: the loops of exercise 5's max-pool forward, with a mean.
    """
    raise NotImplementedError("write avgpool_forward")


def avgpool_backward(dout, cache):
    """dout: (N, C, H_out, W_out) -> dx: (N, C, H, W).

    Hints: every element of a window had the same weight in its mean. Windows may
    overlap (stride < size) or leave gaps (stride > size); rows no window reaches get nothing.
    """
    raise NotImplementedError("write avgpool_backward")


if __name__ == "__main__":  # `python ex06_avgpool.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
