"""Arguments of the wrong kind, refused by name before any work (a second audit's findings: each test
failed before its fix, with the words of the library underneath — "'int' object is not iterable",
"'str' object has no attribute 'ndim'", NumPy's "truth value … is ambiguous" — or with no error)."""

import re

import numpy as np
import pytest

import xdl
from xdl.data import holdout_sizes
from xdl.optim import Adam, param_groups, schedules
from xdl.train import EarlyStopping
from xdl.tune import Study
from xdl.tune.search import zoom


@pytest.mark.parametrize("call, error, message", [
    (lambda: Adam(5), TypeError, "params must be a list of xdl.Tensor"),
    (lambda: xdl.nn.stack(5), TypeError, "stack: models must be a list of xdl.nn.Sequential"),
    (lambda: param_groups("abc", 0.1), TypeError, "param_groups: model must be a list of xdl.Tensor"),
    (lambda: param_groups([np.ones((2, 2))], 0.1), TypeError, "param_groups: model[0] must be an xdl Tensor"),
    (lambda: xdl.losses.l2([1], 0.1), TypeError, "l2: model[0] must be an xdl Tensor"),
    (lambda: zoom("x", {}), TypeError, "zoom: space must be an xdl.tune.Space"),
    (lambda: Study.load(None), TypeError, "Study.load: directory must be a path"),
    (lambda: EarlyStopping(monitor=np.array(["dev_cost", "train_cost"])), ValueError, "EarlyStopping: monitor must be"),
    (lambda: xdl.tensor(np.ones(2), requires_grad=np.array([1, 0])), TypeError, "tensor: requires_grad must be True"),
    (lambda: xdl.tensor(np.ones(2), copy="no"), TypeError, "tensor: copy must be True or False"),
    (lambda: xdl.tensor(np.ones((2, 2))).sum(axis=""), TypeError, "sum: axis must be an integer"),
    (lambda: xdl.nn.Dense(10**30, 2), ValueError, "Dense: in_features must be at most 2**31 − 1"),
    (lambda: holdout_sizes(float("inf")), ValueError, "holdout_sizes: m (number of examples) must be"),
    (lambda: holdout_sizes("abc"), ValueError, "holdout_sizes: m (number of examples) must be"),
])
def test_an_argument_of_the_wrong_kind_is_named(call, error, message):
    """The argument is named, with what was expected: `tensor(copy="no")` was taken as true, `sum(axis="")`
    reduced nothing (a string iterated: no axes), `holdout_sizes(inf)` gave (10000, 10000)."""
    with pytest.raises(error, match=re.escape(message)):
        call()


@pytest.mark.parametrize("make, name", [
    (lambda n: schedules.staircase(0.1, decay_rate=0.5, interval=n), "interval"),
    (lambda n: schedules.step_decay(0.1, factor=0.5, every=n), "every"),
    (lambda n: schedules.cosine(0.1, n), "total"), (lambda n: schedules.warmup(0.1, n), "steps"),
])
@pytest.mark.parametrize("count", [1e-320, 0.5, float("inf")])
def test_a_schedule_count_is_at_least_one(make, name, count):
    """A count of steps or epochs below 1 is none: step_decay(0.1, every=1e-320) gave lr 0 from count 1
    (0.1·0.5^⌊1/1e-320⌋), warmup(…, 0.5) no warm-up. Floats ≥ 1 stay (Keras's decay_steps is one)."""
    with pytest.raises(ValueError, match=f"{name} must be a finite number ≥ 1"):
        make(count)
    assert make(2.5)(1) > 0


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_dropout_draws_a_mask_for_a_float16_tensor(dtype):
    """NumPy's generator draws no float16 ("Unsupported dtype dtype('float16') for random"): the mask
    is drawn in float32, the output kept in x's dtype, each unit 0 or x/(1 − rate)."""
    y = xdl.nn.Dropout(0.5)(xdl.tensor(np.ones((4, 5), dtype)))
    assert y.dtype == dtype and set(np.unique(y.numpy())) <= {0.0, 2.0}


def test_an_mlp_too_wide_is_refused_before_any_layer_draws():
    """A hidden width past 2**31 − 1 was refused by its own Dense ("Dense: out_features"), after the
    layers before it had drawn their weights: the seeded draws of the next model moved."""
    xdl.seed(0)
    expected = xdl.nn.mlp(4, [3], 2).state_dict()
    xdl.seed(0)
    with pytest.raises(ValueError, match=re.escape("mlp: hidden must be a non-empty list of positive integers (each "
                                                   "at most 2**31 − 1)")):
        xdl.nn.mlp(4, [3, 2**31], 2)
    for name, value in xdl.nn.mlp(4, [3], 2).state_dict().items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_an_array_given_for_a_name_is_refused_naming_the_argument():
    """precision= and predicts take a name: an array of two was compared with the names, and NumPy's
    "truth value of an array ... is ambiguous" came out of xdl.use or the assignment, naming neither."""
    with pytest.raises(ValueError, match=r"precision must be one of float32, tf32, got array"):
        xdl.use("numpy", precision=np.array([1, 2]))
    model = xdl.nn.mlp(2, [3], 2)
    with pytest.raises(ValueError, match=r"Sequential\.predicts must be one of .* got array"):
        model.predicts = np.array(["classes", "values"])
    assert model.predicts is None


