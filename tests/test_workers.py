"""The fast engine's opt-in worker threads (layers/fast/workers.py): off by default; with them
the same values as without (float32 within 1e-6 of the largest: BLAS may round a product of
another shape differently) and the same bits call after call; errors raised in the caller,
and a clear message for a bad MINVERT_WORKERS."""
import threading

import numpy as np
import pytest

from minvert.bench.passes import TINY, build_net, make_inputs, minvert_pass
from minvert.errors import MinvertError
from minvert.layers.fast import conv as fast_conv, elementwise, winograd, workers
from minvert.layers.fast.winograd import kernel_transform


@pytest.fixture
def two_workers():
    previous = workers.set_workers(2)
    yield
    workers.set_workers(previous)


def with_and_without(fn):
    """(fn() without workers, fn() with 2, fn() with 2 again), each result copied."""
    results = []
    for n in (1, 2, 2):
        previous = workers.set_workers(n)
        try:
            results.append([np.array(a) for a in fn()])
        finally:
            workers.set_workers(previous)
    return results


def assert_same_values(fn):
    alone, shared, again = with_and_without(fn)
    for a, b, c in zip(alone, shared, again):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.abs(a - b).max() <= 1e-6 * np.abs(a).max()
        assert b.tobytes() == c.tobytes()  # a given setting: the same bits every call


def test_off_unless_asked(monkeypatch):
    monkeypatch.delenv("MINVERT_WORKERS", raising=False)
    assert workers.count() == 1 and not workers.active()
    monkeypatch.setenv("MINVERT_WORKERS", "3")
    assert workers.count() == 3 and workers.active() and not workers.active(object())
    for bad in ("two", "0", "-1"):
        monkeypatch.setenv("MINVERT_WORKERS", bad)
        with pytest.raises(MinvertError, match="MINVERT_WORKERS"):
            workers.count()
    with pytest.raises(MinvertError):
        workers.set_workers(0)


def test_each_runs_every_item_once_on_several_threads(two_workers):
    seen, threads = [], set()
    lock = threading.Lock()

    def record(i):
        with lock:
            seen.append(i)
            threads.add(threading.get_ident())
    workers.each(record, range(10))
    assert sorted(seen) == list(range(10)) and len(threads) == 2
    assert workers.ranges(10) == [(0, 5), (5, 10)] and workers.ranges(1) == [(0, 1)]


def test_an_error_in_a_worker_is_raised_in_the_caller_after_all_finish(two_workers):
    done = []

    def fail_on_zero(i):
        if i == 0:
            raise ValueError("piece 0")
        done.append(i)
    with pytest.raises(ValueError, match="piece 0"):
        workers.each(fail_on_zero, range(4))
    assert sorted(done) == [2, 3]  # the caller's own group ran to the end


@pytest.mark.parametrize("shape,F,k,pad", [
    ((3, 4, 60, 60), 16, 3, 1),    # a chunk per sample: the chunks shared out
    ((2, 8, 40, 40), 16, 3, 1),    # two samples side by side in one chunk
    ((1, 8, 20, 20), 12, 3, 1),    # one chunk: its output channels shared out
    ((3, 16, 9, 9), 24, 1, 0),     # 1x1: x itself, no copy
])
def test_im2col_convolution_same_values(shape, F, k, pad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((F, shape[1], k, k)).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32)

    def run():
        out, cache = fast_conv.conv2d_forward(x, w, b, 1, pad)
        dx, dw, db = fast_conv.conv2d_backward(np.ones_like(out) * 0.5 - out, cache)
        fused = fast_conv.conv2d_fused(x, w, b, 1, pad, scale=b, shift=b, relu=True,
                                       residual=out)
        return out, dx, dw, db, fused
    assert_same_values(run)


def test_winograd_same_values(monkeypatch):
    monkeypatch.setattr(winograd, "CHUNK", 300)  # several passes of the transforms to share
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 13, 11)).astype(np.float32)
    U = kernel_transform(rng.standard_normal((5, 6, 3, 3)).astype(np.float32))
    b = rng.standard_normal(5).astype(np.float32)
    dout = rng.standard_normal((2, 5, 13, 11)).astype(np.float32)
    assert_same_values(lambda: (winograd.conv3x3_winograd(x, U, b, (1, 1, 1, 1), b, True),
                              winograd.dx_winograd(dout, U, (1, 1, 1, 1))))


def test_relu_same_values():
    rng = np.random.default_rng(2)
    x, dout = (rng.standard_normal((3, 4, 50, 50)).astype(np.float32) for _ in range(2))

    def run():
        out, cache = elementwise.relu_forward(x)
        return out, elementwise.relu_backward(dout, cache)
    assert_same_values(run)


def test_a_network_pass_same_values(fast_engine):
    spec = dict(TINY["vgg"], net="vgg", label="tiny", batch=2)
    spec["pass"] = "dx"
    net = build_net(spec)
    x, target = make_inputs(spec, net)
    assert_same_values(lambda: [minvert_pass(spec, net, x, target)()])


def test_a_decoder_training_step_same_values(fast_engine):
    """Upsampling phases, dw by ranges of channels, dx by col2im, Adadelta in chunks."""
    spec = dict(TINY["decoder"], net="decoder", label="tiny", batch=2)
    spec["pass"] = "train"

    def step():
        net = build_net(spec)  # fresh weights each time: the step changes them
        x, target = make_inputs(spec, net)
        out = minvert_pass(spec, net, x, target)()
        return [out] + [p for _, p, _ in net.parameters()]
    assert_same_values(step)


@pytest.mark.parametrize("kernel,stride,pad", [(2, 2, 0), (3, 2, 1)])
def test_max_pooling_by_planes_same_bits(kernel, stride, pad, fast_engine):
    from minvert.layers.pool import MaxPool2D
    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal((2, 5, 12, 12)), 0).astype(np.float32)  # ties at 0
    layer = MaxPool2D(kernel, stride, pad)

    def run():
        out = layer.forward(x)
        return out, layer.backward(np.ones_like(out) + out)
    alone, shared, _ = with_and_without(run)
    for a, b in zip(alone, shared):
        assert a.tobytes() == b.tobytes()


def test_a_bad_setting_is_a_one_line_error_and_info_tells_the_setting(monkeypatch, capsys,
                                                                    fast_engine):
    from minvert.cli import main
    monkeypatch.setenv("MINVERT_WORKERS", "two")
    assert main(["info"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("minvert: error: MINVERT_WORKERS='two'")
    monkeypatch.setenv("MINVERT_WORKERS", "2")
    assert main(["info"]) in (0, None)
    assert "2 minvert workers" in capsys.readouterr().out
