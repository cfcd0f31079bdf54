"""xdl.sklearn.MLPClassifier follows scikit-learn's estimator conventions."""

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

import os  # noqa: E402
import pickle  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from sklearn.model_selection import RandomizedSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import xdl  # noqa: E402
from xdl.backend import get_backend, host_rng  # noqa: E402
from xdl.config import TrainConfig  # noqa: E402
from xdl.sklearn import MLPClassifier  # noqa: E402
from xdl.train import Interrupted  # noqa: E402


def labelled_moons():
    X, y = xdl.datasets.moons(400, seed=0)
    return X, np.array(["left", "right"])[y]


def test_fit_predict_proba_score_with_string_labels():
    X, y = labelled_moons()
    clf = MLPClassifier(hidden=(32, 32), lr=1e-2, epochs=40).fit(X, y)
    assert list(clf.classes_) == ["left", "right"]
    assert set(clf.predict(X)) <= {"left", "right"}
    proba = clf.predict_proba(X)
    assert proba.shape == (400, 2) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 2"):
        clf.predict(np.zeros((2, 3)))
    assert clf.n_iter_ == 40 and len(clf.loss_curve_) == 40 and clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_one_hidden_size_is_one_layer_as_in_scikit_learn():
    X, y = labelled_moons()
    clf = MLPClassifier(hidden=16, epochs=2).fit(X, y)
    assert [layer.out_features for layer in clf.model_.layers if hasattr(layer, "out_features")] == [16, 2]
    assert clf.get_params()["hidden"] == 16  # the parameter as given (scikit-learn's clone compares it)


def test_clone_pipeline_and_randomized_search():
    X, y = labelled_moons()
    assert clone(MLPClassifier(hidden=(4,), lr=0.1)).get_params()["lr"] == 0.1
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden=(8,), epochs=5))
    search = RandomizedSearchCV(pipe, {"mlpclassifier__lr": [1e-3, 1e-2], "mlpclassifier__hidden": [(8,), (16, 16)]},
                                n_iter=2, cv=2, random_state=0)
    search.fit(X, y)
    assert set(search.best_params_) == {"mlpclassifier__lr", "mlpclassifier__hidden"}
    assert search.predict(X[:5]).shape == (5,)


def test_early_stopping_and_bad_input():
    X, y = labelled_moons()
    clf = MLPClassifier(hidden=(16,), epochs=200, early_stopping=True, patience=3, lr=0.05).fit(X, y)
    assert clf.history_.stopped_epoch is not None and len(clf.history_) < 200
    with pytest.raises(ValueError, match=r"^MLPClassifier: y has one class \(0\.0\)"):  # as given, not np.float64(0.0)
        MLPClassifier().fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match=r"^MLPClassifier: y has one class \('left'\)"):
        MLPClassifier().fit(X, np.full(len(X), "left"))
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[400, 399\]"):
        MLPClassifier().fit(X, y[:-1])
    with pytest.raises(ValueError, match="optimizer must be one of"):
        MLPClassifier(optimizer="lbfgs").fit(X, y)


@parametrize_with_checks([MLPClassifier(epochs=30), MLPClassifier(epochs=30, plateau_patience=2, plateau_factor=0.2)])
def test_scikit_learn_estimator_checks(estimator, check):
    """scikit-learn's own conventions (check_estimator): every check passes, none is waived."""
    check(estimator)


def test_a_fitted_classifier_pickles_and_dumps_with_joblib(tmp_path):
    joblib = pytest.importorskip("joblib")
    X, y = labelled_moons()
    clf = MLPClassifier(hidden=(16,), batch_norm=True, dropout=0.1, epochs=10).fit(X, y)
    for copy in (pickle.loads(pickle.dumps(clf)), joblib.load(joblib.dump(clf, tmp_path / "clf.joblib")[0])):
        np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
        assert list(copy.classes_) == ["left", "right"] and len(copy.history_) == 10
        flat = copy.model_.parameters()[0]._flat[0]  # the parameters are views of one buffer again
        assert all(np.shares_memory(p.data, flat.data) for p in copy.model_.parameters())


def test_unfitted_and_continuous_targets_are_refused():
    X, y = labelled_moons()
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        MLPClassifier().fit(X, np.linspace(0, 1, len(X)))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        MLPClassifier(epochs=2).fit(X, y).predict(np.full((1, 2), np.nan))


def test_warm_start_trains_the_fitted_network_on_as_scikit_learns():
    """warm_start=True: a second fit starts from the first one's weights (with a new optimizer): the
    loss curve goes on from where the first ended (n_iter_ counts this fit's epochs, as scikit-learn's);
    a change of architecture or classes is refused before any training."""
    X, y = labelled_moons()
    clf = MLPClassifier(hidden=(16,), lr=1e-2, epochs=5, warm_start=True, backend="numpy").fit(X, y)
    first = {name: a.copy() for name, a in clf.model_.state_dict().items()}
    model = clf.model_
    clf.fit(X, y)
    assert clf.model_ is model and clf.n_iter_ == 5 and len(clf.loss_curve_) == 10 and len(clf.history_) == 5
    assert clf.loss_curve_[5] < clf.loss_curve_[0]  # it went on from the first fit's weights
    # the same second fit from the first's weights, by hand: a Trainer on a copy of them
    cold = MLPClassifier(hidden=(16,), lr=1e-2, epochs=5, backend="numpy").fit(X, y)
    cold.model_.load_state_dict(first)
    cold.warm_start = True
    cold.fit(X, y)
    for name, a in clf.model_.state_dict().items():
        np.testing.assert_array_equal(a, cold.model_.state_dict()[name])
    for change, message in (({"hidden": (8,)}, r"made with hidden=\[16\]; hidden is now \[8\]"),
                            ({"warm_start": "yes"}, "warm_start must be True or False, got 'yes'")):
        with pytest.raises(ValueError, match=message):
            clf.set_params(**change).fit(X, y)
        clf.set_params(hidden=(16,), warm_start=True)
    with pytest.raises(ValueError, match=r"whose classes are \['left', 'right'\]; y has \['a', 'b'\]"):
        clf.fit(X, np.where(y == "left", "a", "b"))
    assert len(clf.loss_curve_) == 10 and clf.model_ is model  # nothing trained by the refused fits
    assert len(MLPClassifier(hidden=(16,), epochs=2, warm_start=False).fit(X, y).fit(X, y).loss_curve_) == 2


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow warnings of the diverging run
def test_a_fit_that_fails_leaves_the_estimator_as_it_was():
    """A diverging fit (or any failure) keeps the fitted network and attributes from before — also
    when a warm start trains that network in place — or leaves an unfitted estimator unfitted."""
    X, y = labelled_moons()
    diverging = dict(lr=1e6, optimizer="sgd")
    clf = MLPClassifier(hidden=(16,), lr=1e-2, epochs=3, backend="numpy").fit(X, y)
    before = {name: a.copy() for name, a in clf.model_.state_dict().items()}
    attributes = {k: v for k, v in vars(clf).items() if k.endswith("_")}
    score = clf.score(X, y)
    for warm in (False, True):
        # said as the estimator's (the Trainer's words spoke of Checkpoint callbacks, which it has not)
        with pytest.raises(FloatingPointError, match=r"^MLPClassifier: training diverged: the (train )?cost became .*; "
                                                     r"the estimator is as it was before this call; "
                                                     r"try a smaller learning rate$"):
            clf.set_params(warm_start=warm, **diverging).fit(X, y)
        assert {k: v for k, v in vars(clf).items() if k.endswith("_")}.keys() == attributes.keys()
        assert clf.model_ is attributes["model_"] and clf.loss_curve_ == attributes["loss_curve_"]
        for name, a in clf.model_.state_dict().items():
            np.testing.assert_array_equal(a, before[name])
        assert clf.score(X, y) == score
    fresh = MLPClassifier(hidden=(16,), epochs=3, backend="numpy", **diverging)
    with pytest.raises(FloatingPointError):
        fresh.fit(X, y)
    with pytest.raises(NotFittedError):
        fresh.predict(X)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow warnings of the diverging run
@pytest.mark.parametrize("params, advice", [
    (dict(optimizer="adam", weight_decay=1e20), r"try a smaller weight_decay \(now 1e\+20\): .* the learning rate does "
                                                r"not scale it$"),
    (dict(optimizer="sgd", lr=0.5, l2=1e30), r"try a smaller learning rate, or a smaller l2: the L2 term alone"),
    (dict(optimizer="sgd", lr=1e6), r"try a smaller learning rate$"),
])
def test_a_diverging_fit_ends_with_the_trainers_advice(params, advice):
    """The estimator's error ended "try a smaller lr" whatever the Trainer had found: an Adam whose state a
    weight_decay of 1e20 overflowed (where the rate does not scale it), an L2 term that alone grows the weights."""
    X, y = labelled_moons()
    with pytest.raises(FloatingPointError, match=r"^MLPClassifier: training diverged: .*; the estimator is as it was "
                                                 r"before this call; " + advice):
        MLPClassifier(hidden=(8,), epochs=2, backend="numpy", **params).fit(X, y)


