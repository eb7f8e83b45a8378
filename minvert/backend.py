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

The CPU side (the end of this file): NumPy's BLAS (OpenBLAS, MKL) starts one thread per core
for every matrix product. On a machine whose cores other processes already keep busy, those
threads wait for each other at every product (a loaded 2-core machine ran tutorial 05 and
the demo 4.5 to 5 times slower than with one thread; docs/performance.md). The count is the
user's to set (BLAS reads the variables when NumPy loads it), so minvert only says what to
set (:func:`oversubscription_note`) and what runs (:func:`blas_info`, which only reads).
"""
import ctypes
import functools
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


# the CPU side: BLAS ----------------------------------------------------------------------
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# read-only OpenBLAS queries, under the names of numpy's bundled scipy-openblas and of a
# system OpenBLAS (64-bit-integer builds add a suffix)
_OPENBLAS_PREFIXES = ("scipy_openblas_", "openblas_")
_OPENBLAS_SUFFIXES = ("64_", "")


def oversubscription_note(load=None, cores=None, environ=None):
    """A one-line suggestion when BLAS may start more threads than the machine has idle
    cores (no *_NUM_THREADS set and a 1-minute load average at or above the core count),
    else None. ``load``, ``cores`` and ``environ`` default to this machine's."""
    environ = os.environ if environ is None else environ
    if any(environ.get(v) for v in THREAD_VARIABLES):
        return None
    cores = cores or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # Windows has no load average
            return None
    if cores > 1 and load >= cores:
        return (f"minvert: note: the machine is busy (load {load:.1f} on {cores} cores) and BLAS "
                f"starts {cores} threads per matrix product; if this runs slowly, run it as "
                f"OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 minvert ... (README, 'Speed')")
    return None


@functools.lru_cache(maxsize=None)
def blas_threads():
    """How many threads NumPy's BLAS runs a matrix product on (see :func:`configured_threads`).
    Read once: BLAS itself reads the variables only when NumPy loads it."""
    return configured_threads(os.environ, available_cores())


def available_cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def configured_threads(environ, cores):
    """The first positive count in THREAD_VARIABLES, else (OpenBLAS' and MKL's default)
    ``cores``, the cores this process may run on."""
    for variable in THREAD_VARIABLES:
        value = environ.get(variable, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return cores


def blas_info():
    """What NumPy's matrix products run on, as far as it can be known without changing
    anything: {"library", "version", "kernel", "threads", "threads_source"}, None where
    unknown. kernel: the CPU architecture OpenBLAS picked (e.g. "Haswell"; machines may
    force it with OPENBLAS_CORETYPE). threads: what OpenBLAS reports, else the count the
    environment configures (threads_source says which)."""
    info = {"library": None, "version": None, "kernel": None, "threads": None,
            "threads_source": None}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["library"], info["version"] = blas.get("name"), blas.get("version")
    except Exception:  # an old NumPy, or a build without that record
        pass
    query = _openblas_query()
    corename = query("get_corename", ctypes.c_char_p)
    if corename:
        info["kernel"] = corename.decode(errors="replace").strip()
    threads = query("get_num_threads", ctypes.c_int)
    if threads:
        info["threads"], info["threads_source"] = int(threads), "OpenBLAS"
    else:
        info["threads"], info["threads_source"] = blas_threads(), "environment"
    return info


def describe_blas():
    """One line: library, version, kernel, threads (for ``minvert info`` and benchmarks)."""
    info = blas_info()
    parts = [info["library"] or "BLAS unknown"]
    if info["version"]:
        parts.append(info["version"])
    if info["kernel"]:
        parts.append(f"kernel {info['kernel']}")
    parts.append(f"{info['threads']} threads ({info['threads_source']}), "
                 f"{available_cores()} cores")
    return ", ".join(parts)


def _openblas_query():
    """A function (name, restype) -> the value of the OpenBLAS query ``name`` (no
    arguments, read-only) from the OpenBLAS library loaded in this process, or None.
    The library is found in /proc/self/maps (Linux); elsewhere every answer is None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    except OSError:
        paths = []
    libraries = []
    for path in paths:
        try:
            libraries.append(ctypes.CDLL(path))  # already loaded by NumPy: no new state
        except OSError:
            continue

    def query(name, restype):
        for library in libraries:
            for prefix in _OPENBLAS_PREFIXES:
                for suffix in _OPENBLAS_SUFFIXES:
                    function = getattr(library, prefix + name + suffix, None)
                    if function is not None:
                        function.argtypes, function.restype = [], restype
                        return function()
        return None
    return query
