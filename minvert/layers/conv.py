"""2-D convolution (cross-correlation, as in every deep-learning library), NCHW.

    x: (N, C, H, W)   w: (F, C, KH, KW)   b: (F,)   out: (N, F, H_out, W_out)
    H_out = (H + top + bottom - KH) // SH + 1,   W_out = (W + left + right - KW) // SW + 1
    out[n, f, oh, ow] = b[f] + sum_{c,i,j} w[f, c, i, j] * x_pad[n, c, SH*oh + i, SW*ow + j]

How it is computed (im2col): ``cols`` (C*KH*KW, H_out*W_out) holds in column p = (h, w)
the input window under output pixel p, so a sample's output is ONE matrix product
``w2d (F, C*KH*KW) @ cols``, already in (F, H_out, W_out) order. ``cols`` is one copy out
of a strided *view* of the padded input, made chunk by chunk in reused scratch memory
(im2col.py: how the chunks are cut, and shared out among CPU workers). Backward rebuilds
``cols`` for dw instead of keeping it (KH*KW times the memory of x per layer).
``minvert.bench.bench_layers()`` compares each pass with a bare matmul of the same shape.

Reference: minvert/layers/reference/conv.py (a loop over output pixels, one einsum each). This
version adds speed (one BLAS matmul per band of rows instead of H_out*W_out small products) and
memory (scratch buffers reused, cols rebuilt in backward instead of kept).
"""
import numpy as np

from .. import threads
from ..backend import get_array_module
from ..errors import DTypeError, MinvertError, ShapeError
from . import winograd
from .base import Layer, check_floating, check_rank
from .dense import init_weight
from .im2col import chunk_cols, chunk_ranges, conv_matmul, im2col_chunks, scratch, shared_cols
from .shape import normalize_pad, normalize_pair

# Winograd F(2x2, 3x3) from this many input and output channels per BLAS thread, output
# rows and columns, and output pixels times the batch on (see winograd_pays)
WINOGRAD_MIN_CHANNELS = 128
WINOGRAD_MIN_SIZE = 14
WINOGRAD_MIN_PIXELS = 784


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


def _geometry(x, w, b, stride, pad):
    """Validate the inputs; return the settings as ((SH, SW), (top, bottom, left, right))."""
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
    pad = normalize_pad(pad)
    if H + pad[0] + pad[1] < KH or W + pad[2] + pad[3] < KW:
        raise ShapeError(f"conv kernel {KH}x{KW} is larger than the padded input "
                         f"{H + pad[0] + pad[1]}x{W + pad[2] + pad[3]} (input {H}x{W}, pad {pad}): "
                         f"use a larger image or more padding")
    return (SH, SW), pad


def conv2d_forward(x, w, b=None, stride=1, pad=0, kept=None):
    """x: (N, C, H, W), w: (F, C, KH, KW), b: (F,) or None -> (out (N, F, H_out, W_out), cache).

    stride: int or (SH, SW). pad: int, (top, bottom, left, right) (TensorFlow 'same' for
    even kernels is asymmetric, see :func:`same_padding`), or "same" / "valid".
    H_out = (H + top + bottom - KH) // SH + 1, W_out = (W + left + right - KW) // SW + 1.
    kept: a dict in which a frozen layer keeps its Winograd kernel transform between calls.
    """
    out, stride, pad, U = _forward(x, w, b, stride, pad, kept=kept)
    # dx needs only w; dw rebuilds im2col(x) chunk by chunk: keeping cols (KH*KW times the
    # size of x) for every layer would not fit in memory for a training batch
    cache = {"x": x, "w": w, "stride": stride, "pad": pad, "has_b": b is not None}
    if U is not None:  # Winograd ran: dx will too, from the same transformed kernel, kept
        # by a frozen layer anyway, else rebuilt (16/9 the size of w, too much to hold for
        # every layer of a training batch)
        cache["U"] = U if kept is not None else None
    return out, cache


