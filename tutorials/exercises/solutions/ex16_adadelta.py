"""Exercise 16 (solution): one step of Adadelta (Zeiler 2012), paper 003's optimiser.

    E[g^2]     <- rho E[g^2] + (1 - rho) g^2
    update      = g * sqrt(E[d^2] + eps) / sqrt(E[g^2] + eps)       (the previous E[d^2])
    w          <- w - lr * update
    E[d^2]     <- rho E[d^2] + (1 - rho) update^2
"""
import numpy as np


def adadelta_step(w, dw, accum_grad, accum_delta, lr=1.0, rho=0.95, eps=1e-7):
    """w, dw, accum_grad = E[g^2], accum_delta = E[d^2]: arrays of one shape
    -> (w_new, accum_grad_new, accum_delta_new), new arrays (the inputs stay as they are)."""
    accum_grad = rho * accum_grad + (1 - rho) * dw * dw
    update = dw * np.sqrt(accum_delta + eps) / np.sqrt(accum_grad + eps)
    w = w - lr * update
    accum_delta = rho * accum_delta + (1 - rho) * update * update
    return w, accum_grad, accum_delta


if __name__ == "__main__":  # `python solutions/ex16_adadelta.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
