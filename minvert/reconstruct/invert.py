"""Inversion of a pooled feature vector by optimising the pixels (Mahendran & Vedaldi 2015),
beside paper 003's trained decoder.

For each image n, with Φ the encoder's pooled feature (:meth:`ResNet.features`) and Φ0 the
vector to invert, minimise over the pixels x (the encoder's input space, box-bounded to valid
0..255 images, as transform/ does)::

    L_n = ‖Φ(x) - Φ0‖² / ‖Φ0‖²  +  λ_α R_α(x)  +  λ_TV R_TV(x)

    R_α(x)  = mean over c, i, j of |d|^α
    R_TV(x) = mean over c, i, j of ((d[i, j+1] - d[i, j])² + (d[i+1, j] - d[i, j])² + ε)^(β/2)

where d = (x - m) / w is the image centred and scaled per channel (m the input value of
mid-grey, w that of the 0..255 span), so d ∈ [-½, ½] in every preprocessing convention and the
λs do not depend on it or on the image size (means, not sums; Mahendran & Vedaldi divide by
B^α H W for the same reason). R_TV runs over the (H-1) x (W-1) pixels that have both
neighbours; ε (1e-8 in d units) keeps β < 2 differentiable at flat patches.

The images of a batch are independent: the total is Σ_n L_n, so its gradient w.r.t. image n is
that of L_n alone. Minimised by scipy's L-BFGS-B over the whole batch (one forward and one
backward pass of the encoder per evaluation), or by gradient descent with momentum and jitter
(M&V's own optimiser: a random shift of every image before each pass).
``init``: the decoder's output (decoder-initialised refinement), the mean image, or noise.

Host/device boundary: scipy works on float64 NumPy vectors; :func:`_lbfgs` converts at its
edges only, so the objective runs unchanged on CuPy.
"""
import time
from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module, to_numpy
from ..errors import MinvertError

TV_EPS = 1e-8
OPTIMIZERS = ("lbfgs", "gd")


@dataclass
class InvertSettings:
    """Everything that defines an inversion run (written to the summary)."""
    alpha: float = 6.0          # M&V: 6
    lambda_alpha: float = 1e-4
    beta: float = 2.0           # M&V: 2 (1 gives spikes; 2 is smooth)
    lambda_tv: float = 5.0
    iters: int = 60
    optimizer: str = "lbfgs"    # OPTIMIZERS
    history: int = 10           # L-BFGS memory
    lr: float = 0.05            # gd: step on d (units of the 0..255 span), times the gradient
    momentum: float = 0.9       # gd
    jitter: int = 0             # gd: max random shift in pixels per step
    seed: int = 0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise MinvertError(f"unknown optimizer {self.optimizer!r}; use {' or '.join(OPTIMIZERS)}")
        if self.jitter and self.optimizer == "lbfgs":
            raise MinvertError("L-BFGS cannot follow an objective that moves every step (jitter); "
                               "use --optimizer gd")
        if not self.alpha >= 1 or not self.beta >= 1:
            raise MinvertError(f"alpha {self.alpha:g} and beta {self.beta:g} must be >= 1")
        if min(self.lambda_alpha, self.lambda_tv) < 0 or self.iters < 0:
            raise MinvertError("the multipliers and the number of iterations must be >= 0")


def _centre_scale(pre, xp, dtype):
    """(m, w), each (1, 3, 1, 1): the input values of mid-grey and of the 0..255 span."""
    low, high = (np.asarray(v, np.float64).reshape(1, 3, 1, 1) for v in pre.pixel_bounds())
    return xp.asarray(((low + high) / 2).astype(dtype)), xp.asarray((high - low).astype(dtype))


def alpha_prior(d, alpha):
    """R_α per image (N,) and its gradient w.r.t. d: mean |d|^α, α |d|^(α-1) sign(d) / count."""
    xp = get_array_module(d)
    count = d[0].size
    a = xp.abs(d)
    value = (a ** alpha).reshape(len(d), -1).sum(axis=1) / count
    grad = alpha * a ** (alpha - 1) * xp.sign(d) / count
    return value, grad


def tv_prior(d, beta):
    """R_TV per image (N,) and its gradient w.r.t. d (see the module docstring)."""
    xp = get_array_module(d)
    dh = d[:, :, :-1, 1:] - d[:, :, :-1, :-1]  # (N, C, H-1, W-1) right neighbour
    dv = d[:, :, 1:, :-1] - d[:, :, :-1, :-1]  # (N, C, H-1, W-1) lower neighbour
    s = dh * dh + dv * dv + TV_EPS
    count = s[0].size
    value = (s ** (beta / 2)).reshape(len(d), -1).sum(axis=1) / count
    k = beta * s ** (beta / 2 - 1) / count  # d value / d s times 2
    grad = xp.zeros_like(d)
    grad[:, :, :-1, 1:] += k * dh
    grad[:, :, 1:, :-1] += k * dv
    grad[:, :, :-1, :-1] -= k * (dh + dv)
    return value, grad


