"""Speed and memory measurements (``minvert bench``).

* ``bench_layers``: how close each convolution pass gets to the machine's matmul. Every
  pass is im2col + one matrix product, so the natural yardstick is a bare matmul of the
  same shape on the same machine in the same run: a pass at ratio 1.0 spends no time
  outside BLAS (cuBLAS on a GPU).
* ``bench_nets``, ``bench_decoder``: the passes the two papers run (VGG-19 forward and
  backward to the pixels, ResNet-50 inference, the decoder's training step), optionally
  against PyTorch with the same weights in the same run (``compare="torch"``; torch is
  imported only then).
"""
import ctypes
import functools
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections import OrderedDict

import numpy as np

from .backend import get_array_module, to_device

# (N, C, H, W, F): 3x3 convolutions, pad 1, of VGG's first, second, third, fourth and fifth
# stages, and of ResNet-50's third stage at batch 16
VGG_SHAPES = [(1, 64, 224, 224, 64), (1, 128, 112, 112, 128), (1, 256, 56, 56, 256),
              (1, 512, 28, 28, 512), (1, 512, 14, 14, 512), (16, 256, 14, 14, 256)]


def sync(xp):
    """Wait for the GPU to finish (a CuPy call returns before the work is done)."""
    if xp is not np:
        xp.cuda.Device().synchronize()


def best_times(fns, repeats=5, warmup=1, xp=np, pause=0.0):
    """{name: best wall time in seconds} for a dict of zero-argument callables.

    The callables take turns (one call each per round), so a burst of load from another
    process slows all of them alike; the minimum over rounds is the least disturbed run.
    xp: the array module the callables compute with (CuPy calls are waited for).
    pause: seconds to sleep before each call, so that the idle threads of the previous
    callable's thread pool (BLAS, OpenMP spin a while after their work) have gone to sleep.
    """
    times = {name: float("inf") for name in fns}
    for r in range(warmup + repeats):
        for name, fn in fns.items():
            time.sleep(pause)
            sync(xp)
            t0 = time.perf_counter()
            fn()
            sync(xp)
            if r >= warmup:
                times[name] = min(times[name], time.perf_counter() - t0)
    return times


def load_note():
    try:
        return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    except (AttributeError, OSError):
        return ""


def print_table(rows, columns, out=print):
    """Plain-text table of dicts: one header line, one line per row."""
    cells = [[str(r[c]) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(line[k]) for line in cells]) for k, c in enumerate(columns)]
    out("  ".join(c.ljust(wd) for c, wd in zip(columns, widths)))
    for line in cells:
        out("  ".join(v.ljust(wd) for v, wd in zip(line, widths)))


