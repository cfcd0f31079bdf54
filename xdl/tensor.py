"""`Tensor`: a backend array plus the graph that made it (define-by-run reverse-mode autodiff).

Each differentiable operation is a `xdl.function.Function` with a forward and a hand-written
backward on raw arrays; calling it on tensors records the node, and ``loss.backward()`` walks the
recorded graph in reverse topological order. Leaf tensors with ``requires_grad=True`` accumulate
their gradient in ``.grad`` (a raw backend array, like Chainer's ``Variable.grad``), in place when
it already exists, so parameters whose ``.grad`` is a view into a flat gradient buffer keep it.

>>> import xdl
>>> w = xdl.tensor([3.0], requires_grad=True)
>>> (w ** 2).sum().backward()
>>> xdl.to_numpy(w.grad)
array([6.], dtype=float32)
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import threading

import numpy as np

from xdl import backend as _backend
from xdl import graph as _graph
from xdl.caller import keywords_of
from xdl.flat import writable


class _GradMode(threading.local):
    """Per thread, as PyTorch's: ``enabled``, and the ``saved`` modes of the open `no_grad` blocks
    (set up on each thread's first use, so a read is one attribute: it runs for every op)."""

    def __init__(self):
        self.enabled, self.saved = True, []


_grad_mode = _GradMode()


class WriteClock:
    """The count of in-place writes to leaf tensors — an optimizer's step, ``p -= …`` and
    ``p[...] = …`` under no_grad, ``load_state_dict`` — PyTorch's version counters as one count:
    a recorded node keeps the count it was made at (``Function._made``), a written leaf the count
    of its last write (``Tensor._written``), so `Tensor.backward` finds a node whose input was
    written after it was recorded (its backward would combine the activations of then with the
    values of now). Writes take a lock, so the count never goes back; a recording reads it."""

    now = 0
    _lock = threading.Lock()


def note_written(tensors) -> None:
    """Mark ``tensors`` (leaves) as written in place now (`WriteClock`): once per update, by what
    writes them — raw writes to ``t.data`` are not seen, as PyTorch's ``.data`` is not. The tensors
    that share their memory (`share_writes`: a ``.detach()``, a view made without a graph) see it too.
    A write made in a step being captured (`xdl.cuda_graph`) is counted at each replay of its graph."""
    tensors = list(tensors)  # (a generator read before the lock is taken)
    # under a `cuda_graph` capture, at each replay (`host_effect`): a capture writes nothing, and a
    # replay runs no Python, so a step's weights written by graph() were never counted — a graph
    # recorded before it backpropagated the activations of then through the weights of now, silently,
    # and one recorded before a capture (warmup=0) was refused though nothing was written
    _graph.host_effect(functools.partial(_stamp_written, tensors))


def _stamp_written(tensors: list[Tensor]) -> None:
    """`note_written`'s stamp, now: the clock's next count on each of ``tensors`` and its aliases."""
    with WriteClock._lock:  # stamped under it too: two threads' writes of one tensor left it the older count
        WriteClock.now += 1
        for t in tensors:
            # into its __dict__: a Parameter's __setattr__, a Python call that checks ``data`` and ``grad``, ran for
            # each parameter at every step and every replay of a captured one (2.5x the stamp's own host time)
            t.__dict__["_written"] = WriteClock.now
            if t._aliases is not None:
                t._aliases[0] = WriteClock.now


def share_writes(alias: Tensor, source: Tensor) -> None:
    """Let ``alias``, made from ``source`` without a copy — ``source.detach()``, a view (``x.T``,
    ``x.reshape``, ``x[1:3]``) of a tensor no graph records, a leaf of its own, ``Parameter(source)``,
    ``xdl.tensor(source, copy=False)`` — count the writes of either for a graph that read the other,
    as PyTorch's views and ``detach()`` share one version counter: both hold one cell of the count
    of their last write. Without it a data batch written in place after a forward read its
    ``X[i:j]`` or ``x.reshape(n, -1)``, or ``w.detach()`` after a step, gave the weights the
    gradient of the values of now, silently. A view of a copy (a gather's result, a reshape NumPy
    had to copy) shares nothing: the arrays' owners are compared."""
    if alias.data is not source.data and _owner(alias.data) is not _owner(source.data):
        return
    if source._aliases is None:
        source._aliases = [source._written]
    alias._aliases = source._aliases


def _owner(array):
    """What owns ``array``'s memory: its ``base``, that one's ``base``, … to the end. CuPy's ``base``
    names the root; NumPy's stops at an array of another type or one over a non-array's memory — a
    view of a memmap (``xdl.tensor(np.load(f, mmap_mode="r+"), copy=False)``) names the memmap, whose
    base is the mmap: compared one step up, its views shared no writes with the tensor."""
    while (base := getattr(array, "base", None)) is not None:
        array = base
    return array


def is_grad_enabled() -> bool:
    """Whether operations on tensors record a graph (in this thread)."""
    return _grad_mode.enabled


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) under which no graph is recorded: inference, updates. The
    mode is the calling thread's, and blocks nest — a decorated function may call itself, or
    another: each exit restores what its entry found. As PyTorch's, it decorates with or without
    parentheses (``@no_grad()``, ``@no_grad``), and a decorated generator records nothing while
    it runs — each step between its yields, not only the call that makes it."""

    recording = False  # the mode within the block (`enable_grad`'s: True)

    def __new__(cls, func=None):
        """``no_grad(f)`` (the bare ``@no_grad``) is ``no_grad()(f)``: it was a TypeError."""
        instance = super().__new__(cls)
        if func is not None and not callable(func):
            raise TypeError(f"{cls.__name__} takes no arguments (or, as a bare decorator, the function it decorates), "
                            f"got {func!r}")
        return instance if func is None else instance(func)

    def __init__(self, func=None):
        pass

    def __call__(self, func):
        """``func`` run under this block; a generator function's body runs under it from one yield to
        the next (ContextDecorator's wrapper left the block when the call returned the generator, and
        the body ran — at the caller's next() — recording a graph)."""
        if not inspect.isgeneratorfunction(func):
            return super().__call__(func)

        @functools.wraps(func)
        def generator(*args, **kwargs):
            steps = func(*args, **kwargs)
            try:
                with self:  # each step of the body under the block; the caller's code between them not
                    value = steps.send(None)
                while True:
                    try:
                        sent = yield value
                    except GeneratorExit:
                        with self:
                            steps.close()
                        raise
                    except BaseException as error:  # thrown in: the body handles it, under the block
                        with self:
                            value = steps.throw(error)
                    else:
                        with self:
                            value = steps.send(sent)
            except StopIteration as stop:
                return stop.value

        return generator

    def __enter__(self):
        _grad_mode.saved.append(_grad_mode.enabled)  # on the thread, not this object: one instance decorates
        _grad_mode.enabled = self.recording          # a function that may be re-entered

    def __exit__(self, *exc):
        _grad_mode.enabled = _grad_mode.saved.pop()


class enable_grad(no_grad):
    """`no_grad`'s opposite (PyTorch's ``enable_grad``): within it a graph is recorded whatever
    the blocks around it — a gradient check called under ``no_grad``, or within another check."""

    recording = True


def as_python_int(x, dtype):
    """``x``, a NumPy integer beside an integer array of ``dtype``, as the Python int it holds;
    anything else as it is. NumPy casts its own integer scalars to the array's narrower type
    unchecked (int32 + np.int64(2**40) adds 0, and into ``out=`` uint8 + np.int64(3) is a casting
    error), where it refuses a Python int that does not fit."""
    if isinstance(x, np.integer) and np.dtype(dtype).kind in "iu":
        return int(x)
    return x


def backend_index(index, backend):
    """``index`` as ``backend``'s arrays take it, part by part of a tuple: a Tensor's array, a list
    or a host array moved to the backend (an empty list an integer index, as NumPy reads it, not
    float64's); ints, slices, None and Ellipsis as they are. (A Tensor handed to CuPy's indexing
    as it is went to the host and back through ``__array__``.)"""

    def one(i):
        if isinstance(i, Tensor):
            return i.data
        if isinstance(i, list):
            array = backend.asarray(i)
            return array.astype(np.int64) if array.size == 0 else array
        if isinstance(i, np.ndarray) and not backend.owns(i):
            return backend.asarray(i)
        return i

    return tuple(one(i) for i in index) if isinstance(index, tuple) else one(index)


def check_tensor_dtype(dtype, who: str) -> np.dtype:
    """``dtype`` as a NumPy dtype if a tensor may hold it (real numbers, integers, booleans: what the
    ops take), else a TypeError naming ``who``."""
    dtype = np.dtype(dtype)
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer) or dtype == np.bool_):
        raise TypeError(f"{who}: dtype {dtype} is not supported (real numbers, integers or booleans)")
    return dtype


