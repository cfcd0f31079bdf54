"""Reductions over axes: sum, mean, max, min (with ``keepdims``)."""

from __future__ import annotations

import numpy as np

from xdl.function import Function
from xdl.functions.registry import Check, op
from xdl.functions.shapes import check_axis

AXES = [Check((3, 4)), Check((3, 4), axis=0), Check((3, 4), axis=1, keepdims=True), Check((2, 3, 4), axis=(0, 2))]


def _axes(axis, ndim, name: str) -> tuple[int, ...]:
    """The reduced axes (all for None), in [0, ndim), sorted."""
    if axis is None:
        return tuple(range(ndim))
    # a sequence of axes (tuple, list, range, array), else one axis (of any kind: checked as one)
    # (a string is one axis, refused as one: iterated, "" named no axes and reduced nothing)
    axes = (axis,) if isinstance(axis, int | np.integer | str | bytes) or not hasattr(axis, "__iter__") else axis
    axes = tuple(sorted(check_axis(a, ndim, name) for a in axes))
    if len(set(axes)) < len(axes):  # (NumPy's "duplicate value in 'axis'" named neither the function nor the axis)
        repeated = next(a for a, b in zip(axes, axes[1:]) if a == b)
        raise ValueError(f"{name}: axis {tuple(int(a) for a in axis)} names axis {repeated} more than once (of a "
                         f"{ndim}-d tensor)")
    return axes


class Reduction(Function):
    """Reduces ``axis`` (None: all axes); subclasses give ``reduce`` and ``backward``."""

    axis: object = None
    keepdims: bool = False

    def forward(self, x):
        self.axes = _axes(self.axis, x.ndim, type(self).__name__.lower())
        self.x_shape = x.shape
        return self.reduce(x)

    def expand(self, g):
        """``g`` with the reduced axes put back as length-1 axes."""
        if not self.keepdims:
            g = g.reshape(tuple(1 if i in self.axes else n for i, n in enumerate(self.x_shape)))
        return g


@op(method=True, check=AXES)
class Sum(Reduction):
    """y = Σₐₓᵢₛ x;  ∂y/∂x = 1 broadcast over the reduced axes"""

    def reduce(self, x):
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return (self.xp.broadcast_to(self.expand(gy), self.x_shape),)


@op(method=True, check=AXES)
class Mean(Reduction):
    """y = (1/n)·Σₐₓᵢₛ x;  ∂y/∂x = 1/n"""

    def reduce(self, x):
        self.count = 1
        for a in self.axes:
            self.count *= x.shape[a]
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return (self.xp.broadcast_to(self.expand(gy) / self.count, self.x_shape),)


class Extreme(Reduction):
    """The largest (`Max`) or smallest (`Min`) value over the axes; the gradient goes to the
    elements that reach it, split evenly between ties."""

    def reduce(self, x):
        if any(x.shape[a] == 0 for a in self.axes) or (x.ndim == 0 and x.size == 0):
            raise ValueError(f"{type(self).__name__.lower()} over an empty axis (of a tensor of shape {x.shape}): "
                             "it has no value")
        y = self.extreme(x, axis=self.axes, keepdims=True)
        self.mask = (x == y) | (self.xp.isnan(x) & self.xp.isnan(y))  # a NaN is the extreme: it takes the gradient
        return y if self.keepdims else y.reshape(tuple(n for i, n in enumerate(x.shape) if i not in self.axes))

    def backward(self, gy):
        share = self.mask / self.mask.sum(axis=self.axes, keepdims=True)
        return (share.astype(gy.dtype) * self.expand(gy),)


@op(method=True, check=AXES)
class Max(Extreme):
    """y = maxₐₓᵢₛ x;  the gradient goes to the maximal elements, split evenly between ties"""

    def extreme(self, x, **kwargs):
        return x.max(**kwargs)


@op(method=True, check=AXES)
class Min(Extreme):
    """y = minₐₓᵢₛ x;  the gradient goes to the minimal elements, split evenly between ties"""

    def extreme(self, x, **kwargs):
        return x.min(**kwargs)
