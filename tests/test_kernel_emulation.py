"""The CUDA kernels executed on the CPU against their NumPy references, without a GPU.

Each kernels/*.cu file is compiled as host C++ with g++ and tests/cuda_emulation.h (CUDA's built-ins: blocks
one after another, the threads of a block as fibers meeting at every __syncthreads and warp shuffle).
`xdl.cuda.ops.CupyOps` then runs as on a GPU — its own launch geometry and arguments, NumPy arrays standing in
for device arrays — with each launch going through the real binding of its kernel (`xdl.cuda.kernels.Kernel`)
into the compiled instance. Every result is compared with `xdl.ops.NumpyOps`, the specification the GPU tests
compare with: bit for bit where the kernels claim it (ReLU and leaky ReLU, the tanh, σ, softmax-CE and
squared-error backwards, the dropout masks), else to 1e-6 (float32) / 1e-12 (float64) relative (tanh and σ to
8 ulps each, binary cross-entropy's backward to 8 ulps of σ). The host's exp/log/tanh are not CUDA's (within 2
ulp), and g++ fuses no a·b + c into an FMA here (-ffp-contract=off) where nvcc does: the optimizer updates,
within tolerance on the GPU, are bit for bit here. Built with `device_math` (the environment's
EMU_DEVICE_MATH=seed, for this whole file) the emulator rounds as a GPU may: FMA, and exp, log, log1p, tanh and pow
off by up to CUDA's documented ulps; every claim but the optimizers' bits holds there too
(test_the_kernels_keep_their_claims_with_a_gpus_rounding).

The reductions and the dropout kernels also run under another order of blocks and threads
(`ORDERS`) and must give the same bits: a read of shared memory before the barrier that publishes
it, or a merge that depends on which block arrives last, shows up as a difference; a barrier some
threads never reach fails the launch with the block named (`FAULTY` shows both), and so do threads
of a block waiting at __syncthreads of different lines.

Fibers switch only at barriers, so a race within a barrier interval, or between blocks, changes no
result here. Racecheck (`racecheck_libraries`: the sources built with -DEMU_RACECHECK, see
cuda_emulation.h) checks every load and store instead: two threads of a block on one byte between the
same barriers (one writing), two blocks on one byte of the arguments (one writing) but through
batchnorm.cu's last-block protocol with both its fences. `FAULTY` shows each; every kernel runs under it
on a few small sizes (test_racecheck_finds_no_race_in_the_kernels).
"""

import ctypes
import itertools
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import xdl.cuda.ops
from xdl.backend import NumpyBackend
from xdl.cuda.kernels import Kernel
from xdl.cuda.source import C_TYPES, SOURCES, kernel_dir, parse_kernels
from xdl.ops import NumpyOps
from test_kernel_sources import FakeCuda  # just enough of cupy.cuda for CupyOps' launch geometry

SHIM = Path(__file__).with_name("cuda_emulation.h")
TOLERANCE = {np.float32: 1e-6, np.float64: 1e-12}
CTYPES = {"int": ctypes.c_int32, "long long": ctypes.c_int64, "double": ctypes.c_double}
EXECUTED = set()  # the instances launched so far (for a look at what a run covered)
ORDERS = (0, 7)  # 0: blocks and threads in index order; 7: a shuffled order of both (cuda_emulation.h)
byte_bounds = getattr(np.lib, "array_utils", np).byte_bounds  # (NumPy 2 moved it)

