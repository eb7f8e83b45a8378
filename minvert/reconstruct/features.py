"""Paper 003, step 1: the encoder and feature extraction (``minvert reconstruct extract``).

The trap in the paper's code: it takes ``ResNet50(include_top=False).predict(x)[0][0][0]``.
Keras <= 2.1 average-pools the 7x7 map even without the top, so that is the pooled vector;
since Keras 2.2 the same line picks the TOP-LEFT spatial position of the 7x7x2048 map.
minvert always uses the pooled vector (every entry >= 0, being a mean of ReLU outputs).

The features go into a cache file (:mod:`minvert.reconstruct.cache_file`, format there); an
interrupted extraction keeps the batches done (Ctrl-C: all; a kill: all up to the last save, at
most a minute old), and running the same command again adds only the missing files.
"""
import hashlib
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..backend import to_numpy
from ..errors import MinvertError
from ..images import fit_to_network, load_image
from ..text import escape_text
from ..weights import load_model, resolve_model
from ..files import exclusive_lock, lock_beside
from ..weights.project import network_weights
from .cache_file import describe_encoder, read_cache, write_cache


# encoder ---------------------------------------------------------------------------------
def weights_fingerprint(net):
    """SHA-256 of the architecture config and every weight (as float32): names an encoder."""
    h = hashlib.sha256(json.dumps(net.config, sort_keys=True).encode())
    for name, arrays in sorted(network_weights(net).items()):
        for k in sorted(arrays):
            a = np.ascontiguousarray(arrays[k], dtype=np.float32)
            h.update(f"{name}.{k}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def load_encoder(model, device=None):
    """(net, name, absolute path) for a model name or weight-file path; (net, "", "") for a
    network already built."""
    if isinstance(model, (str, os.PathLike)):
        name, path = os.fspath(model), str(resolve_model(os.fspath(model)).resolve())
        net = load_model(path, device=device)
    else:
        net, name, path = model, "", ""
    if not callable(getattr(net, "features", None)) or getattr(net, "preprocessing", None) is None:
        raise MinvertError(f"the encoder must be a ResNet with a preprocessing convention, not "
                           f"{net.config.get('arch')!r}; use e.g. --model resnet50")
    return net, name, path


def encoder_from_record(record, encoder=None, device=None):
    """The encoder a cache/run records (or ``encoder``), checked against its weight hash."""
    if encoder is None:
        path = record.get("model_path") or ""
        where = path if os.path.exists(path) else record.get("model")
        if not where:
            raise MinvertError("the features were extracted with an in-memory network, so the encoder "
                               "cannot be reloaded; pass it (--encoder MODEL)")
        encoder = where
    net = load_encoder(encoder, device)[0]
    if weights_fingerprint(net) != record["model_sha256"]:
        raise MinvertError(f"encoder {record.get('model') or encoder} is not the network that made the "
                           "cached features (its weights differ); pass the model given to extract")
    return net


def encode(net, images, batch_size=16):
    """Pooled features (N, D) float32 of uint8 (H, W, 3) images, prepared as the weights expect."""
    out = []
    for i in range(0, len(images), batch_size):
        x = np.concatenate([net.preprocessing.prepare(im, dtype=net.dtype)
                            for im in images[i:i + batch_size]])  # (n, 3, S, S)
        out.append(to_numpy(net.features(net.xp.asarray(x))).astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0, net.feature_size), np.float32)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _visible(folder, want_dir):
    """Sorted paths of the non-hidden files (or folders) directly in ``folder``."""
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder))
            if not n.startswith(".") and os.path.isdir(os.path.join(folder, n)) == want_dir]


def _folder_images(folder, log):
    """The files of ``folder``; for a folder of class sub-folders (what ``minvert dataset`` writes)
    their files instead, the classes taken in turn in a fixed shuffled order, so that the first
    images of the cache (--split paper holds out the first 10) are a mix of classes, not ten of
    the alphabetically first one. A folder with images of its own is read as before: its files."""
    classes, top = _visible(folder, want_dir=True), _visible(folder, want_dir=False)
    if not classes or any(Path(f).suffix.lower() in IMAGE_SUFFIXES for f in top):
        return top
    if top:
        log(f"note: {folder} holds class sub-folders; its {len(top)} other top-level file(s) "
            "(dataset.json, ...) are left out")
    files = [_visible(classes[k], want_dir=False)
             for k in np.random.default_rng(0).permutation(len(classes))]
    return [f[i] for i in range(max(map(len, files))) for f in files if i < len(f)]


def _expand_paths(images, log):
    """Paths as given (normalised), folders replaced by their files (see :func:`_folder_images`),
    duplicates dropped."""
    paths = []
    for p in images:
        p = os.path.normpath(os.fspath(p))
        if os.path.isdir(p):
            paths += _folder_images(p, log)
        else:
            paths.append(p)
    unique = list(dict.fromkeys(paths))
    if len(unique) < len(paths):
        log(f"note: {len(paths) - len(unique)} duplicate path(s) ignored")
    return unique


SAVE_SECONDS = 60.0  # a killed extraction loses at most about this much work


