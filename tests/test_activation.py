"""ReLU, LeakyReLU, sigmoid: forward against element-by-element oracles, backward against
numerical gradients (float64, random dout).

Kinks: ReLU and LeakyReLU are not differentiable at 0, so their inputs have a random sign
and a magnitude drawn from [0.1, 1]: every value is 10^4 finite-difference steps
(h = 1e-5) away from the kink. Sigmoid is smooth; its inputs cover [-6, 6].
"""
import numpy as np
import pytest

import naive_layers as naive
from minvert.backend import gpu_available
from minvert.errors import DTypeError, MinvertError
from minvert.gradcheck import layer_errors, rel_error
from minvert.layers import (LeakyReLU, ReLU, Sigmoid, leaky_relu_forward, relu_backward,
                            relu_forward, sigmoid, sigmoid_forward)
from minvert.layers.fast import elementwise

SHAPES = [(7,), (3, 5), (2, 3, 4, 4)]


def away_from_zero(shape, rng):
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.0, shape)


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_naive(shape):
    rng = np.random.default_rng(0)
    x = 3 * rng.standard_normal(shape)
    np.testing.assert_array_equal(relu_forward(x)[0], naive.relu(x))
    for alpha in (0.0, 0.2, 0.3, 1.5):
        np.testing.assert_allclose(leaky_relu_forward(x, alpha)[0], naive.leaky_relu(x, alpha),
                                   rtol=1e-15)
    np.testing.assert_allclose(sigmoid_forward(x)[0], naive.sigmoid(x), rtol=1e-14)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("make", [ReLU, lambda: LeakyReLU(0.2), lambda: LeakyReLU(0.0),
                                  lambda: LeakyReLU(1.5)])
def test_piecewise_linear_gradients(shape, make):
    rng = np.random.default_rng(1)
    errors = layer_errors(make(), away_from_zero(shape, rng), rng)
    assert errors["x"] < 1e-7, errors


@pytest.mark.parametrize("shape", SHAPES)
def test_sigmoid_gradient(shape):
    rng = np.random.default_rng(2)
    errors = layer_errors(Sigmoid(), rng.uniform(-6, 6, shape), rng)
    assert errors["x"] < 1e-7, errors


def _blocks(rng, dtype):
    """(name, array, out or None) for every layout relu() accepts: contiguous, a band of
    rows with a contiguous last axis, a 3-D band like a chunk of a conv output, a 1-D
    strided view; in place and into another array."""
    big = rng.standard_normal((3, 9, 23)).astype(dtype)
    flat = rng.standard_normal(1001).astype(dtype)
    return [("contiguous", rng.standard_normal((5, 41)).astype(dtype), None),
            ("long 1-D", flat, None),
            ("into another array", flat, np.empty_like(flat)),
            ("rows of a block", big[1, 2:7, 3:20], None),
            ("3-D band", big[:, 2:7, 3:20], None),
            ("3-D band into a band", big[:, 2:7, 3:20], np.empty((3, 9, 23), dtype)[:, 1:6, :17]),
            ("1-D strided", flat[::3], None)]


@pytest.mark.parametrize("piece", [8, 64, elementwise.RELU_PIECE])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_helper_every_layout(piece, dtype, monkeypatch):
    """The fast engine's relu_inplace() runs max(a, 0) piece by piece against a buffer of
    zeros; small pieces make every loop (rows per piece, pieces of a long row) run on small
    arrays. Bit for bit the readable max(a, 0)."""
    monkeypatch.setattr(elementwise, "RELU_PIECE", piece)
    monkeypatch.setattr(elementwise, "_ZEROS", {})
    rng = np.random.default_rng(3)
    for name, a, out in _blocks(rng, dtype):
        want = naive.relu(a)
        before = a.copy()
        got = elementwise.relu_inplace(a.copy() if out is None else a, out)
        np.testing.assert_array_equal(got, want, err_msg=name)
        assert got.tobytes() == np.ascontiguousarray(relu_forward(before)[0]).tobytes(), name
        assert got.dtype == dtype
        if out is not None:
            assert got is out and np.array_equal(a, before), name  # the input untouched
    zeros = next(iter(elementwise._ZEROS.values()))
    assert not zeros.any()  # the shared zeros were never written


