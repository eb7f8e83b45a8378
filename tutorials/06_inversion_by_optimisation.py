# %% [markdown]
# # 06 · Inverting a feature vector by optimising the pixels
#
# Tutorial 05 trained a decoder to turn a pooled feature vector back into an image. The other
# classic way (Mahendran & Vedaldi, "Understanding deep image representations by inverting
# them", 2015) trains nothing: start from some image x and change its pixels until the
# encoder's vector Φ(x) matches the given one Φ0, with two priors that keep x an image:
#
#     L(x) = ‖Φ(x) − Φ0‖² / ‖Φ0‖²  +  λ_α R_α(x)  +  λ_TV R_TV(x)
#
# R_α is the mean of |d|^α (d: the pixels centred at mid-grey, in units of the 0..255 span;
# α = 6 punishes extreme values), R_TV the mean of ((right − here)² + (below − here)²)^(β/2)
# (β = 2 punishes noise). It is paper 000's machinery (L-BFGS-B on the pixels, box bounds)
# pointed at a vector instead of a class. We write the objective's gradient check, run it,
# and put it beside the decoder: alone, and starting from the decoder's output.

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
from minvert.datasets import make_dataset
from minvert.gradcheck import directional_check
from minvert.images import resize_exact, save_image
from minvert.layers.loss import binary_cross_entropy
from minvert.metrics import psnr
from minvert.nets.decoder import build_decoder
from minvert.optim import Adam
from minvert.plots import panel
from minvert.reconstruct.invert import FeatureObjective, InvertSettings, invert, tv_prior

