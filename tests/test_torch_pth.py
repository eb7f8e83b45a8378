"""The torch-free .pth reader against files written by real torch.save (tests/fixtures/torch/,
made by tests/fixtures/make_torch_fixtures.py), hand-assembled pickles and junk."""
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minvert.errors import FormatError
from minvert.weights.torch_pth import read_pth

FIX = Path(__file__).resolve().parent / "fixtures" / "torch"
MARKER = "minvert_hostile_marker"


@pytest.fixture(scope="module")
def expected():
    with np.load(FIX / "formats_expected.npz") as z:
        return {k: z[k] for k in z.files}


# ----------------------------------------------------------------------------- real torch files
@pytest.mark.parametrize("name", ["formats_zip.pth", "formats_legacy.pth", "formats_bigendian.pth"])
def test_formats_match_expected_exactly(name, expected):
    got = read_pth(FIX / name)
    want = [k for k in expected if not k.startswith("small/") and (k != "u16" or name == "formats_zip.pth")]
    assert list(got) == want  # file order kept
    for k in want:
        assert got[k].dtype == expected[k].dtype, k
        assert got[k].shape == expected[k].shape, k
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)
        assert got[k].flags.c_contiguous and got[k].dtype.isnative, k


def test_dtypes_and_views_are_what_torch_wrote(expected):
    got = read_pth(FIX / "formats_zip.pth")
    assert got["bf16"].dtype == np.float32 and got["u16"].dtype == np.uint16
    assert got["scalar"].shape == () and got["scalar"] == 7 and got["scalar"].dtype == np.int64
    np.testing.assert_array_equal(got["shared_t"], got["shared_base"].T)  # transposed view
    np.testing.assert_array_equal(got["shared_row"], got["shared_base"][1])  # offset 6
    np.testing.assert_array_equal(got["shared_slice"], got["shared_base"][1:3, ::2])
    assert np.iscomplexobj(got["conj"]) and got["conj"][1] == 2 + 3j  # conj bit applied
    got["shared_base"][0, 0] = -1  # every array owns its memory, views were copied
    assert got["shared_t"][0, 0] == 0 and got["shared_row"][0] == 6


def test_legacy_and_zip_network_files_agree():
    a, b = read_pth(FIX / "resnet18_w4.pth"), read_pth(FIX / "resnet18_w4_legacy.pth")
    assert list(a) == list(b) and len(a) == 122
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    assert a["bn1.num_batches_tracked"].dtype == np.int64  # kept in the raw dict


@pytest.mark.parametrize("name", ["wrapped_state_dict.pth", "module_prefix.pth",
                                  "wrapped_model_module_legacy.pth"])
def test_wrapped_and_module_prefixed(name, expected):
    got = read_pth(FIX / name)
    assert list(got) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                         "1.running_var", "1.num_batches_tracked"]
    for k, v in got.items():
        np.testing.assert_array_equal(v, expected["small/" + k])


# ----------------------------------------------------------------------------- safety
class _Control(pickle.Unpickler):
    """The ordinary unpickler, allowed only os.system: shows what the hostile file would do."""

    def find_class(self, module, name):
        if module in ("posix", "nt") and name == "system":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"control stops at {module}.{name}")

    def persistent_load(self, pid):
        return None


def _run_control(name):
    if name.endswith("zip.pth"):
        with zipfile.ZipFile(FIX / name) as z:
            streams = [io.BytesIO(z.read(next(n for n in z.namelist() if n.endswith("/data.pkl"))))]
            loads = 1
    else:
        streams, loads = [open(FIX / name, "rb")], 4  # magic, version, sys_info, object
    with streams[0] as f:
        try:
            for _ in range(loads):
                _Control(f).load()
        except pickle.UnpicklingError:
            pass


