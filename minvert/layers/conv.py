"""2-D convolution (cross-correlation, as in every deep-learning library), NCHW.

    x: (N, C, H, W)   w: (F, C, KH, KW)   b: (F,)   out: (N, F, H_out, W_out)
    H_out = (H + top + bottom - KH) // SH + 1,   W_out = (W + left + right - KW) // SW + 1
    out[n, f, oh, ow] = b[f] + sum_{c,i,j} w[f, c, i, j] * x_pad[n, c, SH*oh + i, SW*ow + j]

Reference: minvert/layers/reference/conv.py (a loop over output pixels; read it first).
This file removes that loop with im2col: ``cols`` (C*KH*KW, H_out*W_out) holds in column p = (oh, ow) the input window under
output pixel p, so a sample's output is ONE matrix product ``w2d (F, C*KH*KW) @ cols``,
already in (F, H_out, W_out) order. ``cols`` is one copy out of a strided *view* of the
padded input (no loop over pixels, no fancy indexing; the same code on NumPy and CuPy).

Backward (derivation in docs/layers.md, section 1), one sample, sums also over n:

    out2d = w2d @ cols + b                                   (F, H_out*W_out)
    dw2d  = dout2d @ cols^T       out is linear in w2d with coefficient cols
    db[f] = sum_{n,oh,ow} dout[n, f, oh, ow]
    dcols = w2d^T @ dout2d        back through the product, then col2im: each x_pad[c, y, z]
                                  was copied into cols once per (i, j, oh, ow) with
                                  SH*oh + i = y and SW*ow + j = z, so its gradient is the
                                  sum of those dcols entries: for each offset (i, j) add the
                                  plane dcols[(c, i, j), :] into dx_pad[c, i::SH, j::SW]
    dx    = dx_pad without its border (the padding is a constant)

The layer runs the fast engine (layers/fast/conv.py: chunked, Winograd) when it is on; that
computes the same function and is tested equal to this one.
"""
import numpy as np

from ..backend import get_array_module
from . import fast
from .base import Layer, init_weight, last_cache
from .geometry import check_conv_dout, conv_geometry, normalize_pair, same_padding  # noqa: F401


def im2col(x_pad, KH, KW, SH, SW):
    """x_pad (N, C, H_pad, W_pad) -> cols (N, C*KH*KW, H_out*W_out):

        cols[n, (c, i, j), (oh, ow)] = x_pad[n, c, SH*oh + i, SW*ow + j]
    """
    xp = get_array_module(x_pad)
    N, C = x_pad.shape[:2]
    windows = xp.lib.stride_tricks.sliding_window_view(x_pad, (KH, KW), axis=(2, 3))
    windows = windows[:, :, ::SH, ::SW]  # (N, C, H_out, W_out, KH, KW), a view: no copy yet
    H_out, W_out = windows.shape[2:4]
    cols = windows.transpose(0, 1, 4, 5, 2, 3)  # (N, C, KH, KW, H_out, W_out), still a view
    return cols.reshape(N, C * KH * KW, H_out * W_out)  # the one copy


def col2im(dcols, x_pad_shape, KH, KW, SH, SW, H_out, W_out):
    """The transpose of im2col: dcols (N, C*KH*KW, H_out*W_out) -> dx_pad (x_pad_shape),
    every entry added back where it was copied from (windows overlap: +=)."""
    xp = get_array_module(dcols)
    N, C = x_pad_shape[:2]
    dcols = dcols.reshape(N, C, KH, KW, H_out, W_out)
    dx_pad = xp.zeros(x_pad_shape, dtype=dcols.dtype)
    for i in range(KH):
        for j in range(KW):
            dx_pad[:, :, i:i + SH * (H_out - 1) + 1:SH, j:j + SW * (W_out - 1) + 1:SW] += \
                dcols[:, :, i, j]  # (N, C, H_out, W_out)
    return dx_pad


def _pad(x, pad):
    top, bottom, left, right = pad
    return get_array_module(x).pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))


