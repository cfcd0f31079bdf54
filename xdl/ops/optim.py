"""Optimizer updates over flat buffers — the NumPy reference and the CPU implementation.

The CUDA kernels in ``kernels/optim.cu`` follow these functions line by line. Every update reads
p, g and the state once and writes p and the state once, in place. On the CPU the buffers are
walked in cache-sized chunks with in-place ufuncs (``out=``), so the few temporaries stay in cache:
at 10M float32 parameters, one Adam step took 19 ms against 74 ms for the naive whole-array
expressions (2-core CI-class machine, 2026-11-25).

Formulas (g already includes coupled L2 weight decay, g ← g + wd·p, when ``weight_decay`` > 0):

    SGD        p ← p − lr·g
    Momentum   v ← β·v + (1 − β)·g;   p ← p − lr·v             (Nesterov: p ← p − lr·(β·v + (1 − β)·g))
    RMSprop    s ← β·s + (1 − β)·g²;  p ← p − lr·g/(√s + ε)
    Adam       m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²
               p ← p − lr·m̂/(√v̂ + ε),  m̂ = m/(1 − β₁ᵗ),  v̂ = v/(1 − β₂ᵗ)
               computed as p ← p − (lr/(1 − β₁ᵗ))·m/(√v·(1/√(1 − β₂ᵗ)) + ε): the bias corrections
               are two float64 scalars per step (here by Python; the CUDA kernel computes them
               from the device's step counter with CUDA's pow, ≤ 2 ulp of float64 apart)
    AdamW      Adam with decoupled decay applied first: p ← p·(1 − lr·wd)

K models at once (`xdl.optim.StackedOptimizer`): p, g and the state are (K, n) regions of the
models' stacked buffers (rows = models) and each hyperparameter is a scalar or a float64 (K, 1)
column of per-model values; the same lines then update every model with its own values, and the
chunks run along the last axis. Every value derived from the hyperparameters (1 − β, the bias
corrections, 1 − lr·wd) is computed in float64 and rounded to the array's dtype once (`rounded_like`), as a
Python float is for a single model: each row is updated bit for bit as that model alone.
"""

from __future__ import annotations

import numpy as np

CHUNK = 1 << 15  # elements per chunk: 4 float32 arrays × 128 KiB + scratch stay in L2
MIN_COLUMNS = 8192  # K rows of a stacked region: shorter rows cost more in NumPy's loops than cache misses


