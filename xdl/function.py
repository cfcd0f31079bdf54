"""`Function`: one differentiable operation, forward and backward on raw backend arrays.

A new operation is one small subclass; its settings are declared as annotated class attributes
(with a default, or without one when the caller must give it)::

    class Scale(Function):
        factor: float = 2.0          # a setting: Scale.apply(t, factor=3.0)

        def forward(self, x):
            return x * self.factor

        def backward(self, gy):
            return (gy * self.factor,)

    y = Scale.apply(t, factor=3.0)   # records the node when a graph is being built

``apply`` refuses settings the class does not declare, turns Python scalars into arrays of the
tensors' dtype (so a float64 scalar never turns float32 arrays into float64), refuses to mix
backends, records the node only when some input requires a gradient and `xdl.no_grad` is not
active, and makes the output's data an array of the backend (a 0-d one for a NumPy scalar).
``backward`` returns one gradient per input, in input order, ``None`` for inputs that need none
(``self.needs_grad[i]`` says which do) or whose gradient it added into `gradient_buffer`; it reads
``gy`` and never writes it (one array may be the gradient of several inputs). Class
constants that are not settings carry no annotation; settings annotated ``float`` arrive as Python
floats, ``bool`` ones as Python bools (a NumPy bool converted). To make the function public
(``xdl.scale``, ``Tensor.scale``, the gradient-check table), declare it with `xdl.functions.op`.
"""

from __future__ import annotations

import inspect

import numpy as np

from xdl.tensor import Tensor, WriteClock, as_python_int, is_grad_enabled, share_writes

REQUIRED = inspect.Parameter.empty  # the default of a setting the caller must give


