"""Numerical gradients by central differences, to check hand-written backward passes.

Two tools:

* :func:`numerical_vjp` -- the vector-Jacobian product ``d sum(f(x) * dout) / dx`` one
  element at a time. Compare it with the analytic ``dx`` from backward(dout).
* :func:`directional_check` -- one random direction ``r`` over all inputs at once:
  ``<grad, r>`` against ``(L(x + h r) - L(x - h r)) / 2h``. Two forward passes, so it
  is affordable for whole networks.

The pass rule, the one used by ``minvert gradcheck``, tutorial 02, the exercise checker and
the tests: ``rel_error(a, n) = ||a - n|| / (||a|| + ||n||)`` over the whole array, below
TOLERANCE = 1e-7. Why float64: the central difference has truncation error O(h^2) and
rounding error O(eps/h); with h = 1e-5 both are ~1e-10 relative to the gradient, so a correct
backward lands at 1e-11..1e-9, while a gradient 0.1 % off reads ~5e-4. In float32 the rounding
term alone is ~1e-2, which would hide real bugs. Why norms and not the element-wise maximum:
an element whose true gradient is nearly zero has a relative error of rounding noise over
nothing, up to 1 on correct code; the norm weighs every element by its size.

Why a random upstream gradient: with ``dout = ones`` some wrong backward passes still
agree (batch-norm's true dx is then exactly zero), so every check draws dout at random.
"""
from collections import namedtuple

import numpy as np

from .backend import get_array_module, to_numpy

TOLERANCE = 1e-7  # accepted rel_error; correct float64 code lands near 1e-10 (h = 1e-5)


def _host64(a):
    return to_numpy(a).astype(np.float64)


def rel_error(a, n):
    """||a - n|| / (||a|| + ||n||), norms over the whole array: 0 when equal, 1 when either is
    zero and the other is not, ~1e-10 for a correct float64 backward against numerical_vjp."""
    a, n = _host64(a), _host64(n)
    if a.shape != n.shape:
        raise ValueError(f"gradient shapes differ: analytic {a.shape} vs numerical {n.shape}")
    scale = np.linalg.norm(a) + np.linalg.norm(n)
    return 0.0 if scale == 0 else float(np.linalg.norm(a - n) / scale)


def where_wrong(a, n, name="dx"):
    """One line saying where and how much analytic ``a`` and numerical ``n`` differ: the worst
    element with both values, how many elements are off by more than 1e-6 of the largest
    gradient, and the slice that holds them all when that is narrower than the array (a
    forgotten border row shows as ``dx[:, :, 5, :]``, a wrong scale as every element)."""
    a, n = _host64(a), _host64(n)
    diff = np.abs(a - n)
    i = tuple(int(k) for k in np.unravel_index(np.argmax(diff), diff.shape))  # plain ints to print
    wrong = diff > 1e-6 * max(np.max(np.abs(n)), np.max(np.abs(a)), 1e-300)
    at = [np.unique(ix) for ix in np.nonzero(wrong)]
    span = ", ".join(str(int(u[0])) if len(u) == 1 else ":" for u in at)
    inside = f", all in {name}[{span}]" if at and any(len(u) == 1 for u in at) else ""
    return (f"worst at {name}[{', '.join(map(str, i))}]: analytic {a[i]:.6g}, numerical "
            f"{n[i]:.6g}; {int(wrong.sum())} of {a.size} elements differ{inside}")


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
    dout = to_numpy(dout)
    grad = np.zeros(x.shape)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = float(flat[i])  # a copy: on CuPy flat[i] is a 0-d view the next line would change
        try:
            flat[i] = old + h
            # a copy: f may return a view of x (flatten, reshape)
            plus = np.array(to_numpy(f()), dtype=np.float64)
            flat[i] = old - h
            # difference first, then weight: outputs x does not touch cancel exactly, so
            # the rounding error is that of the few outputs x affects, not of the whole sum
            diff = plus - to_numpy(f())
        finally:
            flat[i] = old
        gflat[i] = np.sum(diff * dout) / (2 * h)
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
    steps = [get_array_module(a).asarray(h * d) for a, d in zip(arrays, dirs)]  # on each array's device
    try:
        for a, step in zip(arrays, steps):
            a += step
        plus = float(loss())
        for a, s, step in zip(arrays, saved, steps):
            a[...] = s - step
        minus = float(loss())
    finally:
        for a, s in zip(arrays, saved):
            a[...] = s
    numerical = (plus - minus) / (2 * h)
    err = abs(analytic - numerical) / max(1e-8, abs(analytic) + abs(numerical))
    return analytic, numerical, err


