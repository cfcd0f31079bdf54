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

from test_kernel_emulation import HOST_HAS_FMA

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("g++") is None or sys.platform != "linux",
                                reason="the stand-in's kernels and cuBLAS are built with g++ (Linux)")


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """Where the stand-in's kernels and cuBLAS are compiled, once for this module's runs (a minute or more)."""
    return tmp_path_factory.mktemp("fakecupy-build")


def run_over_the_stand_in(build, *command, **environment):
    path = os.pathsep.join(str(p) for p in (ROOT / "tests" / "fakecupy", ROOT, ROOT / "tests"))
    env = {**os.environ, "PYTHONPATH": path, "FAKECUPY_BUILD": str(build), **environment}
    env.pop("XDL_BACKEND", None)
    return subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)


def test_every_gpu_test_passes_over_the_cupy_stand_in(build):
    result = run_over_the_stand_in(build, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider")
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed[1]) >= 500, summary  # ran on the stand-in, not skipped for want of a GPU


def test_the_softmax_kernel_tests_pass_with_a_gpus_rounding(build):
    """The kernels built with a GPU's rounding (FAKECUPY_DEVICE_MATH: FMA, CUDA's exp and log off by up to their
    documented ulps; seed 1 moves logf(4) by one): the loss's tests ask what CUDA's logf gives, not NumPy's bits."""
    if not HOST_HAS_FMA:
        pytest.skip("device math fuses a·b + c with the host's FMA instructions")
    result = run_over_the_stand_in(build, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                                   "tests/test_kernels.py", "-k", "softmax", FAKECUPY_DEVICE_MATH="1")
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed[1]) >= 11, summary  # ran on the stand-in, not skipped for want of a GPU


def test_the_stand_in_refuses_what_it_does_not_model(build):
    """NumPy's API passes through only where CuPy has the same: a name CuPy lacks would pass here and
    fail on a GPU, so any name not on the stand-in's lists is refused."""
    script = ("import cupy\n"
              "for get in (lambda: cupy.percentile, lambda: cupy.zeros(3).ptp, lambda: cupy.random.rand,\n"
              "            lambda: cupy.random.default_rng(0).permutation):\n"
              "    try:\n"
              "        get()\n"
              "    except AttributeError as e:\n"
              "        print(e)\n")
    result = run_over_the_stand_in(build, "-c", script)
    assert result.returncode == 0, result.stderr
    said = result.stdout.splitlines()
    assert len(said) == 4 and all("is not modelled by the CuPy stand-in" in line for line in said), said


def test_the_stand_in_refuses_what_cupy_refuses(build):
    """Where CuPy 14 is stricter than NumPy, so is the stand-in: a ufunc takes device arrays and scalars
    only (a NumPy array, 0-d too, or a list is a TypeError; a comparison reads a 0-d NumPy array as its
    value), a kernel's scalar goes as CuPy marshals it (a Python int as 8 bytes: into an ``int`` parameter
    the GPU reads garbage), NumPy's functions on device arrays are CuPy's of the same name, and repr reads
    the device array (refused while a stream captures); a NumPy array written into a basic index's view is
    CuPy's `fill`, which takes scalars only."""
    script = """
import numpy as np
import cupy
from xdl.cuda.kernels import _module

def refused(f, error=TypeError):
    try:
        f()
    except error as e:
        return type(e).__name__
    return "accepted"

a = cupy.arange(4.0)
said = [refused(lambda: a + np.asarray(1.0)), refused(lambda: np.asarray(1.0) * a),
        refused(lambda: cupy.maximum(a, [0.0, 1.0, 2.0, 3.0])), refused(lambda: cupy.maximum(a, np.ones(4))),
        refused(lambda: cupy.exp(a, out=np.empty(4))), (a > np.asarray(1.5)).get().tolist(),
        (a + np.float32(1) + 1).dtype.name]
relu = _module("activation.cu").get_function("relu_forward<float>")
x, y = cupy.ones(5, dtype=np.float32), cupy.zeros(5, dtype=np.float32)
said.append(refused(lambda: relu((1,), (32,), (x, y, np.int32(5)))))
said.append(refused(lambda: relu((1,), (32,), (x, y, 5.0))))
relu((1,), (32,), (x, y, 5))  # a Python int: a long long, as the parameter is
said.append(y.get().tolist())
said.append(refused(lambda: np.median(a), AttributeError))
said.append(refused(lambda: a.__setitem__(slice(0, 2), np.ones(2)), ValueError))  # CuPy's fill of the view
stream = cupy.cuda.Stream(non_blocking=True)
with stream:
    stream.begin_capture()
    said.append(refused(lambda: repr(a), cupy.cuda.runtime.CUDARuntimeError))
    stream.end_capture()
print(said)
"""
    result = run_over_the_stand_in(build, "-c", script)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(["TypeError"] * 5 + [[False, False, True, True], "float64", "TypeError",
                                         "TypeError", [1.0] * 5, "AttributeError", "ValueError",
                                         "CUDARuntimeError"])


