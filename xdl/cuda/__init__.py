"""The GPU side of the backend: CUDA kernel sources and their bindings, and `CupyOps`.

* `xdl.cuda.source` — each ``kernels/*.cu`` file's instances and defines; kernel signatures parsed
  from the source (no CUDA needed: the CPU test suite checks them, and compiles them with nvcc
  where it is installed).
* `xdl.cuda.kernels` — compiled instances (NVRTC via CuPy, on first use) launched by parameter name.
* `xdl.cuda.ops` — `CupyOps`, the CUDA versions of the `xdl.ops` references.

With `xdl.backend` this is the only code that knows it talks to CuPy; nothing here imports cupy or
compiles anything at import.
"""

from xdl.cuda.ops import CupyOps
from xdl.cuda.source import kernel_dir

__all__ = ["CupyOps", "kernel_dir"]
