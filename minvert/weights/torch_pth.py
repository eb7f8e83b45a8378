"""Read PyTorch ``.pth`` state dicts without torch, through an allow-listed unpickler.

``read_pth(path) -> {key: numpy.ndarray}`` understands the two formats ``torch.save`` writes:

* zip (torch >= 1.6): ``<prefix>/data.pkl`` (pickle protocol 2), raw storages in
  ``<prefix>/data/<key>``, ``<prefix>/byteorder`` ("little" when absent). ``<prefix>`` is taken
  from the first entry (the file stem or ``archive``), never assumed.
* legacy pickle stream (``_use_new_zipfile_serialization=False``, torch < 1.6 files such as
  torchvision's ``vgg19-dcbb9e9d.pth``): pickles of the magic number, protocol 1001, sys_info,
  the object, the sorted storage-key list, then per storage an int64 LE element count and the
  little-endian data.

A tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
requires_grad, hooks[, metadata])`` with the storage a persistent id ``('storage',
torch.FloatStorage, key, location, numel[, view_metadata])``; torch >= 2.x uses
``_rebuild_tensor_v3(..., dtype)`` over a ``torch.storage.UntypedStorage`` (numel in bytes) for
the newer dtypes (uint16/32/64). Offsets, sizes and strides count elements.

Safety (docs/weights.md, section 8, "Reader policy"): ``find_class`` resolves only the globals a state
dict needs (table ``_ALLOWED``) to stand-ins written here; any other global raises FormatError
before anything is called. The stand-ins are instances whose ``__setstate__`` refuses, so BUILD
can only touch the one OrderedDict subclass (whose BUILD state, ``_metadata``, is ignored), and
REDUCE can only call the stand-ins, which check their arguments. Before CPython's unpickler
sees a pickle, ``pickle_scan.prescan`` walks its opcodes without building anything and bounds
the memo index, the stack, the nesting depth and the number of objects any one object reaches
(a "billion laughs" tuple graph is tiny on disk but endless to format or hash). Messages never
format an object from the file beyond a few dozen characters (:func:`_short`). Zip archives
must hold only STORED entries (what torch writes) with sizes inside the file and no duplicate
names. Tensors stay placeholders until the pickle is done; every stride is bounds-checked
against its storage before ``as_strided``, the same placeholder is materialised once, and all
tensors together may not exceed their storages' bytes by more than :data:`_SLACK_BYTES`.
"""
import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

from ..errors import FormatError
from .pickle_scan import MAX_PICKLE_BYTES as _MAX_PICKLE_BYTES, Refused as _Refused, \
    prescan as _prescan, refuse as _bad, short as _short

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# torch storage class -> NumPy type code; "bf16" is read as uint16 and widened to float32
_STORAGE_DTYPES = {
    "DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2", "BFloat16Storage": "bf16",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "b1", "ComplexFloatStorage": "c8",
    "ComplexDoubleStorage": "c16",
}
# torch.<dtype> globals that _rebuild_tensor_v3 may name
_TORCH_DTYPES = {
    "float64": "f8", "float32": "f4", "float16": "f2", "bfloat16": "bf16", "int64": "i8",
    "int32": "i4", "int16": "i2", "int8": "i1", "uint8": "u1", "bool": "b1", "uint16": "u2",
    "uint32": "u4", "uint64": "u8", "complex64": "c8", "complex128": "c16",
}


_MAX_ZIP_ENTRIES = 100_000
_SLACK_BYTES = 16 << 20      # tensors may exceed their storages (broadcasts) by this much


def _load(f, legacy):
    """One pickle from ``f`` through :func:`_prescan`, then the allow-listed unpickler."""
    _prescan(f)
    unpickler = _SafeUnpickler(f, legacy)
    return unpickler.load(), unpickler


class _Inert:
    """Base of every object the pickle can get hold of: BUILD on it is refused."""
    __slots__ = ()

    def __setstate__(self, state):
        _bad(f"BUILD on {getattr(self, 'name', type(self).__name__.strip('_'))} refused")


class _Marker(_Inert):
    """A torch.*Storage class or torch dtype named by the pickle; inert data, not callable."""
    __slots__ = ("name", "code")

    def __init__(self, name, code):
        self.name, self.code = name, code


class _StorageRef(_Inert):
    """Persistent id of one storage: key of its bytes, element type code, element count."""
    __slots__ = ("key", "code", "numel", "view")

    def __init__(self, key, code, numel, view=None):
        # view = (root_key, offset, numel) for a legacy storage slice of another storage
        self.key, self.code, self.numel, self.view = key, code, numel, view


