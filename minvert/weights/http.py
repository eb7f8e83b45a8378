"""Download one file over HTTP with resume, size/hash checks and a progress line.

Only ``urllib`` is used. A download is written to ``<dest>.part``; a later call resumes it with an
HTTP ``Range: bytes=N-`` request (206 -> append; 200 -> the server ignored the range, start again
from 0). The finished file is checked (size, then hash) before ``os.replace`` moves it into place,
so ``dest`` is either absent or complete and verified. A file that fails a check is deleted.
The zoo (which files, where they go, converting them) is :mod:`minvert.weights.download`.
"""
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..version import __version__
from ..errors import MinvertError
from ..files import open_nofollow
from .progress import Progress as _Progress
from .hashes import digest_file, hash_matches

CHUNK = 1 << 20
SPEED_LIMIT, SPEED_TIME = 1000, 60.0  # curl's --speed-limit/--speed-time: under 1 kB/s for 60 s


class _Resumable(Exception):
    """A transfer stopped for a reason that a later try may not hit (network, 5xx)."""


def say(out, msg):
    """Print a note on ``out`` (None: stay quiet)."""
    if out is not None:
        print(msg, file=out, flush=True)


# ---------------------------------------------------------------------------- download

def _total_from_content_range(value):
    """TOTAL from 'bytes START-END/TOTAL' or 'bytes */TOTAL'; None when absent or '*'."""
    m = re.search(r"/(\d+)\s*$", value or "")
    return int(m.group(1)) if m else None


def _what_was_kept(part):
    n = part.stat().st_size if part.exists() else 0
    if n:
        return f"partial download kept ({n:,} bytes in {part}); run the same command again to resume"
    return "nothing was kept"


_COMPLETE, _RESTART = "complete", "restart"  # what a request found instead of a body to copy


def _transfer(url, part, expected_size, chunk, timeout, out, progress, max_size=None, end=None):
    """One HTTP request that fills ``part`` to the end; raises _Resumable or MinvertError.
    max_size: bytes the file may not exceed; end: the download's :class:`_Pace` (or None)."""
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have >= expected_size:
        if have == expected_size:
            return  # an earlier transfer finished but was not verified yet
        part.unlink()
        have = 0
    resp = _open_range(url, part, have, timeout)
    if resp is _COMPLETE:
        return
    if resp is _RESTART:
        return _transfer(url, part, expected_size, chunk, timeout, out, progress, max_size, end)
    with resp:
        start = _body_start(resp, part, have, out)
        if start is _RESTART:
            return _transfer(url, part, expected_size, chunk, timeout, out, progress, max_size, end)
        have, mode, total = start
        _check_total(url, part, total, expected_size, max_size)
        done = _copy_body(resp, part, mode, have, total, url, chunk, timeout, out, progress,
                          max_size, end)
    if total is not None and done < total:
        raise _Resumable(f"download of {url} interrupted: connection closed after "
                         f"{done:,} of {total:,} bytes")


