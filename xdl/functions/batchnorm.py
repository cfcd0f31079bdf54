"""Batch normalization as single autodiff nodes; the arithmetic lives in ``backend.ops``
(NumPy reference on the CPU, CUDA kernels on the GPU — see `xdl.ops.batchnorm` for the formulas)."""

from __future__ import annotations

import numpy as np

from xdl.checking import is_gradient_checking
from xdl.data.validation import check_bool, check_number
from xdl.function import Function
from xdl.functions.registry import Check, op
from xdl.tensor import Tensor, to_numpy


class BatchNormTrain(Function):
    """y = γ·(x − μ_B)/√(σ²_B + ε) + β with batch statistics; updates the running statistics.

    γ and β are (C,), or (K, C) for K stacked models' x (B, K·C) (`xdl.nn.stacked.StackedBatchNorm`: their own
    leaves, so that ∂L/∂γ and ∂L/∂β go straight into their views of the flat gradient buffer)."""

    running_mean: object
    running_var: object
    momentum: object = 0.9  # a float, or one value per feature (a stack of models with their own)
    eps: float = 1e-5

    def forward(self, x, gamma, beta):
        if x.ndim != 2:
            raise ValueError(f"batch norm expects an (N, C) input, got shape {tuple(x.shape)}")
        if x.shape[0] < 2:
            # (most often a trained model asked for one example's output in training mode: say how to
            # predict, as the evaluation mode's running statistics take any batch)
            raise ValueError(
                f"batch norm in training needs a batch of at least 2 examples to estimate a variance, got "
                f"{x.shape[0]}; to predict, use model.predict(X) or model(X, training=False) (or model.eval() "
                "first), which normalize with the running statistics"
            )
        # γ, β: (C,), or K stacked models' (K, C) rows of their (K, P) buffer, read in place (no gathering copy)
        y, self.mean, self.inv_std = self.backend.ops.batchnorm_train_forward(
            x, gamma, beta, self.running_mean, self.running_var, self.momentum, self.eps)
        self.x, self.gamma = x, gamma
        return y

    def backward(self, gy):
        # ∂L/∂γ and ∂L/∂β added by the backward's own reduction into their gradient buffers (no add of their own
        # on the GPU), else returned; one frozen gets neither
        into = [self._gradient_output(i, gy) for i in (1, 2)]
        dx, dgamma, dbeta = self.backend.ops.batchnorm_backward(gy, self.x, self.gamma, self.mean, self.inv_std,
                                                                *into, accumulate=True)
        return dx, *(None if buffer is not None or not self.needs_grad[i] else g.reshape(self.inputs[i].shape)
                     for i, buffer, g in ((1, into[0], dgamma), (2, into[1], dbeta)))

    def _gradient_output(self, i: int, gy):
        """Input i's `gradient_buffer` where there is one of gy's and x's dtype (the one ∂L/∂γ is computed in:
        no second rounding), else None."""
        into = self.gradient_buffer(i)
        return into if into is not None and into.dtype == gy.dtype == self.x.dtype else None


class BatchNormInference(Function):
    """y = γ·(x − running_mean)/√(running_var + ε) + β, computed as (x − running_mean)·scale + β."""

    running_mean: object
    running_var: object
    eps: float = 1e-5

    def forward(self, x, gamma, beta):
        self.x, self.gamma = x, gamma  # (K, C) for K stacked models, read in place as `BatchNormTrain` reads them
        if any(self.needs_grad):  # its backward reads them: as they are now (C numbers each), not as a training-mode
            # forward or a load_state_dict before it left them in place — the write clock sees tensors, not buffers
            self.running_mean, self.running_var = self.running_mean.copy(), self.running_var.copy()
        return self.backend.ops.batchnorm_inference(x, gamma, beta, self.running_mean, self.running_var, self.eps)

    def backward(self, gy):
        inv_std = 1.0 / self.xp.sqrt(self.running_var + self.eps)
        x_hat = (self.x - self.running_mean) * inv_std
        shape = self.inputs[1].shape  # (C,), or (K, C) stacked
        gx = gy * (self.gamma.reshape(-1) * inv_std)
        return gx, (gy * x_hat).sum(axis=0).reshape(shape), gy.sum(axis=0).reshape(shape)


_STATS = dict(running_mean=np.array([0.5, -1.0, 2.0]), running_var=np.array([0.5, 2.0, 1.5]))


def _described(array) -> str:
    shape, dtype = getattr(array, "shape", None), getattr(array, "dtype", None)
    return f"{type(array).__name__}" + (f" of shape {tuple(shape)} and dtype {dtype}" if shape is not None else "")


def eps_holds(eps: float, dtype) -> bool:
    """Whether ``eps`` is a finite ε > 0 in ``dtype``: 0 < ε < ∞ and 0 < dtype(ε) < ∞ — below the
    dtype's least subnormal ε is 0 there (1/√0 on a constant feature), above its largest value ∞ (every
    output β, the normalized values 0)."""
    if not 0 < eps < np.inf:
        return False
    try:
        with np.errstate(over="ignore"):  # (beyond the dtype: inf, refused by the comparison, not warned of)
            in_dtype = np.dtype(dtype).type(eps)
    except OverflowError:  # a Python int beyond every float (10**400): NumPy raises where a float gives inf
        return False
    return bool(0 < in_dtype < np.inf)


@op(domain=("real", "positive", "real"),
    check=[Check((6, 3), (3,), (3,), **_STATS), Check((6, 3), (3,), (3,), training=False, **_STATS)])
