"""Keras legacy H5 reader, architecture detection and Keras -> minvert mapping.

Fixtures in tests/fixtures/keras/ are written in the exact Keras layout by
tests/fixtures/make_keras_fixtures.py (see its docstring); reader_expect.npz holds the
SHA-256 of every array the script wrote, *_ref.npz the minvert config each file implies.
"""
import functools
import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from minvert.errors import FormatError, ShapeError
from minvert.weights.keras_h5 import load_keras_h5, read_keras_h5
from minvert.weights.keras_map import detect_keras_arch, fc1_to_chw, keras_to_minvert

FIX = Path(__file__).parent / "fixtures" / "keras"
FILES = {"vgg19_top": "vgg19_top", "vgg19_top_model": "vgg19_top", "vgg19_top_chunked": "vgg19_top",
         "vgg19_notop_k1": "vgg19_notop", "resnet50_top": "resnet50", "resnet50_legacy_top": "resnet50_legacy"}


@functools.lru_cache(maxsize=None)
def layers_of(stem):
    return read_keras_h5(FIX / f"{stem}.h5")


def fresh(stem):
    """A copy of the read layers that a test may modify."""
    return [(n, list(a), list(w)) for n, a, w in layers_of(stem)]


def config_of(stem):
    return json.loads(str(np.load(FIX / f"{FILES[stem]}_ref.npz")["config"]))


def replace(layers, name, arrays=None, new_name=None, weight_names=None):
    out = []
    for n, a, w in layers:
        if n == name:
            n, a, w = new_name or n, arrays if arrays is not None else a, weight_names or w
        out.append((n, a, w))
    return out


def drop(layers, names):
    return [entry for entry in layers if entry[0] not in names]


# ----------------------------------------------------------------------------- reader
@pytest.mark.parametrize("stem", sorted(FILES))
def test_reader_returns_exactly_what_was_written(stem):
    expected = json.loads(str(np.load(FIX / "reader_expect.npz")[stem]))
    layers = layers_of(stem)
    assert [n for n, _, _ in layers] == [e[0] for e in expected]  # file order, weightless layers kept
    for (name, arrays, wnames), (ename, ewnames, shapes, dtypes, digests) in zip(layers, expected):
        assert isinstance(name, str) and all(isinstance(w, str) for w in wnames)
        assert wnames == ewnames, name
        assert [list(a.shape) for a in arrays] == shapes, name
        assert [str(a.dtype) for a in arrays] == dtypes, name
        assert [hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() for a in arrays] == digests, name


def test_reader_keeps_weightless_layers_and_keras_depth_order():
    names = [n for n, _, _ in layers_of("resnet50_top")]
    assert names[:3] == ["input_1", "conv1_pad", "conv1_conv"]
    i = names.index("conv2_block1_2_relu")
    assert names[i + 1:i + 6] == ["conv2_block1_0_conv", "conv2_block1_3_conv", "conv2_block1_0_bn",
                                  "conv2_block1_3_bn", "conv2_block1_add"]
    assert dict((n, a) for n, a, _ in layers_of("resnet50_top"))["conv1_relu"] == []
    legacy = [n for n, _, _ in layers_of("resnet50_legacy_top")]
    assert legacy.index("res2a_branch2c") < legacy.index("res2a_branch1")


def write_h5(path, attrs=None, groups=None):
    with h5py.File(path, "w") as f:
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
        for name, (gattrs, dsets) in (groups or {}).items():
            g = f.create_group(name)
            for k, v in gattrs.items():
                g.attrs[k] = v
            for dname, arr in dsets.items():
                g.create_dataset(dname, data=arr)
    return path


def test_reader_accepts_str_names_and_chunked_weight_names(tmp_path):
    k, b = np.ones((2, 3), np.float32), np.zeros(3, np.float32)
    path = write_h5(tmp_path / "s.h5", {"layer_names": ["inp", "dense_1"]},  # variable-length str
                    {"inp": ({"weight_names": []}, {}),
                     "dense_1": ({"weight_names0": ["dense_1/kernel"], "weight_names1": [b"dense_1/bias"]},
                                 {"dense_1/kernel": k, "dense_1/bias": b})})
    layers = read_keras_h5(path)
    assert [(n, w) for n, _, w in layers] == [("inp", []), ("dense_1", ["dense_1/kernel", "dense_1/bias"])]
    assert np.array_equal(layers[1][1][0], k) and np.array_equal(layers[1][1][1], b)


