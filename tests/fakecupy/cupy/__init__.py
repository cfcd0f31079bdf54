"""A stand-in for CuPy on the CPU, for running xdl's GPU-only Python paths without a GPU.

`ndarray` wraps a NumPy array and is a type of its own (not a numpy.ndarray): NumPy refuses it
(``__array__`` raises, as CuPy's does), a ufunc takes device arrays and scalars only (a NumPy array,
0-d too, or a list is a TypeError), and a host read (`get`, `item`, `float`, `bool`, `repr`, …) is
refused while the current stream is captured (`fake_trace` counts them). Kernels run
through the CPU emulator of tests/test_kernel_emulation.py (kernels/*.cu compiled with g++ and
tests/cuda_emulation.h); cuBLAS is `libcublas_fake.cpp`, loaded as ``libcublas.so.12`` so that
xdl's loader finds it in /proc/self/maps.

Graph capture: every device operation issued on a capturing stream runs (its results are needed
for the next one's shapes) and is recorded; at the end of the capture every array that existed
before it gets its contents back (a capture runs nothing) and every array allocated during it is
filled with NaN (or 0x5A bytes): graph-pool memory holds garbage until a replay writes it. A
replay runs the recorded operations again on the same memory.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import functools
import hashlib
import itertools
import os
import subprocess
import sys
import threading
import traceback
import weakref
from pathlib import Path

import numpy as _np

_HERE = Path(__file__).resolve().parent.parent  # tests/fakecupy
_TESTS = _HERE.parent
_BUILD = Path(os.environ.get("FAKECUPY_BUILD", "/tmp/fakecupy-build"))
_local = threading.local()
_roots = weakref.WeakValueDictionary()  # id -> every host buffer standing for device memory
_captures = {}  # stream ptr -> _Capture
__version__ = "14.0.0+fakecupy"  # CuPy's attribute (gpu_checks.sh prints it), saying this is the stand-in

# What of NumPy's API the stand-in passes through: the names xdl and its tests use that CuPy 14 has too (checked
# against CuPy's API). Any other is refused, not taken from NumPy: a call CuPy lacks (or takes otherwise) would
# pass here and fail on a GPU. A new one is added here once CuPy is known to have it, with the same signature.
FUNCTIONS = frozenset("""abs add all any arange broadcast_to clip concatenate copyto divide empty empty_like equal exp
    float32 full greater greater_equal int32 int64 isfinite isnan less less_equal log log1p logaddexp matmul maximum
    multiply ndim negative not_equal ones reciprocal repeat result_type round shape sign size sqrt stack subtract take
    tanh uint8 where zeros zeros_like""".split())
METHODS = frozenset("all argmax argmin astype copy fill max mean min reshape std sum swapaxes transpose var".split())
GENERATOR_METHODS = frozenset(("random", "standard_normal"))  # (cupy.random.Generator has few of NumPy's)


def _modelled(name: str, names, where: str) -> None:
    if name not in names:
        raise AttributeError(f"{where} {name!r} is not modelled by the CuPy stand-in (tests/fakecupy): check that "
                             "CuPy 14 has it, with NumPy's signature, then add it to the stand-in's lists")


# -- errors ------------------------------------------------------------------------------------
class _Runtime:
    class CUDARuntimeError(RuntimeError):
        pass

    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def runtimeGetVersion():
        return 12040

    @staticmethod
    def driverGetVersion():
        return 12040

    @staticmethod
    def getDeviceProperties(i):
        return {"name": b"FakeCupy CPU", "totalGlobalMem": 80 << 30, "multiProcessorCount": 4}

    @staticmethod
    def memGetInfo():
        return (70 << 30, 80 << 30)

    @staticmethod
    def deviceSynchronize():
        _refuse_host_read("cudaDeviceSynchronize")


def _capturing_now():
    return _captures.get(_current_stream().ptr)


# -- tracing: what a piece of code asks of the device (the stand-in's own; CuPy has no such hook) ----------------
class Trace:
    """What the stand-in saw while `fake_trace` was on, as ``events``: ``(kind, what, stack)`` with kind
    "read" (a device-to-host read or a synchronization: what CuPy blocks the host for), "upload" (host data
    copied to the device), "alloc" (a new device buffer; ``what`` its bytes), "launch" (a kernel: an op of
    NumPy's API on device arrays other than a view, or a RawKernel) or "graph" (a CUDA graph replayed: one
    launch); ``stack`` is the traceback where it came from (``stacks=True``), else None. A graph's replay
    runs no Python and reports nothing but its "graph" event. cuBLAS calls run in C: `gemms` counts them."""

    def __init__(self, stacks: bool = False):
        self.events, self.stacks = [], stacks
        self._gemms_before = _cublas().fake_gemm_count()

    def gemms(self) -> int:
        """The cuBLAS products run since the trace began (a replayed graph's too)."""
        return _cublas().fake_gemm_count() - self._gemms_before

    def note(self, kind: str, what) -> None:
        self.events.append((kind, what, "".join(traceback.format_stack()[:-3]) if self.stacks else None))


_traces = []  # the traces on now


@contextlib.contextmanager
def fake_trace(stacks: bool = False):
    """Note every host read, upload, allocation and launch of the block in a `Trace` (the stand-in's own)."""
    trace = Trace(stacks)
    _traces.append(trace)
    try:
        yield trace
    finally:
        _traces.remove(trace)


def _traced(kind: str, what) -> None:
    for trace in _traces:
        trace.note(kind, what)


def _refuse_host_read(what):
    _traced("read", what)
    if _captures:  # (global capture mode: a synchronizing call from any thread invalidates the capture)
        raise _Runtime.CUDARuntimeError(f"cudaErrorStreamCaptureUnsupported: operation not permitted when stream is "
                                        f"capturing ({what})")


# -- memory: buffers, allocators, pools --------------------------------------------------------
def _root(a):
    while isinstance(a.base, _np.ndarray):
        a = a.base
    return a


class MemoryPointer:
    def __init__(self, ptr):
        self.ptr = ptr


class MemoryPool:
    def __init__(self, allocator=None):
        self._live = weakref.WeakValueDictionary()

    def malloc(self, size):  # (the allocations are NumPy's; the pool only counts what it holds)
        return MemoryPointer(0)

    def used_bytes(self):
        return sum(a.nbytes for a in list(self._live.values()))

    def total_bytes(self):
        return self.used_bytes()

    def free_bytes(self):
        return 0

    def free_all_blocks(self, stream=None):  # (under the memory check: its freed blocks are never handed out again)
        for key in [key for key in _free_blocks if key[0] == id(self)]:
            del _free_blocks[key]

    def n_free_blocks(self):
        return 0

    def set_limit(self, size=None, fraction=None):
        pass

    def __del__(self):
        # CuPy frees a dropped pool's blocks under the arrays still holding them: poison them
        if _np is not None and sys.is_finalizing() is False:
            for a in list(self._live.values()):
                _poison(a)


class PinnedMemoryPool(MemoryPool):
    pass


_default_pool = MemoryPool()


def _allocator():
    return getattr(_local, "allocator", _default_pool.malloc)


def _register(a, uninitialized=False):
    """Note ``a``'s root buffer as device memory (allocated now under the current allocator if new); under
    `fake_memory_check` a new buffer is moved into a device block of its own (`_Block`): ``a`` as it is there
    (``uninitialized``, an `empty` one: with what the block held, as CuPy's ``empty`` gives)."""
    r = _root(a)
    if id(r) not in _roots or _roots[id(r)] is not r:
        if _checking is not None and r.base is None and r.nbytes and (r.flags.c_contiguous or r.flags.f_contiguous):
            # (not foreign memory, a DLPack import's, nor a layout of NumPy's other than C or F order)
            a, r = _into_block(a, r, uninitialized)
        _roots[id(r)] = r
        _traced("alloc", r.nbytes)
        owner = getattr(_allocator(), "__self__", None)
        if isinstance(owner, MemoryPool):
            owner._live[id(r)] = r
        capture = _capturing_now()
        if capture is not None:
            capture.allocated[id(r)] = r
    return a


# -- the memory check (`fake_memory_check`): device blocks with lifetimes, as CuPy's pool hands them out ---------
_checking = {"1": "reuse", "reuse": "reuse", "quarantine": "quarantine"}.get(  # None (off), "quarantine" or
    os.environ.get("FAKECUPY_MEMORY_CHECK", ""))  # "reuse": `fake_memory_check`'s mode
_BLOCK_BYTES = 512  # CuPy's pool rounds each allocation up to a multiple of 512 bytes and aligns it so
_blocks = {}  # address -> _Block: every block ever made (memory is never given back to the host)
_block_addresses = []  # their addresses, sorted
_free_blocks = {}  # (pool id, bytes) -> blocks freed and not yet handed out again (most recent last)
_freed = {}  # id -> every block freed and not handed out again, oldest first (kept up to _FREED_BYTES)
_freed_bytes = 0  # their bytes
_FREED_BYTES = 1 << 30  # beyond it the oldest freed blocks go back to the host (a pointer into one: in no allocation)
_memory_errors = []  # what the check refused, as messages (a cuBLAS call refused reads as its status only)


class _Block:
    """Device memory of one allocation: host bytes that outlive the arrays on them. ``generation`` counts
    its allocations (a pointer noted at one generation is dangling at another); ``owner`` is the live
    root array on it (a weak reference; None once freed)."""

    __slots__ = ("memory", "address", "size", "generation", "owner", "pool", "dtype")

    def __init__(self, size, pool):
        self.memory = (ctypes.c_ubyte * (size + _BLOCK_BYTES))()
        start = ctypes.addressof(self.memory)
        self.address = start + (-start) % _BLOCK_BYTES
        self.size, self.generation, self.owner, self.pool, self.dtype = size, 0, None, pool, None

    def live(self):
        return self.owner is not None and self.owner() is not None

    def poison(self):
        """Fill the block with garbage: NaN for the float dtype last on it, else 0x5A bytes."""
        if os.environ.get("FAKECUPY_NO_POISON"):
            return
        raw = (ctypes.c_ubyte * self.size).from_address(self.address)
        if self.dtype is not None and self.dtype.kind in "fc":
            _np.frombuffer(raw, dtype=self.dtype, count=self.size // self.dtype.itemsize)[...] = _np.nan
        else:
            ctypes.memset(self.address, 0x5A, self.size)


def _into_block(a, r, uninitialized=False):
    """``a`` (a view of the new NumPy buffer ``r``, or ``r``) moved into a device block: a freed block of
    the same size from the same pool under "reuse" (CuPy's pool hands the last one freed to the next
    allocation), else a new one (poisoned, for an ``uninitialized`` one). The block is freed — poisoned, and
    under "reuse" handed out again — when the last array on it goes."""
    size = -(-r.nbytes // _BLOCK_BYTES) * _BLOCK_BYTES
    owner = getattr(_allocator(), "__self__", None)
    pool = id(owner) if isinstance(owner, MemoryPool) else 0
    free = _free_blocks.get((pool, size)) if _checking == "reuse" else None
    global _freed_bytes
    block = free.pop() if free else _Block(size, pool)
    if _freed.pop(id(block), None) is not None:
        _freed_bytes -= block.size
    if block.address not in _blocks:
        _blocks[block.address] = block
        bisect.insort(_block_addresses, block.address)
    raw = (ctypes.c_ubyte * size).from_address(block.address)
    moved = _np.ndarray(r.shape, r.dtype, buffer=raw, strides=r.strides)
    if not uninitialized:
        moved[...] = r
    elif block.generation == 0:  # (new host memory is zeros: garbage, as a GPU's never-used memory)
        block.dtype = r.dtype
        block.poison()
    moved.flags.writeable = r.flags.writeable
    block.generation += 1
    block.owner, block.dtype = weakref.ref(moved), r.dtype
    weakref.finalize(moved, _free_block, block)
    if a is r:
        return moved, moved
    flat = (moved if moved.flags.c_contiguous else moved.T).reshape(-1).view(_np.uint8)  # (a view: ``moved`` its base)
    view = _np.ndarray(a.shape, a.dtype, buffer=flat, offset=a.ctypes.data - r.ctypes.data, strides=a.strides)
    view.flags.writeable = a.flags.writeable
    return view, moved


def _free_block(block):
    global _freed_bytes
    block.owner = None
    block.poison()
    if sys.is_finalizing():
        return
    if _checking == "reuse":
        _free_blocks.setdefault((block.pool, block.size), []).append(block)
    _freed[id(block)] = block
    _freed_bytes += block.size
    while _freed_bytes > _FREED_BYTES:
        oldest = _freed.pop(next(iter(_freed)))
        _freed_bytes -= oldest.size
        listed = _free_blocks.get((oldest.pool, oldest.size), [])
        if oldest in listed:
            listed.remove(oldest)
        del _blocks[oldest.address]
        _block_addresses.remove(oldest.address)


def _block_of(address):
    """The block whose memory holds ``address``, or None."""
    i = bisect.bisect_right(_block_addresses, address) - 1
    block = _blocks.get(_block_addresses[i]) if i >= 0 else None
    return block if block is not None and address < block.address + block.size else None


def _pointer_problem(address, nbytes):
    """Why ``nbytes`` bytes from ``address`` are not all in one live device allocation, or None."""
    if not address or nbytes <= 0:
        return None
    block = _block_of(address)
    if block is not None:
        root = block.owner() if block.owner is not None else None
        if root is None:
            return f"0x{address:x} is in device memory freed (block of generation {block.generation})"
        if address + nbytes > root.ctypes.data + root.nbytes:
            return f"0x{address:x}+{nbytes} runs past its allocation ({root.nbytes} bytes at 0x{root.ctypes.data:x})"
        return None
    for r in list(_roots.values()):  # memory allocated before the check began
        if r.ctypes.data <= address and address + nbytes <= r.ctypes.data + r.nbytes:
            return None
    return f"0x{address:x}+{nbytes} is in no live device allocation"


def _generation(address):
    block = _block_of(address)
    return None if block is None else (block, block.generation)


@contextlib.contextmanager
def fake_memory_check(mode: str = "reuse"):
    """Within the block (the stand-in's own; CuPy has none), every new device buffer is a block of its own whose
    memory outlives its arrays: freed (its last array gone), it is poisoned (NaN, 0x5A) and, under "reuse",
    handed to the next allocation of its size from its pool, as CuPy's pool does ("quarantine": never again).
    A cuBLAS call checks its operands and its handle's workspace against them: a pointer outside a live
    allocation, or a workspace freed (or handed to another array) since `cublasSetWorkspace_v2`, is refused
    (status 14, the reason in `fake_memory_errors`). FAKECUPY_MEMORY_CHECK=reuse|quarantine turns it on for the
    whole process."""
    global _checking
    if mode not in ("reuse", "quarantine"):
        raise ValueError(f"fake_memory_check: mode must be 'reuse' or 'quarantine', got {mode!r}")
    before, _checking = _checking, mode
    _cublas().fake_set_checking(1)
    try:
        yield
    finally:
        _checking = before
        _cublas().fake_set_checking(int(before is not None))


def fake_memory_errors() -> list:
    """What the memory check refused so far, as messages (the stand-in's own)."""
    return list(_memory_errors)


def _poison(a):
    if os.environ.get("FAKECUPY_NO_POISON") or not a.flags.writeable or a.size == 0:
        return
    if a.dtype.kind in "fc":
        a[...] = _np.nan
    else:
        flat = a.reshape(-1) if a.flags.c_contiguous else None
        if flat is not None:
            flat.view(_np.uint8)[...] = 0x5A
        else:
            a[...] = 0x5A


# -- the array -----------------------------------------------------------------------------------
def _wrap(x, outs=(), uninitialized=False):
    if isinstance(x, ndarray):
        return x
    if isinstance(x, _np.ndarray):
        for w in outs:
            if w._a is x:
                return w
        a = object.__new__(ndarray)
        a._a = _register(x, uninitialized)
        return a
    if isinstance(x, _np.generic):
        return _wrap(_np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v, outs) for v in x)
    if isinstance(x, list):
        return [_wrap(v, outs) for v in x]
    return x


def _unwrap(x, strict=False, depth=0):
    """Arrays of this module as their NumPy buffers; a NumPy array copied to the device (refused
    while capturing) — or, for a ufunc (``strict``), refused as CuPy refuses it."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, _np.ndarray):
        if x.ndim == 0:
            return x
        if strict:
            raise TypeError(f"Unsupported type {type(x)}")
        _host_to_device("a NumPy array argument")
        return _register(_np.array(x, copy=True))
    if isinstance(x, (tuple, list)) and depth < 2:
        return type(x)(_unwrap(v, strict, depth + 1) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v, strict, depth + 1) for k, v in x.items()}
    return x


def _buffers(x):
    """The NumPy buffers of `_wrap`'s result."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, (tuple, list)):
        return type(x)(_buffers(v) for v in x)
    return x


def _host_to_device(what):
    _traced("upload", what)
    if _capturing_now() is not None:
        raise _Runtime.CUDARuntimeError(f"cudaErrorStreamCaptureUnsupported: {what} copied from the host during "
                                        "stream capture")


def _outs(args, kwargs):
    found = [v for v in (*args, *kwargs.values()) if isinstance(v, ndarray)]
    out = kwargs.get("out")
    if isinstance(out, tuple):
        found += [v for v in out if isinstance(v, ndarray)]
    return found


def _call(f, args, kwargs, strict=False):
    """``f`` on the NumPy buffers of its arguments; the result as arrays of this module. On a
    capturing stream a call that launches a kernel (`_launches`) is recorded: a replay calls it again
    and writes what it returns into the arrays this call returned."""
    u_args, u_kwargs = _unwrap(args, strict), _unwrap(kwargs, strict)
    result = _arrays(f(*u_args, **u_kwargs))
    launched = _launches(f, result, u_args, kwargs)
    if launched:
        _traced("launch", getattr(f, "__name__", "op"))
    wrapped = _wrap(result, _outs(args, kwargs), getattr(f, "__name__", "") in _NO_KERNEL)
    result = _buffers(wrapped)  # (what `_register` made of it: moved into a device block under the memory check)
    capture = _capturing_now()
    if capture is not None and launched:  # (a view, a shape, an empty array: no node of a CUDA graph)
        refs = _refs((result, u_args, u_kwargs), capture)

        def replay():
            target, args_, kwargs_ = _deref(refs)
            _into(target, f(*args_, **kwargs_))

        capture.record(replay, getattr(f, "__name__", "op"))
    return wrapped


class _Ref:
    """An array a recorded operation reads or writes. Memory of the graph's own pool (allocated in its
    scope) is the graph's; other device memory is held weakly, as a CUDA graph holds a raw address: a
    replay after the last array on it was dropped reads freed memory, which raises here."""

    __slots__ = ("strong", "weak", "geometry", "what")

    def __init__(self, a, capture):
        r = _root(a)
        self.strong, self.weak, self.geometry, self.what = a, None, None, f"{a.dtype}{list(a.shape)}"
        device = _roots.get(id(r)) is r
        owned = id(r) in capture.allocated or (capture.pool is not None and capture.pool._live.get(id(r)) is r)
        if not device or owned or not r.flags.c_contiguous or os.environ.get("FAKECUPY_NO_FREE_CHECK"):
            return
        if a is not r:
            geometry = (a.shape, a.dtype, a.ctypes.data - r.ctypes.data, a.strides)
            try:
                _np.ndarray(geometry[0], geometry[1], buffer=r, offset=geometry[2], strides=geometry[3])
            except (TypeError, ValueError):
                return
            self.geometry = geometry
        self.strong, self.weak = None, weakref.ref(r)

    def get(self):
        if self.strong is not None:
            return self.strong
        r = self.weak()
        if r is None:
            raise _Runtime.CUDARuntimeError(f"cudaErrorIllegalAddress (fake cupy): a graph replay reads or writes "
                                            f"device memory ({self.what}) freed since its capture")
        if self.geometry is None:
            return r
        shape, dtype, offset, strides = self.geometry
        return _np.ndarray(shape, dtype, buffer=r, offset=offset, strides=strides)


def _refs(x, capture, depth=0):
    if isinstance(x, _np.ndarray) and x.ndim >= 0 and _roots.get(id(_root(x))) is _root(x):
        return _Ref(x, capture)
    if isinstance(x, (tuple, list)) and depth < 4:
        return type(x)(_refs(v, capture, depth + 1) for v in x)
    if isinstance(x, dict) and depth < 4:
        return {k: _refs(v, capture, depth + 1) for k, v in x.items()}
    return x


def _deref(x, depth=0):
    if isinstance(x, _Ref):
        return x.get()
    if isinstance(x, (tuple, list)) and depth < 4:
        return type(x)(_deref(v, depth + 1) for v in x)
    if isinstance(x, dict) and depth < 4:
        return {k: _deref(v, depth + 1) for k, v in x.items()}
    return x


def _arrays(result):
    """NumPy scalars as 0-d arrays (CuPy's reductions return device arrays), which a replay writes."""
    if isinstance(result, _np.generic):
        return _np.asarray(result)
    if isinstance(result, tuple):
        return tuple(_arrays(r) for r in result)
    return result


def _into(target, value):
    if isinstance(target, _np.ndarray):
        if value is not target and target.flags.writeable:  # (a read-only result is a view: broadcast_to)
            target[...] = value
    elif isinstance(target, tuple):
        for t, v in zip(target, value):
            _into(t, v)


_NO_KERNEL = frozenset(("empty", "empty_like"))  # (memory only: an allocation, no kernel)


def _launches(f, result, args, kwargs) -> bool:
    """Whether a call ``f(*args, **kwargs)`` that gave ``result`` ran a kernel on CuPy: it wrote an array
    (``out=``, an assignment, a fill, or an ``out`` given by position: NumPy returns the array it wrote, one of
    ``args[1:]``) or made one with values — not a view of memory there was, the array it was called on
    (``x.astype(x.dtype, copy=False)``), a host answer (a shape, a dtype) or an empty array."""
    if getattr(f, "__name__", "") in _NO_KERNEL:
        return False
    # (an out by position, ``xp.add(c, 1, c)``, read as memory there was: a capture recorded no node for it)
    if result is None or "out" in kwargs or any(result is a for a in args[1:]):
        return True
    if isinstance(result, tuple):
        return any(_launches(f, r, args, {}) for r in result)
    return isinstance(result, _np.ndarray) and _roots.get(id(_root(result))) is not _root(result)


def _ufunc_operands(ufunc, method, args, kwargs):
    """The arguments of a ufunc call that CuPy takes as operands (its inputs and ``out``)."""
    if method == "__call__":
        inputs = args[:ufunc.nin]
    elif method == "at":
        inputs = args[:1] + args[2:3]  # (the indices between: an index, taken as indexing takes one)
    else:
        inputs = args[:1]
    out = kwargs.get("out", args[ufunc.nin:] if method == "__call__" else ())
    return (*inputs, *(out if isinstance(out, tuple) else (out,)))


_COMPARISONS = frozenset("greater greater_equal less less_equal equal not_equal".split())


def _ufunc_call(ufunc, method, args, kwargs):
    if ufunc.__name__ in _COMPARISONS:  # (CuPy's workaround for numpy/numpy#12142: a 0-d NumPy array as its item)
        args = tuple(x.item() if isinstance(x, _np.ndarray) and x.ndim == 0 else x for x in args)
    # CuPy's ufuncs take device arrays and scalars only (cupy/_core/_kernel.pyx `_preprocess_arg`: a Python
    # int, float, bool or complex or a NumPy scalar; anything else raises TypeError("Unsupported type ..."):
    # a NumPy array, 0-d ones too, and a list or tuple, which NumPy would make an array of)
    for x in _ufunc_operands(ufunc, method, args, kwargs):
        if not (x is None or isinstance(x, (ndarray, _np.generic)) or type(x) in (int, float, bool, complex)):
            raise TypeError(f"Unsupported type {type(x)}")
    f = ufunc if method == "__call__" else getattr(ufunc, method)
    return _call(f, args, kwargs, strict=True)


class _Data:
    __slots__ = ("ptr", "mem")

    def __init__(self, ptr):
        self.ptr, self.mem = ptr, None


class _Flags:
    def __init__(self, a):
        self.c_contiguous, self.f_contiguous = a.flags.c_contiguous, a.flags.f_contiguous
        self.owndata = _root(a) is a

    def __getitem__(self, key):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous, "OWNDATA": self.owndata}[key]


def _host_read(read, what: str):
    """A method reading the device array on the host with ``read`` (of its NumPy buffer): refused while capturing."""
    def method(self):
        _refuse_host_read(what)
        return read(self._a)
    return method


class ndarray:
    """A device array: a NumPy buffer behind CuPy's interface."""

    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._a = _register(_np.empty(shape, dtype=dtype, order=order), uninitialized=True)

    # what a host read is
    def get(self, stream=None, order="C", out=None, blocking=True):
        _refuse_host_read("ndarray.get")
        if out is not None:
            out[...] = self._a
            return out
        return _np.array(self._a, copy=True, order=order)

    def set(self, arr, stream=None):
        _host_to_device("ndarray.set")
        self._a[...] = arr

    item = _host_read(_np.ndarray.item, "ndarray.item")
    tolist = _host_read(_np.ndarray.tolist, "ndarray.tolist")
    __float__ = _host_read(float, "float(ndarray)")
    __int__ = _host_read(int, "int(ndarray)")
    __complex__ = _host_read(complex, "complex(ndarray)")
    __bool__ = _host_read(bool, "bool(ndarray)")
    __index__ = _host_read(_np.ndarray.__index__, "operator.index(ndarray)")

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a "
                        "NumPy array explicitly.")

    # (CuPy's repr, str and format read the array with get(): a host read)
    __repr__ = _host_read(repr, "repr(ndarray)")
    __str__ = _host_read(str, "str(ndarray)")

    def __format__(self, spec):  # (CuPy's reads the array on the host)
        _refuse_host_read("format(ndarray)")
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    # what NumPy's functions do with it (CuPy's __array_ufunc__ / __array_function__)
    def __array_ufunc__(self, ufunc, method, *args, **kwargs):
        # (CuPy calls cupy.<name>: NotImplemented without one)
        _modelled(ufunc.__name__, FUNCTIONS | _OPERATOR_UFUNCS, "cupy's ufunc")
        return _ufunc_call(ufunc, method, args, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if func.__module__ == "numpy":  # CuPy calls cupy.<name> (NotImplemented, a TypeError, without one)
            return getattr(sys.modules[__name__], func.__name__)(*args, **kwargs)
        return _call(func, args, kwargs)

    # layout
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: _Flags(self._a))
    data = property(lambda self: _Data(self._a.ctypes.data))
    device = property(lambda self: cuda.Device(0))
    T = property(lambda self: _wrap(self._a.T))
    mT = property(lambda self: _wrap(self._a.mT))
    real = property(lambda self: _wrap(self._a.real))

    @property
    def base(self):
        return None if _root(self._a) is self._a else _wrap(_root(self._a))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        for i in range(len(self._a)):
            yield self[i]

    def __getitem__(self, key):
        keys = key if isinstance(key, tuple) else (key,)
        if any(isinstance(k, ndarray) and k.dtype == bool for k in keys):
            _refuse_host_read("boolean-mask indexing (CuPy reads the mask's count to size the result)")
        if len(keys) == self._a.ndim and all(isinstance(k, (int, _np.integer)) for k in keys):
            key = (*keys, Ellipsis)  # (one element: a 0-d view, as CuPy's, not NumPy's scalar copy)
        return _call(_np.ndarray.__getitem__, (self, key), {})

    def __setitem__(self, key, value):
        parts = key if isinstance(key, tuple) else (key,)
        if not isinstance(value, ndarray) and all(isinstance(p, (int, _np.integer, slice, type(None))) or p is Ellipsis
                                                  for p in parts):
            # CuPy fills a basic index's view with a value not on the device (cupy/_core/_routines_indexing.pyx
            # `_scatter_op`: ``y.fill(value)``), and `fill` takes a scalar only
            if isinstance(value, _np.ndarray) and value.ndim > 0:
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            if isinstance(value, (list, tuple)):
                raise TypeError(f"Unsupported type {type(value)}")
        if isinstance(value, _np.ndarray) and value.ndim > 0:
            _host_to_device("a NumPy array assigned into a device array")
        _call(_np.ndarray.__setitem__, (self, key, value if not isinstance(value, _np.ndarray) else
                                        _np.array(value, copy=True)), {})

    def __getattr__(self, name):  # the methods: NumPy's, on the buffer
        if name.startswith("__") or name == "_a":
            raise AttributeError(name)
        _modelled(name, METHODS, "cupy.ndarray's method")
        attr = getattr(_np.ndarray, name, None)
        if attr is None or not callable(attr):
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        return functools.partial(_method, name, self)

    def __reduce__(self):
        return _rebuild, (self._a.copy(),)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __dlpack_device__(self):
        return (2, 0)  # kDLCUDA

    def __dlpack__(self, stream=None, **kwargs):
        _local.exported = self._a.view()
        return self._a.__dlpack__()

    def __cuda_array_interface__(self):
        raise AttributeError("__cuda_array_interface__")