def _open_range(url, part, have, timeout):
    """The response to a GET of ``url`` from byte ``have`` on; _COMPLETE when the server says
    ``part`` already holds the whole file, _RESTART when ``part`` was deleted to start again."""
    headers = {"User-Agent": f"minvert/{__version__}", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        total = _total_from_content_range(e.headers.get("Content-Range")) if e.headers else None
        e.close()
        if e.code == 416 and have:
            if total == have:
                return _COMPLETE
            part.unlink()  # the part is longer than the remote file: not a prefix of it
            return _RESTART
        msg = f"download failed: HTTP {e.code} {e.reason} for {url}"
        if e.code in (408, 429) or e.code >= 500:
            raise _Resumable(msg)
        raise MinvertError(f"{msg}; {_what_was_kept(part)}")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e
        raise _Resumable(f"download failed: cannot connect to {url} ({reason})")


def _body_start(resp, part, have, out):
    """(bytes of the file before the body, mode to open ``part`` in, total size or None);
    _RESTART when the server sent a range that was not asked for (``part`` deleted)."""
    if have and resp.status == 206:
        m = re.match(r"\s*bytes\s+(\d+)-", resp.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != have:
            resp.close()
            part.unlink()  # a range we did not ask for: start again cleanly
            return _RESTART
        total = _total_from_content_range(resp.headers.get("Content-Range"))
        length = resp.headers.get("Content-Length")
        if total is None and length and length.isdigit():
            total = have + int(length)
        return have, "ab", total
    if have:
        say(out, "server ignored the resume request; downloading again from the start")
    length = resp.headers.get("Content-Length")
    return 0, "wb", int(length) if length and length.isdigit() else None


def _check_total(url, part, total, expected_size, max_size):
    """Refuse a body whose announced size cannot be the file's (``part`` deleted)."""
    if total is not None and expected_size is not None and total != expected_size:
        if part.exists():
            part.unlink()
        raise MinvertError(f"{url} is {total:,} bytes, expected {expected_size:,}: the server "
                           "holds a different file; nothing was kept")
    if total is not None and max_size is not None and total > max_size:
        part.unlink(missing_ok=True)
        raise MinvertError(f"{url} is {total:,} bytes, more than the {max_size:,} this file can "
                           "be: the server holds a different file; nothing was kept")


class _Pace:
    """The time rules of one download: a deadline for the whole of it, and a minimum rate like
    curl's --speed-limit/--speed-time (under ``speed_limit`` bytes/s for ``speed_time`` seconds
    stops the transfer, keeping the part for a retry)."""

    def __init__(self, deadline, speed_limit, speed_time):
        self.end = time.monotonic() + deadline
        self.speed_limit, self.speed_time = speed_limit, speed_time
        self.start(0)

    def start(self, done):
        """A transfer starts (or resumes) with ``done`` bytes: the rate window starts again."""
        self.window_start, self.window_done = time.monotonic(), done

    def check(self, done, url, part, bar):
        now = time.monotonic()
        if now > self.end:
            bar.finish(done)
            raise MinvertError(f"download of {url} passed its deadline after {done:,} "
                               f"bytes (the server is too slow); {_what_was_kept(part)}")
        elapsed = now - self.window_start
        if self.speed_limit and elapsed >= self.speed_time:
            if (done - self.window_done) / elapsed < self.speed_limit:
                bar.finish(done)
                raise _Resumable(f"download of {url} slower than {self.speed_limit:,g} bytes/s "
                                 f"for {self.speed_time:g} s after {done:,} bytes")
            self.start(done)


def _copy_body(resp, part, mode, have, total, url, chunk, timeout, out, progress, max_size, end):
    """Append the body of ``resp`` to ``part``; returns the bytes of the file the part now holds."""
    bar = _Progress(out, total, have, progress)
    done = have
    if end is not None:
        end.start(done)
    with open_nofollow(part, mode) as f:  # a .part that is a link is refused, not written through
        while True:
            try:  # read1: whatever has arrived, so a trickle still meets the deadline check
                buf = resp.read1(chunk)
            except (OSError, http.client.HTTPException) as e:
                bar.finish(done)
                why = f"nothing received for {timeout:g} s" if isinstance(e, TimeoutError) else e
                raise _Resumable(f"download of {url} interrupted after {done:,} bytes ({why})")
            if not buf:
                break
            f.write(buf)
            done += len(buf)
            bar.update(done)
            if max_size is not None and done > max_size:
                bar.finish(done)
                f.close()
                part.unlink(missing_ok=True)
                raise MinvertError(f"{url} sent more than {max_size:,} bytes, more than this "
                                   "file can be; the download was deleted")
            if end is not None:
                end.check(done, url, part, bar)
    bar.finish(done)
    return done


def download(url, dest, expected_hash=None, hash_kind="md5", expected_size=None, progress=True,
             chunk=CHUNK, timeout=60, out=None, retries=0, max_size=None, deadline=None,
             speed_limit=SPEED_LIMIT, speed_time=SPEED_TIME):
    """Download ``url`` to ``dest`` (resuming ``dest.part``), check it, move it into place.

    expected_hash: hex digest to check, of kind ``hash_kind``: "md5" (full digest), "sha256" (full)
        or "sha256-prefix" (torch.hub's rule: the SHA-256 hex digest starts with it). None: no check.
    expected_size: exact size in bytes, checked when given (never pass an approximate size).
    progress: rewrite a progress line (percent, MB, MB/s, ETA) on ``out``, which also gets notes;
        ``out`` defaults to sys.stderr, looked up at call time.
    timeout: stall timeout, seconds for connecting and for each read. retries: extra tries that
        resume after a network error or an HTTP 5xx (0: one try; the .part is kept for a later call).
    max_size: bytes the file may not exceed (default: expected_size, else 2 GiB); a longer body
        is cut off and deleted. deadline: seconds for the whole download, all tries (default
        10 minutes plus 50 kB/s of max_size); past it the download stops, keeping the part.
    speed_limit, speed_time: a transfer slower than speed_limit bytes/s over speed_time seconds
        stops (and is retried like a network error); speed_limit 0 turns the rule off.
    Returns Path(dest). Raises MinvertError (one line) on any failure: HTTP/connection errors name
    the URL and status and say whether a partial download was kept; a size or hash mismatch deletes
    the download and says so.
    """
    out = sys.stderr if out is None else out
    if not re.match(r"https?://", url):
        raise MinvertError(f"cannot download {url}: only http:// and https:// URLs are supported")
    dest = Path(dest)
    max_size = max_size or expected_size or 1 << 31
    end = _Pace(deadline if deadline is not None else 600 + max_size / 50_000, speed_limit, speed_time)
    made = dirs_to_make(dest.parent, dest.anchor)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _download(url, dest, expected_hash, hash_kind, expected_size, progress, chunk,
                         timeout, out, retries, max_size, end)
    except BaseException:
        part = dest.with_name(dest.name + ".part")
        if part.is_file() and not part.is_symlink() and part.stat().st_size == 0:
            part.unlink()  # "nothing was kept": no empty .part either
        remove_empty_dirs(made)  # nothing kept: no folder of ours is left behind either
        raise


def _download(url, dest, expected_hash, hash_kind, expected_size, progress, chunk, timeout, out,
              retries, max_size, end):
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _transfer(url, part, expected_size, chunk, timeout, out, progress, max_size, end)
            break
        except _Resumable as e:
            if attempt >= retries:
                raise MinvertError(f"{e}; {_what_was_kept(part)}") from None
            attempt += 1
            say(out, f"{e}; retrying ({attempt}/{retries})")
            time.sleep(min(2.0 ** attempt, 10.0) * 0.1)
        except OSError as e:  # writing the part failed (disk full, permissions)
            raise MinvertError(f"cannot write {part}: {e.strerror or e}; {_what_was_kept(part)}") from None

    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        part.unlink()
        raise MinvertError(f"size mismatch for {dest.name}: expected {expected_size:,} bytes, got "
                           f"{size:,}; the download was deleted; try again")
    if expected_hash:
        digest = digest_file(part, hash_kind)
        if not hash_matches(digest, hash_kind, expected_hash):
            part.unlink()
            raise MinvertError(f"{hash_kind} mismatch for {dest.name}: expected {expected_hash}, "
                               f"got {digest}; the download was deleted; try again")
    os.replace(part, dest)
    return dest


def dirs_to_make(path, top):
    """The folders from ``path`` up to ``top`` that do not exist yet (deepest first)."""
    made, path, top = [], Path(path).absolute(), Path(top).absolute()
    while not path.exists():
        made.append(path)
        if path == top or path.parent == path:
            break
        path = path.parent
    return made


def remove_empty_dirs(folders):
    """Remove each folder of ``folders`` (deepest first) that is empty."""
    for d in folders:
        try:
            d.rmdir()  # only succeeds when empty
        except OSError:
            pass
