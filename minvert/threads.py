"""BLAS threads against a busy machine.

NumPy's BLAS (OpenBLAS, MKL) starts one thread per core for every matrix product. On a
machine whose cores other processes already keep busy, those threads wait for each other
at every product: measured on a loaded 2-core machine (issue 15), tutorial 05 took 161 s
and the demo 824 s with the default threads, 31 s and 185 s with OPENBLAS_NUM_THREADS=1.
minvert cannot change the thread count once NumPy is loaded, so it says what to set.
"""
import functools
import os

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