class _Tensor(_Inert):
    """Placeholder for a tensor until the storages are read (legacy: after the object)."""
    __slots__ = ("storage", "offset", "size", "stride", "code", "conj", "neg")


class _Call(_Inert):
    """An allow-listed callable; BUILD cannot alter it, REDUCE calls only ``fn``."""
    __slots__ = ("name", "fn")

    def __init__(self, name, fn):
        self.name, self.fn = name, fn

    def __call__(self, *args):
        return self.fn(*args)


class _StateDict(collections.OrderedDict):
    """What ``collections.OrderedDict`` unpickles to; BUILD (torch's ``_metadata``) is dropped."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            _bad("BUILD on OrderedDict with a non-dict state refused")


def _ints(t, what):
    if not isinstance(t, tuple) or len(t) > 32 or not all(type(v) is int and 0 <= v < 2**62
                                                          for v in t):
        _bad(f"tensor {what} ({_short(t)}) is not a tuple of at most 32 non-negative ints")
    return t


def _tensor(storage, offset, size, stride, code=None, metadata=None):
    if not isinstance(storage, _StorageRef):
        _bad(f"tensor storage is a {type(storage).__name__}, not a storage")
    if type(offset) is not int or offset < 0:
        _bad(f"tensor storage offset {_short(offset)} is not a non-negative int")
    if len(_ints(size, "size")) != len(_ints(stride, "stride")):
        _bad(f"tensor size {size} and stride {stride} differ in length")
    if metadata and (not isinstance(metadata, dict) or set(metadata) - {"conj", "neg"}):
        _bad(f"unsupported tensor metadata ({_short(metadata)})")
    t = _Tensor()
    t.storage, t.offset, t.size, t.stride = storage, offset, size, stride
    t.code = code or storage.code
    t.conj, t.neg = bool(metadata and metadata.get("conj")), bool(metadata and metadata.get("neg"))
    return t


def _rebuild_tensor(storage, offset, size, stride):  # torch < 0.4
    return _tensor(storage, offset, size, stride)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, metadata=None):
    return _tensor(storage, offset, size, stride, metadata=metadata)


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None):
    if not isinstance(dtype, _Marker) or dtype.code is None or dtype.name.endswith("Storage"):
        _bad(f"tensor dtype ({_short(dtype)}) is not a torch dtype")
    return _tensor(storage, offset, size, stride, dtype.code, metadata)


def _rebuild_parameter(data, requires_grad, hooks, state=None):
    return data if isinstance(data, _Tensor) else _bad("Parameter data is not a tensor")


_ALLOWED = {
    ("collections", "OrderedDict"): _Call("collections.OrderedDict", _StateDict),
    ("torch", "Size"): _Call("torch.Size", tuple),
    ("torch", "device"): _Call("torch.device", lambda *a: ":".join(
        str(v) if type(v) in (str, int) and len(str(v)) < 64 else _bad("bad torch.device")
        for v in a)),
    ("torch.storage", "UntypedStorage"): _Marker("torch.UntypedStorage", "u1"),
    ("torch", "UntypedStorage"): _Marker("torch.UntypedStorage", "u1"),
}
for _fn in (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter):
    _ALLOWED["torch._utils", _fn.__name__] = _Call("torch._utils." + _fn.__name__, _fn)
_ALLOWED["torch._utils", "_rebuild_parameter_with_state"] = _ALLOWED["torch._utils",
                                                                     "_rebuild_parameter"]
for _name, _code in _STORAGE_DTYPES.items():
    _ALLOWED["torch", _name] = _Marker("torch." + _name, _code)
for _name, _code in _TORCH_DTYPES.items():
    _ALLOWED["torch", _name] = _Marker("torch." + _name, _code)


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler resolving only ``_ALLOWED``; ``legacy`` selects the 6-tuple persistent ids."""

    def __init__(self, file, legacy):
        super().__init__(file, encoding="utf-8")
        self.legacy, self.storages = legacy, {}

    def find_class(self, module, name):
        try:
            return _ALLOWED[module, name]
        except (KeyError, TypeError):
            hint = ("it holds a pickled model or other Python object, not a state dict; "
                    "save model.state_dict() instead")
            if "Storage" in str(name):
                hint = "quantized/unusual storage types are not supported"
            raise FormatError(f"refused to load global '{module}.{name}': {hint}") from None

    def persistent_load(self, pid):
        sizes = (5, 6) if self.legacy else (5,)  # legacy adds view_metadata
        if not (isinstance(pid, tuple) and len(pid) in sizes and pid[0] == "storage"):
            _bad(f"unsupported persistent id ({_short(pid)}; a pickled module or object?)")
        stype, key, numel = pid[1], pid[2], pid[4]
        if not (isinstance(stype, _Marker) and stype.name.endswith("Storage")):
            _bad(f"storage type ({_short(stype)}) is not a torch storage class")
        if not isinstance(key, str) or len(key) > 256 or type(numel) is not int or not 0 <= numel < 2**62:
            _bad(f"bad storage key {_short(key)} or size {_short(numel)}")
        if self.storages.setdefault(key, (stype.code, numel)) != (stype.code, numel):
            _bad(f"storage '{key}' is declared twice with different types or sizes")
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return _StorageRef(key, stype.code, numel)
        if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)):
            _bad(f"storage view ({_short(view)}) is not (key, offset, size)")
        vkey, off, vnumel = view
        if type(off) is not int or type(vnumel) is not int or not 0 <= off <= off + vnumel <= numel:
            _bad(f"storage view ({_short(off)}, {_short(vnumel)}) is outside storage '{key}'")
        return _StorageRef(vkey, stype.code, vnumel, (key, off, vnumel))


