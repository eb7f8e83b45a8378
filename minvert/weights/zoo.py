"""The known pretrained-weight downloads, and where minvert looks for weight files.

Every URL and hash in ``ZOO`` comes from ``shared/reference/weights-formats.md`` (sections 1 and 4):
Keras files are checked by their full MD5 (what ``keras.utils.get_file`` uses for 32-hex hashes),
torchvision files by the SHA-256 prefix written in their file name (what ``torch.hub`` checks).
No exact byte sizes are known for these files; torchvision's ``_file_size`` meta gives approximate
sizes in MB, and the Keras files' are about as well known. ``approx_mb`` is shown by ``weights
list`` and bounds a download (``ZooEntry.max_size``: 25% more), so a server that sends an
endless body is cut off instead of filling the disk; it is never checked as an exact size.

Search path (``weights_search_path``), first match wins:

1. every directory in ``$MINVERT_WEIGHTS`` (``os.pathsep``-separated: ``:`` on Unix, ``;`` on Windows);
2. ``./weights`` in the current directory (the repository's bundled small models);
3. the user cache directory: ``$XDG_CACHE_HOME/minvert``, else ``~/.cache/minvert``
   (``%LOCALAPPDATA%\\minvert\\Cache`` on Windows).

Downloads go to ``default_download_dir()``: the first writable ``$MINVERT_WEIGHTS`` directory, else
the user cache directory. Never ``./weights``: a 500 MB download should not land in whatever
repository or project the user happens to be standing in. There ``download_weights`` keeps the
upstream file as ``originals/<name>/<upstream file name>`` (a folder per entry: the current and legacy
Keras ResNet50 files share a name) and writes the converted ``<name>.h5`` next to ``originals/``.
"""
import difflib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..bounds import env_paths
from ..errors import MinvertError

_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/"
_FCHOLLET_V02 = "https://github.com/fchollet/deep-learning-models/releases/download/v0.2/"
_TORCH = "https://download.pytorch.org/models/"


@dataclass(frozen=True)
class ZooEntry:
    """One downloadable weight file.

    name: minvert's name for it (``minvert weights download NAME``; converted file ``NAME.h5``).
    url, filename: where it lives upstream and its upstream file name.
    hash_kind, hash: "md5" (full hex digest) or "sha256-prefix" (hex digest starts with ``hash``).
    size: exact size in bytes when known (checked), else None.
    approx_mb: approximate size in MB (2**20 bytes): shown, and the base of ``max_size``.
    source: "keras" or "torchvision"; arch: e.g. "vgg19", "resnet50" (passed to convert).
    include_top: whether the file holds the classifier head.
    """
    name: str
    url: str
    filename: str
    hash_kind: str
    hash: str
    source: str
    arch: str
    include_top: bool
    description: str
    size: int | None = None
    approx_mb: float | None = None

    @property
    def max_size(self):
        """Bytes a download of this entry may reach before it is cut off: the exact size, else
        approx_mb plus 25%, else 2 GiB."""
        if self.size is not None:
            return self.size
        return int(self.approx_mb * 1.25 * 2**20) + (1 << 20) if self.approx_mb else 1 << 31


def _keras(name, url_dir, filename, md5, arch, include_top, approx_mb, description):
    return ZooEntry(name, url_dir + filename, filename, "md5", md5, "keras", arch, include_top,
                    description, approx_mb=approx_mb)


def _tv(name, filename, arch, approx_mb, description):
    prefix = filename.rsplit("-", 1)[1].split(".")[0]  # torch.hub HASH_REGEX r'-([a-f0-9]*)\.'
    return ZooEntry(name, _TORCH + filename, filename, "sha256-prefix", prefix, "torchvision", arch,
                    True, description, approx_mb=approx_mb)


