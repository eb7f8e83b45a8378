"""torchvision VGG-16/19 and ResNet-18..152 state dicts -> minvert canonical weights.

torchvision keys (see docs/ and shared reference, section 4.3) and where they go:

* VGG: ``features.{i}.weight/bias`` (convs at the torchvision Sequential indices, ReLU after
  each conv, a max-pool closing each stage) -> ``conv{stage}_{k}`` ``w``/``b``;
  ``classifier.0/3/6`` (Linear; 1, 2, 4, 5 are ReLU/Dropout) -> ``fc6/fc7/fc8``. torchvision's
  ``AdaptiveAvgPool2d((7, 7))`` is the identity for 224x224 input, which minvert's VGG
  assumes; ``classifier.0`` columns are already in minvert's CHW flatten order.
* ResNet (torchvision is "v1.5": stride on the 3x3 conv, no conv bias, eps 1e-5): ``conv1``,
  ``bn1``, ``layer{k}.{i}.conv{j}`` / ``.bn{j}``, ``layer{k}.0.downsample.0`` (1x1 conv) ->
  ``layer{k}.0.downsample.conv``, ``downsample.1`` -> ``.downsample.bn``, ``fc``.
* Batch-norm ``weight, bias, running_mean, running_var`` -> ``gamma, beta, mean, var``;
  ``num_batches_tracked`` is ignored.

Conv weights (F, C, KH, KW) and Linear weights (out, in) are already minvert's layout, so
arrays are only checked and passed on (dtype as stored). VGG with batch-norm (vgg*_bn) is
not supported.
"""
import re

import numpy as np

from ..errors import DTypeError, FormatError, ShapeError
from ..nets.vgg import vgg_head_config

VGG_CONVS = {16: [2, 2, 3, 3, 3], 19: [2, 2, 4, 4, 4]}
RESNET_BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3],
                 152: [3, 8, 36, 3]}
BN_ROLES = {"weight": "gamma", "bias": "beta", "running_mean": "mean", "running_var": "var"}
# Config keys the file cannot tell: an arch= override may set them freely.
FREE_KEYS = {"vgg": {"pool", "input_size"}, "resnet": {"bn_eps"}}


def _shape(sd, key, ndim):
    if key not in sd:
        raise FormatError(f"torchvision key {key} is missing")
    shape = tuple(np.shape(sd[key]))
    if len(shape) != ndim:
        raise ShapeError(f"torchvision key {key}: expected a {ndim}-d array, found shape {shape}")
    return shape


def _vgg_conv_indices(depth):
    """[[features index of each conv] per stage]: conv, ReLU pairs, then a max-pool."""
    stages, i = [], 0
    for n in VGG_CONVS[depth]:
        stages.append([i + 2 * k for k in range(n)])
        i += 2 * n + 1
    return stages


def _detect_vgg(sd, depth=None):
    if any(re.fullmatch(r"features\.\d+\.running_mean", k) for k in sd):
        raise FormatError("torchvision VGG with batch-norm (vgg16_bn/vgg19_bn) is not supported; "
                          "use the plain vgg16/vgg19 weights")
    convs = sorted(int(m.group(1)) for k in sd
                   if (m := re.fullmatch(r"features\.(\d+)\.weight", k)) and np.ndim(sd[k]) == 4)
    if depth is None:
        depth = {13: 16, 16: 19}.get(len(convs))
        if depth is None:
            raise FormatError(f"VGG-style state dict with {len(convs)} convolutions, which is "
                              "neither VGG16 (13) nor VGG19 (16)")
        if convs != sum(_vgg_conv_indices(depth), []):
            raise FormatError(f"VGG convolutions at features indices {convs}, not torchvision's "
                              f"VGG{depth} layout {sum(_vgg_conv_indices(depth), [])}")
    widths = [_shape(sd, f"features.{s[0]}.weight", 4)[0] for s in _vgg_conv_indices(depth)]
    if min(widths) < 1:
        raise ShapeError(f"VGG stage widths {widths}: a stage without filters")
    config = {"arch": "vgg", "depth": depth, "widths": widths, "fc": None, "num_classes": None,
              "include_top": any(k.startswith("classifier.") for k in sd), "pool": "max",
              "input_size": 224}
    if config["include_top"]:
        fc6, n_in = _shape(sd, "classifier.0.weight", 2)
        config.update(vgg_head_config(n_in, [fc6, _shape(sd, "classifier.3.weight", 2)[0]],
                                      _shape(sd, "classifier.6.weight", 2)[0], widths,
                                      "layer fc6 (classifier.0.weight)"))
    return config


