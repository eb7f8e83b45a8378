"""Every model minvert finds by name, as one table: the bundled models, the zoo's downloads, and
the files installed under a name by ``minvert convert SRC NAME`` (``minvert weights list``)."""
import io
import re
import sys

from ..errors import MinvertError
from .bundled import BUNDLED, BUNDLED_MODELS, bundled_path
from .project import read_header
from .zoo import ZOO, default_download_dir, list_weights, weights_search_path

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def is_model_name(dst):
    """True if a ``minvert convert`` destination is a name to install under (``vgg19``), not a
    file path (``vgg19.h5``, ``out/vgg19``)."""
    dst = str(dst)
    return not dst.lower().endswith(".h5") and "/" not in dst and "\\" not in dst


def install_path(name):
    """Where ``minvert convert SRC NAME`` puts NAME: NAME.h5 in the download folder (the first
    writable $MINVERT_WEIGHTS folder, else the user cache), which the model search path covers."""
    if not NAME.fullmatch(name) or name in (".", ".."):
        raise MinvertError(f"{name!r}: a model name is letters, digits, '.', '-' and '_' (or give "
                           "a file path ending in .h5)")
    if name in BUNDLED:
        raise MinvertError(f"{name} is a bundled model's name, which --model {name} would always "
                           "find first; choose another name")
    return default_download_dir() / f"{name}.h5"


def installed_models():
    """{name: path} of the minvert weight files on the search path that are neither bundled nor
    zoo entries (``minvert convert SRC NAME`` put them there, or a user did); first match wins."""
    found = {}
    for folder in weights_search_path():
        for path in sorted(folder.glob("*.h5")) if folder.is_dir() else ():
            name = path.stem
            if name in found or name in ZOO or name in BUNDLED:
                continue
            try:
                found[name] = (path, read_header(path)["config"])
            except (MinvertError, OSError):
                continue  # not a minvert file (a Keras original, say): not loadable by name
    return found


def _arch(config):
    return f"{config.get('arch', '?')}{config.get('depth') or ''}"


def list_models(out=None, verbose=False):
    """Print every model loadable by name (bundled, zoo, installed); return the rows
    (name, source, arch, size, where)."""
    out = sys.stdout if out is None else out
    rows, notes = [], {}
    for name, model in BUNDLED_MODELS.items():
        path = bundled_path(name)
        size = f"{path.stat().st_size / 1e6:.1f} MB" if path.is_file() else "missing"
        rows.append((name, "bundled", model.arch, size, str(path)))
        notes[name] = [model.describe()]
    rows += list_weights(out=io.StringIO())
    for entry in ZOO.values():
        notes[entry.name] = [entry.description, entry.url]
    for name, (path, config) in installed_models().items():
        rows.append((name, "installed", _arch(config), f"{path.stat().st_size / 1e6:.1f} MB", str(path)))
        notes[name] = ["installed by `minvert convert SRC NAME` (or copied there)"]
    head = ("name", "source", "arch", "size", "where")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
    for r in [head] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4], file=out)
        if verbose and r[0] in notes and r is not head:
            print("".join(f"    {line}\n" for line in notes[r[0]]), end="", file=out)
    return rows
