"""The options of a training run that a command has no use for, and a peer's flags it names otherwise (`REFUSES`,
each with why): hidden flags that take them (`_Refused`), refused together before any work (`refuse_flags`), as a
--config file's resume is (`refuse_config_resume`)."""

from __future__ import annotations

import argparse
import dataclasses

from xdl.config import TrainConfig, flag_of


# the options of a training run that a gradient check has no use for (it trains nothing, writes nothing), each
# with why: refused, naming them, not "unrecognized arguments" or ignored (its flags are `GRADCHECK_READS` and these:
# every option, once; a --config file's are ignored, but resume, `refuse_config_resume`: best.toml holds every one)
GRADCHECK_REFUSES = dict.fromkeys(("epochs", "patience", "plateau_patience", "plateau_factor", "progress", "capture"),
                                  "xdl train's, not gradcheck's (it checks the gradients of the model at its initial "
                                  "weights: no epochs, early stopping, plateau, progress bar or captured step)") | \
    dict.fromkeys(("out", "checkpoint_every", "resume"), "xdl train's, not gradcheck's (it writes nothing: no output "
                                                         "directory, checkpoint or resume)") | \
    dict.fromkeys(("optimizer", "lr", "beta1", "beta2", "eps", "weight_decay", "max_grad_norm", "schedule",
                   "decay_rate", "decay_base", "decay_every", "decay_factor", "decay_k", "batch_size", "augment_shift",
                   "augment_noise", "augment_flip", "base_error"),
                  "xdl train's, not gradcheck's (it checks J of the model these options build, at its initial weights, "
                  "on a fixed batch: no optimizer, schedule, batch size, augmentation or diagnosis)") | {
    "precision": "xdl train's, not gradcheck's (it checks in float64, which --precision, of float32 matrix products, "
                 "does not change)"}
# the options of a training run that the range test of `xdl lr-find` has no use for (its steps are --steps batches
# at its own rising rates, it writes nothing but --plot), each with why: refused, naming them, not ignored
LR_FIND_REFUSES = dict.fromkeys(("epochs", "patience", "plateau_patience", "plateau_factor", "schedule", "decay_rate",
                                 "decay_base", "decay_every", "decay_factor", "decay_k", "base_error",
                                 "progress"),
                                "xdl train's, not lr-find's (it trains --steps batches at rising rates, with no "
                                "epochs, schedule, dev set or progress bar): add to the xdl train it suggests") | \
    dict.fromkeys(("out", "checkpoint_every", "resume"), "xdl train's, not lr-find's (it writes nothing but --plot: "
                                                         "no output directory, checkpoint or resume)") | {
    "lr": "the rate the range test sweeps, from --min-lr to --max-lr"}
# Optuna's names as an Optuna user types them as flags (its optimize's and create_study's keywords, its CLI's
# --study-name and --storage) → xdl tune's way, worded as xdl.tune.search.OPTUNA_OPTIONS_ELSEWHERE's: argparse's
# "unrecognized arguments" said neither that xdl tune has the option nor under which flag
TUNE_REFUSES = {  # (no "; " in a reason: `refuse_flags` joins the reasons with it)
    "n_trials": "Optuna's n_trials, --trials here (--trials 32)",
    "sampler": "Optuna's sampler, --strategy here: tpe (Optuna's TPESampler, seeded by --seed), random, grid or "
               "coarse_to_fine",
    "pruner": "Optuna's pruner, --halving here: --halving 3 stops poor trials at the rungs min-epochs·3^r "
              "(asynchronous successive halving, as Optuna's SuccessiveHalvingPruner(reduction_factor=3))",
    **dict.fromkeys(("study_name", "storage"), "Optuna's: a study is kept in a directory here, --out DIR, which holds "
                                               "its trials.json (xdl.tune.Study.load(DIR) reads it back)"),
    "load_if_exists": "Optuna's load_if_exists, --resume here: it continues the study in --out (a new search refuses "
                      "a directory that holds one)",
    "n_jobs": "Optuna's n_jobs, --execution here: batched trains the trials that share shapes as one batch "
              "(fit_many), dask spreads batches over Dask workers, sequential trains one at a time",
    "direction": "Optuna's direction: a search here maximizes the dev accuracy, its one objective (each trial's dev "
                 "cost is recorded beside it, in trials.json)",
}
# each command's table of the flags it refuses → why: a run's it has no use for, a peer's it names otherwise (hidden
# from its help, taken by `_Refused`, and refused together before any work by `refuse_flags`)
REFUSES = {"gradcheck": GRADCHECK_REFUSES, "lr-find": LR_FIND_REFUSES, "tune": TUNE_REFUSES}


class _Refused(argparse.Action):
    """A flag given to a command that refuses it (`REFUSES`): kept (``refused``) to be refused
    with the others before any work, each named with why (`refuse_flags`), not "unrecognized" or ignored."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.refused = [*getattr(namespace, "refused", []), (option_string, self.dest)]


def add_refused_options(parser: argparse.ArgumentParser, refuses: dict) -> None:
    """A hidden flag for each name of ``refuses`` (`REFUSES`'s table of the command), taking any values
    (`_Refused`): ``--out x`` is then refused saying why, not met with argparse's "unrecognized arguments"."""
    parser.set_defaults(refused=[])
    types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    for name in refuses:
        boolean = types.get(name) == "bool"  # (--progress and --no-progress, as `_add_options` makes them; a peer's
        # flag, no option of a run, takes any values)
        flags = (flag_of(name), "--no-" + flag_of(name)[2:]) if boolean else (flag_of(name),)
        parser.add_argument(*flags, dest=name, action=_Refused, nargs=0 if boolean else "*", default=argparse.SUPPRESS,
                            help=argparse.SUPPRESS)


def refuse_flags(args) -> None:
    """Refuse the flags given to a command that refuses them (`REFUSES`: a run's, a peer's), all of them at once
    in a ValueError, grouped by why: "--epochs, --no-progress are xdl train's, not lr-find's (…)"."""
    why = {}
    for flag, name in getattr(args, "refused", ()):
        why.setdefault(REFUSES[args.command][name], []).append(flag)
    if why:
        raise ValueError("; ".join(f"{', '.join(flags)} {'is' if len(flags) == 1 else 'are'} {reason}"
                                   for reason, flags in why.items()))


def refuse_config_resume(config: TrainConfig, command: str, does: str) -> None:
    """A --config file's ``resume`` given to ``command``, which ``does`` something with a freshly initialized model
    of the options (checks it, tests it): refused, as its --resume flag is (`REFUSES`); it would be ignored."""
    if config.resume:
        raise ValueError(f"--config: resume = {config.resume!r} continues an xdl train run; xdl {command} "
                         f"{does} a freshly initialized model of these options, not a checkpoint's")
