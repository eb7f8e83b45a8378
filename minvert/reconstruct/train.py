"""Paper 003, step 2: train the upsampling decoder on a feature cache (see minvert.reconstruct).

    train(cache, out_dir, decoder={"widths": [64, 32, 16]}, epochs=100)

What the paper's code does, and the defaults here: decoder = :mod:`minvert.nets.decoder` (4x4
start, 3x3 'same' convs, LeakyReLU 0.2, nearest 2x upsampling, 2x2 sigmoid output); loss =
per-pixel binary cross-entropy on the sigmoid output, clipped as Keras clips (1e-7), against
targets in [0, 1]; optimiser = hand-coded Adadelta, lr 1, rho 0.95, eps 1e-8 (tf.keras 2.1.2-tf in
TensorFlow 1.5.0; 1e-7 is only its BCE clip; the Adadelta paper uses eps 1e-6); batch 30; held-out set = the first 10 images of the cache.
MSE and Adam are options. A decoder whose output is smaller than the cached targets trains
against the targets box-downsampled (each output pixel = the mean of its block).

Settings that change the trajectory are stored in run.json; ``--resume`` takes them from there
(only ``epochs`` may grow) and continues bit-identically from checkpoint.h5.
"""
import json
import math
from pathlib import Path

import numpy as np

from ..backend import array_module, default_device, get_array_module, to_numpy
from ..errors import FormatError, MinvertError
from .features import (_HEADER_KEYS, _describe_encoder, names_digest, read_cache,
                          targets_at)
from ..weights.project import write_json

PAPER_TEST_SIZE = 10  # the paper's code holds out the first 10 loadable images
DEFAULTS = {"epochs": 100, "batch_size": 30, "loss": "bce", "optimizer": "adadelta", "lr": None,
            "rho": 0.95, "eps": 1e-8, "seed": 0, "split": "paper", "n_train": None}
DEFAULT_LR = {"adadelta": 1.0, "adam": 1e-3}
SAMPLE_EVERY = 10  # epochs between decoder.h5/samples.png while training


def _u8(img):
    return np.rint(np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)


# decoder configuration ----------------------------------------------------------------------
def decoder_param_count(config):
    """Parameters of :func:`build_decoder(config)` without building it (hidden convs + final conv)."""
    c, total, k = config["start"][2], 0, config.get("kernel", 3)
    for width in config["widths"]:
        total += k * k * c * width + width
        c = width
    k, o = config["final_kernel"], config["out_channels"]
    return total + k * k * c * o + o


