"""`CapturedSteps`: a training loop's step as one CUDA graph per batch size (`Trainer`, `fit_many`).

A graph replays the same kernels on the same memory, so each batch is first gathered into fixed
input arrays of its size (``xp.take(out=)``: a kernel, no allocation) and the step reads those.
The first batch of a size is the capture's warm-up (a real step); then the step is recorded once
and every later batch of that size is one replay. What changes from step to step lives in device
memory: the optimizer's rates and step count (`xdl.optim.Optimizer`), and the dropout key's step,
``counter`` here, which each step advances after its forward and backward.

The graph (`CapturedSteps.epoch_step`) does the rest of a step's work too: the epoch's step, held on the
device, picks the batch's row of the epoch's order (laid out one row a batch at the epoch's start,
`start_epoch`), the graph gathers the batch by it, writes the step's cost and adds its hits into the
epoch's arrays (`CapturedSteps.totals`) at that step, and counts the step. So a steady step is one
replay: no other launch (the gathers and that bookkeeping were 3–4 launches of a few µs of host time
each, beside a whole step's graph of ~0.3 ms on a GPU), no host read and no upload.

A step that cannot be captured (`xdl.graph.require_not_capturing`, or CUDA refusing an
operation) raises `CaptureError`: under ``capture="auto"`` the loop then warns once and runs the
rest eagerly (the warm-up already did the batch's step), under ``capture=True`` the error stands.
"""

from __future__ import annotations


import numpy as np

from xdl.backend import CaptureError
from xdl.caller import warn_caller
from xdl.graph import cuda_graph
from xdl.nn.module import is_plain_value

CAPTURE_VALUES = ("auto", True, False)


def check_capture(capture):
    """``capture`` as given, or ValueError: it must be "auto", True or False."""
    if not any(capture is v if isinstance(v, bool) else (isinstance(capture, str) and capture == v)
               for v in CAPTURE_VALUES):
        raise ValueError(f"capture must be 'auto', True or False, got {capture!r}")
    return capture


def host_settings(model, *extra) -> tuple:
    """What a captured step read on the host, once, when it was recorded, and every replay keeps: each
    module's settings (``current_config``: a Dropout's rate, a BatchNorm's momentum and eps, kernel
    arguments of the graph), which arrays its buffers are (a buffer assigned anew is memory the
    graph never reads) and which parameters train (an unfrozen one's gradient and update are not
    in a graph recorded while it was frozen), with a loop's own ``extra`` (its L2 strength, its
    optimizer's groups). A loop passes it as its steps' ``version``, taken at each epoch's start:
    a callback that changed any of it (a dropout schedule, PyTorch's ``model[3].p = 0.0``, a layer
    unfrozen and given to the optimizer) has the step captured again, as an eager step reads it —
    a replay runs no Python, so the old values went on silently. A module's own plain attributes
    count too (`host_values`): a model of one's own whose forward reads ``self.temperature``, which
    no config names, read it once, at the capture."""
    modules = tuple((name, type(module).__name__, _plain(module.current_config()), host_values(module),
                     tuple(id(getattr(module, b)) for b in module._buffers))
                    for name, module in model.named_modules())
    extra = tuple(value if _is_plain(value) or isinstance(value, dict) else _Same(value) for value in extra)
    return modules, tuple(p.requires_grad for p in model.parameters()), extra


class _Same:
    """An object of a loop's ``extra`` (its loss, its optimizer), equal only to itself: the graph read
    that object, whatever its ``__eq__`` says of another — a dataclass loss holding class weights
    compared its arrays, and a callback's ``trainer.loss = Weighted(w)`` raised ("The truth value of an
    array … is ambiguous") at the next epoch's start of a captured run, which an eager run trained on."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other):
        return isinstance(other, _Same) and self.obj is other.obj

    __hash__ = None  # (compared, never a key)


def host_values(obj) -> dict:
    """``obj``'s attributes that hold plain host values (numbers, flags, strings, None): what a
    forward or a loss of one's own may read on the host at every call, as ``x * self.scale`` does —
    a replay keeps the value the capture read. The mode flag is the loop's own (it sets it)."""
    return _plain({k: v for k, v in getattr(obj, "__dict__", {}).items() if k != "training"})


def _plain(config: dict) -> dict:
    """A module's settings that can change, its plain values (an array or a callable in a config is
    the one it was made with, `Module.current_config`: compared, an array would have no truth value)."""
    return {k: v for k, v in config.items() if _is_plain(v)}


def _is_plain(value) -> bool:
    """Whether ``value`` is None or a plain host value (`is_plain_value`), compared by value."""
    return value is None or is_plain_value(value)


def _loop_capture(loop):
    return loop._captured.capture