def _method(name, self, *args, **kwargs):
    return _call(getattr(_np.ndarray, name), (self, *args), kwargs)


def _rebuild(host):
    return _wrap(_np.array(host, copy=True))


def _operator(ufunc, reflected=False):  # (a NumPy array beside it: refused by `_ufunc_call`, as CuPy's ufuncs do)
    def op(self, other):
        return _ufunc_call(ufunc, "__call__", (other, self) if reflected else (self, other), {})

    return op


def _inplace(ufunc):
    def op(self, other):
        _ufunc_call(ufunc, "__call__", (self, other), {"out": self})
        return self

    return op


_OPERATOR_UFUNCS = frozenset()  # the ufuncs of ndarray's operators (CuPy has each)
for _name, _uf in dict(add=_np.add, sub=_np.subtract, mul=_np.multiply, truediv=_np.true_divide,
                       floordiv=_np.floor_divide, mod=_np.remainder, pow=_np.power, matmul=_np.matmul,
                       and_=_np.bitwise_and, or_=_np.bitwise_or, xor=_np.bitwise_xor, lshift=_np.left_shift,
                       rshift=_np.right_shift).items():
    _n, _OPERATOR_UFUNCS = _name.rstrip("_"), _OPERATOR_UFUNCS | {_uf.__name__}
    setattr(ndarray, f"__{_n}__", _operator(_uf))
    setattr(ndarray, f"__r{_n}__", _operator(_uf, True))
    setattr(ndarray, f"__i{_n}__", _inplace(_uf))
