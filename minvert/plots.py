"""Pictures minvert draws itself with Pillow: image panels with captions and line plots."""
import numpy as np
from PIL import Image, ImageDraw, ImageFont

CAPTION_H = 16


FONT_SIZE = 12  # px: captions stay legible when a page shows the figure at its own size


def _font():
    try:
        return ImageFont.load_default(size=FONT_SIZE)  # Pillow >= 10.1: a scalable font
    except TypeError:
        return ImageFont.load_default()  # older Pillow: its small bitmap font


def panel(images, captions=(), min_side=160, pad=4, columns=None):
    """Images side by side (rows of ``columns``), each upscaled (nearest) to at least
    ``min_side`` px and captioned underneath. images: uint8 (H, W, 3) arrays. Returns uint8."""
    scale = max(1, int(np.ceil(min_side / max(max(im.shape[:2]) for im in images))))
    tiles = [np.repeat(np.repeat(im, scale, 0), scale, 1) for im in images]
    th, tw = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    columns = columns or len(tiles)
    rows = (len(tiles) + columns - 1) // columns
    lines = max((len(c.split("\n")) for c in captions), default=0)
    cell_h = th + CAPTION_H * lines + pad
    canvas = Image.new("RGB", (columns * (tw + pad) + pad, rows * cell_h + pad), "white")
    draw, font = ImageDraw.Draw(canvas), _font()
    for i, tile in enumerate(tiles):
        x, y = pad + (i % columns) * (tw + pad), pad + (i // columns) * cell_h
        canvas.paste(Image.fromarray(tile), (x, y))
        if i < len(captions):
            draw.multiline_text((x, y + th + 2), captions[i], fill="black", font=font, spacing=4)
    return np.asarray(canvas)


def amplified_difference(a, b):
    """|a - b| averaged over channels, stretched so its 99th percentile is white.
    Returns (uint8 (H, W, 3) grey image, gain used)."""
    d = np.abs(a.astype(np.float64) - b.astype(np.float64)).mean(axis=2)
    top = np.percentile(d, 99) if d.any() else 1.0
    gain = 255.0 / max(top, 1e-9)
    grey = np.clip(d * gain, 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2), gain


def line_plot(series, title="", xlabel="epoch", ylabel="loss", size=(480, 300)):
    """A small line chart. series: {name: list of y values} (x = 1, 2, ...). Returns uint8.

    The legend sits in its own strip above the axes (it never covers a curve), the y label is
    written upright along the y axis, ticks show the range of both axes.
    """
    colors = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]
    w, h = size
    legend_rows = (len(series) + 1) // 2  # two entries per row
    left, right, top, bottom = 62, 14, 30 + 16 * legend_rows, 36
    canvas = Image.new("RGB", size, "white")
    draw, font = ImageDraw.Draw(canvas), _font()
    ys = [float(v) for vals in series.values() for v in vals if np.isfinite(v)]
    n = max((len(v) for v in series.values()), default=1)
    lo, hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    px = lambda i: left + (w - left - right) * (i / max(n - 1, 1))
    py = lambda v: top + (h - top - bottom) * (1 - (v - lo) / (hi - lo))
    draw.rectangle([left, top, w - right, h - bottom], outline=(160, 160, 160))
    for frac in (0.0, 0.5, 1.0):
        v = lo + frac * (hi - lo)
        draw.line([left - 3, py(v), left, py(v)], fill=(160, 160, 160))
        draw.text((18, py(v) - 6), f"{v:.3g}", fill="black", font=font)
    draw.text((left, h - bottom + 4), "1", fill="black", font=font)
    draw.text((w - right - 6 * len(str(n)), h - bottom + 4), str(n), fill="black", font=font)
    draw.text((left + (w - left - right) // 2 - 3 * len(xlabel), h - 16), xlabel, fill="black", font=font)
    label = Image.new("RGB", (max(8 * len(ylabel), 1), 14), "white")
    ImageDraw.Draw(label).text((0, 0), ylabel, fill="black", font=font)
    label = label.rotate(90, expand=True)
    canvas.paste(label, (2, max(top, top + (h - top - bottom - label.height) // 2)))
    draw.text((left, 6), title, fill="black", font=font)
    for k, (name, vals) in enumerate(series.items()):
        c = colors[k % len(colors)]
        pts = [(px(i), py(float(v))) for i, v in enumerate(vals) if np.isfinite(v)]
        if len(pts) > 1:
            draw.line(pts, fill=c, width=2)
        elif pts:
            draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=c)
        lx, ly = left + (k % 2) * (w - left - right) // 2, 24 + 16 * (k // 2)
        draw.line([lx, ly + 8, lx + 16, ly + 8], fill=c, width=2)
        draw.text((lx + 20, ly), name, fill=c, font=font)
    return np.asarray(canvas)
