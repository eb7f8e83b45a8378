"""One host synchronisation per training or transform step on the GPU, counted by the strict
stand-in (``cupy._core._state["syncs"]``: every .get(), float(), int(), bool() and print of a
device array), and float32 steps that make no float64 temporaries."""
import importlib

import numpy as np
import pytest
from PIL import Image

from minvert import optim
from minvert.datasets import CLASSES, make_dataset
from minvert.errors import ShapeError
from minvert.nets.tiny import build_tiny
from minvert.reconstruct.train import train as train_decoder
from minvert.reconstruct.features import extract
from minvert.classifier_training import train_classifier
from minvert.transform import Objective, Settings, transform
from minvert.transform.inputs import start_point
from minvert.transform.optimize import _gradient_steps
from minvert.weights.project import save


class Counter:
    """Syncs between steps, and how many had happened when each optimizer step began."""

    def __init__(self, cp):
        self.state, self.at_step, self.at_update = cp._core._state, [], []

    def on_step(self, step):
        self.at_step.append(self.state["syncs"])

    def per_step(self):
        return [b - a for a, b in zip(self.at_step, self.at_step[1:])]

    def watch(self, optimizer):
        step = optimizer.step

        def counted(pairs):
            self.at_update.append(self.state["syncs"])
            return step(pairs)
        optimizer.step = counted


@pytest.fixture
def feature_cache(strict_cupy, tmp_path):
    imgs, _, _ = make_dataset(1, size=32, seed=5)
    (tmp_path / "imgs").mkdir()
    for i, img in enumerate(imgs[:12]):
        Image.fromarray(img).save(tmp_path / "imgs" / f"{i}.png")
    enc = tmp_path / "enc.h5"
    save(build_tiny("tiny-resnet", 8, rng=np.random.default_rng(0)), enc)
    extract([tmp_path / "imgs"], enc, tmp_path / "c.h5", target_size=16, device="gpu",
            log=lambda *a: None)
    return tmp_path / "c.h5"


def test_decoder_training_waits_once_per_step_after_the_update(strict_cupy, feature_cache,
                                                              tmp_path, monkeypatch):
    counter = Counter(strict_cupy)
    adadelta = optim.Adadelta

    def watched(**kw):
        opt = adadelta(**kw)
        counter.watch(opt)
        return opt
    monkeypatch.setattr(importlib.import_module("minvert.reconstruct.train"), "Adadelta", watched)
    strict_cupy._core.reset_float64_temporaries()
    history = train_decoder(feature_cache, tmp_path / "run", decoder={"widths": [8]}, epochs=1,
                            batch_size=3, split="none", device="gpu", log=lambda *a: None,
                            on_step=counter.on_step, sample_every=0)
    steps = len(counter.at_step)
    assert steps >= 3 and counter.per_step() == [1] * (steps - 1)
    # no wait between a step's start and its update: loss and PSNR come back after it
    assert counter.at_update[1:] == counter.at_step[:-1]
    assert history[0]["psnr"] > 0 and strict_cupy._core.float64_temporaries == []


def classifier_run(cp, tmp_path, labels, counter):
    rng = np.random.default_rng(0)
    net = build_tiny("tiny-vgg", 4, rng=rng, input_size=16).to(cp)
    opt = optim.SGD(lr=0.01, momentum=0.9)
    counter.watch(opt)
    x = rng.standard_normal((12, 3, 16, 16)).astype(np.float32)
    return train_classifier(net, opt, x, labels, x[:0], labels[:0], tmp_path, epochs=1,
                            batch_size=3, log=lambda *a: None, on_step=counter.on_step)


def test_classifier_training_waits_once_per_step(strict_cupy, tmp_path):
    counter = Counter(strict_cupy)
    strict_cupy._core.reset_float64_temporaries()
    history = classifier_run(strict_cupy, tmp_path / "a", np.arange(12) % 4, counter)
    assert counter.per_step() == [1, 1, 1] and counter.at_update[1:] == counter.at_step[:-1]
    assert 0 <= history[0]["accuracy"] <= 1 and strict_cupy._core.float64_temporaries == []
    # the label check travels with the loss, and still stops a bad label
    with pytest.raises(ShapeError, match=r"class index out of range \[0, 4\): got \d..4"):
        classifier_run(strict_cupy, tmp_path / "b", np.arange(12) % 5, Counter(strict_cupy))


@pytest.mark.parametrize("optimizer", ["gd", "adam", "normalized"])
def test_gradient_transform_steps_wait_once_each(strict_cupy, optimizer):
    """Each step: the evaluation's one transfer (value, terms, logits, a finiteness flag);
    the image stays on the device. gd without an lr reads the first gradient's size once."""
    cp = strict_cupy
    net = build_tiny("tiny-vgg", 8, labels=list(CLASSES), rng=np.random.default_rng(0)).to(cp)
    net.freeze()
    image = make_dataset(1, size=64, seed=3)[0][2]
    s = Settings(target=3, iters=5, optimizer=optimizer, jitter=2,
                 lr=None if optimizer == "gd" else 1.0)
    x_orig, x, low, high, _ = start_point(net, image, s, None, None, np.random.default_rng(0))
    objective = Objective(net, x_orig, s)
    syncs, at_record = cp._core._state, []
    cp._core.reset_float64_temporaries()
    state = {"stopped": None}
    _gradient_steps(objective, x, s, np.random.default_rng(1), low, high, None,
                    lambda *a: at_record.append(syncs["syncs"]), state, lambda *a: None)
    steps = [b - a for a, b in zip(at_record, at_record[1:])]
    assert steps == [1, 1, 1, 1]
    assert isinstance(state["best"], cp.ndarray) and cp._core.float64_temporaries == []
    np.testing.assert_array_equal(state["best"].get(), x.get())


def test_transform_by_gradient_steps_keeps_its_best_image_on_the_device(strict_cupy):
    net = build_tiny("tiny-vgg", 8, labels=list(CLASSES), rng=np.random.default_rng(0)).to(strict_cupy)
    image = make_dataset(1, size=64, seed=3)[0][2]
    summary = transform(net, image, Settings(target=3, iters=3, optimizer="adam", lr=1.0),
                        log=lambda *a: None)
    assert summary["result"].dtype == np.uint8 and summary["result"].shape == image.shape
