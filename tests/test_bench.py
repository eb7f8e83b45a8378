"""Smoke tests of ``minvert bench nets`` / ``decoder`` on tiny nets (no timing assertions).

The PyTorch comparison runs only where torch is installed (not in CI); its missing-torch
error is checked everywhere.
"""
import importlib.util
import os
import sys

import numpy as np
import pytest

from minvert import bench
from minvert.bench import memory, nets, passes, torch_mirror
from minvert.errors import MinvertError
from minvert.layers.conv import Conv2D

TINY_VGG, TINY_RESNET = passes.TINY["vgg"]["config"], passes.TINY["resnet"]["config"]
TINY_DECODER = passes.TINY["decoder"]["config"]
COLUMNS = ["model", "pass", "batch", "GFLOP", "ms", "GFLOP/s", "peak MB", "numpy MB"]
TORCH_COLUMNS = ["torch ms", "torch GFLOP/s", "torch peak MB", "ratio", "max rel diff"]
has_torch = importlib.util.find_spec("torch") is not None
can_reset_peak = os.access("/proc/self/clear_refs", os.W_OK)


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(nets, "PAUSE", 0.0)  # the pause between timed calls only costs time here


def tiny_nets(**kw):
    return bench.bench_nets(repeats=1, size=32, batches=(1, 2), vgg=TINY_VGG, resnet=TINY_RESNET,
                            **kw)


def test_bench_nets_rows_and_table():
    lines = []
    rows = tiny_nets(out=lines.append, memory=False)
    assert [list(r) for r in rows] == [COLUMNS] * 5
    assert [(r["pass"], r["batch"]) for r in rows] == [
        ("forward", 1), ("forward+dx (frozen)", 1), ("paper-000 objective", 1), ("forward", 1),
        ("forward", 2)]
    assert rows[0]["model"] == "VGG-19 (custom)" and rows[3]["model"] == "ResNet-50 v1.5 (custom)"
    assert rows[1]["GFLOP"] == pytest.approx(2 * rows[0]["GFLOP"], rel=0.05)  # dx costs a forward
    assert rows[2]["GFLOP"] == rows[1]["GFLOP"]  # the loss terms are not counted
    assert rows[4]["GFLOP"] == pytest.approx(2 * rows[3]["GFLOP"], rel=0.05)
    assert all(r["ms"] > 0 and r["peak MB"] == "n/a" for r in rows)
    assert lines[0].startswith("minvert bench nets: float32, cpu")
    assert lines[1].startswith("BLAS:   ") and "threads" in lines[1]  # what the times ran on
    assert lines[2].startswith("layers: fast engine o")
    assert lines[3].split() == ["model", "pass", "batch", "GFLOP", "ms", "GFLOP/s", "peak", "MB",
                                "numpy", "MB"]


def test_flop_count_from_layer_shapes():
    """2 x multiply-adds of every conv and dense layer, as counted by hand."""
    net = passes.build_net({"net": "vgg", "config": dict(TINY_VGG, input_size=32)})
    x = np.zeros((1, 3, 32, 32), np.float32)
    macs, side, c_in = 0, 32, 3
    for width, n_convs in zip(TINY_VGG["widths"], [2, 2, 4, 4, 4]):
        for _ in range(n_convs):
            macs += width * c_in * 9 * side * side
            c_in = width
        side //= 2
    sizes = [c_in * side * side] + TINY_VGG["fc"] + [TINY_VGG["num_classes"]]
    macs += sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    layer_macs = passes.layer_macs(net, x)
    assert passes.pass_gflop("forward", layer_macs, 3) == pytest.approx(2 * 3 * macs / 1e9)
    assert all(layer.cache is None for _, layer in net.named_layers())  # released


def test_bench_decoder_training_step():
    lines = []
    rows = bench.bench_decoder(repeats=1, batch=2, config=TINY_DECODER, out=lines.append,
                               memory=False)
    (row,) = rows
    assert list(row) == ["model", "pass", "batch", "GFLOP", "ms", "images/s", "GFLOP/s",
                         "peak MB", "numpy MB"]
    assert row["pass"] == "train step" and row["batch"] == 2
    # ms is rounded to 0.1 and images/s to 0.01: the true step time lies within 0.05 ms of
    # ms, so images/s lies between 2 images over its upper and lower end (a relative tolerance
    # fails when a step takes about a millisecond)
    slowest, fastest = (row["ms"] + 0.05) / 1e3, max(row["ms"] - 0.05, 0) / 1e3
    assert 2 / slowest - 0.005 <= row["images/s"] <= (2 / fastest + 0.005 if fastest else np.inf)
    assert lines[0].startswith("minvert bench decoder: float32, cpu")