def conv2d_forward(x, w, b=None, stride=1, pad=0):
    """x: (N, C, H, W), w: (F, C, KH, KW), b: (F,) or None -> (out (N, F, H_out, W_out), cache).

    stride: int or (SH, SW). pad: int, (top, bottom, left, right) (TensorFlow 'same' for
    even kernels is asymmetric, see :func:`same_padding`), or "same" / "valid".
    """
    (SH, SW), pad, (H_out, W_out) = conv_geometry(x, w, b, stride, pad)
    N, F, KH, KW = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
    cols = im2col(_pad(x, pad), KH, KW, SH, SW)  # (N, C*KH*KW, H_out*W_out)
    out = w.reshape(F, -1) @ cols  # (N, F, H_out*W_out): one product per sample
    if b is not None:
        out += b.reshape(F, 1)
    # backward rebuilds cols from x: keeping it would cost KH*KW times the memory of x
    cache = {"x": x, "w": w, "stride": (SH, SW), "pad": pad, "has_b": b is not None}
    return out.reshape(N, F, H_out, W_out), cache


def conv2d_backward(dout, cache, need_dx=True, need_dw=True):
    """dout: (N, F, H_out, W_out) -> (dx (N, C, H, W), dw (F, C, KH, KW), db (F,)).

    None where not requested (need_dx / need_dw False; db also None without bias).
    """
    check_conv_dout(dout, cache)
    x, w, (SH, SW), pad = cache["x"], cache["w"], cache["stride"], cache["pad"]
    (N, C, H, W), (F, _, KH, KW), (H_out, W_out) = x.shape, w.shape, dout.shape[2:]
    dout2d = dout.astype(x.dtype, copy=False).reshape(N, F, H_out * W_out)
    dx = dw = db = None
    if need_dw:
        cols = im2col(_pad(x, pad), KH, KW, SH, SW)  # (N, C*KH*KW, H_out*W_out)
        dw = get_array_module(x).tensordot(dout2d, cols, axes=([0, 2], [0, 2]))  # sum_n dout cols^T
        dw = dw.reshape(w.shape)
        db = dout2d.sum(axis=(0, 2)) if cache["has_b"] else None
    if need_dx:
        dcols = w.reshape(F, -1).T @ dout2d  # (N, C*KH*KW, H_out*W_out)
        top, bottom, left, right = pad
        dx_pad = col2im(dcols, (N, C, H + top + bottom, W + left + right), KH, KW, SH, SW,
                        H_out, W_out)
        dx = dx_pad[:, :, top:top + H, left:left + W]  # (N, C, H, W)
    return dx, dw, db


class Conv2D(Layer):
    """params "w" (out_channels, in_channels, KH, KW) and "b" (out_channels,) when bias.

    pad: int, (top, bottom, left, right), "same" (TensorFlow rule, resolved for each
    input size) or "valid". init: "he" (normal, std sqrt(2 / fan_in)) or "glorot"
    (uniform, limit sqrt(6 / (fan_in + fan_out))), fan = channels * KH * KW; biases zero.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, pad=0, bias=True,
                 init="he", rng=None, dtype=np.float32):
        super().__init__()
        KH, KW = normalize_pair(kernel_size, "kernel_size")
        self.stride, self.pad = normalize_pair(stride, "stride"), pad
        self.params["w"] = init_weight((out_channels, in_channels, KH, KW), in_channels * KH * KW,
                                       out_channels * KH * KW, init, rng, dtype)
        if bias:
            self.params["b"] = np.zeros(out_channels, dtype=dtype)

    def forward(self, x):
        w, b = self.params["w"], self.params.get("b")
        if fast.enabled():  # the same function, faster (layers/fast/); off: MINVERT_FAST=0
            out, self.cache = fast.conv2d_forward(x, w, b, self.stride, self.pad,
                                                  self.winograd_cache())
        else:
            out, self.cache = conv2d_forward(x, w, b, self.stride, self.pad)
        return out

    def winograd_cache(self):
        """Where the fast engine keeps this layer's Winograd kernel transform while the layer
        is frozen (its weights are then constants: assign a new array to params["w"] to
        change them); None, and nothing kept, while it is trainable."""
        if self.trainable:
            self.__dict__.pop("_winograd", None)
            return None
        return self.__dict__.setdefault("_winograd", {})

    def backward(self, dout):
        cache = last_cache(self)
        backward = fast.conv2d_backward if cache.get("fast") else conv2d_backward  # fast path, as forward ran
        dx, dw, db = backward(dout, cache, self.need_dx, self.trainable)
        if self.trainable:
            self.grads["w"] = dw
            if db is not None:
                self.grads["b"] = db
        return dx
