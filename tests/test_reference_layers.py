"""The readable reference layers (minvert/layers/reference/): each readable layer computes what
its reference does (forward and every gradient, float64, shapes with stride, padding,
overlap and sizes that do not divide), and each reference's backward passes the gradient
check on its own."""
import numpy as np
import pytest

from minvert import layers as readable
from minvert.backend import gpu_available
from minvert.gradcheck import TOLERANCE, rel_error, vjp_errors
from minvert.layers import reference as _  # noqa: F401
from minvert.layers.reference import activation, conv, dense, loss, norm, pool, upsample

RNG = np.random.default_rng(7)


def distinct(*shape):
    return (RNG.permutation(int(np.prod(shape))).reshape(shape) - np.prod(shape) / 2) / 100


def same(a, b):
    assert (a is None) == (b is None)
    if a is not None:
        assert rel_error(a, b) < 1e-12


def check_grads(forward, backward, arrays):
    """Gradient check of a reference: forward(*arrays) -> (out, cache), backward -> grads."""
    names = list(arrays)

    def vjp(dout):
        grads = backward(dout, forward(*arrays.values())[1])
        grads = grads if isinstance(grads, tuple) else (grads,)
        return {k: g for k, g in zip(names, grads)}
    errors = vjp_errors(lambda: forward(*arrays.values())[0], vjp, arrays, RNG)
    assert max(errors.values()) < TOLERANCE, errors


CONV = [((2, 3, 7, 6), (4, 3, 3, 3), 1, 1), ((3, 2, 8, 7), (3, 2, 3, 2), 2, (0, 1, 1, 0)),
        ((2, 2, 5, 6), (2, 2, 1, 1), (2, 3), 0)]


@pytest.mark.parametrize("xs, ws, stride, pad", CONV)
def test_conv_readable_equals_reference_and_reference_gradients(xs, ws, stride, pad):
    x, w, b = RNG.standard_normal(xs), RNG.standard_normal(ws), RNG.standard_normal(ws[0])
    out_f, cache_f = readable.conv2d_forward(x, w, b, stride, pad)
    out_r, cache_r = conv.conv2d_forward(x, w, b, stride, pad)
    same(out_f, out_r)
    dout = RNG.standard_normal(out_f.shape)
    for g_f, g_r in zip(readable.conv2d_backward(dout, cache_f), conv.conv2d_backward(dout, cache_r)):
        same(g_f, g_r)
    check_grads(lambda x, w, b: conv.conv2d_forward(x, w, b, stride, pad), conv.conv2d_backward,
                {"x": x, "w": w, "b": b})


@pytest.mark.parametrize("kernel, stride, pad, shape", [
    (2, None, 0, (2, 3, 6, 5)), (3, 2, 1, (2, 2, 7, 8)), (2, 3, 0, (3, 2, 8, 7)),
    ((3, 2), (1, 2), (1, 0, 0, 1), (2, 2, 5, 6))])
def test_pooling_readable_equals_reference(kernel, stride, pad, shape):
    x = distinct(*shape)
    for name, extra in (("maxpool2d", {}), ("avgpool2d", {}),
                        ("avgpool2d", {"count_include_pad": False})):
        f_fwd, f_bwd = getattr(readable, name + "_forward"), getattr(readable, name + "_backward")
        r_fwd, r_bwd = getattr(pool, name + "_forward"), getattr(pool, name + "_backward")
        out_f, cache_f = f_fwd(x, kernel, stride, pad, **extra)
        out_r, cache_r = r_fwd(x, kernel, stride, pad, **extra)
        same(out_f, out_r)
        dout = RNG.standard_normal(out_f.shape)
        same(f_bwd(dout, cache_f), r_bwd(dout, cache_r))
        check_grads(lambda x: r_fwd(x, kernel, stride, pad, **extra), r_bwd, {"x": x})