def test_the_readmes_captured_step_example_runs_over_the_stand_in(build):
    """README's `xdl.cuda_graph` loop counts the dropout key's step with ``xp.add(steps, 1, out=steps)``
    (as xdl/bench/steps.py does): CuPy has the ufunc, and the stand-in refused it, so that example — a
    user's own step captured and replayed with new batches — could not run off a GPU."""
    readme = (ROOT / "README.md").read_text()
    example = next(code for code in re.findall(r"```python\n(.*?)```", readme, re.S) if "xdl.cuda_graph(" in code)
    script = f"import xdl\nxdl.use('cupy')\nassert xdl.current_backend().supports_graphs\n{example}"
    result = run_over_the_stand_in(build, "-c", script)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("16 steps, last cost "), result.stdout  # 1024 examples, 64 a batch


def test_the_memory_check_frees_poisons_and_hands_out_blocks_and_refuses_dangling_cublas_pointers(build):
    """`cupy.fake_memory_check`: a freed device block is poisoned and handed to the next allocation of its size
    ("reuse", as CuPy's pool does; "quarantine": never), a view of a temporary keeps its block, and a cuBLAS
    call whose workspace was freed and handed to another array since `cublasSetWorkspace_v2`, or whose operand
    runs past its allocation, is refused (on a GPU it writes another array's memory without a word)."""
    script = """
import ctypes
import numpy as np
import cupy
from xdl.cuda.cublas import Cublas

said = []
with cupy.fake_memory_check("reuse"):
    a = cupy.ones(100, dtype=np.float32)  # 400 bytes: a block of 512
    view = (a * 2)[10:20]  # a view of a temporary
    address = a.data.ptr
    del a
    b = cupy.empty(120, dtype=np.float32)  # 480 bytes: the 512-byte block just freed, poisoned
    said += [b.data.ptr == address, bool(np.isnan(b.get()[:100]).all()), view.get().tolist() == [2.0] * 10]
    handle = Cublas(cupy, cupy.cuda.get_current_stream().ptr, lambda x: x.data.ptr)
    x, w, out = (cupy.ones(shape, dtype=np.float32) for shape in ((4, 3), (3, 2), (4, 2)))
    said.append(handle.gemm(x, w, out) and out.get().tolist() == [[3.0, 3.0]] * 4)
    one, zero = ctypes.c_float(1.0), ctypes.c_float(0.0)  # C = 2 x 8 from a 4 x 2 array: past its end
    said.append(handle.lib.cublasSgemm_v2(handle.handle, 0, 0, 2, 8, 3, ctypes.byref(one), w.data.ptr, 2,
                                          x.data.ptr, 3, ctypes.byref(zero), out.data.ptr, 2))
    said.append("runs past its allocation" in cupy.fake_memory_errors()[-1])
    handle.workspace = None  # freed under the handle: its block goes to the next array of its size
    taken = cupy.empty(32 << 20, dtype=np.uint8)
    try:
        handle.gemm(x, w, out)
        said.append("accepted")
    except RuntimeError as e:
        said.append(str(e))
    said.append(cupy.fake_memory_errors()[-1].split(": ", 2)[-1])
with cupy.fake_memory_check("quarantine"):
    c = cupy.ones(100, dtype=np.float32)
    address = c.data.ptr
    del c
    said.append(cupy.empty(100, dtype=np.float32).data.ptr != address)
print(said)
"""
    result = run_over_the_stand_in(build, "-c", script)
    assert result.returncode == 0, result.stderr[-3000:]
    workspace = "was freed and handed to another array since cublasSetWorkspace_v2"
    assert result.stdout.strip().startswith(str([True, True, True, True, 14, True,
                                                 "cublas gemm failed with cublasStatus_t 14"])[:-1]), result.stdout
    assert workspace in result.stdout and result.stdout.strip().endswith("True]"), result.stdout