def _flat(raw, code, byteorder):
    """Bytes of one storage -> 1-D array with native byte order."""
    if code == "bf16":  # bfloat16 = the high half of a float32
        u16 = np.frombuffer(raw, np.dtype("u2").newbyteorder(byteorder))
        return (u16.astype(np.uint32) << 16).view(np.float32)
    dt = np.dtype(code).newbyteorder(byteorder) if code not in ("b1", "u1", "i1") else code
    arr = np.frombuffer(raw, np.dtype(dt))
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def _itemsize(code):
    return 2 if code == "bf16" else np.dtype(code).itemsize


def _materialize(t, storage_array):
    """Placeholder -> contiguous array; every stride is checked before ``as_strided``."""
    flat = storage_array(t.storage, t.code)
    if 0 in t.size:
        return np.zeros(t.size, flat.dtype)
    if np.prod(t.size, dtype=float) > max(flat.size, 1 << 24):  # broadcast (stride 0) bomb
        raise FormatError(f"tensor of size {t.size} is far larger than its storage ({flat.size})")
    last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
    if last >= flat.size:
        raise FormatError(f"tensor of size {t.size}, stride {t.stride}, offset {t.offset} "
                          f"reads past its storage of {flat.size} elements")
    view = np.lib.stride_tricks.as_strided(
        flat[t.offset:], t.size, [s * flat.itemsize for s in t.stride], writeable=False)
    out = np.array(view, order="C")  # copy: C-contiguous, owns its memory
    if t.conj:
        out = np.conj(out)
    return -out if t.neg else out


def _storage_arrays(read_raw, byteorder):
    """``(ref, code) -> 1-D array`` of a storage's elements, cached per storage key.

    Views of one storage share its cached array. ``code`` differs from ``ref.code`` only for an
    UntypedStorage (bytes) that ``_rebuild_tensor_v3`` reads as another dtype.
    """
    cache = {}

    def storage_array(ref, code):
        key, off, numel = ref.view if ref.view else (ref.key, 0, ref.numel)
        if code != ref.code and (ref.code != "u1" or ref.view):
            raise FormatError(f"tensor of type {code} over a storage of type {ref.code}")
        if (key, code) not in cache:
            cache[key, code] = _flat(read_raw(key, ref), code, byteorder)
            storage_array.bytes_read += cache[key, code].nbytes
        flat = cache[key, code]
        return flat if code != ref.code else flat[off:off + numel]
    storage_array.bytes_read = 0
    return storage_array


def _unwrap(obj):
    """Find the state dict: the object itself, or under 'state_dict' / 'model'."""
    for _ in range(3):
        if not isinstance(obj, dict):
            raise FormatError(f"it holds {_short(obj)}, not a state dict of tensors")
        if obj and all(isinstance(v, _Tensor) for v in obj.values()):
            break
        inner = [k for k in ("state_dict", "model", "model_state_dict") if k in obj]
        if not inner:
            bad = next((k for k, v in obj.items() if not isinstance(v, _Tensor)), None)
            what = (f"{_short(bad)} is a {type(obj[bad]).__name__.strip('_')}" if bad is not None
                    else "it is empty")
            raise FormatError(f"not a state dict of tensors: {what} (keys: "
                              f"{', '.join(_short(k) for k in list(obj)[:5])})")
        obj = obj[inner[0]]
    else:
        raise FormatError("no state dict found in nested checkpoint")
    keys = list(obj)
    if not all(isinstance(k, str) and len(k) < 1000 for k in keys):
        raise FormatError("state dict keys are not all names (strings under 1000 characters)")
    if all(k.startswith("module.") for k in keys):  # DataParallel
        keys = [k[len("module."):] for k in keys]
    return dict(zip(keys, obj.values()))


