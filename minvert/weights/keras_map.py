"""Keras VGG16/19 and ResNet50/101/152 weights -> minvert canonical weights.

Works on :func:`minvert.weights.keras_h5.read_keras_h5` output (the reader), as
:mod:`minvert.weights.torchvision_map` works on :func:`minvert.weights.torch_pth.read_pth` output.

* :func:`detect_keras_arch` recognises VGG16/19 and ResNet50/101/152 (current and legacy
  keras-applications names) from layer names; sizes come from array shapes.
* :func:`keras_to_minvert` maps Keras layers to minvert names **by name** (``layer_names``
  is Keras' depth order, not creation order) and converts layouts:
  conv kernel (KH, KW, C, F) -> (F, C, KH, KW); dense (in, out) -> (out, in); batch-norm
  arrays [gamma, beta, moving_mean, moving_variance]; VGG ``fc1`` rows from Keras'
  channels-last flatten order (h, w, c) to minvert's (c, h, w).

Keras heads end in a softmax; the minvert nets output the logits before it. The legacy
ResNet50 file's ``running_std`` arrays hold the variance (Keras 2 loaded them into
``moving_variance`` unchanged); its batch-norm eps is 1e-3, the current files' 1.001e-5.
"""
import re

import numpy as np

from ..errors import FormatError, ShapeError
from ..nets.vgg import vgg_head_config

VGG_CONVS = {16: [2, 2, 3, 3, 3], 19: [2, 2, 4, 4, 4]}
RESNET_BLOCKS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}
ROLES = {"conv": ["w", "b"], "dense": ["w", "b"], "fc1": ["w", "b"], "bn": ["gamma", "beta", "mean", "var"]}
# Config keys the file cannot tell: an arch= override may set them freely.
FREE_KEYS = {"vgg": {"pool", "input_size"}, "resnet": {"bn_eps"}}


# --------------------------------------------------------------------------- detection
def _weighted(layers):
    return {name: (arrays, wnames) for name, arrays, wnames in layers if len(arrays)}


def _kernel_shape(w, name, ndim):
    if name not in w:
        raise FormatError(f"Keras weights have no layer {name!r}")
    arrays = w[name][0]
    if arrays[0].ndim != ndim:
        raise ShapeError(f"Keras layer {name}: kernel has shape {arrays[0].shape}, expected {ndim} dimensions")
    return arrays[0].shape


def _head(w):
    heads = [n for n in w if n in ("predictions", "probs") or re.fullmatch(r"fc\d+", n)]
    if len(heads) > 1:
        raise FormatError(f"several classifier layers in the file: {', '.join(heads)}")
    return heads[0] if heads else None


def detect_keras_arch(layers, arch=None):
    """Architecture config (minvert conventions, see minvert/nets) for :func:`read_keras_h5` output.

    ``arch`` optionally overrides: a name ('vgg16', 'vgg19', 'resnet50', 'resnet101',
    'resnet152') that must match the file, or a config dict whose keys must agree with the
    file except those the file cannot tell (VGG: pool, input_size -- checked against fc1 when
    the top is there; ResNet: bn_eps; sizes of a head the file lacks); ``include_top=False``
    drops a file's head.
    """
    w = _weighted(layers)
    if any(re.fullmatch(r"block\d_conv\d", n) for n in w):
        config = _detect_vgg(w)
    elif any(n.endswith("_preact_bn") for n in w) or "post_bn" in w:
        raise FormatError("these are Keras ResNet v2 (pre-activation) weights, which minvert does not support")
    elif "conv1_conv" in w:
        config = _detect_resnet(w, r"conv(\d)_block\d+_1_conv", "conv1_conv")
        config["bn_eps"] = 1.001e-5
    elif "res2a_branch2a" in w:
        config = _detect_resnet(w, r"res(\d)[a-z]_branch2a", "conv1")
        config["bn_eps"] = 1e-3  # legacy resnet50.py used the Keras default epsilon
    else:
        names = list(w)
        shown = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
        raise FormatError(f"unrecognised Keras weights: {len(names)} layers with weights ({shown}); "
                          "expected VGG16/19 (block1_conv1 ...) or ResNet50/101/152 "
                          "(conv1_conv, conv2_block1_1_conv ... or legacy conv1, res2a_branch2a ...)")
    if arch is not None:
        config = _override(config, arch)
        match_layers(layers, config)  # every shape must agree with the overridden config
    return config


