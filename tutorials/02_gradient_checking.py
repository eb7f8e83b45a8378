# %% [markdown]
# # 02 · Gradient checking, and why float64 and a random upstream gradient
#
# Every backward pass in minvert is checked against numerical derivatives. A check is only
# worth something if it *can fail*: this tutorial shows three ways a careless check
# passes a wrong gradient, and the habit that prevents each one:
#
# 1. **float32** has an error floor that hides small bugs: check in float64;
# 2. an upstream gradient of **all ones** can make a wrong batch-norm backward look right:
#    draw it at random;
# 3. at a **kink** (ReLU at 0, a max-pool tie) the numerical derivative is meaningless:
#    keep the inputs away from kinks.

# %%
import sys
from pathlib import Path

import numpy as np

try:
    import minvert
except ModuleNotFoundError:  # not installed (`pip install -e .`): use the checkout around this file
    here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
    sys.path.insert(0, str(here.parent))
    import minvert
from minvert.gradcheck import numerical_vjp, rel_error
from minvert.layers import (batchnorm2d_backward, batchnorm2d_forward, maxpool2d_backward,
                            maxpool2d_forward, relu_backward, relu_forward)
from minvert.layers.conv import conv2d_backward, conv2d_forward

np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)


def claim(holds, text):
    """A sentence of this tutorial's text, checked on this run's numbers; tests/test_tutorials.py
    reads these lines, so the text cannot drift from what the code shows."""
    print(("claim ok: " if holds else "CLAIM FAILS: ") + text)
    if not holds:
        raise SystemExit(f"a claim of this tutorial does not hold: {text}")

# %% [markdown]
# ## 1. Central differences, and the two errors they make
#
#     f'(x)  ~  (f(x + h) - f(x - h)) / 2h
#
# The formula has a **truncation** error of about `h^2 f'''(x) / 6`, which shrinks with h,
# and a **rounding** error of about `eps |f(x)| / h`, which grows as h shrinks. Here `eps` is
# the machine precision: 1.1e-16 in float64, 6e-8 in float32. The best h balances the two,
# near `eps^(1/3)`. Watch it on `f = sin` at `x = 1`, whose derivative `cos(1)` we know:

# %%
print("h       " + "".join(f"{10.0 ** -e:>9.0e}" for e in range(1, 10)))
error_at = {}  # dtype -> {h exponent: relative error}
for dtype in (np.float64, np.float32):
    x, errors = dtype(1.0), {}
    for e in range(1, 10):
        h = dtype(10.0 ** -e)
        slope = (np.sin(x + h) - np.sin(x - h)) / (dtype(2) * h)
        errors[e] = abs(float(slope) - np.cos(1.0)) / np.cos(1.0)
    error_at[dtype] = errors
    print(f"{dtype.__name__:<8}" + "".join(f"{err:9.0e}" for err in errors.values()))
e64, e32 = error_at[np.float64], error_at[np.float32]
claim(min(e64, key=e64.get) in (5, 6) and e64[5] < 1e-10 and e64[9] > 10 * e64[5],
      "float64 is best near h = 1e-5, below 1e-10, and gets worse for smaller h")
claim(min(e32.values()) > 1e-5 and e32[5] > 1e-3,
      "float32 never gets below 1e-5, and at h = 1e-5 it is off by more than 0.1 %")

# %% [markdown]
# float64 is best around h = 1e-5 and gets worse below that, as rounding takes over.
# float32 never gets below 1e-5, and at h = 1e-5 it is already off by more than 0.1 %
# (the `claim ok` lines check each sentence like these on the numbers just printed).
#
# Everywhere in minvert a gradient `a` is compared with the numerical one `n` by one rule,
# `rel_error(a, n) = ||a - n|| / (||a|| + ||n||)` over the whole array, and passes below 1e-7.
#
# The same floor shows on a real layer. We plant a small bug, a `dw` that is 0.03 % too
# large, and check it both ways. numerical_vjp refuses float32 on purpose, so the float32
# check is written out here.

# %%
x = rng.standard_normal((2, 3, 6, 6))
w = rng.standard_normal((4, 3, 3, 3))
b = rng.standard_normal(4)
out, cache = conv2d_forward(x, w, b, stride=1, pad=1)
dout = rng.standard_normal(out.shape)
dw = conv2d_backward(dout, cache)[1]
dw_planted = dw * 1.0003  # the bug


