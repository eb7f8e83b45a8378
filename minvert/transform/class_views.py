"""Which class score to optimise on a photo larger than a VGG's fc input: two candidates,
the two side by side (the numbers in docs/losses.md come from ``python -m
minvert.transform.class_views``).

- ``dense``: the fully convolutional net, logits averaged over every window (nets/fullyconv.py);
- ``downsampled``: the fixed net on the area-downsampled input_size² view (nets/classview.py).

Each result is judged by both scores and by the windows: p(target) of the dense average,
p(target) of the fixed net on the result shrunk to input_size² (Pillow, as ``prepare_image``
shrinks), the share of windows whose own top class is the target, and the mean pixel change.
"""
import time

import numpy as np

from ..backend import to_numpy
from ..datasets import make_dataset
from ..images import resize_exact
from ..layers.loss import softmax
from ..nets.fullyconv import fully_convolutional
from ..weights import load_model
from .losses import Multipliers
from .objective import Settings
from .optimize import transform


def judge(net, result, target):
    """{p_dense, p_view, windows, ...} of a uint8 result for the fixed-size classifier ``net``."""
    fcn = fully_convolutional(net)
    pre, S = net.preprocessing, net.config["input_size"]
    x = net.xp.asarray(pre.preprocess(result, dtype=net.dtype))
    p_dense = to_numpy(softmax(fcn.predict(x)))[0, target]
    small = net.xp.asarray(pre.preprocess(resize_exact(result, (S, S)), dtype=net.dtype))
    p_view = to_numpy(softmax(net.predict(small)))[0, target]
    _, acts = fcn.forward_taps(x, [fcn.names[-2]], output=False)  # per-window logits
    per_window = to_numpy(acts[fcn.names[-2]])[0]  # (classes, H', W')
    fcn.release()
    return {"p_dense": float(p_dense), "p_view": float(p_view),
            "windows": float((per_window.argmax(axis=0) == target).mean())}


def compare(net, sizes=(128, 192), photos=3, iters=15, seed=0, log=print):
    """Run both class views on the same photos and targets; returns one row per run."""
    images, labels, names = make_dataset(1, size=max(sizes), seed=seed)
    rows = []
    for k in range(photos):
        img = images[k][:, : max(sizes) * 2 // 3]  # non-square: 3:2 portrait
        target = (int(labels[k]) + 3) % len(names)
        for size in sizes:
            for view in ("dense", "downsampled"):
                start = time.perf_counter()
                s = transform(net, img, Settings(target=target, iters=iters, multipliers=Multipliers(tv=1e-4)),
                              size=size, class_view=view, log=lambda *_: None)
                row = {"photo": k, "size": size, "view": view, "target": names[target],
                       "mean_change": s["mean_abs_pixel_change"],
                       "s_per_iter": (time.perf_counter() - start) / iters,
                       **judge(net, s["result"], target)}
                rows.append(row)
                log(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return rows


def summarise(rows):
    """Mean of every measure per (view, size)."""
    keys = ("p_dense", "p_view", "windows", "mean_change", "s_per_iter")
    out = {}
    for row in rows:
        out.setdefault((row["view"], row["size"]), []).append([row[k] for k in keys])
    return {k: dict(zip(keys, np.mean(v, axis=0))) for k, v in out.items()}


if __name__ == "__main__":
    model = load_model("tiny-vgg-textures")
    for (view, size), m in sorted(summarise(compare(model)).items()):
        print(f"{view:<12} {size:>4}  " + "  ".join(f"{k} {v:.3f}" for k, v in m.items()))
