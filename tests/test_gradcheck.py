"""Gradient checking's edges: non-finite values, small gradients, what a check leaves as it was,
its checks before work and the sample of elements; the initializers' and diagnose's checks."""

import copy
import math

import numpy as np
import pytest

import xdl
from xdl.function import Function
from xdl.gradcheck import RECHECK, relative_difference, verdict_for
from xdl.nn import BatchNorm, Dense, Sequential, Tanh
from conftest import t64
from test_autodiff import WrongSquare  # y = x², its backward 3x instead of 2x


class NanSquare(Function):
    """y = x², with a backward that gives NaN."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return (gy * self.x * np.nan,)


class InfSquare(Function):
    """y = x², with a backward that gives +inf at its first element."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        g = 2 * gy * self.x
        g[0] = np.inf
        return (g,)


class DoubledHalfSquare(Function):
    """y = x²/2, with a backward twice too large (2x instead of x)."""

    def forward(self, x):
        self.x = x
        return x * x / 2

    def backward(self, gy):
        return (2 * gy * self.x,)


# -- 1. NaN and Inf are refused, not read as agreement -------------------------------------------
def test_gradcheck_refuses_a_non_finite_gradient_or_cost_naming_where(backend):
    x = t64(backend, [1.0, 2.0, 3.0])
    x.name = "x"
    before = x.numpy().copy()
    # each read as difference 0, "great", passed: the NaN made ‖g‖ + ‖g̃‖ > 0 false
    with pytest.raises(ValueError, match=r"gradcheck: backprop's gradient of x is nan at \(0,\)"):
        xdl.gradcheck(lambda t: NanSquare.apply(t).sum(), x)
    with pytest.raises(ValueError, match=r"gradcheck: backprop's gradient of x is inf at \(0,\)"):
        xdl.gradcheck(lambda t: InfSquare.apply(t).sum(), x)
    with np.errstate(invalid="ignore"), pytest.raises(ValueError, match=r"gradcheck: J is nan at the inputs given"):
        xdl.gradcheck(lambda t: (t - 5.0).log().sum(), x)
    # finite at x, not at x₀ − ε: log of a negative number
    with np.errstate(invalid="ignore"), \
            pytest.raises(ValueError, match=r"gradcheck: J is not finite at x \(0,\) ± ε"):
        xdl.gradcheck(lambda t: (t - (1.0 - 1e-8)).log().sum(), x)
    np.testing.assert_array_equal(x.numpy(), before)
    assert math.isnan(relative_difference(np.array([np.nan]), np.array([1.0])))  # no agreement, not 0


# -- 2. a wrong backward on small gradients is a bug, rounding stays rounding --------------------
def test_gradcheck_catches_a_wrong_backward_whose_gradients_are_a_few_resolutions_large(backend):
    rng = np.random.default_rng(0)
    a, b = t64(backend, rng.standard_normal(50)), t64(backend, rng.uniform(0.2, 0.5, 5) * 1e-3)
    a.name, b.name = "a", "b"
    # J ≈ 5e4 makes ε = 1e-7 resolve gradients to ~1e-4: b's (3e-4, backprop's 2× too large) sat
    # within 10 resolutions and was called rounding without a second look
    result = xdl.gradcheck(lambda x, y: 1000 * (x * x).sum() + DoubledHalfSquare.apply(y).sum(), [a, b])
    assert result.per_input[1] > 0.3 and result.unresolved == [], str(result)
    assert result.hidden_bug and not result.passed and result.worst.name == "b"
    # gradients (≈ 2..7) three resolutions above J's rounding at ε (|J| = 1e9): a bug at RECHECK·ε
    x = t64(backend, np.random.default_rng(0).normal(size=(5, 3)))
    wrong = xdl.gradcheck(lambda: WrongSquare.apply(x).sum() + 1e9, [x])
    assert wrong.verdict == "bug" and not wrong.passed and wrong.unresolved == [], str(wrong)
    # ... and inconclusive only where J's rounding drowns them even at RECHECK·ε
    drowned = xdl.gradcheck(lambda: WrongSquare.apply(x).sum() + 1e12, [x])
    assert drowned.verdict == "inconclusive" and not drowned.passed
    assert f"{drowned.resolution / RECHECK:.1e} at {RECHECK}·ε" in str(drowned)


def test_gradcheck_reads_a_right_gradient_a_few_resolutions_large_as_rounding_not_a_bug(backend):
    """x's gradients (≈ 1) are 5 times J's rounding at RECHECK·ε (|J| = 1e9: ≈ 0.2), so they count as
    resolved there, yet the numeric ones are still off by that rounding (≈ 6e-3, a relative
    difference of 1e-3 to 1e-2): a right backward pass read as a bug, "check that input's backward pass"
    (as unnormalized inputs into saturated sigmoids, or a large L2 on large weights, make it)."""
    rng = np.random.default_rng(0)
    x, a = t64(backend, rng.standard_normal(6)), t64(backend, rng.standard_normal(4))
    x.name, a.name = "x", "a"
    result = xdl.gradcheck(lambda: (x * x).sum() / 2 + 1e6 * (a * a).sum() + 1e9, [x, a])
    assert result.passed and not result.hidden_bug and result.unresolved == ["x"], str(result)
    assert result.worst.name == "a" and result.verdict in ("great", "ok"), str(result)


def test_gradcheck_reads_gradients_below_what_the_recheck_resolves_as_rounding_where_j_s_terms_cancel(backend):
    """J = x²/2 + 1e6·a² + 5e9 − 4e9: |J| ≈ 1e9 sets the rounding estimate, but J passed through 5e9,
    whose rounding is 4 times it. x's gradients (≈ 0.05) are below 10 times J's rounding at RECHECK·ε
    (≈ 0.2): too small to resolve there, read as rounding — not held to the rounding estimate (≈ 0.02)
    that the cancelled terms' rounding exceeds, where a right backward pass read as a hidden bug."""
    rng = np.random.default_rng(0)
    x, a = t64(backend, 0.05 * rng.standard_normal(6)), t64(backend, rng.standard_normal(4))
    x.name, a.name = "x", "a"
    result = xdl.gradcheck(lambda: (x * x).sum() / 2 + 1e6 * (a * a).sum() + 5e9 - 4e9, [x, a])
    assert result.passed and not result.hidden_bug and result.unresolved == ["x"], str(result)


def test_gradcheck_still_reads_a_bias_before_batch_norm_as_rounding(backend, rng):
    """Batch norm subtracts the batch mean: the bias before it has gradient 0, which finite
    differences see as J's rounding at any step."""
    xdl.seed(0)
    model = Sequential(Dense(3, 4), BatchNorm(4), Tanh(), Dense(4, 2)).astype(np.float64)
    X, y = rng.standard_normal((8, 3)), np.arange(8) % 2
    loss = xdl.losses.SoftmaxCrossEntropy()
    result = xdl.gradcheck(lambda: loss(model(X), y) + xdl.losses.l2(model, 0.5, m=8), dict(model.named_parameters()))
    assert result.passed and result.verdict == "great" and result.unresolved == ["0.bias"], str(result)
    assert result.also == [], str(result)  # (its bug-like difference is rounding: no bug to name)


