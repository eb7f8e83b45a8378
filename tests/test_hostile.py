"""Hostile and broken inputs (issue 12), every file generated here: each must end in one
``minvert: error:`` line with exit 1, fast and in little memory, reading nothing from outside
the file it was given. The reader policy they exercise is in docs/weights.md, section 8;
hostile .pth pickles are in test_hostile_pth.py."""
import json
import os
import struct
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from minvert.cli import main
from minvert.errors import FormatError, MinvertError

SECRET = "minvert-hostile-secret-0123456789"


def fails_with_one_line(argv, capsys, *words):
    """Run the CLI in-process: exit 1, stderr ends in the one 'minvert: error:' line (progress
    lines may come before it), which names ``words``; nothing from outside the input anywhere."""
    assert main([str(a) for a in argv]) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert [i for i, s in enumerate(lines) if "minvert: error:" in s] == [len(lines) - 1], err
    assert lines[-1].startswith("minvert: error: ") and "Traceback" not in err
    assert SECRET not in err + out
    for w in words:
        assert w in lines[-1], lines[-1]
    return lines[-1]


def refused_as_usage(argv, capsys, *words):
    """A value out of its option's range: exit 2 before any work, stderr one line naming ``words``."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    assert e.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("minvert: error: argument "), err
    for w in words:
        assert w in err, err
    return err


# ----------------------------------------------------------------------------- HDF5 files
KERAS = os.path.join(os.path.dirname(__file__), "fixtures", "keras", "vgg19_notop_k1.h5")
KERNEL = "block1_conv1/block1_conv1_W_1:0"


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text(SECRET * 4096)
    return path


def _keras_copy(tmp_path, name="k.h5"):
    path = tmp_path / name
    path.write_bytes(open(KERAS, "rb").read())
    return path


def _replace(path, dataset, **create):
    """Swap ``dataset`` of the HDF5 file for one made by ``create_dataset(**create)`` (default:
    same shape and dtype)."""
    with h5py.File(path, "a") as f:
        old = f[dataset]
        create = {"shape": old.shape, "dtype": old.dtype, **create}
        del f[dataset]
        if "link" in create:
            f[dataset] = create["link"]
        else:
            f.create_dataset(dataset, **create)


def test_keras_external_storage_is_refused_and_nothing_leaks(tmp_path, secret, capsys):
    src = _keras_copy(tmp_path)
    _replace(src, KERNEL, external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
    fails_with_one_line(["convert", src, tmp_path / "out.h5"], capsys, "external file")
    assert not (tmp_path / "out.h5").exists()


def test_keras_external_link_is_refused(tmp_path, capsys):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.full((3, 3, 3, 4), 7.0, np.float32)
    src = _keras_copy(tmp_path)
    _replace(src, KERNEL, link=h5py.ExternalLink(str(other), "/data"))
    fails_with_one_line(["convert", src, tmp_path / "out.h5"], capsys, "link to another file")


def test_keras_giant_lazy_dataset_is_never_read(tmp_path, capsys):
    src = _keras_copy(tmp_path)
    _replace(src, KERNEL, shape=(3, 3, 3, 1 << 28), chunks=(1, 1, 1, 1 << 16))  # 108 GB, unwritten
    assert src.stat().st_size < 1 << 20
    fails_with_one_line(["convert", src, tmp_path / "out.h5"], capsys, "k.h5")
    from minvert.weights.keras_h5 import read_keras_h5
    with pytest.raises(FormatError, match="read budget"):
        read_keras_h5(src)


@pytest.mark.parametrize("dtype, value, words", [
    ("float32", np.nan, ("NaN", KERNEL)),
    ("int32", 1, ("int32", KERNEL)),
    ([("a", "f4"), ("b", "f4")], None, ("compound",)),
])
def test_keras_bad_values_and_dtypes(tmp_path, capsys, dtype, value, words):
    src = _keras_copy(tmp_path)
    with h5py.File(src, "r") as f:
        shape = f[KERNEL].shape
    data = np.zeros(shape, dtype)
    if value is not None:
        data.flat[0] = value
    _replace(src, KERNEL, data=data, shape=None, dtype=None)
    fails_with_one_line(["convert", src, tmp_path / "out.h5"], capsys, *words)


@pytest.fixture
def model(tmp_path):
    """A tiny project-format VGG classifier (16x16 input) and its file."""
    from minvert.nets.tiny import build_tiny
    from minvert.weights.project import save
    net = build_tiny("tiny-vgg", 8, labels=[f"c{i}" for i in range(8)], input_size=16)
    return save(net, tmp_path / "model.h5")


@pytest.fixture
def image(tmp_path):
    from PIL import Image
    path = tmp_path / "img.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(path)
    return path


def _set_attr(path, key, value):
    with h5py.File(path, "a") as f:
        f.attrs[key] = value


@pytest.mark.parametrize("edit, words", [
    (lambda p, s: _replace(p, "conv1_1/w", external=[(str(s), 0, h5py.h5f.UNLIMITED)]), ("external",)),
    (lambda p, s: _replace(p, "conv1_1/w", link=h5py.SoftLink("/nowhere")), ("model.h5",)),
    (lambda p, s: _replace(p, "conv1_1/w", shape=(1 << 20, 1 << 20), chunks=(64, 64)), ("shape",)),
    (lambda p, s: _replace(p, "conv1_1/w", data=np.full((16, 3, 3, 3), np.inf, np.float32),
                           shape=None, dtype=None), ("conv1_1/w", "NaN or infinite")),
    (lambda p, s: _set_attr(p, "config", json.dumps({"arch": "vgg", "convs": [1] * 8,
                                                     "widths": [10**9] * 8})), ("widths",)),
    (lambda p, s: _set_attr(p, "config", json.dumps({"arch": "vgg", "convs": [10**6],
                                                     "widths": [16], "include_top": False})),
     ("convs",)),
    (lambda p, s: _set_attr(p, "config", json.dumps({"arch": "vgg", "convs": [1, 1, 2],
                            "widths": [16, 32, 64], "fc": [64], "num_classes": 8,
                            "include_top": True, "input_size": 30000})), ("input_size",)),
    (lambda p, s: _set_attr(p, "config", json.dumps({"arch": "vgg", "convs": [1, 1, 2],
                            "widths": [16, 32, 0], "fc": [64], "num_classes": 8,
                            "include_top": True, "input_size": 16})), ("widths",)),
    (lambda p, s: _set_attr(p, "config", "[" * 100000), ("config", "JSON")),
    (lambda p, s: _set_attr(p, "config", "[1, 2]"), ("config",)),
    (lambda p, s: _set_attr(p, "labels", json.dumps(["a"])), ("labels",)),
    (lambda p, s: _set_attr(p, "format_version", "one"), ("format_version",)),
    (lambda p, s: _set_attr(p, "preprocessing", json.dumps({"mode": "unit", "input_size": 30000})),
     ("input_size",)),
])
def test_damaged_or_hostile_project_models(model, image, secret, capsys, edit, words):
    edit(model, secret)
    fails_with_one_line(["classify", image, "--model", model], capsys, *words)


def test_weights_info_on_odd_metadata(model, capsys):
    _set_attr(model, "source", "null")  # not recorded: fine
    assert main(["weights", "info", str(model)]) == 0
    assert "source         not recorded" in capsys.readouterr().out
    for damaged, words in [([1], ("source",)), ({}, ("source", "no file name")),
                           ({"history": [1, "x"], "name": "n"}, ("source", "history")),
                           ({"name": "n", "sha256": "12"}, ("source", "sha256")),
                           ({"name": "n", "test_accuracy": "high"}, ("source", "test_accuracy"))]:
        _set_attr(model, "source", json.dumps(damaged))
        fails_with_one_line(["weights", "info", model], capsys, *words)


# ----------------------------------------------------------------------------- checkpoints, caches, runs
def _trained(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--epochs", "1", "--n", "2", "--val-n", "1",
                 "--test-n", "0", "--size", "16", "--batch", "8"]) == 0
    return out


def test_damaged_checkpoints(tmp_path, capsys):
    out = _trained(tmp_path)
    capsys.readouterr()
    ckpt = out / "checkpoint.h5"
    good = ckpt.read_bytes()
    resume = ["train", "--out", out, "--epochs", "2", "--resume"]
    for edit, words in [
        (lambda: _set_attr(ckpt, "progress", "{not json"), ("progress",)),
        (lambda: _set_attr(ckpt, "progress", json.dumps({"epoch": "1"})), ("progress",)),
        (lambda: _replace(ckpt, "weights/conv1_1/w", shape=(1 << 20, 1 << 20), chunks=(64, 64)),
         ("conv1_1/w", "shape")),
        (lambda: _replace(ckpt, "optimizer/m|conv1_1.w", shape=(1 << 30,), chunks=(1024,)),
         ("optimizer",)),
        (lambda: ckpt.write_bytes(good[:len(good) // 2]), ("checkpoint",)),
    ]:
        ckpt.write_bytes(good)
        edit()
        fails_with_one_line(resume, capsys, *words)
    ckpt.write_bytes(good)
    settings = json.loads((out / "run.json").read_text())
    for damage in ('{"arch": ', json.dumps({**settings, "arch": "nope"}),
                   json.dumps({**settings, "batch": "8"}), "[]"):
        (out / "run.json").write_text(damage)
        fails_with_one_line(resume, capsys, "run.json")


def _cache(tmp_path):
    from minvert.datasets import write_dataset
    write_dataset(tmp_path / "imgs", 1, size=16, seed=0)
    cache = tmp_path / "c.h5"
    folder = next(p for p in sorted((tmp_path / "imgs").iterdir()) if p.is_dir())
    assert main(["reconstruct", "extract", str(folder), "--model", "tiny-resnet-textures",
                 "--out", str(cache), "--target-size", "8"]) == 0
    return cache


def test_damaged_feature_caches(tmp_path, capsys):
    cache = _cache(tmp_path)
    capsys.readouterr()
    good = cache.read_bytes()
    train = ["reconstruct", "train", cache, "--out", tmp_path / "r", "--epochs", "1",
             "--split", "none", "--widths", "8"]
    with h5py.File(cache, "r") as f:
        n, d = f["features"].shape
    for edit, words in [
        (lambda: _replace(cache, "features", data=np.full((n, d), np.nan, np.float32),
                          shape=None, dtype=None), ("features", "NaN")),
        (lambda: _set_attr(cache, "count", 10**9), ("rows",)),
        (lambda: _set_attr(cache, "count", "many"), ("count",)),
        (lambda: (_replace(cache, "targets", shape=(10**6, 8, 8, 3), chunks=(1, 8, 8, 3)),
                  _set_attr(cache, "count", 10**6)), ("targets", "chunks")),
        (lambda: _set_attr(cache, "feature_size", 10**9), ("feature_size",)),
        (lambda: _set_attr(cache, "model_config", "{"), ("model_config",)),
    ]:
        cache.write_bytes(good)
        edit()
        fails_with_one_line(train, capsys, *words)
        assert not (tmp_path / "r").exists()


def test_extract_that_finds_nothing_fails_and_writes_nothing(tmp_path, capsys):
    for empty_class in ("a", "b"):  # a folder of class folders holding nothing
        (tmp_path / "root" / empty_class).mkdir(parents=True)
    (tmp_path / "root" / "dataset.json").write_text("{}")
    fails_with_one_line(["reconstruct", "extract", tmp_path / "root", "--model",
                         "tiny-resnet-textures", "--out", tmp_path / "c.h5"], capsys, "no image files")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_text("not an image")
    fails_with_one_line(["reconstruct", "extract", tmp_path / "junk", "--model",
                         "tiny-resnet-textures", "--out", tmp_path / "c.h5"], capsys, "nothing was added")
    assert not (tmp_path / "c.h5").exists()


# ----------------------------------------------------------------------------- images
def test_postscript_named_png_never_reaches_ghostscript(tmp_path, model, capsys):
    ps = tmp_path / "doc.png"
    ps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    fails_with_one_line(["classify", ps, "--model", model], capsys, "doc.png", "PNG, JPEG")


def test_valid_but_odd_images_still_work(tmp_path, model, capsys):
    from PIL import Image
    rng = np.random.default_rng(0)
    files = {"16bit.png": Image.fromarray(rng.integers(0, 65535, (9, 7), dtype=np.uint16)),
             "cmyk.jpg": Image.fromarray(rng.integers(0, 255, (12, 10, 3), np.uint8)).convert("CMYK"),
             "anim.gif": Image.fromarray(rng.integers(0, 255, (8, 8, 3), np.uint8)).convert("P"),
             "one.png": Image.fromarray(np.full((1, 1, 3), 200, np.uint8)),
             "wide.png": Image.fromarray(np.zeros((1, 3000, 3), np.uint8)),
             "tall.webp": Image.fromarray(np.zeros((2000, 2, 3), np.uint8)),
             "x.tif": Image.fromarray(np.zeros((5, 5, 3), np.uint8)),
             "x.bmp": Image.fromarray(np.zeros((5, 5, 3), np.uint8))}
    for name, im in files.items():
        im.save(tmp_path / name)
    assert main(["classify", *[str(tmp_path / n) for n in files], "--model", str(model)]) == 0
    out = capsys.readouterr().out
    assert all(str(tmp_path / n) in out for n in files) and "nan" not in out


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize("extra, words", [
    (["--iters", "0"], ("--iters", "'0'")), (["--iters", "-5"], ("--iters", "'-5'")),
    (["--history", "0"], ("--history",)), (["--jitter", "-4"], ("--jitter", "'-4'")),
    (["--lr", "0"], ("--lr",)), (["--tv", "nan"], ("--tv",)), (["--seed", "-1"], ("--seed",)),
    (["--history", str(2**63)], ("--history",)), (["--jitter", str(2**63)], ("--jitter",)),
])
def test_transform_options_checked_before_any_work(tmp_path, model, image, capsys, extra, words):
    out = tmp_path / "out"
    refused_as_usage(["transform", image, "--model", model, "--target", "c1", "--out", out,
                         *extra], capsys, *words)
    assert not out.exists()


def test_transform_refuses_a_resnet_and_a_black_mask(tmp_path, model, image, capsys):
    from PIL import Image
    fails_with_one_line(["transform", image, "--model", "tiny-resnet-textures", "--target", "dots",
                         "--out", tmp_path / "o1"], capsys, "VGG")
    black = tmp_path / "mask.png"
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(black)
    fails_with_one_line(["transform", image, "--model", model, "--target", "c1", "--mask", black,
                         "--out", tmp_path / "o2"], capsys, "black everywhere")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


@pytest.mark.parametrize("extra, words", [
    (["--epochs", "0"], ("--epochs", "'0'")), (["--lr", "-1"], ("--lr", "'-1'")),
    (["--batch", "0"], ("--batch",)), (["--n", "0"], ("--n",)),
    (["--val-fraction", "1.5"], ("--val-fraction",)),
])
def test_train_options_checked_before_any_work(tmp_path, capsys, extra, words):
    refused_as_usage(["train", "--out", tmp_path / "run", *extra], capsys, *words)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- the handler
def test_any_exception_is_one_line_without_its_class_name(monkeypatch, capsys, image):
    import minvert.classify
    laughs = ()
    for _ in range(200):
        laughs = (laughs, laughs)  # formatting this would never end

    def boom(*a, **k):
        raise KeyError(laughs)
    monkeypatch.setattr(minvert.classify, "classify_files", boom)
    line = fails_with_one_line(["classify", image, "--model", "x"], capsys, "unexpected failure")
    assert "KeyError" not in line

    def zero(*a, **k):
        return 1 / 0
    monkeypatch.setattr(minvert.classify, "classify_files", zero)
    line = fails_with_one_line(["classify", image, "--model", "x"], capsys, "division by zero")
    assert "ZeroDivisionError" not in line
    monkeypatch.setenv("MINVERT_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["classify", str(image), "--model", "x"])


def test_closed_pipe_ends_quietly(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "minvert.cli", "weights", "list", "-v"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) != 0 and "Traceback" not in err and "BrokenPipe" not in err


def test_stale_temp_files_are_swept_and_failed_writes_leave_none(tmp_path, model):
    from minvert.weights import load_model
    from minvert.weights.project import atomic_write, save
    stale = tmp_path / ".model.h5.tmp999999999"  # a pid no process has
    stale.write_bytes(b"half")
    save(load_model(str(model)), model, force=True)
    assert not stale.exists()
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "x.json") as tmp:
        tmp.write_text("{")
        raise RuntimeError("killed")
    assert not list(tmp_path.glob(".x.json*")) and not (tmp_path / "x.json").exists()


# ----------------------------------------------------------------------------- downloads
try:
    from tests.http_fixture import FileServer
except ImportError:
    from http_fixture import FileServer


@pytest.fixture
def srv(monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    with FileServer() as s:
        yield s


def test_endless_body_is_cut_off_and_deleted(srv, tmp_path):
    from minvert.weights.download import download
    url = srv.add("/endless", b"x" * 65536, endless=True)
    with pytest.raises(MinvertError, match="sent more than") as e:
        download(url, tmp_path / "new" / "f.bin", max_size=1 << 20, progress=False)
    assert "\n" not in str(e.value) and not list(tmp_path.iterdir())  # no part, no empty folder


@pytest.mark.parametrize("trickle, kwargs, match", [
    (0.2, {"deadline": 1.0, "timeout": 5}, "deadline"),      # bytes keep coming, too slowly
    (3600, {"deadline": 30, "timeout": 0.5}, "nothing received"),  # one byte, then silence
])
def test_trickle_and_stall_end_in_time(srv, tmp_path, trickle, kwargs, match):
    from minvert.weights.download import download
    url = srv.add("/slow", bytes(1000), trickle_s=trickle)
    start = time.monotonic()
    with pytest.raises(MinvertError, match=match):
        download(url, tmp_path / "f.bin", progress=False, **kwargs)
    assert time.monotonic() - start < 10


def test_failed_zoo_download_leaves_no_empty_folders(srv, tmp_path, monkeypatch, capsys):
    from minvert.weights import download as dl
    from minvert.weights import zoo
    url = srv.add("/big.h5", b"x" * 65536, endless=True)
    entry = zoo.ZooEntry("big", url, "big.h5", "md5", "0" * 32, "keras", "vgg19", True, "test",
                         approx_mb=0.1)
    monkeypatch.setattr(zoo, "ZOO", {"big": entry})
    monkeypatch.setattr(dl, "ZOO", zoo.ZOO)
    dest = tmp_path / "w"
    fails_with_one_line(["weights", "download", "big", "--dir", dest], capsys, "sent more than")
    assert not dest.exists()


def test_resuming_a_finished_run_says_so(tmp_path, capsys):
    out = _trained(tmp_path)
    capsys.readouterr()
    fails_with_one_line(["train", "--out", out, "--epochs", "1", "--resume"], capsys,
                        "already trained 1 epoch")


def test_damaged_reconstruct_run_json(tmp_path, capsys):
    cache = _cache(tmp_path)
    run = tmp_path / "r"
    assert main(["reconstruct", "train", str(cache), "--out", str(run), "--epochs", "1",
                 "--split", "none", "--widths", "8"]) == 0
    capsys.readouterr()
    good = json.loads((run / "run.json").read_text())
    for damage in ("[1, 2]", json.dumps({**good, "split": {"train": ["x"], "test": []}}), "{"):
        (run / "run.json").write_text(damage)
        fails_with_one_line(["reconstruct", "evaluate", run, cache], capsys, "run.json")


def test_a_pipe_is_not_an_image(tmp_path, model, capsys):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    fails_with_one_line(["classify", fifo, "--model", model], capsys, "not a regular file")


def test_weights_too_large_to_compute_with_are_reported(tmp_path, model, capsys):
    from PIL import Image
    image = tmp_path / "white.png"
    Image.fromarray(np.full((20, 20, 3), 255, np.uint8)).save(image)
    with h5py.File(model, "a") as f:
        for name in ("conv1_1", "conv2_1"):
            f[f"{name}/w"][...] = 3e38  # finite, but the second conv overflows to inf
    fails_with_one_line(["classify", image, "--model", model], capsys, "non-finite outputs")


@pytest.mark.parametrize("side, words", [(8000, ("megapixels",)), (60000, ("too large",))])
def test_images_declaring_huge_sizes_are_refused_from_the_header(tmp_path, model, capsys, side,
                                                                  words):
    """A 100-byte PNG whose header claims side x side pixels: refused before decoding."""
    import zlib
    from PIL import Image
    path = tmp_path / "bomb.png"
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", side, side)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    path.write_bytes(bytes(data))
    fails_with_one_line(["classify", path, "--model", model], capsys, "bomb.png", *words)
