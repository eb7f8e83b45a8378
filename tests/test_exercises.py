"""The exercise checker (minvert/exercises/): it passes the reference solutions on any seed,
names the classic mistakes in broken copies of them, fails code that changes its arguments
in place or is right only on some shapes, and survives files that do not even run."""
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from minvert.cli import main
from minvert.exercises import EXERCISES, check, check_file
from minvert.exercises.check import Exercise

ROOT = Path(__file__).resolve().parents[1] / "tutorials" / "exercises"
SOLUTIONS = sorted((ROOT / "solutions").glob("ex*.py"))


def run(path, seed=0):
    lines = []
    ok = check_file(path, out=lines.append, seed=seed)
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


def test_the_problem_set_has_a_skeleton_and_a_solution_per_exercise():
    assert [p.name for p in SOLUTIONS] == sorted(p.name for p in ROOT.glob("ex*.py"))
    assert len(SOLUTIONS) == len(EXERCISES) >= 15


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_reference_solutions_pass_on_any_seed(seed):
    ok, text = run(ROOT / "solutions", seed)
    assert ok, text
    assert f"{len(SOLUTIONS)} of {len(SOLUTIONS)} files pass" in text


def test_shapes_change_from_run_to_run_and_the_seed_repeats_them():
    texts = [run(ROOT / "solutions" / "ex08_conv.py", seed)[1] for seed in (5, 6, 5)]
    assert texts[0] == texts[2] and texts[0] != texts[1]
    assert "add --seed 5 to repeat" in texts[0]


def _student_functions(path):
    """Names of the functions a skeleton leaves to the student (raise NotImplementedError)."""
    import ast
    tree = ast.parse(path.read_text())
    return {f.name for f in tree.body if isinstance(f, ast.FunctionDef)
            and any(isinstance(n, ast.Raise) and "NotImplementedError" in ast.unparse(n)
                    for n in ast.walk(f))}


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_skeletons_keep_the_solutions_given_code_and_say_not_written_yet(path):
    skeleton = ROOT / path.name
    sol, skel = {}, {}
    exec(compile(path.read_text(), str(path), "exec"), sol)
    exec(compile(skeleton.read_text(), str(skeleton), "exec"), skel)
    todo = _student_functions(skeleton)
    assert todo, "a skeleton leaves at least one function to write"
    mine = [k for k, v in sol.items() if isinstance(v, types.FunctionType)
            and v.__code__.co_filename == str(path)]
    for name in mine:
        assert name in skel, f"{skeleton.name} lacks {name}"
        if name not in todo:  # given code: the same in both
            assert skel[name].__code__.co_code == sol[name].__code__.co_code, name
    ok, text = run(skeleton)
    assert not ok and "not written yet" in text