def test_a_kernel_writing_outside_its_arguments_is_refused_naming_the_argument_and_how_far(build):
    """A raw kernel gets its arrays' data pointers only: one that writes past an argument's end (here relu_forward
    given n larger than its output, a slice of a larger buffer) overwrites the neighbouring memory on a GPU, and
    wrote the rest of the buffer here without a word. Each argument is now a private copy framed by canary: the
    launch raises, naming the kernel, the argument and how far past its end it wrote, and the buffer is unchanged;
    past the end of a padded row the kernel lands in the gap; a reversed view is refused before the launch; a
    read past the end reads NaN; in-place (the same array twice) and a graph's replay still work."""
    script = """
import numpy as np
import cupy
from xdl.cuda.kernels import _module

def said(f):
    try:
        f()
    except (cupy.cuda.runtime.CUDARuntimeError, ValueError) as e:
        return str(e)
    return "accepted"

module = _module("activation.cu")
for dtype, ctype in ((np.float32, "float"), (np.float64, "double")):
    relu = module.get_function(f"relu_forward<{ctype}>")
    for size in (1, 5, 64):
        for extra in (1, 2, 7):
            x, buffer = cupy.ones(size + extra, dtype=dtype), cupy.zeros(size + 100, dtype=dtype)
            message = said(lambda: relu((2,), (32,), (x, buffer[:size], size + extra)))
            print(f"argument 1 (y, {np.dtype(dtype).name}[{size}]): up to {extra} element(s) "
                  f"({extra * np.dtype(dtype).itemsize} bytes) past its end" in message,
                  buffer[size:].get().tolist() == [0.0] * 100, buffer[:size].get().tolist() == [1.0] * size)
relu = module.get_function("relu_forward<float>")
x, rows = cupy.ones(16, dtype=np.float32), cupy.zeros((2, 8), dtype=np.float32)
print("gaps between its rows" in said(lambda: relu((1,), (32,), (x, rows[:, :5], 10))), rows[:, 5:].get().sum())
print(said(lambda: relu((1,), (32,), (x, cupy.zeros(6, dtype=np.float32)[::-1][:5], 5))))
y = cupy.zeros(5, dtype=np.float32)
relu((1,), (32,), (x[:4], y, 5))  # x read one past its end
print(np.isnan(y.get()).tolist())
w = cupy.asarray(np.array([-1.0, 2.0, -3.0], dtype=np.float32))
relu((1,), (32,), (w, w, 3))
print(w.get().tolist())
stream = cupy.cuda.Stream(non_blocking=True)
with stream:
    stream.begin_capture()
    relu((1,), (32,), (w, y[:3], 3))
    graph = stream.end_capture()
w[...] = cupy.asarray(np.array([4.0, -5.0, 6.0], dtype=np.float32))
graph.launch(stream)
print(y[:3].get().tolist())
"""
    result = run_over_the_stand_in(build, "-c", script)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[:18] == ["True True True"] * 18, lines
    assert lines[18:] == [
        "True 0.0",
        "fake cupy: relu_forward<float>: argument 1 (y), a float32[5] view with strides (-4,): its last axis has a "
        "stride of -4 bytes, not its item size (4); a raw kernel gets its data pointer only (pass "
        "xp.ascontiguousarray of it)",
        "[False, False, False, False, True]", "[0.0, 2.0, 0.0]", "[4.0, 0.0, 6.0]"], lines
