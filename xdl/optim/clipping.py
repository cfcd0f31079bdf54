"""Gradient clipping by global norm: PyTorch's ``torch.nn.utils.clip_grad_norm_``, between ``backward`` and ``step``.

>>> import numpy as np, xdl
>>> model = xdl.nn.mlp(3, [4], 2)
>>> model(np.ones((5, 3), np.float32)).sum().backward()
>>> norm = xdl.optim.clip_grad_norm(model, max_norm=1e-3)  # the norm before clipping, a 0-d array
>>> bool(norm > 1e-3)
True
>>> float(xdl.optim.clip_grad_norm(model, max_norm=1.0)) < 1e-3 + 1e-9
True
"""

from __future__ import annotations

import math

import numpy as np

from xdl.backend import backend_of, current_backend
from xdl.data.validation import check_number
from xdl.flat import check_one_backend, contiguous_range
from xdl.tensor import Tensor, peer_order_refused

EPSILON = 1e-6  # added to the norm before dividing (PyTorch's): a zero gradient divides by 1e-6, not by 0
# PyTorch's clip_grad_norm_ options → the way here (`clip_grad_norm`): Python's "unexpected keyword argument" named
# the option, not the way
PYTORCH_CLIP_OPTIONS = {
    "norm_type": "not offered: the norm is always the 2-norm (PyTorch's default, norm_type=2); leave it out",
    "error_if_nonfinite": "not offered: the norm returned is NaN or inf then (read it to check: a sync on a GPU), "
                          "and a Trainer's divergence check stops the run at the NaN cost that follows",
    "foreach": "not offered: a model's gradients of one dtype are one buffer, one reduction and one scale already",
}


def clip_grad_norm(parameters, max_norm, *peer_positional, **options):
    """Scale the gradients in place so that their global 2-norm is at most ``max_norm``; return the norm before.

        ‖g‖₂ = sqrt(Σ_p Σ_i g_{p,i}²)  over every gradient together, as if they were one vector
        g ← g · min(1, max_norm / (‖g‖₂ + 1e-6))

    PyTorch's convention (``clip_grad_norm_``): a norm of at most ``max_norm`` − 1e-6 multiplies by exactly 1, so
    the gradients are unchanged bit for bit (one closer under ``max_norm`` is scaled by a hair, as PyTorch's); the
    scale is computed on the device and applied whatever it is, so the call reads nothing back to the host (no sync
    on a GPU). The squares are summed in float64 (a float32
    gradient of 1e20 has a finite norm), and the norm returned is a 0-d array of the backend in the gradients'
    dtype (float64 where float32 and float64 gradients are clipped together).

    ``parameters``: a model (its parameters that train, as an optimizer given the model takes them: a frozen
    one's gradient is left out, as PyTorch's, which has none), a list of tensors or one tensor; one whose
    ``grad`` is None is skipped, as PyTorch does. A `Stacked` model (`xdl.nn.stack`) is K models: each is
    clipped by its own norm (one per row of its (K, P) gradient buffer), as K models trained apart would be,
    and the K norms are returned, a (K,) array.
    ``max_norm``: a finite number > 0. PyTorch's ``norm_type``, ``error_if_nonfinite`` and ``foreach`` are
    refused, each saying the way here (`PYTORCH_CLIP_OPTIONS`), by name or by position (its third is norm_type).

    Where the parameters of a dtype fill a run of a flat buffer back to back (a model's do), that run is one
    reduction and one scale; otherwise each gradient is one. A NaN among the gradients makes the norm NaN and
    every gradient NaN; an Inf makes the norm Inf, the scale 0, finite gradients 0 and infinite ones NaN
    (PyTorch's results): the next step writes NaN into the weights, so the cost after it is NaN and a divergence
    check on the cost stops the run.
    """
    if peer_positional:  # (clip_grad_norm_(params, 1.0, 2): Python's "takes 2 positional arguments" named no way)
        raise peer_order_refused("clip_grad_norm", ["parameters", "max_norm"], 2 + len(peer_positional),
                                 "PyTorch's third, clip_grad_norm_(parameters, max_norm, norm_type), is "
                                 + PYTORCH_CLIP_OPTIONS["norm_type"])
    for name in options:
        way = PYTORCH_CLIP_OPTIONS.get(name, "not an option of clip_grad_norm (it takes parameters and max_norm)")
        raise TypeError(f"clip_grad_norm() takes no option {name}=: {way}")
    max_norm = check_number(max_norm, "clip_grad_norm: max_norm", "a finite number > 0",
                            lambda value: 0 < value < math.inf)
    from xdl.nn.stacked import Stacked  # (deferred: xdl.nn sits above the optimizers' modules)

    if isinstance(parameters, Stacked):
        return _clip_rows([parameters.grad], max_norm, (parameters.n_models,), parameters.grad.dtype)
    params = _checked_parameters(parameters)
    grads = _gradient_arrays(params)
    if not grads:  # (PyTorch's: a norm of 0)
        backend = params[0].backend if params else current_backend()
        return backend.xp.zeros((), dtype=np.float32)
    return _clip_rows(grads, max_norm, (), np.result_type(*(g.dtype for g in grads)))


