"""Whole networks: one-direction gradient checks in float64, taps, structure, weight files.

Inputs are random normal; with ReLUs and max-pools a random input lands on a kink with
probability ~0, and the directional check uses a step (1e-6) far below the typical
distance to one, so the central difference is exact to ~1e-9.
"""
import numpy as np
import pytest

from minvert.errors import FormatError, MinvertError, ShapeError
from minvert.gradcheck import directional_check
from minvert.nets.preprocessing import Preprocessing
from minvert.nets import build
from minvert.nets.decoder import PAPER_CONFIG, build_decoder
from minvert.nets.resnet import build_resnet
from minvert.nets.vgg import build_vgg
from minvert.weights import load_model
from minvert.weights.project import assign_weights, network_weights, save

SMALL_VGG = dict(depth=19, widths=[2, 3, 4, 4, 4], fc=[6, 5], num_classes=4, input_size=32)


def _randomise_bn(net, rng):
    for _, layer in net.weighted_layers():
        if "mean" in layer.state:
            layer.state["mean"] = rng.standard_normal(layer.state["mean"].shape)
            layer.state["var"] = rng.uniform(0.5, 2.0, layer.state["var"].shape)
            layer.params["beta"] = rng.standard_normal(layer.params["beta"].shape)


def _check_input_gradient(net, x, rng, **fwd):
    dout_shape = net.forward(x).shape
    dout = rng.standard_normal(dout_shape)
    net.forward(x)
    dx = net.backward(dout)

    def loss():
        return float(np.sum(net.forward(x) * dout))
    # h = 1e-4: the nets are piecewise linear, so a larger step only removes the rounding
    # noise that 50 layers add (which grows as h shrinks) and stays far from the kinks
    _, _, err = directional_check(loss, [x], [dx], h=1e-4, rng=rng)
    return err


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_vgg19_input_gradient_one_direction(pool):
    rng = np.random.default_rng(0)
    net = build_vgg(dict(SMALL_VGG, pool=pool), rng=rng, dtype=np.float64).freeze()
    x = rng.standard_normal((2, 3, 32, 32))
    assert _check_input_gradient(net, x, rng) < 1e-7


@pytest.mark.parametrize("variant,depth", [("v1", 50), ("v1.5", 50), ("v1.5", 18)])
def test_resnet_input_gradient_one_direction(variant, depth):
    rng = np.random.default_rng(1)
    net = build_resnet(dict(depth=depth, variant=variant, width=2, num_classes=3), rng=rng, dtype=np.float64)
    _randomise_bn(net, rng)
    net.freeze()
    x = rng.standard_normal((2, 3, 32, 32))
    assert _check_input_gradient(net, x, rng) < 1e-7


def test_resnet_training_mode_weight_gradients_one_direction():
    """Batch-norm in training mode and every weight: one random direction over all of them."""
    rng = np.random.default_rng(2)
    net = build_resnet(dict(depth=18, blocks=[1, 1, 1, 1], width=2, num_classes=3), rng=rng,
                       dtype=np.float64).train()
    x = rng.standard_normal((3, 3, 32, 32))
    dout = rng.standard_normal((3, 3))
    net.forward(x)
    net.backward(dout)
    names, params, grads = zip(*net.parameters())

    def loss():
        return float(np.sum(net.forward(x) * dout))
    _, _, err = directional_check(loss, list(params), list(grads), rng=rng)
    assert err < 1e-7


def test_decoder_gradient_one_direction_with_bce():
    from minvert.layers.loss import binary_cross_entropy
    rng = np.random.default_rng(3)
    cfg = dict(feature_size=32, start=[2, 2, 8], widths=[6, 4], final_kernel=2)
    net = build_decoder(cfg, rng=rng, dtype=np.float64).train()
    z = np.abs(rng.standard_normal((2, 32)))
    target = rng.uniform(0, 1, (2, 3, 8, 8))
    loss, dout = binary_cross_entropy(net.forward(z), target)
    net.backward(dout)
    names, params, grads = zip(*net.parameters())

    def f():
        return float(binary_cross_entropy(net.forward(z), target)[0])
    _, _, err = directional_check(f, list(params), list(grads), rng=rng)
    assert err < 1e-7


