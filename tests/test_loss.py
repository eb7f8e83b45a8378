"""Losses: values against loop oracles (math.log/exp per element), gradients against
numerical gradients of the scalar loss times a random scalar upstream gradient g
(never 1), float64.

Kinks: binary_cross_entropy clips p to [1e-7, 1 - 1e-7]; its gradient checks use p in
[0.05, 0.95], far from the clip, and a separate test checks the zero gradient where
clipped. Soft targets are drawn away from the softmax output so that no gradient element
is near zero (where a relative error measures only rounding noise).
"""
import numpy as np
import pytest

import naive_layers as naive
from minvert.backend import gpu_available
from minvert.errors import DTypeError, ShapeError
from minvert.gradcheck import rel_error, vjp_errors
from minvert.layers import (bce_with_logits, binary_cross_entropy, mse, softmax,
                            softmax_cross_entropy)


def grad_error(fn, pred, target, seed):
    rng = np.random.default_rng(seed)
    errors = vjp_errors(lambda: fn(pred, target)[0], lambda g: {"pred": g * fn(pred, target)[1]},
                        {"pred": pred}, rng)
    return errors["pred"]


def test_softmax_rows_sum_to_one_and_are_stable():
    x = np.array([[1000.0, 1000.0, -1000.0], [0.0, np.log(3.0), -np.inf]])
    p = softmax(x)
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0], [0.25, 0.75, 0.0]], atol=1e-15)


@pytest.mark.parametrize("N,K", [(1, 3), (4, 5), (6, 10)])
def test_softmax_cross_entropy_index_targets(N, K):
    rng = np.random.default_rng(N)
    logits, target = rng.standard_normal((N, K)), rng.integers(0, K, N)
    loss, dlogits = softmax_cross_entropy(logits, target)
    assert np.isclose(float(loss), naive.softmax_cross_entropy(logits, target), rtol=1e-13)
    onehot = np.eye(K)[target]
    np.testing.assert_allclose(dlogits, (softmax(logits) - onehot) / N, rtol=1e-13)
    assert grad_error(softmax_cross_entropy, logits, target, N) < 1e-7


@pytest.mark.parametrize("N,K", [(2, 3), (4, 6)])
def test_softmax_cross_entropy_soft_targets(N, K):
    rng = np.random.default_rng(10 + N)
    logits = rng.standard_normal((N, K))
    p = softmax(logits)
    target = np.abs(p + rng.choice([-1, 1], p.shape) * rng.uniform(0.05, 0.1, p.shape))
    target /= target.sum(axis=1, keepdims=True)
    loss, _ = softmax_cross_entropy(logits, target)
    assert np.isclose(float(loss), naive.softmax_cross_entropy(logits, target), rtol=1e-13)
    assert grad_error(softmax_cross_entropy, logits, target, N) < 1e-7
    # a one-hot soft target gives the same loss as the class index
    idx = rng.integers(0, K, N)
    assert np.isclose(float(softmax_cross_entropy(logits, np.eye(K)[idx])[0]),
                      float(softmax_cross_entropy(logits, idx)[0]), rtol=1e-14)


def test_softmax_cross_entropy_large_logits_are_finite():
    loss, d = softmax_cross_entropy(np.array([[1e4, -1e4, 0.0]], dtype=np.float32), np.array([1]))
    assert np.isfinite(float(loss)) and np.isclose(float(loss), 2e4) and np.all(np.isfinite(d))


def probs_and_targets(shape, rng):
    p = rng.uniform(0.05, 0.95, shape)
    t = np.clip(p + rng.choice([-1, 1], shape) * rng.uniform(0.05, 0.3, shape), 0, 1)
    return p, t


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4)])
def test_binary_cross_entropy(shape):
    rng = np.random.default_rng(20)
    p, t = probs_and_targets(shape, rng)
    loss, _ = binary_cross_entropy(p, t)
    assert np.isclose(float(loss), naive.binary_cross_entropy(p, t), rtol=1e-13)
    assert grad_error(binary_cross_entropy, p, t, 21) < 1e-7


def test_binary_cross_entropy_clipping_like_keras():
    """p outside [1e-7, 1 - 1e-7] is clipped: the loss is finite, the gradient there 0."""
    p = np.array([0.0, 1e-9, 0.5, 1.0])
    t = np.array([1.0, 1.0, 0.0, 0.0])
    loss, dp = binary_cross_entropy(p, t)
    expected = -(2 * np.log(1e-7) + np.log(0.5) + np.log(1e-7)) / 4
    assert np.isclose(float(loss), expected, rtol=1e-9)
    assert dp[0] == 0 and dp[1] == 0 and dp[3] == 0 and dp[2] == pytest.approx(2 / 4)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4)])
def test_bce_with_logits(shape):
    rng = np.random.default_rng(30)
    p, t = probs_and_targets(shape, rng)
    z = np.log(p / (1 - p))
    loss, dz = bce_with_logits(z, t)
    assert np.isclose(float(loss), naive.bce_with_logits(z, t), rtol=1e-12)
    assert np.isclose(float(loss), float(binary_cross_entropy(p, t)[0]), rtol=1e-12)
    assert grad_error(bce_with_logits, z, t, 31) < 1e-7
    big, _ = bce_with_logits(np.array([800.0, -800.0]), np.array([0.0, 1.0]))
    assert np.isclose(float(big), 800.0)  # no overflow, no log(0)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4)])
def test_mse(shape):
    rng = np.random.default_rng(40)
    pred, target = rng.standard_normal(shape), rng.standard_normal(shape)
    loss, _ = mse(pred, target)
    assert np.isclose(float(loss), naive.mse(pred, target), rtol=1e-13)
    assert grad_error(mse, pred, target, 41) < 1e-7


def test_bad_input():
    z = np.zeros((2, 3))
    for call in (lambda: softmax_cross_entropy(z, np.array([0, 3])),     # class out of range
                 lambda: softmax_cross_entropy(z, np.array([0, 1, 2])),  # wrong batch size
                 lambda: softmax_cross_entropy(np.zeros(3), np.array([0])),
                 lambda: binary_cross_entropy(z, np.zeros((3, 2))),
                 lambda: mse(z, np.zeros(6))):
        with pytest.raises(ShapeError):
            call()
    with pytest.raises(DTypeError):
        mse(np.zeros(3, dtype=np.int64), np.zeros(3))


@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_matches_numpy():
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(50)
    logits, idx = rng.standard_normal((4, 5)), rng.integers(0, 5, 4)
    p, t = probs_and_targets((3, 4), rng)
    for fn, a, b in ((softmax_cross_entropy, logits, idx), (binary_cross_entropy, p, t),
                     (bce_with_logits, p, t), (mse, p, t)):
        loss, grad = fn(a, b)
        loss_gpu, grad_gpu = fn(cp.asarray(a), cp.asarray(b))
        # at most 12 terms per sum (softmax over 5 classes, means over 12 elements) of O(1)
        # values: any order is within 2 gamma_12 * 12 ~ 3e-14 of the other; elementwise log/exp
        # are within 2 ulp on CUDA. 1e-12 keeps a margin of ~30
        assert abs(float(loss_gpu) - float(loss)) < 1e-12 and rel_error(grad_gpu, grad) < 1e-12
