"""The L2 and L1 weight penalties as one node over all the weights (`xdl.losses.l2`, `xdl.losses.l1`, and
`xdl.train.fit_many`'s per-model ones): a model's weights lie back to back at the start of its flat buffer,
so the penalty is one pass over that range each way, not a product, a sum and an addition per weight."""

from __future__ import annotations

import weakref

import numpy as np

from xdl.flat import contiguous_range
from xdl.function import Function


class WeightPenalty(Function):
    """y = (λ/m)/2·Σ_W ‖W‖²_F (``kind`` "l2") or (λ/m)·Σ_W Σ|W| ("l1");  ∂L/∂W = g·(λ/m)·W or
    g·(λ/m)·sign(W), added straight into each weight's `gradient_buffer`.

    ``slope``: λ/m, a number — or, for K stacked models' (K, …) weights, a (K, 1) column of the backend
    holding each model's λ_k/m (y then Σ_k of each model's penalty). ``ranges``: `weight_ranges` of the
    inputs — per dtype, the inputs' indices and, where they fill one range of a flat buffer back to back,
    that range: the sum is taken over it and the gradient added into it in one pass each (no temporary of its
    size on the CPU; where the weights are all in that one range, the cost and the gradient are one kernel
    each on a GPU: `penalty_forward`, `penalty_backward`), else weight by weight."""

    kind: str
    slope: object
    ranges: tuple

    def forward(self, *weights):
        ops, stacked = self.backend.ops, hasattr(self.slope, "shape")
        self.weights = weights  # the values summed: a ``.data`` rebound since is not what the cost was made of
        if len(self.ranges) == 1 and self.ranges[0][1] is not None:  # one range: the cost in one pass (one launch)
            return ops.penalty_forward(self.ranges[0][1][0], self.kind, self.slope)
        dtype = np.result_type(*(w.dtype for w in weights))
        total = None
        for indices, span in self.ranges:
            parts = [span[0]] if span is not None else [_rows(weights[i], stacked) for i in indices]
            for part in parts:
                sums = ops.penalty_sums(part, self.kind).astype(dtype, copy=False)
                total = sums if total is None else total + sums
        half = 0.5 if self.kind == "l2" else 1.0  # λ/(2m) = (λ/m)/2 exactly
        if stacked:
            return (total * self.slope[:, 0]).sum() * half
        return total * (self.slope * half)

    def backward(self, gy):
        ops, stacked = self.backend.ops, hasattr(self.slope, "shape")
        coefficient = None  # g·λ/m: one value, or a (K, 1) column (made for weights outside a range)
        grads = [None] * len(self.inputs)
        for indices, span in self.ranges:
            if span is not None and self._fills(indices, span[2]):
                ops.penalty_backward(span[1], span[0], gy, self.slope, self.kind)  # (c = g·λ/m made there)
                continue
            coefficient = gy * self.slope if coefficient is None else coefficient
            c = coefficient.astype(self.inputs[indices[0]].dtype, copy=False)
            for i in indices:  # weight by weight: scattered, frozen ones among them, a gradient to return
                if not self.needs_grad[i]:
                    continue
                w = self.weights[i]
                into = self.gradient_buffer(i)
                if into is None:
                    into = grads[i] = self.xp.zeros_like(w)
                column = c.reshape((-1,) + (1,) * (w.ndim - 1)) if stacked else c
                ops.penalty_gradient(_at_least_1d(into), _at_least_1d(w), column, self.kind)
        return tuple(grads)

    def _fills(self, indices, seen) -> bool:
        """Whether the range's gradients are still those of the weights at ``indices`` and all are wanted:
        every one needs a gradient, then and now, and still has the ``.grad`` it had at the forward (a view of
        the range; one rebound since, or a frozen one, is added weight by weight)."""
        return all(self.needs_grad[i] and self.inputs[i]._requires_grad and self.inputs[i].grad is grad
                   for i, grad in zip(indices, seen))


def weight_ranges(weights) -> tuple:
    """`WeightPenalty`'s ``ranges`` of ``weights``: per dtype, (their indices, the (data, grad) views of the
    flat buffer's range they fill back to back and their ``.grad`` arrays now — or None where they do not).

    Found once and kept on their flat buffer (`RangesFound`, in its ``ranges_memo``): a steady step's call —
    the same weights, each with the same ``.data`` and ``.grad`` arrays, in a buffer with the same arrays —
    takes them from there (finding them asks every weight's address: ~27 µs for 3 weights, 66 µs for 6 on the
    CPU, each step). What places a parameter anew (`model.astype`, `model.to`, a packing, a copy's or an
    unpickling's `view_again`) binds it new arrays, as does a ``.data`` or ``.grad`` rebound by hand: found
    again then. A copy of the buffer (pickle, deepcopy) keeps none. Kept only where every weight is placed
    in that one buffer (a model's weights of one dtype: a Trainer's penalty): the memo then holds arrays of
    the buffer it is in, nothing more — weights of another buffer too (two models' in one list) had the
    first's buffer hold the other's arrays, a whole model's weights and gradients kept after that model was
    dropped or converted. Others (those, a model's of two dtypes, stacked or unplaced weights) are found each call."""
    place = getattr(weights[0], "_flat", None) if weights else None
    if place is None or not all(getattr(w, "_flat", None) is not None and w._flat[0] is place[0] for w in weights):
        return _find_ranges(weights)
    memo, key = place[0].ranges_memo, tuple(map(id, weights))
    found = memo.get(key)
    if found is None or not found.still(weights):
        if len(memo) >= 8:
            memo.clear()  # (lists of weights that came and went)
        found = memo[key] = RangesFound(weights, _find_ranges(weights))
    return found.ranges


class RangesFound:
    """`weight_ranges`' answer for ``weights`` and what it depended on: the weights (weakly: a buffer holds its
    parameters weakly), their ``.data`` and ``.grad`` arrays, and the arrays of the buffer they were in."""

    __slots__ = ("ranges", "_weights", "_arrays", "_buffers")

    def __init__(self, weights, ranges: tuple):
        self.ranges = ranges
        self._weights = tuple(weakref.ref(w) for w in weights)
        self._arrays = tuple((w.data, w.grad) for w in weights)
        places = {id(p[0]): p[0] for p in (getattr(w, "_flat", None) for w in weights) if p is not None}
        self._buffers = tuple((weakref.ref(flat), flat.data, flat.grad) for flat in places.values())

    def still(self, weights) -> bool:
        """Whether ``weights`` are those it was found for, with the same arrays, in buffers with the same arrays."""
        return (len(weights) == len(self._weights)
                and all(ref() is w and w.data is data and w.grad is grad
                        for w, ref, (data, grad) in zip(weights, self._weights, self._arrays))
                and all(flat() is not None and flat().data is data and flat().grad is grad
                        for flat, data, grad in self._buffers))


def _find_ranges(weights) -> tuple:
    groups: dict = {}
    for i, w in enumerate(weights):
        groups.setdefault(w.dtype, []).append(i)
    ranges = []
    for indices in groups.values():
        group = [weights[i] for i in indices]
        span = contiguous_range(group)
        ranges.append((tuple(indices), None if span is None else (*span, tuple(w.grad for w in group))))
    return tuple(ranges)


def _rows(w, stacked: bool):
    """``w`` as the ops sum it: (n,), or (K, n) for K stacked models."""
    return w.reshape(w.shape[0], -1) if stacked else w.reshape(-1)


def _at_least_1d(a):
    return a.reshape(1) if a.ndim == 0 else a  # (a view: a 0-d array is contiguous)
