"""Nearest-neighbour upsampling: forward against the loop oracle, backward (block sums)
against numerical gradients (float64, random dout). Linear, so no kinks."""
import numpy as np
import pytest

import naive_layers as naive
from minvert.backend import gpu_available
from minvert.errors import DTypeError, ShapeError
from minvert.gradcheck import layer_errors, rel_error
from minvert.layers import UpsampleNearest, upsample_nearest_forward

CASES = [((2, 3, 4, 5), 2), ((1, 2, 3, 3), 3), ((2, 1, 2, 3), (2, 3)), ((1, 2, 3, 2), 1)]


@pytest.mark.parametrize("shape,factor", CASES)
def test_forward_and_gradient(shape, factor):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    fh, fw = (factor, factor) if isinstance(factor, int) else factor
    np.testing.assert_array_equal(upsample_nearest_forward(x, factor)[0],
                                  naive.upsample_nearest(x, fh, fw))
    errors = layer_errors(UpsampleNearest(factor), x, rng)
    assert errors["x"] < 1e-7, errors


def test_backward_is_block_sum():
    layer = UpsampleNearest(2)
    layer.forward(np.zeros((1, 1, 1, 2)))
    dout = np.array([[[[1.0, 2.0, 10.0, 20.0], [3.0, 4.0, 30.0, 40.0]]]])
    np.testing.assert_array_equal(layer.backward(dout), [[[[10.0, 100.0]]]])


def test_errors_and_dtype():
    with pytest.raises(ShapeError):
        UpsampleNearest(0)
    with pytest.raises(ShapeError):
        UpsampleNearest(2).forward(np.zeros((3, 4, 4)))
    with pytest.raises(DTypeError):
        UpsampleNearest(2).forward(np.zeros((1, 1, 2, 2), dtype=np.uint8))
    x = np.ones((1, 2, 3, 3), dtype=np.float32)
    layer = UpsampleNearest(2)
    out = layer.forward(x)
    assert out.dtype == np.float32 and layer.backward(out).dtype == np.float32


@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_matches_numpy():
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(1)
    x, dout = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 8, 10))
    layer = UpsampleNearest(2)
    out, dx = layer.forward(x), layer.backward(dout)
    assert rel_error(layer.forward(cp.asarray(x)), out) == 0  # copies only: exact
    # backward sums 4 = 2x2 terms per element: any order is within 2 gamma_4 ~ 1e-15 of
    # sum|dout|, and 4 random normals rarely cancel to below 1e-3 of that: 1e-12 has margin
    assert rel_error(layer.backward(cp.asarray(dout)), dx) < 1e-12
