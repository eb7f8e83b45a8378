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
import threading
import time
from pathlib import Path

import numpy as np

from .backend import to_numpy
from .errors import FormatError, MinvertError
from .layers.loss import check_class_bounds, class_bounds, softmax_cross_entropy
from .weights.hdf5 import open_h5, read_array, read_json_attr, read_text_attr
from .weights.project import assign_weights, atomic_write, network_weights, read_weights

CHECKPOINT_FORMAT = "minvert-checkpoint"


def save_checkpoint(path, net, optimizer, progress):
    """Write net weights, optimizer state and ``progress`` (JSON-able dict) to ``path``."""
    _write_checkpoint(path, checkpoint_snapshot(net, optimizer, progress))


def checkpoint_snapshot(net, optimizer, progress):
    """Host copies of everything a checkpoint holds, taken now: the only part of a
    checkpoint the training loop has to wait for (on a GPU, one copy to the host)."""
    weights = {name: {k: np.array(v) for k, v in arrays.items()}  # copies: training goes on
               for name, arrays in network_weights(net).items()}
    state = {k.replace("/", "|"): v  # host copies, straight from the device
             for k, v in optimizer.state_dict(host=True).items()}
    return {"config": json.dumps(net.config), "progress": json.dumps(progress),
            "weights": weights, "optimizer": state}


def _write_checkpoint(path, snapshot):
    """Write a :func:`checkpoint_snapshot` to ``path`` atomically (a temporary file, renamed)."""
    import h5py  # here, as in weights/hdf5.py: `minvert --help` must not load h5py
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
    import h5py  # here, as in weights/hdf5.py: `minvert --help` must not load h5py
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
        loss, dlogits = softmax_cross_entropy(logits, labels, check_indices=False)
        correct = (logits.argmax(axis=1) == labels).sum()  # before backward may reuse logits
        net.backward(dlogits)
        optimizer.step(net.parameters())
        # loss, correct count and the label check in ONE transfer after the update: the host
        # waits for the device once per step (float64: exact for these numbers)
        numbers = to_numpy(xp.concatenate([xp.stack([loss.astype(np.float64),
                                                      correct.astype(np.float64)]),
                                           class_bounds(labels).astype(np.float64)]))
        check_class_bounds(numbers[2:], logits.shape[1])
        return float(numbers[0]), int(numbers[1]), len(idx)

    def evaluate(epoch):
        return {"val_accuracy": accuracy(net, x_val, y_val)} if len(x_val) else {}

    return run_epochs(net, optimizer, step, len(x_train), out_dir, epochs, batch_size, seed,
                      resume=resume, evaluate=evaluate, log=log, on_step=on_step, on_epoch=on_epoch)
