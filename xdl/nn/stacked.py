"""K models of one architecture trained as one: `stack` them, `Stacked.model` takes one back out.

The K models' parameters are one (K, P) buffer whose row k is model k's own flat buffer (the same
layout, weights first), and each stacked layer's parameters are (K, …) views of it; gradients
likewise. Activations are (B, K, C): a dense layer is one batched product (`stacked_linear`), a
batch-norm layer sees a (B, K·C) matrix, elementwise layers need nothing new. What does not change
shapes may differ per model — initial weights, dropout rate, batch-norm momentum — and each
model's dropout masks are its own: the draw a model would make alone, keyed by its own seed.

>>> import numpy as np, xdl
>>> models = []
>>> for seed in (1, 2, 3):
...     xdl.seed(seed)
...     models.append(xdl.nn.mlp(4, [8], 3))
>>> stacked = stack(models)
>>> x = np.ones((5, 4), np.float32)
>>> stacked(x).shape  # (batch, models, outputs)
(5, 3, 3)
>>> bool(np.allclose(stacked(x).numpy()[:, 1], models[1](x).numpy()))
True
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from xdl import functions as F
from xdl.backend import SEEDS, array_to_numpy, host_copy, resolve_backend, thread_backend, to_numpy_together
from xdl.checking import is_gradient_checking
from xdl.data.validation import check_bool, check_list, check_number, check_width, standardized
from xdl.flat import writable
from xdl.functions.classification import softmax_array
from xdl.functions.batchnorm import layer_batch_norm
from xdl.functions.regularization import check_drop_rate, checked_mask_key
from xdl.functions.stacked import layer_stacked_dropout, layer_stacked_relu_dropout
from xdl.nn.architecture import build_on_host, describe, is_xdl_layer
from xdl.nn.layers import (BatchNorm, Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Softmax, Standardize, Tanh,
                           as_floating, checked_eps)
from xdl.nn.module import Module, checked_key
from xdl.nn.sequential import Sequential
from xdl.tensor import Parameter, Tensor, note_written, write_into_stack

ELEMENTWISE = (ReLU, LeakyReLU, Tanh, Sigmoid, Softmax)  # elementwise, or Softmax along an axis: shared
PER_MODEL = {"Dropout": ("rate",), "BatchNorm": ("momentum",), "Dense": ("init",)}  # may differ between models


class StackError(ValueError):
    """The models cannot be stacked (the message names the layer, the setting and both values)."""


def check_stackable(descriptions: list[dict]) -> None:
    """Raise `StackError` unless every description has the first one's architecture: the same
    layers, shapes and shared settings (only `PER_MODEL` settings may differ)."""
    first = descriptions[0]
    for k, d in enumerate(descriptions[1:], 1):
        if d.get("class") != "Sequential" or len(d["layers"]) != len(first["layers"]):
            raise StackError(f"model {k} has {len(d.get('layers', []))} layers, model 0 has {len(first['layers'])}")
        for i, (a, b) in enumerate(zip(first["layers"], d["layers"])):
            if a["class"] != b["class"]:
                raise StackError(f"layer {i} is {b['class']} in model {k}, {a['class']} in model 0")
            for key in sorted(set(a.get("config", {})) | set(b.get("config", {}))):
                if key not in PER_MODEL.get(a["class"], ()) and a["config"].get(key) != b["config"].get(key):
                    raise StackError(f"layer {i} ({a['class']}): {key} is {b['config'].get(key)!r} in model {k}, "
                                     f"{a['config'].get(key)!r} in model 0")


# what a stack's buffers and layers were made of (`stack`): set by hand, ``stack.n_models = 5`` split it from them
DERIVED = ("n_models", "n_weights", "descriptions")


class Stacked(Sequential):
    """K models as one: ``stacked(X)`` maps (B, n_features) — or (B, K, n_features) — to (B, K, outputs).

    ``data``/``grad``: the (K, P) parameter and gradient buffers (row k = model k's flat buffer);
    ``n_weights``: the number of weight columns at the start of each row (the rest are biases and
    batch-norm γ, β). Built by `stack`.
    """

    def __init__(self, layers, data, grad, n_weights: int, descriptions: list[dict]):
        Module.__init__(self)
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)
        object.__setattr__(self, "layers", list(layers))  # (registered one by one above: a list is not)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "grad", grad)
        for name, value in zip(DERIVED, (data.shape[0], int(n_weights), descriptions)):
            object.__setattr__(self, name, value)  # (bound past `__setattr__`, which refuses them)

    def __len__(self) -> int:
        return len(self.layers)

    def _pair(self, layer, after, x):
        """A ReLU followed by a keyed stacked Dropout in training (what fit_many runs) as
        `F.stacked_relu_dropout` (its unchecked form), as `Sequential` runs one model's pair; None for any
        other two layers."""
        if _stacked_fused(layer, after) and x.ndim == 3 and x.shape[1] == len(after.rates) and x.dtype.kind == "f":
            # (its rates and key checked where they were set: `StackedDropout.checked_settings`)
            return lambda: layer_stacked_relu_dropout(x, after.rates, after.random_key)
        return None

    def _empty_part(self) -> Sequential:
        """A `StackedPart`: a slice (``stack[1:]``, fit_many's network after a leading Standardize) runs
        each ReLU and keyed stacked dropout as one op, as the stack does — a plain Sequential's pairing
        knows one model's Dropout only, and ran them as two ops (two kernels each way on a GPU)."""
        part = StackedPart.__new__(StackedPart)
        Module.__init__(part)
        return part

    def __setstate__(self, state: dict) -> None:
        """A copy (pickle, deepcopy) copies every array apart, views too: each stacked parameter is
        made a (K, …) view of the copied (K, P) buffers again (its values written there first), in
        the row's layout (`model_state`'s)."""
        Module.__setstate__(self, state)
        for name in ("data", "grad"):  # (a read-only memory map, joblib's: the stack's own copy)
            object.__setattr__(self, name, writable(getattr(self, name)))
        columns = self._columns()
        for name, p in self.flat_order():
            data, grad = (a[:, columns[name]].reshape(p.shape) for a in (self.data, self.grad))
            data[...] = p.data
            grad[...] = 0 if p.grad is None else p.grad
            # bound past `Parameter.__setattr__`, which writes a stacked parameter's new values into the view it
            # holds (here the copy's own arrays, the old views' copies) and keeps that view
            object.__setattr__(p, "data", data)
            object.__setattr__(p, "grad", grad)

    def _columns(self) -> dict[str, slice]:
        """Each parameter's columns of a row (`row_columns`: the ordinary model's flat buffer)."""
        return row_columns((name, int(np.prod(p.shape[1:]))) for name, p in self.flat_order())

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the (K, P) gradient buffer; ``set_to_none`` as `Module.zero_grad` takes it (PyTorch's)."""
        check_bool(set_to_none, "zero_grad: set_to_none")
        self.grad.fill(0)

    def append(self, layer):
        """Refused: a stack's layers are its K models' (`stack`), and ``model(k)``, ``model_state`` and
        ``fit_many``'s results rebuild each model from its description — a layer appended (Sequential's
        `append`, inherited) ran in the stack's forward only, so the stack computed what no model did."""
        raise TypeError(f"Stacked: a layer cannot be added to a stack of {self.n_models} models (model(k) would "
                        "not have it): add it to each model and stack them again")

    def extend(self, layers):
        """Refused, as `append`."""
        self.append(layers)

    def __setattr__(self, name, value) -> None:
        """Refused for a held layer's name, as `append`: ``stack[i] = layer`` (Sequential's ``__setitem__``,
        inherited, comes here) or ``setattr(stack, "1", layer)`` (PyTorch's replace-by-name) put an
        ordinary layer among the stacked ones — run on (K, m, n) inputs, or one no model(k) had.

        ``stack.data = x`` / ``stack.grad = g``, the (K, P) buffers themselves rebound by hand, are written into
        them (`write_into_stack`), as a stacked parameter's ``p.data = x`` is: rebound, the layers' parameters
        stayed views of the old buffers, so the forward read the old values and ``row``, ``model(k)`` and
        ``state_dict`` the new (the stack split from its models).

        ``n_models``, ``n_weights`` and ``descriptions`` (`DERIVED`), what the buffers and layers were made of,
        are refused: set by hand, ``stack.n_models = 5`` on a stack of 3 made ``model(4)`` fail with "list index
        out of range" and ``set_random_key`` ask for 5 seeds, ``n_weights`` moved the columns a
        `StackedOptimizer` decays as weights, and ``descriptions`` rebuilt other models than the rows held."""
        if "layers" in self.__dict__ and name.isdigit() and int(name) < len(self.layers):
            raise TypeError(f"Stacked: a layer of a stack of {self.n_models} models cannot be replaced (model(k) "
                            "would not have it): change each model and stack them again")
        if name in DERIVED:
            raise AttributeError(f"Stacked: {name} is what the stack of {self.n_models} models was made of, not a "
                                 "setting: stack the models again (xdl.nn.stack) for another")
        # (the constructor binds them past this; ``stack.grad += g`` comes here with the array it holds)
        if name in ("data", "grad") and name in self.__dict__ and value is not self.__dict__[name]:
            write_into_stack(self.__dict__[name], name, value, self.backend,
                             f"a Stacked model's {name} is its (K, P) buffer, whose views its parameters are")
            if name == "data":
                note_written(self.parameters())  # (as `set_row`'s)
            return
        super().__setattr__(name, value)

    def set_random_key(self, seed, step: int = 0, steps_done=None) -> None:
        """Key the dropout masks of the next training passes: ``seed`` is one seed per model (model
        k then draws the masks it would draw alone keyed by ``seed[k]``), or None for the backend's
        generator. ``steps_done``: a step counter in device memory, as `Module.set_random_key`."""
        # (one seed for all, or one each; each as a Python int: NumPy would make 5 beside 2**63 + 7 a float)
        seeds = None if seed is None else [seed] * self.n_models if np.ndim(seed) == 0 else list(seed)
        if seeds is not None and len(seeds) != self.n_models:
            raise ValueError(f"set_random_key: seed must be one seed or {self.n_models} (one per model), got {len(seeds)}")
        if seeds is not None:  # each an integer in [0, 2**64), as a model's alone (`checked_key`): Python ints
            # in range at a glance, as fit_many's eager step gives them each step (`checked_key` per seed was
            # 2·K checks a step: an eager GPU step's one host cost growing with K); any other kind one by one
            if set(map(type, seeds)) <= {int} and min(seeds) >= 0 and max(seeds) < SEEDS:
                step = checked_key(seeds[0], step)[1]
            else:
                seeds = [checked_key(s, step)[0] for s in seeds]
            step = int(step)  # (checked with the seeds)
        extra = () if steps_done is None else (steps_done,)
        for stream, module in enumerate(self._each_module()):
            if module.draws_random:  # (past `__setattr__`, as `Module.set_random_key` sets a key)
                object.__setattr__(module, "random_key",
                                   None if seeds is None else (tuple(seeds), stream, step, *extra))

    # -- one model at a time ------------------------------------------------------------------
    def model_state(self, k: int, row: dict | None = None) -> dict[str, np.ndarray]:
        """Model k's state dict, named as its ordinary model names it (NumPy arrays: views of one
        host copy of the row), from its current state or from ``row`` (a `row` copy taken earlier)."""
        self._check_index(k, "model_state")
        row = self.row(k) if row is None else row
        to_numpy, state, columns = self.backend.to_numpy, {}, self._columns()
        data = to_numpy(row["data"])  # one copy to the host, then views of it
        for name, p in self.flat_order():
            state[name] = data[columns[name]].reshape(p.shape[1:])
        names = [name for name, _ in self.named_buffers()]  # (the statistics: one host read per dtype)
        state.update(zip(names, to_numpy_together(self.backend, row["buffers"])))
        return state

    def _host_parameters(self, params) -> list[np.ndarray]:
        """NumPy views of ``params``' columns of one host copy of the (K, P) buffer (as `row` and `model_state`
        read it): one host read, not one per parameter (a stack's parameters lie in no flat buffer)."""
        host, columns = host_copy(self.backend, self.data), self._columns()
        names = {id(p): name for name, p in self.flat_order()}
        return [host[:, columns[names[id(p)]]].reshape(p.shape) for p in params]

    def description(self, k: int) -> dict:
        """Model k's architecture as the stack holds it now: its description when it was stacked, each
        layer's settings read again from the stacked layer (`_model_settings`: a rate, a momentum, an ε or
        a slope set on the stack since), as `describe` reads an ordinary model's settings as they are now."""
        self._check_index(k, "description")
        described = self.descriptions[k]
        layers = [{**d, "config": {**d.get("config", {}), **_model_settings(layer, k)}}
                  for d, layer in zip(described["layers"], self.layers, strict=True)]
        return {**described, "layers": layers}

    def model(self, k: int, row: dict | None = None) -> Module:
        """Model k as an ordinary model, with the stack's settings as they are now (`description`: its own
        dropout rate and batch-norm momentum among them), its modules' modes, frozen parameters, and its
        current weights and statistics (or those of ``row``): ``xdl.save``-able, ``predict``-able."""
        self._check_index(k, "model")
        model = build_on_host(self.description(k), self.dtype)
        model.load_state_dict(self.model_state(k, row))
        stacked = dict(self.named_parameters())
        for name, p in model.named_parameters():  # frozen where the stack's is (as the models were)
            p.requires_grad = stacked[name].requires_grad
        for (_, mine), (_, its) in zip(self.named_modules(), model.named_modules(), strict=True):
            its.training = mine.__dict__.get("training", True)  # (the flag, not a `mode_here` block's mode)
        model.predicts = self.predicts
        model.feature_names_in_ = self.feature_names_in_  # (a frame's columns it was fitted on)
        return model.to(self.backend)

    def predict_proba(self, X, batch_size: int = 1024) -> np.ndarray:
        """Each model's class probabilities, (m, K, C): a softmax over each model's outputs (which
        a stack ends in, where its models do, is not applied again). Classifiers of classes only:
        take a model of another kind out (`model`) to predict with it."""
        if self.predicts not in (None, "classes"):
            raise ValueError(f"predict_proba: a stack predicts each model's classes; these models predict "
                             f"{self.predicts}: take one out, stacked.model(k), and predict with it")
        def probabilities_of(out, probabilities):  # each batch's as it comes (`Module._forward_all`'s keep)
            return out if probabilities else softmax_array(np, out.astype(np.float64)).astype(out.dtype)
        return self._forward_all(X, batch_size, probabilities_of)

    def predict(self, X, batch_size: int = 1024) -> np.ndarray:
        """Each model's classes, (m, K): the argmax over its own outputs (not over the models), as
        the logits order them (the softmax keeps their order, but float32 probabilities of close
        logits tie, and the argmax of a tie is the first class)."""
        if self.predicts not in (None, "classes"):
            return self.predict_proba(X, batch_size)  # (refused there, naming what the models predict)
        return self._forward_all(X, batch_size, lambda out, _: out.argmax(axis=-1))

    def to(self, backend):
        """Refused: a stack's parameters are views of its (K, P) buffer; `stack(models, backend)`
        places a stack where it is to live."""
        raise TypeError("a Stacked model cannot move: stack the models onto the backend instead, "
                        "stack(models, backend)")

    def astype(self, dtype):
        """Itself when it has ``dtype``; another is refused, as `to` (converting would cut the
        parameters from the (K, P) buffer): stack models of that dtype."""
        if np.dtype(dtype) == self.data.dtype:
            return self
        raise TypeError(f"a Stacked model cannot change dtype ({self.data.dtype} → {np.dtype(dtype)}): its parameters "
                        "are views of its (K, P) buffer; stack models of that dtype (fit_many(..., dtype=...))")

    def _check_index(self, k, what: str) -> None:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < self.n_models:
            raise IndexError(f"{what} {k!r}: a stack of {self.n_models} models has models 0 to {self.n_models - 1}")

    def row(self, k: int) -> dict:
        """A copy of everything model k holds (its parameter row and statistics), for `set_row`."""
        self._check_index(k, "row")  # (-1 too: model(-1) and freeze(-1) refuse it)
        return {"data": self.data[k].copy(), "buffers": [a[k].copy() for _, a in self.named_buffers()]}

    def set_row(self, k: int, row: dict) -> None:
        """Put back what `row` copied: model k's weights and statistics as they were (checked
        whole first: a row without its statistics wrote the weights, then raised)."""
        self._check_index(k, "set_row")
        buffers = [a for _, a in self.named_buffers()]
        if not isinstance(row, dict) or set(row) != {"data", "buffers"} or len(row["buffers"]) != len(buffers) or \
                tuple(np.shape(row["data"])) != self.data.shape[1:] or \
                any(tuple(np.shape(saved)) != a.shape[1:] for saved, a in zip(row["buffers"], buffers)):
            raise ValueError(f"set_row: row must be what row(k) gives — 'data' of shape {self.data.shape[1:]} and "
                             f"'buffers', {len(buffers)} arrays of model k's statistics")
        # each part as this stack's array: a host row (a checkpoint's, `to_numpy`'s) written into CuPy's row view
        # is `fill`, which takes a scalar only ("non-scalar numpy.ndarray cannot be used for fill")
        own = self.backend.own
        self.data[k] = own(row["data"])
        note_written(self.parameters())
        for (_, a), saved in zip(self.named_buffers(), row["buffers"]):
            a[k] = own(saved)

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))  # (PyTorch's form)
        return f"Stacked({self.n_models} models,\n{inner}\n)"


def stack(models, backend=None) -> Stacked:
    """One `Stacked` model from K ordinary models of the same architecture (`Sequential` models on
    one backend; only their initial weights, dropout rates and batch-norm momenta may differ); their
    current weights and statistics are copied in, and a parameter frozen in all of them stays
    frozen, each module's mode, what they predict and the frame columns they were fitted on the
    models' (the same in each: `check_same_as_model_0`). A `StackError` names the first difference.

    ``backend`` (a `Backend` or its name; default the models'): where the stack lives. Models built on the
    host and stacked onto the GPU cost one upload of the (K, P) buffer, not one per parameter."""
    models = check_list(models, "stack: models", "xdl.nn.Sequential")  # (`stack(5)`: "'int' object is not iterable")
    if not models:
        raise StackError("stack: no models (K = 0)")
    for k, m in enumerate(models):  # row k is model k's flat buffer: the layout of a Sequential's layers
        if type(m) is not Sequential:  # (a subclass has its own forward, which the stack would not run)
            raise StackError(f"stack: models[{k}] is a {type(m).__name__}; stack takes ordinary Sequential models "
                             "(xdl.nn.Sequential, as xdl.nn.mlp builds them), even for one layer")
    for k, m in enumerate(models):  # a layer of one's own has no description, nor a stacked form
        own = next((layer for layer in m.layers if not is_xdl_layer(layer)), None)
        if own is not None:
            raise StackError(f"stack: models[{k}] has a {type(own).__name__} layer, which cannot be stacked (xdl's "
                             "layers only)")
    for k, m in enumerate(models):  # a stacked layer is one position's: a layer with state used twice (its
        seen = {}                   # parameters, its dropout's draws per call) or a tied weight has no stacked form
        for i, layer in enumerate(m.layers):
            stateful = layer.draws_random or bool(layer.parameters()) or any(True for _ in layer.named_buffers())
            for part in ((layer,) if stateful else ()) + tuple(layer.parameters()):
                if id(part) in seen:
                    what = "itself" if part is layer else "its parameters"
                    raise StackError(f"stack: models[{k}]'s layer {i} shares {what} with layer {seen[id(part)]} (a "
                                     "layer used twice, a tied weight): stacked models share nothing between layers")
                seen[id(part)] = i
    descriptions = [describe(m) for m in models]
    check_stackable(descriptions)
    dtypes = {np.dtype(m.dtype) for m in models}
    if len(dtypes) > 1:
        raise StackError(f"stack: the models have different dtypes ({', '.join(sorted(map(str, dtypes)))})")
    for k, m in enumerate(models[1:], 1):  # the (K, P) buffer is assembled with one array library
        if m.backend is not models[0].backend:
            raise StackError(f"stack: model {k} lives on backend {m.backend.name!r}, model 0 on "
                             f"{models[0].backend.name!r}; move them to one first (model.to(...))")
    frozen = [{name for name, p in m.named_parameters() if not p.requires_grad} for m in models]
    for k, names in enumerate(frozen[1:], 1):  # one stacked parameter trains for all K models or for none
        if names != frozen[0]:
            name = sorted(names ^ frozen[0])[0]
            raise StackError(f"stack: parameter {name} is {'frozen' if name in names else 'trainable'} in model {k}, "
                             f"{'frozen' if name in frozen[0] else 'trainable'} in model 0 (requires_grad); a stacked "
                             "parameter is frozen in every model or in none")
    check_same_as_model_0(models)
    first, source = models[0], models[0].backend
    backend = source if backend is None else resolve_backend(backend, "stack")
    order = first.flat_order()
    columns = row_columns((name, p.size) for name, p in order)
    n_weights = sum(p.size for _, p in order if p.role == "weight")
    width = sum(p.size for _, p in order)
    data = source.xp.empty((len(models), width), dtype=first.dtype)  # assembled where the models are
    for k, model in enumerate(models):
        for name, p in model.flat_order():
            data[k, columns[name]] = p.data.reshape(-1)
    data = backend.own(data)  # one upload when the models are elsewhere
    grad = backend.xp.zeros_like(data)

    def view(buffer, name, p):  # (K, *p.shape), a view of the rows of ``buffer``
        return buffer[:, columns[name]].reshape(len(models), *p.shape)

    layers = []
    with thread_backend(backend):  # the stacked layers' buffers are made on the stack's backend
        for i, layer in enumerate(first.layers):
            named = {n.split(".", 1)[1]: p for n, p in order if n.split(".", 1)[0] == str(i)}
            params = {n: _parameter(view(data, f"{i}.{n}", p), view(grad, f"{i}.{n}", p), p, n, backend)
                      for n, p in named.items()}
            same = [m.layers[i] for m in models]
            layers.append(_stacked_layer(layer, same, params))
    stacked = Stacked(layers, data, grad, n_weights, descriptions)
    kinds = {m.predicts for m in models}  # (None and "classes" alike: `check_same_as_model_0`)
    stacked.predicts = kinds.pop() if len(kinds) == 1 else None  # what each model taken out predicts
    stacked.feature_names_in_ = first.feature_names_in_  # (the frame's columns X is read by, each model's)
    for (_, mine), (_, its) in zip(stacked.named_modules(), first.named_modules(), strict=True):
        mine.training = its.__dict__.get("training", True)  # each module in the mode the models' is in
    return stacked


def check_same_as_model_0(models) -> None:
    """Raise `StackError` unless every model is as model 0 in what a stack holds once for all K: each
    module's mode (one stacked layer runs in one), what the outputs predict (None is classes) and the
    frame columns it was fitted on — what each `Stacked.model` takes back out."""
    first = models[0]
    modes = [(name, m.__dict__.get("training", True)) for name, m in first.named_modules()]
    for k, model in enumerate(models[1:], 1):
        for (name, training), (_, module) in zip(modes, model.named_modules(), strict=True):
            if module.__dict__.get("training", True) != training:
                where = f"layer {name}" if name else "the model"
                raise StackError(f"stack: {where} is in {_mode_name(not training)} mode in model {k}, in "
                                 f"{_mode_name(training)} mode in model 0: a stacked layer runs in one mode; set "
                                 "every model's (model.train() or model.eval())")
        if (model.predicts or "classes") != (first.predicts or "classes"):
            raise StackError(f"stack: model {k} predicts {model.predicts or 'classes'}, model 0 "
                             f"{first.predicts or 'classes'} (Module.predicts): a stack's models predict one kind")
        if model.feature_names_in_ != first.feature_names_in_:
            raise StackError(f"stack: model {k} was fitted on {_columns_named(model.feature_names_in_)}, model 0 "
                             f"on {_columns_named(first.feature_names_in_)} (feature_names_in_): the stack reads one "
                             "X for all")


def _mode_name(training: bool) -> str:
    return "training" if training else "evaluation"


def _columns_named(names) -> str:
    return "no data frame" if names is None else f"columns {list(names)}"


def row_columns(sizes) -> dict[str, slice]:
    """name → its columns of a stacked (K, P) row, for ``(name, size)`` pairs in the row's order —
    an ordinary model's flat buffer order (`Module.flat_order`): what row k holds of model k."""
    columns, at = {}, 0
    for name, size in sizes:
        columns[name], at = slice(at, at + size), at + size
    return columns


def _parameter(data, grad, like, name, backend) -> Parameter:
    """A stacked parameter: (K, …) views of the stack's buffers, with ``like``'s role and
    requires_grad (a frozen one stays frozen), marked as the stack's (`xdl.flat.check_packable`
    refuses to pack it out of the buffer)."""
    p = Parameter(data, backend=backend, name=name)
    p.grad, p.role, p.requires_grad, p._stacked = grad, like.role, like.requires_grad, True
    return p


def _stacked_layer(layer, same: list, params: dict):
    """The stacked form of ``layer`` (the first model's; ``same``: every model's), on ``params``;
    the layers' statistics are read on the host, whatever backend holds them."""
    if isinstance(layer, Dense):
        return StackedDense(params["weight"], params.get("bias"))
    if isinstance(layer, BatchNorm):
        means, variances = (np.stack([array_to_numpy(getattr(m, name)) for m in same])
                            for name in ("running_mean", "running_var"))
        return StackedBatchNorm(params["gamma"], params["beta"], means, variances, [m.momentum for m in same], layer.eps)
    if isinstance(layer, Dropout):
        return StackedDropout([m.rate for m in same])
    if isinstance(layer, Standardize):
        return StackedStandardize(np.stack([array_to_numpy(m.mean) for m in same]),
                                  np.stack([array_to_numpy(m.scale) for m in same]))
    if isinstance(layer, Softmax):  # its axis counts a model's (B, C) axes; stacked they are (B, K, C)
        if layer.axis not in (-2, -1, 0, 1):
            raise StackError(f"stack: Softmax(axis={layer.axis}): a model's activations here are (batch, features), "
                             "axis 0 or 1 (-2 or -1)")
        return Softmax(axis=-1 if layer.axis in (-1, 1) else 0)
    if isinstance(layer, ELEMENTWISE):
        return type(layer)(**layer.current_config())
    raise StackError(f"stack: {type(layer).__name__} layers cannot be stacked yet")


def _model_settings(layer, k: int) -> dict:
    """Model k's settings of a stacked ``layer``, named as its ordinary layer's config names them: a stacked
    layer's own (`model_settings`), a shared elementwise layer's as it holds them now (a LeakyReLU's slope);
    none for Softmax (its axis counts the stack's (B, K, C) axes: the model's own is its description's)."""
    if isinstance(layer, StackedDropout | StackedBatchNorm):
        return layer.model_settings(k)
    if isinstance(layer, ELEMENTWISE) and not isinstance(layer, Softmax):
        return layer.current_config()
    return {}


class StackedPart(Sequential):
    """Some of a `Stacked`'s layers, shared with it (a slice: ``stack[1:]``), run as the stack runs
    them — its ReLU and stacked dropout pairs as one op."""

    _pair = Stacked._pair


def _stacked_fused(layer, after) -> bool:
    """Whether ``layer`` then ``after`` run as one op: a ReLU before a keyed stacked dropout with a
    rate above 0 in training (`xdl.nn.sequential`'s pair, stacked), whose pair `stacked_relu_dropout`
    computes bit for bit in one kernel each way. (Over floating (B, K, C) activations: a ReLU of
    X itself, where a model opens on it, runs alone.)"""
    return (type(layer) is ReLU and type(after) is StackedDropout and after.training and after.rates.any()
            and after.random_key is not None)


def each_models(x, k: int):
    """A shared (B, C) input — X itself, where a stack's first layers keep it shared (`StackedDense`
    takes it so) — as each of the K models' own, (B, K, C) (its gradient the K models' summed), for
    a layer that computes per model: a model opening on Dropout or BatchNorm sees X alone."""
    return F.stack([x] * k, axis=1) if x.ndim == 2 else x


class StackedDense(Module):
    """K dense layers: Y[:, k] = X[:, k]·W[k] + b[k]; X (B, K, n_in) or (B, n_in) shared."""

    def __init__(self, weight: Parameter, bias: Parameter | None):
        super().__init__()
        self.weight, self.bias = weight, bias
        self.in_features, self.out_features = weight.shape[1], weight.shape[2]

    def forward(self, x):
        return F.stacked_linear(as_floating(x, self.weight.dtype), self.weight, self.bias)

    def __repr__(self) -> str:
        return f"StackedDense({self.weight.shape[0]} × {self.in_features}→{self.out_features})"


def _checked_momenta(layer, momenta):
    """A stacked batch norm's momentum as its forward reads it: one number in [0, 1) for all K models,
    or one per model (K numbers, or the K·C columns' it keeps: read back to the host once, here, a
    model's C columns alike — its `BatchNorm` has one, which `Stacked.model` gives it), each in [0, 1)
    — kept as one float where all are equal, else as one float64 per column of the (B, K·C) matrix,
    on the device once (a captured step copies nothing from the host); else an error naming it
    (unchecked, a momentum of 1.5 set by hand extrapolated the statistics)."""
    k, c = layer.gamma.shape
    if np.ndim(momenta) == 0:
        return check_number(momenta, "StackedBatchNorm: momentum", "a number in [0, 1)", lambda m: 0 <= m < 1)
    values = array_to_numpy(momenta)
    if values.dtype.kind not in "iuf" or values.shape not in ((k,), (k * c,)) \
            or not ((values >= 0) & (values < 1)).all():  # (a NaN is in no range)
        raise ValueError(f"StackedBatchNorm: momentum must be a number in [0, 1), or one per model ({k}) or per "
                         f"column ({k * c}), each in [0, 1); got {values.dtype} of shape {values.shape}"
                         + (f": {values.tolist()}" if values.size <= 8 else ""))
    values = values.astype(np.float64)
    if values.shape == (k * c,):  # one per model: model(k) takes model k's out as a BatchNorm's one momentum
        columns = values.reshape(k, c)
        differs = (columns != columns[:, :1]).any(axis=1)
        if differs.any():
            model = int(np.argmax(differs))
            raise ValueError(f"StackedBatchNorm: momentum per column must be one per model (a model's BatchNorm "
                             f"has one): model {model}'s {c} columns differ: {columns[model].tolist()}")
    if (values == values[0]).all():
        return float(values[0])
    return layer.gamma.backend.asarray(np.repeat(values, c) if values.shape == (k,) else values)


class StackedBatchNorm(Module):
    """K batch-norm layers over (B, K, C) activations: to the kernels, one over a (B, K·C) matrix.
    ``momentum`` and ``eps`` are checked where they are set (`checked_settings`), as `BatchNorm`'s."""

    min_batch = 2
    checked_settings = MappingProxyType({
        "momentum": _checked_momenta,
        "eps": lambda layer, eps: checked_eps(eps, layer.dtype, "StackedBatchNorm: eps"),
    })

    def __init__(self, gamma, beta, running_means, running_vars, momenta, eps):
        """``running_means``/``running_vars``: (K, C) host arrays; ``momenta``: K numbers."""
        super().__init__()
        self.gamma, self.beta = gamma, beta
        self.add_buffer("running_mean", running_means, gamma.dtype)
        self.add_buffer("running_var", running_vars, gamma.dtype)
        self.momentum, self.eps = momenta, eps  # (float64 per column: `xdl.functions.batch_norm`'s)

    def forward(self, x):
        k, c = self.gamma.shape
        if x.shape[1:] not in ((c,), (k, c)):  # (X itself, where a model opens on it: as `BatchNorm`, not "reshape")
            raise ValueError(f"StackedBatchNorm: input of shape {tuple(x.shape)}; expected (B, {c}) or (B, {k}, {c}) "
                             f"for {k} models of {c} features")
        x = each_models(as_floating(x, self.gamma.dtype), k)  # (integer features: in its dtype, as `BatchNorm`)
        b = x.shape[0]
        # γ and β (K, C) as they are: leaves, whose gradients the backward adds straight into their buffers
        y = layer_batch_norm(x.reshape(b, k * c), self.gamma, self.beta,
                             self.running_mean.reshape(k * c), self.running_var.reshape(k * c), self.training,
                             self.momentum, self.eps)
        return y.reshape(b, k, c)

    def model_settings(self, k: int) -> dict:
        """Model k's momentum and ε, as a `BatchNorm`'s config names them (`Stacked.description`)."""
        momentum = self.momentum
        if np.ndim(momentum):  # one float64 per column, a model's columns alike (`_checked_momenta`)
            momentum = float(array_to_numpy(momentum)[k * self.gamma.shape[1]])
        return {"momentum": momentum, "eps": self.eps}

    def __repr__(self) -> str:
        return f"StackedBatchNorm({self.gamma.shape[0]} × {self.gamma.shape[1]})"


def _checked_rates(layer, rates) -> np.ndarray:
    """A stacked dropout's rates: one per model (K, as many as it was made with), each in `check_drop_rate`'s
    range, as a read-only float64 copy (one written in place went into the kernels' rates but not into the
    unkeyed masks' columns, made once from the rates they were made with); else an error naming them."""
    values = array_to_numpy(rates) if np.ndim(rates) else np.asarray(rates)
    k = len(layer.__dict__["rates"]) if "rates" in layer.__dict__ else None
    if values.ndim != 1 or len(values) != (k or len(values)) or not len(values) or values.dtype.kind not in "iuf":
        raise ValueError(f"StackedDropout: rates must be {k or 'K'} numbers (one per model), got {values.dtype} "
                         f"of shape {values.shape}")
    values = values.astype(np.float64)  # (a copy)
    for i, rate in enumerate(values):
        check_drop_rate(float(rate), f"StackedDropout: rates[{i}]")
    values.flags.writeable = False
    return values


def _checked_stacked_key(layer, key):
    """A stacked dropout's key: None, or (seeds, stream, step[, steps_done]) with one integer seed per model,
    the seeds kept as a tuple (the backward reads them again); else an error naming it."""
    if key is None:
        return None
    key = checked_mask_key(key, "StackedDropout: random_key", stacked=True)
    if len(key[0]) != len(layer.rates):
        raise ValueError(f"StackedDropout: random_key must hold {len(layer.rates)} seeds (one per model), got "
                         f"{len(key[0])}")
    return (tuple(key[0]), *key[1:])


class StackedDropout(Module):
    """K inverted-dropout layers with their own rates; model k's mask is the one it draws alone.
    ``rates`` are checked where they are set (`checked_settings`), as `Dropout`'s rate."""

    draws_random = True
    checked_settings = MappingProxyType({"rates": _checked_rates, "random_key": _checked_stacked_key})

    def __init__(self, rates):
        super().__init__()
        self.rates = rates
        self.random_key = None  # (seeds, stream, step), set by Stacked.set_random_key
        # (backend, dtype) -> (the rates they were made from, (1, K, 1) rates, 1/(1 − rate_k)), made once (no copy
        # per step) for the rates set now
        self._columns = {}

    def forward(self, x):
        if not self.training or not self.rates.any():
            return x
        if x.dtype.kind != "f":  # (X itself, where a model opens on it: refused as `Dropout` refuses it)
            raise TypeError(f"StackedDropout: expected a floating input, got {x.dtype}; convert it with "
                            "x.astype(model.dtype)")
        x = each_models(x, len(self.rates))
        if x.ndim != 3 or x.shape[1] != len(self.rates):
            raise ValueError(f"StackedDropout: input of shape {tuple(x.shape)}; expected (B, C) or "
                             f"(B, {len(self.rates)}, C) for {len(self.rates)} models")
        if self.random_key is not None:  # (rates and key checked where they were set: `checked_settings`)
            return layer_stacked_dropout(x, self.rates, self.random_key)
        if is_gradient_checking():  # an unkeyed mask is drawn anew at each call: J would be no one function
            return x                # (each model's Dropout is the identity there too)
        backend, key = x.backend, (id(x.backend), x.dtype)
        if self._columns.get(key, (None,))[0] is not self.rates:  # (rates set since: made again)
            self._columns[key] = (self.rates, backend.asarray(self.rates[None, :, None]),
                                  backend.asarray((1.0 / (1.0 - self.rates))[None, :, None].astype(x.dtype)))
        _, rates, scales = self._columns[key]
        scaled = (backend.rng.random(x.shape, dtype=x.dtype) >= rates).astype(x.dtype)
        scaled *= scales
        return x * Tensor(scaled, backend=backend)  # y = x·d/(1 − rate_k), as each model's Dropout

    def model_settings(self, k: int) -> dict:
        """Model k's rate, as a `Dropout`'s config names it (`Stacked.description`)."""
        return {"rate": float(self.rates[k])}

    def __repr__(self) -> str:
        return f"StackedDropout(rates={self.rates.tolist()})"


class StackedStandardize(Module):
    """K standardizations: model k's (x − mean[k]) / scale[k], of a shared input x (B, C) or of
    its own x[:, k] of an input (B, K, C); → (B, K, C). As `Standardize`, in float64 from float64
    statistics, returned in x's floating dtype."""

    float64_buffers = ("mean", "scale")

    def __init__(self, means, scales):
        super().__init__()
        self.features = means.shape[1]
        self.add_buffer("mean", means, np.float64)
        self.add_buffer("scale", scales, np.float64)

    def forward(self, x):
        k, c = self.mean.shape
        if x.shape[1:] not in ((c,), (k, c)):
            raise ValueError(f"StackedStandardize: input of shape {tuple(x.shape)}; expected (B, {c}) or (B, {k}, {c}) "
                             f"for {k} models of {c} features")
        dtype = np.dtype(np.float32) if x.dtype.kind != "f" else x.dtype  # (integers: float32 out, as `Standardize`'s)
        x = as_floating(x, np.float64)  # integers in float64 first (float32 rounds them beyond 2**24)
        return (((x.reshape(x.shape[0], 1, c) if x.ndim == 2 else x) - self.mean) / self.scale).astype(dtype)

    def host_forward(self, X: np.ndarray, dtype, name: str = "X") -> np.ndarray:
        """forward on host inputs ``X`` (B, C), in float64, cast to ``dtype``: (B, C) where the K
        models share their statistics (`xdl.train.fit_many`'s: one standardization of X, which the
        stacked dense layer takes as every model's input), else (B, K, C)."""
        check_width(X.shape[1], self.features, name, "the models expect")
        mean, scale = (self.backend.to_numpy(a) for a in (self.mean, self.scale))
        if (mean == mean[0]).all() and (scale == scale[0]).all():
            return standardized(X, mean[0], scale[0], dtype, name)
        return np.stack([standardized(X, m, s, dtype, name) for m, s in zip(mean, scale)], axis=1)
