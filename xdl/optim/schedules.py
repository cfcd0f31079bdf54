"""Learning-rate schedules: plain ``count -> lr`` callables (optax style).

``count`` is always 0-based: the number of steps (or epochs) completed before the one the rate is
for, so the first step or epoch uses ``schedule(0)``: α₀ for every decay (a warm-up starts
below α₀, and `inverse_sqrt` at α₀·k, as their formulas say). Pass a schedule
as an optimizer's ``lr`` to decay per step, or as `Trainer`'s ``schedule`` to decay per epoch
(``opt.lr = schedule(epoch)`` at the start of each epoch) — the formula is the same, only the
count differs.

>>> from xdl.optim import schedules
>>> s = schedules.inverse_time(0.2, decay_rate=1.0)
>>> [round(s(epoch), 4) for epoch in (0, 1, 2)]
[0.2, 0.1, 0.0667]

A setting after those every caller gives by position (α₀; cosine's total, warmup's schedule and steps) is
a keyword where PyTorch's or Keras's peer takes another at its place (PyTorch's and scikit-learn's rule):
``step_decay(lr0, 30)`` in StepLR(optimizer, step_size, gamma)'s order was factor=30, a rate growing 30×
each 10 counts; such a call is refused, saying what the peer's argument is here (`_maker`). So is a peer's
keyword that a maker does not take (``step_decay(lr0, gamma=0.1)``, ``cosine(lr0, 100, alpha=0.1)``), saying the
keyword here and, where the meaning differs, its value from the peer's (Keras's alpha is a fraction of α₀).
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import NamedTuple

import numpy as np

from xdl.files import python_value
from xdl.optim.optimizer import check_count, check_non_negative, check_not_maker, check_positive, takes_arguments
from xdl.tensor import peer_order_refused

__all__ = ["Schedule", "inverse_time", "exponential", "inverse_sqrt", "staircase", "step_decay", "cosine", "warmup"]

COUNT_TYPES = (int, float, np.integer, np.floating)  # a schedule's count: steps or epochs done (Keras's may be floats)


def _power(base: float, exponent) -> float:
    """base^exponent as a float: inf beyond floats (a growing schedule's far end, where Python's
    float power raises; the optimizer then names the rate as out of range)."""
    try:
        return float(base) ** exponent
    except OverflowError:
        return math.inf


class Schedule:
    """A schedule of this module: ``schedule(count) = formula(count, *args)``, named by its maker and
    its arguments in the maker's order (``cosine(0.001, 1000, 0.0)`` for ``cosine(0.001, 1000, min_lr=0.0)``):
    its repr, what a checkpoint records and a resume compares — written as before the settings were
    keywords, so a checkpoint of then still resumes. A small object, not a closure, so that an optimizer
    holding one pickles (its ``state_dict`` too)."""

    def __init__(self, kind: str, formula, *args):
        # NumPy scalars as Python numbers: a formula of np.float32(3e-3) (a rate from Optuna, a frame, a NumPy
        # grid) ran in float32, each rate rounded there — other weights than those of the Python float
        self.args = tuple(map(python_value, args))
        self.formula = formula
        self.__name__ = f"{kind}({', '.join(str(getattr(a, '__name__', a)) for a in self.args)})"

    def __call__(self, count):
        # (a negative count reached 1/0 in inverse_time and rates above α₀ elsewhere, NaN gave NaN, and a string
        # or None a TypeError from inside the formula; checked inline: a Trainer prechecks up to 10⁵ rates)
        if isinstance(count, bool) or not isinstance(count, COUNT_TYPES) or not count >= 0:
            raise ValueError(f"{self.__name__}: count must be a number ≥ 0 (the steps or epochs done before the one "
                             f"the rate is for), got {count!r}")
        # a NumPy count as the Python number it holds, as the arguments are: np.float32(7) ran the formula in
        # float32 (a rate rounded there), np.int64 gave NumPy's power, 1 ulp from the Python int's
        return self.formula(python_value(count), *self.args)

    def __repr__(self) -> str:
        return self.__name__


def _inverse_time(count, lr0, decay_rate):
    return lr0 / (1.0 + decay_rate * count)


def _exponential(count, lr0, base):
    return lr0 * _power(base, count)


def _inverse_sqrt(count, lr0, k):
    return lr0 * k / math.sqrt(max(count, 1))


def _staircase(count, lr0, decay_rate, interval):
    return lr0 / (1.0 + decay_rate * (count // interval))


def _step_decay(count, lr0, factor, every):
    return lr0 * _power(factor, count // every)


def _cosine(count, lr0, total, min_lr):
    return min_lr + (lr0 - min_lr) * (1 + math.cos(math.pi * min(count, total) / total)) / 2


def _warmup(count, base, steps):
    return (base(count) if callable(base) else base) * min(1.0, (count + 1) / steps)


class PeerKeyword(NamedTuple):
    """What a PyTorch or Keras peer's keyword is in a maker here (`_maker`'s ``peer_keywords``): the
    maker's ``keyword``, given the ``value`` written in the peer's names (the peer's own value where
    None: the same meaning), and a ``note`` where the peer's formula differs beyond it; or, where no keyword
    of the maker takes it (``keyword`` None: Keras's staircase=True is another maker), the ``note`` alone."""
    peer: str  # "PyTorch's StepLR"
    keyword: str | None  # the maker's keyword that takes it
    value: str | None = None  # the keyword's value from the peer's ("alpha * lr0": Keras's alpha is a fraction)
    note: str = ""

    def hint(self, name: str) -> str:
        """``name`` (the peer's keyword) said as the way here: "Keras's CosineDecay's alpha: give
        min_lr=alpha * lr0 here (…)", or "Keras's InverseTimeDecay's staircase: …" with the note."""
        if self.keyword is None:
            return f"{self.peer}'s {name}: {self.note}"
        note = f" ({self.note})" if self.note else ""
        return f"{self.peer}'s {name}: give {self.keyword}={self.value or name} here{note}"


# Keras's name of α₀, every decay's first argument
KERAS_LR0 = {"initial_learning_rate": PeerKeyword("Keras", "lr0")}


def _config_names(**keywords: str) -> dict[str, PeerKeyword]:
    """TrainConfig's (xdl train's --decay-*) names of a maker's settings → the maker's keyword, as a peer's
    (`PeerKeyword`): ``_config_names(decay_base="base")``."""
    return {name: PeerKeyword("TrainConfig", keyword) for name, keyword in keywords.items()}


# Keras's staircase=True: another maker here, for InverseTimeDecay and ExponentialDecay
INVERSE_TIME_STAIRCASE = "staircase(lr0, decay_rate=decay_rate, interval=decay_steps)"
EXPONENTIAL_STAIRCASE = "step_decay(lr0, factor=decay_rate, every=decay_steps)"
# Keras's CosineDecay's warm-up: warmup's, around a cosine shifted to start after it
KERAS_COSINE_WARMUP = PeerKeyword(
    "Keras's CosineDecay", None, note="a warm-up is warmup's here: warmup(lambda count: base(max(count - warmup_steps, "
    "0)), warmup_steps) with base = cosine(warmup_target, decay_steps, min_lr=alpha * warmup_target) decays after the "
    "ramp as Keras's (the ramp is xdl's, from warmup_target / warmup_steps, not initial_learning_rate: see warmup)")


def _maker(peer_positional: str | None = None, peer_keywords: dict[str, PeerKeyword] | None = None):
    """Mark a function that makes a schedule: given in a schedule's place it is refused by name
    (`xdl.optim.optimizer.check_not_maker`). ``peer_positional``: what PyTorch's or Keras's peer takes
    at the places past the maker's positional arguments, and which keyword that is here; a call with
    more arguments by position (the peer's order) is refused with it, before any work — Python's own
    "takes 1 positional argument but 2 were given" did not say which keyword was meant.
    ``peer_keywords``: the peers' keywords that the maker does not take → what each is here (`PeerKeyword`);
    a call with one is refused saying so, before any work (Python's "unexpected keyword argument 'gamma'"
    did not say it is factor here)."""
    def marked(fn):
        fn.makes_schedule = True
        if peer_positional is None and peer_keywords is None:
            return fn
        return _refusing_peer_arguments(fn, peer_positional, peer_keywords or {})
    return marked


def _refusing_peer_arguments(fn, peer_positional: str | None, peer_keywords: dict[str, PeerKeyword]):
    """``fn`` refusing more positional arguments than it takes, with ``peer_positional``, and a keyword of
    ``peer_keywords`` that it does not take, with what that is here (`_maker`)."""
    taken = inspect.signature(fn).parameters.values()
    positional = [p.name for p in taken if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    @functools.wraps(fn)  # (its name, docstring, signature and mark: check_not_maker names lr0 from it)
    def refusing(*args, **kwargs):
        if peer_positional is not None and len(args) > len(positional):
            raise peer_order_refused(fn.__name__, positional, len(args), peer_positional)
        # in the table's order, not the call's: Keras's staircase=True, which names another maker, and CosineDecay's
        # warm-up, which changes what lr0 and alpha are, before the keywords whose way is this maker's (none of them
        # is fn's own: the peers' names it does not take)
        for name in (name for name in peer_keywords if name in kwargs):
            raise TypeError(f"{fn.__name__}() got an unexpected keyword argument {name!r}; "
                            f"{peer_keywords[name].hint(name)}")
        return fn(*args, **kwargs)

    return refusing


@_maker("Keras's second, InverseTimeDecay(initial_learning_rate, decay_steps, decay_rate), is decay_steps: give "
        "decay_rate by its name, Keras's decay_rate / decay_steps (inverse_time(lr0, decay_rate=decay_rate / "
        "decay_steps); with staircase=True, staircase(lr0, decay_rate=decay_rate, interval=decay_steps))",
        {"staircase": PeerKeyword(
            "Keras's InverseTimeDecay", None, note=f"staircase=True is {INVERSE_TIME_STAIRCASE} here; staircase=False "
            "is inverse_time itself: leave it out (and give decay_rate=decay_rate / decay_steps)"),
         **KERAS_LR0, "decay_steps": PeerKeyword(
            "Keras's InverseTimeDecay", "decay_rate", "decay_rate / decay_steps",
            f"its count is divided by decay_steps; with staircase=True, {INVERSE_TIME_STAIRCASE}")})
def inverse_time(lr0: float, *, decay_rate: float):
    """α = α₀ / (1 + decay_rate·count)"""
    check_positive("lr0", lr0)
    check_non_negative("decay_rate", decay_rate)  # a negative one reaches 1/0 at count 1/|decay_rate|
    return Schedule("inverse_time", _inverse_time, lr0, decay_rate)


@_maker("Keras's second, ExponentialDecay(initial_learning_rate, decay_steps, decay_rate), is decay_steps: give "
        "base by its name, Keras's decay_rate ** (1 / decay_steps) (exponential(lr0, base=decay_rate ** (1 / "
        "decay_steps)); with staircase=True, step_decay(lr0, factor=decay_rate, every=decay_steps)); PyTorch's "
        "ExponentialLR(optimizer, gamma) is exponential(lr0, base=gamma)",
        {"staircase": PeerKeyword(
            "Keras's ExponentialDecay", None, note=f"staircase=True is {EXPONENTIAL_STAIRCASE} here; staircase=False "
            "is exponential itself: leave it out (and give base=decay_rate ** (1 / decay_steps))"),
         **KERAS_LR0, "gamma": PeerKeyword("PyTorch's ExponentialLR", "base"),
         **dict.fromkeys(("decay_steps", "decay_rate"), PeerKeyword(
             "Keras's ExponentialDecay", "base", "decay_rate ** (1 / decay_steps)",
             f"its rate is decay_rate per decay_steps counts; with staircase=True, {EXPONENTIAL_STAIRCASE}")),
         **_config_names(decay_base="base")})
def exponential(lr0: float, *, base: float = 0.95):
    """α = α₀·base^count"""
    check_positive("lr0", lr0)
    check_positive("base", base)  # (above 1 it grows, as PyTorch's ExponentialLR with γ > 1)
    return Schedule("exponential", _exponential, lr0, base)


@_maker(peer_keywords={**KERAS_LR0, **_config_names(decay_k="k")})
def inverse_sqrt(lr0: float, k: float = 1.0):
    """α = α₀·k/√count (count 0 is treated as 1)"""
    check_positive("lr0", lr0)
    check_positive("k", k)
    return Schedule("inverse_sqrt", _inverse_sqrt, lr0, k)


@_maker("Keras's second, InverseTimeDecay(initial_learning_rate, decay_steps, decay_rate, staircase=True), is "
        "decay_steps, interval here: give both by name, staircase(lr0, decay_rate=decay_rate, interval=decay_steps)",
        {"staircase": PeerKeyword(
            "Keras's InverseTimeDecay", None, note="staircase=True is this maker: leave it out; staircase=False is "
            "inverse_time(lr0, decay_rate=decay_rate / decay_steps) here"),
         **KERAS_LR0, "decay_steps": PeerKeyword("Keras's InverseTimeDecay(staircase=True)", "interval"),
         **_config_names(decay_every="interval")})
def staircase(lr0: float, *, decay_rate: float, interval: int):
    """α = α₀ / (1 + decay_rate·⌊count/interval⌋)"""
    check_positive("lr0", lr0)
    check_non_negative("decay_rate", decay_rate)
    check_count("interval", interval)
    return Schedule("staircase", _staircase, lr0, decay_rate, interval)


@_maker("PyTorch's second, StepLR(optimizer, step_size, gamma), is step_size, every here, and its gamma is "
        "factor: give both by name, step_decay(lr0, factor=gamma, every=step_size)",
        {"staircase": PeerKeyword(
            "Keras's ExponentialDecay", None, note="staircase=True is this maker: leave it out; staircase=False is "
            "exponential(lr0, base=decay_rate ** (1 / decay_steps)) here"),
         **KERAS_LR0, "step_size": PeerKeyword("PyTorch's StepLR", "every"),
         "gamma": PeerKeyword("PyTorch's StepLR", "factor"),
         "decay_steps": PeerKeyword("Keras's ExponentialDecay(staircase=True)", "every"),
         "decay_rate": PeerKeyword("Keras's ExponentialDecay(staircase=True)", "factor"),
         **_config_names(decay_factor="factor", decay_every="every")})
def step_decay(lr0: float, *, factor: float = 0.5, every: int = 10):
    """α = α₀·factor^⌊count/every⌋ (multiply by ``factor`` every ``every`` counts)"""
    check_positive("lr0", lr0)
    check_positive("factor", factor)
    check_count("every", every)
    return Schedule("step_decay", _step_decay, lr0, factor, every)


@_maker("Keras's third, CosineDecay(initial_learning_rate, decay_steps, alpha), is alpha, a fraction of lr0: give "
        "min_lr by its name, alpha·lr0 (cosine(lr0, decay_steps, min_lr=alpha * lr0)); PyTorch's "
        "CosineAnnealingLR(optimizer, T_max, eta_min) is cosine(lr0, T_max, min_lr=eta_min)",
        # Keras's warm-up first (`_refusing_peer_arguments` goes in this order): with it lr0 is warmup_target, and
        # min_lr alpha * warmup_target, not the ways the keywords after it say
        {**dict.fromkeys(("warmup_steps", "warmup_target"), KERAS_COSINE_WARMUP),
         **KERAS_LR0, "decay_steps": PeerKeyword("Keras's CosineDecay", "total"),
         "alpha": PeerKeyword("Keras's CosineDecay", "min_lr", "alpha * lr0", "Keras's alpha is a fraction of lr0"),
         "T_max": PeerKeyword("PyTorch's CosineAnnealingLR", "total",
                              note="held at min_lr after it, where PyTorch's rises again"),
         "eta_min": PeerKeyword("PyTorch's CosineAnnealingLR", "min_lr")})
def cosine(lr0: float, total: int, *, min_lr: float = 0.0):
    """α = min_lr + (α₀ − min_lr)·(1 + cos(π·min(count, total)/total))/2 (from α₀ down to min_lr,
    default 0, held after ``total`` counts)."""
    check_positive("lr0", lr0)
    check_count("total", total)
    check_non_negative("min_lr", min_lr)
    if min_lr > lr0:
        raise ValueError(f"min_lr must be at most lr0 ({lr0!r}), got {min_lr!r}")
    return Schedule("cosine", _cosine, lr0, total, min_lr)


@_maker(peer_keywords={"warmup_steps": PeerKeyword(
    "Keras's CosineDecay", "steps", note="its ramp and where the decay starts differ: see warmup"),
    "warmup_target": PeerKeyword("Keras's CosineDecay", "schedule",
                                 note="the rate warmed up to: a number, or a schedule whose rates the ramp scales"),
    "initial_learning_rate": PeerKeyword("Keras's CosineDecay", None, note=(
        "the rate its warm-up rises from; the ramp here has none of its own: it rises from schedule / steps at count "
        "0 (warmup(schedule, steps), see warmup)"))})
def warmup(schedule, steps: int):
    """Linear warm-up: α = base(count)·min(1, (count + 1)/steps), where base is a schedule or a
    constant: the first of ``steps`` counts uses base/steps, count steps − 1 and later the base.
    It multiplies the base's own rate at each count: ``warmup(cosine(α₀, T), w)`` peaks below α₀ (the
    cosine has decayed over the w counts); for a decay that starts after the warm-up, as Keras's
    ``CosineDecay(warmup_steps=w)``, shift the base: ``warmup(lambda count: base(max(count - w, 0)), w)``.
    The ramp is PyTorch's ``LinearLR(start_factor=1/w, total_iters=w - 1)``'s, not Keras's (which rises
    from ``initial_learning_rate`` at count 0 to ``warmup_target`` at count w)."""
    check_count("steps", steps)
    if not callable(schedule):
        check_positive("warmup: schedule (a schedule, or the constant rate to warm up to)", schedule)
    else:
        check_not_maker(schedule, "warmup: schedule")
        if not takes_arguments(schedule):  # (it would fail inside the warm-up, at the optimizer's first rate)
            raise TypeError(f"warmup: schedule must take one argument, the count (count → rate, as "
                            f"xdl.optim.schedules' do), got {schedule!r} (a Keras schedule(epoch, lr)?)")
    return Schedule("warmup", _warmup, schedule, steps)
