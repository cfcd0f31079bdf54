"""Checks at the boundary: arrays a user hands to `fit`, `split` or `predict` fail early, with a
message that names the argument and what was expected, before anything is trained or written."""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Mapping

import numpy as np

from xdl.backend import is_sparse_matrix
from xdl.caller import warn_caller
from xdl.tensor import Tensor, to_numpy


# The most classes a label may name: far above any data set here, and well below what would exhaust
# memory (an output layer of 2**20 units after 256 hidden ones already holds 2**28 weights).
MAX_CLASSES = 2**20
# beyond this many classes, and this many times the distinct labels, a width set by the largest label is
# taken for numbers rather than classes (`note_label_width`)
MANY_CLASSES, CLASSES_PER_LABEL = 1000, 10


# The most features a layer may have: cuBLAS's gemm and the kernels' grids take int32 sizes, so a wider
# layer could never run on the GPU (and 10**30 failed in NumPy as "Maximum allowed dimension exceeded").
MAX_FEATURES = 2**31 - 1


def check_int(value, name: str, low: int = 1, high: int | None = None, expected: str | None = None) -> int:
    """``value`` as an int if it is an integer in [low, high]; else a ValueError naming ``name``
    and what was ``expected`` (by default: a positive integer, or an integer ≥ low)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low \
            or (high is not None and value > high):
        expected = expected or ("a positive integer" if low == 1 else f"an integer ≥ {low}")
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def check_n_features(value, name: str) -> int:
    """A layer's number of features as an int in [1, `MAX_FEATURES`], else a ValueError naming ``name``."""
    value = check_int(value, name)
    if value > MAX_FEATURES:
        raise ValueError(f"{name} must be at most 2**31 − 1 ({MAX_FEATURES}), got {value!r}")
    return value


def check_list(items, name: str, what: str) -> list:
    """``items`` as a list (a generator or a ``filter`` read once, here), or a TypeError naming
    ``name``: None, or one object where a list of ``what`` was meant."""
    if isinstance(items, str | bytes):  # (iterable, but its characters are no list of anything here)
        raise TypeError(f"{name} must be a list of {what} instances, got {items!r}")
    try:
        return list(items)
    except TypeError:
        raise TypeError(f"{name} must be a list of {what} instances, got {items!r}") from None


def check_tensors(items, name: str) -> list:
    """``items`` as a list of xdl Tensors (`check_list`), or a TypeError naming ``name`` and the first
    item that is not one: a list of numbers or NumPy arrays failed deep inside ("'int' object has no
    attribute 'ndim'"), as PyTorch names it ("optimizer can only optimize Tensors")."""
    items = check_list(items, name, "xdl.Tensor")
    for i, item in enumerate(items):
        if not isinstance(item, Tensor):
            raise TypeError(f"{name}[{i}] must be an xdl Tensor (a parameter), got {type(item).__name__}")
    return items


