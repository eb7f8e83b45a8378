"""The convolution exercises (loops with the forward given; then both passes with im2col)
and batch-norm. Shapes are random per run: F != C, KH != KW, batch > 1, strides that do not
divide the padded size."""
import numpy as np

from ..layers import batchnorm2d_backward, batchnorm2d_forward
from ..layers.conv import conv2d_backward, conv2d_forward
from .check import Case, Exercise
from .hints import shape_hint
from .layers import AXES, LAYERS, normal, sizes

PAD_HINT = ("passes without padding but fails with pad = 1: backward must use the padded x_pad "
            "exactly as the forward did, and dx is the gradient w.r.t. x_pad with its border cut "
            "off: dx_pad[:, :, pad:pad+H, pad:pad+W]")
STRIDE_HINT = ("passes with stride 1 and a square kernel but fails with stride 2 and a KH != KW "
               "kernel: output (oh, ow) read rows oh*stride .. oh*stride+KH-1 and columns "
               "ow*stride .. ow*stride+KW-1; backward must use the same slices")


def conv_cases(rng):
    N, C, F = sizes(rng, 3, 2, 4)
    K = int(rng.choice([2, 3]))
    KH, KW = (3, 2) if rng.integers(2) else (2, 3)

    def case(label, H, W, kh, kw, stride, pad, hint=""):
        args = {"x": normal(rng, N, C, H, W), "w": normal(rng, F, C, kh, kw), "b": normal(rng, F)}
        return Case(f"{label}, x ({N}, {C}, {H}, {W}), w ({F}, {C}, {kh}, {kw})", args,
                    {"stride": stride, "pad": pad}, hint)
    H, W = sizes(rng, 2, K + 2, K + 5)
    # stride 2 that does not divide H + 2 - KH: the last row of x_pad is read by no window
    H2, W2 = 2 * int(rng.integers(2, 4)) + KH + 1 - 2, 2 * int(rng.integers(2, 4)) + KW + 1 - 2
    return [case(f"{K}x{K} kernel, stride 1, pad 0", H, W, K, K, 1, 0),
            case(f"{K}x{K} kernel, stride 1, pad 1", W, H, K, K, 1, 1, PAD_HINT),
            case(f"{KH}x{KW} kernel, stride 2, pad 1", H2, W2, KH, KW, 2, 1, STRIDE_HINT)]


def _crop_hint(mine, case):
    if case.kwargs["pad"] == 0 and 0 in mine.shape:
        return ("At pad = 0 the crop dx_pad[:, :, pad:-pad, pad:-pad] is [0:0], empty: write "
                "dx_pad[:, :, pad:pad+H, pad:pad+W]")
    N, C, H, W = case.args["x"].shape
    pad = case.kwargs["pad"]
    if mine.shape == (N, C, H + 2 * pad, W + 2 * pad):
        return "dx has the shape of x, not of the padded x_pad: cut the border off."
    return ""


