"""The strict CuPy stand-in refuses what real CuPy refuses (so CI's run under it means something),
and answers only names real CuPy has."""
import io
import threading
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


# where CuPy differs from NumPy ---------------------------------------------------------------
def test_integer_indexing_gives_0d_views():
    x = dev(2, 3)
    element, row, flat = x[1, 2], x[0], x.reshape(-1)
    kept = flat[4]
    assert isinstance(element, cp.ndarray) and element.shape == ()
    x[1, 2] = 99.0
    flat[4] = kept + 1  # what gradcheck's central difference does: kept changes too
    assert float(element) == 99.0 and float(kept) == 5.0
    x[0, 1] = -1.0
    assert row.get().tolist() == [0.0, -1.0, 2.0]
    first = next(iter(x[1]))  # iteration yields views as well
    x[1, 0] = 42.0
    assert float(first) == 42.0
    picked = x[cp.asarray([1])]  # advanced indexing copies, as in NumPy
    x[1, 1] = 7.0
    assert picked.get()[0, 1] == 5.0


def test_the_current_device_is_per_thread():
    cp.cuda.Device(1).use()
    seen = {}

    def worker():
        seen["device"], seen["array"] = cp.cuda.get_device_id(), cp.zeros(2).device.id
        cp.cuda.Device(1).use()  # changes this thread's device only

    thread = threading.Thread(target=worker)
    cp.cuda.Device(0).use()
    cp.cuda.Device(1).use()
    thread.start()
    thread.join()
    assert seen == {"device": 0, "array": 0} and cp.cuda.get_device_id() == 1
    cp.cuda.Device(0).use()
    thread = threading.Thread(target=lambda: seen.update(after=cp.cuda.get_device_id()))
    thread.start()
    thread.join()
    assert seen["after"] == 0


def test_arrays_of_two_devices_in_one_operation_are_refused():
    on_zero = dev(3)
    with cp.cuda.Device(1):
        on_one = cp.ones(3)
    message = r"The device where the array resides \(1\) is different from the current device"
    for op in (lambda: on_zero + on_one, lambda: cp.maximum(on_zero, on_one),
               lambda: cp.concatenate([on_zero, on_one]), lambda: on_zero @ on_one):
        with pytest.raises(ValueError, match=message):
            op()
    with cp.cuda.Device(1):
        with pytest.raises(ValueError, match=r"resides \(0\) is different .* device \(1\)"):
            on_zero * on_one
        # CuPy reads metadata, makes views and copies to the host from any current device
        assert on_zero.shape == (3,) and float(on_zero[2]) == 2.0
        assert on_zero.get().tolist() == [0.0, 1.0, 2.0] and on_zero[1:].device.id == 0


def test_ufuncs_take_only_out_dtype_and_casting():
    x = dev(4)
    for keyword in ({"where": x > 1}, {"order": "C"}, {"subok": True}):
        with pytest.raises(TypeError, match="Wrong arguments"):
            cp.add(x, 1, **keyword)
    out = cp.empty(4, dtype=np.float32)
    cp.add(x, 1, out=out, casting="same_kind")
    assert out.get().tolist() == [1, 2, 3, 4]
    assert cp.multiply(x, 2, dtype=np.float32).dtype == np.float32
    assert cp.matmul(dev(2, 2), dev(2, 2), out=cp.empty((2, 2))) is not None


def test_an_output_partly_overlapping_an_input_is_refused():
    x = dev(6)
    with pytest.raises(ValueError, match="overlaps"):
        cp.add(x[1:], 1, out=x[:-1])
    with pytest.raises(ValueError, match="overlaps"):
        x[1:] += x[:-1]
    m = dev(4, 2)
    with pytest.raises(ValueError, match="overlaps"):
        cp.matmul(m[:2], m[2:].T, out=m[1:3, :])
    # exactly the input, or memory that does not meet it, are fine
    cp.add(x, 1, out=x)
    x *= x
    cp.subtract(x[::2], x[1::2], out=x[::2])
    assert x.get().tolist() == [-3, 4, -7, 16, -11, 36]


def test_device_memory_is_counted():
    cp._core.reset_peak()
    before = cp._core.live_bytes()
    a = cp.zeros((1000,), dtype=np.float32)
    view = a[10:20]
    assert cp._core.live_bytes() - before == 4000  # the view holds no memory of its own
    assert cp._core.live_bytes(0) - before == 4000 and cp._core.live_bytes(1) == 0
    del a
    assert cp._core.live_bytes() - before == 4000  # the view keeps the buffer alive
    b = cp.ones((500,), dtype=np.float64)
    del view, b
    assert cp._core.live_bytes() == before
    assert cp._core.peak_bytes() - before == 8000 and cp._core.peak_bytes(0) - before == 8000
    pool = cp.get_default_memory_pool()
    assert pool.used_bytes() == before and pool.total_bytes() >= before + 8000
    pool.free_all_blocks()
    assert pool.total_bytes() == pool.used_bytes()
    cp._core.reset_peak()
    assert cp._core.peak_bytes() == before


def test_float64_temporaries_in_float32_work_are_recorded():
    x, lr = cp.ones(4, dtype=np.float32), np.float64(0.5)
    cp._core.reset_float64_temporaries()
    y = x * 0.5 + float(lr)  # Python floats keep float32
    x -= 1.0 * y
    z = x.astype(np.float64) * 2  # explicitly float64: not a temporary
    s = cp.sum(x, dtype=np.float64) + x.mean(dtype=np.float64)
    assert cp._core.float64_temporaries == [] and z.dtype == s.dtype == np.float64
    x -= lr * y  # a NumPy float64 scalar promotes under NumPy 2 and CuPy 14: two operations
    cp.multiply(x, cp.asarray(0.5), out=x)  # a float64 0-d array is not a weak scalar
    x + cp.ones(4)
    recorded = cp._core.float64_temporaries
    assert len(recorded) == 4 and all("float32[4]" in r for r in recorded), recorded
    assert "test_strict_cupy.py" in recorded[0] and x.dtype == np.float32
    cp._core.reset_float64_temporaries()
    assert cp._core.float64_temporaries == []