# -- 3. a check changes no gradient, of its inputs or of any other leaf ---------------------------
def test_gradcheck_leaves_the_gradients_of_the_other_parameters_as_they_were(backend, rng):
    xdl.seed(0)
    X, y = rng.standard_normal((8, 3)), np.arange(8) % 2
    loss = xdl.losses.SoftmaxCrossEntropy()
    model = Sequential(Dense(3, 4), Tanh(), Dense(4, 2)).astype(np.float64)
    model.zero_grad()
    loss(model(X), y).backward()  # a training step's gradients, before its update
    grads = {name: backend.to_numpy(p.grad).copy() for name, p in model.named_parameters()}
    views = {name: p.grad for name, p in model.named_parameters()}
    scale = xdl.tensor(backend.asarray(np.array([2.0])), requires_grad=True)  # a leaf with no .grad yet
    result = xdl.gradcheck(lambda: loss(model(X) * scale, y), {"0.weight": dict(model.named_parameters())["0.weight"]})
    assert result.passed
    for name, p in model.named_parameters():  # were doubled: the check's backward added into them
        np.testing.assert_array_equal(backend.to_numpy(p.grad), grads[name], err_msg=name)
        assert p.grad is views[name]  # still the view into the flat gradient buffer
    assert scale.grad is None


# -- 4. an input is restored whatever stops the check --------------------------------------------
@pytest.mark.parametrize("error", [KeyboardInterrupt, MemoryError])
def test_gradcheck_restores_its_input_when_fn_raises_mid_check(backend, error):
    x = t64(backend, [1.0, 2.0, 3.0])
    calls = {"n": 0}

    def cost(t):
        calls["n"] += 1
        if calls["n"] == 3:  # the second evaluation of the numeric pass: x₀ − ε (Ctrl-C, say)
            raise error
        return (t * t).sum()

    with pytest.raises(error):
        xdl.gradcheck(cost, x, eps=1e-3)
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0, 3.0])  # was left at 0.999


# -- 5. checks before work -----------------------------------------------------------------------
def test_gradcheck_checks_fn_before_any_work(backend):
    x = t64(backend, [1.0, 2.0])
    with pytest.raises(TypeError, match=r"gradcheck: fn must be callable \(a function returning the cost J\), got int"):
        xdl.gradcheck(3, x)
    with pytest.raises(TypeError, match=r"gradcheck: fn <lambda>\(a, b\) takes neither the 1 input .* nor no "
                                        r"arguments"):
        xdl.gradcheck(lambda a, b: a.sum(), x)
    X, calls = np.ones((4, 2)), []

    def J(X=X, scale=1.0):  # meant as J(): the defaults bind the data, the inputs are read as they are
        calls.append(X)
        return (xdl.tensor(X) @ x).sum() * scale

    with pytest.raises(TypeError, match=r"gradcheck: fn J\(X, scale\) could be called with the 1 input or with "
                                        r"none: gradcheck would pass the inputs in place of the defaults of X"):
        xdl.gradcheck(J, x)
    assert calls == []  # (it computed J with X = x, and failed inside)
    assert xdl.gradcheck(lambda: J(), x).passed  # what the message says to write
    assert xdl.gradcheck(lambda *xs: (xs[0] ** 3).sum(), x).passed  # *args take the inputs
    assert xdl.gradcheck(lambda t, power=3: (t ** power).sum(), x).passed  # the inputs fill no default


def test_gradcheck_refuses_an_input_that_is_no_leaf_naming_it(backend):
    x = t64(backend, [1.0, 2.0])
    scaled = x * 1.0  # was checked: backprop 0 (a non-leaf gets no .grad), read as a "bug"
    with pytest.raises(ValueError, match=r"gradcheck: inputs\[1\] \(w\) is the result of an operation \(Multiply\), "
                                         r"not a leaf tensor: .*t.detach\(\)"):
        xdl.gradcheck(lambda a, b: (a * b).sum(), {"x": x, "w": scaled})
    with pytest.raises(ValueError, match=r"gradcheck: inputs\[0\] is the result of an operation"):
        xdl.gradcheck(lambda t: (t * t).sum(), [scaled])
    assert xdl.gradcheck(lambda t: (t * t).sum(), [scaled.detach()]).passed  # what the message says to pass


def test_gradcheck_takes_big_endian_float64_and_refuses_what_it_cannot_step_before_any_work():
    """'>f8' is float64 (np.load of a big-endian file; xdl.tensor keeps its dtype): it was refused as
    "is >f8; gradient checking needs float64 tensors". An input it cannot step one element at a time
    in place is named before any work: read-only (a memory map opened "r", np.broadcast_to) failed
    half-way with NumPy's "assignment destination is read-only"; stride 0 (elements sharing memory)
    moved them all at once, and a right backward pass read as a "bug" (PyTorch's gradcheck refuses it)."""
    values = np.array([[0.5, -1.0, 2.0], [0.3, 1.5, -0.7]])
    big = xdl.tensor(values.astype(">f8"), requires_grad=True)
    assert big.dtype == np.dtype(">f8") and xdl.gradcheck(lambda t: (t * t * t).sum(), big).passed
    read_only = values.copy()
    read_only.flags.writeable = False
    row = values[0].copy()
    for array, why in ((read_only, r"holds a read-only array"), (np.broadcast_to(row, (2, 3)), r"holds a read-only array"),
                       (np.lib.stride_tricks.as_strided(row, (2, 3), (0, 8)), r"has a dimension with stride 0")):
        t, w = xdl.Tensor(array, requires_grad=True), t64(xdl.current_backend(), [1.0, 2.0, 3.0])
        calls = []
        with pytest.raises(ValueError, match=r"^gradcheck: inputs\[1\] \(x\) " + why + r".*xdl.tensor\(array, "
                                             r"requires_grad=True\)"):
            xdl.gradcheck(lambda w, x: calls.append(1) or (xdl.tanh(x) * w).sum(), {"w": w, "x": t})
        assert not calls and t.grad is None and w.grad is None  # (refused before J was computed)
    assert xdl.gradcheck(lambda x: xdl.tanh(x).sum(), xdl.tensor(read_only, requires_grad=True)).passed  # (a copy)


def test_gradcheck_refuses_a_cost_computed_in_float32(backend):
    x = t64(backend, [1.0, 2.0])
    # was a flat "bug": float32's rounding over ε
    with pytest.raises(TypeError, match=r"gradcheck: fn returned J in float32; the check needs J computed in "
                                        r"float64"):
        xdl.gradcheck(lambda t: (t.astype(np.float32) ** 2).sum(), x)


def test_gradcheck_says_how_to_check_a_model_passed_as_it_is_or_in_float32(backend):
    """The two first tries at checking a model: the model itself (as an optimizer takes it), and its
    float32 parameters. The errors named only what was expected; they now say what to pass."""
    model = Sequential(Dense(3, 2))
    X, y = np.ones((4, 3)), np.array([0, 1, 0, 1])
    cost = lambda: xdl.losses.SoftmaxCrossEntropy()(model(X), y)  # noqa: E731
    with pytest.raises(TypeError, match=r"got Sequential; a model's are model.parameters\(\), or "
                                        r"dict\(model.named_parameters\(\)\) to name them"):
        xdl.gradcheck(cost, model)
    with pytest.raises(TypeError, match=r"inputs\[0\] is float32; gradient checking needs float64 tensors \(a model's "
                                        r"parameters: check a float64 copy, twin = copy.deepcopy\(model\)"):
        xdl.gradcheck(cost, model.parameters())
    twin = copy.deepcopy(model).astype(np.float64)  # what the message says to check
    assert xdl.gradcheck(lambda: xdl.losses.SoftmaxCrossEntropy()(twin(X), y), twin.parameters()).passed
    assert model.dtype == np.float32


