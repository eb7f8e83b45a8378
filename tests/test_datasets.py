"""Generated textures (determinism, shapes, files) and the image-folder loader's errors."""
import os

import numpy as np
import pytest
from PIL import Image

from minvert.datasets import (CLASSES, load_image_folder, make_dataset, make_texture,
                              write_dataset)
from minvert.errors import MinvertError


def one_line_error(excinfo):
    assert "\n" not in str(excinfo.value)


def test_classes_fixed():
    assert len(CLASSES) >= 8 and len(set(CLASSES)) == len(CLASSES)
    assert CLASSES[:3] == ("stripes", "checkerboard", "dots")


@pytest.mark.parametrize("size", [16, 33, 64])
def test_make_texture_shape_dtype(size):
    rng = np.random.default_rng(0)
    for name in CLASSES:
        img = make_texture(name, rng, size)
        assert img.shape == (size, size, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
        assert img.std() > 10, name  # a visible pattern, not a flat colour


def test_make_texture_bad_input():
    with pytest.raises(MinvertError, match="stripes") as e:
        make_texture("plaid", np.random.default_rng(0))
    one_line_error(e)
    with pytest.raises(MinvertError, match="too small"):
        make_texture("dots", 0, size=4)


def test_make_dataset_deterministic_and_ordered():
    x, y, names = make_dataset(3, size=24, seed=5)
    assert x.shape == (3 * len(CLASSES), 24, 24, 3) and x.dtype == np.uint8
    assert y.dtype == np.int64 and names == list(CLASSES)
    np.testing.assert_array_equal(y, np.repeat(np.arange(len(CLASSES)), 3))
    x2, y2, _ = make_dataset(3, size=24, seed=5)
    assert x.tobytes() == x2.tobytes() and y.tobytes() == y2.tobytes()
    x3, _, _ = make_dataset(3, size=24, seed=6)
    assert not np.array_equal(x, x3)
    # each image has its own seed: a smaller request is a prefix, a class subset the same images
    x4, _, _ = make_dataset(1, size=24, seed=5)
    np.testing.assert_array_equal(x4, x[::3])
    x5, y5, names5 = make_dataset(3, size=24, seed=5, classes=["rings", "stripes"])
    assert names5 == ["rings", "stripes"]
    np.testing.assert_array_equal(x5[:3], x[y == CLASSES.index("rings")])
    np.testing.assert_array_equal(y5, [0, 0, 0, 1, 1, 1])


def test_colours_vary_within_a_class():
    x, y, _ = make_dataset(6, size=16, seed=0)
    means = x.reshape(len(x), -1, 3).mean(axis=1)  # (N, 3) mean colour per image
    for k in range(len(CLASSES)):
        assert means[y == k].std(axis=0).mean() > 15  # class is not a colour


def test_make_dataset_bad_input():
    with pytest.raises(MinvertError, match="at least 1"):
        make_dataset(0)
    with pytest.raises(MinvertError, match="non-negative"):
        make_dataset(1, seed=-1)
    with pytest.raises(MinvertError, match="plaid"):
        make_dataset(1, classes=["stripes", "plaid"])


def test_write_dataset_reloads_identically_and_refuses_overwrite(tmp_path, capsys):
    out = tmp_path / "tex"
    summary = write_dataset(out, 2, size=16, seed=3)
    printed = capsys.readouterr().out
    assert "stripes" in printed and "wrote 16 images" in printed
    assert summary["n_images"] == 2 * len(CLASSES) and summary["seed"] == 3
    assert (out / "stripes" / "stripes_00001.png").is_file() and (out / "dataset.json").is_file()
    assert sorted(os.listdir(out / "dots")) == ["dots_00000.png", "dots_00001.png"]

    x, y, names = make_dataset(2, size=16, seed=3)
    x2, y2, names2, skipped = load_image_folder(out)
    assert names2 == sorted(CLASSES) and skipped == []
    for k, name in enumerate(names):  # folders come back in sorted order
        np.testing.assert_array_equal(x2[y2 == names2.index(name)], x[y == k])

    with pytest.raises(MinvertError, match="already exist") as e:
        write_dataset(out, 3, size=16, seed=3, log=None)
    one_line_error(e)
    assert not (out / "stripes" / "stripes_00002.png").exists()  # refused before writing


def _save(path, size=(8, 8), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 120).save(path)


def test_load_image_folder_errors(tmp_path):
    with pytest.raises(MinvertError, match="does not exist") as e:
        load_image_folder(tmp_path / "nope")
    one_line_error(e)
    with pytest.raises(MinvertError, match="no class sub-folders"):
        load_image_folder(tmp_path)
    _save(tmp_path / "cats" / "a.png")
    with pytest.raises(MinvertError, match="only one class") as e:
        load_image_folder(tmp_path)
    one_line_error(e)
    (tmp_path / "dogs").mkdir()
    (tmp_path / "dogs" / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "cats" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.warns(UserWarning, match="skipped 2"):
        with pytest.raises(MinvertError, match="no readable images") as e:
            load_image_folder(tmp_path)
    one_line_error(e)


def test_load_image_folder_skips_unreadable_and_converts(tmp_path):
    _save(tmp_path / "b_class" / "grey.png", mode="L")
    _save(tmp_path / "b_class" / "rgba.png", mode="RGBA")
    _save(tmp_path / "a_class" / "x.jpg")
    _save(tmp_path / "a_class" / "big.png", size=(12, 10))
    (tmp_path / "a_class" / "notes.txt").write_text("hello")
    (tmp_path / "a_class" / ".DS_Store").write_bytes(b"\0\0")  # hidden: ignored silently
    (tmp_path / "README.md").write_text("top-level files are not classes")
    with pytest.raises(MinvertError, match="different sizes"):
        with pytest.warns(UserWarning):
            load_image_folder(tmp_path)
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable.*notes\.txt"):
        x, y, names, skipped = load_image_folder(tmp_path, size=6)
    assert names == ["a_class", "b_class"]
    assert skipped == [str(tmp_path / "a_class" / "notes.txt")]
    assert x.shape == (4, 6, 6, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, [0, 0, 1, 1])
    assert y.dtype == np.int64
