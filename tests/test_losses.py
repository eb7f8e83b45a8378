"""Loss terms of paper A: values against hand/naive oracles, gradients against gradcheck.

Kinks are avoided on purpose: TV inputs have no two neighbours closer than 1/16 and are
stepped by h = 2**-10, and colour inputs keep every |x - x0| at least 0.2 t away from the
threshold t, so no central difference straddles a kink.

Why TV uses dyadic inputs: the L1 TV gradient is exactly 0 wherever the neighbours'
signs cancel, and the rounding noise of a float64 sum of ~100 terms (~1e-9 after
dividing by 2h) is then the whole relative error. Multiples of 1/16 stepped by 2**-10
make every sum exact, so the numerical gradient is exact too.
"""
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from minvert.transform import losses as L
from minvert.transform.presets import PRESETS
from minvert.backend import gpu_available
from minvert.errors import ShapeError
from minvert.gradcheck import directional_check, numerical_vjp, rel_error

TOL = 1e-7


def rng(seed=0):
    return np.random.default_rng(seed)


def check_grad(f, x, analytic, h=1e-5):
    """numerical d f(x) / dx for a scalar-valued f against the analytic gradient."""
    num = numerical_vjp(f, x, 1.0, h=h)
    assert rel_error(analytic, num) < TOL


# -- class ------------------------------------------------------------------------------
def test_class_loss_matches_logsumexp_and_gradient():
    logits = rng(1).standard_normal((2, 7))
    value, dlogits = L.class_loss(logits, 3)
    expected = np.mean([math.log(sum(math.exp(v) for v in row)) - row[3] for row in logits])
    assert abs(float(value) - expected) < 1e-12
    assert dlogits.shape == (2, 7)
    check_grad(lambda: L.class_loss(logits, 3)[0], logits, dlogits)
    # the target's logit is pushed up, every other class down
    assert np.all(dlogits[:, 3] < 0) and np.all(np.delete(dlogits, 3, axis=1) > 0)


def test_class_loss_per_row_targets_and_stability():
    logits = rng(2).standard_normal((2, 5)) + np.array([[1e4], [-1e4]])  # naive exp overflows
    value, d = L.class_loss(logits, np.array([0, 4]))
    shifted = logits - logits.max(axis=1, keepdims=True)
    expected = np.mean(np.log(np.exp(shifted).sum(1)) - shifted[[0, 1], [0, 4]])
    assert np.isfinite(float(value)) and abs(float(value) - expected) < 1e-9
    assert np.all(np.isfinite(d))
    with pytest.raises(ShapeError):
        L.class_loss(logits, 5)
    with pytest.raises(ShapeError):
        L.class_loss(logits[0], 1)


# -- content ----------------------------------------------------------------------------
def test_content_loss_by_hand_and_gradient():
    F = np.array([1.0, 2.0, 0.0, 4.0]).reshape(1, 1, 2, 2)
    P = np.array([0.0, 2.0, 3.0, 1.0]).reshape(1, 1, 2, 2)
    value, dF = L.content_loss(F, P)
    assert float(value) == 0.5 * (1 + 0 + 9 + 9)
    assert np.array_equal(dF, F - P)
    F = rng(3).random((1, 3, 4, 5))
    P = rng(4).random((1, 3, 4, 5))
    check_grad(lambda: L.content_loss(F, P)[0], F, L.content_loss(F, P)[1])
    with pytest.raises(ShapeError):
        L.content_loss(F, P[:, :2])


def test_content_gram_loss_by_hand():
    # C = 2, M = 2: Fm = [[1, 2], [0, 1]], G = [[5, 2], [2, 1]]; A = [[4, 2], [2, 3]], D = [[1, 0], [0, -2]]
    F = np.array([[1.0, 2.0], [0.0, 1.0]]).reshape(1, 2, 1, 2)
    A = np.array([[4.0, 2.0], [2.0, 3.0]])
    value, dF = L.content_gram_loss(F, A)
    assert float(value) == 0.5 * (1 + 4)  # raw sum, no 1/(N²M²)
    assert np.array_equal(dF.reshape(2, 2), 2 * np.array([[1.0, 2.0], [0.0, -2.0]]))  # 2 D Fm
    with pytest.raises(ShapeError):
        L.content_gram_loss(F, np.zeros((3, 3)))