NOT_NUMBERS = {"strings": np.array(["a", "b", "c"]), "a list of strings": ["a", "b", "c"],
               "complex": np.array([1 + 1j, 0, 1]), "dates": np.array(["2020-01-01"] * 3, dtype="datetime64[D]"),
               "durations": np.array([1, 2, 3], dtype="timedelta64[s]"),
               "objects": np.array([1, None, 0], dtype=object)}


@pytest.mark.parametrize("function, argument", [(xdl.mean_squared_error, "targets"),
                                                (xdl.sigmoid_binary_cross_entropy, "labels")])
@pytest.mark.parametrize("kind", list(NOT_NUMBERS))
def test_the_functional_losses_refuse_targets_that_are_no_real_numbers_by_name(function, argument, kind):
    """mean_squared_error of strings or dates raised NumPy's UFuncTypeError; sigmoid_binary_cross_entropy
    dropped a complex target's imaginary part (a ComplexWarning) and took dates as numbers: refused as the
    loss classes refuse them (one check, `xdl.data.validation.real_numbers`), before any work."""
    outputs = xdl.tensor(np.zeros(3))
    with pytest.raises(TypeError, match=rf"^{function.__name__}: {argument} (must hold real numbers|holds)"):
        function(outputs, NOT_NUMBERS[kind])


@pytest.mark.parametrize("targets", [[1, 0, 1], np.array([True, False, True]), np.array([1.0, 0.0, 1.0], dtype=object),
                                     np.array([1, 0, 1], dtype=np.int8)])
def test_the_functional_losses_take_targets_of_real_numbers_in_any_dtype(targets):
    outputs = xdl.tensor(np.zeros(3))
    assert xdl.mean_squared_error(outputs, targets).item() == pytest.approx(2 / 3)
    assert xdl.sigmoid_binary_cross_entropy(outputs, targets).item() == pytest.approx(np.log(2))