def test_partial_fit_is_an_epoch_at_a_time_of_the_same_run():
    """Three partial_fit calls on the same data end where fit with epochs=3 ends (the trainer goes on
    from where it stopped: the shuffle, the dropout masks and the optimizer state of one run);
    labels outside ``classes`` and a first call without them are refused; a failed call changes
    nothing, so the run goes on as if it had not been made."""
    X, y = labelled_moons()
    options = dict(hidden=(16,), lr=1e-2, dropout=0.2, backend="numpy")
    whole = MLPClassifier(epochs=3, **options).fit(X, y)
    steps = MLPClassifier(epochs=99, **options)  # epochs: fit's; partial_fit trains one per call
    with pytest.raises(ValueError, match="the first partial_fit needs classes"):
        steps.partial_fit(X, y)
    with pytest.raises(ValueError, match=r"y holds \['right'\], not among the classes \['left', 'up'\]"):
        steps.partial_fit(X, y, classes=["left", "up"])
    assert not hasattr(steps, "model_")
    for _ in range(3):
        steps.partial_fit(X, y, classes=["left", "right"])
    assert steps.n_iter_ == 3 and steps.loss_curve_ == whole.loss_curve_
    for name, a in whole.model_.state_dict().items():
        np.testing.assert_array_equal(steps.model_.state_dict()[name], a)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 2"):
        steps.partial_fit(np.hstack([X, X[:, :1]]), y)
    with pytest.raises(ValueError, match=r"classes is \['left'\], the network's classes are"):
        steps.partial_fit(X, y, classes=["left"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's overflow warnings of the diverging epoch
        with pytest.raises(FloatingPointError):
            steps.set_params(lr=1e6, optimizer="sgd").partial_fit(X, y)
    steps.set_params(lr=1e-2, optimizer="adam").partial_fit(X, y)  # as if the failed call had not been made
    whole.set_params(epochs=4).fit(X, y)
    assert steps.n_iter_ == 4 and steps.loss_curve_ == whole.loss_curve_
    for name, a in whole.model_.state_dict().items():
        np.testing.assert_array_equal(steps.model_.state_dict()[name], a)


def test_partial_fit_goes_on_exactly_after_a_failed_call_and_after_pickling(monkeypatch):
    """With the same options, a call that fails mid-epoch (Ctrl-C after two updates) puts the trainer's position and
    optimizer state back, and a pickled estimator keeps them: either way four epochs end where
    four uninterrupted calls end. Under a cosine schedule ``epochs`` is an option (it spans them)."""
    X, y = labelled_moons()
    options = dict(hidden=(16,), lr=1e-2, dropout=0.2, backend="numpy")
    straight = MLPClassifier(**options)
    for _ in range(4):
        straight.partial_fit(X, y, classes=["left", "right"])
    broken = MLPClassifier(**options)
    for i in range(4):
        broken.partial_fit(X, y, classes=["left", "right"])
        if i == 1:
            rule = type(broken.trainer_.optimizer)
            original, updates = rule.step, []

            def step(self):  # two updates of the same trainer in place, then Ctrl-C
                if len(updates) == 2:
                    raise KeyboardInterrupt
                updates.append(original(self))

            monkeypatch.setattr(rule, "step", step)
            with pytest.raises(KeyboardInterrupt):
                broken.partial_fit(X, y)
            monkeypatch.undo()
            broken = pickle.loads(pickle.dumps(broken))
    assert broken.n_iter_ == 4 and broken.loss_curve_ == straight.loss_curve_
    for name, a in straight.model_.state_dict().items():
        np.testing.assert_array_equal(broken.model_.state_dict()[name], a)
    cosine = MLPClassifier(epochs=2, schedule="cosine", **options)
    for _ in range(2):
        cosine.partial_fit(X, y, classes=["left", "right"])
    with pytest.raises(ValueError, match=r"the cosine schedule spans epochs=2, all trained: its rate is 0"):
        cosine.partial_fit(X, y)
    cosine.set_params(epochs=4).partial_fit(X, y)  # a new schedule over 4 epochs, at its third
    assert cosine.n_iter_ == 3


def test_partial_fit_copies_only_the_last_epochs_record_and_a_failed_call_puts_the_history_back(monkeypatch):
    """Each call keeps what puts the run back if it fails — the history's length and its last record,
    not a copy of every epoch's (a stream's 2,000th call copied 2,000 records: a cost growing with
    every call); a failed call (Ctrl-C mid-epoch) leaves ``history_`` as it was, the same object."""
    X, y = labelled_moons()
    clf = MLPClassifier(hidden=(4,), lr=1e-2, backend="numpy")
    copied = []

    class Counted:  # copied: counted
        def __deepcopy__(self, memo):
            copied.append(self)
            return self

    for _ in range(3):
        clf.partial_fit(X, y, classes=["left", "right"])
    clf.history_.records[0]["mine"] = Counted()  # the run's first epoch's record, read by no later call
    clf.partial_fit(X, y)
    assert copied == []
    records = [dict(r) for r in clf.history_.records]
    rule = type(clf.trainer_.optimizer)
    monkeypatch.setattr(rule, "step", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        clf.partial_fit(X, y)
    monkeypatch.undo()
    assert clf.history_ is clf.trainer_.history and clf.history_.records == records and clf.n_iter_ == 4
    clf.partial_fit(X, y)
    assert [r["epoch"] for r in clf.history_] == [1, 2, 3, 4, 5] and len(clf.loss_curve_) == 5


def test_fits_in_threads_draw_from_generators_of_their_own():
    """Fits running at once in threads (joblib's threading backend, a ThreadPoolExecutor) give the
    weights of a fit made alone: each draws from a generator of its own keyed by ``seed`` — the
    initial weights; the dev split, the shuffles and the dropout masks are keyed by it too. And a
    fit leaves the process's generators as they were: the user's next draws are those of ``xdl.seed``."""
    X, y = labelled_moons()
    options = dict(hidden=(16, 16), epochs=2, dropout=0.2, early_stopping=True, patience=1, backend="numpy")
    alone = MLPClassifier(**options).fit(X, y).model_.state_dict()
    barrier, draw = threading.Barrier(2, timeout=60), xdl.init.host_rng

    def in_turn():  # each weight of one fit is drawn when the other fit draws one: the draws interleave
        barrier.wait()
        return draw()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(xdl.init, "host_rng", in_turn)
        with ThreadPoolExecutor(2) as pool:
            fits = list(pool.map(lambda _: MLPClassifier(**options).fit(X, y), range(2)))
    for fit in fits:
        for name, a in fit.model_.state_dict().items():
            np.testing.assert_array_equal(a, alone[name])
    xdl.seed(123)
    expected = host_rng().random(), get_backend("numpy").rng.random()
    xdl.seed(123)
    MLPClassifier(**options).fit(X, y)
    assert (host_rng().random(), get_backend("numpy").rng.random()) == expected


@pytest.mark.parametrize("early_stopping", [False, True])
def test_a_large_offset_keeps_the_small_spread_float32_would_erase(early_stopping):
    """x·0.01 + 1e6 is one value in float32 (its steps there are 0.0625): the estimator standardizes
    in float64 before the cast, so it learns what it learns from x (it scored 0.5 on two classes).
    ``model_`` alone standardizes raw inputs itself (its first layer holds the statistics)."""
    X, y = labelled_moons()
    options = dict(hidden=(16,), lr=1e-2, epochs=20, early_stopping=early_stopping, patience=3, backend="numpy")
    plain = MLPClassifier(**options).fit(X, y)
    offset = X.astype(np.float64) * 0.01 + 1e6
    assert len(np.unique(offset[:, 0].astype(np.float32))) == 1
    clf = MLPClassifier(**options).fit(offset, y)
    assert clf.score(offset, y) == plain.score(X, y) > 0.9
    np.testing.assert_allclose(clf.predict_proba(offset), plain.predict_proba(X), atol=1e-4)
    np.testing.assert_allclose(plain.model_.predict_proba(X), plain.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("options, message", [
    (dict(early_stopping="no"), "early_stopping must be True or False, got 'no'"),  # "no" read as True
    (dict(batch_norm=1), "batch_norm must be True or False, got 1"),
    (dict(warm_start="yes"), "warm_start must be True or False, got 'yes'"),
    (dict(patience=-3), "patience must be a positive integer, got -3"),  # with early stopping off too
    (dict(patience=0, early_stopping=True), "patience must be a positive integer, got 0"),  # held out, never stopped
    (dict(validation_fraction=5), r"validation_fraction must be in \[0, 1\), got 5"),
    (dict(validation_fraction=0, early_stopping=True), r"validation_fraction must be in \(0, 1\) with "
                                                       r"early_stopping=True, got 0"),
    (dict(lr=-1), "lr must be a finite number > 0"),
    (dict(lr="bogus"), "lr must be"), (dict(batch_size=2.0), "batch_size must be"),  # wrong types: ValueErrors too
    (dict(plateau_patience=-1), "plateau_patience must be ≥ 0, got -1"),
    (dict(plateau_patience=1.5), r"plateau_patience must be an integer, got 1\.5"),
    (dict(plateau_patience=None), "plateau_patience must be an integer, got None .* 0 is no lowering on a plateau"),
    (dict(plateau_factor=1.0), r"plateau_factor must be a number in \(0, 1\), got 1\.0"),  # with the plateau off too
    (dict(plateau_factor=float("nan")), r"plateau_factor must be a number in \(0, 1\), got nan"),
    (dict(plateau_patience=2, schedule="exponential"), "plateau_patience 2 lowers the rate on a plateau, and schedule "
                                                       "'exponential' sets it"),  # (on a stream too, as TrainConfig)
    (dict(activation="logistic"), "activation='logistic' is scikit-learn's; it is 'sigmoid' here"),
    (dict(batch_size="auto"), r"batch_size='auto' is scikit-learn's; it is min\(200, n_samples\)"),
])
def test_every_parameter_is_checked_on_every_fit(options, message):
    X, y = labelled_moons()
    for fit in (lambda clf: clf.fit(X, y), lambda clf: clf.partial_fit(X, y, classes=["left", "right"])):
        clf = MLPClassifier(epochs=1, **options)
        with pytest.raises(ValueError, match="^MLPClassifier: " + message) as refused:
            fit(clf)
        assert isinstance(refused.value, TypeError)  # both, as scikit-learn's InvalidParameterError
        assert not hasattr(clf, "model_")


def test_integer_features_are_standardized_in_float64_and_predicting_in_threads_switches_no_mode():
    """Integers (timestamps, ids beyond 2**24) are taken as float64, as scikit-learn's MLP takes them
    (float32 first erased a small spread on a large offset: it scored 0.5); and predictions from
    several threads at once are those made one by one, with dropout and batch norm in the network
    (each call switched the model to evaluation and back, so one call ran in another's training mode)."""
    i = np.arange(64)
    X, y = (2**30 + i)[:, None], (i >= 32).astype(int)
    clf = MLPClassifier(hidden=16, epochs=200, lr=1e-2, backend="numpy").fit(X.astype(np.int64), y)
    assert clf.score(X.astype(np.int64), y) == clf.score(X.astype(np.float64), y) == 1.0
    X, y = labelled_moons()
    clf = MLPClassifier(hidden=(32,), epochs=2, dropout=0.3, batch_norm=True, backend="numpy").fit(X, y)
    chunks = np.array_split(np.arange(len(X)), 20) * 4
    alone = [clf.predict_proba(X[c]) for c in chunks]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda c: clf.predict_proba(X[c]), chunks))
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b)


def test_predict_checks_its_input_as_fit_does():
    """A value float32 cannot hold is refused by predict, predict_proba, predict_log_proba and score
    with fit's message — not a cast's overflow warning and then "X contains NaN or Inf" about an X
    that has none; so is one that standardizes beyond it (a feature whose training spread was tiny)."""
    X, y = labelled_moons()
    clf = MLPClassifier(hidden=(8,), epochs=2, backend="numpy").fit(X, y)
    huge = X.astype(np.float64)
    huge[3, 1] = 1e39
    beyond = r"^MLPClassifier: X has values beyond the range of float32.*example 3, feature 1: 1e\+39\); scale the data"
    tiny = np.column_stack([X, np.arange(len(X)) * 1e-45])  # a spread of about 1e-43
    narrow = MLPClassifier(hidden=(8,), epochs=2, backend="numpy").fit(tiny, y)
    far = tiny[:2].copy()
    far[1, 2] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=beyond):
            MLPClassifier(epochs=1).fit(huge, y)
        for method in (clf.predict, clf.predict_proba, clf.predict_log_proba, lambda X: clf.score(X, y)):
            with pytest.raises(ValueError, match=beyond):
                method(huge)
        with pytest.raises(ValueError, match=r"^MLPClassifier: X's example 1, feature 2 \(1\) lies .* "
                                             r"standard deviations .* beyond the range of float32"):
            narrow.predict(far)
        assert narrow.predict(tiny[:2]).shape == (2,)


