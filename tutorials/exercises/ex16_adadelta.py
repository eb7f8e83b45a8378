"""Exercise 16: one step of Adadelta (Zeiler 2012), paper 003's optimiser.

    E[g^2]     <- rho E[g^2] + (1 - rho) g^2
    update      = g * sqrt(E[d^2] + eps) / sqrt(E[g^2] + eps)       (the previous E[d^2])
    w          <- w - lr * update
    E[d^2]     <- rho E[d^2] + (1 - rho) update^2

Write the functions that raise NotImplementedError, then check them:

    minvert exercise check tutorials/exercises/ex16_adadelta.py

(or ``python tutorials/exercises/ex16_adadelta.py``). The checker runs them on random inputs,
new every run, and names the usual mistake when something is off.
"""
import numpy as np


def adadelta_step(w, dw, accum_grad, accum_delta, lr=1.0, rho=0.95, eps=1e-7):
    """w, dw, accum_grad = E[g^2], accum_delta = E[d^2]: arrays of one shape
    -> (w_new, accum_grad_new, accum_delta_new), new arrays (the inputs stay as they are).

    Hint: follow the four lines of the module docstring in order; do not change
    the arrays you were given.
    """
    raise NotImplementedError("write adadelta_step")


if __name__ == "__main__":  # `python ex16_adadelta.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
