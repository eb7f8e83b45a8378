"""Paper 000's driver: the total gradient, bounds, masks, jitter, outputs and bad input."""
import json

import numpy as np
import pytest
from PIL import Image

from minvert.cli import main
from minvert.datasets import CLASSES, make_dataset
from minvert.errors import MinvertError
from minvert.gradcheck import directional_check
from minvert.transform import Multipliers
from minvert.nets.tiny import build_tiny
from minvert.transform import Objective, Settings, transform
from minvert.weights.project import save


@pytest.fixture(scope="module")
def net():
    return build_tiny("tiny-vgg", 8, labels=list(CLASSES), rng=np.random.default_rng(0))


@pytest.fixture(scope="module")
def image():
    x, _, _ = make_dataset(1, size=64, seed=3)
    return x[2]  # a "dots" image


def test_total_gradient_matches_a_directional_derivative_with_all_terms(image):
    """float64, all five terms on. The image is perturbed so that some colour differences
    exceed the 30 % threshold and the rest stay well below it (the masked colour term is
    discontinuous exactly at the threshold; the step of 1e-6 never crosses it)."""
    rng = np.random.default_rng(1)
    net = build_tiny("tiny-vgg", 8, labels=list(CLASSES), rng=rng).astype(np.float64).freeze()
    x0 = net.preprocessing.preprocess(image, dtype="float64")
    bump = np.where(rng.uniform(size=x0.shape) < 0.1, 0.5, 0.05) * rng.choice([-1, 1], size=x0.shape)
    x = np.ascontiguousarray(x0 + bump)
    mult = Multipliers(content=0.3, style=2e3, tv=1e-3, color=0.2)
    objective = Objective(net, x0, Settings(target=3, multipliers=mult, tv_kind="squared"))
    total, values, _, dx = objective(x)
    assert set(values) == {"class", "content", "style", "tv", "color"}
    assert all(v > 0 for v in values.values())
    _, _, err = directional_check(lambda: objective(x)[0], [x], [dx], rng=rng)
    assert err < 1e-7


def test_lbfgs_raises_the_target_probability_and_writes_everything(net, image, tmp_path):
    s = Settings(target=CLASSES.index("stripes"), iters=6, multipliers=Multipliers(tv=1e-4))
    summary = transform(net, image, s, out_dir=tmp_path, log=lambda *_: None)
    assert summary["probability_after"] > summary["probability_before"]
    for name in ("result.png", "panel.png", "summary.json", "log.jsonl"):
        assert (tmp_path / name).exists()
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(lines) == summary["iterations"] > 0
    rec = json.loads(lines[-1])
    assert {"class", "tv", "target_probability", "top5", "seconds"} <= set(rec)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["settings"]["multipliers"]["tv"] == 1e-4 and "result" not in saved
    result = np.asarray(Image.open(tmp_path / "result.png"))
    np.testing.assert_array_equal(result, summary["result"])
    with pytest.raises(MinvertError, match="--force"):
        transform(net, image, s, out_dir=tmp_path, log=lambda *_: None)


def test_result_stays_a_valid_image_and_masked_pixels_are_untouched(net, image):
    mask = np.zeros((64, 64))
    mask[20:44, 8:40] = 1.0
    mask[20:44, 40:44] = 0.5  # soft edge: may change, more slowly
    for s in (Settings(target=0, iters=5), Settings(target=0, iters=5, jitter=4, step="adam")):
        r = transform(net, image, s, mask=mask, log=lambda *_: None)["result"]
        assert r.dtype == np.uint8
        np.testing.assert_array_equal(r[mask == 0], image[mask == 0])
        assert np.abs(r.astype(int) - image)[mask == 1].mean() > 0


def test_jitter_is_seeded(net, image):
    s = Settings(target=1, iters=4, jitter=8, seed=5)
    a = transform(net, image, s, log=lambda *_: None)["result"]
    b = transform(net, image, s, log=lambda *_: None)["result"]
    np.testing.assert_array_equal(a, b)


def test_noise_and_mix_initialisations(net, image):
    for init in ("noise", "mix"):
        r = transform(net, image, Settings(target=1, iters=2, init=init), log=lambda *_: None)
        assert r["iterations"] >= 1


def test_nan_keeps_the_last_good_image(net, image, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = Objective.evaluate  # what the optimisers call

    def flaky(self, x, **kw):
        calls["n"] += 1
        total, values, logits, dx = real(self, x, **kw)
        return (float("nan") if calls["n"] > 3 else total), values, logits, dx
    monkeypatch.setattr(Objective, "evaluate", flaky)
    summary = transform(net, image, Settings(target=2, iters=10), out_dir=tmp_path, log=lambda *_: None)
    assert "NaN" in summary["stopped_early"]
    assert (tmp_path / "result.png").exists() and summary["iterations"] >= 1


def test_cli_transform_and_its_errors(net, image, tmp_path, capsys):
    model = tmp_path / "tiny.h5"
    save(net, model)
    img = tmp_path / "dots.png"
    Image.fromarray(image).save(img)
    out = tmp_path / "out"
    assert main(["transform", str(img), "--model", str(model), "--target", "Stripes",
                 "--iters", "2", "--tv", "1e-4", "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["target"]["label"] == "stripes"
    assert main(["transform", str(img), "--model", str(model), "--target", "stripe",
                 "--out", str(tmp_path / "o2")]) == 1
    err = capsys.readouterr().err
    assert "unknown class 'stripe'" in err and "stripes" in err and "Traceback" not in err
    not_image = tmp_path / "mask.png"
    not_image.write_text("this is not an image")
    assert main(["transform", str(img), "--model", str(model), "--target", "dots",
                 "--mask", str(not_image), "--out", str(tmp_path / "o3")]) == 1
    assert "mask.png" in capsys.readouterr().err
    small = tmp_path / "small.png"
    Image.fromarray(image[:4, :4]).save(small)
    assert main(["transform", str(small), "--model", str(model), "--target", "dots",
                 "--out", str(tmp_path / "o4")]) == 1
    assert "needs at least 8x8" in capsys.readouterr().err
    assert not (tmp_path / "o3").exists() and not (tmp_path / "o4").exists()


def test_one_device_sync_per_evaluation(strict_cupy, image):
    """On the GPU an evaluation waits for the device once: the value, every term, the logits
    and the gradient come back in one transfer (the stand-in counts the waits)."""
    from minvert.transform.optimize import _evaluate
    net = build_tiny("tiny-vgg", 8, labels=list(CLASSES), rng=np.random.default_rng(0)).to(strict_cupy)
    net.freeze()
    x0 = net.xp.asarray(net.preprocessing.preprocess(image))
    mult = Multipliers(content=0.3, style=2e3, tv=1e-3, color=0.2)
    objective = Objective(net, x0, Settings(target=3, multipliers=mult))
    syncs = strict_cupy._core._state
    for grad_to_host in (True, False):
        before = syncs["syncs"]
        total, values, logits, grad, dx = _evaluate(objective, x0 + 0.01, grad_to_host)
        assert syncs["syncs"] - before == 1
        assert isinstance(logits, np.ndarray) and isinstance(dx, strict_cupy.ndarray)
        assert (grad is not None) == grad_to_host and set(values) == {"class", "content", "style", "tv", "color"}
    total_f, values_f, _, dx_f = objective(x0 + 0.01)  # the public call gives the same numbers
    assert total_f == total and values_f == values
