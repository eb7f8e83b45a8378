"""Upsampling fused into the convolution after it (layers/fast/upconv.py): the phase
decomposition against the readable layer (layers/upconv.py: upsample, then convolve) and the plain path (nearest upsampling, then the im2col convolution,
whose forward is itself checked against the loop oracle in test_conv.py) in float64 and
float32, and every gradient against numerical differences (float64, random dout)."""
import numpy as np
import pytest

from minvert.backend import gpu_available
from minvert.gradcheck import numerical_vjp, rel_error
from minvert.layers import upconv as readable
from minvert.layers.conv import conv2d_forward
from minvert.layers.fast import upconv
from minvert.layers.fast.upconv import phase_taps, upsample_conv2d_backward, upsample_conv2d_forward
from minvert.layers.upconv import UpsampleConv2D
from naive_layers import upsample_nearest

# (x shape, F, kernel, pad, factor): the decoder's 3x3 and 2x2 'same', a 4x4 'same'
# (TensorFlow pads 1 before, 2 after), factor 3, a rectangular factor, a 5x3 kernel
GEOMETRIES = [
    ((2, 3, 5, 4), 4, 3, 1, 2),
    ((1, 2, 3, 3), 3, 2, (0, 1, 0, 1), 2),
    ((2, 2, 4, 5), 3, 4, (1, 2, 1, 2), 2),
    ((1, 2, 3, 4), 2, 3, 1, 3),
    ((1, 2, 3, 4), 2, 3, 1, (2, 3)),
    ((1, 2, 4, 3), 2, (5, 3), (2, 2, 0, 2), 2),
]


def case(shape, F, k, rng, dtype=np.float64):
    KH, KW = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((F, shape[1], KH, KW)).astype(dtype)
    return x, w, rng.standard_normal(F).astype(dtype)


def plain(x, w, b, pad, factor):
    fh, fw = (factor, factor) if isinstance(factor, int) else factor
    return conv2d_forward(upsample_nearest(x, fh, fw), w, b, 1, pad)[0]


@pytest.fixture
def fused_always(monkeypatch):
    monkeypatch.setattr(upconv, "FUSE_MIN_SIZE", 1)


def test_phase_taps_of_the_decoder_kernels():
    """3x3 pad 1: phase 0 reads rows h-1 (tap 0) and h (taps 1, 2); phase 1 rows h (taps
    0, 1) and h+1 (tap 2). 2x2 pad (0, 1): phase 0 reads only row h."""
    assert phase_taps(3, 1, 2) == [(-1, [0, 1, 1]), (0, [0, 0, 1])]
    assert phase_taps(2, 0, 2) == [(0, [0, 0]), (0, [0, 1])]


