"""The fast engine's nearest upsampling + stride-1 convolution (every stage of paper 003's
decoder), computed without ever building the upsampled image. The same function as
layers/upconv.py (upsample, then convolve), tested equal to it.

    x: (N, C, H, W) -> up: (N, C, fh*H, fw*W),   up[n, c, y, z] = x[n, c, y // fh, z // fw]
    out = conv2d(up, w (F, C, KH, KW), b, stride 1, pad (top, bottom, left, right))
        = (N, F, fh*H, fw*W)   when the padding keeps the size: top + bottom = KH - 1,
                               left + right = KW - 1 ('same', as in the decoder)

The plain way (``upsample_nearest_forward`` then ``conv2d_forward``) builds up, fh*fw
times the size of x, and spends KH*KW multiplies per output value and input channel.
But output row y = fh*h + a ("phase" a = y mod fh) reads the up rows y - top + i,
i = 0..KH-1, which are the input rows h + (a + i - top) // fh: several kernel rows read
the SAME input row, so their taps can be added up first. For fh = 2 and a 3x3 kernel:

    phase a = 0: kernel rows 0 | 1, 2   land on input rows h-1 | h      (taps w0 | w1 + w2)
    phase a = 1: kernel rows 0, 1 | 2   land on input rows h   | h+1    (taps w0 + w1 | w2)

so each of the fh*fw = 4 output phases is a 2x2 convolution of x itself: 4 multiplies
per output instead of 9, on an input 4x smaller. All phases run as ONE convolution of x
(the phase kernels stacked as fh*fw*F output channels, shifted so that one padding
serves them all, shorter ones filled with zero taps) whose output ``grid``
(N, fh*fw*F, Hg, Wg) is then interleaved into out (a "pixel shuffle"):

    out[n, f, fh*h + a, fw*v + c] = grid[n, (a*fw + c)*F + f, h + da, v + dc] + bias[f]

The backward passes follow from the same picture, since out is a linear map of grid:
d grid = dout de-interleaved (zero where no output reads grid), then the convolution's
own backward (fast/conv.py) gives dx directly and the
gradient of the stacked phase kernels, which is folded back onto w by adding each phase
tap's gradient to every kernel tap that was summed into it (the transpose of the sum).

Exactly equal in exact arithmetic; in floating point the summed taps round differently
(float32: ~1e-7 relative, tests/test_upconv.py). Any other padding, or an input so
small that the grid's border costs more than the phases save (``FUSE_MIN_SIZE``), takes
the plain path: upsample, then the fast convolution.
"""
import numpy as np

from ...backend import get_array_module
from ...errors import ShapeError
from ..geometry import normalize_pad, normalize_pair
from . import workers
from .conv import conv2d_backward, conv2d_forward

# Inputs smaller than this (min(H, W)) take the plain path: the grid is (H + 1) x (W + 1)
# for a 3x3 kernel, 56% more work than needed at 4x4, and the stacked kernels 16/9 the
# size of w
FUSE_MIN_SIZE = 8
# rows (f, c) of w per block when the phase kernels are summed up or folded back: the
# block stays in the CPU cache while the phases read it
PHASE_BLOCK = 1 << 16


