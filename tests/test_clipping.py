"""`xdl.optim.clip_grad_norm`: gradients scaled by min(1, max_norm / (‖g‖₂ + 1e-6)) over all of them together
(PyTorch's ``clip_grad_norm_``), checked against NumPy by hand; a `Stacked` model's K models each by its own norm."""

import numpy as np
import pytest

import xdl
from xdl.optim import SGD, clip_grad_norm


def reference(grads: list, max_norm: float) -> tuple[float, list]:
    """The norm of ``grads`` (NumPy arrays) and the clipped gradients, in float64, by the formula."""
    norm = float(np.sqrt(sum(float(np.sum(np.square(g.astype(np.float64)))) for g in grads)))
    scale = min(1.0, max_norm / (norm + 1e-6))
    return norm, [g.astype(np.float64) * scale for g in grads]


def host(backend, array) -> np.ndarray:
    return np.array(backend.to_numpy(array))


def model_with_gradients(backend, rng, dtype, magnitude: float, sizes=(3, [5, 4], 2)):
    """A model whose gradients are random values of about ``magnitude`` (written into its flat buffer)."""
    model = xdl.nn.mlp(*sizes).astype(dtype).to(backend)
    for p in model.parameters():
        p.grad[...] = backend.own((rng.standard_normal(p.shape) * magnitude).astype(dtype))
    return model


def tolerance(dtype) -> dict:
    return {"rtol": 1e-12, "atol": 0} if np.dtype(dtype) == np.float64 else {"rtol": 2e-6, "atol": 0}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_model_is_clipped_by_its_global_norm_as_numpy_computes_it(backend, dtype):
    """60 models (gradients of 1e-4 to 1e4, max_norm of 1e-3 to 1e3: about half clipped): the norm returned is a 0-d
    array of the backend in the gradients' dtype, equal to NumPy's; each gradient is NumPy's clipped one."""
    rng = np.random.default_rng(7)
    clipped = 0
    for _ in range(60):
        model = model_with_gradients(backend, rng, dtype, 10 ** rng.uniform(-4, 4))
        max_norm = float(10 ** rng.uniform(-3, 3))
        before = [host(backend, p.grad) for p in model.parameters()]
        expected_norm, expected = reference(before, max_norm)
        norm = clip_grad_norm(model, max_norm)
        assert backend.owns(norm) and norm.shape == () and norm.dtype == dtype
        np.testing.assert_allclose(float(host(backend, norm)), expected_norm, **tolerance(dtype))
        for p, want in zip(model.parameters(), expected):
            np.testing.assert_allclose(host(backend, p.grad), want, **tolerance(dtype))
        clipped += expected_norm > max_norm
    assert 10 < clipped < 50


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_norm_below_max_norm_leaves_the_gradients_unchanged_bit_for_bit(backend, dtype):
    """PyTorch's convention: the scale is min(1, ·), exactly 1 below max_norm, and g · 1 is g (40 models)."""
    rng = np.random.default_rng(8)
    for _ in range(40):
        model = model_with_gradients(backend, rng, dtype, 10 ** rng.uniform(-6, 2))
        before = [host(backend, p.grad) for p in model.parameters()]
        norm, _ = reference(before, 1.0)
        clip_grad_norm(model, norm * 1.01 + 1e-3)
        for p, was in zip(model.parameters(), before):
            np.testing.assert_array_equal(host(backend, p.grad), was)


def test_zero_gradients_have_a_norm_of_0_and_stay_0(backend):
    model = xdl.nn.mlp(3, [4], 2).to(backend)
    model.zero_grad()
    norm = clip_grad_norm(model, 1e-3)
    assert float(host(backend, norm)) == 0.0
    assert all(not host(backend, p.grad).any() for p in model.parameters())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_huge_gradient_is_scaled_to_max_norm_with_the_rest(backend, dtype):
    """One value of 1e20 among values of about 1: its square overflows float32, not the float64 sum of squares;
    after clipping the norm is max_norm and the small values shrink by the same factor."""
    rng = np.random.default_rng(9)
    model = model_with_gradients(backend, rng, dtype, 1.0)
    first = model.parameters()[0]
    first.grad[0, 0] = 1e20
    before = [host(backend, p.grad) for p in model.parameters()]
    expected_norm, expected = reference(before, 0.5)
    norm = clip_grad_norm(model, 0.5)
    np.testing.assert_allclose(float(host(backend, norm)), expected_norm, rtol=1e-6)
    after = [host(backend, p.grad) for p in model.parameters()]
    np.testing.assert_allclose(reference(after, 1.0)[0], 0.5, rtol=1e-5)
    for got, want in zip(after, expected):
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-30)