@pytest.mark.parametrize("name, edits, grad, hint", [
    ("ex02_relu.py", [("return dout * (x > 0)", "return dout.copy()")],
     "dx", "forgotten ReLU mask"),
    ("ex04_softmax_ce.py", [("dloss * (p - onehot) / N", "dloss * (onehot - p) / N")],
     "dlogits", "wrong sign"),
    ("ex04_softmax_ce.py", [("dloss * (p - onehot) / N", "dloss * (p - onehot)")],
     "dlogits", "forgot the 1/N"),
    ("ex05_maxpool.py", [("dx[:, :, rows, cols] += mask", "dx[:, :, rows, cols] = mask")],
     "dx", "accumulate with +="),
    ("ex08_conv.py", [("dw = np.zeros_like(w)", "dw = np.zeros((C, F, KH, KW))"),
                      ("dw += np.tensordot(g, x_pad[:, :, rows, cols], axes=(0, 0))",
                       "dw += np.tensordot(x_pad[:, :, rows, cols], g, axes=(0, 0))"
                       ".transpose(0, 3, 1, 2)")],
     "dw", "missing transpose"),
    # accumulated as (C, F, KH, KW) and reshaped, not transposed (F != C on every seed)
    ("ex08_conv.py", [("dw = np.zeros_like(w)", "dw = np.zeros((C, F, KH, KW))"),
                      ("dw += np.tensordot(g, x_pad[:, :, rows, cols], axes=(0, 0))",
                       "dw += np.tensordot(x_pad[:, :, rows, cols], g, axes=(0, 0))"
                       ".transpose(0, 3, 1, 2)"),
                      ("return dx, dw, db", "return dx, dw.reshape(F, C, KH, KW), db")],
     "dw", "a reshape keeps the memory order"),
    ("ex08_conv.py", [("db = dout.sum(axis=(0, 2, 3))", "db = dout.sum(axis=(0, 2))")],
     "db", "sum dout over axes (0, 2, 3)"),
    ("ex08_conv.py", [("dx = dx_pad[:, :, pad:pad + H, pad:pad + W]", "dx = dx_pad[:, :, :H, :W]")],
     "dx", "border cut off"),
    ("ex08_conv.py", [("dx = dx_pad[:, :, pad:pad + H, pad:pad + W]",
                       "dx = dx_pad[:, :, pad:-pad, pad:-pad]")],
     "dx", "At pad = 0 the crop dx_pad[:, :, pad:-pad, pad:-pad] is [0:0], empty"),
    ("ex10_batchnorm.py", [("dx = dx_hat * inv_std + dvar * 2 * xc / M + dmean / M",
                            "dx = dx_hat * inv_std")],
     "dx", "you treated mean and variance as constants"),
    ("ex10_batchnorm.py", [("dgamma = (dout * x_hat).sum(axis=axes)",
                            "dgamma = (dout * x_hat).sum(axis=(0, 1))")],
     "dgamma", "sum over axes (0, 2, 3)"),
    ("ex10_batchnorm.py", [("dgamma = (dout * x_hat).sum(axis=axes)",
                            "dgamma = (dout[0] * x_hat[0]).sum(axis=(1, 2))")],
     "dgamma", "dgamma sums over one sample only"),
    ("ex13_style.py", [("dFm = (dD + dD.T) @ Fm", "dFm = dD @ Fm")],
     "dF", "contains Fm twice"),
    ("ex14_tv.py", [("    dx[:, :, :, :-1] -= gh\n", ""), ("    dx[:, :, :-1, :] -= gv\n", "")],
     "dx", "touches two pixels"),
    ("ex01_dense.py", [("dw = dout.T @ x", "dw = x.T @ dout")], "dw", "dw = dout^T x"),
    ("ex01_dense.py", [("db = dout.sum(axis=0)", "db = dout.mean(axis=0)")], "db", "db is an average"),
    ("ex03_sigmoid.py", [("return dout * s * (1 - s)", "return dout * s")], "dx", "s * (1 - s), not s"),
    ("ex06_avgpool.py", [("/ (size * size)", "")], "dx", "dout / (size * size)"),
    ("ex06_avgpool.py", [("] += share", "] = share")], "dx", "accumulate with +="),
    ("ex07_upsample.py", [(".sum(axis=(3, 5))", ".mean(axis=(3, 5))")], "dx", "averaged each block"),
    ("ex09_im2col_conv.py", [("dx_pad[:, :, pad:pad + H, pad:pad + W], dw", "dx_pad, dw")], "dx",
     "cut the border off"),
    ("ex12_content.py", [("return dloss * diff", "return diff")], "dF", "you ignored dloss"),
])
def test_typical_mistakes_fail_with_the_right_hint(tmp_path, name, edits, grad, hint):
    for seed in (0, 1, 2):  # the hint must not depend on the draw
        ok, text = run(broken(tmp_path, name, *edits), seed)
        assert not ok
        fail = [line for line in text.splitlines() if "FAIL" in line]
        assert fail and fail[0].split()[0] == grad, text
        assert hint in flat(text), text


