"""Paper 000's inputs: the image at a size the network takes, the starting point and the bounds.

The bounds keep a valid 0..255 image in the network's input space, per channel; where the mask
is 0 they are pinned to the original (low = high), so those pixels come out bit-identical.
"""
import numpy as np

from ..backend import to_numpy
from ..errors import MinvertError
from ..images import describe_fit, fit_steps, fit_to_network, resize_exact
from ..nets.classview import DownsampledClassVGG
from ..nets.fullyconv import fully_convolutional, has_fc_top

CLASS_VIEWS = {"dense": "averaged over every window (fully convolutional)",
               "downsampled": "of its area-downsampled view at the net's input size"}


def network_at_size(net, size, class_view="dense", log=print):
    """The network that scores a photo at ``size``: ``net`` itself, or, for a VGG with fc
    layers given a size, the whole photo at its own resolution: fully convolutional ("dense",
    logits averaged over every window) or scoring an area-downsampled view ("downsampled")."""
    if size is None or not has_fc_top(net):
        return net
    if class_view not in CLASS_VIEWS:
        raise MinvertError(f"unknown class view {class_view!r}; use {' or '.join(CLASS_VIEWS)}")
    log(f"--size with a VGG's fc layers: the whole photo; the class score {CLASS_VIEWS[class_view]}")
    return fully_convolutional(net) if class_view == "dense" else DownsampledClassVGG(net)


def prepare_image(net, img, size=None, log=print):
    """uint8 (H, W, 3) -> uint8 (h, w, 3) at a size the network takes (:func:`fit_inputs`)."""
    return fit_inputs(net, img, None, size, log)[0]


def fit_inputs(net, img, mask, size=None, log=print):
    """(img, mask) -> (img, mask) at a size the network takes, through the one geometric rule
    (:func:`minvert.images.fit_to_network`: the same crop and resize for the mask as for the
    image, so masked pixels stay on the pixels they were drawn on). mask: float (H', W') or None.

    A VGG with its fc layers takes exactly its input size (S x S): a non-square image gives its
    central square, and that is said. Other classifiers (ResNets pool globally) take any size:
    ``size`` (default: the net's input size) is the long side, the aspect ratio kept.
    """
    pre = net.preprocessing
    size = size or pre.input_size
    smallest = 2 ** len(net.config["widths"]) if net.config.get("arch") == "vgg" else 32
    smallest = getattr(net, "min_side", smallest)  # a fully convolutional VGG: its fc6 window
    if size < smallest:
        raise MinvertError(f"--size {size} is below the {smallest}x{smallest} this network allows")
    H, W = img.shape[:2]
    if has_fc_top(net):
        if size != pre.input_size:
            raise MinvertError(f"this network's fc layers need {pre.input_size}x{pre.input_size} input; "
                               f"drop --size or use {pre.input_size}")
        if H != W:
            log(describe_fit((H, W), pre) + "; crop the photo yourself to choose another part")
        if min(H, W) < smallest:  # any photo fits an fc net; a tiny one only as big blocks
            log(f"the image is {W}x{H}, below the {smallest}x{smallest} this network sees detail at: "
                f"enlarged to {size}x{size}")
        return fit_to_network(img, mask, pre)
    if min(H, W) < smallest:
        raise MinvertError(f"the image is {W}x{H}; this network needs at least {smallest}x{smallest} pixels")
    (_, shape), = fit_steps((H, W), pre, size)
    if min(shape) < smallest:
        raise MinvertError(f"the image would be {shape[1]}x{shape[0]}; this network needs at least "
                           f"{smallest}x{smallest} pixels (use a larger --size or a less elongated image)")
    return fit_to_network(img, mask, pre, size)


def start_point(net, img, s, mask, start_image, rng):
    """(x_orig, x, low, high, mask_arr): the image and the starting point in the network's
    input space, float64 box bounds for every input value (pinned to the original where the
    mask is 0, so those pixels come out bit-identical), and the mask at the image's size."""
    pre, xp, dtype, shape = net.preprocessing, net.xp, net.dtype, img.shape[:2]
    x_orig = xp.asarray(pre.preprocess(img, dtype=dtype))  # (1, 3, h, w)
    if start_image is not None:
        x = xp.asarray(pre.preprocess(start_image, dtype=dtype))
    else:
        x = _initial_point(x_orig, s, rng, pre, xp, dtype, shape)
    low, high = (v.reshape(1, 3, 1, 1) for v in pre.pixel_bounds())
    low = np.broadcast_to(low, x.shape).astype(np.float64)
    high = np.broadcast_to(high, x.shape).astype(np.float64)
    mask_arr = None
    if mask is not None:  # fixed pixels: bounds pinned to the original values
        mask_arr = np.clip(resize_exact(np.asarray(mask, np.float64), shape), 0, 1)
        frozen = np.broadcast_to(mask_arr[None, None] == 0, x.shape)
        x0_host = to_numpy(x_orig).astype(np.float64)
        low, high = np.where(frozen, x0_host, low), np.where(frozen, x0_host, high)
        x = xp.asarray(np.where(frozen, x0_host, to_numpy(x)).astype(dtype))
    x = xp.asarray(np.clip(to_numpy(x).astype(np.float64), low, high).astype(dtype))  # start inside the bounds
    return x_orig, x, low, high, mask_arr


def _initial_point(x_orig, s, rng, pre, xp, dtype, shape):
    """The starting point --init asks for: the image, uniform noise, or a mix of the two."""
    if s.init == "image":
        return x_orig.copy()
    noise = xp.asarray(pre.preprocess(rng.uniform(0, 255, (*shape, 3)), dtype=dtype))
    if s.init == "noise":
        return noise
    if s.init == "mix":
        return ((1 - s.mix) * x_orig + s.mix * noise).astype(dtype)
    raise MinvertError(f"unknown --init {s.init!r}; use image, noise or mix")
