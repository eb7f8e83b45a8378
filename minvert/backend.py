"""Array module choice: NumPy on the CPU, CuPy on a CUDA GPU.

Every function that allocates starts with ``xp = get_array_module(x)`` and then uses
only operations that exist in both libraries, so one code path serves both devices.
CuPy is imported only inside :func:`_cupy`, so a machine without it never touches it.

Device choice, parsed here and nowhere else (:func:`select_device`): ``cpu``, ``gpu``,
``gpu:N`` (``cuda`` and ``cuda:N`` are the same), from ``--device`` or else
``$MINVERT_DEVICE``; by default the GPU when CuPy imports and a CUDA device exists, else
the CPU. ``gpu:N`` makes CUDA device N current, so every array made afterwards lives there.

Host <-> device crossings are explicit: :func:`to_numpy` (device -> host, for files,
scipy, Pillow, printing) and :func:`to_device` / ``xp.asarray`` (host -> device);
:func:`check_device` is the one-line refusal when a network meets an array of the other side.
"""
import os
import sys

import numpy as np

from .errors import DeviceError

_CUPY = None  # cached result of the guarded import: the module, or False
_CUPY_PROBLEM = None  # why CuPy is unusable, for messages and `minvert info`
DEVICE_HELP = "cpu, gpu, gpu:N (N = CUDA device index); cuda and cuda:N mean the same"


def _cupy():
    """Return the cupy module if it imports and sees a device, else None."""
    global _CUPY, _CUPY_PROBLEM
    if _CUPY is None:
        try:
            import cupy
            count = cupy.cuda.runtime.getDeviceCount()
            _CUPY = cupy if count > 0 else False
            _CUPY_PROBLEM = None if count > 0 else "CuPy sees no CUDA device"
        except Exception as e:  # ImportError, or CUDA runtime errors on a machine without a GPU
            _CUPY = False
            _CUPY_PROBLEM = ("CuPy is not installed" if isinstance(e, ImportError)
                             else f"CuPy cannot reach a CUDA device ({type(e).__name__}: {e})")
    return _CUPY or None


def gpu_available():
    return _cupy() is not None


def gpu_problem():
    """Why the GPU cannot be used (a short phrase), or None when it can."""
    _cupy()
    return _CUPY_PROBLEM


def parse_device(spec, source="--device"):
    """'cpu' | 'gpu' | 'gpu:N' | 'cuda' | 'cuda:N' (any case) -> ('cpu', None) or ('gpu', N|None).

    Only the spelling is checked here; :func:`select_device` checks the hardware."""
    text = str(spec).strip().lower()
    kind, colon, index = text.partition(":")
    if kind == "cuda":
        kind = "gpu"
    if kind == "cpu" and not colon:
        return "cpu", None
    if kind == "gpu" and (not colon or index.isdigit()):
        return "gpu", int(index) if index else None
    raise DeviceError(f"{source} {spec!r} is not a device; use {DEVICE_HELP}")


def select_device(spec=None):
    """'cpu' or 'gpu' for ``spec`` (None: $MINVERT_DEVICE, else the GPU if there is one).

    A GPU request on a machine without CuPy or a CUDA device, or gpu:N past the last
    device, is a one-line :class:`~minvert.errors.DeviceError`. gpu:N makes device N current."""
    source = "--device"
    if spec is None:
        spec, source = os.environ.get("MINVERT_DEVICE", "").strip(), "MINVERT_DEVICE"
        if not spec:
            return "gpu" if gpu_available() else "cpu"
    kind, index = parse_device(spec, source)
    if kind == "cpu":
        return "cpu"
    cp = _cupy()
    if cp is None:
        raise DeviceError(f"{source} {spec!r} asks for the GPU, but {gpu_problem()}: install "
                          "minvert[gpu] on a machine with an NVIDIA driver (see README), or use cpu")
    if index is not None:
        count = cp.cuda.runtime.getDeviceCount()
        if index >= count:
            raise DeviceError(f"{source} {spec!r}: this machine has {count} CUDA device(s), "
                              f"numbered 0 to {count - 1}")
        cp.cuda.Device(index).use()
    return "gpu"


def default_device():
    """'gpu' or 'cpu', from $MINVERT_DEVICE or from what is available."""
    return select_device(None)


def get_array_module(*arrays):
    """numpy, or cupy if any argument is a CuPy array."""
    cp = sys.modules.get("cupy")  # a CuPy array implies cupy was imported; never import it here
    if cp is not None:
        for a in arrays:
            if isinstance(a, cp.ndarray):
                return cp
    return np


def is_gpu_array(x):
    return get_array_module(x) is not np


def to_numpy(x):
    """A host NumPy array (no copy when x is already one)."""
    if is_gpu_array(x):
        return x.get()
    return np.asarray(x)


def array_module(device=None):
    """numpy for the CPU, cupy for the GPU; ``device`` as in :func:`select_device`."""
    return np if select_device(device) == "cpu" else _cupy()


def to_device(x, device=None):
    """Move x to ``device`` (as in :func:`select_device`; default: the default device)."""
    xp = array_module(device)
    return to_numpy(x) if xp is np else xp.asarray(x)


def device_of(x):
    return "gpu" if is_gpu_array(x) else "cpu"


def check_device(x, like, what="input", owner="the network's weights"):
    """One-line DeviceError when ``x`` is not on the same side (host/GPU) as ``like``."""
    if is_gpu_array(x) != is_gpu_array(like):
        side = {True: "on the GPU (CuPy)", False: "on the host (NumPy)"}
        raise DeviceError(f"{what} is {side[is_gpu_array(x)]} but {owner} are "
                          f"{side[is_gpu_array(like)]}: move it with net.xp.asarray(x) "
                          "(to the GPU) or minvert.backend.to_numpy(x) (to the host)")


def gpu_report():
    """Lines saying what the GPU side can do: CuPy's version, each CUDA device, and whether a
    kernel compiles and a matmul runs (what fails on a machine with the driver but without
    the CUDA libraries: CuPy imports and counts devices, then the first kernel fails)."""
    cp = _cupy()
    if cp is None:
        return [f"GPU      none usable: {gpu_problem()} (pip install 'minvert[gpu]' with an NVIDIA driver)"]
    lines = [f"cupy     {getattr(cp, '__version__', 'version unknown')}"]
    current = cp.cuda.Device().id
    for i in range(cp.cuda.runtime.getDeviceCount()):
        try:
            props = cp.cuda.runtime.getDeviceProperties(i)
            name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            about = (f"{name}, {props['totalGlobalMem'] / 2**30:.0f} GiB, compute capability "
                     f"{props['major']}.{props['minor']}")
        except Exception as e:  # the properties are for information only
            about = f"(properties unavailable: {type(e).__name__})"
        lines.append(f"gpu:{i}    {about}{'  (current)' if i == current else ''}")
    try:
        host = np.arange(16, dtype=np.float32).reshape(4, 4)
        x = cp.asarray(host)
        value = float((x * 2 + 1).sum()) + float((x @ x).sum())  # elementwise + reduction kernels, cuBLAS
        ok = value == float((host * 2 + 1).sum()) + float((host @ host).sum())  # small integers: exact
        lines.append("kernels  compile and run" if ok else f"kernels  WRONG result {value}")
    except Exception as e:
        lines.append(f"kernels  FAIL: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                     "(install the CUDA libraries: pip install 'minvert[gpu]')")
    return lines
