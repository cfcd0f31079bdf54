"""Losses (from logits, numerically stable) and weight penalties.

==========================  ===========================================================
`SoftmaxCrossEntropy`       J = (1/m) Σᵢ −log softmax(zᵢ)[yᵢ];  labels (m,) ints in [0, C) or (m, C) one-hot
`BinaryCrossEntropy`        J = (1/m) Σᵢ −[yᵢ log σ(zᵢ) + (1 − yᵢ) log(1 − σ(zᵢ))];  z, y (m,) or (m, 1);
                            (m, k) for k labels, J then the mean over all m·k
`MeanSquaredError`          J = (1/n) Σ (ŷ − y)² over all n elements
`l2` penalty                λ/(2m)·Σ_W ‖W‖²_F over weights (not biases, not BN γ/β)
`l1` penalty                λ/m·Σ_W Σ|W|
==========================  ===========================================================

>>> import numpy as np, xdl
>>> loss = xdl.losses.SoftmaxCrossEntropy()
>>> round(loss(xdl.tensor([[0.0, 0.0]]), np.array([1])).item(), 4)  # log 2
0.6931
"""

from __future__ import annotations

import math
import weakref

import numpy as np

from xdl import functions as F
from xdl.backend import array_to_numpy
from xdl.data.validation import DISTRIBUTION_TOLERANCE, check_number, check_tensors, counted, real_numbers
from xdl.functions.penalties import WeightPenalty, weight_ranges
from xdl.graph import CheckedState, require_not_capturing
from xdl.nn import PYTORCH_LOSSES
from xdl.nn.module import Module, ends_in_probability
from xdl.tensor import Tensor, missing_module_attribute, role_of

__all__ = ["Loss", "SoftmaxCrossEntropy", "BinaryCrossEntropy", "MeanSquaredError", "l2", "l1"]


# PyTorch's and Keras's loss options → the way here (`Loss.__init__`)
PYTORCH_OPTIONS = {
    "reduction": "the cost is the mean over the batch (a sum is the mean times m)",
    "label_smoothing": "give soft label rows, y·(1 − ε) + ε/C, which SoftmaxCrossEntropy takes",
    "from_logits": "the losses take logits always (PyTorch's CrossEntropyLoss, BCEWithLogitsLoss)",
    "ignore_index": "not offered: leave those examples out of X and y",
    "weight": "class weights are not offered",
    "pos_weight": "class weights are not offered",
}
# where a loss's way differs from `PYTORCH_OPTIONS`' (a loss's ``peer_options``): Keras's BinaryCrossentropy smooths
# toward 1/2, a regression's loss has no logits nor labels to smooth, and both average over every element (as
# PyTorch's BCEWithLogitsLoss and MSELoss do): k labels or values an example make a sum m·k times the mean
ELEMENT_MEAN = "the cost is the mean over every element, m·k of (m, k) outputs (a sum is the mean times m·k)"
SIGMOID_OPTIONS = {
    "reduction": ELEMENT_MEAN,
    "label_smoothing": "give soft targets in [0, 1] as y, y·(1 − ε) + ε/2 (Keras's smoothing), which "
                       "BinaryCrossEntropy takes",
}
REGRESSION_OPTIONS = {
    "reduction": ELEMENT_MEAN,
    "from_logits": "MeanSquaredError takes the model's predictions as they are (a regression has no logits)",
    "label_smoothing": "a regression has no labels to smooth",
    "weight": "example weights are not offered",
    "pos_weight": "a regression has no positive class to weigh",
}


def __getattr__(name: str):  # (torch.nn's loss names: `xdl.nn.PYTORCH_LOSSES`)
    missing_module_attribute(__name__, name, PYTORCH_LOSSES, "nn")


