"""How one layer-style exercise is checked: the file's forward against minvert's, then its
backward against central differences, twice, watching for arrays changed in place.

Vocabulary: an :class:`Exercise` names a forward ``X_forward(*args, **kwargs) -> (out,
cache)`` and a backward ``X_backward(dout, cache) -> gradients``; its ``cases`` draw fresh
random inputs from the run's seed, from easy to hard; ``ref`` is minvert's own forward (the
numerical gradient differentiates it, never the student's code); ``variants`` are the classic
wrong answers, computed exactly, each with the hint that names the mistake.
"""
import copy
import re
import textwrap
from dataclasses import dataclass

import numpy as np

from ..gradcheck import TOLERANCE, numerical_vjp, rel_error
from .studentfile import describe

MATCH = 1e-6      # closer than this to a known wrong answer: that is the mistake
SAME = 1e-9       # a forward this close to minvert's computes the same thing (float64)


@dataclass
class Case:
    label: str
    args: dict       # the forward's positional arguments, by name, in order
    kwargs: dict
    hint: str = ""   # said when this case fails although an earlier one passed


@dataclass
class Exercise:
    forward: str
    backward: str
    grads: tuple     # (gradient name, argument it belongs to), in the order backward returns them
    cases: object    # rng -> [Case]
    ref: object      # (args, kwargs) -> forward output, minvert's own code
    exact: object    # (args, kwargs, dout) -> {gradient name: exact gradient}
    variants: object  # (args, kwargs, dout, exact) -> [(gradient name, wrong answer, hint)]
    shapes: dict     # gradient name -> why it has that shape (a str, or (wrong, case) -> str)
    doc: str         # where the derivation is written out
    scalar: bool = False          # a loss: the output is a number and so is dout
    forward_given: bool = True    # False: the student writes the forward too
    forward_variants: object = None  # (args, kwargs) -> [(wrong output, hint)]
    crash_hint: str = ""          # said when the backward raises on a later case


# -- arrays changed in place ------------------------------------------------------------
def snapshot(obj):
    """A deep copy of arrays inside tuples, lists and dicts (anything else as deepcopy can)."""
    if isinstance(obj, np.ndarray):
        return obj.copy()
    if isinstance(obj, (list, tuple)):
        return [snapshot(o) for o in obj]
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    try:
        return copy.deepcopy(obj)
    except Exception:  # an object that cannot be copied is not compared
        return None


def unchanged(before, after):
    """True when ``after`` still holds what :func:`snapshot` saw in ``before``."""
    if isinstance(after, np.ndarray):
        if not (isinstance(before, np.ndarray) and before.shape == after.shape):
            return False
        try:
            return np.array_equal(before, after, equal_nan=True)
        except TypeError:  # strings, objects: no NaN to forgive
            return np.array_equal(before, after)
    if isinstance(after, (list, tuple)):
        return isinstance(before, list) and len(before) == len(after) and \
            all(unchanged(b, a) for b, a in zip(before, after))
    if isinstance(after, dict):
        return isinstance(before, dict) and before.keys() == after.keys() and \
            all(unchanged(before[k], after[k]) for k in after)
    if before is None or not isinstance(after, (int, float, str, bytes, bool, np.generic)):
        return True
    return before == after or (before != before and after != after)  # NaN == NaN here


IN_PLACE = {
    "dout": "{fn} changed dout in place; in minvert a residual block hands the same dout to two "
            "branches, so the second would get your modified copy: compute into a new array "
            "(dout * mask, not dout[...] = 0 or dout *= ...)",
    "cache": "{fn} changed its cache in place (an in-place -=, *=, [...] = on an array the "
             "forward stored): a second backward through the same cache gives another answer; "
             "copy before you modify",
    "input": "{fn} changed its input {name} in place; the caller still needs it: compute into a "
             "new array (np.maximum(x, 0), not x[x < 0] = 0)",
}


# -- running the student's functions ----------------------------------------------------
def run_forward(ex, fn, case, path):
    """(out, cache, None) or (None, None, problem) for one call of the student's forward."""
    args = [np.copy(v) for v in case.args.values()]
    kept = [a.copy() for a in args]
    try:
        result = fn(*args, **case.kwargs)
    except NotImplementedError:
        return None, None, f"not written yet ({ex.forward} raises NotImplementedError)"
    except Exception as e:
        return None, None, f"{ex.forward} raised {describe(e, path)} [{case.label}]"
    for name, a, k in zip(case.args, args, kept):
        if not unchanged(k, a):
            return None, None, IN_PLACE["input"].format(fn=ex.forward, name=name)
    if not (isinstance(result, tuple) and len(result) == 2):
        return None, None, f"{ex.forward} must return two values, (out, cache)"
    return result[0], result[1], None


