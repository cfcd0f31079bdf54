"""`Standardizer`: input normalization with the training set's statistics.

x' = (x − μ) / σ per feature, μ and σ from the training set only, then applied unchanged to dev,
test and new data. A feature that is constant — up to the rounding of the float64 arithmetic
that measures it — is only centered (see `Standardizer.fit`). `Standardizer.layer` turns the
fitted statistics into an `xdl.nn.Standardize` layer, so the model applies them itself and
`xdl.save` stores them with the weights. A model trained on augmented examples sees other
statistics than the clean set's: fit on augmented copies too
(`xdl.config.TrainConfig.build_standardize` does).
"""

from __future__ import annotations

import numpy as np

from xdl.backend import on_backend_of
from xdl.data.validation import (cast_within, check_feature_names, check_features, counted, feature_names,
                                 floating_dtype, pieces, rows, standardized)


class Standardizer:
    """>>> import numpy as np
    >>> s = Standardizer().fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
    >>> s.transform(np.array([[2.0, 6.0]]))
    array([[0., 1.]])
    """

    def __init__(self):
        self.mean = self.scale = None
        self.feature_names_in_ = None  # a data frame's columns it was fitted on (`check_feature_names`)

    def __repr__(self) -> str:
        """``Standardizer()`` before `fit`; fitted, the features it was fitted on:
        ``Standardizer(fitted on 64 features)``."""
        if getattr(self, "mean", None) is None:
            return "Standardizer()"
        n = len(self.mean)
        return f"Standardizer(fitted on {counted(n, 'feature')})"

    def fit(self, X) -> Standardizer:
        """μ and σ of each feature of ``X`` (m examples), computed in float64. A feature counts as
        constant, σ = 1 (centered only), when its variance is within the rounding error of the
        two-pass algorithm that computes it (Chan, Golub & LeVeque), with ε float64's machine epsilon:

            σ² ≤ m·ε·σ² + (m·ε·μ)²

        so a column of 0.1 + 0.2 and 0.3 (which differ in their last bit) is not blown up to ±1
        (as scikit-learn's StandardScaler decides). Both passes walk X a piece of rows at a time
        (`pieces`): μ = Σx / m, then σ² = Σ(x − μ)² / m, the deviations a piece's float64 values
        at a time — whole (``X.var``), they were a float64 copy of the set, 2× a float32 one (and
        12× a uint8 one, cast to float32 first)."""
        names = feature_names(X)  # (a frame's columns: transform's frames must have them, in this order)
        X = check_features(X, cast=False)  # (integers as they are: each piece is read in float64)
        m = len(X)
        if m == 0:
            raise ValueError("Standardizer.fit: X has no examples")
        X = rows(X)
        with np.errstate(over="ignore", invalid="ignore"):  # values near float64's limit: refused below
            mean, var = _moments(X)
        if not (np.isfinite(mean).all() and np.isfinite(var).all()):
            feature = int(np.flatnonzero(~(np.isfinite(mean) & np.isfinite(var)))[0])
            raise ValueError(f"Standardizer.fit: the spread of X's feature {feature} overflows float64; scale the data")
        eps = np.finfo(np.float64).eps
        constant = var <= m * eps * var + (m * eps * mean) ** 2
        self.mean, self.scale = mean, np.where(constant, 1.0, np.sqrt(var))
        self.feature_names_in_ = names
        return self

    def transform(self, X) -> np.ndarray:
        """(X − μ) / σ, computed in float64 and returned in ``X``'s floating dtype (for integers
        float32, or float64 beyond 2**24, as `check_features` reads them), on ``X``'s backend (a CuPy array's
        as a CuPy array: the statistics are the host's, float64); a value beyond that dtype's range is refused,
        naming its example and feature."""
        given, X = X, self._checked(X, cast=False)  # (integers read a piece at a time: cast whole, 2× the result)
        return on_backend_of(standardized(rows(X), self.mean, self.scale, floating_dtype(X),
                                          "Standardizer.transform: X").reshape(X.shape), given)

    def fit_transform(self, X) -> np.ndarray:
        return self.fit(X).transform(X)

    def inverse_transform(self, X) -> np.ndarray:
        """X·σ + μ: standardized values back in the data's units, computed in float64 and returned in
        ``X``'s floating dtype (for integers float32, or float64 beyond 2**24, where float32 would round
        them: standardized values are fractions), on ``X``'s backend as `transform`'s; a value
        beyond that dtype's range is refused, naming its example and feature."""
        given, X = X, self._checked(X)
        Z = rows(X)
        out = np.empty(Z.shape, dtype=X.dtype)
        for start, stop in pieces(Z):  # a piece's float64 values at a time (`pieces`), not the set's
            with np.errstate(over="ignore", invalid="ignore"):  # refused by cast_within, by name
                values = Z[start:stop] * self.scale + self.mean

            def where(i, j, start=start, values=values):
                return (f"Standardizer.inverse_transform: X's example {start + i}, feature {j} ({Z[start + i, j]:.6g}) "
                        f"becomes {values[i, j]:.6g}")
            out[start:stop] = cast_within(values, X.dtype, where)
        return on_backend_of(out.reshape(X.shape), given)

    def layer(self, dtype=None):
        """An `xdl.nn.Standardize` layer holding these statistics."""
        from xdl.nn import Standardize

        self._check_fitted()
        return Standardize(len(self.mean), mean=self.mean, scale=self.scale, dtype=dtype)

    def _checked(self, X, cast: bool = True) -> np.ndarray:
        """``X`` checked (`check_features`: 2-D or more, numbers, finite; ``cast=False``, integers
        left as they are) with as many features as the statistics have; else a ValueError saying so."""
        self._check_fitted()
        # a frame of the fitted columns in another order: scaled each by another's μ and σ, silently (as
        # scikit-learn's StandardScaler refuses it)
        check_feature_names(X, getattr(self, "feature_names_in_", None), holder="Standardizer", made="fitted")
        X = check_features(X, cast=cast)
        n = int(np.prod(X.shape[1:]))
        if n != len(self.mean):
            raise ValueError(f"X has {counted(n, 'feature')}; the Standardizer was fitted on {len(self.mean)}")
        return X

    def _check_fitted(self):
        if self.mean is None:
            raise RuntimeError("Standardizer: call fit(X_train) first")


def _moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's mean and (biased) variance of ``X`` (m, n), in float64, by two passes over
    its pieces of rows: μ = Σx / m, σ² = Σ(x − μ)² / m. The temporaries are one piece's deviations,
    not the set's (NumPy's ``X.var`` makes ``X − μ`` whole). Each piece is summed in C order, whatever
    X's layout: NumPy sums a column that lies contiguous (Fortran order: a pandas frame's
    ``to_numpy()``) pairwise and one across rows (C order) row by row, so the same numbers in a frame
    and in an array gave statistics 1 ulp apart — and a float64 model trained on them other weights."""
    m = len(X)
    total = np.zeros(X.shape[1])
    for start, stop in pieces(X):
        total += np.ascontiguousarray(X[start:stop]).sum(axis=0, dtype=np.float64)
    mean = total / m
    squares = np.zeros(X.shape[1])
    for start, stop in pieces(X):
        deviations = np.subtract(np.ascontiguousarray(X[start:stop]), mean, dtype=np.float64)
        np.square(deviations, out=deviations)
        squares += deviations.sum(axis=0)
    return mean, squares / m

