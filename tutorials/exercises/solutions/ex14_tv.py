"""Exercise 14 (solution): the total-variation loss of paper 000 (absolute differences).

    loss = sum |x[..., :, 1:] - x[..., :, :-1]| + sum |x[..., 1:, :] - x[..., :-1, :]|
"""
import numpy as np


def tv_forward(x):
    """x: (N, C, H, W) image -> (loss, cache); loss is a scalar."""
    dh = x[:, :, :, 1:] - x[:, :, :, :-1]  # (N, C, H, W-1): each pixel minus its left neighbour
    dv = x[:, :, 1:, :] - x[:, :, :-1, :]  # (N, C, H-1, W): each pixel minus the one above
    loss = np.abs(dh).sum() + np.abs(dv).sum()
    cache = (x.shape, dh, dv)  # only the signs of the differences matter
    return loss, cache


def tv_backward(dloss, cache):
    """dloss: scalar -> dx: (N, C, H, W)."""
    shape, dh, dv = cache
    gh, gv = dloss * np.sign(dh), dloss * np.sign(dv)  # d|d| / dd = sign(d)
    dx = np.zeros(shape, dtype=dh.dtype)
    # every difference touches two pixels: + for the right (lower) one, - for the left (upper)
    dx[:, :, :, 1:] += gh
    dx[:, :, :, :-1] -= gh
    dx[:, :, 1:, :] += gv
    dx[:, :, :-1, :] -= gv
    return dx


if __name__ == "__main__":  # `python solutions/ex14_tv.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