def test_gradcheck_skips_an_empty_input_as_torch_and_refuses_only_empty_ones(backend):
    empty, x = t64(backend, np.zeros((0, 3))), t64(backend, [1.0, 2.0])
    result = xdl.gradcheck(lambda e, t: e.sum() + WrongSquare.apply(t).sum(), [empty, x])
    assert result.verdict == "bug" and result.worst.input == 1 and result.per_input[0] == 0.0  # (was: argmax of
    assert xdl.gradcheck(lambda e, t: e.sum() + (t * t).sum(), [empty, x]).passed              # an empty sequence)
    with pytest.raises(ValueError, match=r"gradcheck: every input is empty \(0 elements\)"):
        xdl.gradcheck(lambda e: e.sum(), empty)


def test_gradcheck_divides_by_the_step_an_input_of_large_magnitude_took(backend):
    w = t64(backend, [0.5, -1.0, 2.0, 0.3, 1.5])
    for magnitude in (1e7, 1e8, 1e9):  # ε is no whole number of ulps there: was "inconclusive", blaming J's size
        x = t64(backend, magnitude + np.arange(5.0))
        result = xdl.gradcheck(lambda t: ((t - magnitude) * w).sum(), x)
        assert result.verdict == "great" and not result.unresolved, (magnitude, result)
    x, calls = t64(backend, 1e10 + np.arange(5.0)), []  # θ ± ε rounds back to θ: was a "bug" (numeric 0)
    with pytest.raises(ValueError, match=r"gradcheck: input 0 \(0,\) is 1e\+10, where θ ± ε rounds back to θ in "
                                         r"float64 \(ε = 1e-07\): give an eps of at least 1\.91e-06"):
        xdl.gradcheck(lambda t: calls.append(1) or ((t - 1e10) * w).sum(), x)
    assert calls == []  # refused before any work
    assert xdl.gradcheck(lambda t: ((t - 1e10) * w).sum(), x, eps=1e-4).passed  # what the message says to give
    assert float(x.numpy()[0]) == 1e10  # restored


# -- 8. a sample of elements for large inputs ----------------------------------------------------
def test_gradcheck_checks_a_sample_of_elements_when_asked(backend, rng):
    x = t64(backend, rng.standard_normal((40, 30)))
    calls = {"n": 0}

    def cost(t):
        calls["n"] += 1
        return (t.tanh() * t).sum()

    result = xdl.gradcheck(cost, x, elements=6)
    assert result.passed and calls["n"] == 2 + 2 * 6  # the backprop pass, J once more, two per element
    assert result.sampled == (6, 1200) and "checked 6 of the inputs' 1,200 elements, drawn at random" in str(result)
    wrong = xdl.gradcheck(lambda t: WrongSquare.apply(t).sum(), x, elements=6)
    i, j = wrong.worst.index
    assert wrong.verdict == "bug" and wrong.worst.analytic == pytest.approx(3 * float(x.numpy()[i, j]))
    again = xdl.gradcheck(lambda t: WrongSquare.apply(t).sum(), x, elements=6)
    assert again.worst.index == wrong.worst.index  # the same sample on every call
    calls["n"] = 0
    whole = xdl.gradcheck(cost, t64(backend, [1.0, 2.0]), elements=6)
    assert whole.passed and calls["n"] == 2 + 2 * 2 and whole.sampled is None  # all of it
    with pytest.raises(ValueError, match=r"gradcheck: elements must be a positive integer .* or None, got 0"):
        xdl.gradcheck(cost, x, elements=0)



# -- 9. a check is its own thread's --------------------------------------------------------------
def test_gradcheck_keeps_statistics_and_drops_dropout_in_its_own_thread_only(backend):
    """While checking, batch norm keeps its running statistics (running = 1·running + 0·batch) and
    dropout without a key is the identity — in the checking thread only: another thread training
    meanwhile updates its statistics and drops units, and two checks overlapping in two threads
    leave neither switch on (a process-wide flag froze the other thread's model, and the second
    check to end put back the first's True: no batch norm of the process learned statistics again)."""
    import threading

    a_in, b_in, a_done = threading.Event(), threading.Event(), threading.Event()
    passed = []  # (asserted here: an assert failing in a thread fails no test)

    def check(entered, other_entered, leave=None):
        first = [True]

        def cost(t):
            if first[0]:  # both checks inside at once, the first to enter ending first
                first[0] = False
                entered.set()
                other_entered.wait(10)
                if leave is not None:
                    leave.wait(10)
            return (t * t).sum()

        passed.append(xdl.gradcheck(cost, t64(backend, [1.0, 2.0])).passed)

    def trains_here():  # a training-mode batch norm and a keyless dropout, in this thread
        bn = BatchNorm(3, dtype=np.float64)
        bn(backend.asarray(np.arange(24.0).reshape(8, 3)))  # column means 10.5, 11.5, 12.5
        kept = xdl.dropout(xdl.tensor(backend.xp.ones(1000)), 0.5)
        return backend.to_numpy(bn.running_mean), float(backend.to_numpy((kept.data == 0).mean()))

    first = threading.Thread(target=check, args=(a_in, b_in))
    second = threading.Thread(target=check, args=(b_in, a_in, a_done))
    first.start(), second.start()
    b_in.wait(10)
    during = trains_here()
    first.join()
    a_done.set()
    second.join()
    assert passed == [True, True]
    for means, dropped in (during, trains_here()):  # beside the checks, and after both
        np.testing.assert_allclose(means, [1.05, 1.15, 1.25])  # 0.1·batch mean: updated, not kept
        assert 0.4 < dropped < 0.6  # units dropped, not the identity



# -- 10. a layer of one's own that draws or keeps state --------------------------------------------
class GaussianNoise(xdl.nn.Module):
    """y = x + n, n ~ N(0, σ²) drawn at each training call; counts its training calls in a buffer.
    With ``reads_the_mode``, it draws nothing and counts nothing while a gradient check runs, as the
    layer recipe says."""

    def __init__(self, sigma, reads_the_mode):
        super().__init__()
        self.sigma, self.reads_the_mode = sigma, reads_the_mode
        self.rng = np.random.default_rng(0)
        self.add_buffer("calls", np.zeros(1), np.float64)

    def forward(self, x):
        if not self.training or (self.reads_the_mode and xdl.is_gradient_checking()):
            return x
        self.calls += 1
        noise = x.backend.asarray(self.rng.normal(0.0, self.sigma, size=x.shape))
        return x + xdl.Tensor(noise, backend=x.backend)


