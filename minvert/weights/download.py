"""Download weight files with resume, size/hash checks and a progress line; verify and list them.

Only ``urllib`` is used. A download is written to ``<dest>.part``; a later call resumes it with an
HTTP ``Range: bytes=N-`` request (206 -> append; 200 -> the server ignored the range, start again
from 0). The finished file is checked (size, then hash) before ``os.replace`` moves it into place,
so ``dest`` is either absent or complete and verified. A file that fails a check is deleted.

Originals fetched by ``download_weights`` live in ``<dest_dir>/originals/<name>/<upstream file>``:
one folder per zoo entry because two entries (current and legacy Keras ResNet50) share a file name.
The converted project-format file is ``<dest_dir>/<name>.h5``, where ``find_weights`` looks.
"""
import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from minvert.version import __version__
from minvert.errors import MinvertError
from minvert.weights.zoo import ZOO, ZooEntry, default_download_dir, get_entry, original_path
from minvert.weights.zoo import list_weights  # noqa: F401  (re-exported for the CLI)

CHUNK = 1 << 20


class _Resumable(Exception):
    """A transfer stopped for a reason that a later try may not hit (network, 5xx)."""


def _say(out, msg):
    if out is not None:
        print(msg, file=out, flush=True)


# ---------------------------------------------------------------------------- hashes

