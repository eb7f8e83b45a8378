"""Read PyTorch ``.pth`` state dicts without torch, through an allow-listed unpickler.

``read_pth(path) -> {key: numpy.ndarray}`` understands the two formats ``torch.save`` writes:

* zip (torch >= 1.6): ``<prefix>/data.pkl`` (pickle protocol 2), raw storages in
  ``<prefix>/data/<key>``, ``<prefix>/byteorder`` ("little" when absent). ``<prefix>`` is taken
  from the first entry (the file stem or ``archive``), never assumed.
* legacy pickle stream (``_use_new_zipfile_serialization=False``, torch < 1.6 files such as
  torchvision's ``vgg19-dcbb9e9d.pth``): pickles of the magic number, protocol 1001, sys_info,
  the object, the sorted storage-key list, then per storage an int64 LE element count and the
  little-endian data.

The pickles go through :mod:`minvert.weights.torch_unpickle` (allow-listed globals, stand-ins,
opcodes bounded before unpickling), which leaves every tensor a placeholder. Safety here
(docs/weights.md, section 8, "Reader policy"): zip archives must hold only STORED entries (what
torch writes) with sizes inside the file and no duplicate names. Tensors stay placeholders until
the pickle is done; every stride is bounds-checked against its storage before ``as_strided``,
the same placeholder is materialised once, and all tensors together may not exceed their
storages' bytes by more than :data:`_SLACK_BYTES`.
"""
import io
import os
import struct
import zipfile

import numpy as np

from ..errors import FormatError, MinvertError
from ..regular_files import open_regular
from .hdf5 import read_budget
from .pickle_scan import MAX_PICKLE_BYTES, Refused, refuse, short
from .torch_unpickle import Tensor, load_pickle

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
_MAX_ZIP_ENTRIES = 100_000
_SLACK_BYTES = 16 << 20      # tensors may exceed their storages (broadcasts) by this much


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
            raise FormatError(f"it holds {short(obj)}, not a state dict of tensors")
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            break
        inner = [k for k in ("state_dict", "model", "model_state_dict") if k in obj]
        if not inner:
            bad = next((k for k, v in obj.items() if not isinstance(v, Tensor)), None)
            what = (f"{short(bad)} is a {type(obj[bad]).__name__.strip('_')}" if bad is not None
                    else "it is empty")
            raise FormatError(f"not a state dict of tensors: {what} (keys: "
                              f"{', '.join(short(k) for k in list(obj)[:5])})")
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
        name = short(info.filename)
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
                          f"(entries: {', '.join(short(n) for n in names[:3])})")
    byteorder = "little"
    if f"{prefix}/byteorder" in names:
        if zf.getinfo(f"{prefix}/byteorder").file_size > 16:
            raise FormatError("the byteorder record is not 'little' or 'big'")
        byteorder = zf.read(f"{prefix}/byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise FormatError(f"unknown byteorder record {byteorder!r}")
    if zf.getinfo(f"{prefix}/data.pkl").file_size > MAX_PICKLE_BYTES:
        refuse("data.pkl is far larger than any state dict's")
    obj, _ = load_pickle(io.BytesIO(zf.read(f"{prefix}/data.pkl")), legacy=False)
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
    if load_pickle(f, True)[0] != MAGIC_NUMBER:
        raise FormatError("a pickle file, but not one written by torch.save (no magic number)")
    if load_pickle(f, True)[0] != PROTOCOL_VERSION:
        raise FormatError("unsupported legacy torch protocol version")
    if not isinstance(load_pickle(f, True)[0], dict):
        raise FormatError("legacy torch file without sys_info")
    obj, unpickler = load_pickle(f, True)
    keys = load_pickle(f, True)[0]
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
                raise FormatError(f"tensor {short(key)} holds NaN or infinite values; the "
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
    try:  # a pipe or device is refused here: its bytes may never come, or never end
        opened = open_regular(path, "a torch .pth file")
    except MinvertError as e:
        raise FormatError(f"{name}: cannot read: {e}") from None
    try:
        with opened as f:
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
    except Refused as e:
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
