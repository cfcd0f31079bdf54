"""Batch normalization over the batch axis of an (N, C) array — the NumPy reference.

These functions are the specification the CUDA kernels in ``kernels/batchnorm.cu`` follow; they are
written against ``xp`` (NumPy or CuPy) and used as-is on the CPU.

Training forward, per feature c (biased variance for normalizing, unbiased for the running value):

    μ = K + (1/N) Σᵢ (xᵢ − K)           K = x₀ (a sample of the feature), so a mean of 1e4 ± 1 in
                                        float32 keeps its digits (NumPy sums axis 0 row by row)
    σ² = (1/N) Σᵢ (xᵢ − μ)²            two-pass: never E[x²] − E[x]², which cancels catastrophically
    x̂ = (x − μ) / √(σ² + ε)
    y = γ·x̂ + β
    running_mean ← β_m·running_mean + (1 − β_m)·μ
    running_var  ← β_m·running_var  + (1 − β_m)·σ²·N/(N − 1)

Backward, with x̂ recomputed from the saved μ and 1/σ:

    ∂L/∂β = Σᵢ dyᵢ,   ∂L/∂γ = Σᵢ dyᵢ·x̂ᵢ
    ∂L/∂x = (γ/σ)/N · (N·dy − ∂L/∂β − x̂·∂L/∂γ)

γ and β (and the gradient outputs) are C values: a (C,) array, or K stacked models' (K, C/K) rows —
their views of the models' (K, P) parameter buffer, which the kernels read in place.

Inference: y = (x − running_mean)·scale + β with scale = γ/√(running_var + ε) — the mean subtracted
first, as in training and in the kernel (x·scale + (β − running_mean·scale) cancels: at 1e4 ± 1 in
float32 it lost 3 of y's digits, at 1e6 ± 1 all but 1, where the training forward keeps them).
"""

from __future__ import annotations


def batchnorm_train_forward(xp, x, gamma, beta, running_mean, running_var, momentum, eps):
    """Normalize ``x`` (N, C) with its batch statistics; update the running statistics in place.

    Returns ``(y, mean, inv_std)``; ``mean`` and ``inv_std`` = 1/√(σ² + ε) are what backward needs.
    """
    n = x.shape[0]
    shift = x[0].copy()
    y = x - shift  # y holds x − K, then x − μ, x̂, and the output: one N×C buffer
    mean_shifted = y.mean(axis=0)
    y -= mean_shifted
    mean = mean_shifted + shift
    var = (y * y).mean(axis=0)
    inv_std = 1.0 / xp.sqrt(var + eps)
    y *= inv_std
    y *= gamma.reshape(-1)
    y += beta.reshape(-1)
    update_running_statistics(running_mean, running_var, mean, var, momentum, n)
    return y, mean, inv_std


def update_running_statistics(running_mean, running_var, mean, var, momentum, n: int) -> None:
    """running_mean ← m·running_mean + (1 − m)·μ;  running_var ← m·running_var + (1 − m)·n/(n − 1)·σ²
    (σ² the batch's biased variance of n rows), in place. ``momentum`` m is a Python float or a float64
    array (one per feature): each factor is computed in float64 and rounded to the statistics' dtype
    once, so a feature's update is the same bits for either."""
    kept, rest = _rounded(momentum, running_mean), 1.0 - momentum  # each factor made once
    running_mean *= kept
    running_mean += _rounded(rest, running_mean) * mean
    running_var *= kept
    running_var += _rounded(rest * n / (n - 1), running_var) * var


def _rounded(factor, like):
    """A float64 factor as it meets ``like``: a Python float as is (NumPy rounds it to the array's
    dtype), an array cast to that dtype here."""
    return factor.astype(like.dtype, copy=False) if hasattr(factor, "astype") else factor


def batchnorm_backward(xp, dy, x, gamma, mean, inv_std, dgamma=None, dbeta=None, accumulate=False):
    """Gradients ``(dx, dgamma, dbeta)`` of batch norm in training mode. ∂L/∂γ and ∂L/∂β go into
    ``dgamma`` and ``dbeta`` where given — a parameter's view of the flat gradient buffer, of C values
    ((K, C/K) for K stacked models) — added to them when ``accumulate`` (``dgamma += ∂L/∂γ``), else
    written; those arrays are then returned."""
    n = x.shape[0]
    x_hat = x - mean
    x_hat *= inv_std
    batch_dbeta = dy.sum(axis=0)
    batch_dgamma = (dy * x_hat).sum(axis=0)
    # dx = (γ/σ)/N · (N·dy − Σdy − x̂·Σ(dy·x̂)), built in the x̂ buffer
    x_hat *= batch_dgamma
    x_hat += batch_dbeta
    dx = dy * n
    dx -= x_hat
    dx *= gamma.reshape(-1) * inv_std / n
    if dgamma is not None:
        batch_dgamma = write_or_add(dgamma, batch_dgamma.reshape(dgamma.shape), accumulate)
    if dbeta is not None:
        batch_dbeta = write_or_add(dbeta, batch_dbeta.reshape(dbeta.shape), accumulate)
    return dx, batch_dgamma, batch_dbeta


def write_or_add(out, values, accumulate: bool):
    """``out += values`` when ``accumulate``, else ``out[...] = values``; returns ``out``."""
    if accumulate:
        out += values
    else:
        out[...] = values
    return out


def batchnorm_inference(xp, x, gamma, beta, running_mean, running_var, eps):
    """y = (x − running_mean)·scale + β with the running statistics (no reductions): the mean
    subtracted before the scale, so a feature far from 0 keeps its spread's digits (module docstring)."""
    scale = gamma.reshape(-1) / xp.sqrt(running_var + eps)
    y = x - running_mean
    y *= scale
    y += beta.reshape(-1)
    return y