for _name, _uf in dict(eq=_np.equal, ne=_np.not_equal, lt=_np.less, le=_np.less_equal, gt=_np.greater,
                       ge=_np.greater_equal).items():
    setattr(ndarray, f"__{_name}__", _operator(_uf))
for _name, _uf in dict(neg=_np.negative, pos=_np.positive, abs=_np.absolute, invert=_np.invert).items():
    _OPERATOR_UFUNCS |= {_uf.__name__}
    setattr(ndarray, f"__{_name}__", lambda self, _uf=_uf: _ufunc_call(_uf, "__call__", (self,), {}))


# -- the module's functions: NumPy's on the buffers ------------------------------------------------
def _function(name):
    f = getattr(_np, name)
    if isinstance(f, _np.ufunc):
        @functools.wraps(f)
        def ufunc(*args, **kwargs):
            return _ufunc_call(f, "__call__", args, kwargs)

        ufunc.reduce = lambda *a, **k: _ufunc_call(f, "reduce", a, k)
        ufunc.accumulate = lambda *a, **k: _ufunc_call(f, "accumulate", a, k)
        ufunc.at = lambda *a, **k: _ufunc_call(f, "at", a, k)
        ufunc.nin, ufunc.nout = f.nin, f.nout
        return ufunc

    @functools.wraps(f)
    def function(*args, **kwargs):
        return _call(f, args, kwargs)

    return function


