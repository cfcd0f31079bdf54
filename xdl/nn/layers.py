"""Layers: Dense, activations, Dropout, BatchNorm."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from xdl import functions as F
from xdl import init as initializers
from xdl.backend import array_to_numpy
from xdl.data.validation import check_bool, check_n_features, check_number, check_width, standardized
from xdl.functions.batchnorm import eps_holds, layer_batch_norm
from xdl.functions.regularization import check_drop_rate, checked_mask_key, layer_dropout
from xdl.nn.module import Module, check_dtype
from xdl.tensor import Tensor


def check_input(x, layer, features: int | None = None, rows: str = "m", dtype=None) -> Tensor:
    """``x`` if it is a floating Tensor (of shape (rows, features) where ``features`` is given);
    an integer or boolean one cast to ``dtype``, a layer's own (integer features, pixel values:
    `Module.__call__` keeps them as they are, for a layer that reads indices); else an error
    naming the layer (``layer()``: its name, made only for the message — this runs every call)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer()}: expected a Tensor input, got a {type(x).__name__}")
    if features is not None and (x.ndim != 2 or x.shape[1] != features):
        raise ValueError(f"{layer()}: expected input of shape ({rows}, {features}), got {x.shape}")
    if dtype is None and x.dtype.kind != "f":
        raise TypeError(f"{layer()}: expected a floating input, got {x.dtype}; convert it with x.astype(model.dtype)")
    return as_floating(x, dtype)


def as_floating(x: Tensor, dtype) -> Tensor:
    """``x``, or an integer or boolean ``x`` cast to ``dtype``: a layer that computes in floats takes
    integer features (pixel values) in its own dtype."""
    return x if x.dtype.kind == "f" else x.astype(dtype)


class Dense(Module):
    """Fully connected layer: Y = X·W + b, X (m, in_features), W (in_features, out_features).

    ``in_features`` and ``out_features``: positive integers of at most 2**31 − 1. ``init`` names the
    weight initializer ("he", "xavier", "glorot", "normal", "zeros") or is a callable
    ``shape -> array``; the bias starts at zero. ``bias=False`` drops it (before a BatchNorm, whose
    β does its job). ``dtype``: the parameters' dtype, float32 or float64; None (the default) is
    float32 (a named initializer draws in float64, then rounds to it). ``init``, ``bias`` and ``dtype``
    are keywords only: PyTorch's Linear(in_features, out_features, bias) takes bias third.

    >>> import numpy as np, xdl
    >>> layer = xdl.nn.Dense(3, 2)
    >>> x = xdl.tensor([[1.0, 2.0, 3.0]])
    >>> y = layer(x)
    >>> y.shape, bool(np.allclose(y.numpy(), x.numpy() @ layer.weight.numpy() + layer.bias.numpy()))
    ((1, 2), True)
    """

    # PyTorch's Linear(in_features, out_features, bias, device, dtype) is this layer's: Dense(3, 2, False) took
    # False as init ("unknown initializer False"), so the settings after out_features are keywords
    pytorch_positional = ("PyTorch's third, Linear(in_features, out_features, bias), is bias here: give bias=… "
                          "(and init=…, dtype=…) by name")
    # Keras's Dense's keywords:
    keras_names = {
        "units": "out_features here (with in_features, the input's width: Dense(in_features, out_features))",
        "input_dim": "in_features here",
        "activation": "a layer of its own here, after this one: Sequential(Dense(…), ReLU())",
        "use_bias": "bias here",
        "kernel_initializer": "init here",
        "bias_initializer": "not offered here: the bias starts at zero",
        "kernel_regularizer": "Trainer(l2=…) or Trainer(l1=…) here, on every weight of the model (Keras's l2(λ) "
                              "is l2=2·m·λ, l1(λ) is l1=m·λ, m the batch size)",
        "bias_regularizer": "not offered here: the penalties cover weights, not biases",
        "kernel_constraint": "not offered here",
        "bias_constraint": "not offered here",
        "lora_rank": "not offered here",
    }

    def __init__(self, in_features: int, out_features: int, *, init="he", bias: bool = True, dtype=None):
        super().__init__()
        self.in_features = check_n_features(in_features, "Dense: in_features")
        self.out_features = check_n_features(out_features, "Dense: out_features")
        check_dtype(dtype, "Dense: dtype")
        bias = check_bool(bias, "Dense: bias")
        self.config = {"in_features": self.in_features, "out_features": self.out_features,
                       "init": initializers.recorded_name(init), "bias": bias}
        shape = (self.in_features, self.out_features)
        weight = initializers.get(init)(shape)
        if np.shape(weight) != shape:  # an initializer of one's own that forgot the shape it was asked for
            raise ValueError(f"Dense: init gave an array of shape {np.shape(weight)}, the weight is {shape}")
        with np.errstate(over="ignore", invalid="ignore"):  # (said below, naming the layer)
            self.add_parameter("weight", weight, "weight", dtype)
        if not bool(self.weight.backend.xp.isfinite(self.weight.data).all()):  # fit would call it a divergence
            raise ValueError(f"Dense: init {self.config['init']!r} drew weights that are not finite in "
                             f"{self.weight.dtype} (NaN, or beyond its range): draw them at a smaller scale")
        self.bias = None
        if bias:
            self.add_parameter("bias", np.zeros(self.out_features), "bias", dtype)

    def forward(self, x):
        x = check_input(x, lambda: f"Dense({self.in_features}→{self.out_features})", self.in_features,
                        dtype=self.weight.dtype)
        return F.linear(x, self.weight, self.bias)


