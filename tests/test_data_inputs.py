"""Inputs at the data boundary: a model's leading Standardize layer applied before the cast to its
dtype, and the checks of split, Standardizer, one_hot, Augment, batch_bounds, the datasets and the
losses' targets (found by a tester: each test failed before its fix)."""

import copy
import re
import warnings

import numpy as np
import pytest

import xdl
from xdl.config import TrainConfig
from xdl.data import Augment, Standardizer, batch_bounds, one_hot, split
from xdl.losses import BinaryCrossEntropy, MeanSquaredError, SoftmaxCrossEntropy
from xdl.train import Trainer, fit_many


OFFSET = 1e6 + 0.031  # float32 holds numbers near 1e6 in steps of 0.0625: this mean would be off by 0.031


def offset_data(m=1000, spread=0.001):
    """One feature at ``OFFSET`` with a spread far below float32's step there: its sign around
    ``OFFSET`` is the class."""
    X = OFFSET + spread * np.random.default_rng(0).normal(size=(m, 1))
    return X, (X[:, 0] > OFFSET).astype(np.int64)


def standardized_model(X, dropout=0.0):
    xdl.seed(0)
    return xdl.nn.mlp(X.shape[1], [8], 2, dropout=dropout, standardize=Standardizer().fit(X).layer())


def test_a_leading_standardize_layer_keeps_a_large_offset_with_a_small_spread(backend, tmp_path):
    """README's workflow (``mlp(..., standardize=Standardizer().fit(X).layer())``): fit, evaluate
    and predict cast X to float32 before the layer subtracted the mean, so the feature came as
    1e6 ± a step of 0.0625 and the model learned nothing (accuracy 0.53); the layer's statistics
    in float32 put the mean 0.031 off, 31 spreads (0.53 again). Standardized in float64 from
    float64 statistics, as `Standardizer.transform` does: 0.99."""
    X, y = offset_data()
    model = standardized_model(X)
    trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-2), epochs=30, progress=False)
    history = trainer.fit(X, y)
    assert history.final()["train_accuracy"] > 0.95
    assert trainer.evaluate(X, y)["accuracy"] > 0.95
    assert (model.predict(X) == y).mean() > 0.95
    # the layer's own statistics, applied in float64, then the cast: what the rest of the model sees
    layer = model[0]
    assert layer.mean.dtype == layer.scale.dtype == np.float64
    assert copy.deepcopy(model).astype(np.float64).astype(np.float32)[0].mean.dtype == np.float64  # (astype leaves them)
    z = Standardizer().fit(X).transform(X).astype(np.float32)  # (the same statistics, the same arithmetic)
    np.testing.assert_array_equal(model.predict_outputs(X), model[1:].predict_outputs(z))
    restored = xdl.load(xdl.save(model, tmp_path / "m.npz"))
    assert restored[0].mean.dtype == np.float64
    np.testing.assert_array_equal(restored.predict_outputs(X), model.predict_outputs(X))


def test_calling_a_standardizing_model_on_float16_gives_what_predict_gives():
    """The leading Standardize ran in float16, X's dtype, and its output was rounded there before the
    cast: 1.4e-3 from predict_outputs on inputs near 1000."""
    X = (1000 + 3 * np.random.default_rng(0).standard_normal((200, 4))).astype(np.float16)
    model = xdl.nn.Sequential(Standardizer().fit(X).layer(), xdl.nn.Dense(4, 2))
    out = model(X)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(xdl.to_numpy(out), model.predict_outputs(X))


def test_a_standardize_layer_called_alone_keeps_a_float64_input():
    """Called on its own, the layer cast a float64 array to float32 first (its dtype): 1e6 + 0.001
    became 1e6, standardized to −1 instead of 0 — its docstring says it computes in float64."""
    layer = Standardizer().fit(np.array([[1e6], [1e6 + 0.002]])).layer()
    out = layer(np.array([[1e6 + 0.001]]))
    assert out.dtype == np.float64 and abs(xdl.to_numpy(out)[0, 0]) < 1e-6
    assert layer(np.array([[3]])).dtype == np.float32 and layer(np.ones((1, 1), np.float16)).dtype == np.float32


def test_a_standardized_input_beyond_the_models_dtype_is_refused_naming_it():
    model = xdl.nn.mlp(2, [4], 2, standardize=xdl.nn.Standardize(2, mean=[0.0, 0.0], scale=[1.0, 1e-30]))
    with pytest.raises(ValueError, match=r"^X's example 1, feature 1 \(1e\+10\) lies 1e\+40 standard deviations "
                                         r"\(σ = 1e-30\) from the mean, beyond the range of float32"):
        model.predict(np.array([[0.0, 0.0], [0.0, 1e10]]))  # inf in the layer: NaN outputs, silently


def test_a_captured_run_of_a_standardized_model_ends_with_the_eager_runs_weights(backend, monkeypatch):
    from test_graph import emulated_capture, weights

    X, y = offset_data(300)
    runs = []
    for capture in (False, "auto"):
        model = standardized_model(X, dropout=0.2)
        trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-2), batch_size=64, epochs=2,
                          seed=3, progress=False, capture=capture)
        if capture and backend.name == "numpy":
            emulated_capture(monkeypatch, trainer)
        assert (trainer.eager_reason() is None) == bool(capture)
        history = trainer.fit(X, y, dev=(X[:50], y[:50]))
        runs.append((weights(backend, model), history["dev_cost"]))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


def test_augmentation_sees_the_raw_values_the_models_standardize_layer_takes(backend):
    seen = []

    def augment(Xb, rng):
        seen.append(float(np.abs(np.asarray(Xb)).max()))
        return Xb

    X = np.random.default_rng(0).uniform(0, 16, (64, 4))  # pixel values, standardized by the model
    y = np.arange(64) % 2
    model = standardized_model(X)
    trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model), batch_size=32, epochs=1, progress=False,
                      augment=augment)
    trainer.fit(X, y)
    assert min(seen) > 8  # raw pixels (standardized ones stay below 2)


def test_predict_flattens_examples_as_fit_does():
    X = np.random.default_rng(0).normal(size=(5, 2, 3))
    model = xdl.nn.mlp(6, [4], 3)
    np.testing.assert_array_equal(model.predict(X), model.predict(X.reshape(5, 6)))
    np.testing.assert_array_equal(model.predict_proba(X), model.predict_proba(X.reshape(5, 6)))
    assert model.predict(np.zeros((0, 2, 3))).shape == (0,)


@pytest.mark.parametrize("labels", [[0, 1, np.nan, 1] * 5, ["a", "b", np.nan, "b"] * 5])
def test_split_refuses_nan_among_labels_of_objects(labels):
    """A pandas object column with NaN: NumPy cannot order a NaN, so each one was a class of its
    own (and the warning named a class of one that was not) — or strings stopped stratifying."""
    with pytest.raises(ValueError, match=r"^y contains NaN or Inf \(first at example 2\)"):
        split(np.zeros((20, 2)), np.array(labels, dtype=object))
    assert len(split(np.zeros((20, 2)), np.array(["a", None] * 10, dtype=object), stratify=False).y_dev) == 4


def test_split_shuffles_two_dimensional_continuous_targets():
    """(m, 2) regression targets: no classes (their argmax was taken as one), as the docstring says;
    rows that are distributions (soft labels) still stratify by their argmax."""
    rng = np.random.default_rng(0)
    X, targets = rng.normal(size=(100, 2)), rng.normal(size=(100, 2))
    for a, b in zip(split(X, targets, seed=1), split(X, targets, seed=1, stratify=False)):
        np.testing.assert_array_equal(a, b)
    soft = np.eye(2)[np.repeat([0, 1], [90, 10])] * 0.8 + 0.1
    assert (split(X, soft, seed=1).y_dev.argmax(axis=1) == 1).sum() == 2  # 10% of 20, kept


def test_standardizer_takes_an_empty_batch():
    s = Standardizer().fit(np.arange(8.0).reshape(2, 4))
    for shape in ((0, 4), (0, 2, 2)):
        empty = np.zeros(shape, dtype=np.float32)
        assert s.transform(empty).shape == s.inverse_transform(empty).shape == shape
        assert s.transform(empty).dtype == np.float32


def test_standardizer_refuses_a_result_beyond_the_inputs_dtype():
    s = Standardizer().fit(np.array([[0.0, 0.0], [0.001, 1.0]]))  # σ = 0.0005 and 0.5
    with pytest.raises(ValueError, match=r"^Standardizer.transform: X's example 1, feature 0 \(60000\) lies 1.2e\+08 "
                                         r"standard deviations \(σ = 0.0005\) from the mean, beyond the range of "
                                         r"float16 \(±6.55e\+04\)"):
        s.transform(np.array([[0, 0], [60000, 0]], dtype=np.float16))  # inf, with a RuntimeWarning only
    with pytest.raises(ValueError, match=r"^Standardizer.inverse_transform: X's example 0, feature 1 \(60000\) "
                                         r"becomes 3.00005e\+10, beyond the range of float16"):
        Standardizer().fit(np.array([[0.0, 0.0], [0.0, 1e6]])).inverse_transform(
            np.array([[0, 60000]], dtype=np.float16))
    assert s.transform(np.array([[0, 0]], dtype=np.float16)).dtype == np.float16


