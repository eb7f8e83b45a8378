"""What a transform run writes: the result image, a panel, summary.json, log.jsonl, snapshots.

``--out`` is a folder (result.png, panel.png, summary.json, log.jsonl, snapshot_NNNN.png in it)
or an image path ending in .png/.jpg/.jpeg, as neural-style's ``-output_image``: the result is
written there and the run's other files beside it, named after it (tiger.png: tiger.panel.png,
tiger.summary.json, tiger.log.jsonl, tiger.snapshot_NNNN.png).

Nothing of an earlier run is lost before the new one has produced its files: everything is
written into a hidden staging folder beside the results (``.minvert-partial-PID``) and moved
into place only at the end, summary.json last. A run killed or stopped by a full disk leaves the
earlier run whole; staging folders of runs whose process is gone are swept by the next run.

:class:`RunFolder` with no folder writes nothing, so the driver calls it unconditionally.
"""
import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import MinvertError
from ..images import save_image
from ..plots import amplified_difference, panel
from ..weights.project import _alive, atomic_write
from .colors import keep_original_colors

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_STAGING = ".minvert-partial-"


def result_image(pre, x, original, mask_arr, original_colors=False):
    """Network-space x -> uint8 image; with ``original_colors`` the photo's colours with the
    result's luminance; pixels outside the mask are the original's exactly."""
    img = pre.deprocess(x)[0]
    if original_colors:
        img = keep_original_colors(img, original)
    if mask_arr is not None:
        img = np.where((mask_arr == 0)[:, :, None], original, img)
    return img


def output_names(out):
    """(folder, {role: file name}) for ``--out`` (a folder, or an image path: module docstring).
    An existing folder named like an image (earlier minvert versions made them) stays a folder."""
    out = Path(out)
    if out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir():  # a folder of that name: a folder
        stem = out.stem
        return out.parent, {"result": out.name, "panel": f"{stem}.panel.png",
                            "summary": f"{stem}.summary.json", "log": f"{stem}.log.jsonl",
                            "snapshot": f"{stem}.snapshot_{{:04d}}.png"}
    return out, {"result": "result.png", "panel": "panel.png", "summary": "summary.json",
                 "log": "log.jsonl", "snapshot": "snapshot_{:04d}.png"}


def check_out(out):
    """Refuse an --out no run can write, before any work."""
    if not str(out).strip():
        raise MinvertError("--out is empty; give a folder (runs/tiger) or an image path (tiger.png)")
    suffix = Path(out).suffix.lower()
    if suffix in (".gif", ".bmp", ".tif", ".tiff", ".webp"):
        raise MinvertError(f"--out {out}: results are saved as PNG or JPEG; give a .png or .jpg "
                           "path, or a folder")


class RunFolder:
    """The outputs of one run (``out``: a folder or an image path), or nothing when None.

    An earlier run there is refused unless ``force``; with ``force`` it stays whole until
    :meth:`commit` replaces it (module docstring)."""

    def __init__(self, out, force):
        self.path = None if out is None else Path(out)
        if self.path is None:
            return
        check_out(out)
        self.folder, self.names = output_names(self.path)
        fixed = [self.names[k] for k in ("result", "panel", "summary", "log")]
        taken = [n for n in fixed if (self.folder / n).exists()]
        if taken and not force:
            raise MinvertError(f"{self.folder / taken[0]} is an earlier transform's; choose another "
                               "--out or pass --force")
        if self.folder.exists() and not self.folder.is_dir():
            raise MinvertError(f"--out {out}: {self.folder} is a file, not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        _sweep_stale(self.folder)
        self.staging = self.folder / f"{_STAGING}{os.getpid()}"
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir()
        self.snapshots = []

    def append_log(self, record):
        """One JSON line, appended without following a symlink (O_NOFOLLOW)."""
        if self.path is None:
            return
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.staging / self.names["log"], flags, 0o644)
        with os.fdopen(fd, "a") as f:
            f.write(json.dumps(record) + "\n")

    def snapshot(self, iteration, image_now):
        """Save ``image_now()`` (called only when there is a folder) as a numbered snapshot."""
        if self.path is not None:
            name = self.names["snapshot"].format(iteration)
            save_image(self.staging / name, image_now())
            self.snapshots.append(name)

    def write(self, original, result, summary, label, log):
        """The result, the panel (original, result, amplified difference) and summary.json,
        then everything moved into place (:meth:`commit`)."""
        if self.path is None:
            return
        diff, gain = amplified_difference(result, original)
        save_image(self.staging / self.names["result"], result)
        save_image(self.staging / self.names["panel"], panel(
            [original, result, diff],
            [f"original\np({label}) = {summary['probability_before']:.3f}",
             f"result\np({label}) = {summary['probability_after']:.3f}",
             f"|difference| x{gain:.1f}\nmean {summary['mean_abs_pixel_change']:.1f}/255"]))
        with atomic_write(self.staging / self.names["summary"]) as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
        self.commit()
        log(f"wrote {self.folder / self.names['result']} and beside it "
            f"{', '.join(self.names[k] for k in ('panel', 'summary', 'log'))}")

    def commit(self):
        """Move the new files over the old ones, summary.json last; then remove the earlier
        run's snapshots that this run did not write, and the staging folder."""
        order = [self.names["log"], *self.snapshots, self.names["panel"], self.names["result"],
                 self.names["summary"]]
        for name in order:
            os.replace(self.staging / name, self.folder / name)
        pattern = self.names["snapshot"].replace("{:04d}", "[0-9][0-9][0-9][0-9]")
        for old in self.folder.glob(pattern):
            if old.name not in self.snapshots:
                old.unlink(missing_ok=True)
        shutil.rmtree(self.staging, ignore_errors=True)

    def abort(self):
        """The run failed: drop what it staged; the earlier run stays as it was."""
        if self.path is not None:
            shutil.rmtree(self.staging, ignore_errors=True)


def _sweep_stale(folder):
    """Remove staging folders left by killed runs (their process is gone)."""
    for old in folder.glob(f"{_STAGING}*"):
        pid = old.name[len(_STAGING):]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)