def _out_hint(got, case):
    """Why out has the wrong shape, from what its shape shows."""
    (N, C, H, W), (F, _, KH, KW) = case.args["x"].shape, case.args["w"].shape
    stride, pad = case.kwargs["stride"], case.kwargs["pad"]
    want = (N, F, (H + 2 * pad - KH) // stride + 1, (W + 2 * pad - KW) // stride + 1)
    if got.ndim != 4 or (got.size == np.prod(want) and sorted(got.shape) != sorted(want)):
        return (f"out must be (N, F, H_out, W_out) = {want}: reshape the (F, N*H_out*W_out) "
                f"product to (F, N, H_out, W_out), then transpose(1, 0, 2, 3)")
    return shape_hint(got.shape, want, "H_out = (H + 2*pad - KH) // stride + 1, W_out likewise "
                                       "with KW.")


def _conv(forward, backward, given):
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
                ("dw", np.ascontiguousarray(dw.transpose(1, 0, 2, 3)).reshape(dw.shape),
                 "you accumulated dw as (C, F, KH, KW) and reshaped it to (F, C, KH, KW): a "
                 "reshape keeps the memory order, it does not swap axes; transpose(1, 0, 2, 3)"),
                ("dw", np.ascontiguousarray(dw.reshape(F, -1).T).reshape(dw.shape),
                 "missing transpose: you reshaped a (C*KH*KW, F) matrix straight into "
                 "(F, C, KH, KW); transpose it to (F, C*KH*KW) first"),
                ("dw", dw[:, :, ::-1, ::-1], "dw came out flipped: dw[f, c, i, j] pairs dout[f, oh, "
                 "ow] with x_pad[c, oh*stride + i, ow*stride + j], no flip (only dx's transposed "
                 "convolution flips the kernel)"),
                ("dx", unflipped, "dx used the kernel without flipping it: written as a "
                 "convolution of dout, dx needs w[:, :, ::-1, ::-1]; or scatter every output's "
                 "gradient back onto the patch it read, which needs no flip"),
                ("db", d[0].sum(axis=(1, 2)), "db sums only the first sample: sum dout over the "
                 "batch too, axes (0, 2, 3)"),
                ("db", d.mean(axis=AXES), "db is an average; b[f] is added once to every output "
                 "pixel of filter f, so sum dout over axes (0, 2, 3)")]

    def forward_variants(a, kw):
        w = np.ascontiguousarray(a["w"][:, :, ::-1, ::-1])
        out = conv2d_forward(a["x"], a["w"], a["b"], kw["stride"], kw["pad"])[0]
        return [(conv2d_forward(a["x"], w, a["b"], kw["stride"], kw["pad"])[0], "you flipped "
                 "the kernel: minvert, like every deep-learning library, computes a correlation, "
                 "out = sum w[f, c, i, j] * x_pad[c, oh*stride + i, ow*stride + j]"),
                (conv2d_forward(a["x"], a["w"], None, kw["stride"], kw["pad"])[0],
                 "you forgot the bias b[f]"),
                (np.ascontiguousarray(out.transpose(1, 0, 2, 3)).reshape(out.shape), "you "
                 "reshaped the (F, N*H_out*W_out) product straight to (N, F, H_out, W_out): a "
                 "reshape keeps the memory order; reshape to (F, N, H_out, W_out), then "
                 "transpose(1, 0, 2, 3)")]
    return Exercise(forward, backward, (("dx", "x"), ("dw", "w"), ("db", "b")), conv_cases,
                    lambda a, kw: conv2d_forward(a["x"], a["w"], a["b"], kw["stride"], kw["pad"])[0],
                    exact, variants,
                    {"dx": _crop_hint,
                     "db": "b[f] is added to every output pixel of filter f in every sample: sum "
                           "dout over axes (0, 2, 3), the batch and both spatial axes.",
                     "out": _out_hint},
                    LAYERS + "1", forward_given=given, forward_variants=forward_variants)


def conv():
    return _conv("conv_forward", "conv_backward", True)


def conv_im2col():
    return _conv("im2col_conv_forward", "im2col_conv_backward", False)


def batchnorm():
    def forward(a, kw):
        C = a["x"].shape[1]
        return batchnorm2d_forward(a["x"], a["gamma"], a["beta"], np.zeros(C), np.ones(C), True,
                                   eps=kw["eps"])

    def cases(rng):
        out = []
        for _ in range(2):
            N, C, H, W = sizes(rng, 4, 2, 5)
            out.append(Case(f"x ({N}, {C}, {H}, {W})", {
                "x": 2 + 3 * normal(rng, N, C, H, W),
                "gamma": rng.choice([-1.0, 1.0], C) * rng.uniform(0.5, 1.5, C),
                "beta": normal(rng, C)}, {"eps": 1e-5}))
        return out

    def exact(a, kw, d):
        return dict(zip(("dx", "dgamma", "dbeta"), batchnorm2d_backward(d, forward(a, kw)[1])))

    def variants(a, kw, d, g):
        x, gamma = a["x"], a["gamma"][None, :, None, None]
        mean = x.mean(axis=AXES, keepdims=True)
        inv_std = 1 / np.sqrt(((x - mean) ** 2).mean(axis=AXES, keepdims=True) + kw["eps"])
        x_hat, dx_hat = (x - mean) * inv_std, d * gamma

        def m(v):
            return v.mean(axis=AXES, keepdims=True)
        one = ("sums over one sample only: gamma[c] and beta[c] act on every sample of the batch, "
               "so sum over axes (0, 2, 3)")
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
                ("dgamma", (d * x_hat)[0].sum(axis=(1, 2)), "dgamma " + one),
                ("dbeta", d[0].sum(axis=(1, 2)), "dbeta " + one),
                ("dbeta", g["dgamma"], "dbeta is dgamma's formula: beta is added as is, so dbeta "
                 "sums dout alone (did you swap dgamma and dbeta?)")]
    per_channel = ("gamma[c] and beta[c] act on every (n, h, w) of channel c: sum over axes "
                   "(0, 2, 3), the batch and both spatial axes, to get shape (C,).")
    return Exercise("batchnorm_forward", "batchnorm_backward",
                    (("dx", "x"), ("dgamma", "gamma"), ("dbeta", "beta")),
                    cases, lambda a, kw: forward(a, kw)[0], exact, variants,
                    {"dgamma": per_channel, "dbeta": per_channel}, LAYERS + "10")
