"""Watching exercise 11 train: :class:`Spy` records the calls of minvert's layer classes while
the student's ``overfit`` runs; :func:`reference_step` recomputes one SGD step of
Dense -> ReLU -> Dense from given parameters with minvert's own functions; and
:func:`step_mistake` names what a step that differs from it did instead.
"""
import numpy as np

from ..gradcheck import rel_error
from ..layers import (dense_backward, dense_forward, relu_backward, relu_forward,
                      softmax_cross_entropy)
from .hints import MATCH


class Spy:
    """``with Spy(Dense, ReLU) as spy:`` replaces the classes' forward and backward by wrappers
    that record (kind, layer, params used, input) and then call the original; the originals
    come back on exit, also after an exception. Class attributes, so every import path of
    the classes is watched."""

    def __init__(self, *classes):
        self.classes, self.events, self.saved = classes, [], []

    def __enter__(self):
        for cls in self.classes:
            for name in ("forward", "backward"):
                self.saved.append((cls, name, cls.__dict__.get(name)))
                setattr(cls, name, self._watch(name, getattr(cls, name)))
        return self

    def __exit__(self, *exc):
        for cls, name, original in reversed(self.saved):
            if original is None:
                delattr(cls, name)
            else:
                setattr(cls, name, original)
        self.saved = []
        return False

    def _watch(self, kind, original):
        def watched(layer, x, *args, **kwargs):
            params = {k: np.array(v, copy=True) for k, v in layer.params.items()}
            self.events.append((kind, layer, params, np.array(x, copy=True)))
            return original(layer, x, *args, **kwargs)
        return watched

    def layers(self, cls):
        """Instances of ``cls`` in the order of their first forward."""
        seen = []
        for kind, layer, _, _ in self.events:
            if kind == "forward" and isinstance(layer, cls) and not any(layer is s for s in seen):
                seen.append(layer)
        return seen

    def dense_layers(self):
        return [layer for layer in self.layers(object) if "w" in layer.params]

    def calls(self, kind, cls):
        return sum(1 for k, layer, _, _ in self.events if k == kind and isinstance(layer, cls))

    def first_input(self, layer):
        return next(x for kind, l, _, x in self.events if kind == "forward" and l is layer)

    def training_params(self, layer):
        """The parameters of each forward of ``layer`` that a backward of the same layer
        followed: one per training step (a forward only for printing a loss is left out)."""
        mine = [(kind, params) for kind, l, params, _ in self.events if l is layer]
        return [params for (kind, params), (after, _) in zip(mine, mine[1:])
                if kind == "forward" and after == "backward"]


def reference_step(x, y, params, relu=True):
    """(loss, [grads of layer 1, grads of layer 2]) of Dense -> ReLU -> Dense at ``params``
    ([{"w", "b"}, {"w", "b"}]); relu=False skips the ReLU's backward (a classic mistake)."""
    (p1, p2), grads = params, [{}, {}]
    h, cache1 = dense_forward(x, p1["w"], p1.get("b"))
    a, cache_relu = relu_forward(h)
    logits, cache2 = dense_forward(a, p2["w"], p2.get("b"))
    loss, dlogits = softmax_cross_entropy(logits, y)
    da, grads[1]["w"], grads[1]["b"] = dense_backward(dlogits, cache2)
    dh = relu_backward(da, cache_relu) if relu else da
    _, grads[0]["w"], grads[0]["b"] = dense_backward(dh, cache1)
    return float(loss), [{k: g[k] for k in p} for g, p in zip(grads, params)]


def _close(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and (not a.any() and not b.any() or rel_error(a, b) < MATCH)


def loss_mistake(t, got, loss, params, x_in, y, spy, relu_cls):
    """(first line, hint) for a step whose recorded loss is not the loss of its parameters."""
    first = f"losses[{t}] is {got:.6g}, but the parameters this step's forward used give {loss:.6g}"
    if t + 1 < len(params[0]):
        after = reference_step(x_in, y, [params[0][t + 1], params[1][t + 1]])[0]
        if abs(got - after) <= 1e-9 * max(1.0, abs(after)):
            return first, ("that is the loss after this step's update: record the loss of the "
                           "forward pass that the backward and the update use, before the update")
    if not spy.calls("forward", relu_cls):
        return first, "the ReLU is missing from the forward: the net is Dense -> ReLU -> Dense"
    return first, ("losses[t] must be the value softmax_cross_entropy(logits, y) returns for "
                   "step t's forward pass, as a float, recorded before the update")


def update_mistake(t, moved, want, grads_without_relu, lr, spy, relu_cls):
    """(first line, hint) for a step whose update is not p - lr * grad for every array."""
    bad = [(j, k) for j in (0, 1) for k in want[j] if not _close(moved[j][k], want[j][k])]
    if not bad:
        return ("the parameters moved by -lr * grad to within 1e-6 of the step, not to 1e-10",
                "a float32 step, or an eps added? float64 arithmetic repeats the reference "
                "step to about 1e-15")
    j, k = bad[0]
    first = (f"Dense layer {j + 1}'s {k} did not move by -lr * its gradient "
             f"({len(bad)} of {sum(len(w) for w in want)} parameter arrays are off)")
    if all(not moved[i][n].any() for i, n in bad):
        if all(not moved[i][n].any() for i in (0, 1) for n in moved[i]):
            return first, ("the parameters never changed: did the update reach the layers' own "
                           "arrays? layer.params[k] -= lr * layer.grads[k] changes them in "
                           "place; p = p - lr * g on a loop variable does not")
        names = sorted({n for _, n in bad})
        return first, (f"{' and '.join(names)} never changed: update every parameter of every "
                       f"layer (for k in layer.params: layer.params[k] -= lr * layer.grads[k])")
    if all(_close(moved[i][n], -want[i][n]) for i, n in bad):
        return first, "the step went up the gradient: p -= lr * grad, not +="
    if all(j == 0 for j, _ in bad) and (not spy.calls("backward", relu_cls) or all(
            _close(moved[0][n], -lr * grads_without_relu[n]) for _, n in bad)):
        return first, ("the gradient reaching the first Dense layer skipped the ReLU's "
                       "backward: backward goes through every layer in reverse order, the ReLU "
                       "too (it zeroes the gradient where its input was negative)")
    scale = [float(np.sum(moved[i][n] * want[i][n]) / max(np.sum(want[i][n] ** 2), 1e-300))
             for i, n in bad]
    if all(_close(moved[i][n], s * want[i][n]) for (i, n), s in zip(bad, scale)) and \
            np.allclose(scale, scale[0], rtol=1e-6) and abs(scale[0] - 1) > 1e-3:
        return first, (f"the step is {scale[0]:.4g} times lr * grad: p -= lr * grad with the lr "
                       f"the checker passes ({lr})")
    return first, ("after the backward of step t, p -= lr * layer.grads[k] for every parameter "
                   "of every layer, once, before the next forward pass")
