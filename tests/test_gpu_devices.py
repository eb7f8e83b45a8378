"""The GPU path as real CuPy runs it, counted by the strict stand-in: two devices in one
process, device memory of a convolution and of a checkpoint, and the choices made for the
GPU (no CPU thresholds, no chunked update, peak device memory in the benchmarks)."""
import gc

import numpy as np
import pytest

from minvert import bench
from minvert.bench import passes
from minvert.cli import main
from minvert.layers import conv as readable
from minvert.layers.conv import Conv2D
from minvert.layers.fast import conv as fast_conv
from minvert.layers.fast import elementwise, im2col
from minvert.nets.tiny import build_tiny
from minvert.optim import Adadelta
from minvert.training import checkpoint_snapshot
from minvert.transform import scales


def cpu_reference(x, w, b, dout, stride=1, pad=1):
    out, cache = readable.conv2d_forward(x, w, b, stride, pad)
    return (out, *readable.conv2d_backward(dout, cache))


def test_a_convolution_on_gpu_0_then_gpu_1(strict_cupy, fast_engine):
    """Nothing the engine keeps between calls (scratch memory) belongs to another device: a
    layer run on device 0, then copied to device 1, runs there, and back on device 0."""
    rng = np.random.default_rng(0)
    layer = Conv2D(5, 4, 3, pad=1, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 5, 9, 8))
    dout = rng.standard_normal((2, 4, 9, 8))
    want = cpu_reference(x, layer.params["w"], layer.params["b"], dout)
    for device in (0, 1, 0):
        with strict_cupy.cuda.Device(device):
            layer.to(strict_cupy)  # a copy on this device
            assert layer.params["w"].device.id == device
            out = layer.forward(strict_cupy.asarray(x))
            dx = layer.backward(strict_cupy.asarray(dout))
            np.testing.assert_allclose(out.get(), want[0], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(dx.get(), want[1], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(layer.grads["w"].get(), want[2], rtol=1e-12, atol=1e-12)
            layer.to(np)  # then copied to the next device from the host


def test_kernel_transforms_are_kept_per_device(strict_cupy):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3, 3, 3))
    kept = {}
    on = {}
    for device in (0, 1):
        with strict_cupy.cuda.Device(device):
            on[device] = strict_cupy.asarray(w)
            U = fast_conv._kernel_transform(on[device], kept)
            assert U.device.id == device
    on["cpu"] = w
    fast_conv._kernel_transform(w, kept)
    assert set(kept) == {0, 1, "cpu"} and all(kept[k][0] is on[k] for k in kept)
    with strict_cupy.cuda.Device(1):
        assert fast_conv._kernel_transform(on[1], kept) is kept[1][1]  # taken, not recomputed


