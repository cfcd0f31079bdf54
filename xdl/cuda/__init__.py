"""The kernel loader and `CupyOps`: the fused ops of `xdl.ops.NumpyOps` as CUDA kernels.

Kernels live in ``kernels/*.cu`` (shipped in the wheel as ``xdl/_kernels``); each file is compiled
once, on first use, with NVRTC through ``cupy.RawModule`` and cached — never at import. This module
(with `xdl.backend`) is the only place that knows it is talking to CuPy.
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

import numpy as np

from xdl.ops import NumpyOps
from xdl.ops.optim import adam_scalars

THREADS = 256
BLOCK_X, BLOCK_Y = 32, 8  # must match kernels/batchnorm.cu
C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

KERNELS = {
    "optim.cu": ["sgd_update", "momentum_update", "rmsprop_update", "adam_update"],
    "batchnorm.cu": ["bn_partial_stats", "bn_finalize_stats", "bn_normalize", "bn_inference", "bn_backward_partial",
                     "bn_backward_finalize", "bn_backward_dx"],
}


def kernel_dir() -> Path:
    """``xdl/_kernels`` inside an installed wheel, else ``kernels/`` of a source checkout."""
    packaged = importlib.resources.files("xdl") / "_kernels"
    if packaged.is_dir():
        return Path(str(packaged))
    source = Path(__file__).resolve().parents[2] / "kernels"
    if source.is_dir():
        return source
    raise FileNotFoundError(f"CUDA kernel sources not found in {packaged} or {source}")


@functools.cache
def _module(filename: str):
    import cupy

    names = [f"{k}<{t}>" for k in KERNELS[filename] for t in ("float", "double")]
    code = (kernel_dir() / filename).read_text()
    return cupy.RawModule(code=code, options=("-std=c++17",), name_expressions=names)


@functools.cache
def kernel(filename: str, name: str, dtype):
    """The compiled kernel ``name<T>`` from ``kernels/<filename>`` for ``dtype``."""
    return _module(filename).get_function(f"{name}<{C_TYPES[np.dtype(dtype)]}>")


def _aligned(*arrays) -> bool:
    return all(a.data.ptr % 16 == 0 for a in arrays)


class CupyOps(NumpyOps):
    """CUDA kernels for float32/float64; anything else falls back to the reference (on CuPy)."""

    def __init__(self, backend):
        super().__init__(backend)
        self.sm_count = backend.xp.cuda.Device().attributes["MultiProcessorCount"]

    # -- optimizer updates ----------------------------------------------------------------
    def _flat_launch(self, name, arrays, scalars):
        p = arrays[0]
        vectorized = _aligned(*arrays)
        work = p.size // (16 // p.dtype.itemsize) if vectorized else p.size
        blocks = max(1, min((work + THREADS - 1) // THREADS, self.sm_count * 16))
        kernel("optim.cu", name, p.dtype)((blocks,), (THREADS,), (*arrays, np.int64(p.size), np.int32(vectorized),
                                                                     *scalars))

    def _supported(self, *arrays) -> bool:
        return all(a.dtype in C_TYPES and a.flags.c_contiguous for a in arrays) and arrays[0].size > 0

    def sgd_update(self, p, g, lr, weight_decay=0.0):
        if not self._supported(p, g):
            return super().sgd_update(p, g, lr, weight_decay)
        self._flat_launch("sgd_update", (p, g), (np.float64(lr), np.float64(weight_decay)))

    def momentum_update(self, p, g, v, lr, beta, nesterov=False, weight_decay=0.0):
        if not self._supported(p, g, v):
            return super().momentum_update(p, g, v, lr, beta, nesterov, weight_decay)
        self._flat_launch("momentum_update", (p, g, v),
                          (np.float64(lr), np.float64(beta), np.int32(bool(nesterov)), np.float64(weight_decay)))

    def rmsprop_update(self, p, g, sq, lr, beta, eps, weight_decay=0.0):
        if not self._supported(p, g, sq):
            return super().rmsprop_update(p, g, sq, lr, beta, eps, weight_decay)
        self._flat_launch("rmsprop_update", (p, g, sq),
                          (np.float64(lr), np.float64(beta), np.float64(eps), np.float64(weight_decay)))

    def adam_update(self, p, g, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0, decoupled=False):
        if not self._supported(p, g, m, v):
            return super().adam_update(p, g, m, v, lr, beta1, beta2, eps, step, weight_decay, decoupled)
        step_size, inv_sqrt_bias2 = adam_scalars(lr, beta1, beta2, step)
        coupled, decay_factor = (0.0, 1.0 - lr * weight_decay) if decoupled else (weight_decay, 1.0)
        self._flat_launch("adam_update", (p, g, m, v),
                          tuple(np.float64(s) for s in (beta1, beta2, eps, step_size, inv_sqrt_bias2, coupled,
                                                        decay_factor)))

    # -- batch norm -----------------------------------------------------------------------
    def _stats_grid(self, n_rows, n_cols):
        """(grid, rows per block, number of row blocks) for the column-reduction kernels."""
        col_blocks = (n_cols + BLOCK_X - 1) // BLOCK_X
        # Many waves of blocks (not one barely-full wave): the last partial wave costs little.
        parts = max(1, min((self.sm_count * 32 + col_blocks - 1) // col_blocks, (n_rows + 4 * BLOCK_Y - 1) // (4 * BLOCK_Y)))
        rows = (n_rows + parts - 1) // parts
        parts = (n_rows + rows - 1) // rows
        return (col_blocks, parts), rows, parts

    def _rows_grid(self, n_rows, n_cols):
        """(grid, rows per block) for the elementwise kernels (a thread owns a feature over rows)."""
        col_blocks = (n_cols + THREADS - 1) // THREADS
        row_blocks = max(1, min(n_rows, (self.sm_count * 16 + col_blocks - 1) // col_blocks))
        rows = (n_rows + row_blocks - 1) // row_blocks
        return (col_blocks, (n_rows + rows - 1) // rows), rows

    def _bn_supported(self, x, *columns) -> bool:
        return x.ndim == 2 and x.dtype in C_TYPES and all(c.dtype == x.dtype and c.flags.c_contiguous for c in columns)

    def batchnorm_train_forward(self, x, gamma, beta, running_mean, running_var, momentum, eps):
        if not self._bn_supported(x, gamma, beta, running_mean, running_var):
            return super().batchnorm_train_forward(x, gamma, beta, running_mean, running_var, momentum, eps)
        xp, dt = self.xp, x.dtype
        x = xp.ascontiguousarray(x)
        n, c = x.shape
        grid, rows, parts = self._stats_grid(n, c)
        count, part_mean, part_m2 = xp.empty((3, parts, c), dtype=dt)  # one allocation
        kernel("batchnorm.cu", "bn_partial_stats", dt)(grid, (BLOCK_X, BLOCK_Y),
                                                       (x, np.int64(n), np.int32(c), np.int64(rows), count, part_mean,
                                                        part_m2))
        mean, inv_std = xp.empty((2, c), dtype=dt)
        kernel("batchnorm.cu", "bn_finalize_stats", dt)(((c + THREADS - 1) // THREADS,), (THREADS,),
                                                        (x, count, part_mean, part_m2, np.int32(parts), np.int64(n),
                                                         np.int32(c), mean, inv_std, running_mean, running_var,
                                                         np.float64(momentum), np.float64(eps)))
        y = xp.empty_like(x)
        grid, rows = self._rows_grid(n, c)
        kernel("batchnorm.cu", "bn_normalize", dt)(grid, (THREADS,), (x, y, np.int64(n), np.int32(c), mean, inv_std,
                                                                      gamma, beta, np.int64(rows)))
        return y, mean, inv_std

    def batchnorm_backward(self, dy, x, gamma, mean, inv_std):
        if not self._bn_supported(x, gamma, mean, inv_std) or dy.dtype != x.dtype:
            return super().batchnorm_backward(dy, x, gamma, mean, inv_std)
        xp, dt = self.xp, x.dtype
        dy, x = xp.ascontiguousarray(dy), xp.ascontiguousarray(x)
        n, c = x.shape
        grid, rows, parts = self._stats_grid(n, c)
        part_dy, part_dy_xmu = xp.empty((2, parts, c), dtype=dt)
        kernel("batchnorm.cu", "bn_backward_partial", dt)(grid, (BLOCK_X, BLOCK_Y),
                                                          (dy, x, mean, np.int64(n), np.int32(c), np.int64(rows),
                                                           part_dy, part_dy_xmu))
        dgamma, dbeta = xp.empty((2, c), dtype=dt)
        kernel("batchnorm.cu", "bn_backward_finalize", dt)(((c + THREADS - 1) // THREADS,), (THREADS,),
                                                           (part_dy, part_dy_xmu, np.int32(parts), np.int32(c),
                                                            inv_std, dgamma, dbeta))
        dx = xp.empty_like(x)
        grid, rows = self._rows_grid(n, c)
        kernel("batchnorm.cu", "bn_backward_dx", dt)(grid, (THREADS,), (dy, x, mean, inv_std, gamma, dgamma, dbeta,
                                                                        np.int64(n), np.int32(c), dx, np.int64(rows)))
        return dx, dgamma, dbeta

    def batchnorm_inference(self, x, gamma, beta, running_mean, running_var, eps):
        if not self._bn_supported(x, gamma, beta, running_mean, running_var):
            return super().batchnorm_inference(x, gamma, beta, running_mean, running_var, eps)
        xp, dt = self.xp, x.dtype
        x = xp.ascontiguousarray(x)
        n, c = x.shape
        y = xp.empty_like(x)
        grid, rows = self._rows_grid(n, c)
        kernel("batchnorm.cu", "bn_inference", dt)(grid, (THREADS,), (x, y, np.int64(n), np.int32(c), running_mean,
                                                                      running_var, gamma, beta, np.float64(eps),
                                                                      np.int64(rows)))
        return y
