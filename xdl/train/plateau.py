"""`ReduceLROnPlateau`: lower the learning rate when the monitored metric has stopped improving
(Keras's callback and PyTorch's scheduler of that name), its state in checkpoints."""

from __future__ import annotations

import math

import numpy as np

from xdl.data.validation import check_int, check_number
from xdl.optim.optimizer import Optimizer, check_rate
from xdl.train.callback import Callback, check_monitor, continues_run, ended_before_its_first_step, measures_other_data


# Keras's and PyTorch's options → the way here (`ReduceLROnPlateau.__init__`)
FOREIGN_PLATEAU_OPTIONS = {
    "mode": "the direction follows monitor: costs are minimized, accuracies maximized",
    "threshold": "it is min_delta here, absolute (Keras's): improved means sign·value < best − min_delta",
    "threshold_mode": "min_delta is absolute here (Keras's min_delta; PyTorch's threshold_mode='abs')",
    "eps": "not offered: a group's rate is lowered whenever it is above min_lr",
    "verbose": "each epoch's rate is in the history's lr column",
    "optimizer": "it sets the trainer's optimizer: give it to Trainer(callbacks=[...])",
}


def plateau_step(state: dict, score: float, patience: int, cooldown: int, min_delta: float) -> bool:
    """One epoch's end of the rule on ``state`` (best, wait, cooldown_left), ``score`` = sign·value
    (smaller is better); True where the rate is to be lowered now. In order:

    - improved ⇔ score < best − min_delta; then best = score;
    - wait = 0 if improved or cooldown_left > 0, else wait + 1; cooldown_left = max(cooldown_left − 1, 0);
    - lower where wait ≥ patience: then wait = 0 and cooldown_left = cooldown.
    """
    improved = score < state["best"] - min_delta
    if improved:
        state["best"] = score
    state["wait"] = 0 if improved or state["cooldown_left"] else state["wait"] + 1
    state["cooldown_left"] = max(state["cooldown_left"] - 1, 0)
    if state["wait"] < patience:
        return False
    state["wait"], state["cooldown_left"] = 0, cooldown
    return True


def lowered_rate(rate: float, factor: float, min_lr: float) -> float:
    """A group's rate after a plateau: max(rate·factor, min_lr) where rate > min_lr, else rate (a rate
    at or below min_lr — a frozen group's 0 — is left as it is)."""
    return max(rate * factor, min_lr) if rate > min_lr else rate


