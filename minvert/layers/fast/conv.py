"""The fast convolution: the same function as layers/conv.py (read that first), computed
with less memory traffic. Tested equal to it (tests/test_fast_conv.py).

* Forward: the im2col copy and the product chunk by chunk in reused scratch memory
  (fast/im2col.py), the bias, an inference batch-norm, a residual and the ReLU applied to
  each chunk while it is in the CPU cache; or, for 3x3 stride-1 layers with many channels
  on the CPU, Winograd F(2x2, 3x3) (fast/winograd.py).
* Backward: dw chunk by chunk; dx by whichever of three equal computations moves the
  least memory (Winograd when the forward used it, the transposed convolution, col2im).

Every choice depends only on the shapes, the device and the layer being frozen (it keeps
its Winograd kernel transform): never on what ran before, nor on the machine's thread
count, so the same call gives the same bits.
"""
import numpy as np

from ...backend import get_array_module
from ..geometry import check_conv_dout, conv_geometry
from . import winograd, workers
from .im2col import chunk_cols, chunk_ranges, conv_matmul, im2col_chunks, scratch

# Winograd F(2x2, 3x3) from this many input and output channels, output rows and columns,
# and output pixels times the batch on (see winograd_pays)
WINOGRAD_MIN_CHANNELS = 128
WINOGRAD_MIN_SIZE = 14
WINOGRAD_MIN_PIXELS = 784


def conv2d_forward(x, w, b=None, stride=1, pad=0, winograd_cache=None):
    """layers.conv.conv2d_forward -> (out, cache). winograd_cache: a dict in which a frozen
    layer keeps its Winograd kernel transform between calls (None while trainable)."""
    out, stride, pad, U = conv2d_fused(x, w, b, stride, pad, winograd_cache=winograd_cache,
                                       with_geometry=True)
    # dx needs only w; dw rebuilds im2col(x) chunk by chunk (keeping cols, KH*KW times
    # the size of x, for every layer would not fit in memory for a training batch)
    cache = {"x": x, "w": w, "stride": stride, "pad": pad, "has_b": b is not None, "fast": True}
    if U is not None:  # Winograd ran: dx will too, from the same kernel transform, kept by
        # a frozen layer anyway, else rebuilt (16/9 the size of w: too much to hold for
        # every layer of a training batch)
        cache["winograd_U"] = U if winograd_cache is not None else None
    return out, cache


def conv2d_fused(x, w, b=None, stride=1, pad=0, scale=None, shift=None, relu=False,
                 residual=None, winograd_cache=None, with_geometry=False):
    """Inference: max(((conv(x, w) + b) * scale + shift) + residual, 0), each part optional
    (scale/shift (F,): a batch-norm in inference mode, folded into the bias and applied
    chunk by chunk; residual: an array shaped like the output; relu: the final max).
    -> out, or with_geometry: (out, (SH, SW), pad, U or None)."""
    (SH, SW), pad, (H_out, W_out) = conv_geometry(x, w, b, stride, pad)
    (N, C, _, _), (F, _, KH, KW) = x.shape, w.shape
    if scale is not None:  # (conv + b) * scale + shift = conv * scale + (b * scale + shift)
        b = shift if b is None else b * scale + shift
    U = None
    if winograd_pays(get_array_module(x), N, C, F, H_out, W_out, KH, KW, SH, SW, pad,
                     winograd_cache is not None):
        U = _kernel_transform(w, winograd_cache)
        out = winograd.conv3x3_winograd(x, U, b, pad, scale, relu and residual is None)
        if residual is not None:  # a separate pass: the last conv of a block is 1x1 (ResNet-50)
            out += residual
            if relu:
                get_array_module(x).maximum(out, 0, out=out)
    else:
        out = conv_matmul(x, pad, w.reshape(F, -1), b, KH, KW, SH, SW, H_out, W_out, scale,
                          relu, residual)
    return (out, (SH, SW), pad, U) if with_geometry else out


def winograd_pays(xp, N, C, F, H_out, W_out, KH, KW, SH, SW, pad, frozen=False):
    """Whether a convolution (and its transposed one, C and F swapped) runs faster by
    Winograd F(2x2, 3x3) than by im2col (docs/performance.md has the measurements):
    on the CPU only (on a GPU one cuBLAS product per layer); at least 128 channels (below,
    the transforms cost more than the multiplies saved), at 1 BLAS thread as at 2; not
    for 7x7 images (short rows of tiles); and from 784 output pixels per call on, unless
    a frozen layer keeps its kernel transform."""
    return xp is np and winograd.applies(KH, KW, SH, SW, pad) \
        and min(C, F) >= WINOGRAD_MIN_CHANNELS \
        and min(H_out, W_out) >= WINOGRAD_MIN_SIZE \
        and (frozen or N * H_out * W_out >= WINOGRAD_MIN_PIXELS)


