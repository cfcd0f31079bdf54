"""The array shim: a `Backend` subclass per array library, `NumpyBackend` on the CPU and
`CupyBackend` on an NVIDIA GPU.

Everything that differs between the two lives in these classes (and in the kernel loader,
`xdl.cuda`): the array module, host transfers, synchronization, scatter-add, buffer addresses,
DLPack device codes, whether a host sync is cheap, float64 sums of squares (gradient clipping's
norms), and the fused ops. Model, layer and optimizer
code asks a tensor or a module for its ``backend`` and writes against ``backend.xp``, the API
NumPy 2 and CuPy 14 share. With `xdl.cuda` (whose kernel loader and cuBLAS binding import it on
first use), this is the only code that imports cupy.

Selection, in order of precedence:

* ``xdl.use("numpy" | "cupy" | "auto")`` — sets the backend now; also a context manager that
  restores the previous one on exit::

      with xdl.use("numpy"):
          x = xdl.tensor([1.0, 2.0])

* the environment variable ``XDL_BACKEND`` (read when the first backend is needed),
* ``auto`` (the default): cupy if it imports *and* a CUDA device answers, else numpy.

Asking for cupy explicitly where it cannot run raises `BackendError` with a one-line reason.
Importing xdl never imports cupy: the probe runs on first use.

>>> import xdl
>>> with xdl.use("numpy") as backend:
...     print(backend.name, backend.device_type, backend.host_sync_is_cheap)
numpy cpu True
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import os
import re
import sys
import threading

import numpy as np


class BackendError(RuntimeError):
    """The requested array backend cannot be used here (the message says why)."""


class CaptureError(RuntimeError):
    """A step cannot be captured in a CUDA graph (the message says what stands in the way)."""


class Backend:
    """An array library plus what xdl needs from it. Subclasses fill in the class attributes and
    the methods that raise `NotImplementedError` here.

    Attributes
    ----------
    name : str
        ``"numpy"`` or ``"cupy"``.
    device_type : str
        Where arrays live, as DLPack and PyTorch name it: ``"cpu"`` or ``"cuda"``.
    dlpack_devices : tuple of int
        The DLPack device codes of this backend's arrays (``kDLCPU`` = 1; ``kDLCUDA`` = 2 and
        ``kDLCUDAManaged`` = 13).
    module : str
        The import name of the array module (``"numpy"``, ``"cupy"``): `holds` asks it.
    host_sync_is_cheap : bool
        Whether reading a value on the host costs nothing (the CPU) or stalls a device queue.
    supports_graphs : bool
        Whether steps can be captured as CUDA graphs (`xdl.cuda_graph`).
    xp : module
        The array module (``numpy`` or ``cupy``).
    rng : Generator
        A seeded random generator on this backend's device (dropout masks, noise).
    precision : str
        How float32 matrix products are computed: "float32" (exact, the default) or "tf32"
        (tensor-core TF32 on an NVIDIA GPU, as PyTorch's ``allow_tf32``; the CPU has no such mode
        and stays exact). Set with ``xdl.use(name, precision=...)``.
    """

    name: str
    device_type: str
    dlpack_devices: tuple[int, ...]
    module: str
    host_sync_is_cheap: bool
    supports_graphs: bool = False  # CUDA graphs (`graph_scope`, `replay`)

    def __init__(self, xp, seed: int | None = None):
        self.xp = xp
        self._rng_lock = threading.Lock()
        self.seed(seed)
        self.precision = "float32"

    @property
    def precision(self) -> str:
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        if value not in PRECISIONS:  # (read by every float32 product: a typo would pass as exact float32)
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
        self._precision = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device_name()!r})"

    def __reduce__(self):
        return get_backend, (self.name,)  # pickled by name: unpickled as this process's backend

    def __copy__(self) -> Backend:
        """Itself, as a device is (PyTorch's deepcopy keeps a tensor's device): a copy of a model or a
        tensor stays on its backend. Through `__reduce__`, a copy of one on a backend made by hand
        (``NumpyBackend(seed)``) landed on the process's, and mixing it with the original was refused
        as "different backends (numpy and numpy)"."""
        return self

    def __deepcopy__(self, memo) -> Backend:
        return self

    # -- common to every backend ----------------------------------------------------------
    def asarray(self, data, dtype=None):
        """``data`` as an array of this backend (no copy when it already is one)."""
        return self.xp.asarray(data, dtype=dtype)

    def scalar(self, value, dtype=None):
        """A Python or NumPy number as a 0-d array of this backend (an operand of an op)."""
        return self.xp.asarray(value, dtype=dtype)

    def owns(self, array) -> bool:
        """Whether ``array`` is an array of this backend."""
        return isinstance(array, self.xp.ndarray)

    @classmethod
    def holds(cls, array) -> bool:
        """Whether ``array`` is an array of this kind of backend, told without making one (`owner`): an
        ndarray of its array module, if that is imported — an array of it exists only once it is. Another
        library's array on the same device (a torch CUDA tensor, DLPack device CuPy's) is not: making the
        backend to ask imported cupy and set up its device only to answer no."""
        ndarray = getattr(sys.modules.get(cls.module), "ndarray", None)
        return isinstance(ndarray, type) and isinstance(array, ndarray)

    def own(self, array):
        """``array`` (of any backend) as an array of this one: itself if it is one, else a copy."""
        return array if self.owns(array) else self.asarray(array_to_numpy(array))

    def row_sums_of_squares(self, array, rows: int):
        """Σ_i x_{k,i}² for each of the ``rows`` rows of ``array`` (its elements in order, as a (rows, n) table),
        summed in float64 whatever its dtype (a float32 square of 1e20 is inf; in float64 it is not): a (rows,)
        float64 array of this backend. Here one float64 copy of the whole array, squared in place, then summed
        by rows (on a GPU a few launches; `NumpyBackend` walks the rows in chunks instead)."""
        squares = array.reshape(rows, -1).astype(np.float64)  # (a copy: squared in place)
        squares *= squares
        return squares.sum(axis=1)

    def seed(self, seed: int | None) -> None:
        """Reseed this backend's generator. It is made when first drawn from: on a GPU making one
        sets up its states on the device (CuPy's: a launch over 13 MB on an H100), which a seed
        nothing draws from — each `fit_many` model's, most `Trainer` runs' — need not pay."""
        with self._rng_lock:
            self._rng, self._rng_seed = None, seed

    @property
    def rng(self):
        """The generator `seed` keyed, made on first use (once: threads drawing first at the same
        time share one stream, as they would have shared one made up front)."""
        rng = self._rng
        if rng is None:
            with self._rng_lock:
                if self._rng is None:
                    self._rng = self.xp.random.default_rng(self._rng_seed)
                rng = self._rng
        return rng

    @functools.cached_property
    def ops(self):
        """The fused operations: NumPy references on the CPU, CUDA kernels on the GPU.

        Built on first use, so nothing compiles at import; kept in the instance then, where a read
        of it (a dozen an op-heavy step) is an attribute's, not a property's call.
        """
        return self._make_ops()

    # -- what differs -----------------------------------------------------------------------
    @classmethod
    def create(cls, seed: int | None = None) -> Backend:
        """A backend of this kind, or `BackendError` saying why it cannot run here."""
        raise NotImplementedError

    def to_numpy(self, array) -> np.ndarray:
        """A NumPy copy (or view, on the CPU) of ``array``."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for queued device work; use it before reading a host clock."""
        raise NotImplementedError

    def device_name(self) -> str:
        """A human-readable name of the device arrays live on."""
        raise NotImplementedError

    def scatter_add(self, target, index, values) -> None:
        """``target[index] += values`` with repeated indices accumulated (unbuffered)."""
        raise NotImplementedError

    def address(self, array) -> int:
        """The host or device address of ``array``'s first element."""
        raise NotImplementedError

    def _make_ops(self):
        raise NotImplementedError

    def graph_scope(self):
        """A context manager in which `xdl.cuda_graph` warms a step up and captures it; it yields
        a recorder with ``begin()``, ``end() -> graph`` and ``capturing()``, and what the block
        allocates stays the graph's own. Backends without CUDA graphs raise `CaptureError`."""
        raise CaptureError(f"CUDA graphs need the cupy backend; the {self.name} backend runs each step as it comes")

    def captured_constants(self) -> list:
        """The cached device arrays (`scalar`'s constants, the fused ops' uploaded values) a graph
        captured now may read; the graph keeps them alive."""
        return []

    def replay(self, graph) -> None:
        """Launch a captured ``graph`` on the current stream."""
        raise CaptureError(f"the {self.name} backend has no CUDA graphs to replay")

    def graph_nodes(self, graph) -> dict[str, int] | None:
        """What a captured ``graph`` runs per replay, by node kind ({"KERNEL": 180, "MEMSET": 4,
        …}: the launches of one step), or None where the backend cannot tell."""
        return None

    def capturing(self) -> bool:
        """Whether the current stream is being captured into a CUDA graph (by xdl or anyone)."""
        return False

    def refuse_if_capturing(self, what: str) -> None:
        """Raise `CaptureError` if the current stream is being captured: ``what`` (a copy from the
        host, an allocation that must outlive the graph) cannot be recorded."""
        if self.capturing():
            raise CaptureError(f"cannot capture {what}")

    def lasting_memory(self):
        """A context in which allocations outlive any graph: a cache made during a warm-up is
        allocated here, not from the graph's private pool (which goes with the graph)."""
        return contextlib.nullcontext()

    def release_graph_memory(self) -> None:
        """Give the memory of dropped graphs back to the device (none to give on this backend)."""


# Elements per chunk of `NumpyBackend.row_sums_of_squares`: NumPy's cast buffer (np.getbufsize()); a float32 →
# float64 copy of more ran 3× slower per element (2-core AMD EPYC, 2026-12-07), and 64 KiB of float64 stays in L2
SQUARES_CHUNK = 8192


def _sum_of_squares(row: np.ndarray, scratch: np.ndarray) -> float:
    """Σ_i x_i² of a 1-D ``row`` in float64, `SQUARES_CHUNK` elements at a time (its whole chunks as the rows of a
    (m, chunk) view, then the rest), each dotted with itself by BLAS ddot: a float64 row's chunks as they are,
    another dtype's each cast first into ``scratch`` (float64, a chunk long or the row's length if shorter)."""
    whole = row.size - row.size % SQUARES_CHUNK
    chunks, rest = row[:whole].reshape(-1, SQUARES_CHUNK), row[whole:]
    if row.dtype == np.float64:
        return sum(np.dot(chunk, chunk) for chunk in chunks) + np.dot(rest, rest)
    total = 0.0
    for chunk in chunks:
        np.copyto(scratch, chunk)
        total += np.dot(scratch, scratch)
    rest_cast = scratch[:rest.size]
    np.copyto(rest_cast, rest)
    return total + np.dot(rest_cast, rest_cast)


def _short_rows_sums_of_squares(table: np.ndarray) -> np.ndarray:
    """Σ_i x_{k,i}² of each row of a (rows, n) ``table`` whose rows are shorter than `SQUARES_CHUNK`, in float64:
    ⌊chunk / n⌋ rows at a time cast into one float64 scratch of a chunk at most, each row dotted with itself.
    (A Python step per row, as `_sum_of_squares` takes, cost more than the sum itself on fit_many's K short rows:
    3 ms for a (1000, 5) stack a float64 copy summed in 20 µs.)"""
    rows, n = table.shape
    per_block = SQUARES_CHUNK // max(n, 1)
    scratch = np.empty((min(per_block, rows), n), dtype=np.float64)
    sums = np.empty(rows, dtype=np.float64)
    for start in range(0, rows, per_block):
        block = scratch[:min(per_block, rows - start)]
        np.copyto(block, table[start:start + per_block])
        np.einsum("ij,ij->i", block, block, out=sums[start:start + len(block)])
    return sums


class NumpyBackend(Backend):
    """NumPy on the CPU; the fused ops are the NumPy references (`xdl.ops.NumpyOps`)."""

    name = "numpy"
    device_type = "cpu"
    dlpack_devices = (1,)  # kDLCPU
    module = "numpy"
    host_sync_is_cheap = True

    def __init__(self, seed: int | None = None):
        super().__init__(np, seed)

    @classmethod
    def create(cls, seed: int | None = None) -> NumpyBackend:
        return cls(seed)

    def to_numpy(self, array) -> np.ndarray:
        return np.asarray(array)

    def synchronize(self) -> None:
        pass  # NumPy calls return when their work is done

    def device_name(self) -> str:
        return "cpu"

    def scatter_add(self, target, index, values) -> None:
        np.add.at(target, index, values)

    def address(self, array) -> int:
        return array.__array_interface__["data"][0]

    def row_sums_of_squares(self, array, rows: int) -> np.ndarray:
        """Σ_i x_{k,i}² for each of the ``rows`` rows of ``array``, in float64 (`Backend.row_sums_of_squares`),
        without a float64 copy of the array: each row walked in chunks (`_sum_of_squares`) through one float64
        scratch of a chunk, made per call (a backend is shared by threads); rows shorter than a chunk, a block
        of them at a time (`_short_rows_sums_of_squares`)."""
        table = array.reshape(rows, -1)
        if table.shape[1] < SQUARES_CHUNK:
            return _short_rows_sums_of_squares(table)
        scratch = np.empty(SQUARES_CHUNK, dtype=np.float64)
        return np.array([_sum_of_squares(row, scratch) for row in table], dtype=np.float64)

    def _make_ops(self):
        from xdl.ops import NumpyOps

        return NumpyOps(self)


class CupyBackend(Backend):
    """CuPy on the current CUDA device; the fused ops are CUDA kernels (`xdl.cuda.CupyOps`)."""

    name = "cupy"
    device_type = "cuda"
    dlpack_devices = (2, 13)  # kDLCUDA, kDLCUDAManaged
    module = "cupy"
    host_sync_is_cheap = False
    supports_graphs = True

    def __init__(self, cupy, seed: int | None = None):
        super().__init__(cupy, seed)
        self._scalars = {}  # (dtype, bytes) -> a 0-d device array, made once
        self._graph_stream = None  # where graphs are warmed up and captured
        self._outside_allocator = None  # inside graph_scope: the allocator in effect outside it
        self._retired_pools = []  # private pools of dropped graphs, until their memory is released

    def scalar(self, value, dtype=None):
        # Made once per value and kept: a step then copies nothing from the host for its
        # constants (λ/2m, …), which a captured step could not do at all.
        host = np.asarray(value, dtype=dtype)
        key = (host.dtype.str, host.tobytes())  # by bits: -0.0 is not 0.0, and NaN finds itself
        array = self._scalars.get(key)
        if array is None:
            self.refuse_if_capturing(f"the first use of the constant {host.item()!r} (a warm-up call, warmup ≥ 1, "
                                     "makes it)")  # a copy from the host cannot be replayed
            if len(self._scalars) >= 4096:
                self._scalars.clear()  # a graph keeps the ones it captured (xdl.graph.CudaGraph)
            with self.lasting_memory():
                array = self._scalars[key] = self.xp.asarray(host)
        return array

    def asarray(self, data, dtype=None):
        if not isinstance(data, self.xp.ndarray):  # a copy from the host: a replay could not redo it
            self.refuse_if_capturing("a copy of host data to the device")
        return self.xp.asarray(data, dtype=dtype)

    def captured_constants(self) -> list:
        ops = self.__dict__.get("ops")  # (built, or none yet: `ops` not made to be asked)
        cached = ops.cached_arrays() if ops is not None else []
        return [*self._scalars.values(), *cached]

    def capturing(self) -> bool:
        return self.xp.cuda.get_current_stream().is_capturing()

    def lasting_memory(self):
        if self._outside_allocator is None:
            return contextlib.nullcontext()
        return self.xp.cuda.using_allocator(self._outside_allocator)

    @contextlib.contextmanager
    def graph_scope(self):
        # A stream of its own (capture cannot run on the legacy default stream), ordered after
        # what the caller queued and before what it queues next; a private memory pool, so no
        # allocation outside the graph can take memory a replay writes. The pool lives as long as
        # the graph (its recorder holds it); caches made in a warm-up come from `lasting_memory`.
        cp = self.xp
        self.release_graph_memory()
        if self._graph_stream is None:
            self._graph_stream = cp.cuda.Stream(non_blocking=True)
        stream, pool, caller = self._graph_stream, cp.cuda.MemoryPool(), cp.cuda.get_current_stream()
        stream.wait_event(caller.record())
        self._outside_allocator = cp.cuda.get_allocator()
        try:
            with stream, cp.cuda.using_allocator(pool.malloc):
                yield _CupyRecorder(stream, pool, self._retired_pools)
        finally:
            self._outside_allocator = None
            caller.wait_event(stream.record())

    def release_graph_memory(self) -> None:
        """Free the blocks of dropped graphs' pools. A pool whose blocks are still in use (an
        array a graph returned, still held) is kept until they are not: dropping a CuPy pool frees
        the memory of its live blocks under them. Nothing is freed while a capture records, on
        this thread's stream or (another thread's) on the graph stream."""
        recording = self.capturing() or self._graph_stream is not None and self._graph_stream.is_capturing()
        if self._retired_pools and not recording:
            for pool in self._retired_pools:
                pool.free_all_blocks()
            self._retired_pools[:] = [pool for pool in self._retired_pools if pool.used_bytes()]

    def replay(self, graph) -> None:
        graph.launch(self.xp.cuda.get_current_stream())

    def graph_nodes(self, graph) -> dict[str, int] | None:
        # CuPy exposes the graph only as the DOT text of cudaGraphDebugDotPrint: one record per node,
        # its label starting with the node's type (printed for certain with every detail: flags = 1,
        # cudaGraphDebugDotFlagsVerbose)
        return dot_node_kinds(graph.debug_dot_str(1))

    @classmethod
    def create(cls, seed: int | None = None) -> CupyBackend:
        """Import cupy and check that a CUDA device answers, or raise `BackendError` saying why."""
        cupy, reason = _cupy_or_reason()
        if cupy is None:
            raise BackendError(f"backend 'cupy' is unavailable: {reason}")
        return cls(cupy, seed)

    def to_numpy(self, array) -> np.ndarray:
        return array.get()

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def device_name(self) -> str:
        dev = self.xp.cuda.Device()
        name = self.xp.cuda.runtime.getDeviceProperties(dev.id)["name"]
        return f"cuda:{dev.id} ({name.decode() if isinstance(name, bytes) else name})"

    def scatter_add(self, target, index, values) -> None:
        # ndarray.scatter_add is deprecated in CuPy 14; cupyx's function is its replacement
        importlib.import_module("cupyx").scatter_add(target, index, values)

    def address(self, array) -> int:
        return array.data.ptr

    def _make_ops(self):
        from xdl.cuda import CupyOps

        return CupyOps(self)


class _CupyRecorder:
    """Stream capture on the graph stream into a graph whose memory comes from ``pool``; a graph
    holds its recorder, so the pool lives as long as the graph."""

    def __init__(self, stream, pool, retired: list):
        self.stream, self.pool, self._retired = stream, pool, retired

    def __del__(self):
        # The graph is gone. Its pool is released later, at a safe point (`release_graph_memory`):
        # a finalizer may run in the middle of another capture, where freeing device memory breaks it.
        self._retired.append(self.pool)

    def begin(self) -> None:
        self.stream.begin_capture()

    def end(self):
        return self.stream.end_capture()

    def capturing(self) -> bool:
        return self.stream.is_capturing()


_DOT_NODE = re.compile(r'^\s*"(graph_\d+_node_\d+)"\s*\[(.*?)\];?\s*$', re.MULTILINE | re.DOTALL)
_NODE_KINDS = re.compile(r"\b(KERNEL|MEMSET|MEMCPY|HOST|EMPTY|MEM_ALLOC|MEM_FREE|EVENT_RECORD|WAIT_EVENT|"
                         r"CONDITIONAL|GRAPH|EXT_SEMAS_SIGNAL|EXT_SEMAS_WAIT)\b")


def dot_node_kinds(dot: str) -> dict[str, int] | None:
    """Node kinds counted in a graph's DOT text (``cudaGraphDebugDotPrint``), None if it holds no
    node record this parser knows."""
    kinds: dict[str, int] = {}
    for match in _DOT_NODE.finditer(dot):
        kind = _NODE_KINDS.search(match.group(2))
        name = kind.group(1) if kind else "OTHER"
        kinds[name] = kinds.get(name, 0) + 1
    return kinds or None


BACKENDS = {cls.name: cls for cls in (NumpyBackend, CupyBackend)}
PRECISIONS = ("float32", "tf32")  # of float32 matrix products (Backend.precision)
BACKEND_NAMES = (*BACKENDS, "auto")
DEVICE_BACKENDS = {cls.device_type: cls.name for cls in BACKENDS.values()}  # "cpu", "cuda": PyTorch's words
BACKEND_CHOICES = (*BACKEND_NAMES, *DEVICE_BACKENDS)  # what a backend option takes (`resolve_backend`), as XDL_BACKEND
_backends: dict[str, Backend] = {}
_current: Backend | None = None
_seed: int | None = None
_thread = threading.local()  # .backend, .host_rng: this thread's own (`thread_backend`, `thread_seed`)
# one Backend per name in the process: threads whose first use of xdl came at once each made their own, and
# their tensors met as "different backends (numpy and numpy)" (`get_backend`)
_creating = threading.RLock()


def _cupy_or_reason():
    """Import cupy and check that a CUDA device answers; return (module, None) or (None, reason)."""
    try:
        cupy = importlib.import_module("cupy")
    except Exception as exc:  # ImportError, or a broken CUDA install raising on import
        return None, (f"cupy is not importable ({type(exc).__name__}: {exc}); pip install 'xdl[cuda12]' (CUDA 12) "
                      "or 'xdl[cuda13]' (CUDA 13)")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"no CUDA device answers ({type(exc).__name__}: {exc})"
    if count < 1:
        return None, "no CUDA device found (getDeviceCount() == 0)"
    return cupy, None


def get_backend(name: str) -> Backend:
    """The `Backend` called ``name`` ("numpy", "cupy" or "auto"), created on first use."""
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKEND_NAMES)}")
    if name == "auto":
        name = "cupy" if "cupy" in _backends or _cupy_or_reason()[0] is not None else "numpy"
    backend = _backends.get(name)
    if backend is None:
        with _creating:  # made once, by the first thread to get here; the others take that one
            if name not in _backends:
                _backends[name] = BACKENDS[name].create(_seed)
            backend = _backends[name]
    return backend


