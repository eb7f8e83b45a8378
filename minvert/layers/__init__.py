"""Hand-written layers, NCHW. One file per family, each = pure forward/backward
functions plus a thin :class:`Layer` class. Derivations of every backward: docs/layers.md.

Reading order: reference/ (loops) -> these files (vectorised, what the layers compute)
-> fast/ (optional: the same functions, faster; ``MINVERT_FAST=0`` turns it off).
"""
from .base import Layer, check_floating, check_rank  # noqa: F401
from .activation import (  # noqa: F401
    LeakyReLU, ReLU, Sigmoid, leaky_relu_backward, leaky_relu_forward, relu_backward,
    relu_forward, sigmoid, sigmoid_backward, sigmoid_forward)
from .conv import Conv2D, conv2d_backward, conv2d_forward, same_padding  # noqa: F401
from .dense import Dense, dense_backward, dense_forward  # noqa: F401
from .loss import (  # noqa: F401
    bce_with_logits, binary_cross_entropy, mse, softmax, softmax_cross_entropy)
from .norm import BatchNorm2D, batchnorm2d_backward, batchnorm2d_forward  # noqa: F401
from .pool import (  # noqa: F401
    AvgPool2D, GlobalAvgPool, MaxPool2D, avgpool2d_backward, avgpool2d_forward,
    global_avgpool_backward, global_avgpool_forward, maxpool2d_backward, maxpool2d_forward)
from .shape import (  # noqa: F401
    Flatten, Reshape, ZeroPad2D, add_backward, add_forward, flatten_backward, flatten_forward,
    reshape_backward, reshape_forward, zeropad2d_backward, zeropad2d_forward)
from .upsample import (  # noqa: F401
    UpsampleNearest, upsample_nearest_backward, upsample_nearest_forward)
