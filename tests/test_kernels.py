"""CUDA kernels against their NumPy references (the specification), on awkward sizes. GPU only."""

import numpy as np
import pytest

import xdl
from xdl.cuda.ops import Recomputed
from xdl.ops import NumpyOps
from conftest import cupy_available

pytestmark = pytest.mark.gpu

SIZES = [1, 7, 1023, (1 << 20) + 3]
TOLERANCE = {np.float32: 1e-6, np.float64: 1e-12}


@pytest.fixture
def gpu():
    if not cupy_available():
        pytest.skip("needs CuPy and an NVIDIA GPU")
    return xdl.backend.get_backend("cupy")


def relative_error(got, ref):
    ref = np.asarray(ref, dtype=np.float64)
    denominator = np.linalg.norm(ref)
    return np.linalg.norm(np.asarray(got, dtype=np.float64) - ref) / (denominator if denominator else 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_relu_kernels_match_the_reference_bit_for_bit(gpu, rng, n, dtype):
    ref = NumpyOps(xdl.backend.get_backend("numpy"))
    x = rng.standard_normal(n).astype(dtype)
    specials = np.array([np.nan, -0.0, -np.inf, np.inf], dtype=dtype)[:n]
    x[:len(specials)] = specials
    gy = rng.standard_normal(n).astype(dtype)
    if n >= 3:
        gy[1:3] = [np.nan, np.inf]  # against y = +0 (x = −0, −∞): NaN, as the reference's product with the mask
    y = gpu.ops.relu_forward(gpu.asarray(x))
    np.testing.assert_array_equal(y.get(), ref.relu_forward(x))
    assert not np.signbit(y.get()[np.asarray(y.get()) == 0]).any()  # −0 gives +0, as NumPy's maximum
    np.testing.assert_array_equal(gpu.ops.relu_backward(gpu.asarray(gy), y).get(), ref.relu_backward(gy, y.get()))


def within_ulps(got, want, ulps):
    """NaN where NaN, the same sign, each value within ``ulps`` units in the last place of the other's."""
    kept = ~np.isnan(want)
    unit = np.maximum(np.spacing(np.abs(want[kept])), np.finfo(want.dtype).smallest_subnormal).astype(np.float64)
    return (got.dtype == want.dtype and np.array_equal(np.isnan(got), np.isnan(want))
            and (np.signbit(got) == np.signbit(want))[kept].all()
            and (np.abs(got[kept].astype(np.float64) - want[kept]) <= ulps * unit).all())


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # (the largest values times 1e30)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_tanh_sigmoid_and_leaky_relu_kernels_match_the_reference(gpu, rng, n, dtype):
    """The backwards and leaky ReLU bit for bit; tanh and σ within 8 ulps (CUDA's tanh and exp, NumPy's own),
    σ of |x| past exp's range neither overflowing nor NaN; NaN, ±0, ±∞ and subnormals among the inputs."""
    ref = NumpyOps(xdl.backend.get_backend("numpy"))
    info = np.finfo(dtype)
    x = (rng.choice([-1, 1], n) * 10.0 ** rng.uniform(-4, 3, n)).astype(dtype)
    special = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, info.smallest_subnormal, -info.tiny / 3, info.max,
                        -info.max, 89.5, -104.0, -745.0], dtype)[:n]
    x[:len(special)] = special
    gy = rng.standard_normal(n).astype(dtype)
    x_gpu, gy_gpu = gpu.asarray(x), gpu.asarray(gy)
    for name in ("tanh", "sigmoid"):
        y = getattr(gpu.ops, f"{name}_forward")(x_gpu)
        assert within_ulps(y.get(), getattr(ref, f"{name}_forward")(x), 8), name
        np.testing.assert_array_equal(getattr(gpu.ops, f"{name}_backward")(gy_gpu, y).get(),
                                      getattr(ref, f"{name}_backward")(gy, y.get()))
    for slope in (0.01, 1.0, 1e-50, 0.0, -0.5, 1e30):
        y = gpu.ops.leaky_relu_forward(x_gpu, slope)
        want = ref.leaky_relu_forward(x, slope)
        np.testing.assert_array_equal(y.get(), want)
        assert (np.signbit(y.get()) == np.signbit(want)).all()  # (x = ±0 gives ±0·slope)
        saved, saved_host = (y, want) if slope >= 0 else (x_gpu, x)
        np.testing.assert_array_equal(gpu.ops.leaky_relu_backward(gy_gpu, saved, slope).get(),
                                      ref.leaky_relu_backward(gy, saved_host, slope))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, classes", [(1, 1), (7, 3), (1023, 10), (4098, 1024), (6, 1025)])
