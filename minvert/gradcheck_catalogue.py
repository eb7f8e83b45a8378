"""The catalogue of checks ``minvert gradcheck`` runs: every layer and loss of :mod:`minvert.layers`
on small float64 inputs that dodge the kinks, checked by :mod:`minvert.gradcheck`'s one pass rule,
and the planted bugs (``--plant KEY``) that show what a failure looks like."""
import numpy as np

from . import layers as L
from .backend import array_module
from .gradcheck import Row, compare, layer_gradients, print_table, vjp_gradients
from .layers import Layer, avgpool2d_backward, sigmoid
from .layers.conv import Conv2D
from .layers.upconv import UpsampleConv2D


def _cases(rng, xp=np):
    """(key, display name, case) with case a Layer plus its input, or a function case
    (forward, vjp, arrays). Inputs dodge the kinks: ReLU inputs are at least 0.1 from 0,
    max-pool inputs are a permutation (distinct values, gaps >> h), BCE probabilities in
    [0.05, 0.95], far from the clipping. xp: where the arrays live (numpy or cupy); the
    numbers are drawn on the host either way, so every device checks the same cases."""
    def normal(*shape):
        return xp.asarray(rng.standard_normal(shape))

    return _layer_cases(rng, xp, normal) + _loss_cases(rng, xp, normal)


def _layer_cases(rng, xp, normal):
    """The layers' cases, each (key, display name, (layer, x)), plus the residual add."""
    def away_from_zero(*shape):
        return xp.asarray(rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.0, shape))

    def distinct(*shape):
        return xp.asarray((rng.permutation(int(np.prod(shape))).reshape(shape) - np.prod(shape) / 2) / 100)

    def f64(layer, training=False):
        layer.astype(np.float64)
        layer.training = training
        for v in layer.params.values():  # non-trivial parameters (gamma = 1 would hide bugs)
            v[...] = rng.uniform(0.5, 1.5, v.shape) * rng.choice([-1.0, 1.0], v.shape)
        return layer.to(xp)

    cases = [("conv2d", "Conv2D 3x3/1 pad 1", (f64(Conv2D(3, 4, 3, 1, 1)), normal(2, 3, 5, 5))),
             ("conv2d_s2", "Conv2D 3x3/2 pad (0,1,0,1) no bias",
              (f64(Conv2D(2, 3, 3, 2, (0, 1, 0, 1), bias=False)), normal(2, 2, 6, 6)))]
    bn_eval = f64(L.BatchNorm2D(3))
    bn_eval.state["mean"][...] = normal(3)
    bn_eval.state["var"][...] = xp.asarray(rng.uniform(0.5, 2.0, 3))
    cases += [
        ("maxpool", "MaxPool2D 3x3/2 pad 1", (L.MaxPool2D(3, 2, 1), distinct(2, 2, 7, 7))),
        ("maxpool2", "MaxPool2D 2x2/2", (L.MaxPool2D(2), distinct(2, 2, 6, 6))),
        ("avgpool", "AvgPool2D 3x3/2 pad 1", (L.AvgPool2D(3, 2, 1), normal(2, 2, 7, 7))),
        ("avgpool_excl", "AvgPool2D 3x3/2 pad 1 excl. pad",
         (L.AvgPool2D(3, 2, 1, count_include_pad=False), normal(2, 2, 7, 7))),
        ("avgpool2", "AvgPool2D 2x2/2", (L.AvgPool2D(2), normal(2, 2, 6, 6))),
        ("global_avgpool", "GlobalAvgPool", (L.GlobalAvgPool(), normal(2, 3, 4, 4))),
        ("relu", "ReLU", (L.ReLU(), away_from_zero(2, 3, 4, 4))),
        ("leaky_relu", "LeakyReLU 0.2", (L.LeakyReLU(0.2), away_from_zero(2, 3, 4, 4))),
        ("sigmoid", "Sigmoid", (L.Sigmoid(), 2 * normal(2, 3, 4, 4))),
        ("dense", "Dense 12->5", (f64(L.Dense(12, 5)), normal(3, 12))),
        ("flatten", "Flatten", (L.Flatten(), normal(2, 3, 2, 2))),
        ("reshape", "Reshape (4, 3)", (L.Reshape((4, 3)), normal(2, 12))),
        ("zeropad", "ZeroPad2D (1,2,0,1)", (L.ZeroPad2D((1, 2, 0, 1)), normal(2, 2, 3, 3))),
        ("upsample", "UpsampleNearest 2", (L.UpsampleNearest(2), normal(2, 2, 3, 3))),
        ("upsample_conv", "UpsampleConv2D x2 3x3 pad 1 (fused)",  # 8x8: the fused path
         (f64(UpsampleConv2D(2, 3, 3, pad=1)), normal(1, 2, 8, 8))),
        ("batchnorm_train", "BatchNorm2D training",
         (f64(L.BatchNorm2D(3), training=True), 2 + 3 * normal(4, 3, 3, 3))),
        ("batchnorm_eval", "BatchNorm2D inference", (bn_eval, normal(4, 3, 3, 3))),
    ]
    a, b = normal(2, 3, 4, 4), normal(2, 3, 4, 4)
    cases.append(("add", "residual add", (lambda: L.add_forward(a, b),
                                          lambda d: dict(zip("ab", L.add_backward(d))),
                                          {"a": a, "b": b})))
    return cases