class Function:
    """One differentiable operation (module docstring): a subclass declares its settings as annotated
    class attributes and implements ``forward(*arrays) -> array`` and ``backward(gy) -> tuple`` of
    one gradient per input (None where none is needed); ``Function.apply(*inputs, **settings)``
    runs it on tensors and records the node where a gradient is needed."""

    fields: dict = {}  # setting name -> default (REQUIRED when none); filled per subclass
    _float_fields: frozenset = frozenset()  # settings annotated ``float``, converted to Python floats
    _bool_fields: frozenset = frozenset()  # settings annotated ``bool``: True or False (a NumPy bool converted)
    _required: frozenset = frozenset()  # settings without a default
    _own_init = False  # a subclass defines __init__: it runs on every apply
    # a Function of one's own: its backward's gradients are checked at every backward (`Tensor.backward`);
    # xdl's own are checked by their gradient-check rows instead, not per step
    _gradients_checked = True
    # the output holds the input's values, moved or bounded (reshape, squeeze, x[:, 0], .T, astype, clamp):
    # it keeps the input's ``made_by``, so sigmoid(z).reshape(-1) still says it holds probabilities
    keeps_values = False
    inputs = ()
    needs_grad = ()
    # the backward pass that went through this node (`Tensor.backward`'s mark of its root), and whether
    # one said retain_graph=True: a backward of another root through it is refused (carried-over state)
    _walked = None
    _kept = False
    _made = 0  # the `WriteClock` count when it was recorded: a backward refuses it once an input was written since
    # whether another root's backward may walk this node again: only where its output is a view of its
    # input (a transpose; a reshape or basic index NumPy gives as a view), through which the optimizer's
    # in-place update shows — a tied W.T made once before the loop stays current. A copy made once
    # (w.astype, -w, w[[0, 1]], a concatenation: nothing saved, PyTorch walks it again) keeps the weights'
    # values of its step while each step's gradient still reaches them: the cost never moved, the weights drifted
    views_input = False
    backend = None  # the inputs' Backend, set by apply before forward
    xp = None  # backend.xp

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        fields, floats, bools = {}, set(), set()
        for klass in reversed(cls.__mro__):
            if issubclass(klass, Function) and klass is not Function:
                for name, annotation in inspect.get_annotations(klass).items():
                    fields[name] = klass.__dict__.get(name, fields.get(name, REQUIRED))
                    if annotation in ("float", float):
                        floats.add(name)
                    elif annotation in ("bool", bool):
                        bools.add(name)
        cls.fields, cls._float_fields, cls._bool_fields = fields, frozenset(floats), frozenset(bools)
        cls._required = frozenset(name for name, default in fields.items() if default is REQUIRED)
        cls._own_init = any("__init__" in vars(klass) for klass in cls.__mro__[:cls.__mro__.index(Function)])
        cls._gradients_checked = not cls.__module__.startswith("xdl.")

    def __init__(self, **settings):
        if not settings.keys() <= self.fields.keys():
            unknown = next(name for name in settings if name not in self.fields)
            raise TypeError(f"{type(self).__name__}: unknown setting {unknown!r} "
                            f"(its settings: {', '.join(self.fields) or 'none'})")
        if not self._required <= settings.keys():
            missing = sorted(self._required - settings.keys())
            raise TypeError(f"{type(self).__name__}: missing setting {', '.join(map(repr, missing))}")
        # None only where it is the declared default: leaky_relu(x, None) failed inside the forward ("unsupported
        # operand type(s) for *"), sum(keepdims=None) as "'NoneType' object cannot be interpreted as an integer"
        for name in self._float_fields:  # (a loop, not `& settings.keys()`: no set made at every op call)
            if name not in settings:
                continue
            value = settings[name]
            if type(value) is not float and not (value is None and self.fields[name] is None):
                # a Python float: a NumPy float64 would promote float32 arrays to float64 (NEP 50)
                if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
                    raise TypeError(f"{type(self).__name__}: setting {name!r} must be a number, got {value!r}")
                settings[name] = float(value)
        for name in self._bool_fields:
            if name not in settings:
                continue
            value = settings[name]
            if type(value) is not bool and not (value is None and self.fields[name] is None):
                # a NumPy bool as Python's (NumPy's own keepdims= refuses one); a 0 or "no" is no flag
                if not isinstance(value, np.bool_):
                    raise TypeError(f"{type(self).__name__}: setting {name!r} must be True or False, got {value!r}")
                settings[name] = bool(value)
        self.__dict__.update(settings)

    def forward(self, *xs):
        """The output array from the inputs' arrays (the backend's: ``self.xp`` is its module)."""
        raise NotImplementedError

    def gradient_buffer(self, i: int):
        """The ``.grad`` array of input ``i`` when a backward may add its gradient straight into it
        (then returning None for that input): a leaf that needs a gradient and already has one of
        its dtype — a parameter's view of its flat gradient buffer. Else None. Needing one is also asked
        of the leaf now: one frozen since the forward takes no gradient, as `Tensor.backward` gives none to it."""
        x = self.inputs[i]
        if (self.needs_grad[i] and x._requires_grad and x._fn is None and x.grad is not None
                and x.grad.dtype == x.dtype):
            return x.grad
        return None

    def product_gradient(self, i: int, a, b):
        """∂L/∂(input i) = a·b: added into its `gradient_buffer` by the product itself (GEMM with
        β = 1 on the GPU, no temporary; on the CPU a product then added; returns None), else returned."""
        into = self.gradient_buffer(i)
        if into is None:
            return self.backend.ops.matmul(a, b)
        self.backend.ops.matmul(a, b, out=into, accumulate=True)
        return None

    def row_sum_gradient(self, i: int, gy):
        """∂L/∂(input i) = Σᵢ gy[..., i, :] (a bias's: its rows summed, each matrix's of a stack):
        added into its `gradient_buffer` (on the GPU a product with a row of ones, β = 1: one launch, no
        temporary; returns None), else returned."""
        into = self.gradient_buffer(i)
        if into is None or into.dtype != gy.dtype:  # (another dtype: the sum, cast by the leaf's accumulation)
            return gy.sum(axis=-2)
        self.backend.ops.sum_rows(gy, out=into, accumulate=True)
        return None

    def backward(self, gy):
        """∂L/∂(each input) from ``gy`` = ∂L/∂(output): a tuple in input order, None for an input that
        needs no gradient (``self.needs_grad``) or whose gradient went into its `gradient_buffer`."""
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **settings) -> Tensor:
        """``forward`` on ``inputs`` (tensors; a Python number, list or array of their backend is
        wrapped) with ``settings`` (declared ones only), as a Tensor that records the node when a
        gradient is needed and `xdl.no_grad` is off."""
        # Without settings to set or check (or an __init__ of the subclass's own), skip __init__:
        # this runs once per operation.
        fn = cls(**settings) if settings or cls._required or cls._own_init else object.__new__(cls)
        tensors = _as_tensors(inputs, cls.__name__)
        wants = [t._requires_grad for t in tensors]  # (lists, not generators: one call each, not one per input)
        record = is_grad_enabled() and any(wants)  # (the flag itself: once per op)
        fn.needs_grad = tuple(wants) if record else (False,) * len(tensors)
        fn.backend = tensors[0].backend
        fn.xp = fn.backend.xp
        y = fn.forward(*[t.data for t in tensors])
        if not isinstance(y, fn.xp.ndarray):
            if isinstance(y, tuple | list):
                raise TypeError(f"{cls.__name__}.forward returned a {type(y).__name__}: a Function has one output, "
                                "an array (write one Function per output)")
            y = fn.backend.asarray(y)  # NumPy's 0-d results (a sum, x[0, 1]) are scalars, which no `out=` or [...]
            # writes (through the backend: a host value uploaded during a capture is refused by name)
        out = Tensor(y, requires_grad=record, backend=fn.backend)
        if cls.keeps_values and getattr(y, "base", None) is not None:  # a view of x: their writes are one's
            share_writes(out, tensors[0])  # (`share_writes`; NumPy's own results own their memory: no call)
        # (without a graph too: `predict` reads whether a model's outputs are probabilities); PyTorch's
        # torch.sigmoid(fc(x)).squeeze(1) + BCELoss, ported, trained on σ(σ(z)) and predicted all 1s without a word
        out.made_by = (getattr(tensors[0], "made_by", None) or cls) if cls.keeps_values else cls
        if record:
            fn.inputs = tensors
            fn._made = WriteClock.now
            out._fn = fn
        return out


