"""Pooling: max, average and global average, NCHW.

Windows of KH x KW with stride (SH, SW) on the input padded by (top, bottom, left, right):

    H_out = 1 + (H + top + bottom - KH) // SH
    W_out = 1 + (W + left + right - KW) // SW

(floor: rows/columns a window would only partly cover at the bottom/right are not pooled,
as in PyTorch and Keras 'valid'). Each padding must be smaller than the kernel, so every
window holds at least one real element.

Max and average pooling are a loop over the KH*KW kernel offsets (i, j): the slice
``x_pad[:, :, i::SH, j::SW]`` (cut to H_out x W_out) holds element (i, j) of every window
at once. Forward combines those slices (max-pool separably, see below); backward writes
the gradient back through them with strided ``+=`` (plain assignment when windows do not
overlap). No fancy-index scatter, the same code on NumPy and CuPy.

Max-pool padding counts as -inf, so it never wins a window (PyTorch semantics; Keras pads
post-ReLU inputs with zeros, which gives the same result). Ties: the gradient goes to
exactly ONE element per window, the FIRST maximum in row-major window order (smallest i,
then smallest j), like ``numpy.argmax`` and PyTorch's CPU kernel.

Average-pool padding counts as zeros; by default they count in the divisor
(``count_include_pad=True``, PyTorch's default, divisor KH*KW everywhere). With
``count_include_pad=False`` the divisor is the number of real elements in each window
(Keras' padding='same' behaviour).

Reference: minvert/layers/reference/pool.py (a loop over the H_out*W_out windows).
"""
import numpy as np

from ..backend import get_array_module
from ..errors import ShapeError
from . import fast
from .base import Layer, check_floating, check_rank, last_cache
from .geometry import normalize_pad, normalize_pair


def _geometry(x, kernel, stride, pad, what):
    """Validate x and the settings; return a dict of every size backward needs."""
    check_floating(x)
    check_rank(x, 4, "(N, C, H, W)")
    KH, KW = normalize_pair(kernel, "kernel")
    SH, SW = (KH, KW) if stride is None else normalize_pair(stride, "stride")
    top, bottom, left, right = normalize_pad(pad)
    N, C, H, W = x.shape
    H_pad, W_pad = H + top + bottom, W + left + right
    if KH > H_pad or KW > W_pad:
        raise ShapeError(f"{what} kernel {KH}x{KW} is larger than the padded input "
                         f"{H_pad}x{W_pad} (input {H}x{W}): use a smaller kernel or a larger image")
    if max(top, bottom) >= KH or max(left, right) >= KW:
        raise ShapeError(f"{what} padding {(top, bottom, left, right)} must be smaller than the "
                         f"kernel {KH}x{KW} on every side, or whole windows would be padding")
    H_out, W_out = 1 + (H_pad - KH) // SH, 1 + (W_pad - KW) // SW
    return dict(x_shape=x.shape, kernel=(KH, KW), stride=(SH, SW), pad=(top, bottom, left, right),
                padded=(H_pad, W_pad), out=(H_out, W_out), overlap=SH < KH or SW < KW)


def _pad(x, geom, fill):
    """x placed inside a (N, C, H_pad, W_pad) array filled with ``fill``; x itself if no pad."""
    top, bottom, left, right = geom["pad"]
    if not (top or bottom or left or right):
        return x
    xp = get_array_module(x)
    N, C, H, W = x.shape
    x_pad = xp.full((N, C) + geom["padded"], fill, dtype=x.dtype)
    x_pad[:, :, top:top + H, left:left + W] = x
    return x_pad


def _windows(a, geom):
    """Yield (k, slice of ``a``) for the KH*KW kernel offsets (k = i*KW + j, row-major);
    each slice is (N, C, H_out, W_out)."""
    (KH, KW), (SH, SW), (H_out, W_out) = geom["kernel"], geom["stride"], geom["out"]
    for i in range(KH):
        for j in range(KW):
            yield i * KW + j, a[:, :, i:i + SH * (H_out - 1) + 1:SH, j:j + SW * (W_out - 1) + 1:SW]


def _grad_buffer(dout, geom):
    """(N, C, H_pad, W_pad) buffer for dx; uninitialised only if the windows tile it exactly."""
    xp = get_array_module(dout)
    (KH, KW), (SH, SW), (H_out, W_out) = geom["kernel"], geom["stride"], geom["out"]
    shape = geom["x_shape"][:2] + geom["padded"]
    exact = (SH, SW) == (KH, KW) and geom["padded"] == (H_out * SH, W_out * SW)
    return (xp.empty if exact else xp.zeros)(shape, dtype=dout.dtype)


