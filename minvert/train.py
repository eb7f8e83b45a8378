"""Training loops on minvert's own backprop: checkpoints that resume bit-identically.

A checkpoint (HDF5, written atomically) holds the weights (with batch-norm running stats),
the optimizer state, the random generator's state at the start of the current epoch, the
epoch and the next batch index in it, the history, and the architecture config. Resuming
regenerates the epoch's shuffle from the saved generator state and skips the batches
already done, so an interrupted run ends with exactly the weights of an uninterrupted one.
Ctrl-C (KeyboardInterrupt) saves such a checkpoint and stops cleanly. The loop waits only
for a checkpoint's copy to the host; the file is written by :class:`CheckpointWriter` on a
background thread while the next epoch runs.
"""
import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from .backend import array_module, is_gpu_array, to_numpy
from .errors import FormatError, MinvertError, check_options
from .layers.loss import softmax_cross_entropy
from .weights.hdf5 import json_text, open_h5, read_array, read_json_attr, read_text_attr
from .weights.project import assign_weights, atomic_write, network_weights, read_weights, write_json

CHECKPOINT_FORMAT = "minvert-checkpoint"


def save_checkpoint(path, net, optimizer, progress):
    """Write net weights, optimizer state and ``progress`` (JSON-able dict) to ``path``."""
    _write_checkpoint(path, checkpoint_snapshot(net, optimizer, progress))


def checkpoint_snapshot(net, optimizer, progress):
    """Host copies of everything a checkpoint holds, taken now: the only part of a
    checkpoint the training loop has to wait for (on a GPU, one copy to the host)."""
    weights = {name: {k: np.array(v) for k, v in arrays.items()}  # copies: training goes on
               for name, arrays in network_weights(net).items()}
    state = {k.replace("/", "|"): (to_numpy(v) if is_gpu_array(v) else v)  # state_dict copies
             for k, v in optimizer.state_dict().items()}
    return {"config": json.dumps(net.config), "progress": json.dumps(progress),
            "weights": weights, "optimizer": state}


def _write_checkpoint(path, snapshot):
    """Write a :func:`checkpoint_snapshot` to ``path`` atomically (a temporary file, renamed)."""
    import h5py
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = CHECKPOINT_FORMAT
        f.attrs["config"] = snapshot["config"]
        f.attrs["progress"] = snapshot["progress"]
        weights = f.create_group("weights")
        for name, arrays in snapshot["weights"].items():
            group = weights.create_group(name)
            for k, v in arrays.items():
                group.create_dataset(k, data=v)
        opt = f.create_group("optimizer")
        for k, v in snapshot["optimizer"].items():
            opt.create_dataset(k, data=v)


