"""Issue 26, part 2: inversion of a pooled feature by optimising the pixels (Mahendran & Vedaldi)."""
import json

import numpy as np
import pytest

from minvert.errors import MinvertError
from minvert.gradcheck import directional_check, numerical_vjp, rel_error
from minvert.nets.tiny import build_tiny
from minvert.reconstruct.invert import (FeatureObjective, InvertSettings, alpha_prior, invert,
                                        tv_prior)


def _encoder(seed=0, dtype=np.float64, input_size=32):
    net = build_tiny("tiny-resnet", 4, rng=np.random.default_rng(seed), input_size=input_size)
    return net.astype(dtype).eval().freeze()


def _loops_tv(d, beta, eps=1e-8):
    """R_TV by explicit loops: the independent reference for the vectorised prior."""
    N, C, H, W = d.shape
    out = np.zeros(N)
    for n in range(N):
        for c in range(C):
            for i in range(H - 1):
                for j in range(W - 1):
                    s = (d[n, c, i, j + 1] - d[n, c, i, j]) ** 2 + (d[n, c, i + 1, j] - d[n, c, i, j]) ** 2
                    out[n] += (s + eps) ** (beta / 2)
    return out / (C * (H - 1) * (W - 1))


@pytest.mark.parametrize("beta", [1.0, 1.5, 2.0])
def test_tv_prior_value_and_gradient(beta):
    rng = np.random.default_rng(1)
    d = rng.uniform(-0.5, 0.5, size=(2, 3, 6, 7))
    value, grad = tv_prior(d, beta)
    assert np.allclose(value, _loops_tv(d, beta), rtol=1e-12)
    dout = rng.normal(size=2)
    numeric = numerical_vjp(lambda: tv_prior(d, beta)[0], d, dout)
    assert rel_error(grad * dout[:, None, None, None], numeric) < 1e-7


@pytest.mark.parametrize("alpha", [1.5, 6.0])
def test_alpha_prior_value_and_gradient(alpha):
    rng = np.random.default_rng(2)
    d = rng.uniform(-0.5, 0.5, size=(2, 3, 4, 5))
    value, grad = alpha_prior(d, alpha)
    assert np.allclose(value, [np.mean(np.abs(d[n]) ** alpha) for n in range(2)], rtol=1e-12)
    dout = rng.normal(size=2)
    numeric = numerical_vjp(lambda: alpha_prior(d, alpha)[0], d, dout)
    assert rel_error(grad * dout[:, None, None, None], numeric) < 1e-7


@pytest.mark.parametrize("shift", [(0, 0), (3, -2)])
def test_whole_objective_gradient_float64(shift):
    """Feature term through the encoder (batch-norm in inference mode, residual blocks) plus both
    priors, two images, with and without a jitter shift: directional derivative check."""
    rng = np.random.default_rng(3)
    enc = _encoder()
    x = rng.uniform(0.05, 0.95, size=(2, 3, 32, 32))
    targets = enc.features(rng.uniform(0, 1, size=(2, 3, 32, 32)))
    s = InvertSettings(alpha=3.0, lambda_alpha=0.3, beta=1.5, lambda_tv=0.2)
    objective = FeatureObjective(enc, targets, s)
    total, terms, dx = objective.evaluate(x, shift=shift)
    assert all(float(v.min()) > 0 for v in terms.values())
    _, _, err = directional_check(lambda: float(objective.evaluate(x, shift=shift)[0]), [x], [dx],
                                  h=1e-5, rng=rng)
    assert err < 1e-7
    per_image = [FeatureObjective(enc, targets[n:n + 1], s).evaluate(x[n:n + 1], shift=shift)
                 for n in range(2)]
    assert np.isclose(float(total), sum(float(t) for t, _, _ in per_image), rtol=1e-12)
    assert rel_error(dx, np.concatenate([g for _, _, g in per_image])) < 1e-12  # independent images


@pytest.mark.parametrize("optimizer,jitter", [("lbfgs", 0), ("gd", 2)])
def test_optimisation_moves_features_towards_the_target_and_stays_a_valid_image(optimizer, jitter):
    rng = np.random.default_rng(4)
    enc = _encoder(dtype=np.float32)
    targets = enc.features(rng.uniform(0, 1, size=(3, 3, 32, 32)).astype(np.float32))
    start = np.full((3, 3, 32, 32), 0.5, np.float32)
    s = InvertSettings(iters=25, optimizer=optimizer, jitter=jitter, lambda_tv=0.05, lr=0.5)
    x, record = invert(enc, targets, start, s, log=lambda *_: None)
    assert x.min() >= 0 and x.max() <= 1  # the "unit" convention's bounds
    assert np.all(np.array(record["after"]["feature"]) < 0.5 * np.array(record["before"]["feature"]))


