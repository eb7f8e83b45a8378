"""torchvision key layout -> minvert canonical weights, and architecture detection, on the
reduced-width VGG-19 / ResNet-18 / ResNet-50 files written by real torch.save."""
import json
from pathlib import Path

import numpy as np
import pytest

from minvert.errors import DTypeError, FormatError, ShapeError
from minvert.nets.vgg import vgg_head_config
from minvert.weights.torch_pth import read_pth
from minvert.weights.torchvision_map import (_spec, detect_torchvision_arch,
                                             torchvision_to_minvert)

FIX = Path(__file__).resolve().parent / "fixtures" / "torch"
NETS = ["vgg19_w4", "resnet18_w4", "resnet50_w4"]
_cache = {}


def state(name):
    if name not in _cache:
        _cache[name] = read_pth(FIX / f"{name}.pth")
    return dict(_cache[name])


def config_of(name):
    with np.load(FIX / f"{name}.npz") as z:
        return json.loads(str(z["config"]))


def vgg_names(convs):
    return [f"conv{s}_{k}" for s, n in enumerate(convs, 1) for k in range(1, n + 1)]


@pytest.mark.parametrize("name", NETS)
def test_detects_the_documented_config(name):
    assert detect_torchvision_arch(state(name)) == config_of(name)


def test_legacy_file_detects_and_maps_the_same():
    a = torchvision_to_minvert(state("resnet18_w4"))
    b = torchvision_to_minvert(read_pth(FIX / "resnet18_w4_legacy.pth"))
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[n][k], b[n][k]) for n in a for k in a[n])


def test_vgg_mapping():
    sd = state("vgg19_w4")
    w = torchvision_to_minvert(sd, detect_torchvision_arch(sd))
    assert list(w) == vgg_names([2, 2, 4, 4, 4]) + ["fc6", "fc7", "fc8"]
    assert w["conv1_1"]["w"].shape == (4, 3, 3, 3) and w["conv5_4"]["w"].shape == (16, 16, 3, 3)
    np.testing.assert_array_equal(w["conv3_1"]["w"], sd["features.10.weight"])
    np.testing.assert_array_equal(w["conv5_4"]["b"], sd["features.34.bias"])
    np.testing.assert_array_equal(w["fc6"]["w"], sd["classifier.0.weight"])  # (32, 16*7*7), CHW
    np.testing.assert_array_equal(w["fc8"]["b"], sd["classifier.6.bias"])
    assert w["fc6"]["w"].shape == (32, 784) and w["fc8"]["w"].shape == (10, 32)
    assert all(set(a) == {"w", "b"} and a["w"].dtype == np.float32 for a in w.values())


def test_vgg_head_config_reads_the_input_size_from_fc6():
    """One rule for both readers (Keras fc1 and torchvision classifier.0): fc6 takes a square
    pool5 output of widths[-1] channels, so its input count gives the input size."""
    assert vgg_head_config(16 * 7 * 7, [32, 32], 10, [4, 8, 16, 16, 16], "fc6") == \
        {"fc": [32, 32], "num_classes": 10, "input_size": 224}
    assert vgg_head_config(512 * 8 * 8, [4096, 4096], 1000, [64, 128, 256, 512, 512], "fc6")["input_size"] == 256
    sd = state("vgg19_w4")
    sd["classifier.0.weight"] = sd["classifier.0.weight"][:, :-16]  # 16*7*7 - 16 = 16*48 inputs
    with pytest.raises(ShapeError, match=r"^layer fc6 \(classifier\.0\.weight\): 768 inputs, which is "
                                         r"not side\*side\*16 for a square pool5 output$"):
        detect_torchvision_arch(sd)


@pytest.mark.parametrize("name, n_layers", [("resnet18_w4", 41), ("resnet50_w4", 107)])
def test_resnet_mapping(name, n_layers):
    sd = state(name)
    w = torchvision_to_minvert(sd)
    assert len(w) == n_layers and list(w)[:2] == ["conv1", "bn1"] and list(w)[-1] == "fc"
    bn = "layer2.0.downsample.bn"
    assert set(w[bn]) == {"gamma", "beta", "mean", "var"}
    for role, key in [("gamma", "weight"), ("beta", "bias"), ("mean", "running_mean"),
                      ("var", "running_var")]:
        np.testing.assert_array_equal(w[bn][role], sd[f"layer2.0.downsample.1.{key}"])
    np.testing.assert_array_equal(w["layer2.0.downsample.conv"]["w"], sd["layer2.0.downsample.0.weight"])
    np.testing.assert_array_equal(w["layer4.1.conv2"]["w"], sd["layer4.1.conv2.weight"])
    assert set(w["conv1"]) == {"w"} and set(w["fc"]) == {"w", "b"}  # no conv bias
    assert ("layer1.0.downsample.conv" in w) == (name == "resnet50_w4")
    feat = 32 * (4 if name == "resnet50_w4" else 1)
    assert w["fc"]["w"].shape == (10, feat)
    assert not any("num_batches_tracked" in n for n in w)