def test_softmax_cross_entropy_kernels_match_the_reference(gpu, rng, m, classes, dtype):
    ref = NumpyOps(xdl.backend.get_backend("numpy"))
    z = (5 * rng.standard_normal((m, classes))).astype(dtype)
    labels = rng.integers(0, classes, m)
    mean, probs = gpu.ops.softmax_cross_entropy_forward(gpu.asarray(z), gpu.asarray(labels))
    ref_mean, ref_probs = ref.softmax_cross_entropy_forward(z.copy(), labels)
    assert mean.shape == ref_mean.shape == (1,)  # the mean over the rows, in the kernel
    assert relative_error(mean.get(), ref_mean) < 10 * TOLERANCE[dtype]
    assert relative_error(probs.get(), ref_probs) < 10 * TOLERANCE[dtype]
    gy = np.asarray(0.7, dtype=dtype)
    got = gpu.ops.softmax_cross_entropy_backward(probs, gpu.asarray(labels), gpu.asarray(gy))
    np.testing.assert_array_equal(got.get(), ref.softmax_cross_entropy_backward(probs.get(), labels, gy))
    if m % 3 == 0 and m > 3:  # as 3 stacked models' rows: row b·3 + k is model k's, the labels (m/3,) shared
        shared, gy = labels[:m // 3], rng.standard_normal(3).astype(dtype)
        means, probs = gpu.ops.softmax_cross_entropy_forward(gpu.asarray(z), gpu.asarray(shared), 3)
        ref_means, ref_probs = ref.softmax_cross_entropy_forward(z.copy(), shared, 3)
        assert means.shape == (3,) and relative_error(means.get(), ref_means) < 10 * TOLERANCE[dtype]
        got = gpu.ops.softmax_cross_entropy_backward(probs, gpu.asarray(shared), gpu.asarray(gy), 3)
        np.testing.assert_array_equal(got.get(), ref.softmax_cross_entropy_backward(probs.get(), shared, gy, 3))
        ones = gpu.xp.broadcast_to(gpu.xp.ones((), dtype), (3,))  # a sum's gradient: stride 0
        got = gpu.ops.softmax_cross_entropy_backward(probs, gpu.asarray(shared), ones, 3)
        np.testing.assert_array_equal(got.get(), ref.softmax_cross_entropy_backward(probs.get(), shared,
                                                                                  np.ones(3, dtype), 3))
    # what the kernel does not take falls back to the reference: int32 labels, a transposed z
    mean, _ = gpu.ops.softmax_cross_entropy_forward(gpu.asarray(np.asfortranarray(z)),
                                                    gpu.asarray(labels.astype(np.int32)))
    assert relative_error(mean.get(), ref_mean) < 10 * TOLERANCE[dtype]  # the unstacked mean


def test_softmax_cross_entropy_kernel_gives_nan_for_a_label_out_of_range_as_the_reference(gpu):
    z, labels, gy = np.zeros((3, 4), np.float32), np.array([0, 4, -1]), np.float32(1.0)
    mean, probs = gpu.ops.softmax_cross_entropy_forward(gpu.asarray(z), gpu.asarray(labels))
    ref_mean, _ = xdl.ops.activation.softmax_cross_entropy_forward(np, z.copy(), labels)
    assert np.isnan(mean.get()).all() and np.isnan(ref_mean).all()  # a row's NaN loss is its mean's
    # log(4) to CUDA's logf, within 1 ulp of the correctly rounded value: not NumPy's bits
    mean, _ = gpu.ops.softmax_cross_entropy_forward(gpu.asarray(z[:1]), gpu.asarray(labels[:1]))
    assert relative_error(mean.get()[0], np.float32(np.log(4))) < TOLERANCE[np.float32]
    got = gpu.ops.softmax_cross_entropy_backward(probs, gpu.asarray(labels), gpu.asarray(gy))
    np.testing.assert_array_equal(got.get(),
                                  xdl.ops.activation.softmax_cross_entropy_backward(np, probs.get(), labels, gy))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_bce_and_mse_kernels_match_the_reference(gpu, rng, n, dtype):
    """Binary cross-entropy of logits and the mean squared error: the mean (in the forward's last block) to
    tolerance, the backward of the mean squared error bit for bit, of binary cross-entropy within a few ulps of
    σ (CUDA's exp) times gy/n; a strided view falls back to the reference, and a NaN makes the mean NaN."""
    ref = NumpyOps(xdl.backend.get_backend("numpy"))
    z = (5 * rng.standard_normal(n)).astype(dtype)
    y = rng.random(n).astype(dtype)
    y[::2] = y[::2].round()
    gy = np.asarray(0.7, dtype=dtype)
    for name, targets in (("binary_cross_entropy", y), ("squared_error", (3 * y).astype(dtype))):
        forward, backward = getattr(gpu.ops, f"{name}_forward"), getattr(gpu.ops, f"{name}_backward")
        mean = forward(gpu.asarray(z), gpu.asarray(targets))
        want = getattr(ref, f"{name}_forward")(z, targets)
        assert mean.shape == want.shape == (1,) and mean.dtype == dtype
        assert relative_error(mean.get(), want) < 10 * TOLERANCE[dtype]
        got = backward(gpu.asarray(z), gpu.asarray(targets), gpu.asarray(gy)).get()
        want = getattr(ref, f"{name}_backward")(z, targets, gy)
        if name == "squared_error":
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=8 * np.finfo(dtype).eps * 0.7 / n)
        if n > 1:  # every other element: a strided view, the reference's (on the device)
            mean = forward(gpu.asarray(z)[::2], gpu.asarray(targets)[::2])
            assert relative_error(mean.get(), getattr(ref, f"{name}_forward")(z[::2], targets[::2])) \
                < 10 * TOLERANCE[dtype]
        bad = z.copy()
        bad[n // 2] = np.nan
        assert np.isnan(forward(gpu.asarray(bad), gpu.asarray(targets)).get()).all()


UPDATES = {
    "sgd": (0, lambda ops, p, g, s: ops.sgd_update(p, g, 0.01, 0.001)),
    "momentum": (1, lambda ops, p, g, s: ops.momentum_update(p, g, s[0], 0.01, 0.9, False, 0.001)),
    "nesterov": (1, lambda ops, p, g, s: ops.momentum_update(p, g, s[0], 0.01, 0.9, True, 0.0)),
    "rmsprop": (1, lambda ops, p, g, s: ops.rmsprop_update(p, g, s[0], 0.01, 0.9, 1e-8, 0.0)),
    "adam": (2, lambda ops, p, g, s: ops.adam_update(p, g, s[0], s[1], 0.01, 0.9, 0.999, 1e-8, 3, 0.001, False)),
    "adamw": (2, lambda ops, p, g, s: ops.adam_update(p, g, s[0], s[1], 0.01, 0.9, 0.999, 1e-8, 3, 0.01, True)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("rule", list(UPDATES))
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "unaligned"])
def test_optimizer_kernel_matches_reference(gpu, rng, rule, n, dtype, offset):
    n_state, update = UPDATES[rule]
    host = [rng.standard_normal(n + offset).astype(dtype) for _ in range(2)]
    host_state = [np.abs(rng.standard_normal(n + offset)).astype(dtype) for _ in range(n_state)]
    dev = [gpu.asarray(a)[offset:] for a in host]  # offset 1: not 16-byte aligned, scalar path
    dev_state = [gpu.asarray(a)[offset:] for a in host_state]
    ref = [a[offset:].copy() for a in host]
    ref_state = [a[offset:].copy() for a in host_state]
    for _ in range(3):
        update(gpu.ops, *dev, dev_state)
        update(NumpyOps(xdl.backend.get_backend("numpy")), *ref, ref_state)
    assert relative_error(dev[0].get(), ref[0]) < TOLERANCE[dtype]
    for d, r in zip(dev_state, ref_state):
        assert relative_error(d.get(), r) < TOLERANCE[dtype]


@pytest.mark.parametrize("rule", list(UPDATES))
def test_an_update_its_kernel_does_not_take_runs_the_reference_on_the_device(gpu, rng, rule):
    """Every other element (a layout no kernel takes): `CupyOps` hands it to the NumPy reference, which runs on
    CuPy's arrays — as it does for a rule without a kernel (ARCHITECTURE.md's optimizer recipe). The RMSprop and Adam
    references divide with ``xp.divide``, which the CuPy stand-in did not model: their fallback failed there (not on
    a GPU), and so did a new rule's reference written after theirs."""
    n_state, update = UPDATES[rule]
    host = [rng.standard_normal(2 * 257) for _ in range(2)] + [np.abs(rng.standard_normal(2 * 257))
                                                              for _ in range(n_state)]
    dev, ref = [gpu.asarray(a)[::2] for a in host], [a[::2].copy() for a in host]
    for _ in range(2):
        update(gpu.ops, *dev[:2], dev[2:])
        update(NumpyOps(xdl.backend.get_backend("numpy")), *ref[:2], ref[2:])
    for d, r in zip(dev, ref):
        assert relative_error(d.get(), r) < TOLERANCE[np.float64]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [1, 7, 1023, (1 << 20) + 3, "K=1", "K=3 unaligned", "K=5"])