def test_decoder_matches_the_papers_parameter_count_and_shapes():
    net = build_decoder()
    assert net.num_params() == 27_505_347
    assert net.output_size == 256
    assert net["conv_out"].params["w"].shape == (3, 64, 2, 2)
    assert net["conv1"].params["w"].shape == (2048, 128, 3, 3)


def test_decoder_reshape_is_keras_channels_last():
    """Feature index i must land at h = i // (w*c), w = (i // c) % w, channel c = i % c."""
    net = build_decoder(dict(feature_size=2 * 3 * 4, start=[2, 3, 4], widths=[2]))
    z = np.arange(24, dtype=np.float32)[None]
    m = net["to_map"].forward(z)
    for i in range(24):
        assert m[0, i % 4, i // 12, (i // 4) % 3] == i
    np.testing.assert_array_equal(net["to_map"].backward(m), z)


def test_taps_collect_inject_and_stop_early():
    rng = np.random.default_rng(4)
    net = build_vgg(dict(SMALL_VGG), rng=rng, dtype=np.float64).freeze()
    x = rng.standard_normal((1, 3, 32, 32))
    out, acts = net.forward_taps(x, ["relu2_1", "relu4_2"])
    np.testing.assert_array_equal(out, net.forward(x))
    assert acts["relu2_1"].shape == (1, 3, 16, 16)
    # stopping after the deepest tap: fc layers never run
    none, acts2 = net.forward_taps(x, ["relu2_1"], output=False)
    assert none is None and net._ran == net.names.index("relu2_1") + 1
    np.testing.assert_array_equal(acts2["relu2_1"], acts["relu2_1"])
    # gradient of L = sum(acts * g) injected at the tap matches a numerical derivative
    g = rng.standard_normal(acts2["relu2_1"].shape)
    dx = net.backward(tap_grads={"relu2_1": g})

    def loss():
        return float(np.sum(net.forward_taps(x, ["relu2_1"], output=False)[1]["relu2_1"] * g))
    assert directional_check(loss, [x], [dx], rng=rng)[2] < 1e-7
    # output gradient and tap gradient together add up
    dout = rng.standard_normal(out.shape)
    net.forward_taps(x, ["relu2_1"])
    both = net.backward(dout, {"relu2_1": g})
    net.forward(x)
    only_out = net.backward(dout)
    np.testing.assert_allclose(both, only_out + dx, rtol=1e-10, atol=1e-12)


def test_unknown_tap_and_unreached_tap_are_clear_errors():
    net = build_vgg(dict(SMALL_VGG))
    x = np.zeros((1, 3, 32, 32), np.float32)
    with pytest.raises(MinvertError, match="no layer named 'relu9_9'"):
        net.forward_taps(x, ["relu9_9"])
    net.forward_taps(x, ["relu1_1"], output=False)
    with pytest.raises(MinvertError, match="did not reach"):
        net.backward(tap_grads={"relu5_1": np.zeros((1, 4, 2, 2))})


def test_vgg_rejects_wrong_input_size_and_shape():
    net = build_vgg(dict(SMALL_VGG))
    with pytest.raises(MinvertError, match="32x32"):
        net.forward(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(ShapeError, match=r"\(N, 3, H, W\)"):
        net.forward(np.zeros((1, 4, 32, 32), np.float32))
    conv_only = build_vgg(dict(SMALL_VGG, include_top=False))
    assert conv_only.forward(np.zeros((1, 3, 64, 96), np.float32)).shape == (1, 4, 2, 3)


def test_layer_names_follow_caffe_and_torchvision():
    vgg = build_vgg(dict(SMALL_VGG))
    assert [n for n, _ in vgg.weighted_layers()][:3] == ["conv1_1", "conv1_2", "conv2_1"]
    assert [n for n, _ in vgg.weighted_layers()][-3:] == ["fc6", "fc7", "fc8"]
    assert len(vgg.weighted_layers()) == 19
    r = build_resnet(dict(depth=50, width=2, num_classes=3))
    names = [n for n, _ in r.weighted_layers()]
    assert names[:4] == ["conv1", "bn1", "layer1.0.conv1", "layer1.0.bn1"]
    assert "layer1.0.downsample.conv" in names and "layer4.2.bn3" in names and names[-1] == "fc"
    assert len(names) == 107  # 53 conv + 53 batch-norm + fc


def test_v1_and_v15_put_the_stride_in_different_places():
    v1 = build_resnet(dict(depth=50, variant="v1", width=2))
    v15 = build_resnet(dict(depth=50, variant="v1.5", width=2))
    b1, b15 = v1["layer2"]["0"].main, v15["layer2"]["0"].main
    assert (b1["conv1"].stride, b1["conv2"].stride) in ((2, 1), ((2, 2), (1, 1)))
    assert (b15["conv1"].stride, b15["conv2"].stride) in ((1, 2), ((1, 1), (2, 2)))
    assert "b" in b1["conv1"].params and "b" not in b15["conv1"].params
    assert v1["bn1"].eps == 1.001e-5 and v15["bn1"].eps == 1e-5


def test_resnet_features_are_the_pooled_vector():
    rng = np.random.default_rng(5)
    net = build_resnet(dict(depth=18, width=2, num_classes=3), rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 3, 64, 64))
    feat = net.features(x)
    _, acts = net.forward_taps(x, ["layer4"])
    np.testing.assert_allclose(feat, acts["layer4"].mean(axis=(2, 3)), rtol=1e-12)
    assert feat.shape == (2, net.feature_size) == (2, 16)


def test_project_file_round_trip_is_bit_identical(tmp_path):
    rng = np.random.default_rng(6)
    pre = Preprocessing(mode="torch", input_size=32, resize=None)
    net = build_resnet(dict(depth=18, width=2, num_classes=3), rng=rng, preprocessing=pre,
                       labels=["a", "b", "c"])
    _randomise_bn(net, rng)
    net.astype(np.float32)
    path = save(net, tmp_path / "r.h5", source={"name": "x.pth", "sha256": "0" * 64})
    back = load_model(str(path), device="cpu")  # bit-identical: same device, same arithmetic
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    assert back.labels == ["a", "b", "c"] and back.preprocessing == pre
    assert back.source["sha256"] == "0" * 64
    with pytest.raises(MinvertError, match="--force"):
        save(net, path)


def test_weight_file_of_another_arch_is_refused(tmp_path):
    net = build_vgg(dict(SMALL_VGG))
    other = build_resnet(dict(depth=18, width=2, num_classes=3))
    with pytest.raises(FormatError, match="missing layer"):
        assign_weights(other, network_weights(net))
    weights = network_weights(net)
    weights["fc8"]["w"] = np.zeros((9, 9), np.float32)
    with pytest.raises(ShapeError, match=r"fc8 array w has shape \(9, 9\), expected \(4, 5\)"):
        assign_weights(build_vgg(dict(SMALL_VGG)), weights)


def test_load_model_errors_are_one_line(tmp_path):
    with pytest.raises(MinvertError, match="unknown model 'vgg91'.*vgg19"):
        load_model("vgg91")
    bad = tmp_path / "junk.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(FormatError, match="not an HDF5 file"):
        load_model(str(bad))


def test_build_dispatches_on_the_config():
    assert build(dict(arch="vgg", **SMALL_VGG)).config["arch"] == "vgg"
    with pytest.raises(MinvertError, match="unknown architecture"):
        build({"arch": "alexnet"})
