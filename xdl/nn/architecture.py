"""A model's architecture as plain data: `describe` a model, `build` a fresh one from that.

The description names each layer's class and its constructor arguments (``Module.config``), so
it can be stored as JSON beside the weights (`xdl.save`) and compared (a resume, a stack of models).

>>> from xdl.nn import Dense, ReLU, Sequential
>>> describe(Sequential(Dense(2, 3), ReLU()))["layers"][0]
{'class': 'Dense', 'config': {'in_features': 2, 'out_features': 3, 'init': 'he', 'bias': True}}
"""

from __future__ import annotations

from xdl.backend import get_backend, host_rng_copy, thread_backend, thread_generator
from xdl.init import is_named
from xdl.nn.layers import BatchNorm, Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Softmax, Standardize, Tanh
from xdl.nn.module import Module, check_dtype
from xdl.nn.sequential import Sequential

LAYERS = {cls.__name__: cls for cls in (BatchNorm, Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Softmax, Standardize, Tanh,
                                          Sequential)}
# the layers whose ``dtype`` argument is their parameters' (Standardize's is an integer input's result's)
PARAMETER_DTYPE_LAYERS = (BatchNorm, Dense)


def describe(module: Module) -> dict:
    """The architecture of ``module`` as plain data (layer classes and constructor arguments)."""
    name = type(module).__name__
    if type(module) is Sequential:  # a subclass (its own forward, say) is a custom module, as a Dense subclass is
        return {"class": "Sequential", "layers": [describe(layer) for layer in module.layers]}
    if not is_xdl_layer(module):
        raise TypeError(f"cannot describe custom module {name}: save its state_dict() and rebuild it in code, "
                        "or pass model= to xdl.load")
    return {"class": name, "config": module.current_config()}


def is_xdl_layer(module: Module) -> bool:
    """Whether ``module`` is one of xdl's layers (`LAYERS`), not a module of one's own or a subclass
    (whose forward or settings a description would not hold)."""
    return LAYERS.get(type(module).__name__) is type(module)


def build(description: dict, initialize: bool = True, dtype=None) -> Module:
    """A fresh module from `describe`'s output (the host random stream is left untouched).

    ``initialize=False`` leaves the weights at zero, drawing nothing and touching no generator
    (another thread may be drawing from it): for a state about to be loaded into it (`xdl.load`,
    `Stacked.model`). ``dtype``: the parameters' dtype, float32 or float64 (None: each layer's
    default, float32), the layers made in it — so a setting checked in it (a float64 batch norm's
    ε = 1e-50, 0 in float32) builds as it was made."""
    check_dtype(dtype, "build: dtype")
    if not initialize:
        return _build(description, initialize, dtype)
    # drawn from a copy, not drawn then rewound: the rewind set the shared generator back over what another
    # thread seeded or drew meanwhile (an xdl.seed(1) there, then mlp(...), built other weights than alone)
    with thread_generator(host_rng_copy()):
        return _build(description, initialize, dtype)


def build_on_host(description: dict, dtype) -> Module:
    """A model of ``description`` on the numpy backend, in ``dtype``, its weights left at zero
    (nothing drawn): for a state to be loaded into it there, and the model then moved where it is
    to live (`Module.to`, one copy per flat buffer) — not one copy per parameter and state."""
    with thread_backend(get_backend("numpy")):
        # astype too: a layer of one's own in `LAYERS` is built in its default dtype
        return build(description, initialize=False, dtype=dtype).astype(dtype)


def _build(description: dict, initialize: bool, dtype=None) -> Module:
    name = description.get("class")
    if name == "Sequential":
        return Sequential(*[_build(d, initialize, dtype) for d in description["layers"]])
    if name not in LAYERS:
        raise ValueError(f"unknown layer class {name!r} in the saved architecture: a layer of one's own is "
                         f"rebuilt where xdl.nn.LAYERS[{name!r}] names its class, or load into a model you build: "
                         "xdl.load(path, model=...)")
    config = description.get("config", {})
    if dtype is not None and LAYERS[name] in PARAMETER_DTYPE_LAYERS:
        config = {**config, "dtype": dtype}
    init = config.get("init")
    # an initializer is recorded by name (`Dense`); an ``init`` of another kind — a number, the value
    # a layer's parameter starts at — is a plain setting, built as it was given (not swapped for "zeros")
    if not isinstance(init, str) or (initialize and is_named(init)):
        return LAYERS[name](**config)
    if initialize:  # zeros would train as one unit repeated (no symmetry broken), and nothing would say so
        raise ValueError(f"build: a {name} layer was made with init {init!r}, an initializer of one's own kept by "
                         "name only, which cannot be drawn again: build(..., initialize=False) and load its weights, "
                         "or make the layer in code with that initializer")
    # zeros in place of the initializer, which keeps its name (the description stays the same): the
    # weights are about to be loaded (`load`, `Stacked.model`)
    layer = LAYERS[name](**{**config, "init": "zeros"})
    layer.config["init"] = init
    return layer
