"""Optimizers against hand-unrolled NumPy loops, written out of place as the papers do."""
import numpy as np
import pytest

from minvert.backend import gpu_available
from minvert.errors import MinvertError, ShapeError
from minvert.optim import SGD, Adadelta, Adam

STEPS = 7


# -- oracles: one update per call, out of place ---------------------------------

def sgd_oracle(p, g, s, lr, momentum=0.0, nesterov=False):
    if momentum == 0:
        return p - lr * g, s
    v = momentum * s.get("v", np.zeros_like(p)) + g
    s["v"] = v
    return (p - lr * (g + momentum * v) if nesterov else p - lr * v), s


def adam_oracle(p, g, s, t, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    m = b1 * s.get("m", np.zeros_like(p)) + (1 - b1) * g
    v = b2 * s.get("v", np.zeros_like(p)) + (1 - b2) * (g * g)
    s["m"], s["v"] = m, v
    m_hat = m / (1 - b1 ** t)
    v_hat = v / (1 - b2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), s


def adadelta_oracle(p, g, s, lr=1.0, rho=0.95, eps=1e-8):
    # Keras get_updates: new accumulator, *old* delta accumulator, update accumulated before lr
    a = rho * s.get("a", np.zeros_like(p)) + (1 - rho) * (g * g)
    update = g * np.sqrt(s.get("d", np.zeros_like(p)) + eps) / np.sqrt(a + eps)
    s["a"], s["d"] = a, rho * s.get("d", np.zeros_like(p)) + (1 - rho) * (update * update)
    return p - lr * update, s


CASES = [
    (lambda: SGD(lr=0.1), lambda p, g, s, t: sgd_oracle(p, g, s, 0.1)),
    (lambda: SGD(lr=0.05, momentum=0.9), lambda p, g, s, t: sgd_oracle(p, g, s, 0.05, 0.9)),
    (lambda: SGD(lr=0.05, momentum=0.9, nesterov=True),
     lambda p, g, s, t: sgd_oracle(p, g, s, 0.05, 0.9, True)),
    (lambda: Adam(), lambda p, g, s, t: adam_oracle(p, g, s, t)),
    (lambda: Adam(lr=0.02, beta1=0.8, beta2=0.99, eps=1e-6),
     lambda p, g, s, t: adam_oracle(p, g, s, t, 0.02, 0.8, 0.99, 1e-6)),
    (lambda: Adadelta(), lambda p, g, s, t: adadelta_oracle(p, g, s)),
    (lambda: Adadelta(lr=0.5, rho=0.9, eps=1e-6),
     lambda p, g, s, t: adadelta_oracle(p, g, s, 0.5, 0.9, 1e-6)),
]
IDS = ["sgd", "momentum", "nesterov", "adam", "adam-custom", "adadelta", "adadelta-lr0.5"]


def quadratic(rng, n=5):
    q = rng.standard_normal((n, n))
    return q @ q.T + n * np.eye(n), rng.standard_normal(n)  # SPD A, b


@pytest.mark.parametrize("make, oracle", CASES, ids=IDS)
def test_matches_loop_on_quadratic(make, oracle):
    rng = np.random.default_rng(0)
    A, b = quadratic(rng)
    x = rng.standard_normal(5)
    w = rng.standard_normal((2, 3))  # a second parameter with its own (simple) quadratic
    x_ref, w_ref, s_x, s_w = x.copy(), w.copy(), {}, {}
    opt = make()
    for t in range(1, STEPS + 1):
        opt.step([("x", x, A @ x - b), ("w", w, 2 * w)])
        x_ref, s_x = oracle(x_ref, A @ x_ref - b, s_x, t)
        w_ref, s_w = oracle(w_ref, 2 * w_ref, s_w, t)
        np.testing.assert_array_equal(x, x_ref)
        np.testing.assert_array_equal(w, w_ref)
    assert opt.t == STEPS


@pytest.mark.parametrize("make, oracle", CASES, ids=IDS)
def test_matches_loop_on_random_gradients(make, oracle):
    rng = np.random.default_rng(1)
    p = rng.standard_normal((3, 4))
    grads = rng.standard_normal((STEPS, 3, 4)) * np.logspace(-3, 1, STEPS)[:, None, None]
    ref, s = p.copy(), {}
    opt = make()
    for t in range(1, STEPS + 1):
        opt.step([("p", p, grads[t - 1])])
        ref, s = oracle(ref, grads[t - 1], s, t)
    np.testing.assert_array_equal(p, ref)


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.05, momentum=0.9), lambda: Adam(lr=0.1),
                                  lambda: Adadelta()], ids=["momentum", "adam", "adadelta"])
