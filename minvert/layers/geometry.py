"""Sizes and settings shared by the layers and the fast engine: kernel/stride pairs,
paddings, TensorFlow's 'same' rule, and the checked geometry of a convolution.

    H_out = (H + top + bottom - KH) // SH + 1,   W_out = (W + left + right - KW) // SW + 1
"""
import numbers

from ..errors import DTypeError, ShapeError
from .base import check_floating, check_rank


def normalize_pair(v, what):
    """int k -> (k, k); a pair -> tuple of 2 positive ints (kernel sizes, strides, factors)."""
    if isinstance(v, numbers.Integral):
        v = (int(v), int(v))
    v = tuple(int(k) for k in v)
    if len(v) != 2 or min(v) < 1:
        raise ShapeError(f"{what}={v!r}: use a positive int or (height, width)")
    return v


def normalize_pad(pad):
    """int p -> (p, p, p, p); a 4-sequence (top, bottom, left, right) -> tuple of 4 ints."""
    if isinstance(pad, numbers.Integral):
        pad = (int(pad),) * 4
    try:
        pad = tuple(int(p) for p in pad)
    except TypeError:
        raise ShapeError(f"pad={pad!r}: use an int or (top, bottom, left, right)") from None
    if len(pad) != 4 or min(pad) < 0:
        raise ShapeError(f"pad={pad!r}: use a non-negative int or (top, bottom, left, right)")
    return pad


def same_padding(kernel_size, stride=1, in_size=None):
    """TensorFlow 'same' padding -> (top, bottom, left, right), so that H_out = ceil(H / SH).

    pad_total = max((ceil(H / SH) - 1) * SH + KH - H, 0); top = pad_total // 2 and the odd
    extra row goes to the bottom (likewise left/right). Without ``in_size`` H is assumed
    to be a multiple of the stride, which gives pad_total = max(KH - SH, 0).
    """
    (KH, KW), (SH, SW) = normalize_pair(kernel_size, "kernel_size"), normalize_pair(stride, "stride")
    H, W = (SH, SW) if in_size is None else normalize_pair(in_size, "in_size")
    total_h = max((-(-H // SH) - 1) * SH + KH - H, 0)
    total_w = max((-(-W // SW) - 1) * SW + KW - W, 0)
    return total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2


def conv_geometry(x, w, b, stride, pad):
    """Check a convolution's inputs; return ((SH, SW), (top, bottom, left, right),
    (H_out, W_out)). pad: int, (top, bottom, left, right), "same" or "valid"."""
    check_floating(x, "conv input")
    check_floating(w, "conv weights")
    check_rank(x, 4, "(N, C, H, W)", "conv input")
    check_rank(w, 4, "(F, C, KH, KW)", "conv weights")
    (_, C, H, W), (F, Cw, KH, KW) = x.shape, w.shape
    if C != Cw:
        raise ShapeError(f"conv input has {C} channels but the weights {tuple(w.shape)} expect "
                         f"{Cw} (w is (F, C, KH, KW))")
    if x.dtype != w.dtype:
        raise DTypeError(f"conv input is {x.dtype} but its weights are {w.dtype}: convert one "
                         f"of them (layer.astype('{x.dtype}'))")
    if b is not None and tuple(b.shape) != (F,):
        raise ShapeError(f"conv bias has shape {tuple(b.shape)}; expected ({F},) for {F} filters")
    SH, SW = normalize_pair(stride, "stride")
    if isinstance(pad, str) and pad in ("same", "valid"):
        pad = same_padding((KH, KW), (SH, SW), (H, W)) if pad == "same" else (0, 0, 0, 0)
    top, bottom, left, right = normalize_pad(pad)
    if H + top + bottom < KH or W + left + right < KW:
        raise ShapeError(f"conv kernel {KH}x{KW} is larger than the padded input "
                         f"{H + top + bottom}x{W + left + right} (input {H}x{W}, pad "
                         f"{(top, bottom, left, right)}): use a larger image or more padding")
    H_out, W_out = (H + top + bottom - KH) // SH + 1, (W + left + right - KW) // SW + 1
    return (SH, SW), (top, bottom, left, right), (H_out, W_out)


def check_conv_dout(dout, cache):
    """One-line error unless dout has the output shape of the forward pass that made cache."""
    x, w = cache["x"], cache["w"]
    (SH, SW), (top, bottom, left, right) = cache["stride"], cache["pad"]
    (N, _, H, W), (F, _, KH, KW) = x.shape, w.shape
    H_out, W_out = (H + top + bottom - KH) // SH + 1, (W + left + right - KW) // SW + 1
    if tuple(dout.shape) != (N, F, H_out, W_out):
        raise ShapeError(f"conv dout has shape {tuple(dout.shape)}; expected the output shape "
                         f"{(N, F, H_out, W_out)} of the last forward pass")
