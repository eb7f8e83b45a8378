"""The gradient checker itself: numerical_vjp on functions with known derivatives, and
check_layers, which must pass on the real layers and FAIL, row by row, when a wrong
backward is planted."""
import numpy as np
import pytest

from minvert import layers
from minvert.gradcheck import check_layers, numerical_vjp, rel_error

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


def test_rel_error():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0
    assert np.isclose(rel_error(np.array([1.0]), np.array([3.0])), 0.5)
    with pytest.raises(ValueError):
        rel_error(np.zeros(2), np.zeros(3))


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
