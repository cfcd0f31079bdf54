"""Weight penalties over flat ranges of weights — the NumPy reference and the CPU implementation.

    L2   Σ w²     its gradient added in place:  g ← g + c·w
    L1   Σ |w|    its gradient added in place:  g ← g + c·sign(w)   (sign(0) = 0: |w|'s subgradient at its kink)

`penalty_forward` and `penalty_backward` are the `WeightPenalty` node's two passes over one range: the cost
(λ/m)/2·Σ w² or (λ/m)·Σ |w| itself, and its gradient with c = g·λ/m (kernels/penalty.cu: one launch each).

``w`` is (n,) — one model's weights, or a range of its flat buffer — or a (K, n) region of K stacked
models' buffers (row k = model k), summed along its last axis: one sum, or K. ``c`` is the incoming
gradient times λ/m: a number or a 0-d array, or a (K, 1) column of per-model values. The buffers are
walked in cache-sized chunks with in-place ufuncs (``out=``), as the optimizers' updates are: no
temporary of the weights' size on the CPU (``chunk=None``: the whole array as one chunk, a few
launches on a GPU).
"""

from __future__ import annotations

from xdl.ops.optim import CHUNK, chunk_scratch, column_chunks, rounded_like

KINDS = ("l2", "l1")


def check_penalty_kind(kind: str) -> None:
    """Refuse a ``kind`` not in `KINDS` (the NumPy reference's and `CupyOps`' penalties alike)."""
    if kind not in KINDS:  # (any other was computed as L1)
        raise ValueError(f"penalty kind must be one of {KINDS}, got {kind!r}")


def _each_chunk(xp, w, chunk):
    """(slice, scratch of the slice's width) along ``w``'s last axis."""
    chunk = (w.size or 1) if chunk is None else chunk
    scratch = chunk_scratch(xp, w, chunk)
    for columns in column_chunks(w, chunk):
        yield columns, scratch[..., :columns.stop - columns.start]


def penalty_sums(xp, w, kind: str, chunk: int | None = CHUNK):
    """Σ w² (``kind`` "l2") or Σ |w| ("l1") along ``w``'s last axis, in its dtype: a 0-d array for (n,),
    (K,) for a (K, n) region."""
    check_penalty_kind(kind)
    totals = []
    for columns, part in _each_chunk(xp, w, chunk):
        if kind == "l2":
            xp.multiply(w[..., columns], w[..., columns], out=part)
        else:
            xp.abs(w[..., columns], out=part)
        totals.append(part.sum(axis=-1))
    if not totals:
        return xp.zeros(w.shape[:-1], dtype=w.dtype)  # (no weights: a sum of 0)
    # the chunks' totals summed pairwise, as each chunk's own sum is: added one after another in float32,
    # 1,500 of them (50M weights) were 10× further from the exact sum than NumPy's sum of the whole. Along the
    # last axis: NumPy sums pairwise only there (a (chunks, K) stack summed over axis 0 was added row by row)
    return totals[0] if len(totals) == 1 else xp.stack(totals, axis=-1).sum(axis=-1)


def penalty_gradient(xp, grad, w, coefficient, kind: str, chunk: int | None = CHUNK) -> None:
    """grad ← grad + c·w (``kind`` "l2") or grad + c·sign(w) ("l1"), in place; ``grad`` and ``w`` of one
    shape, (n,) or (K, n) with c a (K, 1) column."""
    check_penalty_kind(kind)
    coefficient = rounded_like(coefficient, w)
    for columns, part in _each_chunk(xp, w, chunk):
        if kind == "l2":
            xp.multiply(w[..., columns], coefficient, out=part)
        else:
            xp.sign(w[..., columns], out=part)
            part *= coefficient
        grad[..., columns] += part


def penalty_forward(xp, w, kind: str, slope, chunk: int | None = CHUNK):
    """The cost: (λ/m)/2·Σ w² (``kind`` "l2") or (λ/m)·Σ |w| ("l1") of (n,) weights, ``slope`` = λ/m a number,
    S·(slope/2) in w's dtype — or of K stacked models' (K, n) region, ``slope`` a (K, 1) column of λ_k/m: the
    sum of each model's, (Σ_k S_k·slope_k)/2. A 0-d array."""
    sums = penalty_sums(xp, w, kind, chunk)
    half = 0.5 if kind == "l2" else 1.0  # λ/(2m) = (λ/m)/2 exactly
    if hasattr(slope, "shape"):
        return (sums * slope[:, 0]).sum() * half
    return sums * (slope * half)


def penalty_backward(xp, grad, w, gy, slope, kind: str, chunk: int | None = CHUNK) -> None:
    """`penalty_forward`'s gradient added in place: grad ← grad + c·w ("l2") or grad + c·sign(w) ("l1"),
    c = gy·slope (the cost's incoming gradient times λ/m, or a (K, 1) column of gy·λ_k/m) in w's dtype."""
    penalty_gradient(xp, grad, w, rounded_like(gy * slope, w), kind, chunk)
