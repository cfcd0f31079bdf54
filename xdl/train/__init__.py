"""The training workflow: `Trainer`, its `History`, callbacks, and what stops a run cleanly."""

from xdl.train.callbacks import (BEST_FILE, CHECKPOINT_FILE, Callback, Checkpoint, Control, EarlyStopping,
                                 ReduceLROnPlateau)
from xdl.train.history import History
from xdl.train.interrupt import Interrupted
from xdl.train.lr_find import LRFindResult, lr_find
from xdl.train.many import ManyTrainer, Result, fit_many
from xdl.train.trainer import Trainer

__all__ = ["BEST_FILE", "CHECKPOINT_FILE", "Callback", "Checkpoint", "Control", "EarlyStopping", "History", "Interrupted",
           "LRFindResult", "ManyTrainer", "ReduceLROnPlateau", "Result", "Trainer", "fit_many",
           "lr_find"]
