"""The demo page's comparative words follow the numbers beside them (issue 23, item 9): the page
is rendered from synthetic reports where each comparison goes one way, then the other."""
import copy
import html
import re

import pytest

from minvert.demo.page import page


def _split(psnr, top1, ci=(0.05, 0.14)):
    return {"count": 160, "psnr": psnr, "ssim": 0.5, "mean_image": {"psnr": 12.0, "ssim": 0.42},
            "reidentification": {"top1": top1, "top5": 0.2},
            "reidentification_chance": {"top1": 1 / 640, "top5": 5 / 640},
            "ci95": {"psnr_gain": [5.0, 6.0], "reidentification_top1": list(ci)}}


def _method(psnr, distance):
    return {"psnr": psnr, "psnr_ci95": [psnr - 0.3, psnr + 0.3], "ssim": 0.4, "ssim_ci95": [0.39, 0.41],
            "reid_top1": 0.5, "reid_top1_ci95": [0.4, 0.6], "feature_distance": distance,
            "feature_distance_ci95": [distance - 0.01, distance + 0.01], "seconds_per_image": 0.1}


def _prediction(name):
    return {"image": f"{name}.png", "truth": name, "label": name, "probability": 0.9}


REPORT = {
    "seconds": 30.0,
    "classify": {m: {"correct": 1, "total": 1, "predictions": [_prediction(t)]}
                 for m, t in (("tiny-vgg-textures", "dots"), ("tiny-resnet-textures", "dots"),
                              ("tiny-resnet-shapes", "red-circle-on-dark"))},
    "transform": {"probability_before": 0.001, "probability_after": 0.999, "mean_abs_pixel_change": 5.3,
                  "tv_ratio": 0.43, "iterations": 30, "seconds": 2.0, "loss_per_iteration": [23.5, 0.37]},
    "reconstruct": {
        "evaluation": {"train": _split(20.3, 0.06), "held_out": _split(18.1, 0.08)},
        "concepts": {"colour": 0.92, "shape": 0.44, "background": 1.0, "class": 0.37, "count": 160,
                     "position_error_px": {"reconstruction": 7.3, "image_centre": 13.1},
                     "chance": {"colour": 0.25, "shape": 0.25, "background": 0.5, "class": 1 / 32}},
        "figure": {"pairs": "reconstruct/held_out.png", "mean_image": "reconstruct/mean_image.png"},
        "encoder": "tiny-resnet-shapes", "n_images": 640, "optimizer": "adam",
        "history": [{"loss": 0.6, "psnr": 14.2, "val_psnr": 15.4}, {"loss": 0.5, "psnr": 20.4, "val_psnr": 18.1}]},
    "invert": {"count": 40, "iters": 30, "refine_iters": 15, "figure": "reconstruct/comparison.png",
               "settings": {"alpha": 6.0},
               "methods": {name: _method(psnr, distance) for name, psnr, distance in (
                   ("mean image", 11.9, 0.93), ("decoder", 18.1, 0.63), ("optimisation", 11.9, 0.11),
                   ("decoder + refinement", 18.1, 0.10))}},
}


def _text(report):
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page(report, ["dots"]))).split())


def _edit(**changes):
    """A copy of REPORT with each key path (parts joined by '__') set to its value."""
    r = copy.deepcopy(REPORT)
    for path, value in changes.items():
        *parents, key = path.split("__")
        target = r
        for p in parents:
            target = target[p]
        target[key] = value
    return r


def test_training_images_compared_with_held_out_ones_both_ways():
    text = _text(REPORT)  # the case: PSNR higher, re-identification lower
    assert "higher PSNR than held-out ones (20.30 vs 18.10 dB)" in text
    assert "re-identified less often (6% vs 8%)" in text
    assert "come back better" not in text and "some of that is memorised" not in text
    text = _text(_edit(reconstruct__evaluation__train=_split(20.3, 0.12)))
    assert "re-identified more often (12% vs 8%): some of that is memorised" in text
    text = _text(_edit(reconstruct__evaluation__train=_split(17.0, 0.02)))
    assert "lower PSNR than held-out ones (17.00 vs 18.10 dB)" in text
    assert "did not favour the images it was trained on" in text


def test_transform_words_follow_its_numbers():
    text = _text(REPORT)
    assert "p(stripes) rose from 0.001 to 0.999" in text and "the result is smoother" in text
    assert "it fell from 23.5 to 0.37" in text
    text = _text(_edit(transform__tv_ratio=1.5, transform__probability_after=0.0002,
                       transform__loss_per_iteration=[1.0, 2.0]))
    assert "p(stripes) fell" in text and "the result is rougher" in text and "it rose from 1 to 2" in text


def test_concepts_place_and_verdict_follow_their_numbers():
    text = _text(REPORT)
    assert "recovers its main concepts" in text and "shape in 44% (chance 25%, above chance)" in text
    assert "rough place comes back too" in text and "6.1 dB closer to the originals" in text
    assert "is not anonymous" in text
    text = _text(_edit(reconstruct__concepts__shape=0.2, reconstruct__concepts__position_error_px={
        "reconstruction": 14.0, "image_centre": 13.1}))
    assert "recovers its main concepts" not in text and "(chance 25%, below chance)" in text
    assert "place does not come back" in text
    worse = _split(11.0, 0.001, ci=(0.0, 0.02))
    text = _text(_edit(reconstruct__evaluation__held_out=worse))
    assert "1.0 dB further from the originals" in text and "not clearly above chance" in text


@pytest.mark.parametrize("history,words", [
    ([{"psnr": 14.0, "val_psnr": 15.0}, {"psnr": 20.0, "val_psnr": 18.0}], ["Training PSNR rose",
                                                                          "2.00 dB above the held-out"]),
    ([{"psnr": 14.0, "val_psnr": 15.0}, {"psnr": 13.0, "val_psnr": 16.0}], ["Training PSNR fell",
                                                                          "3.00 dB below the held-out"]),
])
def test_curve_words_follow_the_history(history, words):
    text = _text(_edit(reconstruct__history=history))
    assert all(w in text for w in words), text[-900:]
    assert ("memorisation" in text) == (history[-1]["psnr"] > history[-1]["val_psnr"])


def test_the_page_says_which_optimiser_trained_the_decoder_and_why():
    text = _text(REPORT)
    assert "trained with Adam" in text and "not the paper's Adadelta" in text and "4.5e-4" in text
    assert "trained with Adadelta" in _text(_edit(reconstruct__optimizer="adadelta"))
