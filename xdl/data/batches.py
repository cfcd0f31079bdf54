"""Mini-batches and label encoding."""

from __future__ import annotations

import copy

import numpy as np

from xdl.backend import backend_of, host_rng
from xdl.caller import warn_caller
from xdl.data.validation import MAX_CLASSES, check_bool, check_int, counted
from xdl.tensor import to_numpy


def minibatches(X, y, batch_size: int, shuffle: bool = True, seed=None,
                min_size: int = 1) -> Minibatches:
    """An iterator of ``(X_batch, y_batch)`` (a `Minibatches`: each ``for`` over it is a new pass,
    the next epoch's, reshuffled, as a PyTorch DataLoader's — one after a ``break`` too): shuffle (with ``seed``, an int or a NumPy Generator;
    None draws from the host generator `xdl.seed` seeds, as PyTorch's shuffling follows
    ``torch.manual_seed``), then partition into batches of ``batch_size``; the last, smaller batch is kept, merged into the
    one before it when it has fewer than ``min_size`` examples (batch norm needs 2; ``min_size``
    ≤ ``batch_size``, as every other batch has ``batch_size``). ``X`` and ``y``: arrays of any
    backend (each indexed where it lives), or lists (read as NumPy arrays).

    >>> import numpy as np
    >>> [len(b) for b, _ in minibatches(np.zeros((10, 2)), np.zeros(10), 4)]
    [4, 4, 2]
    >>> [len(b) for b, _ in minibatches(np.zeros((9, 2)), np.zeros(9), 4, min_size=2)]
    [4, 5]
    """
    X, y = _indexable(X, "X"), _indexable(y, "y")  # all checked at the call, not at the first batch
    _check_sizes(batch_size, min_size)
    check_bool(shuffle, "shuffle")
    if not (seed is None or isinstance(seed, np.random.Generator)):
        check_int(seed, "seed", low=0, expected="None, an integer ≥ 0 or a NumPy Generator")
    if len(X) != len(y):
        raise ValueError(f"X has {counted(len(X), 'example')} but y has {len(y)} (they must have the same length)")
    rng = host_rng() if seed is None else np.random.default_rng(seed)
    return Minibatches(X, y, batch_bounds(len(X), batch_size, min_size), rng if shuffle else None)