def test_a_nan_gradient_makes_the_norm_and_every_gradient_nan(backend):
    """As PyTorch's: the scale is NaN, so the next step writes NaN into every weight (a run's divergence check
    stops it there)."""
    model = model_with_gradients(backend, np.random.default_rng(10), np.float32, 1.0)
    model.parameters()[1].grad[0] = np.nan
    norm = clip_grad_norm(model, 1.0)
    assert np.isnan(float(host(backend, norm)))
    assert all(np.isnan(host(backend, p.grad)).all() for p in model.parameters())


def test_an_infinite_gradient_makes_the_norm_inf_the_finite_gradients_0_and_it_nan(backend):
    """As PyTorch's: the scale max_norm / inf is 0; inf · 0 is NaN."""
    model = model_with_gradients(backend, np.random.default_rng(11), np.float64, 1.0)
    model.parameters()[0].grad[1, 2] = -np.inf
    with np.errstate(invalid="ignore"):  # (NumPy's warning of inf · 0)
        norm = clip_grad_norm(model, 1.0)
    assert float(host(backend, norm)) == np.inf
    grads = [host(backend, p.grad) for p in model.parameters()]
    assert np.isnan(grads[0][1, 2])
    grads[0][1, 2] = 0
    assert all(not g.any() for g in grads)


def test_parameters_in_any_order_or_apart_from_their_buffer_are_clipped_alike(backend):
    """A list of parameters that does not fill a run of their flat buffer (a subset, reversed, with one whose
    grad is None, of two dtypes together) is clipped gradient by gradient, by the same one norm (30 cases);
    a grad of None is skipped (PyTorch's), float32 and float64 together give a float64 norm."""
    rng = np.random.default_rng(12)
    for case in range(30):
        model = model_with_gradients(backend, rng, np.float32, 10 ** rng.uniform(-2, 2))
        other = model_with_gradients(backend, rng, np.float64, 10 ** rng.uniform(-2, 2))
        params = model.parameters()
        chosen = [params[i] for i in rng.permutation(len(params))[:rng.integers(1, len(params) + 1)]]
        if case % 3 == 0:
            chosen.append(xdl.Parameter(xdl.tensor(np.ones(3, np.float32), backend=backend)))  # grad None
        if case % 2 == 0:
            chosen += other.parameters()[:2]
        with_grad = [p for p in chosen if p.grad is not None]
        max_norm = float(10 ** rng.uniform(-1, 1))
        expected_norm, expected = reference([host(backend, p.grad) for p in with_grad], max_norm)
        untouched = [host(backend, p.grad) for p in params if not any(p is q for q in chosen)]
        norm = clip_grad_norm(chosen, max_norm)
        assert norm.dtype == (np.float64 if case % 2 == 0 else np.float32)
        np.testing.assert_allclose(float(host(backend, norm)), expected_norm, rtol=2e-6)
        for p, want in zip(with_grad, expected):
            np.testing.assert_allclose(host(backend, p.grad), want, rtol=2e-6)
        others = [host(backend, p.grad) for p in params if not any(p is q for q in chosen)]
        for was, now in zip(untouched, others):
            np.testing.assert_array_equal(now, was)


def test_a_lone_tensor_and_an_empty_list_are_taken_as_pytorch_takes_them(backend):
    p = xdl.Parameter(xdl.tensor(np.zeros(4), backend=backend))
    p.grad = backend.own(np.array([3.0, 4.0, 0.0, 0.0]))
    norm = clip_grad_norm(p, 1.0)
    assert float(host(backend, norm)) == 5.0
    np.testing.assert_allclose(host(backend, p.grad), [0.6, 0.8, 0, 0], rtol=1e-6)
    assert float(host(backend, clip_grad_norm([], 1.0))) == 0.0


