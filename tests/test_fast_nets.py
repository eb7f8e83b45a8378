"""Whole networks on either engine: inference fusion (layers/fast/fuse.py: conv ->
batch-norm -> ReLU -> residual in one pass, batch-norm folded into the convolution) and
every layer's fast path give what the readable layers give, on NumPy and under the strict
CuPy stand-in; and the one switch. Float64 within 1e-12 relative for inference; training
gradients within 1e-10 (each function is within 1e-12, test_fast_conv.py; a 50-layer
backward through training-mode batch-norm compounds the rounding)."""
import numpy as np
import pytest

from minvert.gradcheck import rel_error
from minvert.layers import fast
from minvert.nets.decoder import build_decoder
from minvert.nets.resnet import build_resnet
from minvert.nets.vgg import build_vgg
from test_nets import SMALL_VGG, _randomise_bn


def on_each_engine(fn):
    """{True: fn() with the engine on, False: with it off}."""
    results = {}
    for on in (True, False):
        previous = fast.set_enabled(on)
        try:
            results[on] = fn()
        finally:
            fast.set_enabled(previous)
    return results


def nets(rng, xp=np):
    resnet = build_resnet(dict(depth=50, width=2, num_classes=3), rng=rng, dtype=np.float64)
    _randomise_bn(resnet, rng)
    vgg = build_vgg(SMALL_VGG, rng=rng, dtype=np.float64)
    decoder = build_decoder({"start": [2, 2, 4], "feature_size": 16, "widths": [8, 6, 4]},
                            rng=rng, dtype=np.float64)
    return [(net.to(xp), shape) for net, shape in
            [(resnet, (2, 3, 32, 32)), (vgg, (2, 3, 32, 32)), (decoder, (2, 16))]]


def check_nets(xp, rng):
    for net, shape in nets(rng, xp):
        x = xp.asarray(rng.standard_normal(shape))
        net.freeze()
        predict = on_each_engine(lambda: net.predict(x))
        assert isinstance(predict[True], type(x)) and rel_error(predict[True], predict[False]) < 1e-12
        forward = on_each_engine(lambda: net.forward(x))
        assert rel_error(forward[True], predict[False]) < 1e-12
        net.train()
        dout = xp.asarray(rng.standard_normal(forward[True].shape))

        def step():
            net.forward(x)
            dx = net.backward(dout)
            return [dx] + [g for _, _, g in net.parameters()]
        grads = on_each_engine(step)
        for g_fast, g in zip(grads[True], grads[False]):  # a conv bias before a training-
            # mode batch-norm has gradient 0: only rounding noise (1e-14) on both engines
            assert rel_error(g_fast, g) < 1e-10 or float(abs(g_fast - g).max()) < 1e-12


def test_nets_fast_equal_readable():
    check_nets(np, np.random.default_rng(0))


def test_nets_fast_equal_readable_on_the_strict_standin(strict_cupy):
    check_nets(strict_cupy, np.random.default_rng(1))


def test_batchnorm_in_training_mode_is_not_folded():
    from minvert.layers import BatchNorm2D, Conv2D
    from minvert.nets.sequential import Sequential
    net = Sequential([("conv", Conv2D(2, 3, 3, pad=1, rng=0, dtype=np.float64)),
                      ("bn", BatchNorm2D(3))]).astype(np.float64)
    net.set_mode(training=True)
    x = np.random.default_rng(4).standard_normal((4, 2, 5, 5))
    for out in on_each_engine(lambda: net.predict(x)).values():  # batch statistics: mean 0
        np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)


def test_the_switch(monkeypatch):
    previous = fast.set_enabled(None)
    try:
        monkeypatch.delenv("MINVERT_FAST", raising=False)
        assert fast.enabled() and "on" in fast.describe()
        for value, on in [("0", False), ("off", False), ("1", True), ("", True)]:
            monkeypatch.setenv("MINVERT_FAST", value)
            assert fast.enabled() is on
        assert fast.set_enabled(True) is None and fast.enabled()
        monkeypatch.setenv("MINVERT_FAST", "1")
        assert fast.set_enabled(False) is True and not fast.enabled()
        assert "off" in fast.describe()
    finally:
        fast.set_enabled(previous)


def test_info_says_which_engine_runs(capsys, monkeypatch):
    from minvert.cli import main
    previous = fast.set_enabled(None)
    try:
        for value, word in [("1", "fast engine on"), ("0", "fast engine off")]:
            monkeypatch.setenv("MINVERT_FAST", value)
            main(["info"])
            assert word in capsys.readouterr().out
    finally:
        fast.set_enabled(previous)


@pytest.mark.parametrize("engine", ["fast_engine", "readable_engine"])
def test_layers_import_nothing_of_the_engine_but_in_their_classes(engine, request):
    """The readable layer functions run alone: no call into layers/fast outside the one
    dispatch in each Layer class (checked by reading the files)."""
    import ast
    from pathlib import Path
    request.getfixturevalue(engine)
    root = Path(fast.__file__).parent.parent
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                used = {n.value.id for n in ast.walk(node) if isinstance(n, ast.Attribute)
                        and isinstance(n.value, ast.Name)}
                assert "fast" not in used, f"{path.name}: {node.name} uses the fast engine"
    for path in (root / "fast").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                assert node.module in ("base", "geometry", "backend", "errors"), \
                    f"fast/{path.name} imports {'.' * node.level}{node.module}"
