"""Callbacks: code that runs at the edges of `Trainer.fit` (early stopping, checkpoints, your own).

A callback's state goes into checkpoints (`state_dict` / `load_state_dict`), so a resumed run
continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
import re
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xdl.caller import warn_caller
from xdl.data.validation import check_bool, check_int, check_number
from xdl.files import atomic_write, check_target, check_writable_dir, json_number, parse_toml
from xdl.optim.optimizer import Optimizer, check_rate, rates_of_their_own
from xdl.saved_fields import (check_fields, damaged, is_count, is_dict, is_list_of, is_number, is_records,
                               optional)
from xdl.serialization import is_many_checkpoint, read_extra, save
from xdl.train.history import KERAS_MONITORS
from xdl.train.interrupt import Interrupted

CHECKPOINT_FILE = "checkpoint.npz"  # the last good, resumable state
BEST_FILE = "best.npz"  # the state of the best epoch by the monitored metric
MONITORED = ("dev_cost", "dev_accuracy", "train_cost", "train_accuracy")  # the History columns a callback can watch


# what a Keras callback reads from itself → where an xdl hook finds it (`Callback.__getattr__`)
KERAS_ATTRIBUTES = {"model": "trainer.model (and trainer.optimizer, trainer.history)",
                    "params": "trainer.epochs, trainer.batch_size"}

# Keras's EarlyStopping options → the way here (`EarlyStopping.__init__`)
KERAS_STOPPING_OPTIONS = {
    "restore_best_weights": "it is restore_best here (True by default: the best epoch's weights are put back at the "
                            "end, also when the run went to its last epoch)",
    "mode": "the direction follows monitor: costs are minimized, accuracies maximized",
    "baseline": "not offered: the first epoch is the first best",
    "start_from_epoch": "not offered: every epoch counts (a larger patience waits out a slow start)",
    "verbose": "the stop is said in history.stopped_by and history.stopped_epoch (xdl train prints it)",
}


def check_monitor(monitor, who: str) -> str:
    """``monitor`` if it is one of `MONITORED`, else a ValueError naming ``who`` (a typo would
    watch nothing: caught before any epoch trains)."""
    if not isinstance(monitor, str) or monitor not in MONITORED:  # (an array: NumPy's "truth value … ambiguous")
        keras = KERAS_MONITORS.get(monitor) if isinstance(monitor, str) else None
        hint = f" (Keras's {monitor!r} is {keras!r} here)" if keras else ""
        raise ValueError(f"{who}: monitor must be one of {', '.join(MONITORED)}, got {monitor!r}{hint}")
    return monitor


def check_monitored(callbacks, dev, accuracy: bool) -> None:
    """What the callbacks monitor is measured by the run, checked before any epoch: an
    `EarlyStopping` on a dev metric needs ``dev`` (it would fail at the first epoch's end), and an
    accuracy needs a loss that has one (``accuracy``: a classification's; a `Checkpoint` would keep
    the best train cost instead, saying nothing)."""
    for cb in callbacks:
        if isinstance(cb, EarlyStopping | Checkpoint) and "accuracy" in cb.monitor and not accuracy:
            raise ValueError(f"{type(cb).__name__} monitors {cb.monitor!r}, but this run's loss measures no "
                             "accuracy (it is not a classification's: an xdl Loss whose predicts is 'classes' or "
                             "'labels', as SoftmaxCrossEntropy and its subclasses): monitor dev_cost or train_cost")
        if dev is None and isinstance(cb, EarlyStopping) and cb.monitor.startswith("dev_"):
            raise ValueError(f"EarlyStopping monitors {cb.monitor!r}, which this run does not measure: pass "
                             "dev=(X_dev, y_dev) to fit for dev metrics (or monitor a train one)")


def continues_run(trainer) -> bool:
    """Whether this fit goes on with a run — a resume, or a later ``fit`` of the same trainer (after
    Ctrl-C, a stop, or with more epochs) — rather than starting one: callbacks then keep their state,
    so the run goes on as if it had never stopped."""
    return bool(trainer.resumed or trainer.epoch or trainer.step)


# id(callback) -> [a weak reference to it, one to the trainer whose run its state is, whether it fits now]
_RUNS: dict[int, list] = {}
_RUNS_LOCK = threading.Lock()


def keeps_state(cb) -> bool:
    """Whether ``cb`` keeps state of a run (its class has a ``state_dict`` of its own, as
    `EarlyStopping`, `Checkpoint` and `Control` have): state that is one run's."""
    return type(cb).state_dict is not Callback.state_dict


def _run_of(cb) -> list | None:
    entry = _RUNS.get(id(cb))
    return entry if entry is not None and entry[0]() is cb else None  # (an id reused by another object: none)


def check_callbacks_own(trainer, continuing: bool) -> None:
    """Each callback of ``trainer`` that keeps state (`keeps_state`) is in no other trainer's fit
    running now, and — for a fit that goes on with the run (``continuing``: a later fit, not a
    resume, which loads the checkpoint's state) — was in no other trainer's fit since this one's
    last: its state (a best, a wait, a best.npz) is then that run's, and this fit would compare with
    it, stop by it, restore its weights into this model, or write over that run's checkpoint. Keras's
    EarlyStopping starts afresh at each fit (its ModelCheckpoint keeps its best); here a later fit
    goes on with the callbacks' state, so one instance given to two trainers is refused, naming it,
    before anything changes."""
    for cb in trainer.callbacks:
        entry = _run_of(cb) if keeps_state(cb) else None
        if entry is None or entry[1]() is trainer:
            continue
        if entry[2]:
            raise RuntimeError(f"callbacks: this {type(cb).__name__} is in the fit of another trainer running now; "
                               "its state (state_dict) is one run's: give each trainer its own callback "
                               "(copy.deepcopy(callback), or make another)")
        if continuing:
            raise ValueError(f"callbacks: this {type(cb).__name__} was in another trainer's fit since this trainer's "
                             "last, so its state (state_dict) is that run's now, not this one's: this fit would go "
                             "on from another run's (its best, its patience, its checkpoint); give each trainer its "
                             "own callback (copy.deepcopy(callback), or make another), or resume this run from its "
                             "checkpoint")


@contextlib.contextmanager
def callbacks_held(trainer, continuing: bool):
    """Within the block, ``trainer``'s callbacks that keep state are its fit's (`check_callbacks_own`,
    checked again here under a lock: two threads starting fits at once); after it, each is known
    as the state of ``trainer``'s run — but one the fit failed before it appended to the list the
    block yields (each callback once its ``on_train_begin`` returned; all of them once a resume
    began loading their state): that one is still the run's it was before."""
    held = [cb for cb in trainer.callbacks if keeps_state(cb)]
    with _RUNS_LOCK:
        check_callbacks_own(trainer, continuing)
        before = {id(cb): _run_of(cb) for cb in held}
        for cb in held:
            key = id(cb)
            _RUNS[key] = [weakref.ref(cb, lambda _, key=key: _RUNS.pop(key, None)), weakref.ref(trainer), True]
    told = []  # the callbacks whose state this fit may have changed (their on_train_begin returned, a resume's load)
    try:
        yield told
    except BaseException:
        # one this fit never changed (a resume's checkpoint missing or another run's, a Checkpoint refusing in its own
        # on_train_begin) is still the run's it was — taken as this trainer's, that run's later fit was refused; one
        # a resume loaded the checkpoint's state into (a later callback's load_state_dict failed) is not: put back,
        # that run's later fit went on from the checkpoint's best and restored its weights into its own model
        with _RUNS_LOCK:
            for cb in held:
                if any(cb is t for t in told):
                    continue
                if before[id(cb)] is None:
                    _RUNS.pop(id(cb), None)
                else:
                    _RUNS[id(cb)] = before[id(cb)]
        raise
    finally:
        with _RUNS_LOCK:
            for cb in held:
                entry = _run_of(cb)
                if entry is not None:
                    entry[2] = False


def load_resumed(trainer, checkpoint, flags: tuple, told: list) -> None:
    """``trainer.load_checkpoint(checkpoint)`` within a resuming fit (a `Trainer`'s or a
    `ManyTrainer`'s). Refused, it leaves the trainer's ``stop_training`` and ``resumed`` as they were
    (``flags``) and, unless it failed partway (``_mid_step``: some callbacks may hold the
    checkpoint's state), its callbacks their run's; loaded, they hold the checkpoint's state: this
    fit's (``told``, `callbacks_held`'s list)."""
    try:
        trainer.load_checkpoint(checkpoint)
    except BaseException:
        trainer.stop_training, trainer.resumed = flags
        if trainer._mid_step:
            told.extend(trainer.callbacks)
        raise
    told.extend(trainer.callbacks)


_FITTING: set[int] = set()  # id of each trainer (a `Trainer`, a `ManyTrainer`) whose fit runs now (`fitting_alone`)


@contextlib.contextmanager
def fitting_alone(trainer, who: str, maker: str):
    """Within the block, the fit of ``trainer`` (``who``: "trainer" or "batch", made by ``maker``)
    is its only one: a second fit of it meanwhile — from another thread (a notebook's cell run
    again while a background thread trains), or from one of its callbacks — is refused before it
    checks or changes anything. Two fits of one trainer at once interleaved their steps over one
    model, optimizer and position: the second was told the first "was stopped inside a step (a
    second Ctrl-C …)", or both trained, one failing at a backward through weights the other had
    written, and the run's history held both fits' epochs (26 records for 20 epochs)."""
    with _RUNS_LOCK:
        if id(trainer) in _FITTING:
            raise RuntimeError(f"fit: this {who} is fitting already (a fit of it in another thread, or called from "
                               "its own callback); a run trains in one fit at a time: wait for that fit to end "
                               "(a callback's trainer.stop_training = True, or a Control file's stop = true, ends it "
                               f"early), or make a new {maker}")
        _FITTING.add(id(trainer))
    try:
        yield
    finally:
        with _RUNS_LOCK:
            _FITTING.discard(id(trainer))


def measures_other_data(trainer, monitor: str) -> bool:
    """Whether this fit of ``trainer`` measures ``monitor`` on other data than the fit before it
    (``trainer.data_changed``: a later fit fine-tuning on new data, or given a dev set the fit before
    had not): a best kept from there is no yardstick here — early stopping compared the new dev
    cost with the old data's best, stopped the new fit while its cost fell, and restored the old
    fit's weights. Such a fit's bests start afresh, as Keras's fit starts its callbacks'."""
    return monitor.split("_")[0] in getattr(trainer, "data_changed", ())


def resume_path(resume) -> Path:
    """The checkpoint file a loop's ``resume=`` names: the `CHECKPOINT_FILE` in the directory a
    `Checkpoint` wrote to, or that file itself. Anything else is refused, naming ``resume``."""
    if isinstance(resume, bool) or not isinstance(resume, str | os.PathLike):
        raise TypeError(f"resume must be the directory a Checkpoint wrote to (a str or path) or None, got {resume!r}")
    if not os.fspath(resume):
        raise ValueError("resume: '' names no directory; give the directory a Checkpoint wrote to, or None to "
                         "start afresh")
    path = Path(resume)
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
        return (epoch + 1, f"{epoch} epochs and {step} step{'s' if step != 1 else ''} of epoch {epoch + 1}",
                f"ask for {epoch + 1} (to finish the epoch it stopped in) or more")
    return epoch, f"{epoch} epochs", f"ask for {epoch} (to end the run as it ended) or more"


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
                         ("partial", optional(is_dict), "a dict or null"),
                         ("provenance", optional(is_dict), "a dict or null"),
                         ("run_info", optional(is_dict), "a dict or null"),
                         ("callbacks", lambda v: is_list_of(v, is_dict), "a list of the callbacks' states (dicts)"),
                         ("history", is_records, "a dict of records (dicts)")),
                 path, who, required=("epoch", "callbacks", "history"))
    records, epoch = extra["history"]["records"], extra["epoch"]
    if len(records) != epoch:
        raise damaged(path, f"its history holds {len(records)} records for the {epoch} epochs it trained", who)
    for i, record in enumerate(records, 1):
        if record.get("epoch") != i or not is_count(record.get("epoch")):
            raise damaged(path, f"its history's record {i} is of epoch {record.get('epoch')!r:.40}", who)
        # the run's measures (a callback may write its own columns, and "lr" or "seconds" its own way: a list
        # of each group's rate, as PyTorch's get_last_lr() gives them)
        check_fields(record, [(key, optional(lambda v: is_number(v) and math.isfinite(v)), "a finite number or null")
                              for key in ("train_cost", "dev_cost")]
                     + [(key, optional(lambda v: is_number(v) and 0 <= v <= 1), "a number in [0, 1] or null")
                        for key in ("train_accuracy", "dev_accuracy")], path, who, whose=f"its history's record {i}'s")
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


