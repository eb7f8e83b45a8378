"""The loss terms of paper A (image transformation by class inversion), value and gradient.

Every term works on arrays that the network already produced (logits, tapped feature
maps) or on the image itself; none runs the network. objective.py runs VGG-19 once with
taps, calls these functions, and injects the returned gradients at the taps in backward:

    total = class + a*content + b*style + c*TV + d*colour        (:class:`Multipliers`)

All terms are **raw sums**, as in the Caffe code the paper built on (fzliu/style-transfer)
on 0-255 BGR inputs minus the mean, so the paper's multipliers (1e-14 ... 1e-6) apply
literally. Values are 0-d arrays (``float(v)`` to print; on CuPy this syncs), gradients
have the dtype and array module of the input.

Tap names. Caffe's VGG uses in-place ReLUs, so the blob the paper calls ``conv4_2``
holds *post*-ReLU values. fzliu injects ``dF`` into that blob but restarts backward at
the conv layer, skipping the ReLU, so it multiplies by ``[F > 0]`` by hand. In minvert
the tap ``relu4_2`` is the ReLU's output and the injected gradient goes through the
ReLU's own backward, which applies the same mask. So these functions apply **no mask**,
and the defaults below are tap names: ``paper_layer_to_tap("conv4_2") == "relu4_2"``.
(Tapping ``conv4_2`` itself would give pre-ReLU maps: a different loss.)
"""
import re
from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module, to_numpy
from ..errors import ShapeError
from ..layers.base import check_floating
from ..layers.loss import softmax_cross_entropy

COLOR_FRACTION = 0.3  # "only ... pixels for which the difference is greater than 30 percent"


def paper_layer_to_tap(name):
    """Map a Caffe/paper blob name to the minvert tap holding the same values.

    ``convX_Y`` -> ``reluX_Y`` and ``fc6``/``fc7`` -> ``relu6``/``relu7`` (in-place ReLU
    blobs hold post-ReLU values); any other name (``relu4_2``, ``pool5``, ``fc8``) is
    returned unchanged, and the network checks that it exists.
    """
    m = re.fullmatch(r"conv(\d+_\d+)", name) or re.fullmatch(r"fc([67])", name)
    return f"relu{m.group(1)}" if m else name


CONTENT_LAYER = paper_layer_to_tap("conv4_2")  # "relu4_2"
STYLE_LAYERS = tuple(paper_layer_to_tap(f"conv{i}_1") for i in range(1, 6))  # relu1_1..relu5_1
STYLE_WEIGHTS = {name: 0.2 for name in STYLE_LAYERS}


# -- class ------------------------------------------------------------------------------
def class_loss(logits, target):
    """Softmax cross-entropy of the logits to one target class, averaged over the batch.

    logits: (N, K) pre-softmax scores (fc8). target: int class index (or ints (N,)).
    Returns (value, dlogits (N, K)); dlogits = (softmax(logits) - onehot) / N, which
    raises the target logit and lowers every other class ("pushes the others down").
    Same as Caffe's SoftmaxWithLoss; the stable log-softmax lives in
    :func:`minvert.layers.loss.softmax_cross_entropy`, this adds the one-class target.
    """
    check_floating(logits, "logits")
    if logits.ndim != 2:
        raise ShapeError(f"logits have shape {tuple(logits.shape)}; expected 2-D (N, K)")
    N, K = logits.shape
    t = np.broadcast_to(to_numpy(target), (N,))
    if not np.issubdtype(t.dtype, np.integer) or t.min() < 0 or t.max() >= K:
        raise ShapeError(f"target class {target!r} is not an integer in [0, {K}) for {K} logits")
    return softmax_cross_entropy(logits, t.astype(np.int64))  # host labels: no device sync


# -- content ----------------------------------------------------------------------------
CONTENT_KINDS = ("gram", "raw")  # the paper's text; fzliu's code


def content_loss(F, P):
    """½ Σ (F - P)² at one layer: fzliu's content loss on the raw map (``content_kind="raw"``).

    F: (1, C, H, W) features of the current image at the tap (e.g. relu4_2);
    P: same shape, features of the original image. Returns (value, dF = F - P).
    """
    _check_pair(F, P, "content features", "content target")
    d = F - P
    return 0.5 * (d * d).sum(), d


def content_gram_loss(F, A):
    """½ Σ (G - A)² with G = gram(F): the paper's content loss ("the Euclidean distance of the
    Gram matrix ... at the content layer", ``content_kind="gram"``, the default).

    F: (1, C, H, W) (or (C, H, W)) features of the current image at the content tap;
    A: (C, C) Gram matrix of the original image's features there (``gram(P)``). Raw sums,
    no 1/(N²M²): fzliu's content scale with G in place of F, which is what makes the paper's
    content multipliers (1e-14 ... 1e-10) bite. Returns (value, dF shaped like F) with
    dF = 2 (G - A) Fm: d/dFm of ½‖Fm Fmᵀ - A‖² is (D + Dᵀ) Fm and D = G - A is symmetric.
    """
    D, Fm = _gram_difference(F, A, "content")
    dF = (2.0 * (D @ Fm)).reshape(F.shape).astype(F.dtype, copy=False)
    return 0.5 * (D * D).sum(), dF


