"""Exercise 10: the backward pass of batch normalisation, training mode.

Per channel c, over the M = N*H*W values x[:, c, :, :]:
    mean = sum x / M,   var = sum (x - mean)^2 / M,   x_hat = (x - mean) / sqrt(var + eps)
    out = gamma[c] * x_hat + beta[c]

The forward pass below is complete; keep it as it is. Write ``batchnorm_backward`` and check it:

    minvert exercise check tutorials/exercises/ex10_batchnorm.py

(or ``python tutorials/exercises/ex10_batchnorm.py``). The checker compares your gradient with a
numerical one on small random inputs and, when they differ, names the usual mistake.
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
    """dout: (N, C, H, W) -> (dx (N, C, H, W), dgamma (C,), dbeta (C,)).

    All sums run over axes (0, 2, 3): the M = N*H*W values of one channel. Easiest first:

    * dbeta: beta[c] is added to every value of channel c.
    * dgamma: gamma[c] multiplies x_hat there.
    * dx: start with d x_hat = dout * gamma. Then remember that x reaches
          x_hat = (x - mean) * (var + eps)^(-1/2)
      three ways: directly, through the mean, and through var (which uses the mean too).
      Go backwards one step at a time: d var first (var appears only in the factor),
      then d mean (directly, and through var: that second term is zero, why?), and finally
      add up dx's three contributions, using d mean / d x = 1/M and
      d var / d x = 2 (x - mean) / M.
    * The cache has no x, but x - mean = x_hat / inv_std.

    Treating mean and var as constants gives dx = d x_hat * inv_std: a classic bug that a
    check with dout = ones cannot see (tutorials/02_gradient_checking.py shows why).
    """
    raise NotImplementedError("write batchnorm_backward")


if __name__ == "__main__":  # `python ex10_batchnorm.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
