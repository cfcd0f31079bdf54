"""Train/dev/test splits with the course's size-aware defaults.

Up to about a million examples the classic 60/20/20 split leaves dev and test big enough to see
small differences; beyond that, 10,000 examples each (1% at a million) are plenty and the rest is
better spent on training (98/1/1 and smaller).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from xdl.data.validation import check_features

LARGE = 1_000_000  # above this many examples, dev and test are fixed-size
LARGE_HOLDOUT = 10_000


class Split(NamedTuple):
    X_train: np.ndarray
    y_train: np.ndarray
    X_dev: np.ndarray
    y_dev: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def holdout_sizes(m: int, dev=None, test=None) -> tuple[int, int]:
    """Number of dev and test examples: a fraction in (0, 1) or a count each; defaults by size."""
    default = 0.2 if m <= LARGE else LARGE_HOLDOUT
    sizes = []
    for name, value in (("dev", dev), ("test", test)):
        value = default if value is None else value
        if isinstance(value, float | np.floating) and 0 <= value < 1:
            sizes.append(max(int(round(value * m)), 1 if value > 0 else 0))  # a fraction asked for is never empty
        elif isinstance(value, int | np.integer) and not isinstance(value, bool) and 0 <= value < m:
            sizes.append(int(value))
        else:
            raise ValueError(f"{name} must be a fraction in [0, 1) or a count in [0, {m}), got {value!r}")
    if sizes[0] + sizes[1] >= m:
        raise ValueError(f"dev ({sizes[0]}) and test ({sizes[1]}) leave no training examples out of {m}")
    return sizes[0], sizes[1]


def split(X, y, dev=None, test=None, seed: int = 0, stratify: bool = True) -> Split:
    """Shuffle and split into train, dev and test (dev and test from the same distribution).

    ``dev``/``test``: fractions or counts (default: 20% each up to 1M examples, else 10,000 each).
    ``stratify`` keeps each class's share in every part (for class labels).

    >>> import numpy as np
    >>> s = split(np.zeros((100, 3)), np.arange(100) % 2)
    >>> [len(part) for part in s[::2]], int(s.y_dev.sum())
    ([60, 20, 20], 10)
    """
    X = check_features(X)
    y = np.asarray(y)
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} examples but y has {len(y)} (they must have the same length)")
    m = len(X)
    n_dev, n_test = holdout_sizes(m, dev, test)
    rng = np.random.default_rng(seed)
    if stratify and y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        order = _stratified_order(y, rng)
    else:
        order = rng.permutation(m)
    # In stratified order the classes are interleaved, so consecutive runs keep the class shares.
    dev_idx, test_idx, train_idx = np.split(order, [n_dev, n_dev + n_test])
    return Split(X[train_idx], y[train_idx], X[dev_idx], y[dev_idx], X[test_idx], y[test_idx])


def _stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation in which every prefix holds each class in proportion to its frequency: each
    example gets the key (rank within its shuffled class + U(0,1)) / class size, sorted."""
    keys = np.empty(len(y))
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rank = rng.permutation(len(idx))
        keys[idx] = (rank + rng.uniform(size=len(idx))) / len(idx)
    return np.argsort(keys, kind="stable")
