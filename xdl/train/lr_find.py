"""The learning-rate range test (Smith's; Lightning's ``Tuner.lr_find``, fastai's ``Learner.lr_find``):
`lr_find` trains a few mini-batches with the rate rising step by step from ``min_lr`` to ``max_lr``,
records the smoothed training loss at each rate, suggests the rate where it falls fastest, and puts
everything it trained back, bit for bit.

It is a `Callback` of a `Trainer` of its own (`RangeTest`: its ``on_step_end`` reads each step's cost,
sets the next step's rate and stops the run), made from the given trainer's model, loss, optimizer and
settings — the callback protocol's learning-rate finder that puts the weights back around ``fit``
(`xdl.train.callback`): the given trainer's run, its history and its callbacks are not touched, and
what the finder's fit changes of what the two share (`KeptState`) is put back however the fit ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from xdl.backend import host_rng
from xdl.caller import warn_caller
from xdl.data.validation import check_int, check_number
from xdl.ewa import EWA
from xdl.nn.module import Module, modes_of, restore_modes
from xdl.optim.optimizer import check_rate, rates_of_their_own
from xdl.train.callback import Callback
from xdl.train.fit_guards import FITTING, FitClaim, fitting_now, take_fit
from xdl.train.interrupt import Interrupted, SignalFlag
from xdl.train.trainer import Trainer

__all__ = ["LRFindResult", "lr_find"]

MODES = ("exponential", "linear")  # how the rate rises from step to step (`sweep_rates`)
SUGGESTION_POINTS = 2  # the finite smoothed losses a slope, and so a suggestion, needs at least
TOO_FEW_POINTS, NEVER_FELL = "too few points", "never fell"  # why a sweep has no suggestion (`steepest_descent`)
# the points a suggestion leaves out (Lightning's suggestion() defaults): the first ones, whose bias-corrected EWA
# averages only a few costs (at step t of β = 0.98, the variance of t of them: their slopes are the batches' noise,
# and the steepest of them was a suggestion at min_lr); and the last, a stop's rise
SKIP_FIRST, SKIP_LAST = 10, 1
MODEL_ATTRIBUTES = ("predicts", "feature_names_in_")  # what a fit sets on its model (`Trainer._fit`)
KEY_ATTRIBUTES = ("random_key", "_draws")  # a module's dropout key and its draws (`Module.set_random_key`)
# Lightning's lr_find and fastai's Learner.lr_find keywords → the way here (`lr_find`): Python's "unexpected keyword
# argument 'num_training'" named the keyword, not lr_find's
PEER_OPTIONS = {
    "num_training": "Lightning's num_training is steps here",
    "num_training_steps": "Lightning's num_training_steps (its LearningRateFinder's) is steps here",
    "early_stop_threshold": "Lightning's early_stop_threshold is stop_factor here (its None: stop_factor=math.inf)",
    "update_attr": "not offered: lr_find sets no rate; set trainer.optimizer.lr = found.suggestion yourself",
    "start_lr": "fastai's start_lr is min_lr here",
    "end_lr": "fastai's end_lr is max_lr here",
    "num_it": "fastai's num_it is steps here",
    "stop_div": "fastai's stop_div=False is stop_factor=math.inf here",
    "suggest_funcs": "not offered: the suggestion is the steepest fall against log10 lr (fastai's steep), "
                     "found.suggestion",
    "show_plot": "not an option: found.plot() draws the sweep (the plot extra)",
}


def sweep_rates(min_lr: float, max_lr: float, steps: int, mode: str) -> np.ndarray:
    """The rate of each of the ``steps`` steps, k = 0 … n − 1, from ``min_lr`` to ``max_lr`` both included:

        exponential: lr_k = min_lr · (max_lr / min_lr)^(k / (n − 1))
        linear:      lr_k = min_lr + (max_lr − min_lr) · k / (n − 1)
    """
    fractions = np.arange(steps, dtype=np.float64) / (steps - 1)
    if mode == "exponential":  # (in logs: the ratio of two rates near float64's ends would overflow)
        rates = np.exp(math.log(min_lr) + (math.log(max_lr) - math.log(min_lr)) * fractions)
    else:
        rates = min_lr + (max_lr - min_lr) * fractions
    rates[0], rates[-1] = min_lr, max_lr  # (exactly the ends given: exp∘log rounds them)
    return rates


def suggestion_window(values: np.ndarray) -> np.ndarray:
    """The points of a sweep a suggestion is read from: all but the first `SKIP_FIRST` and the last `SKIP_LAST`."""
    return values[SKIP_FIRST:len(values) - SKIP_LAST]


def steepest_descent(lrs: np.ndarray, losses: np.ndarray, mode: str) -> tuple[float | None, str]:
    """(The rate at which the smoothed loss falls fastest, or None; why None) — the most negative
    slope d loss / d x over the finite losses, x = log₁₀ lr for an exponential sweep (the axis its
    rates are spread evenly on, and plotted on: fastai's ``steep``; Lightning's ``suggestion()`` takes d loss / d lr
    on both, which on an exponential sweep leans to its smallest rates) and lr for a linear one; the slopes by central
    differences, one-sided at the ends (``np.gradient``), over the points of `suggestion_window`.
    None where fewer than `SUGGESTION_POINTS` of those are finite (why: `TOO_FEW_POINTS`), or where
    the loss never falls there (`NEVER_FELL`); why is "" with a suggestion. `why_none_said` words why."""
    lrs, losses = suggestion_window(lrs), suggestion_window(losses)
    finite = np.isfinite(losses)
    if finite.sum() < SUGGESTION_POINTS:
        return None, TOO_FEW_POINTS
    lrs, losses = lrs[finite], losses[finite]
    slopes = np.gradient(losses, np.log10(lrs) if mode == "exponential" else lrs)
    steepest = int(np.argmin(slopes))
    if not slopes[steepest] < 0:
        return None, NEVER_FELL
    return float(lrs[steepest]), ""


def why_none_said(why: str, losses: np.ndarray, name=lambda argument: argument) -> str:
    """Why a sweep of smoothed ``losses`` has no suggestion (``why``: `steepest_descent`'s), naming the
    settings to change as the caller knows them (``name(argument)``: lr_find's keyword, a command's flag).
    A loss that never fell is one of two sweeps, whose rates were all too large (it rose from the start) or
    all too small to learn (it stayed flat): both ways are said; the sweep's losses tell which."""
    if why == TOO_FEW_POINTS:
        finite = int(np.isfinite(suggestion_window(losses)).sum())
        losses_said = f"{finite} finite smoothed {'loss' if finite == 1 else 'losses'}"  # ("1 … losses" read as a slip)
        return (f"{losses_said} past the first {SKIP_FIRST} steps and before the last, and a slope "
                f"needs {SUGGESTION_POINTS}: give more {name('steps')} (or a larger {name('stop_factor')})")
    return (f"the smoothed loss never fell between {name('min_lr')} and {name('max_lr')}: where it rose from the "
            f"start, every rate was too large (try a lower {name('min_lr')}); where it stayed flat, too small to "
            f"learn (try a higher {name('max_lr')})")


@dataclass(eq=False)
class LRFindResult:
    """What `lr_find` found: ``lrs``, the rate of each step trained (float64); ``losses``, the training loss
    after each, smoothed (the bias-corrected EWA of the step costs, β = lr_find's ``smoothing``; the data loss
    without L2 or L1, as the history's costs); ``costs``, the step costs themselves; ``suggestion``, the rate
    at the steepest descent of ``losses`` (`steepest_descent`), or None — ``why_none`` says why, in lr_find's
    keywords (`lr_find` warns so; ``why_none_named(name)`` in a caller's names), and ``no_suggestion`` is why
    as data (`TOO_FEW_POINTS`, `NEVER_FELL`; "" with a suggestion); ``stopped``, why the sweep ended: "steps"
    (all trained), "stop_factor" (the smoothed loss rose above stop_factor × its lowest: recorded, the last
    point) or "diverged" (the smoothed loss, a step's cost or the state was no longer finite, or the trainer's
    divergence rule stopped the run: the steps before it recorded). ``mode``: the sweep's, lr_find's.
    ``plot(ax=None)`` draws it."""

    lrs: np.ndarray
    losses: np.ndarray
    costs: np.ndarray
    mode: str
    stopped: str
    suggestion: float | None = field(init=False)
    no_suggestion: str = field(init=False)

    def __post_init__(self) -> None:
        self.suggestion, self.no_suggestion = steepest_descent(self.lrs, self.losses, self.mode)

    @property
    def why_none(self) -> str:
        """Why there is no suggestion, in lr_find's keywords ("" with one)."""
        return self.why_none_named()

    @property
    def suggestion_step(self) -> int | None:
        """The index of the suggestion's step in ``lrs`` (its smoothed loss: ``losses[suggestion_step]``), or None."""
        return None if self.suggestion is None else int(np.flatnonzero(self.lrs == self.suggestion)[0])

    def why_none_named(self, name=lambda argument: argument) -> str:
        """Why there is no suggestion ("" with one), each setting named ``name(argument)`` (a command's flag)."""
        return why_none_said(self.no_suggestion, self.losses, name) if self.no_suggestion else ""

    def __repr__(self) -> str:
        suggested = f"{self.suggestion:.3g}" if self.suggestion is not None else f"None ({self.why_none})"
        return (f"LRFindResult({len(self.lrs)} steps from {self.lrs[0]:.3g} to {self.lrs[-1]:.3g}, "
                f"stopped: {self.stopped}; suggestion {suggested})" if len(self.lrs) else
                f"LRFindResult(no step recorded, stopped: {self.stopped})")

    def plot(self, ax=None):
        """The smoothed loss against the rate (a log axis for an exponential sweep), the step costs faint
        behind it, the suggestion marked: drawn on matplotlib's ``ax`` (returned), or with none on a figure
        of its own (returned: a notebook shows it; ``fig.savefig(path)`` writes it). Needs the ``plot``
        extra (matplotlib)."""
        from xdl.plots import subplots

        fig = None
        if ax is None:
            fig, ax = subplots(1, 1, figsize=(5.0, 3.8))
        ax.plot(self.lrs, self.costs, color="tab:blue", alpha=0.3, label="step cost")
        ax.plot(self.lrs, self.losses, color="tab:blue", label="smoothed loss")
        if self.suggestion is not None:
            ax.plot([self.suggestion], [self.losses[self.suggestion_step]], "o", color="tab:red",
                    label=f"suggestion {self.suggestion:.3g}")
        if self.mode == "exponential":
            ax.set_xscale("log")
        ax.set(xlabel="learning rate", ylabel="training loss", title="learning-rate range test")
        ax.legend()
        if fig is None:
            return ax
        fig.tight_layout()
        return fig


class RangeTest(Callback):
    """The range test as a callback: after step k (``on_step_end``) it records the step's cost and
    the smoothed loss (`EWA`, β = ``smoothing``, bias-corrected) and, unless it stops the run, sets
    every group's rate to ``rates[k + 1]`` (the first, ``rates[0]``, is set before the fit). It stops
    after the last rate, or once the smoothed loss is not finite or is above ``stop_factor`` × its
    lowest so far (from the second step on)."""

    def __init__(self, rates: np.ndarray, stop_factor: float, smoothing: float):
        self.rates, self.stop_factor = rates, stop_factor
        self.average = EWA(smoothing)
        self.costs, self.losses, self.stopped = [], [], "steps"
        self.lowest = math.inf  # the lowest smoothed loss so far (every one before the last finite: none stopped)

    def on_step_end(self, trainer, cost: float) -> None:
        self.costs.append(cost)
        loss = float(self.average.update(cost))
        self.losses.append(loss)
        self.lowest = min(self.lowest, loss)
        if not math.isfinite(loss):
            self.stopped, trainer.stop_training = "diverged", True
        elif len(self.losses) > 1 and loss > self.stop_factor * self.lowest:
            self.stopped, trainer.stop_training = "stop_factor", True
        elif len(self.costs) == len(self.rates):
            trainer.stop_training = True
        else:
            set_every_rate(trainer.optimizer, self.rates[len(self.costs)])

    def result(self, mode: str, stopped: str | None = None) -> LRFindResult:
        """The sweep so far as an `LRFindResult` (``stopped``: why, where the fit ended by an error)."""
        n = len(self.costs)
        return LRFindResult(self.rates[:n].copy(), np.array(self.losses, dtype=np.float64),
                            np.array(self.costs, dtype=np.float64), mode, stopped or self.stopped)


def set_every_rate(optimizer, rate: float) -> None:
    """Every group's rate set to ``rate``, as a number held on the device (a captured step reads it at its
    next replay), through the groups' settings — not ``optimizer.lr``, which sets ``defaults`` too."""
    for group in optimizer.param_groups:
        group["lr"] = float(rate)


class KeptState:
    """What the finder's fit changes in what it shares with the given trainer, kept to be put back bit for
    bit (`put_back`): the model's parameters and buffers (batch norm's running statistics), its modules' modes,
    dropout keys and the attributes a fit sets (`MODEL_ATTRIBUTES`), the count of its state loads (which
    `EarlyStopping` reads to tell a user's load from its own); the optimizer's state (moments, step count,
    each group's rate or per-step schedule and settings, first steps: `Optimizer.state_dict`; its
    ``defaults`` are not touched: `set_every_rate`); and the state of the host generator `xdl.seed` seeds
    (the finder's fit may draw its seed)."""

    def __init__(self, trainer: Trainer):
        model, optimizer = trainer.model, trainer.optimizer
        self.model, self.optimizer = model, optimizer
        self.weights, self.optimizer_state = model.state_dict(), optimizer.state_dict()
        self.modes = modes_of(model)
        self.attributes = {name: model.__dict__[name] for name in (*MODEL_ATTRIBUTES, "_state_loads")
                           if name in model.__dict__}
        self.keys = [(module, {name: module.__dict__[name] for name in KEY_ATTRIBUTES if name in module.__dict__})
                     for _, module in model.named_modules()]
        self.generator = host_rng()
        self.generator_state = self.generator.bit_generator.state

    def put_back(self) -> None:
        """Everything kept written back (in place: the optimizer's buffers and graphs keep their arrays)."""
        self.model.load_state_dict(self.weights)
        self.optimizer.load_state_dict(self.optimizer_state)
        restore_modes(self.modes)
        for name in (*MODEL_ATTRIBUTES, "_state_loads"):
            self.model.__dict__.pop(name, None)
        self.model.__dict__.update(self.attributes)
        for module, keys in self.keys:
            for name in KEY_ATTRIBUTES:
                module.__dict__.pop(name, None)
            module.__dict__.update(keys)
        self.generator.bit_generator.state = self.generator_state


def check_sweep(min_lr, max_lr, steps, mode, stop_factor, smoothing, dtype, name=lambda argument: argument,
                who: str = "lr_find: ") -> tuple:
    """The sweep's settings checked, each named (``who`` + ``name(argument)``: lr_find's keyword, a command's
    flag), for a model of ``dtype``: (min_lr, max_lr, steps, stop_factor, smoothing) as numbers."""
    min_lr = check_rate(check_number(min_lr, f"{who}{name('min_lr')}", "a number > 0", lambda v: v > 0),
                        f"{who}{name('min_lr')}", dtype, zero=False)
    max_lr = check_rate(check_number(max_lr, f"{who}{name('max_lr')}", "a number > 0", lambda v: v > 0),
                        f"{who}{name('max_lr')}", dtype, zero=False)
    if not min_lr < max_lr:
        raise ValueError(f"{who}{name('min_lr')} must be below {name('max_lr')} (the rate rises from one to the "
                         f"other), got {name('min_lr')}={min_lr!r} and {name('max_lr')}={max_lr!r}")
    steps = check_int(steps, f"{who}{name('steps')}", low=2,
                      expected=f"an integer ≥ 2 (the rates from {name('min_lr')} to {name('max_lr')})")
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"{who}{name('mode')} must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    stop_factor = check_number(stop_factor, f"{who}{name('stop_factor')}",
                               "a number > 1 (inf: stop only where the loss is not finite)", lambda v: v > 1)
    smoothing = check_number(smoothing, f"{who}{name('smoothing')}", "a number in [0, 1) (the EWA's β; 0: none)",
                             lambda v: 0 <= v < 1)
    return min_lr, max_lr, steps, stop_factor, smoothing


