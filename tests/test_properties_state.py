"""Property tests of what holds a state or a setting (hypothesis, NumPy backend): learning-rate
schedules (α₀ at count 0, monotone where the formula is, a copy's and a resumed optimizer's rates
and steps those of the run they came from), `Module.checked_settings` (construction and assignment
accept and refuse the same values; a refused one changes nothing), `xdl.data.split` (a partition,
reproducible, of X's rows and y's together, for every kind of labels), `Standardizer` (transform
and inverse_transform undo each other, constant columns centered only), `xdl.save`/`xdl.load` of
drawn architectures and dtypes (the same outputs) and `xdl.ewa` (its closed form).
`tests/test_properties.py` holds the differentiable functions' properties."""

import copy
import math
import pickle
import re
import warnings

import numpy as np
import pytest

import xdl
from xdl.data import Standardizer, split
from xdl.data.split import holdout_sizes
from xdl.ewa import EWA, ewa
from xdl.nn import BatchNorm, Dense, Dropout, LeakyReLU, ReLU, Sequential, Sigmoid, Softmax, Tanh
from xdl.optim import schedules

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

# the same examples on every run (CI stays green or red), few enough for the suite's pace
quick = settings(max_examples=40, deadline=None, derandomize=True)


# ---------------------------------------------------------------------------------------------------------------
# learning-rate schedules

DECAYS = {  # name → (maker, a strategy of its arguments after lr0, by name): each non-increasing in the count
    "inverse_time": (schedules.inverse_time, st.fixed_dictionaries({"decay_rate": st.floats(0, 100)})),
    "exponential": (schedules.exponential, st.fixed_dictionaries({"base": st.floats(1e-3, 1.0)})),
    "staircase": (schedules.staircase,
                  st.fixed_dictionaries({"decay_rate": st.floats(0, 10), "interval": st.integers(1, 50)})),
    "step_decay": (schedules.step_decay,
                   st.fixed_dictionaries({"factor": st.floats(1e-3, 1.0), "every": st.integers(1, 50)})),
    # min_lr as a share of lr0
    "cosine": (schedules.cosine, st.fixed_dictionaries({"total": st.integers(1, 1000), "min_lr": st.floats(0, 1)})),
    "inverse_sqrt": (schedules.inverse_sqrt, st.fixed_dictionaries({"k": st.just(1.0)})),  # (k = 1: α₀ at count 0)
}


@st.composite
def decays(draw):
    """(a decaying schedule, its α₀)."""
    name = draw(st.sampled_from(sorted(DECAYS)))
    maker, arguments = DECAYS[name]
    lr0, kwargs = draw(st.floats(1e-6, 10.0)), draw(arguments)
    if name == "cosine":
        kwargs["min_lr"] *= lr0
    return maker(lr0, **kwargs), lr0


COUNTS = st.lists(st.integers(0, 10**6), min_size=2, max_size=8)


@quick
@given(case=decays(), counts=COUNTS)
def test_a_decay_starts_at_its_rate_and_never_rises(case, counts):
    """s(0) = α₀ exactly (a cosine to a min_lr > 0 within 1 ulp: min_lr + (α₀ − min_lr)·1 rounds twice, the
    price of min_lr exact at its end and of rates that stay the formula's: `test_a_cosines_rates_are_its_formulas`),
    and s(a) ≥ s(b) for a ≤ b: every decay's formula is non-increasing in the count."""
    schedule, lr0 = case
    assert schedule(0) == lr0 or repr(schedule).startswith("cosine") and math.isclose(schedule(0), lr0, rel_tol=2**-52)
    rates = [schedule(count) for count in sorted(counts)]
    assert all(earlier >= later for earlier, later in zip(rates, rates[1:])), (schedule, rates)