class Loss:
    """``loss(outputs, targets)`` = ``compute(outputs, check(outputs, targets))``.

    `prepare` validates targets in whatever form they come (list, NumPy or CuPy array, Tensor) for
    outputs of a given shape and returns them as an array of the given backend (shaped, typed);
    device arrays cost one reduction and one host read. `check` is `prepare` for the outputs at
    hand. A caller that prepared a whole data set once (`xdl.train.Trainer`) calls `compute` per
    batch and pays nothing per step. ``predicts``: what a model trained on the loss predicts (one of
    `xdl.nn.module.PREDICTIONS`; a `Trainer` sets the model's ``predicts`` from it, which its
    ``predict`` follows).
    """

    predicts: str | None = None
    peer_options: dict = {}  # the loss's own ways for `PYTORCH_OPTIONS`' keywords, where they differ

    def __init__(self, **options):
        """A loss takes no options; one of PyTorch's or Keras's is told the way here (it was Python's
        "SoftmaxCrossEntropy() takes no arguments"): the loss's ``peer_options``, else `PYTORCH_OPTIONS`."""
        for name in options:
            way = self.peer_options.get(name) or PYTORCH_OPTIONS.get(name, "not an option of xdl's losses")
            raise TypeError(f"{type(self).__name__}() takes no options, got {name}=: {way}")

    def __call__(self, outputs: Tensor, targets) -> Tensor:
        if isinstance(outputs, Tensor) and outputs.dtype.kind != "f":  # integer outputs: a float64 loss, as exp's
            outputs = outputs.astype(np.float64)
        return self.compute(outputs, self.check(outputs, targets))

    def check(self, outputs: Tensor, targets):
        if not isinstance(outputs, Tensor):  # Keras's order, loss(y_true, y_pred): "'numpy.ndarray' object has no
            # attribute 'backend'", or "'list' object has no attribute 'shape'", from inside the check
            raise TypeError(f"{type(self).__name__}: outputs must be an xdl Tensor, the model's outputs, first: "
                            f"loss(outputs, targets), PyTorch's order (Keras's is y_true first); got "
                            f"{type(outputs).__name__}")
        if self.predicts in ("classes", "labels") and ends_in_probability(outputs):
            # PyTorch's nn.Sigmoid + nn.BCELoss habit in a loop of one's own: the cost of σ(σ(z)) never falls below
            # log(1 + e⁻¹) per label and the gradient shrinks, a run that trains worse without a word (the Trainer
            # refuses such a model where it is made; this is the same rule for a hand-written loop)
            pytorch = "BCEWithLogitsLoss, not BCELoss" if self.predicts == "labels" else "CrossEntropyLoss"
            raise ValueError(f"{type(self).__name__}: the outputs come from a {outputs.made_by.__name__.lower()}, so "
                             f"they are probabilities, and {type(self).__name__} takes logits (it applies the "
                             f"{'softmax' if self.predicts == 'classes' else 'sigmoid'} itself, stably: PyTorch's "
                             f"{pytorch}): leave it out of the forward (predict_proba applies it)")
        if isinstance(targets, Tensor) and targets.requires_grad and not outputs.requires_grad:
            # Keras's order, loss(y_true, y_pred), with the true values a tensor: `_as_array`'s advice alone
            # ("pass targets.detach()") had the model's outputs detached, and nothing trained
            raise ValueError(f"{type(self).__name__}: targets is a tensor that requires grad, but the loss has no "
                             "gradient with respect to its targets (they are constants here); pass targets.detach() "
                             "for fixed targets — or, as the outputs do not require grad, are the arguments swapped? "
                             "loss(outputs, targets) is PyTorch's order (Keras's is y_true first)")
        # checking reads the targets on the host, which a CUDA graph cannot record
        require_not_capturing(
            f"{type(self).__name__}'s check of its targets (it reads them on the host): prepare them once "
            "with loss.prepare(...) and call loss.compute(...) in a captured step")
        return self.prepare(targets, outputs.shape, outputs.backend, outputs.dtype)

    def __repr__(self) -> str:
        """``Name(setting=value, …)``: its public attributes (xdl's losses have none; a loss of one's
        own, ``Huber(delta=5.0)``, shows its settings)."""
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({settings})"

    def prepare(self, targets, shape: tuple, backend, dtype):
        raise NotImplementedError

    def compute(self, outputs: Tensor, targets) -> Tensor:
        raise NotImplementedError


