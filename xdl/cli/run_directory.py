"""An ``xdl train`` run's directory: the files its run wrote, known as a run's (`run_outputs`), and a new
run refused where the run there is unfinished (`check_no_unfinished_run`)."""

from __future__ import annotations

import json
from pathlib import Path

import xdl
from xdl.cli.text import shell_word
from xdl.config import RUN_OPTIONS, first_change
from xdl.data.validation import counted
from xdl.serialization import is_xdl_file, read_extra
from xdl.train import BEST_FILE, CHECKPOINT_FILE
from xdl.train.checkpoint_files import read_position, unfinished_run, waited_out_patience
from xdl.train.provenance import verify


def check_no_unfinished_run(out: Path, resumed: Path | None = None) -> str | None:
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
                              f"{shell_word(str(best))} (into this --out or another), {afresh}")
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
                              f"it with --resume {shell_word(str(path.parent))}, {afresh}")
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
                          f"{shell_word(str(path.parent))} goes on from there (a run over by its epochs or early "
                          f"stopping ends as it ended, writing them), {afresh}")


def run_outputs(out: Path) -> dict:
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
