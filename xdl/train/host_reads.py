"""Device values the host needs at one moment, copied in one host read (`read_together`): on a GPU
each read is a copy and a sync (~10–30 µs, and the device's queue drained), and an epoch's end
needed seven — its costs, each evaluation's cost and hits, the model's and the optimizer's finite
flags — where one does."""

from __future__ import annotations

import numpy as np


def read_together(backend, **parts) -> dict:
    """``parts``: name → device array or None. Returns name → the array's values on the host, as a
    float64 NumPy array of its shape (None where None): every part cast to float64 on the device —
    exact for floats up to float64, booleans and integers below 2⁵³ (counts of examples) —, raveled,
    concatenated and copied in one host read (none when every part is None)."""
    given = {name: a for name, a in parts.items() if a is not None}
    if not given:
        return dict.fromkeys(parts)
    xp = backend.xp
    flat = backend.to_numpy(xp.concatenate([a.astype(np.float64).reshape(-1) for a in given.values()]))
    read, at = dict.fromkeys(parts), 0
    for name, a in given.items():
        read[name] = flat[at:at + a.size].reshape(a.shape)
        at += a.size
    return read
