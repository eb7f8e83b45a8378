"""Every ``minvert`` command once with ``--device gpu``, on the strict CuPy stand-in (so on any
machine): each must exit 0 and compute on the device. Sizes are the smallest that still run
every code path; speed is `minvert bench`'s business, not this file's."""
import functools
import json

import numpy as np
import pytest
from PIL import Image

from minvert import bench, classifier_training, demo
from minvert.bench import conv as bench_conv
from minvert.bench import nets as bench_nets
from minvert.bench.passes import TINY
from minvert.backend import is_gpu_array
from minvert.cli import main
from minvert.datasets import make_dataset
from minvert.nets.tiny import build_tiny
from minvert.weights.project import save

GPU = ["--device", "gpu"]


@pytest.fixture
def images(tmp_path):
    imgs, _, _ = make_dataset(2, size=32, seed=5)
    paths = []
    for i, img in enumerate(imgs[:14]):
        paths.append(tmp_path / "imgs" / f"{i:02d}.png")
        paths[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(img).save(paths[-1])
    return paths


def test_info_lists_the_devices_and_a_working_kernel(strict_cupy, capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "gpu:1" in out and "kernels  compile and run" in out and "weights  looked for in" in out


def test_classify_transform_gradcheck_exercise(strict_cupy, images, tmp_path, capsys):
    from pathlib import Path
    assert main(["classify", str(images[0]), "--model", "tiny-vgg-textures", "--json", *GPU]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["top"]
    assert main(["transform", str(images[0]), "--model", "tiny-vgg-textures", "--target", "stripes",
                 "--iters", "2", "--tv", "1e-3", "--out", str(tmp_path / "t"), *GPU]) == 0
    assert main(["transform", str(images[0]), "--model", "tiny-vgg-textures", "--target", "stripes",
                 "--iters", "2", "--jitter", "2", "--out", str(tmp_path / "j"), *GPU]) == 0
    assert (tmp_path / "t" / "result.png").is_file() and (tmp_path / "j" / "result.png").is_file()
    capsys.readouterr()
    assert main(["gradcheck", *GPU]) == 0
    out = capsys.readouterr().out
    assert "on the GPU" in out and "FAIL" not in out
    solution = Path(__file__).resolve().parents[1] / "tutorials" / "exercises" / "solutions" / "ex02_relu.py"
    assert main(["exercise", "check", str(solution)]) == 0  # student code is NumPy: stays on the host


def test_train_computes_on_the_device(strict_cupy, tmp_path, monkeypatch):
    seen = []
    loss = classifier_training.softmax_cross_entropy

    def spy(logits, labels, **kw):
        seen.append(is_gpu_array(logits) and is_gpu_array(labels))
        return loss(logits, labels, **kw)
    monkeypatch.setattr(classifier_training, "softmax_cross_entropy", spy)
    settings = ["--out", str(tmp_path / "r"), "--n", "4", "--val-n", "1", "--test-n", "1",
                "--size", "16", "--batch", "8", *GPU]
    assert main(["train", "--epochs", "1", *settings]) == 0
    assert seen and all(seen)
    assert main(["train", "--epochs", "2", "--resume", *settings]) == 0  # reads the device checkpoint
    assert main(["weights", "info", str(tmp_path / "r" / "model.h5")]) == 0


def _record_devices(monkeypatch, cls, method, seen):
    """Wrap cls.method to note whether the array it is given lives on the device."""
    real = getattr(cls, method)

    def spy(self, arg, *args, **kwargs):
        if not hasattr(arg, "shape"):  # an optimizer's (name, param, grad) triples
            arg = list(arg)
            seen.append(all(is_gpu_array(p) for _, p, _ in arg))
        else:
            seen.append(is_gpu_array(arg))
        return real(self, arg, *args, **kwargs)
    monkeypatch.setattr(cls, method, spy)


def test_transform_and_decoder_training_compute_on_the_device(strict_cupy, images, tmp_path,
                                                               monkeypatch):
    from minvert.optim import Optimizer
    from minvert.transform import Objective
    evaluated, stepped = [], []
    _record_devices(monkeypatch, Objective, "evaluate", evaluated)
    _record_devices(monkeypatch, Optimizer, "step", stepped)
    assert main(["transform", str(images[0]), "--model", "tiny-vgg-textures", "--target", "stripes",
                 "--iters", "1", "--out", str(tmp_path / "t"), *GPU]) == 0
    enc = tmp_path / "enc.h5"
    save(build_tiny("tiny-resnet", 8, rng=np.random.default_rng(0)), enc)
    assert main(["reconstruct", "extract", str(images[0].parent), "--model", str(enc), "--out",
                 str(tmp_path / "c.h5"), "--target-size", "16", *GPU]) == 0
    assert main(["reconstruct", "train", str(tmp_path / "c.h5"), "--out", str(tmp_path / "run"),
                 "--widths", "8", "--epochs", "1", "--batch", "4", *GPU]) == 0
    assert evaluated and all(evaluated) and stepped and all(stepped)


def test_reconstruct_every_step(strict_cupy, images, tmp_path):
    enc = tmp_path / "enc.h5"
    save(build_tiny("tiny-resnet", 8, rng=np.random.default_rng(0)), enc)
    cache, run = tmp_path / "c.h5", tmp_path / "run"
    r = ["reconstruct"]
    assert main([*r, "extract", str(images[0].parent), "--model", str(enc), "--out", str(cache),
                 "--target-size", "16", *GPU]) == 0
    assert main([*r, "train", str(cache), "--out", str(run), "--widths", "16,8", "--epochs", "2",
                 "--batch", "4", *GPU]) == 0
    assert main([*r, "train", str(cache), "--out", str(run), "--epochs", "3", "--resume", *GPU]) == 0
    assert main([*r, "evaluate", str(run), str(cache), "--max-train", "2", *GPU]) == 0
    assert main([*r, "decode", str(run), str(images[0]), "--out", str(tmp_path / "dec"), *GPU]) == 0


def test_bench_every_kind(strict_cupy, monkeypatch, capsys):
    monkeypatch.setattr(bench_nets, "PAUSE", 0.0)
    monkeypatch.setattr(bench_conv, "VGG_SHAPES", [(1, 4, 8, 8, 4)])
    monkeypatch.setattr(bench, "bench_nets", functools.partial(
        bench.bench_nets, size=32, batches=(1,), vgg=TINY["vgg"]["config"],
        resnet=TINY["resnet"]["config"]))
    monkeypatch.setattr(bench, "bench_decoder", functools.partial(
        bench.bench_decoder, batch=2, config=TINY["decoder"]["config"]))
    for what in ("layers", "nets", "decoder"):
        assert main(["bench", what, "--repeats", "1", *GPU]) == 0
        assert "gpu" in capsys.readouterr().out


def test_demo(strict_cupy, tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "run_demo", functools.partial(demo.run_demo, decoder_epochs=1,
                                                            transform_iters=1))
    assert main(["demo", "--out", str(tmp_path / "d"), *GPU]) == 0
    assert (tmp_path / "d" / "index.html").is_file()


def test_bench_compare_torch_on_the_gpu_needs_cuda_torch(strict_cupy, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this PyTorch has CUDA: the comparison runs (minvert bench on a GPU machine)")
    assert main(["bench", "nets", "--compare", "torch", "--repeats", "1", *GPU]) == 1
    err = capsys.readouterr().err
    assert "needs a PyTorch build with CUDA" in err and len(err.strip().splitlines()) == 1
