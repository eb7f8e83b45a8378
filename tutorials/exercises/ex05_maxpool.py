"""Exercise 5: the backward pass of max pooling.

    out[n, c, oh, ow] = max of x[n, c, oh*stride : oh*stride+size, ow*stride : ow*stride+size]

The forward pass below is complete; keep it as it is. Write ``maxpool_backward`` and check it:

    minvert exercise check tutorials/exercises/ex05_maxpool.py

(or ``python tutorials/exercises/ex05_maxpool.py``). The checker compares your gradient with a
numerical one on small random inputs and, when they differ, names the usual mistake.
"""
import numpy as np


def maxpool_forward(x, size=2, stride=2):
    """x: (N, C, H, W) -> (out (N, C, H_out, W_out), cache), the max of each size x size window.

    H_out = (H - size) // stride + 1,  W_out = (W - size) // stride + 1
    (rows and columns that no whole window reaches are left out).
    """
    N, C, H, W = x.shape
    H_out, W_out = (H - size) // stride + 1, (W - size) // stride + 1
    out = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    for oh in range(H_out):
        for ow in range(W_out):
            window = x[:, :, oh * stride:oh * stride + size, ow * stride:ow * stride + size]
            out[:, :, oh, ow] = window.max(axis=(2, 3))
    cache = (x, size, stride)  # backward must find again where each window's max was
    return out, cache


def maxpool_backward(dout, cache):
    """dout: (N, C, H_out, W_out) -> dx: (N, C, H, W), the shape of x.

    Each output is the max of its window, so only the window's largest element affected it:
    that element receives dout[n, c, oh, ow], the others nothing from this window.

    Hints:
    * Walk the same loops over (oh, ow) as the forward. There,
      window.reshape(N, C, size * size).argmax(axis=2) says for every (n, c) where the max
      sits, as the number i * size + j.
    * A mask (np.arange(size * size) == index[:, :, None]), reshaped to (N, C, size, size),
      routes dout[:, :, oh, ow] to that element without a loop over n and c.
    * With stride < size the windows overlap, and one element can win two of them.
    * Rows and columns that no window reaches get no gradient: start from np.zeros_like(x).
    """
    raise NotImplementedError("write maxpool_backward")


if __name__ == "__main__":  # `python ex05_maxpool.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