def forward_problem(ex, got, case):
    """None when the forward output matches minvert's, else what is wrong with it (a first
    line, then possibly a hint after a newline)."""
    want = ex.ref(case.args, case.kwargs)
    try:
        got_arr = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        got_arr = None
    if got_arr is not None and np.shape(got_arr) == np.shape(want) and \
            rel_error(got_arr, want) < SAME:
        if np.ndim(got) and getattr(got, "dtype", np.float64) != np.float64:
            return f"out is {got.dtype} for float64 input [{case.label}]\nthe dtype must follow the input"
        return None
    if ex.forward_given:
        return (f"{ex.forward} no longer computes what the exercise defines [{case.label}]; "
                f"restore the forward given in the skeleton")
    if got is None:
        return f"out is None [{case.label}]\nreturn (out, cache): a forgotten `return`?"
    if got_arr is None:
        return f"out is not an array of numbers but a {type(got).__name__} [{case.label}]"
    if np.shape(got_arr) != np.shape(want):
        return (f"out has shape {np.shape(got_arr)}, expected {np.shape(want)} [{case.label}]\n"
                + ex.shapes.get("out", "check the output-size formula in the docstring"))
    err = rel_error(got_arr, want)
    for wrong, hint in (ex.forward_variants(case.args, case.kwargs) if ex.forward_variants else ()):
        if np.shape(wrong) == got_arr.shape and rel_error(got_arr, wrong) < MATCH:
            return f"rel. error {err:.1e} [{case.label}]\n{hint}"
    return f"rel. error {err:.1e} [{case.label}]\n{where(got_arr, want, 'out')}"


def where(mine, numerical, name):
    """Where the largest difference is (plain ints: NumPy 2 would print np.int64(0))."""
    mine, numerical = np.asarray(mine, np.float64), np.asarray(numerical, np.float64)
    if mine.ndim == 0:
        return f"yours {float(mine):.6g}, expected {float(numerical):.6g}"
    i = tuple(int(k) for k in np.unravel_index(np.argmax(np.abs(mine - numerical)), mine.shape))
    return (f"the largest difference is at {name}[{', '.join(map(str, i))}]: yours "
            f"{mine[i]:.6g}, expected {numerical[i]:.6g}")


def unpack(result, names):
    """The backward's return value as a list of gradients, or (None, what is wrong)."""
    if len(names) == 1:
        if isinstance(result, tuple):
            if len(result) == 1:
                return [result[0]], None
            return None, f"returned {len(result)} values; return one array, {names[0]}"
        return [result], None
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        n = len(result) if isinstance(result, (tuple, list)) else 1
        return None, f"returned {n} value{'s' * (n != 1)}; return {len(names)}: ({', '.join(names)})"
    return list(result), None


# -- one exercise -----------------------------------------------------------------------
FORWARD_FAILED = None  # what check() returns when the forward failed: falsy, and the summary names it


