"""Gradient checking: backprop's gradient against two-sided finite differences.

For each element θᵢ of each input,

    g̃ᵢ = (J(θ + ε·eᵢ) − J(θ − ε·eᵢ)) / (2ε)

(over the step θᵢ ± ε takes in float64: 2ε only where ε is a whole number of θᵢ's ulps; an input
so large that θᵢ ± ε rounds back to θᵢ is refused, naming the ε it needs)

and the verdict is on

    difference = ‖g − g̃‖₂ / (‖g‖₂ + ‖g̃‖₂)

over all elements: < 1e-7 great, < 1e-5 ok, < 1e-3 suspect, otherwise a bug. The overall
figure can hide one input's bug behind larger gradients elsewhere, so an input whose own
difference is a bug, or suspect, fails the check too (as it would checked alone) — unless that is
rounding. Such an input is checked again with a step `RECHECK` times larger, where J's rounding
over the step (|J|·2⁻⁵²/ε: an L2 term that makes J huge, say) is `RECHECK` times smaller and a
wrong backward pass stays as wrong: its difference is rounding when its gradients stay below
10·|J|·2⁻⁵²/(RECHECK·ε) there too, or their differences from the numeric ones below J's rounding
there, |J|·2⁻⁵²/(RECHECK·ε), or when it agrees there (no bug, and 10 times closer). The result
says which, and the overall figure leaves such inputs out (with none left, nothing was checked:
the verdict is "inconclusive"; so too where every gradient, backprop's and the numeric one, is 0
— J does not read the inputs, and 0/0 compared nothing).
Where the worst element reads as a bug because J has a kink there — its slopes from below and
from above differ and backprop gives one of them (ReLU at 0) or, the slopes the same at 10ε (a jump
in J's derivative, not rounding), a value between them (several ReLUs at 0 under one input:
relu(b) + 2·relu(−b) at 0, slopes −2 and 1, backprop 0) — the result says so (``worst.kink``).

The inputs must be float64, and so must J (in float32 the differences drown in rounding); J and
both gradients must be finite — a NaN or an infinity raises a ValueError naming where. An input of
no elements is skipped. The inputs are perturbed *in place* (and restored, whatever happens), so
``fn`` may ignore its arguments and read the same tensors elsewhere — a model's parameters::

    result = xdl.gradcheck(lambda: loss(model(X), y), model.parameters())

Dropout is switched off while checking (a random mask would make J(θ) a different function on
every call); everything else, batch norm's batch statistics included, runs as in training, but
batch norm's running statistics are left as they were, and so is every ``.grad`` the check's
backward pass reaches (a model's other parameters too): a check changes no model. A layer of one's
own that draws random numbers or keeps state does the same by reading `xdl.is_gradient_checking()`
(`xdl.checking`: the checking thread's own mode, as `no_grad`'s); a J that still gives two values
at the same inputs is refused, naming both, as it has no gradient to check.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import numpy as np

from xdl.data.validation import check_int, check_number, counted
from xdl.checking import gradient_checking
from xdl.tensor import Tensor, enable_grad, no_grad, reverse_topological

__all__ = ["gradcheck", "GradcheckResult", "StepRoundsAway", "VERDICTS", "verdict_for", "relative_difference"]

VERDICTS = ((1e-7, "great"), (1e-5, "ok"), (1e-3, "suspect"))
RECHECK = 100  # an input that reads as a bug is checked again with a step this many times larger


class StepRoundsAway(ValueError):
    """An input element θ so large that θ ± ε rounds back to θ in float64 (its ulp is above ε): its
    numeric gradient would read 0. Raised before any finite difference, with what a caller needs to
    say it in its own terms (``xdl gradcheck`` has no ε to give, only the weights' ``--init``):
    ``label`` and ``index`` name the element, ``value`` is θ, ``eps`` the step, ``needed`` the
    smallest ε that moves every element checked."""

    def __init__(self, label: str, index: tuple, value: float, eps: float, needed: float):
        super().__init__(f"gradcheck: {label} {index} is {value:.6g}, where θ ± ε rounds back to θ in float64 "
                         f"(ε = {eps:g}): give an eps of at least {needed:.3g} (every element checked then moves), "
                         "or inputs of a smaller magnitude")
        self.label, self.index, self.value, self.eps, self.needed = label, index, value, eps, needed


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
    # J's one-sided slopes there (from below, from above) where they differ and backprop gives one of
    # them or one between them: a kink of J (ReLU at 0, |x| at 0, a max's tie, several ReLUs at 0), not a
    # wrong backward pass (`_kink`)
    kink: tuple[float, float] | None = None


@dataclass
class GradcheckResult:
    """What `gradcheck` found: ``difference`` (the overall relative difference, over the inputs
    finite differences resolve) and its ``verdict`` (`VERDICTS`; "inconclusive" with none resolved),
    the ``worst`` place, each input's own difference (``per_input``, in input order), the finite
    differences' floor ``resolution`` (|J|·2⁻⁵²/ε) and the inputs whose bug-like difference is that
    rounding (``unresolved``). ``passed`` (and ``bool(result)``) says whether the check passed; ``str`` says it
    all."""

    difference: float
    verdict: str
    worst: Worst
    per_input: list[float] = field(default_factory=list)
    resolution: float = 0.0  # |J|·2⁻⁵²/ε: J's rounding over the step, the finite differences' floor
    unresolved: list[str] = field(default_factory=list)  # inputs whose bug-like difference is that rounding
    # J does not move with any element checked: backprop's and the numeric gradients are all 0, and
    # their difference 0/0 ("great") compared nothing — J of another model (a copy), or a cut graph
    constant: bool = False
    # the other inputs whose own difference (finite differences resolving them) reads as a bug, with it:
    # the worst alone named one of two wrong backward passes, the other only an unnamed per_input entry
    also: list[tuple[str, float]] = field(default_factory=list)
    sampled: tuple[int, int] | None = None  # (elements checked, of how many) where a sample was drawn (``elements``)
    # the other inputs whose bug-sized difference kinks of J explain, as the worst's ``kink`` (no bug)
    also_kinks: list[str] = field(default_factory=list)

    @property
    def hidden_bug(self) -> bool:
        """The overall difference passes, but an input whose gradients are large enough to check
        differs like a bug, or is suspect (1e-5 to 1e-3), on its own: larger gradients elsewhere
        dominate the overall figure. (A suspect input fails alone, so it fails beside others too: a
        bias gradient 0.1% off passed as "ok" beside a weight whose gradients are 100 times larger.)"""
        return (self.verdict in ("great", "ok") and self.worst.resolved
                and verdict_for(self.worst.difference) in ("suspect", "bug"))

    @property
    def passed(self) -> bool:
        """True unless the verdict is "bug", "suspect" or "inconclusive", or an input hides a bug
        (`hidden_bug`)."""
        return self.verdict in ("great", "ok") and not self.hidden_bug

    def __bool__(self) -> bool:
        """`passed`: ``assert xdl.gradcheck(...)`` is PyTorch's ``assert torch.autograd.gradcheck(...)``, which
        returns True only where the check passed (a dataclass is always true: that assert let a bug through)."""
        return self.passed

    def __str__(self) -> str:
        w = self.worst
        where = _label(w.name, w.input)
        # (a kink's difference is a bug's size, and no bug: the headline said "bug" above the line saying not)
        kinked = w.kink is not None and self.verdict == "bug"
        verdict = "bug-sized, at a kink of J: see below" if kinked else self.verdict
        text = (f"gradient check: difference {self.difference:.3e} ({verdict}); worst: {where} "
                f"(difference {w.difference:.3e}) at {w.index}: backprop {w.analytic:.6e}, numeric {w.numeric:.6e}")
        if w.kink is not None:
            text += (f"\nJ has a kink at {where} {w.index}: its slope is {w.kink[0]:.6e} from below and "
                     f"{w.kink[1]:.6e} from above, and backprop gives one of them or one between them (ReLU at "
                     "0, |x| at 0, a max's tie, several ReLUs at 0): no gradient to check there, rather than a wrong "
                     "backward pass; check at inputs off it (other data, biases not 0)")
        if self.hidden_bug:
            alone = "differs like a bug" if verdict_for(w.difference) == "bug" else "is suspect"
            text += (f"\nbut {where} alone {alone}: the overall difference is dominated by larger "
                     "gradients elsewhere; check that input's backward pass")
        if self.sampled is not None:  # (it read as a check of every element)
            text += f"\nchecked {self.sampled[0]:,} of the inputs' {self.sampled[1]:,} elements, drawn at random"
        if self.also:
            text += ("\nalso differing like a bug: "
                     + ", ".join(f"{label} (difference {d:.3e})" for label, d in self.also))
        if self.also_kinks:
            text += ("\nalso bug-sized at kinks of J only (no wrong backward pass): " + ", ".join(self.also_kinks))
        if self.constant:
            # (0 everywhere is also where J has a stationary point: a model whose weights all start at 0 on
            # examples balanced between its classes — xdl gradcheck --init zeros on moons — whose J does depend on them)
            text += ("\nevery gradient checked, backprop's and the numeric one, is 0, and nothing was checked: J does "
                     "not depend on these inputs (is J computed from them: the model whose parameters are passed, not "
                     "a copy of it, and not from their values taken out of the graph?), or they sit where all its "
                     "gradients are 0 (weights that all start at 0: check at a random start)")
        if self.unresolved:
            text += (f"\nnote: the differences of {', '.join(self.unresolved)} are rounding: their gradients are "
                     f"too small for finite differences at this cost (J's rounding over the step, |J|·2⁻⁵²/ε, "
                     f"is ≈ {self.resolution:.1e} at ε and {self.resolution / RECHECK:.1e} at {RECHECK}·ε, where "
                     "those marked agree); a smaller |J| checks them closer (less L2; fewer examples only where J is a "
                     "sum over them: a mean's size does not change, and L2's λ/2m·Σ‖W‖² grows as m shrinks)")
        return text


def verdict_for(difference: float) -> str:
    """The course's reading of a relative difference."""
    for bound, word in VERDICTS:
        if difference < bound:
            return word
    return "bug"


def relative_difference(g, g_num) -> float:
    """‖g − g̃‖ / (‖g‖ + ‖g̃‖), 0 when both vanish (NaN where either holds a NaN: no agreement)."""
    denominator = np.linalg.norm(g) + np.linalg.norm(g_num)
    return 0.0 if denominator == 0 else float(np.linalg.norm(g - g_num) / denominator)


def _kind(value) -> str:
    """``value``'s type as a user knows it: ``torch.Tensor`` (not "Tensor", xdl's name too), ``float``."""
    kind = type(value)
    module = kind.__module__.split(".")[0]
    return kind.__name__ if module == "builtins" else f"{module}.{kind.__name__}"


def gradcheck(fn, inputs, eps: float = 1e-7, elements: int | None = None) -> GradcheckResult:
    """Compare ``fn``'s backprop gradient with two-sided finite differences.

    Parameters
    ----------
    fn : callable
        ``fn(*inputs)`` (or ``fn()``, when it takes no arguments) returns a one-element float64
        tensor J.
    inputs : Tensor, sequence of Tensor, or a dict name → Tensor
        float64 leaf tensors (not results of operations) to differentiate with respect to
        (perturbed in place, restored after);
        a dict's names (``dict(model.named_parameters())``) name them in the result, else each
        tensor's ``name`` (with its position when several share it: ``input 3 (bias)``).
    eps : float
        The finite-difference step ε.
    elements : int, optional
        Check at most this many elements of each input, drawn at random (the same ones on every
        call), for a model too large to check whole: two evaluations of J per element checked.
        None (the default) checks every element.

    Returns
    -------
    GradcheckResult
        ``difference``, ``verdict`` ("great", "ok", "suspect", "bug"; "inconclusive" when no
        input's gradients are large enough for finite differences to check, as where all are 0),
        ``worst`` (which input, which element) and ``per_input`` differences.
    """
    if not callable(fn):
        raise TypeError(f"gradcheck: fn must be callable (a function returning the cost J), got {type(fn).__name__}")
    if isinstance(inputs, Tensor):  # one input (as torch.autograd.gradcheck takes it), not its rows
        inputs = (inputs,)
    if hasattr(inputs, "shape") and not isinstance(inputs, Tensor):  # (an array's rows were taken as inputs:
        # "inputs[0] is a float64")
        raise TypeError(f"gradcheck: inputs is a {_kind(inputs)}; it differentiates with respect to xdl Tensors: "
                        "xdl.tensor(x, requires_grad=True)")
    if isinstance(inputs, str) or not hasattr(inputs, "__iter__"):
        # (a model itself, as a PyTorch habit passes it to an optimizer: its parameters are what is meant)
        model = "; a model's are model.parameters(), or dict(model.named_parameters()) to name them" \
            if hasattr(inputs, "named_parameters") else ""
        raise TypeError(f"gradcheck: inputs must be a Tensor, a sequence of Tensors or a dict name → Tensor, "
                        f"got {type(inputs).__name__}{model}")
    keys = list(inputs) if isinstance(inputs, dict) else None
    inputs = list(inputs.values()) if isinstance(inputs, dict) else list(inputs)
    names = keys or [getattr(t, "name", None) for t in inputs]
    if keys is None:  # the tensors' own names; one several share (each layer's "bias") with its position
        names = [f"input {i} ({name})" if name and names.count(name) > 1 else name for i, name in enumerate(names)]
    if not inputs:
        raise ValueError("gradcheck: inputs is empty; pass the tensors to differentiate with respect to")
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"gradcheck: inputs[{i}] is a {_kind(t)}, expected an xdl.Tensor")
        if not is_float64(t.dtype):
            raise TypeError(f"gradcheck: inputs[{i}] is {t.dtype}; gradient checking needs float64 tensors (a "
                            "model's parameters: check a float64 copy, twin = copy.deepcopy(model).astype(np.float64), "
                            "with twin's parameters and float64 inputs X — model.astype in place leaves its "
                            "optimizer unusable)")
        if not t.is_leaf:  # backprop gives leaves their gradients: this one's would read 0, a "bug"
            own = keys[i] if keys else getattr(t, "name", None)
            raise ValueError(f"gradcheck: inputs[{i}]{f' ({own})' if own else ''} is the result of an "
                             f"operation ({type(t._fn).__name__}), not a leaf tensor: check with respect to a leaf, "
                             "t.detach() (with t.requires_grad = True where your own code backpropagates to it)")
        _check_perturbable(t, i, keys[i] if keys else getattr(t, "name", None))
    # an input of no elements has nothing to check: skipped, as torch.autograd.gradcheck does
    checked = [k for k, t in enumerate(inputs) if t.size]
    if not checked:
        raise ValueError("gradcheck: every input is empty (0 elements): there is no gradient to check")
    eps = check_number(eps, "gradcheck: eps", "a finite number > 0 (the finite-difference step)",
                       lambda e: 0 < e < math.inf)
    if elements is not None:
        check_int(elements, "gradcheck: elements", expected="a positive integer (elements checked per input) or None")
    call = _caller(fn, inputs)
    labels = [_label(name, k) for k, name in enumerate(names)]
    # each input's elements to check, as flat indices: all, or a sample the same on every call
    sample = np.random.default_rng(0)
    chosen = [np.arange(t.size) if elements is None or t.size <= elements
              else np.sort(sample.choice(t.size, elements, replace=False)) for t in inputs]

    _check_step(inputs, chosen, eps, labels)
    with gradient_checking():
        cost, analytic = _backprop_gradients(call, inputs, labels)
        _check_deterministic(call, cost)
        analytic = [a.ravel()[c] for a, c in zip(analytic, chosen)]
        numeric = [_numeric_gradient(call, t, c, eps, label) for t, c, label in zip(inputs, chosen, labels)]
        per_input = [relative_difference(a, n) for a, n in zip(analytic, numeric)]
        resolution = abs(cost) * float(np.finfo(np.float64).eps) / eps
        # An input whose own difference reads as a bug is checked again at RECHECK·ε, where J's
        # rounding over the step is RECHECK times smaller and a wrong backward pass stays as wrong.
        # Its difference is rounding if its gradients are below what even that step resolves (10×
        # its resolution), if it agrees there (no bug, and 10× closer), or if no element differs there
        # by more than J's rounding over that step; else it is a bug.
        resolved, unresolved = [True] * len(inputs), []
        for k in checked:
            if verdict_for(per_input[k]) in ("great", "ok"):  # (a suspect one too: it fails the check, `hidden_bug`)
                continue
            coarser = _numeric_gradient(call, inputs[k], chosen[k], RECHECK * eps, labels[k])
            again = relative_difference(analytic[k], coarser)
            floor = 10 * resolution / RECHECK
            if max(np.abs(analytic[k]).max(), np.abs(coarser).max()) < floor:
                resolved[k] = False
                unresolved.append(labels[k])
            elif verdict_for(again) != "bug" and again <= per_input[k] / 10:
                resolved[k] = False  # the check of this input is the one at the larger step
                numeric[k], per_input[k] = coarser, again
                unresolved.append(f"{labels[k]} (agrees to {again:.1e} at ε = {RECHECK * eps:g})")
            elif np.abs(analytic[k] - coarser).max() < resolution / RECHECK:
                # no element differs by more than J's rounding there: a gradient only a few times above that
                # floor is still off by it (≈ floor/10: 1e-9 beside a floor of 1e-10 is 1% off), and a right
                # backward pass read as a "bug" — compared with the rounding itself, not the floor (10 times
                # it): a backward pass twice too large on gradients between floor/2 and the floor differed by
                # less than the floor, and passed. (J's rounding is estimated from |J|: where large terms
                # cancel, |J| ≪ Σ|terms|, it is larger, and a right backward pass still reads as a bug there.)
                resolved[k] = False
                unresolved.append(labels[k])

    # the verdict is on the inputs finite differences resolve: the others' difference is rounding
    # (a gradient that is 0, as of x·(1/x), made J's rounding read as a bug); with none, nothing was
    # checked: "inconclusive", which does not pass
    kept = [k for k in checked if resolved[k]]
    # both gradients 0 everywhere: 0/0 reads as agreement, but J never moved (it does not read these
    # inputs) — nothing was checked, as where none is resolved
    constant = not any(np.any(analytic[k]) or np.any(numeric[k]) for k in checked)
    candidates = kept or checked
    g = np.concatenate([analytic[k] for k in candidates])  # (each the chosen elements, flat)
    g_num = np.concatenate([numeric[k] for k in candidates])
    difference = relative_difference(g, g_num)
    i = max(candidates, key=lambda k: per_input[k])
    j, kink = int(np.argmax(np.abs(analytic[i] - numeric[i]))), None
    if verdict_for(per_input[i]) == "bug":  # a kink reads as one: its one-sided slopes tell
        with gradient_checking():
            j, kink = _worst_of_bug(call, inputs[i], chosen[i], analytic[i], numeric[i], eps, cost)
    element = tuple(int(k) for k in np.unravel_index(chosen[i][j], inputs[i].shape))
    worst = Worst(i, names[i], element, float(analytic[i][j]), float(numeric[i][j]), per_input[i], resolved[i],
                  kink)
    also, also_kinks = [], []
    for k in (k for k in kept if k != i and verdict_for(per_input[k]) == "bug"):
        # each one's difference too may be kinks alone (L1's |W| at weights within ε of 0, in every layer): only
        # the worst was looked at, and the others read as wrong backward passes
        with gradient_checking():
            at_kink = _worst_of_bug(call, inputs[k], chosen[k], analytic[k], numeric[k], eps, cost)[1] is not None
        if at_kink:
            also_kinks.append(labels[k])
        else:
            also.append((labels[k], per_input[k]))
    counts = (sum(len(c) for c in chosen), sum(t.size for t in inputs))
    sampled = counts if counts[0] < counts[1] else None
    return GradcheckResult(difference, verdict_for(difference) if kept and not constant else "inconclusive", worst,
                           per_input, resolution, unresolved, constant, also, sampled, also_kinks)