@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_penalty_kernels_match_the_reference(gpu, rng, kind, layout, dtype):
    """penalty_forward and penalty_backward (kernels/penalty.cu) on a model's (n,) range of awkward sizes and on
    K stacked models' (K, n) regions: the cost within 4 roundings of the exact cost of the same values (summed in
    double) and 1e-6 / 1e-12 of the reference (float32 sums pairwise in float32), the gradient within 1e-6 /
    1e-12 (the GPU fuses c·w + g); sign(±0) = 0; NaN and ∞ where the reference has them."""
    ref_ops = NumpyOps(xdl.backend.get_backend("numpy"))
    k, n = (1, layout) if isinstance(layout, int) else ({"K=1": 1, "K=3 unaligned": 3, "K=5": 5}[layout], 4099)
    width = n + (3 if isinstance(layout, str) else 0)
    host = rng.standard_normal((k, width)) * 10.0 ** rng.integers(-3, 4, size=(k, 1))
    host[rng.random(host.shape) < 0.2] = 0.0
    host = host.astype(dtype)
    grad = rng.standard_normal((k, width)).astype(dtype)
    index = (0, slice(None)) if isinstance(layout, int) else (slice(None), slice(3, None))
    slope = 0.37 if isinstance(layout, int) else rng.uniform(0, 2, (k, 1)).astype(dtype)
    gy = np.asarray(1.7, dtype)
    for special in (None, np.inf, np.nan):
        if special is not None:
            host[k - 1, width - 1] = special
        w, ref_w = gpu.asarray(host)[index], host[index]
        cost = gpu.ops.penalty_forward(w, kind, slope if isinstance(slope, float) else gpu.asarray(slope))
        want = ref_ops.penalty_forward(ref_w, kind, slope)
        assert cost.dtype == want.dtype == dtype and cost.shape == ()
        if special is None:
            w64 = np.atleast_2d(ref_w.astype(np.float64))
            sums = (w64 * w64 if kind == "l2" else np.abs(w64)).sum(-1)
            exact = float((sums * np.asarray(slope, dtype).astype(np.float64).ravel()).sum() * (0.5 if kind == "l2"
                                                                                                else 1.0))
            assert abs(float(cost) - exact) <= 4 * np.finfo(dtype).eps * exact
            assert abs(float(cost) - float(want)) <= TOLERANCE[dtype] * float(want)
        else:
            np.testing.assert_array_equal(cost.get(), want)
        got, expected = gpu.asarray(grad)[index], grad.copy()[index]
        gpu.ops.penalty_backward(got, w, gpu.asarray(gy), slope if isinstance(slope, float) else gpu.asarray(slope),
                                 kind)
        ref_ops.penalty_backward(expected, ref_w, gy, slope, kind)
        got = got.get()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        finite = np.isfinite(expected)
        np.testing.assert_array_equal(got[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)])
        assert relative_error(got[finite], expected[finite]) < TOLERANCE[dtype]
        if kind == "l1":
            zero = ref_w == 0
            np.testing.assert_array_equal(got[zero], grad[index][zero])


