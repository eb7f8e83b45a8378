"""Assembling a small network from minvert's layers and overfitting a tiny data set: the
exercise where forward, backward and the update meet.

The returned losses alone prove nothing (a list of made-up decreasing numbers has the right
shape), so the checker watches the training itself: while ``overfit`` runs, minvert's Dense
and ReLU classes record every forward and backward call and the parameters each forward
used. Then, for every one of the 300 steps, it recomputes the step from those parameters
with minvert's own functions: the loss the step must have recorded (before its update), and
the parameters the next step must start from, p - lr * grad for every array, biases included.
"""
import numpy as np

from ..layers import Dense, ReLU
from .hints import wrap
from .inplace import snapshot, unchanged
from .inversion import Custom, _call
from .spy import Spy, loss_mistake, reference_step, update_mistake

STEPS = 300
NET = "Dense(D, 32) -> ReLU -> Dense(32, K)"


def _losses(losses, say):
    """The returned losses as a float64 vector of STEPS values, or None after saying why."""
    try:
        losses = np.asarray(losses, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        say("  FAIL  overfit must return the list of losses, one float per step")
        return None
    if losses.size != STEPS:
        say(f"  FAIL  overfit returned {losses.size} losses for steps={STEPS}: one per step")
        return None
    return losses


def _net(spy, x, say):
    """The two Dense layers in the order the first step used them, or None after saying why."""
    dense = spy.dense_layers()
    if not dense:
        say("  FAIL  no Dense layer of minvert ran")
        say(wrap(f"build the net {NET} from minvert.layers' Dense and ReLU and train it: the "
                 f"checker recomputes every step from the layers' own parameters, so losses "
                 f"computed any other way cannot pass"))
        return None
    shapes = [tuple(layer.params["w"].shape) for layer in dense]
    first = spy.first_input(dense[0])
    if len(dense) != 2 or shapes[0][1] != x.shape[1] or shapes[1][1] != shapes[0][0]:
        say(f"  FAIL  the net must be {NET}, built once before the loop; yours ran Dense layers "
            f"with weights {', '.join(map(str, shapes))} (w is (out, in))")
        return None
    if first.shape != x.shape or np.max(np.abs(first - x)) > 1e-6 * np.max(np.abs(x)):
        say("  FAIL  the first Dense layer must receive x itself")
        return None
    return dense


def _replay(spy, dense, x, y, losses, lr, say):
    """Every step recomputed from the parameters its forward used; False after saying where the
    first one differs."""
    starts = [spy.training_params(layer) for layer in dense]
    if any(len(s) != STEPS for s in starts):
        counts = ", ".join(str(len(s)) for s in starts)
        say(f"  FAIL  {STEPS} steps need {STEPS} forward passes, each followed by a backward "
            f"through the same layer; the two Dense layers had {counts}")
        say(wrap("forward x through every layer, compute the loss, then backward through every "
                 "layer in reverse order, once per step"))
        return False
    params = [s + [{k: np.array(v) for k, v in layer.params.items()}]
              for s, layer in zip(starts, dense)]
    x_in = spy.first_input(dense[0])
    for t in range(STEPS):
        p_t = [params[0][t], params[1][t]]
        loss, grads = reference_step(x_in, y, p_t)
        if not abs(losses[t] - loss) <= 1e-9 * max(1.0, abs(loss)):  # NaN fails too
            first, hint = loss_mistake(t, float(losses[t]), loss, params, x_in, y, spy, ReLU)
        elif not all(_moved_as(params[j][t + 1], p_t[j], grads[j], lr) for j in (0, 1)):
            moved = [{k: params[j][t + 1][k] - p_t[j][k] for k in p_t[j]} for j in (0, 1)]
            want = [{k: -lr * grads[j][k] for k in p_t[j]} for j in (0, 1)]
            without = reference_step(x_in, y, p_t, relu=False)[1][0]
            first, hint = update_mistake(t, moved, want, without, lr, spy, ReLU)
        else:
            continue
        say(f"  FAIL  step {t + 1}: {first}")
        say(wrap(hint))
        return False
    return True


def _moved_as(after, before, grads, lr):
    """True when every array went from ``before`` to ``after`` by -lr * grad, up to the
    rounding of one subtraction in the parameters' dtype and 1e-10 of the step (the same
    gradient computed by other, equal formulas differs by ~1e-15 of it; a wrong step by all
    of it)."""
    for k, p in before.items():
        step = lr * grads[k]
        if np.shape(after.get(k)) != p.shape:
            return False
        off = np.max(np.abs(np.asarray(after[k], np.float64) - (p - step)), initial=0.0)
        if off > 16 * np.finfo(p.dtype).eps * np.max(np.abs(p), initial=0.0) + \
                1e-10 * np.max(np.abs(step), initial=0.0):
            return False
    return True


def _run_overfit(fn, path, say, rng):
    N, D, K = 12, 6, 3
    x = rng.standard_normal((N, D))
    y = rng.permutation(np.arange(N) % K)  # every class present, no pattern to learn
    kept, lr = snapshot([x, y]), 0.5
    with Spy(Dense, ReLU) as spy:
        losses, ok = _call(fn, path, say, x, y, steps=STEPS, lr=lr, seed=3)
    if not ok:
        return False
    if not unchanged(kept, [x, y]):
        say("  FAIL  overfit changed x or y in place")
        return False
    losses = _losses(losses, say)
    dense = None if losses is None else _net(spy, x, say)
    if dense is None or not _replay(spy, dense, x, y, losses, lr, say):
        return False
    first, last = float(losses[0]), float(losses[-1])
    say(f"  loss {first:.3f} at step 1, {last:.4f} at step {STEPS}; every step is the "
        f"reference step from the same parameters")
    if last > 0.05:
        say("  FAIL  a 12-sample, 3-class data set must be memorised (final loss < 0.05)")
        say(wrap("every step is right, so the start is not: initialise the layers as Dense does "
                 "(He normal weights from the rng, zero biases)"))
        return False
    again, ok = _call(fn, path, say, x, y, steps=STEPS, lr=lr, seed=3)
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