class Callback:
    """Override what you need. ``order``: callbacks run by increasing order (checkpoints last, so
    they save the other callbacks' state of the same epoch).

    A callback with state of its own keeps it across a resume through ``state_dict()`` — a pair
    (a dict of JSON values, a dict of NumPy arrays), stored in each checkpoint — and
    ``load_state_dict(state, arrays)``, called with that pair when a run resumes, before
    ``on_train_begin``. A rate a callback set and a schedule it cleared (``trainer.schedule =
    None``) are part of the checkpoint; code it set (another schedule, ``opt.lr = schedule``) is not:
    it sets it again in ``on_train_begin`` when ``trainer.resumed``, from its own state (a resume
    warns where none did). A value a callback adds to the epoch's ``record`` is a
    number (or another JSON value): it becomes a column of the history. A callback with state is
    one run's: a later fit goes on with it, so one given to another trainer's fit since (or to two
    fits at once) is refused (`check_callbacks_own`); give each trainer its own.
    """

    order = 0

    def __repr__(self) -> str:
        """``Name(setting=value, …)``: the arguments of its ``__init__`` that it keeps as attributes of
        the same name (``EarlyStopping(monitor='dev_cost', patience=5, …)``)."""
        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self" and n in vars(self)]
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"

    def __getattr__(self, name: str):
        """Keras's ``self.model`` and ``self.params`` (which Keras sets through ``set_model`` and
        ``set_params``) named with xdl's way — each hook is given the trainer — where a callback reads
        them: "'X' object has no attribute 'model'" said nothing of it, at the first epoch's end."""
        if name in KERAS_ATTRIBUTES:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}: xdl gives each hook the "
                                 f"trainer — {KERAS_ATTRIBUTES[name]} — as on_epoch_end(self, trainer, record), "
                                 f"not Keras's self.{name}")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def on_train_begin(self, trainer) -> None: ...

    def on_epoch_end(self, trainer, record: dict) -> None: ...

    def on_step_end(self, trainer, cost: float) -> None:
        """After each training step (Keras's on_train_batch_end): ``cost`` is the step's mean cost (not
        Keras's logs["loss"], the epoch's running mean up to the batch),
        ``trainer.step`` the steps of epoch ``trainer.epoch + 1`` done. Its cost is read from the
        device at every step, which a run on a GPU otherwise avoids, so a `Trainer` calls it only for
        a callback that overrides it (`fit_many` refuses one). A stop asked here
        (``trainer.stop_training = True``) ends the run after this step; mid-epoch, as Ctrl-C does —
        no record of the epoch, a resumable checkpoint through each `Checkpoint`, and a later fit or
        a resume goes on from the next step, the same run. What it changes is read by the next step, as
        at an epoch's start: a ``model.eval()`` is undone (the steps train in the fit's modes), a parameter
        frozen is refused before another step of the epoch. An error raised here leaves the run there
        too (a later fit goes on); a checkpoint written here (``trainer.save_checkpoint(path)``, every
        n steps) holds the epoch so far, and resumes as one written at a stop. A step whose cost
        diverges raises its FloatingPointError before the hooks see it, and ``on_train_end`` is not
        called then: a learning-rate finder that puts the weights back does so around ``fit`` too
        (and the real run is a new `Trainer`'s: a later fit goes on with the finder's run)."""

    def on_train_end(self, trainer) -> None: ...

    def on_exception(self, trainer, error: BaseException) -> None:
        """When training ends by an exception instead of ``on_train_end`` (Lightning's on_exception):
        a divergence's FloatingPointError, an error a callback raised, Ctrl-C's `Interrupted` (not one
        with ``over``: its run had ended, and ``on_train_end`` was called) — any
        raised after this callback's ``on_train_begin`` returned, up to the last callback's
        ``on_train_end`` (a later callback's ``on_train_begin`` or ``on_train_end`` included), after the
        run was left as the error leaves it (its resumable checkpoint written, for Ctrl-C). The error
        goes on to the caller once every callback's hook ran; the first error a hook raises goes instead
        (every hook still runs), the training's error as its context. A learning-rate finder puts the
        weights back here as in ``on_train_end``."""

    def on_checkpoint(self, trainer) -> None:
        """After a resumable checkpoint was written (it holds this callback's state as it is now)."""

    def state_dict(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able values, arrays) to store in a checkpoint."""
        return {}, {}

    def load_state_dict(self, state: dict, arrays: dict[str, np.ndarray]) -> None: ...


def callback_state(cb) -> tuple[dict, dict]:
    """``cb.state_dict()``, checked when a checkpoint is written: a callback's mistake named (a
    Lightning-style state_dict returns one dict), not an unpacking error or a JSON one elsewhere."""
    result, name = cb.state_dict(), f"{type(cb).__name__}.state_dict"
    if not (isinstance(result, tuple) and len(result) == 2 and all(isinstance(part, dict) for part in result)):
        raise TypeError(f"{name} must return a pair (a dict of JSON values, a dict of NumPy arrays), as "
                        f"xdl's Callback.state_dict does; got {type(result).__name__} {result!r:.80}")
    try:
        json.dumps(result[0], default=json_number)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: its first dict is written as JSON (numbers, strings, lists, dicts; arrays go in "
                        f"the second): {e}") from None
    key = _key_not_str(result[0])
    if key is not None:  # JSON writes it as a string: load_state_dict would get {"1": …} for {1: …}, silently
        raise TypeError(f"{name}: its first dict is written as JSON, whose keys are strings: {key!r} "
                        f"({type(key).__name__}) would come back on resuming as {json.dumps({key: 0})[1:-4]}; "
                        "use string keys (or a list of pairs)")
    return result


def _key_not_str(value):
    """The first dict key in ``value`` (a JSON value: dicts and lists within) that is not a string, or None."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return k
            found = _key_not_str(v)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for v in value:
            found = _key_not_str(v)
            if found is not None:
                return found
    return None