def test_predict_log_proba_is_the_log_of_predict_proba():
    X, y = labelled_moons()
    clf = MLPClassifier(hidden=(8,), epochs=5, backend="numpy").fit(X, y)
    log_proba, proba = clf.predict_log_proba(X), clf.predict_proba(X)
    assert log_proba.dtype == np.float64 and log_proba.shape == (len(X), 2)
    np.testing.assert_array_equal(log_proba, np.log(proba.astype(np.float64)))
    np.testing.assert_array_equal(clf.classes_[log_proba.argmax(axis=1)], clf.predict(X))


def test_seed_none_draws_a_new_seed_each_fit_and_leaves_numpys_generator_alone():
    X, y = xdl.datasets.moons(200)
    state = np.random.get_state()[1].copy()
    fits = [MLPClassifier(hidden=8, epochs=2, seed=None).fit(X, y) for _ in range(2)]
    weights = [next(iter(f.model_.state_dict().values())) for f in fits]
    assert not np.array_equal(weights[0], weights[1]) and np.array_equal(np.random.get_state()[1], state)
    assert all(isinstance(f.trainer_.seed, int) for f in fits)


def test_each_schedules_own_settings_are_parameters_read_by_the_fit():
    """decay_base (exponential), decay_factor and decay_every (step, staircase) were not parameters:
    those schedules ran at TrainConfig's values whatever was asked; their defaults are TrainConfig's."""
    X, y = labelled_moons()
    defaults = MLPClassifier().get_params()
    settings = ("decay_rate", "decay_base", "decay_every", "decay_factor", "decay_k")
    assert {name: defaults[name] for name in settings} == {name: getattr(TrainConfig, name) for name in settings}
    options = dict(hidden=(8,), lr=0.1, epochs=2, backend="numpy")
    for schedule, settings, rates in (("exponential", dict(decay_base=0.5), [0.1, 0.05, 0.025]),
                                      ("step", dict(decay_factor=0.1, decay_every=2), [0.1, 0.1, 0.01]),
                                      ("staircase", dict(decay_rate=1.0, decay_every=2), [0.1, 0.1, 0.05]),
                                      ("inverse_sqrt", dict(decay_k=0.5), [0.05, 0.05, 0.05 / 2**0.5])):
        clf = clone(MLPClassifier(schedule=schedule, **settings, **options)).fit(X, y)
        assert [clf.trainer_.schedule(epoch) for epoch in range(3)] == pytest.approx(rates)
    # another schedule's setting is ignored, as scikit-learn's estimators ignore another solver's: a grid crosses them
    assert MLPClassifier(schedule="exponential", decay_rate=0.5, **options).fit(X, y).trainer_.schedule(1) == 0.095


def test_partial_fit_goes_on_with_the_fitted_optimizer_under_seed_none_and_after_early_stopping():
    """seed=None drew a new seed at every call, and fit(early_stopping=True) made its trainer with a
    patience partial_fit has not: either way each partial_fit made a new trainer, Adam's moments and
    step count lost (t read 7 7 7 7, not 7 14 21 28). The seed is drawn once per fitted estimator — a
    fit draws anew, a pickle keeps it —; after early stopping partial_fit trains on without it."""
    X, y = labelled_moons()  # 400 examples: 7 steps of 64 an epoch
    options = dict(hidden=(8,), lr=1e-2, backend="numpy")
    stream = MLPClassifier(seed=None, **options)
    counts = []
    for _ in range(4):
        stream.partial_fit(X, y, classes=["left", "right"])
        counts.append(stream.trainer_.optimizer.t)
    assert counts == [7, 14, 21, 28]
    stream = pickle.loads(pickle.dumps(stream)).partial_fit(X, y)
    assert stream.trainer_.optimizer.t == 35 and stream.n_iter_ == 5
    seed = stream.trainer_.seed
    stream.set_params(epochs=2).fit(X, y)  # a new run, with a seed of its own, which partial_fit goes on with
    trainer = stream.trainer_
    assert trainer.seed != seed and stream.partial_fit(X, y).trainer_ is trainer and trainer.optimizer.t == 21
    stopped = MLPClassifier(epochs=200, early_stopping=True, patience=1, **options).fit(X, y)
    trainer, steps, epochs = stopped.trainer_, stopped.trainer_.optimizer.t, stopped.n_iter_
    assert stopped.history_.stopped_epoch is not None
    stopped.partial_fit(X, y)  # (its early stopping would refuse a call without a held-out set)
    assert stopped.trainer_ is trainer and trainer.optimizer.t == steps + 7
    assert stopped.n_iter_ == epochs + 1 and len(stopped.loss_curve_) == epochs + 1
    assert pickle.loads(pickle.dumps(stopped)).partial_fit(X, y).trainer_.optimizer.t == steps + 14


def ctrl_c_at_update(monkeypatch, n):
    """Adam's updates counted into the list returned, a SIGINT sent as the n-th runs (Ctrl-C mid-fit)."""
    original, updates = xdl.optim.Adam.step, []

    def step(self):
        updates.append(original(self))
        if len(updates) == n:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(xdl.optim.Adam, "step", step)
    return updates


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_ctrl_c_in_fit_keeps_the_network_trained_so_far(monkeypatch):
    """Ctrl-C during a fit (here after 2 epochs of 7 steps and 3 steps of the third) put the estimator
    back as it was — unfitted, or a warm start's network as before —, every epoch trained thrown
    away; scikit-learn's MLPClassifier keeps them ("Training interrupted by user."). Now the
    network of the finished steps is kept, fitted (n_iter_: the finished epochs), and Interrupted
    is raised still, so a script stops."""
    X, y = labelled_moons()  # 400 examples: 7 steps of 64 an epoch
    options = dict(hidden=(16,), lr=1e-2, epochs=50, backend="numpy")
    whole = MLPClassifier(**options).fit(X, y)
    for warm in (False, True):
        clf = MLPClassifier(**options).fit(X, y) if warm else MLPClassifier(**options)
        before = {name: a.copy() for name, a in clf.model_.state_dict().items()} if warm else None
        updates = ctrl_c_at_update(monkeypatch, 17)  # as the 17th update runs
        with pytest.raises(Interrupted, match=r"^MLPClassifier: .* in epoch 3 after step 3; the network trained so far is kept"):
            clf.set_params(warm_start=warm).fit(X, y)
        monkeypatch.undo()
        assert clf.n_iter_ == 2 and len(updates) == 17
        np.testing.assert_array_equal(clf.predict(X), clf.classes_[clf.model_.predict(X.astype(np.float32))])
        if warm:  # trained on from the weights before
            assert len(clf.loss_curve_) == 52 and clf.loss_curve_[50] < clf.loss_curve_[0]
            assert any(not np.array_equal(a, before[name]) for name, a in clf.model_.state_dict().items())
        else:  # the epochs it finished are those of the uninterrupted fit
            assert clf.loss_curve_ == whole.loss_curve_[:2]


@pytest.mark.parametrize("classes, message", [
    ({"left", "right"}, "must be a 1-D array-like of labels"),  # one object to NumPy: "classes holds 1 class(es)"
    ("lr", "must be a 1-D array-like of labels"),
    (np.array([["left", "right"], ["up", "down"]]), "must be a 1-D array-like of labels"),  # was flattened
    ([None, "left", "right"], "must hold discrete labels of one kind"),  # was NumPy's sorting TypeError
    ([0, 0.5, 1], "must hold discrete labels of one kind.*continuous"),  # as scikit-learn's unique_labels
])
def test_partial_fit_checks_classes_as_scikit_learn_does(classes, message):
    X, y = labelled_moons()
    clf = MLPClassifier(hidden=(8,), backend="numpy")
    with pytest.raises(ValueError, match="^MLPClassifier: classes " + message):
        clf.partial_fit(X, y, classes=classes)
    assert not hasattr(clf, "model_")
    clf.partial_fit(X, y, classes=["left", "right"])
    with pytest.raises(ValueError, match="^MLPClassifier: classes " + message):  # on a later call too
        clf.partial_fit(X, y, classes=classes)


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_ctrl_c_at_an_epochs_end_says_the_epochs_finished(monkeypatch):
    """Ctrl-C in the last step of epoch 2 stops after that epoch's end: the message said "in epoch 3",
    an epoch never begun, beside n_iter_=2; it says where as Interrupted says it."""
    X, y = labelled_moons()  # 7 steps an epoch
    ctrl_c_at_update(monkeypatch, 14)
    clf = MLPClassifier(hidden=(16,), lr=1e-2, epochs=50, backend="numpy")
    with pytest.raises(Interrupted, match=r"^MLPClassifier: training interrupted by SIGINT after epoch 2; .*n_iter_=2"):
        clf.fit(X, y)
    assert clf.n_iter_ == 2


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_ctrl_c_with_early_stopping_says_the_best_epochs_network_is_kept(monkeypatch):
    """Early stopping puts its best epoch's weights back at a Ctrl-C too (as scikit-learn keeps its
    best): the message said "the network trained so far is kept"."""
    X, y = labelled_moons()
    ctrl_c_at_update(monkeypatch, 20)
    clf = MLPClassifier(hidden=(16,), lr=1e-2, epochs=50, early_stopping=True, backend="numpy")
    with pytest.raises(Interrupted) as caught:
        clf.fit(X, y)
    best = clf.history_.best_epoch
    assert best is not None and 1 <= best <= clf.n_iter_
    assert f"; the network of its best epoch ({best}) is kept, fitted (n_iter_={clf.n_iter_}" in str(caught.value)