def test_content_gram_loss_against_loops_and_gradient():
    """Value against a loop over (i, j) of the naive Gram matrices; gradient by float64
    central differences with a random upstream scalar."""
    F = rng(20).random((1, 3, 4, 5))
    P = rng(21).random((1, 3, 4, 5))
    A = naive_gram(P)
    G = naive_gram(F)
    expected = 0.5 * sum((G[i, j] - A[i, j]) ** 2 for i in range(3) for j in range(3))
    value, dF = L.content_gram_loss(F, A)
    assert abs(float(value) - expected) < 1e-12 * expected
    u = float(rng(22).standard_normal())
    num = numerical_vjp(lambda: L.content_gram_loss(F, A)[0], F, u)
    assert rel_error(u * dF, num) < TOL
    assert L.content_gram_loss(F.astype(np.float32), A.astype(np.float32))[1].dtype == np.float32


# -- style ------------------------------------------------------------------------------
def naive_gram(F):
    _, C, H, W = F.shape
    G = np.zeros((C, C))
    for i in range(C):
        for j in range(C):
            for h in range(H):
                for w in range(W):
                    G[i, j] += F[0, i, h, w] * F[0, j, h, w]
    return G


def test_gram_against_loop():
    F = rng(5).random((1, 4, 3, 5))
    assert rel_error(L.gram(F), naive_gram(F)) < 1e-12
    assert rel_error(L.gram(F[0]), naive_gram(F)) < 1e-12  # (C, H, W) accepted too
    with pytest.raises(ShapeError):
        L.gram(np.zeros((2, 4, 3, 5)))


def test_style_layer_loss_hand_case():
    # C = 2 channels, M = 2 positions: Fm = [[1, 2], [0, 1]], G = [[5, 2], [2, 1]]
    F = np.array([[1.0, 2.0], [0.0, 1.0]]).reshape(1, 2, 1, 2)
    A = np.array([[4.0, 2.0], [2.0, 3.0]])  # G - A = [[1, 0], [0, -2]]
    value, dF = L.style_layer_loss(F, A)
    assert abs(float(value) - (1 + 4) / (4 * 2**2 * 2**2)) < 1e-15  # 1/(4 N² M²) Σ(G-A)²
    # dF = 1/(N² M²) (G - A) Fm = 1/16 [[1, 2], [0, -2]]
    assert np.allclose(dF.reshape(2, 2), np.array([[1, 2], [0, -2]]) / 16, rtol=0, atol=1e-15)
    assert float(L.style_layer_loss(F, L.gram(F))[0]) == 0.0
    with pytest.raises(ShapeError):
        L.style_layer_loss(F, np.eye(3))


def test_style_layer_gradient():
    F = rng(6).random((1, 3, 4, 3))
    A = L.gram(rng(7).random((1, 3, 4, 3)))
    check_grad(lambda: L.style_layer_loss(F, A)[0], F, L.style_layer_loss(F, A)[1])


def test_style_loss_weighted_sum_and_directional():
    names = ("relu1_1", "relu2_1")
    feats = {"relu1_1": rng(8).random((1, 2, 4, 4)), "relu2_1": rng(9).random((1, 3, 2, 2))}
    targets = {n: L.gram(rng(10 + i).random(feats[n].shape)) for i, n in enumerate(names)}
    weights = {"relu1_1": 0.7, "relu2_1": -0.3}
    value, grads = L.style_loss(feats, targets, weights)
    parts = [L.style_layer_loss(feats[n], targets[n])[0] for n in names]
    assert abs(float(value) - (0.7 * parts[0] - 0.3 * parts[1])) < 1e-15
    arrays = [feats[n] for n in names]
    _, _, err = directional_check(lambda: L.style_loss(feats, targets, weights)[0],
                                  arrays, [grads[n] for n in names])
    assert err < TOL
    with pytest.raises(ShapeError):  # defaults name relu1_1..relu5_1, most not tapped here
        L.style_loss(feats, targets)


