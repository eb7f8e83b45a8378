"""Exercise 9 (solution): the convolution of exercise 8 without loops over output pixels:
im2col turns every patch into a column, and both passes become matrix products.

    cols[(c, i, j), (n, oh, ow)] = x_pad[n, c, oh*stride + i, ow*stride + j]
    out = w.reshape(F, C*KH*KW) @ cols + b              then reshaped to (N, F, H_out, W_out)
"""
import numpy as np


def im2col(x_pad, KH, KW, stride, H_out, W_out):
    """x_pad: (N, C, Hp, Wp) -> cols: (C*KH*KW, N*H_out*W_out)."""
    N, C = x_pad.shape[:2]
    cols = np.empty((C, KH, KW, N, H_out, W_out), dtype=x_pad.dtype)
    for i in range(KH):  # one strided slice per kernel offset, not one per output pixel
        for j in range(KW):
            patch = x_pad[:, :, i:i + stride * H_out:stride, j:j + stride * W_out:stride]
            cols[:, i, j] = patch.transpose(1, 0, 2, 3)  # (C, N, H_out, W_out)
    return cols.reshape(C * KH * KW, N * H_out * W_out)


def col2im(dcols, x_pad_shape, KH, KW, stride, H_out, W_out):
    """dcols: (C*KH*KW, N*H_out*W_out) -> dx_pad: x_pad_shape, overlapping patches summed."""
    N, C = x_pad_shape[:2]
    d = dcols.reshape(C, KH, KW, N, H_out, W_out)
    dx_pad = np.zeros(x_pad_shape, dtype=dcols.dtype)
    for i in range(KH):
        for j in range(KW):
            dx_pad[:, :, i:i + stride * H_out:stride, j:j + stride * W_out:stride] += \
                d[:, i, j].transpose(1, 0, 2, 3)  # (N, C, H_out, W_out)
    return dx_pad


def im2col_conv_forward(x, w, b, stride=1, pad=0):
    """x: (N, C, H, W), w: (F, C, KH, KW), b: (F,) -> (out (N, F, H_out, W_out), cache)."""
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    H_out, W_out = (H + 2 * pad - KH) // stride + 1, (W + 2 * pad - KW) // stride + 1
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = im2col(x_pad, KH, KW, stride, H_out, W_out)
    out = w.reshape(F, -1) @ cols + b[:, None]  # (F, N*H_out*W_out)
    out = out.reshape(F, N, H_out, W_out).transpose(1, 0, 2, 3)  # (N, F, H_out, W_out)
    cache = (x.shape, x_pad.shape, cols, w, stride, pad)
    return out, cache


def im2col_conv_backward(dout, cache):
    """dout: (N, F, H_out, W_out) -> (dx (N, C, H, W), dw (F, C, KH, KW), db (F,))."""
    x_shape, x_pad_shape, cols, w, stride, pad = cache
    F, C, KH, KW = w.shape
    H, W = x_shape[2:]
    H_out, W_out = dout.shape[2:]
    d = dout.transpose(1, 0, 2, 3).reshape(F, -1)  # (F, N*H_out*W_out), the layout of out
    dw = (d @ cols.T).reshape(w.shape)  # out = w2d @ cols: dw2d = d cols^T
    dcols = w.reshape(F, -1).T @ d  # ... and dcols = w2d^T d
    dx_pad = col2im(dcols, x_pad_shape, KH, KW, stride, H_out, W_out)
    return dx_pad[:, :, pad:pad + H, pad:pad + W], dw, d.sum(axis=1)


if __name__ == "__main__":  # `python solutions/ex09_im2col_conv.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
