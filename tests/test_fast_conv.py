"""The fast engine's convolutions (layers/fast/conv.py, im2col.py, upconv.py) equal the
readable ones (layers/conv.py, layers/upconv.py): float64 within 1e-12 relative (norm-wise,
gradcheck.rel_error), float32 within 1e-5 of the largest float64 value (im2col; the sums
only run in another order), on NumPy and under the strict CuPy stand-in. Plus the chunk
planning, the three ways of computing dx, and determinism: the same call gives the same
bits whatever ran before in the process."""
import numpy as np
import pytest

from minvert.gradcheck import rel_error
from minvert.layers import conv, fast, upconv
from minvert.layers.conv import Conv2D
from minvert.layers.fast import conv as fast_conv, im2col
from test_conv import GEOMETRIES, case
from test_upconv import GEOMETRIES as UP_GEOMETRIES, case as up_case

FLOAT32_BOUND = 1e-5  # |fast float32 - readable float64| / max |readable float64|


def both_ways(x, w, b, s, pad, dout):
    """(readable, fast) results: (out, dx, dw, db) each."""
    results = []
    for forward, backward in [(conv.conv2d_forward, conv.conv2d_backward),
                              (fast_conv.conv2d_forward, fast_conv.conv2d_backward)]:
        out, cache = forward(x, w, b, s, pad)
        results.append((out,) + tuple(backward(dout, cache)))
    return results


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape,F,k,s,pad", GEOMETRIES)
def test_fast_equals_readable_float64(shape, F, k, s, pad, bias):
    rng = np.random.default_rng(10)
    x, w, b = case(shape, F, k, bias, rng)
    dout = rng.standard_normal(conv.conv2d_forward(x, w, b, s, pad)[0].shape)
    readable, quick = both_ways(x, w, b, s, pad, dout)
    for name, a, q in zip(("out", "dx", "dw", "db"), readable, quick):
        assert (a is None) == (q is None), name
        if a is not None:
            assert q.shape == a.shape and rel_error(q, a) < 1e-12, name


@pytest.mark.parametrize("shape,F,k,s,pad", GEOMETRIES)
def test_fast_float32_within_bound(shape, F, k, s, pad):
    rng = np.random.default_rng(11)
    x, w, b = case(shape, F, k, True, rng)
    dout = rng.standard_normal(conv.conv2d_forward(x, w, b, s, pad)[0].shape)
    readable, _ = both_ways(x, w, b, s, pad, dout)
    _, quick = both_ways(*(a.astype(np.float32) for a in (x, w, b)), s, pad, dout.astype(np.float32))
    for a, q in zip(readable, quick):
        assert q.dtype == np.float32 and np.abs(q - a).max() <= FLOAT32_BOUND * np.abs(a).max()


def test_fused_inference_equals_the_layers_one_by_one():
    """conv -> batch-norm (scale, shift) -> + residual -> ReLU, each part alone and all."""
    rng = np.random.default_rng(12)
    for shape, F, k, s, pad in GEOMETRIES:
        x, w, b = case(shape, F, k, True, rng)
        out = conv.conv2d_forward(x, w, b, s, pad)[0]
        scale, shift = rng.uniform(0.5, 2, F), rng.standard_normal(F)
        residual = rng.standard_normal(out.shape)
        bn = out * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)
        for kwargs, want in [({}, out), ({"relu": True}, np.maximum(out, 0)),
                             ({"scale": scale, "shift": shift}, bn),
                             ({"scale": scale, "shift": shift, "residual": residual, "relu": True},
                              np.maximum(bn + residual, 0))]:
            got = fast_conv.conv2d_fused(x, w, b, s, pad, **kwargs)
            assert rel_error(got, want) < 1e-12, kwargs
        no_bias = fast_conv.conv2d_fused(x, w, None, s, pad, scale, shift)
        want = conv.conv2d_forward(x, w, None, s, pad)[0] * scale.reshape(1, -1, 1, 1)
        assert rel_error(no_bias, want + shift.reshape(1, -1, 1, 1)) < 1e-12


@pytest.mark.parametrize("whole_bytes,columns", [(64, 1), (64, 10), (3000, 1), (1 << 20, 80)])
def test_chunked_im2col_gives_the_same_result(monkeypatch, whole_bytes, columns):
    """Tiny budgets force row bands of 1 or 2 rows (64 B), one sample per matmul (1
    column) and 2 or 4 samples side by side with a remainder (80 columns); any kernel,
    stride and padding (also padding > kernel - 1, whose transposed convolution crops)."""
    rng = np.random.default_rng(2)
    monkeypatch.setitem(im2col.WHOLE_BYTES, "cpu", whole_bytes)
    monkeypatch.setitem(im2col.MATMUL_COLUMNS, "cpu", columns)
    for shape, F, k, s, pad in GEOMETRIES + [((3, 2, 7, 6), 3, 3, 1, 1), ((3, 2, 9, 8), 3, 3, 2, 1)]:
        x, w, b = case(shape, F, k, True, rng)
        dout = rng.standard_normal(conv.conv2d_forward(x, w, b, s, pad)[0].shape)
        readable, quick = both_ways(x, w, b, s, pad, dout)
        for a, q in zip(readable, quick):
            assert rel_error(q, a) < 1e-12


