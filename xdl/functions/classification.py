"""Classification outputs: softmax, log softmax, and the cross-entropy losses from logits as single autodiff nodes
(stable log-sum-exp; backward ŷ − y).

The labels are a setting (an array on the logits' backend), not a differentiable input; the loss
classes in `xdl.losses` check them before they get here.
"""

from __future__ import annotations

import numpy as np

from xdl.data.validation import real_targets
from xdl.function import Function
from xdl.functions.registry import Check, op
from xdl.functions.shapes import check_axis
from xdl.tensor import Tensor


def softmax_array(xp, z, axis=-1):
    """softmax(z)ᵢ = e^(zᵢ − max z) / Σⱼ e^(zⱼ − max z) along ``axis`` (shifted: no overflow); an
    empty z's is empty (along an axis of length 0 the max has no value to shift by)."""
    if z.dtype.kind != "f":  # integers and booleans: in float64, as exp gives them (NumPy refused the out=)
        z = z.astype(np.float64)
    if z.size == 0:
        return xp.empty_like(z)
    e = z - z.max(axis=axis, keepdims=True)
    xp.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


@op(method=True, check=[Check((5, 3)), Check((2, 3, 4)), Check((2, 3, 4), axis=1)])
class Softmax(Function):
    """y = softmax(z) along ``axis`` (the last by default; PyTorch's ``dim``);
    ∂L/∂z = y ⊙ (∂L/∂y − Σⱼ ∂L/∂yⱼ·yⱼ), the sum along the same axis"""

    axis: int = -1

    def forward(self, z):
        self.axis = check_axis(self.axis, max(z.ndim, 1), "softmax")  # a 0-d z as one element: y = 1
        self.y = softmax_array(self.xp, z.reshape(z.shape or (1,)), self.axis).reshape(z.shape)
        return self.y

    def backward(self, gy):
        y = self.y.reshape(self.y.shape or (1,))
        return ((y * (gy.reshape(y.shape) - (gy * y).sum(axis=self.axis, keepdims=True))).reshape(gy.shape),)


_LABELS = np.array([0, 2, 1, 1, 0, 2, 2])


def _floating(logits):
    """Integer or boolean logits in float64, as exp gives them (a loss in their dtype failed: "cannot
    convert float NaN to integer"); float ones as they are."""
    return logits if logits.dtype.kind == "f" else logits.astype(np.float64)


@op(method=True, check=[Check((5, 3)), Check((2, 3, 4), axis=1)])
class LogSoftmax(Function):
    """y = log softmax(z) = z − max z − log Σⱼ e^(zⱼ − max z) along ``axis`` (the last by default;
    PyTorch's ``dim``), finite where softmax(z) underflows to 0;
    ∂L/∂z = ∂L/∂y − softmax(z)·Σⱼ ∂L/∂yⱼ, the sum along the same axis"""

    axis: int = -1

    def forward(self, z):
        z = _floating(z)
        self.axis = check_axis(self.axis, max(z.ndim, 1), "log_softmax")  # a 0-d z as one element: y = 0
        flat = z.reshape(z.shape or (1,))
        if flat.size == 0:  # (kept too: the backward reads it, and an empty batch's gradient is empty)
            self.y = self.xp.empty_like(z)
            return self.y
        y = flat - flat.max(axis=self.axis, keepdims=True)
        y -= self.xp.log(self.xp.exp(y).sum(axis=self.axis, keepdims=True))
        self.y = y.reshape(z.shape)
        return self.y

    def backward(self, gy):
        y, g = self.y.reshape(self.y.shape or (1,)), gy.reshape(self.y.shape or (1,))
        return ((g - self.xp.exp(y) * g.sum(axis=self.axis, keepdims=True)).reshape(gy.shape),)


def _refuse_learned_targets(labels, name: str, argument: str) -> None:
    """The targets are a setting, not an input: a tensor of them that requires grad (a teacher's soft
    targets in distillation) would be detached without a word, its gradient never computed."""
    if isinstance(labels, Tensor) and labels.requires_grad:
        raise ValueError(f"{name}: {argument} is a tensor that requires grad, but the loss has no gradient with "
                         f"respect to its targets (they are constants here); pass {argument}.detach() for fixed "
                         "targets")


