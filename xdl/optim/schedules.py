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
"""

from __future__ import annotations

import math

from xdl.optim.optimizer import check_non_negative, check_positive, takes_arguments


def _power(base: float, exponent) -> float:
    """base^exponent as a float: inf beyond floats (a growing schedule's far end, where Python's
    float power raises; the optimizer then names the rate as out of range)."""
    try:
        return float(base) ** exponent
    except OverflowError:
        return math.inf


def _named(fn, text):
    fn.__name__ = fn.__qualname__ = text
    return fn


def inverse_time(lr0: float, decay_rate: float):
    """α = α₀ / (1 + decay_rate·count)"""
    check_positive("lr0", lr0)
    check_non_negative("decay_rate", decay_rate)  # a negative one reaches 1/0 at count 1/|decay_rate|
    return _named(lambda count: lr0 / (1.0 + decay_rate * count), f"inverse_time({lr0}, {decay_rate})")


def exponential(lr0: float, base: float = 0.95):
    """α = α₀·base^count"""
    check_positive("lr0", lr0)
    check_positive("base", base)  # (above 1 it grows, as PyTorch's ExponentialLR with γ > 1)
    return _named(lambda count: lr0 * _power(base, count), f"exponential({lr0}, {base})")


def inverse_sqrt(lr0: float, k: float = 1.0):
    """α = α₀·k/√count (count 0 is treated as 1)"""
    check_positive("lr0", lr0)
    check_positive("k", k)
    return _named(lambda count: lr0 * k / math.sqrt(max(count, 1)), f"inverse_sqrt({lr0}, {k})")


def staircase(lr0: float, decay_rate: float, interval: int):
    """α = α₀ / (1 + decay_rate·⌊count/interval⌋)"""
    check_positive("lr0", lr0)
    check_non_negative("decay_rate", decay_rate)
    check_positive("interval", interval)
    return _named(lambda count: lr0 / (1.0 + decay_rate * (count // interval)),
                  f"staircase({lr0}, {decay_rate}, {interval})")


def step_decay(lr0: float, factor: float = 0.5, every: int = 10):
    """α = α₀·factor^⌊count/every⌋ (multiply by ``factor`` every ``every`` counts)"""
    check_positive("lr0", lr0)
    check_positive("factor", factor)
    check_positive("every", every)
    return _named(lambda count: lr0 * _power(factor, count // every), f"step_decay({lr0}, {factor}, {every})")


def cosine(lr0: float, total: int, min_lr: float = 0.0):
    """α = min_lr + (α₀ − min_lr)·(1 + cos(π·min(count, total)/total))/2 (from α₀ down to min_lr,
    default 0, held after ``total`` counts)"""
    check_positive("lr0", lr0)
    check_positive("total", total)
    check_non_negative("min_lr", min_lr)
    if min_lr > lr0:
        raise ValueError(f"min_lr must be at most lr0 ({lr0!r}), got {min_lr!r}")
    return _named(lambda count: min_lr + (lr0 - min_lr) * (1 + math.cos(math.pi * min(count, total) / total)) / 2,
                  f"cosine({lr0}, {total}, {min_lr})")


def warmup(schedule, steps: int):
    """Linear warm-up: α = base(count)·min(1, (count + 1)/steps), where base is a schedule or a
    constant: the first of ``steps`` counts uses base/steps, count steps − 1 and later the base.
    It multiplies the base's own rate at each count: ``warmup(cosine(α₀, T), w)`` peaks below α₀ (the
    cosine has decayed over the w counts); for a decay that starts after the warm-up, as Keras's
    ``CosineDecay(warmup_steps=w)``, shift the base: ``warmup(lambda count: base(max(count - w, 0)), w)``."""
    check_positive("steps", steps)
    if not callable(schedule):
        check_positive("warmup: schedule (a schedule, or the constant rate to warm up to)", schedule)
    elif not takes_arguments(schedule):  # (it would fail inside the warm-up, at the optimizer's first rate)
        raise TypeError(f"warmup: schedule must take one argument, the count (count → rate, as xdl.optim.schedules' "
                        f"do), got {schedule!r} (a Keras schedule(epoch, lr)?)")
    base = schedule if callable(schedule) else (lambda count: schedule)
    return _named(lambda count: base(count) * min(1.0, (count + 1) / steps),
                  f"warmup({getattr(schedule, '__name__', schedule)}, {steps})")
