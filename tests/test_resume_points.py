"""Resume from any interruption point (issue 25 item 5, issue 23 item 10): after every step and
during every end-of-epoch evaluation, an interrupted and resumed run ends with the weights and
the log records (all but the timings) of an uninterrupted one."""
import json

import numpy as np
import pytest
from PIL import Image

from minvert.backend import to_numpy
from minvert.datasets import make_dataset
from minvert.layers.loss import softmax_cross_entropy
from minvert.nets.tiny import build_tiny
from minvert.optim import Adam
from minvert.reconstruct.features import extract
from minvert.reconstruct.train import _Session, train
from minvert.training import run_epochs
from minvert.weights.project import load, save

TIMINGS = ("seconds", "images_per_s")
N, BATCH, EPOCHS = 12, 5, 2  # 3 steps per epoch (5, 5, 2)


def quiet(*_):
    pass


def records(folder):
    lines = (folder / "log.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS} for line in lines]


def weights(net):
    return {f"{n}.{k}": to_numpy(v).copy() for n, layer in net.weighted_layers()
            for k, v in {**layer.params, **layer.state}.items()}


def classifier_run(out, resume=False, stop_step=None, stop_eval=None):
    """A tiny classifier trained by run_epochs on fixed random data; stops (KeyboardInterrupt)
    after step ``stop_step`` or inside the evaluation of epoch ``stop_eval``."""
    net = build_tiny("tiny-vgg", 3, rng=np.random.default_rng(0), input_size=16)
    opt = Adam(lr=1e-3)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, 3, 16, 16)).astype(np.float32)
    y = rng.integers(0, 3, N)

    def step(idx):
        logits = net.forward(x[idx])
        loss, dlogits = softmax_cross_entropy(logits, y[idx])
        net.backward(dlogits)
        opt.step(net.parameters())
        return float(loss), int((to_numpy(logits.argmax(axis=1)) == y[idx]).sum()), len(idx)

    def evaluate(epoch):
        if epoch == stop_eval:
            raise KeyboardInterrupt
        return {"val_loss": float(softmax_cross_entropy(net.predict(x[:4]), y[:4])[0])}

    def on_step(s):
        if s == stop_step:
            raise KeyboardInterrupt
    run_epochs(net, opt, step, N, out, EPOCHS, BATCH, seed=0, resume=resume, evaluate=evaluate,
               log=quiet, on_step=on_step)
    return net


STOPS = [{"stop_step": s} for s in range(1, 3 * EPOCHS)] + [{"stop_eval": e} for e in (1, 2)]


@pytest.mark.parametrize("stop", STOPS, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_classifier_resumes_from_every_point(tmp_path, stop):
    full = classifier_run(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        classifier_run(tmp_path / "cut", **stop)
    resumed = classifier_run(tmp_path / "cut", resume=True)
    a, b = weights(full), weights(resumed)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert records(tmp_path / "cut") == records(tmp_path / "full")
    assert len(records(tmp_path / "full")) == EPOCHS and "accuracy" in records(tmp_path / "full")[0]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("points")
    pictures, _, _ = make_dataset(1, size=32)
    for i, img in enumerate(pictures[:7]):
        Image.fromarray(img).save(root / f"{i}.png")
    save(build_tiny("tiny-resnet", 8, rng=np.random.default_rng(0)), root / "enc.h5")
    extract([str(p) for p in sorted(root.glob("*.png"))], str(root / "enc.h5"), root / "cache.h5",
            target_size=16, log=quiet)
    return root / "cache.h5"


SETTINGS = dict(decoder={"widths": [16, 8]}, epochs=2, batch_size=2, split="fraction:0.3", log=quiet,
                sample_every=0)  # 5 training images: 3 steps per epoch


@pytest.mark.parametrize("stop", [{"step": 2}, {"step": 4}, {"eval": 1}], ids=str)
def test_resumed_decoder_writes_the_same_log(tmp_path, cache, stop, monkeypatch):
    """issue 23 item 10: the interrupted epoch's record includes the batches before the cut."""
    train(cache, tmp_path / "full", **SETTINGS)
    end_of_epoch = _Session.end_of_epoch

    def cut_evaluation(self, epoch):
        if epoch == stop.get("eval"):
            raise KeyboardInterrupt
        return end_of_epoch(self, epoch)

    def cut_step(s):
        if s == stop.get("step"):
            raise KeyboardInterrupt
    monkeypatch.setattr(_Session, "end_of_epoch", cut_evaluation)
    with pytest.raises(KeyboardInterrupt):
        train(cache, tmp_path / "cut", on_step=cut_step, **SETTINGS)
    monkeypatch.undo()
    train(cache, tmp_path / "cut", resume=True, log=quiet, sample_every=0)
    assert records(tmp_path / "cut") == records(tmp_path / "full")
    assert {"psnr", "val_psnr"} <= set(records(tmp_path / "full")[0])
    a, b = load(tmp_path / "full" / "decoder.h5"), load(tmp_path / "cut" / "decoder.h5")
    assert all(np.array_equal(to_numpy(p), to_numpy(q))
               for (_, p, _), (_, q, _) in zip(a.parameters(), b.parameters()))
