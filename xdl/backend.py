"""The array shim: one `Backend` per array library, NumPy on the CPU or CuPy on an NVIDIA GPU.

This is the only module that imports cupy (the kernel loader, `xdl.cuda`, is the other place
that knows about it). Model, layer and optimizer code asks for ``current_backend().xp`` and writes
against the API NumPy 2 and CuPy 14 share.

Selection, in order of precedence:

* ``xdl.use("numpy" | "cupy" | "auto")`` — sets the backend now; also a context manager that
  restores the previous one on exit::

      with xdl.use("numpy"):
          x = xdl.tensor([1.0, 2.0])

* the environment variable ``XDL_BACKEND`` (read when the first backend is needed),
* ``auto`` (the default): cupy if it imports *and* a CUDA device answers, else numpy.

Asking for cupy explicitly where it cannot run raises `BackendError` with a one-line reason.
Importing xdl never imports cupy: the probe runs on first use.
"""

from __future__ import annotations

import importlib
import os

import numpy as np

BACKEND_NAMES = ("numpy", "cupy", "auto")


class BackendError(RuntimeError):
    """The requested array backend cannot be used here (the message says why)."""


class Backend:
    """An array library plus what xdl needs from it.

    Attributes
    ----------
    name : str
        ``"numpy"`` or ``"cupy"``.
    xp : module
        The array module (``numpy`` or ``cupy``).
    rng : Generator
        A seeded random generator living on this backend's device (dropout masks, noise).
    """

    def __init__(self, name: str, xp, seed: int | None = None):
        self.name = name
        self.xp = xp
        self.rng = xp.random.default_rng(seed)
        self._ops = None

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device_name()!r})"

    # -- arrays ---------------------------------------------------------------------------
    def asarray(self, data, dtype=None):
        """``data`` as an array of this backend (no copy when it already is one)."""
        return self.xp.asarray(data, dtype=dtype)

    def to_numpy(self, array) -> np.ndarray:
        """A NumPy copy (or view, on the CPU) of ``array``."""
        if self.name == "cupy":
            return array.get()
        return np.asarray(array)

    def owns(self, array) -> bool:
        """Whether ``array`` is an array of this backend."""
        return isinstance(array, self.xp.ndarray)

    def seed(self, seed: int | None) -> None:
        """Reseed this backend's generator."""
        self.rng = self.xp.random.default_rng(seed)

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on the CPU); use it before reading a host clock."""
        if self.name == "cupy":
            self.xp.cuda.get_current_stream().synchronize()

    def device_name(self) -> str:
        """A human-readable name of the device arrays live on."""
        if self.name == "cupy":
            dev = self.xp.cuda.Device()
            props = self.xp.cuda.runtime.getDeviceProperties(dev.id)
            name = props["name"]
            return f"cuda:{dev.id} ({name.decode() if isinstance(name, bytes) else name})"
        return "cpu"

    def scatter_add(self, target, index, values) -> None:
        """``target[index] += values`` with repeated indices accumulated (unbuffered)."""
        if self.name == "cupy":
            importlib.import_module("cupyx").scatter_add(target, index, values)
        else:
            np.add.at(target, index, values)

    # -- fused ops ------------------------------------------------------------------------
    @property
    def ops(self):
        """The fused operations: NumPy references on the CPU, CUDA kernels on the GPU.

        Built on first use, so nothing compiles at import.
        """
        if self._ops is None:
            if self.name == "cupy":
                from xdl.cuda import CupyOps

                self._ops = CupyOps(self)
            else:
                from xdl.ops import NumpyOps

                self._ops = NumpyOps(self)
        return self._ops


_backends: dict[str, Backend] = {}
_current: Backend | None = None
_seed: int | None = None


def _cupy_or_reason():
    """Import cupy and check that a CUDA device answers; return (module, None) or (None, reason)."""
    try:
        cupy = importlib.import_module("cupy")
    except Exception as exc:  # ImportError, or a broken CUDA install raising on import
        return None, f"cupy is not importable ({type(exc).__name__}: {exc}); install xdl[cuda12] or xdl[cuda13]"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"no CUDA device answers ({type(exc).__name__}: {exc})"
    if count < 1:
        return None, "no CUDA device found (getDeviceCount() == 0)"
    return cupy, None


def get_backend(name: str) -> Backend:
    """The `Backend` called ``name`` ("numpy", "cupy" or "auto"), created on first use."""
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKEND_NAMES)}")
    if name == "auto":
        name = "cupy" if "cupy" in _backends or _cupy_or_reason()[0] is not None else "numpy"
    if name not in _backends:
        if name == "cupy":
            cupy, reason = _cupy_or_reason()
            if cupy is None:
                raise BackendError(f"backend 'cupy' is unavailable: {reason}")
            _backends[name] = Backend("cupy", cupy, _seed)
        else:
            _backends[name] = Backend("numpy", np, _seed)
    return _backends[name]


def current_backend() -> Backend:
    """The backend new tensors are created on."""
    global _current
    if _current is None:
        env = os.environ.get("XDL_BACKEND", "auto").strip().lower() or "auto"
        if env not in BACKEND_NAMES:
            raise ValueError(f"XDL_BACKEND={env!r} is not a backend; expected one of {', '.join(BACKEND_NAMES)}")
        _current = get_backend(env)
    return _current


class use:
    """Switch the current backend: ``xdl.use("numpy")`` now, or ``with xdl.use("cupy"): ...``.

    Used as a context manager it restores the previous backend on exit.
    """

    def __init__(self, name: str):
        global _current
        self._previous = _current
        self.backend = get_backend(name)
        _current = self.backend

    def __enter__(self) -> Backend:
        return self.backend

    def __exit__(self, *exc) -> None:
        global _current
        _current = self._previous


def seed(n: int | None) -> None:
    """Make runs repeatable: seeds the host generator used for initialization and shuffling,
    and every backend's device generator (dropout masks, noise)."""
    global _seed, _host_rng
    _seed = n
    _host_rng = np.random.default_rng(n)
    for backend in _backends.values():
        backend.seed(n)


_host_rng = np.random.default_rng()


def host_rng() -> np.random.Generator:
    """The seeded host generator: weights are drawn here, so a seed gives the same initial
    weights on every backend."""
    return _host_rng


def backend_of(array) -> Backend:
    """The backend an array belongs to (numpy, or cupy if cupy is loaded and owns it)."""
    if isinstance(array, np.ndarray | np.generic):
        return get_backend("numpy")
    cupy = _backends.get("cupy")
    if cupy is not None and cupy.owns(array):
        return cupy
    raise TypeError(f"expected a numpy or cupy array, got {type(array).__name__}")


def to_numpy(x) -> np.ndarray:
    """A NumPy array from an xdl Tensor, a cupy array or anything array-like."""
    from xdl.tensor import Tensor

    data = x.data if isinstance(x, Tensor) else x
    if isinstance(data, np.ndarray | np.generic):
        return np.asarray(data)
    cupy = _backends.get("cupy")
    if cupy is not None and cupy.owns(data):
        return data.get()
    return np.asarray(data)
