"""A generated texture dataset, and a loader for any folder of class sub-folders.

The textures let every classifier in minvert be trained offline in minutes on a
CPU. Each class is a *shape* of pattern; its colours, scale, orientation, phase,
lighting gradient and pixel noise are random per image, so the class cannot be
told from the mean colour and a small CNN has to look at local structure.

Each image is drawn from its own generator seeded by ``(seed, class index, i)``:
the dataset is deterministic, and ``n_per_class=10`` is a prefix of ``20``.
Everything is vectorised NumPy on ``(size, size)`` coordinate grids, ~0.3 ms an
image at 64x64 (a few thousand images a second).

Classes (``CLASSES``, fixed order): stripes; checkerboard; dots (square or hexagonal
lattice); rings (concentric, centre possibly outside the image); waves (stripes
bent by a sine); zigzag (stripes bent by a triangle wave); grid (thin crossing
lines); blobs (a smooth random field, thresholded softly).
"""
import json
import os
import time
import warnings
from functools import lru_cache

import numpy as np

from .errors import MinvertError

CLASSES = ("stripes", "checkerboard", "dots", "rings", "waves", "zigzag", "grid", "blobs")


# -- building blocks --------------------------------------------------------

@lru_cache(maxsize=8)
def _grid(size):
    """Pixel-centre coordinates (x, y), each (size, size), read-only."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _rotated(rng, size):
    """Coordinates (u, v) in pixels along a random direction, origin anywhere."""
    x, y = _grid(size)
    theta = rng.uniform(0.0, np.pi)
    c, s = np.cos(theta), np.sin(theta)
    return c * x + s * y, -s * x + c * y


def _band(t, duty, period):
    """Coverage in [0, 1] of a periodic band: t in periods, band = frac(t) < duty.

    The signed distance to the nearest band edge, in pixels, goes through a
    one-pixel ramp, which anti-aliases the edges.
    """
    f = t - np.floor(t)
    inside = np.minimum(f, duty - f)
    outside = -np.minimum(f - duty, 1.0 - f)
    dist = period * np.where(f < duty, inside, outside)
    return np.clip(0.5 + dist, 0.0, 1.0)


def _period(rng, size, lo, hi):
    return max(4.0, size * rng.uniform(lo, hi))  # below 4 px a pattern aliases into mush


# -- the classes: each returns a coverage mask (size, size) in [0, 1] -----------

def _stripes(rng, size):
    u, _ = _rotated(rng, size)
    p = _period(rng, size, 0.08, 0.25)
    return _band(u / p + rng.uniform(), rng.uniform(0.3, 0.7), p)


def _checkerboard(rng, size):
    u, v = _rotated(rng, size)
    p = _period(rng, size, 0.1, 0.3)
    a = _band(u / p + rng.uniform(), 0.5, p)
    b = _band(v / p + rng.uniform(), 0.5, p)
    return a + b - 2 * a * b  # soft XOR


def _dots(rng, size):
    u, v = _rotated(rng, size)
    p = _period(rng, size, 0.12, 0.3)
    tv = v / p + rng.uniform()
    hexagonal = 0.5 * (rng.uniform() < 0.5)  # half the images shift every other row
    tu = u / p + rng.uniform() + hexagonal * (np.floor(tv) % 2)
    du, dv = tu - np.floor(tu) - 0.5, tv - np.floor(tv) - 0.5
    r = p * np.sqrt(du * du + dv * dv)
    radius = p * rng.uniform(0.18, 0.38)
    return np.clip(0.5 + radius - r, 0.0, 1.0)


def _rings(rng, size):
    x, y = _grid(size)
    cx, cy = size * rng.uniform(-0.2, 1.2, 2)  # centre may lie outside the image
    r = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
    p = _period(rng, size, 0.08, 0.2)
    return _band(r / p + rng.uniform(), rng.uniform(0.3, 0.7), p)


def _waves(rng, size):
    u, v = _rotated(rng, size)
    p = _period(rng, size, 0.08, 0.2)
    wavelength = size * rng.uniform(0.3, 0.7)
    amp = wavelength * rng.uniform(0.1, 0.2)
    shift = amp * np.sin(2 * np.pi * (v / wavelength + rng.uniform()))
    return _band((u + shift) / p + rng.uniform(), rng.uniform(0.35, 0.65), p)


def _zigzag(rng, size):
    u, v = _rotated(rng, size)
    p = _period(rng, size, 0.08, 0.2)
    wavelength = size * rng.uniform(0.15, 0.4)
    amp = wavelength * rng.uniform(0.2, 0.4)
    t = v / wavelength + rng.uniform()
    shift = amp * (4 * np.abs(t - np.floor(t) - 0.5) - 1)  # triangle wave in [-amp, amp]
    return _band((u + shift) / p + rng.uniform(), rng.uniform(0.35, 0.65), p)


def _grid_lines(rng, size):
    u, v = _rotated(rng, size)
    p = _period(rng, size, 0.15, 0.35)
    q = p * rng.uniform(0.8, 1.25)
    width = rng.uniform(0.1, 0.25)
    a = _band(u / p + rng.uniform(), width, p)
    b = _band(v / q + rng.uniform(), width * p / q, q)
    return np.maximum(a, b)


def _blobs(rng, size, k=12):
    """Sum of k random low-frequency plane waves, thresholded softly."""
    x = _grid(size)[0][0]                                    # (size,) pixel centres
    wavelength = size * rng.uniform(0.2, 0.6, k)
    angle = rng.uniform(0.0, 2 * np.pi, k)
    phase = rng.uniform(0.0, 2 * np.pi, k)
    ky = 2 * np.pi * np.sin(angle) / wavelength
    kx = 2 * np.pi * np.cos(angle) / wavelength
    a = np.outer(x, ky) + phase                              # (size, k), along y
    b = np.outer(x, kx)                                      # (size, k), along x
    # cos(a + b) = cos a cos b - sin a sin b: two small matmuls instead of k full planes
    field = np.cos(a) @ np.cos(b).T - np.sin(a) @ np.sin(b).T  # (size, size) indexed [y, x]
    field /= field.std() + 1e-12
    return np.clip(0.5 + rng.uniform(0.7, 3.0) * field, 0.0, 1.0)


_DRAW = {"stripes": _stripes, "checkerboard": _checkerboard, "dots": _dots, "rings": _rings,
         "waves": _waves, "zigzag": _zigzag, "grid": _grid_lines, "blobs": _blobs}


def _colours(rng):
    """Two RGB colours (floats 0..255) at least 100 apart, so the pattern is visible."""
    c0 = rng.uniform(0, 255, 3)
    for _ in range(20):
        c1 = rng.uniform(0, 255, 3)
        if np.linalg.norm(c1 - c0) >= 100:
            return c0, c1
    return c0, 255.0 - c0  # rare: c0 near mid-grey; its complement is far enough


def make_texture(name, rng, size=64):
    """One texture image of class ``name``: uint8 (size, size, 3) RGB.

    rng: a numpy Generator (or a seed for ``np.random.default_rng``).
    """
    if name not in _DRAW:
        raise MinvertError(f"unknown texture class {name!r}; choose from {', '.join(CLASSES)}")
    if int(size) < 8:
        raise MinvertError(f"texture size {size} is too small; use 8 or more pixels")
    size = int(size)
    rng = np.random.default_rng(rng)
    m = _DRAW[name](rng, size).astype(np.float32)              # (size, size)
    c0, c1 = (c.astype(np.float32)[:, None, None] for c in _colours(rng))
    x, y = _grid(size)
    gx, gy = rng.uniform(-0.3, 0.3, 2) / size                  # lighting gradient
    light = (1.0 + gx * (x - size / 2) + gy * (y - size / 2)).astype(np.float32)
    # channel-first while computing: NumPy broadcasts over a trailing axis of 3 slowly
    img = (c0 + (c1 - c0) * m) * light                        # (3, size, size)
    # uniform noise with std 2..12 (a width of sqrt(12) std): a fifth of the cost of
    # Gaussian noise, and it looks the same
    width = np.float32(rng.uniform(2.0, 12.0) * np.sqrt(12.0))
    img += width * (rng.random(img.shape, dtype=np.float32) - np.float32(0.5))
    img = np.rint(np.clip(img, 0, 255)).astype(np.uint8)
    return np.ascontiguousarray(img.transpose(1, 2, 0))      # (size, size, 3)

# -- generated datasets by name ------------------------------------------------

KINDS = ("textures", "shapes")  # `minvert dataset KIND`, `minvert train --data KIND`


def dataset_classes(kind):
    """The fixed class list of a generated dataset ('textures' or 'shapes')."""
    return _kind(kind)[0]


def _kind(kind):
    """(class names, draw(name, rng, size) -> uint8 image) of a generated dataset."""
    if kind == "textures":
        return CLASSES, make_texture
    if kind == "shapes":
        from . import shapes  # it builds on the texture helpers above
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
    """Generate a dataset in memory: ``kind`` 'textures' (this module) or 'shapes'
    (:mod:`minvert.shapes`); ``classes``: a subset of its classes (default all, in order).

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
    from PIL import Image

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


