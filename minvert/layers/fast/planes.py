"""Layers that treat every (sample, channel) plane alone (pooling), with the engine's
workers: the readable function itself, run on one range of planes per worker at once.
Each plane is computed by the same code either way, so the values are the same bits.
Without workers (the default) the readable function simply runs on the whole array."""
from ...backend import get_array_module
from . import workers


def forward_by_planes(forward, x, *args):
    """forward(x, *args) -> (out, cache), a readable layer function of x (N, C, H, W) that
    treats each plane alone -> (out, cache); with workers the cache holds one readable
    cache per range of planes, for :func:`backward_by_planes`."""
    xp = get_array_module(x)
    N, C = x.shape[:2]
    if not (workers.active(xp) and x.ndim == 4 and x.flags.c_contiguous and N * C > 1):
        return forward(x, *args)
    planes = x.reshape((1, N * C) + x.shape[2:])  # (1, N*C, H, W): a view
    ranges = workers.ranges(N * C)
    results = [None] * len(ranges)

    def run(i):
        a, b = ranges[i]
        results[i] = forward(planes[:, a:b], *args)
    workers.each(run, range(len(ranges)), xp)
    out = xp.concatenate([out for out, _ in results], axis=1)  # (1, N*C, H_out, W_out)
    return out.reshape((N, C) + out.shape[2:]), {
        "fast": True, "x_shape": x.shape,
        "ranges": [(a, b, cache) for (a, b), (_, cache) in zip(ranges, results)]}


def backward_by_planes(backward, dout, cache):
    """backward(dout, cache) -> dx of a readable layer function, for a cache of
    :func:`forward_by_planes` (one range of planes per worker)."""
    xp, (N, C, H, W) = get_array_module(dout), cache["x_shape"]
    d = dout.reshape((1, N * C) + dout.shape[2:])
    dx = xp.empty((1, N * C, H, W), dtype=dout.dtype)

    def run(item):
        a, b, piece = item
        dx[:, a:b] = backward(d[:, a:b], piece)
    workers.each(run, cache["ranges"], xp)
    return dx.reshape(N, C, H, W)