@pytest.mark.parametrize("max_norm", [0, -1.0, float("nan"), float("inf"), 10 ** 400, True, "1", None, [1.0]])
def test_a_bad_max_norm_is_refused_naming_it_before_any_change(max_norm):
    model = model_with_gradients(xdl.current_backend(), np.random.default_rng(13), np.float32, 1.0)
    before = model.state_dict()
    grads = [p.grad.copy() for p in model.parameters()]
    with pytest.raises(ValueError, match="clip_grad_norm: max_norm must be a finite number > 0, got"):
        clip_grad_norm(model, max_norm)
    for p, was in zip(model.parameters(), grads):
        np.testing.assert_array_equal(p.grad, was)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


@pytest.mark.parametrize("option, value, way", [
    ("norm_type", 2.0, "the norm is always the 2-norm"), ("norm_type", float("inf"), "the norm is always the 2-norm"),
    ("norm_type", "fro", "the norm is always the 2-norm"), ("error_if_nonfinite", True, "the norm returned is NaN"),
    ("error_if_nonfinite", False, "the norm returned is NaN"), ("foreach", None, "one buffer"),
    ("foreach", True, "one buffer"), ("max_grad_norm", 1.0, "not an option of clip_grad_norm"),
])
def test_pytorchs_options_are_refused_saying_the_way_before_any_change(option, value, way):
    """PyTorch's ``clip_grad_norm_(params, 1.0, norm_type=2)`` met Python's bare "unexpected keyword argument"."""
    model = model_with_gradients(xdl.current_backend(), np.random.default_rng(17), np.float32, 1.0)
    grads = [p.grad.copy() for p in model.parameters()]
    with pytest.raises(TypeError, match=rf"clip_grad_norm\(\) takes no option {option}=: .*{way}"):
        clip_grad_norm(model, 1e-3, **{option: value})
    for p, was in zip(model.parameters(), grads):
        np.testing.assert_array_equal(p.grad, was)


@pytest.mark.parametrize("extra", [(2.0,), (float("inf"),), ("fro",), (2.0, True), (2.0, False, None)])
def test_pytorchs_norm_type_by_position_is_refused_saying_the_way_before_any_change(extra):
    """PyTorch's ``clip_grad_norm_(params, 1.0, 2.0)`` (its third is norm_type) met Python's bare "takes 2
    positional arguments but 3 were given", which named no way."""
    model = model_with_gradients(xdl.current_backend(), np.random.default_rng(19), np.float32, 1.0)
    grads = [p.grad.copy() for p in model.parameters()]
    with pytest.raises(TypeError, match=rf"clip_grad_norm\(\) takes 2 positional arguments \(parameters, max_norm\) "
                                        rf"but {2 + len(extra)} were given; PyTorch's third, .*norm_type.* 2-norm"):
        clip_grad_norm(model, 1e-3, *extra)
    for p, was in zip(model.parameters(), grads):
        np.testing.assert_array_equal(p.grad, was)


def test_what_is_not_parameters_is_refused_naming_it():
    with pytest.raises(TypeError, match="clip_grad_norm: parameters must be a model, a list of tensors or a tensor"):
        clip_grad_norm(5, 1.0)
    with pytest.raises(TypeError, match=r"clip_grad_norm: parameters\[1\] is a ndarray, expected an xdl.Tensor"):
        clip_grad_norm([xdl.Parameter(xdl.tensor(np.ones(2))), np.ones(2)], 1.0)


def stack_of(backend, rng, k: int, dtype=np.float64):
    """K models stacked, with gradients of magnitudes from 1e-3 to 1e3 written into the (K, P) buffer."""
    stacked = xdl.nn.stack([xdl.nn.mlp(4, [6, 5], 3).astype(dtype) for _ in range(k)], backend)
    scales = 10 ** rng.uniform(-3, 3, size=(k, 1))
    stacked.grad[...] = backend.own((rng.standard_normal(stacked.grad.shape) * scales).astype(dtype))
    return stacked


