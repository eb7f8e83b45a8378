"""Writing files so that nothing is lost: appends that never follow links, exclusive locks on a
run folder or a destination, and write failures (full disk, file-size limit) said in one line.

Renamed writes (a temporary beside the file, then ``os.replace``) are
:func:`minvert.weights.project.atomic_write`; this module holds what every writer shares below it.
"""
import errno
import os
import stat
from contextlib import contextmanager
from pathlib import Path

from .errors import MinvertError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not protected from each other there
    fcntl = None

LOCK_NAME = ".minvert.lock"  # inside a run folder while a run writes into it

_MODES = {"a": os.O_APPEND, "ab": os.O_APPEND, "wb": os.O_TRUNC}


def open_nofollow(path, mode="a"):
    """``open(path, mode)`` for "a" (text append), "ab" or "wb" that refuses a symbolic link
    or anything but a regular file: an append must not land in a file outside the folder."""
    flags = os.O_WRONLY | os.O_CREAT | _MODES[mode] | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0), 0o644)  # a FIFO must not block us
    except OSError as e:
        if e.errno == errno.ELOOP or os.path.islink(path):
            raise MinvertError(f"{path} is a symbolic link; minvert does not write through links "
                               "(remove it and run again)") from None
        if e.errno == errno.ENXIO:  # a FIFO nobody reads
            raise MinvertError(f"{path} is not a regular file; remove it and run again") from None
        raise
    if not _is_regular(fd):
        os.close(fd)
        raise MinvertError(f"{path} is not a regular file; remove it and run again")
    os.set_blocking(fd, True)
    return os.fdopen(fd, mode)


def _is_regular(fd):
    return stat.S_ISREG(os.fstat(fd).st_mode)


def write_failure(e, path):
    """The one-line MinvertError for an OSError ``e`` raised while writing ``path`` when the disk
    is full or a size limit was reached; None for other errors (they speak for themselves)."""
    number = getattr(e, "errno", None)
    if number in (errno.ENOSPC, errno.EDQUOT):
        why = "no space left on the device (or the disk quota is used up)"
    elif number == errno.EFBIG:
        why = "the file size limit was reached (ulimit -f, or the file system's largest file)"
    else:
        return None
    return MinvertError(f"cannot write {path}: {why}; the previous file, if any, was left as it "
                        "was: free some space and run again")


@contextmanager
def translated_write_errors(path):
    """Inside the block, a full disk or a size limit becomes :func:`write_failure`'s one line."""
    try:
        yield
    except OSError as e:
        failure = write_failure(e, path)
        if failure is None:
            raise
        raise failure from None


def same_file(a, b):
    """True if paths ``a`` and ``b`` name one file (same device and inode: through symbolic and
    hard links too)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@contextmanager
def exclusive_lock(lock_path, what):
    """Hold an exclusive lock on ``lock_path`` (created, removed on release) for the block;
    a second process asking for it gets a one-line MinvertError at once. ``what`` names the
    thing protected in that message. The kernel drops the lock if the holder dies (kill -9)."""
    if fcntl is None:
        yield
        return
    lock_path = Path(lock_path)
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise MinvertError(f"{what} is in use by another minvert process; wait for it to "
                               "finish (or choose another destination)") from None
        if _still_there(fd, lock_path):
            break
        os.close(fd)  # the holder released and removed it between our open and lock: again
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)  # before unlocking, so a waiting opener notices
        os.close(fd)


def _still_there(fd, path):
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
    except FileNotFoundError:
        return False


def lock_beside(path):
    """The lock file for writing ``path`` (a destination file): ``.NAME.lock`` next to it."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextmanager
def run_folder_lock(folder):
    """Lock the run folder ``folder`` (created if needed, removed again if the block leaves it
    empty) so that two runs never write into it at once."""
    folder = Path(folder)
    made = []
    probe = folder.absolute()
    while not probe.exists() and probe.parent != probe:
        made.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with exclusive_lock(folder / LOCK_NAME, f"the run folder {folder}"):
            yield
    finally:
        for d in made:  # deepest first; only empty ones go
            try:
                d.rmdir()
            except OSError:
                break
