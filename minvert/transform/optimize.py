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
import time
from dataclasses import asdict, replace

import numpy as np

from ..backend import get_array_module, to_numpy
from ..errors import MinvertError
from ..images import resize_exact
from ..layers.loss import softmax
from ..optim import Adam
from ..text import escape_text
from . import losses
from .checks import check_run, plural
from .inputs import fit_inputs, network_at_size, prepare_image, start_point
from .kept import kept_note
from .objective import GD_FIRST_STEP, Objective, default_layers, report_terms
from .outputs import RunFolder, result_image


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
    """scipy's float64 vector (or a device copy of x) -> an array placed like ``like``."""
    xp = get_array_module(like)
    return xp.asarray(v.reshape(like.shape), dtype=like.dtype)


def probabilities(logits):
    return to_numpy(softmax(logits))[0]


def top5(net, probs):
    labels = net.labels or [str(i) for i in range(len(probs))]
    return [[labels[i], float(probs[i])] for i in np.argsort(-probs)[:5]]


class _NonFinite(Exception):
    pass


def transform(net, img, settings, mask=None, out_dir=None, log=print, force=False, size=None,
              start_image=None, class_view="dense"):
    """Run paper 000's optimisation. img: uint8 (H, W, 3) RGB; mask: float (H', W') in [0, 1]
    (white = may change; drawn at another size it is stretched over the image) or None;
    start_image: uint8 (H', W', 3) to start from instead of settings.init (a previous result:
    resumes a run). Image and mask go through the same crop and resize (:func:`fit_inputs`).
    class_view: how a VGG with fc layers scores a photo at ``size`` ("dense": fully
    convolutional, "downsampled": its area view at the input size; docs/losses.md).
    Writes the outputs into ``out_dir`` (a folder or an image path, outputs.py) when given.
    Returns the summary dict (also written as summary.json); summary["result"] is the image.
    Ctrl-C keeps the last good image: summary["interrupted"] is then True.
    """
    s = replace(settings)  # a copy: gd records the lr it calibrates in it
    if net.labels is None or not net.config.get("include_top", True):
        raise MinvertError("transform needs a classifier (a network with its fc layers and labels)")
    if not 0 <= s.target < net.config["num_classes"]:
        raise MinvertError(f"target class {s.target} is outside 0..{net.config['num_classes'] - 1}")
    if start_image is not None and s.init != "image":
        raise MinvertError(f"a start image and init {s.init!r} contradict each other: give one of them")
    net = network_at_size(net, size, class_view, log)
    img, mask_arr = fit_inputs(net, img, mask, size, log=log)
    if start_image is not None:
        start_image = prepare_image(net, start_image, size, log=lambda *_: None)
        if start_image.shape[:2] != img.shape[:2]:
            start_image = resize_exact(start_image, img.shape[:2])
    check_run(s, img.shape[:2], mask_arr, log)
    default_layers(net, s)  # a bad --content-layer/--style-layers fails before anything is written
    run = RunFolder(out_dir, force)  # only once the input is known to be good
    try:
        return _run(net, img, s, mask_arr, start_image, run, log)
    except BaseException:
        run.abort()  # the earlier run in out_dir stays whole
        raise


def _run(net, img, s, mask_arr, start_image, run, log):
    net.freeze()
    rng = np.random.default_rng(s.seed)
    x_orig, x, low, high, mask_arr = start_point(net, img, s, mask_arr, start_image, rng)
    objective = Objective(net, x_orig, s, mask=None if mask_arr is None else
                          net.xp.asarray(mask_arr[None, None].astype(net.dtype)))
    p_before = probabilities(net.predict(x_orig))
    _say_plan(net, s, p_before, img.shape[:2], log)
    start_terms = report_terms(objective, x, log, "at iteration 0")
    image_of = lambda x_now: result_image(net.preprocessing, x_now, img, mask_arr, s.original_colors)
    record = Recorder(net, s, run, log, image_of)
    record.first(x, start_terms)
    state = record.state
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
        state["interrupted"] = True
        log(f"\n{state['stopped']}")
    seconds = time.perf_counter() - record.start
    x_best = _to_net(state["best"], x)
    end_terms = report_terms(objective, x_best, log, "at the last iteration", start_terms)
    result = image_of(x_best)
    summary = _summary(net, s, img, result, p_before, (start_terms, end_terms), state, seconds,
                       mask_arr is not None)
    summary["probability_last_iterate"] = float(probabilities(net.predict(x_best))[s.target])
    summary["kept"] = kept_note(s, summary, net.labels[s.target])
    log(f"p({escape_text(net.labels[s.target])}) {summary['probability_before']:.4f} -> "
        f"{summary['probability_after']:.4f}; mean |change| {summary['mean_abs_pixel_change']:.2f}/255; "
        f"TV ratio {summary['tv_ratio']:.2f}; {seconds:.1f}s ({summary['seconds_per_iteration']:.2f}s/iteration)")
    summary["interrupted"] = state.get("interrupted", False)
    log(summary["kept"])
    run.write(img, result, summary, net.labels[s.target], log)
    summary["result"] = result
    return summary


