"""`Optimizer`: parameter groups over flat buffers, one fused update per group and dtype.

Each group's parameters are (or are placed as) views into one flat buffer per dtype
(`xdl.flat.flat_views`); the optimizer's state (m, v, …) is flat buffers of the same size. So
``step()`` is one call of ``backend.ops.<rule>_update`` per group — one kernel launch on the GPU —
and ``zero_grad()`` one fill.

A learning rate is a float or a schedule ``count -> lr`` (`xdl.optim.schedules`); a schedule given
to the optimizer is called with the number of steps taken before the one it sets (0 for the
first). Setting ``opt.lr`` between epochs changes every group's rate.

The values an update reads live in arrays of the parameters' backend: each group's hyperparameters
(`ParamGroup.held`, rewritten only when a value changes) and the step count (``steps_done``,
advanced by the step itself). So a step captured in a CUDA graph (`xdl.cuda_graph`) reads the
rate of the moment it is replayed and counts Adam's t on, as an eager step does.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import MutableMapping
from dataclasses import dataclass, field

import numpy as np

from xdl.backend import host_copy
from xdl.data.validation import check_bool, check_int, check_list, check_number, check_tensors, counted
from xdl.flat import FlatBuffer, flat_views, is_view_of, views_of, writable
from xdl.graph import checked_state_changed, host_effect, replay_check, require_not_capturing
from xdl.optim.clipping import clip_buffers
from xdl.tensor import (Tensor, enable_grad, hinting_named_elsewhere, missing_attribute, named_elsewhere_hint,
                        note_written, role_of)

# The most steps a count may say: the device's copy (``steps_done``) is one int64. A larger t passed its
# check and then failed to fill it (OverflowError) — load_state_dict had by then written the state
# buffers and settings, and ``opt.t`` said the new count while the device kept the old one.
MAX_STEPS = int(np.iinfo(np.int64).max)


def real_or_nan(value) -> float:
    """A real number (Python or NumPy, not a bool) as a float (an int beyond floats: inf); NaN for
    anything else, which every range check below then refuses."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.inf


def check_positive(name, value):
    if not 0 < real_or_nan(value) < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def check_count(name, value):
    """A schedule's count of steps or epochs (an interval, a period, a warm-up): a finite number ≥ 1.
    Floats stay (Keras's decay_steps is one), but below 1 a count is none: every=1e-320 gave lr 0
    from count 1, warmup(…, 0.5) no warm-up at all, without a word."""
    if not 1 <= real_or_nan(value) < math.inf:
        raise ValueError(f"{name} must be a finite number ≥ 1 (a count of steps or epochs), got {value!r}")


def check_beta(name, value):
    if not 0.0 <= real_or_nan(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def check_non_negative(name, value):
    if not 0 <= real_or_nan(value) < math.inf:
        raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")


def rate_range(dtype=np.float32) -> tuple[float, float]:
    """The positive learning rates an update in ``dtype`` can hold: a smaller one is 0 there (which
    a rate meant to be 0 says as 0), a larger one inf."""
    info = np.finfo(dtype)
    return float(info.smallest_subnormal), float(info.max)


def check_max_grad_norm(value, what: str = "max_grad_norm") -> float | None:
    """An optimizer's ``max_grad_norm``: None (no clipping) or a finite number > 0, as a float."""
    if value is None:
        return None
    return check_number(value, what, "None (no clipping) or a finite number > 0", lambda v: 0 < v < math.inf)


def check_rate(value, what: str, dtype=np.float32, zero: bool = True, decayed: bool = False) -> float:
    """A learning rate a step can use: 0 where ``zero`` allows it (no step: where a cosine schedule
    ends, as PyTorch allows) or a real number within `rate_range` of ``dtype`` (the update holds it
    in the parameters' dtype: a smaller positive one would be 0 by accident). A schedule's rate
    past its first count (``decayed``) that fell below that range is 0, as the update holds it: an
    exponential decay's far epochs run, as PyTorch runs them."""
    low, high = rate_range(dtype)
    rate = real_or_nan(value)
    if decayed and zero and 0 < rate < low:
        return 0.0
    if not ((zero and rate == 0) or low <= rate <= high):  # NaN fails too
        raise ValueError(f"{what} is {value!r}: a learning rate must be {'0 or ' if zero else ''}a number in "
                         f"{np.dtype(dtype)}'s positive range [{low:.3g}, {high:.3g}]")
    return rate


def check_eps_in(settings: dict, dtypes) -> None:
    """A setting ``eps`` (Adam's, RMSprop's ε) stays > 0 in the ``dtypes`` the update holds it in
    (the parameters'): one that rounds to 0 there makes √v + ε = 0 and 0/0 = NaN wherever a gradient is 0."""
    eps = settings.get("eps")
    for dtype in dtypes if is_numeric_setting(eps) else ():
        if np.dtype(dtype).type(eps) == 0:
            raise ValueError(f"eps is {eps!r}, 0 in {np.dtype(dtype)} (the parameters' dtype): it must be at least "
                             f"{float(np.finfo(dtype).smallest_subnormal):.3g} there")


def check_weight_decay_in(settings: dict, dtypes) -> None:
    """A setting ``weight_decay`` stays finite in the ``dtypes`` the update holds it in (the
    parameters'): a larger one is inf there, and wd·p made the weights inf or NaN at the first step
    (0·inf for a bias at 0), where `Trainer`'s ``l2`` and `TrainConfig`'s refuse such a value by name."""
    wd = settings.get("weight_decay")
    for dtype in dtypes if is_numeric_setting(wd) else ():
        high = float(np.finfo(dtype).max)
        if real_or_nan(wd) > high:
            raise ValueError(f"weight_decay is {wd!r}, inf in {np.dtype(dtype)} (the parameters' dtype, which the "
                             f"update computes wd·p in): it must be at most {high:.3g} there")


def rates_of_their_own(optimizer) -> str | None:
    """The groups' rates in words, in group order ("0.001, 0.1"; a per-step schedule by its name),
    where the groups have more than one — what one rate for all (an epoch schedule, a control
    file's ``lr``) would replace, silently; None where they share one."""
    rates = list({id(r) if callable(r) else r: r for r in (g.settings["lr"] for g in optimizer.groups)}.values())
    if len(rates) < 2:
        return None
    return ", ".join(getattr(r, "__name__", repr(r)) if callable(r) else f"{r:g}" for r in rates)


def check_lr(lr):
    """A rate a group can hold: a number ≥ 0 (0: a frozen group, or a schedule's end; PyTorch's rule)
    or a schedule ``count -> lr`` of one argument."""
    if not callable(lr):
        check_non_negative("lr", lr)
        return
    check_not_maker(lr, "lr")
    if not takes_arguments(lr):
        raise TypeError(f"lr must be a number or a schedule of one argument, the steps taken (count → learning rate, "
                        f"as xdl.optim.schedules' are), got {lr!r} (a Keras schedule(epoch, lr)?)")


def check_not_maker(fn, what: str) -> None:
    """Refuse a function of `xdl.optim.schedules` that makes a schedule, given where a schedule is
    taken (``lr=schedules.exponential``, not ``schedules.exponential(0.1)``): called with the count
    as its α₀, it said "lr0 must be a finite number > 0, got 0", or the words of a Keras schedule."""
    if getattr(fn, "makes_schedule", False):
        first = next(iter(inspect.signature(fn).parameters))  # (lr0; warmup's is the schedule it warms up)
        raise TypeError(f"{what} is xdl.optim.schedules.{fn.__name__}, which makes a schedule: give the schedule it "
                        f"makes, e.g. schedules.{fn.__name__}({first}, ...)")


def takes_arguments(fn, count: int = 1) -> bool:
    """Whether ``fn`` can be called with ``count`` positional arguments (True when that cannot be told)."""
    try:
        inspect.signature(fn).bind(*range(count))
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin)
        pass
    return True


