"""Exercise 15 (solution): the function L-BFGS-B minimises in paper 000, for one image.

    loss(x) = cross-entropy(softmax(net(x)), target) + tv_weight * TV(x)

scipy.optimize.minimize(objective, x0.ravel(), args=(...), jac=True, method="L-BFGS-B")
calls it with a flat float64 vector and wants (loss, gradient) back, the gradient flat too.
"""
import numpy as np


def objective(x_flat, shape, net, target, tv_weight):
    """x_flat: (C*H*W,) float64, shape: (1, C, H, W), net: forward(x) -> logits (1, K) and
    backward(dlogits (1, K)) -> dx (1, C, H, W), target: int, tv_weight: float
    -> (loss: float, grad: (C*H*W,) float64)."""
    x = x_flat.reshape(shape)
    logits = net.forward(x)[0]  # (K,)
    z = logits - logits.max()
    p = np.exp(z) / np.exp(z).sum()
    ce = -np.log(p[target])
    dlogits = p.copy()
    dlogits[target] -= 1  # d(-log p[t]) / d logits = p - onehot(t)
    dh = x[:, :, :, 1:] - x[:, :, :, :-1]
    dv = x[:, :, 1:, :] - x[:, :, :-1, :]
    tv = np.abs(dh).sum() + np.abs(dv).sum()
    dtv = np.zeros_like(x)
    dtv[:, :, :, 1:] += np.sign(dh)
    dtv[:, :, :, :-1] -= np.sign(dh)
    dtv[:, :, 1:, :] += np.sign(dv)
    dtv[:, :, :-1, :] -= np.sign(dv)
    grad = net.backward(dlogits[None, :]) + tv_weight * dtv
    return float(ce + tv_weight * tv), grad.ravel().astype(np.float64)


if __name__ == "__main__":  # `python solutions/ex15_objective.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
