"""CUDA graphs: record a step's GPU work once, replay it for the cost of one launch.

`cuda_graph(fn)` calls ``fn()`` ``warmup`` times for real on the backend's graph stream (its
kernels compile, the stream's cuBLAS handle and counters are made, a private memory pool learns
the sizes the step allocates), then records one more call into a CUDA graph — that call runs no
work — and returns a `CudaGraph`. Each call of it replays the recorded work: the same kernels on
the same memory. So between replays the step's inputs are written into the same arrays
(``x[...] = batch``), and its results are read from what ``fn`` returned at the capture, which
every replay overwrites.

Only GPU work is recorded. Python code in ``fn`` runs once, at the capture: what must happen on
the host at every step is declared with `host_effect` (the optimizer counts its steps so), and
what cannot be replayed — a host read of a device value, a hyperparameter computed on the host per
step — calls `require_not_capturing`, which raises `CaptureError` naming it. Values that change
between steps live in device memory: the optimizer's learning rate and step count, the dropout
step counter (`xdl.nn.Module.set_random_key`).

>>> import xdl
>>> with xdl.use("numpy"):
...     xdl.cuda_graph(lambda: None)
Traceback (most recent call last):
    ...
xdl.backend.CaptureError: cuda_graph: CUDA graphs need the cupy backend; on the numpy backend call the step itself
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from xdl.backend import CaptureError, current_backend, resolve_backend

_capture = threading.local()  # this thread's capture in progress: ``effects``, its host effects (None: none)
_one_capture = threading.Lock()  # captures share their backend's graph stream: one at a time in the process


def _effects() -> list | None:
    return getattr(_capture, "effects", None)


@contextlib.contextmanager
def _scope():
    """This thread within a `cuda_graph` call, warm-up and recording: a call inside is refused."""
    _capture.scope = True
    try:
        yield
    finally:
        _capture.scope = False


def capturing() -> bool:
    """Whether a `cuda_graph` capture is recording now, in this thread (another thread's own work,
    a prediction beside a training, is not recorded)."""
    return _effects() is not None


def host_effect(fn) -> None:
    """Call ``fn()`` now — or, while a step is being captured, after every replay of its graph."""
    effects = _effects()
    if effects is None:
        fn()
    else:
        effects.append(fn)


class CheckedState:
    """The count of changes to what `replay_check`'s checks read — a parameter placed anew (``p._flat``:
    `xdl.flat`), a module's buffer rebound, a ``requires_grad`` set, an optimizer's groups or step count set —,
    each noted by what makes it (`checked_state_changed`), after the change. A graph whose checks passed at a
    count skips them while the count stays: a steady replay compares one integer instead of walking the model
    and the optimizer (5–10 µs of host time a replay for 11 parameters, beside ~250 µs of GPU work a step)."""

    now = 0
    _lock = threading.Lock()


def checked_state_changed() -> None:
    """Note a change to what a replay's checks may read (`CheckedState`): every graph checks again before its
    next replay. Called after the change: a check that ran between the change and the count would pass on the
    state before it, and be kept for the state after."""
    with CheckedState._lock:  # (two threads' notes counted as one would let a graph checked between them skip)
        CheckedState.now += 1


def replay_check(fn) -> None:
    """While a step is being captured, have ``fn()`` called before every replay of its graph (outside a
    capture: nothing) where what it reads changed since its last pass (`CheckedState`: what ``fn`` reads must
    be noted so when it changes): it raises where what the capture found no longer holds. A graph reads and writes
    memory by address, not the arrays a model holds now: after ``model.astype(...)`` or ``model.to(...)``
    its replay updated the old copies (an optimizer keeps them), or read parameters and wrote running statistics
    in memory freed since, which a GPU's pool hands to the next array — another array's values, silently."""
    checks = getattr(_capture, "checks", None)
    if checks is not None:
        checks.append(fn)


def require_not_capturing(what: str) -> None:
    """Raise `CaptureError` if a capture is recording: ``what`` cannot be replayed."""
    if _effects() is not None:
        raise CaptureError(f"cannot capture {what}")


class CudaGraph:
    """A captured step: calling it checks what the capture found still holds (`replay_check`, where it may
    have changed since the last pass), replays the graph, then the step's host effects; returns what
    ``fn`` returned at the capture (``result``: arrays each replay overwrites). ``warmup_result``
    is what the last warm-up call returned (that call did its work for real; the capture did none)."""

    def __init__(self, backend, graph, recorder, effects: list, result, warmup_result, constants: list, fn=None,
                 checks: tuple = ()):
        self.backend, self.result, self.warmup_result = backend, result, warmup_result
        self._graph, self._recorder, self._effects, self._checks = graph, recorder, effects, checks
        self._checked_at = None  # the `CheckedState` count at which the checks last passed (None: not yet)
        self._constants = constants  # device constants the graph reads: kept alive with it
        # and the step, with what it holds (its model, optimizer and input arrays): a graph reads them by raw
        # address, and a step made in a function that returned only its graph (xdl.bench.steps' xdl_step) had
        # them freed at once, each replay then reading and writing memory the pool gave to other arrays
        self._fn = fn

    def nodes(self) -> dict[str, int] | None:
        """What one replay runs, by node kind ({"KERNEL": n, "MEMSET": m, …}): the launches of the
        captured step, which an eager step makes one by one. None where the backend cannot tell."""
        return self.backend.graph_nodes(self._graph)

    def __call__(self):
        if self._checked_at != CheckedState.now:  # (each check passed at that count; nothing they read changed)
            now = CheckedState.now  # (read first: a change while the checks run is checked at the next replay)
            for check in self._checks:
                check()
            self._checked_at = now
        self.backend.replay(self._graph)
        for effect in self._effects:
            effect()
        return self.result


def cuda_graph(fn, backend=None, warmup: int = 1) -> CudaGraph:
    """Capture ``fn()`` (no arguments; it reads and writes arrays that outlive it) as a CUDA
    graph on ``backend`` (default: the current one), after ``warmup`` real calls.

    A failed capture raises `CaptureError` (its ``warmup_result`` is the last warm-up's) and
    leaves nothing recording; the warm-up calls stay done. A backend without CUDA graphs (NumPy:
    ``backend.supports_graphs`` is False) raises it before ``fn`` runs at all (``warmup_result``
    None): call ``fn`` itself there.
    """
    if isinstance(warmup, bool) or not isinstance(warmup, int | np.integer) or warmup < 0:
        raise ValueError(f"cuda_graph: warmup must be an integer ≥ 0, got {warmup!r}")
    if not callable(fn):
        raise TypeError(f"cuda_graph: fn must be callable, got {fn!r}")
    if getattr(_capture, "scope", False):  # (its warm-up too: the lock below is this thread's already)
        raise CaptureError("cuda_graph: a capture is already recording (captures do not nest)")
    backend = current_backend() if backend is None else resolve_backend(backend, "cuda_graph")
    if not backend.supports_graphs:  # refused before anything runs: the caller calls fn itself
        error = CaptureError(f"cuda_graph: CUDA graphs need the cupy backend; on the {backend.name} backend call "
                             "the step itself")
        error.warmup_result = None
        try:
            raise error
        finally:  # (held here, its traceback holding this frame: a cycle, as below)
            del error
    with _one_capture, _scope(), backend.graph_scope() as recorder:  # (another thread's capture: after it ends)
        warmup_result = None
        for _ in range(int(warmup)):
            warmup_result = fn()
        effects, checks, graph, failure = [], [], None, None
        _capture.effects, _capture.checks = effects, checks
        try:
            recorder.begin()
            result = fn()
        except Exception as e:  # what the step did that a capture cannot record
            failure = e
        finally:
            _capture.effects = _capture.checks = None
            try:
                if recorder.capturing():
                    graph = recorder.end()  # ends a failed capture too: the stream must not stay recording
            except Exception as e:
                failure = failure or e
        constants = backend.captured_constants()
    if failure is not None:
        error = failure if isinstance(failure, CaptureError) else \
            CaptureError(f"cannot capture the step: {type(failure).__name__}: {failure}")
        error.warmup_result = warmup_result  # the warm-ups did their work: a caller may go on eagerly
        try:
            raise error from (None if error is failure else failure)
        finally:  # each held by this frame, which its traceback holds: a cycle that kept the caller's
            del error, failure  # frames (a model, its flat buffers, the step's activations) to a full collection
    return CudaGraph(backend, graph, recorder, effects, result, warmup_result, constants, fn, tuple(checks))
