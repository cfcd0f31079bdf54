"""Optimizers over flat parameter buffers, and learning-rate schedules."""

from xdl.optim import schedules
from xdl.optim.optimizer import Optimizer, param_groups
from xdl.optim.rules import SGD, Adam, AdamW, Momentum, RMSprop

__all__ = ["SGD", "Adam", "AdamW", "Momentum", "Optimizer", "RMSprop", "param_groups", "schedules"]
