"""Paper 003: reconstruct images from a ResNet's pooled feature vector (Listík 2018).

Each step is a function and a ``minvert reconstruct`` sub-command. Read ``features.py``
first (what the encoder gives), then ``train.py`` (the loop), then ``evaluate.py``; the
decoder itself is :mod:`minvert.nets.decoder` and Adadelta :mod:`minvert.optim`.

1. ``extract``  images -> feature cache (HDF5): the encoder's GLOBAL-AVERAGE-POOLED feature
   (:meth:`ResNet.features`) plus the image resized to the decoder's target size.  (features.py)
2. ``train``    cache -> run folder: the paper's upsampling decoder (:mod:`minvert.nets.decoder`),
   binary cross-entropy on its sigmoid output against targets in [0, 1], hand-coded Adadelta
   with tf.keras 2.1.2-tf's defaults (lr 1, rho 0.95, eps 1e-8), batch 30, and the paper code's split:
   the first 10 images of the cache are held out, the rest train.  (train.py, runs.py)
3. ``evaluate`` and ``decode``: metrics on training and held-out images, re-identification,
   random-vector decodes, reconstruction PNGs.  (evaluate.py)
4. ``figure``: the paper's figures, one command each: Fig. 1 (one image after 1 ... 6000
   epochs), Fig. 2 (images beside their reconstructions), Fig. 3 (random vectors), Figs. 4-5
   (100 / 1000 / 10000 training images).  (figures.py)
5. ``invert`` and ``compare``: the vector inverted by optimising the pixels
   (Mahendran & Vedaldi 2015), alone or from the decoder's output, and the four ways back
   scored alike.  (invert.py, compare.py; invert_run.py and invert_cli.py for the command line)

``from minvert.reconstruct import extract, train, evaluate, decode`` gives the four steps; the
command line is cli.py. Imports go one way: cache_file <- features, watch <- runs <- train <-
evaluate <- figures <- cli. watch.py keeps long runs watchable (progress within an epoch, a usable decoder.h5
every K epochs, SIGTERM saved like Ctrl-C).

The cache format: cache_file.py; why the vector is the POOLED one: features.py. The run
folder's bookkeeping (run.json, split, decoder config): runs.py.

Run folder (``train --out RUN``): run.json (decoder config, cache identity, split indices,
settings), checkpoint.h5 and log.jsonl (:func:`minvert.train.run_epochs`), decoder.h5 and
decoder.json (its epoch: written every --sample-every epochs, on Ctrl-C/SIGTERM and at the
end), samples.png, epochs/epoch_NNNNN.png (--snapshot-epochs), loss.png and psnr.png;
``evaluate`` adds evaluation.json and contact_sheet.png.
"""
from .evaluate import decode, evaluate  # noqa: E402,F401
from .features import extract  # noqa: E402,F401
from .train import train  # noqa: E402,F401