def asarray(a, dtype=None, order=None, *, blocking=False):
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == _np.dtype(dtype) else a.astype(dtype)
    if hasattr(a, "__cuda_array_interface__") or (hasattr(a, "__dlpack_device__") and a.__dlpack_device__()[0] == 2):
        return from_dlpack(a)
    _host_to_device("cupy.asarray of host data")
    return _wrap(_np.array(a, dtype=dtype, copy=True, order=order or "K"))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        return _call(_np.array, (obj,), dict(dtype=dtype, copy=copy, order=order, ndmin=ndmin))
    _host_to_device("cupy.array of host data")
    return _wrap(_np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


asanyarray = asarray


def ascontiguousarray(a, dtype=None):
    return _call(_np.ascontiguousarray, (asarray(a),), dict(dtype=dtype))


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    return a.get(order=order, out=out) if isinstance(a, ndarray) else _np.asarray(a, order=order)


def get_array_module(*args):
    import numpy
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else numpy


def from_dlpack(obj, *, device=None, copy=None):
    if isinstance(obj, ndarray):
        return obj
    kind = obj.__dlpack_device__()[0]
    if kind not in (2, 13):
        raise RuntimeError(f"CuPy cannot import a DLPack tensor on device type {kind} (not CUDA)")

    _local.exported = None
    capsule = obj.__dlpack__()
    exported, _local.exported = _local.exported, None
    if exported is not None:  # one of this stand-in's arrays (NumPy would import its capsule read-only)
        return _wrap(exported)

    class _Host:  # the same memory seen as the host's (this stand-in's device memory is host memory)
        def __dlpack__(self, *a, **k):
            return capsule

        def __dlpack_device__(self):
            return (1, 0)

    return _wrap(_np.from_dlpack(_Host()))


def may_share_memory(a, b, max_work=None):
    return _np.may_share_memory(_unwrap(a), _unwrap(b))


def shares_memory(a, b, max_work=None):
    return _np.shares_memory(_unwrap(a), _unwrap(b))


_made = {}  # NumPy's functions wrapped, by name (not in globals(): `all`, `any`, `max` would shadow the builtins here)


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    value = _made.get(name)
    if value is None:
        _modelled(name, FUNCTIONS, "cupy's")
        value = getattr(_np, name)
        if callable(value) and not isinstance(value, type):
            value = _function(name)
        _made[name] = value
    return value


# -- random ---------------------------------------------------------------------------------------
class _Generator:
    def __init__(self, seed):
        self._g = _np.random.default_rng(seed)

    def __getattr__(self, name):
        _modelled(name, GENERATOR_METHODS, "cupy.random.Generator's method")
        method = getattr(self._g, name)
        return lambda *a, **k: _call(method, a, k)


class _RandomModule:
    @staticmethod
    def default_rng(seed=None):
        return _Generator(seed)

    def __getattr__(self, name):  # (xdl draws from a generator only: the legacy functions are none of its)
        _modelled(name, (), "cupy.random's")


random = _RandomModule()


# -- streams, events, graphs, devices ------------------------------------------------------------
_stream_ptrs = itertools.count(0x1000, 0x10)


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.ptr = next(_stream_ptrs)

    def record(self, stream=None):
        return self

    def synchronize(self):
        _refuse_host_read("Event.synchronize")

    def query(self):
        return True


class _Capture:
    def __init__(self, stream):
        self.stream, self.ops, self.names = stream, [], []
        self.allocated = weakref.WeakValueDictionary()
        owner = getattr(_allocator(), "__self__", None)
        self.pool = owner if isinstance(owner, MemoryPool) else None
        self.snapshot = [(r, r.copy()) for r in list(_roots.values()) if r.flags.writeable]

    def record(self, op, name):
        self.ops.append(op)
        self.names.append(name)


class Graph:
    def __init__(self, ops, names):
        self._ops, self._names = ops, names

    def launch(self, stream=None):
        _traced("graph", len(self._ops))
        for op in self._ops:
            op()

    def upload(self, stream=None):
        pass

    def debug_dot_str(self, flags=0):
        nodes = "\n".join(f'"graph_0_node_{i}" [label="KERNEL\\n{name}"];' for i, name in enumerate(self._names))
        return f"digraph dot {{\n{nodes}\n}}\n"


class Stream:
    null = None

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        self.ptr = 0 if null else next(_stream_ptrs)

    def __enter__(self):
        _stack().append(self)
        return self

    def __exit__(self, *exc):
        _stack().pop()

    def use(self):
        _stack()[:] = [self]
        return self

    def synchronize(self):
        _refuse_host_read("Stream.synchronize")

    def record(self, event=None):
        return event or Event()

    def wait_event(self, event):
        pass

    def add_callback(self, callback, arg):
        callback(self, None, arg)

    def is_capturing(self):
        return self.ptr in _captures

    def begin_capture(self, mode=None):
        if self.ptr == 0:
            raise _Runtime.CUDARuntimeError("cudaErrorStreamCaptureUnsupported: the legacy default stream")
        if self.ptr in _captures:
            raise _Runtime.CUDARuntimeError("cudaErrorIllegalState: the stream is already capturing")
        _captures[self.ptr] = _Capture(self)
        _cublas().fake_set_capturing(ctypes.c_void_p(self.ptr), 1)

    def end_capture(self):
        capture = _captures.pop(self.ptr, None)
        if capture is None:
            raise _Runtime.CUDARuntimeError("cudaErrorIllegalState: the stream is not capturing")
        _cublas().fake_set_capturing(ctypes.c_void_p(self.ptr), 0)
        for root, saved in capture.snapshot:  # a capture runs nothing: memory as it was before it
            if id(root) not in capture.allocated:
                root[...] = saved
        for root in list(capture.allocated.values()):  # the graph pool's memory: garbage until replayed
            _poison(root)
        return Graph(capture.ops, capture.names)


Stream.null = Stream(null=True)


def _stack():
    stack = getattr(_local, "streams", None)
    if stack is None:
        stack = _local.streams = []
    return stack


def _current_stream():
    stack = _stack()
    return stack[-1] if stack else Stream.null


class Device:
    attributes = {"MultiProcessorCount": 4, "MaxRegistersPerMultiprocessor": 65536,
                  "MaxSharedMemoryPerMultiprocessor": 228 * 1024, "MaxThreadsPerMultiProcessor": 2048,
                  "MaxThreadsPerBlock": 1024, "WarpSize": 32}

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)

    compute_capability = "90"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def use(self):
        pass

    def synchronize(self):
        _refuse_host_read("Device.synchronize")


