# %% [markdown]
# # 01 · One convolution, forward and backward, by hand
#
# A convolution slides a small kernel over an image and, at every position, takes a
# weighted sum of the pixels under it. Everything a CNN learns lives in those weights, and
# learning needs the gradient of the loss with respect to them. Paper 000 needs more: the
# gradient with respect to the *pixels*, to change the image itself.
#
# Here we compute a convolution and both gradients with plain loops on arrays small enough
# to print, compare them with minvert's fast `conv2d_forward` / `conv2d_backward`, and
# finally with numerical derivatives, which trust nobody's algebra.
#
# Run it as a script (`python tutorials/01_conv_by_hand.py`) or open it as a notebook:
# Jupyter with jupytext, or VS Code, read the `# %%` cells.

# %%
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

try:
    import minvert
except ModuleNotFoundError:  # not installed (`pip install -e .`): use the checkout around this file
    here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
    sys.path.insert(0, str(here.parent))
    import minvert
from minvert.gradcheck import numerical_vjp, rel_error
from minvert.layers.conv import conv2d_backward, conv2d_forward

OUT = Path(os.environ.get("MINVERT_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="minvert-tutorial-"))
OUT.mkdir(parents=True, exist_ok=True)
np.set_printoptions(precision=3, suppress=True)
rng = np.random.default_rng(0)


def claim(holds, text):
    """A sentence of this tutorial's text, checked on this run's numbers; tests/test_tutorials.py
    reads these lines, so the text cannot drift from what the code shows."""
    print(("claim ok: " if holds else "CLAIM FAILS: ") + text)
    if not holds:
        raise SystemExit(f"a claim of this tutorial does not hold: {text}")

# %% [markdown]
# ## 1. Forward: a 3x3 kernel on a 4x4 image
#
# One image (N = 1) with one channel (C = 1), one filter (F = 1), stride 1, no padding.
# minvert's arrays are laid out NCHW: `x[n, c, h, w]`; weights are `w[f, c, i, j]`.
#
# The 3x3 kernel fits in 2 x 2 positions, so the output is 2 x 2:
# `H_out = (H - KH) // stride + 1 = (4 - 3) // 1 + 1 = 2`. Each output is
#
#     out[oh, ow] = b + sum_{i, j} w[i, j] * x[oh + i, ow + j]
#
# (no kernel flip: deep-learning "convolution" is a cross-correlation). Our kernel is a
# Sobel filter: it weighs the left column against the right one, so it answers "how much
# brighter is the left than the right?".

# %%
x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)  # brightness grows by 1 per column
w = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float64).reshape(1, 1, 3, 3)
b = np.array([0.5])

out = np.zeros((1, 1, 2, 2))
for oh in range(2):
    for ow in range(2):
        patch = x[0, 0, oh:oh + 3, ow:ow + 3]  # the 3x3 pixels under the kernel
        out[0, 0, oh, ow] = np.sum(patch * w[0, 0]) + b[0]
print("x =\n", x[0, 0])
print("out by loops =\n", out[0, 0])

fast, cache = conv2d_forward(x, w, b)
print("minvert conv2d_forward agrees: rel. error", rel_error(fast, out))
claim(np.all(out == -7.5), "every output is -7.5")

# %% [markdown]
# Every output is the same, -7.5 (the line above checks it): the left column is 2 darker than the right one, in each of the three
# rows, weighted 1 + 2 + 1 = 4, so -8, plus the bias 0.5. A uniform slope gives a uniform
# answer.
#
# ## 2. Backward by hand: where did each output come from?
#
# Suppose the rest of the network hands us `dout[oh, ow] = d loss / d out[oh, ow]`. Because
# `out[oh, ow] = b + sum_{i, j} w[i, j] x[oh + i, ow + j]` is linear in everything:
#
# * `d out[oh, ow] / d w[i, j] = x[oh + i, ow + j]`, so **dw** collects each output's
#   gradient times the patch that output saw;
# * `d out[oh, ow] / d x[oh + i, ow + j] = w[i, j]`, so each output sends `dout * w` back
#   onto **its own patch** of `dx`; patches overlap, so contributions add up;
# * `d out / d b = 1` everywhere, so **db** is the sum of `dout`.
#
# The same loops as the forward pass do it, reading and writing the same patches:

# %%
dout = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2)
dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)
for oh in range(2):
    for ow in range(2):
        g = dout[0, 0, oh, ow]
        dx[0, 0, oh:oh + 3, ow:ow + 3] += g * w[0, 0]  # += : neighbouring patches overlap
        dw[0, 0] += g * x[0, 0, oh:oh + 3, ow:ow + 3]
        db[0] += g
print("dx by loops =\n", dx[0, 0])
print("dw by loops =\n", dw[0, 0])
print("db by loops =", db)

fast_dx, fast_dw, fast_db = conv2d_backward(dout, cache)
print("minvert conv2d_backward agrees: rel. errors",
      rel_error(fast_dx, dx), rel_error(fast_dw, dw), rel_error(fast_db, db))
# how many patches covered each pixel: the backward of dout = ones through a kernel of ones
covered = conv2d_backward(np.ones_like(dout), conv2d_forward(x, np.ones_like(w))[1])[0][0, 0]
print("patches over each pixel =\n", covered)
claim(covered[0, 0] == covered[-1, -1] == 1 and np.all(covered[1:3, 1:3] == 4),
      "the corners were under one patch, the four centre pixels under all four")

# %% [markdown]
# Look at `dx`: the corners were under one patch only and got one copy of the kernel; the
# four centre pixels were under all four patches and collected four.
#
# ## 3. The same sums, written as convolutions
#
# Reorder the sums and two classic identities appear; minvert's fast code uses both.
#
# * `dw[i, j] = sum_{oh, ow} dout[oh, ow] x[oh + i, ow + j]` is the input **correlated with
#   dout**: dout plays the kernel.
# * `dx[y, z] = sum_{i, j} w[i, j] dout[y - i, z - j]` is dout, zero-padded by 2, correlated
#   with the kernel **flipped** in both directions: the "transposed convolution". The flip
#   comes from the minus signs: as `i` grows, the output index `y - i` shrinks.

# %%
dw_as_conv = np.array([[np.sum(x[0, 0, i:i + 2, j:j + 2] * dout[0, 0]) for j in range(3)]
                       for i in range(3)])
dout_pad = np.pad(dout[0, 0], 2)  # 2 = KH - 1 zeros on every side
w_flipped = w[0, 0, ::-1, ::-1]
dx_as_conv = np.array([[np.sum(dout_pad[y:y + 3, z:z + 3] * w_flipped) for z in range(4)]
                       for y in range(4)])
print("dw as a correlation of x with dout: rel. error", rel_error(dw_as_conv, dw[0, 0]))
print("dx as dout convolved with the flipped kernel: rel. error", rel_error(dx_as_conv, dx[0, 0]))
claim(rel_error(dw_as_conv, dw[0, 0]) < 1e-12 and rel_error(dx_as_conv, dx[0, 0]) < 1e-12,
      "dw is x correlated with dout, and dx is the padded dout correlated with the flipped kernel")

# %% [markdown]
# ## 4. All the sizes: batches, channels, filters, stride and padding
#
# Real layers add a batch of N images, C input channels, F filters, a stride and zero
# padding. The loops barely change: a patch now spans all C channels, `w` holds F kernels,
# output pixel `(oh, ow)` reads rows `oh*stride .. oh*stride + KH - 1` of the padded input,
# and the gradient of the padding itself is thrown away at the end (it was not an input).
# `np.tensordot` does the sums over channels and kernel offsets for all N and F at once.

# %%
def conv_loops(x, w, b, stride, pad):
    """x (N, C, H, W), w (F, C, KH, KW), b (F,) -> out (N, F, H_out, W_out)."""
    (N, C, H, W), (F, _, KH, KW) = x.shape, w.shape
    H_out, W_out = (H + 2 * pad - KH) // stride + 1, (W + 2 * pad - KW) // stride + 1
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((N, F, H_out, W_out))
    for oh in range(H_out):
        for ow in range(W_out):
            patch = x_pad[:, :, oh * stride:oh * stride + KH, ow * stride:ow * stride + KW]
            out[:, :, oh, ow] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b  # (N, F)
    return out