def _as_array(targets, backend, name: str):
    """``targets`` (Tensor, list, any backend's array) as a real-valued array of ``backend``; a
    Tensor that requires grad is refused: the loss is constant in its targets, so a teacher's soft
    targets would be detached without a word."""
    if targets is None:  # (NumPy's 0-d array of None failed below on "'bool' object has no attribute 'astype'")
        raise TypeError(f"{name} is None; the loss needs the targets of the outputs: loss(outputs, targets)")
    if isinstance(targets, Tensor) and targets.requires_grad:
        raise ValueError(f"{name} is a tensor that requires grad, but the loss has no gradient with respect to its "
                         f"targets (they are constants here); pass {name.rsplit(': ', 1)[-1]}.detach() for fixed targets")
    data = targets.data if isinstance(targets, Tensor) else targets
    if not backend.owns(data) or isinstance(data, np.ma.MaskedArray):  # (a masked value as NaN: `array_to_numpy`)
        data = np.asarray(array_to_numpy(data))  # checked on the host: CuPy has no string or object arrays
    data = real_numbers(data, name, name.rpartition(": ")[2])
    return backend.asarray(data)


class SoftmaxCrossEntropy(Loss):
    """Softmax + cross-entropy of logits (m, C) against class indices (m,) or one-hot (or soft)
    rows (m, C), each a distribution: rows that sum to 1 within 1e-4 (float rounding) are divided
    by their sums (rows of another sum are refused; `xdl.functions.softmax_cross_entropy` takes them).
    `prepare` gives exact one-hot rows (0s and a single 1) as their class indices, the fused loss's
    input: the same cost and gradient."""

    predicts = "classes"

    def prepare(self, labels, shape, backend, dtype):
        if len(shape) != 2:
            raise ValueError(f"SoftmaxCrossEntropy needs logits of shape (m, C), got {tuple(shape)}")
        m, n_classes = shape
        if n_classes < 2:  # the softmax of one logit is 1: a cost of 0 and no gradient, whatever the data
            raise ValueError(f"SoftmaxCrossEntropy needs 2 or more outputs, the model gives {n_classes}; for one "
                             "output and 0/1 labels use BinaryCrossEntropy")
        y = _as_array(labels, backend, "SoftmaxCrossEntropy: labels")
        xp = backend.xp
        if y.dtype == np.bool_:  # False and True are classes 0 and 1 (as `check_labels` reads them)
            y = y.astype(np.int64)
        if y.shape == (m, 1):  # a column of class indices, as `check_labels` reads it (no one-hot row of one class)
            y = y[:, 0]
        if y.ndim == 1:
            if y.shape[0] != m:
                raise ValueError(f"SoftmaxCrossEntropy: {counted(y.shape[0], 'label')} for {counted(m, 'example')}")
            if not np.issubdtype(y.dtype, np.integer):
                if not xp.all(xp.isfinite(y) & (y == xp.round(y))):
                    raise ValueError(f"SoftmaxCrossEntropy: labels must be class indices (integers), "
                                     f"got dtype {y.dtype} with values that are not (finite) integers")
                if y.size and (float(y.min()) < 0 or float(y.max()) >= n_classes):  # before a cast that would wrap
                    raise ValueError(f"SoftmaxCrossEntropy: labels must be class indices in [0, {n_classes}), "
                                     f"got values in [{float(y.min()):g}, {float(y.max()):g}]")
                y = y.astype(xp.int64)
            if y.size and (int(y.min()) < 0 or int(y.max()) >= n_classes):
                raise ValueError(f"SoftmaxCrossEntropy: labels must be class indices in [0, {n_classes}), "
                                 f"got values in [{int(y.min())}, {int(y.max())}]")
            return y.astype(xp.int64, copy=False)  # what the fused loss takes (int32, uint8 labels too)
        if tuple(y.shape) != (m, n_classes):
            raise ValueError(f"SoftmaxCrossEntropy: labels of shape {tuple(y.shape)}; expected ({m},) class "
                             f"indices (or a ({m}, 1) column of them) or ({m}, {n_classes}) one-hot rows")
        y = y.astype(dtype, copy=False)
        if not xp.all(xp.isfinite(y) & (y >= 0)):
            raise ValueError("SoftmaxCrossEntropy: one-hot (or soft) label rows must be finite and ≥ 0")
        sums = y.sum(axis=1, dtype=np.float64)
        # both answers in one host read (a device array's: one sync, as the sums' check alone took before)
        distributions, zeros_and_ones = (bool(v) for v in array_to_numpy(xp.stack([
            xp.all(xp.abs(sums - 1) <= DISTRIBUTION_TOLERANCE), xp.all((y == 0) | (y == 1))])))
        # rows of another sum are refused as a slip (multi-label rows, counts): F.softmax_cross_entropy, PyTorch's
        # −Σ y log p, takes them, with its own gradient p·Σy − y
        if not distributions:
            # rows of several 1s are a multi-label problem's targets (Keras's sigmoid + binary_crossentropy): named
            several = float(sums.max()) > 1 + DISTRIBUTION_TOLERANCE and zeros_and_ones
            raise ValueError(f"SoftmaxCrossEntropy: one-hot (or soft) label rows must sum to 1 (each a "
                             f"distribution over the classes), got sums in [{float(sums.min()):g}, "
                             f"{float(sums.max()):g}]" + ("; rows with several 1s are multi-label targets (several "
                             "yes/no labels per example): BinaryCrossEntropy trains one per output" if several else ""))
        if zeros_and_ones:  # rows of 0s and a single 1 (they sum to 1): exact one-hot rows, Keras's categorical labels
            # as their class indices, what the fused loss takes (one kernel each way on the GPU; the rows' path of
            # NumPy-API operations was 14 launches forward): the same cost, −Σⱼ yⱼ log pⱼ = −log p_label, and
            # gradient, p − y. Prepared once per data set by a Trainer, on the host: a step reads nothing more
            return y.argmax(axis=1).astype(xp.int64)
        # rows within the tolerance made exact distributions (the cost of the labels meant, not of their rounding)
        return (y / sums[:, None]).astype(dtype, copy=False)

    def compute(self, logits: Tensor, labels) -> Tensor:
        return F.softmax_cross_entropy(logits, labels)