# -- style ------------------------------------------------------------------------------
def gram(F):
    """Gram matrix G = Fm Fmᵀ with Fm = F reshaped to (C, M), M = H*W.

    F: (1, C, H, W) or (C, H, W). Returns (C, C), not normalised (the 1/(C²M²) factor
    lives in :func:`style_layer_loss`).
    """
    Fm = _as_matrix(F, "style features")
    return Fm @ Fm.T


def style_layer_loss(F, A):
    """Gatys' style loss at one layer: E = 1/(4 C² M²) Σ (G - A)², G = gram(F).

    F: (1, C, H, W) (or (C, H, W)) features of the current image; C channels,
    M = H*W (Gatys writes N for C; minvert keeps N for the batch). A: (C, C) Gram matrix of the ORIGINAL image's features at that layer
    (paper A keeps the image's own texture). Returns (value, dF shaped like F) with
    dF = 1/(C² M²) (G - A) Fm, reshaped (G - A is symmetric, so the two halves of
    d(FmFmᵀ) coincide and the 4 cancels).
    """
    D, Fm = _gram_difference(F, A, "style")
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


# -- total variation --------------------------------------------------------------------
def tv_loss(x, kind="l1"):
    """Total variation of the image over horizontal and vertical neighbours, all channels.

    x: (N, C, H, W). With dh = x[..., :, 1:] - x[..., :, :-1] (N, C, H, W-1) and
    dv = x[..., 1:, :] - x[..., :-1, :] (N, C, H-1, W):

    * ``"l1"`` (the paper): Σ|dh| + Σ|dv|, the 1-D total variation of the image read row
      by row plus read column by column. Unlike a literal flattening, the pairs that
      would wrap from the end of one row (or channel) to the start of the next are not
      counted: they are not neighbours. Subgradient: sign(0) = 0.
    * ``"squared"``: Σ dh² + Σ dv², which equals Mahendran & Vedaldi's TV^β with β = 2
      (their edge-replicating differences add zeros at the border; at β = 2 the square
      root and the power cancel). Smooth everywhere.

    Returns (value, dx (N, C, H, W)).
    """
    check_floating(x, "image")
    if x.ndim != 4:
        raise ShapeError(f"image has shape {tuple(x.shape)}; expected 4-D (N, C, H, W)")
    if kind not in ("l1", "squared"):
        raise ValueError(f"tv kind {kind!r}: use 'l1' or 'squared'")
    xp = get_array_module(x)
    dh = x[..., :, 1:] - x[..., :, :-1]
    dv = x[..., 1:, :] - x[..., :-1, :]
    if kind == "l1":
        value = xp.abs(dh).sum() + xp.abs(dv).sum()
        gh, gv = xp.sign(dh), xp.sign(dv)
    else:
        value = (dh * dh).sum() + (dv * dv).sum()
        gh, gv = 2 * dh, 2 * dv
    dx = xp.zeros_like(x)
    dx[..., :, 1:] += gh  # each difference pulls its right/lower pixel one way
    dx[..., :, :-1] -= gh  # and its left/upper pixel the other
    dx[..., 1:, :] += gv
    dx[..., :-1, :] -= gv
    return value, dx


# -- colour similarity ------------------------------------------------------------------
def color_threshold(low=0.0, high=255.0, fraction=COLOR_FRACTION):
    """The colour threshold in network-input units: fraction * (high - low), per channel.

    low, high: the input values of pixels 0 and 255, floats or (C,) arrays, as given by
    ``Preprocessing.pixel_bounds()``: ``color_threshold(*prep.pixel_bounds())``.
    Caffe/Keras VGG (0-255 minus mean): 0.3 * 255 = 76.5 in every channel; torchvision
    ((img/255 - mean) / std): 0.3 / std_c. Returns a float or a (C,) float64 array.
    """
    t = fraction * (np.asarray(high, dtype=np.float64) - np.asarray(low, dtype=np.float64))
    return float(t) if t.ndim == 0 else t


COLOR_KINDS = ("pixel", "channel", "hinge")


