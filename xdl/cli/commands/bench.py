"""``xdl bench optimizers`` (`bench_optimizers`: the optimizer benchmark, its files written) and ``xdl bench
kernels`` (`bench_kernels`: the fused kernels' speed)."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import xdl
from xdl.cli.output_directory import refuse_write_protected
from xdl.cli.signals import signal_of, signal_status
from xdl.cli.text import note
from xdl.data.validation import counted
from xdl.files import check_directory_name, check_writable_dir
from xdl.lock import BENCH, DirectoryLock, check_not_in_use


def bench_optimizers(config, args) -> int:
    """Run the optimizer benchmark and write its files."""
    from xdl.bench import OPTIMIZERS, PROBLEMS, QUICK, benchmark_steps, check_options, markdown, write
    from xdl.bench.report import RESULT_FILES, crashes

    # (all: every rule of xdl.config.OPTIMIZERS, as --help says — a rule added there is benchmarked too)
    optimizers = args.optimizers or (["sgd", "momentum", "rmsprop", "adam"] if args.quick else list(OPTIMIZERS))
    problems = args.problems or (list(QUICK) if args.quick else list(PROBLEMS))
    seeds = (3 if args.quick else 5) if args.seeds is None else args.seeds  # a 0 given is refused, not replaced
    trials = (8 if args.quick else 16) if args.trials is None else args.trials
    if args.lr is not None and args.trials is not None:  # it would be ignored
        raise ValueError("--trials is the budget of the learning-rate search, which --lr skips; give one of them")
    if args.lr is not None and args.batched:  # (so would this: it batches a search's trials; --no-batched agrees)
        raise ValueError("--batched trains a learning-rate search's trials at once, which --lr skips; give one of them")
    # every option before the directory is made (benchmark checks them again; a user's rule is loaded once)
    check_options(problems, optimizers, seeds, trials, args.seed, args.lr)
    out = check_directory_name(args.out, "--out")
    check_not_in_use(out, "--out", BENCH)  # a benchmark at work there is named before anything else
    replaced = _check_no_interrupted_benchmark(out)
    start = time.perf_counter()
    with xdl.use(args.backend) as backend, contextlib.ExitStack() as held:
        check_writable_dir(out, "--out")  # made only now that the options and the backend are good
        # (a benchmark cannot be resumed: refused once it had run, its measurements were lost)
        refuse_write_protected(out / name for name in (*RESULT_FILES, "profile.png",
                                                       *(f"curves-{problem}.png" for problem in problems)))
        held.enter_context(DirectoryLock(out, "--out", BENCH))  # two would write their results over each other's
        if replaced:
            note(replaced)
        search = f"no lr search (every optimizer at --lr {args.lr:g})" if args.lr is not None else f"{trials} lr trials"
        print(f"xdl {xdl.__version__} bench optimizers: backend {backend.name} on {backend.device_name()}; "
              f"{counted(len(optimizers), 'optimizer')} × {counted(len(problems), 'problem')}, {search}, "
              f"{counted(seeds, 'seed')}")
        steps = benchmark_steps(problems, optimizers, seeds=seeds, trials=trials, seed=args.seed, quick=args.quick,
                                lr=args.lr, batched=args.batched, progress=lambda what: print(f"  {what}", file=sys.stderr))
        results = None
        try:
            for results in steps:
                pass
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: what was measured is written, and said to be partial
            done = [(p, o) for p, per in (results or {}).get("problems", {}).items() for o in per]
            if not done:
                raise
            results["interrupted"] = True
            signal_name, pairs = signal_of(stop), counted(len(done), '(problem, optimizer) pair')
            if replaced:  # a finished benchmark is replaced by a finished one only: Ctrl-C on a second run in
                # the same --out (the default's) wrote its few pairs over it, and marked the directory interrupted
                print(markdown(results))
                print(f"\nxdl bench: interrupted by {signal_name}; the finished benchmark in --out {str(out)!r} is "
                      f"kept, and the {pairs} that finished here {'is' if len(done) == 1 else 'are'} printed above, "
                      "not written (give a new --out to keep a partial one)", file=sys.stderr)
                return signal_status(signal_name)
            files = write(results, out)
            print(f"\nxdl bench: interrupted by {signal_name}; the {pairs} "
                  f"that finished {'is' if len(done) == 1 else 'are'} written ({', '.join(str(f) for f in files)}); "
                  "the rest was not run", file=sys.stderr)
            return signal_status(signal_name)
    try:
        files = write(results, out)
    finally:  # (a failed write, a full disk: the results are printed still — a benchmark has no resume)
        print(markdown(results))
    print(f"\n{time.perf_counter() - start:.1f} s; wrote {', '.join(str(f) for f in files)}")
    if not any(Path(f).suffix == ".png" for f in files):  # as xdl train says of its curves: why (a matplotlib
        from xdl.plots import matplotlib  # installed but failing to import was told to install it)

        try:
            matplotlib()
        except ImportError as e:
            note(f"note: no curves or profile figures: {e}")
    crashed = crashes(results)
    for line in crashed:  # a bug in an optimizer's code, unlike a divergence: the command fails
        print(f"xdl bench: {line}", file=sys.stderr)
    return 1 if crashed else 0


def _check_no_interrupted_benchmark(out: Path) -> str | None:
    """A benchmark replaces the one in ``out``: refused where that one was interrupted (its pairs
    would be lost, and a benchmark has no resume) or where results there are no benchmark's
    (`earlier_results`), a note where it finished (None: none there)."""
    from xdl.bench.report import earlier_results

    earlier = earlier_results(out, "--out")
    if earlier is None:
        return None
    done = sum(len(per) for per in earlier["problems"].values())
    if earlier.get("interrupted"):
        raise FileExistsError(f"--out {str(out)!r} holds an interrupted benchmark ({counted(done, 'pair')} measured; "
                              "a benchmark cannot be resumed): give another --out, or remove it to start afresh there")
    return f"note: --out {str(out)!r} holds a benchmark ({counted(done, 'pair')}); this one replaces its files"


def bench_kernels(config, args) -> int:
    from xdl.bench.kernels import report
    from xdl.files import check_output_file

    if args.json is not None:  # before any work: the report runs for minutes, and writes after its first case
        check_output_file(args.json, "--json")
    with xdl.use(args.backend):
        report(args.quick, args.json, json_flag="--json")
    return 0
