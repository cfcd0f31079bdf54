"""ReLU, tanh, sigmoid, leaky ReLU and the losses (softmax and binary cross-entropy, mean squared error) — the
NumPy references of ``kernels/activation.cu``.

Written against ``xp`` (NumPy or CuPy) and used as-is on the CPU; the kernels follow them line by
line, so an eager step on the GPU launches one kernel for each way of each (a loss's mean too).

ReLU:      y = max(x, 0), NaN kept (NumPy's ``maximum``: −0 and −∞ give +0)
           ∂L/∂x = ∂L/∂y·[y > 0]   (read from y: y > 0 exactly where x > 0; ∂L/∂y = ∞ at a zero gives NaN,
                                    as a product with the mask does)
tanh:      y = tanh x
           ∂L/∂x = ∂L/∂y·(1 − y·y)          (from y; y·y rounded before the subtraction — the kernel's product is
                                             __fmul_rn, which nvcc never fuses into an FMA —: these bits on a GPU too)
sigmoid:   y = σ(x) = 1/(1 + e) for x ≥ 0, e·1/(1 + e) below, e = e^−|x|   (never overflows; σ of a negative x
                                             keeps its relative precision: see `sigmoid_forward`)
           ∂L/∂x = (∂L/∂y·y)·(1 − y)        (from y)
leaky ReLU: y = x if x > 0 else x·slope     (slope a Python float: x's dtype, NEP 50; x = ±0 gives ±0·slope,
                                             NaN stays NaN; for 0 < slope ≤ 1, max(x, x·slope), the same bits)
           ∂L/∂x = ∂L/∂y if s > 0 else ∂L/∂y·slope, s the output y where slope ≥ 0 (y > 0 exactly where
                                             x > 0 then) and the input x where slope < 0 (a negative x's y is
                                             positive): at x = 0 the slope, as PyTorch's

Softmax cross-entropy of logits z (m, C) against class indices y (m,), row by row:

    s = z − max_j z_j
    p = e^s / Σ_j e^(s_j)                (kept for the backward)
    ℓ = log Σ_j e^(s_j) − s_y            J = (1/m) Σ_i ℓ_i   (the forward returns J, a (1,) array)
    ∂J/∂z = (p − onehot(y))·(∂L/∂J/m)

A label outside [0, C) (the functional op does not check its labels: the loss classes do, once
per data set) makes its row's loss NaN and subtracts nothing in the backward — as the kernel,
which must never read out of bounds, and never wrapping −1 round to the last class.

K stacked models (``models`` = K): z is (B·K, C), row b·K + k model k's logits for example b, the
labels (B,) shared; each model's mean J_k = (1/B) Σ_b ℓ_(b·K+k) (the forward returns the K means) has
its own incoming gradient ∂L/∂J_k, so ∂J/∂z of row b·K + k is (p − onehot(y_b))·(∂L/∂J_k/B).

Binary cross-entropy of logits z against targets y in [0, 1] (the same shape, n elements), the stable form of
−[y log σ(z) + (1 − y) log(1 − σ(z))]:

    ℓ = max(z, 0) − z·y + log(1 + e^−|z|)      J = (1/n) Σ ℓ   (the forward returns J, a (1,) array)
    ∂J/∂z = (σ(z) − y)·(∂L/∂J/n)                (σ as `sigmoid_forward`)

Mean squared error of predictions p against targets t (the same shape, n elements):

    ℓ = (p − t)²                                J = (1/n) Σ ℓ   (a (1,) array)
    ∂J/∂p = 2·((p − t)·(∂L/∂J/n))               (the doubling exact: the sum x + x of (p − t)·(p − t)'s two
                                                 products' gradients, which autodiff of the formula gives)

Those two are one model's (fit_many's stacked models train on softmax cross-entropy only); the kernels' means
share softmax cross-entropy's (`model_means`: in lanes, then pairwise, where NumPy sums pairwise: to rounding).
"""

from __future__ import annotations

import numpy as np


def relu_forward(xp, x):
    return xp.maximum(x, 0)


def relu_backward(xp, gy, y):
    return gy * (y > 0)


def tanh_forward(xp, x):
    return xp.tanh(x)


def tanh_backward(xp, gy, y):
    if y.ndim == 0:  # (NumPy's product of 0-d arrays is a scalar, which out= cannot write into)
        return tanh_backward(xp, gy.reshape(1), y.reshape(1)).reshape(())
    g = y * y
    xp.subtract(1, g, out=g)
    if np.promote_types(g.dtype, gy.dtype) != g.dtype:  # a wider ∂L/∂y: the product in its dtype, not y's
        return g * gy
    g *= gy
    return g


