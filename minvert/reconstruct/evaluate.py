"""Paper 003, step 3: how much of an image comes back from its feature vector.

``evaluate(run_dir, cache)`` measures, separately on training and held-out images:

- MSE, PSNR (dB) and SSIM of each reconstruction against its target at the decoder's output
  size (:mod:`minvert.metrics`, pixels in [0, 1]), averaged over the images;
- the mean-image baseline: the mean training target predicted for every image. A decoder that
  ignores its input can reach this and no more;
- re-identification: each reconstruction goes through the encoder again and its feature is ranked
  by cosine similarity against EVERY cached feature (all N images are candidates); top-1 / top-5 =
  how often its own source ranks first / within the first five. References: the mean image (one
  constant image can only hit the one original it resembles most), chance (k / N), and the
  targets themselves at the decoder's resolution (the best this resolution allows);
- 95 % intervals over the images of each set (``ci95``): the mean PSNR gain over the mean image
  (percentile bootstrap) and the top-1 re-identification rate (Wilson score);
- random-vector decodes (the paper's Fig. 3): |N(0,1)| vectors rescaled so that each has the mean
  of the real features (real pooled features are means of ReLU outputs, so >= 0), and raw N(0,1)
  vectors as in the paper's code (out of distribution). For each decode, the PSNR to the nearest
  training target tells whether the decoder merely recalls a training image.

It writes evaluation.json (every number, with counts) and contact_sheet.png (reconstruction |
original pairs for up to 8 training and 8 held-out images, then the random decodes) into the run
folder. ``decode(run_dir, inputs, out_dir)`` turns .npy feature vectors or images into PNGs.
"""
from pathlib import Path

import numpy as np

from ..backend import to_numpy
from ..errors import FormatError, MinvertError, ShapeError
from ..images import load_image, save_image
from ..metrics import (bootstrap_mean_interval, mse, psnr, reidentification_rate, ssim,
                       wilson_interval)
from ..plots import panel
from ..regular_files import check_regular, read_regular_text
from ..weights.hdf5 import json_text, read_budget
from .cache_file import read_cache, targets_at
from .features import encode, encoder_from_record
from ..weights.project import write_json
from .runs import check_run_cache, load_decoder, read_run
from .watch import decoder_epoch, to_uint8

SHEET_PAIRS = 8  # pairs per set on the contact sheet


def reconstruct_images(net, features, batch_size=32):
    """Decoder outputs of features (N, D) as float (N, s, s, 3) in [0, 1], on the host."""
    out = [to_numpy(net.predict(net.xp.asarray(features[i:i + batch_size].astype(net.dtype))))
           for i in range(0, len(features), batch_size)]
    s = net.output_size
    return np.concatenate(out).transpose(0, 2, 3, 1) if out else np.zeros((0, s, s, 3))  # (N, s, s, 3)


def _reid(features, rows, candidates):
    """Top-1/top-5 re-identification of features (n, D) whose sources are cache ``rows``."""
    taken = set(rows)
    order = list(rows) + [i for i in range(len(candidates)) if i not in taken]  # sources first
    return reidentification_rate(features, candidates[order], k=(1, 5))


def _score(net, enc, cache, rows, size, mean_img, mean_feat):
    """Metrics dict for one set of cache rows, and its contact-sheet pairs."""
    if not rows:
        return {"count": 0}, []
    rec = reconstruct_images(net, cache.features[rows])
    tgt_u8 = targets_at(cache, rows, size)
    tgt = tgt_u8 / 255.0
    p = np.array([psnr(r, t) for r, t in zip(rec, tgt)])
    base_p = np.array([psnr(mean_img, t) for t in tgt])
    means = [mean_img] * len(rows)

    def mean_of(metric, preds):
        if metric is ssim and size < 11:  # SSIM's 11x11 window must fit
            return None
        return float(np.mean([metric(x, t) for x, t in zip(preds, tgt)]))

    rec_u8, n = to_uint8(rec), len(cache)
    reid = _reid(encode(enc, list(rec_u8)), rows, cache.features)
    scores = {
        "count": len(rows), "mse": mean_of(mse, rec), "psnr": float(p.mean()),
        "psnr_std": float(p.std()), "ssim": mean_of(ssim, rec),
        "mean_image": {"mse": mean_of(mse, means), "psnr": float(base_p.mean()),
                       "ssim": mean_of(ssim, means)},
        "beats_mean_image": float(np.mean(p > base_p)),
        "reidentification": reid,
        "reidentification_mean_image": _reid(np.repeat(mean_feat, len(rows), 0), rows, cache.features),
        "reidentification_targets": _reid(encode(enc, list(tgt_u8)), rows, cache.features),
        "reidentification_chance": {"top1": 1 / n, "top5": min(5, n) / n},
        "ci95": _intervals(p - base_p, reid["top1"], len(rows)),
    }
    pairs = [(rec_u8[i], tgt_u8[i], p[i], cache.names[rows[i]]) for i in range(min(SHEET_PAIRS, len(rows)))]
    return scores, pairs