def check_number(value, name: str, expected: str, accept) -> float:
    """``value`` as a float if it is a real number (not a bool or a string) that ``accept`` takes;
    else a ValueError naming ``name`` and what was ``expected``. ``accept`` sees the float (an int
    beyond floats: inf): a Python int of any size is a number, and NumPy's ``isfinite`` of 10**30
    raised a TypeError of its own, ``float(10**400)`` an OverflowError, naming neither."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond floats
        number = math.inf if value > 0 else -math.inf
    if not accept(number):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return number


def check_bool(value, name: str, allow_none: bool = False) -> bool | None:
    """``value`` if it is True or False (a NumPy bool too; None too where ``allow_none``); else a
    ValueError naming ``name`` — a string "no" or the number 0 would otherwise be read as a truth value."""
    if value is None and allow_none:
        return None
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_dev_pair(dev, why: str = "") -> tuple:
    """``dev`` as the pair (X_dev, y_dev); else a ValueError naming it, what it got, and ``why``
    it is needed (": trials are compared on the dev set")."""
    if not (isinstance(dev, tuple | list) and len(dev) == 2):
        got = f"{type(dev).__name__} of length {len(dev)}" if isinstance(dev, tuple | list) else type(dev).__name__
        raise ValueError(f"dev must be a pair (X_dev, y_dev){why}, got {got}")
    return tuple(dev)


def check_features(X, name: str = "X", n_features: int | None = None, dtype=None,
                   finite: bool = True, cast: bool = True) -> np.ndarray:
    """``X`` (array-like, any backend's array or a Tensor) as a floating (m, n_features, …) NumPy
    array with only finite values; with ``dtype`` (the model's), values it can hold (a float64
    1e39 would become inf in float32). Integers and booleans become the model's dtype (float32
    without one), or float64 where float32 would round them (beyond 2²⁴). ``finite=False`` lets
    NaN and Inf through (`split`: missing values are filled after it, from the training part).
    ``cast=False`` leaves integers and booleans as they are, for a caller that reads X a piece at
    a time in float64 (`Standardizer.fit`): cast whole, a uint8 set took 4× its size more."""
    refuse_sparse(X, name)
    given = X
    try:
        X = to_numpy(X)
    except ValueError:  # NumPy's words for a ragged list ("inhomogeneous shape") name neither X nor the fix
        if isinstance(given, tuple | list) and len(given) == 2 and all(hasattr(a, "shape") for a in given) \
                and len(given[0].shape) >= 2:
            raise ValueError(f"{name} must be an array of examples (m, features), got a pair of arrays of shapes "
                             f"{tuple(given[0].shape)} and {tuple(given[1].shape)} (an (X, y) pair, as tf.data "
                             "gives it?): pass them as two arguments, fit(X, y)") from None
        raise ValueError(f"{name} must be a rectangular array (every example with the same number of features); "
                         "got a ragged sequence") from None
    if X.ndim == 0 and X.dtype == object:  # a generator, a loader of batches, a dict: NumPy reads it as one
        refuse_non_array(given, name)  # object, refused as "must be 2-D, got shape ()", which named neither
    if X.dtype.names:  # a record array's fields are its features: the reshape below would keep them as one
        raise TypeError(f"{name} is a structured array (fields {', '.join(X.dtype.names)}); xdl takes its fields as "
                        f"features of a plain array: np.lib.recfunctions.structured_to_unstructured({name})")
    if X.ndim < 2:  # (a one-row file read by np.loadtxt is 1-D: say which reshape, as scikit-learn does)
        hint = "" if X.ndim == 0 else \
            f": {name}.reshape(1, -1) if it is one example" if n_features is not None and X.size == n_features else \
            f": {name}.reshape(-1, 1) if it is one feature" if n_features == 1 else \
            f": {name}.reshape(-1, 1) if it holds one feature, {name}.reshape(1, -1) if one example"
        raise ValueError(f"{name} must be 2-D (examples, features), got shape {X.shape}{hint}")
    if 0 in X.shape[1:]:
        raise ValueError(f"{name} has no features, got shape {X.shape}")
    if X.dtype == object:  # numbers held as objects (a pandas frame of nullable Int64 columns); None as NaN, as
        X = features_of_objects(X, name)  # scikit-learn reads them
    refuse_times(X, name)
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)
            or X.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers, got dtype {X.dtype}")
    if cast and not np.issubdtype(X.dtype, np.floating):  # integers, booleans: in the model's dtype, or a float
        X = X.astype(floating_dtype(X, dtype))  # one exactly
    if n_features is not None and X.shape[1:] != (n_features,):  # (an image's (m, h, w) is flattened: its shape said)
        check_width(int(np.prod(X.shape[1:])), n_features, name if X.ndim == 2 else f"{name} of shape {X.shape}")
    bad = first_where(X, lambda piece: ~np.isfinite(piece)) if finite else None
    if bad is not None:
        what = "NaN, Inf or masked values" if isinstance(given, np.ma.MaskedArray) else "NaN or Inf"
        raise ValueError(f"{name} contains {what} (first at example {bad[0]}, feature {bad[1]})")
    if dtype is not None and np.issubdtype(X.dtype, np.floating) and np.finfo(X.dtype).max > np.finfo(dtype).max:
        high = np.finfo(dtype).max
        bad = first_where(X, lambda piece: np.abs(piece) > high)
        if bad is not None:
            raise ValueError(f"{name} has values beyond {np.dtype(dtype)}'s range ±{high:.3g} (first at example "
                             f"{bad[0]}, feature {bad[1]}); scale the data, or train in a wider dtype")
    return X


def floating_dtype(X: np.ndarray, dtype=None) -> np.dtype:
    """The floating dtype `check_features` reads ``X`` in: its own where it is floating, else
    (integers, booleans) the model's ``dtype`` (float32 without one), or float64 where float32
    would round them (beyond 2²⁴: ids, timestamps)."""
    if np.issubdtype(X.dtype, np.floating):
        return X.dtype
    target = np.promote_types(dtype, np.float32) if dtype is not None else np.dtype(np.float32)
    if target == np.float32 and X.size and np.issubdtype(X.dtype, np.integer) and \
            max(int(X.max()), -int(X.min())) > 2**24:
        target = np.dtype(np.float64)
    return target


def is_pandas_missing(value) -> bool:
    """Whether ``value`` is pandas' missing value ``pd.NA`` (a nullable column's; pandas is no
    dependency of xdl, so it is known by its class's name)."""
    return type(value).__name__ == "NAType"


