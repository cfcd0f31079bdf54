"""Launches, cuBLAS products and allocations of each op of a training step on a GPU (issue 12: fewer launches
per op, no allocation where a buffer can be reused), forward and backward apart, counted by the CuPy
stand-in's trace (`cupy.fake_trace`, tests/fakecupy) after a warm-up call. Real CuPy counts none of it:
there these skip. The figures are what the code does now, the ones it should keep or lower."""

import collections

import numpy as np
import pytest

import xdl
from conftest import cupy_available
from xdl import functions as F
from xdl.ops import NumpyOps

pytestmark = pytest.mark.gpu

M, FEATURES, CLASSES = 8, 5, 4


def traced(cupy, run):
    """(run's result, {"launch": kernels, "gemm": cuBLAS products, "alloc": new buffers}) of one call."""
    with cupy.fake_trace() as trace:
        result = run()
        events = collections.Counter(kind for kind, _, _ in trace.events)
        return result, {"launch": events["launch"], "gemm": trace.gemms(), "alloc": events["alloc"]}


def forward_and_backward(cupy, make, seeded=False):
    """The counts of ``make()``'s forward (``make`` -> (thunk, input or None)) and of its output's backward, from
    a given gradient or (``seeded``) from the seed of a one-element output, both after a first call. An input's
    own accumulation (one add into its gradient, set beforehand: an intermediate's costs nothing) is left out."""
    rng = np.random.default_rng(0)
    for _ in range(2):
        run, x = make()
        if x is not None:
            x.grad = cupy.zeros(x.shape, x.dtype)
        out, forward = traced(cupy, run)
        gy = None if seeded else cupy.asarray(rng.standard_normal(out.shape).astype(out.dtype))
        _, backward = traced(cupy, lambda: out.backward(gy))
        backward["launch"] -= x is not None
    return forward, backward


def data(shape=(M, FEATURES)):
    return xdl.tensor(np.random.default_rng(1).standard_normal(shape).astype(np.float32), requires_grad=True)


def dense(bias: bool):
    def make():
        model = xdl.nn.Sequential(xdl.nn.Dense(3, FEATURES, bias=bias))
        xdl.optim.SGD(model, lr=0.1).zero_grad()  # the gradients' views of the flat buffer
        x = xdl.tensor(np.random.default_rng(1).standard_normal((M, 3)).astype(np.float32))
        return (lambda: model(x)), None
    return make


def op(function):
    def make():
        x = data()
        return (lambda: function(x)), x
    return make


def loss(kind: str):
    def make():
        if kind == "mse":
            compute, shape = xdl.losses.MeanSquaredError(), (M, 3)
            y = np.random.default_rng(2).standard_normal(shape)
        elif kind == "bce":  # 3 yes/no labels per example (multi-label), soft ones among them
            compute, shape = xdl.losses.BinaryCrossEntropy(), (M, 3)
            y = np.random.default_rng(2).random(shape).round(1)
        else:
            compute, shape = xdl.losses.SoftmaxCrossEntropy(), (M, CLASSES)
            y = np.random.default_rng(2).integers(0, CLASSES, M)
            y = np.eye(CLASSES)[y] if kind == "one-hot" else y
        z = data(shape)
        y = compute.prepare(y, shape, xdl.current_backend(), np.float32)  # (once per data set in a fit)
        return (lambda: compute.compute(z, y)), z
    return make


def batch_norm(training: bool):
    def make():
        model = xdl.nn.Sequential(xdl.nn.BatchNorm(FEATURES))
        xdl.optim.SGD(model, lr=0.1).zero_grad()
        model.train(training)
        x = data()
        return (lambda: model(x)), x
    return make


def stacked_batch_norm(momenta=(0.9, 0.9, 0.9)):
    """K = 3 models' batch norm (`StackedBatchNorm`: one over (B, K·C)), their γ and β rows of the (K, P) buffer."""
    def make():
        models = [xdl.nn.Sequential(xdl.nn.BatchNorm(FEATURES, momentum=momentum)) for momentum in momenta]
        stacked = xdl.nn.stack(models)
        xdl.optim.StackedOptimizer(stacked, [xdl.optim.SGD(m, lr=0.1) for m in models]).zero_grad()
        x = data((M, 3, FEATURES))
        return (lambda: stacked(x)), x
    return make


