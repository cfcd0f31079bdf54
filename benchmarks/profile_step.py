"""Where an eager training step's host time goes: for the small steps of the train-step table
(`xdl.bench.steps`), the wall time per step (back to back, device synchronized), the host time per
step (a call returning, from an idle device), and the functions that take the host time (cProfile,
by own time). A step whose host time is its wall time is host-bound: launches and Python decide it.

    PYTHONPATH=$PWD XDL_BACKEND=cupy python benchmarks/profile_step.py          # on a GPU
    PYTHONPATH=$PWD python benchmarks/profile_step.py --quick                   # a small step, on the CPU
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time

import numpy as np

from xdl.bench.environment import checked_backend
from xdl.bench.steps import STEP_SHAPES, xdl_step
from xdl.hostmemory import keep_freed_memory
from xdl.losses import check_penalty

QUICK_SHAPE = (32, 64, 32, 2)  # batch, inputs, width, layers: all framework, next to no arithmetic


def host_and_wall(step, synchronize, steps: int) -> tuple[float, float]:
    """(host, wall) seconds per step, both the median of ``steps`` calls (a call preempted by other
    work on the machine moves neither): the time a call takes to return with the device idle before
    it (so a full launch queue cannot hold the host up), and the time a call takes back to back,
    after as many calls again that fill the launch queue — where a device slower than the host then
    holds each call to its own pace. On the CPU the two are the same time."""
    host = []
    for _ in range(steps):
        synchronize()
        start = time.perf_counter()
        step()
        host.append(time.perf_counter() - start)
    synchronize()
    for _ in range(steps):  # the queue filled (a device slower than the host is behind by now)
        step()
    wall = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        wall.append(time.perf_counter() - start)
    synchronize()
    return statistics.median(host), statistics.median(wall)


def profile(step, synchronize, steps: int, top: int) -> str:
    """The ``top`` functions by own time, cProfile's totals over ``steps`` calls (divide by ``steps`` for one)."""
    profiler = cProfile.Profile()
    synchronize()
    profiler.enable()
    for _ in range(steps):
        step()
    synchronize()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="steps timed and profiled per shape (default 200)")
    parser.add_argument("--top", type=int, default=30, help="functions listed per shape (default 30)")
    parser.add_argument("--quick", action="store_true", help=f"one small step {QUICK_SHAPE} instead of the "
                        "table's two smallest")
    parser.add_argument("--l2", type=float, default=0.0, help="λ of an L2 penalty added to the step's cost, as "
                        "Trainer(l2=) adds it (default 0: none)")
    parser.add_argument("--l1", type=float, default=0.0, help="λ₁ of an L1 penalty added likewise (default 0: none)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.top < 1:
        parser.error(f"--steps and --top must be ≥ 1, got {args.steps} and {args.top}")
    for flag, lambd in (("--l2", args.l2), ("--l1", args.l1)):
        try:  # before any work: refused inside the step's penalty, it was a traceback after the header
            check_penalty(lambd, flag, np.dtype(np.float32))  # (the step's model is float32)
        except ValueError as e:
            parser.error(str(e))
    backend = checked_backend(parser)  # (XDL_BACKEND=cupy without a GPU: one line naming it, not a traceback)
    keep_freed_memory()  # as the xdl command does
    print(f"# eager step host profile — backend {backend.name}, device {backend.device_name()}\n")
    for batch, features, width, layers in [QUICK_SHAPE] if args.quick else STEP_SHAPES[:2]:
        step = xdl_step(backend, batch, features, width, layers, captured=False, l2=args.l2, l1=args.l1)
        for _ in range(10):  # warm-up: kernels compiled, plans and pools filled
            step()
        host, wall = host_and_wall(step, backend.synchronize, args.steps)
        penalties = "".join(f", {name} {value:g}" for name, value in (("l2", args.l2), ("l1", args.l1)) if value)
        print(f"## B={batch}, {features}→{layers}×{width}→10{penalties}: wall {wall * 1e6:.0f} µs per step, "
              f"host {host * 1e6:.0f} µs per step ({host / wall:.0%} of wall)\n")
        print(profile(step, backend.synchronize, args.steps, args.top))


if __name__ == "__main__":
    main()
