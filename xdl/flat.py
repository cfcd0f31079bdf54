"""Flat parameter buffers: parameters (and their gradients) as views into one contiguous array
per dtype.

So ``zero_grad`` is one fill, an optimizer step is one kernel launch over a buffer, and a
checkpoint is a few arrays. Parameters are placed by a model, by an optimizer for a group that is
not already a contiguous run, or anew when a model changes dtype or backend (`pack`, `move`);
updates write in place and never rebind them. A stacked model's parameters, views of its (K, P)
buffer, are never packed (`check_packable`).
"""

from __future__ import annotations

import weakref

from xdl.backend import host_copy
from xdl.graph import checked_state_changed


class FlatBuffer:  # one buffer is one place: compared by identity, never array by array
    """``data`` and ``grad``: 1-D arrays of one dtype; ``params`` are views into them, in order.

    The buffer holds its parameters weakly (each holds its buffer, ``p._flat``): both ways strong
    made a cycle, so a dropped model's buffers lived on until a full garbage collection (a loop over
    trials held several models' weights and gradients at once). A parameter gone is left out.

    ``ranges_memo``: what `xdl.functions.penalties.weight_ranges` found over weights all placed here, kept for
    the next step's call (it holds them weakly too, and no other buffer's arrays); this process's, left out of
    a pickle or a copy."""

    def __init__(self, data, grad, params=()):
        self.data, self.grad = data, grad
        self.params = params
        self.ranges_memo = {}

    @property
    def params(self) -> list:
        return [p for p in (ref() for ref in self._params) if p is not None]

    @params.setter
    def params(self, params) -> None:
        self._params = [weakref.ref(p) for p in params]

    @property
    def backend(self):
        """The backend its parameters live on (the first live one's: an update's hot path reads it, and
        ``params`` builds the whole list)."""
        for ref in self._params:  # (the first is alive but where a model dropped a layer)
            p = ref()
            if p is not None:
                return p.backend
        raise RuntimeError("a flat buffer whose parameters are all gone has no backend")

    @property
    def size(self) -> int:
        return int(self.data.size)

    def __getstate__(self) -> dict:
        return {"data": self.data, "grad": self.grad, "params": self.params}

    def __setstate__(self, state: dict) -> None:
        """Unpickled with arrays it can write (`writable`), before the model or the optimizer that
        holds it views them again: an update writes them in place."""
        self.data, self.grad = writable(state["data"]), writable(state["grad"])
        self.params = state["params"]
        self.ranges_memo = {}


def writable(array):
    """``array``, or a copy of it where it cannot be written: a read-only memory map, which joblib
    unpickles a large array as (``Parallel``'s arguments over ``max_nbytes``, 1 MB by default, and
    ``joblib.load(mmap_mode="r")``). A model, an optimizer or a `Trainer` sent to a worker so trained
    there on, as PyTorch's do; copied apart, its state was read-only: its optimizer refused as moved,
    or a step raised "output array is read-only"."""
    return array if getattr(array.flags, "writeable", True) else array.copy()


def check_packable(params) -> None:
    """Raise TypeError if one of ``params`` lives in a stacked model's (K, P) buffer (it carries
    ``_stacked``, set by `xdl.nn.stack`): packed anew it would be cut off from that buffer, which
    the stack's ``zero_grad``, ``model(k)``, ``row``/``set_row`` and `StackedOptimizer` read and
    write — they would then act on stale arrays while the copy trains. Nothing is changed."""
    for p in params:
        if getattr(p, "_stacked", False):
            raise TypeError(f"parameter {getattr(p, 'name', None)!r} of shape {tuple(p.shape)} belongs to a Stacked "
                            "model (xdl.nn.stack): its values are a view of the stack's (K, P) buffer, which an "
                            "ordinary optimizer or an enclosing model would copy it out of; train a Stacked with "
                            "xdl.optim.StackedOptimizer (or xdl.train.fit_many), and use it alone, not inside "
                            "another model")


def check_one_backend(params, where: str) -> None:
    """Raise TypeError if ``params`` live on more than one backend: one flat buffer per dtype holds them
    all, and copying a CuPy array into a NumPy buffer (or back) failed deep inside `pack` with CuPy's
    "Implicit conversion to a NumPy array is not allowed", the parameter registered all the same. Nothing
    is changed."""
    params = list(params)
    for p in params[1:]:
        if p.backend is not params[0].backend:
            # (a layer assigned is moved, not remade: the parameter's recipe alone sent a user of model[0] = layer
            # to rebuild the layer's parameters one by one)
            raise TypeError(f"{where}: parameters of different backends ({params[0].backend.name} and "
                            f"{p.backend.name}) cannot share a model's flat buffer; make the parameter on the model's "
                            "backend: xdl.Parameter(xdl.tensor(values, backend=model.backend)), or move a layer "
                            "there first: layer.to(model.backend)")


