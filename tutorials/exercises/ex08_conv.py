"""Exercise 8: the backward pass of a 2-D convolution.

    out[n, f, oh, ow] = b[f] + sum_{c, i, j} w[f, c, i, j] * x_pad[n, c, oh*stride + i, ow*stride + j]

The forward pass below is complete; keep it as it is. Write ``conv_backward`` and check it:

    minvert exercise check tutorials/exercises/ex08_conv.py

(or ``python tutorials/exercises/ex08_conv.py``). The checker compares your gradient with a
numerical one on small random inputs and, when they differ, names the usual mistake.
"""
import numpy as np


def conv_forward(x, w, b, stride=1, pad=0):
    """x: (N, C, H, W), w: (F, C, KH, KW), b: (F,) -> (out (N, F, H_out, W_out), cache).

    x_pad is x with ``pad`` zeros on every side;
    H_out = (H + 2*pad - KH) // stride + 1,  W_out = (W + 2*pad - KW) // stride + 1.
    """
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    H_out = (H + 2 * pad - KH) // stride + 1
    W_out = (W + 2 * pad - KW) // stride + 1
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.empty((N, F, H_out, W_out), dtype=x.dtype)
    for oh in range(H_out):
        for ow in range(W_out):
            patch = x_pad[:, :, oh * stride:oh * stride + KH, ow * stride:ow * stride + KW]
            # (N, C, KH, KW) against (F, C, KH, KW), summed over C, KH, KW -> (N, F)
            out[:, :, oh, ow] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    cache = (x, w, stride, pad)  # backward re-cuts the patches of x and needs w
    return out, cache


def conv_backward(dout, cache):
    """dout: (N, F, H_out, W_out) -> (dx (N, C, H, W), dw (F, C, KH, KW), db (F,)).

    Output pixel (oh, ow) was computed from one patch of x_pad:
        patch = x_pad[:, :, oh*stride : oh*stride + KH, ow*stride : ow*stride + KW]  (N, C, KH, KW)
        out[:, :, oh, ow] = (patch and w summed over C, KH, KW) + b                   (N, F)
    so backward can walk the same two loops and send g = dout[:, :, oh, ow] (N, F) back:

    * to the patch: d patch[n, c, i, j] = sum_f g[n, f] * w[f, c, i, j], added into a
      gradient buffer dx_pad at the patch's place (neighbouring patches overlap);
    * to the weights: dw[f, c, i, j] collects sum_n g[n, f] * patch[n, c, i, j];
    * to the bias: b[f] was added to every output pixel of filter f, in every sample.

    Hints: np.tensordot(a, b, axes=(1, 0)) sums a's axis 1 against b's axis 0; check which
    axes come out first. dw must be (F, C, KH, KW) like w. The padding is not part of x:
    cut it off dx_pad at the end.
    """
    raise NotImplementedError("write conv_backward")


if __name__ == "__main__":  # `python ex08_conv.py` checks this file
    try:
        from minvert.exercises import check_file
    except ModuleNotFoundError:  # minvert not installed: use the checkout this file is in
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from minvert.exercises import check_file
    raise SystemExit(0 if check_file(__file__) else 1)
