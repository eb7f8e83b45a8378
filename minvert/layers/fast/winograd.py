"""Winograd minimal filtering F(2x2, 3x3) for stride-1 3x3 convolutions (Lavin & Gray,
"Fast Algorithms for Convolutional Neural Networks", 2016).

The same function as :func:`~minvert.layers.conv.conv2d_forward` (the readable version,
tested equal), with 2.25x fewer multiplies. One dimension first: two outputs of a 3-tap
filter g over four inputs d,

    y0 = d0 g0 + d1 g1 + d2 g2,    y1 = d1 g0 + d2 g1 + d3 g2        (6 multiplies)

equal  y0 = m0 + m1 + m2,  y1 = m1 - m2 - m3  with the 4 products

    m0 = (d0 - d2) g0     m1 = (d1 + d2) (g0 + g1 + g2) / 2
    m3 = (d1 - d3) g2     m2 = (d2 - d1) (g0 - g1 + g2) / 2

In matrices, y = A^T [(G g) * (B^T d)] with

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]    (input transform)
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]      (kernel transform)
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]                                (output transform)

Nested in both directions, a 2x2 output tile from a 4x4 input tile d is
Y = A^T [(G g G^T) * (B^T d B)] A: 16 multiplies instead of 36. Over channels the
elementwise product becomes a sum over c, so for each of the 16 positions (xi, nu) of
the 4x4 transformed tile there is ONE matrix product

    M[xi, nu] (F, tiles) = U[xi, nu] (F, C) @ V[xi, nu] (C, tiles)

with U = G g G^T per (f, c) and V = B^T d B per (c, tile); tiles overlap by 2 pixels
(a 4x4 window every 2 pixels).

How the transforms are computed (only additions): the padded input is cut into its four
*phase planes* (even/odd rows x even/odd columns, each (C, N, tile rows + 1, tile
columns + 1)). Column j of tile (t, u) is then element u + j // 2 of the plane of parity
j % 2, and row i row t + i // 2 of the plane of parity i % 2: in the flattened planes each
term of B^T d B is a whole plane shifted by 0, 1, R or R + 1 elements (R = tile columns
+ 1), so each addition is ONE contiguous pass, done a few channels at a time (CHUNK
values) while they are in the CPU cache. The planes' extra row and column give values
for tiles that do not exist: computed, never used. The output transform A^T M A needs no
shifts: contiguous sums give the four output phases, each then copied into every other
pixel of the output.

Backward to the input of a stride-1 convolution is the convolution of dout with the
flipped kernel, transposed to (C, F) (layers/conv.py derives it), so it runs through the same
function; the weight gradient stays on the im2col path.

Error: the transforms multiply by 1/2 and add up to 9 terms of each sign, so rounding
grows by a small constant factor over the direct sum (float32: a few 1e-7 relative to
the largest output; tests/test_winograd.py checks < 1e-4 against float64 on VGG-like
layers). Larger tiles (F(4x4, 3x3), 4x fewer multiplies) have transform entries up to
8 and lose about 100x more precision, so they are not used.
"""
import numpy as np

from ...backend import get_array_module
from .elementwise import relu_inplace
from . import workers
from .im2col import scratch

# V and M of one band (samples and tile rows) stay under about this many bytes each: fewer,
# larger matmuls beat bands that fit in the CPU cache (docs/performance.md)
BAND_BYTES = 32 << 20
# rows (f, c) per block of the kernel transform: the transpose stays in cache
KERNEL_BLOCK = 4096
# values per pass of the transforms (a few channels): their temporaries stay in the CPU cache
CHUNK = 1 << 14


def applies(KH, KW, SH, SW, pad):
    """Geometry only: a 3x3 kernel at stride 1 with padding of at most 2 on each side
    (backward to the input pads dout by 2 - pad)."""
    return (KH, KW, SH, SW) == (3, 3, 1, 1) and max(pad) <= 2


def kernel_transform(w):
    """w (F, C, 3, 3) -> U (16, F, C), U[4*xi + nu] = (G w[f, c] G^T)[xi, nu].

    As matrix products with the 16 x 9 matrix of G (x) G (Kronecker product):
    U[(xi, nu), (f, c)] = sum_{i,j} G[xi, i] G[nu, j] w[f, c, i, j], in blocks of
    KERNEL_BLOCK rows of w so that the (f, c) <-> (xi, nu) transpose stays in cache."""
    xp = get_array_module(w)
    F, C = w.shape[:2]
    G = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
    GG = xp.asarray([[G[xi][i] * G[nu][j] for i in range(3) for j in range(3)]
                     for xi in range(4) for nu in range(4)], dtype=w.dtype)  # (16, 9)
    w9 = xp.ascontiguousarray(w).reshape(F * C, 9)  # (F*C, 9)
    U = xp.empty((16, F * C), dtype=w.dtype)
    step = KERNEL_BLOCK if xp is np else F * C
    for r0 in range(0, F * C, step):
        U[:, r0:r0 + step] = (w9[r0:r0 + step] @ GG.T).T
    return U.reshape(16, F, C)  # (16, F, C)