def test_standardizer_inverse_transform_names_the_example_beyond_the_dtype_in_any_piece(monkeypatch):
    """The example is counted from the start of X, not of the piece of rows it lies in."""
    monkeypatch.setattr(xdl.data.validation, "PIECE_VALUES", 4)  # two rows of two features a piece
    s = Standardizer().fit(np.array([[0.0, -1e6], [0.0, 1e6]]))  # μ = 0, σ = 1e6 for feature 1
    X = np.zeros((5, 2), dtype=np.float16)
    X[3, 1] = 60000
    with pytest.raises(ValueError, match=r"^Standardizer.inverse_transform: X's example 3, feature 1 \(60000\) "
                                         r"becomes 6e\+10, beyond the range of float16"):
        s.inverse_transform(X)


def test_sparse_matrices_are_named_with_the_way_out():
    sparse = pytest.importorskip("scipy.sparse")
    X, y = sparse.csr_matrix(np.eye(4)), np.arange(4) % 2
    model = xdl.nn.mlp(4, [3], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model), progress=False)
    for call in (lambda: split(X, y), lambda: Standardizer().fit(X), lambda: trainer.fit(X, y),
                 lambda: model.predict(X)):
        with pytest.raises(TypeError, match=r"^X is a sparse matrix \(csr_matrix\), which xdl does not take: pass a "
                                            r"dense array, X.toarray\(\)"):
            call()


def test_float16_targets_raise_no_overflow_warning():
    X, y = np.zeros((8, 2), dtype=np.float32), np.linspace(0, 1, 8).astype(np.float16)
    model = xdl.nn.mlp(2, [4], 1)
    trainer = Trainer(model, MeanSquaredError(), xdl.optim.Adam(model), epochs=1, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "overflow encountered in cast": the check cast 3.4e38 to float16
        trainer.fit(X, y)
        assert MeanSquaredError().prepare(y, (8,), model.backend, np.float32).dtype == np.float32


def test_split_of_no_labels_says_y_is_none():
    with pytest.raises(TypeError, match="^y is None; split needs the labels"):
        split(np.zeros((4, 2)), None)  # "y has 0 examples"


def test_one_hot_names_a_negative_class_index():
    with pytest.raises(ValueError, match=r"^one_hot: y has negative class indices \(min -1\)$"):
        one_hot([-1, 0])  # "labels must be in [0, 1)"
    with pytest.raises(ValueError, match=r"^one_hot: y has negative class indices \(min -2\)$"):
        one_hot([-2, 0], 3)


def test_augment_noise_must_be_a_real_number():
    with pytest.raises(ValueError, match=re.escape("noise must be a finite number ≥ 0, got np.complex128(1+2j)")):
        Augment((2, 2), noise=np.complex128(1 + 2j))  # its imaginary part was dropped, with a warning
    assert Augment((2, 2), noise=np.float32(0.5)).noise == 0.5


@pytest.mark.parametrize("args, message", [
    ((-5, 3), "m (number of examples) must be an integer ≥ 0, got -5"),  # gave []
    ((2.5, 3), "m (number of examples) must be an integer ≥ 0, got 2.5"),  # a bare TypeError
    ((5, 0), "batch_size must be a positive integer, got 0"),
    ((5, 2.0), "batch_size must be a positive integer, got 2.0")])
def test_batch_bounds_checks_its_arguments(args, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        batch_bounds(*args)
    assert batch_bounds(0, 3) == [] and batch_bounds(np.int64(5), 3) == [(0, 3), (3, 5)]


@pytest.mark.parametrize("batch_size", [True, 0, 2.0, "8"])
def test_evaluate_and_predict_check_their_batch_size(batch_size):
    X, y = np.zeros((4, 2)), np.zeros(4, dtype=np.int64)
    model = xdl.nn.mlp(2, [4], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model), progress=False)
    message = "^batch_size must be a positive integer, got " + re.escape(repr(batch_size))
    for call in (lambda: trainer.evaluate(X, y, batch_size=batch_size),
                 lambda: model.predict(X, batch_size=batch_size)):  # True ran batches of 1
        with pytest.raises(ValueError, match=message):
            call()


def test_datasets_name_an_unknown_name_of_any_type_and_a_noise_beyond_float32():
    with pytest.raises(ValueError, match=r"^unknown dataset \['moons'\]; choose one of"):
        xdl.datasets.load(["moons"])  # TypeError: unhashable type
    for make in (xdl.datasets.moons, xdl.datasets.circles, xdl.datasets.spirals):
        with pytest.raises(ValueError, match=r"noise must be a number in \[0, 1e\+36\]"):
            make(10, noise=1e40)  # X was inf (moons, circles) after the float32 cast
        assert np.isfinite(make(10, noise=1e36)[0]).all()
        for noise in (-0.0, np.float32(-0.0)):  # (NumPy's "scale < 0", naming no argument)
            np.testing.assert_array_equal(make(10, noise=noise)[0], make(10, noise=0)[0])


def test_a_sequential_of_its_own_forward_runs_whole_its_standardize_layer_included():
    """Only a model that runs its layers in order has its first layer applied on the host: a
    subclass with its own forward (a residual) would lose what it adds around them."""

    class Residual(xdl.nn.Sequential):
        def forward(self, x):
            return x[:, :2] + super().forward(x)

    standardize = xdl.nn.Standardize(2, mean=[1.0, 2.0], scale=[2.0, 4.0])
    model = Residual(standardize, xdl.nn.Dense(2, 2))
    X = np.array([[3.0, 6.0], [1.0, 2.0]])
    inputs, network = model.network_input(model.checked_input(X))
    assert network is model
    np.testing.assert_array_equal(inputs, X.astype(np.float32))
    with model.evaluating():
        expected = model(X.astype(np.float32)).numpy()
    np.testing.assert_array_equal(model.predict_outputs(X), expected)


def test_fit_many_standardizes_its_input_before_the_cast_as_one_model_does():
    """fit_many's shared Standardize layer loses no spread either: each of its models learns the
    offset feature, and predicts from raw X as the Trainer's model does."""
    from xdl.config import TrainConfig
    from xdl.train import fit_many

    X, y = offset_data(400)
    configs = [TrainConfig(hidden=[8], batch_norm=False, dropout=0.0, lr=lr, epochs=20, patience=0, seed=0)
               for lr in (1e-2, 3e-2)]
    results = fit_many(configs, X, y, standardize=Standardizer().fit(X).layer())
    for result in results:
        assert result.history.final()["train_accuracy"] > 0.95
        assert (result.model.predict(X) == y).mean() > 0.95


def test_a_resume_standardizes_with_the_checkpoint_s_statistics_and_knows_its_data(tmp_path):
    """The data digest is over the data as given (not as a model's statistics standardize it: a
    checkpoint of an earlier xdl, or a model made with placeholder statistics, resumes), and the
    host standardization uses the statistics the checkpoint restored."""
    from xdl.train import Checkpoint

    X, y = offset_data(300)

    def trainer(model, epochs, checkpoint=True):
        return Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-2), epochs=epochs, progress=False,
                       callbacks=[Checkpoint(tmp_path / "run")] if checkpoint else [])

    trainer(standardized_model(X), 3).fit(X, y)
    straight = trainer(standardized_model(X), 6, checkpoint=False)
    straight.fit(X, y)
    xdl.seed(0)
    placeholder = xdl.nn.mlp(1, [8], 2, standardize=xdl.nn.Standardize(1))  # statistics from the checkpoint
    resumed = trainer(placeholder, 6)
    resumed.fit(X, y, resume=tmp_path / "run")
    assert placeholder[0].mean[0] == straight.model[0].mean[0]
    for a, b in zip(straight.model.parameters(), placeholder.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_standardize_subclass_with_its_own_forward_runs_in_the_network():
    class Clipped(xdl.nn.Standardize):
        def forward(self, x):
            return super().forward(x).clip(-1.0, 1.0)

    model = xdl.nn.Sequential(Clipped(1, mean=[0.0], scale=[1.0]))
    X = np.array([[5.0]])
    assert model.network_input(model.checked_input(X))[1] is model
    assert model.predict_outputs(X)[0, 0] == 1.0


def test_mlp_classifier_s_model_predicts_as_the_classifier():
    from xdl.sklearn import MLPClassifier

    X, y = offset_data(400)
    clf = MLPClassifier(hidden=(8,), epochs=30, lr=1e-2, backend="numpy").fit(X, y)
    np.testing.assert_array_equal(clf.model_.predict(X), clf.predict(X))


def test_inputs_users_bring_end_to_end():
    """n_classes = 1 learned nothing and reported 100%; integer features beyond 2**24 were rounded by
    a Standardize layer called directly; timedelta64 features failed on a raw error."""
    import warnings

    from xdl.data import Standardizer
    from xdl.train import fit_many

    X = np.random.default_rng(0).normal(size=(40, 3))
    with pytest.raises(ValueError, match=r"n_classes must be an integer in \[2, "):
        fit_many([xdl.config.TrainConfig(hidden=[4], epochs=1, patience=0, batch_norm=False)], X,
                 np.zeros(40, int), n_classes=1)
    big = (2**30 + np.random.default_rng(0).integers(0, 200, size=(50, 2))).astype(np.int64)
    layer = Standardizer().fit(big).layer()
    np.testing.assert_allclose(layer(xdl.tensor(big)).numpy(), layer.host_forward(big, np.float32), rtol=1e-6)
    with pytest.raises(TypeError, match=r"X holds timedelta64\[s\] durations: convert"):
        xdl.data.split(np.arange(20, dtype="m8[s]").reshape(10, 2), np.arange(10) % 2)
    model = xdl.nn.mlp(4, [8], 2)
    trainer = xdl.train.Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-2), epochs=2,
                                progress=False)
    unscaled = np.random.default_rng(0).normal(size=(60, 4)) * 1e20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.warns(UserWarning, match=r"the run started at a cost of \S+, above 1e4 × ln C .*: inputs "
                                             r"far from unit scale or a large initialization — standardize the inputs "
                                             r"\(xdl.data.Standardizer\) or draw smaller initial weights"), \
                pytest.raises(FloatingPointError, match=r"the optimizer's state \(group 0's v\) became NaN or Inf in "
                                                        r"epoch 1: .*standardize the inputs"):
            # (it did not rise above its start, but Adam's v = g² overflowed: the first layer's steps were 0)
            trainer.fit(unscaled, (unscaled[:, 0] > 0).astype(int))


