# %% [markdown]
# # 03 · VGG from layers, and a gradient followed back to the pixels
#
# VGG (Simonyan & Zisserman, 2014) is the network of paper 000, and the simplest
# classifier there is: stages of 3x3 convolutions with ReLUs, each stage ending in a 2x2
# max-pool, then a few fully connected layers. In minvert it is just a list of named layers.
#
# We build a small one by hand, check it against `minvert.nets.vgg.build_vgg`, run it layer
# by layer, and then follow a gradient from the loss all the way back to the pixels. That
# backward walk to the image is the engine of paper 000.

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
from minvert.datasets import make_texture
from minvert.gradcheck import directional_check, rel_error
from minvert.images import save_image
from minvert.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, softmax_cross_entropy
from minvert.nets.sequential import Sequential
from minvert.nets.vgg import CONVS_PER_STAGE, build_vgg
from minvert.plots import panel

OUT = Path(os.environ.get("MINVERT_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="minvert-tutorial-"))
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)


def claim(holds, text):
    """A sentence of this tutorial's text, checked on this run's numbers; tests/test_tutorials.py
    reads these lines, so the text cannot drift from what the code shows."""
    print(("claim ok: " if holds else "CLAIM FAILS: ") + text)
    if not holds:
        raise SystemExit(f"a claim of this tutorial does not hold: {text}")

# %% [markdown]
# ## 1. A two-stage VGG, by hand
#
# Caffe's names, which minvert keeps: `convS_K` is the K-th convolution of stage S, `reluS_K`
# its ReLU, `poolS` closes the stage; then `flatten`, `fc6`, `relu6`, `fc7`, ... The 3x3
# convolutions use padding 1, so they keep the size, and each pool halves it. A 32x32 input
# is therefore 8x8 after two stages, and `fc6` sees 16 channels x 8 x 8 = 1024 numbers.

# %%
layers = [("conv1_1", Conv2D(3, 8, 3, pad=1, rng=rng)), ("relu1_1", ReLU()),
          ("pool1", MaxPool2D(2)),
          ("conv2_1", Conv2D(8, 16, 3, pad=1, rng=rng)), ("relu2_1", ReLU()),
          ("pool2", MaxPool2D(2)),
          ("flatten", Flatten()),
          ("fc6", Dense(16 * 8 * 8, 32, rng=rng)), ("relu6", ReLU()),
          ("fc7", Dense(32, 4, rng=rng))]
net = Sequential(layers)
print(net)

# %% [markdown]
# `build_vgg` makes the same network from a config. `convs` gives the convolutions per
# stage, `widths` their channels, `fc` the hidden fully connected sizes. Real VGG-19 is
# `{"depth": 19}`: five stages of [2, 2, 4, 4, 4] convolutions, 64 to 512 channels, two fc
# layers of 4096. We copy our weights into the built one by layer name, as the weight
# readers do, and both must compute exactly the same thing.

# %%
config = {"depth": None, "convs": [1, 1], "widths": [8, 16], "fc": [32], "num_classes": 4,
          "input_size": 32}
built = build_vgg(config)
claim(built.names == net.names, "build_vgg gives the same layer names")
for name, layer in net.children():
    for key, value in layer.params.items():
        built[name].params[key][...] = value
x = rng.uniform(0, 1, (2, 3, 32, 32)).astype(np.float32)
claim(np.array_equal(built.forward(x), net.forward(x)), "and computes exactly the same thing")

stages = CONVS_PER_STAGE[19]
names = [f"conv{s}_{k}" for s, n in enumerate(stages, 1) for k in range(1, n + 1)]
print(f"VGG-19 has {len(names)} convolutions ({names[0]} ... {names[-1]}) and 3 fc layers")
claim(list(stages) == [2, 2, 4, 4, 4], "VGG-19 has five stages of [2, 2, 4, 4, 4] convolutions")

# %% [markdown]
# ## 2. Forward, one layer at a time
#
# `Sequential.forward` is a loop: each layer's output is the next one's input. Done by hand,
# we can print what happens to the shape and to the values on the way. The input is a
# 32x32 texture, scaled to [0, 1].

# %%
img = make_texture("checkerboard", rng=5, size=32)  # uint8 (32, 32, 3)
x = (img.transpose(2, 0, 1)[None] / 255).astype(np.float32)  # (1, 3, 32, 32)
a = x
print(f"{'layer':<8} {'output shape':<16} {'mean':>8} {'std':>8}")
for name, layer in net.children():
    a = layer.forward(a)
    print(f"{name:<8} {str(a.shape):<16} {a.mean():8.3f} {a.std():8.3f}")
    if name == "pool2":
        claim(a.shape[2:] == (8, 8) and a[0].size == 1024,
              "a 32x32 input is 8x8 after two stages, and fc6 sees 16 x 8 x 8 = 1024 numbers")
logits = a

# %% [markdown]
# ## 3. Backward, one layer at a time
#
# The loss is softmax cross-entropy towards class 2: `-log p_2`. Its gradient w.r.t. the
# logits is `p - onehot(2)` (exercise 4). Then each layer, in reverse order, turns the
# gradient w.r.t. its output into the gradient w.r.t. its input, the chain rule one link at a
# time. Layers with weights also store `d loss / d weights` in `layer.grads` on the way.
# The last gradient is the one w.r.t. the pixels: same shape as the image.

# %%
loss, dlogits = softmax_cross_entropy(logits, np.array([2]))
print(f"loss {float(loss):.4f}, dlogits {dlogits.ravel()}")
d = dlogits
print(f"{'layer':<8} {'gradient w.r.t. its input':<28} {'norm':>9}")
norms = {}  # layer -> norm of the gradient w.r.t. its input
for name in reversed(net.names):
    before = np.linalg.norm(d)
    d = net[name].backward(d)
    norms[name] = (before, np.linalg.norm(d))
    print(f"{name:<8} {str(d.shape):<28} {np.linalg.norm(d):9.2e}")
claim(all(abs(a - b) < 1e-5 * a for a, b in (norms["pool1"], norms["pool2"])),
      "a 2x2/2 max-pool passes the gradient's norm unchanged")
claim(all(b < a for a, b in (norms[k] for k in ("relu1_1", "relu2_1", "relu6"))),
      "every ReLU lowers the gradient's norm")
dx_by_hand = d
print("conv1_1 weight gradient:", net["conv1_1"].grads["w"].shape)
net.forward(x)
claim(rel_error(net.backward(dlogits), dx_by_hand) == 0, "Sequential.backward gives exactly the same")

# %% [markdown]
# Look at the norms. ReLU and max-pool have no weights; they only *route* the gradient.
# A max-pool whose windows do not overlap sends each window's gradient to its one winner, so
# the norm passes unchanged (compare the rows around `pool2`). A ReLU zeroes the gradient
# wherever its unit was off, so the norm drops (the claims above check both on this run). Those on/off switches, set by this particular image, shape most of the
# pixel gradient.
#
# ## 4. Taps: injecting a gradient in the middle
#
# Paper 000's content and style losses do not look at the logits but at activations inside
# the network, say `relu2_1`. `forward_taps` returns them; `backward(tap_grads=...)` adds
# their gradients at those layers on the way back. With `output=False` the forward pass
# stops after the deepest tap, since nothing later matters.
#
# As a loss we take the mean activation of channel 3 at `relu2_1`, "how much does the image
# excite this feature?". Its gradient w.r.t. the image shows which pixels would excite it
# more. We save it as a picture: grey is zero, and each colour channel is brighter where
# increasing it raises the loss.

# %%
net.freeze()  # inference mode and no weight gradients: only the pixels change in paper 000
_, acts = net.forward_taps(x, ["relu2_1"], output=False)
F = acts["relu2_1"]  # (1, 16, 16, 16)
feature = F[:, 3].mean()
dF = np.zeros_like(F)
dF[:, 3] = 1 / F[:, 3].size  # d mean / d F
dx = net.backward(tap_grads={"relu2_1": dF})
print(f"feature {float(feature):.4f}; gradient w.r.t. the image {dx.shape}")

scale = np.abs(dx).max()
grad_img = np.clip(127.5 + 127.5 * dx[0].transpose(1, 2, 0) / scale, 0, 255).astype(np.uint8)
save_image(OUT / "03_gradient.png", panel([img, grad_img], ["image", "d feature / d pixels"]))
print("wrote", OUT / "03_gradient.png")

# %% [markdown]
# ## 5. Check one direction numerically
#
# A per-element check would need two forward passes per pixel. For a whole network one
# random direction `r` is enough to catch a broken link in the chain. The directional
# derivative `<dx, r>` from backward must equal `(L(x + h r) - L(x - h r)) / 2h`. We do it in
# float64, for the reasons of tutorial 02, with both the class loss and the tapped feature.

# %%
net.astype(np.float64)
x64 = x.astype(np.float64)


def total_loss():
    logits, acts = net.forward_taps(x64, ["relu2_1"])
    return float(softmax_cross_entropy(logits, np.array([2]))[0]) + float(acts["relu2_1"][:, 3].mean())


logits, acts = net.forward_taps(x64, ["relu2_1"])
dF = np.zeros_like(acts["relu2_1"])
dF[:, 3] = 1 / dF[:, 3].size
grad = net.backward(softmax_cross_entropy(logits, np.array([2]))[1], tap_grads={"relu2_1": dF})
analytic, numerical, err = directional_check(total_loss, [x64], [grad])
print(f"<dx, r> = {analytic:.10f}   finite difference = {numerical:.10f}   rel. error {err:.1e}")
claim(err < 1e-6, "the directional derivative from backward equals the finite difference")
