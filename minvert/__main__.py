"""``python -m minvert ...`` runs the ``minvert`` command (handy when the script is not on PATH)."""
import importlib
import os
import sys


def _package_itself():
    """The real minvert package, also when ``python -m minvert`` runs in the folder that holds a
    clone named ``minvert``: Python puts the current folder first on its path and takes that
    clone (no __init__.py at its top) for a namespace package ``minvert``, whose ``weights/`` and
    ``tests/`` would then shadow minvert's own sub-packages. An editable install still finds this
    file, so the package is imported again from the folder above it."""
    package = sys.modules.get(__package__)
    if getattr(package, "__file__", None):  # a regular package: the usual case
        return package
    del sys.modules[__package__]
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return importlib.import_module(__package__)


_package_itself()
sys.exit(importlib.import_module(".cli", __package__).main())
