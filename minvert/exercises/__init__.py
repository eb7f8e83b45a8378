"""Check the exercises of tutorials/exercises: ``minvert exercise check FILE``.

:func:`check_file` imports the file, finds the exercise functions it defines and, for each:

1. runs the file's forward on small random **float64** inputs, drawn afresh every run (the
   seed is printed; ``--seed`` repeats a run), always with batch > 1, no two sizes equal,
   strides that do not divide the size and windows that overlap or leave gaps, and compares
   it with minvert's own forward (a given forward must still compute it; a forward you write
   must match it, with a hint for the usual mistakes);
2. calls the backward twice with a random upstream gradient (never ones: tutorial 02 shows a
   wrong batch-norm backward that passes with ones); a backward that changes ``dout``, its
   cache or its input in place, or answers differently the second time, FAILs;
3. checks the dtype of every returned array first (float64 in, float64 out), then compares
   every gradient with central differences of minvert's forward
   (:func:`minvert.gradcheck.numerical_vjp`) by the one rule of :mod:`minvert.gradcheck`:
   ``||yours - numerical|| / (||yours|| + ||numerical||) < 1e-7``, and with minvert's exact
   gradient to 1e-9 (float64 code meets it at ~1e-14, float32 code never: no verdict depends
   on the seed), PASS or FAIL;
4. after a FAIL, compares the gradient with the classic wrong answers (a wrong sign, a
   forgotten mask, a missing transpose, ...), built exactly from minvert's own backward,
   and prints a HINT that names the mistake.

The optimiser step, the L-BFGS objective and the small net have their own checks
(:mod:`.inversion`, :mod:`.objective`, :mod:`.net`), and exercise 9 checks im2col and col2im
on their own before its convolution (:mod:`.im2col`).
"""
import os
from pathlib import Path

import numpy as np

from .studentfile import load
from .check import FORWARD_FAILED, Exercise, check
from .conv_norm import batchnorm, conv
from .im2col import im2col_conv
from .inversion import adadelta, content, style, tv
from .layers import dense, relu, sigmoid_exercise, softmax_ce, upsample
from .net import overfit
from .objective import objective
from .pooling import avgpool, maxpool

# in the order of the problem set: key = the function the student writes last
EXERCISES = {"dense_backward": dense, "relu_backward": relu, "sigmoid_backward": sigmoid_exercise,
             "softmax_ce_backward": softmax_ce, "maxpool_backward": maxpool,
             "avgpool_backward": avgpool, "upsample_backward": upsample,
             "conv_backward": conv, "im2col_conv_backward": im2col_conv,
             "batchnorm_backward": batchnorm, "overfit": overfit,
             "content_backward": content, "style_backward": style, "tv_backward": tv,
             "objective": objective, "adadelta_step": adadelta}


def _present(ex, module):
    if not isinstance(ex, Exercise):
        return ex.present(module)
    names = [ex.backward] + ([] if ex.forward_given else [ex.forward])
    return any(callable(getattr(module, n, None)) for n in names)


def new_seed():
    """A seed for one run: different every time, short enough to type back in."""
    return int.from_bytes(os.urandom(4), "little") % 1_000_000


def _culprit(key, ex, result):
    """The function a summary names: the forward when that is what failed, else the exercise."""
    return ex.forward if isinstance(ex, Exercise) and result is FORWARD_FAILED else key


def check_file(path, out=print, seed=None):
    """Check the exercise functions defined in ``path`` (a .py file, or a folder: every ex*.py
    in it). Prints a report through ``out``; returns True when all pass. ``seed`` draws the
    inputs (None: a fresh one, printed so that the run can be repeated)."""
    say = out or (lambda *a: None)
    path = Path(path)
    seed = new_seed() if seed is None else int(seed)
    if path.is_dir():
        files = sorted(path.glob("ex*.py"))
        if not files:
            say(f"{path}: no ex*.py files to check")
            return False
        ok = [check_file(f, out, seed) for f in files]
        say(f"\n{sum(ok)} of {len(ok)} files pass")
        return all(ok)
    module, error = load(path)
    if error:
        say(error)
        return False
    found = [(key, make()) for key, make in EXERCISES.items()]
    found = [(key, ex) for key, ex in found if _present(ex, module)]
    if not found:
        say(f"{path}: defines none of the exercise functions ({', '.join(EXERCISES)})")
        return False
    say(f"checking {path} (seed {seed}; add --seed {seed} to repeat these inputs)")
    keys = list(EXERCISES)
    ok = []
    for key, ex in found:
        rng = np.random.default_rng([seed, keys.index(key)])
        if isinstance(ex, Exercise):
            ok.append(check(ex, module, path, say, rng))
        else:
            ok.append(ex.check(module, path, say, rng))
    say("result: " + ", ".join(f"{_culprit(key, ex, k)} {'PASS' if k else 'FAIL'}" for (key, ex), k in zip(found, ok)))
    return all(ok)
