"""Fused operations: the NumPy references (`NumpyOps`), which are also the CPU implementation.

The backend binds ``backend.ops`` to `NumpyOps` on the CPU and to ``xdl.cuda.CupyOps`` (a subclass
that replaces methods with CUDA kernels) on the GPU, so callers never branch on the backend.
Every method has the same signature in both; tests compare the two on awkward sizes.
"""

from __future__ import annotations

import numpy as np

from xdl.ops import activation, batchnorm, optim, penalty, random


class NumpyOps:
    """Reference implementations written against ``backend.xp`` (NumPy here, CuPy before a
    kernel exists)."""

    def __init__(self, backend):
        self.backend = backend
        self.xp = backend.xp

    def matmul(self, a, b, out=None, accumulate=False):
        """a·b (``xp.matmul``'s rules: stacks of matrices too); written into ``out`` when given, or
        added to it (``out += a·b``) when ``accumulate`` (a gradient added straight into its view
        of a flat buffer)."""
        if out is None:
            return a @ b
        if accumulate:
            out += a @ b
        else:
            self.xp.matmul(a, b, out=out)
        return out

    def sum_rows(self, x, out, accumulate=False):
        """Σᵢ x[..., i, :], the sum over the rows of a matrix or of each of a stack (a bias's gradient),
        written into ``out`` or added to it (``out += Σᵢ x[..., i, :]``) when ``accumulate``."""
        if accumulate:
            out += x.sum(axis=-2)
        else:
            x.sum(axis=-2, out=out)
        return out

    # -- activations and the loss (formulas in xdl.ops.activation) -------------------------
    def relu_forward(self, x):
        """y = max(x, 0)."""
        return activation.relu_forward(self.xp, x)

    def relu_backward(self, gy, y):
        """∂L/∂x = ∂L/∂y·[y > 0], from the forward's output y."""
        return activation.relu_backward(self.xp, gy, y)

    def tanh_forward(self, x):
        """y = tanh x."""
        return activation.tanh_forward(self.xp, x)

    def tanh_backward(self, gy, y):
        """∂L/∂x = ∂L/∂y·(1 − y·y), from the forward's output y."""
        return activation.tanh_backward(self.xp, gy, y)

    def sigmoid_forward(self, x):
        """y = σ(x), without overflow (1/(1 + e) for x ≥ 0, e·1/(1 + e) below, e = e^−|x|)."""
        return activation.sigmoid_forward(self.xp, x)

    def sigmoid_backward(self, gy, y):
        """∂L/∂x = (∂L/∂y·y)·(1 − y), from the forward's output y."""
        return activation.sigmoid_backward(self.xp, gy, y)

    def leaky_relu_forward(self, x, slope):
        """y = x if x > 0 else x·slope (``slope`` a Python float)."""
        return activation.leaky_relu_forward(self.xp, x, slope)

    def leaky_relu_backward(self, gy, saved, slope):
        """∂L/∂x = ∂L/∂y if saved > 0 else ∂L/∂y·slope, ``saved`` the forward's output y where slope ≥ 0, its
        input x where slope < 0 (`activation.leaky_relu_saves_output`)."""
        return activation.leaky_relu_backward(self.xp, gy, saved, slope)

    def softmax_cross_entropy_forward(self, z, labels, models=1):
        """Logits z (m, C), class indices (m,): (the mean loss over the rows (1,), the probabilities (m, C)).
        ``models`` = K: z is K stacked models' (B·K, C), row b·K + k model k's, labels (B,), and the
        first of the pair each model's mean over its B rows (K,)."""
        return activation.softmax_cross_entropy_forward(self.xp, z, labels, models)

    def softmax_cross_entropy_backward(self, probs, labels, gy, models=1):
        """∂J/∂z of the rows' mean loss J, given its incoming gradient ``gy`` (a 0-d array; K
        values, each model's, for ``models`` = K)."""
        return activation.softmax_cross_entropy_backward(self.xp, probs, labels, gy, models)

    def binary_cross_entropy_forward(self, z, labels):
        """Logits z and targets y in [0, 1] of one shape and dtype: the mean (1,) of max(z, 0) − z·y + log(1 + e^−|z|)
        over the elements."""
        return activation.binary_cross_entropy_forward(self.xp, z, labels)

    def binary_cross_entropy_backward(self, z, labels, gy):
        """∂J/∂z = (σ(z) − y)·(gy/n) of the elements' mean J, given its incoming gradient ``gy`` (0-d)."""
        return activation.binary_cross_entropy_backward(self.xp, z, labels, gy)

    def squared_error_forward(self, predictions, targets):
        """The mean (1,) of (p − t)² over the elements of two arrays of one shape."""
        return activation.squared_error_forward(self.xp, predictions, targets)

    def squared_error_backward(self, predictions, targets, gy):
        """∂J/∂p = 2·((p − t)·(gy/n)) of the elements' mean J, given its incoming gradient ``gy`` (0-d); ∂J/∂t is
        its negative."""
        return activation.squared_error_backward(self.xp, predictions, targets, gy)

    def batchnorm_train_forward(self, x, gamma, beta, running_mean, running_var, momentum, eps):
        return batchnorm.batchnorm_train_forward(self.xp, x, gamma, beta, running_mean, running_var, momentum, eps)

    def batchnorm_backward(self, dy, x, gamma, mean, inv_std, dgamma=None, dbeta=None, accumulate=False):
        """(∂L/∂x, ∂L/∂γ, ∂L/∂β); ∂L/∂γ and ∂L/∂β written into ``dgamma`` and ``dbeta`` where given, or
        added to them (``dgamma += ∂L/∂γ``) when ``accumulate``, as `sum_rows` does (those arrays returned)."""
        return batchnorm.batchnorm_backward(self.xp, dy, x, gamma, mean, inv_std, dgamma, dbeta, accumulate)

    def batchnorm_inference(self, x, gamma, beta, running_mean, running_var, eps):
        return batchnorm.batchnorm_inference(self.xp, x, gamma, beta, running_mean, running_var, eps)

    # -- weight penalties over flat ranges of weights (formulas in xdl.ops.penalty) ----------
    def penalty_sums(self, w, kind):
        """Σ w² (``kind`` "l2") or Σ |w| ("l1") of (n,) weights (a 0-d array), or per row of a (K, n)
        region of K stacked models ((K,))."""
        return penalty.penalty_sums(self.xp, w, kind)

    def penalty_gradient(self, grad, w, coefficient, kind):
        """grad += c·w (``kind`` "l2") or c·sign(w) ("l1") in place; c a number, a 0-d array or a (K, 1)
        column of per-model values."""
        penalty.penalty_gradient(self.xp, grad, w, coefficient, kind)

    def penalty_forward(self, w, kind, slope):
        """The cost (λ/m)/2·Σ w² or (λ/m)·Σ |w| of (n,) weights, ``slope`` = λ/m; of a (K, n) region, ``slope``
        a (K, 1) column of λ_k/m, the sum of each model's (a 0-d array)."""
        return penalty.penalty_forward(self.xp, w, kind, slope)

    def penalty_backward(self, grad, w, gy, slope, kind):
        """`penalty_forward`'s gradient, added into ``grad`` in place: c·w or c·sign(w), c = gy·slope."""
        penalty.penalty_backward(self.xp, grad, w, gy, slope, kind)

    # -- optimizer updates over flat buffers (formulas in xdl.ops.optim) -------------------
    # p, g and the state are flat (n,), or (K, n) regions of K stacked models' buffers (row k =
    # model k). A hyperparameter is a number, or K per-model values: a host array, or an array of
    # the backend (an optimizer keeps its values in one, so that a captured GPU step reads the
    # current ones; for a flat buffer it holds one value). Adam's step number is ``step +
    # steps_done[0]`` when ``steps_done`` (a one-element int64 array of the backend: the
    # optimizer's step counter) is given.
    def _per_model(self, h, p):
        """A hyperparameter as the reference takes it: a number (one model's value, or K equal
        ones: the same result, with a zero skipped), or a float64 (K, 1) column."""
        if not np.ndim(h):
            return h
        if self.backend.supports_graphs:  # (only a backend that captures can refuse: no calls per step on the CPU)
            self._refuse_host_reads("an update's per-model hyperparameters")
        if p.ndim == 1:  # one model's value, held in a one-element array
            return float(h.reshape(-1)[0])
        column = self.xp.asarray(h, dtype=np.float64).reshape(-1, 1)
        return float(column[0, 0]) if bool((column == column[0, 0]).all()) else column

    def _refuse_host_reads(self, what: str) -> None:
        """A reference reads ``what`` (device arrays on CuPy: an optimizer's held values, its step
        counter) on the host, or copies host arrays to the device: a step being captured into a
        CUDA graph cannot (a replay would reuse the values read at the capture) — refused as
        `CaptureError` naming it (it failed on CUDA's own "operation not permitted when stream is
        capturing"). Through the backend: xdl.ops imports nothing of it."""
        self.backend.refuse_if_capturing(f"{what} read on the host by the NumPy reference (no kernel for this "
                                         "rule, layout or dtype)")

    def _key_step(self, step, steps_done) -> int:
        """A dropout key's or Adam's step number: ``step + steps_done[0]`` (``steps_done``: a step
        counter in the backend's memory, read on the host)."""
        if steps_done is None:
            return int(step)
        if self.backend.supports_graphs:
            self._refuse_host_reads("the step counter")
        return int(step) + int(steps_done.reshape(-1)[0])

    def sgd_update(self, p, g, lr, weight_decay=0.0):
        h = self._per_model
        optim.sgd_update(self.xp, p, g, h(lr, p), h(weight_decay, p))

    def momentum_update(self, p, g, v, lr, beta, nesterov=False, weight_decay=0.0):
        h = self._per_model
        optim.momentum_update(self.xp, p, g, v, h(lr, p), h(beta, p), nesterov, h(weight_decay, p))

    def rmsprop_update(self, p, g, sq, lr, beta, eps, weight_decay=0.0):
        h = self._per_model
        optim.rmsprop_update(self.xp, p, g, sq, h(lr, p), h(beta, p), h(eps, p), h(weight_decay, p))

    def adam_update(self, p, g, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0, decoupled=False,
                    steps_done=None):
        h = self._per_model
        optim.adam_update(self.xp, p, g, m, v, h(lr, p), h(beta1, p), h(beta2, p), h(eps, p),
                          self._key_step(step, steps_done), h(weight_decay, p), decoupled)

    # -- dropout with counter-based masks (formulas in xdl.ops.random) ---------------------
    # The mask of a draw keyed by (seed, stream, step) is a pure function of the key, so the CUDA
    # kernels recompute it in the backward instead of storing it; the reference keeps the scaled
    # mask it made (``saved``: what the backward needs, None when the kernel recomputes). The key's
    # step is ``step + steps_done[0]`` when ``steps_done`` (a one-element int64 array of the
    # backend: a step counter in device memory, for captured steps) is given.
    def dropout_mask(self, shape, rate, seed, stream, step):
        """The keep mask keyed by (seed, stream, step), as a boolean array of this backend."""
        return self.backend.asarray(random.keep_mask(shape, rate, seed, stream, step))

    def _scaled_mask(self, x, rate, seed, stream, step, steps_done):
        """d·(1/(1 − rate)) in x's dtype, d the keep mask keyed by (seed, stream, step): what the
        backward keeps."""
        scaled = self.dropout_mask(x.shape, rate, seed, stream, self._key_step(step, steps_done)).astype(x.dtype)
        scaled *= 1.0 / (1.0 - rate)
        return scaled

    def dropout_forward(self, x, rate, seed, stream, step, steps_done=None):
        """y = x·d·(1/(1 − rate)), d the keep mask keyed by (seed, stream, step): (y, saved)."""
        scaled = self._scaled_mask(x, rate, seed, stream, step, steps_done)
        return x * scaled, scaled

    def dropout_backward(self, gy, saved, rate, seed, stream, step, steps_done=None):
        """∂L/∂x = ∂L/∂y·d·(1/(1 − rate)), the mask of the forward with the same key."""
        return gy * saved

    def relu_dropout_forward(self, x, rate, seed, stream, step, steps_done=None):
        """Dropout of ReLU(x), keyed as `dropout_forward`: (y, saved). One kernel on the GPU."""
        y = self.relu_forward(x)
        scaled = self._scaled_mask(y, rate, seed, stream, step, steps_done)
        y *= scaled  # in ReLU's output, an array of our own: the pair's values without a second one
        return y, scaled

    def relu_dropout_backward(self, gy, y, saved, rate, seed, stream, step, steps_done=None):
        """∂L/∂x of `relu_dropout_forward` from its output y: dropout's backward, then ReLU's at y
        (where a unit was kept, y > 0 exactly where ReLU's output is; where dropped, the gradient
        is ±0 or NaN already and the ReLU factor cannot change it): the pair's result, bit for bit."""
        g = self.dropout_backward(gy, saved, rate, seed, stream, step, steps_done)
        g *= y > 0  # ReLU's backward, in dropout's result (an array of our own)
        return g

    def stacked_dropout_mask(self, shape, rates, seeds, stream, step):
        """K models' keep masks stacked on axis 1, (B, K, …) from a per-model ``shape`` (B, …):
        model k's is ``dropout_mask(shape, rates[k], seeds[k], stream, step)``."""
        return self.backend.asarray(random.stacked_keep_mask(shape, rates, seeds, stream, step))

    def stacked_dropout_forward(self, x, rates, seeds, stream, step, steps_done=None):
        """K models' dropout of x (B, K, C): model k's slice with its rate and its own key
        (seeds[k], stream, step), the mask it draws alone. (y, saved)."""
        scaled = self._stacked_scaled_masks(x, rates, seeds, stream, step, steps_done)
        return x * scaled, scaled

    def _stacked_scaled_masks(self, x, rates, seeds, stream, step, steps_done):
        """d_k·(1/(1 − rates[k])) in x's dtype, (B, K, C) for x (B, K, C): what the backward keeps."""
        b, k, c = x.shape
        step = self._key_step(step, steps_done)
        scaled = self.stacked_dropout_mask((b, c), rates, seeds, stream, step).astype(x.dtype)
        scaled *= self.backend.asarray((1.0 / (1.0 - np.asarray(rates, dtype=np.float64))).astype(x.dtype))[:, None]
        return scaled

    def stacked_dropout_backward(self, gy, saved, rates, seeds, stream, step, steps_done=None):
        return gy * saved

    def stacked_relu_dropout_forward(self, x, rates, seeds, stream, step, steps_done=None):
        """K models' dropout of ReLU(x), keyed as `stacked_dropout_forward`: (y, saved). One kernel on the
        GPU; model k's slice is what `relu_dropout_forward` gives it alone."""
        y = self.relu_forward(x)
        scaled = self._stacked_scaled_masks(y, rates, seeds, stream, step, steps_done)
        y *= scaled  # in ReLU's output, an array of our own: the pair's values without a second one
        return y, scaled

    def stacked_relu_dropout_backward(self, gy, y, saved, rates, seeds, stream, step, steps_done=None):
        """∂L/∂x of `stacked_relu_dropout_forward` from its output y: the stacked dropout's backward, then
        ReLU's at y — the pair's result, bit for bit, as `relu_dropout_backward`'s."""
        g = self.stacked_dropout_backward(gy, saved, rates, seeds, stream, step, steps_done)
        g *= y > 0  # ReLU's backward, in dropout's result (an array of our own)
        return g