def load_callback_state(cb, state: dict, arrays: dict) -> None:
    """``cb.load_state_dict(state, arrays)`` on resuming, its failure named as the callback's."""
    try:
        cb.load_state_dict(state, arrays)
    except Exception as e:
        raise ValueError(f"resume: {type(cb).__name__}.load_state_dict(state, arrays) failed on the checkpoint's "
                         f"state {state!r:.120}: {type(e).__name__}: {e}") from e


def check_record(record: dict, cb) -> None:
    """Each value of an epoch's record is JSON (what the history and the checkpoint write), after
    callback ``cb`` ran on it: a column it added as an array is named now, with it, not as a
    checkpoint that cannot be written."""
    for column, value in record.items():
        try:
            json.dumps(value, default=json_number)
        except (TypeError, ValueError):
            raise TypeError(f"the record of epoch {record.get('epoch')} holds {column!r} = {value!r:.80} "
                            f"({type(value).__name__}) after {type(cb).__name__}.on_epoch_end: a column holds "
                            "numbers (or other JSON values): add float(value)") from None


def _identity(path) -> tuple | None:
    """What tells a file written apart from one written over it since (an atomic write makes a new
    file): (inode, size, modification time in ns), None where there is none."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


def _written(trainer) -> dict:
    """The checkpoint files ``trainer``'s run wrote or resumed from: resolved path → `_identity`."""
    return trainer.__dict__.setdefault("_checkpoints_written", {})


def _loads(model) -> int:
    """How many times ``model.load_state_dict`` wrote into the model (`xdl.load(path, model=)` too)."""
    return model.__dict__.get("_state_loads", 0)