def test_integer_labels_held_as_objects_train_as_the_integers_do():
    """What np.asarray gives for a pandas nullable Int64 column: refused ("got dtype object") by
    Trainer.fit, fit_many and tune, while X of objects and split took it."""
    from xdl.data.validation import check_labels

    labels = np.array([0, 1, 2, 1] * 5, dtype=object)
    np.testing.assert_array_equal(check_labels(labels, 20), labels.astype(np.int64))
    X = np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32)
    fitted = []
    for y in (labels, labels.astype(np.int64)):
        xdl.seed(0)
        model = xdl.nn.mlp(3, [4], 3)
        xdl.train.Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.SGD(model), epochs=2,
                          progress=False).fit(X, y)
        fitted.append(model.state_dict())
    for name, value in fitted[0].items():
        np.testing.assert_array_equal(value, fitted[1][name])
    with pytest.raises(ValueError, match=r"y must hold integer class indices, got dtype object holding values that "
                                         r"are not numbers \(strings\? map them to 0 … C − 1 first"):
        check_labels(np.array(["cat", "dog"], dtype=object), 2)


def test_labels_of_text_are_named_with_the_way_out_as_labels_of_objects_are():
    """np.array(["cat", "dog"]) (or np.loadtxt(..., dtype=str)) was refused as "got dtype <U3",
    while the same labels held as objects (a pandas column) were told how to map them."""
    from xdl.data.validation import check_labels

    for labels in (np.array(["cat", "dog"]), np.array([b"cat", b"dog"])):
        with pytest.raises(ValueError, match=r"^y must hold integer class indices, got strings \(dtype [<|][US]3\): "
                                             r"map them to 0 … C − 1 first"):
            check_labels(labels, 2)


def test_one_hot_takes_whole_number_labels_read_as_floats():
    """np.loadtxt reads a CSV's label column as 0.0, 1.0, …: fit and split took them, one_hot (as
    Keras's to_categorical does) refused them; fractions and NaN are still no class indices."""
    np.testing.assert_array_equal(one_hot(np.array([2.0, 0.0]), 3), one_hot([2, 0], 3))
    np.testing.assert_array_equal(one_hot(np.array([2.0, 0.0], dtype=np.float16)), one_hot([2, 0]))
    for labels in (np.array([0.5, 1.0]), np.array([0.0, np.nan])):
        with pytest.raises(ValueError, match=r"^one_hot: y must be \(m,\) integer class indices"):
            one_hot(labels)
    with pytest.raises(ValueError, match=r"^one_hot: y has negative class indices \(min -1.0\)"):
        one_hot(np.array([-1.0, 1.0]))
    with pytest.raises(ValueError, match="^one_hot: y has class index 1e\\+30; the number of classes must be at most"):
        one_hot(np.array([1e30]))  # (compared as given: an int64 cast of it would wrap)


