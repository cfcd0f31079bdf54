"""Kernel bindings from one source, checked without a GPU: signatures parsed from kernels/*.cu, the
instances and defines of xdl/cuda/source.py, launches by parameter name, and (where nvcc is
installed) every instance compiled from the generated translation unit."""

import inspect
import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest

import xdl.cuda.ops
import xdl.cuda.source
from xdl.cuda.kernels import Kernel
from xdl.cuda.ops import BLOCK_X, BLOCK_Y, ROW_GROUP
from xdl.cuda.source import SOURCES, kernel_dir, parse_kernels


def test_every_source_declares_its_kernels_once():
    assert sorted(p.name for p in kernel_dir().glob("*.cu")) == sorted(SOURCES)
    for file, source in SOURCES.items():
        text, kernels = source.text(), source.kernels()
        assert kernels, file
        for spec in kernels.values():
            assert len(spec.template) == len(source.instances[0]), spec.name  # one template shape per file
            assert spec.params and len({p.name for p in spec.params}) == len(spec.params), spec.name
        # the signatures live in the source only: no explicit instantiation, no block size of its own
        assert not re.search(r"^\s*template\s+__global__", text, re.M), file
        for define in source.defines:
            assert not re.search(rf"^\s*#\s*define\s+{define}\b", text, re.M), (file, define)
        assert len(source.name_expressions()) == len(kernels) * len(source.instances)


def test_the_host_launches_with_the_compiled_block_shape():
    defines = SOURCES["batchnorm.cu"].defines
    assert (BLOCK_X, BLOCK_Y, ROW_GROUP) == (defines["BLOCK_X"], defines["BLOCK_Y"], defines["ROW_GROUP"])
    assert {"-DBLOCK_X=32", "-DBLOCK_Y=8", "-DROW_GROUP=8"} <= set(SOURCES["batchnorm.cu"].options())


def test_every_kernel_the_ops_launch_exists():
    launched = set(re.findall(r'"(\w+_update|bn_\w+|\w*dropout_apply)"', inspect.getsource(xdl.cuda.ops)))
    defined = {name for source in SOURCES.values() for name in source.kernels()}
    assert launched and launched <= defined, launched - defined


def bound(file="batchnorm.cu", name="bn_stats", args=("float", 4)):
    return Kernel(SOURCES[file].kernels()[name], args, None, np.ndarray)


def stats_arguments():
    x = np.zeros((8, 4), np.float32)
    return dict(x=x, n_rows=8, n_cols=4, rows_per_block=8, stats=np.zeros((2, 4), np.float32),
                partials=np.zeros((2, 4), np.float32), counters=np.zeros(4, np.int32), running_mean=x[0],
                running_var=x[1], momentum=0.9, momenta=np.zeros(1), per_feature=0, eps=1e-5)


def test_a_launch_passes_arguments_by_name_in_the_source_order():
    args = bound().arguments(**stats_arguments())
    assert [type(a).__name__ for a in args[1:4]] == ["int64", "int32", "int64"]
    assert isinstance(args[-1], np.float64) and args[-1] == 1e-5


@pytest.mark.parametrize("change, message", [
    ({"n_rows": None}, r"missing parameter\(s\) 'n_rows'"),
    ({"n_row": 8, "n_rows": None}, r"missing parameter\(s\) 'n_rows'; unknown parameter\(s\) 'n_row'"),
    ({"epsilon": 1e-5}, r"unknown parameter\(s\) 'epsilon'"),
    ({"x": np.zeros((8, 4))}, r"parameter 'x' \(float\*\) needs a float32 array, got float64"),
    ({"counters": np.zeros(4, np.int64)}, r"parameter 'counters' \(int\*\) needs a int32 array"),
    ({"x": [[0.0]]}, r"parameter 'x' \(float\*\) needs a device array, got list"),
    ({"n_cols": 2.5}, r"parameter 'n_cols' \(int\) needs an integer, got 2.5"),
    ({"n_cols": 2**40}, r"parameter 'n_cols' \(int\) is out of range"),
    ({"eps": "1e-5"}, r"parameter 'eps' \(double\) needs a real number"),
])
def test_a_wrong_argument_names_the_kernel_and_the_parameter(change, message):
    values = {k: v for k, v in {**stats_arguments(), **change}.items() if v is not None}
    with pytest.raises(TypeError, match=r"^kernel bn_stats<float, 4>: " + message):
        bound().arguments(**values)