def _same_parameters(model, state: dict | None) -> bool:
    """Whether ``model``'s parameters are those of ``state``, bit for bit (its buffers aside: a forward
    pass in training mode moves batch norm's running statistics)."""
    return state is not None and all(name in state and np.array_equal(p.numpy(), state[name])
                                     for name, p in model.named_parameters())


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``monitor``: one of `MONITORED` — the run's own columns, not one a callback adds — "dev_cost" by
    default (minimized; accuracies are maximized).
    ``restore_best``: at the end of training, put back the weights of the best epoch (also when
    the run went to its last epoch), and record it as ``history.best_epoch``. A later ``fit`` of
    the same trainer goes on with the run: from its last weights (put back over the best, unless
    weights of the user's own were loaded since), with its best and wait (patience starts afresh
    after a stop of its own: that fit was asked to train on) — unless it measures the monitor on
    other data (`measures_other_data`): then it starts afresh, from the weights the model holds.
    A run resumed from a checkpoint of its stop stays stopped, ending as it ended, unless the
    patience is now larger than the epochs it waited.
    """

    def __init__(self, monitor: str = "dev_cost", patience: int = 5, min_delta: float = 0.0,
                 restore_best: bool = True, **options):
        for name in options:  # (Keras's restore_best_weights=True said Python's "unexpected keyword argument")
            way = KERAS_STOPPING_OPTIONS.get(name, "not an option of EarlyStopping")
            raise TypeError(f"EarlyStopping() takes no option {name}=: {way}")
        if isinstance(patience, int | np.integer) and not isinstance(patience, bool) and patience == 0:
            # Keras's default, which stops at the first epoch without improvement: patience=1 here
            raise ValueError("EarlyStopping: patience must be a positive integer, got 0 (patience=1 stops at the "
                             "first epoch without improvement, as Keras's patience=0 does)")
        check_int(patience, "EarlyStopping: patience")
        check_bool(restore_best, "EarlyStopping: restore_best")
        check_number(min_delta, "EarlyStopping: min_delta", "a number ≥ 0", lambda d: 0 <= d < math.inf)
        check_monitor(monitor, "EarlyStopping")
        self.monitor, self.patience, self.min_delta, self.restore_best = monitor, patience, float(min_delta), restore_best
        self.sign = -1.0 if "accuracy" in monitor else 1.0  # compare sign·value, smaller is better
        self._reset()

    def _reset(self):
        self.best, self.best_epoch, self.wait, self.best_state = math.inf, None, 0, None
        self.run_state = None  # the run's last weights, when the best were restored over them
        self._loads_at_end = None  # the model's count of loads after that restore (`_loads`)

    def on_train_begin(self, trainer) -> None:
        # what this fit changes before its first step, put back if it ends there (`on_exception`)
        self.__dict__.pop("_before", None)
        self._before = ((trainer.epoch, trainer.step), dict(self.__dict__), False)
        if not continues_run(trainer) or measures_other_data(trainer, self.monitor):
            self._reset()  # (a fit on other data trains on from the weights the model holds: the best, restored)
            return
        if self.run_state is not None and not trainer.resumed and _loads(trainer.model) == self._loads_at_end \
                and _same_parameters(trainer.model, self.best_state):
            # the run goes on from where it was, not from its best — unless the user has put weights of
            # their own in since, loaded (even the best again) or written (a resume has the checkpoint's)
            trainer.model.load_state_dict(self.run_state)
            self._before = (*self._before[:2], True)
        self.run_state = None
        if self.wait >= self.patience:
            if trainer.resumed:  # a run resumed from a stop of its own stays stopped, ending as it ended (its
                trainer.stop_training, trainer.history.stopped_by = True, self._reason()  # best restored)
            else:  # a later fit of the run after it stopped: it trains on, patience anew (as Keras's fit)
                self.wait = 0

    def _reason(self) -> str:
        return f"{self.monitor.replace('_', ' ')} did not improve for {self.wait} epoch{'s' * (self.wait != 1)}"

    def on_epoch_end(self, trainer, record: dict) -> None:
        value = record.get(self.monitor)
        if value is None and record.get("best_model", 0) is None:
            return  # an epoch of `fit_many` in which no model trained to its end (the last ones diverged)
        if value is None:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which this run does not measure "
                             "(pass dev=(X_dev, y_dev) to fit for dev metrics)")
        score = self.sign * value
        if score < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = score, record["epoch"], 0
            if self.restore_best:
                self.best_state = trainer.model.state_dict()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop_training, trainer.history.stopped_by = True, self._reason()

    def on_train_end(self, trainer) -> None:
        self.__dict__.pop("_before", None)
        if self.restore_best and self.best_state is not None:
            self.run_state = trainer.model.state_dict()  # for a later fit of the run (`on_train_begin`)
            trainer.model.load_state_dict(self.best_state)
            self._loads_at_end = _loads(trainer.model)
            trainer.history.best_epoch = self.best_epoch

    def on_exception(self, trainer, error) -> None:
        """A fit that ended before its first step — refused by a later callback's ``on_train_begin``
        (a `Checkpoint` finding another run's checkpoint in its directory), or by its own error —
        leaves this callback and the model as they were: the best epoch's weights, not the run's last
        ones put in for the steps that never ran, and the best and wait that fit had reset."""
        before = self.__dict__.pop("_before", None)
        if before is None or not ended_before_its_first_step(trainer, before[0]):
            return  # (it trained: the run is where the error left it)
        _, state, swapped = before
        self.__dict__.update(state)
        if swapped:  # the best back in the model, as the fit before left it (a later fit swaps it again)
            trainer.model.load_state_dict(self.best_state)
            self._loads_at_end = _loads(trainer.model)

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}, dict(self.best_state or {})

    def load_state_dict(self, state, arrays):
        self.best, self.best_epoch, self.wait = float(state["best"]), state["best_epoch"], int(state["wait"])
        self.best_state = dict(arrays) or None


def ended_before_its_first_step(trainer, position: tuple) -> bool:
    """Whether a fit of ``trainer`` that began at ``position`` (its epoch and step then) ended before
    its first step ran — refused by a callback's ``on_train_begin``, or by an error before the step:
    what a callback's ``on_train_begin`` set aside for the steps is then put back."""
    return position == (trainer.epoch, trainer.step) and not getattr(trainer, "_mid_step", False)


@contextlib.contextmanager
def callbacks_told_of_errors(trainer):
    """Within the block, an exception is told to each callback the block lists as begun (the list it
    yields: those whose ``on_train_begin`` returned, `Callback.on_exception`, in their order) before
    it goes on to the caller. Every one is told though one's hook raises (as an ExitStack's exits):
    the first such error then goes instead, the training's error as its context."""
    begun = []
    try:
        yield begun
    except BaseException as error:
        failed = None
        for cb in begun:
            try:
                cb.on_exception(trainer, error)
            except Exception as hook_error:  # (a logger's bug in its clean-up left a later finder's weights out)
                failed = failed or hook_error
        if failed is not None:
            raise failed
        raise


@contextlib.contextmanager
def checkpoint_directories_held(callbacks):
    """Within the block, the directory of each `Checkpoint` among ``callbacks`` is held by this fit
    alone (`xdl.lock.RUN`, as ``xdl train`` holds its ``--out``): a second fit into it — in another
    thread or process, resumed or not — is refused before it reads or writes anything, naming the
    holder; two would each write their checkpoints over the other's."""
    import errno

    from xdl.lock import RUN, DirectoryLock

    directories = [cb.directory for cb in callbacks if isinstance(cb, Checkpoint)]
    resolved = [d.resolve() for d in directories]
    if len(set(resolved)) < len(resolved):  # they would write over each other's files
        twice = next(d for d, r in zip(directories, resolved) if resolved.count(r) > 1)
        raise ValueError(f"callbacks: two Checkpoint callbacks write into {str(twice)!r}; give each its own directory")
    with contextlib.ExitStack() as held:
        for directory in directories:
            check_writable_dir(directory, "Checkpoint directory")
            try:
                held.enter_context(DirectoryLock(directory, "Checkpoint directory", RUN))
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):  # (in use: refused, as meant)
                    raise
                warn_caller(f"Checkpoint directory {str(directory)!r}: its file system takes no locks ({e.strerror}); "
                            "this fit goes on without holding it, so make sure no other fit writes there")
        yield


