"""What a transform run writes: the result image, a panel, summary.json, log.jsonl, snapshots.

:class:`RunFolder` with no folder writes nothing, so the driver calls it unconditionally.
"""
import json
from pathlib import Path

import numpy as np

from ..errors import MinvertError
from ..images import save_image
from ..plots import amplified_difference, panel

OUTPUT_FILES = ("result.png", "panel.png", "summary.json", "log.jsonl")


def result_image(pre, x, original, mask_arr):
    """Network-space x -> uint8 image; pixels outside the mask are the original's exactly."""
    img = pre.deprocess(x)[0]
    if mask_arr is not None:
        img = np.where((mask_arr == 0)[:, :, None], original, img)
    return img


def save_png(path, img):
    save_image(path, img)


class RunFolder:
    """The output folder of one run (``out_dir``), or nothing when ``out_dir`` is None.

    A folder that already holds a run is refused unless ``force``; with ``force`` the old log
    and snapshots are removed so the log starts afresh."""

    def __init__(self, out_dir, force):
        self.path = None if out_dir is None else Path(out_dir)
        if self.path is None:
            return
        taken = [n for n in OUTPUT_FILES if (self.path / n).exists()]
        if taken and not force:
            raise MinvertError(f"{self.path} already holds a transform ({taken[0]}); choose another "
                               "--out or pass --force")
        self.path.mkdir(parents=True, exist_ok=True)
        for old in [self.path / "log.jsonl", *self.path.glob("snapshot_*.png")]:
            old.unlink(missing_ok=True)  # --force: start the log afresh

    def append_log(self, record):
        if self.path is not None:
            with open(self.path / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def snapshot(self, iteration, image_now):
        """Save ``image_now()`` (called only when there is a folder) as snapshot_NNNN.png."""
        if self.path is not None:
            save_png(self.path / f"snapshot_{iteration:04d}.png", image_now())

    def write(self, original, result, summary, label, log):
        """result.png, panel.png (original, result, amplified difference), summary.json."""
        if self.path is None:
            return
        diff, gain = amplified_difference(result, original)
        save_png(self.path / "result.png", result)
        save_png(self.path / "panel.png", panel(
            [original, result, diff],
            [f"original\np({label}) = {summary['probability_before']:.3f}",
             f"result\np({label}) = {summary['probability_after']:.3f}",
             f"|difference| x{gain:.1f}\nmean {summary['mean_abs_pixel_change']:.1f}/255"]))
        (self.path / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        log(f"wrote {self.path}/result.png, panel.png, summary.json, log.jsonl")
