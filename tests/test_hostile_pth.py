"""Hostile .pth files (issue 12), generated here: pickle bombs in both torch layouts, zip
archives torch never writes, shared and broadcast storages, NaN weights."""
import struct
import time
import zipfile

import pytest

from minvert.errors import FormatError
from minvert.weights.torch_pth import read_pth

try:
    from tests.test_hostile import fails_with_one_line
    from tests.test_torch_pth import _dict, _g, _i, _s, _tensor, _tup, _zip
except ImportError:
    from test_hostile import fails_with_one_line
    from test_torch_pth import _dict, _g, _i, _s, _tensor, _tup, _zip


def _laughs(levels):
    """A tuple graph of 2**levels leaves in ~6*levels bytes: each level pairs the last twice."""
    return b"Nq\x000" + b"h\x00h\x00\x86q\x000" * levels + b"h\x00"  # 0 = POP


def _legacy(pkl_object):
    """A legacy-format file whose object pickle is ``pkl_object`` (protocol-2 bytes, no STOP)."""
    import pickle
    head = b"".join(pickle.dumps(v, protocol=2)
                    for v in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    return head + b"\x80\x02" + pkl_object + b"." + pickle.dumps([], protocol=2)


@pytest.mark.parametrize("body, match", [
    (_laughs(80), "billion laughs"),                               # formatted or hashed: endless
    (b"}" + _laughs(80) + b"N" + b"s", "billion laughs"),          # ... as a dict key
    (b"N" + b"\x85" * 1_000_000, "nested too deeply"),             # 10**6 nested tuples
    (b"(" * 2_000_000 + b"N", "stack"),                            # marks without end
    (b"N" + b"r" + struct.pack("<I", 0xFFFFFFF0), "memo index"),   # LONG_BINPUT: a 32 GB memo
    (b"h\x07", "never stored"),
])
@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_pickle_bombs_are_refused_before_unpickling(tmp_path, body, match, layout):
    if layout == "zip":
        path = _zip(tmp_path, b"\x80\x02" + body + b".")
    else:
        path = tmp_path / "legacy.pth"
        path.write_bytes(_legacy(body))
    start = time.perf_counter()
    with pytest.raises(FormatError, match=match) as e:
        read_pth(path)
    assert time.perf_counter() - start < 20 and "\n" not in str(e.value)
    assert len(str(e.value)) < 400


def test_laughs_used_as_size_or_persistent_id_are_never_formatted(tmp_path):
    small = _laughs(15)  # 32768 leaves: under the reach bound
    as_size = _g("torch._utils", "_rebuild_tensor_v2") + _tup(
        [_tup([_s("storage"), _g("torch", "FloatStorage"), _s("0"), _s("cpu"), _i(1)]) + b"Q",
         _i(0), small, small, b"\x89", b"}"]) + b"R"
    with pytest.raises(FormatError, match=r"tensor size \(a tuple\)") as e:
        read_pth(_zip(tmp_path, _dict(("a", as_size)), {"0": bytes(4)}))
    assert len(str(e.value)) < 300
    with pytest.raises(FormatError, match=r"persistent id \(a tuple") as e:
        read_pth(_zip(tmp_path, b"\x80\x02" + small + b"Q."))
    assert len(str(e.value)) < 300


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_compressed_zip_entries_are_refused(tmp_path, method):
    """A 1.5 KB zip of zeros would expand to GBs; torch only writes STORED entries."""
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", compression=method) as z:
        z.writestr("bomb/data.pkl", _dict(("a", _tensor("0", 1 << 28, 0, (1 << 28,), (1,)))))
        z.writestr("bomb/data/0", bytes(1 << 20))
    with pytest.raises(FormatError, match="compressed"):
        read_pth(path)


def test_duplicate_zip_entries_are_refused(tmp_path):
    path = tmp_path / "dup.pth"
    pkl = _dict(("a", _tensor("0", 1, 0, (1,), (1,))))
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "w") as z:
        z.writestr("dup/data.pkl", pkl)
        z.writestr("dup/data/0", struct.pack("<f", 1.0))
        z.writestr("dup/data/0", struct.pack("<f", 2.0))  # torch reads the first, zipfile the last
    with pytest.raises(FormatError, match="appears twice"):
        read_pth(path)


def test_zip_entry_sizes_must_fit_the_file(tmp_path):
    path = _zip(tmp_path, _dict(("a", _tensor("0", 1, 0, (1,), (1,)))), {"0": bytes(4)})
    data = bytearray(path.read_bytes())
    cd = data.rfind(b"PK\x01\x02")  # the last central-directory record: data/0
    data[cd + 20:cd + 28] = struct.pack("<II", 1 << 31, 1 << 31)  # compressed, uncompressed size
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="do not fit"):
        read_pth(path)


def test_shared_stride0_placeholder_is_materialised_once(tmp_path):
    """200 keys naming one memoised broadcast tensor: one array, not 200 copies."""
    tensor = _tensor("0", 1, 0, (1 << 20,), (0,)) + b"q\x01"
    items = [_s("k0") + tensor] + [_s(f"k{i}") + b"h\x01" for i in range(1, 200)]
    got = read_pth(_zip(tmp_path, b"\x80\x02}(" + b"".join(items) + b"u.", {"0": bytes(4)}))
    assert len(got) == 200 and len({id(v) for v in got.values()}) == 1


def test_distinct_broadcasts_beyond_the_stored_bytes_are_refused(tmp_path):
    items = [_s(f"k{i}") + _tensor("0", 1, 0, (1 << 20, i + 1), (0, 0)) for i in range(40)]
    with pytest.raises(FormatError, match="far larger than the"):
        read_pth(_zip(tmp_path, b"\x80\x02}(" + b"".join(items) + b"u.", {"0": bytes(4)}))


def test_nan_and_int_weights_refused_on_convert(tmp_path, capsys):
    pkl = _dict(("conv1.weight", _tensor("0", 1, 0, (1,), (1,))))
    path = _zip(tmp_path, pkl, {"0": struct.pack("<f", float("nan"))})
    fails_with_one_line(["convert", path, tmp_path / "out.h5"], capsys, "NaN", "conv1.weight")
    assert not (tmp_path / "out.h5").exists()


def test_storages_beyond_the_read_budget_are_refused(tmp_path, monkeypatch):
    path = _zip(tmp_path, _dict(("a", _tensor("0", 1 << 18, 0, (1 << 18,), (1,)))),
                {"0": bytes(1 << 20)})
    assert read_pth(path)["a"].shape == (1 << 18,)
    monkeypatch.setenv("MINVERT_MAX_READ_MB", "0.5")
    with pytest.raises(FormatError, match="read budget"):
        read_pth(path)


def test_overlapping_zip_entries_are_refused(tmp_path):
    """Two storage records pointing at the same bytes: more data than the file holds."""
    pkl = _dict(("a", _tensor("0", 1 << 16, 0, (1 << 16,), (1,))),
                ("b", _tensor("1", 1 << 16, 0, (1 << 16,), (1,))))
    path = _zip(tmp_path, pkl, {"0": bytes(1 << 18), "1": b""})
    data = bytearray(path.read_bytes())
    cd0 = data.rfind(b"PK\x01\x02", 0, data.rfind(b"PK\x01\x02"))  # central record of data/0
    cd1 = data.rfind(b"PK\x01\x02")                                   # ... and of data/1
    data[cd1 + 16:cd1 + 28] = data[cd0 + 16:cd0 + 28]  # same CRC and sizes
    data[cd1 + 42:cd1 + 46] = data[cd0 + 42:cd0 + 46]  # same local header: the same bytes
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="overlap"):
        read_pth(path)