def _kernel_transform(w, winograd_cache):
    """winograd.kernel_transform(w), taken from ``winograd_cache`` when computed there for
    this very array (a frozen layer's weights are constants; a new array replaces it),
    one entry per device (a net copied to another GPU keeps its transform there)."""
    device = "cpu" if get_array_module(w) is np else w.device.id
    cached = None if winograd_cache is None else winograd_cache.get(device)
    if cached is not None and cached[0] is w:
        return cached[1]
    U = winograd.kernel_transform(w)
    if winograd_cache is not None:
        winograd_cache[device] = (w, U)
    return U


def conv2d_backward(dout, cache, need_dx=True, need_dw=True):
    """layers.conv.conv2d_backward: dout (N, F, H_out, W_out) -> (dx, dw, db), None where
    not requested (need_dx / need_dw False; db also None without bias).

    The derivation is in layers/conv.py. With stride 1, dx is also a convolution of
    dout (padded by KH-1-top, ...) with the kernel flipped and transposed to (C, F, KH, KW).

    Which dx is computed how (``_dx_transposed`` or ``_dx_col2im``): both do one matmul of
    the same size; they differ in the memory traffic around it, counted per kernel offset:
    the transposed convolution builds im2col(dout) (F*H*W) and permutes w (F*C, a slow
    strided copy; none for 1x1); col2im writes dcols and adds it back (2*C*H*W). Hence
    the transposed convolution when F*H*W + F*C < 2*C*H*W (for C == F: H*W > C), that is
    VGG's layers down to 28x28, and col2im for 512 channels at 14x14 and 7x7
    (``bench_layers(compare_dx=True)`` times both). Strides > 1 always use col2im: the
    transposed convolution would need SH*SW times the work on a zero-dilated dout. On a
    GPU, where none of this was measured, dx is col2im in NCHW as in layers/conv.py: one
    cuBLAS product per layer (per band of a large image).
    """
    check_conv_dout(dout, cache)
    x, w = cache["x"], cache["w"]
    (SH, SW), (top, bottom, left, right) = cache["stride"], cache["pad"]
    (N, C, H, W), (F, _, KH, KW) = x.shape, w.shape
    dout = dout.astype(x.dtype, copy=False)
    dx = dw = db = None
    if need_dw:
        dw = _dw(x, dout, KH, KW, SH, SW, (top, bottom, left, right)).reshape(w.shape)
        db = dout.sum(axis=(0, 2, 3)) if cache["has_b"] else None
    if need_dx and "winograd_U" in cache:  # the forward ran by Winograd: so does its transpose
        U = cache["winograd_U"]
        U = winograd.kernel_transform(w) if U is None else U
        dx = winograd.dx_winograd(dout, U, (top, bottom, left, right))
    elif need_dx and get_array_module(x) is np and SH == SW == 1 and \
            (KH * KW == 1 or F * H * W + F * C < 2 * C * H * W):  # a rule measured on the CPU
        dx = _dx_transposed(dout, w, (top, bottom, left, right))  # the cheaper one, see above
    elif need_dx:
        dx = _dx_col2im(dout, w, x.shape, SH, SW, (top, bottom, left, right))
    return dx, dw, db


def _dw(x, dout, KH, KW, SH, SW, pad):
    """dw2d (F, C*KH*KW) = sum over samples of dout (F, H_out*W_out) @ cols^T, chunk by
    chunk (each chunk's cols built in scratch memory, as in the forward pass). With
    workers each takes a range of input channels (its own columns of dw)."""
    xp = get_array_module(x)
    (N, C), (F, H_out, W_out), KK = x.shape[:2], dout.shape[1:], KH * KW
    dout3 = dout.reshape(N, F, H_out * W_out)  # (N, F, H_out*W_out)
    dw2d = xp.empty((F, C * KK), dtype=dout.dtype)
    chunks = im2col_chunks(x, pad, KH, KW, SH, SW, H_out, W_out)

    def channels(c_range):  # columns c0*KK:c1*KK of dw2d, from input channels c0:c1
        c0, c1 = c_range
        x_c, dw_c = x[:, c0:c1], dw2d[:, c0 * KK:c1 * KK]
        for k, (n0, n1, r0, r1) in enumerate(chunks):
            cols = chunk_cols(x_c, pad, KH, KW, SH, SW, W_out, (n0, n1, r0, r1))
            dout_chunk = dout3[n0:n1, :, r0 * W_out:r1 * W_out]  # (n, F, rows*W_out)
            if cols.ndim == 3:  # x itself: per-sample products (F, C), summed
                part = xp.matmul(dout_chunk, cols.transpose(0, 2, 1)).sum(axis=0)
            else:  # samples side by side, like cols: (F, n*rows*W_out) @ cols^T
                dout2d = dout_chunk.transpose(1, 0, 2).reshape(F, -1)
                whole = k == 0 and dw_c.flags.c_contiguous  # the first product lands in dw
                part = xp.matmul(dout2d, cols.T, out=dw_c if whole else None)
            if k == 0 and part is not dw_c:
                dw_c[...] = part
            elif k > 0:
                dw_c += part
    workers.each(channels, workers.shares(C, xp), xp)
    return dw2d


