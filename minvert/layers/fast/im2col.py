"""The im2col matrix of a convolution and the forward product ``out = w2d @ cols``, chunk by
chunk: the machinery under fast/conv.py (read layers/conv.py first; this is how it is fast).

``cols`` (C*KH*KW, H_out*W_out) holds in column p = (h, w) the input window under output
pixel p. It is one copy out of a strided *view* of the padded input (``as_strided``: no
loop over pixels, no fancy indexing), made in a reused scratch buffer: a fresh large
array costs as much in page faults as the copy. Small images go side by side into one
``cols``, a large one in bands of rows (MATMUL_COLUMNS), and only those rows are padded at
a time. How the chunks are cut depends on the shapes and the device only.

On a GPU nothing is kept between calls: each scratch array is a fresh one from CuPy's
memory pool (which holds freed blocks for reuse, per device), so several GPUs in one
process never meet each other's buffers and no buffer outlives its call. A large image is
cut into row bands there too, each band's im2col matrix at most WHOLE_BYTES["gpu"].
"""
import importlib
import math
import threading

import numpy as np

from ...backend import get_array_module
from . import workers
from .elementwise import relu_inplace

# Each matmul covers about MATMUL_COLUMNS output pixels: row bands of a large image, or
# several small images side by side. Its im2col matrix (a few MB) is then still in the
# CPU cache when the matmul reads it, and the matmul still big enough to run at full
# speed. Images whose matrix fits WHOLE_BYTES are not split (docs/performance.md). GPUs
# want the biggest matmuls: one per layer unless the matrix passes WHOLE_BYTES["gpu"],
# then bands of rows as large as that bound allows.
MATMUL_COLUMNS = {"cpu": 2048, "gpu": 1 << 40}
WHOLE_BYTES = {"cpu": 32 << 20, "gpu": 1 << 30}
_SCRATCH = {}  # (dtype, slot, thread) -> host buffer whose contents never outlive a call


def scratch(xp, slot, shape, dtype):
    """An uninitialised array. On the CPU from a buffer kept between calls (grown when too
    small), one per thread (a program may run networks on several threads); on a GPU a
    fresh array from CuPy's pool, on the current device."""
    if xp is not np:
        return xp.empty(shape, dtype=dtype)
    size = math.prod(shape)
    key = (np.dtype(dtype).str, slot, threading.get_ident())
    buf = _SCRATCH.get(key)
    if buf is None or buf.size < size:
        buf = _SCRATCH[key] = xp.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def zero_pad(x, top, bottom, left, right):
    """x (N, C, H, W) inside zeros -> (N, C, H+top+bottom, W+left+right), in scratch memory.

    A negative amount crops instead (the transposed convolution of a layer padded by more
    than KH-1 needs that). x itself when there is nothing to pad.
    """
    N, C, H, W = x.shape
    x = x[:, :, max(-top, 0):H - max(-bottom, 0), max(-left, 0):W - max(-right, 0)]
    top, bottom, left, right = max(top, 0), max(bottom, 0), max(left, 0), max(right, 0)
    if not (top or bottom or left or right):
        return x
    H, W = x.shape[2:]
    shape = (N, C, H + top + bottom, W + left + right)
    x_pad = scratch(get_array_module(x), "pad", shape, x.dtype)
    x_pad[:, :, :top] = 0  # only the border needs zeros; the interior is overwritten
    x_pad[:, :, top + H:] = 0
    x_pad[:, :, top:top + H, :left] = 0
    x_pad[:, :, top:top + H, left + W:] = 0
    x_pad[:, :, top:top + H, left:left + W] = x
    return x_pad


