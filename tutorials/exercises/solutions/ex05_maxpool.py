"""Exercise 5 (solution): the backward pass of max pooling.

    out[n, c, oh, ow] = max of x[n, c, oh*stride : oh*stride+size, ow*stride : ow*stride+size]
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
    """dout: (N, C, H_out, W_out) -> dx: (N, C, H, W)."""
    x, size, stride = cache
    N, C, H, W = x.shape
    H_out, W_out = dout.shape[2:]
    dx = np.zeros_like(x)  # elements that win no window get no gradient
    for oh in range(H_out):
        for ow in range(W_out):
            rows = slice(oh * stride, oh * stride + size)
            cols = slice(ow * stride, ow * stride + size)
            window = x[:, :, rows, cols].reshape(N, C, size * size)
            winner = window.argmax(axis=2)  # (N, C): where the max sits, as i * size + j
            mask = (np.arange(size * size) == winner[:, :, None]).reshape(N, C, size, size)
            # += not =: when windows overlap, one element can win two of them
            dx[:, :, rows, cols] += mask * dout[:, :, oh, ow][:, :, None, None]
    return dx


if __name__ == "__main__":  # `python solutions/ex05_maxpool.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