def _detect_resnet(sd, depth=None):
    bottleneck = "layer1.0.conv3.weight" in sd
    if depth is None:
        counts = [0] * 4
        for k in range(4):
            while f"layer{k + 1}.{counts[k]}.conv1.weight" in sd:
                counts[k] += 1
        depth = next((d for d, c in RESNET_BLOCKS.items() if c == counts and (d >= 50) == bottleneck),
                     None)
        if depth is None:
            kind = "bottleneck" if bottleneck else "basic"
            raise FormatError(f"ResNet-style state dict with {counts} {kind} blocks per stage, "
                              "which is not ResNet18/34 (basic: [2, 2, 2, 2], [3, 4, 6, 3]) or "
                              "ResNet50/101/152 (bottleneck: [3, 4, 6, 3], [3, 4, 23, 3], "
                              "[3, 8, 36, 3])")
    head = "fc.weight" in sd
    if not head and any(k.startswith("fc.") for k in sd):  # not a file without a classifier
        raise FormatError(f"tensor {next(k for k in sd if k.startswith('fc.'))} is present but "
                          "fc.weight is missing: the classifier is incomplete; the file is damaged")
    return {"arch": "resnet", "depth": depth, "variant": "v1.5",
            "width": _shape(sd, "conv1.weight", 4)[0],
            "num_classes": _shape(sd, "fc.weight", 2)[0] if head else None,
            "include_top": head, "bn_eps": 1e-5, "conv_bias": False}


def _parse_arch(name):
    want = str(name).lower().replace("-", "").replace("_", "")
    m = re.fullmatch(r"(vgg|resnet)(\d+)", want)
    if want.startswith("vgg") and want.endswith("bn"):
        raise FormatError(f"arch={name!r}: VGG with batch-norm is not supported")
    if not m or int(m.group(2)) not in (VGG_CONVS if m.group(1) == "vgg" else RESNET_BLOCKS):
        raise FormatError(f"arch={name!r} is not one of vgg16, vgg19, resnet18, resnet34, "
                          "resnet50, resnet101, resnet152")
    return m.group(1), int(m.group(2))


def _override(config, arch):
    out = dict(config)
    for key, value in dict(arch).items():
        if key == "include_top" and value is False:
            pass  # dropping a file's head is fine
        elif key in FREE_KEYS[config["arch"]] or key not in config or config[key] is None:
            pass
        elif value != config[key]:
            raise FormatError(f"arch override {key}={value!r} disagrees with the file, "
                              f"which has {key}={config[key]!r}")
        out[key] = value
    if out.get("include_top") and not config["include_top"]:
        raise FormatError("arch override asks for the classifier top, but the file has none")
    return out


def detect_torchvision_arch(state_dict, arch=None):
    """minvert arch config (see minvert/nets) of a torchvision VGG/ResNet state dict.

    Depth, widths, fc sizes and num_classes come from keys and shapes, so reduced-width
    nets are recognised. ``arch`` skips detection: a name ('vgg16', 'vgg19', 'resnet18' ...
    'resnet152') whose layout the file must match key by key, or a config dict whose keys
    must agree with the file except those it cannot tell (VGG pool/input_size, ResNet
    bn_eps); ``include_top=False`` drops the file's head. Raises FormatError saying what was
    found when the keys fit no supported layout.
    """
    sd = state_dict
    kind = None
    if isinstance(arch, str):
        kind, depth = _parse_arch(arch)
    elif "features.0.weight" in sd:
        kind = "vgg"
    elif "conv1.weight" in sd and "layer1.0.conv1.weight" in sd:
        kind = "resnet"
    if kind is None:
        keys = list(sd)
        shown = ", ".join(keys[:5]) + (" ..." if len(keys) > 5 else "")
        raise FormatError(f"unrecognised state dict: {len(keys)} tensors ({shown}); expected "
                          "torchvision VGG16/19 (features.0.weight, ...) or ResNet18-152 "
                          "(conv1.weight, layer1.0.conv1.weight, ...)")
    detect = _detect_vgg if kind == "vgg" else _detect_resnet
    if isinstance(arch, str):
        try:
            config = detect(sd, depth)
        except FormatError as e:
            raise FormatError(f"state dict does not fit torchvision {kind}{depth}: {e}") from None
    else:
        config = detect(sd)
        if arch is not None:
            config = _override(config, arch)
    if arch is not None:
        _match(sd, config)  # every key and shape must agree with the requested layout
    return config


