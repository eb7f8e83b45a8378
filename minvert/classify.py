"""Classify image files with any network minvert can load."""
import numpy as np

from .backend import to_numpy
from .errors import MinvertError
from .images import describe_fit, load_image
from .layers.loss import softmax
from .weights import load_model


def top_classes(net, logits, k=5):
    """[(index, label, probability)] of the k most probable classes for one row of logits."""
    probs = to_numpy(softmax(logits[None] if logits.ndim == 1 else logits))[0]
    order = np.argsort(-probs)[:k]
    labels = net.labels or [str(i) for i in range(len(probs))]
    return [{"index": int(i), "label": labels[i], "probability": float(probs[i])} for i in order]


def classify_files(paths, model, top=5, device=None):
    """Load ``model`` (name or path) and classify every file; one dict per image."""
    net = load_model(model, device=device) if isinstance(model, str) else model
    if not net.config.get("include_top", True):
        raise MinvertError(f"{model} has no classification layer (include_top is false); "
                           f"use weights with the top to classify")
    if net.preprocessing is None:
        raise MinvertError(f"{model} does not record how to preprocess images")
    images = [load_image(p) for p in paths]  # all files are checked before any work
    results = []
    for path, img in zip(paths, images):
        x = net.xp.asarray(net.preprocessing.prepare(img, dtype=net.dtype))
        logits = net.predict(x)
        if not np.isfinite(to_numpy(logits)).all():
            raise MinvertError(f"{model} gives non-finite outputs for {path}; its weights are "
                               "damaged or far out of range")
        results.append({"image": str(path), "view": describe_fit(img.shape[:2], net.preprocessing),
                        "top": top_classes(net, logits, top)})
    return results
