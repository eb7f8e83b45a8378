"""Exercise 4: softmax cross-entropy, the loss of every classifier here.

    p = softmax(logits) row by row;   loss = -1/N sum_n log p[n, y[n]]

The forward pass below is complete; keep it as it is. Write ``softmax_ce_backward`` and check it:

    minvert exercise check tutorials/exercises/ex04_softmax_ce.py

(or ``python tutorials/exercises/ex04_softmax_ce.py``). The checker compares your gradient with a
numerical one on small random inputs and, when they differ, names the usual mistake.
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
    """dloss: a number, the gradient of the final objective w.r.t. loss (1.0 when loss is
    the objective itself) -> dlogits: (N, K).

    Hints:
    * One row first. With z = logits[n] and t = y[n]: log p[t] = z[t] - log(sum_j exp z[j]).
      Differentiate -log p[t] w.r.t. z[k], once for k == t and once for k != t. Both cases
      fit in one expression that uses p and a one-hot vector of the target.
    * The loss is the MEAN over the N rows: every row's gradient is divided by N.
    * Multiply by dloss (the chain rule; the checker passes a dloss that is not 1).
    * A one-hot matrix without a loop: (np.arange(K) == y[:, None]).
    """
    raise NotImplementedError("write softmax_ce_backward")


if __name__ == "__main__":  # `python ex04_softmax_ce.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