@pytest.mark.parametrize("name, edits, says", [
    # right only when H_out = H // stride, which the tiling cases satisfy
    ("ex05_maxpool.py", [("H_out, W_out = dout.shape[2:]", "H_out, W_out = H // stride, W // stride")],
     "not H // stride"),
    # in minvert a residual block hands the same dout to two branches
    ("ex02_relu.py", [("return dout * (x > 0)", "dout[x <= 0] = 0\n    return dout")],
     "changed dout in place"),
    ("ex02_relu.py", [("return dout * (x > 0)", "dout *= (x > 0)\n    return dout")],
     "changed dout in place"),
    # right the first time; the second backward through the same cache differs
    ("ex04_softmax_ce.py", [("return dloss * (p - onehot) / N",
                             "p -= onehot\n    p /= N\n    return dloss * p")],
     "changed its cache in place"),
    ("ex01_dense.py", [("out = x @ w.T + b", "x += 0\n    out = x @ w.T + b\n    x[0, 0] = 7")],
     "changed its input x in place"),
    ("ex01_dense.py", [("out = x @ w.T + b", "out = x @ w.T")], "you forgot the bias"),
    ("ex03_sigmoid.py", [("1 / (1 + np.exp(-x))", "1 / (1 + np.exp(x))")], "the sign in the exponent"),
    ("ex06_avgpool.py", [("H_out, W_out = (H - size) // stride + 1, (W - size) // stride + 1",
                          "H_out, W_out = H // stride, W // stride")], "not H // stride"),
    ("ex07_upsample.py", [("x.repeat(factor, axis=2).repeat(factor, axis=3)",
                           "np.tile(x, (1, 1, factor, factor))")], "np.repeat"),
    ("ex16_adadelta.py", [("np.sqrt(accum_delta + eps) / np.sqrt(accum_grad + eps)",
                           "(np.sqrt(accum_delta) + eps) / (np.sqrt(accum_grad) + eps)")],
     "eps goes inside the square roots"),
    ("ex16_adadelta.py", [("w = w - lr * update", "w = w - update")], "lr is missing"),
    ("ex16_adadelta.py", [("    accum_grad = rho * accum_grad + (1 - rho) * dw * dw\n", ""),
                          ("    update = dw", "    accum_grad = rho * accum_grad + (1 - rho) * dw * dw"
                                            "\n    accum_delta = rho * accum_delta + (1 - rho) * "
                                            "(dw * np.sqrt(accum_delta + eps) / np.sqrt(accum_grad "
                                            "+ eps)) ** 2\n    update = dw")],
     "computes the update with the previous E[delta^2]"),
    ("ex15_objective.py", [("return float(ce + tv_weight * tv), grad.ravel().astype(np.float64)",
                            "return float(ce + tv_weight * tv), grad")], "grad.ravel()"),
    ("ex15_objective.py", [("grad = net.backward(dlogits[None, :]) + tv_weight * dtv",
                            "grad = net.backward(dlogits[None, :]) + dtv")],
     "not multiplied by tv_weight"),
    ("ex15_objective.py", [("return float(ce + tv_weight * tv)", "return float(ce)")],
     "lacks tv_weight * TV(x)"),
    ("ex16_adadelta.py", [("update = dw * np.sqrt(accum_delta + eps) / np.sqrt(accum_grad + eps)",
                           "update = dw * (accum_delta + eps) / (accum_grad + eps)")], "so square roots"),
    ("ex16_adadelta.py", [("w = w - lr * update", "w = w + lr * update")], "w moved up the gradient"),
    ("ex16_adadelta.py", [("accum_grad = rho * accum_grad + (1 - rho) * dw * dw",
                           "accum_grad = (1 - rho) * accum_grad + rho * dw * dw")],
     "rho and 1 - rho are swapped"),
    ("ex16_adadelta.py", [("    return w, accum_grad, accum_delta", "    w -= 0\n    return w, accum_grad")],
     "must return three arrays"),
    ("ex15_objective.py", [("grad = net.backward(dlogits[None, :]) + tv_weight * dtv",
                            "grad = tv_weight * dtv")], "lacks the class loss's part"),
    ("ex15_objective.py", [("grad = net.backward(dlogits[None, :]) + tv_weight * dtv",
                            "grad = -(net.backward(dlogits[None, :]) + tv_weight * dtv)")],
     "wrong sign"),
    ("ex15_objective.py", [("x = x_flat.reshape(shape)", "x = x_flat.reshape(shape)\n    x_flat += 0.0\n"
                                                         "    x_flat[0] = 1.0")], "changed x_flat in place"),
    ("ex11_overfit.py", [("p -= lr * layer.grads[k]", "p += lr * layer.grads[k]")],
     "the step went up the gradient"),
    ("ex11_overfit.py", [("p -= lr * layer.grads[k]", "p = p - lr * layer.grads[k]")],
     "the parameters never changed"),
    ("ex11_overfit.py", [("rng = np.random.default_rng(seed)", "rng = np.random.default_rng()")],
     "the same seed gave other losses"),
])
def test_subtle_mistakes_fail(tmp_path, name, edits, says):
    for seed in (0, 1, 2):
        ok, text = run(broken(tmp_path, name, *edits), seed)
        assert not ok and says in flat(text), text