def test_relu_helper_keeps_nan_and_in_place_views():
    a = np.array([[-1.0, np.nan, 2.0], [-np.inf, np.inf, -0.0]], np.float32)
    got = elementwise.relu_inplace(a)
    assert got is a
    np.testing.assert_array_equal(a, [[0, np.nan, 2], [0, np.inf, 0]])
    big = np.full((4, 6), -1.0)
    elementwise.relu_inplace(big[1:3, 2:5])  # a view: only its elements change
    assert (big[1:3, 2:5] == 0).all() and (big[0] == -1).all() and (big[:, :2] == -1).all()


def test_fast_relu_forward_equals_readable(strict_cupy):
    rng = np.random.default_rng(8)
    for xp in (np, strict_cupy):
        for shape in SHAPES + [(2, 70000)]:
            x = xp.asarray(rng.standard_normal(shape).astype(np.float32))
            out, cache = relu_forward(x)
            out_f, cache_f = elementwise.relu_forward(x)
            assert type(out_f) is type(out) and set(cache_f) == set(cache) | {"fast"}
            assert np.array_equal(strict_cupy.asnumpy(out_f) if xp is not np else out_f,
                                  strict_cupy.asnumpy(out) if xp is not np else out)
            dout = xp.asarray(rng.standard_normal(shape).astype(np.float32))
            dx, dx_f = relu_backward(dout, cache), elementwise.relu_backward(dout, cache_f)
            assert type(dx_f) is type(dx) and dx_f.dtype == dx.dtype
            assert np.array_equal(strict_cupy.asnumpy(dx_f) if xp is not np else dx_f,
                                  strict_cupy.asnumpy(dx) if xp is not np else dx)


@pytest.mark.parametrize("engine", ["fast_engine", "readable_engine"])
def test_relu_layer_on_either_engine(engine, request):
    request.getfixturevalue(engine)
    x = away_from_zero((2, 3, 4, 4), np.random.default_rng(9))
    layer = ReLU()
    np.testing.assert_array_equal(layer.forward(x), np.maximum(x, 0))
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), x > 0)


def test_relu_gradient_at_zero_is_zero():
    """The convention at the kink (documented): x = 0 passes no gradient."""
    out, cache = relu_forward(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(relu_backward(np.array([5.0, 5.0, 5.0]), cache), [0, 0, 5])


def test_sigmoid_is_stable_at_extremes():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        s = sigmoid(x)
        s32 = sigmoid(x.astype(np.float32))
    np.testing.assert_allclose(s, [0.0, np.exp(-50.0), 0.5, 1.0, 1.0], rtol=1e-15, atol=0)
    assert s32.dtype == np.float32 and np.all(np.isfinite(s32))


def test_backward_does_not_touch_dout():
    """A residual add hands the same dout to two branches, so no backward may write into it."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5))
    for layer in (ReLU(), LeakyReLU(0.2), Sigmoid()):
        dout = rng.standard_normal((4, 5))
        keep = dout.copy()
        layer.forward(x)
        layer.backward(dout)
        np.testing.assert_array_equal(dout, keep)


def test_dtype_and_errors():
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    for layer in (ReLU(), LeakyReLU(), Sigmoid()):
        assert layer.forward(x).dtype == np.float32
        assert layer.backward(np.ones_like(x)).dtype == np.float32
        with pytest.raises(DTypeError):
            layer.forward(np.arange(4))
    with pytest.raises(ValueError):
        leaky_relu_forward(x, -0.1)


def test_backward_before_forward_is_one_line_error():
    layer = ReLU()
    with pytest.raises(MinvertError, match="before forward"):
        layer.backward(np.ones(3))
    layer.forward(np.ones(3))
    layer.release()
    with pytest.raises(MinvertError):
        layer.backward(np.ones(3))


@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_matches_numpy():
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(4)
    x, dout = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((2, 3, 5, 5))
    for layer in (ReLU(), LeakyReLU(0.2), Sigmoid()):
        out, dx = layer.forward(x), layer.backward(dout)
        out_gpu, dx_gpu = layer.forward(cp.asarray(x)), layer.backward(cp.asarray(dout))
        # elementwise, no sums: ReLU is exact and CUDA's float64 exp is within 2 ulp, so the
        # few operations of a sigmoid stay within ~1e-15 relative; 1e-12 is a wide margin
        assert rel_error(out_gpu, out) < 1e-12 and rel_error(dx_gpu, dx) < 1e-12