_ENTRIES = [
    _keras("vgg19", _KERAS + "vgg19/", "vgg19_weights_tf_dim_ordering_tf_kernels.h5",
           "cbe5617147190e668d6c5d5026f83318", "vgg19", True, 548.1,
           "Keras VGG19 with top: the Oxford Caffe VGG-19 (paper A's net), BGR caffe preprocessing"),
    _keras("vgg19-notop", _KERAS + "vgg19/", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
           "253f8cb515780f3b799900260a226db6", "vgg19", False, 76.4,
           "Keras VGG19 convolutional part only (no fc layers), BGR caffe preprocessing"),
    _keras("resnet50", _KERAS + "resnet/", "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
           "2cb95161c43110f7111970584f804107", "resnet50", True, 98.1,
           "Keras ResNet50 v1 with top (current file), BN eps 1.001e-5, BGR caffe preprocessing"),
    _keras("resnet50-notop", _KERAS + "resnet/",
           "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
           "4d473c1dd8becc155b73f8504c6f6626", "resnet50", False, 90.3,
           "Keras ResNet50 v1 without top (current file), BN eps 1.001e-5, BGR caffe preprocessing"),
    _keras("resnet50-legacy", _FCHOLLET_V02, "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
           "a7b3fe01876f51b976af0dea6bc144eb", "resnet50", True, 98.1,
           "Keras legacy ResNet50 v0.2 with top (res2a_branch2a names, BN eps 1e-3)"),
    _keras("resnet50-legacy-notop", _FCHOLLET_V02,
           "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
           "a268eb855778b3df3c7506639542a6af", "resnet50", False, 90.3,
           "Keras legacy ResNet50 v0.2 without top: paper B's encoder (BN eps 1e-3)"),
    _keras("resnet101", _KERAS + "resnet/", "resnet101_weights_tf_dim_ordering_tf_kernels.h5",
           "f1aeb4b969a6efcfb50fad2f0c20cfc5", "resnet101", True, 171.3,
           "Keras ResNet101 v1 with top, BN eps 1.001e-5, BGR caffe preprocessing"),
    _keras("resnet152", _KERAS + "resnet/", "resnet152_weights_tf_dim_ordering_tf_kernels.h5",
           "100835be76be38e30d865e96f2aaae62", "resnet152", True, 231.6,
           "Keras ResNet152 v1 with top, BN eps 1.001e-5, BGR caffe preprocessing"),
    _tv("tv-vgg19", "vgg19-dcbb9e9d.pth", "vgg19", 548.051,
        "torchvision VGG19 IMAGENET1K_V1 (legacy .pth), RGB mean/std preprocessing"),
    _tv("tv-resnet18", "resnet18-f37072fd.pth", "resnet18", 44.661,
        "torchvision ResNet18 IMAGENET1K_V1, RGB mean/std preprocessing"),
    _tv("tv-resnet34", "resnet34-b627a593.pth", "resnet34", 83.275,
        "torchvision ResNet34 IMAGENET1K_V1, RGB mean/std preprocessing"),
    _tv("tv-resnet50", "resnet50-0676ba61.pth", "resnet50", 97.781,
        "torchvision ResNet50 (v1.5) IMAGENET1K_V1, RGB mean/std, resize 256 crop 224"),
    _tv("tv-resnet50-v2", "resnet50-11ad3fa6.pth", "resnet50", 97.79,
        "torchvision ResNet50 (v1.5) IMAGENET1K_V2 (torchvision default), resize 232 crop 224"),
    _tv("tv-resnet101", "resnet101-63fe2227.pth", "resnet101", 170.511,
        "torchvision ResNet101 (v1.5) IMAGENET1K_V1, RGB mean/std preprocessing"),
    _tv("tv-resnet101-v2", "resnet101-cd907fc2.pth", "resnet101", 170.53,
        "torchvision ResNet101 (v1.5) IMAGENET1K_V2, RGB mean/std preprocessing"),
    _tv("tv-resnet152", "resnet152-394f9c45.pth", "resnet152", 230.434,
        "torchvision ResNet152 (v1.5) IMAGENET1K_V1, RGB mean/std preprocessing"),
    _tv("tv-resnet152-v2", "resnet152-f82ba261.pth", "resnet152", 230.474,
        "torchvision ResNet152 (v1.5) IMAGENET1K_V2, RGB mean/std preprocessing"),
]

