"""Elementwise functions: exp, log, sqrt, abs, clamp, tanh, sigmoid, relu, leaky_relu."""

from __future__ import annotations

import numpy as np

from xdl.function import Function
from xdl.functions.registry import Check, op
from xdl.ops import activation

SHAPES = [Check((3, 4)), Check((2, 3, 2))]


def sigmoid_array(xp, z):
    """σ(z) = 1/(1 + e⁻ᶻ), never overflowing and keeping σ's relative precision below 0: the one sigmoid (the
    op's forward, a model's probabilities; binary cross-entropy's backward calls its reference itself,
    `xdl.ops.activation.binary_cross_entropy_backward`), its formula in `xdl.ops.activation.sigmoid_forward`."""
    return activation.sigmoid_forward(xp, z)


@op(method=True, check=SHAPES)
class Exp(Function):
    """y = eˣ;  ∂y/∂x = y"""

    def forward(self, x):
        self.y = self.xp.exp(x)
        return self.y

    def backward(self, gy):
        return (gy * self.y,)


@op(method=True, check=SHAPES, domain="positive")
class Log(Function):
    """y = ln x;  ∂y/∂x = 1/x"""

    def forward(self, x):
        self.x = x
        return self.xp.log(x)

    def backward(self, gy):
        return (gy / self.x,)


@op(method=True, check=SHAPES, domain="positive")
class Sqrt(Function):
    """y = √x;  ∂y/∂x = 1/(2y)"""

    def forward(self, x):
        self.y = self.xp.sqrt(x)
        return self.y

    def backward(self, gy):
        return (gy / (2 * self.y),)


@op(method=True, methods=("__abs__",), check=SHAPES, domain="nonzero")
class Abs(Function):
    """y = |x|;  ∂y/∂x = sign(x) (0 at 0)"""

    def forward(self, x):
        self.x = x
        return self.xp.abs(x)

    def backward(self, gy):
        return (gy * self.xp.sign(self.x),)


class Clamp(Function):
    """y = min(max(x, low), high) (either bound may be None);  ∂y/∂x = 1 where low ≤ x ≤ high, else 0"""

    keeps_values = True

    low: object = None
    high: object = None

    def forward(self, x):
        self.inside = self.xp.ones(x.shape, dtype=bool)
        if self.low is not None:
            self.inside &= x >= self.low
        if self.high is not None:
            self.inside &= x <= self.high
        return self.xp.clip(x, self.low, self.high)  # NumPy's dtype rules: a fraction makes integers floats

    def backward(self, gy):
        # selected, not multiplied: outside the bounds y is constant in x, so its gradient is 0 whatever
        # ∂L/∂y is — 0·∞ was NaN there (sqrt(clamp(x, min=0)) at x < 0), where PyTorch's clamp gives 0
        return (self.xp.where(self.inside, gy, 0),)


def _bound(value, name: str):
    """A clamp bound as a Python number (an int stays an int: integers are clamped exactly)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"clamp: {name} must be a number or None, got {value!r}")
    return int(value) if isinstance(value, int | np.integer) else float(value)


@op(methods=("clamp", "clip"), check=[Check((3, 4), args=(-0.5, 0.5)), Check((3, 4), min=0.25),
                                       Check((2, 3, 2), max=-0.25)])
def clamp(x, min=None, max=None):  # noqa: A002 - PyTorch's names
    """y = x limited to [min, max] (either may be None), as PyTorch's ``clamp``;  ∂y/∂x = 1
    inside, 0 outside. Integer bounds clamp an integer tensor exactly; a fraction makes it float.
    A min above max is refused (PyTorch's gives max everywhere: a swapped pair, most likely)."""
    low, high = _bound(min, "min"), _bound(max, "max")
    if low is None and high is None:
        raise ValueError("clamp: give min, max or both")
    if low is not None and high is not None and low > high:
        raise ValueError(f"clamp: min {low} is above max {high}")
    return Clamp.apply(x, low=low, high=high)


@op(method=True, check=SHAPES)
class Tanh(Function):
    """y = tanh x;  ∂y/∂x = 1 − y²"""

    def forward(self, x):
        # one kernel each way on the GPU (kernels/activation.cu), the backward reading y
        self.y = self.backend.ops.tanh_forward(x)
        return self.y

    def backward(self, gy):
        return (self.backend.ops.tanh_backward(gy, self.y),)


@op(method=True, check=SHAPES)
class Sigmoid(Function):
    """y = σ(x) = 1/(1 + e⁻ˣ) (see `sigmoid_array`);  ∂y/∂x = y·(1 − y)"""

    def forward(self, x):
        # one kernel each way on the GPU (kernels/activation.cu), the backward reading y
        self.y = self.backend.ops.sigmoid_forward(x)
        return self.y

    def backward(self, gy):
        return (self.backend.ops.sigmoid_backward(gy, self.y),)


@op(name="relu", method=True, check=SHAPES, domain="nonzero")
class ReLU(Function):
    """y = max(x, 0);  ∂y/∂x = 1 where x > 0, else 0"""

    def forward(self, x):
        # one kernel on the GPU, as the backward, which reads y (no function writes its output in place)
        self.y = self.backend.ops.relu_forward(x)
        return self.y

    def backward(self, gy):
        return (self.backend.ops.relu_backward(gy, self.y),)


@op(name="leaky_relu", method=True, domain="nonzero", check=[Check((3, 4)), Check((3, 4), slope=0.2),
                                                                 Check((3, 4), slope=-0.5)])
class LeakyReLU(Function):
    """y = x if x > 0 else slope·x;  ∂y/∂x = 1 or slope (slope at 0)"""

    slope: float = 0.01

    def forward(self, x):
        # one kernel each way on the GPU (kernels/activation.cu); the backward reads y where y > 0 exactly where
        # x > 0 (slope ≥ 0), else x: a negative slope makes a negative x's y positive
        y = self.backend.ops.leaky_relu_forward(x, self.slope)
        self.saved = y if activation.leaky_relu_saves_output(self.slope) else x
        return y

    def backward(self, gy):
        return (self.backend.ops.leaky_relu_backward(gy, self.saved, self.slope),)