def test_a_stack_clips_each_model_by_its_own_norm_as_each_model_alone(backend):
    """K models stacked (K from 1 to 6, 20 stacks): the K norms and the clipped (K, P) gradients are those of the
    K models, taken out of the stack with their gradients and clipped alone (float64, to 1e-12)."""
    rng = np.random.default_rng(14)
    for k in list(range(1, 7)) * 3 + [2, 5]:
        stacked = stack_of(backend, rng, k)
        max_norm = float(10 ** rng.uniform(-1, 1))
        grads = host(backend, stacked.grad)
        alone = []
        for row in grads:
            model = xdl.nn.mlp(4, [6, 5], 3).astype(np.float64).to(backend)
            for p, (start, stop) in zip([p for _, p in model.flat_order()], _columns(model)):
                p.grad[...] = backend.own(row[start:stop].reshape(p.shape))
            norm = clip_grad_norm(model, max_norm)
            alone.append((float(host(backend, norm)), np.concatenate([host(backend, p.grad).ravel()
                                                                      for _, p in model.flat_order()])))
        norms = clip_grad_norm(stacked, max_norm)
        assert backend.owns(norms) and norms.shape == (k,) and norms.dtype == np.float64
        np.testing.assert_allclose(host(backend, norms), [n for n, _ in alone], rtol=1e-12, atol=0)
        np.testing.assert_allclose(host(backend, stacked.grad), np.stack([g for _, g in alone]), rtol=1e-12, atol=0)


def _columns(model) -> list[tuple[int, int]]:
    """Each parameter's (start, stop) in its model's flat buffer order (a stacked row's layout)."""
    out, start = [], 0
    for _, p in model.flat_order():
        out.append((start, start + p.size))
        start += p.size
    return out


def test_a_stacked_models_parameters_listed_are_refused_before_any_change(backend):
    """Listed, they are K models' rows, which one norm would mix: the Stacked model itself is asked for."""
    stacked = stack_of(backend, np.random.default_rng(15), 3)
    before = host(backend, stacked.grad)
    with pytest.raises(TypeError, match=r"parameters\[0\] belongs to a Stacked model .* give the Stacked model"):
        clip_grad_norm(stacked.parameters(), 1.0)
    np.testing.assert_array_equal(host(backend, stacked.grad), before)


def test_clipping_keeps_a_too_high_learning_rate_from_diverging(backend):
    """Plain SGD at lr 0.3 on a regression whose inputs are of about 10 diverges (the cost is NaN after 100 steps);
    the same run with the gradient clipped to norm 0.1 keeps a finite cost, never above the first, that ends below a
    tenth of it."""
    rng = np.random.default_rng(16)
    x = (rng.standard_normal((64, 5)) * 10).astype(np.float32)
    y = (x @ rng.standard_normal((5, 1)) * 0.1).astype(np.float32)
    loss = xdl.losses.MeanSquaredError()

    def costs(clip: bool) -> list[float]:
        xdl.seed(0)
        model = xdl.nn.mlp(5, [16], 1).to(backend)
        opt = SGD(model, lr=0.3)
        out = []
        with np.errstate(all="ignore"):
            for _ in range(100):
                opt.zero_grad()
                cost = loss(model(x), y)
                cost.backward()
                if clip:
                    clip_grad_norm(model, 0.1)
                opt.step()
                out.append(float(host(backend, cost.data)))
        return out

    assert not np.isfinite(costs(clip=False)[-1])
    clipped = costs(clip=True)
    assert np.isfinite(clipped).all() and max(clipped) == clipped[0] and clipped[-1] < clipped[0] / 10


def test_pytorch_and_keras_names_point_to_it():
    with pytest.raises(AttributeError, match=r"xdl.optim.clip_grad_norm\(model, max_norm\)"):
        xdl.nn.utils  # noqa: B018
    with pytest.raises(TypeError, match="Keras's 'global_clipnorm' is max_grad_norm here"):
        xdl.optim.Adam(xdl.nn.mlp(2, [2], 1), global_clipnorm=1.0)