def test_a_cosines_rates_are_its_formulas():
    """cosine(α₀, T, min_lr=min_lr)(t) is min_lr + (α₀ − min_lr)·(1 + cos(π·min(t, T)/T))/2 bit for bit, as
    written: a checkpoint keeps its schedule's rates at a few counts and a resume compares them exactly
    (`provenance`), so a formula reordered for an ulp (α₀ exact at count 0) refused every cosine run
    checkpointed before it (1,532 of 2,000 random cosines differed somewhere)."""
    rng = np.random.default_rng(0)
    for _ in range(5_000):
        lr0 = float(10 ** rng.uniform(-8, 3))
        min_lr = [0.0, lr0 * rng.random()][rng.integers(2)]
        total = int(rng.choice([1, 3, 40, 200, rng.integers(1, 10**6)]))
        schedule = schedules.cosine(lr0, total, min_lr=min_lr)
        for count in (0, 1, 2, 3, 5, 100, total // 2, total - 1, total, total + 7):
            assert schedule(count) == min_lr + (lr0 - min_lr) * (1 + math.cos(math.pi * min(count, total) / total)) / 2


@quick
@given(rate=st.floats(1e-6, 10.0), steps=st.integers(1, 50), counts=COUNTS)
def test_a_warm_up_to_a_constant_rises_to_it_and_holds_it(rate, steps, counts):
    """warmup(α, w)(n) = α·min(1, (n + 1)/w): α/w at count 0, non-decreasing, α from count w − 1 on."""
    schedule = schedules.warmup(rate, steps)
    assert math.isclose(schedule(0), rate / steps, rel_tol=1e-15)
    rates = [schedule(count) for count in sorted(counts)]
    assert all(earlier <= later for earlier, later in zip(rates, rates[1:]))
    assert schedule(steps - 1) == rate and schedule(steps + counts[0]) == rate


@quick
@given(case=decays(), counts=COUNTS)
def test_a_schedule_copied_or_pickled_gives_the_same_rates_and_name(case, counts):
    schedule, _ = case
    for copied in (pickle.loads(pickle.dumps(schedule)), copy.deepcopy(schedule)):
        assert repr(copied) == repr(schedule)
        assert [copied(count) for count in counts] == [schedule(count) for count in counts]


@quick
@given(case=decays(), counts=COUNTS,
       kind=st.sampled_from([np.int64, np.int32, np.uint16, np.float32, np.float64, float]))
def test_a_count_of_any_number_type_gives_the_python_counts_rate_as_a_python_float(case, counts, kind):
    """s(count) does not depend on the count's type (a NumPy epoch of np.arange, Keras's float epochs):
    a NumPy count ran the formula in NumPy's arithmetic — np.float32(7) gave a float32 rate, rounded
    there, np.int64 NumPy's power, 1 ulp from the Python int's (step_decay(1.0, factor=0.9388, every=26) at 2080)."""
    schedule, _ = case
    for count in counts:
        count = min(count, int(np.iinfo(kind).max) if kind not in (np.float32, np.float64, float) else 2**24)
        rate = schedule(kind(count))
        assert type(rate) is float and rate == schedule(count), (schedule, kind, count, rate, schedule(count))


def test_a_numpy_count_gives_the_rate_of_the_python_number_it_holds():
    """One case each of the defect above, found by the property."""
    assert schedules.step_decay(1.0, factor=0.938811765931045, every=26)(np.int64(2080)) == \
        schedules.step_decay(1.0, factor=0.938811765931045, every=26)(2080)
    assert type(schedules.inverse_time(1.0, decay_rate=0.3)(np.float32(7))) is float


def _trained(rule: str, lr, batches) -> tuple:
    """(model, optimizer) after a step of ``rule`` on each of ``batches`` (seeded weights)."""
    xdl.seed(0)
    model = xdl.nn.mlp(3, [4], 2)
    optimizer = getattr(xdl.optim, rule)(model, lr=lr)
    _step(model, optimizer, batches)
    return model, optimizer


def _step(model, optimizer, batches) -> None:
    for X, y in batches:
        optimizer.zero_grad()
        xdl.softmax_cross_entropy(model(X), y).backward()
        optimizer.step()


@settings(max_examples=25, deadline=None, derandomize=True)
@given(rule=st.sampled_from(["SGD", "Momentum", "RMSprop", "Adam", "AdamW"]), done=st.integers(0, 6),
       more=st.integers(1, 4), seed=st.integers(0, 2**16),
       lr=st.sampled_from([schedules.exponential(0.05, base=0.9), schedules.warmup(schedules.cosine(0.05, 7), 3),
                           schedules.step_decay(0.05, factor=0.5, every=2), schedules.inverse_sqrt(0.05), 0.01]))
def test_an_optimizer_resumed_from_its_pickled_state_after_n_steps_runs_on_as_the_whole_run(
        rule, done, more, seed, lr):
    """n steps, (model, optimizer) state through state_dict and pickle into a fresh pair made with
    another rate, then m steps: the weights and the rate in force bit for bit those of n + m steps
    in one go (a per-step schedule continues from count n, not 0)."""
    rng = np.random.default_rng(seed)
    batches = [(rng.normal(size=(5, 3)), rng.integers(0, 2, 5)) for _ in range(done + more)]
    whole_model, whole = _trained(rule, lr, batches)
    model, optimizer = _trained(rule, lr, batches[:done])
    saved = pickle.loads(pickle.dumps((model.state_dict(), optimizer.state_dict())))
    resumed_model, resumed = _trained(rule, 0.3, [])
    resumed_model.load_state_dict(saved[0])
    resumed.load_state_dict(saved[1])
    assert resumed.current_lr() == optimizer.current_lr()
    _step(resumed_model, resumed, batches[done:])
    assert resumed.t == whole.t and resumed.current_lr() == whole.current_lr()
    for p, q in zip(whole_model.parameters(), resumed_model.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


# ---------------------------------------------------------------------------------------------------------------
# Module.checked_settings

SETTING_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-0.1, 1.1), st.floats(1e-46, 1e-36),
    st.floats(1e37, 1e300), st.integers(-3, 3), st.integers(10**300, 10**310), st.booleans(), st.none(),
    st.text(max_size=3), st.floats(0, 1).map(np.float32), st.floats(0, 1).map(np.float16),
    st.integers(0, 2).map(np.int8), st.floats(0, 1).map(np.array), st.floats(0, 1).map(lambda v: np.array([v])))

