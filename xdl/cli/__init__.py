"""The xdl command: `main`, the entry point of the ``xdl`` console script, ``python -m xdl`` and ``python -m
xdl.cli``, runs the command its arguments name (`parser.build_parser`: each command's ``run``) and says its
errors, interruptions and exit status as a command line's. The modules, one concept each, are ARCHITECTURE.md's
(its layout: xdl/cli/); the names a program or a test reads are here too (`__all__`)."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from xdl.backend import BackendError, environment_backend
from xdl.cli.commands.bench import bench_kernels, bench_optimizers
from xdl.cli.commands.gradcheck import GRADCHECK_EXAMPLES, GRADCHECK_READS, gradcheck
from xdl.cli.commands.lr_find import LR_FIND_ROWS, lr_find_command
from xdl.cli.commands.train import (LARGE_START, LARGE_START_FACTOR, ONE_CLASS, ONE_CLASS_ROSE, ONE_CLASS_SHARE,
                                    SYMMETRIC_START, train)
from xdl.cli.commands.tune import tune
from xdl.cli.options import config_from_args
from xdl.cli.output_directory import (check_out_named_as_directory, check_out_reachable, first_missing,
                                     output_directory_of, remove_empty_tree)
from xdl.cli.parser import NEGATIVE_NUMBER, build_parser
from xdl.cli.refused import GRADCHECK_REFUSES, LR_FIND_REFUSES, REFUSES, refuse_flags
from xdl.cli.signals import Terminated, signal_of, signal_status, terminate_as_interrupt
from xdl.cli.streams import flush_stdout, for_any_text
from xdl.hostmemory import keep_freed_memory

__all__ = ["GRADCHECK_EXAMPLES", "GRADCHECK_READS", "GRADCHECK_REFUSES", "INTERRUPTED_WRITES", "LARGE_START",
           "LARGE_START_FACTOR", "LR_FIND_REFUSES", "LR_FIND_ROWS", "NEGATIVE_NUMBER", "ONE_CLASS", "ONE_CLASS_ROSE",
           "ONE_CLASS_SHARE", "REFUSES", "SYMMETRIC_START", "Terminated", "USER_ERRORS", "bench_kernels",
           "bench_optimizers", "build_parser", "config_from_args", "gradcheck", "lr_find_command", "main", "train",
           "tune"]


# what a command interrupted before or after its training has written, said with the interruption: by default
# (None) its files are whole; xdl lr-find writes nothing but --plot, after its sweep, and xdl gradcheck nothing
INTERRUPTED_WRITES = {
    None: "every file it had written is complete (writes are atomic), what it was doing is not saved",
    "lr-find": "it writes no file but --plot, once the sweep is done (whole: writes are atomic); the sweep is not "
               "saved",
    "gradcheck": "it writes no file; what it was doing is not saved"}
USER_ERRORS = (ValueError, TypeError, OSError, ImportError, FloatingPointError, BackendError, MemoryError)


def main(argv=None) -> int:
    with for_any_text("stdout") as reader_gone, for_any_text("stderr"):
        return _main(argv, reader_gone)  # (a reader gone is read there, after the command's last flush)


def _error_status(command: str) -> int:
    """The exit status of a command's error: 2 for xdl gradcheck, whose 1 is a check that failed (as diff's and
    cmp's), 1 for the others (README, the command line)."""
    return 2 if command == "gradcheck" else 1


def _main(argv, reader_gone) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # --help, --version, a usage error: what they printed goes out now, or quietly nowhere
        flush_stdout()
        raise
    if not hasattr(args, "run"):  # a command without its subcommand (xdl bench) gets that command's help
        (args.command_parser if hasattr(args, "command_parser") else parser).print_help()
        return 2
    keep_freed_memory()  # this process is ours: reuse freed host memory step after step
    made_out, status = None, 1  # the output directory this command makes, if it makes one
    backend_flag = getattr(args, "backend", None) is not None  # (train's is absent unless given; bench's None)
    try:
        with terminate_as_interrupt():
            if getattr(args, "backend", "") is None:  # the bench commands' --backend, not given
                args.backend = environment_backend() or "auto"
            refuse_flags(args)  # (before a --config file is read: they are typed flags, refused whatever it holds)
            config = config_from_args(args, parser) if hasattr(args, "config") else None
            out = output_directory_of(args, config)
            if out is not None and str(out):
                check_out_reachable(Path(out))
                check_out_named_as_directory(Path(out), args.command)
            made_out = first_missing(Path(out)) if out is not None and str(out) else None
            status = args.run(config, args)
            sys.stdout.flush()  # here, where a reader gone is caught (at exit, Python's flush would fail: status 120)
            # a reader gone is an error, the command's (`xdl gradcheck | head -3` said 1, a check that failed, of
            # one that passed)
            return _error_status(args.command) if status == 0 and reader_gone() else status
    except BrokenPipeError:  # `xdl train | head`: the reader has gone, as for any command of a pipe (stdout
        return _error_status(args.command)  # goes to /dev/null below)
    except USER_ERRORS as e:  # (a MemoryError may say nothing: its name then)
        hint = _backend_hint() if isinstance(e, BackendError) and not backend_flag else ""
        print(f"xdl {args.command}: error: {str(e) or type(e).__name__}{hint}", file=sys.stderr)
        return _error_status(args.command)
    except Exception:
        if args.command != "gradcheck":
            raise
        traceback.print_exc()  # a crash, said as Python says it, with gradcheck's status of an error (Python's is 1)
        return 2
    except KeyboardInterrupt as stop:  # before or after training (during it, the Trainer stops cleanly)
        signal_name = signal_of(stop)
        print(f"\nxdl {args.command}: interrupted by {signal_name}; "
              f"{INTERRUPTED_WRITES.get(args.command, INTERRUPTED_WRITES[None])}", file=sys.stderr)
        return signal_status(signal_name)
    finally:
        if made_out is not None and status != 0:  # a failed command leaves no empty directory of its own behind
            remove_empty_tree(Path(made_out))
        flush_stdout()  # (every way out: a reader gone makes no status 120 at exit)


def _backend_hint() -> str:
    """Where an unavailable backend (cupy without CuPy or a GPU) came from when no --backend flag
    named it, and the way out: "backend 'cupy' is unavailable" alone sent a user whose XDL_BACKEND
    (or --config file, or resumed study, written on a GPU machine) said cupy looking for a flag they
    never gave."""
    source = f"XDL_BACKEND={environment_backend()}" if environment_backend() else \
        "the --config file or the resumed study"
    return f" ({source} chose it; --backend auto takes what this machine has)"