def _label(name: str | None, position: int) -> str:
    return name if name else f"input {position}"


def _caller(fn, inputs):
    """``fn`` called with the inputs if it takes them, else with no arguments. Refused where it
    takes neither, or where it takes both because the inputs would fill parameters with defaults
    (``def J(X=X, y=y)``: J(W) would compute with X = W)."""
    try:
        signature = inspect.signature(fn)
    except ValueError:  # builtins without a signature
        return lambda: fn(*inputs)
    try:
        bound = signature.bind(*inputs)
    except TypeError:
        bound = None
    try:
        signature.bind()
        takes_none = True
    except TypeError:
        takes_none = False
    # named by its parameters alone: a default's repr may be a whole data set
    parameters = (str(p.replace(default=p.empty, annotation=p.empty)) for p in signature.parameters.values())
    shown = f"{getattr(fn, '__name__', 'fn')}({', '.join(parameters)})"
    n = counted(len(inputs), "input")
    if bound is None and not takes_none:
        raise TypeError(f"gradcheck: fn {shown} takes neither the {n} (fn(*inputs)) nor no arguments (fn())")
    if bound is None:
        return fn
    defaulted = [name for name in bound.arguments if signature.parameters[name].default is not inspect.Parameter.empty]
    if takes_none and defaulted:
        raise TypeError(f"gradcheck: fn {shown} could be called with the {n} or with none: gradcheck would pass "
                        f"the inputs in place of the defaults of {', '.join(defaulted)}; take no parameters to read "
                        "the inputs elsewhere (lambda: J()), or one per input without a default (lambda W, b: ...)")
    return lambda: fn(*inputs)


