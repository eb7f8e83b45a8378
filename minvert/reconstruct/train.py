"""Paper 003, step 2: train the upsampling decoder on a feature cache (see minvert.reconstruct).

    train(cache, out_dir, decoder={"widths": [64, 32, 16]}, epochs=100)

What the paper's code does, and the defaults here: decoder = :mod:`minvert.nets.decoder` (4x4
start, 3x3 'same' convs, LeakyReLU 0.2, nearest 2x upsampling, 2x2 sigmoid output); loss =
per-pixel binary cross-entropy on the sigmoid output, clipped as Keras clips (1e-7), against
targets in [0, 1]; optimiser = hand-coded Adadelta, lr 1, rho 0.95, eps 1e-8 (tf.keras 2.1.2-tf in
TensorFlow 1.5.0; 1e-7 is only its BCE clip; the Adadelta paper uses eps 1e-6); batch 30; held-out set = the first 10 images of the cache.
MSE and Adam are options. A decoder whose output is smaller than the cached targets trains
against the targets box-downsampled (each output pixel = the mean of its block).

Settings that change the trajectory are stored in run.json; ``--resume`` takes them from there
(only ``epochs`` may grow) and continues bit-identically from checkpoint.h5. The run folder's
bookkeeping (run.json, split, decoder config) is :mod:`minvert.reconstruct.runs`.
"""
from pathlib import Path

import numpy as np

from ..backend import array_module, default_device, get_array_module, to_numpy
from ..errors import MinvertError
from ..files import run_folder_lock
from ..images import save_image
from ..layers.loss import binary_cross_entropy, mse
from ..nets.decoder import build_decoder
from ..optim import Adadelta, Adam
from ..plots import line_plot
from ..training import run_epochs
from .cache_file import read_cache, targets_at
from .runs import describe_decoder, make_decoder_config, open_run
from .watch import Meter, pairs_image, save_decoder, sigterm_as_interrupt, to_uint8

SAMPLE_EVERY = 10  # epochs between decoder.h5/samples.png while training


def _psnr_rows(out, t):
    """Per-image PSNR (dB, data range 1) of (n, 3, s, s) outputs against targets, on the
    arrays' device (n,)."""
    xp = get_array_module(out)
    err = ((out - t) ** 2).mean(axis=(1, 2, 3))
    return -10.0 * xp.log10(xp.maximum(err, 1e-10))


def train(cache, out_dir, decoder=None, epochs=None, batch_size=None, loss=None, optimizer=None,
          lr=None, rho=None, eps=None, seed=None, split=None, n_train=None, resume=False,
          checkpoint_every=1, log=print, on_step=None, device=None, sample_every=SAMPLE_EVERY,
          snapshot_epochs=(), snapshot_rows=None):
    """Train the decoder on ``cache`` into ``out_dir``; returns the history (one dict per epoch).

    decoder: overrides of the decoder config ({"widths": [...], "start": [h, h, c], "alpha",
    "final_kernel"}); None = the paper's stages for the cache's feature and target size.
    Other settings default to ``DEFAULTS`` (None = not given); lr defaults to 1.0 (adadelta)
    or 1e-3 (adam); rho and eps are Adadelta's. split: "paper" | "none" | "fraction:F".
    n_train: keep only the first n_train training images. on_step(step): called after every
    step (tests interrupt a run through it). Ctrl-C or SIGTERM saves a checkpoint (and
    decoder.h5); ``resume=True`` continues it bit-identically.

    Watching (changes nothing in the trajectory): a progress line within each epoch; every
    ``sample_every`` epochs (0: only at the end) decoder.h5 + decoder.json and samples.png
    (reconstruction | original for up to 4 training and 4 held-out images); at each epoch in
    ``snapshot_epochs`` epochs/epoch_NNNNN.png, the reconstructions of ``snapshot_rows``
    (cache rows; default the first training image), for the paper's Fig. 1.
    """
    feature_cache = read_cache(cache)
    if snapshot_rows and max(snapshot_rows) >= len(feature_cache):
        raise MinvertError(f"snapshot row {max(snapshot_rows)} is outside the cache's "
                           f"{len(feature_cache)} images (rows 0..{len(feature_cache) - 1})")
    out_dir = Path(out_dir)
    given = {k: v for k, v in dict(epochs=epochs, batch_size=batch_size, loss=loss, optimizer=optimizer,
                                   lr=lr, rho=rho, eps=eps, seed=seed, split=split,
                                   n_train=n_train).items() if v is not None}
    config = (None if decoder is None else
              make_decoder_config(feature_cache.feature_size, feature_cache.target_size, **decoder))
    with run_folder_lock(out_dir):  # a second run into the same folder refuses in one line
        run = open_run(out_dir, feature_cache, config, given, resume)
        session = _Session(run, feature_cache, out_dir, array_module(device or default_device()),
                           log, sample_every, snapshot_epochs, snapshot_rows)
        history = _run(session, out_dir, resume, checkpoint_every, on_step, log)
    log(f"wrote {out_dir / 'decoder.h5'}; evaluate with `minvert reconstruct evaluate {out_dir} {cache}`")
    return history


