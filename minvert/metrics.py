"""Image-quality and re-identification metrics, written out so they can be checked by hand.

All image metrics take two arrays of the same shape, (H, W) or (H, W, C), compute in float64 on the
host and return a Python float. ``data_range`` is the span of the pixel scale: 1.0 for [0, 1]
images, 255 for uint8 ones. A value larger than ``data_range`` is refused, because forgetting
``data_range=255`` silently gives a meaningless score.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .backend import get_array_module, to_numpy
from .errors import MinvertError, ShapeError

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def _pair(a, b, data_range):
    a, b = to_numpy(a).astype(np.float64), to_numpy(b).astype(np.float64)
    if a.shape != b.shape:
        raise ShapeError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.size and max(np.abs(a).max(), np.abs(b).max()) > data_range * (1 + 1e-6):
        raise MinvertError(f"pixel values exceed data_range={data_range}; pass the range of the "
                           "pixel scale (255 for uint8 images) or clip the images first")
    return a, b


def mse(a, b):
    """Mean squared difference over all elements."""
    a, b = to_numpy(a).astype(np.float64), to_numpy(b).astype(np.float64)
    if a.shape != b.shape:
        raise ShapeError(f"arrays differ in shape: {a.shape} vs {b.shape}")
    return float(np.mean((a - b) ** 2))


def psnr(a, b, data_range=1.0):
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / mse)``; inf when identical."""
    a, b = _pair(a, b, data_range)
    err = float(np.mean((a - b) ** 2))
    return float("inf") if err == 0 else float(10.0 * np.log10(data_range ** 2 / err))


def gaussian_window(size=SSIM_WINDOW, sigma=SSIM_SIGMA):
    """1-D Gaussian weights (size,) summing to 1; the 2-D window is its outer product."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-x ** 2 / (2.0 * sigma ** 2))
    return g / g.sum()


def _filter_valid(x, g):
    """Gaussian-weighted local means of x (H, W) at every full window: (H - K + 1, W - K + 1)."""
    x = sliding_window_view(x, g.size, axis=0) @ g  # (H - K + 1, W)
    return sliding_window_view(x, g.size, axis=1) @ g  # (H - K + 1, W - K + 1)


def ssim(a, b, data_range=1.0):
    """Structural similarity (Wang, Bovik, Sheikh, Simoncelli 2004), mean over the image.

    Local statistics use an 11x11 Gaussian window (sigma 1.5, applied as two 1-D passes) at every
    position where the window fits inside the image ('valid' region, as in Wang's reference
    ``ssim_index.m``; no border padding, so an image needs at least 11x11 pixels). Variances and
    covariance are the window-weighted population ones. With C1 = (0.01 L)^2, C2 = (0.03 L)^2::

        SSIM = (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2))

    (H, W, C) images: SSIM per channel, then the mean over channels.
    Equals scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``.
    """
    a, b = _pair(a, b, data_range)
    if a.ndim not in (2, 3):
        raise ShapeError(f"ssim needs (H, W) or (H, W, C) images, got shape {a.shape}")
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ShapeError(f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, "
                         f"got {a.shape[0]}x{a.shape[1]}")
    if a.ndim == 3:
        return float(np.mean([ssim(a[:, :, c], b[:, :, c], data_range) for c in range(a.shape[2])]))
    g = gaussian_window()
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a ** 2
    var_b = _filter_valid(b * b, g) - mu_b ** 2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def cosine_similarity_matrix(a, b, eps=1e-12):
    """a (N, D), b (M, D) -> (N, M) cosines; a zero row has similarity 0 with everything.

    Stays on the arrays' device (NumPy or CuPy); computed in float64.
    """
    xp = get_array_module(a, b)
    a, b = xp.asarray(a, dtype=xp.float64), xp.asarray(b, dtype=xp.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ShapeError(f"need feature matrices (N, D) and (M, D), got {a.shape} and {b.shape}")
    a = a / xp.maximum(xp.linalg.norm(a, axis=1, keepdims=True), eps)
    b = b / xp.maximum(xp.linalg.norm(b, axis=1, keepdims=True), eps)
    return a @ b.T  # (N, M)


def reidentification_rate(recon_features, source_features, k=(1, 5)):
    """How often a reconstruction's features point back to the image it came from.

    recon_features (N, D): features of reconstructions; source_features (M, D), M >= N: features of
    the originals, row i being the source of reconstruction i (rows N..M-1 are distractors).
    For each i, the originals are ranked by cosine similarity to reconstruction i; it counts as
    re-identified at k if its own source is among the k most similar. Ties count against the source
    (an original exactly as similar ranks ahead of it), so reconstructions whose features are all identical (all zeros, say) never score.
    Returns {"top1": fraction, "top5": fraction} (one key per k).
    """
    ks = (k,) if np.isscalar(k) else tuple(k)
    sim = to_numpy(cosine_similarity_matrix(recon_features, source_features))  # (N, M)
    n, m = sim.shape
    if n > m:
        raise ShapeError(f"{n} reconstructions but only {m} source features; "
                         "row i of the sources must be the source of reconstruction i")
    if n == 0:
        raise ShapeError("no reconstructions to evaluate")
    own = sim[np.arange(n), np.arange(n)]
    rank = (sim >= own[:, None]).sum(axis=1) - 1  # originals at least as similar, own excluded
    return {f"top{int(kk)}": float(np.mean(rank < kk)) for kk in ks}


def wilson_interval(successes, n, z=1.96):
    """Wilson score interval (z = 1.96: 95 %) of a proportion successes / n: (low, high).

    Unlike the normal approximation p +- z sqrt(p(1-p)/n) it stays inside [0, 1] and is not
    empty at 0 successes, which matters for re-identification rates near 0 on small sets.
    """
    if n <= 0:
        raise ShapeError("a proportion needs at least one trial")
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def bootstrap_mean_interval(values, level=0.95, n_boot=2000, seed=0):
    """Percentile-bootstrap interval of the mean of ``values`` (1-d, host): (low, high).

    Resamples the values with replacement ``n_boot`` times (seeded: the same numbers every run).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ShapeError("no values to bootstrap")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (n_boot, values.size))].mean(axis=1)  # (n_boot,)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)
