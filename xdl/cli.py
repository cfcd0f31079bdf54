"""The xdl command.

    xdl train                      train the default model on digits, write model, history, curves
    xdl train --config run.toml    options from a TOML file (flags given as well override it)
    xdl train --resume xdl-run/checkpoints   continue an interrupted run where it stopped
    xdl gradcheck                  check backprop's gradients of the model the same options build
    xdl lr-find                    the learning-rate range test of the model the same options build
    xdl tune --trials 64           search hyperparameters (the options set the base configuration)
    xdl bench optimizers --quick   compare optimizers, each at its own tuned learning rate

Every option of a training run (xdl.config.TrainConfig) is a flag (--batch-size 32,
--no-batch-norm) and a TOML key (batch_size = 32).
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import dataclasses
import inspect
import io
import json
import os
import re
import shlex
import signal
import stat
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

import xdl
from xdl.backend import BACKEND_CHOICES, BackendError, environment_backend
from xdl.config import RUN_OPTIONS, TrainConfig, first_change, flag_of, unread_options
from xdl.data import Standardizer, split
from xdl.data.validation import check_int, counted
from xdl.diagnose import NEXT_STEPS, STOP_EARLY, diagnose
from xdl.losses import SoftmaxCrossEntropy, l1, l2
from xdl.files import (atomic_write, check_directory_name, check_reachable, check_target, check_writable_dir,
                       read_toml)
from xdl.gradcheck import StepRoundsAway
from xdl.hostmemory import keep_freed_memory
from xdl.init import canonical_name, starts_symmetric
from xdl.lock import BENCH, RUN, DirectoryLock, check_not_in_use, took_over_note
from xdl.saved_fields import damaged
from xdl.serialization import is_xdl_file, read_extra
from xdl.train import BEST_FILE, CHECKPOINT_FILE, Checkpoint, Control, Interrupted
from xdl.train.checkpoint_files import (check_checkpoint_kind, position, read_position, resume_path, unfinished_run,
                                        waited_out_patience)
from xdl.train.control import CONTROL_FILE
from xdl.train.divergence import RATE_ADVICE
from xdl.train.provenance import verify

# The first next step of a high-bias run whose weights started equal (`xdl.init.starts_symmetric`)
SYMMETRIC_START = ("initialize the weights randomly (--init he; xavier for tanh): from --init {init} every unit of "
                   "a layer computes the same and gets the same gradient, so no bigger network or longer run learns "
                   "more")
# The first next step of a high-bias run from --init normal(SCALE) that started far above ln C, a uniform guess's
# cost (the course's "random × 10": tanh on digits from normal(10) ended at 29% train accuracy, told "train a bigger
# network", 100% from xavier): weights too large for their fan-in saturate tanh and sigmoid and blow up the logits
LARGE_START = ("initialize the weights at a scale for their fan-in (--init he; xavier for tanh): from --init {init} "
               "the run started at a cost of {cost:.3g}, {ratio:.3g} × ln C (a uniform guess's): weights that large "
               "saturate tanh and sigmoid and make the logits huge, where a bigger network or a longer run learns "
               "slowly if at all")
LARGE_START_FACTOR = 5  # how far above ln C a run's start cost is `LARGE_START`'s (normal(0.01) starts at ln C)
# The first next step of a high-bias run whose model predicts one class for (nearly) every training example
# (`ONE_CLASS`): it learned nothing — Adam at lr 1 on digits without batch norm, its ReLUs dead after a cost of 15
# in epoch 1, stayed at 10% and was told "train a bigger network", which learns no more at that rate
ONE_CLASS = ("the model predicts class {label} for {share:.1%} of the training examples: it learned nothing a bigger "
             "network or a longer run would add to; a rate too large does this (a train cost in history.json that "
             "rose above ln C = {ln_c:.3g} and stayed near it): try --lr {lower:g}")
ONE_CLASS_SHARE = 0.99
# how far above ln C a train cost rose for `ONE_CLASS` to blame the rate: a model that predicts alike for every
# example costs about ln C, and one whose rate is too small to move it from a small start (--init normal(0.001), lr
# 1e-6) stays there — at or just below ln C — predicting one class too: a smaller rate would learn less still
ONE_CLASS_ROSE = 1.1
GRADCHECK_EXAMPLES = 16
# the options a gradient check reads (the model, its cost, the data, the seed, where it runs); another's
# flag is noted as ignored
GRADCHECK_READS = ("dataset", "hidden", "activation", "init", "batch_norm", "dropout", "l2", "l1", "seed",
                   "backend")
# the options of a training run that a gradient check has no use for (it trains nothing, writes nothing), each
# with why: refused, naming them, not "unrecognized arguments" (a --config file's are ignored, but resume,
# `_refuse_config_resume`; the other options it does not read are noted as ignored: `GRADCHECK_READS`)
GRADCHECK_REFUSES = dict.fromkeys(("epochs", "patience", "plateau_patience", "plateau_factor", "progress", "capture"),
                                  "xdl train's, not gradcheck's (it checks the gradients of the model at its initial "
                                  "weights: no epochs, early stopping, plateau, progress bar or captured step)") | \
    dict.fromkeys(("out", "checkpoint_every", "resume"), "xdl train's, not gradcheck's (it writes nothing: no output "
                                                         "directory, checkpoint or resume)")
# the options of a training run that the range test of `xdl lr-find` has no use for (its steps are --steps batches
# at its own rising rates, it writes nothing but --plot), each with why: refused, naming them, not ignored
LR_FIND_REFUSES = dict.fromkeys(("epochs", "patience", "plateau_patience", "plateau_factor", "schedule", "decay_rate",
                                 "decay_base", "decay_every", "decay_factor", "base_error", "progress"),
                                "xdl train's, not lr-find's (it trains --steps batches at rising rates, with no "
                                "epochs, schedule, dev set or progress bar): add to the xdl train it suggests") | \
    dict.fromkeys(("out", "checkpoint_every", "resume"), "xdl train's, not lr-find's (it writes nothing but --plot: "
                                                         "no output directory, checkpoint or resume)") | {
    "lr": "the rate the range test sweeps, from --min-lr to --max-lr"}
# each command's table of the run's flags it refuses → why (hidden from its help, taken by `_Refused`, and refused
# together before any work by `_refuse_flags`)
REFUSES = {"gradcheck": GRADCHECK_REFUSES, "lr-find": LR_FIND_REFUSES}
# what a command interrupted before or after its training has written, said with the interruption: by default
# (None) its files are whole; xdl lr-find writes nothing but --plot, after its sweep, and xdl gradcheck nothing
INTERRUPTED_WRITES = {
    None: "every file it had written is complete (writes are atomic), what it was doing is not saved",
    "lr-find": "it writes no file but --plot, once the sweep is done (whole: writes are atomic); the sweep is not "
               "saved",
    "gradcheck": "it writes no file; what it was doing is not saved"}
USER_ERRORS = (ValueError, TypeError, OSError, ImportError, FloatingPointError, BackendError, MemoryError)


def main(argv=None) -> int:
    with _for_any_text("stdout") as reader_gone, _for_any_text("stderr"):
        status = _main(argv)
    return 1 if status == 0 and reader_gone() else status  # (as a buffered stdout's last flush said it)


@contextlib.contextmanager
def _for_any_text(name: str):
    """``sys.stdout`` or ``sys.stderr`` (``name``) that takes whatever the command prints, for as long
    as it runs: closed (``>&-``) it is /dev/null (None failed a finished run's last flush, a traceback
    and status 1); a character its encoding lacks (→ and λ in an ASCII or Latin-1 locale, or under
    PYTHONIOENCODING=ascii; a file name's undecodable bytes, which Python keeps as surrogates) is
    written as stderr writes it — escaped (``\\u2192``), or on UTF-8 the name's own bytes — instead
    of failing the run before its training, or after it, its report unsaid; and a pipe (or a socket,
    what Node's spawn gives) whose reader has gone (``| head -3``, ``2>&1 | head -3``) takes the rest
    unread, as a buffered stdout did (unbuffered, PYTHONUNBUFFERED=1, the next line stopped the run,
    silently, status 1). Yields whether that reader went. What the stream was is put back (a program
    may call main). A stream that is not Python's own file (pytest's, a notebook kernel's, whose
    ``fileno`` is the process's original descriptor, not the cell) is left as it is."""
    stream = getattr(sys, name)
    if stream is None:
        with open(os.devnull, "w") as devnull:
            setattr(sys, name, devnull)
            try:
                yield lambda: False
            finally:
                setattr(sys, name, None)
        return
    if not isinstance(stream, io.TextIOWrapper):  # (rewrapped, its fileno's text would bypass it: ipykernel's
        yield lambda: False                         # went to the kernel's log, not the cell — or failed, no
        return                                      # line_buffering)
    try:
        utf8 = codecs.lookup(stream.encoding).name == "utf-8"
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, TypeError, LookupError, ValueError, OSError):  # (a wrapper over no file descriptor)
        yield lambda: False
        return
    pipe = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)  # (a socket's reader gone fails a write as a pipe's does)
    errors = stream.errors if stream.errors not in ("strict", "surrogateescape") else \
        "surrogateescape" if utf8 else "backslashreplace"
    if not pipe and errors == stream.errors:
        yield lambda: False
        return
    with contextlib.suppress(BrokenPipeError):
        stream.flush()
    raw = (_ReaderMayGo if pipe else io.FileIO)(stream.fileno(), "w", closefd=False)
    buffered = isinstance(getattr(stream, "buffer", None), io.BufferedIOBase)  # (-u, PYTHONUNBUFFERED: not)
    setattr(sys, name, io.TextIOWrapper(io.BufferedWriter(raw) if buffered else raw, encoding=stream.encoding,
                                        errors=errors, line_buffering=stream.line_buffering,
                                        write_through=stream.write_through))
    try:
        yield lambda: getattr(raw, "gone", False)
    finally:
        with contextlib.suppress(OSError):
            getattr(sys, name).flush()
        setattr(sys, name, stream)


class _ReaderMayGo(io.FileIO):
    """A pipe (or socket) to stdout's or stderr's reader, which may go before the command ends
    (``| head``): what is written after is dropped, as /dev/null drops it, not an error in the middle
    of a run."""

    gone = False

    def write(self, data) -> int:
        if not self.gone:
            try:
                return super().write(data)
            except (BrokenPipeError, ConnectionResetError):  # (a socket's reader gone with data unread: a reset)
                self.gone = True
        return memoryview(data).nbytes


