"""Check the backward passes written for tutorials/exercises: ``minvert exercise check FILE``.

:func:`check_file` imports the file, finds the exercise functions it defines (``EXERCISES``)
and, for each one, on small random float64 inputs kept away from kinks and ties:

1. runs the file's forward and makes sure it still computes what minvert's own code does
   (the forward is given; the backward is the exercise);
2. calls the backward with a random upstream gradient (never ones: tutorial 02 shows a wrong
   batch-norm backward that passes with ones);
3. compares every returned gradient with central differences
   (:func:`minvert.gradcheck.numerical_vjp`): relative error, PASS or FAIL;
4. after a FAIL, compares the gradient with the classic wrong answers (a wrong sign, a
   forgotten mask, a missing transpose, ...), built exactly from minvert's own backward,
   and prints a HINT that names the mistake.

Error measure: ``|yours - numerical| / (|yours| + |numerical|)`` with ``|.|`` the norm of the
whole array. The element-wise maximum of minvert's own tests would flag rounding noise on
gradient elements that happen to be tiny; a student's check must not cry wolf.
"""
import re
import sys
import textwrap
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .transform import losses
from .gradcheck import numerical_vjp
from .layers import (batchnorm2d_backward, batchnorm2d_forward, maxpool2d_backward,
                     maxpool2d_forward, relu_forward, softmax, softmax_cross_entropy)
from .layers.conv import conv2d_backward, conv2d_forward

TOLERANCE = 1e-7  # a correct float64 backward lands near 1e-10
MATCH = 1e-6      # closer than this to a known wrong answer: that is the mistake
AXES = (0, 2, 3)  # batch and both spatial axes


@dataclass
class Case:
    label: str
    args: dict       # the forward's positional arguments, by name, in order
    kwargs: dict
    hint: str = ""   # said when this case fails although an earlier one passed


@dataclass
class Exercise:
    forward: str
    grads: tuple     # (gradient name, argument it belongs to), in the order backward returns them
    cases: object    # rng -> [Case]
    ref: object      # (args, kwargs) -> forward output, minvert's own code
    exact: object    # (args, kwargs, dout) -> {gradient name: exact gradient}
    variants: object  # (args, kwargs, dout, exact) -> [(gradient name, wrong answer, hint)]
    shapes: dict     # gradient name -> why it has the shape it has
    doc: str         # where the derivation is written out
    scalar: bool = False  # a loss: the output is a number and so is dout


def _normal(rng, *shape):
    return rng.standard_normal(shape)


def _away(rng, *shape):  # |x| in [0.1, 1]: ReLU's kink is far beyond the step h = 1e-5
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.0, shape)


def _distinct(rng, *shape):  # values 0.01 apart: no ties in a max-pool window, no zero TV difference
    return (rng.permutation(int(np.prod(shape))).reshape(shape) - np.prod(shape) / 2) / 100


FORGOT_DLOSS = ("you ignored dloss: the upstream gradient (the checker passes one that is not 1) "
                "multiplies the whole result")
LAYERS = "docs/layers.md, section "


# -- the exercises ----------------------------------------------------------------------
def _relu():
    def variants(a, kw, d, g):
        x = a["x"]
        return [("dx", d, "forgotten ReLU mask: the gradient flows only where x > 0, so multiply "
                          "dout by the mask (x > 0)"),
                ("dx", d * (x <= 0), "the ReLU mask is inverted: the gradient flows where x > 0"),
                ("dx", (x > 0) * 1.0, "dx is the mask alone: the chain rule multiplies this local "
                                      "derivative by dout"),
                ("dx", d * np.maximum(x, 0), "you multiplied dout by max(x, 0); the derivative of "
                                             "max(x, 0) is 1 where x > 0, not x")]
    return Exercise("relu_forward", (("dx", "x"),),
                    lambda rng: [Case("x (2, 3, 4, 5)", {"x": _away(rng, 2, 3, 4, 5)}, {})],
                    lambda a, kw: relu_forward(a["x"])[0],
                    lambda a, kw, d: {"dx": d * (a["x"] > 0)}, variants, {}, LAYERS + "4")


