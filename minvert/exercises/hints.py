"""What the checker says after a FAIL: the HINT that names the mistake, and only a mistake the
answer shows. A hint is given when the wrong answer equals a catalogued mistake (computed
exactly), or when a property of the answer proves it (its dtype, its shape, a constant factor
clearly different from 1); otherwise the checker says where the answer differs and no more.
"""
import re
import textwrap

import numpy as np

from ..gradcheck import rel_error

MATCH = 1e-6      # closer than this to a known wrong answer: that is the mistake
EXACT = 1e-9      # float64 code agrees with minvert's exact gradient to ~1e-14; float32 to ~1e-8
NEAR = 1e-4       # closer than this to the exact gradient but not EXACT: a precision loss
FLOAT32 = ("float64 arithmetic agrees with minvert's exact gradient to about 1e-14, float32 to "
           "about 1e-8: look for a float32 intermediate (astype(np.float32), np.zeros(..., "
           "dtype=np.float32), np.float32(...)) or a small constant added somewhere (an eps)")


def wrap(hint):
    """HINT: ..., wrapped at 96 columns; a shape such as (F, C, KH, KW) is never split."""
    glued = re.sub(r"\([^()]*\)", lambda m: m.group().replace(" ", "\0"), hint)
    return textwrap.fill(glued, 96, initial_indent=" " * 11 + "HINT: ",
                         subsequent_indent=" " * 17).replace("\0", " ")


def where(mine, numerical, name):
    """Where the largest difference is (plain ints: NumPy 2 would print np.int64(0))."""
    mine, numerical = np.asarray(mine, np.float64), np.asarray(numerical, np.float64)
    if mine.ndim == 0:
        return f"yours {float(mine):.6g}, expected {float(numerical):.6g}"
    i = tuple(int(k) for k in np.unravel_index(np.argmax(np.abs(mine - numerical)), mine.shape))
    return (f"the largest difference is at {name}[{', '.join(map(str, i))}]: yours "
            f"{mine[i]:.6g}, expected {numerical[i]:.6g}")


def wrong_dtype(name, value, want=np.float64):
    """What is wrong with ``value``'s dtype, or None: checked before any value is compared, so
    a float32 answer FAILs on every input, not only where its rounding shows."""
    dtype = getattr(value, "dtype", None)
    if dtype is None or dtype == want:
        return None
    return (f"{name} is {dtype} for {np.dtype(want).name} input\nevery array you return must "
            f"have the input's dtype ({np.dtype(want).name} here), whatever its values: the "
            f"dtype is checked before the values. Compute in the input's dtype (np.zeros_like(x), "
            f"not np.zeros(shape, dtype=np.float32); no astype)")


def shape_hint(got, want, why=""):
    """Why an array has shape ``got`` instead of ``want``: the same sizes in another order is a
    transpose problem; anything else gets the exercise's own words ``why``."""
    if len(got) == len(want) and sorted(got) == sorted(want):
        return (f"the right sizes in another order: expected {tuple(want)}; two axes are "
                f"swapped (a reshape where a transpose was needed?)")
    return why


def near_miss(g, err):
    return (f"{g} is close to the correct gradient but not float64-exact (rel. error {err:.1e} "
            f"against minvert's exact gradient): " + FLOAT32)


def diagnose(g, wrt, mine, numerical, exact, variants, ex, case, case_hint):
    """The most likely mistake behind a gradient that failed the check."""
    if mine is None:
        return f"{g} is None: return the array (a forgotten `return`, or a value never filled in?)"
    try:
        mine = np.asarray(mine, dtype=np.float64)
    except (TypeError, ValueError):
        return f"{g} is not an array of numbers but a {type(mine).__name__}"
    if not np.all(np.isfinite(mine)):
        return f"{g} contains NaN or inf"
    for name, wrong, hint in variants:
        if name == g and np.shape(wrong) == mine.shape and rel_error(mine, wrong) < MATCH:
            return hint
    if mine.shape != exact.shape:
        if mine.size == exact.size and rel_error(mine.reshape(exact.shape), exact) < MATCH:
            return f"right numbers, wrong shape: {g} is {mine.shape}; reshape it to {exact.shape}"
        why = ex.shapes.get(g, "")
        why = why(mine, case) if callable(why) else why
        return (f"{g} has shape {mine.shape}; it must have the shape of {wrt}, {exact.shape}. "
                + shape_hint(mine.shape, exact.shape, why))
    if not mine.any():
        return f"{g} is all zeros"
    err = rel_error(mine, exact)
    if err < NEAR:
        return near_miss(g, err)
    scale = float(np.sum(mine * exact) / max(np.sum(exact * exact), 1e-300))
    if rel_error(mine, scale * exact) < MATCH and abs(scale - 1) > 1e-3:
        if abs(scale + 1) < 1e-6:
            return f"wrong sign: {g} is exactly minus the correct gradient"
        return (f"{g} is the correct gradient times {scale:.4g}: a constant factor is off "
                f"(a forgotten 1/N, 2 or upstream gradient?)")
    if case_hint:
        return case_hint
    return f"no common mistake recognised; {where(mine, numerical, g)}. Derivation: {ex.doc}"