@contextlib.contextmanager
def using_allocator(allocator=None):
    before = _allocator()
    _local.allocator = allocator if allocator is not None else _default_pool.malloc
    try:
        yield
    finally:
        _local.allocator = before


def set_allocator(allocator=None):
    _local.allocator = allocator if allocator is not None else _default_pool.malloc


class _Cuda:
    Stream, Event, Device, MemoryPool, PinnedMemoryPool, MemoryPointer = (Stream, Event, Device, MemoryPool,
                                                                        PinnedMemoryPool, MemoryPointer)
    runtime = _Runtime
    using_allocator = staticmethod(using_allocator)
    set_allocator = staticmethod(set_allocator)

    class graph:
        Graph = Graph

    @staticmethod
    def get_current_stream(device=None):
        return _current_stream()

    @staticmethod
    def get_allocator():
        return _allocator()

    @staticmethod
    def get_elapsed_time(start, end):
        return 0.0

    @staticmethod
    def is_available():
        return True

    @staticmethod
    def get_device_id():
        return 0


cuda = _Cuda()


def get_default_memory_pool():
    return _default_pool


def get_default_pinned_memory_pool():
    return PinnedMemoryPool()


# -- kernels: the CPU emulator's compiled instances -------------------------------------------------
@functools.cache
def _cublas():
    """The cuBLAS stand-in, built once and loaded as libcublas.so.12 (so it shows in /proc/self/maps)."""
    source = _HERE / "libcublas_fake.cpp"
    digest = hashlib.sha1(source.read_bytes()).hexdigest()[:12]
    folder = _BUILD / f"cublas-{digest}"
    path = folder / "libcublas.so.12"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["g++", "-O2", "-shared", "-fPIC", "-o", str(path) + ".tmp", str(source)], check=True)
        os.replace(str(path) + ".tmp", path)
    lib = ctypes.CDLL(str(path))
    lib.fake_set_capturing.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.fake_replay.argtypes = [ctypes.c_int]
    lib.fake_gemm_count.restype = ctypes.c_longlong
    lib.fake_set_checking.argtypes = [ctypes.c_int]
    workspaces = {}  # handle -> (block, generation) of its workspace when it was set (under the memory check)

    @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                      ctypes.POINTER(ctypes.c_longlong))
    def check(what, handle, pointers, extents):  # the memory check of a cuBLAS call: 0 lets it run
        names = ("workspace",) if what == 0 else ("A", "B", "C", "workspace")
        call = ("cublasSetWorkspace_v2", "a cuBLAS GEMM", "a cuBLAS GEMM replayed in a graph")[what]
        problems = [f"{name}: {problem}" for i, name in enumerate(names)
                    if (problem := _pointer_problem(pointers[i] or 0, extents[i])) is not None]
        workspace = pointers[len(names) - 1] or 0
        if what == 0:
            workspaces[handle] = _generation(workspace)
        elif not problems and workspaces.get(handle) is not None and _generation(workspace) != workspaces[handle]:
            problems.append(f"workspace: 0x{workspace:x} was freed and handed to another array since "
                            "cublasSetWorkspace_v2")
        if not problems:
            return 0
        message = f"fake cupy memory check: {call} refused: {'; '.join(problems)}"
        _memory_errors.append(message)
        print(message, file=sys.stderr)
        return 1

    lib._check = check
    lib.fake_set_checker(check)
    lib.fake_set_checking(int(_checking is not None))

    @ctypes.CFUNCTYPE(None, ctypes.c_int)
    def recorded(index):  # a GEMM on a capturing stream: logged, run at each replay
        for capture in _captures.values():
            pointers = (ctypes.c_void_p * 3)()
            lib.fake_call_pointers(index, pointers)
            refs = [_Ref(r, capture) for p in pointers for r in list(_roots.values())
                    if r.size and r.ctypes.data <= (p or 0) < r.ctypes.data + r.nbytes]

            def replay():
                for ref in refs:
                    ref.get()
                if lib.fake_replay(index):
                    raise _Runtime.CUDARuntimeError(f"cudaErrorIllegalAddress (fake cupy): {_memory_errors[-1]}")

            capture.record(replay, "gemm")
            break

    lib._recorder = recorded
    lib.fake_set_recorder(recorded)
    return lib