def numerical_dw_float32(h):
    x32, w32, b32, d32 = (a.astype(np.float32) for a in (x, w, b, dout))
    grad, flat = np.zeros(w.shape, np.float32), w32.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + np.float32(h)
        plus = conv2d_forward(x32, w32, b32, 1, 1)[0]
        flat[k] = old - np.float32(h)
        minus = conv2d_forward(x32, w32, b32, 1, 1)[0]
        flat[k] = old
        grad.reshape(-1)[k] = np.sum((plus - minus) * d32) / (2 * h)
    return grad


def show(label, numerical):
    errors = rel_error(dw, numerical), rel_error(dw_planted, numerical)
    print(f"{label:<28} correct dw: {errors[0]:8.1e}   planted dw: {errors[1]:8.1e}")
    return errors


print("rel_error against the numerical gradient (minvert accepts < 1e-7):")
f32 = {h: show(f"float32, h = {h:g}", numerical_dw_float32(h)) for h in (1e-5, 1e-3, 1e-2)}
f64 = show("float64, h = 1e-5", numerical_vjp(lambda: conv2d_forward(x, w, b, 1, 1)[0], w, dout))
claim(min(c for c, _ in f32.values()) > 1e-7,
      "in float32 even the correct dw fails the 1e-7 rule, whatever h is")
claim(f32[1e-5][1] < 1.5 * f32[1e-5][0],
      "at h = 1e-5 float32 cannot tell the planted bug from the correct dw")
claim(f64[0] < 1e-9 and f64[1] > 1e-5 and f64[1] > 1e5 * f64[0],
      f"in float64 the correct dw is off by {f64[0]:.0e}, the planted one by {f64[1]:.1e}, "
      f"over 1e5 times more")

# %% [markdown]
# In float32 the correct gradient is never within 1e-7, and at h = 1e-5 it looks as wrong
# as the planted one: the check is blind below its own noise, and any tolerance loose enough
# for float32 lets small bugs through. In float64 the correct gradient is off by rounding
# noise, the planted one (0.03 % too large reads 1.5e-4 by the norm rule) far more.
# **Check in float64.** Networks run in float32; their float64 copies
# (`layer.astype(np.float64)`) exist for checking.
#
# ## 2. Why the upstream gradient must be random: batch-norm
#
# A backward pass computes a vector-Jacobian product, `dx = J^T dout`. The check only tests
# it along the `dout` it is given. Batch-norm in training mode shows how a convenient choice
# goes wrong.
#
# With `dout = ones`, the check differentiates `sum(out) = sum(gamma * x_hat + beta)`. But
# `x_hat` is normalised: it sums to exactly 0 in every channel, so `sum(out)` does not depend
# on x at all, and the true `dx` is zero. Any wrong backward that also returns zero for a
# constant `dout` passes.
#
# Here is such a wrong backward. It treats the batch **variance as a constant**, a real
# mistake (exercise 10 asks you to avoid it). It keeps the mean's path, which makes its dx
# zero for a constant dout, just like the truth:

# %%
x = 2 + 3 * rng.standard_normal((4, 3, 5, 5))
gamma, beta = rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)


def forward():
    return batchnorm2d_forward(x, gamma, beta, np.zeros(3), np.ones(3), training=True)


def planted_backward(dout, cache):
    """WRONG: treats the variance as a constant, keeps only the mean's path."""
    dx_hat = dout * cache["gamma"][:, None, None]
    return (dx_hat - dx_hat.mean(axis=(0, 2, 3), keepdims=True)) * cache["inv_std"][:, None, None]


out, cache = forward()
ones = np.ones_like(out)
numerical = numerical_vjp(lambda: forward()[0], x, ones)
print("dout = ones:")
print(f"  largest |dx|: numerical {np.abs(numerical).max():.1e}, correct backward "
      f"{np.abs(batchnorm2d_backward(ones, cache)[0]).max():.1e}, planted backward "
      f"{np.abs(planted_backward(ones, cache)).max():.1e}")
largest = [np.abs(a).max() for a in (numerical, batchnorm2d_backward(ones, cache)[0],
                                      planted_backward(ones, cache))]
