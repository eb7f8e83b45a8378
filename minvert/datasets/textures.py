"""The generated texture dataset: eight classes told apart by their pattern alone.

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
from functools import lru_cache

import numpy as np

from ..errors import MinvertError

CLASSES = ("stripes", "checkerboard", "dots", "rings", "waves", "zigzag", "grid", "blobs")


# -- building blocks --------------------------------------------------------

@lru_cache(maxsize=8)
def pixel_grid(size):
    """Pixel-centre coordinates (x, y), each (size, size), read-only."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _rotated(rng, size):
    """Coordinates (u, v) in pixels along a random direction, origin anywhere."""
    x, y = pixel_grid(size)
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
    x, y = pixel_grid(size)
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
    x = pixel_grid(size)[0][0]                               # (size,) pixel centres
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


PATTERNS = {"stripes": _stripes, "checkerboard": _checkerboard, "dots": _dots, "rings": _rings,
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
    if name not in PATTERNS:
        raise MinvertError(f"unknown texture class {name!r}; choose from {', '.join(CLASSES)}")
    if int(size) < 8:
        raise MinvertError(f"texture size {size} is too small; use 8 or more pixels")
    size = int(size)
    rng = np.random.default_rng(rng)
    m = PATTERNS[name](rng, size).astype(np.float32)           # (size, size)
    c0, c1 = (c.astype(np.float32)[:, None, None] for c in _colours(rng))
    x, y = pixel_grid(size)
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
