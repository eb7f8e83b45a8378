"""Winograd F(2x2, 3x3) (layers/fast/winograd.py): the transforms against their matrix
definitions, the convolution and its backward to the input against the im2col path
(whose forward is checked against the loop oracle in test_conv.py) in float64, float32
against float64 on VGG-like layers, numerical gradients through the layer with the
Winograd path forced, and the rule that picks it."""
import numpy as np
import pytest

from minvert.backend import gpu_available
from minvert.gradcheck import numerical_vjp, rel_error
from minvert.layers.conv import Conv2D
from minvert.layers.fast import conv, winograd
from minvert.layers.fast.conv import conv2d_backward, conv2d_forward
from minvert.layers.fast.winograd import conv3x3_winograd, dx_winograd, flip_transpose, \
    kernel_transform
from naive_conv import conv2d_naive

G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])

# (x shape, F, pad): even and odd output sizes, pads 0 to 2 and asymmetric, batches
GEOMETRIES = [((2, 3, 6, 6), 4, 1), ((1, 2, 7, 5), 3, 1), ((2, 3, 5, 6), 2, 0),
              ((1, 2, 6, 7), 3, (2, 0, 1, 2)), ((3, 4, 9, 8), 5, (0, 1, 2, 1)),
              ((1, 1, 3, 3), 2, 2)]


def case(shape, F, rng, dtype=np.float64):
    return (rng.standard_normal(shape).astype(dtype),
            rng.standard_normal((F, shape[1], 3, 3)).astype(dtype),
            rng.standard_normal(F).astype(dtype))


def pad4(pad):
    return (pad,) * 4 if isinstance(pad, int) else pad


@pytest.fixture
def winograd_always(monkeypatch):
    monkeypatch.setattr(conv, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(conv, "WINOGRAD_MIN_SIZE", 1)
    monkeypatch.setattr(conv, "WINOGRAD_MIN_PIXELS", 1)


def test_kernel_transform_is_g_w_gt():
    w = np.random.default_rng(0).standard_normal((3, 2, 3, 3))
    U = kernel_transform(w)
    for f in range(3):
        for c in range(2):
            np.testing.assert_allclose(U[:, f, c].reshape(4, 4), G @ w[f, c] @ G.T, atol=1e-14)
    flipped = kernel_transform(np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)))
    np.testing.assert_allclose(np.stack(flip_transpose(U)), flipped, atol=1e-14)


def test_one_tile_by_the_definition():
    """Y = A^T [(G g G^T) * (B^T d B)] A for one 4x4 tile and one channel."""
    rng = np.random.default_rng(1)
    d, g = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
    BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
    AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])
    Y = AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T
    out = conv3x3_winograd(d[None, None], kernel_transform(g[None, None]), None, (0, 0, 0, 0))
    np.testing.assert_allclose(out[0, 0], Y, atol=1e-13)
    naive = conv2d_naive(d[None, None], g[None, None], None, 1, 0)
    np.testing.assert_allclose(out[0, 0], naive[0, 0], atol=1e-13)