def _default_dtype(data):
    """What `tensor` makes of ``data`` without a dtype, as PyTorch does: floating arrays keep their
    dtype and Python floats become float32; integers stay integers (int64 from Python ints) and
    booleans stay booleans. In a list (or tuple), each NumPy value (a scalar, an array) counts with
    its own dtype and each Python float as float32, int as int64, the widest of a kind winning
    (`_list_dtype`): ``[np.float64(0.1)]`` is float64, as ``torch.tensor`` makes it (it was float32)."""
    dtype = getattr(data, "dtype", None)
    dtype = np.dtype(dtype) if dtype is not None else np.asarray(data).dtype
    if hasattr(data, "dtype"):
        if not (np.issubdtype(dtype, np.number) and dtype.kind in "fiu" or dtype == np.bool_):
            raise TypeError(f"tensor: data of dtype {dtype} is not supported (real numbers, integers or booleans)")
        return dtype
    if np.issubdtype(dtype, np.floating):
        return _list_dtype(data, "f", np.dtype(np.float32))
    if np.issubdtype(dtype, np.integer):
        return _list_dtype(data, "iu", np.dtype(np.int64))
    if dtype == np.bool_:
        return dtype
    raise TypeError(f"tensor: data of dtype {dtype} is not supported (real numbers, integers or booleans)")


def _list_dtype(data, kinds: str, python: np.dtype) -> np.dtype:
    """The dtype of a list ``data`` NumPy reads as of ``kinds`` ("f" floating, "iu" integer), as
    PyTorch infers it: the promotion of its values' dtypes, a Python number's being ``python``
    (float32, int64) and a NumPy value's its own — NumPy alone read a float64 scalar among Python
    floats as a Python float (float32) and promoted int32 with float32 to float64. Booleans and
    values of the other kind (an int among floats) give way to those of ``kinds``."""
    numbers = {float: python if kinds == "f" else None, int: python if kinds != "f" else None, bool: None}
    found, level = set(), [data if isinstance(data, list | tuple) else [data]]  # (a lone Python number: a list of it)
    while level:  # one nesting level at a time, each read at C speed (rows of Python floats: no loop here)
        items = list(itertools.chain.from_iterable(level))
        types = set(map(type, items))
        found.update(numbers[t] for t in types & numbers.keys())
        nested = {t for t in types if issubclass(t, list | tuple)}
        arrays = types - numbers.keys() - nested  # NumPy scalars and arrays: each its own dtype
        if arrays:
            found.update(np.dtype(v.dtype) for v in items if type(v) in arrays and hasattr(v, "dtype"))
        level = [v for v in items if isinstance(v, list | tuple)] if nested else []
    of_kind = [d for d in found if d is not None and d.kind in kinds]
    dtype = np.result_type(*of_kind) if of_kind else python
    return dtype if dtype.kind in kinds else python  # (uint64 with int64 is float64 to NumPy: Python ints' int64)


# PyTorch's names for what a Tensor does under another name here: a habit that met a bare "no attribute
# 'numel'" is told the way (`Tensor.__getattr__`)
PYTORCH_NAMES = {
    "numel": "the attribute size (NumPy's: the number of elements)",
    "dim": "the attribute ndim",
    "float": "astype(np.float32)",
    "double": "astype(np.float64)",
    "long": "astype(np.int64)",
    "to": "astype(dtype) to convert, xdl.tensor(t, backend=...) to move",
    "cpu": "numpy() (its values on the host)",
    "view": "reshape(...)",
    "clone": "xdl.tensor(t) (a copy, without a graph)",
    "eq": "the operator ==",
    "t": "the attribute T",
    "permute": "transpose(*axes)",
    "device": "the attribute backend (its name: t.backend.name)",
    "requires_grad_": "the attribute: t.requires_grad = False",
    **dict.fromkeys(("fill_", "zero_", "copy_", "normal_", "uniform_"), "an assignment under no_grad (with "
                    "xdl.no_grad(): t[...] = values)"),
}
PYTORCH_READ = frozenset({"device"})  # those of them PyTorch reads rather than calls


def missing_attribute(obj, name: str, pytorch_names: dict, read=frozenset()):
    """A ``__getattr__`` (called only for a name Python's lookup did not find on ``obj``): PyTorch's
    name of what ``obj`` does under another here (``pytorch_names``: name → the way here) says that
    way (``read``: those of them PyTorch reads rather than calls); any other is Python's own error (a
    property's AttributeError raised again, not hidden behind "no attribute")."""
    if name in pytorch_names:
        called = "" if name in read else "()"
        raise AttributeError(f"{type(obj).__name__!r} object has no attribute {name!r}; for PyTorch's {name}{called}, "
                             f"use {pytorch_names[name]}")
    return object.__getattribute__(obj, name)