OUT = Path(os.environ.get("MINVERT_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="minvert-tutorial-"))
OUT.mkdir(parents=True, exist_ok=True)


def claim(holds, text):
    """Print a claim of the text with whether this run's numbers bear it out; stop if not."""
    print(("claim ok: " if holds else "CLAIM FAILS: ") + text)
    if not holds:
        raise SystemExit(f"a claim of this tutorial does not hold: {text}")


# %% [markdown]
# ## 1. Vectors to invert
#
# The bundled `tiny-resnet-shapes` encoder (128-d pooled features) on 192 new shapes images;
# the first 8 are held out, the decoder of section 4 never sees them.

# %%
encoder = minvert.load_model("tiny-resnet-shapes", device="cpu")
images, labels, names = make_dataset(6, size=64, seed=31, kind="shapes")      # 192 images
order = np.random.default_rng(0).permutation(len(images))
images = images[order]
x_all = encoder.preprocessing.preprocess(images)                              # (192, 3, 64, 64)
features = np.concatenate([encoder.features(x_all[i:i + 64]) for i in range(0, len(images), 64)])
held, train = np.arange(8), np.arange(8, len(images))
mean_img = images[train].mean(axis=0)                                         # float (64, 64, 3)
print("features", features.shape)

# %% [markdown]
# ## 2. The gradient, checked
#
# The feature term's gradient comes from one backward pass through the encoder, started at
# its pooling layer with dL/dΦ = 2 (Φ(x) − Φ0) / ‖Φ0‖²; the priors' gradients are written out
# in `minvert/reconstruct/invert.py`. In float64, the directional derivative along a random
# direction must match the finite difference.

# %%
enc64 = minvert.load_model("tiny-resnet-shapes", device="cpu", dtype="float64").freeze()
check = InvertSettings(alpha=6, lambda_alpha=1.0, beta=2, lambda_tv=5.0)
objective = FeatureObjective(enc64, features[:2].astype(np.float64), check)
x = np.clip(x_all[2:4].astype(np.float64) + 0.05 * np.random.default_rng(1).normal(size=(2, 3, 64, 64)), 0, 1)
total, terms, dx = objective.evaluate(x)
_, _, err = directional_check(lambda: float(objective.evaluate(x)[0]), [x], [dx], h=1e-5,
                             rng=np.random.default_rng(2))
print(f"objective {float(total):.4f}: feature {terms['feature']}, alpha {terms['alpha']}, tv {terms['tv']}; "
      f"relative error {err:.1e}")
claim(err < 1e-7, "the directional derivative of the whole objective equals the finite difference")

# %% [markdown]
# ## 3. Optimisation alone
#
# Start every held-out image from the mean training image and run 20 L-BFGS-B iterations
# (the 8 images are one batch: their losses add, and each image's gradient is its own).
# Once with the TV prior, once without it.

# %%
start = encoder.preprocessing.preprocess(np.repeat(mean_img[None], len(held), 0))
targets = features[held]
runs = {}
for lam in (5.0, 0.0):
    x, record = invert(encoder, targets, start, InvertSettings(iters=20, lambda_tv=lam))
    runs[lam] = (encoder.preprocessing.deprocess(x), record)
alone, record = runs[5.0]
before, after = np.mean(record["before"]["feature"]), np.mean(record["after"]["feature"])
print(f"relative squared feature distance: {before:.3f} at the mean image -> {after:.4f}")
claim(after < before / 10, "the optimisation brings the vector more than 10 times closer")


def mean_psnr(results):
    return np.mean([psnr(r / 255, images[i] / 255) for r, i in zip(results, held)])


base = np.mean([psnr(mean_img / 255, images[i] / 255) for i in held])
print(f"PSNR to the originals: mean image {base:.2f} dB, optimisation alone {mean_psnr(alone):.2f} dB")
claim(abs(mean_psnr(alone) - base) < 1.5,
      "matching the vector does not bring the picture back: the pixels stay within 1.5 dB of the start")
tv = {lam: float(tv_prior(encoder.preprocessing.preprocess(res).astype(np.float64), 2.0)[0].mean())
      for lam, (res, _) in runs.items()}
print(f"R_TV of the results: {tv[5.0]:.5f} with the prior, {tv[0.0]:.5f} without")
claim(tv[5.0] < tv[0.0], "the TV prior gives a smoother result than no prior")

# %% [markdown]
# Many images share (nearly) one vector. The optimiser finds the one nearest its start: a
# mean image with faint changes the encoder reads, not the original. Something must say what
# images usually look like, and the decoder has learned exactly that.
#
# ## 4. The decoder, and refinement from its output
#
# A small decoder as in tutorial 05 (Adam, 25 epochs on the 184 training images), then the
# same optimisation, 10 iterations, started from its output (resized to the encoder's 64x64).

# %%
decoder = build_decoder({"feature_size": 128, "start": [2, 2, 32], "widths": [64, 48, 32, 16]},
                        rng=np.random.default_rng(0)).train()
targets32 = (np.stack([resize_exact(im, 32, "box") for im in images]) / 255).astype(np.float32)
targets32 = targets32.transpose(0, 3, 1, 2)                                   # (N, 3, 32, 32)
adam, rng = Adam(lr=1e-3), np.random.default_rng(1)
for epoch in range(25):
    for batch in np.array_split(rng.permutation(train), len(train) // 23):
        loss, dout = binary_cross_entropy(decoder.forward(features[batch]), targets32[batch])
        decoder.backward(dout)
        adam.step(decoder.parameters())
decoder.eval()
decoded = np.rint(decoder.predict(features[held]).transpose(0, 2, 3, 1) * 255).astype(np.uint8)
decoded64 = np.stack([resize_exact(im, 64) for im in decoded])               # what the encoder sees
x, record = invert(encoder, targets, encoder.preprocessing.preprocess(decoded64), InvertSettings(iters=10))
refined = encoder.preprocessing.deprocess(x)


def distance(results):
    """‖Φ(result) − Φ0‖ / ‖Φ0‖ per image, after rounding to 0..255."""
    phi = encoder.features(encoder.preprocessing.preprocess(results))
    return np.linalg.norm(phi - targets, axis=1) / np.linalg.norm(targets, axis=1)


d_dec, d_ref = distance(decoded64), distance(refined)
p_dec, p_ref = mean_psnr(decoded64), mean_psnr(refined)
print(f"decoder: distance {d_dec.mean():.3f}, PSNR {p_dec:.2f} dB; refined: distance {d_ref.mean():.3f}, "
      f"PSNR {p_ref:.2f} dB; optimisation alone: distance {distance(alone).mean():.3f}")
# one batch objective: L-BFGS-B may trade a little of one image's distance for a lot of
# another's, so "most images" (3 in 4), not every one
claim(d_ref.mean() < d_dec.mean() and np.mean(d_ref < d_dec) >= 0.75,
      "refinement ends closer in feature space than the decoder, on average and for most images")
claim(p_dec > mean_psnr(alone) + 1, "the decoder's pixels are closer to the originals than optimisation alone's")
claim(abs(p_ref - p_dec) < 1.0, "refinement keeps the decoder's pixels: PSNR within 1 dB of the decoder's")

# %% [markdown]
# So the two complement each other: the decoder brings back what the picture looked like, the
# optimisation makes it agree with the vector. `minvert reconstruct compare RUN CACHE` runs all
# four (mean image, decoder, optimisation, decoder + refinement) on a run's held-out images
# with intervals; `minvert reconstruct invert` inverts given vectors (`--run` to start from a
# decoder). Re-identification of optimised images is no evidence of likeness: they were made
# to please the very encoder that ranks them.

# %%
tiles, captions = [], []
for k in range(4):
    for img, cap in ((images[held[k]], "original"), (decoded64[k], "decoder"),
                     (alone[k], "optimisation"), (refined[k], "refined")):
        tiles.append(img)
        captions.append(cap)
save_image(OUT / "06_inversion.png", panel(tiles, captions, min_side=96, columns=4))
print("wrote", OUT / "06_inversion.png")
