"""`StackedOptimizer`: K models' optimizers as one — one update per region for all K models.

The K models of a `xdl.nn.Stacked` share one (K, P) parameter buffer (row k = model k's flat
buffer, weights in columns [0, n_weights), biases and batch-norm γ, β after them). Each model
brings its own optimizer (the same rule, e.g. all `Adam`, with its own lr, β's, ε and weight
decay); the stacked optimizer keeps each hyperparameter as K values and updates a whole region of
columns for all K models in one call of the rule's fused update — one kernel launch on the GPU —
with each model's values (`xdl.ops.optim`). The optimizer state is (K, P) buffers alike.

A model can be frozen (`freeze`): its learning rate becomes 0 and its gradient row is zeroed
before each update, so the shared update leaves its weights exactly as they are (`unfreeze`
lets it train on).

As `xdl.optim.Optimizer`, the values an update reads live in device memory, so a captured step
(`xdl.cuda_graph`) reads the current ones: each region's K values per hyperparameter (``held``,
rewritten when `set_lr`, `freeze`, `unfreeze` or a resume changes them) and the step count (``steps_done``).
Freezing changes which rows the step zeroes: ``version`` counts such changes, and a loop that
captured its step captures it again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xdl.graph import require_not_capturing
from xdl.optim.optimizer import Optimizer, StepCount, _is_number, check_lr


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


class StackedOptimizer(StepCount):
    """One optimizer over a `Stacked` model, built from K ordinary optimizers, one per model (as
    ``config.build_optimizer(model_k)`` makes them): the same class, each with its own settings.

    ``lr`` is then K rates (`set_lr`); ``step()`` updates every model; ``t`` counts steps.
    """

    def __init__(self, stacked, optimizers):
        optimizers = list(optimizers)
        if len(optimizers) != stacked.n_models:
            raise ValueError(f"optimizers: {len(optimizers)} optimizers for a stack of {stacked.n_models} models; "
                             "give one per model")
        rules = {type(o).__name__ for o in optimizers}
        if len(rules) > 1:
            raise ValueError(f"optimizers: the models' optimizers must be one class, got {', '.join(sorted(rules))}")
        for k, o in enumerate(optimizers):
            if o.t:
                raise ValueError(f"optimizers[{k}] has taken {o.t} steps; stack fresh optimizers")
            if any(callable(g.settings["lr"]) for g in o.groups):
                raise ValueError(f"optimizers[{k}] has a per-step lr schedule; stacked models take their rates "
                                 "per epoch (set_lr)")
        self.model, self.rule, self._t, self.version = stacked, optimizers[0], 0, 0
        self.state_names = self.rule.state_names
        xp, n_weights = stacked.backend.xp, stacked.n_weights
        self._state = {name: xp.zeros_like(stacked.data) for name in self.state_names}
        self.steps_done = xp.zeros(1, dtype=np.int64)  # the step count on the device (Adam's t − 1)
        weights = [_settings_of(o, "weight") for o in optimizers]
        others = [_settings_of(o, "other") for o in optimizers]
        if weights == others or n_weights == stacked.data.shape[1]:  # one region: one launch per step
            bounds = [(0, stacked.data.shape[1], weights)]
        else:
            bounds = [(0, n_weights, weights), (n_weights, stacked.data.shape[1], others)]
        self.regions = [self._region(a, b, per_model) for a, b, per_model in bounds if b > a]
        self._frozen = np.zeros(stacked.n_models, dtype=bool)
        self._frozen_rows = None  # the frozen rows' indices on the device (step zeroes their gradients)
        for region in self.regions:
            self._hold(region)

    def _region(self, start, stop, per_model: list[dict]) -> _Region:
        settings = {}
        for name in per_model[0]:
            values = [s[name] for s in per_model]
            if _is_number(values[0]):
                settings[name] = np.array(values, dtype=np.float64)
            elif any(v != values[0] for v in values):  # a flag (nesterov): the K models share one rule
                other = next(v for v in values if v != values[0])
                raise ValueError(f"optimizers: {name} is {values[0]!r} for one model and {other!r} for another; "
                                 "stacked models share one update rule")
            else:
                settings[name] = values[0]
        cols = slice(start, stop)
        state = {name: a[:, cols] for name, a in self._state.items()}
        numbers = [name for name, value in settings.items() if isinstance(value, np.ndarray)]
        held = self.model.backend.xp.zeros((len(numbers), self.model.n_models), dtype=np.float64)
        hyperparameters = {**settings, **{name: held[i] for i, name in enumerate(numbers)}}
        return _Region(self.model.data[:, cols], self.model.grad[:, cols], [self.model.parameters()[0]], settings,
                       state, held, None, hyperparameters)

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
    def lr(self) -> np.ndarray:
        """The K learning rates (of the weights' region)."""
        return self.regions[0].settings["lr"].copy()

    def set_lr(self, lr) -> None:
        """Set the K learning rates (frozen models keep 0); a number sets every model's."""
        values = np.broadcast_to(np.asarray(lr, dtype=np.float64), (self.n_models,)) if np.ndim(lr) == 0 \
            else np.asarray(lr, dtype=np.float64)
        if values.shape != (self.n_models,):
            raise ValueError(f"lr: {values.size} values for a stack of {self.n_models} models")
        for k, value in enumerate(values):
            if not self._frozen[k]:
                check_lr(float(value))
        values = np.where(self._frozen, 0.0, values)
        for region in self.regions:
            region.settings["lr"] = values.copy()
            self._hold(region)  # now: a captured step reads it at its next replay

    def freeze(self, k: int, clear_state: bool = False) -> None:
        """Stop updating model k: its lr becomes 0 and its gradient row is zeroed at each step, so
        its weights stay exactly as they are. ``clear_state`` zeroes its optimizer state too (a
        diverged model's may hold NaN, which a zero rate would still spread)."""
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

    def unfreeze(self, k: int, lr: float) -> None:
        """Update model k again, at rate ``lr`` (its state as `freeze` left it): a resumed batch
        trains a model that had completed its epochs for the epochs added."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < self.n_models:
            raise IndexError(f"unfreeze: model {k!r} is not one of the {self.n_models} models (0 to {self.n_models - 1})")
        check_lr(float(lr))
        self._frozen[k] = False
        self._frozen_changed()
        for region in self.regions:
            region.settings["lr"][k] = float(lr)
            self._hold(region)

    def _frozen_changed(self) -> None:
        self._frozen_rows = self.model.backend.asarray(np.flatnonzero(self._frozen)) if self._frozen.any() else None
        self.version += 1  # a captured step zeroes the rows frozen when it was captured: capture again

    @property
    def frozen(self) -> np.ndarray:
        return self._frozen.copy()

    def zero_grad(self) -> None:
        self.model.grad.fill(0)

    def step(self) -> None:
        """One update of every model (frozen ones stay as they are)."""
        if self._frozen_rows is not None:
            self.model.grad[self._frozen_rows] = 0
        for region in self.regions:
            self.rule.update(region, region.state, self._hold(region), 1, self.steps_done)  # Adam's t = 1 + steps
        self._count_on()

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Step count, per-model settings and frozen flags, and NumPy copies of the (K, P) state."""
        to_numpy = self.model.backend.to_numpy
        return {"class": type(self.rule).__name__, "t": self.t, "frozen": self._frozen.tolist(),
                "settings": [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in r.settings.items()}
                             for r in self.regions],
                "state": {name: to_numpy(a).copy() for name, a in self._state.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore from `state_dict` (checked first, `check_state_dict`)."""
        self.check_state_dict(state)
        for name, a in self._state.items():
            a[...] = self.model.backend.asarray(state["state"][name])
        for region, saved in zip(self.regions, state["settings"]):
            region.settings.update({k: (np.asarray(v, dtype=np.float64) if isinstance(v, list) else v)
                                    for k, v in saved.items()})
            self._hold(region)
        self._frozen = np.asarray(state["frozen"], dtype=bool)
        self._frozen_changed()
        self.t = int(state["t"])

    def check_state_dict(self, state: dict) -> None:
        """Raise ValueError unless ``state`` fits: the same rule, regions and shapes. Nothing changes."""
        if state.get("class") != type(self.rule).__name__:
            raise ValueError(f"optimizer state is {state.get('class')}'s, this one is {type(self.rule).__name__}")
        if len(state["settings"]) != len(self.regions) or set(state["state"]) != set(self._state):
            raise ValueError("optimizer state does not fit this stacked optimizer (regions or buffers differ)")
        for name, a in self._state.items():
            if tuple(np.shape(state["state"][name])) != a.shape:
                raise ValueError(f"optimizer state {name!r} has shape {np.shape(state['state'][name])}, "
                                 f"this one {a.shape}")


def _settings_of(optimizer: Optimizer, role: str) -> dict:
    """An optimizer's settings for its weights (``role="weight"``) or its other parameters."""
    want = {id(p) for p in optimizer.parameters() if (p.role == "weight") == (role == "weight")}
    for g in optimizer.groups:
        if any(id(p) in want for p in g.params):
            return {name: value for name, value in g.settings.items()}
    return dict(optimizer.groups[0].settings)
