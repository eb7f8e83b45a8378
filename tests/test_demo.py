"""`minvert demo` end to end (fewer epochs and iterations than the real one, same code path)."""
import json
import re

import pytest

from minvert.demo import run_demo
from minvert.errors import MinvertError


def test_demo_writes_a_page_whose_images_and_numbers_exist(tmp_path):
    out = tmp_path / "demo"
    lines = []
    report = run_demo(out, log=lines.append, decoder_epochs=3, transform_iters=3)
    page = (out / "index.html").read_text()
    for src in re.findall(r"src=['\"]([^'\"]+)['\"]", page) + re.findall(r"href=\"([^\"]+)\"", page):
        assert (out / src).is_file(), src
    assert len(report["classify"]["tiny-vgg-textures"]["predictions"]) == 16
    assert report["transform"]["iterations"] >= 1
    assert report["reconstruct"]["evaluation"]["held_out"]["count"] == 10
    assert json.loads((out / "report.json").read_text())["seconds"] > 0
    assert any("index.html" in line for line in lines)
    with pytest.raises(MinvertError, match="--force"):
        run_demo(out, log=lines.append)
