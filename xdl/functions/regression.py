"""The regression loss as one autodiff node: the mean squared error, one kernel each way on the GPU where its
formula as tensor operations (a difference, a product, a mean) was three nodes, three launches forward and four
back."""

from __future__ import annotations

import numpy as np

from xdl.data.validation import real_targets
from xdl.function import Function
from xdl.functions.registry import Check, op
from xdl.tensor import Tensor


class MeanSquaredError(Function):
    """J = (1/n) Σ (p − t)² over the n elements of predictions p and targets t (one shape);
    ∂J/∂p = 2·(p − t)/n, ∂J/∂t = −∂J/∂p (`xdl.ops.activation.squared_error_forward`)."""

    def forward(self, predictions, targets):
        self.predictions, self.targets = predictions, targets
        return self.backend.ops.squared_error_forward(predictions, targets).reshape(())

    def backward(self, gy):
        g = self.backend.ops.squared_error_backward(self.predictions, self.targets, gy)
        return (g if self.needs_grad[0] else None, -g if self.needs_grad[1] else None)


@op(check=[Check((7,), (7,)), Check((5, 3), (5, 3))])
def mean_squared_error(predictions, targets):
    """The mean of (predictions − targets)² over the elements, differentiable in both (PyTorch's ``mse_loss``), of
    one shape (not broadcast: (m, 1) predictions against (m,) targets would compare every pair and train to the
    targets' mean without a word). Targets of another dtype are taken as ``predictions - targets`` takes them
    (NumPy's promotion); a list in the predictions' dtype. Targets that are no real numbers (strings, complex
    numbers, dates) are refused by name (`xdl.data.validation.real_numbers`, as the loss classes refuse them)."""
    targets = real_targets(targets, "mean_squared_error: targets")
    # shapes are host values: a captured step checks them at its capture, reading nothing from the device
    shape, expected = (tuple(np.shape(a.data if isinstance(a, Tensor) else a)) for a in (targets, predictions))
    if shape != expected:
        raise ValueError(f"mean_squared_error: targets of shape {shape} for outputs of shape {expected}: give them "
                         "the same shape (xdl.losses.MeanSquaredError prepares them so)")
    return MeanSquaredError.apply(predictions, targets)
