"""Timing for the speed benchmarks: back-to-back calls between device synchronizations, and
PyTorch (the reference) on the backend's kind of device when it is installed."""

from __future__ import annotations

import statistics
import time


def time_call(fn, synchronize, min_time: float = 0.2, repeat: int = 7) -> float:
    """Median seconds per call of ``fn`` over ``repeat`` batches of back-to-back calls (so launch
    overhead counts), synchronizing the device around each batch."""
    return time_calls({None: (fn, synchronize)}, min_time, repeat)[None]


def time_calls(calls: dict, min_time: float = 0.2, repeat: int = 7) -> dict:
    """`time_call` of each ``name: (fn, synchronize)`` in ``calls``, their batches taken in turn
    (round 1 of each, then round 2, …): a machine that drifts (clocks, other load) during the
    measurement moves every implementation alike, so their ratios hold. {name: seconds}."""
    sizes = {name: _calls_per_batch(fn, synchronize, min_time / repeat) for name, (fn, synchronize) in calls.items()}
    samples = {name: [] for name in calls}
    for _ in range(repeat):
        for name, (fn, synchronize) in calls.items():
            synchronize()
            start = time.perf_counter()
            for _ in range(sizes[name]):
                fn()
            synchronize()
            samples[name].append((time.perf_counter() - start) / sizes[name])
    return {name: statistics.median(values) for name, values in samples.items()}


def _calls_per_batch(fn, synchronize, seconds: float) -> int:
    """How many back-to-back calls take about ``seconds`` (1 to 1000), after a warm-up call."""
    fn()
    synchronize()
    start = time.perf_counter()
    fn()
    synchronize()
    single = max(time.perf_counter() - start, 1e-6)
    return max(1, min(1000, int(seconds / single)))


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
