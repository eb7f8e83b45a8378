"""Exercise 12 (solution): paper 000's content loss at one layer.

    loss = 1/2 sum (F - P)^2        F: features of the image, P: of the original, (1, C, H, W)
"""
import numpy as np


def content_forward(F, P):
    """F, P: (1, C, H, W) -> (loss, cache); loss is a scalar."""
    diff = F - P
    loss = 0.5 * (diff ** 2).sum()
    cache = diff  # the loss is a function of F - P alone
    return loss, cache


def content_backward(dloss, cache):
    """dloss: scalar -> dF: (1, C, H, W)."""
    diff = cache
    return dloss * diff  # d (d^2 / 2) / d d = d


if __name__ == "__main__":  # `python solutions/ex12_content.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
