"""How one layer-style exercise is checked: the file's forward against minvert's, then its
backward against central differences, twice, watching for arrays changed in place.

Vocabulary: an :class:`Exercise` names a forward ``X_forward(*args, **kwargs) -> (out,
cache)`` and a backward ``X_backward(dout, cache) -> gradients``; its ``cases`` draw fresh
random inputs from the run's seed, from easy to hard; ``ref`` is minvert's own forward (the
numerical gradient differentiates it, never the student's code); ``variants`` are the classic
wrong answers, computed exactly, each with the hint that names the mistake.
"""
from dataclasses import dataclass

import numpy as np

from ..gradcheck import TOLERANCE, numerical_vjp, rel_error
from .hints import EXACT, MATCH, diagnose, near_miss, shape_hint, where, wrap, wrong_dtype
from .inplace import IN_PLACE, snapshot, unchanged
from .studentfile import describe

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
    crash_hint: object = None     # (forward, backward, case) -> what to say when the backward
    #                               raises on a later case, "" when nothing is proven


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
    dtype = None if ex.forward_given else wrong_dtype("out", got)
    if dtype:  # before the values: a float32 out would pass or fail by chance of the draw
        first, _, hint = dtype.partition("\n")
        return f"{first} [{case.label}]\n{hint}"
    try:
        got_arr = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        got_arr = None
    if got_arr is not None and np.shape(got_arr) == np.shape(want) and \
            rel_error(got_arr, want) < SAME:
        return None
    if ex.forward_given:
        return (f"{ex.forward} no longer computes what the exercise defines [{case.label}]; "
                f"restore the forward given in the skeleton")
    if got is None:
        return f"out is None [{case.label}]\nreturn (out, cache): a forgotten `return`?"
    if got_arr is None:
        return f"out is not an array of numbers but a {type(got).__name__} [{case.label}]"
    if np.shape(got_arr) != np.shape(want):
        why = ex.shapes.get("out", "the docstring gives out's shape")  # callable: says it all
        why = why(got_arr, case) if callable(why) else shape_hint(got_arr.shape, want.shape, why)
        return f"out has shape {got_arr.shape}, expected {np.shape(want)} [{case.label}]\n{why}"
    err = rel_error(got_arr, want)
    for wrong, hint in (ex.forward_variants(case.args, case.kwargs) if ex.forward_variants else ()):
        if np.shape(wrong) == got_arr.shape and rel_error(got_arr, wrong) < MATCH:
            return f"rel. error {err:.1e} [{case.label}]\n{hint}"
    return f"rel. error {err:.1e} [{case.label}]\n{where(got_arr, want, 'out')}"


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
                say(wrap(hint))
            return FORWARD_FAILED
        if not callable(backward):
            continue
        dout = float(rng.uniform(1.5, 2.5)) if ex.scalar else rng.standard_normal(np.shape(got))
        results, problem = backward_twice(ex, backward, dout, cache, path, case)
        if problem and any(report.values()):
            break  # an earlier case already failed: that failure says more than a crash here
        if problem:
            first, _, hint = problem.partition("\n")
            say(f"  FAIL  {first}")
            if not hint and k and ex.crash_hint and "raised" in first:
                hint = ex.crash_hint(forward, backward, case)
            if hint:
                say(wrap(hint))
            return False
        exact, variants = ex.exact(case.args, case.kwargs, dout), []
        for (g, wrt), mine, again in zip(ex.grads, *results):
            if report[g] is None:
                err, hint = judge(ex, g, wrt, mine, again, case, dout, exact, variants,
                                  case.hint if passed[g] else "")
                if hint:
                    report[g] = (err, case, hint)
                else:
                    worst[g], passed[g] = max(worst[g], err), True
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
            say(wrap(hint))
    return all(r is None for r in report.values())


def judge(ex, g, wrt, mine, again, case, dout, exact, variants, case_hint):
    """(error, None) for a gradient that passes, (error, hint) for one that fails: its dtype
    first, then central differences of minvert's forward by the one rule of gradcheck, then
    minvert's exact float64 gradient (float32 arithmetic passes the first rule on some inputs
    and not others; it never comes within EXACT of the second), then twice the same answer."""
    dtype = wrong_dtype(g, mine)
    if dtype:
        return np.inf, dtype.replace("\n", ": ", 1)
    x = np.array(case.args[wrt], dtype=np.float64)  # perturbed in place by numerical_vjp
    args = dict(case.args, **{wrt: x})
    numerical = numerical_vjp(lambda: ex.ref(args, case.kwargs), x, dout)
    err = rel_error(mine, numerical) if _numbers(mine, numerical.shape) else np.inf
    if err >= TOLERANCE:
        if not variants:
            variants.extend(ex.variants(case.args, case.kwargs, dout, exact))
        return err, diagnose(g, wrt, mine, numerical, exact[g], variants, ex, case, case_hint)
    off = rel_error(mine, exact[g])
    if off >= EXACT:
        return off, near_miss(g, off)
    if not _same_twice(mine, again):
        return np.inf, (f"two calls with the same dout and cache gave different {g}: the backward "
                        f"must depend only on its arguments (no global state, no random numbers)")
    return err, None


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
