"""The figures of paper 003, one function (and one ``minvert reconstruct figure`` command) each.

* Fig. 1, :func:`figure_epochs`: one image reconstructed after 1, 10, 50, ... 6000 epochs; trains
  a run (on one image, as read from the caption) with snapshots at those epochs and lays them
  out in one strip, the original last.
* Fig. 2, :func:`figure_features`: "trained on two images for 4000 epochs", each image beside
  the decoder's reconstruction from its feature vector.
* Fig. 3, :func:`figure_random`: "same model as for 2" fed random vectors (|N(0,1)| scaled to
  the real features' mean, and raw N(0,1) as the paper's code drew them).
* Figs. 4-5, :func:`figure_sizes`: one run per training-set size (the paper: 100 images for 4000
  epochs, 1000 and 10000 for 1000), each row training and unseen reconstructions beside their
  originals.

Each writes a PNG and returns its path. A run folder that already holds the run (same
settings) is continued, not retrained: a figure can be remade or extended for free.
"""
from pathlib import Path

import numpy as np

from ..errors import MinvertError
from ..images import load_image, save_image
from ..plots import panel
from .evaluate import _random_decodes, reconstruct_images
from .cache_file import read_cache, targets_at
from .runs import DEFAULTS, check_run_cache, load_decoder, make_split, read_run
from .train import train
from .watch import decoder_epoch, pairs_image

PAPER_EPOCHS = (1, 10, 50, 100, 500, 1000, 2000, 4000, 6000)
PAPER_SIZES = (100, 1000, 10000)
PAPER_SIZE_EPOCHS = (4000, 1000, 1000)
PAIRS_PER_SET = 4  # training and unseen images per row of Figs. 4-5


def _train_or_continue(cache, run_dir, epochs, log, **settings):
    resume = (Path(run_dir) / "checkpoint.h5").is_file()
    done = decoder_epoch(run_dir) if resume else None
    if done is not None and done[0] >= epochs:
        log(f"{run_dir}: already trained {done[0]} epochs; drawing the figure from it")
        return None
    if resume:
        log(f"{run_dir}: continuing the run there to {epochs} epochs")
    return train(cache, run_dir, epochs=epochs, resume=resume, log=log, **settings)


def _check_sizes(cache, sizes, settings):
    """Refuse, before any training, every size the cache's split cannot give (all named at once)."""
    split = settings.get("split") or DEFAULTS["split"]
    seed = DEFAULTS["seed"] if settings.get("seed") is None else settings["seed"]
    available = len(make_split(len(cache), split, seed)[0])
    too_many = [n for n in sizes if not 1 <= n <= available]
    if too_many:
        raise MinvertError(f"--sizes {','.join(map(str, too_many))}: split {split!r} leaves "
                           f"{available} training images in the cache; give sizes from 1 to "
                           f"{available} (nothing was trained)")


def figure_epochs(cache, out_dir, at=PAPER_EPOCHS, rows=None, log=print, **settings):
    """Fig. 1: train into ``out_dir`` for max(at) epochs, snapshotting cache ``rows`` (default:
    the first training image) after each epoch in ``at``; writes figure_epochs.png (one row per
    image: a reconstruction per epoch, then the original)."""
    at = sorted(set(int(e) for e in at))
    _train_or_continue(cache, out_dir, at[-1], log, snapshot_epochs=at, snapshot_rows=rows, **settings)
    out_dir = Path(out_dir)
    run, c = read_run(out_dir), read_cache(cache)
    rows = list(rows or run["split"]["train"][:1])
    size = run["output_size"]
    missing = [e for e in at if not (out_dir / "epochs" / f"epoch_{e:05d}.png").is_file()]
    if missing:
        raise MinvertError(f"{out_dir} has no snapshot after epoch(s) {missing}: it was trained before "
                           "they were asked for; use a new --out")
    strips = [load_image(out_dir / "epochs" / f"epoch_{e:05d}.png") for e in at]  # (len(rows)*s, s, 3)
    originals = targets_at(c, rows, size)
    tiles, captions = [], []
    for i in range(len(rows)):
        tiles += [s[i * size:(i + 1) * size] for s in strips] + [originals[i]]
        captions += [f"epoch {e}" for e in at] + ["original"]
    path = out_dir / "figure_epochs.png"
    save_image(path, panel(tiles, captions, min_side=96, columns=len(at) + 1))
    log(f"wrote {path}")
    return path


def _decoder_and_cache(run_dir, cache, device):
    run, c = read_run(run_dir), read_cache(cache)
    check_run_cache(run, c, run_dir)
    return run, c, load_decoder(run_dir, run, device)