def is_float64(dtype) -> bool:
    """Whether ``dtype`` is float64 in either byte order: a big-endian '>f8' (np.load of a file written
    on such a machine, FITS, a network format; `xdl.tensor` keeps it) holds the same numbers, and was
    refused as "is >f8; gradient checking needs float64 tensors"."""
    return np.dtype(dtype).newbyteorder("=") == np.float64


def _check_perturbable(t: Tensor, i: int, own: str | None) -> None:
    """A ValueError naming ``inputs[i]`` unless the check can step each of its elements alone, in
    place: a read-only array (``np.load(..., mmap_mode="r")``, ``np.broadcast_to``; wrapped by
    ``xdl.Tensor``) failed half-way with NumPy's "assignment destination is read-only", and one
    with a stride of 0 (its elements one memory, a writeable ``as_strided`` view) moved every
    element sharing it, so a right backward pass read as a "bug" — PyTorch's gradcheck refuses it."""
    named = f"inputs[{i}]{f' ({own})' if own else ''}"
    if not t.size:  # (nothing to step: skipped below)
        return
    if not getattr(getattr(t.data, "flags", None), "writeable", True):
        raise ValueError(f"gradcheck: {named} holds a read-only array (a memory map opened with mode 'r', a "
                         "broadcast view), and the check steps each element in place: check a copy, "
                         "xdl.tensor(array, requires_grad=True)")
    if any(stride == 0 and n > 1 for stride, n in zip(getattr(t.data, "strides", ()), t.shape)):
        raise ValueError(f"gradcheck: {named} has a dimension with stride 0 (its elements share memory), so a step "
                         "of one would move the others: check a copy, xdl.tensor(array, requires_grad=True)")


