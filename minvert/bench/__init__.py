"""Speed and memory measurements (``minvert bench``).

* ``bench_layers`` (:mod:`.conv`): how close each convolution pass gets to the machine's matmul.
  Every pass is im2col + one matrix product, so the natural yardstick is a bare matmul of the
  same shape on the same machine in the same run: a pass at ratio 1.0 spends no time outside
  BLAS (cuBLAS on a GPU).
* ``bench_nets``, ``bench_decoder`` (:mod:`.nets`): the passes the two papers run (VGG-19
  forward and backward to the pixels, ResNet-50 inference, the decoder's training step;
  :mod:`.passes`), optionally against PyTorch with the same weights in the same run
  (``compare="torch"``; torch is imported only then, :mod:`.torch_mirror`), with peak memory
  measured in fresh processes (:mod:`.memory`). Timing and tables: :mod:`.timing`.
"""
from .conv import bench_layers  # noqa: F401
from .nets import bench_decoder, bench_nets  # noqa: F401
