"""The exercises on paper 000's losses (content, Gram/style, total variation) and paper 003's
optimiser (one Adadelta step); the whole L-BFGS-B objective is in objective.py."""
import numpy as np

from ..gradcheck import rel_error
from ..optim import Adadelta
from .studentfile import describe
from ..transform import losses
from .check import Case, Exercise
from .hints import MATCH, wrap, wrong_dtype
from .inplace import snapshot, unchanged
from .layers import FORGOT_DLOSS, distinct, normal, sizes


def content():
    def cases(rng):
        C, H, W = sizes(rng, 3, 2, 6)
        return [Case(f"F (1, {C}, {H}, {W})", {"F": normal(rng, 1, C, H, W),
                                               "P": normal(rng, 1, C, H, W)}, {})]

    def variants(a, kw, d, g):
        diff = a["F"] - a["P"]
        return [("dF", diff, FORGOT_DLOSS),
                ("dF", 2 * d * diff, "the 1/2 in front of the sum cancels the 2 of the square: "
                 "dF = dloss * (F - P)"),
                ("dF", d * np.sign(diff), "the derivative of (F - P)^2 / 2 is F - P, not its sign")]
    return Exercise("content_forward", "content_backward", (("dF", "F"),), cases,
                    lambda a, kw: losses.content_loss(a["F"], a["P"])[0],
                    lambda a, kw, d: {"dF": d * (a["F"] - a["P"])}, variants, {},
                    "docs/losses.md, content loss", scalar=True)


def style():
    def cases(rng):
        C, H, W = sizes(rng, 3, 2, 6)
        return [Case(f"F (1, {C}, {H}, {W})", {"F": normal(rng, 1, C, H, W),
                                               "A": losses.gram(normal(rng, 1, C, H, W))}, {})]

    def variants(a, kw, d, g):
        F, A = a["F"], a["A"]
        C, M = F.shape[1], F.shape[2] * F.shape[3]
        Fm = F.reshape(C, M)
        constant = ("a constant factor is off: differentiate 1/(4 C^2 M^2) sum (G - A)^2 w.r.t. "
                    "G first, then G = Fm Fm^T w.r.t. Fm (two terms, one per factor)")
        return [("dF", g["dF"] / d, FORGOT_DLOSS),
                ("dF", g["dF"] / 2, "half the gradient: G = Fm Fm^T contains Fm twice and both "
                 "factors contribute, dFm = (dG + dG^T) Fm"),
                ("dF", 2 * g["dF"], constant), ("dF", 4 * g["dF"], constant),
                ("dF", g["dF"] / 4, constant),
                ("dF", g["dF"] * C ** 2 * M ** 2, "forgot the loss's normalisation 1/(C^2 M^2)"),
                ("dF", (d / (C * M) ** 2 * (Fm.T @ (Fm @ Fm.T - A))).reshape(F.shape),
                 "you computed Fm^T (G - A), shape (M, C), and reshaped it: the gradient is "
                 "(G - A) Fm, shape (C, M)")]
    return Exercise("style_forward", "style_backward", (("dF", "F"),), cases,
                    lambda a, kw: losses.style_layer_loss(a["F"], a["A"])[0],
                    lambda a, kw, d: {"dF": d * losses.style_layer_loss(a["F"], a["A"])[1]},
                    variants, {"dF": "compute dFm (C, M), then reshape it to F's (1, C, H, W)."},
                    "minvert/transform/losses.py, style_layer_loss", scalar=True)


def tv():
    def spread(gh, gv, plus=True, minus=True):  # each difference back onto its two pixels
        dx = np.zeros(gh.shape[:3] + (gh.shape[3] + 1,))
        if plus:
            dx[..., :, 1:] += gh
            dx[..., 1:, :] += gv
        if minus:
            dx[..., :, :-1] -= gh
            dx[..., :-1, :] -= gv
        return dx

    def cases(rng):
        N, C, H, W = sizes(rng, 4, 2, 6)
        return [Case(f"x ({N}, {C}, {H}, {W})", {"x": distinct(rng, N, C, H, W)}, {})]

    def variants(a, kw, d, g):
        x = a["x"]
        dh, dv = x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]
        sh, sv = d * np.sign(dh), d * np.sign(dv)
        rh, rv = np.sign(x - np.roll(x, 1, axis=3)), np.sign(x - np.roll(x, 1, axis=2))
        two = ("each difference x[right] - x[left] touches two pixels: sign(d) goes to the right "
               "(or lower) pixel and -sign(d) to the left (or upper) one")
        return [("dx", spread(sh, sv, minus=False), two), ("dx", spread(sh, sv, plus=False), two),
                ("dx", spread(sh, 0 * sv), "you forgot the vertical differences "
                 "x[:, :, 1:, :] - x[:, :, :-1, :]"),
                ("dx", spread(0 * sh, sv), "you forgot the horizontal differences "
                 "x[:, :, :, 1:] - x[:, :, :, :-1]"),
                ("dx", spread(2 * d * dh, 2 * d * dv), "that is the gradient of the squared TV; "
                 "this loss sums |d|, whose derivative is sign(d)"),
                ("dx", spread(d * dh, d * dv), "you used the difference d itself; the derivative "
                 "of |d| is sign(d)"),
                ("dx", d * (rh - np.roll(rh, -1, axis=3) + rv - np.roll(rv, -1, axis=2)),
                 "you counted pairs that wrap around the border (np.roll?): the last column is "
                 "not a neighbour of the first"),
                ("dx", g["dx"] / d, FORGOT_DLOSS)]
    return Exercise("tv_forward", "tv_backward", (("dx", "x"),), cases,
                    lambda a, kw: losses.tv_loss(a["x"], "l1")[0],
                    lambda a, kw, d: {"dx": d * losses.tv_loss(a["x"], "l1")[1]},
                    variants, {}, "minvert/transform/losses.py, tv_loss", scalar=True)