# (layer, setting) → (the layer made with a value of the setting, a layer of a valid one); dtype: γ's
SETTINGS = {
    ("Dropout", "rate"): (lambda value, dtype: Dropout(value), lambda dtype: Dropout(0.25)),
    ("BatchNorm", "momentum"): (lambda value, dtype: BatchNorm(3, momentum=value, dtype=dtype),
                                lambda dtype: BatchNorm(3, momentum=0.5, dtype=dtype)),
    ("BatchNorm", "eps"): (lambda value, dtype: BatchNorm(3, eps=value, dtype=dtype),
                           lambda dtype: BatchNorm(3, eps=1e-3, dtype=dtype)),
    ("LeakyReLU", "slope"): (lambda value, dtype: LeakyReLU(value), lambda dtype: LeakyReLU(0.2)),
    ("Softmax", "axis"): (lambda value, dtype: Softmax(value), lambda dtype: Softmax(0)),
}
STORED_AS = {"axis": int}  # (the others: float)


def _outcome(action) -> tuple:
    """("ok", what ``action()`` returned) or ("refused", the error's type); a warning is a failure
    (an ε beyond float32 overflowed in the check, with NumPy's warning, and was accepted as ∞)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome = "ok", action()
        except (TypeError, ValueError) as e:
            outcome = "refused", type(e).__name__
    assert not caught, [str(w.message) for w in caught]
    return outcome


def _assigned(layer, name: str, value):
    setattr(layer, name, value)
    return getattr(layer, name)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(key=st.sampled_from(sorted(SETTINGS)), value=SETTING_VALUES,
       dtype=st.sampled_from([None, np.float32, np.float64]))
def test_a_setting_is_accepted_by_assignment_exactly_where_the_constructor_accepts_it(key, value, dtype):
    """For every drawn value (numbers of every type and range, NaN, ±inf, ints beyond floats, bools,
    strings, None, arrays): the constructor and ``layer.<setting> = value`` both store the same
    float or both refuse with the same error, without a warning; a refused one leaves the layer's
    setting, config and state as they were; an accepted one survives a pickle. (An ε beyond float32's
    range was accepted with an overflow warning: ∞ in γ's dtype, every output β; a LeakyReLU's slope
    and a Softmax's axis were checked by the constructor only: a NaN slope set by hand was kept.)"""
    _, name = key
    make, made_valid = SETTINGS[key]
    constructed = _outcome(lambda: getattr(make(value, dtype), name))
    layer = made_valid(dtype)
    before = (getattr(layer, name), dict(layer.config), pickle.dumps(layer.state_dict()))
    assigned = _outcome(lambda: _assigned(layer, name, value))
    assert constructed == assigned, (key, value, dtype)
    if assigned[0] == "ok":
        assert type(assigned[1]) is STORED_AS.get(name, float)
        assert getattr(pickle.loads(pickle.dumps(layer)), name) == assigned[1]
    else:
        assert (getattr(layer, name), dict(layer.config), pickle.dumps(layer.state_dict())) == before


def test_a_leaky_relus_slope_and_a_softmaxs_axis_set_by_hand_are_checked_as_the_constructors():
    """One case each of the property above: a NaN slope set by hand gave NaN for every negative input."""
    layer, softmax = LeakyReLU(0.2), Softmax(0)
    with pytest.raises(ValueError, match="^LeakyReLU: slope must be a finite number, got nan$"):
        layer.slope = float("nan")
    with pytest.raises(TypeError, match="^Softmax: axis must be an integer, got 1.5$"):
        softmax.axis = 1.5
    assert (layer.slope, softmax.axis) == (0.2, 0)
    layer.slope, softmax.axis = np.float32(0.5), np.int64(-1)
    assert (type(layer.slope), type(softmax.axis)) == (float, int) and layer.current_config() == {"slope": 0.5}


@pytest.mark.filterwarnings("error::RuntimeWarning")  # (refused, not warned of: NumPy's "overflow in cast")
@pytest.mark.parametrize("dtype", [None, np.float32, np.float64])
def test_an_eps_beyond_the_layers_dtype_is_refused_as_one_below_it(dtype):
    """ε must be finite and > 0 in γ's dtype — made, set, given to `batch_norm` or narrowed by ``astype``:
    1e39 is ∞ in float32 (1/√(σ² + ∞) = 0: every output β), as 1e-46 is 0 there."""
    for eps in (1e39, 1e-46):
        if np.dtype(dtype or np.float32) == np.float64:
            assert BatchNorm(3, eps=eps, dtype=dtype).eps == eps
            continue
        with pytest.raises(ValueError, match=r"^BatchNorm: eps must be a finite number > 0 in float32, got 1e"):
            BatchNorm(3, eps=eps, dtype=dtype)
        layer = BatchNorm(3, dtype=dtype)
        with pytest.raises(ValueError, match="^BatchNorm: eps must be"):
            layer.eps = eps
        assert layer.eps == 1e-5
        x, ones, zeros = (xdl.tensor(np.full(shape, fill, np.float32)) for shape, fill in
                          (((4, 3), 0.5), ((3,), 1.0), ((3,), 0.0)))
        with pytest.raises(ValueError, match="^batch_norm: eps must be a finite number > 0 in float32"):
            xdl.functions.batch_norm(x, ones, zeros, np.zeros(3, np.float32), np.ones(3, np.float32), eps=eps)
        narrowed = BatchNorm(3, eps=eps, dtype=np.float64).astype(np.float32)  # (astype checks no setting)
        said = rf"^BatchNorm: eps {re.escape(repr(eps))} is {'inf' if eps > 1 else 0} in float32"
        with pytest.raises(ValueError, match=said):
            narrowed(np.ones((4, 3), np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_refuses_an_integer_eps_beyond_floats_naming_it(dtype):
    """`batch_norm`'s ε checked in x's dtype: a Python int beyond every float (10**309 …) is no finite ε in
    any dtype, refused as 1e39 is in float32 — it raised NumPy's bare "int too large to convert to float"."""
    x, ones, zeros = (xdl.tensor(np.full(shape, fill, dtype)) for shape, fill in
                      (((4, 3), 0.5), ((3,), 1.0), ((3,), 0.0)))
    for digits in (309, 310, 400):
        with pytest.raises(ValueError, match=rf"^batch_norm: eps must be a finite number > 0 in {np.dtype(dtype)}"):
            xdl.functions.batch_norm(x, ones, zeros, np.zeros(3, dtype), np.ones(3, dtype), eps=10**digits)
    for eps in (1, 10**38, 10**300):  # (an int within the dtype's range is an ε as its float is)
        finite = float(eps) <= float(np.finfo(dtype).max)
        if finite:
            xdl.functions.batch_norm(x, ones, zeros, np.zeros(3, dtype), np.ones(3, dtype), eps=eps)
        else:
            with pytest.raises(ValueError, match="^batch_norm: eps must be"):
                xdl.functions.batch_norm(x, ones, zeros, np.zeros(3, dtype), np.ones(3, dtype), eps=eps)


# ---------------------------------------------------------------------------------------------------------------
# xdl.data.split

@st.composite
def labelled(draw):
    """(m, y): labels of every kind split reads (integers, whole floats, strings, booleans, one-hot
    rows, a regression's continuous targets), for m examples of C classes."""
    m, classes = draw(st.integers(2, 200)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    labels = rng.integers(0, classes, m)
    kind = draw(st.sampled_from(["int", "float", "str", "bool", "one-hot", "continuous"]))
    y = {"int": labels, "float": labels.astype(float), "str": np.array([f"c{v}" for v in labels]),
         "bool": labels % 2 == 0, "one-hot": np.eye(classes)[labels], "continuous": rng.normal(size=m)}[kind]
    return m, y


HOLDOUTS = st.one_of(st.none(), st.floats(0, 0.45), st.integers(0, 60))


@quick
@given(case=labelled(), dev=HOLDOUTS, test=HOLDOUTS, seed=st.integers(0, 2**32),
       stratify=st.sampled_from([None, False, True]))
def test_a_split_partitions_the_rows_of_x_and_y_together_reproducibly(case, dev, test, seed, stratify):
    """train + dev + test is a permutation of the examples, each part's y the labels of its X's rows
    (in y's dtype), dev and test of `holdout_sizes` (a fraction f: max(round(f·m), 1), a count as
    given, None 20%), and the same seed gives the same parts."""
    m, y = case
    hypothesis.assume(isinstance(dev, float | None) or dev < m)
    hypothesis.assume(isinstance(test, float | None) or test < m)
    try:
        n_dev, n_test = holdout_sizes(m, dev, test)
    except ValueError:  # (none left to train on: refused on its own, tests/test_data.py)
        return
    X = np.arange(m)[:, None] * 2 + np.arange(2)  # row i holds 2i, 2i + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a class of one: shuffled, said)
        try:
            parts = split(X, y, dev, test, seed=seed, stratify=stratify)
        except ValueError:
            assert stratify is True  # (a class of one example cannot be stratified)
            return
        again = split(X, y, dev, test, seed=seed, stratify=stratify)
    for part, same in zip(parts, again):
        np.testing.assert_array_equal(part, same)
    assert (len(parts.X_dev), len(parts.X_test), len(parts.X_train)) == (n_dev, n_test, m - n_dev - n_test)
    for fraction, n in ((dev, n_dev), (test, n_test)):
        if fraction is None or isinstance(fraction, float):
            fraction = 0.2 if fraction is None else fraction
            assert n == max(round(fraction * m), 1 if fraction > 0 else 0)
    rows = np.concatenate([parts.X_train[:, 0], parts.X_dev[:, 0], parts.X_test[:, 0]]) // 2
    assert sorted(rows.tolist()) == list(range(m))
    for X_part, y_part in zip(parts[::2], parts[1::2]):
        assert y_part.dtype == y.dtype and X_part.dtype == X.dtype
        np.testing.assert_array_equal(y_part, y[X_part[:, 0] // 2])


@quick
@given(sizes=st.lists(st.integers(2, 40), min_size=1, max_size=6), seed=st.integers(0, 2**16),
       form=st.sampled_from(["str", "one-hot", "float"]), dev=st.floats(0.05, 0.4), test=st.floats(0, 0.4))
def test_a_stratified_split_of_any_label_form_keeps_each_class_share(sizes, seed, form, dev, test):
    """Labels as strings, one-hot rows or whole floats keep the documented bound of integer labels'
    (tests/test_data.py): each class within 1 + (C − 2)·p of its share in train and dev, twice in test."""
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(sizes)), sizes))
    m, classes = len(labels), len(sizes)
    hypothesis.assume(max(round(dev * m), 1) + (max(round(test * m), 1) if test else 0) < m)
    y = {"str": np.array([f"class {v:02d}" for v in labels]), "one-hot": np.eye(classes)[labels],
         "float": labels.astype(float)}[form]
    parts = split(np.arange(m)[:, None], y, dev, test, seed=seed, stratify=True)
    bound = 1 + (classes - 2) * np.bincount(labels) / m
    for X_part, times in ((parts.X_train, 1), (parts.X_dev, 1), (parts.X_test, 2)):
        counts = np.bincount(labels[X_part[:, 0]], minlength=classes)
        assert np.all(np.abs(counts - np.bincount(labels) * len(X_part) / m) <= times * bound + 1e-9)


# ---------------------------------------------------------------------------------------------------------------
# Standardizer

@st.composite
def features(draw):
    """(X, the constant columns): float32, float64 or integer features at offsets and spreads far
    apart, some columns constant."""
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64, np.int32, np.uint8])))
    m, n = draw(st.integers(1, 30)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if dtype.kind == "f":
        offset, spread = draw(st.sampled_from([0.0, 1e-6, -1e3, 1e6])), draw(st.sampled_from([0.0, 1e-3, 1.0, 1e3]))
        X = (offset + spread * rng.normal(size=(m, n))).astype(dtype)
    else:
        X = rng.integers(0, 256 if dtype == np.uint8 else 10**6, size=(m, n)).astype(dtype)
    constant = draw(st.lists(st.integers(0, n - 1), max_size=n, unique=True))
    X[:, constant] = X[0, constant]
    return X, constant


@quick
@given(case=features())
def test_standardizing_is_undone_by_its_inverse_and_centers_constant_columns(case):
    """μ = mean(X) in float64; Z = (X − μ)/σ in X's floating dtype (float32 for integers), the
    `Standardize` layer's output bit for bit; inverse_transform(Z) = X within a few ulps of the
    dtype; a constant column has σ = 1 and Z = 0 within float64's rounding of μ."""
    X, constant = case
    X64 = X.astype(np.float64)
    standardizer = Standardizer().fit(X)
    Z = standardizer.transform(X)
    dtype = X.dtype if X.dtype.kind == "f" else np.dtype(np.float32)
    assert Z.dtype == dtype and Z.shape == X.shape
    np.testing.assert_allclose(standardizer.mean, X64.mean(axis=0), rtol=1e-12, atol=1e-12 * np.abs(X64).max())
    for j in constant:
        assert standardizer.scale[j] == 1.0
        assert np.all(np.abs(Z[:, j]) <= 4 * np.finfo(np.float64).eps * np.abs(X64[:, j]))
    back = standardizer.inverse_transform(Z)
    assert back.dtype == dtype
    ulps = 4 * np.finfo(dtype).eps
    np.testing.assert_allclose(back, X64, rtol=ulps, atol=ulps * (np.abs(X64).max() + 1))
    np.testing.assert_array_equal(standardizer.layer()(xdl.tensor(X)).numpy(), Z)


# ---------------------------------------------------------------------------------------------------------------
# xdl.save / xdl.load

@st.composite
def architectures(draw):
    """(a Sequential of drawn layers and dtypes — one Dense of another dtype, settings set by hand,
    running statistics moved by a forward, evaluation mode, a frozen parameter —, inputs for it)."""
    n = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    layers = [Standardizer().fit(rng.normal(3, 2, size=(10, n))).layer()] if draw(st.booleans()) else []
    width = n
    for _ in range(draw(st.integers(0, 3))):
        out = draw(st.integers(1, 5))
        layers.append(Dense(width, out, bias=draw(st.booleans()), init=draw(st.sampled_from(["he", "xavier"]))))
        if draw(st.booleans()):
            layers.append(BatchNorm(out, momentum=draw(st.floats(0, 0.99))))
        layers.append(draw(st.sampled_from([ReLU, Tanh, Sigmoid]))())
        if draw(st.booleans()):
            layers.append(Dropout(draw(st.floats(0, 0.9))))
        width = out
    layers.append(Dense(width, draw(st.integers(1, 4))))
    model = Sequential(*layers).astype(draw(st.sampled_from([np.float32, np.float64])))
    for layer in model:
        if isinstance(layer, BatchNorm) and draw(st.booleans()):
            layer.momentum, layer.eps = draw(st.floats(0, 0.99)), draw(st.floats(1e-6, 1.0))
        elif isinstance(layer, Dropout) and draw(st.booleans()):
            layer.rate = draw(st.floats(0, 0.9))
        elif isinstance(layer, Dense) and draw(st.booleans()):
            layer.astype(draw(st.sampled_from([np.float32, np.float64])))
    X = rng.normal(3, 2, size=(8, n))
    with xdl.no_grad():
        model(X)  # (the running statistics move)
    if draw(st.booleans()):
        model.eval()
    if draw(st.booleans()):
        model.parameters()[0].requires_grad = False
    return model, X


@settings(max_examples=40, deadline=None, derandomize=True)
@given(case=architectures())
def test_a_saved_model_loads_back_with_its_layers_settings_dtypes_and_outputs(case, tmp_path_factory):
    """xdl.load(xdl.save(model)) has the same layers and settings, parameters and buffers (values,
    dtypes, frozen ones), mode, and gives the same evaluation outputs bit for bit on float32 and
    float64 inputs; so do a pickle and a model made in code loaded with ``model=``."""
    model, X = case
    path = tmp_path_factory.mktemp("saved") / "model.npz"
    xdl.save(model, path)
    loaded = xdl.load(path)
    assert repr(loaded) == repr(model) and loaded.training == model.training
    for layer, back in zip(model, loaded):
        assert all(getattr(back, name) == getattr(layer, name) for name in type(layer).checked_settings)
    for (name, p), (name_back, q) in zip(model.named_parameters(), loaded.named_parameters()):
        assert (name_back, q.dtype, q.requires_grad) == (name, p.dtype, p.requires_grad)
    state, state_back = model.state_dict(), loaded.state_dict()
    assert list(state) == list(state_back)
    for name in state:
        assert np.asarray(state_back[name]).dtype == np.asarray(state[name]).dtype
        np.testing.assert_array_equal(state_back[name], state[name])
    blank = copy.deepcopy(model)
    for p in blank.parameters():
        p.data[...] = 0
    xdl.load(path, model=blank)
    models = [loaded, pickle.loads(pickle.dumps(model)), blank]
    for each in [model, *models]:
        each.eval()
    with xdl.no_grad():
        for inputs in (X, X.astype(np.float32)):
            expected = model(inputs).numpy()
            for each in models:
                np.testing.assert_array_equal(each(inputs).numpy(), expected)


# ---------------------------------------------------------------------------------------------------------------
# exponentially weighted averages

@quick
@given(beta=st.floats(0, 0.999), bias_correction=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64, np.int32]),
       shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6), data=st.data())
