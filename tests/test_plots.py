"""Figures minvert draws: the legend stays outside the axes, the axis labels are drawn."""
import numpy as np

from minvert.plots import line_plot, panel


def _axes_top(img):
    """First row of the grey axes frame (160, 160, 160) drawn across the plot."""
    grey = np.all(img == 160, axis=2).sum(axis=1)  # (H,) frame pixels per row
    return int(np.argmax(grey > img.shape[1] // 2))


def test_legend_sits_above_the_axes_and_never_covers_a_curve():
    values = {"first": list(np.linspace(0, 1, 30)), "second": list(np.linspace(1, 0, 30)),
              "third": [0.5] * 30}
    a = line_plot(values, title="t", ylabel="PSNR dB")
    renamed = dict(zip(["other name", "b", "c"], values.values()))
    b = line_plot(renamed, title="t", ylabel="PSNR dB")
    changed = np.argwhere(np.any(a != b, axis=2))  # (k, 2) rows/cols where only the legend differs
    assert len(changed) and changed[:, 0].max() < _axes_top(a)
    # the curves reach the top of the range: they are drawn inside the frame, below the legend
    assert _axes_top(a) > 30


def test_axis_labels_are_drawn():
    a = line_plot({"loss": [3, 2, 1]}, xlabel="epoch", ylabel="loss")
    b = line_plot({"loss": [3, 2, 1]}, xlabel="iteration", ylabel="BCE")
    diff = np.argwhere(np.any(a != b, axis=2))
    rows, cols = diff[:, 0], diff[:, 1]
    assert (rows > a.shape[0] - 20).any()   # x label along the bottom
    assert (cols < 18).any()                # y label, upright, along the left edge


def test_panel_scales_small_images_and_leaves_room_for_captions():
    tiles = [np.zeros((32, 32, 3), np.uint8), np.full((64, 64, 3), 255, np.uint8)]
    out = panel(tiles, ["a\nb", "c"], min_side=128)
    assert out.shape[1] >= 2 * 128 and out.shape[0] >= 128 + 2 * 12
