"""Why a gradient check disagrees when the backward is not to blame: the causes
``minvert gradcheck FILE.py:NAME`` rules out, in this order, before it blames a backward.

1. The forward's output is not float64. Central differences divide the output's rounding
   (float32: ~6e-8 of each value) by h = 1e-5: the numerical gradient is noise at 1e-2.
2. The forward is not deterministic: two calls on the same input differ (a dropout mask or
   noise drawn on every call). The difference quotient then measures the randomness.
3. An analytic gradient is not float64: its rounding sits at the tolerance itself, so the
   verdict would depend on the seed. Checked before any value is compared.
4. A kink (ReLU, max, abs) or a step lies within h of an input: across the kink the slope
   jumps, so the central difference is the mean of two slopes. Seen as one-sided differences
   ``(f(x+h) - f(x)) / h`` and ``(f(x) - f(x-h)) / h`` that disagree while the analytic
   gradient equals one of them. Such elements are set aside ("inconclusive at a kink") and
   the others judged alone.
5. h does not suit the values. A value v carries a rounding error eps |v| (eps = 2.2e-16),
   which the difference quotient divides by h: with outputs near 1e6, eps |v| / h is 2e-5 at
   h = 1e-5, far above the tolerance (``x + 1e6`` fails, ``x + 1e4`` passes). Too large an h
   instead adds the truncation error O(h^2). Seen as an error that falls when h grows
   (rounding) or shrinks (truncation): the check is repeated at 10x steps of h, and the
   report names the h that passes, if one does.

Only an error that none of these explains, and that stays put when h changes, blames the
backward. Every array crosses to the host at one place, :func:`sided_vjp`.
"""
import math

import numpy as np

from .backend import get_array_module, to_numpy
from .errors import MinvertError
from .gradcheck import TOLERANCE, Row, compare, rel_error, where_wrong

EPS = float(np.finfo(np.float64).eps)
H_DEFAULT, H_MIN, H_MAX = 1e-5, 1e-8, 1e-1  # below 1e-8 rounding alone is ~1e-8 of order-1 values


def check_h(h):
    """h (a number or its text, as typed after --h) as a float, or a one-line MinvertError
    saying the accepted range."""
    try:
        step = float(h)
    except (TypeError, ValueError):
        step = float("nan")
    if not (math.isfinite(step) and H_MIN <= step <= H_MAX):
        raise MinvertError(f"--h {h}: the step must be a number from {H_MIN:g} to {H_MAX:g} "
                           f"(default {H_DEFAULT:g}), e.g. --h 1e-3")
    return step


def _host(a):
    return np.array(to_numpy(a), dtype=np.float64)


def forward_problem(forward):
    """None, or why the forward cannot be checked: a dtype other than float64 (checked first),
    or two calls on the same input that give different outputs. Differences in the last bits
    (at most 16 eps |out|, a sum taken in another order) pass: divided by h they stay far
    below the tolerance, and if the values are large the h scan names their magnitude."""
    first = to_numpy(forward())
    if first.dtype != np.float64:
        why = (f"{first.dtype} rounds each value at ~{float(np.finfo(first.dtype).eps):.0e}, which "
               f"the difference quotient divides by h = 1e-5 into noise far above the tolerance "
               f"{TOLERANCE:g}" if np.issubdtype(first.dtype, np.floating)
               else "the difference quotient needs real numbers")
        return (f"the forward returns {first.dtype}: the check needs float64 ({why}); keep the "
                f"input's dtype: no astype(np.float32), no float32 arrays inside")
    first = first.copy()  # the second call may write into the same buffer
    second = to_numpy(forward())
    if first.shape != second.shape:
        return (f"the forward is non-deterministic: two calls on the same input give shapes "
                f"{first.shape} and {second.shape}")
    with np.errstate(invalid="ignore"):  # inf - inf: told apart below
        diff = np.where(np.isnan(first) & np.isnan(second), 0.0, np.abs(first - second))
    diff = np.where(np.isnan(diff), np.inf, diff)  # one NaN, or inf - inf: as far apart as can be
    diff[diff <= 16 * EPS * np.maximum(np.abs(first), np.abs(second))] = 0
    if diff.any():
        i = tuple(int(k) for k in np.unravel_index(np.argmax(diff), diff.shape))
        return (f"the forward is non-deterministic: two calls on the same input differ by up to "
                f"{float(diff[i]):.3g} (out[{', '.join(map(str, i))}]: {float(first[i]) + 0.0:.6g} "
                f"then {float(second[i]) + 0.0:.6g}); a numerical gradient needs the same output for the same "
                f"input: draw random masks or noise once (in __init__, or from a fixed seed), not "
                f"on every call")
    return None


