"""Weights: the project format, readers of Keras/torch files, the download zoo, bundled models."""
import difflib
import os
from pathlib import Path

from ..errors import MinvertError
from .bundled import BUNDLED, BUNDLED_DIR  # noqa: F401  (the registry of the bundled models)
from .project import load
from .zoo import ZOO, find_weights


def resolve_model(name_or_path):
    """Path of the project weight file for a path, a bundled model or a downloaded zoo name."""
    if os.path.exists(name_or_path):
        return Path(name_or_path)
    name = str(name_or_path)
    if name in BUNDLED:
        path = BUNDLED_DIR / f"{name}.h5"
        if not path.exists():
            raise MinvertError(f"bundled model {name} is missing from this installation ({path}); "
                               f"reinstall minvert or train it (see weights/README.md)")
        return path
    found = find_weights(name)
    if found is not None:
        return found
    if name in ZOO:
        raise MinvertError(f"model {name} is not downloaded yet; run `minvert weights download {name}`, "
                           f"or install a file you have with `minvert convert FILE {name}`, or give a "
                           f"converted file's path (--model path/to/{name}.h5), or try the bundled "
                           "--model tiny-vgg-textures offline")
    if name.endswith((".h5", ".pth", ".pt")) or os.sep in name:
        raise MinvertError(f"{name}: no such file")
    known = list(BUNDLED) + sorted(ZOO)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise MinvertError(f"unknown model {name!r}{hint} (known: {', '.join(known)}; or give a .h5 path, or install a file you have under this name with `minvert convert FILE {name}`)")


def load_model(name_or_path, dtype="float32", device=None):
    """The network stored in a project weight file, found by path or by name.

    Names: the bundled models (tiny-vgg-textures, tiny-resnet-textures, tiny-resnet-shapes) and
    the zoo names of downloaded weights (vgg19, resnet50, ...), looked up in $MINVERT_WEIGHTS,
    ./weights and the user cache directory.
    """
    return load(resolve_model(name_or_path), dtype=dtype, device=device)
