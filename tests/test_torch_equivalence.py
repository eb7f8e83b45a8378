"""torchvision-layout weights, read without torch and loaded into minvert's VGG/ResNet,
reproduce torch's float64 logits, pooled features and input gradients (reference values
computed by torch in tests/fixtures/make_torch_fixtures.py)."""
import json
from pathlib import Path

import numpy as np
import pytest

from minvert.nets import build
from minvert.weights.project import assign_weights
from minvert.weights.torch_pth import read_pth
from minvert.weights.torchvision_map import detect_torchvision_arch, torchvision_to_minvert

FIX = Path(__file__).resolve().parent / "fixtures" / "torch"


def rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("name", ["vgg19_w4", "resnet18_w4_legacy", "resnet50_w4"])
def test_converted_net_reproduces_torch(name):
    ref = dict(np.load(FIX / f"{name.replace('_legacy', '')}.npz"))
    config = json.loads(str(ref["config"]))
    state = read_pth(FIX / f"{name}.pth")
    assert detect_torchvision_arch(state) == config
    net = build(config, dtype=np.float64)
    assign_weights(net, torchvision_to_minvert(state, config), what=name)
    net.freeze()  # inference mode, no weight gradients
    x = (ref["x_u8"].astype(np.float64) - 127.5) / 64

    logits = net.forward(x)
    assert logits.dtype == np.float64 and rel(logits, ref["logits"]) < 1e-10
    dx = net.backward(ref["dout"])
    assert dx.shape == x.shape
    assert rel(dx[:, :, ::7, ::7], ref["dx_sub"]) < 1e-10
    assert rel(dx[:, :, 96:128, 96:128], ref["dx_crop"]) < 1e-10
    assert rel(dx.sum((2, 3)), ref["dx_sum"]) < 1e-10
    assert rel(np.sum(dx * x), ref["dx_dot_x"]) < 1e-10
    assert rel(np.sum(dx ** 2), ref["dx_sq"]) < 1e-10
    if "feature" in ref:
        assert rel(net.features(x), ref["feature"]) < 1e-10
