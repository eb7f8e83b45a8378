"""Issue 26, part 1: a VGG classifier run fully convolutionally, and transform at any size."""
import numpy as np
import pytest

from minvert.datasets import CLASSES, make_dataset
from minvert.errors import MinvertError
from minvert.gradcheck import directional_check, rel_error
from minvert.images import resize_exact
from minvert.nets.classview import DownsampledClassVGG, area_matrix
from minvert.nets.fullyconv import FullyConvVGG, fully_convolutional
from minvert.nets.tiny import build_tiny
from minvert.nets.vgg import build_vgg
from minvert.transform import Multipliers, Objective, Settings, transform
from minvert.transform.optimize import prepare_image


def _narrow_vgg16(seed=0):
    """VGG-16's shape (13 convs, 5 pools, fc6 over a 7x7 map at 224²) with few channels, float64."""
    config = {"depth": 16, "widths": [4, 4, 8, 8, 8], "fc": [16, 12], "num_classes": 5}
    return build_vgg(config, rng=np.random.default_rng(seed), dtype=np.float64).freeze()


def _forward_backward(net, x, dout, taps=("relu3_1",), tap_grad=None):
    logits, acts = net.forward_taps(x, list(taps), output=True)
    dx = net.backward(dout, {taps[0]: tap_grad} if tap_grad is not None else None)
    return logits, acts[taps[0]], dx


def test_at_the_native_size_it_is_the_fixed_size_network_forward_and_backward():
    """224² on a VGG-16-shaped net: logits, a tapped activation and the gradient to the pixels
    (from the logits and from a tap) equal the fc network's to 1e-12, in float64."""
    rng = np.random.default_rng(1)
    net = _narrow_vgg16()
    x = rng.normal(size=(2, 3, 224, 224))
    dout = rng.normal(size=(2, 5))
    act_shape = net.forward_taps(x, ["relu3_1"], output=False)[1]["relu3_1"].shape
    tap_grad = rng.normal(size=act_shape)
    want = _forward_backward(net, x, dout, tap_grad=tap_grad)
    want = [a.copy() for a in want]  # the conv layers are shared: keep the fc net's results
    fcn = fully_convolutional(net)
    got = _forward_backward(fcn, x, dout, tap_grad=tap_grad)
    for a, b in zip(want, got):
        assert a.shape == b.shape
        assert np.max(np.abs(a - b)) <= 1e-12 * max(1.0, np.max(np.abs(a)))
    assert np.array_equal(net.predict(x), net.forward(x))  # the original still works as before
    assert isinstance(fcn, FullyConvVGG) and fcn.positions((224, 224)) == (1, 1)


def test_weights_are_shared_views_not_copies():
    net = _narrow_vgg16()
    fcn = fully_convolutional(net)
    assert np.shares_memory(fcn["fc6"].params["w"], net["fc6"].params["w"])
    assert fcn["fc6"].params["w"].shape == (16, 8, 7, 7)
    assert fcn["fc7"].params["w"].shape == (12, 16, 1, 1)


def test_larger_input_averages_the_classifier_head_over_every_window():
    """A reference computed independently: the fc head (as dense products) on each 7x7 window of
    the pool5 map of a 256x288 input, logits averaged, equals the fully convolutional forward."""
    rng = np.random.default_rng(2)
    net = _narrow_vgg16(3)
    x = rng.normal(size=(1, 3, 256, 288))
    pool5 = net.forward_taps(x, ["pool5"], output=False)[1]["pool5"]  # (1, 8, 8, 9)
    p = {name: net[name].params for name in ("fc6", "fc7", "fc8")}
    windows = []
    for i in range(2):
        for j in range(3):
            h = pool5[:, :, i:i + 7, j:j + 7].reshape(1, -1)  # CHW flatten, as Flatten does
            h = np.maximum(h @ p["fc6"]["w"].T + p["fc6"]["b"], 0)
            h = np.maximum(h @ p["fc7"]["w"].T + p["fc7"]["b"], 0)
            windows.append(h @ p["fc8"]["w"].T + p["fc8"]["b"])
    fcn = fully_convolutional(net)
    assert fcn.positions((256, 288)) == (2, 3)
    assert rel_error(fcn.forward(x), np.mean(windows, axis=0)) < 1e-12


