"""minvert's own weight format: one self-describing HDF5 file per network.

Root attributes:
    format="minvert", format_version=1, arch, config (JSON: rebuilds the architecture),
    preprocessing (JSON: colour order, mean, std, scale, input size), labels (JSON list),
    source (JSON: original file name and SHA-256, when converted from another format).
One group per weighted layer, named like the layer in the network (``conv1_1``,
``layer1.0.bn1``, ...), holding datasets ``w, b`` (conv: (F, C, KH, KW); dense: (out, in))
and ``gamma, beta, mean, var`` (batch-norm).

Files are written to a temporary name in the same folder and renamed, so an interrupted
write never leaves a half-written file under the real name.
"""
import json
import os
from pathlib import Path

import numpy as np

from ..backend import array_module, default_device, get_array_module, to_numpy
from ..errors import FormatError, MinvertError, ShapeError

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
    missing = [n for n in expected if n not in weights]
    extra = [n for n in weights if n not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing layer(s) {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if extra:
            parts.append(f"unexpected layer(s) {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")
        raise FormatError(f"{what} do not match the {net.config.get('arch')} architecture: {'; '.join(parts)}")
    for name, layer in expected.items():
        for store in (layer.params, layer.state):
            for k, old in store.items():
                if k not in weights[name]:
                    raise FormatError(f"{what}: layer {name} has no array {k!r}")
                new = np.asarray(weights[name][k])
                if new.shape != tuple(old.shape):
                    raise ShapeError(f"{what}: layer {name} array {k} has shape {new.shape}, "
                                     f"expected {tuple(old.shape)}")
                store[k] = _like(old, new)
    return net


def _like(old, new):
    """``new`` as an array of ``old``'s dtype on ``old``'s device."""
    xp = get_array_module(old)
    return xp.asarray(new.astype(old.dtype, copy=False))


def save(net, path, source=None, force=False):
    """Write ``net`` to ``path`` in the project format. ``source``: {"name", "sha256"}."""
    path = Path(path)
    if path.exists() and not force:
        raise MinvertError(f"{path} exists; choose another name or pass --force to overwrite it")
    import h5py
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
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
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_header(path):
    """The root attributes of a project file as Python values; FormatError if it is not one."""
    import h5py
    path = Path(path)
    if not path.is_file():
        raise MinvertError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise FormatError(f"{path} is not an HDF5 file (truncated or another format); "
                          f"convert weights with `minvert convert`") from None
    with f:
        if f.attrs.get("format") != "minvert":
            raise FormatError(f"{path} is an HDF5 file but not a minvert weight file; "
                              f"if it holds Keras weights, run `minvert convert {path} OUT.h5`")
        try:
            header = {k: json.loads(f.attrs[k]) for k in ("config", "preprocessing", "labels", "source")}
        except (KeyError, ValueError) as e:
            raise FormatError(f"{path}: damaged header ({e}); convert or download it again") from None
        header["format_version"] = int(f.attrs.get("format_version", 0))
    if header["format_version"] > FORMAT_VERSION:
        raise FormatError(f"{path} was written by a newer minvert (format {header['format_version']}); upgrade minvert")
    return header


def load(path, dtype="float32", device=None):
    """Rebuild the network stored in ``path`` with its weights, preprocessing and labels."""
    import h5py
    from ..images import Preprocessing
    from ..nets import build
    header = read_header(path)
    pre = header["preprocessing"]
    net = build(header["config"], dtype=np.dtype(dtype),
                preprocessing=Preprocessing.from_dict(pre) if pre else None,
                labels=header["labels"])
    try:
        with h5py.File(path, "r") as f:
            weights = {name: {k: f[name][k][()] for k in f[name]} for name in f}
    except (OSError, KeyError) as e:
        raise FormatError(f"{path}: cannot read the weights ({e}); the file may be truncated") from None
    assign_weights(net, weights, what=str(path))
    net.astype(np.dtype(dtype))
    net.source = header["source"]
    net.to(array_module(device or default_device()))
    return net
