"""The decoder of paper 003 (tivvit/resnet_gan), exactly as its Keras code builds it.

    feature (N, 2048)
    -> reshape to 4x4x128, channels last, then to NCHW (N, 128, 4, 4)        "to_map"
    -> 6 x [3x3 'same' conv (2048, 1024, 512, 256, 128, 64 filters)           "convK"
            (``kernel``: 4 for 4x4; each upsampling is fused into the next conv)
            -> LeakyReLU(0.2) -> nearest 2x upsampling]                      "lreluK"
    -> 2x2 'same' conv with 3 filters (TensorFlow pads 0 top/left, 1 bottom/right)  "conv_out"
    -> sigmoid                                                                "sigmoid"
    = (N, 3, 256, 256) in [0, 1]; 27,505,347 parameters.

The reshape: Keras reshapes the 2048-vector in C order to (4, 4, 128) *channels last*, so
feature index i lands at h = i // 512, w = (i // 128) % 4, c = i % 128. minvert is NCHW,
so :class:`FeatureToMap` reshapes to (N, 4, 4, 128) and transposes to (N, 128, 4, 4);
the same index i then sits at [n, i % 128, i // 512, (i // 128) % 4], and a Keras kernel
converted to OIHW sees exactly the values Keras' kernel saw.

Each upsampling and the convolution after it are one layer, named like that convolution
(:class:`~minvert.layers.upconv.UpsampleConv2D`; the fast engine computes it without
building the upsampled image), so "convK" for K > 1 and "conv_out" upsample their input.

Kernels are Glorot-uniform and biases zero, as Keras initialises them. ``config``::

    {"arch": "decoder", "feature_size": 2048, "start": [4, 4, 128],
     "widths": [2048, 1024, 512, 256, 128, 64], "kernel": 3, "out_channels": 3,
     "final_kernel": 2, "alpha": 0.2}

``kernel`` is the side of the hidden convolutions: 3 (the paper's) or 4 (the paper "also
tried" 4x4). Every convolution is Keras 'same': an even kernel pads as TensorFlow does,
asymmetrically, the extra row and column at the bottom/right (:func:`same_padding`: 4x4
pads 1 top/left and 2 bottom/right; the 2x2 output conv 0 and 1). Configs written before
``kernel`` existed mean 3.

Output side = start[0] * 2 ** len(widths). Smaller decoders (for the bundled models) only
change the numbers.
"""
import numpy as np

from ..backend import get_array_module
from ..errors import MinvertError, ShapeError
from ..layers.activation import LeakyReLU, Sigmoid
from ..layers.base import Layer
from ..layers.conv import Conv2D, same_padding
from ..layers.upconv import UpsampleConv2D
from .limits import check_config
from .sequential import Network

PAPER_CONFIG = {"arch": "decoder", "feature_size": 2048, "start": [4, 4, 128],
                "widths": [2048, 1024, 512, 256, 128, 64], "kernel": 3, "out_channels": 3,
                "final_kernel": 2, "alpha": 0.2}
KERNELS = (3, 4)  # hidden kernels: the paper's 3x3, and the 4x4 it "also tried"


class FeatureToMap(Layer):
    """(N, h*w*c) -> (N, c, h, w) through Keras' channels-last reshape (see module doc)."""

    def __init__(self, h, w, c):
        super().__init__()
        self.h, self.w, self.c = h, w, c

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.h * self.w * self.c:
            raise ShapeError(f"decoder input has shape {tuple(x.shape)}; expected (N, "
                             f"{self.h * self.w * self.c}) feature vectors")
        xp = get_array_module(x)
        out = x.reshape(-1, self.h, self.w, self.c).transpose(0, 3, 1, 2)  # (N, c, h, w)
        return xp.ascontiguousarray(out)

    def backward(self, dout):
        return dout.transpose(0, 2, 3, 1).reshape(dout.shape[0], -1)  # (N, h*w*c)


def decoder_config(**overrides):
    config = check_config(dict(PAPER_CONFIG, **overrides))
    if config["kernel"] not in KERNELS:
        raise MinvertError(f"decoder kernel {config['kernel']}: use 3 (the paper's) or 4 (its 4x4 variant)")
    h, w, c = config["start"]
    if h * w * c != config["feature_size"]:
        raise MinvertError(f"decoder start {h}x{w}x{c} holds {h * w * c} values but the feature "
                           f"size is {config['feature_size']}; pick start with h*w*c = feature size")
    return config


def build_decoder(config=None, rng=None, dtype=np.float32):
    """Build the decoder from ``config`` (the paper's by default)."""
    config = decoder_config(**(config or {}))
    rng = rng or np.random.default_rng(0)
    h, w, c = config["start"]
    layers, channels = [("to_map", FeatureToMap(h, w, c))], c

    def conv(name, width, kernel, upsampled):
        """Each upsampling is one layer with the convolution after it (layers/upconv.py);
        weight names stay those of the conv."""
        if not upsampled:
            return name, Conv2D(channels, width, kernel, pad=same_padding(kernel),
                                init="glorot", rng=rng, dtype=dtype)
        return name, UpsampleConv2D(channels, width, kernel, pad=same_padding(kernel), factor=2,
                                    init="glorot", rng=rng, dtype=dtype)
    for k, width in enumerate(config["widths"], 1):
        layers += [conv(f"conv{k}", width, config["kernel"], upsampled=k > 1),
                   (f"lrelu{k}", LeakyReLU(config["alpha"]))]
        channels = width
    layers += [conv("conv_out", config["out_channels"], config["final_kernel"],
                    upsampled=bool(config["widths"])),
               ("sigmoid", Sigmoid())]
    return Decoder(layers, config)


class Decoder(Network):
    @property
    def output_size(self):
        return self.config["start"][0] * 2 ** len(self.config["widths"])