def penalty(kind: str, stacked: bool):
    def make():
        if stacked:  # fit_many's: one node over K = 3 models' weight columns, λ_k/m a (K, 1) column
            from xdl.config import TrainConfig
            from xdl.train.many import ManyTrainer, _penalty

            trainer = ManyTrainer([TrainConfig(seed=k, hidden=[6, 4], **{kind: 0.1 * (k + 1)}) for k in range(3)],
                                  dtype="float32")
            trainer._build(FEATURES, CLASSES, None)
            trainer.model.zero_grad()
            slopes = trainer._penalty_scales(kind, M)  # (uploaded once per penalty and m)
            return (lambda: _penalty(trainer.model, kind, slopes)), None
        model = xdl.nn.mlp(FEATURES, [6, 4], CLASSES)
        xdl.optim.SGD(model, lr=0.1).zero_grad()
        return (lambda: getattr(xdl.losses, kind)(model, 0.5, M)), None
    return make


def stacked(function, shape=(M, 3, FEATURES)):
    """``function`` of K = 3 models' (B, K, C) activations, as `op` of one model's."""
    def make():
        x = data(shape)
        return (lambda: function(x)), x
    return make


def stacked_loss():
    """K = 3 models' losses summed, as fit_many's step sums them (the sum's gradient: one 1 broadcast to K)."""
    def make():
        z, y = data((M, 3, CLASSES)), np.random.default_rng(2).integers(0, CLASSES, M)
        y = xdl.current_backend().asarray(y)
        return (lambda: F.stacked_softmax_cross_entropy(z, y).sum()), z
    return make