def sigmoid_forward(xp, x):
    """σ(x) = 1/(1 + e⁻ˣ), as r = 1/(1 + e) for x ≥ 0 and e·r below, with e = e^−|x| ∈ (0, 1]: it never
    overflows, and σ of a negative x keeps its relative precision (σ(−20) ≈ 2.06e-9 in float32, where
    (1 + tanh(x/2))/2 cancels to 0). Integers and booleans in float64, as exp gives them. Arrays only in the
    selection (no Python constant to upload in a captured step). A 0-d x as one element: NumPy's abs of a 0-d
    array is a scalar, which ``out=`` cannot write into."""
    if x.ndim == 0:
        return sigmoid_forward(xp, x.reshape(1)).reshape(())
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    e = xp.abs(x)
    xp.negative(e, out=e)
    xp.exp(e, out=e)
    r = e + 1
    xp.reciprocal(r, out=r)
    e *= r  # σ below 0, in e's place
    return xp.where(x >= 0, r, e)  # (NaN is neither: e·r, NaN)


def sigmoid_backward(xp, gy, y):
    g = gy * y
    g *= 1 - y
    return g


def leaky_relu_forward(xp, x, slope: float):
    if 0 < slope <= 1 and x.ndim and x.dtype.kind == "f" and x.dtype.type(slope) > 0:
        # x·slope rounded (the slope in x's dtype, NEP 50) is ≤ x where x > 0 and ≥ x below, and ±0, ±∞ and NaN
        # give themselves: the larger of x and x·slope is the selection below, in one pass and one array fewer
        y = x * slope
        return xp.maximum(y, x, out=y)
    return xp.where(x > 0, x, x * slope)


def leaky_relu_saves_output(slope: float) -> bool:
    """Whether leaky ReLU's backward reads its output y (slope ≥ 0: y > 0 exactly where x > 0), else its input x."""
    return slope >= 0


def leaky_relu_backward(xp, gy, saved, slope: float):
    """``saved``: y where `leaky_relu_saves_output`, else x."""
    return xp.where(saved > 0, gy, gy * slope)


def _row_labels(xp, labels, models: int, classes: int):
    """(each row's label, or 0 where it is outside [0, C); whether it is inside)."""
    rows = labels if models == 1 else xp.repeat(labels, models)  # row b·K + k: example b's label
    valid = (rows >= 0) & (rows < classes)
    return xp.where(valid, rows, 0), valid


def softmax_cross_entropy_forward(xp, z, labels, models: int = 1):
    """(each model's mean loss J (models,), the probabilities p (m, C)) for class indices ``labels``."""
    shifted = z - z.max(axis=-1, keepdims=True)
    rows, valid = _row_labels(xp, labels, models, z.shape[1])
    picked = xp.where(valid, shifted[xp.arange(z.shape[0]), rows], z.dtype.type(np.nan))  # a scalar: nothing uploaded
    probs = xp.exp(shifted, out=shifted)
    total = probs.sum(axis=-1, keepdims=True)
    probs /= total
    losses = xp.log(total[:, 0]) - picked
    # each model's B rows summed along a contiguous row, pairwise, as one model's (B,) losses are (down a column
    # of (B, K) NumPy adds one row at a time: K models' costs differed from each alone's)
    return xp.ascontiguousarray(losses.reshape(-1, models).T).mean(axis=1), probs


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


def binary_cross_entropy_forward(xp, z, labels):
    """The mean J (1,) of ℓ = max(z, 0) − z·y + log(1 + e^−|z|) over z's elements, ``labels`` y of z's shape."""
    loss = xp.maximum(z, 0) - z * labels + xp.log1p(xp.exp(-xp.abs(z)))
    return xp.asarray(loss.mean(), dtype=z.dtype).reshape(1)


def binary_cross_entropy_backward(xp, z, labels, gy):
    """∂J/∂z = (σ(z) − y)·(gy/n) for the mean J and its incoming gradient ``gy`` (a 0-d or one-element array)."""
    g = sigmoid_forward(xp, z)
    g -= labels
    g *= gy.reshape(()) / z.size
    return g


def squared_error_forward(xp, predictions, targets):
    """The mean J (1,) of ℓ = (p − t)² over the elements (of one shape; NumPy's promotion of two dtypes)."""
    diff = predictions - targets
    return xp.asarray((diff * diff).mean()).reshape(1)


def squared_error_backward(xp, predictions, targets, gy):
    """∂J/∂p = 2·((p − t)·(gy/n)) for the mean J and its incoming gradient ``gy`` (a 0-d or one-element array):
    x + x of autodiff's two products, 2·x (exact) here."""
    g = (predictions - targets) * (gy.reshape(()) / predictions.size)
    g *= 2
    return g