def test_class_loss_gradient_at_a_non_square_size():
    """The class loss of transform's Objective through the fully convolutional net, at 96x160
    on a small VGG (native 64²), with content and style taps on: directional check, float64."""
    rng = np.random.default_rng(4)
    net = build_tiny("tiny-vgg", 8, labels=list(CLASSES), rng=rng).astype(np.float64).freeze()
    fcn = fully_convolutional(net)
    x0 = rng.uniform(-0.2, 1.2, size=(1, 3, 96, 160))
    x = x0 + 0.05 * rng.normal(size=x0.shape)
    settings = Settings(target=2, multipliers=Multipliers(content=3e-6, style=2e3))
    objective = Objective(fcn, x0, settings)
    total, values, logits, dx = objective(x)
    assert logits.shape == (1, 8) and fcn.positions((96, 160)) == (5, 13)
    assert set(values) == {"class", "content", "style"}
    _, _, err = directional_check(lambda: objective(x)[0], [x], [dx], h=1e-5, rng=rng)
    assert err < 1e-7
    only_class = Objective(fcn, x0, Settings(target=2))
    _, _, err = directional_check(lambda: only_class(x)[0], [x], [only_class(x)[3]], h=1e-5, rng=rng)
    assert err < 1e-7


def test_too_small_an_input_is_a_one_line_error():
    fcn = fully_convolutional(build_tiny("tiny-vgg", 8, labels=list(CLASSES)))
    with pytest.raises(MinvertError, match="at least 64 pixels on each side"):
        fcn.forward(np.zeros((1, 3, 48, 96), np.float32))
    with pytest.raises(MinvertError, match="fc layers"):
        fully_convolutional(fcn)


@pytest.fixture(scope="module")
def tiny():
    return build_tiny("tiny-vgg", 8, labels=list(CLASSES), rng=np.random.default_rng(0))


def _photo(shape, seed=5):
    """A non-square photo made of generated textures (the whole frame has structure)."""
    x, _, _ = make_dataset(4, size=max(shape), seed=seed)
    return np.concatenate([x[0], x[1]], axis=1)[:shape[0], :shape[1]].copy()


