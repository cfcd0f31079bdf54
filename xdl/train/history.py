"""`History`: what `Trainer.fit` measured, one record per epoch."""

from __future__ import annotations

import json
import operator
from pathlib import Path

import numpy as np

from xdl.data.validation import check_int, counted
from xdl.files import EncodedJSON, atomic_write, check_path, json_number

# Keras's names of the columns (its History's keys, its callbacks' monitors) → this history's
KERAS_MONITORS = {"val_loss": "dev_cost", "val_accuracy": "dev_accuracy", "val_acc": "dev_accuracy",
                  "loss": "train_cost", "accuracy": "train_accuracy", "acc": "train_accuracy"}
COLUMNS = ("epoch", "train_cost", "train_accuracy", "dev_cost", "dev_accuracy", "lr", "seconds", "step_seconds")


def _no_column(key, columns) -> str:
    """What a history without column ``key`` says: Keras's name of one named as this history's."""
    keras = f" (Keras's {key!r} is {KERAS_MONITORS[key]!r} here)" if key in KERAS_MONITORS else ""
    return f"History has no column {key!r}{keras}; columns: {', '.join(columns)}"


# the values a record's JSON is the same for as long as each stays the same object: none changes in place
_SCALARS = (str, int, float, type(None), np.generic)


def _held(record: dict) -> tuple[list, list] | None:
    """``record``'s keys and values, in order, where its JSON is theirs as long as each is the same
    object (`_unchanged`); None where a value is a list or a dict, which may change in place. (Not a
    copy compared by ``==``: 1 == 1.0 == True and 0.0 == -0.0 are other JSON, a reordered record is
    too, and a NumPy number compared with a list is an array, with no truth value.)"""
    return (list(record), list(record.values())) if all(isinstance(v, _SCALARS) for v in record.values()) else None


def _unchanged(held: tuple[list, list] | None, record: dict) -> bool:
    """Whether ``record`` holds the very keys and values, in order, that `_held` kept of it (kept
    alive there: no other object can have their ids)."""
    return held is not None and len(held[0]) == len(record) and all(map(operator.is_, held[1], record.values())) \
        and all(map(operator.is_, held[0], record))


def _epoch(value, name: str) -> int | None:
    """``value``, a `History`'s ``name``, as an int or None, else a ValueError naming it: one of another
    kind (2.5, "2", a 0-d array) was kept, and the history's save failed as no JSON. (0: a stop inside
    epoch 1, by a step's hook.)"""
    return None if value is None else check_int(value, f"History: {name}", low=0, expected="an epoch (an integer "
                                                "≥ 0) or None")


class _Columns(dict):
    """``History.history``: a dict of the columns whose missing key says what ``history[key]`` does
    (Keras's own idiom, ``history.history["val_loss"]``, got a bare KeyError: 'val_loss')."""

    def __missing__(self, key):
        raise KeyError(_no_column(key, list(self)))