def conv_loops_backward(dout, x, w, stride, pad):
    """dout (N, F, H_out, W_out) -> dx (N, C, H, W), dw (F, C, KH, KW), db (F,)."""
    (N, C, H, W), (F, _, KH, KW) = x.shape, w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad, dw = np.zeros_like(x_pad), np.zeros_like(w)
    for oh in range(dout.shape[2]):
        for ow in range(dout.shape[3]):
            rows, cols = slice(oh * stride, oh * stride + KH), slice(ow * stride, ow * stride + KW)
            g = dout[:, :, oh, ow]  # (N, F)
            dx_pad[:, :, rows, cols] += np.tensordot(g, w, axes=(1, 0))  # (N, C, KH, KW)
            dw += np.tensordot(g, x_pad[:, :, rows, cols], axes=(0, 0))  # (F, C, KH, KW)
    return dx_pad[:, :, pad:pad + H, pad:pad + W], dw, dout.sum(axis=(0, 2, 3))


x = rng.standard_normal((2, 3, 7, 7))
w = rng.standard_normal((4, 3, 3, 3))
b = rng.standard_normal(4)
out, cache = conv2d_forward(x, w, b, stride=2, pad=1)
print("x", x.shape, "* w", w.shape, "stride 2, pad 1 -> out", out.shape,
      "  (H_out = (7 + 2 - 3) // 2 + 1 = 4)")
print("forward, loops vs minvert: rel. error", rel_error(conv_loops(x, w, b, 2, 1), out))
dout = rng.standard_normal(out.shape)
for name, mine, theirs in zip(("dx", "dw", "db"), conv_loops_backward(dout, x, w, 2, 1),
                              conv2d_backward(dout, cache)):
    print(f"{name}, loops vs minvert: rel. error {rel_error(mine, theirs):.1e}")
    claim(rel_error(mine, theirs) < 1e-12, f"{name}: the loops and minvert's fast code agree")

# %% [markdown]
# ## 5. Numerical derivatives: trust nobody's algebra
#
# Two implementations agreeing proves little if both share a misconception. The numerical
# derivative asks the function itself: nudge one input element by `+h` and `-h`, and see how
# `sum(out * dout)` changes:
#
#     d/dx[k] sum(out * dout)  ~  (sum(out(x + h e_k) * dout) - sum(out(x - h e_k) * dout)) / 2h
#
# `minvert.gradcheck.numerical_vjp` does this for every element in turn. Its result must match
# the backward pass far below minvert's tolerance of 1e-7 (the printed errors are ~1e-11). (Tutorial 02 explains the float64, the h = 1e-5 and the
# random `dout`.)

# %%
for name, arr, analytic in zip(("dx", "dw", "db"), (x, w, b), conv2d_backward(dout, cache)):
    numerical = numerical_vjp(lambda: conv2d_forward(x, w, b, stride=2, pad=1)[0], arr, dout)
    print(f"{name}: analytic vs numerical rel. error {rel_error(analytic, numerical):.1e}")
    claim(rel_error(analytic, numerical) < 1e-9, f"{name} matches the numerical derivative to "
          "better than 1e-9")

# %% [markdown]
# ## 6. The Sobel kernel on a real image
#
# Back to the kernel of section 1, now on a 64x64 texture from minvert's generated data set.
# It responds where brightness changes from left to right, i.e. at vertical edges; its
# transpose `w.T` finds horizontal ones. A CNN's first layer learns kernels much like these.

# %%
from minvert.datasets import make_texture
from minvert.images import save_image
from minvert.plots import panel

img = make_texture("rings", rng=3)  # uint8 (64, 64, 3)
grey = (img @ [0.299, 0.587, 0.114])[None, None] / 255  # luma, (1, 1, 64, 64)
sobel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float64)
edges = []
for kernel in (sobel, sobel.T):
    response = np.abs(conv2d_forward(grey, kernel.reshape(1, 1, 3, 3))[0][0, 0])  # (62, 62)
    grey_edges = np.clip(255 * response / np.percentile(response, 99), 0, 255).astype(np.uint8)
    edges.append(np.repeat(grey_edges[:, :, None], 3, axis=2))  # (64, 64, 3) for the panel
picture = panel([img] + edges, ["image", "|Sobel|: vertical edges", "|Sobel^T|: horizontal"])
save_image(OUT / "01_sobel.png", picture)
print("wrote", OUT / "01_sobel.png")
