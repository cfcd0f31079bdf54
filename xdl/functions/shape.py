"""Shape functions: reshape, transpose, indexing, dtype cast."""

from __future__ import annotations

import numpy as np

from xdl.function import Function
from xdl.tensor import Tensor


class Reshape(Function):
    """y = x viewed with a new shape;  ∂L/∂x = ∂L/∂y reshaped back"""

    def forward(self, x):
        self.x_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {tuple(x.shape)} into {self.shape}") from None

    def backward(self, gy):
        return (gy.reshape(self.x_shape),)


class Transpose(Function):
    """y = x with axes permuted (reversed by default);  ∂L/∂x = ∂L/∂y with the inverse permutation"""

    axes = None

    def forward(self, x):
        self.perm = tuple(range(x.ndim))[::-1] if not self.axes else tuple(a % x.ndim for a in self.axes)
        if sorted(self.perm) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {self.axes} are not a permutation of a {x.ndim}-d tensor's axes")
        return x.transpose(self.perm)

    def backward(self, gy):
        return (gy.transpose(tuple(np.argsort(self.perm))),)


def _is_basic(index) -> bool:
    """Whether an index selects each element at most once (slices, ints, None, Ellipsis)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, int | slice | type(None)) or p is Ellipsis for p in parts)


class GetItem(Function):
    """y = x[index];  ∂L/∂x scatters ∂L/∂y back, accumulating repeated integer indices"""

    def forward(self, x):
        self.x_shape, self.x_dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        gx = self.xp.zeros(self.x_shape, dtype=self.x_dtype)
        if _is_basic(self.index):
            gx[self.index] = gy
        else:
            self.backend.scatter_add(gx, self.index, gy)
        return (gx,)


class Cast(Function):
    """y = x converted to ``dtype``;  ∂L/∂x = ∂L/∂y converted back"""

    def forward(self, x):
        self.x_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return (gy.astype(self.x_dtype),)


def reshape(x, *shape):
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], tuple | list) else tuple(shape)
    return Reshape.apply(x, shape=shape)


def transpose(x, *axes):
    axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], tuple | list) else tuple(axes)
    return Transpose.apply(x, axes=axes or None)


def getitem(x, index):
    def raw(i):
        if isinstance(i, Tensor):
            return i.data
        if isinstance(i, list):
            return x.backend.asarray(i)
        if isinstance(i, np.ndarray) and not x.backend.owns(i):
            return x.backend.asarray(i)
        return i

    index = tuple(raw(i) for i in index) if isinstance(index, tuple) else raw(index)
    return GetItem.apply(x, index=index)