def _main(argv) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # --help, --version, a usage error: what they printed goes out now, or quietly nowhere
        _flush_stdout()
        raise
    if not hasattr(args, "run"):  # a command without its subcommand (xdl bench) gets that command's help
        (args.command_parser if hasattr(args, "command_parser") else parser).print_help()
        return 2
    keep_freed_memory()  # this process is ours: reuse freed host memory step after step
    made_out, status = None, 1  # the output directory this command makes, if it makes one
    backend_flag = getattr(args, "backend", None) is not None  # (train's is absent unless given; bench's None)
    try:
        with _terminate_as_interrupt():
            if getattr(args, "backend", "") is None:  # the bench commands' --backend, not given
                args.backend = environment_backend() or "auto"
            _refuse_flags(args)  # (before a --config file is read: they are typed flags, refused whatever it holds)
            config = config_from_args(args) if hasattr(args, "config") else None
            out = _output_directory(args, config)
            if out is not None and str(out):
                _check_reachable(Path(out))
            made_out = _first_missing(Path(out)) if out is not None and str(out) else None
            status = args.run(config, args)
            sys.stdout.flush()  # here, where a reader gone is caught (at exit, Python's flush would fail: status 120)
            return status
    except BrokenPipeError:  # `xdl train | head`: the reader has gone, as for any command of a pipe (stdout
        return 1               # goes to /dev/null below)
    except USER_ERRORS as e:  # (a MemoryError may say nothing: its name then)
        hint = _backend_hint() if isinstance(e, BackendError) and not backend_flag else ""
        print(f"xdl {args.command}: error: {str(e) or type(e).__name__}{hint}", file=sys.stderr)
        return 2 if args.command == "gradcheck" else 1  # (its 1 is a check that failed, as diff's and cmp's)
    except Exception:
        if args.command != "gradcheck":
            raise
        traceback.print_exc()  # a crash, said as Python says it, with gradcheck's status of an error (Python's is 1)
        return 2
    except KeyboardInterrupt as stop:  # before or after training (during it, the Trainer stops cleanly)
        signal_name = _signal_of(stop)
        print(f"\nxdl {args.command}: interrupted by {signal_name}; "
              f"{INTERRUPTED_WRITES.get(args.command, INTERRUPTED_WRITES[None])}", file=sys.stderr)
        return _signal_status(signal_name)
    finally:
        if made_out is not None and status != 0:  # a failed command leaves no empty directory of its own behind
            _remove_empty_tree(Path(made_out))
        _flush_stdout()  # (every way out: a reader gone makes no status 120 at exit)


