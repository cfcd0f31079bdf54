"""Shape functions: reshape, transpose, indexing, dtype cast."""

from __future__ import annotations

import numpy as np

from xdl.function import Function
from xdl.functions.registry import Check, op
from xdl.tensor import Tensor


def _shape_args(args) -> tuple:
    """``f(x, 2, 3)`` and ``f(x, (2, 3))`` alike."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], tuple | list) else tuple(args)


class Reshape(Function):
    """y = x viewed with a new shape;  ∂L/∂x = ∂L/∂y reshaped back"""

    shape: tuple

    def forward(self, x):
        self.x_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {tuple(x.shape)} into {self.shape}") from None

    def backward(self, gy):
        return (gy.reshape(self.x_shape),)


@op(method=True, check=[Check((2, 6), args=(4, 3)), Check((2, 6), args=((3, -1),))])
def reshape(x, *shape):
    """y = x viewed with a new shape (``reshape(x, 2, 3)`` or ``reshape(x, (2, 3))``, −1 inferred)."""
    return Reshape.apply(x, shape=_shape_args(shape))


class Transpose(Function):
    """y = x with axes permuted (reversed by default);  ∂L/∂x = ∂L/∂y with the inverse permutation"""

    axes: object = None

    def forward(self, x):
        if self.axes and any(not -x.ndim <= a < x.ndim for a in self.axes):  # a % ndim would wrap 5 onto 1
            raise ValueError(f"transpose: axes {self.axes} out of range for a {x.ndim}-d tensor")
        self.perm = tuple(range(x.ndim))[::-1] if not self.axes else tuple(a % x.ndim for a in self.axes)
        if sorted(self.perm) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {self.axes} are not a permutation of a {x.ndim}-d tensor's axes")
        return x.transpose(self.perm)

    def backward(self, gy):
        return (gy.transpose(tuple(np.argsort(self.perm))),)


@op(method=True, check=[Check((3, 4)), Check((2, 3, 2), args=(2, 0, 1))])
def transpose(x, *axes):
    """y = x with its axes permuted: reversed by default, or in the order ``axes``."""
    return Transpose.apply(x, axes=_shape_args(axes) or None)


def _is_basic(index) -> bool:
    """Whether an index selects each element at most once (slices, ints, None, Ellipsis)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, int | slice | type(None)) or p is Ellipsis for p in parts)


class GetItem(Function):
    """y = x[index];  ∂L/∂x scatters ∂L/∂y back, accumulating repeated integer indices"""

    index: object

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


@op(methods=("__getitem__",), check=[Check((3, 4), args=((slice(1, None), slice(None, None, 2)),)),
                                     Check((3, 4), args=((0, 1),)), Check((3, 4), args=([0, 2, 0],)),
                                     Check((3, 4), args=((np.array([1, 1]), np.array([0, 3])),))])
def getitem(x, index):
    """y = x[index]: ints, slices, None, Ellipsis, and integer lists/arrays/tensors (gathered)."""

    def raw(i):
        if isinstance(i, Tensor):
            return i.data
        if isinstance(i, list) or (isinstance(i, np.ndarray) and not x.backend.owns(i)):
            return x.backend.asarray(i)
        return i

    index = tuple(raw(i) for i in index) if isinstance(index, tuple) else raw(index)
    return GetItem.apply(x, index=index)


class Cast(Function):
    """y = x converted to ``dtype``;  ∂L/∂x = ∂L/∂y converted back"""

    dtype: object

    def forward(self, x):
        self.x_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return (gy.astype(self.x_dtype),)


@op(methods=("astype",), check=[Check((3, 4), args=(np.float64,))])
def cast(x, dtype):
    """A copy of ``x`` converted to ``dtype`` (differentiable: the gradient is cast back; to an
    integer or bool dtype, detached: such values have no gradient, as PyTorch's)."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        return Tensor(x.data.astype(dtype), backend=x.backend)
    return Cast.apply(x, dtype=dtype)
