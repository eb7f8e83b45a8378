"""Paper 000's optimisers: alter an image until the network classifies it as a target class.

The objective (objective.py, built from losses.py) is evaluated by one forward pass with taps and one backward
pass to the pixels through the frozen network::

    total = class + a*content + b*style + c*TV + d*colour

and minimised over the pixels by scipy's L-BFGS-B with per-channel box bounds that keep a
valid 0..255 image in the network's input space, or by gradient steps (``--optimizer gd``,
``normalized`` or ``adam``, :func:`_gradient_steps`). With jitter the objective moves at every
step (a random shift of the image), which L-BFGS cannot handle, so jitter takes gradient
steps: plain gradient descent by default, as the paper did.

At the start and the end every term's scale is reported (:func:`objective.report_terms`).

Masks (white = may change) multiply the gradient, as the paper does; pixels where the mask
is 0 are also fixed by their bounds (low = high = original), so they come out
bit-identical to the input.

Host/device boundary: scipy works on float64 NumPy vectors. :func:`_to_host` and
:func:`_to_net` are the only places that convert, so the rest runs unchanged on CuPy.
"""
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ..backend import get_array_module, to_numpy
from ..errors import MinvertError
from ..nets.classview import DownsampledClassVGG
from ..nets.fullyconv import fully_convolutional, has_fc_top
from . import losses
from .objective import Objective, default_layers, report_terms

_STOP = "stop"
CLASS_VIEWS = {"dense": "averaged over every window (fully convolutional)",
               "downsampled": "of its area-downsampled view at the net's input size"}


def _to_host(total, values, logits, grad, grad_to_host):
    """The one place where an evaluation's device arrays come to the host, in ONE transfer
    (on CuPy each separate float() or .get() waits for the GPU): the total, each term, the
    logits and the gradient (or, when it stays on the device, one number that is NaN if any
    of it is not finite), packed into one float64 vector (exact for float32 values).
    Returns (total, {term: value}, logits in their dtype, grad as scipy's float64 vector or
    None); raises _NonFinite when anything is NaN or infinite."""
    xp = get_array_module(logits)
    parts = [xp.asarray(total, dtype=np.float64).reshape(1),
             *(xp.asarray(v, dtype=np.float64).reshape(1) for v in values.values()),
             logits.astype(np.float64).ravel()]
    if grad_to_host:
        parts.append(grad.astype(np.float64).ravel())
    else:
        parts.append(xp.where(xp.isfinite(grad).all(), 0.0, np.nan).reshape(1))
    host = to_numpy(xp.concatenate(parts))
    if not np.isfinite(host).all():
        raise _NonFinite()
    k, n = len(values) + 1, logits.size
    terms = {name: float(v) for name, v in zip(values, host[1:k])}
    host_logits = host[k:k + n].astype(logits.dtype).reshape(logits.shape)
    return float(host[0]), terms, host_logits, (host[k + n:] if grad_to_host else None)


def _to_net(v, like):
    """scipy's float64 vector -> an array shaped, typed and placed like ``like``."""
    xp = get_array_module(like)
    return xp.asarray(v.reshape(like.shape), dtype=like.dtype)


def probabilities(logits):
    from ..layers.loss import softmax
    return to_numpy(softmax(logits))[0]


def top5(net, probs):
    labels = net.labels or [str(i) for i in range(len(probs))]
    return [[labels[i], float(probs[i])] for i in np.argsort(-probs)[:5]]


class _NonFinite(Exception):
    pass


