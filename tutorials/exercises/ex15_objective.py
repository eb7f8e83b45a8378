"""Exercise 15: the function L-BFGS-B minimises in paper 000, for one image.

    loss(x) = cross-entropy(softmax(net(x)), target) + tv_weight * TV(x)

scipy.optimize.minimize(objective, x0.ravel(), args=(...), jac=True, method="L-BFGS-B")
calls it with a flat float64 vector and wants (loss, gradient) back, the gradient flat too.

Write the functions that raise NotImplementedError, then check them:

    minvert exercise check tutorials/exercises/ex15_objective.py

(or ``python tutorials/exercises/ex15_objective.py``). The checker runs them on random inputs,
new every run, and names the usual mistake when something is off.
"""
import numpy as np


def objective(x_flat, shape, net, target, tv_weight):
    """x_flat: (C*H*W,) float64, shape: (1, C, H, W), net: forward(x) -> logits (1, K) and
    backward(dlogits (1, K)) -> dx (1, C, H, W), target: int, tv_weight: float
    -> (loss: float, grad: (C*H*W,) float64).

    Hints: reshape x_flat to shape; the class loss and TV each give a gradient
    w.r.t. x (exercises 4 and 14); scipy wants them summed, flat, float64.
    """
    raise NotImplementedError("write objective")


if __name__ == "__main__":  # `python ex15_objective.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