def _softmax_ce():
    def exact(a, kw, d):
        return {"dlogits": d * softmax_cross_entropy(a["logits"], a["y"])[1]}

    def variants(a, kw, d, g):
        logits, y = a["logits"], a["y"]
        N, K = logits.shape
        p, t = softmax(logits), (np.arange(K) == y[:, None]) * 1.0
        return [("dlogits", (p - t) * d, "forgot the 1/N: the loss is the mean over the N rows"),
                ("dlogits", (p - t) / N, FORGOT_DLOSS),
                ("dlogits", p - t, "forgot both the 1/N of the mean and the upstream dloss"),
                ("dlogits", p * d / N, "forgot to subtract the one-hot target: for one row, "
                                       "d(-log p[y]) / d logits = p - onehot(y)"),
                ("dlogits", -t / p * d / N, "that is d loss / d p, the gradient w.r.t. the "
                                            "probabilities; go on through the softmax to the logits")]
    return Exercise("softmax_ce_forward", (("dlogits", "logits"),),
                    lambda rng: [Case("logits (4, 5)", {"logits": 2 * _normal(rng, 4, 5),
                                                        "y": rng.integers(0, 5, 4)}, {})],
                    lambda a, kw: softmax_cross_entropy(a["logits"], a["y"])[0],
                    exact, variants, {}, LAYERS + "6", scalar=True)


def _pool_route(x, size, stride, dout, how):
    """The gradients of the usual max-pool mistakes, by plain loops over the windows."""
    N, C = x.shape[:2]
    dx = np.zeros_like(x)
    for oh in range(dout.shape[2]):
        for ow in range(dout.shape[3]):
            sl = np.s_[:, :, oh * stride:oh * stride + size, ow * stride:ow * stride + size]
            g = dout[:, :, oh, ow][:, :, None]  # (N, C, 1)
            idx = x[sl].reshape(N, C, -1).argmax(axis=2)[:, :, None]  # (N, C, 1)
            if how == "swap":
                idx = (idx % size) * size + idx // size
            hit = np.arange(size * size) == idx  # (N, C, size*size)
            part = {"spread": g / size ** 2 + 0 * hit, "all": g + 0 * hit, "mask": hit * 1.0
                    }.get(how, hit * g).reshape(N, C, size, size)
            if how == "assign":
                dx[sl] = np.where(hit.reshape(part.shape), part, dx[sl])
            elif how == "assign_window":
                dx[sl] = part
            else:
                dx[sl] += part
    return dx


OVERLAP = ("windows overlap here (size 3 > stride 2): one element can be the max of two "
           "windows and must collect both gradients; accumulate with +=, never assign with =")


def _maxpool():
    def cases(rng):
        return [Case("2x2 windows, stride 2, 4x6 input", {"x": _distinct(rng, 2, 3, 4, 6)},
                     {"size": 2, "stride": 2}),
                Case("2x2 windows, stride 2, 5x7 input", {"x": _distinct(rng, 2, 3, 5, 7)},
                     {"size": 2, "stride": 2},
                     "fails when H or W is not a multiple of the stride: the last row/column is "
                     "in no window, gets zero gradient, and dx keeps the full shape of x"),
                Case("3x3 windows, stride 2, 7x7 input", {"x": _distinct(rng, 2, 2, 7, 7)},
                     {"size": 3, "stride": 2}, OVERLAP)]

    def exact(a, kw, d):
        return {"dx": maxpool2d_backward(d, maxpool2d_forward(a["x"], kw["size"], kw["stride"])[1])}

    def variants(a, kw, d, g):
        def r(how):
            return _pool_route(a["x"], kw["size"], kw["stride"], d, how)
        return [("dx", r("spread"), "you spread dout evenly over the window (average pooling's "
                                    "gradient); max pooling sends all of it to the window's max"),
                ("dx", r("all"), "every element of the window received dout; only the window's "
                                 "maximum affected the output, so only it gets a gradient"),
                ("dx", r("assign"), OVERLAP), ("dx", r("assign_window"), OVERLAP),
                ("dx", r("swap"), "the gradient lands on the wrong element of the window: the "
                                  "argmax of a window flattened row by row is i * size + j, so "
                                  "(i, j) = divmod(index, size)"),
                ("dx", r("mask"), "dx is the mask of the maxima alone: multiply it by dout")]
    return Exercise("maxpool_forward", (("dx", "x"),), cases,
                    lambda a, kw: maxpool2d_forward(a["x"], kw["size"], kw["stride"])[0],
                    exact, variants, {}, LAYERS + "2")


