"""Exercise 2: the backward pass of ReLU.

    out = max(x, 0)          x, out: any shape, e.g. (N, C, H, W)

The forward pass below is complete; keep it as it is. Write ``relu_backward`` and check it:

    minvert exercise check tutorials/exercises/ex02_relu.py

(or ``python tutorials/exercises/ex02_relu.py``). The checker compares your gradient with a
numerical one on small random inputs and, when they differ, names the usual mistake.
"""
import numpy as np


def relu_forward(x):
    """x: any shape -> (out, cache); out = max(x, 0) has the shape of x."""
    out = np.maximum(x, 0)
    cache = x  # the sign of x decides where the gradient may flow
    return out, cache


def relu_backward(dout, cache):
    """dout: gradient of the loss w.r.t. out, shape of x -> dx: gradient w.r.t. x, same shape.

    The chain rule, element by element: dx = dout * (d out / d x).

    Hints:
    * out = x where x > 0 and out = 0 where x < 0. What is d out / d x on each side?
      (At x = 0 exactly, take 0 like PyTorch; the checker stays away from it.)
    * One line of NumPy is enough: a boolean array times a float array gives floats.
    """
    raise NotImplementedError("write relu_backward")


if __name__ == "__main__":  # `python ex02_relu.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