def test_fit_many_takes_one_hot_labels_as_a_trainer_does():
    """fit_many refused (m, C) one-hot rows ("y must be (m,) class indices for fit_many"), which
    a Trainer's SoftmaxCrossEntropy takes: they name each example's class exactly. The rows' width is
    the number of classes, a class no example has included; soft rows are still refused, named."""
    from xdl.config import TrainConfig
    from xdl.train import fit_many

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)).astype(np.float32), np.arange(40) % 3
    configs = [TrainConfig(hidden=[4], epochs=2, patience=0, batch_norm=False, seed=k) for k in range(2)]
    by_index = fit_many(configs, X, y, dev=(X, y), n_classes=4)
    by_row = fit_many(configs, X, np.eye(4)[y], dev=(X, np.eye(4, dtype=bool)[y]))  # class 3: in no example
    for a, b in zip(by_index, by_row):
        assert a.history.records[-1]["dev_cost"] == b.history.records[-1]["dev_cost"]
        np.testing.assert_array_equal(a.model.predict(X), b.model.predict(X))
    with pytest.raises(ValueError, match=r"^y must be \(m,\) class indices or \(m, C\) one-hot rows \(0s and a single "
                                         r"1\) for fit_many, got shape \(40, 3\)"):
        fit_many(configs, X, np.full((40, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"^y_dev's one-hot rows have 3 columns, y's 4"):
        fit_many(configs, X, np.eye(4)[y], dev=(X, np.eye(3)[y]))
    with pytest.raises(ValueError, match=r"^n_classes=5, but the one-hot label rows have 4 columns"):
        fit_many(configs, X, np.eye(4)[y], n_classes=5)
    with pytest.raises(ValueError, match=r"^y_dev has class index 4, outside the 4 classes the one-hot label rows "):
        fit_many(configs, X, np.eye(4)[y], dev=(X, y + 2))


def test_split_keeps_missing_values_for_filling_from_the_training_part():
    """split refused X with a NaN ("X contains NaN or Inf"), as scikit-learn's train_test_split does
    not: missing values had to be filled before the split, from every part's values — dev's and
    test's leaking into train's. It splits them now; fit still refuses them."""
    X = np.arange(40.0).reshape(20, 2)
    X[3, 1] = np.nan
    s = split(X, np.arange(20) % 2, seed=0)
    assert sum(int(np.isnan(part).sum()) for part in (s.X_train, s.X_dev, s.X_test)) == 1
    part = next(p for p in (s.X_train, s.X_dev, s.X_test) if np.isnan(p).any())
    assert np.array_equal(part[np.isnan(part).any(axis=1)][0, 0], 6.0)  # row 3, kept as it was
    model = xdl.nn.mlp(2, [4], 2)
    with pytest.raises(ValueError, match=r"^X contains NaN or Inf"):
        Trainer(model, SoftmaxCrossEntropy(), xdl.optim.SGD(model), epochs=1, progress=False).fit(
            X, np.arange(20) % 2)


@pytest.mark.parametrize("loss, outputs", [(SoftmaxCrossEntropy(), (4, 3)), (MeanSquaredError(), (4, 1)),
                                           (xdl.losses.BinaryCrossEntropy(), (4, 1))])
@pytest.mark.parametrize("targets", [None, np.array(None)])
def test_a_loss_names_targets_that_are_none(loss, outputs, targets):
    """loss(outputs, None) — labels forgotten, a dict lookup that missed — failed inside the check of
    targets held as objects, with "'bool' object has no attribute 'astype'" (NumPy's frompyfunc of a
    0-d array gives a Python bool): it names the targets now, as a TypeError."""
    z = xdl.tensor(np.zeros(outputs, np.float32))
    with pytest.raises(TypeError, match=f"{type(loss).__name__}: (labels|targets) (is None|must hold real numbers)"):
        loss(z, targets)


@pytest.mark.parametrize("make, name", [
    (lambda big: xdl.nn.LeakyReLU(big), "LeakyReLU: slope"), (lambda big: xdl.nn.BatchNorm(3, eps=big), "BatchNorm: eps"),
    (lambda big: xdl.train.EarlyStopping(min_delta=big), "EarlyStopping: min_delta"),
    (lambda big: Augment((2, 2), noise=big), "noise"),
    (lambda big: xdl.losses.l2(xdl.nn.mlp(3, [4], 2), big), "l2: lambd"),
])
def test_a_number_check_takes_python_ints_of_any_size(make, name):
    """check_number: a Python int is a number however large; NumPy's isfinite of 10**30 raised its own
    TypeError ("ufunc 'isfinite' not supported"), float(10**400) an OverflowError, neither naming the
    argument. 10**30 is a finite slope; 10**400 is beyond floats: inf, refused by name where inf is."""
    assert xdl.nn.LeakyReLU(10**30).slope == 1e30
    with pytest.raises(ValueError, match=f"{re.escape(name)} must be"):
        make(10**400)


class Frame:
    """What fit and predict read of a pandas DataFrame (pandas is no test dependency): named
    ``columns`` and the values by ``__array__``; ``frame[names]`` selects columns by name."""

    def __init__(self, values, columns):
        self.values, self.columns = np.asarray(values), list(columns)

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)

    def __len__(self):
        return len(self.values)

    def __getitem__(self, names):
        return Frame(self.values[:, [self.columns.index(n) for n in names]], names)


def test_a_frame_with_the_model_s_columns_in_another_order_is_refused_naming_the_order(tmp_path):
    """Fitted on a frame of columns a, b, c, predict on the same frame's columns as c, b, a read
    them by position: each feature went into another's weights and 57% of the predictions changed,
    without a word, where scikit-learn refuses ("Feature names must be in the same order as they
    were in fit"). The model keeps the names (``feature_names_in_``, saved with it)."""
    X = np.random.default_rng(0).normal(size=(120, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    frame = Frame(X, ["a", "b", "c"])
    model = xdl.nn.mlp(3, [8], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-2), epochs=2, progress=False)
    trainer.fit(frame, y)
    assert model.feature_names_in_ == ("a", "b", "c")
    np.testing.assert_array_equal(model.predict(frame), model.predict(X))  # (same order, and arrays: as before)
    loaded = xdl.load(xdl.save(model, tmp_path / "model.npz"))
    for call in (lambda: model.predict(frame[["c", "b", "a"]]), lambda: trainer.evaluate(frame[["c", "b", "a"]], y),
                 lambda: model(frame[["c", "b", "a"]]), lambda: loaded.predict_proba(frame[["c", "b", "a"]])):
        with pytest.raises(ValueError, match=r"columns are the model's features in another order \(the model was "
                                             r"trained on \['a', 'b', 'c'\], got \['c', 'b', 'a'\]\): reorder them"):
            call()
    with pytest.raises(ValueError, match=r"^X's columns are not the features the model was trained on \(\['a', 'b', "
                                         r"'c'\]\): missing \['c'\]; unexpected \['d'\]"):
        model.predict(Frame(X, ["a", "b", "d"]))
    with pytest.raises(ValueError, match=r"^X's column names repeat: 'a' \(2 times\); each feature's name must be "
                                         r"its own \(rename them, or pass X.to_numpy\(\) to go by position\)$"):
        model.predict(Frame(X, ["a", "a", "b"]))  # (as scikit-learn refuses them: their order cannot be checked)
    other = xdl.nn.mlp(4, [8], 2)
    with pytest.raises(ValueError, match=r"^X's column names repeat: 'b' \(3 times\)"):
        Trainer(other, SoftmaxCrossEntropy(), xdl.optim.SGD(other, lr=0.1), progress=False).fit(
            Frame(np.zeros((4, 4)), ["a", "b", "b", "b"]), y[:4])
    trainer.epochs = 3
    trainer.fit(X, y)  # fitted on an array, the model has no names, as scikit-learn's fit forgets them
    assert model.feature_names_in_ is None and model.predict(frame[["c", "b", "a"]]).shape == (120,)


def test_a_dev_frame_of_the_training_columns_in_another_order_is_refused_by_tune():
    """`tune` read X_dev by position, as a Trainer's and fit_many's dev frames no longer are: a dev
    frame of X's columns as c, b, a scored every trial on misread examples, and the best one was
    chosen by them, without a word."""
    from xdl.config import TrainConfig
    from xdl.tune import tune

    X = np.random.default_rng(0).normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    frame = Frame(X, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"^X_dev's columns are the model's features in another order"):
        tune(frame, y, (frame[["c", "b", "a"]], y), trials=1, base=TrainConfig(epochs=1, hidden=[4]))


def test_a_wide_frame_s_wrong_columns_are_named_in_a_short_message():
    """Every name was listed, three times for a reordering: 50,000 characters for 2,000 columns, and
    found by lists (``n not in names`` per name: 11 s to say it for 20,000). At most `SHOWN_NAMES`
    of each kind, and where the order first differs."""
    from xdl.data.validation import SHOWN_NAMES, check_feature_names

    names = tuple(f"c{i}" for i in range(2000))
    frame = Frame(np.zeros((1, 2000)), names[:-1] + ("zz",))
    with pytest.raises(ValueError, match=r"^X's columns are not the features the model was trained on \(\['c0', "
                                         r".*'c4', … 1995 more\]\): missing \['c1999'\]; unexpected \['zz'\]$") as e:
        check_feature_names(frame, names)
    assert len(str(e.value)) < 200 and SHOWN_NAMES == 5
    with pytest.raises(ValueError, match=r"^X's columns are the model's features in another order \(column 0 is "
                                         r"'c1999', the model was trained with 'c0' there\): reorder them, "
                                         r"X\[list\(model.feature_names_in_\)\]$"):
        check_feature_names(Frame(np.zeros((1, 2000)), names[::-1]), names)


def test_a_generator_or_a_loader_of_batches_is_refused_as_no_array():
    """Keras's ``fit(generator)`` habit, a PyTorch DataLoader-like object of (X, y) batches, or the
    pair itself given as X: NumPy read each as one 0-d object (or a ragged list), refused as "X must be
    2-D (examples, features), got shape ()", which said neither what X was nor that xdl takes arrays."""
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = np.arange(40) % 2

    class Loader:
        def __iter__(self):
            return ((X[i:i + 10], y[i:i + 10]) for i in range(0, 40, 10))

    model = xdl.nn.mlp(3, [4], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model), epochs=1, progress=False)
    for call, kind in ((lambda: trainer.fit(iter(Loader()), None), "generator"), (lambda: trainer.fit(Loader(), None),
                       "Loader"), (lambda: model.predict(iter(X)), "iterator")):
        with pytest.raises(TypeError, match=rf"^X must be an array of examples \(m, features\), got an object of type "
                                            rf"{kind}: xdl takes the whole data set as arrays, not a generator"):
            call()
    with pytest.raises(ValueError, match=r"got a pair of arrays of shapes \(40, 3\) and \(40,\) .*fit\(X, y\)"):
        trainer.fit((X, y), None)
    with pytest.raises(TypeError, match=r"^X is a structured array \(fields a, b\); .*structured_to_unstructured"):
        model.predict(np.zeros(4, dtype=[("a", "f4"), ("b", "f4")]))


def test_a_missing_value_held_as_an_object_is_named_as_a_nan_is():
    """What np.asarray gives for a pandas nullable column with a missing value: objects holding
    ``pd.NA``, of which NumPy makes no float, so X was refused as holding "values that are not
    (strings?)" and y as text — the missing value went unnamed. Read as NaN, its place is named."""
    class NA:  # (pandas' pd.NA is of a class of this name; pandas is no test dependency)
        pass
    NA.__name__ = "NAType"
    X = np.array([[1, 2.0], [NA(), 3.0], [4, 5.0]], dtype=object)
    with pytest.raises(ValueError, match=r"^X contains NaN or Inf \(first at example 1, feature 0\)"):
        xdl.nn.mlp(2, [2], 2).predict(X)
    with pytest.raises(ValueError, match=r"^y must hold integer class indices, got NaN or Inf \(first at example 2\)"):
        xdl.data.validation.check_labels(np.array([1, 0, NA()], dtype=object), 3)
    with pytest.raises(TypeError, match=r"holding values that are not numbers \(first: 'a' at example 0, feature 1\)"):
        xdl.nn.mlp(2, [2], 2).predict(np.array([[1, "a"]], dtype=object))


def test_a_label_that_is_no_whole_number_is_named_with_its_example():
    """Whole-number floats are class indices (1.0, 0.0); one that is not was refused as "got dtype
    float64" alone, which reads as "floats are refused" and sent users to y.astype(int), truncating
    the 0.5 or the 0.9999999 of a computed label to a class without a word."""
    y = np.array([1.0, 0.0, 0.9999999, 0.5])
    with pytest.raises(ValueError, match=r"^y must hold integer class indices, got dtype float64 with a value that is "
                                         r"no whole number \(0.9999999 at example 2\): .*np.rint\(y\)"):
        xdl.data.validation.check_labels(y, 4)
    np.testing.assert_array_equal(xdl.data.validation.check_labels(np.rint(y[:3]), 3), [1, 0, 1])
    # with no model's width, the labels set a classifier's (fit_many's, tune's): values to regress on are
    # told that, not only to be rounded (which trained a softmax over every whole number up to the largest)
    with pytest.raises(ValueError, match=r"np.rint\(y\); .*; values to regress on are no classes: this trains a "
                                         r"classifier \(a Trainer with MeanSquaredError regresses\)$"):
        fit_many([TrainConfig(epochs=1)], np.ones((4, 2)), 1e-3 * y)
    with pytest.raises(ValueError, match=r"rows$"):  # (a model's own width: classes it has)
        xdl.data.validation.check_labels(y, 4, n_classes=2)


def test_labels_whose_largest_sets_a_width_far_beyond_them_are_warned_of():
    """Whole-number values to regress on (prices) are valid class indices: fit_many and tune built a
    softmax over every whole number up to the largest (310,001 classes for 4 labels), unsaid."""
    from xdl.tune.search import _check_data

    X, prices = np.ones((4, 2)), np.array([150_000, 230_000, 199_000, 310_000])
    said = r"^the largest label, 310000, makes 310001 classes for 4 distinct labels: .*MeanSquaredError regresses"
    with pytest.warns(UserWarning, match=said):
        fit_many([TrainConfig(epochs=1, hidden=[2], batch_norm=False, dropout=0, patience=0)], X, prices)
    with pytest.warns(UserWarning, match=said):
        _check_data(X, prices, (X, prices), "float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the dev labels are labels too: 2 in y, 151 with dev's, 1,501 classes
        y2, y_dev = np.array([0, 1500, 0, 1500]), np.arange(0, 1501, 10)
        X_dev = np.ones((len(y_dev), 2))
        fit_many([TrainConfig(epochs=1, hidden=[2], batch_norm=False, dropout=0, patience=0)], X, y2,
                 dev=(X_dev, y_dev))
        _check_data(X, y2, (X_dev, y_dev), "float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # classes with gaps, or many classes each seen: no word
        xdl.data.validation.note_label_width([np.array([3, 7, 999])], 1000)
        xdl.data.validation.note_label_width([np.arange(2000)], 2000)
        # one-hot rows of 1,200 columns, 2 classes seen: the width is the columns given, no largest label's
        one_hot = np.eye(1200, dtype=np.float32)[[0, 1, 0, 1]]
        fit_many([TrainConfig(epochs=1, hidden=[2], batch_norm=False, dropout=0, patience=0)], X, one_hot)



def test_a_label_width_is_warned_of_only_beyond_ten_times_the_distinct_labels():
    """The word is for a width of more than `MANY_CLASSES` classes and more than `CLASSES_PER_LABEL`
    times the distinct labels: 200 labels making 2,000 classes (each class seen or one of 9 unseen
    neighbours) are classes; 2,001 are not said to be either, one more is a width beyond them."""
    from xdl.data.validation import CLASSES_PER_LABEL, MANY_CLASSES, note_label_width

    labels = np.arange(0, 2000, 10)  # 200 distinct labels
    assert CLASSES_PER_LABEL * len(labels) == 2000 > MANY_CLASSES
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        note_label_width([labels], CLASSES_PER_LABEL * len(labels))
    with pytest.warns(UserWarning, match=r"^the largest label, 2000, makes 2001 classes for 200 distinct labels"):
        note_label_width([labels], CLASSES_PER_LABEL * len(labels) + 1)

def test_a_column_of_class_indices_trains_as_the_indices():
    """Keras's sparse labels (m, 1), a frame's label column: refused by the softmax loss ("labels of
    shape (m, 1)"), where BinaryCrossEntropy took them. Read as (m,), in the Trainer, fit_many and the
    loss alike; its values checked as indices are."""
    from xdl.config import TrainConfig
    from xdl.train import fit_many

    X = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    y = np.arange(60) % 3
    runs = []
    for labels in (y, y[:, None]):
        xdl.seed(0)
        model = xdl.nn.mlp(3, [4], 3)
        trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model), epochs=2, seed=0, progress=False)
        record = trainer.fit(X, labels, dev=(X, labels)).records[-1]
        runs.append(([record[k] for k in ("train_cost", "dev_cost", "dev_accuracy")], trainer.evaluate(X, labels)))
    assert runs[0] == runs[1]
    configs = [TrainConfig(hidden=[4], epochs=1, patience=0, batch_norm=False, seed=k) for k in range(2)]
    many = [fit_many(configs, X, labels)[0].history.records[-1]["train_cost"] for labels in (y, y[:, None])]
    assert many[0] == many[1]
    logits = xdl.tensor(X)
    assert SoftmaxCrossEntropy()(logits, y[:, None]).item() == SoftmaxCrossEntropy()(logits, y).item()
    with pytest.raises(ValueError, match=r"y has class index 3, outside the model's 3 classes"):
        trainer.evaluate(X, (y + 1)[:, None])


def test_a_dev_frame_of_x_s_columns_in_another_order_is_refused_on_a_first_fit():
    """The model takes X's columns once the run begins: on its first fit a dev frame of them as c,
    b, a was read by position — the dev costs, early stopping and the best epoch of a model that
    saw each feature in another's place — without a word; a later fit refused it."""
    X = np.random.default_rng(0).normal(size=(120, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    frame = Frame(X, ["a", "b", "c"])
    model = xdl.nn.mlp(3, [8], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-2), epochs=2, progress=False)
    with pytest.raises(ValueError, match=r"^X_dev's columns are the model's features in another order"):
        trainer.fit(frame, y, dev=(frame[["c", "b", "a"]], y))
    assert trainer.epoch == 0 and model.feature_names_in_ is None  # (refused before anything ran)
    trainer.fit(frame, y, dev=(frame, y))


def test_fit_many_models_keep_a_frame_s_columns_and_refuse_another_order():
    """As a Trainer's model (`Module.feature_names_in_`): a model fit_many trained on a frame
    predicted on a frame of its columns in another order by position, silently."""
    from xdl.config import TrainConfig
    from xdl.train import fit_many

    X = np.random.default_rng(0).normal(size=(120, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    frame = Frame(X, ["a", "b", "c"])
    configs = [TrainConfig(hidden=[4], epochs=1, patience=0, seed=seed) for seed in (0, 1)]
    with pytest.raises(ValueError, match=r"^X_dev's columns are the model's features in another order"):
        fit_many(configs, frame, y, dev=(frame[["c", "b", "a"]], y))
    model = fit_many(configs, frame, y)[1].model
    assert model.feature_names_in_ == ("a", "b", "c")
    with pytest.raises(ValueError, match=r"^X's columns are the model's features in another order"):
        model.predict(frame[["c", "b", "a"]])


def test_fit_many_refuses_images_of_another_shape_with_as_many_pixels():
    """As a Trainer's `Augment.check`: (4, 16) examples were flipped and shifted as 8×8 images."""
    from xdl.config import TrainConfig
    from xdl.train import fit_many

    X = np.random.default_rng(0).normal(size=(64, 4, 16)).astype(np.float32)
    config = TrainConfig(hidden=[4], epochs=1, patience=0, augment_flip=True, dataset="digits")
    with pytest.raises(ValueError, match=r"X's examples must be 8×8 \(or flat rows of 64\), got examples of shape "
                                         r"\(4, 16\)"):
        fit_many([config], X, np.arange(64) % 10)
    fit_many([config], X.reshape(64, 8, 8), np.arange(64) % 10)


def test_a_dict_of_columns_is_named_as_named_inputs_not_as_a_loader():
    """A dict is iterable too: refused as a generator or a loader of batches, it was told to join
    batches it has none of; a dict of columns is told to stack them as features."""
    model = xdl.nn.mlp(2, [2], 2)
    with pytest.raises(TypeError, match=r"^X must be an array of examples \(m, features\), got an object of type dict "
                                        r"\(named inputs\?\): stack its columns as features, np\.column_stack"):
        model.predict({"a": [1.0, 2.0], "b": [3.0, 4.0]})


def test_a_frame_of_columns_not_all_named_by_strings_keeps_no_names():
    """As scikit-learn's ``feature_names_in_``: names are kept only where every column's is a
    string — a frame of columns 0 and 1 has none (it is read by position, as an array)."""
    from xdl.data.validation import feature_names

    assert feature_names(Frame(np.zeros((2, 2)), [0, 1])) is None
    assert feature_names(Frame(np.zeros((2, 2)), ["a", "b"])) == ("a", "b")


def test_a_frame_whose_column_names_mix_strings_and_others_is_refused():
    """scikit-learn refuses a frame of columns "age" and 0 ("Feature names are only supported if all
    input features have string names"); kept as no names, a Standardizer (or a model) fitted on it
    scaled the same frame's columns reordered — 0, "age" — each by the other's μ and σ, silently."""
    X = np.array([[20.0, 1000.0], [30.0, 2000.0], [40.0, 3000.0]])
    frame = Frame(X, ["age", 0])
    model = xdl.nn.mlp(2, [2], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model), epochs=1, progress=False)
    for fit in (lambda: Standardizer().fit(frame), lambda: trainer.fit(frame, np.array([0, 1, 0]))):
        with pytest.raises(TypeError, match=r"^X's column names mix strings with other types \(int, str\): .*"
                                            r"X\.columns = X\.columns\.astype\(str\)"):
            fit()


def test_a_later_fit_of_a_batch_refuses_a_frame_of_its_columns_in_another_order():
    """A ManyTrainer interrupted and fitted again goes on with the models the first fit named the
    columns of: a frame of them in another order was read by position, into each other's weights."""
    import os
    import signal

    from xdl.config import TrainConfig
    from xdl.train import Callback, Interrupted
    from xdl.train.many import ManyTrainer

    class InterruptAfterFirst(Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 1:
                os.kill(os.getpid(), signal.SIGINT)  # (stopped cleanly between epochs: fit goes on)

    X = np.random.default_rng(0).normal(size=(120, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    frame = Frame(X, ["a", "b", "c"])
    batch = ManyTrainer([TrainConfig(hidden=[4], epochs=3, patience=0, seed=s) for s in (0, 1)],
                        callbacks=[InterruptAfterFirst()])
    with pytest.raises(Interrupted):
        batch.fit(frame, y)
    with pytest.raises(ValueError, match=r"^X's columns are the model's features in another order"):
        batch.fit(frame[["c", "b", "a"]], y)
    assert batch.fit(frame, y)[0].status == "completed"


def test_a_standardizer_fitted_on_a_frame_refuses_its_columns_in_another_order():
    """Fitted on a, b, c, transform of c, b, a scaled each column by another's μ and σ, silently
    (scikit-learn's StandardScaler refuses it)."""
    X = np.random.default_rng(0).normal([0.0, 10.0, 100.0], [1.0, 2.0, 3.0], size=(50, 3))
    frame = Frame(X, ["a", "b", "c"])
    scaler = xdl.data.Standardizer().fit(frame)
    np.testing.assert_array_equal(scaler.transform(frame), scaler.transform(X))  # (same order, an array: as before)
    for call in (scaler.transform, scaler.inverse_transform):
        with pytest.raises(ValueError, match=r"^X's columns are the Standardizer's features in another order \(the "
                                             r"Standardizer was fitted on \['a', 'b', 'c'\], got \['c', 'b', 'a'\]\)"):
            call(frame[["c", "b", "a"]])


def test_split_of_a_frame_gives_frames_that_keep_the_columns_names():
    """train_test_split gives a data frame's rows as a frame; split gave arrays, so a model fitted on
    s.X_train kept no names and read a frame of its columns in another order by position, silently
    (the README's refusal lost on its own workflow: split, then fit)."""
    class IndexedFrame(Frame):  # (pandas' iloc: rows by position, as a frame)
        @property
        def iloc(self):
            return _Rows(lambda index: IndexedFrame(self.values[index], self.columns))

    class _Rows:
        def __init__(self, take):
            self.take = take

        def __getitem__(self, index):
            return self.take(index)

    X = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    s = split(IndexedFrame(X, ["a", "b", "c"]), y, seed=0)
    assert all(isinstance(part, IndexedFrame) and part.columns == ["a", "b", "c"] for part in s[::2])
    np.testing.assert_array_equal(np.asarray(s.X_train), split(X, y, seed=0).X_train)  # the same rows
    model = xdl.nn.mlp(3, [4], 2)
    Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model), epochs=1, progress=False).fit(s.X_train, s.y_train)
    with pytest.raises(ValueError, match=r"columns are the model's features in another order"):
        model.predict(s.X_test[["c", "b", "a"]])


def _presented(X, how):
    """The same numbers as ``X`` (m, n) in another container or memory layout."""
    import pandas

    if how == "fortran":
        return np.asfortranarray(X)
    if how == "view":  # every other column of a wider array
        wide = np.zeros((len(X), 2 * X.shape[1]))
        wide[:, ::2] = X
        return wide[:, ::2]
    if how == "strided":
        return np.repeat(X, 2, axis=0)[::2]
    if how == "list":
        return X.tolist()
    return pandas.DataFrame(X, index=np.arange(len(X))[::-1] + 7)  # (a frame's to_numpy() is in Fortran order)


def test_the_same_data_in_any_container_or_layout_trains_to_the_same_bits():
    """A generated equivalence test: X in Fortran order, as a view, a strided copy, a list or a data
    frame (and y as a list or a series of another index, int8 or an (m, 1) column), with the model's
    `Standardizer` fitted on X as given, trains a float64 model to the reference's weights and history
    bit for bit and predicts the same. The statistics were summed in another order for a
    Fortran-ordered X (a frame's), 1 ulp off, and the weights followed."""
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("hypothesis")
    from hypothesis import given, settings, strategies as st

    def run(X, y, seed):
        xdl.seed(seed)
        model = xdl.nn.mlp(np.shape(X)[1], [4], 3, standardize=Standardizer().fit(X).layer()).astype(np.float64)
        trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-2), batch_size=8, epochs=2,
                          seed=0, progress=False)
        history = trainer.fit(X, y, dev=(X, y))
        weights = np.concatenate([p.data.ravel() for p in model.parameters()])
        records = [{k: v for k, v in r.items() if "second" not in k} for r in history.records]
        return weights, records, model.predict_proba(X)

    @settings(max_examples=25, deadline=None, derandomize=True)
    @given(m=st.integers(2, 40), n=st.integers(1, 4), seed=st.integers(0, 2**16),
           how=st.sampled_from(["fortran", "view", "strided", "list", "frame"]),
           labels=st.sampled_from(["list", "series", "int8", "column"]))
    def check(m, n, seed, how, labels):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(m, n)) * rng.uniform(0.1, 10) + rng.uniform(-100, 100)
        y = rng.integers(0, 3, m)
        given_y = {"list": y.tolist(), "series": pandas.Series(y, index=np.arange(m) * 3), "int8": y.astype(np.int8),
                   "column": y[:, None]}[labels]
        reference, got = run(X, y, seed), run(_presented(X, how), given_y, seed)
        np.testing.assert_array_equal(got[0], reference[0])
        assert got[1] == reference[1]
        np.testing.assert_array_equal(got[2], reference[2])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a merged last batch, a lone class: the same for both)
        check()


