"""Exercise 13 (solution): the Gram-matrix style loss of paper 000 (Gatys et al.), one layer.

    Fm = F reshaped to (C, M), M = H*W;   G = Fm Fm^T  (C, C)
    loss = 1 / (4 C^2 M^2) * sum_{i, j} (G - A)[i, j]^2
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
    """dloss: scalar -> dF: (1, C, H, W)."""
    Fm, D, shape = cache
    C, M = Fm.shape
    dD = dloss * D / (2 * C ** 2 * M ** 2)  # d/dD of sum D^2 / (4 C^2 M^2)
    # G = Fm Fm^T holds Fm twice: d G gives dD Fm + dD^T Fm, and dD is symmetric
    dFm = (dD + dD.T) @ Fm
    return dFm.reshape(shape)


if __name__ == "__main__":  # `python solutions/ex13_style.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
