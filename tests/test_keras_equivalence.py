"""Keras .h5 -> minvert network reproduces PyTorch's float64 reference outputs.

The references (tests/fixtures/keras/*_ref.npz) come from plain torch.nn networks that
follow Keras semantics literally (Flatten in (h, w, c) order, ResNet v1 with the stride on
the first 1x1, ZeroPadding + valid conv / max-pool), loaded with the Keras-layout arrays; see
tests/fixtures/make_keras_fixtures.py. Here the same .h5 goes through read -> detect ->
map -> build -> assign, and the minvert net must give the same logits (1e-10 relative), the
same ResNet pooled feature and the same input gradient (1e-8 relative).
"""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import minvert
from minvert.backend import to_numpy
from minvert.nets import build
from minvert.weights.keras_h5 import load_keras_h5, read_keras_h5
from minvert.weights.keras_map import keras_to_minvert
from minvert.weights.project import assign_weights

FIX = Path(__file__).parent / "fixtures" / "keras"
N, SIZE = 2, 224
SUB = np.r_[0:SIZE:11, SIZE - 1]  # input-gradient rows / columns stored in full
CASES = [("vgg19_top.h5", "vgg19_top"), ("vgg19_notop_k1.h5", "vgg19_notop"),
         ("resnet50_top.h5", "resnet50"), ("resnet50_legacy_top.h5", "resnet50_legacy")]


# Same generators as make_keras_fixtures.py (exact integer hashing); x_sha256 guards the copy.
def splitmix64(n, seed):
    z = (np.arange(n, dtype=np.uint64) + np.uint64(seed)) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def fixed_input():
    ints = (splitmix64(N * 3 * SIZE * SIZE, 1) >> np.uint64(56)).astype(np.int64) - 128
    return ints.astype(np.float64).reshape(N, 3, SIZE, SIZE)


def probe(shape):
    bits = (splitmix64(int(np.prod(shape)), 2) >> np.uint64(63)).astype(np.float64)
    return (2 * bits - 1).reshape(shape)


def rel(a, b):
    return float(np.abs(np.asarray(a) - b).max() / np.abs(b).max())


def check_against(net, ref, x):
    """x: host input; it runs on the net's device (the GPU when that is the default)."""
    out = to_numpy(net.forward(net.xp.asarray(x)))
    assert out.shape == ref["out"].shape and out.dtype == np.float64
    assert rel(out, ref["out"]) < 1e-10
    dx = to_numpy(net.backward(net.xp.asarray(ref["dout"])))
    assert dx.shape == x.shape
    assert rel(dx[:, :, SUB][:, :, :, SUB], ref["dx_sub"]) < 1e-8
    assert abs(float((dx * probe(dx.shape)).sum()) - ref["dx_probe"]) < 1e-8 * ref["dx_norm"]
    assert abs(np.linalg.norm(dx) - ref["dx_norm"]) < 1e-8 * ref["dx_norm"]
    return out


@pytest.fixture(scope="module")
def x():
    x = fixed_input()
    assert hashlib.sha256(x.tobytes()).hexdigest() == str(np.load(FIX / "vgg19_top_ref.npz")["x_sha256"])
    return x


@pytest.mark.parametrize("h5,ref_name", CASES)
def test_converted_network_matches_pytorch(h5, ref_name, x):
    ref = np.load(FIX / f"{ref_name}_ref.npz")
    config, weights = load_keras_h5(FIX / h5)
    assert config == json.loads(str(ref["config"]))
    net = assign_weights(build(config, dtype=np.float64), weights).freeze()
    out = check_against(net, ref, x)
    if str(ref["out_kind"]) == "logits":  # Keras' own head output is softmax(logits)
        e = np.exp(out - out.max(axis=1, keepdims=True))
        assert rel(e / e.sum(axis=1, keepdims=True), ref["probs"]) < 1e-10
    if "feature" in ref:
        assert rel(net.features(x), ref["feature"]) < 1e-10


def test_every_vgg_file_variant_gives_the_same_weights():
    base = keras_to_minvert(read_keras_h5(FIX / "vgg19_top.h5"))
    for name in ("vgg19_top_model.h5", "vgg19_top_chunked.h5"):
        other = keras_to_minvert(read_keras_h5(FIX / name))
        assert other.keys() == base.keys()
        assert all(np.array_equal(other[n][k], base[n][k]) for n in base for k in base[n])


def test_convert_then_load_model(tmp_path, x):
    ref = np.load(FIX / "resnet50_legacy_ref.npz")
    minvert.convert(FIX / "resnet50_legacy_top.h5", tmp_path / "r.h5")
    net = minvert.load_model(tmp_path / "r.h5", dtype="float64")
    assert net.config["bn_eps"] == 1e-3
    check_against(net.freeze(), ref, x)
