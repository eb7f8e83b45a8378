"""Exercise 9: the convolution of exercise 8 without loops over output pixels:
im2col turns every patch into a column, and both passes become matrix products.

    cols[(c, i, j), (n, oh, ow)] = x_pad[n, c, oh*stride + i, ow*stride + j]
    out = w.reshape(F, C*KH*KW) @ cols + b              then reshaped to (N, F, H_out, W_out)

im2col and col2im are checked on their own first (every value against the line above, and
col2im as im2col's adjoint), then the convolution.

Write the functions that raise NotImplementedError, then check them:

    minvert exercise check tutorials/exercises/ex09_im2col_conv.py

(or ``python tutorials/exercises/ex09_im2col_conv.py``). The checker runs them on random inputs,
new every run, and names the usual mistake when something is off.
"""
import numpy as np


def im2col(x_pad, KH, KW, stride, H_out, W_out):
    """x_pad: (N, C, Hp, Wp) -> cols: (C*KH*KW, N*H_out*W_out).

    Hint: loop over the KH * KW kernel offsets (i, j), not over output pixels: each
    offset is one strided slice of x_pad.
    """
    raise NotImplementedError("write im2col")


def col2im(dcols, x_pad_shape, KH, KW, stride, H_out, W_out):
    """dcols: (C*KH*KW, N*H_out*W_out) -> dx_pad: x_pad_shape, overlapping patches summed.

    Hint: im2col backwards: the same slices, with += (patches overlap).
    """
    raise NotImplementedError("write col2im")


def im2col_conv_forward(x, w, b, stride=1, pad=0):
    """x: (N, C, H, W), w: (F, C, KH, KW), b: (F,) -> (out (N, F, H_out, W_out), cache).

    Hint: out = w.reshape(F, C*KH*KW) @ cols + b, then back to (N, F, H_out, W_out).
    """
    raise NotImplementedError("write im2col_conv_forward")


def im2col_conv_backward(dout, cache):
    """dout: (N, F, H_out, W_out) -> (dx (N, C, H, W), dw (F, C, KH, KW), db (F,)).

    Hints: the forward was one matrix product: dw and dcols are the two products
    of its backward; col2im then scatters dcols onto x_pad; crop the padding.
    """
    raise NotImplementedError("write im2col_conv_backward")


if __name__ == "__main__":  # `python ex09_im2col_conv.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
