"""Bounded inputs (issue 25 items 8-12, 14): HDF5 layouts that cost more than their data, files
that are not regular files, damaged weights, numbers out of range, text that drives the terminal.

Every hostile case must end in one ``minvert: error:`` line (exit 1, or 2 for an option value
argparse refuses), before the expensive work starts.
"""
import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from minvert.bounds import env_number, float_range, int_list, int_range
from minvert.cli import build_parser, main
from minvert.errors import FormatError, MinvertError
from minvert.regular_files import open_regular, read_regular_text
from minvert.text import escape_text
from minvert.weights.hdf5 import open_h5

BUNDLED = Path(__file__).resolve().parent.parent / "minvert" / "data" / "tiny-vgg-textures.h5"
TORCH = Path(__file__).resolve().parent / "fixtures" / "torch"


def one_error_line(argv, capsys, *words, status=1):
    """Run the CLI in-process; it must exit ``status`` with stderr ending in the one error line."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    out, err = capsys.readouterr()
    assert code == status, (code, err)
    lines = err.strip().splitlines()
    assert [i for i, s in enumerate(lines) if "error:" in s] == [len(lines) - 1], err
    assert lines[-1].startswith("minvert: error: ") and "Traceback" not in err
    for w in words:
        assert w in lines[-1], lines[-1]
    return out, lines[-1]


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.h5"
    shutil.copy(BUNDLED, path)
    return path


@pytest.fixture
def image(tmp_path):
    from PIL import Image
    path = tmp_path / "img.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(path)
    return path


def _rechunk(path, name, chunks, maxshape=None, write=True):
    """Store dataset ``name`` again with another chunk shape (gzip), its data kept if ``write``."""
    with h5py.File(path, "a") as f:
        data = f[name][()]
        del f[name]
        d = f.create_dataset(name, shape=data.shape, dtype=data.dtype, chunks=chunks,
                             maxshape=maxshape or data.shape, compression="gzip")
        if write:
            d[...] = data


# -------------------------------------------------------------------------- item 8: HDF5 layouts
def test_a_chunk_declared_larger_than_its_data_is_refused_before_reading(model, image, capsys):
    # one gzip chunk of 1.7 GB around 432 numbers: HDF5 would allocate the whole chunk to read it
    _rechunk(model, "conv1_1/w", (16, 3, 3, 3_000_000), maxshape=(None,) * 4, write=False)
    one_error_line(["classify", image, "--model", model], capsys, "conv1_1/w", "chunks of")


def test_tiny_chunks_are_bounded_by_the_read_budget(model, image, capsys, monkeypatch):
    # 1-element chunks cost ~4 KB each to read: 432 of them are 1.7 MB, over a 1 MB budget
    _rechunk(model, "conv1_1/w", (1, 1, 1, 1))
    monkeypatch.setenv("MINVERT_MAX_READ_MB", "1")
    one_error_line(["classify", image, "--model", model], capsys, "conv1_1/w", "432 chunks",
                   "read budget")
    monkeypatch.setenv("MINVERT_MAX_READ_MB", "64")  # the same file within a larger budget
    assert main(["classify", str(image), "--model", str(model)]) == 0


def test_deeply_nested_groups_are_refused(tmp_path):
    path = tmp_path / "deep.h5"
    with h5py.File(path, "w") as f:
        g = f
        for _ in range(40):
            g = g.create_group("g")
    with pytest.raises(FormatError, match="nested more than 32 deep"):
        with open_h5(path, "a minvert weight file"):
            pass


def test_a_huge_variable_length_config_is_refused_by_name(model, image, capsys):
    config = json.dumps({"arch": "vgg", "pad": "x" * (17 << 20)})
    with h5py.File(model, "a") as f:
        f.attrs.create("config", config, dtype=h5py.string_dtype())  # stored outside the attribute
        assert f.attrs.get_id("config").get_storage_size() < 100  # what HDF5 declares
    one_error_line(["classify", image, "--model", model], capsys, "'config'", "16 MB")


# -------------------------------------------------------------------------- item 9: regular files
@pytest.fixture
def fifo(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    path = tmp_path / "fifo.py"
    os.mkfifo(path)
    return path


def test_a_fifo_or_a_device_is_refused_without_reading(fifo, tmp_path, capsys):
    # opening a FIFO for reading would block until a writer comes: this must return at once
    with pytest.raises(MinvertError, match="not a regular file"):
        open_regular(fifo, "an exercise file")
    assert main(["exercise", "check", str(fifo)]) == 1
    assert "not a regular file" in "".join(capsys.readouterr())
    if os.path.exists("/dev/zero"):
        link = tmp_path / "zero.py"
        link.symlink_to("/dev/zero")
        with pytest.raises(MinvertError, match="not a regular file"):
            read_regular_text(link, "an exercise file")
        assert main(["exercise", "check", str(link)]) == 1
        assert "not a regular file" in "".join(capsys.readouterr())
    npy = tmp_path / "fifo.npy"
    os.mkfifo(npy)
    one_error_line(["classify", npy, "--model", BUNDLED], capsys, "not a regular file")


def test_regular_files_are_read_within_their_size(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("[1, 2]")
    assert read_regular_text(path, "a record") == "[1, 2]"
    with pytest.raises(FormatError, match="6 bytes, more than the 3"):
        read_regular_text(path, "a record", max_bytes=3)
    with pytest.raises(MinvertError, match="no such file"):
        open_regular(tmp_path / "missing", "a record")
    with pytest.raises(MinvertError, match="directory"):
        open_regular(tmp_path, "a record")


# -------------------------------------------------------------------------- item 10: damaged weights
@pytest.mark.parametrize("name, words", [
    ("damaged_no_fc_weight.pth", ("fc.bias", "fc.weight")),
    ("damaged_negative_var.pth", ("layer1.0.bn2.running_var", "negative")),
])
def test_damaged_torch_files_are_refused_by_tensor_name(tmp_path, capsys, name, words):
    one_error_line(["convert", TORCH / name, tmp_path / "out.h5"], capsys, *words)
    assert not (tmp_path / "out.h5").exists()


def test_negative_running_variance_in_a_project_file_is_refused(tmp_path, capsys, image):
    from minvert.nets.tiny import build_tiny
    from minvert.weights.project import save
    net = build_tiny("tiny-resnet", 3, rng=np.random.default_rng(0), input_size=16)
    path = tmp_path / "r.h5"
    save(net, path)
    with h5py.File(path, "a") as f:
        name = next(k for k in f if "var" in f[k])
        f[name]["var"][0] = -1.0
    one_error_line(["classify", image, "--model", path], capsys, name, "negative")


# -------------------------------------------------------------------------- item 11: one line, always
def _numeric_options(parser, prefix="minvert"):
    """(command, option, action) for every option of every (sub)command that takes a value."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _numeric_options(sub, f"{prefix} {name}")
        elif action.option_strings and action.type is not None:
            yield prefix, action.option_strings[-1], action


