"""Batch-norm 2-D in training and inference mode: forward against the loop oracle,
backward against numerical gradients (float64, random dout) for x, gamma and beta, and
the running-statistics update against its hand formula.

Batch-norm is smooth, so no kinks to dodge; gamma and beta are random (not 1 and 0) so a
backward that drops gamma or beta cannot pass, and the input has a non-zero mean and a
scale != 1 so that the mean and variance terms of dx both matter.
"""
import numpy as np
import pytest

import naive_layers as naive
from minvert.backend import gpu_available
from parity import assert_within_sum_bound
from minvert.errors import DTypeError, ShapeError
from minvert.gradcheck import layer_errors, rel_error
from minvert.layers import BatchNorm2D, batchnorm2d_backward, batchnorm2d_forward

SHAPES = [(4, 3, 3, 3), (2, 2, 4, 5), (8, 1, 1, 1)]


def make_bn(C, rng, training, eps=1e-5):
    bn = BatchNorm2D(C, eps=eps, dtype=np.float64)
    bn.params["gamma"][...] = rng.uniform(0.5, 2.0, C) * rng.choice([-1, 1], C)
    bn.params["beta"][...] = rng.standard_normal(C)
    bn.state["mean"][...] = rng.standard_normal(C)
    bn.state["var"][...] = rng.uniform(0.5, 2.0, C)
    bn.training = training
    return bn


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_forward_matches_naive(shape, training):
    rng = np.random.default_rng(0)
    bn = make_bn(shape[1], rng, training, eps=1e-3)
    x = 1.5 + 2 * rng.standard_normal(shape)
    p, s = bn.params, bn.state
    stats = (None, None) if training else (s["mean"].copy(), s["var"].copy())
    ref, _, _ = naive.batchnorm(x, p["gamma"], p["beta"], *stats, eps=1e-3)
    np.testing.assert_allclose(bn.forward(x), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_gradients(shape, training):
    """Seed 5: elements of dx that happen to be tiny make the element-wise relative error
    measure only rounding noise (~1e-10 absolute); this fixed draw has none."""
    rng = np.random.default_rng(5)
    bn = make_bn(shape[1], rng, training)
    errors = layer_errors(bn, 1.5 + 2 * rng.standard_normal(shape), rng)
    assert set(errors) == {"x", "gamma", "beta"}
    assert max(errors.values()) < 1e-7, errors


def test_running_statistics_update_by_hand():
    """running = (1 - m) running + m batch_stat, with the UNBIASED variance (M - 1)."""
    rng = np.random.default_rng(2)
    bn = make_bn(3, rng, training=True)
    bn.momentum = 0.25
    x = 3 + rng.standard_normal((4, 3, 2, 5))
    old_mean, old_var = bn.state["mean"].copy(), bn.state["var"].copy()
    bn.forward(x)
    M = 4 * 2 * 5
    for c in range(3):
        vals = x[:, c].ravel()
        mu = vals.sum() / M
        unbiased = ((vals - mu) ** 2).sum() / (M - 1)
        assert np.isclose(bn.state["mean"][c], 0.75 * old_mean[c] + 0.25 * mu, rtol=1e-14)
        assert np.isclose(bn.state["var"][c], 0.75 * old_var[c] + 0.25 * unbiased, rtol=1e-14)
    bn.training = False  # inference leaves the running statistics alone
    keep = bn.state["mean"].copy(), bn.state["var"].copy()
    bn.forward(x)
    np.testing.assert_array_equal(bn.state["mean"], keep[0])
    np.testing.assert_array_equal(bn.state["var"], keep[1])


def test_training_mode_normalises():
    rng = np.random.default_rng(3)
    bn = BatchNorm2D(2, dtype=np.float64)
    bn.training = True
    out = bn.forward(5 + 3 * rng.standard_normal((6, 2, 4, 4)))
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1, rtol=1e-5)


def test_frozen_layer_computes_no_parameter_gradients():
    rng = np.random.default_rng(4)
    bn = make_bn(3, rng, training=False)
    bn.trainable = False
    x = rng.standard_normal((2, 3, 4, 4))
    bn.forward(x)
    dx = bn.backward(rng.standard_normal(x.shape))
    assert dx.shape == x.shape and bn.grads == {}
    _, cache = batchnorm2d_forward(x, bn.params["gamma"], bn.params["beta"], bn.state["mean"],
                                   bn.state["var"], False)
    dx, dgamma, dbeta = batchnorm2d_backward(np.ones_like(x), cache, need_dparams=False)
    assert dgamma is None and dbeta is None


def test_float32_is_kept():
    bn = BatchNorm2D(3)
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 4)).astype(np.float32)
    for training in (True, False):
        bn.training = training
        out = bn.forward(x)
        assert out.dtype == np.float32 and bn.backward(out).dtype == np.float32
    assert bn.state["mean"].dtype == np.float32


@pytest.mark.parametrize("x,error", [
    (np.zeros((2, 4, 3, 3)), ShapeError),                   # 4 channels into a 3-channel layer
    (np.zeros((2, 3, 9)), ShapeError),                      # wrong rank
    (np.zeros((2, 3, 3, 3), dtype=np.int64), DTypeError),   # integer input
    (np.zeros((2, 3, 3, 3), dtype=np.float32), DTypeError),  # float32 into a float64 layer
])
def test_bad_input(x, error):
    bn = BatchNorm2D(3, dtype=np.float64)
    with pytest.raises(error) as info:
        bn.forward(x)
    assert "\n" not in str(info.value)


def test_one_value_per_channel_is_refused_in_training():
    bn = BatchNorm2D(3, dtype=np.float64)
    bn.training = True
    with pytest.raises(ShapeError):
        bn.forward(np.zeros((1, 3, 1, 1)))


@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_matches_numpy():
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(6)
    x, dout = rng.standard_normal((4, 3, 5, 5)), rng.standard_normal((4, 3, 5, 5))
    for training in (True, False):
        cpu = make_bn(3, np.random.default_rng(7), training)
        gpu = make_bn(3, np.random.default_rng(7), training)
        gpu.to(cp)
        out, dx = cpu.forward(x), cpu.backward(dout)
        out_gpu, dx_gpu = gpu.forward(cp.asarray(x)), gpu.backward(cp.asarray(dout))
        # Tolerances from the float64 bound for sums in another order (tests/parity.py): the
        # statistics and dgamma, dbeta sum N*H*W = 100 terms per channel. out and dx are O(1)
        # (unit-variance x-hat times gamma), so the sums' rounding (2 gamma_100 ~ 2e-14 of
        # the O(1) terms) moves them by ~1e-13 in absolute terms, not relative to values
        # that may be near 0: an absolute 1e-12 bounds that with margin.
        np.testing.assert_allclose(cp.asnumpy(out_gpu), out, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(cp.asnumpy(dx_gpu), dx, rtol=1e-12, atol=1e-12)
        mean, var = ((x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))) if training
                     else (cpu.state["mean"], cpu.state["var"]))
        x_hat = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + cpu.eps)
        abs_sums = {"gamma": np.abs(dout * x_hat).sum(axis=(0, 2, 3)),
                    "beta": np.abs(dout).sum(axis=(0, 2, 3))}
        for k in ("gamma", "beta"):  # + 4 terms' worth for the rounding in x_hat itself
            assert_within_sum_bound(gpu.grads[k], cpu.grads[k], abs_sums[k], 100 + 4, k)
        assert rel_error(gpu.state["var"], cpu.state["var"]) < 1e-12  # sums of squares: no cancellation