def _intervals(psnr_gain, top1, n):
    """95 % intervals over the images of a set: the mean PSNR gain over the mean image
    (bootstrap) and the re-identification top-1 rate (Wilson)."""
    return {"psnr_gain": list(bootstrap_mean_interval(psnr_gain)),
            "reidentification_top1": list(wilson_interval(round(top1 * n), n))}


def _nearest_mse(img, reference, chunk=64):
    """Smallest MSE between img (s, s, 3) and the images of reference (n, s, s, 3)."""
    return min(float(((reference[i:i + chunk] - img) ** 2).mean(axis=(1, 2, 3)).min())
               for i in range(0, len(reference), chunk))


def _random_decodes(net, cache, reference, n, seed):
    """Decodes of |N(0,1)| vectors scaled to the real features' mean, and of raw N(0,1)."""
    rng = np.random.default_rng(seed)
    D, real_mean = cache.feature_size, float(cache.features.mean())
    z = np.abs(rng.standard_normal((n, D)))
    vectors = {"abs_scaled": z * (real_mean / z.mean(axis=1, keepdims=True)),
               "normal": rng.standard_normal((n, D))}
    stats, images = {}, []
    for kind, v in vectors.items():
        rec = reconstruct_images(net, v.astype(np.float32))
        nearest = [-10 * np.log10(max(_nearest_mse(img, reference), 1e-10)) for img in rec]
        stats[kind] = {"count": n, "nearest_train_psnr": float(np.mean(nearest)),
                       "nearest_train_psnr_each": nearest, "pixel_std": float(rec.std())}
        images += [(kind, img) for img in to_uint8(rec)]
    stats["real_feature_mean"] = real_mean
    return stats, images


def _contact_sheet(path, pairs, randoms, columns=8):
    tiles, captions = [], []
    blank = None
    for label, set_pairs in pairs.items():
        for k, (rec, orig, p, name) in enumerate(set_pairs):
            tiles += [rec, orig]
            captions += [f"{label} {k}: recon\nPSNR {p:.1f} dB", f"original\n{Path(name).name[:20]}"]
        blank = np.full_like(tiles[0], 255) if tiles else None
        while tiles and len(tiles) % columns:  # each section starts a new row
            tiles.append(blank)
            captions.append("\n")
    for kind, img in randoms:
        tiles.append(img)
        captions.append(f"random\n{'|N(0,1)| scaled' if kind == 'abs_scaled' else 'N(0,1)'}")
    save_image(path, panel(tiles, captions, min_side=128, columns=columns))


def _finite(obj):
    """JSON has no inf/nan: replace them by None (PSNR of identical images is inf)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj if not isinstance(obj, float) or np.isfinite(obj) else None


def _legend(candidates):
    """What the table's fractions mean, printed under it."""
    return (f"re-id: the fraction (0-1) of the row's images whose reconstruction, encoded again, is "
            f"nearest (top1) or among the 5 nearest (top5) to its own original among all "
            f"{candidates} cached images; targets: the same for the originals themselves (the "
            f"ceiling); chance: 1/{candidates} and {min(5, candidates)}/{candidates}. SSIM runs "
            "from -1 to 1, 1 = identical; mean-image: the mean training image scored the same way "
            "(the baseline)")