def _targets_like(targets, shape, backend, dtype, loss: str):
    """``targets`` as a finite array of ``backend``, ``dtype`` and ``shape`` (same number of elements)."""
    y = _as_array(targets, backend, f"{loss}: targets")
    size = int(np.prod(shape))
    squeezed = tuple(n for n in shape if n != 1)
    if y.size != size or tuple(n for n in y.shape if n != 1) != squeezed:  # (m,) for (m, 1) is fine; (3, 2) for (2, 3) is not
        raise ValueError(f"{loss}: targets of shape {tuple(y.shape)} for outputs of shape {tuple(shape)}")
    xp = backend.xp
    if y.dtype.kind == "f" and not xp.isfinite(y).all():  # bool() of a device array: one host read
        raise ValueError(f"{loss}: targets contain NaN or Inf")
    high = float(np.finfo(dtype).max)  # a Python float: compared to a float32 one, 1e39 would overflow
    # the two dtypes' ranges compared (``high`` beside a float16 scalar would be cast to float16: an overflow warning)
    if y.size and y.dtype.kind == "f" and np.finfo(y.dtype).max > np.finfo(dtype).max:
        largest = float(xp.abs(y).max())  # (one reduction and host read, for the check and its message)
        if largest > high:
            raise ValueError(f"{loss}: targets have values beyond {np.dtype(dtype)}'s range ±{high:.3g} (max |y| = "
                             f"{largest:.3g}); scale them, or train in a wider dtype")
    return y.astype(dtype, copy=False).reshape(shape)


class BinaryCrossEntropy(Loss):
    """Sigmoid + binary cross-entropy of logits against 0/1 (or soft, in [0, 1]) labels of the same
    shape: (m,) or (m, 1) for one yes/no label, (m, k) for k labels at once (multi-label)."""

    predicts = "labels"
    peer_options = SIGMOID_OPTIONS

    def prepare(self, labels, shape, backend, dtype):
        y = _targets_like(labels, shape, backend, dtype, "BinaryCrossEntropy")
        if y.size and backend.xp.any((y < 0) | (y > 1)):
            raise ValueError(f"BinaryCrossEntropy: labels must be in [0, 1] (0/1 classes or probabilities), "
                             f"got values in [{float(y.min())}, {float(y.max())}]")
        return y

    def compute(self, logits: Tensor, labels) -> Tensor:
        return F.sigmoid_binary_cross_entropy(logits, labels)


