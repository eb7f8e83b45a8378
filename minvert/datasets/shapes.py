"""A generated dataset of coloured shapes on varied backgrounds: paper 003's stand-in for ImageNet.

The textures (:mod:`minvert.datasets.textures`) are classified by pattern alone, so a classifier trained
on them learns to ignore colour, and its pooled feature has little of an image left to decode.
Here the class is ``<colour family>-<shape>-on-<dark|light>`` (4 x 4 x 2 = 32 classes,
``CLASSES``): a network has to see the object's colour, its outline and the brightness of the
scene behind it, so its pooled feature carries them, as ImageNet features carry colour,
category and setting. What the label does NOT need varies freely: the object's position, size,
rotation and exact shade, and the background's hues, the direction and sharpness of its
"horizon" (two greyish colours blended across a soft edge), a faint texture and pixel noise.
Which of these survive in the pooled feature is paper 003's question.

Each image is drawn from its own generator (seeded by ``(seed, class index, i)``, like the
textures), anti-aliased by a one-pixel ramp on the shape's signed distance.
"""
import colorsys

import numpy as np

from ..errors import MinvertError
from .textures import PATTERNS, pixel_grid

SHAPES = ("circle", "square", "triangle", "cross")
# hue ranges in degrees (red wraps around 0); saturation and value are drawn per image
HUES = {"red": (-12.0, 10.0), "yellow": (45.0, 62.0), "green": (95.0, 145.0), "blue": (205.0, 240.0)}
BACKGROUNDS = {"dark": (0.08, 0.4), "light": (0.6, 0.95)}  # HSV value range of the background
CLASSES = tuple(f"{colour}-{shape}-on-{bg}" for colour in HUES for shape in SHAPES for bg in BACKGROUNDS)
RADIUS = (0.16, 0.32)   # object circumradius as a fraction of the image side


def _signed_distance(shape, u, v, r):
    """Signed distance in pixels (negative inside) of a shape of circumradius r centred at 0.

    u, v: coordinates (size, size) relative to the centre, already rotated.
    """
    if shape == "circle":
        return np.sqrt(u * u + v * v) - r
    if shape == "square":  # corners on the circumcircle: half side r / sqrt(2)
        return np.maximum(np.abs(u), np.abs(v)) - r / np.sqrt(2.0)
    if shape == "triangle":  # equilateral, corners on the circumcircle: edges at distance r / 2
        angles = np.pi / 2 + 2 * np.pi / 3 * np.arange(3)
        return np.max([u * np.cos(a) + v * np.sin(a) for a in angles], axis=0) - r / 2
    if shape == "cross":  # a plus sign: two bars of half length r and half width 0.3 r
        w = 0.3 * r
        bar_u = np.maximum(np.abs(u) - r, np.abs(v) - w)
        bar_v = np.maximum(np.abs(u) - w, np.abs(v) - r)
        return np.minimum(bar_u, bar_v)
    raise MinvertError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")


def _hsv(h_deg, s, v):
    return np.array(colorsys.hsv_to_rgb((h_deg % 360.0) / 360.0, s, v)) * 255.0


def _background(rng, size, brightness):
    """(3, size, size) float: two greyish colours of the ``brightness`` range (BACKGROUNDS)
    blended across a soft edge, and a faint texture."""
    x, y = pixel_grid(size)
    theta = rng.uniform(0, 2 * np.pi)
    t = (np.cos(theta) * (x - size / 2) + np.sin(theta) * (y - size / 2)) / size  # in about [-0.7, 0.7]
    edge = rng.uniform(-0.3, 0.3)
    softness = rng.uniform(0.03, 0.5)  # a sharp horizon .. a smooth gradient
    blend = 1.0 / (1.0 + np.exp(-(t - edge) / softness))
    value = BACKGROUNDS[brightness]
    c0, c1 = (_hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.3), rng.uniform(*value)) for _ in range(2))
    bg = c0[:, None, None] + (c1 - c0)[:, None, None] * blend
    pattern = PATTERNS[rng.choice(sorted(PATTERNS))](rng, size)  # a texture, at low contrast
    return bg + rng.uniform(4.0, 16.0) * (pattern - 0.5)


def draw_shape_image(name, rng, size=64):
    """One image of class ``name`` (e.g. "red-circle-on-dark") and what was drawn.

    Returns ``(image uint8 (size, size, 3), info)``; info: shape, colour family, background
    (dark or light), centre (x, y)
    and circumradius in pixels, rotation angle (radians; the shape's local u axis is
    (cos, sin) in image x, y), the object's RGB colour (0..255) and its coverage mask
    (size, size) in [0, 1].
    """
    if name not in CLASSES:
        raise MinvertError(f"unknown shapes class {name!r}; choose from {', '.join(CLASSES)}")
    if int(size) < 16:
        raise MinvertError(f"shape image size {size} is too small; use 16 or more pixels")
    size, rng = int(size), np.random.default_rng(rng)
    colour, shape, _, background = name.split("-")
    img = _background(rng, size, background)                             # (3, size, size)
    r = size * rng.uniform(*RADIUS)
    cx, cy = rng.uniform(0.9 * r, size - 0.9 * r, 2)                     # mostly inside the image
    angle = rng.uniform(0, 2 * np.pi)
    x, y = pixel_grid(size)
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * (x - cx) + s * (y - cy), -s * (x - cx) + c * (y - cy)
    mask = np.clip(0.5 - _signed_distance(shape, u, v, r), 0.0, 1.0)     # (size, size)
    rgb = _hsv(rng.uniform(*HUES[colour]), rng.uniform(0.65, 1.0), rng.uniform(0.6, 1.0))
    shade = 1.0 + rng.uniform(-0.25, 0.25) * (v / r)                     # light from one side
    obj = rgb[:, None, None] * shade
    img = img * (1.0 - mask) + obj * mask
    img += rng.normal(0.0, rng.uniform(1.0, 6.0), img.shape)
    img = np.rint(np.clip(img, 0, 255)).astype(np.uint8)
    info = {"shape": shape, "colour": colour, "background": background, "centre": (float(cx), float(cy)), "radius": float(r),
            "angle": float(angle), "rgb": rgb, "mask": mask}
    return np.ascontiguousarray(img.transpose(1, 2, 0)), info           # (size, size, 3)


def make_shape_image(name, rng, size=64):
    """One image of class ``name``: uint8 (size, size, 3) RGB (see :func:`draw_shape_image`)."""
    return draw_shape_image(name, rng, size)[0]
