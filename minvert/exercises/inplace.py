"""Arrays a student's function changed in place: :func:`snapshot` before the call,
:func:`unchanged` after it, and what to say (:data:`IN_PLACE`)."""
import copy

import numpy as np


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