def pack(params) -> list[FlatBuffer]:
    """Move ``params`` into new flat buffers, one per dtype, keeping their order and values.

    Each parameter's ``data`` and ``grad`` become views into the buffers (a missing gradient
    becomes zeros), and the parameter records where it lives (``p._flat``). A stacked model's
    parameter is refused before any is moved (`check_packable`), as are parameters of more than one
    backend (`check_one_backend`).
    """
    params = list(params)
    check_packable(params)
    check_one_backend(params, "pack")
    buffers = []
    for dtype, group in _by_dtype(params).items():
        backend = group[0].backend
        total = sum(p.size for p in group)
        flat = FlatBuffer(backend.xp.empty(total, dtype=dtype), backend.xp.zeros(total, dtype=dtype), list(group))
        offset = 0
        for p in group:
            end = offset + p.size
            data, grad = flat.data[offset:end].reshape(p.shape), flat.grad[offset:end].reshape(p.shape)
            data[...] = p.data
            if p.grad is not None:
                grad[...] = p.grad
            p.data, p.grad, p._flat = data, grad, (flat, offset)
            offset = end
        buffers.append(flat)
    checked_state_changed()  # new places: a graph captured on the old ones refuses its next replay
    return buffers


def flat_views(params) -> list[FlatBuffer]:
    """Flat buffers covering exactly ``params``, one per dtype.

    Where the parameters of a dtype already sit back to back in one buffer, in any order given
    (a model's ``parameters()`` list its layers' weights and biases in turn; its buffer holds the
    weights first), the result is a view of that range (no copy); otherwise they are packed anew
    (a stacked model's parameter is refused first, `check_packable`: it is never in such a range).
    """
    params = list(params)
    check_packable(params)
    out = []
    for group in _by_dtype(params).values():
        run = _contiguous_run(_buffer_order(group))
        out.extend([run] if run is not None else pack(group))
    return out


def move(params, backend) -> list[FlatBuffer]:
    """Place ``params`` on ``backend`` in flat buffers there (one per dtype), values and gradients
    kept: where a dtype's parameters fill one buffer (or a run of it) back to back, in any order
    given, it goes over in one copy and they become views of the copy, as they lay; otherwise each
    goes alone and they are packed anew on ``backend``. A stacked model's parameter is refused
    before any is moved (`check_packable`)."""
    params = list(params)
    check_packable(params)
    out = []
    for group in _by_dtype(params).values():
        group = _buffer_order(group)
        run = _contiguous_run(group)
        if run is None:
            for p in group:  # (backend first: a parameter takes arrays of its backend only, `Parameter.__setattr__`)
                data, grad = backend.own(p.data), None if p.grad is None else backend.own(p.grad)
                p.backend, p.data, p.grad, p._flat = backend, data, grad, None
            out.extend(pack(group))
            continue
        flat = FlatBuffer(backend.own(run.data), backend.own(run.grad), list(group))
        offset = 0
        for p in group:
            end = offset + p.size
            p.backend, p._flat = backend, (flat, offset)
            p.data, p.grad = flat.data[offset:end].reshape(p.shape), flat.grad[offset:end].reshape(p.shape)
            offset = end
        out.append(flat)
    return out


def views_of(p) -> tuple:
    """``p``'s (data, grad) views of the flat buffer it is placed in (``p._flat``)."""
    flat, offset = p._flat
    return tuple(a[offset:offset + p.size].reshape(p.shape) for a in (flat.data, flat.grad))


def view_again(params) -> bool:
    """After a copy (pickle, deepcopy), which copies every array apart, views too: each of
    ``params`` made a view of the buffer it was placed in again, its values (and gradient) written
    there first — so a model and an optimizer copied together still share their buffers. False, and
    nothing changed, where a parameter has no place, its buffer does not list it (placed anew) or
    cannot be written (a read-only memory map: joblib's)."""
    places = [getattr(p, "_flat", None) for p in params]
    if any(place is None or not any(q is p for q in place[0].params) for p, place in zip(params, places)):
        return False
    if not all(getattr(a.flags, "writeable", True) for flat, _ in places for a in (flat.data, flat.grad)):
        return False
    for p in params:
        data, grad = views_of(p)
        data[...] = p.data  # (the same values, unless one was rebound by hand before the copy)
        grad[...] = 0 if p.grad is None else p.grad
        p.data, p.grad = data, grad
    return True