def _loss_cases(rng, xp, normal):
    """The losses' cases, each (key, display name, (forward, vjp, arrays))."""
    def loss_case(fn, pred, target, wrt):
        return (lambda: fn(pred, target)[0], lambda g: {wrt: g * fn(pred, target)[1]},
                {wrt: pred})
    soft = xp.asarray(rng.dirichlet(np.ones(5), 4))
    return [
        ("softmax_ce", "softmax cross-entropy (index)",
         loss_case(L.softmax_cross_entropy, normal(4, 5), xp.asarray(rng.integers(0, 5, 4)), "logits")),
        ("softmax_ce_soft", "softmax cross-entropy (soft)",
         loss_case(L.softmax_cross_entropy, normal(4, 5), soft, "logits")),
        ("bce", "binary cross-entropy (probabilities)",
         loss_case(L.binary_cross_entropy, xp.asarray(rng.uniform(0.05, 0.95, (2, 3, 4))),
                   xp.asarray(rng.uniform(0, 1, (2, 3, 4))), "p")),
        ("bce_logits", "BCE with logits",
         loss_case(L.bce_with_logits, 2 * normal(2, 3, 4), xp.asarray(rng.uniform(0, 1, (2, 3, 4))), "z")),
        ("mse", "MSE", loss_case(L.mse, normal(2, 3, 4), normal(2, 3, 4), "pred")),
    ]


def _plant(key, case):
    """Swap the backward of case ``key`` for a wrong one; return (case, what is wrong).

    A few are the classic mistakes; any other case gets every gradient 0.1 % too large,
    to show that even a small error is caught.
    """
    if isinstance(case[0], Layer):
        layer, orig = case[0], case[0].backward
        if key == "relu":
            layer.backward = lambda dout: dout.copy()
            return case, "backward passes dout through without the mask"
        if key.startswith("maxpool"):
            def spread(dout):
                g = layer.cache["geometry"]
                cache = {"geometry": g, "inv_divisor": 1.0 / np.prod(g["kernel"])}
                return avgpool2d_backward(dout, cache)
            layer.backward = spread
            return case, "backward spreads dout over the window instead of routing it to the max"
        if key == "sigmoid":
            def at_output(dout):
                s = sigmoid(layer.cache["out"])
                return dout * s * (1 - s)
            layer.backward = at_output
            return case, "backward uses sigmoid'(out) instead of sigmoid'(x) = out (1 - out)"
        if key == "batchnorm_train":
            def constant_stats(dout):
                orig(dout)  # correct dgamma, dbeta
                c = layer.cache
                return dout * (c["gamma"] * c["inv_std"])[:, None, None]
            layer.backward = constant_stats
            return case, "backward treats the batch mean and variance as constants"

        def scaled(dout):
            dx = orig(dout)
            for k in layer.grads:
                layer.grads[k] = layer.grads[k] * 1.001
            return dx * 1.001
        layer.backward = scaled
        return case, "every gradient 0.1 % too large"
    forward, vjp, arrays = case
    if key.startswith("softmax_ce"):
        n = len(next(iter(arrays.values())))
        return (forward, lambda d: {k: g * n for k, g in vjp(d).items()}, arrays), \
            "gradient forgets the 1/N of the batch mean"
    return (forward, lambda d: {k: g * 1.001 for k, g in vjp(d).items()}, arrays), \
        "every gradient 0.1 % too large"


def check_layers(out=print, plant=None, seed=0, device="cpu"):
    """Gradient-check every layer and loss w.r.t. every input and parameter.

    Small random float64 shapes drawn from ``seed``, random upstream gradients, h = 1e-5; a
    check passes when :func:`rel_error` is below TOLERANCE (any seed: the rule has no
    element-wise ratios that rounding noise can blow up).
    out: where the table goes (``print``, or None for silence).
    plant: a case key (e.g. "relu", "maxpool", "batchnorm_train", "softmax_ce", any other
    key from the table) whose backward is replaced by a wrong one, to see the check fail.
    device: "cpu", "gpu", "gpu:N" or None (the default device); float64 there.
    Returns the rows, :class:`Row` (layer, wrt, error, ok, where) tuples.
    """
    say = out or (lambda *a: None)
    rng = np.random.default_rng(seed)
    xp = array_module(device)
    if xp is not np:
        say("gradient checks on the GPU (CuPy), float64")
    cases = _cases(rng, xp)
    keys = [key for key, _, _ in cases]
    if plant is not None and plant not in keys:
        raise ValueError(f"plant={plant!r}: choose one of {', '.join(keys)}")
    rows = []
    for key, name, case in cases:
        if key == plant:
            case, what = _plant(key, case)
            say(f"planted bug in {name}: {what}")
        try:
            if isinstance(case[0], Layer):
                grads = layer_gradients(case[0], case[1], rng)
            else:
                grads = vjp_gradients(*case, rng)
        except Exception as e:  # a crashing backward is a failed check, reported, not hidden
            say(f"{name}: {type(e).__name__}: {e}")
            rows.append(Row(name, "-", float("nan"), False))
            continue
        rows += [compare(wrt, a, n)._replace(layer=name) for wrt, (a, n) in grads.items()]
    print_table(rows, say)
    return rows