class ReLU(Module):
    """y = max(x, 0)"""

    keras_names = {"negative_slope": "LeakyReLU(slope) here", "max_value": "not offered here (no cap)",
                   "threshold": "not offered here (the threshold is 0)"}
    # PyTorch's ReLU(inplace): ReLU(True) was told only Python's "Module.__init__() takes 1 positional argument"
    pytorch_positional = ("PyTorch's first, ReLU(inplace), is not offered here: each layer writes its output to a "
                          "new array")

    def forward(self, x):
        return F.relu(x)


class LeakyReLU(Module):
    """y = x if x > 0 else slope·x

    ``slope`` is checked where it is set (``layer.slope = 0.2`` too: `checked_settings`; set by hand, a
    NaN or ∞ made every negative input's output NaN or ∞, and a string was refused only by the forward)."""

    checked_settings = MappingProxyType({
        "slope": lambda layer, slope: check_number(slope, "LeakyReLU: slope", "a finite number", np.isfinite),
    })
    pytorch_names = {"negative_slope": "slope here"}  # (Keras 3's name too)
    keras_names = {"alpha": "slope here (Keras 2's; its default is 0.3, here 0.01 as PyTorch's)"}
    pytorch_positional = ("PyTorch's second, LeakyReLU(negative_slope, inplace), is not offered here: each layer "
                          "writes its output to a new array")

    def __init__(self, slope: float = 0.01):
        super().__init__()
        self.slope = slope
        self.config = {"slope": self.slope}

    def forward(self, x):
        return F.leaky_relu(x, self.slope)


class Tanh(Module):
    """y = tanh(x)"""

    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    """y = 1/(1 + e⁻ˣ)"""

    def forward(self, x):
        return F.sigmoid(x)

    def outputs_probabilities(self) -> bool:
        return True


def _checked_axis(axis) -> int:
    """A softmax's axis as an int, else an error naming it."""
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
        raise TypeError(f"Softmax: axis must be an integer, got {axis!r}")
    return int(axis)


class Softmax(Module):
    """y = softmax(x) along ``axis`` (the last by default). For training, prefer logits with
    SoftmaxCrossEntropy. ``axis`` is checked where it is set (``layer.axis = 0`` too: `checked_settings`)."""

    checked_settings = MappingProxyType({"axis": lambda layer, axis: _checked_axis(axis)})
    pytorch_names = {"dim": "axis here"}

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = axis
        self.config = {"axis": self.axis}

    def forward(self, x):
        return F.softmax(x, axis=self.axis)

    def outputs_probabilities(self) -> bool:
        return True


