"""Load any folder of class sub-folders (``root/<class>/<image>``) as a labelled dataset."""
import os
import warnings

import numpy as np
from PIL import Image

from ..errors import MinvertError


def load_image_folder(root, size=None, warn=None):
    """Read ``root/<class>/<image>`` for every sub-folder (class names sorted).

    Any file Pillow can read is converted to RGB (and resized to size x size with
    bilinear filtering if size is given, ignoring the aspect ratio). Hidden files and
    folders (starting with '.') are ignored; files at the top level are ignored.
    Files Pillow cannot read are skipped, listed in a warning (through ``warn(message)`` when
    given, e.g. a CLI's print, else :func:`warnings.warn`) and returned.

    Returns ``(images uint8 (N, H, W, 3), labels int64 (N,), class_names, skipped)``.
    Raises MinvertError for a missing or empty folder, a single class, images of
    different sizes with size=None, or no readable image at all.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise MinvertError(f"image folder {root} does not exist (or is not a folder)")
    class_names = sorted(d for d in os.listdir(root)
                         if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    if not class_names:
        raise MinvertError(f"{root} has no class sub-folders; expected {root}/<class>/<images>")
    if len(class_names) == 1:
        raise MinvertError(f"{root} has only one class folder ({class_names[0]}); "
                           f"a classifier needs at least two")
    resample = getattr(Image, "Resampling", Image).BILINEAR
    images, labels, skipped = [], [], []
    for label, name in enumerate(class_names):
        folder = os.path.join(root, name)
        for fname in sorted(os.listdir(folder)):
            path = os.path.join(folder, fname)
            if fname.startswith(".") or not os.path.isfile(path):
                continue
            try:
                with Image.open(path) as im:
                    im = im.convert("RGB")
                    if size is not None:
                        im = im.resize((int(size), int(size)), resample)
                    images.append(np.asarray(im, dtype=np.uint8))
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
                skipped.append(path)  # not an image, truncated, or unsupported
                continue
            labels.append(label)
    if skipped:
        shown = ", ".join(skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
        message = f"warning: skipped {len(skipped)} unreadable file(s) in {root}: {shown}"
        warn(message) if warn else warnings.warn(message, stacklevel=2)
    if not images:
        raise MinvertError(f"no readable images in {root} ({len(skipped)} file(s) skipped)")
    shapes = sorted({im.shape for im in images})
    if len(shapes) > 1:
        raise MinvertError(f"images in {root} have {len(shapes)} different sizes (e.g. {shapes[0][:2]} "
                           f"and {shapes[-1][:2]}); pass size= to resize them all")
    return np.stack(images), np.asarray(labels, dtype=np.int64), class_names, skipped
