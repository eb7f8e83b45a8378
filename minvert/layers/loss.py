"""Losses: each returns (loss, gradient of the loss w.r.t. its first argument).

The loss is a 0-d value (NumPy scalar or CuPy 0-d array; ``float(loss)`` works) and the
gradient has the shape of the prediction. All are means, so the gradient already holds
the 1/N (or 1/size) factor. Derivations in docs/layers.md.

    softmax_cross_entropy(logits (N, K), target (N,) int or (N, K) float) -> mean over N
    binary_cross_entropy(p, target, eps=1e-7)  probabilities, Keras clipping -> mean over all
    bce_with_logits(z, target)                 logits, stable form -> mean over all
    mse(pred, target)                          -> mean over all

Reference: minvert/layers/reference/loss.py (row by row). This version adds stability
(log-softmax), soft targets, Keras' clipping and no Python loop.
"""
import numpy as np

from ..backend import get_array_module, to_numpy
from ..errors import ShapeError
from .activation import sigmoid
from .base import check_floating, check_rank


def _same_shape(pred, target, what):
    if pred.shape != target.shape:
        raise ShapeError(f"{what}: prediction {tuple(pred.shape)} and target "
                         f"{tuple(target.shape)} must have the same shape")


def _log_softmax(x, axis):
    """(z - max) - log(sum exp(z - max)) and the softmax: no exp ever overflows."""
    xp = get_array_module(x)
    z = x - x.max(axis=axis, keepdims=True)
    e = xp.exp(z)
    s = e.sum(axis=axis, keepdims=True)
    return z - xp.log(s), e / s


def softmax(x, axis=-1):
    """exp(x) / sum exp(x) along ``axis``, computed as exp(x - max) to avoid overflow."""
    return _log_softmax(x, axis)[1]


def softmax_cross_entropy(logits, target, check_indices=True):
    """Mean over the batch of -sum_k t_k log softmax(logits)_k.

    logits: (N, K). target: (N,) integer class indices, or (N, K) soft targets (rows
    usually sum to 1; the gradient below is exact either way). check_indices=False leaves
    the range check of class indices to the caller (:func:`check_class_bounds` on
    :func:`class_bounds`), so a training step reads it back with its other numbers: on a
    GPU the check is a wait for the device.
    Returns (loss, dlogits (N, K)):
        dlogits = (p * sum_k t_k - t) / N,   p = softmax(logits)  (= (p - onehot) / N)
    """
    check_floating(logits, "logits")
    check_rank(logits, 2, "(N, K) logits", "logits")
    xp = get_array_module(logits)
    if not hasattr(target, "dtype"):
        target = np.asarray(target)  # a list or an int
    N, K = logits.shape
    logp, p = _log_softmax(logits, axis=1)
    if np.issubdtype(target.dtype, np.integer):
        if target.shape != (N,):
            raise ShapeError(f"class-index target has shape {tuple(target.shape)}; expected ({N},)")
        if check_indices:
            check_class_bounds(to_numpy(class_bounds(target)), K)  # one transfer, not two
        target = xp.asarray(target)  # a NumPy target with CuPy logits is fine
        t = (target[:, None] == xp.arange(K)).astype(logits.dtype)  # one-hot (N, K), no scatter
        dlogits = p - t
    else:
        target = xp.asarray(target)
        _same_shape(logits, target, "softmax cross-entropy")
        t = target.astype(logits.dtype, copy=False)
        dlogits = p * t.sum(axis=1, keepdims=True) - t
    loss = -(t * logp).sum() / N
    dlogits /= N
    return loss, dlogits


def class_bounds(target):
    """(min, max) of integer class indices (N,), as an array on their device ((0, 0) if empty)."""
    xp = get_array_module(target)
    return xp.stack([target.min(), target.max()]) if len(target) else xp.zeros(2, dtype=target.dtype)


def check_class_bounds(bounds, K):
    """ShapeError unless the host values (low, high) of :func:`class_bounds` lie in [0, K)."""
    low, high = (int(v) for v in bounds)
    if low < 0 or high >= K:
        raise ShapeError(f"class index out of range [0, {K}): got {low}..{high}")


def binary_cross_entropy(p, target, eps=1e-7):
    """Mean over ALL elements of -(t log p + (1 - t) log(1 - p)), p clipped to [eps, 1 - eps].

    p: probabilities (e.g. a sigmoid output), any shape; target: same shape, in [0, 1]
    (need not be binary). The clipping is Keras' (tf.keras: epsilon() = 1e-7), so losses
    match a Keras model's. Where p lies outside [eps, 1 - eps] the clipped value is a
    constant, so the gradient there is ZERO (TensorFlow's clip_by_value gradient does the
    same). Elsewhere
        dp = (p - t) / (p (1 - p)) / size
    """
    check_floating(p, "prediction")
    xp = get_array_module(p)
    target = xp.asarray(target)
    _same_shape(p, target, "binary cross-entropy")
    pc = xp.clip(p, eps, 1 - eps)
    t = target.astype(p.dtype, copy=False)
    loss = -(t * xp.log(pc) + (1 - t) * xp.log1p(-pc)).mean()
    inside = (p >= eps) & (p <= 1 - eps)
    dp = (pc - t) / (pc * (1 - pc))
    dp *= inside
    dp /= p.size
    return loss, dp


def bce_with_logits(z, target):
    """Binary cross-entropy of sigmoid(z), mean over all elements, without forming
    log(sigmoid(z)):  loss = mean(max(z, 0) - z t + log(1 + exp(-|z|))).
    Returns (loss, dz) with dz = (sigmoid(z) - t) / size.
    """
    check_floating(z, "logits")
    xp = get_array_module(z)
    target = xp.asarray(target)
    _same_shape(z, target, "BCE with logits")
    t = target.astype(z.dtype, copy=False)
    loss = (xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-xp.abs(z)))).mean()
    dz = sigmoid(z) - t
    dz /= z.size
    return loss, dz


def mse(pred, target):
    """Mean over all elements of (pred - target)^2; dpred = 2 (pred - target) / size."""
    check_floating(pred, "prediction")
    target = get_array_module(pred).asarray(target)
    _same_shape(pred, target, "MSE")
    diff = pred - target
    loss = (diff * diff).mean()
    diff *= 2 / pred.size
    return loss, diff
