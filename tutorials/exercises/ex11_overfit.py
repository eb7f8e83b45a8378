"""Exercise 11: assemble a small network from minvert's layers and make it
memorise a tiny data set: forward through the layers, the loss, backward in reverse order,
one SGD step on every parameter.

    Dense(D, 32) -> ReLU -> Dense(32, K) -> softmax cross-entropy

Write the functions that raise NotImplementedError, then check them:

    minvert exercise check tutorials/exercises/ex11_overfit.py

(or ``python tutorials/exercises/ex11_overfit.py``). The checker runs them on random inputs,
new every run, and names the usual mistake when something is off.
"""
import numpy as np

from minvert.layers import Dense, ReLU, softmax_cross_entropy


def overfit(x, y, steps=300, lr=0.5, seed=0):
    """x: (N, D) float64, y: (N,) int in [0, K) -> list of `steps` losses (floats), one per
    step, measured before that step's update.

    Hints: minvert.layers has Dense(in, out, rng=rng, dtype=np.float64), ReLU(),
    softmax_cross_entropy(logits, y) -> (loss, dlogits); a layer's backward(dout) returns dx
    and fills layer.grads; update layer.params in place.

    Build the net from minvert's Dense and ReLU classes: the checker watches their calls and
    recomputes every step from the parameters your forward used (the loss, and p - lr * grad
    for every parameter), so only a net that really trains can pass.
    """
    raise NotImplementedError("write overfit")


if __name__ == "__main__":  # `python ex11_overfit.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
