"""The exercise checker (minvert/exercises.py): it passes the reference solutions, names the
classic mistakes in broken copies of them, and survives files that do not even run."""
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from minvert import exercises
from minvert.cli import main
from minvert.exercises import EXERCISES, check_file

ROOT = Path(__file__).resolve().parents[1] / "tutorials" / "exercises"
SOLUTIONS = sorted((ROOT / "solutions").glob("ex*.py"))


def run(path):
    lines = []
    ok = check_file(path, out=lines.append)
    return ok, "\n".join(lines)


def flat(text):
    """The report with its wrapped lines joined: hints are searched for as plain text."""
    return " ".join(text.split())


def broken(tmp_path, name, *edits):
    """A copy of solution ``name`` with each (old, new) text replaced (old must be there)."""
    src = (ROOT / "solutions" / name).read_text()
    for old, new in edits:
        assert old in src, f"{old!r} not in {name}: update the test"
        src = src.replace(old, new)
    path = tmp_path / name
    path.write_text(src)
    return path


def test_the_seven_exercises_have_skeletons_and_solutions():
    assert [p.name for p in SOLUTIONS] == sorted(p.name for p in ROOT.glob("ex*.py"))
    assert len(SOLUTIONS) == len(EXERCISES) == 7


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_reference_solutions_pass(path):
    ok, text = run(path)
    assert ok, text
    assert "FAIL" not in text and "PASS" in text


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_skeletons_keep_the_solutions_forward_and_say_not_written_yet(path):
    skeleton = ROOT / path.name
    sol, skel = {}, {}
    exec(compile(path.read_text(), str(path), "exec"), sol)
    exec(compile(skeleton.read_text(), str(skeleton), "exec"), skel)
    forward = next(k for k in sol if k.endswith("_forward"))
    assert skel[forward].__code__.co_code == sol[forward].__code__.co_code
    ok, text = run(skeleton)
    assert not ok and "not written yet" in text


@pytest.mark.parametrize("name, edits, grad, hint", [
    ("ex1_relu.py", [("return dout * (x > 0)", "return dout.copy()")],
     "dx", "forgotten ReLU mask"),
    ("ex2_softmax_ce.py", [("dloss * (p - onehot) / N", "dloss * (onehot - p) / N")],
     "dlogits", "wrong sign"),
    ("ex2_softmax_ce.py", [("dloss * (p - onehot) / N", "dloss * (p - onehot)")],
     "dlogits", "forgot the 1/N"),
    ("ex3_maxpool.py", [("dx[:, :, rows, cols] += mask", "dx[:, :, rows, cols] = mask")],
     "dx", "accumulate with +="),
    ("ex4_conv.py", [("dw = np.zeros_like(w)", "dw = np.zeros((C, F, KH, KW))"),
                     ("dw += np.tensordot(g, x_pad[:, :, rows, cols], axes=(0, 0))",
                      "dw += np.tensordot(x_pad[:, :, rows, cols], g, axes=(0, 0))"
                      ".transpose(0, 3, 1, 2)")],
     "dw", "missing transpose"),
    ("ex4_conv.py", [("db = dout.sum(axis=(0, 2, 3))", "db = dout.sum(axis=(0, 2))")],
     "db", "sum dout over axes (0, 2, 3)"),
    ("ex4_conv.py", [("dx = dx_pad[:, :, pad:pad + H, pad:pad + W]", "dx = dx_pad[:, :, :H, :W]")],
     "dx", "border cut off"),
    ("ex5_batchnorm.py", [("dx = dx_hat * inv_std + dvar * 2 * xc / M + dmean / M",
                           "dx = dx_hat * inv_std")],
     "dx", "you treated mean and variance as constants"),
    ("ex5_batchnorm.py", [("dgamma = (dout * x_hat).sum(axis=axes)",
                           "dgamma = (dout * x_hat).sum(axis=(0, 1))")],
     "dgamma", "sum over axes (0, 2, 3)"),
    ("ex6_style.py", [("dFm = (dD + dD.T) @ Fm", "dFm = dD @ Fm")],
     "dF", "contains Fm twice"),
    ("ex7_tv.py", [("    dx[:, :, :, :-1] -= gh\n", ""), ("    dx[:, :, :-1, :] -= gv\n", "")],
     "dx", "touches two pixels"),
])
def test_typical_mistakes_fail_with_the_right_hint(tmp_path, name, edits, grad, hint):
    ok, text = run(broken(tmp_path, name, *edits))
    assert not ok
    fail = [line for line in text.splitlines() if "FAIL" in line]
    assert fail and fail[0].split()[0] == grad, text
    assert hint in flat(text), text


