"""Dense, flatten, reshape, zero-padding and residual add: forward against loop oracles,
backward against numerical gradients (float64, random dout). All are linear in each
argument, so there are no kinks to avoid."""
import numpy as np
import pytest

import naive_layers as naive
from parity import assert_within_sum_bound
from minvert.backend import gpu_available
from minvert.errors import DTypeError, ShapeError
from minvert.gradcheck import layer_errors, rel_error, vjp_errors
from minvert.layers import (Dense, Flatten, Reshape, ZeroPad2D, add_backward, add_forward,
                            dense_backward, dense_forward, flatten_forward, zeropad2d_forward)


def dense64(n_in, n_out, bias, rng):
    layer = Dense(n_in, n_out, bias=bias, rng=rng, dtype=np.float64)
    if bias:
        layer.params["b"][...] = rng.standard_normal(n_out)  # zeros would hide a bias bug
    return layer


@pytest.mark.parametrize("N,n_in,n_out", [(1, 3, 2), (4, 7, 5), (3, 12, 1)])
@pytest.mark.parametrize("bias", [True, False])
def test_dense_forward_and_gradients(N, n_in, n_out, bias):
    rng = np.random.default_rng(0)
    layer = dense64(n_in, n_out, bias, rng)
    x = rng.standard_normal((N, n_in))
    ref = naive.dense(x, layer.params["w"], layer.params.get("b"))
    np.testing.assert_allclose(layer.forward(x), ref, rtol=1e-12, atol=1e-14)
    errors = layer_errors(layer, x, rng)
    assert set(errors) == {"x", "w"} | ({"b"} if bias else set())
    assert max(errors.values()) < 1e-7, errors


def test_dense_frozen_and_no_dx():
    rng = np.random.default_rng(1)
    layer = dense64(4, 3, True, rng)
    layer.trainable = False
    layer.forward(rng.standard_normal((2, 4)))
    assert layer.backward(rng.standard_normal((2, 3))) is not None and layer.grads == {}
    out, cache = dense_forward(rng.standard_normal((2, 4)), layer.params["w"])
    dx, dw, db = dense_backward(rng.standard_normal((2, 3)), cache, need_dx=False)
    assert dx is None and dw.shape == (3, 4) and db is None


def test_dense_init_scales():
    he = Dense(1000, 300, rng=0).params["w"]
    glorot = Dense(1000, 300, init="glorot", rng=0).params["w"]
    assert he.dtype == np.float32 and he.shape == (300, 1000)
    assert abs(he.std() - np.sqrt(2 / 1000)) < 0.002
    assert np.abs(glorot).max() <= np.sqrt(6 / 1300)


def test_dense_errors():
    w = np.zeros((3, 4))
    with pytest.raises(ShapeError):
        dense_forward(np.zeros((2, 5)), w)          # wrong feature count
    with pytest.raises(ShapeError):
        dense_forward(np.zeros((2, 4, 1, 1)), w)    # not flattened
    with pytest.raises(DTypeError):
        dense_forward(np.zeros((2, 4), dtype=np.float32), w)  # dtype mismatch
    with pytest.raises(DTypeError):
        dense_forward(np.zeros((2, 4), dtype=np.int32), w)


def test_flatten_is_channel_major():
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5))
    np.testing.assert_array_equal(flatten_forward(x)[0], naive.flatten(x))


@pytest.mark.parametrize("layer,shape", [(Flatten(), (2, 3, 2, 2)), (Reshape((4, 3)), (2, 12)),
                                         (Reshape((2, -1)), (2, 3, 2, 2))])
def test_reshape_gradients(layer, shape):
    rng = np.random.default_rng(3)
    errors = layer_errors(layer, rng.standard_normal(shape), rng)
    assert errors["x"] < 1e-7, errors


def test_reshape_errors():
    with pytest.raises(ShapeError):
        Reshape((5,)).forward(np.zeros((2, 12)))
    with pytest.raises(ShapeError):
        Flatten().forward(np.zeros(5))


@pytest.mark.parametrize("pad", [1, (0, 1, 0, 1), (2, 0, 1, 3), 0])
def test_zeropad_forward_and_gradient(pad):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 2, 3, 4))
    np.testing.assert_array_equal(zeropad2d_forward(x, pad)[0], naive.zeropad(x, pad))
    errors = layer_errors(ZeroPad2D(pad), x, rng)
    assert errors["x"] < 1e-7, errors


def test_zeropad_errors():
    with pytest.raises(ShapeError):
        ZeroPad2D((1, 2))
    with pytest.raises(ShapeError):
        ZeroPad2D(-1)
    with pytest.raises(ShapeError):
        ZeroPad2D(1).forward(np.zeros((3, 4, 4)))


def test_residual_add_sends_gradient_to_both_branches():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 3, 4, 4))
    np.testing.assert_array_equal(add_forward(a, b), a + b)
    errors = vjp_errors(lambda: add_forward(a, b), lambda d: dict(zip("ab", add_backward(d))),
                        {"a": a, "b": b}, rng)
    assert max(errors.values()) < 1e-7, errors
    with pytest.raises(ShapeError):
        add_forward(a, b[:, :2])


@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_matches_numpy():
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(6)
    layer, x = dense64(6, 4, True, rng), rng.standard_normal((3, 6))
    dout = rng.standard_normal((3, 4))
    out, dx = layer.forward(x), layer.backward(dout)
    dw = layer.grads["w"]
    layer.to(cp)
    out_gpu, dx_gpu = layer.forward(cp.asarray(x)), layer.backward(cp.asarray(dout))
    # tolerance: the float64 bound for sums in another order (tests/parity.py), with each
    # element's sum of absolute products from the same functions on |x|, |w|, |dout|
    w, b = (cp.asnumpy(layer.params[k]) for k in ("w", "b"))
    abs_out, abs_cache = dense_forward(np.abs(x), np.abs(w), np.abs(b))
    abs_dx, abs_dw, _ = dense_backward(np.abs(dout), abs_cache)
    assert_within_sum_bound(out_gpu, out, abs_out, 6 + 1, "out")
    assert_within_sum_bound(dx_gpu, dx, abs_dx, 4, "dx")
    assert_within_sum_bound(layer.grads["w"], dw, abs_dw, 3, "dw")
    x4 = rng.standard_normal((2, 3, 4, 4))
    for shape_layer in (Flatten(), ZeroPad2D((1, 0, 2, 1))):
        out = shape_layer.forward(x4)
        assert rel_error(shape_layer.forward(cp.asarray(x4)), out) == 0
