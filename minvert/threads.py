"""How minvert uses the CPU cores: BLAS' threads, and its own workers.

How many threads: NumPy's BLAS (OpenBLAS, MKL) starts one thread per core for every
matrix product. On a machine whose cores other processes already keep busy, those threads
wait for each other at every product: measured on a loaded 2-core machine (issue 15),
tutorial 05 took 161 s and the demo 824 s with the default threads, 31 s and 185 s with
OPENBLAS_NUM_THREADS=1. The count is the user's to set (the variables are read when NumPy
loads), so on a busy machine minvert says what to set (:func:`oversubscription_note`).

Its own workers (the second half of this file): with more than one BLAS thread (the
default on several cores), large layers are split among minvert's own threads while BLAS
is held at one; the comment before :func:`workers` says why and when, docs/layers.md
section 15c more.
"""
import ctypes
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy

from .backend import get_array_module

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


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


# --- minvert's own workers ---------------------------------------------------------------
#
# BLAS runs a matrix product on every core, but NumPy runs everything else on one: in a
# VGG-19 pass at 2 threads about half of the time (Winograd transforms, im2col copies,
# pooling, ReLU) kept one core idle. So on the CPU, when NumPy's BLAS is an OpenBLAS (whose
# thread count can be set at run time), minvert can hold BLAS at ONE thread and split each
# heavy operation, products and the elementwise work around them alike, into pieces that
# its own worker threads run: NumPy releases the interpreter lock inside both.
#
# That pays for large layers only. Handing a piece to a worker costs 15-60 us (an idle
# thread has to be woken), and OpenBLAS' own threads, which spin while they wait, share a
# product's packed matrices: for a product of a millisecond or two BLAS' threads are the
# faster ones. And the two do not mix: an OpenBLAS thread keeps spinning for about 0.1 s
# after each product, fighting a worker for its core. So minvert SHARES (its workers, BLAS
# at one thread) from the first product of at least SHARE_MIN_MACS multiply-adds on, and
# goes back to BLAS' threads only after SHARE_HOLD smaller products in a row: VGG-19's
# passes (whose few small products sit between large ones), ResNet-50's at batch 16 and
# the paper-003 decoder's are shared; ResNet-50's at batch 1 (all its products below
# 120 M multiply-adds) goes back to BLAS' threads within its first pass. (A rule by the
# clock instead switched at every call of a benchmark alternating with PyTorch.)

_WORKERS = None
_EXECUTOR = None
_LOCAL = threading.local()
_OPENBLAS_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "openblas_set_num_threads64_", "openblas_set_num_threads")
_SETTERS = []
# on: BLAS held at one thread, the workers sharing; small: products since the last large one
_SHARING = {"on": False, "small": 0}

# measured on a 2-core machine (docs/performance.md): ResNet-50 at batch 1 (products of
# 50-120 M multiply-adds) 67 ms with BLAS' threads against 72-88 ms shared; VGG-19's
# layers (0.1-3.7 G) and ResNet-50's at batch 16 (0.8-1.8 G) faster shared
SHARE_MIN_MACS = 1 << 28
SHARE_HOLD = 32


def workers():
    """How many pieces minvert can split NumPy work into: blas_threads() when NumPy's BLAS is
    an OpenBLAS whose thread count minvert can set, else 1 (BLAS keeps its own threads;
    everything else runs on one core)."""
    global _WORKERS
    if _WORKERS is None:
        n = blas_threads()
        _SETTERS[:] = _openblas_thread_setters() if n > 1 else []
        _WORKERS = n if _SETTERS else 1
    return _WORKERS


def describe():
    """One line for ``minvert info``: cores, BLAS threads, minvert's workers."""
    n = workers()
    how = (f"large layers shared out among {n} minvert workers, BLAS held at 1 thread meanwhile"
           if n > 1 else "minvert's workers off (one thread, or a BLAS other than OpenBLAS)")
    return f"{available_cores()} cores, {blas_threads()} BLAS threads; {how}"


def sharing(macs):
    """Whether minvert's workers share the work out now (else BLAS' threads run the
    products and everything else runs on one core), given a product of ``macs``
    multiply-adds about to run; switches between the two as the comment above says.
    Called once per product, by what starts it (a convolution's forward or backward, a
    dense product); the pieces of its work then ask :func:`worth_splitting`."""
    if workers() < 2 or getattr(_LOCAL, "inside", False):
        return False
    if macs >= SHARE_MIN_MACS:
        _SHARING["small"] = 0
        if not _SHARING["on"]:
            _set_blas_threads(1)
            _SHARING["on"] = True
    elif macs > 0:
        _SHARING["small"] += 1
        if _SHARING["on"] and _SHARING["small"] >= SHARE_HOLD:
            _set_blas_threads(workers())
            _SHARING["on"] = False
    return _SHARING["on"]


