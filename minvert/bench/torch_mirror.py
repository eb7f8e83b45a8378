"""The same networks and passes in PyTorch, for ``--compare torch``: torch is imported only when
asked for, and holds copies of minvert's weights."""
import functools
import types
from collections import OrderedDict

from ..backend import to_numpy
from ..errors import MinvertError
from ..layers.activation import LeakyReLU, ReLU, Sigmoid
from ..layers.conv import Conv2D
from ..layers.dense import Dense
from ..layers.norm import BatchNorm2D
from ..layers.pool import AvgPool2D, GlobalAvgPool, MaxPool2D
from ..layers.shape import Flatten, normalize_pad
from ..layers.upconv import UpsampleConv2D
from ..layers.upsample import UpsampleNearest
from ..nets.decoder import FeatureToMap
from ..nets.preprocessing import Preprocessing
from ..nets.resnet import ResidualBlock
from ..nets.sequential import Sequential
from ..transform.losses import Multipliers, color_threshold
from ..transform.objective import Settings, default_layers
from .passes import OBJECTIVE


def compare_module(compare):
    """torch for compare="torch", None for None; a one-line error when torch is missing."""
    if compare is None:
        return None
    if compare != "torch":
        raise MinvertError(f"compare={compare!r}: the only comparison is 'torch'")
    try:
        import torch
    except ImportError:
        raise MinvertError("--compare torch needs PyTorch, which is not installed: "
                           "pip install torch==2.13.0") from None
    return torch


def _torch_device(torch, device):
    """torch's name for minvert's device: "cpu", or "cuda:N" for the CUDA device CuPy uses;
    a one-line error when this PyTorch cannot reach CUDA."""
    if device != "gpu":
        return "cpu"
    if not torch.cuda.is_available():
        raise MinvertError("--compare torch on the GPU needs a PyTorch build with CUDA (this one "
                           f"is {torch.__version__}, without); install one, or bench with --device cpu")
    import cupy
    return f"cuda:{cupy.cuda.Device().id}"


def torch_pass(spec, model, x, target, torch, device="cpu"):
    """The same pass in PyTorch; returns what :func:`minvert_pass` returns."""
    dev = _torch_device(torch, device)
    x, target = (torch.from_numpy(to_numpy(a)).to(dev) for a in (x, target))
    if spec["pass"] == "forward":
        model.eval()

        def fn():
            with torch.no_grad():
                return model(x)
    elif spec["pass"] == "dx":
        model.eval().requires_grad_(False)

        def fn():
            xi = x.detach().requires_grad_(True)
            model(xi).backward(target)
            return xi.grad
    elif spec["pass"] == "objective":
        fn = _torch_objective(model.eval().requires_grad_(False), x, target, torch)
    else:
        model.train()
        opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-8)
        loss_fn = torch.nn.BCELoss()

        def fn():
            opt.zero_grad(set_to_none=True)
            p = model(x)
            loss_fn(p, target).backward()
            opt.step()
            return p.detach()
    if dev == "cpu":
        return fn

    def synced():
        result = fn()
        torch.cuda.synchronize(dev)
        return result
    return synced


def _torch_objective(model, x0, x, torch):
    """Paper 000's objective (minvert/transform: losses.py, objective.py; the default kinds:
    Gram content, per-pixel colour) written in PyTorch, autograd for the gradient: model a VGG nn.Sequential whose children carry
    the minvert layer names, x0 the original image, x the current one. Returns the
    callable giving d total / d x."""
    settings = Settings(OBJECTIVE["target"], Multipliers(*OBJECTIVE["multipliers"]))
    m, layers = settings.multipliers, list(model.named_children())
    content, style = default_layers(types.SimpleNamespace(names=[n for n, _ in layers]), settings)
    threshold = color_threshold(*Preprocessing(OBJECTIVE["preprocessing"]).pixel_bounds())
    threshold = torch.tensor(threshold, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)

    def taps(xi):
        acts = {}
        for name, layer in layers:
            xi = layer(xi)
            if name == content or name in style:
                acts[name] = xi
        return xi, acts

    def gram(F):
        Fm = F.reshape(F.shape[1], -1)  # (C, H*W)
        return Fm @ Fm.T, Fm.shape

    assert (settings.content_kind, settings.color_kind) == ("gram", "pixel")  # written out below
    with torch.no_grad():
        A = {n: gram(f)[0] for n, f in taps(x0)[1].items()}  # content and style targets

    def fn():
        xi = x.detach().requires_grad_(True)
        logits, acts = taps(xi)
        target = torch.full((x.shape[0],), OBJECTIVE["target"] % logits.shape[1], device=x.device)
        total = torch.nn.functional.cross_entropy(logits, target)
        total = total + m.content * 0.5 * ((gram(acts[content])[0] - A[content]) ** 2).sum()
        for n in style:
            G, (C, M) = gram(acts[n])
            total = total + m.style / len(style) / (4.0 * C ** 2 * M ** 2) * ((G - A[n]) ** 2).sum()
        dh, dv = xi[..., :, 1:] - xi[..., :, :-1], xi[..., 1:, :] - xi[..., :-1, :]
        total = total + m.tv * (dh.abs().sum() + dv.abs().sum())
        d = xi - x0  # a pixel counts when its RGB distance exceeds 30 % of the cube's diagonal
        far = ((d / threshold) ** 2).mean(dim=1, keepdim=True) > 1
        total = total + m.color * ((d * far) ** 2).sum()
        total.backward()
        return xi.grad
    return fn


