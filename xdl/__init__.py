"""xdl: improving deep neural networks, one model code on NumPy (CPU) and CuPy (GPU).

>>> import xdl
>>> w = xdl.tensor([0.0], requires_grad=True)
>>> loss = ((w - 3.0) ** 2).sum()
>>> loss.backward()
>>> float(xdl.to_numpy(w.grad)[0])
-6.0
"""

from xdl.backend import Backend, BackendError, current_backend, seed, to_numpy, use
# tensor before function: tensor.py imports the functions, which build on xdl.function.
from xdl.tensor import Parameter, Tensor, from_dlpack, is_grad_enabled, no_grad, tensor  # isort: skip
from xdl.function import Function  # isort: skip
from xdl.gradcheck import gradcheck
from xdl import data, datasets, ewa, functions, init, losses, nn, optim
from xdl.serialization import load, save
from xdl.train import History, Trainer
from xdl.diagnose import diagnose

__version__ = "0.1.0"

__all__ = [
    "Backend", "BackendError", "History", "Trainer", "data", "datasets", "diagnose", "ewa", "optim", "Function", "Parameter", "Tensor", "current_backend", "from_dlpack",
    "functions", "gradcheck", "init", "is_grad_enabled", "load", "losses", "nn", "no_grad", "save", "seed", "tensor",
    "to_numpy", "use",
]
