# %% [markdown]
# # 05 · Training the decoder, and measuring what comes back
#
# Paper 003 asks how much of an image survives in a network's pooled feature vector. It
# trains a decoder — reshape the vector to a small map, then [3x3 conv -> LeakyReLU ->
# nearest 2x upsampling] a few times, then a 2x2 conv and a sigmoid — to turn ResNet-50's
# 2048-d feature back into the picture, with binary cross-entropy and Adadelta.
#
# Here the encoder is the bundled `tiny-resnet-textures` (128-d features) and the images are
# minvert's generated textures, so the whole loop fits in seconds. We write the training loop
# by hand once — forward, loss, backward, one Adadelta step — and then measure: PSNR and SSIM
# against the mean-image baseline, and whether a reconstruction can be *re-identified*.

# %%
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import minvert
except ModuleNotFoundError:  # not installed (`pip install -e .`): use the checkout around this file
    here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
    sys.path.insert(0, str(here.parent))
    import minvert
from minvert.datasets import make_dataset
from minvert.images import resize_exact, save_image
from minvert.layers.loss import binary_cross_entropy
from minvert.metrics import psnr, reidentification_rate, ssim
from minvert.nets.decoder import build_decoder
from minvert.optim import Adadelta
from minvert.plots import panel

OUT = Path(os.environ.get("MINVERT_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="minvert-tutorial-"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. Features and targets
#
# The encoder's *global-average-pooled* feature, one 128-d vector per image (the paper's code
# used ResNet-50's 2048-d one; beware old Keras code that picks a single spatial position
# instead). Targets are the images themselves at the decoder's output size, in [0, 1].

# %%
# On the CPU even when a GPU is the default, like the decoder below (build_decoder makes NumPy
# arrays): every array here is NumPy. `minvert reconstruct train` does the same on the GPU.
encoder = minvert.load_model("tiny-resnet-textures", device="cpu")
images, labels, _ = make_dataset(5, size=64, seed=11)           # 40 textures, 5 per class
order = np.random.default_rng(0).permutation(len(images))
images = images[order]
features = encoder.features(encoder.preprocessing.preprocess(images))   # (40, 128)
print("features", features.shape, "min", float(features.min()), "(ReLU averages: never negative)")

SIZE = 32
targets = np.stack([resize_exact(im, SIZE) for im in images]).astype(np.float32) / 255
targets = targets.transpose(0, 3, 1, 2)                           # (N, 3, 32, 32)
train, held = np.arange(8, 40), np.arange(8)                       # first 8 held out

# %% [markdown]
# ## 2. The decoder
#
# `build_decoder` builds the paper's architecture from a config; here 128 = 4x4x8 is the
# starting map and three stages of 32/16/8 filters upsample 4 -> 32. Kernels are
# Glorot-uniform and biases zero, as Keras initialises them.

# %%
decoder = build_decoder({"feature_size": 128, "start": [4, 4, 8], "widths": [32, 16, 8]},
                        rng=np.random.default_rng(0))
print(decoder)
print(f"{decoder.num_params():,} parameters; output {decoder.output_size}x{decoder.output_size}")

# %% [markdown]
# ## 3. The training loop, by hand
#
# One step: forward, loss and its gradient, backward (every layer stores its weight gradients
# in `layer.grads`), then Adadelta updates every parameter in place:
#
#     E[g²] <- ρ E[g²] + (1-ρ) g²
#     Δ     =  g · sqrt(E[Δ²] + ε) / sqrt(E[g²] + ε)
#     p     <- p - lr · Δ
#     E[Δ²] <- ρ E[Δ²] + (1-ρ) Δ²
#
# (the paper's Keras defaults: lr 1, ρ 0.95, ε 1e-8). Adadelta needs no learning rate, but it
# starts slowly: its first steps are about sqrt(ε/(1-ρ)) ≈ 4.5e-4 per parameter.

# %%
decoder.train()
decoder.layers["to_map"].need_dx = False        # no one needs the gradient w.r.t. the features
optimizer = Adadelta()
rng = np.random.default_rng(1)
losses, start = [], time.perf_counter()
for epoch in range(400):
    for batch in np.array_split(rng.permutation(train), 4):
        out = decoder.forward(features[batch])
        loss, dout = binary_cross_entropy(out, targets[batch])
        decoder.backward(dout)
        optimizer.step(decoder.parameters())
    losses.append(float(loss))
decoder.eval()
print(f"BCE {losses[0]:.4f} -> {losses[-1]:.4f} in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# ## 4. How much came back?
#
# PSNR and SSIM compare pixels and local structure; the **mean training image** is the
# baseline a decoder must beat to have learnt anything about the individual image.
# **Re-identification** asks the paper's anonymisation question directly: encode each
# reconstruction again, and see whether its nearest original (cosine) is its own source.

# %%
recon = decoder.predict(features).transpose(0, 2, 3, 1)          # (N, 32, 32, 3) in [0, 1]
truth = targets.transpose(0, 2, 3, 1)
mean_img = truth[train].mean(axis=0)
recon_u8 = np.rint(recon * 255).astype(np.uint8)
recon_feat = encoder.features(encoder.preprocessing.preprocess(
    np.stack([resize_exact(im, 64) for im in recon_u8])))
for name, rows in (("train", train), ("held-out", held)):
    p = np.mean([psnr(recon[i], truth[i]) for i in rows])
    s = np.mean([ssim(recon[i], truth[i]) for i in rows])
    pb = np.mean([psnr(mean_img, truth[i]) for i in rows])
    sb = np.mean([ssim(mean_img, truth[i]) for i in rows])
    reid = reidentification_rate(recon_feat[rows], np.concatenate([features[rows], features[
        np.setdiff1d(np.arange(len(features)), rows)]]))
    print(f"{name:>8}: PSNR {p:5.2f} dB (mean image {pb:5.2f}), SSIM {s:.3f} (mean image {sb:.3f}), "
          f"re-identified top-1 {reid['top1']:.0%}, top-5 {reid['top5']:.0%}")

# %% [markdown]
# Some seconds of training on 32 images are enough to see the pattern the paper reports, and that
# `minvert reconstruct` measures at scale: training images come back better than the mean
# image, unseen ones hardly. The full experiment, with the paper's decoder and ResNet-50:
# `docs/reproducing.md`.

# %%
pairs = [im for i in list(held[:4]) + list(train[:4]) for im in (recon_u8[i], images[i])]
captions = [c for i in list(held[:4]) + list(train[:4])
            for c in (f"{'held-out' if i in held else 'train'} {i}: recon", "original")]
save_image(OUT / "05_reconstructions.png", panel(pairs, captions, min_side=64, columns=4))
print("wrote", OUT / "05_reconstructions.png")
