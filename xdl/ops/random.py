"""Counter-based random draws: each value a pure function of (seed, stream, step, element).

The generator is Philox4x64-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
SC 2011), the one NumPy ships as `numpy.random.Philox`. Value j of a draw keyed by
(seed, stream, step) is lane j mod 4 of the block

    philox4x64_10(counter = (1 + ⌊j/4⌋, step, 0, 0), key = (seed, stream))

(NumPy's Philox advances its counter before each block: counter (0, step, 0, 0) gives block 1
first). No state is carried from one draw to the next, so a run resumed at any step, a batched
run and (with a kernel computing the same blocks) a GPU run draw the same values.

A dropout keep mask uses 16 bits per element: element i takes bits 16·(i mod 4) … 16·(i mod 4) + 15
of value ⌊i/4⌋, a uniform u/2¹⁶, and is kept when u ≥ ⌈rate·2¹⁶⌉: P(keep) = 1 − rate to within
2⁻¹⁶, for a quarter of the draws 64-bit uniforms would cost.
"""

from __future__ import annotations

import math
import threading

import numpy as np

LANE_BITS = 16  # bits of a 64-bit value each mask element uses
LANES = 64 // LANE_BITS
# The largest drop rate these draws resolve: P(keep) is 1 − rate within 2⁻¹⁶, so a kept unit's
# 1/(1 − rate) makes E[y] = x within 2⁻¹⁶/(1 − rate) — under 1% up to here (at rate 0.9999 it was
# 9% low, and from 1 − 2⁻¹⁶ every unit dropped).
MAX_DROP_RATE = 1 - 2**-9

_local = threading.local()  # one generator per thread, re-keyed per draw (cheaper than a new one)


def random_bits(size: int, seed: int, stream: int, step: int) -> np.ndarray:
    """``size`` 64-bit values of the draw keyed by (seed, stream, step) (uint64, on the host)."""
    generator = getattr(_local, "philox", None)
    if generator is None:
        generator = _local.philox = np.random.Philox(0)
    state = generator.state
    state["state"]["counter"][:] = (0, step % 2**64, 0, 0)
    state["state"]["key"][:] = (seed % 2**64, stream % 2**64)
    state["buffer_pos"] = 4  # no values left over from the previous block: start a fresh one
    generator.state = state
    return generator.random_raw(size)


def keep_mask(shape, rate: float, seed: int, stream: int, step: int) -> np.ndarray:
    """Boolean mask of ``shape``: True (keep) with probability 1 − ``rate``, element by element as
    the module docstring defines."""
    size = math.prod(shape)
    threshold = math.ceil(rate * 2**LANE_BITS)  # keep when the 16-bit uniform reaches it
    if threshold >= 2**LANE_BITS:
        return np.zeros(shape, dtype=bool)
    lanes = random_bits(-(-size // LANES), seed, stream, step).astype("<u8", copy=False).view("<u2")
    return (lanes[:size] >= threshold).reshape(shape)


def stacked_keep_mask(shape, rates, seeds, stream: int, step: int) -> np.ndarray:
    """Masks of K models stacked on axis 1: shape (B, K, …) from a per-model ``shape`` (B, …);
    model k's slice is ``keep_mask(shape, rates[k], seeds[k], stream, step)``, as it would be alone."""
    return np.stack([keep_mask(shape, float(r), int(s), stream, step) for r, s in zip(rates, seeds)], axis=1)
