"""Student answers the checker once let through (issue 24), kept as files under
tests/fixtures/exercises/: each wrong one must FAIL on every seed of a sweep with the hint that
names its mistake and with no hint that names another; the right ones, usual and unusual, PASS
on the same seeds. Where a full check per seed is slow, the sweep is short and a second test
shows on 300 seeds that the case which exposes the mistake is built in by construction."""
from pathlib import Path

import numpy as np
import pytest

from minvert.exercises import EXERCISES, check_file
from minvert.exercises.pooling import maxpool
from minvert.gradcheck import rel_error
from minvert.layers import maxpool2d_backward, maxpool2d_forward
from minvert.exercises.studentfile import load

FIXTURES = Path(__file__).parent / "fixtures" / "exercises"
SOLUTIONS = Path(__file__).resolve().parents[1] / "tutorials" / "exercises" / "solutions"
ALL, SOME, FEW = range(300), range(12), range(4)  # FEW: the verdict does not use the draw at all
FORMULA = ("H // stride", "H_out = (H - size)")  # what a hint on the output size would say


def run(path, seed):
    lines = []
    ok = check_file(path, out=lines.append, seed=seed)
    return ok, " ".join(" ".join(lines).split())


@pytest.mark.parametrize("name, seeds, says, never", [
    ("ex01_float32_backward.py", ALL, "the dtype is checked before the values",
     ["yours", "constant factor", "float64-exact"]),
    ("ex01_float32_cast_back.py", ALL, "not float64-exact", ["constant factor", "times 1"]),
    ("ex15_no_max_shift.py", ALL, "subtract the largest logit before exp", []),
    ("ex09_loops_no_im2col.py", FEW, "not written yet (im2col raises NotImplementedError)", []),
    ("ex05_fancy_index.py", SOME, "never dx[idx] += g with an index array", list(FORMULA)),
    ("ex05_reshape_tiles.py", SOME, "raised ValueError", list(FORMULA)),
    ("ex05_step_by_size.py", SOME, "at oh * stride, not every size elements", list(FORMULA)),
    ("ex11_made_up_losses.py", FEW, "no Dense layer of minvert ran", []),
    ("ex11_lookup_table.py", FEW, "no Dense layer of minvert ran", []),
    ("ex11_loss_after_update.py", SOME, "that is the loss after this step's update",
     ["ReLU", "never changed"]),
    ("ex11_bias_never_updated.py", SOME, "b never changed: update every parameter",
     ["ReLU", "after this step's update", "the parameters never changed"]),
    ("ex11_skip_relu_backward.py", SOME, "skipped the ReLU's backward",
     ["never changed", "after this step's update"]),
    ("ex11_network_then_made_up.py", SOME, "recorded before the update",
     ["after this step's update", "ReLU"]),
])
def test_wrong_answers_fail_on_every_seed_with_their_hint(name, seeds, says, never):
    for seed in seeds:
        ok, text = run(FIXTURES / "wrong" / name, seed)
        assert not ok and says in text, (seed, text)
        assert not [w for w in never if w in text], (seed, text)


@pytest.mark.parametrize("path, seeds", [
    (SOLUTIONS / "ex01_dense.py", ALL), (SOLUTIONS / "ex15_objective.py", ALL),
    (SOLUTIONS / "ex05_maxpool.py", SOME), (SOLUTIONS / "ex09_im2col_conv.py", FEW),
    (SOLUTIONS / "ex11_overfit.py", SOME), (FIXTURES / "right" / "ex11_update_as_you_go.py", SOME),
], ids=lambda p: getattr(p, "stem", ""))
def test_right_answers_pass_on_the_same_seeds(path, seeds):
    for seed in seeds:
        ok, text = run(path, seed)
        assert ok, (seed, text)


def test_maxpool_overlap_case_has_a_double_winner_on_every_seed():
    """In every (n, c) slice of the overlap case one element wins two windows, so an answer
    that applies a repeated index once is wrong there whatever the seed."""
    wrong, error = load(FIXTURES / "wrong" / "ex05_fancy_index.py")
    assert error is None
    key = list(EXERCISES).index("maxpool_backward")
    for seed in ALL:
        case = maxpool().cases(np.random.default_rng([seed, key]))[-1]
        x, size, stride = case.args["x"], case.kwargs["size"], case.kwargs["stride"]
        assert (size, stride) == (3, 2)
        out, cache = maxpool2d_forward(x, size, stride)
        wins = maxpool2d_backward(np.ones_like(out), cache)  # how many windows each element won
        assert (wins.max(axis=(2, 3)) >= 2).all(), seed
        assert len(np.unique(x)) == x.size  # still no ties
        dout = np.random.default_rng(seed).standard_normal(out.shape)
        fancy = wrong.maxpool_backward(dout, (x, size, stride))
        assert rel_error(fancy, maxpool2d_backward(dout, cache)) > 1e-3, seed


