# %% [markdown]
# # 05 · Training the decoder, and measuring what comes back
#
# Paper 003 asks how much of an image survives in a network's pooled feature vector. It
# trains a decoder — reshape the vector to a small map, then [3x3 conv -> LeakyReLU ->
# nearest 2x upsampling] a few times, then a 2x2 conv and a sigmoid — to turn ResNet-50's
# 2048-d feature back into the picture, with binary cross-entropy and Adadelta. Its answer:
# training images come back, unseen ones only as their "main concepts".
#
# Here the encoder is the bundled `tiny-resnet-shapes` (128-d features), a small ResNet that
# minvert trained to name generated images of coloured shapes: 32 classes, *colour family x
# shape x dark or light background*, each object at a random position, size and shade. To
# name them it must see colour, shape and background, so its vector carries them, as an
# ImageNet network's carries colour, category and setting. We write the training loop by
# hand once — forward, loss, backward, one optimiser step — and then measure on 60 images
# the decoder never saw: PSNR and SSIM against the mean-image baseline, and whether a
# reconstruction can be *re-identified* among all 480 originals, with 95 % intervals.

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
from minvert.metrics import (bootstrap_mean_interval, psnr, reidentification_rate, ssim,
                             wilson_interval)
from minvert.nets.decoder import build_decoder
from minvert.optim import Adam
from minvert.plots import panel

