"""Reference dense layer, one sum per output. Vectorised: ../dense.py.

    x: (N, in)   w: (out, in)   b: (out,)   out[n, o] = b[o] + sum_i w[o, i] x[n, i]
    dx[n, i] = sum_o dout[n, o] w[o, i]    dw[o, i] = sum_n dout[n, o] x[n, i]
    db[o] = sum_n dout[n, o]
"""
from ...backend import get_array_module


def dense_forward(x, w, b=None):
    xp = get_array_module(x)
    out = xp.einsum("oi,ni->no", w, x)
    if b is not None:
        out = out + b
    return out, {"x": x, "w": w, "has_b": b is not None}


def dense_backward(dout, cache):
    """dout (N, out) -> (dx (N, in), dw (out, in), db (out,) or None)."""
    xp = get_array_module(dout)
    x, w = cache["x"], cache["w"]
    db = dout.sum(axis=0) if cache["has_b"] else None
    return xp.einsum("no,oi->ni", dout, w), xp.einsum("no,ni->oi", dout, x), db
