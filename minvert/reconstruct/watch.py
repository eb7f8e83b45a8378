"""Watching a long decoder training (the paper trained for 6000 epochs).

* :class:`Meter`: a progress line within an epoch, at most every few seconds: images done,
  images/s, time left in the epoch and in the run.
* :func:`save_decoder`: a usable ``decoder.h5`` (written atomically) plus ``decoder.json``
  saying which epoch it is from, so ``evaluate``/``decode`` work on an unfinished run.
* :func:`pairs_image`: reconstructions beside their originals (``samples.png`` every K epochs,
  and the figures, :mod:`minvert.reconstruct.figures`).
* :func:`sigterm_as_interrupt`: SIGTERM (a batch scheduler, ``kill``) is saved like Ctrl-C.
"""
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import FormatError
from ..plots import panel
from ..regular_files import read_regular_text
from ..weights.hdf5 import json_text
from ..weights.project import save, write_json

PROGRESS_SECONDS = 10.0


class Meter:
    """Progress within an epoch: ``epoch 3/100: 600/1000 images, 45 img/s, epoch ETA 9s,
    run ETA 1h02m``, printed at most every ``every`` seconds."""

    def __init__(self, n_train, epochs, log, every=PROGRESS_SECONDS, clock=time.perf_counter):
        self.n, self.epochs, self.log, self.every, self.clock = n_train, epochs, log, every, clock
        self.epoch, self.done, self.t0 = 0, 0, clock()
        self.last = self.t0

    def start_epoch(self, epoch):
        """epoch: 0-based, as run_epochs counts (a resumed epoch restarts the count)."""
        self.epoch, self.done, self.t0 = epoch, 0, self.clock()
        self.last = self.t0

    def step(self, n):
        self.done += n
        now = self.clock()
        if now - self.last < self.every or self.done >= self.n:
            return
        self.last = now
        rate = self.done / max(now - self.t0, 1e-9)
        left = (self.n - self.done) / rate
        run_left = left + (self.epochs - self.epoch - 1) * self.n / rate
        self.log(f"  epoch {self.epoch + 1}/{self.epochs}: {self.done}/{self.n} images, {rate:.1f} img/s, "
                 f"epoch ETA {_duration(left)}, run ETA {_duration(run_left)}")


def _duration(seconds):
    s = int(round(seconds))
    return f"{s}s" if s < 60 else f"{s // 60}m{s % 60:02d}s" if s < 3600 else f"{s // 3600}h{s % 3600 // 60:02d}m"


def save_decoder(net, out_dir, epoch, epochs):
    """decoder.h5 (atomic) and decoder.json {"epoch", "epochs", "finished"}."""
    save(net, Path(out_dir) / "decoder.h5", force=True)
    write_json(Path(out_dir) / "decoder.json", {"epoch": epoch, "epochs": epochs, "finished": epoch >= epochs})


def decoder_epoch(run_dir):
    """(epoch, epochs) of the run's decoder.h5, or None if decoder.json is missing."""
    path = Path(run_dir) / "decoder.json"
    if not path.is_file():
        return None
    info = json_text(read_regular_text(path, "a decoder.json"), str(path))
    counts = [info.get(k) for k in ("epoch", "epochs")] if isinstance(info, dict) else [None]
    if not all(type(v) is int and 0 <= v <= 10**9 for v in counts):
        raise FormatError(f"{path} is damaged (no epoch counts); train again into a new folder")
    return tuple(counts)


def to_uint8(img):
    """A decoder's output (floats in [0, 1]) as a uint8 image; uint8 input is returned as it is."""
    return img if img.dtype == np.uint8 else np.rint(np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)


def pairs_image(recons, originals, captions=None, columns=None):
    """uint8 grid: each reconstruction (float (s, s, 3) in [0, 1] or uint8) beside its original."""
    tiles, caps = [], []
    for i, (r, o) in enumerate(zip(recons, originals)):
        tiles += [to_uint8(r), to_uint8(o)]
        caps += (captions[i] if captions else ["reconstruction", "original"])
    return panel(tiles, caps, min_side=96, columns=columns or min(len(tiles), 8))


@contextmanager
def sigterm_as_interrupt():
    """Inside the block SIGTERM raises KeyboardInterrupt, so the loop saves its checkpoint."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt("SIGTERM")
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