def _check_arguments(trainer, min_lr, max_lr, steps, mode, stop_factor, smoothing) -> tuple:
    """The arguments of `lr_find` checked, each named, before any work: (min_lr, max_lr, steps, stop_factor,
    smoothing) as numbers."""
    if not isinstance(trainer, Trainer):
        raise TypeError(f"lr_find: trainer must be an xdl.train.Trainer (the finder trains its model, loss and "
                        f"optimizer with its settings), got {type(trainer).__name__}{_way_to_a_trainer(trainer)}")
    if fitting_now(trainer):
        raise RuntimeError("lr_find: trainer is fitting now (lr_find called from its callback, or from another "
                           "thread): the range test would train its model under the running fit; call it between fits")
    checked = check_sweep(min_lr, max_lr, steps, mode, stop_factor, smoothing, trainer.model.dtype)
    rates = rates_of_their_own(trainer.optimizer)
    if rates is not None:
        raise ValueError(f"lr_find: trainer's optimizer has groups with rates of their own ({rates}); the range test "
                         "sets every group's rate alike, as an epoch schedule does: give its groups one rate")
    return checked


def _way_to_a_trainer(given) -> str:
    """How to make the `Trainer` lr_find takes of what was ``given`` in its place: a model, fit_many's loop."""
    from xdl.train.many import ManyTrainer  # (deferred: xdl.train.many imports the trainers' configs)

    if isinstance(given, Module):
        return ": make one of the model, lr_find(Trainer(model, loss, optimizer, batch_size=…), X, y)"
    if isinstance(given, ManyTrainer):
        return (": the range test trains one model; test each configuration on its own, "
                "lr_find(config.build_trainer(config.build_model(n_features, n_classes)), X, y)")
    return ""


