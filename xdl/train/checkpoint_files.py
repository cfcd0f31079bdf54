"""A training checkpoint on disk: its file names, where its run stands (`read_position`,
`unfinished_run`), its fields checked before a resume reads them, and its atomic write."""

from __future__ import annotations

import math
import os
from pathlib import Path

from xdl.data.validation import counted
from xdl.files import check_reachable
from xdl.saved_fields import check_fields, damaged, is_count, is_dict, is_list_of, is_number, is_records, optional
from xdl.serialization import is_many_checkpoint, read_extra, save


CHECKPOINT_FILE = "checkpoint.npz"  # the last good, resumable state
BEST_FILE = "best.npz"  # the state of the best epoch by the monitored metric


def resume_path(resume) -> Path:
    """The checkpoint file a loop's ``resume=`` names: the `CHECKPOINT_FILE` in the directory a
    `Checkpoint` wrote to, or that file itself. Anything else is refused, naming ``resume``."""
    if isinstance(resume, bool) or not isinstance(resume, str | os.PathLike):
        raise TypeError(f"resume must be the directory a Checkpoint wrote to (a str or path) or None, got {resume!r}")
    if not os.fspath(resume):
        raise ValueError("resume: '' names no directory; give the directory a Checkpoint wrote to, or None to "
                         "start afresh")
    path = Path(resume)
    check_reachable(path, "resume")  # (a name over the file system's 255 bytes: a bare "[Errno 36] File name too long")
    return path if path.is_file() else path / CHECKPOINT_FILE


def position(epoch: int, step: int) -> str:
    """Where a run is, for messages: "after epoch 3" or "after step 5 of epoch 4" (``epoch``:
    epochs completed, ``step``: steps into the next)."""
    return f"after step {step} of epoch {epoch + 1}" if step else f"after epoch {epoch}"


def upcoming(epoch: int, step: int) -> str:
    """Where a run goes on, for messages: "epoch 4" or "step 6 of epoch 4" (``epoch``: epochs
    completed, ``step``: steps into the next), as `position` says where it is."""
    return f"step {step + 1} of epoch {epoch + 1}" if step else f"epoch {epoch + 1}"


def fewest_epochs(epoch: int, step: int) -> tuple[int, str, str]:
    """The fewest epochs a resumed run may ask for from a checkpoint ``epoch`` epochs and ``step``
    steps in, what it has trained and the advice, in words: n = epoch, or epoch + 1 inside an epoch
    (step > 0) — with epochs = epoch there, the run would end holding ``step`` steps of an epoch that
    no record of its history has, said to be over "as it ended" where it had been stopped partway."""
    if step:
        return (epoch + 1, f"{counted(epoch, 'epoch')} and {counted(step, 'step')} of epoch {epoch + 1}",
                f"ask for {epoch + 1} (to finish the epoch it stopped in) or more")
    return epoch, counted(epoch, "epoch"), f"ask for {epoch} (to end the run as it ended) or more"


def read_position(path) -> tuple[dict, int, int]:
    """A training checkpoint's extra (`read_extra`) and where its run stands: (extra, epochs done,
    step in the next); a ValueError saying why when no run can continue from it (damaged, or not a
    checkpoint: no position in it)."""
    extra, _ = read_extra(path)  # (its own errors: ValueErrors naming the file)
    if not isinstance(extra, dict) or "epoch" not in extra:
        raise ValueError(f"{str(path)!r} is a model file, not a training checkpoint (it holds no position to go on "
                         "from)")
    try:
        return extra, int(extra["epoch"]), int(extra.get("step", 0))
    except (TypeError, ValueError) as e:  # (a value no xdl wrote)
        raise ValueError(f"{str(path)!r} holds no training position it can read ({e})") from None


def unfinished_run(path) -> str | None:
    """Where the run whose checkpoint is ``path`` stands if it is unfinished — interrupted, stopped
    by a divergence, models of a batch still training: a resume goes on from it — else None (over
    by its epochs or a stop, no file, or one no run could continue from)."""
    try:
        extra, epoch, step = read_position(path)
    except (OSError, ValueError):
        return None
    if step:
        return position(epoch, step)
    if is_many_checkpoint(extra):
        training = list(extra.get("status", ())).count("training")
        return f"{training} of its models still training {position(epoch, 0)}" if training else None
    epochs = extra.get("epochs", ((extra.get("run_info") or {}).get("config") or {}).get("epochs"))  # (older: xdl train's)
    history = extra.get("history") or {}
    # (an older xdl saved its last checkpoint before it set stopped_epoch: its stop is in stopped_by alone, or,
    # before that, in its EarlyStopping's wait alone)
    stopped = history.get("stopped_epoch") is not None or history.get("stopped_by") is not None or \
        waited_out_patience(extra)
    return f"{position(epoch, 0)} of {epochs}" if isinstance(epochs, int) and epoch < epochs and not stopped else None


def waited_out_patience(extra: dict) -> bool:
    """Whether the `xdl train` run of checkpoint ``extra`` was over by early stopping: its
    EarlyStopping's wait had reached the run's patience (its run_info's) — what its resume finds
    (`EarlyStopping.on_train_begin`). A checkpoint of the Python API records no patience: False."""
    patience = ((extra.get("run_info") or {}).get("config") or {}).get("patience")
    # (a checkpoint of an xdl before provenance: xdl train's callbacks were these two with a patience)
    names = (extra.get("provenance") or {}).get("callbacks", ["EarlyStopping", "Checkpoint"])
    states = extra.get("callbacks")
    if not (is_count(patience, 1) and isinstance(names, list) and isinstance(states, list) and "EarlyStopping" in names):
        return False
    state = dict(enumerate(states)).get(names.index("EarlyStopping"))
    return isinstance(state, dict) and is_count(state.get("wait")) and state["wait"] >= patience


