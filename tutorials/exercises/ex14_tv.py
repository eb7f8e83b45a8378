"""Exercise 14: the total-variation loss of paper 000 (absolute differences).

    loss = sum |x[..., :, 1:] - x[..., :, :-1]| + sum |x[..., 1:, :] - x[..., :-1, :]|

The forward pass below is complete; keep it as it is. Write ``tv_backward`` and check it:

    minvert exercise check tutorials/exercises/ex14_tv.py

(or ``python tutorials/exercises/ex14_tv.py``). The checker compares your gradient with a
numerical one on small random inputs and, when they differ, names the usual mistake.
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
    """dloss: a number -> dx: (N, C, H, W).

    Hints:
    * d|d| / dd = sign(d) (np.sign; the checker keeps every difference away from 0).
    * A difference d = x[.., w+1] - x[.., w] involves two pixels: +sign(d) goes to the right
      one, -sign(d) to the left one. Slices do it without loops:
      dx[:, :, :, 1:] += ...   and   dx[:, :, :, :-1] -= ...
    * The same for the vertical differences; then multiply by dloss.
    """
    raise NotImplementedError("write tv_backward")


if __name__ == "__main__":  # `python ex14_tv.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