class CheckpointWriter:
    """Writes checkpoints on a background thread: the training loop waits for the snapshot
    (the copy to the host) but not for the file, so the GPU goes on with the next epoch
    while HDF5 writes (for paper 003's decoder ~330 MB, about a second to disk, against
    milliseconds for the copy). One write at a time; an error in it is raised by the
    next :meth:`save` or :meth:`wait`."""

    def __init__(self, path):
        self.path, self._thread, self._error = Path(path), None, None

    def save(self, net, optimizer, progress):
        snapshot = checkpoint_snapshot(net, optimizer, progress)
        self.wait()
        self._thread = threading.Thread(target=self._write, args=(snapshot,), daemon=True)
        self._thread.start()

    def _write(self, snapshot):
        try:
            _write_checkpoint(self.path, snapshot)
        except BaseException as e:  # handed to the training thread by wait()
            self._error = e

    def wait(self, reraise=True):
        """Block until the last checkpoint is on disk; re-raise its error, if any."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None and reraise:
            raise error


def load_checkpoint(path, net, optimizer):
    """Restore ``net`` and ``optimizer`` from ``path``; returns the saved progress dict."""
    import h5py
    with open_h5(path, "a minvert checkpoint") as f:
        if read_text_attr(f, "format", path) != CHECKPOINT_FORMAT:
            raise FormatError(f"{path} is not a minvert checkpoint")
        config = read_json_attr(f, "config", path)
        if config != json.loads(json.dumps(net.config)):
            if not isinstance(config, dict):
                raise FormatError(f"{path}: damaged checkpoint (its config is not an object)")
            raise MinvertError(f"{path} was saved from a different architecture "
                               f"({config.get('arch')} {_describe(config)}) than this run "
                               f"({net.config.get('arch')} {_describe(net.config)}); use another --out folder")
        for key in ("weights", "optimizer"):
            if not isinstance(f.get(key), h5py.Group):
                raise FormatError(f"{path}: damaged checkpoint (no '{key}' group)")
        weights = read_weights(f["weights"], net, path)
        state = _optimizer_state(f["optimizer"], optimizer, net, path)
        progress = _progress(read_json_attr(f, "progress", path), path)
    assign_weights(net, weights, what=str(path))
    optimizer.load_state_dict(state)
    return progress


def _optimizer_state(group, optimizer, net, path):
    """The optimizer's saved arrays, each slot checked against its parameter's shape before it
    is read; scalars (type, step, hyper-parameters) bounded."""
    shapes = {name: tuple(p.shape) for name, p, _ in net.parameters()}
    state = {}
    for key in group:
        name = key.replace("|", "/")
        slot, sep, param = name.partition("/")
        if sep:
            if slot not in optimizer.slots or param not in shapes:
                raise FormatError(f"{path}: optimizer state has an unexpected entry {name[:80]!r}")
            state[name] = read_array(group[key], path, f"optimizer/{name}", shape=shapes[param])
        elif name == "type":
            state[name] = read_array(group[key], path, "optimizer/type", kinds="SO", max_bytes=256)[()]
        else:
            state[name] = read_array(group[key], path, f"optimizer/{name}", kinds="fiub", shape=())[()]
    if "type" not in state or "t" not in state:
        raise FormatError(f"{path}: damaged checkpoint (the optimizer state has no type or step)")
    return state


def _progress(progress, path):
    keys = {"epoch": int, "batch": int, "step": int, "history": list, "rng": dict}
    if not isinstance(progress, dict) or any(not isinstance(progress.get(k), t) or isinstance(
            progress.get(k), bool) for k, t in keys.items()) or min(
            progress["epoch"], progress["batch"], progress["step"]) < 0 or not all(
            isinstance(r, dict) for r in progress["history"]):
        raise FormatError(f"{path}: damaged checkpoint (its progress record is not what minvert "
                          "writes); start again in another --out folder")
    try:
        np.random.default_rng().bit_generator.state = progress["rng"]
    except Exception:  # noqa: BLE001 - whatever numpy says about a foreign state
        raise FormatError(f"{path}: damaged checkpoint (its random generator state is not "
                          "numpy's); start again in another --out folder") from None
    return progress


def _describe(config):
    keys = ("depth", "widths", "width", "blocks", "num_classes", "start")
    return ", ".join(f"{k}={config[k]}" for k in keys if k in config)


def iterate_minibatches(n, batch_size, rng):
    """Shuffled index batches for one epoch."""
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def run_epochs(net, optimizer, step, n_train, out_dir, epochs, batch_size, seed, resume=False,
               evaluate=None, log=print, checkpoint_every=1, on_step=None, on_epoch=None):
    """The shared loop: shuffling, checkpoints, resume, Ctrl-C, progress lines.

    step(indices) -> (loss, n_correct or None, n): one optimisation step on those samples.
    evaluate(epoch) -> dict of extra numbers for the progress line (validation accuracy, ...).
    on_step(global_step): called after each step (tests interrupt a run through it).
    on_epoch(epoch): called before each epoch (0-based), also a resumed one (lr schedules).
    Returns the history (one dict per epoch).
    """
    out_dir = Path(out_dir)
    ckpt = out_dir / "checkpoint.h5"
    rng = np.random.default_rng(seed)
    progress = {"epoch": 0, "batch": 0, "rng": rng.bit_generator.state, "history": [], "step": 0}
    if resume:
        if not ckpt.exists():
            raise MinvertError(f"--resume: no checkpoint at {ckpt}")
        progress = load_checkpoint(ckpt, net, optimizer)
        if progress["epoch"] >= epochs:
            raise MinvertError(f"the run in {out_dir} has already trained {progress['epoch']} "
                               f"epoch(s); pass --epochs above {progress['epoch']} to continue it")
        log(f"resumed from {ckpt} at epoch {progress['epoch'] + 1}, batch {progress['batch']}")
    elif ckpt.exists():
        raise MinvertError(f"{out_dir} already holds a run (checkpoint.h5); pass --resume to continue it "
                           f"or choose another --out folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = CheckpointWriter(ckpt)
    net.train()
    try:
        while progress["epoch"] < epochs:
            epoch = progress["epoch"]
            if on_epoch is not None:
                on_epoch(epoch)
            rng.bit_generator.state = progress["rng"]
            batches = iterate_minibatches(n_train, batch_size, rng)
            start, totals = time.perf_counter(), [0.0, 0, 0]
            for b in range(progress["batch"], len(batches)):
                loss, correct, n = step(batches[b])
                totals[0] += loss * n
                totals[1] += correct or 0
                totals[2] += n
                progress["batch"], progress["step"] = b + 1, progress["step"] + 1
                if on_step is not None:
                    on_step(progress["step"])
            seconds = time.perf_counter() - start
            record = {"epoch": epoch + 1, "loss": totals[0] / max(totals[2], 1), "seconds": seconds,
                      "images_per_s": totals[2] / max(seconds, 1e-9)}
            if correct is not None:
                record["accuracy"] = totals[1] / max(totals[2], 1)
            net.eval()
            if evaluate is not None:
                record.update(evaluate(epoch + 1))
            net.train()
            progress["history"].append(record)
            progress.update(epoch=epoch + 1, batch=0, rng=rng.bit_generator.state)
            log(format_record(record, epochs))
            with open(out_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            if (epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs:
                writer.save(net, optimizer, progress)  # written while the next epoch runs
        writer.wait()
    except KeyboardInterrupt:
        # rng must be the epoch-start state so the resumed run reshuffles identically
        writer.wait()
        save_checkpoint(ckpt, net, optimizer, progress)
        log(f"\ninterrupted: checkpoint saved to {ckpt} (epoch {progress['epoch'] + 1}, "
            f"batch {progress['batch']}); continue with --resume")
        raise
    finally:
        net.eval()
        writer.wait(reraise=False)  # after another error: let a running write finish
    return progress["history"]


def format_record(r, epochs):
    parts = [f"epoch {r['epoch']:>3}/{epochs}", f"loss {r['loss']:.4f}"]
    parts += [f"{k} {r[k]:.4f}" if isinstance(r[k], float) else f"{k} {r[k]}"
              for k in r if k not in ("epoch", "loss", "seconds", "images_per_s")]
    parts += [f"{r['seconds']:.1f}s", f"{r['images_per_s']:.0f} img/s"]
    return "  ".join(parts)


def accuracy(net, x, labels, batch_size=256):
    """Fraction of ``x`` (already preprocessed, (N, 3, H, W)) classified as ``labels``."""
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = net.predict(net.xp.asarray(x[i:i + batch_size]))  # to the net's device
        predicted = to_numpy(logits.argmax(axis=1))  # (batch,) on the host, beside the labels
        correct += int((predicted == to_numpy(labels[i:i + batch_size])).sum())
    return correct / max(len(x), 1)


def cosine_lr(lr0, epoch, epochs):
    """Cosine annealing from lr0 (first epoch) towards 0 (after the last)."""
    # a Python float: a NumPy float64 makes float32 updates compute in float64 (NumPy 2 promotion)
    return float(lr0 * 0.5 * (1 + np.cos(np.pi * epoch / epochs)))


def train_classifier(net, optimizer, x_train, y_train, x_val, y_val, out_dir, epochs=10,
                     batch_size=32, seed=0, resume=False, log=print, on_step=None, schedule="cosine"):
    """Train ``net`` with softmax cross-entropy; x already preprocessed (N, 3, H, W).
    schedule: "cosine" (learning rate annealed per epoch) or "constant"."""
    lr0 = optimizer.lr

    def on_epoch(epoch):
        if schedule == "cosine":
            optimizer.lr = cosine_lr(lr0, epoch, epochs)
    net.layers[net.names[0]].need_dx = False  # nobody needs the gradient w.r.t. the pixels
    xp = net.xp
    x_train, y_train = xp.asarray(x_train), xp.asarray(y_train)  # the training set on the net's device

    def step(idx):
        idx = xp.asarray(idx)  # the epoch's shuffle is drawn on the host
        logits, labels = net.forward(x_train[idx]), y_train[idx]
        loss, dlogits = softmax_cross_entropy(logits, labels)
        net.backward(dlogits)
        optimizer.step(net.parameters())
        correct = int((logits.argmax(axis=1) == labels).sum())
        return float(loss), correct, len(idx)

    def evaluate(epoch):
        return {"val_accuracy": accuracy(net, x_val, y_val)} if len(x_val) else {}

    return run_epochs(net, optimizer, step, len(x_train), out_dir, epochs, batch_size, seed,
                      resume=resume, evaluate=evaluate, log=log, on_step=on_step, on_epoch=on_epoch)


DEFAULT_LR = {"adam": 1e-3, "sgd": 0.05, "adadelta": 1.0}


def make_optimizer(name, lr=None):
    from .optim import SGD, Adadelta, Adam
    lr = DEFAULT_LR[name] if lr is None else lr
    return {"adam": lambda: Adam(lr=lr), "sgd": lambda: SGD(lr=lr, momentum=0.9),
            "adadelta": lambda: Adadelta(lr=lr)}[name]()


def load_training_data(data, n, val_n, val_fraction, size, seed, log=print):
    """(x_train uint8, y_train, x_val uint8, y_val, class names) from a generated dataset
    ('textures', 'shapes') or a folder."""
    from .datasets import KINDS, load_image_folder, make_dataset
    if data in KINDS:
        x, y, names = make_dataset(n, size=size, seed=seed, kind=data)
        xv, yv, _ = make_dataset(val_n, size=size, seed=seed + 10_000, kind=data)  # other seeds: unseen
        return x, y, xv, yv, list(names)
    x, y, names, skipped = load_image_folder(data, size=size, warn=log)
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(val_fraction * len(x)))
    val, tr = order[:n_val], order[n_val:]
    log(f"{data}: {len(x)} images in {len(names)} classes ({len(tr)} train, {n_val} validation)")
    return x[tr], y[tr], x[val], y[val], list(names)


TRAIN_DEFAULTS = {"data": "textures", "arch": "tiny-vgg", "epochs": 8, "batch": 32,
                  "optimizer": "adam", "lr": None, "schedule": "cosine", "n": 300, "val_n": 50,
                  "test_n": 100, "val_fraction": 0.1, "size": 64, "seed": 0}
FREE_ON_RESUME = ("epochs", "test_n")  # everything else defines the data, the net or the steps


def train_settings(args):
    """The run's settings: defaults (or, with --resume, the run's run.json) overridden by the
    options given; options are checked before any work, and a resumed run may change only
    FREE_ON_RESUME (as ``reconstruct train`` does)."""
    import argparse
    given = {k: getattr(args, k, None) for k in TRAIN_DEFAULTS}
    check_options(argparse.Namespace(**given), minimum={"epochs": 1, "batch": 1, "n": 1, "val_n": 0,
                                                         "test_n": 0, "size": 8, "seed": 0,
                                                         "val_fraction": 0},
                  positive=("lr",))
    if given["val_fraction"] is not None and not given["val_fraction"] < 1:
        raise MinvertError(f"--val-fraction {given['val_fraction']}: must be below 1")
    if given["size"] is not None and given["size"] > 1024:
        raise MinvertError(f"--size {given['size']}: at most 1024 pixels")
    run_file = Path(args.out) / "run.json"
    if not args.resume:
        return {k: TRAIN_DEFAULTS[k] if v is None else v for k, v in given.items()}
    if not run_file.is_file():
        raise MinvertError(f"--resume: {args.out} holds no run.json, so its settings are unknown; "
                           "start a new run in another --out folder")
    saved = json_text(run_file.read_text(errors="replace"), str(run_file))
    if not _recorded_settings_ok(saved):
        raise FormatError(f"{run_file} is damaged (not the settings minvert train writes); start a "
                          "new run in another --out folder")
    for k, v in given.items():
        if v is not None and k not in FREE_ON_RESUME and v != saved[k]:
            raise MinvertError(f"--{k.replace('_', '-')} {v}: the run in {args.out} was trained "
                               f"with {saved[k]!r}; resume with its settings (leave the option out)")
    settings = {k: saved[k] if v is None else v for k, v in given.items()}
    return train_settings(argparse.Namespace(**settings, out=args.out, resume=False))


def _recorded_settings_ok(saved):
    """True if ``saved`` (a run.json) holds every setting with its type and a known choice."""
    kinds = {"data": str, "arch": str, "optimizer": str, "schedule": str, "lr": float,
             "val_fraction": float}  # the others are ints
    choices = {"arch": ("tiny-vgg", "tiny-resnet"), "optimizer": tuple(DEFAULT_LR),
               "schedule": ("cosine", "constant")}
    if not isinstance(saved, dict) or set(saved) != set(TRAIN_DEFAULTS):
        return False
    for k, v in saved.items():
        kind = kinds.get(k, int)
        if not (type(v) is kind or (kind is float and type(v) is int)):
            return False
        if k in choices and v not in choices[k]:
            return False
    return True


def train_command(args, log=print, on_step=None):
    """Body of ``minvert train`` (see ``minvert train --help``)."""
    import argparse
    from .nets.tiny import build_tiny
    from .weights.project import save
    out = Path(args.out)
    if not args.resume and (out / "checkpoint.h5").exists():
        raise MinvertError(f"{out} already holds a run (checkpoint.h5); pass --resume to continue "
                           "it or choose another --out folder")
    args = argparse.Namespace(**train_settings(args), out=args.out, resume=args.resume)
    xtr, ytr, xval, yval, names = load_training_data(args.data, args.n, args.val_n, args.val_fraction,
                                                     args.size, args.seed, log)
    net = build_tiny(args.arch, len(names), labels=names, rng=np.random.default_rng(args.seed),
                     input_size=args.size).to(array_module(getattr(args, "device", None)))
    pre = net.preprocessing
    x_train, x_val = pre.preprocess(xtr), pre.preprocess(xval)
    optimizer = make_optimizer(args.optimizer, args.lr)
    args.lr = optimizer.lr  # recorded resolved, so a resumed run uses the same
    if not args.resume:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "run.json", {k: getattr(args, k) for k in TRAIN_DEFAULTS})
    log(f"training {args.arch} ({net.num_params():,} parameters) on {len(x_train)} images, "
        f"{len(names)} classes, {args.optimizer}, batch {args.batch}, {args.epochs} epochs -> {out}")
    start = time.perf_counter()
    history = train_classifier(net, optimizer, x_train, ytr, x_val, yval, out, epochs=args.epochs,
                               batch_size=args.batch, seed=args.seed, resume=args.resume, log=log,
                               on_step=on_step, schedule=args.schedule)
    from .datasets import KINDS, make_dataset
    generated = args.data in KINDS
    name = f"{args.arch}-{args.data if generated else 'custom'}"
    source = {"name": name, "trained_by": "minvert train", "history": history}
    if generated and args.test_n:
        xte, yte, _ = make_dataset(args.test_n, size=args.size, seed=args.seed + 20_000,
                                   kind=args.data)  # never seen
        source["test_accuracy"] = accuracy(net, pre.preprocess(xte), yte)
        source["test_images"] = len(xte)
    save(net, out / "model.h5", source=source, force=True)
    val = history[-1].get("val_accuracy") if history else None
    log(f"done in {time.perf_counter() - start:.0f}s"
        + (f"; validation accuracy {val:.4f}" if val is not None else "")
        + (f"; test accuracy {source['test_accuracy']:.4f} on {source['test_images']} new images"
           if "test_accuracy" in source else "") + f"; wrote {out / 'model.h5'}")
    return net, history