def features_of_objects(X: np.ndarray, name: str) -> np.ndarray:
    """An object array of features (`objects_as_floats`) as float64, or a TypeError naming ``name``
    and its first value that is no number, with its place (a frame's text or categorical column: the
    message said "values that are not (strings?)", naming neither the value nor where it was)."""
    try:
        return objects_as_floats(X)
    except (TypeError, ValueError):
        where = first_where(X, lambda piece: np.frompyfunc(_no_number, 1, 1)(piece).astype(bool)) if X.ndim else None
        first = "" if where is None else \
            f" (first: {rows(X)[where]!r} at example {where[0]}, feature {where[1]})"
        raise TypeError(f"{name} must hold numbers, got dtype object holding values that are not numbers{first}") \
            from None


def _no_number(value) -> bool:
    """Whether ``value`` is none of what `objects_as_floats` reads as a number (None and pandas' ``pd.NA``
    are missing ones), read as its ``astype`` reads it."""
    if is_pandas_missing(value):
        return False
    held = np.empty(1, dtype=object)
    held[0] = value  # (held as is: np.array([value]) would make a list's items the array's)
    try:
        held.astype(np.float64)
    except (TypeError, ValueError):
        return True
    return False


def objects_as_floats(values: np.ndarray) -> np.ndarray:
    """Numbers held as objects (a pandas frame's nullable Int64 or boolean columns) as float64, a
    missing value as NaN — for the NaN checks to name it: NumPy makes NaN of None itself, but no
    float of pandas' ``pd.NA``, and a frame with one missing value was refused as holding "values
    that are not (strings?)". Anything else that is no number raises as ``astype`` does."""
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError):
        missing = np.frompyfunc(is_pandas_missing, 1, 1)(values).astype(bool)
        if not missing.any():
            raise
        filled = values.copy()
        filled[missing] = np.nan
        return filled.astype(np.float64)


def refuse_sparse(value, name: str) -> None:
    """A TypeError naming ``name`` if ``value`` is a scipy.sparse matrix (NumPy reads one as a 0-d object)."""
    if is_sparse_matrix(value):
        raise TypeError(f"{name} is a sparse matrix ({type(value).__name__}), which xdl does not take: pass a dense "
                        f"array, {name}.toarray()")


