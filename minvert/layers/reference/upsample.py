"""Reference nearest-neighbour upsampling, one input pixel at a time. Vectorised:
../upsample.py.

    out[n, c, h, w] = x[n, c, h // fh, w // fw]            out: (N, C, H*fh, W*fw)
    dx[n, c, h, w] = sum of dout over the fh x fw block that x[n, c, h, w] was copied to
"""
from ...backend import get_array_module
from ..shape import normalize_pair


def upsample_nearest_forward(x, factor=2):
    xp = get_array_module(x)
    fh, fw = normalize_pair(factor, "upsampling factor")
    N, C, H, W = x.shape
    out = xp.zeros((N, C, H * fh, W * fw), dtype=x.dtype)
    for h in range(H):
        for w in range(W):
            out[:, :, h * fh:(h + 1) * fh, w * fw:(w + 1) * fw] = x[:, :, h:h + 1, w:w + 1]
    return out, {"factor": (fh, fw)}


def upsample_nearest_backward(dout, cache):
    xp = get_array_module(dout)
    fh, fw = cache["factor"]
    N, C, H, W = dout.shape[0], dout.shape[1], dout.shape[2] // fh, dout.shape[3] // fw
    dx = xp.zeros((N, C, H, W), dtype=dout.dtype)
    for h in range(H):
        for w in range(W):
            dx[:, :, h, w] = dout[:, :, h * fh:(h + 1) * fh, w * fw:(w + 1) * fw].sum(axis=(2, 3))
    return dx
