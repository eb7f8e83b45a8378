"""``--original-colors``: keep the photo's colours and take only the luminance of the result.

As neural-style's ``-original_colors 1``: both images go to YIQ (NTSC), the result's Y is kept
with the photo's I and Q, and the pair comes back to RGB. A grey photo (R = G = B) has I = Q = 0,
so its result stays grey. Works on NumPy and CuPy arrays alike.
"""
import numpy as np

from ..backend import get_array_module

RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                       [0.595716, -0.274453, -0.321263],
                       [0.211456, -0.522591, 0.311135]])  # rows: Y, I, Q; I and Q rows sum to 0
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)


def keep_original_colors(result, original):
    """uint8 (H, W, 3) result and photo -> uint8 (H, W, 3): the result's luminance (Y) with the
    photo's chrominance (I, Q), clipped to 0..255 and rounded."""
    xp = get_array_module(result)
    to_yiq = xp.asarray(RGB_TO_YIQ.T)  # (3, 3): pixels (…, 3) @ M.T
    y = result.astype(np.float64) @ to_yiq[:, :1]        # (H, W, 1) the result's luminance
    iq = original.astype(np.float64) @ to_yiq[:, 1:]     # (H, W, 2) the photo's colours
    rgb = xp.concatenate([y, iq], axis=2) @ xp.asarray(YIQ_TO_RGB.T)  # (H, W, 3)
    return xp.clip(xp.rint(rgb), 0, 255).astype(np.uint8)