def test_decreases_quadratic(make):
    rng = np.random.default_rng(2)
    A, b = quadratic(rng)
    x = np.zeros(5)
    loss = lambda: 0.5 * x @ A @ x - b @ x  # noqa: E731
    start, opt = loss(), make()
    for _ in range(50):
        opt.step([("x", x, A @ x - b)])
    assert loss() < start


def test_adadelta_first_step_closed_form():
    # zero accumulators: step = g * sqrt(eps) / sqrt((1 - rho) g^2 + eps), scaled by lr
    for lr, eps in [(1.0, 1e-8), (0.5, 1e-6)]:
        p = np.array([0.0, 0.0])
        g = np.array([1.0, -3.0])
        Adadelta(lr=lr, eps=eps).step([("p", p, g)])
        np.testing.assert_allclose(p, -lr * g * np.sqrt(eps) / np.sqrt(0.05 * g * g + eps), rtol=1e-14)


def test_adadelta_defaults_are_tf_keras():
    opt = Adadelta()
    assert (opt.lr, opt.rho, opt.eps) == (1.0, 0.95, 1e-8)  # tf.keras 2.1.2-tf (TF 1.5.0)
    assert (Adam().lr, Adam().beta1, Adam().beta2, Adam().eps) == (1e-3, 0.9, 0.999, 1e-8)


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.05, momentum=0.9, nesterov=True), lambda: Adam(lr=0.1),
                                  lambda: Adadelta(lr=0.7)], ids=["nesterov", "adam", "adadelta"])
def test_state_dict_resumes_bit_identically(make):
    rng = np.random.default_rng(3)
    grads = rng.standard_normal((8, 2, 3)).astype(np.float32)
    p = rng.standard_normal((2, 3)).astype(np.float32)
    opt = make()
    for g in grads[:4]:
        opt.step([("layer.w", p, g)])
    saved, p_saved = opt.state_dict(), p.copy()
    for g in grads[4:]:
        opt.step([("layer.w", p, g)])
    # the saved dict is a snapshot: later steps must not have changed it
    resumed = make()
    resumed.lr = 123.0  # overwritten by load_state_dict (hyper-parameters travel with the state)
    resumed.load_state_dict(saved)
    assert resumed.t == 4 and resumed.lr == opt.lr
    q = p_saved.copy()
    for g in grads[4:]:
        resumed.step([("layer.w", q, g)])
    np.testing.assert_array_equal(q, p)
    assert q.dtype == np.float32
    assert all(v.dtype == np.float32 for v in resumed.state_dict().values() if hasattr(v, "dtype"))


def test_state_dict_layout():
    p = np.ones(3)
    opt = Adadelta()
    opt.step([("conv1.w", p, np.ones(3))])
    d = opt.state_dict()
    assert d["type"] == "Adadelta" and d["t"] == 1 and d["rho"] == 0.95
    assert sorted(k for k in d if "/" in k) == ["accum_delta/conv1.w", "accum_grad/conv1.w"]


def test_load_state_dict_errors():
    with pytest.raises(MinvertError, match="Adam"):
        Adadelta().load_state_dict(Adam().state_dict())
    bad = Adadelta().state_dict()
    bad["m/x"] = np.zeros(2)
    with pytest.raises(MinvertError, match="unknown entry"):
        Adadelta().load_state_dict(bad)
    opt = Adam()
    opt.load_state_dict({"type": b"Adam", "t": np.int64(2), "m/x": np.zeros(4), "v/x": np.zeros(4)})
    with pytest.raises(ShapeError, match="another net"):
        opt.step([("x", np.zeros(3), np.ones(3))])