def test_the_parser_refuses_a_parameter_type_it_cannot_bind():
    with pytest.raises(ValueError, match=r"parameter 'h' has type"):
        parse_kernels("template <typename T> __global__ void k(T* p, half h) { }")
    (spec,) = parse_kernels("template <typename T, int V>\n__global__ void __launch_bounds__(256, 2)\n"
                            "k(const T* __restrict__ x, // values\n long long n) { }").values()
    assert spec.template == ("T", "V") and [(p.name, p.ctype, p.const) for p in spec.params] == [
        ("x", "T*", True), ("n", "long long", False)]


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
@pytest.mark.parametrize("file", sorted(SOURCES))
def test_every_instance_compiles_with_nvcc(tmp_path, file):
    source = SOURCES[file]
    unit = tmp_path / f"all_{file}"
    unit.write_text(source.translation_unit(kernel_dir() / file))
    result = subprocess.run(["nvcc", "--ptx", "-arch=sm_90", *source.options(), "-o", str(tmp_path / "out.ptx"),
                             str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    entries = (tmp_path / "out.ptx").read_text().count(".entry")
    assert entries == len(source.name_expressions())


class FakeCuda:
    """Just enough of cupy.cuda for CupyOps' launch geometry, on the CPU."""

    class Device:
        id = 0
        attributes = {"MultiProcessorCount": 4, "MaxRegistersPerMultiprocessor": 65536,
                      "MaxSharedMemoryPerMultiprocessor": 228 * 1024, "MaxThreadsPerMultiProcessor": 2048}

    class _Stream:
        ptr = 0

    @staticmethod
    def get_current_stream():
        return FakeCuda._Stream


@pytest.mark.filterwarnings("ignore:xdl. cuBLAS could not be loaded")  # a fake cupy: no libcublas
def test_cupy_ops_launch_every_kernel_with_arguments_its_binding_accepts(monkeypatch):
    """CupyOps' host code on the CPU: NumPy arrays stand in for device arrays, and each launch goes
    through the real binding of its kernel (names, dtypes, integer ranges), then is recorded."""
    import types

    from xdl.backend import NumpyBackend

    launches, grids = [], []

    class Recorded:
        attributes = {"num_regs": 64, "shared_size_bytes": 4096}

        def __init__(self, expression):
            self.expression = expression

        def __call__(self, grid, block, args):
            assert all(isinstance(g, int) and g > 0 for g in (*grid, *block)), (self.expression, grid, block)
            launches.append(self.expression)
            grids.append(grid)

    def fake_kernel(file, name, dtype, *template):
        spec = SOURCES[file].kernels()[name]
        args = (xdl.cuda.source.C_TYPES[np.dtype(dtype)], *template)
        assert args in SOURCES[file].instances
        return Kernel(spec, args, Recorded(spec.expression(args)), np.ndarray)

    monkeypatch.setattr(xdl.cuda.ops, "kernel", fake_kernel)
    backend = NumpyBackend(0)
    backend.xp = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")}, cuda=FakeCuda)
    ops = xdl.cuda.ops.CupyOps(backend)
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        p, g, m, v = (rng.standard_normal(1031).astype(dtype) for _ in range(4))
        ops.sgd_update(p, g, 0.1, 0.01)
        ops.momentum_update(p, g, m, 0.1, 0.9, True, 0.01)
        ops.rmsprop_update(p, g, m, 0.1, 0.9, 1e-8)
        ops.adam_update(p, g, m, v, 0.1, 0.9, 0.999, 1e-8, 3, 0.01, True)
        # an Optimizer's call: its hyperparameters held in device memory, its step counter there too
        held, before = np.array([0.1, 0.9, 0.999, 1e-8, 0.01]), len(launches)
        ops.adam_update(p, g, m, v, *(held[i:i + 1] for i in range(4)), 1, held[4:5], False,
                        steps_done=np.array([6]))
        ops.sgd_update(p, g, held[0:1], held[4:5])
        assert len(launches) == before + 2  # launched, not handed to the reference
        # K = 3 stacked models: (3, n) regions of (3, ld) buffers, per-model hyperparameters
        p, g, m, v = (rng.standard_normal((3, 1031)).astype(dtype)[:, 7:1000] for _ in range(4))
        lr, beta = np.array([0.1, 0.01, 0.001]), np.array([0.9, 0.8, 0.99])
        ops.sgd_update(p, g, lr, 0.01)
        ops.momentum_update(p, g, m, lr, beta, False, lr)
        ops.rmsprop_update(p, g, m, lr, beta, 1e-8)
        ops.adam_update(p, g, m, v, lr, beta, 0.999, 1e-8, 3, lr, True)
        # a contiguous 2-D buffer with one value per hyperparameter is one model at any row count
        p = rng.standard_normal((70000, 2)).astype(dtype)
        ops.sgd_update(p, p.copy(), 0.1)
        assert launches[-1].startswith("sgd_update") and grids[-1][1] == 1
        x = rng.standard_normal((33, 7)).astype(dtype)
        y = ops.relu_forward(x)
        ops.relu_backward(x, y)
        ops.tanh_backward(x, ops.tanh_forward(x))
        ops.sigmoid_backward(x, ops.sigmoid_forward(x))
        ops.leaky_relu_backward(x, ops.leaky_relu_forward(x, -0.5), -0.5)
        labels = rng.integers(0, 7, 33)
        mean, probs = ops.softmax_cross_entropy_forward(x, labels)
        assert mean.shape == (1,) and probs.shape == x.shape
        ops.softmax_cross_entropy_backward(probs, labels, np.ones((), dtype))
        means, probs = ops.softmax_cross_entropy_forward(x[:30], labels[:10], 3)  # 3 stacked models
        assert launches[-1].startswith("softmax_ce_forward") and means.shape == (3,)
        ops.softmax_cross_entropy_backward(probs, labels[:10], np.broadcast_to(np.ones((), dtype), (3,)), 3)
        assert launches[-1].startswith("softmax_ce_backward")  # a sum's stride-0 gradient, read in place
        # the elementwise losses: the mean (1,) in the forward, the incoming gradient read from device memory
        targets = rng.random(x.shape).astype(dtype)
        before = len(launches)
        assert ops.binary_cross_entropy_forward(x, targets).shape == (1,)
        ops.binary_cross_entropy_backward(x, targets, np.ones((), dtype))
        assert ops.squared_error_forward(x, targets).shape == (1,)
        ops.squared_error_backward(x, targets, np.ones((), dtype))
        assert [e.split("<")[0] for e in launches[before:]] == ["bce_forward", "bce_backward", "mse_forward",
                                                                "mse_backward"]
        # the one-launch forward (few rows; or up to 2048 rows over features that fill the 4 SMs
        # here), else stats + normalize
        for n, c, forward in ((16, 8, ["bn_forward_small"]), (600, 128, ["bn_forward_small"]),
                              (600, 64, ["bn_stats", "bn_normalize"]), (4099, 64, ["bn_stats", "bn_normalize"])):
            x, dy = rng.standard_normal((n, c)).astype(dtype), rng.standard_normal((n, c)).astype(dtype)
            gamma, beta, rm, rv = (np.ones(c, dtype) for _ in range(4))
            before = len(launches)
            y, mean, inv_std = ops.batchnorm_train_forward(x, gamma, beta, rm, rv, 0.9, 1e-5)
            assert [e.split("<")[0] for e in launches[before:]] == forward, (n, c)
            ops.batchnorm_backward(dy, x, gamma, mean, inv_std)
            flat = np.zeros((2, c + 3), dtype)  # ∂L/∂γ into a (C,) array, ∂L/∂β into 2 models' rows of a buffer
            ops.batchnorm_backward(dy, x, gamma, mean, inv_std, np.zeros(c, dtype), flat[:, :c // 2], accumulate=True)
            ops.batchnorm_inference(x, gamma, beta, rm, rv, 1e-5)
        x = rng.standard_normal((33, 3, 7)).astype(dtype)
        y, saved = ops.dropout_forward(x, 0.3, 2**64 - 1, 4, 17)
        assert saved == xdl.cuda.ops.Recomputed(x.dtype) and y.shape == x.shape  # the mask is drawn again
        ops.dropout_backward(x, saved, 0.3, 2**64 - 1, 4, 17, steps_done=np.zeros(1, np.int64))
        other = np.float32 if dtype == np.float64 else np.float64
        before = len(launches)  # a gradient of another dtype: the forward's scaled mask made, then multiplied
        assert ops.dropout_backward(x.astype(other), saved, 0.3, 2**64 - 1, 4, 17).dtype == np.result_type(dtype, other)
        assert launches[before:] == [f"dropout_apply<{xdl.cuda.source.C_TYPES[np.dtype(dtype)]}>"]
        y, saved = ops.relu_dropout_forward(x, 0.3, 5, 4, 17)
        assert saved == xdl.cuda.ops.Recomputed(x.dtype) and launches[-1].startswith("relu_dropout_forward")
        ops.relu_dropout_backward(x, y, saved, 0.3, 5, 4, 17, steps_done=np.zeros(1, np.int64))
        assert launches[-1].startswith("relu_dropout_backward")
        y, saved = ops.stacked_dropout_forward(x, [0.1, 0.0, 0.5], [1, 2**63, 3], 4, 17)
        ops.stacked_dropout_backward(x, saved, [0.1, 0.0, 0.5], [1, 2**63, 3], 4, 17)
        y, saved = ops.stacked_relu_dropout_forward(x, [0.1, 0.0, 0.5], [1, 2**63, 3], 4, 17)
        assert launches[-1].startswith("stacked_relu_dropout_forward")
        ops.stacked_relu_dropout_backward(x, y, saved, [0.1, 0.0, 0.5], [1, 2**63, 3], 4, 17)
        assert launches[-1].startswith("stacked_relu_dropout_backward")
        # the weight penalties: a model's (n,) range with λ/m a number, K = 3 models' (3, n) region with a column
        w, grad = rng.standard_normal((3, 1031)).astype(dtype), np.zeros((3, 1031), dtype)
        for kind in ("l2", "l1"):
            before = len(launches)
            assert ops.penalty_forward(w[0], kind, 0.25).shape == ()
            ops.penalty_backward(grad[0], w[0], np.ones((), dtype), 0.25, kind)
            slopes = np.array([[0.1], [0.0], [0.3]], dtype)
            assert ops.penalty_forward(w[:, 5:1000], kind, slopes).shape == ()
            ops.penalty_backward(grad[:, 5:1000], w[:, 5:1000], np.ones((), dtype), slopes, kind)
            assert [e.split("<")[0] for e in launches[before:]] == ["penalty_forward", "penalty_backward"] * 2
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 4))
    np.testing.assert_array_equal(ops.matmul(a, b), a @ b)  # cuBLAS cannot load here: xp.matmul serves
    kernels = {e.split("<")[0] for e in launches}
    assert kernels == {name for source in SOURCES.values() for name in source.kernels()}, kernels


# -- the row-major → column-major mapping of xdl's cuBLAS calls, against a column-major GEMM -----
def column_major_gemm(transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """cublas<t>gemm's definition on flat buffers (element (i, j) of a stored matrix at i + j·ld):
    C ← α·op(A)·op(B) + β·C, op(A) m×k, op(B) k×n, C m×n."""
    def stored(buf, rows, cols, ld):
        assert ld >= max(1, rows), (ld, rows)
        return np.array([[buf[i + j * ld] for j in range(cols)] for i in range(rows)])

    opa = stored(A, *((m, k) if transa == 0 else (k, m)), lda)
    opb = stored(B, *((k, n) if transb == 0 else (n, k)), ldb)
    opa, opb = (opa if transa == 0 else opa.T), (opb if transb == 0 else opb.T)
    c = stored(C, m, n, ldc) if beta else np.zeros((m, n))
    result = alpha * opa @ opb + beta * c
    for i in range(m):
        for j in range(n):
            C[i + j * ldc] = result[i, j]


def as_buffer(array):
    """(the flat buffer behind a NumPy view, the view's element offset in it)."""
    base = array
    while base.base is not None:
        base = base.base
    flat = base.reshape(-1)
    return flat, (array.__array_interface__["data"][0] - flat.__array_interface__["data"][0]) // array.itemsize


def layouts(rng, rows, cols):
    """One (rows, cols) matrix in several layouts: C-order, a transposed view, a padded slice."""
    yield rng.standard_normal((rows, cols))
    yield rng.standard_normal((cols, rows)).T
    yield rng.standard_normal((rows + 2, cols + 3))[1:rows + 1, 2:cols + 2]
    yield rng.standard_normal((cols + 1, rows + 4)).T[3:rows + 3, :cols]
    if rows == 1 or cols == 1:  # a vector strided along both axes: the stride of its length-1 axis is never read
        yield rng.standard_normal((2 * rows + 1, 3 * cols + 1))[::2, ::3][:rows, :cols]


@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (7, 1023, 3), (5, 4, 6), (1, 6, 4), (4, 1, 5), (6, 3, 1)])
def test_gemm_plan_computes_row_major_products(m, k, n):
    from xdl.cuda.cublas import gemm_plan

    rng = np.random.default_rng(m * 100 + k * 10 + n)
    for a in layouts(rng, m, k):
        for b in layouts(rng, k, n):
            for accumulate in (False, True):
                c = rng.standard_normal((m + 1, n + 2))[1:, :n]  # rows contiguous, padded
                want = a @ b + (c if accumulate else 0)
                plan = gemm_plan(a, b, c)
                assert plan is not None
                (A, a0), (B, b0), (C, c0) = as_buffer(b), as_buffer(a), as_buffer(c)
                out = C.copy()
                view = out[c0:]
                column_major_gemm(plan.first.op, plan.second.op, plan.m, plan.n, plan.k, 1.0, A[a0:],
                                  plan.first.ld, B[b0:], plan.second.ld, float(accumulate), view, plan.ldc)
                got = np.lib.stride_tricks.as_strided(view, c.shape, c.strides)
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_gemm_plan_refuses_what_cublas_cannot_read():
    from xdl.cuda.cublas import gemm_plan

    a, b = np.ones((4, 6)), np.ones((6, 5))
    assert gemm_plan(a[:, ::2], np.ones((3, 5)), np.empty((4, 5))) is None  # neither axis contiguous
    assert gemm_plan(a, b, np.empty((5, 4)).T) is None  # the output's rows must be contiguous
    assert gemm_plan(np.broadcast_to(np.ones(6), (4, 6)), b, np.empty((4, 5))) is None  # rows overlap
    assert gemm_plan(a, b[:5], np.empty((4, 5))) is None  # shapes do not chain


def column_major_gemm_batched(plan, A, B, C, accumulate):
    """cublas<t>gemmStridedBatched's definition: product i reads first/second and writes C at i·stride."""
    sb, sa, sc = plan.strides
    for i in range(plan.batch):
        column_major_gemm(plan.first.op, plan.second.op, plan.m, plan.n, plan.k, 1.0, A[i * sb:], plan.first.ld,
                          B[i * sa:], plan.second.ld, float(accumulate), C[i * sc:], plan.ldc)


def stacked_layouts(rng, k, b, n_in, n_out):
    """What StackedLinear multiplies for K models: (a, b, c) of its forward, input gradient and
    weight gradient (added into the (K, P) gradient buffer), with (B, K, ·) activations."""
    x, gy = rng.standard_normal((b, k, n_in)), rng.standard_normal((b, k, n_out))
    w = rng.standard_normal((k, n_in, n_out))
    y, gx = np.zeros((b, k, n_out)), np.zeros((b, k, n_in))
    grads = rng.standard_normal((k, n_in * n_out + 5))[:, 2:2 + n_in * n_out].reshape(k, n_in, n_out)
    shared = rng.standard_normal((b, n_in))
    yield x.transpose(1, 0, 2), w, y.transpose(1, 0, 2)  # forward
    yield shared, w, y.transpose(1, 0, 2)  # forward, one input for every model
    yield gy.transpose(1, 0, 2), w.transpose(0, 2, 1), gx.transpose(1, 0, 2)  # ∂L/∂X
    yield x.transpose(1, 2, 0), gy.transpose(1, 0, 2), grads  # ∂L/∂W
    yield shared.T, gy.transpose(1, 0, 2), grads  # ∂L/∂W of a shared input


@pytest.mark.parametrize("k, b, n_in, n_out", [(3, 5, 4, 2), (1, 1, 1, 1), (4, 7, 1, 3), (2, 1, 6, 5)])
def test_gemm_plan_computes_stacked_products_in_one_batched_call(k, b, n_in, n_out):
    from xdl.cuda.cublas import gemm_plan

    rng = np.random.default_rng(k * 1000 + b * 100 + n_in * 10 + n_out)
    for a, w, c in stacked_layouts(rng, k, b, n_in, n_out):
        for accumulate in (False, True):
            want = a @ w + (c if accumulate else 0)
            plan = gemm_plan(a, w, c)
            assert plan is not None and plan.batch == k
            (A, a0), (B, b0), (C, c0) = as_buffer(w), as_buffer(a), as_buffer(c)
            out = C.copy()
            column_major_gemm_batched(plan, A[a0:], B[b0:], out[c0:], accumulate)
            got = np.lib.stride_tricks.as_strided(out[c0:], c.shape, c.strides)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_gemm_plan_refuses_stacks_it_cannot_run():
    from xdl.cuda.cublas import gemm_plan

    a, w = np.ones((3, 4, 5)), np.ones((3, 5, 2))
    assert gemm_plan(a, w, np.broadcast_to(np.empty((4, 2)), (3, 4, 2))) is None  # products would share an output
    assert gemm_plan(a, np.ones((2, 5, 2)), np.empty((3, 4, 2))) is None  # 2 matrices for 3 products
    assert gemm_plan(a, w, np.empty((4, 2))) is None  # a stack into one matrix
    assert gemm_plan(a[:, :, ::2], np.ones((3, 3, 2)), np.empty((3, 4, 2))) is None  # neither axis contiguous


def test_gemm_plan_edge_stacks():
    """Both operands shared (every product the same), and an output whose axes are laid out in
    another order than their index order."""
    from xdl.cuda.cublas import _distinct, gemm_plan

    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 2))
    c = np.zeros((3, 2, 4)).transpose(0, 2, 1)  # (3, 4, 2) with columns contiguous: cuBLAS cannot write it
    assert gemm_plan(a, b, c) is None
    c = np.zeros((4, 3, 2)).transpose(1, 0, 2)  # (3, 4, 2), products interleaved along rows
    plan = gemm_plan(a, b, c)
    assert plan is not None and plan.batch == 3 and plan.strides == (0, 0, 2)
    (A, a0), (B, b0), (C, c0) = as_buffer(b), as_buffer(a), as_buffer(c)
    out = C.copy()
    column_major_gemm_batched(plan, A[a0:], B[b0:], out[c0:], False)
    np.testing.assert_allclose(np.lib.stride_tricks.as_strided(out[c0:], c.shape, c.strides), np.broadcast_to(a @ b, c.shape))
    assert _distinct((3, 4, 2), (2, 6, 1)) and not _distinct((3, 4, 2), (1, 6, 1)) and _distinct((1, 4, 2), (0, 2, 1))


