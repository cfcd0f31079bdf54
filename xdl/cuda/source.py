"""The kernel sources and what their bindings are made from, without CUDA.

Each ``kernels/*.cu`` file is one `Source`: the file, its template instances (one tuple of
template arguments per compiled instance, the same for every kernel of the file) and the
compile-time defines the host launches with (block sizes). Everything else is parsed from the
source itself: every ``__global__`` template function is a kernel, and its parameter list (names
and C types) is what a launch must pass, by name. From that one spec come the NVRTC name
expressions (``bn_stats<float, 4>``), the compiler options, and, for ``nvcc``, a translation unit
with every instance explicitly instantiated — nothing is written twice.

>>> spec = SOURCES["optim.cu"].kernels()["sgd_update"]
>>> [(p.name, p.ctype) for p in spec.params][:3], spec.template
([('p', 'T*'), ('g', 'T*'), ('n', 'long long')], ('T',))
>>> SOURCES["optim.cu"].name_expressions()[:2]
['sgd_update<float>', 'sgd_update<double>']
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

COMPILE_OPTIONS = ("-std=c++17",)
DTYPES = {"float": np.dtype(np.float32), "double": np.dtype(np.float64), "int": np.dtype(np.int32),
          "long long": np.dtype(np.int64)}  # C type → NumPy/CuPy dtype
C_TYPES = {dtype: name for name, dtype in DTYPES.items()}

_KERNEL = re.compile(r"template\s*<([^>]*)>\s*__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?"
                     r"(\w+)\s*\(([^)]*)\)\s*\{")


@dataclass(frozen=True)
class Param:
    """One kernel parameter: ``name`` and its C type ``ctype`` without qualifiers ("T*", "double")."""

    name: str
    ctype: str
    const: bool = False

    @property
    def pointer(self) -> bool:
        return self.ctype.endswith("*")

    @property
    def element(self) -> str:
        """The pointed-to type of a pointer, or the type of a scalar."""
        return self.ctype.rstrip("*")

    def declaration(self, binding: dict) -> str:
        """The C type with template parameters replaced by ``binding``'s arguments (``const float*``)."""
        element = str(binding.get(self.element, self.element))
        return ("const " if self.const else "") + element + ("*" if self.pointer else "")


@dataclass(frozen=True)
class KernelSpec:
    """A ``__global__`` template function as the source declares it."""

    name: str
    template: tuple[str, ...]  # template parameter names ("T", "V")
    params: tuple[Param, ...]

    def expression(self, args) -> str:
        """The C++ name of one instance: ``bn_stats<float, 4>``."""
        return f"{self.name}<{', '.join(map(str, args))}>"


def parse_kernels(text: str, filename: str = "<source>") -> dict[str, KernelSpec]:
    """Every ``template <...> __global__ void name(params) {`` definition in ``text``."""
    kernels = {}
    for match in _KERNEL.finditer(_strip_comments(text)):
        template = tuple(part.split()[-1] for part in match.group(1).split(","))
        name = match.group(2)
        params = tuple(_parse_param(p, name, filename, template) for p in match.group(3).split(","))
        kernels[name] = KernelSpec(name, template, params)
    return kernels


def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.S)


def _parse_param(text: str, kernel: str, filename: str, template) -> Param:
    words = [w for w in text.replace("*", " * ").split() if w != "__restrict__"]
    const, stars = "const" in words, words.count("*")
    words = [w for w in words if w not in ("const", "*")]
    if len(words) < 2:
        raise ValueError(f"{filename}: cannot read parameter {text.strip()!r} of kernel {kernel}")
    name, element = words[-1], " ".join(words[:-1])
    if stars > 1 or (element not in DTYPES and element not in template):
        raise ValueError(f"{filename}: kernel {kernel}: parameter {name!r} has type {text.strip()!r}; bindings know "
                         f"{', '.join(DTYPES)}, the template's types, and single pointers to them")
    return Param(name, element + "*" * stars, const)


@dataclass(frozen=True)
class Source:
    """One ``kernels/<file>``: its template instances and the defines it is compiled with."""

    file: str
    instances: tuple[tuple, ...]
    defines: dict = field(default_factory=dict)

    def text(self) -> str:
        return (kernel_dir() / self.file).read_text(encoding="utf-8")  # (comments hold formulas: σ, √)

    def kernels(self) -> dict[str, KernelSpec]:
        return _parsed(self.file, self.text())

    def options(self) -> tuple[str, ...]:
        return (*COMPILE_OPTIONS, *(f"-D{name}={value}" for name, value in self.defines.items()))

    def name_expressions(self) -> list[str]:
        return [k.expression(args) for k in self.kernels().values() for args in self.instances]

    def translation_unit(self, include_path) -> str:
        """C++ for ``nvcc`` (with `options`): the source and every instance explicitly instantiated."""
        lines = [f'#include "{include_path}"']
        for k in self.kernels().values():
            for args in self.instances:
                binding = dict(zip(k.template, args))
                params = ", ".join(p.declaration(binding) for p in k.params)
                lines.append(f"template __global__ void {k.expression(args)}({params});")
        return "\n".join(lines) + "\n"


@functools.cache
def _parsed(file: str, text: str) -> dict[str, KernelSpec]:
    return parse_kernels(text, file)


# Every kernel of a file takes the same template parameters: (T) for activation.cu, optim.cu, penalty.cu and
# random.cu, (T, V)
# for batchnorm.cu, V being the features per thread (16 bytes' worth, or 1 for unaligned rows).
SOURCES = {
    "activation.cu": Source("activation.cu", instances=(("float",), ("double",)), defines={"LOSS_THREADS": 256}),
    "optim.cu": Source("optim.cu", instances=(("float",), ("double",))),
    "random.cu": Source("random.cu", instances=(("float",), ("double",))),
    "penalty.cu": Source("penalty.cu", instances=(("float",), ("double",)), defines={"THREADS": 256}),
    "batchnorm.cu": Source("batchnorm.cu", instances=(("float", 1), ("float", 4), ("double", 1), ("double", 2)),
                           defines={"BLOCK_X": 32, "BLOCK_Y": 8, "ROW_GROUP": 8, "OUT_DGAMMA": 1, "OUT_DBETA": 2}),
}


def kernel_dir() -> Path:
    """``xdl/_kernels`` inside an installed wheel, else ``kernels/`` of a source checkout."""
    packaged = importlib.resources.files("xdl") / "_kernels"
    if packaged.is_dir():
        return Path(str(packaged))
    source = Path(__file__).resolve().parents[2] / "kernels"
    if source.is_dir():
        return source
    raise FileNotFoundError(f"CUDA kernel sources not found in {packaged} or {source}")
