"""``minvert demo``: both papers on the bundled models, offline, on a CPU (its measured time:
README.md, "Speed"; one BLAS thread is best on a shared machine).

1. classify generated images with the bundled classifiers (textures and shapes);
2. paper 000: transform a "dots" texture until tiny-vgg-textures calls it "stripes";
3. paper 003: extract tiny-resnet-shapes features of generated shapes images, train a small
   decoder, reconstruct images it was trained on and 160 it never saw, and measure what comes
   back (PSNR/SSIM against the mean-image baseline, re-identification against chance, and
   which concepts - colour, shape, background - the encoder recognises in the reconstructions);
   then invert 40 of the unseen vectors by optimising the pixels, alone and from the decoder's
   output, and measure the four ways back side by side (:mod:`minvert.demo.invert`);
4. write DIR/index.html (text: :mod:`minvert.demo.page`) with every image and its numbers.

Every step prints progress; the page and report.json hold every number.
"""
import json
import time
from pathlib import Path

import numpy as np

from ..backend import select_device, to_numpy
from ..classify import classify_files
from ..datasets import CLASSES, dataset_classes, make_dataset
from ..errors import MinvertError
from ..images import resize_exact, save_image
from ..plots import line_plot, panel
from ..reconstruct import evaluate, extract, train
from ..reconstruct.evaluate import reconstruct_images
from ..reconstruct.cache_file import read_cache
from ..reconstruct.runs import load_decoder, read_run
from ..transform import Multipliers, Settings, transform
from ..weights import load_model
from .invert import run_step as _invert_step
from .page import page

N_CLASSIFY = 2          # generated textures per class to classify
RECON_PER_CLASS = 20    # generated shapes per class for paper 003: 32 classes -> 640 images
HELD_OUT = 0.25         # fraction never shown to the decoder: 160 of 640, enough for a tight interval
DECODER_EPOCHS = 60
# 128-d feature -> 2x2x32 map -> four 2x upsampling stages -> 32x32 output. The paper's 4x4 start
# would leave 8 numbers per cell, and a 3x3 conv at 4x4 sees only 9 of the 16 cells, so each
# part of the image hears only part of the vector: blotchy outputs (held-out SSIM below the
# mean image's). At 2x2 the first conv sees all of it.
DECODER = {"start": [2, 2, 32], "widths": [64, 48, 32, 16]}
OPTIMIZER = "adam"      # converges in the demo's seconds; the paper's Adadelta: `minvert reconstruct train`
TRANSFORM_ITERS = 30
ENCODER = "tiny-resnet-shapes"


def run_demo(out, force=False, log=print, decoder_epochs=DECODER_EPOCHS, transform_iters=TRANSFORM_ITERS,
             recon_per_class=RECON_PER_CLASS, device=None):
    out = Path(out)
    if (out / "index.html").exists() and not force:
        raise MinvertError(f"{out} already holds a demo; choose another --out or pass --force")
    select_device(device)  # a GPU asked for and missing is refused before anything is written
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    log(f"minvert demo -> {out}/index.html")

    textures, labels, names = make_dataset(N_CLASSIFY, size=64, seed=2024)
    shapes, shape_labels, shape_names = make_dataset(1, size=64, seed=2024, kind="shapes")
    paths, shape_paths = [], []
    for i, (img, y) in enumerate(zip(textures, labels)):
        paths.append(_save(out / "images" / f"{names[y]}_{i % N_CLASSIFY}.png", img))
    for img, y in zip(shapes, shape_labels):
        shape_paths.append(_save(out / "images" / f"{shape_names[y]}.png", img))
    report = {"classify": {m: _classify(paths, [names[y] for y in labels], m, log, device)
                           for m in ("tiny-vgg-textures", "tiny-resnet-textures")}}
    report["classify"][ENCODER] = _classify(shape_paths, [shape_names[y] for y in shape_labels], ENCODER, log,
                                            device)
    report["transform"] = _transform(out, textures, labels, transform_iters, log, device)
    report["reconstruct"] = _reconstruct(out, decoder_epochs, recon_per_class, log, device)
    report["reconstruct"]["encoder"] = ENCODER
    report["reconstruct"]["optimizer"] = OPTIMIZER
    report["invert"] = _invert_step(out, log, device, iters=transform_iters)  # beside the decoder
    _curves(out, report)
    report["seconds"] = round(time.perf_counter() - start, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "index.html").write_text(page(report, dataset_classes("textures")))
    log(f"done in {report['seconds']:.0f}s. Open {out / 'index.html'} in a browser "
        f"(figures: {out / 'transform' / 'panel.png'}, {out / 'reconstruct' / 'held_out.png'})")
    return report


