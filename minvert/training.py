"""Training loops on minvert's own backprop: checkpoints that resume bit-identically.

A checkpoint (:mod:`minvert.checkpoints`) holds the weights (with batch-norm running stats),
the optimizer state, the random generator's state at the start of the current epoch, the
epoch and the next batch index in it, the epoch's running sums, the history, and the
architecture config. Resuming
regenerates the epoch's shuffle from the saved generator state and skips the batches
already done, so an interrupted run ends with exactly the weights of an uninterrupted one.
Ctrl-C (KeyboardInterrupt) saves such a checkpoint and stops cleanly. The loop waits only
for a checkpoint's copy to the host; the file is written by :class:`CheckpointWriter` on a
background thread while the next epoch runs.
"""
import json
import time
from pathlib import Path

import numpy as np

from .backend import to_numpy
from .checkpoints import CheckpointWriter, load_checkpoint, save_checkpoint
from .checkpoints import CHECKPOINT_FORMAT, checkpoint_snapshot  # noqa: F401  (the public names)
from .errors import MinvertError
from .files import open_nofollow, translated_write_errors
from .layers.loss import softmax_cross_entropy
from .weights.project import atomic_write


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
    return lr0 * 0.5 * (1 + np.cos(np.pi * epoch / epochs))


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