def prepare_image(net, img, size=None, log=print):
    """uint8 (H, W, 3) -> uint8 (h, w, 3) at a size the network takes, the aspect ratio kept.

    A VGG with its fc layers takes exactly its input size (S x S): a non-square image is
    centre-cropped to its central square first, and that is said. Other classifiers (ResNets
    pool globally) take any size: ``size`` (default: the net's input size) is the long side.
    """
    from ..images import center_crop, resize_exact
    pre = net.preprocessing
    size = size or pre.input_size
    smallest = 2 ** len(net.config["widths"]) if net.config.get("arch") == "vgg" else 32
    smallest = getattr(net, "min_side", smallest)  # a fully convolutional VGG: its fc6 window
    if size < smallest:
        raise MinvertError(f"--size {size} is below the {smallest}x{smallest} this network allows")
    H, W = img.shape[:2]
    if has_fc_top(net):
        if size != pre.input_size:
            raise MinvertError(f"this network's fc layers need {pre.input_size}x{pre.input_size} input; "
                               f"drop --size or use {pre.input_size}")
        if H != W:
            side = min(H, W)
            img = center_crop(img, side)
            log(f"the image is {W}x{H}; this network's fc layers take {size}x{size}: using its central "
                f"{side}x{side} square (crop the photo yourself to choose another)")
        if min(H, W) < smallest:  # any photo fits an fc net; a tiny one only as big blocks
            log(f"the image is {W}x{H}, below the {smallest}x{smallest} this network sees detail at: "
                f"enlarged to {size}x{size}")
        shape = (size, size)
    else:
        if min(H, W) < smallest:
            raise MinvertError(f"the image is {W}x{H}; this network needs at least "
                               f"{smallest}x{smallest} pixels")
        scale = size / max(H, W)
        shape = (max(1, round(H * scale)), max(1, round(W * scale)))
    if min(shape) < smallest:
        raise MinvertError(f"the image would be {shape[1]}x{shape[0]}; this network needs at least "
                           f"{smallest}x{smallest} pixels (use a larger --size or a less elongated image)")
    return resize_exact(img, shape) if img.shape[:2] != shape else img