def test_every_catalogued_mistake_is_recognised(monkeypatch):
    """Feed each exercise every wrong answer of its own catalogue: each must FAIL with its hint.
    The numerical gradients repeat from run to run (fixed seeds), so they are memoised."""
    memo, numerical = {}, exercises.numerical_vjp

    def cached(f, x, dout, h=1e-5):
        key = (x.shape, x.tobytes(), np.asarray(dout).tobytes())
        if key not in memo:
            memo[key] = numerical(f, x, dout, h)
        return memo[key]
    monkeypatch.setattr(exercises, "numerical_vjp", cached)
    for seed, (name, make) in enumerate(EXERCISES.items()):
        ex = make()
        arg_names = list(ex.cases(np.random.default_rng(0))[0].args)
        case = ex.cases(np.random.default_rng(seed))[-1]
        dout = 1.7 if ex.scalar else np.ones(np.shape(ex.ref(case.args, case.kwargs)))
        hints = [h for _, _, h in ex.variants(case.args, case.kwargs, dout,
                                               ex.exact(case.args, case.kwargs, dout))]
        for k, hint in enumerate(hints):
            def forward(*args, **kwargs):
                args = dict(zip(arg_names, args))
                return ex.ref(args, kwargs), (args, kwargs)

            def wrong_backward(d, cache, k=k):
                args, kwargs = cache
                exact = ex.exact(args, kwargs, d)
                g, wrong, _ = ex.variants(args, kwargs, d, exact)[k]
                grads = [wrong if n == g else exact[n] for n, _ in ex.grads]
                return tuple(grads) if len(grads) > 1 else grads[0]
            module = types.SimpleNamespace(**{ex.forward: forward, name: wrong_backward})
            lines = []
            assert not exercises._check(name, ex, module, "x.py", lines.append,
                                        np.random.default_rng(seed))
            assert flat(hint) in flat("\n".join(lines)), (name, k, lines)


def test_not_written_yet_and_no_exercise_functions(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("import numpy as np\n\ndef helper(x):\n    return x\n")
    ok, text = run(path)
    assert not ok and "defines none of the exercise functions" in text


def test_syntax_error_is_one_line(tmp_path):
    path = tmp_path / "ex1_relu.py"
    path.write_text("import numpy as np\n\ndef relu_backward(dout, cache)\n    return dout\n")
    ok, text = run(path)
    assert not ok
    assert text.count("\n") == 0 and "line 3" in text and "SyntaxError" in text


def test_exceptions_point_at_the_students_line(tmp_path):
    path = broken(tmp_path, "ex1_relu.py", ("return dout * (x > 0)", "return dout * (x > 0)[:, :1, :2]"))
    line = path.read_text().splitlines().index("    return dout * (x > 0)[:, :1, :2]") + 1
    ok, text = run(path)
    assert not ok and "ValueError" in text and f"line {line}: return dout" in text, text


def test_forward_must_stay_as_given_and_backward_must_return_all_gradients(tmp_path):
    ok, text = run(broken(tmp_path, "ex1_relu.py", ("out = np.maximum(x, 0)", "out = np.abs(x)")))
    assert not ok and "restore the forward" in text
    ok, text = run(broken(tmp_path, "ex4_conv.py", ("return dx, dw, db", "return dx, dw")))
    assert not ok and "returned 2 values; return 3: (dx, dw, db)" in text


def test_in_place_dout_is_noted_but_not_failed(tmp_path):
    ok, text = run(broken(tmp_path, "ex1_relu.py", ("return dout * (x > 0)",
                                                   "dout *= (x > 0)\n    return dout")))
    assert ok and "changed dout in place" in text


def test_folder_checks_every_file_and_leaves_no_module_behind(tmp_path):
    before = set(sys.modules)
    ok, text = run(ROOT / "solutions")
    assert ok and "7 of 7 files pass" in text
    assert not [m for m in set(sys.modules) - before if m.startswith("_minvert_exercise")]


def test_cli_exit_status(tmp_path, capsys):
    assert main(["exercise", "check", str(ROOT / "solutions" / "ex1_relu.py")]) == 0
    assert main(["exercise", "check", str(ROOT / "ex1_relu.py")]) == 1
    assert "not written yet" in capsys.readouterr().out