def check_checkpoint_kind(extra: dict | None, path, many: bool, who: str = "resume") -> None:
    """``extra`` (`read_extra` of ``path``) is a checkpoint of one `Trainer` run (``many`` False)
    or of a `fit_many` batch (True); else raise naming what the file is and what resumes it."""
    extra = extra or {}
    if is_many_checkpoint(extra):
        found, fits = "a checkpoint of fit_many (a batch of models; fit_many(..., resume=...) continues it)", many
    elif "optimizer_t" in extra:
        found, fits = ("a checkpoint of one Trainer run (Trainer.fit(..., resume=...) or xdl train --resume "
                       "continues it)"), not many
    else:
        found, fits = "a model file, not a training checkpoint", False
    if not fits:
        raise ValueError(f"{who}: {str(path)!r} is {found}")
    if not many:
        check_run_state(extra, path, who)


# xdl's measures in a history record and what each holds (or null): a resume checks them in the checkpoint
# (`check_run_state`), and a callback that rewrites one is refused where it does (`callback.check_record`)
RECORD_MEASURES = {"train_cost": ("a finite number", math.isfinite), "dev_cost": ("a finite number", math.isfinite),
                   "train_accuracy": ("a number in [0, 1]", lambda v: 0 <= v <= 1),
                   "dev_accuracy": ("a number in [0, 1]", lambda v: 0 <= v <= 1)}


def check_run_state(extra: dict, path, who: str = "resume") -> None:
    """The fields of a `Trainer` checkpoint's ``extra`` that a resume reads as they are — its
    position, history, callbacks' states, the run's records — of the kinds `save_checkpoint` writes
    (`xdl.saved_fields`), and the history one record per epoch done: records 1..epoch (len = epoch,
    record i's epoch i). A damaged file or one edited by hand is refused here, naming the field,
    before anything is read into the run; without it a history missing epochs was resumed (its
    records [1, 2, 7, 8]), a fractional epoch trained one more, a field deleted was a KeyError."""
    check_fields(extra, (("epoch", is_count, "an integer ≥ 0"),
                         ("step", optional(is_count), "an integer ≥ 0"),
                         ("epochs", optional(lambda v: is_count(v, 1)), "an integer ≥ 1"),
                         ("seed", optional(is_count), "an integer ≥ 0 or null"),
                         ("start_cost", optional(is_number), "a number or null"),
                         ("l2_now", optional(lambda v: is_number(v) and 0 <= v < math.inf), "a number ≥ 0 or null"),
                         ("l1_now", optional(lambda v: is_number(v) and 0 <= v < math.inf), "a number ≥ 0 or null"),
                         ("module_settings", optional(is_dict), "a dict or null"),
                         ("partial", optional(is_dict), "a dict or null"),
                         ("provenance", optional(is_dict), "a dict or null"),
                         ("run_info", optional(is_dict), "a dict or null"),
                         ("callbacks", lambda v: is_list_of(v, is_dict), "a list of the callbacks' states (dicts)"),
                         ("history", is_records, "a dict of records (dicts)")),
                 path, who, required=("epoch", "callbacks", "history"))
    records, epoch = extra["history"]["records"], extra["epoch"]
    if len(records) != epoch:
        raise damaged(path, f"its history holds {counted(len(records), 'record')} for the {counted(epoch, 'epoch')} "
                            "it trained", who)
    for i, record in enumerate(records, 1):
        if record.get("epoch") != i or not is_count(record.get("epoch")):
            raise damaged(path, f"its history's record {i} is of epoch {record.get('epoch')!r:.40}", who)
        # the run's measures (a callback may write its own columns, and "lr" or "seconds" its own way: a list
        # of each group's rate, as PyTorch's get_last_lr() gives them)
        check_fields(record, [(key, optional(lambda v, fits=fits: is_number(v) and fits(v)), f"{what} or null")
                              for key, (what, fits) in RECORD_MEASURES.items()], path, who,
                     whose=f"its history's record {i}'s")
    check_fields(extra["history"], [(key, optional(lambda v: is_count(v, 1)), "an integer ≥ 1 or null")
                                    for key in ("stopped_epoch", "best_epoch")], path, who, whose="its history's")


def write_checkpoint(model, path, when: str, extra: dict, arrays: dict) -> Path:
    """`xdl.save` of a training state (``when``: its `position`). A failed write — a full disk, a
    directory made read-only — raises naming the file and when, and says what the file still holds
    (writes are atomic: the previous state, untouched)."""
    path = Path(path)
    try:
        return save(model, path, extra=extra, extra_arrays=arrays)
    except (OSError, MemoryError) as e:  # (out of memory while writing: said as a failed write, the file named)
        kept = f"; {str(path)!r} holds what it held before" if path.is_file() else ""
        why = (e.strerror if e.filename == str(path) and e.strerror else e) if isinstance(e, OSError) \
            else f"out of memory ({e})" if str(e) else "out of memory"  # (the path is named here)
        raise OSError(f"writing the checkpoint {str(path)!r} {when} failed: {why}{kept}") from e