def flip_transpose(U):
    """The kernel transform of the flipped kernel transposed to (C, F, 3, 3) (backward to
    the input), from U itself: G g reversed = (G g)[q] with q = (3, 1, 2, 0), so entry
    (xi, nu) is U[q[xi], q[nu]] transposed. -> 16 matrices (C, F) (views on NumPy)."""
    q = (3, 1, 2, 0)
    order = [4 * q[k // 4] + q[k % 4] for k in range(16)]
    if get_array_module(U) is np:  # transposed views: BLAS reads them as they are
        return [U[k].T for k in order]
    xp = get_array_module(U)
    return U[xp.asarray(order)].transpose(0, 2, 1)  # (16, C, F); a device index, not a host list


def _bands(N, TH, row_bytes):
    """(n0, n1, t0, t1): samples n0:n1 and tile rows t0:t1 per band, V of one band near
    BAND_BYTES at most (``row_bytes``: V of one tile row of one sample); whole samples
    while one fits, else bands of tile rows."""
    sample = row_bytes * (TH + 1)  # the planes carry one extra tile row per band
    if sample * N <= BAND_BYTES:
        return [(0, N, 0, TH)]
    if sample <= BAND_BYTES:
        per = BAND_BYTES // sample
        return [(n0, min(N, n0 + per), 0, TH) for n0 in range(0, N, per)]
    rows = max(1, BAND_BYTES // row_bytes - 1)
    return [(n, n + 1, t0, min(TH, t0 + rows)) for n in range(N) for t0 in range(0, TH, rows)]


def _plane_slices(x_shape, pad, t0, nb, TW):
    """For each phase (a, b) (row, column parity): (rows, cols) of its plane that hold input
    values and the (rows, cols) slices of x they come from, or None when the plane holds
    padding only. plane[c, n, t, u] = x_pad[n, c, 2 (t0 + t) + a, 2 u + b]."""
    (H, W), (top, _, left, _) = x_shape[2:], pad
    slices = []
    for a in range(2):
        for b in range(2):
            t_lo = max(0, -(-(top - a - 2 * t0) // 2))
            t_hi = min(nb + 1, (H - 1 + top - a - 2 * t0) // 2 + 1)
            u_lo, u_hi = max(0, -(-(left - b) // 2)), min(TW + 1, (W - 1 + left - b) // 2 + 1)
            if t_lo >= t_hi or u_lo >= u_hi:
                slices.append(None)
                continue
            r, s = 2 * (t0 + t_lo) + a - top, 2 * u_lo + b - left
            slices.append(((slice(t_lo, t_hi), slice(u_lo, u_hi)),
                           (slice(r, r + 2 * (t_hi - t_lo) - 1, 2),
                            slice(s, s + 2 * (u_hi - u_lo) - 1, 2))))
    return slices


def _input_transform(xp, x, pad, band, TW, V):
    """V (16, C, n * (nb + 1) * (TW + 1)) = B^T d B of every tile of ``band`` (n0, n1, t0,
    t1) of x padded by ``pad``, a few channels at a time: their phase planes, then the
    row and column transforms as contiguous passes over the flattened planes."""
    n0, n1, t0, t1 = band
    C, n, nb, R = x.shape[1], n1 - n0, t1 - t0, TW + 1
    Q = n * (nb + 1) * R  # values per channel in a plane
    step = max(1, CHUNK // Q) if xp is np else C  # channels per pass (a GPU: all at once)
    slices = _plane_slices(x.shape, pad, t0, nb, TW)

    def transform(c0):  # channels c0:c0+step
        c1 = min(C, c0 + step)
        L = (c1 - c0) * Q
        P = scratch(xp, "wino_p", (4, L + R + 1), x.dtype)  # the planes, then a tail
        P[...] = 0
        for k, where in enumerate(slices):
            if where is not None:
                plane = P[k, :L].reshape(c1 - c0, n, nb + 1, R)
                (rows, cols), (x_rows, x_cols) = where
                plane[:, :, rows, cols] = x[n0:n1, c0:c1, x_rows, x_cols].transpose(1, 0, 2, 3)
        E = scratch(xp, "wino_e", (2, 4, L + R), x.dtype)  # B^T d along the tile rows
        for a in range(2):  # columns j = 0..3 of every tile: even, odd, even + 1, odd + 1
            d0, d1, d2, d3 = P[2 * a, :-1], P[2 * a + 1, :-1], P[2 * a, 1:], P[2 * a + 1, 1:]
            xp.subtract(d0, d2, out=E[a, 0])
            xp.add(d1, d2, out=E[a, 1])
            xp.subtract(d2, d1, out=E[a, 2])
            xp.subtract(d1, d3, out=E[a, 3])
        Vc = V[:, c0:c1].reshape(4, 4, L)  # (xi, nu, values)
        for nu in range(4):  # rows i = 0..3: even, odd, even one row on, odd one row on
            d0, d1, d2, d3 = E[0, nu, :L], E[1, nu, :L], E[0, nu, R:], E[1, nu, R:]
            xp.subtract(d0, d2, out=Vc[0, nu])
            xp.add(d1, d2, out=Vc[1, nu])
            xp.subtract(d2, d1, out=Vc[2, nu])
            xp.subtract(d1, d3, out=Vc[3, nu])
    workers.each(transform, range(0, C, step), xp)


def _output_transform(xp, M, out_band, b, scale, relu):
    """M (16, F, n * (nb + 1) * (TW + 1)) -> out_band (n, F, 2 nb, 2 TW) = A^T M A per tile
    (then * scale, + b, max(., 0), each optional), a few output channels at a time: four
    contiguous sums give the four output phases, each copied into every other pixel."""
    (n, F, H2, W2), Q = out_band.shape, M.shape[2]  # Q: values per channel
    nb, TW = H2 // 2, W2 // 2
    step = max(1, CHUNK // Q) if xp is np else F
    out6 = out_band.reshape(n, F, nb, 2, TW, 2)  # (n, F, tile row, a, tile column, b)

    def transform(f0):  # output channels f0:f0+step
        f1 = min(F, f0 + step)
        Mc = M[:, f0:f1].reshape(4, 4, -1)  # (xi, nu, values)
        S = scratch(xp, "wino_s", (2, 4, Mc.shape[2]), M.dtype)  # A^T M along the tile rows
        for nu in range(4):
            xp.add(Mc[0, nu], Mc[1, nu], out=S[0, nu])
            S[0, nu] += Mc[2, nu]
            xp.subtract(Mc[1, nu], Mc[2, nu], out=S[1, nu])
            S[1, nu] -= Mc[3, nu]
        Y = scratch(xp, "wino_y", (2, f1 - f0, Q), M.dtype)  # output phases (a, 0) and (a, 1)
        for a in range(2):
            xp.add(S[a, 0], S[a, 1], out=Y[0].reshape(-1))
            Y[0] += S[a, 2].reshape(Y[0].shape)
            xp.subtract(S[a, 1], S[a, 2], out=Y[1].reshape(-1))
            Y[1] -= S[a, 3].reshape(Y[1].shape)
            if scale is not None:  # the inference fusions, on values still in cache
                Y *= scale[f0:f1].reshape(1, -1, 1)
            if b is not None:
                Y += b[f0:f1].reshape(1, -1, 1)
            if relu:
                relu_inplace(Y)
            for c in range(2):
                phase = Y[c].reshape(f1 - f0, n, nb + 1, TW + 1)[:, :, :nb, :TW]
                out6[:, f0:f1, :, a, :, c] = phase.transpose(1, 0, 2, 3)
    workers.each(transform, range(0, F, step), xp)


def conv3x3_winograd(x, U, b=None, pad=(1, 1, 1, 1), scale=None, relu=False):
    """x: (N, C, H, W), U: :func:`kernel_transform` of w (F, C, 3, 3) (or 16 matrices
    (F, C)), b: (F,) or None, pad (top, bottom, left, right) -> out (N, F, H_out, W_out),
    H_out = H + top + bottom - 2: the stride-1 convolution. scale (F,) and relu as in
    im2col.conv_matmul (inference fusions)."""
    xp = get_array_module(x)
    (N, C, H, W), F = x.shape, U[0].shape[0]
    top, bottom, left, right = pad
    H_out, W_out = H + top + bottom - 2, W + left + right - 2
    TH, TW = -(-H_out // 2), -(-W_out // 2)  # tiles; an odd size gets a zero row / column
    out = xp.empty((N, F, 2 * TH, 2 * TW), dtype=x.dtype)
    for n0, n1, t0, t1 in _bands(N, TH, 16 * max(C, F) * (TW + 1) * x.itemsize):
        cols = (n1 - n0) * (t1 - t0 + 1) * (TW + 1)  # tiles of the band, with the planes' extra
        V = scratch(xp, "wino_v", (16, C, cols), x.dtype)
        _input_transform(xp, x, pad, (n0, n1, t0, t1), TW, V)
        M = scratch(xp, "wino_m", (16, F, cols), x.dtype)
        if xp is np:  # NumPy's stacked matmul is several times slower than 16 calls here
            # (F, C) @ (C, tiles) for each of the 16 positions
            workers.each(lambda k: xp.matmul(U[k], V[k], out=M[k]), range(16))
        else:  # one batched cuBLAS call
            xp.matmul(U, V, out=M)
        _output_transform(xp, M, out[n0:n1, :, 2 * t0:2 * t1], b, scale, relu)
    if (H_out, W_out) != (2 * TH, 2 * TW):
        out = xp.ascontiguousarray(out[:, :, :H_out, :W_out])
    return out


def dx_winograd(dout, U, pad):
    """dx (N, C, H, W) of a stride-1 3x3 conv with kernel transform U: dout (N, F, H_out,
    W_out) convolved with the flipped kernel transposed to (C, F, 3, 3), dout padded by
    2 - pad (the transposed convolution, see layers/conv.py)."""
    top, bottom, left, right = pad
    return conv3x3_winograd(dout, flip_transpose(U), None,
                            (2 - top, 2 - bottom, 2 - left, 2 - right))
