"""Convert Keras .h5 and torchvision .pth weights into minvert's project format.

The reader turns the source into a canonical dict ({layer: {array: value}} already in
minvert's conventions) and an arch config; the network is built from the config, the
arrays are copied in with every name and shape checked, and the result is written with
the preprocessing convention that goes with the source (Keras: caffe/BGR; torchvision:
RGB mean/std) and the source's SHA-256.
"""
import dataclasses
import hashlib
from pathlib import Path

from ..errors import FormatError, MinvertError
from ..files import same_file
from ..labels import imagenet_labels
from ..nets import build
from .keras_h5 import load_keras_h5
from .project import assign_weights, save
from .torch_pth import read_pth
from .torchvision_map import detect_torchvision_arch, torchvision_to_minvert
from .zoo import ZOO
from ..nets.preprocessing import PRESETS

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def sha256_of(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sniff_format(path):
    """'keras' (HDF5), 'torch' (zip or legacy pickle stream); FormatError otherwise."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(HDF5_MAGIC):
        return "keras"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return "torch"
    raise FormatError(f"{path} is neither a Keras .h5 (HDF5) nor a torch .pth file "
                      f"(it starts with {head[:4]!r})")


def read_source(src, arch=None):
    """(config, canonical weights, preprocessing, source kind) of a Keras or torch file."""
    kind = sniff_format(src)
    if kind == "keras":
        config, weights = load_keras_h5(src, arch=arch)
        return config, weights, PRESETS["keras"], kind
    state = read_pth(src)
    config = detect_torchvision_arch(state, arch=arch)
    pre = PRESETS["torchvision"]
    if any(e.filename == Path(src).name and e.name.endswith("-v2") for e in ZOO.values()):
        pre = dataclasses.replace(pre, resize=232)  # torchvision's V2 recipes evaluate at 232
    return config, torchvision_to_minvert(state, config), pre, kind


def convert(src, dst, arch=None, force=False, dtype="float32"):
    """Convert ``src`` to a project file at ``dst``; returns the loaded network."""
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise MinvertError(f"{src}: no such file")
    if same_file(src, dst):  # also through a symbolic or hard link: --force would destroy SRC
        raise MinvertError(f"{dst} is the source file {src} itself; write the converted weights "
                           "to another file")
    if dst.exists() and not force:
        raise MinvertError(f"{dst} exists; choose another name or pass --force to overwrite it")
    config, weights, pre, kind = read_source(src, arch)
    labels = imagenet_labels() if config.get("include_top") and config.get("num_classes") == 1000 else None
    net = build(config, dtype=dtype, preprocessing=pre, labels=labels)
    assign_weights(net, weights, what=f"{src.name}")
    save(net, dst, source={"name": src.name, "format": kind, "sha256": sha256_of(src)}, force=force)
    return net
