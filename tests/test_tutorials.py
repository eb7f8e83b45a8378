"""The tutorials run: each script exits 0 as a subprocess, offline, writes its pictures into
$MINVERT_TUTORIAL_OUT, and every claim its text makes holds on the numbers of the run: a
tutorial states each one through claim(...), which prints "claim ok: ..." or stops it."""
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
          "05_decoder_training": ["05_reconstructions.png"],
          "06_inversion_by_optimisation": ["06_inversion.png"]}
# lines a tutorial must print (05: the epoch's mean BCE, which falls steadily; one batch's does not)
PRINTS = {"05_decoder_training": ["epoch 10: mean BCE over the epoch", "epoch 40: mean BCE over the epoch"]}

# the qualitative claims each tutorial's text makes, checked by the tutorial on its own numbers
CLAIMS = {
    "01_conv_by_hand": ["every output is -7.5", "the corners were under one patch",
                        "the loops and minvert's fast code agree",
                        "matches the numerical derivative to better than 1e-9"],
    "02_gradient_checking": ["float64 is best near h = 1e-5", "float32 never gets below 1e-5",
                             "in float32 even the correct dw fails the 1e-7 rule",
                             "float32 cannot tell the planted bug from the correct dw",
                             "over 1e5 times more", "with dout = ones all three are zero",
                             "the correct backward passes and the planted one fails",
                             "0.5 at x = 0", "at a tie the numerical derivative gives each maximum 0.5"],
    "03_vgg_from_layers": ["computes exactly the same thing", "fc6 sees 16 x 8 x 8 = 1024",
                           "max-pool passes the gradient's norm unchanged",
                           "every ReLU lowers the gradient's norm",
                           "the directional derivative from backward equals the finite difference"],
    "04_class_inversion": ["the network sees stripes", "the network is convinced",
                           "the masked gradient is zero on the right half",
                           "the right half comes back bit-identical",
                           "the class loss alone makes the image rougher",
                           "with TV the probability still rises above 0.9",
                           "with TV the pixels change less than half as much",
                           "with TV the image ends much less rough"],
    "06_inversion_by_optimisation": ["the directional derivative of the whole objective",
                                     "more than 10 times closer", "does not bring the picture back",
                                     "the TV prior gives a smoother result",
                                     "refinement ends closer in feature space than the decoder",
                                     "the decoder's pixels are closer", "refinement keeps the decoder's pixels"],
}

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
    # one BLAS thread unless the caller chose: on a loaded machine (a busy CI runner, several
    # test runs at once) OpenBLAS' spinning threads make the decoder tutorials 5x slower
    env = dict(os.environ, MINVERT_TUTORIAL_OUT=str(out), MINVERT_WEIGHTS=str(tmp_path),
               OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"),
               PYTHONPATH=os.pathsep.join(  # an inherited one too (CI's stand-in run puts CuPy's there)
                   p for p in (str(site), str(ROOT), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.strip(), "a tutorial prints what it shows"
    assert "CLAIM FAILS" not in proc.stdout
    checked = [line for line in proc.stdout.splitlines() if line.startswith("claim ok: ")]
    for text in CLAIMS.get(path.stem, []):
        assert any(text in line for line in checked), f"{path.name} no longer checks: {text}"
    for name in WRITES[path.stem]:
        assert (out / name).is_file(), f"{path.name} did not write {name}"
    for text in PRINTS.get(path.stem, []):
        assert text in proc.stdout, f"{path.name} no longer prints: {text}"


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_is_a_percent_format_notebook(path):
    """jupytext and VS Code split cells at `# %%`; prose cells are `# %% [markdown]`."""
    text = path.read_text()
    assert text.startswith("# %% [markdown]\n# # ")
    assert text.count("# %% [markdown]") >= 3
    assert text.count("\n# %%\n") >= 3