class Dropout(Module):
    """Inverted dropout: drops each unit with probability ``rate`` (= 1 − keep_prob) in training and
    scales the kept ones by 1/(1 − rate); the identity in evaluation.

    Masks come from the key `Module.set_random_key` gave (a pure function of seed, layer and step:
    how `Trainer` runs it; a layer called twice in one forward pass draws a mask per call,
    `Module.draw_key`), or else from the backend's seeded generator.

    ``rate`` and ``random_key`` are checked where they are set (``layer.rate = 0.1`` too: `checked_settings`),
    so each forward reads them as they are. ``p``, PyTorch's name (``Dropout(p=0.5)``, ``layer.p = 0.1``),
    is ``rate``: a ``layer.p = 0.1`` of a PyTorch habit set an attribute no forward read, and the rate stayed.
    """

    draws_random = True
    checked_settings = MappingProxyType({
        "rate": lambda layer, rate: check_drop_rate(rate, "Dropout: rate"),
        "random_key": lambda layer, key: None if key is None else checked_mask_key(key, "Dropout: random_key"),
    })
    keras_names = {"noise_shape": "not offered here: each unit is dropped on its own",
                   "seed": "the run's seed here: Trainer(seed=…) or xdl.seed(n) (the masks are drawn from it)"}
    # (Keras's second, noise_shape, is refused by name above)
    pytorch_positional = ("PyTorch's second, Dropout(p, inplace), is not offered here: each layer writes its output "
                          "to a new array")

    def __init__(self, rate: float | None = None, *, p: float | None = None):
        if rate is not None and p is not None:
            raise TypeError(f"Dropout: give the drop probability once, as rate (or p, PyTorch's name), "
                            f"got rate={rate!r} and p={p!r}")
        super().__init__()
        self.rate = p if rate is None else rate  # (neither: None, refused by the rate's check, as `d.rate = None`)
        self.config = {"rate": self.rate}
        self.random_key = None  # (seed, stream, step), set by Module.set_random_key

    @property
    def p(self) -> float:
        """PyTorch's name of ``rate``: reading and setting it reads and sets ``rate`` (checked there)."""
        return self.rate

    @p.setter
    def p(self, value) -> None:
        self.rate = value

    def forward(self, x):
        check_input(x, lambda: f"Dropout({self.rate})")
        training = self.training
        return layer_dropout(x, self.rate, training, self.draw_key() if training else None)


def _checked_momentum(momentum) -> float:
    """A batch norm's momentum as a float in [0, 1), else an error naming it (1 would freeze the
    running statistics, above it extrapolate them)."""
    return check_number(momentum, "BatchNorm: momentum", "a number in [0, 1)", lambda b: 0 <= b < 1)


def checked_eps(eps, dtype, name: str = "BatchNorm: eps") -> float:
    """A batch norm's ε as a float, finite and > 0 in ``dtype`` (its γ's: 0 there is 1/√(0 + ε) on a
    feature constant over the batch, ∞ zeroes every output; `eps_holds`), else an error naming it (``name``)."""
    dtype = np.dtype(dtype)
    return check_number(eps, name, f"a finite number > 0 in {dtype}", lambda e: eps_holds(e, dtype))


# how a batch norm's γ and β are kept as they start (PyTorch's affine=False, Keras's center=False, scale=False)
KEPT_AS_THEY_START = "(to keep them as they start: for p in bn.parameters(): p.requires_grad = False)"


