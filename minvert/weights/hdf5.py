"""The one way minvert opens HDF5 files it did not just write: model files, Keras weights,
checkpoints and feature caches (docs/weights.md, "Reader policy").

HDF5 can make a read reach outside the file, so :func:`open_h5` audits the whole file before
anything is read and refuses

* external links (``h5py.ExternalLink``: an object in another file) and user-defined links;
  soft links stay inside the file once external ones are gone;
* datasets with external raw storage (their bytes live in another file, e.g. ``/etc/passwd``)
  and virtual datasets (mapped from other files);
* filters other than HDF5's built-in ones and h5py's LZF (others load plugins from disk).

Sizes are declared in the file and can be lies (a 1 KB file may declare a 100 GB dataset
that HDF5 fills on read), so :func:`read_array` checks the declared shape -- against the
shape the architecture expects, or against a byte budget -- and the dtype before reading,
and refuses NaN/inf in float data. :func:`read_json_attr` bounds and parses a text attribute.

The layout costs memory and time too, so the audit also refuses, before any data is read,
a chunk larger than its dataset or the read budget (HDF5 allocates, and decompresses into, a
whole chunk: one gzip chunk declared at 2.4 GB costs 2.4 GB), more chunks than the read
budget pays for (each costs ~4 KB to read: 1-element chunks turn 13 MB into a gigabyte),
more than MAX_OBJECTS objects, and groups nested deeper than MAX_DEPTH (10,000 nested groups
take minutes to walk).
"""
import json
import os
from contextlib import contextmanager

import numpy as np

from ..bounds import MAX_READ_MB, env_number
from ..errors import FormatError, MinvertError

MAX_OBJECTS = 50_000         # links and objects a file may hold (ResNet-152: ~2,000)
MAX_DEPTH = 32               # nested groups (Keras full models: 4)
# what reading one chunk costs besides its data (index, cache entry): measured 3.8 KB, h5py 3.16 /
# HDF5 2.0 (400,000 chunks of 4 bytes: 1.5 GB); so the chunk count is bounded by the read budget
CHUNK_OVERHEAD_BYTES = 4096
CHUNK_SLACK_BYTES = 1 << 20  # a chunk may exceed its dataset's size by this (a growing cache)
MAX_ATTR_BYTES = 16 << 20    # one attribute (configs, labels, histories: kilobytes)
# deflate, shuffle, fletcher32, szip, nbit, scaleoffset; h5py's LZF
SAFE_FILTERS = {1, 2, 3, 4, 5, 6, 32000}


def read_budget():
    """Bytes one file may make minvert read without an architecture to bound them:
    $MINVERT_MAX_READ_MB megabytes (range: minvert.bounds.MAX_READ_MB), default 768."""
    return int(env_number(*MAX_READ_MB) * (1 << 20))


@contextmanager
def open_h5(path, what, hint=""):
    """``with open_h5(path, what) as f``: ``h5py.File(path, "r")`` after the audit above.

    FormatError (one line) for a file that is missing, not HDF5, damaged, or reaches outside
    itself, also when HDF5 fails later inside the block. ``what`` names the expected content
    in messages ("a minvert weight file"); ``hint`` says what to do instead."""
    f = _open_audited(path, what, hint)
    try:
        with f:
            yield f
    except MinvertError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError, AttributeError, IndexError):
        raise FormatError(f"{path}: HDF5 data truncated or corrupt; it is not readable as "
                          f"{what}{hint}") from None


