# %% [markdown]
# # 04 · Class inversion, step by step
#
# Paper 000 changes a photo until VGG-19 calls it a chosen class (a cat becomes a tiger).
# It does not train the network: the network is frozen, and the *pixels* are the variables.
# L-BFGS-B minimises a loss over them, and the loss's gradient w.r.t. the pixels comes from
# one backward pass (tutorial 03).
#
# We do it on `tiny-vgg-textures`, a small VGG that minvert trained on its own generated
# textures (stripes, checkerboard, dots, ...), so everything runs in seconds on a CPU. The
# same code runs on the real VGG-19 (`minvert transform --model vgg19 ...`).

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
from scipy.optimize import Bounds, minimize

from minvert.datasets import CLASSES, make_texture
from minvert.images import save_image
from minvert.transform.losses import Multipliers, tv_loss
from minvert.plots import amplified_difference, panel
from minvert.transform import Objective, Settings, probabilities, transform
from minvert.weights import BUNDLED_DIR

OUT = Path(os.environ.get("MINVERT_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="minvert-tutorial-"))
OUT.mkdir(parents=True, exist_ok=True)


def claim(holds, text):
    """A sentence of this tutorial's text, checked on this run's numbers; tests/test_tutorials.py
    reads these lines, so the text cannot drift from what the code shows."""
    print(("claim ok: " if holds else "CLAIM FAILS: ") + text)
    if not holds:
        raise SystemExit(f"a claim of this tutorial does not hold: {text}")

# %% [markdown]
# ## 1. The network and the image
#
# The bundled model ships with minvert. If this checkout lacks it, we fall back to the same
# architecture with random weights: every step below still works and still shows the
# mechanics, but the classes then mean nothing.

# %%
if (BUNDLED_DIR / "tiny-vgg-textures.h5").exists():
    # on the CPU, even when a GPU is the default: every array below is a NumPy array that
    # scipy and printing take as it is (on a GPU, arrays cross with net.xp.asarray / to_numpy)
    net = minvert.load_model("tiny-vgg-textures", device="cpu")
else:
    from minvert.nets.tiny import build_tiny
    print("NOTE: the bundled tiny-vgg-textures is missing; using RANDOM weights, so the class\n"
          "names below are arbitrary (train one with `minvert train --arch tiny-vgg`).")
    net = build_tiny("tiny-vgg", len(CLASSES), labels=list(CLASSES), rng=np.random.default_rng(0))
net.freeze()  # inference mode, and no weight gradients: only the pixels will change
print(f"{net.config['arch']}, {net.num_params():,} weights, classes: {', '.join(net.labels)}")

img = make_texture("stripes", rng=7)  # uint8 (64, 64, 3)
x0 = net.preprocess(img)  # (1, 3, 64, 64) float32: this model reads RGB scaled to [0, 1]
p0 = probabilities(net.predict(x0))
print("the network sees:", ", ".join(f"{net.labels[i]} {p0[i]:.3f}" for i in np.argsort(-p0)[:3]))
target = net.labels.index("checkerboard")
trained = (BUNDLED_DIR / "tiny-vgg-textures.h5").exists()  # random weights make no claims
if trained:
    claim(net.labels[int(np.argmax(p0))] == "stripes" and p0.max() > 0.9,
          "the network sees stripes, with p > 0.9")

# %% [markdown]
# ## 2. The objective and its gradient w.r.t. the pixels
#
# The class loss is the softmax cross-entropy to the target, `-log p_target`. Its gradient
# w.r.t. the logits is `p - onehot(target)`: it raises the target's logit and lowers every
# other class in proportion to its probability. `net.backward` carries it down to the pixels.
#
# `minvert.transform.Objective` assembles this, plus the paper's optional terms (content,
# style, total variation, colour), each weighted by a multiplier. All multipliers are 0
# here, so only the class term is active.

# %%
settings = Settings(target=target)  # Multipliers() = (0, 0, 0, 0): class loss only
objective = Objective(net, x0, settings)
total, terms, logits, dx = objective(x0)
print(f"loss {total:.3f} = -log p(checkerboard), p = {np.exp(-total):.2e}")
print(f"gradient w.r.t. the pixels: shape {dx.shape}, largest |d loss / d pixel| {np.abs(dx).max():.3f}")

# %% [markdown]
# ## 3. One L-BFGS-B step, by hand with scipy
#
# scipy wants a function of a flat float64 vector that returns the value and the gradient
# (`jac=True`). The pixels must stay valid, 0..255 in the image, here [0, 1] in the
# network's input space; that is what the "B" (bounds) of L-BFGS-B is for.
#
# The first iteration has no curvature information yet. It is a gradient step, projected
# onto the box, whose length a line search picks. It may evaluate the objective more than
# once (`nfev`).

# %%
def fun(v):
    total, terms, logits, dx = objective(v.reshape(x0.shape).astype(np.float32))
    return total, dx.astype(np.float64).ravel()


v0 = x0.astype(np.float64).ravel()
res = minimize(fun, v0, jac=True, method="L-BFGS-B", bounds=Bounds(0.0, 1.0),
               options={"maxiter": 1})
x1 = res.x.reshape(x0.shape).astype(np.float32)
p1 = probabilities(net.predict(x1))
print(f"after 1 iteration ({res.nfev} evaluations): p(checkerboard) {p0[target]:.2e} -> "
      f"{p1[target]:.4f}; mean |change| {255 * np.abs(x1 - x0).mean():.1f} / 255")

# %% [markdown]
# Later iterations remember the last few steps `s` and gradient changes `y` (8 of each, as
# in the paper's code). From them L-BFGS builds a cheap estimate of the inverse Hessian, the
# loss's curvature, and turns the gradient into a much better step. We let it run, printing
# progress from a callback.

# %%
def report(v, count=[0]):  # scipy calls this after every iteration
    count[0] += 1
    p = probabilities(net.predict(v.reshape(x0.shape).astype(np.float32)))
    print(f"  iteration {count[0]}: p(checkerboard) {p[target]:.4f}")


res = minimize(fun, v0, jac=True, method="L-BFGS-B", bounds=Bounds(0.0, 1.0), callback=report,
               options={"maxiter": 8, "maxcor": 8})
plain = net.deprocess(res.x.reshape(x0.shape))[0]
print(f"{res.nit} iterations, {res.nfev} evaluations: {res.message}")
p_plain = probabilities(net.predict(res.x.reshape(x0.shape).astype(np.float32)))[target]
if trained:
    claim(p_plain > 0.99, f"after {res.nit} iterations the network is convinced: p(checkerboard) "
          f"{p_plain:.4f} > 0.99")

# %% [markdown]
# The network is convinced, but look at the result below: the first steps are large, and
# what the pixels gained is mostly high-frequency noise that a person would never call a
# checkerboard. That is why the paper adds terms that keep the image natural. The simplest
# is **total variation**, the sum of absolute differences between neighbouring pixels,
# which charges every bit of new noise.
#
# ## 4. Masks: change only part of the image
#
# The paper draws masks by hand (white = may change) to turn only a cat's face into a
# tiger's. The gradient is multiplied by the mask, and the masked-out pixels get bounds
# `low = high = original`, so they come back bit-identical. Here we let only the left half
# change.

# %%
mask = np.zeros((64, 64))
mask[:, :32] = 1.0
masked_objective = Objective(net, x0, settings, mask=mask[None, None].astype(np.float32))
dx_masked = masked_objective(x0)[3]
print(f"masked gradient: largest |d| on the left {np.abs(dx_masked[..., :32]).max():.3f}, "
      f"on the right {np.abs(dx_masked[..., 32:]).max():.3f}")
claim(not dx_masked[..., 32:].any() and dx_masked[..., :32].any(),
      "the masked gradient is zero on the right half and not on the left")

summary = transform(net, img, Settings(target=target, iters=8), mask=mask, log=lambda *a: None)
masked = summary["result"]
print(f"masked transform: p(checkerboard) {summary['probability_after']:.4f}")
claim(np.array_equal(masked[:, 32:], img[:, 32:]), "the right half comes back bit-identical")

# %% [markdown]
# ## 5. `transform()`: everything together
#
# `minvert.transform.transform` is what `minvert transform` runs. It does the steps above,
# adds the optional terms, logs every iteration and writes `result.png`, `panel.png`,
# `summary.json` and `log.jsonl`. We switch on total variation.
#
# The paper's multipliers (1e-14 ... 1e-6) are for VGG-19's raw Caffe sums on 0-255
# pixels. This model reads [0, 1], so its useful TV multiplier is much larger: 1e-3. The
# next lines compute how the weighted TV of the original compares with the class loss it
# starts from.

# %%
tv0 = float(tv_loss(x0.astype(np.float64))[0])
print(f"TV of the original {tv0:.0f}; 1e-3 * TV = {1e-3 * tv0:.2f} against a class loss of "
      f"{total:.1f} at the start: 1/{total / (1e-3 * tv0):.0f} of it")
smooth_settings = Settings(target=target, iters=8, multipliers=Multipliers(tv=1e-3))
summary = transform(net, img, smooth_settings, out_dir=OUT / "04_transform", force=True)
smooth = summary["result"]


def tv(image):
    return float(tv_loss(image.astype(np.float64).transpose(2, 0, 1)[None])[0])


measured = {}  # name -> (p, mean |change|, TV ratio)
for name, result in (("class loss only", plain), ("with TV 1e-3", smooth), ("masked", masked)):
    p = probabilities(net.predict(net.preprocess(result)))[target]
    measured[name] = (p, np.abs(result.astype(float) - img).mean(), tv(result) / tv(img))
    print(f"{name:<16} p(checkerboard) {p:.4f}   mean |change| {measured[name][1]:5.1f} / 255   "
          f"TV ratio {measured[name][2]:.2f}")
(p_c, change_c, rough_c), (p_tv, change_tv, rough_tv) = measured["class loss only"], measured["with TV 1e-3"]
if trained:
    claim(rough_c > 2, f"the class loss alone makes the image rougher: TV ratio {rough_c:.2f} > 2")
    claim(p_tv > 0.9, f"with TV the probability still rises above 0.9 ({p_tv:.4f})")
    claim(change_tv < 0.5 * change_c, f"with TV the pixels change less than half as much "
          f"({change_tv:.1f} vs {change_c:.1f} / 255)")
    claim(rough_tv < 0.5 * rough_c, f"with TV the image ends much less rough: TV ratio "
          f"{rough_tv:.2f} vs {rough_c:.2f}")
    claim(rough_tv > 1, "the TV ratio with TV still exceeds 1 (a checkerboard has more edges "
          "than stripes)")

(d_plain, gain_plain), (d_smooth, gain_smooth) = (amplified_difference(r, img) for r in (plain, smooth))
save_image(OUT / "04_class_inversion.png", panel(
    [img, plain, smooth, masked, d_plain, d_smooth],
    ["original (stripes)", "class loss only", "with TV", "left half only",
     f"|change| x{gain_plain:.0f}, class only", f"|change| x{gain_smooth:.0f}, with TV"], columns=4))
print("wrote", OUT / "04_class_inversion.png", "and", OUT / "04_transform")

# %% [markdown]
# With TV the probability still rises above 0.9, yet the pixels change less than half as
# much, and the image ends far less rough than with the class loss alone (the claims above
# give this run's numbers; the TV ratio still exceeds 1: a checkerboard has more edges than
# stripes). The network needed only a smaller, smoother nudge; much of the noise was the
# optimiser's doing, not the class's.
#
# From here: `minvert transform --help` runs the paper's presets (content, style and colour
# terms, masks, jitter) on VGG-19, and `docs/` has the derivations of every gradient used.