def _set_loop_capture(loop, value) -> None:
    loop._captured.capture = check_capture(value)


# A training loop's ``capture`` ("auto", True or False), kept by its `CapturedSteps` (``_captured``).
loop_capture = property(_loop_capture, _set_loop_capture, doc='"auto", True or False: see the class.')


class CapturedSteps:
    """The captured steps of a loop on ``backend`` (set before the first step): a graph per batch
    size, the dropout key's step ``counter`` (int64 on the device) and, once a capture failed
    under "auto", why (``failure``). ``capture`` is the loop's setting (its ``capture``)."""

    def __init__(self, capture, backend=None):
        self.capture, self.backend = check_capture(capture), backend
        self.failure: str | None = None
        self.counter = None
        # [the run's step count, the epoch's step] (int64 on the device), counted on by each step at once:
        # ``counter`` is a view of the first (the dropout key's), the second picks `epoch_step`'s batch and
        # where its cost goes
        self._steps = None
        self._epoch = None  # what `epoch_step`'s graphs read and write: (X, y, order rows, costs, hits)
        self._totals = ()  # `totals`' arrays: the epoch's costs (and a spare one), its hits
        self._layout = None  # the fit's batches and, on the device, where each row of the order's rows comes from
        self._graphs = {}  # ("epoch", batch size) or call key -> (CudaGraph, its input arrays, version)
        self._settings = {}  # `settings`' last, by name

    def eager_reason(self, backend, host_augmentation: bool) -> str | None:
        """Why any loop's steps run eagerly, or None: capture off, a failed capture, a backend
        without CUDA graphs, augmentation on the host (a loop adds its own reasons)."""
        if self.capture is False:
            return "capture is off"
        if self.failure is not None:
            return self.failure
        if not backend.supports_graphs:
            return f"the {backend.name} backend has no CUDA graphs"
        if host_augmentation:
            return "augmentation runs on the host"
        return None

    def start_epoch(self, first_step: int, step: int, data, order, bounds):
        """Set the dropout key's step to the run's ``first_step`` (global step count) and return
        the counter (give it to ``set_random_key(..., steps_done=)``).

        For `epoch_step`, after `totals` gave the epoch's arrays: the epoch from its step ``step`` on (a resumed
        epoch's first), ``data`` (X, y), ``order`` (the epoch's shuffle) on the device and ``bounds`` (each
        batch's (start, stop) in it, one after another). The order is laid out as one row a batch (one kernel),
        padded to the widest batch: row s holds ``order[bounds[s][0]:bounds[s][1]]`` first, and a spare row
        follows the last (as `totals`' spare cost). Arrays other than the last epoch's have the steps captured
        again."""
        if not self._totals:
            raise RuntimeError("CapturedSteps.start_epoch: call totals(steps, ...) first (the epoch's cost and hits "
                               "arrays the steps' graphs write)")
        xp = self.backend.xp
        if self._steps is None:
            self._steps = xp.zeros(2, dtype=np.int64)
            self.counter = self._steps[:1]
        self.counter.fill(first_step)
        self._steps[1:].fill(step)
        if self._layout is None or self._layout[0] != bounds:  # (the fit's batches: laid out once)
            starts, stops = np.array([*bounds, (0, 0)], dtype=np.int64).T  # (the spare row: no example)
            columns = np.arange(max(stops - starts))
            self._layout = (list(bounds), self.backend.asarray(np.minimum(starts[:, None] + columns, len(order) - 1)))
        positions = self._layout[1]  # (where each row's examples lie in the order: past a batch's, any)
        rows = self._epoch[2] if self._epoch is not None else None
        if rows is None or rows.shape != positions.shape:
            rows = xp.empty(positions.shape, dtype=np.int64)
        xp.take(order, positions, out=rows)
        epoch = (*data, rows, *self._totals)
        if self._epoch is None or any(a is not b for a, b in zip(epoch, self._epoch)):
            self._epoch = epoch  # (a new tuple: the graphs of the last one capture again)
        return self.counter

    def totals(self, steps: int, cost_shape: tuple = (), hits_shape: tuple = (), hits_dtype=np.float64) -> tuple:
        """The arrays `epoch_step`'s graphs write, zeroed for an epoch of ``steps`` steps: its costs, (steps,
        *cost_shape) float64 (``costs[s]``: step s's), and its hits, their sum. The same ones each epoch (a graph
        writes them by their address; made anew for other shapes). The costs hold a spare one past the last step,
        left out of the view returned: a step's capture comes after its warm-up, a real step that counted the
        epoch's step on, and after the last step's the capture addresses the step after it — nothing runs there
        on a GPU, but the CuPy stand-in runs the capture and refuses an index past the end, which CuPy wraps
        around to the first step's."""
        xp, held = self.backend.xp, self._totals
        if not held or held[0].shape != (steps + 1, *cost_shape) or held[1].shape != tuple(hits_shape) or \
                held[1].dtype != np.dtype(hits_dtype):
            held = self._totals = (xp.zeros((steps + 1, *cost_shape), dtype=np.float64),
                                   xp.zeros(hits_shape, dtype=hits_dtype))
        else:
            for array in held:
                array.fill(0)
        return held[0][:steps], held[1]

    def epoch_step(self, step_fn, size: int, version=None) -> None:
        """Run ``step_fn(X_batch, y_batch)`` — which returns (the batch's cost, its hits or None) — on the
        epoch's next batch, of ``size`` examples, through its size's graph, which does the step's bookkeeping
        on the device (`start_epoch`'s arrays): it gathers the batch from the order's row at the epoch's step,
        writes the cost into ``costs[step]``, adds the hits to ``hits`` and counts the step. ``version``: what
        the step was captured under (e.g. which models are frozen); a different one captures again."""
        key = ("epoch", size)
        entry = self._graphs.get(key)
        if entry is not None and entry[1] is self._epoch and entry[2] == version:
            entry[0]()
            return
        xp, (X, y, rows, costs, hits) = self.backend.xp, self._epoch
        if entry is not None and entry[1] is self._epoch:  # (another version: the same inputs)
            Xs, ys, row = entry[0].result
        else:
            Xs, ys = xp.empty((size, *X.shape[1:]), dtype=X.dtype), xp.empty((size, *y.shape[1:]), dtype=y.dtype)
            row = xp.empty((1, rows.shape[1]), dtype=np.int64)
        step, batch = self._steps[1:], row[0, :size]

        def counted_step():
            xp.take(rows, step, axis=0, out=row)  # (the batch's row of the order: the epoch's step picks it)
            xp.take(X, batch, axis=0, out=Xs)
            xp.take(y, batch, axis=0, out=ys)
            cost, batch_hits = step_fn(Xs, ys)
            costs[step] = cost
            if batch_hits is not None:
                xp.add(hits, batch_hits, out=hits)
            self._steps += 1  # the next step's dropout key, and the epoch's next step
            return Xs, ys, row  # (the graph's inputs: kept by it, and by a capture again of another version)

        self._capture(key, counted_step, self._epoch, version)

    def call(self, name: str, fn, *arrays, version=None):
        """``fn(*fixed)`` through the graph kept for ``name`` and the arrays' shapes, captured at
        the first call of those shapes (which runs for real): each array is copied into a fixed
        one the graph reads (one copy kernel), so a few graphs serve any data — an evaluation
        batch of the training set or the dev set alike. ``version``: as `epoch_step`'s (a different
        one captures again)."""
        xp = self.backend.xp
        key = (name, *((a.shape, a.dtype.str) for a in arrays))
        entry = self._graphs.get(key)
        fixed = entry[1] if entry is not None else tuple(xp.empty(a.shape, dtype=a.dtype) for a in arrays)
        for target, source in zip(fixed, arrays):
            target[...] = source
        if entry is not None and entry[2] == version:
            return entry[0]()
        return self._capture(key, lambda: fn(*fixed), fixed, version)

    def _capture(self, key, fn, inputs, version):
        """Warm ``fn`` up (this call's work, done for real), capture it under ``key``, and return
        the warm-up's result; under "auto" a step that cannot be captured leaves the loop eager."""
        try:
            graph = cuda_graph(fn, backend=self.backend, warmup=1)
        except CaptureError as e:  # the warm-up did this call's work; the rest runs eagerly
            if self.capture is True:
                raise
            self.failure = str(e)
            warn_caller(f"steps run eagerly from here on: {e}")
            return e.warmup_result
        self._graphs[key] = (graph, inputs, version)  # replaces (and drops) a graph of another version
        return graph.warmup_result  # the warm-up did the work: the capture ran nothing

    def settings(self, name: str, model, *extra) -> tuple:
        """`host_settings` of ``model`` (and ``extra``) for the steps or calls ``name``, the very
        tuple of last time when they are unchanged: a graph's version is compared at every replay,
        and the same object compares by identity, not item by item."""
        now = host_settings(model, *extra)
        if self._settings.get(name) != now:
            self._settings[name] = now
        return self._settings[name]

    def clear(self) -> None:
        """Drop the graphs (a next fit captures again), the epoch's arrays (the fit's data among them) and give
        their memory back."""
        self._graphs.clear()
        self._epoch, self._totals, self._layout = None, (), None
        self.backend.release_graph_memory()
