"""VGG-16 and VGG-19 (Simonyan & Zisserman 2014) with Caffe's layer names.

Layer names: ``conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ... conv5_4, relu5_4,
pool5`` and, with the fully connected top, ``flatten, fc6, relu6, fc7, relu7, fc8``
(dropout is an identity at inference and is left out). Caffe's ReLUs are in place, so the
Caffe blob ``conv4_2`` holds what minvert calls ``relu4_2``.

``config`` (JSON-able; stored in weight files)::

    {"arch": "vgg", "depth": 19, "widths": [64, 128, 256, 512, 512], "fc": [4096, 4096],
     "num_classes": 1000, "include_top": true, "pool": "max", "input_size": 224}

``convs`` (convolutions per stage, e.g. ``[1, 1, 2]``) may replace ``depth`` for smaller
VGG-style nets such as the bundled ``tiny-vgg-textures``; there are ``len(widths)`` stages.
``pool="avg"`` gives the average-pooling variant the style-transfer code uses. Without the
top the network is fully convolutional and takes any input of at least 32x32; with it,
``fc6`` expects ``widths[-1] * (input_size // 32)**2`` inputs (CHW flatten order).
"""
import numpy as np

from ..errors import MinvertError, ShapeError
from ..layers.activation import ReLU
from ..layers.conv import Conv2D
from ..layers.dense import Dense
from ..layers.pool import AvgPool2D, MaxPool2D
from ..layers.shape import Flatten
from .limits import check_config
from .sequential import Network

CONVS_PER_STAGE = {16: [2, 2, 3, 3, 3], 19: [2, 2, 4, 4, 4]}

DEFAULT_CONFIG = {"arch": "vgg", "depth": 19, "widths": [64, 128, 256, 512, 512],
                  "fc": [4096, 4096], "num_classes": 1000, "include_top": True,
                  "pool": "max", "input_size": 224}


def vgg_config(**overrides):
    config = dict(DEFAULT_CONFIG, **overrides)
    if "convs" not in config:
        if config["depth"] not in tuple(CONVS_PER_STAGE):
            raise MinvertError(f"VGG depth {config['depth']} is not known; use 16 or 19")
        config["convs"] = CONVS_PER_STAGE[config["depth"]]
    check_config(config)  # types and sizes, before anything reads them
    if len(config["convs"]) != len(config["widths"]):
        raise MinvertError(f"VGG config: {len(config['convs'])} stages of convs but {len(config['widths'])} widths")
    if config["pool"] not in ("max", "avg"):
        raise MinvertError(f"VGG pool {config['pool']!r} is not known; use 'max' or 'avg'")
    if config["include_top"] and config["input_size"] < min_input_size(config):
        raise MinvertError(f"VGG with fc layers needs input_size of at least {min_input_size(config)}")
    return config


def min_input_size(config):
    return 2 ** len(config["widths"])


def vgg_head_config(n_in, fc, num_classes, widths, layer):
    """Config keys ``fc``, ``num_classes``, ``input_size`` of a VGG top, read from weight shapes.

    ``n_in`` is the number of inputs of the first dense layer (fc6), ``fc`` the sizes of fc6
    and fc7, ``layer`` names fc6 in the error. fc6 takes a square pool5 output of
    ``widths[-1]`` channels, so ``n_in = widths[-1] * side**2`` and, after five 2x2 pools,
    ``input_size = 32 * side``. Used by both weight-file readers (Keras and torchvision).
    """
    side = int(round(np.sqrt(n_in / widths[-1])))
    if side * side * widths[-1] != n_in:
        raise ShapeError(f"{layer}: {n_in} inputs, which is not side*side*{widths[-1]} "
                         "for a square pool5 output")
    return {"fc": [int(n) for n in fc], "num_classes": int(num_classes), "input_size": 32 * side}


def build_vgg(config=None, rng=None, dtype=np.float32, preprocessing=None, labels=None):
    """Build a VGG network from ``config`` (see the module docstring); weights He-initialised."""
    config = vgg_config(**(config or {}))
    rng = rng or np.random.default_rng(0)
    Pool = MaxPool2D if config["pool"] == "max" else AvgPool2D
    layers, channels = [], 3
    for stage, (n_convs, width) in enumerate(zip(config["convs"], config["widths"]), 1):
        for k in range(1, n_convs + 1):
            layers.append((f"conv{stage}_{k}", Conv2D(channels, width, 3, pad=1, rng=rng, dtype=dtype)))
            layers.append((f"relu{stage}_{k}", ReLU()))
            channels = width
        layers.append((f"pool{stage}", Pool(2, 2)))
    if config["include_top"]:
        side = config["input_size"] // min_input_size(config)
        sizes = [channels * side * side] + list(config["fc"]) + [config["num_classes"]]
        layers.append(("flatten", Flatten()))
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append((f"fc{6 + i}", Dense(n_in, n_out, rng=rng, dtype=dtype)))
            if i < len(sizes) - 2:
                layers.append((f"relu{6 + i}", ReLU()))
    return VGG(layers, config, preprocessing, labels)


class VGG(Network):
    def forward(self, x):
        self._check(x)
        return super().forward(x)

    def predict(self, x):
        self._check(x)
        return super().predict(x)

    def forward_taps(self, x, taps, output=True):
        self._check(x, fc_needed=output)
        return super().forward_taps(x, taps, output)

    def _check(self, x, fc_needed=True):
        self.check_input(x, min_size=min_input_size(self.config))
        size = self.config["input_size"]
        if self.config["include_top"] and fc_needed and tuple(x.shape[2:]) != (size, size):
            raise MinvertError(
                f"this VGG has fully connected layers made for {size}x{size} input, got "
                f"{x.shape[2]}x{x.shape[3]}; resize the image to {size}x{size}")