def rate_at(lr, count: int, what: str | None = None) -> float:
    """The rate ``lr`` gives the step after ``count`` steps: the number itself, or a schedule's
    value at ``count`` — a number, or a 0-d array of one (``np.where(e < 5, 0.1, 0.01)``); beyond
    floats: inf, which `check_rate` names. A schedule that returns no number is named here, before
    the rate is held anywhere; ``what``: the rate's name, to say with any error the schedule raises
    (a list of rates run out: a bare IndexError from somewhere in a run's checks)."""
    if not callable(lr):
        return float(lr)
    try:
        value = lr(count)
    except OverflowError:  # a growing schedule's far end in Python's float or int arithmetic
        return math.inf
    except Exception as e:  # (the user's function: any error it raises)
        if what is None:
            raise
        raise ValueError(f"{what}: the schedule raised {type(e).__name__}: {e}") from e
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if not is_numeric_setting(value):
        raise TypeError(f"the lr schedule {getattr(lr, '__name__', lr)!r} returned {value!r} at count {count}; "
                        "a schedule returns a number")
    return real_or_nan(value)


class StateBuffers(dict):
    """One flat buffer's optimizer state, name → array: one per ``state_names`` of the rule
    (``owner``), made as zeros with the group, written in place by its ``update``. A name the update
    adds (PyTorch's lazy ``state["exp_avg"] = zeros_like(p)``) is refused there, naming it: the
    state kept only what the group was made with, so a checkpoint's resume restored none of it and
    the run went on from zeros, without a word."""

    def __init__(self, arrays, owner: str):
        super().__init__(arrays)
        self.owner = owner

    def _refuse_new(self, name) -> None:
        if name not in self:
            raise TypeError(f"{self.owner}.update: state {name!r} is not declared; list it in {self.owner}.state_names "
                            f"(now {tuple(self)!r}): the optimizer makes each as zeros of the group's flat buffer, "
                            "saves it in checkpoints and restores it on resume — one made in update would restart "
                            "from zeros")

    def __setitem__(self, name, value) -> None:
        self._refuse_new(name)
        super().__setitem__(name, value)

    def setdefault(self, name, default=None):
        self._refuse_new(name)
        return super().setdefault(name, default)

    def update(self, other=(), /, **more) -> None:
        other = dict(other)  # (pairs from an iterator are read once: checked, then added — not checked, then lost)
        for name in {**other, **more}:
            self._refuse_new(name)
        super().update(other, **more)

    def __ior__(self, other):  # (dict's own ``state |= {...}`` adds without __setitem__)
        self.update(other)
        return self

    def __reduce__(self):  # (a copy builds it whole, not by the refusing __setitem__)
        return type(self), (dict(self), self.owner)


@dataclass
class ParamGroup:
    params: list
    settings: dict  # lr (float or schedule) and the rule's hyperparameters
    flats: list  # one FlatBuffer per dtype
    state: list = field(default_factory=list)  # per flat: {state name: flat array}
    held_names: tuple = ()  # the settings an update reads as numbers: lr, then the rule's in name order
    held: object = None  # their values as a float64 array of the backend
    held_values: tuple = ()  # what `held` holds now (compared on the host, rewritten on a change)
    hyperparameters: dict = field(default_factory=dict)  # settings with each number as its view of `held`
    placed: list = field(default_factory=list)  # each parameter's place (`p._flat`) when the group was made
    views: list = field(default_factory=list)  # each parameter's (data, grad) views of it, as last checked
    first_step: int = 0  # the optimizer's steps when the group was added: its own count (Adam's t) starts there


class StepCount:
    """The steps taken, on the host (``t``) and in device memory (``steps_done``: a one-element
    int64 array the updates read, advanced by the step itself, so a replayed graph counts on)."""

    _t = 0
    steps_done = None

    @property
    def t(self) -> int:
        """Steps taken (on the host; the updates read the device's copy, ``steps_done``)."""
        return self._t

    @t.setter
    def t(self, value: int) -> None:
        self._t = check_int(value, "t (the steps taken)", low=0, high=MAX_STEPS,
                            expected=f"an integer ≥ 0 and at most {MAX_STEPS} (an int64, as the device holds it)")
        for g in getattr(self, "groups", ()):  # (a count set back below a group's start starts it there)
            if g.first_step > self._t:
                g.first_step = self._t
                self.version += 1  # (a host value of the step's update: a captured step is captured again)
        if self.steps_done is not None:
            self.steps_done.fill(self._t)
        checked_state_changed()  # a count at `MAX_STEPS`: a captured step's replay is refused, as a step is

    def _check_count_room(self) -> None:
        """Refuse a step once ``t`` is `MAX_STEPS`: the device's int64 count would wrap to −2⁶³ (Adam's
        t with it), and the host's say 2⁶³, a count no checkpoint of it could load."""
        if self._t >= MAX_STEPS:
            raise OverflowError(f"{type(self).__name__}.step: t (the steps taken) is {self._t}, the most the "
                                f"device's int64 count holds: another step would wrap it to {-MAX_STEPS - 1}; set t "
                                "lower to go on")

    def _count_on(self) -> None:
        """End of a step: the device's count now, the host's after the step (after each replay of
        a captured one: `xdl.graph.host_effect`)."""
        self.steps_done += 1
        host_effect(self._count_step)

    def _count_step(self) -> None:
        self._t += 1
        if self._t >= MAX_STEPS:  # the replay check's count room: read again before the next replay
            checked_state_changed()


# settings every PyTorch optimizer takes → what they are here (each rule's `pytorch_names` adds its own)
PYTORCH_COMMON_NAMES = {
    "foreach": "not needed here: each parameter group's update is one fused pass over its flat buffer already",
    "fused": "not needed here: each parameter group's update is one fused pass over its flat buffer already",
    "capturable": "not needed here: a captured step (xdl.cuda_graph) reads the step count and rate on the device",
    "maximize": "not offered here: minimize the negated objective",
    "differentiable": "not offered here"}

# PyTorch's attributes of an optimizer that are something else here (`Optimizer.__getattr__`)
PYTORCH_ATTRIBUTES = {"state": "state_dict()['state'] (NumPy copies of each group's state buffers; "
                               "state_dict()['layout'] says where each parameter lies in them)",
                      "get_last_lr": "current_lr() (the rate in force, a number; lr may hold a schedule)"}
PYTORCH_READ = frozenset({"state"})  # those of them PyTorch reads rather than calls

