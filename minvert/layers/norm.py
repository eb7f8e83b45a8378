"""2-D batch normalisation, NCHW, statistics per channel over (N, H, W).

    x: (N, C, H, W)   gamma, beta, running_mean, running_var: (C,)   out: (N, C, H, W)
    M = N * H * W  (values per channel)

Training mode (batch statistics):
    mean = sum_{n,h,w} x / M          var = sum_{n,h,w} (x - mean)^2 / M   (biased)
    x_hat = (x - mean) / sqrt(var + eps)
    out = gamma * x_hat + beta
and the running statistics move towards the batch ones IN PLACE (PyTorch convention):
    running_mean = (1 - momentum) * running_mean + momentum * mean
    running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)
The running variance uses the UNBIASED batch variance (M - 1 divisor), as PyTorch does;
normalisation itself uses the biased one. (Keras' momentum m_keras = 1 - momentum.)

Inference mode (running statistics, constants w.r.t. x):
    out = gamma * (x - running_mean) / sqrt(running_var + eps) + beta = x * scale + shift

Backward (derivations in docs/layers.md), sums over (n, h, w) per channel:
    dbeta  = sum dout            dgamma = sum dout * x_hat
    training:  dx = gamma / (M sqrt(var + eps)) * (M dout - dbeta - x_hat * dgamma)
    inference: dx = dout * gamma / sqrt(running_var + eps)

Reference: minvert/layers/reference/norm.py (the graph backwards, node by node). This version
adds speed and memory (one fused dx formula, in-place buffers) and inference mode.
"""
import numpy as np

from ..backend import get_array_module
from ..errors import DTypeError, ShapeError
from .base import Layer, check_floating, check_rank, last_cache

_AXES = (0, 2, 3)  # the axes a channel's statistics run over


def _per_channel(v):
    return v[:, None, None]  # (C,) -> (C, 1, 1), broadcasts against (N, C, H, W)


def batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training,
                        momentum=0.1, eps=1e-5):
    """Returns (out, cache); in training mode also updates running_mean/var in place."""
    check_floating(x)
    check_rank(x, 4, "(N, C, H, W)")
    N, C, H, W = x.shape
    if gamma.shape != (C,):
        raise ShapeError(f"batch-norm input has {C} channels but the layer has {gamma.shape[0]} "
                         f"(input shape {tuple(x.shape)})")
    if gamma.dtype != x.dtype:
        raise DTypeError(f"batch-norm input is {x.dtype} but its parameters are {gamma.dtype}: "
                         f"convert one of them (layer.astype('{x.dtype}'))")
    xp = get_array_module(x)
    if training:
        M = N * H * W
        if M < 2:
            raise ShapeError(f"batch-norm in training mode needs more than one value per channel, "
                             f"got input {tuple(x.shape)}: use a larger batch or inference mode")
        mean = x.mean(axis=_AXES)
        x_hat = x - _per_channel(mean)
        var = (x_hat * x_hat).mean(axis=_AXES)
        inv_std = 1 / xp.sqrt(var + eps)
        x_hat *= _per_channel(inv_std)
        out = x_hat * _per_channel(gamma)
        out += _per_channel(beta)
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += (momentum * M / (M - 1)) * var
        # x_hat replaces x (same size), inv_std and gamma give every term of dx
        cache = {"training": True, "x_hat": x_hat, "inv_std": inv_std, "gamma": gamma}
    else:
        scale, shift, inv_std = _affine(gamma, beta, running_mean, running_var, eps)
        out = x * _per_channel(scale)
        out += _per_channel(shift)
        # dx needs only scale; x and the (copied) mean rebuild x_hat for dgamma on demand
        cache = {"training": False, "x": x, "mean": running_mean.copy(), "inv_std": inv_std,
                 "scale": scale}
    return out, cache


def _affine(gamma, beta, running_mean, running_var, eps):
    """(scale, shift, 1 / sqrt(running_var + eps)) of the inference-mode map."""
    xp = get_array_module(gamma)
    inv_std = 1 / xp.sqrt(running_var + eps)
    scale = gamma * inv_std
    return scale, beta - running_mean * scale, inv_std


def batchnorm2d_affine(gamma, beta, running_mean, running_var, eps=1e-5):
    """Inference-mode batch-norm as a per-channel affine map -> (scale, shift), each (C,):

        out = x * scale + shift,   scale = gamma / sqrt(running_var + eps),
                                   shift = beta - running_mean * scale

    With the fast engine on, ``Sequential.predict`` folds it into the convolution before
    it (layers/fast/fuse.py).
    """
    return _affine(gamma, beta, running_mean, running_var, eps)[:2]


def batchnorm2d_backward(dout, cache, need_dx=True, need_dparams=True):
    """dout: (N, C, H, W) -> (dx (N, C, H, W), dgamma (C,), dbeta (C,)), None where not
    requested."""
    if cache["training"]:
        x_hat = cache["x_hat"]
        dbeta = dout.sum(axis=_AXES)
        dgamma = (dout * x_hat).sum(axis=_AXES)
        dx = None
        if need_dx:
            M = dout.size // dout.shape[1]
            dx = x_hat * _per_channel(-dgamma / M)
            dx += dout
            dx -= _per_channel(dbeta / M)
            dx *= _per_channel(cache["gamma"] * cache["inv_std"])
    else:
        dx = dout * _per_channel(cache["scale"]) if need_dx else None
        dgamma = dbeta = None
        if need_dparams:
            dbeta = dout.sum(axis=_AXES)
            dgamma = (dout * (cache["x"] - _per_channel(cache["mean"]))).sum(axis=_AXES) * cache["inv_std"]
    if not need_dparams:
        dgamma = dbeta = None
    return dx, dgamma, dbeta


class BatchNorm2D(Layer):
    """params "gamma" (ones), "beta" (zeros); state "mean" (zeros), "var" (ones).

    ``self.training`` picks batch statistics (and updates the state) or the running ones.
    eps: 1e-5 torchvision ResNet, 1.001e-5 Keras ResNet, 1e-3 legacy Keras.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float32):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.params["gamma"] = np.ones(num_features, dtype=dtype)
        self.params["beta"] = np.zeros(num_features, dtype=dtype)
        self.state["mean"] = np.zeros(num_features, dtype=dtype)
        self.state["var"] = np.ones(num_features, dtype=dtype)

    def forward(self, x):
        p, s = self.params, self.state
        out, self.cache = batchnorm2d_forward(x, p["gamma"], p["beta"], s["mean"], s["var"],
                                              self.training, self.momentum, self.eps)
        return out

    def affine(self):
        """(scale, shift) of the inference-mode map (see :func:`batchnorm2d_affine`)."""
        p, s = self.params, self.state
        return batchnorm2d_affine(p["gamma"], p["beta"], s["mean"], s["var"], self.eps)

    def backward(self, dout):
        dx, dgamma, dbeta = batchnorm2d_backward(dout, last_cache(self), self.need_dx,
                                                 self.trainable)
        if self.trainable:
            self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        return dx

    def __repr__(self):
        return (f"BatchNorm2D({self.params['gamma'].shape[0]}, eps={self.eps}, "
                f"momentum={self.momentum})")
