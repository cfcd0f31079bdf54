"""K models in one pass: the dense layer and the loss over stacked models.

Activations of K models are laid out (B, K, C): example b, model k, feature c. So a batch-norm
layer sees a (B, K·C) matrix (its kernels apply unchanged, one column per model and feature) and
elementwise functions need nothing new. A model's parameters are stacked on a leading axis:
W (K, n_in, n_out), b (K, n_out). The products go through ``backend.ops.matmul``: one
strided-batched GEMM on the GPU (on the strided views, no copies), ``xp.matmul`` on the CPU.
"""

from __future__ import annotations

import numpy as np

from xdl.function import Function
from xdl.functions.registry import Check, op
from xdl.functions.regularization import check_drop_rate, checked_mask_key
from xdl.ops.random import MAX_DROP_RATE

_LABELS = np.array([0, 2, 1, 1, 0])


@op(check=[Check((5, 3, 4), (3, 4, 2), (3, 2)), Check((5, 4), (3, 4, 2), (3, 2)), Check((5, 2, 4), (2, 4, 3))])
class StackedLinear(Function):
    """Y[b, k] = X[b, k]·W[k] + b[k] for X (B, K, n_in) — or X (B, n_in), the same input for every
    model — W (K, n_in, n_out), b (K, n_out) (optional); Y (B, K, n_out). One batched product.

    Backward:  ∂L/∂X[:, k] = ∂L/∂Y[:, k]·W[k]ᵀ (summed over k for a shared X),
               ∂L/∂W[k] = X[:, k]ᵀ·∂L/∂Y[:, k],  ∂L/∂b[k] = Σ_b ∂L/∂Y[b, k]
    """

    def forward(self, x, w, b=None):
        # (an x of one axis or of four was NumPy's matmul error, naming neither the function nor the shapes it takes)
        if w.ndim != 3 or x.ndim not in (2, 3) or x.shape[-1] != w.shape[1] or \
                (x.ndim == 3 and x.shape[1] != w.shape[0]):
            raise ValueError(f"stacked_linear: input {tuple(x.shape)} does not fit weights {tuple(w.shape)} "
                             "(expected (B, K, n_in) or (B, n_in) for (K, n_in, n_out))")
        if b is not None and b.shape != (w.shape[0], w.shape[2]):  # broadcast, it would get a (K, n_out) gradient
            raise ValueError(f"stacked_linear: bias {tuple(b.shape)} does not fit weights {tuple(w.shape)} "
                             f"(expected (K, n_out) = {(w.shape[0], w.shape[2])})")
        self.x, self.w = x, w
        xp = self.xp
        per_model = x.transpose(1, 0, 2) if x.ndim == 3 else x  # (K, B, n_in), or (B, n_in) broadcast
        y = xp.empty((x.shape[0], w.shape[0], w.shape[2]), dtype=xp.result_type(x, w))  # (B, K, n_out)
        self.backend.ops.matmul(per_model, w, out=y.transpose(1, 0, 2))  # in place: no transposed copy
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        g = gy.transpose(1, 0, 2)  # (K, B, n_out)
        gx = gw = gb = None
        if self.needs_grad[0]:
            if self.x.ndim == 2:
                gx = self.backend.ops.matmul(g, self.w.transpose(0, 2, 1)).sum(axis=0)
            else:  # (B, K, n_in), written in place
                gx = self.xp.empty(self.x.shape, dtype=gy.dtype)
                self.backend.ops.matmul(g, self.w.transpose(0, 2, 1), out=gx.transpose(1, 0, 2))
        if self.needs_grad[1]:
            xt = self.x.transpose(1, 2, 0) if self.x.ndim == 3 else self.x.T  # (K, n_in, B) or (n_in, B)
            gw = self.product_gradient(1, xt, g)  # as `linear`: the terms of ∂L/∂W sum in the same order
        if len(self.needs_grad) == 3 and self.needs_grad[2]:
            gb = self.row_sum_gradient(2, g)
        return (gx, gw) if len(self.needs_grad) == 2 else (gx, gw, gb)


class StackedSoftmaxCrossEntropy(Function):
    """J[k] = (1/B) Σ_b (log Σ_c e^(z[b,k,c]) − z[b,k,y_b]) for logits z (B, K, C) and labels y (B,),
    the same for every model: each model's own mean loss, a (K,) vector. ∂J[k]/∂z[:, k] = (softmax − y)/B."""

    labels: object

    def forward(self, z):
        # the (B·K, C) rows of the fused op, model k's every K-th row: each model's mean (one kernel on the GPU),
        # its B rows summed as one model's loss sums them (`xdl.ops.activation.softmax_cross_entropy_forward`)
        b, k, c = z.shape
        means, self.probs = self.backend.ops.softmax_cross_entropy_forward(z.reshape(b * k, c), self.labels, k)
        return means

    def backward(self, gy):
        b, k = self.probs.shape[0] // gy.shape[0], gy.shape[0]
        g = self.backend.ops.softmax_cross_entropy_backward(self.probs, self.labels, gy, k)
        return (g.reshape(b, k, -1),)


