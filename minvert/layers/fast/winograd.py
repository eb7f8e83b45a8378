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
(a 4x4 window every 2 pixels). The transforms are only additions, done here as adds of
strided views (rows first, then columns), band by band of tile rows (BAND_BYTES).

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
from .im2col import scratch, zero_pad

# V and M of one band of tile rows stay under about this many bytes each: fewer, larger
# matmuls and adds beat bands that fit in the CPU cache (docs/performance.md)
BAND_BYTES = 32 << 20
# rows (f, c) per block of the kernel transform: the transpose stays in cache
KERNEL_BLOCK = 4096


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


def _input_transform(xp, band, V):
    """band (N, C, 2*nb + 2, Wp) of the padded input -> V (4, 4, C, N, nb, TW), B^T d B
    of every 4x4 tile (rows 2t.., columns 2u..)."""
    nb, TW = V.shape[4], V.shape[5]
    d = [band[:, :, k:k + 2 * nb:2] for k in range(4)]  # (N, C, nb, Wp): tile row k
    e = scratch(xp, "wino_e", (4,) + d[0].shape, band.dtype)  # B^T d: rows combined
    xp.subtract(d[0], d[2], out=e[0])
    xp.add(d[1], d[2], out=e[1])
    xp.subtract(d[2], d[1], out=e[2])
    xp.subtract(d[1], d[3], out=e[3])
    for r in range(4):
        c = [e[r][..., k:k + 2 * TW:2] for k in range(4)]  # (N, C, nb, TW): tile column k
        out = [V[r, k].transpose(1, 0, 2, 3) for k in range(4)]  # (N, C, nb, TW) views
        xp.subtract(c[0], c[2], out=out[0])
        xp.add(c[1], c[2], out=out[1])
        xp.subtract(c[2], c[1], out=out[2])
        xp.subtract(c[1], c[3], out=out[3])


def _output_transform(xp, M, out):
    """M (4, 4, F, N, nb, TW) -> out (N, F, 2*nb, 2*TW) = A^T M A per tile."""
    F, N, nb, TW = M.shape[2:]
    s = scratch(xp, "wino_s", (2, 4, F, N, nb, TW), M.dtype)  # A^T M: rows combined
    xp.add(M[0], M[1], out=s[0])
    s[0] += M[2]
    xp.subtract(M[1], M[2], out=s[1])
    s[1] -= M[3]
    out6 = out.reshape(N, F, nb, 2, TW, 2)  # (N, F, nb, 2, TW, 2): tile row, column
    for a in range(2):
        t = [s[a, k].transpose(1, 0, 2, 3) for k in range(4)]  # (N, F, nb, TW)
        xp.add(t[0], t[1], out=out6[:, :, :, a, :, 0])
        out6[:, :, :, a, :, 0] += t[2]
        xp.subtract(t[1], t[2], out=out6[:, :, :, a, :, 1])
        out6[:, :, :, a, :, 1] -= t[3]


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
    x_pad = zero_pad(x, top, bottom + 2 * TH - H_out, left, right + 2 * TW - W_out)
    out = xp.empty((N, F, 2 * TH, 2 * TW), dtype=x.dtype)
    row_bytes = 16 * max(C, F) * N * TW * x.itemsize  # V or M of one tile row
    nb = max(1, min(TH, BAND_BYTES // row_bytes))
    for t0 in range(0, TH, nb):
        n = min(nb, TH - t0)
        band = x_pad[:, :, 2 * t0:2 * t0 + 2 * n + 2]
        V = scratch(xp, "wino_v", (4, 4, C, N, n, TW), x.dtype)
        M = scratch(xp, "wino_m", (16, F, N * n * TW), x.dtype)
        out_band = out[:, :, 2 * t0:2 * t0 + 2 * n]  # (N, F, 2n, 2TW)
        _input_transform(xp, band, V)
        V2 = V.reshape(16, C, -1)  # (16, C, N*n*TW)
        if xp is np:  # NumPy's stacked matmul is several times slower than 16 calls here
            for k in range(16):
                xp.matmul(U[k], V2[k], out=M[k])  # (F, C) @ (C, tiles)
        else:  # one batched cuBLAS call
            xp.matmul(U, V2, out=M)
        _output_transform(xp, M.reshape(4, 4, F, N, n, TW), out_band)
        if scale is not None:
            out_band *= scale.reshape(1, -1, 1, 1)
        if b is not None:
            out_band += b.reshape(1, -1, 1, 1)
        if relu:
            relu_inplace(out_band)
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
