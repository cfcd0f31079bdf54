"""A command's output directory (``--out``): where it is, its files refused before any work where they cannot
be replaced or are no command's, and what the command made of it removed again where it failed."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from xdl.files import check_reachable, check_target, missing_directories
from xdl.train.checkpoint import named_as_model_file


def output_directory_of(args, config):
    """Where the command writes: a search's study (``xdl tune --out``), a run's output directory
    (its options', from a flag or a config file), or a benchmark's ``--out``; None: nowhere."""
    if hasattr(args, "tune_out"):
        return args.tune_out
    if config is not None and args.command == "train":
        return config.out
    return getattr(args, "out", None)


def check_out_reachable(out: Path) -> None:
    """Refuse an output directory, or its checkpoints/ within, whose name cannot be looked up
    (`check_reachable`), naming --out — before the first look at a file in it ("Permission denied:
    'out/checkpoints/checkpoint.npz'", a file the user never named)."""
    for path in (out, out / "checkpoints"):
        check_reachable(path, "--out", out)


def check_out_named_as_directory(out: Path, command: str) -> None:
    """Refuse an output directory named as a model file that is no directory yet (`named_as_model_file`, as
    ``Checkpoint("best.npz")`` is): ``xdl train --out best.npz`` made a directory best.npz holding model.npz."""
    if named_as_model_file(out):
        raise ValueError(f"--out {str(out)!r} is named as a {out.suffix} file, but it names the directory xdl "
                         f"{command} writes its files in (it would be made as a directory of that name): give a "
                         f"directory's name, --out {str(out.with_suffix(''))!r}")


def first_missing(path: Path) -> Path | None:
    """The outermost directory of ``path`` that does not exist yet (``--out a/b/c`` with none of them
    there: ``a``), which the command would make; None when ``path`` exists."""
    missing = missing_directories(path)
    return missing[-1] if missing else None


def remove_empty_tree(directory: Path) -> None:
    """Remove ``directory`` and the directories in it if none holds a file (bottom up: a directory
    that is not empty stays, and so does everything above it)."""
    for path, _, _ in os.walk(directory, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(path)


def refuse_write_protected(paths) -> None:
    """Each of ``paths`` (files in --out the command replaces) that is there and cannot be replaced
    is refused now, naming --out (`check_target`), not once the work it would hold is done."""
    for path in paths:
        if path.exists():
            check_target(path, "--out")


def check_no_foreign_outputs(out: Path, outputs: dict, command: str) -> None:
    """Refuse, before any work, an ``out`` holding a file of a name the command writes that
    ``outputs`` (name → whether a file there is the command's own) does not recognise: the command
    would write over a user's file (``xdl bench optimizers`` refuses alike, `earlier_results`)."""
    foreign = [name for name, ours in outputs.items() if os.path.lexists(out / name) and not ours(out / name)]
    if foreign:
        them = "it" if len(foreign) == 1 else "them"
        raise FileExistsError(f"--out {str(out)!r} holds {', '.join(foreign)} that no {command} wrote: this run "
                              f"would write over {them}; give another --out, or move {them} away")
