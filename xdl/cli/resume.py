"""What a resume goes on from: ``xdl train --resume``'s run (its directory, its options, its checkpoint
checked: `check_resume`) and ``xdl tune --resume``'s study (`resumed_study`)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from xdl.cli.text import shell_word
from xdl.config import TrainConfig
from xdl.files import check_directory_name
from xdl.lock import check_not_in_use
from xdl.saved_fields import damaged
from xdl.serialization import read_extra
from xdl.train import BEST_FILE, CHECKPOINT_FILE
from xdl.train.checkpoint_files import check_checkpoint_kind, position, resume_path, waited_out_patience
from xdl.train.control import CONTROL_FILE


def resumed_run_directory(resume) -> Path | None:
    """The directory of the run whose checkpoints ``resume`` names (OUT of OUT/checkpoints), where
    a resume with no --out writes; None where the checkpoint lies elsewhere (a best.npz copied apart)."""
    checkpoints = resume_path(resume).parent
    if checkpoints.name != "checkpoints":  # (--resume . from inside it names it too: resolved)
        checkpoints = checkpoints.resolve()
    return checkpoints.parent if checkpoints.name == "checkpoints" else None


def resumed_run(resume, name: str = "--resume") -> dict:
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


def resumed_study(args) -> tuple[dict, list]:
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


def check_resume(config: TrainConfig, args=None) -> tuple[str, dict]:
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
        hint = f"; did you mean --resume {shell_word(str(meant))}?" if meant is not None else ""
        # killed before its first checkpoint.npz: its best.npz, in the checkpoints directory or the run's (named
        # as a checkpoint.npz is, `meant`: "no checkpoint in 'xdl-run'" said nothing of the best epoch there)
        best = next((p / BEST_FILE for p in (given, given / "checkpoints") if (p / BEST_FILE).is_file()), None)
        if meant is None and best is not None:  # (a resume from it into the run's own --out goes on there too)
            hint = f"; it holds a best epoch: --resume {shell_word(str(best))} continues from it"
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


def resumed_without_control(config: TrainConfig, out: Path, extra: dict) -> str | None:
    """A note where the checkpoint ``config`` resumes (its ``extra``, as `check_resume` read it:
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


def _not_a_directory(path: Path) -> str:
    """Why ``path``, neither a directory nor a file (a file is read as a checkpoint), holds no checkpoint:
    it does not exist, or it is something else, a device such as /dev/null ("no such directory" of a
    path that exists sent one looking for a typo)."""
    return "no such directory" if not path.exists() else "not a directory, nor a file"
