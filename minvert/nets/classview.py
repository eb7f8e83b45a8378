"""The other way to class-invert a large photo with a fixed-size VGG: the class loss on an
area-downsampled ``input_size``² view, every tapped layer (content, style) at full size.

    logits = VGG(A_h · x · A_wᵀ)          x: (N, 3, H, W), A_h: (S, H), A_w: (S, W), S = input_size

``A`` is exact area (box) resampling: row i averages the source interval
[i·H/S, (i+1)·H/S), fractional pixels weighted by their overlap, so its transpose is the
backward pass. A non-square photo is squashed to a square, as a classifier that resizes
without cropping would see it. Compared with the fully convolutional net (fullyconv.py) in
docs/losses.md; ``transform(..., class_view="downsampled")`` uses it.
"""
import copy

import numpy as np

from ..backend import get_array_module
from .sequential import Network


def area_matrix(n_out, n_in, xp, dtype):
    """(n_out, n_in) box-filter resampling matrix: rows sum to 1 (n_in > n_out shrinks,
    n_in < n_out enlarges by pixel replication with fractional edges)."""
    edges_out = np.arange(n_out + 1) * (n_in / n_out)  # source coordinates of the output cells
    left, right = edges_out[:-1, None], edges_out[1:, None]  # (n_out, 1)
    pixel = np.arange(n_in)[None, :]  # (1, n_in)
    overlap = np.clip(np.minimum(right, pixel + 1) - np.maximum(left, pixel), 0, None)
    return xp.asarray((overlap / (n_in / n_out)).astype(dtype))


class DownsampledClassVGG(Network):
    """A fixed-size VGG classifier for any input size: logits from the ``input_size``² area
    view of the input; taps (and their backward) at the input's own size.

    The taps run through the original layer objects; the view through shallow copies that
    share the weights (each keeps its own cache, so both passes can be back-propagated)."""

    def __init__(self, net):
        super().__init__(list(net.children()), dict(net.config, class_view="downsampled"),
                         net.preprocessing, net.labels)
        view_layers = []
        for name, layer in net.children():
            twin = copy.copy(layer)
            twin.params, twin.grads, twin.cache = dict(layer.params), {}, None  # same arrays
            view_layers.append((name, twin))
        self.view = Network(view_layers, net.config)
        self._shape = None

    @property
    def min_side(self):
        return 2 ** len(self.config["widths"])

    def _resample(self, x):
        xp, S = get_array_module(x), self.config["input_size"]
        H, W = x.shape[2:]
        self._shape = (H, W)
        self._A = (area_matrix(S, H, xp, x.dtype), area_matrix(S, W, xp, x.dtype))
        return self._A[0] @ x @ self._A[1].T  # (N, 3, S, S)

    def forward(self, x):
        return self.forward_taps(x, [], output=True)[0]

    def predict(self, x):
        self.check_input(x, self.min_side)
        return self.view.predict(self._resample(x))

    def forward_taps(self, x, taps, output=True):
        self.check_input(x, self.min_side)
        logits = self.view.forward(self._resample(x)) if output else None
        acts = {}
        if taps:
            _, acts = super().forward_taps(x, taps, output=False)
        else:
            self._ran = 0
        self._view_ran = output
        return logits, acts

    def backward(self, dout=None, tap_grads=None):
        dx = super().backward(None, tap_grads) if tap_grads else None
        if dout is not None and self._view_ran:
            dview = self.view.backward(dout)
            up = self._A[0].T @ dview @ self._A[1]  # (N, 3, H, W): the adjoint of the resampling
            dx = up if dx is None else dx + up
        return dx

    def set_mode(self, training=None, trainable=None):
        super().set_mode(training, trainable)
        if hasattr(self, "view"):
            self.view.set_mode(training, trainable)
        return self