def _dx_transposed(dout, w, pad):
    """dx of a stride-1 conv = conv of dout, padded by KH-1-top etc., with the flipped kernel."""
    (C, KH, KW), (H_out, W_out) = w.shape[1:], dout.shape[2:]
    top, bottom, left, right = pad
    w_t = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, F, KH, KW), flipped kernel
    w_t2d = w_t.reshape(C, -1)  # (C, F*KH*KW): a copy, or for 1x1 the view w2d^T
    pad_t = (KH - 1 - top, KH - 1 - bottom, KW - 1 - left, KW - 1 - right)
    H, W = H_out + KH - 1 - top - bottom, W_out + KW - 1 - left - right
    return conv_matmul(dout, pad_t, w_t2d, None, KH, KW, 1, 1, H, W)


def _dx_col2im(dout, w, x_shape, SH, SW, pad):
    """dx by dcols = w2d^T @ dout, then col2im: KH*KW strided ``+=`` into a padded buffer.

    NumPy's strided adds are fast along a long contiguous run and slow (loop overhead)
    along short ones. The run is a row (W_out) in NCHW; with more channels than that
    (deep layers), dcols is computed pixel-major (dout^T @ w2d) and dx_pad kept
    channels-last, so the very same loop adds along C, or for stride 1 along W_out*C.
    """
    xp = get_array_module(dout)
    (N, C, H, W), (F, _, KH, KW), (H_out, W_out) = x_shape, w.shape, dout.shape[2:]
    top, bottom, left, right = pad
    H_pad, W_pad = H + top + bottom, W + left + right
    # channels-last: NumPy's loop overhead, measured on the CPU; a GPU keeps NCHW
    channels_last, padded = xp is np and C > W_out, bool(top or bottom or left or right)
    if channels_last or padded:  # dx_pad is a scratch buffer: the result is a copy of it
        dx_pad = scratch(xp, "dx", (N, H_pad, W_pad, C) if channels_last else
                         (N, C, H_pad, W_pad), dout.dtype)
        dx_pad[...] = 0
        if channels_last:
            dx_pad = dx_pad.transpose(0, 3, 1, 2)  # (N, C, H_pad, W_pad), channels-last memory
    else:
        dx_pad = xp.zeros((N, C, H_pad, W_pad), dtype=dout.dtype)  # (N, C, H_pad, W_pad)
    w2d, dout3 = w.reshape(F, -1), dout.reshape(N, F, H_out * W_out)  # (N, F, H_out*W_out)
    chunks, KK = chunk_ranges(xp, (N, C, KH, KW, H_out, W_out), dout.itemsize), KH * KW

    def channels(c_range):  # dx of input channels c0:c1 (with workers, one range each)
        c0, c1 = c_range
        w_c = w2d[:, c0 * KK:c1 * KK]  # (F, c*KH*KW)
        for n0, n1, r0, r1 in chunks:
            n, rows, dout_chunk = n1 - n0, r1 - r0, dout3[n0:n1, :, r0 * W_out:r1 * W_out]
            if channels_last:
                dcols = scratch(xp, "cols", (n, rows * W_out, (c1 - c0) * KK), dout.dtype)
                xp.matmul(dout_chunk.transpose(0, 2, 1), w_c, out=dcols)
                dcols = dcols.reshape(n, rows, W_out, c1 - c0, KH, KW)  # pixel-major
                dcols = dcols.transpose(0, 3, 4, 5, 1, 2)  # (n, c, KH, KW, rows, W_out), a view
            else:
                dcols = scratch(xp, "cols", (n, (c1 - c0) * KK, rows * W_out), dout.dtype)
                xp.matmul(w_c.T, dout_chunk, out=dcols)
                dcols = dcols.reshape(n, c1 - c0, KH, KW, rows, W_out)
            for i in range(KH):
                for j in range(KW):
                    y0 = r0 * SH + i
                    dx_pad[n0:n1, c0:c1, y0:y0 + SH * (rows - 1) + 1:SH,
                           j:j + SW * (W_out - 1) + 1:SW] += dcols[:, :, i, j]
    workers.each(channels, workers.shares(C, xp), xp)
    if not (padded or channels_last):
        return dx_pad
    return xp.ascontiguousarray(dx_pad[:, :, top:top + H, left:left + W])  # (N, C, H, W)