def _na():
    """A stand-in for pandas' ``pd.NA`` (of a class of this name; pandas is no test dependency)."""
    class NA:
        pass
    NA.__name__ = "NAType"
    return NA()


def test_calling_a_model_on_numbers_held_as_objects_gives_what_predict_gives():
    """What np.asarray gives for a frame of float and bool columns (pd.get_dummies' output beside
    floats) or of nullable ones: objects holding numbers. ``predict`` read them, ``model(X)`` refused
    them as "tensor: data of dtype object is not supported", naming neither x nor its values."""
    xdl.seed(0)
    model = xdl.nn.mlp(3, [4], 2)
    X = np.array([[0.5, True, 2.0], [1.5, False, -1.0]], dtype=object)
    out = model(X)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(xdl.to_numpy(out), model.predict_outputs(X))
    np.testing.assert_array_equal(xdl.to_numpy(out), xdl.to_numpy(model(X.astype(np.float32))))
    standardized = xdl.nn.mlp(3, [4], 2, standardize=Standardizer().fit(X).layer())
    np.testing.assert_array_equal(xdl.to_numpy(standardized(X)), standardized.predict_outputs(X))
    with pytest.raises(TypeError, match=r"^x must hold numbers, got dtype object holding values that are not"):
        model(np.array([[0.5, "a", 2.0]], dtype=object))
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"a": [0.5, 1.5], "b": [True, False], "c": [2.0, -1.0]})
    np.testing.assert_array_equal(xdl.to_numpy(model(frame)), xdl.to_numpy(out))


