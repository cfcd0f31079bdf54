"""Keeping freed host memory for reuse, as a device memory pool does: `keep_freed_memory`.

NumPy takes every array from the C library's ``malloc``. glibc serves a large block (above its mmap
threshold: 128 KiB at first, raised up to 32 MiB as such blocks are freed) by mapping fresh pages,
and returns them to the OS when it is freed; it also gives back the top of its heap once more
than the trim threshold is free there. A training step allocates and frees the same sizes every
step (activations, gradients, the evaluation pass's larger ones), so on the CPU each new array
then costs one page fault per 4 KiB page it touches. Measured on a 2-core machine (2026-12-04):
``xdl train``'s defaults took about 4,200 page faults per epoch and 30–42 ms per epoch, with the
settings below none and 17–23 ms; 16 stacked digits models (`fit_many`) 4,000 faults per epoch
and 14–23 ms of system time, with them 300 and 3–4 ms.

`keep_freed_memory` sets both thresholds once, so that freed blocks stay in the process for the
next step: what a training process wants, as CuPy's pool does for device memory, and what the
``xdl`` command does at its start. It is not done on import: a library does not change how its
host process manages memory unless asked.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (glibc's malloc.h)
MMAP_THRESHOLD = 32 << 20  # the largest glibc accepts on 64-bit: bigger arrays are still mapped and unmapped
TRIM_THRESHOLD = 256 << 20  # free heap kept at its top before memory is given back to the OS
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "LD_PRELOAD")
MALLOC_TUNABLES = "glibc.malloc."  # in GLIBC_TUNABLES, glibc's newer way to set the same


def user_chose() -> bool:
    """Whether the environment already says how malloc behaves (or puts another allocator in)."""
    return any(os.environ.get(name) for name in USER_SETTINGS) or MALLOC_TUNABLES in os.environ.get("GLIBC_TUNABLES", "")


def keep_freed_memory() -> bool:
    """Keep freed blocks up to `MMAP_THRESHOLD` in the heap and up to `TRIM_THRESHOLD` of free heap
    in the process. True when both are set; False on a C library without glibc's ``mallopt`` (nothing
    changed), when glibc refuses a value, or when the environment already chooses (glibc's
    ``MALLOC_*_`` variables or ``glibc.malloc.*`` tunables, or ``LD_PRELOAD``: another allocator,
    likely), which is left as the user set it."""
    if user_chose():
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    # the mmap threshold first: setting either one turns off glibc's dynamic adjustment of both
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _glibc_mallopt():
    """glibc's ``int mallopt(int, int)``, or None elsewhere (macOS, musl, Windows)."""
    if os.name != "posix":  # Windows: no glibc (and CDLL(None) is an error there)
        return None
    try:  # the C library this process runs on (no search: find_library would start ldconfig)
        libc = ctypes.CDLL(None)
        mallopt, version = libc.mallopt, libc.gnu_get_libc_version
    except (OSError, AttributeError):
        return None
    del version  # present only in glibc, whose mallopt takes the parameters above
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt
