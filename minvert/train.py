"""Training loops on minvert's own backprop: checkpoints that resume bit-identically.

A checkpoint (HDF5, written atomically) holds the weights (with batch-norm running stats),
the optimizer state, the random generator's state at the start of the current epoch, the
epoch and the next batch index in it, the history, and the architecture config. Resuming
regenerates the epoch's shuffle from the saved generator state and skips the batches
already done, so an interrupted run ends with exactly the weights of an uninterrupted one.
Ctrl-C (KeyboardInterrupt) saves such a checkpoint and stops cleanly.
"""
import json
import os
import time
from pathlib import Path

import numpy as np

from .errors import FormatError, MinvertError
from .layers.loss import softmax_cross_entropy
from .weights.project import assign_weights, network_weights

CHECKPOINT_FORMAT = "minvert-checkpoint"


def save_checkpoint(path, net, optimizer, progress):
    """Write net weights, optimizer state and ``progress`` (JSON-able dict) to ``path``."""
    import h5py
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = CHECKPOINT_FORMAT
            f.attrs["config"] = json.dumps(net.config)
            f.attrs["progress"] = json.dumps(progress)
            weights = f.create_group("weights")
            for name, arrays in network_weights(net).items():
                group = weights.create_group(name)
                for k, v in arrays.items():
                    group.create_dataset(k, data=v)
            opt = f.create_group("optimizer")
            for k, v in optimizer.state_dict().items():
                opt.create_dataset(k.replace("/", "|"), data=v)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path, net, optimizer):
    """Restore ``net`` and ``optimizer`` from ``path``; returns the saved progress dict."""
    import h5py
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise FormatError(f"{path} is not a readable checkpoint (truncated or another format)") from None
    with f:
        if f.attrs.get("format") != CHECKPOINT_FORMAT:
            raise FormatError(f"{path} is not a minvert checkpoint")
        config = json.loads(f.attrs["config"])
        if config != json.loads(json.dumps(net.config)):
            raise MinvertError(f"{path} was saved from a different architecture "
                               f"({config.get('arch')} {_describe(config)}) than this run "
                               f"({net.config.get('arch')} {_describe(net.config)}); use another --out folder")
        weights = {n: {k: g[k][()] for k in g} for n, g in f["weights"].items()}
        state = {k.replace("|", "/"): v[()] for k, v in f["optimizer"].items()}
        progress = json.loads(f.attrs["progress"])
    assign_weights(net, weights, what=str(path))
    optimizer.load_state_dict(state)
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
        log(f"resumed from {ckpt} at epoch {progress['epoch'] + 1}, batch {progress['batch']}")
    elif ckpt.exists():
        raise MinvertError(f"{out_dir} already holds a run (checkpoint.h5); pass --resume to continue it "
                           f"or choose another --out folder")
    out_dir.mkdir(parents=True, exist_ok=True)
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
                save_checkpoint(ckpt, net, optimizer, progress)
    except KeyboardInterrupt:
        # rng must be the epoch-start state so the resumed run reshuffles identically
        save_checkpoint(ckpt, net, optimizer, progress)
        log(f"\ninterrupted: checkpoint saved to {ckpt} (epoch {progress['epoch'] + 1}, "
            f"batch {progress['batch']}); continue with --resume")
        raise
    finally:
        net.eval()
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
        logits = net.predict(x[i:i + batch_size])
        correct += int((np.argmax(np.asarray(logits), axis=1) == labels[i:i + batch_size]).sum())
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

    def step(idx):
        logits = net.forward(x_train[idx])
        loss, dlogits = softmax_cross_entropy(logits, y_train[idx])
        net.backward(dlogits)
        optimizer.step(net.parameters())
        correct = int((np.argmax(logits, axis=1) == y_train[idx]).sum())
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


def train_command(args, log=print, on_step=None):
    """Body of ``minvert train`` (see ``minvert train --help``)."""
    from .nets.tiny import build_tiny
    from .weights.project import save
    out = Path(args.out)
    xtr, ytr, xval, yval, names = load_training_data(args.data, args.n, args.val_n, args.val_fraction,
                                                     args.size, args.seed, log)
    net = build_tiny(args.arch, len(names), labels=names, rng=np.random.default_rng(args.seed),
                     input_size=args.size)
    pre = net.preprocessing
    x_train, x_val = pre.preprocess(xtr), pre.preprocess(xval)
    optimizer = make_optimizer(args.optimizer, args.lr)
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
