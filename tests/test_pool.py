"""Max, average and global average pooling: forward against the loop oracles in
naive_layers.py, backward against numerical gradients (float64, random dout).

Kinks: max-pool is only differentiable where every window has a unique maximum, so its
inputs are a random PERMUTATION of distinct values 0.01 apart (gaps 1000x the finite
difference step h = 1e-5): no perturbation can change a window's winner. Average pooling
is linear, so any input works.
"""
import numpy as np
import pytest

import naive_layers as naive
from minvert.backend import gpu_available
from parity import assert_within_sum_bound
from minvert.errors import DTypeError, ShapeError
from minvert.gradcheck import layer_errors
from minvert.layers import (AvgPool2D, GlobalAvgPool, MaxPool2D, avgpool2d_forward,
                            global_avgpool_forward, maxpool2d_backward, maxpool2d_forward)

# (input shape, kernel, stride, pad): VGG 2x2/2, ResNet 3x3/2 pad 1, overlapping and
# non-tiling cases, asymmetric padding, odd sizes whose last row/column is dropped
GEOMETRIES = [
    ((2, 3, 8, 8), 2, 2, 0),
    ((1, 2, 7, 9), 2, 2, 0),
    ((2, 2, 9, 7), 3, 2, 1),
    ((1, 2, 8, 8), 3, 2, 1),
    ((1, 2, 6, 5), 3, 1, 1),
    ((2, 1, 6, 6), 2, 1, 0),
    ((1, 2, 7, 7), 3, 3, 0),
    ((1, 2, 5, 6), 2, 3, 0),
    ((1, 2, 6, 7), 3, 2, (0, 1, 1, 0)),
]


def distinct(shape, rng):
    """Distinct values 0.01 apart in random order: no ties, no winner change under +-h."""
    size = int(np.prod(shape))
    return (rng.permutation(size).reshape(shape) - size / 2) / 100


@pytest.mark.parametrize("shape,k,s,pad", GEOMETRIES)
def test_maxpool_forward_and_routing_match_naive(shape, k, s, pad):
    rng = np.random.default_rng(0)
    x = distinct(shape, rng)
    out, cache = maxpool2d_forward(x, k, s, pad)
    ref, where = naive.maxpool(x, k, s, pad)
    np.testing.assert_array_equal(out, ref)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(maxpool2d_backward(dout, cache),
                               naive.maxpool_backward(dout, x.shape, where), rtol=0, atol=1e-14)


@pytest.mark.parametrize("shape,k,s,pad", GEOMETRIES)
@pytest.mark.parametrize("include", [True, False])
def test_avgpool_forward_matches_naive(shape, k, s, pad, include):
    x = np.random.default_rng(1).standard_normal(shape)
    out, _ = avgpool2d_forward(x, k, s, pad, count_include_pad=include)
    np.testing.assert_allclose(out, naive.avgpool(x, k, s, pad, include), rtol=1e-13, atol=1e-14)


def test_global_avgpool_forward_matches_naive():
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5))
    out, _ = global_avgpool_forward(x)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out, naive.global_avgpool(x), rtol=1e-13)


@pytest.mark.parametrize("shape,k,s,pad", GEOMETRIES)
def test_maxpool_gradient(shape, k, s, pad):
    rng = np.random.default_rng(3)
    errors = layer_errors(MaxPool2D(k, s, pad), distinct(shape, rng), rng)
    assert errors["x"] < 1e-7, errors


@pytest.mark.parametrize("shape,k,s,pad", GEOMETRIES)
@pytest.mark.parametrize("include", [True, False])
def test_avgpool_gradient(shape, k, s, pad, include):
    rng = np.random.default_rng(4)
    errors = layer_errors(AvgPool2D(k, s, pad, include), rng.standard_normal(shape), rng)
    assert errors["x"] < 1e-7, errors


def test_global_avgpool_gradient():
    rng = np.random.default_rng(5)
    errors = layer_errors(GlobalAvgPool(), rng.standard_normal((2, 3, 4, 5)), rng)
    assert errors["x"] < 1e-7, errors


