"""The training workflow: `Trainer`, its `History`, and callbacks."""

from xdl.train.callbacks import CHECKPOINT_FILE, Callback, Checkpoint, EarlyStopping
from xdl.train.history import History
from xdl.train.trainer import Trainer

__all__ = ["CHECKPOINT_FILE", "Callback", "Checkpoint", "EarlyStopping", "History", "Trainer"]