def chunk_ranges(xp, shape, itemsize, copies=True):
    """Split the work on an im2col matrix of shape (N, C, KH, KW, H_out, W_out) into
    (n0, n1, r0, r1): samples n0:n1, output rows r0:r1 (see MATMUL_COLUMNS).
    No copy (1x1 stride-1 conv) -> one chunk for all of x."""
    N, H_out, W_out = shape[0], shape[4], shape[5]
    sample_bytes = math.prod(shape[1:]) * itemsize
    device = "cpu" if xp is np else "gpu"
    if not copies:
        chunks = [(0, N, 0, H_out)]
    elif sample_bytes > WHOLE_BYTES[device]:
        rows = (max(1, WHOLE_BYTES[device] * H_out // sample_bytes) if device == "gpu"
                else -(-MATMUL_COLUMNS[device] // W_out))
        chunks = [(n, n + 1, r0, min(H_out, r0 + rows)) for n in range(N)
                  for r0 in range(0, H_out, rows)]
    else:
        per = max(1, min(WHOLE_BYTES[device] // sample_bytes,
                         -(-MATMUL_COLUMNS[device] // (H_out * W_out))))
        chunks = [(n0, min(N, n0 + per), 0, H_out) for n0 in range(0, N, per)]
    return chunks


def windows(x_pad, KH, KW, SH, SW, H_out, W_out):
    """The im2col matrix as a strided VIEW of x_pad (no copy):

    window[n, c, i, j, h, w] = x_pad[n, c, SH*h + i, SW*w + j]   (N, C, KH, KW, H_out, W_out)
    """
    xp = get_array_module(x_pad)
    as_strided = importlib.import_module(xp.__name__ + ".lib.stride_tricks").as_strided
    sN, sC, sH, sW = x_pad.strides
    return as_strided(x_pad, (x_pad.shape[0], x_pad.shape[1], KH, KW, H_out, W_out),
                      (sN, sC, sH, sW, sH * SH, sW * SW))


def _is_x_itself(window):
    """1x1 kernel, stride 1, rows back to back: the im2col matrix is x, reshaped."""
    KH, KW, W_out = window.shape[2], window.shape[3], window.shape[5]
    return KH * KW == 1 and window.strides[5] == window.itemsize and \
        window.strides[4] == W_out * window.itemsize


def im2col(window, n0, n1, r0, r1, into=None):
    """cols (C*KH*KW, n*rows*W_out) of samples n0:n1 side by side, output rows r0:r1: one
    copy into scratch memory (or into ``into``, of that shape). 1x1 stride 1: the view
    (n, C, rows*W_out) of x, no copy."""
    n, (C, KH, KW) = n1 - n0, window.shape[1:4]
    part = window[n0:n1, :, :, :, r0:r1]  # (n, C, KH, KW, rows, W_out)
    if _is_x_itself(window):
        return part.reshape(n, C, -1)  # (n, C, rows*W_out), a view of x
    part = part.transpose(1, 2, 3, 0, 4, 5)  # (C, KH, KW, n, rows, W_out)
    cols = into.reshape(part.shape) if into is not None else \
        scratch(get_array_module(window), "cols", part.shape, window.dtype)
    cols[...] = part  # the single copy
    return cols.reshape(C * KH * KW, -1)  # (C*KH*KW, n*rows*W_out)


def im2col_chunks(x, pad, KH, KW, SH, SW, H_out, W_out):
    """The chunks (n0, n1, r0, r1) of :func:`chunk_ranges` for the im2col matrix of x padded by
    pad = (top, bottom, left, right), to be turned into cols by :func:`chunk_cols`."""
    copies = not (KH * KW == 1 and (SH, SW) == (1, 1) and x.flags.c_contiguous)
    return chunk_ranges(get_array_module(x), (x.shape[0], x.shape[1], KH, KW, H_out, W_out),
                        x.itemsize, copies)


def chunk_cols(x, pad, KH, KW, SH, SW, W_out, chunk, into=None):
    """cols of one chunk (n0, n1, r0, r1), from :func:`im2col`. Only the rows the chunk
    reads are padded: a padded copy of a whole training batch can be larger than the
    layer's output, and a chunk's is still in the CPU cache when im2col reads it."""
    (n0, n1, r0, r1), (H, (top, _, left, right)) = chunk, (x.shape[2], pad)
    y0, y1 = SH * r0 - top, SH * (r1 - 1) + KH - top  # rows of x under output rows r0:r1
    part = zero_pad(x[n0:n1, :, max(y0, 0):min(y1, H)], max(-y0, 0), max(y1 - H, 0), left, right)
    return im2col(windows(part, KH, KW, SH, SW, r1 - r0, W_out), 0, n1 - n0, 0, r1 - r0, into)


def conv_matmul(x, pad, w2d, b, KH, KW, SH, SW, H_out, W_out, scale=None, relu=False,
                residual=None):
    """out[n] = w2d @ im2col(x_pad[n]) (+ b) -> (N, F, H_out, W_out), x_pad = x padded by
    pad. Inference shortcuts, done chunk by chunk like the bias: scale (F,) multiplies
    the product before b is added (folded into w2d instead when it has fewer entries
    than the output: one pass over the output less); residual (N, F, H_out, W_out) is
    added after b; relu: max(out, 0) at the end. With workers (fast/workers.py) the
    chunks are shared out, cut smaller when there are fewer than workers."""
    xp = get_array_module(x)
    N, F = x.shape[0], w2d.shape[0]
    if scale is not None and w2d.shape[1] < N * H_out * W_out:  # fewer weights than outputs
        w2d, scale = w2d * scale.reshape(F, 1), None  # (scale w) @ cols: one pass less
    out = xp.empty((N, F, H_out * W_out), dtype=x.dtype)  # (N, F, H_out*W_out)
    residual = None if residual is None else residual.reshape(N, F, H_out * W_out)

    def product(chunk):
        n0, n1, r0, r1 = chunk
        cols = chunk_cols(x, pad, KH, KW, SH, SW, W_out, chunk)
        out_chunk = out[n0:n1, :, r0 * W_out:r1 * W_out]  # (n, F, rows*W_out)
        if cols.ndim == 3 or n1 - n0 == 1:  # the product lands in NCHW order directly
            xp.matmul(w2d, cols, out=out_chunk if cols.ndim == 3 else out_chunk[0])
        else:  # (F, n, H_out*W_out) -> (n, F, H_out*W_out): a copy of the output's size
            prod = xp.matmul(w2d, cols, out=scratch(xp, "prod", (F, cols.shape[1]), out.dtype))
            out_chunk[...] = prod.reshape(F, n1 - n0, -1).transpose(1, 0, 2)
        if scale is not None:  # now, while the chunk is still in cache
            out_chunk *= scale.reshape(1, -1, 1)
        if b is not None:
            out_chunk += b.reshape(1, -1, 1)
        if residual is not None:
            out_chunk += residual[n0:n1, :, r0 * W_out:r1 * W_out]
        if relu:
            relu_inplace(out_chunk)

    chunks = im2col_chunks(x, pad, KH, KW, SH, SW, H_out, W_out)
    if workers.active(xp) and len(chunks) < workers.count():  # a piece for every worker
        chunks = [piece for chunk in chunks for piece in split_chunk(chunk, workers.count())]
    workers.each(product, chunks, xp)
    return out.reshape(N, F, H_out, W_out)


def split_chunk(chunk, pieces):
    """(n0, n1, r0, r1) cut into up to ``pieces`` chunks: by samples when it holds several,
    else by output rows. Each output pixel is still one column of one product, computed
    the same way, so the result is the same."""
    n0, n1, r0, r1 = chunk
    if n1 - n0 > 1:
        return [(n0 + a, n0 + b, r0, r1) for a, b in workers.ranges(n1 - n0, pieces)]
    return [(n0, n1, r0 + a, r0 + b) for a, b in workers.ranges(r1 - r0, pieces)]
