"""Reference batch normalisation (training mode), the computation graph taken step by step
backwards. Vectorised: ../norm.py (one fused formula, in-place buffers, inference mode).

    per channel c, over its M = N*H*W values:
    mean = sum x / M      var = sum (x - mean)^2 / M      inv_std = 1 / sqrt(var + eps)
    x_hat = (x - mean) * inv_std       out = gamma * x_hat + beta

Backward, node by node (sums over n, h, w of one channel):
    dbeta = sum dout          dgamma = sum dout * x_hat          dx_hat = dout * gamma
    dvar  = sum dx_hat * (x - mean) * -1/2 inv_std^3
    dmean = -sum dx_hat * inv_std      (the path through var adds -2 sum(x - mean) / M = 0)
    dx    = dx_hat * inv_std + dvar * 2 (x - mean) / M + dmean / M
"""
AXES = (0, 2, 3)


def _c(v):
    return v[None, :, None, None]  # (C,) -> (1, C, 1, 1)


def batchnorm2d_forward(x, gamma, beta, eps=1e-5):
    """x (N, C, H, W), gamma, beta (C,) -> (out, cache), with the batch's statistics."""
    mean = x.mean(axis=AXES)
    var = ((x - _c(mean)) ** 2).mean(axis=AXES)
    inv_std = 1 / (var + eps) ** 0.5
    x_hat = (x - _c(mean)) * _c(inv_std)
    return _c(gamma) * x_hat + _c(beta), {"x": x, "mean": mean, "inv_std": inv_std,
                                          "x_hat": x_hat, "gamma": gamma}


def batchnorm2d_backward(dout, cache):
    """dout (N, C, H, W) -> (dx (N, C, H, W), dgamma (C,), dbeta (C,))."""
    x, mean, inv_std, x_hat = cache["x"], cache["mean"], cache["inv_std"], cache["x_hat"]
    M = x.size // x.shape[1]
    dbeta = dout.sum(axis=AXES)
    dgamma = (dout * x_hat).sum(axis=AXES)
    dx_hat = dout * _c(cache["gamma"])
    xc = x - _c(mean)
    dvar = (dx_hat * xc).sum(axis=AXES) * -0.5 * inv_std ** 3
    dmean = -(dx_hat * _c(inv_std)).sum(axis=AXES)
    dx = dx_hat * _c(inv_std) + _c(dvar) * 2 * xc / M + _c(dmean) / M
    return dx, dgamma, dbeta
