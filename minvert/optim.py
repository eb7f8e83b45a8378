"""Hand-written first-order update rules: SGD (momentum, Nesterov), Adam, Adadelta.

Every optimizer shares one small interface::

    opt = Adadelta(lr=1.0, rho=0.95, eps=1e-8)
    for batch in batches:
        ...forward, loss, backward (fills each layer's ``grads``)...
        opt.step(net.parameters())      # updates the parameters in place

``step(pairs)`` takes an iterable of ``(name, param, grad)`` triples:

- ``name``: a string unique per parameter, e.g. ``"conv1.w"``. The optimizer's
  state (momentum buffers, running averages) is keyed by it, so a network rebuilt
  from a checkpoint finds its state again.
- ``param``: the array to update **in place** (NumPy or CuPy, float32/float64).
- ``grad``: dLoss/dparam, same shape; ``None`` means "no gradient this step" (a
  frozen layer) and the parameter is left alone.

State is created lazily (``xp.zeros_like(param)``) the first time a name is seen,
so it lives on the parameter's device and has its dtype. ``state_dict()`` returns
a flat dict of copies: the hyper-parameters, the step count ``t`` and one array
per (slot, parameter) under the key ``"<slot>/<name>"`` (slot names never contain
``/``, so the key splits unambiguously at the first one). ``load_state_dict(d)``
restores all of it, hyper-parameters included (as ``torch.optim`` does), so a run
resumed from a checkpoint continues bit-identically. Arrays loaded as NumPy move to
a CuPy parameter's device at its next step.

``t`` counts calls to ``step``; Adam's bias correction uses it, so pass every
trained parameter at every step (all minvert training loops do).

Update rules (g = grad, all operations elementwise):

- SGD, torch convention: ``v = momentum*v + g``; ``p -= lr*v``
  (Nesterov: ``p -= lr*(g + momentum*v)``); momentum 0 keeps no state.
- Adam (Kingma & Ba, Algorithm 1): ``m = b1*m + (1-b1)*g``; ``v = b2*v + (1-b2)*g*g``;
  ``p -= lr * (m/(1-b1**t)) / (sqrt(v/(1-b2**t)) + eps)``.
- Adadelta (Zeiler 2012, as in Keras)::

      E[g²]  = rho*E[g²] + (1-rho)*g²
      d      = g * sqrt(E[Δ²] + eps) / sqrt(E[g²] + eps)    (new E[g²], old E[Δ²])
      p     -= lr * d
      E[Δ²]  = rho*E[Δ²] + (1-rho)*d²

  The accumulated update ``d`` is the one *before* the learning rate, as Keras, TensorFlow
  and torch.optim do; defaults are those of the tf.keras that ran the decoder paper's
  code: lr=1.0, rho=0.95, eps=1e-8 (docs/optim.md: why, and the other Keras' eps).
  With the fast engine on (layers/fast), the update runs in chunks: the same bits.
"""
import numpy as np

from .backend import get_array_module, is_gpu_array, to_numpy
from .errors import MinvertError, ShapeError
from .layers import fast