def _joined_dtype(x, reference: Tensor):
    """The dtype a Python number (or list) takes beside ``reference``: the tensor's, so a float32
    tensor stays float32 — but a fraction beside integers is no integer (t * 0.5 on int64 gives
    float64, as NumPy's does), and a non-number keeps its own. A Python int of any size is an integer
    (NumPy holds 2**64 as an object, which no backward computes with): in a float tensor's dtype
    (inf beyond float32's range, as NumPy's), else an int64 that NumPy refuses when it overflows."""
    if type(x) is int:  # (not a bool: True beside booleans stays one)
        return reference.dtype if reference.dtype != np.bool_ else np.dtype(np.int64)
    kind = np.asarray(x).dtype
    if not np.issubdtype(kind, np.number) or reference.dtype == np.bool_ or (
            np.issubdtype(kind, np.floating) and not np.issubdtype(reference.dtype, np.floating)):
        return None  # (a number beside booleans is no boolean: t + 1 counts, as NumPy's and PyTorch's)
    return reference.dtype


def _as_tensors(inputs, op: str) -> tuple[Tensor, ...]:
    """Wrap non-tensor inputs on the tensors' backend; refuse mixed backends."""
    reference = next((x for x in inputs if isinstance(x, Tensor)), None)
    if reference is None:
        raise TypeError(f"{op}: expected at least one xdl.Tensor among the inputs")
    backend = reference.backend
    out = []
    for x in inputs:
        if isinstance(x, Tensor):
            if x.backend is not backend:
                raise TypeError(
                    f"{op}: cannot mix tensors of different backends ({backend.name} and {x.backend.name}); "
                    "move one with xdl.tensor(...) under xdl.use(...)"
                )
            out.append(x)
        elif backend.owns(x):
            out.append(Tensor(x, backend=backend))
        elif isinstance(x, int | float | np.generic):
            x = as_python_int(x, reference.dtype)  # (int32 + np.int64(2**40) added 0; + 2**40 is refused)
            out.append(Tensor(backend.scalar(x, _joined_dtype(x, reference)), backend=backend))
        elif isinstance(x, list | tuple):
            out.append(Tensor(backend.asarray(x, dtype=_joined_dtype(x, reference)), backend=backend))
        elif isinstance(x, np.ndarray):
            raise TypeError(f"{op}: a NumPy array cannot be combined with a tensor on the {backend.name} backend")
        else:
            raise TypeError(f"{op}: unsupported operand of type {type(x).__name__}")
    return tuple(out)