def transform(net, img, settings, mask=None, out_dir=None, log=print, force=False, size=None,
              start_image=None, class_view="dense"):
    """Run paper 000's optimisation. img: uint8 (H, W, 3) RGB; mask: float (H', W') in [0, 1]
    (white = may change) or None; start_image: uint8 (H', W', 3) to start from instead of
    settings.init (a previous result: resumes a run), fitted like img. class_view: how a VGG with
    fc layers scores a photo at ``size`` ("dense": fully convolutional, "downsampled": its area
    view at the input size; docs/losses.md). Writes the outputs into
    ``out_dir`` when given. Returns the summary dict (also written as summary.json);
    summary["result"] is the image.
    """
    from ..images import resize_exact
    s = replace(settings)  # a copy: gd records the lr it calibrates in it
    if net.labels is None or not net.config.get("include_top", True):
        raise MinvertError("transform needs a classifier (a network with its fc layers and labels)")
    if not 0 <= s.target < net.config["num_classes"]:
        raise MinvertError(f"target class {s.target} is outside 0..{net.config['num_classes'] - 1}")
    if size is not None and has_fc_top(net):  # issue 26: the whole photo at its own resolution
        if class_view not in CLASS_VIEWS:
            raise MinvertError(f"unknown class view {class_view!r}; use {' or '.join(CLASS_VIEWS)}")
        net = fully_convolutional(net) if class_view == "dense" else DownsampledClassVGG(net)
        log(f"--size with a VGG's fc layers: the whole photo; the class score {CLASS_VIEWS[class_view]}")
    img = prepare_image(net, img, size, log=log)
    shape = img.shape[:2]  # (h, w)
    if start_image is not None:
        start_image = prepare_image(net, start_image, size, log=lambda *_: None)
        if start_image.shape[:2] != shape:
            start_image = resize_exact(start_image, shape)
    default_layers(net, s)  # a bad --content-layer/--style-layers fails before anything is written
    out = _prepare_out(out_dir, force)  # only once the input is known to be good
    net.freeze()
    pre, xp, dtype = net.preprocessing, net.xp, net.dtype
    x_orig = xp.asarray(pre.preprocess(img, dtype=dtype))  # (1, 3, h, w)
    rng = np.random.default_rng(s.seed)
    mask_arr = None
    if mask is not None:
        mask_arr = np.clip(resize_exact(np.asarray(mask, np.float64), shape), 0, 1)
        mask_net = xp.asarray(mask_arr[None, None].astype(dtype))
    if start_image is not None:
        x = xp.asarray(pre.preprocess(start_image, dtype=dtype))
    else:
        x = _initial(x_orig, s, rng, pre, xp, dtype, shape)
    low, high = (v.reshape(1, 3, 1, 1) for v in pre.pixel_bounds())
    low = np.broadcast_to(low, x.shape).astype(np.float64)
    high = np.broadcast_to(high, x.shape).astype(np.float64)
    if mask_arr is not None:  # fixed pixels: bounds pinned to the original values
        frozen = np.broadcast_to(mask_arr[None, None] == 0, x.shape)
        x0_host = to_numpy(x_orig).astype(np.float64)
        low, high = np.where(frozen, x0_host, low), np.where(frozen, x0_host, high)
        x = xp.asarray(np.where(frozen, x0_host, to_numpy(x)).astype(dtype))
    x = xp.asarray(np.clip(to_numpy(x).astype(np.float64), low, high).astype(dtype))  # start inside the bounds

    objective = Objective(net, x_orig, s, mask=mask_net if mask_arr is not None else None)
    label = net.labels[s.target]
    p_before = probabilities(net.predict(x_orig))
    how = ("L-BFGS-B" if s.optimizer == "lbfgs" else
           f"{s.optimizer} steps, lr {'from the first step' if s.lr is None else format(s.lr, 'g')} px")
    log(f"target {label!r} (class {s.target}): p = {p_before[s.target]:.4f} before; "
        f"{'jitter ' + str(s.jitter) + ' px, ' if s.jitter else ''}{how}, {s.iters} iterations, "
        f"{shape[1]}x{shape[0]} px, terms: {', '.join(s.multipliers.active())}")
    start_terms = report_terms(objective, x, log, "at iteration 0")
    state = {"best": to_numpy(x).copy(), "iteration": 0, "records": [], "stopped": None}
    start = time.perf_counter()
    probs = probabilities(net.predict(x))
    first = {"iteration": 0, "total": sum(r["weighted"] for r in start_terms.values()),
             **{k: r["value"] for k, r in start_terms.items()},
             "target_probability": float(probs[s.target]), "top5": top5(net, probs), "seconds": 0.0,
             "terms": start_terms}  # the starting point, like every iteration, plus each term's scale
    if out is not None:
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(first) + "\n")

    def record(values, total, logits, x_now):
        probs = probabilities(logits)
        state["iteration"] += 1
        rec = {"iteration": state["iteration"], "total": total, **values,
               "target_probability": float(probs[s.target]), "top5": top5(net, probs),
               "seconds": round(time.perf_counter() - start, 3)}
        state["records"].append(rec)
        if rec["iteration"] % max(s.print_every, 1) == 0 or rec["iteration"] in (1, s.iters):
            terms = "  ".join(f"{k} {v:.4g}" for k, v in values.items())
            log(f"iter {rec['iteration']:>4}/{s.iters}  total {total:.4g}  {terms}  "
                f"p({label}) {rec['target_probability']:.4f}  {rec['seconds']:.1f}s")
        if out is not None:
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            if s.snapshot_every and rec["iteration"] % s.snapshot_every == 0:
                _save(out / f"snapshot_{rec['iteration']:04d}.png", _image(pre, x_now, img, mask_arr))

    try:
        if s.optimizer == "lbfgs":
            _lbfgs(objective, x, s, low, high, record, state)
        else:
            _gradient_steps(objective, x, s, rng, low, high, mask_arr, record, state, log)
    except _NonFinite:
        state["stopped"] = (f"the loss became NaN/inf at iteration {state['iteration'] + 1}; "
                            f"kept the last good image")
        log(f"warning: {state['stopped']}")
    except KeyboardInterrupt:
        state["stopped"] = f"interrupted at iteration {state['iteration']}; kept the last good image"
        log(f"\n{state['stopped']}")

    seconds = time.perf_counter() - start
    x_best = _to_net(state["best"], x)
    end_terms = report_terms(objective, x_best, log, "at the last iteration", start_terms)
    result = _image(pre, x_best, img, mask_arr)
    p_after = probabilities(net.predict(xp.asarray(pre.preprocess(result, dtype=dtype))))
    tv = lambda im: float(losses.tv_loss(im.astype(np.float64).transpose(2, 0, 1)[None])[0])
    summary = {
        "target": {"index": s.target, "label": label},
        "probability_before": float(p_before[s.target]), "probability_after": float(p_after[s.target]),
        "top5_before": top5(net, p_before), "top5_after": top5(net, p_after),
        "mean_abs_pixel_change": float(np.abs(result.astype(np.float64) - img).mean()),
        "tv_ratio": tv(result) / max(tv(img), 1e-12),
        "terms_at_start": start_terms, "terms_at_end": end_terms,
        "iterations": state["iteration"], "seconds": round(seconds, 3),
        "seconds_per_iteration": round(seconds / max(state["iteration"], 1), 4),
        "stopped_early": state["stopped"],
        "settings": {**asdict(s), "multipliers": asdict(s.multipliers), "size": [shape[0], shape[1]],
                     "mask": mask is not None},
    }
    log(f"p({label}) {summary['probability_before']:.4f} -> {summary['probability_after']:.4f}; "
        f"mean |change| {summary['mean_abs_pixel_change']:.2f}/255; TV ratio {summary['tv_ratio']:.2f}; "
        f"{seconds:.1f}s ({summary['seconds_per_iteration']:.2f}s/iteration)")
    if out is not None:
        _write_outputs(out, img, result, summary, label)
        log(f"wrote {out}/result.png, panel.png, summary.json, log.jsonl")
    summary["result"] = result
    return summary