def file_hashes(path, chunk=CHUNK):
    """{"md5": hex, "sha256": hex} of the file at ``path``, read in ``chunk``-byte pieces."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        while buf := f.read(chunk):
            md5.update(buf)
            sha.update(buf)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def _digest(path, hash_kind, chunk=CHUNK):
    algo = {"md5": "md5", "sha256": "sha256", "sha256-prefix": "sha256"}.get(hash_kind)
    if algo is None:
        raise MinvertError(f"unknown hash kind '{hash_kind}'; use md5, sha256 or sha256-prefix")
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while buf := f.read(chunk):
            h.update(buf)
    return h.hexdigest()


def _hash_ok(digest, hash_kind, expected):
    expected = expected.lower()
    return digest.startswith(expected) if hash_kind == "sha256-prefix" else digest == expected


# ---------------------------------------------------------------------------- progress

def _mb(n):
    return f"{n / 1e6:.1f}"


class _Progress:
    """One status line rewritten in place with \\r, at most ~10 times a second."""

    def __init__(self, out, total, start, enabled):
        self.out, self.total, self.start = out, total, start
        self.enabled = enabled and out is not None
        self.t0 = self.last = time.monotonic()
        self.width = 0

    def update(self, done, final=False):
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < 0.1):
            return
        self.last = now
        rate = (done - self.start) / max(now - self.t0, 1e-6)
        if self.total:
            eta = (self.total - done) / rate if rate > 0 else 0.0
            m, s = divmod(int(eta + 0.5), 60)
            line = (f"{100.0 * done / self.total:5.1f}% {_mb(done)}/{_mb(self.total)} MB "
                    f"{rate / 1e6:.2f} MB/s ETA {m}:{s:02d}")
        else:
            line = f"{_mb(done)} MB {rate / 1e6:.2f} MB/s"
        self.out.write("\r" + line.ljust(self.width))
        self.width = len(line)
        self.out.flush()

    def finish(self, done):
        if self.enabled:
            self.update(done, final=True)
            self.out.write("\n")
            self.out.flush()


# ---------------------------------------------------------------------------- download

def _total_from_content_range(value):
    """TOTAL from 'bytes START-END/TOTAL' or 'bytes */TOTAL'; None when absent or '*'."""
    m = re.search(r"/(\d+)\s*$", value or "")
    return int(m.group(1)) if m else None


def _kept(part):
    n = part.stat().st_size if part.exists() else 0
    if n:
        return f"partial download kept ({n:,} bytes in {part}); run the same command again to resume"
    return "nothing was kept"


def _transfer(url, part, expected_size, chunk, timeout, out, progress, max_size=None, end=None):
    """One HTTP request that fills ``part`` to the end; raises _Resumable or MinvertError.
    max_size: bytes the file may not exceed; end: time.monotonic() deadline of the download."""
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have >= expected_size:
        if have == expected_size:
            return  # an earlier transfer finished but was not verified yet
        part.unlink()
        have = 0
    headers = {"User-Agent": f"minvert/{__version__}", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        total = _total_from_content_range(e.headers.get("Content-Range")) if e.headers else None
        e.close()
        if e.code == 416 and have:
            if total == have:
                return  # the server says the part already holds the whole file
            part.unlink()  # the part is longer than the remote file: not a prefix of it
            return _transfer(url, part, expected_size, chunk, timeout, out, progress, max_size, end)
        msg = f"download failed: HTTP {e.code} {e.reason} for {url}"
        if e.code in (408, 429) or e.code >= 500:
            raise _Resumable(msg)
        raise MinvertError(f"{msg}; {_kept(part)}")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e
        raise _Resumable(f"download failed: cannot connect to {url} ({reason})")

    with resp:
        status = resp.status
        if have and status == 206:
            m = re.match(r"\s*bytes\s+(\d+)-", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                resp.close()
                part.unlink()  # a range we did not ask for: start again cleanly
                return _transfer(url, part, expected_size, chunk, timeout, out, progress, max_size, end)
            total = _total_from_content_range(resp.headers.get("Content-Range"))
            length = resp.headers.get("Content-Length")
            if total is None and length and length.isdigit():
                total = have + int(length)
            mode = "ab"
        else:
            if have:
                _say(out, "server ignored the resume request; downloading again from the start")
            have, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if total is not None and expected_size is not None and total != expected_size:
            if part.exists():
                part.unlink()
            raise MinvertError(f"{url} is {total:,} bytes, expected {expected_size:,}: the server "
                               "holds a different file; nothing was kept")
        if total is not None and max_size is not None and total > max_size:
            part.unlink(missing_ok=True)
            raise MinvertError(f"{url} is {total:,} bytes, more than the {max_size:,} this file can "
                               "be: the server holds a different file; nothing was kept")

        bar = _Progress(out, total, have, progress)
        done = have
        with open(part, mode) as f:
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
                if end is not None and time.monotonic() > end:
                    bar.finish(done)
                    raise MinvertError(f"download of {url} passed its deadline after {done:,} "
                                       f"bytes (the server is too slow); {_kept(part)}")
        bar.finish(done)
    if total is not None and done < total:
        raise _Resumable(f"download of {url} interrupted: connection closed after "
                         f"{done:,} of {total:,} bytes")


def download(url, dest, expected_hash=None, hash_kind="md5", expected_size=None, progress=True,
             chunk=CHUNK, timeout=60, out=None, retries=0, max_size=None, deadline=None):
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
    Returns Path(dest). Raises MinvertError (one line) on any failure: HTTP/connection errors name
    the URL and status and say whether a partial download was kept; a size or hash mismatch deletes
    the download and says so.
    """
    out = sys.stderr if out is None else out
    if not re.match(r"https?://", url):
        raise MinvertError(f"cannot download {url}: only http:// and https:// URLs are supported")
    dest = Path(dest)
    max_size = max_size or expected_size or 1 << 31
    end = time.monotonic() + (deadline if deadline is not None else 600 + max_size / 50_000)
    made = _made_dirs(dest.parent, dest.anchor)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _download(url, dest, expected_hash, hash_kind, expected_size, progress, chunk,
                         timeout, out, retries, max_size, end)
    except BaseException:
        _remove_if_empty(made)  # nothing kept: no folder of ours is left behind either
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
                raise MinvertError(f"{e}; {_kept(part)}") from None
            attempt += 1
            _say(out, f"{e}; retrying ({attempt}/{retries})")
            time.sleep(min(2.0 ** attempt, 10.0) * 0.1)
        except OSError as e:  # writing the part failed (disk full, permissions)
            raise MinvertError(f"cannot write {part}: {e.strerror or e}; {_kept(part)}") from None

    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        part.unlink()
        raise MinvertError(f"size mismatch for {dest.name}: expected {expected_size:,} bytes, got "
                           f"{size:,}; the download was deleted; try again")
    if expected_hash:
        digest = _digest(part, hash_kind)
        if not _hash_ok(digest, hash_kind, expected_hash):
            part.unlink()
            raise MinvertError(f"{hash_kind} mismatch for {dest.name}: expected {expected_hash}, "
                               f"got {digest}; the download was deleted; try again")
    os.replace(part, dest)
    return dest


# ---------------------------------------------------------------------------- zoo downloads

def _made_dirs(path, top):
    """The folders from ``path`` up to ``top`` that do not exist yet (deepest first)."""
    made, path, top = [], Path(path).absolute(), Path(top).absolute()
    while not path.exists():
        made.append(path)
        if path == top or path.parent == path:
            break
        path = path.parent
    return made


def _remove_if_empty(folders):
    for d in folders:
        try:
            d.rmdir()  # only succeeds when empty
        except OSError:
            pass