def test_gradcheck_refuses_a_cost_that_differs_at_the_same_inputs_naming_the_mode(backend, rng):
    """A layer's own noise made every finite difference the two draws' difference: the check read
    a correct backward pass as a "bug" (0.7 here). Two calls at the same inputs now tell, before
    any finite difference, and the message names what the layer reads to draw nothing."""
    model = Sequential(Dense(4, 3, dtype=np.float64), GaussianNoise(0.1, reads_the_mode=False), Tanh()).to(backend)
    X = t64(backend, rng.normal(size=(5, 4)), requires_grad=False)
    with pytest.raises(ValueError, match=r"J is not one function of the inputs: two calls at the same inputs gave "
                                         r"J = .* and .*xdl\.is_gradient_checking\(\)"):
        xdl.gradcheck(lambda: (model(X) ** 2).sum(), model.parameters())


def test_a_layer_reading_the_mode_is_checked_and_left_as_it_was(backend, rng):
    """The mode is on within a check, in its thread, and off after; a layer reading it draws nothing
    and keeps its buffer, so its model checks "great" and is the model it was."""
    noise = GaussianNoise(0.1, reads_the_mode=True)
    model = Sequential(Dense(4, 3, dtype=np.float64), noise, Tanh()).to(backend)
    X = t64(backend, rng.normal(size=(5, 4)), requires_grad=False)
    seen = []

    def cost():
        seen.append(xdl.is_gradient_checking())
        return (model(X) ** 2).sum()

    assert not xdl.is_gradient_checking()
    result = xdl.gradcheck(cost, model.parameters())
    assert result.verdict == "great" and result.passed
    assert seen and all(seen) and not xdl.is_gradient_checking()
    assert backend.to_numpy(noise.calls).tolist() == [0.0]
    model(X)  # training outside a check draws and counts again
    assert backend.to_numpy(noise.calls).tolist() == [1.0]


def test_a_kink_of_j_is_said_to_be_one_not_a_wrong_backward_pass(backend):
    """ReLU at 0 (a fresh Dense→ReLU model's zero biases on an all-zero row): the central difference
    is the mean of the one-sided slopes and backprop gives one of them — it read as a plain "bug",
    sending the user to a correct backward pass. A wrong backward pass has no kink to show."""
    at_zero = xdl.gradcheck(lambda x: xdl.relu(x).sum(), t64(backend, [0.0, 1.0, -2.0, 0.5]))
    assert at_zero.verdict == "bug" and not at_zero.passed and at_zero.worst.index == (0,)
    assert at_zero.worst.kink == pytest.approx((0.0, 1.0), abs=1e-8)
    assert "(bug-sized, at a kink of J: see below); worst: input 0" in str(at_zero)  # (not "(bug)" above it)
    assert "J has a kink at input 0 (0,): its slope is 0.000000e+00 from below and 1.000000e+00 from above" \
        in str(at_zero)
    wrong = xdl.gradcheck(lambda t: WrongSquare.apply(t).sum(), t64(backend, [1.0, 2.0, 0.0]))
    assert wrong.verdict == "bug" and wrong.worst.kink is None and "kink" not in str(wrong)

def test_a_kink_beside_a_smooth_term_is_said_to_be_one(backend):
    """relu(x) + x² at 0: backprop gives the slope from below, 0, and the slope measured there is
    −ε (the square's), not 0 — no relative tolerance of 0 holds, and the kink read as a plain bug.
    Beside the jump between the slopes (1) it is nothing."""
    result = xdl.gradcheck(lambda x: (xdl.relu(x) + x * x).sum(), t64(backend, [0.0, 1.0, -2.0]))
    assert result.verdict == "bug" and result.worst.index == (0,)
    assert result.worst.kink == pytest.approx((0.0, 1.0), abs=1e-6)