def _prepare_out(out_dir, force):
    if out_dir is None:
        return None
    out = Path(out_dir)
    taken = [n for n in ("result.png", "panel.png", "summary.json", "log.jsonl") if (out / n).exists()]
    if taken and not force:
        raise MinvertError(f"{out} already holds a transform ({taken[0]}); choose another --out or pass --force")
    out.mkdir(parents=True, exist_ok=True)
    for old in [out / "log.jsonl", *out.glob("snapshot_*.png")]:
        old.unlink(missing_ok=True)  # --force: start the log afresh
    return out


def _initial(x_orig, s, rng, pre, xp, dtype, shape):
    if s.init == "image":
        return x_orig.copy()
    noise = xp.asarray(pre.preprocess(rng.uniform(0, 255, (*shape, 3)), dtype=dtype))
    if s.init == "noise":
        return noise
    if s.init == "mix":
        return ((1 - s.mix) * x_orig + s.mix * noise).astype(dtype)
    raise MinvertError(f"unknown --init {s.init!r}; use image, noise or mix")


def _image(pre, x, original, mask_arr):
    """Network-space x -> uint8 image; pixels outside the mask are the original's exactly."""
    img = pre.deprocess(x)[0]
    if mask_arr is not None:
        img = np.where((mask_arr == 0)[:, :, None], original, img)
    return img


def _evaluate(objective, x, grad_to_host, **kw):
    """One objective evaluation with one device->host transfer (see :func:`_to_host`).
    Returns (total, values, host logits, host float64 gradient vector or None, device gradient)."""
    total, values, logits, dx = objective.evaluate(x, **kw)
    return (*_to_host(total, values, logits, dx, grad_to_host), dx)


