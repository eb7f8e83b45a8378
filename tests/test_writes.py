"""Nothing lost (issue 25 items 1, 2, 4, 6, 7): a full disk or a file-size limit keeps the previous
file whole, convert never overwrites its own source, appends never follow links, two writers to one
run folder or file refuse each other, and a resumed run's log holds exactly its checkpoint's epochs.

The size limit is RLIMIT_FSIZE set in a subprocess (Python ignores SIGXFSZ, so writes past it
fail with EFBIG), which needs no root and no special file system.
"""
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minvert.cli import main
from minvert.datasets import make_dataset
from minvert.errors import MinvertError
from minvert.files import exclusive_lock, lock_beside, open_nofollow, run_folder_lock
from minvert.nets.tiny import build_tiny
from minvert.reconstruct.cache_file import read_cache
from minvert.reconstruct.features import extract
from minvert.weights.project import save

ROOT = Path(__file__).resolve().parent.parent
KERAS = ROOT / "tests" / "fixtures" / "keras" / "vgg19_notop_k1.h5"
TRAIN = ["--n", "6", "--val-n", "2", "--test-n", "2", "--size", "16", "--batch", "16"]


def quiet(*_):
    pass


def child_env():
    """The environment of a child minvert: this tree first, then the caller's path (the GPU
    stand-in of tests/strict_cupy, when the suite runs under it)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "PYTHONDONTWRITEBYTECODE": "1"}


def run_limited(args, limit, cwd):
    """``python -m minvert ARGS`` with files limited to ``limit`` bytes: (exit status, stderr)."""
    def set_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    r = subprocess.run([sys.executable, "-m", "minvert", *map(str, args)], cwd=cwd, env=child_env(),
                       preexec_fn=set_limit, capture_output=True, text=True, timeout=600)
    return r.returncode, r.stderr


def leftovers(folder):
    """Temporaries and lock files a failed write must not leave."""
    return [p.name for p in Path(folder).rglob(".*") if ".tmp" in p.name or p.name.endswith(".lock")]


def one_error_line(stderr, *words):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minvert: error: "), stderr
    assert all(w in lines[0] for w in words), lines[0]


# item 1: a full disk / size limit ---------------------------------------------------------------
def test_convert_force_past_the_size_limit_keeps_the_old_file(tmp_path):
    dst = tmp_path / "v.h5"
    assert main(["convert", str(KERAS), str(dst)]) == 0
    before = dst.read_bytes()
    status, err = run_limited(["convert", KERAS, dst, "--force"], len(before) // 2, tmp_path)
    assert status == 1
    one_error_line(err, "file size limit", str(dst))
    assert dst.read_bytes() == before and leftovers(tmp_path) == []


def test_train_resume_past_the_size_limit_keeps_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--epochs", "1", *TRAIN]) == 0
    ckpt = (out / "checkpoint.h5").read_bytes()
    status, err = run_limited(["train", "--out", out, "--epochs", "2", "--resume"], len(ckpt) // 2,
                              tmp_path)
    assert status == 1
    one_error_line(err, "file size limit", "checkpoint.h5")
    assert (out / "checkpoint.h5").read_bytes() == ckpt and leftovers(tmp_path) == []
    assert main(["train", "--out", str(out), "--epochs", "2", "--resume"]) == 0  # and it goes on
    assert [r["epoch"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())] == [1, 2]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """8 texture PNGs in two folders of 4, and a tiny ResNet encoder file."""
    root = tmp_path_factory.mktemp("writes")
    pictures, _, _ = make_dataset(1, size=32)
    for i, img in enumerate(pictures[:8]):
        (root / f"set{i // 4}").mkdir(exist_ok=True)
        Image.fromarray(img).save(root / f"set{i // 4}" / f"{i}.png")
    save(build_tiny("tiny-resnet", 8, rng=np.random.default_rng(0)), root / "enc.h5")
    return root


def test_extract_append_past_the_size_limit_keeps_the_cache(tmp_path, images):
    cache = tmp_path / "cache.h5"
    extract([images / "set0"], str(images / "enc.h5"), cache, target_size=16, log=quiet)
    before = cache.read_bytes()
    status, err = run_limited(["reconstruct", "extract", images / "set1", "--model", images / "enc.h5",
                               "--out", cache, "--target-size", "16"], len(before) + 64, tmp_path)
    assert status == 1
    one_error_line(err, "file size limit", str(cache))
    assert cache.read_bytes() == before and leftovers(tmp_path) == []
    assert len(read_cache(cache)) == 4  # readable, whole
    extract([images / "set1"], str(images / "enc.h5"), cache, target_size=16, log=quiet)
    assert len(read_cache(cache)) == 8


def test_reconstruct_train_resume_past_the_size_limit_keeps_the_checkpoint(tmp_path, images):
    cache, out = tmp_path / "cache.h5", tmp_path / "run"
    extract([images / "set0", images / "set1"], str(images / "enc.h5"), cache, target_size=16, log=quiet)
    args = ["reconstruct", "train", cache, "--out", out, "--widths", "16,8", "--split", "none",
            "--batch", "4", "--sample-every", "0"]
    assert main([*map(str, args), "--epochs", "1"]) == 0
    ckpt = (out / "checkpoint.h5").read_bytes()
    status, err = run_limited([*args, "--epochs", "2", "--resume"], len(ckpt) // 2, tmp_path)
    assert status == 1
    one_error_line(err, "file size limit", "checkpoint.h5")
    assert (out / "checkpoint.h5").read_bytes() == ckpt and leftovers(tmp_path) == []


# item 2: the destination is the source ----------------------------------------------------------
def test_convert_refuses_its_own_source_also_through_links(tmp_path, capsys):
    model = tmp_path / "m.h5"
    assert main(["convert", str(KERAS), str(model)]) == 0
    before = model.read_bytes()
    (tmp_path / "soft.h5").symlink_to(model)
    os.link(model, tmp_path / "hard.h5")
    capsys.readouterr()
    for src, dst in ((model, model), (tmp_path / "soft.h5", model), (model, tmp_path / "hard.h5")):
        assert main(["convert", str(src), str(dst), "--force"]) == 1
        one_error_line(capsys.readouterr().err, "is the source file")
    assert model.read_bytes() == before


# item 4: appends never follow links ---------------------------------------------------------------
def test_appends_refuse_links_and_special_files(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("mine\n")
    (tmp_path / "log.jsonl").symlink_to(outside)
    with pytest.raises(MinvertError, match="symbolic link"):
        open_nofollow(tmp_path / "log.jsonl", "a")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(MinvertError, match="not a regular file"):
        open_nofollow(tmp_path / "fifo", "ab")  # refused at once, never blocks
    assert outside.read_text() == "mine\n"


def test_a_run_never_writes_its_log_through_a_link(tmp_path):
    outside = tmp_path / "outside.jsonl"
    outside.write_text("mine\n")
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.jsonl").symlink_to(outside)
    assert main(["train", "--out", str(out), "--epochs", "1", *TRAIN]) == 0
    assert outside.read_text() == "mine\n"
    assert not (out / "log.jsonl").is_symlink() and len((out / "log.jsonl").read_text().splitlines()) == 1


# item 6: one writer at a time -------------------------------------------------------------------
def test_a_second_writer_is_refused_in_one_line(tmp_path, images, capsys):
    """flock locks belong to an open file, so a lock held here stands for another process."""
    out = tmp_path / "run"
    with run_folder_lock(out):
        assert main(["train", "--out", str(out), "--epochs", "1", *TRAIN]) == 1
        one_error_line(capsys.readouterr().err, "in use by another minvert process")
    assert not out.exists()  # the refused run left nothing, and the lock went with its holder
    dst = tmp_path / "v.h5"
    with exclusive_lock(lock_beside(dst), dst):
        assert main(["convert", str(KERAS), str(dst)]) == 1
        one_error_line(capsys.readouterr().err, "in use by another minvert process")
    assert not dst.exists()
    cache = tmp_path / "c.h5"
    with exclusive_lock(lock_beside(cache), cache):
        assert main(["reconstruct", "extract", str(images / "set0"), "--model", str(images / "enc.h5"),
                     "--out", str(cache), "--target-size", "16"]) == 1
        one_error_line(capsys.readouterr().err, "in use by another minvert process")
    assert leftovers(tmp_path) == []


def test_an_hdf5_file_open_for_writing_elsewhere_is_in_use(tmp_path):
    import h5py
    with h5py.File(tmp_path / "busy.h5", "w") as f:
        f["x"] = 1
        f.flush()
        script = ("from minvert.weights.hdf5 import open_h5\n"
                  f"with open_h5({str(tmp_path / 'busy.h5')!r}, 'a cache'): pass")
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env=child_env())
    assert "is in use by another process" in r.stderr and "corrupt" not in r.stderr


# item 7: after kill -9, the log is the checkpoint's -----------------------------------------------
def test_killed_run_resumes_with_the_log_of_its_checkpoint(tmp_path):
    """SIGKILL in epoch 3: the checkpoint holds epoch 1 or 2 (epoch 2's write waits for epoch
    1's), the log up to 2 epochs; after the resume the log equals an uninterrupted run's."""
    script = ("import os, signal, sys\n"
              "from minvert.cli.train import train_command\n"
              "from minvert.cli.main import build_parser\n"
              "args = build_parser().parse_args(sys.argv[1:])\n"
              "def kill(step):\n"
              "    if step == 7:\n"
              "        os.kill(os.getpid(), signal.SIGKILL)\n"
              "train_command(args, log=lambda *_: None, on_step=kill)\n")
    args = ["train", "--epochs", "3", *TRAIN]  # 48 images, batch 16: 3 steps per epoch
    r = subprocess.run([sys.executable, "-c", script, *args, "--out", str(tmp_path / "cut")],
                       env=child_env())
    assert r.returncode == -9
    assert main([*args, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    assert main([*args, "--out", str(tmp_path / "full")]) == 0

    def records(run):
        lines = (tmp_path / run / "log.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "images_per_s")}
                for line in lines]
    assert records("cut") == records("full") and len(records("full")) == 3