@pytest.mark.gpu
def test_clipping_reads_nothing_back_to_the_host(cupy):
    """The norm and the scale stay on the device (no host read: no sync) — a model's one flat buffer and a
    stack's (K, P) one are each a reduction and a scale, not one per parameter."""
    backend = xdl.current_backend()
    rng = np.random.default_rng(17)
    model = model_with_gradients(backend, rng, np.float32, 10.0, sizes=(3, [5, 4, 4, 4], 2))
    stacked = stack_of(backend, rng, 4, np.float32)
    for target in (model, stacked):
        clip_grad_norm(target, 1.0)
        with cupy.fake_trace() as trace:
            clip_grad_norm(target, 1.0)
        kinds = [kind for kind, _, _ in trace.events]
        assert "read" not in kinds and "upload" not in kinds
        assert kinds.count("launch") <= 10


def test_no_gradients_give_a_0_d_float32_zero_on_the_parameters_backend(backend):
    """Parameters whose grads are all None (PyTorch's: a norm of 0): a 0-d float32 0 of their backend, not of
    the backend current at the call, whatever their dtype."""
    for dtype in (np.float32, np.float64):
        params = [xdl.Parameter(xdl.tensor(np.ones(3, dtype), backend=backend)) for _ in range(2)]
        with xdl.use("numpy"):
            norm = clip_grad_norm(params, 1.0)
        assert isinstance(norm, backend.xp.ndarray) and norm.shape == () and norm.dtype == np.float32
        assert float(host(backend, norm)) == 0.0


@pytest.mark.gpu
def test_parameters_of_two_backends_are_refused_before_any_change():
    from conftest import cupy_available

    if not cupy_available():
        pytest.skip("cupy backend needs CuPy and an NVIDIA GPU")
    with xdl.use("numpy") as numpy_backend:
        on_host = xdl.Parameter(xdl.tensor(np.zeros(2, np.float32), backend=numpy_backend))
        on_host.grad = np.array([30.0, 40.0], np.float32)
    with xdl.use("cupy") as device:
        on_device = xdl.Parameter(xdl.tensor(np.zeros(2, np.float32), backend=device))
        on_device.grad = device.own(np.array([3.0, 4.0], np.float32))
        with pytest.raises(TypeError, match="clip_grad_norm: parameters of different backends"):
            clip_grad_norm([on_host, on_device], 1.0)
        np.testing.assert_array_equal(host(device, on_device.grad), [3.0, 4.0])
    np.testing.assert_array_equal(on_host.grad, [30.0, 40.0])


def test_a_grad_rebound_to_a_tensor_is_clipped_in_it(backend):
    """``p.grad = t`` (PyTorch's habit, a Tensor where the model's buffer held an array): its values clipped."""
    rng = np.random.default_rng(21)
    for case in range(10):
        grads = [rng.standard_normal(shape) * 10 ** rng.uniform(-2, 2) for shape in ((3,), (2, 4))]
        params = [xdl.Parameter(xdl.tensor(np.zeros_like(g), backend=backend)) for g in grads]
        for p, g in zip(params, grads):
            p.grad = xdl.tensor(g, backend=backend)
        max_norm = float(10 ** rng.uniform(-2, 2))
        norm = clip_grad_norm(params, max_norm)
        expected_norm, expected = reference(grads, max_norm)
        np.testing.assert_allclose(float(host(backend, norm)), expected_norm, rtol=1e-12)
        for p, want in zip(params, expected):
            np.testing.assert_allclose(host(backend, p.grad.data), want, rtol=1e-12)


# -- on the CPU: the float64 sums of squares by chunks (NumpyBackend.row_sums_of_squares), no write below the max --

def float64_copy_sums(array, rows: int) -> np.ndarray:
    """Σ x² per row by one float64 copy of the whole array, squared and summed: what clipping did before chunks
    (and what `Backend.row_sums_of_squares`, CuPy's, still does)."""
    squares = array.reshape(rows, -1).astype(np.float64)
    return (squares * squares).sum(axis=1)