def _checked_zip(f, size):
    """The zip archive in ``f`` if every entry is as torch writes it: STORED (uncompressed),
    sizes inside the file, each name once (torch would read the first, a zip tool the last)."""
    zf = zipfile.ZipFile(f)
    infos, seen = zf.infolist(), set()
    if any(i.filename.endswith("/constants.pkl") for i in infos[:_MAX_ZIP_ENTRIES]):
        raise FormatError("a TorchScript archive (torch.jit.save), not a state dict; "
                          "save model.state_dict() with torch.save")
    if len(infos) > _MAX_ZIP_ENTRIES:
        raise FormatError(f"a zip archive with {len(infos):,} entries; no torch.save file has that many")
    for info in infos:
        name = _short(info.filename)
        if info.filename in seen:
            raise FormatError(f"zip entry {name} appears twice; refused (readers disagree on which "
                              "one counts)")
        seen.add(info.filename)
        if info.compress_type != zipfile.ZIP_STORED:
            raise FormatError(f"zip entry {name} is compressed (method {info.compress_type}); "
                              "torch.save stores entries uncompressed, so this file was not "
                              "written by torch")
        if info.file_size != info.compress_size or info.header_offset + info.file_size > size:
            raise FormatError(f"zip entry {name} declares {info.file_size:,} bytes, which do not "
                              "fit in the file")
    if sum(i.file_size for i in infos) > size:  # entries sharing bytes: a zip bomb's trick
        raise FormatError("zip entries overlap (together they hold more bytes than the file)")
    return zf


def _read_zip(f, size):
    zf = _checked_zip(f, size)
    names = zf.namelist()
    if not names or "/" not in names[0]:
        raise FormatError("a zip archive but not a torch.save file (no top-level folder)")
    prefix = names[0].split("/", 1)[0]
    if f"{prefix}/constants.pkl" in names:
        raise FormatError("a TorchScript archive (torch.jit.save), not a state dict; "
                          "save model.state_dict() with torch.save")
    if f"{prefix}/data.pkl" not in names:
        raise FormatError(f"a zip archive but not a torch.save file: no '{prefix}/data.pkl' "
                          f"(entries: {', '.join(_short(n) for n in names[:3])})")
    byteorder = "little"
    if f"{prefix}/byteorder" in names:
        if zf.getinfo(f"{prefix}/byteorder").file_size > 16:
            raise FormatError("the byteorder record is not 'little' or 'big'")
        byteorder = zf.read(f"{prefix}/byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise FormatError(f"unknown byteorder record {byteorder!r}")
    if zf.getinfo(f"{prefix}/data.pkl").file_size > _MAX_PICKLE_BYTES:
        _bad("data.pkl is far larger than any state dict's")
    obj, _ = _load(io.BytesIO(zf.read(f"{prefix}/data.pkl")), legacy=False)
    state, members, budget = _unwrap(obj), set(names), _Budget()

    def read_raw(key, ref):
        name = f"{prefix}/data/{key}"
        if name not in members:
            raise FormatError(f"storage record '{name}' is missing")
        if zf.getinfo(name).file_size != ref.numel * _itemsize(ref.code):
            raise FormatError(f"storage record '{name}' has {zf.getinfo(name).file_size} bytes, "
                              f"expected {ref.numel} x {_itemsize(ref.code)}")
        budget.charge(zf.getinfo(name).file_size)
        return zf.read(name)
    return _materialize_all(state, _storage_arrays(read_raw, "<" if byteorder == "little" else ">"))


def _read_legacy(f, size):
    if _load(f, True)[0] != MAGIC_NUMBER:
        raise FormatError("a pickle file, but not one written by torch.save (no magic number)")
    if _load(f, True)[0] != PROTOCOL_VERSION:
        raise FormatError("unsupported legacy torch protocol version")
    if not isinstance(_load(f, True)[0], dict):
        raise FormatError("legacy torch file without sys_info")
    obj, unpickler = _load(f, True)
    keys = _load(f, True)[0]
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) \
            or len(keys) != len(set(keys)) or set(keys) != set(unpickler.storages):
        raise FormatError("storage key list does not match the storages the object uses")
    raw, budget = {}, _Budget()
    for key in keys:  # records follow in key-list order: int64 LE count, then LE data
        code, numel = unpickler.storages[key]
        count = struct.unpack("<q", f.read(8))[0]
        if count != numel:
            raise FormatError(f"storage '{key}' record holds {count} elements, expected {numel}")
        if count * _itemsize(code) > size - f.tell():
            raise FormatError(f"truncated file: storage '{key}' needs {count * _itemsize(code)} "
                              f"bytes, {size - f.tell()} are left")
        budget.charge(count * _itemsize(code))
        raw[key] = f.read(count * _itemsize(code))
    return _materialize_all(_unwrap(obj), _storage_arrays(lambda key, ref: raw[key], "<"))


