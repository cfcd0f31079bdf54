"""`StackedOptimizer`: K models' optimizers as one — one update per region for all K models.

The K models of a `xdl.nn.Stacked` share one (K, P) parameter buffer (row k = model k's flat
buffer, weights in columns [0, n_weights), biases and batch-norm γ, β after them). Each model
brings its own optimizer (the same rule, e.g. all `Adam`, with its own lr, β's, ε and weight
decay); the stacked optimizer keeps each hyperparameter as K values and updates a whole region of
columns for all K models in one call of the rule's fused update — one kernel launch on the GPU —
with each model's values (`xdl.ops.optim`). The optimizer state is (K, P) buffers alike. So each
model's optimizer must hold all of its model's parameters, with at most one set of settings for
the weights and one for the rest (as `param_groups` splits them), and no ``check_finite``; a stack
with a frozen parameter has none: what the shared update cannot represent is refused, by name.

A model can be frozen (`freeze`): its learning rate becomes 0 and its gradient row is zeroed
before each update, so the shared update leaves its weights exactly as they are; its state rows,
which the update still decays (a zero gradient's), are kept as they were and put back by
`unfreeze`, which lets it train on from them (Adam's bias correction then counts the stack's
steps, ``t``, frozen ones too) — one copy at each, none per step.

As `xdl.optim.Optimizer`, the values an update reads live in device memory, so a captured step
(`xdl.cuda_graph`) reads the current ones: each region's K values per hyperparameter (``held``,
rewritten when `set_lr`, `freeze`, `unfreeze` or a resume changes them) and the step count (``steps_done``).
Each model's ``max_grad_norm`` clips its own gradient row, by its row's norm, before the update (one
(K,) array of the max norms, inf for a model that clips nothing; none held where no model clips).
Freezing changes which rows the step zeroes: ``version`` counts such changes, and a loop that
captured its step captures it again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xdl.backend import host_copy
from xdl.data.validation import check_bool, check_int, counted
from xdl.flat import writable
from xdl.graph import require_not_capturing
from xdl.optim.clipping import clip_buffers
from xdl.optim.optimizer import (Optimizer, StateBuffers, StepCount, check_eps_in, check_max_grad_norm,
                                 check_non_negative, check_rate, check_weight_decay_in, is_numeric_setting,
                                 real_or_nan, run_closure)
from xdl.tensor import note_written


@dataclass
class _Region:
    """Columns [start, stop) of the stacked buffers, with K values per hyperparameter: what the
    rule's ``update`` takes as a flat buffer and its settings."""

    data: object
    grad: object
    params: list
    settings: dict  # name -> (K,) float64 array; "nesterov" a bool
    state: dict
    held: object = None  # the numeric settings as a (names, K) float64 array of the backend
    held_values: object = None  # what ``held`` holds now (a host copy, compared before each step)
    hyperparameters: dict = None  # what the update reads: each numeric setting as its row of ``held``

    @property
    def backend(self):
        """The stack's backend (a rule's update reads ``flat.backend``, as of a `FlatBuffer`)."""
        return self.params[0].backend


