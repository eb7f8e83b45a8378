import json
import os

import numpy as np
import pytest
from PIL import Image

from minvert import images
from minvert.backend import gpu_available
from minvert.errors import DTypeError, FormatError, MinvertError, ShapeError
from minvert.images import center_crop, load_image, load_mask, resize, resize_exact, save_image
from minvert.nets.preprocessing import PRESETS, Preprocessing

RNG = np.random.default_rng(0)


def one_line_error(exc_type, fn, *args):
    with pytest.raises(exc_type) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg and msg
    return msg


# ---------------------------------------------------------------- reading every mode

def test_greyscale_L(tmp_path):
    a = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    Image.fromarray(a, "L").save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.shape == (5, 7, 3) and img.dtype == np.uint8 and img.flags.writeable
    assert all(np.array_equal(img[:, :, c], a) for c in range(3))


def test_palette_with_transparency_is_on_white(tmp_path):
    im = Image.new("P", (4, 2))
    im.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    im.putdata([0, 1, 1, 1, 0, 0, 1, 1])
    im.save(tmp_path / "p.png", transparency=0)  # palette index 0 is fully transparent
    assert Image.open(tmp_path / "p.png").mode == "P"
    img = load_image(tmp_path / "p.png")
    assert img.shape == (2, 4, 3)
    assert img[0, 0].tolist() == [255, 255, 255] and img[0, 1].tolist() == [200, 10, 20]


def test_rgba_and_la_composited_on_white(tmp_path):
    a = np.zeros((1, 3, 4), np.uint8)
    a[0, :, :3] = (0, 100, 200)
    a[0, :, 3] = (0, 255, 128)
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png").astype(int)
    assert img[0, 0].tolist() == [255, 255, 255]
    assert img[0, 1].tolist() == [0, 100, 200]
    expect = np.array([0, 100, 200]) * 128 / 255 + 255 * 127 / 255
    assert np.abs(img[0, 2] - expect).max() <= 1
    Image.fromarray(np.array([[[50, 0], [50, 255]]], np.uint8), "LA").save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png")[0].tolist() == [[255] * 3, [50] * 3]


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (16, 16), (255, 0, 0, 0)).save(tmp_path / "c.jpg", quality=95)  # cyan
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    img = load_image(tmp_path / "c.jpg").astype(int)
    assert img.shape == (16, 16, 3)
    assert np.abs(img - np.array([0, 255, 255])).max() <= 3