@pytest.mark.parametrize("value", ["a", "1,5", b"x", object(), [1.0], {"a": 1}, 1j])
def test_a_feature_that_is_no_number_is_named_with_its_place(value):
    """A frame with a text or categorical column was refused as "X must hold numbers, got dtype object
    holding values that are not (strings?)": no number missing, nor the value or where it was. The first
    such value is named, at its example and feature, by every way in (fit, evaluate, predict, model(x),
    Standardizer), before any work; numbers held as objects, None and pd.NA among them, are still read."""
    xdl.seed(0)
    rng = np.random.default_rng(0)
    for example, feature in [(0, 0), (3, 2), (7, 1)]:
        X = rng.standard_normal((8, 3)).astype(object)
        X[1, 1] = None  # a missing value before it: not what is named
        X[example, feature] = value
        X[7, 2] = "later"  # a second one after it: the first is named
        said = re.escape(f"must hold numbers, got dtype object holding values that are not numbers (first: "
                         f"{value!r} at example {example}, feature {feature})")
        model = xdl.nn.mlp(3, [4], 2)
        before = copy.deepcopy(model.state_dict())
        trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model), batch_size=4, epochs=1, progress=False)
        for call in (lambda: trainer.fit(X, np.arange(8) % 2), lambda: trainer.evaluate(X, np.arange(8) % 2),
                     lambda: model.predict(X), lambda: model(X), lambda: Standardizer().fit(X)):
            with pytest.raises(TypeError, match=rf"^(X|x) {said}$"):
                call()
        assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
        assert trainer.optimizer.t == 0