def _lbfgs(objective, x, s, low, high, record, state):
    from scipy.optimize import Bounds, minimize
    last = {}

    def fun(v):
        total, values, logits, grad, _ = _evaluate(objective, _to_net(v, x), grad_to_host=True)
        last.update(v=v.copy(), values=values, total=total, logits=logits)
        return total, grad

    def callback(xk):
        if not np.array_equal(xk, last["v"]):  # the line search ended elsewhere: re-evaluate there
            fun(xk)
        state["best"] = xk.reshape(x.shape).copy()
        record(last["values"], last["total"], last["logits"], _to_net(xk, x))

    v0 = to_numpy(x).astype(np.float64).ravel()
    minimize(fun, v0, jac=True, method="L-BFGS-B", callback=callback,
             bounds=Bounds(low.ravel(), high.ravel()),
             options={"maxcor": s.history, "maxiter": s.iters})


def _gradient_steps(objective, x, s, rng, low, high, mask_arr, record, state, log):
    """Gradient steps on the pixels, with or without jitter (a random roll of the image before
    each forward pass, up to s.jitter pixels each way, drawn from ``rng``).

    One 0..255 level is ``pixel`` input units per channel (1 for Caffe's VGG). The step:

    * ``gd`` (the paper's "simple gradient descent"): plain descent on the 0..255 image,
      p -= lr * dL/dp, i.e. x -= lr * pixel² * g in input units; lr is fixed, in pixel units.
      Without an lr (the paper gives none) it is set once, from the first gradient, so that
      the first step moves the free pixels GD_FIRST_STEP levels on average; then it stays.
    * ``normalized`` (deepdream): x -= lr * pixel * g / mean|g|, the mean over the pixels the
      mask lets change; the mean step is lr levels whatever the gradient's scale.
    * ``adam``: Adam with learning rate lr levels.
    """
    from ..optim import Adam
    from .objective import GD_FIRST_STEP
    xp = get_array_module(x)
    low_d, high_d = xp.asarray(low.astype(x.dtype)), xp.asarray(high.astype(x.dtype))
    pixel = (high - low).max(axis=(0, 2, 3), keepdims=True) / 255.0  # (1, C, 1, 1) input units per level
    free = x.size if mask_arr is None else int((mask_arr > 0).sum()) * x.shape[1]
    adam = Adam(lr=s.lr * float(pixel.mean())) if s.optimizer == "adam" else None
    for i in range(s.iters):
        shift = (tuple(int(v) for v in rng.integers(-s.jitter, s.jitter + 1, size=2))
                 if s.jitter else (0, 0))
        total, values, logits, _, g = _evaluate(objective, x, grad_to_host=False, shift=shift)
        if i == 0 and s.optimizer == "gd":
            per_lr = float(xp.abs(g * xp.asarray(pixel.astype(x.dtype))).sum()) / max(free, 1)  # levels moved at lr 1
            if s.lr is None:
                s.lr = GD_FIRST_STEP / max(per_lr, 1e-30)
                log(f"gd: lr {s.lr:.3g} (fixed from here) makes the first step move the free pixels "
                    f"{GD_FIRST_STEP:g} levels of 255 on average; --lr sets it")
            else:
                log(f"gd: the first step moves the free pixels {s.lr * per_lr:.3g} levels of 255 on average")
        if i == 0:
            step = xp.asarray((s.lr * (pixel ** 2 if s.optimizer == "gd" else pixel)).astype(x.dtype))
        if adam is not None:
            adam.step([("x", x, g)])
        elif s.optimizer == "gd":
            x -= step * g
        else:
            x -= step * g / (xp.abs(g).sum() / max(free, 1) + 1e-12)
        xp.clip(x, low_d, high_d, out=x)
        state["best"] = to_numpy(x).copy()
        record(values, total, logits, x)


def _save(path, img):
    from ..images import save_image
    save_image(path, img)


def _write_outputs(out, original, result, summary, label):
    from ..plots import amplified_difference, panel
    diff, gain = amplified_difference(result, original)
    _save(out / "result.png", result)
    _save(out / "panel.png", panel(
        [original, result, diff],
        [f"original\np({label}) = {summary['probability_before']:.3f}",
         f"result\np({label}) = {summary['probability_after']:.3f}",
         f"|difference| x{gain:.1f}\nmean {summary['mean_abs_pixel_change']:.1f}/255"]))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