@pytest.mark.parametrize("k,s,pad", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_maxpool_tie_routes_gradient_to_exactly_one_element(k, s, pad):
    """A constant input ties every window; each window's gradient must land on ONE
    element, the first in row-major window order, so dx sums to dout's sum and the
    number of receiving elements is at most the number of windows."""
    x = np.full((1, 1, 6, 6), 0.5)
    out, cache = maxpool2d_forward(x, k, s, pad)
    dout = np.random.default_rng(6).uniform(1, 2, out.shape)  # positive: no cancellation
    dx = maxpool2d_backward(dout, cache)
    _, where = naive.maxpool(x, k, s, pad)  # the oracle also takes the first maximum
    np.testing.assert_allclose(dx, naive.maxpool_backward(dout, x.shape, where), atol=1e-14)
    assert np.isclose(dx.sum(), dout.sum())
    if s >= k:  # non-overlapping: exactly one element per window
        assert np.count_nonzero(dx) == out.size
    # the 2x2/2 window over rows 0-1, cols 0-1 sends everything to its top-left element
    x2 = np.array([[[[1.0, 1.0], [1.0, 1.0]]]])
    out2, cache2 = maxpool2d_forward(x2, 2)
    dx2 = maxpool2d_backward(np.array([[[[3.0]]]]), cache2)
    np.testing.assert_array_equal(dx2, [[[[3.0, 0.0], [0.0, 0.0]]]])


def test_maxpool_padding_never_wins():
    """All-negative input with pad 1: -inf padding keeps every output a real input value."""
    x = -1 - distinct((1, 1, 5, 5), np.random.default_rng(7)) ** 2
    out, _ = maxpool2d_forward(x, 3, 2, 1)
    assert np.all(out < -1 + 1e-12) and np.all(np.isin(out, x))


def test_float32_dtype_is_kept():
    x = np.random.default_rng(8).standard_normal((1, 2, 6, 6)).astype(np.float32)
    for layer in (MaxPool2D(3, 2, 1), AvgPool2D(2), GlobalAvgPool()):
        out = layer.forward(x)
        assert out.dtype == np.float32
        assert layer.backward(np.ones_like(out)).dtype == np.float32


@pytest.mark.parametrize("bad,error", [
    (np.zeros((2, 6, 6)), ShapeError),                    # wrong rank
    (np.zeros((1, 1, 6, 6), dtype=np.int64), DTypeError),  # integer input
    (np.zeros((1, 1, 2, 2)), ShapeError),                 # kernel 3 > padded 2x2
])
def test_bad_input_is_one_line_error(bad, error):
    with pytest.raises(error) as info:
        maxpool2d_forward(bad, 3)
    assert "\n" not in str(info.value)
    with pytest.raises(error):
        avgpool2d_forward(bad, 3)


def test_padding_as_large_as_kernel_is_refused():
    with pytest.raises(ShapeError):
        maxpool2d_forward(np.zeros((1, 1, 6, 6)), 2, 2, 2)


@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_matches_numpy():
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(9)
    x = distinct((2, 3, 9, 9), rng)
    for layer in (MaxPool2D(3, 2, 1), MaxPool2D(2), AvgPool2D(3, 2, 1), GlobalAvgPool()):
        # tolerance: the float64 bound for sums in another order (tests/parity.py), at most
        # 81 terms (a global 9x9 average; overlapping windows add at most 4 into one dx);
        # the sums of absolute values come from the same passes on |x| and |dout|
        abs_out = layer.forward(np.abs(x))
        out = layer.forward(x)
        dout = rng.standard_normal(out.shape)
        abs_dx = layer.backward(np.abs(dout))  # routed like dout: the cache is x's
        dx = layer.backward(dout)
        out_gpu = layer.forward(cp.asarray(x))
        dx_gpu = layer.backward(cp.asarray(dout))
        assert_within_sum_bound(out_gpu, out, abs_out, 81 + 1, "out")
        assert_within_sum_bound(dx_gpu, dx, abs_dx, 81 + 1, "dx")