def resolve_backend(backend, caller: str) -> Backend:
    """``backend`` as a `Backend`: one already, a backend name ("numpy", "cupy", "auto") or a
    device kind ("cpu", "cuda": PyTorch's words), as every ``backend`` argument takes it; else
    an error naming ``caller`` (the function whose argument it is)."""
    if isinstance(backend, Backend):
        return backend
    if isinstance(backend, str) and (backend in BACKEND_NAMES or backend in DEVICE_BACKENDS):
        return get_backend(DEVICE_BACKENDS.get(backend, backend))
    if isinstance(backend, str):
        raise ValueError(f"{caller}: unknown backend {backend!r}; expected one of {', '.join(BACKEND_NAMES)} "
                         f"or a device kind ({', '.join(DEVICE_BACKENDS)})")
    raise TypeError(f"{caller}: backend must be a backend name ({', '.join(BACKEND_NAMES)}), a device kind "
                    f"({', '.join(DEVICE_BACKENDS)}) or an xdl Backend, got {backend!r}")


def current_backend() -> Backend:
    """The backend new tensors are created on."""
    global _current
    own = getattr(_thread, "backend", None)
    if own is not None:
        return own
    if _current is None:
        backend = get_backend(environment_backend() or "auto")
        with _creating:  # (a `use` in another thread meanwhile stands)
            if _current is None:
                _current = backend
    return _current