def _scalar(out) -> float:
    if not isinstance(out, Tensor) or out.size != 1:
        raise ValueError(f"gradcheck: fn must return a one-element tensor, got {type(out).__name__} "
                         f"{getattr(out, 'shape', '')}")
    if not is_float64(out.dtype):  # float32's rounding (~1e-7·|J|) over ε swamps any gradient
        raise TypeError(f"gradcheck: fn returned J in {out.dtype}; the check needs J computed in float64 (a model "
                        "or a constant in another dtype rounds it: check a float64 copy, "
                        "copy.deepcopy(model).astype(np.float64), as model.astype in place leaves its optimizer "
                        "unusable)")
    return float(out.numpy().reshape(()))


def _backprop_gradients(call, inputs, labels) -> tuple[float, list[np.ndarray]]:
    """J and d J / d input for each input, leaving every leaf's ``.grad`` as it was: the inputs',
    and those of the other leaves the backward pass reaches (the rest of a model's parameters)."""
    flags = [t.requires_grad for t in inputs]
    try:
        for t in inputs:
            t.requires_grad = True
        with enable_grad():  # under a caller's no_grad (or an outer check's J) no graph was built to backprop
            out = call()
        cost = _scalar(out)
        if not math.isfinite(cost):
            raise ValueError(f"gradcheck: J is {cost} at the inputs given: the cost must be finite to check its "
                             "gradient (a log or a division outside its domain?)")
        leaves = {id(t): t for t in inputs}
        leaves.update((id(node), node) for node in reverse_topological(out) if node._fn is None)
        saved = [(t, t.grad, None if t.grad is None else t.grad.copy()) for t in leaves.values()]
        try:
            for t in inputs:
                if t.grad is not None:
                    t.grad[...] = 0  # in place: .grad may be a view into a flat buffer
            if out.requires_grad:  # (J's graph reaches no leaf — built from values taken out of it, .numpy(),
                out.backward()     # or from tensors that need no gradient: backprop's gradient is 0, not an error)
            grads = [np.zeros(t.shape) if t.grad is None else t.backend.to_numpy(t.grad).astype(np.float64)
                     for t in inputs]
        finally:
            for t, grad, values in saved:
                t.grad = grad  # the array it had (a view into a flat buffer), with its values
                if grad is not None:
                    grad[...] = values
    finally:
        for t, requires in zip(inputs, flags):
            t.requires_grad = requires
    for g, label in zip(grads, labels):
        if not np.isfinite(g).all():
            index = tuple(int(k) for k in np.argwhere(~np.isfinite(g))[0])
            raise ValueError(f"gradcheck: backprop's gradient of {label} is {g[index]} at {index} (J = {cost:.6e} is "
                             "finite): a backward pass gives a non-finite value there — a bug, or a point where "
                             "J's gradient is infinite (move the input off it)")
    return cost, grads