OUT = Path(os.environ.get("MINVERT_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="minvert-tutorial-"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. Features and targets
#
# The encoder's *global-average-pooled* feature, one 128-d vector per image (the paper's code
# used ResNet-50's 2048-d one; beware old Keras code that picks a single spatial position
# instead). Targets are the images themselves at the decoder's output size, in [0, 1].
# 480 new images (15 per class, a seed the encoder never trained on), shuffled; the first 60
# are held out: the decoder never sees them.

# %%
# On the CPU even when a GPU is the default, like the decoder below (build_decoder makes NumPy
# arrays): every array here is NumPy. `minvert reconstruct train` does the same on the GPU.
encoder = minvert.load_model("tiny-resnet-shapes", device="cpu")
images, labels, names = make_dataset(15, size=64, seed=11, kind="shapes")   # 480 images
order = np.random.default_rng(0).permutation(len(images))
images, labels = images[order], labels[order]
features = np.concatenate([encoder.features(encoder.preprocessing.preprocess(images[i:i + 96]))
                           for i in range(0, len(images), 96)])     # (480, 128)
print("features", features.shape, "min", float(features.min()), "(ReLU averages: never negative)")

SIZE = 32
targets = np.stack([resize_exact(im, SIZE, "box") for im in images]).astype(np.float32) / 255
targets = targets.transpose(0, 3, 1, 2)                           # (N, 3, 32, 32)
held, train = np.arange(60), np.arange(60, len(images))            # first 60 held out

# %% [markdown]
# ## 2. The decoder
#
# `build_decoder` builds the paper's architecture from a config. The paper reshapes 2048 =
# 4x4x128; reshaping our 128 numbers to 4x4x8 would leave 8 per cell, and the first 3x3
# convolution at 4x4 would let each part of the image hear only part of the vector (blotchy
# reconstructions). So: 128 = 2x2x32, then four stages of 64/48/32/16 filters upsample
# 2 -> 32. Kernels are Glorot-uniform and biases zero, as Keras initialises them.

# %%
decoder = build_decoder({"feature_size": 128, "start": [2, 2, 32], "widths": [64, 48, 32, 16]},
                        rng=np.random.default_rng(0))
print(decoder)
print(f"{decoder.num_params():,} parameters; output {decoder.output_size}x{decoder.output_size}")

# %% [markdown]
# ## 3. The training loop, by hand
#
# One step: forward, loss and its gradient, backward (every layer stores its weight gradients
# in `layer.grads`), then the optimiser updates every parameter in place. The paper uses
# Adadelta (the paper's tf.keras defaults: lr 1, ρ 0.95, ε 1e-8):
#
#     E[g²] <- ρ E[g²] + (1-ρ) g²
#     Δ     =  g · sqrt(E[Δ²] + ε) / sqrt(E[g²] + ε)
#     p     <- p - lr · Δ
#     E[Δ²] <- ρ E[Δ²] + (1-ρ) Δ²
#
# It needs no learning rate, but starts slowly: its first steps are about
# sqrt(ε/(1-ρ)) ≈ 4.5e-4 per parameter, and it needs hundreds of epochs. To fit a CPU budget of
# seconds we use Adam (lr 1e-3), whose steps start at about lr per parameter; swap in
# `minvert.optim.Adadelta()` to train as the paper does (`minvert reconstruct train` does by
# default). 40 epochs of 21 batches of 20.

# %%
decoder.train()
decoder.layers["to_map"].need_dx = False        # no one needs the gradient w.r.t. the features
optimizer = Adam(lr=1e-3)
rng = np.random.default_rng(1)
losses, start = [], time.perf_counter()
for epoch in range(40):
    batch_losses = []
    for batch in np.array_split(rng.permutation(train), len(train) // 20):
        out = decoder.forward(features[batch])
        loss, dout = binary_cross_entropy(out, targets[batch])
        decoder.backward(dout)
        optimizer.step(decoder.parameters())
        batch_losses.append(float(loss))
    # the epoch's mean (the batches are equal within one image): one minibatch's loss jumps
    # with the images it drew and can look as if training went backwards
    losses.append(float(np.mean(batch_losses)))
    if (epoch + 1) % 10 == 0:
        print(f"epoch {epoch + 1}: mean BCE over the epoch {losses[-1]:.4f} "
              f"({time.perf_counter() - start:.0f} s)")
decoder.eval()

# %% [markdown]
# ## 4. How much came back?
#
# PSNR and SSIM compare pixels and local structure; the **mean training image** is the
# baseline a decoder must beat to have learnt anything about the individual image.
# **Re-identification** asks the paper's anonymisation question directly: encode each
# reconstruction again, and see whether its nearest original (cosine) among all 480 is its
# own source; **chance** is 1/480. The intervals say how far the numbers could move with
# another draw of images: a bootstrap over the images for the PSNR gain, Wilson's interval
# for the re-identification rate.

# %%
recon = decoder.predict(features).transpose(0, 2, 3, 1)          # (N, 32, 32, 3) in [0, 1]
truth = targets.transpose(0, 2, 3, 1)
mean_img = truth[train].mean(axis=0)
recon_u8 = np.rint(recon * 255).astype(np.uint8)
recon_feat = encoder.features(encoder.preprocessing.preprocess(
    np.stack([resize_exact(im, 64, "nearest") for im in recon_u8])))
chance = 1 / len(images)
results = {}
for name, rows in (("train", train), ("held-out", held)):
    gain = np.array([psnr(recon[i], truth[i]) - psnr(mean_img, truth[i]) for i in rows])
    s = np.mean([ssim(recon[i], truth[i]) for i in rows])
    sb = np.mean([ssim(mean_img, truth[i]) for i in rows])
    others = np.setdiff1d(np.arange(len(images)), rows)
    reid = reidentification_rate(recon_feat[rows], np.concatenate([features[rows], features[others]]))
    lo, hi = bootstrap_mean_interval(gain)
    rlo, rhi = wilson_interval(round(reid["top1"] * len(rows)), len(rows))
    results[name] = {"gain": gain.mean(), "ssim": s, "ssim_base": sb, "top1": reid["top1"]}
    print(f"{name:>8} ({len(rows)}): PSNR {gain.mean():+.2f} dB over the mean image [95% {lo:+.2f}, {hi:+.2f}], "
          f"SSIM {s:.3f} (mean image {sb:.3f}), re-identified top-1 {reid['top1']:.1%} "
          f"[{rlo:.1%}, {rhi:.1%}] (chance {chance:.2%}), top-5 {reid['top5']:.1%}")

# %% [markdown]
# Seconds of training are enough to see what the paper reports: training images come back
# best, and images the decoder never saw still come back clearly better than the mean image,
# and are picked out among 480 far more often than chance. What comes back is their main
# concepts (the object's colour, the dark or light scene, a blob roughly where the object
# is); what does not is the exact outline and position, and the background's texture — look
# at the pairs below. The claims, checked:

# %%
ho = results["held-out"]
assert ho["gain"] >= 1.0, "unseen images should beat the mean image by at least 1 dB"
assert ho["ssim"] > ho["ssim_base"], "and in structure (SSIM)"
assert ho["top1"] >= 10 * chance, "and be re-identified far above chance"
assert results["train"]["gain"] > ho["gain"], "training images come back better than unseen ones"
print("checked: held-out PSNR >= mean image + 1 dB, SSIM above it, re-identification >= 10x chance")

# %%
pretty = lambda k: names[k].replace("-on-", "\non ").replace("-", " ")  # noqa: E731
show = list(held[:6]) + list(train[:2])
pairs = [im for i in show for im in (resize_exact(recon_u8[i], 64, "nearest"), images[i])]
captions = [c for i in show for c in (f"{'held-out' if i in held else 'train'} {i}: recon\n",
                                      f"original\n{pretty(labels[i])}")]
save_image(OUT / "05_reconstructions.png", panel(pairs, captions, min_side=128, columns=4))
print("wrote", OUT / "05_reconstructions.png")