# -- exercises that are not a forward/backward pair -------------------------------------
class Custom:
    """An exercise checked by its own ``run(fn, path, say, rng) -> bool`` on the one function
    ``name`` the student writes."""

    def __init__(self, name, run, title):
        self.name, self.run, self.title = name, run, title

    def present(self, module):
        return callable(getattr(module, self.name, None))

    def check(self, module, path, say, rng):
        say(self.name)
        return self.run(getattr(module, self.name), str(path), say, rng)


def _call(fn, path, say, *args, **kwargs):
    """(result, True) or (None, False) after saying why the call failed."""
    try:
        return fn(*args, **kwargs), True
    except NotImplementedError:
        say(f"  FAIL  not written yet ({fn.__name__} raises NotImplementedError)")
    except Exception as e:
        say(f"  FAIL  {fn.__name__} raised {describe(e, path)}")
    return None, False


def _adadelta_ref(w, g, a, d, lr, rho, eps, how=""):
    """One Adadelta step (Zeiler 2012, Keras' order) -> (w, a, d); ``how`` makes a mistake."""
    a = (rho * g * g + (1 - rho) * a) if how == "rho" else rho * a + (1 - rho) * g * g
    d_used = rho * d + (1 - rho) * (g * np.sqrt(d + eps) / np.sqrt(a + eps)) ** 2 \
        if how == "order" else d
    if how == "eps_out":
        update = g * (np.sqrt(d_used) + eps) / (np.sqrt(a) + eps)
    elif how == "no_sqrt":
        update = g * (d_used + eps) / (a + eps)
    else:
        update = g * np.sqrt(d_used + eps) / np.sqrt(a + eps)
    w = w + lr * update if how == "sign" else w - (1.0 if how == "no_lr" else lr) * update
    return w, a, rho * d + (1 - rho) * update * update


ADADELTA_HINTS = {
    "order": "the update used the new E[delta^2]; Zeiler's step computes the update with the "
             "previous E[delta^2] and accumulates it afterwards",
    "eps_out": "eps goes inside the square roots: sqrt(E[delta^2] + eps) / sqrt(E[g^2] + eps)",
    "no_sqrt": "the update is g * sqrt(E[delta^2] + eps) / sqrt(E[g^2] + eps): RMS values, so "
               "square roots",
    "sign": "w moved up the gradient: w_new = w - lr * update",
    "no_lr": "lr is missing (the checker uses lr = 0.5): w_new = w - lr * update",
    "rho": "rho and 1 - rho are swapped: E[g^2] = rho * E[g^2] + (1 - rho) * g^2",
}


def _run_adadelta(fn, path, say, rng):
    R, S = sizes(rng, 2, 2, 6)
    w = normal(rng, R, S)
    a, d = np.zeros_like(w), np.zeros_like(w)
    ref = Adadelta(lr=0.5, rho=0.9, eps=1e-6)
    w_ref = w.copy()
    for step in range(3):  # from zero state, then with accumulated state
        g = normal(rng, R, S)
        args = [w, g, a, d]
        kept = snapshot(args)
        mine, ok = _call(fn, path, say, *args, lr=0.5, rho=0.9, eps=1e-6)
        if not ok:
            return False
        if not unchanged(kept, args):
            say("  FAIL  adadelta_step changed an argument in place; return new arrays")
            return False
        if not (isinstance(mine, tuple) and len(mine) == 3):
            say("  FAIL  adadelta_step must return three arrays: (w_new, accum_grad, accum_delta)")
            return False
        dtype = next(filter(None, (wrong_dtype(n, m) for n, m in
                                   zip(("w_new", "accum_grad", "accum_delta"), mine))), None)
        if dtype:  # before the values: float32 rounding shows on some draws and not others
            first, _, hint = dtype.partition("\n")
            say(f"  FAIL  step {step + 1}: {first}")
            say(wrap(hint))
            return False
        ref.step([("w", w_ref, g)])
        want = (w_ref, ref.state["accum_grad"]["w"], ref.state["accum_delta"]["w"])
        errors = [rel_error(m, t) if np.shape(m) == t.shape else np.inf for m, t in zip(mine, want)]
        if max(errors) > 1e-9:
            name = ("w_new", "accum_grad", "accum_delta")[int(np.argmax(errors))]
            say(f"  FAIL  step {step + 1}: {name} rel. error {max(errors):.1e}")
            for how, hint in ADADELTA_HINTS.items():
                wrong = _adadelta_ref(w, g, a, d, 0.5, 0.9, 1e-6, how)
                # by w_new: the weights show the mistake even when the state is off another way
                if np.shape(mine[0]) == wrong[0].shape and rel_error(mine[0], wrong[0]) < MATCH:
                    say(wrap(hint))
                    break
            else:
                say(wrap("compare with docs/optim.md, section 3: E[g^2] first, then the update "
                          "with the old E[delta^2], then w, then E[delta^2]"))
            return False
        w, a, d = (np.array(m, dtype=np.float64) for m in mine)
    say("  3 steps match minvert.optim.Adadelta  PASS")
    return True


def adadelta():
    return Custom("adadelta_step", _run_adadelta, "one Adadelta step")