def evaluate(run_dir, cache, encoder=None, log=print, max_train=500, n_random=4, seed=0, device=None):
    """Measure a trained run on its cache; writes evaluation.json, contact_sheet.png; returns the dict.

    encoder: the model that made the cached features (default: the one the cache records).
    max_train: score at most the first max_train training images (all held-out ones always).
    """
    run_dir = Path(run_dir)
    run, c = read_run(run_dir), read_cache(cache)
    check_run_cache(run, c, run_dir)
    net = load_decoder(run_dir, run, device, log=log)
    enc = encoder_from_record(run["cache"], encoder, device)
    size, split = net.output_size, run["split"]
    train_t = targets_at(c, split["train"], size)
    mean_img = train_t.mean(axis=0, dtype=np.float64) / 255  # (s, s, 3)
    mean_feat = encode(enc, [to_uint8(mean_img)])
    result, pairs = {"run": str(run_dir), "cache": str(cache), "output_size": size,
                     "encoder": run["cache"]["model"] or run["cache"]["model_path"],
                     "candidates": len(c), "settings": run["settings"],
                     "decoder_epoch": decoder_epoch(run_dir)}, {}
    log_path = run_dir / "log.jsonl"
    if log_path.is_file():
        text = read_regular_text(log_path, "a training log", max_bytes=256 << 20)
        lines = [json_text(x, str(log_path)) for x in text.splitlines() if x.strip()]
        last = lines[-1] if lines and isinstance(lines[-1], dict) else {}
        result.update(epochs_trained=len(lines), final_loss=last.get("loss"))
    for name, label, rows in (("train", "train", split["train"][:max_train]),
                              ("held_out", "held-out", split["test"])):
        result[name], pairs[label] = _score(net, enc, c, rows, size, mean_img, mean_feat)
    reference = train_t[:max_train].astype(np.float32) / 255
    result["random"], randoms = _random_decodes(net, c, reference, n_random, seed)
    write_json(run_dir / "evaluation.json", _finite(result))
    _contact_sheet(run_dir / "contact_sheet.png", pairs, randoms)
    log(f"{'':9}{'images':>7}{'PSNR':>7}{'SSIM':>7}  {'mean-image PSNR/SSIM':>20}  re-id top1/top5 "
        f"(targets; chance)")
    for name in ("train", "held_out"):
        r = result[name]
        if not r["count"]:
            continue
        fmt = lambda v: "   n/a" if v is None else f"{v:6.3f}"  # noqa: E731
        ri, rt, ch = r["reidentification"], r["reidentification_targets"], r["reidentification_chance"]
        log(f"{name:<9}{r['count']:>7}{r['psnr']:7.2f}{fmt(r['ssim'])} {r['mean_image']['psnr']:12.2f}/"
            f"{fmt(r['mean_image']['ssim'])}   {ri['top1']:.2f}/{ri['top5']:.2f} ({rt['top1']:.2f}/"
            f"{rt['top5']:.2f}; {ch['top1']:.3f}/{ch['top5']:.3f})")
        gain, top1 = r["ci95"]["psnr_gain"], r["ci95"]["reidentification_top1"]
        log(f"{'':9}95% CI: PSNR gain over the mean image {r['psnr'] - r['mean_image']['psnr']:+.2f} dB "
            f"[{gain[0]:+.2f}, {gain[1]:+.2f}]; re-id top-1 [{top1[0]:.2f}, {top1[1]:.2f}]")
    log(_legend(len(c)))
    rnd = result["random"]
    log(f"random vectors: nearest training target at {rnd['abs_scaled']['nearest_train_psnr']:.2f} dB "
        f"(|N(0,1)| scaled), {rnd['normal']['nearest_train_psnr']:.2f} dB (N(0,1))")
    log(f"wrote {run_dir / 'evaluation.json'} and {run_dir / 'contact_sheet.png'}")
    return result


def _load_vectors(path, D):
    check_regular(path, "a .npy file of feature vectors or an image")  # not a pipe or device
    try:  # mapped first: the declared shape is checked before anything is read
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise FormatError(f"{path} is not a readable .npy array ({' '.join(str(e).split())[:200]})"
                          ) from None
    if a.ndim not in (1, 2) or a.shape[-1] != D or a.dtype.kind not in "fiu":
        raise ShapeError(f"{path} holds a {a.dtype} array of shape {a.shape}; this decoder takes "
                         f"({D},) or (N, {D}) feature vectors")
    if a.nbytes > read_budget():
        raise FormatError(f"{path}: {a.nbytes / 2**20:,.0f} MB of vectors, more than the read budget "
                          "(MINVERT_MAX_READ_MB)")
    v = np.array(a, dtype=np.float32).reshape(-1, D)
    if not np.isfinite(v).all():
        raise FormatError(f"{path} holds NaN or infinite values; give finite feature vectors")
    return v, a.ndim == 1


def decode(run_dir, inputs, out_dir, model=None, force=False, log=print, device=None):
    """Reconstruction PNGs for .npy feature vectors ((D,) or (N, D)) and/or images.

    Images are encoded first with ``model`` or the encoder the run's cache records. Output
    names: ``<stem>_recon.png`` (``<stem>_<i>_recon.png`` for the rows of an (N, D) file).
    Refuses to overwrite existing files unless ``force``. Returns the written paths.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    run = read_run(run_dir)
    net = load_decoder(run_dir, run, device, log=log)
    D, enc, vectors, stems = run["cache"]["feature_size"], None, [], []
    for p in map(Path, inputs):
        if p.suffix.lower() == ".npy":
            v, single = _load_vectors(p, D)
            stems += [p.stem] if single else [f"{p.stem}_{i}" for i in range(len(v))]
        else:
            enc = enc or encoder_from_record(run["cache"], model, device)
            v = encode(enc, [load_image(p)])
            stems.append(p.stem)
        vectors.append(v)
    if not vectors:
        raise MinvertError("nothing to decode; give .npy feature files or images")
    outs, seen = [], set()
    for stem in stems:
        name, k = f"{stem}_recon.png", 2
        while name in seen:
            name, k = f"{stem}_{k}_recon.png", k + 1
        seen.add(name)
        outs.append(out_dir / name)
    existing = [str(o) for o in outs if o.exists()]
    if existing and not force:
        raise MinvertError(f"{len(existing)} output file(s) exist (e.g. {existing[0]}); "
                           "pass --force to overwrite or choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, img in zip(outs, reconstruct_images(net, np.concatenate(vectors))):
        save_image(path, to_uint8(img))
    log(f"decode: wrote {len(outs)} reconstruction(s) ({net.output_size}x{net.output_size}) into {out_dir}")
    return [str(o) for o in outs]
