#!/usr/bin/env bash
# gpu_check.sh -- does minvert's CuPy path work on a real CUDA GPU, and how fast is it?
#
#     bash .ci/gpu_check.sh [OUT]        (from anywhere; OUT defaults to ./gpu-check)
#
# Needs a Python with minvert's dependencies and CuPy (pip install -e '.[gpu,test]'; torch
# too for the comparison); nothing is installed or downloaded. Steps, each with its own
# timeout (a failed step is reported and the next one runs):
#   device     nvidia-smi, then CuPy computes: an elementwise kernel, a reduction, a matmul
#   parity     the suite's CuPy tests (pytest -k "cupy or gpu"): they must run, not skip
#   gradcheck  `minvert gradcheck --device gpu` must pass 37 of 37 (float64 on the GPU)
#   demo       `minvert demo --device gpu`
#   bench      `minvert bench nets` and `bench decoder --device gpu`, with --compare torch
#              when torch sees a CUDA device (TF32 is off in bench's comparison runs)
# No step starts once $GPU_CHECK_BUDGET seconds (default 570) have passed. Exit status 0 only
# if every step passed. GPU_CHECK_STANDIN=1 runs the first steps on tests/strict_cupy (the
# test suite's CuPy stand-in, NumPy underneath) to check the script without a GPU; demo and
# bench are then skipped (on NumPy through the stand-in they take many minutes).
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mkdir -p "${1:-$PWD/gpu-check}" && cd "${1:-$PWD/gpu-check}" && pwd)
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-570}
REPEATS=${GPU_CHECK_REPEATS:-3}
GPU_CHECK_STANDIN=${GPU_CHECK_STANDIN:-}
T0=$(date +%s)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "${GPU_CHECK_STANDIN:-}" ]; then
    export PYTHONPATH="$ROOT/tests/strict_cupy:$PYTHONPATH"
fi
cd "$ROOT" || exit 2
NAMES=(); STATUS=(); SECS=()

# step NAME MAX_SECONDS COMMAND...: run with timeout min(MAX, budget left), log in OUT/NAME.log
step() {
    local name=$1 max=$2; shift 2
    local left=$(( BUDGET - ($(date +%s) - T0) ))
    local t=$(( max < left ? max : left ))
    NAMES+=("$name")
    if [ "$t" -lt 10 ]; then
        STATUS+=("SKIPPED (budget)"); SECS+=(0); echo "=== [$name] skipped: budget spent"; return
    fi
    echo "=== [$name] (timeout ${t}s) $*"
    local s; s=$(date +%s)
    # bash -c: the command may be one of the functions below (exported with export -f)
    timeout -k 10 "$t" bash -c '"$@"' "$name" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    SECS+=($(( $(date +%s) - s )))
    if [ $rc -eq 0 ]; then
        STATUS+=("ok"); tail -n "${TAIL:-4}" "$OUT/$name.log" | sed 's/^/    /'
    else
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then STATUS+=("FAIL (timeout)"); else STATUS+=("FAIL (rc $rc)"); fi
        echo "--- [$name] FAILED; last lines of $OUT/$name.log:"
        tail -n 20 "$OUT/$name.log" | sed 's/^/    /'
    fi
}

device() {
    if command -v nvidia-smi > /dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || return 1
    else
        [ -n "${GPU_CHECK_STANDIN:-}" ] || { echo "no nvidia-smi: not a CUDA machine"; return 1; }
    fi
    "$PY" - <<'PY'
import cupy as cp
from minvert.backend import default_device
name = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
a = cp.arange(12, dtype=cp.float32).reshape(3, 4)
assert float(cp.maximum(a - 5, 0).sum()) == 21.0            # elementwise kernel + reduction
assert float((a @ a.T)[2, 2]) == float((a[2] * a[2]).sum())  # cuBLAS
print(f"{name}: cupy {cp.__version__} computes; minvert's default device: {default_device()}")
PY
}

parity() {
    "$PY" -m pytest -p no:cacheprovider -q -rs -k "cupy or gpu" tests/ || return 1
    ! grep -q "SKIPPED" "$OUT/parity.log" || { echo "CuPy tests were skipped: no GPU seen"; return 1; }
}

gradcheck() {
    "$PY" -m minvert gradcheck --device gpu || return 1
    grep -q "^37 of 37 checks pass" "$OUT/gradcheck.log" || { echo "expected 37 of 37"; return 1; }
}

bench() {
    local compare=()
    "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null \
        && compare=(--compare torch) || echo "(torch with CUDA not found: minvert alone)"
    "$PY" -m minvert bench nets --device gpu --repeats "$REPEATS" "${compare[@]}" || return 1
    "$PY" -m minvert bench decoder --device gpu --repeats "$REPEATS" "${compare[@]}"
}

export OUT PY REPEATS GPU_CHECK_STANDIN
export -f device parity gradcheck bench
step device 60 device
step parity "$([ -n "$GPU_CHECK_STANDIN" ] && echo 900 || echo 300)" parity  # stand-in: NumPy, slower
step gradcheck 120 gradcheck
if [ -z "${GPU_CHECK_STANDIN:-}" ]; then
    step demo 180 "$PY" -m minvert demo --device gpu --out "$OUT/demo" --force
    TAIL=30 step bench 300 bench
fi

echo
echo "=== gpu_check summary ($(( $(date +%s) - T0 ))s; logs in $OUT)"
bad=0
for i in "${!NAMES[@]}"; do
    printf '%-10s %-18s %5ss\n' "${NAMES[$i]}" "${STATUS[$i]}" "${SECS[$i]}"
    [ "${STATUS[$i]}" = ok ] || bad=$((bad + 1))
done
[ $bad -eq 0 ] && echo "gpu_check: all ${#NAMES[@]} steps pass" || echo "gpu_check: $bad step(s) FAIL"
exit $bad
