"""Elementwise functions: exp, log, sqrt, abs, tanh, sigmoid, relu, leaky_relu."""

from __future__ import annotations

from xdl.function import Function


class Exp(Function):
    """y = eˣ;  ∂y/∂x = y"""

    def forward(self, x):
        self.y = self.xp.exp(x)
        return self.y

    def backward(self, gy):
        return (gy * self.y,)


class Log(Function):
    """y = ln x;  ∂y/∂x = 1/x"""

    def forward(self, x):
        self.x = x
        return self.xp.log(x)

    def backward(self, gy):
        return (gy / self.x,)


class Sqrt(Function):
    """y = √x;  ∂y/∂x = 1/(2y)"""

    def forward(self, x):
        self.y = self.xp.sqrt(x)
        return self.y

    def backward(self, gy):
        return (gy / (2 * self.y),)


class Abs(Function):
    """y = |x|;  ∂y/∂x = sign(x) (0 at 0)"""

    def forward(self, x):
        self.x = x
        return self.xp.abs(x)

    def backward(self, gy):
        return (gy * self.xp.sign(self.x),)


class Tanh(Function):
    """y = tanh x;  ∂y/∂x = 1 − y²"""

    def forward(self, x):
        self.y = self.xp.tanh(x)
        return self.y

    def backward(self, gy):
        return (gy * (1 - self.y * self.y),)


class Sigmoid(Function):
    """y = σ(x) = 1/(1 + e⁻ˣ), computed as (1 + tanh(x/2))/2, which never overflows;
    ∂y/∂x = y·(1 − y)"""

    def forward(self, x):
        xp = self.xp
        self.y = xp.tanh(x * 0.5)
        self.y += 1
        self.y *= 0.5
        return self.y

    def backward(self, gy):
        return (gy * self.y * (1 - self.y),)


class LeakyReLU(Function):
    """y = x if x > 0 else slope·x;  ∂y/∂x = 1 or slope.  ReLU is slope = 0."""

    slope = 0.0

    def forward(self, x):
        self.positive = x > 0
        return x * self.positive if self.slope == 0 else self.xp.where(self.positive, x, x * self.slope)

    def backward(self, gy):
        if self.slope == 0:
            return (gy * self.positive,)
        return (self.xp.where(self.positive, gy, gy * self.slope),)


def exp(x): return Exp.apply(x)
def log(x): return Log.apply(x)
def sqrt(x): return Sqrt.apply(x)
def abs(x): return Abs.apply(x)  # noqa: A001
def tanh(x): return Tanh.apply(x)
def sigmoid(x): return Sigmoid.apply(x)
def relu(x): return LeakyReLU.apply(x, slope=0.0)
def leaky_relu(x, slope=0.01): return LeakyReLU.apply(x, slope=float(slope))