def missing_module_attribute(module: str, name: str, pytorch_names: dict, torch_module: str):
    """A module's ``__getattr__``: PyTorch's name ``torch_module.name`` of what ``module`` has under
    another name here (``pytorch_names``: name → the way here) says that way; any other name is Python's
    "module has no attribute" (``import torch.nn as nn; nn.Linear`` is ``xdl.nn.Dense``: the bare error
    did not say which)."""
    if name in pytorch_names:
        raise AttributeError(f"module {module!r} has no attribute {name!r}; for PyTorch's {torch_module}.{name}, "
                             f"use {pytorch_names[name]}")
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def named_elsewhere_hint(cls, key: str) -> str | None:
    """What PyTorch's or Keras's setting ``key`` is in ``cls`` (an optimizer's rule, a layer: its
    ``pytorch_names``, then its ``keras_names``), for a message; None where neither names it."""
    for library, names in (("PyTorch", cls.pytorch_names), ("Keras", cls.keras_names)):
        if key in names:
            return f"{library}'s {key!r} is {names[key]}"
    return None


def peer_order_refused(name: str, positional: list, given: int, hint: str) -> TypeError:
    """The error for ``given`` arguments by position to ``name``, which takes ``positional``, in a peer's order
    (PyTorch's or Keras's: its next argument is another setting, which ``hint`` names here) — for a layer's or
    a rule's constructor (`hinting_named_elsewhere`), a schedule's maker, `clip_grad_norm`: Python's own
    "takes 1 positional argument but 2 were given" said neither which keyword was meant nor the way."""
    plural = "" if len(positional) == 1 else "s"  # (Python's own: "takes 1 positional argument")
    names = f" ({', '.join(positional)})" if positional else ""  # (ReLU's: none)
    return TypeError(f"{name}() takes {len(positional)} positional argument{plural}{names} but {given} were given; "
                     f"{hint}")


def refusing_named_elsewhere(hint_of):
    """A decorator of a constructor that refuses, before it runs, a keyword it does not take for which
    ``hint_of(cls, keyword)`` (``cls`` the class made, a subclass inheriting the constructor included) says where
    it is here, saying that; any other keyword is left to Python's own error (a constructor taking ``**kwargs``
    takes any: left as it is)."""
    def wrap(init):
        taken = inspect.signature(init).parameters
        if any(p.kind is p.VAR_KEYWORD for p in taken.values()):
            return init
        keywords = set(keywords_of(init))

        @functools.wraps(init)  # (inspect.signature still reads ``init``'s: `Trainer.__repr__` reads its defaults)
        def checked(self, *args, **kwargs):
            for key in kwargs:
                hint = None if key in keywords else hint_of(type(self), key)  # (*layers' name: no keyword)
                if hint:
                    raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {key!r}; {hint}")
            init(self, *args, **kwargs)

        return checked

    return wrap


def refusing_options_elsewhere(elsewhere: dict):
    """`refusing_named_elsewhere` with one table for every class, ``elsewhere`` (keyword → where it is here)."""
    return refusing_named_elsewhere(lambda cls, key: elsewhere.get(key))