def test_weight_decay_is_a_parameter_and_scikit_learns_names_say_the_way_here():
    """``optimizer="adamw"`` trained as adam bit for bit (no weight_decay parameter reached the
    config); ``alpha=``, ``random_state=``, … were bare "unexpected keyword argument" errors."""
    X, y = labelled_moons()
    options = dict(hidden=(8,), epochs=2, backend="numpy", optimizer="adamw")
    weights = [[p.numpy() for p in MLPClassifier(weight_decay=wd, **options).fit(X, y).model_.parameters()]
               for wd in (0.0, 0.1)]
    assert not all(np.array_equal(a, b) for a, b in zip(*weights))
    assert clone(MLPClassifier(weight_decay=0.1)).get_params()["weight_decay"] == 0.1
    for key, way in [("alpha", "l2 (the same λ"), ("random_state", "seed"), ("max_iter", "epochs"),
                     ("hidden_layer_sizes", "hidden"), ("learning_rate_init", "lr"), ("tol", "no parameter")]:
        with pytest.raises(TypeError, match=rf"unexpected keyword argument '{key}'; scikit-learn's {key} is "
                                            rf"{re.escape(way)}"):
            MLPClassifier(**{key: 1})


def test_max_grad_norm_is_a_parameter_that_clips_as_the_optimizers_does():
    """The estimator took weight_decay and l1 as TrainConfig does, not max_grad_norm: "unexpected keyword
    argument 'max_grad_norm'". 0, the default, clips nothing (the optimizer's None), as TrainConfig's."""
    X, y = labelled_moons()
    options = dict(hidden=(8,), epochs=2, backend="numpy", optimizer="sgd", lr=0.5)
    fitted = {norm: MLPClassifier(max_grad_norm=norm, **options).fit(X, y) for norm in (0.0, 1e-3, 0.5)}
    assert [f.trainer_.optimizer.max_grad_norm for f in fitted.values()] == [None, 1e-3, 0.5]
    weights = {norm: [p.numpy() for p in f.model_.parameters()] for norm, f in fitted.items()}
    assert not all(np.array_equal(a, b) for a, b in zip(weights[0.0], weights[1e-3]))
    assert clone(fitted[0.5]).get_params()["max_grad_norm"] == 0.5
    for bad in (-1.0, float("nan"), float("inf"), None, "1"):
        with pytest.raises(ValueError, match="MLPClassifier: max_grad_norm must be"):
            MLPClassifier(max_grad_norm=bad, **options).fit(X, y)


def test_a_grid_of_scikit_learns_names_says_the_way_here_as_the_constructor_does():
    """GridSearchCV sets a grid's keys by ``set_params`` on a clone: ``{"alpha": [1e-4, 1e-3]}``,
    scikit-learn's habit, was told only "Invalid parameter 'alpha'", where the constructor names
    l2. A ValueError, as scikit-learn's own; the estimator is left as it was."""
    from sklearn.model_selection import GridSearchCV

    X, y = labelled_moons()
    search = GridSearchCV(MLPClassifier(hidden=(4,), epochs=1, backend="numpy"), {"alpha": [1e-4, 1e-3]}, cv=2)
    with pytest.raises(ValueError, match=r"set_params\(\): invalid parameter 'alpha'; scikit-learn's alpha is l2 "
                                         r"\(the same λ"):
        search.fit(X, y)
    clf = MLPClassifier()
    with pytest.raises(ValueError, match=r"'max_iter'; scikit-learn's max_iter is epochs here$"):
        clf.set_params(epochs=5, max_iter=10)
    assert clf.epochs == 100 and clf.set_params(epochs=5).epochs == 5


def test_arguments_given_by_position_keep_their_meaning_through_the_names_check():
    """`_hinting_sklearn_names` wraps ``__init__``: arguments by position go through as they were."""
    clf = MLPClassifier((8,), "tanh", True, 0.1, weight_decay=0.01)
    assert (clf.hidden, clf.activation, clf.batch_norm, clf.dropout, clf.weight_decay) == ((8,), "tanh", True, 0.1, 0.01)


