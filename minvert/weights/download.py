"""Download the zoo's weight files, verify and convert them; verify any file against the zoo.

Originals fetched by ``download_weights`` live in ``<dest_dir>/originals/<name>/<upstream file>``:
one folder per zoo entry because two entries (current and legacy Keras ResNet50) share a file name.
The converted project-format file is ``<dest_dir>/<name>.h5``, where ``find_weights`` looks.
The transfer itself (resume, size and hash checks) is :func:`minvert.weights.http.download`.
"""
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import MinvertError
from .hashes import digest_file, file_hashes, hash_matches
from .http import dirs_to_make, download, remove_empty_dirs, say
from .zoo import ZOO, ZooEntry, default_download_dir, get_entry, original_path


def download_weights(name, dest_dir=None, convert=None, force=False, out=None, progress=True,
                     retries=3, keep_original=True, deadline=None, timeout=60, speed=None):
    """Fetch zoo entry ``name``, verify it, and convert it to ``<dest_dir>/<name>.h5``.

    A failed run leaves no folder it created empty behind. deadline, timeout: as in :func:`download`;
    speed: (speed_limit, speed_time) for :func:`download` (None: its defaults).
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
        say(out, f"{name}: already converted: {project}")
        return project

    made = dirs_to_make(original.parent, dest_dir)
    try:
        return _fetch_and_convert(entry, name, dest_dir, project, original, part, convert, force,
                                  out, progress, retries, keep_original, deadline, timeout, speed)
    except BaseException:
        remove_empty_dirs(made)
        raise


def _fetch_and_convert(entry, name, dest_dir, project, original, part, convert, force, out,
                       progress, retries, keep_original, deadline, timeout, speed):
    have_original = False
    if original.is_file() and not force:
        if hash_matches(digest_file(original, entry.hash_kind), entry.hash_kind, entry.hash):
            say(out, f"{name}: verified original already downloaded: {original}")
            have_original = True
        else:
            say(out, f"{name}: {original} does not match its {entry.hash_kind} hash; "
                      "downloading again")
    if not have_original:
        for p in (original, part) if force else (original,):
            if p.exists():
                p.unlink()
        say(out, f"{name}: downloading {entry.url}")
        download(entry.url, original, entry.hash, entry.hash_kind, entry.size, progress=progress,
                 out=out, retries=retries, max_size=entry.max_size, deadline=deadline,
                 timeout=timeout, **dict(zip(("speed_limit", "speed_time"), speed or ())))
        say(out, f"{name}: {entry.hash_kind} {entry.hash} ok: {original}")

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
    say(out, f"{name}: converted to {project}")
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
    return hash_matches(digest, entry.hash_kind, entry.hash)


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
