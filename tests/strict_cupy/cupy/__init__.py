"""A strict stand-in for CuPy, so the whole test suite and every command can run "on the GPU"
on a machine without one, and fail wherever real CuPy would refuse.

Put ``tests/strict_cupy`` on ``PYTHONPATH`` and ``import cupy`` finds this package (CLI
subprocesses too); ``MINVERT_DEVICE=gpu`` then makes it minvert's default device. Device
arrays are NumPy arrays behind a wrapper that imitates CuPy's refusals:

- no implicit conversion: ``np.asarray(device)`` raises TypeError (``__array__`` refuses,
  with CuPy's message), so h5py, Pillow and scipy reject device arrays as they do with CuPy;
- no host ndarrays in device operations, 0-d included: operators, functions, ``out=``,
  indices and assigned values refuse them with CuPy's ``Unsupported type`` TypeError;
  Python and NumPy scalars pass; ``cupy.asarray`` / ``cupy.array`` are the explicit way in,
  ``.get()`` / ``cupy.asnumpy`` the way out;
- reductions give 0-d device arrays, not host scalars; integer indexing ``a[i]`` gives a
  0-d *view* of ``a``, as in CuPy (a later write to ``a[i]`` shows in it: keep
  ``float(a[i])`` when the value must survive the write);
- ufuncs take only ``out``, ``dtype`` and ``casting`` (``where``, ``order``, ``subok``...
  raise CuPy's ``Wrong arguments`` TypeError);
- ``empty``, ``empty_like`` and ``ndarray(shape)`` hold garbage (NaN, or random integers);
- only names real CuPy has (``_names.py``, read from cupy-cuda12x 14.0.1); ndarray methods
  likewise; arrays remember their device, and a kernel (operator, ufunc, function) given an
  array of another device than the current one raises CuPy's ``The device where the array
  resides (n) is different from the current device (m). Peer access is unavailable...``
  ValueError; metadata, basic-indexing views and copies to the host work from any device;
- the current device is per thread, as in CUDA: a new thread starts on device 0;
- ``cupy.cuda.runtime.getDeviceCount()`` is ``$STRICT_CUPY_DEVICES`` (default 2, so that
  ``gpu:1`` can be tested);
- it counts the times the host waits for the device (``.get()``, ``cupy.asnumpy``,
  ``float``/``int``/``bool``, ``item``, printing) in ``cupy._core._state["syncs"]``, a hook
  for tests that real CuPy does not have; likewise ``cupy._core.live_bytes(device=None)``,
  ``peak_bytes(device=None)`` and ``reset_peak()`` (device memory in live arrays; the
  memory pool's ``used_bytes`` / ``total_bytes`` report the same counts), and
  ``cupy._core.float64_temporaries``, one line per operation that computed in float64 from
  float32 arrays without an explicit dtype (a NumPy float64 scalar or a float64 array met
  them), emptied by ``reset_float64_temporaries()``.

Where it is *more permissive* than CuPy (it cannot catch these):
- it computes with NumPy, so results equal NumPy's bit for bit: no cuBLAS summation order,
  no float-to-int cast differences, no out-of-bounds index wrap-around; the random
  generators are NumPy's, not cuRAND's;
- there is no asynchrony: nothing checks that the clock is read after a synchronisation, and
  ``float(x)``, ``bool(x)``, ``len``, printing (implicit syncs in CuPy too) are all free;
- memory is unlimited; ``get_default_memory_pool()`` counts the bytes of live arrays
  (``used_bytes``) and the most held at once since ``free_all_blocks`` (``total_bytes``), but
  with no block rounding or fragmentation;
- arguments of functions other than ufuncs may be nested lists of Python numbers where some
  CuPy functions want arrays (ufuncs refuse lists, as CuPy's do);
- dtype promotion is NumPy's (CuPy differs in a few corner cases with Python scalars).

Where it is *stricter* than CuPy (deliberately: these are host/device mix-ups in waiting):
- NumPy functions given a device array raise TypeError (``np.sum(device)``); real CuPy
  dispatches them through ``__array_function__`` / ``__array_ufunc__`` and returns a device
  array that later meets host code;
- ``*_like`` functions, ``ascontiguousarray`` and indexing refuse host ndarrays, and indexing
  refuses lists (CuPy copies them to the device silently); assigning a host ndarray into a
  device array (``dev[...] = host``) is refused;
- pickling a device array is refused;
- an ``out=`` (or in-place operator) that shares memory with an input without being exactly
  that input is refused: CuPy's elementwise kernels copy such an input first, and its
  products and reductions race on it.
"""
import types as _types

