"""minvert's CPU workers (threads.py): the helpers themselves, and every operation that
shares its work out among them computing what it computes on one thread. The suite may
run with one worker (OPENBLAS_NUM_THREADS=1, one core), so each test sets the count
itself and lowers the size thresholds, so that these small arrays are split too.
Reference: the same function with one worker, in float64 (summation orders differ where
a sum is split, so equality is to rounding, 1e-12); gradients: central differences."""
import threading

import numpy as np
import pytest

from minvert import threads
from minvert.gradcheck import numerical_vjp, rel_error
from minvert.layers import conv, im2col, upconv
from minvert.layers.activation import relu_backward, relu_forward
from minvert.layers.conv import conv2d_backward, conv2d_forward
from minvert.layers.dense import dense_backward, dense_forward
from minvert.layers.pool import maxpool2d_backward, maxpool2d_forward
from minvert.layers.upconv import upsample_conv2d_backward, upsample_conv2d_forward
from minvert.optim import Adadelta
from minvert.transform.losses import gram, style_layer_loss


def set_workers(monkeypatch, n):
    """n workers from now on, and every array worth splitting."""
    monkeypatch.setattr(threads, "_WORKERS", n)
    monkeypatch.setattr(threads, "_EXECUTOR", None)
    monkeypatch.setattr(threads, "_SETTERS", [])  # leave the real BLAS thread count alone
    monkeypatch.setattr(threads, "_SHARING", {"on": n > 1, "small": 0})
    monkeypatch.setattr(threads, "SHARE_MIN_MACS", 0)
    monkeypatch.setattr(threads, "SPLIT_MIN_MACS", 0)
    monkeypatch.setattr(threads, "SPLIT_MIN_ELEMENTS", 0)


def shared_and_alone(monkeypatch, fn, workers=3):
    """fn() with ``workers`` workers, then with one: two results to compare."""
    set_workers(monkeypatch, workers)
    shared = fn()
    set_workers(monkeypatch, 1)
    return shared, fn()


def assert_same(shared, alone):
    for s, a in zip(shared, alone):
        if a is None:
            assert s is None
        else:
            np.testing.assert_allclose(s, a, rtol=1e-12, atol=1e-12 * np.max(np.abs(a)))


def test_parts_cover_the_range_in_order():
    for n in (1, 2, 5, 7, 100):
        for count in (1, 2, 3, 8):
            pieces = threads.parts(n, count)
            assert len(pieces) == min(n, count)
            assert pieces[0][0] == 0 and pieces[-1][1] == n
            assert all(a < b for a, b in pieces)
            assert all(pieces[k][1] == pieces[k + 1][0] for k in range(len(pieces) - 1))
            sizes = [b - a for a, b in pieces]
            assert max(sizes) - min(sizes) <= 1


def test_run_returns_in_order_on_other_threads(monkeypatch):
    set_workers(monkeypatch, 3)
    seen = []
    results = threads.run([lambda k=k: (seen.append(threading.get_ident()), k * k)[1]
                           for k in range(5)])
    assert results == [0, 1, 4, 9, 16]
    assert len(set(seen)) > 1  # really shared out
    assert threading.get_ident() in seen  # the caller takes a share too


def test_run_raises_after_all_tasks_finished(monkeypatch):
    set_workers(monkeypatch, 2)
    finished = []

    def slow():
        threading.Event().wait(0.05)
        finished.append(True)

    def fails():
        raise ValueError("task failed")
    with pytest.raises(ValueError, match="task failed"):
        threads.run([slow, fails])
    assert finished == [True]
    with pytest.raises(ValueError, match="task failed"):
        threads.run([fails, slow])


def test_run_inside_a_task_runs_there(monkeypatch):
    """A task that splits its own work (nested run) must not wait for a busy pool."""
    set_workers(monkeypatch, 2)
    inner = threads.run([lambda: threads.run([lambda: 1, lambda: 2]), lambda: threads.run(
        [lambda: 3, lambda: 4])])
    assert inner == [[1, 2], [3, 4]]


def test_one_worker_runs_everything_on_the_caller(monkeypatch):
    set_workers(monkeypatch, 1)
    assert threads.run([threading.get_ident] * 3) == [threading.get_ident()] * 3
    assert not threads.worth_splitting(np, macs=1 << 40)


def test_a_gpu_array_module_is_never_split(monkeypatch):
    set_workers(monkeypatch, 4)
    assert threads.worth_splitting(np, elements=10)
    assert not threads.worth_splitting(object(), macs=1 << 40, elements=1 << 40)


def test_openblas_is_found_where_numpy_uses_it():
    config = str(np.show_config(mode="dicts")["Build Dependencies"]["blas"]).lower()
    if "openblas" not in config:
        pytest.skip("NumPy's BLAS is not OpenBLAS here")
    try:
        open("/proc/self/maps").close()
    except OSError:
        pytest.skip("no /proc/self/maps (not Linux)")
    assert threads._openblas_thread_setters()


