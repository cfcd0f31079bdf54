"""xdl's GPU-only Python paths on the CPU: every `gpu` test runs over tests/fakecupy, a stand-in for CuPy
whose kernels are the emulator's (tests/test_kernel_emulation.py), whose cuBLAS is a naive GEMM of its own
and whose graph capture records and replays (tests/fakecupy/README.md says what it models and what not).
A change that breaks the cupy path, the captured step or a kernel launch fails here, not first on a lent
GPU. By hand: ``PYTHONPATH=tests/fakecupy:.:tests pytest -m gpu``."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("g++") is None or sys.platform != "linux",
                                reason="the stand-in's kernels and cuBLAS are built with g++ (Linux)")


def run_over_the_stand_in(tmp_path, *command):
    path = os.pathsep.join(str(p) for p in (ROOT / "tests" / "fakecupy", ROOT, ROOT / "tests"))
    env = {**os.environ, "PYTHONPATH": path, "FAKECUPY_BUILD": str(tmp_path)}
    env.pop("XDL_BACKEND", None)
    return subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)


def test_every_gpu_test_passes_over_the_cupy_stand_in(tmp_path):
    result = run_over_the_stand_in(tmp_path, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider")
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed[1]) >= 500, summary  # ran on the stand-in, not skipped for want of a GPU


def test_the_stand_in_refuses_what_it_does_not_model(tmp_path):
    """NumPy's API passes through only where CuPy has the same: a name CuPy lacks would pass here and
    fail on a GPU, so any name not on the stand-in's lists is refused."""
    script = ("import cupy\n"
              "for get in (lambda: cupy.percentile, lambda: cupy.zeros(3).ptp, lambda: cupy.random.rand,\n"
              "            lambda: cupy.random.default_rng(0).permutation):\n"
              "    try:\n"
              "        get()\n"
              "    except AttributeError as e:\n"
              "        print(e)\n")
    result = run_over_the_stand_in(tmp_path, "-c", script)
    assert result.returncode == 0, result.stderr
    said = result.stdout.splitlines()
    assert len(said) == 4 and all("is not modelled by the CuPy stand-in" in line for line in said), said