def test_the_network_of_an_estimator_fitted_on_a_frame_keeps_its_column_names(tmp_path, monkeypatch):
    """``xdl.save(clf.model_)`` is the network alone, taking raw inputs: fitted on a frame of columns
    a, b, c, it kept no names (the estimator hands it arrays), and loaded, it read a frame of the same
    columns as c, b, a by position — each feature into another's weights, silently (accuracy 0.89 →
    0.57), where the estimator itself refuses it."""
    from sklearn.utils import validation
    from test_data_inputs import Frame

    # (scikit-learn reads names from a narwhals data frame only: the stand-in's, as pandas' would be read)
    read = validation._get_feature_names
    monkeypatch.setattr(validation, "_get_feature_names",
                        lambda X: np.asarray(X.columns, dtype=object) if isinstance(X, Frame) else read(X))
    X = np.random.default_rng(0).normal(size=(120, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    clf = MLPClassifier(hidden=(8,), epochs=2, seed=0).fit(Frame(X, ["a", "b", "c"]), y)
    assert clf.model_.feature_names_in_ == ("a", "b", "c")
    loaded = xdl.load(xdl.save(clf.model_, tmp_path / "model.npz"))
    with pytest.raises(ValueError, match=r"^X's columns are the model's features in another order"):
        loaded.predict(Frame(X[:, ::-1], ["c", "b", "a"]))
    clf.partial_fit(Frame(X, ["a", "b", "c"]), y)  # (one more epoch: kept)
    assert clf.model_.feature_names_in_ == ("a", "b", "c")
    assert MLPClassifier(hidden=(8,), epochs=1, seed=0).fit(X, y).model_.feature_names_in_ is None


def test_early_stopping_with_a_class_of_one_example_warns_nothing_of_split():
    """scikit-learn's MLPClassifier(early_stopping=True) fits y with a class of one example, without a
    word; here the held-out split warned "class 0 has only 1 example … (stratify=True refuses it)": the
    class by its index, not its label 'a', and an option of split's that the estimator has not."""
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = np.array(["b"] * 30 + ["c"] * 29 + ["a"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = MLPClassifier(hidden=(4,), epochs=2, early_stopping=True).fit(X, y)
    assert list(clf.classes_) == ["a", "b", "c"]


def test_scikit_learn_s_n_iter_no_change_is_told_as_patience_one_more():
    """scikit-learn stops after n_iter_no_change + 1 epochs without improvement (its count must
    exceed it); patience=k after k. The hint said "n_iter_no_change is patience here": ported as
    patience=n_iter_no_change, every run stopped an epoch earlier than scikit-learn's."""
    with pytest.raises(TypeError, match=r"scikit-learn's n_iter_no_change is patience, one more "
                                        r"\(n_iter_no_change=10 stops at the 11th epoch without improvement, as "
                                        r"patience=11 does\)"):
        MLPClassifier(n_iter_no_change=10)


def test_an_estimator_pickled_before_a_parameter_was_added_takes_its_default():
    """One pickled by an older xdl (no weight_decay, no decay_base yet) loaded, then failed at predict:
    "'MLPClassifier' object has no attribute 'weight_decay'"."""
    X, y = xdl.datasets.moons(100)
    fitted = MLPClassifier(hidden=[4], epochs=2).fit(X, y)
    state = fitted.__getstate__()
    for name in ("weight_decay", "decay_base"):
        del state[name]
    older = MLPClassifier.__new__(MLPClassifier)
    older.__setstate__(pickle.loads(pickle.dumps(state)))
    assert older.weight_decay == 0.0 and older.decay_base == 0.95
    np.testing.assert_array_equal(older.predict(X), fitted.predict(X))


def test_an_estimator_pickled_before_its_input_statistics_were_kept_predicts_and_trains_on():
    """Without ``_scaler_`` (an older pickle) the statistics are read back from its Standardize layer."""
    X, y = xdl.datasets.moons(200, noise=0.2, seed=0)
    clf = MLPClassifier(hidden=(8,), epochs=2, seed=0).fit(X, y)
    expected = clf.predict_proba(X)
    state = pickle.loads(pickle.dumps(clf)).__getstate__()
    del state["_scaler_"]
    old = MLPClassifier.__new__(MLPClassifier)
    old.__setstate__(state)
    np.testing.assert_allclose(old.predict_proba(X), expected, rtol=1e-6)
    old.partial_fit(X, y)
    assert old.n_iter_ == 3


def test_a_failed_partial_fit_leaves_the_network_in_evaluation_mode(monkeypatch, tmp_path):
    """A call that fails inside a step (Ctrl-C) puts the estimator back as it was — its modules' modes
    too: the network was left in training mode (dropout on when called, and so in a file xdl.save wrote)."""
    from xdl.nn.module import modes_of

    X, y = labelled_moons()
    clf = MLPClassifier(hidden=(4,), dropout=0.5, lr=1e-2, backend="numpy", seed=0)
    clf.partial_fit(X, y, classes=["left", "right"])
    modes = [training for _, training in modes_of(clf.model_)]
    monkeypatch.setattr(type(clf.trainer_.optimizer), "step", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        clf.partial_fit(X, y)
    monkeypatch.undo()
    assert [training for _, training in modes_of(clf.model_)] == modes == [False] * len(modes)
    loaded = xdl.load(xdl.save(clf.model_, tmp_path / "m.npz"))
    assert not any(training for _, training in modes_of(loaded))


@pytest.mark.parametrize("seed", [np.random.RandomState(0), np.random.default_rng(0), -1, 2**64, 1.0, True])
def test_a_seed_that_is_no_integer_is_refused_saying_none_is_one_too(seed):
    # scikit-learn's random_state takes a RandomState; this seed takes an integer or None, and says both
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*64\) or None") as refused:
        MLPClassifier(hidden=4, epochs=1, seed=seed).fit(*xdl.datasets.moons(40, seed=0))
    assert isinstance(refused.value, TypeError)  # scikit-learn's InvalidParameterError


def test_uint8_pixels_are_not_cast_to_float64_whole_by_fit_and_predict(monkeypatch, rng, peak_bytes):
    """Small integers (MNIST's uint8 pixels) pass ``validate_data`` as they are and are standardized a
    piece at a time in float64: cast to float64 whole first, fit and predict_proba took 12× the set
    (its float64 copy, 8×, beside the network's float32 inputs, 4×). The results are the float64 set's."""
    from xdl.sklearn import MLPClassifier
    monkeypatch.setattr(xdl.data.validation, "PIECE_VALUES", 2_000)  # pieces far smaller than the set
    X = rng.integers(0, 256, (10_000, 400), dtype=np.uint8)
    y = (X[:, 0] > 128).astype(int) + (X[:, 1] > 100)
    clf = MLPClassifier(hidden=(8,), epochs=1, batch_size=1000)
    assert peak_bytes(lambda: clf.fit(X, y)) < 6 * X.nbytes  # the float32 inputs, 4× (was 12×)
    assert peak_bytes(lambda: clf.predict_proba(X)) < 6 * X.nbytes
    twin = MLPClassifier(hidden=(8,), epochs=1, batch_size=1000).fit(X.astype(np.float64), y)
    np.testing.assert_array_equal(clf.predict_proba(X), twin.predict_proba(X.astype(np.float64)))


def test_early_stopping_standardizes_its_dev_part_in_place_too(monkeypatch, rng, peak_bytes):
    """validation_fraction=0.5: the dev half standardized into itself as the train half is (1.25× the
    set at the peak); a standardized copy of it beside it took another half (1.75×)."""
    from xdl.sklearn import MLPClassifier
    monkeypatch.setattr(xdl.data.validation, "PIECE_VALUES", 2_000)
    X = (rng.standard_normal((10_000, 100)) * 3 + 5).astype(np.float32)
    y = (X[:, 0] > 5).astype(int) + (X[:, 1] > 6)
    clf = MLPClassifier(hidden=(8,), epochs=1, batch_size=1000, early_stopping=True, validation_fraction=0.5)
    assert peak_bytes(lambda: clf.fit(X, y)) < 1.5 * X.nbytes


def test_early_stopping_standardizes_its_split_in_place_leaving_x_as_it_was(monkeypatch, rng, peak_bytes):
    """With early stopping the fit's own split of a float32 X (1×) is standardized into itself: its
    standardized copies beside it took 2× the set. X itself is left as it was, and the fit is the one
    a standardized copy gave."""
    from xdl.sklearn import MLPClassifier
    monkeypatch.setattr(xdl.data.validation, "PIECE_VALUES", 2_000)  # pieces far smaller than the set
    X = (rng.standard_normal((10_000, 100)) * 3 + 5).astype(np.float32)
    y = (X[:, 0] > 5).astype(int) + (X[:, 1] > 6)
    given = X.copy()
    clf = MLPClassifier(hidden=(8,), epochs=2, batch_size=1000, early_stopping=True)
    assert peak_bytes(lambda: clf.fit(X, y)) < 1.6 * X.nbytes  # the split, 1× (was 2×)
    np.testing.assert_array_equal(X, given)
    twin = MLPClassifier(hidden=(8,), epochs=2, batch_size=1000, early_stopping=True).fit(X.astype(np.float64), y)
    np.testing.assert_array_equal(clf.predict_proba(X), twin.predict_proba(X))


@pytest.mark.parametrize("error, said", [
    (ModuleNotFoundError("No module named 'sklearn'", name="sklearn"),
     r"^xdl\.sklearn needs scikit-learn ≥ 1\.6: pip install 'xdl\[sklearn\]'$"),
    (ImportError("numpy.core.multiarray failed to import"),
     r"^xdl\.sklearn needs scikit-learn ≥ 1\.6, which is installed but failed to import: numpy\.core\.multiarray")])
def test_a_scikit_learn_that_fails_to_import_is_told_from_one_not_installed(monkeypatch, error, said):
    """As the other extras' (`xdl.extras.import_error`): a scikit-learn built for another NumPy
    was told "pip install 'xdl[sklearn]'", which is installed already."""
    import builtins
    import sys

    real = builtins.__import__

    def failing(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise error
        return real(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "xdl.sklearn")
    monkeypatch.setattr(builtins, "__import__", failing)
    with pytest.raises(ImportError, match=said):
        import xdl.sklearn  # noqa: F401


@pytest.mark.gpu
def test_cupy_x_and_y_fit_predict_and_score_as_numpy_s_do():
    """CuPy X or y (a GPU user's data) failed inside scikit-learn's checks with CuPy's "Implicit conversion to a
    NumPy array is not allowed", naming neither the argument nor the way; ``score`` with CuPy y likewise. They
    are read on the host, as `Trainer.fit` reads them, and give what NumPy's give (the results NumPy's, as
    ``model.predict``'s)."""
    from conftest import cupy_available

    if not cupy_available():
        pytest.skip("needs a GPU")
    cupy = get_backend("cupy").xp
    X, y = xdl.datasets.moons(200, seed=0)  # (labels CuPy holds: numbers)
    for backend in ("numpy", "cupy"):
        expected = MLPClassifier(hidden=(8,), epochs=3, backend=backend).fit(X, y)
        for X_given, y_given in ((cupy.asarray(X), y), (X, cupy.asarray(y)), (cupy.asarray(X), cupy.asarray(y))):
            clf = MLPClassifier(hidden=(8,), epochs=3, backend=backend).fit(X_given, y_given)
            np.testing.assert_array_equal(clf.predict_proba(X_given), expected.predict_proba(X))
            assert isinstance(clf.predict(X_given), np.ndarray)
            np.testing.assert_array_equal(clf.predict(X_given), expected.predict(X))
            assert clf.score(X_given, y_given) == expected.score(X, y)
        clf.partial_fit(cupy.asarray(X), cupy.asarray(y))


def lowered_at(clf) -> list[int]:
    """The epochs (from 1) at whose end the fit's rate was lowered: each shows in the next epoch's lr."""
    rates = list(clf.history_["lr"])
    return [epoch for epoch in range(1, len(rates)) if rates[epoch] < rates[epoch - 1]]


@pytest.mark.parametrize("early_stopping", [False, True])
def test_the_plateau_is_a_parameter_watching_the_training_cost_or_early_stoppings_dev_cost(early_stopping):
    """TrainConfig's plateau_patience and plateau_factor were no parameters ("unexpected keyword argument"). The
    plateau watches the dev cost of early stopping's held-out set, else the training cost (as scikit-learn's
    learning_rate='adaptive'): each epoch's rate is TrainConfig's rule (`plateau_step`) run on that column."""
    from xdl.train.plateau import plateau_step

    X, y = labelled_moons()
    for patience, factor in [(1, 0.5), (2, 0.2), (3, 0.1)]:
        clf = MLPClassifier(hidden=(8,), optimizer="sgd", lr=1.0, epochs=15, plateau_patience=patience,
                            plateau_factor=factor, early_stopping=early_stopping, patience=100, backend="numpy")
        assert clone(clf).get_params()["plateau_patience"] == patience and clone(clf).plateau_factor == factor
        clf.fit(X, y)
        watched = "dev_cost" if early_stopping else "train_cost"
        rate, state, expected = 1.0, {"best": float("inf"), "wait": 0, "cooldown_left": 0}, []
        for value in clf.history_[watched]:
            expected.append(rate)
            rate *= factor if plateau_step(state, value, patience, 0, 1e-4) else 1
        assert list(clf.history_["lr"]) == pytest.approx(expected, rel=1e-6) and lowered_at(clf)
        assert [cb.monitor for cb in clf.trainer_.callbacks if hasattr(cb, "factor")] == [watched]
    assert MLPClassifier().set_params(plateau_patience=3).plateau_patience == 3


@pytest.mark.parametrize("n_iter_no_change", [1, 2, 4, 6])
def test_scikit_learns_adaptive_rate_is_plateau_patience_one_more_than_n_iter_no_change(n_iter_no_change):
    """scikit-learn's docs say 'adaptive' divides the rate by 5 after two epochs without improvement; its
    code, once more than n_iter_no_change have not improved. Run on a plateau (a rate too small to lower the
    cost by tol): it lowers at epochs n + 2 and 2n + 3 and stops at 3n + 4, its rate then ≤ 1e-6; the hint's
    plateau_patience = n + 1, plateau_factor = 0.2 lowers at the same epochs."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as ScikitLearns

    X, y = xdl.datasets.moons(200, seed=0)
    n = n_iter_no_change
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = ScikitLearns(hidden_layer_sizes=(8,), solver="sgd", learning_rate="adaptive", momentum=0.0,
                              learning_rate_init=2e-5, n_iter_no_change=n, max_iter=200, random_state=0).fit(X, y)
    assert theirs.n_iter_ == 3 * n + 4
    with pytest.raises(TypeError, match=r"'adaptive', plateau_patience=n_iter_no_change \+ 1 \(11 with its default "
                                        r"10\) with plateau_factor=0\.2"):
        MLPClassifier(learning_rate="adaptive")
    ours = MLPClassifier(hidden=(8,), optimizer="sgd", lr=2e-5, plateau_patience=n + 1, plateau_factor=0.2,
                         epochs=theirs.n_iter_, backend="numpy").fit(X, y)
    assert lowered_at(ours) == [n + 2, 2 * n + 3]
    assert list(ours.history_["lr"])[-1] == pytest.approx(theirs._optimizer.learning_rate)


def test_early_stopping_that_would_stop_before_the_plateau_lowers_the_rate_is_warned_at_fit():
    """scikit-learn's learning_rate='adaptive' lowers the rate where its early stopping would stop; here, with the
    defaults patience=10 and the hint's plateau_patience=11, early stopping stops first and the rate was never
    lowered, unsaid. Every (early_stopping, patience, plateau_patience) of a grid: a fit warns where both are on
    and patience ≤ plateau_patience, and only there; partial_fit (neither applies to a stream) never."""
    X, y = labelled_moons()
    cases = warned = 0
    for early_stopping in (False, True):
        for patience in range(1, 5):
            for plateau_patience in range(0, 5):
                clf = MLPClassifier(hidden=(4,), epochs=1, early_stopping=early_stopping, patience=patience,
                                    plateau_patience=plateau_patience, backend="numpy")
                expected = early_stopping and 0 < plateau_patience and patience <= plateau_patience
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    clf.fit(X, y)
                    clf.partial_fit(X, y)
                said = [str(w.message) for w in caught if "lowers the rate" in str(w.message)]
                assert len(said) == expected and all(w.filename == __file__ for w in caught), (caught, expected)
                if expected:
                    assert said[0] == (f"MLPClassifier: early stopping (patience={patience}) stops the run before the "
                                       f"plateau (plateau_patience={plateau_patience}) lowers the rate: "
                                       "scikit-learn's learning_rate='adaptive' lowers it instead of stopping; for "
                                       "that, give a patience above plateau_patience (a few times it: each lowering "
                                       "then has epochs to help)")
                cases, warned = cases + 1, warned + expected
    assert (cases, warned) == (40, 10)
    with pytest.raises(TypeError, match=r"with early_stopping=True, the dev cost, and a patience above "
                                        r"plateau_patience"):
        MLPClassifier(learning_rate="adaptive")


def test_validation_fraction_takes_scikit_learns_range_where_early_stopping_is_off():
    """validation_fraction=0 (scikit-learn's [0, 1) takes it; unread without early stopping) was refused with
    "(0, 1)": each value of a grid is taken here where scikit-learn's own check takes it, early stopping off; with
    it on, a held-out share must be > 0 (scikit-learn's fit fails there too, in its split)."""
    from sklearn.neural_network import MLPClassifier as ScikitLearns

    X, y = labelled_moons()
    cases = 0
    for fraction in (-0.5, -1e-9, 0, 0.0, 1e-9, 0.1, 0.5, 0.999, 1, 1.0, 2, float("nan"), float("inf")):
        try:
            ScikitLearns(validation_fraction=fraction)._validate_params()
            theirs = True
        except ValueError:
            theirs = False
        for early_stopping in (False, True):
            clf = MLPClassifier(validation_fraction=fraction, early_stopping=early_stopping)
            try:
                clf._config()
                ours = True
            except ValueError:
                ours = False
            assert ours == (theirs and (not early_stopping or fraction > 0)), (fraction, early_stopping)
            cases += 1
    assert cases == 26
    fitted = MLPClassifier(hidden=(4,), epochs=2, validation_fraction=0, backend="numpy").fit(X, y)
    assert fitted.n_iter_ == 2 and len(fitted.loss_curve_) == 2  # (unread: all of X trained on, no dev set)


def test_partial_fit_goes_on_after_a_plateau_without_it_as_after_early_stopping():
    """As early stopping, the plateau does not apply to a stream: partial_fit goes on with fit's trainer, its
    optimizer and the rate it lowered to, without the plateau; one from scratch trains without it (it watched
    a dev cost the stream has not). A pickle goes on with the optimizer too (its trainer's options leave the
    plateau's out: an xdl that kept them, pickled, is read so)."""
    X, y = labelled_moons()
    clf = MLPClassifier(hidden=(8,), optimizer="momentum", lr=0.5, epochs=10, plateau_patience=1, plateau_factor=0.5,
                        early_stopping=True, patience=100, backend="numpy").fit(X, y)
    trainer, rate, steps = clf.trainer_, clf.trainer_.optimizer.param_groups[0]["lr"], clf.trainer_.optimizer.t
    assert rate < 0.5
    clf.partial_fit(X, y)
    assert clf.trainer_ is trainer and clf.trainer_.callbacks == [] and trainer.optimizer.param_groups[0]["lr"] == rate
    state = clf.__getstate__()
    state["_trainer_options_"] = {**state["_trainer_options_"], "plateau_patience": 1, "plateau_factor": 0.5}
    older = MLPClassifier.__new__(MLPClassifier)
    older.__setstate__(pickle.loads(pickle.dumps(state)))
    assert older.partial_fit(X, y).trainer_.optimizer.t == steps + 2 * 7
    stream = MLPClassifier(hidden=(8,), plateau_patience=2, backend="numpy")
    stream.partial_fit(X, y, classes=["left", "right"])
    assert stream.trainer_.callbacks == [] and stream.n_iter_ == 1


def test_every_scikit_learn_parameter_is_one_here_or_says_the_way_here():
    """Each of scikit-learn's MLPClassifier parameters, with a typical value: a parameter of the same name here,
    or refused by the constructor and set_params naming one of this estimator's parameters; learning_rate, power_t,
    shuffle, verbose, momentum, nesterovs_momentum, beta_1, beta_2, epsilon and max_fun were a bare "unexpected
    keyword argument". scikit-learn's values spelled otherwise here (activation='logistic', batch_size='auto')
    are refused by the fit naming the value here."""
    import inspect

    from sklearn.neural_network import MLPClassifier as ScikitLearns

    ways = {"hidden_layer_sizes": "hidden", "alpha": "l2", "learning_rate_init": "lr", "max_iter": "epochs",
            "random_state": "seed", "solver": "optimizer='nesterov'", "n_iter_no_change": "patience=11",
            "tol": "plateau_patience", "learning_rate": "plateau_patience=n_iter_no_change + 1",
            "power_t": "schedule='inverse_time'", "momentum": "optimizer='momentum'",
            "nesterovs_momentum": "optimizer='nesterov'", "beta_1": "optimizer='adam'", "beta_2": "optimizer='adam'",
            "epsilon": "optimizer='adam'", "shuffle": "seed", "verbose": "history_", "max_fun": "'lbfgs'"}
    ours = set(MLPClassifier().get_params())
    for name in set(inspect.signature(ScikitLearns).parameters) - ours:
        value = getattr(ScikitLearns(), name)  # (its default: a typical value)
        for refuse, error in ((lambda: MLPClassifier(**{name: value}), TypeError),
                              (lambda: MLPClassifier().set_params(**{name: value}), ValueError)):
            with pytest.raises(error, match=rf"'{name}'; scikit-learn's {name} is .*{re.escape(ways[name])}") as told:
                refuse()
            way = str(told.value).split(" is ", 1)[1]  # a parameter here (verbose's: the history_ it fills)
            assert any(re.search(rf"\b{p}\b", way) for p in ours | {"history_"}), name
    X, y = labelled_moons()
    for name, value, way in [("activation", "logistic", "'sigmoid'"), ("activation", "identity", "relu"),
                             ("batch_size", "auto", "min(200, n_samples)")]:
        said = rf"^MLPClassifier: {name}='{value}' is scikit-learn's; .*{re.escape(way)}"
        with pytest.raises(ValueError, match=said):
            MLPClassifier(**{name: value}).fit(X, y)
    ways_here = MLPClassifier(hidden=(4,), activation="sigmoid", batch_size=min(200, len(X)), epochs=1)
    assert ways_here.fit(X, y).n_iter_ == 1


@pytest.mark.parametrize("name, value", [("learning_rate", "invscaling"), ("power_t", 0.5)])
def test_the_invscaling_hint_says_scikit_learns_rule_as_its_fits_follow_it(name, value):
    """scikit-learn's 'invscaling' sets the rate lr/(t + 1)**power_t at each epoch's end, t the examples trained on
    so far (its docs say "at each time step t"): the hint said "per step lr/t**power_t", a rule no fit follows.
    Checked on scikit-learn's fits of 1 to 3 epochs, then said by each of its two names."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as ScikitLearns

    X, y = labelled_moons()
    for epochs in (1, 2, 3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fitted = ScikitLearns(solver="sgd", learning_rate="invscaling", learning_rate_init=0.1, max_iter=epochs,
                                  batch_size=50, random_state=0).fit(X, y)
        assert fitted.t_ == epochs * len(X)
        assert fitted._optimizer.learning_rate == pytest.approx(0.1 / (fitted.t_ + 1) ** fitted.power_t, rel=1e-12)
    with pytest.raises(TypeError, match=rf"'{name}'; scikit-learn's {name} is .*'invscaling', lr/\(t \+ 1\)\*\*power_t "
                                        r"from each epoch's end on, t the examples trained on so far, has no match"):
        MLPClassifier(**{name: value})


def test_a_pipeline_searches_the_plateau_and_cross_validates():
    """GridSearchCV over plateau_patience and plateau_factor (early stopping crossed), in a pipeline after a
    StandardScaler, and cross_val_score: each fit runs; a plateau crossed with a schedule is refused as
    TrainConfig refuses it (scikit-learn's grid records the failure as NaN, as for its own invalid pairs)."""
    from sklearn.model_selection import GridSearchCV, cross_val_score

    X, y = labelled_moons()
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden=(8,), epochs=4, lr=0.05, backend="numpy"))
    grid = {"mlpclassifier__plateau_patience": [0, 1, 2], "mlpclassifier__plateau_factor": [0.2, 0.5],
            "mlpclassifier__early_stopping": [False, True]}
    search = GridSearchCV(pipe, grid, cv=2, error_score="raise").fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all() and len(search.cv_results_["params"]) == 12
    scores = cross_val_score(clone(pipe).set_params(mlpclassifier__plateau_patience=1), X, y, cv=3)
    assert scores.shape == (3,) and (scores > 0.5).all()
    crossed = GridSearchCV(pipe, {"mlpclassifier__plateau_patience": [0, 2],
                                  "mlpclassifier__schedule": ["none", "exponential"]}, cv=2, error_score="raise")
    with pytest.raises(ValueError, match="plateau_patience 2 lowers the rate on a plateau, and schedule 'exponential'"):
        crossed.fit(X, y)


@pytest.mark.parametrize("n_iter_no_change", [1, 3, 10])
def test_adaptive_and_the_plateau_agree_on_a_flat_plateau_only_as_the_docs_say(n_iter_no_change):
    """scikit-learn's own rule (`_update_no_improvement_count`, training loss, tol 1e-4) against `plateau_step`
    with plateau_patience = n + 1: the same epochs lowered on a flat cost, but a cost falling slower than tol an
    epoch lowers scikit-learn's rate as the flat one does (its best follows every fall), and this one's elsewhere or,
    where a patience's epochs fall more than 1e-4, never (its best moves only by more than 1e-4). README and the
    docstring said "is", unqualified."""
    import types
    from pathlib import Path

    from sklearn.neural_network._multilayer_perceptron import BaseMultilayerPerceptron

    from xdl.train.plateau import plateau_step

    def theirs(costs):
        state = types.SimpleNamespace(loss_curve_=[], best_loss_=np.inf, tol=1e-4, _no_improvement_count=0,
                                      verbose=False)
        lowered = []
        for epoch, cost in enumerate(costs, 1):
            state.loss_curve_.append(cost)
            BaseMultilayerPerceptron._update_no_improvement_count(state, False, None, None, None)
            if state._no_improvement_count > n_iter_no_change:
                lowered.append(epoch)
                state._no_improvement_count = 0
        return lowered

    def ours(costs):
        state = {"best": float("inf"), "wait": 0, "cooldown_left": 0}
        return [epoch for epoch, cost in enumerate(costs, 1)
                if plateau_step(state, cost, n_iter_no_change + 1, 0, 1e-4)]

    epochs = np.arange(8 * (n_iter_no_change + 2))
    flat = 0.5 + 1e-6 * np.sin(epochs)
    assert ours(flat) == theirs(flat) != []
    for fall in (2e-5, 6e-5, 9e-5):  # an epoch: below tol each, more than 1e-4 over a few epochs
        slow = 0.5 - fall * epochs
        assert theirs(slow) == theirs(flat) != ours(slow), fall
        if fall * (n_iter_no_change + 1) > 1e-4:  # (a patience's epochs fall more than 1e-4: improving here)
            assert ours(slow) == [], fall
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    for text in (readme, " ".join(MLPClassifier.__doc__.split())):
        assert re.search(r"plateau_factor ?= ?0\.2`?,? on a flat plateau \((its|scikit-learn's) best follows every "
                         r"fall", text), text[:200]


def test_partial_fit_goes_on_with_the_optimizer_whatever_the_plateau_s_factor_or_an_older_pickle_s_options():
    """The plateau's factor changed after fit (set_params) is nothing a stream reads: partial_fit goes on with
    fit's trainer; and a pickle of an xdl whose trainer's options lacked those added since (l1, max_grad_norm:
    `ADDED_OPTIONS`, at the values it trained with) goes on with its optimizer too."""
    X, y = labelled_moons()
    clf = MLPClassifier(hidden=(8,), optimizer="momentum", lr=0.1, epochs=3, plateau_patience=1, plateau_factor=0.5,
                        backend="numpy").fit(X, y)
    trainer, steps = clf.trainer_, clf.trainer_.optimizer.t
    state = clf.__getstate__()
    added_since = ("l1", "max_grad_norm")  # (an older xdl's trainer options lack them)
    state["_trainer_options_"] = {k: v for k, v in state["_trainer_options_"].items() if k not in added_since}
    clf.set_params(plateau_factor=0.3)
    assert clf.partial_fit(X, y).trainer_ is trainer and trainer.optimizer.t > steps
    older = MLPClassifier.__new__(MLPClassifier)
    older.__setstate__(pickle.loads(pickle.dumps(state)))
    assert older.partial_fit(X, y).trainer_.optimizer.t == trainer.optimizer.t


def test_the_plateau_s_defaults_are_xdl_train_s_and_the_callback_s():
    """plateau_patience 0 (off) and plateau_factor 0.1, as TrainConfig's and ReduceLROnPlateau's factor."""
    import inspect

    from xdl.config import TrainConfig
    from xdl.train import ReduceLROnPlateau

    clf = MLPClassifier()
    assert (clf.plateau_patience, clf.plateau_factor) == (TrainConfig().plateau_patience, TrainConfig().plateau_factor)
    assert clf.plateau_factor == inspect.signature(ReduceLROnPlateau).parameters["factor"].default


@pytest.mark.parametrize("name, here", [
    ("hidden_layer_sizes", "hidden"), ("alpha", "l2"), ("learning_rate_init", "lr"), ("max_iter", "epochs"),
    ("random_state", "seed"), ("solver", "optimizer"), ("n_iter_no_change", "patience"),
    ("learning_rate", "schedule"),
    ("nesterovs_momentum", "optimizer='nesterov' (True) or optimizer='momentum' (False)")])
def test_each_renamed_scikit_learn_parameter_is_told_first_as_the_parameter_it_is_here(name, here):
    """The hint opens with the parameter that stands for scikit-learn's (its docs: solver picks the weight
    optimizer; nesterovs_momentum=True is Nesterov's momentum, False the classical one), not one named later in
    its words: a hint for solver that opened with "schedule (…)" still said optimizer='nesterov' further on."""
    for refuse, error in ((lambda: MLPClassifier(**{name: 1}), TypeError),
                          (lambda: MLPClassifier().set_params(**{name: 1}), ValueError)):
        with pytest.raises(error) as told:
            refuse()
        way = str(told.value).split(f"scikit-learn's {name} is ", 1)[1]
        assert re.match(rf"{re.escape(here)}(?!\w)", way), (name, way)


def test_the_defaults_are_scikit_learns_where_a_parameter_stands_for_one_of_its():
    """hidden, activation, optimizer, lr, early_stopping, validation_fraction and warm_start default to what
    scikit-learn's MLPClassifier's hidden_layer_sizes, activation, solver, learning_rate_init, early_stopping,
    validation_fraction and warm_start do; l2 is 0 by default (the alpha hint says so: scikit-learn's is 1e-4),
    and patience 10 (n_iter_no_change's 10 is patience 11 here: the hint's)."""
    from sklearn.neural_network import MLPClassifier as ScikitLearns

    ours, theirs = MLPClassifier().get_params(), ScikitLearns().get_params()
    for here, there in [("hidden", "hidden_layer_sizes"), ("activation", "activation"), ("optimizer", "solver"),
                        ("lr", "learning_rate_init"), ("early_stopping", "early_stopping"),
                        ("validation_fraction", "validation_fraction"), ("warm_start", "warm_start")]:
        assert ours[here] == theirs[there], (here, ours[here], theirs[there])
    assert ours["l2"] == 0.0 and theirs["alpha"] == 1e-4 and ours["patience"] == 10
    assert "0 by default" in str(pytest.raises(TypeError, MLPClassifier, alpha=1e-4).value)


@pytest.mark.parametrize("dropout, batch_norm", [(0.0, False), (0.25, False), (0.5, True)])
def test_the_architecture_parameters_make_the_fitted_network(dropout, batch_norm):
    """hidden, dropout and batch_norm reach ``model_``: a Dropout of that rate after each hidden activation (none at
    0), a BatchNorm after each hidden Dense layer where batch_norm is on."""
    from xdl.nn import BatchNorm, Dense, Dropout

    X, y = labelled_moons()
    clf = MLPClassifier(hidden=(6, 5), dropout=dropout, batch_norm=batch_norm, epochs=1, backend="numpy").fit(X, y)
    layers = list(clf.model_)
    assert [layer.rate for layer in layers if isinstance(layer, Dropout)] == ([dropout] * 2 if dropout else [])
    assert sum(isinstance(layer, BatchNorm) for layer in layers) == (2 if batch_norm else 0)
    assert [layer.weight.shape for layer in layers if isinstance(layer, Dense)] == [(2, 6), (6, 5), (5, 2)]


def test_a_warm_start_checks_x_against_the_fitted_networks_features_as_scikit_learns(monkeypatch):
    """A warm start trains the fitted network on: X must have its features (scikit-learn's ``validate_data`` with
    reset=False, as ``predict``'s), else the fit is refused, nothing changed — X of other columns trained the old
    network on them with the names of the new ones recorded, and X of another width failed on NumPy's broadcast."""
    from sklearn.utils import validation
    from test_data_inputs import Frame

    read = validation._get_feature_names  # (scikit-learn reads a narwhals frame's names only: the stand-in's too)
    monkeypatch.setattr(validation, "_get_feature_names",
                        lambda X: np.asarray(X.columns, dtype=object) if isinstance(X, Frame) else read(X))
    X = np.random.default_rng(0).normal(size=(80, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    clf = MLPClassifier(hidden=(8,), epochs=2, warm_start=True, seed=0, backend="numpy").fit(X, y)
    with pytest.raises(ValueError, match=r"^X has 6 features, but MLPClassifier is expecting 3 features as input"):
        clf.fit(np.hstack([X, X]), y)
    assert clf.n_features_in_ == 3 and len(clf.loss_curve_) == 2
    named = MLPClassifier(hidden=(8,), epochs=2, warm_start=True, seed=0, backend="numpy").fit(
        Frame(X, ["a", "b", "c"]), y)
    with pytest.raises(ValueError, match=r"^The feature names should match those that were passed during fit"):
        named.fit(Frame(X, ["x", "y", "z"]), y)
    assert list(named.feature_names_in_) == ["a", "b", "c"] and len(named.loss_curve_) == 2
    named.fit(Frame(X, ["a", "b", "c"]), y)  # (the same columns: trained on)
    assert len(named.loss_curve_) == 4 and named.model_.feature_names_in_ == ("a", "b", "c")


@pytest.mark.parametrize("n, fraction, n_dev", [(20, 0.1, 2), (11, 0.1, 2), (10, 0.15, 2), (25, 0.28, 8), (30, 0.05, 2),
                                                 (7, 0.3, 3)])
def test_early_stopping_holds_out_the_ceiling_of_the_fraction_of_the_examples(monkeypatch, n, fraction, n_dev):
    """The dev examples early stopping holds out: ⌈fraction·m⌉ in floats, as scikit-learn's train_test_split
    (1.1 examples are 2, and 0.28·25 = 7.000000000000001 is 8; round(fraction·m) held out 1 and 7), the rest
    trained on; a validation set under 2, or (two classes) a training set under 2, refused as there."""
    split, held_out = xdl.data.split, []
    monkeypatch.setattr("xdl.sklearn.split", lambda *a, **k: held_out.append(len(split(*a, **k).X_dev)) or
                        split(*a, **k))
    X = np.random.default_rng(n).normal(size=(n, 2))
    y = np.arange(n) % 2
    clf = MLPClassifier(hidden=(4,), epochs=2, early_stopping=True, validation_fraction=fraction, patience=1).fit(X, y)
    assert len(clf.history_) >= 1 and clf.history_["dev_cost"][0] is not None and held_out == [n_dev]
    for m, refused, said in ((8, 0.05, "= 1 of 8 examples .*, which leaves 1 for validation and 7 for training"),
                             (7, 0.8, "= 6 of 7 examples .*, which leaves 6 for validation and 1 for training; "
                                      "validation needs at least 2 and training 2")):
        with pytest.raises(ValueError, match=rf"early_stopping holds out ⌈validation_fraction · n⌉ {said}"):
            MLPClassifier(early_stopping=True, validation_fraction=refused).fit(np.ones((m, 2)), np.arange(m) % 2)


def test_early_stopping_holds_out_each_class_in_proportion_drawn_from_the_seed(monkeypatch):
    """Where each class has 2 examples, the dev set is stratified: 10 and 10 examples, validation_fraction 0.2, hold
    out 2 of each (a split at random held out 4 of one class as often as not: 2 and 2 in 42% of the draws); which
    ones is drawn from ``seed`` (each seed its own dev set)."""
    split, parts = xdl.data.split, []
    monkeypatch.setattr("xdl.sklearn.split", lambda *a, **k: parts.append(split(*a, **k)) or parts[-1])
    X = np.random.default_rng(0).normal(size=(20, 2))
    y = np.array(["a", "b"] * 10)
    for seed in range(5):
        MLPClassifier(hidden=(4,), epochs=1, early_stopping=True, validation_fraction=0.2, seed=seed).fit(X, y)
        assert np.bincount(parts[-1].y_dev, minlength=2).tolist() == [2, 2], seed
    assert len({part.X_dev.tobytes() for part in parts}) == 5


def test_a_warm_start_standardizes_x_with_the_fitted_networks_scaling():
    """A warm start trains the fitted network on X standardized as at its first fit (what its `Standardize` layer
    and predict take): at a rate too small to move a weight, the training cost of the one-batch epoch is the log
    loss of predict_proba on that X, computed by scikit-learn (standardized anew, X·3 + 1 was another input)."""
    from sklearn.metrics import log_loss

    X = np.random.default_rng(0).normal(size=(64, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    clf = MLPClassifier(hidden=(8,), epochs=3, batch_size=64, lr=1e-2, warm_start=True, seed=0, backend="numpy")
    clf.fit(X, y)
    moved = 3 * X + 1
    proba = clf.predict_proba(moved).astype(np.float64)
    expected = log_loss(y, proba / proba.sum(axis=1, keepdims=True))  # (float32 rows sum to 1 within 1e-7: warned)
    clf.set_params(lr=1e-30, epochs=1).fit(moved, y)
    assert clf.loss_curve_[-1] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("classes", [[0], np.array(["a"]), (2.0,), np.array([3, 3, 3])])
def test_a_first_partial_fit_with_classes_of_one_class_is_refused(classes):
    """A classifier needs two classes: a first partial_fit told of one is refused, nothing fitted (as fit refuses
    a y of one class)."""
    X = np.random.default_rng(0).normal(size=(10, 2))
    clf = MLPClassifier(hidden=(4,))
    with pytest.raises(ValueError, match=r"^MLPClassifier: classes holds 1 class\(es\); a classifier needs at "
                                         r"least two"):
        clf.partial_fit(X, np.repeat(np.asarray(classes)[:1], 10), classes=classes)
    assert not hasattr(clf, "model_")


def test_partial_fit_standardizes_each_calls_x_with_the_first_calls_scaling():
    """The input scaling is measured on the first call's X; the calls after it are standardized with it (what the
    network's `Standardize` layer and predict take): at a rate too small to move a weight, a later call's training
    cost on its one batch is the log loss of predict_proba on its X, computed by scikit-learn."""
    from sklearn.metrics import log_loss

    X = np.random.default_rng(0).normal(size=(64, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    clf = MLPClassifier(hidden=(8,), batch_size=64, lr=1e-2, seed=0, backend="numpy")
    for _ in range(3):
        clf.partial_fit(X, y, classes=[0, 1])
    moved = 3 * X + 1
    proba = clf.predict_proba(moved).astype(np.float64)
    expected = log_loss(y, proba / proba.sum(axis=1, keepdims=True))  # (float32 rows sum to 1 within 1e-7: warned)
    clf.set_params(lr=1e-30).partial_fit(moved, y)
    assert clf.loss_curve_[-1] == pytest.approx(expected, rel=1e-4)


def test_a_pickled_partial_fit_with_an_option_changed_goes_on_with_a_new_optimizer():
    """An option changed between calls takes effect with a new optimizer, after a pickle too: the pickled
    optimizer state is restored only where the options are the same (restored anyway, a new lr was put back to
    the pickled 0.001, and Adam's state refused by a Momentum optimizer)."""
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    clf = MLPClassifier(hidden=(4,), seed=0, backend="numpy").partial_fit(X, y, classes=[0, 1])
    faster = pickle.loads(pickle.dumps(clf)).set_params(lr=0.5).partial_fit(X, y)
    assert faster.trainer_.optimizer.lr == 0.5 and faster.trainer_.epoch == 2 and faster.n_iter_ == 2
    other = pickle.loads(pickle.dumps(clf)).set_params(optimizer="momentum").partial_fit(X, y)
    assert type(other.trainer_.optimizer).__name__ == "Momentum" and other.n_iter_ == 2


@pytest.mark.parametrize("change, said", [({"dropout": 0.3}, "dropout=0.0; dropout is now 0.3"),
                                          ({"activation": "tanh"}, "activation='relu'; activation is now 'tanh'"),
                                          ({"batch_norm": True}, "batch_norm=False; batch_norm is now True")])
def test_a_warm_start_or_partial_fit_with_another_architecture_option_is_refused(change, said):
    """Each option the fitted network is made of (hidden, activation, batch_norm, dropout) must stay for a warm
    start or a partial_fit, which train that network on: a changed dropout was trained without it, silently."""
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    clf = MLPClassifier(hidden=(4,), epochs=1, warm_start=True, seed=0, backend="numpy").fit(X, y)
    with pytest.raises(ValueError, match=rf"^MLPClassifier: warm_start trains the fitted network on, made with "
                                         rf"{said}"):
        clf.set_params(**change).fit(X, y)
    with pytest.raises(ValueError, match=rf"^MLPClassifier: partial_fit trains the fitted network on, made with "
                                         rf"{said}"):
        clf.partial_fit(X, y)
    assert len(clf.loss_curve_) == 1


def test_partial_fit_under_a_cosine_schedule_given_more_epochs_spans_them():
    """A cosine schedule spans ``epochs``: raised between partial_fit calls, the rate of the next epoch is the new
    span's, lr·(1 + cos(π·e/E))/2 — after 2 epochs of E = 4, lr/2 (the old span's, 2, gave 0 there)."""
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    clf = MLPClassifier(hidden=(4,), lr=0.01, schedule="cosine", epochs=2, seed=0, backend="numpy")
    clf.partial_fit(X, y, classes=[0, 1]).partial_fit(X, y)
    assert clf.history_["lr"] == pytest.approx([0.01, 0.005])
    clf.set_params(epochs=4).partial_fit(X, y)
    assert clf.history_["lr"][-1] == pytest.approx(0.01 * (1 + np.cos(np.pi * 2 / 4)) / 2)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_a_fit_leaves_every_layer_of_the_network_in_evaluation_mode(early_stopping):
    """A fit leaves ``model_`` in evaluation mode (predict_proba's docstring), so predicting switches no mode: a
    network left in training mode was switched by each predict, and one predicting thread could run in another's
    training mode (dropout's masks, batch statistics)."""
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    clf = MLPClassifier(hidden=(8,), dropout=0.5, batch_norm=True, epochs=2, early_stopping=early_stopping, seed=0)
    clf.fit(X, y)
    assert [layer.training for layer in clf.model_] == [False] * len(clf.model_)


def _recording_held_out(monkeypatch, module, name) -> dict:
    """``module.name`` (a split) wrapped to record the size of the part it holds out, under "held_out"."""
    split, seen = getattr(module, name), {}

    def recorded(*args, **kwargs):
        parts = split(*args, **kwargs)
        seen["held_out"] = len(parts[1]) if isinstance(parts, list) else len(parts.X_dev)
        return parts

    monkeypatch.setattr(module, name, recorded)
    return seen


def _held_out_or_refused(estimator, seen, X, y):
    """How many examples ``estimator``'s early stopping held out of X, or "refused" (a ValueError)."""
    seen.clear()
    try:
        estimator.fit(X, y)
    except ValueError:
        return "refused"
    return seen["held_out"]


def test_early_stopping_holds_out_and_refuses_as_scikit_learn_s_estimator(monkeypatch):
    """early_stopping held out round(validation_fraction · n) and refused 0 (and a training set of 1),
    where scikit-learn's MLPClassifier holds out ⌈validation_fraction · n⌉ (train_test_split's count, in its
    float product) and refuses a validation set of 1, an empty training set and, for two classes (split
    stratified), a class of one or a training set of 1: compared with scikit-learn's own estimator over
    n, fractions and 2 to 4 classes (y cycling through them, and two classes with a class of one)."""
    import sklearn.neural_network._multilayer_perceptron as sklearn_mlp
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SklearnMLP

    import xdl.sklearn
    theirs = _recording_held_out(monkeypatch, sklearn_mlp, "train_test_split")
    ours = _recording_held_out(monkeypatch, xdl.sklearn, "split")
    labels = [(n, np.arange(n) % classes) for classes in (2, 3, 4) for n in range(2, 23)]
    labels += [(n, np.minimum(np.arange(n), 1)) for n in (6, 11, 40)]  # two classes, class 0 of one example
    labels += [(n, np.arange(n) % 2) for n in (25, 50)]  # (0.28 · 25 and 0.14 · 50 are 7.000000000000001: 8 held out)
    cases, outcomes = 0, set()
    for n, y in labels:
        X = np.random.default_rng(n).normal(size=(n, 2))
        for fraction in (0.01, 0.05, 0.1, 0.14, 0.15, 0.2, 0.25, 0.28, 1 / 3, 0.3, 0.5, 0.6, 0.7, 0.9, 0.95):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                expected = _held_out_or_refused(SklearnMLP(hidden_layer_sizes=(2,), max_iter=1, early_stopping=True,
                                                           validation_fraction=fraction), theirs, X, y)
            got = _held_out_or_refused(MLPClassifier(hidden=(2,), epochs=1, early_stopping=True,
                                                     validation_fraction=fraction, backend="numpy"), ours, X, y)
            assert got == expected, (n, y.tolist(), fraction)
            cases += 1
            outcomes.add(expected if expected == "refused" else "held out")
    assert cases == 68 * 15 and outcomes == {"refused", "held out"}