class FeatureObjective:
    """Σ_n L_n and its gradient w.r.t. x (N, 3, S, S), for a frozen encoder.

    targets: (N, D) the vectors to invert, on the encoder's device."""

    def __init__(self, encoder, targets, settings):
        self.net, self.s = encoder, settings
        xp, dtype = encoder.xp, encoder.dtype
        self.targets = xp.asarray(targets, dtype=dtype)
        self.norm2 = (self.targets * self.targets).sum(axis=1, keepdims=True)  # (N, 1)
        if float(self.norm2.min()) == 0:
            raise MinvertError("a target feature vector is all zeros; nothing to invert")
        self.m, self.w = _centre_scale(encoder.preprocessing, xp, dtype)

    def features(self, x):
        _, acts = self.net.forward_taps(x, ["avgpool"], output=False)
        return acts["avgpool"]  # (N, D)

    def evaluate(self, x, shift=(0, 0)):
        """(total, {term: (N,) per image}, dx): the values on the device, nothing synchronised.
        shift: the encoder sees x rolled by (dy, dx) (jitter); the priors see x itself."""
        xp = get_array_module(x)
        x_net = xp.roll(x, shift, axis=(2, 3)) if any(shift) else x
        diff = self.features(x_net) - self.targets
        feature = (diff * diff).sum(axis=1) / self.norm2[:, 0]
        dx = self.net.backward(None, {"avgpool": 2 * diff / self.norm2})
        if any(shift):
            dx = xp.roll(dx, (-shift[0], -shift[1]), axis=(2, 3))
        d = (x - self.m) / self.w
        a_val, a_grad = alpha_prior(d, self.s.alpha)
        t_val, t_grad = tv_prior(d, self.s.beta)
        dx = dx + (self.s.lambda_alpha * a_grad + self.s.lambda_tv * t_grad) / self.w
        terms = {"feature": feature, "alpha": a_val, "tv": t_val}
        total = (feature + self.s.lambda_alpha * a_val + self.s.lambda_tv * t_val).sum()
        return total, terms, dx


def invert(encoder, targets, start, settings, log=print):
    """Optimise the images ``start`` (N, 3, S, S) in the encoder's input space until their pooled
    features approach ``targets`` (N, D). Returns (x, record): record holds the per-image terms
    at the start and the end (host floats), the evaluations run and the seconds taken."""
    net = encoder.freeze()
    objective = FeatureObjective(net, targets, settings)
    low, high = (np.asarray(v, np.float64).reshape(1, 3, 1, 1) for v in net.preprocessing.pixel_bounds())
    low, high = np.broadcast_to(low, start.shape), np.broadcast_to(high, start.shape)
    x = net.xp.asarray(np.clip(to_numpy(start).astype(np.float64), low, high).astype(net.dtype))
    before = _host_terms(objective, x)
    t0 = time.perf_counter()
    if settings.iters:
        run = _lbfgs if settings.optimizer == "lbfgs" else _gradient_descent
        x, evaluations = run(objective, x, settings, low, high)
    else:
        evaluations = 0
    seconds = time.perf_counter() - t0
    after = _host_terms(objective, x)
    log(f"invert: {len(x)} image(s), {settings.optimizer}, {evaluations} evaluations, {seconds:.1f} s; "
        f"feature distance² {np.mean(before['feature']):.4f} -> {np.mean(after['feature']):.4f} (mean)")
    return x, {"before": before, "after": after, "evaluations": evaluations, "seconds": seconds}


def _host_terms(objective, x):
    _, terms, _ = objective.evaluate(x)
    return {k: to_numpy(v).astype(np.float64).tolist() for k, v in terms.items()}


def _lbfgs(objective, x, s, low, high):
    """scipy's L-BFGS-B over the whole batch; the only host/device crossings are here."""
    from scipy.optimize import Bounds, minimize
    xp, count = get_array_module(x), [0]

    def fun(v):
        count[0] += 1
        total, _, dx = objective.evaluate(xp.asarray(v.reshape(x.shape), dtype=x.dtype))
        return float(total), to_numpy(dx).astype(np.float64).ravel()

    result = minimize(fun, to_numpy(x).astype(np.float64).ravel(), jac=True, method="L-BFGS-B",
                      bounds=Bounds(low.ravel(), high.ravel()),
                      options={"maxiter": s.iters, "maxcor": s.history, "maxfun": 2 * s.iters + 5})
    return xp.asarray(result.x.reshape(x.shape), dtype=x.dtype), count[0]


def _gradient_descent(objective, x, s, low, high):
    """M&V's optimiser: momentum gradient descent, each step after a random shift (jitter).
    The step is lr * w² * g (a step of lr * g on d = (x - m) / w), clipped to the bounds."""
    xp = get_array_module(x)
    rng = np.random.default_rng(s.seed)
    low_d, high_d = xp.asarray(low.astype(x.dtype)), xp.asarray(high.astype(x.dtype))
    step = (s.lr * objective.w * objective.w).astype(x.dtype)
    velocity = xp.zeros_like(x)
    x = x.copy()
    for _ in range(s.iters):
        shift = tuple(int(v) for v in rng.integers(-s.jitter, s.jitter + 1, size=2)) if s.jitter else (0, 0)
        _, _, dx = objective.evaluate(x, shift=shift)
        velocity *= s.momentum
        velocity -= step * dx
        x += velocity
        xp.clip(x, low_d, high_d, out=x)
    return x, s.iters
