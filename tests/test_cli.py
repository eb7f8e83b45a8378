"""The `minvert` command as a user meets it: help, exit codes, one-line errors."""
import json

import numpy as np
import pytest
from PIL import Image

from minvert.cli import build_parser, main

COMMANDS = ["classify", "transform", "reconstruct", "train", "dataset", "convert", "weights",
            "gradcheck", "bench", "demo", "exercise"]


def test_every_command_has_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for name in COMMANDS:
        assert name in text
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0, name
        assert len(capsys.readouterr().out) > 100, name


def _one_line_error(capsys, code, expect):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("minvert: error: "), captured.err
    assert expect in lines[0], lines[0]
    return lines[0]


def test_classify_bad_inputs(tmp_path, capsys):
    fake = tmp_path / "photo.jpg"
    fake.write_text("not an image")
    _one_line_error(capsys, main(["classify", str(fake), "--model", "tiny-vgg-textures"]), "photo.jpg")
    img = tmp_path / "ok.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(img)
    _one_line_error(capsys, main(["classify", str(img), "--model", "tiny-vgg-textures-v2"]),
                    "unknown model 'tiny-vgg-textures-v2'")
    _one_line_error(capsys, main(["classify", str(img), "--model", "vgg19"]), "minvert weights download vgg19")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.png", "photo.jpg"]  # nothing written


def test_classify_text_and_json(tmp_path, capsys):
    from minvert.datasets import make_texture
    img = tmp_path / "rings.png"
    Image.fromarray(make_texture("rings", 5)).save(img)
    assert main(["classify", str(img), "--model", "tiny-resnet-textures", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"{img}  (the image is 64x64: the network sees")
    assert len(out.splitlines()) == 4 and "rings" in out
    assert main(["classify", str(img), "--model", "tiny-resnet-textures", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["top"][0]["label"] == "rings" and abs(sum(c["probability"] for c in r["top"]) - 1) < 0.5


def test_gradcheck_passes_and_fails_honestly(capsys):
    assert main(["gradcheck"]) == 0
    assert "37 of 37 checks pass" in capsys.readouterr().out
    assert main(["gradcheck", "--plant", "maxpool"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "1 FAIL" in out


def test_weights_info_and_convert_refusals(tmp_path, capsys):
    from minvert.weights import BUNDLED_DIR
    assert main(["weights", "info", str(BUNDLED_DIR / "tiny-vgg-textures.h5")]) == 0
    assert "test_accuracy" in capsys.readouterr().out
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # HDF5 magic, then nothing: truncated
    _one_line_error(capsys, main(["weights", "info", str(junk)]), "junk.h5")
    dst = tmp_path / "out.h5"
    dst.write_bytes(b"keep me")
    _one_line_error(capsys, main(["convert", str(BUNDLED_DIR / "tiny-vgg-textures.h5"), str(dst)]), "--force")
    assert dst.read_bytes() == b"keep me"


def test_dataset_writes_pngs_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "tex"
    assert main(["dataset", "textures", "--out", str(out), "--n", "1", "--size", "32"]) == 0
    files = sorted(out.rglob("*.png"))
    assert len(files) == 8 and Image.open(files[0]).size == (32, 32)
    before = files[0].read_bytes()
    _one_line_error(capsys, main(["dataset", "textures", "--out", str(out), "--n", "1"]), "exist")
    assert files[0].read_bytes() == before


def test_parser_builds_without_importing_heavy_modules():
    import subprocess
    import sys
    import sys
    code = ("import sys; from minvert.cli import build_parser; build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith(('scipy', 'h5py', 'torch'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_blas_oversubscription_note():
    from minvert.backend import oversubscription_note
    assert "OPENBLAS_NUM_THREADS=1" in oversubscription_note(load=4.3, cores=2, environ={})
    assert oversubscription_note(load=0.5, cores=2, environ={}) is None
    assert oversubscription_note(load=9, cores=2, environ={"OPENBLAS_NUM_THREADS": "1"}) is None
    assert oversubscription_note(load=9, cores=1, environ={}) is None  # one core: one thread


def test_blas_threads_from_the_environment():
    from minvert.backend import configured_threads
    assert configured_threads({}, 2) == 2  # BLAS' default: one thread per core
    assert configured_threads({"OPENBLAS_NUM_THREADS": "1"}, 2) == 1
    assert configured_threads({"OMP_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": ""}, 2) == 3
    assert configured_threads({"OPENBLAS_NUM_THREADS": "0"}, 4) == 4  # 0 and junk: the default


def test_python_dash_m_minvert_runs_the_command():
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "minvert", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("minvert ")
