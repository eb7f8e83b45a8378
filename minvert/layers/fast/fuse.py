"""Inference fusion: a convolution runs together with the inference-mode batch-norm, the
ReLU and the residual add that follow it, all applied to each chunk of its output while
that is in the CPU cache (fast/im2col.conv_matmul), instead of one pass over the whole
output per layer. The batch-norm is folded into the convolution:

    bn(conv(x, w) + b) = (conv(x, w) + b) * scale + shift = conv(x, w * scale) + (b * scale + shift)

with scale = gamma / sqrt(running_var + eps), shift = beta - running_mean * scale. The same
values as running the layers one by one (tests/test_fast_fuse.py).
"""
from .conv import conv2d_fused
from .elementwise import relu_inplace


def predict_fused(steps, x, residual=None):
    """Run ``steps`` on x without caches -> the output.

    steps: (layer, fused) pairs, as nets.Sequential groups its layers; ``fused`` is None
    for a layer that runs alone (its own ``predict``), or (scale, shift, relu) for a
    Conv2D whose output goes through a batch-norm (scale, shift: (F,), or None) and a
    ReLU (relu: True). residual: an array shaped like the output; then the result is
    max(output + residual, 0), a residual block's end, fused into a convolution (and
    batch-norm) that ends the steps.
    """
    for k, (layer, fused) in enumerate(steps):
        if fused is None:
            x = layer.predict(x)
            continue
        scale, shift, relu = fused
        ends_block = residual is not None and k == len(steps) - 1 and not relu
        x = conv2d_fused(x, layer.params["w"], layer.params.get("b"), layer.stride, layer.pad,
                         scale, shift, relu or ends_block, residual if ends_block else None,
                         layer.winograd_cache())
        if ends_block:
            residual = None
    if residual is not None:  # not fused
        x = relu_inplace(x + residual)
    return x
