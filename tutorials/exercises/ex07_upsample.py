"""Exercise 7: nearest-neighbour upsampling, forward and backward.

    out[n, c, h, w] = x[n, c, h // factor, w // factor]      out: (N, C, H*factor, W*factor)

Write the functions that raise NotImplementedError, then check them:

    minvert exercise check tutorials/exercises/ex07_upsample.py

(or ``python tutorials/exercises/ex07_upsample.py``). The checker runs them on random inputs,
new every run, and names the usual mistake when something is off.
"""
import numpy as np


def upsample_forward(x, factor=2):
    """x: (N, C, H, W) -> (out (N, C, H*factor, W*factor), cache).

    Hint: every pixel becomes a factor x factor block (np.repeat, not np.tile).
    """
    raise NotImplementedError("write upsample_forward")


def upsample_backward(dout, cache):
    """dout: (N, C, H*factor, W*factor) -> dx: (N, C, H, W).

    Hint: one x[h, w] feeds factor * factor outputs; a reshape to
    (N, C, H, factor, W, factor) puts each block on its own axes.
    """
    raise NotImplementedError("write upsample_backward")


if __name__ == "__main__":  # `python ex07_upsample.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
