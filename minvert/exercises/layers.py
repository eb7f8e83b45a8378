"""The layer exercises: forward and backward of dense, ReLU, sigmoid, softmax cross-entropy,
nearest upsampling; the pooling exercises are in pooling.py, convolution and batch-norm in
conv_norm.py.

Every case draws its shapes at random from the run's seed, always with the property that
catches a mistake: batch > 1, no two sizes equal (a swapped axis cannot hide), stride != 1,
sizes the stride does not divide, windows that overlap or leave gaps.
"""
import numpy as np

from ..layers import (dense_forward, relu_forward, sigmoid, softmax, softmax_cross_entropy,
                      upsample_nearest_forward)
from .check import Case, Exercise

AXES = (0, 2, 3)  # batch and both spatial axes
LAYERS = "docs/layers.md, section "
FORGOT_DLOSS = ("you ignored dloss: the upstream gradient (the checker passes one that is not 1) "
                "multiplies the whole result")


def sizes(rng, k, low=2, high=7):
    """k different sizes in [low, high]: an axis mix-up always changes a shape."""
    return [int(v) for v in rng.choice(np.arange(low, high + 1), k, replace=False)]


def normal(rng, *shape):
    return rng.standard_normal(shape)


def away(rng, *shape):  # |x| in [0.1, 1]: ReLU's kink is far beyond the step h = 1e-5
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.0, shape)


def distinct(rng, *shape):  # values 0.01 apart: no ties in a max-pool window, no zero TV difference
    return (rng.permutation(int(np.prod(shape))).reshape(shape) - np.prod(shape) / 2) / 100


def _elementwise(x_kind):
    def cases(rng):
        N, C, H, W = sizes(rng, 4)
        A, B = sizes(rng, 2)
        return [Case(f"x ({N}, {C}, {H}, {W})", {"x": x_kind(rng, N, C, H, W)}, {}),
                Case(f"x ({A}, {B})", {"x": x_kind(rng, A, B)}, {})]
    return cases


# -- dense, ReLU, sigmoid ---------------------------------------------------------------
def dense():
    def cases(rng):
        out = []
        for _ in range(2):
            N, D_in, D_out = sizes(rng, 3, 2, 9)
            out.append(Case(f"x ({N}, {D_in}), w ({D_out}, {D_in})",
                            {"x": normal(rng, N, D_in), "w": normal(rng, D_out, D_in),
                             "b": normal(rng, D_out)}, {}))
        return out

    def exact(a, kw, d):
        return {"dx": d @ a["w"], "dw": d.T @ a["x"], "db": d.sum(axis=0)}

    def variants(a, kw, d, g):
        return [("dw", g["dw"].T, "dw is laid out (in, out) = x^T dout; w is (out, in): "
                 "dw = dout^T x"),
                ("db", d.mean(axis=0), "db is an average; b is added once to every row, so sum "
                 "dout over the batch"),
                ("db", d[0], "db is the first row of dout: sum over the batch, axis 0"),
                ("dx", d @ a["w"] / len(d),
                 "dx is divided by N: every row of x has its own row of dout, nothing is averaged")]
    return Exercise("dense_forward", "dense_backward", (("dx", "x"), ("dw", "w"), ("db", "b")),
                    cases, lambda a, kw: dense_forward(a["x"], a["w"], a["b"])[0], exact, variants,
                    {"dx": "dx has x's shape (N, in): dout (N, out) @ w (out, in).",
                     "dw": "dw has w's shape (out, in): dout^T (out, N) @ x (N, in).",
                     "db": "db has b's shape (out,): sum dout over the batch, axis 0.",
                     "out": "out = x @ w.T + b has shape (N, out): w is (out, in)."},
                    LAYERS + "13", forward_given=False,
                    forward_variants=lambda a, kw: [(a["x"] @ a["w"].T, "you forgot the bias b"),
                                                    (a["x"] @ a["w"].T - a["b"], "b is added, not "
                                                     "subtracted")])