@pytest.mark.parametrize("shape,F,k,pad,factor", GEOMETRIES)
def test_fused_equals_plain_float64(fused_always, shape, F, k, pad, factor):
    x, w, b = case(shape, F, k, np.random.default_rng(0))
    out, cache = upsample_conv2d_forward(x, w, b, pad, factor)
    assert "plain" not in cache
    np.testing.assert_allclose(out, plain(x, w, b, pad, factor), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,F,k,pad,factor", GEOMETRIES)
def test_gradients_match_numerical(fused_always, shape, F, k, pad, factor):
    rng = np.random.default_rng(1)
    x, w, b = case(shape, F, k, rng)
    out, cache = upsample_conv2d_forward(x, w, b, pad, factor)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = upsample_conv2d_backward(dout, cache)

    def f():
        return upsample_conv2d_forward(x, w, b, pad, factor)[0]
    # linear in each argument: no truncation error, a large step keeps rounding small
    assert rel_error(dx, numerical_vjp(f, x, dout, h=1e-3)) < 1e-7
    assert rel_error(dw, numerical_vjp(f, w, dout, h=1e-3)) < 1e-7
    assert rel_error(db, numerical_vjp(f, b, dout, h=1e-3)) < 1e-7


def test_float32_within_1e4_of_float64(fused_always):
    """Decoder-like sizes: 64 channels, 3x3, float32 fused vs float64 plain."""
    rng = np.random.default_rng(2)
    x, w, b = case((2, 64, 12, 12), 32, 3, rng)
    w /= 24  # Glorot-like scale
    ref = plain(x, w, b, 1, 2)
    out, cache = upsample_conv2d_forward(*(a.astype(np.float32) for a in (x, w, b)), 1, 2)
    assert out.dtype == np.float32
    assert np.abs(out - ref).max() / np.abs(ref).max() < 1e-4
    dout = rng.standard_normal(out.shape)
    dx, dw, _ = upsample_conv2d_backward(dout.astype(np.float32), cache)
    dx64, dw64, _ = upsample_conv2d_backward(dout, upsample_conv2d_forward(x, w, b, 1, 2)[1])
    for g, g64 in ((dx, dx64), (dw, dw64)):
        assert g.dtype == np.float32
        assert np.abs(g - g64).max() / np.abs(g64).max() < 1e-4


def test_small_inputs_and_other_padding_take_the_plain_path():
    rng = np.random.default_rng(3)
    x, w, b = case((1, 2, 4, 4), 3, 3, rng)
    for pad in (1, 0):  # 4x4 < FUSE_MIN_SIZE; pad 0 does not keep the size
        out, cache = upsample_conv2d_forward(x, w, b, pad, 2)
        assert "plain" in cache
        np.testing.assert_allclose(out, plain(x, w, b, pad, 2), rtol=1e-12, atol=1e-12)
        dout = rng.standard_normal(out.shape)
        dx, dw, db = upsample_conv2d_backward(dout, cache)
        f = lambda: upsample_conv2d_forward(x, w, b, pad, 2)[0]  # noqa: E731
        assert rel_error(dx, numerical_vjp(f, x, dout, h=1e-3)) < 1e-7
        assert rel_error(dw, numerical_vjp(f, w, dout, h=1e-3)) < 1e-7


@pytest.mark.parametrize("engine", ["fast_engine", "readable_engine"])
def test_layer_frozen_and_first_layer(fused_always, engine, request):
    request.getfixturevalue(engine)
    rng = np.random.default_rng(4)
    layer = UpsampleConv2D(2, 3, 3, pad=1, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 2, 3, 3))
    out = layer.forward(x)
    np.testing.assert_allclose(out, plain(x, layer.params["w"], layer.params["b"], 1, 2),
                               rtol=1e-12, atol=1e-12)
    layer.trainable = False
    assert layer.backward(np.ones_like(out)).shape == x.shape and layer.grads == {}
    layer.trainable, layer.need_dx = True, False
    layer.forward(x)
    assert layer.backward(np.ones_like(out)) is None and set(layer.grads) == {"w", "b"}
    np.testing.assert_allclose(layer.predict(x), out, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,F,k,pad,factor", GEOMETRIES)
def test_readable_layer_is_upsample_then_conv(shape, F, k, pad, factor):
    rng = np.random.default_rng(6)
    x, w, b = case(shape, F, k, rng)
    out, cache = readable.upsample_conv2d_forward(x, w, b, pad, factor)
    np.testing.assert_allclose(out, plain(x, w, b, pad, factor), rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    for g, g_fast in zip(readable.upsample_conv2d_backward(dout, cache),
                         upsample_conv2d_backward(dout, upsample_conv2d_forward(x, w, b, pad, factor)[1])):
        assert rel_error(g_fast, g) < 1e-12


def test_decoder_keeps_weight_names():
    from minvert.nets.decoder import build_decoder
    net = build_decoder({"start": [2, 2, 4], "feature_size": 16, "widths": [8, 4]})
    assert [n for n, _ in net.weighted_layers()] == ["conv1", "conv2", "conv_out"]
    assert isinstance(net["conv2"], UpsampleConv2D) and not isinstance(net["conv1"], UpsampleConv2D)
    assert net.forward(np.ones((1, 16), np.float32)).shape == (1, 3, 8, 8)


@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_matches_numpy(fused_always):
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(5)
    for shape, F, k, pad, factor in GEOMETRIES:
        x, w, b = case(shape, F, k, rng)
        out, cache = upsample_conv2d_forward(x, w, b, pad, factor)
        dout = rng.standard_normal(out.shape)
        out_g, cache_g = upsample_conv2d_forward(cp.asarray(x), cp.asarray(w), cp.asarray(b),
                                                 pad, factor)
        np.testing.assert_allclose(out_g.get(), out, rtol=1e-10, atol=1e-10)
        for g_g, g in zip(upsample_conv2d_backward(cp.asarray(dout), cache_g),
                          upsample_conv2d_backward(dout, cache)):
            np.testing.assert_allclose(g_g.get(), g, rtol=1e-10, atol=1e-10)