@pytest.mark.parametrize("name", ["hostile_zip.pth", "hostile_legacy.pth"])
def test_hostile_file_is_refused_and_runs_nothing(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if os.name == "posix":  # positive control: an ordinary unpickler does run the command
        _run_control(name)
        assert (tmp_path / MARKER).exists()
        (tmp_path / MARKER).unlink()
    with pytest.raises(FormatError, match=r"refused to load global 'posix\.system'") as e:
        read_pth(FIX / name)
    assert "\n" not in str(e.value) and name in str(e.value)
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("name", ["module_pickle_zip.pth", "module_pickle_legacy.pth"])
def test_pickled_module_is_refused(name):
    with pytest.raises(FormatError, match=r"torch\.nn\.modules\.linear\.Linear.*state_dict"):
        read_pth(FIX / name)


def _g(module, name):
    return f"c{module}\n{name}\n".encode()


def _s(text):
    b = text.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _i(v):
    return b"J" + struct.pack("<i", v)


def _tup(items):
    return b"(" + b"".join(items) + b"t"


def _tensor(key, numel, offset, size, stride, extra=()):
    pid = _tup([_s("storage"), _g("torch", "FloatStorage"), _s(key), _s("cpu"), _i(numel)]) + b"Q"
    args = [pid, _i(offset), _tup(map(_i, size)), _tup(map(_i, stride)), b"\x89", b"}", *extra]
    return _g("torch._utils", "_rebuild_tensor_v2") + _tup(args) + b"R"


def _zip(tmp_path, pkl, records=None, byteorder=None):
    path = tmp_path / "crafted.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("crafted/data.pkl", pkl)
        if byteorder is not None:
            z.writestr("crafted/byteorder", byteorder)
        for key, data in (records or {}).items():
            z.writestr(f"crafted/data/{key}", data)
    return path


def _dict(*items):
    return b"\x80\x02}(" + b"".join(_s(k) + v for k, v in items) + b"u."


def test_crafted_tensor_reads(tmp_path):
    data = np.arange(6, dtype=">f4").tobytes()
    neg = _tensor("0", 6, 0, (2,), (3,), extra=[b"}" + _s("neg") + b"\x88s"])  # 7th arg: metadata
    pkl = _dict(("a", _tensor("0", 6, 1, (2, 2), (1, 2))), ("b", neg))
    got = read_pth(_zip(tmp_path, pkl, {"0": data}, byteorder="big"))
    np.testing.assert_array_equal(got["a"], [[1, 3], [2, 4]])
    np.testing.assert_array_equal(got["b"], [-0.0, -3])


@pytest.mark.parametrize("pkl, match", [
    (b"\x80\x02" + _g("builtins", "eval") + _tup([_s("1")]) + b"R.", r"'builtins\.eval'"),
    (b"\x80\x02" + _g("torch._utils", "_import_dotted_name") + b".", r"_import_dotted_name"),
    (b"\x80\x02" + _g("torch.nn.modules.conv", "Conv2d") + b".", r"Conv2d"),
    (b"\x80\x02" + _g("torch", "QInt8Storage") + b".", r"QInt8Storage.*not supported"),
    # BUILD may not touch the allow-listed callables (e.g. to swap their defaults)
    (b"\x80\x02" + _g("torch._utils", "_rebuild_tensor_v2") + b"}" + _s("x") + _i(1) + b"sb.",
     r"refused: BUILD on torch\._utils\._rebuild_tensor_v2 refused"),
    (b"\x80\x02" + _g("torch._utils", "_rebuild_tensor_v2") + b"N}" + _s("__defaults__") + _i(1)
     + b"s\x86b.", r"BUILD .*refused"),
    # nor the tensors, nor an OrderedDict with a tuple state
    (_dict(("a", _tensor("0", 6, 0, (2,), (1,)) + b"}b")), r"BUILD on Tensor refused"),
    (b"\x80\x02" + _g("collections", "OrderedDict") + b")RN}\x86b.", r"OrderedDict"),
    # REDUCE/NEWOBJ on markers and wrappers fail instead of calling anything
    (b"\x80\x02" + _g("torch", "FloatStorage") + b")R.", r"not callable"),
    (b"\x80\x02" + _g("collections", "OrderedDict") + b")\x81.", r"corrupt"),
    (_dict(("a", _g("torch._utils", "_rebuild_tensor_v2")
                 + _tup([_s("x"), _i(0), b")", b")", b"\x89", b"}"]) + b"R")), r"tensor storage is a str"),
    (b"\x80\x02" + _tup([_s("module"), _s("x")]) + b"Q.", r"unsupported persistent id"),
])
def test_crafted_hostile_pickles_refused(tmp_path, pkl, match):
    with pytest.raises(FormatError, match=match) as e:
        read_pth(_zip(tmp_path, pkl, {"0": bytes(24)}))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("tensor, records, match", [
    (_tensor("0", 6, 0, (4, 2), (2, 1)), {"0": bytes(24)}, r"reads past its storage"),
    (_tensor("0", 6, 5, (2,), (1,)), {"0": bytes(24)}, r"reads past its storage"),
    (_tensor("0", 6, 0, (2,), (1,)), {"0": bytes(20)}, r"has 20 bytes, expected 6 x 4"),
    (_tensor("0", 6, 0, (2,), (1,)), {}, r"storage record 'crafted/data/0' is missing"),
    (_tensor("0", 6, 0, (1 << 30, 1 << 30), (0, 0)), {"0": bytes(24)}, r"far larger"),
    (_tensor("0", 6, 0, (2, 2), (1,)), {"0": bytes(24)}, r"differ in length"),
    (_tensor("0", 6, 0, (2,), (1,), extra=[b"}", b"}"]), {"0": bytes(24)}, r"8 were given"),
    (_tensor("0", 6, 0, (2,), (1,), extra=[b"}" + _s("python") + b"\x88s"]), {"0": bytes(24)},
     r"unsupported tensor metadata"),
])
def test_crafted_bad_tensors(tmp_path, tensor, records, match):
    with pytest.raises(FormatError, match=match):
        read_pth(_zip(tmp_path, _dict(("a", tensor)), records))


def test_unknown_byteorder(tmp_path):
    path = _zip(tmp_path, _dict(("a", _tensor("0", 1, 0, (), ()))), {"0": bytes(4)}, "middle")
    with pytest.raises(FormatError, match="unknown byteorder"):
        read_pth(path)


# ----------------------------------------------------------------------------- junk
@pytest.mark.parametrize("name, match", [
    ("junk_strings.pth", r"not a state dict of tensors: 'a' is a str"),
    ("junk_not_torch.pth", r"zip archive but not a torch\.save file"),
    ("junk_truncated_zip.pth", r"truncated or corrupt zip"),
    ("junk_truncated_legacy.pth", r"truncated"),
    ("junk_text.pth", r"not a PyTorch file"),
    ("junk_pickle.pth", r"no magic number"),
    ("junk_empty.pth", r"not a PyTorch file"),
    ("junk_torchscript.pt", r"TorchScript"),
    ("no_such_file.pth", r"cannot read"),
])
def test_bad_input_is_one_line_format_error(name, match):
    with pytest.raises(FormatError, match=match) as e:
        read_pth(FIX / name)
    assert "\n" not in str(e.value) and str(e.value).startswith(name)


def test_truncated_legacy_inside_the_pickle(tmp_path):
    data = (FIX / "formats_legacy.pth").read_bytes()
    for cut in (5, 60, 400):
        (tmp_path / "cut.pth").write_bytes(data[:cut])
        with pytest.raises(FormatError) as e:
            read_pth(tmp_path / "cut.pth")
        assert "\n" not in str(e.value)


def test_crafted_legacy_views_and_old_rebuild(tmp_path):
    """Legacy 6-tuple ids with view_metadata (root_key, offset, size), as pre-1.0 torch wrote."""
    def pid(view):
        return _tup([_s("storage"), _g("torch", "FloatStorage"), _s("root"), _s("cpu"), _i(6),
                     view]) + b"Q"
    a = _g("torch._utils", "_rebuild_tensor") + _tup(
        [pid(_tup([_s("v1"), _i(2), _i(3)])), _i(0), _tup([_i(3)]), _tup([_i(1)])]) + b"R"
    b = _g("torch._utils", "_rebuild_tensor_v2") + _tup(
        [pid(b"N"), _i(4), _tup([_i(2)]), _tup([_i(1)]), b"\x89", b"}"]) + b"R"
    head = b"".join(pickle.dumps(v, protocol=2)
                    for v in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    body = _dict(("a", a), ("b", b)) + pickle.dumps(["root"], protocol=2)
    data = struct.pack("<q", 6) + np.arange(6, dtype="<f4").tobytes()
    (tmp_path / "old.pth").write_bytes(head + body + data)
    got = read_pth(tmp_path / "old.pth")
    np.testing.assert_array_equal(got["a"], [2, 3, 4])
    np.testing.assert_array_equal(got["b"], [4, 5])
    (tmp_path / "bad.pth").write_bytes(head + body + struct.pack("<q", 5) + data[8:])
    with pytest.raises(FormatError, match="holds 5 elements, expected 6"):
        read_pth(tmp_path / "bad.pth")
