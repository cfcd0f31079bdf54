"""Gradient checking: backprop's gradient against two-sided finite differences.

For each element θᵢ of each input,

    g̃ᵢ = (J(θ + ε·eᵢ) − J(θ − ε·eᵢ)) / (2ε)

and the verdict is on

    difference = ‖g − g̃‖₂ / (‖g‖₂ + ‖g̃‖₂)

over all elements: < 1e-7 great, < 1e-5 ok, < 1e-3 suspect, otherwise a bug. The overall
figure can hide one input's bug behind larger gradients elsewhere, so an input whose own
difference is a bug fails the check too — unless that is rounding: its gradients below what a
finite difference resolves, about |J|·2⁻⁵²/ε (J's rounding over the step; an L2 term that makes J
huge, say), or its difference no bug with a step `RECHECK` times larger. The result says which,
and the overall figure leaves such inputs out (with none left, nothing was checked: the verdict is
"inconclusive"). The inputs must be float64 (in float32 the
differences drown in rounding). The inputs are perturbed *in place*, so
``fn`` may ignore its arguments and read the same tensors elsewhere — a model's parameters::

    result = xdl.gradcheck(lambda: loss(model(X), y), model.parameters())

Dropout is switched off while checking (a random mask would make J(θ) a different function on
every call); everything else, batch norm's batch statistics included, runs as in training, but
batch norm's running statistics are left as they were: a check changes no model.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import numpy as np

from xdl.data.validation import check_number
from xdl.functions.batchnorm import running_statistics_kept
from xdl.functions.regularization import dropout_disabled
from xdl.tensor import Tensor, no_grad

VERDICTS = ((1e-7, "great"), (1e-5, "ok"), (1e-3, "suspect"))
RECHECK = 100  # an input that reads as a bug is checked again with a step this many times larger


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
    resolution: float = 0.0  # |J|·2⁻⁵²/ε: J's rounding over the step, the finite differences' floor
    unresolved: list[str] = field(default_factory=list)  # inputs whose bug-like difference is that rounding

    @property
    def hidden_bug(self) -> bool:
        """The overall difference passes, but an input whose gradients are large enough to check
        differs like a bug on its own: larger gradients elsewhere dominate the overall figure."""
        return self.verdict in ("great", "ok") and self.worst.resolved and verdict_for(self.worst.difference) == "bug"

    @property
    def passed(self) -> bool:
        """True unless the verdict is "bug", "suspect" or "inconclusive", or an input hides a bug
        (`hidden_bug`)."""
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
            text += (f"\nnote: the differences of {', '.join(self.unresolved)} are rounding: their gradients are "
                     f"too small for finite differences at this cost (J's rounding over ε: |J|·2⁻⁵²/ε ≈ "
                     f"{self.resolution:.1e}); a smaller cost (less L2, fewer examples) checks them closer")
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
    inputs : Tensor, sequence of Tensor, or a dict name → Tensor
        float64 tensors to differentiate with respect to (perturbed in place, restored after);
        a dict's names (``dict(model.named_parameters())``) name them in the result, else each
        tensor's ``name`` (with its position when several share it: ``input 3 (bias)``).
    eps : float
        The finite-difference step ε.

    Returns
    -------
    GradcheckResult
        ``difference``, ``verdict`` ("great", "ok", "suspect", "bug"; "inconclusive" when no
        input's gradients are large enough for finite differences to check), ``worst`` (which input,
        which element) and ``per_input`` differences.
    """
    if isinstance(inputs, Tensor):  # one input (as torch.autograd.gradcheck takes it), not its rows
        inputs = (inputs,)
    if isinstance(inputs, str) or not hasattr(inputs, "__iter__"):
        raise TypeError(f"gradcheck: inputs must be a Tensor, a sequence of Tensors or a dict name → Tensor, "
                        f"got {type(inputs).__name__}")
    names = list(inputs) if isinstance(inputs, dict) else None
    inputs = list(inputs.values()) if isinstance(inputs, dict) else list(inputs)
    if names is None:  # the tensors' own names; one several share (each layer's "bias") with its position
        names = [getattr(t, "name", None) for t in inputs]
        names = [f"input {i} ({name})" if name and names.count(name) > 1 else name for i, name in enumerate(names)]
    if not inputs:
        raise ValueError("gradcheck: inputs is empty; pass the tensors to differentiate with respect to")
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"gradcheck: inputs[{i}] is a {type(t).__name__}, expected an xdl.Tensor")
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: inputs[{i}] is {t.dtype}; gradient checking needs float64 tensors")
    eps = check_number(eps, "gradcheck: eps", "a finite number > 0 (the finite-difference step)",
                       lambda e: 0 < e < math.inf)
    call = _caller(fn, inputs)

    with dropout_disabled(), running_statistics_kept():
        cost, analytic = _backprop_gradients(call, inputs)
        numeric = [_numeric_gradient(call, t, eps) for t in inputs]
        per_input = [relative_difference(a, n) for a, n in zip(analytic, numeric)]
        resolution = abs(cost) * float(np.finfo(np.float64).eps) / eps
        # An input whose own difference reads as a bug is checked on its own only where finite
        # differences resolve its gradients: clear of J's rounding, and still a bug at RECHECK·ε
        # (where rounding is RECHECK times smaller; a wrong backward pass stays wrong).
        unresolved, resolved = [], []
        for k, (a, n, t) in enumerate(zip(analytic, numeric, inputs)):
            largest = max(np.abs(a).max(initial=0.0), np.abs(n).max(initial=0.0))
            if verdict_for(per_input[k]) != "bug":
                resolved.append(True)
            elif largest < 10 * resolution:
                resolved.append(False)
                unresolved.append(_label(names[k], k))
            else:  # rounding shrinks RECHECK times at the larger step; a wrong backward pass stays wrong
                coarser = _numeric_gradient(call, t, RECHECK * eps)
                again = relative_difference(a, coarser)
                resolved.append(verdict_for(again) == "bug" or again > per_input[k] / 10)
                if not resolved[-1]:  # the check of this input is the one at the larger step
                    numeric[k], per_input[k] = coarser, again
                    unresolved.append(f"{_label(names[k], k)} (agrees to {again:.1e} at "
                                      f"ε = {RECHECK * eps:g})")

    # the verdict is on the inputs finite differences resolve: the others' difference is rounding
    # (a gradient that is 0, as of x/x, made J's rounding read as a bug); with none, nothing was
    # checked: "inconclusive", which does not pass
    kept = [k for k in range(len(inputs)) if resolved[k]]
    candidates = kept or list(range(len(inputs)))
    g = np.concatenate([analytic[k].ravel() for k in candidates])
    g_num = np.concatenate([numeric[k].ravel() for k in candidates])
    difference = relative_difference(g, g_num)
    i = max(candidates, key=lambda k: per_input[k])
    element = np.unravel_index(int(np.argmax(np.abs(analytic[i] - numeric[i]))), analytic[i].shape)
    element = tuple(int(k) for k in element)
    worst = Worst(i, names[i], element, float(analytic[i][element]),
                  float(numeric[i][element]), per_input[i], resolved[i])
    return GradcheckResult(difference, verdict_for(difference) if kept else "inconclusive", worst, per_input,
                           resolution, unresolved)


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