def figure_features(cache, out_dir, n_train=2, epochs=4000, rows=None, log=print, device=None, **settings):
    """Fig. 2: train into ``out_dir`` on the first ``n_train`` training images for ``epochs``, then
    write figure_features.png: cache ``rows`` (default: those training images) each beside its
    reconstruction. ``out_dir`` is also the model of Fig. 3."""
    _train_or_continue(cache, out_dir, epochs, log, n_train=n_train, device=device, **settings)
    run, c, net = _decoder_and_cache(out_dir, cache, device)
    rows = list(rows or run["split"]["train"])
    if max(rows) >= len(c):
        raise MinvertError(f"row {max(rows)} is outside the cache's {len(c)} images")
    kind = lambda r: "training" if r in run["split"]["train"] else "held-out"  # noqa: E731
    captions = [[f"original ({kind(r)} {r})", "reconstruction"] for r in rows]
    recons = reconstruct_images(net, c.features[rows])
    img = pairs_image(targets_at(c, rows, net.output_size), recons, captions, columns=2 * min(len(rows), 4))
    path = Path(out_dir) / "figure_features.png"
    save_image(path, img)
    log(f"wrote {path}")
    return path


def figure_random(run_dir, cache, out, count=8, seed=0, log=print, device=None, force=False):
    """Fig. 3: decodes of ``count`` random vectors of each kind; writes ``out`` (an existing file
    only with ``force``) and logs how close each kind comes to the nearest training image (PSNR)."""
    if Path(out).exists() and not force:
        raise MinvertError(f"{out} exists; choose another --out or pass --force to overwrite it")
    if count < 1:
        raise MinvertError(f"--count {count}: give at least 1 vector")
    run, c, net = _decoder_and_cache(run_dir, cache, device)
    reference = targets_at(c, run["split"]["train"][:500], net.output_size).astype(np.float32) / 255
    stats, images = _random_decodes(net, c, reference, count, seed)
    captions = ["|N(0,1)| scaled" if k == "abs_scaled" else "N(0,1)" for k, _ in images]
    save_image(Path(out), panel([im for _, im in images], captions, min_side=96, columns=count))
    for kind in ("abs_scaled", "normal"):
        log(f"{kind}: pixel std {stats[kind]['pixel_std']:.3f}, nearest training image "
            f"{stats[kind]['nearest_train_psnr']:.2f} dB PSNR on average")
    log(f"wrote {out}")
    return Path(out)


def figure_sizes(cache, out_dir, sizes=PAPER_SIZES, epochs=PAPER_SIZE_EPOCHS, log=print, device=None,
                 **settings):
    """Figs. 4-5: a run per training-set size in ``out_dir``/train_N (the first N training
    images, for the matching entry of ``epochs``, or ``epochs`` for all if one number), then
    figure_sizes.png: per size, PAIRS_PER_SET training and unseen images, each reconstruction
    beside its original."""
    out_dir, c = Path(out_dir), read_cache(cache)
    epochs = [int(epochs)] * len(sizes) if np.ndim(epochs) == 0 else list(epochs)
    if len(epochs) != len(sizes):
        raise MinvertError(f"{len(sizes)} sizes but {len(epochs)} epoch counts; give one count, or one per size")
    _check_sizes(c, sizes, settings)
    tiles, captions = [], []
    for n, n_epochs in zip(sizes, epochs):
        run_dir = out_dir / f"train_{n}"
        _train_or_continue(cache, run_dir, n_epochs, log, n_train=n, device=device, **settings)
        run = read_run(run_dir)
        net = load_decoder(run_dir, run, device)
        n_used = len(run["split"]["train"])
        if n_used < n:
            log(f"note: the cache holds {n_used} training images, fewer than {n}")
        for label, rows in (("train", run["split"]["train"][:PAIRS_PER_SET]),
                            ("unseen", run["split"]["test"][:PAIRS_PER_SET])):
            recons = reconstruct_images(net, c.features[rows]) if rows else []
            for r, img, orig in zip(rows, recons, targets_at(c, rows, net.output_size)):
                tiles += [np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8), orig]
                captions += [f"{n_used} imgs, {n_epochs} ep.\n{label}", "original\n"]
    if not tiles:
        raise MinvertError("no images to show: the runs have neither training nor held-out images")
    path = out_dir / "figure_sizes.png"
    save_image(path, panel(tiles, captions, min_side=96, columns=4 * PAIRS_PER_SET))
    log(f"wrote {path}")
    return path