@no_grad()
def _check_deterministic(call, cost: float) -> None:
    """J called again at the same inputs gives the same value (to a few of its ulps); else a
    ValueError: a J drawn anew at each call (a layer's own noise) makes every finite difference
    the draws' difference, which read as a bug in the backward pass."""
    again = _scalar(call())
    if not abs(again - cost) <= 4 * np.spacing(abs(cost)):  # (NaN included)
        raise ValueError(f"gradcheck: J is not one function of the inputs: two calls at the same inputs gave "
                         f"J = {cost!r} and {again!r}. A layer that draws random numbers or changes its own state "
                         "in training must not while a check runs: read xdl.is_gradient_checking() in its forward, "
                         "as xdl's Dropout and BatchNorm do (or check in evaluation mode, model.eval())")


def _check_step(inputs, chosen, eps: float, labels) -> None:
    """Every chosen element θ of every input moves by ±``eps`` in float64 (at 1e10, θ ± 1e-7 is θ: its
    numeric gradient would read 0); else a ValueError naming the first of those whose ulp is the
    largest: the eps every one needs (the first's alone stopped at the next, 1e10 then 3e13): `StepRoundsAway`."""
    worst = None  # (θ's ulp, label, index, θ)
    for t, c, label in zip(inputs, chosen, labels):
        theta = t.backend.to_numpy(t.data).reshape(-1)[c]
        bad = np.flatnonzero(~np.isfinite(theta))  # (inf ± ε is inf: it read as stuck, "an eps of at least nan")
        if bad.size:
            index = tuple(int(i) for i in np.unravel_index(c[bad[0]], t.shape))
            raise ValueError(f"gradcheck: {label} {index} is {float(theta[bad[0]])}: finite differences need finite "
                             "inputs (no eps moves it)")
        stuck = np.flatnonzero(theta + eps == theta - eps)
        if stuck.size:
            ulps = np.spacing(np.abs(theta[stuck]))
            k = stuck[np.argmax(ulps)]
            if worst is None or ulps.max() > worst[0]:
                worst = (ulps.max(), label, tuple(int(i) for i in np.unravel_index(c[k], t.shape)), float(theta[k]))
    if worst is not None:
        ulp, label, index, value = worst
        raise StepRoundsAway(label, index, value, eps, ulp)


