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

  The accumulated update ``d`` is the one *before* the learning rate: that is what
  Keras 2 / tf.keras 1.x (``get_updates``: ``new_d_a = rho*d_a + (1-rho)*square(update)``
  with ``new_p = p - lr*update``), Keras 3 (``accumulated_delta_var`` gets
  ``square(delta_var)``, then ``assign_add(variable, lr*delta_var)``), TensorFlow's
  fused ApplyAdadelta kernel and torch.optim.Adadelta all do. With Keras' default
  ``lr=1.0`` the question does not arise; it matters only for ``lr != 1``.
  Defaults are those of tf.keras 2.1.2-tf, the Keras inside TensorFlow 1.5.0 that ran the
  decoder paper's code: lr=1.0, rho=0.95, eps=1e-8 (its ``Adadelta.__init__`` default;
  1e-7 is only ``K.epsilon()``, the BCE clip, which upstream Keras 2.1.3 later made the
  Adadelta default too). Zeiler's paper uses eps=1e-6 (``Adadelta(eps=1e-6)``; torch uses
  rho=0.9, eps=1e-6).
"""
import numpy as np

from . import threads
from .backend import get_array_module, to_numpy
from .errors import MinvertError, ShapeError


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
    def state_dict(self):
        """Flat dict: ``type``, hyper-parameters, ``t`` and ``"<slot>/<name>"`` arrays (copies)."""
        d = {"type": type(self).__name__, "t": self.t}
        for h in self.hyper:
            d[h] = getattr(self, h)
        for slot, table in self.state.items():
            for name, s in table.items():
                d[f"{slot}/{name}"] = s.copy()
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


# Adadelta updates a large parameter this many values at a time: its temporaries then
# stay a few MB instead of twice the parameter (the decoder's largest weight is 75 MB)
UPDATE_CHUNK = 1 << 20


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012) exactly as Keras computes it; defaults = tf.keras 1.5."""

    slots = ("accum_grad", "accum_delta")
    hyper = ("lr", "rho", "eps")

    def __init__(self, lr=1.0, rho=0.95, eps=1e-8):
        super().__init__()
        self.lr, self.rho, self.eps = float(lr), float(rho), float(eps)

    def _update(self, name, p, g):
        xp = get_array_module(p)
        a = self._slot("accum_grad", name, p)    # E[g²]
        d = self._slot("accum_delta", name, p)   # E[Δ²]
        if all(v.flags.c_contiguous for v in (p, g, a, d)) and p.size > UPDATE_CHUNK:
            flat = [v.reshape(-1) for v in (p, g, a, d)]  # views (contiguous)

            def update(start, stop):  # temporaries of UPDATE_CHUNK values
                for i in range(start, stop, UPDATE_CHUNK):
                    self._adadelta(xp, *(v[i:min(i + UPDATE_CHUNK, stop)] for v in flat))
            threads.split(update, p.size, xp, elements=p.size)  # shared out among workers
        else:
            self._adadelta(xp, p, g, a, d)

    def _adadelta(self, xp, p, g, a, d):
        """In place, with two temporaries the size of p; the same operations in the same
        order as the formulas, so the same bits:
        a = rho a + (1 - rho) g²;  update = g sqrt(d + eps) / sqrt(a + eps) (old d);
        p -= lr update;  d = rho d + (1 - rho) update²."""
        t, u = xp.multiply(g, g), xp.empty_like(p)
        a *= self.rho
        t *= 1 - self.rho
        a += t
        update = xp.sqrt(xp.add(d, self.eps, out=t), out=t)
        xp.multiply(g, update, out=update)
        update /= xp.sqrt(xp.add(a, self.eps, out=u), out=u)
        p -= xp.multiply(update, self.lr, out=u)
        d *= self.rho
        u = xp.multiply(update, update, out=u)
        u *= 1 - self.rho
        d += u