def environment_backend() -> str | None:
    """The backend ``XDL_BACKEND`` names (checked; a device kind, "cpu" or "cuda", as `use` takes
    it, is its backend's name), or None when it is unset or empty."""
    env = os.environ.get("XDL_BACKEND", "").strip().lower()
    env = DEVICE_BACKENDS.get(env, env)
    if env and env not in BACKEND_NAMES:
        raise ValueError(f"XDL_BACKEND={env!r} is not a backend; expected one of {', '.join(BACKEND_NAMES)} or a "
                         f"device kind ({', '.join(DEVICE_BACKENDS)})")
    return env or None


class use:
    """Switch the current backend: ``xdl.use("numpy")`` now, or ``with xdl.use("cupy"): ...``
    (a backend name, a device kind "cpu"/"cuda", or a `Backend`: ``xdl.use(model.backend)``).

    ``precision`` ("float32" or "tf32") sets how the backend computes float32 matrix products
    (`Backend.precision`); None leaves it as it is. Used as a context manager it restores the
    previous backend and precision on exit. Both are the whole process's, every thread's (unlike
    ``torch.set_default_device``'s device, each thread's own since PyTorch 2.3): two threads'
    overlapping blocks restore each other's; a backend for one thread alone is `thread_backend`'s.
    """

    def __init__(self, name, precision: str | None = None):
        global _current
        # (a str first: an array's `in` was NumPy's "truth value … ambiguous")
        if precision is not None and (not isinstance(precision, str) or precision not in PRECISIONS):
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.backend = resolve_backend(name, "use")
        self._previous, self._previous_precision = _current, self.backend.precision
        if precision is not None:
            self.backend.precision = precision
        _current = self.backend

    def __enter__(self) -> Backend:
        return self.backend

    def __exit__(self, *exc) -> None:
        global _current
        _current = self._previous
        self.backend.precision = self._previous_precision


