import math

import numpy as np
import pytest

from minvert.errors import MinvertError, ShapeError
from minvert.metrics import cosine_similarity_matrix, mse, psnr, reidentification_rate, ssim

RNG = np.random.default_rng(0)
C1, C2 = 0.01 ** 2, 0.03 ** 2  # data_range 1


def naive_ssim(a, b, L=1.0):
    """Wang et al. 2004 written out: an explicit 11x11 Gaussian window, every valid position."""
    r = np.arange(11) - 5
    w = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5 ** 2))
    w /= w.sum()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    vals = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cab = (w * (pa - ma) * (pb - mb)).sum()
            num = (2 * ma * mb + c1) * (2 * cab + c2)
            vals.append(num / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return np.mean(vals)


def test_ssim_identical_is_one():
    a = RNG.random((16, 13))
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    c = RNG.random((12, 11, 3))
    assert ssim(c, c) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("ca, cb", [(0.2, 0.6), (0.5, 0.5), (0.0, 1.0), (0.9, 0.3)])
def test_ssim_constant_images_reduce_to_luminance(ca, cb):
    # no variance anywhere: the contrast-structure factor is C2 / C2 = 1
    want = (2 * ca * cb + C1) / (ca ** 2 + cb ** 2 + C1)
    assert ssim(np.full((11, 14), ca), np.full((11, 14), cb)) == pytest.approx(want, rel=1e-10)


def test_ssim_matches_double_loop():
    a = RNG.random((15, 13))
    b = np.clip(a + 0.2 * RNG.standard_normal(a.shape), 0, 1)
    assert ssim(a, b) == pytest.approx(naive_ssim(a, b), rel=1e-10)
    assert ssim(b, a) == pytest.approx(ssim(a, b), rel=1e-12)
    a8, b8 = (a * 255).round(), (b * 255).round()
    assert ssim(a8, b8, data_range=255) == pytest.approx(naive_ssim(a8, b8, 255), rel=1e-10)


def test_ssim_channels_are_averaged():
    a, b = RNG.random((12, 12, 3)), RNG.random((12, 12, 3))
    per = [naive_ssim(a[:, :, c], b[:, :, c]) for c in range(3)]
    assert ssim(a, b) == pytest.approx(np.mean(per), rel=1e-10)


def test_ssim_errors():
    with pytest.raises(ShapeError):
        ssim(np.zeros((10, 20)), np.zeros((10, 20)))
    with pytest.raises(ShapeError):
        ssim(np.zeros((12, 12)), np.zeros((12, 13)))
    with pytest.raises(MinvertError, match="data_range"):
        ssim(np.full((12, 12), 200, np.uint8), np.zeros((12, 12), np.uint8))


def test_mse_and_psnr_known_values():
    a = np.zeros((4, 5, 3))
    assert mse(a, a + 0.1) == pytest.approx(0.01)
    assert psnr(a, a + 0.1) == pytest.approx(20.0)  # 10 log10(1 / 0.01)
    u, v = np.zeros((4, 4), np.uint8), np.ones((4, 4), np.uint8)
    assert psnr(u, v, data_range=255) == pytest.approx(20 * math.log10(255))  # mse 1: 48.13 dB
    assert psnr(a, a) == math.inf
    half = a.copy()
    half[:2] = 0.5  # mse = 0.25 / 2
    assert psnr(a, half) == pytest.approx(10 * math.log10(8))
    with pytest.raises(ShapeError):
        mse(np.zeros(3), np.zeros(4))
    with pytest.raises(MinvertError):
        psnr(u, v * 200)


def test_cosine_similarity_matrix():
    a = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    b = np.array([[3.0, 0.0], [-1.0, -1.0]])
    s = cosine_similarity_matrix(a, b)
    want = [[1, -1 / math.sqrt(2)], [0, -1 / math.sqrt(2)], [0, 0]]
    assert s.shape == (3, 2) and np.allclose(s, want, atol=1e-15)
    x, y = RNG.standard_normal((4, 6)), RNG.standard_normal((5, 6))
    loop = [[x[i] @ y[j] / np.linalg.norm(x[i]) / np.linalg.norm(y[j]) for j in range(5)]
            for i in range(4)]
    assert np.allclose(cosine_similarity_matrix(x, y), loop, atol=1e-14)
    with pytest.raises(ShapeError):
        cosine_similarity_matrix(x, y[:, :5])


def test_reidentification_constructed_case():
    src = np.eye(12)  # 10 sources and 2 distractors, mutually orthogonal
    rec = src[:10].copy()
    rec[6] = 0.4 * src[6] + 0.6 * src[7]  # own source second: a top-5 hit but not top-1
    rec[7] = src[0]  # orthogonal to its own source: ties with 10 others, which count against it
    rec[8] = 0.0  # all similarities 0: never re-identified
    rec[9] = 0.3 * src[9] + 0.5 * src[10] + 0.6 * src[11] + 0.55 * src[0] + 0.52 * src[1]
    rec[9] += 0.45 * src[2]
    # rec 9's own source ranks 6th (0.3 is below five others): missed even at top-5
    r = reidentification_rate(rec, src)
    assert r == {"top1": 6 / 10, "top5": 7 / 10}
    assert reidentification_rate(rec, src, k=3) == {"top3": 0.7}
    assert reidentification_rate(rec, src, k=(1, 6))["top6"] == 0.8
    with pytest.raises(ShapeError):
        reidentification_rate(src, src[:5])


def test_wilson_interval_matches_scipy():
    from scipy.stats import binomtest
    from minvert.metrics import wilson_interval
    for k, n in ((0, 50), (3, 64), (8, 10), (50, 50)):
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert np.allclose(wilson_interval(k, n), (ci.low, ci.high), atol=2e-4), (k, n)
    with pytest.raises(ShapeError):
        wilson_interval(0, 0)


def test_bootstrap_mean_interval_covers_the_mean_and_matches_a_loop():
    from minvert.metrics import bootstrap_mean_interval
    x = RNG.normal(3.0, 2.0, 60)
    lo, hi = bootstrap_mean_interval(x, n_boot=4000, seed=1)
    assert lo < x.mean() < hi
    assert abs((hi - lo) - 2 * 1.96 * x.std() / math.sqrt(60)) < 0.15  # about the normal width
    rng = np.random.default_rng(1)  # the same resamples, drawn as one loop would
    idx = rng.integers(0, 60, (4000, 60))
    means = sorted(sum(x[j] for j in row) / 60 for row in idx)
    assert np.isclose(lo, np.percentile(means, 2.5)) and np.isclose(hi, np.percentile(means, 97.5))
    assert bootstrap_mean_interval(x, seed=1) == bootstrap_mean_interval(x, seed=1)