class _Rows:
    """The cache's rows in memory (the old file's, then each new batch); :meth:`save` writes
    them all to the file (:func:`write_cache`), never appending inside it."""

    def __init__(self, path, header, old=None):
        self.path, self.header = path, header
        self.features = [old.features] if old is not None else []
        self.targets = [old.targets] if old is not None else []
        self.names = list(old.names) if old is not None else []
        self.saved, self.last_save = len(self.names), time.perf_counter()

    def add(self, features, targets, names):
        self.features.append(features)
        self.targets.append(targets)
        self.names += names
        if time.perf_counter() - self.last_save >= SAVE_SECONDS:
            self.save()

    def save(self):
        if len(self.names) > self.saved:
            D, S = self.header["feature_size"], self.header["target_size"]
            features = np.concatenate(self.features) if self.features else np.zeros((0, D), np.float32)
            targets = np.concatenate(self.targets) if self.targets else np.zeros((0, S, S, 3), np.uint8)
            self.features, self.targets = [features], [targets]  # one array from now on
            write_cache(self.path, self.header, features, targets, self.names)
            self.saved = len(self.names)
        self.last_save = time.perf_counter()


def _fill(rows, net, todo, batch_size, target_size, resample, log):
    """Encode the files ``todo`` into ``rows``, a batch at a time: (added, skipped). Ctrl-C
    saves the rows done so far."""
    added, skipped, start = 0, [], time.perf_counter()
    last = start
    try:
        for i in range(0, len(todo), batch_size):
            imgs, loaded = [], []
            for p in todo[i:i + batch_size]:
                try:
                    imgs.append(load_image(p))
                    loaded.append(p)
                except MinvertError as e:
                    skipped.append(p)
                    log(escape_text(f"  skipped {p}: {e}"))
            if imgs:
                view = SimpleNamespace(input_size=target_size, resize=None, resample=resample)
                targets = np.stack([fit_to_network(im, None, view)[0] for im in imgs])  # (n, S, S, 3)
                rows.add(encode(net, imgs, len(imgs)), targets, loaded)
                added += len(loaded)
            now = time.perf_counter()
            if now - last >= 2 or i + batch_size >= len(todo):
                last, done = now, min(i + batch_size, len(todo))
                log(f"  {done}/{len(todo)} images  {done / max(now - start, 1e-9):.1f} img/s")
    except KeyboardInterrupt:
        rows.save()
        log(f"\ninterrupted: the cache holds {rows.saved} images; run the same command again to "
            "add the rest")
        raise
    rows.save()
    return added, skipped


def extract(images, model, out_cache, batch_size=16, target_size=256, log=print, device=None):
    """Extract pooled features and targets of ``images`` (paths or folders) into ``out_cache``.

    model: a model name (resnet50, tiny-resnet-textures), a weight-file path or a ResNet.
    Appends only files not yet in an existing cache (by writing old and new rows to a new file
    renamed over it); refuses (MinvertError, nothing written) a cache made by another encoder
    or with another target size, and a cache another extract is writing. Unreadable files are
    skipped and listed. Returns {"cache", "added", "total", "skipped", "seconds"}.
    """
    if int(target_size) < 4 or int(batch_size) < 1:
        raise MinvertError(f"target size {target_size}, batch {batch_size}: need target >= 4, batch >= 1")
    net, name, path = load_encoder(model, device)
    header = {"model": name, "model_path": path, "model_config": net.config,
              "model_sha256": weights_fingerprint(net), "preprocessing": net.preprocessing.to_dict(),
              "feature_size": int(net.feature_size), "target_size": int(target_size),
              "target_resample": net.preprocessing.resample}
    header = json.loads(json.dumps(header))  # as it reads back from the file
    out_cache, paths = Path(out_cache), _expand_paths(images, log)
    out_cache.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(lock_beside(out_cache), out_cache):
        rows = _existing_rows(out_cache, header, target_size)
        if not paths:
            raise MinvertError(f"no image files in {', '.join(map(str, images))[:300]}: give image "
                               "files, folders that hold them, or a folder of class sub-folders "
                               "that hold them; nothing was written")
        done = set(rows.names)
        todo = [p for p in paths if p not in done]
        log(f"extract: {len(paths) - len(todo)} of {len(paths)} images already in {out_cache}, "
            f"{len(todo)} to do ({describe_encoder(header)}, input {net.preprocessing.input_size}px, "
            f"targets {target_size}px; each image's central square, never squashed)")
        skipped, added, start = [], 0, time.perf_counter()
        if todo:
            added, skipped = _fill(rows, net, todo, batch_size, target_size, rows.header["target_resample"], log)
            if added == 0:
                raise MinvertError(f"none of the {len(todo)} file(s) could be read as images "
                                   f"({skipped[0]}{' ...' if len(skipped) > 1 else ''}); nothing was added")
    total = len(done) + added
    if skipped:
        shown = ", ".join(skipped[:20]) + (f" ... and {len(skipped) - 20} more" if len(skipped) > 20 else "")
        log(escape_text(f"warning: {len(skipped)} unreadable file(s) skipped: {shown}"))
    seconds = time.perf_counter() - start
    log(f"extract: added {added}, cache holds {total} images ({seconds:.1f} s)")
    return {"cache": str(out_cache), "added": added, "total": total, "skipped": skipped,
            "seconds": seconds}


def _existing_rows(out_cache, header, target_size):
    """The rows of the cache at ``out_cache`` (none if there is no file), after checking that
    it was made by the same encoder with the same targets; nothing is written when it was not."""
    if not out_cache.exists():
        return _Rows(out_cache, header)
    old = read_cache(out_cache)
    for key, what in (("model_sha256", "encoder"), ("preprocessing", "preprocessing"),
                      ("target_size", "target size"), ("target_resample", "target filter")):
        if old.header[key] != header[key]:
            raise MinvertError(f"{out_cache} holds features of {describe_encoder(old.header)} with "
                               f"{old.target_size}px targets; this run's {what} differs "
                               f"({describe_encoder(header)}, {target_size}px); nothing was "
                               "changed: use another --out")
    return _Rows(out_cache, old.header, old)