def batch_norm(x, gamma, beta, running_mean, running_var, training=True, momentum=0.9, eps=1e-5):
    """Batch norm of tensor ``x`` (N, C): batch statistics in training (``running_mean`` and
    ``running_var`` — arrays of x's backend, or tensors — are updated in place with ``momentum``, a
    number in [0, 1) or one per feature), the running ones otherwise; ``eps`` finite and > 0 in x's
    dtype (`eps_holds`)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"batch_norm: x must be an xdl Tensor (xdl.tensor(array)), got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"batch_norm: x must be floating, got dtype {x.dtype}")
    check_bool(training, "batch_norm: training")  # a string "False" would be true
    for name, param in (("gamma", gamma), ("beta", beta)):
        # one per feature: a 0-d or (1, C) γ would be broadcast in the forward but get a (C,) gradient
        shape = tuple(np.shape(param))
        if shape != x.shape[1:]:
            raise ValueError(f"batch_norm: {name} must have shape {x.shape[1:]} (x's features), got {shape}")
    running_mean, running_var = (s.data if isinstance(s, Tensor) else s for s in (running_mean, running_var))
    backend = x.backend
    for name, stat in (("running_mean", running_mean), ("running_var", running_var)):
        # updated in place: a list (or another backend's array) would be copied, and the update lost
        if not backend.owns(stat) or not np.issubdtype(stat.dtype, np.floating):
            raise TypeError(f"batch_norm: {name} must be a floating array (or tensor) of the {backend.name} backend "
                            f"(it is updated in place), got {_described(stat)}")
        if stat.shape != x.shape[1:]:
            raise ValueError(f"batch_norm: {name} must have shape {x.shape[1:]} (x's features), got {stat.shape}")
    if isinstance(eps, bool) or not isinstance(eps, int | float | np.integer | np.floating):
        raise TypeError(f"batch_norm: eps must be a number, got {eps!r}")
    if not eps_holds(eps, x.dtype):  # ε in x's dtype: 0 there is 1/√0 on a constant feature
        raise ValueError(f"batch_norm: eps must be a finite number > 0 in {x.dtype}, got {eps!r}")
    _check_momentum(momentum, x.shape[1:])
    return layer_batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps)


def _check_momentum(momentum, features: tuple) -> None:
    """``momentum``: a number in [0, 1), or one per feature (``features``, x's), each in [0, 1) — a
    host array's values read, a device array's shape and dtype only (the public function's check: a
    layer checked its own where it was set)."""
    if np.ndim(momentum) == 0:  # a number (a host 0-d array's value read; a device one's dtype only)
        if hasattr(momentum, "shape") and not isinstance(momentum, np.ndarray | np.generic):
            if not np.issubdtype(momentum.dtype, np.floating):
                raise ValueError(f"batch_norm: momentum must be a number in [0, 1), or one per feature; got "
                                 f"{_described(momentum)}")
            return
        value = momentum[()] if hasattr(momentum, "shape") else momentum
        check_number(value, "batch_norm: momentum", "a number in [0, 1), or one per feature", lambda m: 0 <= m < 1)
        return
    on_host = isinstance(momentum, np.ndarray | list | tuple)  # a device array's values are not read: no sync,
    values = to_numpy(momentum) if on_host else momentum     # nothing a captured step could not do
    if values.shape != features or values.dtype == np.bool_ or not np.issubdtype(values.dtype, np.number) \
            or (on_host and not ((values >= 0) & (values < 1)).all()):  # (a NaN is in no range)
        shown = f": {values.tolist()}" if on_host and values.size <= 8 else ""
        raise ValueError(f"batch_norm: momentum must be a number in [0, 1), or one per feature, of shape {features} "
                         f"and each in [0, 1); got {_described(momentum)}{shown}")


def layer_batch_norm(x, gamma, beta, running_mean, running_var, training: bool, momentum, eps: float):
    """`batch_norm` without its checks, as a layer calls it at every forward: the layer checked its
    settings where they were set, and the running statistics are its own buffers — but for its eps in
    x's dtype, which ``model.astype`` may have narrowed (one comparison for any usual ε). An x
    narrower than the running statistics (a float16 tensor into a float32 layer) is widened to
    their dtype first, as a Dense layer's product widens it."""
    if x.dtype != running_mean.dtype and x.dtype.itemsize < running_mean.dtype.itemsize:
        # computed in float16, (x − μ)² overflows at 65504: the outputs were 0 and running_var inf for good
        x = x.astype(running_mean.dtype)
    if not 1e-30 <= eps <= 1e38 and not eps_holds(eps, x.dtype):  # (float32 holds every ε in [1e-30, 1e38])
        raise ValueError(f"BatchNorm: eps {eps!r} is 0 in {x.dtype}: 1/√(0 + ε) on a constant feature" if eps < 1 else
                         f"BatchNorm: eps {eps!r} is inf in {x.dtype}: 1/√(σ² + ε) = 0, every output β")
    if is_gradient_checking():  # a check calls the model many times and must not change it
        momentum = 1.0  # running = 1·running + 0·batch
    # per feature: float64, as a Python float is — the factors derived from it are rounded to x's dtype
    # once (`xdl.ops.batchnorm`), so each stacked model's statistics are those it keeps alone
    if not isinstance(momentum, float):  # (a layer's is one: `xdl.nn.BatchNorm.checked_settings`)
        momentum = float(momentum) if np.ndim(momentum) == 0 else x.backend.asarray(momentum, dtype=np.float64)
    if training:
        return BatchNormTrain.apply(x, gamma, beta, running_mean=running_mean, running_var=running_var,
                                    momentum=momentum, eps=eps)
    return BatchNormInference.apply(x, gamma, beta, running_mean=running_mean, running_var=running_var, eps=eps)