def color_loss(x, x0, threshold, kind="pixel"):
    """Colour similarity: squared difference to the original, only where it is large.

    x, x0: (N, C, H, W) current and original image in network-input space; d = x - x0;
    threshold t: float or (C,) per-channel values, 30 % of each channel's 0..255 range in
    input units (:func:`color_threshold`). "Only ... the pixels for which the difference is
    greater than 30 percent" reads two ways:

    * ``"pixel"`` (default, the presets): a pixel is its RGB triple, so a pixel counts when
      its colour distance exceeds 30 % of the largest possible one (the cube's diagonal):
      r² = mean_c (d_c / t_c)² > 1, i.e. ‖d/range‖₂ > 0.3·√C. Value Σ over those pixels of
      Σ_c d_c², gradient 2 d [r > 1]. One channel alone must move 0.3·√3 = 52 % to count.
    * ``"channel"``: each channel value on its own: Σ d² [|d| > t], gradient 2 d [|d| > t].
      Catches a cast in one channel at 30 %; a pixel can count in one channel and not another.
    * ``"hinge"``: per channel, Σ max(|d| - t, 0)², gradient 2 (|d| - t)₊ sign(d). Continuous
      (kinder to L-BFGS-B line searches) but much smaller near t, so the paper's
      multipliers would mean something else.

    The indicator has zero gradient almost everywhere, so the value jumps where a pixel
    crosses the threshold and the gradient is exact elsewhere. Returns (value, dx (N, C, H, W)).
    """
    _check_pair(x, x0, "image", "original image")
    if kind not in COLOR_KINDS:
        raise ValueError(f"colour kind {kind!r}: use one of {', '.join(COLOR_KINDS)}")
    xp = get_array_module(x)
    t = xp.asarray(threshold, dtype=x.dtype)
    if t.ndim == 1:
        if t.shape[0] != x.shape[1]:
            raise ShapeError(f"{t.shape[0]} colour thresholds for {x.shape[1]} channels")
        t = t.reshape(1, -1, 1, 1)  # (1, C, 1, 1), broadcasts over N, H, W
    d = x - x0
    if kind == "pixel":
        r2 = ((d / t) ** 2).mean(axis=1, keepdims=True)  # (N, 1, H, W) squared relative distance
        g = d * (r2 > 1)
        return (g * g).sum(), 2 * g
    if kind == "channel":
        g = d * (xp.abs(d) > t)
        return (g * g).sum(), 2 * g
    excess = xp.maximum(xp.abs(d) - t, 0)
    return (excess * excess).sum(), 2 * excess * xp.sign(d)


# -- total and presets ------------------------------------------------------------------
@dataclass(frozen=True)
class Multipliers:
    """The paper's (content, style, TV, colour) multipliers; the class loss is always x1.

    Negative values are allowed (the paper uses content -1e-11 to reward change).
    """
    content: float = 0.0
    style: float = 0.0
    tv: float = 0.0
    color: float = 0.0

    def weight(self, term):
        return 1.0 if term == "class" else float(getattr(self, term))

    def active(self):
        """Names of the terms to compute: "class" and every term with a nonzero multiplier."""
        return ("class",) + tuple(n for n in ("content", "style", "tv", "color") if self.weight(n))


def total_loss(terms, multipliers):
    """total = class + content·a + style·b + TV·c + colour·d, and each scaled gradient.

    terms: dict name -> (value, grad) for names in "class", "content", "style", "tv",
    "color"; grad is an array, or a dict of arrays (style: tap name -> dF). Terms whose
    multiplier is 0 may be left out. Returns (total, dict name -> grad x multiplier).
    """
    unknown = set(terms) - {"class", "content", "style", "tv", "color"}
    if unknown:
        raise ValueError(f"unknown loss terms {sorted(unknown)}")
    missing = [n for n in multipliers.active() if n not in terms]
    if missing:
        raise ValueError(f"terms {missing} have a nonzero multiplier but were not computed")
    total, grads = 0.0, {}
    for name, (value, grad) in terms.items():
        m = multipliers.weight(name)
        total = total + m * value
        grads[name] = {k: m * g for k, g in grad.items()} if isinstance(grad, dict) else m * grad
    return total, grads


# -- helpers ----------------------------------------------------------------------------
def _check_pair(a, b, what_a, what_b):
    check_floating(a, what_a)
    if tuple(a.shape) != tuple(b.shape):
        raise ShapeError(f"{what_a} {tuple(a.shape)} and {what_b} {tuple(b.shape)} differ in shape")


def _gram_difference(F, A, term):
    """(G - A, Fm) for features F (1, C, H, W) and a target Gram matrix A (C, C)."""
    Fm = _as_matrix(F, f"{term} features")
    C = Fm.shape[0]
    if tuple(A.shape) != (C, C):
        raise ShapeError(f"{term} target has shape {tuple(A.shape)}; expected the ({C}, {C}) "
                         f"Gram matrix of the original image's features (use gram(P))")
    return Fm @ Fm.T - A, Fm


def _as_matrix(F, what):
    """(1, C, H, W) or (C, H, W) -> (C, H*W) view."""
    check_floating(F, what)
    if F.ndim == 4 and F.shape[0] == 1:
        return F.reshape(F.shape[1], -1)  # (C, H*W)
    if F.ndim == 3:
        return F.reshape(F.shape[0], -1)  # (C, H*W)
    raise ShapeError(f"{what} have shape {tuple(F.shape)}; expected (1, C, H, W) or (C, H, W)")
