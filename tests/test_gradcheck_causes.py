"""`minvert gradcheck FILE.py:NAME` names the causes outside the backward (issue 24, item 7).

The student layers are in tests/fixtures/gradcheck/, one file per class: correct, buggy,
kinked, offset, non-deterministic, float32. Each is run through the command line and judged
by its verdict line, the cause it names and the exit status; the library parts (one-sided
differences, the kink mask, the --h range) are tested on functions with known derivatives.
"""
from pathlib import Path

import numpy as np
import pytest

from minvert.backend import to_device, to_numpy
from minvert.errors import MinvertError
from minvert.gradcheck import TOLERANCE, numerical_vjp, rel_error
from minvert.gradcheck_causes import check_h, forward_problem, kinks, sided_vjp

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "gradcheck"
DENSE = ["--shape", "x=4,6", "w=3,6", "b=3"]


def gradcheck(capsys, spec, *args):
    from minvert.cli import main
    status = main(["gradcheck", str(FIXTURES / spec), *args])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    return status, lines[-1] if lines else "", captured.out, captured.err


@pytest.mark.parametrize("spec,args", [
    ("correct.py:relu", []), ("correct.py:dense", DENSE), ("correct.py:Tanh", []),
    ("correct.py:Scale", []), ("correct.py:Offset1e4", []), ("correct.py:Tanh", ["--seed", "3"]),
    ("correct.py:TanhOnDefaultDevice", [])])  # device arrays under MINVERT_DEVICE=gpu
def test_correct_layers_pass(capsys, spec, args):
    status, verdict, out, _ = gradcheck(capsys, spec, *args)
    assert (status, verdict) == (0, "verdict: PASS")
    assert "FAIL" not in out and "inconclusive" not in out


@pytest.mark.parametrize("spec,args,blamed", [
    ("buggy.py:relu", [], "dx"), ("buggy.py:dense", DENSE, "db"), ("buggy.py:Sigmoid", [], "dx"),
    ("buggy.py:Tanh", [], "dx"),  # 0.1 % too large: still the backward, not the numerical side
    ("kinked.py:KinkedScaled", [], "dx"),  # a kink does not excuse a wrong backward elsewhere
    ("offset.py:OffsetWrong", [], "dx")])  # nor does a large offset
def test_buggy_layers_fail_with_the_backward_blamed(capsys, spec, args, blamed):
    status, verdict, out, _ = gradcheck(capsys, spec, *args)
    assert status == 1
    assert verdict == f"verdict: FAIL: the backward is wrong ({blamed})"
    assert "FAIL: the backward is wrong: worst at" in out and "not the numerical side" in out
    assert "inconclusive" not in out and "not checked" not in out


@pytest.mark.parametrize("name", ["ThresholdReLU", "AbsCentered", "MaxFloor",
                                  "ThresholdReLUOnDefaultDevice"])
def test_a_kink_within_h_is_inconclusive_not_fail(capsys, name):
    status, verdict, out, _ = gradcheck(capsys, f"kinked.py:{name}")
    assert status == 1 and "FAIL" not in out
    assert verdict == "verdict: inconclusive at a kink (not a verdict on the backward)"
    assert "1 of 180 elements of x lie within h = 1e-05 of a kink" in out
    assert "the other 179 agree" in out
    # the kink is a few 1e-6 from its input: a smaller step does not reach it, and passes
    assert gradcheck(capsys, f"kinked.py:{name}", "--h", "1e-6")[:2] == (0, "verdict: PASS")


def test_a_large_offset_says_h_is_too_small_for_the_magnitude(capsys):
    status, verdict, out, _ = gradcheck(capsys, "offset.py:Offset")
    assert status == 1 and "FAIL" not in out
    assert verdict == ("verdict: inconclusive: h = 1e-05 is too small for the magnitude of the "
                       "values (not a verdict on the backward)")
    assert "|value| = 1e+06" in out and "eps*|value| = 2.2e-10" in out
    assert "rerun with --h 0.01" in out
    assert gradcheck(capsys, "offset.py:Offset", "--h", "0.01")[:2] == (0, "verdict: PASS")


def test_an_offset_no_step_can_check_and_one_inside_the_forward(capsys):
    status, verdict, out, _ = gradcheck(capsys, "offset.py:TanhOffset")
    assert status == 1 and "too small for the magnitude of the values" in verdict
    assert "No step from 1e-08 to 0.1 passes" in out and "without the offset" in out
    status, verdict, out, _ = gradcheck(capsys, "offset.py:InsideOffset")
    assert status == 1 and "FAIL" not in out
    assert "too small for the magnitude of the values inside the forward" in verdict


@pytest.mark.parametrize("spec", ["nondeterministic.py:Dropout", "nondeterministic.py:noisy"])
def test_a_non_deterministic_forward_is_named_not_blamed_on_the_backward(capsys, spec):
    status, verdict, out, _ = gradcheck(capsys, spec)
    assert status == 1 and "FAIL" not in out
    assert verdict == ("verdict: not checked: the forward is non-deterministic (not a verdict "
                       "on the backward)")
    assert "two calls on the same input differ by up to" in out


def test_float32_is_named_before_any_value_is_compared(capsys):
    status, verdict, out, _ = gradcheck(capsys, "float32.py:relu")
    assert status == 1 and verdict.startswith("verdict: not checked: the forward returns float32")
    assert "the check needs float64" in out and "FAIL" not in out
    status, verdict, out, _ = gradcheck(capsys, "float32.py:Tanh32Backward")
    assert status == 1 and verdict.startswith("verdict: not checked: dx is float32")
    assert "| x      |        nan | not checked" in out  # no value compared
    status, verdict, out, _ = gradcheck(capsys, "float32.py:Tanh32Inside")
    assert status == 1 and "FAIL" not in out
    assert "the forward computes in float32 inside" in out and "compute in float64" in out


