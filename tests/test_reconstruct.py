"""Paper 003 end to end on tiny shapes: feature cache, decoder training, evaluation, decode, CLI.

The encoder is a randomly initialised tiny ResNet (128-d pooled feature) saved to a project file;
the images are generated textures written as PNG files; the decoder is 4x4x8 -> [16, 8] -> 16x16.
"""
import argparse
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from minvert.backend import to_numpy
from minvert.datasets import make_dataset
from minvert.errors import FormatError, MinvertError, ShapeError
from minvert.gradcheck import directional_check
from minvert.images import load_image, resize_exact
from minvert.nets.preprocessing import Preprocessing
from minvert.layers.loss import binary_cross_entropy
from minvert.nets.decoder import PAPER_CONFIG, build_decoder
from minvert.nets.resnet import build_resnet
from minvert.nets.tiny import TINY_CONFIGS, build_tiny
from minvert.reconstruct.cli import add_cli
from minvert.reconstruct.evaluate import decode, evaluate
from minvert.reconstruct.cache_file import read_cache
from minvert.reconstruct.features import extract
from minvert.reconstruct.runs import decoder_param_count, make_decoder_config, make_split, read_run
from minvert.reconstruct.train import train
from minvert.weights.project import load, save

SMALL = {"widths": [16, 8]}  # 4x4x8 -> 8 -> 16 px


def quiet(_):
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """14 texture PNGs (the first 10 are the paper split's held-out set), the encoder file and
    a cache with 16 px targets."""
    root = tmp_path_factory.mktemp("recon")
    images, _, _ = make_dataset(2, size=32)
    (root / "imgs").mkdir()
    paths = []
    for i, img in enumerate(images[:14]):
        paths.append(str(root / "imgs" / f"{i:02d}.png"))
        Image.fromarray(img).save(paths[-1])
    encoder = build_tiny("tiny-resnet", 8, rng=np.random.default_rng(0))
    save(encoder, root / "enc.h5")
    extract(paths, str(root / "enc.h5"), root / "cache.h5", batch_size=5, target_size=16, log=quiet)
    return {"root": root, "paths": paths, "encoder": encoder, "enc": str(root / "enc.h5"),
            "cache": root / "cache.h5"}


@pytest.fixture(scope="module")
def trained(data):
    """A decoder overfitted to the 4 training images (one Adadelta step per epoch)."""
    run = data["root"] / "run"
    history = train(data["cache"], run, decoder=SMALL, epochs=150, batch_size=4,
                    checkpoint_every=1000, log=quiet)
    return {"run": run, "history": history}


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def one_line_error(kind, fn, *args, **kwargs):
    with pytest.raises(kind) as e:
        fn(*args, **kwargs)
    assert "\n" not in str(e.value)
    return str(e.value)