class StackedOptimizer(StepCount):
    """One optimizer over a `Stacked` model, built from K ordinary optimizers, one per model (as
    ``config.build_optimizer(model_k)`` makes them): the same class, each with its own settings.

    ``stacked``: the `Stacked` model (`xdl.nn.stack`); ``optimizers``: K optimizers of one rule, the
    k-th holding every parameter of model k (a model's own, or ``param_groups(model, wd)``'s two
    groups), none stepped yet, without a per-step schedule or ``check_finite``.

    ``lr`` is then K rates (`set_lr`); ``step()`` updates every model; ``t`` counts steps.
    """

    def __init__(self, stacked, optimizers):
        from xdl.nn.stacked import Stacked  # (deferred: xdl.nn sits above the optimizers' modules)

        if not isinstance(stacked, Stacked):  # (the two swapped: "'list' object has no attribute 'n_models'")
            raise TypeError(f"stacked must be a Stacked model (xdl.nn.stack(models)), got {type(stacked).__name__}: "
                            "StackedOptimizer(stacked, optimizers), the stack first")
        optimizers = list(optimizers)
        if len(optimizers) != stacked.n_models:
            raise ValueError(f"optimizers: {counted(len(optimizers), 'optimizer')} for a stack of "
                             f"{counted(stacked.n_models, 'model')}; "
                             "give one per model")
        for k, o in enumerate(optimizers):
            if not isinstance(o, Optimizer):
                raise TypeError(f"optimizers[{k}] is a {type(o).__name__}, expected an xdl.optim.Optimizer")
        rules = {type(o).__name__ for o in optimizers}
        if len(rules) > 1:
            raise ValueError(f"optimizers: the models' optimizers must be one class, got {', '.join(sorted(rules))}")
        rule = type(optimizers[0])
        defines = next(c for c in rule.__mro__ if "update" in vars(c))
        if not vars(defines).get("stacks", False):  # (one written for one model read model 0's settings for all K,
            # or failed inside with NumPy's "could not be broadcast")
            raise TypeError(f"optimizers: {rule.__name__}'s update ({defines.__name__}.update) is not declared to take "
                            f"stacked models' (K, n) rows and (K,) settings: once it does, set stacks = True on "
                            f"{defines.__name__} (ARCHITECTURE.md, the recipe for an optimizer)")
        # the update runs over whole (K, P) rows: every parameter of every model trains
        frozen = [name for name, p in stacked.flat_order() if not p.requires_grad]
        if frozen:
            raise ValueError(f"stacked: parameter(s) {', '.join(frozen)} are frozen (requires_grad False); a stacked "
                             "optimizer updates every parameter of every model, so it cannot leave them as they are: "
                             "stack models with no frozen parameter")
        for k, o in enumerate(optimizers):
            if o.t:
                raise ValueError(f"optimizers[{k}] has taken {o.t} steps; stack fresh optimizers")
            if any(callable(g.settings["lr"]) for g in o.groups):
                raise ValueError(f"optimizers[{k}] has a per-step lr schedule; stacked models take their rates "
                                 "per epoch (set_lr)")
            if o.check_finite:
                raise ValueError(f"optimizers[{k}] has check_finite=True, which a stacked optimizer does not do "
                                 "(fit_many checks each model's costs and state every epoch, and fails a model that "
                                 "diverged alone); make it with check_finite=False")
            _check_covers(stacked, o, k)
        split = [_settings_of(o, k) for k, o in enumerate(optimizers)]  # (weights', others') per model
        weights, others = [w for w, _ in split], [o for _, o in split]
        self.model, self.rule, self._t, self.version = stacked, optimizers[0], 0, 0
        self._params = stacked.parameters()  # what a step writes (`note_written`; listed once: 10 µs a call)
        self.state_names = self.rule.state_names
        xp, n_weights = stacked.backend.xp, stacked.n_weights
        self._state = {name: xp.zeros_like(stacked.data) for name in self.state_names}
        self.steps_done = xp.zeros(1, dtype=np.int64)  # the step count on the device (Adam's t − 1)
        if weights == others or n_weights == stacked.data.shape[1]:  # one region: one launch per step
            bounds = [(0, stacked.data.shape[1], weights)]
        else:
            bounds = [(0, n_weights, weights), (n_weights, stacked.data.shape[1], others)]
        self.regions = [self._region(a, b, per_model) for a, b, per_model in bounds if b > a]
        self._frozen = np.zeros(stacked.n_models, dtype=bool)
        self._frozen_rows = None  # the frozen rows' indices on the device (step zeroes their gradients)
        self._paused = {}  # k → a frozen model's state rows as `freeze` kept them
        self._max_grad_norms, self._max_norms_held = [None] * stacked.n_models, None
        self._set_max_grad_norms([o.max_grad_norm for o in optimizers])
        for region in self.regions:
            self._hold(region)

    def __setstate__(self, state: dict) -> None:
        """A copy (pickle, deepcopy) copies every array apart, views too: each region's columns of
        the model's and the state's (K, P) buffers, and its held settings, are made views again — of
        the model copied with it, which it then trains (as `Optimizer.__setstate__`); what a step
        writes in place is made `writable`."""
        self.__dict__.update(state)
        self._params = self.model.parameters()  # (a pickle of before they were listed has none)
        self.__dict__.setdefault("_paused", {})  # (nor one of before frozen states were kept)
        self.__dict__.setdefault("_max_grad_norms", [None] * self.model.n_models)  # (nor before max_grad_norm)
        self.__dict__.setdefault("_max_norms_held", None)
        self._state = {name: writable(a) for name, a in self._state.items()}
        if self.steps_done is not None:
            self.steps_done = writable(self.steps_done)
        start = 0
        for region in self.regions:
            region.held = writable(region.held)
            cols, start = slice(start, start + region.data.shape[1]), start + region.data.shape[1]
            self._bind(region, cols)

    def __repr__(self) -> str:
        """The rule, K and each setting's K values, as an `Optimizer` shows its groups:
        ``StackedOptimizer(Adam of 3 models; lr=[0.001, 0.003, 0.01], beta1=[0.9, 0.9, 0.9], …)``, one
        line a part of the rows where the weights' settings differ from the other parameters'
        (`param_groups`); the frozen models after them; then each model's ``max_grad_norm`` where one clips
        (``…; max_grad_norm=[None, 0.5, None])``, as an `Optimizer` shows its own)."""
        def settings(region: _Region) -> str:
            return ", ".join(f"{name}={value.tolist() if isinstance(value, np.ndarray) else value!r}"
                             for name, value in region.settings.items())

        head = f"{type(self).__name__}({type(self.rule).__name__} of {counted(self.n_models, 'model')}"
        frozen = np.flatnonzero(self._frozen).tolist()
        tail = f"; frozen: {frozen}" if frozen else ""
        clips = any(norm is not None for norm in self._max_grad_norms)
        clipping = [f"max_grad_norm={self._max_grad_norms!r}"] if clips else []
        if len(self.regions) == 1:
            return f"{head}; {'; '.join([settings(self.regions[0]), *clipping])}{tail})"
        names = ("weights", "other parameters")
        lines = [f"  {name}: {settings(region)}" for name, region in zip(names, self.regions)]
        return "\n".join([f"{head}{tail}:", *lines, *(f"  {line}" for line in clipping), ")"])

    def _region(self, start, stop, per_model: list[dict]) -> _Region:
        settings = {}
        for name in per_model[0]:
            values = [s[name] for s in per_model]
            if is_numeric_setting(values[0]):
                settings[name] = np.array(values, dtype=np.float64)
            elif any(v != values[0] for v in values):  # a flag (nesterov): the K models share one rule
                other = next(v for v in values if v != values[0])
                raise ValueError(f"optimizers: {name} is {values[0]!r} for one model and {other!r} for another; "
                                 "stacked models share one update rule")
            else:
                settings[name] = values[0]
        numbers = [name for name, value in settings.items() if isinstance(value, np.ndarray)]
        held = self.model.backend.xp.zeros((len(numbers), self.model.n_models), dtype=np.float64)
        return self._bind(_Region(None, None, [], settings, {}, held), slice(start, stop))

    def _bind(self, region: _Region, cols: slice) -> _Region:
        """``region`` made views of columns ``cols``: of the model's and the state's (K, P) buffers,
        and its numeric settings of the rows of ``held`` (what the update reads)."""
        region.data, region.grad = self.model.data[:, cols], self.model.grad[:, cols]
        region.params = [self.model.parameters()[0]]
        region.state = StateBuffers({name: a[:, cols] for name, a in self._state.items()}, type(self.rule).__name__)
        numbers = [name for name, value in region.settings.items() if isinstance(value, np.ndarray)]
        region.hyperparameters = {**region.settings, **{name: region.held[i] for i, name in enumerate(numbers)}}
        return region

    def _check_saved_settings(self, region: _Region, saved, what: str) -> None:
        """Raise ValueError unless ``saved`` holds ``region``'s settings, each number K values that
        model k's optimizer would take (the checks of its constructor)."""
        if not isinstance(saved, dict) or set(saved) != set(region.settings):
            raise ValueError(f"{what} must hold {', '.join(region.settings)}, got {saved!r}")
        per_model = [{} for _ in range(self.n_models)]
        for name, value in saved.items():
            if isinstance(region.settings[name], np.ndarray):  # K numbers
                if isinstance(value, np.ndarray) and value.ndim == 1:  # (a state through np.savez: its lists arrays)
                    value = value.tolist()
                if not isinstance(value, list | tuple) or len(value) != self.n_models:
                    raise ValueError(f"{what}: {name} must be {self.n_models} values (one per model), got {value!r}")
                for settings, v in zip(per_model, value):
                    settings[name] = v
            else:  # a flag the K models share
                for settings in per_model:
                    settings[name] = value
        for k, settings in enumerate(per_model):
            try:
                self._check_rate("lr", settings["lr"])  # a number: stacked rates are set per epoch, no schedule
                self.rule.check_settings(settings)
                check_eps_in(settings, [region.data.dtype])
                check_weight_decay_in(settings, [region.data.dtype])
            except ValueError as e:
                raise ValueError(f"{what}, model {k}: {e}") from None

    def _hold(self, region: _Region) -> dict:
        """The region's hyperparameters as the update reads them, ``held`` rewritten when a value
        changed (a host→device copy: at a new epoch's rates, never within a captured step)."""
        values = np.array([region.settings[name] for name in region.hyperparameters
                           if isinstance(region.settings[name], np.ndarray)], dtype=np.float64)
        if region.held_values is None or not np.array_equal(values, region.held_values):
            require_not_capturing("a change of the stacked models' hyperparameters within a captured step")
            region.held[...] = self.model.backend.asarray(values.reshape(region.held.shape))
            region.held_values = values
        return region.hyperparameters

    @property
    def n_models(self) -> int:
        return self.model.n_models

    @property
    def max_grad_norm(self) -> list:
        """Each model's ``max_grad_norm`` (its optimizer's): None where its gradients are not clipped."""
        return list(self._max_grad_norms)

    def _set_max_grad_norms(self, values: list) -> None:
        """Hold the K max norms (checked) on the device for the step, a (K,) float64 array with inf for None
        (a model not clipped), or nothing where none is clipped."""
        if values == self._max_grad_norms:
            return
        self._max_grad_norms = list(values)
        self._max_norms_held = None if all(v is None for v in values) else self.model.backend.asarray(
            np.array([math.inf if v is None else v for v in values], dtype=np.float64))
        self.version += 1  # a captured step holds the array (or no clipping) it was captured with

    def _check_max_grad_norms(self, values, what: str) -> list:
        """``values`` as K max norms, each None or a finite number > 0 (as a float)."""
        if not isinstance(values, list | tuple) or len(values) != self.n_models:
            raise ValueError(f"{what} must be {self.n_models} values (one per model, None where not clipped), got "
                             f"{values!r}")
        return [check_max_grad_norm(v, f"{what}[{k}]") for k, v in enumerate(values)]

    def _check_rate(self, name: str, value) -> None:
        """A rate model k's own optimizer would take (`Optimizer`'s ``lr`` setter): a finite number ≥ 0,
        and 0 or within `rate_range` of the stack's dtype — the update rounds the (K, 1) rates to it, so
        1e39 was inf in float32 (the model's weights −inf after one step, said as a divergence at the
        epoch's end) and 1e-46 was 0, where an ordinary optimizer refuses both by name."""
        check_non_negative(name, value)
        check_rate(value, name, self.model.data.dtype)

    @property
    def lr(self) -> np.ndarray:
        """The K learning rates (of the weights' region)."""
        return self.regions[0].settings["lr"].copy()

    @lr.setter
    def lr(self, lr) -> None:
        """``opt.lr = rate`` (every model's) or ``= [r0, r1, …]`` (one each): `set_lr`, as an
        `Optimizer`'s ``lr`` sets its groups' (without it, a `fit_many` callback's ``opt.lr = …``
        failed after its epoch: "property 'lr' has no setter")."""
        self.set_lr(lr)

    def set_lr(self, lr) -> None:
        """Set the K learning rates (frozen models keep 0); a number sets every model's."""
        values = [lr] * self.n_models if np.ndim(lr) == 0 else list(lr)
        if len(values) != self.n_models:
            raise ValueError(f"lr: {len(values)} values for a stack of {self.n_models} models")
        for k, value in enumerate(values):
            if not self._frozen[k]:
                self._check_rate(f"lr of model {k}", value)
            elif math.isnan(real_or_nan(value)):  # not used (a frozen model's rate is 0), but not None or a bool either
                raise ValueError(f"lr of model {k} must be a number, got {value!r}")
        values = np.where(self._frozen, 0.0, np.array(values, dtype=np.float64))
        for region in self.regions:
            region.settings["lr"] = values.copy()
            self._hold(region)  # now: a captured step reads it at its next replay

    def freeze(self, k: int, clear_state: bool = False) -> None:
        """Stop updating model k: its lr becomes 0 and its gradient row is zeroed at each step, so
        its weights stay exactly as they are, and its optimizer state is kept as it is now (for
        `unfreeze` and `state_dict`). ``clear_state`` zeroes that state (a diverged model's may
        hold NaN, which a zero rate would still spread)."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < self.n_models:
            raise IndexError(f"freeze: model {k!r} is not one of the {self.n_models} models (0 to {self.n_models - 1})")
        self._frozen[k] = True
        self._frozen_changed()
        for region in self.regions:
            region.settings["lr"][k] = 0.0
            self._hold(region)
        if clear_state:
            for a in self._state.values():
                a[k] = 0
        if clear_state or k not in self._paused:
            # its rows as they are: the shared update still runs over them, and a zero gradient decays momenta and
            # moments (v ← β·v; + wd·p with weight decay) — a model unfrozen went on from shrunken ones
            self._paused[k] = {name: a[k].copy() for name, a in self._state.items()}

    def unfreeze(self, k: int, lr: float) -> None:
        """Update model k again, at rate ``lr`` (its state as `freeze` left it): a resumed batch
        trains a model that had completed its epochs for the epochs added. The step count is the
        batch's, one for all K (Adam's bias corrections read it): a model unfrozen after the others
        stepped on counts their steps, not its own — it goes on as alone only where it froze at the
        count it is unfrozen at (`fit_many` unfreezes no other: a model that completed before the
        batch's last epoch is refused more epochs)."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < self.n_models:
            raise IndexError(f"unfreeze: model {k!r} is not one of the {self.n_models} models (0 to {self.n_models - 1})")
        self._check_rate(f"lr of model {k}", lr)
        self._frozen[k] = False
        self._frozen_changed()
        for region in self.regions:
            region.settings["lr"][k] = float(lr)
            self._hold(region)
        for name, row in self._paused.pop(k, {}).items():
            self._state[name][k] = row

    def _frozen_changed(self) -> None:
        self._frozen_rows = self.model.backend.asarray(np.flatnonzero(self._frozen)) if self._frozen.any() else None
        self.version += 1  # a captured step zeroes the rows frozen when it was captured: capture again

    @property
    def frozen(self) -> np.ndarray:
        return self._frozen.copy()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the (K, P) gradient buffer; ``set_to_none`` (PyTorch's) as `Optimizer.zero_grad` takes it."""
        check_bool(set_to_none, "set_to_none")
        self.model.grad.fill(0)

    def step(self, closure=None):
        """One update of every model (frozen ones stay as they are); ``closure`` as
        `Optimizer.step` takes it (called first, its cost returned)."""
        self._check_count_room()  # (before the closure's forward and backward, as `Optimizer.step`)
        cost = run_closure(closure, "StackedOptimizer.step")
        self._step()
        return cost

    def _step(self) -> None:
        self._check_count_room()
        if self._frozen_rows is not None:
            self.model.grad[self._frozen_rows] = 0
        if self._max_norms_held is not None:  # each model by its own norm (a frozen one's, zeroed, is 0: unchanged)
            clip_buffers([self.model.grad], self._max_norms_held, self.n_models)
        for region in self.regions:
            self.rule.update(region, region.state, self._hold(region), 1, self.steps_done)  # Adam's t = 1 + steps
        note_written(self._params)
        self._count_on()

    # -- checkpoints ----------------------------------------------------------------------
    def state_arrays(self) -> dict:
        """The rule's state, name → its (K, P) array (row k: model k's; a frozen model's row as its
        freeze left it), to read, not to write: `ManyTrainer` checks it finite as a `Trainer` checks
        its optimizer's (`Optimizer.non_finite_state`)."""
        return dict(self._state)

    def state_dict(self) -> dict:
        """Step count, per-model settings and frozen flags, and NumPy copies of the (K, P) state."""
        return {"class": type(self.rule).__name__, "t": self.t, "frozen": self._frozen.tolist(),
                "max_grad_norm": self.max_grad_norm,
                "settings": [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in r.settings.items()}
                             for r in self.regions],
                "state": {name: self._host_state(name) for name in self._state}}

    def _host_state(self, name: str) -> np.ndarray:
        """A NumPy copy of state ``name``, (K, P), a frozen model's row as its freeze kept it, in one host read
        (the frozen rows put in a device copy first: a read per frozen model and name was a sync each on a GPU)."""
        backend, array = self.model.backend, self._state[name]
        paused = [(k, rows[name]) for k, rows in self._paused.items()]
        if not paused:
            return host_copy(backend, array)
        array = array.copy()
        for k, row in paused:
            array[k] = row
        return backend.to_numpy(array)  # (a copy already: on the CPU, the array itself)

    def load_state_dict(self, state: dict) -> None:
        """Restore from `state_dict` (checked first, `check_state_dict`)."""
        self.check_state_dict(state)
        for name, a in self._state.items():
            a[...] = self.model.backend.asarray(state["state"][name])
        for region, saved in zip(self.regions, state["settings"]):
            per_model = {name for name, v in region.settings.items() if isinstance(v, np.ndarray)}
            region.settings.update({name: np.array(v, dtype=np.float64) if name in per_model else v
                                    for name, v in saved.items()})
            self._hold(region)
        self._set_max_grad_norms(self._check_max_grad_norms(state.get("max_grad_norm", [None] * self.n_models),
                                                            "optimizer state max_grad_norm"))  # (older states: None)
        self._frozen = np.array(state["frozen"], dtype=bool)
        self._frozen_changed()
        self._paused = {int(k): {name: a[k].copy() for name, a in self._state.items()}
                        for k in np.flatnonzero(self._frozen)}
        self.t = int(state["t"])

    def check_state_dict(self, state: dict) -> None:
        """Raise ValueError (a TypeError for a non-dict) unless ``state`` fits: the same rule, regions
        and shapes, K frozen flags, each setting K values the models' optimizers would take
        (`Optimizer.check_settings`), a step count ≥ 0. Nothing changes."""
        if not isinstance(state, dict):
            raise TypeError(f"optimizer state must be a dict, as state_dict() gives, got {type(state).__name__}")
        if state.get("class") != type(self.rule).__name__:
            raise ValueError(f"optimizer state is {state.get('class')}'s, this one is {type(self.rule).__name__}")
        missing = sorted({"t", "frozen", "settings", "state"} - set(state))
        if missing:
            raise ValueError(f"optimizer state has no {', '.join(missing)}")
        check_int(state["t"], "optimizer state t", low=0, expected="an integer ≥ 0 (the steps taken)")
        frozen, k = state["frozen"], self.n_models
        if not isinstance(frozen, list | tuple) or len(frozen) != k:
            raise ValueError(f"optimizer state frozen must be {k} flags (one per model), got {frozen!r}")
        for i, flag in enumerate(frozen):
            check_bool(flag, f"optimizer state frozen[{i}]")
        if "max_grad_norm" in state:  # (a state saved before max_grad_norm has none: every model unclipped)
            self._check_max_grad_norms(state["max_grad_norm"], "optimizer state max_grad_norm")
        if not isinstance(state["settings"], list | tuple) or len(state["settings"]) != len(self.regions):
            # (one set per model where the models' optimizers treat weights and other parameters alike, else two)
            saved = f"{counted(len(state['settings']), 'set')} of settings" \
                if isinstance(state["settings"], list | tuple) else f"settings {state['settings']!r}"
            raise ValueError(f"optimizer state has {saved} for {counted(len(self.regions), 'part')} of each row: "
                             "expected a list of one set (models whose optimizers set weights and other parameters "
                             "alike) or two (set apart, as by xdl.optim.param_groups(model, weight_decay) with a "
                             "weight decay ≠ 0); stack optimizers made as the saved ones were")
        if not isinstance(state["state"], dict) or set(state["state"]) != set(self._state):
            held = sorted(map(str, state["state"])) if isinstance(state["state"], dict) else state["state"]
            raise ValueError(f"optimizer state holds buffers {held!r}, {type(self.rule).__name__} keeps "
                             f"{sorted(self._state)}")
        for i, (region, saved) in enumerate(zip(self.regions, state["settings"])):
            self._check_saved_settings(region, saved, f"optimizer state settings[{i}]")
        for name, a in self._state.items():
            if tuple(np.shape(state["state"][name])) != a.shape:
                raise ValueError(f"optimizer state {name!r} has shape {np.shape(state['state'][name])}, "
                                 f"this one {a.shape}")


def _check_covers(stacked, optimizer: Optimizer, k: int) -> None:
    """Raise ValueError unless ``optimizer`` (``optimizers[k]``) holds every parameter of a model
    of the stack's architecture: the stacked update covers each model's whole row, so an optimizer
    of part of its model (a layer to fine-tune) would be silently widened to all of it."""
    params, want = optimizer.parameters(), [p for _, p in stacked.flat_order()]
    if sorted(tuple(p.shape) for p in params) != sorted(tuple(p.shape[1:]) for p in want):
        raise ValueError(f"optimizers[{k}] holds {len(params)} parameters ({sum(p.size for p in params)} values), a "
                         f"model of the stack {len(want)} ({stacked.data.shape[1]} values): a stacked optimizer "
                         "updates every parameter of every model; give each model an optimizer of all of its "
                         f"parameters ({type(optimizer).__name__}(model), or xdl.optim.param_groups(model, ...))")


def _settings_of(optimizer: Optimizer, k: int) -> tuple[dict, dict]:
    """``optimizers[k]``'s settings for its weights and for its other parameters (biases,
    batch-norm γ, β): the stacked update holds one set of each per model, so the groups holding
    one kind must agree (ValueError naming them otherwise)."""
    found = {}  # kind -> (group index, settings)
    for i, g in enumerate(optimizer.groups):
        held = {"weights" if p.role == "weight" else "other parameters" for p in g.params}
        for kind in [kind for kind in ("weights", "other parameters") if kind in held]:
            j, first = found.setdefault(kind, (i, g.settings))
            if first != g.settings:
                name = next(n for n in g.settings if g.settings[n] != first.get(n))
                raise ValueError(f"optimizers[{k}]: groups {j} and {i} both hold {kind}, with {name} "
                                 f"{first.get(name)!r} and {g.settings[name]!r}; a stacked optimizer keeps one set "
                                 "of settings per model for the weights and one for the other parameters (biases, "
                                 "batch-norm γ, β), as xdl.optim.param_groups splits them")
    weights = found.get("weights", found.get("other parameters"))[1]
    return dict(weights), dict(found.get("other parameters", (None, weights))[1])
