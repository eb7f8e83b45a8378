"""Reference max and average pooling: one window at a time. Vectorised: ../pool.py.

    window(n, c, oh, ow) = x_pad[n, c, oh*SH : oh*SH+KH, ow*SW : ow*SW+KW]
    max-pool: out = max of the window (padding is -inf: it never wins)
    avg-pool: out = sum of the window / KH*KW (padding counts as zeros), or / the number of
              real elements with count_include_pad=False
    H_out = (H + top + bottom - KH) // SH + 1,  W_out likewise

Backward: max-pool sends each window's gradient to the window's first maximum (row-major),
average pooling spreads it evenly with the forward's weights; windows may overlap, so +=.
"""
from ...backend import get_array_module
from ..shape import normalize_pad, normalize_pair


def _geometry(x, kernel, stride, pad, fill):
    """x padded with ``fill`` -> (x_pad, dict of sizes)."""
    xp = get_array_module(x)
    KH, KW = normalize_pair(kernel, "kernel")
    SH, SW = (KH, KW) if stride is None else normalize_pair(stride, "stride")
    top, bottom, left, right = normalize_pad(pad)
    N, C, H, W = x.shape
    x_pad = xp.full((N, C, H + top + bottom, W + left + right), fill, dtype=x.dtype)
    x_pad[:, :, top:top + H, left:left + W] = x
    H_out, W_out = (x_pad.shape[2] - KH) // SH + 1, (x_pad.shape[3] - KW) // SW + 1
    return x_pad, dict(kernel=(KH, KW), stride=(SH, SW), pad=(top, bottom, left, right),
                       out=(H_out, W_out), x_shape=x.shape)


def _window(g, oh, ow):
    (KH, KW), (SH, SW) = g["kernel"], g["stride"]
    return slice(oh * SH, oh * SH + KH), slice(ow * SW, ow * SW + KW)


def _crop(dx_pad, g):
    top, _, left, _ = g["pad"]
    H, W = g["x_shape"][2:]
    return dx_pad[:, :, top:top + H, left:left + W]


def maxpool2d_forward(x, kernel, stride=None, pad=0):
    """x (N, C, H, W) -> (out (N, C, H_out, W_out), cache)."""
    xp = get_array_module(x)
    x_pad, g = _geometry(x, kernel, stride, pad, -xp.inf)
    out = xp.zeros(x.shape[:2] + g["out"], dtype=x.dtype)
    for oh in range(g["out"][0]):
        for ow in range(g["out"][1]):
            rows, cols = _window(g, oh, ow)
            out[:, :, oh, ow] = x_pad[:, :, rows, cols].max(axis=(2, 3))
    return out, {"x_pad": x_pad, "geometry": g}


def maxpool2d_backward(dout, cache):
    """dout (N, C, H_out, W_out) -> dx (N, C, H, W)."""
    xp = get_array_module(dout)
    x_pad, g = cache["x_pad"], cache["geometry"]
    N, C = dout.shape[:2]
    KH, KW = g["kernel"]
    dx_pad = xp.zeros_like(x_pad)
    for oh in range(dout.shape[2]):
        for ow in range(dout.shape[3]):
            rows, cols = _window(g, oh, ow)
            first = x_pad[:, :, rows, cols].reshape(N, C, KH * KW).argmax(axis=2)  # (N, C)
            winner = (xp.arange(KH * KW) == first[:, :, None]).reshape(N, C, KH, KW)
            dx_pad[:, :, rows, cols] += winner * dout[:, :, oh, ow][:, :, None, None]
    return _crop(dx_pad, g)


def avgpool2d_forward(x, kernel, stride=None, pad=0, count_include_pad=True):
    """x (N, C, H, W) -> (out (N, C, H_out, W_out), cache)."""
    xp = get_array_module(x)
    x_pad, g = _geometry(x, kernel, stride, pad, 0)
    real, _ = _geometry(xp.ones((1, 1) + x.shape[2:], dtype=x.dtype), kernel, stride, pad, 0)
    weight = xp.zeros((1, 1) + g["out"], dtype=x.dtype)  # 1 / divisor of every window
    out = xp.zeros(x.shape[:2] + g["out"], dtype=x.dtype)
    for oh in range(g["out"][0]):
        for ow in range(g["out"][1]):
            rows, cols = _window(g, oh, ow)
            count = real[0, 0, rows, cols].sum() if not count_include_pad else g["kernel"][0] * g["kernel"][1]
            weight[0, 0, oh, ow] = 1 / count
            out[:, :, oh, ow] = x_pad[:, :, rows, cols].sum(axis=(2, 3)) * weight[0, 0, oh, ow]
    return out, {"pad_shape": x_pad.shape, "weight": weight, "geometry": g}


def avgpool2d_backward(dout, cache):
    """dout (N, C, H_out, W_out) -> dx (N, C, H, W)."""
    xp = get_array_module(dout)
    g, weight = cache["geometry"], cache["weight"]
    dx_pad = xp.zeros(cache["pad_shape"], dtype=dout.dtype)
    for oh in range(dout.shape[2]):
        for ow in range(dout.shape[3]):
            rows, cols = _window(g, oh, ow)
            dx_pad[:, :, rows, cols] += (dout[:, :, oh, ow] * weight[0, 0, oh, ow])[:, :, None, None]
    return _crop(dx_pad, g)