def test_a_missing_value_among_targets_held_as_objects_is_named_as_a_nan_is(backend):
    """A pandas nullable boolean (or, before pandas 3, Int64) column with a missing value reads as
    objects holding ``pd.NA``: BinaryCrossEntropy and MeanSquaredError refused it as "must hold
    real numbers", leaving the gap unnamed, where SoftmaxCrossEntropy's labels and X named it."""
    z = xdl.tensor(np.zeros(3), backend=backend)
    for loss in (BinaryCrossEntropy(), MeanSquaredError()):
        with pytest.raises(ValueError, match=r"targets contain NaN or Inf"):
            loss(z, np.array([True, _na(), False], dtype=object))
        assert loss(z, np.array([True, False, True], dtype=object)).item() == \
            pytest.approx(loss(z, np.array([1.0, 0.0, 1.0])).item())


def test_split_names_a_missing_label_held_as_an_object_as_a_nan():
    """pandas' ``pd.NA`` in a nullable string or boolean column of labels: split refused it as labels
    that "can be sorted" only, saying to pass stratify=False — which then kept it, a label of no
    class, in one of the parts."""
    y = np.array(["a", "b"] * 5, dtype=object)
    y[7] = _na()
    for stratify in (None, False):
        with pytest.raises(ValueError, match=r"^y contains NaN or Inf \(first at example 7\)"):
            split(np.zeros((10, 2)), y, stratify=stratify)


def test_shown_lists_up_to_five_column_names_whole_and_counts_the_rest():
    from xdl.data.validation import shown

    assert shown("abcde") == "['a', 'b', 'c', 'd', 'e']"  # five: all of them, no "… 0 more"
    assert shown("abcdef") == "['a', 'b', 'c', 'd', 'e', … 1 more]"
    assert shown([]) == "[]"


def test_python_value_gives_the_python_number_of_any_numpy_scalar():
    """A longdouble's item() is itself: a search value of one failed as "not JSON serializable"."""
    from xdl.files import python_value
    from xdl.tune.space import value_key

    for value, expected in ((np.longdouble(0.5), 0.5), (np.float32(0.25), 0.25), (np.array(3), 3), (np.int8(-2), -2),
                            (np.bool_(True), True), ("a", "a"), ([1], [1])):
        assert python_value(value) == expected and type(python_value(value)) is type(expected)
    assert value_key(np.longdouble(0.5)) == value_key(0.5)


def test_masked_values_are_missing_values_not_the_numbers_under_the_mask():
    """A masked array (np.genfromtxt(usemask=True), a FITS or netCDF column with gaps): NumPy's
    asarray drops the mask, so fit, predict, Standardizer and the losses read the fill value under
    it (-9999 here: the Standardizer's mean came out -416) without a word. A masked value is a
    missing value, NaN, as pandas' pd.NA: refused by name where NaN is, kept as NaN by split."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(24, 3)), np.arange(24) % 3
    Xm = np.ma.masked_array(X.copy(), mask=np.zeros(X.shape, bool))
    Xm[3, 2] = np.ma.masked
    Xm.data[3, 2] = -9999.0
    xdl.seed(0)
    model = xdl.nn.mlp(3, [4], 3)
    trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=0.1), epochs=1, progress=False)
    said = "X contains NaN, Inf or masked values (first at example 3, feature 2)"
    for call in (lambda: trainer.fit(Xm, y), lambda: model.predict(Xm), lambda: Standardizer().fit(Xm)):
        with pytest.raises(ValueError, match=re.escape(said)):
            call()
    with xdl.no_grad():
        assert np.isnan(model(Xm, training=False).data[3]).all() and np.isfinite(model(X).data).all()
    assert np.isnan(split(Xm, y, seed=0).X_train).sum() == 1  # (a missing value, filled after the split)
    ym = np.ma.masked_array(y.copy(), mask=np.zeros(24, bool))
    ym[5] = np.ma.masked
    with pytest.raises(ValueError, match=re.escape("y must hold integer class indices, got NaN, Inf or masked "
                                                   "values (first at example 5)")):
        trainer.fit(X, ym)
    targets = np.ma.masked_array(np.ones((24, 1)), mask=np.arange(24)[:, None] == 7)
    with pytest.raises(ValueError, match="targets contain NaN or Inf"):
        MeanSquaredError()(xdl.Tensor(X[:, :1]), targets)
    unmasked = np.ma.masked_array(X)  # (no value masked: read as the array it holds)
    np.testing.assert_array_equal(model.predict(unmasked), model.predict(X))


def test_float16_labels_are_checked_without_an_overflow_warning():
    """check_labels compared float16 labels with MAX_CLASSES (2**20), which NumPy cast to float16:
    "overflow encountered in cast" at every fit_many, tune or one_hot of float16 labels (an error
    under -W error), though the labels were fine."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labels = xdl.data.check_labels(np.array([0, 2, 1], np.float16), 3)
        assert labels.tolist() == [0, 2, 1]
        assert xdl.data.check_labels(np.array([0, 2], np.float16), 2, n_classes=70_000).tolist() == [0, 2]


def test_masked_values_keep_a_float32_sets_dtype_and_large_integers_exact():
    """A masked float32 set's masked values are NaN in float32 (a float64 copy doubled it); an integer
    set's in float64, where integers up to 2**53 are exact (float32 rounds 2**24 + 1 to 2**24)."""
    X = np.ma.masked_array(np.ones((10, 2), np.float32), mask=np.zeros((10, 2), bool))
    X[4, 1] = np.ma.masked
    parts = split(X, np.arange(10) % 2, seed=0)
    assert parts.X_train.dtype == np.float32 and np.isnan(np.concatenate([parts.X_train, parts.X_dev])).sum() == 1
    big = np.ma.masked_array(np.full((10, 2), 2**24 + 1, np.int64), mask=np.zeros((10, 2), bool))
    big[4, 1] = np.ma.masked
    held = xdl.backend.array_to_numpy(big)
    assert held.dtype == np.float64 and np.isnan(held[4, 1]) and held[0, 0] == 2**24 + 1


def test_masked_string_labels_are_refused_by_the_estimator_not_read_under_the_mask():
    """Class labels as strings (np.genfromtxt(usemask=True)'s text column) with one masked: no NaN
    stands for it, and MLPClassifier trained on the label under the mask as the example's class."""
    from xdl.sklearn import MLPClassifier

    X = np.random.default_rng(0).normal(size=(30, 3))
    ym = np.ma.masked_array(np.array(["a", "b", "c"] * 10), mask=np.arange(30) == 4)
    with pytest.raises(ValueError, match=re.escape("y contains masked values (first at example 4)")):
        MLPClassifier(hidden=4, epochs=1, seed=0).fit(X, ym)
    with pytest.raises(ValueError, match=re.escape("y contains masked values (first at example 4)")):
        MLPClassifier(hidden=4, epochs=1, seed=0).partial_fit(X, ym, classes=["a", "b", "c"])
    clf = MLPClassifier(hidden=4, epochs=1, seed=0).fit(X, np.ma.masked_array(ym.data))  # (none masked: as it is)
    assert clf.classes_.tolist() == ["a", "b", "c"]


def test_masked_values_are_missing_values_for_the_estimator_one_hot_and_xdl_tensor():
    """The entry points the masked arrays' fix passed by: MLPClassifier (scikit-learn's validate_data
    reads through np.asarray) trained on and predicted from the -9999 under the mask, one_hot encoded
    the label under the mask as a class, and xdl.tensor kept the values under the mask, unsaid."""
    from xdl.sklearn import MLPClassifier

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    Xm = np.ma.masked_array(X.copy(), mask=np.zeros(X.shape, bool))
    Xm[3, 2] = np.ma.masked
    Xm.data[3, 2] = -9999.0
    ym = np.ma.masked_array(y.copy(), mask=np.arange(40) == 5)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        MLPClassifier(hidden=4, epochs=1, seed=0).fit(Xm, y)
    with pytest.raises(ValueError, match="Input y contains NaN"):
        MLPClassifier(hidden=4, epochs=1, seed=0).fit(X, ym)
    clf = MLPClassifier(hidden=4, epochs=1, seed=0).fit(np.ma.masked_array(X), y)  # (nothing masked: as X)
    np.testing.assert_array_equal(clf.predict_proba(X), MLPClassifier(hidden=4, epochs=1, seed=0).fit(X, y)
                                  .predict_proba(X))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.predict(Xm)
    with pytest.raises(ValueError, match=re.escape(
            "one_hot: y has masked values, missing labels (first at example 5)")):
        one_hot(ym, 2)
    np.testing.assert_array_equal(one_hot(np.ma.masked_array(y), 2), one_hot(y, 2))
    assert np.isnan(xdl.tensor(Xm).numpy()[3, 2]) and np.isfinite(xdl.tensor(X).numpy()).all()
    assert xdl.tensor(np.ma.masked_array(y)).dtype == np.int64  # (nothing masked: as the array it holds)


