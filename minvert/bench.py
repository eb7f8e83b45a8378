"""Speed measurements (``minvert bench``): how close each pass gets to the machine's matmul.

Every convolution pass here is im2col + one matrix product, so the natural yardstick is a
bare matmul of the same shape on the same machine in the same run: a pass at ratio 1.0
spends no time outside BLAS (cuBLAS on a GPU).
"""
import os
import time

import numpy as np

from .backend import get_array_module, to_device

# (N, C, H, W, F): 3x3 convolutions, pad 1, of VGG's first, third and fifth stages
VGG_SHAPES = [(1, 64, 224, 224, 64), (1, 256, 56, 56, 256), (1, 512, 14, 14, 512)]


def sync(xp):
    """Wait for the GPU to finish (a CuPy call returns before the work is done)."""
    if xp is not np:
        xp.cuda.Device().synchronize()


def best_times(fns, repeats=5, warmup=1, xp=np):
    """{name: best wall time in seconds} for a dict of zero-argument callables.

    The callables take turns (one call each per round), so a burst of load from another
    process slows all of them alike; the minimum over rounds is the least disturbed run.
    xp: the array module the callables compute with (CuPy calls are waited for).
    """
    times = {name: float("inf") for name in fns}
    for r in range(warmup + repeats):
        for name, fn in fns.items():
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
    GFLOP/s counts 2*N*F*C*9*H*W multiply-adds for every pass. compare_dx: also time
    both ways of computing dx (transposed convolution, col2im), of which backward picks one.
    Returns the rows (dicts); ``out`` receives the printed lines (None: print nothing).
    """
    from .layers.conv import _dx_col2im, _dx_transposed, conv2d_backward, conv2d_forward
    rng = np.random.default_rng(0)
    rows = []
    for N, C, H, W, F in shapes or VGG_SHAPES:
        def rand(*shape):
            return to_device(rng.standard_normal(shape).astype(dtype), device)
        x, w, b, dout = rand(N, C, H, W), rand(F, C, 3, 3), rand(F), rand(N, F, H, W)
        w2d, cols = rand(F, C * 9), rand(C * 9, N * H * W)
        xp = get_array_module(x)
        _, cache = conv2d_forward(x, w, b, 1, 1)
        fns = {
            "forward": lambda: conv2d_forward(x, w, b, 1, 1),
            "backward dx": lambda: conv2d_backward(dout, cache, need_dx=True, need_dw=False),
            "backward dw": lambda: conv2d_backward(dout, cache, need_dx=False, need_dw=True),
            "matmul": lambda: w2d @ cols,
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