@contextlib.contextmanager
def thread_backend(backend: Backend):
    """Within the block, in this thread only, ``backend`` (a `Backend`, or a name or device kind as
    `use` takes) is current: how xdl's own code builds a model on the host (or anywhere) without
    touching the backend `use` set for the process, which other threads may be using."""
    backend = resolve_backend(backend, "thread_backend")
    previous = getattr(_thread, "backend", None)
    _thread.backend = backend
    try:
        yield backend
    finally:
        _thread.backend = previous


def seed(n: int | None) -> None:
    """Make runs repeatable: seeds the host generator used for initialization and shuffling,
    and every backend's device generator (dropout masks, noise). ``n``: an integer ≥ 0, or None
    for fresh entropy."""
    check_seed(n)
    global _seed, _host_rng
    with _creating:  # (a backend being made in another thread meanwhile took the seed before, and was left out)
        _seed = n
        _host_rng = np.random.default_rng(n)
        for backend in _backends.values():
            backend.seed(n)


_host_rng = np.random.default_rng()


def host_rng() -> np.random.Generator:
    """The seeded host generator: weights are drawn here, so a seed gives the same initial
    weights on every backend (this thread's own within `thread_seed`)."""
    own = getattr(_thread, "host_rng", None)
    return _host_rng if own is None else own


