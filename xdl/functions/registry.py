"""`op`: the one declaration that makes a differentiable function public.

Declaring a `Function` subclass (or a plain function built on one) with ``@op`` gives it

* its public function, ``xdl.functions.<name>`` and ``xdl.<name>`` (the name is the class name in
  snake_case unless given): for a class, its inputs are ``forward``'s parameters (one with a
  default of None is an optional input) followed by the class's declared settings;
* its `Tensor` methods and operators (``method``, ``methods``, ``reflected``);
* its rows in the gradient-check table (``check``), which the test suite runs on every backend
  in float64.

>>> import numpy as np, xdl
>>> from xdl.function import REQUIRED, Function
>>> from xdl.functions import Check, op
>>> @op(method=True, check=[Check((3, 4))])
... class ExampleSoftsign(Function):  # (a name of its own: the example must not take one an op may want)
...     '''y = x/(1 + |x|);  ∂y/∂x = 1/(1 + |x|)²'''
...     def forward(self, x):
...         self.d = 1 + self.xp.abs(x)
...         return x / self.d
...     def backward(self, gy):
...         return (gy / (self.d * self.d),)
>>> xdl.example_softsign(xdl.tensor([1.0, -3.0])).numpy().tolist(), xdl.tensor([1.0]).example_softsign().item()
([0.5, -0.75], 0.5)
>>> xdl.functions.registry.remove("example_softsign")  # (undo the example)
"""

from __future__ import annotations

import builtins as _builtins

import inspect
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from xdl.function import REQUIRED, Function
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


def star_exports() -> list[str]:
    """The declared functions a star import takes: all but those a builtin has (sum, max, min, abs,
    pow), which it would shadow — they stay ``xdl.sum``, ``xdl.functions.max``, ``t.sum()``."""
    return [name for name in REGISTRY if not hasattr(_builtins, name)]
NAMESPACES = ("xdl.functions", "xdl")  # the modules every op is exported from


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
    """Add ``spec`` to the registry, export its function as ``xdl.functions.<name>`` and
    ``xdl.<name>``, and install its Tensor methods (every name must be new — but for a declaration
    run again, `redeclares`, which replaces the one before, its names and methods included)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", spec.name):
        raise ValueError(f"op name {spec.name!r} must be a lowercase Python identifier")
    before = REGISTRY.get(spec.name)
    if before is not None and not redeclares(spec, before):
        raise ValueError(f"op {spec.name!r} is already declared (by {before.source!r})")
    own = () if before is None else (*before.methods, *before.reflected)  # (what the replaced one installed)
    namespaces = [sys.modules[n] for n in NAMESPACES if n in sys.modules]
    for module in namespaces:  # the op is exported there: it must not hide anything
        if spec.name in vars(module) and (before is None or vars(module)[spec.name] is not before.fn):
            raise ValueError(f"op name {spec.name!r} is taken: {module.__name__}.{spec.name} already exists")
    for attr in (*spec.methods, *spec.reflected):
        if attr in vars(Tensor) and attr not in own:
            raise ValueError(f"op {spec.name!r}: Tensor already has an attribute {attr!r}")
    if before is not None:  # every check passed: the old declaration goes only now
        remove(spec.name)
    REGISTRY[spec.name] = spec
    for module in namespaces:
        setattr(module, spec.name, spec.fn)
    fn = spec.fn
    for attr in spec.methods:
        setattr(Tensor, attr, fn)  # fn(self, ...) is the method itself: no extra call per use
    for attr in spec.reflected:
        def reflected(self, other):
            return fn(other, self)

        reflected.__name__, reflected.__doc__ = attr, fn.__doc__
        setattr(Tensor, attr, reflected)


def redeclares(spec: OpSpec, before: OpSpec) -> bool:
    """Whether ``spec`` is ``before``'s declaration run again: its class or function has the same
    module and qualified name (a notebook cell run again after fixing a backward, a module
    reloaded). Running a cell again redefines a class, as for a ``torch.autograd.Function``; a
    declaration elsewhere of a name already declared is still refused."""
    def identity(source):
        return getattr(source, "__module__", None), getattr(source, "__qualname__", None)

    return spec.source is not None and before.source is not None and None not in identity(spec.source) \
        and identity(spec.source) == identity(before.source)


def remove(name: str) -> None:
    """Undo `register` for op ``name``: its exports and Tensor methods go too."""
    spec = REGISTRY.pop(name)
    for module in (sys.modules[n] for n in NAMESPACES if n in sys.modules):
        if vars(module).get(name) is spec.fn:
            delattr(module, name)
    for attr in (*spec.methods, *spec.reflected):
        delattr(Tensor, attr)


def snake_case(name: str) -> str:
    """``LeakyReLU`` → ``leaky_relu``, ``SoftmaxCrossEntropy`` → ``softmax_cross_entropy``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def public_function(cls: type[Function], name: str):
    """``name(*inputs, *settings)``, an ordinary function calling ``cls.apply``, with cls's docstring.

    Inputs are ``forward``'s parameters (one defaulting to None is an optional input, left out of
    ``apply`` when None); the declared settings follow, by position or keyword (keyword-only when
    a setting without a default follows one with). Like dataclasses' ``__init__``, the function
    is generated, so Python itself binds the arguments and words the errors of a bad call, and a
    call costs no more than a hand-written one: this runs once per operation.

    >>> from xdl.functions.elementwise import LeakyReLU
    >>> import inspect; inspect.signature(public_function(LeakyReLU, "leaky_relu"))
    <Signature (x, slope=0.01)>
    """
    inputs = list(inspect.signature(cls.forward).parameters.values())[1:]
    header = [p.name if p.default is p.empty else f"{p.name}=None" for p in inputs]
    env, body = {"_apply": cls.apply}, []
    defaulted = any(p.default is not p.empty for p in inputs)
    for i, (setting, default) in enumerate(cls.fields.items()):
        if default is REQUIRED:
            if defaulted and "*" not in header:
                header.append("*")  # a required setting after an optional parameter: keyword-only
            header.append(setting)
            body.append(f"    settings[{setting!r}] = {setting}")
        else:
            defaulted = True
            env[f"_default{i}"] = default
            header.append(f"{setting}=_default{i}")
            body.append(f"    if {setting} is not _default{i}: settings[{setting!r}] = {setting}")
    required = [p.name for p in inputs if p.default is p.empty]
    optional = [p.name for p in inputs if p.default is not p.empty]
    lines = [f"def {name}({', '.join(header)}):"]
    if body:
        lines += ["    settings = {}", *body]
    call = ", ".join(required) + (", **settings" if body else "")
    for n in optional:  # only trailing inputs are optional: leave out each that is None
        lines.append(f"    if {n} is None: return _apply({call})")
        call = call.replace(", **settings", "") + f", {n}" + (", **settings" if body else "")
    lines.append(f"    return _apply({call})")
    # named as a file of this folder (none exists): its frames are xdl's, not a user's <string> (`xdl.caller`)
    source = compile("\n".join(lines), os.path.join(os.path.dirname(__file__), f"<op {name}>"), "exec")
    exec(source, env)  # noqa: S102 - names come from the class's own declarations
    fn = env[name]
    # named where it is exported (``xdl.functions.<name>``), not by its class's module, which holds no function
    # of that name: pickle (a model of one's own holding ``xdl.tanh``), docs tools and IDEs look it up there
    fn.__doc__, fn.__module__ = cls.__doc__, NAMESPACES[0]
    return fn