ZOO = {e.name: e for e in _ENTRIES}


def get_entry(name):
    """The ZOO entry called ``name``; MinvertError naming the closest match and all names if unknown."""
    if name in ZOO:
        return ZOO[name]
    close = difflib.get_close_matches(name, list(ZOO), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise MinvertError(f"unknown weights '{name}'; {hint}known: {', '.join(ZOO)} "
                       "(see `minvert weights list`)")


def user_cache_dir():
    """``$XDG_CACHE_HOME/minvert`` or ``~/.cache/minvert``; ``%LOCALAPPDATA%\\minvert\\Cache`` on Windows."""
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"),
                                                              "AppData", "Local")
        return Path(base) / "minvert" / "Cache"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "minvert"


def _env_dirs():
    return [Path(p) for p in env_paths("MINVERT_WEIGHTS")]


def weights_search_path():
    """Directories searched for weight files, in order, without duplicates (see module docstring)."""
    out = []
    for d in _env_dirs() + [Path.cwd() / "weights", user_cache_dir()]:
        d = d.absolute()
        if d not in out:
            out.append(d)
    return out


def find_weights(name):
    """Path of ``<name>.h5`` (project format) in the first search-path directory holding it, or None.

    A name that already ends in ``.h5`` is looked up as is.
    """
    fname = name if name.endswith(".h5") else name + ".h5"
    for d in weights_search_path():
        p = d / fname
        if p.is_file():
            return p
    return None


def _writable(d):
    """True if ``d`` is a writable directory or could be created (nearest existing parent writable)."""
    d = Path(d).absolute()
    while not d.exists():
        if d.parent == d:
            return False
        d = d.parent
    return d.is_dir() and os.access(d, os.W_OK | os.X_OK)


def default_download_dir():
    """First writable ``$MINVERT_WEIGHTS`` directory, else the user cache directory (not ./weights)."""
    for d in _env_dirs() + [user_cache_dir()]:
        if _writable(d):
            return d.absolute()
    raise MinvertError(f"no writable directory for downloads (tried $MINVERT_WEIGHTS and "
                       f"{user_cache_dir()}); set MINVERT_WEIGHTS to a writable directory")


def original_path(name, dest_dir):
    """Where ``download_weights`` keeps the upstream file of zoo entry ``name`` under ``dest_dir``."""
    return Path(dest_dir) / "originals" / name / get_entry(name).filename


def find_original(name):
    """The downloaded upstream file of zoo entry ``name`` in the search path, or None."""
    for d in weights_search_path():
        p = original_path(name, d)
        if p.is_file():
            return p
    return None


def _size_text(entry):
    if entry.size is not None:
        return f"{entry.size / 1e6:.1f} MB"
    return f"~{entry.approx_mb:.0f} MB" if entry.approx_mb is not None else "?"


def list_weights(out=None, verbose=False):
    """Print the zoo as a table (name, source, arch, size, cached path) to ``out``; return its rows.

    "cached" is the converted ``<name>.h5`` found on the search path, else "original: PATH" for a
    downloaded but unconverted file, else "-". verbose adds each entry's description and URL.
    """
    out = sys.stdout if out is None else out
    rows = []
    for e in ZOO.values():
        project = find_weights(e.name)
        if project is not None:
            cached = str(project)
        else:
            orig = find_original(e.name)
            cached = f"original: {orig}" if orig is not None else "-"
        rows.append((e.name, e.source, e.arch, _size_text(e), cached))
    head = ("name", "source", "arch", "size", "cached")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
    for r, e in zip([head] + rows, [None] + list(ZOO.values())):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4], file=out)
        if verbose and e is not None:
            print(f"    {e.description}\n    {e.url}", file=out)
    return rows
