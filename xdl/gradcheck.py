"""Gradient checking: backprop's gradient against two-sided finite differences.

For each element θᵢ of each input,

    g̃ᵢ = (J(θ + ε·eᵢ) − J(θ − ε·eᵢ)) / (2ε)

and the verdict is on

    difference = ‖g − g̃‖₂ / (‖g‖₂ + ‖g̃‖₂)

over all elements: < 1e-7 great, < 1e-5 ok, < 1e-3 suspect, otherwise a bug. The overall
figure can hide one input's bug behind larger gradients elsewhere, so an input whose own
difference is a bug fails the check too — unless its gradients are below what a finite difference
resolves, about |J|·2⁻⁵²/ε (J's rounding over the step; an L2 term that makes J huge, say), which
the result then says. The inputs must be
float64 (in float32 the differences drown in rounding). The inputs are perturbed *in place*, so
``fn`` may ignore its arguments and read the same tensors elsewhere — a model's parameters::

    result = xdl.gradcheck(lambda: loss(model(X), y), model.parameters())

Dropout is switched off while checking (a random mask would make J(θ) a different function on
every call); everything else, batch norm's batch statistics included, runs as in training.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np

from xdl.functions.regularization import dropout_disabled
from xdl.tensor import Tensor, no_grad

VERDICTS = ((1e-7, "great"), (1e-5, "ok"), (1e-3, "suspect"))


@dataclass
class Worst:
    """Where analytic and numeric gradients disagree most: the input with the largest difference of
    its own, among those whose gradients finite differences resolve (all, if none does)."""

    input: int  # position in ``inputs``
    name: str | None  # the tensor's ``name`` when it has one (parameters of a model)
    index: tuple[int, ...]  # element within that input
    analytic: float
    numeric: float
    difference: float  # that input's own relative difference
    resolved: bool = True  # its gradients are large enough for finite differences to check (`resolution`)


@dataclass
class GradcheckResult:
    difference: float
    verdict: str
    worst: Worst
    per_input: list[float] = field(default_factory=list)
    resolution: float = 0.0  # |J|·2⁻⁵²/ε: the smallest derivative the finite differences resolve
    unresolved: list[str] = field(default_factory=list)  # inputs differing like a bug below the resolution

    @property
    def hidden_bug(self) -> bool:
        """The overall difference passes, but an input whose gradients are large enough to check
        differs like a bug on its own: larger gradients elsewhere dominate the overall figure."""
        return self.verdict in ("great", "ok") and self.worst.resolved and verdict_for(self.worst.difference) == "bug"

    @property
    def passed(self) -> bool:
        """True unless the verdict is "bug" or "suspect", or an input hides a bug (`hidden_bug`)."""
        return self.verdict in ("great", "ok") and not self.hidden_bug

    def __str__(self) -> str:
        w = self.worst
        where = _label(w.name, w.input)
        text = (f"gradient check: difference {self.difference:.3e} ({self.verdict}); worst: {where} "
                f"(difference {w.difference:.3e}) at {w.index}: backprop {w.analytic:.6e}, numeric {w.numeric:.6e}")
        if self.hidden_bug:
            text += (f"\nbut {where} alone differs like a bug: the overall difference is dominated by larger "
                     "gradients elsewhere; check that input's backward pass")
        if self.unresolved:
            text += (f"\nnote: the gradients of {', '.join(self.unresolved)} are below what finite differences "
                     f"resolve at this cost (10·|J|·2⁻⁵²/ε ≈ {10 * self.resolution:.1e}): their differences are "
                     "rounding, not a check; a smaller cost (less L2, fewer examples) checks them")
        return text


def verdict_for(difference: float) -> str:
    """The course's reading of a relative difference."""
    for bound, word in VERDICTS:
        if difference < bound:
            return word
    return "bug"


def relative_difference(g, g_num) -> float:
    """‖g − g̃‖ / (‖g‖ + ‖g̃‖), 0 when both vanish."""
    denominator = np.linalg.norm(g) + np.linalg.norm(g_num)
    return float(np.linalg.norm(g - g_num) / denominator) if denominator > 0 else 0.0