_PARAMETER_DTYPES = {"int": _np.dtype(_np.int32), "long long": _np.dtype(_np.int64), "double": _np.dtype(_np.float64)}


def _scalar_argument(expression, param, value):
    """A scalar kernel argument as CuPy passes it (cupy/cuda/function.pyx, `_pointer`): a NumPy scalar as its
    own bytes, a Python int as a long long, a float as a double (a bool as an int: `isinstance(True, int)`),
    anything else a TypeError. The kernel reads those bytes as its parameter's type: a value of another size,
    or a float for an integer (or an integer for a float), is refused here, where a GPU reads garbage without
    a word (a Python float into a ``long long`` count: an illegal address, or worse)."""
    if not isinstance(value, _np.generic):
        if isinstance(value, int):
            value = _np.int64(value)
        elif isinstance(value, float):
            value = _np.float64(value)
        else:
            raise TypeError(f"Unsupported type {type(value)}")
    dtype = _PARAMETER_DTYPES[param.ctype]
    if value.itemsize != dtype.itemsize or (value.dtype.kind == "f") != (dtype.kind == "f"):
        raise TypeError(f"fake cupy: {expression}: parameter {param.name} ({param.ctype}, {dtype.itemsize} bytes) "
                        f"given a {value.dtype} ({value.itemsize} bytes): a GPU reads its bytes as a {param.ctype}")
    return (ctypes.c_char * dtype.itemsize).from_buffer_copy(value.tobytes())


