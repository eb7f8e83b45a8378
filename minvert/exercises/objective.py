"""Exercise 15: the function L-BFGS-B minimises in paper 000, class loss + tv_weight * TV, on
a flat float64 vector. Checked on one image with three networks: logits of order 1, the same
logits + 1000 and the same logits - 1000. exp(1000) overflows float64 and exp(-1000) is 0, so
a softmax without its max subtracted gives NaN on the last two on every seed; with the shift
all three give the same loss and gradient.
"""
import numpy as np

from ..gradcheck import TOLERANCE, rel_error
from ..layers import softmax_cross_entropy
from ..transform import losses
from .hints import MATCH, wrap
from .inversion import Custom, _call
from .layers import distinct, normal, sizes

SHIFT = ("exp of a logit of 1000 overflows float64 (exp(710) is already inf) and exp(-1000) "
         "is 0: subtract the largest logit before exp, z = logits - logits.max(); the max "
         "cancels in the softmax")


class _LinearNet:
    """The network the objective sees: logits = W x.ravel() + offset, (1, K); backward(dlogits)
    -> dx (the offset moves every logit alike, so the softmax and dx do not change)."""

    def __init__(self, W, shape, offset=0.0):
        self.W, self.shape, self.offset = W, shape, offset

    def forward(self, x):
        return (self.W @ x.reshape(-1) + self.offset)[None, :]  # (1, K)

    def backward(self, dlogits):
        return (dlogits[0] @ self.W).reshape(self.shape)  # (1, C, H, W)


def _objective_ref(x, net, target, tv_weight):
    x = x.reshape(net.shape)
    ce, dlogits = softmax_cross_entropy(net.forward(x), np.array([target]))
    tv, dtv = losses.tv_loss(x, "l1")
    return ce + tv_weight * tv, net.backward(dlogits), dtv


def _loss_problem(loss, want, x, shape, tv_weight, large):
    """None when the loss is right, else (first line, hint)."""
    try:
        value = float(loss)
    except (TypeError, ValueError):
        return f"loss must be a number, got {type(loss).__name__}", ""
    dtype = getattr(loss, "dtype", np.float64)
    if dtype != np.float64:
        return f"loss is {dtype}", "L-BFGS-B works in float64: compute the loss in float64"
    if abs(value - want) <= 1e-9 * abs(want):
        return None
    first = f"loss {value:.6g}, expected {want:.6g}"
    if large and not np.isfinite(value):
        return first, SHIFT
    tv_only = want - tv_weight * losses.tv_loss(x.reshape(shape), "l1")[0]
    if abs(value - tv_only) < 1e-9 * abs(want):
        return first, "the loss lacks tv_weight * TV(x)"
    return first, ("loss = softmax cross-entropy of net.forward(x) against [target] + "
                   "tv_weight * TV(x), with x = x_flat.reshape(shape)")


def _grad_problem(grad, dce, dtv, tv_weight, large):
    """None when the gradient is right, else (first line, hint)."""
    g, exact = np.asarray(grad), (dce + tv_weight * dtv).reshape(-1)
    if g.shape != exact.shape:
        return f"grad has shape {g.shape}", ("scipy works on a flat vector: return grad.ravel(), "
                                              f"shape (C*H*W,)" if g.size == exact.size else
                                              f"grad must have x_flat's shape {exact.shape}")
    if g.dtype != np.float64:
        return f"grad is {g.dtype}", "L-BFGS-B works in float64: grad.astype(np.float64)"
    if not np.all(np.isfinite(g)):
        return "grad contains NaN or inf", SHIFT if large else ""
    err = rel_error(g, exact)
    if err < TOLERANCE:
        return None
    wrongs = [(dce.reshape(-1), "the gradient lacks tv_weight * dTV"),
              ((dce + dtv).reshape(-1), "the TV gradient is not multiplied by tv_weight"),
              (tv_weight * dtv.reshape(-1), "the gradient lacks the class loss's part, "
               "net.backward(dlogits)"),
              (-exact, "wrong sign: L-BFGS-B minimises, so return the gradient, not its negative")]
    return f"grad rel. error {err:.1e}", next(
        (h for w, h in wrongs if rel_error(g, w) < MATCH),
        "grad = net.backward(dlogits).ravel() + tv_weight * dTV.ravel()")


def _run_objective(fn, path, say, rng):
    C, H, W, K = sizes(rng, 4, 2, 6)
    shape = (1, C, H, W)
    weights = 0.3 * normal(rng, K, C * H * W)
    x = distinct(rng, *shape).reshape(-1) * 3
    target, tv_weight = int(rng.integers(K)), float(rng.uniform(0.05, 0.2))
    for offset in (0.0, 1000.0, -1000.0):
        net, label = _LinearNet(weights, shape, offset), f" [logits + {offset:g}]" if offset else ""
        kept = x.copy()
        result, ok = _call(fn, path, say, x, shape, net, target, tv_weight)
        if not ok:
            return False
        if not np.array_equal(kept, x):
            say("  FAIL  objective changed x_flat in place: L-BFGS-B owns that vector")
            return False
        if not (isinstance(result, tuple) and len(result) == 2):
            say("  FAIL  objective must return (loss, grad), what "
                "scipy.optimize.minimize(jac=True) expects")
            return False
        want, dce, dtv = _objective_ref(x, net, target, tv_weight)
        problem = _grad_problem(result[1], dce, dtv, tv_weight, offset != 0) or \
            _loss_problem(result[0], want, x, shape, tv_weight, offset != 0)
        if problem:  # the gradient first: its dtype and shape say more than a loss value
            say(f"  FAIL  {problem[0]}{label}")
            if problem[1]:
                say(wrap(problem[1]))
            return False
    say("  loss and grad match, also with logits of +-1000  PASS")
    return True


def objective():
    return Custom("objective", _run_objective, "the L-BFGS-B objective of paper 000")
