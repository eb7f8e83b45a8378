"""Checkpoints of the training loop (:mod:`minvert.training`): write, write in the background,
read back with every array and number checked.

A checkpoint (HDF5) holds the weights (with batch-norm running stats), the optimizer state, and
the loop's progress record (JSON): the random generator's state at the start of the current
epoch, the epoch and the next batch index in it, the epoch's running sums, the history. It is
built in memory and renamed into place, so a full disk or a kill leaves the previous one whole.
"""
import json
import threading
from pathlib import Path

import numpy as np

from .backend import is_gpu_array, to_numpy
from .errors import FormatError, MinvertError
from .weights.hdf5 import open_h5, read_array, read_json_attr, read_text_attr
from .weights.project import assign_weights, h5_written, network_weights, read_weights

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
