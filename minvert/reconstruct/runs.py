"""Paper 003's run bookkeeping: the decoder config, the split, and the run folder's run.json.

A run folder (``minvert reconstruct train --out DIR``) holds run.json (decoder config, cache
record, split rows, settings: everything that changes the trajectory), checkpoint.h5 and
log.jsonl (:func:`minvert.train.run_epochs`), decoder.h5/decoder.json (:mod:`.watch`) and the
pictures. :func:`open_run` starts or continues one; :func:`read_run`, :func:`check_run_cache`
and :func:`load_decoder` are how evaluate, decode and the figures read it back.
"""
import json
import math
from pathlib import Path

import numpy as np

from ..bounds import fraction_text
from ..errors import FormatError, MinvertError
from ..regular_files import read_regular_text
from ..nets.decoder import PAPER_CONFIG, decoder_config
from ..weights.project import load, write_json
from .cache_file import HEADER_KEYS, describe_encoder, names_digest
from .watch import decoder_epoch

PAPER_TEST_SIZE = 10  # the paper's code holds out the first 10 loadable images
DEFAULTS = {"epochs": 100, "batch_size": 30, "loss": "bce", "optimizer": "adadelta", "lr": None,
            "rho": 0.95, "eps": 1e-8, "seed": 0, "split": "paper", "n_train": None}
DEFAULT_LR = {"adadelta": 1.0, "adam": 1e-3}


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
        frac = fraction_text(split.split(":", 1)[1], f"split {split!r}")
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
    """run.json of ``run_dir``, checked enough that the code reading it cannot trip."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise MinvertError(f"{run_dir} holds no reconstruct run (run.json missing); "
                           "train one with `minvert reconstruct train`")
    text = read_regular_text(path, "a run.json")
    try:
        run = json.loads(text)
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
                           f"({describe_encoder(cache.header)}); use {rc['path']}")
    rows = split["train"] + split["test"]
    if (rows and max(rows) >= len(cache)) or names_digest(cache.names, rows) != rc["names_sha256"]:
        raise MinvertError(f"{cache.path} does not hold the images the run in {run_dir} was trained on "
                           f"(names differ); use {rc['path']}")


def load_decoder(run_dir, run, device=None, log=None):
    """The run's decoder.h5; ``log`` gets a note when it is from an unfinished run."""
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


def describe_decoder(config):
    """'4x4x128 -> widths [...] -> 256px': a decoder config in one phrase."""
    h, w, c = config["start"]
    return f"{h}x{w}x{c} -> widths {config['widths']} -> {h * 2 ** len(config['widths'])}px"


def _new_run(cache, config, given):
    """run.json of a new run: the given settings over DEFAULTS, decoder, cache record, split."""
    settings = {**DEFAULTS, **given}
    if settings["loss"] not in ("bce", "mse"):
        raise MinvertError(f"unknown loss {settings['loss']!r}; use bce (the paper's) or mse")
    if settings["optimizer"] not in DEFAULT_LR:
        raise MinvertError(f"unknown optimizer {settings['optimizer']!r}; use adadelta (the paper's) or adam")
    if int(settings["epochs"]) < 1 or int(settings["batch_size"]) < 1:
        raise MinvertError(f"epochs={settings['epochs']}, batch={settings['batch_size']}: both must be >= 1")
    if settings["lr"] is None:
        settings["lr"] = DEFAULT_LR[settings["optimizer"]]
    config = config or make_decoder_config(cache.feature_size, cache.target_size)
    train_rows, test_rows = make_split(len(cache), settings["split"], settings["seed"], settings["n_train"])
    out = config["start"][0] * 2 ** len(config["widths"])
    record = {k: cache.header[k] for k in HEADER_KEYS}
    record.update(path=str(cache.path.resolve()), n_images=len(cache),
                  names_sha256=names_digest(cache.names, train_rows + test_rows))
    return {"decoder": config, "output_size": out, "num_params": decoder_param_count(config),
            "cache": record, "target_downsample": None if out == cache.target_size else "box",
            "split": {"kind": settings["split"], "train": train_rows, "test": test_rows}, "settings": settings}


def _resumed_run(out_dir, cache, config, given, resume):
    """run.json of ``out_dir`` if this request may continue it; MinvertError otherwise."""
    run = read_run(out_dir)
    check_run_cache(run, cache, out_dir)
    if config is not None and config != run["decoder"]:
        raise MinvertError(f"{out_dir} holds a decoder of another architecture ({describe_decoder(run['decoder'])}) "
                           f"than requested ({describe_decoder(config)}); choose another --out")
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


def open_run(out_dir, cache, config, given, resume):
    """run.json for training into ``out_dir``: a new run, or the one there if ``resume``.

    A run stopped before its first checkpoint has nothing to protect and starts afresh (with a
    fresh log); any other existing run, or a folder holding a checkpoint but no run.json, is
    refused unless the request may continue it (:func:`_resumed_run`). run.json is written
    before training starts."""
    started = (out_dir / "run.json").exists()
    if started and not (out_dir / "checkpoint.h5").exists():  # stopped before its first checkpoint
        if resume:
            raise MinvertError(f"--resume: the run in {out_dir} never saved a checkpoint; start it "
                               "again without --resume")
        started = False  # nothing trained to protect: start afresh, with a fresh log
        (out_dir / "log.jsonl").unlink(missing_ok=True)
    if started:
        run = _resumed_run(out_dir, cache, config, given, resume)
    elif resume:
        raise MinvertError(f"--resume: {out_dir} holds no run (run.json missing)")
    elif (out_dir / "checkpoint.h5").exists():
        raise MinvertError(f"{out_dir} holds a checkpoint.h5 but no run.json (not a reconstruct run); "
                           "choose another --out")
    else:
        run = _new_run(cache, config, given)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "run.json", run)
    return run