def _columns(p, chunk: int) -> int:
    """Columns per chunk when walking ``p`` — (n,), or (K, n) with a row per model — along its
    last axis about ``chunk`` elements at a time (at least `MIN_COLUMNS` per row)."""
    rows = p.size // p.shape[-1] if p.shape[-1] else 1
    return max(1, chunk // rows) if rows == 1 else max(chunk // rows, min(MIN_COLUMNS, chunk))


def column_chunks(p, chunk: int):
    """The slices of ``p``'s last axis that walk it about ``chunk`` elements at a time (`_columns` each)."""
    cols = _columns(p, chunk)
    for start in range(0, p.shape[-1], cols):
        yield slice(start, min(start + cols, p.shape[-1]))


def chunk_scratch(xp, like, chunk):
    """An uninitialized buffer of ``like``'s dtype the size of its widest chunk (`column_chunks`): a
    temporary reused chunk after chunk instead of one array per operation."""
    return xp.empty((*like.shape[:-1], min(_columns(like, chunk), like.shape[-1])), dtype=like.dtype)


def rounded_like(h, like):
    """A hyperparameter (or a value derived from it) as it meets ``like``: a Python float as is (NumPy
    rounds it to the array's dtype), a float64 per-model column rounded to that dtype here. Each update
    rounds its values once, before its chunks (a column rounded per chunk was a new array each time)."""
    return h.astype(like.dtype, copy=False) if hasattr(h, "astype") else h


def _is_zero(h) -> bool:
    """A hyperparameter that is the scalar 0 (per-model arrays are never skipped)."""
    return np.ndim(h) == 0 and not h


def _decay(weight_decay, like):
    """A coupled weight decay as `_decayed_gradient` takes it: None for the scalar 0 (no decay), else as
    `rounded_like` gives it."""
    return None if _is_zero(weight_decay) else rounded_like(weight_decay, like)


def _decayed_gradient(xp, p, g, weight_decay, out):
    """g + wd·p into ``out`` (coupled L2), or g itself where ``weight_decay`` (`_decay`'s) is None."""
    if weight_decay is None:
        return g
    xp.multiply(p, weight_decay, out=out)
    out += g
    return out


def _average_into(xp, state, x, beta, rest, tmp):
    """state ← β·state + (1 − β)·x in place, ``rest`` = 1 − β (both as `rounded_like` gives them); ``tmp`` (x's
    size, may be x) is left holding (1 − β)·x."""
    state *= beta
    xp.multiply(x, rest, out=tmp)
    state += tmp


def sgd_update(xp, p, g, lr, weight_decay=0.0, chunk=CHUNK):
    """p ← p − lr·(g + wd·p)"""
    lr, weight_decay = rounded_like(lr, p), _decay(weight_decay, p)
    tmp, gw_buf = chunk_scratch(xp, p, chunk), chunk_scratch(xp, p, chunk)
    for s in column_chunks(p, chunk):
        n = s.stop - s.start
        gw = _decayed_gradient(xp, p[..., s], g[..., s], weight_decay, gw_buf[..., :n])
        xp.multiply(gw, lr, out=tmp[..., :n])
        p[..., s] -= tmp[..., :n]


def momentum_update(xp, p, g, v, lr, beta, nesterov=False, weight_decay=0.0, chunk=CHUNK):
    """v ← β·v + (1 − β)·g;  p ← p − lr·v   (Nesterov: p ← p − lr·(β·v + (1 − β)·g))"""
    lr, beta, rest = rounded_like(lr, p), rounded_like(beta, p), rounded_like(1.0 - beta, p)
    weight_decay = _decay(weight_decay, p)
    tmp, gw_buf = chunk_scratch(xp, p, chunk), chunk_scratch(xp, p, chunk)
    for s in column_chunks(p, chunk):
        n = s.stop - s.start
        t = tmp[..., :n]
        gw = _decayed_gradient(xp, p[..., s], g[..., s], weight_decay, gw_buf[..., :n])
        vs = v[..., s]
        _average_into(xp, vs, gw, beta, rest, t)  # v = β·v + (1 − β)·g
        if nesterov:  # step along the look-ahead β·v + (1 − β)·g; t still holds (1 − β)·g
            look = xp.multiply(vs, beta, out=gw_buf[..., :n])  # gw is no longer needed
            t += look
            t *= lr
            p[..., s] -= t
        else:
            xp.multiply(vs, lr, out=t)
            p[..., s] -= t


def rmsprop_update(xp, p, g, sq, lr, beta, eps, weight_decay=0.0, chunk=CHUNK):
    """s ← β·s + (1 − β)·g²;  p ← p − lr·g/(√s + ε)"""
    lr, beta, rest, eps = rounded_like(lr, p), rounded_like(beta, p), rounded_like(1.0 - beta, p), rounded_like(eps, p)
    weight_decay = _decay(weight_decay, p)
    tmp, gw_buf = chunk_scratch(xp, p, chunk), chunk_scratch(xp, p, chunk)
    for s in column_chunks(p, chunk):
        n = s.stop - s.start
        t = tmp[..., :n]
        gw = _decayed_gradient(xp, p[..., s], g[..., s], weight_decay, gw_buf[..., :n])
        ss = sq[..., s]
        xp.multiply(gw, gw, out=t)
        _average_into(xp, ss, t, beta, rest, t)  # s = β·s + (1 − β)·g²
        xp.sqrt(ss, out=t)
        t += eps  # √s + ε
        xp.divide(gw, t, out=t)
        t *= lr
        p[..., s] -= t


def adam_scalars(lr, beta1, beta2, step, xp=np):
    """The per-step host scalars: lr/(1 − β₁ᵗ) (m̂'s correction folded into the step) and
    1/√(1 − β₂ᵗ) (so √v̂ = √v·that). Per-model columns give float64 columns of ``xp``, each value
    exactly as one model's: the powers computed with Python floats (a vector power may round
    differently) once per distinct β — the K models of a search mostly share them, and a power per
    model made a stacked step's host work grow with K —, lr divided by them as arrays (IEEE division,
    as Python's)."""
    if not any(np.ndim(h) for h in (lr, beta1, beta2)):
        return lr / (1.0 - beta1**step), 1.0 / (1.0 - beta2**step) ** 0.5
    lr, beta1, beta2 = np.broadcast_arrays(*(np.asarray(h.tolist() if np.ndim(h) else h, dtype=np.float64)
                                             for h in (lr, beta1, beta2)))
    bias1 = _per_distinct(beta1, lambda b: 1.0 - b**step)
    inv_sqrt_bias2 = _per_distinct(beta2, lambda b: 1.0 / (1.0 - b**step) ** 0.5)
    return xp.asarray(lr / bias1), xp.asarray(inv_sqrt_bias2)


def _per_distinct(values: np.ndarray, f) -> np.ndarray:
    """``f`` of each element of ``values`` (float64), called once per distinct value, on a Python float."""
    distinct, where = np.unique(values, return_inverse=True)
    return np.array([f(v) for v in distinct.tolist()], dtype=np.float64)[where.reshape(values.shape)]


def adam_update(xp, p, g, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0, decoupled=False, chunk=CHUNK):
    """One Adam (``decoupled=False``) or AdamW (``decoupled=True``) step number ``step`` (t ≥ 1)."""
    step_size, inv_sqrt_bias2 = adam_scalars(lr, beta1, beta2, step, xp)
    decay = decoupled and not _is_zero(weight_decay)
    shrink = rounded_like(1.0 - lr * weight_decay, p) if decay else None  # AdamW's 1 − lr·wd
    weight_decay = None if decoupled else _decay(weight_decay, p)  # (decoupled: no coupled L2 in the gradient)
    step_size, inv_sqrt_bias2, eps = rounded_like(step_size, p), rounded_like(inv_sqrt_bias2, p), rounded_like(eps, p)
    beta1, rest1 = rounded_like(beta1, p), rounded_like(1.0 - beta1, p)
    beta2, rest2 = rounded_like(beta2, p), rounded_like(1.0 - beta2, p)
    tmp, gw_buf = chunk_scratch(xp, p, chunk), chunk_scratch(xp, p, chunk)
    for s in column_chunks(p, chunk):
        n = s.stop - s.start
        t = tmp[..., :n]
        ps, ms, vs = p[..., s], m[..., s], v[..., s]
        if decay:
            ps *= shrink  # AdamW: p = p·(1 − lr·wd)
        gw = _decayed_gradient(xp, ps, g[..., s], weight_decay, gw_buf[..., :n])
        _average_into(xp, ms, gw, beta1, rest1, t)  # m = β₁·m + (1 − β₁)·g
        xp.multiply(gw, gw, out=t)
        _average_into(xp, vs, t, beta2, rest2, t)  # v = β₂·v + (1 − β₂)·g²
        xp.sqrt(vs, out=t)
        t *= inv_sqrt_bias2
        t += eps  # √v̂ + ε
        xp.divide(ms, t, out=t)
        t *= step_size
        ps -= t  # p = p − lr·m̂/(√v̂ + ε)