def refuse_non_array(value, name: str, expected: str = "an array of examples (m, features)") -> None:
    """A TypeError naming ``name`` and what ``value`` is: something NumPy holds as one 0-d object,
    not ``expected``. Keras's ``fit(generator)`` and a PyTorch ``DataLoader`` of (X, y) batches are
    told that the whole data set is taken as arrays (their batches joined first), a dict of columns
    that its values are stacked as features; a 0-d array holding one object (``np.load`` of a pickled
    list or dict) by what it holds."""
    kind = type(value).__name__
    if isinstance(value, np.ndarray) and value.ndim == 0:  # (an ndarray has __iter__: it was told as a generator)
        raise TypeError(f"{name} must be {expected}, got a 0-d array holding one object of type "
                        f"{type(value.item()).__name__} (np.load of a pickled object gives one: {name}.item() is the "
                        "object)")
    if isinstance(value, Mapping):
        raise TypeError(f"{name} must be {expected}, got an object of type {kind} (named "
                        f"inputs?): stack its columns as features, np.column_stack(list({name}.values()))")
    if hasattr(value, "__iter__") or hasattr(value, "__next__"):
        raise TypeError(f"{name} must be {expected}, got an object of type {kind}: xdl "
                        "takes the whole data set as arrays, not a generator or a loader of batches — join its "
                        "batches first (np.concatenate of the X parts and of the y parts) and let the Trainer batch "
                        "them")
    raise TypeError(f"{name} must be {expected}, got an object of type {kind}")


def per_example(y, name: str, expected: str) -> np.ndarray:
    """``y`` as a NumPy array of at least one dimension, ``expected`` saying what it holds ("an array of
    one target per example of X"): a sparse matrix, a generator or a loader (which NumPy holds as one
    0-d object) refused by what it is, a number as a single value, each naming ``name``."""
    refuse_sparse(y, name)
    given, y = y, to_numpy(y)
    if y.ndim == 0:
        if y.dtype == object and not isinstance(given, Mapping):  # (a dict's hint is X's: its columns as features)
            refuse_non_array(given, name, expected=expected)
        raise ValueError(f"{name} must be {expected}, got a single value {y!r}")
    return y


