"""The passes the benchmarks time, as minvert runs them: the networks (random weights from a
fixed seed), their inputs, their multiply-adds, and one callable per pass."""
import numpy as np

from ..backend import array_module
from ..layers.conv import Conv2D
from ..layers.dense import Dense
from ..layers.loss import binary_cross_entropy
from ..layers.norm import BatchNorm2D
from ..layers.shape import normalize_pad
from ..layers.upconv import UpsampleConv2D
from ..nets.decoder import build_decoder
from ..nets.preprocessing import Preprocessing
from ..nets.resnet import build_resnet
from ..nets.vgg import build_vgg
from ..optim import Adadelta
from ..transform.losses import Multipliers
from ..transform.objective import Objective, Settings

# small nets of each kind: the memory measurement's warm-up, and the tests
TINY = {"vgg": {"size": 32, "config": {"widths": [4, 4, 8, 8, 8], "fc": [16, 16],
                                       "num_classes": 10, "input_size": 32}},
        "resnet": {"size": 32, "config": {"width": 4, "blocks": [1, 1, 1, 1], "num_classes": 10}},
        "decoder": {"config": {"start": [2, 2, 4], "feature_size": 16, "widths": [8, 4]}}}


PASSES = {"forward": "forward", "dx": "forward+dx (frozen)", "objective": "paper-000 objective",
          "train": "train step"}
# the objective pass: paper 000's "bear-full" multipliers (content, style, TV, colour), all
# five terms active, on Caffe-style input (0..255 minus the mean: colour threshold 76.5)
OBJECTIVE = {"target": 294, "multipliers": (-6e-11, 1e-13, 1e-7, 1e-6), "preprocessing": "caffe"}


def build_net(spec, device="cpu"):
    """The minvert network of a spec, random weights from a fixed seed."""
    rng = np.random.default_rng(0)
    build = {"vgg": build_vgg, "resnet": build_resnet, "decoder": build_decoder}[spec["net"]]
    net = build(spec["config"], rng=rng)
    for _, layer in net.named_layers():
        if isinstance(layer, BatchNorm2D):  # not the identity: the comparison should mean something
            p, s, C = layer.params, layer.state, layer.params["gamma"].shape[0]
            for d, k, lo, hi in ((p, "gamma", 0.5, 1.0), (p, "beta", -0.1, 0.1),
                                 (s, "mean", -0.1, 0.1), (s, "var", 0.5, 1.5)):
                d[k] = rng.uniform(lo, hi, C).astype(np.float32)
    return net.to(array_module(device)) if device != "cpu" else net


def make_inputs(spec, net):
    """(x, target) float32: images and an output gradient for the classifiers; for the
    decoder feature vectors (>= 0, as pooled ReLU outputs) and target images in [0, 1]."""
    rng, N = np.random.default_rng(1), spec["batch"]
    if spec["net"] == "decoder":
        c, side = net.config, net.output_size
        x = rng.random((N, c["feature_size"]))
        target = rng.random((N, c["out_channels"], side, side))
    elif spec.get("pass") == "objective":  # x: the original image, target: the current one
        x = 60 * rng.standard_normal((N, 3, spec["size"], spec["size"]))
        target = x + 20 * rng.standard_normal(x.shape)
    else:
        x = rng.standard_normal((N, 3, spec["size"], spec["size"]))
        target = rng.standard_normal((N, net.config["num_classes"]))
    return [net.xp.asarray(a.astype(np.float32)) for a in (x, target)]


def layer_macs(net, x1):
    """[(layer, multiply-adds per sample)] of every conv and dense layer, from the shapes
    one forward pass of a single sample x1 leaves in their caches."""
    net.eval()
    net.forward(x1)
    macs = []
    for _, layer in net.named_layers():
        if isinstance(layer, Conv2D):
            (_, C, H, W), (F, _, KH, KW) = layer.cache["x"].shape, layer.params["w"].shape
            (SH, SW), (top, bottom, left, right) = layer.stride, normalize_pad(layer.pad)
            if isinstance(layer, UpsampleConv2D):  # counted as the plain upsample + conv
                H, W = H * layer.factor[0], W * layer.factor[1]
            H_out, W_out = (H + top + bottom - KH) // SH + 1, (W + left + right - KW) // SW + 1
            macs.append((layer, F * C * KH * KW * H_out * W_out))
        elif isinstance(layer, Dense):
            macs.append((layer, int(layer.params["w"].size)))
    net.release()
    return macs


def pass_gflop(kind, macs, batch):
    """GFLOP of the pass: 2 x its multiply-adds (see bench_nets)."""
    total = sum(m for _, m in macs)
    if kind in ("dx", "objective", "train"):
        total += sum(m for layer, m in macs if layer.need_dx)
    if kind == "train":
        total += sum(m for layer, m in macs if layer.trainable)
    return 2.0 * total * batch / 1e9


def minvert_pass(spec, net, x, target):
    """The zero-argument callable that runs one pass of ``spec`` and returns its result."""
    if spec["pass"] == "forward":
        net.eval()
        return lambda: net.predict(x)
    if spec["pass"] == "dx":
        net.freeze()

        def forward_backward():
            net.forward(x)
            return net.backward(target)
        return forward_backward
    if spec["pass"] == "objective":
        net.freeze()
        net.preprocessing = Preprocessing(OBJECTIVE["preprocessing"])
        target_class = OBJECTIVE["target"] % net.config["num_classes"]  # tiny test nets too
        settings = Settings(target_class, Multipliers(*OBJECTIVE["multipliers"]))
        objective = Objective(net, x, settings)
        return lambda: objective(target)[3]  # dx
    net.train()
    net["conv1"].need_dx = False  # as in training: nobody needs the gradient of the features
    opt = Adadelta(lr=1.0, rho=0.95, eps=1e-8)

    def train_step():
        net.clear_grads()  # like torch's opt.zero_grad(set_to_none=True) below
        p = net.forward(x)
        _, dp = binary_cross_entropy(p, target)
        net.backward(dp)
        opt.step(net.parameters())
        return p
    return train_step
