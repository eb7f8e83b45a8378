"""Exercise 9: im2col and col2im are checked on their own before the convolution built on
them: shape, dtype and every value of each, against the definition in the skeleton

    cols[(c, i, j), (n, oh, ow)] = x_pad[n, c, oh*stride + i, ow*stride + j]

and col2im against the adjoint of that copy (each x_pad element collects the sum of the
columns it was copied into), then the adjointness of the pair itself,
<im2col(x), c> = <x, col2im(c)>. A convolution that passes through exercise 8's loops with
both left unwritten therefore fails.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..gradcheck import rel_error
from .studentfile import describe
from .check import check
from .conv_norm import conv_im2col
from .hints import MATCH, shape_hint, wrap, wrong_dtype
from .layers import normal, sizes

EXACT_COPY = 1e-12  # im2col copies and col2im adds a few numbers: float64 is exact to ~1e-16
LAYOUT = ("rows (c, i, j) and columns (n, oh, ow), in that order: the rows must match "
          "w.reshape(F, C*KH*KW), and out = w2d @ cols is then (F, N*H_out*W_out)")


def _windows(x_pad, KH, KW, stride, H_out, W_out):
    """(N, C, H_out, W_out, KH, KW): window (oh, ow) of x_pad, by NumPy's own sliding windows."""
    v = sliding_window_view(x_pad, (KH, KW), axis=(2, 3))
    return v[:, :, ::stride, ::stride][:, :, :H_out, :W_out]


def im2col_ref(x_pad, KH, KW, stride, H_out, W_out, rows="cij", cols="noo"):
    v = _windows(x_pad, KH, KW, stride, H_out, W_out)  # axes n c oh ow i j
    order = {"cij": (1, 4, 5), "ijc": (4, 5, 1)}[rows] + {"noo": (0, 2, 3), "oon": (2, 3, 0)}[cols]
    return v.transpose(order).reshape(-1, v.shape[0] * H_out * W_out)


def col2im_ref(dcols, shape, KH, KW, stride, H_out, W_out):
    """The adjoint of im2col_ref: every element of x_pad sums the entries copied from it."""
    index = np.arange(int(np.prod(shape))).reshape(shape)
    source = im2col_ref(index, KH, KW, stride, H_out, W_out)
    return np.bincount(source.ravel(), weights=dcols.ravel(), minlength=index.size).reshape(shape)


def _cases(rng):
    N, C = sizes(rng, 2, 2, 3)
    KH, KW = (3, 2) if rng.integers(2) else (2, 3)
    out = []
    for stride, (kh, kw) in ((1, (KH, KW)), (2, (KW, KH))):
        H_out, W_out = sizes(rng, 2, 2, 4)
        Hp, Wp = (H_out - 1) * stride + kh + stride - 1, (W_out - 1) * stride + kw  # a row left over
        out.append((f"x_pad ({N}, {C}, {Hp}, {Wp}), {kh}x{kw} kernel, stride {stride}",
                    normal(rng, N, C, Hp, Wp), kh, kw, stride, H_out, W_out))
    return out


def _call(fn, args, path):
    """(result, None) or (None, what went wrong); the arrays in args must come back unchanged."""
    kept = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    try:
        result = fn(*args)
    except NotImplementedError:
        return None, f"not written yet ({fn.__name__} raises NotImplementedError)"
    except Exception as e:
        return None, f"{fn.__name__} raised {describe(e, path)}"
    if any(isinstance(k, np.ndarray) and not np.array_equal(k, a) for k, a in zip(kept, args)):
        return None, f"{fn.__name__} changed its input in place: compute into a new array"
    return result, None


def _compare(name, got, want, label, variants=()):
    """None, or (first line, hint) for a result that is not ``want``."""
    if not isinstance(got, np.ndarray):
        return f"{name} returned a {type(got).__name__}, not an array [{label}]", ""
    dtype = wrong_dtype(name, got)
    if dtype:
        first, _, hint = dtype.partition("\n")
        return f"{first} [{label}]", hint
    if got.shape != want.shape:
        return (f"{name} returned shape {got.shape}, expected {want.shape} [{label}]",
                shape_hint(got.shape, want.shape, LAYOUT if name == "im2col" else
                           "col2im returns an array of x_pad's shape"))
    err = rel_error(got, want)
    if err < EXACT_COPY:
        return None
    hint = next((h for w, h in variants if rel_error(got, w) < MATCH), "")
    return f"{name} rel. error {err:.1e} [{label}]", hint


def _assigned(dcols, shape, KH, KW, stride, H_out, W_out):
    """col2im with = where += is needed: the last patch written wins."""
    d = dcols.reshape(shape[1], KH, KW, shape[0], H_out, W_out)
    dx = np.zeros(shape)
    for i in range(KH):
        for j in range(KW):
            dx[:, :, i:i + stride * H_out:stride, j:j + stride * W_out:stride] = \
                d[:, i, j].transpose(1, 0, 2, 3)
    return dx


def check_pair(module, path, say, rng):
    """im2col, then col2im, then their adjointness, on two cases; True when all pass."""
    say("im2col and col2im")
    fns = [getattr(module, n, None) for n in ("im2col", "col2im")]
    for fn, name in zip(fns, ("im2col", "col2im")):
        if not callable(fn):
            say(f"  FAIL  {name} is not defined: exercise 9 computes the convolution through "
                f"im2col and col2im; write both in this file")
            return False
    for label, x_pad, KH, KW, stride, H_out, W_out in _cases(rng):
        geometry = (KH, KW, stride, H_out, W_out)
        cols, problem = _call(fns[0], (x_pad, *geometry), path)
        want = im2col_ref(x_pad, *geometry)
        problem = (problem, "") if problem else _compare("im2col", cols, want, label, [
            (im2col_ref(x_pad, *geometry, rows=r, cols=c), "right values in another layout: "
             + LAYOUT) for r, c in (("ijc", "noo"), ("cij", "oon"), ("ijc", "oon"))])
        if not problem:
            dcols = rng.standard_normal(want.shape)
            back, problem = _call(fns[1], (dcols, x_pad.shape, *geometry), path)
            problem = (problem, "") if problem else _compare(
                "col2im", back, col2im_ref(dcols, x_pad.shape, *geometry), label,
                [(_assigned(dcols, x_pad.shape, *geometry), "patches overlap here (kernel > "
                  "stride): an element of x_pad copied into several columns collects all of "
                  "them, so add with +=, never assign with =")])
        if not problem:
            left, right = float(np.sum(cols * dcols)), float(np.sum(x_pad * back))
            if abs(left - right) > 1e-12 * (abs(left) + abs(right)):
                problem = (f"<im2col(x), c> = {left:.12g} but <x, col2im(c)> = {right:.12g} "
                           f"[{label}]", "col2im must be im2col's adjoint")
        if problem:
            say(f"  FAIL  {problem[0]}")
            if problem[1]:
                say(wrap(problem[1]))
            return False
    say("  each matches the definition, and <im2col(x), c> = <x, col2im(c)>  PASS")
    return True


class Im2colConv:
    """Exercise 9 as one entry of the problem set: the pair on its own, then the convolution
    (:func:`.conv_norm.conv_im2col`) by the layer rule."""

    def __init__(self):
        self.conv = conv_im2col()

    def present(self, module):
        names = ("im2col", "col2im", self.conv.forward, self.conv.backward)
        return any(callable(getattr(module, n, None)) for n in names)

    def check(self, module, path, say, rng):
        pair = check_pair(module, path, say, rng)
        return check(self.conv, module, path, say, rng) and pair


def im2col_conv():
    return Im2colConv()