def feature_names(X, name: str = "X") -> tuple[str, ...] | None:
    """The column names of a data frame ``X`` (pandas' ``columns``), where all are strings, else None
    — as scikit-learn reads ``feature_names_in_``: a frame of unnamed columns (0, 1, …) has none,
    and one whose names mix strings with others ("age" and 0) is refused, a TypeError naming
    ``name`` (as scikit-learn's: kept as none, its columns reordered were read by position, silently),
    and so is one that names two columns alike, as scikit-learn refuses it (their order cannot be
    checked, and the advice to reorder, X[names], made a wider frame of them)."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray):
        return None
    try:
        names = tuple(columns)
    except TypeError:
        return None
    strings = [isinstance(n, str) for n in names]
    if any(strings) and not all(strings):
        kinds = sorted({type(n).__name__ for n in names})
        raise TypeError(f"{name}'s column names mix strings with other types ({', '.join(kinds)}): names are kept "
                        f"and checked only where all are strings — make them so, {name}.columns = "
                        f"{name}.columns.astype(str), or none of them")
    if not (names and all(strings)):
        return None
    repeated = [f"{n!r} ({c} times)" for n, c in Counter(names).items() if c > 1]
    if repeated:
        raise ValueError(f"{name}'s column names repeat: {', '.join(repeated[:SHOWN_NAMES])}; each feature's name "
                         f"must be its own (rename them, or pass {name}.to_numpy() to go by position)")
    return names


# The most column names a message about a frame's columns lists (the first ones, then how many more):
# scikit-learn's lists five; a 2,000-column frame's message listed every name, three times (50,000 characters).
SHOWN_NAMES = 5


def shown(names) -> str:
    """``names`` as a list, the first `SHOWN_NAMES` of them and how many more."""
    names = list(names)
    more = len(names) - SHOWN_NAMES
    return f"{names[:SHOWN_NAMES]}" if more <= 0 else f"{str(names[:SHOWN_NAMES])[:-1]}, … {more} more]"


def counted(n: int, noun: str) -> str:
    """``n`` and the noun, plural unless n is 1: "1 example", "3 examples" (messages name counts that
    may be 1: "X has 1 examples" read as a slip)."""
    return f"{n} {noun}{'s' * (n != 1)}"


def check_feature_names(X, expected: tuple[str, ...] | None, name: str = "X", holder: str = "model",
                        made: str = "trained") -> None:
    """A ValueError unless the columns of a data frame ``X`` (`feature_names`) are ``expected``, the
    model's (``feature_names_in_``, from the frame it was trained on), in that order — as
    scikit-learn refuses them: a frame of the same columns in another order was read by position,
    each feature into another's weights, and predicted wrong without a word. An array (no names)
    and a model trained on one pass; ``holder`` and ``made`` say what holds them and how (a Standardizer,
    fitted). The message names at most `SHOWN_NAMES` of each kind, found
    by sets (linear in the columns: by lists, a 20,000-column frame's took 11 s to say)."""
    if expected is None:
        return
    names = feature_names(X, name)
    if names is None or names == tuple(expected):
        return
    expected, owner = tuple(expected), f"the {holder}"
    if sorted(names) == sorted(expected):
        if len(expected) <= SHOWN_NAMES:
            where, order = f"{owner} was {made} on {list(expected)}, got {list(names)}", list(expected)
        else:  # (the first place they differ: every name, twice, was 50,000 characters for 2,000 columns)
            first = next(i for i, (a, b) in enumerate(zip(names, expected)) if a != b)
            where = f"column {first} is {names[first]!r}, {owner} was {made} with {expected[first]!r} there"
            order = f"list({holder.lower()}.feature_names_in_)"
        raise ValueError(f"{name}'s columns are {owner}'s features in another order ({where}): reorder them, "
                         f"{name}[{order}]")
    have, want = set(names), set(expected)
    missing = [n for n in expected if n not in have]
    unexpected = [n for n in names if n not in want]
    said = [f"{what} {shown(found)}" for what, found in (("missing", missing), ("unexpected", unexpected)) if found] \
        or [f"got {shown(names)}"]  # (a model of an older xdl trained on a frame of repeated names: a, a, b)
    raise ValueError(f"{name}'s columns are not the features {owner} was {made} on ({shown(expected)}): "
                     + "; ".join(said))


def refuse_times(values: np.ndarray, name: str, variable: str | None = None) -> None:
    """Durations and dates are no numbers to learn from as they are (NumPy counts a timedelta64
    among its integers, in a unit of its own): refused, naming how to convert them (``variable``:
    what the advice converts, ``name`` by default)."""
    v = name if variable is None else variable
    if values.dtype.kind == "m":
        raise TypeError(f"{name} holds {values.dtype} durations: convert them to numbers in a unit first, e.g. "
                        f"{v} / np.timedelta64(1, 's')")
    if values.dtype.kind == "M":
        raise TypeError(f"{name} holds {values.dtype} dates: convert them to numbers first, e.g. seconds since the "
                        f"first, ({v} - {v}.min()) / np.timedelta64(1, 's')")


def real_numbers(values, name: str, variable: str | None = None):
    """``values`` (an array of any backend) when it holds real numbers (booleans, integers, floats),
    numbers held as objects read as floats (pandas' missing value as NaN, `objects_as_floats`);
    anything else refused by name: strings, complex numbers (a loss of them was complex, or lost
    their imaginary parts without a word), dates and durations (`refuse_times`; ``variable`` as
    there). A dtype is a host value: a device array is checked without a read."""
    refuse_times(values, name, variable)  # (NumPy counts durations among its integers: before the kind test)
    if values.dtype == object and values.size and np.asarray(np.frompyfunc(
            lambda v: isinstance(v, numbers.Real) or is_pandas_missing(v), 1, 1)(values), dtype=bool).all():
        # numbers held as objects (a pandas nullable Float64 column, a column of a table of mixed types), read
        # as X's and class labels of objects are (`check_features`, `check_labels`), pandas' missing value pd.NA
        # as NaN (a nullable boolean column with one was refused as "must hold real numbers", its gap unnamed);
        # None is no number (the np.asarray: of a 0-d array, frompyfunc gives a Python bool, which has no astype)
        values = objects_as_floats(values)
    if values.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {values.dtype}")
    return values


def real_targets(targets, name: str):
    """The targets of a functional loss (a Tensor, a list, an array of any backend) checked as
    `real_numbers` hold them, before any work: returned as they were where they were numbers (a
    list keeps its conversion in the outputs' dtype), else as the floats they hold."""
    data = targets.data if isinstance(targets, Tensor) else targets
    if not hasattr(data, "dtype"):  # a list, a number: read on the host as NumPy reads it
        data = np.asarray(data)
    checked = real_numbers(data, name, name.rpartition(": ")[2])
    return targets if checked.dtype == data.dtype else checked


def check_labels(y, m: int, name: str = "y", n_classes: int | None = None, x_name: str = "X") -> np.ndarray:
    """``y`` (array-like, any backend's array or a Tensor) as (m,) integer class indices in
    [0, n_classes) — or, with no ``n_classes`` (the labels will set it), below `MAX_CLASSES`; an
    (m, 1) column of them too, as Keras takes it — or (m, C) one-hot rows, a NumPy array; ``x_name``
    names the examples' array."""
    if y is None:
        raise TypeError(f"{name} is None; give the class labels of {x_name}")
    refuse_sparse(y, name)  # (read as one 0-d object: "got a single value array(<…>)")
    masked, given = isinstance(y, np.ma.MaskedArray), y
    y = to_numpy(y)
    refuse_times(y, name)
    if y.ndim == 0 and y.dtype == object and not isinstance(given, Mapping):  # a generator, a loader of batches:
        # NumPy holds it as one object, told as "a single value array(<generator …>)"
        refuse_non_array(given, name, expected=f"an array of one class label per example of {x_name}")
    if y.ndim == 0:  # (a number: "0 labels" said nothing of it)
        raise ValueError(f"{name} must be an array of one class label per example of {x_name}, got a single value "
                         f"{y!r}")
    if y.shape[:1] != (m,):
        raise ValueError(f"{name} has {counted(y.shape[0], 'label')} for {counted(m, 'example')} "
                         f"({x_name} and {name} must have the same length)")
    if y.ndim == 2 and y.shape[1] == 1:  # a column of class indices (Keras's sparse labels, a frame's column):
        y = y[:, 0]  # no one-hot row of one class
    if y.ndim == 2:
        return y
    if y.ndim != 1:
        raise ValueError(f"{name} must be (m,) class indices, an (m, 1) column of them or (m, C) one-hot rows, "
                         f"got shape {y.shape}")
    if y.dtype == np.bool_:  # a yes/no label: classes 0 and 1 (as Keras takes it)
        y = y.astype(np.int64)
    if y.dtype == object:  # numbers held as objects (a pandas nullable Int64 column), read as X's are
        try:
            y = objects_as_floats(y)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must hold integer class indices, got dtype object holding values that are not "
                             "numbers (strings? map them to 0 … C − 1 first, as xdl.sklearn's estimator does)") \
                from None
    if y.dtype.kind in "US":  # text ("cat", "dog"; np.loadtxt(..., dtype=str)): the way out that labels of
        # objects are given, not only their dtype
        raise ValueError(f"{name} must hold integer class indices, got strings (dtype {y.dtype}): map them to "
                         "0 … C − 1 first, as xdl.sklearn's estimator does (np.unique(y, return_inverse=True)[1])")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
            what = "NaN, Inf or masked values" if masked else "NaN or Inf"
            raise ValueError(f"{name} must hold integer class indices, got {what} (first at example "
                             f"{int(np.flatnonzero(~np.isfinite(y))[0])})")
        if not np.issubdtype(y.dtype, np.floating):
            raise ValueError(f"{name} must hold integer class indices, got dtype {y.dtype}")
        fractional = np.flatnonzero(y != np.round(y))
        if fractional.size:  # (whole-number floats are indices: "got dtype float64" alone sent users to
            # y.astype(int), which truncates a 0.5 or a 0.9999999 to a class without a word)
            first = int(fractional[0])
            # (with no model to say its width, the labels set a classifier's: fit_many's and tune's — values to
            # regress on, told to be rounded, trained a softmax over every whole number up to the largest)
            regress = "" if n_classes is not None else ("; values to regress on are no classes: this trains a "
                                                        "classifier (a Trainer with MeanSquaredError regresses)")
            raise ValueError(f"{name} must hold integer class indices, got dtype {y.dtype} with a value that is no "
                             f"whole number ({y[first].item()!r} at example {first}): labels computed in floats are "
                             f"rounded first, np.rint({name}); probabilities of classes are (m, C) rows{regress}")
    # bounds checked on the values as given, before a cast to int64 could wrap them (uint64, 1e30)
    # (compared as Python numbers: float16's y.max() >= 2**20 cast the bound to float16, an overflow warning)
    if m and y.min() < 0:
        raise ValueError(f"{name} has negative class indices (min {y.min()})")
    if m and n_classes is not None and y.max().item() >= n_classes:  # the model's width decides, when there is one
        raise ValueError(f"{name} has class index {y.max()}, outside the model's {n_classes} classes [0, {n_classes})")
    if m and n_classes is None and y.max().item() >= MAX_CLASSES:  # the labels would set the width of a model to build
        raise ValueError(f"{name} has class index {y.max()}; the number of classes must be at most "
                         f"MAX_CLASSES = {MAX_CLASSES}")
    return y if np.issubdtype(y.dtype, np.integer) else y.astype(np.int64)