def sided_vjp(f, x, dout, h):
    """Differences of ``sum(f(x) * dout)`` element by element of x (perturbed in place, restored).

    Returns host float64 arrays shaped like x: central ``(f(x+h) - f(x-h)) / 2h``, ahead
    ``(f(x+h) - f(x)) / h``, behind ``(f(x) - f(x-h)) / h``, and the rounding error the
    central difference carries, ``eps * sum |f| |dout| / h`` over the outputs that move.
    """
    if x.dtype != np.float64 or not x.flags.c_contiguous:
        raise TypeError("gradient checks perturb C-contiguous float64 arrays in place")
    dout, base = _host(dout), _host(f())
    central, ahead, behind, rounding = (np.zeros(x.shape) for _ in range(4))
    flat = x.reshape(-1)
    for i in range(flat.size):
        old = float(flat[i])  # a copy: on CuPy flat[i] is a 0-d view the next line would change
        try:
            flat[i] = old + h
            plus = _host(f())  # a copy: f may return a view of x
            flat[i] = old - h
            minus = _host(f())
        finally:
            flat[i] = old
        moved = (plus != minus) | (plus != base)
        ahead.flat[i] = np.sum((plus - base) * dout) / h
        behind.flat[i] = np.sum((base - minus) * dout) / h
        central.flat[i] = np.sum((plus - minus) * dout) / (2 * h)
        rounding.flat[i] = EPS * np.sum((np.abs(plus) + np.abs(minus))[moved] * np.abs(dout[moved])) / h
    return central, ahead, behind, rounding


def kinks(a, sides):
    """Mask of the elements where a kink lies within h: the element misses, its one-sided
    differences disagree by more than rounding, and the analytic gradient equals one of them
    (so the miss is the kink's, not the backward's; a wrong backward matches neither side)."""
    central, ahead, behind, rounding = sides
    scale = max(float(np.max(np.abs(a), initial=0)), float(np.max(np.abs(central), initial=0)), 1e-300)
    gap = np.abs(ahead - behind)
    near_side = np.minimum(np.abs(a - ahead), np.abs(a - behind))
    return ((np.abs(a - central) > TOLERANCE * scale) & (gap > 20 * rounding + 1e-12 * scale)
            & (near_side <= 0.1 * gap))


def error_apart_from_kinks(a, sides):
    """(rel_error over the elements away from kinks, kink mask)."""
    kinked = kinks(a, sides)
    rest = ~kinked
    return (rel_error(a[rest], sides[0][rest]) if rest.any() else float("nan")), kinked


def _kink_note(wrt, a, sides, kinked, h):
    central, ahead, behind, _ = sides
    i = tuple(int(k) for k in np.argwhere(kinked)[0])
    at = f"d{wrt}[{', '.join(map(str, i))}]"
    return (f"{int(kinked.sum())} of {a.size} elements of {wrt} lie within h = {h:g} of a kink "
            f"(ReLU, max, abs or a step): at {at} the one-sided differences are "
            f"{float(ahead[i]):.6g} (x+h) and {float(behind[i]):.6g} (x-h), the central one "
            f"{float(central[i]):.6g}, yours {float(a[i]) + 0.0:.6g}")  # + 0.0: no "-0"