class ReduceLROnPlateau(Callback):
    """Multiply every parameter group's learning rate by ``factor`` when ``monitor`` has not improved
    by more than ``min_delta`` for ``patience`` epochs (`plateau_step`):

        improved ⇔ sign·value < best − min_delta      (sign −1 for an accuracy, else 1)
        new rate = max(rate·factor, min_lr), for each group whose rate > min_lr

    ``monitor``: one of `MONITORED`, "dev_cost" by default (minimized; accuracies are maximized).
    ``patience``: the epochs without improvement in a row that lower the rate, at the end of the last of
    them — Keras's (and `EarlyStopping`'s) count: patience=1 lowers it at the first such epoch, as
    PyTorch's patience=0 does (PyTorch's patience=P is P + 1 here).
    ``min_delta``: ≥ 0, absolute, in the monitor's units (Keras's min_delta; PyTorch's
    threshold_mode='abs'), 1e-4 by default as both.
    ``cooldown``: the epochs after a lowering that count no epoch without improvement (PyTorch's:
    the earliest next lowering is cooldown + patience epochs later; a best is still taken then).
    ``min_lr``: no group's rate is lowered below it; one already at or below it is left as it is.
    A rate lowered below the model's dtype's smallest positive number is 0, as the update holds it.
    The settings after ``patience`` are keywords only: Keras's ReduceLROnPlateau(monitor, factor, patience,
    verbose) takes verbose fourth, and ``ReduceLROnPlateau("dev_cost", 0.5, 5, 1)`` was min_delta=1.

    The first group's rate of each epoch is the history's ``lr``; a lowering at an epoch's end shows in
    the next epoch's record. Its best, wait and cooldown go into checkpoints, and the rates it set with the
    optimizer's settings: a resumed run goes on as the one not interrupted. A later fit of the same trainer
    goes on with them, unless it measures the monitor on other data (`measures_other_data`): then they start
    afresh (the rates as they are). A trainer with an epoch ``schedule`` (which sets the rate at each epoch's
    start, over this one's) or a group whose lr is a per-step schedule is refused before the fit trains
    (`check_fits`); so is `fit_many`'s `ManyTrainer` (its K models' rates are one per model).
    """

    reads_monitor = True

    def __init__(self, monitor: str = "dev_cost", factor: float = 0.1, patience: int = 10, *, min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0, **options):
        if isinstance(monitor, Optimizer):  # (PyTorch's scheduler takes its optimizer first: "monitor must be one of")
            raise TypeError(f"ReduceLROnPlateau: monitor is an optimizer ({type(monitor).__name__}), PyTorch's first "
                            f"argument; {FOREIGN_PLATEAU_OPTIONS['optimizer']}")
        for name in options:  # (Keras's mode="min", PyTorch's threshold=: Python's "unexpected keyword argument")
            way = FOREIGN_PLATEAU_OPTIONS.get(name, "not an option of ReduceLROnPlateau")
            raise TypeError(f"ReduceLROnPlateau() takes no option {name}=: {way}")
        check_monitor(monitor, "ReduceLROnPlateau")
        if isinstance(patience, int | np.integer) and not isinstance(patience, bool) and patience == 0:
            raise ValueError("ReduceLROnPlateau: patience must be a positive integer, got 0 (patience=1 lowers the "
                             "rate at the first epoch without improvement, as PyTorch's patience=0 and Keras's 0 or 1)")
        self.patience = check_int(patience, "ReduceLROnPlateau: patience")
        self.factor = check_number(factor, "ReduceLROnPlateau: factor", "a number in (0, 1)", lambda f: 0 < f < 1)
        self.min_delta = check_number(min_delta, "ReduceLROnPlateau: min_delta", "a number ≥ 0",
                                      lambda d: 0 <= d < math.inf)
        self.cooldown = check_int(cooldown, "ReduceLROnPlateau: cooldown", low=0)
        self.min_lr = check_number(min_lr, "ReduceLROnPlateau: min_lr", "a number ≥ 0", lambda r: 0 <= r < math.inf)
        self.monitor = monitor
        self.sign = -1.0 if "accuracy" in monitor else 1.0  # compare sign·value, smaller is better
        self._reset()

    def _reset(self) -> None:
        self.best, self.wait, self.cooldown_left = math.inf, 0, 0

    def _state(self) -> dict:
        return {"best": self.best, "wait": self.wait, "cooldown_left": self.cooldown_left}

    def check_fits(self, trainer) -> None:
        """Refuse, before the fit trains, a ``trainer`` whose rates this cannot own: fit_many's `ManyTrainer`
        (K models with a rate each, and a record that is its best model's), an epoch schedule, which sets
        every group's rate at each epoch's start (a lowering here would be undone, unsaid), and a per-step
        schedule, which is no number to multiply."""
        # fit_many's ManyTrainer, by the attribute only it has: importing it here, even deferred, is a cycle
        # (xdl.train.many → xdl.config → this module; tests/test_architecture.py counts deferred imports)
        if hasattr(trainer, "n_models"):
            raise ValueError("ReduceLROnPlateau sets one model's rate from its own record; fit_many's K models have a "
                             "rate each, and the batch's record is its best model's: give each TrainConfig a "
                             "schedule, or train the models one by one with a Trainer")
        if getattr(trainer, "schedule", None) is not None:
            raise ValueError(f"ReduceLROnPlateau: the trainer has an epoch schedule ({trainer.schedule!r}), which "
                             "sets the rate at each epoch's start over the one this lowers; give one of them "
                             "(Trainer(schedule=None) with ReduceLROnPlateau, or the schedule alone)")
        if not isinstance(trainer.optimizer, Optimizer):
            raise TypeError(f"ReduceLROnPlateau: it sets the rates of an xdl Optimizer's groups, and the trainer's "
                            f"optimizer is a {type(trainer.optimizer).__name__}")
        for i, group in enumerate(trainer.optimizer.groups):
            if callable(group.settings["lr"]):
                raise ValueError(f"ReduceLROnPlateau: group {i}'s lr is a per-step schedule "
                                 f"({getattr(group.settings['lr'], '__name__', group.settings['lr'])}), which it "
                                 "cannot lower; give that group a number as its lr")

    def on_train_begin(self, trainer) -> None:
        # what this fit changes before its first step, put back if it ends there (`on_exception`)
        self._before = ((trainer.epoch, trainer.step), self._state())
        if not continues_run(trainer) or measures_other_data(trainer, self.monitor):
            self._reset()

    def on_epoch_end(self, trainer, record: dict) -> None:
        value = record.get(self.monitor)
        if value is None:
            raise ValueError(f"ReduceLROnPlateau monitors {self.monitor!r}, which this run does not measure "
                             "(pass dev=(X_dev, y_dev) to fit for dev metrics)")
        state = self._state()
        lower = plateau_step(state, self.sign * value, self.patience, self.cooldown, self.min_delta)
        self.best, self.wait, self.cooldown_left = state["best"], state["wait"], state["cooldown_left"]
        if lower:
            self._lower(trainer)

    def _lower(self, trainer) -> None:
        """Every group's rate lowered (`lowered_rate`), checked for all before any is set."""
        groups = trainer.optimizer.param_groups
        rates = []
        for i, group in enumerate(groups):
            rate = group["lr"]
            if callable(rate):  # (set by a callback since the fit began)
                raise ValueError(f"ReduceLROnPlateau: group {i}'s lr became a per-step schedule ({rate!r}) during "
                                 "the run, which it cannot lower")
            new = lowered_rate(float(rate), self.factor, self.min_lr)
            rates.append(check_rate(new, f"ReduceLROnPlateau's rate for group {i}", trainer.model.dtype,
                                    decayed=True))  # (below the dtype's smallest positive: 0, as the update holds it)
        for group, rate in zip(groups, rates):
            if rate != group["lr"]:
                group["lr"] = rate

    def on_train_end(self, trainer) -> None:
        self.__dict__.pop("_before", None)

    def on_exception(self, trainer, error) -> None:
        """A fit that ended before its first step leaves the best, wait and cooldown as the fit before
        left them (this fit may have reset them, for data it never trained on)."""
        before = self.__dict__.pop("_before", None)
        if before is not None and ended_before_its_first_step(trainer, before[0]):
            self.best, self.wait, self.cooldown_left = before[1]["best"], before[1]["wait"], before[1]["cooldown_left"]

    def state_dict(self):
        return self._state(), {}

    def load_state_dict(self, state, arrays):
        self.best = float(state["best"])
        self.wait = check_int(state["wait"], "ReduceLROnPlateau state: wait", low=0)
        self.cooldown_left = check_int(state["cooldown_left"], "ReduceLROnPlateau state: cooldown_left", low=0)
