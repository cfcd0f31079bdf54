"""Learning-rate schedules: plain ``count -> lr`` callables (optax style).

Pass one as an optimizer's ``lr`` to decay per step (it is called with the step number
t = 1, 2, …), or call it yourself per epoch (``opt.lr = schedule(epoch)``, epoch = 1, 2, …, the
course's epoch_num) — the formula is the same, only the count differs.

>>> from xdl.optim import schedules
>>> s = schedules.inverse_time(0.2, decay_rate=1.0)
>>> [round(s(epoch), 4) for epoch in (1, 2, 3)]
[0.1, 0.0667, 0.05]
"""

from __future__ import annotations

import math

from xdl.optim.optimizer import check_positive


def _named(fn, text):
    fn.__name__ = fn.__qualname__ = text
    return fn


def inverse_time(lr0: float, decay_rate: float):
    """α = α₀ / (1 + decay_rate·count)"""
    check_positive("lr0", lr0)
    return _named(lambda count: lr0 / (1.0 + decay_rate * count), f"inverse_time({lr0}, {decay_rate})")


def exponential(lr0: float, base: float = 0.95):
    """α = α₀·base^count"""
    check_positive("lr0", lr0)
    return _named(lambda count: lr0 * base**count, f"exponential({lr0}, {base})")


def inverse_sqrt(lr0: float, k: float = 1.0):
    """α = α₀·k/√count (count ≥ 1; count 0 is treated as 1)"""
    check_positive("lr0", lr0)
    return _named(lambda count: lr0 * k / math.sqrt(max(count, 1)), f"inverse_sqrt({lr0}, {k})")


def staircase(lr0: float, decay_rate: float, interval: int):
    """α = α₀ / (1 + decay_rate·⌊count/interval⌋)"""
    check_positive("lr0", lr0)
    check_positive("interval", interval)
    return _named(lambda count: lr0 / (1.0 + decay_rate * (count // interval)),
                  f"staircase({lr0}, {decay_rate}, {interval})")


def step_decay(lr0: float, factor: float = 0.5, every: int = 10):
    """α = α₀·factor^⌊count/every⌋ (multiply by ``factor`` every ``every`` counts)"""
    check_positive("lr0", lr0)
    check_positive("every", every)
    return _named(lambda count: lr0 * factor ** (count // every), f"step_decay({lr0}, {factor}, {every})")


def cosine(lr0: float, total: int, min_lr: float = 0.0):
    """α = min_lr + (α₀ − min_lr)·(1 + cos(π·min(count, total)/total))/2"""
    check_positive("lr0", lr0)
    check_positive("total", total)
    return _named(lambda count: min_lr + (lr0 - min_lr) * (1 + math.cos(math.pi * min(count, total) / total)) / 2,
                  f"cosine({lr0}, {total}, {min_lr})")


def warmup(schedule, steps: int):
    """Linear warm-up: α = base(count)·min(1, count/steps), where base is a schedule or a constant."""
    check_positive("steps", steps)
    base = schedule if callable(schedule) else (lambda count: schedule)
    return _named(lambda count: base(count) * min(1.0, count / steps),
                  f"warmup({getattr(schedule, '__name__', schedule)}, {steps})")