def test_activations_dense_upsample_readable_equal_reference():
    x = RNG.choice([-1.0, 1.0], (2, 3, 4, 5)) * RNG.uniform(0.1, 2, (2, 3, 4, 5))
    dout = RNG.standard_normal(x.shape)
    pairs = [(readable.relu_forward, readable.relu_backward, activation.relu_forward, activation.relu_backward),
             (readable.sigmoid_forward, readable.sigmoid_backward, activation.sigmoid_forward,
              activation.sigmoid_backward),
             (lambda x: readable.leaky_relu_forward(x, 0.3), readable.leaky_relu_backward,
              lambda x: activation.leaky_relu_forward(x, 0.3), activation.leaky_relu_backward)]
    for f_fwd, f_bwd, r_fwd, r_bwd in pairs:
        (out_f, cache_f), (out_r, cache_r) = f_fwd(x), r_fwd(x)
        same(out_f, out_r)
        same(f_bwd(dout, cache_f), r_bwd(dout, cache_r))
        check_grads(r_fwd, r_bwd, {"x": x.copy()})
    for factor in (2, (3, 2)):
        (out_f, cache_f) = readable.upsample_nearest_forward(x, factor)
        (out_r, cache_r) = upsample.upsample_nearest_forward(x, factor)
        same(out_f, out_r)
        d = RNG.standard_normal(out_f.shape)
        same(readable.upsample_nearest_backward(d, cache_f), upsample.upsample_nearest_backward(d, cache_r))
        check_grads(lambda x: upsample.upsample_nearest_forward(x, factor),
                    upsample.upsample_nearest_backward, {"x": x.copy()})
    xd, w, b = RNG.standard_normal((4, 7)), RNG.standard_normal((3, 7)), RNG.standard_normal(3)
    (out_f, cache_f), (out_r, cache_r) = readable.dense_forward(xd, w, b), dense.dense_forward(xd, w, b)
    same(out_f, out_r)
    d = RNG.standard_normal(out_f.shape)
    for g_f, g_r in zip(readable.dense_backward(d, cache_f), dense.dense_backward(d, cache_r)):
        same(g_f, g_r)
    check_grads(dense.dense_forward, dense.dense_backward, {"x": xd, "w": w, "b": b})


def test_batchnorm_readable_equals_reference():
    x = 1 + 2 * RNG.standard_normal((3, 4, 2, 5))
    gamma, beta = RNG.uniform(0.5, 1.5, 4), RNG.standard_normal(4)
    out_f, cache_f = readable.batchnorm2d_forward(x, gamma, beta, np.zeros(4), np.ones(4), True)
    out_r, cache_r = norm.batchnorm2d_forward(x, gamma, beta)
    same(out_f, out_r)
    dout = RNG.standard_normal(x.shape)
    for g_f, g_r in zip(readable.batchnorm2d_backward(dout, cache_f), norm.batchnorm2d_backward(dout, cache_r)):
        assert rel_error(g_f, g_r) < 1e-10  # two algebraically equal formulas: rounding differs
    check_grads(norm.batchnorm2d_forward, norm.batchnorm2d_backward,
                {"x": x, "gamma": gamma, "beta": beta})


def test_losses_readable_equal_reference():
    logits, y = RNG.standard_normal((5, 4)), RNG.integers(0, 4, 5)
    p, t = RNG.uniform(0.05, 0.95, (2, 3, 4)), RNG.uniform(0, 1, (2, 3, 4))
    z = 2 * RNG.standard_normal((2, 3, 4))
    for f, r, args in [(readable.softmax_cross_entropy, loss.softmax_cross_entropy, (logits, y)),
                       (readable.binary_cross_entropy, loss.binary_cross_entropy, (p, t)),
                       (readable.bce_with_logits, loss.bce_with_logits, (z, t)),
                       (readable.mse, loss.mse, (z, t))]:
        (l_f, g_f), (l_r, g_r) = f(*args), r(*args)
        assert abs(float(l_f) - float(l_r)) < 1e-12 * max(1, abs(float(l_r)))
        assert rel_error(g_f, g_r) < 1e-12
        first = args[0].copy()
        errors = vjp_errors(lambda: r(first, args[1])[0], lambda d: {"a": d * r(first, args[1])[1]},
                            {"a": first}, RNG)
        assert errors["a"] < TOLERANCE, (r.__name__, errors)