def test_the_cublas_copy_is_cupys_cuda_version():
    """PyTorch's libcublas may be loaded beside CuPy's: the handle uses the one of CuPy's CUDA."""
    from xdl.cuda.cublas import _copy_for

    torch_copy, cupy_copy = "/t/torch/lib/libcublas.so.12", "/c/nvidia/cu13/lib/libcublas.so.13"
    assert _copy_for([cupy_copy, torch_copy], 13) == cupy_copy
    assert _copy_for([cupy_copy, torch_copy], 12) == torch_copy
    assert _copy_for(["/usr/local/cuda/lib64/libcublas.so"], 13) == "/usr/local/cuda/lib64/libcublas.so"
    assert _copy_for(["/a/libcublas.so.11", torch_copy], 13) is None and _copy_for([], 13) is None
    assert _copy_for(["/a/libcublas.so.11"], 13) is None  # alone, but another CUDA's


def test_a_missing_cublas_is_said_once_and_products_fall_back(monkeypatch):
    """No libcublas to load: one warning naming why, then cupy.matmul (here: the reference)."""
    from types import SimpleNamespace

    ops = object.__new__(xdl.cuda.ops.CupyOps)
    cuda = SimpleNamespace(get_current_stream=lambda: SimpleNamespace(ptr=0), Device=lambda: SimpleNamespace(id=0))
    ops._cublas_error, ops.xp, ops.address, ops._handles = None, SimpleNamespace(cuda=cuda), id, {}
    ops._lasting, ops.backend = (lambda what, make: make()), SimpleNamespace(precision="float32")
    attempts = []

    def fail(*args):
        attempts.append(args)
        raise OSError("no libcublas.so.13")

    monkeypatch.setattr(xdl.cuda.ops, "Cublas", fail)
    with pytest.warns(RuntimeWarning, match="no libcublas.so.13.*cannot be captured"):
        assert ops._cublas() is None
    assert isinstance(ops._cublas_error, OSError)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: later products neither retry nor warn
        assert ops._cublas() is None and ops._cublas() is None
    assert len(attempts) == 1