def test_the_cpus_chunked_sums_of_squares_equal_a_float64_copys_to_rounding():
    """192 buffers: rows of 0, 1, 2, 7, a chunk (8192) ± 1, two ± 1, three + 1 and a random odd number of elements,
    1 to 5 rows, float32 and float64, contiguous or every second element of a larger buffer, values of 1e-20 to 1e20
    (a float32 1e20's square is inf in float32): the sums are finite and equal the float64 copy's to 1e-12."""
    from xdl.backend import SQUARES_CHUNK, NumpyBackend

    cpu, rng, cases = NumpyBackend(), np.random.default_rng(22), 0
    sizes = [0, 1, 2, 7, SQUARES_CHUNK - 1, SQUARES_CHUNK, SQUARES_CHUNK + 1, 2 * SQUARES_CHUNK - 1,
             2 * SQUARES_CHUNK, 2 * SQUARES_CHUNK + 1, 3 * SQUARES_CHUNK + 1, 2 * int(rng.integers(1, 20000)) + 1]
    for dtype in (np.float32, np.float64):
        for rows in (1, 2, 3, 5):
            for n in sizes:
                for strided in (False, True):
                    values = rng.standard_normal(rows * n * (2 if strided else 1)) * 10 ** rng.uniform(-20, 20)
                    if values.size:
                        values[rng.integers(values.size)] = 1e20
                    buffer = values.astype(dtype)
                    array = buffer[::2] if strided else buffer
                    got = cpu.row_sums_of_squares(array, rows)
                    assert got.shape == (rows,) and got.dtype == np.float64 and np.isfinite(got).all()
                    np.testing.assert_allclose(got, float64_copy_sums(array, rows), rtol=1e-12, atol=0)
                    cases += 1
    assert cases == 2 * 4 * len(sizes) * 2


