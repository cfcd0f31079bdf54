"""The callback protocol: code that runs at the edges of `Trainer.fit` (`Callback`), its state
checked as it goes into a checkpoint and comes back, and what a callback asks of the fit it runs in
(whether it goes on with a run, measures other data, ended before its first step).

A callback's state goes into checkpoints (`state_dict` / `load_state_dict`), so a resumed run
continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import inspect
import json
import numbers

import numpy as np

from xdl.files import json_number
from xdl.train.checkpoint_files import RECORD_MEASURES
from xdl.train.history import KERAS_MONITORS


MONITORED = ("dev_cost", "dev_accuracy", "train_cost", "train_accuracy")  # the History columns a callback can watch


# what a Keras callback reads from itself → where an xdl hook finds it (`Callback.__getattr__`)
KERAS_ATTRIBUTES = {"model": "trainer.model (and trainer.optimizer, trainer.history)",
                    "params": "trainer.epochs, trainer.batch_size"}


class Callback:
    """Override what you need. ``order``: callbacks run by increasing order (checkpoints last, so
    they save the other callbacks' state of the same epoch).

    A callback with state of its own keeps it across a resume through ``state_dict()`` — a pair
    (a dict of JSON values, a dict of NumPy arrays), stored in each checkpoint — and
    ``load_state_dict(state, arrays)``, called with that pair when a run resumes, before
    ``on_train_begin``. A rate a callback set, ``trainer.l2``, ``trainer.l1`` and a schedule it cleared
    (``trainer.schedule = None``) are part of the checkpoint; code it set (another schedule,
    ``opt.lr = schedule``) and a layer's setting (a dropout rate, a batch norm's momentum) are not:
    it sets them again in ``on_train_begin`` when ``trainer.resumed``, from its own state (a resume
    warns where none did). A value a callback adds to the epoch's ``record`` is a
    number (or another JSON value): it becomes a column of the history. A callback with state is
    one run's: a later fit goes on with it, so one given to another trainer's fit since (or to two
    fits at once) is refused (`check_callbacks_own`); give each trainer its own. One that reads a
    column of the record at each epoch's end, ``record[self.monitor]``, sets ``reads_monitor =
    True``: a fit then checks before any epoch that ``monitor`` is one of `MONITORED` and that the
    run measures it (a dev column needs ``dev``, an accuracy a classification's loss), as for
    `EarlyStopping`.
    """

    order = 0
    # it reads ``self.monitor`` (one of `MONITORED`) at each epoch's end (`EarlyStopping`, xdl.tune's
    # `OptunaPruning`): a fit checks before any epoch that it is one and the run measures it (`check_monitored`)
    reads_monitor = False

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

    def check_fits(self, trainer) -> None:
        """Refuse, with an error that says why, a ``trainer`` this callback cannot work with
        (`ReduceLROnPlateau`: one with an epoch schedule, or fit_many's) — called at each fit, by
        `Trainer.fit` and by `fit_many`'s `ManyTrainer.fit` alike, once its arguments are checked, before
        any work or change (a resume's load, ``on_train_begin``); nothing by default. ``trainer`` is a
        `Trainer` or a `ManyTrainer`: read only what the one it takes has (a ManyTrainer has ``configs``,
        ``n_models``, ``callbacks``, ``epochs``, ``batch_size``, and its ``model`` and ``optimizer`` are
        None until its first fit builds them, after this hook). What it raises reaches the fit's caller as
        it is."""

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
        (every hook still runs), the training's error as its context. A learning-rate finder that is a
        callback of the run it sweeps puts the weights back here as in ``on_train_end`` (`xdl.train.lr_find`
        puts them back around a fit of its own instead)."""

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
    found = key_not_str(result[0])
    if found:  # JSON writes it as a string: load_state_dict would get {"1": …} for {1: …}, silently
        key, = found
        raise TypeError(f"{name}: its first dict is written as JSON, whose keys are strings: {key!r} "
                        f"({type(key).__name__}) would come back on resuming as {json.dumps({key: 0})[1:-4]}; "
                        "use string keys (or a list of pairs)")
    for key, value in result[1].items():  # (checked here, named as its own: not as the checkpoint's "callback/0/…")
        if not isinstance(key, str):  # the file names its arrays with strings: {1: a} came back as {"1": a}
            raise TypeError(f"{name}: its second dict names arrays in the checkpoint, by strings: {key!r} "
                            f"({type(key).__name__}) would come back on resuming as {str(key)!r}; use string keys")
        try:
            dtype = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype  # (a device array: not read)
        except (TypeError, ValueError) as e:  # (a ragged list)
            raise TypeError(f"{name}: its second dict's {key!r} is not an array: {e}") from None
        if isinstance(dtype, np.dtype) and dtype.hasobject:
            raise TypeError(f"{name}: its second dict's {key!r} holds Python objects (dtype {dtype}); a checkpoint "
                            "holds arrays of numbers, strings or booleans (other values go in the first dict, as "
                            "JSON)")
    return result


def key_not_str(value) -> tuple:
    """``(key,)``: the first dict key in ``value`` (a JSON value: dicts and lists within) that is not
    a string; else ``()`` (a key of None is one: JSON writes it "null")."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return (k,)
            found = key_not_str(v)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for v in value:
            found = key_not_str(v)
            if found:
                return found
    return ()


def load_callback_state(cb, state: dict, arrays: dict) -> None:
    """``cb.load_state_dict(state, arrays)`` on resuming, its failure named as the callback's."""
    try:
        cb.load_state_dict(state, arrays)
    except Exception as e:
        raise ValueError(f"resume: {type(cb).__name__}.load_state_dict(state, arrays) failed on the checkpoint's "
                         f"state {state!r:.120}: {type(e).__name__}: {e}") from e


def check_record(record: dict, cb, epoch: int | None = None) -> None:
    """Each value of an epoch's record is JSON (what the history and the checkpoint write), after
    callback ``cb`` ran on it: a column it added as an array is named now, with it, not as a
    checkpoint that cannot be written; so is a name, or a key within, that is not a string (JSON
    writes 1 as "1": the resumed history held a column "1" beside 1, each half empty). xdl's own
    columns keep their kinds — ``epoch`` (the record's number, ``epoch`` when given), the costs and
    accuracies (`RECORD_MEASURES`) —: one a callback rewrote (an accuracy in percent, a NaN cost) was
    written into the checkpoints, and their resume refused them as damaged files."""
    if epoch is not None and record.get("epoch") != epoch:
        raise ValueError(f"the record of epoch {epoch} holds 'epoch' = {record.get('epoch')!r:.40} after "
                         f"{type(cb).__name__}.on_epoch_end: xdl's column epoch counts the run's epochs from 1 (its "
                         "checkpoints' resume checks it); add a column of your own")
    for column, (expected, fits) in RECORD_MEASURES.items():
        value = record.get(column)
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if value is not None and not (number and fits(value)):
            raise ValueError(f"the record of epoch {record.get('epoch')} holds {column!r} = {value!r:.40} after "
                             f"{type(cb).__name__}.on_epoch_end: xdl's column {column} is {expected} or None (its "
                             "checkpoints' resume checks it); add a column of your own")
    for column, value in record.items():
        if not isinstance(column, str):
            raise TypeError(f"the record of epoch {record.get('epoch')} holds a column named {column!r} "
                            f"({type(column).__name__}) after {type(cb).__name__}.on_epoch_end: a column's name is "
                            "a string, as JSON writes it")
        found = key_not_str(value)
        if found:
            raise TypeError(f"the record of epoch {record.get('epoch')} holds {column!r} = {value!r:.80} after "
                            f"{type(cb).__name__}.on_epoch_end, with the key {found[0]!r} ({type(found[0]).__name__}), "
                            "which JSON writes as a string: use string keys")
        try:
            json.dumps(value, default=json_number)
        except (TypeError, ValueError):
            raise TypeError(f"the record of epoch {record.get('epoch')} holds {column!r} = {value!r:.80} "
                            f"({type(value).__name__}) after {type(cb).__name__}.on_epoch_end: a column holds "
                            "numbers (or other JSON values): add float(value)") from None


def check_monitor(monitor, who: str) -> str:
    """``monitor`` if it is one of `MONITORED`, else a ValueError naming ``who`` (a typo would
    watch nothing: caught before any epoch trains)."""
    if not isinstance(monitor, str) or monitor not in MONITORED:  # (an array: NumPy's "truth value … ambiguous")
        keras = KERAS_MONITORS.get(monitor) if isinstance(monitor, str) else None
        hint = f" (Keras's {monitor!r} is {keras!r} here)" if keras else ""
        raise ValueError(f"{who}: monitor must be one of {', '.join(MONITORED)}, got {monitor!r}{hint}")
    return monitor


def continues_run(trainer) -> bool:
    """Whether this fit goes on with a run — a resume, or a later ``fit`` of the same trainer (after
    Ctrl-C, a stop, or with more epochs) — rather than starting one: callbacks then keep their state,
    so the run goes on as if it had never stopped."""
    return bool(trainer.resumed or trainer.epoch or trainer.step)


def measures_other_data(trainer, monitor: str) -> bool:
    """Whether this fit of ``trainer`` measures ``monitor`` on other data than the fit before it
    (``trainer.data_changed``: a later fit fine-tuning on new data, or given a dev set the fit before
    had not): a best kept from there is no yardstick here — early stopping compared the new dev
    cost with the old data's best, stopped the new fit while its cost fell, and restored the old
    fit's weights. Such a fit's bests start afresh, as Keras's fit starts its callbacks'."""
    return monitor.split("_")[0] in getattr(trainer, "data_changed", ())


def ended_before_its_first_step(trainer, position: tuple) -> bool:
    """Whether a fit of ``trainer`` that began at ``position`` (its epoch and step then) ended before
    its first step ran — refused by a callback's ``on_train_begin``, or by an error before the step:
    what a callback's ``on_train_begin`` set aside for the steps is then put back."""
    return position == (trainer.epoch, trainer.step) and not getattr(trainer, "_mid_step", False)
