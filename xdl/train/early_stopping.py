"""`EarlyStopping`: stop when the monitored metric has not improved for ``patience`` epochs, and
put back the best epoch's weights."""

from __future__ import annotations

import math

import numpy as np

from xdl.data.validation import check_bool, check_int, check_number, counted
from xdl.flat import host_copies
from xdl.train.callback import Callback, check_monitor, continues_run, ended_before_its_first_step, measures_other_data


# Keras's EarlyStopping options → the way here (`EarlyStopping.__init__`)
KERAS_STOPPING_OPTIONS = {
    "restore_best_weights": "it is restore_best here (True by default: the best epoch's weights are put back at the "
                            "end, also when the run went to its last epoch)",
    "mode": "the direction follows monitor: costs are minimized, accuracies maximized",
    "baseline": "not offered: the first epoch is the first best",
    "start_from_epoch": "not offered: every epoch counts (a larger patience waits out a slow start)",
    "verbose": "the stop is said in history.stopped_by and history.stopped_epoch (xdl train prints it)",
}


def patience_reason(monitor: str, wait: int) -> str:
    """Why a run stopped early, as its history says it: "dev cost did not improve for 15 epochs"."""
    return f"{monitor.replace('_', ' ')} did not improve for {counted(wait, 'epoch')}"


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

    The settings after ``monitor`` are keywords only: Keras's EarlyStopping(monitor, min_delta,
    patience) takes min_delta second, and ``EarlyStopping("dev_cost", 1, 3)`` was patience 1 and
    min_delta 3 here without a word.
    """

    reads_monitor = True

    def __init__(self, monitor: str = "dev_cost", *, patience: int = 5, min_delta: float = 0.0,
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
        if not trainer.resumed and self.run_weights(trainer.model) is not None:
            # the run goes on from where it was, not from its best — unless the user has put weights of
            # their own in since, loaded (even the best again) or written (a resume has the checkpoint's)
            trainer.model.load_state_dict(self.run_state)
            # the history no longer says the best epoch's weights are in the model (`on_train_end` says it again):
            # kept, the run's checkpoints and a Ctrl-C's history said so of the weights it trained on from
            trainer.history.best_epoch = None
            self._before = (*self._before[:2], True)
        self.run_state = None
        if self.wait >= self.patience:
            if trainer.resumed:  # a run resumed from a stop of its own stays stopped, ending as it ended (its
                trainer.stop_training, trainer.history.stopped_by = True, self._reason()  # best restored)
            else:  # a later fit of the run after it stopped: it trains on, patience anew (as Keras's fit)
                self.wait = 0

    def run_weights(self, model) -> dict | None:
        """The run's last weights (a state dict) where ``model`` still holds the best epoch's that
        `on_train_end` put back over them — no weights of the user's own loaded or written since —, else
        None: what the run goes on from (a later fit, a checkpoint written after the fit)."""
        restored = self.run_state is not None and _loads(model) == self._loads_at_end \
            and _same_parameters(model, self.best_state)
        return self.run_state if restored else None

    def _reason(self) -> str:
        return patience_reason(self.monitor, self.wait)

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
            trainer.history.best_epoch = self.best_epoch

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}, dict(self.best_state or {})

    def load_state_dict(self, state, arrays):
        self.best, self.best_epoch, self.wait = float(state["best"]), state["best_epoch"], int(state["wait"])
        self.best_state = dict(arrays) or None


def _loads(model) -> int:
    """How many times ``model.load_state_dict`` wrote into the model (`xdl.load(path, model=)` too)."""
    return model.__dict__.get("_state_loads", 0)


def _same_parameters(model, state: dict | None) -> bool:
    """Whether ``model``'s parameters are those of ``state``, bit for bit (its buffers aside: a forward
    pass in training mode moves batch norm's running statistics), read in one host read per flat buffer
    (`host_copies`)."""
    named = list(model.named_parameters())
    if state is None or any(name not in state for name, _ in named):
        return False
    values = host_copies([p for _, p in named])
    return all(np.array_equal(value, state[name]) for (name, _), value in zip(named, values))