def test_bad_settings_are_one_line_errors():
    with pytest.raises(MinvertError, match="jitter"):
        InvertSettings(jitter=4)
    with pytest.raises(MinvertError, match="optimizer"):
        InvertSettings(optimizer="sgd")
    with pytest.raises(MinvertError, match="all zeros"):
        FeatureObjective(_encoder(), np.zeros((1, 128)), InvertSettings())


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    """A fresh shapes set (seed unlike the demo's), the bundled shapes encoder's features, and a
    small decoder trained briefly on 48 of the 64 images; 16 held out."""
    from minvert.datasets import make_dataset
    from minvert.images import save_image
    from minvert.reconstruct import extract, train
    root = tmp_path_factory.mktemp("invert")
    images, _, names = make_dataset(2, size=64, seed=4242, kind="shapes")
    paths = []
    for k, img in enumerate(images):
        paths.append(str(root / f"{k:03d}.png"))
        save_image(paths[-1], img)
    cache, run = root / "features.h5", root / "run"
    extract(paths, "tiny-resnet-shapes", cache, target_size=64, log=lambda *_: None)
    train(cache, run, decoder={"start": [2, 2, 32], "widths": [32, 16, 16, 8]}, epochs=4, batch_size=16,
          split="fraction:0.25", optimizer="adam", log=lambda *_: None)
    return root, cache, run


def test_refinement_ends_closer_in_feature_space_than_the_decoder(shapes_run):
    """The four methods on the held-out images, each measure with its interval; decoder +
    refinement is closer to the target vectors than the decoder it started from (mean, and for
    most images), and scored the same way as the others."""
    from minvert.reconstruct.compare import METHODS, compare, table_lines
    _, cache, run = shapes_run
    result = compare(run, cache, settings=InvertSettings(iters=10), refine=InvertSettings(iters=10),
                     log=lambda *_: None)
    m = result["methods"]
    assert list(m) == list(METHODS) and len(result["rows"]) == 16
    for name, scores in m.items():
        for key in ("psnr", "ssim", "reid_top1", "feature_distance"):
            low, high = scores[f"{key}_ci95"]
            assert low <= scores[key] <= high, (name, key)
    dec, ref = np.array(m["decoder"]["feature_distance_each"]), np.array(m["decoder + refinement"]["feature_distance_each"])
    assert ref.mean() < 0.6 * dec.mean() and np.mean(ref < dec) > 0.9
    assert m["optimisation"]["feature_distance"] < m["mean image"]["feature_distance"]
    assert m["decoder + refinement"]["reid_top1"] >= m["decoder"]["reid_top1"]
    assert len(table_lines(result)) == 5


def test_cli_invert_and_compare(shapes_run, tmp_path, capsys):
    from minvert.cli import main
    root, cache, run = shapes_run
    out = tmp_path / "inv"
    assert main(["reconstruct", "invert", "--cache", str(cache), "--rows", "0,3", "--run", str(run),
                 "--out", str(out), "--iters", "3"]) == 0
    summary = json.loads((out / "invert.json").read_text())
    assert len(summary["outputs"]) == 2 and summary["start"].startswith("the decoder")
    assert np.all(np.array(summary["terms_after"]["feature"]) < np.array(summary["terms_before"]["feature"]))
    assert main(["reconstruct", "invert", "--cache", str(cache), "--rows", "0", "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["reconstruct", "invert", "--cache", str(cache), "--rows", "999", "--out", str(tmp_path / "x")]) == 1
    assert "--rows 999" in capsys.readouterr().err
    assert main(["reconstruct", "compare", str(run), str(cache), "--iters", "2", "--max-images", "4"]) == 0
    comparison = json.loads((run / "comparison.json").read_text())
    assert set(comparison["methods"]) == {"mean image", "decoder", "optimisation", "decoder + refinement"}
    assert (run / "comparison.png").is_file() and "re-id top-1" in capsys.readouterr().out


@pytest.mark.parametrize("optimizer,jitter", [("lbfgs", 0), ("gd", 2)])
def test_inversion_on_the_gpu_stand_in_equals_numpy(strict_cupy, optimizer, jitter):
    """The objective on the (stand-in) GPU: the same values and gradient as on NumPy, and a
    run that comes back through the named host boundaries only."""
    rng = np.random.default_rng(5)
    enc = _encoder()
    x = rng.uniform(0.05, 0.95, size=(2, 3, 32, 32))
    targets = enc.features(rng.uniform(0, 1, size=(2, 3, 32, 32)))
    s = InvertSettings(iters=3, optimizer=optimizer, jitter=jitter)
    want_total, _, want_dx = FeatureObjective(enc, targets, s).evaluate(x)
    gpu = _encoder().to(strict_cupy)
    total, _, dx = FeatureObjective(gpu, strict_cupy.asarray(targets), s).evaluate(strict_cupy.asarray(x))
    assert isinstance(dx, strict_cupy.ndarray)
    assert np.isclose(float(total), float(want_total), rtol=1e-12)
    assert rel_error(strict_cupy.asnumpy(dx), want_dx) < 1e-12
    out, record = invert(gpu, strict_cupy.asarray(targets), strict_cupy.asarray(x), s, log=lambda *_: None)
    assert isinstance(out, strict_cupy.ndarray) and record["evaluations"] >= 1
    assert np.mean(record["after"]["feature"]) < np.mean(record["before"]["feature"])