class _Once(argparse.Action):
    """An option given at most once (argparse keeps the last: a first ``--config`` was silently unread)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"{option_string} given twice ({getattr(namespace, self.dest)!r} and {values!r}): give one")
        setattr(namespace, self.dest, values)


def _backend_hint() -> str:
    """Where an unavailable backend (cupy without CuPy or a GPU) came from when no --backend flag
    named it, and the way out: "backend 'cupy' is unavailable" alone sent a user whose XDL_BACKEND
    (or --config file, or resumed study, written on a GPU machine) said cupy looking for a flag they
    never gave."""
    source = f"XDL_BACKEND={environment_backend()}" if environment_backend() else \
        "the --config file or the resumed study"
    return f" ({source} chose it; --backend auto takes what this machine has)"


def _flush_stdout() -> None:
    """Flush stdout; where its reader has gone, point it at /dev/null so that Python's flush at exit
    does not fail (an "Exception ignored" and status 120 after the command's own)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, sys.stdout.fileno())
            finally:  # (dup2 made its copy: one descriptor kept per call of main from a program otherwise)
                os.close(null)


def _output_directory(args, config):
    """Where the command writes: a search's study (``xdl tune --out``), a run's output directory
    (its options', from a flag or a config file), or a benchmark's ``--out``; None: nowhere."""
    if hasattr(args, "tune_out"):
        return args.tune_out
    if config is not None and args.command == "train":
        return config.out
    return getattr(args, "out", None)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, as Ctrl-C's KeyboardInterrupt: the same clean stop."""

    signal_name = "SIGTERM"


@contextlib.contextmanager
def _terminate_as_interrupt():
    """While the command runs, SIGTERM stops it as Ctrl-C does (a Trainer's `SignalFlag` takes both
    over while it trains); the handler before is put back after."""
    def terminate(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_reachable(out: Path) -> None:
    """Refuse an output directory, or its checkpoints/ within, whose name cannot be looked up
    (`check_reachable`), naming --out — before the first look at a file in it ("Permission denied:
    'out/checkpoints/checkpoint.npz'", a file the user never named)."""
    for path in (out, out / "checkpoints"):
        check_reachable(path, "--out", out)


def _first_missing(path: Path) -> Path | None:
    """The outermost directory of ``path`` that does not exist yet (``--out a/b/c`` with none of them
    there: ``a``), which the command would make; None when ``path`` exists."""
    missing = None
    while not path.exists() and path != path.parent:
        missing, path = path, path.parent
    return missing


def _remove_empty_tree(directory: Path) -> None:
    """Remove ``directory`` and the directories in it if none holds a file (bottom up: a directory
    that is not empty stays, and so does everything above it)."""
    for path, _, _ in os.walk(directory, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(path)


# a negative number as a value, not an option: argparse's own pattern, ^-\d+$|^-\d*\.\d+$, misses an exponent and
# inf, so `--lr -1e-3` was "argument --lr: expected one argument" instead of the check of the value typed
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, its errors one line as the command's own (its usage block is ``--help``'s),
    a negative number in any float spelling taken as a value (`NEGATIVE_NUMBER`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:  # named by the command they were given to, not by xdl
            getattr(parsed, "command_parser", self).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """An option's default in its help, unless it has none or its help says it already."""

    def _get_help_string(self, action):
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="xdl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"xdl {xdl.__version__}")
    commands = parser.add_subparsers(title="commands", dest="command")
    for name, run, text in (("train", train, "train a model and report train/dev/test accuracy and a diagnosis"),
                            ("gradcheck", gradcheck, "check the model's backprop gradients numerically"),
                            ("tune", tune, "search hyperparameters: random, grid, coarse to fine or TPE (Optuna's); "
                                           "one trial at a time, batched, or over Dask workers; the options "
                                           "below set the base configuration"),
                            ("lr-find", lr_find_command, "the learning-rate range test (Lightning's lr_find, "
                                                         "fastai's): train --steps batches of the training split "
                                                         "at a rate rising from --min-lr to --max-lr, print the "
                                                         "smoothed loss and the rate to train with; the model, "
                                                         "data and optimizer options are xdl train's; writes "
                                                         "nothing but --plot")):
        sub = commands.add_parser(name, help=text, description=text, formatter_class=_Help)
        sub.add_argument("--config", metavar="FILE.toml", action=_Once,
                         help="read options from a TOML file (flags override it)")
        if name == "tune":
            _add_tune_options(sub)
        if name == "lr-find":
            _add_lr_find_options(sub)
        if name == "gradcheck":  # (all of the default model's 51,210 take minutes on a laptop's CPU)
            sub.add_argument("--elements", type=int, metavar="N",
                             help="check N elements of each parameter, drawn at random (default: every element)")
        # (a search writes no checkpoints, and its --out and --resume are the study's; a gradient check and a
        # range test take a run's options they have no use for as hidden flags that refuse them: `REFUSES`)
        _add_options(sub, skip={"tune": ("resume", "out", "checkpoint_every"), **REFUSES}.get(name, ()),
                     also={"tune": {"seed": "; and the strategy's draws of the trials' points"}}.get(name, {}))
        if name in REFUSES:
            _add_refused_options(sub, REFUSES[name])
        sub.set_defaults(run=run, command_parser=sub)
    bench = commands.add_parser("bench", help="benchmark optimizers on fixed problems, or the fused kernels",
                                description="benchmark optimizers on fixed problems (optimizers), or the fused "
                                            "kernels' speed (kernels)")
    bench.set_defaults(command_parser=bench)
    kinds = bench.add_subparsers(title="benchmarks", dest="benchmark")
    sub = kinds.add_parser("optimizers",  # each help says its default: some depend on --quick
                           help="tune each optimizer's learning rate with the same budget, train N seeds, "
                                "write a table, the runs' JSON, curves and a performance profile",
                           description="tune each optimizer's learning rate with the same budget (log-uniform "
                                       "random search), train the best with N seeds, and write results.md, "
                                       "results.json, curves-<problem>.png and profile.png")
    _add_bench_options(sub)
    sub.set_defaults(run=bench_optimizers, command_parser=sub)
    sub = kinds.add_parser("kernels", help="the fused ops' speed: time, GB/s, %% of copy bandwidth, ratios to "
                                           "naive xp and PyTorch (benchmarks/report.py)",
                           description="the fused ops' speed on the current backend")
    sub.add_argument("--quick", action="store_true",
                     help="skip the 100M-parameter case, the 65536×1024 cases and the B=4096 train step")
    sub.add_argument("--json", metavar="FILE", help="also write the rows to this JSON file")
    sub.add_argument("--backend", choices=BACKEND_CHOICES, help="array backend (default: XDL_BACKEND, else auto)")
    sub.set_defaults(run=bench_kernels, command_parser=sub)
    return parser


def _add_bench_options(parser: argparse.ArgumentParser) -> None:
    from xdl.bench import OPTIMIZERS, PROBLEMS, QUICK

    parser.add_argument("--quick", action="store_true",
                        help=f"sgd, momentum, rmsprop, adam on {', '.join(QUICK)}; 3 seeds, 8 trials, short budgets")
    parser.add_argument("--optimizer", dest="optimizers", nargs="+", metavar="NAME",
                        help=f"optimizers: {', '.join(OPTIMIZERS)}, or your own as module:Name or file.py:Name "
                             "(default: all; quick: sgd momentum rmsprop adam)")
    parser.add_argument("--problem", dest="problems", nargs="+", metavar="NAME",
                        help=f"problems: {', '.join(PROBLEMS)} (default: all; quick: {' '.join(QUICK)})")
    parser.add_argument("--seeds", type=int, help="training runs of the tuned rate (default 5; quick 3)")
    parser.add_argument("--trials", type=int, help="learning rates tried per optimizer (default 16; quick 8)")
    parser.add_argument("--lr", type=float, help="no search: train every optimizer at this rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the search and the runs (default 0)")
    parser.add_argument("--batched", action=argparse.BooleanOptionalAction, default=None,
                        help="train each lr search's trials at once (fit_many) where possible (default: on a GPU)")
    parser.add_argument("--backend", choices=BACKEND_CHOICES, help="array backend (default: XDL_BACKEND, else auto)")
    parser.add_argument("--out", default="xdl-bench", help="output directory (default xdl-bench)")


class _Refused(argparse.Action):
    """A training run's flag given to a command that refuses it (`REFUSES`): kept (``refused``) to be refused
    with the others before any work, each named with why (`_refuse_flags`), not "unrecognized" or ignored."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.refused = [*getattr(namespace, "refused", []), (option_string, self.dest)]


def _add_refused_options(parser: argparse.ArgumentParser, refuses: dict) -> None:
    """A hidden flag for each option of ``refuses`` (`REFUSES`'s table of the command), taking any values
    (`_Refused`): ``--out x`` is then refused saying why, not met with argparse's "unrecognized arguments"."""
    parser.set_defaults(refused=[])
    types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    for name in refuses:
        boolean = types[name] == "bool"  # (--progress and --no-progress, as `_add_options` makes them)
        flags = (flag_of(name), "--no-" + flag_of(name)[2:]) if boolean else (flag_of(name),)
        parser.add_argument(*flags, dest=name, action=_Refused, nargs=0 if boolean else "*", default=argparse.SUPPRESS,
                            help=argparse.SUPPRESS)


def _refuse_flags(args) -> None:
    """Refuse the run's flags given to a command that refuses them (`REFUSES`), all of them at once in a
    ValueError, grouped by why: "--epochs, --no-progress are xdl train's, not lr-find's (…)"."""
    why = {}
    for flag, name in getattr(args, "refused", ()):
        why.setdefault(REFUSES[args.command][name], []).append(flag)
    if why:
        raise ValueError("; ".join(f"{', '.join(flags)} {'is' if len(flags) == 1 else 'are'} {reason}"
                                   for reason, flags in why.items()))


def _refuse_config_resume(config: TrainConfig, command: str, does: str) -> None:
    """A --config file's ``resume`` given to ``command``, which ``does`` something with a freshly initialized model
    of the options (checks it, tests it): refused, as its --resume flag is (`REFUSES`); it would be ignored."""
    if config.resume:
        raise ValueError(f"--config: resume = {config.resume!r} continues an xdl train run; xdl {command} "
                         f"{does} a freshly initialized model of these options, not a checkpoint's")


def _add_lr_find_options(parser: argparse.ArgumentParser) -> None:
    """The range test's own flags, their defaults `lr_find`'s (its refused ones: `_add_refused_options`)."""
    from xdl.train.lr_find import MODES, lr_find

    default = {name: p.default for name, p in inspect.signature(lr_find).parameters.items()}
    group = parser.add_argument_group("range test")
    group.add_argument("--min-lr", type=float, default=default["min_lr"], help="the rate of the first step")
    group.add_argument("--max-lr", type=float, default=default["max_lr"], help="the rate of the last step")
    group.add_argument("--steps", type=int, default=default["steps"],
                       help="batches trained, one per rate (≥ 2; past an epoch, the next epoch's batches)")
    group.add_argument("--mode", choices=MODES, default=default["mode"],
                       help="how the rate rises: evenly on a log scale, or on a linear one")
    group.add_argument("--stop-factor", type=float, default=default["stop_factor"],
                       help="stop once the smoothed loss is above this × its lowest (> 1; inf: only where it is "
                            "not finite)")
    group.add_argument("--plot", metavar="FILE.png", help="save the plot of the loss against the rate (the plot "
                                                          "extra; the suffix names the format)")


def _add_tune_options(parser: argparse.ArgumentParser) -> None:
    from xdl.tune import EXECUTIONS, STRATEGIES

    group = parser.add_argument_group("search")
    # the options a study keeps are unset unless given: --resume takes the saved study's (Keras Tuner's
    # reload), so a resumed search needs only --out; one given that differs from the study's is refused
    saved = argparse.SUPPRESS
    group.add_argument("--space", metavar="FILE.toml",
                       help="the search space (default: lr, beta1, l2, dropout, hidden; on --resume, the study's)")
    group.add_argument("--trials", type=int, default=saved, help="number of trials (default: 32)")
    group.add_argument("--strategy", choices=STRATEGIES, default=saved,
                       help="how points are chosen (tpe: Optuna's, with the tune extra; default: random)")
    group.add_argument("--rounds", type=int,
                       help="coarse_to_fine and tpe: number of rounds (batches of points); unset: 2, or --trials if "
                            "fewer")
    group.add_argument("--execution", choices=EXECUTIONS, default="batched",
                       help="one trial at a time, the trials that share shapes trained together, or such "
                            "batches spread over Dask workers (tune extra); not kept by the study: a resumed "
                            "search may run another way")
    group.add_argument("--halving", metavar="ETA", type=int,
                       help="stop poor trials early: keep the top 1/ETA at epochs min-epochs·ETA^r (ASHA)")
    group.add_argument("--min-epochs", type=int, default=saved,
                       help="with --halving: the first rung, in epochs (below --epochs; default: 1)")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="execution dask: the scheduler of a running cluster (default: a local one)")
    group.add_argument("--out", dest="tune_out", metavar="DIR", default="xdl-tune",
                       help="directory of trials.json, trials.png and best.toml")
    group.add_argument("--resume", dest="tune_resume", action="store_true",
                       help="continue the search in --out, skipping finished trials; the options not given are "
                            "the study's (its space, trials, strategy, rounds, halving and base configuration)")
    group.add_argument("--top", type=int, default=10, help="rows of the printed table (≥ 1)")


def _precision_note(backend) -> str:
    if backend.precision != "tf32":
        return ""
    if backend.device_type == "cuda":
        return "; TF32 matrix products"
    return "; tf32 has no effect on the CPU (exact float32)"


def _add_options(parser: argparse.ArgumentParser, skip=(), also=None) -> None:
    """A flag for each `TrainConfig` option but those in ``skip``; ``also``: option → words added to
    its help (what it does in this command besides)."""
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        flag, default = flag_of(f.name), getattr(defaults, f.name)
        kwargs = {"help": f.metadata.get("help", "") + (also or {}).get(f.name, ""), "dest": f.name}
        if f.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                **kwargs | {"help": f"{kwargs['help']} (default: {default})"})
            continue
        if f.type == "list[int]":
            kwargs.update(nargs="+", type=int, metavar="N")
        else:
            kwargs.update(type={"int": int, "float": float, "str": str}[f.type], choices=f.metadata.get("choices"))
        shown = default if default != "" else "none"  # (an empty --resume: none, not a blank)
        parser.add_argument(flag, default=argparse.SUPPRESS,
                            **kwargs | {"help": f"{kwargs['help']} (default: {shown})"})


def _check_flags_read(config: TrainConfig, args, searched=(), fixed=None, readers=("optimizer", "schedule")) -> None:
    """A flag of an optimizer or a schedule that ``config``'s do not read (``--beta2`` with sgd) is
    refused: it would be ignored — unless the search space searches the optimizer or the schedule.
    ``fixed``: the space's fixed values, which every trial takes in place of the flags' (a space's
    ``optimizer = "sgd"`` leaves ``--beta2`` unread as ``--optimizer sgd`` does). So is ``--plateau-factor``
    where no plateau_patience > 0 reads it. ``readers``: the options the refusal names as what reads such
    flags — the command's (xdl lr-find refuses --schedule and its flags: its optimizer's alone are read)."""
    plateau = "plateau_patience" in searched or (fixed or {}).get("plateau_patience", config.plateau_patience)
    if hasattr(args, "plateau_factor") and not plateau:  # (a --config file's is no flag typed: best.toml holds all)
        raise ValueError("--plateau-factor is read with --plateau-patience N (N ≥ 1) alone, and this run's "
                         "plateau_patience is 0 (off): it would be ignored; leave it out")
    if {"optimizer", "schedule"} & set(searched):
        return
    set_by_space = {k: v for k, v in (fixed or {}).items() if k in ("optimizer", "schedule")}
    config = dataclasses.replace(config, **set_by_space)
    unread = unread_options(config, [f.name for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)])
    if unread:  # a flag typed for nothing (a config file may hold every option: best.toml does)
        # each named where it was set: the space, a flag, the --config file (not a flag never typed), else
        # its default or the resumed run's, as its flag
        in_file = getattr(args, "config_keys", ())
        by = {k: f"--space's {k} = {getattr(config, k)!r}" if k in set_by_space else
              f"{k} = {getattr(config, k)!r} in {str(args.config)!r}" if k in in_file and not hasattr(args, k) else
              f"--{k} {getattr(config, k)}" for k in ("optimizer", "schedule")}
        raise ValueError(f"{flag_of(unread[0])} is not read by {' or '.join(by[name] for name in readers)}: it would "
                         "be ignored; leave it out")


def config_from_args(args) -> TrainConfig:
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    if flags.get("resume") == "":  # as --config '': a typo'd variable, not a wish to start afresh
        raise ValueError("--resume: expected a checkpoint directory, got ''")
    if "backend" not in flags and environment_backend():  # as pip's: a flag, the environment, a config file
        flags["backend"] = environment_backend()
    in_file = read_toml(args.config, "--config") if args.config is not None else {}
    args.config_keys = {key.replace("-", "_") for key in in_file}  # (an option's source, for the errors that name it)
    resume = flags.get("resume", in_file.get("resume"))
    resume_name = "--resume" if "resume" in flags else f"resume in {str(args.config)!r}"  # (the file's key, named)
    if isinstance(resume, str):  # (a name over 255 bytes: a bare "[Errno 36] File name too long")
        check_reachable(resume, "--resume" if "resume" in flags else f"config file {str(args.config)!r}: resume")
    if resume and isinstance(resume, str) and "out" not in flags and "out" not in in_file \
            and (run := _run_directory(resume)) is not None:
        flags["out"] = str(run)  # a resumed run goes on where it was (Keras's BackupAndRestore)
    # a resumed run's or study's own options, under the file and the flags: a resume needs no option again
    saved = _resumed_study(args)[0].get("base", {}) or \
        (_resumed_run(resume, resume_name) if args.command == "train" else {})
    source = "command line" if args.config is None else f"config file {str(args.config)!r}"
    try:
        if args.config is not None:  # --config '' is an error (no such file), not no file
            return TrainConfig.from_toml(args.config, overrides=flags, defaults=saved, data=in_file)
        return TrainConfig.from_dict({**saved, **flags}, source=source)
    except (TypeError, ValueError) as e:  # "command line: beta1 must be …" names the flag: "--beta1 must be …",
        named = re.match(rf"^{re.escape(source)}: (\w+)", str(e))  # as does an option given as a flag beside a file
        if named is None:
            raise
        word, rest = named.group(1), str(e)[named.end():]
        if word in flags or (args.config is None and word in {f.name for f in dataclasses.fields(TrainConfig)}):
            raise type(e)(flag_of(word) + rest) from None  # (no message starts with an option's name otherwise)
        if args.config is None:  # "command line: unknown key …": the words alone
            raise type(e)(word + rest) from None
        raise


def _run_directory(resume) -> Path | None:
    """The directory of the run whose checkpoints ``resume`` names (OUT of OUT/checkpoints), where
    a resume with no --out writes; None where the checkpoint lies elsewhere (a best.npz copied apart)."""
    checkpoints = resume_path(resume).parent
    if checkpoints.name != "checkpoints":  # (--resume . from inside it names it too: resolved)
        checkpoints = checkpoints.resolve()
    return checkpoints.parent if checkpoints.name == "checkpoints" else None


def _resumed_run(resume, name: str = "--resume") -> dict:
    """``xdl train --resume``: the options of the run whose checkpoint ``resume`` names — its base
    error, checkpoint interval and capture too — but for this command's place and machine (where it
    writes, what it resumes, the backend, a progress bar on this terminal): the resumed run's unless
    given again (Keras Tuner's reload); {} where there is none to read (the resume's check says why).
    ``name``: where ``resume`` was given (the flag, or a --config file's key), for a damaged run's error."""
    if not isinstance(resume, str) or not resume:
        return {}
    try:
        extra, _ = read_extra(resume_path(resume))
        saved = (extra.get("run_info") or {}).get("config")
    except (OSError, ValueError, AttributeError, TypeError):
        return {}
    if not isinstance(saved, dict):
        return {}
    options = {f.name for f in dataclasses.fields(TrainConfig)} - {"out", "resume", "backend", "progress"}
    kept = {key: value for key, value in saved.items() if key in options}
    try:  # checked on their own, as a study's base options are: one damaged there was blamed on a flag never typed
        TrainConfig.from_dict(kept, source="its run's options (run_info)")  # ("--l2 must be a number")
    except (TypeError, ValueError) as e:
        raise damaged(resume_path(resume), str(e), name) from None
    return kept


def _resumed_study(args) -> tuple[dict, list]:
    """``xdl tune --resume``: the meta (its base options checked) and the trials of the study in
    ``--out``; otherwise ({}, [])."""
    if not getattr(args, "tune_resume", False):
        return {}, []
    from xdl.tune.study import saved_study

    directory = check_directory_name(args.tune_out, "--out")
    check_not_in_use(directory, "--out")  # a running search's study: say so, not what its file holds now
    meta, trials = saved_study(directory, "--resume")
    if not (isinstance(meta.get("base"), dict) and isinstance(meta.get("space"), dict)):
        raise ValueError(f"--resume: the study in {str(directory)!r} keeps no base options or space (was it written "
                         "by xdl tune?)")
    TrainConfig.from_dict(meta["base"], source=f"--resume: the base options of the study in {str(directory)!r}")
    return meta, trials


# -- xdl train ----------------------------------------------------------------------------------
def _refuse_write_protected(paths) -> None:
    """Each of ``paths`` (files in --out the command replaces) that is there and cannot be replaced
    is refused now, naming --out (`check_target`), not once the work it would hold is done."""
    for path in paths:
        if path.exists():
            check_target(path, "--out")


def train(config: TrainConfig, args=None) -> int:
    out = Path(config.out)
    _check_flags_read(config, args)
    check_not_in_use(out, "--out", RUN)  # a look: a run at work there is named before anything else
    resuming, saved = _check_resume(config, args) if config.resume else (None, None)
    without_control = _resumed_without_control(config, out, saved) if config.resume else None
    run_dir = _run_directory(config.resume) if config.resume else None
    if run_dir is not None and run_dir.resolve() != out.resolve():
        resuming += f"; the rest of the run goes to --out {str(out)!r}, not to {str(run_dir)!r}"
    own = out / "checkpoints" / CHECKPOINT_FILE
    replacing = None
    if not config.resume or resume_path(config.resume).resolve() != own.resolve():  # (a resume into another --out)
        replacing = _check_no_unfinished_run(out, resumed=resume_path(config.resume) if config.resume else None)
    _check_no_foreign_outputs(out, _run_outputs(out), "xdl train")
    with xdl.use(config.backend, precision=config.precision) as backend, contextlib.ExitStack() as held:
        check_writable_dir(out, "--out")  # before any work, after every check: fail fast, make nothing
        _refuse_write_protected(out / name for name in _run_outputs(out))
        # the checkpoints too — a file write-protected or a directory in its place, or checkpoints/ itself: found
        # by `Checkpoint` once a resumed run's state was loaded, the refusal rewrote its history.json (its best
        # epoch lost), and a write-protected checkpoints/ with none in it was then removed
        if (out / "checkpoints").is_dir():
            for name in (CHECKPOINT_FILE, BEST_FILE):
                check_target(out / "checkpoints" / name, "--out")
        lock = held.enter_context(DirectoryLock(out, "--out", RUN))  # one run at a time writes its checkpoints
        xdl.seed(config.seed)
        print(f"xdl {xdl.__version__}: backend {backend.name} on {backend.device_name()}{_precision_note(backend)}")
        if resuming:
            _note(resuming)
        if replacing:
            _note(replacing)
        if lock.took_over:
            _note(f"note: {took_over_note(lock)}")
        if without_control:
            _note(without_control)
        parts, n_classes, model = _split_and_model(config)
        print(f"dataset {config.dataset}: {len(parts.X_train)} train / {len(parts.X_dev)} dev / "
              f"{len(parts.X_test)} test examples, {parts.X_train.shape[1]} features, {n_classes} classes")
        print(f"model: {_describe(model)}; optimizer {config.optimizer}, lr {config.lr:g}, "
              f"schedule {config.schedule}")
        if config.augment_flip and config.dataset == "digits":
            _note("note: --augment-flip mirrors digits left to right, and a mirrored 2 or 7 is no digit; "
                  "shifts and noise keep the label")
        if config.optimizer == "adamw" and not config.weight_decay:  # (PyTorch's AdamW decays at 0.01 unasked)
            _note("note: --optimizer adamw with --weight-decay 0 is adam: its decoupled decay is --weight-decay")
        checkpoint = Checkpoint(out / "checkpoints", every=config.checkpoint_every or None)
        # (a run of an xdl before control.toml goes on without it: its checkpoint holds no Control's state)
        trainer = config.build_trainer(model, callbacks=[checkpoint] if without_control else [
            Control(out, report=lambda note: _note(f"note: {note}")), checkpoint])  # the babysitter sees it now
        reason = trainer.eager_reason()
        print("steps: captured as CUDA graphs (one per batch shape)" if reason is None else f"steps: eager ({reason})")
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", append=True)  # (after the user's: `-W ignore`, PYTHONWARNINGS)
                warnings.showwarning = _note_once()  # as they come (a rejected control.toml is news now)
                history = trainer.fit(parts.X_train, parts.y_train, dev=(parts.X_dev, parts.y_dev),
                                      resume=config.resume or None)
        except Interrupted as stop:
            return _interrupted(stop, trainer, out)
        except KeyboardInterrupt as stop:  # a second signal, before the step finished: the last checkpoint stands
            signal_name = _signal_of(stop)
            if trainer.last_checkpoint is None:
                best = _without_a_lone_best(trainer, out)
                if best is None:
                    raise
                print(f"\nxdl train: interrupted by {signal_name} before the step finished; its best epoch is kept: "
                      f"to continue from it, {_resume_from_best(best)}", file=sys.stderr)
                return _signal_status(signal_name)
            print(f"\nxdl train: interrupted by {signal_name} before the step finished; the last checkpoint "
                  f"stands: to continue, {_resume_command(trainer)}", file=sys.stderr)
            return _signal_status(signal_name)
        except FloatingPointError as e:
            _keep_history(trainer, out)
            if trainer.last_checkpoint is None:
                best = _without_a_lone_best(trainer, out, named=True)
                if best is None:
                    raise
                raise FloatingPointError(f"{e}{_way_on(trainer, out, 'its best epoch', _resume_from_best(best))}") \
                    from None
            # the way on from the last good state, whose rate (maybe set by hand) is the one that diverged
            raise FloatingPointError(f"{e}{_way_on(trainer, out, 'the last good state', _resume_command(trainer))}") \
                from None
        except BrokenPipeError:  # a reader of stdout or stderr gone (`2>&1 | head`): no directory to blame
            raise
        except OSError as e:  # a checkpoint could not be written: training stopped there
            _keep_history(trainer, out)
            if trainer.last_checkpoint is not None:
                raise OSError(f"{e}; once the directory can be written, {_resume_command(trainer)}") from None
            best = _without_a_lone_best(trainer, out)
            if best is None:
                raise
            raise OSError(f"{e}; its best epoch is kept: once the directory can be written, "
                          f"{_resume_from_best(best)}") from None
        seconds = time.perf_counter() - start
        try:
            metrics = {name: trainer.evaluate(Xp, yp) for name, Xp, yp in
                       (("train", parts.X_train, parts.y_train), ("dev", parts.X_dev, parts.y_dev),
                        ("test", parts.X_test, parts.y_test))}
            diagnosis = diagnose({"train_accuracy": metrics["train"]["accuracy"],
                                  "dev_accuracy": metrics["dev"]["accuracy"]}, base_error=config.base_error,
                                 dev_examples=len(parts.X_dev))
            if "high bias" in diagnosis.verdict:
                # a bigger network or a longer run learns no more from weights that start equal, or after a rate
                # that left the model predicting one class: those steps give way to the one that helps
                first, ln_c = None, float(np.log(n_classes))
                if starts_symmetric(config.init):
                    first = SYMMETRIC_START.format(init=config.init)
                elif _large_start(trainer.start_cost, config.init, ln_c):  # (before ONE_CLASS: the start, not the rate)
                    # put first: a bigger network still learns a little more from it (29% → 47%), so both stay
                    diagnosis.next_steps.insert(0, LARGE_START.format(init=config.init, cost=trainer.start_cost,
                                                                      ratio=trainer.start_cost / ln_c))
                elif _rose_above_ln_c(history, n_classes) and (one := _one_class(model, parts.X_train, n_classes)):
                    first = ONE_CLASS.format(**one, ln_c=ln_c, lower=config.lr / 10)
                if first is not None:
                    diagnosis.next_steps = [first] + [step for step in diagnosis.next_steps
                                                      if step not in NEXT_STEPS["high bias"][:2]]
            if history.best_epoch is not None:  # (--patience: the weights are the lowest dev cost's already)
                diagnosis.next_steps = [step for step in diagnosis.next_steps if step != STOP_EARLY]
            files = _write_outputs(out, model, history, config, metrics, diagnosis)
            files += [str(p) for p in dict.fromkeys((trainer.last_checkpoint, trainer.best_checkpoint)) if p]
        except (KeyboardInterrupt, OSError, MemoryError) as e:  # the training is done and saved: say how to get
            if trainer.last_checkpoint is None:                    # the rest
                raise
            stop = _signal_of(e) if isinstance(e, KeyboardInterrupt) else None
            what = f"interrupted by {stop}" if stop else f"{e}" if isinstance(e, OSError) else f"out of memory ({e})"
            kept = f"its training is over and kept in {str(trainer.last_checkpoint)!r}"
            if (history.stopped_by or "").startswith(CONTROL_FILE):  # a resume trains on after a control stop
                print(f"\nxdl train: {what} while writing the run's outputs; {kept} (stopped by {CONTROL_FILE}: "
                      f"xdl.load gives its model; {_resume_command(trainer)} trains on from there)", file=sys.stderr)
            else:
                print(f"\nxdl train: {what} while writing the run's outputs; {kept}: to write them, "
                      f"{_resume_command(trainer)}", file=sys.stderr)
            return _signal_status(stop) if stop else 1
    _report(history, metrics, diagnosis, seconds, files, resumed=bool(config.resume))
    return 0


def _split_and_model(config: TrainConfig) -> tuple:
    """(The train/dev/test split of ``config``'s dataset, its number of classes, the model its options build
    over it: its input standardized on the training split), as ``xdl train`` and ``xdl lr-find`` train them."""
    X, y = xdl.datasets.load(config.dataset)
    parts = split(X, y, seed=config.seed)
    n_classes = int(y.max()) + 1
    return parts, n_classes, config.build_model(X.shape[1], n_classes, config.build_standardize(parts.X_train))


def _one_class(model, X, n_classes: int) -> dict | None:
    """The class ``model`` predicts for at least `ONE_CLASS_SHARE` of ``X`` (``label``, ``share``),
    None where its predictions vary (or there is one class to predict)."""
    counts = np.bincount(np.asarray(model.predict(X)).reshape(-1), minlength=n_classes)
    share = counts.max() / counts.sum()
    return {"label": int(counts.argmax()), "share": share} if n_classes > 1 and share >= ONE_CLASS_SHARE else None


def _large_start(start_cost: float | None, init: str, ln_c: float) -> bool:
    """Whether a run from ``init``, a normal(SCALE), started (``start_cost``: at most its first step's
    cost, the initial weights') above `LARGE_START_FACTOR` · ln C: its scale, not the rate, is why (he,
    xavier and glorot draw at a scale for the fan-in already)."""
    return (canonical_name(init).startswith("normal(") and start_cost is not None and ln_c > 0
            and start_cost > LARGE_START_FACTOR * ln_c)


def _rose_above_ln_c(history, n_classes: int) -> bool:
    """Whether an epoch's train cost in ``history`` rose above `ONE_CLASS_ROSE` · ln C (C =
    ``n_classes``): what a rate too large does before it leaves the model predicting one class."""
    costs = [c for c in history["train_cost"] if c is not None] if len(history) else []
    return n_classes > 1 and bool(costs) and max(costs) > ONE_CLASS_ROSE * float(np.log(n_classes))


def _note(text: str) -> None:
    """A note for the person running the command: on stderr, above a progress bar, so that stdout
    holds the results a script reads (and a reader of stdout gone, ``| head``, stops no run)."""
    tqdm.write(text, file=sys.stderr)


def _note_once():
    """A `warnings.showwarning` that prints each distinct message once, as a ``note:`` line above
    the progress bar."""
    shown = set()

    def show(message, category, filename, lineno, file=None, line=None):
        if str(message) not in shown:
            shown.add(str(message))
            _note(f"note: {message}")

    return show


def _check_no_unfinished_run(out: Path, resumed: Path | None = None) -> str | None:
    """A new run in ``out`` replaces the files of the run there: refused while that run is
    unfinished — interrupted or stopped by a divergence (its checkpoint is the way on), over but
    stopped before all its outputs were written, or holding states no run can continue from (a
    damaged checkpoint, a best.npz alone) — naming how to go on; a finished run's files (its
    report.json, written last, of as many epochs as its checkpoint) are replaced, as by any rerun:
    the note returned says so (None: no run there). ``resumed``: the checkpoint a resume into ``out``
    goes on from — a best.npz alone there that is of its run (`_best_of_run`) is its own."""
    checkpoints = out / "checkpoints"
    path, best = checkpoints / CHECKPOINT_FILE, checkpoints / BEST_FILE
    if not (path.is_file() or best.is_file()):
        return None
    replaced = (f"note: --out {str(out)!r} holds a finished run; this run replaces its files (model, history, "
                f"checkpoints) — give another --out to keep them")
    reported = _reported_run(out / "report.json")
    afresh = f"or give another --out; to start afresh there, remove {str(checkpoints)!r} first"
    if not path.is_file():  # killed before its first checkpoint.npz, or --checkpoint-every 0
        if reported is not None:
            return replaced
        if resumed is not None and _best_of_run(best, resumed):
            return None  # the best a resume of that run copied in, left by a try stopped before its first checkpoint
        raise FileExistsError(f"--out {str(out)!r} holds a run's best epoch ({str(best)!r}) but no checkpoint to "
                              f"continue the run from: continue from its best epoch with --resume "
                              f"{_shell_word(str(best))} (into this --out or another), {afresh}")
    try:
        extra, done, step = read_position(path)
    except ValueError as e:
        kept = f"; {str(best)!r} may still hold the best epoch's state" if best.is_file() else ""
        raise FileExistsError(f"--out {str(out)!r} holds a checkpoint no run can continue from ({e}){kept}: give "
                              f"another --out; to start afresh there, remove {str(checkpoints)!r} first") from None
    if reported == (done, _model_options((extra.get("run_info") or {}).get("config") or {})) and not step:  # its outputs, written after
        return replaced  # its last checkpoint (a report of another run before it, left there, is not)
    unfinished = unfinished_run(path)  # (the rule a Checkpoint refuses a new run by, in Python)
    if unfinished is not None:
        raise FileExistsError(f"--out {str(out)!r} holds an unfinished run (its checkpoint: {unfinished}): continue "
                              f"it with --resume {_shell_word(str(path.parent))}, {afresh}")
    if reported is not None and not step and reported[0] == done and first_change(
            _model_options((extra.get("run_info") or {}).get("config") or {}), reported[1]) is None:
        # a resume of a run that was over, with nothing to train ("it ends as it ended"), writes its outputs
        # under the options it was given (--patience 5, --epochs 8, --precision tf32: a resume may change them)
        # and leaves the checkpoint as it was: its run is finished, not stopped while writing its outputs
        return replaced
    # (an older xdl's stop: no stopped_by)
    why = extra["history"].get("stopped_by") or (f"stopped early at epoch {done}" if waited_out_patience(extra) else
                                                 f"its {counted(done, 'epoch')} trained")
    raise FileExistsError(f"--out {str(out)!r} holds a run that was over ({why}) but whose outputs were not all "
                          f"written after it (it was stopped while writing them): --resume "
                          f"{_shell_word(str(path.parent))} goes on from there (a run over by its epochs or early "
                          f"stopping ends as it ended, writing them), {afresh}")


def _check_no_foreign_outputs(out: Path, outputs: dict, command: str) -> None:
    """Refuse, before any work, an ``out`` holding a file of a name the command writes that
    ``outputs`` (name → whether a file there is the command's own) does not recognise: the command
    would write over a user's file (``xdl bench optimizers`` refuses alike, `earlier_results`)."""
    foreign = [name for name, ours in outputs.items() if os.path.lexists(out / name) and not ours(out / name)]
    if foreign:
        them = "it" if len(foreign) == 1 else "them"
        raise FileExistsError(f"--out {str(out)!r} holds {', '.join(foreign)} that no {command} wrote: this run "
                              f"would write over {them}; give another --out, or move {them} away")


def _run_outputs(out: Path) -> dict:
    """xdl train's outputs, each with how a file of its name there is known for a run's (curves.png,
    a picture, by the run's other files beside it)."""
    def history(path):
        try:
            xdl.train.History.load(path)
            return True
        except (OSError, ValueError, TypeError):
            return False

    named = {"model.npz": is_xdl_file, "history.json": history,
             "report.json": lambda path: _reported_run(path) is not None}
    # (a run's checkpoint, not a checkpoints/ directory: a project's own, of PyTorch's files, said nothing of
    # the curves.png beside it, which the run wrote over)
    checkpoints = [out / "checkpoints" / name for name in (CHECKPOINT_FILE, BEST_FILE)]
    return {**named, "curves.png": lambda path: any(is_xdl_file(p) for p in checkpoints) or any(
        (out / name).is_file() and ours(out / name) for name, ours in named.items())}


def _best_of_run(best: Path, checkpoint: Path) -> bool:
    """Whether ``best`` is a state of the run whose checkpoint is ``checkpoint``: the same provenance
    (model, loss, optimizer and settings, seed, data, …). A resume into another --out copies the
    run's best.npz there before its first epoch; one stopped before its first checkpoint there (a
    divergence, whose message says to run the same command again; a kill) leaves it alone, and the
    same command takes it up again (as a resume in the run's own directory takes its best.npz)."""
    try:
        mine, theirs = read_extra(best)[0], read_extra(checkpoint)[0]
    except (OSError, ValueError):
        return False
    mine, theirs = (e.get("provenance") if isinstance(e, dict) else None for e in (mine, theirs))
    if not (mine and isinstance(mine, dict) and isinstance(theirs, dict)):
        return False
    try:  # by the rule a resume compares a run with its checkpoint: `==` refused a best.npz of the run's first
        verify(theirs, mine, best)  # leg, --init normal, under a checkpoint of a leg resumed with normal(0.01)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def _reported_run(report: Path) -> tuple[int, dict] | None:
    """The epochs a run's report.json says it trained and the options of its model and training
    (`_model_options`), or None: no report (or none xdl wrote)."""
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        epochs, options = data.get("epochs"), _model_options(data["config"])
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None
    return (epochs, options) if isinstance(epochs, int) and not isinstance(epochs, bool) else None


def _model_options(config: dict) -> dict:
    """A run's options but those of the command's run (where it writes, its resume, …): what tells
    one run from another."""
    return {key: value for key, value in config.items() if key not in RUN_OPTIONS}


def _check_resume(config: TrainConfig, args=None) -> tuple[str, dict]:
    """The checkpoint exists, is a training checkpoint, and was made with the same options; what
    is resumed, for the run's log, and the checkpoint's ``extra`` (`read_extra`). A refused option
    is named as ``args`` gave it: its flag, or its key in the ``--config`` file."""
    path = resume_path(config.resume)  # the directory, or the checkpoint file itself
    # a --config file's resume is named as its key there: "--resume: no checkpoint …" named a flag never typed
    who = f"resume in {str(args.config)!r}" if getattr(args, "config", None) is not None \
        and not hasattr(args, "resume") else "--resume"
    if not path.is_file():
        given = Path(config.resume)
        meant = next((p for p in (given / "checkpoints", given.parent) if (p / CHECKPOINT_FILE).is_file()), None)
        hint = f"; did you mean --resume {_shell_word(str(meant))}?" if meant is not None else ""
        # killed before its first checkpoint.npz: its best.npz, in the checkpoints directory or the run's (named
        # as a checkpoint.npz is, `meant`: "no checkpoint in 'xdl-run'" said nothing of the best epoch there)
        best = next((p / BEST_FILE for p in (given, given / "checkpoints") if (p / BEST_FILE).is_file()), None)
        if meant is None and best is not None:  # (a resume from it into the run's own --out goes on there too)
            hint = f"; it holds a best epoch: --resume {_shell_word(str(best))} continues from it"
        where = f"in {config.resume!r}" if given.is_dir() else f"at {config.resume!r} ({_not_a_directory(given)})"
        raise FileNotFoundError(f"{who}: no checkpoint {CHECKPOINT_FILE} {where}{hint}")
    try:
        extra, _ = read_extra(path)
    except ValueError as e:
        best = path.parent / BEST_FILE
        hint = f"; {str(best)!r} may still hold the best epoch's state" if best.is_file() else ""
        raise ValueError(f"{who}: {e}{hint}") from None
    check_checkpoint_kind(extra, path, many=False, who=who)
    saved = (extra.get("run_info") or {}).get("config")
    if saved:
        try:
            config.check_resume(saved, config.resume, int(extra["epoch"]), step=int(extra.get("step", 0)))
        except ValueError as e:  # "--lr: …" of a file's lr named a flag never typed
            named = re.match(r"^--([\w-]+)", str(e))
            name = named.group(1).replace("-", "_") if named else None
            if name and getattr(args, "config", None) is not None and not hasattr(args, name):
                raise ValueError(f"{name} in {str(args.config)!r}{str(e)[named.end():]}") from None
            raise
    stopped = (extra.get("history") or {}).get("stopped_epoch") or \
        (int(extra["epoch"]) if waited_out_patience(extra) else None)  # (an older xdl's stop: no stopped_epoch)
    trains_on = stopped and saved and config.patience > saved.get("patience", 0)  # (else it stays stopped: a note)
    return (f"resuming {str(path)!r}: its state {position(int(extra['epoch']), int(extra.get('step', 0)))}, to epoch "
            f"{config.epochs}" + (f" (the run had stopped early at epoch {stopped}; with --patience {config.patience} "
                                  "it trains on)" if trains_on else "")), extra


def _resumed_without_control(config: TrainConfig, out: Path, extra: dict) -> str | None:
    """A note where the checkpoint ``config`` resumes (its ``extra``, as `_check_resume` read it:
    the file is read once here) was written by a run without a `Control` (an
    xdl before control.toml), which goes on without it, as it was made — a Control added there
    would be a callback the checkpoint has no state for, and the run could not be resumed at all;
    None where it had one. Its callbacks are those its provenance names; a checkpoint of an xdl
    before provenance (and before Control) held [EarlyStopping, Checkpoint], or [Checkpoint] with
    --patience 0, which that file does not record: asked for when it differs."""
    path = resume_path(config.resume)
    recorded = (extra.get("provenance") or {}).get("callbacks")
    if isinstance(recorded, list) and "Control" in recorded:
        return None
    if recorded is None:  # no provenance: its options are not recorded, the number of callbacks' states is
        had_stopping = len(extra.get("callbacks") or []) > 1
        if had_stopping != bool(config.patience):
            raise ValueError(f"--resume: {str(path)!r} was written by an older xdl that did not record the run's "
                             f"options; its run had {'early stopping' if had_stopping else '--patience 0'}: give "
                             f"the command's options again, with {'--patience N (N ≥ 1)' if had_stopping else '--patience 0'}")
    waiting = " (the control.toml there is not read)" if (out / CONTROL_FILE).exists() else ""
    return (f"note: resume: {str(path)!r} was written by a run without control.toml (an older xdl's): the run "
            f"goes on without it{waiting}")


def _interrupted(stop: Interrupted, trainer, out: Path) -> int:
    """Ctrl-C or SIGTERM: the Trainer finished its step and wrote the checkpoint; keep the history
    too and say how to continue."""
    try:
        _keep_history(trainer, out)
    except KeyboardInterrupt:  # a second Ctrl-C just after the first (its checkpoint written): the way on is
        _note("note: the history was not written (interrupted again)")  # still said, not "not saved"
    print(f"\nxdl train: {stop}", file=sys.stderr)
    # (its epochs trained, or early stopping's stop: the resume trains nothing, and writes them; after a control
    # file's stop it trains on, as after a stop without a signal)
    if stop.over and not (trainer.history.stopped_by or "").startswith(CONTROL_FILE):
        print(f"its training is over; for its files (model, report, curves), {_resume_command(trainer)}", file=sys.stderr)
    else:
        print(f"to continue, {_resume_command(trainer)}", file=sys.stderr)
    return _signal_status(stop.signal_name)


def _keep_history(trainer, out: Path) -> None:
    """A stopped run's good epochs in history.json, for the curves; a failed write (the disk may be
    full) is a note beside the message that says how to go on, not in its place."""
    if len(trainer.history):
        try:
            trainer.history.save(out / "history.json")
        except OSError as e:
            _note(f"note: the history was not written: {e}")


def _without_a_lone_best(trainer, out: Path, named: bool = False) -> Path | None:
    """A run stopped before its first checkpoint leaves no best.npz alone (the same command would be
    refused: a best epoch, but no checkpoint to continue from) nor an empty checkpoints/ (a new run
    holds no other: `_check_no_unfinished_run`) — unless it trained past its first epoch, which the
    same command redoes: with --checkpoint-every 0 (or N) that best.npz holds every epoch of the run,
    and removed, they were lost while the Trainer's message (or the failed write's) said where they
    were — or the stop's message ``named`` it (a divergence's says "the best epoch's state is in …"
    from the first epoch on). The best.npz kept is returned (`_resume_from_best`), else None."""
    best = trainer.best_checkpoint
    if best is not None and (trainer.epoch > 1 or named) and Path(best).is_file():
        return Path(best)
    with contextlib.suppress(OSError):
        if best is not None:
            best.unlink(missing_ok=True)
        (out / "checkpoints").rmdir()
    return None


def _shell_word(path) -> str:
    """``path`` as one word of a command line to copy: quoted for the shell (a space, a quote), and a
    relative name that starts with '-' as ``./-name`` (``--resume -run/checkpoints`` is read as two
    options, the suggested command refused: "argument --resume: expected one argument")."""
    path = str(path)
    return _quoted(f".{os.sep}{path}" if path.startswith("-") else path)


def _quoted(word: str) -> str:
    """``word`` quoted for the shell as one word of a command line to copy (as it is: a value, such as ``-0.0``,
    is no path to write as ``./-0.0``, which its flag refuses)."""
    if os.name == "nt":
        # Windows' shells (cmd, PowerShell) read a quoted word in double quotes: shlex's single quotes
        # reached --resume as part of the name ('xdl-run\checkpoints', every path having a backslash),
        # and the command the message gave was refused; a Windows name holds no '"'
        # (a ',' is PowerShell's array operator: quoted; cmd expands %VAR% even within quotes)
        return word if re.fullmatch(r"[\w@+=:./\\-]+", word, re.ASCII) else f'"{word}"'
    return shlex.quote(word)


def _resume_from_best(best: Path) -> str:
    """How to go on from a run's lone best.npz (a resume from it into its own --out: `_best_of_run`)."""
    return f"run the same command with --resume {_shell_word(str(best))}"


@contextlib.contextmanager
def _search_writes(out: Path):
    """A search's files written within: one that fails (a full disk) says what is kept and how to go
    on from it; a reader of stdout gone is no file to blame."""
    from xdl.tune.study import TRIALS_FILE

    try:
        yield
    except BrokenPipeError:
        raise
    except (OSError, MemoryError) as e:
        # "once the directory can be written" only where a write failed (it names its file, in ``out``): a lost
        # Dask scheduler or a cluster without workers is no directory's fault
        wrote = isinstance(e, OSError) and e.filename is not None and \
            Path(e.filename).resolve().parent == out.resolve()
        when = "once the directory can be written, " if wrote else ""
        kept = f"no trial was saved: {when}run the same command again" if not (out / TRIALS_FILE).is_file() else \
            (f"the trials saved are in {str(out / TRIALS_FILE)!r}: {when}continue with xdl tune --resume --out "
             f"{_shell_word(str(out))}")
        raise OSError(f"{str(e) or type(e).__name__}; {kept}") from None


def _signal_of(stop: KeyboardInterrupt) -> str:
    """The signal that stopped the command: SIGTERM (`Terminated`, a Trainer's `Interrupted`) or Ctrl-C."""
    return getattr(stop, "signal_name", "SIGINT")


def _signal_status(signal_name: str) -> int:
    """The exit status a shell gives a process that died of that signal (130 for SIGINT)."""
    return 128 + signal.Signals[signal_name].value


def _way_on(trainer, out: Path, state: str, resume: str) -> str:
    """What a divergence's error adds to the trainer's advice: where that is the rate's (`RATE_ADVICE`), how
    to go on from ``state`` at another rate — ``lr = …`` in control.toml, then ``resume`` —; otherwise (the
    rate is not the cause: the starting weights, the inputs, the weight decay) how to make that change: a new
    run's options, which a resume keeps as they were."""
    advice = trainer.__dict__.get("_divergence_advice")  # (None: not the trainer's divergence check, said as before)
    if advice is None or advice.startswith(RATE_ADVICE):
        return f": to do so from {state}, write `lr = …` into {str(out / 'control.toml')!r} and {resume}"
    return ": a new run makes that change (another --out, without --resume: a resume keeps the run's options)"


def _resume_command(trainer) -> str:
    """How to go on from the trainer's last good checkpoint (this run's, or the one it resumed)."""
    last = Path(trainer.last_checkpoint)
    # a checkpoint.npz by its directory; a best.npz resumed from by its name (its directory's checkpoint.npz is
    # another state, of a later epoch: the "same command" went on from there)
    named = last.parent if last.name == CHECKPOINT_FILE else last
    return (f"run the same command with --resume {_shell_word(str(named))} "
            f"(its state {position(*trainer.last_checkpoint_at)})")


def _describe(model) -> str:
    layers = " → ".join(repr(layer).split("(")[0] if not hasattr(layer, "in_features")
                        else f"Dense({layer.in_features}→{layer.out_features})" for layer in model.layers)
    return f"{layers} ({sum(p.size for p in model.parameters()):,} parameters)"


def _write_outputs(out: Path, model, history, config, metrics, diagnosis) -> list[str]:
    files = [xdl.save(model, out / "model.npz"), history.save(out / "history.json")]
    try:
        from xdl.plots import plot_history

        files.append(plot_history(history, out / "curves.png"))
    except ImportError as e:
        files.append(f"(no curves.png: {e})")
    report = {"config": dataclasses.asdict(config), "metrics": metrics, "diagnosis": dataclasses.asdict(diagnosis),
              "epochs": len(history), "stopped_epoch": history.stopped_epoch, "stopped_by": history.stopped_by,
              "best_epoch": history.best_epoch}
    # last: a report of the run's epochs says its outputs are all written (`_check_no_unfinished_run`)
    files.append(atomic_write(out / "report.json", lambda f: json.dump(report, f, indent=1), binary=False))
    return [str(f) for f in files]


def _report(history, metrics, diagnosis, seconds, files, resumed: bool = False) -> None:
    epochs = len(history)
    if history.stopped_epoch:
        print(f"stopped early at epoch {history.stopped_epoch}: {history.stopped_by or 'a callback stopped it'}")
    if history.best_epoch:
        print(f"weights restored from epoch {history.best_epoch} (lowest dev cost)")
    print("accuracy: " + "  ".join(f"{name} {m['accuracy']:.2%}" for name, m in metrics.items()))
    print(f"diagnosis: {diagnosis}")
    per_epoch = np.mean(history["seconds"]) if epochs else 0.0  # all epochs, resumed runs included
    # a resumed run's mean takes in the epochs before it: said, or it reads as this run's (2 epochs in
    # 0.1 s "(3694 ms per epoch)")
    over = f" over all {epochs}, the resumed run's included" if resumed else ""
    print(f"time: {counted(epochs, 'epoch')}, this run {seconds:.1f} s ({1000 * per_epoch:.0f} ms per epoch{over})")
    print("files written:\n" + "\n".join(f"  {f}" for f in files))


# -- xdl gradcheck ------------------------------------------------------------------------------
def gradcheck(config: TrainConfig, args=None) -> int:
    """Gradient-check J = cost (+ L2, + L1) of the configured model on a small batch, in float64 (L1's
    |W| has a kink at W = 0, where backprop gives (λ/m)·sign(0) = 0: the mean of its slopes ∓λ/m
    there, which the central difference computes too, so a weight at exactly 0 checks as agreeing)."""
    _refuse_config_resume(config, "gradcheck", "checks")
    elements = getattr(args, "elements", None)
    if elements is not None:
        check_int(elements, "--elements", expected="a positive integer (elements checked per parameter)")
    with xdl.use(config.backend, precision=config.precision) as backend:
        xdl.seed(config.seed)
        X, y = xdl.datasets.load(config.dataset)
        X, y = X[:GRADCHECK_EXAMPLES].astype(np.float64), y[:GRADCHECK_EXAMPLES]
        n_classes = int(y.max()) + 1
        model = config.build_model(X.shape[1], n_classes, Standardizer().fit(X).layer()).astype(np.float64)
        loss = SoftmaxCrossEntropy()

        def cost():
            j = loss(model(X), y)
            j = j + l2(model, config.l2, m=len(X)) if config.l2 else j
            return j + l1(model, config.l1, m=len(X)) if config.l1 else j

        checked = sum(p.size if elements is None else min(p.size, elements) for p in model.parameters())
        print(f"xdl gradcheck: backend {backend.name}; {_describe(model)}; {len(X)} examples of {config.dataset}; "
              f"two evaluations of J per element checked ({checked:,} "
              + ("elements: every one; --elements N checks a sample)" if elements is None else
                 f"elements: {elements:,} or all of each parameter)"))
        ignored = [flag_of(f.name) for f in dataclasses.fields(TrainConfig)
                   if hasattr(args, f.name) and f.name not in GRADCHECK_READS]
        if ignored:  # (a --config file may hold every option: only flags typed for this command are named)
            _note(f"note: {', '.join(ignored)} {'does' if len(ignored) == 1 else 'do'} not change a gradient check (it "
                  "checks J of the model these options build, at its initial weights): ignored")
        if config.dropout:
            _note("note: dropout is off while checking: a random mask would make J another function at every call")
        try:
            # (named parameters: "2.bias", not "bias" thrice)
            result = xdl.gradcheck(cost, dict(model.named_parameters()), elements=elements)
        except StepRoundsAway as e:  # its advice, "give an eps", named a setting this command has none of (its --eps
            # is Adam's, which a check ignores): the weights are the init's draws, so a smaller init is the way
            raise ValueError(f"--init {config.init} drew weights too large to check: {e.label} {e.index} is "
                             f"{e.value:.3g}, where the finite difference's step θ ± {e.eps:g} rounds back to θ in "
                             "float64; give --init a smaller scale") from None
    print(result)
    if result.constant and starts_symmetric(config.init):  # J is the model's own: its start is why, not J
        _note(f"note: --init {config.init} starts every weight at 0, where every gradient of J is 0 (each unit of a "
              "layer computes the same, and the output's bias has nothing to move towards on examples balanced "
              "between the classes): check the gradients at a random start, --init he")
    return 0 if result.passed else 1



# -- xdl lr-find --------------------------------------------------------------------------------
LR_FIND_ROWS = 10  # about as many rows of the sweep printed (every ⌈steps/10⌉-th step; its last and suggestion's)


def lr_find_command(config: TrainConfig, args) -> int:
    """The learning-rate range test (`xdl.train.lr_find`) of the model, loss and optimizer ``config``'s options
    build (as `train`'s: `_split_and_model`, `TrainConfig.build_trainer`), on its dataset's training split; print
    the sweep (`_sweep_table`), the suggestion and the ``xdl train`` that trains at it (`_train_command`), and
    save the plot at ``--plot``. Writes nothing else. Every option checked before any work."""
    from xdl.plots import figure_path, save_figure
    from xdl.train.lr_find import check_sweep, lr_find

    _refuse_config_resume(config, "lr-find", "tests")  # (its run's flags: refused by `_refuse_flags`, before)
    _check_flags_read(config, args, readers=("optimizer",))  # (its schedule's flags are refused by `REFUSES`)
    smoothing = inspect.signature(lr_find).parameters["smoothing"].default
    min_lr, max_lr, steps, stop_factor, _ = check_sweep(args.min_lr, args.max_lr, args.steps, args.mode,
                                                        args.stop_factor, smoothing, np.float32, name=flag_of, who="")
    if args.plot is not None:
        try:
            figure_path(args.plot, "--plot")
        except ImportError as e:  # (matplotlib missing: the extra named, before any work)
            raise ImportError(f"--plot: {e}") from None
    with xdl.use(config.backend, precision=config.precision) as backend:
        xdl.seed(config.seed)
        parts, _, model = _split_and_model(config)
        trainer = config.build_trainer(model)
        print(f"xdl {xdl.__version__} lr-find: backend {backend.name} on {backend.device_name()}"
              f"{_precision_note(backend)}; dataset {config.dataset}: its {len(parts.X_train)} training examples")
        print(f"model: {_describe(model)}; optimizer {config.optimizer}, batch size {config.batch_size}; "
              f"{counted(steps, 'step')}, lr from {min_lr:g} to {max_lr:g} ({args.mode})")
        with warnings.catch_warnings():
            warnings.simplefilter("always", append=True)  # (after the user's, as xdl train's)
            warnings.showwarning = _note_once()
            # (no suggestion: said below, as the error; an epoch schedule's rate: xdl train's --lr is its α0)
            warnings.filterwarnings("ignore", message="lr_find: (no suggestion|trainer has an epoch schedule)")
            found = lr_find(trainer, parts.X_train, parts.y_train, min_lr=min_lr, max_lr=max_lr, steps=steps,
                            mode=args.mode, stop_factor=stop_factor)
    print(_sweep_table(found))
    print(_stopped(found, steps))
    if args.plot is not None:
        print(f"wrote {save_figure(found.plot(), args.plot)}")
    if found.suggestion is None:
        print(f"xdl lr-find: error: no suggestion: {found.why_none_named(flag_of)}", file=sys.stderr)
        return 1
    print(f"suggestion: lr {found.suggestion:.3g} (where the smoothed loss falls fastest); train with it:\n"
          f"  {_train_command(args, found.suggestion)}")
    return 0


def _sweep_table(found) -> str:
    """The sweep's step, rate and smoothed loss, every ⌈n/`LR_FIND_ROWS`⌉-th of its n steps, its last and the
    suggestion's (marked)."""
    n = len(found.lrs)
    rows = {*range(0, n, max(1, -(-n // LR_FIND_ROWS))), n - 1} if n else set()
    at = found.suggestion_step
    lines = [f"{'step':>6}  {'lr':>9}  {'smoothed loss':>13}"]
    for k in sorted(rows | ({at} if at is not None else set())):
        lines.append(f"{k + 1:>6}  {found.lrs[k]:>9.3g}  {found.losses[k]:>13.4g}"
                     + ("  ← suggestion" if k == at else ""))
    return "\n".join(lines)


def _stopped(found, steps: int) -> str:
    """Why the sweep of ``steps`` steps ended, in the command's words (its flags). A divergence is the trainer's
    (`lr_find`): a step's cost not finite (the next step's, not recorded), or at an epoch's end its cost far above
    where it started or its state not finite (that epoch's steps recorded) — the result does not say which."""
    n = len(found.lrs)
    return {"steps": f"stopped: all {counted(steps, 'step')} trained",
            "stop_factor": f"stopped at step {n}: the smoothed loss rose above --stop-factor × its lowest",
            "diverged": f"stopped after step {n}: the run diverged (xdl train's divergence rule: a cost or the state "
                        "no longer finite, or the epoch's cost far above where it started)"}[found.stopped]


def _train_command(args, lr: float) -> str:
    """The ``xdl train`` of the options given to ``xdl lr-find`` (its ``--config`` file and the flags typed, as
    given), at the rate ``lr`` (3 significant digits)."""
    words = ["xdl", "train"] + (["--config", _shell_word(str(args.config))] if args.config is not None else [])
    for f in dataclasses.fields(TrainConfig):
        if not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        if f.type == "bool":
            words.append(flag_of(f.name) if value else "--no-" + flag_of(f.name)[2:])
        else:
            words += [flag_of(f.name), *(str(v) for v in value)] if f.type == "list[int]" else \
                [flag_of(f.name), _quoted(str(value))]
    return " ".join(words + ["--lr", f"{lr:.3g}"])


# -- xdl tune -----------------------------------------------------------------------------------
def tune(config: TrainConfig, args) -> int:
    """Search around ``config`` on its dataset's train/dev split; print the top trials, write
    ``trials.json`` and ``best.toml`` in ``--out``."""
    from xdl.tune import Space, tune as search
    from xdl.tune.search import check_search, connect
    from xdl.tune.study import BEST_FILE as BEST_CONFIG, TRIALS_FILE

    # every option first, named by its flag: before any data is loaded or directory made (search checks again)
    if config.resume:  # a --config file's (the flag is the study's switch): it would be ignored
        raise ValueError(f"--config: resume = {config.resume!r} continues an xdl train run; xdl tune continues a "
                         "study with --resume (a switch, the study in --out)")
    if config.out != TrainConfig.out and config.out != args.tune_out:  # (a --config file's) it was ignored unsaid
        raise ValueError(f"--config: out = {config.out!r} is an xdl train run's directory; xdl tune writes its study "
                         f"to --out ({args.tune_out!r}): give --out {_shell_word(config.out)}, or remove out from "
                         "the file")
    saved, saved_trials = _resumed_study(args)  # --resume: what is not given is the study's

    def option(name, default=None):
        given = getattr(args, name, None)
        return given if given is not None else saved.get(name, default)

    space = Space.from_toml(args.space) if args.space is not None else \
        Space.from_dict(saved["space"], source="--resume: the study's space", recorded=True) if saved else None
    trials, strategy, halving, min_epochs = option("trials", 32), option("strategy", "random"), option("halving"), \
        option("min_epochs", 1)
    rounds = args.rounds if args.rounds is not None or strategy in ("random", "grid") else saved.get("rounds")
    in_file = getattr(args, "config_keys", ())

    def named(param, flag):
        # an option the --config file gave, not a flag, by its key there (a resume refused for the file's
        # dropout = 0.2 said "--dropout 0.3, this one has 0.2", a flag never typed, as _check_resume's note says)
        key = param.removeprefix("base.")
        return f"{key} (in {str(args.config)!r})" if key in in_file and not hasattr(args, key) else flag

    searched = check_search(space, trials, strategy, args.execution, rounds, config.seed, config, args.tune_out,
                            args.tune_resume, halving, min_epochs, flags=named, scheduler=args.scheduler)[0]
    check_int(args.top, "--top")
    _check_flags_read(config, args, searched=searched.dimensions, fixed=searched.fixed)
    overridden = [f"--{name.replace('_', '-')}" for name in searched.spec() if hasattr(args, name)]
    if overridden:
        _note(f"note: {', '.join(overridden)} {'is' if len(overridden) == 1 else 'are'} searched: the space's "
              "values take the place of what the command line gives")
    planned = len(searched.grid(trials)) if strategy == "grid" else trials
    out = Path(args.tune_out)
    check_not_in_use(out, "--out")  # a search at work there is named before anything else (as xdl train's)
    # a study's best.toml and trials.png are written beside its trials.json, never alone
    _check_no_foreign_outputs(out, dict.fromkeys((BEST_CONFIG, "trials.png"), lambda path: (out / TRIALS_FILE).is_file()),
                              "xdl tune")
    with xdl.use(config.backend, precision=config.precision) as backend, contextlib.ExitStack() as held:
        scheduler = args.scheduler
        if args.execution == "dask" and scheduler is not None:  # the cluster answers before anything is made
            scheduler = connect(scheduler, "--scheduler")
            held.callback(scheduler.close)
        check_writable_dir(out, "--out")  # made only now that the options, the backend and the cluster are good
        _refuse_write_protected(out / name for name in (TRIALS_FILE, BEST_CONFIG, "trials.png"))  # (a resumed
        # search's: refused once its trials had trained)
        X, y = xdl.datasets.load(config.dataset)
        parts = split(X, y, seed=config.seed)
        start = time.perf_counter()
        try:  # (the header too: a Ctrl-C just after it is the search's, with its message)
            print(f"xdl {xdl.__version__} tune: backend {backend.name} on {backend.device_name()}"
                  f"{_precision_note(backend)}; dataset {config.dataset}: {len(parts.X_train)} train / "
                  f"{len(parts.X_dev)} dev examples; {counted(planned, 'trial')}, {strategy}, {args.execution}"
                  + (f" (the grid {trials} trials allow: every choice, the same number of values in each range)"
                     if planned != trials else "")
                  + (f"; resuming the study in {str(out)!r} ("
                     f"{counted(len(saved_trials), 'trial')} saved)" if args.tune_resume else ""))
            with warnings.catch_warnings():
                warnings.simplefilter("always", append=True)  # (after the user's, as xdl train's)
                warnings.showwarning = _note_once()  # a lock taken over from a killed search, say
                with _search_writes(out):  # trials.json (a full disk: the search stops there)
                    study = search(parts.X_train, parts.y_train, (parts.X_dev, parts.y_dev), space, trials=trials,
                                   strategy=strategy, execution=args.execution, rounds=rounds, seed=config.seed,
                                   base=config, directory=out, resume=args.tune_resume,
                                   standardize="fit", progress=config.progress_bar,  # each trial's, as xdl train's
                                   scheduler=scheduler, halving=halving, min_epochs=min_epochs,
                                   report=_note)  # each trial as it ends: a search under nohup says how it goes
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM (the running trial's Trainer stopped at a step)
            signal_name = _signal_of(stop)
            if (out / TRIALS_FILE).is_file():
                print(f"\nxdl tune: interrupted by {signal_name}; the trials that finished are in "
                      f"{str(out / TRIALS_FILE)!r}; to continue (the unfinished trials start again), run the same "
                      f"command with --resume (the study keeps its options: xdl tune --resume --out "
                      f"{_shell_word(str(out))} is enough)", file=sys.stderr)
            else:
                print(f"\nxdl tune: interrupted by {signal_name} before a trial was saved; nothing to continue: run "
                      "the same command again (without --resume)", file=sys.stderr)
            return _signal_status(signal_name)
    best, writing = study.best, BEST_CONFIG
    try:
        with _search_writes(out):  # best.toml, trials.png: the files first, as a reader of stdout gone (| head)
            if best is not None:   # stops the printing, not them
                path = study.write_best()
                writing = "trials.png"
                try:
                    from xdl.plots import plot_study

                    picture = f" and {plot_study(study, out / 'trials.png')}"
                except ImportError as e:
                    picture = f" (no trials.png: {e})"
    except KeyboardInterrupt as stop:  # every trial is saved, and a resume (training none) writes them: said so —
        # "what it was doing is not saved" sent the user to the same command, refused (a study there), and a
        # resumed search's best.toml was left the best of the trials before it
        signal_name, saved = _signal_of(stop), len(study.trials)
        print(f"\nxdl tune: interrupted by {signal_name} while writing {writing}; its {counted(saved, 'trial')} "
              f"{'is' if saved == 1 else 'are all'} in {str(out / TRIALS_FILE)!r}: to write {BEST_CONFIG} and "
              f"trials.png, run xdl tune --resume --out {_shell_word(str(out))}", file=sys.stderr)
        return _signal_status(signal_name)
    finally:  # (the table, a failed write's too: the trials are all in trials.json)
        print(study.table(args.top))
    if best is None:
        print("xdl tune: error: no trial trained to the end (pruned and failed trials do not count); see "
              f"{str(out / TRIALS_FILE)!r} for the reasons", file=sys.stderr)  # (as every failure's, a script's grep)
        return 1
    print(f"\nbest: trial {best.number}, dev accuracy {best.dev_accuracy:.4f}; {time.perf_counter() - start:.1f} s")
    print(f"wrote {out / 'trials.json'}, {path}{picture}; train it with: xdl train --config {_shell_word(str(path))}")
    return 0


# -- xdl bench ----------------------------------------------------------------------------------
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
        _refuse_write_protected(out / name for name in (*RESULT_FILES, "profile.png",
                                                        *(f"curves-{problem}.png" for problem in problems)))
        held.enter_context(DirectoryLock(out, "--out", BENCH))  # two would write their results over each other's
        if replaced:
            _note(replaced)
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
            signal_name, pairs = _signal_of(stop), counted(len(done), '(problem, optimizer) pair')
            if replaced:  # a finished benchmark is replaced by a finished one only: Ctrl-C on a second run in
                # the same --out (the default's) wrote its few pairs over it, and marked the directory interrupted
                print(markdown(results))
                print(f"\nxdl bench: interrupted by {signal_name}; the finished benchmark in --out {str(out)!r} is "
                      f"kept, and the {pairs} that finished here {'is' if len(done) == 1 else 'are'} printed above, "
                      "not written (give a new --out to keep a partial one)", file=sys.stderr)
                return _signal_status(signal_name)
            files = write(results, out)
            print(f"\nxdl bench: interrupted by {signal_name}; the {pairs} "
                  f"that finished {'is' if len(done) == 1 else 'are'} written ({', '.join(str(f) for f in files)}); "
                  "the rest was not run", file=sys.stderr)
            return _signal_status(signal_name)
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
            _note(f"note: no curves or profile figures: {e}")
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


def _not_a_directory(path: Path) -> str:
    """Why ``path``, neither a directory nor a file (a file is read as a checkpoint), holds no checkpoint:
    it does not exist, or it is something else, a device such as /dev/null ("no such directory" of a
    path that exists sent one looking for a typo)."""
    return "no such directory" if not path.exists() else "not a directory, nor a file"


def bench_kernels(config, args) -> int:
    from xdl.bench.kernels import report
    from xdl.files import check_output_file

    if args.json is not None:  # before any work: the report runs for minutes, and writes after its first case
        check_output_file(args.json, "--json")
    with xdl.use(args.backend):
        report(args.quick, args.json, json_flag="--json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