@pytest.mark.parametrize("shape", [(90, 150), (150, 90)])
def test_size_uses_the_whole_photo_and_keeps_masked_pixels_bit_identical(tiny, shape):
    """--size 128 on a 150x90 photo (both orientations): the whole photo at 128x77 (aspect kept,
    not a central square), masked pixels exactly the input's at that size, the mask resized
    with the same geometry as the image."""
    img = _photo(shape)
    H, W = shape
    mask = np.ones(shape)
    mask[: H // 2, : W // 3] = 0  # a black corner: kept
    summary = transform(tiny, img, Settings(target=5, iters=3), mask=mask, size=128,
                        log=lambda *_: None)
    result = summary["result"]
    resized = prepare_image(fully_convolutional(tiny), img, 128)
    assert max(result.shape[:2]) == 128 and result.shape == resized.shape
    assert abs(result.shape[0] / result.shape[1] - H / W) < 0.02
    kept = resize_exact(mask, result.shape[:2]) == 0
    assert kept.sum() > 0.1 * kept.size
    assert np.array_equal(result[kept], resized[kept])
    assert np.abs(result[~kept].astype(int) - resized[~kept]).sum() > 0  # something did change
    assert summary["settings"]["size"] == list(result.shape[:2])


def test_without_size_an_fc_vgg_still_takes_its_central_square(tiny):
    img = _photo((90, 150))
    assert prepare_image(tiny, img, log=lambda *_: None).shape[:2] == (64, 64)
    with pytest.raises(MinvertError, match="at least 64"):  # 64 long side: 38 short side
        transform(tiny, img, Settings(target=1, iters=1), size=64, log=lambda *_: None)


def test_transform_at_a_size_on_the_gpu_stand_in(strict_cupy, tiny):
    """The same masked, non-square --size run with the net on the (stand-in) GPU: the fully
    convolutional net is built from the device weights, masked pixels are kept exactly."""
    img = _photo((90, 150), seed=6)
    mask = np.ones(img.shape[:2])
    mask[60:, 100:] = 0
    net = build_tiny("tiny-vgg", 8, labels=list(CLASSES), rng=np.random.default_rng(0)).to(strict_cupy)
    summary = transform(net, img, Settings(target=4, iters=2, multipliers=Multipliers(tv=1e-3)),
                        mask=mask, size=112, log=lambda *_: None)
    result = summary["result"]
    resized = prepare_image(fully_convolutional(tiny), img, 112)
    kept = resize_exact(mask, result.shape[:2]) == 0
    assert result.shape == resized.shape and np.array_equal(result[kept], resized[kept])
    assert summary["probability_after"] > summary["probability_before"]


def test_area_matrix_is_the_block_mean_and_handles_fractions():
    A = area_matrix(4, 12, np, np.float64)
    x = np.arange(12.0)
    assert np.allclose(A @ x, x.reshape(4, 3).mean(axis=1))
    B = area_matrix(64, 150, np, np.float64)
    assert np.allclose(B.sum(axis=1), 1) and np.allclose(B.sum(axis=0), 64 / 150)


def test_downsampled_class_view_gradient_at_a_non_square_size():
    """The alternative: class loss on the 64² area view, content/style taps at 96x160; the
    logits are the fixed net's on the area-resampled input; directional check in float64."""
    rng = np.random.default_rng(7)
    net = build_tiny("tiny-vgg", 8, labels=list(CLASSES), rng=rng).astype(np.float64).freeze()
    view = DownsampledClassVGG(net)
    x0 = rng.uniform(-0.2, 1.2, size=(1, 3, 96, 160))
    x = x0 + 0.05 * rng.normal(size=x0.shape)
    small = area_matrix(64, 96, np, np.float64) @ x @ area_matrix(64, 160, np, np.float64).T
    assert rel_error(view.forward(x), net.forward(small)) < 1e-13
    objective = Objective(view, x0, Settings(target=2, multipliers=Multipliers(content=3e-6, style=2e3)))
    _, values, _, dx = objective(x)
    assert set(values) == {"class", "content", "style"}
    _, _, err = directional_check(lambda: objective(x)[0], [x], [dx], h=1e-5, rng=rng)
    assert err < 1e-7


def test_downsampled_view_transform_keeps_masked_pixels(tiny):
    img = _photo((150, 90), seed=8)
    mask = np.ones(img.shape[:2])
    mask[100:, :] = 0
    summary = transform(tiny, img, Settings(target=3, iters=2), mask=mask, size=120,
                        class_view="downsampled", log=lambda *_: None)
    result = summary["result"]
    resized = prepare_image(fully_convolutional(tiny), img, 120)
    kept = resize_exact(mask, result.shape[:2]) == 0
    assert result.shape == resized.shape and np.array_equal(result[kept], resized[kept])
    with pytest.raises(MinvertError, match="unknown class view"):
        transform(tiny, img, Settings(target=3, iters=1), size=120, class_view="crop")


def test_downsampled_view_with_taps_on_the_gpu_stand_in(strict_cupy):
    img = _photo((150, 100), seed=9)
    mask = np.ones(img.shape[:2])
    mask[:40] = 0
    net = build_tiny("tiny-vgg", 8, labels=list(CLASSES), rng=np.random.default_rng(0)).to(strict_cupy)
    settings = Settings(target=2, iters=2, multipliers=Multipliers(content=1e-3, style=1.0))
    result = transform(net, img, settings, mask=mask, size=120, class_view="downsampled",
                       log=lambda *_: None)["result"]
    kept = resize_exact(mask, result.shape[:2]) == 0
    resized = resize_exact(img, result.shape[:2])
    assert result.shape[0] == 120 and np.array_equal(result[kept], resized[kept])