class Minibatches:
    """What `minibatches` returns: each ``for`` over it (``for epoch …: for Xb, yb in batches``,
    PyTorch's DataLoader habit) is a new pass, reshuffled from the same generator — epoch e's order
    is the e-th permutation drawn from ``seed`` — and a pass left part-way (a ``break`` after a
    look at the first batch) leaves the next ``for`` whole, as a DataLoader's; ``next(batches)``
    gives the next batch of the pass begun last (the first, drawn at the call, until a ``for``).
    ``len`` is the number of batches of a pass.

    Why: a generator's second ``for`` yielded nothing, so every epoch after the first trained on no
    batch, silently; and a ``for`` that went on with a pass broken off trained its first epoch on
    the rest of it."""

    def __init__(self, X, y, bounds, rng: np.random.Generator | None):
        self._X, self._y, self._bounds, self._rng = X, y, bounds, rng
        self._pass = self._new_pass()  # the first order drawn at the call (None: from `xdl.seed`'s generator)
        self._begun = False  # whether a batch of it was taken: the next ``for`` draws a new pass

    def _new_pass(self) -> _Pass:
        m = len(self._X)
        order = self._rng.permutation(m) if self._rng is not None else np.arange(m)
        return _Pass(self._X, self._y, order, self._bounds)

    def __iter__(self) -> _Pass:
        if self._begun:  # the next epoch's
            self._pass = self._new_pass()
        self._begun = True
        return self._pass

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        self._begun = True
        return next(self._pass)

    def __len__(self) -> int:
        return len(self._bounds)

    def __copy__(self) -> Minibatches:
        """A copy with the data shared and its own place in the pass and generator: it yields what
        the original would, and taking its batches leaves the original's where they were (sharing
        them, the copy's ``for`` used up the original's pass, whose next ``for`` yielded nothing)."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other._pass, other._rng = copy.copy(self._pass), copy.deepcopy(self._rng)
        return other


class _Pass:
    """One pass's batches in ``order``, an iterator that pickles and copies (a generator did not:
    ``copy.deepcopy`` or ``pickle`` of a `Minibatches` — to a worker process — failed with
    "cannot pickle 'generator' object"): a copy goes on from the same batch."""

    def __init__(self, X, y, order: np.ndarray, bounds):
        self._X, self._y, self._bounds, self._next = X, y, bounds, 0
        self._order_X, self._order_y = _order_for(X, order), _order_for(y, order)

    def __iter__(self) -> _Pass:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        if self._next >= len(self._bounds):
            raise StopIteration
        start, stop = self._bounds[self._next]
        self._next += 1
        return self._X[self._order_X[start:stop]], self._y[self._order_y[start:stop]]


def _check_sizes(batch_size, min_size) -> None:
    """``batch_size`` and ``min_size`` are positive integers (a bool is no size) with ``min_size`` ≤
    ``batch_size``: a larger one would leave every full batch below the smallest the model takes."""
    check_int(batch_size, "batch_size")
    check_int(min_size, "min_size")
    if min_size > batch_size:
        raise ValueError(f"min_size ({min_size}) must be at most batch_size ({batch_size}): every batch of "
                         f"batch_size examples would be smaller than min_size")


def batch_bounds(m: int, batch_size: int, min_size: int = 1) -> list[tuple[int, int]]:
    """(start, stop) of each batch `minibatches` yields for ``m`` examples."""
    check_int(m, "m (number of examples)", low=0)
    _check_sizes(batch_size, min_size)
    bounds = [(start, min(start + batch_size, m)) for start in range(0, m, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_size:
        bounds[-2:] = [(bounds[-2][0], m)]
    return bounds


def training_batches(m: int, batch_size: int, min_size: int = 1) -> list[tuple[int, int]]:
    """`batch_bounds` of a training set of ``m`` examples, checked for a model that needs batches
    of ``min_size`` (batch norm: 2): ValueError when the whole set is smaller, and a warning (once,
    when the run is planned, at the user's line) when the last batch is merged into the one before it."""
    bounds = batch_bounds(m, batch_size, min_size)  # (its arguments checked first)
    if m < min_size:
        needs = f"batch norm needs batches of at least {min_size}" if min_size > 1 else "a step needs one"
        raise ValueError(f"the training set has {counted(m, 'example')}; {needs}")
    last = m % batch_size
    if 0 < last < min_size and m > batch_size:
        warn_caller(f"the last batch of each epoch would have {counted(last, 'example')}, too few for batch norm; it "
                    f"is merged into the batch before it ({counted(bounds[-1][1] - bounds[-1][0], 'example')}; "
                    "another batch_size avoids it)")
    return bounds


def _indexable(a, name: str):
    """``a`` as an array `minibatches` can index: a backend's array as it is, a list or tuple as a
    NumPy array; else a TypeError naming ``name``."""
    if isinstance(a, list | tuple):
        try:
            a = np.asarray(a)
        except ValueError:  # NumPy's words for a ragged list name neither the argument nor the fix
            raise ValueError(f"{name} must be a rectangular array (every example of the same shape); got a ragged "
                             "sequence") from None
    try:
        backend_of(a)
    except TypeError:
        if not hasattr(a, "__array__"):
            raise TypeError(f"{name} must be a NumPy or CuPy array (or a list of examples, a pandas frame), "
                            f"got {type(a).__name__}") from None
        a = np.asarray(a)  # array-likes that convert (a pandas DataFrame or Series): as NumPy arrays
    if a.ndim == 0:
        raise ValueError(f"{name} must hold examples along its first axis, got a 0-d array")
    return a


def _order_for(a, order: np.ndarray):
    """``order`` where ``a`` lives: a device array is indexed with a device copy of it."""
    return order if isinstance(a, np.ndarray) else backend_of(a).asarray(order)


def one_hot(y, n_classes: int | None = None, dtype=np.float32) -> np.ndarray:
    """(m,) class indices (integers, or whole-number floats: a CSV's labels read by np.loadtxt; an
    (m, 1) column too; an array of any backend, or a Tensor) → (m, n_classes) NumPy rows with a single
    1. Without ``n_classes`` it is the largest label + 1, which an empty ``y`` does not have: pass it.

    >>> one_hot([0, 2], 3)
    array([[1., 0., 0.],
           [0., 0., 1.]], dtype=float32)
    """
    masked = isinstance(y, np.ma.MaskedArray) and bool(np.ma.getmaskarray(y).any())
    if masked and (y.ndim == 1 or y.shape[1:] == (1,)):  # (np.asarray drops the mask: the values under it were
        # encoded as classes)
        first = int(np.flatnonzero(np.ma.getmaskarray(y).reshape(len(y), -1).any(axis=1))[0])
        raise ValueError(f"one_hot: y has masked values, missing labels (first at example {first}); drop those "
                         "examples first")
    y = to_numpy(y)  # (a device array or a Tensor of one, as minibatches and fit take: np.asarray refuses CuPy's)
    if y.ndim == 2 and y.shape[1] == 1:  # a column of indices (a frame's label column, Keras's sparse labels), as
        y = y[:, 0]                      # fit and Keras's to_categorical take it (refused as "got shape (m, 1)")
    if (y.size == 0 and y.ndim == 1) or y.dtype == np.bool_:  # [] reads as float64; a yes/no label is 0/1
        y = y.astype(np.int64)
    # whole-number floats are class indices too (np.loadtxt reads a CSV's label column as 0.0, 1.0, …), as
    # fit, split and Keras's to_categorical take them; bounds below are checked on the values as given
    whole = y.ndim == 1 and np.issubdtype(y.dtype, np.floating) and bool(np.isfinite(y).all()) \
        and bool(np.all(y == np.round(y)))
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or whole):
        raise ValueError(f"one_hot: y must be (m,) integer class indices, got shape {y.shape} and dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise ValueError(f"one_hot: y has negative class indices (min {y.min()})")
    if n_classes is None and y.size == 0:
        raise ValueError("one_hot: y is empty, so the number of classes cannot be read from it; pass n_classes")
    if n_classes is None and int(y.max()) >= MAX_CLASSES:  # (m, 10⁹) rows would be gigabytes of zeros
        raise ValueError(f"one_hot: y has class index {y.max()}; the number of classes must be at most "
                         f"MAX_CLASSES = {MAX_CLASSES}")
    n_classes = int(y.max()) + 1 if n_classes is None else check_int(n_classes, "one_hot: n_classes",
                                                                     high=MAX_CLASSES)
    if y.size and y.max() >= n_classes:
        raise ValueError(f"one_hot: labels must be in [0, {n_classes}), got values in [{y.min()}, {y.max()}]")
    out = np.zeros((len(y), n_classes), dtype=dtype)
    out[np.arange(len(y)), y.astype(np.int64, copy=False)] = 1
    return out
