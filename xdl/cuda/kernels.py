"""Compiled kernels launched by parameter name, with every argument checked against the source.

``kernel("batchnorm.cu", "bn_stats", dtype, 4)`` compiles ``kernels/batchnorm.cu`` once (NVRTC,
through ``cupy.RawModule``, on first use — never at import) and returns a `Kernel` bound to the
instance ``bn_stats<float, 4>``. A launch names every parameter the source declares::

    k(grid, block, x=x, n_rows=n, n_cols=c, ...)

A missing, unknown or mistyped argument raises TypeError naming the kernel and the parameter,
before anything is launched: pointers take device arrays of the parameter's dtype (their layout
is the caller's to check: `xdl.cuda.ops` passes contiguous arrays), integers take Python or NumPy
integers (range-checked), doubles take real numbers.
"""

from __future__ import annotations

import functools
import importlib
import keyword
import operator
import os

import numpy as np

from xdl.cuda.source import C_TYPES, DTYPES, SOURCES, KernelSpec

REALS = (int, float, np.integer, np.floating)
USED_NAMES = ("type", "int", "float")  # the builtins the generated binder calls: no parameter may hide them


class Kernel:
    """One compiled instance of a kernel; call it as ``kernel(grid, block, **arguments)``.

    ``function`` is the compiled ``cupy.RawKernel`` (None for a binding that only checks
    arguments); ``array_type`` is the device array class pointer arguments must be.
    """

    def __init__(self, spec: KernelSpec, args: tuple, function, array_type):
        self.spec, self.template_args = spec, tuple(args)
        self.expression = spec.expression(args)
        self.function = function
        self._bind = _binder(self.expression, spec, dict(zip(spec.template, args)), array_type)

    @property
    def attributes(self) -> dict:
        """The compiled function's attributes (``num_regs``, ``shared_size_bytes``, …)."""
        return self.function.attributes

    def arguments(self, **values) -> tuple:
        """The positional argument tuple for a launch, every value checked and converted."""
        try:
            return self._bind(**values)
        except TypeError as e:
            if str(e).startswith("kernel "):  # a converter's message: it names the parameter already
                raise
            names = [p.name for p in self.spec.params]
            missing, unknown = [n for n in names if n not in values], sorted(set(values) - set(names))
            parts = ([f"missing parameter(s) {', '.join(map(repr, missing))}"] if missing else []) + \
                    ([f"unknown parameter(s) {', '.join(map(repr, unknown))}"] if unknown else [])
            raise TypeError(f"kernel {self.expression}: {'; '.join(parts) or e} "
                            f"(its parameters: {', '.join(names)})") from None

    def __call__(self, grid, block, **values) -> None:
        self.function(grid, block, self.arguments(**values))

    def __repr__(self) -> str:
        return f"Kernel({self.expression})"


def _binder(expression: str, spec: KernelSpec, binding: dict, array_type):
    """``f(*, <the kernel's parameters>) -> argument tuple``, generated as dataclasses generates
    ``__init__``: Python binds the keywords (so a missing or unknown name costs nothing to detect),
    each value takes an inline fast path when it already has the exact type, and otherwise goes
    through its `_converter`, which converts it or raises."""
    env, lines = {"_array": array_type}, []
    for i, p in enumerate(spec.params):
        if not p.name.isidentifier() or keyword.iskeyword(p.name) or p.name.startswith("_") or p.name in USED_NAMES:
            raise ValueError(f"kernel {expression}: parameter name {p.name!r} cannot be bound by keyword")
        dtype = DTYPES[binding.get(p.element, p.element)]
        env[f"_convert{i}"], env[f"_dtype{i}"], env[f"_make{i}"] = _converter(expression, p, binding, array_type), \
            dtype, dtype.type
        if p.pointer:
            lines.append(f"    if type({p.name}) is not _array or {p.name}.dtype is not _dtype{i}: "
                         f"{p.name} = _convert{i}({p.name})")
        elif dtype.kind == "i":
            info = np.iinfo(dtype)
            lines.append(f"    {p.name} = _make{i}({p.name}) if type({p.name}) is int and "
                         f"{info.min} <= {p.name} <= {info.max} else _convert{i}({p.name})")
        else:
            lines.append(f"    {p.name} = _make{i}({p.name}) if type({p.name}) is float else _convert{i}({p.name})")
    names = [p.name for p in spec.params]
    code = f"def bind(*, {', '.join(names)}):\n" + "\n".join(lines) + f"\n    return ({', '.join(names)},)\n"
    # named as a file of this folder (none exists): its frames are xdl's (`xdl.caller`)
    exec(compile(code, os.path.join(os.path.dirname(__file__), f"<bind {expression}>"), "exec"), env)  # noqa: S102
    return env["bind"]


def _converter(expression: str, param, binding: dict, array_type):
    """A function checking and converting one argument for ``param`` (kept lean: it runs per launch)."""
    element = binding.get(param.element, param.element)
    dtype, where = DTYPES[element], f"kernel {expression}: parameter {param.name!r}"
    if param.pointer:
        def pointer(value):
            if type(value) is not array_type and not isinstance(value, array_type):
                raise TypeError(f"{where} ({element}*) needs a device array, got {type(value).__name__}")
            if value.dtype != dtype:
                raise TypeError(f"{where} ({element}*) needs a {dtype} array, got {value.dtype}")
            return value

        return pointer
    make = dtype.type
    if dtype.kind == "i":
        low, high = int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)

        def integer(value):
            try:
                number = operator.index(value)
            except TypeError:
                raise TypeError(f"{where} ({element}) needs an integer, got {value!r}") from None
            if not low <= number <= high:
                raise TypeError(f"{where} ({element}) is out of range: {number}")
            return make(number)

        return integer

    def real(value):
        if type(value) is not float and (isinstance(value, bool) or not isinstance(value, REALS)):
            raise TypeError(f"{where} ({element}) needs a real number, got {value!r}")
        return make(value)

    return real


@functools.cache
def _module(file: str):
    cupy = importlib.import_module("cupy")
    source = SOURCES[file]
    return cupy.RawModule(code=source.text(), options=source.options(), name_expressions=source.name_expressions())


@functools.cache
def kernel(file: str, name: str, dtype, *template_args) -> Kernel:
    """The compiled instance ``name<C type of dtype, *template_args>`` of ``kernels/<file>``."""
    source = SOURCES[file]
    spec = source.kernels().get(name)
    if spec is None:
        raise KeyError(f"{file} defines no kernel {name!r}; it defines {', '.join(source.kernels())}")
    args = (C_TYPES[np.dtype(dtype)], *template_args)
    if args not in source.instances:
        raise KeyError(f"{spec.expression(args)} is not an instance compiled from {file} "
                       f"(instances: {', '.join(map(str, source.instances))})")
    cupy = importlib.import_module("cupy")
    return Kernel(spec, args, _module(file).get_function(spec.expression(args)), cupy.ndarray)