def _conv():
    def cases(rng):
        def case(label, xs, ws, stride, pad, hint=""):
            args = {"x": _normal(rng, *xs), "w": _normal(rng, *ws), "b": _normal(rng, ws[0])}
            return Case(label, args, {"stride": stride, "pad": pad}, hint)
        return [case("3x3 kernel, stride 1, pad 0", (2, 4, 6, 7), (3, 4, 3, 3), 1, 0),
                case("3x3 kernel, stride 1, pad 1", (2, 4, 6, 7), (3, 4, 3, 3), 1, 1,
                     "passes without padding but fails with pad = 1: backward must use the padded "
                     "x_pad exactly as the forward did, and dx is the gradient w.r.t. x_pad with "
                     "its border cut off: dx_pad[:, :, pad:pad+H, pad:pad+W]"),
                case("3x2 kernel, stride 2, pad 1", (2, 4, 8, 9), (3, 4, 3, 2), 2, 1,
                     "passes with stride 1 and a square kernel but fails with stride 2 and a 3x2 "
                     "kernel: output (oh, ow) read rows oh*stride .. oh*stride+KH-1 and columns "
                     "ow*stride .. ow*stride+KW-1; backward must use the same slices")]

    def exact(a, kw, d, w=None):
        w = a["w"] if w is None else w
        cache = conv2d_forward(a["x"], w, a["b"], kw["stride"], kw["pad"])[1]
        return dict(zip(("dx", "dw", "db"), conv2d_backward(d, cache)))

    def variants(a, kw, d, g):
        dw, (F, C, KH, KW) = g["dw"], a["w"].shape
        unflipped = exact(a, kw, d, np.ascontiguousarray(a["w"][:, :, ::-1, ::-1]))["dx"]
        return [("dw", dw.transpose(1, 0, 2, 3),
                 "missing transpose: your dw is laid out (C, F, KH, KW), but the weights are "
                 "(F, C, KH, KW); swap the first two axes (or multiply in the other order)"),
                ("dw", np.ascontiguousarray(dw.reshape(F, -1).T).reshape(dw.shape),
                 "missing transpose: you reshaped a (C*KH*KW, F) matrix straight into "
                 "(F, C, KH, KW); transpose it to (F, C*KH*KW) first"),
                ("dw", dw[:, :, ::-1, ::-1], "dw came out flipped: dw[f, c, i, j] pairs dout[f, oh, "
                 "ow] with x_pad[c, oh*stride + i, ow*stride + j], no flip (only dx's transposed "
                 "convolution flips the kernel)"),
                ("dw", dw.transpose(0, 1, 3, 2), "kernel rows and columns are swapped in dw"),
                ("dx", unflipped, "dx used the kernel without flipping it: written as a "
                 "convolution of dout, dx needs w[:, :, ::-1, ::-1]; or scatter every output's "
                 "gradient back onto the patch it read, which needs no flip"),
                ("db", d[0].sum(axis=(1, 2)), "db sums only the first sample: sum dout over the "
                 "batch too, axes (0, 2, 3)"),
                ("db", d.mean(axis=AXES), "db is an average; b[f] is added once to every output "
                 "pixel of filter f, so sum dout over axes (0, 2, 3)")]
    return Exercise("conv_forward", (("dx", "x"), ("dw", "w"), ("db", "b")), cases,
                    lambda a, kw: conv2d_forward(a["x"], a["w"], a["b"], kw["stride"], kw["pad"])[0],
                    exact, variants,
                    {"dx": "dx has the shape of x, not of the padded x_pad: cut the border off.",
                     "db": "b[f] is added to every output pixel of filter f in every sample: sum "
                           "dout over axes (0, 2, 3), the batch and both spatial axes."},
                    LAYERS + "1")