def bench_layers(repeats=5, dtype="float32", shapes=None, out=print, device="cpu",
                 compare_dx=False):
    """Time conv forward, backward to the input, backward to the weights, and a bare matmul.

    shapes: list of (N, C, H, W, F) for 3x3 stride-1 pad-1 convolutions (default: three
    VGG shapes). The matmul is w2d (F, C*9) @ cols (C*9, N*H*W), the product the forward
    pass performs; backward to the input does a product of the same size when C == F.
    GFLOP/s counts 2*N*F*C*9*H*W multiply-adds for every pass (the im2col count, also for
    Winograd, which does fewer). compare_dx: also time both ways of computing dx
    (transposed convolution, col2im), of which backward picks one. Always timed too:
    Winograd F(2x2, 3x3) forward and dx with the kernel transform done beforehand, and
    that transform alone; "forward" and "backward dx" are whichever path the layer's
    rule (``conv.winograd_pays``) picks, "im2col" forces the other one.
    Returns the rows (dicts); ``out`` receives the printed lines (None: print nothing).
    """
    from .layers.fast import im2col, winograd
    from .layers.fast.conv import _dx_col2im, _dx_transposed, conv2d_backward, conv2d_forward
    rng = np.random.default_rng(0)
    rows = []
    for N, C, H, W, F in shapes or VGG_SHAPES:
        def rand(*shape):
            return to_device(rng.standard_normal(shape).astype(dtype), device)
        x, w, b, dout = rand(N, C, H, W), rand(F, C, 3, 3), rand(F), rand(N, F, H, W)
        w2d, cols = rand(F, C * 9), rand(C * 9, N * H * W)
        xp = get_array_module(x)
        _, cache = conv2d_forward(x, w, b, 1, 1)
        plain_cache = {k: v for k, v in cache.items() if k != "winograd_U"}
        U = winograd.kernel_transform(w)
        fns = {
            "forward": lambda: conv2d_forward(x, w, b, 1, 1),
            "backward dx": lambda: conv2d_backward(dout, cache, need_dx=True, need_dw=False),
            "backward dw": lambda: conv2d_backward(dout, cache, need_dx=False, need_dw=True),
            "matmul": lambda: w2d @ cols,
            "forward im2col": lambda: im2col.conv_matmul(x, (1, 1, 1, 1), w.reshape(F, -1), b,
                                                         3, 3, 1, 1, H, W),
            "dx im2col": lambda: conv2d_backward(dout, plain_cache, need_dw=False),
            "forward winograd": lambda: winograd.conv3x3_winograd(x, U, b, (1, 1, 1, 1)),
            "dx winograd": lambda: winograd.dx_winograd(dout, U, (1, 1, 1, 1)),
            "kernel transform": lambda: winograd.kernel_transform(w),
        }
        if compare_dx:
            fns["dx transposed"] = lambda: _dx_transposed(dout, w, (1, 1, 1, 1))
            fns["dx col2im"] = lambda: _dx_col2im(dout, w, x.shape, 1, 1, (1, 1, 1, 1))
        times = best_times(fns, repeats=repeats, xp=xp)
        gflop = 2.0 * N * F * C * 9 * H * W / 1e9
        for op, t in times.items():
            rows.append({"shape": f"{N}x{C}x{H}x{W} -> {F}", "op": op, "ms": round(t * 1e3, 2),
                         "GFLOP/s": round(gflop / t, 1), "ratio": round(times["matmul"] / t, 2)})
    if out is not None:
        out(f"conv 3x3 stride 1 pad 1, {dtype}, {device}, best of {repeats}; {load_note()}")
        out("ratio = time of the bare matmul / time of the pass (1.0: no overhead)")
        print_table(rows, ["shape", "op", "ms", "GFLOP/s", "ratio"], out)
    return rows


# whole networks --------------------------------------------------------------------------
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
PAUSE = 0.2  # s between timed calls: BLAS and OpenMP threads spin ~0.1 s after their work


