"""Exponentially weighted averages, the course's tool for smoothing noisy sequences.

    v₀ = 0,  v_t = β·v_{t−1} + (1 − β)·x_t,   bias-corrected: v_t / (1 − βᵗ)

It averages over roughly the last 1/(1 − β) values. Momentum, Adam's moments and batch norm's
running statistics are the same recurrence, fused into their kernels.

>>> from xdl.ewa import ewa
>>> ewa([1.0, 1.0, 1.0], beta=0.9).round(6).tolist()  # bias correction removes the start-up bias
[1.0, 1.0, 1.0]
"""

from __future__ import annotations

import numpy as np


class EWA:
    """Running EWA: ``update(x)`` returns the current (optionally bias-corrected) average."""

    def __init__(self, beta: float = 0.9, bias_correction: bool = True):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"EWA: beta must be in [0, 1), got {beta}")
        self.beta, self.bias_correction = beta, bias_correction
        self.value, self.t = 0.0, 0

    def update(self, x):
        self.t += 1
        self.value = self.beta * self.value + (1.0 - self.beta) * x
        return self.corrected

    @property
    def corrected(self):
        if not self.bias_correction or self.t == 0:
            return self.value
        return self.value / (1.0 - self.beta**self.t)


def ewa(values, beta: float = 0.9, bias_correction: bool = True) -> np.ndarray:
    """The EWA of a sequence, one value per input value."""
    average = EWA(beta, bias_correction)
    return np.array([average.update(float(x)) for x in values])
