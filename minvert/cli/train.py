"""``minvert train`` (small classifiers on a generated dataset or a folder) and ``minvert dataset``.

The settings are checked and recorded in run.json here; the loop itself, with its checkpoints,
is :func:`minvert.classifier_training.train_classifier`.
"""
import argparse
import textwrap
import time
from pathlib import Path

from ..bounds import MANY, SEED_MAX, float_range, int_range
from ..errors import FormatError, MinvertError, check_options
from .common import add_command, add_device_option


def add_train(sub):
    p = add_command(sub, "train", "train a small classifier with minvert's own backprop", handler=_run_train,
             description="Train tiny-vgg or tiny-resnet on a generated dataset (textures, shapes) "
                         "or on a folder of images (one sub-folder per class). Writes run.json (the "
                         "settings), checkpoint.h5 (resumable), log.jsonl and model.h5 into --out; on "
                         "generated data the test accuracy on --test-n new images per class is recorded "
                         "in model.h5.")
    p.add_argument("--data",
                   help=f"a generated dataset, 'textures' ({_count('textures')} pattern classes, "
                        f"default) or 'shapes' ({_count('shapes')} colour x shape x background "
                        "classes), or a folder of class sub-folders")
    p.add_argument("--arch", choices=["tiny-vgg", "tiny-resnet"], help="default tiny-vgg")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--epochs", type=int_range(1, MANY), help="epochs in total (default 8; may grow on --resume)")
    p.add_argument("--batch", type=int_range(1, 65_536), help="batch size (default 32)")
    p.add_argument("--optimizer", choices=["adam", "sgd", "adadelta"], help="default adam")
    p.add_argument("--lr", type=float_range(0, 1e6, above=True), help="learning rate (default: adam 1e-3, sgd 0.05, adadelta 1.0)")
    p.add_argument("--schedule", choices=["cosine", "constant"],
                   help="learning rate over the epochs (default cosine annealing)")
    p.add_argument("--n", type=int_range(1, 10**7), help="generated images per class for training (generated data; default 300)")
    p.add_argument("--val-n", type=int_range(0, 10**7), help="generated validation images per class (generated data; default 50)")
    p.add_argument("--test-n", type=int_range(0, 10**7),
                   help="after training, accuracy on this many new generated images per class "
                        "(generated data; default 100)")
    p.add_argument("--val-fraction", type=float_range(0, 1), help="held-out fraction of a folder (default 0.1)")
    p.add_argument("--size", type=int_range(8, 1024), help="image side (default 64)")
    p.add_argument("--seed", type=int_range(0, SEED_MAX), help="weights, data and shuffling (default 0)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint, with the settings in its "
                        "run.json (options given must agree with them, except --epochs, --test-n)")
    add_device_option(p)


def _run_train(args):
    train_command(args)


def add_dataset(sub):
    p = add_command(sub, "dataset", "write a generated dataset (textures or shapes) as PNG files",
             handler=_run_dataset,
             description=_dataset_description())
    p.add_argument("kind", choices=["textures", "shapes"], help="which generated dataset")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--n", type=int_range(1, 10**6), default=20, help="images per class (default 20)")
    p.add_argument("--size", type=int_range(8, 1024), default=64)
    p.add_argument("--seed", type=int_range(0, SEED_MAX), default=0)


def _count(kind):
    from ..datasets import dataset_classes
    return len(dataset_classes(kind))


def _dataset_description():
    """``minvert dataset --help``, its class lists and counts read from the datasets and the
    bundled models' registry."""
    from ..datasets import shapes, textures
    from ..weights.bundled import BUNDLED_MODELS
    trained = {kind: ", ".join(n for n, m in BUNDLED_MODELS.items() if m.dataset == kind)
               for kind in ("textures", "shapes")}
    text = ("Write a generated dataset as DIR/<class>/<class>_00000.png ... plus DIR/dataset.json. "
            f"textures: {len(textures.CLASSES)} classes of patterns in random colours "
            f"({', '.join(textures.CLASSES)}; bundled: {trained['textures']}). "
            f"shapes: {len(shapes.CLASSES)} classes <colour>-<shape>-on-<background> "
            f"({'/'.join(shapes.HUES)} x {'/'.join(shapes.SHAPES)} x {'/'.join(shapes.BACKGROUNDS)}) "
            f"at random positions and sizes on varied backgrounds (bundled: {trained['shapes']}, "
            "paper 003's encoder). The same --seed always gives the same images.")
    return textwrap.fill(text)


def _run_dataset(args):
    from ..datasets import write_dataset
    check_options(args, minimum={"n": 1, "size": 8, "seed": 0})
    write_dataset(args.out, args.n, size=args.size, seed=args.seed, kind=args.kind)


DEFAULT_LR = {"adam": 1e-3, "sgd": 0.05, "adadelta": 1.0}


def make_optimizer(name, lr=None):
    from ..optim import SGD, Adadelta, Adam
    lr = DEFAULT_LR[name] if lr is None else lr
    return {"adam": lambda: Adam(lr=lr), "sgd": lambda: SGD(lr=lr, momentum=0.9),
            "adadelta": lambda: Adadelta(lr=lr)}[name]()


def load_training_data(data, n, val_n, val_fraction, size, seed, log=print):
    """(x_train uint8, y_train, x_val uint8, y_val, class names) from a generated dataset
    ('textures', 'shapes') or a folder."""
    import numpy as np

    from ..datasets import KINDS, load_image_folder, make_dataset
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
    from ..weights.hdf5 import json_text
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
    """Body of ``minvert train`` (see ``minvert train --help``); a second run into the same
    --out at the same time refuses in one line."""
    from ..files import run_folder_lock
    with run_folder_lock(args.out):
        return _train_locked(args, log, on_step)


def _train_locked(args, log, on_step):
    import numpy as np

    from ..backend import array_module
    from ..datasets import KINDS, make_dataset
    from ..nets.tiny import build_tiny
    from ..classifier_training import accuracy, train_classifier
    from ..weights.project import save, write_json
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