def _copy(source, target: Path) -> Path:
    """``target``, written (atomically) with the bytes of the checkpoint file ``source``."""
    content = Path(source).read_bytes()
    return atomic_write(target, lambda f: f.write(content), what="Checkpoint")


class Checkpoint(Callback):
    """Keep the run's last good state and its best one in ``directory``, each written atomically
    (an interrupted save leaves the previous file intact):

    * ``checkpoint.npz`` — the whole training state every ``every`` epochs and at the run's last
      (None: only then, or when the run stops early or is interrupted by Ctrl-C/SIGTERM, then
      mid-epoch), so a finished run can be resumed with more epochs;
      ``Trainer.fit(..., resume=directory)`` continues from it;
    * ``best.npz`` — the same, at the epoch with the best ``monitor`` value so far ("dev_cost" by
      default; a dev metric's train counterpart when the run has no dev set, "train_cost" for
      "dev_cost"; accuracies are maximized).

    A directory removed while the run runs (a clean-up) is made again at the next save, with a warning.

    A `Trainer`'s are also model files: ``xdl.load(path)`` gives the model (a `fit_many` batch's
    hold its K models as one stack: each result's ``model`` is the ordinary one). The Trainer checks every cost
    before a checkpoint is written, so a diverging run never overwrites a good one; and a fit is
    refused in a directory whose checkpoint is another run's that is unfinished (`unfinished_run`)
    or cannot be read (`read_position`: the best.npz beside it may hold the best epoch), as ``xdl
    train`` refuses it — a new run, a resume from another directory (before it loads anything), a
    later fit that finds a checkpoint there it did not write (`_check_not_anothers`): a finished
    run's files are replaced. A later fit measuring the monitor on other data than the fit before it
    (`measures_other_data`) starts its best afresh.
    """

    order = 100

    def __init__(self, directory, every: int | None = 1, monitor: str = "dev_cost"):
        if every is not None:
            every = check_int(every, "Checkpoint: every", expected="a positive integer or None")
        if not isinstance(directory, str | os.PathLike) or not os.fspath(directory):
            raise TypeError(f"Checkpoint: directory must be a non-empty str or path, got {directory!r}")
        check_monitor(monitor, "Checkpoint")
        self.directory, self.every, self.monitor = Path(directory), every, monitor
        self.best = None  # the best monitored value so far (sign-adjusted: smaller is better)

    @property
    def path(self) -> Path:
        return self.directory / CHECKPOINT_FILE

    @property
    def best_path(self) -> Path:
        return self.directory / BEST_FILE

    def on_train_begin(self, trainer) -> None:
        self._before = ((trainer.epoch, trainer.step), self.best)  # put back if the fit ends there (`on_exception`)
        check_writable_dir(self.directory, "Checkpoint directory")
        for path in (self.path, self.best_path):  # found now, not when the first epoch's state is written
            if path.is_dir():
                raise IsADirectoryError(f"Checkpoint: {str(path)!r} is a directory; the checkpoint is written there")
            if path.exists():  # (write-protected: refused, as open refuses it — after an epoch's work, it was)
                check_target(path, "Checkpoint")
        if not continues_run(trainer):  # a later fit of the same run keeps its best: best.npz is the run's
            self._check_not_anothers("to start afresh there")  # (the state that goes on with that run)
            self.best = None
            return
        self._check_still_own(trainer)
        if measures_other_data(trainer, self.monitor):
            self.best = None  # its first epoch replaces best.npz, kept until then
        elif trainer.resumed and trainer.last_checkpoint is not None and not self._holds(trainer.last_checkpoint):
            # resumed into another directory: the run's best so far comes along, over a best.npz of another run
            # there (kept, it was taken for this run's best — xdl train listed it — until the run did better; else
            # this one's best.npz would appear only at a new best)
            best = Path(trainer.last_checkpoint).parent / BEST_FILE
            if best.is_file():
                trainer.best_checkpoint = _copy(best, self.best_path)
        elif self.best_path.is_file():
            trainer.best_checkpoint = self.best_path

    def on_train_end(self, trainer) -> None:
        self.__dict__.pop("_before", None)
        # a resume into this directory of a run that was over trained nothing and saved nothing here: its
        # checkpoint comes along (byte for byte: the model may hold the best epoch's weights by now), as
        # best.npz did at the start — else this directory held best.npz alone, and a resume from it with
        # more epochs was refused, pointed at best.npz: the best epoch's state, not the run's end
        if trainer.resumed and trainer.last_checkpoint is not None and not self._holds(trainer.last_checkpoint):
            trainer.last_checkpoint = _copy(trainer.last_checkpoint, self.path)
            _written(trainer)[str(self.path.resolve())] = _identity(self.path)  # (`_check_still_own`)

    def on_exception(self, trainer, error) -> None:
        """A fit that ended before its first step (a later callback's ``on_train_begin`` refused it) keeps
        the run's best: one on other data had set it aside (`measures_other_data`), and the run's next fit,
        on its own data, wrote its first epoch over best.npz however much worse it was."""
        before = self.__dict__.pop("_before", None)
        if before is not None and ended_before_its_first_step(trainer, before[0]):
            self.best = before[1]

    def _holds(self, path) -> bool:
        """Whether ``path`` (a checkpoint file) lies in this callback's directory."""
        return Path(path).resolve().parent == self.directory.resolve()

    def check_resume_into(self, resumed) -> None:
        """A resume from ``resumed`` writes its checkpoints here: refused, before anything changes (the
        loops call this), where this directory is another one's and holds a checkpoint of an unfinished
        run (or one no run can read) — its resumable state, written over, as a new run is refused there."""
        if not self._holds(resumed):
            self._check_not_anothers(f"to go on from {str(resumed)!r} instead")

    def _check_still_own(self, trainer) -> None:
        """A later fit of ``trainer``'s run finds in ``directory`` the checkpoint this run wrote last,
        or none, or a finished run's: another unfinished run's, written there since by another
        trainer (a run started there once this one had ended), is refused, as a new run's fit refuses
        it; else this fit wrote over it, and the run it held was lost. (A resume into another run's
        directory is refused before it loads anything: `check_resume_into`.)"""
        if trainer.resumed:  # what is there is the run's own now, or a finished run's
            _written(trainer)[str(self.path.resolve())] = _identity(self.path)
            return
        if self.path.is_file() and _written(trainer).get(str(self.path.resolve())) != _identity(self.path):
            self._check_not_anothers("to go on with this trainer's run there", another="another")

    def _check_not_anothers(self, instead: str, another: str = "an") -> None:
        """The one refusal of the three ways a fit comes to a directory — a new run, a resume from
        elsewhere, a later fit finding a file it did not write — where its checkpoint is another run's
        that goes on (unfinished) or that no run can read (`_check_readable`): this fit would write
        over it. ``instead``: what the caller's fit would do, said with the way out."""
        self._check_readable()
        unfinished = unfinished_run(self.path)
        if unfinished is not None:
            raise FileExistsError(f"Checkpoint: {str(self.directory)!r} holds the checkpoint of {another} unfinished "
                                  f"run ({unfinished}): fit(..., resume={str(self.directory)!r}) continues it; "
                                  f"{instead}, remove {str(self.path)!r} first, or checkpoint elsewhere")

    def _check_readable(self) -> None:
        """A checkpoint there that cannot be read (damaged from outside: xdl's writes are atomic) is
        refused, as ``xdl train`` refuses it: no run can continue from it, but the best.npz beside it
        may hold the best epoch's state, which a new run would write over."""
        if not self.path.is_file():
            return
        try:
            read_position(self.path)
        except ValueError as e:
            kept = f"; {str(self.best_path)!r} may still hold the best epoch's state" if self.best_path.is_file() else ""
            raise FileExistsError(f"Checkpoint: {str(self.directory)!r} holds a checkpoint no run can continue from "
                                  f"({e}){kept}: to start afresh there, remove {str(self.path)!r} first, or "
                                  "checkpoint elsewhere") from None

    def on_epoch_end(self, trainer, record: dict) -> None:
        self._made_again(trainer)
        # without dev (or its metric), the train set's counterpart: dev_accuracy → train_accuracy
        monitor = self.monitor if record.get(self.monitor) is not None else self.monitor.replace("dev_", "train_")
        # (none measured: an epoch of `fit_many` in which no model trained to its end — its state is still saved)
        score = None if record.get(monitor) is None else (-1.0 if "accuracy" in monitor else 1.0) * record[monitor]
        if score is not None and (self.best is None or score < self.best):
            previous, self.best = self.best, score  # saved with the state, so best.npz knows its own score
            try:  # best.npz first: checkpoint.npz never records a best that best.npz does not hold
                trainer.best_checkpoint = trainer.save_checkpoint(self.best_path)
            except BaseException:
                self.best = previous
                raise
        if (self.every and record["epoch"] % self.every == 0) or trainer.stop_training or \
                record["epoch"] >= trainer.epochs:
            self.save_resumable(trainer)

    def save_resumable(self, trainer) -> Path:
        """Write ``checkpoint.npz`` now (the Trainer calls this when a signal stops the run)."""
        self._made_again(trainer)
        trainer.last_checkpoint = trainer.save_checkpoint(self.path)
        trainer.last_checkpoint_at = (trainer.epoch, trainer.step)
        _written(trainer)[str(self.path.resolve())] = _identity(self.path)  # (`_check_still_own`)
        for cb in trainer.callbacks:
            cb.on_checkpoint(trainer)
        return trainer.last_checkpoint

    def _made_again(self, trainer) -> None:
        """The directory made again where it was removed while the run ran (a clean-up): else the next
        save failed and the run stopped, its training lost with the checkpoint it would name to resume
        from (Keras's ModelCheckpoint makes its directory again). Its best.npz went with it, so the
        best starts again here: kept, checkpoint.npz recorded a best that no best.npz held (a run that
        did no better after the clean-up never wrote one, and named the file gone as its best)."""
        if self.directory.exists():
            return
        with contextlib.suppress(OSError):  # (one that cannot be made: the save's error names it)
            self.directory.mkdir(parents=True)
            self.best, trainer.best_checkpoint = None, None
            warn_caller(f"Checkpoint directory {str(self.directory)!r} was removed while the run ran: made again "
                        "(its best.npz is the best epoch from here on)")

    def state_dict(self):
        return {"best": self.best}, {}

    def load_state_dict(self, state, arrays):
        self.best = state.get("best")