def _save(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(path, img)
    return path


def _classify(paths, truth, model, log, device=None):
    results = classify_files([str(p) for p in paths], model, top=1, device=device)
    correct = sum(r["top"][0]["label"] == t for r, t in zip(results, truth))
    log(f"[1/3] {model}: {correct}/{len(paths)} new generated images classified correctly")
    return {"correct": correct, "total": len(paths),
            "predictions": [{"image": Path(r["image"]).name, "truth": t, "label": r["top"][0]["label"],
                             "probability": round(r["top"][0]["probability"], 4)}
                            for r, t in zip(results, truth)]}


def _transform(out, images, labels, iters, log, device=None):
    net = load_model("tiny-vgg-textures", device=device)
    img = images[list(labels).index(CLASSES.index("dots"))]
    settings = Settings(target=CLASSES.index("stripes"), iters=iters, multipliers=Multipliers(tv=1e-3))
    log(f"[2/3] paper 000: dots -> stripes with L-BFGS-B, {iters} iterations, TV 1e-3")
    summary = transform(net, img, settings, out_dir=out / "transform", force=True, log=lambda *_: None)
    if summary["interrupted"]:  # transform kept its last image; the demo stops as Ctrl-C asks
        raise KeyboardInterrupt
    log(f"      p(stripes) {summary['probability_before']:.3f} -> {summary['probability_after']:.3f}, "
        f"mean |change| {summary['mean_abs_pixel_change']:.1f}/255, TV ratio {summary['tv_ratio']:.2f}")
    summary.pop("result")
    losses = [json.loads(line)["total"] for line in (out / "transform" / "log.jsonl").read_text().splitlines()]
    return {**{k: summary[k] for k in ("probability_before", "probability_after", "mean_abs_pixel_change",
                                        "tv_ratio", "iterations", "seconds", "top5_after")},
            "loss_per_iteration": losses}


def _every_tenth(log, epochs):
    """The decoder's per-epoch lines, thinned to about ten, indented under the step's header."""
    step = max(1, epochs // 10)

    def show(line):
        words = line.split()
        if words[:1] == ["epoch"]:
            done = int(words[1].split("/")[0])
            if done == 1 or done % step == 0 or done == epochs:
                log(f"      {line}")
    return show


def _reconstruct(out, epochs, per_class, log, device=None):
    folder = out / "reconstruct"
    names = dataset_classes("shapes")
    images, labels, _ = make_dataset(per_class, size=64, seed=7, kind="shapes")
    order = np.random.default_rng(0).permutation(len(images))  # classes mixed in the cache
    images, labels = images[order], labels[order]
    paths = [_save(folder / "images" / f"{k:03d}_{names[y]}.png", img)
             for k, (img, y) in enumerate(zip(images, labels))]
    cache, run = folder / "features.h5", folder / "run"
    cache.unlink(missing_ok=True)
    for stale in ("run.json", "checkpoint.h5", "log.jsonl"):
        (run / stale).unlink(missing_ok=True)
    n_held = int(round(HELD_OUT * len(paths)))
    log(f"[3/3] paper 003: {ENCODER} features of {len(paths)} generated shapes images; decoder trained "
        f"{epochs} epochs with {OPTIMIZER} on {len(paths) - n_held}, {n_held} held out")
    extract([str(p) for p in paths], ENCODER, cache, target_size=64, log=lambda *_: None,
            device=device)
    log(f"      extracted {len(paths)} 128-d features; training (one line per {max(1, epochs // 10)} epochs, "
        "PSNR in dB):")
    history = train(cache, run, decoder=DECODER, epochs=epochs, batch_size=20,
                    split=f"fraction:{HELD_OUT}", optimizer=OPTIMIZER, log=_every_tenth(log, epochs), device=device)
    log("      evaluating: reconstructions re-encoded and ranked against all "
        f"{len(paths)} originals")
    ev = evaluate(run, cache, log=lambda *_: None, device=device)
    concepts, figure = _concepts(run, cache, names, labels, folder, log, device)
    tr, ho = ev["train"], ev["held_out"]
    log(f"      held-out: PSNR {ho['psnr']:.2f} dB vs mean image {ho['mean_image']['psnr']:.2f}; re-identified "
        f"top-1 {ho['reidentification']['top1']:.0%} (chance {ho['reidentification_chance']['top1']:.1%}); "
        f"train: PSNR {tr['psnr']:.2f} dB, top-1 {tr['reidentification']['top1']:.0%}")
    return {"evaluation": ev, "concepts": concepts, "figure": figure, "n_images": len(paths),
            "history": [{k: h.get(k) for k in ("loss", "psnr", "val_psnr")} for h in history]}


def _concepts(run, cache, names, labels, folder, log, device=None):
    """Which concepts the encoder recognises in the held-out reconstructions, and their figure."""
    r, c = read_run(run), read_cache(cache)
    decoder, encoder = load_decoder(run, r, device), load_model(ENCODER, device=device)
    rows = r["split"]["test"]
    recon = reconstruct_images(decoder, c.features[rows])                # (n, s, s, 3) in [0, 1]
    recon = np.rint(np.clip(recon, 0, 1) * 255).astype(np.uint8)
    big = np.stack([resize_exact(im, 64, "nearest") for im in recon])   # (n, 64, 64, 3)
    logits = encoder.predict(encoder.preprocessing.preprocess(encoder.xp.asarray(big)))
    seen = np.argmax(to_numpy(logits), axis=1)
    truth = [names[labels[i]] for i in rows]
    said = [names[k] for k in seen]
    parts = {"colour": 0, "shape": 1, "background": 3}
    rates = {p: float(np.mean([t.split("-")[k] == s.split("-")[k] for t, s in zip(truth, said)]))
             for p, k in parts.items()}
    rates["class"] = float(np.mean([t == s for t, s in zip(truth, said)]))
    originals = c.targets[rows]                                          # (n, 64, 64, 3)
    found = [np.linalg.norm(_object_centre(x, soft=True) - _object_centre(t)) for x, t in zip(big, originals)]
    guess = [np.linalg.norm(np.array([32.0, 32.0]) - _object_centre(t)) for t in originals]
    rates["position_error_px"] = {"reconstruction": float(np.mean(found)), "image_centre": float(np.mean(guess))}
    rates["count"] = len(rows)
    rates["chance"] = {"colour": 1 / 4, "shape": 1 / 4, "background": 1 / 2, "class": 1 / len(names)}
    log(f"      the encoder recognises in held-out reconstructions: colour {rates['colour']:.0%}, "
        f"background {rates['background']:.0%}, shape {rates['shape']:.0%}, all three {rates['class']:.0%}; "
        f"object centre off by {np.mean(found):.1f} px of 64 (guessing the middle: {np.mean(guess):.1f})")
    train_mean = c.targets[r["split"]["train"]].mean(axis=0)                # (64, 64, 3)
    save_image(folder / "mean_image.png", np.repeat(np.repeat(np.rint(train_mean).astype(np.uint8), 2, 0), 2, 1))
    tiles, captions = [], []
    lines = lambda n: n.replace("-on-", "\non ").replace("-", " ")  # noqa: E731  red circle\non dark
    for k in range(min(12, len(rows))):
        tiles += [big[k], c.targets[rows[k]]]
        captions += [f"reconstruction\nseen: {lines(said[k])}", f"unseen original\n{lines(truth[k])}"]
    save_image(folder / "held_out.png", panel(tiles, captions, min_side=128, columns=6))
    return rates, {"pairs": "reconstruct/held_out.png", "mean_image": "reconstruct/mean_image.png"}


def _object_centre(img, soft=False):
    """(x, y) in pixels of the coloured object in a uint8 (H, W, 3) image.

    The objects are saturated (HSV saturation >= 0.65) on greyish backgrounds (<= 0.3), so an
    original's object is its pixels above 0.5; a reconstruction's blurred blob is weighted by how
    much more saturated each pixel is than the image's median (soft=True).
    """
    x = img.astype(np.float64)
    sat = (x.max(axis=2) - x.min(axis=2)) / np.maximum(x.max(axis=2), 1e-6)   # (H, W)
    w = np.maximum(sat - np.median(sat), 0) ** 2 if soft else (sat > 0.5).astype(np.float64)
    if w.sum() == 0:
        w = np.ones_like(w)
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]] + 0.5
    return np.array([(w * xx).sum(), (w * yy).sum()]) / w.sum()


def _curves(out, report):
    h = report["reconstruct"]["history"]
    a = line_plot({"training images": [e["psnr"] for e in h], "held-out images": [e["val_psnr"] for e in h]},
                  title="paper 003: decoder, reconstruction PSNR", xlabel="epoch", ylabel="PSNR dB")
    b = line_plot({"class + TV loss": report["transform"]["loss_per_iteration"]},
                  title="paper 000: dots -> stripes", xlabel="L-BFGS-B iteration", ylabel="loss")
    save_image(out / "curves.png", np.concatenate([a, b], axis=1))
