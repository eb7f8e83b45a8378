"""Training loops on minvert's own backprop: checkpoints that resume bit-identically.

A checkpoint (HDF5, built in memory and renamed into place) holds the weights (with
batch-norm running stats), the optimizer state, the random generator's state at the start of
the current epoch, the epoch and the next batch index in it, the epoch's running sums, the
history, and the architecture config. Resuming regenerates the epoch's shuffle from the saved generator state and skips the batches
already done, so an interrupted run ends with exactly the weights of an uninterrupted one.
Ctrl-C (KeyboardInterrupt) saves such a checkpoint and stops cleanly. The loop waits only
for a checkpoint's copy to the host; the file is written by :class:`CheckpointWriter` on a
background thread while the next epoch runs. The classifier's step is
:mod:`minvert.classifier_training`.
"""
import json
import threading
import time
from pathlib import Path

import numpy as np

from .backend import to_numpy
from .errors import FormatError, MinvertError
from .files import open_nofollow, translated_write_errors
from .weights.hdf5 import open_h5, read_array, read_json_attr, read_text_attr
from .weights.project import (assign_weights, atomic_write, h5_written, network_weights,
                              read_weights)

CHECKPOINT_FORMAT = "minvert-checkpoint"
MAX_OPTIMIZER_STEPS = 2**53  # steps a run can take; larger is a damaged file (float counts stay exact)


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
    """Write a :func:`checkpoint_snapshot` to ``path`` atomically (built in memory, written to a
    temporary file, renamed: a full disk leaves the previous checkpoint whole)."""
    with h5_written(path) as f:
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
    t = state["t"]
    if not isinstance(t, np.integer) or not 0 <= int(t) <= MAX_OPTIMIZER_STEPS:
        raise FormatError(f"{path}: damaged checkpoint (optimizer step 't' is {str(t)[:30]}, not "
                          f"a count from 0 to {MAX_OPTIMIZER_STEPS})")
    return state


