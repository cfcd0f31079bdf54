"""Provenance: what a training checkpoint was made with, and the check a resume makes against it.

A checkpoint records the run's provenance — the model's architecture, the loss, the optimizer
and its settings, the parameters each of its groups trains, the modules it runs in evaluation
mode, the trainer's seed, batch size, L2, L1 and schedule (by name, and by its rates at a
few counts, as each per-step lr), the callbacks by type, the model's dtype, and a digest of the
training and dev data — and `verify` compares it with the run
about to resume, naming the first thing that differs with both values, before anything in memory
changes.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from xdl.data.augment import Augment
from xdl.data.validation import pieces
from xdl.files import json_number, python_value
from xdl.init import canonical_name
from xdl.nn.architecture import describe
from xdl.nn.module import training_modes


def data_digest(X, y) -> dict:
    """Examples, features and a SHA-1 of the (host) arrays: equal digests, equal data. The bytes
    hashed are the arrays' in C order, fed a piece of rows at a time (`pieces`): an array in
    another order (a pandas frame's ``to_numpy()`` is in Fortran order) is copied a piece at a
    time, not whole (1× the set more at the start of a fit with `EarlyStopping`, `Checkpoint`
    or `fit_many`); the digest is the same."""
    h = hashlib.sha1()
    for array in (X, y):
        array = np.ascontiguousarray(array) if np.ndim(array) == 0 else np.asarray(array)
        h.update(str((array.dtype.str, array.shape)).encode())
        for start, stop in pieces(array):
            h.update(np.ascontiguousarray(array[start:stop]).data)
    return {"examples": int(len(X)), "features": int(np.prod(X.shape[1:])), "sha1": h.hexdigest()}


def _setting(value):
    """A JSON-able form of an optimizer setting (a schedule by its name)."""
    if callable(value):
        return getattr(value, "__name__", type(value).__name__)
    return python_value(value)


PROBED_COUNTS = (0, 1, 2, 3, 5, 10, 30, 100, 1000)  # where two schedules of one name are told apart


def _rates(schedule) -> list | None:
    """A schedule's rates at `PROBED_COUNTS` (a rate it gives none for, or one not finite, as its
    repr): a schedule of one's own is recorded by its name, which two lambdas, or a class made with
    other arguments, share — their rates differ."""
    if not callable(schedule):
        return None
    rates = []
    for count in PROBED_COUNTS:
        try:
            rate = float(schedule(count))
        except Exception:  # (one past the run's end, say: the run would name it when it comes)
            rate = None
        rates.append(rate if rate is None or math.isfinite(rate) else repr(rate))
    return rates


def as_saved(facts: dict) -> dict:
    """``facts`` as a checkpoint's JSON gives them back: a tuple is a list there (an optimizer's
    ``betas=(0.9, 0.99)``, a layer's ``shape=(8,)``), so the run that wrote it compares equal."""
    return json.loads(json.dumps(facts, default=json_number))


# the facts of the optimizer's groups, made again when a group is added within a run (`Trainer._note_added_groups`),
# and the start of the key of the schedules' rates, one per group
GROUP_FACTS = ("optimizer settings", "trained parameters")
RATES_FACT = "rates of the schedules"


# facts recorded since a checkpoint may have been written, with what its run had: a checkpoint of an xdl before
# l1 trained without it, so a resume with l1 > 0 is another run (not a fact it did not record, left unchecked)
ADDED_FACTS = {"l1": 0.0, "max_grad_norm": None}


def record(trainer, data: dict) -> dict:
    """The facts a checkpoint of ``trainer`` records and a resume must match, in their saved form
    (`as_saved`: compared with what a checkpoint read back holds); ``data`` holds the digests of the
    training (and dev) data."""
    try:
        architecture = describe(trainer.model)
    except TypeError:
        architecture = None  # a custom module: its parameter names and shapes are checked on load
    optimizer = trainer.optimizer
    return as_saved({
        "architecture": architecture,
        "loss": type(trainer.loss).__name__,
        "optimizer": type(optimizer).__name__,
        "optimizer settings": [{k: _setting(v) for k, v in g.items()} for g in trainer._settings],
        "max_grad_norm": optimizer.max_grad_norm,  # (the optimizer's, not a group's; older checkpoints: `ADDED_FACTS`)
        "trained parameters": trained_parameters(trainer.model, trainer.optimizer),
        "modules in evaluation": evaluation_modules(trainer.model),
        "seed": trainer.seed,
        "batch_size": trainer.batch_size,
        "l2": trainer.l2,
        "l1": trainer.l1,  # (a checkpoint of an xdl before l1 lacks it: `ADDED_FACTS`)
        # as given: a callback that sets the rate itself clears trainer.schedule, for a later fit too
        "schedule": _setting(trainer._given_schedule) if trainer._given_schedule is not None else None,
        f"{RATES_FACT} at counts {', '.join(map(str, PROBED_COUNTS))}": {
            "schedule": _rates(trainer._given_schedule), "lr": [_rates(g.get("lr")) for g in trainer._settings]},
        "callbacks": [type(cb).__name__ for cb in trainer.callbacks],
        # what each callback's saved best was measured on (another monitor's best would decide the stop)
        "monitors": [cb.monitor if isinstance(getattr(cb, "monitor", None), str) else None for cb in trainer.callbacks],
        "augment": None if trainer.augment is None else  # xdl's with its settings, a function by its name
        repr(trainer.augment) if isinstance(trainer.augment, Augment) else _setting(trainer.augment),
        "eval_train": trainer.eval_train,
        "dtype": str(trainer.model.dtype),  # (before the data, whose digest is of them in it)
        "data": data,
    })


