"""The tutorials run: each script exits 0 as a subprocess, offline, and writes its pictures
into $MINVERT_TUTORIAL_OUT. About 15 s for all four on 2 busy CPU cores (04 is most of it)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("0*.py"))
WRITES = {"01_conv_by_hand": ["01_sobel.png"], "02_gradient_checking": [],
          "03_vgg_from_layers": ["03_gradient.png"],
          "04_class_inversion": ["04_class_inversion.png", "04_transform/summary.json"],
          "05_decoder_training": ["05_reconstructions.png"]}

# imported first by the subprocess: any attempt to open a network connection fails loudly
NO_NETWORK = """
import socket
def _refuse(*args, **kwargs):
    raise RuntimeError("tutorials must run offline, but one tried to open a connection")
socket.socket.connect = socket.socket.connect_ex = socket.create_connection = _refuse
"""


def test_the_numbered_tutorials_exist():
    assert [p.stem for p in TUTORIALS] == list(WRITES)


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs_offline_and_writes_its_pictures(path, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_NETWORK)
    out = tmp_path / "out"
    env = dict(os.environ, MINVERT_TUTORIAL_OUT=str(out), MINVERT_WEIGHTS=str(tmp_path),
               PYTHONPATH=os.pathsep.join(  # an inherited one too (CI's stand-in run puts CuPy's there)
                   p for p in (str(site), str(ROOT), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.strip(), "a tutorial prints what it shows"
    for name in WRITES[path.stem]:
        assert (out / name).is_file(), f"{path.name} did not write {name}"


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_is_a_percent_format_notebook(path):
    """jupytext and VS Code split cells at `# %%`; prose cells are `# %% [markdown]`."""
    text = path.read_text()
    assert text.startswith("# %% [markdown]\n# # ")
    assert text.count("# %% [markdown]") >= 3
    assert text.count("\n# %%\n") >= 3
