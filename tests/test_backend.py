"""Device choice (--device / $MINVERT_DEVICE, parsed in backend.py only) and the one-line
refusal when a network meets an array from the other side of the host/GPU boundary."""
import numpy as np
import pytest

from minvert import backend
from minvert.errors import DeviceError
from minvert.nets.tiny import build_tiny


@pytest.mark.parametrize("spec,parsed", [("cpu", ("cpu", None)), ("gpu", ("gpu", None)),
                                         ("GPU:1", ("gpu", 1)), ("cuda", ("gpu", None)),
                                         (" cuda:0 ", ("gpu", 0))])
def test_device_spellings(spec, parsed):
    assert backend.parse_device(spec) == parsed


@pytest.mark.parametrize("spec", ["gpu:", "gpu:-1", "tpu", "cpu:0", "gpu:one", ""])
def test_bad_device_is_one_line_error(spec):
    with pytest.raises(DeviceError, match="is not a device; use cpu, gpu, gpu:N") as e:
        backend.parse_device(spec)
    assert "\n" not in str(e.value)


def test_gpu_request_without_cupy_says_what_to_install(monkeypatch):
    monkeypatch.setattr(backend, "_CUPY", False)
    monkeypatch.setattr(backend, "_CUPY_PROBLEM", "CuPy is not installed")
    with pytest.raises(DeviceError, match=r"CuPy is not installed: install minvert\[gpu\]"):
        backend.select_device("gpu")
    monkeypatch.setenv("MINVERT_DEVICE", "cuda:0")
    with pytest.raises(DeviceError, match="MINVERT_DEVICE 'cuda:0' asks for the GPU"):
        backend.default_device()
    monkeypatch.setenv("MINVERT_DEVICE", "cpu")
    assert backend.default_device() == "cpu" and backend.array_module() is np


def test_gpu_n_makes_device_n_current(strict_cupy, monkeypatch):
    assert backend.default_device() == "gpu"  # the GPU by default when CuPy sees one
    assert backend.select_device("cuda:1") == "gpu" and strict_cupy.cuda.get_device_id() == 1
    assert backend.to_device(np.ones(2), "gpu:1").device.id == 1
    with pytest.raises(DeviceError, match="has 2 CUDA device"):
        backend.select_device("gpu:2")
    monkeypatch.setenv("MINVERT_DEVICE", "gpu:0")
    assert backend.array_module() is strict_cupy and strict_cupy.cuda.get_device_id() == 0


def test_network_refuses_an_array_from_the_other_side(strict_cupy):
    net = build_tiny("tiny-vgg", 3, rng=np.random.default_rng(0), input_size=16)
    net.to(strict_cupy)
    host = np.zeros((1, 3, 16, 16), np.float32)
    for call in (net.forward, net.predict, lambda x: net.forward_taps(x, ["conv1_1"])):
        with pytest.raises(DeviceError, match=r"input is on the host \(NumPy\) but its weights "
                                              r"are on the GPU \(CuPy\): move it"):
            call(host)
    out = net.forward(strict_cupy.asarray(host))
    with pytest.raises(DeviceError, match="gradient is on the host"):
        net.backward(np.ones(out.shape, np.float32))
    net.to(np)
    with pytest.raises(DeviceError, match=r"is on the GPU \(CuPy\) but its weights are on the host"):
        net.forward(strict_cupy.asarray(host))


def test_gpu_report_says_when_kernels_do_not_compile(strict_cupy, monkeypatch):
    lines = backend.gpu_report()
    assert lines[0].startswith("cupy") and "gpu:0" in lines[1] and lines[-1] == "kernels  compile and run"

    def no_nvrtc(*args, **kwargs):  # what a machine with the driver but no CUDA libraries does
        raise RuntimeError("CuPy failed to load libnvrtc.so.12: OSError")
    monkeypatch.setattr(strict_cupy, "asarray", no_nvrtc)
    assert backend.gpu_report()[-1].startswith("kernels  FAIL: RuntimeError: CuPy failed to load "
                                               "libnvrtc.so.12")
    assert "pip install 'minvert[gpu]'" in backend.gpu_report()[-1]


def test_gpu_report_without_cupy(monkeypatch):
    monkeypatch.setattr(backend, "_CUPY", False)
    monkeypatch.setattr(backend, "_CUPY_PROBLEM", "CuPy is not installed")
    assert backend.gpu_report() == ["GPU      none usable: CuPy is not installed "
                                    "(pip install 'minvert[gpu]' with an NVIDIA driver)"]


def test_load_model_puts_the_net_on_the_default_device(strict_cupy, monkeypatch):
    import minvert
    assert minvert.load_model("tiny-vgg-textures").xp is strict_cupy  # a GPU is there: the default
    assert minvert.load_model("tiny-vgg-textures", device="cpu").xp is np
    monkeypatch.setenv("MINVERT_DEVICE", "cpu")
    assert minvert.load_model("tiny-vgg-textures").xp is np