def stop_sharing():
    """Give BLAS its threads back now. While minvert's workers share, NumPy's BLAS runs on
    one thread for everyone, products in the caller's own code too; minvert takes it again
    at its next large product."""
    if _SHARING["on"]:
        _set_blas_threads(workers())
        _SHARING.update(on=False, small=0)


def _set_blas_threads(n):
    for set_threads in _SETTERS:
        set_threads(n)


def _openblas_thread_setters():
    """The set-thread-count functions of the OpenBLAS libraries loaded in this process (found
    in /proc/self/maps: Linux only), [] when there is none or when NumPy itself was built
    with another BLAS (its threads could not be held)."""
    try:
        blas = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # an old NumPy, or a build without that record: do not guess
        return []
    if "openblas" not in str(blas).lower():
        return []
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    except OSError:
        return []
    setters = []
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _OPENBLAS_SETTERS:
            setter = getattr(library, name, None)
            if setter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                setters.append(setter)
                break
    return setters


def parts(n, count=None):
    """Split range(n) into at most ``count`` (default: workers()) contiguous non-empty
    (start, stop) pieces of nearly equal size."""
    count = max(1, min(n, workers() if count is None else count))
    return [(n * k // count, n * (k + 1) // count) for k in range(count)]


def run(tasks):
    """Run the zero-argument callables ``tasks`` on the workers, the last one on the calling
    thread, and return their results in order. An exception in any of them is raised here,
    after all have finished. Called from inside a task it runs them one after the other."""
    tasks = list(tasks)
    if len(tasks) < 2 or workers() < 2 or getattr(_LOCAL, "inside", False):
        return [task() for task in tasks]
    futures = [_executor().submit(_inside, task) for task in tasks[:-1]]
    try:
        last = _inside(tasks[-1])
    finally:
        results = [future.result() for future in futures]  # wait for all, even on error
    return results + [last]


def _inside(task):
    _LOCAL.inside = True
    try:
        return task()
    finally:
        _LOCAL.inside = False


def _executor():
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = ThreadPoolExecutor(workers() - 1, thread_name_prefix="minvert-worker")
    return _EXECUTOR


def _forget_workers():
    """In a child made by fork (multiprocessing on Linux): the parent's worker threads do
    not exist there, and tasks handed to them would wait forever; new ones start on demand."""
    global _EXECUTOR
    _EXECUTOR = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


# a split costs a few tens of microseconds (measured: 20-55 us for a task handed to a
# worker and back): below about 0.1 ms of work one call is faster. Work is counted in
# multiply-adds for products, in elements for elementwise passes.
SPLIT_MIN_MACS = 1 << 23
SPLIT_MIN_ELEMENTS = 1 << 18


def worth_splitting(xp, macs=0, elements=0):
    """Whether work of ``macs`` multiply-adds or ``elements`` elements touched, on arrays of
    module ``xp``, is shared out among the workers: on the CPU (a GPU has its own
    parallelism), while they share (:func:`sharing`), and when large enough to pay for the
    hand-over. Asks only; switches nothing."""
    return xp is numpy and _SHARING["on"] and workers() > 1 \
        and (macs >= SPLIT_MIN_MACS or elements >= SPLIT_MIN_ELEMENTS)


def split(fn, n, xp, macs=0, elements=0):
    """[fn(start, stop) for the pieces of range(n)] run on the workers when the work is
    worth it (:func:`worth_splitting`), else [fn(0, n)]."""
    if not worth_splitting(xp, macs, elements):
        return [fn(0, n)]
    return run([lambda piece=piece: fn(*piece) for piece in parts(n)])


def split_flat(fn, *arrays):
    """fn(*pieces) on matching pieces of the flattened ``arrays`` (the same size, C-contiguous),
    on the workers; fn(*arrays) once when small, on a GPU or not contiguous."""
    first = arrays[0]
    if not (worth_splitting(get_array_module(first), elements=first.size)
            and all(a.flags.c_contiguous and a.size == first.size for a in arrays)):
        fn(*arrays)
        return
    flat = [a.reshape(-1) for a in arrays]
    run([lambda i=i, j=j: fn(*(a[i:j] for a in flat)) for i, j in parts(first.size)])


def matmul(a, b, out=None):
    """a (M, K) @ b (K, P) -> (M, P) (into ``out`` if given), split over the workers by
    rows of a or columns of b, whichever are more; one call on a GPU, for small products
    and with one worker."""
    xp, (M, K), P = get_array_module(a), a.shape, b.shape[1]
    if not (xp is numpy and sharing(M * K * P) and worth_splitting(xp, macs=M * K * P)):
        return a @ b if out is None else xp.matmul(a, b, out=out)
    if out is None:
        out = numpy.empty((M, P), dtype=numpy.result_type(a, b))
    if M > P:
        run([lambda s=s: numpy.matmul(a[s[0]:s[1]], b, out=out[s[0]:s[1]]) for s in parts(M)])
    else:
        run([lambda s=s: numpy.matmul(a, b[:, s[0]:s[1]], out=out[:, s[0]:s[1]])
             for s in parts(P)])
    return out