def bench_nets(repeats=3, compare=None, out=print, device="cpu", size=224, batches=(1, 16),
               vgg=None, resnet=None, memory=True):
    """VGG-19 forward and forward + backward to the input with the net frozen (one L-BFGS
    evaluation of paper 000) at batch 1; ResNet-50 v1.5 inference (``predict``: no caches)
    at each batch size in ``batches``. Random weights (He; ResNet batch-norm statistics
    random too), float32, inputs size x size.

    compare="torch": also PyTorch, imported here, with the same weights in plain torch.nn
    modules (in-place ReLU as torchvision), the same thread count, ``torch.no_grad()`` for
    inference, weights frozen and ``requires_grad`` on the input for the backward pass. The
    two take turns call by call (see :func:`best_times`); the first call of each is the
    warm-up and gives the outputs that are compared ("max rel diff" = max |minvert -
    torch| / max |torch|). ratio = minvert time / PyTorch time.
    vgg, resnet: config overrides for the builders (tests pass tiny nets); memory=False
    skips the memory measurement. Returns the rows (dicts); ``out`` receives the printed
    lines (None: print nothing).

    GFLOP: 2 x the multiply-adds of the conv and dense layers, from the layer shapes of one
    forward pass (bias, batch-norm, activations, pooling, the optimizer not counted).
    Backward to the input costs each layer its forward's multiply-adds again, backward to
    the weights once more: forward + dx = 2x the forward, a training step 3x (less the
    first layer's dx where nobody needs it).

    peak MB, measured the same way for both libraries: each configuration runs in a FRESH
    Python process, which first runs the same pass on a tiny net of the same kind (one-time
    costs: code paged in, thread pools, PyTorch's autograd engine, ~40 MB), then builds the
    real one and its inputs, returns freed heap memory to the system (malloc_trim), resets
    the resident-set high-water mark (/proc/self/clear_refs) and runs the pass twice
    (warm-up, then once). The figure is the high-water mark (VmHWM) minus the resident size
    at the reset: what the pass needs on top of the weights and inputs (activations,
    caches, gradients, optimizer state, scratch buffers, BLAS and oneDNN work space).
    tracemalloc sees NumPy's arrays but not PyTorch's allocator, so its peak is shown for
    minvert only ("numpy MB"), to tell arrays from the rest. Linux only ("n/a" elsewhere
    and on a GPU).
    """
    torch = _compare_module(compare)
    threads = _threads(torch)
    specs = [
        ({"net": "vgg", "label": _label("VGG-19", vgg), "size": size,
          "config": {"depth": 19, **(vgg or {}), "input_size": size}},
         [("forward", 1), ("dx", 1), ("objective", 1)]),
        ({"net": "resnet", "label": _label("ResNet-50 v1.5", resnet), "size": size,
          "config": {"depth": 50, "variant": "v1.5", **(resnet or {})}},
         [("forward", b) for b in batches]),
    ]
    rows = []
    _header(out, "nets", device, repeats, threads)
    for spec, passes in specs:
        net = _build_net(spec, device)
        macs = _layer_macs(net, _inputs(dict(spec, batch=1), net)[0])
        model = _to_torch(net, torch, device) if torch else None
        for kind, batch in passes:
            rows.append(_measure(dict(spec, threads=threads, **{"pass": kind, "batch": batch}),
                                 net, model, torch, macs, repeats, device, memory, out))
    _table(rows, compare, out)
    return rows


def bench_decoder(repeats=3, compare=None, batch=8, out=print, device="cpu", config=None,
                  memory=True):
    """One training step of paper 003's decoder (``build_decoder()``: 27.5M parameters,
    2048-d feature -> 256x256 image): forward, binary cross-entropy, backward, Adadelta
    (lr 1, rho 0.95, eps 1e-8) at batch ``batch``: time per step and images per second.

    compare="torch": the same step in PyTorch with the same initial weights (Conv2d with
    padding 1, the 2x2 'same' conv after ZeroPad2d((0, 1, 0, 1)), nearest Upsample,
    LeakyReLU 0.2, sigmoid, BCELoss, torch.optim.Adadelta with the same settings); the
    first step of each is the warm-up and its outputs are compared. Both free the weight
    gradients at the start of a step (``net.clear_grads()``, ``zero_grad(set_to_none=True)``).
    config: overrides for ``build_decoder`` (tests pass a tiny one). Columns, GFLOP (3x the
    forward) and peak MB as in :func:`bench_nets`.
    """
    torch = _compare_module(compare)
    threads = _threads(torch)
    spec = {"net": "decoder", "label": _label("decoder (paper 003)", config),
            "config": dict(config or {}), "pass": "train", "batch": batch, "threads": threads}
    _header(out, "decoder", device, repeats, threads)
    net = _build_net(spec, device)
    macs = _layer_macs(net, _inputs(dict(spec, batch=1), net)[0])
    model = _to_torch(net, torch, device) if torch else None
    row = _measure(spec, net, model, torch, macs, repeats, device, memory, out)
    _table([row], compare, out)
    return [row]


def _compare_module(compare):
    """torch for compare="torch", None for None; a one-line error when torch is missing."""
    from .errors import MinvertError
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
    from .errors import MinvertError
    if device != "gpu":
        return "cpu"
    if not torch.cuda.is_available():
        raise MinvertError("--compare torch on the GPU needs a PyTorch build with CUDA (this one "
                           f"is {torch.__version__}, without); install one, or bench with --device cpu")
    import cupy
    return f"cuda:{cupy.cuda.Device().id}"