@no_grad()
def _around(call, t: Tensor, index: tuple, eps: float) -> tuple[float, float, float, float]:
    """(θ + ε, J there, θ − ε, J there) for the element ``index`` of ``t``: the steps as taken in
    float64, ``t`` restored exactly after."""
    original = t.data[index].copy()
    try:
        t.data[index] = original + eps
        above, plus = float(t.data[index]), _scalar(call())
        t.data[index] = original - eps
        below, minus = float(t.data[index]), _scalar(call())
    finally:  # an error or Ctrl-C mid-way leaves no input perturbed
        t.data[index] = original  # restore exactly, not by adding ε back
    return above, plus, below, minus


def _kink(call, t: Tensor, flat: int, eps: float, cost: float, analytic: float) -> tuple[float, float] | None:
    """J's slopes from below and from above at element ``flat`` of ``t``, (J(θ) − J(θ − ε))/ε and
    (J(θ + ε) − J(θ))/ε, where they differ (by more than 10⁻³ of their size: at a smooth point they
    agree to O(ε)) and backprop's ``analytic`` is one of them (to 10⁻⁵ of its size, or 10⁻³ of the
    jump between them) — a kink, where the central difference is their mean and no wrong backward
    pass; else None. Where several ReLUs sit at 0 under one input (relu(b) + 2·relu(−b) + b/2 at 0:
    slopes −1.5 and 1.5, backprop 0.5, each ReLU's 0 at 0), backprop's value is neither slope but
    between them (J's subgradients there, min(L, R) ≤ g ≤ max(L, R), to 10⁻³ of the jump): a kink
    too where the slopes over 10ε are the same (to 10⁻³ of the jump) — a jump in J's derivative, not
    rounding over a gradient too small to check or a step of J, whose slopes move with the step."""
    index = tuple(int(i) for i in np.unravel_index(flat, t.shape))
    theta = float(t.backend.to_numpy(t.data[index]))

    def slopes(step):  # None where θ ± step rounds back to θ on one side (θ a power of two, ε below its upper
        # half-ulp): that side has no slope to compare (it divided by 0; the central difference took the other's)
        above, plus, below, minus = _around(call, t, index, step)
        if above == theta or below == theta:
            return None
        return (cost - minus) / (theta - below), (plus - cost) / (above - theta)

    sides = slopes(eps)
    if sides is None:
        return None
    left, right = sides

    def apart(a, b, tolerance):
        return abs(a - b) > tolerance * (abs(a) + abs(b))

    def one_of(side):  # (a side's slope is exact but for O(ε·J'') and rounding: next to a slope of 0 — ReLU's,
        # beside a smooth term, relu(x) + x² at 0 — those are all of it, and no relative tolerance of 0 holds)
        return not apart(analytic, side, 1e-5) or abs(analytic - side) <= 1e-3 * abs(left - right)

    if not apart(left, right, 1e-3):
        return None
    if one_of(left) or one_of(right):
        return left, right
    jump = abs(left - right)
    # between the slopes (a subgradient) but neither: only a kink whose slopes stay put over 10ε says so —
    # else the window between two noisy (or step-sized) slopes would let a wrong backward pass through
    if min(left, right) - 1e-3 * jump <= analytic <= max(left, right) + 1e-3 * jump:
        wide = slopes(10 * eps)
        if wide is not None and abs(wide[0] - left) <= 1e-3 * jump and abs(wide[1] - right) <= 1e-3 * jump:
            return left, right
    return None


