"""Checks at the boundary: arrays a user hands to `fit`, `split` or `predict` fail early, with a
message that names the argument and what was expected, before anything is trained or written."""

from __future__ import annotations

import numpy as np

from xdl.tensor import to_numpy


def check_features(X, name: str = "X", n_features: int | None = None) -> np.ndarray:
    """``X`` (array-like, any backend's array or a Tensor) as a floating (m, n_features, …) NumPy
    array with only finite values."""
    X = to_numpy(X)
    if X.ndim < 2:
        raise ValueError(f"{name} must be 2-D (examples, features), got shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)
            or X.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers, got dtype {X.dtype}")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float32)
    if n_features is not None and X.shape[1:] != (n_features,) and int(np.prod(X.shape[1:])) != n_features:
        raise ValueError(f"{name} has {int(np.prod(X.shape[1:]))} features, the model expects {n_features}")
    if not np.isfinite(X).all():
        bad = np.argwhere(~np.isfinite(X.reshape(len(X), -1)))[0]
        raise ValueError(f"{name} contains NaN or Inf (first at example {bad[0]}, feature {bad[1]})")
    return X


def check_labels(y, m: int, name: str = "y", n_classes: int | None = None) -> np.ndarray:
    """``y`` (array-like, any backend's array or a Tensor) as (m,) integer class indices in
    [0, n_classes) (or (m, C) one-hot rows), a NumPy array."""
    y = to_numpy(y)
    if y.shape[:1] != (m,):
        raise ValueError(f"{name} has {y.shape[0] if y.ndim else 0} labels for {m} examples "
                         f"(X and {name} must have the same length)")
    if y.ndim == 2:
        return y
    if y.ndim != 1:
        raise ValueError(f"{name} must be (m,) class indices or (m, C) one-hot rows, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and np.all(y == np.round(y))):
            raise ValueError(f"{name} must hold integer class indices, got dtype {y.dtype}")
        y = y.astype(np.int64)
    if m and y.min() < 0:
        raise ValueError(f"{name} has negative class indices (min {y.min()})")
    if m and n_classes is not None and y.max() >= n_classes:
        raise ValueError(f"{name} has class index {y.max()}, outside the model's {n_classes} classes [0, {n_classes})")
    return y
