"""Exercise 11 (solution): assemble a small network from minvert's layers and make it
memorise a tiny data set: forward through the layers, the loss, backward in reverse order,
one SGD step on every parameter.

    Dense(D, 32) -> ReLU -> Dense(32, K) -> softmax cross-entropy
"""
import numpy as np

from minvert.layers import Dense, ReLU, softmax_cross_entropy


def overfit(x, y, steps=300, lr=0.5, seed=0):
    """x: (N, D) float64, y: (N,) int in [0, K) -> list of `steps` losses (floats), one per
    step, measured before that step's update."""
    rng = np.random.default_rng(seed)
    K = int(y.max()) + 1
    layers = [Dense(x.shape[1], 32, rng=rng, dtype=np.float64), ReLU(),
              Dense(32, K, rng=rng, dtype=np.float64)]
    losses = []
    for _ in range(steps):
        out = x
        for layer in layers:
            out = layer.forward(out)
        loss, dout = softmax_cross_entropy(out, y)
        losses.append(float(loss))
        for layer in reversed(layers):
            dout = layer.backward(dout)
        for layer in layers:
            for k, p in layer.params.items():
                p -= lr * layer.grads[k]  # in place: the layer keeps the same array
    return losses


if __name__ == "__main__":  # `python solutions/ex11_overfit.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