class MeanSquaredError(Loss):
    """Mean of squared differences over all elements (a regression: the model predicts values)."""

    predicts = "values"
    peer_options = REGRESSION_OPTIONS

    def prepare(self, targets, shape, backend, dtype):
        return _targets_like(targets, shape, backend, dtype, "MeanSquaredError")

    def compute(self, predictions: Tensor, targets) -> Tensor:
        # not broadcast, as `sigmoid_binary_cross_entropy` refuses it: (m, 1) predictions against (m,) targets
        # compared every pair, (m, m), and trained to the targets' mean without a word (shapes are host
        # values: a captured step checks them at its capture, reading nothing from the device)
        shape = tuple(np.shape(targets.data if isinstance(targets, Tensor) else targets))
        if shape != tuple(predictions.shape):
            raise ValueError(f"MeanSquaredError: targets of shape {shape} for outputs of shape "
                             f"{tuple(predictions.shape)}: give them the same shape (loss(outputs, targets) and "
                             "loss.prepare(...) do)")
        return F.mean_squared_error(predictions, targets)  # one node: one kernel each way on the GPU


def _weights(model_or_params, name: str = "model"):
    """The weights a penalty sums over, each once: a list given with a weight twice (an encoder's and
    its tied decoder's ``parameters()`` joined) counts it once, as ``model.parameters()`` lists a
    shared one once — twice, λ/(2m)·Σ‖W‖² doubled its term and its gradient without a word. A role
    is read at each call (one set by hand since counts)."""
    if isinstance(model_or_params, Module):
        return [p for p in _model_parameters(model_or_params) if role_of(p) == "weight"]  # (each once already)
    params = model_or_params.parameters() if hasattr(model_or_params, "parameters") else \
        check_tensors(model_or_params, name)
    return list({id(p): p for p in params if role_of(p) == "weight"}.values())


# a model -> (the `CheckedState` count at which its parameters were listed, the list): `_model_parameters`
_LISTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _model_parameters(model: Module) -> list:
    """``model.parameters()``, walked once while the model's tree stays as it was: a Trainer's penalty asks
    it each step, and the walk of every module was a fair part of the call (13–20 µs of l2's 55–95 µs for
    an mlp of 2 to 4 layers on the CPU; ~1 µs kept). A parameter or a submodule registered or removed
    anywhere in the tree counts a change of `CheckedState` (`Module.__setattr__`, `__delattr__`), so the
    list is kept while the count is the one it was made at; any other change counted (a parameter frozen,
    placed anew) walks it again, as nothing tells those apart. A model whose modules list their parameters
    their own way (an override of ``parameters``, ``named_parameters`` or ``named_modules``: what it gives
    may change uncounted), or that cannot be a key (a class of one's own with ``__eq__`` and no
    ``__hash__``), is walked each call. The list is the caller's to read, not to change."""
    count = CheckedState.now  # (read before the walk: a change during it is walked again next call)
    try:
        held = _LISTED.get(model)
    except TypeError:  # (unhashable)
        return model.parameters()
    if held is not None and held[0] == count:
        return held[1]
    params = model.parameters()
    if all(_lists_as_modules_do(m) for _, m in model.named_modules()):
        _LISTED[model] = (count, params)
    return params


def _lists_as_modules_do(module) -> bool:
    """Whether ``module``'s class lists its parameters as `Module` does (no override: `_model_parameters`)."""
    cls = type(module)
    return (cls.parameters is Module.parameters and cls.named_parameters is Module.named_parameters
            and cls.named_modules is Module.named_modules)


