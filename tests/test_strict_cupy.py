"""The strict CuPy stand-in refuses what real CuPy refuses (so CI's run under it means something),
and answers only names real CuPy has."""
import io
import pickle

import h5py
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage, optimize

from conftest import load_standin

cp = load_standin()
IMPLICIT = "Implicit conversion to a NumPy array is not allowed"


@pytest.fixture(autouse=True)
def device_zero():
    yield
    cp._core._state["device"] = 0


def dev(*shape):
    return cp.asarray(np.arange(float(np.prod(shape))).reshape(shape))


def test_no_implicit_conversion_to_numpy():
    x = dev(2, 3)
    for convert in (np.asarray, np.array, lambda a: np.float64(0) + np.asarray(a)):
        with pytest.raises(TypeError, match=IMPLICIT):
            convert(x)
    with pytest.raises(TypeError):
        np.sum(x)  # stricter than CuPy (which dispatches); documented
    with pytest.raises(TypeError):
        np.exp(x)


@pytest.mark.parametrize("host", [np.ones(3), np.ones(()), np.ones((2, 3), np.float32)],
                         ids=["1-d", "0-d", "2-d"])
def test_host_arrays_are_refused_in_device_operations(host):
    x = dev(2, 3)
    for op in (lambda: x + host, lambda: host + x, lambda: x * host, lambda: x > host,
               lambda: cp.maximum(x, host), lambda: cp.where(x > 1, x, host),
               lambda: cp.concatenate([x.ravel(), host.ravel()]), lambda: x @ host.T):
        with pytest.raises(TypeError, match="Unsupported type"):
            op()
    with pytest.raises(TypeError):
        x[...] = host  # stricter than CuPy; documented
    with pytest.raises(TypeError, match="Unsupported type <class 'list'>"):
        cp.maximum(x, [[0.0, 1.0, 2.0]])  # CuPy's ufuncs take no lists either
    with pytest.raises(TypeError):
        x += host


def test_scalars_pass_and_results_stay_on_the_device():
    x = dev(2, 3)
    for y in (x + 1, 2.5 * x, x + np.float32(2), x ** 2, -x, abs(x)):
        assert isinstance(y, cp.ndarray)
    s = x.sum()
    assert isinstance(s, cp.ndarray) and s.shape == () and float(s) == 15.0
    assert isinstance(x[0, 0], cp.ndarray) and isinstance(cp.max(x), cp.ndarray)
    assert f"{s:.1f}" == "15.0" and int(x[1, 2]) == 5 and x.ravel().tolist()[-1] == 5.0


def test_out_must_be_a_device_array():
    x = dev(4)
    with pytest.raises(TypeError, match="Unsupported type"):
        cp.maximum(x, 1, out=np.empty(4))
    out = cp.empty(4)
    assert cp.maximum(x, 1, out=out) is not None and out.get().tolist() == [1, 1, 2, 3]
    view = x[1:]
    view += 10  # in place through a view, as on the device
    assert x.get().tolist() == [0, 11, 12, 13]


def test_host_libraries_reject_device_arrays():
    x = dev(4, 4)
    with pytest.raises(TypeError, match=IMPLICIT):
        with h5py.File(io.BytesIO(), "w") as f:
            f.create_dataset("x", data=x)
    with pytest.raises((TypeError, AttributeError)):  # no __array_interface__, as in CuPy
        Image.fromarray(x.astype(np.uint8))
    with pytest.raises(TypeError, match=IMPLICIT):
        ndimage.zoom(x, 2)
    with pytest.raises(TypeError, match=IMPLICIT):
        optimize.minimize(lambda v: float((v ** 2).sum()), x.ravel())
    with pytest.raises(TypeError):
        pickle.dumps(x)


def test_explicit_transfers_copy():
    host = np.arange(3.0)
    x = cp.asarray(host)
    host[0] = 99  # the device copy does not follow the host array
    assert x.get().tolist() == [0, 1, 2] and cp.asnumpy(x).tolist() == [0, 1, 2]
    back = x.get()
    back[1] = 7
    assert float(x[1]) == 1.0
    assert cp.asarray(x) is x and isinstance(cp.asnumpy(host), np.ndarray)


def test_empty_holds_garbage():
    assert np.isnan(cp.empty((3, 3)).get()).all()
    assert np.isnan(cp.empty_like(dev(2, 2)).get()).all()
    assert np.isnan(cp.ndarray((2,), dtype=np.float32).get()).all()


def test_only_names_real_cupy_has():
    assert cp.float32 is np.float32 and cp.pi == np.pi
    assert cp.lib.stride_tricks.as_strided and cp.linalg.norm and cp.cuda.Device
    for name in ("float128", "add_docstring", "asmatrix", "genfromtxt_but_not"):
        with pytest.raises(AttributeError):
            getattr(cp, name)
    x = dev(2, 2)
    for name in ("itemset", "tostring", "data", "__array_interface__", "ctypes"):
        with pytest.raises(AttributeError):
            getattr(x, name)
    assert isinstance(x.T, cp.ndarray) and x.flags.c_contiguous and not x.T.flags.c_contiguous
    with pytest.raises(AttributeError):
        x.flags.writeable  # NumPy's; CuPy's flags are c_contiguous, f_contiguous, owndata


def test_devices_are_counted_and_not_mixed(monkeypatch):
    assert cp.cuda.runtime.getDeviceCount() == 2
    monkeypatch.setenv("STRICT_CUPY_DEVICES", "3")
    assert cp.cuda.runtime.getDeviceCount() == 3
    on_zero = dev(3)
    cp.cuda.Device(1).use()
    on_one = cp.zeros(3)
    assert on_one.device.id == 1 and cp.cuda.get_device_id() == 1
    with pytest.raises(ValueError, match="different from the current device"):
        on_zero + 1
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError):
        cp.cuda.Device(7).use()
    with cp.cuda.Device(0):
        assert float((on_zero + 1).sum()) == 6.0


def test_host_indices_are_refused_but_device_indices_work():
    x = dev(5)
    with pytest.raises(TypeError):
        x[np.array([0, 1])]  # stricter than CuPy, which copies the index over; documented
    with pytest.raises(TypeError):
        x[[0, 1]]
    assert x[cp.asarray([4, 0])].get().tolist() == [4.0, 0.0]
