"""Fused operations: the NumPy references (`NumpyOps`), which are also the CPU implementation.

The backend binds ``backend.ops`` to `NumpyOps` on the CPU and to ``xdl.cuda.CupyOps`` (a subclass
that replaces methods with CUDA kernels) on the GPU, so callers never branch on the backend.
Every method has the same signature in both; tests compare the two on awkward sizes.
"""

from __future__ import annotations

from xdl.ops import batchnorm, optim, random


class NumpyOps:
    """Reference implementations written against ``backend.xp`` (NumPy here, CuPy before a
    kernel exists)."""

    def __init__(self, backend):
        self.backend = backend
        self.xp = backend.xp

    def batchnorm_train_forward(self, x, gamma, beta, running_mean, running_var, momentum, eps):
        return batchnorm.batchnorm_train_forward(self.xp, x, gamma, beta, running_mean, running_var, momentum, eps)

    def batchnorm_backward(self, dy, x, gamma, mean, inv_std):
        return batchnorm.batchnorm_backward(self.xp, dy, x, gamma, mean, inv_std)

    def batchnorm_inference(self, x, gamma, beta, running_mean, running_var, eps):
        return batchnorm.batchnorm_inference(self.xp, x, gamma, beta, running_mean, running_var, eps)

    # -- optimizer updates over flat buffers (formulas in xdl.ops.optim) -------------------
    def sgd_update(self, p, g, lr, weight_decay=0.0):
        optim.sgd_update(self.xp, p, g, lr, weight_decay)

    def momentum_update(self, p, g, v, lr, beta, nesterov=False, weight_decay=0.0):
        optim.momentum_update(self.xp, p, g, v, lr, beta, nesterov, weight_decay)

    def rmsprop_update(self, p, g, sq, lr, beta, eps, weight_decay=0.0):
        optim.rmsprop_update(self.xp, p, g, sq, lr, beta, eps, weight_decay)

    def adam_update(self, p, g, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0, decoupled=False):
        optim.adam_update(self.xp, p, g, m, v, lr, beta1, beta2, eps, step, weight_decay, decoupled)

    # -- random draws (formulas in xdl.ops.random) -----------------------------------------
    def dropout_mask(self, shape, rate, seed, stream, step):
        """The keep mask keyed by (seed, stream, step), as a boolean array of this backend."""
        return self.backend.asarray(random.keep_mask(shape, rate, seed, stream, step))