def test_training_step_counts_three_passes_but_no_feature_gradient():
    net = passes.build_net({"net": "decoder", "config": TINY_DECODER})
    spec = {"net": "decoder", "pass": "train", "batch": 1}
    x, target = passes.make_inputs(spec, net)
    macs = passes.layer_macs(net, x)
    passes.minvert_pass(spec, net, x, target)  # sets the modes: train, conv1 without dx
    first = dict((layer, m) for layer, m in macs)[net["conv1"]]
    forward = passes.pass_gflop("forward", macs, 1)
    assert passes.pass_gflop("train", macs, 1) == pytest.approx(3 * forward - 2 * first / 1e9)


@pytest.mark.skipif(not can_reset_peak, reason="needs Linux /proc/self/clear_refs")
def test_peak_memory_in_a_fresh_process():
    (row,) = bench.bench_decoder(repeats=1, batch=1, config=TINY_DECODER, out=None)
    assert isinstance(row["peak MB"], int) and row["peak MB"] >= 0
    assert isinstance(row["numpy MB"], int) and row["numpy MB"] >= 0


def test_memory_child_failure_is_reported_not_raised():
    lines = []
    spec = {"net": "nonsense", "label": "x", "pass": "forward", "batch": 1}
    assert memory.peak_memory(spec, "minvert", lines.append) is None
    assert lines and "not measured" in lines[0]


@pytest.mark.parametrize("run", [lambda: tiny_nets(compare="torch", memory=False, out=None),
                                 lambda: bench.bench_decoder(compare="torch", out=None)])
def test_compare_torch_without_torch_is_one_clear_error(monkeypatch, run):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(MinvertError, match=r"pip install torch==2\.13\.0"):
        run()


def test_cli_without_torch(monkeypatch, capsys):
    from minvert.cli import main
    monkeypatch.setitem(sys.modules, "torch", None)
    assert main(["bench", "decoder", "--compare", "torch"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("minvert: error:") and "pip install torch" in err and "\n" not in err


def test_unknown_comparison():
    with pytest.raises(MinvertError, match="only comparison"):
        bench.bench_decoder(compare="tensorflow", out=None)


@pytest.mark.skipif(not has_torch, reason="PyTorch not installed")
def test_compare_torch_same_results():
    rows = tiny_nets(compare="torch", memory=False, out=None)
    rows += bench.bench_decoder(repeats=1, batch=2, compare="torch", config=TINY_DECODER,
                                memory=False, out=None)
    for row in rows:
        assert all(c in row for c in TORCH_COLUMNS)
        assert float(row["max rel diff"]) < 1e-4, row
        assert isinstance(row["ratio"], float) and row["ratio"] >= 0


@pytest.mark.skipif(not has_torch, reason="PyTorch not installed")
def test_torch_conversion_of_asymmetric_same_padding():
    import torch
    conv = Conv2D(2, 3, 2, pad=(0, 1, 0, 1), rng=0)
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5)).astype(np.float32)
    with torch.no_grad():
        got = torch_mirror.to_torch(conv, torch)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, conv.forward(x), rtol=1e-5, atol=1e-6)


# the speed-ups made for the benchmark (minvert/layers, minvert/nets) -------------------------
def test_resnet_predict_equals_forward_and_keeps_no_cache():
    net = passes.build_net({"net": "resnet", "config": TINY_RESNET})  # random batch-norm stats
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    out = net.predict(x)
    assert all(layer.cache is None for _, layer in net.named_layers())
    np.testing.assert_allclose(out, net.forward(x), rtol=1e-5, atol=1e-6)
    _, acts = net.forward_taps(x, ["avgpool"], output=False)
    np.testing.assert_allclose(net.features(x), acts["avgpool"], rtol=1e-5, atol=1e-6)


def test_vgg_predict_fuses_conv_and_relu_exactly():
    net = passes.build_net({"net": "vgg", "config": dict(TINY_VGG, input_size=32)})
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(net.predict(x), net.forward(x))