# -- a kernel's array arguments: layout and extents ------------------------------------------------
# CuPy hands a raw kernel each array's data pointer only (cupy/cuda/function.pyx `_pointer`): no strides, no length.
# A kernel that reads or writes past its argument's end, before its start or between its rows touches a neighbour's
# memory on a GPU (or faults); here, over a view of a larger NumPy buffer, it would touch that buffer's other elements
# without a word. So each launch gives the kernel private copies framed by canary bytes and checks them afterwards
# (FAKECUPY_NO_EXTENT_CHECK=1 turns that off).
# Canary either side of a private copy: its own length, at least 1 KiB and at most 64 KiB (a kernel that runs past
# an end writes the bytes that follow it first; a stray write farther than the guard lands outside unseen).
_GUARD_BYTES = (1 << 10, 1 << 16)
_ALIGNMENT = 256  # a private copy starts at its array's address modulo this (a kernel's vector loads see the same)
# The canary: for a float argument a quiet NaN with a payload of its own, so that a read past the end turns what it
# feeds into NaN (and a test's comparison fails) and a NaN the kernel computes and writes there (the default NaN, or
# an operand's) differs from it; for any other dtype 0x5A bytes (a huge index or count: read, it faults or fails).
# Each private copy of a launch adds its own number to the pattern (`_canary`'s salt): a value read past one
# argument's end and written past another's is not that other's canary.
_CANARY_BITS = {_np.dtype(_np.float16): 0x7E5A, _np.dtype(_np.float32): 0x7FDA5A5A,
                _np.dtype(_np.float64): 0x7FFA5A5A5A5A5A5A}
_canaries = {}  # (canary dtype, salt) -> its pattern's bytes, grown as needed


def _canary(dtype, nbytes, salt):
    """``nbytes`` of ``dtype``'s canary (`_CANARY_BITS`, else 0x5A bytes) plus ``salt`` (0 ≤ salt < 128: a NaN stays
    a quiet NaN), as uint8 from an element's boundary."""
    key = (dtype if dtype in _CANARY_BITS else _np.dtype(_np.uint8), salt % 128)
    pattern = _canaries.get(key)
    if pattern is None or pattern.size < nbytes:
        bits = _CANARY_BITS.get(key[0], 0x5A) + key[1]
        count = max(nbytes, 1 << 16) // key[0].itemsize + 1
        pattern = _canaries[key] = _np.full(count, bits, dtype=f"u{key[0].itemsize}").view(_np.uint8)
        pattern.flags.writeable = False
    return pattern[:nbytes]


def _layout_problem(a):
    """Why a kernel cannot address ``a`` from its data pointer, or None. Its elements must be rows of unit stride in
    order, each after the one before: C-contiguous, or with padding between rows (K stacked models' regions, which
    the kernels with a leading-dimension parameter address), or broadcast along an axis of stride 0 (one value for
    every model: `softmax_ce_backward`'s gy_stride). A reversed view, a column or overlapping rows is none of them:
    a kernel reads the memory that follows the first element's address."""
    if a.flags.c_contiguous:
        return None
    axes = [(size, stride) for size, stride in zip(a.shape, a.strides) if size > 1 and stride != 0]
    if not axes:
        return None
    if axes[-1][1] != a.itemsize:
        return f"its last axis has a stride of {axes[-1][1]} bytes, not its item size ({a.itemsize})"
    extent = a.itemsize * axes[-1][0]  # bytes from an inner slice's first element to its last one's end
    for size, stride in reversed(axes[:-1]):
        if stride < extent:
            return "its rows are not in order, each after the one before (a reversed or overlapping view)"
        extent += stride * (size - 1)
    return None


def _byte_extent(a):
    """Bytes from ``a``'s first element to its last one's end (strides ≥ 0: `_layout_problem`; 0 along a broadcast
    axis, whose elements are the same memory): itemsize + Σ stride·(size − 1), 0 if it has none."""
    if a.size == 0:
        return 0
    return a.itemsize + sum(stride * (size - 1) for size, stride in zip(a.shape, a.strides))


