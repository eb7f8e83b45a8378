"""Nearest upsampling followed by a stride-1 convolution, as one layer (every stage of
paper 003's decoder):

    x: (N, C, H, W) -> up: (N, C, fh*H, fw*W),   up[n, c, y, z] = x[n, c, y // fh, z // fw]
    out = conv2d(up, w (F, C, KH, KW), b, stride 1, pad (top, bottom, left, right))
        = (N, F, fh*H, fw*W)   when the padding keeps the size ('same', as in the decoder)

Here it is computed as it reads: upsample (upsample.py), then convolve (conv.py); backward
runs the two backward passes in reverse order. The fast engine (layers/fast/upconv.py)
computes the same function without building ``up``, by splitting the kernel into one
smaller kernel per output phase (4 multiplies per output instead of 9 for a 3x3 kernel).
"""
import numpy as np

from ..errors import MinvertError
from . import fast
from .base import last_cache
from .conv import Conv2D, conv2d_backward, conv2d_forward
from .geometry import normalize_pair
from .upsample import upsample_nearest_backward, upsample_nearest_forward


def upsample_conv2d_forward(x, w, b=None, pad=0, factor=2):
    """x: (N, C, H, W), w: (F, C, KH, KW), b: (F,) or None -> (out, cache);
    out (N, F, H_out, W_out) = conv2d(upsample_nearest(x, factor), w, b, 1, pad),
    H_out = fh*H + top + bottom - KH + 1 (= fh*H for 'same' padding)."""
    up, up_cache = upsample_nearest_forward(x, factor)
    out, conv_cache = conv2d_forward(up, w, b, 1, pad)
    # what each backward needs; x only for its shape (it is alive in the layer before anyway)
    return out, {"upsample": up_cache, "conv": conv_cache, "x": x}


def upsample_conv2d_backward(dout, cache, need_dx=True, need_dw=True):
    """dout: (N, F, H_out, W_out) -> (dx (N, C, H, W), dw (F, C, KH, KW), db (F,)),
    None where not requested (db also None without bias)."""
    dup, dw, db = conv2d_backward(dout, cache["conv"], need_dx, need_dw)
    dx = upsample_nearest_backward(dup, cache["upsample"]) if need_dx else None
    return dx, dw, db


class UpsampleConv2D(Conv2D):
    """Nearest upsampling by ``factor`` then a stride-1 Conv2D (see the module doc).

    The same parameters as the Conv2D it replaces ("w" (F, C, KH, KW), "b"), so weight
    files do not change. pad: int or (top, bottom, left, right) of the convolution
    (of the upsampled image).
    """

    def __init__(self, in_channels, out_channels, kernel_size, pad=0, factor=2, bias=True,
                 init="he", rng=None, dtype=np.float32):
        super().__init__(in_channels, out_channels, kernel_size, 1, pad, bias, init, rng, dtype)
        if isinstance(pad, str):
            raise MinvertError(f"UpsampleConv2D pad={pad!r}: give numbers "
                               f"(top, bottom, left, right)")
        self.factor = normalize_pair(factor, "upsampling factor")

    def forward(self, x):
        w, b = self.params["w"], self.params.get("b")
        if fast.enabled():  # the same function by output phases (layers/fast/upconv.py)
            out, self.cache = fast.upsample_conv2d_forward(x, w, b, self.pad, self.factor)
        else:
            out, self.cache = upsample_conv2d_forward(x, w, b, self.pad, self.factor)
        return out

    def backward(self, dout):
        cache = last_cache(self)
        fast_ran = cache.get("fast")  # the path its forward took
        backward = fast.upsample_conv2d_backward if fast_ran else upsample_conv2d_backward  # fast path
        dx, dw, db = backward(dout, cache, self.need_dx, self.trainable)
        if self.trainable:
            self.grads["w"] = dw
            if db is not None:
                self.grads["b"] = db
        return dx

    def __repr__(self):
        return f"UpsampleConv2D(factor={self.factor}, w{tuple(self.params['w'].shape)})"
