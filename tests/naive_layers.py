"""Naive loop oracles for the non-convolution layers: test-only, written for obviousness,
never for speed. Each follows the textbook definition element by element so that the
vectorised layers in minvert/layers/ can be compared with something hard to get wrong.
All take and return float64 NumPy arrays.
"""
import math

import numpy as np


def _pad4(pad):
    return (pad,) * 4 if isinstance(pad, int) else tuple(pad)


def _out_size(H, W, KH, KW, SH, SW, pad):
    top, bottom, left, right = pad
    return (H + top + bottom - KH) // SH + 1, (W + left + right - KW) // SW + 1


def maxpool(x, k, s=None, pad=0):
    """Returns (out, argmax) with argmax[n, c, oh, ow] = (h, w) in x of the FIRST maximum in
    row-major window order; padding positions are skipped (they never win)."""
    s = s or k
    pad = _pad4(pad)
    N, C, H, W = x.shape
    H_out, W_out = _out_size(H, W, k, k, s, s, pad)
    out = np.zeros((N, C, H_out, W_out))
    where = np.zeros((N, C, H_out, W_out, 2), dtype=int)
    for n in range(N):
        for c in range(C):
            for oh in range(H_out):
                for ow in range(W_out):
                    best, at = -math.inf, None
                    for i in range(k):
                        for j in range(k):
                            h, w = oh * s + i - pad[0], ow * s + j - pad[2]
                            if 0 <= h < H and 0 <= w < W and x[n, c, h, w] > best:
                                best, at = x[n, c, h, w], (h, w)
                    out[n, c, oh, ow] = best
                    where[n, c, oh, ow] = at
    return out, where


def maxpool_backward(dout, x_shape, where):
    dx = np.zeros(x_shape)
    N, C, H_out, W_out = dout.shape
    for n in range(N):
        for c in range(C):
            for oh in range(H_out):
                for ow in range(W_out):
                    h, w = where[n, c, oh, ow]
                    dx[n, c, h, w] += dout[n, c, oh, ow]
    return dx


def avgpool(x, k, s=None, pad=0, count_include_pad=True):
    s = s or k
    pad = _pad4(pad)
    N, C, H, W = x.shape
    H_out, W_out = _out_size(H, W, k, k, s, s, pad)
    out = np.zeros((N, C, H_out, W_out))
    for n in range(N):
        for c in range(C):
            for oh in range(H_out):
                for ow in range(W_out):
                    total, count = 0.0, 0
                    for i in range(k):
                        for j in range(k):
                            h, w = oh * s + i - pad[0], ow * s + j - pad[2]
                            if 0 <= h < H and 0 <= w < W:
                                total += x[n, c, h, w]
                                count += 1
                    out[n, c, oh, ow] = total / (k * k if count_include_pad else count)
    return out


def global_avgpool(x):
    N, C, H, W = x.shape
    out = np.zeros((N, C))
    for n in range(N):
        for c in range(C):
            out[n, c] = sum(x[n, c, h, w] for h in range(H) for w in range(W)) / (H * W)
    return out


def elementwise(fn, x):
    return np.array([fn(float(v)) for v in x.ravel()]).reshape(x.shape)


def relu(x):
    return elementwise(lambda v: v if v > 0 else 0.0, x)


def leaky_relu(x, alpha):
    return elementwise(lambda v: v if v > 0 else alpha * v, x)


def sigmoid(x):
    return elementwise(lambda v: 1 / (1 + math.exp(-v)) if v >= 0
                       else math.exp(v) / (1 + math.exp(v)), x)


def dense(x, w, b=None):
    N, D = x.shape
    F = w.shape[0]
    out = np.zeros((N, F))
    for n in range(N):
        for f in range(F):
            out[n, f] = sum(x[n, d] * w[f, d] for d in range(D)) + (b[f] if b is not None else 0.0)
    return out


def flatten(x):
    N, C, H, W = x.shape
    out = np.zeros((N, C * H * W))
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    out[n, c * H * W + h * W + w] = x[n, c, h, w]
    return out


def zeropad(x, pad):
    top, bottom, left, right = _pad4(pad)
    N, C, H, W = x.shape
    out = np.zeros((N, C, H + top + bottom, W + left + right))
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    out[n, c, h + top, w + left] = x[n, c, h, w]
    return out


def upsample_nearest(x, fh, fw):
    N, C, H, W = x.shape
    out = np.zeros((N, C, H * fh, W * fw))
    for n in range(N):
        for c in range(C):
            for h in range(H * fh):
                for w in range(W * fw):
                    out[n, c, h, w] = x[n, c, h // fh, w // fw]
    return out


def batchnorm(x, gamma, beta, mean=None, var=None, eps=1e-5):
    """Training mode when mean/var are None (batch statistics, biased variance); returns
    (out, batch_mean, batch_var_biased)."""
    N, C, H, W = x.shape
    M = N * H * W
    out = np.zeros_like(x)
    means, variances = np.zeros(C), np.zeros(C)
    for c in range(C):
        vals = [x[n, c, h, w] for n in range(N) for h in range(H) for w in range(W)]
        mu = sum(vals) / M if mean is None else mean[c]
        v = sum((a - mu) ** 2 for a in vals) / M if var is None else var[c]
        means[c], variances[c] = mu, v
        for n in range(N):
            for h in range(H):
                for w in range(W):
                    out[n, c, h, w] = gamma[c] * (x[n, c, h, w] - mu) / math.sqrt(v + eps) + beta[c]
    return out, means, variances


def softmax_cross_entropy(logits, target):
    """target: (N,) int or (N, K) float; mean over N of -sum_k t_k log softmax_k."""
    N, K = logits.shape
    total = 0.0
    for n in range(N):
        row = [float(v) for v in logits[n]]
        top = max(row)
        lse = top + math.log(sum(math.exp(v - top) for v in row))
        for k in range(K):
            t = (1.0 if int(target[n]) == k else 0.0) if target.ndim == 1 else float(target[n, k])
            total -= t * (row[k] - lse)
    return total / N


def binary_cross_entropy(p, t, eps=1e-7):
    total = 0.0
    for pv, tv in zip(p.ravel(), t.ravel()):
        pv = min(max(float(pv), eps), 1 - eps)
        total -= tv * math.log(pv) + (1 - tv) * math.log(1 - pv)
    return total / p.size


def bce_with_logits(z, t):
    total = 0.0
    for zv, tv in zip(z.ravel(), t.ravel()):
        s = 1 / (1 + math.exp(-zv)) if zv >= 0 else math.exp(zv) / (1 + math.exp(zv))
        total -= tv * math.log(s) + (1 - tv) * math.log(1 - s)
    return total / z.size


def mse(pred, target):
    return sum((float(a) - float(b)) ** 2 for a, b in zip(pred.ravel(), target.ravel())) / pred.size
