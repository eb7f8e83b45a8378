"""Networks as lists of named layers, with taps.

:class:`Sequential` runs its layers in order and back-propagates in reverse. It is itself a
:class:`~minvert.layers.base.Layer`, so a residual block can hold two of them (main branch
and shortcut) and a network can hold blocks.

Taps serve the losses of paper 000, which need activations deep inside VGG::

    out, acts = net.forward_taps(x, ["relu4_2", "relu1_1"], output=True)
    dx = net.backward(dlogits, tap_grads={"relu4_2": d_content, "relu1_1": d_style})

``tap_grads[name]`` is added to the gradient flowing into the output of layer ``name``
on the way back. With ``output=False`` the forward pass stops after the deepest tapped
layer and the backward pass starts there.
"""
from ..backend import check_device, get_array_module
from ..errors import MinvertError, ShapeError
from ..layers import fast
from ..layers.activation import ReLU, relu_forward
from ..layers.base import Layer
from ..layers.conv import Conv2D
from ..layers.norm import BatchNorm2D


class Sequential(Layer):
    """Layers run in order. ``layers``: list of (name, Layer) with unique names."""

    def __init__(self, layers):
        super().__init__()
        self.names = [name for name, _ in layers]
        self.layers = dict(layers)
        if len(self.layers) != len(self.names):
            raise ValueError(f"duplicate layer names in {self.names}")
        self._ran = len(self.names)  # how many layers the last forward ran

    # structure ---------------------------------------------------------------
    def children(self):
        return [(name, self.layers[name]) for name in self.names]

    def __getitem__(self, name):
        return self.layers[name]

    # forward / backward ------------------------------------------------------
    def check_device(self, x, what="input"):
        """One-line DeviceError when x is on the other side (host/GPU) from the weights: the
        single place where a network refuses an array it would otherwise fail on deep inside."""
        p = next((v for _, layer in self.named_layers() for v in layer.params.values()), None)
        if p is not None and x is not None:
            check_device(x, p, f"{type(self).__name__} {what}", "its weights")

    def forward(self, x):
        self.check_device(x)
        for name in self.names:
            x = self.layers[name].forward(x)
        self._ran = len(self.names)
        return x

    def predict(self, x, residual=None):
        """Forward without keeping anything for backward (lower peak memory): every layer,
        nested ones too, drops its cache as soon as it has run. residual: an array shaped
        like the output; then the result is max(output + residual, 0), a residual block's
        sum and ReLU."""
        self.check_device(x)
        if fast.enabled():  # conv -> batch-norm -> ReLU (-> residual) in one pass (fast/fuse.py)
            return fast.predict_fused(self._fusion_steps(), x, residual)
        for name in self.names:
            x = self.layers[name].predict(x)
        return x if residual is None else relu_forward(x + residual)[0]

    def _fusion_steps(self):
        """The layers as fast.predict_fused takes them: (layer, None) for one that runs
        alone; (conv, (scale, shift, relu)) for a Conv2D and the inference-mode batch-norm
        (its per-channel affine map, else None, None) and ReLU (True) right after it."""
        layers, steps, i = [self.layers[name] for name in self.names] + [None, None], [], 0
        while layers[i] is not None:
            layer = layers[i]
            if type(layer) is not Conv2D:  # an UpsampleConv2D runs alone
                steps.append((layer, None))
                i += 1
                continue
            scale = shift = None
            if isinstance(layers[i + 1], BatchNorm2D) and not layers[i + 1].training:
                (scale, shift), i = layers[i + 1].affine(), i + 1
            relu = type(layers[i + 1]) is ReLU
            steps.append((layer, (scale, shift, relu)))
            i += 2 if relu else 1
        return steps

    def forward_taps(self, x, taps, output=True):
        """Run forward and collect the outputs of the layers named in ``taps``.

        Returns (out, acts): ``out`` is the network output, or None when ``output`` is False,
        in which case the pass stops after the deepest tapped layer.
        """
        self.check_device(x)
        unknown = [t for t in taps if t not in self.layers]
        if unknown:
            raise MinvertError(f"no layer named {unknown[0]!r}; layers are: {', '.join(self.names)}")
        last = len(self.names) if output or not taps else 1 + max(self.names.index(t) for t in taps)
        acts = {}
        for name in self.names[:last]:
            x = self.layers[name].forward(x)
            if name in taps:
                acts[name] = x
        self._ran = last
        return (x if output else None), acts

    def backward(self, dout=None, tap_grads=None):
        """Gradient w.r.t. the input of the last forward pass.

        dout: gradient w.r.t. the output of the last layer that ran (None when the pass
        stopped at a tap: then the tap gradients alone drive the backward pass).
        tap_grads: {layer name: gradient w.r.t. that layer's output}, added on the way back.
        """
        tap_grads = tap_grads or {}
        self.check_device(dout, "gradient")
        for g in tap_grads.values():
            self.check_device(g, "tap gradient")
        for name in tap_grads:
            if name not in self.layers or self.names.index(name) >= self._ran:
                raise MinvertError(f"gradient given for layer {name!r}, which the last forward did not reach")
        d = dout
        for i in range(self._ran - 1, -1, -1):
            name = self.names[i]
            if name in tap_grads:
                d = tap_grads[name] if d is None else d + tap_grads[name]
            if d is None:  # nothing flows back from above this layer yet
                continue
            d = self.layers[name].backward(d)
            self.layers[name].release()  # its cache is spent: free the memory now
        return d

    # modes, dtype, device ------------------------------------------------------
    def named_layers(self, prefix=""):
        """All leaf layers as (dotted name, layer), depth first."""
        for name, layer in self.children():
            full = f"{prefix}{name}"
            if hasattr(layer, "named_layers"):
                yield from layer.named_layers(full + ".")
            else:
                yield full, layer

    def weighted_layers(self):
        """Leaf layers that have parameters or state, as (dotted name, layer)."""
        return [(n, l) for n, l in self.named_layers() if l.params or l.state]

    def parameters(self):
        """(name, param, grad) of every layer being trained (what optimizers take);
        grad is None before backward. Frozen layers are left out."""
        for lname, layer in self.named_layers():
            if layer.trainable:
                for k, v in layer.params.items():
                    yield f"{lname}.{k}", v, layer.grads.get(k)

    def clear_grads(self):
        """Drop every layer's weight gradients (after the optimizer step they are dead
        memory until the next backward replaces them; torch's zero_grad(set_to_none=True))."""
        for _, layer in self.named_layers():
            layer.grads = {}

    def set_mode(self, training=None, trainable=None):
        for _, layer in self.named_layers():
            if training is not None:
                layer.training = training
            if trainable is not None:
                layer.trainable = trainable
        if training is not None:
            self.training = training
        if trainable is not None:
            self.trainable = trainable
        return self

    def train(self):
        return self.set_mode(training=True, trainable=True)

    def eval(self):
        return self.set_mode(training=False)

    def freeze(self):
        """Inference mode and no weight gradients: for optimising the input pixels."""
        return self.set_mode(training=False, trainable=False)

    def astype(self, dtype):
        for _, layer in self.named_layers():
            layer.astype(dtype)
        return self

    def to(self, xp):
        for _, layer in self.named_layers():
            layer.to(xp)
        return self

    def release(self):
        for _, layer in self.named_layers():
            layer.release()

    def num_params(self):
        return sum(int(v.size) for _, layer in self.named_layers() for v in layer.params.values())

    def __repr__(self):
        lines = [f"{type(self).__name__}("]
        lines += [f"  {n}: {l!r}" for n, l in self.children()]
        return "\n".join(lines) + "\n)"