# every layer at once ------------------------------------------------------------------
# one table line; verdict: "" (ok says pass or FAIL), "inconclusive" or "not checked" when a
# cause outside the backward (minvert.gradcheck_causes) leaves the backward unjudged
Row = namedtuple("Row", "layer wrt error ok where verdict", defaults=("", ""))


def vjp_gradients(forward, vjp, arrays, rng, h=1e-5):
    """Analytic and numerical gradients of one differentiable map, for each of its arrays.

    forward: () -> out, reading the current contents of ``arrays``.
    vjp: dout -> {name: analytic gradient}, valid for the last forward call.
    arrays: {name: float64 C-contiguous array} perturbed in place by the check.
    Returns {name: (analytic, numerical)} as float64 host arrays; dout is random (never ones).
    """
    out = forward()
    # drawn from the same host generator on every device (a GPU table matches the CPU one),
    # then placed where forward computes
    dout = get_array_module(out).asarray(rng.standard_normal(getattr(out, "shape", ())))
    analytic = {k: None if g is None else _host64(g) for k, g in vjp(dout).items()}
    return {k: (analytic[k], numerical_vjp(forward, a, dout, h)) for k, a in arrays.items()}


def vjp_errors(forward, vjp, arrays, rng, h=1e-5):
    """{name: rel_error} of :func:`vjp_gradients`."""
    return {k: rel_error(a, n) for k, (a, n) in vjp_gradients(forward, vjp, arrays, rng, h).items()}


def layer_gradients(layer, x, rng, h=1e-5):
    """:func:`vjp_gradients` of a :class:`~minvert.layers.base.Layer` w.r.t. x and every
    parameter."""
    def vjp(dout):
        dx = layer.backward(dout)
        return {"x": dx, **{k: layer.grads.get(k) for k in layer.params}}
    return vjp_gradients(lambda: layer.forward(x), vjp, {"x": x, **layer.params}, rng, h)


def layer_errors(layer, x, rng, h=1e-5):
    """{name: rel_error} of :func:`layer_gradients`."""
    return {k: rel_error(a, n) for k, (a, n) in layer_gradients(layer, x, rng, h).items()}


def compare(name, analytic, numerical):
    """A :class:`Row` for one gradient: pass when rel_error < TOLERANCE, else say where."""
    if analytic is None:
        return Row("", name, float("nan"), False, "the backward returned None")
    if np.shape(analytic) != np.shape(numerical):
        return Row("", name, float("nan"), False,
                   f"shape {np.shape(analytic)}, expected {np.shape(numerical)}")
    err = rel_error(analytic, numerical)
    ok = bool(err < TOLERANCE)
    return Row("", name, err, ok, "" if ok else where_wrong(analytic, numerical, "d" + name))


def print_table(rows, say):
    """The ``layer | wrt | rel. error | ok`` table, a line under each failure saying where (or
    why the backward could not be judged), and a summary line."""
    width = max(len(r.layer) for r in rows)
    say(f"{'layer':<{width}} | wrt    | rel. error | ok")
    say(f"{'-' * width}-|--------|------------|----")
    for r in rows:
        say(f"{r.layer:<{width}} | {r.wrt:<6} | {r.error:10.2e} | "
            f"{r.verdict or ('ok' if r.ok else 'FAIL')}")
        if r.where:
            say(f"{'':<{width}}   {r.where}")
    failed = sum(not r.ok and not r.verdict for r in rows)
    unjudged = [f"{sum(r.verdict == v for r in rows)} {v}" for v in ("inconclusive", "not checked")
                if any(r.verdict == v for r in rows)]
    say(f"{sum(r.ok for r in rows)} of {len(rows)} checks pass (rel. error = ||a - n|| / (||a|| + "
        f"||n||) < {TOLERANCE:g})" + (f", {failed} FAIL" if failed else "")
        + "".join(", " + u for u in unjudged))