class BatchNorm(Module):
    """Batch normalization of (N, features) activations.

    Training: y = γ·(x − μ_B)/√(σ²_B + ε) + β with the batch's mean and biased variance, and
    running = momentum·running + (1 − momentum)·batch (unbiased variance for running_var).
    Evaluation: the running statistics replace the batch ones. γ starts at 1, β at 0.
    The running mean starts at 0 and the running variance at 1, and neither is bias-corrected (PyTorch's
    and Keras's convention; the course's EWA of the batches' statistics would divide by 1 − momentumᵗ):
    after t training batches of one mean μ and (unbiased) variance σ², they are (1 − momentumᵗ)·μ and
    momentumᵗ + (1 − momentumᵗ)·σ² — at the default 0.9, 65% of the way after 10 batches, 99% after 44 —
    so a model evaluated after only a few steps normalizes with statistics still near where they started.
    A training batch needs at least 2 examples (a variance of one is no estimate).

    ``features``: the activations' width, a positive integer of at most 2**31 − 1.
    ``momentum``: a number in [0, 1) (0.9 by default), the weight of the running value (Keras's
    convention): PyTorch's ``BatchNorm1d(momentum=0.1)`` weighs the batch's instead, and is ``momentum=0.9``
    here (0.1 here keeps 90% of each batch's statistics). ``eps``: ε, a finite number > 0 that is not
    0 in the layer's dtype (1e-5 by default), which keeps the division finite for a feature constant
    over the batch. ``dtype``: the dtype of γ, β and the running statistics, float32 or float64;
    None (the default) is float32. ``momentum``, ``eps`` and ``dtype`` are keywords only: PyTorch's
    BatchNorm1d(num_features, eps, momentum) takes eps second, and BatchNorm(64, 1e-5) set momentum=1e-5
    here (the running statistics became the last batch's) without a word.

    ``momentum`` and ``eps`` are checked where they are set (``bn.momentum = 0.99`` too, PyTorch's
    habit: `checked_settings`; a momentum of 1.5 extrapolated the running statistics, 1.0 froze them
    and made a file xdl.load could not rebuild), so each forward reads them as they are — but for ε
    in x's dtype, which ``astype`` may have narrowed (`layer_batch_norm`'s one comparison).
    """

    min_batch = 2
    checked_settings = MappingProxyType({
        "momentum": lambda layer, momentum: _checked_momentum(momentum),
        "eps": lambda layer, eps: checked_eps(eps, layer.dtype),  # (γ's dtype, once the constructor made γ)
    })
    pytorch_names = {
        "num_features": "features here",
        "affine": f"not offered here: γ and β are always learned {KEPT_AS_THEY_START}",
        "track_running_stats": "not offered here: the running statistics are always kept, and evaluation uses them",
    }
    pytorch_positional = ("PyTorch's second and third, BatchNorm1d(num_features, eps, momentum), are eps and "
                          "momentum here, by name: eps=…, momentum=… (PyTorch's momentum=0.1 weighs the batch: "
                          "momentum=0.9 here)")
    keras_names = {
        "epsilon": "eps here",
        "axis": "not offered here: the features are the last axis of (N, features) inputs",
        "center": f"not offered here: β is always learned {KEPT_AS_THEY_START}",
        "scale": f"not offered here: γ is always learned {KEPT_AS_THEY_START}",
        "beta_initializer": "not offered here: β starts at 0",
        "gamma_initializer": "not offered here: γ starts at 1",
        "moving_mean_initializer": "not offered here: the running mean starts at 0",
        "moving_variance_initializer": "not offered here: the running variance starts at 1",
        "beta_regularizer": "not offered here: the penalties cover weights, not γ or β",
        "gamma_regularizer": "not offered here: the penalties cover weights, not γ or β",
        "beta_constraint": "not offered here",
        "gamma_constraint": "not offered here",
        "synchronized": "not offered here: a batch is normalized on one device",
    }

    def __init__(self, features: int, *, momentum: float = 0.9, eps: float = 1e-5, dtype=None):
        super().__init__()
        self.features = check_n_features(features, "BatchNorm: features")
        self.momentum = momentum
        check_dtype(dtype, "BatchNorm: dtype")
        eps = checked_eps(eps, dtype or np.float32)  # before γ is made in that dtype (it is set below)
        self.add_parameter("gamma", np.ones(features), "scale", dtype)
        self.add_parameter("beta", np.zeros(features), "shift", dtype)
        self.add_buffer("running_mean", np.zeros(features), dtype)
        self.add_buffer("running_var", np.ones(features), dtype)
        self.eps = eps
        self.config = {"features": self.features, "momentum": self.momentum, "eps": self.eps}

    def forward(self, x):
        x = check_input(x, lambda: f"BatchNorm({self.features})", self.features, "N", self.gamma.dtype)
        return layer_batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var, self.training,
                                self.momentum, self.eps)


