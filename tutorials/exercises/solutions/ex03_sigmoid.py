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


if __name__ == "__main__":  # `python solutions/ex03_sigmoid.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