def test_every_option_with_a_type_has_a_range():
    found = list(_numeric_options(build_parser()))
    assert len(found) > 60  # the walk reaches every subcommand
    for command, option, action in found:
        if option == "--device":
            continue  # a device name, checked by its own parser
        assert action.type not in (int, float), f"{command} {option} has no range"
        lo, hi = action.type.bounds  # int_range / float_range / int_list, or --split's fraction
        assert lo <= hi and hi < 2**63, (command, option, (lo, hi))


@pytest.mark.parametrize("argv", [
    ["transform", "IMG", "--out", "o", "--history", str(2**63)],
    ["transform", "IMG", "--out", "o", "--jitter", str(2**63)],
    ["transform", "IMG", "--out", "o", "--iters", "9" * 400],
    ["transform", "IMG", "--out", "o", "--lr", "nan"],
    ["transform", "IMG", "--out", "o", "--style", "inf"],
    ["reconstruct", "extract", "IMG", "--model", "m", "--out", "c.h5", "--target-size", str(2**63)],
    ["reconstruct", "figure", "random", "RUN", "C.h5", "--out", "x.png", "--count", str(2**63)],
    ["reconstruct", "train", "C.h5", "--out", "r", "--split", "fraction:nan"],
    ["reconstruct", "train", "C.h5", "--out", "r", "--split", "fraction:inf"],
    ["reconstruct", "train", "C.h5", "--out", "r", "--widths", "8," + str(2**63)],
    ["dataset", "textures", "--out", "d", "--size", str(2**63)],
    ["exercise", "check", "ex.py", "--seed", "-1"],
    ["classify", "IMG", "--model", "m", "--top", "1e3"],
    ["gradcheck", "f.py:x", "--shape", "x=2," + str(2**62)],
    ["gradcheck", "f.py:x", "--shape", "x=1000,1000,2"],
])
def test_numbers_out_of_range_are_one_usage_line(tmp_path, capsys, argv):
    one_error_line([tmp_path / "x" if a == "IMG" else a for a in argv], capsys, "argument --",
                   status=2)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("variable, value, words", [
    ("MINVERT_MAX_READ_MB", "inf", ("MINVERT_MAX_READ_MB",)),
    ("MINVERT_MAX_READ_MB", "1e308", ("MINVERT_MAX_READ_MB",)),
    ("MINVERT_MAX_READ_MB", "9" * 400, ("MINVERT_MAX_READ_MB",)),
    ("MINVERT_MAX_READ_MB", "-3", ("MINVERT_MAX_READ_MB",)),
    ("MINVERT_WEIGHTS", "~nosuchuser_minvert/w", ("MINVERT_WEIGHTS", "no such user")),
    ("MINVERT_DEVICE", "tpu", ("MINVERT_DEVICE",)),
])
def test_variables_out_of_range_are_one_line_before_any_work(tmp_path, capsys, monkeypatch,
                                                             image, variable, value, words):
    monkeypatch.setenv(variable, value)
    one_error_line(["classify", image, "--model", BUNDLED], capsys, *words)
    one_error_line(["dataset", "textures", "--out", tmp_path / "d", "--n", "1"], capsys, *words)
    assert not (tmp_path / "d").exists()