class Network(Sequential):
    """A Sequential that knows what it is: arch config, preprocessing, labels.

    This is what :func:`minvert.load_model` returns. ``config`` is the JSON-able dict that
    rebuilds the architecture (see the builders in vgg.py, resnet.py, decoder.py).
    """

    def __init__(self, layers, config, preprocessing=None, labels=None):
        super().__init__(layers)
        self.config = dict(config)
        self.preprocessing = preprocessing
        self.labels = list(labels) if labels is not None else None

    def preprocess(self, img):
        """uint8 (H, W, 3) RGB or (N, H, W, 3) -> (N, 3, H, W) in the network's convention."""
        if self.preprocessing is None:
            raise MinvertError("this network has no preprocessing convention")
        x = self.preprocessing.preprocess(img, dtype=self.dtype)
        return self.xp.asarray(x)

    def deprocess(self, x):
        """(N, 3, H, W) in the network's input space -> uint8 (N, H, W, 3) RGB."""
        if self.preprocessing is None:
            raise MinvertError("this network has no preprocessing convention")
        return self.preprocessing.deprocess(x)

    def _first_param(self):
        return next(v for _, layer in self.named_layers() for v in layer.params.values())

    @property
    def dtype(self):
        return self._first_param().dtype

    @property
    def xp(self):
        return get_array_module(self._first_param())

    def check_input(self, x, min_size=1):
        if x.ndim != 4 or x.shape[1] != 3:
            raise ShapeError(f"network input has shape {tuple(x.shape)}; expected (N, 3, H, W)")
        if min(x.shape[2:]) < min_size:
            raise ShapeError(f"input is {x.shape[2]}x{x.shape[3]}; this network needs at least "
                             f"{min_size}x{min_size}")