def _checked_parameters(parameters) -> list:
    """``parameters`` as a list of tensors (a model's, a list, or one tensor), refused before any change where
    they live on several backends or one is a stacked model's (its gradient holds K models' rows, which one
    norm over the list would mix: give the `Stacked` model itself)."""
    if hasattr(parameters, "parameters") and callable(parameters.parameters):
        params = [p for p in parameters.parameters() if p.requires_grad]  # (as an optimizer given the model)
    elif isinstance(parameters, Tensor):
        params = [parameters]
    else:
        try:
            params = list(parameters)
        except TypeError:
            raise TypeError(f"clip_grad_norm: parameters must be a model, a list of tensors or a tensor, got "
                            f"{type(parameters).__name__}") from None
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"clip_grad_norm: parameters[{i}] is a {type(p).__name__}, expected an xdl.Tensor")
        if getattr(p, "_stacked", False):
            raise TypeError(f"clip_grad_norm: parameters[{i}] belongs to a Stacked model (its gradient holds K "
                            "models' rows); give the Stacked model itself, which clips each model by its own norm")
    if params:
        check_one_backend(params, "clip_grad_norm")
    return params


def _gradient_arrays(params) -> list:
    """The arrays holding ``params``' gradients: per dtype, the one run of a flat buffer they fill back to
    back (`contiguous_range`), else each parameter's own; a parameter whose ``grad`` is None left out."""
    by_dtype: dict = {}
    for p in params:
        if p.grad is not None:
            by_dtype.setdefault(p.dtype, []).append(p)
    grads = []
    for group in by_dtype.values():
        run = contiguous_range(group)
        if run is not None:
            grads.append(run[1])
        else:  # (a grad rebound to a Tensor by hand, PyTorch's ``p.grad = t``: its array)
            grads.extend(p.grad.data if isinstance(p.grad, Tensor) else p.grad for p in group)
    return grads


def clip_buffers(grads, max_norm, rows: int = 1) -> None:
    """Clip gradient buffers in place, as `clip_grad_norm` does, for an optimizer's ``max_grad_norm`` (at the
    start of its step): ``grads``, arrays whose leading axis is the model's (``rows`` of them: a `Stacked`
    model's K, each clipped by its own norm over all the arrays), or of one model where ``rows`` is 1.

        g_k ← g_k · min(1, max_norm_k / (‖g_k‖₂ + 1e-6))

    ``max_norm``: a finite number > 0 (checked by the caller), or a (rows,) float64 array of the backend,
    inf for a model not clipped (its gradients multiplied by exactly 1, an infinite norm's too)."""
    _scale(grads, _norms(grads, rows), max_norm, rows)


def _clip_rows(grads, max_norm: float, shape: tuple, dtype):
    """Clip ``grads`` (arrays whose leading axis is the model's, of length ``shape``'s product: 1 where
    ``shape`` is ()) by each model's norm over all of them; the norms, of ``shape`` and ``dtype``."""
    rows = int(np.prod(shape))
    norms = _norms(grads, rows)
    _scale(grads, norms, max_norm, rows)
    return norms.astype(dtype).reshape(shape)


def _norms(grads, rows: int):
    """Each model's norm over ``grads``, a (rows,) float64 array: sqrt(Σ g²) per row, squared and summed in float64
    by the backend (`Backend.row_sums_of_squares`: on the CPU by cache-sized chunks, no float64 copy of ``g``)."""
    backend = backend_of(grads[0])
    squares = None
    for g in grads:
        row_sums = backend.row_sums_of_squares(g, rows)
        squares = row_sums if squares is None else squares + row_sums
    return backend.xp.sqrt(squares)


def _scale(grads, norms, max_norm, rows: int) -> None:
    """``grads`` (rows of ``rows`` models, or one model's where ``rows`` is 1) times min(1, max_norm / (norm + ε)),
    in place; where every scale is 1 and a host read is cheap (the CPU), not written at all."""
    backend = backend_of(grads[0])
    xp = backend.xp
    # min(1, ·) by clip: NaN stays NaN (so do the gradients, PyTorch's); the ratio is ≥ 0, so 0 clips nothing
    with np.errstate(invalid="ignore"):  # (inf/inf of a model not clipped whose norm is inf: replaced below)
        scales = xp.clip(max_norm / (norms + EPSILON), 0.0, 1.0)
    if getattr(max_norm, "ndim", 0):  # (K,) max norms, inf for a model not clipped: exactly 1 (inf/inf is NaN)
        scales = xp.where(xp.isfinite(max_norm), scales, 1.0)
    if backend.host_sync_is_cheap and bool((scales == 1.0).all()):
        return  # every norm + ε at most its max: ×1 would rewrite each gradient unchanged. (On a GPU reading the
        # scales is a sync, and a captured step cannot branch on them: it multiplies whatever they are.)
    for g in grads:
        g *= scales.astype(g.dtype).reshape((rows,) + (1,) * (g.ndim - 1) if rows > 1 else ())