claim(max(largest) < 1e-8, "with dout = ones all three are zero up to rounding noise: the check "
      "cannot tell them apart")

dout = rng.standard_normal(out.shape)
numerical = numerical_vjp(lambda: forward()[0], x, dout)
print("random dout:")
good, bad = (rel_error(g, numerical) for g in (batchnorm2d_backward(dout, cache)[0],
                                              planted_backward(dout, cache)))
print(f"  correct backward rel. error {good:.1e}")
print(f"  planted backward rel. error {bad:.1e}")
claim(good < 1e-7 < bad, "with a random dout the correct backward passes and the planted one fails")

# %% [markdown]
# A random `dout` tests the Jacobian along a direction that has no special structure, so a
# wrong term shows up with probability one. (`dgamma = sum(dout * x_hat)` has the same blind
# spot: with ones it is the sum of `x_hat`, zero again.) Every check in minvert, and the
# exercise checker, draws `dout` at random for this reason.
#
# ## 3. Kinks: where the derivative does not exist
#
# `relu(x) = max(x, 0)` has no derivative at 0. Backward uses the left one, 0, as PyTorch
# does. A central difference straddling the kink measures something in between: for
# `|x| < h` it sees part of each side. Take inputs close to 0:

# %%
x = np.array([-0.5, -3e-6, 0.0, 3e-6, 0.5])
out, cache = relu_forward(x)
dout = np.ones_like(x)
numerical = numerical_vjp(lambda: relu_forward(x)[0], x, dout)  # h = 1e-5
for label, values in (("x", x), ("analytic dx", relu_backward(dout, cache)),
                      ("numerical dx", numerical)):
    print(f"{label:<13}" + "".join(f"{v:9.2g}" for v in values))
claim(relu_backward(dout, cache)[2] == 0 and abs(numerical[2] - 0.5) < 1e-9
      and 0 < numerical[1] < 0.5 < numerical[3] < 1,
      "within h of the kink the numerical derivative is in between: 0.5 at x = 0, where backward says 0")

# %% [markdown]
# Within `h` of the kink the two disagree completely, and neither is "wrong". Max pooling
# has the same problem at **ties**: if two elements share a window's maximum, nudging either
# one up raises the max and nudging it down does not, so the numerical derivative gives each
# of them 0.5, while backward gives 1 to the first and 0 to the other.

# %%
x = np.array([[[[1.0, 3.0], [3.0, 2.0]]]])  # two maxima in one 2x2 window
out, cache = maxpool2d_forward(x, 2)
dout = np.ones_like(out)
analytic = maxpool2d_backward(dout, cache).ravel()
numerical = numerical_vjp(lambda: maxpool2d_forward(x, 2)[0], x, dout).ravel()
print("analytic dx  ", analytic)
print("numerical dx ", numerical)
claim(list(analytic) == [0, 1, 0, 0] and np.allclose(numerical, [0, 0.5, 0.5, 0]),
      "at a tie the numerical derivative gives each maximum 0.5, backward gives the first 1")

# %% [markdown]
# The cure is in the test data, not in the layer: ReLU inputs are drawn at least 0.1 away
# from 0, and max-pool inputs are distinct values 0.01 apart, far beyond h = 1e-5. That is
# how `minvert gradcheck`, `tests/` and `minvert exercise check` choose their inputs.
# `minvert gradcheck FILE.py:NAME` cannot choose your layer's kinks, so it looks for them:
# where the one-sided differences `(f(x+h) - f(x)) / h` and `(f(x) - f(x-h)) / h` disagree
# and your backward equals one of them, it sets the element aside and says "inconclusive at
# a kink" instead of FAIL, judging the other elements alone.
#
# ## Checklist
#
# * float64, `h = 1e-5`, `||a - n|| / (||a|| + ||n||)` below 1e-7 (the norm over the whole
#   array: an element-wise ratio blows up on elements whose gradient is nearly zero);
# * a random upstream gradient, never ones;
# * inputs away from kinks and ties;
# * small shapes, but not symmetric ones: `N != C != H != W` catches axes mixed up;
# * check every input of a layer: `dx` **and** `dw`, `db`, `dgamma`, ...
#
# Now write some backward passes yourself: `tutorials/exercises/`.
