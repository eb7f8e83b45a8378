"""minvert's own weight format: one self-describing HDF5 file per network.

Root attributes:
    format="minvert", format_version=1, arch, config (JSON: rebuilds the architecture),
    preprocessing (JSON: colour order, mean, std, scale, input size), labels (JSON list),
    source (JSON: original file name and SHA-256, when converted from another format; null
    when not recorded; anything else is refused as damaged, see :func:`source_problem`).
One group per weighted layer, named like the layer in the network (``conv1_1``,
``layer1.0.bn1``, ...), holding datasets ``w, b`` (conv: (F, C, KH, KW); dense: (out, in))
and ``gamma, beta, mean, var`` (batch-norm).

Files are written to a temporary name in the same folder and renamed (:func:`atomic_write`),
so an interrupted write never leaves a half-written file under the real name. Reading follows
the HDF5 reader policy of :mod:`minvert.weights.hdf5`: the config is checked against the
limits of :mod:`minvert.nets.limits` before the network is built, and every array's declared
shape against the network's before it is read.
"""
import glob
import io
import json
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..backend import array_module, default_device, get_array_module, to_numpy
from ..errors import FormatError, MinvertError, ShapeError
from ..files import exclusive_lock, lock_beside, translated_write_errors
from .hdf5 import open_h5, read_array, read_int_attr, read_json_attr, read_text_attr
from ..nets import build
from ..nets.preprocessing import Preprocessing

FORMAT_VERSION = 1


def network_weights(net):
    """{layer name: {array name: host array}} of everything the file stores."""
    return {name: {k: to_numpy(v) for k, v in {**layer.params, **layer.state}.items()}
            for name, layer in net.weighted_layers()}


def assign_weights(net, weights, what="weights"):
    """Copy ``weights`` ({layer: {array: value}}) into ``net``, checking names and shapes.

    Every weighted layer of the net must be present with every array at the right shape;
    anything left over is an error too (the file was made for another architecture).
    """
    expected = dict(net.weighted_layers())
    check_layer_names(expected, weights, what)
    for name, layer in expected.items():
        for store in (layer.params, layer.state):
            for k, old in store.items():
                if k not in weights[name]:
                    raise FormatError(f"{what}: layer {name} has no array {k!r}")
                new = np.asarray(weights[name][k])
                if new.shape != tuple(old.shape):
                    raise ShapeError(f"{what}: layer {name} array {k} has shape {new.shape}, "
                                     f"expected {tuple(old.shape)}")
                if k == "var" and not (new >= 0).all():  # a variance below 0 has no square root
                    raise FormatError(f"{what}: layer {name} has a negative batch-norm running "
                                      "variance (var); the file is damaged")
                store[k] = _like(old, new)
    return net