def _unpad(dx_pad, geom):
    """dx_pad without the padding (whose gradient is dropped)."""
    top, _, left, _ = geom["pad"]
    H, W = geom["x_shape"][2:]
    if dx_pad.shape[2:] == (H, W):
        return dx_pad
    xp = get_array_module(dx_pad)
    return xp.ascontiguousarray(dx_pad[:, :, top:top + H, left:left + W])


# max pooling ---------------------------------------------------------------------------
# The max over a KH x KW window is the max over KH rows of the max over KW columns, so the
# forward pass runs as two 1-D passes: along the rows of x (KW slices) to hmax
# (N, C, H, W_out), then down the columns of hmax (KH slices of whole rows) to out:
# KH + KW slice operations instead of KH * KW. Padding (-inf, which never wins) is never
# built: each slice covers only the windows in which its element is a real one.
def _line_max(a, axis, K, S, before, n_out):
    """Max over 1-D windows along ``axis`` (2: rows, 3: columns) of ``a`` padded by
    ``before`` -inf elements in front: window o covers padded elements S*o .. S*o + K - 1,
    i.e. a[S*o - before + k] for k < K; n_out windows."""
    xp = get_array_module(a)
    parts = []  # (windows first:last, the slice of a holding their element k)
    for k in range(K):
        first = max(0, -(-(before - k) // S))  # first window whose element k is real
        last = min(n_out, (a.shape[axis] - 1 - k + before) // S + 1)  # one past the last
        start = S * first - before + k
        index = [slice(None)] * 4
        index[axis] = slice(start, start + S * (last - first - 1) + 1, S)
        if first < last:
            parts.append((first, last, a[tuple(index)]))
    full = [i for i, (first, last, _) in enumerate(parts) if (first, last) == (0, n_out)]
    if full:  # an element real in every window: start from it
        out = parts.pop(full[0])[2].copy()
    else:  # windows that some element misses start at -inf
        shape = list(a.shape)
        shape[axis] = n_out
        out = xp.full(tuple(shape), -np.inf, dtype=a.dtype)
    for first, last, part in parts:
        index = [slice(None)] * 4
        index[axis] = slice(first, last)
        view = out[tuple(index)]
        xp.maximum(view, part, out=view)
    return out


def maxpool2d_forward(x, kernel, stride=None, pad=0):
    """x: (N, C, H, W); kernel, stride (default = kernel): int or (h, w); pad: int or
    (top, bottom, left, right), padded with -inf -> (out (N, C, H_out, W_out), cache)."""
    geom = _geometry(x, kernel, stride, pad, "max-pool")
    (KH, KW), (SH, SW), (H_out, W_out) = geom["kernel"], geom["stride"], geom["out"]
    top, _, left, _ = geom["pad"]
    hmax = _line_max(x, 3, KW, SW, left, W_out)  # along the rows: (N, C, H, W_out)
    out = _line_max(hmax, 2, KH, SH, top, H_out)  # down the columns: (N, C, H_out, W_out)
    # x (alive in the previous layer anyway) and out: backward finds each window's winner
    # as x == out (tracking the argmax here would slow down the pass inference runs)
    cache = {"x": x, "out": out, "geometry": geom}
    return out, cache


def maxpool2d_backward(dout, cache):
    """dout: (N, C, H_out, W_out) -> dx: (N, C, H, W); each window's gradient goes to its
    FIRST maximum (row-major window order) only.

    Offsets are visited in that order; ``taken`` marks windows whose winner was already
    found, so a later tied element gets nothing. x and out must not have been modified
    since the forward pass. (Backward does not split in two passes like the forward: the
    second pass would route a gradient over KH times more elements.)
    """
    xp = get_array_module(dout)
    geom, out = cache["geometry"], cache["out"]
    x_pad, dx_pad = _pad(cache["x"], geom, -np.inf), _grad_buffer(dout, geom)
    overlap = geom["overlap"]
    last = geom["kernel"][0] * geom["kernel"][1] - 1
    taken = None
    for (k, win), (_, dwin) in zip(_windows(x_pad, geom), _windows(dx_pad, geom)):
        hit = win == out  # (N, C, H_out, W_out)
        if taken is None:
            taken = hit
        else:
            xp.greater(hit, taken, out=hit)  # hit and not taken
            if k < last:
                taken |= hit
        if overlap:
            dwin += hit * dout
        else:
            xp.multiply(hit, dout, out=dwin)
    return _unpad(dx_pad, geom)


# average pooling -----------------------------------------------------------------------
def _inv_divisor(x, geom, count_include_pad):
    """1 / (elements counted per window): a scalar, or (H_out, W_out) without the padding."""
    (KH, KW), (SH, SW), (H_out, W_out) = geom["kernel"], geom["stride"], geom["out"]
    if count_include_pad:
        return 1.0 / (KH * KW)
    top, _, left, _ = geom["pad"]
    H, W = geom["x_shape"][2:]
    rows = np.arange(H_out) * SH - top
    cols = np.arange(W_out) * SW - left
    count_h = np.minimum(rows + KH, H) - np.maximum(rows, 0)
    count_w = np.minimum(cols + KW, W) - np.maximum(cols, 0)
    inv = 1.0 / np.outer(count_h, count_w)  # (H_out, W_out)
    return get_array_module(x).asarray(inv.astype(x.dtype))


def avgpool2d_forward(x, kernel, stride=None, pad=0, count_include_pad=True):
    """x: (N, C, H, W) -> out: (N, C, H_out, W_out), the mean of each window.

    pad: zeros; count_include_pad=True divides by KH*KW (PyTorch default),
    False by the number of real (non-padding) elements in the window (Keras 'same').
    """
    geom = _geometry(x, kernel, stride, pad, "average-pool")
    x_pad = _pad(x, geom, 0)
    out = None
    for k, win in _windows(x_pad, geom):
        if k == 0:
            out = win.copy()
        else:
            out += win
    inv = _inv_divisor(x, geom, count_include_pad)
    out *= inv
    cache = {"inv_divisor": inv, "geometry": geom}  # linear layer: only the sizes and weights 1/count
    return out, cache


def avgpool2d_backward(dout, cache):
    """dout: (N, C, H_out, W_out) -> dx: (N, C, H, W); every element of a window receives
    dout / count."""
    geom = cache["geometry"]
    dscaled = dout * cache["inv_divisor"]
    dx_pad = _grad_buffer(dout, geom)
    overlap = geom["overlap"]
    for _, win in _windows(dx_pad, geom):
        if overlap:
            win += dscaled
        else:
            win[...] = dscaled
    return _unpad(dx_pad, geom)


# global average pooling ----------------------------------------------------------------
def global_avgpool_forward(x):
    """x: (N, C, H, W) -> out: (N, C), the mean over H and W."""
    check_floating(x)
    check_rank(x, 4, "(N, C, H, W)")
    out = x.mean(axis=(2, 3))
    cache = {"x_shape": x.shape}  # linear: the gradient is dout / (H*W) everywhere
    return out, cache


def global_avgpool_backward(dout, cache):
    """dout: (N, C) -> dx: (N, C, H, W) = dout / (H*W) broadcast over H, W."""
    xp = get_array_module(dout)
    N, C, H, W = cache["x_shape"]
    dx = xp.empty((N, C, H, W), dtype=dout.dtype)
    dx[...] = (dout * (1.0 / (H * W)))[:, :, None, None]  # (N, C, 1, 1)
    return dx


# classes -------------------------------------------------------------------------------
class MaxPool2D(Layer):
    """Max pooling; ResNet stem: MaxPool2D(3, 2, 1); VGG: MaxPool2D(2)."""

    def __init__(self, kernel, stride=None, pad=0):
        super().__init__()
        self.kernel, self.stride, self.pad = kernel, stride, pad

    def forward(self, x):
        if fast.enabled():  # the same function; with workers on ranges of planes at once
            out, self.cache = fast.forward_by_planes(maxpool2d_forward, x, self.kernel, self.stride, self.pad)
        else:
            out, self.cache = maxpool2d_forward(x, self.kernel, self.stride, self.pad)
        return out

    def backward(self, dout):
        if last_cache(self).get("fast"):  # fast path, as forward ran
            return fast.backward_by_planes(maxpool2d_backward, dout, self.cache)  # fast path
        return maxpool2d_backward(dout, last_cache(self))

    def __repr__(self):
        return f"MaxPool2D(kernel={self.kernel}, stride={self.stride}, pad={self.pad})"


class AvgPool2D(Layer):
    """Average pooling; padded zeros count in the divisor unless count_include_pad=False."""

    def __init__(self, kernel, stride=None, pad=0, count_include_pad=True):
        super().__init__()
        self.kernel, self.stride, self.pad = kernel, stride, pad
        self.count_include_pad = count_include_pad

    def forward(self, x):
        out, self.cache = avgpool2d_forward(x, self.kernel, self.stride, self.pad,
                                            self.count_include_pad)
        return out

    def backward(self, dout):
        return avgpool2d_backward(dout, last_cache(self))

    def __repr__(self):
        return f"AvgPool2D(kernel={self.kernel}, stride={self.stride}, pad={self.pad})"


class GlobalAvgPool(Layer):
    """(N, C, H, W) -> (N, C), ResNet's pooled feature."""

    def forward(self, x):
        out, self.cache = global_avgpool_forward(x)
        return out

    def backward(self, dout):
        return global_avgpool_backward(dout, last_cache(self))