def _spec(config):
    """[(minvert layer, role, torchvision key, expected shape)] for ``config``."""
    spec = []

    def bn(layer, prefix, c):
        spec.extend((layer, role, f"{prefix}.{p}", (c,)) for p, role in BN_ROLES.items())

    if config["arch"] == "vgg":
        c_in = 3
        for s, (idx, width) in enumerate(zip(_vgg_conv_indices(config["depth"]), config["widths"]), 1):
            for k, i in enumerate(idx, 1):
                spec += [(f"conv{s}_{k}", "w", f"features.{i}.weight", (width, c_in, 3, 3)),
                         (f"conv{s}_{k}", "b", f"features.{i}.bias", (width,))]
                c_in = width
        if config["include_top"]:
            side = config["input_size"] // 32  # five 2x2/2 max-pools
            sizes = [c_in * side * side] + list(config["fc"]) + [config["num_classes"]]
            for j, name in enumerate(("fc6", "fc7", "fc8")):
                spec += [(name, "w", f"classifier.{3 * j}.weight", (sizes[j + 1], sizes[j])),
                         (name, "b", f"classifier.{3 * j}.bias", (sizes[j + 1],))]
        return spec
    width, bottleneck = config["width"], config["depth"] >= 50
    spec.append(("conv1", "w", "conv1.weight", (width, 3, 7, 7)))
    bn("bn1", "bn1", width)
    c_in = width
    for k, n_blocks in enumerate(RESNET_BLOCKS[config["depth"]], 1):
        planes = width * 2 ** (k - 1)
        c_out = 4 * planes if bottleneck else planes
        for i in range(n_blocks):
            m = f"layer{k}.{i}."
            convs = ([(c_in, planes, 1), (planes, planes, 3), (planes, c_out, 1)] if bottleneck
                     else [(c_in, planes, 3), (planes, planes, 3)])
            for j, (cin, cout, ksize) in enumerate(convs, 1):
                spec.append((f"{m}conv{j}", "w", f"{m}conv{j}.weight", (cout, cin, ksize, ksize)))
                bn(f"{m}bn{j}", f"{m}bn{j}", cout)
            if i == 0 and (k > 1 or c_in != c_out):
                spec.append((f"{m}downsample.conv", "w", f"{m}downsample.0.weight", (c_out, c_in, 1, 1)))
                bn(f"{m}downsample.bn", f"{m}downsample.1", c_out)
            c_in = c_out
    if config["include_top"]:
        spec += [("fc", "w", "fc.weight", (config["num_classes"], c_in)),
                 ("fc", "b", "fc.bias", (config["num_classes"],))]
    return spec


def _match(sd, config):
    """The spec of ``config``, after checking that ``sd`` has exactly its keys and shapes."""
    spec = _spec(config)
    wanted = {key for _, _, key, _ in spec}
    head = "classifier." if config["arch"] == "vgg" else "fc."
    bns = {key.rsplit(".", 1)[0] for _, role, key, _ in spec if role == "mean"}
    missing = [key for _, _, key, _ in spec if key not in sd]
    allowed = wanted | {b + ".num_batches_tracked" for b in bns}
    extra = [k for k in sd if k not in allowed and not (k.startswith(head) and not config["include_top"])]
    if missing or extra:
        parts = [f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}" if missing else "",
                 f"unexpected {', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''}" if extra else ""]
        raise FormatError(f"state dict does not fit torchvision {config['arch']}{config['depth']}: "
                          + "; ".join(p for p in parts if p))
    for layer, role, key, shape in spec:
        found = tuple(np.shape(sd[key]))
        if found != shape:
            raise ShapeError(f"layer {layer} ({key}): expected shape {shape}, found {found}")
        if not np.issubdtype(np.asarray(sd[key]).dtype, np.floating):
            raise DTypeError(f"layer {layer} ({key}) holds {np.asarray(sd[key]).dtype} values, "
                             "expected floating point")
    return spec


def torchvision_to_minvert(state_dict, config=None):
    """Canonical weights {minvert layer: {"w", "b", "gamma", "beta", "mean", "var"}}.

    ``config`` defaults to :func:`detect_torchvision_arch`. Raises ShapeError naming the
    layer, the expected and the found shape; FormatError for missing or unexpected keys.
    """
    config = detect_torchvision_arch(state_dict) if config is None else config
    weights = {}
    for layer, role, key, _ in _match(state_dict, config):
        weights.setdefault(layer, {})[role] = np.ascontiguousarray(state_dict[key])
        if role == "var" and not (weights[layer][role] >= 0).all():
            raise FormatError(f"tensor {key} holds a negative running variance; the file is damaged")
    return weights