def _warn_epoch_schedule(trainer: Trainer) -> None:
    """Where ``trainer`` has an epoch schedule, which sets the optimizer's rate at each epoch's start: the
    suggestion is trained at by the schedule made from it (``trainer.optimizer.lr = …`` is overwritten)."""
    if trainer.schedule is not None:
        warn_caller("lr_find: trainer has an epoch schedule, which sets the optimizer's rate at each epoch's start "
                    "(trainer.optimizer.lr = found.suggestion is overwritten at the next one): to train at the "
                    "suggestion, make the schedule from it: trainer.schedule = "
                    "xdl.optim.schedules.inverse_time(found.suggestion, decay_rate=…), say")


def _sweep(trainer: Trainer, finder: Trainer, test: RangeTest, X, y, mode: str) -> LRFindResult:
    """``finder``'s fit of ``X`` and ``y`` with ``test``, its range test, from ``test.rates[0]`` on, and what
    it shares with ``trainer`` put back however it ends (`KeptState`): the sweep's `LRFindResult`."""
    kept = KeptState(trainer)
    try:
        set_every_rate(trainer.optimizer, test.rates[0])
        finder.fit(X, y)
        return test.result(mode)
    except FloatingPointError:
        if not test.costs:  # (the starting weights', said by the trainer's error: no rate tried yet)
            raise
        return test.result(mode, "diverged")
    except Interrupted as stop:
        stop.args = (_interrupted_sweep(stop, test),)  # (the finder's epoch and Checkpoint are not the user's)
        raise
    finally:
        _put_back_whole(kept)


