"""A student's own Python file: loaded safely, and its layer gradient-checked.

Used by ``minvert exercise check FILE`` (:mod:`minvert.exercises`) and by
``minvert gradcheck FILE.py:NAME`` (:func:`check_own_layer`; ``FILE.py`` alone checks every
layer the file defines), which checks a layer written in one of two forms:

* two functions ``NAME_forward(x, p1, p2, ...) -> (out, cache)`` and
  ``NAME_backward(dout, cache) -> (dx, dp1, dp2, ...)`` (just ``dx`` for one array). The
  forward's positional parameters without a default value are the arrays, checked in that
  order; parameters with a default (stride, pad, ...) keep it.
* a class ``NAME`` built as ``NAME()``, with ``forward(x) -> out`` and
  ``backward(dout) -> dx`` and, optionally, dicts ``params`` and ``grads`` of arrays by name
  (a :class:`minvert.layers.Layer`).

Every array is drawn from a standard normal (float64) with the shape given by
``shapes`` (``{"x": (2, 3, 6, 5), ...}``); x defaults to (2, 3, 6, 5).
"""
import inspect
import sys
import traceback
import types
from pathlib import Path

import numpy as np

from ..errors import MinvertError
from ..gradcheck import Row, print_table
from ..gradcheck_causes import H_DEFAULT, check_h, diagnose, verdict
from ..regular_files import read_regular_text

DEFAULT_X_SHAPE = (2, 3, 6, 5)


def load(path):
    """(module, None) or (None, one-line error). The module never enters sys.modules for good,
    and no .pyc is written or read (a stale one could hide the student's latest edit)."""
    path = Path(path)
    try:
        source = read_regular_text(path, "a Python file (.py)")
    except MinvertError as e:  # a pipe, a device, a huge or non-UTF-8 file
        return None, str(e)
    except OSError as e:
        return None, f"{path}: cannot read it ({type(e).__name__}: {e})"
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as e:
        return None, f"{path}, line {e.lineno}: {type(e).__name__}: {e.msg}"
    name = f"_minvert_student_{abs(hash(str(path.resolve())))}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses, pickling & co. look the module up while it runs
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as e:
        return None, f"{path}: running it failed: {describe(e, path)}"
    finally:
        sys.modules.pop(name, None)
    return module, None


