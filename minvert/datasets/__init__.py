"""Datasets: two generated ones that let every classifier train offline in minutes on a CPU,
and a loader for any folder of class sub-folders.

* :mod:`.textures`: eight classes told apart by pattern alone (stripes, dots, ...);
* :mod:`.shapes`: 32 classes of coloured shapes on varied backgrounds (paper 003's stand-in for ImageNet);
* :mod:`.folder`: ``root/<class>/<image>`` for your own images.

Each generated image is drawn from its own generator seeded by ``(seed, class index, i)``: a
dataset is deterministic, and ``n_per_class=10`` is a prefix of ``20``.
"""
import json
import os
import time

import numpy as np
from PIL import Image

from ..errors import MinvertError
from . import shapes, textures
from .folder import load_image_folder  # noqa: F401  (public: minvert.datasets.load_image_folder)
from .textures import CLASSES, make_texture  # noqa: F401  (public: the texture classes)

KINDS = ("textures", "shapes")  # `minvert dataset KIND`, `minvert train --data KIND`


def dataset_classes(kind):
    """The fixed class list of a generated dataset ('textures' or 'shapes')."""
    return _kind(kind)[0]


def _kind(kind):
    """(class names, draw(name, rng, size) -> uint8 image) of a generated dataset."""
    if kind == "textures":
        return textures.CLASSES, textures.make_texture
    if kind == "shapes":
        return shapes.CLASSES, shapes.make_shape_image
    raise MinvertError(f"unknown generated dataset {kind!r}; choose from {', '.join(KINDS)}")


def _check_request(n_per_class, seed, classes, known):
    if int(n_per_class) < 1:
        raise MinvertError(f"n_per_class={n_per_class}: ask for at least 1 image per class")
    if int(seed) < 0:
        raise MinvertError(f"seed={seed}: use a non-negative integer")
    unknown = [c for c in classes if c not in known]
    if unknown:
        raise MinvertError(f"unknown class {unknown[0]!r}; choose from {', '.join(known)}")


def _image_rng(seed, class_index, i):
    return np.random.default_rng([int(seed), int(class_index), int(i)])


def make_dataset(n_per_class, size=64, seed=0, classes=None, kind="textures"):
    """Generate a dataset in memory: ``kind`` 'textures' (:mod:`.textures`) or 'shapes'
    (:mod:`.shapes`); ``classes``: a subset of its classes (default all, in order).

    Returns ``(images, labels, class_names)``: images uint8 (N, size, size, 3) with
    N = n_per_class * len(classes), class-major order (all of classes[0] first);
    labels int64 (N,) indexing class_names (= list(classes)).
    """
    known, draw = _kind(kind)
    classes = list(known if classes is None else classes)
    _check_request(n_per_class, seed, classes, known)
    n, size = int(n_per_class), int(size)
    images = np.empty((n * len(classes), size, size, 3), np.uint8)
    for c, name in enumerate(classes):
        for i in range(n):
            images[c * n + i] = draw(name, _image_rng(seed, known.index(name), i), size)
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), n)
    return images, labels, classes


def write_dataset(out_dir, n_per_class, size=64, seed=0, classes=None, log=print, kind="textures"):
    """Write ``out_dir/<class>/<class>_<i:05d>.png`` plus ``out_dir/dataset.json``.

    Same images as :func:`make_dataset` with the same arguments. Refuses (MinvertError)
    if any of the files already exists, before writing anything. ``log``: called
    with one progress line per class (None for silence). Returns a summary dict.
    """
    known, draw = _kind(kind)
    classes = list(known if classes is None else classes)
    _check_request(n_per_class, seed, classes, known)
    n, size = int(n_per_class), int(size)
    paths = {name: [os.path.join(out_dir, name, f"{name}_{i:05d}.png") for i in range(n)]
             for name in classes}
    meta_path = os.path.join(out_dir, "dataset.json")
    existing = [p for ps in paths.values() for p in ps if os.path.exists(p)]
    existing += [meta_path] if os.path.exists(meta_path) else []
    if existing:
        raise MinvertError(f"{len(existing)} file(s) already exist in {out_dir} (e.g. {existing[0]}); "
                           f"choose an empty --out folder or delete them")
    start = time.perf_counter()
    for c, name in enumerate(classes):
        os.makedirs(os.path.join(out_dir, name), exist_ok=True)
        for i, path in enumerate(paths[name]):
            Image.fromarray(draw(name, _image_rng(seed, known.index(name), i), size)).save(path)
        if log:
            log(f"[{c + 1}/{len(classes)}] {name}: {n} images -> {os.path.join(out_dir, name)}")
    summary = {"kind": f"minvert {kind}", "classes": classes, "n_per_class": n, "size": size,
               "seed": int(seed), "n_images": n * len(classes)}
    with open(meta_path, "w") as f:
        json.dump(summary, f, indent=1)
    summary.update(out_dir=str(out_dir), seconds=round(time.perf_counter() - start, 3))
    if log:
        log(f"wrote {summary['n_images']} images ({size}x{size}) in {summary['seconds']:.1f} s")
    return summary
