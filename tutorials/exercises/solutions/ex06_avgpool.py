"""Exercise 6 (solution): average pooling, forward and backward.

    out[n, c, oh, ow] = mean of x[n, c, oh*stride : oh*stride+size, ow*stride : ow*stride+size]
"""
import numpy as np


def avgpool_forward(x, size=2, stride=2):
    """x: (N, C, H, W) -> (out (N, C, H_out, W_out), cache).

    H_out = (H - size) // stride + 1,  W_out = (W - size) // stride + 1.
    """
    N, C, H, W = x.shape
    H_out, W_out = (H - size) // stride + 1, (W - size) // stride + 1
    out = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    for oh in range(H_out):
        for ow in range(W_out):
            window = x[:, :, oh * stride:oh * stride + size, ow * stride:ow * stride + size]
            out[:, :, oh, ow] = window.mean(axis=(2, 3))
    cache = (x.shape, size, stride)  # a linear map: backward needs only the sizes
    return out, cache


def avgpool_backward(dout, cache):
    """dout: (N, C, H_out, W_out) -> dx: (N, C, H, W)."""
    shape, size, stride = cache
    dx = np.zeros(shape, dtype=dout.dtype)
    for oh in range(dout.shape[2]):
        for ow in range(dout.shape[3]):
            share = dout[:, :, oh, ow][:, :, None, None] / (size * size)  # (N, C, 1, 1)
            # += : overlapping windows both send a share to the elements they have in common
            dx[:, :, oh * stride:oh * stride + size, ow * stride:ow * stride + size] += share
    return dx


if __name__ == "__main__":  # `python solutions/ex06_avgpool.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
