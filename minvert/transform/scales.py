"""How much each term of each preset weighs: ``minvert bench presets``.

The paper's multipliers (content 1e-14 ... 1e-10, style 1e-13 ... 1e-7, ...) only mean something
against the scale of the terms they multiply. For every preset this builds the objective with its
multipliers on a full-size network (by default VGG-19 at 224x224 with random He weights and
Caffe preprocessing: the paper's input scale; random weights show the mechanism, real ones the
numbers) and reports :meth:`Objective.breakdown` at two points:

* **start**: the original image itself, iteration 0 of a run. Content, style and colour are
  exactly 0 there (the image is its own target), so they carry no gradient yet;
* **probe**: the original plus seeded uniform noise of +-8 levels (of 255) in every channel,
  standing for an image a few steps into a run: content and style now pull back. Colour stays 0
  until a pixel moves 30 %, so it carries no gradient at either point.

Masked presets get a stand-in mask (an ellipse for "body", a smaller one for "face"); the
shares are of the masked gradient, as the optimiser sees it.
"""
import time

import numpy as np

from ..backend import array_module
from .objective import INERT_SHARE, Objective, Settings
from .presets import PRESETS
from ..datasets import make_dataset
from ..labels import imagenet_labels
from ..nets.preprocessing import Preprocessing
from ..nets.vgg import build_vgg
from ..weights import load_model

PROBE_LEVELS = 8


def stand_in_mask(kind, shape):
    """A float (h, w) mask in [0, 1]: "body" = a centred ellipse over half the image, "face" = a
    smaller ellipse in the upper middle; None for None."""
    if kind is None:
        return None
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w]).reshape(2, 1, 1)
    cy, cx, ry, rx = (0.55, 0.5, 0.35, 0.4) if kind == "body" else (0.35, 0.5, 0.15, 0.15)
    return (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).astype(np.float64)


def preset_scales(net, img, presets=None, seed=0, log=print, content_kind="gram"):
    """{preset name: {"start": breakdown, "probe": breakdown}} for img (uint8 (S, S, 3)) on the
    frozen classifier ``net`` (ImageNet classes: the presets' target indices)."""
    presets = PRESETS if presets is None else presets
    net.freeze()
    pre, xp, dtype = net.preprocessing, net.xp, net.dtype
    x0 = xp.asarray(pre.preprocess(img, dtype=dtype))  # (1, 3, S, S)
    low, high = (v.reshape(1, 3, 1, 1) for v in pre.pixel_bounds())
    pixel = (high - low) / 255.0  # (1, 3, 1, 1) input units per level
    noise = np.random.default_rng(seed).uniform(-PROBE_LEVELS, PROBE_LEVELS, x0.shape) * pixel
    probe = xp.asarray(np.clip(pre.preprocess(img, dtype=np.float64) + noise, low, high).astype(dtype))
    table = {}
    for name, p in presets.items():
        start = time.perf_counter()
        mask = stand_in_mask(p.mask, img.shape[:2])
        mask = None if mask is None else xp.asarray(mask[None, None].astype(dtype))
        objective = Objective(net, x0, Settings(target=p.target_index, multipliers=p.multipliers,
                                                jitter=16 if p.jitter else 0,
                                                content_kind=content_kind), mask=mask)
        table[name] = {"start": objective.breakdown(x0), "probe": objective.breakdown(probe)}
        log(f"{name}: {time.perf_counter() - start:.1f}s")
    return table


def format_table(table):
    """Markdown: one row per preset term, its multiplier, raw value and share of the gradient
    norm at the start and at the probe; inert (< 0.1 % at the probe) marked."""
    lines = ["| preset | term | multiplier | value at start | gradient share at start | "
             "value at probe | gradient share at probe |",
             "|---|---|---|---|---|---|---|"]
    for key, rows in table.items():
        name = f"`{key}`"
        for term, r in rows["probe"].items():
            s = rows["start"][term]
            inert = " (inert)" if term != "class" and r["share_of_gradient"] < INERT_SHARE else ""
            lines.append(f"| {name} | {term} | {r['multiplier']:g} | {s['value']:.3g} | "
                         f"{s['share_of_gradient']:.2e} | {r['value']:.3g} | "
                         f"{r['share_of_gradient']:.2e}{inert} |")
            name = ""  # the preset's name on its first row only
    return "\n".join(lines)


def bench_presets(model=None, device=None, out=print, content_kind="gram", only=None):
    """Print the table for every preset (or those named in ``only``) on ``model`` (a 1000-class
    classifier), or on a full-size VGG-19 with random weights, on ``device`` (as in
    backend.select_device; default: the default device)."""
    if model:
        net = load_model(model, device=device)
    else:
        net = build_vgg({"depth": 19}, rng=np.random.default_rng(0),
                        preprocessing=Preprocessing("caffe"), labels=imagenet_labels())
        net = net.to(array_module(device))
    size = net.preprocessing.input_size
    img = make_dataset(1, size=size, seed=0)[0][2]  # a generated "dots" texture, (S, S, 3)
    out(f"paper 000 presets on {model or 'VGG-19 (random He weights, Caffe input)'} at {size}x{size}; "
        f"probe = original +- {PROBE_LEVELS} levels of noise; content kind {content_kind}")
    presets = {k: v for k, v in PRESETS.items() if not only or k in only}
    table = preset_scales(net, img, presets, log=out, content_kind=content_kind)
    out(format_table(table))
    return table