def check(ex, module, path, say, rng):
    """Check ``ex`` in ``module`` on fresh cases from ``rng``; report through ``say``."""
    forward, backward = getattr(module, ex.forward, None), getattr(module, ex.backward, None)
    say(ex.backward if ex.forward_given else f"{ex.forward} and {ex.backward}")
    if not callable(forward):
        say(f"  FAIL  {ex.backward} needs {ex.forward} in the same file: it makes the cache"
            + (" (as given in the exercise)" if ex.forward_given else ""))
        return FORWARD_FAILED
    names = [g for g, _ in ex.grads]
    report = {g: None for g in names}  # g -> (error, case, hint) of the first failure
    worst, passed = dict.fromkeys(names, 0.0), dict.fromkeys(names, False)
    for k, case in enumerate(ex.cases(rng)):
        got, cache, problem = run_forward(ex, forward, case, path)
        problem = problem or forward_problem(ex, got, case)
        if problem:
            first, _, hint = problem.partition("\n")
            say(f"  FAIL  {first}" if ex.forward_given else f"  {'out':<8} FAIL  {first}")
            if hint:
                say(_wrap(hint))
            return FORWARD_FAILED
        if not callable(backward):
            continue
        dout = float(rng.uniform(1.5, 2.5)) if ex.scalar else rng.standard_normal(np.shape(got))
        results, problem = backward_twice(ex, backward, dout, cache, path, case)
        if problem:
            first, _, hint = problem.partition("\n")
            say(f"  FAIL  {first}")
            if hint or (k and ex.crash_hint and "raised" in first):
                say(_wrap(hint or ex.crash_hint))
            return False
        exact, variants = ex.exact(case.args, case.kwargs, dout), None
        for (g, wrt), mine, again in zip(ex.grads, *results):
            x = np.array(case.args[wrt], dtype=np.float64)  # perturbed in place by numerical_vjp
            args = dict(case.args, **{wrt: x})
            numerical = numerical_vjp(lambda: ex.ref(args, case.kwargs), x, dout)
            err = rel_error(mine, numerical) if _numbers(mine, numerical.shape) else np.inf
            if err < TOLERANCE and not _same_twice(mine, again):
                err = np.inf
                hint = (f"two calls with the same dout and cache gave different {g}: the backward "
                        f"must depend only on its arguments (no global state, no random numbers)")
                report[g] = report[g] or (err, case, hint)
            elif err < TOLERANCE:
                worst[g], passed[g] = max(worst[g], err), True
            elif report[g] is None:
                if variants is None:
                    variants = ex.variants(case.args, case.kwargs, dout, exact)
                hint = diagnose(g, wrt, mine, numerical, exact[g], variants, ex, case,
                                case.hint if passed[g] else "")
                report[g] = (err, case, hint)
    if not ex.forward_given:
        say(f"  {'out':<8} matches minvert's forward    PASS")
    if not callable(backward):
        say(f"  FAIL  {ex.backward} is not defined: write it in the same file")
        return False
    for g in names:
        if report[g] is None:
            say(f"  {g:<8} rel. error {worst[g]:8.1e}  PASS")
        else:
            err, case, hint = report[g]
            shown = f"{err:8.1e}" if np.isfinite(err) else "     n/a"
            say(f"  {g:<8} rel. error {shown}  FAIL  [{case.label}]")
            say(_wrap(hint))
    return all(r is None for r in report.values())


def backward_twice(ex, backward, dout, cache, path, case):
    """(the two calls' gradient lists, None) or (None, what went wrong): the backward runs twice
    on the same dout and cache, and must change neither."""
    names, results = [g for g, _ in ex.grads], []
    for _ in range(2):
        given, kept = np.copy(dout), snapshot(cache)
        try:
            result = backward(given if not ex.scalar else dout, cache)
        except NotImplementedError:
            return None, f"not written yet ({ex.backward} raises NotImplementedError)"
        except Exception as e:
            return None, f"{ex.backward} raised {describe(e, path)} [{case.label}]"
        if not ex.scalar and not np.array_equal(given, dout):
            return None, IN_PLACE["dout"].format(fn=ex.backward)
        if not unchanged(kept, cache):
            return None, IN_PLACE["cache"].format(fn=ex.backward)
        result, problem = unpack(result, names)
        if problem:
            return None, f"{ex.backward} {problem}"
        results.append(result)
    return results, None


def _numbers(a, shape):
    """True when ``a`` is finite numbers of the given shape."""
    try:
        return np.shape(a) == shape and bool(np.all(np.isfinite(np.asarray(a, dtype=np.float64))))
    except (TypeError, ValueError):
        return False


def _same_twice(a, b):
    try:
        return rel_error(a, b) < 1e-12
    except (TypeError, ValueError):
        return False


def _wrap(hint):
    """HINT: ..., wrapped at 96 columns; a shape such as (F, C, KH, KW) is never split."""
    glued = re.sub(r"\([^()]*\)", lambda m: m.group().replace(" ", "\0"), hint)
    return textwrap.fill(glued, 96, initial_indent=" " * 11 + "HINT: ",
                         subsequent_indent=" " * 17).replace("\0", " ")


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
        return f"{g} has shape {mine.shape}; it must have the shape of {wrt}, {exact.shape}. " + why
    if not mine.any():
        return f"{g} is all zeros"
    scale = float(np.sum(mine * exact) / max(np.sum(exact * exact), 1e-300))
    if rel_error(mine, scale * exact) < MATCH:
        if abs(scale + 1) < 1e-6:
            return f"wrong sign: {g} is exactly minus the correct gradient"
        return (f"{g} is the correct gradient times {scale:.4g}: a constant factor is off "
                f"(a forgotten 1/N, 2 or upstream gradient?)")
    if case_hint:
        return case_hint
    return f"no common mistake recognised; {where(mine, numerical, g)}. Derivation: {ex.doc}"
