"""Array module choice: NumPy on the CPU, CuPy on a CUDA GPU.

Every function that allocates starts with ``xp = get_array_module(x)`` and then uses
only operations that exist in both libraries, so one code path serves both devices.
CuPy is imported only inside :func:`_cupy`, so a machine without it never touches it.

Device choice: ``MINVERT_DEVICE=cpu|gpu``; by default the GPU when CuPy imports and a
CUDA device exists, else the CPU.
"""
import os
import sys

import numpy as np

_CUPY = None  # cached result of the guarded import: the module, or False


def _cupy():
    """Return the cupy module if it imports and sees a device, else None."""
    global _CUPY
    if _CUPY is None:
        try:
            import cupy
            _CUPY = cupy if cupy.cuda.runtime.getDeviceCount() > 0 else False
        except Exception:  # ImportError, or CUDA runtime errors on a machine without a GPU
            _CUPY = False
    return _CUPY or None


def gpu_available():
    return _cupy() is not None


def default_device():
    """'gpu' or 'cpu', from $MINVERT_DEVICE or from what is available."""
    choice = os.environ.get("MINVERT_DEVICE", "").strip().lower()
    if choice not in ("", "cpu", "gpu"):
        raise ValueError(f"MINVERT_DEVICE={choice!r}: use 'cpu' or 'gpu'")
    if choice == "gpu" and not gpu_available():
        raise RuntimeError("MINVERT_DEVICE=gpu but CuPy or a CUDA device is missing: "
                           "pip install 'minvert[gpu]', or set MINVERT_DEVICE=cpu")
    if choice:
        return choice
    return "gpu" if gpu_available() else "cpu"


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


def array_module(device):
    """numpy for 'cpu', cupy for 'gpu' (with a clear error when it is missing)."""
    if device == "cpu":
        return np
    if device == "gpu":
        cp = _cupy()
        if cp is None:
            raise RuntimeError("device 'gpu' requested but CuPy or a CUDA device is missing: "
                               "pip install 'minvert[gpu]', or use the CPU")
        return cp
    raise ValueError(f"unknown device {device!r}: use 'cpu' or 'gpu'")


def to_device(x, device=None):
    """Move x to 'cpu' or 'gpu' (default: :func:`default_device`)."""
    xp = array_module(device or default_device())
    return to_numpy(x) if xp is np else xp.asarray(x)


def device_of(x):
    return "gpu" if is_gpu_array(x) else "cpu"