def phase_taps(K, top, f):
    """Per output phase a = 0..f-1 of one axis: (lo_a, rows_a), where kernel tap i of
    phase a reads input offset lo_a + rows_a[i] (relative to the output's input row h),
    rows_a[i] = (a + i - top) // f - lo_a."""
    taps = []
    for a in range(f):
        offsets = [(a + i - top) // f for i in range(K)]
        taps.append((min(offsets), [o - min(offsets) for o in offsets]))
    return taps


def _plan(x_shape, w_shape, pad, factor):
    """The fused path's geometry, or None when the plain path applies:
    (taps_h, taps_w, (kh, kw), pad of the grid convolution, (Hg, Wg))."""
    (N, C, H, W), (F, _, KH, KW) = x_shape, w_shape
    (fh, fw), (top, bottom, left, right) = factor, pad
    if top + bottom != KH - 1 or left + right != KW - 1 or min(H, W) < FUSE_MIN_SIZE:
        return None
    taps_h, taps_w = phase_taps(KH, top, fh), phase_taps(KW, left, fw)
    kh = max(max(rows) + 1 for _, rows in taps_h)
    kw = max(max(cols) + 1 for _, cols in taps_w)
    lo_h, hi_h = min(lo for lo, _ in taps_h), max(lo for lo, _ in taps_h)
    lo_w, hi_w = min(lo for lo, _ in taps_w), max(lo for lo, _ in taps_w)
    grid_pad = (-lo_h, hi_h + kh - 1, -lo_w, hi_w + kw - 1)
    if min(grid_pad) < 0:
        return None
    return taps_h, taps_w, (kh, kw), grid_pad, (H + hi_h - lo_h, W + hi_w - lo_w)


def _phase_pairs(taps_h, taps_w):
    """(a, c, i, j, r, s): kernel tap (i, j) is summed into tap (r, s) of phase (a, c)."""
    return [(a, c, i, j, r, s)
            for a, (_, rows) in enumerate(taps_h) for c, (_, cols) in enumerate(taps_w)
            for i, r in enumerate(rows) for j, s in enumerate(cols)]


def _phase_matrices(xp, taps_h, taps_w, K, k, dtype):
    """T (fh*fw, KH*KW, kh*kw), 0 or 1: T[p, (i, j), (r, s)] = 1 when kernel tap (i, j)
    is summed into tap (r, s) of phase p = a*fw + c (K = (KH, KW), k = (kh, kw))."""
    T = np.zeros((len(taps_h) * len(taps_w), K[0] * K[1], k[0] * k[1]), dtype=dtype)
    for a, c, i, j, r, s in _phase_pairs(taps_h, taps_w):
        T[a * len(taps_w) + c, i * K[1] + j, r * k[1] + s] = 1
    return xp.asarray(T)


def _phase_weights(w, taps_h, taps_w, kh, kw):
    """w (F, C, KH, KW) -> the stacked phase kernels (fh*fw*F, C, kh, kw): for each phase
    p, wp[p] (F*C, kh*kw) = w (F*C, KH*KW) @ T[p], a sum of taps per entry, computed as a
    product (a block of rows of w at a time, read from the CPU cache by the four phases)."""
    xp = get_array_module(w)
    (F, C, KH, KW), rows = w.shape, w.shape[0] * w.shape[1]
    T = _phase_matrices(xp, taps_h, taps_w, (KH, KW), (kh, kw), w.dtype)
    w9 = xp.ascontiguousarray(w).reshape(rows, KH * KW)  # (F*C, KH*KW)
    wp = xp.empty((len(T), rows, kh * kw), dtype=w.dtype)  # (fh*fw, F*C, kh*kw)
    step = PHASE_BLOCK if xp is np else rows

    def block(r0):  # rows r0:r0+step of every phase
        for p in range(len(T)):
            xp.matmul(w9[r0:r0 + step], T[p], out=wp[p, r0:r0 + step])
    workers.each(block, range(0, rows, step), xp)
    return wp.reshape(-1, C, kh, kw)  # (fh*fw*F, C, kh, kw)


def _fold_phase_grad(dwp, w_shape, taps_h, taps_w):
    """The transpose of _phase_weights: dwp (fh*fw*F, C, kh, kw) -> dw (F, C, KH, KW) =
    the sum over phases p of dwp[p] (F*C, kh*kw) @ T[p]^T, a block of rows at a time."""
    xp = get_array_module(dwp)
    (F, C, KH, KW), (kh, kw) = w_shape, dwp.shape[2:]
    T = _phase_matrices(xp, taps_h, taps_w, (KH, KW), (kh, kw), dwp.dtype)
    dwp = dwp.reshape(len(T), F * C, kh * kw)  # (fh*fw, F*C, kh*kw)
    dw = xp.empty((F * C, KH * KW), dtype=dwp.dtype)
    step = PHASE_BLOCK if xp is np else F * C

    def block(r0):  # rows r0:r0+step of dw
        rows = dw[r0:r0 + step]
        xp.matmul(dwp[0, r0:r0 + step], T[0].T, out=rows)
        for p in range(1, len(T)):
            rows += dwp[p, r0:r0 + step] @ T[p].T
    workers.each(block, range(0, F * C, step), xp)
    return dw.reshape(w_shape)


def _offsets(taps):
    """Per phase, where its outputs start in the grid: lo_a - min(lo)."""
    lo_min = min(lo for lo, _ in taps)
    return [lo - lo_min for lo, _ in taps]


def _upsample(x, fh, fw):
    """Nearest upsampling, computed as layers/upsample.py does (the same bits): column j of
    every block at once, so that NumPy's inner loop runs along W."""
    N, C, H, W = x.shape
    up = get_array_module(x).empty((N, C, H, fh, W, fw), dtype=x.dtype)
    up[..., 0] = x[:, :, :, None, :]  # (N, C, H, 1, W) broadcast over the fh rows
    for j in range(1, fw):
        up[..., j] = up[..., 0]
    return up.reshape(N, C, H * fh, W * fw)


def _upsample_backward(dup, fh, fw):
    """The sum over each fh x fw block, as layers/upsample.py computes it (the same bits):
    the fh rows first (whole rows of dup), then the fw columns by slices."""
    N, C, H_up, W_up = dup.shape
    H, W = H_up // fh, W_up // fw
    cols = dup.reshape(N, C, H, fh, W_up).sum(axis=3).reshape(N, C, H, W, fw)
    dx = cols[..., 0].copy()
    for j in range(1, fw):
        dx += cols[..., j]
    return dx


def upsample_conv2d_forward(x, w, b=None, pad=0, factor=2):
    """x: (N, C, H, W), w: (F, C, KH, KW), b: (F,) or None -> (out, cache);
    out (N, F, H_out, W_out) = conv2d(upsample_nearest(x, factor), w, b, 1, pad),
    H_out = fh*H + top + bottom - KH + 1 (= fh*H for 'same' padding)."""
    fh, fw = normalize_pair(factor, "upsampling factor")
    pad = normalize_pad(pad)
    if x.ndim != 4:
        raise ShapeError(f"input has shape {tuple(x.shape)}; expected 4-D (N, C, H, W)")
    plan = _plan(x.shape, w.shape, pad, (fh, fw))
    if plan is None:  # the plain path: upsample, then convolve
        out, conv_cache = conv2d_forward(_upsample(x, fh, fw), w, b, 1, pad)
        # x only for its shape (it is alive in the layer before anyway)
        return out, {"plain": conv_cache, "factor": (fh, fw), "x": x, "fast": True}
    taps_h, taps_w, (kh, kw), grid_pad, (Hg, Wg) = plan
    xp = get_array_module(x)
    (N, C, H, W), F = x.shape, w.shape[0]
    grid, _ = conv2d_forward(x, _phase_weights(w, taps_h, taps_w, kh, kw), None, 1, grid_pad)
    grid = grid.reshape(N, fh, fw, F, Hg, Wg)  # (N, fh, fw, F, Hg, Wg)
    out = xp.empty((N, F, H, fh, W, fw), dtype=x.dtype)  # (N, F, H, fh, W, fw)
    for a, da in enumerate(_offsets(taps_h)):  # output phase (a, c): rows a::fh, columns c::fw
        for c, dc in enumerate(_offsets(taps_w)):
            phase = grid[:, a, c, :, da:da + H, dc:dc + W]  # (N, F, H, W)
            if b is None:
                out[:, :, :, a, :, c] = phase
            else:
                xp.add(phase, b.reshape(1, F, 1, 1), out=out[:, :, :, a, :, c])
    # the fused path needs only x and w: the phase kernels are rebuilt in backward
    # (16/9 the size of w for 3x3, too much to keep for every layer)
    cache = {"x": x, "w": w, "pad": pad, "factor": (fh, fw), "has_b": b is not None, "fast": True}
    return out.reshape(N, F, fh * H, fw * W), cache


def upsample_conv2d_backward(dout, cache, need_dx=True, need_dw=True):
    """dout: (N, F, H_out, W_out) -> (dx (N, C, H, W), dw (F, C, KH, KW), db (F,)),
    None where not requested (db also None without bias)."""
    if "plain" in cache:
        dup, dw, db = conv2d_backward(dout, cache["plain"], need_dx, need_dw)
        return _upsample_backward(dup, *cache["factor"]) if need_dx else None, dw, db
    x, w, (fh, fw) = cache["x"], cache["w"], cache["factor"]
    taps_h, taps_w, (kh, kw), grid_pad, (Hg, Wg) = _plan(x.shape, w.shape, cache["pad"], (fh, fw))
    xp = get_array_module(x)
    (N, C, H, W), F = x.shape, w.shape[0]
    if tuple(dout.shape) != (N, F, fh * H, fw * W):
        raise ShapeError(f"upsample-conv dout has shape {tuple(dout.shape)}; expected the "
                         f"output shape {(N, F, fh * H, fw * W)} of the last forward pass")
    dout = dout.astype(x.dtype, copy=False)
    dout6 = dout.reshape(N, F, H, fh, W, fw)  # (N, F, H, fh, W, fw)
    dgrid = xp.zeros((N, fh, fw, F, Hg, Wg), dtype=x.dtype)  # zero where no output reads
    for a, da in enumerate(_offsets(taps_h)):
        for c, dc in enumerate(_offsets(taps_w)):
            dgrid[:, a, c, :, da:da + H, dc:dc + W] = dout6[:, :, :, a, :, c]
    wp = _phase_weights(w, taps_h, taps_w, kh, kw)
    grid_cache = {"x": x, "w": wp, "stride": (1, 1), "pad": grid_pad, "has_b": False}
    dx, dwp, _ = conv2d_backward(dgrid.reshape(N, -1, Hg, Wg), grid_cache, need_dx, need_dw)
    dw = _fold_phase_grad(dwp, w.shape, taps_h, taps_w) if need_dw else None
    db = dout.sum(axis=(0, 2, 3)) if need_dw and cache["has_b"] else None
    return dx, dw, db
