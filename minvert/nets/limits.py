"""Limits on an architecture config, checked before a single layer is built.

A config comes from a weight file, a checkpoint or a run record, so it can ask for anything
(10^6 layers, width 10^9, a 30000-pixel input). :func:`check_config` checks every field's type
and range and the parameter count against :data:`MAX_PARAMS` (VGG-19 with its top:
143.7 M), raising a one-line MinvertError that names the field.
"""
import math

from ..errors import MinvertError

MAX_PARAMS = 160_000_000
MAX_WIDTH = 8192          # channels of one conv (ResNet-152's widest: 2048)
MAX_UNITS = 65536         # units of one fully connected layer (VGG: 4096)
MAX_CLASSES = 100_000     # ImageNet-21k: 21,841
MAX_STAGES = 8
MAX_CONVS_PER_STAGE = 16
MAX_BLOCKS_PER_STAGE = 64  # ResNet-152: 36
MAX_SIDE = 2048           # input (VGG with top) or output (decoder) side in pixels


def _int(config, key, lo, hi, none_ok=False):
    v = config.get(key)
    if v is None and none_ok:
        return None
    if type(v) is not int or not lo <= v <= hi:
        raise MinvertError(f"model config: {key}={_short(v)} must be an integer from {lo} to {hi}")
    return v


def _ints(config, key, lo, hi, n_lo=1, n_hi=MAX_STAGES):
    v = config.get(key)
    if not (isinstance(v, (list, tuple)) and n_lo <= len(v) <= n_hi
            and all(type(x) is int and lo <= x <= hi for x in v)):
        raise MinvertError(f"model config: {key}={_short(v)} must be a list of {n_lo} to {n_hi} "
                           f"integers from {lo} to {hi}")
    return list(v)


def _flag(config, key):
    if type(config.get(key)) is not bool:
        raise MinvertError(f"model config: {key}={_short(config.get(key))} must be true or false")
    return config[key]


def _number(config, key, lo, hi):
    v = config.get(key)
    if type(v) not in (int, float) or not math.isfinite(v) or not lo <= v <= hi:
        raise MinvertError(f"model config: {key}={_short(v)} must be a number from {lo} to {hi}")
    return v


def _short(v):
    plain = (int, float, str, bool, type(None))
    if isinstance(v, plain) or (isinstance(v, (list, tuple)) and len(v) <= 16
                                and all(isinstance(x, plain) for x in v)):
        text = repr(v)
        return text if len(text) <= 60 else text[:57] + "..."
    return type(v).__name__


def check_config(config):
    """Check a complete config (defaults merged) of arch vgg, resnet or decoder."""
    arch = config.get("arch")
    params = {"vgg": _vgg, "resnet": _resnet, "decoder": _decoder}[arch](config)
    if params > MAX_PARAMS:
        raise MinvertError(f"model config asks for {params:,} parameters, more than minvert's "
                           f"limit of {MAX_PARAMS:,}; the file is damaged or not a supported model")
    return config


def _vgg(c):
    widths = _ints(c, "widths", 1, MAX_WIDTH)
    convs = _ints(c, "convs", 1, MAX_CONVS_PER_STAGE, len(widths), len(widths))
    if c.get("pool") not in ("max", "avg"):
        raise MinvertError(f"model config: pool={_short(c.get('pool'))} must be 'max' or 'avg'")
    params, c_in = 0, 3
    for n, w in zip(convs, widths):
        params += 9 * c_in * w + (n - 1) * 9 * w * w + n * w
        c_in = w
    if _flag(c, "include_top"):
        side = _int(c, "input_size", 2 ** len(widths), MAX_SIDE) // 2 ** len(widths)
        sizes = ([c_in * side * side] + _ints(c, "fc", 1, MAX_UNITS, 0)
                 + [_int(c, "num_classes", 1, MAX_CLASSES)])
        params += sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    return params


def _resnet(c):
    width = _int(c, "width", 1, MAX_WIDTH // 32)
    blocks = _ints(c, "blocks", 1, MAX_BLOCKS_PER_STAGE, 1, 4)
    bottleneck, _ = _flag(c, "bottleneck"), _flag(c, "conv_bias")
    _number(c, "bn_eps", 1e-12, 1.0)
    if c.get("variant") not in ("v1", "v1.5"):
        raise MinvertError(f"model config: variant={_short(c.get('variant'))} must be 'v1' or 'v1.5'")
    params, c_in = 49 * 3 * width, width
    for k, n in enumerate(blocks):
        planes = width * 2 ** k
        c_out = 4 * planes if bottleneck else planes
        per_block = (planes * (c_out + 9 * planes) + c_out * planes if bottleneck
                     else 18 * planes * planes)
        params += n * per_block + c_in * c_out  # + the projection shortcut of the first block
        c_in = c_out
    if _flag(c, "include_top"):
        params += (c_in + 1) * _int(c, "num_classes", 1, MAX_CLASSES)
    return params


def _decoder(c):
    h, w, ch = _ints(c, "start", 1, MAX_WIDTH, 3, 3)
    if h * w * ch != _int(c, "feature_size", 1, MAX_UNITS):
        raise MinvertError(f"model config: start {h}x{w}x{ch} does not hold feature_size="
                           f"{c['feature_size']} values")
    widths = _ints(c, "widths", 1, MAX_WIDTH, 0, 10)
    if max(h, w) * 2 ** len(widths) > MAX_SIDE:
        raise MinvertError(f"model config: a {h}x{w} start doubled {len(widths)} times exceeds "
                           f"{MAX_SIDE} pixels")
    out, k = _int(c, "out_channels", 1, 4), _int(c, "final_kernel", 1, 7)
    hidden = _int(c, "kernel", 1, 7) if "kernel" in c else 3  # files from before --kernel: 3x3
    _number(c, "alpha", 0.0, 1.0)
    params, c_in = 0, ch
    for width in widths:
        params += hidden * hidden * c_in * width + width
        c_in = width
    return params + k * k * c_in * out + out