def _batchnorm():
    def forward(a, kw):
        C = a["x"].shape[1]
        return batchnorm2d_forward(a["x"], a["gamma"], a["beta"], np.zeros(C), np.ones(C), True,
                                   eps=kw["eps"])

    def cases(rng):
        return [Case("x (4, 3, 2, 5)", {"x": 2 + 3 * _normal(rng, 4, 3, 2, 5),
                                        "gamma": rng.choice([-1.0, 1.0], 3) * rng.uniform(0.5, 1.5, 3),
                                        "beta": _normal(rng, 3)}, {"eps": 1e-5})]

    def exact(a, kw, d):
        return dict(zip(("dx", "dgamma", "dbeta"), batchnorm2d_backward(d, forward(a, kw)[1])))

    def variants(a, kw, d, g):
        x, gamma = a["x"], a["gamma"][None, :, None, None]
        mean = x.mean(axis=AXES, keepdims=True)
        inv_std = 1 / np.sqrt(((x - mean) ** 2).mean(axis=AXES, keepdims=True) + kw["eps"])
        x_hat, dx_hat = (x - mean) * inv_std, d * gamma

        def m(v):
            return v.mean(axis=AXES, keepdims=True)
        return [("dx", dx_hat * inv_std,
                 "you treated mean and variance as constants: both are computed from x, so every "
                 "x also moves its channel's mean and variance; add those two paths (through "
                 "dvar and dmean) to dx"),
                ("dx", inv_std * (dx_hat - m(dx_hat)), "you kept the mean's path but treated the "
                 "variance as a constant: var depends on x too"),
                ("dx", inv_std * (dx_hat - x_hat * m(dx_hat * x_hat)), "you kept the variance's "
                 "path but treated the mean as a constant: mean depends on x too"),
                ("dx", g["dx"] / gamma, "dx lacks the factor gamma: out = gamma * x_hat + beta, "
                 "so the gradient reaching x_hat is gamma * dout"),
                ("dgamma", d.sum(axis=AXES), "dgamma is dbeta's formula: gamma multiplies x_hat, "
                 "so dgamma sums dout * x_hat (did you swap dgamma and dbeta?)"),
                ("dgamma", (d * x).sum(axis=AXES), "dgamma uses x_hat, the normalised input, not x"),
                ("dbeta", g["dgamma"], "dbeta is dgamma's formula: beta is added as is, so dbeta "
                 "sums dout alone (did you swap dgamma and dbeta?)")]
    per_channel = ("gamma[c] and beta[c] act on every (n, h, w) of channel c: sum over axes "
                   "(0, 2, 3), the batch and both spatial axes, to get shape (C,).")
    return Exercise("batchnorm_forward", (("dx", "x"), ("dgamma", "gamma"), ("dbeta", "beta")),
                    cases, lambda a, kw: forward(a, kw)[0], exact, variants,
                    {"dgamma": per_channel, "dbeta": per_channel}, LAYERS + "10")


def _style():
    def cases(rng):
        return [Case("F (1, 4, 3, 5)", {"F": _normal(rng, 1, 4, 3, 5),
                                        "A": losses.gram(_normal(rng, 1, 4, 3, 5))}, {})]

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
    return Exercise("style_forward", (("dF", "F"),), cases,
                    lambda a, kw: losses.style_layer_loss(a["F"], a["A"])[0],
                    lambda a, kw, d: {"dF": d * losses.style_layer_loss(a["F"], a["A"])[1]},
                    variants, {"dF": "compute dFm (C, M), then reshape it to F's (1, C, H, W)."},
                    "minvert/transform/losses.py, style_layer_loss", scalar=True)