def test_16bit_greyscale_png_is_scaled(tmp_path):
    a = np.array([[0, 257, 257 * 100], [65535, 65535 // 2, 1000]], np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I;16")
    img = load_image(tmp_path / "g16.png")
    assert img[:, :, 0].tolist() == [[0, 1, 100], [255, 127, 4]]  # round(x / 257): 127.498, 3.89


def test_32bit_int_and_float_tiff(tmp_path):
    Image.fromarray(np.array([[0, 65535]], np.int32), "I").save(tmp_path / "i.tif")
    assert load_image(tmp_path / "i.tif")[0, :, 0].tolist() == [0, 255]
    Image.fromarray(np.array([[-10, 90]], np.int32), "I").save(tmp_path / "wide.tif")
    assert load_image(tmp_path / "wide.tif")[0, :, 0].tolist() == [0, 255]  # stretched
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F").save(tmp_path / "f.tif")
    assert Image.open(tmp_path / "f.tif").mode == "F"
    assert load_image(tmp_path / "f.tif")[0, :, 0].tolist() == [0, 128, 255]
    Image.fromarray(np.array([[3.0, 200.0]], np.float32), "F").save(tmp_path / "f255.tif")
    assert load_image(tmp_path / "f255.tif")[0, :, 0].tolist() == [3, 200]


def test_exif_orientation_applied(tmp_path):
    a = np.zeros((8, 16, 3), np.uint8)  # stored 16 wide, 8 high: left half red, right half blue
    a[:, :8] = (255, 0, 0)
    a[:, 8:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    Image.fromarray(a).save(tmp_path / "r.jpg", exif=exif, quality=95)
    img = load_image(tmp_path / "r.jpg").astype(int)
    assert img.shape == (16, 8, 3)  # now 8 wide, 16 high; the stored left half is at the top
    assert np.abs(img[1:7, 2:6] - [255, 0, 0]).max() < 40
    assert np.abs(img[10:15, 2:6] - [0, 0, 255]).max() < 40


# ---------------------------------------------------------------- bad files

def test_text_file_named_png(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("hello, not an image\n")
    msg = one_line_error(FormatError, load_image, p)
    assert "notes.png" in msg and "not an image" in msg


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_truncated_image(tmp_path, ext):
    p = tmp_path / f"t.{ext}"
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    msg = one_line_error(FormatError, load_image, p)
    assert f"t.{ext}" in msg and "truncated" in msg


def test_missing_file_and_directory(tmp_path):
    msg = one_line_error(MinvertError, load_image, tmp_path / "nope.png")
    assert "nope.png" in msg and "no such" in msg
    one_line_error(MinvertError, load_image, tmp_path)
    (tmp_path / "m.png").write_bytes(b"\x00" * 10)
    one_line_error(FormatError, load_mask, tmp_path / "m.png", (4, 4))


# ---------------------------------------------------------------- saving

def test_save_roundtrip_png_and_grey(tmp_path):
    a = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    save_image(tmp_path / "x.png", a)
    assert np.array_equal(load_image(tmp_path / "x.png"), a)
    save_image(tmp_path / "g.png", a[:, :, 0])
    assert Image.open(tmp_path / "g.png").mode == "L"
    assert np.array_equal(load_image(tmp_path / "g.png")[:, :, 2], a[:, :, 0])
    save_image(tmp_path / "x.JPEG", a)
    assert Image.open(tmp_path / "x.JPEG").format == "JPEG"


def test_save_float_is_clipped_and_rounded(tmp_path):
    f = np.array([[[-3.0, 0.4, 1.6], [254.6, 300.0, 128.2]]])
    save_image(tmp_path / "f.png", f)
    assert load_image(tmp_path / "f.png").tolist() == [[[0, 0, 2], [255, 255, 128]]]


def test_save_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    old = RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    save_image(target, old)
    umask = os.umask(0)
    os.umask(umask)
    assert (target.stat().st_mode & 0o777) == (0o666 & ~umask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]  # no temporary left

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise OSError("disk full")
    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError):
        save_image(target, np.zeros((4, 4, 3), np.uint8))
    monkeypatch.undo()
    assert np.array_equal(load_image(target), old)  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


def test_save_errors(tmp_path):
    a = np.zeros((4, 4, 3), np.uint8)
    one_line_error(FormatError, save_image, tmp_path / "x.gifx", a)
    one_line_error(ShapeError, save_image, tmp_path / "x.png", np.zeros((4, 4, 2)))
    one_line_error(DTypeError, save_image, tmp_path / "x.png", np.zeros((4, 4), bool))
    one_line_error(MinvertError, save_image, tmp_path / "no" / "x.png", a)


# ---------------------------------------------------------------- geometry

def test_resize_shorter_side_and_exact():
    land = np.zeros((300, 400, 3), np.uint8)
    assert resize(land, 256).shape == (256, 341, 3)  # int(256 * 400 / 300): torchvision's rule
    assert resize(land.transpose(1, 0, 2), 256).shape == (341, 256, 3)
    assert resize(land, (10, 20)).shape == (10, 20, 3)
    small = resize_exact(land, (7, 9), "nearest")
    assert small.shape == (7, 9, 3) and small.flags.writeable
    const = np.full((9, 12, 2), 0.25)
    out = resize_exact(const, (4, 5))
    assert out.dtype == np.float64 and out.shape == (4, 5, 2) and np.allclose(out, 0.25)
    with pytest.raises(MinvertError):
        resize(land, 10, resample="cubic-ish")


def test_resize_uint8_matches_pillow():
    a = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    want = np.asarray(Image.fromarray(a).resize((15, 10), Image.Resampling.BILINEAR))
    assert np.array_equal(resize_exact(a, (10, 15)), want)


def test_center_crop_offsets():
    a = np.arange(7 * 8).reshape(7, 8)
    c = center_crop(a, (4, 3))  # top round(1.5) = 2, left round(2.5) = 2 (torchvision's rounding)
    assert np.array_equal(c, a[2:6, 2:5])
    assert center_crop(a, 7).shape == (7, 7)
    with pytest.raises(ShapeError):
        center_crop(a, 9)


def test_load_mask(tmp_path):
    m = np.zeros((20, 20), np.uint8)
    m[:, :10] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    mask = load_mask(tmp_path / "m.png", (10, 6))
    assert mask.shape == (10, 6) and mask.dtype == np.float64
    assert mask.min() >= 0 and mask.max() <= 1
    assert np.allclose(mask[:, 0], 1) and np.allclose(mask[:, -1], 0)


# ---------------------------------------------------------------- preprocessing conventions

PIXEL = np.array([[[10, 20, 30]]], np.uint8)  # one pixel, (R, G, B) = (10, 20, 30)


def test_caffe_by_hand():
    x = Preprocessing("caffe").preprocess(PIXEL, dtype="float64")
    assert x.shape == (1, 3, 1, 1)
    assert np.allclose(x.ravel(), [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=0, atol=1e-12)


def test_torch_and_unit_by_hand():
    x = Preprocessing("torch").preprocess(PIXEL, dtype="float64").ravel()
    want = [(10 / 255 - 0.485) / 0.229, (20 / 255 - 0.456) / 0.224, (30 / 255 - 0.406) / 0.225]
    assert np.allclose(x, want, rtol=0, atol=1e-12)
    x = Preprocessing("unit").preprocess(PIXEL, dtype="float64").ravel()
    assert np.allclose(x, [10 / 255, 20 / 255, 30 / 255], rtol=0, atol=1e-15)


def test_caffe_float32_matches_keras_formula():
    img = RNG.integers(0, 256, (2, 5, 4, 3), dtype=np.uint8)
    x = Preprocessing("caffe").preprocess(img)
    keras = img.astype(np.float32)[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)
    assert x.dtype == np.float32 and x.flags.c_contiguous
    assert np.array_equal(x, keras.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("mode", ["caffe", "torch", "unit"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_roundtrip_and_bounds(mode, dtype):
    p = Preprocessing(mode, input_size=8)
    img = RNG.integers(0, 256, (2, 6, 5, 3), dtype=np.uint8)
    x = p.preprocess(img, dtype)
    assert x.shape == (2, 3, 6, 5) and x.dtype == dtype
    assert np.array_equal(p.deprocess(x), img)
    assert np.array_equal(p.deprocess(x[1]), img[1])  # (3, H, W) -> (H, W, 3)
    low, high = p.pixel_bounds()
    assert low.shape == high.shape == (3,) and np.all(low < high)
    assert np.allclose(p.preprocess(np.zeros((1, 1, 3), np.uint8), "float64").ravel(), low)
    assert np.allclose(p.preprocess(np.full((1, 1, 3), 255, np.uint8), "float64").ravel(), high)
    beyond = np.stack([low - 1, high + 1])[:, :, None, None]  # (2, 3, 1, 1)
    assert p.deprocess(beyond).reshape(2, 3).tolist() == [[0] * 3, [255] * 3]


def test_prepare(tmp_path):
    img = RNG.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    tv = Preprocessing("torch", input_size=16, resize=20)
    x = tv.prepare(img)
    assert x.shape == (1, 3, 16, 16)
    assert np.array_equal(x, tv.preprocess(center_crop(resize(img, 20), 16)))
    keras = Preprocessing("caffe", input_size=16, resample="nearest")
    save_image(tmp_path / "i.png", img)
    assert np.array_equal(keras.prepare(tmp_path / "i.png"),
                          keras.preprocess(resize_exact(center_crop(img, 30), (16, 16), "nearest")))


def test_dict_roundtrip_and_validation():
    for p in list(PRESETS.values()) + [Preprocessing("unit", 64)]:
        d = json.loads(json.dumps(p.to_dict()))
        assert Preprocessing.from_dict(d) == p
    d = PRESETS["keras"].to_dict()
    assert d["channel_order"] == "BGR" and d["scale"] == 1
    assert d["mean"] == [103.939, 116.779, 123.68]
    assert Preprocessing.from_dict({"mode": "torch"}).input_size == 224
    with pytest.raises(FormatError):
        Preprocessing.from_dict(dict(d, channel_order="RGB"))
    with pytest.raises(FormatError):
        Preprocessing.from_dict(dict(d, mean=[0.485, 0.456, 0.406]))
    with pytest.raises(FormatError):
        Preprocessing.from_dict({"input_size": 224})
    with pytest.raises(MinvertError):
        Preprocessing("tf")
    with pytest.raises(MinvertError):
        Preprocessing("torch", input_size=224, resize=200)


def test_preprocess_shape_errors():
    with pytest.raises(ShapeError):
        Preprocessing().preprocess(np.zeros((4, 4), np.uint8))
    with pytest.raises(ShapeError):
        Preprocessing().deprocess(np.zeros((1, 4, 4, 3)))


@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device")
def test_cupy_preprocess_deprocess():
    import cupy as cp
    p = PRESETS["torchvision"]
    img = RNG.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    x = p.preprocess(cp.asarray(img))
    assert isinstance(x, cp.ndarray)
    assert np.allclose(cp.asnumpy(x), p.preprocess(img), atol=1e-6)
    assert np.array_equal(p.deprocess(x)[0], img)
    assert isinstance(images.to_numpy(x), np.ndarray)