class TenPercentOffSquare(xdl.Function):
    """y = x², its backward 2.2x (10% off)."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return (2.2 * self.x * gy,)


class StepUp(xdl.Function):
    """y = x/2 + step·[x > 0], its backward 3 (wrong): with step 10⁻⁶, J steps at 0, and 3 is between
    the slopes ε sees there, 1/2 and ≈ 10."""

    step: float = 1e-6

    def forward(self, x):
        return x * 0.5 + self.step * (x > 0)

    def backward(self, gy):
        return (3.0 * gy,)


def test_several_relus_at_zero_under_one_input_are_a_kink_not_a_bug(backend):
    """relu(b) + 2·relu(−b) + b/2 at 0: slopes −1.5 and 1.5, backprop 0.5 (each ReLU's 0 at 0) —
    neither slope, so a correct backward pass read as a plain "bug". Between the slopes, and they
    stay put at 10ε: a kink. A value outside them, or a J that steps (its slopes move with ε), is not."""
    result = xdl.gradcheck(lambda b: (xdl.relu(b) + 2 * xdl.relu(-b) + 0.5 * b).sum(), t64(backend, [0.0, 1.0, -2.0]))
    assert result.verdict == "bug" and not result.passed and result.worst.index == (0,)
    assert result.worst.kink == pytest.approx((-1.5, 1.5), abs=1e-6)
    assert "or one between them" in str(result)
    # the same kink, its linear term's backward wrong there (3 for 1/2): outside the slopes, a bug
    outside = xdl.gradcheck(lambda b: (xdl.relu(b) + 2 * xdl.relu(-b) + StepUp.apply(b, step=0.0)).sum(),
                            t64(backend, [0.0]))
    assert outside.verdict == "bug" and outside.worst.kink is None
    step = xdl.gradcheck(lambda b: StepUp.apply(b).sum(), t64(backend, [0.0]))
    assert step.verdict == "bug" and step.worst.kink is None


def test_a_kink_does_not_explain_away_a_wrong_backward_pass_elsewhere_in_the_input(backend):
    """The kink at 0 differs most (backprop 3, numeric 3.5), the square's 10% at 1 and 2 less: the
    result named the kink alone ("no wrong backward pass"). The bug is named where no kink is."""
    result = xdl.gradcheck(lambda x: (xdl.relu(x) + 3 * x).sum() + TenPercentOffSquare.apply(x).sum(),
                           t64(backend, [0.0, 1.0, 2.0]))
    assert result.verdict == "bug" and result.worst.kink is None and result.worst.index == (2,)
    assert "kink" not in str(result)


# -- 6. initializers ------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [float("inf"), float("nan"), -1.0, "a", None, True])
def test_normal_init_takes_a_finite_scale_at_least_zero(scale):
    with pytest.raises(ValueError, match=r"normal: scale must be a finite number ≥ 0, got"):
        xdl.init.normal(scale)


@pytest.mark.parametrize("name", ["he", "xavier", "glorot"])
def test_fan_based_inits_take_a_shape_of_positive_integers(name):
    init = getattr(xdl.init, name)
    for shape, match in (((0, 3), r"shape\[0\] must be a positive integer \(a dimension of the weight\), got 0"),
                         ((3, 0), r"shape\[1\] must be a positive integer .*got 0"),
                         ((3, 2.0), r"shape\[1\] must be a positive integer .*got 2.0"),
                         (5, r"shape must be a tuple of positive integers \(n_in, n_out\), got 5"),
                         ((), r"shape must be a tuple of positive integers \(n_in, n_out\), got \(\)")):
        with pytest.raises(ValueError, match=f"{name}: {match}"):  # were ZeroDivisionError, TypeError: no len
            init(shape)
    assert init((4, 3)).shape == (4, 3) and init([5]).shape == (5,)


def test_init_get_names_an_unknown_initializer_of_any_type():
    for bad in (["he"], {"he": 1}, None, 3):
        with pytest.raises(ValueError, match=r"unknown initializer .*; expected one of zeros, normal"):
            xdl.init.get(bad)
    assert xdl.init.get("he") is xdl.init.he


# -- 7. diagnose: the larger gap first ------------------------------------------------------------
def test_diagnose_names_the_clearly_larger_gap_as_the_course_does():
    # the course's Bayes 7.5 %, train 8 %, dev 10 %: focus on variance (2 % against 0.5 %)
    d = xdl.diagnose({"train_accuracy": 0.92, "dev_accuracy": 0.90}, base_error=0.075)
    assert d.verdict == "good"  # neither gap above the 2-point tolerance
    assert d.next_steps[0] == "work on the variance first: 2.00% against an avoidable bias of 0.50%"
    assert "more training data" in d.next_steps[1] and not any("close" in s for s in d.next_steps)
    # human 1 %, train 8 %, dev 10 %: bias (7 % against 2 %), the verdict's steps as they were
    d = xdl.diagnose({"train_accuracy": 0.92, "dev_accuracy": 0.90}, base_error=0.01)
    assert d.verdict == "high bias" and d.next_steps[0].startswith("train a bigger network")
    # both high: the larger one's steps first (they were the bias's, whatever the gaps)
    d = xdl.diagnose({"train_accuracy": 0.80, "dev_accuracy": 0.60}, base_error=0.10)
    assert d.verdict == "high bias and high variance"
    assert d.next_steps[0] == "work on the variance first: 20.00% against an avoidable bias of 10.00%"
    assert d.next_steps[1].startswith("get more training data")
    # neither at least twice the other: no gap named (and exactly twice is: 20 % against 10 %, above)
    for train, dev, base in ((0.98, 0.96, 0.0), (0.85, 0.75, 0.0), (0.999, 0.998, 0.0)):
        d = xdl.diagnose({"train_accuracy": train, "dev_accuracy": dev}, base_error=base)
        assert not any(s.startswith("work on") for s in d.next_steps), (train, dev, d.next_steps)
    assert xdl.diagnose({"train_accuracy": 0.98, "dev_accuracy": 0.96}).next_steps == [
        "check the model on the test set, or lower the base error you aim for"]


def test_diagnose_names_the_smaller_gap_as_its_report_prints_it():
    """A negative gap counts as 0 when the gaps are compared, but the step names it as it is: the
    report's line above printed "avoidable bias -0.67%" and the step "an avoidable bias of 0.00%"."""
    d = xdl.diagnose({"train_accuracy": 0.9767, "dev_accuracy": 0.965}, base_error=0.03)  # xdl train on moons
    assert "avoidable bias -0.67%, variance 1.17%: good" in str(d)
    assert d.next_steps[0] == "work on the variance first: 1.17% against an avoidable bias of -0.67%"
    d = xdl.diagnose({"train_accuracy": 0.985, "dev_accuracy": 0.995})  # dev above train: a negative variance
    assert d.next_steps[0] == "work on the avoidable bias first: 1.50% against a variance of -1.00%"


def test_diagnose_sends_a_model_with_tiny_gaps_to_the_test_set():
    for train, dev in ((0.997, 0.997), (1.0, 0.999)):
        d = xdl.diagnose({"train_accuracy": train, "dev_accuracy": dev})
        assert d.verdict == "good" and d.next_steps[0].startswith("check the model on the test set")


def test_diagnose_at_the_edges_of_its_rules():
    """Each rule's edge, on either side: a "good" model's larger gap is named only beyond half the tolerance
    (0.8 points, 4 times the other, is no work); a training error below the base error with a dev error
    within tolerance of it is memorized noise where the variance is high; a base error of 1 is refused."""
    d = xdl.diagnose({"train_accuracy": 0.992, "dev_accuracy": 0.99})  # bias 0.8%, variance 0.2%
    assert d.verdict == "good" and d.next_steps == [
        "check the model on the test set, or lower the base error you aim for"]
    d = xdl.diagnose({"train_accuracy": 0.988, "dev_accuracy": 0.986})  # bias 1.2% (beyond 1%), variance 0.2%
    assert d.next_steps[0] == "work on the avoidable bias first: 1.20% against a variance of 0.20%"
    d = xdl.diagnose({"train_accuracy": 1.0, "dev_accuracy": 0.81}, base_error=0.2)  # dev error 19%: 1% below 20%
    assert d.verdict == "high variance" and not any("lower it" in s for s in d.next_steps), d.next_steps
    assert d.next_steps[0].startswith("the training error is below the base error 20.00%, the dev error only by "
                                      "1.00%, within tolerance")
    with pytest.raises(ValueError, match=r"base_error must be a number in \[0, 1\), got 1"):
        xdl.diagnose({"train_accuracy": 0.9, "dev_accuracy": 0.9}, base_error=1)


def test_gradcheck_under_no_grad_and_within_a_check_builds_the_graph_it_backpropagates(backend, rng):
    """Under a caller's `no_grad` (an evaluation block, or the no_grad an outer check calls its J
    under) the check's own J recorded no graph: "backward() on a tensor that does not require grad",
    though the check had made its inputs require one. Its backprop call records one whatever the
    mode around it, which it gives back after; a check within a check leaves the outer one checking."""
    model = Sequential(Dense(4, 3, dtype=np.float64), Tanh()).to(backend)
    X = t64(backend, rng.normal(size=(5, 4)), requires_grad=False)
    with xdl.no_grad():
        assert xdl.gradcheck(lambda: (model(X) ** 2).sum(), model.parameters()).verdict == "great"
        assert not xdl.is_grad_enabled()
    inner = []

    def outer():
        inner.append(xdl.gradcheck(lambda: (model(X) ** 3).sum(), model.parameters(), elements=2).verdict)
        assert xdl.is_gradient_checking()  # the inner check gave back the outer one's mode
        return (model(X) ** 2).sum()

    assert xdl.gradcheck(outer, model.parameters(), elements=2).verdict == "great"
    assert inner and set(inner) == {"great"} and xdl.is_grad_enabled() and not xdl.is_gradient_checking()


def test_a_stacked_models_unkeyed_dropout_draws_nothing_while_checking(backend, rng):
    """`StackedDropout` without a key drew its masks from the backend's generator within a check,
    as no other xdl layer does: the check of K stacked models refused J ("not one function of
    the inputs", naming is_gradient_checking as what a layer of one's own should read) where each
    model alone checks "great". It is the identity there, as `Dropout` is, and draws outside."""
    from xdl.nn import Dropout, ReLU, stack
    models = [Sequential(Dense(4, 5, dtype=np.float64), ReLU(), Dropout(0.3), Dense(5, 2, dtype=np.float64))
              for _ in range(2)]
    stacked = stack(models, backend=backend)
    X = t64(backend, rng.normal(size=(6, 4)), requires_grad=False)
    assert xdl.gradcheck(lambda: (stacked(X) ** 2).sum(), stacked.parameters()).verdict == "great"
    with xdl.no_grad():  # in training, outside a check, each call draws its masks
        assert float((stacked(X) ** 2).sum()) != float((stacked(X) ** 2).sum())


def test_a_cost_that_does_not_read_the_inputs_is_inconclusive_not_great(backend, rng):
    """J of a copy of the model, with the original's parameters passed: both gradients are 0
    everywhere, and ‖0 − 0‖/(‖0‖ + ‖0‖) — taken as 0 — read "great" though nothing was compared.
    J built from the inputs' values outside the graph (x.numpy()) failed backward() instead."""
    import copy

    xdl.seed(0)
    X, y = rng.standard_normal((6, 3)), np.arange(6) % 2
    loss = xdl.losses.SoftmaxCrossEntropy()
    model = Sequential(Dense(3, 4), Tanh(), Dense(4, 2)).astype(np.float64)
    twin = copy.deepcopy(model)
    result = xdl.gradcheck(lambda: loss(twin(X), y), dict(model.named_parameters()))
    assert result.verdict == "inconclusive" and result.constant and not result.passed, str(result)
    assert "nothing was checked" in str(result)
    assert xdl.gradcheck(lambda: loss(model(X), y), dict(model.named_parameters())).passed  # the same J, read
    # a cut graph: backprop's 0 against the numeric 2x is the bug it is, named
    x = t64(backend, [1.0, 2.0, 3.0])
    x.name = "x"
    cut = xdl.gradcheck(lambda t: (xdl.tensor(t.numpy(), backend=backend) ** 2).sum(), x)
    assert cut.verdict == "bug" and cut.worst.name == "x" and not cut.constant, str(cut)


def test_gradcheck_names_every_input_whose_own_difference_is_a_bug(backend):
    """Two wrong backward passes: the result named the worst input only, the other was an unnamed
    entry of per_input — "look at which components differ" found one of them."""
    a, b, c = t64(backend, [1.0, 2.0]), t64(backend, [0.5, 1.5]), t64(backend, [3.0, 1.0])
    a.name, b.name, c.name = "a", "b", "c"
    # J = Σa² (backward 3a: difference 0.2) + Σb²/2 (backward 2b: 1/3) + Σc²
    result = xdl.gradcheck(lambda x, y, z: WrongSquare.apply(x).sum() + DoubledHalfSquare.apply(y).sum()
                           + (z * z).sum(), [a, b, c])
    assert result.worst.name == "b" and [label for label, _ in result.also] == ["a"], str(result)
    assert "also differing like a bug: a (difference 2.000e-01)" in str(result) and "c (" not in str(result)


class SlightlyOffSquare(Function):
    """y = x², with a backward 1e-4 too large: a "suspect" difference, not a bug."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return (2 * gy * self.x * (1 + 1e-4),)


def test_gradcheck_names_as_also_only_inputs_whose_difference_is_a_bug(backend):
    """``also`` lists the other inputs that read as a bug; one merely "suspect" is not among them."""
    a, b = t64(backend, [1.0, 2.0]), t64(backend, [0.5, 1.5])
    a.name, b.name = "a", "b"
    result = xdl.gradcheck(lambda x, y: WrongSquare.apply(x).sum() + SlightlyOffSquare.apply(y).sum(), [a, b])
    assert result.worst.name == "a" and verdict_for(result.per_input[1]) == "suspect", str(result)
    assert result.also == [] and "also differing" not in str(result), str(result)


def test_gradcheck_fails_a_suspect_input_hidden_behind_larger_gradients_as_it_fails_alone(backend):
    """J = Σ1000·a + Σb², b's backward 1e-4 too large: b's own difference ≈ 5e-5 ("suspect"), the
    overall one ≈ 5e-5·‖∂J/∂b‖/‖∂J/∂a‖ ≈ 1e-7 ("ok"). Checked alone b failed; beside a it passed —
    the same bug passed or failed by what else was checked (a bias beside its weights)."""
    a, b = t64(backend, [1e-3, -2e-3]), t64(backend, [0.5, 1.5])  # (J ≈ 1: finite differences resolve b)
    a.name, b.name = "a", "b"
    alone = xdl.gradcheck(lambda y: SlightlyOffSquare.apply(y).sum(), [b])
    assert alone.verdict == "suspect" and not alone.passed, str(alone)
    beside = xdl.gradcheck(lambda x, y: (x * 1000).sum() + SlightlyOffSquare.apply(y).sum(), [a, b])
    assert beside.verdict in ("great", "ok") and beside.worst.name == "b" and not beside.unresolved, str(beside)
    assert beside.hidden_bug and not beside.passed, str(beside)
    assert "but b alone is suspect" in str(beside), str(beside)


def test_gradcheck_names_the_eps_every_element_needs():
    """Its eps advice named the first stuck element's ulp (1e10's): followed, the check stopped at the next
    (3e13's); it names the largest now, which every element needs."""
    t = xdl.tensor(np.array([1e10, 3e13, 1.0]), requires_grad=True)
    with pytest.raises(ValueError, match=r"input 0 \(1,\) is 3e\+13.*give an eps of at least 0\.00391") as e:
        xdl.gradcheck(lambda: (t * t).sum(), [t])
    eps = float(str(e.value).split("at least ")[1].split()[0])
    xdl.gradcheck(lambda: (t * t).sum(), [t], eps=eps)  # refused no more


def test_gradcheck_note_does_not_advise_fewer_examples_for_a_mean_cost():
    """The rounding note advised "fewer examples", which makes xdl's J (a mean, plus λ/2m·Σ‖W‖²) larger."""
    from xdl.losses import SoftmaxCrossEntropy, l2

    X, y = xdl.datasets.load("moons")
    xdl.seed(0)
    model = xdl.nn.mlp(2, [8], 2).astype(np.float64)
    loss, resolution = SoftmaxCrossEntropy(), {}
    for m in (64, 4):  # xdl's cost: a mean, plus λ/2m·Σ‖W‖²: fewer examples make J larger
        Xm = X[:m].astype(np.float64)
        result = xdl.gradcheck(lambda: loss(model(Xm), y[:m]) + l2(model, 1e7, m=m), dict(model.named_parameters()))
        resolution[m] = result.resolution
    assert resolution[4] > resolution[64]
    assert result.unresolved and "(less L2, fewer examples)" not in str(result)
    assert "grows as m shrinks" in str(result)


def test_gradcheck_names_an_infinite_input_as_such_not_an_eps_of_nan():
    """inf ± ε is inf: it was taken as an element ε does not move, and the advice was "an eps of at least nan"."""
    for values in ([1e10, np.inf, 1.0], [np.nan, 1.0]):
        t = xdl.tensor(np.array(values), requires_grad=True)
        with pytest.raises(ValueError, match=r"input 0 \(\d,\) is (inf|nan): finite differences need finite inputs"):
            xdl.gradcheck(lambda: (t * 2).sum(), [t])


def test_gradcheck_still_catches_a_backward_twice_too_large_a_few_roundings_above_j_s_rounding(backend):
    """x's gradients (≈ 0.16) lie between floor/2 and the floor of RECHECK·ε (10·|J|·2⁻⁵²/(RECHECK·ε)
    ≈ 0.22 at |J| = 1e9), backprop's twice too large: they differ by ≈ 0.16, seven times J's rounding
    there (≈ 0.022), which a right backward pass stays well under. Compared with the floor, that
    difference was called rounding, and the check passed ("great") a wrong backward pass."""
    rng = np.random.default_rng(0)
    x, a = t64(backend, rng.uniform(0.12, 0.2, 6)), t64(backend, rng.standard_normal(4))
    x.name, a.name = "x", "a"
    result = xdl.gradcheck(lambda: DoubledHalfSquare.apply(x).sum() + 1e6 * (a * a).sum() + 1e9, [x, a])
    assert not result.passed and result.hidden_bug and result.unresolved == [], str(result)


class ScaledSquare(Function):
    """y = x², with a backward of ``factor``·2x (1: right; anything else: a wrong backward pass)."""

    factor: float = 1.0

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return (self.factor * 2 * gy * self.x,)


@pytest.mark.parametrize("factor", [1.0, 0.5, 0.9, 0.999, 1.001, 1.5, 3.0, -1.0, 0.0])
def test_a_gradcheck_result_is_true_only_where_the_check_passed(backend, factor):
    """PyTorch's habit, ``assert torch.autograd.gradcheck(fn, inputs)``: the result was a dataclass,
    always true, so the assert let every wrong backward pass through. Its truth is now ``passed``."""
    x = t64(backend, np.random.default_rng(int(factor * 1000) % 97).normal(size=(4, 3)))
    result = xdl.gradcheck(lambda t: ScaledSquare.apply(t, factor=factor).sum(), x)
    assert bool(result) is result.passed
    assert bool(result) is (factor == 1.0), str(result)


@pytest.mark.parametrize("bound, word, word_above", [(1e-7, "great", "ok"), (1e-5, "ok", "suspect"),
                                                     (1e-3, "suspect", "bug")])
def test_each_verdict_holds_below_its_bound_and_the_next_from_it(bound, word, word_above):
    """The course's reading: a difference < 1e-7 is great, < 1e-5 ok, < 1e-3 suspect, else a bug — each bound
    itself is the next verdict's (``difference < bound``), checked over a spread of differences around it."""
    for scale in np.geomspace(0.0101, 1 - 1e-9, 25):  # (the verdict below is 100 times lower)
        assert verdict_for(bound * scale) == word, (bound * scale, verdict_for(bound * scale))
    for scale in (1.0, 1 + 1e-9, 1.5, 3.0, 9.99):
        assert verdict_for(bound * scale) == word_above, (bound * scale, verdict_for(bound * scale))


@pytest.mark.parametrize("theta, eps", [(1.0, 1e-16), (2.0**40, 1.5 * 2.0**-14), (-(2.0**20), 1.5 * 2.0**-34)])
def test_an_element_that_moves_one_way_only_is_checked_over_the_step_it_took(theta, eps):
    """At a power of two the ulp above is twice the one below: an ε between their halves leaves θ + ε at θ but
    moves θ − ε by an ulp. The element moves, so the check runs (only θ ± ε both rounding back to θ is refused),
    dividing by the step taken: J = x, exact at every step, is "great"."""
    assert theta + eps == theta and theta - eps != theta or theta - eps == theta and theta + eps != theta
    t = xdl.tensor(np.array([theta]), requires_grad=True)
    result = xdl.gradcheck(lambda: (t * 1.0).sum(), [t], eps=eps)
    assert result.verdict == "great" and result.worst.numeric == 1.0, str(result)


def test_gradcheck_names_the_eps_every_input_needs_the_largest_ulp_among_all_inputs():
    """Among several inputs, the element named is the one whose ulp is the largest in any of them (1e14 in the
    second), not the first stuck one found (1e10 in the first): its eps moves every element of both."""
    a = xdl.tensor(np.array([1e10, 1.0]), requires_grad=True)
    b = xdl.tensor(np.array([2.0, 1e14]), requires_grad=True)
    needed = float(np.spacing(1e14))
    with pytest.raises(ValueError, match=rf"input 1 \(1,\) is 1e\+14.*give an eps of at least {needed:.3g}"):
        xdl.gradcheck(lambda: (a * a).sum() + (b * b).sum(), [a, b])
    with pytest.raises(ValueError, match=rf"input 1 \(1,\) is 1e\+14.*give an eps of at least {needed:.3g}"):
        xdl.gradcheck(lambda: (a * a).sum() + (b * b).sum(), [b, a][::-1])


@pytest.mark.parametrize("ulps", [16, 1000, 10**6])
def test_a_cost_that_moves_by_more_than_a_few_ulps_between_calls_is_refused(ulps):
    """J at the same inputs must agree to a few of its ulps (4): one that drifts by 16 ulps or more a call (a
    counter, a cache) is no one function of the inputs — its drift over ε would read as gradient."""
    x = xdl.tensor(np.array([0.5, -1.5, 2.0]), requires_grad=True)
    calls = []

    def J():
        calls.append(None)
        return (x * x).sum() * (1.0 + ulps * float(np.finfo(np.float64).eps) * len(calls))

    with pytest.raises(ValueError, match="J is not one function of the inputs"):
        xdl.gradcheck(J, [x])


def test_a_wrong_backward_at_an_element_that_moves_one_way_only_reads_as_a_bug():
    """2**30 with the default ε = 1e-7: θ + ε rounds back to θ (its upper half-ulp is 1.19e-7), θ − ε moves. The
    kink test's one-sided slope above divided by that step, 0: a wrong backward pass (3x for x²) ended in a
    ZeroDivisionError instead of its verdict; with no slope above there is no kink to tell, and it is a bug."""
    theta = 2.0**30
    assert theta + 1e-7 == theta and theta - 1e-7 != theta
    t = xdl.tensor(np.array([theta, 0.5]), requires_grad=True)
    result = xdl.gradcheck(lambda: WrongSquare.apply(t).sum(), [t])
    assert result.verdict == "bug" and result.worst.kink is None, str(result)
    assert result.worst.analytic == 3 * theta and result.worst.numeric == pytest.approx(2 * theta, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 3, 4, 5, 6, 8, 9])  # (2 and 7 draw a b that reads "ok" at ε)
