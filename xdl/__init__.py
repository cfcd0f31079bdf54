"""xdl: improving deep neural networks, one model code on NumPy (CPU) and CuPy (GPU).

>>> import xdl
>>> w = xdl.tensor([0.0], requires_grad=True)
>>> loss = ((w - 3.0) ** 2).sum()
>>> loss.backward()
>>> float(xdl.to_numpy(w.grad)[0])
-6.0

Every differentiable function is also here: ``xdl.tanh(w)``, ``xdl.matmul(a, b)``, … (each
declaration in `xdl.functions` exports its function to this module too).
"""

from xdl import data, datasets, ewa, functions, init, losses, nn, optim
from xdl.backend import (Backend, BackendError, CaptureError, CupyBackend, NumpyBackend, current_backend, seed,
                         use)
from xdl.checking import is_gradient_checking
from xdl.diagnose import diagnose
from xdl.function import Function
from xdl.gradcheck import gradcheck
from xdl.graph import CudaGraph, cuda_graph
from xdl.serialization import load, save
from xdl.tensor import Parameter, Tensor, enable_grad, from_dlpack, is_grad_enabled, no_grad, tensor, to_numpy
from xdl.train import History, Trainer

__version__ = "0.1.0"

# imported on first use (``xdl.tune.tune(...)`` after ``import xdl``, as ``scipy.stats``): they are
# larger, or need extras (Optuna, matplotlib, scikit-learn), and training does without them
LAZY_SUBMODULES = ("bench", "config", "hostmemory", "ops", "plots", "sklearn", "tune")


# PyTorch's torch names of what is here under another name (`__getattr__`)
PYTORCH_NAMES = {"manual_seed": "xdl.seed(n) (weights, shuffles and dropout masks drawn from it)",
                 # (torch.from_numpy shares the array's memory: xdl.tensor(array) copies it)
                 "from_numpy": "xdl.tensor(array, copy=False) (sharing a NumPy array's memory on the CPU)"}


def __getattr__(name: str):
    if name in LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"xdl.{name}")
    from xdl.tensor import missing_module_attribute

    missing_module_attribute("xdl", name, PYTORCH_NAMES, "torch")


__all__ = [
    "Backend", "BackendError", "CaptureError", "CudaGraph", "CupyBackend", "Function", "History", "NumpyBackend", "Parameter", "Tensor",
    "Trainer", "cuda_graph", "current_backend", "data", "datasets", "diagnose", "enable_grad", "ewa", "from_dlpack", "functions", "gradcheck",
    "init", "is_grad_enabled", "is_gradient_checking", "load", "losses", "nn", "no_grad", "optim", "save", "seed", "tensor", "to_numpy",
    "use", *functions.star_exports(),
]
