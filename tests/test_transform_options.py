"""``minvert transform`` as a user meets it (issue 23 items 2, 11-16, 18; issue 25 items 3, 4,
13, 14): exit codes, refusals before any work, --out as an image path, --force that keeps the
old run whole until the new one is written, --original-colors, which image is kept."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minvert.cli import main
from minvert.datasets import CLASSES, make_dataset
from minvert.nets.tiny import build_tiny
from minvert.transform import Objective, Settings, transform
from minvert.transform.colors import keep_original_colors
from minvert.transform.outputs import RunFolder
from minvert.weights.project import save

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("transform")
    net = build_tiny("tiny-vgg", 8, labels=list(CLASSES), rng=np.random.default_rng(0))
    save(net, d / "tiny.h5")
    x, _, _ = make_dataset(1, size=64, seed=3)
    Image.fromarray(x[2]).save(d / "dots.png")
    Image.fromarray(np.repeat(x[2][:, :, :1], 3, axis=2)).save(d / "grey.png")
    return d, net


def _cmd(files, *extra, out):
    d, _ = files
    return ["transform", str(d / "dots.png"), "--model", str(d / "tiny.h5"), "--target", "stripes",
            "--out", str(out), *extra]


def _one_error(capsys, code, expect):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("minvert: error: "), err
    assert expect in err[0], err[0]


@pytest.mark.parametrize("extra,expect", [
    (["--init", "noise", "--init-image", "IMG"], "give one of them"),
    (["--jitter", "4", "--history", "5"], "--history is L-BFGS's memory"),
    (["--optimizer", "adam", "--history", "5"], "--optimizer adam is first-order"),
    (["--preset", "bear-jitter", "--optimizer", "lbfgs"], "L-BFGS cannot follow"),
    (["--preset", "tiger-jitter", "--history", "5"], "--optimizer gd is first-order"),
    (["--jitter", "64", "--optimizer", "gd"], "--jitter 64: the image the network sees is 64x64"),
    (["--style-layers", ""], "--style-layers is empty"),
    (["--style-layers", " , "], "--style-layers is empty"),
    (["--style", "1", "--style-layers", "conv9_9"], "no layer 'conv9_9' (read as its ReLU output 'relu9_9')"),
])
def test_contradictions_and_bad_values_are_refused_before_any_work(files, tmp_path, capsys, extra, expect):
    extra = [str(files[0] / "dots.png") if a == "IMG" else a for a in extra]
    _one_error(capsys, main(_cmd(files, *extra, out=tmp_path / "out")), expect)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra,expect", [
    (["--style", "1e308"], "argument --style: '1e308': give a number from -1000000 to 1000000"),
    (["--tv", "-1e40"], "argument --tv: '-1e40'"),
    (["--history", str(2**63)], "argument --history: '9223372036854775808': give a whole number"),
])
def test_out_of_range_numbers_are_usage_errors(files, tmp_path, capsys, extra, expect):
    """Refused while the options are parsed (exit 2, one line), before anything is read."""
    with pytest.raises(SystemExit) as stop:
        main(_cmd(files, *extra, out=tmp_path / "out"))
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and err[0].startswith("minvert: error: "), err
    assert expect in err[0], err[0]
    assert not (tmp_path / "out").exists()


def test_empty_out_is_refused(files, capsys):
    _one_error(capsys, main(_cmd(files, out="")), "--out is empty")


def test_negative_multipliers_run_and_say_the_term_is_rewarded(files, tmp_path, capsys):
    """The paper writes -1e-11: typed after the option as it is, not mistaken for an option."""
    assert main(_cmd(files, "--iters", "1", "--content", "-1e-3", "--tv=-1e-6", out=tmp_path / "o")) == 0
    out = capsys.readouterr().out
    assert "--content -0.001 is negative: the content term is rewarded rather than penalised" in out
    assert "--tv -1e-06 is negative" in out and "1 iteration," in out


def test_help_labels_all_four_multipliers_of_every_preset(capsys):
    with pytest.raises(SystemExit):
        main(["transform", "--help"])
    text = capsys.readouterr().out
    assert "bear-loose         brown_bear: content -1e-11, style 0, tv 1e-06, color 0" in text
    assert "tiger-body-jitter  tiger: content 1e-10, style -1e-12, tv 0, color 1e-11, body mask, jitter 16" in text


def test_out_as_an_image_path_puts_the_runs_files_beside_it(files, tmp_path, capsys):
    out = tmp_path / "tiger.png"
    assert main(_cmd(files, "--iters", "2", "--snapshot-every", "1", out=out)) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "tiger.log.jsonl", "tiger.panel.png", "tiger.png", "tiger.snapshot_0001.png",
        "tiger.snapshot_0002.png", "tiger.summary.json"]
    summary = json.loads((tmp_path / "tiger.summary.json").read_text())
    assert np.asarray(Image.open(out)).shape == (64, 64, 3) and summary["iterations"] == 2
    capsys.readouterr()
    _one_error(capsys, main(_cmd(files, out=out)), "pass --force")
    _one_error(capsys, main(_cmd(files, out=tmp_path / "tiger.gif")), "PNG or JPEG")
    (tmp_path / "old.png").mkdir()  # a folder an earlier version made for --out old.png
    assert main(_cmd(files, "--iters", "1", out=tmp_path / "old.png")) == 0
    assert (tmp_path / "old.png" / "result.png").exists()


def test_force_keeps_the_old_run_whole_until_the_new_one_is_written(files, tmp_path, monkeypatch):
    """A run that fails halfway (a full disk, say) leaves the earlier run as it was; a run that
    succeeds replaces it as a whole (its old snapshots included)."""
    d, net = files
    img = np.asarray(Image.open(d / "dots.png"))
    out = tmp_path / "run"
    transform(net, img, Settings(target=0, iters=3, snapshot_every=1), out_dir=out, log=lambda *_: None)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "snapshot_0003.png" in before
    real = Objective.evaluate
    calls = {"n": 0}

    def disk_full(self, x, **kw):
        calls["n"] += 1
        if calls["n"] > 4:
            raise OSError(28, "No space left on device")
        return real(self, x, **kw)
    monkeypatch.setattr(Objective, "evaluate", disk_full)
    with pytest.raises(OSError):
        transform(net, img, Settings(target=1, iters=5), out_dir=out, force=True, log=lambda *_: None)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing staged is left either
    monkeypatch.setattr(Objective, "evaluate", real)
    transform(net, img, Settings(target=1, iters=2), out_dir=out, force=True, log=lambda *_: None)
    after = sorted(p.name for p in out.iterdir())
    assert after == ["log.jsonl", "panel.png", "result.png", "summary.json"]
    assert len((out / "log.jsonl").read_text().splitlines()) == 3  # iteration 0 + 2: a fresh log


def test_a_killed_runs_staging_is_swept_and_the_log_never_follows_a_link(files, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    dead = out / ".minvert-partial-999999999"  # no such process
    dead.mkdir()
    (dead / "log.jsonl").write_text("{}\n")
    run = RunFolder(out, force=False)
    assert not dead.exists()
    outside = tmp_path / "outside.txt"
    outside.write_text("")
    os.symlink(outside, run.staging / "log.jsonl")
    with pytest.raises(OSError):
        run.append_log({"iteration": 0})
    assert outside.read_text() == ""
    run.abort()
    assert list(out.iterdir()) == []


def test_the_kept_image_and_its_probability_are_explained(files):
    d, net = files
    img = np.asarray(Image.open(d / "dots.png"))
    lines = []
    summary = transform(net, img, Settings(target=0, iters=3), log=lines.append)
    kept = [line for line in lines if line.startswith("kept: ")]
    assert kept == [summary["kept"]]
    assert "the last iterate (iteration 3)" in kept[0] and "as saved (pixels rounded to 0..255)" in kept[0]
    assert f"{summary['probability_last_iterate']:.4f} there" in kept[0]
    assert f"{summary['probability_after']:.4f} as saved" in kept[0]


def test_original_colors_keep_the_photos_chrominance_and_grey_stays_grey(files, strict_cupy):
    d, net = files
    grey = np.asarray(Image.open(d / "grey.png"))
    result = transform(net, grey, Settings(target=0, iters=3, original_colors=True),
                       log=lambda *_: None)["result"]
    assert (result[:, :, 0] == result[:, :, 1]).all() and (result[:, :, 1] == result[:, :, 2]).all()
    assert (result != grey).any()
    colour = np.asarray(Image.open(d / "dots.png"))
    other = np.random.default_rng(0).integers(0, 256, colour.shape, dtype=np.uint8)
    out = keep_original_colors(other, colour)
    to_yiq = np.array([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263],
                       [0.211456, -0.522591, 0.311135]])  # NTSC, an independent round trip
    yiq = np.concatenate([other @ to_yiq[:1].T, colour @ to_yiq[1:].T], axis=2)
    expected = np.clip(np.rint(yiq @ np.linalg.inv(to_yiq).T), 0, 255)
    assert np.abs(out - expected).max() <= 1 and (out != other).any()
    on_device = keep_original_colors(strict_cupy.asarray(other), strict_cupy.asarray(colour))
    np.testing.assert_array_equal(on_device.get(), out)


def _ctrl_c_as_in_a_terminal():
    """A job started in the background by a script (``cmd &``) inherits SIGINT ignored, and so
    would this child: give it the default a terminal gives, which Python turns into
    KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_keeps_the_last_good_image_and_exits_130(files, tmp_path):
    """A real SIGINT to a running transform (a process of its own): the result is written, the
    output says so, the exit status is 130 as for every long command."""
    d, _ = files
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "minvert", *_cmd(files, "--iters", "100000",
                                                                     "--tv", "1e-4", out=out)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                [p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p])},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ctrl_c_as_in_a_terminal)
    for line in proc.stdout:
        if line.startswith("iter    2/"):
            break
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "kept the last good image" in rest and "minvert: interrupted" in err
    assert (out / "result.png").exists() and json.loads((out / "summary.json").read_text())["stopped_early"]


