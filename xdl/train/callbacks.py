"""Callbacks: code that runs at the edges of `Trainer.fit` (early stopping, checkpoints, your own).

A callback's state goes into checkpoints (`state_dict` / `load_state_dict`), so a resumed run
continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from xdl.files import check_writable_dir

CHECKPOINT_FILE = "checkpoint.npz"


class Callback:
    """Override what you need. ``order``: callbacks run by increasing order (checkpoints last, so
    they save the other callbacks' state of the same epoch)."""

    order = 0

    def on_train_begin(self, trainer) -> None: ...

    def on_epoch_end(self, trainer, record: dict) -> None: ...

    def on_train_end(self, trainer) -> None: ...

    def state_dict(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able values, arrays) to store in a checkpoint."""
        return {}, {}

    def load_state_dict(self, state: dict, arrays: dict[str, np.ndarray]) -> None: ...


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``monitor``: a History column, "dev_cost" by default (minimized; accuracies are maximized).
    ``restore_best``: at the end of training, put back the weights of the best epoch (also when
    the run went to its last epoch), and record it as ``history.best_epoch``.
    """

    def __init__(self, monitor: str = "dev_cost", patience: int = 5, min_delta: float = 0.0,
                 restore_best: bool = True):
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"EarlyStopping: patience must be a positive integer, got {patience!r}")
        if min_delta < 0:
            raise ValueError(f"EarlyStopping: min_delta must be ≥ 0, got {min_delta}")
        self.monitor, self.patience, self.min_delta, self.restore_best = monitor, patience, float(min_delta), restore_best
        self.sign = -1.0 if "accuracy" in monitor else 1.0  # compare sign·value, smaller is better
        self._reset()

    def _reset(self):
        self.best, self.best_epoch, self.wait, self.best_state = math.inf, None, 0, None

    def on_train_begin(self, trainer) -> None:
        if not trainer.resumed:
            self._reset()

    def on_epoch_end(self, trainer, record: dict) -> None:
        value = record.get(self.monitor)
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
                trainer.stop_training = True

    def on_train_end(self, trainer) -> None:
        if self.restore_best and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)
            trainer.history.best_epoch = self.best_epoch

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}, dict(self.best_state or {})

    def load_state_dict(self, state, arrays):
        self.best, self.best_epoch, self.wait = float(state["best"]), state["best_epoch"], int(state["wait"])
        self.best_state = dict(arrays) or None


class Checkpoint(Callback):
    """Save the whole training state to ``directory/checkpoint.npz`` every ``every`` epochs
    (atomically: an interrupted save leaves the previous checkpoint intact). The file is also a
    model file: ``xdl.load(path)`` gives the model; ``Trainer.fit(..., resume=directory)`` continues."""

    order = 100

    def __init__(self, directory, every: int = 1):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"Checkpoint: every must be a positive integer, got {every!r}")
        self.directory, self.every = Path(directory), every

    @property
    def path(self) -> Path:
        return self.directory / CHECKPOINT_FILE

    def on_train_begin(self, trainer) -> None:
        check_writable_dir(self.directory, "Checkpoint directory")

    def on_epoch_end(self, trainer, record: dict) -> None:
        if record["epoch"] % self.every == 0 or trainer.stop_training:
            trainer.save_checkpoint(self.path)

