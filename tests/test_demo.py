"""`minvert demo` end to end (fewer epochs and iterations than the real one, same code path)."""
import json
import re

import numpy as np
import pytest

from minvert.demo import run_demo
from minvert.demo.run import _object_centre
from minvert.errors import MinvertError
from minvert.datasets.shapes import CLASSES, draw_shape_image


def test_demo_writes_a_page_whose_images_and_numbers_exist(tmp_path):
    out = tmp_path / "demo"
    lines = []
    report = run_demo(out, log=lines.append, decoder_epochs=3, transform_iters=3, recon_per_class=2)
    page = (out / "index.html").read_text()
    for src in re.findall(r"src=['\"]([^'\"]+)['\"]", page) + re.findall(r"href=\"([^\"]+)\"", page):
        assert (out / src).is_file(), src
    assert len(report["classify"]["tiny-vgg-textures"]["predictions"]) == 16
    assert len(report["classify"]["tiny-resnet-shapes"]["predictions"]) == 32
    assert report["transform"]["iterations"] >= 1
    r = report["reconstruct"]
    assert r["n_images"] == 64 and r["evaluation"]["held_out"]["count"] == 16  # a quarter held out
    assert len(r["history"]) == 3 and set(r["concepts"]) >= {"colour", "shape", "background", "class"}
    assert r["concepts"]["position_error_px"]["image_centre"] > 0
    assert "95% CI" in page and "chance" in page and "baseline" in page
    invert = report["invert"]["methods"]  # issue 26: the four methods, each with its intervals
    assert list(invert) == ["mean image", "decoder", "optimisation", "decoder + refinement"]
    assert all(len(m["psnr_ci95"]) == len(m["reid_top1_ci95"]) == 2 for m in invert.values())
    # every step reports progress, the decoder's epochs included
    assert sum(line.startswith("[3/3]") for line in lines) == 1
    assert any("epoch   3/3" in line for line in lines)
    assert json.loads((out / "report.json").read_text())["seconds"] > 0
    assert any("index.html" in line for line in lines)
    with pytest.raises(MinvertError, match="--force"):
        run_demo(out, log=lines.append)


def test_object_centre_finds_the_drawn_object():
    for i, name in enumerate(CLASSES[::3]):
        img, info = draw_shape_image(name, [3, i], 64)
        assert np.linalg.norm(_object_centre(img) - np.array(info["centre"])) < 2.5, name
        blurred = np.repeat(np.repeat(img[::4, ::4], 4, 0), 4, 1)  # a coarse blob, as decoded
        assert np.linalg.norm(_object_centre(blurred, soft=True) - np.array(info["centre"])) < 5, name
