"""Paper 000's style term: Gram matrices and Gatys' style loss, value and gradient.

Part of the loss terms in :mod:`minvert.transform.losses` (which re-exports these names, so
``losses.gram`` and ``losses.style_loss`` work); the content term in its paper form
(``content_kind="gram"``) uses :func:`gram_difference` from here too. Conventions (raw sums,
tap names, no ReLU mask) are those of losses.py.
"""
from ..errors import ShapeError
from ..layers.base import check_floating

# The taps of the paper's conv1_1 .. conv5_1 blobs (Caffe's in-place ReLUs hold post-ReLU
# values; see losses.paper_layer_to_tap).
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STYLE_WEIGHTS = {name: 0.2 for name in STYLE_LAYERS}


def gram(F):
    """Gram matrix G = Fm Fmᵀ with Fm = F reshaped to (C, M), M = H*W.

    F: (1, C, H, W) or (C, H, W). Returns (C, C), not normalised (the 1/(C²M²) factor
    lives in :func:`style_layer_loss`).
    """
    Fm = as_matrix(F, "style features")
    return Fm @ Fm.T


def style_layer_loss(F, A):
    """Gatys' style loss at one layer: E = 1/(4 C² M²) Σ (G - A)², G = gram(F).

    F: (1, C, H, W) (or (C, H, W)) features of the current image; C channels,
    M = H*W (Gatys writes N for C; minvert keeps N for the batch). A: (C, C) Gram matrix of the ORIGINAL image's features at that layer
    (paper A keeps the image's own texture). Returns (value, dF shaped like F) with
    dF = 1/(C² M²) (G - A) Fm, reshaped (G - A is symmetric, so the two halves of
    d(FmFmᵀ) coincide and the 4 cancels).
    """
    D, Fm = gram_difference(F, A, "style")
    C, M = Fm.shape
    c = 1.0 / (float(C) ** 2 * float(M) ** 2)
    value = (c / 4.0) * (D * D).sum()
    dF = (c * (D @ Fm)).reshape(F.shape).astype(F.dtype, copy=False)
    return value, dF


def style_loss(features, targets, weights=None):
    """Σ_l w_l · style_layer_loss(F_l, A_l) over the layers named in ``weights``.

    features: dict tap name -> F_l (1, C_l, H_l, W_l); targets: dict name -> A_l (C_l, C_l)
    (from :func:`gram` of the original image); weights: dict name -> w_l, default
    :data:`STYLE_WEIGHTS` (relu1_1 ... relu5_1 at 0.2 each). Returns (value, dict name -> dF_l).
    """
    weights = STYLE_WEIGHTS if weights is None else weights
    missing = [n for n in weights if n not in features or n not in targets]
    if missing:
        raise ShapeError(f"style layers {missing} lack features or targets; tap them "
                         f"(have features {sorted(features)}, targets {sorted(targets)})")
    value, grads = 0.0, {}
    for name, w in weights.items():
        v, dF = style_layer_loss(features[name], targets[name])
        value = value + w * v
        grads[name] = w * dF
    return value, grads


def gram_difference(F, A, term):
    """(G - A, Fm) for features F (1, C, H, W) and a target Gram matrix A (C, C)."""
    Fm = as_matrix(F, f"{term} features")
    C = Fm.shape[0]
    if tuple(A.shape) != (C, C):
        raise ShapeError(f"{term} target has shape {tuple(A.shape)}; expected the ({C}, {C}) "
                         f"Gram matrix of the original image's features (use gram(P))")
    return Fm @ Fm.T - A, Fm


def as_matrix(F, what):
    """(1, C, H, W) or (C, H, W) -> (C, H*W) view."""
    check_floating(F, what)
    if F.ndim == 4 and F.shape[0] == 1:
        return F.reshape(F.shape[1], -1)  # (C, H*W)
    if F.ndim == 3:
        return F.reshape(F.shape[0], -1)  # (C, H*W)
    raise ShapeError(f"{what} have shape {tuple(F.shape)}; expected (1, C, H, W) or (C, H, W)")