HELD_RATE_UPDATES = {  # an Optimizer's held rate: one float64 on the device
    "sgd": (0, lambda ops, p, g, s, lr: ops.sgd_update(p, g, lr, 0.001)),
    "momentum": (1, lambda ops, p, g, s, lr: ops.momentum_update(p, g, s[0], lr, 0.9, False, 0.001)),
    "adam": (2, lambda ops, p, g, s, lr: ops.adam_update(p, g, s[0], s[1], lr, 0.9, 0.999, 1e-8, 3, 0.001, False)),
}


@pytest.mark.parametrize("rule", list(HELD_RATE_UPDATES))
def test_a_held_rate_of_one_value_over_stacked_regions_updates_as_the_reference(gpu, rng, rule):
    """A rate held on the device as one value (not K) given K = 3 models' (3, n) regions with rows 1031 apart:
    the kernels take K values per hyperparameter (`_per_model_values`), so this is the reference's update — a
    launch would read the rate of models 1 and 2 past the end of its array."""
    n_state, update = HELD_RATE_UPDATES[rule]
    host = [rng.standard_normal((3, 1031)) for _ in range(2)] + [np.abs(rng.standard_normal((3, 1031)))
                                                                 for _ in range(n_state)]
    dev, ref = [gpu.asarray(a)[:, 1:] for a in host], [a[:, 1:].copy() for a in host]
    lr = gpu.asarray(np.array([0.01]))
    for _ in range(3):
        update(gpu.ops, *dev[:2], dev[2:], lr)
        update(NumpyOps(xdl.backend.get_backend("numpy")), *ref[:2], ref[2:], 0.01)
    for d, r in zip(dev, ref):
        assert relative_error(d.get(), r) < TOLERANCE[np.float64]