@pytest.mark.parametrize("shape", [(7, 5, 9), (9, 5, 7), (1, 4, 3)])
def test_matmul_rows_or_columns(monkeypatch, shape):
    M, K, P = shape
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((M, K)), rng.standard_normal((K, P))
    set_workers(monkeypatch, 3)
    np.testing.assert_allclose(threads.matmul(a, b), a @ b, rtol=1e-13)
    out = np.empty((M, P))
    assert threads.matmul(a, b.copy(), out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-13)
    np.testing.assert_allclose(threads.matmul(a.T.copy().T, b), a @ b, rtol=1e-13)


# every split path of the convolution: chunks shared out (SHARE_COLUMNS 1 makes enough
# of them), filters shared out (few large chunks), 1x1 views of x, strides (col2im)
CONVS = [((2, 3, 9, 8), (4, 3, 3, 3), 1, 1), ((1, 4, 6, 6), (5, 4, 3, 3), 1, (0, 1, 2, 1)),
         ((3, 6, 5, 5), (4, 6, 1, 1), 1, 0), ((2, 3, 9, 9), (4, 3, 3, 3), 2, 1),
         ((2, 4, 8, 7), (3, 4, 1, 1), 2, 0), ((1, 3, 11, 11), (2, 3, 7, 7), 2, 3)]


@pytest.mark.parametrize("share_columns", [1, 1 << 20])
@pytest.mark.parametrize("xs, ws, stride, pad", CONVS)
def test_conv_shared_equals_alone(monkeypatch, share_columns, xs, ws, stride, pad):
    monkeypatch.setattr(im2col, "SHARE_COLUMNS", share_columns)
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    scale = rng.uniform(0.5, 2, ws[0])

    def passes():
        out, cache = conv2d_forward(x, w, b, stride, pad)
        dout = np.random.default_rng(2).standard_normal(out.shape)
        fused = conv._forward(x, w, b, stride, pad, scale, True)[0]
        return (out, fused) + conv2d_backward(dout, cache)
    assert_same(*shared_and_alone(monkeypatch, passes))


def test_winograd_shared_equals_alone(monkeypatch):
    monkeypatch.setattr(conv, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(conv, "WINOGRAD_MIN_SIZE", 1)
    monkeypatch.setattr(conv, "WINOGRAD_MIN_PIXELS", 1)
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 5, 7, 6)), rng.standard_normal((6, 5, 3, 3)), \
        rng.standard_normal(6)

    def passes():
        out, cache = conv2d_forward(x, w, b, 1, 1)
        assert "U" in cache  # the Winograd path ran
        return out, conv2d_backward(rng_dout(out), cache)[0]
    assert_same(*shared_and_alone(monkeypatch, passes))


def rng_dout(out):
    return np.random.default_rng(4).standard_normal(out.shape)


def test_elementwise_layers_shared_equal_alone(monkeypatch):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 8, 6))
    x[0, 0, :2, :2] = 1.5  # a tie inside one pooling window: the first one wins either way

    def passes():
        r, rc = relu_forward(x)
        p, pc = maxpool2d_forward(x, 2)
        q, qc = maxpool2d_forward(x, 3, 2, 1)  # overlapping windows, padding
        return (r, relu_backward(rng_dout(r), rc), p, maxpool2d_backward(rng_dout(p), pc),
                q, maxpool2d_backward(rng_dout(q), qc))
    assert_same(*shared_and_alone(monkeypatch, passes))


def test_dense_upconv_optimizer_and_gram_shared_equal_alone(monkeypatch):
    rng = np.random.default_rng(6)
    x, w, b = rng.standard_normal((3, 7)), rng.standard_normal((5, 7)), rng.standard_normal(5)
    xu, wu, bu = rng.standard_normal((2, 4, 5, 5)), rng.standard_normal((3, 4, 3, 3)), \
        rng.standard_normal(3)
    F, A = rng.standard_normal((1, 4, 6, 5)), rng.standard_normal((4, 4))
    p0, g = rng.standard_normal((40, 30)), rng.standard_normal((40, 30))
    monkeypatch.setattr(upconv, "FUSE_MIN_SIZE", 1)
    monkeypatch.setattr("minvert.optim.UPDATE_CHUNK", 64)  # several chunks per worker

    def passes():
        out, cache = dense_forward(x, w, b)
        up, ucache = upsample_conv2d_forward(xu, wu, bu, 1)
        opt, p = Adadelta(), p0.copy()
        for _ in range(2):
            opt.step([("p", p, g)])
        return (out,) + dense_backward(rng_dout(out), cache) + (up,) + \
            upsample_conv2d_backward(rng_dout(up), ucache) + (p, gram(F)) + \
            style_layer_loss(F, A)
    assert_same(*shared_and_alone(monkeypatch, passes))