# feature cache -------------------------------------------------------------------------------
def test_cache_holds_pooled_features_targets_and_names(data):
    c = read_cache(data["cache"])
    assert c.features.shape == (14, 128) and c.features.dtype == np.float32
    assert c.targets.shape == (14, 16, 16, 3) and c.targets.dtype == np.uint8
    assert c.names == data["paths"]
    assert c.header["feature_size"] == 128 and c.header["target_size"] == 16
    assert c.header["preprocessing"]["mode"] == "unit"
    net = data["encoder"]
    for i in (0, 13):
        img = load_image(data["paths"][i])
        x = net.preprocessing.prepare(img)
        np.testing.assert_allclose(c.features[i], net.features(x)[0], rtol=1e-5, atol=1e-6)
        _, acts = net.forward_taps(x, ["layer4"], output=False)
        fmap = acts["layer4"][0]  # (128, 2, 2) before the global average pool
        np.testing.assert_allclose(c.features[i], fmap.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
        assert not np.allclose(c.features[i], fmap[:, 0, 0])  # the paper code's Keras >= 2.2 trap
        np.testing.assert_array_equal(c.targets[i], resize_exact(img, 16, "bilinear"))
    assert (c.features >= 0).all()  # means of ReLU outputs


def test_extract_resume_appends_only_new_files(tmp_path, data):
    cache, lines = tmp_path / "c.h5", []
    extract(data["paths"][:5], data["enc"], cache, target_size=16, log=quiet)
    first = read_cache(cache)
    r = extract(data["paths"][:8], data["enc"], cache, target_size=16, log=lines.append)
    assert r["added"] == 3 and r["total"] == 8
    assert any("5 of 8 images already" in line for line in lines)
    c = read_cache(cache)
    assert c.names == data["paths"][:8]
    np.testing.assert_array_equal(c.features[:5], first.features)
    assert extract(data["paths"][:8], data["enc"], cache, target_size=16, log=quiet)["added"] == 0


def test_interrupted_extraction_keeps_finished_batches(tmp_path, data, monkeypatch):
    import minvert.reconstruct.features as rec
    real, calls = rec.encode, []

    def encode_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    cache = tmp_path / "c.h5"
    monkeypatch.setattr(rec, "encode", encode_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        extract(data["paths"], data["enc"], cache, batch_size=4, target_size=16, log=quiet)
    assert read_cache(cache).names == data["paths"][:8]  # two finished batches of 4
    monkeypatch.setattr(rec, "encode", real)
    assert extract(data["paths"], data["enc"], cache, batch_size=4, target_size=16, log=quiet)["added"] == 6
    c, full = read_cache(cache), read_cache(data["cache"])
    assert c.names == full.names
    np.testing.assert_allclose(c.features, full.features, rtol=1e-5, atol=1e-6)


def test_extract_skips_and_lists_unreadable_files(tmp_path, data):
    broken, missing = tmp_path / "broken.png", tmp_path / "missing.png"
    broken.write_bytes(b"not an image at all")
    lines = []
    r = extract([data["paths"][0], broken, missing, data["paths"][1]], data["enc"],
                tmp_path / "c.h5", target_size=16, log=lines.append)
    assert r["added"] == 2 and r["skipped"] == [str(broken), str(missing)]
    warning = [line for line in lines if line.startswith("warning")]
    assert len(warning) == 1 and "2 unreadable" in warning[0]
    assert str(broken) in warning[0] and str(missing) in warning[0]
    assert read_cache(tmp_path / "c.h5").names == data["paths"][:2]


def test_extract_refuses_another_encoder_or_target_size(tmp_path, data):
    cache = tmp_path / "c.h5"
    extract(data["paths"][:3], data["enc"], cache, target_size=16, log=quiet)
    before = cache.read_bytes()
    one_line_error(MinvertError, extract, data["paths"], data["enc"], cache, target_size=32, log=quiet)
    other = build_tiny("tiny-resnet", 8, rng=np.random.default_rng(1))
    one_line_error(MinvertError, extract, data["paths"], other, cache, target_size=16, log=quiet)
    assert cache.read_bytes() == before


# decoder, split, gradient ------------------------------------------------------------------
def test_paper_decoder_parameter_count_and_defaults():
    assert decoder_param_count(PAPER_CONFIG) == 27_505_347
    assert make_decoder_config(2048, 256) == json.loads(json.dumps(PAPER_CONFIG))
    small = make_decoder_config(128, 64)
    assert small["start"] == [4, 4, 8] and small["widths"] == [512, 256, 128, 64]
    config = make_decoder_config(128, 16, **SMALL)
    assert decoder_param_count(config) == build_decoder(config).num_params()
    one_line_error(MinvertError, make_decoder_config, 128, 16, widths=[8, 8, 8])  # 32 px > 16 px


def test_splits():
    assert make_split(14, "paper") == (list(range(10, 14)), list(range(10)))
    assert make_split(14, "none") == (list(range(14)), [])
    train_rows, test_rows = make_split(20, "fraction:0.25", seed=3)
    assert len(test_rows) == 5 and sorted(train_rows + test_rows) == list(range(20))
    assert make_split(20, "fraction:0.25", seed=3) == (train_rows, test_rows)
    assert make_split(14, "paper", n_train=2)[0] == [10, 11]
    one_line_error(MinvertError, make_split, 10, "paper")
    one_line_error(MinvertError, make_split, 14, "random")


def test_decoder_with_bce_passes_a_directional_gradient_check():
    config = make_decoder_config(16, 8, widths=[5, 3], start=[2, 2, 4])
    net = build_decoder(config, rng=np.random.default_rng(0), dtype=np.float64)
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((3, 16)), rng.uniform(size=(3, 3, 8, 8))
    _, dp = binary_cross_entropy(net.forward(x), t)
    dx = net.backward(dp)
    params = [(p, g) for _, p, g in net.parameters()]
    analytic, numerical, err = directional_check(
        lambda: binary_cross_entropy(net.forward(x), t)[0], [x] + [p for p, _ in params],
        [dx] + [g for _, g in params], rng=rng)
    assert err < 1e-6, (analytic, numerical)


def test_4x4_decoder_pads_as_tensorflow_same_and_passes_a_gradient_check():
    """--kernel 4: each hidden conv pads 1 top/left and 2 bottom/right (TensorFlow 'same' for an
    even kernel), checked against a naive convolution of the explicitly padded input."""
    from naive_conv import conv2d_naive
    config = make_decoder_config(16, 8, widths=[5, 3], start=[2, 2, 4], kernel=4)
    assert config["kernel"] == 4
    net = build_decoder(config, rng=np.random.default_rng(0), dtype=np.float64)
    assert decoder_param_count(config) == net.num_params()
    conv = net["conv1"]
    x = np.random.default_rng(2).standard_normal((2, 4, 2, 2))
    padded = np.pad(x, ((0, 0), (0, 0), (1, 2), (1, 2)))
    expected = conv2d_naive(padded, conv.params["w"], conv.params["b"])
    np.testing.assert_allclose(conv.forward(x), expected, rtol=1e-12, atol=1e-12)
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((3, 16)), rng.uniform(size=(3, 3, 8, 8))
    _, dp = binary_cross_entropy(net.forward(x), t)
    dx = net.backward(dp)
    params = [(p, g) for _, p, g in net.parameters()]
    _, _, err = directional_check(
        lambda: binary_cross_entropy(net.forward(x), t)[0], [x] + [p for p, _ in params],
        [dx] + [g for _, g in params], rng=rng)
    assert err < 1e-6
    one_line_error(MinvertError, make_decoder_config, 16, 8, widths=[5, 3], start=[2, 2, 4], kernel=5)


# training -------------------------------------------------------------------------------------
def test_adadelta_training_lowers_the_loss_and_writes_the_run(trained):
    history, run = trained["history"], trained["run"]
    assert len(history) == 150
    assert history[-1]["loss"] < history[0]["loss"] - 0.02
    assert history[-1]["psnr"] > history[0]["psnr"] + 2
    assert {"val_psnr", "images_per_s", "seconds"} <= set(history[-1])
    for name in ("run.json", "checkpoint.h5", "log.jsonl", "decoder.h5", "loss.png", "psnr.png"):
        assert (run / name).is_file(), name
    record = json.loads((run / "run.json").read_text())
    assert record["split"] == {"kind": "paper", "train": [10, 11, 12, 13], "test": list(range(10))}
    assert record["cache"]["feature_size"] == 128 and record["output_size"] == 16
    assert record["settings"]["optimizer"] == "adadelta" and record["settings"]["lr"] == 1.0
    assert record["target_downsample"] is None
    assert len((run / "log.jsonl").read_text().splitlines()) == 150


def test_resume_after_interrupt_is_bit_identical(tmp_path, data):
    settings = dict(decoder=SMALL, epochs=3, batch_size=3, log=quiet)  # 2 batches per epoch
    train(data["cache"], tmp_path / "a", **settings)

    def interrupt(step):
        if step == 3:  # first batch of epoch 2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(data["cache"], tmp_path / "b", on_step=interrupt, **settings)
    # the interrupted run's weights are usable as they are, and say so
    assert json.loads((tmp_path / "b" / "decoder.json").read_text()) == {"epoch": 1, "epochs": 3,
                                                                          "finished": False}
    train(data["cache"], tmp_path / "b", resume=True, log=quiet)  # settings come from run.json
    a, b = load(tmp_path / "a" / "decoder.h5"), load(tmp_path / "b" / "decoder.h5")
    pairs = list(zip(a.parameters(), b.parameters()))
    assert len(pairs) == 6
    for (name, pa, _), (_, pb, _) in pairs:
        assert np.array_equal(to_numpy(pa), to_numpy(pb)), name


def test_run_killed_before_its_first_checkpoint_starts_afresh(tmp_path, data):
    run = tmp_path / "r"
    train(data["cache"], run, decoder=SMALL, epochs=1, batch_size=4, log=quiet)
    (run / "checkpoint.h5").unlink()  # as if killed (not Ctrl-C) before the first checkpoint
    one_line_error(MinvertError, train, data["cache"], run, resume=True, log=quiet)
    assert len(train(data["cache"], run, decoder=SMALL, epochs=2, batch_size=4, log=quiet)) == 2
    assert len((run / "log.jsonl").read_text().splitlines()) == 2


def test_smaller_decoder_trains_on_box_downsampled_targets(tmp_path, data):
    history = train(data["cache"], tmp_path / "r", decoder={"widths": [8]}, epochs=2, batch_size=4,
                    split="none", log=quiet)
    record = json.loads((tmp_path / "r" / "run.json").read_text())
    assert record["output_size"] == 8 and record["target_downsample"] == "box"
    assert "val_psnr" not in history[-1]


# evaluation and decoding ---------------------------------------------------------------------
def test_evaluate_beats_the_mean_image_on_training_images(data, trained):
    r = evaluate(trained["run"], data["cache"], log=quiet)
    saved = json.loads((trained["run"] / "evaluation.json").read_text())
    assert saved["train"]["count"] == 4 and saved["held_out"]["count"] == 10
    assert saved["candidates"] == 14 and saved["epochs_trained"] == 150
    for name in ("train", "held_out"):
        s = r[name]
        assert 0 < s["mse"] < 1 and -1 < s["ssim"] <= 1 and np.isfinite(s["psnr"])
        for key in ("reidentification", "reidentification_mean_image", "reidentification_targets"):
            assert 0 <= s[key]["top1"] <= s[key]["top5"] <= 1
        # one constant image can only point to the one original it resembles most
        assert s["reidentification_mean_image"]["top1"] <= 1 / s["count"]
        assert s["reidentification_chance"] == {"top1": 1 / 14, "top5": 5 / 14}
        lo, hi = s["ci95"]["psnr_gain"]
        assert lo <= s["psnr"] - s["mean_image"]["psnr"] <= hi
        lo, hi = s["ci95"]["reidentification_top1"]
        assert 0 <= lo <= s["reidentification"]["top1"] <= hi <= 1 and hi - lo > 0.1  # few images: wide
    assert r["train"]["psnr"] > r["train"]["mean_image"]["psnr"] + 1
    assert set(r["random"]) == {"abs_scaled", "normal", "real_feature_mean"}
    sheet = load_image(trained["run"] / "contact_sheet.png")
    assert sheet.shape[0] > 3 * 128 and sheet.shape[1] > 8 * 128


def test_decode_vectors_and_images(tmp_path, data, trained):
    c = read_cache(data["cache"])
    np.save(tmp_path / "one.npy", c.features[0])
    np.save(tmp_path / "two.npy", c.features[1:3])
    outs = decode(trained["run"], [tmp_path / "one.npy", tmp_path / "two.npy", data["paths"][3]],
                  tmp_path / "out", log=quiet)
    assert [p.rsplit("/", 1)[1] for p in outs] == ["one_recon.png", "two_0_recon.png",
                                                     "two_1_recon.png", "03_recon.png"]
    assert all(load_image(p).shape == (16, 16, 3) for p in outs)
    one_line_error(MinvertError, decode, trained["run"], [tmp_path / "one.npy"], tmp_path / "out", log=quiet)
    np.save(tmp_path / "bad.npy", np.zeros(7))
    one_line_error(ShapeError, decode, trained["run"], [tmp_path / "bad.npy"], tmp_path / "o2", log=quiet)


# bad input -------------------------------------------------------------------------------------
def test_bad_inputs_give_one_line_errors_and_change_nothing(tmp_path, data, trained):
    run = trained["run"]
    before = snapshot(run)
    # a cache of 64-d features (another encoder) against the 128-d run
    narrow = build_resnet(dict(TINY_CONFIGS["tiny-resnet"], width=8),
                          preprocessing=Preprocessing("unit", 64))
    extract(data["paths"][:12], narrow, tmp_path / "c64.h5", target_size=16, log=quiet)
    assert "64-d" in one_line_error(MinvertError, evaluate, run, tmp_path / "c64.h5", log=quiet)
    one_line_error(MinvertError, train, tmp_path / "c64.h5", run, resume=True, log=quiet)
    # the run folder holds another decoder architecture
    msg = one_line_error(MinvertError, train, data["cache"], run, decoder={"widths": [8, 8]},
                         resume=True, log=quiet)
    assert "another architecture" in msg
    one_line_error(MinvertError, train, data["cache"], run, log=quiet)  # exists, no --resume
    one_line_error(MinvertError, train, data["cache"], run, resume=True, lr=0.5, log=quiet)
    assert snapshot(run) == before
    # a truncated cache
    truncated = tmp_path / "half.h5"
    full = data["cache"].read_bytes()
    truncated.write_bytes(full[:len(full) // 2])
    one_line_error(FormatError, read_cache, truncated)
    one_line_error(FormatError, train, truncated, tmp_path / "r", log=quiet)
    assert not (tmp_path / "r").exists()
    one_line_error(FormatError, extract, data["paths"], data["enc"], truncated, target_size=16, log=quiet)
    assert truncated.read_bytes() == full[:len(full) // 2]


# command line ----------------------------------------------------------------------------------
def test_cli_runs_every_step(tmp_path, data, capsys):
    from minvert.cli.common import add_device_option
    parser = argparse.ArgumentParser(prog="minvert reconstruct")
    add_cli(parser, add_device_option)

    def run(*argv):
        args = parser.parse_args([str(a) for a in argv])
        return args.handler(args)

    cache, out = tmp_path / "c.h5", tmp_path / "run"
    assert run("extract", data["root"] / "imgs", "--model", data["enc"], "--out", cache,
               "--target-size", "16", "--batch", "7") == 0
    assert run("train", cache, "--out", out, "--widths", "16,8", "--epochs", "2", "--batch", "4",
               "--optimizer", "adam", "--lr", "0.01") == 0
    assert run("train", cache, "--out", out, "--epochs", "3", "--resume") == 0
    assert len((out / "log.jsonl").read_text().splitlines()) == 3
    assert run("evaluate", out, cache, "--max-train", "2") == 0
    assert json.loads((out / "evaluation.json").read_text())["train"]["count"] == 2
    assert run("decode", out, data["paths"][0], "--out", tmp_path / "dec") == 0
    assert (tmp_path / "dec" / "00_recon.png").is_file()
    assert run() == 2  # no step: prints this command's help
    assert "extract" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["train", str(cache), "--out", str(out), "--widths", "16,x"])


def test_train_defaults_are_the_papers():
    # BCE, Adadelta lr 1.0 rho 0.95 eps 1e-8 (tf.keras 2.1.2-tf in TF 1.5.0), batch 30
    from minvert.reconstruct.runs import DEFAULT_LR, DEFAULTS
    assert (DEFAULTS["loss"], DEFAULTS["optimizer"], DEFAULT_LR["adadelta"], DEFAULTS["rho"],
            DEFAULTS["eps"], DEFAULTS["batch_size"]) == ("bce", "adadelta", 1.0, 0.95, 1e-8, 30)


def test_sigterm_is_saved_like_ctrl_c_and_an_unfinished_run_can_be_evaluated(tmp_path, data):
    import os
    import signal
    run = tmp_path / "r"

    def terminate(step):
        if step == 5:  # epoch 3, first batch (2 batches per epoch)
            os.kill(os.getpid(), signal.SIGTERM)

    lines = []
    with pytest.raises(KeyboardInterrupt):
        train(data["cache"], run, decoder=SMALL, epochs=6, batch_size=3, sample_every=1,
              on_step=terminate, log=lines.append)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
    assert any("interrupted: checkpoint saved" in line for line in lines)
    assert (run / "checkpoint.h5").is_file() and (run / "samples.png").is_file()
    notes = []
    result = evaluate(run, data["cache"], log=notes.append)
    assert tuple(result["decoder_epoch"]) == (2, 6)
    assert any("unfinished" in n and "epoch 2 of 6" in n for n in notes)
    history = train(data["cache"], run, resume=True, log=quiet)
    assert len(history) == 6
    assert json.loads((run / "decoder.json").read_text())["finished"] is True


def test_snapshots_at_given_epochs_and_progress_within_an_epoch(tmp_path, data):
    from minvert.reconstruct.watch import Meter
    train(data["cache"], tmp_path / "r", decoder=SMALL, epochs=4, batch_size=2, log=quiet,
          snapshot_epochs=[1, 3], snapshot_rows=[10, 11])
    names = sorted(p.name for p in (tmp_path / "r" / "epochs").iterdir())
    assert names == ["epoch_00001.png", "epoch_00003.png"]
    assert load_image(tmp_path / "r" / "epochs" / names[0]).shape == (32, 16, 3)  # two rows stacked
    ticks, lines = iter(range(0, 1000, 5)), []
    meter = Meter(100, 3, lines.append, every=10, clock=lambda: float(next(ticks)))
    meter.start_epoch(1)
    for _ in range(9):
        meter.step(10)
    assert lines and lines[0].startswith("  epoch 2/3: 20/100 images, 2.0 img/s, epoch ETA 40s, run ETA 1m30s")


def test_every_figure_is_one_command(tmp_path, data, capsys):
    """Figs. 1-5 through `minvert reconstruct figure ...` on the small cache: each writes its PNG,
    and a second call continues the run instead of retraining it."""
    from minvert.cli import main
    cache = str(data["cache"])
    common = ["--widths", "16,8", "--batch", "4", "--device", "cpu"]
    assert main(["reconstruct", "figure", "epochs", cache, "--out", str(tmp_path / "f1"),
                 "--at", "1,3", "--rows", "10,11", *common]) == 0
    strip = load_image(tmp_path / "f1" / "figure_epochs.png")
    assert strip.shape[1] > strip.shape[0]  # 2 rows of 3 tiles
    assert main(["reconstruct", "figure", "epochs", cache, "--out", str(tmp_path / "f1"),
                 "--at", "1,2,3", "--rows", "10,11", *common]) == 1  # epoch 2 was not snapshotted
    assert "no snapshot after epoch(s) [2]" in capsys.readouterr().err
    assert len(read_run(tmp_path / "f1")["split"]["train"]) == 1  # the caption's one image
    run = str(tmp_path / "f2")
    assert main(["reconstruct", "figure", "features", cache, "--out", run, "--epochs", "3", *common]) == 0
    assert len(read_run(run)["split"]["train"]) == 2  # "trained on two images"
    assert main(["reconstruct", "figure", "random", run, cache, "--count", "3",
                 "--out", str(tmp_path / "f3.png")]) == 0
    assert "nearest training image" in capsys.readouterr().out
    assert main(["reconstruct", "figure", "random", run, cache, "--out", str(tmp_path / "f3.png")]) == 1
    assert "--force" in capsys.readouterr().err  # never overwritten silently
    assert main(["reconstruct", "figure", "sizes", cache, "--out", str(tmp_path / "f45"), "--sizes", "2,4",
                 "--epochs", "3,2", *common]) == 0
    for path in (tmp_path / "f2" / "figure_features.png", tmp_path / "f3.png",
                 tmp_path / "f45" / "figure_sizes.png"):
        assert load_image(path).ndim == 3
    assert len(read_run(tmp_path / "f45" / "train_2")["split"]["train"]) == 2
    assert len((tmp_path / "f45" / "train_2" / "log.jsonl").read_text().splitlines()) == 3


def test_decode_refuses_a_fifo_and_a_damaged_decoder_json(tmp_path, data, trained):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "fifo.npy")  # np.load would wait for a writer forever
    msg = one_line_error(MinvertError, decode, trained["run"], [tmp_path / "fifo.npy"],
                         tmp_path / "out", log=quiet)
    assert "not a regular file" in msg
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    np.save(tmp_path / "one.npy", read_cache(data["cache"]).features[0])
    for damage in ("{", "[]", '{"epoch": "3", "epochs": 5}', '{"epoch": 1e400, "epochs": 5}'):
        (run / "decoder.json").write_text(damage)
        msg = one_line_error(FormatError, decode, run, [tmp_path / "one.npy"], tmp_path / "o2",
                             log=quiet)
        assert "decoder.json" in msg
        msg = one_line_error(FormatError, evaluate, run, data["cache"], log=quiet)
        assert "decoder.json" in msg