MODEL_LR, MODEL_BETA = np.array([0.01, 0.001, 0.03]), np.array([0.9, 0.5, 0.99])
MODEL_UPDATES = {  # K = 3 stacked models, per-model hyperparameters (one launch of <rule>_update)
    "sgd": (0, lambda ops, p, g, s: ops.sgd_update(p, g, MODEL_LR, 0.001)),
    "momentum": (1, lambda ops, p, g, s: ops.momentum_update(p, g, s[0], MODEL_LR, MODEL_BETA, False, MODEL_LR)),
    "nesterov": (1, lambda ops, p, g, s: ops.momentum_update(p, g, s[0], MODEL_LR, 0.9, True, 0.0)),
    "rmsprop": (1, lambda ops, p, g, s: ops.rmsprop_update(p, g, s[0], MODEL_LR, MODEL_BETA, 1e-8, 0.0)),
    "adam": (2, lambda ops, p, g, s: ops.adam_update(p, g, s[0], s[1], MODEL_LR, MODEL_BETA, 0.999, 1e-8, 3,
                                                     MODEL_LR, False)),
    "adamw": (2, lambda ops, p, g, s: ops.adam_update(p, g, s[0], s[1], MODEL_LR, 0.9, MODEL_BETA, 1e-8, 3, 0.01,
                                                      True)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("columns", [(0, 1031), (4, 1000), (3, 998)], ids=["whole", "aligned", "unaligned"])
@pytest.mark.parametrize("rule", list(MODEL_UPDATES))
def test_per_model_kernels_match_reference(gpu, rng, rule, columns, dtype):
    """Regions [a, b) of (3, 1031) buffers, as StackedOptimizer passes them (rows 1031 apart: the
    scalar path; a region of 1032-wide rows starting at 4 takes 16-byte vectors for float32)."""
    n_state, update = MODEL_UPDATES[rule]
    width = 1032 if columns[0] == 4 else 1031
    host = [rng.standard_normal((3, width)).astype(dtype) for _ in range(2)]
    host_state = [np.abs(rng.standard_normal((3, width))).astype(dtype) for _ in range(n_state)]
    cols = slice(*columns)
    dev = [gpu.asarray(a)[:, cols] for a in host]
    dev_state = [gpu.asarray(a)[:, cols] for a in host_state]
    ref = [a[:, cols] for a in host]
    ref_state = [a[:, cols] for a in host_state]
    for _ in range(3):
        update(gpu.ops, *dev, dev_state)
        update(NumpyOps(xdl.backend.get_backend("numpy")), *ref, ref_state)
    assert relative_error(dev[0].get(), ref[0]) < 10 * TOLERANCE[dtype]
    for d, r in zip(dev_state, ref_state):
        assert relative_error(d.get(), r) < 10 * TOLERANCE[dtype]


def test_fit_many_on_the_gpu_matches_alone_and_numpy(gpu):
    """float32 on cupy: each of 3 models batched ends close to the same configuration alone (dropout
    on: the same masks, keyed by the same seed) after 3 epochs. Measured on an H200 (2026-12-04):
    1.8e-4 relative with dropout off, 1.35e-3 with it on — the batched products and reductions add
    in another order, and training carries the float32 rounding on (the issue asks 1e-4: not met)."""
    from xdl.config import TrainConfig
    from xdl.train import fit_many

    X, y = xdl.datasets.digits()
    X = ((X - X.mean(axis=0)) / (X.std(axis=0) + 1.0)).astype(np.float32)
    X, y, dev = X[:640], y[:640], (X[640:900], y[640:900])
    configs = [TrainConfig(seed=3, lr=lr, dropout=rate, hidden=[64, 32], epochs=3, patience=0, schedule="none",
                           progress=False) for lr, rate in ((3e-3, 0.2), (1e-3, 0.4), (1e-2, 0.1))]
    with xdl.use("cupy"):
        results = fit_many(configs, X, y, dev=dev, seed=3)
        for config, result in zip(configs, results):
            xdl.seed(config.seed)
            model = config.build_model(64, 10)
            trainer = config.build_trainer(model)
            trainer.fit(X, y, dev=dev)
            for name, a in model.state_dict().items():
                b = result.model.state_dict()[name]
                assert relative_error(b, a) < 3e-3, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("counter", [None, 5], ids=["host-step", "device-counter"])
def test_dropout_kernel_draws_the_reference_mask_bit_for_bit(gpu, rng, n, dtype, counter):
    """Forward and backward (the mask recomputed in the kernel, never stored) equal the reference
    exactly, NaN and −0 included; a device counter adds to the key's step as the reference says."""
    host = rng.standard_normal(n).astype(dtype)
    host[::5] = np.nan
    host[1::7] = -0.0
    key = (2**64 - 3, 4, 1000)
    steps_done = None if counter is None else np.array([counter], np.int64)
    ref = NumpyOps(xdl.backend.get_backend("numpy"))
    want, saved = ref.dropout_forward(host, 0.3, *key, steps_done=steps_done)
    got, recomputed = gpu.ops.dropout_forward(gpu.asarray(host), 0.3, *key,
                                              steps_done=None if counter is None else gpu.asarray(steps_done))
    assert recomputed == Recomputed(np.dtype(dtype))  # no mask kept: the backward draws it again
    # equal values, NaN where NaN (its payload is the device's: CUDA's canonical NaN, not NumPy's) and
    # −0 where −0
    np.testing.assert_array_equal(got.get(), want)
    assert (np.signbit(got.get()) == np.signbit(want))[~np.isnan(want)].all()
    gy = rng.standard_normal(n).astype(dtype)
    back = gpu.ops.dropout_backward(gpu.asarray(gy), recomputed, 0.3, *key,
                                    steps_done=None if counter is None else gpu.asarray(steps_done))
    np.testing.assert_array_equal(back.get(), ref.dropout_backward(gy, saved, 0.3, *key))
    other = gy.astype(np.float64 if dtype == np.float32 else np.float32)  # a gradient of another dtype
    back = gpu.ops.dropout_backward(gpu.asarray(other), recomputed, 0.3, *key,
                                    steps_done=None if counter is None else gpu.asarray(steps_done))
    want_back = ref.dropout_backward(other, saved, 0.3, *key)  # times the scale rounded to the forward's dtype
    assert back.dtype == want_back.dtype
    np.testing.assert_array_equal(back.get(), want_back)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_kernel_unaligned_and_with_more_chunks_than_warps(gpu, rng, dtype):
    """An input one element off 16-byte alignment (the scalar path over whole 512-element chunks)
    and one with more chunks than the grid has warps (each warp loops over several): both equal
    the reference, forward and backward."""
    from xdl.cuda.ops import THREADS

    key, ref = (11, 3, 77), NumpyOps(xdl.backend.get_backend("numpy"))
    many = 2 * gpu.ops.sm_count * 16 * THREADS * 16 + 5  # twice the elements the capped grid's warps take at once
    shifted, large = rng.standard_normal(4 * 512 + 9).astype(dtype), rng.standard_normal(many).astype(dtype)
    for host, device in ((shifted[1:], gpu.asarray(shifted)[1:]), (large, gpu.asarray(large))):
        assert device.flags.c_contiguous
        want, saved = ref.dropout_forward(host, 0.4, *key)
        got, recomputed = gpu.ops.dropout_forward(device, 0.4, *key)
        np.testing.assert_array_equal(got.get(), want)
        np.testing.assert_array_equal(gpu.ops.dropout_backward(device, recomputed, 0.4, *key).get(),
                                      ref.dropout_backward(host, saved, 0.4, *key))

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [7, 1023, (1 << 20) + 3])
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "unaligned"])
def test_relu_dropout_kernels_are_the_pair_bit_for_bit(gpu, rng, n, dtype, offset):
    """ReLU then dropout in one kernel each way equals the reference pair exactly: NaN, ±0 and ±∞
    included (a dropped ∞ gives NaN, a dropped −x gives −0, as the pair's products do)."""
    host = rng.standard_normal(n + offset).astype(dtype)
    host[::5], host[1::7], host[2::11], host[3::13] = np.nan, -0.0, np.inf, -np.inf
    gy = rng.standard_normal(n + offset).astype(dtype)
    gy[4::17] = np.inf
    key, ref = (2**64 - 3, 4, 1000), NumpyOps(xdl.backend.get_backend("numpy"))
    want, saved = ref.relu_dropout_forward(host[offset:], 0.3, *key)
    pair, _ = ref.dropout_forward(ref.relu_forward(host[offset:]), 0.3, *key)
    np.testing.assert_array_equal(want, pair)  # the reference is the pair
    x = gpu.asarray(host)[offset:]
    got, recomputed = gpu.ops.relu_dropout_forward(x, 0.3, *key)
    assert recomputed == Recomputed(np.dtype(dtype))
    np.testing.assert_array_equal(got.get(), want)
    assert (np.signbit(got.get()) == np.signbit(want))[~np.isnan(want)].all()
    back = gpu.ops.relu_dropout_backward(gpu.asarray(gy)[offset:], got, recomputed, 0.3, *key)
    want_back = ref.relu_dropout_backward(gy[offset:], want, saved, 0.3, *key)
    np.testing.assert_array_equal(back.get(), want_back)
    assert (np.signbit(back.get()) == np.signbit(want_back))[~np.isnan(want_back)].all()
    if dtype == np.float32:  # a float64 gradient into the float32 op: as the reference pair computes it
        gy64 = gy[offset:].astype(np.float64)
        want_back = ref.relu_dropout_backward(gy64, want, saved, 0.3, *key)
        back = gpu.ops.relu_dropout_backward(gpu.asarray(gy64), got, recomputed, 0.3, *key)
        assert back.dtype == np.float64
        np.testing.assert_array_equal(back.get(), want_back)

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 3, 5), (64, 16, 256), (1023, 2, 17)])
def test_stacked_dropout_kernel_draws_each_models_own_mask(gpu, rng, shape, dtype):
    b, k, c = shape
    host = rng.standard_normal(shape).astype(dtype)
    rates = np.linspace(0.0, 0.6, k)
    seeds = [(7 + 1000 * i) % 2**64 for i in range(k)]
    ref = NumpyOps(xdl.backend.get_backend("numpy"))
    want, saved = ref.stacked_dropout_forward(host, rates, seeds, 2, 31)
    got, recomputed = gpu.ops.stacked_dropout_forward(gpu.asarray(host), rates, seeds, 2, 31)
    np.testing.assert_array_equal(got.get(), want)
    for i in range(k):  # model i's slice is what it draws alone
        alone, _ = ref.dropout_forward(np.ascontiguousarray(host[:, i]), rates[i], seeds[i], 2, 31)
        np.testing.assert_array_equal(got.get()[:, i], alone)
    back = gpu.ops.stacked_dropout_backward(gpu.asarray(host), recomputed, rates, seeds, 2, 31)
    np.testing.assert_array_equal(back.get(), ref.stacked_dropout_backward(host, saved, rates, seeds, 2, 31))
    other = host.astype(np.float64 if dtype == np.float32 else np.float32)  # a gradient of another dtype
    back = gpu.ops.stacked_dropout_backward(gpu.asarray(other), recomputed, rates, seeds, 2, 31)
    np.testing.assert_array_equal(back.get(), ref.stacked_dropout_backward(other, saved, rates, seeds, 2, 31))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 3, 5), (64, 16, 256), (1023, 5, 17)])
