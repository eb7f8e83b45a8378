"""The pooling exercises: max-pool's backward (the forward given), then both passes of
average pooling. Four cases per run, from tiling windows to an odd size, gaps (stride >
size) and overlap (size > stride); in max-pool's overlap case one element always wins two
windows, so an answer that drops the second gradient fails on every seed.
"""
import numpy as np

from ..gradcheck import rel_error
from ..layers import avgpool2d_forward, maxpool2d_backward, maxpool2d_forward
from .check import Case, Exercise
from .hints import MATCH, shape_hint
from .layers import LAYERS, distinct, normal, sizes


def pool_route(x, size, stride, dout, how):
    """The gradients of the usual pooling mistakes, by plain loops over the windows."""
    N, C = x.shape[:2]
    dx = np.zeros_like(x)
    for oh in range(dout.shape[2]):
        for ow in range(dout.shape[3]):
            sl = np.s_[:, :, oh * stride:oh * stride + size, ow * stride:ow * stride + size]
            g = dout[:, :, oh, ow][:, :, None]  # (N, C, 1)
            idx = x[sl].reshape(N, C, -1).argmax(axis=2)[:, :, None]  # (N, C, 1)
            if how == "swap":
                idx = (idx % size) * size + idx // size
            hit = np.arange(size * size) == idx  # (N, C, size*size)
            part = {"spread": g / size ** 2 + 0 * hit, "spread_assign": g / size ** 2 + 0 * hit,
                    "all": g + 0 * hit, "mask": hit * 1.0}.get(how, hit * g).reshape(N, C, size, size)
            if how == "assign":
                dx[sl] = np.where(hit.reshape(part.shape), part, dx[sl])
            elif how in ("assign_window", "spread_assign"):
                dx[sl] = part
            else:
                dx[sl] += part
    return dx


OVERLAP = ("windows overlap here (size 3 > stride 2): one element can be in two windows and "
           "must collect both gradients; accumulate with +=, never assign with =, and never "
           "dx[idx] += g with an index array (NumPy applies a repeated index once: use slices, "
           "or np.add.at)")
OUT_SIZE = ("H_out = (H - size) // stride + 1, which is not H // stride when size != stride: "
            "take H_out, W_out from dout.shape instead of recomputing them")
GAPS = ("fails when the stride (3) is larger than the window (2): window (oh, ow) reads rows "
        "oh*stride .. oh*stride+size-1, and the rows in the gaps between windows get no gradient")
BY_SIZE = ("the windows start every stride elements, at oh * stride, not every size elements: "
           "stride and size differ here")


def _double_winner(rng, x, size, stride):
    """Move each (n, c) slice's largest value to an element that two horizontally neighbouring
    windows share: it then wins both, on every seed (a swap keeps the values distinct)."""
    N, C, H, W = x.shape
    H_out, W_out = (H - size) // stride + 1, (W - size) // stride + 1
    for n in range(N):
        for c in range(C):
            oh, ow = int(rng.integers(H_out)), int(rng.integers(W_out - 1))
            y, z = oh * stride + int(rng.integers(size)), (ow + 1) * stride  # in both windows
            top = np.unravel_index(np.argmax(x[n, c]), (H, W))
            x[n, c, y, z], x[n, c][top] = x[n, c][top], x[n, c, y, z]
    return x


def pool_cases(values, overlap_winner=False):
    def cases(rng):
        N, C = sizes(rng, 2, 2, 3)
        h, w = sizes(rng, 2, 2, 4)
        g1, g2 = sizes(rng, 2, 1, 3)
        o1, o2 = sizes(rng, 2, 2, 4)
        x_overlap = values(rng, N, C, 2 * o1, 2 * o2 + 1)
        if overlap_winner:
            x_overlap = _double_winner(rng, x_overlap, 3, 2)
        return [Case(f"2x2 windows, stride 2, {2 * h}x{2 * w} input",
                     {"x": values(rng, N, C, 2 * h, 2 * w)}, {"size": 2, "stride": 2}),
                Case(f"2x2 windows, stride 2, {2 * h + 1}x{2 * w + 1} input",
                     {"x": values(rng, C, N, 2 * h + 1, 2 * w + 1)}, {"size": 2, "stride": 2},
                     "fails when H or W is not a multiple of the stride: the last row/column is "
                     "in no window, gets zero gradient, and dx keeps the full shape of x"),
                Case(f"2x2 windows, stride 3 (gaps), {3 * g1 + 2}x{3 * g2 + 2} input",
                     {"x": values(rng, N, C, 3 * g1 + 2, 3 * g2 + 2)}, {"size": 2, "stride": 3},
                     GAPS),
                Case(f"3x3 windows, stride 2 (overlap), {2 * o1}x{2 * o2 + 1} input",
                     {"x": x_overlap}, {"size": 3, "stride": 2}, OVERLAP)]
    return cases