def test_tap_names():
    assert L.paper_layer_to_tap("conv4_2") == "relu4_2"
    assert L.paper_layer_to_tap("fc7") == "relu7"
    for same in ("relu3_1", "pool5", "fc8", "conv4"):
        assert L.paper_layer_to_tap(same) == same
    assert L.CONTENT_LAYER == "relu4_2"
    assert L.STYLE_LAYERS == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert L.STYLE_WEIGHTS == {n: 0.2 for n in L.STYLE_LAYERS}


# -- total variation --------------------------------------------------------------------
def image_without_ties(shape, seed):
    """Distinct multiples of 1/16, shuffled: neighbours differ by at least 1/16."""
    n = int(np.prod(shape))
    x = (rng(seed).permutation(n) / 16.0).reshape(shape)
    return np.ascontiguousarray(x)


def test_tv_l1_by_hand_and_subgradient():
    x = np.array([[1.0, 3.0], [2.0, 2.0]]).reshape(1, 1, 2, 2)
    value, dx = L.tv_loss(x)
    assert float(value) == (2 + 0) + (1 + 1)  # rows |3-1|, |2-2|; columns |2-1|, |2-3|
    # sign(0) = 0: the tied pair (bottom row) contributes nothing
    assert np.array_equal(dx.reshape(2, 2), np.array([[-2.0, 2.0], [1.0, -1.0]]))


@pytest.mark.parametrize("kind", ["l1", "squared"])
def test_tv_gradient(kind):
    x = image_without_ties((2, 3, 4, 5), seed=11)
    check_grad(lambda: L.tv_loss(x, kind)[0], x, L.tv_loss(x, kind)[1], h=2.0**-10)


def test_tv_squared_equals_mahendran_beta2():
    x = rng(12).random((1, 3, 4, 5))
    d1 = x[..., :, list(range(1, 5)) + [4]] - x  # edge-replicating differences (deep-goggle tv.m)
    d2 = x[..., list(range(1, 4)) + [3], :] - x
    expected = np.sum(np.sqrt(d1 * d1 + d2 * d2) ** 2)
    assert abs(float(L.tv_loss(x, "squared")[0]) - expected) < 1e-12
    with pytest.raises(ValueError):
        L.tv_loss(x, "l2")


# -- colour -----------------------------------------------------------------------------
def colour_pair(t, seed):
    """x0 random, d = x - x0 with |d| in [0, 0.8t] or [1.2t, 2t], random sign."""
    r = rng(seed)
    x0 = r.standard_normal((1, 3, 3, 4))
    mag = np.where(r.random(x0.shape) < 0.5, r.uniform(0, 0.8, x0.shape),
                   r.uniform(1.2, 2.0, x0.shape)) * t
    x = np.ascontiguousarray(x0 + mag * r.choice([-1.0, 1.0], x0.shape))
    return x, x0


def test_color_channel_by_hand():
    x0 = np.zeros((1, 1, 1, 4))
    x = np.array([0.5, -2.0, 1.0, 3.0]).reshape(1, 1, 1, 4)
    value, dx = L.color_loss(x, x0, threshold=1.0, kind="channel")
    assert float(value) == 4.0 + 9.0  # |d| = 1.0 is not > 1.0
    assert np.array_equal(dx.ravel(), [0.0, -4.0, 0.0, 6.0])
    value, dx = L.color_loss(x, x0, threshold=1.0, kind="hinge")
    assert float(value) == 1.0 + 4.0
    assert np.array_equal(dx.ravel(), [0.0, -2.0, 0.0, 4.0])


