"""Weights zoo, search path and downloads, against a local HTTP server on 127.0.0.1 only."""
import hashlib
import io
import os
import re
import socket
import sys

import numpy as np
import pytest

from minvert.errors import MinvertError
from minvert.weights import download as dl
from minvert.weights import zoo
from minvert.weights.download import download, download_weights, file_hashes, verify_file
from minvert.weights.zoo import ZOO, ZooEntry, default_download_dir, find_weights, get_entry, \
    list_weights, weights_search_path

try:
    from tests.http_fixture import FileServer
except ImportError:
    from http_fixture import FileServer

DATA = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
MD5 = hashlib.md5(DATA).hexdigest()
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    # Keep urllib away from any proxy, and the search path away from the real user's files.
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    monkeypatch.delenv("MINVERT_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def srv():
    with FileServer() as s:
        yield s


def _one_line(err):
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------------------- download()

def test_good_file_md5_and_progress(srv, tmp_path):
    url = srv.add("/f.bin", DATA)
    out = io.StringIO()
    got = download(url, tmp_path / "f.bin", MD5, "md5", expected_size=len(DATA), out=out,
                   chunk=50_000)
    assert got == tmp_path / "f.bin" and got.read_bytes() == DATA
    assert not (tmp_path / "f.bin.part").exists()
    text = out.getvalue()
    assert "\r" in text and text.endswith("\n")
    assert re.search(r"100\.0% 0\.3/0\.3 MB [\d.]+ MB/s ETA 0:00", text)
    assert "Range" not in srv.requests_to("/f.bin")[0]


def test_good_file_sha256_prefix_silent(srv, tmp_path, capsys):
    url = srv.add("/f.bin", DATA)
    download(url, tmp_path / "f.bin", SHA[:8].upper(), "sha256-prefix", progress=False)
    assert (tmp_path / "f.bin").read_bytes() == DATA
    assert capsys.readouterr().err == ""


def test_bad_hash_deletes(srv, tmp_path):
    url = srv.add("/f.bin", DATA)
    with pytest.raises(MinvertError) as err:
        download(url, tmp_path / "f.bin", "0" * 32, "md5", progress=False)
    msg = _one_line(err)
    assert "0" * 32 in msg and MD5 in msg and "deleted" in msg and "try again" in msg
    assert not (tmp_path / "f.bin").exists() and not (tmp_path / "f.bin.part").exists()


def test_wrong_size_detected_before_transfer(srv, tmp_path):
    url = srv.add("/f.bin", DATA)
    with pytest.raises(MinvertError, match="different file") as err:
        download(url, tmp_path / "f.bin", expected_size=len(DATA) + 1, progress=False)
    _one_line(err)
    assert not list(tmp_path.glob("f.bin*"))


def test_truncated_then_resumed(srv, tmp_path):
    url = srv.add("/f.bin", DATA, truncate_at=100_000)
    dest = tmp_path / "f.bin"
    with pytest.raises(MinvertError) as err:
        download(url, dest, MD5, progress=False)
    msg = _one_line(err)
    assert "100,000 of 300,000" in msg and "kept" in msg and "resume" in msg
    assert not dest.exists()
    assert (tmp_path / "f.bin.part").read_bytes() == DATA[:100_000]

    download(url, dest, MD5, progress=False)
    assert dest.read_bytes() == DATA and not (tmp_path / "f.bin.part").exists()
    reqs = srv.requests_to("/f.bin")
    assert len(reqs) == 2 and "Range" not in reqs[0]
    assert reqs[1]["Range"] == "bytes=100000-"


def test_retries_resume_within_one_call(srv, tmp_path):
    url = srv.add("/f.bin", DATA, truncate_at=70_000, truncate_times=2)
    out = io.StringIO()
    download(url, tmp_path / "f.bin", MD5, progress=False, retries=2, out=out)
    assert (tmp_path / "f.bin").read_bytes() == DATA
    assert [h.get("Range") for h in srv.requests_to("/f.bin")] == \
        [None, "bytes=70000-", "bytes=140000-"]
    assert "retrying (2/2)" in out.getvalue()


def test_server_ignores_range_restarts(srv, tmp_path):
    url = srv.add("/f.bin", DATA, ignore_range=True)
    (tmp_path / "f.bin.part").write_bytes(b"x" * 5000)  # a stale partial the server cannot extend
    out = io.StringIO()
    download(url, tmp_path / "f.bin", MD5, progress=False, out=out)
    assert (tmp_path / "f.bin").read_bytes() == DATA
    assert srv.requests_to("/f.bin")[0]["Range"] == "bytes=5000-"
    assert "ignored the resume request" in out.getvalue()


def test_complete_part_gets_416_and_is_verified(srv, tmp_path):
    url = srv.add("/f.bin", DATA)
    (tmp_path / "f.bin.part").write_bytes(DATA)
    download(url, tmp_path / "f.bin", MD5, progress=False)
    assert (tmp_path / "f.bin").read_bytes() == DATA
    assert srv.requests_to("/f.bin")[0]["Range"] == f"bytes={len(DATA)}-"


def test_complete_part_with_known_size_needs_no_request(srv, tmp_path):
    url = srv.add("/f.bin", DATA)
    (tmp_path / "f.bin.part").write_bytes(DATA)
    download(url, tmp_path / "f.bin", MD5, expected_size=len(DATA), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == DATA and srv.requests == []


@pytest.mark.parametrize("status", [500, 404])
def test_http_error_one_line(srv, tmp_path, status):
    url = srv.add("/f.bin", DATA, status=status)
    with pytest.raises(MinvertError) as err:
        download(url, tmp_path / "f.bin", MD5, progress=False)
    msg = _one_line(err)
    assert f"HTTP {status}" in msg and url in msg and "nothing was kept" in msg
    assert not list(tmp_path.glob("f.bin*"))


def test_http_500_keeps_good_partial(srv, tmp_path):
    url = srv.add("/f.bin", DATA, status=500)
    (tmp_path / "f.bin.part").write_bytes(DATA[:1234])
    with pytest.raises(MinvertError, match=r"HTTP 500 .*partial download kept \(1,234 bytes"):
        download(url, tmp_path / "f.bin", MD5, progress=False)
    assert (tmp_path / "f.bin.part").read_bytes() == DATA[:1234]
    assert not (tmp_path / "f.bin").exists()


def test_connection_refused(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/f.bin"
    with pytest.raises(MinvertError, match="cannot connect") as err:
        download(url, tmp_path / "f.bin", MD5, progress=False, timeout=2)
    assert url in _one_line(err) and not list(tmp_path.glob("f.bin*"))


def test_non_http_url_refused(tmp_path):
    with pytest.raises(MinvertError, match="only http"):
        download("file:///etc/passwd", tmp_path / "x")


def test_file_hashes(tmp_path):
    (tmp_path / "a").write_bytes(DATA)
    assert file_hashes(tmp_path / "a", chunk=4096) == {"md5": MD5, "sha256": SHA}


# ---------------------------------------------------------------------------- zoo

def test_zoo_entries_are_consistent():
    for name, e in ZOO.items():
        assert e.name == name and e.url.startswith("https://") and e.url.endswith("/" + e.filename)
        assert e.source in ("keras", "torchvision") and e.arch.startswith(("vgg", "resnet"))
        assert e.size is None and e.approx_mb > 0  # no exact size is known; approx_mb bounds it
        assert e.approx_mb * 2**20 < e.max_size < 2 * e.approx_mb * 2**20
        if e.source == "keras":
            assert e.hash_kind == "md5" and re.fullmatch(r"[0-9a-f]{32}", e.hash)
        else:
            assert e.hash_kind == "sha256-prefix" and re.fullmatch(r"[0-9a-f]{8}", e.hash)
            assert e.filename == f"{e.arch}-{e.hash}.pth" and e.approx_mb > 0
    assert ZOO["vgg19"].hash == "cbe5617147190e668d6c5d5026f83318"
    assert ZOO["resnet50-legacy-notop"].url == ("https://github.com/fchollet/deep-learning-models/"
                                                "releases/download/v0.2/resnet50_weights_tf_dim_"
                                                "ordering_tf_kernels_notop.h5")
    assert ZOO["tv-resnet50"].hash == "0676ba61" and ZOO["tv-resnet50-v2"].hash == "11ad3fa6"


def test_unknown_name_suggests_closest():
    with pytest.raises(MinvertError, match=r"did you mean 'vgg19'\?.*tv-resnet152") as err:
        get_entry("vgg-19")
    _one_line(err)


def test_search_path_order(monkeypatch, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("MINVERT_WEIGHTS", f"{a}{os.pathsep}{os.pathsep}{b}")
    assert weights_search_path() == [a, b, tmp_path / "weights", tmp_path / "xdg" / "minvert"]
    for d in (b, tmp_path / "weights", tmp_path / "xdg" / "minvert"):
        d.mkdir(parents=True)
        (d / "net.h5").write_bytes(b"")
    assert find_weights("net") == b / "net.h5" == find_weights("net.h5")
    (a / "net.h5").parent.mkdir()
    (a / "net.h5").write_bytes(b"")
    assert find_weights("net") == a / "net.h5"
    assert find_weights("other") is None


def test_cache_dir_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert zoo.user_cache_dir() == tmp_path / "home" / ".cache" / "minvert"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert zoo.user_cache_dir() == tmp_path / "home" / ".cache" / "minvert"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "lad"))
    assert zoo.user_cache_dir() == tmp_path / "lad" / "minvert" / "Cache"


def test_default_download_dir(monkeypatch, tmp_path):
    assert default_download_dir() == tmp_path / "xdg" / "minvert"  # never ./weights
    blocked = tmp_path / "afile"
    blocked.write_bytes(b"")  # a directory below a file can never be created (even as root)
    monkeypatch.setenv("MINVERT_WEIGHTS", f"{blocked / 'sub'}{os.pathsep}{tmp_path / 'new'}")
    assert default_download_dir() == tmp_path / "new"
    monkeypatch.setenv("MINVERT_WEIGHTS", str(blocked / "sub"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked / "c"))
    with pytest.raises(MinvertError, match="MINVERT_WEIGHTS"):
        default_download_dir()


# ---------------------------------------------------------------------------- download_weights

@pytest.fixture
def fake_zoo(monkeypatch, srv):
    url = srv.add("/models/fakenet-" + SHA[:8] + ".pth", DATA)
    fake = ZooEntry("fake-net", url, url.rsplit("/", 1)[1], "sha256-prefix", SHA[:8],
                    "torchvision", "resnet18", True, "test entry", approx_mb=0.3)
    bad = ZooEntry("fake-bad", url, "bad.bin", "md5", "f" * 32, "keras", "vgg19", True, "bad")
    monkeypatch.setattr(zoo, "ZOO", {"fake-net": fake, "fake-bad": bad})
    monkeypatch.setattr(dl, "ZOO", zoo.ZOO)
    return fake


class FakeConvert:
    def __init__(self):
        self.calls = []

    def __call__(self, src, dst, arch=None):
        self.calls.append((src, dst, arch))
        dst.write_bytes(b"project:" + src.read_bytes()[:16])


def test_download_weights_convert_and_find(fake_zoo, srv, tmp_path, monkeypatch):
    monkeypatch.setenv("MINVERT_WEIGHTS", str(tmp_path / "w"))
    conv, out = FakeConvert(), io.StringIO()
    path = download_weights("fake-net", convert=conv, out=out, progress=False)
    assert path == tmp_path / "w" / "fake-net.h5" == find_weights("fake-net")
    original = tmp_path / "w" / "originals" / "fake-net" / fake_zoo.filename
    assert original.read_bytes() == DATA
    assert conv.calls[0][0] == original and conv.calls[0][2] == "resnet18"
    assert not list((tmp_path / "w").glob(".*"))  # no temporary file left behind
    n = len(srv.requests)

    assert download_weights("fake-net", convert=conv, out=out) == path  # already converted
    path.unlink()
    download_weights("fake-net", convert=conv, out=out)  # verified original: convert only
    assert len(srv.requests) == n and len(conv.calls) == 2
    assert "verified original already downloaded" in out.getvalue()
    download_weights("fake-net", convert=conv, out=out, force=True, progress=False)
    assert len(srv.requests) == n + 1 and len(conv.calls) == 3

    rows = {r[0]: r for r in list_weights(out=io.StringIO())}
    assert rows["fake-net"][1:] == ("torchvision", "resnet18", "~0 MB", str(path))
    assert rows["fake-bad"][4] == "-"


def test_download_weights_without_convert_and_corrupt_original(fake_zoo, tmp_path, monkeypatch):
    original = tmp_path / "d" / "originals" / "fake-net" / fake_zoo.filename
    original.parent.mkdir(parents=True)
    original.write_bytes(b"corrupt")
    out = io.StringIO()
    assert download_weights("fake-net", tmp_path / "d", out=out, progress=False) == original
    assert original.read_bytes() == DATA and "downloading again" in out.getvalue()
    assert not (tmp_path / "d" / "fake-net.h5").exists()
    monkeypatch.setenv("MINVERT_WEIGHTS", str(tmp_path / "d"))
    table = io.StringIO()
    rows = {r[0]: r for r in list_weights(out=table, verbose=True)}
    assert rows["fake-net"][4] == f"original: {original}"
    assert re.search(r"^name +source +arch +size +cached$", table.getvalue(), re.M)
    assert "test entry" in table.getvalue() and fake_zoo.url in table.getvalue()


def test_download_weights_bad_hash_and_unknown(fake_zoo, tmp_path):
    with pytest.raises(MinvertError, match="deleted"):
        download_weights("fake-bad", tmp_path, convert=FakeConvert(), progress=False,
                         out=io.StringIO())
    assert not (tmp_path / "fake-bad.h5").exists()
    assert not (tmp_path / "originals").exists()  # no empty folders left behind
    with pytest.raises(MinvertError, match="did you mean 'fake-net'"):
        download_weights("fake-nt", tmp_path)


def test_failed_convert_leaves_no_project_file(fake_zoo, tmp_path):
    def broken(src, dst, arch=None):
        dst.write_bytes(b"half")
        raise MinvertError("conversion failed")
    with pytest.raises(MinvertError, match="conversion failed"):
        download_weights("fake-net", tmp_path, convert=broken, progress=False, out=io.StringIO())
    assert not (tmp_path / "fake-net.h5").exists() and not list(tmp_path.glob(".*"))


def test_verify_file(fake_zoo, tmp_path):
    p = tmp_path / "anything.pth"
    p.write_bytes(DATA)
    res = verify_file(p)
    assert res.entry.name == "fake-net" and res.md5 == MD5 and "ok" in res.message
    assert verify_file(p, "fake-net").entry is fake_zoo
    with pytest.raises(MinvertError, match=r"does not match 'fake-bad' md5 f{32}: got md5 " + MD5):
        verify_file(p, "fake-bad")
    q = tmp_path / "bad.bin"  # known file name, wrong content
    q.write_bytes(b"nope")
    with pytest.raises(MinvertError, match="does not match 'fake-bad'"):
        verify_file(q)
    r = tmp_path / "other.bin"
    r.write_bytes(b"nope")
    with pytest.raises(MinvertError, match="matches no known download") as err:
        verify_file(r)
    _one_line(err)
    with pytest.raises(MinvertError, match="no such file"):
        verify_file(tmp_path / "missing")
