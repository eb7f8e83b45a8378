"""A float32 training step computes in float32 on the GPU: no NumPy float64 scalar or float64
array meets its float32 arrays (NumPy 2 and CuPy 14 would then compute in float64, 1/32 to
1/64 of the float32 speed on most GPUs). Counted by the strict CuPy stand-in."""
import numpy as np
import pytest
from PIL import Image

from minvert import optim
from minvert.cli import main
from minvert.datasets import make_dataset
from minvert.layers import fast
from minvert.layers.fast import elementwise
from minvert.nets.tiny import build_tiny
from minvert.weights.project import save

GPU = ["--device", "gpu"]


@pytest.fixture
def temporaries(strict_cupy):
    strict_cupy._core.reset_float64_temporaries()
    yield strict_cupy._core.float64_temporaries
    strict_cupy._core.reset_float64_temporaries()


@pytest.mark.parametrize("engine", [True, False], ids=["fast", "readable"])
def test_adadelta_update_stays_float32(strict_cupy, temporaries, monkeypatch, engine):
    previous = fast.set_enabled(engine)
    monkeypatch.setattr(elementwise, "UPDATE_CHUNK", 16)  # chunked wherever chunking applies
    rng = np.random.default_rng(0)
    p = strict_cupy.asarray(rng.standard_normal((8, 9)).astype(np.float32))
    g = strict_cupy.asarray(rng.standard_normal((8, 9)).astype(np.float32))
    opt = optim.Adadelta()
    opt.step([("w", p, g)])
    # hyper-parameters read back from a checkpoint (h5py gives NumPy float64 scalars)
    state = {k: np.float64(v) if k in opt.hyper else v for k, v in opt.state_dict().items()}
    opt.load_state_dict(state)
    opt.step([("w", p, g)])
    fast.set_enabled(previous)
    assert p.dtype == np.float32 and temporaries == []


def test_decoder_training_stays_float32(strict_cupy, temporaries, tmp_path):
    imgs, _, _ = make_dataset(1, size=32, seed=5)
    (tmp_path / "imgs").mkdir()
    for i, img in enumerate(imgs[:8]):
        Image.fromarray(img).save(tmp_path / "imgs" / f"{i}.png")
    enc, cache = tmp_path / "enc.h5", tmp_path / "c.h5"
    save(build_tiny("tiny-resnet", 8, rng=np.random.default_rng(0)), enc)
    assert main(["reconstruct", "extract", str(tmp_path / "imgs"), "--model", str(enc), "--out",
                 str(cache), "--target-size", "16", *GPU]) == 0
    temporaries.clear()
    assert main(["reconstruct", "train", str(cache), "--out", str(tmp_path / "run"),
                 "--widths", "8", "--epochs", "2", "--batch", "4", "--split", "none", *GPU]) == 0
    assert temporaries == []


def test_classifier_training_stays_float32(strict_cupy, temporaries, tmp_path):
    assert main(["train", "--epochs", "2", "--out", str(tmp_path / "r"), "--n", "4", "--val-n",
                 "1", "--test-n", "1", "--size", "16", "--batch", "8", *GPU]) == 0
    assert temporaries == []
