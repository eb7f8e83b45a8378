"""Exercise 13: the Gram-matrix style loss of paper 000 (Gatys et al.), one layer.

    Fm = F reshaped to (C, M), M = H*W;   G = Fm Fm^T  (C, C)
    loss = 1 / (4 C^2 M^2) * sum_{i, j} (G - A)[i, j]^2

The forward pass below is complete; keep it as it is. Write ``style_backward`` and check it:

    minvert exercise check tutorials/exercises/ex13_style.py

(or ``python tutorials/exercises/ex13_style.py``). The checker compares your gradient with a
numerical one on small random inputs and, when they differ, names the usual mistake.
"""
import numpy as np


def style_forward(F, A):
    """F: (1, C, H, W) features of the image, A: (C, C) Gram matrix of the target's
    features -> (loss, cache); loss is a scalar."""
    _, C, H, W = F.shape
    M = H * W
    Fm = F.reshape(C, M)  # one row per channel
    D = Fm @ Fm.T - A  # (C, C), G - A
    loss = (D ** 2).sum() / (4 * C ** 2 * M ** 2)
    cache = (Fm, D, F.shape)  # the loss is a function of D, and D of Fm
    return loss, cache


def style_backward(dloss, cache):
    """dloss: a number -> dF: (1, C, H, W), the shape of F.

    Hints:
    * Go backwards one step at a time: loss -> D = G - A -> G = Fm Fm^T -> Fm -> F.
    * G = Fm Fm^T uses Fm twice, and each factor contributes a term: write
      G[i, j] = sum_m Fm[i, m] Fm[j, m] and differentiate w.r.t. Fm[a, m].
    * D is symmetric (G and A are), which halves the work.
    * At the end reshape the (C, M) gradient to F's shape.
    """
    raise NotImplementedError("write style_backward")


if __name__ == "__main__":  # `python ex13_style.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