# Keras's names of settings every rule here has or lacks → what they are here (each rule's `keras_names` adds its
# own; Keras's momentum and nesterov are PyTorch's, said by `pytorch_names`)
KERAS_COMMON_NAMES = {
    "learning_rate": "lr here",
    # Keras 2's decay: lr / (1 + decay·iterations), iterations the steps done before this one
    "decay": "a schedule here: lr=xdl.optim.schedules.inverse_time(lr, decay_rate=decay), lr / (1 + decay·steps done)",
    # (Keras's clipnorm clips each gradient by its own norm; its global_clipnorm all of them by their one norm)
    "clipnorm": "not offered here (each gradient clipped by its own norm); max_grad_norm clips them all by their one "
                "norm (Keras's global_clipnorm), as xdl.optim.clip_grad_norm(model, max_norm) between backward and "
                "step",
    "clipvalue": "not offered here (no clipping by value)",
    "global_clipnorm": "max_grad_norm here (every rule's: the gradients clipped to that global 2-norm at the start "
                       "of each step, as xdl.optim.clip_grad_norm(model, max_norm) clips them)"}


class Optimizer(StepCount):
    """Base class. Subclasses set ``state_names``, validate their hyperparameters in
    ``check_settings`` and apply their rule in ``update``."""

    state_names: tuple[str, ...] = ()
    # whether ``update`` takes a (K, n) region of stacked models with (K,)-valued settings (`StackedOptimizer`),
    # declared by the class that defines it: a rule written for one model reads h["lr"][0], model 0's rate, for all K
    stacks: bool = False
    pytorch_names: dict[str, str] = PYTORCH_COMMON_NAMES  # a PyTorch setting → what it is here (for messages)
    keras_names: dict[str, str] = KERAS_COMMON_NAMES  # a Keras setting → what it is here (for messages)
    pytorch_positional: str | None = None  # what PyTorch's positional argument past this rule's last one is (messages)
    version = 0  # counts changes a captured step cannot read from the device (a flag, a schedule): `_set`
    _max_grad_norm = None  # (an optimizer pickled by an xdl before max_grad_norm clipped nothing)

    def __init__(self, params=None, check_finite: bool = False, *, max_grad_norm=None, **defaults):
        """What every rule takes (its own settings are in its class's docstring):

        ``params``: a model (its parameters that train; a frozen one is left out), a list of tensors,
        or a list of group dicts ``{"params": [...], "lr": ..., ...}`` whose settings replace the
        constructor's for that group (`param_groups` makes the usual two); omitted, the optimizer holds
        none until `add_param_group` or `minimize` gives it some.
        ``lr``: α, a number ≥ 0 (0: no step) within the positive range of the parameters' dtype
        (float32's: [1.4e-45, 3.4e38]; a rate outside it would be 0 or inf there), or a schedule
        ``count -> lr`` of the steps taken (`xdl.optim.schedules`), evaluated before each step.
        ``weight_decay`` (every rule's; its docstring says where it enters the step): wd, a number ≥ 0
        and at most the largest of the parameters' dtype, on every parameter of the group
        (`param_groups` exempts biases and batch norm's γ, β).
        ``check_finite``: True checks every gradient for NaN or Inf before each update and raises
        FloatingPointError, leaving the weights unchanged (one read of the gradients and one
        device→host sync per group per step; a `Trainer` then runs its steps eagerly); False, the
        default, does not.
        ``max_grad_norm`` (Keras's ``global_clipnorm``): None, the default, clips nothing; a finite number > 0
        clips the gradients at the start of each step, on the device, to that global 2-norm over every group
        together, as `xdl.optim.clip_grad_norm` does between backward and step:
        g ← g · min(1, max_grad_norm / (‖g‖₂ + 1e-6)). It is the optimizer's, not a group's.
        """
        if "lr" not in defaults:  # a rule of one's own without an __init__ of its own, made without lr=
            raise TypeError(f"{type(self).__name__}: lr is required (give lr=…, or an __init__ passing a default "
                            "to super().__init__(params, lr=…), as xdl's rules do)")
        check_lr(defaults["lr"])
        self.check_settings(defaults)
        self._max_grad_norm = check_max_grad_norm(max_grad_norm)
        self.defaults = defaults
        self.check_finite = check_bool(check_finite, "check_finite")
        self.groups: list[ParamGroup] = []
        self._t = 0
        self.steps_done = None  # made with the first group, on its backend
        # the frozen parameters `Optimizer(model)` (or `param_groups(model)`) left out: one unfrozen later
        # would get no update (`check_trainable`)
        self.left_out = [p for p in params.parameters() if not p.requires_grad] if _is_model(params) else \
            list(getattr(params, "left_out", ()))
        # a model's names for its parameters, for messages (`_check_finite`, `check_trainable`): pairs,
        # which a copy (pickle, deepcopy) keeps with the copied parameters
        self._named = [(p, name) for name, p in params.named_parameters()] if _is_model(params) else \
            list(getattr(params, "named", ()))
        # the model it was made of, whole (`check_trainable`: a parameter that came to it since); None: of parameters
        self._made_of = params if _is_model(params) else getattr(params, "made_of", None)
        if params is not None:
            groups = _as_groups(params)
            seen = set()
            for group in groups:  # every group checked before any is placed (placing may move parameters)
                self._checked_group(group, seen)
            for group in groups:
                self.add_param_group(group)

    def __init_subclass__(cls, **kwargs):
        """A rule's constructor given a PyTorch or Keras keyword it does not take (``SGD(m, momentum=0.9)``,
        ``Adam(m, betas=…)``, ``Adam(m, learning_rate=…)``) says what that setting is here, as a group's key
        does: Python's "unexpected keyword argument" would not."""
        super().__init_subclass__(**kwargs)
        if "pytorch_names" in vars(cls):  # a rule's own, besides those of every PyTorch optimizer
            cls.pytorch_names = {**PYTORCH_COMMON_NAMES, **cls.pytorch_names}
        if "keras_names" in vars(cls):  # as Keras's
            cls.keras_names = {**KERAS_COMMON_NAMES, **cls.keras_names}
        if "__init__" in vars(cls):
            cls.__init__ = hinting_named_elsewhere(cls.__init__)

    def __setstate__(self, state: dict) -> None:
        """A copy (pickle, deepcopy) copies every array apart, views too: each parameter's data and
        grad are made views of its flat buffer again, a group's run of a larger buffer a view of it,
        and the held hyperparameters views of ``held``, so the copy updates its own parameters (as
        a copied PyTorch optimizer does). A group whose parameters a copied model placed anew is
        left as it is: `check_placed` refuses it (the model's copy no longer shares them). What a
        step writes in place — the state, the held settings, the step count — is made `writable`.
        One pickled by an older xdl, which kept no places, views or parameters left out, is read as
        that xdl used it: every parameter where it was when pickled, none left out."""
        self.__dict__.update(state)
        self.__dict__.setdefault("left_out", [])
        if self.steps_done is not None:
            self.steps_done = writable(self.steps_done)
        for g in self.groups:
            if "placed" not in vars(g):  # (a dataclass field with a default_factory has no class default)
                g.placed = [p._flat for p in g.params]
                g.views = [(p.data, p.grad) for p in g.params]
            g.held = writable(g.held)
            for state_buffers in g.state:
                for name in list(state_buffers):
                    state_buffers[name] = writable(state_buffers[name])
            if all(p._flat is place for p, place in zip(g.params, g.placed)):
                for i, (p, (data, grad)) in enumerate(zip(g.params, g.views)):
                    views = views_of(p)
                    if p.data is data:  # (one rebound by hand stays so: the next step writes it back)
                        p.data = views[0]
                    if p.grad is grad:
                        p.grad = views[1]
                    g.views[i] = views
                g.flats = [_group_view(flat) for flat in g.flats]
            _bind_hyperparameters(g)

    def __getattr__(self, name):
        return missing_attribute(self, name, PYTORCH_ATTRIBUTES, PYTORCH_READ)

    def __repr__(self) -> str:
        """The rule and each group's settings, as a notebook cell ending with the optimizer shows it
        (PyTorch's lists its groups): ``Adam(lr=0.001, beta1=0.9, …; 6 parameters)``, one line a
        group where there are several; then ``max_grad_norm`` where the gradients are clipped (the
        optimizer's, not a group's: ``SGD(lr=0.1, weight_decay=0.0; 4 parameters; max_grad_norm=1.0)``)."""
        def group(settings: dict, params) -> str:
            count = "no parameters yet" if params is None else counted(len(params), "parameter")
            return f"{', '.join(f'{k}={v!r}' for k, v in settings.items())}; {count}"

        name = type(self).__name__
        clipping = [] if self._max_grad_norm is None else [f"max_grad_norm={self._max_grad_norm!r}"]
        if len(self.groups) <= 1:
            only = self.groups[0] if self.groups else None
            shown = group(only.settings, only.params) if only else group(self.defaults, None)
            return f"{name}({'; '.join([shown, *clipping])})"
        lines = [f"  group {i}: {group(g.settings, g.params)}" for i, g in enumerate(self.groups)]
        return "\n".join([f"{name}(", *lines, *(f"  {c}" for c in clipping), ")"])

    @property
    def max_grad_norm(self) -> float | None:
        """The global 2-norm the gradients are clipped to at the start of each step (None: not clipped)."""
        return self._max_grad_norm

    @max_grad_norm.setter
    def max_grad_norm(self, value) -> None:
        value = check_max_grad_norm(value)
        if value != self._max_grad_norm:
            self.version += 1  # a captured step holds the number (or no clipping) it was captured with
        self._max_grad_norm = value

    # -- hooks for subclasses -------------------------------------------------------------
    def check_settings(self, settings: dict) -> None:
        check_non_negative("weight_decay", settings.get("weight_decay", 0.0))

    def update(self, flat, state: dict, h: dict, step: int, steps_done=None) -> None:
        """Apply the rule to one flat buffer: ``h`` maps each setting to its value (numbers as
        arrays of the backend, or K per-model values); Adam's step number is ``step +
        steps_done[0]`` (`xdl.ops.NumpyOps`)."""
        raise NotImplementedError

    # -- groups ---------------------------------------------------------------------------
    def add_param_group(self, group: dict) -> None:
        """Add a group: ``{"params": [...]}`` and any of the optimizer's settings (``"lr"``, …) for
        it, the others the constructor's. Everything is checked before the parameters are placed in
        a flat buffer (which may move them) or the group is added."""
        params, settings, lr = self._checked_group(group)
        flats = flat_views(params)
        xp = params[0].backend.xp
        state = [StateBuffers({name: xp.zeros_like(f.data) for name in self.state_names}, type(self).__name__)
                 for f in flats]
        group = ParamGroup(params, settings, flats, state, placed=[p._flat for p in params],
                           views=[(p.data, p.grad) for p in params], first_step=self._t)
        group.held_names = ("lr", *sorted(k for k, v in settings.items() if k != "lr" and is_numeric_setting(v)))
        group.held = xp.zeros(len(group.held_names), dtype=np.float64)
        _bind_hyperparameters(group)
        if self.steps_done is None:
            self.steps_done = xp.full(1, self._t, dtype=np.int64)
        self.groups.append(group)
        checked_state_changed()  # (what `check_trainable` holds: a captured step's checks run again)
        self._hold(group, lr)

    def _checked_group(self, group: dict, seen: set | None = None) -> tuple[list, dict, float]:
        """(params, settings, lr) of a group dict, checked as `add_param_group` takes it — its
        parameters (a lone tensor is one), in no other group (nor among ``seen``'s ids, which it
        adds to: the groups given with it), its settings — changing nothing."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"a parameter group must be a dict with 'params' (and settings), got {group!r}")
        params = _parameter_list(group["params"], "a group's params")
        if not params:
            raise ValueError("an optimizer parameter group needs at least one parameter")
        for i, p in enumerate(params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                hint = (" (a frozen parameter: give the model, whose frozen ones are left out, or only the "
                        "parameters that train)") if isinstance(p, Tensor) else ""
                raise TypeError(f"params[{i}] must be a tensor that requires grad, got {p!r}{hint}")
            if not p.is_leaf:  # its .grad is never filled: it would not train, and nothing would say so
                raise TypeError(f"params[{i}] is the result of an operation ({type(p._fn).__name__}), not a leaf "
                                "tensor: an optimizer updates leaves (PyTorch: can't optimize a non-leaf Tensor)")
        backends = {id(p.backend): p.backend.name for p in [*params, *self.parameters()]}
        if len(backends) > 1:
            raise ValueError(f"parameters of mixed backends ({' and '.join(sorted(backends.values()))}) "
                             "cannot share an optimizer")
        known = {id(p) for p in self.parameters()} | (seen if seen is not None else set())
        twice = next((i for i, p in enumerate(params) if id(p) in known), None)
        if twice is not None:  # (fine-tuning: Optimizer(model) made while it trained already holds it)
            p = params[twice]
            held = next((f"group {g}" for g, group in enumerate(self.groups) if any(q is p for q in group.params)),
                        "an earlier group given")
            raise ValueError(f"params[{twice}] (shape {tuple(p.shape)}) is already in {held}: a parameter is in one "
                             "group only; leave it out of this one, or make the optimizer of the groups wanted (one "
                             "made of a model holds every parameter that trained then)")
        if len({id(p) for p in params}) < len(params):
            raise ValueError("a parameter appears twice in the group (it would be updated twice per step)")
        self._check_setting_names(group)
        settings = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
        lr = self._checked_rate(settings, {p.dtype for p in params}, self.t)
        if seen is not None:
            seen.update(id(p) for p in params)
        return params, settings, lr

    def _check_setting_names(self, group: dict) -> None:
        """A group's keys are ``params`` and the optimizer's settings: another (PyTorch's name
        for one of them, a typo) would be kept and never read."""
        unknown = sorted(k for k in group if k != "params" and k not in self.defaults)
        if unknown:
            hints = "".join(f"; {hint}" for hint in (named_elsewhere_hint(type(self), k) for k in unknown) if hint)
            raise ValueError(f"a parameter group has settings {unknown} that {type(self).__name__} does not take "
                             f"(its settings: {', '.join(self.defaults)}){hints}")

    def parameters(self) -> list:
        return [p for g in self.groups for p in g.params]

    @property
    def param_groups(self) -> tuple[GroupSettings, ...]:
        """The groups as PyTorch's ``opt.param_groups`` shows them: each a mapping of ``"params"``
        (a tuple) and the group's settings. Setting one (``for g in opt.param_groups: g["lr"] =
        1e-4``) is checked as the constructor checks it and takes effect at the next step, as
        ``opt.lr = …`` does. (A tuple: groups are added with `add_param_group`.)"""
        return tuple(GroupSettings(self, g) for g in self.groups)

    def _set(self, group: ParamGroup, changes: dict) -> None:
        """Change settings of ``group`` (``opt.lr``, `GroupSettings`): all checked first (a refused
        one changes nothing), then held for the update. A number held on the device is rewritten
        there at once (a captured step reads it at its next replay); a flag or a schedule counts a
        ``version`` (a loop that captured its step captures it again)."""
        if "params" in changes:
            raise TypeError("a group's params cannot be replaced; add parameters with add_param_group")
        for name in changes:
            self._setting_name(group, name)
        settings = {**group.settings, **changes}
        for name, value in changes.items():
            if name in group.held_names[1:] and not is_numeric_setting(value):  # held on the device as a number
                raise ValueError(f"{name} must be a number, got {value!r}")
        lr = self._checked_rate(settings, [f.data.dtype for f in group.flats], self.t)
        if any(name not in group.held_names or callable(value) or callable(group.settings[name])
               for name, value in changes.items()):
            self.version += 1  # read on the host when the step is built: a captured one would keep the old
        group.settings.update(changes)
        _bind_hyperparameters(group)
        self._hold(group, lr)

    def _checked_rate(self, settings: dict, dtypes, t: int) -> float:
        """A group's ``settings`` checked as the constructor checks them, for parameters of
        ``dtypes``; the rate its step after ``t`` steps uses (a schedule evaluated: one that returns
        no number is refused now)."""
        check_lr(settings["lr"])
        self.check_settings(settings)
        check_eps_in(settings, dtypes)
        check_weight_decay_in(settings, dtypes)
        rate = rate_at(settings["lr"], t)
        if not callable(settings["lr"]) and dtypes:  # a number the step would refuse: refused now (a schedule's
            # later rates are checked as they come)
            check_rate(rate, "lr", min(map(np.dtype, dtypes), key=lambda dtype: dtype.itemsize))
        return rate

    def _setting_name(self, group: ParamGroup, name: str) -> str:
        """``name`` if ``group`` has that setting, else a KeyError listing the ones it has."""
        if name not in group.settings:
            torch = type(self).pytorch_names.get(name)  # (the constructor and add_param_group say it too)
            said = f"; PyTorch's {name!r} is {torch}" if torch else ""
            raise KeyError(f"{type(self).__name__} has no setting {name!r} (its settings: params, "
                           f"{', '.join(group.settings)}){said}")
        return name

    @property
    def lr(self):
        """The learning rate (of the first group); setting it changes every group's."""
        return self.groups[0].settings["lr"] if self.groups else self.defaults["lr"]

    @lr.setter
    def lr(self, value) -> None:
        check_lr(value)
        rate_at(value, self.t)
        for g in self.groups:  # every group's check before any holds it: groups of other dtypes hold other rates
            self._checked_rate({**g.settings, "lr": value}, [f.data.dtype for f in g.flats], self.t)
        for g in self.groups:
            self._set(g, {"lr": value})
        self.defaults["lr"] = value

    def current_lr(self, group: ParamGroup | None = None) -> float:
        """The rate the next step uses (a schedule is evaluated at t, the steps taken so far)."""
        return rate_at((group or self.groups[0]).settings["lr"] if self.groups else self.defaults["lr"], self.t)

    # -- the loop -------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero every gradient. ``set_to_none`` (PyTorch's) is accepted and changes nothing: the
        gradients are views of one flat buffer, which a fused update reads whole, so they are
        zeroed either way (one fill per buffer). So a parameter the next step's graph leaves out has
        a zero gradient and still moves by its momentum, moments and weight decay (PyTorch's step
        skips one whose grad is None): a part trained only now and then takes an optimizer of its own."""
        check_bool(set_to_none, "set_to_none")
        self.check_placed()
        self._write_back_rebound()  # a .grad rebound by hand is zeroed too (it is written back first)
        for g in self.groups:
            for flat in g.flats:
                flat.grad.fill(0)

    def step(self, closure=None):
        """Apply one update to every group (nothing is written if a checked gradient is not finite,
        or if a group's rate is outside its dtype's positive range: every rate is checked first).

        ``closure`` (PyTorch's ``opt.step(closure)``): a function of no arguments that zeroes the
        gradients, computes the cost, calls ``backward`` and returns the cost; it is called (with
        gradients recorded, as under `xdl.enable_grad`) before the update, and its cost returned.
        Without one the step returns None."""
        if closure is not None:  # a step that cannot run is refused before the closure's forward and backward
            self._check_steppable()
        cost = run_closure(closure, f"{type(self).__name__}.step")
        self._step()
        return cost

    def _check_steppable(self) -> None:
        """Raise unless a step can run: parameters held, where they were placed, trainable as they were."""
        if not self.groups:
            raise ValueError(f"{type(self).__name__}.step: the optimizer has no parameters; give it the model or its "
                             "parameters when made (or add_param_group), or use minimize(cost_fn, params)")
        self.check_placed()
        self.check_trainable()
        self._check_count_room()

    def _check_replayable(self, first_steps: tuple) -> None:
        """Raise unless a replay of a step captured when the groups began at ``first_steps`` updates as an eager
        step would: `_check_steppable`, and the groups the same — one added since (``add_param_group``) gets no
        update from the graph, and a group's first step set since (``load_state_dict``, ``t`` set below it) is
        not the one the graph passes its update (Adam's t, its bias corrections)."""
        self._check_steppable()
        now = tuple(g.first_step for g in self.groups)
        if now != first_steps:
            change = f"{counted(len(now) - len(first_steps), 'group')} added" if len(now) != len(first_steps) else \
                f"the groups' first steps set to {list(now)} (from {list(first_steps)})"
            raise RuntimeError(f"{type(self).__name__}: a captured step's graph updates the groups it was captured "
                               f"with, and the optimizer changed since ({change}): capture the step again "
                               "(xdl.cuda_graph)")

    def _step(self) -> None:
        self._check_steppable()
        # (a replay of a captured step runs no Python: checked before each)
        replay_check(functools.partial(self._check_replayable, tuple(g.first_step for g in self.groups)))
        self._write_back_rebound()
        if self.check_finite:
            require_not_capturing("check_finite=True (it reads every gradient on the host)")
            self._check_finite()
        # every group's, before any update; in the narrowest dtype of its buffers (each holds the rate)
        rates = [check_rate(self.current_lr(g), f"the lr at step {self.t + 1} (group {i})",
                            min((f.data.dtype for f in g.flats), key=lambda dtype: dtype.itemsize),
                            decayed=callable(g.settings["lr"]) and self.t > 0)
                 if g.flats else 0.0 for i, g in enumerate(self.groups)]
        self._clip()
        for g, lr in zip(self.groups, rates):
            h = self._hold(g, lr)
            for flat, state in zip(g.flats, g.state):
                # Adam's t = 1 + the steps this group took (its moments are as old: PyTorch counts per parameter)
                self.update(flat, state, h, 1 - g.first_step, self.steps_done)
            note_written(g.params)
        self._count_on()

    def _clip(self) -> None:
        """Every group's gradients scaled together to ``max_grad_norm`` (`clipping.clip_buffers`), once the step's
        checks passed (a refused step leaves them as they were); nothing without one."""
        if self._max_grad_norm is None:
            return
        grads = [flat.grad for g in self.groups for flat in g.flats]
        if grads:
            clip_buffers(grads, self._max_grad_norm)

    def check_placed(self) -> None:
        """The parameters still live in the buffers this optimizer updates: once moved (packing
        gives each a new place, `xdl.flat.pack`), it would update the old storage and the model
        would never change."""
        for g in self.groups:
            for p, place in zip(g.params, g.placed):
                if p._flat is not place:
                    raise RuntimeError(f"{type(self).__name__}: the parameters moved to new storage after this "
                                       "optimizer was made (model.to(...), model.astype(...), the model placed inside another or "
                                       "unpickled, a parameter or submodule assigned to it or removed, or another "
                                       "optimizer packing part of them): it would update the "
                                       f"old copies; make the optimizer after that, e.g. {type(self).__name__}(model) "
                                       "(two models sharing a layer train it with one optimizer: of a module holding "
                                       "both, on the sum of their losses)")

    def names(self) -> dict[int, str]:
        """id → the model's name of each parameter, for an optimizer made of a model (else empty)."""
        return {id(p): name for p, name in self.__dict__.get("_named", ())}

    def check_trainable(self, model=None) -> None:
        """Refuse to update when a parameter was frozen or unfrozen (``requires_grad``) since this
        optimizer was made: a frozen one it holds would still move (momentum, weight decay, one
        update over its flat buffer), and one `Optimizer(model)` left out frozen would get gradients
        and never an update — as a Keras model needs ``compile()`` again. ``model`` (`Trainer` gives
        its own): its names for the message — and, where this optimizer was made of that model
        whole (``Optimizer(model)``, ``param_groups(model)``), a parameter of it that trains and
        that the optimizer does not hold is refused: one that came since (a layer assigned into a
        child, a tied weight untied) would get gradients and never an update."""
        named = list(model.named_parameters()) if model is not None else None
        names = {id(p): n for n, p in named} if named is not None else None

        def name(p):
            return (names or self.names()).get(id(p)) or f"a parameter of shape {tuple(p.shape)}"

        frozen = next((p for g in self.groups for p in g.params if not p.requires_grad), None)
        if frozen is not None:
            # (a callback cannot make the trainer's optimizer again: within a run, a rate of 0 stops a group)
            raise ValueError(f"optimizer: it was made when {name(frozen)} trained, and it is frozen now (requires_grad "
                             f"False): make the optimizer again (Optimizer(model) leaves frozen parameters out); "
                             "to stop it training within a run (a callback), leave requires_grad as it was and set "
                             "the rate of a group of its own to 0 (optimizer.param_groups[i]['lr'] = 0; under an epoch "
                             "schedule, which sets every group's rate at each epoch's start, clear it too: "
                             "trainer.schedule = None)")
        held = {id(p) for p in self.parameters()} if self.left_out else ()
        unfrozen = next((p for p in self.left_out if p.requires_grad and id(p) not in held), None)
        if unfrozen is not None:  # (PyTorch's optimizer holds every parameter, frozen or not)
            raise ValueError(f"optimizer: it was made when {name(unfrozen)} was frozen, which it left out, and it "
                             "trains now (requires_grad True): make the optimizer again, or give it the parameter with "
                             "optimizer.add_param_group({'params': [...]})")
        if model is not None and self.__dict__.get("_made_of") is model:  # it holds every one that trains
            held = {id(p) for p in self.parameters()}
            new = next((n for n, p in named if p.requires_grad and id(p) not in held), None)
            if new is not None:
                raise ValueError(f"optimizer: it was made of the model's parameters, and {new} came since (a layer or "
                                 "parameter assigned, a tied weight untied): it would get gradients and never an "
                                 "update; make the optimizer again, or give it the parameter with "
                                 "optimizer.add_param_group({'params': [...]})")

    def _write_back_rebound(self) -> None:
        """A ``.data`` or ``.grad`` rebound by hand since the last step (PyTorch's ``p.grad = None``
        loop, ``p.data = array``) written back into its place (`_reattach`): the update reads and
        writes the flat buffers. One identity test per parameter per step."""
        for g_index, g in enumerate(self.groups):
            for i, (p, (data, grad)) in enumerate(zip(g.params, g.views)):
                if p.data is not data or p.grad is not grad:
                    for attribute in ("data", "grad"):  # PyTorch's ``p.grad = tensor``: its array (a Tensor has no
                        value = getattr(p, attribute)   # address: "no attribute '__array_interface__'")
                        if isinstance(value, Tensor):
                            setattr(p, attribute, value.data)
                    if not is_view_of(p, *p._flat):
                        _reattach(p, data, grad, getattr(p, "name", None) or f"params[{i}] of group {g_index}")
                    g.views[i] = (p.data, p.grad)  # (new views of the same place, or the old ones again)

    def _hold(self, g: ParamGroup, lr: float) -> dict:
        """The group's hyperparameters as the update reads them, ``held`` rewritten when a value
        changed since the last step (a new rate: once per epoch under a schedule)."""
        values = (lr, *(float(g.settings[name]) for name in g.held_names[1:]))
        if values != g.held_values:
            require_not_capturing("a hyperparameter changed within a captured step (a per-step lr schedule "
                                  "is computed on the host)")
            old = g.held_values or (None,) * len(values)
            for i, (value, before) in enumerate(zip(values, old)):
                if value != before:  # a fill: on the GPU the value goes as a kernel argument, no copy or sync
                    g.held[i:i + 1].fill(value)
            g.held_values = values
        return g.hyperparameters

    def _check_finite(self) -> None:
        for g in self.groups:
            for flat in g.flats:
                xp = flat.backend.xp
                if not bool(xp.isfinite(flat.grad).all()):
                    bad = [self.names().get(id(p)) or getattr(p, "name", None) or f"#{i}"
                           for i, p in enumerate(flat.params) if not bool(xp.isfinite(p.grad).all())]
                    raise FloatingPointError(
                        f"non-finite gradient (NaN or Inf) in parameter(s) {', '.join(bad)} before step {self.t + 1}; "
                        "the weights were left unchanged")

    def minimize(self, cost_fn, params=None, steps: int = 1) -> float:
        """Run ``steps`` of: zero the gradients, ``cost = cost_fn()``, backward, step.

        ``params`` defaults to the optimizer's own; parameters given here that it does not hold
        yet are added as a new group. Returns the last cost (one host sync, at the end). The cost
        and its backward record gradients whatever block it is called in, as `step`'s closure does.

        >>> import xdl
        >>> w = xdl.tensor([0.0], requires_grad=True)
        >>> _ = xdl.optim.Adam(lr=0.1).minimize(lambda: w**2 - 10*w + 25, [w], steps=1000)
        >>> round(w.item(), 3)
        5.0
        """
        check_int(steps, "minimize: steps")  # (a bool is no count: True ran one step)
        if params is not None:
            known = {id(p) for p in self.parameters()}
            params = _trainable(params) if _is_model(params) else _parameter_list(params, "minimize: params")
            new = [p for p in params if id(p) not in known]
            if new:
                self.add_param_group({"params": new})
        if not self.groups:
            raise ValueError("minimize: no parameters; pass params or construct the optimizer with them")
        cost = None
        for _ in range(steps):
            self.zero_grad()
            with enable_grad():  # (as step's closure: a caller's no_grad block failed its backward, "on a tensor
                cost = cost_fn()  # that does not require grad")
                cost.backward()
            self.step()
        return cost.item()

    def _held_state(self) -> list[tuple[int, str, object]]:
        """(group index, buffer name, array) for every state buffer, in the groups' order."""
        return [(i, name, a) for i, g in enumerate(self.groups) for st in g.state for name, a in st.items()]

    def state_flags(self):
        """isfinite(a).all() for each state buffer (`_held_state`'s order), stacked on the device and not
        read — (n,) booleans —, or None without state: `non_finite_state` reads them, or takes them read
        with other values in one transfer (`xdl.train.host_reads.read_together`)."""
        held = self._held_state()
        if not held:
            return None
        xp = self.groups[held[0][0]].flats[0].backend.xp
        return xp.stack([xp.isfinite(a).all() for _, _, a in held])

    def non_finite_state(self, flags=None) -> list[str]:
        """The state buffers holding NaN or Inf, as "group g's name". ``flags``: `state_flags` already
        read on the host (with other values: one read in all); None: read here (one host read: every
        buffer's flag stacked on the device; none without state). A state that overflowed stops the
        updates without a word while the weights and costs stay finite: Adam's v = inf makes its step
        m̂/(√v̂ + ε) = 0 — a weight_decay of 1e20, whose decayed gradient g + wd·p it squares."""
        held = self._held_state()
        if not held:
            return []
        if flags is None:
            flags = self.groups[held[0][0]].flats[0].backend.to_numpy(self.state_flags())
        return list(dict.fromkeys(f"group {i}'s {name}" for (i, name, _), ok in zip(held, flags) if not ok))

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The optimizer's class, step count, hyperparameters (a schedule is kept as-is: it is
        code), NumPy copies of the state buffers and their ``layout``: per buffer, the group's
        parameters in the order they lie in it (indices into the group's ``params``)."""
        return {
            "class": type(self).__name__,
            "t": self.t,
            "first_steps": [g.first_step for g in self.groups],
            "settings": [dict(g.settings) for g in self.groups],
            "state": [[{k: host_copy(flat.backend, a) for k, a in st.items()}  # (one read each: no device copy)
                       for flat, st in zip(g.flats, g.state)] for g in self.groups],
            "layout": [_layout(g) for g in self.groups],
            "max_grad_norm": self.max_grad_norm,
            "shapes": [[list(p.shape) for p in g.params] for g in self.groups],
        }

    def check_state_dict(self, state: dict) -> None:
        """Raise ValueError unless ``state`` (from `state_dict`) fits this optimizer: the same
        class, groups, buffers and shapes. Nothing is changed."""
        if not isinstance(state, dict) or not {"t", "state", "settings"} <= set(state):
            raise ValueError("optimizer state must be a dict from state_dict() (with 't', 'state' and 'settings'), "
                             f"got {_keys_of(state)}")
        saved_class = state.get("class")
        if saved_class is not None and saved_class != type(self).__name__:
            raise ValueError(f"optimizer state is {saved_class}'s, this optimizer is {type(self).__name__}: "
                             "their state buffers mean different things")
        t = check_int(state["t"], "optimizer state's t (the steps taken)", low=0, high=MAX_STEPS,
                      expected=f"an integer ≥ 0 and at most {MAX_STEPS} (an int64, as the device holds it)")
        check_max_grad_norm(state.get("max_grad_norm"), "optimizer state's max_grad_norm")  # (older states: None)
        for name in ("state", "settings", "first_steps"):
            if name in state and len(state[name]) != len(self.groups):
                raise ValueError(f"optimizer state has {len(state[name])} groups' {name}, this optimizer "
                                 f"{len(self.groups)} groups")
        for gi, first in enumerate(state.get("first_steps", ())):  # Adam's t counts from a group's first step
            check_int(first, f"optimizer state's first_steps[{gi}] (the step group {gi} was added at)", low=0,
                      high=t, expected=f"an integer in [0, t = {t}]")
        # the parameters' shapes before the buffers' lengths: a model of other sizes is told which parameter
        for gi, (g, shapes) in enumerate(zip(self.groups, state.get("shapes") or [])):  # (older states: none)
            now = [list(p.shape) for p in g.params]
            if [list(shape) for shape in shapes] != now:
                i = next((i for i, (a, b) in enumerate(zip(shapes, now)) if list(a) != b), min(len(shapes), len(now)))
                why = "listed in another order?" if sorted(map(list, shapes)) == sorted(now) else "a model of other sizes?"
                raise ValueError(f"optimizer state of group {gi} is of parameters of shapes {shapes}, this optimizer's "
                                 f"are {now} (first differing at params[{i}]: {why}): each parameter's state would go "
                                 "to another")
        for gi, (g, saved) in enumerate(zip(self.groups, state["state"])):
            if len(saved) != len(g.flats):
                raise ValueError(f"optimizer state of group {gi} has {len(saved)} buffers per dtype, "
                                 f"this optimizer {len(g.flats)}")
            for st, sv in zip(g.state, saved):
                if set(sv) != set(st):
                    raise ValueError(f"optimizer state of group {gi} holds {sorted(sv)}, "
                                     f"{type(self).__name__} keeps {sorted(st)}")
                for k, a in st.items():
                    if tuple(np.shape(sv[k])) != tuple(a.shape):
                        raise ValueError(f"optimizer state {k!r} of group {gi} has shape {tuple(np.shape(sv[k]))}, "
                                         f"this optimizer's is {tuple(a.shape)}")
        for gi, (g, layout) in enumerate(zip(self.groups, state.get("layout") or [None] * len(self.groups))):
            then, now = layout or _given_order(g), _layout(g)
            if [sorted(indices) for indices in then] != [sorted(indices) for indices in now]:
                raise ValueError(f"optimizer state of group {gi} lays its parameters out as {then}, this optimizer's "
                                 f"buffers hold {now}")
        for gi, (g, saved) in enumerate(zip(self.groups, state.get("settings", ()))):
            unknown = sorted(set(saved) - set(g.settings))
            if unknown:
                raise ValueError(f"optimizer state of group {gi} has settings {unknown} that {type(self).__name__} "
                                 f"does not take (its settings: {', '.join(g.settings)})")
            settings = {**g.settings, **saved}
            try:  # the constructor's checks: a hand-edited or foreign state is refused before a step uses it
                self._checked_rate(settings, [f.data.dtype for f in g.flats], t)
            except (TypeError, ValueError) as e:
                raise ValueError(f"optimizer state of group {gi}: {e}") from None

    def load_state_dict(self, state: dict) -> None:
        """Restore from `state_dict`; everything is checked (`check_state_dict`) before anything
        is written."""
        self.check_state_dict(state)
        layouts = state.get("layout") or [None] * len(self.groups)
        for g, saved, settings, layout in zip(self.groups, state["state"], state["settings"], layouts):
            g.settings.update(settings)
            for flat, st, sv, then in zip(g.flats, g.state, saved, layout or _given_order(g)):
                for k, a in st.items():
                    a[...] = flat.backend.asarray(_relaid(sv[k], then, g, flat))
        self.t = int(state["t"])
        self.max_grad_norm = state.get("max_grad_norm")  # (a state saved before max_grad_norm: None)
        for g, first in zip(self.groups, state.get("first_steps", [0] * len(self.groups))):  # (older states: 0)
            if g.first_step != int(first):
                self.version += 1  # (a host value of the step's update, as the `t` setter's)
            g.first_step = int(first)
            _bind_hyperparameters(g)
            self._hold(g, self.current_lr(g))
        checked_state_changed()  # (the first steps a captured step's update was given: `_check_replayable`)


def run_closure(closure, what: str):
    """``closure()`` under `enable_grad` (the cost it returns), or None without one. PyTorch's
    ``opt.step(closure)``: taking no argument, the step was refused with Python's "takes 1 positional
    argument but 2 were given"; one not callable is refused before anything runs."""
    if closure is None:
        return None
    if not callable(closure):
        raise TypeError(f"{what}: closure must be a function of no arguments that computes the cost, calls backward "
                        f"and returns the cost (PyTorch's opt.step(closure)), got {closure!r}")
    with enable_grad():
        return closure()


class GroupSettings(MutableMapping):
    """One parameter group of an `Optimizer` as a mapping (`Optimizer.param_groups`): ``"params"``
    (a tuple of its parameters) and each setting; a setting written here is the group's."""

    def __init__(self, optimizer: Optimizer, group: ParamGroup):
        self._optimizer, self._group = optimizer, group

    def __getitem__(self, name):
        if name == "params":
            return tuple(self._group.params)  # not a list: appending to it would add nothing
        return self._group.settings[self._optimizer._setting_name(self._group, name)]

    def __setitem__(self, name, value) -> None:
        self._optimizer._set(self._group, {name: value})

    def update(self, other=(), /, **changes) -> None:
        """Set several settings at once: all are checked before any is written."""
        self._optimizer._set(self._group, {**dict(other), **changes})

    def __delitem__(self, name) -> None:
        raise TypeError(f"an optimizer group's settings cannot be removed (tried {name!r}); set a new value instead")

    def __iter__(self):
        yield "params"
        yield from self._group.settings

    def __len__(self) -> int:
        return 1 + len(self._group.settings)

    def __repr__(self) -> str:
        settings = ", ".join(f"{name!r}: {value!r}" for name, value in self._group.settings.items())
        return f"{{'params': [{len(self._group.params)} parameters], {settings}}}"


def _keys_of(value) -> str:
    return f"a dict of {sorted(map(str, value))}" if isinstance(value, dict) else type(value).__name__


def is_numeric_setting(value) -> bool:
    """A numeric setting (held on the device), not a flag (``nesterov``: passed as it is)."""
    return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)


def _bind_hyperparameters(group: ParamGroup) -> None:
    """What an update reads: the group's settings, each number as its view of ``held``."""
    group.hyperparameters = {**group.settings, **{name: group.held[i:i + 1] for i, name in enumerate(group.held_names)}}


def _reattach(p, data_view, grad_view, name: str) -> None:
    """``p.data``/``p.grad`` rebound by hand, written into their views of the flat buffers and bound
    to them again: the update reads and writes those buffers, not what was bound. A gradient set
    to None counts as zero (the fused update reads every one; PyTorch would skip the parameter)."""
    for attribute, view in (("data", data_view), ("grad", grad_view)):
        value = getattr(p, attribute)
        if value is view:
            continue
        if value is None:
            view.fill(0)
        elif tuple(value.shape) != tuple(view.shape):
            raise ValueError(f"{name}.{attribute} was rebound to shape {tuple(value.shape)}; the parameter's shape is "
                             f"{tuple(view.shape)} (a parameter's shape is fixed once an optimizer holds it)")
        else:  # (of any backend: its values copied over, as asarray does not from a device to the host)
            view[...] = p.backend.own(value)
        setattr(p, attribute, view)


def _group_view(flat: FlatBuffer) -> FlatBuffer:
    """A copied group ``flat``: its parameters' whole buffer, or the run of it they fill (a copy
    of a view is an array of its own)."""
    whole, start = flat.params[0]._flat
    if whole is flat:
        return flat
    return FlatBuffer(whole.data[start:start + flat.size], whole.grad[start:start + flat.size], flat.params)


def _layout(group: ParamGroup) -> list[list[int]]:
    """Per flat buffer of ``group``: the indices (into ``group.params``) of its parameters, in the
    order they lie in it."""
    return [_layout_of(group, flat) for flat in group.flats]


def _given_order(group: ParamGroup) -> list[list[int]]:
    """The layout of a state saved without one (by an xdl whose buffers kept the order the
    parameters were given in): each buffer's parameters in ``group.params``' order."""
    return [sorted(indices) for indices in _layout(group)]


def _relaid(array, then: list[int], group: ParamGroup, flat):
    """A saved state ``array`` laid out as ``then`` (indices into ``group.params``), rearranged to
    lie as ``flat`` holds them now (a copy only where the orders differ)."""
    now = _layout_of(group, flat)
    if list(then) == now:
        return array
    pieces, offset = {}, 0
    for i in then:
        size = group.params[i].size
        pieces[i], offset = array[offset:offset + size], offset + size
    return np.concatenate([pieces[i] for i in now])


def _layout_of(group: ParamGroup, flat) -> list[int]:
    """The indices (into ``group.params``) of ``flat``'s parameters, in the order they lie in it."""
    index = {id(p): i for i, p in enumerate(group.params)}
    return [index[id(p)] for p in flat.params]


def _trainable(model) -> list:
    """``model``'s parameters that train: a frozen one (requires_grad False) is left out, as
    PyTorch's optimizers skip the parameters that get no gradient; all frozen is an error."""
    params = model.parameters()
    training = [p for p in params if p.requires_grad]
    if params and not training:
        raise ValueError("every parameter of the model is frozen (requires_grad False): an optimizer of it would "
                         "train nothing")
    return training


def _is_model(params) -> bool:
    return hasattr(params, "parameters") and callable(params.parameters)


def _as_groups(params) -> list[dict]:
    if _is_model(params):
        params = _trainable(params)
    if isinstance(params, Tensor):
        raise TypeError("params must be an iterable of tensors (wrap a single tensor in a list)")
    params = _parameter_list(params, "params", "xdl.Tensor (or group dict)")
    if params and isinstance(params[0], dict):
        return params
    return [{"params": params}]


def _parameter_list(params, name: str, what: str = "xdl.Tensor") -> list:
    """``params`` as a list: a lone tensor is one (iterated, it would be its rows, index results that
    never train), a set is refused (its order changes between runs: a saved state would go to other
    parameters on loading; PyTorch refuses one in a group's ``params``, though its constructor lists one)."""
    if isinstance(params, Tensor):
        return [params]
    if isinstance(params, set | frozenset):
        raise TypeError(f"{name} must be an ordered collection of tensors (a list), not a set: a set's order changes "
                        "between runs, and a saved optimizer state would be loaded into other parameters")
    return check_list(params, name, what)  # (`Adam(5)`: "'int' object is not iterable")


class ParamGroups(list):
    """`param_groups`' groups, the frozen parameters of the model it left out (``left_out``), which
    the optimizer made of them refuses to see train later (`Optimizer.check_trainable`), the
    model's (parameter, name) pairs (``named``, for messages) and the model (``made_of``)."""

    left_out: list = []
    named: list = []
    made_of = None  # the model, when the groups are all of its parameters that train


def param_groups(model, weight_decay: float) -> list[dict]:
    """Two groups: weights with ``weight_decay``, and biases/BN γ, β without (the usual split) —
    of a model's parameters that train (a frozen one is left out, as by ``Optimizer(model)``), or
    of a list of tensors (one without a role is a weight if it is a matrix, as `xdl.tensor.role_of`
    and `xdl.losses.l2` read it)."""
    training = _trainable(model) if _is_model(model) else check_tensors(_parameter_list(model, "param_groups: model"),
                                                                              "param_groups: model")
    groups = [{"params": [p for p in training if role_of(p) == "weight"], "weight_decay": weight_decay},
              {"params": [p for p in training if role_of(p) != "weight"], "weight_decay": 0.0}]
    result = ParamGroups(g for g in groups if g["params"])
    if _is_model(model):
        result.left_out = [p for p in model.parameters() if not p.requires_grad]
        result.named = [(p, name) for name, p in model.named_parameters()]
        result.made_of = model
    return result