CONTROL_FILE = "control.toml"
# a control file modified this recently is left for a later epoch's end: it may be half-written
SETTLE_SECONDS = 0.5
SETTLE_WAITS = 20  # on resuming, a control file still changing is waited for this many times SETTLE_SECONDS at most


@dataclass
class _Applied:
    """A control file whose settings took effect, waiting to be renamed once a checkpoint holds them."""

    note: str
    name: str  # what it is renamed to
    content: bytes  # what it held: a file written over it since is a new one, read as usual


class Control(Callback):
    """Babysitting a run (the course's panda): at each epoch's end, read ``directory/control.toml``
    if it exists — ``lr = 0.001`` (the rate from the next epoch on, replacing the schedule) and/or
    ``stop = true`` — apply it, note it in the epoch's history record (``control``), and rename the
    file ``control-applied-epoch-<n>.toml`` once a checkpoint holds its effect (at once without a
    `Checkpoint` callback; so a run stopped before then — a failed checkpoint write, a divergence —
    finds the file again on resuming). A resumed run first replays the rate set before (its state
    goes into checkpoints), then applies a file written while it was stopped before its first step
    (the way on after a rate that diverged; ``control-applied-resume-<n>.toml``, ``…-<n>-2.toml`` for
    a second one at that epoch; with ``stop``, no
    epoch runs, so a checkpoint is written then, holding a rate given with it). A file that does
    not parse or holds another key is left unapplied (renamed ``control-rejected-….toml`` at once),
    noted, and reported as a warning: training goes on. A batch of models (`fit_many`) takes
    ``stop`` only: its rates are one per model. ``report``: called with the note of each file
    applied, as it is (``xdl train`` prints it). A file modified less than `SETTLE_SECONDS` ago is
    read at a later epoch's end (it may be half-written; on resuming, it is waited for); write it
    whole (or to another name, then ``mv``) for it to apply at the next."""

    order = 50  # after early stopping, before checkpoints (which then save what was applied)

    def __init__(self, directory, report=None):
        if isinstance(directory, bool) or not isinstance(directory, str | os.PathLike) or not os.fspath(directory):
            raise TypeError(f"Control: directory must be a path (str or os.PathLike) of the directory to read "
                            f"{CONTROL_FILE} from, got {directory!r}")
        if not Path(directory).is_dir():  # a typo would watch a file that is never there
            raise ValueError(f"Control: directory {os.fspath(directory)!r} does not exist (make it, or give the run's)")
        if report is not None and not callable(report):
            raise TypeError(f"Control: report must be a function taking each note (print, say) or None, got {report!r}")
        self.directory, self.report = Path(directory), report
        self.lr = None  # the rate set by hand, if any
        self.notes: list[str] = []
        self._on_resume: str | None = None  # the note of a file applied on resuming, for the first epoch's record
        self._pending: _Applied | None = None  # applied, not yet renamed
        self._held: dict | None = None  # the checkpoint's `_pending` (name, sha256): applied, in its state, not renamed
        self._seen: tuple | None = None  # the control file's (mtime, size, inode) at a look, and when first seen so

    @property
    def path(self) -> Path:
        return self.directory / CONTROL_FILE

    def on_train_begin(self, trainer) -> None:
        # (a note applied on resuming that no epoch's record took yet — the run stopped again inside that
        # epoch — goes on to this fit's first record: kept, and in the checkpoints' state)
        self._pending = None
        if not continues_run(trainer):
            self.lr, self.notes, self._on_resume = None, [], None
            if self.path.is_file() and self.report is not None:  # left from before (a finished run's, say): obeyed
                self.report(f"{CONTROL_FILE} was there before this run began: it is read at epoch 1's end (remove it "
                            "to train without it)")
            return
        if not trainer.resumed:  # a later fit of the run: its rate set by hand is in place, and kept for the
            return               # checkpoints it writes (a resume from them replays it)
        replayed = self.lr
        if replayed is not None:  # replay: the resumed run keeps the rate set by hand
            self._set_lr(trainer, replayed)
        self._settle_held()
        starts = upcoming(trainer.epoch, trainer.step)
        unrecorded = self._on_resume  # (the checkpoint's)
        self._on_resume = self._apply(trainer, f"on resuming (before {starts})", f"resume-{trainer.epoch + 1}",
                                      starts, wait=True)
        self._on_resume = "; ".join(filter(None, (unrecorded, self._on_resume))) or None
        if replayed is not None and self.lr == replayed and self.report is not None:  # (not replaced just now:
            # xdl train's summary above names the options' lr and schedule, which it stands in place of)
            self.report(f"the rate {CONTROL_FILE} set goes on: lr = {replayed!r}, in place of the options' lr and "
                        "schedule")
        # no epoch will run — a stop, or a run whose epochs are all trained (resumed to write its outputs) —
        # so a checkpoint is written now: else a rate applied here (its file renamed) would be gone at the next resume
        if self._on_resume is not None and (trainer.stop_training or trainer.epoch >= trainer.epochs):
            self._note_with_last_epoch(trainer)
            for cb in trainer.callbacks:  # so one holds what was applied (a rate with the stop) now
                if isinstance(cb, Checkpoint):
                    cb.save_resumable(trainer)

    def on_epoch_end(self, trainer, record: dict) -> None:
        epoch = record["epoch"]
        notes = [note for note in (self._on_resume, self._apply(trainer, f"at epoch {epoch}", f"epoch-{epoch}",
                                                                f"epoch {epoch + 1}")) if note]
        self._on_resume = None
        if notes:
            trainer.history.records[-1]["control"] = "; ".join(notes)  # the history's copy of ``record``

    def on_checkpoint(self, trainer) -> None:
        self._settle()  # the checkpoint holds what was applied

    def on_train_end(self, trainer) -> None:
        self._note_with_last_epoch(trainer)  # no epoch ran (a stop read on resuming)
        self._settle()  # the run is over: nothing left to resume at an earlier state
        if trainer.step:  # stopped mid-epoch (by a step's hook): the run goes on at a later fit or a resume,
            return  # which reads the file (set aside as come after the run's end, it was never applied)
        if self.path.is_file():  # written during the last epoch (or not settled at its end): never read — set
            # aside and said, so that a later run in this directory does not obey it at its first epoch
            aside = self.directory / f"control-unread-end-{trainer.epoch}.toml"
            with contextlib.suppress(OSError):
                self.path.replace(aside)
                warn_caller(f"{CONTROL_FILE} came after the run's last epoch had begun: not applied, set aside as "
                            f"{aside.name}")

    def _note_with_last_epoch(self, trainer) -> None:
        """The note of a file applied on resuming, added to the last epoch's record (when no epoch of
        this fit took it)."""
        # (no record yet — a stop read on resuming inside epoch 1 —: kept for the first record, as after a Ctrl-C)
        if self._on_resume is not None and trainer.history.records:
            last = trainer.history.records[-1]
            last["control"] = "; ".join(filter(None, (last.get("control"), self._on_resume)))
            self._on_resume = None

    def _apply(self, trainer, when: str, suffix: str, starts: str, wait: bool = False) -> str | None:
        """Read and apply the control file if there is one; return its note (None: none, or the
        file applied already and waiting for a checkpoint). A rejected one changed nothing: it is
        renamed at once and reported as a warning. ``wait``: for a file that has not settled, wait
        until it has (on resuming: the file written just before is for the run's first step)."""
        if not self.path.is_file():  # a directory of that name is not a control file
            return None
        for _ in range(SETTLE_WAITS if wait else 1):
            with contextlib.suppress(OSError):  # (gone meanwhile: nothing to apply)
                age = self._unchanged_for()
                if age >= SETTLE_SECONDS:
                    break
                if wait:
                    time.sleep(SETTLE_SECONDS - age)
        else:  # being written, perhaps: a half-written "lr = 0.00" read as 0; a later epoch reads it
            return None
        try:
            content = self.path.read_bytes()
            if self._pending is not None and content == self._pending.content:
                return None
            wanted = parse_toml(content)
            unknown = sorted(set(wanted) - {"lr", "stop"})
            if unknown:
                raise ValueError(f"unknown key(s) {', '.join(unknown)} (known: lr, stop)")
            lr = wanted.get("lr")
            if lr is not None and not isinstance(trainer.optimizer, Optimizer):
                raise ValueError("lr: a batch of models (fit_many) has a rate per model; a control file can stop "
                                 "it, not set its rates")
            if lr is not None:  # > 0, as the command's --lr: a rate of 0 would freeze the run
                if not isinstance(lr, bool) and lr == 0:
                    raise ValueError(f"lr must be > 0, got {lr!r} (to end the run, write stop = true)")
                check_rate(lr, "lr", trainer.model.dtype, zero=False)
                _check_one_rate(trainer.optimizer)
            if not isinstance(wanted.get("stop", False), bool):
                raise ValueError(f"stop must be true or false, got {wanted['stop']!r}")
        except (OSError, ValueError) as e:  # (a TOMLDecodeError is one, as parse_toml's not UTF-8)
            note = f"{CONTROL_FILE} {when} not applied: {e}"
            warn_caller(note)  # the babysitter should see it, not only the history
            with contextlib.suppress(OSError):  # it changed nothing: renamed now, not once a checkpoint is written
                self.path.replace(self.directory / self._unused(f"control-rejected-{suffix}"))
            self.notes.append(note)
            return note
        done = []
        if lr is not None:
            replaced = " in the schedule's place" if getattr(trainer, "schedule", None) is not None else ""
            self.lr = float(lr)
            self._set_lr(trainer, self.lr)
            done.append(f"lr = {self.lr:g} from {starts}{replaced}")
        if wanted.get("stop"):
            trainer.stop_training = True
            trainer.history.stopped_by = f"{CONTROL_FILE} {when}"
            done.append("stop")
        note = f"{CONTROL_FILE} {when}: " + (", ".join(done) or "nothing to apply")
        self.notes.append(note)
        if self.report is not None:
            self.report(note)
        self._pending = _Applied(note, self._unused(f"control-applied-{suffix}"), content)
        if not any(isinstance(cb, Checkpoint) for cb in trainer.callbacks):
            self._settle()  # no checkpoint will hold it: nothing to wait for
        return note

    def _unused(self, stem: str) -> str:
        """``stem.toml``, or ``stem-2.toml``, ``stem-3.toml``, … where a file of that name is there: a
        second file read on resuming at the same epoch (the run interrupted again inside it) was renamed
        over the first, which was lost."""
        name, i = f"{stem}.toml", 1
        while (self.directory / name).exists():
            i += 1
            name = f"{stem}-{i}.toml"
        return name

    def _unchanged_for(self) -> float:
        """Seconds the control file has not changed for: since its mtime, or — an mtime ahead of this
        clock (written from another machine, over a network file system) — since the first look that
        found it as it is now (mtime, size, inode). By the mtime alone, such a file would never have
        settled: never read, then set aside at the run's end as come too late."""
        status = self.path.stat()
        seen, now = (status.st_mtime_ns, status.st_size, status.st_ino), time.monotonic()
        if self._seen is None or self._seen[0] != seen:
            self._seen = (seen, now)
        return max(time.time() - status.st_mtime, now - self._seen[1])

    def _settle(self) -> None:
        """Rename the applied file, unless a new one has taken its place since (read as usual)."""
        if self._pending is None:
            return
        with contextlib.suppress(OSError):  # removed or unreadable meanwhile: nothing to rename
            if self.path.read_bytes() == self._pending.content:
                self.path.replace(self.directory / self._pending.name)
        self._pending = None

    def _settle_held(self) -> None:
        """Rename the control file the checkpoint resumed from had applied (its effect is in that state:
        the run was killed after the checkpoint, before the rename), rather than apply it again: read
        again, it was noted a second time in the history and renamed as a file given on resuming — and
        a ``stop = true`` stopped the resume that was meant to train on after it. A file written over it
        since (another content) is a new one, read as usual."""
        held, self._held = self._held, None
        if held is None:
            return
        if (self.directory / held["name"]).exists():  # renamed after the checkpoint: the file there is a new one
            return
        with contextlib.suppress(OSError):  # removed or unreadable meanwhile: nothing to rename
            if hashlib.sha256(self.path.read_bytes()).hexdigest() == held["sha256"]:
                self.path.replace(self.directory / held["name"])

    @staticmethod
    def _set_lr(trainer, lr: float) -> None:
        trainer.schedule = None
        trainer.optimizer.lr = lr

    def state_dict(self):
        applied = None if self._pending is None else \
            {"name": self._pending.name, "sha256": hashlib.sha256(self._pending.content).hexdigest()}
        return {"lr": self.lr, "notes": self.notes, "unrecorded": self._on_resume, "applied": applied}, {}

    def load_state_dict(self, state, arrays):
        self.lr, self.notes = state.get("lr"), list(state.get("notes", []))
        applied = state.get("applied")  # (a checkpoint of an xdl before it has none; one edited by hand is ignored)
        ok = isinstance(applied, dict) and all(isinstance(applied.get(key), str) for key in ("name", "sha256"))
        self._held = applied if ok and re.fullmatch(r"control-applied-[\w-]+\.toml", applied["name"]) else None
        self._on_resume = state.get("unrecorded")  # applied on resuming, in no epoch's record yet


