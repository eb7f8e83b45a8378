"""The device array of the stand-in and the rules every operation on it follows.

A device array wraps a NumPy array (its "device memory") that only this package touches.
Everything that reaches NumPy goes through :func:`unwrap`, which refuses host ndarrays
(0-d included) the way CuPy's kernels do, and every result comes back through :func:`wrap`,
so a reduction gives a 0-d device array as in CuPy, never a host scalar.
"""
import numpy as _np

from ._tracking import (_state, allocated, local, check_overlap, note_precision,  # noqa: F401
                        ufunc_dtype,
                        # the hooks tests read through cupy._core
                        float64_temporaries, live_bytes, peak_bytes, pool_held_bytes,
                        pool_release, reset_float64_temporaries, reset_peak)
from ._views import Flags, _is_basic, _view_key, garbage

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
             "Please use `.get()` to construct a NumPy array explicitly.")

# _state["device"]: which device this thread's new arrays go to (cupy.cuda.Device(n).use()
# changes it); _state["syncs"]: how many times the host has waited for the device (tests count
# the synchronisations a loop makes)
_SYNCING = {"item", "tolist", "tobytes", "tofile"}  # methods that bring values to the host


def current_device():
    return _state["device"]


def synced():
    """Count one host<->device synchronisation (what get(), float(), printing... cost on CUDA)."""
    _state["syncs"] += 1


def _unsupported(x):
    return TypeError(f"Unsupported type {type(x)}")


def unwrap(x, *, lists=True, kernel=True):
    """x with every device array replaced by its NumPy data; host ndarrays refused.

    Python scalars, NumPy scalars (np.generic), dtypes, slices, None and strings pass,
    like CuPy. lists=False (operator operands) refuses lists and tuples too, as CuPy's
    ufuncs do. kernel=False: the data is only looked at where it lives (metadata, views,
    copies to the host), which CuPy allows from any current device."""
    if isinstance(x, ndarray):
        if kernel and x._device != local.device:
            raise ValueError(f"The device where the array resides ({x._device}) is different "
                             f"from the current device ({_state['device']}). Peer access is "
                             "unavailable between these devices.")
        return x._a
    if isinstance(x, _np.ndarray):
        raise _unsupported(x)
    if isinstance(x, (list, tuple)):
        if not lists:
            raise _unsupported(x)
        return type(x)(unwrap(v) for v in x)
    if isinstance(x, _np.generic):
        return x
    if isinstance(x, dict):
        return {k: unwrap(v) for k, v in x.items()}
    if not isinstance(x, (type, _np.dtype)) and (hasattr(x, "__array_interface__")
                                                 or hasattr(x, "__array_struct__")):
        raise _unsupported(x)  # a host buffer in disguise (memoryview-like, PIL image)
    return x


def unwrap_all(args, kwargs):
    return [unwrap(a) for a in args], {k: unwrap(v) for k, v in kwargs.items()}


def wrap(result, device=None):
    """NumPy results -> device arrays (NumPy scalars become 0-d device arrays, as in CuPy),
    on ``device`` (default: the current one)."""
    if isinstance(result, _np.ndarray):
        return ndarray._from_data(result, device)
    if isinstance(result, _np.generic):
        return ndarray._from_data(_np.asarray(result), device)
    if isinstance(result, tuple):
        return tuple(wrap(r, device) for r in result)
    if isinstance(result, list):
        return [wrap(r, device) for r in result]
    return result


