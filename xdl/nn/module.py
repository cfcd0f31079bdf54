"""`Module`: the base of layers and models — parameters, buffers, modes, state dicts, prediction.

A layer *declares* its parameters with `Module.add_parameter` (values from an initializer) and
its non-learned state with `Module.add_buffer`; a model places all parameters as views in one flat
buffer per dtype (`Module.flatten`), weights first, so the usual optimizer groups (with and without
weight decay) are contiguous ranges of it.

Parameter roles: ``"weight"`` (penalized by L2/L1, decayed by the weight-decay group of
`xdl.optim.param_groups`, first in the flat buffer),
``"bias"``, ``"scale"`` (BN γ), ``"shift"`` (BN β) — an optimizer's own ``weight_decay``
decays every parameter of its group, as PyTorch's does. A `Parameter` assigned as an attribute
(``self.w = xdl.Parameter(...)``) keeps a role it was given (``xdl.Parameter(b, role="bias")``);
without one it gets one from its shape, the usual convention for weight decay (PyTorch's and
Keras' recipes decay matrices and kernels, not vectors): ndim ≥ 2 is a ``"weight"``, a vector or a
scalar a ``"bias"``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from xdl import backend as _backend
from xdl import graph as _graph
from xdl.caller import warn_caller
from xdl.data.validation import (check_bool, check_feature_names, check_features, check_int, counted,
                                 features_of_objects, rows)
from xdl.files import python_value
from xdl.flat import check_one_backend, check_packable, host_copies, move, pack, view_again, writable
from xdl.functions.classification import Softmax as SoftmaxOp
from xdl.functions.classification import softmax_array
from xdl.functions.elementwise import Sigmoid as SigmoidOp
from xdl.functions.elementwise import sigmoid_array
from xdl.tensor import (ROLES, Parameter, Tensor, hinting_named_elsewhere, missing_attribute, no_grad, note_written,
                        role_of, tensor, to_numpy)


def _check_fits(values: np.ndarray, dtype, name: str) -> None:
    """Refuse ``values`` whose finite numbers ``dtype`` cannot hold (1e39 into float32 would be inf;
    300 into an int8 buffer would wrap), naming the state's entry ``name``."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "fiu" or values.size == 0 or values.dtype == dtype:
        return
    limits = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size and (finite.max() > limits.max or finite.min() < limits.min):
        raise ValueError(f"load_state_dict: {name!r} holds values in [{finite.min()}, {finite.max()}], beyond what "
                         f"the model's {dtype} holds ([{limits.min}, {limits.max}])")


def dotted(prefix: str, name: str) -> str:
    """A name inside the module named ``prefix`` ('' for the top): 'body' + 'weight' → 'body.weight'."""
    return f"{prefix}.{name}" if prefix else name


def _state_held(model):
    """A check, for a captured step's replays, that ``model``'s parameters are the ones its capture read, still
    where it found them (``p._flat``, as `xdl.optim.Optimizer.check_placed` asks), and its buffers are the
    arrays it read and wrote: the graph holds those addresses, and `astype`, `to` or a repacking put new ones in
    their place — a replay then read freed memory, another array's once a GPU's pool hands it out —, and a
    parameter assigned into a submodule (which packs nothing: the model's buffer is its parent's) is one the
    graph never reads — it went on reading and training the one it replaced. (Run where `CheckedState` moved:
    each change here notes itself.)"""
    placed = [(name, p, getattr(p, "_flat", None)) for name, p in model.named_parameters()]  # (a stack's: none)
    held = [(f"{name}.{buffer}" if name else buffer, module, buffer, getattr(module, buffer))
            for name, module in model.named_modules() for buffer in module._buffers]

    def check():
        now = list(model.named_parameters())
        other = next((name for (name, p), (_, was, _) in zip(now, placed) if p is not was), None)
        if other is not None or len(now) != len(placed):
            what = f"its parameter {other} is another one" if other is not None else \
                f"it has {len(now)} parameters, {len(placed)} then"
            raise RuntimeError(f"a captured step's graph reads the model's parameters it was captured with, and "
                               f"{what} since (a parameter or submodule assigned or removed): capture the step again "
                               "(xdl.cuda_graph), its optimizer, if it has one, made anew first (the one before "
                               "holds the parameters replaced)")
        for dotted_name, p, place in placed:
            if getattr(p, "_flat", None) is not place:
                raise RuntimeError(f"a captured step's graph reads the parameter {dotted_name} where it was "
                                   "captured, and it moved since (model.astype(...), model.to(...), a parameter or "
                                   "submodule assigned, or an optimizer packing it): capture the step again "
                                   "(xdl.cuda_graph), its optimizer, if it has one, made anew first (the one "
                                   "before holds the old copies and refuses to step)")
        for dotted_name, module, buffer, array in held:
            if getattr(module, buffer) is not array:
                raise RuntimeError(f"a captured step's graph writes the buffer {dotted_name} it was captured with, "
                                   "which the model no longer holds (model.astype(...), model.to(...) or a buffer "
                                   "assigned since the capture): capture the step again (xdl.cuda_graph)")
    return check


@functools.cache
def _takes_training(forward) -> bool:
    """Whether a ``forward`` takes a ``training`` keyword (Keras's call signature)."""
    try:
        return "training" in inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return False
# what a model's outputs predict (``Module.predicts``, a loss's ``predicts``): one class per row
# (softmax), a yes/no label per output (sigmoid), or values (a regression)
PREDICTIONS = ("classes", "labels", "values")
NO_INIT = "call Module.__init__() (super().__init__()) before assigning parameters or submodules"


def checked_key(seed, step, name: str = "set_random_key") -> tuple[int, int]:
    """(seed, step) as Python ints if each is an integer in [0, 2**64) — what a mask's key holds
    (`xdl.ops.random` takes both modulo 2**64, as the Trainer's seed check says) —, else a ValueError
    naming it: a seed of 2**64 or 1e300 drew seed 0's masks, −1 seed 2**64 − 1's, 0.5 and 0.9 both
    seed 0's, and a step of 1.7 step 1's, without a word."""
    seed = check_int(seed, f"{name}: seed", low=0, high=_backend.SEEDS - 1,
                     expected="an integer in [0, 2**64) (or None, for the backend's generator)")
    step = check_int(step, f"{name}: step", low=0, high=_backend.SEEDS - 1, expected="an integer in [0, 2**64)")
    return seed, step


def check_dtype(dtype, name: str, allow_none: bool = True):
    """``dtype`` if it is float32 or float64 (or None where ``allow_none``: float32, a layer's
    default) — what the kernels and the optimizers' rate checks are made for (float16 overflows
    at 65504, and no kernel takes it) — else a ValueError naming ``name``."""
    try:
        floating = np.dtype(dtype) in (np.float32, np.float64) if dtype is not None else allow_none
    except TypeError:  # not a dtype at all
        floating = False
    if not floating:
        raise ValueError(f"{name} must be float32 or float64{' or None' if allow_none else ''}, "
                         f"got {dtype!r}")
    return dtype


def _holds_tensor(items) -> bool:
    """Whether the list or tuple ``items`` holds Tensors: its first element is one, or holds them
    (a structure of tensors, not numbers; only the first is looked at: a big list of rows is read
    by NumPy, not walked in Python)."""
    while isinstance(items, list | tuple) and items:
        items = items[0]
    return isinstance(items, Tensor)


