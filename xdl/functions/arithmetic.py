"""Broadcasting arithmetic: ``+ - * / **`` and negation.

Forward broadcasts as NumPy does; backward sums each gradient back to its input's shape
(`unbroadcast`), so ``(X + b)`` with ``b`` of shape (1, n) gives ``b.grad`` of shape (1, n).
"""

from __future__ import annotations

import numpy as np

from xdl.function import Function


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


class _Binary(Function):
    op = "?"

    def forward(self, a, b):
        broadcast_shape(self.op, a.shape, b.shape)
        self.a_shape, self.b_shape = a.shape, b.shape
        return self.compute(a, b)

    def grads(self, ga, gb):
        return (unbroadcast(ga, self.a_shape) if ga is not None else None,
                unbroadcast(gb, self.b_shape) if gb is not None else None)


class Add(_Binary):
    """y = a + b"""

    op = "add"

    def compute(self, a, b):
        return a + b

    def backward(self, gy):
        return self.grads(gy, gy)


class Sub(_Binary):
    """y = a − b"""

    op = "subtract"

    def compute(self, a, b):
        return a - b

    def backward(self, gy):
        return self.grads(gy, -gy if self.needs_grad[1] else None)


class Mul(_Binary):
    """y = a·b;  ∂y/∂a = b, ∂y/∂b = a"""

    op = "multiply"

    def compute(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        return self.grads(gy * self.b if self.needs_grad[0] else None,
                          gy * self.a if self.needs_grad[1] else None)


class Div(_Binary):
    """y = a / b;  ∂y/∂a = 1/b, ∂y/∂b = −a/b²"""

    op = "divide"

    def compute(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = gy / self.b if self.needs_grad[0] else None
        gb = -gy * self.a / (self.b * self.b) if self.needs_grad[1] else None
        return self.grads(ga, gb)


class Pow(_Binary):
    """y = a^b;  ∂y/∂a = b·a^(b−1), ∂y/∂b = y·ln a (only needed, and only defined, for a > 0)"""

    op = "power"

    def compute(self, a, b):
        self.a, self.b = a, b
        self.y = a**b
        return self.y

    def backward(self, gy):
        ga = gy * self.b * self.a ** (self.b - 1) if self.needs_grad[0] else None
        gb = gy * self.y * self.xp.log(self.a) if self.needs_grad[1] else None
        return self.grads(ga, gb)


class Neg(Function):
    """y = −a"""

    def forward(self, a):
        return -a

    def backward(self, gy):
        return (-gy,)


def add(a, b): return Add.apply(a, b)
def sub(a, b): return Sub.apply(a, b)
def mul(a, b): return Mul.apply(a, b)
def div(a, b): return Div.apply(a, b)
def pow(a, b): return Pow.apply(a, b)  # noqa: A001 - mirrors the operator it implements
def neg(a): return Neg.apply(a)
