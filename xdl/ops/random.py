"""Counter-based random draws: each value a pure function of (seed, stream, step, element).

The generator is Philox4x64-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
SC 2011), the one NumPy ships as `numpy.random.Philox`. Element i of a draw keyed by
(seed, stream, step) is lane i mod 4 of the block

    philox4x64_10(counter = (1 + ⌊i/4⌋, step, 0, 0), key = (seed, stream))

(NumPy's Philox advances its counter before each block: counter (0, step, 0, 0) gives block 1
first). No state is carried from one draw to the next, so a run resumed at any step, a batched
run and (with a kernel computing the same blocks) a GPU run draw the same values.

A dropout keep mask keeps element i when its 64-bit value u satisfies ⌊u/2⁴⁰⌋ ≥ ⌈rate·2²⁴⌉, i.e.
when the 24-bit uniform ⌊u/2⁴⁰⌋/2²⁴ is ≥ rate: P(keep) = 1 − rate to within 2⁻²⁴.
"""

from __future__ import annotations

import math

import numpy as np

UNIFORM_BITS = 24  # a float32's mantissa: the uniform ⌊u/2⁴⁰⌋/2²⁴ is exact in float32


def random_bits(size: int, seed: int, stream: int, step: int) -> np.ndarray:
    """``size`` 64-bit values of the draw keyed by (seed, stream, step) (uint64, on the host)."""
    generator = np.random.Philox(counter=[0, step % 2**64, 0, 0], key=[seed % 2**64, stream % 2**64])
    return generator.random_raw(size)


def keep_mask(shape, rate: float, seed: int, stream: int, step: int) -> np.ndarray:
    """Boolean mask of ``shape``: True (keep) with probability 1 − ``rate``, element by element as
    the module docstring defines."""
    size = math.prod(shape)
    threshold = math.ceil(rate * 2**UNIFORM_BITS)  # keep when the 24-bit uniform reaches it
    if threshold >= 2**UNIFORM_BITS:
        return np.zeros(shape, dtype=bool)
    bits = random_bits(size, seed, stream, step)
    return (bits >= np.uint64(threshold << (64 - UNIFORM_BITS))).reshape(shape)
