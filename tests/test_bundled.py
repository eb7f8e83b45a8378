"""The bundled classifiers: shipped in the wheel, found by name from anywhere, and right about
freshly generated images of every class of the dataset they were trained on."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import minvert
from minvert.backend import to_numpy
from minvert.datasets import dataset_classes, make_dataset
from minvert.weights import BUNDLED, BUNDLED_DIR

REPO = Path(__file__).resolve().parent.parent
PACKAGE_PARENT = str(Path(minvert.__file__).resolve().parent.parent)


def _run(args, cwd):
    # keep an inherited PYTHONPATH (CI's second run puts the strict CuPy stand-in on it)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p))
    return subprocess.run([sys.executable, "-m", "minvert.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _kind(name):
    return name.rsplit("-", 1)[1]  # tiny-resnet-shapes -> shapes


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_classifies_a_new_image_of_every_class(name, tmp_path):
    images, labels, classes = make_dataset(1, size=64, seed=424242, kind=_kind(name))  # seeds no run used
    paths = []
    for img, y in zip(images, labels):
        paths.append(str(tmp_path / f"{classes[y]}.png"))
        Image.fromarray(img).save(paths[-1])
    r = _run(["classify", *paths, "--model", name, "--top", "1", "--json"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    import json
    got = [json.loads(line)["top"][0]["label"] for line in r.stdout.splitlines()]
    assert got == [classes[y] for y in labels]


def test_shapes_encoder_is_accurate_on_a_fresh_set():
    # 5 new images of each of the 32 classes, from a seed no training run used
    net = minvert.load_model("tiny-resnet-shapes")
    images, labels, classes = make_dataset(5, size=64, seed=515151, kind="shapes")
    assert net.labels == classes
    logits = to_numpy(net.predict(net.preprocessing.preprocess(net.xp.asarray(images))))
    assert np.mean(np.argmax(logits, axis=1) == labels) >= 0.95


def test_bundled_models_are_small_and_inside_the_package():
    for name in BUNDLED:
        path = BUNDLED_DIR / f"{name}.h5"
        assert path.is_file() and path.stat().st_size < 5 * 2**20
        assert path.resolve().parent.parent == Path(minvert.__file__).resolve().parent
        net = minvert.load_model(name)
        assert net.labels == list(dataset_classes(_kind(name))) and net.preprocessing.mode == "unit"
        assert net.source["test_accuracy"] >= 0.95


def test_the_wheel_carries_the_bundled_models(tmp_path):
    # the same build `pip install .` runs (isolated: setuptools as pyproject.toml asks)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(REPO)],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and "No module named pip" in r.stderr:
        pytest.skip("pip is not available in this environment")
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(tmp_path.glob("minvert-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for name in BUNDLED:
        assert f"minvert/data/{name}.h5" in names
    assert "minvert/data/imagenet_class_index.json" in names