def test_an_ewa_is_its_closed_form_and_bias_corrected_stays_within_the_values_seen(
        beta, bias_correction, dtype, shape, data):
    """v_t = (1 − β)·Σᵢ₌₁ᵗ βᵗ⁻ⁱ·xᵢ (÷ (1 − βᵗ) corrected: a weighted mean, so within the running min and
    max of x), in float64 whatever x's dtype; `ewa` gives what `EWA.update` gives step by step, x
    itself at β = 0, and a constant sequence corrected is that constant."""
    elements = st.integers(-1000, 1000) if np.dtype(dtype).kind == "i" else \
        st.floats(-1e6, 1e6, width=np.dtype(dtype).itemsize * 8)
    x = data.draw(hnp.arrays(dtype, shape, elements=elements))
    x64 = x.astype(np.float64)
    averaged = ewa(x, beta, bias_correction)
    assert averaged.shape == x.shape and averaged.dtype == np.float64
    scale = (np.abs(x64).max() + 1) / (1 - beta)
    for t in range(1, len(x) + 1):
        weights = (1 - beta) * beta ** np.arange(t)[::-1]
        expected = np.tensordot(weights, x64[:t], axes=1) / ((1 - beta ** t) if bias_correction else 1)
        np.testing.assert_allclose(averaged[t - 1], expected, rtol=1e-9, atol=1e-12 * scale)
    if bias_correction:
        low, high = np.minimum.accumulate(x64, axis=0), np.maximum.accumulate(x64, axis=0)
        assert np.all(averaged >= low - 1e-12 * scale) and np.all(averaged <= high + 1e-12 * scale)
        constant = np.full(shape, x64.flat[0])
        # (atol: (1 − β)·x of a subnormal x rounds to 0, as any float arithmetic there)
        np.testing.assert_allclose(ewa(constant, beta), constant, rtol=1e-12, atol=1e-300)
    running = EWA(beta, bias_correction)
    np.testing.assert_array_equal(np.array([running.update(value) for value in x]).reshape(shape), averaged)
    if beta == 0:
        np.testing.assert_array_equal(averaged, x64)


@quick
@given(first=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4),
       later=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4))
def test_a_running_ewa_keeps_its_shape_or_refuses_the_value_that_would_change_it(first, later):
    """After a first x of shape S, an x that broadcasts to S leaves the average of shape S; any other
    is refused naming x's shape, the average and t as they were (broadcast, a (2, 1) x made a (3,)
    average (2, 3), silently; a (4,) one raised NumPy's error naming nothing)."""
    average = EWA(0.5)
    average.update(np.ones(first))
    try:
        fits = np.broadcast_shapes(first, later) == first
    except ValueError:
        fits = False
    if fits:
        assert average.update(np.full(later, 3.0)).shape == first and average.t == 2
        return
    with pytest.raises(ValueError, match=r"^EWA.update: x must be of the average's shape .* got shape"):
        average.update(np.full(later, 3.0))
    assert average.t == 1 and np.shape(average.value) == first and np.all(average.corrected == 1.0)