def _say_plan(net, s, p_before, shape, log):
    how = ("L-BFGS-B" if s.optimizer == "lbfgs" else
           f"{s.optimizer} steps, lr {'from the first step' if s.lr is None else format(s.lr, 'g')} px")
    log(f"target {net.labels[s.target]!r} (class {s.target}): p = {p_before[s.target]:.4f} before; "
        f"{'jitter ' + str(s.jitter) + ' px, ' if s.jitter else ''}{how}, {plural(s.iters, 'iteration')}, "
        f"{shape[1]}x{shape[0]} px, terms: {', '.join(s.multipliers.active())}")


class Recorder:
    """Called after every iteration: keeps the record, prints it every ``print_every``
    iterations, appends it to the run's log and saves a snapshot every ``snapshot_every``.
    ``state`` is shared with the optimisers: the best image so far (on the device for gradient
    steps), the iteration count, the records, and why the run stopped early (None if not)."""

    def __init__(self, net, s, run, log, image_of):
        self.net, self.s, self.run, self.log, self.image_of = net, s, run, log, image_of
        self.label = net.labels[s.target]
        self.state = {"best": None, "iteration": 0, "records": [], "stopped": None}
        self.start = time.perf_counter()

    def first(self, x, start_terms):
        """The starting point, like every iteration, plus each term's scale."""
        self.state["best"] = to_numpy(x).copy()
        probs = probabilities(self.net.predict(x))
        self.run.append_log({"iteration": 0, "total": sum(r["weighted"] for r in start_terms.values()),
                             **{k: r["value"] for k, r in start_terms.items()},
                             "target_probability": float(probs[self.s.target]),
                             "top5": top5(self.net, probs), "seconds": 0.0, "terms": start_terms})

    def __call__(self, values, total, logits, x_now):
        s, state = self.s, self.state
        probs = probabilities(logits)
        state["iteration"] += 1
        rec = {"iteration": state["iteration"], "total": total, **values,
               "target_probability": float(probs[s.target]), "top5": top5(self.net, probs),
               "seconds": round(time.perf_counter() - self.start, 3)}
        state["records"].append(rec)
        if rec["iteration"] % max(s.print_every, 1) == 0 or rec["iteration"] in (1, s.iters):
            terms = "  ".join(f"{k} {v:.4g}" for k, v in values.items())
            self.log(f"iter {rec['iteration']:>4}/{s.iters}  total {total:.4g}  {terms}  "
                     f"p({self.label}) {rec['target_probability']:.4f}  {rec['seconds']:.1f}s")
        self.run.append_log(rec)
        if s.snapshot_every and rec["iteration"] % s.snapshot_every == 0:
            self.run.snapshot(rec["iteration"], lambda: self.image_of(x_now))


def _summary(net, s, img, result, p_before, terms, state, seconds, masked):
    """The run's summary (summary.json)."""
    xp, pre = net.xp, net.preprocessing
    p_after = probabilities(net.predict(xp.asarray(pre.preprocess(result, dtype=net.dtype))))
    tv = lambda im: float(losses.tv_loss(im.astype(np.float64).transpose(2, 0, 1)[None])[0])
    return {
        "target": {"index": s.target, "label": net.labels[s.target]},
        "probability_before": float(p_before[s.target]), "probability_after": float(p_after[s.target]),
        "top5_before": top5(net, p_before), "top5_after": top5(net, p_after),
        "mean_abs_pixel_change": float(np.abs(result.astype(np.float64) - img).mean()),
        "tv_ratio": tv(result) / max(tv(img), 1e-12),
        "terms_at_start": terms[0], "terms_at_end": terms[1],
        "iterations": state["iteration"], "seconds": round(seconds, 3),
        "seconds_per_iteration": round(seconds / max(state["iteration"], 1), 4),
        "stopped_early": state["stopped"],
        "settings": {**asdict(s), "multipliers": asdict(s.multipliers),
                     "size": [img.shape[0], img.shape[1]], "mask": masked},
    }


def _evaluate(objective, x, grad_to_host, **kw):
    """One objective evaluation with one device->host transfer (see :func:`_to_host`).
    Returns (total, values, host logits, host float64 gradient vector or None, device gradient)."""
    total, values, logits, dx = objective.evaluate(x, **kw)
    return (*_to_host(total, values, logits, dx, grad_to_host), dx)


def _lbfgs(objective, x, s, low, high, record, state):
    from scipy.optimize import Bounds, minimize  # here: `minvert --help` must not load scipy
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
        state["best"] = x.copy()  # on x's device: a step waits for the device once, in _evaluate
        record(values, total, logits, x)