pytestmark = [pytest.mark.skipif(shutil.which("g++") is None or sys.platform != "linux",
                                 reason="needs g++ and glibc's ucontext (Linux)"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]  # NaN, ∞ inputs


# -- building: one shared library per source, a C launcher per kernel instance ----------------------
def symbol(expression: str) -> str:
    """``bn_stats<float, 4>`` → ``emu_bn_stats_float_4``."""
    return "emu_" + "_".join(expression.replace("<", " ").replace(">", " ").replace(",", " ").split())


def with_shared_named(source: str) -> str:
    """``source`` with each ``__shared__`` declaration followed, on its line, by ``emu::shared(name, "name");``
    for each array it declares: the emulator fills them with garbage at each block's start (and racecheck
    names them)."""
    def named(match):
        declarators = re.split(r",(?![^\[]*\])", match.group(1))  # (a comma within [] separates none)
        names = [re.search(r"(\w+)\s*(\[[^\]]*\]\s*)*$", d.strip()).group(1) for d in declarators]
        return match.group(0) + "".join(f' emu::shared({name}, "{name}");' for name in names)
    return re.sub(r"__shared__\s+([^;]*);", named, source)


def launchers(path, kernels, instances) -> str:
    """C++ for the source at ``path``: the source (`with_shared_named`, its lines numbered as there),
    then for each instance of each of its ``kernels``
    ``const char* emu_…(grid, block, order, void** arguments)``, which takes the arguments as
    cudaLaunchKernel does (a pointer to each value) and returns "" or what went wrong."""
    lines = [f'#line 1 "{path}"', with_shared_named(Path(path).read_text()), '#line 1 "launchers"']
    for spec in kernels.values():
        for args in instances:
            decls = [p.declaration(dict(zip(spec.template, args))) for p in spec.params]
            fields = "; ".join(f"{d} a{i}" for i, d in enumerate(decls))
            values = ", ".join(f"*({d}*)a[{i}]" for i, d in enumerate(decls))
            call = ", ".join(f"v.a{i}" for i in range(len(decls)))
            expression = spec.expression(args)
            lines += [
                f'extern "C" const char* {symbol(expression)}(const unsigned* grid, const unsigned* block, '
                "unsigned order, void** a) {",
                "    static thread_local char error[512];",
                f"    struct Arguments {{ {fields}; }};",
                f"    const Arguments values{{{values}}};",
                "    emu::run({grid[0], grid[1], grid[2]}, {block[0], block[1], block[2]}, order,",
                "             [](const void* p) { const Arguments& v = *(const Arguments*)p; "
                f"{expression}({call}); }},",
                "             &values, error);",
                "    return error;",
                "}"]
    return "\n".join(lines) + "\n"


# Kernels with the faults the emulator must show (test_the_emulator_…), built with the others.
FAULTY = """
template <typename T>
__global__ void early_return(T* out) {  // thread 0 leaves; the others wait at the barrier for it
    if (threadIdx.x == 0) return;
    __syncthreads();
    out[threadIdx.x] = T(1);
}

template <typename T>
__global__ void missing_barrier(T* out) {  // reads another thread's shared value with no barrier between
    __shared__ T values[64];
    values[threadIdx.x] = T(threadIdx.x);
    out[threadIdx.x] = values[63 - threadIdx.x];
}

template <typename T>
__global__ void unwritten_shared(T* out) {  // sums 8 warps' partials, of which a block of 64 writes 2
    __shared__ T partial[8];
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = T(1);
    __syncthreads();
    if (threadIdx.x == 0) {
        T total = T(0);
        for (int w = 0; w < 8; ++w) total += partial[w];
        out[0] = total;
    }
}

template <typename T>
__global__ void shuffle_beyond_the_block(T* out) {  // a block of 48: lane 47 asks for lane 16 of its warp of 16
    out[threadIdx.x] = __shfl_sync(0xFFFFFFFFu, T(threadIdx.x), threadIdx.x + 1);
}

template <typename T>
__global__ void rotate(T* out) {  // no fault: each lane takes the next lane's value
    out[threadIdx.x] = __shfl_sync(0xFFFFFFFFu, T(threadIdx.x), threadIdx.x + 1);
}

template <typename T>
__global__ void barrier_in_each_branch(T* out) {  // odd and even threads wait at two different barriers
    if (threadIdx.x % 2) {
        out[threadIdx.x] = T(1);
        __syncthreads();
    } else {
        __syncthreads();
        out[threadIdx.x] = T(2);
    }
}

template <typename T>
__global__ void shared_counter(T* out) {  // every thread adds 1 to one shared value: updates lost on a GPU
    __shared__ T total;
    if (threadIdx.x == 0) total = T(0);
    __syncthreads();
    total += T(1);
    __syncthreads();
    if (threadIdx.x == 0) out[0] = total;
}

template <typename T>
__global__ void neighbour_in_global(T* out) {  // reads the value its neighbour writes, with no barrier between
    out[threadIdx.x] = T(threadIdx.x);
    out[64 + threadIdx.x] = out[(threadIdx.x + 1) % blockDim.x];
}

template <typename T>
__global__ void blocks_add_to_one_total(T* out) {  // each block's thread 0 adds to out[0]: not atomicAdd
    if (threadIdx.x == 0) out[0] += T(1);
}

template <typename T>
__global__ void blocks_write_one_value(T* out) {  // each block's thread 0 writes out[0]: the last one stays
    if (threadIdx.x == 0) out[0] = T(blockIdx.x);
}

template <typename T>
__global__ void block_copies_another_blocks_value(T* out) {  // block 0 copies out[1], which block 1 writes
    if (threadIdx.x == 0 && blockIdx.x == 0) out[2] = out[1];
    if (threadIdx.x == 0 && blockIdx.x == 1) out[1] = T(1);
}

// batchnorm.cu's last-block protocol: block b's thread 0 writes out[b], its last thread counts the block,
// the last block to count itself sums the others' into out[gridDim.x]; `leave_out` 1 drops the writers'
// __threadfence, 2 the reader's, 3 the barrier between the writer's fence and the count.
template <typename T>
__global__ void last_block_sums(T* out, int* counter, int leave_out) {
    __shared__ bool is_last;
    if (threadIdx.x == 0) out[blockIdx.x] = T(blockIdx.x + 1);
    if (leave_out != 1) __threadfence();
    if (leave_out != 3) __syncthreads();
    if (threadIdx.x == blockDim.x - 1) is_last = atomicAdd(counter, 1) == (int)gridDim.x - 1;
    __syncthreads();
    if (is_last && leave_out != 2) __threadfence();
    if (is_last && threadIdx.x == 0) {
        T total = T(0);
        for (unsigned b = 0; b < gridDim.x; ++b) total += out[b];
        out[gridDim.x] = total;
        *counter = 0;
    }
}
"""


# -DEMU_RACECHECK: g++ calls cuda_emulation.h's hooks at every load and store (racecheck, there); the
# library is linked apart, without -fsanitize=thread: the hooks stand for ThreadSanitizer's runtime.
RACECHECK = ["-DEMU_RACECHECK", "-g", "-fsanitize=thread"]


def device_math(seed: int) -> list[str]:
    """The g++ flags of the emulator's device math (cuda_emulation.h, EMU_DEVICE_MATH): a·b + c fused into an FMA
    as nvcc fuses by default (-O1 forms no FMA without -fexpensive-optimizations), exp, log and pow off by up to
    CUDA's documented ulps, drawn from ``seed``."""
    return ["-ffp-contract=fast", "-mfma", "-fexpensive-optimizations", f"-DEMU_DEVICE_MATH={seed}"]


# EMU_DEVICE_MATH=seed (≥ 1) runs this whole file with a GPU's rounding (`device_math`) where it runs with exactly
# rounded arithmetic; test_the_kernels_keep_their_claims_with_a_gpus_rounding runs a part of it so every time.
DEVICE_MATH_SEED = int(os.environ.get("EMU_DEVICE_MATH", "0"))
HOST_HAS_FMA = sys.platform == "linux" and " fma " in Path("/proc/cpuinfo").read_text().replace("\n", " ")


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    """{file: ctypes.CDLL}: every source (and `FAULTY`) compiled once per session, in parallel."""
    return build_libraries(tmp_path_factory.mktemp("emulated_kernels"),
                           device_math(DEVICE_MATH_SEED) if DEVICE_MATH_SEED else [])


@pytest.fixture(scope="module")
def racecheck_libraries(tmp_path_factory):
    """`libraries` built for racecheck (cuda_emulation.h): every access checked, every launch slower."""
    return build_libraries(tmp_path_factory.mktemp("racecheck_kernels"), RACECHECK)


def build_libraries(folder, flags):
    (folder / "faulty.cu").write_text(FAULTY)
    units = {file: (kernel_dir() / file, source.kernels(), source.instances, source.defines)
             for file, source in SOURCES.items()}
    units["faulty.cu"] = (folder / "faulty.cu", parse_kernels(FAULTY), (("float",),), {})
    builds = {}
    for file, (path, kernels, instances, defines) in units.items():
        unit = folder / f"{file}.cpp"
        unit.write_text(launchers(path, kernels, instances))
        compile = ["g++", "-std=c++20", "-O1", "-ffp-contract=off", "-fPIC", "-D_FORTIFY_SOURCE=2",  # as Ubuntu's g++
                   *flags, "-include", str(SHIM),
                   *(f"-D{name}={value}" for name, value in defines.items()), "-c", "-o", f"{unit}.o", str(unit)]
        link = ["g++", "-shared", "-o", str(folder / f"{file}.so"), f"{unit}.o"]
        builds[file] = subprocess.Popen(["sh", "-c", f"{shlex.join(compile)} && {shlex.join(link)}"],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for file, build in builds.items():
        output = build.communicate()[0]
        assert build.returncode == 0, f"{file}:\n{output}"
    return {file: ctypes.CDLL(str(folder / f"{file}.so")) for file in units}


# -- launching: the device side of CupyOps, on the CPU ----------------------------------------------
def readable(error, buffers, library):
    """``error`` with racecheck's code addresses ``{lib.so+0x…}`` as the source lines they run (innermost
    first, the lines that inlined it after) and a byte ``@0x…`` of an argument as ``name[element]``."""
    def line(match):
        where = subprocess.run(["addr2line", "-i", "-e", str(Path(library._name).parent / match.group(1)),
                                match.group(2)], capture_output=True, text=True).stdout.splitlines()
        where = [Path(w.split(" (discriminator")[0]).name for w in where]
        where = [w for w in where if not w.startswith("launchers:")]  # (the generated launcher's calls)
        return "at " + " in ".join(where) if where else match.group(0)

    def element(match):
        address = int(match.group(1), 16)
        for name, array in buffers.items():
            low, high = byte_bounds(array)
            if low <= address < high:
                return f"{name}[{(address - low) // array.itemsize}] (byte {(address - low) % array.itemsize})"
        return match.group(0)
    error = re.sub(r"\{([^+{}]+)\+(0x[0-9a-f]+)\}", line, error)
    return re.sub(r"@(0x[0-9a-f]+)", element, error)


class Emulated:
    """A kernel instance's compiled launcher, called as `Kernel` calls a ``cupy.RawKernel``:
    ``(grid, block, argument tuple)``. Records each launch; checks what the GPU would refuse."""

    attributes = {"num_regs": 64, "shared_size_bytes": 3 * 8 * 32 * 2 * 8}  # what _resident_blocks reads

    def __init__(self, library, spec, args, log):
        self.spec, self.args, self.log, self.library = spec, args, log, library
        self.racecheck = hasattr(library, "emu_track")
        self.expression = spec.expression(args)
        self.function = getattr(library, symbol(self.expression))
        self.function.restype = ctypes.c_char_p
        self.function.argtypes = [ctypes.POINTER(ctypes.c_uint)] * 2 + [ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)]
        self.order = 0
        if self.racecheck:
            library.emu_checked.restype = ctypes.c_longlong

    def __call__(self, grid, block, values):
        grid, block = (tuple(dims) + (1,) * (3 - len(dims)) for dims in (grid, block))
        assert all(type(d) is int and 0 < d < 2**31 for d in grid + block), (self.expression, grid, block)
        assert grid[1] <= 65535 and math.prod(block) <= 1024, (self.expression, grid, block)
        cells = []
        for param, value in zip(self.spec.params, values):
            if param.pointer:
                assert isinstance(value, np.ndarray), (self.expression, param.name)
                cells.append(ctypes.c_void_p(value.ctypes.data))
            else:
                cells.append(CTYPES[param.ctype](value))
        self._check_alignment(values)
        pointers = (ctypes.c_void_p * len(cells))(*(ctypes.addressof(c) for c in cells))
        buffers = {p.name: v for p, v in zip(self.spec.params, values) if p.pointer}
        if self.racecheck:
            bounds = [b for v in buffers.values() for b in byte_bounds(v)]
            self.library.emu_track((ctypes.c_ulonglong * len(bounds))(*bounds), len(bounds) // 2)
        error = self.function((ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block), self.order, pointers)
        assert not error, f"{self.expression} {grid} {block}: {readable(error.decode(), buffers, self.library)}"
        if self.racecheck:  # (a kernel whose accesses all missed the tracked buffers would pass unchecked)
            assert self.library.emu_checked() > 0, f"{self.expression} {grid} {block}: racecheck checked no access"
        EXECUTED.add(self.expression)
        self.log.append((self.expression, grid, block, dict(zip((p.name for p in self.spec.params), values))))

    def _check_alignment(self, values):
        """16-byte loads (`vectorized`, batch norm's V > 1) need 16-byte aligned rows: on the GPU a
        misaligned one is an error, here it could pass unnoticed."""
        named = dict(zip((p.name for p in self.spec.params), values))
        wide = named.get("vectorized", 0) or (len(self.args) > 1 and self.args[1] > 1)
        if wide:
            for name in ("p", "g", "v", "m", "s", "input", "output", "gy", "y", "x", "dy", "dx", "mean"):
                value = named.get(name)
                if isinstance(value, np.ndarray):
                    assert value.ctypes.data % 16 == 0, (self.expression, name, "not 16-byte aligned")


class Device:
    """`CupyOps` over the emulated kernels (``ops``), the reference (``ref``), and the launches made; ``exact``:
    the kernels' arithmetic is exactly rounded, no FMA (not `device_math`)."""

    def __init__(self, libraries, monkeypatch, sm_count=4):
        self.launches, self.order = [], 0
        self.exact = not hasattr(libraries["optim.cu"], "emu_device_math")
        self.kernels = {}

        def emulated_kernel(file, name, dtype, *template):
            spec = SOURCES[file].kernels()[name]
            args = (C_TYPES[np.dtype(dtype)], *template)
            assert args in SOURCES[file].instances, (file, name, args)
            key = (file, name, args)
            if key not in self.kernels:
                self.kernels[key] = Kernel(spec, args, Emulated(libraries[file], spec, args, self.launches), np.ndarray)
            self.kernels[key].function.order = self.order
            return self.kernels[key]

        monkeypatch.setattr(xdl.cuda.ops, "kernel", emulated_kernel)
        attributes = {**FakeCuda.Device.attributes, "MultiProcessorCount": sm_count}
        cuda = types.SimpleNamespace(Device=type("Device", (FakeCuda.Device,), {"attributes": attributes}),
                                     get_current_stream=FakeCuda.get_current_stream)
        backend = NumpyBackend(0)
        backend.xp = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")}, cuda=cuda)
        self.ops = xdl.cuda.ops.CupyOps(backend)
        self.ref = NumpyOps(NumpyBackend(0))

    def launched(self, since=0):
        return [expression.split("<")[0] for expression, *_ in self.launches[since:]]


@pytest.fixture
def make_device(libraries, monkeypatch):
    """``make_device(sm_count)``: a `Device` whose CupyOps sizes its grids for that many SMs."""
    return lambda sm_count=4: Device(libraries, monkeypatch, sm_count)


def relative_error(got, ref):
    ref = np.asarray(ref, dtype=np.float64)
    denominator = np.linalg.norm(ref)
    return np.linalg.norm(np.asarray(got, dtype=np.float64) - ref) / (denominator if denominator else 1.0)


def assert_same_bits(got, want):
    """Equal values, NaN where NaN, −0 where −0."""
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert (np.signbit(got) == np.signbit(want))[~np.isnan(want)].all()


def rerun_in_another_order(device, run):
    """``run()`` again with blocks and threads in another order: the same bits (arrays in, arrays out)."""
    first = [np.copy(a) for a in run()]
    device.order = ORDERS[1]
    try:
        again = run()
    finally:
        device.order = ORDERS[0]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


# -- activation.cu: relu, tanh, sigmoid, leaky_relu (forward / backward), softmax_ce_forward / _backward -----
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 31, 32, 33, 1023, 1025, 70001])
def test_relu_kernels_are_numpy_maximum_and_mask_product_bit_for_bit(make_device, rng, n, dtype):
    device = make_device(1)  # 16 blocks of 256: 70001 elements take the grid-stride loop
    x = rng.standard_normal(n).astype(dtype)
    x[:4] = np.array([np.nan, -0.0, -np.inf, np.inf], dtype)[:n]
    gy = rng.standard_normal(n).astype(dtype)
    gy[1:3] = np.array([np.nan, np.inf], dtype)[:max(0, n - 1)]
    y = device.ops.relu_forward(x)
    assert_same_bits(y, device.ref.relu_forward(x))
    assert_same_bits(device.ops.relu_backward(gy, y), device.ref.relu_backward(gy, y))
    assert device.launched() == ["relu_forward", "relu_backward"]


def activation_inputs(rng, n, dtype):
    """n values over every magnitude of ``dtype`` (normal, tiny, huge, σ's and exp's thresholds), with NaN, ±0, ±∞,
    subnormals and the extremes in the first places."""
    info = np.finfo(dtype)
    special = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, info.smallest_subnormal, -info.smallest_subnormal,
                        info.tiny / 3, -info.tiny, info.max, -info.max, 88.7, -88.7, 89.5, -104.0, 709.7, -745.0,
                        20.0, -20.0, 1.0, -1.0], dtype)
    x = (rng.choice([-1, 1], n) * 10.0 ** rng.uniform(-4, 3, n)).astype(dtype)
    x[:min(n, len(special))] = special[:n]
    return x


def assert_within_ulps(got, want, ulps):
    """NaN where NaN, the same sign, and each value within ``ulps`` units in the last place of the other's."""
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    kept = ~np.isnan(want)
    assert (np.signbit(got) == np.signbit(want))[kept].all()
    unit = np.maximum(np.spacing(np.abs(want[kept])), np.finfo(want.dtype).smallest_subnormal)
    assert (np.abs(got[kept].astype(np.float64) - want[kept]) <= ulps * unit.astype(np.float64)).all()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # (the largest values times 1e30)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 31, 32, 33, 1023, 1025, 70001])
def test_tanh_sigmoid_and_leaky_relu_kernels_match_the_reference(make_device, rng, n, dtype):
    """One launch each way. The backwards and leaky ReLU bit for bit (no product there is added to: no FMA on a
    GPU either; the slope rounded to the dtype first, as NumPy's product with a Python float); tanh and σ within
    8 ulps (CUDA's tanh and exp are within 2 ulps, NumPy's within its own, and σ rounds twice more), with NaN, ±0,
    ±∞, subnormals and σ of |x| > 88 (e^|x| past float32's range) neither overflowing nor NaN."""
    device = make_device(1)  # 16 blocks of 256: 70001 elements take the grid-stride loop
    x = activation_inputs(rng, n, dtype)
    gy = rng.standard_normal(n).astype(dtype)
    gy[-3:] = np.array([np.nan, np.inf, -0.0], dtype)[-min(n, 3):]
    y = device.ops.tanh_forward(x)
    assert_within_ulps(y, device.ref.tanh_forward(x), 8)
    assert_same_bits(device.ops.tanh_backward(gy, y), device.ref.tanh_backward(gy, y))
    y = device.ops.sigmoid_forward(x)
    assert_within_ulps(y, device.ref.sigmoid_forward(x), 8)
    assert ((y >= 0) & (y <= 1))[~np.isnan(x)].all()
    assert_same_bits(device.ops.sigmoid_backward(gy, y), device.ref.sigmoid_backward(gy, y))
    launched = ["tanh_forward", "tanh_backward", "sigmoid_forward", "sigmoid_backward"]
    # a negative slope's backward reads x, else y; 1e-50 is 0 in float32 (+∞·0: NaN), 1e-45 a subnormal there
    for slope in (0.01, 1.0, 1e-45, 1e-50, 0.0, -0.0, -0.5, 1.7, 1e30):
        y = device.ops.leaky_relu_forward(x, slope)
        assert_same_bits(y, device.ref.leaky_relu_forward(x, slope))
        saved = y if slope >= 0 else x
        assert_same_bits(device.ops.leaky_relu_backward(gy, saved, slope),
                         device.ref.leaky_relu_backward(gy, saved, slope))
        launched += ["leaky_relu_forward", "leaky_relu_backward"]
    assert device.launched() == launched


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, classes, models", [(1, 1, 1), (7, 3, 1), (31, 2, 1), (33, 1024, 3), (1025, 10, 1),
                                                (1026, 7, 3), (6, 1025, 1), (4099, 3, 1), (770, 5, 7), (600, 4, 300),
                                                (257, 2, 257), (512, 3, 256)])