def _forward(x, w, b, stride, pad, scale=None, relu=False, kept=None, residual=None):
    """conv2d_forward's output without a cache -> (out, (SH, SW), (top, bottom, left, right),
    U), U the Winograd kernel transform when that path ran, else None; scale, relu and
    residual: see conv_matmul."""
    (SH, SW), (top, bottom, left, right) = _geometry(x, w, b, stride, pad)
    (N, C, H, W), (F, _, KH, KW) = x.shape, w.shape
    H_out, W_out = (H + top + bottom - KH) // SH + 1, (W + left + right - KW) // SW + 1
    # BLAS threads that run the products while NumPy runs the transforms on one core: unless
    # minvert's own workers share the transforms out (threads.py); a GPU: 1
    xp = get_array_module(x)
    shared = xp is np and threads.sharing(N * F * C * KH * KW * H_out * W_out)  # one product
    alone = 1 if shared or xp is not np else threads.blas_threads()
    if winograd_pays(N, C, F, H_out, W_out, KH, KW, SH, SW, (top, bottom, left, right), kept,
                     alone):
        U = _kernel_transform(w, kept)
        out = winograd.conv3x3_winograd(x, U, b, (top, bottom, left, right), scale,
                                        relu and residual is None)
        if residual is not None:  # a separate pass: the last conv of a block is 1x1 (ResNet-50)
            out += residual
            if relu:
                xp.maximum(out, 0, out=out)
        return out, (SH, SW), (top, bottom, left, right), U
    out = conv_matmul(x, (top, bottom, left, right), w.reshape(F, -1), b, KH, KW, SH, SW,
                       H_out, W_out, scale, relu, residual)
    return out, (SH, SW), (top, bottom, left, right), None


def winograd_pays(N, C, F, H_out, W_out, KH, KW, SH, SW, pad, kept=None, alone=1):
    """Whether a convolution (and its transposed one, C and F swapped) runs faster by
    Winograd F(2x2, 3x3) (winograd.py) than by im2col, with ``alone`` BLAS threads running
    the products while the transforms run on one core (see _forward).
    Measured (``minvert bench layers``, docs/performance.md): below 128 channels per
    thread Winograd loses. Its matmuls run on every thread, but its transforms, which
    grow with the channels, run on one, while the multiplies it saves grow with their
    product (measured at 1 and 2 threads: 128 channels win at 1 thread and lose at 2,
    256 win at both). 7x7 images lose (short rows of tiles); below 784 output pixels per
    call the kernel transform eats the gain, unless a frozen layer keeps it (``kept``;
    VGG-19's 14x14 layers then gain 3%)."""
    return winograd.applies(KH, KW, SH, SW, pad) \
        and min(C, F) >= WINOGRAD_MIN_CHANNELS * alone \
        and min(H_out, W_out) >= WINOGRAD_MIN_SIZE \
        and (kept is not None or N * H_out * W_out >= WINOGRAD_MIN_PIXELS)


def _kernel_transform(w, kept):
    """winograd.kernel_transform(w), taken from ``kept`` when computed there for this very
    array (a frozen layer's weights are constants; a new array replaces it)."""
    if kept is not None and kept.get("w") is w:
        return kept["U"]
    U = winograd.kernel_transform(w)
    if kept is not None:
        kept.update(w=w, U=U)
    return U


