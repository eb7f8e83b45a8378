"""A VGG classifier run fully convolutionally, so that it takes a photo at its own resolution.

A VGG with fully connected layers takes exactly ``input_size`` x ``input_size`` pixels:
``fc6`` reads the flattened ``(C, S, S)`` pool map (S = input_size / 2**stages, 7 for
VGG-16/19). The same numbers can be read as convolutions (OverFeat's dense evaluation):

- ``fc6``: its weights ``(F6, C*S*S)`` reshaped to ``(F6, C, S, S)`` — flatten is
  channel-major, so this is a plain reshape — an S x S convolution without padding over the
  last pool map;
- ``fc7``, ``fc8``: ``(F, F_in)`` -> ``(F, F_in, 1, 1)``, 1x1 convolutions;
- ``positions``: the logits' mean over all positions of the resulting map,
  ``(N, classes, H', W') -> (N, classes)``.

On an ``input_size``² image the map has one position and the network computes exactly the
fixed-size one (the same products, summed in another order). On a larger ``(H, W)`` image
there are ``(H/32 - 6) x (W/32 - 6)`` positions (VGG-16/19), each the fc head applied to one
7 x 7 window of the pool5 map — a 224 x 224 window of the photo at stride 32, whose borders see
the photo around it through the convolutions instead of zero padding — and the logits are
their average; the class loss of
``transform`` is the cross-entropy of that average (docs/losses.md says what it means).

The weights are shared with the original network (views, no copy and no new file); the
layers up to the last pool are the original network's own layer objects.
"""
from ..errors import MinvertError
from ..layers.conv import Conv2D
from ..layers.dense import Dense
from ..layers.pool import GlobalAvgPool
from .vgg import VGG


def has_fc_top(net):
    """True for a VGG classifier with its fully connected layers (a fixed input size)."""
    return (net.config.get("arch") == "vgg" and bool(net.config.get("include_top"))
            and not net.config.get("fully_convolutional") and not net.config.get("class_view"))


def fc_window(config):
    """S: the side of the last pool map at ``input_size`` (fc6's convolution kernel)."""
    return config["input_size"] // 2 ** len(config["widths"])


def _as_conv(dense, kernel_side):
    """A Conv2D computing ``dense`` at every position of an ``kernel_side``² window; its weights
    are views of the dense layer's (changing one changes both)."""
    w = dense.params["w"]
    F, n_in = w.shape
    C = n_in // (kernel_side * kernel_side)
    conv = Conv2D(1, 1, 1, bias=False, dtype=w.dtype)  # tiny placeholder weights, replaced below
    conv.params = {"w": w.reshape(F, C, kernel_side, kernel_side)}  # (F, C, S, S): CHW flatten order
    if "b" in dense.params:
        conv.params["b"] = dense.params["b"]
    conv.trainable, conv.training = dense.trainable, dense.training
    return conv


def fully_convolutional(net):
    """The VGG classifier ``net`` (fc layers, fixed input size) as a :class:`FullyConvVGG`
    that takes any image of at least ``input_size`` pixels on each side."""
    if not has_fc_top(net):
        raise MinvertError("fully_convolutional needs a VGG classifier with its fc layers")
    side = fc_window(net.config)
    layers, first_fc = [], True
    for name, layer in net.children():
        if name == "flatten":
            continue
        if isinstance(layer, Dense):
            layer = _as_conv(layer, side if first_fc else 1)
            first_fc = False
        layers.append((name, layer))
    layers.append(("positions", GlobalAvgPool()))
    config = dict(net.config, fully_convolutional=True)
    return FullyConvVGG(layers, config, net.preprocessing, net.labels)


class FullyConvVGG(VGG):
    """A VGG classifier whose fc layers are convolutions; logits averaged over positions.

    forward: x (N, 3, H, W) with H, W >= input_size -> logits (N, classes). Layer names are the
    original's (``fc6`` ... are Conv2D now) plus ``positions``; taps work as in a VGG."""

    @property
    def min_side(self):
        return self.config["input_size"]

    def positions(self, shape):
        """(H', W'): the number of classifier windows along each side for an (H, W) input."""
        stride = 2 ** len(self.config["widths"])
        side = fc_window(self.config)
        return tuple(h // stride - side + 1 for h in shape)

    def _check(self, x, fc_needed=True):
        """VGG's forward, predict and forward_taps call this: any size from the fc6 window up."""
        self.check_input(x, min_size=2 ** len(self.config["widths"]))
        if fc_needed and min(x.shape[2:]) < self.min_side:
            raise MinvertError(
                f"input is {x.shape[3]}x{x.shape[2]}; the fully convolutional classifier needs at "
                f"least {self.min_side} pixels on each side (its fc6 window)")