def _detect_vgg(w):
    counts = [sum(1 for n in w if re.fullmatch(rf"block{b}_conv\d", n)) for b in range(1, 6)]
    depth = next((d for d, c in VGG_CONVS.items() if c == counts), None)
    if depth is None:
        raise FormatError(f"VGG-style layer names with {counts} convolutions per block, which is "
                          "neither VGG16 [2, 2, 3, 3, 3] nor VGG19 [2, 2, 4, 4, 4]")
    widths = [int(_kernel_shape(w, f"block{b}_conv1", 4)[3]) for b in range(1, 6)]
    if min(widths) < 1:
        raise ShapeError(f"VGG block widths {widths}: a block without filters")
    config = {"arch": "vgg", "depth": depth, "widths": widths, "fc": None, "num_classes": None,
              "include_top": "fc1" in w, "pool": "max", "input_size": 224}
    if config["include_top"]:
        rows, fc6 = _kernel_shape(w, "fc1", 2)
        for name in ("fc2", "predictions"):
            if name not in w:
                raise FormatError(f"VGG weights have fc1 but no {name}")
        config.update(vgg_head_config(rows, [fc6, _kernel_shape(w, "fc2", 2)[1]],
                                      _kernel_shape(w, "predictions", 2)[1], widths, "Keras layer fc1"))
    return config


def _detect_resnet(w, first_conv_re, stem):
    """first_conv_re matches the first conv of every block; group 1 is the stage (2..5)."""
    stages = [m.group(1) for m in (re.fullmatch(first_conv_re, n) for n in w) if m]
    counts = [stages.count(str(s)) for s in range(2, 6)]
    depth = next((d for d, c in RESNET_BLOCKS.items() if c == counts), None)
    if depth is None:
        raise FormatError(f"ResNet-style layer names with {counts} blocks per stage, which is not "
                          "ResNet50 [3, 4, 6, 3], ResNet101 [3, 4, 23, 3] or ResNet152 [3, 8, 36, 3]")
    head = _head(w)
    return {"arch": "resnet", "depth": depth, "variant": "v1", "width": int(_kernel_shape(w, stem, 4)[3]),
            "num_classes": int(_kernel_shape(w, head, 2)[1]) if head else None,
            "include_top": head is not None, "bn_eps": None, "conv_bias": len(w[stem][0]) == 2}


def _override(config, arch):
    if isinstance(arch, str):
        want = arch.lower().replace("-", "").replace("_", "")
        have = f"{config['arch']}{config['depth']}"
        if want != have:
            raise FormatError(f"arch={arch!r} was requested but the file holds {have} weights")
        return config
    out = dict(config)
    for key, value in dict(arch).items():
        if key == "include_top" and value is False:
            pass  # dropping a file's head is fine
        elif key in FREE_KEYS[config["arch"]] or (key not in config) or config[key] is None:
            pass
        elif value != config[key]:
            raise FormatError(f"arch override {key}={value!r} disagrees with the file, which has {key}={config[key]!r}")
        out[key] = value
    if out.get("include_top") and not config["include_top"]:
        raise FormatError("arch override asks for the classifier top, but the file has none (a 'notop' file)")
    return out


# --------------------------------------------------------------------------- mapping
def _vgg_spec(config):
    """[(minvert name, keras name, kind, keras shapes)] for a VGG config."""
    spec, c_in = [], 3
    for b, (n, width) in enumerate(zip(VGG_CONVS[config["depth"]], config["widths"]), 1):
        for j in range(1, n + 1):
            spec.append((f"conv{b}_{j}", f"block{b}_conv{j}", "conv", [(3, 3, c_in, width), (width,)]))
            c_in = width
    if config["include_top"]:
        side = config["input_size"] // 32  # five 2x2/2 pools
        fc6, fc7, k = config["fc"][0], config["fc"][1], config["num_classes"]
        spec += [("fc6", "fc1", "fc1", [(side * side * c_in, fc6), (fc6,)]),
                 ("fc7", "fc2", "dense", [(fc6, fc7), (fc7,)]),
                 ("fc8", "predictions", "dense", [(fc7, k), (k,)])]
    return spec


def _keras_resnet_names(legacy, stage, i, j):
    """Keras (conv, bn) names of block i (from 0) of stage 2..5, conv j (0 = projection); stage 1 = stem."""
    if stage == 1:
        return ("conv1", "bn_conv1") if legacy else ("conv1_conv", "conv1_bn")
    if legacy:
        branch = f"{stage}{chr(ord('a') + i)}_branch{'1' if j == 0 else '2' + 'abc'[j - 1]}"
        return f"res{branch}", f"bn{branch}"
    return f"conv{stage}_block{i + 1}_{j}_conv", f"conv{stage}_block{i + 1}_{j}_bn"