def _is_dtype(value) -> bool:
    """Whether ``value`` names a dtype ("float64", np.float32, float) — not any class, which NumPy
    would take as the object dtype."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        return False
    return value is not None and (dtype != object or value is object or value in ("O", "object"))


_passes = threading.local()  # this thread's forward passes: ``depth`` of nested calls, ``number`` of the outermost
_PASS_NUMBERS = itertools.count(1)  # process-wide: two threads' passes never share a number (`draw_key`)
REPEAT_STREAMS = 2**32  # a module's n-th draw in one forward pass is keyed by stream + n·this (`draw_key`)
_mode_here = threading.local()  # this thread's `mode_here`: every module read in that mode (None: its own flag)


@contextlib.contextmanager
def mode_here(training: bool | None):
    """Every module in training (True) or evaluation (False) mode for the block, in this thread
    only (None: each in the mode its flag says, as outside any such block — how a fit trains,
    whatever block it is called in): the modules' own flags are left as they are, so another
    thread predicting with the same model, or training it, sees its own mode (switching the shared
    flags, two threads' blocks put back each other's modes: some batches ran in training mode,
    dropout on and batch norm's running statistics moved). How `Module.predict_outputs`,
    ``model(x, training=...)`` and the Trainer's evaluations run."""
    before = getattr(_mode_here, "training", None)
    _mode_here.training = training
    try:
        yield
    finally:
        _mode_here.training = before


def _check_attribute_name(module, name: str, value, buffer: bool = False) -> None:
    """``name`` may hold ``value`` on ``module``: not a method of `Module` (xdl calls ``flatten``,
    ``mode``, ``predict``, … on every model: one shadowed by a layer broke ``astype`` half way), and,
    for a parameter, submodule or buffer, a name without "." (state_dict joins names with it: two
    would share one key, and one be dropped)."""
    if name != "forward" and inspect.isfunction(getattr(Module, name, None)):  # (an instance's forward wrapped:
        # `__call__` runs it, as PyTorch's does)
        raise AttributeError(f"{type(module).__name__}.{name}: {name!r} is a method of xdl.nn.Module, which xdl "
                             f"calls on every model; name the attribute otherwise (e.g. {name + '_'!r})")
    if (buffer or isinstance(value, Parameter | Module)) and ("." in name or not name):
        raise ValueError(f"{type(module).__name__}: the name of a parameter, submodule or buffer cannot contain '.' "
                         f"or be empty (state_dict joins names with '.'), got {name!r}")


def _buffer_value(module, name: str, value):
    """``value`` assigned to ``module``'s buffer ``name`` (``self.running_mean = …`` in a forward,
    PyTorch's way with its tensor buffers) as the array a buffer holds: a Tensor's array (its values,
    without the graph), a NumPy scalar (what arithmetic on a 0-d array gives) as a 0-d array. Anything
    else — a number, a list — is refused here, naming the buffer: kept as it was, a Tensor or a
    number broke the Trainer's check of the state at the epoch's end ("operand 'Tensor' does not
    support ufuncs") and `load_state_dict` (a resume, ``xdl.load(path, model=…)``) in words about
    ``no_grad`` or item assignment."""
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, np.generic):
        return np.asarray(value)
    try:
        _backend.backend_of(value)
    except TypeError:
        raise TypeError(f"cannot assign a {type(value).__name__} to {type(module).__name__}.{name}, a buffer: expected "
                        "an array of the backend (or a Tensor, whose array it takes), as add_buffer made it, or None "
                        "to remove it") from None
    return value


def _state_values(values, who: str, name: str):
    """``values`` for a parameter or buffer ``name`` made by ``who`` (`Module.add_parameter`,
    `add_buffer`): None is refused, naming them — ``np.array(None, dtype=float32)`` is a 0-d NaN,
    which PyTorch's ``register_buffer(name, None)`` placeholder became, saved in the state and
    refused by ``fit`` as "the model holds NaN or Inf"."""
    if values is None:
        raise TypeError(f"{who}: values of {name!r} is None; give its initial values (an array). PyTorch's "
                        f"register_buffer(name, None) placeholder is a plain attribute here (self.{name} = None), and "
                        f"{who}({name!r}, values) once it has values")
    return values


def evaluating_here():
    """Every module in evaluation mode for the block, in this thread only (`mode_here`)."""
    return mode_here(False)


def classes_of_logits(out):
    """Each example's class from its outputs (logits or probabilities: they keep the order): the
    argmax of several outputs, logit > 0 of one (the Trainer's accuracy and `Module.predict` alike)."""
    return out.argmax(axis=1) if out.ndim == 2 and out.shape[1] > 1 else (out.reshape(-1) > 0)


def is_plain_value(value) -> bool:
    """Whether ``value`` is a plain host value, compared by value: a number, a string, a flag."""
    return isinstance(value, bool | int | float | str | np.bool_ | np.number)


def _setting_now(attribute, made_with):
    """A constructor setting's value now: its attribute where that is a plain value (a number, a
    string, a flag), else the value it was made with (a bias kept as a Parameter, statistics); a
    part a flag switched on that is None now (``layer.bias = None``, PyTorch's habit) is off."""
    if attribute is None and isinstance(made_with, bool):  # (its repr and a saved file said bias=True)
        return False
    if is_plain_value(attribute) and is_plain_value(made_with):
        return python_value(attribute)
    return made_with


def input_features(model: Module) -> int | None:
    """The width the model's first layer takes, where the first layer is known: a `Sequential`'s
    (nested ones too: `Module._first_layer`) or a layer's own. A model of the user's own may call its
    layers in any order (not the order they were registered in): its first forward pass tells
    (`Trainer._output_shape`). What `Trainer.fit` and `predict` check X's width against before X is
    flattened: the first layer, given it flattened, named its (m, features) shape, not the one given."""
    while model._first_layer() is not None:
        model = model._first_layer()
    for attr in ("in_features", "features"):
        if isinstance(getattr(model, attr, None), int):
            return getattr(model, attr)
    return None


def _one_output(out, rows: int) -> Tensor:
    """A forward's result as predict reads it: one Tensor, a row for each of the batch's ``rows``
    examples (written into the result at their places: a batch's rows missing there were left as
    `np.empty` made them, not an error)."""
    if not isinstance(out, Tensor):
        raise TypeError(f"predict: the model's forward returned a {type(out).__name__}; predict needs one xdl Tensor "
                        "of outputs (m, outputs) — return the outputs alone, or call the model itself")
    if out.ndim == 0 or len(out) != rows:
        raise ValueError(f"predict: the model's forward returned outputs of shape {tuple(out.shape)} for a batch of "
                         f"{counted(rows, 'example')}; predict needs a row of outputs per example (m, outputs)")
    return out


# the ops whose outputs are probabilities: a forward that ends in one needs no softmax or sigmoid after
PROBABILITY_OPS = (SigmoidOp, SoftmaxOp)


def ends_in_probability(out: Tensor) -> bool:
    """Whether the op that made ``out`` (`Function.apply` marks it, with grad or without) is a
    softmax or a sigmoid: a model's forward that ends in one outputs probabilities."""
    return getattr(out, "made_by", None) in PROBABILITY_OPS