def _tv():
    def spread(gh, gv, plus=True, minus=True):  # each difference back onto its two pixels
        dx = np.zeros(gh.shape[:3] + (gh.shape[3] + 1,))
        if plus:
            dx[..., :, 1:] += gh
            dx[..., 1:, :] += gv
        if minus:
            dx[..., :, :-1] -= gh
            dx[..., :-1, :] -= gv
        return dx

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
    return Exercise("tv_forward", (("dx", "x"),),
                    lambda rng: [Case("x (2, 3, 4, 5)", {"x": _distinct(rng, 2, 3, 4, 5)}, {})],
                    lambda a, kw: losses.tv_loss(a["x"], "l1")[0],
                    lambda a, kw, d: {"dx": d * losses.tv_loss(a["x"], "l1")[1]},
                    variants, {}, "minvert/transform/losses.py, tv_loss", scalar=True)


EXERCISES = {"relu_backward": _relu, "softmax_ce_backward": _softmax_ce,
             "maxpool_backward": _maxpool, "conv_backward": _conv,
             "batchnorm_backward": _batchnorm, "style_backward": _style, "tv_backward": _tv}


# -- checking ---------------------------------------------------------------------------
def check_file(path, out=print):
    """Gradient-check the exercise functions defined in ``path`` (a .py file, or a folder:
    every ex*.py in it). Prints a report through ``out``; returns True when all pass."""
    say = out or (lambda *a: None)
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("ex*.py"))
        if not files:
            say(f"{path}: no ex*.py files to check")
            return False
        ok = [check_file(f, out) for f in files]
        say(f"\n{sum(ok)} of {len(ok)} files pass")
        return all(ok)
    module, error = _load(path)
    if error:
        say(error)
        return False
    found = [name for name in EXERCISES if callable(getattr(module, name, None))]
    if not found:
        say(f"{path}: defines none of the exercise functions ({', '.join(EXERCISES)})")
        return False
    say(f"checking {path}")
    # one fixed seed per exercise: the same inputs whatever else the file defines
    ok = [_check(name, EXERCISES[name](), module, path, say,
                 np.random.default_rng(list(EXERCISES).index(name))) for name in found]
    say("result: " + ", ".join(f"{name} {'PASS' if k else 'FAIL'}" for name, k in zip(found, ok)))
    return all(ok)


def _load(path):
    """(module, None) or (None, one-line error). The module never enters sys.modules for good,
    and no .pyc is written or read (a stale one could hide the student's latest edit)."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return None, f"{path}: cannot read it ({type(e).__name__}: {e})"
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as e:
        return None, f"{path}, line {e.lineno}: {type(e).__name__}: {e.msg}"
    name = f"_minvert_exercise_{abs(hash(str(path.resolve())))}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses, pickling & co. look the module up while it runs
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as e:
        return None, f"{path}: running it failed: {_describe(e, path)}"
    finally:
        sys.modules.pop(name, None)
    return module, None


def _describe(e, path):
    """One line: the exception and the line of the student's file it came from."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]
    where = f" (line {frames[-1].lineno}: {frames[-1].line.strip()})" if frames else ""
    message = str(e).strip().splitlines()
    return f"{type(e).__name__}{': ' + message[0] if message else ''}{where}"


def _err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    den = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if den == 0 else float(np.linalg.norm(a - b) / den)


