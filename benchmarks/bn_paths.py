"""Which batch-norm training forward is faster where: the one-launch kernel (`bn_forward_small`, one
block per 32 features walking every row twice) against stats + normalize (two launches, the rows
spread over the GPU), each forced, on the shapes the rule in `xdl.cuda.ops` decides between
(``SHORT_ROWS``, ``SMALL_ROWS``, one block per SM). Figures for setting that rule.

    PYTHONPATH=$PWD XDL_BACKEND=cupy python benchmarks/bn_paths.py
"""

from __future__ import annotations

import argparse

from xdl.bench.environment import checked_backend
from xdl.bench.timing import faster, time_calls

SHAPES = [(64, 256), (128, 256), (256, 1024), (512, 1024), (1024, 1024), (2048, 1000), (600, 6401), (64, 16384),
          (2048, 4096)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)  # no options: --help says what it does, anything else is refused, before any work
    backend = checked_backend(parser)
    if backend.device_type != "cuda":
        parser.error("it compares CUDA kernels: run it with XDL_BACKEND=cupy on a GPU")
    from xdl.cuda import ops as cuda_ops

    xp, ops, rule = backend.xp, backend.ops, (cuda_ops.SHORT_ROWS, cuda_ops.SMALL_ROWS)
    print(f"# batch-norm forward paths — device {backend.device_name()}, {ops.sm_count} SMs; "
          f"the rule now: one launch up to {rule[0]} rows, or up to {rule[1]} when the features give a block per SM\n")
    print("| rows × features | one launch | stats + normalize | one launch vs two | the rule picks |")
    print("|---|---:|---:|---:|---|")
    try:
        for n, c in SHAPES:
            x = backend.rng.standard_normal((n, c), dtype=xp.float32)
            gamma, beta, mean, var = xp.ones(c, xp.float32), xp.zeros(c, xp.float32), xp.zeros(c, xp.float32), \
                xp.ones(c, xp.float32)
            picks = "one launch" if ops.forward_in_one_launch(n, c) else "two"

            def forced(short, small):
                def run():
                    cuda_ops.SHORT_ROWS, cuda_ops.SMALL_ROWS = short, small
                    ops.batchnorm_train_forward(x, gamma, beta, mean, var, 0.9, 1e-5)
                return run, backend.synchronize

            seconds = time_calls({"one": forced(1 << 40, 1 << 40), "two": forced(0, 0)})
            cuda_ops.SHORT_ROWS, cuda_ops.SMALL_ROWS = rule  # the next shape's `picks` reads the rule
            print(f"| {n} × {c} | {seconds['one'] * 1e6:.1f} µs | {seconds['two'] * 1e6:.1f} µs | "
                  f"{faster(seconds['two'], seconds['one'])} | {picks} |")
    finally:
        cuda_ops.SHORT_ROWS, cuda_ops.SMALL_ROWS = rule


if __name__ == "__main__":
    main()