# PyTorch's names for what a Module does under another name here: a habit that met a bare "no attribute
# 'modules'" is told the way (`Module.__getattr__`)
PYTORCH_NAMES = {
    "modules": "named_modules(), of (name, module) pairs: for _, m in model.named_modules()",
    # named_modules walks every depth, this module first: the direct children are the names without a '.'
    "children": "named_modules(), of (name, module) pairs, which walks every depth with this module first (''); the "
                "direct children: [m for name, m in model.named_modules() if name and '.' not in name]",
    "named_children": "named_modules(), of (name, module) pairs, which walks every depth with this module first "
                      "(''); the direct children: [(name, m) for name, m in model.named_modules() if name and '.' not "
                      "in name]",
    # each module once (PyTorch's apply visits a module once per parent that holds it, so one shared by two
    # parents twice): named_modules names it once per place
    "apply": "a loop over each module once: for m in {id(m): m for _, m in model.named_modules()}.values(): fn(m)",
    "buffers": "named_buffers(), of (name, array) pairs",
    "double": "astype('float64')",
    "float": "astype('float32')",
    "cuda": "to('cuda')",
    "cpu": "to('cpu')",
    "register_buffer": "add_buffer(name, values)",
    "register_parameter": "add_parameter(name, values, role), or an attribute: self.name = xdl.Parameter(array)",
    "add_module": "an attribute: setattr(self, name, module)",
    "requires_grad_": "a loop: for p in model.parameters(): p.requires_grad = False",
    "get_submodule": "dict(model.named_modules())[name]",
    "get_parameter": "dict(model.named_parameters())[name]",
    **dict.fromkeys(("register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook"),
                    "a layer of one's own around it (a Module whose forward calls it), or a Trainer callback"),
}


# PyTorch's constructor keywords of layers, each layer's peer's or not, that no layer here takes → what they are
# here (each layer's `pytorch_names` adds its peer's own: `Module.__init_subclass__`)
PYTORCH_LAYER_NAMES = {
    "device": "to(device) here, on the model once built: model.to('cuda')",
    "inplace": "not offered here: each layer writes its output to a new array",
}
# Keras's keywords of every layer → what they are here (each layer's `keras_names` adds its peer's own)
KERAS_LAYER_NAMES = {
    "name": "not offered here: a layer is known by where its model holds it (model.named_modules())",
    "trainable": "the parameters' flag here: for p in layer.parameters(): p.requires_grad = False freezes them",
    "dtype": "not a setting of this module here: Dense, BatchNorm and Standardize take dtype=, a layer without "
             "parameters computes in its input's dtype, and model.astype(dtype) converts a whole model",
    "input_shape": "not needed here: a layer with parameters takes its input's width as its first argument "
                   "(Dense(in_features, out_features), BatchNorm(features))",
    "activity_regularizer": "not offered here: the penalties cover weights (Trainer(l2=…), Trainer(l1=…))",
    "autocast": "not offered here: a layer computes in its parameters' dtype (no mixed precision)",
}


class LoadedKeys(NamedTuple):
    """What `Module.load_state_dict` left out (PyTorch's ``_IncompatibleKeys``): the model's names
    the state lacks, and the state's names the model lacks."""

    missing_keys: list
    unexpected_keys: list


def modes_of(model: Module) -> list[tuple[Module, bool]]:
    """Each module's mode flag (``model``'s and every submodule's), for `restore_modes`. A function, not
    a method: a method's name is refused as a model's attribute (`_check_attribute_name`), and a model
    of one's own may well hold ``self.modes = 3`` (a mixture's, a spectral layer's count)."""
    return [(module, module.__dict__.get("training", True)) for _, module in model.named_modules()]


def training_modes(model: Module) -> list[tuple[Module, bool]]:
    """`modes_of` ``model`` as a fit trains it: as the user left them where a module below the model is
    in training mode — a batch norm put in evaluation (PyTorch's ``model.train(); bn.eval()``) keeps its
    running statistics while the rest trains (every module was put in training mode) —, all in training
    mode where none is (``model.eval()``, to predict; a `Sequential` of an evaluated model's layers,
    whose own flag is a new one's)."""
    modes = modes_of(model)
    if not any(training for _, training in modes[1:]):
        return [(module, True) for module, _ in modes]
    return modes


def restore_modes(modes: list[tuple[Module, bool]]) -> None:
    """Put each module's mode flag back as `modes_of` read it."""
    for module, training in modes:
        object.__setattr__(module, "training", training)