class SoftmaxCrossEntropy(Function):
    """J = (1/m) Σᵢ −Σⱼ yᵢⱼ log softmax(zᵢ)ⱼ = (1/m) Σᵢ (sᵢ·log Σⱼ e^(zᵢⱼ) − Σⱼ yᵢⱼ zᵢⱼ), sᵢ = Σⱼ yᵢⱼ, for
    logits z (m, C), y one-hot (or soft) rows; integer labels are gathered instead of multiplied (s = 1).
    ∂J/∂z = (softmax(z)·s − y)/m: (softmax(z) − y)/m for rows that are distributions."""

    labels: object

    def forward(self, z):
        xp = self.xp
        if self.labels.ndim == 1:  # the fused op, the mean too: one kernel on the GPU (xdl.ops.activation)
            mean, self.probs = self.backend.ops.softmax_cross_entropy_forward(z, self.labels)
            return mean.reshape(())
        shifted = z - z.max(axis=-1, keepdims=True)
        # Σⱼ yᵢⱼ zᵢⱼ over the labelled classes only: 0·(−inf) (a logit far below the row's largest) is no NaN
        with np.errstate(invalid="ignore"):  # (the products of those are left out)
            picked = xp.where(self.labels != 0, shifted * self.labels, 0).sum(axis=-1)
        self.probs = xp.exp(shifted, out=shifted)
        total = self.probs.sum(axis=-1, keepdims=True)
        self.probs /= total
        # each row's log Σ e^z weighted by its sum s: rows that are no distributions (a masked example's zeros,
        # PyTorch's soft targets of any sum) got log Σ e^z once, and a gradient of another function (p − y)
        self.sums = self.labels.sum(axis=-1, keepdims=True)
        return xp.asarray((xp.log(total[:, 0]) * self.sums[:, 0] - picked).mean(), dtype=z.dtype)

    def backward(self, gy):
        if self.labels.ndim == 1:
            return (self.backend.ops.softmax_cross_entropy_backward(self.probs, self.labels, gy),)
        g = self.probs * self.sums
        g -= self.labels
        g *= gy / g.shape[0]
        return (g,)


@op(check=[Check((7, 3), args=(_LABELS,)), Check((7, 3), args=(np.eye(3)[_LABELS],))])
def softmax_cross_entropy(logits, labels):
    """Softmax cross-entropy of ``logits`` (m, C) against class indices (m,) or one-hot rows (m, C)
    (shapes checked here; values by `xdl.losses.SoftmaxCrossEntropy`, once per data set: here a
    class index outside [0, C) gives that row a NaN loss, as the GPU kernel does)."""
    _refuse_learned_targets(labels, "softmax_cross_entropy", "labels")
    logits = _floating(logits)
    labels = logits.backend.asarray(labels, dtype=logits.dtype if np.ndim(labels) == 2 else None)
    if logits.ndim != 2 or labels.shape not in ((logits.shape[0],), tuple(logits.shape)):
        raise ValueError(f"softmax_cross_entropy: logits must be (m, C) and labels (m,) or (m, C), got logits "
                         f"{tuple(logits.shape)} and labels {tuple(labels.shape)}")
    if labels.ndim == 1 and not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"softmax_cross_entropy: class indices must be integers, got dtype {labels.dtype} "
                        "(xdl.losses.SoftmaxCrossEntropy takes whole numbers of any dtype)")
    return SoftmaxCrossEntropy.apply(logits, labels=labels)


class SigmoidBinaryCrossEntropy(Function):
    """J = (1/n) Σ (max(z, 0) − z·y + log(1 + e^(−|z|))) — the stable form of
    −[y log σ(z) + (1 − y) log(1 − σ(z))]. ∂J/∂z = (σ(z) − y)/n. The fused op each way, the mean too: one kernel
    on the GPU (`xdl.ops.activation.binary_cross_entropy_forward`)."""

    labels: object

    def forward(self, z):
        self.z = z
        return self.backend.ops.binary_cross_entropy_forward(z, self.labels).reshape(())

    def backward(self, gy):
        return (self.backend.ops.binary_cross_entropy_backward(self.z, self.labels, gy),)


@op(check=[Check((7,), args=((_LABELS > 0).astype(float),)), Check((7, 1), args=(_LABELS[:, None] / 2,))])
def sigmoid_binary_cross_entropy(logits, labels):
    """Sigmoid binary cross-entropy of ``logits`` against targets in [0, 1] of the same shape (not
    broadcast: (m, 1) logits against (m,) targets would compare every pair)."""
    _refuse_learned_targets(labels, "sigmoid_binary_cross_entropy", "labels")
    labels = real_targets(labels, "sigmoid_binary_cross_entropy: labels")  # (a complex one lost its imaginary part)
    logits = _floating(logits)
    labels = logits.backend.asarray(labels, dtype=logits.dtype)
    if labels.shape != tuple(logits.shape):
        raise ValueError(f"sigmoid_binary_cross_entropy: targets of shape {tuple(labels.shape)} for logits of shape "
                         f"{tuple(logits.shape)}: give them the same shape (xdl.losses.BinaryCrossEntropy does)")
    return SigmoidBinaryCrossEntropy.apply(logits, labels=labels)
