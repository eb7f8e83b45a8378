"""Downloads that give up cleanly (issue 25 items 4 and 13): a minimum rate like curl's
--speed-limit/--speed-time, no empty .part after a failure, and a .part that is a link is never
written through. Against the local HTTP server of tests/http_fixture.py only."""
import numpy as np
import pytest

from minvert.cli import main
from minvert.errors import MinvertError
from minvert.weights.http import download

try:
    from tests.http_fixture import FileServer
except ImportError:
    from http_fixture import FileServer

DATA = np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def srv():
    with FileServer() as s:
        yield s


def test_a_trickle_below_the_minimum_rate_stops_and_keeps_its_part(srv, tmp_path):
    url = srv.add("/slow", DATA, trickle_s=0.02)  # ~50 bytes/s
    with pytest.raises(MinvertError) as e:
        download(url, tmp_path / "f.bin", progress=False, speed_limit=1000, speed_time=0.3)
    msg = str(e.value)
    assert "slower than 1,000 bytes/s for 0.3 s" in msg and "\n" not in msg
    part = tmp_path / "f.bin.part"
    assert "partial download kept" in msg and part.stat().st_size > 0
    assert not (tmp_path / "f.bin").exists()


def test_without_a_minimum_rate_only_the_deadline_stops_a_trickle(srv, tmp_path):
    url = srv.add("/slow", DATA, trickle_s=0.02)
    with pytest.raises(MinvertError, match="passed its deadline"):
        download(url, tmp_path / "f.bin", progress=False, speed_limit=0, speed_time=0.1, deadline=0.5)


def test_a_failed_download_leaves_no_empty_part(srv, tmp_path):
    url = srv.add("/cut", DATA, truncate_at=0)  # headers, then the connection closes
    with pytest.raises(MinvertError, match="nothing was kept"):
        download(url, tmp_path / "f.bin", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_part_that_is_a_link_is_not_written_through(srv, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(DATA[:100])
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.bin.part").symlink_to(outside)
    url = srv.add("/f.bin", DATA)
    with pytest.raises(MinvertError, match="symbolic link"):
        download(url, tmp_path / "d" / "f.bin", progress=False)
    assert outside.read_bytes() == DATA[:100]


@pytest.mark.parametrize("option", [["--speed-limit", "-1"], ["--speed-time", "0"],
                                    ["--speed-limit", "inf"]])
def test_rate_options_are_checked_before_any_work(option, capsys):
    with pytest.raises(SystemExit) as stop:  # a usage error, while the options are parsed
        main(["weights", "download", "vgg19", *option])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1
    assert err[0].startswith(f"minvert: error: argument {option[0]}: '{option[1]}'")