def check_penalty(lambd, name: str, dtype=None) -> None:
    """A weight penalty's λ (``l2``, ``l1``: `Trainer`'s, `TrainConfig`'s with its ``weight_decay``, and `l2`'s,
    `l1`'s ``lambd``) is a finite number ≥ 0 and at most ``dtype``'s largest: the penalty (λ/(2m)·Σ‖W‖²,
    λ/m·Σ|W|) and its gradient ((λ/m)·W, (λ/m)·sign(W); a decay's wd·W) are computed in the weights' dtype,
    where a larger λ is inf — the cost was inf, and a run's first step NaN, stopped as diverged advising a smaller
    learning rate. Refused by name, before any work (the range once the ``dtype`` is known: None checks λ ≥ 0
    alone)."""
    # (not `check_number`: a Python int beyond floats, 10**400, is finite, beyond the dtype's range, not inf; a
    # NumPy complex or duration is no real number: the one's imaginary part was dropped, the other not comparable)
    if isinstance(lambd, bool | np.timedelta64) or not isinstance(lambd, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a finite number ≥ 0, got {lambd!r}")
    value = lambd if isinstance(lambd, int) else float(lambd)  # (a float16's comparison cast float32's largest: inf)
    if not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number ≥ 0, got {lambd!r}")
    high = math.inf if dtype is None else float(np.finfo(dtype).max)
    if value > high:
        raise ValueError(f"{name} must be at most {high:.3g}, {np.dtype(dtype)}'s largest number (the model's dtype, "
                         f"which the penalty is computed in), got {lambd!r}")


def _penalized(model, lambd, m, name: str) -> list:
    """The weights a penalty ``name`` covers, once λ and m are checked (named, before any work)."""
    check_penalty(lambd, f"{name}: lambd")  # (its range in the weights' dtypes: once they are known)
    check_number(m, f"{name}: m", "a number > 0 (the examples the cost averages over)", lambda v: 0 < v < math.inf)
    if not hasattr(model, "parameters") and (isinstance(model, str) or not hasattr(model, "__iter__")):
        raise TypeError(f"{name}: expected a model or a list of its parameters, got {type(model).__name__}")
    weights = _weights(model, f"{name}: model")
    if not weights:
        raise ValueError(f"{name}: the model has no weights to penalize")
    for dtype in {w.dtype for w in weights}:  # (each weight's term and gradient in its own dtype)
        check_penalty(lambd, f"{name}: lambd", dtype)
    return weights


def l2(model, lambd: float, m: int = 1) -> Tensor:
    """λ/(2m)·Σ‖W‖²_F over the model's weights, each once (one shared or tied, or listed twice, too);
    its gradient adds (λ/m)·W to each weight's.

    ``m`` is the number of examples the cost averages over (the mini-batch size in training). Of a
    list of parameters, the weights are those whose role says so, or without one those of two axes
    or more (`xdl.tensor.role_of`): a course-layout bias of shape (n, 1) says
    ``xdl.Parameter(b, role="bias")``.
    """
    weights = _penalized(model, lambd, m, "l2")
    return WeightPenalty.apply(*weights, kind="l2", slope=float(lambd) / float(m), ranges=weight_ranges(weights))


def l1(model, lambd: float, m: int = 1) -> Tensor:
    """λ/m·Σ|W| over the model's weights, each once (one shared or tied, or listed twice, too); its
    gradient adds (λ/m)·sign(W) to each weight's — 0 for a weight of exactly 0, where |W| has a kink
    (its slopes there are ∓λ/m; 0 is a subgradient, their mean, as a central difference gives it).
    It drives weights towards zero (sparse models: with plain gradient steps — SGD, Momentum — a
    weight whose data gradient is smaller than λ/m ends within lr·λ/m of 0, not at exactly 0; an
    adaptive rule — RMSprop, Adam — divides its step by the gradient's size, and such weights
    hover about lr from 0 whatever λ; weights that feed a batch norm only shrink, their scale being
    normalized away); ``m`` and the weights as `l2`'s (``Trainer(l1=λ)`` adds it to each batch's cost)."""
    weights = _penalized(model, lambd, m, "l1")
    return WeightPenalty.apply(*weights, kind="l1", slope=float(lambd) / float(m), ranges=weight_ranges(weights))