def test_stacked_relu_dropout_kernels_are_the_reference_bit_for_bit(gpu, rng, shape, dtype):
    b, k, c = shape
    host, gy = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    host.reshape(-1)[::7], host.reshape(-1)[1::11] = np.nan, -0.0
    rates = np.linspace(0.0, 0.75, k)[::-1].copy()
    seeds = [(7 + 1000 * i) % 2**64 for i in range(k)]
    ref = NumpyOps(xdl.backend.get_backend("numpy"))
    want, saved = ref.stacked_relu_dropout_forward(host, rates, seeds, 2, 31)
    got, recomputed = gpu.ops.stacked_relu_dropout_forward(gpu.asarray(host), rates, seeds, 2, 31)
    np.testing.assert_array_equal(got.get(), want)
    back = gpu.ops.stacked_relu_dropout_backward(gpu.asarray(gy), got, recomputed, rates, seeds, 2, 31)
    np.testing.assert_array_equal(back.get(), ref.stacked_relu_dropout_backward(gy, want, saved, rates, seeds, 2, 31))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (7, 1023, 3), (128, 256, 256), (513, 33, 1)])
def test_own_cublas_handle_matches_cupy_matmul(gpu, rng, m, k, n, dtype):
    """xdl's cuBLAS handle (ctypes) against cupy.matmul, every operand plain or a transposed view,
    and added into an existing array (β = 1) as a weight gradient is — a padded view, its row stride
    (cuBLAS's ldc) wider than its row."""
    xp = gpu.xp
    for ta in (False, True):
        for tb in (False, True):
            a = xp.asarray(rng.standard_normal((k, m) if ta else (m, k)).astype(dtype))
            b = xp.asarray(rng.standard_normal((n, k) if tb else (k, n)).astype(dtype))
            a, b = (a.T if ta else a), (b.T if tb else b)
            want = xp.matmul(a, b)
            assert relative_error(gpu.ops.matmul(a, b).get(), want.get()) < TOLERANCE[dtype]
            c = xp.asarray(rng.standard_normal((m, n + 3)).astype(dtype))[:, 1:n + 1]
            total = c + want
            gpu.ops.matmul(a, b, out=c, accumulate=True)
            assert relative_error(c.get(), total.get()) < TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, b, n_in, n_out", [(3, 7, 5, 4), (16, 64, 256, 128), (1, 1, 1, 1)])