def _run(session, out_dir, resume, checkpoint_every, on_step, log):
    """Train ``session`` with the shared loop; Ctrl-C/SIGTERM also saves decoder.h5."""
    settings = session.settings
    session.say_plan()
    try:
        with sigterm_as_interrupt():
            history = run_epochs(session.net, session.opt, session.step, len(session.train_rows),
                                 out_dir, settings["epochs"], settings["batch_size"], settings["seed"],
                                 resume=resume, evaluate=session.end_of_epoch, log=log,
                                 checkpoint_every=checkpoint_every, on_step=on_step,
                                 on_epoch=session.meter.start_epoch)
    except KeyboardInterrupt:
        epoch = session.meter.epoch
        save_decoder(session.net, out_dir, epoch, settings["epochs"])  # mid-epoch weights, usable as they are
        log(f"saved {out_dir / 'decoder.h5'} (during epoch {epoch + 1}) for evaluate/decode")
        raise
    session.finish(history)
    return history


class _Session:
    """One training session of a run: the decoder, its optimiser, the data on the device, and
    what happens at each step, at the end of each epoch and at the end."""

    def __init__(self, run, feature_cache, out_dir, xp, log, sample_every, snapshot_epochs,
                 snapshot_rows):
        s, config = run["settings"], run["decoder"]
        self.run, self.cache, self.out_dir, self.xp, self.log = run, feature_cache, out_dir, xp, log
        self.settings, self.sample_every = s, sample_every
        self.net = build_decoder(config, rng=np.random.default_rng(s["seed"])).to(xp)
        self.net["conv1"].need_dx = False  # nobody needs the gradient w.r.t. the feature vectors
        self.opt = (Adadelta(lr=s["lr"], rho=s["rho"], eps=s["eps"]) if s["optimizer"] == "adadelta"
                    else Adam(lr=s["lr"]))
        self.loss_fn = ((lambda p, t: binary_cross_entropy(p, t, eps=1e-7)) if s["loss"] == "bce"
                        else mse)
        self.size = size = self.net.output_size
        self.train_rows, self.test_rows = run["split"]["train"], run["split"]["test"]
        self.x_train = xp.asarray(feature_cache.features[self.train_rows])
        self.t_train = xp.asarray(targets_at(feature_cache, self.train_rows, size)
                                  .transpose(0, 3, 1, 2))  # uint8 (n, 3, s, s)
        self.x_test = xp.asarray(feature_cache.features[self.test_rows])
        self.t_test = xp.asarray(targets_at(feature_cache, self.test_rows, size)
                                 .transpose(0, 3, 1, 2)).astype(self.net.dtype) / 255
        self.meter = Meter(len(self.train_rows), s["epochs"], log)
        self.sample_rows = self.train_rows[:4] + self.test_rows[:4]
        self.snapshot_rows = list(snapshot_rows or self.train_rows[:1])
        self.snapshot_epochs = set(snapshot_epochs)

    def say_plan(self):
        s, run = self.settings, self.run
        down = f", box-downsampled from {self.cache.target_size}px" if run["target_downsample"] else ""
        self.log(f"decoder {describe_decoder(run['decoder'])}, {run['num_params']:,} parameters; "
                 f"{len(self.train_rows)} training and {len(self.test_rows)} held-out images, targets "
                 f"{self.size}px{down}; {s['loss']} loss, {self.opt!r}, batch {s['batch_size']}, "
                 f"{s['epochs']} epochs")

    def step(self, idx):
        """One step of the paper's training: decode a batch, the loss, backward, Adadelta."""
        idx = self.xp.asarray(idx)  # the epoch's shuffle is drawn on the host
        t = self.t_train[idx].astype(self.net.dtype) / 255
        out = self.net.forward(self.x_train[idx])
        psnr_sum = _psnr_rows(out, t).sum()  # queued on the device, read with the loss below
        value, dout = self.loss_fn(out, t)
        self.net.backward(dout)
        self.opt.step(self.net.parameters())
        # loss and PSNR after backward and update, in ONE transfer: the host waits for the
        # device once per step (float64: exact for both float32 numbers); the loop keeps the
        # epoch's PSNR sum (and checkpoints it)
        value, psnr_sum = (float(v) for v in to_numpy(self.xp.stack(
            [value.astype(np.float64), psnr_sum.astype(np.float64)])))
        self.meter.step(len(idx))
        return value, None, len(idx), {"psnr": psnr_sum}

    def decoded(self, rows):
        """Reconstructions of cache rows, float (n, s, s, 3) in [0, 1], on the host."""
        out = self.net.predict(self.xp.asarray(self.cache.features[rows]))
        return to_numpy(out).transpose(0, 2, 3, 1)  # (n, s, s, 3)

    def end_of_epoch(self, epoch):
        """The held-out PSNR for the epoch's record (its training PSNR is the mean of the steps'
        sums, kept by the loop); samples and snapshots when due."""
        record = {}
        if self.test_rows:
            pred = self.xp.concatenate([self.net.predict(self.x_test[i:i + 32])
                                        for i in range(0, len(self.test_rows), 32)])
            record["val_psnr"] = float(to_numpy(_psnr_rows(pred, self.t_test)).mean())
        if self.sample_every and epoch % self.sample_every == 0 and epoch < self.settings["epochs"]:
            save_decoder(self.net, self.out_dir, epoch, self.settings["epochs"])
            self._save_samples()
        if epoch in self.snapshot_epochs:
            (self.out_dir / "epochs").mkdir(exist_ok=True)
            save_image(self.out_dir / "epochs" / f"epoch_{epoch:05d}.png",
                       np.concatenate(list(to_uint8(self.decoded(self.snapshot_rows))), axis=0))  # rows stacked
        return record

    def _save_samples(self):
        save_image(self.out_dir / "samples.png", pairs_image(
            self.decoded(self.sample_rows), targets_at(self.cache, self.sample_rows, self.size)))

    def finish(self, history):
        """decoder.h5 of the last epoch, samples.png, and the loss and PSNR curves."""
        s, out_dir = self.settings, self.out_dir
        save_decoder(self.net, out_dir, s["epochs"], s["epochs"])
        self._save_samples()
        if history:
            save_image(out_dir / "loss.png", line_plot({s["loss"]: [h["loss"] for h in history]},
                                                       title="decoder training", ylabel=f"{s['loss']} loss"))
            curves = {"train (batches)": [h["psnr"] for h in history]}
            if self.test_rows:
                curves["held-out"] = [h["val_psnr"] for h in history]
            save_image(out_dir / "psnr.png", line_plot(curves, title="reconstruction", ylabel="PSNR dB"))