def test_conv_predict_folds_batchnorm_and_relu():
    from minvert.layers import fast
    from minvert.layers.norm import BatchNorm2D
    rng = np.random.default_rng(3)
    conv, bn = Conv2D(3, 4, 3, stride=2, pad=1, rng=rng, dtype=np.float64), BatchNorm2D(4)
    bn.astype(np.float64)
    bn.params["gamma"], bn.state["var"] = rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, 4)
    bn.params["beta"], bn.state["mean"] = rng.standard_normal(4), rng.standard_normal(4)
    conv.params["b"] = rng.standard_normal(4)
    x = rng.standard_normal((2, 3, 9, 8))
    expected = np.maximum(bn.forward(conv.forward(x)), 0)
    fused = fast.conv2d_fused(x, conv.params["w"], conv.params["b"], conv.stride, conv.pad,
                              *bn.affine(), relu=True)
    np.testing.assert_allclose(fused, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.predict(x), conv.forward(x), rtol=1e-12, atol=1e-12)


def test_batchnorm_in_training_mode_is_not_folded():
    from minvert.nets.sequential import Sequential
    from minvert.layers.norm import BatchNorm2D
    net = Sequential([("conv", Conv2D(2, 3, 3, pad=1, rng=0, dtype=np.float64)),
                      ("bn", BatchNorm2D(3))]).astype(np.float64)
    net.set_mode(training=True)
    x = np.random.default_rng(4).standard_normal((4, 2, 5, 5))
    out = net.predict(x)  # batch statistics: every channel of the output has mean 0
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_maxpool_two_pass_forward_and_tie_routing_match_naive(seed):
    """Values from {0, 1, 2}: ties in most windows; every kernel, stride and pad."""
    import naive_layers as naive
    from minvert.layers.pool import maxpool2d_backward, maxpool2d_forward
    rng = np.random.default_rng(seed)
    for _ in range(40):
        k, s = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        pad = int(rng.integers(0, k))
        x = rng.integers(0, 3, (2, 2, int(rng.integers(k, 8)), int(rng.integers(k, 8)))) * 1.0
        out, cache = maxpool2d_forward(x, k, s, pad)
        expected, where = naive.maxpool(x, k, s, pad)
        np.testing.assert_array_equal(out, expected)
        dout = rng.uniform(1, 2, out.shape)
        np.testing.assert_allclose(maxpool2d_backward(dout, cache),
                                   naive.maxpool_backward(dout, x.shape, where), atol=1e-12)


def test_clear_grads():
    net = passes.build_net({"net": "decoder", "config": TINY_DECODER})
    spec = {"net": "decoder", "pass": "train", "batch": 2}
    passes.minvert_pass(spec, net, *passes.make_inputs(spec, net))()
    assert all(g is not None for _, _, g in net.parameters())
    net.clear_grads()
    assert all(g is None for _, _, g in net.parameters())


def test_conv_padded_chunk_by_chunk_matches_naive(monkeypatch):
    """Row bands and sample groups each pad only what they read, for any kernel, stride
    and padding (also padding > kernel - 1, whose backward crops)."""
    import naive_conv
    from minvert.gradcheck import numerical_vjp, rel_error
    from minvert.layers.fast import im2col
    from minvert.layers.fast.conv import conv2d_backward, conv2d_forward
    rng = np.random.default_rng(5)
    for _ in range(25):
        k, s = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        pad = tuple(int(p) for p in rng.integers(0, k + 2, 4))
        H = int(rng.integers(max(1, k - pad[0] - pad[1]), 7))
        W = int(rng.integers(max(1, k - pad[2] - pad[3]), 7))
        x = rng.standard_normal((int(rng.integers(1, 4)), 2, H, W))
        w, b = rng.standard_normal((3, 2, k, k)), rng.standard_normal(3)
        monkeypatch.setitem(im2col.WHOLE_BYTES, "cpu", int(rng.choice([64, 3000, 1 << 20])))
        monkeypatch.setitem(im2col.MATMUL_COLUMNS, "cpu", int(rng.choice([1, 5, 80])))
        out, cache = conv2d_forward(x, w, b, s, pad)
        np.testing.assert_allclose(out, naive_conv.conv2d_naive(x, w, b, s, pad), rtol=1e-10,
                                   atol=1e-10)
        dout = rng.standard_normal(out.shape)
        dx, dw, _ = conv2d_backward(dout, cache)

        def f():
            return conv2d_forward(x, w, b, s, pad)[0]
        assert rel_error(dx, numerical_vjp(f, x, dout, h=1e-4)) < 1e-6
        assert rel_error(dw, numerical_vjp(f, w, dout, h=1e-4)) < 1e-6
