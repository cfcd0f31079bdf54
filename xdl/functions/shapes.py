"""Shape functions: reshape (and flatten, squeeze, unsqueeze), transpose, joining (cat, stack),
indexing, dtype cast."""

from __future__ import annotations

import operator

import numpy as np

from xdl.function import Function
from xdl.functions.registry import Check, op
from xdl.tensor import Tensor, backend_index, check_tensor_dtype


def _shape_args(args) -> tuple:
    """``f(x, 2, 3)`` and ``f(x, (2, 3))`` alike."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], tuple | list) else tuple(args)


def _sizes(name: str, args) -> tuple:
    """A shape given as integers (``reshape(x, 2.0, 3)`` was NumPy's "'float' object cannot be
    interpreted as an integer", naming neither the function nor the shape), as Python ints. An
    integer is what NumPy takes as one, ``operator.index``: a NumPy integer, a 0-d integer array
    (``np.prod`` of a CuPy shape) too; a bool is no size (NumPy refuses it too)."""
    shape = _shape_args(args)
    try:
        if any(isinstance(n, bool | np.bool_) for n in shape):
            raise TypeError
        return tuple(operator.index(n) for n in shape)
    except TypeError:
        raise TypeError(f"{name}: shape must be integers, got {shape!r}") from None


class Reshape(Function):
    """y = x viewed with a new shape;  ∂L/∂x = ∂L/∂y reshaped back"""

    keeps_values = True

    shape: tuple

    def forward(self, x):
        self.x_shape = x.shape
        try:
            y = x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {tuple(x.shape)} into {self.shape}") from None
        if self.needs_grad[0]:  # (a recorded node's alone: no_grad and predict pay nothing)
            self.views_input = self.xp.may_share_memory(y, x)  # (a copy where x's layout allows none: `views_input`)
        return y

    def backward(self, gy):
        return (gy.reshape(self.x_shape),)


@op(method=True, check=[Check((2, 6), args=(4, 3)), Check((2, 6), args=((3, -1),))])
def reshape(x, *shape):
    """y = x viewed with a new shape (``reshape(x, 2, 3)`` or ``reshape(x, (2, 3))``, −1 inferred)."""
    return Reshape.apply(x, shape=_sizes("reshape", shape))


def check_axis(value, ndim: int, name: str, what: str = "axis") -> int:
    """``value`` as an axis in [0, ndim), or an error naming the function and the range."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}: {what} must be an integer, got {value!r}")
    if not -ndim <= value < ndim:
        raise ValueError(f"{name}: {what} {value} is out of range for a {ndim}-d tensor ({-ndim} to {ndim - 1})")
    return int(value) % ndim


@op(method=True, check=[Check((2, 3, 4)), Check((2, 3, 4), start_axis=1), Check((2, 3, 4, 2), args=(1, 2))])
def flatten(x, start_axis=0, end_axis=-1):
    """y = x with axes ``start_axis`` … ``end_axis`` merged into one (all of them by default; a 0-d
    tensor becomes one element)."""
    ndim = max(x.ndim, 1)  # a 0-d tensor as a 1-d one of one element
    start = check_axis(start_axis, ndim, "flatten", "start_axis")
    end = check_axis(end_axis, ndim, "flatten", "end_axis")
    if start > end:
        raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis}")
    shape = x.shape if x.ndim else (1,)
    merged = int(np.prod(shape[start:end + 1]))  # not −1: an empty tensor's axis cannot be inferred
    return Reshape.apply(x, shape=(*shape[:start], merged, *shape[end + 1:]))


@op(method=True, check=[Check((3, 1, 4, 1)), Check((3, 1, 4), axis=1), Check((3, 1, 4, 1), axis=(1, -1))])
def squeeze(x, axis=None):
    """y = x without its length-1 axes: all of them, or those of ``axis`` (an axis or a tuple of
    them, each of length 1, as NumPy's)."""
    if axis is None:
        drop = {i for i, m in enumerate(x.shape) if m == 1}
    else:
        drop = {check_axis(a, x.ndim, "squeeze") for a in (axis if isinstance(axis, tuple | list) else (axis,))}
        longer = sorted(a for a in drop if x.shape[a] != 1)
        if longer:
            raise ValueError(f"squeeze: axis {longer[0]} of a tensor of shape {x.shape} has length "
                             f"{x.shape[longer[0]]}, not 1")
    return Reshape.apply(x, shape=tuple(m for i, m in enumerate(x.shape) if i not in drop))


@op(method=True, check=[Check((3, 4), args=(0,)), Check((3, 4), args=(-1,))])
def unsqueeze(x, axis):
    """y = x with a new length-1 axis at ``axis`` (as NumPy's ``expand_dims``)."""
    at = check_axis(axis, x.ndim + 1, "unsqueeze")
    return Reshape.apply(x, shape=(*x.shape[:at], 1, *x.shape[at:]))


class Concatenate(Function):
    """y = the inputs joined along an existing axis;  ∂L/∂xᵢ = ∂L/∂y's slice of input i"""

    axis: int = 0

    def forward(self, *xs):
        _check_joined("cat", xs, self.axis, new_axis=False)
        y = self.xp.concatenate(xs, axis=self.axis)
        self.before = (slice(None),) * (self.axis % y.ndim)  # the axes ahead of the joined one
        self.bounds = np.cumsum([0] + [x.shape[self.axis] for x in xs])
        return y

    def backward(self, gy):
        return tuple(gy[(*self.before, slice(a, b))] for a, b in zip(self.bounds[:-1], self.bounds[1:]))