class Standardize(Module):
    """x' = (x − mean) / scale per feature, with statistics fitted on the training set (see
    `xdl.data.Standardizer`); kept as buffers, so the model normalizes its own inputs and `xdl.save`
    stores the statistics with the weights. The statistics stay float64 in a model of any dtype
    (`float64_buffers`), and x' is computed in float64 and returned in x's floating dtype (an
    integer x's: ``dtype``, float32 by default, which `astype` leaves): in float32 a mean of 1e6
    would be off by up to 0.03, more than the spread of a feature measured to 1e-3."""

    float64_buffers = ("mean", "scale")
    # Keras's Normalization(axis, mean, variance, invert) is this layer's peer
    keras_names = {"variance": "scale here, a standard deviation: scale=np.sqrt(variance)",
                   "axis": "not offered here: the features are the last axis of (N, features) inputs",
                   "invert": "not offered here"}

    def __init__(self, features: int, mean=None, scale=None, dtype=None):
        super().__init__()
        self.features = check_n_features(features, "Standardize: features")
        check_dtype(dtype, "Standardize: dtype")
        self.config = {"features": self.features, **({"dtype": np.dtype(dtype).name} if dtype is not None else {})}
        self.integer_dtype = np.dtype(dtype or np.float32)
        # statistics of any backend (CuPy's refuse np.asarray): kept on the host, in float64, until `to`
        mean = np.zeros(features) if mean is None else array_to_numpy(mean).astype(np.float64, copy=False)
        scale = np.ones(features) if scale is None else array_to_numpy(scale).astype(np.float64, copy=False)
        if mean.shape != (features,) or scale.shape != (features,):
            raise ValueError(f"Standardize: mean and scale must be ({features},), got {mean.shape} and {scale.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("Standardize: mean must be finite, and scale finite and > 0")
        self.add_buffer("mean", mean, np.float64)
        self.add_buffer("scale", scale, np.float64)

    def __setstate__(self, state: dict) -> None:
        """A layer an older xdl pickled: its statistics widened to float64, integers cast to float32."""
        super().__setstate__(state)
        self.__dict__.setdefault("integer_dtype", np.dtype(np.float32))
        for name in self.float64_buffers:
            object.__setattr__(self, name, getattr(self, name).astype(np.float64, copy=False))

    def _array_dtype(self, dtype: np.dtype) -> np.dtype:
        """An array of ``dtype`` is taken as it is, float64 kept (widened to this layer's dtype where
        narrower: float16): cast to float32 first, 1e6 + 0.001 would be 1e6 before it is standardized."""
        return np.promote_types(dtype, self.integer_dtype)

    def forward(self, x):
        # integers (beyond 2**24, float32 rounds them) in float64 first, as the host form computes it
        dtype = self.integer_dtype if isinstance(x, Tensor) and x.dtype.kind != "f" else None
        x = check_input(x, lambda: f"Standardize({self.features})", self.features, "N",
                        np.float64 if dtype is not None else self.integer_dtype)
        return ((x - self.mean) / self.scale).astype(dtype or x.dtype)

    def host_forward(self, X: np.ndarray, dtype, name: str = "X") -> np.ndarray:
        """forward on host inputs ``X`` (m, features), returned in ``dtype`` (the network's):
        (x − mean) / scale in float64, then cast (`standardized`: a result beyond ``dtype``'s range
        is refused, naming the example and feature). What `Module.network_input` runs for a model
        that starts with this layer."""
        check_width(X.shape[1], self.features, name)
        mean, scale = (self.backend.to_numpy(a) for a in (self.mean, self.scale))
        return standardized(X, mean, scale, dtype, name)
