"""The dense (fully connected) layer as one autodiff node."""

from __future__ import annotations

from xdl.function import Function


class Linear(Function):
    """Y = X·W + b for X (m, n_in), W (n_in, n_out), b (n_out,).

    Backward:  ∂L/∂X = ∂L/∂Y·Wᵀ,  ∂L/∂W = Xᵀ·∂L/∂Y,  ∂L/∂b = Σᵢ ∂L/∂Yᵢ
    """

    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        y = x @ w
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        gx = gy @ self.w.T if self.needs_grad[0] else None
        gw = self.x.T @ gy if self.needs_grad[1] else None
        if len(self.needs_grad) == 2:
            return gx, gw
        gb = gy.sum(axis=0) if self.needs_grad[2] else None
        return gx, gw, gb


def linear(x, w, b=None):
    return Linear.apply(x, w) if b is None else Linear.apply(x, w, b)
