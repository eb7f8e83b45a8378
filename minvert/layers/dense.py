"""Fully connected layer: out = x w^T + b.

    x: (N, in)   w: (out, in) (PyTorch layout)   b: (out,)   out: (N, out)

Backward (derivation in docs/layers.md):

    dx = dout w          (N, in)
    dw = dout^T x        (out, in)
    db = sum_n dout      (out,)

Reference: minvert/layers/reference/dense.py (einsum). This version adds speed (one BLAS matmul
per gradient) and skips the gradients a frozen net does not need.
"""
import numpy as np

from ..errors import DTypeError, ShapeError
from .base import Layer, check_floating, check_rank, init_weight, last_cache


def dense_forward(x, w, b=None):
    """x: (N, in), w: (out, in), b: (out,) or None -> out: (N, out)."""
    check_floating(x)
    check_rank(x, 2, "(N, in_features); put a Flatten before Dense")
    if x.shape[1] != w.shape[1]:
        raise ShapeError(f"dense input has {x.shape[1]} features but the weights expect "
                         f"{w.shape[1]} (w is {tuple(w.shape)} = (out, in))")
    if x.dtype != w.dtype:
        raise DTypeError(f"dense input is {x.dtype} but its weights are {w.dtype}: "
                         f"convert one of them (layer.astype('{x.dtype}'))")
    out = x @ w.T  # (N, out)
    if b is not None:
        out += b
    # dx needs w, dw needs x; both are alive elsewhere, so keeping them costs no memory
    cache = {"x": x, "w": w, "has_b": b is not None}
    return out, cache


def dense_backward(dout, cache, need_dx=True, need_dw=True):
    """dout: (N, out) -> (dx (N, in), dw (out, in), db (out,)); None where not requested
    (db also None when the layer has no bias)."""
    dx = dout @ cache["w"] if need_dx else None
    dw = dout.T @ cache["x"] if need_dw else None
    db = dout.sum(axis=0) if need_dw and cache["has_b"] else None
    return dx, dw, db


class Dense(Layer):
    """params "w" (out_features, in_features) and "b" (out_features,) when bias."""

    def __init__(self, in_features, out_features, bias=True, init="he", rng=None,
                 dtype=np.float32):
        super().__init__()
        self.params["w"] = init_weight((out_features, in_features), in_features, out_features,
                                       init, rng, dtype)
        if bias:
            self.params["b"] = np.zeros(out_features, dtype=dtype)

    def forward(self, x):
        out, self.cache = dense_forward(x, self.params["w"], self.params.get("b"))
        return out

    def backward(self, dout):
        dx, dw, db = dense_backward(dout, last_cache(self), self.need_dx, self.trainable)
        if self.trainable:
            self.grads["w"] = dw
            if db is not None:
                self.grads["b"] = db
        return dx
