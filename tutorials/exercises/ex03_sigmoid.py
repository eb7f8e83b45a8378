"""Exercise 3: the sigmoid, forward and backward.

    out = s(x) = 1 / (1 + exp(-x))        x, out: any shape

Write the functions that raise NotImplementedError, then check them:

    minvert exercise check tutorials/exercises/ex03_sigmoid.py

(or ``python tutorials/exercises/ex03_sigmoid.py``). The checker runs them on random inputs,
new every run, and names the usual mistake when something is off.
"""
import numpy as np


def sigmoid_forward(x):
    """x: any shape -> (out, cache); out = 1 / (1 + exp(-x)), the shape of x.

    Hint: decide what backward needs and put that in the cache.
    """
    raise NotImplementedError("write sigmoid_forward")


def sigmoid_backward(dout, cache):
    """dout: the shape of x -> dx: the shape of x.

    Hint: differentiate 1 / (1 + exp(-x)) and write the result in terms of s itself.
    """
    raise NotImplementedError("write sigmoid_backward")


if __name__ == "__main__":  # `python ex03_sigmoid.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