def _open_audited(path, what, hint):
    import h5py
    path = os.fspath(path)
    if not os.path.isfile(path):  # missing, or a pipe or device (whose bytes may never end)
        raise FormatError(f"{path}: no such file" if not os.path.exists(path) else
                          f"{path} is not a regular file (a directory, pipe or device); give {what}")
    if not h5py.is_hdf5(path):
        raise FormatError(f"{path} is not an HDF5 file, so not {what}{hint}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        if "unable to lock file" in str(e):  # another process has it open for writing
            raise FormatError(f"{path} is in use by another process (it is open for writing); "
                              "wait for that process to finish and run again") from None
        raise FormatError(f"{path}: HDF5 file truncated or corrupt; it is not readable as "
                          f"{what}{hint}") from None
    try:
        _audit(f, path)
    except FormatError:
        f.close()
        raise
    except Exception:  # noqa: BLE001 - HDF5 raises many types on damaged metadata
        f.close()
        raise FormatError(f"{path}: HDF5 structure truncated or corrupt; it is not readable as "
                          f"{what}{hint}") from None
    return f


def _audit(f, path):
    """Raise FormatError for the first refused link or dataset. (h5py's visitors stop when
    the callback returns a value; an exception raised inside one breaks h5py.)"""
    import h5py
    count = 0

    def check_link(name, link):
        nonlocal count
        count += 1
        if count > MAX_OBJECTS:
            return f"{path}: more than {MAX_OBJECTS:,} HDF5 objects; refused"
        if name.count("/") >= MAX_DEPTH:
            return f"{path}: HDF5 groups nested more than {MAX_DEPTH} deep; refused"
        if isinstance(link, h5py.ExternalLink):
            return (f"{path}: '{name[:100]}' is a link to another file; minvert reads only the "
                    "file it is given")
        if not isinstance(link, (h5py.HardLink, h5py.SoftLink)):
            return f"{path}: '{name[:100]}' is a user-defined HDF5 link; refused"
        return None

    def check_object(name, obj):
        if isinstance(obj, h5py.Dataset):
            try:
                check_dataset(obj, path, name)
            except FormatError as e:
                return str(e)
        return None

    problem = f.visititems_links(check_link) or f.visititems(check_object)
    if problem:
        raise FormatError(problem)


def check_dataset(dset, path, name=None):
    """Refuse storage outside the file and unknown filters (also used for a single dataset)."""
    name = (name or dset.name)[:100]
    if dset.is_virtual:
        raise FormatError(f"{path}: dataset '{name}' is a virtual dataset mapped from other "
                          "files; refused")
    plist = dset.id.get_create_plist()
    if plist.get_external_count():
        raise FormatError(f"{path}: dataset '{name}' keeps its data in an external file; "
                          "minvert reads only the file it is given")
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in SAFE_FILTERS:
            raise FormatError(f"{path}: dataset '{name}' needs HDF5 filter {code}, which is "
                              "not built in; refused")
    _check_chunks(dset, path, name)


def _check_chunks(dset, path, name):
    """Refuse a chunk layout that costs more than the data it holds (see the module doc)."""
    if dset.chunks is None or dset.shape is None:
        return
    itemsize = dset.dtype.itemsize
    chunk_bytes = int(np.prod(dset.chunks, dtype=np.float64)) * itemsize
    data_bytes = int(np.prod(dset.shape, dtype=np.float64)) * itemsize
    n_chunks = int(np.prod([-(-n // c) for n, c in zip(dset.shape, dset.chunks)], dtype=np.float64))
    budget = read_budget()
    if chunk_bytes > min(data_bytes + CHUNK_SLACK_BYTES, budget):
        raise FormatError(f"{path}: dataset '{name}' declares chunks of {chunk_bytes / 2**20:,.1f} MB "
                          f"for {data_bytes / 2**20:,.1f} MB of data (HDF5 would allocate and "
                          f"decompress whole chunks; read budget {budget / 2**20:,.0f} MB); refused")
    if n_chunks * CHUNK_OVERHEAD_BYTES > budget:
        raise FormatError(f"{path}: dataset '{name}' of shape {tuple(dset.shape)} is stored in "
                          f"{n_chunks:,} chunks of {chunk_bytes:,} bytes, costing more to read than "
                          f"the read budget of {budget / 2**20:,.0f} MB (MINVERT_MAX_READ_MB); refused")


def read_array(dset, path, name, shape=None, kinds="f", max_bytes=None, rows=None):
    """The data of ``dset`` (first ``rows`` rows if given) as a NumPy array, after checking:

    shape: the exact shape expected (the architecture's), or None to use ``max_bytes``
    (default :func:`read_budget`) on the declared size; kinds: dtype kinds accepted
    ("f" float16/32/64, "u" unsigned, "i" signed); float data must be finite.
    """
    import h5py
    if not isinstance(dset, h5py.Dataset):
        raise FormatError(f"{path}: '{name}' is missing or not a dataset; the file is damaged")
    dt = dset.dtype
    if dt.kind not in kinds or dt.fields is not None or dt.itemsize > 8 or dt.subdtype:
        want = {"f": "floating point", "u": "unsigned integers", "i": "integers", "S": "text"}
        raise FormatError(f"{path}: '{name}' holds {_dtype_text(dt)} values, expected "
                          + " or ".join(want[k] for k in kinds if k in want))
    if dt.kind == "O" and h5py.check_string_dtype(dt) is None:
        raise FormatError(f"{path}: '{name}' holds variable-length values that are not text")
    declared = tuple(dset.shape) if dset.shape is not None else None
    if declared is None:
        raise FormatError(f"{path}: '{name}' is an empty (null) dataset")
    if rows is not None:
        if not declared or declared[0] < rows:
            raise FormatError(f"{path}: '{name}' has fewer than the {rows} rows recorded")
        declared = (rows,) + declared[1:]
    if shape is not None and declared != tuple(shape):
        raise FormatError(f"{path}: '{name}' has shape {declared}, expected {tuple(shape)}")
    budget = read_budget() if max_bytes is None else max_bytes
    nbytes = int(np.prod(declared, dtype=np.float64)) * dt.itemsize
    if shape is None and nbytes > budget:
        raise FormatError(f"{path}: '{name}' declares {nbytes / 2**20:,.0f} MB, more than the "
                          f"read budget of {budget / 2**20:,.0f} MB (MINVERT_MAX_READ_MB)")
    check_dataset(dset, path, name)
    try:
        data = dset[()] if rows is None else dset[:rows]
    except Exception:  # noqa: BLE001 - truncated chunks, failed decompression
        raise FormatError(f"{path}: cannot read '{name}'; the file is truncated or "
                          "corrupt") from None
    data = np.asarray(data)
    if dt.kind == "f" and not np.isfinite(data).all():
        raise FormatError(f"{path}: '{name}' holds NaN or infinite values; the file is damaged")
    return data


def _dtype_text(dt):
    if dt.fields is not None:
        return "compound (record)"
    return {"O": "variable-length", "S": "string", "U": "string", "V": "opaque",
            "b": "boolean", "c": "complex"}.get(dt.kind, str(dt))


def read_json_attr(obj, key, path):
    """``obj.attrs[key]`` (a JSON string) parsed; FormatError if absent, huge or not JSON."""
    if key not in obj.attrs:
        raise FormatError(f"{path}: attribute '{key}' is missing; the file is damaged")
    return json_text(read_text_attr(obj, key, path), f"{path}: attribute '{key}'")


def read_text_attr(obj, key, path, default=None):
    """``obj.attrs[key]`` as a bounded str (``default`` when absent)."""
    if key not in obj.attrs:
        return default
    value = read_attr(obj, key, path)
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "SUO":
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        value = bytes(value).decode("utf-8", "replace")
    if not isinstance(value, str):
        raise FormatError(f"{path}: attribute '{key}' is not text; the file is damaged")
    return value


def read_attr(obj, key, path):
    """``obj.attrs[key]``, refused when it stores more than MAX_ATTR_BYTES: its declared size
    before reading, and after reading the text of variable-length strings, which HDF5 keeps
    outside the attribute (a 20 MB config declares 16 bytes)."""
    check_attr_size(obj, key, path)
    try:
        value = obj.attrs[key]
    except Exception:  # noqa: BLE001 - unreadable type
        raise FormatError(f"{path}: attribute '{key}' cannot be read; the file is damaged") from None
    items = value.reshape(-1) if isinstance(value, np.ndarray) and value.dtype.kind == "O" else [value]
    size = sum(len(v) for v in items if isinstance(v, (str, bytes)))
    if size > MAX_ATTR_BYTES:
        raise FormatError(f"{path}: attribute '{key}' holds {size / 2**20:,.0f} MB of text, more "
                          f"than {MAX_ATTR_BYTES >> 20} MB; refused")
    return value


def check_attr_size(obj, key, path):
    """FormatError if attribute ``key`` stores more than MAX_ATTR_BYTES."""
    try:
        size = obj.attrs.get_id(key).get_storage_size()
    except RuntimeError:  # HDF5 reports an empty attribute's size 0 as an error
        size = 0
    if size > MAX_ATTR_BYTES:
        raise FormatError(f"{path}: attribute '{key}' is larger than {MAX_ATTR_BYTES >> 20} MB; "
                          "refused")


def json_text(text, where):
    """Parse JSON text; a one-line FormatError naming ``where`` otherwise."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        msg = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply"
        raise FormatError(f"{where} is not valid JSON ({msg}); the file is damaged") from None


def read_int_attr(obj, key, path, lo=0, hi=2**62):
    """An integer attribute in [lo, hi]; FormatError otherwise."""
    value = obj.attrs.get(key) if key in obj.attrs else None
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not lo <= value <= hi:
        raise FormatError(f"{path}: attribute '{key}' is not an integer in [{lo}, {hi}]; "
                          "the file is damaged")
    return int(value)