def download_weights(name, dest_dir=None, convert=None, force=False, out=None, progress=True,
                     retries=3, keep_original=True, deadline=None, timeout=60):
    """Fetch zoo entry ``name``, verify it, and convert it to ``<dest_dir>/<name>.h5``.

    A failed run leaves no folder it created empty behind. deadline, timeout: as in :func:`download`.
    dest_dir: default ``default_download_dir()``. convert: ``convert(src, dst, arch=...)`` writing
    the project format (the CLI passes ``minvert.convert``); None: download and verify only.
    A verified original already in place is not downloaded again, and an existing ``<name>.h5`` is
    kept as is, unless ``force``. Returns the project file's Path (or the original's when convert is
    None). Unknown name -> MinvertError listing the known names.
    """
    out = sys.stderr if out is None else out
    entry = get_entry(name)
    dest_dir = Path(dest_dir) if dest_dir is not None else default_download_dir()
    project = dest_dir / f"{name}.h5"
    original = original_path(name, dest_dir)
    part = original.with_name(original.name + ".part")
    if convert is not None and project.is_file() and not force:
        _say(out, f"{name}: already converted: {project}")
        return project

    made = _made_dirs(original.parent, dest_dir)
    try:
        return _fetch_and_convert(entry, name, dest_dir, project, original, part, convert, force,
                                  out, progress, retries, keep_original, deadline, timeout)
    except BaseException:
        _remove_if_empty(made)
        raise


def _fetch_and_convert(entry, name, dest_dir, project, original, part, convert, force, out,
                       progress, retries, keep_original, deadline, timeout):
    have_original = False
    if original.is_file() and not force:
        if _hash_ok(_digest(original, entry.hash_kind), entry.hash_kind, entry.hash):
            _say(out, f"{name}: verified original already downloaded: {original}")
            have_original = True
        else:
            _say(out, f"{name}: {original} does not match its {entry.hash_kind} hash; "
                      "downloading again")
    if not have_original:
        for p in (original, part) if force else (original,):
            if p.exists():
                p.unlink()
        _say(out, f"{name}: downloading {entry.url}")
        download(entry.url, original, entry.hash, entry.hash_kind, entry.size, progress=progress,
                 out=out, retries=retries, max_size=entry.max_size, deadline=deadline,
                 timeout=timeout)
        _say(out, f"{name}: {entry.hash_kind} {entry.hash} ok: {original}")

    if convert is None:
        return original
    tmp = dest_dir / f".{name}.converting.h5"  # never matches find_weights while half-written
    if tmp.exists():
        tmp.unlink()  # left by an interrupted run; convert refuses to overwrite
    try:
        convert(original, tmp, arch=entry.arch)
        os.replace(tmp, project)
    finally:
        if tmp.exists():
            tmp.unlink()
    _say(out, f"{name}: converted to {project}")
    if not keep_original:
        original.unlink()
    return project


# ---------------------------------------------------------------------------- verify

@dataclass
class VerifyResult:
    path: Path
    entry: ZooEntry  # the zoo entry the file matches
    md5: str
    sha256: str

    @property
    def message(self):
        e = self.entry
        return f"{self.path}: ok, matches '{e.name}' ({e.filename}, {e.hash_kind} {e.hash})"


def _matches(entry, hashes):
    digest = hashes["md5"] if entry.hash_kind == "md5" else hashes["sha256"]
    return _hash_ok(digest, entry.hash_kind, entry.hash)


def verify_file(path, name=None):
    """Check ``path`` against zoo entry ``name``, or else the entry it matches by hash or file name.

    Returns a VerifyResult on a match; raises MinvertError when the file differs from the entry
    (expected vs got) or matches no known download (its MD5 and SHA-256 are given).
    """
    path = Path(path)
    if not path.is_file():
        raise MinvertError(f"no such file: {path}")
    hashes = file_hashes(path)
    got = f"md5 {hashes['md5']}, sha256 {hashes['sha256']}"
    if name is not None:
        candidates = [get_entry(name)]
    else:
        for e in ZOO.values():
            if _matches(e, hashes):
                return VerifyResult(path, e, hashes["md5"], hashes["sha256"])
        candidates = [e for e in ZOO.values() if e.filename == path.name]
        if not candidates:
            raise MinvertError(f"{path} matches no known download ({got}); "
                               "see `minvert weights list`")
    for e in candidates:
        if _matches(e, hashes):
            return VerifyResult(path, e, hashes["md5"], hashes["sha256"])
    expected = " or ".join(f"'{e.name}' {e.hash_kind} {e.hash}" for e in candidates)
    raise MinvertError(f"{path} does not match {expected}: got {got}; the file is corrupt or "
                       "incomplete; download it again")