def test_a_count_of_one_is_said_in_the_singular():
    """split of one example against two labels said "X has 1 examples"; the messages that name a count
    that may be 1 say it through `xdl.data.validation.counted`."""
    with pytest.raises(ValueError, match=r"^X has 1 example but y has 2 "):
        xdl.data.split(np.zeros((1, 2)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"^X has 1 example but y has 2 "):
        next(iter(xdl.data.minibatches(np.zeros((1, 2)), np.array([0, 1]), 1)))
    with pytest.raises(ValueError, match=r"^y has 2 labels for 1 example "):
        xdl.data.check_labels(np.array([0, 1]), 1)
    with pytest.raises(ValueError, match=r"^SoftmaxCrossEntropy: 2 labels for 1 example$"):
        xdl.losses.SoftmaxCrossEntropy()(xdl.tensor(np.zeros((1, 2))), np.array([0, 1]))
    assert repr(xdl.train.History()).startswith("History(0 epochs, ")


@pytest.mark.parametrize("options, said", [
    (dict(seed=2**64), r"seed must be below 2\*\*64, got 18446744073709551616"),
    (dict(seed=2**70), r"seed must be below 2\*\*64, got 1180591620717411303424"),
    (dict(augment_noise=-0.1), r"augment_noise must be a finite number ≥ 0, got -0\.1"),
    (dict(augment_noise=float("inf")), r"augment_noise must be a finite number ≥ 0, got inf"),
    (dict(decay_rate=-1.0), r"decay_rate must be a finite number ≥ 0, got -1\.0"),
    (dict(decay_rate=float("nan")), r"decay_rate must be a finite number ≥ 0, got nan"),
    (dict(decay_every=0), r"decay_every must be ≥ 1, got 0"),
    (dict(batch_size=0), r"batch_size must be ≥ 1, got 0"),
    (dict(checkpoint_every=-1), r"checkpoint_every must be ≥ 0, got -1"),
    (dict(augment_shift=-1), r"augment_shift must be ≥ 0, got -1"),
    (dict(patience=-1), r"patience must be ≥ 0, got -1"),
    (dict(plateau_patience=-1), r"plateau_patience must be ≥ 0, got -1"),
    (dict(decay_factor=float("nan")), r"decay_factor must be a finite number > 0, got nan"),
    (dict(decay_base=float("inf")), r"decay_base must be a finite number > 0, got inf"),
    (dict(decay_k=0.0), r"decay_k must be a finite number > 0, got 0\.0"),
    (dict(lr=float("nan")), r"lr must be a finite number > 0, got nan"),
    (dict(eps=0.0), r"eps must be a finite number > 0, got 0\.0"),
    (dict(hidden=[2**20 + 1]), r"hidden must be a non-empty list of sizes in \[1, 1,048,576\], got \[1048577\]"),
    (dict(hidden=[0]), r"hidden must be a non-empty list of sizes in \[1, 1,048,576\], got \[0\]"),
    (dict(beta1=1.0), r"beta1 must be in \[0, 1\), got 1\.0"),
    (dict(beta2=-0.1), r"beta2 must be in \[0, 1\), got -0\.1"),
    (dict(base_error=1.0), r"base_error must be in \[0, 1\) \(an error rate\), got 1\.0"),
    (dict(plateau_factor=1.0), r"plateau_factor must be a number in \(0, 1\), got 1\.0"),
    (dict(plateau_factor=0.0), r"plateau_factor must be a number in \(0, 1\), got 0\.0"),
    (dict(augment_noise=float(np.finfo(np.float32).max) / 10 * 1.5), r"augment_noise must be at most 3\.4e\+37 "),
])
def test_a_configs_out_of_range_options_are_named(options, said):
    from xdl.config import TrainConfig

    with pytest.raises(ValueError, match=r"^TrainConfig: " + said):
        TrainConfig(**options)


@pytest.mark.parametrize("options", [dict(hidden=[2**20]), dict(hidden=[1]), dict(beta1=0.0, beta2=0.0),
                                     dict(batch_size=1, batch_norm=False), dict(patience=0, plateau_patience=0),
                                     dict(lr=float(np.finfo(np.float32).smallest_subnormal)),
                                     dict(eps=float(np.finfo(np.float32).smallest_subnormal)),
                                     dict(augment_noise=float(np.finfo(np.float32).max) / 10)])
def test_a_configs_options_at_the_ends_of_their_ranges_are_taken(options):
    """Each range's end that is in it (a hidden layer of 2**20 units, β = 0, a batch of one without batch
    norm, float32's smallest positive rate and ε, augment_noise's largest σ) is taken, as given."""
    from xdl.config import TrainConfig

    config = TrainConfig(**options)
    assert {name: getattr(config, name) for name in options} == options


def test_a_dev_set_that_is_no_pair_and_inputs_that_are_no_numbers_are_named_before_training():
    """A Trainer's fit and fit_many name a ``dev`` that is not (X_dev, y_dev), by what it got, and an X of
    complex numbers or strings by its dtype, before any step: the model's weights are as they were."""
    from xdl.config import TrainConfig
    from xdl.losses import SoftmaxCrossEntropy
    from xdl.train import Trainer, fit_many

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = (X[:, 0] > 0).astype(int)
    model = xdl.nn.mlp(3, [4], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model), epochs=1, progress=False)
    before = model.state_dict()
    for dev, got in (((X,), "tuple of length 1"), ([X, y, y], "list of length 3"), ("dev", "str"),
                     (X, "ndarray"), ({"X": X, "y": y}, "dict")):
        said = rf"^dev must be a pair \(X_dev, y_dev\), got {got}$"
        with pytest.raises(ValueError, match=said):
            trainer.fit(X, y, dev=dev)
        with xdl.use("numpy"), pytest.raises(ValueError, match=said):
            fit_many([TrainConfig(hidden=[4], epochs=1, patience=0, progress=False)], X, y, dev=dev)
    for given in (X.astype(complex), np.full(X.shape, "a")):
        with pytest.raises(TypeError, match=rf"^X must hold numbers, got dtype {given.dtype}$"):
            trainer.fit(given, y)
    assert len(trainer.history) == 0
    assert all(np.array_equal(before[name], value) for name, value in model.state_dict().items())


@pytest.mark.parametrize("dtype, error, said", [
    ("bogus", TypeError, r"dtype must be a floating dtype name, got 'bogus'"),
    (3.5, TypeError, r"dtype must be a floating dtype name, got 3\.5"),
    (None, ValueError, r"dtype must be float32 or float64, got None"),
    ("float16", ValueError, r"dtype must be float32 or float64, got float16"),
    (np.int64, ValueError, r"dtype must be float32 or float64, got int64"),
])
def test_fit_many_names_a_dtype_it_cannot_train_in(dtype, error, said):
    from xdl.config import TrainConfig
    from xdl.train.many import ManyTrainer

    with pytest.raises(error, match="^" + said + "$"):
        ManyTrainer([TrainConfig(hidden=[4], epochs=1, patience=0, progress=False)], dtype=dtype)


