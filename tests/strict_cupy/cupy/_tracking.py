"""What the stand-in watches besides values, for the rules of :mod:`._core` and for tests:

- the current device, per thread as in CUDA (a new thread starts on device 0);
- device memory: live bytes per device and the peak since the last :func:`reset_peak`
  (a buffer counts from its allocation until its last view is gone, like CuPy's pool blocks);
- float64 temporaries made in a float32 computation (a NumPy float64 scalar or a float64
  array meeting float32 arrays: NumPy 2 and CuPy 14 then compute in float64, at 1/32 to 1/64
  of the float32 speed on most GPUs): recorded in :data:`float64_temporaries`, not refused;
- the refusals of ufunc keywords CuPy does not take and of outputs overlapping an input.

None of this exists in real CuPy except the per-thread device and the pool's byte counts.
"""
import os
import sys
import threading
import weakref

import numpy as _np


class _Thread(threading.local):
    device = 0  # what every thread starts with


local = _Thread()  # local.device: this thread's current device (read on every operation)


class _State(dict):
    """``_state["syncs"]`` (host waits, all threads) and ``_state["device"]`` (this thread's)."""

    def __init__(self):
        super().__init__(syncs=0)

    def __getitem__(self, key):
        return local.device if key == "device" else super().__getitem__(key)

    def __setitem__(self, key, value):
        if key == "device":
            local.device = value
        else:
            super().__setitem__(key, value)


_state = _State()

# device memory --------------------------------------------------------------------------
_live = {}   # device -> bytes held by live buffers
_peak = {}   # device -> most bytes live at once since reset_peak()
_held = {}   # device -> bytes the imitated memory pool holds (peak since free_all_blocks)
_owners = {}  # id(buffer) -> (device, nbytes, weak reference), for buffers counted and alive


def _buffer_of(a):
    """The NumPy array that owns the memory ``a`` views (as_strided views included)."""
    root = a
    while root.base is not None:
        root = root.base
        if not isinstance(root, _np.ndarray):  # as_strided's wrapper, or a host buffer
            return _buffer_of(root.base) if isinstance(getattr(root, "base", None),
                                                       _np.ndarray) else None
    return root


class _Ref(weakref.ref):
    __slots__ = ("key",)


def _freed(ref):
    device, nbytes, _ = _owners.pop(ref.key)
    _live[device] -= nbytes


def allocated(a, device):
    """Count ``a``'s buffer on ``device`` once, until it is garbage-collected."""
    root = _buffer_of(a)
    if root is None or id(root) in _owners:
        return
    ref = _Ref(root, _freed)  # a weak reference with a callback: cheaper than weakref.finalize
    ref.key = id(root)
    _owners[ref.key] = (device, root.nbytes, ref)
    live = _live[device] = _live.get(device, 0) + root.nbytes
    _peak[device] = max(_peak.get(device, 0), live)
    _held[device] = max(_held.get(device, 0), live)


def live_bytes(device=None):
    """Bytes of device memory in live arrays (on ``device``, or on all devices)."""
    return sum(_live.values()) if device is None else _live.get(device, 0)


def peak_bytes(device=None):
    """Most bytes live at once since :func:`reset_peak` (per device, or the largest)."""
    return max(_peak.values(), default=0) if device is None else _peak.get(device, 0)


def reset_peak():
    _peak.clear()
    _peak.update(_live)


def pool_held_bytes(device):
    return max(_held.get(device, 0), _live.get(device, 0))


def pool_release(device):
    _held[device] = _live.get(device, 0)


# float64 temporaries in float32 computations --------------------------------------------
float64_temporaries = []  # one line per operation: what met what, and where in the caller
_HERE = os.path.dirname(os.path.abspath(__file__))
_F32, _F16, _F64 = _np.dtype(_np.float32), _np.dtype(_np.float16), _np.dtype(_np.float64)


def reset_float64_temporaries():
    float64_temporaries.clear()


def _describe(x):
    if isinstance(x, _np.ndarray):
        return f"{x.dtype}{list(x.shape)}"
    return type(x).__name__


def _caller():
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_HERE):
        frame = frame.f_back
    return "?" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"


def note_precision(name, operands, computed):
    """Record ``name`` when float32 device arrays among ``operands`` (unwrapped) were
    computed in float64 (``computed``: the result's or the ufunc loop's dtype)."""
    if computed is not _F64:  # builtin dtypes are singletons: the fast test, on every operation
        return
    if narrow(operands):
        float64_temporaries.append(f"{name}({', '.join(_describe(o) for o in operands)}) "
                                   f"-> float64 at {_caller()}")


def narrow(operands):
    """True when a float32 or float16 array is among ``operands``."""
    for o in operands:
        if isinstance(o, _np.ndarray) and (o.dtype is _F32 or o.dtype is _F16):
            return True
    return False


def ufunc_dtype(operands):
    """The dtype a ufunc computes in (NumPy 2 promotion: Python scalars are weak); None
    when no float32 array takes part (then nothing can be a float64 temporary)."""
    if not narrow(operands):
        return None
    try:
        return _np.result_type(*[o for o in operands if o is not None])
    except TypeError:
        return None


# refusals -------------------------------------------------------------------------------
UFUNC_KEYWORDS = {"out", "dtype", "casting"}  # CuPy's ufunc.__call__ takes these and no more


def check_ufunc_keywords(kwargs, allowed=UFUNC_KEYWORDS):
    rest = {k: v for k, v in kwargs.items() if k not in allowed}
    if rest:
        raise TypeError(f"Wrong arguments {rest}")


def _shares(a, b):
    try:
        return _np.shares_memory(a, b, max_work=10 ** 6)
    except _np.exceptions.TooHardError:
        return True  # undecided: as CuPy's bounds test, assume they do


def check_overlap(inputs, outs):
    """Refuse an output that shares memory with an input without being exactly that input.

    CuPy's elementwise kernels copy such an input first (a hidden copy the size of the
    input); cuBLAS products and reductions writing ``out=`` read it while they write (a race).
    Either way it is not what the code meant, so the stand-in refuses it."""
    for out in outs:
        if not isinstance(out, _np.ndarray):
            continue
        for a in inputs:
            if not isinstance(a, _np.ndarray) or a is out or not _np.may_share_memory(a, out):
                continue
            same = (a.__array_interface__["data"][0] == out.__array_interface__["data"][0]
                    and a.shape == out.shape and a.strides == out.strides)
            if not same and _shares(a, out):
                raise ValueError("stand-in: out= partly overlaps an input (shapes "
                                 f"{a.shape} and {out.shape}); CuPy copies or races there: "
                                 "write to a separate buffer")
