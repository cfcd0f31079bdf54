"""Fused operations: the NumPy references (`NumpyOps`), which are also the CPU implementation.

The backend binds ``backend.ops`` to `NumpyOps` on the CPU and to ``xdl.cuda.CupyOps`` (a subclass
that replaces methods with CUDA kernels) on the GPU, so callers never branch on the backend.
Every method has the same signature in both; tests compare the two on awkward sizes.
"""

from __future__ import annotations

from xdl.ops import batchnorm


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