def trained_parameters(model, optimizer) -> list[list[str]]:
    """Each optimizer group's parameters by the model's names, in the group's order: which train (a
    frozen one, left out by ``Optimizer(model)``, is in none) and where each one's state lies. A resume
    with another parameter frozen was told of the optimizer's buffer length at best, and where the
    sizes matched (BatchNorm's gamma frozen, then its beta) loaded one parameter's moments into the
    other without a word."""
    names = {id(p): name for name, p in model.named_parameters()}
    return [[names.get(id(p), f"(not the model's: shape {tuple(p.shape)})") for p in g.params]
            for g in optimizer.groups]


def evaluation_modules(model) -> list[str]:
    """The modules a fit runs in evaluation mode (`xdl.nn.module.training_modes`: a batch norm whose
    statistics stay fixed). A resume with other ones went on without a word, the statistics moving
    from then on."""
    return [name for (name, _), (_, training) in zip(model.named_modules(), training_modes(model)) if not training]


def verify(saved: dict, current: dict, path, names: tuple | None = None) -> None:
    """Raise ValueError naming the first fact of ``current`` that differs from ``saved``. ``names``:
    (the checkpoint's model's parameter and buffer names, this model's), where known — a parameter
    one run trained that the other's model does not have is a model that differs (a layer used twice
    or a weight tied in one of them: a shared parameter has one name, its first use's), not one frozen."""
    saved = {**ADDED_FACTS, **saved}
    for key, now in current.items():
        then = saved.get(key)
        if key == "architecture":  # an initializer by its one spelling (normal(10) is normal(10.0))
            then, now = _canonical_inits(then), _canonical_inits(now)
        if then == now or key not in saved:  # (a fact an older xdl did not record: not checked)
            continue
        if key == "data" and then is None:  # (a checkpoint saved by hand, from a fit that took no digest)
            continue
        if key == "architecture" and then and now and isinstance(then.get("layers"), list):
            layers = list(zip(then["layers"], now.get("layers", [])))
            i = next((i for i, (a, b) in enumerate(layers) if a != b), len(layers))
            a = then["layers"][i] if i < len(then["layers"]) else "(none)"
            b = now.get("layers", [])[i] if i < len(now.get("layers", [])) else "(none)"
            raise ValueError(f"resume: the model differs from the checkpoint's at layer {i}: "
                             f"checkpoint {_brief(a)}, this run {_brief(b)} ({str(path)!r})")
        if key == "optimizer settings" and isinstance(then, list) and len(then) == len(now):
            for g, (a, b) in enumerate(zip(then, now)):
                for name in sorted(set(a) | set(b)):
                    if a.get(name) != b.get(name):
                        raise ValueError(f"resume: optimizer setting {name!r} (group {g}) was {a.get(name)!r} in "
                                         f"the checkpoint, this run has {b.get(name)!r} ({str(path)!r})")
        if key == "trained parameters" and isinstance(then, list) and len(then) == len(now):
            was, has = {n for g in then for n in g}, {n for g in now for n in g}
            if was != has:
                only_then, only_now = sorted(was - has), sorted(has - was)
                cause = ("frozen parameters differ: freeze the ones the run froze, requires_grad = False, before "
                         "making the optimizer")
                if names is not None:  # (a name a model lacks: no freezing gives it back)
                    lacks = [n for n in only_then if n not in names[1]]
                    had = [n for n in only_now if n not in names[0]]
                    if lacks or had:
                        cause = (f"the models differ: {'this run' if lacks else 'the checkpoint'}'s model has no "
                                 f"parameter {(lacks or had)[0]!r} — a layer used twice or a weight tied in one "
                                 "model and not in the other (a shared parameter is named once, at its first use), "
                                 "or a parameter added or removed: build the model as the run did")
                raise ValueError(f"resume: the checkpoint's run trained {only_then or 'no other parameter'}, this "
                                 f"run's optimizer trains {only_now or 'no other parameter'} ({cause}) "
                                 f"({str(path)!r})")
        if key == "modules in evaluation":
            raise ValueError(f"resume: the checkpoint's run ran {then or 'no module'} in evaluation mode, this run "
                             f"{now or 'none'} (put the same ones in evaluation, .eval(), before resuming) "
                             f"({str(path)!r})")
        if key == "data":
            for part in ("train", "dev"):
                if (then or {}).get(part) != now.get(part):
                    raise ValueError(f"resume: the {part} data differ from the checkpoint's "
                                     f"({_data(then, part)} then, {_data(now, part)} now): the data set or "
                                     f"its split changed, or its labels' form (class indices or one-hot rows: "
                                     f"the same numbers, hashed as given; give them as the run did) "
                                     f"({str(path)!r})")
        raise ValueError(f"resume: {key} was {then!r} in the checkpoint, this run has {now!r} ({str(path)!r})")


def _canonical_inits(architecture):
    """``architecture`` (`describe`'s) with each layer's ``init`` in its one spelling (`canonical_name`)."""
    if not isinstance(architecture, dict) or not isinstance(architecture.get("layers"), list):
        return architecture
    return {**architecture, "layers": [
        {**layer, "config": {**layer["config"], "init": canonical_name(layer["config"]["init"])}}
        if isinstance(layer, dict) and isinstance(layer.get("config"), dict) and "init" in layer["config"] else layer
        for layer in architecture["layers"]]}


def _brief(layer) -> str:
    if isinstance(layer, dict):
        args = ", ".join(f"{k}={v!r}" for k, v in layer.get("config", {}).items())
        return f"{layer.get('class')}({args})"
    return str(layer)


def _data(digest, part) -> str:
    d = (digest or {}).get(part)
    return "none" if d is None else f"{d['examples']} examples × {d['features']} features, sha1 {d['sha1'][:10]}"