def pool_variants(a, kw, d, how):
    """The two ways of getting the windows' positions wrong, for routing ``how``: counting
    H // stride windows (right only when size == stride) and stepping by size."""
    x, size, stride = a["x"], kw["size"], kw["stride"]
    (H, W), (H_out, W_out) = x.shape[2:], d.shape[2:]
    out = []
    if (H // stride, W // stride) != (H_out, W_out) and H // stride <= H_out and W // stride <= W_out:
        out.append(("dx", pool_route(x, size, stride, d[:, :, :H // stride, :W // stride], how),
                    OUT_SIZE))
    if size != stride and (H_out - 1) * size + size <= H and (W_out - 1) * size + size <= W:
        out.append(("dx", pool_route(x, size, size, d, how), BY_SIZE))
    return out


def pool_crash_hint(make_x, exact):
    """A backward that raised: blame the H // stride window count only when it is at stake in
    this case and the same backward is right where H // stride is the right count."""
    def hint(forward, backward, case):
        x, size, stride = case.args["x"], case.kwargs["size"], case.kwargs["stride"]
        H, W = x.shape[2:]

        def fits(n):  # the output-size formula and n // stride agree
            return (n - size) // stride + 1 == n // stride
        if fits(H) and fits(W):
            return ""
        H2, W2 = next(n for n in range(H, H + 9) if fits(n)), next(n for n in range(W, W + 9) if fits(n))
        args = {"x": make_x(np.random.default_rng(0), *x.shape[:2], H2, W2)}
        try:
            out, cache = forward(np.copy(args["x"]), size=size, stride=stride)
            d = np.random.default_rng(1).standard_normal(np.shape(out))
            mine = np.asarray(backward(d, cache), dtype=np.float64)
            right = np.shape(mine) == args["x"].shape and \
                rel_error(mine, exact(args, case.kwargs, d)["dx"]) < MATCH
        except Exception:
            return ""
        return OUT_SIZE if right else ""
    return hint


def pool_out_hint(got, case):
    """Why out has the wrong shape: H // stride windows is said only when that is the shape."""
    x, size, stride = case.args["x"], case.kwargs["size"], case.kwargs["stride"]
    (N, C, H, W), s = x.shape, stride
    if got.shape == (N, C, H // s, W // s):
        return OUT_SIZE
    return shape_hint(got.shape, (N, C, (H - size) // s + 1, (W - size) // s + 1),
                      "out is (N, C, H_out, W_out), H_out = (H - size) // stride + 1, W_out "
                      "likewise.")


def maxpool():
    def exact(a, kw, d):
        return {"dx": maxpool2d_backward(d, maxpool2d_forward(a["x"], kw["size"], kw["stride"])[1])}

    def variants(a, kw, d, g):
        def r(how):
            return pool_route(a["x"], kw["size"], kw["stride"], d, how)
        return [("dx", r("spread"), "you spread dout evenly over the window (average pooling's "
                                    "gradient); max pooling sends all of it to the window's max"),
                ("dx", r("all"), "every element of the window received dout; only the window's "
                                 "maximum affected the output, so only it gets a gradient"),
                ("dx", r("assign"), OVERLAP), ("dx", r("assign_window"), OVERLAP),
                ("dx", r("swap"), "the gradient lands on the wrong element of the window: the "
                                  "argmax of a window flattened row by row is i * size + j, so "
                                  "(i, j) = divmod(index, size)"),
                ("dx", r("mask"), "dx is the mask of the maxima alone: multiply it by dout")] + \
            pool_variants(a, kw, d, "max")
    return Exercise("maxpool_forward", "maxpool_backward", (("dx", "x"),),
                    pool_cases(distinct, overlap_winner=True),
                    lambda a, kw: maxpool2d_forward(a["x"], kw["size"], kw["stride"])[0],
                    exact, variants, {}, LAYERS + "2", crash_hint=pool_crash_hint(distinct, exact))


def avgpool():
    def ref(a, kw):
        return avgpool2d_forward(a["x"], kw["size"], kw["stride"])[0]

    def exact(a, kw, d):
        return {"dx": pool_route(a["x"], kw["size"], kw["stride"], d, "spread")}

    def variants(a, kw, d, g):
        def r(how):
            return pool_route(a["x"], kw["size"], kw["stride"], d, how)
        return [("dx", r("all"), "every element of the window received all of dout: the mean "
                                 "divides by size * size, so each gets dout / (size * size)"),
                ("dx", r("spread_assign"), OVERLAP),
                ("dx", r("max"), "you routed dout to the window's maximum "
                 "(max pooling's gradient); the mean spreads it evenly")] + \
            pool_variants(a, kw, d, "spread")

    def forward_variants(a, kw):
        s = kw["size"]
        return [(ref(a, kw) * s * s, "out is the window's sum: divide by size * size"),
                (maxpool2d_forward(a["x"], s, kw["stride"])[0], "out is the window's max; "
                 "average pooling takes the mean")]
    return Exercise("avgpool_forward", "avgpool_backward", (("dx", "x"),), pool_cases(normal),
                    ref, exact, variants, {"out": pool_out_hint}, LAYERS + "3", forward_given=False,
                    forward_variants=forward_variants, crash_hint=pool_crash_hint(normal, exact))
