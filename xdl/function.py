"""`Function`: one differentiable operation, forward and backward on raw backend arrays.

A new operation is one small subclass::

    class Square(Function):
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, gy):
            return (2 * self.x * gy,)

    y = Square.apply(t)          # records the node when a graph is being built

``apply`` turns Python scalars into arrays of the tensors' dtype (so a float64 scalar never turns
float32 arrays into float64), refuses to mix backends, and records the node only when some input
requires a gradient and `xdl.no_grad` is not active. ``backward`` returns one gradient per input,
in input order, ``None`` for inputs that need none (``self.needs_grad[i]`` says which do).
Keyword arguments of ``apply`` are configuration, stored as attributes before ``forward``.
"""

from __future__ import annotations

import numpy as np

from xdl.tensor import Tensor, is_grad_enabled


class Function:
    inputs: tuple[Tensor, ...] = ()
    needs_grad: tuple[bool, ...] = ()
    backend = None  # the inputs' Backend, set by apply before forward
    xp = None  # backend.xp

    def __init__(self, **config):
        self.__dict__.update(config)

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **config) -> Tensor:
        fn = cls(**config)
        tensors = _as_tensors(inputs, cls.__name__)
        record = is_grad_enabled() and any(t.requires_grad for t in tensors)
        fn.needs_grad = tuple(record and t.requires_grad for t in tensors)
        fn.backend = tensors[0].backend
        fn.xp = fn.backend.xp
        out = Tensor(fn.forward(*(t.data for t in tensors)), requires_grad=record, backend=tensors[0].backend)
        if record:
            fn.inputs = tensors
            out._fn = fn
        return out


def _as_tensors(inputs, op: str) -> tuple[Tensor, ...]:
    """Wrap non-tensor inputs on the tensors' backend; refuse mixed backends."""
    reference = next((x for x in inputs if isinstance(x, Tensor)), None)
    if reference is None:
        raise TypeError(f"{op}: expected at least one xdl.Tensor among the inputs")
    backend = reference.backend
    out = []
    for x in inputs:
        if isinstance(x, Tensor):
            if x.backend.name != backend.name:
                raise TypeError(
                    f"{op}: cannot mix tensors of different backends ({backend.name} and {x.backend.name}); "
                    "move one with xdl.tensor(...) under xdl.use(...)"
                )
            out.append(x)
        elif backend.owns(x):
            out.append(Tensor(x, backend=backend))
        elif isinstance(x, int | float | np.generic) or (isinstance(x, list | tuple)):
            dtype = reference.dtype if np.issubdtype(np.asarray(x).dtype, np.number) else None
            out.append(Tensor(backend.asarray(x, dtype=dtype), backend=backend))
        elif isinstance(x, np.ndarray):
            raise TypeError(f"{op}: a NumPy array cannot be combined with a tensor on the {backend.name} backend")
        else:
            raise TypeError(f"{op}: unsupported operand of type {type(x).__name__}")
    return tuple(out)
