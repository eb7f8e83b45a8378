"""The allow-listed unpickler behind :mod:`minvert.weights.torch_pth`: torch globals to stand-ins.

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
format an object from the file beyond a few dozen characters (``pickle_scan.short``). Tensors
stay :class:`Tensor` placeholders; torch_pth reads the storages and materialises them.
"""
import collections
import pickle

from ..errors import FormatError
from .pickle_scan import prescan, refuse, short

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



def load_pickle(f, legacy):
    """One pickle from ``f`` through :func:`~minvert.weights.pickle_scan.prescan`, then the
    allow-listed unpickler; returns (object, unpickler)."""
    prescan(f)
    unpickler = _SafeUnpickler(f, legacy)
    return unpickler.load(), unpickler


class _Inert:
    """Base of every object the pickle can get hold of: BUILD on it is refused."""
    __slots__ = ()

    def __setstate__(self, state):
        refuse(f"BUILD on {getattr(self, 'name', type(self).__name__.strip('_'))} refused")


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


class Tensor(_Inert):
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
            refuse("BUILD on OrderedDict with a non-dict state refused")


def _ints(t, what):
    if not isinstance(t, tuple) or len(t) > 32 or not all(type(v) is int and 0 <= v < 2**62
                                                          for v in t):
        refuse(f"tensor {what} ({short(t)}) is not a tuple of at most 32 non-negative ints")
    return t


def _tensor(storage, offset, size, stride, code=None, metadata=None):
    if not isinstance(storage, _StorageRef):
        refuse(f"tensor storage is a {type(storage).__name__}, not a storage")
    if type(offset) is not int or offset < 0:
        refuse(f"tensor storage offset {short(offset)} is not a non-negative int")
    if len(_ints(size, "size")) != len(_ints(stride, "stride")):
        refuse(f"tensor size {size} and stride {stride} differ in length")
    if metadata and (not isinstance(metadata, dict) or set(metadata) - {"conj", "neg"}):
        refuse(f"unsupported tensor metadata ({short(metadata)})")
    t = Tensor()
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
        refuse(f"tensor dtype ({short(dtype)}) is not a torch dtype")
    return _tensor(storage, offset, size, stride, dtype.code, metadata)


def _rebuild_parameter(data, requires_grad, hooks, state=None):
    return data if isinstance(data, Tensor) else refuse("Parameter data is not a tensor")


_ALLOWED = {
    ("collections", "OrderedDict"): _Call("collections.OrderedDict", _StateDict),
    ("torch", "Size"): _Call("torch.Size", tuple),
    ("torch", "device"): _Call("torch.device", lambda *a: ":".join(
        str(v) if type(v) in (str, int) and len(str(v)) < 64 else refuse("bad torch.device")
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
            refuse(f"unsupported persistent id ({short(pid)}; a pickled module or object?)")
        stype, key, numel = pid[1], pid[2], pid[4]
        if not (isinstance(stype, _Marker) and stype.name.endswith("Storage")):
            refuse(f"storage type ({short(stype)}) is not a torch storage class")
        if not isinstance(key, str) or len(key) > 256 or type(numel) is not int or not 0 <= numel < 2**62:
            refuse(f"bad storage key {short(key)} or size {short(numel)}")
        if self.storages.setdefault(key, (stype.code, numel)) != (stype.code, numel):
            refuse(f"storage '{key}' is declared twice with different types or sizes")
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return _StorageRef(key, stype.code, numel)
        if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)):
            refuse(f"storage view ({short(view)}) is not (key, offset, size)")
        vkey, off, vnumel = view
        if type(off) is not int or type(vnumel) is not int or not 0 <= off <= off + vnumel <= numel:
            refuse(f"storage view ({short(off)}, {short(vnumel)}) is outside storage '{key}'")
        return _StorageRef(vkey, stype.code, vnumel, (key, off, vnumel))