class History:
    """Per-epoch records: ``epoch`` (from 1), train/dev cost and accuracy (None where not measured),
    ``lr`` (the rate of the epoch's first step, of the optimizer's first parameter group — every
    group's under an epoch schedule), ``seconds`` (the epoch's, its evaluation passes included) and ``step_seconds``
    (its training steps' alone). ``stopped_epoch`` is set when a callback stopped the run early,
    ``stopped_by`` to why (the callback's words), ``best_epoch`` when early stopping restored that
    epoch's weights, ``diverged`` (a message
    naming the epoch and step) when a model of `xdl.train.fit_many` diverged and was stopped.
    ``train_running``: the train cost and accuracy are the epoch's running averages over its steps
    (``eval_train=False``: dropout on, the weights moving), not the trained model's in evaluation —
    `xdl.diagnose` says so, as they overstate the training error.

    >>> h = History([{"epoch": 1, "dev_cost": 0.5}, {"epoch": 2, "dev_cost": 0.4}])
    >>> h["dev_cost"], h[-1]["epoch"], len(h)
    ([0.5, 0.4], 2, 2)
    """

    def __init__(self, records=(), stopped_epoch: int | None = None, best_epoch: int | None = None,
                 diverged: str | None = None, stopped_by: str | None = None, train_running: bool = False):
        self.records = [dict(r) for r in records]
        self.train_running = bool(train_running)
        self.stopped_epoch, self.stopped_by = _epoch(stopped_epoch, "stopped_epoch"), stopped_by
        self.best_epoch = _epoch(best_epoch, "best_epoch")
        self.diverged = diverged

    def append(self, record: dict) -> None:
        self.records.append(dict(record))

    def __getitem__(self, key):
        """A column by name (list over epochs; None in an epoch that did not record it, as a
        column a callback adds from some epoch on), or a record by index."""
        if isinstance(key, str):
            if self.records and key not in self.columns:
                raise KeyError(_no_column(key, self.columns))
            return [r.get(key) for r in self.records]
        if isinstance(key, slice):
            return self.records[key]
        # an int or NumPy's (a float, None or a tuple was list's bare TypeError; True, a bool, was list's record 1)
        try:
            index = None if isinstance(key, bool) else operator.index(key)
        except TypeError:
            index = None
        if index is None:
            raise TypeError(f"History is indexed by a column's name (a str) or a record's index (an int, or a slice), "
                            f"got {type(key).__name__}")
        if not -len(self.records) <= index < len(self.records):  # (list's "list index out of range" named neither)
            raise IndexError(f"History has {counted(len(self.records), 'record')} (one an epoch), got index {index} "
                             "(history[-1] is the last)")
        return self.records[index]

    @property
    def columns(self) -> list[str]:
        """Every key any epoch recorded, in the order they first appear (Keras's history.history keys)."""
        return list(dict.fromkeys(k for r in self.records for k in r))

    @property
    def history(self) -> dict[str, list]:
        """Every column as a list over the epochs (Keras's ``history.history``; a key it lacks is told
        as ``history[key]`` tells it, Keras's ``"val_loss"`` its name here)."""
        return _Columns({column: self[column] for column in self.columns})

    def __contains__(self, key) -> bool:
        """``"dev_cost" in history``: whether a column of that name was recorded (a record, too)."""
        return key in self.columns if isinstance(key, str) else key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def final(self) -> dict:
        """The record of the weights the model ends with: the best epoch if early stopping restored
        it, else the last."""
        if not self.records:
            raise ValueError("History is empty: no epoch was trained")
        if self.best_epoch is not None:
            best = [r for r in self.records if r.get("epoch") == self.best_epoch]
            if not best:
                raise ValueError(f"History: best_epoch is {self.best_epoch}, but no record is of that epoch")
            return best[0]
        return self.records[-1]

    def to_dict(self) -> dict:
        return {"records": self.records, "stopped_epoch": self.stopped_epoch, "stopped_by": self.stopped_by,
                "best_epoch": self.best_epoch, "diverged": self.diverged, "train_running": self.train_running}

    def to_encoded_dict(self) -> dict:
        """`to_dict`, the records as one `EncodedJSON` (the same bytes once written): each record
        is encoded once and again only when it changed — its keys and values are no longer the very
        objects it held when encoded (`_held`), or it holds a list or a dict, encoded at every save —
        a checkpoint written at every epoch re-encoded them all, a cost that grew with every epoch
        (12 ms a save at 3,000 epochs, against 1 ms of training for a small model)."""
        encoded = self.__dict__.setdefault("_encoded", [])  # [(record i's `_held` as encoded, its JSON)]
        del encoded[len(self.records):]
        for i, record in enumerate(self.records):
            if i == len(encoded) or not _unchanged(encoded[i][0], record):
                encoded[i:i + 1] = [(_held(record), json.dumps(record, default=json_number))]
        return {**self.to_dict(), "records": EncodedJSON(f"[{', '.join(text for _, text in encoded)}]")}

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_encoded"}  # (a cache: made again)

    @classmethod
    def from_dict(cls, data: dict) -> History:
        return cls(data["records"], data.get("stopped_epoch"), data.get("best_epoch"), data.get("diverged"),
                   data.get("stopped_by"), bool(data.get("train_running", False)))

    def save(self, path) -> Path:
        """Write the history as JSON, atomically (temporary file + rename); NumPy numbers in the
        records (a callback's own) are written as the numbers they hold. A NaN or an infinity is
        written as Python's ``json`` writes it (``NaN``, ``Infinity``: JavaScript's names, which
        Python's json, pandas and most JSON readers take, a strict one refuses), so that `load`
        gives back every record as it was: JSON's null is None here, a value not measured. (A
        `Trainer`'s history holds none: a run stops before an epoch with a non-finite cost is
        recorded; a callback's own column may.)"""
        return atomic_write(path, lambda f: json.dump(self.to_dict(), f, indent=1, default=json_number), binary=False,
                            what="History.save")

    @classmethod
    def load(cls, path) -> History:
        """The history `save` wrote at ``path`` (a file name: str or os.PathLike)."""
        path = check_path(path, "History.load")  # (open() would take an int as a file descriptor: 0 is stdin)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError):  # a checkpoint, a model file: not text at all
            data = None
        except FileNotFoundError:
            raise FileNotFoundError(f"History.load: no such file {str(path)!r}") from None
        except IsADirectoryError:
            raise IsADirectoryError(f"History.load: {str(path)!r} is a directory; name the history file in it "
                                    "(history.json)") from None
        if not (isinstance(data, dict) and isinstance(data.get("records"), list)
                and all(isinstance(r, dict) for r in data["records"])):
            raise ValueError(f"History.load: {str(path)!r} is not a history History.save wrote "
                             '(expected {"records": [{...}, ...], ...})')
        try:
            return cls.from_dict(data)
        except ValueError as e:  # (its epochs' kinds: the file named)
            raise ValueError(f"History.load: {str(path)!r} is damaged: {e}") from None

    def __repr__(self) -> str:
        return (f"History({counted(len(self), 'epoch')}, stopped_epoch={self.stopped_epoch}, "
                f"best_epoch={self.best_epoch})")