def test_an_array_numpy_cannot_read_is_named_with_its_dtype_and_the_way_out():
    """A torch bfloat16 tensor: predict, model(x) and xdl.tensor failed with torch's "Got unsupported
    ScalarType BFloat16", which said neither what was given nor what to do."""
    class BFloat16Tensor:  # (torch's, as NumPy meets it: its __array__ refuses the dtype)
        dtype = "torch.bfloat16"
        shape = (5, 3)

        def __array__(self, dtype=None, copy=None):
            raise TypeError("Got unsupported ScalarType BFloat16")

    model = xdl.nn.mlp(3, [4], 2)
    said = r"BFloat16Tensor of dtype torch.bfloat16 does not convert to a NumPy array \(Got unsupported .*x.float\(\)"
    for call in (lambda: model.predict(BFloat16Tensor()), lambda: model(BFloat16Tensor()),
                 lambda: xdl.tensor(BFloat16Tensor())):
        with pytest.raises(TypeError, match=said):
            call()


def test_an_array_of_a_dtype_numpy_has_is_not_told_to_convert_its_dtype():
    """A torch sparse (or CUDA) float32 tensor: NumPy refuses its layout or device, and torch's words
    say the way out ("Use Tensor.to_dense() first"); "convert it to float32 first (torch: x.float())"
    was added to them, advice that changes nothing for a float32 tensor."""
    class SparseTensor:  # (torch's, as NumPy meets it)
        dtype = "torch.float32"
        shape = (5, 3)

        def __array__(self, dtype=None, copy=None):
            raise TypeError("can't convert Sparse layout tensor to numpy. Use Tensor.to_dense() first.")

    with pytest.raises(TypeError, match=r"of dtype torch.float32 does not convert to a NumPy array \(can't convert "
                                        r"Sparse layout tensor to numpy. Use Tensor.to_dense\(\) first.\)$"):
        xdl.nn.mlp(3, [4], 2).predict(SparseTensor())


def test_a_tensor_that_requires_grad_is_refused_as_an_array_numpy_cannot_read():
    """A torch tensor with requires_grad=True: fit, predict, split, Standardizer and xdl.tensor raised
    torch's own RuntimeError from inside NumPy, where a bfloat16 one is named as given (above)."""
    class GradTensor:  # (torch's, as NumPy meets it: its __array__ refuses a tensor that requires grad)
        dtype = "torch.float32"
        shape = (4, 2)

        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")

    model = xdl.nn.mlp(2, [3], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model), progress=False)
    said = r"GradTensor of dtype torch.float32 does not convert to a NumPy array \(Can't call numpy\(\) .*detach\(\)"
    for call in (lambda: trainer.fit(GradTensor(), np.arange(4) % 2), lambda: model.predict(GradTensor()),
                 lambda: model(GradTensor()), lambda: split(GradTensor(), np.arange(4) % 2),
                 lambda: Standardizer().fit(GradTensor()), lambda: xdl.tensor(GradTensor())):
        with pytest.raises(TypeError, match=said):
            call()


def test_tensor_with_a_dtype_refuses_data_it_refuses_without_one():
    """xdl.tensor(data, dtype=np.float32) cast whatever NumPy casts: complex values lost their imaginary
    part (a ComplexWarning only), strings were parsed, dates became seconds since 1970, and a sparse
    matrix failed with NumPy's "setting an array element with a sequence" — all refused without a dtype."""
    X = np.arange(6.0).reshape(3, 2)
    for data in (X + 1j, X.astype(str), np.zeros((3, 2), dtype="datetime64[s]")):
        with pytest.raises(TypeError, match=rf"^tensor: data of dtype {re.escape(str(data.dtype))} is not supported"):
            xdl.tensor(data, dtype=np.float32)
    sparse = pytest.importorskip("scipy.sparse")
    for make in (sparse.csr_matrix, sparse.coo_array):
        with pytest.raises(TypeError, match=r"\(a sparse matrix\) does not convert to a NumPy array: pass a dense one, "
                                            r"\.toarray\(\)$"):
            xdl.tensor(make(X), dtype=np.float32)
    assert xdl.tensor(X.astype(np.int64), dtype=np.float32).dtype == np.float32  # (real numbers still cast)


def test_a_0d_array_holding_one_object_is_named_by_what_it_holds_not_as_a_generator(tmp_path):
    """``np.load`` of a pickled list or dict gives a 0-d object array, which has ``__iter__``: X and y
    were told "got an object of type ndarray: … not a generator or a loader of batches"."""
    np.save(tmp_path / "labels.npy", np.array({"y": [0, 1, 0, 1]}), allow_pickle=True)
    held = np.load(tmp_path / "labels.npy", allow_pickle=True)
    X = np.zeros((4, 2))
    for call, name in ((lambda: xdl.data.check_labels(held, 4), "y"), (lambda: split(X, held), "y"),
                       (lambda: xdl.data.check_features(held), "X")):
        said = rf"^{name} must be an array .*, got a 0-d array holding one object of type dict \(np.load of a " \
            rf"pickled object gives one: {name}.item\(\) is the object\)$"
        with pytest.raises(TypeError, match=said):
            call()


@pytest.mark.parametrize("loss, outputs, kind", [(SoftmaxCrossEntropy, 2, "class label"),
                                                 (MeanSquaredError, 1, "target"), (BinaryCrossEntropy, 1, "target")])
def test_labels_or_targets_that_are_a_sparse_column_or_a_generator_are_named_as_such(loss, outputs, kind):
    """y as a sparse column or a generator was read by NumPy as one object: "y must be an array of one class
    label per example of X, got a single value array(<Compressed Sparse Row sparse matrix …>, dtype=object)";
    a regression's or a binary model's y, on another path, "a scipy.sparse._csr.csr_matrix … does not convert",
    naming neither y nor y_dev."""
    X, y = np.zeros((4, 2)), np.arange(4) % 2
    model = xdl.nn.mlp(2, [3], outputs)
    trainer = Trainer(model, loss(), xdl.optim.Adam(model), progress=False)
    with pytest.raises(TypeError, match=rf"^y must be an array of one {kind} per example of X, got an object of "
                                        r"type generator: xdl takes the whole data set as arrays"):
        trainer.fit(X, (v for v in y))
    with pytest.raises(ValueError, match=rf"^y_dev must be an array of one {kind} per example of X_dev, got a single "
                                         r"value array\(3\)$"):
        trainer.fit(X, y, dev=(X, 3))
    sparse = pytest.importorskip("scipy.sparse")
    column = sparse.csr_matrix(y[:, None])
    calls = [(lambda: trainer.fit(X, column), "y"), (lambda: trainer.evaluate(X, column), "y"),
             (lambda: trainer.fit(X, y, dev=(X, column)), "y_dev"), (lambda: split(X, column), "y")]
    if loss is SoftmaxCrossEntropy:
        calls.append((lambda: fit_many([TrainConfig(epochs=1, patience=0, hidden=[3])], X, column), "y"))
    for call, name in calls:
        with pytest.raises(TypeError, match=rf"^{name} is a sparse matrix \(csr_matrix\), which xdl does not take: "
                                            rf"pass a dense array, {name}.toarray\(\)"):
            call()
    assert not trainer.history.records  # refused before any epoch


@pytest.mark.gpu
def test_split_and_a_standardizer_give_cupy_inputs_back_as_cupy_arrays():
    """`split`'s parts and `Standardizer.transform`'s and ``inverse_transform``'s values were NumPy arrays for
    CuPy inputs (a GPU pipeline's next step mixed the two): each comes back on its input's backend (as
    scikit-learn's array API mode returns the input's namespace), with the values NumPy's input gives, X and y
    each on its own."""
    from conftest import cupy_available

    if not cupy_available():
        pytest.skip("needs a GPU")
    cupy = xdl.backend.get_backend("cupy").xp
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64, np.int64, np.uint8):
        X, y = (rng.normal(size=(50, 3)) * 20).astype(dtype), np.arange(50) % 3
        for on_device in ((True, False), (False, True), (True, True)):
            given = [cupy.asarray(a) if device else a for a, device in zip((X, y), on_device)]
            for part, expected, device in zip(split(*given, seed=1), split(X, y, seed=1), on_device * 3):
                assert isinstance(part, cupy.ndarray) is device
                host = part.get() if device else part
                assert host.dtype == expected.dtype
                np.testing.assert_array_equal(host, expected)
        scaler = Standardizer().fit(cupy.asarray(X))
        for method in ("transform", "inverse_transform", "fit_transform"):
            out, expected = getattr(scaler, method)(cupy.asarray(X)), getattr(Standardizer().fit(X), method)(X)
            assert isinstance(out, cupy.ndarray) and out.dtype == expected.dtype
            np.testing.assert_array_equal(out.get(), expected)