def _check(backward_name, ex, module, path, say, rng):
    forward, backward = getattr(module, ex.forward, None), getattr(module, backward_name)
    names = [g for g, _ in ex.grads]
    say(f"{backward_name}")
    if not callable(forward):
        say(f"  FAIL  {backward_name} needs {ex.forward} (as given in the exercise) in the same "
            f"file: it makes the cache")
        return False
    report = {g: None for g in names}  # g -> (error, case, hint) of the first failure
    worst = dict.fromkeys(names, 0.0)
    passed = dict.fromkeys(names, False)
    notes = set()
    for case in ex.cases(rng):
        try:
            got, cache = forward(*[np.copy(v) for v in case.args.values()], **case.kwargs)
        except Exception as e:
            say(f"  FAIL  {ex.forward} raised {_describe(e, path)}; restore the given forward")
            return False
        want = ex.ref(case.args, case.kwargs)
        if np.shape(got) != np.shape(want) or _err(got, want) > 1e-9:
            say(f"  FAIL  {ex.forward} no longer computes what the exercise defines (case "
                f"{case.label}); restore the forward given in the skeleton")
            return False
        dout = float(rng.uniform(1.5, 2.5)) if ex.scalar else rng.standard_normal(np.shape(want))
        given = np.copy(dout)
        try:
            result = backward(given if not ex.scalar else dout, cache)
        except NotImplementedError:
            say(f"  FAIL  not written yet ({backward_name} raises NotImplementedError)")
            return False
        except Exception as e:
            say(f"  FAIL  {backward_name} raised {_describe(e, path)}")
            return False
        if not ex.scalar and not np.array_equal(given, dout):
            notes.add(f"  NOTE  {backward_name} changed dout in place; in a network another "
                      f"layer may still need it, so compute into a new array")
        result, problem = _unpack(result, names)
        if problem:
            say(f"  FAIL  {backward_name} {problem}")
            return False
        exact, variants = ex.exact(case.args, case.kwargs, dout), None
        for (g, wrt), mine in zip(ex.grads, result):
            x = np.array(case.args[wrt], dtype=np.float64)  # perturbed in place by numerical_vjp
            args = dict(case.args, **{wrt: x})
            numerical = numerical_vjp(lambda: ex.ref(args, case.kwargs), x, dout)
            err = _err(mine, numerical) if _shape(mine) == numerical.shape else np.inf
            if err < TOLERANCE:
                worst[g], passed[g] = max(worst[g], err), True
            elif report[g] is None:
                if variants is None:
                    variants = ex.variants(case.args, case.kwargs, dout, exact)
                hint = _diagnose(g, wrt, mine, numerical, exact[g], variants, ex,
                                 case.hint if passed[g] else "")
                report[g] = (err, case, hint)
    for g in names:
        if report[g] is None:
            say(f"  {g:<8} rel. error {worst[g]:8.1e}  PASS")
        else:
            err, case, hint = report[g]
            shown = f"{err:8.1e}" if np.isfinite(err) else "     n/a"
            say(f"  {g:<8} rel. error {shown}  FAIL  [{case.label}]")
            # a shape such as (F, C, KH, KW) is never split across two lines
            glued = re.sub(r"\([^()]*\)", lambda m: m.group().replace(" ", "\0"), hint)
            say(textwrap.fill(glued, 96, initial_indent=" " * 11 + "HINT: ",
                              subsequent_indent=" " * 17).replace("\0", " "))
    for note in sorted(notes):
        say(note)
    return all(r is None for r in report.values())


def _shape(a):
    try:
        return np.shape(a)
    except ValueError:  # a ragged list
        return None


def _unpack(result, names):
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


def _diagnose(g, wrt, mine, numerical, exact, variants, ex, case_hint):
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
        if name == g and np.shape(wrong) == mine.shape and _err(mine, wrong) < MATCH:
            return hint
    if mine.shape != exact.shape:
        if mine.size == exact.size and _err(mine.reshape(exact.shape), exact) < MATCH:
            return f"right numbers, wrong shape: {g} is {mine.shape}; reshape it to {exact.shape}"
        return (f"{g} has shape {mine.shape}; it must have the shape of {wrt}, {exact.shape}. "
                + ex.shapes.get(g, ""))
    if not mine.any():
        return f"{g} is all zeros"
    scale = float(np.sum(mine * exact) / max(np.sum(exact * exact), 1e-300))
    if _err(mine, scale * exact) < MATCH:
        if abs(scale + 1) < 1e-6:
            return f"wrong sign: {g} is exactly minus the correct gradient"
        return (f"{g} is the correct gradient times {scale:.4g}: a constant factor is off "
                f"(a forgotten 1/N, 2 or upstream gradient?)")
    if case_hint:
        return case_hint
    i = np.unravel_index(np.argmax(np.abs(mine - numerical)), mine.shape)
    return (f"no common mistake recognised; the largest difference is at {g}{list(i)}: yours "
            f"{mine[i]:.6g}, numerical {numerical[i]:.6g}. Derivation: {ex.doc}")