def gradcheck(fn, inputs, eps: float = 1e-7) -> GradcheckResult:
    """Compare ``fn``'s backprop gradient with two-sided finite differences.

    Parameters
    ----------
    fn : callable
        ``fn(*inputs)`` (or ``fn()``) returns a one-element tensor J.
    inputs : sequence of Tensor
        float64 tensors to differentiate with respect to (perturbed in place, restored after).
    eps : float
        The finite-difference step ε.

    Returns
    -------
    GradcheckResult
        ``difference``, ``verdict`` ("great", "ok", "suspect", "bug"), ``worst`` (which input,
        which element) and ``per_input`` differences.
    """
    inputs = list(inputs)
    if not inputs:
        raise ValueError("gradcheck: inputs is empty; pass the tensors to differentiate with respect to")
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"gradcheck: inputs[{i}] is a {type(t).__name__}, expected an xdl.Tensor")
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: inputs[{i}] is {t.dtype}; gradient checking needs float64 tensors")
    if not eps > 0:
        raise ValueError(f"gradcheck: eps must be > 0, got {eps}")
    call = _caller(fn, inputs)

    with dropout_disabled():
        cost, analytic = _backprop_gradients(call, inputs)
        numeric = [_numeric_gradient(call, t, eps) for t in inputs]

    g = np.concatenate([a.ravel() for a in analytic])
    g_num = np.concatenate([n.ravel() for n in numeric])
    difference = relative_difference(g, g_num)
    per_input = [relative_difference(a, n) for a, n in zip(analytic, numeric)]
    # an input is checked on its own where its backprop or numeric gradients rise clear of J's rounding
    resolution = abs(cost) * float(np.finfo(np.float64).eps) / eps
    resolved = [max(np.abs(a).max(initial=0.0), np.abs(n).max(initial=0.0)) >= 10 * resolution
                for a, n in zip(analytic, numeric)]
    candidates = [k for k in range(len(inputs)) if resolved[k]] or list(range(len(inputs)))
    i = max(candidates, key=lambda k: per_input[k])
    element = np.unravel_index(int(np.argmax(np.abs(analytic[i] - numeric[i]))), analytic[i].shape)
    element = tuple(int(k) for k in element)
    worst = Worst(i, getattr(inputs[i], "name", None), element, float(analytic[i][element]),
                  float(numeric[i][element]), per_input[i], resolved[i])
    unresolved = [_label(getattr(t, "name", None), k) for k, t in enumerate(inputs)
                  if not resolved[k] and verdict_for(per_input[k]) == "bug"]
    return GradcheckResult(difference, verdict_for(difference), worst, per_input, resolution, unresolved)


def _label(name: str | None, position: int) -> str:
    return name if name else f"input {position}"


def _caller(fn, inputs):
    """``fn`` called with the inputs if it takes them, else with no arguments."""
    try:
        inspect.signature(fn).bind(*inputs)
        return lambda: fn(*inputs)
    except TypeError:
        return fn
    except ValueError:  # builtins without a signature
        return lambda: fn(*inputs)


def _scalar(out) -> float:
    if not isinstance(out, Tensor) or out.size != 1:
        raise ValueError(f"gradcheck: fn must return a one-element tensor, got {type(out).__name__} "
                         f"{getattr(out, 'shape', '')}")
    return float(out.numpy().reshape(()))


def _backprop_gradients(call, inputs) -> tuple[float, list[np.ndarray]]:
    """J and d J / d input for each input, leaving each input's ``.grad`` as it was."""
    saved = [(t.requires_grad, None if t.grad is None else t.grad.copy()) for t in inputs]
    for t in inputs:
        t.requires_grad = True
        if t.grad is not None:
            t.grad[...] = 0  # in place: .grad may be a view into a flat buffer
    try:
        out = call()
        cost = _scalar(out)
        out.backward()
        return cost, [np.zeros(t.shape) if t.grad is None else t.backend.to_numpy(t.grad).astype(np.float64).copy()
                for t in inputs]
    finally:
        for t, (requires, grad) in zip(inputs, saved):
            t.requires_grad = requires
            if grad is None:
                t.grad = None
            else:
                t.grad[...] = grad


@no_grad()
def _numeric_gradient(call, t: Tensor, eps: float) -> np.ndarray:
    grad = np.zeros(t.shape)
    for index in np.ndindex(*t.shape):
        original = t.data[index].copy()
        t.data[index] = original + eps
        plus = _scalar(call())
        t.data[index] = original - eps
        minus = _scalar(call())
        t.data[index] = original  # restore exactly, not by adding ε back
        grad[index] = (plus - minus) / (2 * eps)
    return grad
