#!/usr/bin/env bash
# Every check that needs the GPU, in one call on a lent machine, each step under its own time limit
# (the limits, 3 s of -k grace each and the two lines' 10 s each together ≤ 560 s, inside the call's
# 600: tests/test_gpu_checks.py holds them to it), logs under $OUT (default gpu-logs/), ending with
# issues 12 and 13's acceptance points judged from the run's figures (benchmarks/acceptance.py):
#
#   bash benchmarks/gpu_checks.sh            # tests, then the speed tables for benchmarks/RESULTS.md
#
# A step that fails or runs out of time is reported and the next one still runs; the exit status is
# that of the GPU tests.
set -u
cd "$(dirname "$0")/.."
out=${OUT:-gpu-logs}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...: run it, its output to $out/NAME.log, and say how it ended
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    # -k: xdl holds SIGTERM until its step ends, so a step hung in a CUDA call is killed 3 s after its limit
    timeout -k 3 "$limit" "$@" >"$out/$name.log" 2>&1
    local status=$? late=""
    # 124: stopped by SIGTERM at its limit; 137: killed 3 s after it (-k), which timeout reports as a KILL's
    # status, not 124 (a step killed so was reported as an exit 137 of its own)
    if [ $status -eq 124 ] || { [ $status -eq 137 ] && [ $((SECONDS - start)) -ge "$limit" ]; }; then
        late=" (out of time: ${limit} s)"
    fi
    echo "$name: exit $status after $((SECONDS - start)) s$late" | tee -a "$out/summary.txt"
    return $status
}

# (no nvidia-smi, or no CuPy: the summary says so and the steps still run)
timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/summary.txt" 2>&1
timeout 10 python3 -c "import cupy, sys; print('python', sys.version.split()[0], 'cupy', cupy.__version__)" >>"$out/summary.txt" 2>&1
# -v: a line per test as it ends, so a step stopped by its limit still says how each test went
# (the H200 run of 2026-12-04 took 114 s for 433 tests; there are about 800 now over the stand-in, the ones
# counting its trace skipped on a GPU). Those never run on a device yet come first (tests/conftest.py,
# FIRST_ON_A_DEVICE): a step stopped by its limit has their results.
step gpu-tests 250 python3 -m pytest -m gpu -v -p no:cacheprovider -rfE --durations=10
tests=$?
# the two tables write their JSON after each case: a step stopped by its limit keeps its figures
# (that run: report 28 s, batched 22 s; the report has about 1.7 times its cases now, batched runs each K twice)
step report 110 env XDL_BACKEND=cupy python3 benchmarks/report.py --json "$out/report.json"
step batched 80 env XDL_BACKEND=cupy python3 benchmarks/batched.py --json "$out/batched.json"
step profile 30 env XDL_BACKEND=cupy python3 benchmarks/profile_step.py
step bn-paths 20 env XDL_BACKEND=cupy python3 benchmarks/bn_paths.py
step batched-vs-alone 15 env XDL_BACKEND=cupy python3 benchmarks/batched_vs_alone.py  # where float32 K parts from 1
step acceptance 10 python3 benchmarks/acceptance.py "$out/report.json" "$out/batched.json"  # issues 12, 13: met?
cat "$out/acceptance.log"
exit $tests
