"""The split and the model of a training run's options, as the commands that train them build them: ``xdl
train`` (its run) and ``xdl lr-find`` (its range test) alike (`split_and_model`)."""

from __future__ import annotations

import xdl
from xdl.config import TrainConfig
from xdl.data import split


def split_and_model(config: TrainConfig) -> tuple:
    """(The train/dev/test split of ``config``'s dataset, its number of classes, the model its options build
    over it: its input standardized on the training split), as ``xdl train`` and ``xdl lr-find`` train them."""
    X, y = xdl.datasets.load(config.dataset)
    parts = split(X, y, seed=config.seed)
    n_classes = int(y.max()) + 1
    return parts, n_classes, config.build_model(X.shape[1], n_classes, config.build_standardize(parts.X_train))
