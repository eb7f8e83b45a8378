"""Convolution (the readable layers/conv.py): forward against the loop oracle in
naive_conv.py, backward against numerical gradients (float64, random dout), plus frozen
layers, settings, errors and TensorFlow 'same' padding. The fast engine's convolution is
tested equal to this one in test_fast_conv.py.

The layer is linear in each of x, w and b: no kinks to dodge, and a central difference
has no truncation error at any step, only rounding error ~ eps * |sum(out * dout)| / h.
So the checks use h = 1e-3 rather than 1e-5, which keeps that rounding 100x below the
1e-7 tolerance even for gradient entries near zero.
"""
import math

import numpy as np
import pytest

from minvert.backend import gpu_available
from minvert.errors import DTypeError, MinvertError, ShapeError
from minvert.gradcheck import numerical_vjp, rel_error
from minvert.layers import conv
from minvert.layers.conv import Conv2D, conv2d_backward, conv2d_forward, same_padding
from minvert.layers.fast import conv as fast_conv
from naive_conv import conv2d_naive
from parity import assert_within_sum_bound

# (x shape, F, kernel, stride, pad): kernels 1, 2, 3, 7; strides 1, 2 and (1, 2);
# symmetric, asymmetric (TF 'same' for k=2, ResNet-style) and larger-than-needed padding
GEOMETRIES = [
    ((2, 3, 7, 6), 4, 3, 1, 1),
    ((1, 2, 8, 9), 3, 3, 2, 1),
    ((2, 3, 6, 6), 2, 1, 1, 0),
    ((1, 4, 7, 7), 3, 1, 2, 0),
    ((1, 3, 4, 6), 2, 1, (1, 2), 0),  # 1x1 with a column stride: no longer x itself
    ((1, 2, 4, 4), 3, 1, 1, 1),  # 1x1 padded: its transposed convolution crops dout
    ((2, 2, 6, 7), 3, 2, 1, (0, 1, 0, 1)),
    ((1, 2, 7, 8), 2, 2, 2, (0, 1, 0, 1)),
    ((1, 3, 12, 11), 2, 7, 2, 3),
    ((1, 8, 6, 7), 3, 3, 2, 1),  # more channels than output columns: channels-last col2im
    ((2, 6, 5, 5), 4, 1, 2, 0),  # the same for a 1x1 stride-2 (ResNet downsample)
    ((1, 2, 9, 9), 2, 7, 1, 3),
    ((1, 2, 5, 6), 3, 3, 1, (2, 0, 1, 3)),
    ((2, 2, 6, 5), 2, 3, (1, 2), 1),
    ((1, 1, 4, 4), 2, 3, 1, 4),  # pad > KH - 1: the transposed convolution crops dout
    ((2, 3, 3, 2), 16, 3, 1, 1),  # many filters, few pixels: stride-1 dx by col2im
]


