"""Softmax along the last axis."""

from __future__ import annotations

from xdl.function import Function


def softmax_array(xp, z):
    """softmax(z)ᵢ = e^(zᵢ − max z) / Σⱼ e^(zⱼ − max z) along the last axis (shifted: no overflow)."""
    e = z - z.max(axis=-1, keepdims=True)
    xp.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e


class Softmax(Function):
    """y = softmax(z);  ∂L/∂z = y ⊙ (∂L/∂y − Σⱼ ∂L/∂yⱼ·yⱼ)"""

    def forward(self, z):
        self.y = softmax_array(self.xp, z)
        return self.y

    def backward(self, gy):
        return (self.y * (gy - (gy * self.y).sum(axis=-1, keepdims=True)),)


def softmax(z): return Softmax.apply(z)
