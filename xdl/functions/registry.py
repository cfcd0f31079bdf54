"""`op`: the one declaration that makes a differentiable function public.

Declaring a `Function` subclass (or a plain function built on one) with ``@op`` gives it

* its public function, ``xdl.functions.<name>`` and ``xdl.<name>`` (the name is the class name in
  snake_case unless given): for a class, its inputs are ``forward``'s parameters (one with a
  default of None is an optional input) followed by the class's declared settings;
* its `Tensor` methods and operators (``method``, ``methods``, ``reflected``);
* its rows in the gradient-check table (``check``), which the test suite runs on every backend
  in float64.

>>> import numpy as np, xdl
>>> from xdl.function import Function
>>> from xdl.functions import Check, op
>>> @op(method=True, check=[Check((3, 4))])
... class Softsign(Function):
...     '''y = x/(1 + |x|);  ∂y/∂x = 1/(1 + |x|)²'''
...     def forward(self, x):
...         self.d = 1 + self.xp.abs(x)
...         return x / self.d
...     def backward(self, gy):
...         return (gy / (self.d * self.d),)
>>> xdl.softsign(xdl.tensor([1.0, -3.0])).numpy().tolist(), xdl.tensor([1.0]).softsign().item()
([0.5, -0.75], 0.5)
>>> xdl.functions.registry.remove("softsign")  # (undo the example)
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from xdl.function import Function
from xdl.tensor import Tensor

DOMAINS = ("real", "positive", "nonzero")  # where a check draws an input (nonzero: |x| ≥ 0.1, off kinks)


class Check:
    """One row of the gradient-check table: input shapes, the domain each input is drawn from, and
    extra positional and keyword arguments of the public function.

    ``Check((3, 4), (4,), domain=("real", "positive"))`` checks ``f(a, b)`` with a (3, 4) array of
    reals and a (4,) array of positive values; ``Check((3, 4), axis=0)`` checks ``f(a, axis=0)``.
    """

    def __init__(self, *shapes, domain=None, args=(), **kwargs):
        self.shapes = tuple(tuple(s) for s in shapes)
        self.domain = domain
        self.args, self.kwargs = tuple(args), kwargs

    def domains(self, default) -> tuple[str, ...]:
        domain = self.domain if self.domain is not None else default
        domains = (domain,) * len(self.shapes) if isinstance(domain, str) else tuple(domain)
        if len(domains) != len(self.shapes) or any(d not in DOMAINS for d in domains):
            raise ValueError(f"Check: domain {domain!r} must be one of {DOMAINS} or one per input")
        return domains

    def __repr__(self) -> str:
        extra = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"Check({', '.join([*map(str, self.shapes), *extra])})"


@dataclass(frozen=True)
class OpSpec:
    """What one declaration registered."""

    name: str
    fn: Callable  # the public function
    methods: tuple[str, ...] = ()  # Tensor attributes calling fn(self, ...)
    reflected: tuple[str, ...] = ()  # Tensor operators calling fn(other, self)
    check: tuple[Check, ...] = ()
    domain: object = "real"
    source: object = field(default=None, compare=False)  # the declared class or function


REGISTRY: dict[str, OpSpec] = {}


def op(target=None, *, name: str | None = None, method: bool | str = False, methods=(), reflected=(), check=(),
       domain="real"):
    """Declare ``target`` (a `Function` subclass or a function) as a public differentiable function.

    Parameters
    ----------
    name : str, optional
        The public name; defaults to the snake_case class name or the function's name.
    method : bool or str
        Also a `Tensor` method: True for the same name, or the method's name.
    methods, reflected : sequence of str
        Tensor operators bound as ``fn(self, other)`` (``"__add__"``) and ``fn(other, self)``
        (``"__radd__"``).
    check : sequence of Check
        Gradient-check rows. An op without any is listed, with where it is checked instead, in the
        test suite's table.
    domain : str or tuple of str
        The default input domain of the rows ("real", "positive", "nonzero").
    """

    def declare(target):
        is_class = isinstance(target, type)
        public = name or (snake_case(target.__name__) if is_class else target.__name__)
        fn = public_function(target, public) if is_class else target
        names = (*((public if method is True else method),) * bool(method), *methods)
        register(OpSpec(public, fn, tuple(names), tuple(reflected), tuple(check), domain, target))
        return target

    return declare(target) if target is not None else declare


def register(spec: OpSpec) -> None:
    """Add ``spec`` to the registry and install its Tensor methods (names must be new)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", spec.name):
        raise ValueError(f"op name {spec.name!r} must be a lowercase Python identifier")
    if spec.name in REGISTRY:
        raise ValueError(f"op {spec.name!r} is already declared (by {REGISTRY[spec.name].source!r})")
    for namespace in ("xdl", "xdl.functions"):  # the op is exported there: it must not hide anything
        if spec.name in getattr(sys.modules.get(namespace), "__dict__", {}):
            raise ValueError(f"op name {spec.name!r} is taken: {namespace}.{spec.name} already exists")
    for attr in (*spec.methods, *spec.reflected):
        if attr in vars(Tensor):
            raise ValueError(f"op {spec.name!r}: Tensor already has an attribute {attr!r}")
    REGISTRY[spec.name] = spec
    fn = spec.fn
    for attr in spec.methods:
        _install(attr, lambda self, *args, **kwargs: fn(self, *args, **kwargs), spec)
    for attr in spec.reflected:
        _install(attr, lambda self, other: fn(other, self), spec)


def remove(name: str) -> None:
    """Undo `register` for op ``name`` (its Tensor methods go too)."""
    spec = REGISTRY.pop(name)
    for attr in (*spec.methods, *spec.reflected):
        delattr(Tensor, attr)


def _install(attr: str, method, spec: OpSpec) -> None:
    method.__name__ = attr
    method.__doc__ = spec.fn.__doc__
    setattr(Tensor, attr, method)


def snake_case(name: str) -> str:
    """``LeakyReLU`` → ``leaky_relu``, ``SoftmaxCrossEntropy`` → ``softmax_cross_entropy``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def public_function(cls: type[Function], name: str):
    """``f(*inputs, *settings)`` calling ``cls.apply``, with a real signature and cls's docstring.

    Inputs are ``forward``'s parameters; trailing ones defaulting to None are optional inputs and
    left out of ``apply`` when None. Settings follow, by position or keyword.
    """
    inputs = list(inspect.signature(cls.forward).parameters.values())[1:]
    params, kind = [], inspect.Parameter.POSITIONAL_OR_KEYWORD
    for p in [*inputs, *(inspect.Parameter(k, kind, default=v) for k, v in cls.fields.items())]:
        if params and p.default is p.empty and params[-1].default is not p.empty:
            kind = inspect.Parameter.KEYWORD_ONLY  # a required setting after an optional one
        params.append(p.replace(kind=kind))
    signature = inspect.Signature(params)
    input_names = [p.name for p in inputs]

    def fn(*args, **kwargs):
        if not kwargs and len(args) == len(input_names):  # the common call: inputs only
            return cls.apply(*(a for a in args if a is not None))
        try:
            bound = signature.bind(*args, **kwargs).arguments
        except TypeError as e:
            raise TypeError(f"{name}(): {e}") from None
        given = [bound[k] for k in input_names if bound.get(k) is not None]
        return cls.apply(*given, **{k: v for k, v in bound.items() if k not in input_names})

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = cls.__doc__
    fn.__signature__ = signature
    fn.__module__ = cls.__module__
    return fn