class Optimizer:
    """Shared bookkeeping; subclasses set ``slots``, ``hyper`` and ``_update``."""

    slots = ()   # names of the per-parameter state arrays
    hyper = ()   # names of the hyper-parameters saved in state_dict

    def __init__(self):
        self.t = 0
        self.state = {slot: {} for slot in self.slots}  # slot -> name -> array

    def step(self, pairs):
        """Update every ``param`` in place from its ``grad``; see the module docstring."""
        self.t += 1
        for name, p, g in pairs:
            if g is None:
                continue
            if g.shape != p.shape:
                raise ShapeError(f"gradient of {name!r} has shape {tuple(g.shape)} but the "
                                 f"parameter has {tuple(p.shape)}")
            self._update(name, p, g)

    def _update(self, name, p, g):
        raise NotImplementedError

    def _slot(self, slot, name, p):
        """The state array ``slot`` of parameter ``name``: created as zeros on first use,
        moved to p's device / dtype if it was loaded from elsewhere."""
        table = self.state[slot]
        s = table.get(name)
        if s is None:
            xp = get_array_module(p)
            s = table[name] = xp.zeros_like(p)
            return s
        if s.shape != p.shape:
            raise ShapeError(f"optimizer state {slot}/{name} has shape {tuple(s.shape)} but the "
                             f"parameter has {tuple(p.shape)}: the checkpoint is for another net")
        xp = get_array_module(p)
        if get_array_module(s) is not xp or s.dtype != p.dtype:
            s = to_numpy(s) if xp is np else xp.asarray(s)
            s = table[name] = s.astype(p.dtype, copy=False)
        return s

    # checkpointing ---------------------------------------------------------
    def state_dict(self, host=False):
        """Flat dict: ``type``, hyper-parameters, ``t`` and ``"<slot>/<name>"`` arrays (copies).
        host=True: the copies are NumPy arrays, copied straight from the device (a checkpoint
        needs no second copy of the state on the GPU first)."""
        d = {"type": type(self).__name__, "t": self.t}
        for h in self.hyper:
            d[h] = getattr(self, h)
        for slot, table in self.state.items():
            for name, s in table.items():
                d[f"{slot}/{name}"] = to_numpy(s) if host and is_gpu_array(s) else s.copy()
        return d

    def load_state_dict(self, d):
        """Restore what :meth:`state_dict` returned (arrays are copied)."""
        kind = d.get("type", "")
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)  # h5py returns bytes
        if kind != type(self).__name__:
            raise MinvertError(f"optimizer state is for {kind or 'an unknown optimizer'!r}, "
                               f"not {type(self).__name__}: resume with the same optimizer")
        self.t = int(d["t"])
        for h in self.hyper:
            if h in d:
                setattr(self, h, type(getattr(self, h))(d[h]))
        self.state = {slot: {} for slot in self.slots}
        for key, value in d.items():
            slot, sep, name = key.partition("/")
            if not sep:
                continue
            if slot not in self.state:
                raise MinvertError(f"optimizer state has an unknown entry {key!r} for "
                                   f"{type(self).__name__} (slots: {', '.join(self.slots)})")
            self.state[slot][name] = value.copy()

    def __repr__(self):
        hp = ", ".join(f"{h}={getattr(self, h)!r}" for h in self.hyper)
        return f"{type(self).__name__}({hp})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, torch convention."""

    slots = ("velocity",)
    hyper = ("lr", "momentum", "nesterov")

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False):
        super().__init__()
        if nesterov and momentum <= 0:
            raise MinvertError("nesterov=True needs momentum > 0 (e.g. momentum=0.9)")
        self.lr, self.momentum, self.nesterov = float(lr), float(momentum), bool(nesterov)

    def _update(self, name, p, g):
        if self.momentum == 0:
            p -= self.lr * g
            return
        v = self._slot("velocity", name, p)
        v *= self.momentum
        v += g
        if self.nesterov:
            p -= self.lr * (g + self.momentum * v)
        else:
            p -= self.lr * v


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba 2015, Algorithm 1; eps outside the sqrt)."""

    slots = ("m", "v")
    hyper = ("lr", "beta1", "beta2", "eps")

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__()
        self.lr, self.beta1, self.beta2, self.eps = float(lr), float(beta1), float(beta2), float(eps)

    def _update(self, name, p, g):
        xp = get_array_module(p)
        m = self._slot("m", name, p)
        v = self._slot("v", name, p)
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * (g * g)
        m_hat = m / (1 - self.beta1 ** self.t)
        v_hat = v / (1 - self.beta2 ** self.t)
        p -= self.lr * m_hat / (xp.sqrt(v_hat) + self.eps)


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012) exactly as Keras computes it; defaults = tf.keras 1.5."""

    slots = ("accum_grad", "accum_delta")
    hyper = ("lr", "rho", "eps")

    def __init__(self, lr=1.0, rho=0.95, eps=1e-8):
        super().__init__()
        self.lr, self.rho, self.eps = float(lr), float(rho), float(eps)

    def _update(self, name, p, g):
        a = self._slot("accum_grad", name, p)    # E[g²]
        d = self._slot("accum_delta", name, p)   # E[Δ²]
        if fast.enabled():  # the same operations in chunks, fewer temporaries (layers/fast)
            fast.adadelta_update(p, g, a, d, self.lr, self.rho, self.eps)
            return
        xp, rho, eps = get_array_module(p), self.rho, self.eps
        a[...] = rho * a + (1 - rho) * (g * g)
        update = g * xp.sqrt(d + eps) / xp.sqrt(a + eps)
        p -= self.lr * update
        d[...] = rho * d + (1 - rho) * (update * update)