def _check_one_rate(optimizer) -> None:
    """A control file's ``lr`` is one rate for every group (``opt.lr = …``): refused where the groups
    have rates of their own (a head trained faster than its body, each group's schedule), as `Trainer`
    refuses an epoch schedule over them."""
    rates = rates_of_their_own(optimizer)
    if rates is not None:
        raise ValueError(f"lr: it sets every group's rate to one, and the optimizer's groups have rates of their own "
                         f"({rates}); set them in Python (opt.param_groups[i]['lr'] = …, in a callback)")


def check_resumes_into(callbacks, resumed) -> None:
    """Each `Checkpoint` of ``callbacks`` may write the run resumed from ``resumed`` into its directory
    (`Checkpoint.check_resume_into`): called by a resume before it loads anything."""
    for cb in callbacks:
        if isinstance(cb, Checkpoint):
            cb.check_resume_into(resumed)


def check_goes_on(trainer, who: str, maker: str) -> None:
    """A later fit of ``trainer`` (``who``: "trainer" or "batch", made by ``maker``) refused where
    its last one stopped inside a step or an epoch's end: its update may or may not have been
    applied, so where the run is cannot be known."""
    if trainer._mid_step:
        raise RuntimeError(f"fit: this {who}'s last fit was stopped inside a step or an epoch's end (a second Ctrl-C, "
                           "or an error raised there, a callback's too), its resume failed partway, or it is a copy "
                           "taken during a fit (copy.deepcopy or pickle in a callback: copy between fits), so where its "
                           "run is cannot be known: resume from its last checkpoint (fit(..., resume=its directory)), "
                           f"or make a new {maker}")


