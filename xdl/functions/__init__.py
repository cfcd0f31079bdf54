"""Differentiable functions on tensors, each declared once with `op` (see `xdl.functions.registry`).

``xdl.functions.<name>`` and ``xdl.<name>`` are the public functions of the declarations in
`REGISTRY`; their Tensor methods and operators are installed by the same declarations. The
modules are grouped by kind and named so that no module hides a function of the same name.
"""

from xdl.functions import (  # noqa: F401 - importing a module runs its declarations
    arithmetic,
    batchnorm,
    classification,
    elementwise,
    products,
    reductions,
    regularization,
    shapes,
)
from xdl.functions.registry import REGISTRY, Check, OpSpec, op


def __getattr__(name: str):
    spec = REGISTRY.get(name)
    if spec is None:
        raise AttributeError(f"module 'xdl.functions' has no attribute {name!r}")
    return spec.fn


def __dir__():
    return sorted({*globals(), *REGISTRY})


__all__ = ["REGISTRY", "Check", "OpSpec", "op", *REGISTRY]
