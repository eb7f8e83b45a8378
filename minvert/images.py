"""Image files in and out, resizing and cropping, masks.

Images outside a network are NumPy ``uint8`` arrays ``(H, W, 3)`` in RGB order, 0..255. How a
network's weights expect them to be turned into its input is :mod:`minvert.nets.preprocessing`.

Reading: PNG, JPEG, BMP, TIFF, GIF and WebP files only (READ_FORMATS), up to MAX_PIXELS. The
EXIF orientation is applied; the first frame of an animation is used; colour profiles (ICC) are
ignored. Transparent images are composited on white (a dropped
alpha channel exposes whatever colour happens to sit under transparent pixels, often black).
16-bit greyscale is scaled (65535 -> 255), float images in [0, 1] are multiplied by 255.
"""
import os
import secrets
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .backend import to_numpy
from .errors import DTypeError, FormatError, MinvertError, ShapeError
from .regular_files import check_regular

RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
            "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
            "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING}
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
READ_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP")  # JPEG includes MPO (camera files)
MAX_PIXELS = 50_000_000  # a 50-megapixel photo decodes, converts and resizes well under 1 GB
_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def _one_line(e):
    return " ".join(str(e).split()) or type(e).__name__


def _open(path):
    """Open, decode and EXIF-orient ``path``; every failure becomes a one-line MinvertError.

    Only the formats in READ_FORMATS are tried, whatever the file name or content claims (Pillow
    would otherwise hand e.g. a PostScript file to Ghostscript). Pillow's decompression-bomb
    warning (over ``Image.MAX_IMAGE_PIXELS``, ~89 M pixels) is an error here, raised from the
    header before any pixel is decoded."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        check_regular(path, "an image file")  # a pipe would block, a device never end
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path, formats=READ_FORMATS)
            if im.width * im.height > MAX_PIXELS:  # from the header, before decoding
                raise FormatError(f"{path} has {im.width}x{im.height} pixels, more than minvert "
                                  f"reads ({MAX_PIXELS // 10**6} megapixels); scale it down first")
            im.load()  # decode now: truncation only shows up here
            return ImageOps.exif_transpose(im, in_place=True) or im
    except MinvertError:
        raise
    except FileNotFoundError:
        raise MinvertError(f"no such image file: {path}; check the path") from None
    except IsADirectoryError:
        raise MinvertError(f"{path} is a directory; give an image file") from None
    except PermissionError:
        raise MinvertError(f"cannot read {path}: permission denied") from None
    except UnidentifiedImageError:
        raise FormatError(f"{path} is not an image minvert reads, whatever its name says; give "
                          "a PNG, JPEG, BMP, TIFF, GIF or WebP file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise FormatError(f"{path} is too large to decode safely ({_one_line(e)})") from None
    except Exception as e:  # truncated or corrupt data: OSError, SyntaxError, zlib/struct errors
        raise FormatError(f"{path} is truncated or corrupt ({_one_line(e)}); "
                          "re-export or re-download the image") from None


def _to_rgb(im):
    """Any Pillow image -> uint8 (H, W, 3) RGB, following the rules in the module docstring."""
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in _ALPHA_MODES:
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return np.array(Image.alpha_composite(white, im).convert("RGB"))
    if im.mode.startswith("I") or im.mode == "F":
        grey = _scale_to_8bit(np.asarray(im), im.mode)
        return np.repeat(grey[:, :, None], 3, axis=2)  # (H, W, 3)
    try:
        return np.array(im if im.mode == "RGB" else im.convert("RGB"))  # one copy, not two
    except ValueError as e:
        raise FormatError(f"cannot convert colour mode {im.mode} to RGB ({_one_line(e)}); "
                          "save the image as RGB first") from None


def _scale_to_8bit(a, mode):
    """Greyscale of mode I;16*, I or F -> uint8 (H, W).

    I;16: x / 257 (65535 -> 255). I (32-bit int): the same when it lies in [0, 65535] (16-bit files
    opened as I), else its min..max is stretched to 0..255. F: x * 255 when in [0, 1], as is
    when in [0, 255], else stretched.
    """
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if mode.startswith("I;16") or (mode == "I" and lo >= 0 and hi <= 65535):
        # round(x / 257) in integers (no ties: 65535 = 255 * 257), half the memory of float64
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    a = a.astype(np.float64)
    if mode == "F" and lo >= 0 and hi <= 1:
        a = a * 255.0
    elif not (mode == "F" and lo >= 0 and hi <= 255):
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def load_image(path):
    """Read an image file -> uint8 (H, W, 3) RGB, EXIF orientation applied, alpha on white."""
    return _to_rgb(_open(path))


def _as_uint8(img, what="image"):
    """uint8 or float in [0, 255] (clipped, rounded) -> uint8, as a NumPy array."""
    img = to_numpy(img)
    if img.dtype == np.uint8:
        return img
    if img.dtype == bool or not (np.issubdtype(img.dtype, np.floating)
                                 or np.issubdtype(img.dtype, np.integer)):
        raise DTypeError(f"{what} has dtype {img.dtype}; give uint8 or float values in [0, 255]")
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def save_image(path, img):
    """Write uint8/float [0, 255] (H, W, 3) or (H, W) as PNG or JPEG (from the extension).

    Written to a temporary file in the same folder, then renamed over ``path`` (``os.replace``),
    so a crash never leaves a half-written image behind and readers see the old or the new file.
    """
    path = Path(path)
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise FormatError(f"cannot save {path}: unknown extension {path.suffix!r}; "
                          "use .png, .jpg or .jpeg")
    img = _as_uint8(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ShapeError(f"cannot save an array of shape {img.shape} as an image; "
                         "give (H, W, 3) RGB or (H, W) greyscale")
    if not path.parent.is_dir():
        raise MinvertError(f"cannot save {path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:  # normal permissions (umask), unlike tempfile's 0600
            options = {"quality": 95} if fmt == "JPEG" else {}
            Image.fromarray(np.ascontiguousarray(img)).save(f, format=fmt, **options)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _pair(size, what):
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    if len(size) != 2:
        raise ShapeError(f"{what} must be an int or (height, width), got {size!r}")
    return int(size[0]), int(size[1])


def resize_exact(img, size, resample="bilinear"):
    """(H, W[, C]) -> (h, w[, C]) with Pillow (antialiased when shrinking, like torchvision on PIL).

    uint8 stays uint8; float images are resized per channel in float32 and keep their dtype.
    """
    h, w = _pair(size, "size")
    if resample not in RESAMPLE:
        raise MinvertError(f"unknown resample {resample!r}; choose one of {', '.join(RESAMPLE)}")
    img = to_numpy(img)
    if img.ndim not in (2, 3):
        raise ShapeError(f"resize needs an (H, W) or (H, W, C) image, got shape {img.shape}")
    if img.shape[:2] == (h, w):
        return img.copy()
    if img.dtype == np.uint8 and (img.ndim == 2 or img.shape[2] == 3):  # Pillow L / RGB
        return np.array(Image.fromarray(img).resize((w, h), RESAMPLE[resample]))
    planes = img[:, :, None] if img.ndim == 2 else img
    out = np.stack([np.asarray(Image.fromarray(planes[:, :, c].astype(np.float32))
                               .resize((w, h), RESAMPLE[resample]))
                    for c in range(planes.shape[2])], axis=2)  # (h, w, C)
    if img.dtype == np.uint8:
        out = np.clip(np.rint(out), 0, 255)
    out = out.astype(img.dtype if img.dtype == np.uint8 or np.issubdtype(img.dtype, np.floating)
                     else np.float32)
    return out[:, :, 0] if img.ndim == 2 else out


def resize(img, size, resample="bilinear"):
    """size int: the shorter side becomes ``size``, the longer ``int(size * long / short)``
    (torchvision's rule); size (h, w): exactly that."""
    if not isinstance(size, (int, np.integer)):
        return resize_exact(img, size, resample)
    H, W = img.shape[:2]
    short, long = min(H, W), max(H, W)
    new_long = int(size * long / short)
    return resize_exact(img, (size, new_long) if H <= W else (new_long, size), resample)


def center_crop(img, size):
    """(H, W[, C]) -> (h, w[, C]) from the centre, offsets round((H - h) / 2) as torchvision."""
    h, w = _pair(size, "crop size")
    H, W = img.shape[:2]
    if h > H or w > W:
        raise ShapeError(f"cannot crop {h}x{w} from a {H}x{W} image; resize it first")
    top, left = int(round((H - h) / 2.0)), int(round((W - w) / 2.0))
    return img[top:top + h, left:left + w].copy()


def fit_steps(shape, pre, size=None):
    """The geometric steps that bring an (H, W) image to what a network sees, as a list of
    ("crop", (h, w)) and ("resize", (h, w)) applied in order (:func:`fit_to_network`).

    minvert's one rule for every command (classify, transform, reconstruct extract): nothing is
    ever squashed. size None: the network's square input S = pre.input_size, from the central
    square of the image (torchvision weights, ``pre.resize`` set: the shorter side resized to
    ``pre.resize`` first, then the central S x S, as torchvision does). size N: the whole image,
    its long side N, the aspect ratio kept (a fully convolutional network).
    """
    H, W = shape
    if size is not None:
        scale = size / max(H, W)
        return [("resize", (max(1, round(H * scale)), max(1, round(W * scale))))]
    S = pre.input_size
    if pre.resize is not None:
        short = pre.resize
        new_long = int(short * max(H, W) / min(H, W))  # torchvision's rule, as :func:`resize`
        return [("resize", (short, new_long) if H <= W else (new_long, short)), ("crop", (S, S))]
    side = min(H, W)
    return ([("crop", (side, side))] if H != W else []) + [("resize", (S, S))]


def _apply_steps(a, steps, resample):
    for kind, (h, w) in steps:
        if kind == "crop":
            a = center_crop(a, (h, w)) if a.shape[:2] != (h, w) else a
        else:
            a = resize_exact(a, (h, w), resample) if a.shape[:2] != (h, w) else a
    return a


def fit_to_network(img, mask, pre, size=None):
    """(img, mask) -> (img, mask) as the network sees them: the SAME crops and resizes
    (:func:`fit_steps`) for both, so a mask stays on the pixels it was drawn on.

    img: (H, W, 3) uint8, resized with ``pre.resample``; mask: float (H', W') in [0, 1] or None,
    first brought to (H, W) if drawn at another size, then resized bilinearly (soft edges stay
    soft; a pixel is 0 only where all its source pixels are 0). pre: anything with input_size,
    resize and resample (a :class:`~minvert.nets.preprocessing.Preprocessing`).
    """
    shape = tuple(img.shape[:2])
    steps = fit_steps(shape, pre, size)
    img = _apply_steps(img, steps, pre.resample)
    if mask is not None:
        mask = to_numpy(mask).astype(np.float64)
        if mask.shape != shape:  # drawn at another size: stretched over the whole image first
            mask = resize_exact(mask, shape)
        mask = np.clip(_apply_steps(mask, steps, "bilinear"), 0.0, 1.0)
    return img, mask


def describe_fit(shape, pre, size=None):
    """One line saying what :func:`fit_to_network` does to an (H, W) image, for the output."""
    H, W = shape
    parts = []
    for kind, (h, w) in fit_steps(shape, pre, size):
        parts.append(f"its central {w}x{h}" if kind == "crop" else f"resized to {w}x{h}")
    if size is None and pre.resize is None and H != W:
        parts[0] = f"its central {min(H, W)}x{min(H, W)} square"
    how = ", ".join(parts) or "as it is"
    return f"the image is {W}x{H}: the network sees {how} (minvert crops, never squashes)"


def load_mask(path, shape):
    """Greyscale mask file -> float64 (H, W) in [0, 1], white (1) = may change, resized to shape.

    Colour masks are reduced to luma (ITU-R 601); transparent areas count as white, as in
    :func:`load_image`. Resizing is bilinear so that mask edges stay soft.
    """
    h, w = _pair(shape, "mask shape")
    rgb = load_image(path)
    grey = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float64) / 255.0
    mask = np.clip(resize_exact(grey, (h, w)), 0.0, 1.0)
    if not mask.any():
        raise MinvertError(f"mask {path} is black everywhere, so no pixel may change; paint white "
                           "where the image may change")
    return mask
