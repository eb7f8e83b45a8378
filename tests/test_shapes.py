"""The generated shapes dataset: seeded, and every image shows what its label says.

The shape is checked against Pillow's own polygon/ellipse rasteriser (an independent drawing of
the outline the label names, from the recorded centre, radius and angle), the colour family
against the hue measured on the image's pixels, the background against its measured brightness.
"""
import colorsys
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from minvert.cli import main
from minvert.datasets import dataset_classes, make_dataset
from minvert.errors import MinvertError
from minvert.datasets.shapes import BACKGROUNDS, CLASSES, HUES, SHAPES, draw_shape_image


def _outline(shape, r):
    """Vertices (u, v) of the shape's polygon, circumradius r (None for the circle)."""
    if shape == "square":
        h = r / np.sqrt(2)
        return [(h, h), (-h, h), (-h, -h), (h, -h)]
    if shape == "triangle":  # corners opposite the edge normals, at distance r
        return [(r * np.cos(a), r * np.sin(a)) for a in 1.5 * np.pi + 2 * np.pi / 3 * np.arange(3)]
    if shape == "cross":
        w = 0.3 * r
        return [(w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r), (-w, -r), (-w, -w), (-r, -w),
                (-r, w), (-w, w), (-w, r)]
    return None


def _pil_mask(shape, info, size):
    """The shape drawn by Pillow at the recorded pose: bool (size, size)."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    (cx, cy), r, a = info["centre"], info["radius"], info["angle"]
    cx, cy = cx - 0.5, cy - 0.5  # Pillow's integer coordinates are pixel centres, ours corners
    verts = _outline(shape, r)
    if verts is None:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        c, s = np.cos(a), np.sin(a)
        draw.polygon([(cx + c * u - s * v, cy + s * u + c * v) for u, v in verts], fill=255)
    return np.asarray(canvas) > 127


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def _hue_in(hue_deg, family, slack=6.0):
    lo, hi = HUES[family]
    return any(lo - slack <= h <= hi + slack for h in (hue_deg, hue_deg - 360.0))


@pytest.mark.parametrize("name", CLASSES)
def test_each_image_shows_its_labelled_shape_colour_and_background(name):
    colour, shape, _, background = name.split("-")
    size = 96
    for i in range(3):
        img, info = draw_shape_image(name, np.random.default_rng([7, i]), size)
        assert img.shape == (size, size, 3) and img.dtype == np.uint8
        drawn = info["mask"] > 0.5
        ious = {s: _iou(drawn, _pil_mask(s, info, size)) for s in SHAPES}
        assert ious[shape] > 0.85, (name, i, ious)
        assert max(ious, key=ious.get) == shape, (name, i, ious)
        inside = info["mask"] > 0.99
        r, g, b = img[inside].astype(np.float64).mean(axis=0) / 255  # measured on the pixels
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        assert _hue_in(360 * h, colour) and s > 0.45, (name, i, 360 * h, s)
        # the background has the labelled brightness, and the object stands out from it
        outside = info["mask"] == 0
        bg = img[outside].astype(np.float64).mean(axis=0) / 255
        lo, hi = BACKGROUNDS[background]
        assert lo - 0.05 < max(bg) < hi + 0.05, (name, i, bg)
        assert np.abs(img[outside].mean(axis=0) - img[inside].mean(axis=0)).max() > 25


def test_dataset_is_seeded_and_varies_what_the_label_does_not_fix():
    x, y, names = make_dataset(3, size=32, seed=5, kind="shapes")
    assert names == list(CLASSES) and dataset_classes("shapes") == CLASSES and len(CLASSES) == 32
    assert x.shape == (96, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, np.repeat(np.arange(32), 3))
    x2, _, _ = make_dataset(3, size=32, seed=5, kind="shapes")
    assert x.tobytes() == x2.tobytes()
    assert not np.array_equal(x, make_dataset(3, size=32, seed=6, kind="shapes")[0])
    np.testing.assert_array_equal(make_dataset(1, size=32, seed=5, kind="shapes")[0], x[::3])
    # position, size and the background's shade vary within a class
    drawn = [draw_shape_image("blue-cross-on-dark", np.random.default_rng([1, i]), 64) for i in range(20)]
    infos = [info for _, info in drawn]
    assert np.std([inf["centre"][0] for inf in infos]) > 5 and np.std([inf["radius"] for inf in infos]) > 1
    assert np.std([img[info["mask"] == 0].mean() for img, info in drawn]) > 8


def test_bad_requests_are_one_line_errors():
    with pytest.raises(MinvertError, match="red-circle-on-dark") as e:
        draw_shape_image("purple-circle-on-dark", 0)
    assert "\n" not in str(e.value)
    with pytest.raises(MinvertError, match="too small"):
        draw_shape_image("red-circle-on-dark", 0, size=8)
    with pytest.raises(MinvertError, match="shapes"):
        make_dataset(1, kind="faces")
    with pytest.raises(MinvertError, match="stripes"):
        make_dataset(1, kind="shapes", classes=["stripes"])


def test_cli_writes_the_shapes_dataset(tmp_path, capsys):
    out = tmp_path / "shapes"
    assert main(["dataset", "shapes", "--out", str(out), "--n", "1", "--size", "32", "--seed", "3"]) == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["kind"] == "minvert shapes" and meta["n_images"] == 32 and meta["seed"] == 3
    x, _, _ = make_dataset(1, size=32, seed=3, kind="shapes")
    name = "green-cross-on-light"
    np.testing.assert_array_equal(np.asarray(Image.open(out / name / f"{name}_00000.png")),
                                  x[CLASSES.index(name)])
    assert "wrote 32 images" in capsys.readouterr().out