def _resnet_spec(config, legacy, head):
    width, bias = config["width"], config["conv_bias"]

    def conv_bn(mname, mbn, kconv, kbn, k, c_in, c_out):
        shapes = [(k, k, c_in, c_out)] + [(c_out,)] * bias
        return [(mname, kconv, "conv", shapes), (mbn, kbn, "bn", [(c_out,)] * 4)]

    spec = conv_bn("conv1", "bn1", *_keras_resnet_names(legacy, 1, 0, None), 7, 3, width)
    c_in = width
    for k, n_blocks in enumerate(RESNET_BLOCKS[config["depth"]]):
        planes = width * 2 ** k
        for i in range(n_blocks):
            m = f"layer{k + 1}.{i}."
            names = [_keras_resnet_names(legacy, k + 2, i, j) for j in range(4)]
            spec += conv_bn(m + "conv1", m + "bn1", *names[1], 1, c_in, planes)
            spec += conv_bn(m + "conv2", m + "bn2", *names[2], 3, planes, planes)
            spec += conv_bn(m + "conv3", m + "bn3", *names[3], 1, planes, 4 * planes)
            if i == 0:
                spec += conv_bn(m + "downsample.conv", m + "downsample.bn", *names[0], 1, c_in, 4 * planes)
            c_in = 4 * planes
    if config["include_top"]:
        spec.append(("fc", head or "predictions", "dense", [(c_in, config["num_classes"]), (config["num_classes"],)]))
    return spec


def _role(weight_name):
    """Role a Keras weight name states ('w', 'b', 'gamma', ...), or None if it says none."""
    base = re.sub(r"_\d+$", "", weight_name.rsplit("/", 1)[-1].split(":")[0])  # Keras-1 '_1' suffix
    for suffixes, role in ((("moving_variance", "running_std", "running_var"), "var"),
                           (("moving_mean", "running_mean"), "mean"), (("gamma",), "gamma"),
                           (("beta",), "beta"), (("kernel", "_W"), "w"), (("bias", "_b"), "b")):
        if base.endswith(suffixes):
            return role
    return None


def match_layers(layers, config):
    """Pair the spec with the file's layers; check names, weight order and shapes."""
    w = _weighted(layers)
    known = {"vgg": VGG_CONVS, "resnet": RESNET_BLOCKS}.get(config.get("arch"), {})
    if config.get("depth") not in known:
        raise FormatError(f"Keras weights map only onto VGG16/19 and ResNet50/101/152, not "
                          f"arch={config.get('arch')!r} depth={config.get('depth')!r}")
    if config["arch"] == "vgg":
        spec, heads = _vgg_spec(config), {"fc1", "fc2", "predictions"}
    else:
        head = _head(w)
        spec, heads = _resnet_spec(config, "conv1" in w and "conv1_conv" not in w, head), {head}
    wanted = {kname for _, kname, _, _ in spec}
    missing = [kname for kname in wanted if kname not in w]
    extra = [n for n in w if n not in wanted and not (n in heads and not config["include_top"])]
    if missing or extra:
        parts = [f"{label} {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}"
                 for label, names in (("missing", sorted(missing)), ("unexpected", extra)) if names]
        raise FormatError(f"Keras layers do not fit {config['arch']}{config['depth']}: "
                          + "; ".join(parts))
    pairs = []
    for mname, kname, kind, shapes in spec:
        arrays, wnames = w[kname]
        found = [tuple(a.shape) for a in arrays]
        if found != shapes:
            why = f" (input_size {config['input_size']} gives a {config['input_size'] // 32}x" \
                  f"{config['input_size'] // 32} pool5)" if kind == "fc1" else ""
            raise ShapeError(f"Keras layer {kname} (minvert {mname}): expected shapes {shapes}, found {found}{why}")
        for pos, (wname, role) in enumerate(zip(wnames, ROLES[kind])):
            if _role(wname) not in (None, role):
                raise FormatError(f"Keras layer {kname}: weight {pos} is named {wname!r} but Keras "
                                  f"stores {', '.join(ROLES[kind])} in that order")
        pairs.append((mname, kname, kind, arrays))
    return pairs


def fc1_to_chw(kernel, side, channels):
    """Keras fc1 kernel (side*side*C, out), rows in (h, w, c) order -> minvert (out, C*side*side)."""
    out = kernel.shape[1]
    k = kernel.reshape(side, side, channels, out).transpose(2, 0, 1, 3)  # (C, H, W, out)
    return np.ascontiguousarray(k.reshape(channels * side * side, out).T)  # (out, C*H*W)


def keras_to_minvert(layers, config=None):
    """Canonical weights {minvert layer: {"w", "b", "gamma", "beta", "mean", "var"}}.

    ``layers`` is :func:`read_keras_h5` output; ``config`` defaults to
    :func:`detect_keras_arch`. Arrays keep the stored dtype. Raises ShapeError naming the
    layer and both shapes on a mismatch, FormatError for missing or unexpected layers.
    """
    config = detect_keras_arch(layers) if config is None else config
    weights = {}
    for mname, kname, kind, arrays in match_layers(layers, config):
        if kind == "bn":
            weights[mname] = dict(zip(ROLES["bn"], (np.array(a) for a in arrays)))
            continue
        kernel = arrays[0]
        if kind == "conv":
            w = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))  # (F, C, KH, KW)
        elif kind == "fc1":
            w = fc1_to_chw(kernel, config["input_size"] // 32, config["widths"][-1])
        else:
            w = np.ascontiguousarray(kernel.T)  # (out, in)
        weights[mname] = {"w": w, **({"b": np.array(arrays[1])} if len(arrays) > 1 else {})}
    return weights
