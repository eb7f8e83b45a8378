"""cupy.random: NumPy's generators, results on the device (values differ from cuRAND's)."""
import numpy as _np

from .._core import call as _call

_LEGACY = set("""beta binomial chisquare choice exponential gamma normal permutation rand randint randn
random random_sample shuffle standard_normal uniform""".split())


class RandomState:
    def __init__(self, seed=None):
        self._rs = _np.random.RandomState(seed)

    def seed(self, seed=None):
        self._rs.seed(seed)

    def __getattr__(self, name):
        if name not in _LEGACY:
            raise AttributeError(f"'cupy.random.RandomState' has no attribute '{name}'")
        method = getattr(self._rs, name)
        return lambda *args, **kwargs: _call(method, *args, **kwargs)


class Generator:
    _METHODS = {"random", "standard_normal", "integers", "uniform"}

    def __init__(self, bit_generator=None):
        self._g = _np.random.default_rng(bit_generator)

    def __getattr__(self, name):
        if name not in self._METHODS:
            raise AttributeError(f"'cupy.random.Generator' has no attribute '{name}'")
        method = getattr(self._g, name)
        return lambda *args, **kwargs: _call(method, *args, **kwargs)


def default_rng(seed=None):
    return Generator(seed)


_global = RandomState()


def get_random_state():
    return _global


def seed(seed=None):
    _global.seed(seed)


def __getattr__(name):
    if name not in _LEGACY:
        raise AttributeError(f"module 'cupy.random' has no attribute '{name}'")
    return getattr(_global, name)
