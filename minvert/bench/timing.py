"""Timing and printing shared by every benchmark: best-of-N wall times with the callables
taking turns, the machine's load, plain-text tables."""
import os
import time

import numpy as np

from ..backend import describe_blas
from ..layers import fast


def sync(xp):
    """Wait for the GPU to finish (a CuPy call returns before the work is done)."""
    if xp is not np:
        xp.cuda.Device().synchronize()


def best_times(fns, repeats=5, warmup=1, xp=np, pause=0.0):
    """{name: best wall time in seconds} for a dict of zero-argument callables.

    The callables take turns (one call each per round), so a burst of load from another
    process slows all of them alike; the minimum over rounds is the least disturbed run.
    xp: the array module the callables compute with (CuPy calls are waited for).
    pause: seconds to sleep before each call, so that the idle threads of the previous
    callable's thread pool (BLAS, OpenMP spin a while after their work) have gone to sleep.
    """
    times = {name: float("inf") for name in fns}
    for r in range(warmup + repeats):
        for name, fn in fns.items():
            time.sleep(pause)
            sync(xp)
            t0 = time.perf_counter()
            fn()
            sync(xp)
            if r >= warmup:
                times[name] = min(times[name], time.perf_counter() - t0)
    return times


def machine_lines():
    """What the numbers were measured on: the BLAS library, its kernel and threads, and
    which layer path ran (a benchmark means little without them)."""
    return [f"BLAS:   {describe_blas()}", f"layers: {fast.describe()}"]


def load_note():
    try:
        return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    except (AttributeError, OSError):
        return ""


def print_table(rows, columns, out=print):
    """Plain-text table of dicts: one header line, one line per row."""
    cells = [[str(r[c]) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(line[k]) for line in cells]) for k, c in enumerate(columns)]
    out("  ".join(c.ljust(wd) for c, wd in zip(columns, widths)))
    for line in cells:
        out("  ".join(v.ljust(wd) for v, wd in zip(line, widths)))