def test_cublas_gemm_computes_each_layout_with_its_own_plan():
    """`Cublas.gemm` keeps the plan of each layout it has seen (an eager step asks the same ones
    every time): a call runs the column-major GEMM its own layout needs — a transposed operand of
    the same shape, a stack, another dtype are no cache hit — and refuses mixed dtypes."""
    import ctypes

    from xdl.cuda.cublas import Cublas

    def address(array):
        return array.__array_interface__["data"][0]

    arrays = {}  # address -> (flat buffer, offset) of every array handed to gemm

    def gemm(handle, opa, opb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
        (fa, a0), (fb, b0), (fc, c0) = arrays[A], arrays[B], arrays[C]
        column_major_gemm(opa, opb, m, n, k, alpha._obj.value, fa[a0:], lda, fb[b0:], ldb, beta._obj.value,
                          fc[c0:], ldc)
        return 0

    def batched(handle, opa, opb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, count):
        (fa, a0), (fb, b0), (fc, c0) = arrays[A], arrays[B], arrays[C]
        for i in range(count):
            column_major_gemm(opa, opb, m, n, k, alpha._obj.value, fa[a0 + i * sa:], lda, fb[b0 + i * sb:], ldb,
                              beta._obj.value, fc[c0 + i * sc:], ldc)
        return 0

    class Library:
        cublasSgemm_v2 = cublasDgemm_v2 = staticmethod(gemm)
        cublasSgemmStridedBatched = cublasDgemmStridedBatched = staticmethod(batched)

    cublas = object.__new__(Cublas)
    cublas.lib, cublas.address, cublas.handle, cublas._plans = Library(), address, None, {}
    cublas._scalars = {(single, accumulate): (t(1.0), t(float(accumulate)))
                       for single, t in ((True, ctypes.c_float), (False, ctypes.c_double)) for accumulate in (0, 1)}
    rng = np.random.default_rng(0)
    cases = [(rng.standard_normal((4, 3)), rng.standard_normal((3, 5))),
             (rng.standard_normal((4, 3)), rng.standard_normal((5, 3)).T),  # same shapes, b transposed
             (rng.standard_normal((4, 3)), rng.standard_normal((3, 5))),  # the first layout again
             (rng.standard_normal((3, 4)).T, rng.standard_normal((3, 5))),
             (rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 3, 5))),
             (rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((3, 5)).astype(np.float32))]
    for a, b in cases * 2:
        for accumulate in (False, True):
            c = rng.standard_normal((*a.shape[:-1], b.shape[-1])).astype(a.dtype)
            want = a @ b + (c if accumulate else 0)
            for x in (a, b, c):
                arrays[address(x)] = as_buffer(x)
            assert cublas.gemm(a, b, c, accumulate)
            np.testing.assert_allclose(c, want, rtol=1e-6 if a.dtype == np.float32 else 1e-12)
    assert len(cublas._plans) == 5  # one per distinct layout (the third case is the first's)
    a, b = cases[0]
    assert not cublas.gemm(a, b.astype(np.float32), np.empty((4, 5)))  # mixed dtypes: cupy.matmul serves
