"""Assembling a small network from minvert's layers and overfitting a tiny data set: the
exercise where forward, backward and the update meet."""
import numpy as np

from .check import snapshot, unchanged, _wrap
from .inversion import Custom, _call

STEPS = 300


def _run_overfit(fn, path, say, rng):
    N, D, K = 12, 6, 3
    x = rng.standard_normal((N, D))
    y = rng.permutation(np.arange(N) % K)  # every class present, no pattern to learn
    kept = snapshot([x, y])
    losses, ok = _call(fn, path, say, x, y, steps=STEPS, lr=0.5, seed=3)
    if not ok:
        return False
    if not unchanged(kept, [x, y]):
        say("  FAIL  overfit changed x or y in place")
        return False
    try:
        losses = np.asarray(losses, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        say("  FAIL  overfit must return the list of losses, one float per step")
        return False
    if losses.size != STEPS:
        say(f"  FAIL  overfit returned {losses.size} losses for steps={STEPS}: one per step")
        return False
    if not np.all(np.isfinite(losses)):
        say(f"  FAIL  the loss became NaN or inf at step {int(np.argmin(np.isfinite(losses))) + 1}")
        say(_wrap("a step too large, or a gradient added instead of subtracted"))
        return False
    first, last = float(losses[0]), float(losses[-1])
    say(f"  loss {first:.3f} at step 1, {last:.4f} at step {STEPS}")
    if last > 0.05:
        if last > first:
            hint = "the loss went up: a step goes against the gradient, p -= lr * grad"
        elif abs(last - first) < 1e-9 * max(first, 1):
            hint = ("the loss never moved: did the update reach the layers' own arrays? "
                    "layer.params[k] -= lr * layer.grads[k] changes them in place; "
                    "layer.params[k] = ... or a copy does not")
        else:
            hint = ("the loss fell but not below 0.05 in 300 steps: is the whole chain there "
                    "(backward through every layer in reverse order, each layer's grads used)?")
        say("  FAIL  a 12-sample, 3-class data set must be memorised (final loss < 0.05)")
        say(_wrap(hint))
        return False
    again, ok = _call(fn, path, say, x, y, steps=STEPS, lr=0.5, seed=3)
    if not ok:
        return False
    if not np.array_equal(np.asarray(again, dtype=np.float64).reshape(-1), losses):
        say("  FAIL  the same seed gave other losses: draw every random number from "
            "np.random.default_rng(seed)")
        return False
    say("  memorised, and the same seed repeats the run  PASS")
    return True


def overfit():
    return Custom("overfit", _run_overfit, "assemble a small net and overfit it")
