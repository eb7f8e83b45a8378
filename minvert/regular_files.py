"""Reading a file the user names: only a regular file, and only as much of it as minvert needs.

A path can name a FIFO (opening it blocks until a writer comes, reading it may never end), a
device such as /dev/zero (endless bytes), or a link to one. :func:`open_regular` opens
without blocking, asks the open file itself (fstat, so a file swapped in after a check cannot
slip through) whether it is a regular file and how large it is, and only then hands it over.
"""
import os
import stat

from .errors import FormatError, MinvertError

MAX_TEXT_BYTES = 16 << 20  # JSON records and source files minvert reads whole: kilobytes


def open_regular(path, what, max_bytes=None):
    """``path`` open for binary reading, after checking that it is a regular file of at most
    ``max_bytes`` bytes; a one-line MinvertError naming ``what`` ("an exercise file") if not."""
    path = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise MinvertError(f"{path}: no such file; give {what}") from None
    except IsADirectoryError:
        raise MinvertError(f"{path} is a directory; give {what}") from None
    except PermissionError:
        raise MinvertError(f"cannot read {path}: permission denied") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file (a pipe or device?)"
            raise MinvertError(f"{path} is {kind}; give {what}")
        if max_bytes is not None and info.st_size > max_bytes:
            raise FormatError(f"{path} holds {info.st_size:,} bytes, more than the "
                              f"{max_bytes:,} minvert reads as {what}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_regular(path, what, max_bytes=None):
    """Raise as :func:`open_regular` does unless ``path`` is a regular file within
    ``max_bytes``; for readers that open the path themselves (NumPy's memory map)."""
    open_regular(path, what, max_bytes).close()


def read_regular_text(path, what, max_bytes=MAX_TEXT_BYTES):
    """The UTF-8 text of a regular file of at most ``max_bytes`` bytes (FormatError if it is
    not UTF-8). At most ``max_bytes + 1`` bytes are read, even if the file grows meanwhile."""
    with open_regular(path, what, max_bytes) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FormatError(f"{path} grew past {max_bytes:,} bytes while being read; refused")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{path} is not UTF-8 text; give {what}") from None