def _buffer_order(group) -> list:
    """``group`` as its parameters lie in their one flat buffer; as given if they lie in several."""
    buffers = {id(p._flat[0]) if getattr(p, "_flat", None) else None for p in group}
    if len(buffers) == 1 and None not in buffers:
        return sorted(group, key=lambda p: p._flat[1])
    return list(group)


def contiguous_range(params):
    """(data, grad): the views of the one range of a flat buffer that ``params`` (of one dtype) fill back
    to back, in any order given — a model's weights, which its buffer holds first —, or None where they
    do not (one not placed, in another buffer, a gap between them, a ``.data`` or ``.grad`` rebound)."""
    span = _span(_buffer_order(params))
    if span is None:
        return None
    flat, start, stop = span
    return flat.data[start:stop], flat.grad[start:stop]


def _span(group):
    """(buffer, start, stop) of the range ``group`` fills in its order, or None."""
    first = getattr(group[0], "_flat", None)
    if first is None:
        return None
    flat, start = first
    offset = start
    for p in group:
        if getattr(p, "_flat", None) != (flat, offset) or not is_view_of(p, flat, offset):
            return None
        offset += p.size
    return flat, start, offset


def _contiguous_run(group):
    span = _span(group)
    if span is None:
        return None
    flat, start, stop = span
    if start == 0 and stop == flat.size:
        return flat
    return FlatBuffer(flat.data[start:stop], flat.grad[start:stop], list(group))


def is_view_of(p, flat, offset) -> bool:
    """Whether p.data/p.grad still point at ``flat`` (nobody rebound them). An array of another backend
    bound by hand (``p.grad = np.zeros(...)`` on the GPU) is not: its backend's address is no address here."""
    owns, address, at = p.backend.owns, p.backend.address, offset * flat.data.dtype.itemsize
    return (owns(p.data) and address(p.data) == address(flat.data) + at
            and p.grad is not None and owns(p.grad) and address(p.grad) == address(flat.grad) + at)


def _at(p, array, buffer, offset) -> bool:
    """Whether ``array`` (p's data) is an array of p's backend starting at ``buffer[offset]`` (`is_view_of`'s test)."""
    backend = p.backend
    return backend.owns(array) and backend.address(array) == backend.address(buffer) + offset * buffer.dtype.itemsize


def host_copies(params) -> list:
    """NumPy copies of ``params``' values, in their order, in one host read per run of them that lies back to back
    in a flat buffer — a whole model's: one per buffer (on a GPU each read is a copy and a sync; they were one per
    parameter) —, each a view of its run's host copy; one not in its place (none, or a ``.data`` rebound by hand)
    read alone. A run is read whole, never more: a submodule's weights and biases are two runs, not the span.
    Where a host read is cheap (the CPU) each is copied alone: finding the runs (two address reads a parameter)
    cost more than the copies."""
    params = list(params)
    values: list = [None] * len(params)
    placed: dict = {}  # id(buffer) → (buffer, [(offset, index in params)])
    for i, p in enumerate(params):
        place = getattr(p, "_flat", None)
        if place is not None and not p.backend.host_sync_is_cheap and _at(p, p.data, place[0].data, place[1]):
            placed.setdefault(id(place[0]), (place[0], []))[1].append((place[1], i))
        else:
            values[i] = host_copy(p.backend, p.data)
    for flat, members in placed.values():
        for start, stop, run in _runs(sorted(members), params):
            host = host_copy(params[run[0]].backend, flat.data[start:stop])
            for i in run:
                at = params[i]._flat[1] - start
                values[i] = host[at:at + params[i].size].reshape(params[i].shape)
    return values


def _runs(members, params):
    """(start, stop, indices) of each run of ``members`` — (offset, index) sorted by offset — lying back to back."""
    runs = []
    for offset, i in members:
        if runs and runs[-1][1] == offset:
            runs[-1][1] += params[i].size
            runs[-1][2].append(i)
        else:
            runs.append([offset, offset + params[i].size, [i]])
    return runs


def _by_dtype(params) -> dict:
    groups: dict = {}
    for p in params:
        groups.setdefault(p.dtype, []).append(p)
    return groups