def conv2d_backward(dout, cache, need_dx=True, need_dw=True):
    """dout: (N, F, H_out, W_out) -> (dx (N, C, H, W), dw (F, C, KH, KW), db (F,)).

    None where not requested (need_dx / need_dw False; db also None without bias).

    Derivation, in the notation of the forward pass (one sample; sums also run over n):

        cols[(c, i, j), (h, w)] = x_pad[c, SH*h + i, SW*w + j]        (C*KH*KW, H_out*W_out)
        out[f, p] = sum_k w2d[f, k] * cols[k, p] + b[f]                  (F, H_out*W_out)

    * dw: out is linear in w2d with coefficient cols, so
      dw2d[f, k] = sum_{n,p} dout[n, f, p] * cols[n, k, p], i.e. ``dw2d = dout @ cols^T``
      summed over the batch: the upstream gradient times im2col(x). Reshape (F, C, KH, KW).
    * db: b[f] is added to every output pixel of filter f, so db[f] = sum_{n,h,w} dout[n, f, h, w].
    * dx: first through the matmul, ``dcols = w2d^T @ dout`` (C*KH*KW, H_out*W_out). Each
      x_pad[c, y, z] was copied into cols once for every (i, j, h, w) with SH*h + i = y and
      SW*w + j = z, so its gradient is the sum of those dcols entries (col2im):
      for each offset (i, j), add the plane dcols[(c, i, j), :] into
      dx_pad[c, i::SH, j::SW]; then cut the padding off: dx = dx_pad[:, top:top+H, left:left+W].
      With stride 1 substitute h = y - i:
          dx_pad[c, y, z] = sum_{f,i,j} w[f, c, i, j] * dout[f, y - i, z - j],
      a convolution of dout (zero-padded by KH-1, KW-1) with the kernel flipped in i and j
      and transposed to (C, F, KH, KW): the "transposed convolution". Starting the padding
      at KH-1-top instead of KH-1 lands directly on dx, so nothing needs cutting off.

    Which dx is computed how (``_dx_transposed`` or ``_dx_col2im``): both do one matmul of
    the same size; they differ in the memory traffic around it, counted per kernel offset:
    the transposed convolution builds im2col(dout) (F*H*W) and permutes w (F*C, a slow
    strided copy; none for 1x1); col2im writes dcols and adds it back (2*C*H*W). Hence
    the transposed convolution when F*H*W + F*C < 2*C*H*W (for C == F: H*W > C), that is
    VGG's layers down to 28x28, and col2im for 512 channels at 14x14 and 7x7
    (``bench_layers(compare_dx=True)`` times both). Strides > 1 always use col2im: the
    transposed convolution would need SH*SW times the work on a zero-dilated dout.
    """
    x, w = cache["x"], cache["w"]
    (SH, SW), (top, bottom, left, right) = cache["stride"], cache["pad"]
    (N, C, H, W), (F, _, KH, KW) = x.shape, w.shape
    H_out, W_out = (H + top + bottom - KH) // SH + 1, (W + left + right - KW) // SW + 1
    if tuple(dout.shape) != (N, F, H_out, W_out):
        raise ShapeError(f"conv dout has shape {tuple(dout.shape)}; expected the output shape "
                         f"{(N, F, H_out, W_out)} of the last forward pass")
    dout = dout.astype(x.dtype, copy=False)
    if get_array_module(x) is np:  # the backward pass is one product to threads' rule
        threads.sharing(N * F * C * KH * KW * H_out * W_out)
    dx = dw = db = None
    if need_dw:
        dw = _dw(x, dout, KH, KW, SH, SW, (top, bottom, left, right)).reshape(w.shape)
        db = dout.sum(axis=(0, 2, 3)) if cache["has_b"] else None
    if need_dx and "U" in cache:  # the forward ran by Winograd: so does its transpose
        U = winograd.kernel_transform(w) if cache["U"] is None else cache["U"]
        dx = winograd.dx_winograd(dout, U, (top, bottom, left, right))
    elif need_dx and SH == SW == 1 and (KH * KW == 1 or F * H * W + F * C < 2 * C * H * W):
        dx = _dx_transposed(dout, w, (top, bottom, left, right))  # the cheaper one, see above
    elif need_dx:
        dx = _dx_col2im(dout, w, x.shape, SH, SW, (top, bottom, left, right))
    return dx, dw, db