@pytest.mark.parametrize("xs, ws, stride, pad", CONVS[:4])
def test_conv_gradients_through_the_shared_paths(monkeypatch, xs, ws, stride, pad):
    set_workers(monkeypatch, 3)
    monkeypatch.setattr(im2col, "SHARE_COLUMNS", 1)
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    out, cache = conv2d_forward(x, w, b, stride, pad)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv2d_backward(dout, cache)
    f = lambda: conv2d_forward(x, w, b, stride, pad)[0]  # noqa: E731
    assert rel_error(dx, numerical_vjp(f, x, dout)) < 1e-7
    assert rel_error(dw, numerical_vjp(f, w, dout)) < 1e-7
    assert rel_error(db, numerical_vjp(f, b, dout)) < 1e-7


def test_sharing_starts_with_a_large_product_and_ends_after_small_ones(monkeypatch):
    set_workers(monkeypatch, 2)
    calls = []
    monkeypatch.setattr(threads, "_SETTERS", [calls.append])
    monkeypatch.setattr(threads, "_SHARING", {"on": False, "small": 0})
    monkeypatch.setattr(threads, "SHARE_MIN_MACS", 1000)
    assert not threads.sharing(999) and calls == []  # small products: BLAS' own threads
    assert threads.sharing(1000) and calls == [1]  # a large one: BLAS held at one thread
    for _ in range(threads.SHARE_HOLD - 2):
        assert threads.sharing(10)
    assert threads.sharing(0) and threads.worth_splitting(np, elements=1 << 30)  # elementwise
    assert threads.sharing(5000) and calls == [1]  # a large one starts the count again
    for _ in range(threads.SHARE_HOLD - 1):
        assert threads.sharing(10)
    assert not threads.sharing(10) and calls == [1, 2]  # SHARE_HOLD small ones: BLAS' threads
    assert not threads.worth_splitting(np, elements=1 << 30)
    assert threads.run([lambda: threads.sharing(1 << 40)] * 2) == [False, False]  # in a task
    assert threads.sharing(5000) and calls == [1, 2, 1]
    threads.stop_sharing()  # BLAS' threads back for the caller's own products
    assert calls == [1, 2, 1, 2] and not threads.sharing(10)


def test_info_says_how_the_cores_are_used(monkeypatch, capsys):
    from minvert.cli import main
    set_workers(monkeypatch, 2)
    main(["info"])
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("cpu")]
    assert len(line) == 1 and "shared out among 2 minvert workers" in line[0]
    set_workers(monkeypatch, 1)
    main(["info"])
    assert "workers off" in capsys.readouterr().out


def test_device_arrays_are_never_split(monkeypatch, strict_cupy):
    """On the (strict stand-in) GPU every helper makes one call on the device arrays: the
    stand-in refuses any host array mixed in, and a split would index with host slices
    into NumPy's matmul."""
    set_workers(monkeypatch, 3)
    cp = strict_cupy
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((6, 5)), rng.standard_normal((5, 7))
    da, db, dout = cp.asarray(a), cp.asarray(b), cp.empty((6, 7))
    threads.matmul(da, db, out=dout)
    np.testing.assert_allclose(cp.asnumpy(dout), a @ b, rtol=1e-13)
    np.testing.assert_allclose(cp.asnumpy(threads.matmul(da, db)), a @ b, rtol=1e-13)
    x = cp.asarray(rng.standard_normal((2, 3, 4, 4)))
    out, _ = relu_forward(x)
    np.testing.assert_allclose(cp.asnumpy(out), np.maximum(cp.asnumpy(x), 0))
    assert threads.split(lambda i, j: (i, j), 10, cp, macs=1 << 40) == [(0, 10)]


def test_no_workers_when_numpy_uses_another_blas(monkeypatch):
    """MKL's threads cannot be held from here: minvert must not add its own on top."""
    config = {"Build Dependencies": {"blas": {"name": "mkl-sdl"}}}
    monkeypatch.setattr(np, "show_config", lambda mode=None: config)
    assert threads._openblas_thread_setters() == []


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this system")
def test_a_forked_child_gets_workers_of_its_own(monkeypatch):
    """multiprocessing forks on Linux: the parent's worker threads do not exist in the
    child, so a split there must start new ones instead of waiting for them forever."""
    import os
    set_workers(monkeypatch, 2)
    assert threads.run([lambda: 1, lambda: 2]) == [1, 2]  # the parent's workers exist
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's cleanup
        try:
            ok = threads.run([threading.get_ident, threading.get_ident])
            os.write(write, b"ok" if ok[0] != ok[1] else b"same thread")
        finally:
            os._exit(0)
    os.close(write)
    try:
        import select
        ready, _, _ = select.select([read], [], [], 30)
        answer = os.read(read, 100) if ready else b"the child hung"
    finally:
        os.close(read)
        os.waitpid(pid, 0) if answer != b"the child hung" else os.kill(pid, 9)
    assert answer == b"ok"
