"""`minvert train`: learning, bit-identical resume after an interrupt, and bad input."""
import argparse

import numpy as np
import pytest
from PIL import Image

from minvert.backend import to_numpy
from minvert.cli import main
from minvert.errors import MinvertError
from minvert.cli.train import train_command
from minvert.weights import load_model


def _args(out, **kw):
    base = dict(data="textures", arch="tiny-vgg", out=str(out), epochs=2, batch=16, optimizer="adam",
                lr=None, n=6, val_n=2, val_fraction=0.25, size=16, seed=3, resume=False, schedule="cosine", test_n=2)
    base.update(kw)
    return argparse.Namespace(**base)


def _weights(net):
    return {n: {k: to_numpy(v).copy() for k, v in {**l.params, **l.state}.items()}
            for n, l in net.weighted_layers()}


@pytest.mark.parametrize("arch", ["tiny-vgg", "tiny-resnet"])
def test_interrupted_and_resumed_run_ends_bit_identical(tmp_path, arch):
    quiet = lambda *_: None
    size = 32 if arch == "tiny-resnet" else 16  # a ResNet stem and 4 stages need >= 32 px
    full, _ = train_command(_args(tmp_path / "full", arch=arch, size=size), log=quiet)

    def interrupt(step):
        if step == 4:  # mid-epoch: epoch 2 of 2, after its first batch
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train_command(_args(tmp_path / "cut", arch=arch, size=size), log=quiet, on_step=interrupt)
    assert (tmp_path / "cut" / "checkpoint.h5").exists()
    resumed, history = train_command(_args(tmp_path / "cut", arch=arch, size=size, resume=True), log=quiet)
    a, b = _weights(full), _weights(resumed)
    for name in a:
        for k in a[name]:
            np.testing.assert_array_equal(a[name][k], b[name][k], err_msg=f"{name}.{k}")
    assert len(history) == 2


def test_model_file_classifies_and_a_second_run_refuses_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--epochs", "1", "--n", "4", "--val-n", "1",
                 "--size", "16", "--batch", "8"]) == 0
    net = load_model(str(out / "model.h5"))
    assert net.labels[0] == "stripes" and net.preprocessing.input_size == 16
    assert "epoch   1/1" in capsys.readouterr().out
    assert main(["train", "--out", str(out), "--epochs", "1", "--n", "4", "--size", "16"]) == 1
    assert "--resume" in capsys.readouterr().err


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    train_command(_args(tmp_path / "r", epochs=1), log=lambda *_: None)
    before = (tmp_path / "r" / "checkpoint.h5").read_bytes()
    with pytest.raises(MinvertError, match="--arch tiny-resnet: .* trained with 'tiny-vgg'"):
        train_command(_args(tmp_path / "r", arch="tiny-resnet", size=32, epochs=2, resume=True),
                      log=lambda *_: None)
    run = tmp_path / "r" / "run.json"  # a run.json that disagrees with its checkpoint
    run.write_text(run.read_text().replace('"tiny-vgg"', '"tiny-resnet"').replace('"size": 16', '"size": 32'))
    with pytest.raises(MinvertError, match="different architecture"):
        train_command(_args(tmp_path / "r", epochs=2, resume=True, **{k: None for k in (
            "arch", "size", "data", "n", "val_n", "batch", "optimizer", "lr", "seed", "schedule",
            "val_fraction")}), log=lambda *_: None)
    assert (tmp_path / "r" / "checkpoint.h5").read_bytes() == before


def test_resume_takes_the_settings_of_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--epochs", "1", "--n", "4", "--val-n", "1",
                 "--size", "16", "--batch", "8", "--test-n", "0"]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--epochs", "2", "--resume"]) == 0  # --n 4 from run.json
    assert "on 32 images" in capsys.readouterr().out  # 8 classes x 4, not the default 300
    assert main(["train", "--out", str(out), "--epochs", "3", "--n", "5", "--resume"]) == 1
    assert "--n 5: the run" in capsys.readouterr().err


def _folder(root, classes, n=3, junk=()):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    for j in junk:
        (root / classes[0] / j).write_text("not an image")


def test_folder_errors_and_unreadable_files(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "--data", str(empty), "--out", str(tmp_path / "o1"), "--size", "16"]) == 1
    one = tmp_path / "one"
    _folder(one, ["a"])
    assert main(["train", "--data", str(one), "--out", str(tmp_path / "o2"), "--size", "16"]) == 1
    assert "one class" in capsys.readouterr().err
    mixed = tmp_path / "mixed"
    _folder(mixed, ["a", "b"], junk=["bad1.png", "bad2.jpg"])
    assert main(["train", "--data", str(mixed), "--out", str(tmp_path / "o3"), "--size", "16",
                 "--epochs", "1", "--batch", "4"]) == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "skipped 2 unreadable" in text and "bad1.png" in text
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_checkpoint_writer_snapshots_now_and_reports_errors(tmp_path):
    from minvert.nets.tiny import build_tiny
    from minvert.optim import Adam
    from minvert.training import CheckpointWriter, load_checkpoint
    net = build_tiny("tiny-vgg", 3, rng=np.random.default_rng(0), input_size=16)
    writer = CheckpointWriter(tmp_path / "c.h5")
    w = net.layers["conv1_1"].params["w"]
    before = to_numpy(w).copy()
    progress = {"epoch": 1, "batch": 0, "step": 0, "history": [],
                "rng": np.random.default_rng(0).bit_generator.state}
    writer.save(net, Adam(), progress)
    w += 1.0  # training goes on while the file is written: the checkpoint keeps the snapshot
    writer.wait()
    back = build_tiny("tiny-vgg", 3, rng=np.random.default_rng(1), input_size=16)
    assert load_checkpoint(tmp_path / "c.h5", back, Adam()) == progress
    np.testing.assert_array_equal(to_numpy(back.layers["conv1_1"].params["w"]), before)
    (tmp_path / "a_file").write_text("")
    broken = CheckpointWriter(tmp_path / "a_file" / "c.h5")  # its folder cannot be made
    broken.save(net, Adam(), {})
    with pytest.raises(OSError):
        broken.wait()
    broken.wait()  # reported once
