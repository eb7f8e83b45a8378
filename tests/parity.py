"""Tolerances for the CuPy-vs-NumPy parity tests, from float64 rounding bounds, not guesses.

A sum of K products computed in float64 in *any* order (sequential, pairwise, blocked as
BLAS or cuBLAS do, with or without FMA) is within gamma_K * sum|a_i b_i| of the exact value,
gamma_K = K u / (1 - K u), u = 2**-53 (Higham, *Accuracy and Stability of Numerical
Algorithms*, 2nd ed., eq. 3.5). Two such computations therefore differ by at most
2 gamma_K * sum|a_i b_i|, element by element. The sums of absolute values come from running
the same layer on |x|, |w|, |dout|: every product then enters with its absolute value.

A fixed relative tolerance (1e-12) has no such guarantee: where terms cancel, the result is
small while the rounding is not, and a different summation order exceeds it: for the first
3x3 geometry of test_conv.py, summing the 27 products in a random order instead of im2col's
gives a relative error above 1e-12 for 3 of 100 seeds, while every element stays within
8 % of the bound below.
"""
import numpy as np

from minvert.backend import to_numpy

U = 2.0 ** -53


def gamma(k):
    return k * U / (1 - k * U)


def assert_within_sum_bound(got, want, abs_sums, k, what="result"):
    """|got - want| <= 2 gamma_k abs_sums elementwise (plus a few ulps of abs_sums for the
    rounding of abs_sums itself)."""
    got, want = to_numpy(got).astype(np.float64), to_numpy(want).astype(np.float64)
    bound = (2 * gamma(k) + 4 * U) * np.abs(to_numpy(abs_sums))
    excess = np.abs(got - want) - bound
    assert got.shape == want.shape and (excess <= 0).all(), (
        f"{what}: differs by more than the float64 summation bound (K={k}) at "
        f"{np.unravel_index(np.argmax(excess), excess.shape)}")