def test_softmax_ce_kernels_match_the_reference(make_device, rng, m, classes, models, dtype):
    """Each model's mean loss and the probabilities to tolerance (exp and log are the host's; the
    mean summed in the last block, in lanes), the backward bit for bit; a label outside [0, C) gives
    its model's mean NaN, as the reference. Rows not a multiple of the block, one block or a
    grid-stride loop over many, more models than the block has threads (the means in chunks)."""
    device = make_device(1)
    z = (5 * rng.standard_normal((m, classes))).astype(dtype)
    labels = rng.integers(0, classes, m // models)
    labels[1:3] = [classes, -1][:len(labels) - 1]
    gy = np.asarray(0.7, dtype) if models == 1 else rng.standard_normal(models).astype(dtype)
    means, probs = device.ops.softmax_cross_entropy_forward(z, labels, models)
    want_means, want_probs = device.ref.softmax_cross_entropy_forward(z.copy(), labels, models)
    assert means.shape == want_means.shape == (models,) and means.dtype == want_means.dtype
    np.testing.assert_array_equal(np.isnan(means), np.isnan(want_means))
    assert relative_error(means[~np.isnan(means)], want_means[~np.isnan(want_means)]) < TOLERANCE[dtype]
    assert relative_error(probs, want_probs) < 10 * TOLERANCE[dtype]
    assert not any(c.any() for c in device.ops._counters.values())  # the last block reset its counter
    gz = device.ops.softmax_cross_entropy_backward(probs, labels, gy, models)
    assert_same_bits(gz, device.ref.softmax_cross_entropy_backward(probs, labels, gy, models))
    # a sum's gradient, one value broadcast to every model (stride 0: fit_many's), read in place
    shared = np.broadcast_to(np.asarray(0.7, dtype), (models,))
    assert_same_bits(device.ops.softmax_cross_entropy_backward(probs, labels, shared, models),
                     device.ref.softmax_cross_entropy_backward(probs, labels, np.full(models, 0.7, dtype), models))
    # the kernels take up to MAX_CLASSES classes; wider rows are the reference's
    want = [] if classes > xdl.cuda.ops.MAX_CLASSES else ["softmax_ce_forward"] + ["softmax_ce_backward"] * 2
    assert device.launched() == want


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_ce_means_are_summed_in_an_order_the_launch_fixes(make_device, rng, dtype):
    """The means (the last block's sums of every block's row losses) are the same bits in another order
    of blocks and threads and on another number of SMs (another grid: which block is last changes), and
    each of K models' mean is its mean alone to rounding."""
    z = (3 * rng.standard_normal((3 * 2000, 6))).astype(dtype)
    labels = rng.integers(0, 6, 2000)
    results = []
    for sm_count in (1, 3, 40):
        device = make_device(sm_count)
        run = lambda: device.ops.softmax_cross_entropy_forward(z, labels, 3)  # noqa: E731
        rerun_in_another_order(device, run)
        results.append(run())
        assert {grid[0] for e, grid, *_ in device.launches} == {min(16 * sm_count, -(-6000 // 256))}
    for got in results[1:]:
        assert_same_bits(got[0], results[0][0])
    one = np.ascontiguousarray(z.reshape(2000, 3, 6)[:, 1])  # model 1's logits alone: its mean as one model's
    alone, _ = device.ops.softmax_cross_entropy_forward(one, labels, 1)
    assert relative_error(results[0][0][1:2], alone) < TOLERANCE[dtype]


def elementwise_loss_inputs(rng, n, dtype):
    """Logits or predictions over many magnitudes with NaN, ±∞, ±0 early (when ``n`` leaves room past them), targets in
    [0, 1], 0/1 for half, and a one-element gradient."""
    z = activation_inputs(rng, n, dtype)
    if n > 40:  # NaN and ±∞ in the first places; the clean cases are the sizes ≤ 40
        z[:21] = (30 * rng.standard_normal(21)).astype(dtype)
        z[rng.integers(21, n)] = rng.choice([np.nan, np.inf, -np.inf]) if n % 2 else 0.0
    else:
        z = (10 * rng.standard_normal(n)).astype(dtype)
    y = rng.random(n).astype(dtype)
    y[::2] = np.round(y[::2])
    return z, y, np.asarray(rng.choice([0.7, -1.3, 1.0]), dtype)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 31, 255, 256, 257, 1023, 1025, 4097, 70001])
def test_bce_and_mse_kernels_match_the_reference(make_device, rng, n, dtype):
    """One launch each way: the mean to tolerance (exp, log1p are the host's; the elements' losses summed in lanes
    in the last block, `model_means`, where NumPy sums pairwise), NaN where the reference's is; mean squared error's
    backward bit for bit, binary cross-entropy's within 8 ulps of σ (exp's rounding) times gy/n. Sizes not a
    multiple of the block, one block, many, a grid-stride loop (70001 on one SM's 16 blocks)."""
    device = make_device(1)
    z, y, gy = elementwise_loss_inputs(rng, n, dtype)
    shape = (n // 7, 7) if n % 7 == 0 else (n,)  # (m, k) labels too
    z, y = z.reshape(shape), y.reshape(shape)
    for name, targets in (("binary_cross_entropy", y), ("squared_error", (3 * (y - 0.5)).astype(dtype))):
        forward, backward = getattr(device.ops, f"{name}_forward"), getattr(device.ops, f"{name}_backward")
        mean = forward(z, targets)
        want = getattr(device.ref, f"{name}_forward")(z, targets)
        assert mean.shape == want.shape == (1,) and mean.dtype == want.dtype == dtype
        if np.isfinite(want).all():
            assert relative_error(mean, want) < TOLERANCE[dtype]
        else:  # NaN where NaN, ±∞ where the reference's is
            np.testing.assert_array_equal(mean, want)
        assert not any(c.any() for c in device.ops._counters.values())  # the last block reset its counter
        g = backward(z, targets, gy)
        want_g = getattr(device.ref, f"{name}_backward")(z, targets, gy)
        if name == "squared_error":
            assert_same_bits(g, want_g)
        else:
            assert g.dtype == want_g.dtype and g.shape == want_g.shape
            np.testing.assert_array_equal(np.isnan(g), np.isnan(want_g))
            unit = np.spacing(np.ones((), dtype)) * abs(float(gy)) / z.size  # σ ≤ 1: an ulp of 1, scaled
            kept = ~np.isnan(want_g)
            assert (np.abs(g[kept].astype(np.float64) - want_g[kept]) <= 8 * unit).all()
    assert device.launched() == ["bce_forward", "bce_backward", "mse_forward", "mse_backward"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_and_mse_means_are_summed_in_an_order_the_launch_fixes(make_device, rng, dtype):
    """The means are the same bits in another order of blocks and threads and on another number of SMs (which
    block is last changes), as softmax cross-entropy's: their last block sums in the lanes `model_means` fixes."""
    z = (3 * rng.standard_normal((9001, 3))).astype(dtype)
    y = rng.random((9001, 3)).astype(dtype)
    results = []
    for sm_count in (1, 3, 40):
        device = make_device(sm_count)
        run = lambda: (device.ops.binary_cross_entropy_forward(z, y),  # noqa: E731
                       device.ops.squared_error_forward(z, y))
        rerun_in_another_order(device, run)
        results.append(run())
        assert {grid[0] for e, grid, *_ in device.launches} == {min(16 * sm_count, -(-z.size // 256))}
    for got in results[1:]:
        for a, b in zip(got, results[0]):
            assert_same_bits(a, b)


# -- optim.cu: sgd_update, momentum_update, rmsprop_update, adam_update -------------------------------
RULES = {  # rule: (state arrays, the update given hyperparameters h)
    "sgd": (0, lambda ops, p, g, s, h: ops.sgd_update(p, g, h["lr"], h["wd"])),
    "momentum": (1, lambda ops, p, g, s, h: ops.momentum_update(p, g, s[0], h["lr"], h["beta"], False, h["wd"])),
    "nesterov": (1, lambda ops, p, g, s, h: ops.momentum_update(p, g, s[0], h["lr"], h["beta"], True, h["wd"])),
    "rmsprop": (1, lambda ops, p, g, s, h: ops.rmsprop_update(p, g, s[0], h["lr"], h["beta"], h["eps"], h["wd"])),
    "adam": (2, lambda ops, p, g, s, h: ops.adam_update(p, g, s[0], s[1], h["lr"], h["beta"], h["beta2"], h["eps"],
                                                        3, h["wd"], False, steps_done=h.get("steps_done"))),
    "adamw": (2, lambda ops, p, g, s, h: ops.adam_update(p, g, s[0], s[1], h["lr"], h["beta"], h["beta2"], h["eps"],
                                                         3, h["wd"], True, steps_done=h.get("steps_done"))),
}
LAYOUTS = {  # (models K, row width, columns updated, hyperparameters): K = 1 is a flat buffer
    "n=1": (1, 1, (0, 1), "numbers"), "n=5": (1, 5, (0, 5), "numbers"), "n=1025": (1, 1025, (0, 1025), "numbers"),
    "n=1023 unaligned": (1, 1024, (1, 1024), "numbers"),
    "n=70001 held": (1, 70001, (0, 70001), "held"),  # an Optimizer's device values and step counter
    "K=3 whole": (3, 1031, (0, 1031), "per-model"), "K=3 aligned": (3, 1032, (4, 1000), "per-model"),
    "K=3 unaligned": (3, 1031, (3, 998), "per-model"), "K=5 held": (5, 40, (0, 33), "held"),
}


def hyperparameters(kind, k):
    h = dict(lr=0.01, beta=0.9, beta2=0.999, eps=1e-8, wd=1e-3)
    if kind == "numbers":
        return h
    h.update(lr=np.array([0.01, 0.001, 0.03, 0.02, 0.05])[:k], beta=np.array([0.9, 0.5, 0.99, 0.8, 0.7])[:k])
    h["wd"] = h["lr"]
    if kind == "held":  # K contiguous float64 values each, and the step counter, "in device memory"
        h = {name: np.ascontiguousarray(np.broadcast_to(np.asarray(v, np.float64), (k,))) for name, v in h.items()}
        h["steps_done"] = np.array([4], np.int64)
    return h


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("rule", list(RULES))
def test_optimizer_kernels_match_the_reference(make_device, rng, rule, layout, dtype):
    """Three steps of each rule on regions [a, b) of (K, width) buffers, as the optimizers pass them.
    Bit for bit with exact arithmetic (the kernels carry the reference's formulas in its order); on the GPU
    nvcc fuses a·b + c and CUDA's pow is not the host's, so there, as with `device_math`, 1e-6 / 1e-12."""
    device = make_device(1)
    n_state, update = RULES[rule]
    k, width, columns, kind = LAYOUTS[layout]
    h = hyperparameters(kind, k)
    shape = (k, width) if k > 1 else (width,)
    region = (slice(None), slice(*columns)) if k > 1 else slice(*columns)
    host = [rng.standard_normal(shape).astype(dtype) for _ in range(2)]
    host += [np.abs(rng.standard_normal(shape)).astype(dtype) for _ in range(n_state)]
    got, want = [a.copy()[region] for a in host], [a.copy()[region] for a in host]
    for _ in range(3):
        update(device.ops, *got[:2], got[2:], h)
        update(device.ref, *want[:2], want[2:], h)
    assert device.launched() == [("momentum" if rule == "nesterov" else "adam" if rule == "adamw" else rule)
                                 + "_update"] * 3
    for a, b in zip(got, want):
        assert relative_error(a, b) < TOLERANCE[dtype]
        if device.exact:
            assert_same_bits(a, b)


# -- random.cu: dropout_apply, relu_dropout_forward / relu_dropout_backward, stacked_dropout_apply -----
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 15, 16, 17, 511, 512, 513, 2057, 70001])
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "unaligned"])
@pytest.mark.parametrize("counter", [None, 5], ids=["host-step", "device-counter"])
def test_dropout_kernels_draw_the_reference_mask_bit_for_bit(make_device, rng, n, dtype, offset, counter):
    """The mask drawn in the kernel (Philox4x64-10, 16 bits per element, a warp's shuffles) is
    `xdl.ops.random.keep_mask`: dropout forward and backward, and ReLU then dropout each way, equal
    the reference exactly — NaN, ±0 and ±∞ included."""
    device = make_device(1)  # 70001 elements: more chunks than the grid's warps
    host = rng.standard_normal(n + offset).astype(dtype)
    host[::5], host[1::7], host[2::11], host[3::13] = np.nan, -0.0, np.inf, -np.inf
    x, gy = host[offset:], rng.standard_normal(n).astype(dtype)
    gy[4::17] = np.inf
    key = (2**64 - 3, 4, 2**64 - 2)  # the step wraps round 2⁶⁴ with the device counter
    steps_done = None if counter is None else np.array([counter], np.int64)
    ops, ref = device.ops, device.ref
    want, saved = ref.dropout_forward(x, 0.3, *key, steps_done=steps_done)
    got, recomputed = ops.dropout_forward(x, 0.3, *key, steps_done=steps_done)
    assert_same_bits(got, want)
    assert_same_bits(ops.dropout_backward(gy, recomputed, 0.3, *key, steps_done=steps_done),
                     ref.dropout_backward(gy, saved, 0.3, *key, steps_done=steps_done))
    other = gy.astype(np.float64 if dtype == np.float32 else np.float32)  # a gradient of another dtype
    assert_same_bits(ops.dropout_backward(other, recomputed, 0.3, *key, steps_done=steps_done),
                     ref.dropout_backward(other, saved, 0.3, *key, steps_done=steps_done))
    want, saved = ref.relu_dropout_forward(x, 0.3, *key, steps_done=steps_done)
    got, recomputed = ops.relu_dropout_forward(x, 0.3, *key, steps_done=steps_done)
    assert_same_bits(got, want)
    assert_same_bits(ops.relu_dropout_backward(gy, got, recomputed, 0.3, *key, steps_done=steps_done),
                     ref.relu_dropout_backward(gy, want, saved, 0.3, *key, steps_done=steps_done))
    assert device.launched() == ["dropout_apply"] * 3 + ["relu_dropout_forward", "relu_dropout_backward"]
    forwards = (device.launches[0], device.launches[3])
    assert [arguments["vectorized"] for *_, arguments in forwards] == [int(offset == 0)] * 2  # 16-byte packs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rate", [0.0, 0.5, xdl.ops.random.MAX_DROP_RATE, 1 - 2**-17])
def test_dropout_kernel_at_the_extreme_rates(make_device, rng, rate, dtype):
    """Rate 0 keeps every unit, a rate above what 16 bits resolve drops every one: as the reference."""
    device = make_device()
    x = rng.standard_normal(1000).astype(dtype)
    want, _ = device.ref.dropout_forward(x, rate, 1, 2, 3)
    got, _ = device.ops.dropout_forward(x, rate, 1, 2, 3)
    assert_same_bits(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 3, 5), (64, 16, 33), (1023, 2, 17), (5, 1, 1025)])
def test_stacked_dropout_kernel_draws_each_models_own_mask(make_device, rng, shape, dtype):
    """Model k's slice of (B, K, C) is dropped with its own rate and seed: the reference's stacked
    masks, and model k's mask alone."""
    device = make_device()
    b, k, c = shape
    x = rng.standard_normal(shape).astype(dtype)
    rates, seeds = np.linspace(0.0, 0.6, k), [(7 + 1000 * i) % 2**64 for i in range(k - 1)] + [2**64 - 1]
    steps_done = np.array([3], np.int64)
    want, saved = device.ref.stacked_dropout_forward(x, rates, seeds, 2, 31, steps_done)
    got, recomputed = device.ops.stacked_dropout_forward(x, rates, seeds, 2, 31, steps_done)
    assert_same_bits(got, want)
    for i in range(k):
        alone, _ = device.ref.dropout_forward(np.ascontiguousarray(x[:, i]), rates[i], seeds[i], 2, 34)
        assert_same_bits(got[:, i], alone)
    assert_same_bits(device.ops.stacked_dropout_backward(x, recomputed, rates, seeds, 2, 31, steps_done),
                     device.ref.stacked_dropout_backward(x, saved, rates, seeds, 2, 31, steps_done))
    assert device.launched() == ["stacked_dropout_apply"] * 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("models", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("rows, cols", [(1, 1), (7, 5), (33, 17), (1023, 3), (3, 700)])
def test_stacked_relu_dropout_kernels_are_the_pair_and_each_models_own(make_device, rng, rows, cols, models, dtype):
    """K models' ReLU then dropout in one kernel each way (`stacked_relu_dropout_forward/backward`) equal the
    reference bit for bit, the reference equals the pair it fuses (ReLU then `stacked_dropout_forward`, their
    backwards), and model k's slice is what `relu_dropout_forward` gives it alone — rates of 0 and of 0.5 and
    above among the models, rows not a multiple of a warp's chunk, NaN, ±0 and ±∞ included."""
    device = make_device(2)
    ops, ref = device.ops, device.ref
    x = rng.standard_normal((rows, models, cols)).astype(dtype)
    x.reshape(-1)[::5], x.reshape(-1)[1::7], x.reshape(-1)[2::11], x.reshape(-1)[3::13] = np.nan, -0.0, np.inf, -np.inf
    gy = rng.standard_normal(x.shape).astype(dtype)
    gy.reshape(-1)[4::17] = np.inf
    rates = np.array([0.5, 0.0, xdl.ops.random.MAX_DROP_RATE, 0.3, 0.75][:models])
    seeds = [(11 + 977 * i) % 2**64 for i in range(models - 1)] + [2**64 - 1]
    steps_done = np.array([3], np.int64)
    want, saved = ref.stacked_relu_dropout_forward(x, rates, seeds, 2, 31, steps_done)
    got, recomputed = ops.stacked_relu_dropout_forward(x, rates, seeds, 2, 31, steps_done)
    assert_same_bits(got, want)
    back = ops.stacked_relu_dropout_backward(gy, got, recomputed, rates, seeds, 2, 31, steps_done)
    assert_same_bits(back, ref.stacked_relu_dropout_backward(gy, want, saved, rates, seeds, 2, 31, steps_done))
    assert device.launched() == ["stacked_relu_dropout_forward", "stacked_relu_dropout_backward"]
    relu = ref.relu_forward(x)  # the pair
    pair, pair_saved = ref.stacked_dropout_forward(relu, rates, seeds, 2, 31, steps_done)
    assert_same_bits(want, pair)
    assert_same_bits(back, ref.relu_backward(ref.stacked_dropout_backward(gy, pair_saved, rates, seeds, 2, 31,
                                                                          steps_done), relu))
    for k in range(models):  # each model's own, alone
        alone, kept = ref.relu_dropout_forward(np.ascontiguousarray(x[:, k]), rates[k], seeds[k], 2, 34)
        assert_same_bits(got[:, k], alone)
        assert_same_bits(back[:, k], ref.relu_dropout_backward(np.ascontiguousarray(gy[:, k]), alone, kept, rates[k],
                                                               seeds[k], 2, 34))


# -- batchnorm.cu: bn_forward_small, bn_stats + bn_normalize, bn_backward_reduce + bn_backward_dx,
#    bn_inference ---------------------------------------------------------------------------------
BN_SHAPES = {  # (rows, features, SMs): which kernels run, with V features per thread where aligned
    "2x3 small": (2, 3, 4), "31x4 small": (31, 4, 4), "257x33 stats": (257, 33, 4), "600x128 small": (600, 128, 4),
    "600x130 stats": (600, 130, 4), "2049x8 stats": (2049, 8, 4), "5000x64 stats": (5000, 64, 4),
    "12000x5 160 partials": (12000, 5, 40),  # the last block of a column merges 160 partials, 32 at a time
    "3000x520 17 columns": (3000, 520, 40),
}


def bn_inputs(rng, n, c, dtype, offset=0.0, unaligned=False):
    """x, γ, β, running mean and variance, dy; x's rows one element off 16-byte alignment if ``unaligned``."""
    x = (rng.standard_normal((n, c)) * rng.uniform(0.5, 2, c) + offset).astype(dtype)
    if unaligned:
        x = np.concatenate([np.zeros(1, dtype), x.ravel()])[1:].reshape(n, c)
    assert (x.ctypes.data % 16 != 0) == unaligned
    gamma, beta = rng.uniform(0.5, 2, c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    return x, gamma, beta, rm, rv, rng.standard_normal((n, c)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", list(BN_SHAPES))
@pytest.mark.parametrize("unaligned", [False, True], ids=["aligned", "unaligned"])
def test_batchnorm_kernels_match_the_reference(make_device, rng, shape, dtype, unaligned):
    n, c, sm_count = BN_SHAPES[shape]
    device = make_device(sm_count)
    x, gamma, beta, rm, rv, dy = bn_inputs(rng, n, c, dtype, unaligned=unaligned)
    rm_ref, rv_ref, rm_dev, rv_dev = rm.copy(), rv.copy(), rm.copy(), rv.copy()
    want = device.ref.batchnorm_train_forward(x, gamma, beta, rm_ref, rv_ref, 0.9, 1e-5)
    got = device.ops.batchnorm_train_forward(x, gamma, beta, rm_dev, rv_dev, 0.9, 1e-5)
    grads = device.ops.batchnorm_backward(dy, x, gamma, got[1], got[2])
    want_grads = device.ref.batchnorm_backward(dy, x, gamma, want[1], want[2])
    inference = device.ops.batchnorm_inference(x, gamma, beta, rm, rv, 1e-5)
    tol = 10 * TOLERANCE[dtype]
    assert relative_error(inference, device.ref.batchnorm_inference(x, gamma, beta, rm, rv, 1e-5)) < tol
    pairs = ((got[0], want[0]), (got[2], want[2]), (rm_dev, rm_ref), (rv_dev, rv_ref), *zip(grads[1:], want_grads[1:]))
    for a, b in pairs:
        assert relative_error(a, b) < tol
    assert np.linalg.norm((got[1] - want[1]) * want[2]) / np.sqrt(c) < tol  # μ ≈ 0: in standard deviations
    dx_scale = np.linalg.norm(dy.astype(np.float64) * (gamma * want[2]))  # dx: a difference of such terms
    assert np.linalg.norm(grads[0] - want_grads[0]) / dx_scale < tol
    assert not device.ops._counters[0].any()  # the last block of each column reset its counter
    small = device.ops.forward_in_one_launch(n, c)
    vec = 1 if unaligned or c % (16 // np.dtype(dtype).itemsize) else 16 // np.dtype(dtype).itemsize
    assert [e for e, *_ in device.launches] == [
        f"bn_{k}<{C_TYPES[np.dtype(dtype)]}, {1 if k == 'forward_small' else vec}>"
        for k in (["forward_small"] if small else ["stats", "normalize"]) + ["backward_reduce", "backward_dx",
                                                                          "inference"]]


BN_BACKWARD_SHAPES = {  # (rows, features, SMs, whether bn_backward_reduce merges partials of several row blocks)
    "1x5 one row": (1, 5, 4, False), "2x3": (2, 3, 4, False), "31x4 one block": (31, 4, 4, False),
    "257x33 not a multiple of V": (257, 33, 4, True), "600x130 two columns": (600, 130, 4, True),
    "12000x5 160 partials": (12000, 5, 40, True), "3000x520 17 columns": (3000, 520, 40, True),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", list(BN_BACKWARD_SHAPES))
@pytest.mark.parametrize("unaligned", [False, True], ids=["aligned", "unaligned"])
def test_batchnorm_backward_reduction_adds_its_gradients_into_the_given_outputs(make_device, monkeypatch, rng, shape,
                                                                                  dtype, unaligned):
    """bn_backward_reduce writes ∂L/∂γ, ∂L/∂β into the arrays it is given (a parameter's view of the flat gradient
    buffer: (C,), or K stacked models' (K, C/K) rows of their (K, P) buffer), added to their values when
    ``accumulate``: the same bits as the gradients it returns added there by NumPy (the separate add it replaces),
    either or both of them, the one-block and the multi-block merge, with dx unchanged, nothing else in the buffer
    touched and no launch of its own; the reference does the same with the same signature. An output the kernel
    cannot address (strided, another dtype, rows unlike the other's) is added from its buffer instead."""
    n, c, sm_count, merged = BN_BACKWARD_SHAPES[shape]
    device = make_device(sm_count)
    x, gamma, _, _, _, dy = bn_inputs(rng, n, c, dtype, unaligned=unaligned)
    mean, inv_std = x.mean(0), (1 / np.sqrt(x.var(0) + 1e-5)).astype(dtype)
    want_dx, want_dgamma, want_dbeta = device.ops.batchnorm_backward(dy, x, gamma, mean, inv_std)  # returned
    ref = device.ref.batchnorm_backward(dy, x, gamma, mean, inv_std)
    assert [grid[1] > 1 for e, grid, *_ in device.launches if e.startswith("bn_backward_reduce")] == [merged]
    start = rng.standard_normal((2, c)).astype(dtype)
    k = next(d for d in range(2, c + 1) if c % d == 0)  # K stacked models of C/K features each
    flat = np.zeros((k, 2 * c // k + 3), dtype)  # their (K, P) buffer: γ's and β's rows among others

    def outputs(into):
        """(dgamma, dbeta) holding ``start``, laid out as ``into`` says; None where not given."""
        if into == "stacked":
            flat[...] = 0
            pair = flat[:, 1:1 + c // k], flat[:, 2 + c // k:2 + 2 * c // k]
        elif into == "strided":
            pair = tuple(np.zeros((2, 2 * c), dtype)[:, ::2])
        elif into == "other dtype":
            pair = tuple(np.zeros((2, c), np.float32 if dtype == np.float64 else np.float64))
        elif into == "unlike rows":  # (a contiguous (K, C/K) is one row of C to the kernel: alike)
            pair = np.zeros(c, dtype), np.zeros((k, c // k + 1), dtype)[:, 1:]
        else:
            pair = tuple(np.zeros((2, c), dtype))
        for out, values in zip(pair, start):
            out[...] = values.reshape(out.shape)
        return [None if into in ("gamma", "beta") and into != name else out
                for out, name in zip(pair, ("gamma", "beta"))]

    added, write_or_add = [], xdl.ops.batchnorm.write_or_add  # the outputs added from the kernel's buffer by the
    monkeypatch.setattr(xdl.ops.batchnorm, "write_or_add",  # host (on a GPU, a launch each)
                        lambda out, *rest: added.append(out) or write_or_add(out, *rest))
    for accumulate in (False, True):
        for into in ("both", "gamma", "beta", "stacked", "strided", "other dtype", "unlike rows"):
            dgamma, dbeta = outputs(into)
            since, added[:] = len(device.launches), []
            got = device.ops.batchnorm_backward(dy, x, gamma, mean, inv_std, dgamma, dbeta, accumulate=accumulate)
            assert device.launched(since) == ["bn_backward_reduce", "bn_backward_dx"]
            assert len(added) == {"strided": 2, "other dtype": 2, "unlike rows": 1}.get(into, 0)
            assert_same_bits(got[0], want_dx)
            for out, result, before, want in zip((dgamma, dbeta), got[1:], start, (want_dgamma, want_dbeta)):
                if out is None:
                    assert_same_bits(result, want)
                else:
                    assert result is out
                    expected = before.reshape(out.shape).astype(out.dtype)  # out += g, out[...] = g as NumPy does
                    expected[...] = expected + want.reshape(out.shape) if accumulate else want.reshape(out.shape)
                    assert_same_bits(out, expected)
            if into == "stacked":  # the rest of the models' buffer as it was
                assert not flat[:, [0, 1 + c // k, -1]].any()
            # the reference: into its outputs as the kernel into its own (bits), near the kernel's values
            ref_outputs = outputs(into)
            ref_got = device.ref.batchnorm_backward(dy, x, gamma, mean, inv_std, *ref_outputs, accumulate=accumulate)
            for out, result, before, values in zip(ref_outputs, ref_got[1:], start, ref[1:]):
                if out is None:
                    assert_same_bits(result, values)
                    continue
                assert result is out
                expected = before.reshape(out.shape).astype(out.dtype)
                expected[...] = expected + values.reshape(out.shape) if accumulate else values.reshape(out.shape)
                assert_same_bits(out, expected)
                assert relative_error(got[1 if out is ref_outputs[0] else 2], out) < 10 * TOLERANCE[dtype]


def stacked_rows(rng, values, k, dtype):
    """``values`` (C,) as K stacked models' (K, C/K) rows of a (K, P) buffer, one column off its start and
    between other values (`StackedBatchNorm`'s γ, β), and the buffer."""
    group = values.size // k
    flat = rng.standard_normal((k, group + 3)).astype(dtype)
    rows = flat[:, 1:1 + group]
    rows[...] = values.reshape(k, group)
    return rows, flat


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", ["2x3 small", "31x4 small", "600x128 small", "257x33 stats", "600x130 stats",
                                   "12000x5 160 partials"])
@pytest.mark.parametrize("unaligned", [False, True], ids=["aligned", "unaligned"])
def test_batchnorm_kernels_read_stacked_models_gamma_and_beta_in_place(make_device, rng, shape, dtype, unaligned):
    """K stacked models' γ and β are their (K, C/K) rows of the models' (K, P) buffer: every kernel reads them
    there (no gathering copy, no fallback to the reference) and gives the bits it gives for contiguous copies
    of them — the one-launch forward, stats + normalize over one and several row blocks, the backward's dx,
    inference — as the reference does with the same signature."""
    n, c, sm_count = BN_SHAPES[shape]
    device = make_device(sm_count)
    x, gamma, beta, rm, rv, dy = bn_inputs(rng, n, c, dtype, unaligned=unaligned)
    k = next(d for d in range(2, c + 1) if c % d == 0)
    (gamma_rows, gamma_flat), (beta_rows, _) = (stacked_rows(rng, v, k, dtype) for v in (gamma, beta))
    assert not gamma_rows.flags.c_contiguous and gamma_rows.strides[0] == gamma_flat.strides[0]
    for impl in (device.ops, device.ref):
        runs = []
        for g, b in ((gamma, beta), (gamma_rows, beta_rows)):
            since, running = len(device.launches), [rm.copy(), rv.copy()]
            y, mean, inv_std = impl.batchnorm_train_forward(x, g, b, *running, 0.9, 1e-5)
            into = [np.zeros((k, c // k), dtype), np.zeros((k, c // k), dtype)]
            grads = impl.batchnorm_backward(dy, x, g, mean, inv_std, *into, accumulate=True)
            inference = impl.batchnorm_inference(x, g, b, rm, rv, 1e-5)
            runs.append([y, mean, inv_std, *running, *grads, inference])
            if impl is device.ops:
                forward = ["bn_forward_small"] if device.ops.forward_in_one_launch(n, c) else ["bn_stats",
                                                                                               "bn_normalize"]
                assert device.launched(since) == forward + ["bn_backward_reduce", "bn_backward_dx", "bn_inference"]
        for a, b in zip(*runs):
            assert_same_bits(a, b)
    assert (gamma_flat[:, 1:1 + c // k] == gamma.reshape(k, c // k)).all()  # read, not written


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_reductions_keep_their_partials_in_one_workspace_per_stream(make_device, rng, dtype):
    """The reductions' block partials (and the ∂L/∂γ, ∂L/∂β the backward's dx reads) are scratch in one buffer
    per stream, made once; what outlives a call is allocated apart: a forward's μ and 1/σ (its backward reads
    them after other layers ran) and a backward's returned gradients. Two layers of other widths between a
    forward and its backward leave the backward's bits as they were right after the forward."""
    device = make_device(4)
    layers = [bn_inputs(rng, n, c, dtype) for n, c in ((5000, 64), (257, 33), (2049, 8))]
    into = [[np.zeros(layer[0].shape[1], dtype) for _ in range(2)] for layer in layers]

    def forward(layer):
        x, gamma, beta, rm, rv, _ = layer
        return device.ops.batchnorm_train_forward(x, gamma, beta, rm.copy(), rv.copy(), 0.9, 1e-5)

    def backward(layer, saved, outputs):
        x, gamma, _, _, _, dy = layer
        return device.ops.batchnorm_backward(dy, x, gamma, saved[1], saved[2], *outputs)

    alone = [backward(layer, forward(layer), [None, None]) for layer in layers]
    workspace = dict(device.ops._workspaces)
    assert len(workspace) == 1
    assert device.launched() == ["bn_stats", "bn_normalize", "bn_backward_reduce", "bn_backward_dx"] * 3
    for _ in range(2):  # a step: the forwards, then the backwards in reverse
        saved = [forward(layer) for layer in layers]
        for i in reversed(range(len(layers))):
            for a, b in zip(backward(layers[i], saved[i], into[i]), alone[i]):
                assert_same_bits(a, b)
    assert device.ops._workspaces.keys() == workspace.keys()  # made by the first steps' calls, none since
    assert all(device.ops._workspaces[key] is buffer for key, buffer in workspace.items())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", ["31x4 small", "600x130 stats"])
def test_batchnorm_kernels_update_the_running_statistics_with_the_references_1_minus_m(make_device, rng, shape,
                                                                                     dtype):
    """At momentum 0.9999 from running statistics of 0 (a new layer's mean) the update is (1 − m)·μ:
    float32's T(1) − T(m) is 1.66e-4 off 1 − m, which the reference makes in float64 and rounds once."""
    n, c, sm_count = BN_SHAPES[shape]
    device = make_device(sm_count)
    x, gamma, beta, *_ = bn_inputs(rng, n, c, dtype, offset=3.0)
    got, want = [np.zeros(c, dtype), np.zeros(c, dtype)], [np.zeros(c, dtype), np.zeros(c, dtype)]
    device.ops.batchnorm_train_forward(x, gamma, beta, *got, 0.9999, 1e-5)
    device.ref.batchnorm_train_forward(x, gamma, beta, *want, 0.9999, 1e-5)
    for a, b in zip(got, want):
        assert relative_error(a, b) < 10 * TOLERANCE[dtype]


def stacked_momenta(rng, c):
    """(K, one momentum per feature): K models' momenta — 0, one near 1, others drawn — each repeated over its C/K
    features, as `StackedBatchNorm` lays them out for the (B, K·C) matrix."""
    k = next(d for d in range(2, c + 1) if c % d == 0)
    values = np.concatenate([[0.0, 0.9999], rng.uniform(0, 1, k)])[:k]
    return k, np.repeat(values, c // k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", list(BN_SHAPES))
@pytest.mark.parametrize("unaligned", [False, True], ids=["aligned", "unaligned"])
def test_batchnorm_kernels_take_one_momentum_per_feature(make_device, rng, shape, dtype, unaligned):
    """K stacked models with momenta of their own (one float64 per feature): the forward kernels read each
    feature's momentum themselves — the launches of one momentum, nothing after them — and each model's columns
    get the bits its momentum gives them alone (its number passed as `momentum`), y, μ and 1/σ unchanged; near
    the reference's, which the same per-feature momenta give (they ran at momentum 1, then the statistics were
    updated again from 1/σ: a dozen launches more, and σ² taken back from 1/√(σ² + ε) off by its rounding)."""
    n, c, sm_count = BN_SHAPES[shape]
    device = make_device(sm_count)
    x, gamma, beta, rm, rv, _ = bn_inputs(rng, n, c, dtype, unaligned=unaligned)
    k, momenta = stacked_momenta(rng, c)
    got = [rm.copy(), rv.copy()]
    y, mean, inv_std = device.ops.batchnorm_train_forward(x, gamma, beta, *got, momenta, 1e-5)
    forward = ["bn_forward_small"] if device.ops.forward_in_one_launch(n, c) else ["bn_stats", "bn_normalize"]
    assert device.launched() == forward
    for model in range(k):
        columns = slice(model * (c // k), (model + 1) * (c // k))
        alone = [rm.copy(), rv.copy()]
        alone_out = device.ops.batchnorm_train_forward(x, gamma, beta, *alone, float(momenta[columns][0]), 1e-5)
        for a, b in zip((y, mean, inv_std), alone_out):
            assert_same_bits(a, b)
        for a, b in zip(got, alone):
            assert_same_bits(a[columns], b[columns])
    want = [rm.copy(), rv.copy()]
    device.ref.batchnorm_train_forward(x, gamma, beta, *want, momenta, 1e-5)
    for a, b in zip(got, want):
        assert relative_error(a, b) < 10 * TOLERANCE[dtype]


def test_batchnorm_kernels_leave_momenta_they_cannot_read_to_the_reference(make_device, rng):
    """Per-feature momenta the kernels cannot read in place (float32, strided) are the reference's to apply:
    nothing launched, its bits."""
    device = make_device()
    x, gamma, beta, rm, rv, _ = bn_inputs(rng, 31, 4, np.float64)
    for momenta in (np.full(4, 0.5, np.float32), np.linspace(0.1, 0.9, 8)[::2]):
        got, want = [rm.copy(), rv.copy()], [rm.copy(), rv.copy()]
        out = device.ops.batchnorm_train_forward(x, gamma, beta, *got, momenta, 1e-5)
        ref = device.ref.batchnorm_train_forward(x, gamma, beta, *want, momenta, 1e-5)
        for a, b in zip([*out, *got], [*ref, *want]):
            assert_same_bits(a, b)
    assert device.launched() == []


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_kernels_keep_the_digits_of_a_far_mean(make_device, rng, dtype):
    """Mean 1e4, spread ~1: kernels and reference both close to float64 truth (no E[x²] − E[x]²)."""
    device = make_device()
    x, gamma, beta, rm, rv, dy = bn_inputs(rng, 3000, 40, dtype, offset=1e4)
    y, mean, inv_std = device.ops.batchnorm_train_forward(x, gamma, beta, rm, rv, 0.9, 1e-5)
    x64 = x.astype(np.float64)
    truth = (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-5) * gamma + beta
    assert relative_error(y, truth) < (2e-3 if dtype == np.float32 else 1e-10)
    assert relative_error(inv_std, 1 / np.sqrt(x64.var(0) + 1e-5)) < (1e-4 if dtype == np.float32 else 1e-10)
    assert device.launched() == ["bn_stats", "bn_normalize"]


@pytest.mark.parametrize("per_feature", [False, True], ids=["one momentum", "per feature"])
@pytest.mark.parametrize("dtype, vec", [(np.float32, 4), (np.float64, 2)])
@pytest.mark.parametrize("n, c", [(2, 4), (100, 64), (257, 36)])
def test_bn_forward_small_with_wide_loads_matches_the_reference_too(libraries, rng, n, c, dtype, vec, per_feature):
    """The instances CupyOps never launches (it takes bn_forward_small with V = 1) are compiled all
    the same: launched here directly, they compute the reference's forward too."""
    x, gamma, beta, rm, rv, _ = bn_inputs(rng, n, c, dtype)
    momentum = stacked_momenta(rng, c)[1] if per_feature else 0.9
    momenta = dict(momentum=0.0, momenta=momentum, per_feature=1) if per_feature else \
        dict(momentum=momentum, momenta=np.zeros(1), per_feature=0)
    args = (C_TYPES[np.dtype(dtype)], vec)
    spec = SOURCES["batchnorm.cu"].kernels()["bn_forward_small"]
    forward = Kernel(spec, args, Emulated(libraries["batchnorm.cu"], spec, args, []), np.ndarray)
    y, stats, running = np.empty_like(x), np.empty((2, c), dtype), [rm.copy(), rv.copy()]
    forward((-(-c // (xdl.cuda.ops.BLOCK_X * vec)), 1), (xdl.cuda.ops.BLOCK_X, xdl.cuda.ops.BLOCK_Y), x=x, y=y,
            n_rows=n, n_cols=c, stats=stats, gamma=gamma, beta=beta, group=c, gamma_ld=c, beta_ld=c,
            running_mean=running[0], running_var=running[1], **momenta, eps=1e-5)
    want_running = [rm.copy(), rv.copy()]
    want_y, _, want_inv_std = NumpyOps(NumpyBackend(0)).batchnorm_train_forward(x, gamma, beta, *want_running,
                                                                                 momentum, 1e-5)
    for a, b in ((y, want_y), (stats[1], want_inv_std), *zip(running, want_running)):
        assert relative_error(a, b) < 10 * TOLERANCE[dtype]


# -- penalty.cu: penalty_forward / penalty_backward -------------------------------------------------
# (models K, row width, columns penalized, SMs): "n=…" a model's (n,) range of its flat buffer, λ/m a number;
# "K=…" K stacked models' (K, n) region of their (K, width) buffers, a (K, 1) column of λ_k/m
PENALTY_LAYOUTS = {
    "n=1": (1, 1, (0, 1), 4), "n=255": (1, 255, (0, 255), 4), "n=257 offset": (1, 300, (3, 260), 4),
    "n=4096 16 blocks": (1, 4096, (0, 4096), 1), "n=70001 grid-stride": (1, 70001, (0, 70001), 1),
    "n=70001 many blocks": (1, 70001, (0, 70001), 40),
    "K=1 region": (1, 40, (0, 33), 4), "K=2": (2, 700, (0, 513), 1), "K=3 unaligned": (3, 1031, (3, 998), 4),
    "K=4 short rows": (4, 9, (0, 7), 4), "K=5": (5, 5000, (0, 4999), 40),
}


def penalty_inputs(rng, layout, dtype, special=None):
    """(w, grad, slope, gy) of a `PENALTY_LAYOUTS` layout: exact zeros (±0) among the weights and, if ``special``
    (NaN or ∞), it and ±∞ too; ``grad`` a `GradientBuffer`."""
    k, width, columns, _ = PENALTY_LAYOUTS[layout]
    one_model = layout.startswith("n=")
    host = rng.standard_normal((k, width)) * rng.choice([1e-3, 1.0, 1e3], size=(k, 1))
    host[rng.random(host.shape) < 0.2] = 0.0
    host[rng.random(host.shape) < 0.05] = -0.0
    if special:  # in the penalized columns, in model 0 (λ = 0 for K > 2: ∞·0 is NaN) and another
        host[[0, k - 1, k - 1], rng.integers(*columns, 3)] = [np.inf, special, -np.inf]
    index = (0 if one_model else slice(None), slice(*columns))
    w, grad = host.astype(dtype)[index], GradientBuffer(rng.standard_normal((k, width)).astype(dtype), index)
    if one_model:
        return w, grad, float(rng.uniform(0.01, 2)), np.asarray(rng.uniform(0.5, 2), dtype)
    slope = rng.uniform(0, 2, (k, 1)).astype(dtype)
    slope[0] = 0.0 if k > 2 else slope[0]  # a model with λ = 0 among them
    return w, grad, slope, np.asarray(rng.uniform(0.5, 2), dtype)


class GradientBuffer:
    """A gradient buffer's values and the region of it penalized: ``copy()`` a fresh copy's region (the weights'
    layout: the kernels take rows of one stride)."""

    def __init__(self, values, index):
        self.values, self.index = values, index

    def copy(self):
        return self.values.copy()[self.index]


def exact_penalty(w, kind, slope):
    """The cost in float64 of the values as given (λ/m rounded to w's dtype, as both compute with it)."""
    w64 = np.atleast_2d(w.astype(np.float64))
    sums = (w64 * w64 if kind == "l2" else np.abs(w64)).sum(axis=-1)
    slopes = np.asarray(slope, dtype=w.dtype).astype(np.float64).reshape(-1)
    return float((sums * slopes).sum() * (0.5 if kind == "l2" else 1.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", list(PENALTY_LAYOUTS))
@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_penalty_kernels_match_the_reference(make_device, rng, kind, layout, dtype):
    """One launch each way. The cost, summed in double: within 4 roundings of w's dtype of the exact cost of
    the same values (each sum, its product with λ/m, the total, the scale) and within 1e-6 (float32, whose
    reference sums pairwise in float32) / 1e-12 (float64) of the reference; the gradient bit for bit (exact
    arithmetic: c·w or c·sign(w) added once, sign(±0) = 0)."""
    k, width, columns, sm_count = PENALTY_LAYOUTS[layout]
    device = make_device(sm_count)
    w, grad, slope, gy = penalty_inputs(rng, layout, dtype)
    cost = device.ops.penalty_forward(w, kind, slope)
    want = device.ref.penalty_forward(w, kind, slope)
    assert cost.shape == () and cost.dtype == want.dtype == dtype
    exact = exact_penalty(w, kind, slope)
    assert abs(float(cost) - exact) <= 4 * np.finfo(dtype).eps * abs(exact)
    assert abs(float(cost) - float(want)) <= TOLERANCE[dtype] * abs(float(want))
    got, expected, before = grad.copy(), grad.copy(), grad.copy()
    device.ops.penalty_backward(got, w, gy, slope, kind)
    device.ref.penalty_backward(expected, w, gy, slope, kind)
    assert relative_error(got, expected) < TOLERANCE[dtype]
    if device.exact:
        assert_same_bits(got, expected)
    if kind == "l1":  # a weight of exactly 0 (either sign) gets no gradient from the penalty
        zero = w == 0
        assert_same_bits(got[zero], before[zero] + np.asarray(0, dtype))
    assert device.launched() == ["penalty_forward", "penalty_backward"]
    n = columns[1] - columns[0]  # a block per 256 weights of a row, up to 16 blocks per SM in all (grid-stride)
    assert device.launches[0][1] == (min(-(-n // 256), -(-16 * sm_count // k)), k, 1)
    assert device.ops._stream_counters(1)[0] == 0  # the last block reset the counter


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_penalty_kernels_carry_nan_and_infinity_as_the_reference(make_device, rng, kind, dtype):
    """NaN and ±∞ weights: the cost NaN or ∞ where the reference's is (∞·0 of a model with λ = 0: NaN), the
    gradient's NaN and ±∞ where the reference's are, its other values as the reference's."""
    for layout, special in itertools.product(("n=257 offset", "K=3 unaligned", "K=5"), (np.nan, np.inf)):
        device = make_device(PENALTY_LAYOUTS[layout][3])
        w, grad, slope, gy = penalty_inputs(rng, layout, dtype, special)
        cost, want = device.ops.penalty_forward(w, kind, slope), device.ref.penalty_forward(w, kind, slope)
        assert not np.isfinite(want) and (np.isnan(cost) == np.isnan(want)) and (np.isnan(want) or cost == want)
        got, expected = grad.copy(), grad.copy()
        device.ops.penalty_backward(got, w, gy, slope, kind)
        device.ref.penalty_backward(expected, w, gy, slope, kind)
        np.testing.assert_array_equal(got, expected)  # (NaN where NaN)
        assert device.launched() == ["penalty_forward", "penalty_backward"]


def test_penalty_kernels_give_the_references_answer_where_they_do_not_apply(make_device, rng):
    """A strided range, a float16 one, a slope column of another dtype, a gradient given as a number: the
    reference runs (nothing launched) and answers."""
    device = make_device()
    w = rng.standard_normal(40)
    cases = [(w[::2], 0.5), (w.astype(np.float16), 0.5), (w.reshape(4, 10).astype(np.float32), np.ones((4, 1)))]
    for values, slope in cases:
        for kind in ("l2", "l1"):
            assert_same_bits(np.asarray(device.ops.penalty_forward(values, kind, slope)),
                             np.asarray(device.ref.penalty_forward(values, kind, slope)))
            got, expected = np.zeros_like(values), np.zeros_like(values)
            device.ops.penalty_backward(got, values, 0.5, slope, kind)
            device.ref.penalty_backward(expected, values, 0.5, slope, kind)
            assert_same_bits(got, expected)
    assert device.launched() == []


# -- every kernel under another order of blocks and threads ------------------------------------------
def test_kernels_give_the_same_bits_in_another_order_of_blocks_and_threads(make_device, rng):
    """The reductions' merges (shared memory between barriers, the last block of a column) and the
    dropout warps' shuffles do not depend on which block or thread runs first."""
    device = make_device(40)
    for dtype in (np.float32, np.float64):
        for n, c, unaligned in ((12000, 5, False), (3000, 520, False), (3000, 520, True), (200, 33, False)):
            x, gamma, beta, rm, rv, dy = bn_inputs(rng, n, c, dtype, unaligned=unaligned)

            def batchnorm():
                running, into = [rm.copy(), rv.copy()], [rm.copy(), rv.copy()]  # (∂L/∂γ, ∂L/∂β added into these)
                y, mean, inv_std = device.ops.batchnorm_train_forward(x, gamma, beta, *running, 0.9, 1e-5)
                return [y, mean, inv_std, *running, *device.ops.batchnorm_backward(dy, x, gamma, mean, inv_std),
                        *device.ops.batchnorm_backward(dy, x, gamma, mean, inv_std, *into, accumulate=True)]

            momenta = stacked_momenta(rng, c)[1]

            def batchnorm_with_momenta():  # K stacked models' own, one per feature
                running = [rm.copy(), rv.copy()]
                return [*device.ops.batchnorm_train_forward(x, gamma, beta, *running, momenta, 1e-5), *running]

            rerun_in_another_order(device, batchnorm)
            rerun_in_another_order(device, batchnorm_with_momenta)
        x = rng.standard_normal(9000).astype(dtype)
        rerun_in_another_order(device, lambda: [device.ops.relu_dropout_forward(x, 0.4, 3, 2, 1)[0]])
        rerun_in_another_order(device, lambda: [device.ops.stacked_dropout_forward(
            x.reshape(300, 3, 10), [0.1, 0.2, 0.3], [1, 2, 3], 2, 1)[0]])
        stacked = x.reshape(300, 3, 10)

        def stacked_relu_dropout():
            y, saved = device.ops.stacked_relu_dropout_forward(stacked, [0.0, 0.5, 0.3], [1, 2, 3], 2, 1)
            return [y, device.ops.stacked_relu_dropout_backward(stacked, y, saved, [0.0, 0.5, 0.3], [1, 2, 3], 2, 1)]

        rerun_in_another_order(device, stacked_relu_dropout)
        for kind in ("l2", "l1"):  # the penalty's sums: many blocks' partials merged by the last one
            slopes = np.array([[0.5], [0.25], [2.0]], dtype)
            rerun_in_another_order(device, lambda: [device.ops.penalty_forward(x, kind, 0.3),
                                                    device.ops.penalty_forward(x.reshape(3, 3000), kind, slopes)])
    assert {"bn_stats", "bn_backward_reduce", "bn_forward_small", "relu_dropout_forward", "stacked_dropout_apply",
            "stacked_relu_dropout_forward", "stacked_relu_dropout_backward",
            "penalty_forward"} <= set(device.launched())


# -- every claim with a GPU's rounding ---------------------------------------------------------------
@pytest.fixture(scope="module")
def device_math_libraries(tmp_path_factory):
    """`libraries` built with `device_math` (a seed other than the whole file's, when it runs so)."""
    if not HOST_HAS_FMA:
        pytest.skip("device math fuses a·b + c with the host's FMA instructions")
    return build_libraries(tmp_path_factory.mktemp("device_math_kernels"), device_math(DEVICE_MATH_SEED + 1))


def test_the_kernels_keep_their_claims_with_a_gpus_rounding(libraries, device_math_libraries, monkeypatch, rng):
    """nvcc fuses a·b + c (--fmad=true by default) and CUDA's exp, log, tanh and pow are within 1 or 2 ulps, not
    glibc's: with both (`device_math`), each kernel stays within its tolerance of the reference, and ReLU, leaky
    ReLU, the tanh, σ, softmax-CE and squared-error backwards and the dropout kernels stay bit for bit (no product
    there is added to). The optimizer
    updates differ from the reference in the last bits, as on the GPU, and so does the loss (exp, log)."""
    def on_a_gpu(sm_count=4):
        return Device(device_math_libraries, monkeypatch, sm_count)

    for dtype in (np.float32, np.float64):
        test_relu_kernels_are_numpy_maximum_and_mask_product_bit_for_bit(on_a_gpu, rng, 1025, dtype)
        test_tanh_sigmoid_and_leaky_relu_kernels_match_the_reference(on_a_gpu, rng, 1025, dtype)
        for m, classes, models in ((7, 3, 1), (33, 1024, 3), (1026, 7, 3)):
            test_softmax_ce_kernels_match_the_reference(on_a_gpu, rng, m, classes, models, dtype)
        for n in (7, 1025):
            test_bce_and_mse_kernels_match_the_reference(on_a_gpu, rng, n, dtype)
        for rule in RULES:
            for layout in ("n=5", "n=1023 unaligned", "K=3 unaligned", "K=5 held"):
                test_optimizer_kernels_match_the_reference(on_a_gpu, rng, rule, layout, dtype)
        test_dropout_kernels_draw_the_reference_mask_bit_for_bit(on_a_gpu, rng, 2057, dtype, 1, 5)
        test_stacked_dropout_kernel_draws_each_models_own_mask(on_a_gpu, rng, (7, 3, 5), dtype)
        test_stacked_relu_dropout_kernels_are_the_pair_and_each_models_own(on_a_gpu, rng, 33, 17, 4, dtype)
        for shape in ("31x4 small", "600x130 stats", "12000x5 160 partials"):
            test_batchnorm_kernels_match_the_reference(on_a_gpu, rng, shape, dtype, False)
        for shape in ("31x4 one block", "600x130 two columns"):  # ∂L/∂γ never fused into the add: the same bits
            test_batchnorm_backward_reduction_adds_its_gradients_into_the_given_outputs(on_a_gpu, monkeypatch, rng,
                                                                                         shape, dtype, False)
        test_batchnorm_kernels_keep_the_digits_of_a_far_mean(on_a_gpu, rng, dtype)
        for kind in ("l2", "l1"):
            for layout in ("n=257 offset", "n=70001 many blocks", "K=5"):
                test_penalty_kernels_match_the_reference(on_a_gpu, rng, kind, layout, dtype)
    if Device(libraries, monkeypatch).exact:  # (not when EMU_DEVICE_MATH builds `libraries` so too)
        p, g = rng.standard_normal((2, 1025)).astype(np.float32)
        z, labels = rng.standard_normal((64, 10)), rng.integers(0, 10, 64)
        results = []
        for make in (lambda: Device(libraries, monkeypatch), on_a_gpu):  # (each Device patches CupyOps' kernels)
            device = make()
            results.append([*device.ops.softmax_cross_entropy_forward(z, labels), p.copy()])
            device.ops.sgd_update(results[-1][2], g, 0.01, 0.001)
            assert device.launched() == ["softmax_ce_forward", "sgd_update"]
        # CUDA's exp and log (the probabilities; the mean, one number, may round alike); p − lr·(g + wd·p) fused
        assert all((a != b).any() for a, b in zip(*(r[1:] for r in results)))


# -- the emulator itself ---------------------------------------------------------------------------
def faulty_line(text):
    """The line of FAULTY (as compiled: faulty.cu) that holds ``text``."""
    return next(i for i, line in enumerate(FAULTY.splitlines(), 1) if text in line)


def launch_faulty(libraries, name, order=0, threads=64, blocks=1, more=()):
    """``name`` over ``blocks`` × ``threads`` on ``out`` (128 zeros: the first 64 returned) and the arguments
    after it (``more``)."""
    out = np.zeros(128, np.float32)
    spec = parse_kernels(FAULTY)[name]
    function = Emulated(libraries["faulty.cu"], spec, ("float",), [])
    function.order = order
    function((blocks,), (threads,), (out, *more))
    return out[:64]


ONE_ARGUMENT_MATH = ("fabs", "sqrt", "exp", "log", "log1p", "tanh")  # those CUDA overloads for float too


@pytest.mark.parametrize("device", [False, True], ids=["exact", "device-math"])
def test_the_emulators_math_keeps_a_float_argument_float_as_cudas_overloads_do(tmp_path, device):
    """CUDA's fabs(float), tanh(float), … are float functions (fabsf, tanhf); the emulator took C's double ones
    where <cmath>'s were not brought into the global namespace: exp(-fabs(x)) of σ and binary cross-entropy
    computed a float x's exponential in double, rounded once, where a GPU's expf is off by up to 2 ulps (device
    math's too: its device_exp(double) moves a double's ulp) — a kernel checked closer than it runs, and a float
    kernel's v/(1 + fabs(v)) gave other bits than the GPU's and the reference's."""
    if device and not HOST_HAS_FMA:
        pytest.skip("device math fuses a·b + c with the host's FMA instructions")
    called = {name for path in kernel_dir().glob("*.cu") for name in ONE_ARGUMENT_MATH
              if re.search(rf"\b{name}\(", _comments_removed(path.read_text()))}
    assert {"fabs", "exp"} <= called
    checks = "\n".join(f'    static_assert(std::is_same_v<decltype({name}(x)), T>, "{name}");'
                       for name in sorted(called))
    flags = device_math(1) if device else []
    program = tmp_path / "math.cpp"
    program.write_text(f"#include <type_traits>\ntemplate <typename T> void check(T x) {{\n{checks}\n}}\n"
                       "template void check<float>(float);\ntemplate void check<double>(double);\n")
    compile = subprocess.run(["g++", "-std=c++20", "-fsyntax-only", *flags, "-include", str(SHIM), str(program)],
                             capture_output=True, text=True)
    assert compile.returncode == 0, compile.stderr[-3000:]


def _comments_removed(text: str) -> str:
    return re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.S)


def test_the_emulator_reports_a_barrier_some_threads_never_reach(libraries):
    with pytest.raises(AssertionError, match=r"block \(0, 0, 0\): 1 of 64 threads finished, the others wait"):
        launch_faulty(libraries, "early_return")


def test_the_emulator_shows_a_missing_barrier_as_a_result_that_depends_on_the_order(libraries):
    results = [launch_faulty(libraries, "missing_barrier", order) for order in ORDERS]
    assert not np.array_equal(results[0], results[1], equal_nan=True)  # (an unwritten value is NaN: not a difference)
    # a full warp's shuffle: every lane takes the value of the lane it names, in its own warp
    want = np.arange(64, dtype=np.float32).reshape(2, 32)
    np.testing.assert_array_equal(launch_faulty(libraries, "rotate", ORDERS[1]), np.roll(want, -1, axis=1).ravel())


def test_the_emulator_gives_shared_memory_no_thread_wrote_as_garbage(libraries):
    """A GPU's shared memory starts as whatever the SM held: a kernel that reads what no thread of its
    block wrote (the partials of warps it does not have) sums garbage there. A `static`'s zeros — and,
    after, the block before's values — gave the right sum here; each block finds 0xFF bytes, NaN."""
    for order in ORDERS:
        assert np.isnan(launch_faulty(libraries, "unwritten_shared", order)[0])


def test_the_emulator_refuses_a_shuffle_from_a_lane_beyond_the_block(libraries):
    """A block of 48 threads: its second warp has 16 lanes, and a shuffle from its lane 16 read past
    the emulator's slots (what the GPU gives there is undefined)."""
    with pytest.raises(AssertionError, match="__shfl_sync from a lane beyond the block's threads"):
        launch_faulty(libraries, "shuffle_beyond_the_block", threads=48)


def test_the_emulator_reports_threads_waiting_at_different_barriers(libraries):
    """Odd threads at the `if`'s __syncthreads, even ones at the `else`'s: as many calls each, so the
    count passed; on a GPU they are two barriers (undefined behaviour, a hang or a wrong result)."""
    line = faulty_line("barrier_in_each_branch")
    first, second = rf"\S*faulty.cu:{line + 3}", rf"\S*faulty.cu:{line + 5}"  # (either may wait first)
    lines = rf"({first} and {second}|{second} and {first})"
    for order in ORDERS:
        with pytest.raises(AssertionError, match=rf"block \(0, 0, 0\): threads \(\d+, 0, 0\) and \(\d+, 0, 0\) wait "
                                                 rf"at different __syncthreads: {lines}\b"):
            launch_faulty(libraries, "barrier_in_each_branch", order)


# -- racecheck: every load and store of the kernels checked (cuda_emulation.h) ---------------------
@pytest.mark.parametrize("name, byte, lines", [
    ("missing_barrier", r"@0x\w+ \(__shared__ values \+ \d+\)", ("values[threadIdx.x] =", "= values[63")),
    ("shared_counter", r"@0x\w+ \(__shared__ total \+ 0\)", ("total += T(1)", "total += T(1)")),
    ("neighbour_in_global", r"out\[\d+\] \(byte 0\)", ("out[threadIdx.x] = T(threadIdx.x)", "out[64 + threadIdx.x]")),
])
def test_racecheck_reports_two_threads_of_a_block_on_one_byte_between_barriers(racecheck_libraries, name, byte, lines):
    """Fibers switch only at barriers: a read-modify-write of shared `total` by every thread is atomic
    here and loses updates on a GPU; a thread reading its neighbour's value before the barrier happens
    to read it after. Racecheck sees the accesses, with the line of each."""
    at = "|".join(str(faulty_line(text)) for text in lines)
    access = rf"(read|write) of block \(0, 0, 0\) thread \(\d+, 0, 0\) at faulty.cu:({at})"
    for order in ORDERS:
        with pytest.raises(AssertionError, match=rf"racecheck: threads of a block between the same barriers: byte "
                                                 rf"{byte}: {access} after {access}\b"):
            launch_faulty(racecheck_libraries, name, order)


def test_racecheck_reports_blocks_writing_one_byte_or_reading_another_blocks_write(racecheck_libraries):
    """Blocks run one after another here, so a block sees the writes of those before it; on a GPU they
    run at once, in any order: a sum of the blocks' `+=` loses some, a block reads old or new values."""
    line = faulty_line("out[0] += T(1)")
    for order in ORDERS:
        with pytest.raises(AssertionError, match=rf"racecheck: a block reads another block's write without the "
                                                 rf"last-block protocol: byte out\[0\] \(byte 0\): read of block "
                                                 rf"\(\d, 0, 0\) thread \(0, 0, 0\) at faulty.cu:{line} after write of "
                                                 rf"block \(\d, 0, 0\) thread \(0, 0, 0\) at faulty.cu:{line}\b"):
            launch_faulty(racecheck_libraries, "blocks_add_to_one_total", order, blocks=3)
        with pytest.raises(AssertionError, match=r"racecheck: two blocks write: byte out\[0\]"):
            launch_faulty(racecheck_libraries, "blocks_write_one_value", order, blocks=3)
    with pytest.raises(AssertionError, match=r"racecheck: a block writes what another block read: byte out\[1\] "
                                             r"\(byte 0\): write of block \(1, 0, 0\)"):
        launch_faulty(racecheck_libraries, "block_copies_another_blocks_value", blocks=2)


def test_racecheck_passes_the_last_block_protocol_only_with_both_fences(racecheck_libraries):
    """batchnorm.cu's merge of the blocks' partials: each writer fences before its block counts itself (and
    a barrier orders that fence before another thread's count), the last block fences after counting;
    without either fence or the barrier the GPU may read stale partials."""
    counter = np.zeros(1, np.int32)
    for order in ORDERS:
        out = launch_faulty(racecheck_libraries, "last_block_sums", order, 32, 5, (counter, 0))
        assert out[5] == 15 and counter[0] == 0
    read = faulty_line("total += out[b]")
    for leave_out in (1, 2, 3):  # 3: the last thread may count its block before thread 0 wrote
        with pytest.raises(AssertionError, match=rf"racecheck: a block reads another block's write without the "
                                                 rf"last-block protocol: byte out\[\d\] .*faulty.cu:{read}"):
            launch_faulty(racecheck_libraries, "last_block_sums", 0, 32, 5, (np.zeros(1, np.int32), leave_out))


def test_racecheck_passes_the_faultless_kernels(racecheck_libraries):
    np.testing.assert_array_equal(launch_faulty(racecheck_libraries, "rotate", 7),
                                  np.roll(np.arange(64, dtype=np.float32).reshape(2, 32), -1, axis=1).ravel())


# -- racecheck on every kernel, a few small sizes -------------------------------------------------------
def test_racecheck_finds_no_race_in_the_kernels(racecheck_libraries, monkeypatch, rng):
    """Every kernel of `SOURCES`, through CupyOps' own launches, under racecheck in both orders: no two
    threads of a block on one byte between barriers, no block reading another's output but through the
    last-block protocol (batchnorm.cu's merges), every barrier met at one line."""
    device = Device(racecheck_libraries, monkeypatch, 40)
    ops = device.ops
    for order in ORDERS:
        device.order = order
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal(1200).astype(dtype)
            y = ops.relu_forward(x)
            ops.relu_backward(x, y)
            ops.tanh_backward(x, ops.tanh_forward(x))
            ops.sigmoid_backward(x, ops.sigmoid_forward(x))
            ops.leaky_relu_backward(x, ops.leaky_relu_forward(x, 0.1), 0.1)
            z, labels = rng.standard_normal((40, 5)).astype(dtype), rng.integers(0, 5, 20)
            means, probs = ops.softmax_cross_entropy_forward(z, labels, 2)
            ops.softmax_cross_entropy_backward(probs, labels, rng.standard_normal(2).astype(dtype), 2)
            # the means' merge over 3 blocks' rows (the last-block protocol), 300 models in two chunks
            ops.softmax_cross_entropy_forward(rng.standard_normal((600, 3)).astype(dtype), labels[:1].repeat(600), 1)
            ops.softmax_cross_entropy_forward(rng.standard_normal((600, 3)).astype(dtype), labels[:2], 300)
            # the elementwise losses: one block, and the mean over 5 blocks' elements (the last-block protocol)
            for shape in ((7, 3), (1200,)):
                z, y, gy = elementwise_loss_inputs(rng, math.prod(shape), dtype)
                z, y = z.reshape(shape), y.reshape(shape)
                ops.binary_cross_entropy_forward(z, y)
                ops.binary_cross_entropy_backward(z, y, gy)
                ops.squared_error_forward(z, y)
                ops.squared_error_backward(z, y, gy)
            steps_done = np.array([2], np.int64)
            for offset in (0, 1):
                got, mask = ops.dropout_forward(x[offset:], 0.3, 1, 2, 3, steps_done=steps_done)
                ops.dropout_backward(x[offset:], mask, 0.3, 1, 2, 3, steps_done=steps_done)
                got, mask = ops.relu_dropout_forward(x[offset:], 0.3, 1, 2, 3)
                ops.relu_dropout_backward(x[offset:], got, mask, 0.3, 1, 2, 3)
            stacked = x.reshape(40, 3, 10)
            got, mask = ops.stacked_dropout_forward(stacked, [0.1, 0.2, 0.3], [1, 2, 3], 2, 1, steps_done)
            ops.stacked_dropout_backward(stacked, mask, [0.1, 0.2, 0.3], [1, 2, 3], 2, 1, steps_done)
            got, mask = ops.stacked_relu_dropout_forward(stacked, [0.0, 0.6, 0.3], [1, 2, 3], 2, 1, steps_done)
            ops.stacked_relu_dropout_backward(stacked, got, mask, [0.0, 0.6, 0.3], [1, 2, 3], 2, 1, steps_done)
            for rule in RULES:
                for layout in ("n=1025", "n=1023 unaligned", "K=3 unaligned", "K=5 held"):
                    n_state, update = RULES[rule]
                    k, width, columns, kind = LAYOUTS[layout]
                    shape = (k, width) if k > 1 else (width,)
                    region = (slice(None), slice(*columns)) if k > 1 else slice(*columns)
                    arrays = [np.abs(rng.standard_normal(shape)).astype(dtype)[region] for _ in range(2 + n_state)]
                    update(ops, *arrays[:2], arrays[2:], hyperparameters(kind, k))
            # 35 partials of a column (more than a pass of the merge), V > 1, two columns unaligned, one launch
            for n, c, unaligned in ((2200, 5, False), (300, 8, False), (300, 40, True), (31, 4, False)):
                x2, gamma, beta, rm, rv, dy = bn_inputs(rng, n, c, dtype, unaligned=unaligned)
                out, mean, inv_std = ops.batchnorm_train_forward(x2, gamma, beta, rm, rv, 0.9, 1e-5)
                ops.batchnorm_backward(dy, x2, gamma, mean, inv_std)
                into = rng.standard_normal((2, c)).astype(dtype)  # ∂L/∂γ, ∂L/∂β added into given arrays too
                ops.batchnorm_backward(dy, x2, gamma, mean, inv_std, *into, accumulate=True)
                ops.batchnorm_backward(dy, x2, gamma, mean, inv_std, None, into[1])
                k = 2 if c % 2 == 0 else c  # K models' (K, C/K) rows of their (K, P) buffer
                flat = rng.standard_normal((k, 2 * c // k + 1)).astype(dtype)
                ops.batchnorm_backward(dy, x2, gamma, mean, inv_std, flat[:, :c // k], flat[:, c // k + 1:], True)
                ops.batchnorm_inference(x2, gamma, beta, rm, rv, 1e-5)
                # γ and β read in place in those rows: the forward kernels, dx and inference
                gamma_rows, beta_rows = flat[:, :c // k], flat[:, c // k + 1:]
                out, mean, inv_std = ops.batchnorm_train_forward(x2, gamma_rows, beta_rows, rm, rv, 0.9, 1e-5)
                ops.batchnorm_backward(dy, x2, gamma_rows, mean, inv_std)
                ops.batchnorm_train_forward(x2, gamma_rows, beta_rows, rm, rv, stacked_momenta(rng, c)[1], 1e-5)
                ops.batchnorm_inference(x2, gamma_rows, beta_rows, rm, rv, 1e-5)
            for kind in ("l2", "l1"):  # a model's range over 2 blocks, 3 models' regions over 1 and 2
                for layout in ("n=257 offset", "K=3 unaligned", "K=2"):
                    w, grad, slope, gy = penalty_inputs(rng, layout, dtype)
                    ops.penalty_forward(w, kind, slope)
                    ops.penalty_backward(grad.copy(), w, gy, slope, kind)
    assert max(grid[1] for e, grid, *_ in device.launches if e.startswith("bn_stats")) > 32
    assert max(grid[0] for e, grid, *_ in device.launches if e.startswith("bn_backward_reduce")) > 1
    # every kernel of every source: a list of names here let a kernel added to a .cu file, and to none of these
    # calls, pass without ever running on the emulator or under racecheck
    assert set(device.launched()) == {name for source in SOURCES.values() for name in source.kernels()}
