"""Train/dev/test splits with the course's size-aware defaults.

Up to a million examples (that many included) the classic 60/20/20 split leaves dev and test big
enough to see small differences; beyond that, 10,000 examples each (1% of a million) are plenty and
the rest is better spent on training (98/1/1 and smaller).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from xdl.backend import on_backend_of
from xdl.caller import warn_caller
from xdl.data.validation import (DISTRIBUTION_TOLERANCE, check_bool, check_features, check_int, counted,
                                 is_pandas_missing, per_example)
from xdl.tensor import to_numpy

LARGE = 1_000_000  # above this many examples, dev and test are fixed-size
LARGE_HOLDOUT = 10_000


class Split(NamedTuple):
    """What `split` returns: the train, dev and test parts, by name (``s.X_dev``) or in this order
    (``X_train, y_train, X_dev, y_dev, X_test, y_test = s``; ``s[::2]`` are the three X's): NumPy
    arrays, or CuPy arrays where X or y was one, or frames and series where X and y were (pandas' rows, as
    train_test_split gives them)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_dev: np.ndarray
    y_dev: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def __repr__(self) -> str:
        """Each part's shape and dtype, not its values (a NamedTuple's repr printed all six arrays:
        3,400 characters of the digits' values for a notebook cell ending with ``split(X, y)``)."""
        return f"Split({', '.join(f'{name}: {_described(part)}' for name, part in zip(self._fields, self))})"


def _described(part) -> str:
    """``part``'s shape and dtype, its kind first where it is no NumPy array: ``(1079, 64) float32``,
    ``DataFrame (1079, 64)`` (a frame's columns have dtypes of their own), ``cupy (1079,) int64``."""
    kind = type(part).__name__ if type(part).__module__.startswith("pandas") else type(part).__module__.split(".")[0]
    dtype = getattr(part, "dtype", None)
    return " ".join(str(item) for item in (kind if kind != "numpy" else None, getattr(part, "shape", None), dtype)
                    if item is not None)


def holdout_sizes(m: int, dev=None, test=None) -> tuple[int, int]:
    """Number of dev and test examples: a fraction in [0, 1) of ``m`` (rounded; one asked for is at
    least 1) or a count in [0, m) each; defaults by size (`split`)."""
    m = check_int(m, "holdout_sizes: m (number of examples)", low=0)  # (inf gave (10000, 10000), "abc" a bare TypeError)
    default = 0.2 if m <= LARGE else LARGE_HOLDOUT
    sizes = []
    for name, value in (("dev", dev), ("test", test)):
        value = default if value is None else value
        if isinstance(value, float | np.floating) and 0 <= value < 1:
            # in float64: a NumPy float16 or float32 fraction times m stayed in its own dtype (NEP 50), so
            # np.float16(0.2) of 100,000 examples overflowed (OverflowError) and float32's rounded m
            sizes.append(max(int(round(float(value) * m)), 1 if value > 0 else 0))  # a fraction asked for is never empty
        elif isinstance(value, int | np.integer) and not isinstance(value, bool) and 0 <= value < m:
            sizes.append(int(value))
        else:
            raise ValueError(f"{name} must be a fraction in [0, 1) or a count in [0, {m}), got {value!r}")
    if sizes[0] + sizes[1] >= m:
        raise ValueError(f"dev ({sizes[0]}) and test ({sizes[1]}) leave no training examples out of {m}")
    return sizes[0], sizes[1]


def split(X, y, dev=None, test=None, seed: int = 0, stratify: bool | None = None) -> Split:
    """Shuffle ``X`` and ``y`` (the same rows) and split them into train, dev and test (dev and test
    from the same distribution).

    ``dev``/``test``: fractions or counts (default: 20% each up to 1M examples, else 10,000 each).
    ``seed``: the shuffle's, an integer ≥ 0 (0 by default): the same seed, X and y give the same
    parts, whatever `xdl.seed` set.
    X's rows are returned as they are (its dtype: integers stay integers; a data frame's, and a series'
    labels, as a frame and a series, as train_test_split gives them; a CuPy array's, and CuPy labels, as
    CuPy arrays — each part on the device its array came from; NaN, a missing value, too:
    fill it from the training part, as scikit-learn's ``SimpleImputer().fit(X_train)``, before `fit`).
    ``stratify`` keeps each class's share in every part — to within 1 + (C − 2)·p examples of a
    class's exact share in dev and in train, and twice that in test, C the number of classes and p
    the class's share of y (so within 1, 1 and 2 for two classes; under C − 1 and 2(C − 1) for any):
    the parts are cut from one order that interleaves the shuffled classes, where a prefix holds
    each class to within one of its share, and the classes' misses add up in the others' counts
    (with many small classes beside a large one, the small ones may all miss a small test part;
    scikit-learn's allocation comes within one, a different partition that checkpoints of runs
    already made would not resume with). True asks for it (each class needs 2
    examples or more, as scikit-learn's: a class of one would be missing from train or from the
    held-out parts); None, the default, stratifies where every class has 2 or more, and otherwise
    shuffles — saying so when some class has just one (labels all distinct are no classes: an
    id, a regression's whole numbers); False shuffles. The classes are the distinct values of 1-D
    labels of any type (integers, strings, booleans, whole-number floats…, as scikit-learn's
    ``train_test_split(stratify=y)``), and of 2-D ones the argmax of each row (one-hot or soft rows:
    the class xdl reads in them; one column: its values). Continuous targets (floats that are not
    all whole numbers, in rows that are not distributions: a regression's) are just shuffled. NaN
    or Inf in ``y`` (a float one or one of objects) is refused, naming the example.

    >>> import numpy as np
    >>> s = split(np.zeros((100, 3)), np.arange(100) % 2)
    >>> [len(part) for part in s[::2]], int(s.y_dev.sum())
    ([60, 20, 20], 10)
    """
    # (checked first, as given: a sparse matrix named; the rows returned are X's own, in its dtype, as
    # train_test_split's). NaN and Inf pass, as there: missing values are filled after the split, from the
    # training part alone (filled before, the dev and test values would leak into train's); fit refuses them.
    # Integers are checked as they are (``cast=False``): the rows returned are X's own, and a float32 copy
    # of a uint8 set, made only to be checked, took 4× its size
    check_features(X, finite=False, cast=False)
    X_given, X = X, to_numpy(X)
    if y is None:
        raise TypeError("y is None; split needs the labels (or targets) of X")
    # (said "X has 40 examples but y has 0" of a generator, a sparse column read as one object)
    y_given, y = y, per_example(y, "y", "an array of one label or target per example of X")
    check_int(seed, "split: seed", low=0)
    if stratify is not None:
        check_bool(stratify, "split: stratify")
    if y.shape[:1] != (len(X),):
        raise ValueError(f"X has {counted(len(X), 'example')} but y has {len(y)} "
                         "(they must have the same length)")
    if len(X) == 0:
        raise ValueError("X has no examples to split")
    finite = _finite(y.reshape(len(y), -1)).all(axis=1)
    if not finite.all():
        raise ValueError(f"y contains NaN or Inf (first at example {int(np.flatnonzero(~finite)[0])})")
    m = len(X)
    n_dev, n_test = holdout_sizes(m, dev, test)
    rng = np.random.default_rng(seed)
    classes = _classes(y) if stratify is not False else None
    counts = np.bincount(classes) if classes is not None else None
    if counts is not None and counts.min() < 2:
        lone = y.reshape(len(y), -1)[int(np.flatnonzero(counts[classes] < 2)[0])]
        label = repr(lone[:1].tolist()[0]) if len(lone) == 1 else f"{int(lone.argmax())} (the argmax of its row)"
        why = (f"y: class {label} has only 1 example; a stratified split needs at least 2 of each class (one would "
               "be missing from train or from dev and test)")
        if stratify:
            raise ValueError(f"{why}: pass stratify=False to split without it, or gather more examples of it")
        if counts.max() > 1:  # (labels all distinct are no classes: nothing to say)
            warn_caller(f"{why}: split without stratifying (stratify=True refuses it)")
        classes = None
    order = _stratified_order(classes, rng) if classes is not None else rng.permutation(m)
    # In stratified order the classes are interleaved, so consecutive runs keep the class shares.
    dev_idx, test_idx, train_idx = np.split(order, [n_dev, n_dev + n_test])
    return Split(*(_rows(given, array, index) for index in (train_idx, dev_idx, test_idx)
                   for given, array in ((X_given, X), (y_given, y))))


def _rows(given, array: np.ndarray, index: np.ndarray):
    """Rows ``index`` of a data frame or series as its own (pandas' ``iloc``), as train_test_split
    gives them — its columns' names and dtypes kept, so a model fitted on the training part keeps
    the names and refuses a frame of them in another order (as an array, it read one by position,
    silently); of anything else, those of its NumPy ``array``, on ``given``'s backend (a CuPy array's as a CuPy
    array: they were NumPy ones, and the next step of a device pipeline mixed the two)."""
    if hasattr(given, "iloc") and not isinstance(given, np.ndarray):
        return given.iloc[index]
    return on_backend_of(array[index], given)


def _finite(values: np.ndarray) -> np.ndarray:
    """Which ``values`` are not NaN or ±Inf: floats are checked, other values (integers, strings,
    None) are finite. An object array (a pandas column) is looked into: NumPy cannot order a NaN
    among its labels, so each NaN would be a class of its own; pandas' missing value ``pd.NA`` (a
    nullable string or boolean column's) is one too — unnamed, it was refused as labels that "can
    be sorted" only, with stratify=False as the way (which kept it, a label of no class)."""
    if values.dtype.kind in "fc":
        return np.isfinite(values)
    if values.dtype != object:
        return np.ones(values.shape, dtype=bool)
    return ~np.frompyfunc(lambda v: isinstance(v, float | complex | np.inexact) and not np.isfinite(v)
                          or is_pandas_missing(v), 1, 1)(values).astype(bool)


def _classes(y: np.ndarray) -> np.ndarray | None:
    """Each example's class, numbered in the sorted order of the labels (as `split` reads them);
    None for continuous targets, which have no classes to keep the shares of: floats that are not
    all whole numbers, but for rows that are distributions (one-hot or soft labels)."""
    rows = y.reshape(len(y), -1)
    if rows.dtype.kind == "f" and not np.array_equal(rows, np.round(rows)) and not _distributions(rows):
        return None
    labels = rows[:, 0] if rows.shape[1] == 1 else rows.argmax(axis=1)
    try:
        return np.unique(labels, return_inverse=True)[1]
    except TypeError:  # labels of mixed types (None among strings) have no order to number them by
        raise ValueError(f"y: stratify needs labels that can be sorted (all numbers or all strings), got dtype "
                         f"{y.dtype}; pass stratify=False to split without it") from None


def _distributions(rows: np.ndarray) -> bool:
    """Whether each of several columns' rows is a distribution over classes (≥ 0, summing to 1
    within `DISTRIBUTION_TOLERANCE`, as `SoftmaxCrossEntropy` reads them): soft labels, whose class is
    their argmax."""
    return rows.shape[1] > 1 and bool((rows >= 0).all()) and \
        bool((np.abs(rows.sum(axis=1) - 1) <= DISTRIBUTION_TOLERANCE).all())


def _stratified_order(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation in which every prefix holds each class in proportion to its frequency: each
    example gets the key (rank within its shuffled class + U(0,1)) / class size, sorted."""
    keys = np.empty(len(classes))
    sizes = np.bincount(classes)
    members = np.split(np.argsort(classes, kind="stable"), np.cumsum(sizes)[:-1])  # each class's, in index order
    for idx, n in zip(members, sizes):
        keys[idx] = (rng.permutation(n) + rng.uniform(size=n)) / n
    return np.argsort(keys, kind="stable")
