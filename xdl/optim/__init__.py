"""Optimizers over flat parameter buffers, and learning-rate schedules."""

from xdl.optim import schedules
from xdl.optim.optimizer import Optimizer, param_groups
from xdl.optim.rules import SGD, Adam, AdamW, Momentum, RMSprop
from xdl.optim.stacked import StackedOptimizer

__all__ = ["SGD", "Adam", "AdamW", "Momentum", "Optimizer", "RMSprop", "StackedOptimizer", "param_groups", "schedules"]
