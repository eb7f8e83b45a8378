"""Four ways back from a feature vector, measured on the same images:

1. **mean image**: the mean training target, for every image (the floor: ignores the vector);
2. **decoder**: paper 003's trained decoder;
3. **optimisation**: Mahendran & Vedaldi's pixel optimisation (invert.py), started from the
   mean image;
4. **decoder + refinement**: the same optimisation started from the decoder's output.

Every method gives one uint8 image per vector. PSNR and SSIM compare it with the target at the
decoder's output size (as ``evaluate`` does; an image of another size is resized, box filter
when shrinking). It is encoded again at the encoder's input size (``encode``), and its feature
gives the **feature distance** ‖Φ(image) - Φ0‖ / ‖Φ0‖ (what the optimisation minimises, after
rounding to 0..255) and **re-identification** (ranked by cosine against every cached feature).
Each comes with a 95 % interval over the images: percentile bootstrap of the mean for PSNR,
SSIM and distance, Wilson for the top-1 rate. Time per image: wall time of the method over the
whole set divided by its size (optimisation runs the set as one batch).
"""
import time
from dataclasses import asdict, replace

import numpy as np

from ..images import resize_exact
from ..metrics import (bootstrap_mean_interval, psnr, reidentification_rate, ssim,
                       wilson_interval)
from .evaluate import reconstruct_images
from .cache_file import read_cache, targets_at
from .features import encode, encoder_from_record
from .invert import InvertSettings, invert
from .runs import check_run_cache, load_decoder, read_run
from ..plots import panel

METHODS = ("mean image", "decoder", "optimisation", "decoder + refinement")


def _u8(img):
    return np.rint(np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)


def _fit(images, size):
    """uint8 (n, h, w, 3) -> (n, size, size, 3); box filter when shrinking."""
    if images.shape[1] == size:
        return images
    how = "box" if images.shape[1] > size else "bilinear"
    return np.stack([resize_exact(im, size, how) for im in images])


def _optimise(enc, targets, starts, settings, log):
    """uint8 start images -> uint8 results at the encoder's input size, and the seconds."""
    x0 = enc.xp.asarray(np.concatenate([enc.preprocessing.prepare(im, dtype=enc.dtype) for im in starts]))
    t0 = time.perf_counter()
    x, _ = invert(enc, targets, x0, settings, log=log)
    return enc.preprocessing.deprocess(x), time.perf_counter() - t0


def score(images, rows, cache, enc, size, seconds):
    """The measures of one method: uint8 images (n, h, w, 3), one per cache row."""
    tgt = targets_at(cache, rows, size) / 255.0
    at_size = _fit(images, size) / 255.0
    p = np.array([psnr(a, t) for a, t in zip(at_size, tgt)])
    s = np.array([ssim(a, t) for a, t in zip(at_size, tgt)]) if size >= 11 else None
    feats = encode(enc, list(images)).astype(np.float64)
    phi0 = cache.features[rows].astype(np.float64)
    dist = np.linalg.norm(feats - phi0, axis=1) / np.linalg.norm(phi0, axis=1)
    taken = set(rows)
    order = list(rows) + [i for i in range(len(cache)) if i not in taken]  # sources first
    top1 = reidentification_rate(feats, cache.features[order], k=(1, 5))
    n = len(rows)
    return {"psnr": float(p.mean()), "psnr_ci95": list(bootstrap_mean_interval(p)),
            "ssim": None if s is None else float(s.mean()),
            "ssim_ci95": None if s is None else list(bootstrap_mean_interval(s)),
            "reid_top1": top1["top1"], "reid_top5": top1["top5"],
            "reid_top1_ci95": list(wilson_interval(round(top1["top1"] * n), n)),
            "feature_distance": float(dist.mean()), "feature_distance_ci95": list(bootstrap_mean_interval(dist)),
            "feature_distance_each": dist.tolist(), "seconds_per_image": seconds / max(n, 1)}