def note_label_width(labels, width: int) -> None:
    """Warn where the largest label sets an output ``width`` (a model to build: `fit_many`'s,
    `tune`'s) of more than `MANY_CLASSES` classes and `CLASSES_PER_LABEL` times the distinct values
    of ``labels`` (class-index arrays): values to regress on (prices, years) read as classes trained
    a softmax over every whole number up to the largest, almost all of them no example's, unsaid."""
    if width <= MANY_CLASSES:
        return
    distinct = len(np.unique(np.concatenate([np.ravel(part) for part in labels])))
    if width > CLASSES_PER_LABEL * distinct:
        warn_caller(f"the largest label, {width - 1}, makes {width} classes for {distinct} distinct labels: each "
                    "model is a classifier of that width. Values to regress on are no classes (a Trainer with "
                    "MeanSquaredError regresses); labels with gaps are remapped by np.unique(y, return_inverse=True)")


# rows of class probabilities (soft labels) sum to 1 within this (float rounding), as SoftmaxCrossEntropy reads them
DISTRIBUTION_TOLERANCE = 1e-4


def check_width(width: int, n_features: int, name: str = "X", expects: str = "the model expects") -> None:
    """A ValueError naming ``name`` unless its examples have ``n_features`` features (``width``)."""
    if width != n_features:
        raise ValueError(f"{name} has {counted(width, 'feature')}, {expects} {n_features}")