def _index(key):
    """An index with its device arrays unwrapped; host ndarrays and lists refused (stricter
    than CuPy, which copies them to the device: an implicit transfer per indexing)."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    if isinstance(key, list):
        raise TypeError("stand-in: index with a device array (xp.asarray(list)), not a list")
    return unwrap(key)


def call(fn, *args, **kwargs):
    args, kwargs = unwrap_all(args, kwargs)
    return _checked(fn, getattr(fn, "__name__", "?"), args, kwargs)


def _checked(fn, name, args, kwargs, ufunc=False, operands=None):
    """fn on unwrapped args, refusing an overlapping out= and noting float64 work.
    operands: what the computation reads (args, plus the array of a bound method)."""
    operands = args if operands is None else operands
    out = kwargs.get("out")
    if out is not None:
        check_overlap(operands, out if isinstance(out, tuple) else (out,))
    result = fn(*args, **kwargs)
    if kwargs.get("dtype") is None:
        if ufunc:
            note_precision(name, operands, ufunc_dtype(operands))
        else:
            first = result[0] if isinstance(result, (tuple, list)) and result else result
            note_precision(name, operands, getattr(first, "dtype", None))
    return wrap(result)


# the ndarray methods and attributes CuPy's ndarray has (others raise AttributeError)
METHODS = set("""all any argmax argmin argpartition argsort astype choose clip compress conj conjugate
copy cumprod cumsum diagonal dot fill flatten item max mean min nonzero partition prod ptp put ravel
repeat reshape round sort squeeze std sum swapaxes take tobytes tofile tolist trace transpose var
view""".split())
ATTRIBUTES = set("T dtype imag itemsize nbytes ndim real shape size strides".split())


def _binary(op, reflected=False, inplace=False):
    fn = getattr(_np, op)

    def method(self, other):
        o = unwrap(other, lists=False)
        a = unwrap(self)
        note_precision(op, (a, o), ufunc_dtype((a, o)))
        if inplace:
            check_overlap((o,), (a,))
            fn(a, o, out=a)
            return self
        return wrap(fn(o, a) if reflected else fn(a, o))
    method.__name__ = op
    return method


def _unary(op):
    fn = getattr(_np, op)
    return lambda self: wrap(fn(unwrap(self)))


class ndarray:
    """Device array: CuPy's refusals on top of a private NumPy buffer."""
    __slots__ = ("_a", "_device")
    __array_ufunc__ = None   # NumPy ufuncs and `host <op> device` give up: TypeError
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("stand-in: ndarray(memptr=, strides=) is not imitated")
        self._a = garbage(_np.empty(shape, dtype=dtype, order=order))
        self._device = local.device
        allocated(self._a, self._device)

    @classmethod
    def _from_data(cls, a, device=None):
        self = object.__new__(cls)
        self._a = a
        self._device = local.device if device is None else device
        allocated(a, self._device)
        return self

    # the refusals ---------------------------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError(_IMPLICIT)

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} given a cupy.ndarray: " + _IMPLICIT)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in ATTRIBUTES:
            return wrap(getattr(unwrap(self, kernel=False), name), self._device)
        if name in METHODS:
            if name in _SYNCING:
                synced()
            a = unwrap(self)
            bound = getattr(a, name)
            if name in ("astype", "view"):  # an explicit dtype: not a temporary
                return lambda *args, **kwargs: call(bound, *args, **kwargs)
            def method(*args, **kwargs):
                args, kwargs = unwrap_all(args, kwargs)
                return _checked(bound, name, args, kwargs, operands=(a, *args))
            return method
        raise AttributeError(f"'cupy.ndarray' object has no attribute '{name}'")

    def __setattr__(self, name, value):
        if name in ("_a", "_device"):
            object.__setattr__(self, name, value)
        elif name == "shape":
            self._a.shape = value
        else:
            raise AttributeError(f"attribute '{name}' of 'cupy.ndarray' objects is not writable")

    # explicit transfers ----------------------------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        a = unwrap(self, kernel=False)  # CuPy copies from the array's own device
        synced()
        if out is not None:
            if not isinstance(out, _np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            out[...] = a
            return out
        return _np.array(a, order=order, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, _np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, not {type(arr)}")
        if arr.shape != self._a.shape:
            raise ValueError("Shape mismatch")
        self._a[...] = arr

    @property
    def flags(self):
        return Flags(self._a)

    @property
    def device(self):
        from .cuda import Device
        return Device(self._device)

    # Python protocol (each is an implicit synchronisation in CuPy, but allowed) --------
    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self):
        synced()
        return bool(unwrap(self, kernel=False))

    def __float__(self):
        synced()
        return float(unwrap(self, kernel=False))

    def __int__(self):
        synced()
        return int(unwrap(self, kernel=False))

    def __complex__(self):
        synced()
        return complex(unwrap(self, kernel=False))

    def __format__(self, spec):
        synced()
        return format(unwrap(self, kernel=False), spec)

    def __repr__(self):
        synced()
        return repr(self._a)

    def __str__(self):
        synced()
        return str(self._a)

    def __getitem__(self, key):
        key = _index(key)
        if _is_basic(key):  # a view, from any current device, as in CuPy
            return wrap(unwrap(self, kernel=False)[_view_key(key)], self._device)
        return wrap(unwrap(self)[key])

    def __setitem__(self, key, value):
        unwrap(self)[_index(key)] = unwrap(value, lists=False)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        raise TypeError("stand-in: pickling a cupy.ndarray is not imitated; use .get()")

    __neg__, __pos__, __abs__, __invert__ = (_unary(o) for o in
                                             ("negative", "positive", "absolute", "invert"))


_OPERATORS = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "true_divide",
              "floordiv": "floor_divide", "mod": "remainder", "pow": "power", "matmul": "matmul",
              "and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor",
              "lshift": "left_shift", "rshift": "right_shift"}
for _name, _op in _OPERATORS.items():
    setattr(ndarray, f"__{_name}__", _binary(_op))
    setattr(ndarray, f"__r{_name}__", _binary(_op, reflected=True))
    if _name != "matmul":
        setattr(ndarray, f"__i{_name}__", _binary(_op, inplace=True))
for _name, _op in {"lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal",
                   "eq": "equal", "ne": "not_equal"}.items():
    setattr(ndarray, f"__{_name}__", _binary(_op))


def _imatmul(self, other):
    o, a = unwrap(other, lists=False), unwrap(self)
    a[...] = _np.matmul(a, o)
    return self


ndarray.__imatmul__ = _imatmul
