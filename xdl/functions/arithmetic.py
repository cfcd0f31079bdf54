"""Broadcasting arithmetic: ``+ - * / **`` and negation.

Forward broadcasts as NumPy does; backward sums each gradient back to its input's shape
(`unbroadcast`), so ``(X + b)`` with ``b`` of shape (1, n) gives ``b.grad`` of shape (1, n).
"""

from __future__ import annotations

import numpy as np

from xdl.function import Function
from xdl.functions.registry import Check, op

BROADCASTING = [Check((3, 4), (4,)), Check((2, 1, 3), (4, 1)), Check((5,), (5,))]


def broadcast_shape(op: str, *shapes) -> tuple[int, ...]:
    """The broadcast shape, or a ValueError naming the operation and the shapes."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        listed = " and ".join(str(tuple(s)) for s in shapes)
        raise ValueError(f"{op}: shapes {listed} cannot be broadcast together") from None


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes broadcasting added or stretched, giving an array of ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


class Binary(Function):
    """A broadcasting ``a ∘ b``: subclasses give ``compute`` and ``backward`` (via `grads`)."""

    verb = "?"  # how the shape error names the operation

    def forward(self, a, b):
        broadcast_shape(self.verb, a.shape, b.shape)
        self.a_shape, self.b_shape = a.shape, b.shape
        return self.compute(a, b)

    def grads(self, ga, gb):
        return (unbroadcast(ga, self.a_shape) if ga is not None else None,
                unbroadcast(gb, self.b_shape) if gb is not None else None)


@op(methods=("__add__",), reflected=("__radd__",), check=BROADCASTING)
class Add(Binary):
    """y = a + b"""

    verb = "add"

    def compute(self, a, b):
        return a + b

    def backward(self, gy):
        return self.grads(gy, gy)


@op(name="sub", methods=("__sub__",), reflected=("__rsub__",), check=BROADCASTING)
class Subtract(Binary):
    """y = a − b"""

    verb = "subtract"

    def compute(self, a, b):
        return a - b

    def backward(self, gy):
        return self.grads(gy, -gy if self.needs_grad[1] else None)


@op(name="mul", methods=("__mul__",), reflected=("__rmul__",), check=BROADCASTING)
class Multiply(Binary):
    """y = a·b;  ∂y/∂a = b, ∂y/∂b = a"""

    verb = "multiply"

    def compute(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        return self.grads(gy * self.b if self.needs_grad[0] else None,
                          gy * self.a if self.needs_grad[1] else None)


@op(name="div", methods=("__truediv__",), reflected=("__rtruediv__",), domain=("real", "positive"),
    check=[Check((3, 4), (4,)), Check((2, 2), (2, 2))])
class Divide(Binary):
    """y = a / b;  ∂y/∂a = 1/b, ∂y/∂b = −a/b² = −(a/b)/b"""

    verb = "divide"

    def compute(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = gy / self.b if self.needs_grad[0] else None
        # (a/b)/b, as PyTorch's: a/(b·b) overflowed b² (or flushed it to 0) for |b| beyond √ of the
        # dtype's range, where the gradient itself is a number: b = 1e-25 in float32 gave −inf for
        # −1e25, a = 0 there NaN for 0, and b = 1e30 gave 0 for −1e-30. (a/b is computed again rather
        # than kept from the forward: the output is the caller's, which it may change in place.)
        gb = -gy * (self.a / self.b / self.b) if self.needs_grad[1] else None
        return self.grads(ga, gb)


@op(methods=("__pow__",), reflected=("__rpow__",), domain=("positive", "real"),
    check=[Check((3, 4), (4,)), Check((5,), (1,))])
class Pow(Binary):
    """y = a^b;  ∂y/∂a = b·a^(b−1), ∂y/∂b = y·ln a (defined for a > 0; 0 at a = 0 where b ≥ 0, its
    limit, as PyTorch masks it: a ReLU output to a learnt power)"""

    verb = "power"

    def compute(self, a, b):
        self.a, self.b = a, b
        self.y = a**b
        return self.y

    def backward(self, gy):
        ga = None
        if self.needs_grad[0]:  # where b = 0, a^0 is constant: 0, not 0·0^(−1) = NaN at a = 0
            with np.errstate(divide="ignore", invalid="ignore"):  # the branch where() leaves out
                # selected, not multiplied: 0·∞ was NaN where an infinite ∂L/∂y met b = 0 (PyTorch's gives 0)
                ga = self.xp.where(self.b == 0, 0, gy * (self.b * self.a ** (self.b - 1)))
        gb = None
        if self.needs_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):  # ln 0 = −∞, which where() leaves out
                gb = gy * self.xp.where((self.a == 0) & (self.b >= 0), 0, self.y * self.xp.log(self.a))
        return self.grads(ga, gb)


@op(methods=("__neg__",), check=[Check((3, 4)), Check((2, 3, 2))])
class Neg(Function):
    """y = −a"""

    def forward(self, a):
        return -a

    def backward(self, gy):
        return (-gy,)
