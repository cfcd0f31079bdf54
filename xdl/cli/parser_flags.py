"""The flags an xdl command line shows: each of its (sub)commands' actions at any depth (`shown_actions`), and
those that are no option of a run (`command_flags`), which a --config file's key must not be."""

from __future__ import annotations

import argparse
import dataclasses

from xdl.config import TrainConfig


def shown_actions(parser: argparse.ArgumentParser, command=()):
    """Each (command's words, action) of ``parser`` and its subcommands, at any depth (("bench", "optimizers"),
    its --out), that its help shows: a refused peer's hidden flag left out."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from shown_actions(sub, (*command, name))
        elif action.help != argparse.SUPPRESS:
            yield command, action


def command_flags(parser: argparse.ArgumentParser) -> dict:
    """Every flag of ``parser``'s commands that is no option of a run (`TrainConfig`), by its name as a config
    file's key would spell it (``min_lr``) → the commands' flags ("xdl lr-find --min-lr"); hidden ones (a refused
    peer's) and an option's --no- form (--no-batch-norm is batch_norm = false) are left out."""
    options = {f.name for f in dataclasses.fields(TrainConfig)} | {"help", "version", "config"}
    flags = {}
    for command, action in shown_actions(parser):
        for flag in action.option_strings:
            name = flag.lstrip("-").replace("-", "_")
            if flag.startswith("--") and name not in options and name.removeprefix("no_") not in options:
                flags.setdefault(name, []).append(" ".join(("xdl", *command, flag)))
    return flags
