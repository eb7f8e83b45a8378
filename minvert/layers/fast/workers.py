"""Worker threads for the fast engine: OFF unless asked for.

NumPy runs a matrix product on all of BLAS' threads but everything else (im2col copies,
the Winograd transforms, ReLU) on one core. With ``MINVERT_WORKERS=N`` (or
:func:`set_workers`) the engine hands such work, and the products with it, to N threads
of its own; NumPy releases the interpreter lock inside both. On a quiet 2-core machine,
with BLAS on one thread (``OPENBLAS_NUM_THREADS=1 MINVERT_WORKERS=2 minvert ...``), that
was 5-19 % faster than the default (docs/performance.md, second round). minvert never changes
BLAS' thread count itself; with both at 2 the threads outnumber the cores and it is slower.

Every split is along outputs that do not depend on each other (chunks of pixels, ranges
of channels, the 16 Winograd products) and changes no choice of algorithm (Winograd,
im2col, which dx): the sums are the same, only BLAS may round a product of another shape
differently (float32: within 1e-6 of the largest value, tests/test_workers.py). The
pieces depend only on the shapes and the worker count, so a given setting gives the same
bits call after call. Off, inside a worker, or on a GPU, work runs in the calling thread.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ...errors import MinvertError

_SETTING = {"n": None}  # None: follow MINVERT_WORKERS
_POOL = {}  # worker count -> executor (count - 1 threads; the caller is the last worker)
_LOCAL = threading.local()


def count():
    """How many threads share the engine's work: set_workers()'s choice, else
    MINVERT_WORKERS, else 1 (no workers)."""
    if _SETTING["n"] is not None:
        return _SETTING["n"]
    value = os.environ.get("MINVERT_WORKERS", "").strip()
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise MinvertError(f"MINVERT_WORKERS={value!r}: give a whole number of threads, at "
                           f"least 1 (1: no workers), e.g. MINVERT_WORKERS=2")
    return int(value)


def set_workers(n):
    """Use ``n`` threads (1: none) for the whole program; None: follow MINVERT_WORKERS
    again. Returns the previous setting (for a ``finally`` that restores it)."""
    if n is not None and (int(n) != n or n < 1):
        raise MinvertError(f"set_workers({n!r}): give a whole number of threads, at least 1")
    previous = _SETTING["n"]
    _SETTING["n"] = None if n is None else int(n)
    return previous


def active(xp=np):
    """Whether work on arrays of module ``xp`` is shared out now: on the CPU, with at least
    two workers, and not from inside a worker (its share runs in order)."""
    return xp is np and count() > 1 and not getattr(_LOCAL, "inside", False)


def shares(n, xp=np):
    """range(n) as one contiguous (start, stop) piece per worker when :func:`active`, else
    [(0, n)]: the whole in the calling thread."""
    return ranges(n) if active(xp) else [(0, n)]


def ranges(n, pieces=None):
    """range(n) as at most ``pieces`` (default: count()) contiguous (start, stop) pieces."""
    pieces = max(1, min(n, count() if pieces is None else pieces))
    return [(n * k // pieces, n * (k + 1) // pieces) for k in range(pieces)]


def each(fn, items, xp=np):
    """fn(item) for every item, the items dealt out in contiguous groups, one per worker
    (in order, in this thread, when not :func:`active`). Returns None; an exception in any
    group is raised here once all have finished."""
    items = list(items)
    if len(items) < 2 or not active(xp):
        for item in items:
            fn(item)
        return
    groups = [items[a:b] for a, b in ranges(len(items))]
    futures = [_executor().submit(_inside, fn, group) for group in groups[:-1]]
    try:
        _inside(fn, groups[-1])
    finally:
        for future in futures:  # wait for every group, even when one failed
            future.result()


def _inside(fn, group):
    _LOCAL.inside = True
    try:
        for item in group:
            fn(item)
    finally:
        _LOCAL.inside = False


def _executor():
    n = count()
    if n not in _POOL:
        _POOL[n] = ThreadPoolExecutor(n - 1, thread_name_prefix="minvert-worker")
    return _POOL[n]


def describe():
    """A few words for ``minvert info``."""
    n = count()
    return f"{n} minvert workers (MINVERT_WORKERS)" if n > 1 else \
        "no minvert workers (MINVERT_WORKERS=2 with OPENBLAS_NUM_THREADS=1 shares NumPy's work)"


if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads
    os.register_at_fork(after_in_child=_POOL.clear)
