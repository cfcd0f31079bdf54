"""pytest-benchmark suites of the fused ops on the current backend (``XDL_BACKEND`` picks it), each
case against naive ``xp`` expressions and PyTorch when installed, grouped by case:

    PYTHONPATH=$PWD XDL_BACKEND=cupy pytest benchmarks --benchmark-enable --benchmark-group-by=group

Every call is followed by the device synchronization of its implementation, so GPU times are real.
``benchmarks/report.py`` prints the same cases as one table with GB/s and ratios.
"""

import pytest

import xdl
from xdl.bench.kernels import (ACTIVATIONS, LOSSES, MLP_SHAPES, activation_case, batchnorm_case, dropout_case,
                               loss_case, optimizer_case, penalty_case, relu_case, relu_dropout_case)
from xdl.bench.steps import STEP_SHAPES, torch_step, xdl_step
from xdl.bench.timing import torch_on


@pytest.fixture(scope="module")
def backend():
    """The current backend; without it (XDL_BACKEND=cupy and no GPU, a name that is no backend) the session
    stops at once with one line saying why, a usage error as benchmarks/report.py's: every case of the suite
    needs it, and each erred with its own traceback of the same cause."""
    try:
        backend = xdl.current_backend()
    except (ValueError, xdl.BackendError) as e:
        pytest.exit(str(e), returncode=pytest.ExitCode.USAGE_ERROR)
    xdl.seed(0)
    return backend


def _gpu(backend) -> bool:
    return backend.device_type == "cuda"


def run_case(benchmark, case, impl):
    if impl not in case.impls:
        pytest.skip(f"{impl} is not available here")
    fn, sync = case.impls[impl]
    benchmark.group = case.name
    benchmark.extra_info["bytes"] = case.bytes

    def call():
        fn()
        sync()

    benchmark(call)


IMPLS = ["xdl", "naive xp", "torch"]


def _impl_name(case, impl):
    return next((k for k in case.impls if k.startswith(impl)), impl)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("n", [1_000_000, 10_000_000])
def test_adam_flat(benchmark, backend, n, impl):
    case = optimizer_case(backend, "adam", n)
    run_case(benchmark, case, _impl_name(case, impl))


@pytest.mark.parametrize("impl", IMPLS)
def test_adam_mlp_parameter_list(benchmark, backend, impl):
    case = optimizer_case(backend, "adam", shapes=MLP_SHAPES)
    run_case(benchmark, case, _impl_name(case, impl))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("rule", ["adamw", "sgd", "momentum", "rmsprop"])
def test_other_optimizers(benchmark, backend, rule, impl):
    case = optimizer_case(backend, rule, 10_000_000 if _gpu(backend) else 1_000_000)
    run_case(benchmark, case, _impl_name(case, impl))


@pytest.mark.parametrize("impl", [*IMPLS, "xdl layer"])  # the kernels, and the same through bn(x)
@pytest.mark.parametrize("mode", ["train fwd", "train fwd+bwd", "inference"])
@pytest.mark.parametrize("shape", [(1024, 1024), (8192, 4096), (65536, 1024)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_batchnorm(benchmark, backend, shape, mode, impl):
    if not _gpu(backend) and shape != (1024, 1024):
        pytest.skip("large batch-norm cases are GPU-sized")
    case = batchnorm_case(backend, mode, *shape)
    run_case(benchmark, case, _impl_name(case, impl))


@pytest.mark.parametrize("impl", [*IMPLS, "xdl relu, dropout"])  # (the last: ReLU then dropout as two ops)
@pytest.mark.parametrize("shape", [(1024, 1024), (8192, 4096)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("make_case", [dropout_case, relu_case, relu_dropout_case], ids=["dropout", "relu",
                                                                                     "relu_dropout"])
def test_elementwise(benchmark, backend, make_case, shape, impl):
    if not _gpu(backend) and shape != (1024, 1024):
        pytest.skip("large elementwise cases are GPU-sized")
    case = make_case(backend, *shape)
    run_case(benchmark, case, _impl_name(case, impl))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", [(1024, 1024), (8192, 4096)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation(benchmark, backend, name, shape, impl):
    if not _gpu(backend) and shape != (1024, 1024):
        pytest.skip("large elementwise cases are GPU-sized")
    case = activation_case(backend, name, *shape)
    run_case(benchmark, case, _impl_name(case, impl))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("n", [1_000_000, 10_000_000])
def test_l2_penalty(benchmark, backend, n, impl):
    case = penalty_case(backend, n)
    run_case(benchmark, case, _impl_name(case, impl))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("n", [1 << 20, 1 << 24], ids=["1M", "16M"])
@pytest.mark.parametrize("name", LOSSES)
def test_loss(benchmark, backend, name, n, impl):
    if not _gpu(backend) and n != 1 << 20:
        pytest.skip("large loss cases are GPU-sized")
    case = loss_case(backend, name, n)
    run_case(benchmark, case, _impl_name(case, impl))


@pytest.mark.parametrize("impl", ["xdl eager", "xdl captured", "torch eager", "torch graph"])
@pytest.mark.parametrize("shape", STEP_SHAPES, ids=lambda s: f"B{s[0]}-{s[3]}x{s[2]}")
def test_train_step(benchmark, backend, shape, impl):
    """A whole training step (`xdl.bench.steps`): xdl eager and captured against PyTorch eager and
    PyTorch's step captured as one CUDA graph."""
    if not _gpu(backend) and (shape != STEP_SHAPES[0] or impl.endswith(("captured", "graph"))):
        pytest.skip("larger steps and CUDA graphs are GPU cases")
    torch, device, sync = torch_on(backend)
    if impl.startswith("torch"):
        if torch is None:
            pytest.skip("torch is not available here")
        fn = torch_step(torch, device, *shape, captured=impl == "torch graph", tf32=False)
    else:
        fn, sync = xdl_step(backend, *shape, captured=impl == "xdl captured"), backend.synchronize
    benchmark.group = f"train step B={shape[0]}, {shape[1]}→{shape[3]}×{shape[2]}→10"

    def call():
        fn()
        sync()

    benchmark(call)