def test_an_input_suspect_only_from_j_s_rounding_is_checked_again_at_the_larger_step(seed):
    """J = 5·10⁴·Σa² + Σb²: J's rounding over ε (|J|·2⁻⁵²/ε ≈ 1e-3) makes b's difference at ε suspect (computed
    here with NumPy), and b alone would fail as a hidden bug; checked again at RECHECK·ε it agrees — rounding, as
    for a bug-sized one — so the check passes, saying so, on a's "great"."""
    rng = np.random.default_rng(seed)
    a_values, b_values = rng.normal(size=3) * 3, rng.normal(size=4)

    def cost(a, b):
        return 5e4 * (a * a).sum() + (b * b).sum()

    steps = np.eye(4) * 1e-7
    numeric = np.array([(cost(a_values, b_values + s) - cost(a_values, b_values - s))
                        / ((b_values + s) - (b_values - s))[i] for i, s in enumerate(steps)])
    assert verdict_for(relative_difference(2 * b_values, numeric)) == "suspect"
    a, b = (xdl.tensor(v, requires_grad=True) for v in (a_values, b_values))
    result = xdl.gradcheck(lambda: cost(a, b), {"a": a, "b": b})
    assert result.passed and result.verdict == "great", str(result)
    assert len(result.unresolved) == 1 and result.unresolved[0].startswith("b (agrees to "), str(result)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_gradcheck_leaves_each_input_s_requires_grad_as_it_was(requires_grad):
    """The check sets requires_grad on its inputs to backpropagate to them, and puts each flag back after."""
    x = xdl.tensor(np.array([0.5, -1.5, 2.0]), requires_grad=requires_grad)
    w = xdl.tensor(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), requires_grad=not requires_grad)
    result = xdl.gradcheck(lambda: ((x @ w) ** 2).sum(), [x, w])
    assert result.passed, str(result)
    assert x.requires_grad is requires_grad and w.requires_grad is (not requires_grad)


