"""Loop-by-loop convolution: the test oracle for minvert.layers.conv (never used by minvert).

Written straight from the definition, sharing no code with the layer:

    out[n, f, h, w] = b[f] + sum_{c,i,j} w[f, c, i, j] * x_pad[n, c, SH*h + i, SW*w + j]
"""
import numpy as np


def conv2d_naive(x, w, b=None, stride=1, pad=0):
    """x (N, C, H, W), w (F, C, KH, KW), b (F,) -> (N, F, H_out, W_out), in float64.

    stride: int or (SH, SW); pad: int or (top, bottom, left, right).
    """
    SH, SW = (stride, stride) if np.isscalar(stride) else stride
    top, bottom, left, right = (pad,) * 4 if np.isscalar(pad) else pad
    x_pad = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    N, C, H_pad, W_pad = x_pad.shape
    F, _, KH, KW = w.shape
    H_out, W_out = (H_pad - KH) // SH + 1, (W_pad - KW) // SW + 1
    out = np.zeros((N, F, H_out, W_out))
    for n in range(N):
        for f in range(F):
            for h in range(H_out):
                for v in range(W_out):
                    acc = 0.0 if b is None else float(b[f])
                    for i in range(KH):
                        for j in range(KW):  # the sum over channels c as one dot product
                            acc += np.dot(w[f, :, i, j], x_pad[n, :, SH * h + i, SW * v + j])
                    out[n, f, h, v] = acc
    return out