class Stack(Function):
    """y = the inputs joined along a new axis;  ∂L/∂xᵢ = ∂L/∂y at index i of that axis"""

    axis: int = 0

    def forward(self, *xs):
        _check_joined("stack", xs, self.axis, new_axis=True)
        y = self.xp.stack(xs, axis=self.axis)
        self.before = (slice(None),) * (self.axis % y.ndim)
        return y

    def backward(self, gy):
        return tuple(gy[(*self.before, i)] for i in range(gy.shape[len(self.before)]))


def _check_joined(name: str, xs, axis: int, new_axis: bool) -> None:
    """The shapes fit together: equal (stack), or equal but along ``axis`` (cat); ``axis`` in range."""
    ndim = xs[0].ndim + new_axis
    if ndim == 0:  # NumPy's "axis 0 is out of range" (PyTorch: "zero-dimensional tensor cannot be concatenated")
        raise ValueError(f"{name}: 0-d tensors have no axis to join along; stack joins them along a new one")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: axis {axis} is out of range for {ndim}-d results ({-ndim} to {ndim - 1})")
    shapes = [tuple(x.shape) for x in xs]
    drop = None if new_axis else axis % ndim
    if any(len(s) != len(shapes[0]) or [n for i, n in enumerate(s) if i != drop] !=
           [n for i, n in enumerate(shapes[0]) if i != drop] for s in shapes):
        what = "the same shape" if new_axis else f"the same shape but along axis {axis}"
        raise ValueError(f"{name}: the tensors must have {what}, got {', '.join(map(str, shapes))}")


def _joined(name: str, tensors, axis) -> tuple:
    """(tensors, axis) of ``f([a, b], axis)``, ``f([a, b], axis=…)`` and ``f(a, b, axis=…)`` alike."""
    if len(tensors) == 2 and isinstance(tensors[0], list | tuple) and not isinstance(tensors[1], Tensor):
        tensors, axis = tensors[0], tensors[1]  # NumPy's and PyTorch's f(sequence, axis)
    elif len(tensors) == 1 and isinstance(tensors[0], list | tuple):
        tensors = tensors[0]
    if not tensors:
        raise ValueError(f"{name}: no tensors to join")
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
        raise TypeError(f"{name}: axis must be an integer, got {axis!r}")
    return tuple(tensors), int(axis)


@op(check=[Check((2, 3), (4, 3)), Check((2, 3), (2, 1), (2, 2), axis=1)])
def cat(*tensors, axis=0):
    """The tensors joined along ``axis`` (``cat([a, b], 1)``, ``cat(a, b, axis=1)``), as NumPy's
    concatenate."""
    tensors, axis = _joined("cat", tensors, axis)
    return Concatenate.apply(*tensors, axis=axis)


@op(check=[Check((2, 3), (2, 3)), Check((2, 3), (2, 3), (2, 3), axis=-1)])
def stack(*tensors, axis=0):
    """The tensors (of one shape) joined along a new axis ``axis`` (``stack([a, b], 1)``,
    ``stack(a, b, axis=1)``)."""
    tensors, axis = _joined("stack", tensors, axis)
    return Stack.apply(*tensors, axis=axis)


class Transpose(Function):
    """y = x with axes permuted (reversed by default);  ∂L/∂x = ∂L/∂y with the inverse permutation"""

    views_input = True  # (NumPy's transpose is a view: `Function.views_input`)

    keeps_values = True

    axes: object = None

    def forward(self, x):
        if self.axes and any(not -x.ndim <= a < x.ndim for a in self.axes):  # a % ndim would wrap 5 onto 1
            raise ValueError(f"transpose: axes {self.axes} out of range for a {x.ndim}-d tensor")
        self.perm = tuple(range(x.ndim))[::-1] if not self.axes else tuple(a % x.ndim for a in self.axes)
        # two axes are PyTorch's transpose(dim0, dim1), a swap: a permutation here (NumPy's), so on a
        # matrix (0, 1) would silently keep it as it is, and on more axes it is no permutation
        swap = " (PyTorch's transpose(dim0, dim1) swaps two axes; here the axes are NumPy's: the whole order)"
        if sorted(self.perm) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {self.axes} are not a permutation of a {x.ndim}-d tensor's axes"
                             + (swap if len(self.axes) == 2 else ""))
        if x.ndim == 2 and self.perm == (0, 1):
            raise ValueError(f"transpose: axes {self.axes} keep a matrix as it is{swap}: .T or transpose(1, 0) "
                             "transposes it")
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

    keeps_values = True

    index: object

    def forward(self, x):
        self.x_shape, self.x_dtype = x.shape, x.dtype
        y = x[self.index]
        if self.needs_grad[0]:  # (a recorded node's alone: no_grad and predict pay nothing)
            self.views_input = self.xp.may_share_memory(y, x)  # (a basic index's view, not a gather's: `views_input`)
        return y

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
    return GetItem.apply(x, index=backend_index(index, x.backend))


class Cast(Function):
    """y = x converted to ``dtype``;  ∂L/∂x = ∂L/∂y converted back"""

    keeps_values = True

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
    # as `xdl.tensor` refuses them: a complex, string or object tensor was made here, which no op takes
    dtype = check_tensor_dtype(dtype, "astype")
    if not np.issubdtype(dtype, np.floating):
        return Tensor(x.data.astype(dtype), backend=x.backend)
    return Cast.apply(x, dtype=dtype)