SEEDS = 2**64  # seeds are below it: a dropout mask's key holds one in 64 bits (`xdl.ops.random`), as PyTorch's


def check_seed(n) -> None:
    """``n`` is a seed: an integer in [0, 2⁶⁴), or None (fresh entropy); else ValueError naming it."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer) or not 0 <= n < SEEDS):
        raise ValueError(f"seed must be an integer in [0, 2**64) or None, got {n!r}")


@contextlib.contextmanager
def thread_seed(n: int | None):
    """Within the block, in this thread only, `host_rng` is a generator seeded with ``n``: a model
    built there draws the weights it draws after ``xdl.seed(n)``, and the process's generators
    (the user's, the devices') are left as they were."""
    check_seed(n)
    with thread_generator(np.random.default_rng(n)):
        yield


@contextlib.contextmanager
def thread_generator(generator: np.random.Generator):
    """Within the block, in this thread only, `host_rng` is ``generator`` (`thread_seed`'s, or
    `host_rng_copy`'s): what this thread draws moves no other thread's generator."""
    previous = getattr(_thread, "host_rng", None)
    _thread.host_rng = generator
    try:
        yield generator
    finally:
        _thread.host_rng = previous


def host_rng_copy() -> np.random.Generator:
    """A generator of its own at `host_rng`'s state now: it draws what `host_rng` would draw next, and
    leaves that one where it is (read under its lock: another thread may be drawing from it)."""
    rng = host_rng()
    with rng.bit_generator.lock:
        return copy.deepcopy(rng)


def backend_of(array) -> Backend:
    """The backend an array belongs to (numpy, or a backend that owns it: `owner`)."""
    if isinstance(array, np.ndarray | np.generic):
        return get_backend("numpy")
    backend = owner(array)
    if backend is None:
        raise TypeError(f"expected a numpy or cupy array, got {type(array).__name__}")
    return backend


def owner(array) -> Backend | None:
    """The backend whose array ``array`` is: a loaded one that owns it, or else the one whose kind holds it
    (`Backend.holds`), made now — a CuPy array given to a model on numpy before the cupy backend was first
    used (``XDL_BACKEND=numpy``): it was read as no backend's, and fit, predict, `split`, `Standardizer` and
    `xdl.tensor` refused it as "does not convert to a NumPy array" (CuPy's "Implicit conversion … not
    allowed"), where the same call after any use of cupy copied it over. None for anything else (lists,
    frames, another library's arrays — a torch CUDA tensor too, told without making the cupy backend)."""
    for backend in list(_backends.values()):
        if backend.owns(array):
            return backend
    for name, cls in BACKENDS.items():
        if name not in _backends and cls.holds(array):
            try:
                return get_backend(name)
            except BackendError:  # (its module imported, but no device answers)
                return None
    return None


def on_backend_of(result: np.ndarray, given):
    """``result``, a NumPy array computed on the host from ``given``, on ``given``'s backend: for a CuPy
    array a CuPy array (as scikit-learn's array API mode returns its input's namespace: `split`'s parts and
    `Standardizer.transform`'s values were NumPy ones, and a device pipeline's next step mixed the two);
    for anything else (a NumPy array, a list, a frame's values) ``result`` as it is."""
    backend = owner(given)
    return result if backend is None or backend.owns(result) else backend.asarray(result)


def on_device(array) -> bool:
    """Whether ``array`` is an array of a backend whose arrays live off the host (a CuPy array: `owner`)."""
    backend = None if isinstance(array, np.ndarray | np.generic) else owner(array)
    return backend is not None and backend.device_type != "cpu"


def backend_for_dlpack(device_type: int) -> Backend:
    """The backend whose arrays live on DLPack device type ``device_type``."""
    for cls in BACKENDS.values():
        if device_type in cls.dlpack_devices:
            return get_backend(cls.name)
    raise BackendError(f"no xdl backend holds arrays of DLPack device type {device_type}")


def is_sparse_matrix(array) -> bool:
    """Whether ``array`` is a scipy.sparse matrix or array (told by its duck type: scipy stays optional)."""
    return hasattr(array, "toarray") and hasattr(array, "nnz")


def host_copy(backend: Backend, array) -> np.ndarray:
    """A NumPy copy of ``array`` (of ``backend``), never its memory: on the CPU `to_numpy` gives the array
    itself (an array the backend owns), which is copied; a device's read is a new host array already, not
    copied again."""
    host = backend.to_numpy(array)
    return host.copy() if backend.owns(host) else host


def to_numpy_together(backend: Backend, arrays) -> list[np.ndarray]:
    """NumPy copies of ``arrays`` (of ``backend``), in their order, shapes and dtypes, in one host read per
    dtype: on a GPU each read is a copy and a sync. A dtype's arrays are raveled and concatenated on the
    device (one alone is read as it is: no device copy) and each is returned as a view of that dtype's one
    host copy. Meant for small arrays (running statistics): the concatenation is a device copy of them.
    Where a host read is cheap (the CPU) each is copied alone (`host_copy`): as fast, and no concatenation."""
    arrays = list(arrays)
    if backend.host_sync_is_cheap:
        return [host_copy(backend, a) for a in arrays]
    by_dtype: dict = {}
    for i, a in enumerate(arrays):
        by_dtype.setdefault(a.dtype, []).append(i)
    out: list = [None] * len(arrays)
    for indices in by_dtype.values():
        if len(indices) == 1:
            out[indices[0]] = host_copy(backend, arrays[indices[0]])
            continue
        host, at = backend.to_numpy(backend.xp.concatenate([arrays[i].reshape(-1) for i in indices])), 0
        for i in indices:
            out[i] = host[at:at + arrays[i].size].reshape(arrays[i].shape)
            at += arrays[i].size
    return out


def array_to_numpy(array) -> np.ndarray:
    """A NumPy array from an array of any loaded backend, or anything array-like. A masked array's
    masked values (np.ma: np.genfromtxt(usemask=True)'s, a FITS or netCDF column's gaps) become NaN,
    a missing value, as pandas' pd.NA does (`xdl.data.validation.objects_as_floats`), in its floating
    dtype (integers and booleans in float64): ``np.asarray`` drops the mask and gave the values
    under it (a fill value, -9999 or 1e20), which were trained on and predicted from without a word."""
    if isinstance(array, np.ma.MaskedArray) and array.dtype.kind in "biuf" and np.ma.getmaskarray(array).any():
        floating = array.dtype if np.issubdtype(array.dtype, np.floating) else np.dtype(np.float64)
        return np.ma.filled(array.astype(floating), np.nan)
    if isinstance(array, np.ndarray | np.generic):
        return np.asarray(array)
    backend = owner(array)
    if backend is not None:
        return backend.to_numpy(array)
    if is_sparse_matrix(array):  # NumPy reads a scipy.sparse matrix as one 0-d object
        raise TypeError(f"a {type(array).__module__}.{type(array).__name__} (a sparse matrix) does not convert to a "
                        "NumPy array: pass a dense one, .toarray()")
    try:
        return np.asarray(array)
    except (TypeError, RuntimeError) as e:  # another library's array of a dtype NumPy has not (torch's bfloat16: "Got
        # unsupported ScalarType BFloat16", which said neither what was given nor the way out); a torch tensor that
        # requires grad raised torch's own RuntimeError from inside NumPy, at fit, predict, split alike
        dtype = getattr(array, "dtype", None)
        try:  # (a dtype NumPy has, torch.float32: another refusal — a sparse tensor's, a CUDA one's — whose words
            # say the way out, "Use Tensor.to_dense() first", where x.float() changes nothing)
            np.dtype(str(dtype).rpartition(".")[2])
            way_out = ""
        except TypeError:
            way_out = ": convert it to float32 first (torch: x.float())" if dtype is not None else ""
        raise TypeError(f"a {type(array).__module__}.{type(array).__name__}{f' of dtype {dtype}' if dtype else ''} "
                        f"does not convert to a NumPy array ({e}){way_out}") from None