def relu():
    def variants(a, kw, d, g):
        x = a["x"]
        return [("dx", d, "forgotten ReLU mask: the gradient flows only where x > 0, so multiply "
                          "dout by the mask (x > 0)"),
                ("dx", d * (x <= 0), "the ReLU mask is inverted: the gradient flows where x > 0"),
                ("dx", (x > 0) * 1.0, "dx is the mask alone: the chain rule multiplies this local "
                                      "derivative by dout"),
                ("dx", d * np.maximum(x, 0), "you multiplied dout by max(x, 0); the derivative of "
                                             "max(x, 0) is 1 where x > 0, not x")]
    return Exercise("relu_forward", "relu_backward", (("dx", "x"),), _elementwise(away),
                    lambda a, kw: relu_forward(a["x"])[0],
                    lambda a, kw, d: {"dx": d * (a["x"] > 0)}, variants, {}, LAYERS + "4")


def sigmoid_exercise():
    def variants(a, kw, d, g):
        x, s = a["x"], sigmoid(a["x"])
        return [("dx", d * x * (1 - x), "you used x where the formula needs s = sigmoid(x): "
                 "dx = dout * s * (1 - s)"),
                ("dx", s * (1 - s), "dx is the local derivative alone: multiply it by dout"),
                ("dx", d * s, "the derivative of s is s * (1 - s), not s"),
                ("dx", d * sigmoid(s) * (1 - sigmoid(s)), "you applied the sigmoid to its own "
                 "output: the cache already holds s, and ds/dx = s * (1 - s)")]
    return Exercise("sigmoid_forward", "sigmoid_backward", (("dx", "x"),),
                    _elementwise(lambda rng, *s: 3 * normal(rng, *s)),
                    lambda a, kw: sigmoid(a["x"]), lambda a, kw, d: {
                        "dx": d * sigmoid(a["x"]) * (1 - sigmoid(a["x"]))},
                    variants, {}, LAYERS + "5", forward_given=False,
                    forward_variants=lambda a, kw: [(1 / (1 + np.exp(a["x"])), "the sign in "
                                                     "the exponent: s = 1 / (1 + exp(-x))")])


# -- softmax cross-entropy --------------------------------------------------------------
def softmax_ce():
    def cases(rng):
        N, K = sizes(rng, 2, 3, 8)
        return [Case(f"logits ({N}, {K})", {"logits": 2 * normal(rng, N, K),
                                            "y": rng.integers(0, K, N)}, {})]

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
    return Exercise("softmax_ce_forward", "softmax_ce_backward", (("dlogits", "logits"),),
                    cases, lambda a, kw: softmax_cross_entropy(a["logits"], a["y"])[0],
                    exact, variants, {}, LAYERS + "6", scalar=True)


# -- upsampling ------------------------------------------------------------------------
def upsample():
    def cases(rng):
        N, C, H, W = sizes(rng, 4, 2, 5)
        return [Case(f"factor 2, x ({N}, {C}, {H}, {W})", {"x": normal(rng, N, C, H, W)},
                     {"factor": 2}),
                Case(f"factor 3, x ({C}, {N}, {W}, {H})", {"x": normal(rng, C, N, W, H)},
                     {"factor": 3})]

    def exact(a, kw, d):
        f, (N, C, H, W) = kw["factor"], a["x"].shape
        return {"dx": d.reshape(N, C, H, f, W, f).sum(axis=(3, 5))}

    def variants(a, kw, d, g):
        f = kw["factor"]
        return [("dx", d[:, :, ::f, ::f], "you took one element of each f x f block of dout; "
                 "x[h, w] was copied to all f * f of them, so it collects their sum"),
                ("dx", g["dx"] / f ** 2, "you averaged each block of dout; x[h, w] was copied "
                 "f * f times and each copy sends its gradient back: sum them")]
    return Exercise("upsample_forward", "upsample_backward", (("dx", "x"),), cases,
                    lambda a, kw: upsample_nearest_forward(a["x"], kw["factor"])[0], exact,
                    variants, {"out": "out is (N, C, H * factor, W * factor)."}, LAYERS + "11",
                    forward_given=False,
                    forward_variants=lambda a, kw: [(np.tile(a["x"], (1, 1, kw["factor"], kw["factor"])),
                                                     "np.tile repeats the whole image; each pixel "
                                                     "must become a block: np.repeat along H and W")])