def test_a_large_image_runs_in_row_bands_with_bounded_scratch(strict_cupy, monkeypatch):
    """On the GPU too, an image whose im2col matrix passes WHOLE_BYTES["gpu"] is cut into row
    bands; nothing stays allocated after the call but the output (CuPy's pool holds the rest)."""
    cp, rng = strict_cupy, np.random.default_rng(2)
    N, C, H, W, F = 1, 8, 40, 24, 6
    x, w, b = rng.standard_normal((N, C, H, W)), rng.standard_normal((F, C, 3, 3)), rng.standard_normal(F)
    dout = rng.standard_normal((N, F, H, W))
    whole = C * 9 * H * W * 8  # bytes of the whole im2col matrix, float64
    monkeypatch.setitem(im2col.WHOLE_BYTES, "gpu", whole // 6)
    chunks = im2col.chunk_ranges(cp, (N, C, 3, 3, H, W), 8)
    assert len(chunks) >= 6 and [c[2:] for c in chunks][0] == (0, chunks[0][3])
    assert all(C * 9 * (r1 - r0) * W * 8 <= whole // 6 for _, _, r0, r1 in chunks)
    want = cpu_reference(x, w, b, dout)
    xd, wd, bd, doutd = (cp.asarray(a) for a in (x, w, b, dout))
    gc.collect()  # device arrays of earlier tests, freed now rather than during the count
    before = cp._core.live_bytes()
    cp._core.reset_peak()
    out, cache = fast_conv.conv2d_forward(xd, wd, bd, 1, 1)
    assert cp._core.peak_bytes() - before < out.nbytes + 3 * (whole // 6) < whole
    assert cp._core.live_bytes() - before == out.nbytes  # no scratch kept
    got = (out, *fast_conv.conv2d_backward(doutd, cache))
    for k in range(4):
        np.testing.assert_allclose(got[k].get(), want[k], rtol=1e-12, atol=1e-12)
    del got
    gc.collect()  # the assertion helpers' frames
    assert cp._core.live_bytes() - before == out.nbytes


def test_the_gpu_takes_no_cpu_measured_path(strict_cupy, monkeypatch):
    """GPU: dx by col2im in NCHW (no transposed-convolution rule, no channels-last layout),
    no Winograd, the Adadelta update in one pass; the CPU keeps its measured choices."""
    cp, rng = strict_cupy, np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 16, 12, 12)), rng.standard_normal((16, 16, 3, 3)), None
    dout = rng.standard_normal((2, 16, 12, 12))
    called = []
    transposed = fast_conv._dx_transposed
    monkeypatch.setattr(fast_conv, "_dx_transposed", lambda *a: called.append(1) or transposed(*a))
    want = cpu_reference(x, w, b, dout)
    fast_conv.conv2d_backward(dout, fast_conv.conv2d_forward(x, w, b, 1, 1)[1])
    assert called == [1]  # the CPU's rule: H*W > C here
    got = fast_conv.conv2d_backward(cp.asarray(dout), fast_conv.conv2d_forward(
        cp.asarray(x), cp.asarray(w), None, 1, 1)[1])
    assert called == [1]
    np.testing.assert_allclose(got[0].get(), want[1], rtol=1e-12, atol=1e-12)
    assert not fast_conv.winograd_pays(cp, 1, 512, 512, 56, 56, 3, 3, 1, 1, (1, 1, 1, 1), True)
    # deep layer, small image (C > W_out: channels-last on the CPU), on the GPU: equal too
    x, w = rng.standard_normal((1, 32, 5, 5)), rng.standard_normal((8, 32, 3, 3))
    dout = rng.standard_normal((1, 8, 3, 3))
    want = cpu_reference(x, w, None, dout, 1, 0)
    dx = fast_conv._dx_col2im(cp.asarray(dout), cp.asarray(w), x.shape, 1, 1, (0, 0, 0, 0))
    np.testing.assert_allclose(dx.get(), want[1], rtol=1e-12, atol=1e-12)

    passes_run = []
    update = elementwise._adadelta
    monkeypatch.setattr(elementwise, "_adadelta", lambda *a: passes_run.append(1) or update(*a))
    monkeypatch.setattr(elementwise, "UPDATE_CHUNK", 16)
    for xp, expected in ((np, 8), (cp, 1)):
        p, g, a, d = (xp.asarray(rng.random(120).astype(np.float32)) for _ in range(4))
        passes_run.clear()
        elementwise.adadelta_update(p, g, a, d, 1.0, 0.95, 1e-8)
        assert len(passes_run) == expected


def test_checkpoint_copies_optimizer_state_to_the_host_without_a_device_copy(strict_cupy):
    cp = strict_cupy
    net = build_tiny("tiny-vgg", 3, rng=np.random.default_rng(0), input_size=16).to(cp)
    opt = Adadelta()
    params = list(net.parameters())
    opt.step([(name, p, cp.ones_like(p)) for name, p, _ in params])
    before = cp._core.live_bytes()
    cp._core.reset_peak()
    snapshot = checkpoint_snapshot(net, opt, {"epoch": 1})
    assert cp._core.peak_bytes() == before  # nothing allocated on the device
    state = snapshot["optimizer"]
    assert len(state) == 2 * len(params) + 5
    assert all(isinstance(v, np.ndarray) for k, v in state.items() if "|" in k)
    name = params[0][0]
    np.testing.assert_array_equal(state[f"accum_grad|{name}"], opt.state["accum_grad"][name].get())
    assert isinstance(opt.state_dict()[f"accum_grad/{name}"], cp.ndarray)  # default: device copies


def test_bench_on_the_gpu_prints_peak_device_memory(strict_cupy):
    lines = []
    config = {"start": [4, 4, 4], "feature_size": 64, "widths": [64, 32]}  # ~1 MB of activations
    (row,) = bench.bench_decoder(repeats=1, batch=16, config=config, out=lines.append,
                                 device="gpu", memory=False)
    assert isinstance(row["device MB"], float) and row["device MB"] > 0
    assert lines[0].startswith("minvert bench decoder: float32, gpu")
    assert "device MB" in lines[3] and any(line.startswith("device MB = ") for line in lines)  # after BLAS, layers
    rows = bench.bench_decoder(repeats=1, batch=2, config=passes.TINY["decoder"]["config"],
                               out=None, memory=False)
    assert "device MB" not in rows[0]  # the CPU has no device memory column


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_bench_presets_honours_device(strict_cupy, monkeypatch, capsys, device):
    seen = []
    monkeypatch.setattr(scales, "build_vgg", lambda *a, **kw: build_tiny(
        "tiny-vgg", 1000, labels=[str(i) for i in range(1000)], rng=np.random.default_rng(0)))
    monkeypatch.setattr(scales, "preset_scales", lambda net, *a, **kw: seen.append(net.xp) or [])
    monkeypatch.setattr(scales, "format_table", lambda table: "table")
    assert main(["bench", "presets", "--device", device]) == 0
    assert seen == [np if device == "cpu" else strict_cupy]