def test_own_cublas_handle_runs_stacked_models_products_as_one_batched_gemm(gpu, rng, k, b, n_in, n_out, dtype):
    """StackedLinear's products on its strided views — (B, K, ·) activations, a shared input, the
    weight gradient added into the (K, P) buffer — against cupy.matmul."""
    from xdl.cuda.cublas import gemm_plan

    xp = gpu.xp
    x, gy = (xp.asarray(rng.standard_normal((b, k, n)).astype(dtype)) for n in (n_in, n_out))
    w, shared = xp.asarray(rng.standard_normal((k, n_in, n_out)).astype(dtype)), xp.asarray(
        rng.standard_normal((b, n_in)).astype(dtype))
    buffer = xp.asarray(rng.standard_normal((k, n_in * n_out + 3)).astype(dtype))
    grads = buffer[:, 3:].reshape(k, n_in, n_out)
    for a, m, out, accumulate in [(x.transpose(1, 0, 2), w, xp.empty((b, k, n_out), dtype).transpose(1, 0, 2), False),
                                  (shared, w, xp.empty((b, k, n_out), dtype).transpose(1, 0, 2), False),
                                  (gy.transpose(1, 0, 2), w.transpose(0, 2, 1),
                                   xp.empty((b, k, n_in), dtype).transpose(1, 0, 2), False),
                                  (x.transpose(1, 2, 0), gy.transpose(1, 0, 2), grads, True)]:
        assert gemm_plan(a, m, out) is not None
        want = xp.matmul(a, m) + (out if accumulate else 0)
        gpu.ops.matmul(a, m, out=out, accumulate=accumulate)
        assert relative_error(out.get(), want.get()) < TOLERANCE[dtype]


def test_own_cublas_handle_captures_into_a_cuda_graph(gpu, rng):
    """What cupy.matmul refuses: 8 products captured on a stream, then replayed."""
    xp = gpu.xp
    a = xp.asarray(rng.standard_normal((128, 256)).astype(np.float32))
    b = xp.asarray(rng.standard_normal((256, 256)).astype(np.float32))
    out = xp.zeros((128, 256), np.float32)
    stream = xp.cuda.Stream(non_blocking=True)
    with stream:
        gpu.ops.matmul(a, b, out=out)  # warm-up: this stream's handle exists before the capture
        stream.begin_capture()
        for _ in range(8):
            gpu.ops.matmul(a, b, out=out, accumulate=True)
        graph = stream.end_capture()
        out.fill(0)
        graph.launch(stream)
        stream.synchronize()
    assert relative_error(out.get(), 8 * (a @ b).get()) < 1e-5


def test_tf32_precision_is_the_backends_and_restored(gpu, rng):
    xp = gpu.xp
    a = xp.asarray(rng.standard_normal((512, 512)).astype(np.float32))
    exact = (a.astype(np.float64) @ a.astype(np.float64)).get()
    with xdl.use("cupy", precision="tf32") as backend:
        assert backend.precision == "tf32"
        tf32 = relative_error(backend.ops.matmul(a, a).get(), exact)
    float32 = relative_error(gpu.ops.matmul(a, a).get(), exact)
    assert gpu.precision == "float32"
    assert float32 < 1e-6 < tf32 < 1e-2  # TF32 keeps 10 mantissa bits in the product


# up to 2048 rows: the one-launch forward; above, odd widths take the scalar path and widths
# divisible by 4 the 16-byte one (two column blocks for 132)
# one launch (bn_forward_small): up to 256 rows, or up to 2048 when the features fill the GPU (600, 6401);
# the two-kernel path otherwise
BN_SHAPES = [(2, 1), (7, 3), (256, 5), (600, 6401), (1023, 7), (2048, 1000), (4099, 33), (1 << 12, 1027),
             (3001, 132), (8195, 1024)]
