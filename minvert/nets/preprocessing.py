"""A network's input convention, stored in its weight file: how RGB uint8 images become its input.

A network sees ``(N, 3, H, W)`` floats in the convention of its weights (:class:`Preprocessing`):

- ``"caffe"`` (Keras VGG/ResNet, the original Caffe VGG): RGB -> BGR, 0..255, minus the mean
  pixel ``[103.939, 116.779, 123.68]`` (B, G, R order), no scaling;
- ``"torch"`` (torchvision): RGB / 255, minus mean ``(0.485, 0.456, 0.406)``, divided by std
  ``(0.229, 0.224, 0.225)``;
- ``"unit"`` (the small bundled models): RGB / 255, nothing else.
"""
import os
from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module, to_numpy
from ..errors import FormatError, MinvertError, ShapeError
from ..images import RESAMPLE, fit_to_network, load_image

_MODES = {  # mode -> (channel order, divisor of the 0..255 values, mean, std), per net channel
    "caffe": ("BGR", 1.0, (103.939, 116.779, 123.68), (1.0, 1.0, 1.0)),
    "torch": ("RGB", 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "unit": ("RGB", 255.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


@dataclass(frozen=True)
class Preprocessing:
    """How RGB uint8 images become a network's input, and back.

    mode: "caffe", "torch" or "unit" (module docstring). input_size: side of the square input.
    resize: shorter side before the centre crop (torchvision: 256), or None to resize the central
    square straight to input_size x input_size (for a square image what Keras ``load_img(target_size=
    ...)`` gives; Keras squashes other images, minvert never does). resample: filter for that resize
    (Keras ``load_img`` uses "nearest", torchvision "bilinear").
    Net value: ``x[c] = (img[order[c]] / divisor - mean[c]) / std[c]`` (divisor 1 or 255).
    """
    mode: str = "caffe"
    input_size: int = 224
    resize: int | None = None
    resample: str = "bilinear"

    def __post_init__(self):
        if not (1 <= self.input_size <= 2048
                and (self.resize is None or self.input_size <= self.resize <= 4096)):
            raise MinvertError(f"preprocessing input_size={self.input_size}, resize={self.resize}: "
                               "need 1 <= input_size <= 2048 and input_size <= resize <= 4096 "
                               "(or resize None)")
        if self.mode not in _MODES:
            raise MinvertError(f"unknown preprocessing mode {self.mode!r}; "
                               f"choose one of {', '.join(_MODES)}")
        if self.resample not in RESAMPLE:
            raise MinvertError(f"unknown resample {self.resample!r}; "
                               f"choose one of {', '.join(RESAMPLE)}")

    @property
    def channel_order(self):
        return _MODES[self.mode][0]

    def _affine(self, xp, dtype):
        _, divisor, mean, std = _MODES[self.mode]
        return divisor, xp.asarray(mean, dtype=dtype), xp.asarray(std, dtype=dtype)

    def preprocess(self, img, dtype="float32"):
        """uint8 (or float 0..255) (H, W, 3) or (N, H, W, 3) RGB -> (N, 3, H, W) net input.

        Stays on the array's device (NumPy or CuPy). Operations follow Keras / torchvision in the
        given dtype, so float32 results match theirs bit for bit.
        """
        xp = get_array_module(img)
        if img.ndim == 3:
            img = img[None]
        if img.ndim != 4 or img.shape[3] != 3:
            raise ShapeError(f"preprocess needs RGB (H, W, 3) or (N, H, W, 3), "
                             f"got shape {img.shape}")
        x = img.astype(dtype)
        if self.channel_order == "BGR":
            x = x[..., ::-1]
        divisor, mean, std = self._affine(xp, x.dtype)
        if divisor != 1.0:
            x = x / x.dtype.type(divisor)
        x = x - mean
        if self.mode == "torch":
            x = x / std
        return xp.ascontiguousarray(x.transpose(0, 3, 1, 2))  # (N, 3, H, W)

    def deprocess(self, x):
        """(N, 3, H, W) -> uint8 (N, H, W, 3) RGB, or (3, H, W) -> (H, W, 3); clipped, rounded."""
        x = to_numpy(x).astype(np.float64)
        if x.ndim not in (3, 4) or x.shape[-3] != 3:
            raise ShapeError(f"deprocess needs (N, 3, H, W) or (3, H, W), got shape {x.shape}")
        divisor, mean, std = self._affine(np, np.float64)
        x = np.moveaxis(x, -3, -1)  # (..., H, W, 3)
        img = (x * std + mean) * divisor
        if self.channel_order == "BGR":
            img = img[..., ::-1]
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)

    def prepare(self, img, dtype="float32"):
        """Image (array or file path) -> (1, 3, S, S) net input: its central square resized to
        input_size (torchvision weights: shorter side to ``resize``, central S x S), by
        :func:`minvert.images.fit_to_network`, the rule every command shares."""
        if isinstance(img, (str, os.PathLike)):
            img = load_image(img)
        img, _ = fit_to_network(to_numpy(img), None, self)  # minvert's one rule: crop, never squash
        return self.preprocess(img, dtype)

    def pixel_bounds(self):
        """(low, high): float64 (3,), net channel order: the input values of pixels 0 and 255."""
        divisor, mean, std = self._affine(np, np.float64)
        return (0.0 - mean) / std, (255.0 / divisor - mean) / std

    def to_dict(self):
        """JSON-able; the derived order/mean/std/scale are included so files are self-describing."""
        _, divisor, mean, std = _MODES[self.mode]
        return {"mode": self.mode, "input_size": self.input_size, "resize": self.resize,
                "resample": self.resample, "channel_order": self.channel_order,
                "scale": 1.0 / divisor, "mean": list(mean), "std": list(std)}

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict`; derived fields, when present, must agree with the mode."""
        if "mode" not in d:
            raise FormatError(f"preprocessing record has no 'mode' (keys: {', '.join(d)})")
        p = cls(mode=d["mode"], input_size=int(d.get("input_size", 224)),
                resize=None if d.get("resize") is None else int(d["resize"]),
                resample=d.get("resample", "bilinear"))
        ref = p.to_dict()
        for key in ("channel_order", "scale", "mean", "std"):
            if key in d and not (d[key] == ref[key] if key == "channel_order"
                                 else np.allclose(d[key], ref[key], rtol=1e-6, atol=0)):
                raise FormatError(f"preprocessing {key}={d[key]} does not match mode {p.mode!r} "
                                  f"(expects {ref[key]}); the file's record is inconsistent")
        return p


PRESETS = {  # conventions of the known weight sources
    "keras": Preprocessing("caffe", 224, None, "nearest"),
    "torchvision": Preprocessing("torch", 224, 256, "bilinear"),
}
