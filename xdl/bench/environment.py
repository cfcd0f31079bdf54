"""What produced a benchmark's figures — the one record every benchmark writes beside them
(`xdl bench optimizers`' results.json and results.md, `xdl bench kernels`' header and ``--json``,
``benchmarks/batched.py``): date and time, xdl, Python, NumPy and (where installed) CuPy and
PyTorch versions, the backend, its matrix-product precision and device, the CPU model and count,
the BLAS threads and the machine's load, and the operating system. A figure without these cannot
be compared with another.
"""

from __future__ import annotations

import datetime
import functools
import importlib.metadata
import os
import platform
from pathlib import Path

import numpy as np

import xdl


def checked_backend(parser):
    """The current backend, or a one-line usage error of ``parser`` (argparse's) naming why there is
    none — XDL_BACKEND=cupy on a machine without a GPU — as a benchmark script checks before any work."""
    try:
        return xdl.current_backend()
    except (ValueError, xdl.BackendError) as e:
        parser.error(str(e))


def checked_dataset(parser, name: str) -> None:
    """A one-line usage error of ``parser`` where the data set ``name`` cannot be loaded here (its
    package missing: scikit-learn for digits), as a benchmark script checks before any work."""
    try:
        xdl.datasets.check_available(name)
    except ImportError as e:  # (a traceback from inside the loader, after the script had started)
        parser.error(str(e))


def environment(backend) -> dict:
    """The facts about this process and machine that a benchmark's figures depend on (JSON-able).
    ``cupy`` and ``torch`` are None where not installed; they are looked up without importing them."""
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "xdl": xdl.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cupy": installed_version("cupy"),
        "torch": installed_version("torch"),
        "backend": backend.name,
        "precision": backend.precision,
        "device": backend.device_name(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "blas_threads": blas_threads(),
        "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,  # other work on the machine, 1 min
        "os": platform.platform(),
    }


def headline(env: dict) -> str:
    """One line of `environment`'s record, for the top of a table:

    >>> env = {"date": "2026-12-05T10:00:00+00:00", "xdl": "0.1.0", "python": "3.11.9", "numpy": "2.4.6",
    ...        "cupy": None, "torch": "2.11.0", "backend": "numpy", "precision": "float32", "device": "cpu",
    ...        "cpu": "AMD EPYC", "cpu_count": 2, "os": "Linux"}
    >>> print(headline(env).replace("; ", ";\\n"))
    2026-12-05T10:00:00+00:00 — xdl 0.1.0, backend numpy (float32 products) on cpu;
    CPU AMD EPYC × 2;
    Python 3.11.9, NumPy 2.4.6, PyTorch 2.11.0;
    Linux
    """
    libraries = [f"Python {env['python']}", f"NumPy {env['numpy']}"]
    libraries += [f"{name} {env[key]}" for key, name in (("cupy", "CuPy"), ("torch", "PyTorch")) if env.get(key)]
    machine = [f"{env['blas_threads']} BLAS threads" if env.get("blas_threads") else None,
               f"load {env['load']:.1f}" if env.get("load") is not None else None]
    machine = f" ({', '.join(m for m in machine if m)})" if any(machine) else ""
    return (f"{env['date']} — xdl {env['xdl']}, backend {env['backend']} ({env['precision']} products) on "
            f"{env['device']}; CPU {env['cpu']} × {env['cpu_count']}{machine}; {', '.join(libraries)}; {env['os']}")


def blas_threads() -> int | None:
    """The threads NumPy's BLAS runs a matrix product on (threadpoolctl's count, where it is
    installed; else the environment's OPENBLAS/MKL/OMP_NUM_THREADS; else None): what a CPU's
    product rates depend on, with the machine's load."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
            if os.environ.get(name, "").isdigit():
                return int(os.environ[name])
        return None
    counts = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return counts[0] if counts else None


@functools.cache
def installed_version(package: str) -> str | None:
    """The version of the distribution that provides the import name ``package`` (``cupy`` comes
    as cupy-cuda12x, cupy-cuda13x, …), or None where none is installed."""
    for distribution in importlib.metadata.packages_distributions().get(package, []):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


@functools.cache
def cpu_model() -> str:
    """The processor's model name ("AMD EPYC 7B13"): Linux's /proc/cpuinfo, else what `platform`
    knows (often only the architecture, "x86_64")."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
