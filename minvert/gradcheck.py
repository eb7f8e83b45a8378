"""Numerical gradients by central differences, to check hand-written backward passes.

Two tools:

* :func:`numerical_vjp` -- the vector-Jacobian product ``d sum(f(x) * dout) / dx`` one
  element at a time. Compare it with the analytic ``dx`` from backward(dout).
* :func:`directional_check` -- one random direction ``r`` over all inputs at once:
  ``<grad, r>`` against ``(L(x + h r) - L(x - h r)) / 2h``. Two forward passes, so it
  is affordable for whole networks.

Why float64: the central difference has truncation error O(h^2) and rounding error
O(eps/h). With h = 1e-5 in float64 both are ~1e-10, far below the 1e-7 we accept; in
float32 the rounding term alone is ~1e-2, which would hide real bugs.

Why a random upstream gradient: with ``dout = ones`` some wrong backward passes still
agree (batch-norm's true dx is then exactly zero), so every check draws dout at random.
"""
import numpy as np

from .backend import to_numpy


def rel_error(a, n):
    """max|a - n| / max(1e-8, |a| + |n|), the error measure used everywhere in minvert."""
    a, n = to_numpy(a).astype(np.float64), to_numpy(n).astype(np.float64)
    if a.shape != n.shape:
        raise ValueError(f"gradient shapes differ: analytic {a.shape} vs numerical {n.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - n) / np.maximum(1e-8, np.abs(a) + np.abs(n))))


def numerical_vjp(f, x, dout, h=1e-5):
    """d sum(f(x) * dout) / dx by central differences; x is perturbed in place and restored.

    f: callable returning an array (or scalar) from the current contents of x.
    x: float64 array that f reads (an input or a parameter).
    dout: array shaped like f(x), the upstream gradient.
    Returns an array shaped like x.
    """
    if x.dtype != np.float64:
        raise TypeError(f"gradient checks need float64 arrays, got {x.dtype}")
    if not x.flags.c_contiguous:
        raise ValueError("x must be C-contiguous so it can be perturbed in place")
    grad = np.zeros(x.shape)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        try:
            flat[i] = old + h
            plus = np.sum(to_numpy(f()) * dout)
            flat[i] = old - h
            minus = np.sum(to_numpy(f()) * dout)
        finally:
            flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad


def directional_check(loss, arrays, grads, h=1e-6, rng=None):
    """Compare the analytic directional derivative with a central difference along one
    random unit direction spanning all ``arrays``.

    loss: callable returning a scalar from the current contents of ``arrays``.
    arrays: list of float64 arrays perturbed in place (restored in ``finally``).
    grads: analytic gradients of loss w.r.t. each array, same shapes.
    Returns (analytic, numerical, relative error).
    """
    rng = rng or np.random.default_rng(0)
    dirs = [rng.standard_normal(a.shape) for a in arrays]
    norm = np.sqrt(sum(float(np.sum(d * d)) for d in dirs))
    dirs = [d / norm for d in dirs]
    analytic = sum(float(np.sum(to_numpy(g) * d)) for g, d in zip(grads, dirs))
    saved = [a.copy() for a in arrays]
    try:
        for a, d in zip(arrays, dirs):
            a += h * d
        plus = float(loss())
        for a, s, d in zip(arrays, saved, dirs):
            a[...] = s - h * d
        minus = float(loss())
    finally:
        for a, s in zip(arrays, saved):
            a[...] = s
    numerical = (plus - minus) / (2 * h)
    err = abs(analytic - numerical) / max(1e-8, abs(analytic) + abs(numerical))
    return analytic, numerical, err