class _PrivateCopy:
    """The arguments ``members`` ((position, parameter, array, data address), in order) whose bytes overlap, as one
    private buffer (so that their aliasing stays): their span [start, end) framed by ``guard`` bytes of canary either
    side, and the canary in any gap between their elements (padding between rows). ``views[i]`` is member i there."""

    def __init__(self, members, start, end, salt):
        self.members, self.span = members, end - start
        self.offsets = [address - start for _, _, _, address in members]
        dtypes = [a.dtype for _, _, a, _ in members]
        canary_dtype = next((d for d in dtypes if d in _CANARY_BITS), dtypes[0])
        self.guard = -(-min(max(_GUARD_BYTES[0], self.span), _GUARD_BYTES[1]) // 16) * 16
        total = -(-(2 * self.guard + self.span) // 16) * 16
        raw = _np.empty(total + _ALIGNMENT, dtype=_np.uint8)
        address = raw.ctypes.data
        shift = (start - self.guard - address) % _ALIGNMENT
        self.buffer, self.pristine = raw[shift:shift + total], _canary(canary_dtype, total, salt)
        self.pointers = [address + shift + self.guard + offset for offset in self.offsets]  # (the views' addresses)
        # One contiguous argument (the common case) fills its span: only its guards need the canary (`trespass`)
        self.dense = len(members) == 1 and members[0][2].flags.c_contiguous
        if self.dense:
            self.buffer[:self.guard] = self.pristine[:self.guard]
            self.buffer[self.guard + self.span:] = self.pristine[self.guard + self.span:]
        else:
            self.buffer[...] = self.pristine
        self.views = [self._view(self.buffer, a, offset) for (_, _, a, _), offset in zip(members, self.offsets)]
        for view, (_, _, a, _) in zip(self.views, members):
            view[...] = a

    def _view(self, buffer, a, offset):
        return _np.ndarray(a.shape, a.dtype, buffer=buffer, offset=self.guard + offset, strides=a.strides)

    def copy_back(self):
        """The members' elements back into the caller's arrays (what the kernel wrote; a const one's: unchanged)."""
        for view, (_, param, a, _) in zip(self.views, self.members):
            if not param.const:
                a[...] = view

    def trespass(self):
        """Offsets from the span's start of the bytes outside the members' elements that the kernel changed
        (negative: before its start; ≥ span: past its end; else in a gap between rows); empty if none. Puts the
        canary back over the members' elements first: what is left must be the canary throughout."""
        if self.dense and self._intact(0, self.guard) and self._intact(self.guard + self.span, None):
            return ()
        for view, (_, _, a, _), offset in zip(self.views, self.members, self.offsets):
            view[...] = self._view(self.pristine, a, offset)
        if self._intact(0, None):
            return ()
        return _np.flatnonzero(self.buffer != self.pristine) - self.guard

    def _intact(self, start, stop):
        """Whether buffer[start:stop] is still the canary (a memcmp: the fastest test of the common case)."""
        return self.buffer[start:stop].tobytes() == self.pristine[start:stop].tobytes()


def _private_copies(expression, params, arrays):
    """The array arguments ``arrays`` ({position: NumPy buffer}) of the kernel ``expression`` (parameters
    ``params``) as `_PrivateCopy`s, overlapping ones together; a layout that no kernel can address from its data
    pointer (`_layout_problem`) is refused, naming the argument."""
    spans = []
    for position, a in arrays.items():
        param = params[position]
        problem = _layout_problem(a)
        if problem:
            raise ValueError(f"fake cupy: {expression}: argument {position} ({param.name}), a {a.dtype}"
                             f"{list(a.shape)} view with strides {a.strides}: {problem}; a raw kernel gets its data "
                             "pointer only (pass xp.ascontiguousarray of it)")
        address = a.ctypes.data
        spans.append((address, address + _byte_extent(a), position, param, a))
    spans.sort(key=lambda s: (s[0], s[1]))
    copies, members, start, end = [], [], None, None
    for first, last, position, param, a in spans:
        if members and first >= end:
            copies.append(_PrivateCopy(members, start, end, len(copies)))
            members = []
        if not members:
            start, end = first, last
        members.append((position, param, a, first))
        end = max(end, last)
    if members:
        copies.append(_PrivateCopy(members, start, end, len(copies)))
    return copies


def _trespass_report(expression, copy, offsets):
    """What `_PrivateCopy.trespass` found, in words: which arguments, how far before their start or past their end."""
    names = " and ".join(f"argument {position} ({param.name}, {a.dtype}{list(a.shape)})"
                         for position, param, a, _ in copy.members)
    item = copy.members[0][2].itemsize
    said = []
    before, past = offsets[offsets < 0], offsets[offsets >= copy.span]
    inside = offsets[(offsets >= 0) & (offsets < copy.span)]
    if before.size:  # (whole elements: an element written there may leave some of its bytes equal to the canary's)
        reach = -(before.min() // item)
        said.append(f"up to {reach} element(s) ({reach * item} bytes) before its start")
    if past.size:
        reach = (past.max() - copy.span) // item + 1
        said.append(f"up to {reach} element(s) ({reach * item} bytes) past its end")
    if inside.size:
        said.append(f"{inside.size} bytes in the gaps between its rows (from byte {inside.min()} of its span)")
    return (f"fake cupy: {expression} wrote outside {names}: {'; '.join(said)}: on a GPU that overwrites a "
            "neighbour's memory or faults")


class RawModule:
    def __init__(self, code=None, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, name_expressions=None, jitify=False):
        sys.path.insert(0, str(_TESTS)) if str(_TESTS) not in sys.path else None
        from xdl.cuda.source import SOURCES

        matches = [f for f, s in SOURCES.items() if s.text() == code]
        if not matches:
            raise _Runtime.CUDARuntimeError("fake cupy: RawModule code is not one of xdl's kernels/*.cu")
        self.file = matches[0]
        self.library, self.specs = _emulated_library(self.file, tuple(options))
        self.name_expressions = list(name_expressions or ())

    def get_function(self, name):
        if name not in self.name_expressions:
            raise _Runtime.CUDARuntimeError(f"CUDA_ERROR_NOT_FOUND: named symbol not found: {name}")
        return RawKernel(self, name)


@functools.cache
def _emulated_library(file, options):
    from test_kernel_emulation import SHIM, device_math, launchers  # noqa: the emulator's builder

    from xdl.cuda.source import SOURCES, kernel_dir

    source = SOURCES[file]
    unit_text = launchers(kernel_dir() / file, source.kernels(), source.instances)
    flags = [o for o in options if o.startswith("-D")]
    seed = int(os.environ.get("FAKECUPY_DEVICE_MATH") or 0)  # (0, as EMU_DEVICE_MATH's: exact arithmetic)
    if seed:  # a GPU's rounding: FMA and CUDA's ulp errors (cuda_emulation.h)
        flags += device_math(seed)
    digest = hashlib.sha1((unit_text + (kernel_dir() / file).read_text() + SHIM.read_text() + repr(flags)).encode()
                          ).hexdigest()[:12]
    folder = _BUILD / f"{file}-{digest}"
    library = folder / f"{file}.so"
    if not library.exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "unit.cpp").write_text(unit_text)
        subprocess.run(["g++", "-std=c++20", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-include", str(SHIM),
                        *flags, "-o", str(library) + ".tmp", str(folder / "unit.cpp")], check=True)
        os.replace(str(library) + ".tmp", library)
    return ctypes.CDLL(str(library)), source


class RawKernel:
    attributes = {"num_regs": 64, "shared_size_bytes": 3 * 8 * 32 * 2 * 8, "max_threads_per_block": 1024}

    def __init__(self, module, expression):
        from test_kernel_emulation import symbol

        self.expression = expression
        name = expression.split("<")[0]
        self.spec = module.specs.kernels()[name]
        self.function = getattr(module.library, symbol(expression))
        self.function.restype = ctypes.c_char_p
        self.function.argtypes = [ctypes.POINTER(ctypes.c_uint)] * 2 + [ctypes.c_uint,
                                                                       ctypes.POINTER(ctypes.c_void_p)]

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        grid, block = (tuple(int(d) for d in dims) + (1,) * (3 - len(dims)) for dims in (grid, block))
        if not all(0 < d < 2**31 for d in grid + block) or grid[1] > 65535 or grid[2] > 65535 \
                or block[0] * block[1] * block[2] > 1024:
            raise _Runtime.CUDARuntimeError(f"CUDA_ERROR_INVALID_VALUE: launch of {self.expression} {grid} {block}")
        if len(args) != len(self.spec.params):
            raise _Runtime.CUDARuntimeError(f"{self.expression}: {len(args)} arguments for "
                                            f"{len(self.spec.params)} parameters")
        cells, keep = [], []
        for param, value in zip(self.spec.params, args):
            if param.pointer:
                if not isinstance(value, ndarray):
                    raise TypeError(f"{self.expression}: parameter {param.name}: {type(value).__name__} is not a "
                                    "device array")
                keep.append(value._a)
                cells.append(ctypes.c_void_p(value._a.ctypes.data))
            else:
                cells.append(_scalar_argument(self.expression, param, value))
        pointers = (ctypes.c_void_p * len(cells))(*(ctypes.addressof(c) for c in cells))
        g, b = (ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block)
        at = [i for i, param in enumerate(self.spec.params) if param.pointer]  # the cells of the arrays
        checked = not os.environ.get("FAKECUPY_NO_EXTENT_CHECK")

        def launch(arrays):
            copies = _private_copies(self.expression, self.spec.params, dict(zip(at, arrays))) if checked else ()
            for copy in copies:
                for (position, *_), pointer in zip(copy.members, copy.pointers):
                    cells[position].value = pointer
            error = self.function(g, b, 0, pointers)
            for copy in copies:
                copy.copy_back()
            for copy in copies:
                offsets = copy.trespass()
                if len(offsets):
                    raise _Runtime.CUDARuntimeError(_trespass_report(self.expression, copy, offsets))
            if error:
                raise _Runtime.CUDARuntimeError(f"{self.expression} {grid} {block}: {error.decode()}")

        launch(keep)
        _traced("launch", self.expression)
        capture = _capturing_now()
        if capture is not None:
            refs = [_Ref(a, capture) for a in keep]
            del keep

            def replay():
                launch([ref.get() for ref in refs])

            replay.keep = (cells, pointers)
            capture.record(replay, self.expression)
