"""Exercise 10 (solution): the backward pass of batch normalisation, training mode.

Per channel c, over the M = N*H*W values x[:, c, :, :]:
    mean = sum x / M,   var = sum (x - mean)^2 / M,   x_hat = (x - mean) / sqrt(var + eps)
    out = gamma[c] * x_hat + beta[c]
"""
import numpy as np


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """x: (N, C, H, W), gamma, beta: (C,) -> (out (N, C, H, W), cache). Batch statistics."""
    mean = x.mean(axis=(0, 2, 3), keepdims=True)  # (1, C, 1, 1)
    var = ((x - mean) ** 2).mean(axis=(0, 2, 3), keepdims=True)  # (1, C, 1, 1), divides by M
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x - mean) * inv_std
    out = gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1)
    cache = (x_hat, inv_std, gamma)  # x = mean + x_hat / inv_std: x_hat replaces x
    return out, cache


def batchnorm_backward(dout, cache):
    """dout: (N, C, H, W) -> (dx (N, C, H, W), dgamma (C,), dbeta (C,))."""
    x_hat, inv_std, gamma = cache
    N, C, H, W = dout.shape
    M = N * H * W
    axes = (0, 2, 3)  # everything one channel's statistics (and gamma, beta) touch
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * x_hat).sum(axis=axes)
    dx_hat = dout * gamma.reshape(1, -1, 1, 1)
    # x reaches x_hat by three paths: directly, through the mean, through the variance.
    xc = x_hat / inv_std  # x - mean
    dvar = (dx_hat * xc).sum(axis=axes, keepdims=True) * -0.5 * inv_std ** 3
    # d var / d mean = -2 sum(x - mean) / M = 0, so the mean's path has only one term
    dmean = -(dx_hat * inv_std).sum(axis=axes, keepdims=True)
    dx = dx_hat * inv_std + dvar * 2 * xc / M + dmean / M
    # together: dx = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))
    return dx, dgamma, dbeta


if __name__ == "__main__":  # `python solutions/ex10_batchnorm.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
