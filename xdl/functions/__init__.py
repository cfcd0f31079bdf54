"""Differentiable functions on tensors, each declared once with `op` (see `xdl.functions.registry`).

``xdl.functions.<name>`` and ``xdl.<name>`` are the public functions of the declarations in
`REGISTRY` (each declaration exports its function to both modules and installs its Tensor
methods and operators). The
modules are grouped by kind and named so that no module hides a function of the same name.
"""

from xdl.functions import (  # noqa: F401 - importing a module runs its declarations
    arithmetic,
    batchnorm,
    classification,
    elementwise,
    penalties,
    products,
    reductions,
    regression,
    regularization,
    shapes,
    stacked,
)
from xdl.functions.registry import REGISTRY, Check, OpSpec, op, star_exports


__all__ = ["REGISTRY", "Check", "OpSpec", "op", *star_exports()]
