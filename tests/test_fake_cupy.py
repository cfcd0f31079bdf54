"""xdl's GPU-only Python paths on the CPU: the `gpu` tests of captured steps (test_graph.py: CUDA-graph
capture and replay of a Trainer's step, of `fit_many`'s, of a user's own) and of training on cupy run over
tests/fakecupy, a stand-in for CuPy whose kernels are the emulator's (tests/test_kernel_emulation.py) and
whose cuBLAS is a naive GEMM of its own (tests/fakecupy/README.md says what it models and what not). A
change that breaks the captured path fails here, not first on a lent GPU. Every `gpu` test runs over it
with ``PYTHONPATH=tests/fakecupy:.:tests pytest -m gpu`` (tens of minutes on 2 cores)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = ("tests/test_graph.py", "tests/test_training.py", "tests/test_many.py")


@pytest.mark.skipif(shutil.which("g++") is None or sys.platform != "linux",
                    reason="the stand-in's kernels and cuBLAS are built with g++ (Linux)")
def test_the_gpu_tests_of_captured_and_cupy_training_pass_over_the_cupy_stand_in(tmp_path):
    path = os.pathsep.join(str(p) for p in (ROOT / "tests" / "fakecupy", ROOT, ROOT / "tests"))
    env = {**os.environ, "PYTHONPATH": path, "FAKECUPY_BUILD": str(tmp_path)}
    env.pop("XDL_BACKEND", None)
    result = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", *FILES],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    # ran on the stand-in, not skipped for want of a GPU
    assert passed and int(passed[1]) >= 30 and "skipped" not in summary, summary