@pytest.mark.parametrize("kind", ["channel", "hinge"])
def test_color_gradient_per_channel_threshold(kind):
    t = np.array([0.3, 0.6, 1.2])  # per-channel, like torch's 0.3/std
    x, x0 = colour_pair(t.reshape(1, 3, 1, 1), seed=13)
    check_grad(lambda: L.color_loss(x, x0, t, kind)[0], x, L.color_loss(x, x0, t, kind)[1])
    d = x - x0
    over = np.abs(d) > t.reshape(1, 3, 1, 1)
    assert 0 < over.sum() < over.size  # both sides of the threshold are exercised
    if kind == "channel":
        assert abs(float(L.color_loss(x, x0, t, kind)[0]) - np.sum(d[over] ** 2)) < 1e-12
    with pytest.raises(ShapeError):
        L.color_loss(x, x0, np.ones(2), kind)


def test_color_pixel_by_hand():
    """Per pixel: the RGB distance relative to each channel's threshold, r² = mean_c (d_c/t_c)²."""
    x0 = np.zeros((1, 3, 1, 3))
    # pixel 0: one channel at 1.5 t -> r² = 2.25/3 < 1, not counted (channel kind would count it)
    # pixel 1: all three at 1.1 t -> r² = 1.21 > 1; pixel 2: (2, 0, 0) t -> r² = 4/3 > 1
    d = np.array([[1.5, 0.0, 0.0], [1.1, 1.1, 1.1], [2.0, 0.0, 0.0]]).T  # (C, W)
    x = d.reshape(1, 3, 1, 3).copy()
    value, dx = L.color_loss(x, x0, threshold=1.0)  # "pixel" is the default
    assert float(value) == pytest.approx(3 * 1.21 + 4.0, abs=1e-12)
    assert np.array_equal(dx[0, :, 0, 0], [0.0, 0.0, 0.0])
    assert np.allclose(dx[0, :, 0, 1:], 2 * d[:, 1:])
    assert float(L.color_loss(x, x0, 1.0, "channel")[0]) == pytest.approx(2.25 + 3 * 1.21 + 4.0)


def test_color_pixel_gradient_per_channel_threshold():
    t = np.array([0.3, 0.6, 1.2]).reshape(1, 3, 1, 1)
    r = rng(14)
    x0 = r.standard_normal((1, 3, 6, 7))
    # each pixel's relative distance r is either <= 0.8 or >= 1.25: no central difference crosses r = 1
    direction = r.standard_normal((1, 3, 6, 7))
    direction /= np.sqrt((direction ** 2).mean(axis=1, keepdims=True))
    radius = np.where(r.random((1, 1, 6, 7)) < 0.5, r.uniform(0.1, 0.8, (1, 1, 6, 7)),
                      r.uniform(1.25, 2.0, (1, 1, 6, 7)))
    x = np.ascontiguousarray(x0 + direction * radius * t)
    value, dx = L.color_loss(x, x0, t.ravel())
    u = float(r.standard_normal())
    num = numerical_vjp(lambda: L.color_loss(x, x0, t.ravel())[0], x, u)
    assert rel_error(u * dx, num) < TOL
    counted = radius >= 1.25
    assert 0 < counted.sum() < counted.size
    assert abs(float(value) - np.sum(((x - x0) ** 2) * counted)) < 1e-12


def test_color_threshold():
    assert L.color_threshold() == pytest.approx(76.5)  # caffe: 0-255 minus mean
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    t = L.color_threshold(-mean / std, (1 - mean) / std)  # torchvision pixel bounds
    assert np.allclose(t, 0.3 / std)


# -- total ------------------------------------------------------------------------------
def test_total_with_negative_multipliers():
    m = L.Multipliers(content=-1e-11, style=1e-13, tv=-2.0, color=0.0)
    assert m.active() == ("class", "content", "style", "tv")
    dstyle = {"relu1_1": np.ones(3), "relu2_1": np.full(2, 2.0)}
    terms = {"class": (1.5, np.ones(4)), "content": (2e10, np.ones(2)),
             "style": (3e12, dstyle), "tv": (0.25, np.full(3, 4.0))}
    total, grads = L.total_loss(terms, m)
    assert total == pytest.approx(1.5 - 0.2 + 0.3 - 0.5, abs=1e-12)
    assert np.array_equal(grads["class"], np.ones(4))
    assert np.allclose(grads["content"], -1e-11)
    assert np.allclose(grads["style"]["relu2_1"], 2e-13)
    assert np.array_equal(grads["tv"], np.full(3, -8.0))
    with pytest.raises(ValueError):  # tv has a multiplier but was not computed
        L.total_loss({k: v for k, v in terms.items() if k != "tv"}, m)
    with pytest.raises(ValueError):
        L.total_loss({**terms, "colour": (0.0, 0.0)}, m)