def _relu(tmp_path, backward):
    path = tmp_path / "ex02_relu.py"
    path.write_text("import numpy as np\n\n\ndef relu_forward(x):\n    out = np.maximum(x, 0)\n"
                    "    cache = x\n    return out, cache\n\n\ndef relu_backward(dout, cache):\n"
                    f"    x = cache\n    return {backward}\n")
    return path


@pytest.mark.parametrize("backward, says, never", [
    ("dout * (x > 0) * (1 + 1e-5)", "not float64-exact", ["constant factor"]),
    ("dout * (x > 0) * (1 + 1e-8)", "not float64-exact", ["constant factor"]),
    ("2 * dout * (x > 0)", "the correct gradient times 2: a constant factor is off",
     ["float64-exact"]),
    ("(dout * (x > 0)).astype(np.float32)", "dx is float32 for float64 input",
     ["yours", "constant factor", "float64-exact"]),
    ("dout * (x > 0) + 1e-3 * (x > 0.5)", "no common mistake recognised",
     ["constant factor", "float64-exact", "dtype"]),
])
def test_precision_hints_name_only_what_the_answer_shows(tmp_path, backward, says, never):
    for seed in SOME:
        ok, text = run(_relu(tmp_path, backward), seed)
        assert not ok and says in text, (seed, text)
        assert not [w for w in never if w in text], (seed, text)


def test_output_size_hint_only_for_an_output_size_mistake(tmp_path):
    """avgpool's forward: H // stride gets the output-size hint; the right sizes in another
    order get the transpose hint, and not the formula."""
    src = (SOLUTIONS / "ex06_avgpool.py").read_text()
    old = "H_out, W_out = (H - size) // stride + 1, (W - size) // stride + 1"
    assert old in src
    cases = [(src.replace(old, "H_out, W_out = H // stride, W // stride"), "not H // stride", []),
             (src.replace("    cache = (x.shape, size, stride)",
                          "    out = out.transpose(0, 1, 3, 2)\n    cache = (x.shape, size, stride)"),
              "the right sizes in another order", list(FORMULA))]
    for source, says, never in cases:
        path = tmp_path / "ex06_avgpool.py"
        path.write_text(source)
        for seed in SOME:
            ok, text = run(path, seed)
            assert not ok and says in text, (seed, text)
            assert not [w for w in never if w in text], (seed, text)


@pytest.mark.parametrize("name, edits", [
    ("ex01_dense.py", [("dx = dout @ w", "dx = np.einsum('no,oi->ni', dout, w)"),
                       ("dw = dout.T @ x", "dw = sum(np.outer(d, r) for d, r in zip(dout, x))")]),
    ("ex10_batchnorm.py", [("dx = dx_hat * inv_std + dvar * 2 * xc / M + dmean / M",
                            "dx = inv_std * (dx_hat - dx_hat.mean(axis=axes, keepdims=True) - x_hat"
                            " * (dx_hat * x_hat).mean(axis=axes, keepdims=True))")]),
    ("ex04_softmax_ce.py", [("return dloss * (p - onehot) / N",
                             "g = np.array(p, dtype=np.float64)\n    for n in range(N):\n"
                             "        g[n, y[n]] -= 1.0\n    return g * (dloss / N)")]),
])
def test_right_answers_by_other_formulas_pass(tmp_path, name, edits):
    """Other float64 formulas for the same gradient agree with minvert's to ~1e-15, far inside
    the 1e-9 the checker asks of them."""
    src = (SOLUTIONS / name).read_text()
    for old, new in edits:
        assert old in src, old
        src = src.replace(old, new)
    path = tmp_path / name
    path.write_text(src)
    for seed in SOME:
        ok, text = run(path, seed)
        assert ok, (seed, text)


def test_watching_ex11_leaves_the_layer_classes_as_they_were(tmp_path):
    from minvert.layers import Dense, ReLU
    before = [(cls, cls.__dict__.get(n)) for cls in (Dense, ReLU) for n in ("forward", "backward")]
    path = tmp_path / "ex11_overfit.py"
    path.write_text("import numpy as np\nfrom minvert.layers import Dense\n\n\n"
                    "def overfit(x, y, steps=300, lr=0.5, seed=0):\n"
                    "    Dense(x.shape[1], 4, dtype=np.float64).forward(x)\n"
                    "    raise RuntimeError('stop')\n")
    ok, text = run(path, 0)
    assert not ok and "RuntimeError" in text
    assert [(cls, cls.__dict__.get(n)) for cls in (Dense, ReLU)
            for n in ("forward", "backward")] == before