def _progress(progress, path):
    keys = {"epoch": int, "batch": int, "step": int, "history": list, "rng": dict}
    if not isinstance(progress, dict) or any(not isinstance(progress.get(k), t) or isinstance(
            progress.get(k), bool) for k, t in keys.items()) or min(
            progress["epoch"], progress["batch"], progress["step"]) < 0 or not all(
            isinstance(r, dict) for r in progress["history"]):
        raise FormatError(f"{path}: damaged checkpoint (its progress record is not what minvert "
                          "writes); start again in another --out folder")
    sums = progress.get("sums", {})  # absent in checkpoints from before sums were kept
    if not isinstance(sums, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
            for v in sums.values()):
        raise FormatError(f"{path}: damaged checkpoint (its running sums are not numbers); "
                          "start again in another --out folder")
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

    step(indices) -> (loss, n_correct or None, n) or (loss, n_correct or None, n, sums): one
    optimisation step on those samples; sums ({name: sum over the samples}) become the epoch's
    mean ``name`` in its record. evaluate(epoch) -> dict of extra numbers for the progress line
    (validation accuracy, ...). on_step(global_step): called after each step (tests interrupt
    a run through it). on_epoch(epoch): called before each epoch (0-based), also a resumed one
    (lr schedules). Returns the history (one dict per epoch).

    The epoch's running sums are part of the checkpoint, so a run interrupted anywhere (also
    during the end-of-epoch evaluation) resumes to the record it would have written. log.jsonl
    is rewritten from the checkpoint's history when a run starts or resumes: after a kill -9 it
    holds exactly the epochs the checkpoint holds.
    """
    out_dir = Path(out_dir)
    ckpt, log_file = out_dir / "checkpoint.h5", out_dir / "log.jsonl"
    rng = np.random.default_rng(seed)
    progress = _start_progress(net, optimizer, ckpt, out_dir, epochs, rng, resume, log)
    out_dir.mkdir(parents=True, exist_ok=True)
    with translated_write_errors(log_file), atomic_write(log_file) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in progress["history"]))
    writer = CheckpointWriter(ckpt)
    net.train()
    try:
        while progress["epoch"] < epochs:
            epoch = progress["epoch"]
            if on_epoch is not None:
                on_epoch(epoch)
            rng.bit_generator.state = progress["rng"]
            batches = iterate_minibatches(n_train, batch_size, rng)
            if progress["batch"] == 0:
                progress["sums"] = {"loss": 0.0, "n": 0, "seconds": 0.0}
            for b in range(progress["batch"], len(batches)):
                start = time.perf_counter()
                _add_sums(progress["sums"], step(batches[b]))
                progress["sums"]["seconds"] += time.perf_counter() - start
                progress["batch"], progress["step"] = b + 1, progress["step"] + 1
                if on_step is not None:
                    on_step(progress["step"])
            record = _epoch_record(epoch, progress["sums"])
            net.eval()
            if evaluate is not None:
                record.update(evaluate(epoch + 1))
            net.train()
            progress["history"].append(record)
            progress.update(epoch=epoch + 1, batch=0, rng=rng.bit_generator.state, sums={})
            log(format_record(record, epochs))
            with translated_write_errors(log_file), open_nofollow(log_file, "a") as f:
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


def _start_progress(net, optimizer, ckpt, out_dir, epochs, rng, resume, log):
    """The progress record to start from: a fresh one, or the checkpoint's on ``resume``."""
    if not resume:
        if ckpt.exists():
            raise MinvertError(f"{out_dir} already holds a run (checkpoint.h5); pass --resume to "
                               "continue it or choose another --out folder")
        return {"epoch": 0, "batch": 0, "rng": rng.bit_generator.state, "history": [], "step": 0,
                "sums": {}}
    if not ckpt.exists():
        raise MinvertError(f"--resume: no checkpoint at {ckpt}")
    progress = load_checkpoint(ckpt, net, optimizer)
    if progress["epoch"] >= epochs:
        raise MinvertError(f"the run in {out_dir} has already trained {progress['epoch']} "
                           f"epoch(s); pass --epochs above {progress['epoch']} to continue it")
    log(f"resumed from {ckpt} at epoch {progress['epoch'] + 1}, batch {progress['batch']}")
    if not {"loss", "n", "seconds"} <= set(progress.get("sums", {})):
        progress["sums"] = {"loss": 0.0, "n": 0, "seconds": 0.0}  # an older checkpoint: from here
    return progress


def _add_sums(sums, result):
    """Add one step's (loss, correct, n[, sums]) to the epoch's running ``sums`` (in place)."""
    loss, correct, n = result[:3]
    sums["loss"] += loss * n
    sums["n"] += n
    if correct is not None:
        sums["correct"] = sums.get("correct", 0) + correct
    for k, v in (result[3] if len(result) > 3 else {}).items():
        sums[k] = sums.get(k, 0.0) + v


def _epoch_record(epoch, sums):
    """The epoch's log record from its running sums: means per sample, time, throughput."""
    n, seconds = max(sums["n"], 1), sums["seconds"]
    record = {"epoch": epoch + 1, "loss": sums["loss"] / n, "seconds": seconds,
              "images_per_s": sums["n"] / max(seconds, 1e-9)}
    for k, v in sums.items():
        if k == "correct":
            record["accuracy"] = v / n
        elif k not in ("loss", "n", "seconds"):
            record[k] = v / n
    return record


def format_record(r, epochs):
    parts = [f"epoch {r['epoch']:>3}/{epochs}", f"loss {r['loss']:.4f}"]
    parts += [f"{k} {r[k]:.4f}" if isinstance(r[k], float) else f"{k} {r[k]}"
              for k in r if k not in ("epoch", "loss", "seconds", "images_per_s")]
    parts += [f"{r['seconds']:.1f}s", f"{r['images_per_s']:.0f} img/s"]
    return "  ".join(parts)