def _threads(torch=None):
    """The thread count NumPy's BLAS uses (read at each call, unlike blas_threads);
    PyTorch is told to use as many."""
    from .backend import available_cores, configured_threads
    n = configured_threads(os.environ, available_cores())
    if torch is not None:
        torch.set_num_threads(n)
    return n


def _label(name, overrides):
    return f"{name} (custom)" if overrides else name


def _header(out, what, device, repeats, threads):
    if out is not None:
        out(f"minvert bench {what}: float32, {device}, {threads} threads, best of {repeats}; "
            f"{load_note()}")


def _build_net(spec, device="cpu"):
    """The minvert network of a spec, random weights from a fixed seed."""
    from .backend import array_module
    from .nets.decoder import build_decoder
    from .nets.resnet import build_resnet
    from .nets.vgg import build_vgg
    from .layers.norm import BatchNorm2D
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


def _inputs(spec, net):
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


def _layer_macs(net, x1):
    """[(layer, multiply-adds per sample)] of every conv and dense layer, from the shapes
    one forward pass of a single sample x1 leaves in their caches."""
    from .layers.conv import Conv2D
    from .layers.dense import Dense
    from .layers.shape import normalize_pad
    from .layers.upconv import UpsampleConv2D
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


def _pass_gflop(kind, macs, batch):
    """GFLOP of the pass: 2 x its multiply-adds (see bench_nets)."""
    total = sum(m for _, m in macs)
    if kind in ("dx", "objective", "train"):
        total += sum(m for layer, m in macs if layer.need_dx)
    if kind == "train":
        total += sum(m for layer, m in macs if layer.trainable)
    return 2.0 * total * batch / 1e9


def _minvert_pass(spec, net, x, target):
    """The zero-argument callable that runs one pass of ``spec`` and returns its result."""
    from .layers.loss import binary_cross_entropy
    from .optim import Adadelta
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
        from .images import Preprocessing
        from .transform.losses import Multipliers
        from .transform.objective import Objective, Settings
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


def _torch_pass(spec, model, x, target, torch, device="cpu"):
    """The same pass in PyTorch; returns what :func:`_minvert_pass` returns."""
    from .backend import to_numpy
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
    import types
    from .images import Preprocessing
    from .transform.losses import Multipliers, color_threshold
    from .transform.objective import Settings, default_layers
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


def _measure(spec, net, model, torch, macs, repeats, device, memory, out):
    """Time (and measure the memory of) one configuration; returns its table row."""
    from .backend import to_numpy
    x, target = _inputs(spec, net)
    fns = {"minvert": _minvert_pass(spec, net, x, target)}
    if model is not None:
        fns["torch"] = _torch_pass(spec, model, x, target, torch, device)
    first = {k: fn() for k, fn in fns.items()}  # the warm-up call, whose results are compared
    times = best_times(fns, repeats=repeats, warmup=0, xp=get_array_module(x), pause=PAUSE)
    gflop, batch = _pass_gflop(spec["pass"], macs, spec["batch"]), spec["batch"]
    row = {"model": spec["label"], "pass": PASSES[spec["pass"]], "batch": batch,
           "GFLOP": round(gflop, 2)}
    mems = {k: _peak_memory(spec, k, out) if memory and device == "cpu" else None for k in fns}
    for k in fns:
        prefix = "" if k == "minvert" else "torch "
        row[prefix + "ms"] = round(times[k] * 1e3, 1)
        if spec["pass"] == "train":
            row[prefix + "images/s"] = round(batch / times[k], 2)
        row[prefix + "GFLOP/s"] = round(gflop / times[k], 1)
        mem = mems[k] or {}
        row[prefix + "peak MB"] = mem.get("rss_mb", "n/a")
        if k == "minvert":
            row["numpy MB"] = mem.get("traced_mb", "n/a")
    if model is not None:
        a, b = to_numpy(first["minvert"]), first["torch"].detach().cpu().numpy()
        row["ratio"] = round(times["minvert"] / times["torch"], 2)
        row["max rel diff"] = f"{float(np.abs(a - b).max() / np.abs(b).max()):.1e}"
    return row


