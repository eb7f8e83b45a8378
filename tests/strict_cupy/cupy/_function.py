"""CuPy's functions and ufuncs: NumPy's behind the device rules of :mod:`._core`."""
import numpy as _np

from ._core import _checked, call, unwrap
from ._tracking import UFUNC_KEYWORDS, check_overlap, check_ufunc_keywords

_MATMUL_KEYWORDS = UFUNC_KEYWORDS | {"axes", "axis", "keepdims"}  # a gufunc in CuPy too


class Function:
    """A NumPy function or ufunc behind the device rules (results wrapped, host refused)."""

    def __init__(self, fn, name):
        self._fn, self.__name__ = fn, name

    def __call__(self, *args, **kwargs):
        if isinstance(self._fn, _np.ufunc):  # ufunc operands: arrays and scalars, no lists
            check_ufunc_keywords(kwargs, _MATMUL_KEYWORDS if self.__name__ == "matmul"
                                 else UFUNC_KEYWORDS)
            args = [unwrap(a, lists=False) for a in args]
            kwargs = {k: unwrap(v) for k, v in kwargs.items()}
            check_overlap(args[:self._fn.nin], args[self._fn.nin:])  # positional outputs
            return _checked(self._fn, self.__name__, args, kwargs, ufunc=True,
                            operands=args[:self._fn.nin])
        return call(self._fn, *args, **kwargs)

    def __getattr__(self, name):
        if isinstance(self._fn, _np.ufunc) and name in ("reduce", "accumulate", "reduceat",
                                                        "outer", "at"):
            return Function(getattr(self._fn, name), f"{self.__name__}.{name}")
        if name in ("nin", "nout", "nargs", "types", "ntypes", "identity"):
            return getattr(self._fn, name)
        raise AttributeError(name)

    def __repr__(self):
        return f"<cupy stand-in function {self.__name__}>"
