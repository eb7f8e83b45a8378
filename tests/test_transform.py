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
from minvert.transform.losses import tv_loss
from minvert.transform.optimize import _gradient_steps, prepare_image
from minvert.weights.project import save


@pytest.fixture(scope="module")
def net():
    return build_tiny("tiny-vgg", 8, labels=list(CLASSES), rng=np.random.default_rng(0))


@pytest.fixture(scope="module")
def image():
    x, _, _ = make_dataset(1, size=64, seed=3)
    return x[2]  # a "dots" image


@pytest.mark.parametrize("content_kind,content,color_kind", [("gram", 3e-6, "pixel"),
                                                           ("raw", 0.3, "channel")])
def test_total_gradient_matches_a_directional_derivative_with_all_terms(image, content_kind, content,
                                                                        color_kind):
    """float64, all five terms on. The image is perturbed so that some colour differences
    exceed the 30 % threshold and the rest stay well below it (the colour term is
    discontinuous exactly at the threshold; the step of 1e-5 never crosses it)."""
    rng = np.random.default_rng(1)
    net = build_tiny("tiny-vgg", 8, labels=list(CLASSES), rng=rng).astype(np.float64).freeze()
    x0 = net.preprocessing.preprocess(image, dtype="float64")
    bump = np.where(rng.uniform(size=x0.shape) < 0.1, 0.5, 0.05) * rng.choice([-1, 1], size=x0.shape)
    x = np.ascontiguousarray(x0 + bump)
    mult = Multipliers(content=content, style=2e3, tv=1e-3, color=0.2)
    objective = Objective(net, x0, Settings(target=3, multipliers=mult, tv_kind="squared",
                                            content_kind=content_kind, color_kind=color_kind))
    total, values, _, dx = objective(x)
    assert set(values) == {"class", "content", "style", "tv", "color"}
    assert all(v > 0 for v in values.values())
    _, _, err = directional_check(lambda: objective(x)[0], [x], [dx], h=1e-5, rng=rng)
    assert err < 1e-7


def _float64_setup(image, seed=2):
    net = build_tiny("tiny-vgg", 8, labels=list(CLASSES), rng=np.random.default_rng(seed))
    net = net.astype(np.float64).freeze()
    x0 = net.preprocessing.preprocess(image, dtype="float64")
    return net, x0


def test_shifted_objective_is_the_network_on_the_rolled_image_and_tv_on_the_image(image):
    """Jitter: the network terms see x rolled by (dy, dx) against the rolled original, their
    gradient is rolled back; TV sees x itself (a roll would count the wrap seam)."""
    net, x0 = _float64_setup(image)
    x = np.ascontiguousarray(x0 + 0.05 * np.random.default_rng(3).standard_normal(x0.shape))
    shift = (5, -3)
    mult = Multipliers(content=1e-3, tv=1e-3)
    objective = Objective(net, x0, Settings(target=1, multipliers=mult, tv_kind="squared"))
    total, values, _, dx = objective(x, shift=shift)
    # independent: a fresh objective whose "original" is the rolled original, at the rolled x
    rolled = Objective(net, np.roll(x0, shift, axis=(2, 3)), Settings(target=1, multipliers=Multipliers(content=1e-3)))
    _, rv, _, rdx = rolled(np.roll(x, shift, axis=(2, 3)))
    assert values["class"] == rv["class"] and values["content"] == rv["content"]
    tv_value, tv_grad = tv_loss(x, "squared")
    assert values["tv"] == float(tv_value) != float(tv_loss(np.roll(x, shift, axis=(2, 3)), "squared")[0])
    np.testing.assert_allclose(dx, np.roll(rdx, (-shift[0], -shift[1]), axis=(2, 3)) + 1e-3 * tv_grad,
                               rtol=1e-12, atol=1e-15)
    assert objective(x)[1]["content"] == Objective(net, x0, Settings(target=1, multipliers=mult))(x)[1]["content"]