def check_layer_names(expected, names, what):
    """FormatError unless ``names`` are exactly the weighted layers ``expected``."""
    missing = [n for n in expected if n not in names]
    extra = [n for n in names if n not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing layer(s) {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if extra:
            parts.append(f"unexpected layer(s) {', '.join(str(n)[:80] for n in extra[:3])}"
                         f"{' ...' if len(extra) > 3 else ''}")
        raise FormatError(f"{what} do not match the architecture: {'; '.join(parts)}")


def _like(old, new):
    """``new`` as an array of ``old``'s dtype on ``old``'s device."""
    xp = get_array_module(old)
    return xp.asarray(new.astype(old.dtype, copy=False))


@contextmanager
def atomic_write(path):
    """Yield a temporary path beside ``path`` that replaces ``path`` when the block succeeds.

    The temporary ``.NAME.tmpPID`` is removed on any failure; ones left by killed runs (their
    process is gone) are swept first, so hidden files never pile up.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob(f".{glob.escape(path.name)}.tmp*"):
        pid = old.name.rsplit(".tmp", 1)[1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            old.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def h5_written(path):
    """Yield a new HDF5 file (an ``h5py.File``) built in memory; when the block succeeds its
    bytes go to ``path`` through :func:`atomic_write` with plain file writes.

    HDF5 must never meet a full disk or a file-size limit itself: its failed writes leave
    files it cannot close (and h5py crashes at exit). Plain writes fail cleanly, with one line
    (:func:`minvert.files.write_failure`), the temporary removed and the old ``path`` whole."""
    import h5py  # here, as in weights/hdf5.py: `minvert --help` must not load h5py
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        yield f
    with translated_write_errors(path), atomic_write(path) as tmp, open(tmp, "wb") as out:
        out.write(buffer.getbuffer())
        out.flush()
        os.fsync(out.fileno())  # on disk before the rename makes it the file


def write_json(path, obj):
    """JSON written through :func:`atomic_write` (run.json, decoder.json, evaluation.json)."""
    with translated_write_errors(path), atomic_write(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1))


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def save(net, path, source=None, force=False):
    """Write ``net`` to ``path`` in the project format. ``source``: {"name", "sha256"}."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(lock_beside(path), path):  # two writers to one file: the second refuses
        if path.exists() and not force:
            raise MinvertError(f"{path} exists; choose another name or pass --force to overwrite it")
        _write_project(net, path, source)
    return path


def _write_project(net, path, source):
    with h5_written(path) as f:
        f.attrs["format"] = "minvert"
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["arch"] = net.config["arch"]
        f.attrs["config"] = json.dumps(net.config)
        pre = getattr(net, "preprocessing", None)
        f.attrs["preprocessing"] = json.dumps(pre.to_dict() if pre is not None else None)
        f.attrs["labels"] = json.dumps(getattr(net, "labels", None))
        f.attrs["source"] = json.dumps(source)
        for name, arrays in network_weights(net).items():
            group = f.create_group(name)
            for k, v in arrays.items():
                group.create_dataset(k, data=v)


_NOT_OURS = "; if it holds Keras or torch weights, convert it with `minvert convert SRC OUT.h5`"


def read_header(path):
    """The root attributes of a project file as Python values; FormatError if it is not one."""
    with open_h5(path, "a minvert weight file", _NOT_OURS) as f:
        return _header(f, path)


def _header(f, path):
    if read_text_attr(f, "format", path) != "minvert":
        raise FormatError(f"{path} is an HDF5 file but not a minvert weight file{_NOT_OURS}")
    version = read_int_attr(f, "format_version", path)
    if version > FORMAT_VERSION:
        raise FormatError(f"{path} was written by a newer minvert (format {version}); upgrade minvert")
    header = {k: read_json_attr(f, k, path) for k in ("config", "preprocessing", "labels", "source")}
    header["format_version"] = version
    for key, kind in (("config", dict), ("preprocessing", dict), ("labels", list), ("source", dict)):
        if not isinstance(header[key], kind) and not (key != "config" and header[key] is None):
            raise FormatError(f"{path}: attribute '{key}' holds a {type(header[key]).__name__}, "
                              f"not a {kind.__name__}; the file is damaged")
    labels = header["labels"]
    if labels is not None and not all(isinstance(v, str) and len(v) < 1000 for v in labels):
        raise FormatError(f"{path}: attribute 'labels' is not a list of class names; the file is damaged")
    problem = source_problem(header["source"])
    if problem:
        raise FormatError(f"{path}: attribute 'source' is damaged ({problem}); convert or "
                          "download the file again")
    return header


def source_problem(source):
    """What is wrong with a source record (see the module doc), or None: null (not recorded)
    or a dict with a name and, where present, a 64-digit sha256, a number for each
    test/accuracy figure and a history of {name: number} records."""
    if source is None:
        return None
    if not isinstance(source.get("name"), str) or not 0 < len(source["name"]) < 1000:
        return "no file name"
    sha = source.get("sha256", "0" * 64)
    if not isinstance(sha, str) or len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
        return "its sha256 is not 64 hexadecimal digits"
    for key in ("test_accuracy", "test_images"):
        if key in source and not _is_number(source[key]):
            return f"'{key}' is not a number"
    history = source.get("history", [])
    if not isinstance(history, list) or not all(
            isinstance(e, dict) and all(_is_number(v) or v is None for v in e.values())
            for e in history):
        return "its training history is not a list of records of numbers"
    return None


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def read_weights(group, net, path):
    """{layer: {array: host array}} for ``net`` from an HDF5 group (a project file's root, a
    checkpoint's "weights"); every array must have the net's shape before it is read."""
    import h5py  # here, as in weights/hdf5.py: `minvert --help` must not load h5py
    expected = dict(net.weighted_layers())
    check_layer_names(expected, list(group), str(path))
    out = {}
    for name, layer in expected.items():
        g = group[name]
        if not isinstance(g, h5py.Group):
            raise FormatError(f"{path}: '{name}' is not a group of arrays; the file is damaged")
        arrays = {**layer.params, **layer.state}
        extra = [k for k in g if k not in arrays]
        if extra:
            raise FormatError(f"{path}: layer {name} has unexpected array(s) {', '.join(extra[:3])}")
        out[name] = {k: read_array(g.get(k), path, f"{name}/{k}", shape=tuple(v.shape))
                     for k, v in arrays.items()}
    return out


def load(path, dtype="float32", device=None):
    """Rebuild the network stored in ``path`` with its weights, preprocessing and labels."""
    with open_h5(path, "a minvert weight file", _NOT_OURS) as f:
        header = _header(f, path)
        pre = header["preprocessing"]
        try:
            pre = Preprocessing.from_dict(pre) if pre else None
        except MinvertError as e:
            raise FormatError(f"{path}: {e}") from None
        except (TypeError, ValueError, KeyError):
            raise FormatError(f"{path}: damaged preprocessing record; convert or download it again") from None
        try:
            net = build(header["config"], dtype=np.dtype(dtype), preprocessing=pre,
                        labels=header["labels"])
        except MinvertError as e:
            raise FormatError(f"{path}: {e}") from None
        classes = net.config.get("num_classes") if net.config.get("include_top") else None
        if net.labels is not None and classes is not None and len(net.labels) != classes:
            raise FormatError(f"{path}: {len(net.labels)} labels for {classes} classes; the file is damaged")
        weights = read_weights(f, net, path)
    assign_weights(net, weights, what=str(path))
    net.astype(np.dtype(dtype))
    net.source = header["source"]
    net.to(array_module(device or default_device()))
    return net