def one_line(excinfo, *words):
    msg = str(excinfo.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg
    return msg


def test_reader_errors(tmp_path):
    with pytest.raises(FormatError) as e:
        read_keras_h5(tmp_path / "nope.h5")
    one_line(e, "no such file")
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.pth").write_bytes(b"PK\x03\x04" + bytes(100))
    for name in ("a.txt", "b.pth"):
        with pytest.raises(FormatError) as e:
            read_keras_h5(tmp_path / name)
        one_line(e, "not an HDF5 file")
    data = (FIX / "vgg19_top.h5").read_bytes()
    for cut in (2000, len(data) // 2, len(data) - 100):
        (tmp_path / "t.h5").write_bytes(data[:cut])
        with pytest.raises(FormatError) as e:
            read_keras_h5(tmp_path / "t.h5")
        one_line(e, "truncated or corrupt")


def test_reader_rejects_hdf5_that_is_not_keras(tmp_path):
    path = write_h5(tmp_path / "x.h5", {"foo": 1}, {"data": ({}, {"x": np.zeros(3)})})
    with pytest.raises(FormatError) as e:
        read_keras_h5(path)
    one_line(e, "not Keras weights", "layer_names", "data")
    path = write_h5(tmp_path / "m.h5", {"format": "minvert"})
    with pytest.raises(FormatError) as e:
        read_keras_h5(path)
    one_line(e, "already a minvert weights file")
    path = write_h5(tmp_path / "k3.h5", {}, {"layers": ({}, {"conv2d/vars/0": np.zeros(3)})})
    with pytest.raises(FormatError) as e:
        read_keras_h5(path)
    one_line(e, "Keras 3")


def test_reader_rejects_inconsistent_keras_file(tmp_path):
    path = write_h5(tmp_path / "g.h5", {"layer_names": [b"a", b"b"]}, {"a": ({"weight_names": []}, {})})
    with pytest.raises(FormatError) as e:
        read_keras_h5(path)
    one_line(e, "'b'", "no group")
    path = write_h5(tmp_path / "d.h5", {"layer_names": [b"a"]},
                    {"a": ({"weight_names": [b"a/kernel:0", b"a/bias:0"]}, {"a/kernel:0": np.zeros(2)})})
    with pytest.raises(FormatError) as e:
        read_keras_h5(path)
    one_line(e, "a/bias:0", "no such dataset")


# ----------------------------------------------------------------------------- detection
@pytest.mark.parametrize("stem", sorted(FILES))
def test_detects_fixture_architectures(stem):
    assert detect_keras_arch(layers_of(stem)) == config_of(stem)


def test_detects_heads_vgg16_and_notop_variants():
    cfg = config_of("resnet50_top")
    assert detect_keras_arch(replace(fresh("resnet50_top"), "probs", new_name="predictions")) == cfg
    notop = detect_keras_arch(drop(fresh("resnet50_top"), {"probs"}))
    assert notop == dict(cfg, include_top=False, num_classes=None)
    vgg16 = drop(fresh("vgg19_top"), {"block3_conv4", "block4_conv4", "block5_conv4"})
    assert detect_keras_arch(vgg16) == dict(config_of("vgg19_top"), depth=16)
    assert set(keras_to_minvert(vgg16)) == {f"conv{b}_{j}" for b, n in enumerate([2, 2, 3, 3, 3], 1)
                                             for j in range(1, n + 1)} | {"fc6", "fc7", "fc8"}


def fake_resnet(blocks, width=1, classes=3):
    """Zero-filled current-naming Keras ResNet layers with correct shapes (only the weighted ones)."""
    def conv_bn(name, k, c_in, c_out):
        return [(f"{name}_conv", [np.zeros((k, k, c_in, c_out), np.float32), np.zeros(c_out, np.float32)], ["0", "1"]),
                (f"{name}_bn", [np.zeros(c_out, np.float32)] * 4, ["0", "1", "2", "3"])]
    layers, c_in = conv_bn("conv1", 7, 3, width), width
    for s, n in enumerate(blocks):
        p = width * 2 ** s
        for i in range(n):
            name = f"conv{s + 2}_block{i + 1}"
            layers += conv_bn(f"{name}_1", 1, c_in, p) + conv_bn(f"{name}_2", 3, p, p) + conv_bn(f"{name}_3", 1, p, 4 * p)
            if i == 0:
                layers += conv_bn(f"{name}_0", 1, c_in, 4 * p)
            c_in = 4 * p
    return layers + [("predictions", [np.zeros((c_in, classes), np.float32), np.zeros(classes, np.float32)], ["0", "1"])]


@pytest.mark.parametrize("depth,blocks", [(101, [3, 4, 23, 3]), (152, [3, 8, 36, 3])])
def test_detects_resnet101_152(depth, blocks):
    layers = fake_resnet(blocks)
    cfg = detect_keras_arch(layers)
    assert cfg == {"arch": "resnet", "depth": depth, "variant": "v1", "width": 1, "num_classes": 3,
                   "include_top": True, "bn_eps": 1.001e-5, "conv_bias": True}
    weights = keras_to_minvert(layers, cfg)
    assert len(weights) == 2 * (1 + 3 * sum(blocks) + 4) + 1
    assert weights["layer3.22.conv3"]["w"].shape == (16, 4, 1, 1)


def test_unknown_layouts_are_format_errors():
    with pytest.raises(FormatError) as e:
        detect_keras_arch([("dense_1", [np.zeros((2, 3))], ["dense_1/kernel:0"]), ("input_1", [], [])])
    one_line(e, "unrecognised", "dense_1", "VGG16/19", "ResNet50/101/152")
    with pytest.raises(FormatError) as e:
        detect_keras_arch(drop(fresh("vgg19_top"), {"block5_conv4"}))
    one_line(e, "[2, 2, 4, 4, 3]")
    with pytest.raises(FormatError) as e:
        detect_keras_arch(drop(fresh("resnet50_top"), {"conv4_block6_1_conv"}))
    one_line(e, "[3, 4, 5, 3]")
    with pytest.raises(FormatError) as e:
        detect_keras_arch(fresh("resnet50_top") + [("post_bn", [np.zeros(2)] * 4, ["a", "b", "c", "d"])])
    one_line(e, "ResNet v2")
    with pytest.raises(FormatError) as e:
        detect_keras_arch([])
    one_line(e, "0 layers with weights")


def test_arch_override_validates():
    vgg, res = layers_of("vgg19_top"), layers_of("resnet50_legacy_top")
    assert detect_keras_arch(vgg, "vgg19") == config_of("vgg19_top")
    assert detect_keras_arch(res, "ResNet-50") == config_of("resnet50_legacy_top")
    for layers, arch in ((vgg, "vgg16"), (vgg, "resnet50"), (res, "resnet101")):
        with pytest.raises(FormatError) as e:
            detect_keras_arch(layers, arch)
        one_line(e, arch)
    assert detect_keras_arch(vgg, {"pool": "avg"})["pool"] == "avg"
    assert detect_keras_arch(vgg, {"input_size": 250})["input_size"] == 250  # still a 7x7 pool5
    assert detect_keras_arch(res, {"bn_eps": 1e-5})["bn_eps"] == 1e-5
    assert detect_keras_arch(layers_of("vgg19_notop_k1"), {"input_size": 64})["input_size"] == 64
    for layers, arch in ((vgg, {"depth": 16}), (vgg, {"widths": [4, 8, 16, 16, 32]}), (vgg, {"fc": [64, 32]}),
                         (res, {"variant": "v1.5"}), (res, {"width": 64}), (res, {"conv_bias": False}),
                         (layers_of("vgg19_notop_k1"), {"include_top": True})):
        with pytest.raises(FormatError) as e:
            detect_keras_arch(layers, arch)
        one_line(e, next(iter(arch)))
    with pytest.raises(ShapeError) as e:
        detect_keras_arch(vgg, {"input_size": 256})  # pool5 8x8 does not fit fc1
    one_line(e, "fc1", "(1024, 32)", "(784, 32)")


def test_override_include_top_false_drops_the_head():
    cfg = detect_keras_arch(layers_of("resnet50_top"), {"include_top": False})
    weights = keras_to_minvert(layers_of("resnet50_top"), cfg)
    assert "fc" not in weights and "layer4.2.bn3" in weights
    weights = keras_to_minvert(layers_of("vgg19_top"), dict(config_of("vgg19_top"), include_top=False))
    assert set(weights) == {n for n in keras_to_minvert(layers_of("vgg19_notop_k1"))}


# ----------------------------------------------------------------------------- mapping
@pytest.mark.parametrize("stem", sorted(FILES))
def test_mapping_names_shapes_dtypes(stem):
    cfg = config_of(stem)
    weights = keras_to_minvert(layers_of(stem))
    for name, arrays in weights.items():
        for k, v in arrays.items():
            assert v.dtype == np.float32 and v.flags.c_contiguous, (name, k)
    if cfg["arch"] == "vgg":
        assert len(weights) == 16 + 3 * cfg["include_top"]
        assert weights["conv1_1"]["w"].shape == (4, 3, 3, 3)
        assert weights["conv5_4"]["w"].shape == (16, 16, 3, 3) and weights["conv5_4"]["b"].shape == (16,)
        if cfg["include_top"]:
            assert weights["fc6"]["w"].shape == (32, 16 * 7 * 7)
            assert weights["fc8"]["w"].shape == (10, 32) and weights["fc8"]["b"].shape == (10,)
    else:
        assert len(weights) == 107
        assert weights["conv1"]["w"].shape == (4, 3, 7, 7) and weights["conv1"]["b"].shape == (4,)
        assert sorted(weights["bn1"]) == ["beta", "gamma", "mean", "var"]
        assert weights["layer1.0.downsample.conv"]["w"].shape == (16, 4, 1, 1)
        assert weights["layer4.0.conv1"]["w"].shape == (32, 64, 1, 1)
        assert weights["layer4.2.conv2"]["w"].shape == (32, 32, 3, 3)
        assert weights["layer4.2.bn3"]["var"].shape == (128,)
        assert weights["fc"]["w"].shape == (10, 128)


def test_mapping_values_conv_dense_bn():
    keras = {n: a for n, a, _ in layers_of("resnet50_legacy_top")}
    weights = keras_to_minvert(layers_of("resnet50_legacy_top"))
    k = keras["res3a_branch2b"][0]  # (KH, KW, C, F)
    w = weights["layer2.0.conv2"]["w"]
    assert w[5, 6, 2, 1] == k[2, 1, 6, 5] and np.array_equal(w, k.transpose(3, 2, 0, 1))
    assert np.array_equal(weights["layer2.0.downsample.conv"]["w"], keras["res3a_branch1"][0].transpose(3, 2, 0, 1))
    gamma, beta, mean, running_std = keras["bn4c_branch2a"]
    bn = weights["layer3.2.bn1"]
    assert np.array_equal(bn["gamma"], gamma) and np.array_equal(bn["beta"], beta)
    assert np.array_equal(bn["mean"], mean) and np.array_equal(bn["var"], running_std)  # it is the variance
    assert np.array_equal(weights["fc"]["w"], keras["fc1000"][0].T)
    assert np.array_equal(weights["fc"]["b"], keras["fc1000"][1])


def test_fc1_reorder_hand_built():
    side, c, out = 2, 3, 2
    k = np.zeros((side * side * c, out))
    for h in range(side):
        for w in range(side):
            for ch in range(c):
                for o in range(out):
                    k[(h * side + w) * c + ch, o] = 1000 * o + 100 * ch + 10 * h + w  # Keras row = HWC index
    w_chw = fc1_to_chw(k, side, c)
    assert w_chw.shape == (out, c * side * side)
    for h in range(side):
        for w in range(side):
            for ch in range(c):
                for o in range(out):
                    assert w_chw[o, ch * side * side + h * side + w] == 1000 * o + 100 * ch + 10 * h + w
    act = np.random.default_rng(0).standard_normal((c, side, side))  # one pool5 output (C, H, W)
    keras_out = act.transpose(1, 2, 0).reshape(-1) @ k  # Keras: channels-last flatten, dot(x, kernel)
    assert np.allclose(w_chw @ act.reshape(-1), keras_out, rtol=1e-14)


def test_fc1_reordered_in_the_mapping():
    keras = {n: a for n, a, _ in layers_of("vgg19_top")}
    fc6 = keras_to_minvert(layers_of("vgg19_top"))["fc6"]["w"]
    act = np.random.default_rng(1).standard_normal((16, 7, 7))
    assert np.allclose(fc6 @ act.reshape(-1), act.transpose(1, 2, 0).reshape(-1) @ keras["fc1"][0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(fc6, keras["fc1"][0].T)


def test_mapping_is_by_name_not_order():
    for stem in ("vgg19_top", "resnet50_top"):
        a, b = keras_to_minvert(layers_of(stem)), keras_to_minvert(fresh(stem)[::-1])
        assert a.keys() == b.keys()
        assert all(np.array_equal(a[n][k], b[n][k]) for n in a for k in a[n])


def test_mapping_shape_errors_name_layer_and_shapes():
    layers = fresh("resnet50_top")
    arrays = dict((n, a) for n, a, _ in layers)["conv3_block2_2_conv"]
    bad = replace(layers, "conv3_block2_2_conv", [arrays[0][:, :, :4], arrays[1]])
    with pytest.raises(ShapeError) as e:
        keras_to_minvert(bad, config_of("resnet50_top"))
    one_line(e, "conv3_block2_2_conv", "layer2.1.conv2", "(3, 3, 8, 8)", "(3, 3, 4, 8)")
    layers = fresh("vgg19_top")
    fc2 = dict((n, a) for n, a, _ in layers)["fc2"]
    with pytest.raises(ShapeError) as e:
        keras_to_minvert(replace(layers, "fc2", [fc2[0][:16], fc2[1]]))
    one_line(e, "fc2", "fc7", "(32, 32)", "(16, 32)")


def test_fc1_must_take_a_square_pool5():
    layers = fresh("vgg19_top")
    fc1 = dict((n, a) for n, a, _ in layers)["fc1"]
    with pytest.raises(ShapeError) as e:
        detect_keras_arch(replace(layers, "fc1", [fc1[0][:-16], fc1[1]]))
    one_line(e, "Keras layer fc1: 768 inputs", "side*side*16", "square pool5")


def test_mapping_missing_unexpected_and_misordered_weights():
    cfg = config_of("vgg19_top")
    with pytest.raises(FormatError) as e:
        keras_to_minvert(drop(fresh("vgg19_top"), {"fc2"}), cfg)
    one_line(e, "missing fc2")
    extra = fresh("resnet50_top") + [("aux_conv", [np.zeros((1, 1, 2, 2), np.float32)], ["aux_conv/kernel:0"])]
    with pytest.raises(FormatError) as e:
        keras_to_minvert(extra)
    one_line(e, "unexpected aux_conv")
    layers = fresh("resnet50_top")
    names = dict((n, w) for n, _, w in layers)["conv1_bn"]
    swapped = replace(layers, "conv1_bn", weight_names=[names[1], names[0]] + names[2:])  # beta listed first
    with pytest.raises(FormatError) as e:
        keras_to_minvert(swapped)
    one_line(e, "conv1_bn", "conv1_bn/beta:0", "gamma, beta, mean, var")


def test_load_keras_h5():
    config, weights = load_keras_h5(FIX / "vgg19_notop_k1.h5")
    assert config == config_of("vgg19_notop_k1")
    assert np.array_equal(weights["conv2_1"]["b"], dict((n, a) for n, a, _ in layers_of("vgg19_notop_k1"))["block2_conv1"][1])


def test_mapping_rejects_configs_keras_has_no_weights_for():
    for config in ({"arch": "decoder"}, dict(config_of("vgg19_top"), depth=11), dict(config_of("resnet50_top"), depth=18)):
        with pytest.raises(FormatError) as e:
            keras_to_minvert(layers_of("vgg19_top"), config)
        one_line(e, "VGG16/19 and ResNet50/101/152")
