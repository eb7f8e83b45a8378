"""Exercise 12: paper 000's content loss at one layer.

    loss = 1/2 sum (F - P)^2        F: features of the image, P: of the original, (1, C, H, W)

Write the functions that raise NotImplementedError, then check them:

    minvert exercise check tutorials/exercises/ex12_content.py

(or ``python tutorials/exercises/ex12_content.py``). The checker runs them on random inputs,
new every run, and names the usual mistake when something is off.
"""
import numpy as np


def content_forward(F, P):
    """F, P: (1, C, H, W) -> (loss, cache); loss is a scalar."""
    diff = F - P
    loss = 0.5 * (diff ** 2).sum()
    cache = diff  # the loss is a function of F - P alone
    return loss, cache


def content_backward(dloss, cache):
    """dloss: scalar -> dF: (1, C, H, W).

    Hint: differentiate 1/2 d^2 with d = F - P; multiply by dloss.
    """
    raise NotImplementedError("write content_backward")


if __name__ == "__main__":  # `python ex12_content.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
