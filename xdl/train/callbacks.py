"""Callbacks: code that runs at the edges of `Trainer.fit` — xdl's own (`EarlyStopping`,
`Checkpoint`, `Control`, `ReduceLROnPlateau`), each in its module, and `Callback`, the base of yours.

A callback's state goes into checkpoints (`state_dict` / `load_state_dict`), so a resumed run
continues exactly where the interrupted one stopped.
"""

from xdl.train.callback import MONITORED, Callback
from xdl.train.checkpoint import Checkpoint
from xdl.train.checkpoint_files import BEST_FILE, CHECKPOINT_FILE
# (a Control an older xdl pickled while a file it applied waited to be renamed names its _Applied here)
from xdl.train.control import CONTROL_FILE, Control
from xdl.train.control import AppliedControl as _Applied  # noqa: F401
from xdl.train.early_stopping import EarlyStopping
from xdl.train.plateau import ReduceLROnPlateau

__all__ = ["BEST_FILE", "CHECKPOINT_FILE", "CONTROL_FILE", "MONITORED", "Callback", "Checkpoint", "Control",
           "EarlyStopping", "ReduceLROnPlateau"]
