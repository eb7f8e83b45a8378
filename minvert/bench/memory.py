"""Peak memory of one pass, measured the same way for minvert and PyTorch in a fresh Python
process (see :func:`minvert.bench.nets.bench_nets`). Linux only."""
import ctypes
import gc
import json
import os
import subprocess
import sys
import tracemalloc

from .passes import TINY, build_net, make_inputs, minvert_pass
from .timing import sync
from .torch_mirror import compare_module, to_torch, torch_pass


def peak_memory(spec, framework, out=print):
    """{"rss_mb", "traced_mb"} of one configuration run in a fresh Python process, or None."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p))
    code = "import sys; from minvert.bench.memory import memory_child; memory_child(sys.argv[1])"
    spec = dict(spec, framework=framework)
    result = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], env=env,
                            capture_output=True, text=True)
    lines = result.stdout.strip().splitlines()
    if result.returncode or not lines:
        if out is not None:
            err = (result.stderr.strip().splitlines() or ["no output"])[-1]
            out(f"memory of {spec['label']} {spec['pass']} ({framework}) not measured: {err}")
        return None
    return json.loads(lines[-1])


def memory_child(spec_json):
    """In the fresh process (see bench_nets): warm up on a tiny net, build the real one,
    reset the high-water mark, run twice, print the JSON."""
    spec = json.loads(spec_json)
    if spec.get("warm_up", True):
        memory_child(json.dumps(dict(spec, warm_up=False, print=False, **TINY[spec["net"]])))
    net = build_net(spec)
    x, target = make_inputs(spec, net)
    if spec["framework"] == "torch":
        torch = compare_module("torch")
        torch.set_num_threads(spec["threads"])
        model = to_torch(net, torch)
        del net  # only the PyTorch copy of the weights stays
        fn = torch_pass(spec, model, x, target, torch)
    else:
        fn = minvert_pass(spec, net, x, target)
        tracemalloc.start()
    gc.collect()
    try:
        # building left freed-but-resident heap memory that the pass could reuse unseen
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident size (Linux >= 4.0)
        base = _status_kb("VmRSS")
    except OSError:
        print(json.dumps({}))
        return
    fn()
    fn()  # buffers a pass keeps for the next one count too
    result = {"rss_mb": round((_status_kb("VmHWM") - base) / 1024)}
    if tracemalloc.is_tracing():
        result["traced_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    if spec.get("print", True):
        print(json.dumps(result))


def device_peak_mb(fn, xp, torch=None):
    """Device memory one call of ``fn`` needs on the GPU, in MB, on top of what was live
    before: the most CuPy's memory pool held during the call (its cached blocks released
    first), or with ``torch``, the most PyTorch's caching allocator reserved."""
    sync(xp)
    if torch is not None:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_reserved()
        fn()
        torch.cuda.synchronize()
        return round((torch.cuda.max_memory_reserved() - base) / 2**20, 1)
    pool = xp.get_default_memory_pool()
    pool.free_all_blocks()  # from here the pool holds only live arrays, and grows as needed
    base = pool.total_bytes()
    fn()
    sync(xp)
    return round((pool.total_bytes() - base) / 2**20, 1)


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")
