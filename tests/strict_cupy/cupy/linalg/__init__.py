"""cupy.linalg: NumPy's linear algebra behind the device rules (only CuPy's names)."""
import numpy as _np

from .._function import Function as _Function

_NAMES = set("""cholesky cond det eig eigh eigvals eigvalsh inv lstsq matrix_power matrix_rank norm
pinv qr slogdet solve svd tensorinv tensorsolve""".split())


def __getattr__(name):
    if name not in _NAMES:
        raise AttributeError(f"module 'cupy.linalg' has no attribute '{name}'")
    return _Function(getattr(_np.linalg, name), f"linalg.{name}")