@pytest.mark.parametrize("shape,F,used,other", [((2, 3, 6, 7), 4, "_dx_transposed", "_dx_col2im"),
                                                ((2, 3, 3, 2), 16, "_dx_col2im", "_dx_transposed")])
def test_stride1_dx_paths_agree(monkeypatch, shape, F, used, other):
    """Backward picks the transposed convolution for many pixels, col2im for many
    channels (stride 1); both give the same dx."""
    rng = np.random.default_rng(3)
    x, w, _ = case(shape, F, 3, False, rng)
    out, cache = fast_conv.conv2d_forward(x, w, None, 1, (1, 2, 0, 1))
    dout = rng.standard_normal(out.shape)
    ways = {"_dx_transposed": lambda: fast_conv._dx_transposed(dout, w, (1, 2, 0, 1)),
            "_dx_col2im": lambda: fast_conv._dx_col2im(dout, w, x.shape, 1, 1, (1, 2, 0, 1))}
    other_dx = ways[other]()
    monkeypatch.setattr(fast_conv, other, lambda *a: pytest.fail(f"{other} used instead of {used}"))
    dx = fast_conv.conv2d_backward(dout, cache, need_dw=False)[0]
    np.testing.assert_allclose(dx, other_dx, rtol=1e-12, atol=1e-12)


def test_strict_cupy_fast_equals_readable(strict_cupy):
    """On the stand-in: device arrays in and out, no host crossing, the same values."""
    cp, rng = strict_cupy, np.random.default_rng(13)
    for shape, F, k, s, pad in GEOMETRIES:
        x, w, b = case(shape, F, k, True, rng)
        dout = rng.standard_normal(conv.conv2d_forward(x, w, b, s, pad)[0].shape)
        readable, quick = both_ways(*(cp.asarray(a) for a in (x, w, b)), s, pad, cp.asarray(dout))
        host, _ = both_ways(x, w, b, s, pad, dout)
        for a, q, h in zip(readable, quick, host):
            assert isinstance(a, cp.ndarray) and isinstance(q, cp.ndarray)
            assert rel_error(q, a) < 1e-12 and rel_error(a, h) < 1e-12
        fused = fast_conv.conv2d_fused(cp.asarray(x), cp.asarray(w), cp.asarray(b), s, pad,
                                       relu=True)
        assert rel_error(fused, np.maximum(host[0], 0)) < 1e-12
    for shape, F, k, pad, factor in UP_GEOMETRIES:
        x, w, b = up_case(shape, F, k, rng)
        args = [cp.asarray(a) for a in (x, w, b)]
        out, cache = upconv.upsample_conv2d_forward(*args, pad, factor)
        out_f, cache_f = fast.upsample_conv2d_forward(*args, pad, factor)
        assert isinstance(out_f, cp.ndarray) and rel_error(out_f, out) < 1e-12
        dout = cp.asarray(rng.standard_normal(out.shape))
        for g, g_f in zip(upconv.upsample_conv2d_backward(dout, cache),
                          fast.upsample_conv2d_backward(dout, cache_f)):
            assert isinstance(g_f, cp.ndarray) and rel_error(g_f, g) < 1e-12


def test_same_call_same_bits_whatever_ran_before():
    """A convolution where Winograd may apply (256 channels, 14x14, 784 output pixels),
    before and after a large matrix product, with the engine switched on and off in
    between: the same bits for the same switch setting (forward, dx and dw)."""
    rng = np.random.default_rng(14)
    layer = Conv2D(256, 256, 3, pad=1, rng=rng)
    x = rng.standard_normal((4, 256, 14, 14)).astype(np.float32)
    dout = rng.standard_normal((4, 256, 14, 14)).astype(np.float32)

    def run(on):
        previous = fast.set_enabled(on)
        try:
            out = layer.forward(x)
            dx = layer.backward(dout)
            return [a.tobytes() for a in (out, dx, layer.grads["w"], layer.grads["b"])]
        finally:
            fast.set_enabled(previous)

    first = {on: run(on) for on in (True, False)}
    a = rng.standard_normal((1024, 1024)).astype(np.float32)
    _ = a @ a  # a large product (1 G multiply-adds)
    for on in (False, True, False, True):
        assert run(on) == first[on], f"engine {'on' if on else 'off'}: other bits"