KEY = (1, 2, 3)
# op: its forward's and its backward's {launch, gemm, alloc}
COUNTS = {
    # Y = X·W + b: the product and the bias's add; back: ∂L/∂W and ∂L/∂b added into their views of the flat
    # gradient buffer by cuBLAS with β = 1 (∂L/∂b a product with a row of ones), no temporary; X is data
    "dense": (dense(True), (dict(launch=1, gemm=1, alloc=1), dict(launch=0, gemm=2, alloc=0))),
    "dense, no bias": (dense(False), (dict(launch=0, gemm=1, alloc=1), dict(launch=0, gemm=1, alloc=0))),
    # one kernel each way (kernels/activation.cu, kernels/random.cu); leaky ReLU's backward reads y, or x for a
    # negative slope
    "relu": (op(F.relu), (dict(launch=1, gemm=0, alloc=1), dict(launch=1, gemm=0, alloc=1))),
    "tanh": (op(F.tanh), (dict(launch=1, gemm=0, alloc=1), dict(launch=1, gemm=0, alloc=1))),
    "sigmoid": (op(F.sigmoid), (dict(launch=1, gemm=0, alloc=1), dict(launch=1, gemm=0, alloc=1))),
    "leaky_relu": (op(lambda x: F.leaky_relu(x, 0.2)), (dict(launch=1, gemm=0, alloc=1),) * 2),
    "leaky_relu, negative slope": (op(lambda x: F.leaky_relu(x, -0.5)), (dict(launch=1, gemm=0, alloc=1),) * 2),
    "relu_dropout": (op(lambda x: F.relu_dropout(x, 0.3, KEY)), (dict(launch=1, gemm=0, alloc=1),) * 2),
    "dropout": (op(lambda x: F.dropout(x, 0.3, key=KEY)), (dict(launch=1, gemm=0, alloc=1),) * 2),
    # K = 3 models' ReLU then dropout (`Stacked` runs a ReLU before its stacked dropout so), each with its rate
    "stacked relu_dropout, 3 models": (stacked(lambda x: F.stacked_relu_dropout(x, (0.3, 0.0, 0.6), ((1, 2, 3), 2, 3))),
                                       (dict(launch=1, gemm=0, alloc=1),) * 2),
    # the kernel, the mean of the rows' losses in its last block (probabilities, and the rows' losses with the mean
    # after them); back: the seed (`xp.ones`), the kernel
    "softmax cross-entropy": (loss("indices"), (dict(launch=1, gemm=0, alloc=2), dict(launch=2, gemm=0, alloc=2))),
    # the batch norm kernel (one launch at this size: bn_forward_small; y and μ, 1/σ); back: its two kernels, the
    # reduction adding ∂L/∂γ and ∂L/∂β into their views of the flat gradient buffer itself, its partials (and the
    # ∂L/∂γ, ∂L/∂β dx reads) in the stream's workspace: dx only
    "batch norm, training": (batch_norm(True), (dict(launch=1, gemm=0, alloc=2), dict(launch=2, gemm=0, alloc=1))),
    # the same for K models: the kernels read γ and β in place, in their (K, C) rows of the models' (K, P) buffer
    # (no gathering copy), and add ∂L/∂γ and ∂L/∂β into those rows
    "stacked batch norm, training": (stacked_batch_norm(), (dict(launch=1, gemm=0, alloc=2),
                                                            dict(launch=2, gemm=0, alloc=1))),
    # and with a momentum of each model's own (one per feature, on the device): the kernel reads each feature's (it
    # ran at momentum 1, then updated the statistics again from 1/σ: 16 launches and 13 buffers forward)
    "stacked batch norm, training, momenta of their own": (stacked_batch_norm((0.9, 0.5, 0.99)),
                                                           (dict(launch=1, gemm=0, alloc=2),
                                                            dict(launch=2, gemm=0, alloc=1))),
    # K = 3 models' losses (one kernel, each model's mean in its last block) and their sum; back: the seed, the kernel
    # reading the sum's broadcast gradient in place (it was copied first: 3 launches)
    "softmax cross-entropy, 3 stacked models summed": (stacked_loss(), (dict(launch=2, gemm=0, alloc=3),
                                                                         dict(launch=2, gemm=0, alloc=2))),
    # exact one-hot rows are prepared as their class indices (`SoftmaxCrossEntropy.prepare`): the fused kernels
    # (the rows took NumPy's API: 14 launches forward, 5 back)
    "softmax cross-entropy, one-hot": (loss("one-hot"),
                                       (dict(launch=1, gemm=0, alloc=2), dict(launch=2, gemm=0, alloc=2))),
    # the kernel, the mean of the elements' losses in its last block (the losses with the mean after them); back:
    # the seed, the kernel (NumPy's API, one launch per operation, was 3 launches forward and 5 back, the seed's
    # among them, for the mean squared error; 9 and 12 for binary cross-entropy)
    "mean squared error": (loss("mse"), (dict(launch=1, gemm=0, alloc=1), dict(launch=2, gemm=0, alloc=2))),
    "binary cross-entropy": (loss("bce"), (dict(launch=1, gemm=0, alloc=1), dict(launch=2, gemm=0, alloc=2))),
    # the cost in one kernel (kernels/penalty.cu: the sum over the weights' range, times λ/m, into a new 0-d
    # array); back: the seed, then one kernel adding g·(λ/m)·W or g·(λ/m)·sign(W) into the range of the gradient
    # buffer (it was 3 launches forward — w·w, the sum, ·λ/2m — and 3 or 4 back, the stack's 5 forward)
    "penalty l2": (penalty("l2", False), (dict(launch=1, gemm=0, alloc=1), dict(launch=2, gemm=0, alloc=1))),
    "penalty l1": (penalty("l1", False), (dict(launch=1, gemm=0, alloc=1), dict(launch=2, gemm=0, alloc=1))),
    "penalty l2, 3 stacked models": (penalty("l2", True), (dict(launch=1, gemm=0, alloc=1),
                                                           dict(launch=2, gemm=0, alloc=1))),
    "penalty l1, 3 stacked models": (penalty("l1", True), (dict(launch=1, gemm=0, alloc=1),
                                                           dict(launch=2, gemm=0, alloc=1))),
}


@pytest.mark.parametrize("name", list(COUNTS))
def test_each_op_launches_and_allocates_as_counted(cupy, name):
    make, (forward, backward) = COUNTS[name]
    seeded = name.startswith(("softmax", "mean", "penalty", "binary"))
    assert forward_and_backward(cupy, make, seeded) == (forward, backward)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "leaky_relu", "leaky_relu, negative slope"])