def test_every_catalogued_mistake_is_recognised(monkeypatch):
    """Feed each exercise every wrong answer of its own catalogue: each must FAIL with its hint.
    The numerical gradients repeat within the test (the same cases), so they are memoised."""
    check_module = sys.modules["minvert.exercises.check"]
    memo, numerical = {}, check_module.numerical_vjp

    def cached(f, x, dout, h=1e-5):
        key = (x.shape, x.tobytes(), np.asarray(dout).tobytes())
        if key not in memo:
            memo[key] = numerical(f, x, dout, h)
        return memo[key]
    monkeypatch.setattr(check_module, "numerical_vjp", cached)
    for seed, (name, make) in enumerate(EXERCISES.items()):
        ex = getattr(make(), "conv", None) or make()  # exercise 9 wraps its convolution
        if not isinstance(ex, Exercise):
            continue
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
            module = types.SimpleNamespace(**{ex.forward: forward, ex.backward: wrong_backward})
            lines = []
            assert not check(ex, module, "x.py", lines.append, np.random.default_rng(seed))
            assert flat(hint) in flat("\n".join(lines)), (name, k, lines)


def test_printed_indices_are_plain_numbers(tmp_path):
    """NumPy 2 would print np.int64(0) inside a list of indices."""
    path = broken(tmp_path, "ex02_relu.py", ("return dout * (x > 0)",
                                             "g = dout * (x > 0)\n    g.flat[3] += 1.0\n    return g"))
    ok, text = run(path)
    assert not ok and "largest difference is at dx[" in text and "np.int64" not in text


def test_not_written_yet_and_no_exercise_functions(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("import numpy as np\n\ndef helper(x):\n    return x\n")
    ok, text = run(path)
    assert not ok and "defines none of the exercise functions" in text


def test_syntax_error_is_one_line(tmp_path):
    path = tmp_path / "ex02_relu.py"
    path.write_text("import numpy as np\n\ndef relu_backward(dout, cache)\n    return dout\n")
    ok, text = run(path)
    assert not ok
    assert text.count("\n") == 0 and "line 3" in text and "SyntaxError" in text


def test_exceptions_point_at_the_students_line(tmp_path):
    path = broken(tmp_path, "ex02_relu.py", ("return dout * (x > 0)", "return dout * (x > 0)[:, :1, :2]"))
    line = path.read_text().splitlines().index("    return dout * (x > 0)[:, :1, :2]") + 1
    ok, text = run(path)
    assert not ok and "ValueError" in text and f"line {line}: return dout" in text, text


def test_forward_must_stay_as_given_and_backward_must_return_all_gradients(tmp_path):
    ok, text = run(broken(tmp_path, "ex02_relu.py", ("out = np.maximum(x, 0)", "out = np.abs(x)")))
    assert not ok and "restore the forward" in text
    ok, text = run(broken(tmp_path, "ex08_conv.py", ("return dx, dw, db", "return dx, dw")))
    assert not ok and "returned 2 values; return 3: (dx, dw, db)" in text


def test_folder_checks_every_file_and_leaves_no_module_behind():
    before = set(sys.modules)
    ok, text = run(ROOT / "solutions")
    assert ok and f"{len(SOLUTIONS)} of {len(SOLUTIONS)} files pass" in text
    assert not [m for m in set(sys.modules) - before if m.startswith("_minvert_")]


def test_cli_exit_status(capsys):
    assert main(["exercise", "check", str(ROOT / "solutions" / "ex02_relu.py"), "--seed", "3"]) == 0
    assert main(["exercise", "check", str(ROOT / "ex02_relu.py")]) == 1
    assert "not written yet" in capsys.readouterr().out


def test_every_catalogued_forward_mistake_is_recognised():
    """A forward you write that returns one of the catalogued wrong outputs FAILs with its hint."""
    for seed, (name, make) in enumerate(EXERCISES.items()):
        ex = getattr(make(), "conv", None) or make()  # exercise 9 wraps its convolution
        if not isinstance(ex, Exercise) or ex.forward_given or not ex.forward_variants:
            continue
        arg_names = list(ex.cases(np.random.default_rng(0))[0].args)
        first = ex.cases(np.random.default_rng(seed))[0]
        for k, (_, hint) in enumerate(ex.forward_variants(first.args, first.kwargs)):
            def forward(*args, k=k, **kwargs):
                args = dict(zip(arg_names, args))
                return ex.forward_variants(args, kwargs)[k][0], None
            module = types.SimpleNamespace(**{ex.forward: forward})
            lines = []
            assert not check(ex, module, "x.py", lines.append, np.random.default_rng(seed))
            assert flat(hint) in flat("\n".join(lines)), (name, k, lines)