class Module:
    """Base class: subclasses set attributes in ``__init__`` and implement ``forward``.

    Attributes that are `Parameter`s or `Module`s are registered automatically, as in PyTorch (call
    ``super().__init__()`` first); assigning None to a registered name, or ``del``, unregisters it,
    and assigning anything else to a parameter's or submodule's name is a TypeError.
    ``self.config`` (the constructor arguments; a setting kept as an attribute of its name is read
    again, `current_config`) is what `xdl.nn.describe` records and the repr shows; `xdl.load` rebuilds xdl's own layers from it (`xdl.nn.LAYERS`), and a module of one's own
    is saved by its state and loaded into a model made in code (``xdl.load(path, model=...)``).
    Modules held in a list, tuple or dict are not registered (as in PyTorch, where ModuleList is
    for that): hold them in a `xdl.nn.Sequential`, or assign each as an attribute.
    ``min_batch``: the smallest training batch the module can learn from (2 for batch norm);
    ``draws_random``: whether its training forward draws random numbers (dropout);
    ``host_forward(X, dtype, name)``: its forward on a host (m, features) array, cast to the
    network's ``dtype`` after, where a layer has one (`Standardize`; see `network_input`);
    ``float64_buffers``: the buffers it keeps in float64 in a model of any dtype (`Standardize`'s
    statistics); ``checked_settings``: name → ``check(module, value)``, each setting a forward reads
    (a dropout's rate, a batch norm's momentum) checked where it is set — by the constructor, by hand
    (PyTorch's ``bn.momentum = …``), by unpickling — and stored as ``check`` gives it, so that the
    forward reads it unchecked.
    """

    min_batch = 1
    draws_random = False
    host_forward = None  # a layer that can run on the host, before the inputs' cast, defines it (`network_input`)
    float64_buffers: tuple[str, ...] = ()  # buffers kept in float64 whatever the module's dtype (`astype` leaves them)
    predicts = None  # what its outputs predict, set by a Trainer from its loss (`PREDICTIONS`); None: classes
    # the column names of the data frame a Trainer fitted it on (scikit-learn's attribute), or None: a frame
    # given later must have them in that order (`check_feature_names`: by position, reordered columns were
    # read into each other's weights, silently)
    feature_names_in_: tuple[str, ...] | None = None
    # setting → check(module, value) -> the value stored, or an error naming the setting (class docstring)
    checked_settings: Mapping[str, Callable] = MappingProxyType({})
    pytorch_names: dict[str, str] = PYTORCH_LAYER_NAMES  # a PyTorch constructor keyword → what it is here (messages)
    keras_names: dict[str, str] = KERAS_LAYER_NAMES  # a Keras constructor keyword → what it is here (messages)

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "config", {})

    def __init_subclass__(cls, **kwargs):
        """A layer's constructor given a PyTorch or Keras keyword it does not take (``BatchNorm(num_features=64)``,
        ``Softmax(dim=1)``, ``Dense(3, units=2)``) says what that setting is here (its class's ``pytorch_names``
        and ``keras_names``, besides those every layer's: `PYTORCH_LAYER_NAMES`, `KERAS_LAYER_NAMES`), as an
        optimizer's does: Python's "unexpected keyword argument" did not."""
        super().__init_subclass__(**kwargs)
        if "pytorch_names" in vars(cls):
            cls.pytorch_names = {**PYTORCH_LAYER_NAMES, **cls.pytorch_names}
        if "keras_names" in vars(cls):
            cls.keras_names = {**KERAS_LAYER_NAMES, **cls.keras_names}
        if "__init__" in vars(cls):
            cls.__init__ = hinting_named_elsewhere(cls.__init__)

    def __setattr__(self, name, value):
        _check_attribute_name(self, name, value)
        check = self.checked_settings.get(name)
        if check is not None:  # (refused here, before anything changed)
            value = check(self, value)
        was_buffer = name in self.__dict__.get("_buffers", ())
        if name == "predicts" and value is not None and (not isinstance(value, str) or value not in PREDICTIONS):
            # set by hand in a loop of one's own: a misspelt "value" predicted classes without a word
            # (predict reads anything but "values" and "labels" as classes; only xdl.save refused it, later)
            raise ValueError(f"{type(self).__name__}.predicts must be one of {', '.join(map(repr, PREDICTIONS))} or "
                             f"None (classes), got {value!r}")
        if isinstance(value, Parameter | Module):
            self._check_registrable(name, value)
            changed = self._register(name, value)
        else:
            parameters, modules = self.__dict__.get("_parameters", {}), self.__dict__.get("_modules", {})
            if value is not None and (name in parameters or name in modules):  # PyTorch's rule
                kind, expected = ("parameter", "an xdl.Parameter") if name in parameters else \
                    ("submodule", "an xdl.nn.Module")
                hint = f" (to change its values, write them in place: <module>.{name}.data[...] = values)" \
                    if kind == "parameter" else ""
                raise TypeError(f"cannot assign a {type(value).__name__} to {type(self).__name__}.{name}, a "
                                f"registered {kind}: expected {expected}, or None to remove it{hint}")
            if value is not None and name in self.__dict__.get("_buffers", {}):
                value = _buffer_value(self, name, value)
            changed = value is None and self._unregister(name)
            if isinstance(value, list | tuple | dict) and any(
                    isinstance(item, Parameter | Module) for item in (value.values() if isinstance(value, dict) else value)):
                warn_caller(f"{type(self).__name__}.{name}: a {type(value).__name__} of modules or parameters is not "
                            "registered: they would not train, be saved or switch modes with the model; hold them in "
                            "an xdl.nn.Sequential, or assign each as an attribute")
        object.__setattr__(self, name, value)
        if was_buffer or changed:  # a buffer rebound, a parameter or submodule registered or removed: a graph
            _graph.checked_state_changed()  # captured on the model as it was refuses its next replay (`_state_held`)
        if changed:
            self._repack()

    def __getattr__(self, name):
        return missing_attribute(self, name, PYTORCH_NAMES)

    def __delattr__(self, name):
        was_buffer = name in self.__dict__.get("_buffers", ())
        object.__delattr__(self, name)  # no such attribute: AttributeError, nothing changed
        changed = self._unregister(name)
        if was_buffer or changed:  # (as `__setattr__`'s)
            _graph.checked_state_changed()
        if changed:
            self._repack()

    def _check_registrable(self, name: str, value) -> None:
        """Raise where registering ``value`` (a Parameter or a Module) as ``name`` is refused, changing
        nothing (`xdl.nn.Sequential.extend` checks every layer so before it adds any)."""
        if isinstance(value, Module) and "_modules" not in value.__dict__:  # (walked below, it failed as "no
            # attribute '_parameters'", naming neither the module assigned nor the cause)
            raise AttributeError(f"{type(self).__name__}.{name}: the {type(value).__name__} assigned was not "
                                 f"initialized: {NO_INIT} in its __init__")
        if self.__dict__.get("_owns_flat"):  # packed into this module's buffer next: refused before registering
            new = value.parameters() if isinstance(value, Module) else [value]
            check_packable(new)
            # against one it keeps (what it replaces goes)
            kept = next((p for key, p in self.named_parameters() if key.split(".")[0] != name), None)
            check_one_backend([*([kept] if kept is not None else []), *new], f"{type(self).__name__}.{name}")
        if isinstance(value, Module) and any(module is self for _, module in value.named_modules()):
            # a child holding its parent (a back-reference): every walk of the tree (parameters(),
            # state_dict, train(), repr) recursed until Python's limit, far from the assignment
            raise ValueError(f"{type(self).__name__}.{name}: the {type(value).__name__} assigned holds this module "
                             "(or is it): a module cannot contain itself, its submodules would be walked forever; "
                             "keep such a reference unregistered — object.__setattr__(self, name, module) — or pass "
                             "the module to forward")

    def _register(self, name: str, value) -> bool:
        """Register ``value`` (a Parameter or a Module) as ``name``, in place of whatever the name
        held (`_check_registrable` passed); whether the registration changed. A parameter without a
        role gets one (module doc)."""
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: {NO_INIT}")
        registry = self._parameters if isinstance(value, Parameter) else self._modules
        if registry.get(name) is value:
            return False
        if registry is self._parameters:
            role = role_of(value)
            if role not in ROLES:
                raise ValueError(f"{type(self).__name__}.{name}: role must be one of {ROLES}, got {role!r}")
            value.role = role
        self._unregister(name)  # a parameter may replace a submodule or a buffer, and so on
        registry[name] = value
        return True

    def _unregister(self, name: str) -> bool:
        """Forget ``name`` as a parameter, submodule or buffer; whether a parameter or a submodule
        left (what the flat buffer is made of)."""
        self.__dict__.get("_buffers", {}).pop(name, None)  # a name is in one registry at most
        return any(self.__dict__.get(key, {}).pop(name, None) is not None for key in ("_parameters", "_modules"))

    def _repack(self) -> None:
        """After a parameter or submodule came or went: a module that owns a flat buffer packs its
        parameters anew, so they stay views of one buffer per dtype and none that left stays in it
        (an optimizer made before then refuses to step, as after `astype`, rather than update
        parameters the module no longer has). A change inside a child of such a module leaves the
        new parameters outside the buffer: everything still works (an optimizer packs its groups)."""
        if self.__dict__.get("_owns_flat"):
            self.flatten()

    # -- declaring state ------------------------------------------------------------------
    def add_parameter(self, name: str, values: np.ndarray, role: str, dtype=None) -> Parameter:
        """Create parameter ``name`` on the current backend from host ``values`` (copied: the
        module owns its state, and the caller's array is never written); ``role`` is checked where it
        is registered (`_register`), as an assigned parameter's."""
        backend = _backend.current_backend()
        values = _state_values(values, "add_parameter", name)
        p = Parameter(backend.asarray(np.array(values, dtype=dtype or np.float32)), backend=backend, name=name)
        p.role = role
        setattr(self, name, p)
        return p

    def add_buffer(self, name: str, values: np.ndarray, dtype=None):
        """Create non-learned state ``name`` (e.g. running statistics) on the current backend from
        ``values`` (copied, as a parameter's). Without ``dtype``, integer and boolean values (a
        counter, a mask) keep theirs, as PyTorch's ``register_buffer`` keeps a tensor's; floating ones
        are float32, a layer's default."""
        if "_buffers" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: {NO_INIT}")
        _check_attribute_name(self, name, None, buffer=True)
        host = np.asarray(to_numpy(_state_values(values, "add_buffer", name)))
        if dtype is None:  # a counter made float32 stopped counting at 2**24, a mask was no longer one
            dtype = host.dtype if host.dtype.kind in "biu" else np.float32
        array = _backend.current_backend().asarray(np.array(host, dtype=dtype))  # (a copy: the module owns it)
        if self._unregister(name):  # it was a parameter or a submodule: now a buffer only
            self._repack()
        self._buffers[name] = True
        object.__setattr__(self, name, array)
        _graph.checked_state_changed()  # (a buffer made again in place of one a graph writes)
        return array

    # -- walking the tree -----------------------------------------------------------------
    def named_modules(self, prefix: str = ""):
        """(dotted name, module) pairs, depth first, this module first under ``prefix`` ('': the
        top), named as PyTorch names them: '', 'body', 'body.0'. A module held under two names (a
        layer shared by two places) comes under each, where PyTorch's yields it once: to visit each
        module once, ``{id(m): m for _, m in model.named_modules()}.values()``."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(dotted(prefix, name))

    def _each_module(self, into: list | None = None) -> list:
        """The modules `named_modules` gives, in its order (one held under two names twice), without
        making their names: what `set_random_key` numbers its streams by, at every step."""
        into = [] if into is None else into
        into.append(self)
        for child in self._modules.values():
            child._each_module(into)
        return into

    def named_parameters(self):
        """(dotted name, parameter) pairs, depth first, each parameter once."""
        seen = set()
        for prefix, module in self.named_modules():
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield dotted(prefix, name), p

    def parameters(self, role: str | None = None) -> list[Parameter]:
        """All parameters, or those of one role ("weight", "bias", "scale", "shift")."""
        if role is not None and (not isinstance(role, str) or role not in ROLES):
            recurse = " (PyTorch's recurse: xdl's parameters are always every module's)" \
                if isinstance(role, bool) else ""
            raise ValueError(f"parameters: role must be one of {', '.join(ROLES)} or None, got {role!r}{recurse}")
        return [p for _, p in self.named_parameters() if role is None or p.role == role]

    def named_buffers(self):
        for prefix, module in self.named_modules():
            for name in module._buffers:
                yield dotted(prefix, name), getattr(module, name)

    def _first_parameter(self) -> Parameter | None:
        """The first parameter `named_parameters` gives, or None: found without making its name (what
        `dtype` and `backend` read at every call of a model)."""
        for p in self._parameters.values():
            return p
        for child in self._modules.values():
            p = child._first_parameter()
            if p is not None:
                return p
        return None

    @property
    def dtype(self):
        p = self._first_parameter()
        return np.dtype(np.float32) if p is None else p.dtype

    @property
    def backend(self):
        """The backend the module's parameters (or buffers) live on; the current one if it has none."""
        p = self._first_parameter()
        if p is not None:
            return p.backend
        for _, array in self.named_buffers():
            return _backend.backend_of(array)
        return _backend.current_backend()

    # -- modes ----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode: batch statistics in batch norm, dropout active (``mode`` False: `eval`)."""
        mode = check_bool(mode, "train: mode")  # "no" or 0 would read as a mode, neither True nor False
        for _, module in self.named_modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: running statistics in batch norm, dropout is the identity."""
        return self.train(False)

    @contextlib.contextmanager
    def evaluating(self):
        """Evaluation mode for the block, then back to the mode each module was in."""
        with self.mode(False):
            yield self

    @contextlib.contextmanager
    def mode(self, training: bool):
        """Training (True) or evaluation (False) mode for the block, then back to the mode each
        module was in (a batch norm kept in evaluation while the rest trains stays so). It sets the
        modules' flags, which every thread reads: beside another thread's use of the model,
        `mode_here` (what ``predict`` and ``model(x, training=...)`` do)."""
        modes = modes_of(self)
        self.train(training)
        try:
            yield self
        finally:
            restore_modes(modes)

    @property
    def training(self) -> bool:
        """Whether the module runs in training mode (dropout on, batch norm's batch statistics):
        its flag (`train`, `eval`), or in a thread within `mode_here`, that block's mode."""
        here = getattr(_mode_here, "training", None)
        return self.__dict__.get("training", True) if here is None else here

    @training.setter
    def training(self, value: bool) -> None:
        # checked where it is set (PyTorch's ``model.training = False``), as the settings a forward reads
        # (`checked_settings`): a "False" set by hand would read as training, and Dropout's forward no longer
        # checks it
        self.__dict__["training"] = check_bool(value, f"{type(self).__name__}.training")

    def set_random_key(self, seed: int | None, step: int = 0, steps_done=None) -> None:
        """Key the random draws of the next training forward passes by (seed, step): the module at
        position i of `named_modules` that draws (dropout) uses stream i, so every mask is a pure
        function of (seed, layer, step) — the same on every backend and after a resume
        (`xdl.ops.random`). With ``steps_done`` (a one-element int64 array of the backend: a step
        counter in device memory, advanced by a captured step) the key's step is ``step +
        steps_done[0]``, read when the mask is drawn. ``seed=None`` goes back to the backend's
        generator."""
        if seed is not None:
            seed, step = checked_key(seed, step)
        extra = () if steps_done is None else (steps_done,)
        for stream, module in enumerate(self._each_module()):
            if module.draws_random:
                # (set past `__setattr__`, whose checks of a user's attribute — ~20 calls a module, each step —
                # have nothing to refuse in a key of checked integers)
                object.__setattr__(module, "random_key", None if seed is None else (seed, stream, step, *extra))
                module.__dict__["_draws"] = (None, -1)  # (forward pass, draws in it): none yet

    def draw_key(self):
        """The key of this module's next draw in training: ``random_key`` at its first call in a
        forward pass (an outermost `__call__`), and at its n-th call there the key with stream +
        n·`REPEAT_STREAMS` — a Dropout applied after two layers draws two masks, as PyTorch's
        would, each still a pure function of (seed, layer, call, step), eager or captured."""
        key = getattr(self, "random_key", None)  # (a layer of one's own sets none before a key is given)
        if key is None:
            return None
        number = getattr(_passes, "number", 0)
        seen, calls = self.__dict__.get("_draws", (None, -1))
        calls = calls + 1 if seen == number else 0
        self.__dict__["_draws"] = (number, calls)
        return key if not calls else (key[0], key[1] + calls * REPEAT_STREAMS, *key[2:])

    # -- computing ------------------------------------------------------------------------
    def forward(self, x, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def __call__(self, x, *args, training: bool | None = None, **kwargs):
        """``forward(x, *args, **kwargs)``. An array-like ``x`` (a NumPy or CuPy array, a list or
        tuple of numbers) becomes a Tensor where the model lives, whatever backend is current — a
        floating one in the model's dtype, an integer or boolean one as it is (indices stay
        indices; xdl's float layers cast them to their dtype); for a model that starts with a
        `Standardize` (`network_input`'s), that layer takes it as given — in float64 where it is
        float64 or integers — and its output is cast to the model's dtype; a Tensor, a tuple or a list holding
        Tensors, and the other arguments reach forward as given (converting them would cut the
        graph). ``training`` (Keras's): True or False runs this call in training or evaluation
        mode, in this thread only (`mode_here`: every module the call runs — another model called
        inside a forward of one's own too, as Keras passes ``training`` down —, their flags left as
        they are; None: the mode each is in); a forward of the user's own that takes ``training``
        gets it too."""
        if training is not None:
            check_bool(training, "training")
            if _takes_training(type(self).forward):
                kwargs["training"] = training
        network = self
        if not isinstance(x, Tensor) and (hasattr(x, "__array__") or hasattr(x, "__dlpack__")
                                          or isinstance(x, list | tuple) and not _holds_tensor(x)):
            check_feature_names(x, self.feature_names_in_, "x")  # (a frame's columns: by name, not position)
            if not isinstance(getattr(x, "dtype", None), np.dtype) or isinstance(x, np.ma.MaskedArray):
                # a list, a DataFrame, another library's tensor: as NumPy reads it (floats stay float64 until
                # cast); a masked array's masked values as NaN (`array_to_numpy`), not the values under the mask
                x = _backend.array_to_numpy(x)
            if isinstance(x, np.ndarray) and x.dtype == object:  # numbers held as objects (a frame of float and
                # bool columns, pd.get_dummies' or nullable ones, reads so): as predict reads them, a missing value
                # NaN — refused as "tensor: data of dtype object", which named neither x nor its values
                x = features_of_objects(x, "x")
            first = self._host_layer()
            if first is None:
                x = tensor(x, dtype=self._array_dtype(x.dtype) if x.dtype.kind == "f" else None,
                           backend=self.backend, copy=False)
            else:  # a leading Standardize takes the input as given (float64 kept: it computes in float64; float16
                # widened to the model's dtype, its result's), then the cast, as `predict` does (cast first,
                # 1e6 + 0.01·noise would lose its spread)
                wide = np.promote_types(x.dtype, self.dtype) if x.dtype.kind == "f" else None
                x = first(tensor(x, dtype=wide, backend=self.backend, copy=False))
                x, network = (x if x.dtype == self.dtype else x.astype(self.dtype)), self[1:]
        depth = getattr(_passes, "depth", 0)
        if not depth:  # an outermost call: a forward pass of its own (`draw_key` counts a module's draws in it)
            _passes.number = next(_PASS_NUMBERS)
            if _graph.capturing():
                _graph.replay_check(_state_held(self))
        _passes.depth = depth + 1
        try:
            if training is None:
                return network.forward(x, *args, **kwargs)
            with mode_here(training):
                return network.forward(x, *args, **kwargs)
        finally:
            _passes.depth = depth

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Set every gradient to zero, in place (gradients stay views into the flat buffer).
        ``set_to_none`` (PyTorch's) is accepted and changes nothing, as the optimizers' ``zero_grad``."""
        check_bool(set_to_none, "zero_grad: set_to_none")
        for p in self.parameters():
            if p.grad is not None:
                p.grad[...] = 0

    # -- flat buffer and dtype ------------------------------------------------------------
    def flat_order(self) -> list[tuple[str, Parameter]]:
        """(name, parameter) in the order of the flat buffer: weights first, so the usual optimizer
        groups (with and without weight decay) are two contiguous ranges."""
        named = list(self.named_parameters())
        return [(n, p) for n, p in named if p.role == "weight"] + [(n, p) for n, p in named if p.role != "weight"]

    def flatten(self):
        """Place all parameters as views in one flat buffer per dtype, weights first."""
        ordered = [p for _, p in self.flat_order()]
        object.__setattr__(self, "_owns_flat", True)
        return pack(ordered) if ordered else []

    def __setstate__(self, state: dict) -> None:
        """Unpickling (or a deep copy) copies every array apart: a model that owned a flat buffer
        makes its parameters views of its buffer's copy again (an optimizer copied with it then
        updates them: `Optimizer.__setstate__`), or places them in a new one where they had moved."""
        self.__dict__.update(state)
        for name in state.get("_buffers", ()):  # (running statistics, written in place: `writable`)
            if name in state:
                object.__setattr__(self, name, writable(state[name]))
        for name, check in self.checked_settings.items():  # as set by hand: a pickle of an older xdl, which
            if name in state:  # checked them at each forward instead, may hold one set so and never run
                object.__setattr__(self, name, check(self, state[name]))
        if state.get("_owns_flat") and not view_again([p for _, p in self.flat_order()]):
            self.flatten()

    def to(self, backend) -> Module:
        """Move parameters and buffers to ``backend`` in place, as PyTorch's ``model.to(device)``:
        a backend name ("numpy", "cupy", "auto"), a device kind ("cpu", "cuda") or a `Backend`.
        Values and gradients are kept; the parameters end as views of one flat buffer there, each
        buffer copied over in one piece (values, then gradients). Make the optimizer after moving:
        one made before holds the old storage (its step refuses).

        >>> import xdl
        >>> model = xdl.nn.mlp(3, [4], 2)
        >>> model.to("cpu").backend.name
        'numpy'
        """
        if not isinstance(backend, _backend.Backend) and _is_dtype(backend):
            raise TypeError(f"to: {backend!r} is a dtype; model.astype({np.dtype(backend).name!r}) converts a model, "
                            "to() moves it between backends")
        target = _backend.resolve_backend(backend, "to")
        params = [p for _, p in self.flat_order()]
        if any(p.backend is not target for p in params):  # all of them, so they end in one buffer there
            move(params, target)
        for _, module in self.named_modules():
            for name in module._buffers:
                object.__setattr__(module, name, target.own(getattr(module, name)))
        _graph.checked_state_changed()  # parameters and buffers moved: a graph captured on them refuses its replay
        return self

    def astype(self, dtype) -> Module:
        """Convert the parameters and the floating buffers to ``dtype`` (float32 or float64) in place,
        e.g. float64 for gradient checking; integer and boolean buffers (counters, masks) keep
        theirs, as in PyTorch. The parameters are packed anew in one flat buffer, their gradients
        zero. When everything floating has that dtype already, nothing changes (values, gradients
        and places kept)."""
        dtype = np.dtype(check_dtype(dtype, "astype: dtype", allow_none=False))
        buffers = [(module, name) for _, module in self.named_modules() for name in module._buffers
                   if getattr(module, name).dtype.kind == "f" and name not in module.float64_buffers]
        if all(p.dtype == dtype for p in self.parameters()) and all(getattr(m, n).dtype == dtype for m, n in buffers):
            return self
        check_packable(self.parameters())  # a stack's parameters: refused before any is converted
        for p in self.parameters():
            p.data, p.grad, p._flat = p.data.astype(dtype), None, None
        for module, name in buffers:
            if getattr(module, name).dtype != dtype:  # one of that dtype stays as it is (and where it is)
                object.__setattr__(module, name, getattr(module, name).astype(dtype))
        _graph.checked_state_changed()  # buffers converted (the parameters' new places note themselves: `pack`)
        self.flatten()
        return self

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Name → NumPy copy of every parameter and buffer. A parameter a model holds at several
        places (a layer used twice, a tied weight) is named once, at its first use (PyTorch lists it
        under every name): a model built with that layer untied has names this state lacks.

        Read in one host read per flat buffer (the parameters: `host_copies`) and one per dtype of the buffers
        (`to_numpy_together`), not one per array: on a GPU each read is a copy and a sync (the arrays are then
        views of those host copies). Either way they are apart from the model: training on changes none of them."""
        named = list(self.named_parameters())
        state = dict(zip([name for name, _ in named], self._host_parameters([p for _, p in named])))
        buffers = list(self.named_buffers())
        if buffers:
            state.update(zip([name for name, _ in buffers],
                             _backend.to_numpy_together(self.backend, [array for _, array in buffers])))
        return state

    def _host_parameters(self, params) -> list[np.ndarray]:
        """NumPy copies of ``params`` (this model's), one host read per run of them in a flat buffer."""
        return host_copies(params)

    def load_state_dict(self, state: dict, strict: bool = True) -> LoadedKeys:
        """Copy values in place from ``state`` (a mapping, as PyTorch's: a dict, or ``np.load`` of
        what ``np.savez(path, **model.state_dict())`` wrote; arrays of any backend, or Tensors):
        names and shapes must match exactly; with ``strict=False`` (as PyTorch's), names on one side
        only are skipped, shapes still checked. Returns ``(missing_keys, unexpected_keys)`` as PyTorch's
        does: the model's names the state lacks and the state's the model lacks (both empty when
        strict).

        Everything is checked before anything is written (`check_state_dict`), so a mismatch changes
        nothing.
        """
        state, missing, unexpected = self._checked_state(state, strict)
        backend, targets = self.backend, dict(self.named_parameters())
        for name, p in targets.items():
            if name in state:
                p.data[...] = backend.asarray(state[name].astype(p.dtype, copy=False))
        note_written(p for name, p in targets.items() if name in state)
        for prefix, module in self.named_modules():
            for name in module._buffers:
                if dotted(prefix, name) in state:
                    array = getattr(module, name)
                    array[...] = backend.asarray(state[dotted(prefix, name)].astype(array.dtype, copy=False))
        # counted, so that a callback tells a load of the user's from its own (`EarlyStopping`)
        object.__setattr__(self, "_state_loads", self.__dict__.get("_state_loads", 0) + 1)
        return LoadedKeys(missing, unexpected)

    def check_state_dict(self, state: dict, strict: bool = True) -> None:
        """Raise (ValueError, TypeError) where `load_state_dict` would refuse ``state``: names, shapes,
        values this model's dtypes hold. Nothing is changed (as `xdl.optim.Optimizer.check_state_dict`)."""
        self._checked_state(state, strict)

    def _checked_state(self, state, strict) -> tuple[dict, list[str], list[str]]:
        """``state`` checked for this model: (its arrays as NumPy ones, of this model's names; the
        missing names; the unexpected ones)."""
        strict = check_bool(strict, "load_state_dict: strict")
        if not isinstance(state, Mapping):  # Keras's set_weights(list) habit, say
            raise TypeError(f"load_state_dict: state must be a dict name → array, as state_dict() gives, got "
                            f"{type(state).__name__}")
        # any mapping, as PyTorch's takes: np.load of an np.savez(path, **model.state_dict()) is one (an
        # NpzFile, read once here), and is not a dict
        state = dict(state)
        targets = dict(self.named_parameters())
        shapes = {name: tuple(p.shape) for name, p in targets.items()} | \
            {name: tuple(array.shape) for name, array in self.named_buffers()}  # no copy of the current state
        expected = set(shapes)
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if strict and (missing or unexpected):
            raise ValueError(f"state does not match the model: missing {missing}, unexpected {unexpected}")
        given, state = state, {name: to_numpy(value) for name, value in state.items() if name in expected}
        dtypes = {name: p.dtype for name, p in targets.items()} | {name: a.dtype for name, a in self.named_buffers()}
        for name in state:
            kind = state[name].dtype
            if not (kind == np.bool_ or np.issubdtype(kind, np.integer) or np.issubdtype(kind, np.floating)):
                what = f"{kind} values" if isinstance(given[name], np.ndarray | Tensor) else \
                    f"{given[name]!r:.60}"
                raise TypeError(f"load_state_dict: {name!r} holds {what}; a state holds arrays of real numbers "
                                "(a complex one would lose its imaginary part, a string be parsed)")
            if state[name].shape != shapes[name]:
                raise ValueError(f"{'parameter' if name in targets else 'buffer'} {name!r}: saved shape "
                                 f"{state[name].shape} does not match the model's {shapes[name]}")
            _check_fits(state[name], dtypes[name], name)
        return state, missing, unexpected

    # -- prediction -----------------------------------------------------------------------
    def outputs_probabilities(self) -> bool:
        """Whether the module says its forward ends in a softmax/sigmoid (the `Sigmoid` and
        `Softmax` layers, a `Sequential` that ends in one; a model of one's own may override it).
        Where it does not say, `predict_proba` reads it from the forward pass itself: outputs an op
        of `PROBABILITY_OPS` made are not passed through another."""
        return False

    def last_submodule(self):
        """The layer the module's forward ends in, where it says (a `Sequential`'s last), or None."""
        return None

    def checked_input(self, X, name: str = "X", n_features: int | None = None, cast: bool = True) -> np.ndarray:
        """``X`` checked (`check_features`: numbers, finite, values the model's dtype can hold,
        ``n_features`` of them) and flattened to a (m, features) NumPy array, not yet cast to the
        model's dtype (a float64 X stays float64: `network_input` casts it; ``cast=False``, integers
        stay integers too)."""
        check_feature_names(X, self.feature_names_in_, name)
        return rows(check_features(X, name, n_features, dtype=self.dtype, cast=cast))

    def network_input(self, X, name: str = "X", on_host: bool = True):
        """``(inputs, network)`` for a `checked_input` ``X``: the inputs in the model's dtype and the
        module that computes the model's outputs from them — what `predict` and `xdl.train.Trainer`
        run. A model whose forward starts with a layer that has a host form (``host_forward``: a
        `Standardize` first in a `Sequential`) has that layer applied here, in float64 and before
        the cast, and ``network`` is the model after it (sharing its layers): cast first, a feature
        with a large offset and a small spread would lose the spread (1e6 + 0.01·noise comes in
        float32 steps of 0.0625). ``on_host=False`` leaves it in the network (a Trainer whose
        batches are augmented on the raw values first)."""
        first = self._host_layer() if on_host else None
        if first is None:
            return X.astype(self.dtype, copy=False), self
        return first.host_forward(X, self.dtype, name), self[1:]

    def _array_dtype(self, dtype: np.dtype) -> np.dtype:
        """The dtype a floating array input of ``dtype`` becomes a Tensor in when the module is
        called on it (`__call__`): the module's."""
        return self.dtype

    def _first_layer(self):
        """The layer the module's forward starts with, where it says (a `Sequential` that runs its layers in
        order: its first), or None: what `input_features` reads the width of."""
        return None

    def _host_layer(self):
        """The layer `network_input` applies on the host, or None: a model of one's own may call its
        layers in any order, so it runs whole (`Sequential` names its first layer, where it has a
        host form)."""
        return None

    def predict_outputs(self, X, batch_size: int = 1024) -> np.ndarray:
        """Forward ``X`` (m, n_features, …: flattened, as a Trainer takes it) in evaluation mode, in
        batches, as a NumPy array; a leading `Standardize` layer is applied in float64 before the
        cast to the model's dtype (`network_input`). ``X`` must be finite: a NaN row has no
        prediction (it is refused, naming the row). The model runs in evaluation for the call, in
        this thread only (`evaluating_here`): its modes are left as they are, so threads may predict
        with one model at once, or beside its training."""
        return self._forward_all(X, batch_size)

    @no_grad()
    def _forward_all(self, X, batch_size: int, keep=None) -> np.ndarray:
        """`predict_outputs`' outputs, or with ``keep(outputs, probabilities)`` (``probabilities``:
        whether they are, said by the model or made by a softmax or sigmoid op last) what is kept of
        each batch's outputs, row for row (`predict`'s classes, `predict_proba`'s probabilities), taken as the
        batch comes: the outputs kept whole first, 200,000 examples' logits over 1,000 classes took
        800 MB for predict's 1.6 MB of classes (and predict_proba 4 GB: a float64 copy and its
        softmax's temporaries). Integer X is not cast whole before a leading `Standardize`, which
        reads it a piece at a time in float64 (`Standardizer.fit`'s ``cast=False``); without one, X is
        cast to the model's dtype a batch at a time (cast whole, a uint8 set took a float32 copy of it,
        4× its size, and a float64 one half its own)."""
        check_int(batch_size, "batch_size")
        # values the model's dtype can hold, and the first layer's width, as fit's: checked before X is flattened,
        # so a mismatch names X's shape as given, not the first layer its flattened (m, features)
        X = self.checked_input(X, n_features=input_features(self), cast=False)
        by_batch = self._host_layer() is None  # (`network_input` then casts, and the network is the model)
        X, network = (X, self) if by_batch else self.network_input(X)
        kept, bad, first_bad = None, 0, None
        with evaluating_here():  # no rows: one empty batch, so the result has the outputs' width
            # each batch to the host as it comes (device memory for one batch only), into the result, made at
            # the first (batches kept and concatenated took the outputs twice at the end)
            for i in range(0, max(len(X), 1), batch_size):
                batch = X[i:i + batch_size]
                if by_batch:
                    batch = batch.astype(self.dtype, copy=False)
                last = _one_output(network(batch), len(batch))
                out = last.numpy()
                finite = np.isfinite(out).reshape(len(out), out[0].size if len(out) else 0).all(axis=1)
                if not finite.all():  # (argmax would call a NaN row class 0): counted, refused after the last batch
                    first_bad = i + int(np.argmin(finite)) if first_bad is None else first_bad
                    bad += int((~finite).sum())
                if bad:  # nothing more is kept (a softmax of an Inf row would warn of its NaN)
                    continue
                probabilities = self.outputs_probabilities() or ends_in_probability(last)
                part = out if keep is None else keep(out, probabilities)
                if kept is None:
                    kept = np.empty((len(X), *part.shape[1:]), dtype=part.dtype)
                kept[i:i + len(part)] = part
        if bad:
            raise ValueError(f"predict: the model's outputs are NaN or Inf for {bad} of {len(X)} rows (the first: "
                             f"row {first_bad}): its state holds NaN or Inf (a diverged run's?), or its outputs "
                             "overflow its dtype")
        return kept

    def predict_proba(self, X, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities (m, C); a single-output (binary) model gives columns [1 − p, p]; a
        model trained with `BinaryCrossEntropy` on k > 1 outputs (``predicts == "labels"``: a
        multi-label model) each label's probability, (m, k), as scikit-learn's. A regression's
        model has none (ValueError). ``X`` and ``batch_size``: as `predict` takes them."""
        return self._forward_all(X, batch_size, self._probabilities)

    def predict(self, X, batch_size: int = 1024) -> np.ndarray:
        """The model's predictions by what it was trained for (``predicts``, which a `Trainer` sets
        from its loss): class indices (m,) — argmax, or logit > 0 for one output — the (m, k) 0/1
        labels of a multi-label model, or a regression's values (its outputs; (m,) for one). A model
        trained in a loop of one's own has no ``predicts`` (None: classes): set ``model.predicts =
        "values"`` for a regression's (``"labels"`` for a multi-label model's).

        ``X``: the examples, an array-like (m, features) or (m, …) (images: flattened) of finite numbers
        in the model's dtype's range; m may be 0. Computed in evaluation mode, without recording a graph.
        ``batch_size``: the examples of each forward pass, a positive integer: it bounds the memory a
        pass takes."""
        return self._forward_all(X, batch_size, self._predictions)

    def _predictions(self, out: np.ndarray, probabilities: bool) -> np.ndarray:
        """`predict`'s predictions from the outputs ``out`` of some rows (``probabilities``: they are)."""
        if self.predicts == "values":
            return out.reshape(-1) if out.ndim == 2 and out.shape[1] == 1 else out
        if not probabilities:
            # decided on the logits, as the Trainer's accuracy decides (`_correct`): σ and softmax keep the
            # order, but rounded to float32 σ(z) is 0.5 for 0 < z < 1.2e-7 and close logits' probabilities
            # tie, so predict said 0 (the first class) where evaluate counted the other right
            if self._multi_label(out):
                return (out > 0).astype(np.int64)
            return classes_of_logits(out).astype(np.int64)
        p = self._probabilities(out, probabilities)
        return (p > 0.5).astype(np.int64) if self._multi_label(out) else p.argmax(axis=1)

    def _multi_label(self, out) -> bool:
        return self.predicts == "labels" and out.ndim == 2 and out.shape[1] > 1

    def _probabilities(self, out: np.ndarray, probabilities: bool) -> np.ndarray:
        """Class probabilities from the outputs ``out``: as they are where they are ``probabilities``."""
        if self.predicts == "values":
            raise ValueError("predict_proba: this model predicts values (it was trained on a regression loss), not "
                             "class probabilities; predict(X) gives its predictions")
        if self._multi_label(out):
            return out if probabilities else sigmoid_array(np, out)
        if out.ndim == 1 or out.shape[1] == 1:
            p = out.reshape(-1) if probabilities else sigmoid_array(np, out.reshape(-1))
            return np.stack([1 - p, p], axis=1)
        return out if probabilities else softmax_array(np, out.astype(np.float64)).astype(out.dtype)

    def current_config(self) -> dict:
        """``config`` as the module holds it now: a setting kept as an attribute of its name is read
        again (``model[3].rate = 0.1`` after construction, PyTorch's ``model[3].p = 0.1``, is what
        `xdl.nn.describe`, `xdl.save` and the repr say, not the rate it was made with). A ``config``
        that is no mapping — a model of one's own holding its configuration object there
        (``self.config = config``, as Hugging Face's models do) — names no settings: {}."""
        config = self.__dict__.get("config")
        if not isinstance(config, Mapping):  # (its repr, and a captured step's `host_settings`, raised
            # "'Config' object has no attribute 'items'")
            return {}
        return {key: _setting_now(self.__dict__.get(key, value), value) for key, value in config.items()}

    def __repr__(self) -> str:
        """``Name(setting=value, …)``; a module holding submodules lists them below, one per line, as
        PyTorch prints a model (``(fc1): Dense(…)``): a model of one's own printed as ``Net()``, which
        hid every layer it holds."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.current_config().items())
        children = self.__dict__.get("_modules", {})
        if not children:
            return f"{type(self).__name__}({args})"
        lines = [args] if args else []
        lines += [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in children.items()]
        return f"{type(self).__name__}(\n" + "".join(f"  {line}\n" for line in lines) + ")"


# (the layers without a constructor of their own, ReLU's ``inplace=True``, come here: `__init_subclass__`
# wraps each constructor a subclass defines)
Module.__init__ = hinting_named_elsewhere(Module.__init__)
