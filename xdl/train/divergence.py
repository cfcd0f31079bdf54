"""When a training run has diverged: its model's state not finite (`non_finite_state`), or a
classifier's train cost far above where such a run starts (`DIVERGENCE_FACTOR` × ln C,
`cost_limit`) and far above where this one started (`START_FACTOR` × `start_cost`):
`diverged_cost`, and the words an error says it in (`far_above`). The rules a `Trainer`,
`fit_many` (per model) and the optimizer benchmark (`xdl.bench.protocol`) share.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from xdl import losses as _losses

# A classifier's run has diverged when its train cost is no longer finite or has risen this far above
# ln C, the cost of a uniform guess over C classes (where it starts, near enough), and to 10 × where it
# started (`start_cost`, `START_FACTOR`): one that multiplied it by 10⁴ is not converging, and would otherwise end
# "completed" at a cost of 10¹², its last checkpoint called good (`diverged_cost`).
DIVERGENCE_FACTOR = 1e4


@contextlib.contextmanager
def overflow_unsaid():
    """An epoch's arithmetic (its steps' forward, backward and update, its evaluation) under
    ``np.errstate(over="ignore", invalid="ignore")``: a diverging run's inf and NaN are said once, by the
    divergence check (a `Trainer`'s FloatingPointError, a model of `fit_many` marked failed), not first as
    NumPy's "overflow encountered in matmul" — PyTorch and Keras say nothing of an overflow in a step, and
    CuPy warns of none (the same on both backends). Yields the caller's settings (``np.geterr()``): the
    user's code run within the epoch (a step hook, an augment) runs under them, its warnings its own."""
    callers = np.geterr()
    with np.errstate(over="ignore", invalid="ignore"):
        yield callers


def cost_limit(classes: int) -> float:
    """`DIVERGENCE_FACTOR` × ln C (C = 2 for each label of a binary cross-entropy): the train cost
    above which a classifier's run over ``classes`` classes has diverged, where it started below it
    (`diverged_cost`)."""
    return DIVERGENCE_FACTOR * math.log(max(classes, 2))


def cost_limit_of(loss, output_shape: tuple) -> float | None:
    """`cost_limit` for xdl's classification losses (softmax cross-entropy over the outputs, or a
    binary one per label); None for a regression's or a loss of one's own: no start to measure from."""
    if isinstance(loss, _losses.SoftmaxCrossEntropy):
        return cost_limit(int(np.prod(output_shape)))
    if isinstance(loss, _losses.BinaryCrossEntropy):
        return cost_limit(2)
    return None


def divergence_factor() -> str:
    """`DIVERGENCE_FACTOR` as a reader takes it in: "1e4", not "10000" or "1e+04"."""
    return f"{DIVERGENCE_FACTOR:.0e}".replace("e+0", "e").replace("e+", "e")


def far_above(what: str, value: float, where: str, start: str, limit: float) -> str:
    """A cost that rose above `DIVERGENCE_FACTOR` × where it started (``start``, whose multiple is
    ``limit``), in words: "the train cost became 1.1e+04 at the end of epoch 5, above 1e4 × ln C = …"."""
    return f"{what} became {value:.3g} at {where}, above {divergence_factor()} × {start} = {limit:.3g}"


def start_cost(costs: np.ndarray, bounds) -> np.ndarray | float:
    """Where a run started (`diverged_cost`), from its first epoch's step costs (``costs``: (steps,),
    or (steps, K) for K models; ``bounds``: the batches): the smaller of its first step's cost, at
    the initial weights, and the epoch's mean step cost (weighted by the batches' sizes) — the
    mean of a run that blew up within the epoch is its blow-up's (Adam at lr 100: 8.8e6, where it
    started at 0.7), and one small batch's cost may be far below the mean (a batch of one example
    at a large initialization: 0, where the mean is 2.8e4; such a run is judged by the limit alone)."""
    sizes = np.array([b - a for a, b in bounds], dtype=np.float64)
    start = np.minimum(costs[0], np.tensordot(sizes, costs, axes=1) / sizes.sum())
    return float(start) if np.ndim(start) == 0 else start


START_FACTOR = 10  # a run that began above the limit has diverged once its cost is this many times its start

# The advice a divergence's error ends with, each piece said once (`Trainer`'s, `fit_many`'s, the estimator's)
RATE_ADVICE = "try a smaller learning rate"  # (a step too large: the usual cause)
NOT_THE_RATE = "the learning rate is not the cause"  # (where it is not: lowering it was no help)
STANDARDIZE = "standardize the inputs (xdl.data.Standardizer)"
SMALLER_INIT = "draw smaller initial weights (he for ReLU, xavier for tanh)"
# added to a divergence in the first epoch of a model with no leading Standardize layer
FIRST_EPOCH_HINT = ("; in the first epoch already: unstandardized inputs make steps that large as a large rate does "
                    f"— {STANDARDIZE}")


# where and why the running statistics a first forward pass wrote are NaN or Inf, and what to do instead
FIRST_FORWARD = ("became NaN or Inf at epoch 1, step 1, in its forward pass, before any update: the model's "
                 "activations overflow at its starting weights")
FIRST_FORWARD_ADVICE = f"{NOT_THE_RATE} — {STANDARDIZE} or {SMALLER_INIT}"


def first_step_advice(standardized: bool) -> str:
    """What to change where a run's first step cost is not finite: the starting weights' (or a layer's or
    loss's of one's own) doing, before any update — no rate made it; the inputs' too where the model has no
    leading Standardize layer (not ``standardized``)."""
    inputs = "" if standardized else f", or {STANDARDIZE}"
    return (f"{NOT_THE_RATE} — the forward pass overflows at those weights (or a layer or loss of one's own gives "
            f"NaN): {SMALLER_INIT} or add batch norm{inputs}")


def first_forward_failure(names: list[str]) -> str:
    """What went wrong where the buffers ``names`` (a batch norm's running statistics) hold NaN or Inf
    after a run's first step: they are the first forward pass's, at the starting weights, before any
    update — the starting weights' or the inputs' doing, not the rate's (`Trainer`'s and `fit_many`'s
    check, in the same words)."""
    return f"{', '.join(names)} {FIRST_FORWARD}"


def state_advice(weight_decay: float) -> str:
    """What to change where an optimizer's state overflowed (`Trainer`'s and `fit_many`'s, in the same words):
    the rule's state holds the gradient (Adam's and RMSprop's its square), which the rate does not scale — "a
    smaller learning rate" was no help. With a ``weight_decay`` (the largest of the run's) the decayed gradient
    g + wd·p: beyond float32 at a wd of 1e20; else the gradient itself: inputs far from unit scale (1e20) or
    huge starting weights."""
    if weight_decay:
        return (f"try a smaller weight_decay (now {weight_decay:g}): the rule's state holds the decayed gradient "
                "g + wd·p, which Adam and RMSprop square — the learning rate does not scale it")
    return (f"{NOT_THE_RATE} — the rule's state holds the gradient, which Adam and RMSprop square: {STANDARDIZE} "
            f"or {SMALLER_INIT}")


def diverged_cost(value: float, limit: float, start: float | None, where: str) -> str | None:
    """Why a classifier's train cost ``value`` at ``where`` says its run diverged, or None: above
    ``limit`` (`cost_limit`) and above `START_FACTOR` × ``start`` (`start_cost`, where the run
    started) — a run that began higher (a large initialization) and falls, or wavers as its cost
    measured another way (the whole train set's, in evaluation) reads, has not diverged (None: not
    known, a run of an older checkpoint)."""
    started = START_FACTOR * start if start is not None else 0.0
    if value <= max(limit, started):
        return None
    return far_above("the train cost", value, where, "ln C (where a classifier starts)", limit) + \
        (f" and {START_FACTOR} × where the run started, {start:.3g}" if started > limit else "")


def _checked_state(model) -> list:
    """The arrays whose values are the model's state, each once: its flat buffers, its parameters
    outside one and its buffers."""
    flats = {id(p._flat[0]): p._flat[0].data for p in model.parameters() if getattr(p, "_flat", None)}
    return [*flats.values(), *(p.data for p in model.parameters() if not getattr(p, "_flat", None)),
            *(a for _, a in model.named_buffers())]


def state_flags(model):
    """isfinite(a).all() for each array of the model's state (`_checked_state`), stacked on the device
    and not read — (n,) booleans —, or None for a model without state: `non_finite_state` reads them,
    or takes them read with other values in one transfer (`xdl.train.host_reads.read_together`)."""
    xp, checked = model.backend.xp, _checked_state(model)
    return xp.stack([xp.isfinite(a).all() for a in checked]) if checked else None


def non_finite_state(model, flags=None) -> list[str]:
    """Names of the parameters and buffers holding NaN or Inf; the names looked up only when a flag
    is down. ``flags``: `state_flags(model)` already read on the host (with other values: one read in
    all); None: read here, one host read of a flag per flat buffer, parameter outside one and buffer."""
    if flags is None:
        stacked = state_flags(model)
        flags = model.backend.to_numpy(stacked) if stacked is not None else ()
    if np.all(flags):
        return []
    xp = model.backend.xp
    named = [(n, p.data) for n, p in model.named_parameters()] + list(model.named_buffers())
    return [name for name, a in named if not bool(xp.isfinite(a).all())]
