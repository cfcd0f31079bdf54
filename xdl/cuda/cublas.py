"""Matrix products through a cuBLAS handle of xdl's own, one per stream.

CuPy 14 refuses cuBLAS while a stream is being captured into a CUDA graph (``cupy.matmul`` raises
"calling cuBLAS API during stream capture is currently unsupported"), but cuBLAS itself captures
fine. So xdl calls the library CuPy already loaded through ctypes, on a handle bound to the
stream (``cublasSetStream_v2``) with a workspace of its own (``cublasSetWorkspace_v2``: cuBLAS must
not allocate while a graph is captured). The same handle serves eager steps, where it also lets a
weight gradient be added straight into its view of the flat gradient buffer (GEMM with β = 1).

cuBLAS is column-major; xdl's arrays are row-major. A row-major (r, c) array whose rows are
contiguous is, to cuBLAS, its (c, r) transpose with leading dimension = its row stride; one whose
columns are contiguous (a transposed view) is itself with leading dimension = its column stride.
Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: `gemm_plan` turns three arrays' shapes and strides
into the arguments of that call, and the CPU tests check it against a column-major GEMM written in
NumPy.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass

import numpy as np

OP_N, OP_T = 0, 1  # cublasOperation_t
DEFAULT_MATH, TF32_TENSOR_OP_MATH = 0, 3  # cublasMath_t
WORKSPACE_BYTES = 32 << 20  # what cuBLAS asks for on Hopper; ample for anything smaller
MATH_MODES = {"float32": DEFAULT_MATH, "tf32": TF32_TENSOR_OP_MATH}  # by Backend.precision


@dataclass(frozen=True)
class Operand:
    """One row-major operand as cuBLAS sees it: its operation and leading dimension."""

    op: int
    ld: int


@dataclass(frozen=True)
class GemmPlan:
    """``cublas<t>gemm(handle, first.op, second.op, m, n, k, α, first, first.ld, second, second.ld,
    β, C, ldc)`` with ``first`` = the right operand B and ``second`` = the left operand A; for a
    stack of ``batch`` products, ``cublas<t>gemmStridedBatched`` with ``strides`` (elements from
    one matrix to the next of first, second and C; 0: the same matrix for every product)."""

    m: int
    n: int
    k: int
    first: Operand
    second: Operand
    ldc: int
    batch: int = 1
    strides: tuple = (0, 0, 0)


def _operand(shape, strides, itemsize) -> Operand | None:
    """How cuBLAS reads a row-major (r, c) array: as the column-major (c, r) transpose of it when its
    rows are contiguous (op N), as itself when its columns are (op T); None when neither holds
    or the leading dimension would make rows or columns overlap (a broadcast)."""
    (r, c), (s0, s1) = shape, strides
    if any(s < 0 or s % itemsize for s in strides):
        return None
    s0, s1 = s0 // itemsize, s1 // itemsize
    if s1 == 1 or c == 1:  # rows contiguous; a single row's stride is never used
        ld = s0 if r > 1 else c
        if ld >= max(c, 1):
            return Operand(OP_N, ld)
    if s0 == 1 or r == 1:  # columns contiguous
        ld = s1 if c > 1 else r
        if ld >= max(r, 1):
            return Operand(OP_T, ld)
    return None


def gemm_plan(a, b, c) -> GemmPlan | None:
    """The column-major GEMM computing row-major ``c = a @ b`` (``c``'s rows contiguous), or None
    when a layout does not fit cuBLAS (the caller then uses ``xp.matmul``). 2-D arrays make one
    product; a stack ``c`` (count, m, n) makes ``count``, from ``a`` and ``b`` each a stack of as
    many matrices or one 2-D matrix used by every product (batch stride 0)."""
    count = c.shape[0] if c.ndim == 3 else 1
    if c.ndim not in (2, 3) or (c.ndim == 2 and (a.ndim, b.ndim) != (2, 2)) or count >= 2**31:
        return None
    (ma, sa), (mb, sb), (mc, sc) = (_matrices(x, count) or (None, 0) for x in (a, b, c))
    if ma is None or mb is None or mc is None:
        return None
    (m, k), (k2, n) = ma[0], mb[0]
    if k != k2 or mc[0] != (m, n) or 0 in (m, n, k) or max(m, n, k) >= 2**31:
        return None
    out, first, second = _operand(*mc), _operand(*mb), _operand(*ma)
    if out is None or out.op != OP_N or first is None or second is None \
            or max(out.ld, first.ld, second.ld) >= 2**31:  # cuBLAS takes int dimensions
        return None
    if count > 1 and not _distinct((count, m, n), (sc, out.ld, 1)):  # products must not write one place twice
        return None
    return GemmPlan(m=n, n=m, k=k, first=first, second=second, ldc=out.ld, batch=count, strides=(sb, sa, sc))


def _matrices(x, count: int):
    """((matrix shape, its strides in bytes, itemsize), elements from one matrix to the next) of a
    2-D array (stride 0: the same matrix every time) or a stack of ``count``; None otherwise."""
    if x.ndim == 2:
        return (x.shape, x.strides, x.itemsize), 0
    if x.ndim != 3 or x.shape[0] != count or x.strides[0] < 0 or x.strides[0] % x.itemsize:
        return None
    return (x.shape[1:], x.strides[1:], x.itemsize), (x.strides[0] // x.itemsize if count > 1 else 0)


def _distinct(shape, strides) -> bool:
    """Whether every index of ``shape`` reaches its own element under ``strides`` (elements):
    sorted by stride, each is larger than the span of the axes below it (sufficient, not necessary)."""
    span = 0
    for stride, size in sorted((st, n) for st, n in zip(strides, shape) if n > 1):
        if stride <= span:
            return False
        span += stride * (size - 1)
    return True


@functools.cache
def _library():
    """The libcublas CuPy uses: loaded by CuPy's cuBLAS bindings, found in this process's memory
    map, of the CUDA major version CuPy runs (another copy, PyTorch's, may be loaded beside it)."""
    import importlib

    cupy = importlib.import_module("cupy")
    # cupy.cuda.cublas is only a lazy attribute (no module of that name): import what it names
    importlib.import_module("cupy_backends.cuda.libs.cublas")
    major = cupy.cuda.runtime.runtimeGetVersion() // 1000
    with open("/proc/self/maps") as maps:
        paths = sorted({line.split()[-1] for line in maps if "/libcublas.so" in line})
    path = _copy_for(paths, major)
    if path is None:
        raise OSError(f"CuPy's libcublas (CUDA {major}) is not among the copies loaded in this process: "
                      f"{', '.join(paths) or 'none'}")
    lib = ctypes.CDLL(path)
    p, i, q = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong
    for name, argtypes in {
        "cublasCreate_v2": [ctypes.POINTER(p)],
        "cublasSetStream_v2": [p, p],
        "cublasSetWorkspace_v2": [p, p, ctypes.c_size_t],
        "cublasSetMathMode": [p, i],
        "cublasSgemm_v2": [p, i, i, i, i, i, p, p, i, p, i, p, p, i],
        "cublasDgemm_v2": [p, i, i, i, i, i, p, p, i, p, i, p, p, i],
        "cublasSgemmStridedBatched": [p, i, i, i, i, i, p, p, i, q, p, i, q, p, p, i, q, i],
        "cublasDgemmStridedBatched": [p, i, i, i, i, i, p, p, i, q, p, i, q, p, p, i, q, i],
    }.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = argtypes, ctypes.c_int
    return lib


def _copy_for(paths, major: int) -> str | None:
    """Of the libcublas files loaded, the one of CUDA ``major``; else the only one loaded when its
    name carries no version (``libcublas.so``); never one named for another CUDA."""
    ours = [path for path in sorted(paths) if f"/libcublas.so.{major}" in path]
    unversioned = [path for path in paths if path.endswith("/libcublas.so")]
    return ours[0] if ours else (unversioned[0] if len(paths) == 1 and unversioned else None)


def _check(status: int, call: str) -> None:
    if status != 0:
        raise RuntimeError(f"{call} failed with cublasStatus_t {status}")


class Cublas:
    """A cuBLAS handle bound to one stream, with its own workspace (device memory from ``xp``)."""

    def __init__(self, xp, stream_ptr: int, address, precision: str = "float32"):
        self.lib, self.address = _library(), address
        handle = ctypes.c_void_p()
        _check(self.lib.cublasCreate_v2(ctypes.byref(handle)), "cublasCreate_v2")
        self.handle = handle
        _check(self.lib.cublasSetStream_v2(handle, ctypes.c_void_p(stream_ptr)), "cublasSetStream_v2")
        self.workspace = xp.empty(WORKSPACE_BYTES, dtype=xp.uint8)  # kept alive with the handle
        _check(self.lib.cublasSetWorkspace_v2(handle, ctypes.c_void_p(address(self.workspace)), WORKSPACE_BYTES),
               "cublasSetWorkspace_v2")
        self.precision = None
        self.set_precision(precision)
        self._plans = {}  # layouts of (a, b, c) -> GemmPlan or None: an eager step asks the same ones every time
        # α = 1 and β ∈ {0, 1} as host values of each precision (read by cuBLAS at the call)
        self._scalars = {(single, accumulate): (t(1.0), t(float(accumulate)))
                         for single, t in ((True, ctypes.c_float), (False, ctypes.c_double))
                         for accumulate in (False, True)}

    def set_precision(self, precision: str) -> None:
        """"float32": exact float32 products (the default); "tf32": tensor-core TF32 products
        (float32 storage, 10-bit mantissas inside the product), as PyTorch's ``allow_tf32``."""
        if precision != self.precision:
            _check(self.lib.cublasSetMathMode(self.handle, MATH_MODES[precision]), "cublasSetMathMode")
            self.precision = precision

    def gemm(self, a, b, c, accumulate: bool = False) -> bool:
        """``c = a @ b`` (``c += a @ b`` when ``accumulate``) for float32/float64 matrices or stacks
        of them; False (nothing launched) when a layout does not fit (`gemm_plan`)."""
        layouts = (a.dtype, b.dtype, c.dtype, a.shape, b.shape, c.shape, a.strides, b.strides, c.strides)
        plan = self._plans.get(layouts, False)
        if plan is False:
            if len(self._plans) >= 4096:
                self._plans.clear()
            plan = self._plans[layouts] = gemm_plan(a, b, c) \
                if a.dtype == b.dtype == c.dtype and a.dtype in (np.float32, np.float64) else None
        if plan is None:
            return False
        single = a.dtype == np.float32
        alpha, beta = self._scalars[(single, bool(accumulate))]
        head = (self.handle, plan.first.op, plan.second.op, plan.m, plan.n, plan.k, ctypes.byref(alpha))
        if plan.batch == 1:
            gemm = self.lib.cublasSgemm_v2 if single else self.lib.cublasDgemm_v2
            _check(gemm(*head, self.address(b), plan.first.ld, self.address(a), plan.second.ld, ctypes.byref(beta),
                        self.address(c), plan.ldc), "cublas gemm")
        else:
            gemm = self.lib.cublasSgemmStridedBatched if single else self.lib.cublasDgemmStridedBatched
            (sb, sa, sc) = plan.strides
            _check(gemm(*head, self.address(b), plan.first.ld, sb, self.address(a), plan.second.ld, sa,
                        ctypes.byref(beta), self.address(c), plan.ldc, sc, plan.batch), "cublas gemm strided batched")
        return True
