"""ResNet-18/34/50/101/152 (He et al. 2015) in both published variants.

* ``variant="v1"`` -- Keras/Caffe: a downsampling bottleneck puts its stride on the first
  1x1 conv; convolutions have biases; batch-norm eps 1.001e-5 (1e-3 for the legacy Keras
  ResNet50 file).
* ``variant="v1.5"`` -- torchvision: the stride sits on the 3x3 conv; no conv biases; eps 1e-5.

Weighted layers are named like torchvision's: ``conv1, bn1, layer1.0.conv1, layer1.0.bn1,
..., layer1.0.downsample.conv, layer1.0.downsample.bn, ..., fc``. Top-level layers (usable as
taps): ``conv1, bn1, relu, maxpool, layer1 .. layer4, avgpool`` and ``fc`` with the top.
Output: logits (N, num_classes), or without the top the global-average-pooled feature
(N, 2048) -- (N, 512) for 18/34.

``blocks`` (blocks per stage) may replace the depth's standard counts for smaller nets such
as the bundled ``tiny-resnet-textures``; ``bottleneck`` defaults to depth >= 50.

``config``::

    {"arch": "resnet", "depth": 50, "variant": "v1.5", "width": 64, "num_classes": 1000,
     "include_top": true, "bn_eps": 1e-5, "conv_bias": false}
"""
import numpy as np

from ..errors import MinvertError
from ..layers.activation import ReLU
from ..layers.base import Layer
from ..layers.conv import Conv2D
from ..layers.dense import Dense
from ..layers.norm import BatchNorm2D
from ..layers.pool import GlobalAvgPool, MaxPool2D
from .limits import check_config
from .sequential import Network, Sequential

BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}
VARIANT_DEFAULTS = {"v1": {"bn_eps": 1.001e-5, "conv_bias": True},
                    "v1.5": {"bn_eps": 1e-5, "conv_bias": False}}


class ResidualBlock(Layer):
    """out = relu(main(x) + shortcut(x)); the shortcut is the identity when None.

    Backward: the sum passes its gradient unchanged to both branches, and the input
    gradient is the sum of what comes back through each:
    dx = main.backward(d) + shortcut.backward(d)   (or + d for the identity).
    """

    def __init__(self, main, shortcut=None):
        super().__init__()
        self.main, self.shortcut, self.relu = main, shortcut, ReLU()

    def forward(self, x):
        skip = x if self.shortcut is None else self.shortcut.forward(x)
        return self.relu.forward(self.main.forward(x) + skip)

    def backward(self, dout):
        d = self.relu.backward(dout)  # gradient w.r.t. main(x) + shortcut(x)
        self.relu.release()
        dx = self.main.backward(d)
        return dx + (d if self.shortcut is None else self.shortcut.backward(d))

    def predict(self, x):
        """Forward without caches; the sum and the ReLU end main's predict (with the fast
        engine on, inside its last convolution, chunk by chunk)."""
        skip = x if self.shortcut is None else self.shortcut.predict(x)
        return self.main.predict(x, residual=skip)

    def named_layers(self, prefix=""):
        yield from self.main.named_layers(prefix)
        if self.shortcut is not None:
            yield from self.shortcut.named_layers(prefix + "downsample.")
        yield prefix + "relu", self.relu

    def release(self):
        for _, layer in self.named_layers():
            layer.release()


def resnet_config(**overrides):
    depth = overrides.get("depth", 50)
    variant = overrides.get("variant", "v1.5")
    if depth not in tuple(BLOCKS):
        raise MinvertError(f"ResNet depth {depth} is not known; use one of {sorted(BLOCKS)}")
    if variant not in tuple(VARIANT_DEFAULTS):
        raise MinvertError(f"ResNet variant {variant!r} is not known; use 'v1' or 'v1.5'")
    config = {"arch": "resnet", "depth": depth, "variant": variant, "width": 64,
              "num_classes": 1000, "include_top": True, "blocks": BLOCKS[depth],
              "bottleneck": depth >= 50, **VARIANT_DEFAULTS[variant]}
    config.update(overrides)
    return check_config(config)


def _conv_bn(name, c_in, c_out, k, stride, config, rng, dtype):
    conv = Conv2D(c_in, c_out, k, stride=stride, pad=k // 2, bias=config["conv_bias"], rng=rng, dtype=dtype)
    bn = BatchNorm2D(c_out, eps=config["bn_eps"])
    bn.astype(dtype)
    return [(f"conv{name}", conv), (f"bn{name}", bn)]


def _block(c_in, planes, stride, config, rng, dtype):
    bottleneck = config["bottleneck"]
    c_out = planes * 4 if bottleneck else planes
    if bottleneck:
        s1, s2 = (stride, 1) if config["variant"] == "v1" else (1, stride)
        main = (_conv_bn("1", c_in, planes, 1, s1, config, rng, dtype) + [("relu1", ReLU())]
                + _conv_bn("2", planes, planes, 3, s2, config, rng, dtype) + [("relu2", ReLU())]
                + _conv_bn("3", planes, c_out, 1, 1, config, rng, dtype))
    else:
        main = (_conv_bn("1", c_in, planes, 3, stride, config, rng, dtype) + [("relu1", ReLU())]
                + _conv_bn("2", planes, planes, 3, 1, config, rng, dtype))
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = Sequential(_conv_bn("", c_in, c_out, 1, stride, config, rng, dtype))  # conv, bn
    return ResidualBlock(Sequential(main), shortcut), c_out


def build_resnet(config=None, rng=None, dtype=np.float32, preprocessing=None, labels=None):
    """Build a ResNet from ``config`` (see the module docstring); weights He-initialised."""
    config = resnet_config(**(config or {}))
    rng = rng or np.random.default_rng(0)
    width = config["width"]
    stem_bn = BatchNorm2D(width, eps=config["bn_eps"])
    stem_bn.astype(dtype)
    layers = [("conv1", Conv2D(3, width, 7, stride=2, pad=3, bias=config["conv_bias"], rng=rng, dtype=dtype)),
              ("bn1", stem_bn), ("relu", ReLU()), ("maxpool", MaxPool2D(3, 2, pad=1))]
    channels = width
    for stage, n_blocks in enumerate(config["blocks"], 1):
        blocks = []
        for i in range(n_blocks):
            stride = 2 if (i == 0 and stage > 1) else 1
            block, channels = _block(channels, width * 2 ** (stage - 1), stride, config, rng, dtype)
            blocks.append((str(i), block))
        layers.append((f"layer{stage}", Sequential(blocks)))
    layers.append(("avgpool", GlobalAvgPool()))
    if config["include_top"]:
        layers.append(("fc", Dense(channels, config["num_classes"], rng=rng, dtype=dtype)))
    return ResNet(layers, config, preprocessing, labels)


class ResNet(Network):
    @property
    def feature_size(self):
        return self.config["width"] * 8 * (4 if self.config["bottleneck"] else 1)

    def forward(self, x):
        self.check_input(x, min_size=32)
        return super().forward(x)

    def predict(self, x):
        self.check_input(x, min_size=32)
        return super().predict(x)

    def features(self, x):
        """The global-average-pooled feature (N, feature_size), without keeping caches."""
        self.check_input(x, min_size=32)
        self.check_device(x)
        for name in self.names[: self.names.index("avgpool") + 1]:
            x = self.layers[name].predict(x)
        return x
