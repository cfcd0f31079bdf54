"""Hyperparameter search: spaces on each hyperparameter's own scale, random / grid / coarse-to-fine
/ TPE strategies, trials one at a time, batched (`xdl.train.fit_many`) or on Dask workers, a
resumable `Study` that one search at a time holds (`StudyInUseError` for a second); `OptunaPruning`
for a `Trainer` in an Optuna objective of one's own; `SavedTrialMismatchError` for a resume whose saved trials
hold other values than the search draws for them."""

from xdl.lock import DirectoryInUseError as StudyInUseError  # another search holds the study
from xdl.tune.optuna_pruning import OptunaPruning
from xdl.tune.search import EXECUTIONS, STRATEGIES, SavedTrialMismatchError, tune, zoom
from xdl.tune.space import (DEFAULT_SPACE, Choice, Dimension, IntUniform, LogUniform, OneMinusLog, Space,
                            Uniform)
from xdl.tune.study import Study, Trial

__all__ = ["Choice", "DEFAULT_SPACE", "Dimension", "EXECUTIONS", "IntUniform", "LogUniform", "OneMinusLog",
           "OptunaPruning", "STRATEGIES", "SavedTrialMismatchError", "Space", "Study", "StudyInUseError", "Trial",
           "Uniform", "tune", "zoom"]