class StackedDropout(Function):
    """K models' inverted dropout of x (B, K, C): y[:, k] = x[:, k]·d_k/(1 − rate_k), d_k model k's
    keep mask keyed by (seeds[k], stream, step) — the mask its own `Dropout` draws alone — made by
    the backend's fused op (in the kernel on the GPU, recomputed for the backward)."""

    rates: object
    key: object  # (seeds, stream, step)

    def forward(self, x):
        seeds, *rest = self.key
        y, self.saved = self.backend.ops.stacked_dropout_forward(x, self.rates, seeds, *rest)
        return y

    def backward(self, gy):
        seeds, *rest = self.key
        return (self.backend.ops.stacked_dropout_backward(gy, self.saved, self.rates, seeds, *rest),)


class StackedReLUDropout(Function):
    """y[:, k] = max(x[:, k], 0)·d_k/(1 − rate_k): K models' ReLU then `StackedDropout` as one node
    (one kernel each way on the GPU);  ∂L/∂x[:, k] = ∂L/∂y[:, k]·d_k/(1 − rate_k)·[y[:, k] > 0]. Bit for
    bit what `relu` then `stacked_dropout` give, model k's slice what `relu_dropout` gives it alone:
    `xdl.nn.Stacked` runs a ReLU layer followed by its stacked Dropout layer so."""

    rates: object
    key: object  # (seeds, stream, step)

    def forward(self, x):
        seeds, *rest = self.key
        self.y, self.saved = self.backend.ops.stacked_relu_dropout_forward(x, self.rates, seeds, *rest)
        return self.y

    def backward(self, gy):
        seeds, *rest = self.key
        return (self.backend.ops.stacked_relu_dropout_backward(gy, self.y, self.saved, self.rates, seeds, *rest),)


def _checked_stacked_dropout(x, rates, key, name: str):
    """(rates, key) of `stacked_dropout` and `stacked_relu_dropout`, checked against x (B, K, C)."""
    key = checked_mask_key(key, name, stacked=True)
    rates, key = np.array(rates, dtype=np.float64), (tuple(key[0]), *key[1:])  # copies: the backward reuses them
    if x.ndim != 3 or rates.shape != (x.shape[1],) or len(key[0]) != x.shape[1]:
        raise ValueError(f"{name}: input {x.shape} with {rates.size} rates and {len(key[0])} seeds; "
                         "expected (B, K, C) and K of each")
    good = (rates >= 0) & (rates <= MAX_DROP_RATE)  # (every step: one comparison; the words are check_drop_rate's)
    if not good.all():
        k = int(np.argmin(good))
        check_drop_rate(rates[k].item(), f"{name}: rates[{k}]")
    return rates, key


@op(check=[Check((5, 3, 4), args=((0.2, 0.5, 0.0), ((1, 2, 3), 0, 7)))])
def stacked_dropout(x, rates, key):
    """Each of K models' inverted dropout of x (B, K, C) with its rate (``rates``, K values in
    `check_drop_rate`'s range) and its mask keyed by ``key`` = (seeds, stream, step), model k's by (seeds[k], stream,
    step): the mask `dropout(x_k, rates[k], key=(seeds[k], stream, step))` draws alone."""
    rates, key = _checked_stacked_dropout(x, rates, key, "stacked_dropout")
    return layer_stacked_dropout(x, rates, key)


def layer_stacked_dropout(x, rates, key):
    """`stacked_dropout` without its checks, as `xdl.nn.stacked.StackedDropout` calls it at every forward: the
    layer checked its rates and key where they were set, and holds them so that nothing writes them after
    (a read-only array, a tuple of seeds: the backward reads them again)."""
    return StackedDropout.apply(x, rates=rates, key=key)


@op(domain="nonzero", check=[Check((5, 3, 4), args=((0.2, 0.5, 0.0), ((1, 2, 3), 0, 7)))])
def stacked_relu_dropout(x, rates, key):
    """``stacked_dropout(relu(x), rates, key)`` as one op: model k's slice of x (B, K, C) with its rate and
    its mask keyed by (seeds[k], stream, step), what `relu_dropout(x_k, rates[k], (seeds[k], stream, step))`
    gives alone; the same values and gradients as the pair, fewer launches."""
    rates, key = _checked_stacked_dropout(x, rates, key, "stacked_relu_dropout")
    return layer_stacked_relu_dropout(x, rates, key)


def layer_stacked_relu_dropout(x, rates, key):
    """`stacked_relu_dropout` without its checks, as `xdl.nn.Stacked` runs a ReLU and its StackedDropout layer
    at every forward (`layer_stacked_dropout`)."""
    return StackedReLUDropout.apply(x, rates=rates, key=key)


@op(check=[Check((5, 3, 3), args=(_LABELS,)), Check((5, 1, 3), args=(_LABELS,))])
def stacked_softmax_cross_entropy(logits, labels):
    """Each of K models' softmax cross-entropy: logits (B, K, C), class indices (B,) → (K,) (shapes
    and dtype checked here; values by `xdl.train.fit_many`, once per data set, as
    `softmax_cross_entropy`'s: a class index outside [0, C) gives that row a NaN loss, as the GPU
    kernel does, with no host read a captured step could not make)."""
    labels = logits.backend.asarray(labels)
    if logits.ndim != 3 or labels.shape != (logits.shape[0],):
        raise ValueError(f"stacked_softmax_cross_entropy: logits must be (B, K, C) and labels (B,) class indices, "
                         f"got logits {tuple(logits.shape)} and labels {tuple(labels.shape)}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"stacked_softmax_cross_entropy: class indices must be integers, got dtype {labels.dtype} "
                        "(fit_many takes whole numbers of any dtype)")
    return StackedSoftmaxCrossEntropy.apply(logits, labels=labels)