def test_range_types_accept_their_range_only():
    assert int_range(0, 5)("5") == 5 and int_range(-2, 5)(" -2") == -2
    for bad in ("6", "-1", "1e3", "1.0", "", "\u0663", "9" * 31):
        with pytest.raises(argparse.ArgumentTypeError):
            int_range(0, 5)(bad)
    assert float_range(0, 1, above=True)("1") == 1.0
    for bad in ("0", "nan", "inf", "-inf", "1.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            float_range(0, 1, above=True)(bad)
    assert int_list(1, 9, "digits")("1,2, 3") == [1, 2, 3]
    with pytest.raises(argparse.ArgumentTypeError):
        int_list(1, 9, "digits", max_items=3)("1,2,3,4")


def test_env_number(monkeypatch):
    monkeypatch.delenv("MINVERT_TEST_NUMBER", raising=False)
    assert env_number("MINVERT_TEST_NUMBER", 7, 0, 10) == 7
    monkeypatch.setenv("MINVERT_TEST_NUMBER", "2.5")
    assert env_number("MINVERT_TEST_NUMBER", 7, 0, 10) == 2.5
    monkeypatch.setenv("MINVERT_TEST_NUMBER", "nan")
    with pytest.raises(MinvertError, match="MINVERT_TEST_NUMBER='nan'"):
        env_number("MINVERT_TEST_NUMBER", 7, 0, 10)


def test_checkpoint_with_an_impossible_optimizer_step_is_refused(tmp_path):
    from minvert.nets.tiny import build_tiny
    from minvert.optim import Adam
    from minvert.training import CheckpointWriter, load_checkpoint
    net = build_tiny("tiny-vgg", 3, rng=np.random.default_rng(0), input_size=16)
    writer = CheckpointWriter(tmp_path / "c.h5")
    progress = {"epoch": 1, "batch": 0, "step": 0, "history": [],
                "rng": np.random.default_rng(0).bit_generator.state}
    writer.save(net, Adam(), progress)
    writer.wait()
    with h5py.File(tmp_path / "c.h5", "a") as f:
        del f["optimizer/t"]
        f["optimizer"].create_dataset("t", data=np.uint64(2**64 - 1))
    with pytest.raises(FormatError, match="optimizer step 't' is 18446744073709551615"):
        load_checkpoint(tmp_path / "c.h5", net, Adam())


# -------------------------------------------------------------------------- item 12: terminal spoofing
def test_escape_text_keeps_text_and_escapes_controls():
    assert escape_text("tabby cat, Äpfel, 猫") == "tabby cat, Äpfel, 猫"
    assert escape_text("a\x1b[31mred\nminvert: error: x") == "a\\x1b[31mred\\nminvert: error: x"
    assert escape_text("\ud800\u202e\t") == "\\ud800\\u202e\\t"


def test_labels_and_paths_reach_the_terminal_escaped(model, image, capsys):
    with h5py.File(model, "a") as f:
        labels = json.loads(f.attrs["labels"])
        labels[:3] = ["\x1b]0;pwned\x07\x1b[2J", "cat\nminvert: error: fake", "lone \ud800"]
        f.attrs["labels"] = json.dumps(labels)  # ASCII JSON: the surrogate survives as \ud800
    assert main(["classify", str(image), "--model", str(model), "--top", "8"]) == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out and "\ud800" not in out and err == ""
    assert "\\x1b]0;pwned" in out and "cat\\nminvert: error: fake" in out and "lone \\ud800" in out
    assert not any(line.startswith("minvert: error") for line in out.splitlines())
    odd = image.parent / "bad\x1b[2J\nminvert: error: fake.png"
    one_error_line(["classify", odd, "--model", model], capsys, "\\x1b[2J\\nminvert")


# -------------------------------------------------------------------------- item 14: weights info
def test_weights_info_reports_a_damaged_source_record(model, capsys):
    with h5py.File(model, "a") as f:
        f.attrs["source"] = json.dumps({"name": "x", "history": "lost"})
    one_error_line(["weights", "info", model], capsys, "'source'", "damaged", "history")
