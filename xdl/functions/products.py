"""Matrix products: ``a @ b`` with NumPy's rules, and the dense layer's Y = X·W + b as one node."""

from __future__ import annotations

from xdl.function import Function
from xdl.functions.arithmetic import broadcast_shape, unbroadcast
from xdl.functions.registry import Check, op


@op(name="matmul", methods=("__matmul__",), reflected=("__rmatmul__",),
    check=[Check((3, 4), (4, 2)), Check((2, 3, 4), (4, 5)), Check((4,), (4, 3)), Check((3, 4), (4,)), Check((4,), (4,))])
class MatMul(Function):
    """Y = A·B;  ∂L/∂A = ∂L/∂Y·Bᵀ,  ∂L/∂B = Aᵀ·∂L/∂Y (summed over broadcast batch axes)."""

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: operands must have at least one dimension, got shapes {a.shape} and {b.shape}")
        k_a, k_b = a.shape[-1], b.shape[0] if b.ndim == 1 else b.shape[-2]
        if k_a != k_b:
            raise ValueError(
                f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} are not aligned "
                f"({k_a} columns of the left operand vs {k_b} rows of the right)"
            )
        broadcast_shape("matmul", a.shape[:-2], b.shape[:-2])
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        a, b = self.a, self.b
        # Promote 1-D operands to matrices so one pair of formulas covers every case.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = gy
        if a.ndim == 1 and b.ndim == 1:  # a dot product: gy is 0-d
            g2 = gy.reshape(1, 1)
        elif a.ndim == 1:
            g2 = g2[..., None, :]
        elif b.ndim == 1:
            g2 = g2[..., None]
        ga = gb = None
        if self.needs_grad[0]:
            ga = unbroadcast(g2 @ b2.swapaxes(-1, -2), a2.shape).reshape(a.shape)
        if self.needs_grad[1]:
            gb = unbroadcast(a2.swapaxes(-1, -2) @ g2, b2.shape).reshape(b.shape)
        return ga, gb


@op(check=[Check((5, 4), (4, 3), (3,)), Check((5, 4), (4, 3))])
class Linear(Function):
    """Y = X·W + b for X (m, n_in), W (n_in, n_out), b (n_out,) (optional).

    Backward:  ∂L/∂X = ∂L/∂Y·Wᵀ,  ∂L/∂W = Xᵀ·∂L/∂Y,  ∂L/∂b = Σᵢ ∂L/∂Yᵢ
    """

    def forward(self, x, w, b=None):
        if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0] or (b is not None and b.shape != w.shape[1:]):
            bias = "" if b is None else f" + b {tuple(b.shape)}"
            raise ValueError(f"linear: expected X (m, n_in) · W (n_in, n_out) + b (n_out,), got X {tuple(x.shape)} · "
                             f"W {tuple(w.shape)}{bias}")
        self.x, self.w = x, w
        y = self.backend.ops.matmul(x, w)
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        ops = self.backend.ops
        gx = ops.matmul(gy, self.w.T) if self.needs_grad[0] else None
        gw = self.product_gradient(1, self.x.T, gy) if self.needs_grad[1] else None
        if len(self.needs_grad) == 2:
            return gx, gw
        gb = self.row_sum_gradient(2, gy) if self.needs_grad[2] else None
        return gx, gw, gb