@pytest.mark.parametrize("argv,patch", [
    (["train", "--epochs", "1", "--n", "4", "--val-n", "2", "--test-n", "1", "--out", "{tmp}/t"],
     "minvert.optim.Adam.step"),
    (["dataset", "textures", "--n", "2", "--out", "{tmp}/d"], "PIL.Image.Image.save"),
    (["demo", "--out", "{tmp}/demo"], "minvert.transform.objective.Objective.evaluate"),
])
def test_other_long_commands_exit_130_on_ctrl_c(argv, patch, tmp_path, monkeypatch, capsys):
    def interrupted(*a, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(patch, interrupted)
    assert main([a.format(tmp=tmp_path) for a in argv]) == 130
    assert "minvert: interrupted" in capsys.readouterr().err


def test_target_suggestions_and_missing_weights_point_somewhere_useful(files, tmp_path, capsys,
                                                                        monkeypatch):
    from minvert.labels import imagenet
    with pytest.raises(Exception, match=r"closest: tiger cat, Persian cat, Siamese cat, Egyptian cat"):
        imagenet().index("cat")
    monkeypatch.setenv("MINVERT_WEIGHTS", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path))
    code = main(["transform", str(files[0] / "dots.png"), "--target", "tiger", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "--model tiny-vgg-textures" in err and "minvert convert" in err


def test_an_overflowing_run_ends_with_one_error_line_and_its_last_good_image(files, tmp_path, capsys,
                                                                             monkeypatch):
    """Issue 25 item 13: a loss that becomes inf/NaN mid-run (a multiplier too large for the
    network) writes the last good image and says why it exits 1."""
    real, calls = Objective.evaluate, {"n": 0}

    def overflow(self, x, **kw):
        calls["n"] += 1
        total, values, logits, dx = real(self, x, **kw)
        return (float("inf") if calls["n"] > 3 else total), values, logits, dx
    monkeypatch.setattr(Objective, "evaluate", overflow)
    code = main(_cmd(files, "--iters", "10", out=tmp_path / "o"))
    _one_error(capsys, code, "the loss became NaN/inf at iteration")
    assert (tmp_path / "o" / "result.png").exists()


def test_kill_9_during_a_forced_rerun_leaves_the_earlier_run_whole(files, tmp_path):
    """Issue 25 item 3, with a real SIGKILL: the earlier run's files are byte for byte as they
    were; the next run sweeps the killed one's staging folder."""
    out = tmp_path / "run"
    assert main(_cmd(files, "--iters", "2", out=out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p])}
    proc = subprocess.Popen([sys.executable, "-m", "minvert", *_cmd(files, "--iters", "100000",
                                                                     "--force", out=out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    for line in proc.stdout:
        if line.startswith("iter    2/"):
            break
    proc.kill()
    proc.wait(timeout=60)
    assert {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")} == before
    assert main(_cmd(files, "--iters", "1", "--force", out=out)) == 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
