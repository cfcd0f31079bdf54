"""Losses (from logits, numerically stable) and weight penalties.

==========================  ===========================================================
`SoftmaxCrossEntropy`       J = (1/m) Σᵢ −log softmax(zᵢ)[yᵢ];  labels (m,) ints or (m, C) one-hot
`BinaryCrossEntropy`        J = (1/m) Σᵢ −[yᵢ log σ(zᵢ) + (1 − yᵢ) log(1 − σ(zᵢ))];  z, y (m,) or (m, 1)
`MeanSquaredError`          J = (1/n) Σ (ŷ − y)² over all n elements
`l2` penalty                λ/(2m)·Σ_W ‖W‖²_F over weights (not biases, not BN γ/β)
`l1` penalty                λ/m·Σ_W Σ|W|
==========================  ===========================================================

>>> import numpy as np, xdl
>>> loss = xdl.losses.SoftmaxCrossEntropy()
>>> round(loss(xdl.tensor([[0.0, 0.0]]), np.array([1])).item(), 4)  # log 2
0.6931
"""

from __future__ import annotations

import numpy as np

from xdl import functions as F
from xdl.tensor import Tensor


class SoftmaxCrossEntropy:
    """Softmax + cross-entropy of logits (m, C) against int labels (m,) or one-hot rows (m, C)."""

    def __call__(self, logits: Tensor, labels) -> Tensor:
        m, n_classes = logits.shape
        backend = logits.backend
        if isinstance(labels, np.ndarray | list | tuple):
            labels = np.asarray(labels)
            if labels.ndim == 1:
                if labels.shape[0] != m:
                    raise ValueError(f"SoftmaxCrossEntropy: {labels.shape[0]} labels for {m} examples")
                if not np.issubdtype(labels.dtype, np.integer):
                    if not np.all(labels == np.round(labels)):
                        raise ValueError("SoftmaxCrossEntropy: integer labels expected (class indices)")
                    labels = labels.astype(np.int64)
                if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
                    raise ValueError(f"SoftmaxCrossEntropy: labels must be in [0, {n_classes}), "
                                     f"got values in [{labels.min()}, {labels.max()}]")
            elif labels.shape != (m, n_classes):
                raise ValueError(f"SoftmaxCrossEntropy: one-hot labels of shape {labels.shape}, "
                                 f"expected {(m, n_classes)}")
        elif isinstance(labels, Tensor):
            labels = labels.data
        labels = backend.asarray(labels, dtype=logits.dtype if labels.ndim == 2 else None)
        return F.softmax_cross_entropy(logits, labels)


def _targets_like(outputs: Tensor, targets, loss: str):
    """``targets`` as an array of ``outputs``' backend, dtype and shape (same number of elements)."""
    targets = targets.data if isinstance(targets, Tensor) else targets
    if targets.size != outputs.size:
        raise ValueError(f"{loss}: {targets.size} targets for outputs of shape {outputs.shape}")
    return outputs.backend.asarray(targets, dtype=outputs.dtype).reshape(outputs.shape)


class BinaryCrossEntropy:
    """Sigmoid + binary cross-entropy of logits (m,) or (m, 1) against 0/1 (or soft) labels."""

    def __call__(self, logits: Tensor, labels) -> Tensor:
        return F.sigmoid_binary_cross_entropy(logits, _targets_like(logits, labels, "BinaryCrossEntropy"))


class MeanSquaredError:
    """Mean of squared differences over all elements."""

    def __call__(self, predictions: Tensor, targets) -> Tensor:
        diff = predictions - _targets_like(predictions, targets, "MeanSquaredError")
        return (diff * diff).mean()


def _weights(model_or_params):
    params = model_or_params.parameters() if hasattr(model_or_params, "parameters") else list(model_or_params)
    return [p for p in params if getattr(p, "role", "weight") == "weight"]


def l2(model, lambd: float, m: int = 1) -> Tensor:
    """λ/(2m)·Σ‖W‖²_F over the model's weights; its gradient adds (λ/m)·W to each weight's.

    ``m`` is the number of examples the cost averages over (the mini-batch size in training).
    """
    if lambd < 0 or m <= 0:
        raise ValueError(f"l2: lambd must be ≥ 0 and m > 0, got lambd={lambd}, m={m}")
    weights = _weights(model)
    total = sum(((w * w).sum() for w in weights[1:]), (weights[0] * weights[0]).sum())
    return total * (lambd / (2 * m))


def l1(model, lambd: float, m: int = 1) -> Tensor:
    """λ/m·Σ|W| over the model's weights (drives weights to exactly zero: sparse models)."""
    if lambd < 0 or m <= 0:
        raise ValueError(f"l1: lambd must be ≥ 0 and m > 0, got lambd={lambd}, m={m}")
    weights = _weights(model)
    total = sum((w.abs().sum() for w in weights[1:]), weights[0].abs().sum())
    return total * (lambd / m)
