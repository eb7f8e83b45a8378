"""Keras legacy HDF5 weight files (``model.save_weights('x.h5')``, Keras 1, 2 and 3): the reader.

* :func:`read_keras_h5` reads the file the way Keras does: root attribute ``layer_names``
  (or chunks ``layer_names0, layer_names1, ...``; under ``model_weights`` for full-model
  files), then per layer group the attribute ``weight_names`` and ``group[weight_name]``.
  Dataset names are never guessed, so both naming generations work: flat
  ``block1_conv1_W_1:0`` (Keras 1) and nested ``block1_conv1/kernel:0`` (Keras 2).
* :mod:`minvert.weights.keras_map` detects the architecture and maps the layers to minvert's
  names and layouts (as :mod:`minvert.weights.torchvision_map` does for torch files).

:func:`load_keras_h5` does both, reading only the arrays the architecture needs.
"""
import os

import h5py
import numpy as np

from ..errors import FormatError, MinvertError
from ..nets.resnet import resnet_config
from ..nets.vgg import vgg_config
from .hdf5 import open_h5, read_array, read_attr, read_budget
from .keras_map import detect_keras_arch, keras_to_minvert, match_layers


def _text(v):
    return v.decode("utf8") if isinstance(v, (bytes, np.bytes_)) else str(v)


def _string_list_attr(obj, name):
    """Keras' ``load_attributes_from_hdf5_group``: list of str, or None if absent."""
    if name in obj.attrs:
        chunks = [_bounded_attr(obj, name)]
    else:
        chunks, i = [], 0
        while f"{name}{i}" in obj.attrs:
            chunks.append(_bounded_attr(obj, f"{name}{i}"))
            i += 1
        if not chunks:
            return None
    out = []
    for chunk in chunks:
        chunk = np.asarray(chunk)
        if chunk.size == 0:  # Keras writes [] as an empty float64 array
            continue
        if chunk.dtype.kind not in "SUO":
            raise FormatError(f"attribute {name!r} of {obj.name!r} holds {chunk.dtype} values, not names")
        out.extend(_text(v) for v in chunk.reshape(-1))
    return out


def _bounded_attr(obj, key):
    return read_attr(obj, key, obj.file.filename)


def _not_keras(f, path):
    if _text(f.attrs.get("format", "")) == "minvert":
        return f"{path} is already a minvert weights file; load it with minvert.load_model"
    groups = sorted(f.keys())
    shown = ", ".join(groups[:5]) + (" ..." if len(groups) > 5 else "") if groups else "none"
    hint = ("; it looks like a Keras 3 '.weights.h5' file, which is not supported: save it with "
            "tf.keras / Keras 2 as legacy '.h5'") if "layers" in groups or "vars" in groups else ""
    return (f"{path} is HDF5 but not Keras weights: no 'layer_names' attribute at the root or in "
            f"'model_weights' (top-level groups: {shown}){hint}")


def read_keras_h5(path):
    """Read a Keras legacy H5 weights or full-model file.

    Returns a list, in the file's ``layer_names`` order (layers without weights included), of
    ``(layer_name, [arrays], [weight_names])``; arrays are NumPy, dtype as stored, Keras
    layout, in ``weight_names`` order. Raises FormatError for a missing, non-HDF5, truncated
    or non-Keras file, or one whose arrays together declare more than the read budget
    (:func:`minvert.weights.hdf5.read_budget`); :func:`load_keras_h5` bounds them by the
    architecture instead.
    """
    with _open(path) as f:
        layers = _read_layers(f, path)
        declared = sum(d.size * d.dtype.itemsize for _, ds, _ in layers for d in ds)
        if declared > read_budget():
            raise FormatError(f"{path}: the weights declare {declared / 2**20:,.0f} MB, more than "
                              f"the read budget (MINVERT_MAX_READ_MB={read_budget() >> 20})")
        return _read_arrays(layers, path)


def _open(path):
    path = os.fspath(path)
    return open_h5(path, "Keras weights (.h5)")


def _read_arrays(layers, path):
    """Datasets -> float arrays (finite, as stored); everything else is refused."""
    return [(name, [read_array(d, path, d.name, shape=d.shape) for d in ds], wnames)
            for name, ds, wnames in layers]


def _read_layers(f, path):
    """Like :func:`read_keras_h5`, with the h5py datasets in place of the arrays (not read)."""
    root = f
    if "layer_names" not in f.attrs and "layer_names0" not in f.attrs and "model_weights" in f:
        root = f["model_weights"]  # full-model file (model.save)
    names = _string_list_attr(root, "layer_names")
    if names is None:
        raise FormatError(_not_keras(f, path))
    layers = []
    for name in names:
        group = root.get(name)
        if not isinstance(group, h5py.Group):
            raise FormatError(f"{path}: layer {name!r} is listed in layer_names but has no group")
        weight_names = _string_list_attr(group, "weight_names") or []
        arrays = []
        for wname in weight_names:
            dset = group.get(wname)
            if not isinstance(dset, h5py.Dataset):
                raise FormatError(f"{path}: layer {name!r} lists weight {wname!r} but has no such dataset")
            arrays.append(dset)
        layers.append((name, arrays, weight_names))
    return layers


def load_keras_h5(path, arch=None):
    """(config, canonical weights) of a Keras .h5 file; ``arch`` as in :func:`detect_keras_arch`.

    The architecture is detected from the declared shapes alone and checked against
    minvert's limits, and every shape against it, before any array is read: the
    architecture is the read budget."""
    with _open(path) as f:
        declared = _read_layers(f, path)
        config = detect_keras_arch(declared, arch)
        try:
            (vgg_config if config["arch"] == "vgg" else resnet_config)(**config)  # limits
        except MinvertError as e:
            raise FormatError(f"{path}: {e}") from None
        wanted = {kname for _, kname, _, _ in match_layers(declared, config)}
        layers = _read_arrays([(n, ds if n in wanted else [], w) for n, ds, w in declared], path)
    return config, keras_to_minvert(layers, config)
