"""``minvert bench layers``: each 3x3 convolution pass against a bare matmul of the same shape."""
import numpy as np

from ..backend import get_array_module, to_device
from ..layers.fast import im2col, winograd
from ..layers.fast.conv import _dx_col2im, _dx_transposed, conv2d_backward, conv2d_forward
from .timing import best_times, load_note, machine_lines, print_table

# (N, C, H, W, F): 3x3 convolutions, pad 1, of VGG's first, second, third, fourth and fifth
# stages, and of ResNet-50's third stage at batch 16
VGG_SHAPES = [(1, 64, 224, 224, 64), (1, 128, 112, 112, 128), (1, 256, 56, 56, 256),
              (1, 512, 28, 28, 512), (1, 512, 14, 14, 512), (16, 256, 14, 14, 256)]


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
        for line in machine_lines():
            out(line)
        out("ratio = time of the bare matmul / time of the pass (1.0: no overhead)")
        print_table(rows, ["shape", "op", "ms", "GFLOP/s", "ratio"], out)
    return rows
