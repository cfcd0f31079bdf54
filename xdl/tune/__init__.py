"""Hyperparameter search: spaces on each hyperparameter's own scale, random / grid / coarse-to-fine
strategies, trials one at a time or batched (`xdl.train.fit_many`), a resumable `Study`."""

from xdl.tune.search import EXECUTIONS, STRATEGIES, tune, zoom
from xdl.tune.space import (DEFAULT_SPACE, Choice, Dimension, IntUniform, LogUniform, OneMinusLog, Space,
                            Uniform)
from xdl.tune.study import Study, Trial

__all__ = ["Choice", "DEFAULT_SPACE", "Dimension", "EXECUTIONS", "IntUniform", "LogUniform", "OneMinusLog",
           "STRATEGIES", "Space", "Study", "Trial", "Uniform", "tune", "zoom"]