def test_the_cpus_sums_of_squares_of_many_short_rows_equal_a_float64_copys_across_blocks():
    """Rows shorter than a chunk (fit_many's K models of a small MLP) go a block of ⌊chunk / n⌋ rows at a time:
    124 tables of 1 to 3,001 rows of 0 to 8,191 elements, float32 and float64, contiguous or strided, so that blocks
    end inside the table, at its end and past it — the sums equal the float64 copy's to 1e-12."""
    from xdl.backend import SQUARES_CHUNK, NumpyBackend

    cpu, rng, cases = NumpyBackend(), np.random.default_rng(25), 0
    for dtype in (np.float32, np.float64):
        for rows in (1, 2, 1000, 2049, 3001):
            for n in (0, 1, 5, 7, 100, SQUARES_CHUNK // 2, SQUARES_CHUNK // 2 + 1, SQUARES_CHUNK - 1):
                for strided in (False, True):
                    if rows * n > 2_000_000:
                        continue
                    buffer = (rng.standard_normal(rows * n * (2 if strided else 1))
                              * 10 ** rng.uniform(-20, 20)).astype(dtype)
                    table = (buffer[::2] if strided else buffer).reshape(rows, n)
                    got = cpu.row_sums_of_squares(table, rows)
                    assert got.shape == (rows,) and got.dtype == np.float64 and np.isfinite(got).all()
                    np.testing.assert_allclose(got, float64_copy_sums(table, rows), rtol=1e-12, atol=0)
                    cases += 1
    assert cases == 124


def test_the_cpus_sums_of_squares_of_many_short_rows_take_no_python_step_per_row():
    """A (4096, 5) stack's gradient — 4,096 models of 5 parameters — is summed in a few calls, not a dot (and a
    slice, a reshape, a cast) per row: the base's row walk took 3 ms here for what a float64 copy did in 20 µs.
    Counted as the C functions the call makes from Python (no timing)."""
    import sys

    from xdl.backend import NumpyBackend

    cpu, calls = NumpyBackend(), []
    table = np.random.default_rng(26).standard_normal((4096, 5)).astype(np.float32)
    sys.setprofile(lambda frame, event, arg: calls.append(arg) if event == "c_call" else None)
    try:
        cpu.row_sums_of_squares(table, 4096)
    finally:
        sys.setprofile(None)
    assert len(calls) < 100, len(calls)


def test_clipping_on_the_cpu_makes_no_float64_copy_of_the_gradients():
    """A float32 gradient of 1M elements (4 MB) by clip_grad_norm, and a (4, 250k) stack's by clip_buffers (a
    `StackedOptimizer`'s clipping), each scaled and not: the call allocates under 1 MB at its peak (a chunk's float64
    scratch is 64 KiB) — one float64 copy of the gradients was 8 MB, twice their size."""
    import tracemalloc

    from xdl.optim.clipping import clip_buffers

    rng = np.random.default_rng(23)
    with xdl.use("numpy") as cpu:
        param = xdl.Parameter(xdl.tensor(np.zeros(1_000_000, np.float32), backend=cpu))
        param.grad = rng.standard_normal(1_000_000).astype(np.float32)
        stacked_grad = rng.standard_normal((4, 250_000)).astype(np.float32)
        calls = [lambda: clip_grad_norm([param], 1e9), lambda: clip_grad_norm([param], 1e-3),
                 lambda: clip_buffers([stacked_grad], np.array([1e9, 1e-3, np.inf, 1.0]), 4)]
        tracemalloc.start()
        try:
            for call in calls:
                tracemalloc.reset_peak()
                before = tracemalloc.get_traced_memory()[0]
                call()
                assert tracemalloc.get_traced_memory()[1] - before < 1_000_000
        finally:
            tracemalloc.stop()


def test_on_the_cpu_a_norm_under_its_max_writes_nothing():
    """Every norm under its max (one model, or every row of a stack — one row unclipped, max inf): the gradients
    are not written at all (here read-only arrays, which a ×1 would refuse), where one row over its max scales."""
    from xdl.optim.clipping import clip_buffers

    rng = np.random.default_rng(24)
    for dtype in (np.float32, np.float64):
        for rows, shape in ((1, (50,)), (1, (6, 7)), (3, (3, 40))):
            grads = [rng.standard_normal(shape).astype(dtype), rng.standard_normal((rows, 5)).astype(dtype)]
            before = [g.copy() for g in grads]
            for g in grads:
                g.flags.writeable = False
            max_norm = 1e3 if rows == 1 else np.array([1e3, np.inf, 1e3][:rows])
            clip_buffers(grads, max_norm, rows)
            for g, was in zip(grads, before):
                np.testing.assert_array_equal(g, was)
            if rows > 1:  # one row over its max: the rows are scaled (writable again), that row's alone changed
                for g in grads:
                    g.flags.writeable = True
                clip_buffers(grads, np.array([1e3, np.inf, 1e-3]), rows)
                for g, was in zip(grads, before):
                    np.testing.assert_array_equal(g[:2], was[:2])
                    assert np.all(np.abs(g[2]) < np.abs(was[2]))


def test_a_norm_just_over_its_max_is_scaled_and_an_unclipped_model_s_infinite_norm_is_left_as_it_is():
    """A norm 1.0001 × its max scales every gradient by ≈ 1/1.0001 (none left as it was); in a stack, a model
    not clipped (max inf) keeps its gradients exactly, an infinite one among them too, while another is scaled."""
    from xdl.optim.clipping import clip_buffers

    rng = np.random.default_rng(25)
    for dtype in (np.float32, np.float64):
        for rows in (1, 3):
            grads = [rng.standard_normal((rows, 30)).astype(dtype), rng.standard_normal((rows, 4)).astype(dtype)]
            norms = np.sqrt(sum((g.astype(np.float64) ** 2).sum(axis=1) for g in grads))
            before = [g.copy() for g in grads]
            max_norm = norms / 1.0001 if rows > 1 else float(norms[0] / 1.0001)
            clip_buffers([g if rows > 1 else g[0] for g in grads], max_norm, rows)
            for g, was in zip(grads, before):
                np.testing.assert_allclose(g, was / 1.0001, rtol=1e-5)  # (ε = 1e-6 in the denominator)
                assert (g != was).any(axis=1).all()
        grads = [rng.standard_normal((2, 30)).astype(dtype)]
        grads[0][0, 3] = np.inf
        before = grads[0].copy()
        clip_buffers(grads, np.array([np.inf, 1e-3]), 2)
        np.testing.assert_array_equal(grads[0][0], before[0])
        assert np.all(np.abs(grads[0][1]) < np.abs(before[1]))
