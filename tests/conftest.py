"""Shared fixtures. ``strict_cupy``: the stand-in of tests/strict_cupy as the ``cupy`` that
minvert sees, for one test, whatever the real environment has (CuPy or not)."""
import importlib.util
import sys
from pathlib import Path

import pytest

STANDIN = Path(__file__).parent / "strict_cupy" / "cupy" / "__init__.py"
_LOADED = {}


def load_standin():
    """The stand-in package, imported once under a private name (so a real CuPy, or the
    stand-in itself on PYTHONPATH in CI's second run, is left alone)."""
    if "module" not in _LOADED:
        spec = importlib.util.spec_from_file_location(
            "strict_cupy_standin", STANDIN, submodule_search_locations=[str(STANDIN.parent)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        _LOADED["module"] = module
    return _LOADED["module"]


@pytest.fixture
def strict_cupy(monkeypatch):
    from minvert import backend
    cp = load_standin()
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setattr(backend, "_CUPY", None)  # forget what the session's probe found
    monkeypatch.delenv("MINVERT_DEVICE", raising=False)
    monkeypatch.delenv("STRICT_CUPY_DEVICES", raising=False)
    yield cp
    cp._core._state["device"] = 0


@pytest.fixture
def fast_engine():
    """The fast engine on for one test, whatever MINVERT_FAST says (for tests of the layer
    classes' fast path; the engine's functions themselves need no switch)."""
    from minvert.layers import fast
    previous = fast.set_enabled(True)
    yield fast
    fast.set_enabled(previous)


@pytest.fixture
def readable_engine():
    """The fast engine off for one test: the layer classes run the readable layers."""
    from minvert.layers import fast
    previous = fast.set_enabled(False)
    yield fast
    fast.set_enabled(previous)