def cli_dataset(out, n, size=64, seed=0, kind="textures"):
    """Body of ``minvert dataset KIND --out DIR --n N [--size S] [--seed K]``."""
    return write_dataset(out, n, size=size, seed=seed, kind=kind)


# -- loading any image folder ---------------------------------------------------

def load_image_folder(root, size=None, warn=None):
    """Read ``root/<class>/<image>`` for every sub-folder (class names sorted).

    Any file Pillow can read is converted to RGB (and resized to size x size with
    bilinear filtering if size is given, ignoring the aspect ratio). Hidden files and
    folders (starting with '.') are ignored; files at the top level are ignored.
    Files Pillow cannot read are skipped, listed in a warning (through ``warn(message)`` when
    given, e.g. a CLI's print, else :func:`warnings.warn`) and returned.

    Returns ``(images uint8 (N, H, W, 3), labels int64 (N,), class_names, skipped)``.
    Raises MinvertError for a missing or empty folder, a single class, images of
    different sizes with size=None, or no readable image at all.
    """
    from PIL import Image

    root = os.fspath(root)
    if not os.path.isdir(root):
        raise MinvertError(f"image folder {root} does not exist (or is not a folder)")
    class_names = sorted(d for d in os.listdir(root)
                         if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    if not class_names:
        raise MinvertError(f"{root} has no class sub-folders; expected {root}/<class>/<images>")
    if len(class_names) == 1:
        raise MinvertError(f"{root} has only one class folder ({class_names[0]}); "
                           f"a classifier needs at least two")
    resample = getattr(Image, "Resampling", Image).BILINEAR
    images, labels, skipped = [], [], []
    for label, name in enumerate(class_names):
        folder = os.path.join(root, name)
        for fname in sorted(os.listdir(folder)):
            path = os.path.join(folder, fname)
            if fname.startswith(".") or not os.path.isfile(path):
                continue
            try:
                with Image.open(path) as im:
                    im = im.convert("RGB")
                    if size is not None:
                        im = im.resize((int(size), int(size)), resample)
                    images.append(np.asarray(im, dtype=np.uint8))
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
                skipped.append(path)  # not an image, truncated, or unsupported
                continue
            labels.append(label)
    if skipped:
        shown = ", ".join(skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
        message = f"warning: skipped {len(skipped)} unreadable file(s) in {root}: {shown}"
        warn(message) if warn else warnings.warn(message, stacklevel=2)
    if not images:
        raise MinvertError(f"no readable images in {root} ({len(skipped)} file(s) skipped)")
    shapes = sorted({im.shape for im in images})
    if len(shapes) > 1:
        raise MinvertError(f"images in {root} have {len(shapes)} different sizes (e.g. {shapes[0][:2]} "
                           f"and {shapes[-1][:2]}); pass size= to resize them all")
    return np.stack(images), np.asarray(labels, dtype=np.int64), class_names, skipped