def default_start(feature_size):
    """The paper's 4x4 map when 16 divides the feature size (2048 -> 4x4x128, 128 -> 4x4x8),
    else 2x2, else 1x1."""
    for h in (4, 2, 1):
        if feature_size % (h * h) == 0:
            return [h, h, feature_size // (h * h)]


def make_decoder_config(feature_size, target_size, widths=None, start=None, **overrides):
    """Decoder config for features of ``feature_size`` and targets of ``target_size``.

    Without ``widths`` the stages are the last n of the paper's (2048 ... 64) with n such that
    the output equals the target size; an output smaller than the targets is allowed (the
    targets are downsampled), a larger one is not.
    """
    from ..nets.decoder import PAPER_CONFIG, decoder_config
    start = list(start or default_start(feature_size))
    if len(start) != 3 or start[0] != start[1]:
        raise MinvertError(f"decoder start {start}: give a square map h,h,c (e.g. 4,4,{feature_size // 16})")
    if widths is None:
        n = math.log2(target_size / start[0])
        if n != int(n) or not 1 <= n <= len(PAPER_CONFIG["widths"]):
            raise MinvertError(f"no paper decoder maps {start[0]}x{start[0]} to {target_size}x{target_size}; "
                               "give --widths (one per 2x upsampling stage)")
        widths = PAPER_CONFIG["widths"][-int(n):]
    config = decoder_config(feature_size=int(feature_size), start=start,
                            widths=[int(w) for w in widths], **overrides)
    out = start[0] * 2 ** len(widths)
    if out > target_size:
        raise MinvertError(f"decoder output {out}x{out} is larger than the cache's {target_size}x"
                           f"{target_size} targets; use fewer --widths or extract with --target-size {out}")
    return json.loads(json.dumps(config))


def make_split(n, split, seed=0, n_train=None):
    """(train rows, held-out rows): 'paper' = first 10 held out; 'fraction:F' = a seeded random
    fraction F held out; 'none' = all train. ``n_train`` keeps the first n_train train rows."""
    if split == "paper":
        if n <= PAPER_TEST_SIZE:
            raise MinvertError(f"split 'paper' holds out the first {PAPER_TEST_SIZE} images but the cache "
                               f"has only {n}; extract more images or use --split none")
        test, train = list(range(PAPER_TEST_SIZE)), list(range(PAPER_TEST_SIZE, n))
    elif split == "none":
        test, train = [], list(range(n))
    elif split.startswith("fraction:"):
        try:
            frac = float(split.split(":", 1)[1])
        except ValueError:
            frac = -1.0
        k = int(round(frac * n))
        if not 0 < frac < 1 or not 0 < k < n:
            raise MinvertError(f"split {split!r}: need fraction:F with 0 < F < 1 leaving both sets non-empty")
        perm = np.random.default_rng([int(seed), 1]).permutation(n)
        test, train = sorted(int(i) for i in perm[:k]), sorted(int(i) for i in perm[k:])
    else:
        raise MinvertError(f"unknown split {split!r}; use paper, none or fraction:0.1")
    if n_train is not None:
        if not 1 <= n_train <= len(train):
            raise MinvertError(f"n_train={n_train} but the split leaves {len(train)} training images")
        train = train[:n_train]
    return train, test


# run folder -----------------------------------------------------------------------------------
def read_run(run_dir):
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise MinvertError(f"{run_dir} holds no reconstruct run (run.json missing); "
                           "train one with `minvert reconstruct train`")
    try:
        with open(path) as f:
            run = json.load(f)
        missing = [k for k in ("decoder", "cache", "split", "settings")
                   if not isinstance(run.get(k), dict)]
        rows = [] if missing else [run["split"].get(k) for k in ("train", "test")]
        if rows and not all(isinstance(r, list) and all(type(i) is int and i >= 0 for i in r)
                            for r in rows):
            missing = ["split rows"]
        if not missing and not isinstance(run["cache"].get("feature_size"), int):
            missing = ["cache feature_size"]
    except (ValueError, TypeError, AttributeError, RecursionError, UnicodeDecodeError):
        missing = ["valid JSON"]
    if missing:
        raise FormatError(f"{path} is damaged ({missing[0]} missing or unreadable); train again "
                          "into a new folder")
    run["decoder"].setdefault("kernel", 3)  # written before the 4x4 option existed
    return run


def check_run_cache(run, cache, run_dir):
    """The cache must hold the features the run was trained on."""
    rc, split = run["cache"], run["split"]
    if cache.feature_size != rc["feature_size"]:
        raise MinvertError(f"{cache.path} holds {cache.feature_size}-d features but the decoder in "
                           f"{run_dir} takes {rc['feature_size']}-d ones; use the cache it was trained "
                           f"on ({rc['path']})")
    if cache.header["model_sha256"] != rc["model_sha256"]:
        raise MinvertError(f"{cache.path} holds features of another encoder than the run in {run_dir} "
                           f"({_describe_encoder(cache.header)}); use {rc['path']}")
    rows = split["train"] + split["test"]
    if (rows and max(rows) >= len(cache)) or names_digest(cache.names, rows) != rc["names_sha256"]:
        raise MinvertError(f"{cache.path} does not hold the images the run in {run_dir} was trained on "
                           f"(names differ); use {rc['path']}")


def load_decoder(run_dir, run, device=None, log=None):
    """The run's decoder.h5; ``log`` gets a note when it is from an unfinished run."""
    from ..weights.project import load
    from .watch import decoder_epoch
    path = Path(run_dir) / "decoder.h5"
    if not path.is_file():
        raise MinvertError(f"{path} does not exist yet: a run saves it every --sample-every epochs, "
                           "on Ctrl-C/SIGTERM and at the end; train longer or resume "
                           "`minvert reconstruct train`")
    net = load(path, device=device)
    if net.config != run["decoder"]:
        raise MinvertError(f"{path} holds another decoder than run.json describes; train again")
    epoch = decoder_epoch(run_dir)
    if log is not None and epoch is not None and epoch[0] < epoch[1]:
        log(f"note: {run_dir} is unfinished; its decoder.h5 is from epoch {epoch[0]} of {epoch[1]}")
    return net


def _arch(config):
    h, w, c = config["start"]
    return f"{h}x{w}x{c} -> widths {config['widths']} -> {h * 2 ** len(config['widths'])}px"


# training -------------------------------------------------------------------------------------
def _new_run(cache, config, given):
    s = {**DEFAULTS, **given}
    if s["loss"] not in ("bce", "mse"):
        raise MinvertError(f"unknown loss {s['loss']!r}; use bce (the paper's) or mse")
    if s["optimizer"] not in DEFAULT_LR:
        raise MinvertError(f"unknown optimizer {s['optimizer']!r}; use adadelta (the paper's) or adam")
    if int(s["epochs"]) < 1 or int(s["batch_size"]) < 1:
        raise MinvertError(f"epochs={s['epochs']}, batch={s['batch_size']}: both must be >= 1")
    if s["lr"] is None:
        s["lr"] = DEFAULT_LR[s["optimizer"]]
    config = config or make_decoder_config(cache.feature_size, cache.target_size)
    train_rows, test_rows = make_split(len(cache), s["split"], s["seed"], s["n_train"])
    out = config["start"][0] * 2 ** len(config["widths"])
    record = {k: cache.header[k] for k in _HEADER_KEYS}
    record.update(path=str(cache.path.resolve()), n_images=len(cache),
                  names_sha256=names_digest(cache.names, train_rows + test_rows))
    return {"decoder": config, "output_size": out, "num_params": decoder_param_count(config),
            "cache": record, "target_downsample": None if out == cache.target_size else "box",
            "split": {"kind": s["split"], "train": train_rows, "test": test_rows}, "settings": s}


def _resumed_run(out_dir, cache, config, given, resume):
    """run.json of ``out_dir`` if this request may continue it; MinvertError otherwise."""
    run = read_run(out_dir)
    check_run_cache(run, cache, out_dir)
    if config is not None and config != run["decoder"]:
        raise MinvertError(f"{out_dir} holds a decoder of another architecture ({_arch(run['decoder'])}) "
                           f"than requested ({_arch(config)}); choose another --out")
    if not resume:
        raise MinvertError(f"{out_dir} already holds a run; pass --resume to continue it or choose "
                           "another --out")
    old = run["settings"]
    changed = [f"{k} {old.get(k)!r} -> {v!r}" for k, v in given.items() if k != "epochs" and old.get(k) != v]
    if changed:
        raise MinvertError(f"--resume continues the run with its own settings; these differ: "
                           f"{', '.join(changed)} (start a new --out to change them)")
    old["epochs"] = int(given.get("epochs", old["epochs"]))
    return run


def _psnr_rows(out, t):
    """Per-image PSNR (dB, data range 1) of (n, 3, s, s) outputs against targets, on the host."""
    xp = get_array_module(out)
    err = ((out - t) ** 2).mean(axis=(1, 2, 3))
    return to_numpy(-10.0 * xp.log10(xp.maximum(err, 1e-10)))


def train(cache, out_dir, decoder=None, epochs=None, batch_size=None, loss=None, optimizer=None,
          lr=None, rho=None, eps=None, seed=None, split=None, n_train=None, resume=False,
          checkpoint_every=1, log=print, on_step=None, device=None, sample_every=SAMPLE_EVERY,
          snapshot_epochs=(), snapshot_rows=None):
    """Train the decoder on ``cache`` into ``out_dir``; returns the history (one dict per epoch).

    decoder: overrides of the decoder config ({"widths": [...], "start": [h, h, c], "alpha",
    "final_kernel"}); None = the paper's stages for the cache's feature and target size.
    Other settings default to ``DEFAULTS`` (None = not given); lr defaults to 1.0 (adadelta)
    or 1e-3 (adam); rho and eps are Adadelta's. split: "paper" | "none" | "fraction:F".
    n_train: keep only the first n_train training images. on_step(step): called after every
    step (tests interrupt a run through it). Ctrl-C or SIGTERM saves a checkpoint (and
    decoder.h5); ``resume=True`` continues it bit-identically.

    Watching (changes nothing in the trajectory): a progress line within each epoch; every
    ``sample_every`` epochs (0: only at the end) decoder.h5 + decoder.json and samples.png
    (reconstruction | original for up to 4 training and 4 held-out images); at each epoch in
    ``snapshot_epochs`` epochs/epoch_NNNNN.png, the reconstructions of ``snapshot_rows``
    (cache rows; default the first training image), for the paper's Fig. 1.
    """
    from .watch import Meter, pairs_image, save_decoder, sigterm_as_interrupt
    from ..layers.loss import binary_cross_entropy, mse
    from ..nets.decoder import build_decoder
    from ..optim import Adadelta, Adam
    from ..images import save_image
    from ..plots import line_plot
    from ..training import run_epochs
    c = read_cache(cache)
    if snapshot_rows and max(snapshot_rows) >= len(c):
        raise MinvertError(f"snapshot row {max(snapshot_rows)} is outside the cache's {len(c)} images "
                           f"(rows 0..{len(c) - 1})")
    out_dir = Path(out_dir)
    given = {k: v for k, v in dict(epochs=epochs, batch_size=batch_size, loss=loss, optimizer=optimizer,
                                   lr=lr, rho=rho, eps=eps, seed=seed, split=split,
                                   n_train=n_train).items() if v is not None}
    config = None if decoder is None else make_decoder_config(c.feature_size, c.target_size, **decoder)
    started = (out_dir / "run.json").exists()
    if started and not (out_dir / "checkpoint.h5").exists():  # stopped before its first checkpoint
        if resume:
            raise MinvertError(f"--resume: the run in {out_dir} never saved a checkpoint; start it "
                               "again without --resume")
        started = False  # nothing trained to protect: start afresh, with a fresh log
        (out_dir / "log.jsonl").unlink(missing_ok=True)
    if started:
        run = _resumed_run(out_dir, c, config, given, resume)
    elif resume:
        raise MinvertError(f"--resume: {out_dir} holds no run (run.json missing)")
    elif (out_dir / "checkpoint.h5").exists():
        raise MinvertError(f"{out_dir} holds a checkpoint.h5 but no run.json (not a reconstruct run); "
                           "choose another --out")
    else:
        run = _new_run(c, config, given)
    s, config = run["settings"], run["decoder"]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "run.json", run)

    xp = array_module(device or default_device())
    net = build_decoder(config, rng=np.random.default_rng(s["seed"])).to(xp)
    net["conv1"].need_dx = False  # nobody needs the gradient w.r.t. the feature vectors
    opt = (Adadelta(lr=s["lr"], rho=s["rho"], eps=s["eps"]) if s["optimizer"] == "adadelta"
           else Adam(lr=s["lr"]))
    size, (train_rows, test_rows) = net.output_size, (run["split"]["train"], run["split"]["test"])
    x_train = xp.asarray(c.features[train_rows])
    t_train = xp.asarray(targets_at(c, train_rows, size).transpose(0, 3, 1, 2))  # uint8 (n, 3, s, s)
    x_test = xp.asarray(c.features[test_rows])
    t_test = xp.asarray(targets_at(c, test_rows, size).transpose(0, 3, 1, 2)).astype(net.dtype) / 255
    loss_fn = (lambda p, t: binary_cross_entropy(p, t, eps=1e-7)) if s["loss"] == "bce" else mse
    down = f", box-downsampled from {c.target_size}px" if run["target_downsample"] else ""
    log(f"decoder {_arch(config)}, {run['num_params']:,} parameters; {len(train_rows)} training and "
        f"{len(test_rows)} held-out images, targets {size}px{down}; {s['loss']} loss, {opt!r}, "
        f"batch {s['batch_size']}, {s['epochs']} epochs")

    acc = [0.0, 0]  # per-image PSNR sum and count over the epoch's training batches
    meter = Meter(len(train_rows), s["epochs"], log)
    sample_rows = train_rows[:4] + test_rows[:4]
    snapshot_rows = list(snapshot_rows or train_rows[:1])
    snapshot_epochs = set(snapshot_epochs)

    def decoded(rows):
        """Reconstructions of cache rows, float (n, s, s, 3) in [0, 1], on the host."""
        return to_numpy(net.predict(xp.asarray(c.features[rows]))).transpose(0, 2, 3, 1)  # (n, s, s, 3)

    def step(idx):
        idx = xp.asarray(idx)  # the epoch's shuffle is drawn on the host
        t = t_train[idx].astype(net.dtype) / 255
        out = net.forward(x_train[idx])
        acc[0] += float(_psnr_rows(out, t).sum())
        acc[1] += len(idx)
        meter.step(len(idx))
        value, dout = loss_fn(out, t)
        net.backward(dout)
        opt.step(net.parameters())
        return float(value), None, len(idx)

    def progress(epoch):
        record = {"psnr": acc[0] / max(acc[1], 1)}
        acc[:] = [0.0, 0]
        if test_rows:
            pred = xp.concatenate([net.predict(x_test[i:i + 32]) for i in range(0, len(test_rows), 32)])
            record["val_psnr"] = float(_psnr_rows(pred, t_test).mean())
        if sample_every and epoch % sample_every == 0 and epoch < s["epochs"]:
            save_decoder(net, out_dir, epoch, s["epochs"])
            save_image(out_dir / "samples.png", pairs_image(decoded(sample_rows),
                                                            targets_at(c, sample_rows, size)))
        if epoch in snapshot_epochs:
            (out_dir / "epochs").mkdir(exist_ok=True)
            save_image(out_dir / "epochs" / f"epoch_{epoch:05d}.png",
                       np.concatenate(list(_u8(decoded(snapshot_rows))), axis=0))  # rows stacked
        return record

    try:
        with sigterm_as_interrupt():
            history = run_epochs(net, opt, step, len(train_rows), out_dir, s["epochs"], s["batch_size"],
                                 s["seed"], resume=resume, evaluate=progress, log=log,
                                 checkpoint_every=checkpoint_every, on_step=on_step,
                                 on_epoch=meter.start_epoch)
    except KeyboardInterrupt:
        save_decoder(net, out_dir, meter.epoch, s["epochs"])  # mid-epoch weights, usable as they are
        log(f"saved {out_dir / 'decoder.h5'} (during epoch {meter.epoch + 1}) for evaluate/decode")
        raise
    save_decoder(net, out_dir, s["epochs"], s["epochs"])
    save_image(out_dir / "samples.png", pairs_image(decoded(sample_rows), targets_at(c, sample_rows, size)))
    if history:
        save_image(out_dir / "loss.png", line_plot({s["loss"]: [h["loss"] for h in history]},
                                                   title="decoder training", ylabel=f"{s['loss']} loss"))
        curves = {"train (batches)": [h["psnr"] for h in history]}
        if test_rows:
            curves["held-out"] = [h["val_psnr"] for h in history]
        save_image(out_dir / "psnr.png", line_plot(curves, title="reconstruction", ylabel="PSNR dB"))
    log(f"wrote {out_dir / 'decoder.h5'}; evaluate with `minvert reconstruct evaluate {out_dir} {cache}`")
    return history
