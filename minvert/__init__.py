"""minvert: CNN inversion from scratch, with every forward and backward written by hand.

    import minvert
    net = minvert.load_model("tiny-vgg-textures")     # or "vgg19" after `minvert weights download vgg19`
    x = net.preprocess(img)                           # uint8 (H, W, 3) RGB -> (1, 3, H, W)
    logits = net.forward(x)
    dx = net.backward(dlogits)
"""
from .errors import MinvertError  # noqa: F401
from .version import __version__  # noqa: F401

# The two entry points import the library when called: this file runs before every `minvert`
# command, and importing the weight readers here would load NumPy and h5py for `minvert --help`.


def load_model(name_or_path, dtype="float32", device=None):
    """Rebuild a network (arch, weights, preprocessing, labels) from a project weight file."""
    from .weights import load_model as _load
    return _load(name_or_path, dtype=dtype, device=device)


def convert(src, dst, arch=None, force=False):
    """Convert a Keras .h5 or torch .pth (zip or legacy) file into the project format."""
    from .weights.convert import convert as _convert
    return _convert(src, dst, arch=arch, force=force)