def hinting_named_elsewhere(init):
    """``init`` (a constructor of an optimizer's rule or of a layer) refusing, before it runs, a keyword it
    does not take that PyTorch's or Keras's peer does (the class's ``pytorch_names``, ``keras_names``), with
    what it is here (`refusing_named_elsewhere`); and a positional argument past its last where the class says
    what PyTorch's is there (``pytorch_positional``). Python's "unexpected keyword argument" named the keyword,
    not the way here."""
    keywords_checked = refusing_named_elsewhere(named_elsewhere_hint)(init)
    if keywords_checked is init:  # (it takes **kwargs)
        return init
    taken = inspect.signature(init).parameters
    positional = [name for name, p in list(taken.items())[1:] if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    # (a subclass's ``__init__(self, *sizes)`` takes any number: its class's inherited hint is not about it)
    takes_any_number = any(p.kind is p.VAR_POSITIONAL for p in taken.values())

    @functools.wraps(init)
    def checked(self, *args, **kwargs):
        hint = None if takes_any_number else getattr(type(self), "pytorch_positional", None)
        if hint and len(args) > len(positional):  # PyTorch's order, whose next argument means another setting
            raise peer_order_refused(type(self).__name__, positional, len(args), hint)
        keywords_checked(self, *args, **kwargs)

    return checked


# a tensor's state that is its process's, not its own: left out of a pickle (`Tensor.__getstate__`)
_PROCESS_STATE = frozenset({"_written", "_aliases"})


class Tensor:
    """An n-dimensional array on a backend, with optional gradient tracking.

    Parameters
    ----------
    data : array
        A raw array of ``backend`` (use `xdl.tensor` to build one from anything array-like).
    requires_grad : bool
        Whether ``backward`` should compute a gradient for this tensor.
    backend : Backend or str, optional
        The `Backend` that owns ``data`` (or its name, or a device kind); defaults to it.
    """

    __array_ufunc__ = None  # make NumPy scalars/arrays defer to our reflected operators
    _written = 0  # the `WriteClock` count of this leaf's last in-place write (`note_written`)
    _aliases = None  # [the count of the last write] shared with the tensors of its memory (`share_writes`)

    def __init__(self, data, requires_grad: bool = False, backend=None):
        if backend is None:
            try:
                backend = _backend.backend_of(data)
            except TypeError:  # (was "expected a numpy or cupy array, got list": torch.Tensor([1.0, 2.0])'s habit)
                raise TypeError(f"Tensor: data must be an array of a backend (Tensor wraps it as it is), got "
                                f"{type(data).__name__}; xdl.tensor(data) makes one from a list or a number") from None
        elif not isinstance(backend, _backend.Backend):  # a name: a user's call (an op passes its Backend)
            backend = _backend.resolve_backend(backend, "Tensor")
            if not backend.owns(data):
                raise TypeError(f"Tensor: data must be an array of the {backend.name} backend (Tensor wraps it as it "
                                f"is), got {type(data).__name__}; xdl.tensor(data, backend={backend.name!r}) copies it "
                                "there")
        if requires_grad is not False:  # as the setter and `tensor` check it (an op's output: a bool, one test)
            if not isinstance(requires_grad, bool | np.bool_):
                raise TypeError(f"Tensor: requires_grad must be True or False, got {requires_grad!r}")
            if requires_grad and data.dtype.kind != "f":  # its gradients would be integers
                raise TypeError(f"Tensor: only floating tensors can require a gradient, got dtype {data.dtype}")
        self.backend = backend
        self.data = data
        self._requires_grad = bool(requires_grad)  # (an op's output: its inputs' flag)
        self.grad = None
        self._fn = None  # the Function that produced this tensor, if any

    def __getattr__(self, name):
        return missing_attribute(self, name, PYTORCH_NAMES, PYTORCH_READ)

    @property
    def requires_grad(self) -> bool:
        """Whether ``backward`` computes a gradient for this tensor (settable on a leaf)."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value) -> None:
        """Set by a user (freezing a parameter, say): True or False, and True only for a floating
        tensor (an integer one would get integer gradients), as PyTorch's."""
        if not isinstance(value, bool | np.bool_):
            raise TypeError(f"requires_grad must be True or False, got {value!r}")
        if value and not np.issubdtype(self.dtype, np.floating):
            raise TypeError(f"only floating tensors can require a gradient, got dtype {self.dtype}")
        if self._fn is not None and bool(value) != self._requires_grad:  # the flag follows its inputs: switched
            # off, it cut the graph there without a word (PyTorch refuses it too)
            raise RuntimeError("requires_grad can be changed on leaf tensors only; this one is the result of an "
                               f"operation ({type(self._fn).__name__}): use .detach() for a tensor without a graph")
        self._requires_grad = bool(value)
        _graph.checked_state_changed()  # a frozen or unfrozen parameter: refused by a captured step's next replay

    def __getstate__(self) -> dict:
        """A pickled (or deep-copied) tensor keeps its values and flags, not the graph that made it
        (its Function holds the backend's array module): a module that caches an activation pickles.
        Nor its `WriteClock` count (`_written`, `_aliases`): that is this process's clock, and in
        another (which counts from 0) a count of 50,000 read as a write after every node recorded
        there, refusing backward passes that read nothing written."""
        return {k: v for k, v in self.__dict__.items() if k not in _PROCESS_STATE} | {"_fn": None}

    def __setstate__(self, state: dict) -> None:
        """An older pickle's flag (``requires_grad``, before it was checked where set) read as today's;
        a write count one kept (another process's clock) dropped."""
        if "requires_grad" in state or not _PROCESS_STATE.isdisjoint(state):
            state = {k: v for k, v in state.items() if k not in _PROCESS_STATE}
            if "requires_grad" in state:
                state["_requires_grad"] = bool(state.pop("requires_grad"))
        self.__dict__.update(state)

    # -- array facts ----------------------------------------------------------------------
    shape = property(lambda self: tuple(self.data.shape), doc="The lengths of the axes, a tuple (NumPy's).")
    dtype = property(lambda self: self.data.dtype, doc="The NumPy dtype of the values.")
    ndim = property(lambda self: self.data.ndim, doc="The number of axes.")
    size = property(lambda self: int(self.data.size),
                    doc="The number of elements, as NumPy's ``size`` (PyTorch's ``numel()``; ``shape`` is its size()).")
    is_leaf = property(lambda self: self._fn is None,
                       doc="Whether no recorded operation made this tensor (a parameter, an input): where "
                           "``backward`` leaves gradients.")

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor (it has no first axis)")
        return self.shape[0]

    def __iter__(self):
        """The tensors along the first axis (each a graph node, as indexing makes them)."""
        if not self.shape:
            raise TypeError("iteration over a 0-d tensor (it has no first axis)")
        return (self[i] for i in range(self.shape[0]))

    # -- in-place updates: ``p -= lr * p.grad`` under no_grad, as PyTorch's ----------------------
    def __iadd__(self, other):
        return self._in_place(other, "add", "+=", Tensor.__add__)

    def __isub__(self, other):
        return self._in_place(other, "subtract", "-=", Tensor.__sub__)

    def __imul__(self, other):
        return self._in_place(other, "multiply", "*=", Tensor.__mul__)

    def __itruediv__(self, other):
        return self._in_place(other, "divide", "/=", Tensor.__truediv__)

    def __ipow__(self, other):
        # as the others: without it Python ran ``w = w ** 2``, which under no_grad left a parameter as it
        # was and bound its name to a detached copy (and on a leaf that requires grad went unrefused)
        return self._in_place(other, "power", "**=", Tensor.__pow__)

    def __setitem__(self, index, value) -> None:
        """``t[index] = value`` written into ``t.data`` in place, under `no_grad` on a leaf — a
        parameter's hand initialization, PyTorch's ``with torch.no_grad(): layer.weight[...] = w``
        (its view of the flat buffer, which the optimizer updates, sees it); a graph recorded before
        refuses its backward (`WriteClock`). Elsewhere refused, naming that way: xdl counts writes
        to leaves only, so a write into an operation's result, which its graph may have saved,
        would corrupt its backward without a word."""
        if is_grad_enabled() or self._fn is not None:
            where = (f"a result of an operation ({type(self._fn).__name__}), whose graph may have saved it"
                     if self._fn is not None else "gradients are recorded")
            raise RuntimeError(f"t[...] = values writes into a tensor in place only under `with xdl.no_grad():` and "
                               f"on a leaf (a parameter, a tensor made by xdl.tensor); here {where}")
        self._check_writeable("t[...] = values")
        if value is None:  # (NumPy writes NaN into a float array for it)
            raise TypeError("t[...] = values: values is None; give numbers, an array or a Tensor")
        if isinstance(value, Tensor):
            if value.backend is not self.backend:
                raise TypeError(f"t[...] = values: values on the {value.backend.name} backend, the tensor on "
                                f"{self.backend.name}")
            value = value.data
        elif not isinstance(value, int | float | np.generic) and not self.backend.owns(value):
            value = self.backend.asarray(_backend.array_to_numpy(value))  # a list, a host array for a device tensor
        self.data[backend_index(index, self.backend)] = value
        note_written((self,))

    def _check_writeable(self, symbol: str) -> None:
        """An in-place write (``symbol``: its operator) needs a writeable array: NumPy's words were
        "output array is read-only", naming neither the tensor's making nor the way out."""
        if not getattr(getattr(self.data, "flags", None), "writeable", True):
            raise ValueError(f"{symbol} on a tensor whose array is read-only (made with copy=False of a read-only "
                             "or memory-mapped array, which it shares): make it with copy=True to update it")

    def _in_place(self, other, ufunc: str, symbol: str, recorded):
        """``self ∘= other``: written into ``self.data`` (views of it, a parameter's place in a flat
        buffer, see it) under `no_grad` on a leaf — the update of a parameter, as PyTorch's; a leaf
        that requires grad is refused while gradients are recorded (the graph reads it). Elsewhere
        a new tensor ``self ∘ other`` (``total += cost`` builds the sum), as before: xdl counts
        writes to leaves only (`WriteClock`), so a write into a result a graph saved would corrupt
        its backward."""
        if is_grad_enabled():
            if self._fn is None and self.requires_grad:
                raise RuntimeError(f"{symbol} on a leaf tensor that requires grad while gradients are recorded: an "
                                   "update of a parameter goes under `with xdl.no_grad():` (as in PyTorch)")
        elif self._fn is None:
            value = as_python_int(other.data if isinstance(other, Tensor) else other, self.dtype)
            xp = self.backend.xp
            self._check_writeable(symbol)
            if isinstance(self.data, xp.ndarray):  # (a tensor made of a NumPy scalar: rebound)
                getattr(xp, ufunc)(self.data, value, out=self.data)
            else:
                self.data = getattr(xp, ufunc)(self.data, value).astype(self.dtype)
            note_written((self,))
            return self
        return recorded(self, other)  # the op itself (Tensor.__add__, …: declared in xdl.functions)

    def __bool__(self) -> bool:
        """The truth of a one-element tensor (a host sync); more elements are ambiguous, as NumPy's."""
        if self.size != 1:
            raise ValueError(f"the truth of a tensor of {self.size} elements is ambiguous; use .numpy().any() "
                             "or .all()")
        return bool(self.item())

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        values = self.numpy()
        body = np.array2string(values, separator=", ", prefix="tensor(")
        # the shape where the values do not show it, as NumPy's repr: empty ("[]" is (0,), (0, 3) and (2, 0) alike)
        # or summarized ("..." hides how many)
        shown = values.size > np.get_printoptions()["threshold"] or (values.size == 0 and values.shape != (0,))
        shape = f", shape={values.shape}" if shown else ""
        return f"tensor({body}{shape}, dtype={self.dtype}, backend={self.backend.name}{grad})"

    def __format__(self, spec: str) -> str:
        """With a format spec, a one-element tensor formats as its value (``f"{loss:.3f}"``); without
        one, any tensor as `repr` (``format(t, "") == str(t)``, as for every Python object)."""
        if not spec:
            return str(self)
        if self.size != 1:
            raise TypeError(f"format spec {spec!r} needs a tensor with one element, got shape {self.shape}")
        return format(self.item(), spec)

    def __float__(self) -> float:
        """``float(t)``: the value of a one-element tensor, as PyTorch's (a host sync)."""
        return float(self._value("float()"))

    def __int__(self) -> int:
        """``int(t)``: the value of a one-element tensor, a fraction truncated toward zero (as ``int(2.7)``)."""
        return int(self._value("int()"))

    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (a device-to-host copy on cupy)."""
        return self.backend.to_numpy(self.data)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The values for NumPy (``np.asarray(t)``): on the CPU the data itself unless a copy is
        asked for (or ``dtype`` needs one); from a device a copy, so ``copy=False`` is refused there."""
        if self.backend.device_type != "cpu":
            if copy is False:
                raise ValueError("np.asarray(copy=False): the tensor's data is on the device, so NumPy gets a copy; "
                                 "leave copy out")
            return np.asarray(self.numpy(), dtype=dtype)
        if copy is False and dtype is not None and np.dtype(dtype) != self.dtype:  # as NumPy 2 refuses it
            raise ValueError(f"np.asarray(copy=False): a tensor of {self.dtype} as {np.dtype(dtype)} needs a copy; "
                             "leave copy out")
        return np.array(self.data, dtype=dtype, copy=True) if copy else np.asarray(self.data, dtype=dtype)

    def item(self) -> float:
        """The value of a one-element tensor as a Python number (syncs with the device)."""
        return self._value("item()")

    def _value(self, what: str):
        if self.size != 1:
            raise ValueError(f"{what} needs a tensor with one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self):
        """The values as (nested) Python lists, or one number for a 0-d tensor (syncs with the device)."""
        return self.numpy().tolist()

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Indices of the largest values along ``axis`` (of the flattened tensor by default; the
        first on ties), as NumPy's: an int64 tensor, without a gradient."""
        return self._index_of("argmax", axis, keepdims)

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Indices of the smallest values along ``axis``, as `argmax`."""
        return self._index_of("argmin", axis, keepdims)

    def _index_of(self, which: str, axis, keepdims: bool) -> Tensor:
        if axis is not None and (isinstance(axis, bool) or not isinstance(axis, int | np.integer)
                                 or not -self.ndim <= axis < self.ndim):
            hint = " (a 0-d tensor has none: leave axis out)" if self.ndim == 0 else ""
            raise ValueError(f"{which}: axis must be an integer in [{-self.ndim}, {self.ndim}), got {axis!r}{hint}")
        if self.size == 0 and (axis is None or self.shape[axis] == 0):
            raise ValueError(f"{which} over an empty axis (of a tensor of shape {self.shape}): it has no value")
        found = getattr(self.data, which)(axis=axis, keepdims=bool(keepdims))
        return Tensor(self.backend.xp.asarray(found, dtype=np.int64), backend=self.backend)

    # -- comparisons: elementwise, as NumPy's and PyTorch's: a bool tensor, without a gradient ----
    def __eq__(self, other):
        return self._compare(other, "equal", "==")

    def __ne__(self, other):
        return self._compare(other, "not_equal", "!=")

    def __lt__(self, other):
        return self._compare(other, "less", "<")

    def __le__(self, other):
        return self._compare(other, "less_equal", "<=")

    def __gt__(self, other):
        return self._compare(other, "greater", ">")

    def __ge__(self, other):
        return self._compare(other, "greater_equal", ">=")

    __hash__ = object.__hash__  # a tensor is its own key (as PyTorch's): == compares values, not tensors

    def _compare(self, other, ufunc: str, symbol: str) -> Tensor:
        """``self symbol other`` elementwise, with a Python number, a list, or a tensor or array of
        this backend. Anything else (None, a string) is Python's to answer: ``t == None`` is False,
        ``t < None`` a TypeError."""
        if isinstance(other, Tensor):
            if other.backend is not self.backend:
                raise TypeError(f"{symbol}: cannot compare tensors of different backends ({self.backend.name} and "
                                f"{other.backend.name})")
            other = other.data
        elif isinstance(other, list | tuple):
            other = self.backend.asarray(other)
        elif isinstance(other, np.ndarray) and not self.backend.owns(other):
            raise TypeError(f"{symbol}: a NumPy array cannot be compared with a tensor on the {self.backend.name} "
                            "backend")
        elif not isinstance(other, int | float | np.generic) and not self.backend.owns(other):
            return NotImplemented
        return Tensor(getattr(self.backend.xp, ufunc)(self.data, other), backend=self.backend)

    def detach(self) -> Tensor:
        """The same data, cut from the graph (no copy): an in-place write of either is a write of
        both for a graph that read the other (`share_writes`, as PyTorch's shared version counter)."""
        out = Tensor(self.data, backend=self.backend)
        share_writes(out, self)
        return out

    # -- DLPack ---------------------------------------------------------------------------
    def __dlpack__(self, *args, **kwargs):
        return self.data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()

    # -- autodiff -------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool | None = None) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` defaults to 1 for a one-element tensor; otherwise pass dL/d(self).
        The graph is kept as long as a tensor of it is (a second ``backward`` of this tensor
        accumulates again; a list of kept losses keeps every step's activations). A backward of
        another tensor through nodes an earlier backward went through is refused, as PyTorch's
        "backward through the graph a second time" (PyTorch's only through a node that saved values
        for its backward, a product's or a layer's; here through any, an addition's or a sum's too,
        which PyTorch walks again) — state carried over from an earlier step (a
        recurrent network's hidden state, a tensor of the weights made once before the loop)
        would otherwise take each step's backward through every step before it, with values of
        the weights as they were then, its memory and time growing without end: ``.detach()``
        cuts it — unless that earlier backward said ``retain_graph=True`` (two losses sharing part
        of their graph on purpose, PyTorch's way). A node whose output is a view of its input
        (`Function.views_input`: a transpose, a reshape or basic index as a view) may be walked
        again: the weights' in-place update shows through it, so a tied ``W.T`` made once before
        the loop (after the optimizer, which gathers the weights into its buffer) trains; one whose
        input's values have moved since (made before the optimizer) is refused; a copy made once
        (``w.astype``, ``-w``, ``w[[0, 1]]``) is refused — it would keep the weights' values of its
        step while its gradient moved them. A graph recorded before an in-place write of a leaf it
        read (an optimizer's step: `WriteClock`) is refused, as PyTorch's "modified by an inplace
        operation": its backward would mix the activations of then with the values of now.
        """
        if retain_graph is not None and not isinstance(retain_graph, bool | np.bool_):
            raise ValueError(f"retain_graph must be True or False, got {retain_graph!r}")
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (no leaf in its graph does)")
        xp = self.backend.xp
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a one-element tensor, got shape {self.shape}")
            # made anew at each backward, as PyTorch's ones_like (on a GPU one fill launch of an eager step's dozen or
            # more, a node of a captured one; on the CPU about a microsecond): a constant kept across steps would be
            # written by a Function of one's own whose backward writes its gy in place, against `Function`'s rule
            # (xdl's own never do), and NumPy could refuse that write with a read-only array but CuPy cannot
            grad = xp.ones(self.data.shape, dtype=self.dtype)
        else:
            # in the output's dtype, a Tensor's too (an integer gradient crashed batch norm's backward)
            grad = self.backend.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if grad.shape != self.data.shape:
                raise ValueError(f"backward(): gradient shape {grad.shape} does not match tensor shape {self.shape}")
        order = reverse_topological(self)
        mark = self.__dict__.get("_backward_mark") or object()  # this root's backward passes (no cycle: not the root)
        # a node another root's backward walked: refused, unless kept (retain_graph=True) or a view that still
        # shows its input (`Function.views_input`, `_views_still`)
        walked = next((n for n in order if n._fn is not None and n._fn._walked is not None
                       and n._fn._walked is not mark and not n._fn._kept
                       and not (n._fn.views_input and _views_still(n))), None)
        if walked is not None and walked._fn.views_input:  # (checked before any gradient is accumulated)
            raise RuntimeError(
                f"backward() through a view made once ({type(walked._fn).__name__}, a tied W.T say) whose input's "
                "values were moved to another array since it was made (an optimizer made after it gathers its "
                "parameters into one buffer): it keeps their values of then while each step's gradient moves the "
                "new ones. Make the view after the optimizer, or in forward at each step")
        if walked is not None:
            raise RuntimeError(
                f"backward() through a graph that an earlier backward() of another tensor already went through (at "
                f"{type(walked._fn).__name__}): state carried over from an earlier step — a recurrent hidden state, "
                "a tensor of the weights made once before the loop — would take this backward through every step "
                "before it, with the weights' values as they were then, its memory and time growing at each step. "
                "Cut carried-over state with .detach() (PyTorch refuses this too where a node saved values: "
                "'backward through the graph a second time'); a tensor made once from the parameters on purpose "
                "(W * scale, tanh(W)) is made in forward instead, at each step (detached, its gradient would not "
                "reach them); two losses that share part of their graph: pass retain_graph=True to the first backward")
        written = _written_since(order)
        if written is not None:
            node, source = written
            what = f"parameter {source.name!r}" if getattr(source, "name", None) else "a tensor"
            raise RuntimeError(
                f"backward() through a graph recorded before {what} of shape {source.shape} it read (at "
                f"{type(node._fn).__name__}) was written in place — by an optimizer's step, load_state_dict, or "
                "-= / [...] = under no_grad (on it, or a .detach() or view of it): its backward would combine the "
                "activations of then with the values of now, the gradient of neither. Compute the loss again after "
                "the update; a second backward of one loss goes before the step "
                "(PyTorch refuses this too: 'modified by an inplace operation')")
        self._backward_mark = mark
        keep = bool(retain_graph)
        grads = {id(self): grad}
        for node in order:
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._fn is None:
                node._accumulate(g)
                continue
            fn = node._fn
            gradients = fn.backward(g)
            if fn._gradients_checked:  # (a Function of one's own)
                gradients = _checked_grads(fn, gradients)
            # walked once its backward ran (one that raised part-way leaves the nodes it never reached free)
            fn._walked = mark
            if keep:
                fn._kept = True
            for inp, gi in zip(fn.inputs, gradients):
                if gi is None or not inp._requires_grad:
                    continue
                key = id(inp)
                grads[key] = gi if key not in grads else grads[key] + gi

    def _accumulate(self, g) -> None:
        if g.dtype != self.dtype:
            g = g.astype(self.dtype)
        if self.grad is None:
            # a copy, and an array: NumPy's 0-d gradients are scalars, which ``grad[...] = 0`` cannot write
            self.grad = self.backend.xp.array(g, order="C")  # (as g.copy() lays it out)
        else:
            self.grad += g  # in place: .grad may be a view into a flat gradient buffer

    # Operators and methods (``+``, ``@``, ``exp``, ``sum``, ``astype``, …) are installed by the
    # declarations in xdl.functions (`xdl.functions.op`): one place per function.
    @property
    def T(self) -> Tensor:
        """The transpose (axes reversed)."""
        return self.transpose()


ROLES = ("weight", "bias", "scale", "shift")  # a parameter's roles: penalties and weight decay cover the weights


class Parameter(Tensor):
    """A leaf tensor a model learns; ``requires_grad`` starts on (``p.requires_grad = False``
    freezes it, Keras's ``trainable = False``: an optimizer made before is made again).

    >>> import xdl
    >>> w = xdl.Parameter(xdl.tensor([[0.5, -1.0]]).data)
    >>> w.requires_grad
    True
    """

    def __init__(self, data, backend=None, name: str | None = None, role: str | None = None):
        """``role`` ("weight", "bias", "scale", "shift"; None: by its shape, `role_of`): what
        penalties and weight decay read — a course-layout bias of shape (n, 1) is a matrix, so a
        weight by its shape, unless it says ``role="bias"``. ``data`` may be a Tensor, whose array it
        takes (PyTorch's ``nn.Parameter(torch.randn(3, 2))``: it shares the values and their writes,
        `share_writes`, without the graph)."""
        source = data if isinstance(data, Tensor) else None
        if source is not None:  # refused as "not an array", whose advice, xdl.tensor(data), made a Tensor again
            backend, data = source.backend if backend is None else backend, source.data
        if not np.issubdtype(getattr(data, "dtype", np.float64), np.floating):  # (not an array: Tensor says)
            raise TypeError(f"Parameter: a parameter is a floating array (it learns by gradients), got dtype "
                            f"{data.dtype}; convert it, as xdl.tensor(data, dtype='float32').data")
        if role is not None and role not in ROLES:
            raise ValueError(f"Parameter: role must be one of {', '.join(ROLES)} or None, got {role!r}")
        super().__init__(data, requires_grad=True, backend=backend)
        if source is not None:  # its memory, so its writes (`share_writes`), as nn.Parameter(t) shares t's version counter
            share_writes(self, source)
        self.name = name
        if role is not None:
            self.role = role

    def __repr__(self) -> str:
        label = f"{self.name}: " if self.name else ""
        return f"Parameter({label}shape={self.shape}, dtype={self.dtype}, backend={self.backend.name})"

    def __setattr__(self, name: str, value) -> None:
        """``p.data = array`` and ``p.grad = array`` (PyTorch's rebinding: the optimizer writes it back into
        its place at its next step) take an array of the parameter's backend (or a Tensor there; ``grad``
        None too), checked here, before anything changes: a NumPy array bound to a parameter on cupy (a CuPy
        one on numpy) was taken, and the next forward failed inside the cuBLAS binding ("'memoryview' object
        has no attribute 'ptr'") or NumPy's, naming neither the parameter nor the way. (PyTorch takes it
        there and refuses the op that mixes devices.) `xdl.flat.move` rebinds both with ``backend`` set first.

        A stacked model's parameter (``_stacked``: a view of its (K, P) buffers) is not rebound: the values are
        written into its view (`_write_into_stack`), which the stack's optimizer, ``state_dict``, ``row`` and
        ``model(k)`` read — bound, they went into its forward alone."""
        if name in ("data", "grad"):
            if value is not None:
                array = value.data if isinstance(value, Tensor) else value
                backend = self.__dict__.get("backend")
                # (a NumPy scalar, a 0-d leaf's value rebound by `_in_place`, is held as a NumPy array is)
                held = backend is None or backend.owns(np.asarray(array) if isinstance(array, np.generic) else array)
                if not held:
                    label = f"parameter {self.__dict__.get('name')!r}" if self.__dict__.get("name") else "a parameter"
                    given = value.backend.name + " Tensor" if isinstance(value, Tensor) else \
                        f"{type(value).__module__}.{type(value).__name__}"
                    raise TypeError(f"{name}: {label} on the {backend.name} backend takes an array of it, got a "
                                    f"{given}; copy the values over with `with xdl.no_grad(): p[...] = values` (any "
                                    "backend's), or move the model there first with model.to(...)")
            # (a backward's ``p.grad += g`` comes here for each parameter with the array it holds: bound as it is)
            if "_stacked" in self.__dict__ and value is not self.__dict__[name]:
                _write_into_stack(self, name, value)
                return
        object.__setattr__(self, name, value)

    def __setstate__(self, state: dict) -> None:
        """Values and gradient it can write (`xdl.flat.writable`: joblib's read-only memory maps
        copied), whether or not a model or an optimizer copied with it makes them views again: a
        backward accumulates into ``grad`` in place, and a step writes ``data``."""
        super().__setstate__(state)
        for name in ("data", "grad"):
            if self.__dict__.get(name) is not None:
                self.__dict__[name] = writable(self.__dict__[name])


def _write_into_stack(p: Parameter, name: str, value) -> None:
    """``p.data = x`` / ``p.grad = g`` on a stacked parameter: written into its view (`write_into_stack`), as an
    ordinary model's optimizer writes a rebound array back into its flat buffer (`xdl.optim.optimizer._reattach`).
    New values are a write (`note_written`: a graph recorded before reads them no more)."""
    label = f"parameter {p.__dict__.get('name')!r}" if p.__dict__.get("name") else "a parameter"
    write_into_stack(p.__dict__[name], name, value, p.backend, f"{label} of a Stacked model is a view of its (K, P) "
                                                               "buffer")
    if name == "data":
        note_written([p])


def write_into_stack(view, name: str, value, backend, what: str) -> None:
    """``holder.name = value`` where ``view``, what the holder has bound to ``name``, is a stacked model's (K, P)
    buffer or a view of it (``what`` says which, for the error): view[...] = value, the view kept bound (``grad``
    None: zeroed, as the stack's ``zero_grad`` takes set_to_none; an array of another backend copied over, as
    `Stacked.set_row` takes one). Of another shape: a ValueError, nothing written."""
    if value is None and name == "grad":
        view.fill(0)
        return
    array = value.data if isinstance(value, Tensor) else value
    if tuple(getattr(array, "shape", ())) != tuple(view.shape):
        raise ValueError(f"{name}: {what}, of shape {tuple(view.shape)}; got {type(array).__name__} of shape "
                         f"{getattr(array, 'shape', None)} (its values are written into the buffer: give "
                         f"{tuple(view.shape)}, one row per model)")
    view[...] = backend.own(array)


def role_of(p) -> str:
    """A parameter's role ("weight", "bias", "scale", "shift"): the one it was given — a module gives
    one to each it registers — else by its shape, as a module would: a matrix or more is a weight,
    a vector or a scalar a bias. Penalties (`xdl.losses.l2`) and weight decay
    (`xdl.optim.param_groups`) cover the weights."""
    role = getattr(p, "role", None)
    return role if role is not None else "weight" if p.ndim >= 2 else "bias"


def tensor(data, requires_grad: bool = False, dtype=None, backend=None, copy: bool = True) -> Tensor:
    """A tensor on ``backend`` (a `Backend`, its name or a device kind; default the current one)
    of ``data``: a list, scalar, NumPy/CuPy array or Tensor.

    Without ``dtype``, floating arrays keep theirs and Python floats become float32; integers
    stay integers (int64 from Python ints: class labels) and booleans booleans, as in PyTorch.
    ``requires_grad``: True or False (the default); True makes a leaf whose gradient `backward` fills
    in ``.grad`` (only floating tensors can require a gradient). The data is copied, as by
    ``torch.tensor``: a later write to either leaves the other alone; ``copy=False`` shares an array of the backend
    and dtype asked for (``torch.as_tensor``; `Tensor` (array) wraps one as it is). Data on another
    backend is copied over (for a zero-copy exchange use `xdl.from_dlpack`).

    >>> tensor([1.5, 2.0]).dtype, tensor([3, 1]).dtype, tensor(np.zeros(2)).dtype
    (dtype('float32'), dtype('int64'), dtype('float64'))
    """
    for name, flag in (("requires_grad", requires_grad), ("copy", copy)):  # checked as Tensor's: "no" would be
        if not isinstance(flag, bool | np.bool_):  # true, an array NumPy's "truth value … is ambiguous"
            raise TypeError(f"tensor: {name} must be True or False, got {flag!r}")
    source = data if isinstance(data, Tensor) else None
    if source is not None:
        data = data.data
    backend = _backend.current_backend() if backend is None else _backend.resolve_backend(backend, "tensor")
    if not backend.owns(data) and not isinstance(data, np.ndarray | np.generic | list | tuple | int | float) \
            or isinstance(data, np.ma.MaskedArray):  # (its masked values as NaN: asarray gave the values under them)
        data = _backend.array_to_numpy(data)
    dtype = None if dtype is None else check_tensor_dtype(dtype, "tensor")
    own = _default_dtype(data)  # (with a dtype given too: a cast dropped complex values' imaginary parts, parsed
    # strings and read dates as counts since 1970, all refused without one)
    dtype = own if dtype is None else dtype
    if requires_grad and not np.issubdtype(dtype, np.floating):
        raise TypeError(f"tensor: only floating tensors can require a gradient, got dtype {dtype}")
    array = backend.asarray(data, dtype=dtype)
    if copy and backend.owns(data) and array.dtype == data.dtype:  # the caller's memory (a memmap's too)
        array = array.copy()
    out = Tensor(array, requires_grad=requires_grad, backend=backend)
    if source is not None:  # copy=False of a tensor (torch.as_tensor(t) is t): its writes are one's (`share_writes`)
        share_writes(out, source)
    return out


def from_dlpack(obj) -> Tensor:
    """A tensor sharing memory with a DLPack-capable object (a torch/JAX/CuPy/NumPy array).

    CPU data lands on the numpy backend, CUDA data on cupy; no copy where the producer allows.
    """
    device_type, _ = obj.__dlpack_device__()
    backend = _backend.backend_for_dlpack(device_type)
    return Tensor(backend.xp.from_dlpack(obj), backend=backend)


def _checked_grads(fn, grads) -> tuple:
    """A custom Function's backward gives one gradient per input, each of that input's shape (None
    for one without): one that does not would corrupt ``.grad`` without a word. Called for those only
    (`Function._gradients_checked`): xdl's own are checked by their gradcheck rows, not per step."""
    name = type(fn).__name__
    if len(fn.inputs) == 1 and hasattr(grads, "shape"):  # one input's gradient alone, as PyTorch allows
        grads = (grads,)
    if isinstance(grads, tuple | list):  # Tensors (PyTorch's habit) stand for their arrays
        grads = tuple(g.data if isinstance(g, Tensor) else g for g in grads)
    if not isinstance(grads, tuple | list) or len(grads) != len(fn.inputs):
        got = f"{len(grads)} gradients" if isinstance(grads, tuple | list) else f"a {type(grads).__name__}"
        raise TypeError(f"{name}.backward returned {got}; expected a tuple of {len(fn.inputs)} (one per input of "
                        "forward, None for one without a gradient)")
    for i, (inp, gi) in enumerate(zip(fn.inputs, grads)):
        if gi is not None and tuple(np.shape(gi)) != tuple(inp.shape):
            raise ValueError(f"{name}.backward: the gradient of input {i} has shape {tuple(np.shape(gi))}, the input "
                             f"{tuple(inp.shape)}")
    return grads


def to_numpy(x) -> np.ndarray:
    """A NumPy array from an xdl Tensor, an array of any backend, or anything array-like."""
    return _backend.array_to_numpy(x.data if isinstance(x, Tensor) else x)


def _views_still(node: Tensor) -> bool:
    """Whether ``node``, the output of a view (`Function.views_input`), still shares its input's
    array: an optimizer made after the view gathers the parameter's values into its flat buffer (a
    new array), after which the view shows the old one — a tied ``W.T`` made before the optimizer
    kept W's initial values while W trained (the cost's decoder part never moved, unsaid)."""
    source = node._fn.inputs[0].data
    return node.data.size == 0 or bool(node.backend.xp.may_share_memory(node.data, source))


def _written_since(order: list[Tensor]):
    """The first (node, leaf) of ``order`` where the leaf, an input of the node's operation (or the
    source of a view it read), was written in place after the node was recorded (`WriteClock`), or
    None. A view's own node is exempt: its backward reads no values (a tied ``W.T`` made once is
    walked at every step). One comparison per node when nothing was written since the forward."""
    now = WriteClock.now
    for node in order:
        fn = node._fn
        if fn is None or fn._made == now or fn.views_input:
            continue
        if node._aliases is not None and node._aliases[0] > fn._made:  # its output, written through a detach
            return node, node
        for inp in fn.inputs:
            while inp._fn is not None and inp._fn.views_input:  # a view shows its source's writes
                inp = inp._fn.inputs[0]
            if inp._fn is None and inp._written > fn._made:
                return node, inp
            if inp._aliases is not None and inp._aliases[0] > fn._made:  # written through a tensor of its memory
                return node, inp
    return None


def reverse_topological(root: Tensor) -> list[Tensor]:
    """Nodes reachable from ``root``, each after every node that consumes it."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        if node._fn is not None:
            stack.extend((inp, False) for inp in node._fn.inputs if inp._requires_grad and id(inp) not in seen)
    return order[::-1]
