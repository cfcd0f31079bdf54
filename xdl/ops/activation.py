"""ReLU and softmax cross-entropy — the NumPy references of ``kernels/activation.cu``.

Written against ``xp`` (NumPy or CuPy) and used as-is on the CPU; the kernels follow them line by
line, so an eager step on the GPU launches one kernel for each (and the loss's mean, one more).

ReLU:      y = max(x, 0), NaN kept (NumPy's ``maximum``: −0 and −∞ give +0)
           ∂L/∂x = ∂L/∂y·[y > 0]   (read from y: y > 0 exactly where x > 0; ∂L/∂y = ∞ at a zero gives NaN,
                                    as a product with the mask does)

Softmax cross-entropy of logits z (m, C) against class indices y (m,), row by row:

    s = z − max_j z_j
    p = e^s / Σ_j e^(s_j)                (kept for the backward)
    ℓ = log Σ_j e^(s_j) − s_y            J = (1/m) Σ_i ℓ_i
    ∂J/∂z = (p − onehot(y))·(∂L/∂J/m)

A label outside [0, C) (the functional op does not check its labels: the loss classes do, once
per data set) makes its row's loss NaN and subtracts nothing in the backward — as the kernel,
which must never read out of bounds, and never wrapping −1 round to the last class.

K stacked models (``models`` = K): z is (B·K, C), row b·K + k model k's logits for example b, the
labels (B,) shared; each model's mean J_k = (1/B) Σ_b ℓ_(b·K+k) has its own incoming gradient
∂L/∂J_k, so ∂J/∂z of row b·K + k is (p − onehot(y_b))·(∂L/∂J_k/B).
"""

from __future__ import annotations

import numpy as np


def relu_forward(xp, x):
    return xp.maximum(x, 0)


def relu_backward(xp, gy, y):
    return gy * (y > 0)


def _row_labels(xp, labels, models: int, classes: int):
    """(each row's label, or 0 where it is outside [0, C); whether it is inside)."""
    rows = labels if models == 1 else xp.repeat(labels, models)  # row b·K + k: example b's label
    valid = (rows >= 0) & (rows < classes)
    return xp.where(valid, rows, 0), valid


def softmax_cross_entropy_forward(xp, z, labels, models: int = 1):
    """(each row's loss ℓ (m,), the probabilities p (m, C)) for class indices ``labels``."""
    shifted = z - z.max(axis=-1, keepdims=True)
    rows, valid = _row_labels(xp, labels, models, z.shape[1])
    picked = xp.where(valid, shifted[xp.arange(z.shape[0]), rows], z.dtype.type(np.nan))  # a scalar: nothing uploaded
    probs = xp.exp(shifted, out=shifted)
    total = probs.sum(axis=-1, keepdims=True)
    probs /= total
    return xp.log(total[:, 0]) - picked, probs


def softmax_cross_entropy_backward(xp, probs, labels, gy, models: int = 1):
    """∂J/∂z = (p − onehot(labels))·(gy/m) for the mean loss J and its incoming gradient ``gy``
    (0-d; K values, one per model, for ``models`` = K)."""
    g = probs.copy()
    rows, valid = _row_labels(xp, labels, models, g.shape[1])
    g[xp.arange(g.shape[0]), rows] -= valid
    if models == 1:
        g *= gy / g.shape[0]
    else:
        g.reshape(-1, models, g.shape[1])[...] *= (gy / (g.shape[0] // models))[None, :, None]
    return g
