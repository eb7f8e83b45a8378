"""The feature cache file of paper 003 (``minvert reconstruct extract`` writes it).

Cache file (HDF5, root attribute ``format = "minvert-feature-cache"``)::

    features (N, D) float32      pooled features, one row per image, in extraction order
    targets  (N, S, S, 3) uint8  the image resized to S x S (S = target_size, the paper's 256)
                                 with the encoder's own resampling filter (Keras: nearest, like
                                 the paper's load_img)
    names    (N,) UTF-8          the file paths as given (normalised)
    attrs    count, model (name as given), model_path, model_config, model_sha256 (hash of the
             encoder's weights), preprocessing, feature_size, target_size, target_resample

The file is only ever written whole (:func:`write_cache`: built in memory, renamed into place):
extract adds rows by writing the old and the new rows to a new file, at the end, when
interrupted and every minute or so, so an interruption keeps every batch up to then and a full
disk keeps the previous file. Reading follows minvert's HDF5 reader policy (weights/hdf5.py).
"""
import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import FormatError, MinvertError
from ..images import resize_exact
from ..weights.hdf5 import (open_h5, read_array, read_budget, read_int_attr, read_json_attr,
                            read_text_attr)
from ..weights.project import h5_written

CACHE_FORMAT = "minvert-feature-cache"
_JSON_ATTRS = ("model_config", "preprocessing")
HEADER_KEYS = ("model", "model_path", "model_config", "model_sha256", "preprocessing",
               "feature_size", "target_size", "target_resample")
_LIMITS = {"feature_size": (1, 1 << 16), "target_size": (4, 4096), "count": (0, 1 << 31)}


def open_cache(path):
    """The cache opened for reading under minvert's HDF5 reader policy (weights/hdf5.py)."""
    if not Path(path).is_file():
        raise MinvertError(f"{path}: no such feature cache; create it with `minvert reconstruct extract`")
    return open_h5(path, "a minvert feature cache", "; extract again into a new file")


def read_header(f, path):
    """(header dict, row count) of an open cache, or a one-line FormatError."""
    import h5py  # here, as in weights/hdf5.py: `minvert --help` must not load h5py
    if read_text_attr(f, "format", path) != CACHE_FORMAT:
        raise FormatError(f"{path} is an HDF5 file but not a minvert feature cache")
    header = {}
    for k in HEADER_KEYS:
        if k in _JSON_ATTRS:
            header[k] = read_json_attr(f, k, path)
        elif k in ("feature_size", "target_size"):
            header[k] = read_int_attr(f, k, path, *_LIMITS[k])
        else:
            header[k] = read_text_attr(f, k, path, default=None)
            if header[k] is None:
                raise FormatError(f"{path}: damaged feature cache (no '{k}'); extract again into a new file")
    if not all(isinstance(header[k], dict) for k in _JSON_ATTRS):
        raise FormatError(f"{path}: damaged feature cache (model_config or preprocessing is not "
                          "an object); extract again into a new file")
    count = read_int_attr(f, "count", path, *_LIMITS["count"])
    for k in ("features", "targets", "names"):
        d = f.get(k)
        if not isinstance(d, h5py.Dataset) or not d.shape or d.shape[0] < count:
            raise FormatError(f"{path}: damaged feature cache ('{k}' is missing or has fewer than "
                              f"{count} rows); extract again into a new file")
    return header, count


class Cache:
    """A feature cache in memory: features (N, D) float32, targets (N, S, S, 3) uint8, names."""

    def __init__(self, path, header, features, targets, names):
        self.path, self.header = Path(path), header
        self.features, self.targets, self.names = features, targets, names

    feature_size = property(lambda self: self.header["feature_size"])
    target_size = property(lambda self: self.header["target_size"])

    def __len__(self):
        return len(self.names)


def read_cache(path):
    """Load a whole feature cache (see the module docstring)."""
    with open_cache(path) as f:
        header, n = read_header(f, path)
        S, D = header["target_size"], header["feature_size"]
        need, budget = n * (4 * D + 3 * S * S), read_budget()
        if need > budget:
            raise FormatError(f"{path}: {n} rows of {D}-d features and {S}px targets need "
                              f"{need / 2**20:,.0f} MB, more than the read budget of "
                              f"{budget / 2**20:,.0f} MB (raise MINVERT_MAX_READ_MB to load it)")
        features = read_array(f["features"], path, "features", (n, D), rows=n)
        features = features.astype(np.float32, copy=False)
        targets = read_array(f["targets"], path, "targets", (n, S, S, 3), kinds="u", rows=n)
        names = read_array(f["names"], path, "names", (n,), kinds="O", rows=n)
    if targets.dtype != np.uint8 or not all(isinstance(v, bytes) and len(v) < 4096 for v in names):
        raise FormatError(f"{path}: damaged feature cache (targets not uint8 or names not file "
                          "paths); extract again into a new file")
    names = [v.decode("utf-8", "replace") for v in names]
    return Cache(path, header, features, targets, names)


def write_cache(path, header, features, targets, names):
    """Write a whole cache (``header`` and its rows) to ``path``: built in memory and renamed
    into place (:func:`minvert.weights.project.h5_written`), so a full disk, a size limit or a
    kill leaves the previous file whole and readable."""
    import h5py  # here, as in weights/hdf5.py: `minvert --help` must not load h5py
    D, S, n = header["feature_size"], header["target_size"], len(names)
    with h5_written(path) as f:
        f.attrs["format"] = CACHE_FORMAT
        for k, v in header.items():
            f.attrs[k] = json.dumps(v) if k in _JSON_ATTRS else v
        f.attrs["count"] = n
        f.create_dataset("features", data=np.asarray(features, np.float32).reshape(n, D),
                         maxshape=(None, D), chunks=(64, D))
        f.create_dataset("targets", data=np.asarray(targets, np.uint8).reshape(n, S, S, 3),
                         maxshape=(None, S, S, 3), chunks=(1, S, S, 3))
        f.create_dataset("names", data=np.array(names, dtype=object), maxshape=(None,),
                         dtype=h5py.string_dtype("utf-8"), chunks=(256,))


def describe_encoder(h):
    """'resnet50 (resnet50, 2048-d, weights 0123abcd4567)': the encoder a cache header records."""
    c = h["model_config"]
    arch = f"{c.get('arch')}{c.get('depth') or ''}"
    return f"{h['model'] or arch} ({arch}, {h['feature_size']}-d, weights {h['model_sha256'][:12]})"


def targets_at(cache, rows, size):
    """uint8 (n, size, size, 3) targets of cache rows; smaller sizes by box-filter downsampling
    (the exact mean of each block when size divides the cached size)."""
    t = cache.targets[np.asarray(rows, dtype=np.int64)]
    if size == cache.target_size:
        return t
    return np.stack([resize_exact(im, size, "box") for im in t]) if len(t) else t[:, :size, :size]


def names_digest(names, rows):
    """SHA-256 of the image names of ``rows``: a run records which images it trained on."""
    return hashlib.sha256("\n".join(names[r] for r in rows).encode()).hexdigest()