def test_reference_softmax_cross_entropy_at_extreme_logits():
    """A logit 1000 below its row's max has p = exp(-1000) = 0 in float64: the loss must come
    from log p = z - log(sum exp(z)), not log(0) (which made 0 * log(0) = NaN)."""
    logits = np.array([[0.0, -1000.0, 5.0], [800.0, -800.0, 0.0], [1e4, 1e4, -1e4]])
    y = np.array([1, 1, 0])
    # -log p[y] per row, by hand: exp(-805) and exp(-800) vanish next to 1 in float64
    rows = [1005.0 + np.log1p(np.exp(-5.0)), 1600.0, np.log(2.0)]
    for f in (loss.softmax_cross_entropy, readable.softmax_cross_entropy):
        value, dlogits = f(logits, y)
        assert np.isfinite(float(value)) and np.all(np.isfinite(dlogits)), f.__module__
        assert abs(float(value) - np.mean(rows)) < 1e-12 * np.mean(rows), f.__module__
        assert rel_error(dlogits, np.array([[np.exp(-5) / (1 + np.exp(-5)), -1, 1 / (1 + np.exp(-5))],
                                            [1, -1, 0], [-0.5, 0.5, 0]]) / 3) < 1e-12


def test_every_readable_layer_names_its_reference():
    from pathlib import Path
    root = Path(readable.__file__).parent
    for family in ("conv", "pool", "activation", "dense", "norm", "upsample", "loss"):
        text = (root / f"{family}.py").read_text()
        assert f"Reference: minvert/layers/reference/{family}.py" in text, family
        assert (root / "reference" / f"{family}.py").is_file()
        assert len((root / "reference" / f"{family}.py").read_text().splitlines()) < 300


@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")
def test_references_run_on_cupy_arrays():
    cp = pytest.importorskip("cupy")
    x = distinct(2, 3, 7, 6)
    w, b = RNG.standard_normal((4, 3, 3, 2)), RNG.standard_normal(4)
    cases = [(lambda x, w, b: conv.conv2d_forward(x, w, b, 2, 1), conv.conv2d_backward, (x, w, b)),
             (lambda x: pool.maxpool2d_forward(x, 3, 2, 1), pool.maxpool2d_backward, (x,)),
             (lambda x: pool.avgpool2d_forward(x, 3, 2, 1, False), pool.avgpool2d_backward, (x,)),
             (activation.relu_forward, activation.relu_backward, (x,)),
             (activation.sigmoid_forward, activation.sigmoid_backward, (x,)),
             (lambda x: upsample.upsample_nearest_forward(x, 2), upsample.upsample_nearest_backward, (x,)),
             (norm.batchnorm2d_forward, norm.batchnorm2d_backward, (x, RNG.uniform(0.5, 1, 3),
                                                                     RNG.standard_normal(3))),
             (dense.dense_forward, dense.dense_backward, (x.reshape(2, -1), RNG.standard_normal((5, 126)),
                                                          RNG.standard_normal(5)))]
    for forward, backward, args in cases:
        out, cache = forward(*args)
        out_gpu, cache_gpu = forward(*[cp.asarray(a) for a in args])
        assert isinstance(out_gpu, cp.ndarray) and rel_error(out_gpu, out) < 1e-12
        dout = RNG.standard_normal(out.shape)
        grads, grads_gpu = backward(dout, cache), backward(cp.asarray(dout), cache_gpu)
        for g, g_gpu in zip(grads if isinstance(grads, tuple) else (grads,),
                            grads_gpu if isinstance(grads_gpu, tuple) else (grads_gpu,)):
            assert isinstance(g_gpu, cp.ndarray) and rel_error(g_gpu, g) < 1e-12
    logits, y = RNG.standard_normal((4, 5)), RNG.integers(0, 5, 4)
    loss_gpu, dlogits_gpu = loss.softmax_cross_entropy(cp.asarray(logits), cp.asarray(y))
    loss_cpu, dlogits_cpu = loss.softmax_cross_entropy(logits, y)
    assert abs(float(loss_gpu) - float(loss_cpu)) < 1e-12 and rel_error(dlogits_gpu, dlogits_cpu) < 1e-12