def _dw(x, dout, KH, KW, SH, SW, pad):
    """dw2d (F, C*KH*KW) = sum over samples of dout (F, H_out*W_out) @ cols^T, chunk by chunk.
    On several CPU workers (threads.py) each sums its own share of the chunks, or, with
    too few chunks, each computes its share of the filters (see conv_matmul)."""
    xp = get_array_module(x)
    (N, C), (F, H_out, W_out) = x.shape[:2], dout.shape[1:]
    dout3 = dout.reshape(N, F, H_out * W_out)  # (N, F, H_out*W_out)

    def accumulate(chunks, out, f0=0, shared=None, empty=True):
        """out (f, C*KH*KW) = (or +=, unless empty) rows f0:f0+f of the sum over chunks."""
        for n0, n1, r0, r1 in chunks:
            cols = chunk_cols(x, pad, KH, KW, SH, SW, W_out, (n0, n1, r0, r1)) \
                if shared is None else shared
            dout_chunk = dout3[n0:n1, f0:f0 + out.shape[0], r0 * W_out:r1 * W_out]
            if cols.ndim == 3:  # x itself: per-sample products (f, C), summed
                part = xp.matmul(dout_chunk, cols.transpose(0, 2, 1)).sum(axis=0)
            else:  # samples side by side, like cols: (f, n*rows*W_out) @ cols^T
                dout2d = dout_chunk.transpose(1, 0, 2).reshape(out.shape[0], -1)
                part = xp.matmul(dout2d, cols.T, out=out if empty else None)
            if part is not out:
                if empty:
                    out[...] = part
                else:
                    out += part
            empty = False
        return out

    dw2d = xp.empty((F, C * KH * KW), dtype=dout.dtype)
    if not threads.worth_splitting(xp, macs=N * F * H_out * W_out * C * KH * KW):
        return accumulate(im2col_chunks(x, pad, KH, KW, SH, SW, H_out, W_out), dw2d)
    chunks = im2col_chunks(x, pad, KH, KW, SH, SW, H_out, W_out, 2 * threads.workers())
    if len(chunks) >= 2 * threads.workers():  # each worker its chunks, then one sum
        pieces = threads.parts(len(chunks))
        sums = threads.run([lambda p=p, k=k: accumulate(
            chunks[p[0]:p[1]], dw2d if k == 0 else xp.empty_like(dw2d))
            for k, p in enumerate(pieces)])
        for part in sums[1:]:
            dw2d += part
        return dw2d
    for k, chunk in enumerate(chunks):  # each worker its filters
        cols = shared_cols(x, pad, KH, KW, SH, SW, W_out, chunk)
        threads.run([lambda f=f: accumulate([chunk], dw2d[f[0]:f[1]], f[0], cols, k == 0)
                     for f in threads.parts(F)])
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
    channels_last, padded = C > W_out, bool(top or bottom or left or right)
    if channels_last or padded:  # dx_pad is a scratch buffer: the result is a copy of it
        dx_pad = scratch(xp, "dx", (N, H_pad, W_pad, C) if channels_last else
                         (N, C, H_pad, W_pad), dout.dtype)
        dx_pad[...] = 0
        if channels_last:
            dx_pad = dx_pad.transpose(0, 3, 1, 2)  # (N, C, H_pad, W_pad), channels-last memory
    else:
        dx_pad = xp.zeros((N, C, H_pad, W_pad), dtype=dout.dtype)  # (N, C, H_pad, W_pad)
    w2d, dout3 = w.reshape(F, -1), dout.reshape(N, F, H_out * W_out)  # (N, F, H_out*W_out)

    def scatter(c0, c1):  # channels c0:c1 of dx: the columns c0*KH*KW.. of w2d alone
        c, w2d_c = c1 - c0, w2d[:, c0 * KH * KW:c1 * KH * KW]  # (F, c*KH*KW)
        for n0, n1, r0, r1 in chunk_ranges(xp, (N, C, KH, KW, H_out, W_out), dout.itemsize):
            n, rows, dout_chunk = n1 - n0, r1 - r0, dout3[n0:n1, :, r0 * W_out:r1 * W_out]
            if channels_last:
                dcols = scratch(xp, "cols", (n, rows * W_out, c * KH * KW), dout.dtype)
                xp.matmul(dout_chunk.transpose(0, 2, 1), w2d_c, out=dcols)
                dcols = dcols.reshape(n, rows, W_out, c, KH, KW)  # pixel-major
                dcols = dcols.transpose(0, 3, 4, 5, 1, 2)  # (n, c, KH, KW, rows, W_out), a view
            else:
                dcols = scratch(xp, "cols", (n, c * KH * KW, rows * W_out), dout.dtype)
                xp.matmul(w2d_c.T, dout_chunk, out=dcols)
                dcols = dcols.reshape(n, c, KH, KW, rows, W_out)  # (n, c, KH, KW, rows, W_out)
            for i in range(KH):
                for j in range(KW):
                    y0 = r0 * SH + i
                    dx_pad[n0:n1, c0:c1, y0:y0 + SH * (rows - 1) + 1:SH,
                           j:j + SW * (W_out - 1) + 1:SW] += dcols[:, :, i, j]

    # on several CPU workers (threads.py) each computes its share of the channels
    threads.split(scatter, C, xp, macs=N * F * H_out * W_out * C * KH * KW)
    if not (padded or channels_last):
        return dx_pad
    return xp.ascontiguousarray(dx_pad[:, :, top:top + H, left:left + W])  # (N, C, H, W)


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
        out, self.cache = conv2d_forward(x, self.params["w"], self.params.get("b"),
                                         self.stride, self.pad, self._kept_kernel())
        return out

    def predict(self, x, affine=None, relu=False, residual=None):
        """Forward without a cache, fused with what follows it in the network, applied to
        each chunk of the output while it is in the CPU cache (no separate pass over the
        output). affine: (scale, shift), each (F,), per output channel, e.g. an inference
        batch-norm: (conv(x, w) + b) * scale + shift. residual: an array shaped like the
        output, then added (a residual block's shortcut). relu: then max(., 0)."""
        b, scale = self.params.get("b"), None
        if affine is not None:
            scale, shift = affine
            b = shift if b is None else b * scale + shift
        return _forward(x, self.params["w"], b, self.stride, self.pad, scale, relu,
                        self._kept_kernel(), residual)[0]

    def _kept_kernel(self):
        """The dict in which the layer keeps its Winograd kernel transform between calls
        while frozen (weights of a frozen layer are constants: assign a new array to
        params["w"] to change them); None, and nothing kept, while trainable."""
        if self.trainable:
            self.__dict__.pop("kept", None)
            return None
        return self.__dict__.setdefault("kept", {})

    def backward(self, dout):
        if self.cache is None:
            raise MinvertError("Conv2D.backward called before forward (or after release())")
        dx, dw, db = conv2d_backward(dout, self.cache, self.need_dx, self.trainable)
        if self.trainable:
            self.grads["w"] = dw
            if db is not None:
                self.grads["b"] = db
        return dx