def test_none_gradient_skipped_and_shape_checked():
    p = np.ones(3)
    opt = SGD(lr=0.1, momentum=0.9)
    opt.step([("p", p, None)])
    np.testing.assert_array_equal(p, np.ones(3))
    assert opt.state["velocity"] == {}
    with pytest.raises(ShapeError, match="'p'"):
        opt.step([("p", p, np.ones(4))])
    with pytest.raises(MinvertError, match="momentum"):
        SGD(nesterov=True)


@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device")
def test_cupy_matches_numpy_and_resumes_from_numpy_state():
    import cupy as cp
    rng = np.random.default_rng(4)
    grads = rng.standard_normal((6, 4, 5))
    for make in (lambda: SGD(lr=0.1, momentum=0.9), Adam, Adadelta):
        p_np = rng.standard_normal((4, 5))
        p_cp = cp.asarray(p_np)
        o_np, o_cp = make(), make()
        for g in grads[:3]:
            o_np.step([("p", p_np, g)])
            o_cp.step([("p", p_cp, cp.asarray(g))])
        # elementwise updates, no sums: a handful of roundings (sqrt, division within 1 ulp
        # on CUDA) per step, 3 steps: ~1e-15 relative; 1e-12 leaves a wide margin
        np.testing.assert_allclose(cp.asnumpy(p_cp), p_np, rtol=1e-12, atol=1e-14)
        o_cp2 = make()
        o_cp2.load_state_dict(o_np.state_dict())  # NumPy state, CuPy parameter
        p_cp2 = cp.asarray(p_np)
        for g in grads[3:]:
            o_np.step([("p", p_np, g)])
            o_cp2.step([("p", p_cp2, cp.asarray(g))])
        np.testing.assert_allclose(cp.asnumpy(p_cp2), p_np, rtol=1e-12, atol=1e-14)
        assert isinstance(o_cp2.state[o_cp2.slots[0]]["p"], cp.ndarray)


@pytest.mark.parametrize("engine", ["fast_engine", "readable_engine"])
@pytest.mark.parametrize("contiguous", [True, False])
def test_adadelta_in_chunks_is_the_same_update(monkeypatch, contiguous, engine, request):
    """The fast engine updates large parameters UPDATE_CHUNK values at a time (small
    temporaries); a non-contiguous gradient takes the whole-array path. The readable
    formulas and the fast update: the same bits as the oracle."""
    request.getfixturevalue(engine)
    from minvert.layers.fast import elementwise
    monkeypatch.setattr(elementwise, "UPDATE_CHUNK", 5)
    rng = np.random.default_rng(2)
    p = rng.standard_normal((3, 4))
    grads = rng.standard_normal((STEPS, 4, 3)).transpose(0, 2, 1)  # (STEPS, 3, 4) views
    ref, s, opt = p.copy(), {}, Adadelta()
    for t in range(STEPS):
        g = np.ascontiguousarray(grads[t]) if contiguous else grads[t]
        opt.step([("p", p, g)])
        ref, s = adadelta_oracle(ref, grads[t], s)
    np.testing.assert_array_equal(p, ref)


def test_fast_adadelta_equals_readable_on_the_strict_standin(strict_cupy):
    from minvert.layers import fast
    rng = np.random.default_rng(3)
    params = {on: strict_cupy.asarray(rng.standard_normal((6, 5))) for on in (True, False)}
    params[False][...] = params[True]
    opts = {on: Adadelta(lr=0.5) for on in (True, False)}
    for _ in range(STEPS):
        g = strict_cupy.asarray(rng.standard_normal((6, 5)))
        for on in (True, False):
            previous = fast.set_enabled(on)
            try:
                opts[on].step([("p", params[on], g)])
            finally:
                fast.set_enabled(previous)
    assert isinstance(params[True], strict_cupy.ndarray)
    assert np.array_equal(strict_cupy.asnumpy(params[True]), strict_cupy.asnumpy(params[False]))