@pytest.mark.parametrize("shape,F,pad", GEOMETRIES)
def test_forward_and_dx_equal_im2col_float64(shape, F, pad):
    rng = np.random.default_rng(2)
    x, w, b = case(shape, F, rng)
    ref, cache = conv2d_forward(x, w, b, 1, pad)
    assert "winograd_U" not in cache  # tiny: the rule keeps im2col
    U = kernel_transform(w)
    np.testing.assert_allclose(conv3x3_winograd(x, U, b, pad4(pad)), ref, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(ref.shape)
    np.testing.assert_allclose(dx_winograd(dout, U, pad4(pad)),
                               conv2d_backward(dout, cache, need_dw=False)[0],
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("chunk,band", [(7, 1 << 10), (100, 5000), (1, 1)])
def test_chunks_and_bands_change_nothing(monkeypatch, chunk, band):
    """A few channels per pass of the transforms, bands of samples or of tile rows: the
    same values as im2col (the defaults run these small cases in one piece)."""
    monkeypatch.setattr(winograd, "CHUNK", chunk)
    monkeypatch.setattr(winograd, "BAND_BYTES", band)
    rng = np.random.default_rng(8)
    for shape, F, pad in GEOMETRIES + [((3, 6, 11, 13), 7, (2, 1, 0, 2))]:
        x, w, b = case(shape, F, rng)
        ref, cache = conv2d_forward(x, w, b, 1, pad)
        U = kernel_transform(w)
        np.testing.assert_allclose(conv3x3_winograd(x, U, b, pad4(pad)), ref, rtol=1e-12, atol=1e-12)
        dout = rng.standard_normal(ref.shape)
        np.testing.assert_allclose(dx_winograd(dout, U, pad4(pad)),
                                   conv2d_backward(dout, cache, need_dw=False)[0],
                                   rtol=1e-12, atol=1e-12)


def test_inference_fusions():
    rng = np.random.default_rng(3)
    x, w, b = case((2, 3, 6, 5), 4, rng)
    scale = rng.uniform(0.5, 1.5, 4)
    ref = np.maximum(conv2d_naive(x, w, None, 1, 1) * scale.reshape(1, 4, 1, 1)
                     + b.reshape(1, 4, 1, 1), 0)
    out = conv3x3_winograd(x, kernel_transform(w), b, (1, 1, 1, 1), scale, relu=True)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,F,pad", GEOMETRIES)
def test_gradients_through_the_winograd_path(winograd_always, shape, F, pad):
    rng = np.random.default_rng(4)
    x, w, b = case(shape, F, rng)
    out, cache = conv2d_forward(x, w, b, 1, pad)
    assert "winograd_U" in cache
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv2d_backward(dout, cache)

    def f():
        return conv2d_forward(x, w, b, 1, pad)[0]
    assert rel_error(dx, numerical_vjp(f, x, dout, h=1e-3)) < 1e-7  # linear: large h is exact
    assert rel_error(dw, numerical_vjp(f, w, dout, h=1e-3)) < 1e-7
    assert rel_error(db, numerical_vjp(f, b, dout, h=1e-3)) < 1e-7


@pytest.mark.parametrize("C,F,H", [(128, 128, 28), (512, 512, 14)])
def test_float32_within_1e4_of_float64(C, F, H):
    """VGG-like layers, He-scaled weights, ReLU-like (non-negative) input."""
    rng = np.random.default_rng(5)
    x = np.abs(rng.standard_normal((1, C, H, H)))
    w = rng.standard_normal((F, C, 3, 3)) * np.sqrt(2 / (9 * C))
    dout = rng.standard_normal((1, F, H, H))
    ref, cache = conv2d_forward(x, w, None, 1, 1)
    dx_ref = conv2d_backward(dout, cache, need_dw=False)[0]
    U = kernel_transform(w.astype(np.float32))
    out = conv3x3_winograd(x.astype(np.float32), U, None, (1, 1, 1, 1))
    dx = dx_winograd(dout.astype(np.float32), U, (1, 1, 1, 1))
    assert out.dtype == dx.dtype == np.float32
    assert np.abs(out - ref).max() / np.abs(ref).max() < 1e-4
    assert np.abs(dx - dx_ref).max() / np.abs(dx_ref).max() < 1e-4


def test_rule():
    """128 channels, whatever BLAS' thread count (the rule reads none); never on a GPU
    (one cuBLAS product per layer there)."""
    geometry = (1, 1, (1, 1, 1, 1))  # stride 1, pad 1
    assert conv.winograd_pays(np, 1, 128, 128, 28, 28, 3, 3, *geometry)
    assert not conv.winograd_pays(np, 1, 64, 128, 112, 112, 3, 3, *geometry)  # 64 channels
    assert conv.winograd_pays(np, 1, 256, 512, 28, 28, 3, 3, *geometry)
    assert not conv.winograd_pays(np, 1, 256, 256, 7, 7, 3, 3, *geometry)  # 7x7
    assert not conv.winograd_pays(np, 1, 256, 256, 14, 14, 3, 3, *geometry)  # 196 pixels
    assert conv.winograd_pays(np, 1, 256, 256, 14, 14, 3, 3, *geometry, frozen=True)
    assert not conv.winograd_pays(object(), 1, 256, 512, 28, 28, 3, 3, *geometry)  # not NumPy


def test_rule_and_the_kept_transform(fast_engine):
    rng = np.random.default_rng(6)
    x, w, b = case((1, 128, 28, 28), 128, rng, np.float32)
    assert "winograd_U" in conv2d_forward(x, w, b, 1, 1)[1]
    assert "winograd_U" not in conv2d_forward(x[:, :64], w[:64, :64], b[:64], 1, 1)[1]  # 64 channels
    assert "winograd_U" not in conv2d_forward(x, w, b, 2, 1)[1]  # stride 2
    layer = Conv2D(128, 128, 3, pad=1, rng=rng)
    layer.forward(x)
    assert layer.cache["winograd_U"] is None and "_winograd" not in vars(layer)  # rebuilt in backward
    layer.trainable = False
    out = layer.forward(x)
    U = layer.winograd_cache()["cpu"][1]
    assert layer.cache["winograd_U"] is U and layer.predict(x) is not None
    assert layer.winograd_cache()["cpu"][1] is U
    small = x[:, :, :14, :14]  # 196 pixels: only a frozen layer, which keeps U, gains
    layer.forward(small)
    assert layer.cache["winograd_U"] is U
    layer.trainable = True
    layer.forward(small)
    assert "winograd_U" not in layer.cache and "_winograd" not in vars(layer)
    layer.trainable = False
    layer.params["w"] = layer.params["w"] * 2  # a new array: a new transform
    np.testing.assert_allclose(layer.forward(x), 2 * out - layer.params["b"].reshape(1, -1, 1, 1),
                               rtol=1e-5, atol=1e-4)
    assert layer.winograd_cache()["cpu"][1] is not U


@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_matches_numpy():
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(7)
    for shape, F, pad in GEOMETRIES:
        x, w, b = case(shape, F, rng)
        U = kernel_transform(w)
        out = conv3x3_winograd(x, U, b, pad4(pad))
        dout = rng.standard_normal(out.shape)
        U_g = kernel_transform(cp.asarray(w))
        out_g = conv3x3_winograd(cp.asarray(x), U_g, cp.asarray(b), pad4(pad))
        np.testing.assert_allclose(out_g.get(), out, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(dx_winograd(cp.asarray(dout), U_g, pad4(pad)).get(),
                                   dx_winograd(dout, U, pad4(pad)), rtol=1e-10, atol=1e-10)
