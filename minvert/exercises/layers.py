"""The layer exercises: forward and backward of dense, ReLU, sigmoid, softmax cross-entropy,
max/avg pooling, nearest upsampling, convolution (loops, then im2col) and batch-norm.

Every case draws its shapes at random from the run's seed, always with the property that
catches a mistake: batch > 1, no two sizes equal (a swapped axis cannot hide), stride != 1,
sizes the stride does not divide, windows that overlap or leave gaps.
"""
import numpy as np

from ..layers import (avgpool2d_forward, dense_forward, maxpool2d_backward, maxpool2d_forward,
                      relu_forward, sigmoid, softmax, softmax_cross_entropy,
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


# -- pooling and upsampling -------------------------------------------------------------
def pool_route(x, size, stride, dout, how):
    """The gradients of the usual pooling mistakes, by plain loops over the windows."""
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
            part = {"spread": g / size ** 2 + 0 * hit, "spread_assign": g / size ** 2 + 0 * hit,
                    "all": g + 0 * hit, "mask": hit * 1.0}.get(how, hit * g).reshape(N, C, size, size)
            if how == "assign":
                dx[sl] = np.where(hit.reshape(part.shape), part, dx[sl])
            elif how in ("assign_window", "spread_assign"):
                dx[sl] = part
            else:
                dx[sl] += part
    return dx


OVERLAP = ("windows overlap here (size 3 > stride 2): one element can be in two windows and "
           "must collect both gradients; accumulate with +=, never assign with =")
OUT_SIZE = ("H_out = (H - size) // stride + 1, which is not H // stride when size != stride: "
            "take H_out, W_out from dout.shape instead of recomputing them")


def pool_cases(values):
    def cases(rng):
        N, C = sizes(rng, 2, 2, 3)
        h, w = sizes(rng, 2, 2, 4)
        g1, g2 = sizes(rng, 2, 1, 3)
        o1, o2 = sizes(rng, 2, 2, 4)
        return [Case(f"2x2 windows, stride 2, {2 * h}x{2 * w} input",
                     {"x": values(rng, N, C, 2 * h, 2 * w)}, {"size": 2, "stride": 2}),
                Case(f"2x2 windows, stride 2, {2 * h + 1}x{2 * w + 1} input",
                     {"x": values(rng, C, N, 2 * h + 1, 2 * w + 1)}, {"size": 2, "stride": 2},
                     "fails when H or W is not a multiple of the stride: the last row/column is "
                     "in no window, gets zero gradient, and dx keeps the full shape of x"),
                Case(f"2x2 windows, stride 3 (gaps), {3 * g1 + 2}x{3 * g2 + 2} input",
                     {"x": values(rng, N, C, 3 * g1 + 2, 3 * g2 + 2)}, {"size": 2, "stride": 3},
                     OUT_SIZE),
                Case(f"3x3 windows, stride 2 (overlap), {2 * o1}x{2 * o2 + 1} input",
                     {"x": values(rng, N, C, 2 * o1, 2 * o2 + 1)}, {"size": 3, "stride": 2},
                     OVERLAP)]
    return cases


def maxpool():
    def exact(a, kw, d):
        return {"dx": maxpool2d_backward(d, maxpool2d_forward(a["x"], kw["size"], kw["stride"])[1])}

    def variants(a, kw, d, g):
        def r(how):
            return pool_route(a["x"], kw["size"], kw["stride"], d, how)
        return [("dx", r("spread"), "you spread dout evenly over the window (average pooling's "
                                    "gradient); max pooling sends all of it to the window's max"),
                ("dx", r("all"), "every element of the window received dout; only the window's "
                                 "maximum affected the output, so only it gets a gradient"),
                ("dx", r("assign"), OVERLAP), ("dx", r("assign_window"), OVERLAP),
                ("dx", r("swap"), "the gradient lands on the wrong element of the window: the "
                                  "argmax of a window flattened row by row is i * size + j, so "
                                  "(i, j) = divmod(index, size)"),
                ("dx", r("mask"), "dx is the mask of the maxima alone: multiply it by dout")]
    return Exercise("maxpool_forward", "maxpool_backward", (("dx", "x"),), pool_cases(distinct),
                    lambda a, kw: maxpool2d_forward(a["x"], kw["size"], kw["stride"])[0],
                    exact, variants, {}, LAYERS + "2", crash_hint=OUT_SIZE)


def avgpool():
    def ref(a, kw):
        return avgpool2d_forward(a["x"], kw["size"], kw["stride"])[0]

    def exact(a, kw, d):
        return {"dx": pool_route(a["x"], kw["size"], kw["stride"], d, "spread")}

    def variants(a, kw, d, g):
        def r(how):
            return pool_route(a["x"], kw["size"], kw["stride"], d, how)
        return [("dx", r("all"), "every element of the window received all of dout: the mean "
                                 "divides by size * size, so each gets dout / (size * size)"),
                ("dx", r("spread_assign"), OVERLAP),
                ("dx", r("max"), "you routed dout to the window's maximum "
                 "(max pooling's gradient); the mean spreads it evenly")]

    def forward_variants(a, kw):
        s = kw["size"]
        return [(ref(a, kw) * s * s, "out is the window's sum: divide by size * size"),
                (maxpool2d_forward(a["x"], s, kw["stride"])[0], "out is the window's max; "
                 "average pooling takes the mean")]
    return Exercise("avgpool_forward", "avgpool_backward", (("dx", "x"),), pool_cases(normal),
                    ref, exact, variants, {"out": OUT_SIZE}, LAYERS + "3", forward_given=False,
                    forward_variants=forward_variants, crash_hint=OUT_SIZE)


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
