"""Exercise 4 (solution): softmax cross-entropy, the loss of every classifier here.

    p = softmax(logits) row by row;   loss = -1/N sum_n log p[n, y[n]]
"""
import numpy as np


def softmax_ce_forward(logits, y):
    """logits: (N, K) class scores, y: (N,) int class indices in [0, K) -> (loss, cache).

    loss is a scalar, the mean over the N rows of -log p[n, y[n]].
    """
    N = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)  # same softmax, but exp cannot overflow
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # (N, K) log-probabilities
    loss = -logp[np.arange(N), y].mean()
    cache = (np.exp(logp), y)  # the probabilities and the targets are all backward needs
    return loss, cache


def softmax_ce_backward(dloss, cache):
    """dloss: scalar, d objective / d loss -> dlogits: (N, K)."""
    p, y = cache
    N, K = p.shape
    onehot = (np.arange(K) == y[:, None]).astype(p.dtype)  # (N, K), 1 at each row's target
    # d(-log p[y]) / d logits = p - onehot(y) for one row; the mean divides by N
    return dloss * (p - onehot) / N


if __name__ == "__main__":  # `python solutions/ex04_softmax_ce.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