def _table(rows, compare, out):
    if out is None:
        return
    columns = list(rows[0])
    print_table(rows, columns, out)
    out("GFLOP = 2 x multiply-adds of conv and dense layers (backward to the input or the "
        "weights: the forward's again); peak MB = resident-memory high-water mark of a fresh "
        "process running the pass twice, minus its size before (with weights and inputs); "
        "numpy MB = tracemalloc peak of the same run")
    if compare:
        out("ratio = minvert time / PyTorch time; max rel diff = max |minvert - torch| / "
            "max |torch| of the first call's result (float32: a max-pool or ReLU near-tie "
            "decided the other way moves a gradient)")
    out(f"after: {load_note()}")


# memory in a fresh process ----------------------------------------------------------------
def _peak_memory(spec, framework, out=print):
    """{"rss_mb", "traced_mb"} of one configuration run in a fresh Python process, or None."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p))
    code = "import sys; from minvert.bench import _memory_child; _memory_child(sys.argv[1])"
    spec = dict(spec, framework=framework)
    result = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], env=env,
                            capture_output=True, text=True)
    lines = result.stdout.strip().splitlines()
    if result.returncode or not lines:
        if out is not None:
            err = (result.stderr.strip().splitlines() or ["no output"])[-1]
            out(f"memory of {spec['label']} {spec['pass']} ({framework}) not measured: {err}")
        return None
    return json.loads(lines[-1])


def _memory_child(spec_json):
    """In the fresh process (see bench_nets): warm up on a tiny net, build the real one,
    reset the high-water mark, run twice, print the JSON."""
    spec = json.loads(spec_json)
    if spec.get("warm_up", True):
        _memory_child(json.dumps(dict(spec, warm_up=False, print=False, **TINY[spec["net"]])))
    net = _build_net(spec)
    x, target = _inputs(spec, net)
    if spec["framework"] == "torch":
        torch = _compare_module("torch")
        torch.set_num_threads(spec["threads"])
        model = _to_torch(net, torch)
        del net  # only the PyTorch copy of the weights stays
        fn = _torch_pass(spec, model, x, target, torch)
    else:
        fn = _minvert_pass(spec, net, x, target)
        tracemalloc.start()
    gc.collect()
    try:
        # building left freed-but-resident heap memory that the pass could reuse unseen
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident size (Linux >= 4.0)
        base = _status_kb("VmRSS")
    except OSError:
        print(json.dumps({}))
        return
    fn()
    fn()  # buffers a pass keeps for the next one count too
    result = {"rss_mb": round((_status_kb("VmHWM") - base) / 1024)}
    if tracemalloc.is_tracing():
        result["traced_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    if spec.get("print", True):
        print(json.dumps(result))


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


# the same networks in PyTorch ------------------------------------------------------------------
def _to_torch(layer, torch, device="cpu"):
    """An equivalent torch.nn module holding COPIES of the layer's weights (both sides may
    train their own). Covers every layer the VGG, ResNet and decoder builders use."""
    from .backend import to_numpy
    from .errors import MinvertError
    from .layers.activation import LeakyReLU, ReLU, Sigmoid
    from .layers.conv import Conv2D
    from .layers.dense import Dense
    from .layers.norm import BatchNorm2D
    from .layers.pool import AvgPool2D, GlobalAvgPool, MaxPool2D
    from .layers.shape import Flatten, normalize_pad
    from .layers.upconv import UpsampleConv2D
    from .layers.upsample import UpsampleNearest
    from .nets.decoder import FeatureToMap
    from .nets.resnet import ResidualBlock
    from .nets.sequential import Sequential
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