def check_same_examples(trainer, examples: int, who: str, maker: str) -> None:
    """A later fit of ``trainer`` that finishes an epoch a stop cut short takes as many examples as
    that epoch had, in batches of its size (its shuffle and its steps are of those: with another
    ``trainer.batch_size`` the epoch went on from its step number in other batches, skipping examples
    it had not trained on — or failed with NumPy's broadcast error where it had fewer steps now)."""
    partial = trainer._partial
    if partial is not None and partial.get("examples", examples) != examples:
        raise ValueError(f"fit: this {who}'s last fit stopped in epoch {trainer.epoch + 1} after step {trainer.step} "
                         f"of an epoch over {partial['examples']} examples, and X has {examples}: give it the same "
                         f"data to finish that epoch, or make a new {maker}")
    size = getattr(trainer, "batch_size", None)
    if partial is not None and partial.get("batch_size", size) != size:
        raise ValueError(f"fit: this {who}'s last fit stopped in epoch {trainer.epoch + 1} after step {trainer.step} "
                         f"of an epoch in batches of {partial['batch_size']}, and its batch_size is {size} now: "
                         f"set it back to {partial['batch_size']} to finish that epoch (another batch size may be "
                         f"set once the epoch is over), or make a new {maker}")


def save_resumable(trainer) -> Path | None:
    """Write a resumable checkpoint through every `Checkpoint` of ``trainer`` (a `Trainer` or a
    `xdl.train.ManyTrainer`) stopped between two steps; the last one's path (None without one)."""
    path = None
    for cb in trainer.callbacks:
        if isinstance(cb, Checkpoint):
            path = cb.save_resumable(trainer)
    return path


def stop_for_signal(trainer, signal_name: str):
    """Write a resumable checkpoint (`save_resumable`), then raise `Interrupted`, which says where
    the run stopped."""
    raise Interrupted(signal_name, trainer.epoch + 1, trainer.step, save_resumable(trainer))
