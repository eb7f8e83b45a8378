"""Exercise 8 (solution): the backward pass of a 2-D convolution.

    out[n, f, oh, ow] = b[f] + sum_{c, i, j} w[f, c, i, j] * x_pad[n, c, oh*stride + i, ow*stride + j]
"""
import numpy as np


def conv_forward(x, w, b, stride=1, pad=0):
    """x: (N, C, H, W), w: (F, C, KH, KW), b: (F,) -> (out (N, F, H_out, W_out), cache).

    x_pad is x with ``pad`` zeros on every side;
    H_out = (H + 2*pad - KH) // stride + 1,  W_out = (W + 2*pad - KW) // stride + 1.
    """
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    H_out = (H + 2 * pad - KH) // stride + 1
    W_out = (W + 2 * pad - KW) // stride + 1
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.empty((N, F, H_out, W_out), dtype=x.dtype)
    for oh in range(H_out):
        for ow in range(W_out):
            patch = x_pad[:, :, oh * stride:oh * stride + KH, ow * stride:ow * stride + KW]
            # (N, C, KH, KW) against (F, C, KH, KW), summed over C, KH, KW -> (N, F)
            out[:, :, oh, ow] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    cache = (x, w, stride, pad)  # backward re-cuts the patches of x and needs w
    return out, cache


def conv_backward(dout, cache):
    """dout: (N, F, H_out, W_out) -> (dx (N, C, H, W), dw (F, C, KH, KW), db (F,))."""
    x, w, stride, pad = cache
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    H_out, W_out = dout.shape[2:]
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))  # b[f] was added to every output pixel of filter f
    for oh in range(H_out):
        for ow in range(W_out):
            rows = slice(oh * stride, oh * stride + KH)
            cols = slice(ow * stride, ow * stride + KW)
            g = dout[:, :, oh, ow]  # (N, F): the gradient of this output pixel
            # out = patch . w, so d patch = g . w (sum over F) and d w = g . patch (sum over N)
            dx_pad[:, :, rows, cols] += np.tensordot(g, w, axes=(1, 0))  # (N, C, KH, KW)
            dw += np.tensordot(g, x_pad[:, :, rows, cols], axes=(0, 0))  # (F, C, KH, KW)
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]  # the padding was not an input: drop its gradient
    return dx, dw, db


if __name__ == "__main__":  # `python solutions/ex08_conv.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