def test_plain_gradient_descent_with_jitter_is_a_fixed_step_in_pixel_units(image):
    """optimizer "gd" (the paper's with jitter): x1 = x0 - lr * pixel² * g(x0 rolled by the seeded
    shift), pixel = one 0..255 level in input units (1/255 for the tiny net's [0, 1] input)."""
    net, x0 = _float64_setup(image)
    s = Settings(target=4, iters=3, jitter=8, lr=50.0, seed=7)
    assert s.optimizer == "gd"
    x = np.clip(x0, 0.1, 0.9)  # inside the bounds: no clipping in the steps below
    objective = Objective(net, x0, s)
    draws = np.random.default_rng(7)
    expected = [x.copy()]
    for _ in range(s.iters):
        shift = tuple(int(v) for v in draws.integers(-8, 9, size=2))
        g = objective(expected[-1], shift=shift)[3]
        expected.append(expected[-1] - 50.0 * (1 / 255) ** 2 * g)
    seen = []
    low, high = np.zeros(x.shape), np.ones(x.shape)
    _gradient_steps(objective, x, s, np.random.default_rng(7), low, high, None,
                    lambda values, total, logits, x_now: seen.append(x_now.copy()),
                    {"stopped": None}, lambda *a: None)
    assert len(seen) == 3
    for got, want in zip(seen, expected[1:]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert np.abs(seen[0] - expected[0]).max() > 1e-6  # it moved
    # without an lr, gd fixes it from the first gradient: a first step of 2 levels on average
    auto = Settings(target=4, iters=1, jitter=8, seed=7)
    x = np.clip(x0, 0.1, 0.9)
    before = x.copy()
    _gradient_steps(objective, x, auto, np.random.default_rng(7), low, high, None, lambda *a: None,
                    {"stopped": None}, lambda *a: None)
    assert (np.abs(x - before) * 255).mean() == pytest.approx(2.0, rel=1e-9)
    assert auto.lr > 0


def test_normalized_step_averages_the_gradient_over_the_free_pixels_only(image):
    net, x0 = _float64_setup(image)
    mask = np.zeros((64, 64))
    mask[:, :16] = 1.0  # a quarter of the image may change
    s = Settings(target=4, iters=1, optimizer="normalized", lr=0.5)
    x = np.clip(x0, 0.1, 0.9)
    objective = Objective(net, x0, s, mask=mask[None, None])
    before = x.copy()
    _gradient_steps(objective, x, s, np.random.default_rng(0), np.zeros(x.shape), np.ones(x.shape), mask,
                    lambda *a: None, {"stopped": None}, lambda *a: None)
    moved = np.abs(x - before) * 255  # in 0..255 levels
    assert moved[..., 16:].max() == 0
    assert moved[..., :16].mean() == pytest.approx(0.5, rel=1e-6)  # lr levels on average


def test_breakdown_shares_and_the_inert_warning(net, image, tmp_path):
    lines = []
    s = Settings(target=1, iters=2, multipliers=Multipliers(tv=1e-12, color=1.0), init="mix")
    summary = transform(net, image, s, out_dir=tmp_path, log=lines.append)
    rows = summary["terms_at_start"]
    assert set(rows) == {"class", "tv", "color"}
    assert sum(r["share_of_gradient"] for r in rows.values()) == pytest.approx(1.0)
    assert sum(r["share_of_total"] for r in rows.values()) == pytest.approx(1.0)
    assert rows["tv"]["weighted"] == pytest.approx(1e-12 * rows["tv"]["value"])
    assert rows["tv"]["share_of_gradient"] < 1e-3
    assert any(line.startswith("warning: tv is inert at 1e-12") for line in lines)
    first = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])
    assert first["iteration"] == 0 and first["terms"]["tv"]["multiplier"] == 1e-12
    assert set(json.loads((tmp_path / "summary.json").read_text())["terms_at_end"]) == set(rows)


def test_aspect_ratio_kept_or_the_central_square_said(net, image):
    from minvert.nets.tiny import build_tiny as tiny
    wide = np.concatenate([image, image[:, :32]], axis=1)  # 64 x 96
    lines = []
    assert prepare_image(net, wide, log=lines.append).shape == (64, 64, 3)  # VGG with fc layers
    assert "central 64x64 square" in lines[0]
    resnet = tiny("tiny-resnet", 8, labels=list(CLASSES), rng=np.random.default_rng(0))
    assert prepare_image(resnet, wide, size=120).shape == (80, 120, 3)  # long side 120, ratio kept


def test_lbfgs_raises_the_target_probability_and_writes_everything(net, image, tmp_path):
    s = Settings(target=CLASSES.index("stripes"), iters=6, multipliers=Multipliers(tv=1e-4))
    summary = transform(net, image, s, out_dir=tmp_path, log=lambda *_: None)
    assert summary["probability_after"] > summary["probability_before"]
    for name in ("result.png", "panel.png", "summary.json", "log.jsonl"):
        assert (tmp_path / name).exists()
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(lines) == summary["iterations"] + 1 > 1  # iteration 0: the scale of every term
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
    for s in (Settings(target=0, iters=5), Settings(target=0, iters=5, jitter=4, optimizer="adam")):
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
    assert not (tmp_path / "o3").exists()
    small = tmp_path / "small.png"  # valid but tiny: an fc net takes it enlarged, and says so
    Image.fromarray(image[:1, :1]).save(small)
    assert main(["transform", str(small), "--model", str(model), "--target", "dots", "--iters", "1",
                 "--out", str(tmp_path / "o4")]) == 0
    assert "the image is 1x1" in capsys.readouterr().out
    assert (tmp_path / "o4" / "result.png").exists()


def test_cli_init_image_layers_optimizer_and_print_every(net, image, tmp_path, capsys):
    model = tmp_path / "tiny.h5"
    save(net, model)
    img = tmp_path / "dots.png"
    Image.fromarray(image).save(img)
    base = ["transform", str(img), "--model", str(model), "--target", "stripes"]
    assert main(base + ["--iters", "4", "--content", "1e-6", "--out", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    # continue from the first run's result: the start is that image, the content target still IMAGE
    assert main(base + ["--iters", "6", "--print-every", "3", "--optimizer", "gd", "--lr", "100",
                        "--content", "1e-6", "--content-layer", "conv2_1", "--style", "1e3",
                        "--style-layers", "conv1_1,relu2_1", "--init-image", str(tmp_path / "a" / "result.png"),
                        "--out", str(tmp_path / "b")]) == 0
    printed = capsys.readouterr().out
    assert [line.split()[1] for line in printed.splitlines() if line.startswith("iter ")] == ["1/6", "3/6", "6/6"]
    first = json.loads((tmp_path / "b" / "log.jsonl").read_text().splitlines()[0])
    assert first["iteration"] == 0 and first["content"] > 0  # starts away from IMAGE: content pulls
    settings = json.loads((tmp_path / "b" / "summary.json").read_text())["settings"]
    assert (settings["optimizer"], settings["lr"], settings["content_layer"]) == ("gd", 100.0, "relu2_1")
    assert settings["style_layers"] == ["relu1_1", "relu2_1"] and settings["content_kind"] == "gram"
    assert main(base + ["--content", "1", "--content-layer", "conv9_9", "--out", str(tmp_path / "c")]) == 1
    assert "no layer 'conv9_9' (read as its ReLU output 'relu9_9')" in capsys.readouterr().err
    assert main(base + ["--jitter", "4", "--optimizer", "lbfgs", "--out", str(tmp_path / "d")]) == 1
    assert "use --optimizer gd" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


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