def to_torch(layer, torch, device="cpu"):
    """An equivalent torch.nn module holding COPIES of the layer's weights (both sides may
    train their own). Covers every layer the VGG, ResNet and decoder builders use."""
    nn, (Residual, ChannelsLastMap) = torch.nn, _torch_classes(torch)

    def convert(layer):
        if isinstance(layer, Sequential):
            return nn.Sequential(OrderedDict((name.replace(".", "_"), convert(child))
                                             for name, child in layer.children()))
        if isinstance(layer, ResidualBlock):
            return Residual(convert(layer.main), layer.shortcut and convert(layer.shortcut))
        if isinstance(layer, (Conv2D, MaxPool2D, AvgPool2D)) and isinstance(layer.pad, str):
            raise MinvertError(f"pad={layer.pad!r} has no fixed PyTorch equivalent; give numbers")
        if isinstance(layer, UpsampleConv2D):
            return nn.Sequential(nn.Upsample(scale_factor=layer.factor, mode="nearest"),
                                 conv(layer))
        if isinstance(layer, Conv2D):
            return conv(layer)
        if isinstance(layer, Dense):
            (n_out, n_in), bias = layer.params["w"].shape, "b" in layer.params
            return copy(nn.Linear(n_in, n_out, bias=bias), weight=layer.params["w"],
                        bias=layer.params.get("b"))
        if isinstance(layer, BatchNorm2D):
            p, s = layer.params, layer.state
            m = nn.BatchNorm2d(p["gamma"].shape[0], eps=layer.eps, momentum=layer.momentum)
            return copy(m, weight=p["gamma"], bias=p["beta"], running_mean=s["mean"],
                        running_var=s["var"])
        if isinstance(layer, (MaxPool2D, AvgPool2D)):
            top, bottom, left, right = normalize_pad(layer.pad)
            if (top, left) != (bottom, right):
                raise MinvertError(f"asymmetric pooling pad {layer.pad} has no PyTorch equivalent")
            if isinstance(layer, MaxPool2D):
                return nn.MaxPool2d(layer.kernel, layer.stride, (top, left))
            return nn.AvgPool2d(layer.kernel, layer.stride, (top, left),
                                count_include_pad=layer.count_include_pad)
        simple = {ReLU: lambda: nn.ReLU(inplace=True), Sigmoid: nn.Sigmoid, Flatten: nn.Flatten,
                  LeakyReLU: lambda: nn.LeakyReLU(layer.alpha, inplace=True),
                  GlobalAvgPool: lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
                  UpsampleNearest: lambda: nn.Upsample(scale_factor=layer.factor, mode="nearest"),
                  FeatureToMap: lambda: ChannelsLastMap(layer.h, layer.w, layer.c)}
        if type(layer) not in simple:
            raise MinvertError(f"no PyTorch equivalent for {type(layer).__name__} in the benchmark")
        return simple[type(layer)]()

    def conv(layer):
        (F, C, KH, KW), bias = layer.params["w"].shape, "b" in layer.params
        top, bottom, left, right = normalize_pad(layer.pad)
        symmetric = top == bottom and left == right
        m = nn.Conv2d(C, F, (KH, KW), layer.stride, (top, left) if symmetric else 0, bias=bias)
        copy(m, weight=layer.params["w"], bias=layer.params.get("b"))
        return m if symmetric else nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), m)

    def copy(module, **arrays):
        with torch.no_grad():
            for name, a in arrays.items():
                if a is not None:
                    getattr(module, name).copy_(torch.from_numpy(to_numpy(a)))
        return module

    return convert(layer).to(_torch_device(torch, device))


@functools.lru_cache(maxsize=None)
def _torch_classes(torch):
    """The two modules torch.nn lacks, defined once torch is imported."""
    nn = torch.nn

    class Residual(nn.Module):
        """relu(main(x) + shortcut(x)), as torchvision's blocks (in place)."""

        def __init__(self, main, shortcut=None):
            super().__init__()
            self.main, self.shortcut = main, shortcut

        def forward(self, x):
            out = self.main(x)
            out += x if self.shortcut is None else self.shortcut(x)
            return torch.relu_(out)

    class ChannelsLastMap(nn.Module):
        """(N, h*w*c) -> (N, c, h, w) through a channels-last reshape (minvert's FeatureToMap)."""

        def __init__(self, h, w, c):
            super().__init__()
            self.shape = (h, w, c)

        def forward(self, x):
            return x.reshape(-1, *self.shape).permute(0, 3, 1, 2)  # (N, c, h, w)

    return Residual, ChannelsLastMap