import numpy as _np

from . import _core
from ._function import Function as _Function
from ._core import ndarray, unwrap as _unwrap, wrap as _wrap, garbage as _garbage
from ._names import CUPY_NAMES as _CUPY_NAMES
from . import cuda, lib, linalg, random  # noqa: F401  (submodules real CuPy has)

_STRICT_STANDIN = True
__version__ = "14.0.1+strict-standin"


def _host_copy(obj, dtype=None, order="K"):
    """Host data (lists, scalars, NumPy arrays) -> a fresh device array: the explicit way in."""
    if isinstance(obj, (list, tuple)) and any(isinstance(v, ndarray) for v in obj):
        obj = [_unwrap(v) for v in obj]
    return _wrap(_np.array(obj, dtype=dtype, order=order, copy=True))


def asarray(a, dtype=None, order=None, *, blocking=False):
    if isinstance(a, ndarray):
        return a if dtype is None or _np.dtype(dtype) == a.dtype else a.astype(dtype)
    return _host_copy(a, dtype, order or "K")


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        out = obj.astype(dtype or obj.dtype, copy=copy)
    else:
        out = _host_copy(obj, dtype, order)
    while out.ndim < ndmin:
        out = out[None]
    return out


asanyarray = asarray


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return _np.asarray(a, order=order)


def empty(shape, dtype=float, order="C"):
    return ndarray(shape, dtype=dtype, order=order)


def empty_like(prototype, dtype=None, order="K", subok=None, shape=None):
    return _wrap(_garbage(_np.empty_like(_unwrap(prototype), dtype=dtype, order=order,
                                         shape=shape)))


def get_array_module(*args):
    return _ModuleSelf if any(isinstance(a, ndarray) for a in args) else _np


class _MemoryPool:
    """CuPy's pool, on the current device: used = bytes in live arrays; total = what the pool
    holds, the most used at once since the last free_all_blocks (freed blocks stay cached)."""

    def used_bytes(self):
        return _core.live_bytes(_core.current_device())

    def total_bytes(self):
        return _core.pool_held_bytes(_core.current_device())

    def free_bytes(self):
        return self.total_bytes() - self.used_bytes()

    def free_all_blocks(self, stream=None):
        _core.pool_release(_core.current_device())

    def set_limit(self, size=None, fraction=None):
        pass

    def get_limit(self):
        return 0


_POOL = _MemoryPool()


def get_default_memory_pool():
    return _POOL


def is_available():
    return cuda.runtime.getDeviceCount() > 0


def __getattr__(name):
    """NumPy's function of the same name behind the device rules, if CuPy has the name."""
    if name not in _CUPY_NAMES or not hasattr(_np, name) or name.startswith("_"):
        raise AttributeError(f"module 'cupy' has no attribute '{name}'"
                             + (" (stand-in: not imitated)" if name in _CUPY_NAMES else ""))
    obj = getattr(_np, name)
    if isinstance(obj, _types.ModuleType):
        raise AttributeError(f"module 'cupy' has no attribute '{name}' (stand-in: not imitated)")
    if callable(obj) and not isinstance(obj, type):
        return _Function(obj, name)
    return obj  # dtypes, scalar types, constants: the same objects as NumPy's, as in CuPy


import sys as _sys  # noqa: E402

_ModuleSelf = _sys.modules[__name__]
