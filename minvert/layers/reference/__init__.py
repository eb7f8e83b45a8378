"""The simple version of every layer: what a student writes first, read before the layers.

Each function here is the textbook definition as a loop over output pixels (or one einsum)
with its backward derived step by step, in the same contract as ``minvert.layers``:
``*_forward(...) -> (out, cache)`` and ``*_backward(dout, cache) -> gradients``. They are
slow and obviously right; ``tests/test_reference_layers.py`` proves each readable layer
(``minvert/layers/*.py``, vectorised) equal to its reference and gradient-checks the
references themselves. Reading order: these, then the readable layer, then (optional) the
fast engine in ``minvert/layers/fast/``.

| family | reference | readable layer |
|---|---|---|
| convolution | :mod:`.conv` | ``minvert/layers/conv.py`` |
| max / average pooling | :mod:`.pool` | ``minvert/layers/pool.py`` |
| ReLU, leaky ReLU, sigmoid | :mod:`.activation` | ``minvert/layers/activation.py`` |
| dense | :mod:`.dense` | ``minvert/layers/dense.py`` |
| batch-norm | :mod:`.norm` | ``minvert/layers/norm.py`` |
| nearest upsampling | :mod:`.upsample` | ``minvert/layers/upsample.py`` |
| softmax CE, BCE, MSE | :mod:`.loss` | ``minvert/layers/loss.py`` |

NumPy and CuPy alike: every array is made with ``xp = get_array_module(x)``.
"""