def case(shape, F, k, bias, rng, dtype=np.float64):
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((F, shape[1], k, k)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype) if bias else None
    return x, w, b


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape,F,k,s,pad", GEOMETRIES)
def test_forward_matches_naive(shape, F, k, s, pad, bias):
    x, w, b = case(shape, F, k, bias, np.random.default_rng(0))
    out, _ = conv2d_forward(x, w, b, s, pad)
    np.testing.assert_allclose(out, conv2d_naive(x, w, b, s, pad), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,F,k,s,pad", GEOMETRIES)
def test_gradients_match_numerical(shape, F, k, s, pad):
    rng = np.random.default_rng(1)
    x, w, b = case(shape, F, k, True, rng)
    out, cache = conv2d_forward(x, w, b, s, pad)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv2d_backward(dout, cache)

    def f():
        return conv2d_forward(x, w, b, s, pad)[0]
    assert rel_error(dx, numerical_vjp(f, x, dout, h=1e-3)) < 1e-7
    assert rel_error(dw, numerical_vjp(f, w, dout, h=1e-3)) < 1e-7
    assert rel_error(db, numerical_vjp(f, b, dout, h=1e-3)) < 1e-7


@pytest.mark.parametrize("forward,backward,module,dw_part", [
    (conv2d_forward, conv2d_backward, conv, "im2col"),
    (fast_conv.conv2d_forward, fast_conv.conv2d_backward, fast_conv, "_dw")])
def test_need_flags_skip_work(monkeypatch, forward, backward, module, dw_part):
    rng = np.random.default_rng(4)
    x, w, b = case((1, 2, 5, 5), 3, 3, True, rng)
    out, cache = forward(x, w, b, 1, 1)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = backward(dout, cache, need_dx=False)
    assert dx is None and dw is not None and db is not None
    assert backward(dout, forward(x, w, None, 1, 1)[1])[2] is None  # no bias
    monkeypatch.setattr(module, dw_part, lambda *a: pytest.fail("dw computed although not needed"))
    dx, dw, db = backward(dout, cache, need_dw=False)
    assert dw is None and db is None and dx.shape == x.shape


@pytest.mark.parametrize("engine", ["fast_engine", "readable_engine"])
def test_frozen_layer_computes_no_weight_gradients(monkeypatch, engine, request):
    request.getfixturevalue(engine)
    layer = Conv2D(2, 3, 3, pad=1, rng=0)
    layer.trainable = False
    x = np.random.default_rng(5).standard_normal((1, 2, 5, 5)).astype(np.float32)
    out = layer.forward(x)
    monkeypatch.setattr(conv, "im2col", lambda *a: pytest.fail("dw computed for a frozen layer"))
    monkeypatch.setattr(fast_conv, "_dw", lambda *a: pytest.fail("dw computed for a frozen layer"))
    dx = layer.backward(np.ones_like(out))
    assert dx.shape == x.shape and layer.grads == {}
    monkeypatch.undo()  # the next forward builds cols again
    layer.need_dx = False
    layer.forward(x)
    assert layer.backward(np.ones_like(out)) is None


@pytest.mark.parametrize("engine", ["fast_engine", "readable_engine"])
def test_layer_float32_init_and_grads(engine, request):
    request.getfixturevalue(engine)
    rng = np.random.default_rng(6)
    he, glorot = Conv2D(64, 32, 3, rng=rng), Conv2D(64, 32, 3, init="glorot", rng=rng)
    assert he.params["w"].shape == (32, 64, 3, 3) and he.params["w"].dtype == np.float32
    assert abs(he.params["w"].std() / math.sqrt(2 / (64 * 9)) - 1) < 0.05
    limit = math.sqrt(6 / (64 * 9 + 32 * 9))
    assert glorot.params["w"].max() <= limit and glorot.params["w"].min() >= -limit
    assert glorot.params["w"].max() > 0.95 * limit and not he.params["b"].any()
    x = rng.standard_normal((2, 64, 6, 6)).astype(np.float32)
    out = he.forward(x)
    dx = he.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == he.grads["w"].dtype == he.grads["b"].dtype == np.float32
    ref = conv2d_naive(x.astype(np.float64), he.params["w"].astype(np.float64))
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    assert "b" not in Conv2D(2, 3, 1, bias=False).params
    with pytest.raises(ValueError, match="init"):
        Conv2D(2, 3, 3, init="lecun")


@pytest.mark.parametrize("H", [5, 6, 7, 8, 224])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("s", [1, 2, 3])
def test_same_padding_is_tensorflow_rule(H, k, s):
    total = max((math.ceil(H / s) - 1) * s + k - H, 0)
    assert same_padding(k, s, H) == (total // 2, total - total // 2) * 2
    assert same_padding((k, 1), (s, 1), (H, 4))[:2] == (total // 2, total - total // 2)
    if H <= 8:
        x = np.zeros((1, 1, H, H))
        out, _ = conv2d_forward(x, np.zeros((1, 1, k, k)), None, s, "same")
        assert out.shape[2:] == (math.ceil(H / s),) * 2


def test_same_padding_defaults():
    assert same_padding(3) == (1, 1, 1, 1)
    assert same_padding(2) == (0, 1, 0, 1)
    assert same_padding(7, 2) == (2, 3, 2, 3)  # H a multiple of the stride
    assert same_padding(1, 2) == (0, 0, 0, 0)


@pytest.mark.parametrize("x_shape,w_shape,x_dtype,error,words", [
    ((2, 3, 5), (4, 3, 3, 3), np.float32, ShapeError, "4-D"),
    ((1, 3, 5, 5), (4, 3, 3), np.float32, ShapeError, "4-D"),
    ((1, 2, 5, 5), (4, 3, 3, 3), np.float32, ShapeError, "channels"),
    ((1, 3, 2, 2), (4, 3, 5, 5), np.float32, ShapeError, "larger than the padded input"),
    ((1, 3, 5, 5), (4, 3, 3, 3), np.int64, DTypeError, "float32"),
    ((1, 3, 5, 5), (4, 3, 3, 3), np.float64, DTypeError, "weights are float32"),
])
@pytest.mark.parametrize("forward", [conv2d_forward, fast_conv.conv2d_forward])
def test_bad_input_gives_one_line_error(x_shape, w_shape, x_dtype, error, words, forward):
    x, w = np.zeros(x_shape, x_dtype), np.zeros(w_shape, np.float32)
    with pytest.raises(error, match=words) as e:
        forward(x, w)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("forward,backward", [(conv2d_forward, conv2d_backward),
                                              (fast_conv.conv2d_forward, fast_conv.conv2d_backward)])
def test_bad_settings(forward, backward):
    x, w = np.zeros((1, 1, 5, 5)), np.zeros((2, 1, 3, 3))
    for kwargs in ({"stride": 0}, {"pad": -1}, {"pad": (1, 1)}, {"b": np.zeros(3)}):
        with pytest.raises(ShapeError):
            forward(x, w, **kwargs)
    cache = forward(x, w, pad=1)[1]
    for dout_shape in [(1, 3, 5, 5), (1, 2, 4, 5), (2, 5, 5)]:
        with pytest.raises(ShapeError, match="dout"):
            backward(np.zeros(dout_shape), cache)
    with pytest.raises(MinvertError, match="before forward"):
        Conv2D(1, 2, 3).backward(np.zeros((1, 2, 3, 3)))


@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_matches_numpy():
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(7)
    for shape, F, k, s, pad in GEOMETRIES:
        x, w, b = case(shape, F, k, True, rng)
        out, cache = conv2d_forward(x, w, b, s, pad)
        dout = rng.standard_normal(out.shape)
        out_gpu, cache_gpu = conv2d_forward(cp.asarray(x), cp.asarray(w), cp.asarray(b), s, pad)
        # tolerance: the float64 bound for sums in another order (tests/parity.py); the same
        # passes on |x|, |w|, |dout| give each element's sum of absolute products
        abs_out, abs_cache = conv2d_forward(np.abs(x), np.abs(w), np.abs(b), s, pad)
        abs_grads = conv2d_backward(np.abs(dout), abs_cache)
        N, C = shape[:2]
        H_out, W_out = out.shape[2:]
        terms = {"out": C * k * k + 1, "dx": F * k * k, "dw": N * H_out * W_out, "db": N * H_out * W_out}
        assert isinstance(out_gpu, cp.ndarray)
        assert_within_sum_bound(out_gpu, out, abs_out, terms["out"], "out")
        grads_gpu = conv2d_backward(cp.asarray(dout), cache_gpu)
        for name, g_gpu, g, g_abs in zip(("dx", "dw", "db"), grads_gpu, conv2d_backward(dout, cache),
                                         abs_grads):
            assert isinstance(g_gpu, cp.ndarray)
            assert_within_sum_bound(g_gpu, g, g_abs, terms[name], name)


def test_bench_layers_smoke():
    from minvert.bench import bench_layers
    lines = []
    rows = bench_layers(repeats=1, shapes=[(1, 2, 6, 6, 3)], out=lines.append, compare_dx=True)
    assert [r["op"] for r in rows] == ["forward", "backward dx", "backward dw", "matmul",
                                       "forward im2col", "dx im2col", "forward winograd",
                                       "dx winograd", "kernel transform", "dx transposed",
                                       "dx col2im"]
    assert all(r["ms"] >= 0 and r["ratio"] >= 0 for r in rows) and len(lines) == 16  # 2 machine lines
