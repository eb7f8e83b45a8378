"""SPEED, fenced. The fast engine computes the same functions as the readable layers in
layers/*.py, with less memory traffic; every function here is tested equal to its readable
one (tests/test_fast_*.py). Read the readable layer first; nothing here is needed to
understand what a network computes.

One switch, for the whole program: ``MINVERT_FAST=0`` in the environment, or
:func:`set_enabled` (False / True; None: back to the environment). Each layer class
chooses its path in one visible line, ``if fast.enabled():``, when its forward runs; its
backward follows the path its forward took.

Which path runs when (engine on; with it off every row is the readable layer):

    layer / net              CPU (NumPy)                               GPU (CuPy)
    Conv2D forward           chunked im2col in scratch memory; Winograd  im2col + one cuBLAS
                             F(2x2,3x3) for 3x3 stride-1 layers with     product (no Winograd);
                             >= 128 channels, >= 14x14                   row bands past 1 GiB
    Conv2D backward          dw chunked; dx by Winograd (if forward),    dw one product; dx
                             transposed conv or col2im (least traffic)   col2im in NCHW
    UpsampleConv2D           output phases: one smaller conv of x,       the same
                             phase kernels summed by small products
    Sequential.predict       conv -> BN -> ReLU (-> residual) fused      the same
    ReLU forward             max against a buffer of zeros               xp.maximum
    Adadelta step            in chunks of 64 K values (in cache)         one pass
    scratch memory           kept per thread, grown when too small       CuPy's pool (per device)
    workers (opt-in:         chunks of im2col, Winograd passes and its   none: all in the
    MINVERT_WORKERS=2,       16 products, dw / col2im by channels, ReLU, calling thread
    OPENBLAS_NUM_THREADS=1)  max-pool planes, Adadelta chunks

The CPU thresholds were measured on CPUs (docs/performance.md); none applies on a GPU
until it is measured faster there.

Every choice depends only on shapes, dtype, device and whether a layer is frozen: never
on what ran before in the process, nor on the machine's thread count or the workers. Imports run
one way: this package imports only shared helpers (layers/base.py, layers/geometry.py,
backend), never a readable layer module.
"""
import os

from ...backend import blas_threads
from . import workers
from .conv import conv2d_backward, conv2d_forward, conv2d_fused  # noqa: F401
from .elementwise import adadelta_update, relu_backward, relu_forward, relu_inplace  # noqa: F401
from .fuse import predict_fused  # noqa: F401
from .planes import backward_by_planes, forward_by_planes  # noqa: F401
from .upconv import upsample_conv2d_backward, upsample_conv2d_forward  # noqa: F401
from .workers import set_workers  # noqa: F401

_SWITCH = {"on": None}  # None: follow MINVERT_FAST


def enabled():
    """Whether the fast engine runs: set_enabled()'s choice, else MINVERT_FAST (unset, or
    anything but 0/off/false/no: on)."""
    if _SWITCH["on"] is not None:
        return _SWITCH["on"]
    return os.environ.get("MINVERT_FAST", "1").strip().lower() not in ("0", "off", "false", "no")


def set_enabled(on):
    """Turn the engine on (True) or off (False) for the whole program; None: follow
    MINVERT_FAST again. Returns the previous setting (for a ``finally`` that restores it)."""
    previous = _SWITCH["on"]
    _SWITCH["on"] = None if on is None else bool(on)
    return previous


def describe():
    """One line for ``minvert info`` and benchmarks: which path the layers run, and the
    engine's workers (with a warning when they and BLAS' threads outnumber the cores)."""
    if not enabled():
        return "fast engine off: the readable layers run (MINVERT_FAST=0 or set_enabled(False))"
    line = "fast engine on (layers/fast: chunked im2col, Winograd, fused inference); " \
           "MINVERT_FAST=0 runs the readable layers; " + workers.describe()
    if workers.count() > 1 and blas_threads() > 1:
        line += f" - with {blas_threads()} BLAS threads each: set OPENBLAS_NUM_THREADS=1"
    return line
