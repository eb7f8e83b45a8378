"""Nearest-neighbour upsampling by integer factors (Keras UpSampling2D default).

    x: (N, C, H, W) -> out: (N, C, H * fh, W * fw),  out[n, c, h, w] = x[n, c, h // fh, w // fw]

Every input pixel is copied into an fh x fw block, so backward sums dout over each
block. Both directions are reshapes, with no loop over pixels:

    forward:  out.reshape(N, C, H, fh, W, fw)[...] = x[:, :, :, None, :, None]
              (done one column of the blocks at a time, see below)
    backward: dx = dout.reshape(N, C, H, fh, W, fw).sum(axis=(3, 5))
              (computed as a sum over the fh rows, then over the fw columns: same value,
              several times faster in NumPy than one reduction over two strided axes)

Reference: minvert/layers/reference/upsample.py (a loop over input pixels). This version adds
speed: whole rows and columns copied and summed by slices.
"""

from ..backend import get_array_module
from ..errors import ShapeError
from .base import Layer, check_floating, check_rank, last_cache
from .geometry import normalize_pair


def upsample_nearest_forward(x, factor=2):
    """x: (N, C, H, W), factor int or (fh, fw) -> out: (N, C, H*fh, W*fw)."""
    check_floating(x)
    check_rank(x, 4, "(N, C, H, W)")
    xp = get_array_module(x)
    fh, fw = normalize_pair(factor, "upsampling factor")
    N, C, H, W = x.shape
    out = xp.empty((N, C, H, fh, W, fw), dtype=x.dtype)
    # column j of every block at once, so that NumPy's inner loop runs along W; one
    # broadcast over the short last axis fw would run it over fw values: ~2x slower
    out[..., 0] = x[:, :, :, None, :]  # (N, C, H, 1, W) broadcast over the fh rows
    for j in range(1, fw):
        out[..., j] = out[..., 0]
    cache = {"factor": (fh, fw)}  # a pure copy: backward needs only the block size
    return out.reshape(N, C, H * fh, W * fw), cache


def upsample_nearest_backward(dout, cache):
    """dout: (N, C, H*fh, W*fw) -> dx: (N, C, H, W), the sum over each fh x fw block."""
    fh, fw = cache["factor"]
    N, C, H_up, W_up = dout.shape
    H, W = H_up // fh, W_up // fw
    # the fh rows of a block are whole rows of dout: summing them adds contiguous rows
    rows = dout.reshape(N, C, H, fh, W_up).sum(axis=3)  # (N, C, H, W*fw)
    cols = rows.reshape(N, C, H, W, fw)
    # the fw columns by slices: reducing a short last axis is ~5x slower in NumPy
    dx = cols[..., 0].copy()
    for j in range(1, fw):
        dx += cols[..., j]
    return dx


class UpsampleNearest(Layer):
    def __init__(self, factor=2):
        super().__init__()
        self.factor = normalize_pair(factor, "upsampling factor")

    def forward(self, x):
        out, self.cache = upsample_nearest_forward(x, self.factor)
        return out

    def backward(self, dout):
        return upsample_nearest_backward(dout, last_cache(self))

    def __repr__(self):
        return f"UpsampleNearest(factor={self.factor})"
