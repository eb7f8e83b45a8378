"""The gradient checker itself: numerical_vjp on functions with known derivatives, and
check_layers, which must pass on the real layers and FAIL, row by row, when a wrong
backward is planted."""
import numpy as np
import pytest

from minvert import layers
from minvert.gradcheck import numerical_vjp, rel_error, where_wrong
from minvert.gradcheck_catalogue import check_layers

FAMILIES = ["Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool", "ReLU", "LeakyReLU",
            "Sigmoid", "Dense", "Flatten", "Reshape", "ZeroPad2D", "UpsampleNearest",
            "BatchNorm2D training", "BatchNorm2D inference", "residual add",
            "softmax cross-entropy", "binary cross-entropy", "BCE with logits", "MSE"]


@pytest.fixture(scope="module")
def table():
    lines = []
    rows = check_layers(out=lines.append)
    return rows, lines


def test_numerical_vjp_of_known_function():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    dout = rng.standard_normal((3, 4))
    keep = x.copy()
    grad = numerical_vjp(lambda: np.sin(x) * x, x, dout)
    assert rel_error(grad, dout * (np.cos(x) * x + np.sin(x))) < 1e-8
    np.testing.assert_array_equal(x, keep)  # restored


def test_numerical_vjp_handles_views_and_rejects_float32():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 2))
    dout = rng.standard_normal((2, 6))
    grad = numerical_vjp(lambda: x.reshape(2, 6), x, dout)  # f returns a view of x
    assert rel_error(grad, dout.reshape(x.shape)) < 1e-9
    with pytest.raises(TypeError):
        numerical_vjp(lambda: x, x.astype(np.float32), dout)


def test_rel_error_is_norm_based():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0
    assert np.isclose(rel_error(np.array([1.0]), np.array([3.0])), 0.5)
    # ||(0, 1e-9)|| / (||(1, 1e-9)|| + ||(1, 0)||): a wrong near-zero element weighs by its size
    assert rel_error(np.array([1.0, 1e-9]), np.array([1.0, 0.0])) < 1e-9
    assert rel_error(np.zeros(3), np.zeros(3)) == 0
    assert rel_error(np.zeros(3), np.ones(3)) == 1
    with pytest.raises(ValueError):
        rel_error(np.zeros(2), np.zeros(3))


def test_where_wrong_names_the_worst_element_and_the_slice():
    n = np.arange(24.0).reshape(2, 3, 4) + 1
    a = n.copy()
    a[1, 2, :] = 0  # one forgotten row
    text = where_wrong(a, n, "dx")
    assert "worst at dx[1, 2, 3]: analytic 0, numerical 24" in text
    assert "4 of 24 elements differ, all in dx[1, 2, :]" in text


def test_every_seed_from_0_to_29_passes_on_correct_layers():
    """The pass rule never fails correct code (the element-wise rule failed 6 of these)."""
    for seed in range(30):
        bad = [r for r in check_layers(out=None, seed=seed) if not r.ok]
        assert not bad, (seed, bad)


def test_every_layer_passes_and_is_listed(table):
    rows, lines = table
    assert all(r.ok for r in rows), [r for r in rows if not r.ok]
    names = " ".join(r.layer for r in rows)
    for family in FAMILIES:
        assert family in names, family
    assert {(r.wrt) for r in rows if r.layer.startswith("Conv2D 3x3/1")} == {"x", "w", "b"}
    assert {r.wrt for r in rows if r.layer == "BatchNorm2D training"} == {"x", "gamma", "beta"}
    assert lines[0].split("|")[0].strip() == "layer" and "rel. error" in lines[0]
    assert lines[-1].startswith(f"{len(rows)} of {len(rows)} checks pass")


@pytest.mark.parametrize("plant,layer", [
    ("relu", "ReLU"),
    ("maxpool", "MaxPool2D 3x3/2 pad 1"),
    ("sigmoid", "Sigmoid"),
    ("batchnorm_train", "BatchNorm2D training"),
    ("softmax_ce", "softmax cross-entropy (index)"),
    ("dense", "Dense 12->5"),          # generic plant: every gradient 0.1 % off
    ("upsample", "UpsampleNearest 2"),
])
def test_planted_bug_is_reported(plant, layer):
    lines = []
    rows = check_layers(out=lines.append, plant=plant)
    failed = {r.layer for r in rows if not r.ok}
    assert failed == {layer}, failed
    assert lines[0].startswith(f"planted bug in {layer}:")
    assert "FAIL" in lines[-1]
    where = [r.where for r in rows if not r.ok]
    assert where and all(w.startswith("worst at d") and "elements differ" in w for w in where)
    if plant == "batchnorm_train":  # only dx is wrong; gamma and beta still pass
        assert {r.wrt for r in rows if not r.ok} == {"x"}


def test_unknown_plant_is_refused():
    with pytest.raises(ValueError, match="relu"):
        check_layers(out=None, plant="nonsense")


def test_crashing_backward_is_a_failed_row(monkeypatch):
    def broken(self, dout):
        raise RuntimeError("boom")
    monkeypatch.setattr(layers.Sigmoid, "backward", broken)
    lines = []
    rows = check_layers(out=lines.append)
    bad = [r for r in rows if not r.ok]
    assert [r.layer for r in bad] == ["Sigmoid"] and np.isnan(bad[0].error)
    assert any("boom" in line for line in lines)


OWN_LAYERS = '''
import numpy as np
def dense_forward(x, w, b, scale=1.0):
    return scale * (x @ w.T + b), (x, w, scale)
def dense_backward(dout, cache):
    x, w, scale = cache
    return scale * dout @ w, scale * dout.T @ x, scale * dout.sum(0)
def square_forward(x):
    return x * x, x
def square_backward(dout, x):
    g = 2 * x * dout
    g[:, 1] = 0          # a bug confined to channel 1
    return g
class Cube:
    def forward(self, x):
        self.x = x
        return x ** 3
    def backward(self, dout):
        return 3 * self.x ** 2 * dout
'''


def test_gradcheck_of_a_students_own_layer(tmp_path, capsys):
    from minvert.cli import main
    path = tmp_path / "mine.py"
    path.write_text(OWN_LAYERS)
    assert main(["gradcheck", f"{path}:dense", "--shape", "x=4,6", "w=3,6", "b=3"]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 checks pass" in out and "mine.py:dense | w" in out
    assert main(["gradcheck", f"{path}:Cube", "--seed", "5"]) == 0
    assert main(["gradcheck", f"{path}:square_forward", "--shape", "x=2,3,4"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "all in dx[:, 1, :]" in out
    assert main(["gradcheck", f"{path}:dense"]) == 1  # w and b need shapes: one-line error
    assert "give the shape of each with --shape" in capsys.readouterr().err
    assert main(["gradcheck", f"{path}:nothing"]) == 1
    assert "defines neither" in capsys.readouterr().err


def test_gradcheck_of_a_crashing_layer_is_one_line(tmp_path, capsys):
    from minvert.cli import main
    path = tmp_path / "crash.py"
    path.write_text("def boom_forward(x):\n    return x, x\n\n\ndef boom_backward(dout, x):\n"
                    "    return dout / undefined_name\n")
    assert main(["gradcheck", f"{path}:boom"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "NameError" in err and "line 6" in err