def test_a_cost_that_is_nan_at_its_second_call_only_is_refused_as_no_one_function():
    """J agreeing with itself "to a few ulps" includes NaN: a second call giving NaN (and finite ones after) is
    refused before any finite difference, not checked on the finite calls around it."""
    x = xdl.tensor(np.array([0.5, -1.5, 2.0]), requires_grad=True)
    calls = []

    def J():
        calls.append(None)
        return (x * x).sum() * (np.nan if len(calls) == 2 else 1.0)

    with pytest.raises(ValueError, match=r"J is not one function of the inputs: .* gave J = 6\.5 and nan"):
        xdl.gradcheck(J, [x])


class OffSquare(Function):
    """y = x², with a backward 0.1% off at its last element only: 2x·(1, …, 1, 1.001)."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        factor = np.ones(self.x.shape)
        factor[-1] = 1.001
        return (2 * gy * self.x * factor,)


@pytest.mark.parametrize("values", [[5.0, 0.1, 1.0], [-7.0, 3.0, 0.2, 2.0], [9.0, 1.5]])
def test_a_suspect_input_s_worst_element_is_the_one_that_differs_most_not_the_largest(values):
    """The worst place is where backprop and the numeric gradient differ most (the last element, 0.1% off), not the
    largest gradient (the first); the input is suspect, so no kink is looked for."""
    x = xdl.tensor(np.array(values), requires_grad=True)
    result = xdl.gradcheck(lambda: OffSquare.apply(x).sum(), [x])
    expected = relative_difference(2 * np.array(values) * np.r_[np.ones(len(values) - 1), 1.001], 2 * np.array(values))
    assert result.verdict == verdict_for(expected) == "suspect", str(result)
    assert result.worst.index == (len(values) - 1,), str(result)
    assert result.worst.analytic == pytest.approx(2.002 * values[-1], rel=1e-12)


class ShiftedReluBackward(Function):
    """y = relu(x) + 10x, its backward ``at_kink`` where x = 0 (10, the slope from below, is ReLU's 0 plus 10)."""

    at_kink: float = 10.0

    def forward(self, x):
        self.x = x
        return np.maximum(x, 0.0) + 10.0 * x

    def backward(self, gy):
        return (gy * np.where(self.x > 0, 11.0, np.where(self.x < 0, 10.0, self.at_kink)),)


@pytest.mark.parametrize("at_kink, kink", [(10.0, (10.0, 11.0)), (11.0, (10.0, 11.0)), (9.9995, (10.0, 11.0)),
                                           (9.95, None), (11.05, None)])
def test_a_kink_whose_slopes_differ_by_a_twentieth_is_one_and_a_backward_off_both_is_a_bug(at_kink, kink):
    """relu(x) + 10x at 0: slopes 10 and 11, apart by 1/21 of their size (a kink is told from a smooth point at
    10⁻³ of it). Backprop at one slope (to 10⁻⁵ of it, or 10⁻³ of the jump) is a kink; 0.5% off both, outside
    them, is a wrong backward pass."""
    x = xdl.tensor(np.array([0.0]), requires_grad=True)
    result = xdl.gradcheck(lambda: ShiftedReluBackward.apply(x, at_kink=at_kink).sum(), [x])
    assert result.verdict == "bug" and result.worst.numeric == pytest.approx(10.5, rel=1e-6), str(result)
    assert result.worst.kink == (pytest.approx(kink, rel=1e-6) if kink else None), str(result)


@pytest.mark.parametrize("curvature", [2000.0, 5000.0, 9000.0])
def test_a_kink_beside_a_strongly_curved_term_is_one_though_its_slopes_move_with_the_step(curvature):
    """relu(x) + c·x² at 0: the slope from below is −c·ε (c·10⁻⁷, up to 10⁻³ of the jump, 1), backprop's 0 — one
    of the slopes to within 10⁻³ of the jump; the slopes at 10ε move by 9c·ε, more than that, so only that
    closeness to a slope says kink (not the between-the-slopes test, which wants them put)."""
    x = xdl.tensor(np.array([0.0]), requires_grad=True)
    result = xdl.gradcheck(lambda: (xdl.relu(x) + curvature * x * x).sum(), [x])
    assert result.verdict == "bug" and result.worst.analytic == 0.0, str(result)
    assert result.worst.kink == pytest.approx((-curvature * 1e-7, 1 + curvature * 1e-7), rel=1e-6), str(result)


def test_gradcheck_refuses_a_cost_of_several_elements_naming_its_shape():
    """J must be one number: x² (3 elements), not summed, is refused by name with its shape."""
    x = xdl.tensor(np.array([0.5, -1.5, 2.0]), requires_grad=True)
    with pytest.raises(ValueError, match=r"fn must return a one-element tensor, got Tensor \(3,\)"):
        xdl.gradcheck(lambda: x * x, [x])


@pytest.mark.parametrize("eps", [0.0, -1e-7, math.inf, math.nan])
def test_gradcheck_refuses_a_step_that_is_not_a_finite_number_above_0(eps):
    """ε = 0 divided 0 by 0; it, a negative one and a non-finite one are refused by name before any work."""
    x = xdl.tensor(np.array([0.5, -1.5]), requires_grad=True)
    calls = []
    with pytest.raises(ValueError, match=r"gradcheck: eps must be a finite number > 0"):
        xdl.gradcheck(lambda: calls.append(1) or (x * x).sum(), [x], eps=eps)
    assert not calls


def test_another_input_whose_bug_sized_difference_is_a_kink_is_named_as_one_not_as_a_bug():
    """Two inputs each at a ReLU's kink (0): the worst says its kink, and the other is listed among the kinks
    (``also_kinks``), not among the inputs "differing like a bug"."""
    a, b = (xdl.tensor(np.array([0.0]), requires_grad=True) for _ in range(2))
    result = xdl.gradcheck(lambda: (xdl.relu(a) + 2.0 * xdl.relu(b)).sum(), {"a": a, "b": b})
    assert result.verdict == "bug" and result.worst.name == "a" and result.worst.kink is not None, str(result)
    assert result.also_kinks == ["b"] and result.also == [], str(result)
    assert "also bug-sized at kinks of J only (no wrong backward pass): b" in str(result)