def test_h_too_large_is_truncation_and_names_a_step_that_passes(capsys):
    status, verdict, out, _ = gradcheck(capsys, "correct.py:Tanh", "--h", "0.1")
    assert status == 1 and verdict.startswith("verdict: inconclusive: h = 0.1 is too large")
    assert "truncation error, O(h^2)" in out and "rerun with --h 0.0001" in out


@pytest.mark.parametrize("value", ["0", "-1e-5", "nan", "inf", "1", "1e-9", "abc"])
def test_bad_h_is_one_line(capsys, value):
    from minvert.cli import main
    assert main(["gradcheck", str(FIXTURES / "correct.py:relu"), f"--h={value}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"minvert: error: --h {value}: the step must")
    with pytest.raises(MinvertError):
        check_h(value)
    assert main(["gradcheck", "--h", "1e-4"]) == 1  # minvert's own layers: h is fixed
    assert "--h goes with FILE.py:NAME" in capsys.readouterr().err


def test_check_h_accepts_the_range():
    assert check_h("1e-8") == 1e-8 and check_h(0.1) == 0.1 and check_h(1e-5) == 1e-5


def test_sided_differences_of_a_known_function():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    dout = rng.standard_normal((3, 4))
    keep = x.copy()
    central, ahead, behind, rounding = sided_vjp(lambda: np.sin(x) * x, x, dout, 1e-5)
    exact = dout * (np.cos(x) * x + np.sin(x))
    np.testing.assert_array_equal(x, keep)  # restored
    assert rel_error(central, exact) < 1e-9
    np.testing.assert_allclose(central, numerical_vjp(lambda: np.sin(x) * x, x, dout), rtol=1e-12)
    # one-sided: first order, off by h f''/2 in opposite directions
    assert 1e-7 < rel_error(ahead, exact) < 1e-4 and 1e-7 < rel_error(behind, exact) < 1e-4
    assert np.all(rounding > 0) and np.all(rounding < 1e-9)


def test_kink_mask_marks_only_the_element_at_the_kink():
    x = np.array([0.5, -0.3, 2e-6, 1.2])  # the third input is 2e-6 above ReLU's kink
    dout = np.array([1.0, 2.0, -1.5, 0.7])
    sides = sided_vjp(lambda: np.maximum(x, 0), x, dout, 1e-5)
    right = dout * (x > 0)
    np.testing.assert_array_equal(kinks(right, sides), [False, False, True, False])
    assert rel_error(right, sides[0]) > TOLERANCE  # what the check saw before: a FAIL
    wrong = dout.copy()  # no mask: the second element misses with no kink near
    assert not kinks(wrong, sides)[1]


def test_forward_problem_order_dtype_first():
    x = np.ones(3)
    assert forward_problem(lambda: x * 2) is None
    assert "float32" in forward_problem(lambda: (x * 2).astype(np.float32))
    rng = np.random.default_rng(0)
    assert "non-deterministic" in forward_problem(lambda: x + rng.random(3))
    assert "float32" in forward_problem(lambda: (x + rng.random(3)).astype(np.float32))


def test_last_bit_differences_are_not_non_determinism_but_nan_against_a_number_is():
    x = np.random.default_rng(0).standard_normal(1000)
    assert np.sum(x) != np.sum(x[::-1])  # the order shows in the last bits
    orders = iter([np.arange(1000), np.arange(1000)[::-1]])
    # the same sum in another order: equal up to rounding, harmless at any h
    assert forward_problem(lambda: np.array([np.sum(x[next(orders)])]) * np.ones(3)) is None
    outs = iter([np.array([1.0, np.nan]), np.array([1.0, 2.0])])
    assert "non-deterministic" in forward_problem(lambda: next(outs))
    outs = iter([np.array([1.0, np.nan]), np.array([1.0, np.nan])])
    assert forward_problem(lambda: next(outs)) is None


def test_sided_differences_perturb_a_device_array_and_restore_it():
    """x on the default device (the GPU under MINVERT_DEVICE=gpu): each element is copied to
    the host with float() before it is changed, so the restore writes the original value."""
    host = np.random.default_rng(2).standard_normal((2, 3))
    x = to_device(host.copy())
    dout = np.random.default_rng(3).standard_normal((2, 3))
    central, _, _, _ = sided_vjp(lambda: x ** 3, x, to_device(dout), 1e-5)
    np.testing.assert_array_equal(to_numpy(x), host)
    assert rel_error(central, 3 * host ** 2 * dout) < 1e-9


def test_a_file_without_name_checks_every_layer_it_defines(capsys, tmp_path):
    status, verdict, out, _ = gradcheck(capsys, "nondeterministic.py")
    assert status == 1 and out.count("verdict: not checked: the forward is non-deterministic") == 2
    assert "nondeterministic.py:Dropout |" in out and "nondeterministic.py:noisy |" in out
    status, verdict, out, _ = gradcheck(capsys, "correct.py")  # dense has no --shape: said, not fatal
    assert status == 1 and out.count("verdict: PASS") == 5  # relu, Tanh, Scale, Offset1e4, device
    assert "correct.py:dense: not checked: dense_forward takes the arrays" in out
    one = tmp_path / "one.py"
    one.write_text("from minvert.layers import ReLU  # imported: not this file's layer\n\n\n"
                   "def square_forward(x):\n    return x * x, x\n\n\n"
                   "def square_backward(dout, x):\n    return 2 * x * dout\n")
    from minvert.cli import main
    assert main(["gradcheck", str(one)]) == 0
    out = capsys.readouterr().out
    assert "one.py:square |" in out and "ReLU" not in out and out.strip().endswith("verdict: PASS")