KINKS_CHECKED = 100  # the most elements of an input `_worst_of_bug` tries for a kink (2 or 4 evaluations of J each)


def _worst_of_bug(call, t: Tensor, chosen, analytic, numeric, eps: float, cost: float) -> tuple[int, tuple | None]:
    """The element (its position in ``chosen``) to name for an input that reads as a bug, with its
    kink (`_kink`) where kinks explain the whole difference: its elements from the most differing
    on, until one is at no kink (the bug: named, with none) or those left agree (the first kink).
    The most differing alone would explain away a wrong backward pass elsewhere in the input
    (relu(x) + 3x + a square whose backward is 10% off, at [0, 1, 2]: "a kink at 0")."""
    order = np.argsort(-np.abs(analytic - numeric), kind="stable")
    left, first = np.ones(len(analytic), dtype=bool), None
    for j in (int(j) for j in order[:KINKS_CHECKED]):
        kink = _kink(call, t, int(chosen[j]), eps, cost, float(analytic[j]))
        if kink is None:
            return j, None
        first, left[j] = first or (j, kink), False
        if not left.any() or verdict_for(relative_difference(analytic[left], numeric[left])) != "bug":
            return first
    return int(order[0]), None  # (more kinks than are tried, or a bug among them: not said to be kinks)


@no_grad()
def _numeric_gradient(call, t: Tensor, chosen: np.ndarray, eps: float, label: str) -> np.ndarray:
    """g̃ at the ``chosen`` elements of ``t`` (flat indices), in their order."""
    grad = np.zeros(len(chosen))
    for k, flat in enumerate(chosen):
        index = tuple(int(i) for i in np.unravel_index(flat, t.shape))
        above, plus, below, minus = _around(call, t, index, eps)
        if not (math.isfinite(plus) and math.isfinite(minus)):
            raise ValueError(f"gradcheck: J is not finite at {label} {index} ± ε (ε = {eps:g}): J(+ε) = {plus}, "
                             f"J(−ε) = {minus}; the cost must be finite around the inputs (an input at the edge of "
                             "a log's or a division's domain?)")
        # over the step θ ± ε actually took: it is 2ε only where ε is a whole number of θ's ulps (one that
        # rounds back to θ is refused before any work: `_check_step`)
        grad[k] = (plus - minus) / (above - below)
    return grad
