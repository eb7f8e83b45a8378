"""``minvert bench nets`` and ``minvert bench decoder``: the passes the two papers run, optionally
against PyTorch with the same weights in the same run."""
import os

import numpy as np

from ..backend import available_cores, configured_threads, get_array_module, to_numpy
from .memory import device_peak_mb, peak_memory
from .passes import PASSES, build_net, layer_macs, make_inputs, minvert_pass, pass_gflop
from .timing import best_times, load_note, machine_lines, print_table
from .torch_mirror import compare_module, to_torch, torch_pass

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
    and on a GPU). On a GPU, "device MB": the most device memory one pass held on top of
    the weights and inputs, in this process (CuPy's pool, PyTorch's caching allocator).
    """
    torch = compare_module(compare)
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
        net = build_net(spec, device)
        macs = layer_macs(net, make_inputs(dict(spec, batch=1), net)[0])
        model = to_torch(net, torch, device) if torch else None
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
    torch = compare_module(compare)
    threads = _threads(torch)
    spec = {"net": "decoder", "label": _label("decoder (paper 003)", config),
            "config": dict(config or {}), "pass": "train", "batch": batch, "threads": threads}
    _header(out, "decoder", device, repeats, threads)
    net = build_net(spec, device)
    macs = layer_macs(net, make_inputs(dict(spec, batch=1), net)[0])
    model = to_torch(net, torch, device) if torch else None
    row = _measure(spec, net, model, torch, macs, repeats, device, memory, out)
    _table([row], compare, out)
    return [row]


def _threads(torch=None):
    """The thread count NumPy's BLAS uses (read at each call, unlike blas_threads);
    PyTorch is told to use as many."""
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
        for line in machine_lines():
            out(line)


def _measure(spec, net, model, torch, macs, repeats, device, memory, out):
    """Time (and measure the memory of) one configuration; returns its table row."""
    x, target = make_inputs(spec, net)
    fns = {"minvert": minvert_pass(spec, net, x, target)}
    if model is not None:
        fns["torch"] = torch_pass(spec, model, x, target, torch, device)
    first = {k: fn() for k, fn in fns.items()}  # the warm-up call, whose results are compared
    times = best_times(fns, repeats=repeats, warmup=0, xp=get_array_module(x), pause=PAUSE)
    gflop, batch = pass_gflop(spec["pass"], macs, spec["batch"]), spec["batch"]
    row = {"model": spec["label"], "pass": PASSES[spec["pass"]], "batch": batch,
           "GFLOP": round(gflop, 2)}
    mems = {k: peak_memory(spec, k, out) if memory and device == "cpu" else None for k in fns}
    if device == "gpu":  # the GPU's own memory, in this process (CuPy's pool, torch's allocator)
        xp = get_array_module(x)
        device_mb = {k: device_peak_mb(fn, xp, torch if k == "torch" else None)
                     for k, fn in fns.items()}
    for k in fns:
        prefix = "" if k == "minvert" else "torch "
        row[prefix + "ms"] = round(times[k] * 1e3, 1)
        if spec["pass"] == "train":
            row[prefix + "images/s"] = round(batch / times[k], 2)
        row[prefix + "GFLOP/s"] = round(gflop / times[k], 1)
        if device == "gpu":
            row[prefix + "device MB"] = device_mb[k]
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
    if any("device MB" in r for r in rows):
        out("device MB = the most GPU memory one pass held on top of the weights and inputs "
            "(CuPy's memory pool after free_all_blocks; PyTorch: max_memory_reserved)")
    if compare:
        out("ratio = minvert time / PyTorch time; max rel diff = max |minvert - torch| / "
            "max |torch| of the first call's result (float32: a max-pool or ReLU near-tie "
            "decided the other way moves a gradient)")
    out(f"after: {load_note()}")
