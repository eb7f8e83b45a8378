"""Reference losses, row by row, each -> (loss, gradient). Vectorised: ../loss.py
(stable log-softmax, soft targets, Keras' clipping, no Python loop).

    softmax_cross_entropy: loss = mean_n -log p[n, y[n]],  p = softmax(logits[n])
                           dlogits[n] = (p[n] - onehot(y[n])) / N
    binary_cross_entropy:  loss = mean -(t log p + (1 - t) log(1 - p))
                           dp = (p - t) / (p (1 - p)) / size
    bce_with_logits:       the same with p = sigmoid(z); dz = (sigmoid(z) - t) / size
    mse:                   loss = mean (pred - target)^2;  dpred = 2 (pred - target) / size
"""
from ...backend import get_array_module


def softmax_cross_entropy(logits, y):
    """logits (N, K), y (N,) int class indices."""
    xp = get_array_module(logits)
    N, K = logits.shape
    onehot = (xp.asarray(y)[:, None] == xp.arange(K)).astype(logits.dtype)  # (N, K)
    loss, dlogits = 0.0, xp.zeros_like(logits)
    for n in range(N):
        z = logits[n] - logits[n].max()  # the max cancels in p; exp cannot overflow
        e = xp.exp(z)
        p = e / e.sum()
        # log p = z - log(sum e), never log(p): p underflows to 0 when z < -745, and 0 * log(0)
        # would be NaN
        loss += -(onehot[n] * (z - xp.log(e.sum()))).sum() / N  # -log p[y[n]] / N
        dlogits[n] = (p - onehot[n]) / N
    return loss, dlogits


def binary_cross_entropy(p, t):
    """p: probabilities in (0, 1), t: targets, same shape (no clipping here)."""
    xp = get_array_module(p)
    loss = -(t * xp.log(p) + (1 - t) * xp.log(1 - p)).mean()
    return loss, (p - t) / (p * (1 - p)) / p.size


def bce_with_logits(z, t):
    xp = get_array_module(z)
    p = 1 / (1 + xp.exp(-z))
    return binary_cross_entropy(p, t)[0], (p - t) / z.size


def mse(pred, target):
    d = pred - target
    return (d * d).mean(), 2 * d / d.size