def compare(run_dir, cache_path, rows=None, encoder=None, settings=None, refine=None, log=print,
            device=None):
    """Run and score the four methods on cache ``rows`` (default: the run's held-out images).

    settings: InvertSettings for optimisation alone; refine: for the refinement (default: the
    same with half the iterations). Returns {"methods": {name: scores}, "images": {name: uint8},
    "targets": uint8, "rows", "settings", ...}."""
    run, cache = read_run(run_dir), read_cache(cache_path)
    check_run_cache(run, cache, run_dir)
    dec = load_decoder(run_dir, run, device, log=None)
    enc = encoder_from_record(run["cache"], encoder, device)
    rows = list(run["split"]["test"] if rows is None else rows)
    settings = settings or InvertSettings()
    refine = refine or replace(settings, iters=max(1, settings.iters // 2))
    size, targets = dec.output_size, cache.features[rows]
    train_t = targets_at(cache, run["split"]["train"], size)
    images, seconds = {}, {}

    t0 = time.perf_counter()
    mean_img = _u8(train_t.mean(axis=0, dtype=np.float64) / 255)
    images["mean image"], seconds["mean image"] = np.repeat(mean_img[None], len(rows), 0), time.perf_counter() - t0
    t0 = time.perf_counter()
    images["decoder"] = _u8(reconstruct_images(dec, targets))
    seconds["decoder"] = time.perf_counter() - t0
    log(f"compare: {len(rows)} images; optimisation alone ({settings.iters} iterations) from the mean image")
    images["optimisation"], seconds["optimisation"] = _optimise(enc, targets, images["mean image"], settings, log)
    log(f"compare: decoder + refinement ({refine.iters} iterations)")
    images["decoder + refinement"], t = _optimise(enc, targets, images["decoder"], refine, log)
    seconds["decoder + refinement"] = seconds["decoder"] + t
    methods = {m: score(images[m], rows, cache, enc, size, seconds[m]) for m in METHODS}
    return {"rows": rows, "output_size": size, "candidates": len(cache), "methods": methods,
            "settings": asdict(settings), "refine_settings": asdict(refine), "images": images,
            "targets": targets_at(cache, rows, cache.target_size)}


def table_lines(result):
    """The comparison as printable lines: one per method, each measure with its interval."""
    ci = lambda v, c, f: f"{v:{f}} [{c[0]:{f}}, {c[1]:{f}}]" if v is not None else "n/a"  # noqa: E731
    lines = [f"{'method':<22}{'PSNR dB [95% CI]':>24}{'SSIM [95% CI]':>24}{'re-id top-1 [95% CI]':>24}"
             f"{'feature dist. [95% CI]':>26}{'s/image':>9}"]
    for name, m in result["methods"].items():
        lines.append(f"{name:<22}{ci(m['psnr'], m['psnr_ci95'], '.2f'):>24}"
                     f"{ci(m['ssim'], m['ssim_ci95'], '.3f'):>24}"
                     f"{ci(m['reid_top1'], m['reid_top1_ci95'], '.2f'):>24}"
                     f"{ci(m['feature_distance'], m['feature_distance_ci95'], '.3f'):>26}"
                     f"{m['seconds_per_image']:>9.4f}")
    return lines


def figure(result, count=6):
    """uint8 panel: one row per image, original | the four methods, captions with PSNR."""
    tiles, captions = [], []
    size = max(result["images"]["optimisation"].shape[1], result["targets"].shape[1])
    for k in range(min(count, len(result["rows"]))):
        tiles.append(_fit(result["targets"][k:k + 1], size)[0])
        captions.append("original\n")
        tgt = _fit(result["targets"][k:k + 1], result["output_size"])[0] / 255.0
        for name in METHODS:
            img = result["images"][name][k]
            tiles.append(_fit(img[None], size)[0])
            captions.append(f"{name}\n{psnr(_fit(img[None], result['output_size'])[0] / 255.0, tgt):.1f} dB")
    return panel(tiles, captions, min_side=96, columns=1 + len(METHODS))