class _Budget:
    """Bytes of storage read so far, against the read budget (MINVERT_MAX_READ_MB)."""

    def __init__(self):
        from .hdf5 import read_budget
        self.used, self.limit = 0, read_budget()

    def charge(self, nbytes):
        self.used += nbytes
        if self.used > self.limit:
            raise FormatError(f"the storages hold more than the read budget of "
                              f"{self.limit / 2**20:,.0f} MB (MINVERT_MAX_READ_MB); refused")


def _materialize_all(state, storage_array):
    """{key: array} of the placeholders in ``state``. One placeholder shared by many keys is
    materialised once (the keys share the array); all tensors together may exceed the bytes of
    the storages they read by at most _SLACK_BYTES (stride-0 broadcasts)."""
    done, out, tensor_bytes = {}, {}, 0
    for key, t in state.items():
        if id(t) not in done:
            storage_array(t.storage, t.code)  # read (once) and counted before the budget check
            itemsize = 4 if t.code == "bf16" else np.dtype(t.code).itemsize  # bf16 -> float32
            tensor_bytes += int(np.prod(t.size, dtype=np.float64)) * itemsize
            if tensor_bytes > storage_array.bytes_read + _SLACK_BYTES:
                raise FormatError(f"the tensors would take {tensor_bytes / 2**20:,.0f} MB, far larger "
                                  f"than the {storage_array.bytes_read / 2**20:,.0f} MB of data "
                                  "stored; refused (shared or broadcast storages)")
            done[id(t)] = _materialize(t, storage_array)
            if done[id(t)].dtype.kind in "fc" and not np.isfinite(done[id(t)]).all():
                raise FormatError(f"tensor {_short(key)} holds NaN or infinite values; the "
                                  "weights are damaged")
        out[key] = done[id(t)]
    return out


def read_pth(path):
    """Read a torch ``.pth`` state dict (zip or legacy) into ``{key: numpy.ndarray}``.

    Keys and order are as in the file; a ``{"state_dict": ...}`` / ``{"model": ...}`` wrapper is
    opened and a ``module.`` prefix on every key is stripped. Arrays are contiguous copies in
    native byte order with the stored dtype (bfloat16 becomes float32; ``num_batches_tracked``
    stays, an int64 0-d array). Raises FormatError (one line) for anything else, including any
    pickle global outside the allow-list.
    """
    name = os.path.basename(str(path))
    if os.path.exists(path) and not os.path.isfile(path):
        raise FormatError(f"{name}: not a regular file (a folder, pipe or device)")
    try:
        with open(path, "rb") as f:
            head = f.read(512)
            f.seek(0)
            if head[:4] == b"PK\x03\x04":
                return _read_zip(f, os.fstat(f.fileno()).st_size)
            if head[257:262] == b"ustar":
                raise FormatError("the pre-2017 tar torch format is not supported; re-save it")
            if head[:1] == b"\x80":
                return _read_legacy(f, os.fstat(f.fileno()).st_size)
            raise FormatError(f"not a PyTorch file (neither zip nor pickle; starts {head[:8]!r})")
    except FormatError as e:
        raise FormatError(f"{name}: {e}") from None
    except _Refused as e:
        raise FormatError(f"{name}: refused: {e}") from None
    except OSError as e:
        raise FormatError(f"{name}: cannot read: {e.strerror or e}") from None
    except (EOFError, struct.error) as e:
        raise FormatError(f"{name}: truncated file ({e})") from None
    except zipfile.BadZipFile as e:
        raise FormatError(f"{name}: truncated or corrupt zip archive ({e})") from None
    except Exception as e:  # noqa: BLE001 - anything else the parser trips on is a bad file
        words = [a for a in e.args if isinstance(a, str)]  # other args may be endless to format
        msg = f" ({' '.join(words[0].split())[:200]})" if words else ""
        raise FormatError(f"{name}: corrupt or truncated torch file{msg}") from None