def _interrupted_sweep(stop: Interrupted, test: RangeTest) -> str:
    """What an `Interrupted` of the sweep says: where the sweep was, in its steps and rates, and that nothing
    of it is kept (the message of the finder's own fit named its epoch and its want of a Checkpoint)."""
    done = len(test.costs)
    last = f" (last rate {test.rates[done - 1]:.3g})" if done else ""
    return (f"lr_find interrupted by {stop.signal_name} after {done} of its {len(test.rates)} steps{last}; "
            f"the trainer's state is put back as it was before the sweep, and nothing of the sweep is kept")


def _put_back_whole(kept: KeptState) -> None:
    """``kept.put_back()`` with Ctrl-C and SIGTERM held until it is done (`SignalFlag`), then raised as
    KeyboardInterrupt: one in its middle — the sweep's fit had put the handlers back — left the state part
    the finder's (its weights written back, the optimizer's state, the generator or the dropout keys not)."""
    with SignalFlag() as signals:
        kept.put_back()
    if signals.received:
        raise KeyboardInterrupt(f"lr_find: {signals.received} as the sweep's state was put back (it was, whole)")


def lr_find(trainer: Trainer, X, y, *, min_lr: float = 1e-7, max_lr: float = 1.0, steps: int = 100,
            mode: str = "exponential", stop_factor: float = 4.0, smoothing: float = 0.98,
            **peer_options) -> LRFindResult:
    """The learning-rate range test on ``trainer``'s model, loss and optimizer: train ``steps`` mini-batches
    of ``X`` and ``y`` (as `Trainer.fit` takes them; in the trainer's batches, shuffles, L2, L1, augmentation
    and capture) with every group's rate rising from ``min_lr`` to ``max_lr`` (both > 0 and within the model
    dtype's rates, min_lr below max_lr) — evenly on a log scale with ``mode`` "exponential", on a linear one
    with "linear" (`sweep_rates`) —, record the training loss after each step smoothed by an EWA of β =
    ``smoothing`` (bias-corrected; 0: the step costs), and stop early once it is not finite or above
    ``stop_factor`` × its lowest (> 1; inf: only where not finite). ``steps`` ≥ 2. Returns an
    `LRFindResult`: ``lrs``, ``losses``, ``suggestion`` (the rate of the steepest descent; None where it
    cannot be told, warned) and ``plot()``.

    The trainer's run is not touched (its history, position, callbacks: the finder's steps are a
    `Trainer` of their own, with only its `RangeTest`), and what it shares with them is put back bit for bit
    however the sweep ends — at its steps, at its stop, diverged, by an error or by Ctrl-C (`Interrupted`
    goes on; one as it puts back waits for its end): the model's weights, batch-norm statistics, modes and
    dropout keys, the optimizer's state, step count, rates, per-step schedules and settings, and `xdl.seed`'s
    generator (`KeptState`); the trainer is held as a fit holds it, and a fit of it meanwhile (another
    thread's) is refused. A run that diverges (a step's cost not finite, or the trainer's divergence rule) ends
    the sweep at the steps before it; one diverging at its first step — the model's starting weights, no rate's
    doing — raises. Refused, naming the argument, before any work: a bad value, an optimizer whose groups have
    rates of their own (the test sets them alike), a trainer fitting now. ``peer_options``: none is taken;
    Lightning's and fastai's keywords (``num_training=``, ``start_lr=``, …) are refused saying the way here
    (`PEER_OPTIONS`)."""
    for name in peer_options:  # (before any work, as Python's own error was)
        way = PEER_OPTIONS.get(name, "not an option of lr_find (it takes trainer, X, y, min_lr, max_lr, steps, "
                                     "mode, stop_factor, smoothing)")
        raise TypeError(f"lr_find() got an unexpected keyword argument {name!r}; {way}")
    min_lr, max_lr, steps, stop_factor, smoothing = _check_arguments(trainer, min_lr, max_lr, steps, mode,
                                                                     stop_factor, smoothing)
    rates = sweep_rates(min_lr, max_lr, steps, mode)
    test = RangeTest(rates, stop_factor, smoothing)
    finder = Trainer(trainer.model, trainer.loss, trainer.optimizer, l2=trainer.l2, l1=trainer.l1,
                     batch_size=trainer.batch_size, epochs=steps, callbacks=[test], augment=trainer.augment,
                     seed=trainer.seed, eval_train=False, progress=False, capture=trainer.capture)
    # the given trainer claimed as a fit claims it (`take_fit`): a fit of it from another thread meanwhile trained
    # the model beside the sweep, and its epochs were then put back under its history's records (its work lost)
    claim = FitClaim(trainer)
    try:
        take_fit(claim, "trainer", "Trainer")
        result = _sweep(trainer, finder, test, X, y, mode)
    finally:
        FITTING.discard(claim)  # (first, one call: no interrupt between the sweep's end and it, `FitClaim`)
    if result.suggestion is None:
        warn_caller(f"lr_find: no suggestion: {result.why_none}")
    else:
        _warn_epoch_schedule(trainer)
    return result
