"""The checks of a `Trainer`'s learning-rate schedules, before a run or when one is set: an epoch
schedule's kind (`check_schedule_kind`: epochs completed → rate, not a maker or Keras's
``schedule(epoch, lr)``), whether it fits the optimizer (`check_schedule_fits`: not beside a
per-step lr, nor over groups with rates of their own), and a schedule whose last epochs or steps
are at rate 0 (`warn_idle_end`).
"""

from __future__ import annotations

from xdl.caller import warn_caller
from xdl.optim import Optimizer
from xdl.optim.optimizer import check_not_maker, rates_of_their_own, takes_arguments


def warn_idle_end(rates: list[float], done: int, unit: str, what: str) -> None:
    """A warning where the run's last ``unit``s (its epochs or steps, ``rates`` their rates, ``done``
    of them trained) are at rate 0, from one on, and this fit would run some: they train nothing (a
    cosine schedule that ends before the run does, a per-step one counted in epochs), as `xdl train`
    and MLPClassifier refuse a cosine schedule past its end. A 0 before other rates (a warm-up's
    first) is a rate like any."""
    first = len(rates)  # the first of the trailing zeros
    while first and rates[first - 1] == 0:
        first -= 1
    if first == len(rates) or done >= len(rates):
        return
    idle = len(rates) - max(first, done)
    warn_caller(f"{what} is 0 from {unit} {max(first, done) + 1} to the run's last, {len(rates)}: "
                f"{f'those {idle} {unit}s train' if idle > 1 else f'that {unit} trains'} nothing (does it span fewer "
                f"than the run, or count {unit}s as {'epochs' if unit == 'step' else 'steps'}?)")


def check_schedule_kind(schedule) -> None:
    """``schedule`` is None or a callable of one argument, epochs completed → rate (a function that
    makes one, `xdl.optim.schedules.exponential`, or a Keras ``schedule(epoch, lr)`` is named)."""
    if schedule is None:
        return
    if not callable(schedule):
        raise TypeError(f"schedule must be a callable epoch → learning rate, got {schedule!r}")
    check_not_maker(schedule, "schedule")
    if not takes_arguments(schedule):
        raise TypeError(f"schedule must take one argument, the epochs completed (epoch → learning rate, as "
                        f"xdl.optim.schedules' do), got {schedule!r} (a Keras schedule(epoch, lr)?)")


def check_schedule_fits(schedule, optimizer) -> None:
    """An epoch ``schedule`` sets every group's rate (``opt.lr = schedule(epoch)``): refused beside a
    per-step schedule, which it would replace for good, and over groups with rates of their own."""
    if schedule is None or not isinstance(optimizer, Optimizer):
        return
    if any(callable(g.settings["lr"]) for g in optimizer.groups):
        raise ValueError("schedule: the optimizer's lr is already a per-step schedule; the epoch schedule would "
                         "replace it for good. Give one of them: a per-step lr, or Trainer(schedule=...)")
    rates = rates_of_their_own(optimizer)
    if rates is not None:  # the schedule would set them all alike
        raise ValueError(f"schedule: it sets every group's rate to schedule(epoch), and the optimizer's groups have "
                         f"rates of their own ({rates}); give each group a per-step schedule as its lr "
                         "(xdl.optim.schedules), or one rate to all")