def _steps(h, factor):
    """h * factor, h * factor^2, ... while inside [H_MIN, H_MAX]."""
    step = h * factor
    while H_MIN * (1 - 1e-9) <= step <= H_MAX * (1 + 1e-9):
        yield step
        step *= factor


def _scan(a, sides_at, h, err):
    """{h: rel_error apart from kinks} at h and at 10x steps up and down from it, each way
    while the error falls by 3x per step and has not passed with a margin (TOLERANCE / 10,
    so that the h it suggests passes on other seeds too)."""
    tried = {h: err}
    for factor in (10.0, 0.1):
        previous = err
        for step in _steps(h, factor):
            tried[step] = error_apart_from_kinks(a, sides_at(step))[0]
            if tried[step] < TOLERANCE / 10 or not tried[step] < previous / 3:
                break
            previous = tried[step]
    return tried


def _rounding_cause(out, h, tried):
    """Why the error falls as h grows: the values' magnitude, named with numbers."""
    largest = float(np.max(np.abs(out), initial=0))
    up = min(s for s in tried if s > h)
    trend = (f"rel. error {tried[h]:.1e} at h = {h:g}, {tried[up]:.1e} at h = {up:g}: it falls "
             f"as h grows, as rounding error does")
    if np.any(out != np.round(out)) and np.array_equal(out, out.astype(np.float32).astype(np.float64)):
        return (f"h = {h:g} is too small for the precision of the values: the forward computes in "
                f"float32 inside (every output is a float32 number, eps = 1.2e-07), and the "
                f"difference quotient divides that rounding by h ({trend})")
    if EPS * largest / h > TOLERANCE / 10:
        return (f"h = {h:g} is too small for the magnitude of the values: the outputs reach "
                f"|value| = {largest:.3g}, whose rounding eps*|value| = {EPS * largest:.2g} is "
                f"{EPS * largest / h:.2g} of h, and the difference quotient divides it by h ({trend})")
    return (f"h = {h:g} is too small for the magnitude of the values inside the forward: the "
            f"outputs are small (up to {largest:.3g}) but an intermediate value is large (an "
            f"offset added and taken away?), and its rounding eps*|value| divided by h dominates "
            f"({trend})")


def _unjudged_by_h(h, out, tried):
    """Row text when the error depends on h (the numerical side), or None when it does not."""
    passing = sorted((s for s, e in tried.items() if e < TOLERANCE), key=tried.get)
    falls_up = any(s > h and e < tried[h] / 3 for s, e in tried.items())
    falls_down = any(s < h and e < tried[h] / 3 for s, e in tried.items())
    if not (passing or falls_up or falls_down):
        return None
    advice = ("check the layer on values of order 1, without the offset (a constant added to the "
              "output leaves the gradient unchanged)")
    if (passing and passing[0] > h) or (not passing and falls_up):
        cause = _rounding_cause(out, h, tried)
        if "float32" in cause:
            advice = "compute in float64 throughout: no astype(np.float32), no float32 arrays inside"
    else:
        cause = (f"h = {h:g} is too large: the central difference's truncation error, O(h^2), "
                 f"dominates (rel. error {tried[h]:.1e}; it falls as h shrinks)")
    if passing:
        return f"{cause}. With --h {passing[0]:g} the check passes (rel. error {tried[passing[0]]:.1e}): rerun with --h {passing[0]:g}"
    return (f"{cause}. No step from {H_MIN:g} to {H_MAX:g} passes (a larger h adds truncation "
            f"error, a smaller one rounding): {advice}")


