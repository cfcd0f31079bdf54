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
"""

from __future__ import annotations


def relu_forward(xp, x):
    return xp.maximum(x, 0)


def relu_backward(xp, gy, y):
    return gy * (y > 0)


def softmax_cross_entropy_forward(xp, z, labels):
    """(each row's loss ℓ (m,), the probabilities p (m, C)) for class indices ``labels``."""
    shifted = z - z.max(axis=-1, keepdims=True)
    picked = shifted[xp.arange(z.shape[0]), labels]
    probs = xp.exp(shifted, out=shifted)
    total = probs.sum(axis=-1, keepdims=True)
    probs /= total
    return xp.log(total[:, 0]) - picked, probs


def softmax_cross_entropy_backward(xp, probs, labels, gy):
    """∂J/∂z = (p − onehot(labels))·(gy/m) for the mean loss J and its incoming gradient ``gy``."""
    g = probs.copy()
    g[xp.arange(g.shape[0]), labels] -= 1
    g *= gy / g.shape[0]
    return g
