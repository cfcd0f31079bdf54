"""A training run's options from the command line (`config_from_args`: its flags over a --config file over
what a resume takes up), and the refusal of a flag that no option of the run reads (`check_flags_read`)."""

from __future__ import annotations

import dataclasses
import re

from xdl.backend import environment_backend
from xdl.cli.parser_flags import command_flags
from xdl.cli.resume import resumed_run, resumed_study, resumed_run_directory
from xdl.config import TrainConfig, flag_of, unread_options
from xdl.files import check_reachable, read_toml


def check_flags_read(config: TrainConfig, args, searched=(), fixed=None, readers=("optimizer", "schedule")) -> None:
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


def check_no_flag_keys(in_file: dict, path, parser, command: str) -> None:
    """A --config file's key that is no option of a run but a flag of an xdl command (``trials``, xdl tune's
    --trials; ``steps``, xdl lr-find's) is refused naming the key, the file and the flag — to be given on the command
    line where it is xdl ``command``'s own —, before any work: a --config file holds a run's options (`TrainConfig`)
    alone, and the closest option that `TrainConfig.from_dict` names for any other unknown key ('steps' → 'eps') is
    not what was meant."""
    flags = command_flags(parser) if in_file else {}
    for key in in_file:
        flag = flags.get(key.replace("-", "_"))
        if flag is not None:
            own = [f for f in flag if f.split()[1] == command]
            way = f"the flag {own[0]}: give it on the command line" if own else \
                f"the flag {' and '.join(flag)}, which xdl {command} has not"
            raise ValueError(f"config file {str(path)!r}: unknown key {key!r}: a config file holds a run's options "
                             f"(xdl train --help), and {key!r} is {way}")


def config_from_args(args, parser) -> TrainConfig:
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    if flags.get("resume") == "":  # as --config '': a typo'd variable, not a wish to start afresh
        raise ValueError("--resume: expected a checkpoint directory, got ''")
    if "backend" not in flags and environment_backend():  # as pip's: a flag, the environment, a config file
        flags["backend"] = environment_backend()
    in_file = read_toml(args.config, "--config") if args.config is not None else {}
    check_no_flag_keys(in_file, args.config, parser, args.command)  # (``parser``: args' own)
    args.config_keys = {key.replace("-", "_") for key in in_file}  # (an option's source, for the errors that name it)
    resume = flags.get("resume", in_file.get("resume"))
    resume_name = "--resume" if "resume" in flags else f"resume in {str(args.config)!r}"  # (the file's key, named)
    if isinstance(resume, str):  # (a name over 255 bytes: a bare "[Errno 36] File name too long")
        check_reachable(resume, "--resume" if "resume" in flags else f"config file {str(args.config)!r}: resume")
    if resume and isinstance(resume, str) and "out" not in flags and "out" not in in_file \
            and (run := resumed_run_directory(resume)) is not None:
        flags["out"] = str(run)  # a resumed run goes on where it was (Keras's BackupAndRestore)
    # a resumed run's or study's own options, under the file and the flags: a resume needs no option again
    saved = resumed_study(args)[0].get("base", {}) or \
        (resumed_run(resume, resume_name) if args.command == "train" else {})
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