def describe(e, path):
    """One line: the exception and the line of the student's file it came from."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]
    where = f" (line {frames[-1].lineno}: {frames[-1].line.strip()})" if frames else ""
    message = str(e).strip().splitlines()
    return f"{type(e).__name__}{': ' + message[0] if message else ''}{where}"


def parse_shapes(specs):
    """["x=2,3,6,5", "w=4,3,3,3"] -> {"x": (2, 3, 6, 5), "w": (4, 3, 3, 3)}."""
    shapes = {}
    for spec in specs or ():
        name, _, dims = spec.partition("=")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not name.isidentifier() or not shape or min(shape) < 1:
            raise MinvertError(f"--shape {spec!r}: write NAME=D1,D2,... with positive sizes, "
                               f"e.g. --shape x=2,3,6,5")
        shapes[name] = shape
    return shapes


def _gradients_of_functions(module, name, shapes, rng):
    forward, backward = getattr(module, f"{name}_forward"), getattr(module, f"{name}_backward")
    arrays = [p.name for p in inspect.signature(forward).parameters.values()
              if p.default is inspect.Parameter.empty
              and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    missing = [a for a in arrays[1:] if a not in shapes]
    if not arrays or missing:
        raise MinvertError(f"{name}_forward takes the arrays ({', '.join(arrays) or 'none'}): give "
                           f"the shape of each with --shape NAME=D1,D2,... (x defaults to "
                           f"{','.join(map(str, DEFAULT_X_SHAPE))}), e.g. --shape x=4,12 w=5,12 b=5")
    values = {a: rng.standard_normal(shapes.get(a, DEFAULT_X_SHAPE)) for a in arrays}

    def run():
        return forward(*values.values())[0]

    def vjp(dout):
        grads = backward(dout, forward(*values.values())[1])
        grads = grads if isinstance(grads, (tuple, list)) else (grads,)
        if len(grads) != len(arrays):
            raise MinvertError(f"{name}_backward returned {len(grads)} value(s); it must return "
                               f"one gradient per array of the forward: ({', '.join(arrays)})")
        return dict(zip(arrays, grads))
    return run, vjp, values


def _gradients_of_class(cls, name, shapes, rng):
    try:
        layer = cls()
    except TypeError as e:
        raise MinvertError(f"{name}() failed ({e}): the class must build without arguments") from None
    if hasattr(layer, "astype"):
        layer.astype(np.float64)
    params = dict(getattr(layer, "params", {}) or {})
    for k, v in params.items():
        if not (isinstance(v, np.ndarray) and v.dtype == np.float64 and v.flags.c_contiguous):
            what = f"is {v.dtype}" if hasattr(v, "dtype") and v.dtype != np.float64 else "is not"
            raise MinvertError(f"{name}.params[{k!r}] {what} a C-contiguous float64 NumPy array: the "
                               f"check needs float64 parameters, perturbed in place by h")
    x = rng.standard_normal(shapes.get("x", DEFAULT_X_SHAPE))

    def vjp(dout):
        dx = layer.backward(dout)
        return {"x": dx, **{k: layer.grads.get(k) for k in params}}
    return (lambda: layer.forward(x)), vjp, {"x": x, **params}


def layer_names(module):
    """The layers a student's module defines, in file order: each class with forward and
    backward methods, and NAME for each pair of functions NAME_forward / NAME_backward
    (what it imports from elsewhere is not its own)."""
    names = []
    for key, value in vars(module).items():
        if getattr(value, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(value) and callable(getattr(value, "forward", None)) \
                and callable(getattr(value, "backward", None)):
            names.append(key)
        elif key.endswith("_forward") and inspect.isfunction(value) \
                and callable(getattr(module, key.removesuffix("_forward") + "_backward", None)):
            names.append(key.removesuffix("_forward"))
    return names


def check_own_layer(spec, shapes=None, seed=0, out=print, h=H_DEFAULT):
    """Gradient-check the layer ``FILE.py:NAME`` (see the module docstring), or every layer
    FILE.py defines when NAME is left out, w.r.t. each of its arrays with
    :func:`minvert.gradcheck_causes.diagnose`, which names the causes outside the backward
    (float32, a non-deterministic forward, a kink within h, h unsuited to the values'
    magnitude) before it blames the backward. Prints a table and a verdict line per layer;
    returns the rows. h: the central-difference step (from 1e-8 to 0.1)."""
    h = check_h(h)
    spec = str(spec)
    file, sep, name = (spec, "", "") if spec.endswith(".py") else spec.rpartition(":")
    name = name.removesuffix("_forward").removesuffix("_backward")
    if not file.endswith(".py") or (sep and not name.isidentifier()) or (not sep and name):
        raise MinvertError(f"{spec!r}: write FILE.py:NAME, e.g. my_relu.py:relu for relu_forward "
                           f"and relu_backward in my_relu.py (or FILE.py for every layer in it)")
    module, error = load(file)
    if error:
        raise MinvertError(error)
    names = [name] if sep else layer_names(module)
    if not names:
        raise MinvertError(f"{file} defines no layer: write a class with forward and backward "
                           f"methods, or functions NAME_forward and NAME_backward")
    say = out or (lambda *a: None)
    rows = []
    for i, one in enumerate(names):
        if i:
            say("")
        try:
            rows += _check_one(module, file, one, dict(shapes or {}), seed, h, say)
        except MinvertError as e:
            if len(names) == 1:
                raise
            # one layer of several that cannot run (shapes missing, a crash): say so, go on
            rows.append(Row(f"{Path(file).name}:{one}", "-", float("nan"), False, str(e), "not checked"))
            say(f"{Path(file).name}:{one}: not checked: {e}")
    return rows


def _check_one(module, file, name, shapes, seed, h, say):
    """The table and verdict of one layer of the student's module; its rows."""
    rng = np.random.default_rng(seed)  # each layer sees the inputs it would see alone
    if inspect.isclass(getattr(module, name, None)):
        run, vjp, arrays = _gradients_of_class(getattr(module, name), name, shapes, rng)
    elif callable(getattr(module, f"{name}_forward", None)) and \
            callable(getattr(module, f"{name}_backward", None)):
        run, vjp, arrays = _gradients_of_functions(module, name, shapes, rng)
    else:
        raise MinvertError(f"{file} defines neither a class {name} nor both {name}_forward and "
                           f"{name}_backward")
    try:
        rows = diagnose(run, vjp, arrays, rng, h)
    except MinvertError:
        raise
    except Exception as e:  # the student's code crashed: say where, in one line
        raise MinvertError(f"{name}: {describe(e, file)}") from None
    label = f"{Path(file).name}:{name}"
    rows = [r._replace(layer=label) for r in rows]
    print_table(rows, say)
    say(verdict(rows))
    return rows