BN_TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def bn_truth(x, gamma, beta, dy):
    """Forward and backward in float64 from scratch."""
    x, gamma, dy = (a.astype(np.float64) for a in (x, gamma, dy))
    n = x.shape[0]
    mean, var = x.mean(0), x.var(0)
    inv = 1 / np.sqrt(var + 1e-5)
    x_hat = (x - mean) * inv
    dbeta, dgamma = dy.sum(0), (dy * x_hat).sum(0)
    dx = gamma * inv / n * (n * dy - dbeta - x_hat * dgamma)
    return x_hat * gamma + beta, inv, (dx, dgamma, dbeta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("offset", [0.0, 1e4], ids=["centered", "mean1e4"])
def test_batchnorm_kernels_match_reference(gpu, rng, shape, dtype, offset):
    n, c = shape
    x = (rng.standard_normal(shape) * rng.uniform(0.5, 2, c) + offset).astype(dtype)
    gamma, beta = rng.uniform(0.5, 2, c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    cpu = NumpyOps(xdl.backend.get_backend("numpy"))
    rm_ref, rv_ref = rm.copy(), rv.copy()
    y_ref, mean_ref, inv_ref = cpu.batchnorm_train_forward(x, gamma, beta, rm_ref, rv_ref, 0.9, 1e-5)
    rm_dev, rv_dev = gpu.asarray(rm), gpu.asarray(rv)
    y, mean, inv = gpu.ops.batchnorm_train_forward(gpu.asarray(x), gpu.asarray(gamma), gpu.asarray(beta),
                                                   rm_dev, rv_dev, 0.9, 1e-5)
    grads = gpu.ops.batchnorm_backward(gpu.asarray(dy), gpu.asarray(x), gpu.asarray(gamma), mean, inv)
    grads_ref = cpu.batchnorm_backward(dy, x, gamma, mean_ref, inv_ref)
    y_inf = gpu.ops.batchnorm_inference(gpu.asarray(x), gpu.asarray(gamma), gpu.asarray(beta), gpu.asarray(rm),
                                        gpu.asarray(rv), 1e-5)
    assert relative_error(y_inf.get(), cpu.batchnorm_inference(x, gamma, beta, rm, rv, 1e-5)) < BN_TOLERANCE[dtype]
    # dx is a difference of terms of size |γ/σ·dy|; measure its error against that scale
    dx_scale = np.linalg.norm(dy.astype(np.float64) * (gamma * inv_ref))
    if offset == 0.0:
        tol = BN_TOLERANCE[dtype]
        for got, ref in ((y, y_ref), (inv, inv_ref), (rm_dev, rm_ref), (rv_dev, rv_ref)):
            assert relative_error(got.get(), ref) < tol
        # μ ≈ 0 has no scale of its own: its error is measured in standard deviations
        assert np.linalg.norm((mean.get() - mean_ref) * inv_ref) / np.sqrt(c) < tol
        assert np.linalg.norm(grads[0].get() - grads_ref[0]) / dx_scale < 10 * tol
        for got, ref in zip(grads[1:], grads_ref[1:]):
            assert relative_error(got.get(), ref) < 10 * tol
    else:
        # Mean 1e4, spread ~1: both implementations against float64 truth. The kernel normalizes
        # with μ rounded to float32 (±4.9e-4 absolute at 1e4), which bounds y's accuracy near 2e-4;
        # the variance must not cancel catastrophically (E[x²] − E[x]² would lose everything here).
        y_true, inv_true, grads_true = bn_truth(x, gamma, beta, dy)
        tol_y = 2e-3 if dtype == np.float32 else 1e-10
        for impl_y, impl_inv in ((y.get(), inv.get()), (y_ref, inv_ref)):
            assert relative_error(impl_y, y_true) < tol_y
            assert relative_error(impl_inv, inv_true) < (1e-4 if dtype == np.float32 else 1e-10)
        assert np.linalg.norm(grads[0].get() - grads_true[0]) / dx_scale < tol_y
        assert relative_error(grads[2].get(), grads_true[2]) < tol_y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [7, 300], ids=["one_launch", "two_kernels"])
@pytest.mark.parametrize("accumulate", [False, True])
def test_batchnorm_reads_and_writes_stacked_models_rows_in_place(gpu, rng, n, dtype, accumulate):
    """K = 3 models' γ, β and their gradients as StackedBatchNorm holds them: (3, 5) views of (3, 9) buffers, rows
    9 apart (`_bn_row_layout`: the kernels address feature f of model k at k·9 + f), the gradients written or
    added (β = 1) in place, against the reference on the same values laid out contiguously."""
    k, f = 3, 5
    x, dy = (rng.standard_normal((n, k * f)).astype(dtype) for _ in range(2))
    rows = [rng.standard_normal((k, f + 4)).astype(dtype) for _ in range(4)]  # γ, β, ∂L/∂γ, ∂L/∂β buffers
    views = [gpu.asarray(r)[:, 2:2 + f] for r in rows]
    flat = [r[:, 2:2 + f].reshape(-1).copy() for r in rows]
    rm, rv = rng.standard_normal(k * f).astype(dtype), rng.uniform(0.5, 2, k * f).astype(dtype)
    cpu = NumpyOps(xdl.backend.get_backend("numpy"))
    y_ref, mean_ref, inv_ref = cpu.batchnorm_train_forward(x, flat[0], flat[1], rm.copy(), rv.copy(), 0.9, 1e-5)
    y, mean, inv = gpu.ops.batchnorm_train_forward(gpu.asarray(x), views[0], views[1], gpu.asarray(rm),
                                                   gpu.asarray(rv), 0.9, 1e-5)
    assert relative_error(y.get(), y_ref) < BN_TOLERANCE[dtype]
    dx_ref, dgamma_ref, dbeta_ref = cpu.batchnorm_backward(dy, x, flat[0], mean_ref, inv_ref, flat[2], flat[3],
                                                           accumulate)
    dx, _, _ = gpu.ops.batchnorm_backward(gpu.asarray(dy), gpu.asarray(x), views[0], mean, inv, views[2], views[3],
                                          accumulate)
    assert relative_error(dx.get(), dx_ref) < 10 * BN_TOLERANCE[dtype]
    for view, ref in ((views[2], dgamma_ref), (views[3], dbeta_ref)):
        assert relative_error(view.get().reshape(-1), ref) < 10 * BN_TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_unaligned_input_and_repeated_calls(gpu, rng, dtype):
    """A row array off 16-byte alignment takes the scalar path with the same result; repeated calls
    (the last-block counters are reset by the kernels) give bitwise-identical results."""
    n, c = 2051, 256
    host = rng.standard_normal(n * c + 1).astype(dtype)
    aligned = gpu.asarray(host[1:]).reshape(n, c)
    unaligned = gpu.asarray(host)[1:].reshape(n, c)
    gamma, beta = gpu.asarray(rng.uniform(0.5, 2, c).astype(dtype)), gpu.asarray(rng.standard_normal(c).astype(dtype))
    dy = gpu.asarray(rng.standard_normal((n, c)).astype(dtype))
    results = []
    for x in (aligned, aligned, unaligned):
        rm, rv = gpu.xp.zeros(c, dtype), gpu.xp.ones(c, dtype)
        y, mean, inv = gpu.ops.batchnorm_train_forward(x, gamma, beta, rm, rv, 0.9, 1e-5)
        results.append([a.get() for a in (y, mean, inv, rm, rv, *gpu.ops.batchnorm_backward(dy, x, gamma, mean, inv))])
    for a, b in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(results[0], results[2]):
        assert relative_error(b, a) < 10 * BN_TOLERANCE[dtype]


def test_kernels_load_from_source_tree(gpu):
    from xdl.cuda import kernel_dir

    assert (kernel_dir() / "optim.cu").is_file() and (kernel_dir() / "batchnorm.cu").is_file()