def test_shape_mismatch_names_layer_and_shapes():
    sd = state("resnet18_w4")
    sd["layer2.0.conv2.weight"] = np.zeros((8, 8, 1, 1), np.float32)
    with pytest.raises(ShapeError, match=r"layer layer2\.0\.conv2 \(layer2\.0\.conv2\.weight\): "
                                         r"expected shape \(8, 8, 3, 3\), found \(8, 8, 1, 1\)"):
        torchvision_to_minvert(sd)
    sd = state("vgg19_w4")
    sd["classifier.3.weight"] = np.zeros((32, 31), np.float32)
    with pytest.raises(ShapeError, match=r"fc7 .*expected shape \(32, 32\), found \(32, 31\)"):
        torchvision_to_minvert(sd)


def test_missing_unexpected_and_non_float_keys():
    sd = state("resnet50_w4")
    del sd["layer4.2.bn3.running_var"]
    with pytest.raises(FormatError, match=r"missing layer4\.2\.bn3\.running_var"):
        torchvision_to_minvert(sd)
    sd = state("resnet50_w4")
    sd["layer1.0.conv1.bias"] = np.zeros(4, np.float32)
    with pytest.raises(FormatError, match=r"unexpected layer1\.0\.conv1\.bias"):
        torchvision_to_minvert(sd)
    sd = state("resnet18_w4")
    sd["fc.bias"] = sd["fc.bias"].astype(np.int64)
    with pytest.raises(DTypeError, match=r"fc\.bias.*int64"):
        torchvision_to_minvert(sd)


def test_unknown_layout_says_what_was_found():
    sd = {"encoder.0.weight": np.zeros((4, 3, 3, 3)), "encoder.0.bias": np.zeros(4)}
    with pytest.raises(FormatError, match=r"unrecognised state dict: 2 tensors \(encoder\.0\.weight"):
        detect_torchvision_arch(sd)


def test_vgg_bn_and_odd_depths_refused():
    sd = state("vgg19_w4")
    sd["features.1.running_mean"] = np.zeros(4, np.float32)
    with pytest.raises(FormatError, match="batch-norm"):
        detect_torchvision_arch(sd)
    with pytest.raises(FormatError, match="batch-norm"):
        detect_torchvision_arch(state("vgg19_w4"), arch="vgg19_bn")
    sd = {k: v for k, v in state("vgg19_w4").items() if not k.startswith("features.34.")}
    with pytest.raises(FormatError, match="15 convolutions"):
        detect_torchvision_arch(sd)
    sd = {k: v for k, v in state("resnet18_w4").items() if not k.startswith("layer3.1.")}
    with pytest.raises(FormatError, match=r"\[2, 2, 1, 2\] basic blocks"):
        detect_torchvision_arch(sd)


def synthetic(config):
    return {key: np.zeros(shape, np.float32) for _, _, key, shape in _spec(config)}


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_detects_every_resnet_depth(depth):
    config = {"arch": "resnet", "depth": depth, "variant": "v1.5", "width": 2, "num_classes": 3,
              "include_top": True, "bn_eps": 1e-5, "conv_bias": False}
    assert detect_torchvision_arch(synthetic(config)) == config


def test_detects_vgg16_without_classifier():
    config = {"arch": "vgg", "depth": 16, "widths": [1, 2, 3, 4, 5], "fc": None,
              "num_classes": None, "include_top": False, "pool": "max", "input_size": 224}
    sd = synthetic(config)
    assert "features.28.weight" in sd and "features.30.weight" not in sd  # torchvision indices
    assert detect_torchvision_arch(sd) == config
    assert list(torchvision_to_minvert(sd)) == vgg_names([2, 2, 3, 3, 3])


def test_arch_override_validates():
    sd = state("resnet18_w4")
    assert detect_torchvision_arch(sd, arch="ResNet-18") == config_of("resnet18_w4")
    with pytest.raises(FormatError, match=r"does not fit torchvision resnet50: missing layer1\.0\.conv3"):
        detect_torchvision_arch(sd, arch="resnet50")
    with pytest.raises(FormatError, match=r"does not fit torchvision resnet34: missing layer1\.2\.conv1"):
        detect_torchvision_arch(sd, arch="resnet34")
    with pytest.raises(FormatError, match="not one of vgg16, vgg19"):
        detect_torchvision_arch(sd, arch="densenet121")
    with pytest.raises(FormatError, match=r"features\.0\.weight is missing"):
        detect_torchvision_arch(sd, arch="vgg19")
    vsd = state("vgg19_w4")
    with pytest.raises(FormatError, match=r"does not fit torchvision vgg16"):
        detect_torchvision_arch(vsd, arch="vgg16")
    with pytest.raises(FormatError, match=r"num_classes=5 disagrees with the file, which has num_classes=10"):
        detect_torchvision_arch(vsd, arch={"num_classes": 5})


def test_arch_override_dict_pool_and_dropped_head():
    vsd = state("vgg19_w4")
    assert detect_torchvision_arch(vsd, arch={"pool": "avg"})["pool"] == "avg"
    config = detect_torchvision_arch(vsd, arch={"include_top": False})
    w = torchvision_to_minvert(vsd, config)
    assert "fc6" not in w and len(w) == 16
    config = detect_torchvision_arch(state("resnet50_w4"), arch={"include_top": False})
    assert "fc" not in torchvision_to_minvert(state("resnet50_w4"), config)
