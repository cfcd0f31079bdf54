"""Exponentially weighted averages, the course's tool for smoothing noisy sequences.

    v₀ = 0,  v_t = β·v_{t−1} + (1 − β)·x_t,   bias-corrected: v_t / (1 − βᵗ)

It averages over roughly the last 1/(1 − β) values. Momentum, Adam's moments and batch norm's
running statistics are the same recurrence, fused into their kernels; only Adam's are bias-corrected
(momentum's v starts at 0 uncorrected, and batch norm's running mean and variance start at 0 and 1
uncorrected: `xdl.nn.BatchNorm`).

>>> from xdl.ewa import ewa
>>> ewa([1.0, 1.0, 1.0], beta=0.9).round(6).tolist()  # bias correction removes the start-up bias
[1.0, 1.0, 1.0]
"""

from __future__ import annotations

import numpy as np

from xdl.data.validation import check_bool, check_number

__all__ = ["EWA", "ewa"]


class EWA:
    """Running EWA: ``update(x)`` returns the current (optionally bias-corrected) average."""

    def __init__(self, beta: float = 0.9, bias_correction: bool = True):
        beta = check_number(beta, "EWA: beta", "a number in [0, 1)", lambda b: 0.0 <= b < 1.0)
        self.beta, self.bias_correction = beta, check_bool(bias_correction, "EWA: bias_correction")
        self.value, self.t = 0.0, 0

    def update(self, x):
        """v_t = β·v_{t−1} + (1 − β)·x: ``x`` a real number or array (or list) of them (else an error
        naming it, the average as it was). The average is kept in float64 (as `ewa` keeps it), whatever
        x's dtype: a float32 one rounds v_t by up to ε·|v|/(1 − β) over its window, not ε·|v| (β = 0.9999
        over values 1e4 ± 1 settled 6 below their mean)."""
        if isinstance(x, list | tuple):  # a list averages as the array it holds (list × float is no arithmetic)
            x = _real_array(x, "EWA.update: x")
        kind = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype  # (a device array: its dtype, no copy)
        if kind == np.bool_ or not (np.issubdtype(kind, np.integer) or np.issubdtype(kind, np.floating)):
            raise TypeError(f"EWA.update: x must be a real number or an array of them, got {x!r:.60}")
        if self.t and not _broadcasts_to(np.shape(x), np.shape(self.value)):
            # (broadcast, a (2, 1) x made a (3,) average (2, 3) without a word; one of (4,) raised NumPy's error)
            raise ValueError(f"EWA.update: x must be of the average's shape {np.shape(self.value)} (or broadcast to "
                             f"it), got shape {np.shape(x)}")
        if np.issubdtype(kind, np.floating) and kind.itemsize < 8:  # (NEP 50: a Python β keeps float32 float32)
            x = x.astype(np.float64) if hasattr(x, "astype") else np.asarray(x, np.float64)  # (a memoryview: none)
        value = self.beta * self.value + (1.0 - self.beta) * x  # computed first: a failure leaves t as it was
        self.value, self.t = value, self.t + 1
        return self.corrected

    @property
    def corrected(self):
        if not self.bias_correction or self.t == 0:
            return self.value
        return self.value / (1.0 - self.beta**self.t)


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    """Whether an array of ``shape`` broadcasts to ``target`` leaving it as it is (NumPy's rules)."""
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _real_array(values, name: str) -> np.ndarray:
    """``values`` as a NumPy array; a ragged sequence named (NumPy's "inhomogeneous shape" names none)."""
    try:
        return np.asarray(values)
    except ValueError:
        raise ValueError(f"{name} must be rectangular (every item of the same shape), got a ragged sequence") from None


def ewa(values, beta: float = 0.9, bias_correction: bool = True) -> np.ndarray:
    """The EWA of a sequence, one value per input value: of a (T,) sequence a (T,) array, of a
    (T, …) array — a sequence of vectors, each averaged elementwise — a (T, …) array."""
    average = EWA(beta, bias_correction)
    values = _real_array(values, "ewa: values")
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)
            or values.dtype == np.bool_):  # (None would become NaN, a string be parsed)
        raise TypeError(f"ewa: values must be real numbers, got dtype {values.dtype}")
    values = values.astype(np.float64, copy=False)
    if values.ndim == 0:
        raise ValueError("ewa: values must be a sequence (the first axis is time), got one number")
    return np.array([average.update(x) for x in values]).reshape(values.shape)
