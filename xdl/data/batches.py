"""Mini-batches and label encoding."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from xdl.backend import backend_of
from xdl.caller import warn_caller


def minibatches(X, y, batch_size: int, shuffle: bool = True, seed=None,
                min_size: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(X_batch, y_batch)``: shuffle (with ``seed``, an int or a NumPy Generator), then
    partition into batches of ``batch_size``; the last, smaller batch is kept, merged into the
    one before it when it has fewer than ``min_size`` examples (batch norm needs 2).

    >>> import numpy as np
    >>> [len(b) for b, _ in minibatches(np.zeros((10, 2)), np.zeros(10), 4)]
    [4, 4, 2]
    >>> [len(b) for b, _ in minibatches(np.zeros((9, 2)), np.zeros(9), 4, min_size=2)]
    [4, 5]
    """
    if not isinstance(batch_size, int | np.integer) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} examples but y has {len(y)} (they must have the same length)")
    m = len(X)
    order = np.random.default_rng(seed).permutation(m) if shuffle else np.arange(m)
    if not isinstance(X, np.ndarray):  # a device array: index it with a device copy of the order
        order = backend_of(X).asarray(order)
    for start, stop in batch_bounds(m, batch_size, min_size):
        idx = order[start:stop]
        yield X[idx], y[idx]


def batch_bounds(m: int, batch_size: int, min_size: int = 1) -> list[tuple[int, int]]:
    """(start, stop) of each batch `minibatches` yields for ``m`` examples."""
    bounds = [(start, min(start + batch_size, m)) for start in range(0, m, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_size:
        bounds[-2:] = [(bounds[-2][0], m)]
    return bounds


def training_batches(m: int, batch_size: int, min_size: int = 1) -> list[tuple[int, int]]:
    """`batch_bounds` of a training set of ``m`` examples, checked for a model that needs batches
    of ``min_size`` (batch norm: 2): ValueError when the whole set is smaller, and a warning (once,
    when the run is planned, at the user's line) when the last batch is merged into the one before it."""
    if m < min_size:
        raise ValueError(f"the training set has {m} example(s); batch norm needs batches of at least {min_size}")
    bounds = batch_bounds(m, batch_size, min_size)
    last = m % batch_size
    if 0 < last < min_size and m > batch_size:
        warn_caller(f"the last batch of each epoch would have {last} example(s), too few for batch norm; it is "
                    f"merged into the batch before it ({bounds[-1][1] - bounds[-1][0]} examples; another batch_size "
                    "avoids it)")
    return bounds


def one_hot(y, n_classes: int | None = None, dtype=np.float32) -> np.ndarray:
    """(m,) class indices → (m, n_classes) rows with a single 1.

    >>> one_hot([0, 2], 3)
    array([[1., 0., 0.],
           [0., 0., 1.]], dtype=float32)
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"one_hot: y must be (m,) integer class indices, got shape {y.shape} and dtype {y.dtype}")
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"one_hot: labels must be in [0, {n_classes}), got values in [{y.min()}, {y.max()}]")
    out = np.zeros((len(y), n_classes), dtype=dtype)
    out[np.arange(len(y)), y] = 1
    return out