def judge(wrt, a, sides_at, h, out):
    """A :class:`Row` for the gradient w.r.t. ``wrt``: the backward's ``a`` (as it returned it)
    against the differences ``sides_at(step)`` (:func:`sided_vjp`) at ``h``; ``out`` the
    forward's output (host), for the magnitude of the values."""
    dtype = None if a is None else to_numpy(a).dtype
    if dtype is not None and dtype != np.float64:
        why = (f"{dtype} rounds at ~{float(np.finfo(dtype).eps):.0e}, near or above the tolerance "
               f"{TOLERANCE:g}, so the verdict would depend on the seed"
               if np.issubdtype(dtype, np.floating) else "a gradient is a float64 array like its input")
        return Row("", wrt, float("nan"), False,
                   f"d{wrt} is {dtype}: the check needs float64 gradients ({why}); compute the "
                   f"backward in the input's dtype", "not checked")
    sides = sides_at(h)
    row = compare(wrt, a, sides[0])
    if row.ok or a is None or np.shape(a) != sides[0].shape:
        return row
    a = _host(a)
    err = row.error
    err_rest, kinked = error_apart_from_kinks(a, sides)
    if kinked.any() and not err_rest >= TOLERANCE:  # nan: every element at a kink
        rest = (f"the other {int((~kinked).sum())} agree (rel. error {err_rest:.1e})"
                if (~kinked).any() else "no other element to judge")
        return row._replace(verdict="inconclusive", where=(
            f"inconclusive at a kink: {_kink_note(wrt, a, sides, kinked, h)}; {rest}. Not a "
            f"verdict on the backward there: try another --seed, or a smaller --h"))
    tried = _scan(a, sides_at, h, err_rest)
    by_h = _unjudged_by_h(h, out, tried)
    kink = f"; besides, {_kink_note(wrt, a, sides, kinked, h)}" if kinked.any() else ""
    if by_h:
        return row._replace(verdict="inconclusive", where="inconclusive: " + by_h + kink)
    steps = ", ".join(f"{s:g}" for s in sorted(tried))
    numerical = np.where(kinked, a, sides[0])  # elements at a kink set aside
    return row._replace(where=(
        f"FAIL: the backward is wrong: {where_wrong(a, numerical, 'd' + wrt)}; not the numerical "
        f"side: the forward is deterministic float64 and the error stays {err_rest:.1e} for h = "
        f"{steps}{kink}"))


def diagnose(forward, vjp, arrays, rng, h=H_DEFAULT):
    """Rows, one per array of a differentiable map, each ok, FAIL (the backward blamed) or
    with the cause outside the backward that leaves it unjudged; one "not checked" row when
    the forward itself cannot be checked.

    forward: () -> out, reading the current contents of ``arrays``.
    vjp: dout -> {name: analytic gradient}, valid for the last forward call.
    arrays: {name: float64 C-contiguous array} perturbed in place.
    rng: draws the upstream gradient (random normal, never ones).
    """
    h = check_h(h)
    problem = forward_problem(forward)
    if problem:
        return [Row("", "-", float("nan"), False, problem, "not checked")]
    out = forward()
    # drawn on the host, placed where forward computes
    dout = get_array_module(out).asarray(rng.standard_normal(getattr(out, "shape", ())))
    out = _host(out)
    analytic = {k: None if g is None else to_numpy(g).copy() for k, g in vjp(dout).items()}
    return [judge(k, analytic[k], lambda step, x=x: sided_vjp(forward, x, dout, step), h, out)
            for k, x in arrays.items()]


def verdict(rows):
    """The one line under the table: PASS, FAIL (which gradients the backward gets wrong), or
    why the backward could not be judged."""
    if all(r.ok for r in rows):
        return "verdict: PASS"
    failed = [f"d{r.wrt}" for r in rows if not r.ok and not r.verdict]
    if failed:
        return f"verdict: FAIL: the backward is wrong ({', '.join(failed)})"
    unjudged = [r for r in rows if r.verdict]
    causes = dict.fromkeys(r.where.removeprefix("inconclusive: ").split(": ")[0] for r in unjudged)
    kind = "not checked" if any(r.verdict == "not checked" for r in unjudged) else "inconclusive"
    said = "; ".join(c if c.startswith(kind) else f"{kind}: {c}" for c in causes)
    return f"verdict: {said} (not a verdict on the backward)"