# -- presets ----------------------------------------------------------------------------
IMAGENET = {"tabby": 281, "brown_bear": 294, "dalmatian": 251, "hyena": 276, "tiger": 292}


def test_presets_complete_and_well_formed():
    assert set(PRESETS) == {
        "tabby-plain", "tabby-color", "tabby-content", "bear-loose", "bear-full", "dalmatian",
        "hyena-unmasked", "hyena-masked", "tiger-face-plain", "tiger-face",
        "bear-jitter", "tabby-jitter", "tiger-jitter", "tiger-body-jitter"}
    index_file = Path(L.__file__).parent / "data" / "imagenet_class_index.json"
    names = ({int(k): v[1] for k, v in json.loads(index_file.read_text()).items()}
             if index_file.exists() else None)
    for key, p in PRESETS.items():
        assert IMAGENET[p.target] == p.target_index, key
        if names is not None:
            assert names[p.target_index] == p.target, key
        numbers = [float(v) for v in re.search(r"\(([^)]*)\)$", p.caption).group(1).split(",")]
        numbers += [0.0] * (4 - len(numbers))  # "Brown bear (-1e-11,0,1e-6)": colour 0
        m = p.multipliers
        assert [m.content, m.style, m.tv, m.color] == numbers, key
        assert p.jitter == ("jittered" in p.caption), key
        expected_mask = ("face" if "face-masked" in p.caption else
                         "body" if "body-masked" in p.caption else None)
        assert p.mask == expected_mask, key
        assert p.original in ("dog", "cat"), key


# -- dtype and device -------------------------------------------------------------------
def test_float32_in_float32_out():
    x = rng(14).random((1, 3, 4, 4)).astype(np.float32)
    assert L.tv_loss(x)[1].dtype == np.float32
    assert L.color_loss(x, x * 0.5, 0.1)[1].dtype == np.float32
    assert L.content_loss(x, x * 0.5)[1].dtype == np.float32
    assert L.style_layer_loss(x, L.gram(x * 0.5))[1].dtype == np.float32
    assert L.class_loss(x.reshape(1, -1), 0)[1].dtype == np.float32


@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_matches_numpy():
    import cupy as cp
    x = rng(15).random((1, 3, 5, 6))
    x0 = rng(16).random((1, 3, 5, 6))
    logits = rng(17).standard_normal((1, 10))
    cases = [(L.class_loss, (logits, 2)), (L.content_loss, (x, x0)),
             (L.style_layer_loss, (x, L.gram(x0))), (L.content_gram_loss, (x, L.gram(x0))),
             (L.tv_loss, (x,)),
             (L.color_loss, (x, x0, np.array([0.2, 0.3, 0.4]))),
             (L.color_loss, (x, x0, np.array([0.2, 0.3, 0.4]), "channel"))]
    for fn, args in cases:
        v, g = fn(*args)
        gv, gg = fn(*[cp.asarray(a) if isinstance(a, np.ndarray) and a.ndim > 1 else a
                      for a in args])
        # the values are sums of non-negative terms (no cancellation): another order moves
        # them by ~1e-14 relative. Gradients: the worst is the style gradient c (G - A) F,
        # whose Gram entries sum 30 products (within 2 gamma_30 * 30 ~ 1e-13 of O(1) values,
        # tests/parity.py); for its smallest element here (1.4e-6, c = 1.2e-4) that bounds the
        # relative difference by ~3e-11, under 1e-10
        assert abs(float(gv) - float(v)) < 1e-10 * max(1.0, abs(float(v)))
        assert rel_error(gg, g) < 1e-10
