"""Issue 23 items 1 and 5: one geometric rule (crop, never squash) for image and mask alike, and
for classify, transform and extract; masked pixels bit-identical on non-square photos."""
import numpy as np
import pytest
from PIL import Image

from minvert.classify import classify_files
from minvert.cli import main
from minvert.datasets import CLASSES
from minvert.images import describe_fit, fit_to_network
from minvert.nets.preprocessing import Preprocessing
from minvert.nets.tiny import build_tiny
from minvert.transform import Settings, transform
from minvert.weights.project import save

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def net():
    return build_tiny("tiny-vgg", 8, labels=list(CLASSES), rng=np.random.default_rng(0))


def _photo(h, w, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("pre", [Preprocessing("unit", 16, None, "bilinear"),
                                 Preprocessing("torch", 16, 20, "bilinear")])
@pytest.mark.parametrize("shape", [(30, 48), (48, 30), (32, 32)])
def test_image_and_mask_take_the_same_crop_and_resize(pre, shape):
    """A mask that is the image's own red channel comes out as the fitted image's red channel
    within one level (Pillow resizes uint8 in fixed point, float in float): the two went through
    the same steps; on noise a crop one pixel off would differ by tens of levels."""
    img = _photo(*shape)
    mask = img[:, :, 0] / 255.0
    fitted, fitted_mask = fit_to_network(img, mask, pre)
    assert fitted.shape == (16, 16, 3) and fitted_mask.shape == (16, 16)
    assert np.abs(fitted_mask * 255 - fitted[:, :, 0]).max() <= 1.0


def test_the_central_square_is_cut_by_hand_the_same():
    """Independent computation: slice the central square, resize with Pillow."""
    pre = Preprocessing("unit", 16, None, "bilinear")
    for img, square in ((_photo(30, 50), lambda a: a[:, 10:40]), (_photo(50, 30), lambda a: a[10:40])):
        expected = np.array(Image.fromarray(square(img)).resize((16, 16), Image.Resampling.BILINEAR))
        np.testing.assert_array_equal(fit_to_network(img, None, pre)[0], expected)
        np.testing.assert_array_equal(pre.prepare(img), pre.preprocess(expected))


def test_the_rule_is_said():
    pre = Preprocessing("unit", 64)
    line = describe_fit((400, 640), pre)
    assert "640x400" in line and "central 400x400 square" in line and "never squashes" in line
    assert "central" not in describe_fit((64, 64), pre)


def _mask_outside_and_patch(h, w):
    """White outside the central square (a band along the long side's start) plus, optionally,
    a small patch in the middle of the square."""
    mask = np.zeros((h, w))
    if w > h:
        mask[:, :100] = 1.0
    else:
        mask[:100, :] = 1.0
    return mask


@pytest.mark.parametrize("shape", [(400, 640), (640, 400)])
def test_masked_pixels_stay_bit_identical_on_non_square_photos(net, shape):
    """Issue 23 item 1: the white band lies outside the central square, a patch inside. Every
    pixel the fitted mask keeps (0) equals the fitted photo bit for bit, in particular the
    band where the old code (mask resized to the whole photo) let the first 10 columns change."""
    photo = _photo(*shape)
    mask = _mask_outside_and_patch(*shape)
    c = (shape[0] // 2, shape[1] // 2)
    mask[c[0] - 40:c[0] + 40, c[1] - 40:c[1] + 40] = 1.0
    fitted, fitted_mask = fit_to_network(photo, mask, net.preprocessing)
    for s in (Settings(target=0, iters=4), Settings(target=0, iters=4, jitter=4, optimizer="adam")):
        result = transform(net, photo, s, mask=mask, log=lambda *_: None)["result"]
        keep = fitted_mask == 0
        assert keep.sum() > 0.8 * keep.size
        np.testing.assert_array_equal(result[keep], fitted[keep])
        edge = (slice(None), slice(0, 12)) if shape[1] > shape[0] else (slice(0, 12), slice(None))
        np.testing.assert_array_equal(result[edge], fitted[edge])
        assert (result != fitted).any()  # the patch did change


@pytest.mark.parametrize("shape", [(400, 640), (640, 400)])
def test_a_mask_wholly_outside_the_square_changes_nothing_and_says_so(net, shape, tmp_path, capsys):
    photo, mask = tmp_path / "photo.png", tmp_path / "mask.png"
    Image.fromarray(_photo(*shape)).save(photo)
    Image.fromarray((_mask_outside_and_patch(*shape) * 255).astype(np.uint8)).save(mask)
    model = tmp_path / "tiny.h5"
    save(net, model)
    assert main(["transform", str(photo), "--model", str(model), "--target", "stripes", "--iters", "3",
                 "--mask", str(mask), "--out", str(tmp_path / "out")]) == 0
    assert "no pixel free" in capsys.readouterr().out
    fitted = fit_to_network(np.asarray(Image.open(photo)), None, net.preprocessing)[0]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "result.png")), fitted)


def test_classify_transform_and_extract_see_the_same_pixels(net, tmp_path):
    """Issue 23 item 5: the probability transform starts from is the one classify prints for the
    same non-square photo (both take its central square)."""
    photo = tmp_path / "wide.png"
    Image.fromarray(_photo(40, 90, seed=3)).save(photo)
    target = 2
    classified = classify_files([photo], net, top=8)[0]
    p_classify = next(c["probability"] for c in classified["top"] if c["index"] == target)
    assert "central 40x40 square" in classified["view"]
    summary = transform(net, np.asarray(Image.open(photo)), Settings(target=target, iters=1),
                        log=lambda *_: None)
    assert summary["probability_before"] == pytest.approx(p_classify, rel=1e-6)


def test_extract_targets_are_the_central_square(tmp_path):
    """reconstruct extract's decoder targets: the central square resized, as the encoder saw it."""
    from minvert.reconstruct.cache_file import read_cache
    from minvert.reconstruct.features import extract
    resnet = build_tiny("tiny-resnet", 8, labels=list(CLASSES), rng=np.random.default_rng(0))
    save(resnet, tmp_path / "enc.h5")
    img = _photo(40, 72, seed=4)
    Image.fromarray(img).save(tmp_path / "a.png")
    extract([tmp_path / "a.png"], str(tmp_path / "enc.h5"), tmp_path / "c.h5", target_size=16,
            log=lambda *_: None)
    targets = read_cache(tmp_path / "c.h5").targets
    view = Preprocessing("unit", 16, None, resnet.preprocessing.resample)
    np.testing.assert_array_equal(targets[0], fit_to_network(img, None, view)[0])
