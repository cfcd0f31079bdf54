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

# (this module's docstring is `xdl --help`'s description: `build_parser`)

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re

import xdl
from xdl.backend import BACKEND_CHOICES
from xdl.cli.commands.bench import bench_kernels, bench_optimizers
from xdl.cli.commands.gradcheck import gradcheck
from xdl.cli.commands.lr_find import lr_find_command
from xdl.cli.commands.train import train
from xdl.cli.commands.tune import tune
from xdl.cli.refused import REFUSES, add_refused_options
from xdl.config import TrainConfig, flag_of


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


class _Once(argparse.Action):
    """An option given at most once (argparse keeps the last: a first ``--config`` was silently unread)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"{option_string} given twice ({getattr(namespace, self.dest)!r} and {values!r}): give one")
        setattr(namespace, self.dest, values)


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
        _add_options(sub, skip={**REFUSES, "tune": ("resume", "out", "checkpoint_every")}.get(name, ()),
                     also={"tune": {"seed": "; and the strategy's draws of the trials' points"}}.get(name, {}))
        if name in REFUSES:
            add_refused_options(sub, REFUSES[name])
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
    sub = kinds.add_parser("kernels", help="the fused ops' speed: time, GB/s, %% of a same-size copy's bandwidth, "
                                           "ratios to naive xp and PyTorch; the training step's %% of matmul "
                                           "(benchmarks/report.py)",
                           description="the fused ops' speed on the current backend")
    sub.add_argument("--quick", action="store_true",
                     help="skip the 100M-parameter case, the 65536×1024 cases and the B=4096 train step")
    sub.add_argument("--json", metavar="FILE", help="also write the rows to this JSON file")
    sub.add_argument("--backend", choices=BACKEND_CHOICES, help="array backend (default: XDL_BACKEND, else auto)")
    sub.set_defaults(run=bench_kernels, command_parser=sub)
    return parser


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
    group.add_argument("--timeout", type=float, metavar="SECONDS",
                       help="start no trial once SECONDS have passed (Optuna's timeout): the running ones finish "
                            "and are saved, --resume goes on; not kept by the study (batched: a group's trials "
                            "start together; dask: a round's)")
    group.add_argument("--top", type=int, default=10, help="rows of the printed table (≥ 1)")


def _add_lr_find_options(parser: argparse.ArgumentParser) -> None:
    """The range test's own flags, their defaults `lr_find`'s (its refused ones: `add_refused_options`)."""
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
