"""`Standardizer`: input normalization with the training set's statistics.

x' = (x − μ) / σ per feature, μ and σ from the training set only, then applied unchanged to dev,
test and new data (a feature with σ = 0 is only centered). `Standardizer.layer` turns the fitted
statistics into an `xdl.nn.Standardize` layer, so the model applies them itself and `xdl.save`
stores them with the weights. A model trained on augmented examples sees other statistics than
the clean set's: fit on augmented copies too (`xdl.config.TrainConfig.build_standardize` does).
"""

from __future__ import annotations

import numpy as np

from xdl.data.validation import check_features


class Standardizer:
    """>>> import numpy as np
    >>> s = Standardizer().fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
    >>> s.transform(np.array([[2.0, 6.0]]))
    array([[0., 1.]])
    """

    def __init__(self):
        self.mean = self.scale = None

    def fit(self, X) -> Standardizer:
        X = check_features(X).reshape(len(X), -1)
        if len(X) == 0:
            raise ValueError("Standardizer.fit: X has no examples")
        self.mean = X.mean(axis=0, dtype=np.float64)
        std = X.std(axis=0, dtype=np.float64)
        self.scale = np.where(std > 0, std, 1.0)
        return self

    def transform(self, X) -> np.ndarray:
        self._check_fitted()
        X = check_features(X, n_features=len(self.mean))
        return ((X.reshape(len(X), -1) - self.mean) / self.scale).astype(X.dtype).reshape(X.shape)

    def fit_transform(self, X) -> np.ndarray:
        return self.fit(X).transform(X)

    def inverse_transform(self, X) -> np.ndarray:
        self._check_fitted()
        X = np.asarray(X)
        return (X.reshape(len(X), -1) * self.scale + self.mean).astype(X.dtype).reshape(X.shape)

    def layer(self, dtype=None):
        """An `xdl.nn.Standardize` layer holding these statistics."""
        from xdl.nn import Standardize

        self._check_fitted()
        return Standardize(len(self.mean), mean=self.mean, scale=self.scale, dtype=dtype)

    def _check_fitted(self):
        if self.mean is None:
            raise RuntimeError("Standardizer: call fit(X_train) first")
