"""``--original-colors``: keep the photo's colours and take only the luminance of the result.

As neural-style's ``-original_colors 1``: in YIQ (NTSC), the result's Y with the photo's I and Q,
back to RGB. YIQ -> RGB maps (Y, I, Q) to Y * (1, 1, 1) + (terms in I and Q alone), so swapping Y
is adding the change in luminance to every channel of the photo:

    out = photo + (Y(result) - Y(photo)) * (1, 1, 1),   Y = 0.299 R + 0.587 G + 0.114 B

computed that way, a grey photo (R = G = B) stays exactly grey. Works on NumPy and CuPy arrays.
"""
import numpy as np

from ..backend import get_array_module

LUMA = (0.299, 0.587, 0.114)  # the Y row of RGB -> YIQ (and of YUV)


def keep_original_colors(result, original):
    """uint8 (H, W, 3) result and photo -> uint8 (H, W, 3): the result's luminance with the
    photo's chrominance, clipped to 0..255 and rounded."""
    xp = get_array_module(result)
    luma = xp.asarray(LUMA, dtype=np.float64)
    photo = original.astype(np.float64)
    change = result.astype(np.float64) @ luma - photo @ luma  # (H, W) the change in Y
    return xp.clip(xp.rint(photo + change[:, :, None]), 0, 255).astype(np.uint8)
