"""The thin class every layer shares.

A layer *family* file (conv.py, pool.py, ...) holds pure functions

    <name>_forward(x, <params...>, <settings...>) -> (out, cache)
    <name>_backward(dout, cache, ...)             -> (dx, d<param>, ...)

and a class derived from :class:`Layer` that stores the parameters, calls the pure
functions and keeps the cache of the last forward pass. Students check the pure
functions; networks use the classes.
"""
import numpy as np

from ..backend import to_numpy
from ..errors import DTypeError, MinvertError, ShapeError


class Layer:
    """Holds ``params`` and matching ``grads`` dicts (same keys) and the last cache.

    ``trainable``: when False the layer computes no weight gradients at all (pixel
    optimisation freezes the whole net, which saves about a third of the work).
    ``training``: only batch-norm looks at it (batch vs running statistics).
    ``need_dx``: when False the layer may skip the gradient w.r.t. its input
    (the first layer of a network being trained).
    """

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.state = {}  # non-trainable arrays saved with the weights (batch-norm running stats)
        self.trainable = True
        self.training = False
        self.need_dx = True
        self.cache = None

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dout):
        """Return dx; store weight gradients in ``self.grads`` when trainable."""
        raise NotImplementedError

    def predict(self, x):
        """Forward for inference: keeps no cache (lower peak memory)."""
        out = self.forward(x)
        self.release()
        return out

    def release(self):
        """Drop the cache of the last forward pass (frees its memory)."""
        self.cache = None

    # conversions -----------------------------------------------------------
    def astype(self, dtype):
        for d in (self.params, self.state):
            for k, v in d.items():
                d[k] = v.astype(dtype, copy=False)
        self.grads = {}
        return self

    def to(self, xp):
        """Move parameters and state to the array module xp (numpy or cupy)."""
        for d in (self.params, self.state):
            for k, v in d.items():
                d[k] = to_numpy(v) if xp is np else xp.asarray(v)  # back to the host explicitly
        self.grads = {}
        return self

    def __repr__(self):
        shapes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"


def check_floating(x, what="input"):
    """One-line error for integer or boolean arrays, which no layer accepts."""
    if not np.issubdtype(x.dtype, np.floating):
        raise DTypeError(f"{what} has dtype {x.dtype}; layers need float32 or float64 "
                        f"(convert with x.astype('float32'))")


def check_rank(x, rank, shape_doc, what="input"):
    if x.ndim != rank:
        raise ShapeError(f"{what} has shape {tuple(x.shape)}; expected {rank}-D {shape_doc}")



def last_cache(layer):
    """The cache of the layer's last forward pass, or a one-line error if there is none."""
    if layer.cache is None:
        raise MinvertError(f"{type(layer).__name__}.backward called before forward "
                           f"(or after release())")
    return layer.cache


def init_weight(shape, fan_in, fan_out, init, rng, dtype):
    """'he': N(0, 2/fan_in) (ReLU nets); 'glorot': U(+-sqrt(6/(fan_in + fan_out))) (Keras's
    default). Drawn in float64 from ``rng`` (a Generator, a seed or None), then cast."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if init == "he":
        w = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif init == "glorot":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, shape)
    else:
        raise ValueError(f"init={init!r}: use 'he' or 'glorot'")
    return w.astype(dtype)
