"""Reference 2-D convolution: one output pixel at a time. Vectorised: ../conv.py.

    x: (N, C, H, W)   w: (F, C, KH, KW)   b: (F,)   out: (N, F, H_out, W_out)
    x_pad = x with `pad` zeros around (top, bottom, left, right)
    out[n, f, oh, ow] = b[f] + sum_{c, i, j} w[f, c, i, j] * x_pad[n, c, oh*SH + i, ow*SW + j]
    H_out = (H + top + bottom - KH) // SH + 1,  W_out likewise

Backward: output pixel (oh, ow) read the patch x_pad[:, :, oh*SH : oh*SH+KH, ow*SW : ow*SW+KW]
through w. So each output's gradient flows back onto that same patch (dx_pad) and into the
weights in proportion to the patch (dw); patches overlap, hence +=. The padding was not an
input: dx is dx_pad without its border.
"""
from ...backend import get_array_module
from ..shape import normalize_pad, normalize_pair


def conv2d_forward(x, w, b=None, stride=1, pad=0):
    """x (N, C, H, W), w (F, C, KH, KW), b (F,) or None -> (out (N, F, H_out, W_out), cache).
    stride: int or (SH, SW); pad: int or (top, bottom, left, right)."""
    xp = get_array_module(x)
    SH, SW = normalize_pair(stride, "stride")
    top, bottom, left, right = normalize_pad(pad)
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    x_pad = xp.zeros((N, C, H + top + bottom, W + left + right), dtype=x.dtype)
    x_pad[:, :, top:top + H, left:left + W] = x
    H_out, W_out = (x_pad.shape[2] - KH) // SH + 1, (x_pad.shape[3] - KW) // SW + 1
    out = xp.zeros((N, F, H_out, W_out), dtype=x.dtype)
    for oh in range(H_out):
        for ow in range(W_out):
            patch = x_pad[:, :, oh * SH:oh * SH + KH, ow * SW:ow * SW + KW]  # (N, C, KH, KW)
            out[:, :, oh, ow] = xp.einsum("ncij,fcij->nf", patch, w)
    if b is not None:
        out += b[None, :, None, None]
    cache = {"x_pad": x_pad, "w": w, "stride": (SH, SW), "pad": (top, bottom, left, right),
             "has_b": b is not None}
    return out, cache


def conv2d_backward(dout, cache):
    """dout (N, F, H_out, W_out) -> (dx (N, C, H, W), dw (F, C, KH, KW), db (F,) or None)."""
    xp = get_array_module(dout)
    x_pad, w = cache["x_pad"], cache["w"]
    (SH, SW), (top, bottom, left, right) = cache["stride"], cache["pad"]
    KH, KW = w.shape[2:]
    dx_pad, dw = xp.zeros_like(x_pad), xp.zeros_like(w)
    for oh in range(dout.shape[2]):
        for ow in range(dout.shape[3]):
            rows, cols = slice(oh * SH, oh * SH + KH), slice(ow * SW, ow * SW + KW)
            g = dout[:, :, oh, ow]  # (N, F): the gradient of this output pixel
            dx_pad[:, :, rows, cols] += xp.einsum("nf,fcij->ncij", g, w)
            dw += xp.einsum("nf,ncij->fcij", g, x_pad[:, :, rows, cols])
    H, W = x_pad.shape[2] - top - bottom, x_pad.shape[3] - left - right
    db = dout.sum(axis=(0, 2, 3)) if cache["has_b"] else None
    return dx_pad[:, :, top:top + H, left:left + W], dw, db
