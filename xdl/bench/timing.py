"""Timing for the speed benchmarks: back-to-back calls between device synchronizations, and
PyTorch (the reference) on the backend's kind of device when it is installed."""

from __future__ import annotations

import statistics
import time


def time_call(fn, synchronize, min_time: float = 0.2, repeat: int = 7) -> float:
    """Median seconds per call of ``fn`` over ``repeat`` batches of back-to-back calls (so launch
    overhead counts), synchronizing the device around each batch."""
    fn()
    synchronize()
    start = time.perf_counter()
    fn()
    synchronize()
    single = max(time.perf_counter() - start, 1e-6)
    calls = max(1, min(1000, int(min_time / repeat / single)))
    samples = []
    for _ in range(repeat):
        synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        synchronize()
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def faster(baseline: float, seconds: float, digits: int = 2) -> str:
    """``seconds`` against the ``baseline``'s: "2.00× faster" or "1.40× slower" (never "0.71× faster")."""
    ratio = baseline / seconds
    return f"{ratio:.{digits}f}× faster" if ratio >= 1 else f"{1 / ratio:.{digits}f}× slower"


def torch_on(backend):
    """(torch, device, synchronize) on the backend's kind of device, or Nones without PyTorch."""
    try:
        import torch
    except ImportError:
        return None, None, None
    if backend.device_type == "cuda":
        if not torch.cuda.is_available():
            return None, None, None
        return torch, "cuda", torch.cuda.synchronize
    return torch, backend.device_type, lambda: None