@pytest.mark.parametrize("options, named", [
    ({"augment_shift": 1, "augment_noise": 0.1}, "augment_shift"),
    ({"augment_noise": 0.1, "augment_flip": True}, "augment_noise"),
    ({"augment_flip": True}, "augment_flip"), ({"augment_shift": 2, "augment_flip": True}, "augment_shift")])
def test_augmentation_on_a_dataset_of_no_images_names_the_first_augmentation_option(options, named):
    """Augmentation applies to image datasets only: a config on moons with several augmentation options names the
    first in TrainConfig's order (shift, noise, flip), as the command line names its flag."""
    from xdl.config import TrainConfig

    with pytest.raises(ValueError, match=rf"^TrainConfig: {named}: augmentation applies to image datasets \(digits\), "
                                         r"not 'moons'"):
        TrainConfig(dataset="moons", **options)


@pytest.mark.parametrize("name, kind", [("epochs", "an integer"), ("patience", "an integer"), ("lr", "a number"),
                                        ("dropout", "a number"), ("seed", "an integer")])
@pytest.mark.parametrize("duration", [np.timedelta64(3), np.timedelta64(3, "s"), np.timedelta64(0, "D")])
def test_a_configs_count_or_number_given_as_a_duration_is_refused(name, kind, duration):
    """A timedelta64 is a NumPy integer, but a duration is no count: epochs=np.timedelta64(3) trained 3 epochs."""
    from xdl.config import TrainConfig

    with pytest.raises(TypeError, match=rf"^TrainConfig: {name} must be {kind}, got .*\(timedelta64\)$"):
        TrainConfig(**{name: duration})


@pytest.mark.parametrize("hidden", [np.array(5), np.array([[8, 4]]), np.zeros((0, 3), dtype=np.int64),
                                    np.zeros((1, 2, 3), dtype=np.int64), np.zeros((0, 0), dtype=np.int64)])
def test_a_configs_hidden_of_an_array_not_one_dimensional_is_refused_as_no_list(hidden):
    """hidden as an array is a 1-D one of integers: a 0-d one failed on NumPy's "iteration over a 0-d array", an
    empty 2-D one was read as [] ("must be a non-empty list"), naming the array as none of what it is."""
    from xdl.config import TrainConfig

    said = r"(?s)^TrainConfig: hidden must be a list of integers, got array\(.*\(ndarray\)$"  # (a repr of lines)
    with pytest.raises(TypeError, match=said):
        TrainConfig(hidden=hidden)
    assert TrainConfig(hidden=np.array([8, 4])).hidden == [8, 4]  # (a 1-D one is taken, as a plain list)


@pytest.mark.parametrize("name, value, said", [
    ("epochs", True, r"epochs must be an integer, got True \(bool\)$"),
    ("patience", np.bool_(False), r"patience must be an integer, got np\.False_ \(bool\)$"),
    ("lr", False, r"lr must be a number, got False \(bool\)$"),
    ("dropout", None, r"dropout must be a number, got None \(NoneType\); 0 is no dropout \(TOML has no null\)$"),
    ("patience", None, r"patience must be an integer, got None \(NoneType\); 0 is no early stopping \(TOML has no "
                       r"null\)$"),
    ("lr", None, r"lr must be a number, got None \(NoneType\)$"),
])
def test_a_configs_option_of_another_type_is_named_with_the_way_off(name, value, said):
    """A bool is no count (True is an int to Python); None, the "off" of other libraries, is told the option's off
    value (TOML has no null), where it has one."""
    from xdl.config import TrainConfig

    with pytest.raises(TypeError, match=r"^TrainConfig: " + said):
        TrainConfig(**{name: value})


def test_a_configs_numbers_and_sizes_are_kept_as_plain_python_values():
    """An int is taken as a number (lr=1 is 1.0) and NumPy scalars and arrays as the plain values they hold (so
    configs compare and save alike): each option's value has the field's plain type."""
    from xdl.config import TrainConfig

    config = TrainConfig(lr=1, dropout=np.float32(0.5), l2=np.int64(2), epochs=np.int32(3),
                         hidden=np.array([8, 4], dtype=np.int16))
    assert [(config.lr, type(config.lr)), (config.dropout, type(config.dropout)), (config.l2, type(config.l2)),
            (config.epochs, type(config.epochs))] == [(1.0, float), (0.5, float), (2.0, float), (3, int)]
    assert config.hidden == [8, 4] and [type(size) for size in config.hidden] == [int, int]
    assert TrainConfig(hidden=(8, 4)) == TrainConfig(hidden=np.array([8, 4])) == TrainConfig(hidden=[8, 4])