# Values per piece of a pass over a whole data set on the host (its finiteness and range checks, its
# statistics, `Standardizer.fit`, and its standardization): the pass's temporaries (float64 values, their magnitudes, flags) are one piece's,
# about 8 MiB, not the set's. Whole, a 100 000 × 784 float32 set (299 MB) took 1.27 GB more at
# its peak (4.25×) to standardize, under `Trainer.fit`, `evaluate`, `predict`, `fit_many` and
# `MLPClassifier` of a model that starts with a `Standardize` layer, and 75 MB (0.25×) to check.
PIECE_VALUES = 1 << 20


def pieces(X: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of the row pieces of ``X`` (m, …) a pass over it walks: `PIECE_VALUES` values
    each (one row at least)."""
    step = max(PIECE_VALUES // max(int(np.prod(X.shape[1:])), 1), 1)
    return [(start, min(start + step, len(X))) for start in range(0, len(X), step)]


def first_where(X: np.ndarray, test) -> tuple[int, int] | None:
    """(example, feature) of ``X``'s first value where ``test(piece)`` (boolean flags of a piece of
    rows, `pieces`) is true, or None: the flags of one piece at a time, not of the whole set."""
    for start, stop in pieces(X):
        flags = test(X[start:stop])
        if flags.any():
            i, j = np.argwhere(flags.reshape(len(flags), -1))[0]
            return start + int(i), int(j)
    return None


def rows(X: np.ndarray) -> np.ndarray:
    """``X`` (m, n_features, …) as (m, features): an empty batch too (NumPy cannot infer a −1 axis
    of 0 rows)."""
    return X.reshape(len(X), int(np.prod(X.shape[1:])))


def standardized(X: np.ndarray, mean: np.ndarray, scale: np.ndarray, dtype, name: str = "X",
                 out: np.ndarray | None = None) -> np.ndarray:
    """z = (x − mean) / scale per feature of ``X`` (m, n), computed in float64 and returned in
    ``dtype``. Cast first, a feature with a large offset and a small spread would lose the spread
    (1e6 + 0.01·noise comes in float32 steps of 0.0625). A z beyond ``dtype``'s range (it would be
    inf) is refused, naming ``name``'s example and feature. Computed piece by piece (`pieces`):
    the float64 values of a piece at a time, not a float64 copy of the set (and its magnitudes).
    ``out``: an array of X's shape in ``dtype`` to write z into — ``X`` itself, a copy of the
    caller's own, standardizes it in place (each piece is read before it is written); on a refusal
    the pieces before the one refused are written."""
    mean, scale = np.asarray(mean, dtype=np.float64), np.asarray(scale, dtype=np.float64)
    if out is None:
        out = np.empty(X.shape, dtype=dtype)
    elif out.shape != X.shape or out.dtype != np.dtype(dtype):
        raise ValueError(f"standardized: out must be a {np.dtype(dtype)} array of shape {X.shape}, got a {out.dtype} "
                         f"one of shape {out.shape}")
    for start, stop in pieces(X):
        with np.errstate(over="ignore", invalid="ignore"):  # refused below, by name
            Z = X[start:stop] - mean  # (float64: the statistics are)
            Z /= scale

        def where(i, j, start=start, Z=Z):  # (i: the piece's row)
            return (f"{name}'s example {start + i}, feature {j} ({X[start + i, j]:.6g}) lies {Z[i, j]:.3g} standard "
                    f"deviations (σ = {scale[j]:.3g}) from the mean")
        out[start:stop] = cast_within(Z, dtype, where)
    return out


def cast_within(values: np.ndarray, dtype, where) -> np.ndarray:
    """``values`` (m, n) cast to ``dtype``; a ValueError when one is beyond its range (the cast
    would make it inf, silently), the first described by ``where(example, feature)``."""
    high = np.finfo(dtype).max
    beyond = ~(np.abs(values) <= high)  # (NaN too)
    if beyond.any():
        i, j = np.argwhere(beyond)[0]
        raise ValueError(f"{where(i, j)}, beyond the range of {np.dtype(dtype)} (±{high:.3g}); scale the data")
    return values.astype(dtype)
