"""Element-wise work of the fast engine: ReLU against a buffer of zeros, the Adadelta update
in chunks. The same values as ``layers/activation.py`` and ``optim.Adadelta`` (tested).

NumPy's ``maximum`` runs several times faster against an array of zeros than against the
scalar 0 (its fast loop wants two arrays; docs/performance.md has the numbers), so on the
CPU the zeros come from a small buffer, RELU_PIECE elements at a time.
"""
import numpy as np

from ...backend import get_array_module
from ..base import check_floating
from . import workers

RELU_PIECE = 1 << 16
_ZEROS = {}  # dtype -> RELU_PIECE zeros, never written (so threads may share them)
# Adadelta updates a large parameter this many values at a time on the CPU: its temporaries
# then stay in the CPU cache instead of twice the parameter (the decoder's largest weight
# is 75 MB)
UPDATE_CHUNK = 1 << 16


def relu_inplace(a, out=None):
    """out = max(a, 0), elementwise (NaN stays NaN); in place when ``out`` is None or a.
    a and out: the same shape, any strides (fastest when contiguous, or when the last axis
    is, like a band of a convolution's output). Returns out."""
    xp = get_array_module(a)
    out = a if out is None else out
    if xp is not np or a.size == 0:
        return xp.maximum(a, 0, out=out)
    if a.ndim > 2 and not (a.flags.c_contiguous and out.flags.c_contiguous):
        for a_k, out_k in zip(a, out):  # the first axis (samples): a few
            relu_inplace(a_k, out_k)
        return out
    if a.flags.c_contiguous and out.flags.c_contiguous:
        rows, out_rows = a.reshape(1, -1), out.reshape(1, -1)
    else:
        rows, out_rows = a.reshape(-1, a.shape[-1]), out.reshape(-1, out.shape[-1])  # 2-D: views
    zeros = _ZEROS.get(a.dtype.str)
    if zeros is None:
        zeros = _ZEROS[a.dtype.str] = np.zeros(RELU_PIECE, dtype=a.dtype)
    R, L = rows.shape
    step = max(1, RELU_PIECE // L)  # rows per piece; a long row goes in pieces of columns
    for r in range(0, R, step):
        for c in range(0, L, RELU_PIECE):
            piece, into = rows[r:r + step, c:c + RELU_PIECE], out_rows[r:r + step, c:c + RELU_PIECE]
            np.maximum(piece, zeros[:piece.size].reshape(piece.shape), out=into)
    return out


def relu_forward(x):
    """activation.relu_forward, against zeros: -> (out, cache {"out": out, "fast": True})."""
    check_floating(x)
    xp = get_array_module(x)
    out = xp.empty_like(x)
    if x.flags.c_contiguous and workers.active(xp):  # pieces of the flat arrays
        flat, into = x.reshape(-1), out.reshape(-1)
        workers.each(lambda r: relu_inplace(flat[r[0]:r[1]], into[r[0]:r[1]]),
                     workers.shares(x.size, xp), xp)
    else:
        relu_inplace(x, out)
    return out, {"out": out, "fast": True}


def relu_backward(dout, cache):
    """activation.relu_backward (dout * [out > 0], the same bits), in pieces when workers
    share the work."""
    xp, out = get_array_module(dout), cache["out"]
    if not (workers.active(xp) and dout.flags.c_contiguous and out.flags.c_contiguous
            and dout.shape == out.shape):
        return dout * (out > 0)
    dx = xp.empty(dout.shape, dtype=xp.result_type(dout, xp.bool_))
    flat, mask, into = dout.reshape(-1), out.reshape(-1), dx.reshape(-1)
    workers.each(lambda r: xp.multiply(flat[r[0]:r[1]], mask[r[0]:r[1]] > 0,
                                       out=into[r[0]:r[1]]), workers.shares(dout.size, xp), xp)
    return dx


def adadelta_update(p, g, a, d, lr, rho, eps):
    """optim.Adadelta's update of p, E[g²] (a) and E[Δ²] (d), all in place, UPDATE_CHUNK
    values at a time when contiguous (small temporaries). On a GPU in one pass: the chunks
    are for the CPU's caches, and each would be a few more kernel launches there."""
    xp = get_array_module(p)
    if xp is not np or not (all(v.flags.c_contiguous for v in (p, g, a, d))
                            and p.size > UPDATE_CHUNK):
        _adadelta(xp, p, g, a, d, lr, rho, eps)
        return
    flat = [v.reshape(-1) for v in (p, g, a, d)]  # views (contiguous)
    workers.each(lambda i: _adadelta(xp, *(v[i:i + UPDATE_CHUNK] for v in flat), lr, rho, eps),
                 range(0, p.size, UPDATE_CHUNK), xp)


def _adadelta(xp, p, g, a, d, lr, rho, eps):
    """The formulas of optim.Adadelta in the same order (so the same bits), with two
    temporaries the size of p instead of one per operation."""
    t, u = xp.multiply(g, g), xp.empty_like(p)
    t *= 1 - rho
    a *= rho
    a += t
    update = xp.sqrt(xp.add(d, eps, out=t), out=t)
    xp.multiply(g, update, out=update)
    update /= xp.sqrt(xp.add(a, eps, out=u), out=u)
    p -= xp.multiply(update, lr, out=u)
    u = xp.multiply(update, update, out=u)
    u *= 1 - rho
    d *= rho
    d += u