def test_a_stack_of_models_runs_its_shared_activation_as_one_kernel_each_way(cupy, activation):
    """`fit_many`'s stacked models (K = 3) share an elementwise activation over their (B, K, C) activations: one
    launch each way for all K, not one per model or per NumPy operation, with the values of the models alone."""
    make = {"tanh": xdl.nn.Tanh, "sigmoid": xdl.nn.Sigmoid, "leaky_relu": lambda: xdl.nn.LeakyReLU(0.1),
            "leaky_relu, negative slope": lambda: xdl.nn.LeakyReLU(-0.3)}[activation]
    models = [xdl.nn.Sequential(xdl.nn.Dense(3, 5), make(), xdl.nn.Dense(5, 2)) for _ in range(3)]
    stacked = xdl.nn.stack(models, xdl.current_backend())
    x = xdl.tensor(np.random.default_rng(0).standard_normal((7, 3)).astype(np.float32))
    stacked(x).sum().backward()  # (a first call)
    with cupy.fake_trace() as trace:
        out = stacked(x)
        out.backward(cupy.ones(out.shape, out.dtype))
    kernels = [what.split("<")[0] for kind, what, _ in trace.events if kind == "launch" and "<" in what]
    name = activation.split(",")[0]
    assert kernels == [f"{name}_forward", f"{name}_backward"]
    for k, model in enumerate(models):
        alone = model.to("numpy")(x.numpy())
        np.testing.assert_allclose(out.numpy()[:, k], alone.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("precision", ["float32", "tf32"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_rows_matches_the_reference(dtype, precision):
    """The sum over rows a bias's gradient is (`CupyOps.sum_rows`: a product with ones, β = 1 to add) against
    NumPy's, on matrices and stacks of awkward sizes, into a buffer or added to it; under TF32 products the
    reduction (TF32 would round the values, not only their order). On a GPU too; its launches over the
    stand-in only (what its trace counts)."""
    if not cupy_available():
        pytest.skip("needs CuPy and an NVIDIA GPU")
    import cupy

    reference = NumpyOps(xdl.backend.get_backend("numpy"))
    rng = np.random.default_rng(3)
    counted = hasattr(cupy, "fake_trace")
    with xdl.use("cupy", precision=precision) as backend:
        for shape in [(1, 1), (7, 3), (33, 65), (1023, 7), (2, 5, 3), (4, 1, 9), (3, 17, 2)]:
            for accumulate in (False, True):
                x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4)).astype(dtype)
                start = rng.standard_normal(shape[:-2] + shape[-1:]).astype(dtype)
                want = reference.sum_rows(x.astype(np.float64), start.astype(np.float64), accumulate)
                x_gpu, out = cupy.asarray(x), cupy.asarray(start)
                backend.ops.sum_rows(x_gpu, cupy.empty_like(out))  # (a first call makes its row of ones)
                if counted:
                    _, counts = traced(cupy, lambda: backend.ops.sum_rows(x_gpu, out, accumulate))
                    products = precision == "float32"
                    assert counts["gemm"] == products and counts["launch"] == (0 if products else 1 + accumulate)
                else:
                    backend.ops.sum_rows(x_gpu, out, accumulate)
                tolerance = 1e-12 if dtype == np.float64 else 1e-6
                np.testing.assert_allclose(out.get(), want, rtol=tolerance, atol=tolerance * np.abs(x).sum())


def test_the_train_step_benchmarks_eager_step_launches_as_counted(cupy):
    """The train-step benchmark's step (`xdl.bench.steps.xdl_step`: 16 → 2×8 → 10, batch norm, dropout, Adam):
    its eager launches, products and allocations, the figure its captured graph replays as nodes."""
    from xdl.bench.steps import xdl_step

    step = xdl_step(xdl.current_backend(), 32, 16, 8, 2, captured=False)
    step()
    _, counts = traced(cupy, step)
    # zero_grad 1; per hidden layer: batch norm 1 + 2 back, relu_dropout 1 + 1; the output bias's add 1; the loss
    # 1 + 1 and its seed 1; Adam 1 and its step count's add 1; the dropout counter's add 1 — and the products:
    # 3 forward, 2 for ∂L/∂X, 3 for ∂L/∂W, 1 for the output bias's ∂L/∂b (it was a sum, then an add into its
    # view: 2 launches)
    assert counts == dict(launch=18, gemm=9, alloc=19)


def test_the_train_step_benchmarks_step_with_l2_and_l1_launches_as_counted(cupy):
    """The same step with L2 and L1 added to its cost (`xdl_step(..., l2=, l1=)`, as a Trainer adds them): each
    penalty one kernel forward, one back, and the cost's add (2 allocations: its cost and the add's) — 6
    launches more than the plain step; they were 17 (w·w, the sum, ·λ/2m; g·λ/m, then the pass's 2 or 3)."""
    from xdl.bench.steps import xdl_step

    step = xdl_step(xdl.current_backend(), 32, 16, 8, 2, captured=False, l2=0.5, l1=0.001)
    step()
    _, counts = traced(cupy, step)
    assert counts == dict(launch=18 + 6, gemm=9, alloc=19 + 4)
