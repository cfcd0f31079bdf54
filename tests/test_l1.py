"""L1 as a training option beside L2: ``Trainer(l1=)``, ``TrainConfig.l1`` / ``xdl train --l1``,
``fit_many``, ``MLPClassifier(l1=)``, a tune space's ``l1``, ``xdl gradcheck --l1`` — λ₁/m·Σ|W| added
to each batch's cost (`xdl.losses.l1`), as ``l2`` adds λ/(2m)·Σ‖W‖²."""

import json
import math
import re

import numpy as np
import pytest
from conftest import StopAtEpoch

import xdl
from xdl.cli import main
from xdl.config import TrainConfig
from xdl.data import split
from xdl.losses import MeanSquaredError, SoftmaxCrossEntropy, l1, l2
from xdl.optim import SGD, Adam
from xdl.sklearn import MLPClassifier
from xdl.train import Callback, Checkpoint, Trainer, fit_many


def moons(m=200, seed=0):
    X, y = xdl.datasets.moons(m, noise=0.2, seed=seed)
    return split(X, y, seed=seed)


def model64(seed=0, hidden=(8,)):
    xdl.seed(seed)
    return xdl.nn.mlp(2, list(hidden), 2).astype(np.float64)


@pytest.mark.parametrize("rule", [SGD, Adam])
@pytest.mark.parametrize("both", [False, True], ids=["l1", "l2-and-l1"])
def test_trainer_l1_is_a_loop_that_adds_losses_l1_bit_for_bit(rule, both):
    """Trainer(l1=λ) trains as a loop of one's own adding xdl.losses.l1(model, λ, m) to each batch's
    cost (m the batch size at every step, a last smaller batch's too), after l2's where both are set."""
    s = moons(150)
    X, y = s.X_train.astype(np.float64), s.y_train
    lam1, lam2, batch, epochs, seed = 0.3, (0.2 if both else 0.0), 32, 3, 7
    trained = model64()
    Trainer(trained, SoftmaxCrossEntropy(), rule(trained, lr=0.05), l2=lam2, l1=lam1, batch_size=batch,
            epochs=epochs, seed=seed, progress=False).fit(X, y)
    by_hand = model64()
    opt, loss = rule(by_hand, lr=0.05), SoftmaxCrossEntropy()
    for e in range(epochs):
        order = np.random.default_rng([seed, e]).permutation(len(X))  # the Trainer's shuffle of epoch e
        for start in range(0, len(X), batch):
            idx = order[start:start + batch]
            opt.zero_grad()
            total = loss(by_hand(X[idx]), y[idx])
            if lam2:
                total = total + l2(by_hand, lam2, m=batch)
            total = total + l1(by_hand, lam1, m=batch)
            total.backward()
            opt.step()
    for (name, a), b in zip(trained.state_dict().items(), by_hand.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    plain = model64()  # and the penalty did change the run
    Trainer(plain, SoftmaxCrossEntropy(), rule(plain, lr=0.05), l2=lam2, batch_size=batch, epochs=epochs,
            seed=seed, progress=False).fit(X, y)
    assert not np.array_equal(plain[0].weight.numpy(), trained[0].weight.numpy())


def test_l1_drives_small_weights_to_zero_where_l2_only_shrinks_them():
    """A linear regression whose target reads 2 of 10 features strongly and 4 faintly: L1 soft-thresholds
    the faint ones to 0 (within a step's lr·λ/m), L2 of the same λ shrinks them by a factor (1.1) and keeps them."""
    rng = np.random.default_rng(0)
    X = np.linalg.qr(rng.standard_normal((200, 10)))[0] * np.sqrt(200)  # orthogonal features: each weight on its own
    w_true = np.array([3.0, -2.0, 0.05, -0.05, 0.05, -0.05, 0, 0, 0, 0])
    y = X @ w_true
    weights = {}
    for name in ("l1", "l2"):
        xdl.seed(0)
        model = xdl.nn.Sequential(xdl.nn.Dense(10, 1)).astype(np.float64)
        Trainer(model, MeanSquaredError(), SGD(model, lr=0.05), batch_size=200, epochs=300, seed=0, progress=False,
                **{name: 40.0}).fit(X, y[:, None])  # λ/m = 0.2: L1's threshold 0.1 on w (J's curvature 2)
        weights[name] = model[0].weight.numpy().ravel()
    faint = np.abs(weights["l1"][2:6]), np.abs(weights["l2"][2:6])
    assert faint[0].max() < 0.015 and faint[1].min() > 0.03, faint
    assert np.all(np.abs(weights["l1"][:2]) > 1.5) and np.all(np.abs(weights["l2"][:2]) > 1.5)


class SetL1(Callback):
    """trainer.l1 = 0.4 after epoch 1 (a schedule of the penalty of one's own)."""

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == 1:
            trainer.l1 = 0.4


@pytest.mark.parametrize("name, value, said", [("l1", None, "got None"), ("l2", -1.0, "got -1.0"),
                                               ("l1", math.inf, "got inf")])
def test_a_penalty_a_callback_sets_is_checked_before_the_next_epoch(name, value, said):
    """trainer.l1 = None trained on without the penalty, unsaid, and -1 was refused inside a step as
    xdl.losses' lambd: refused before the next epoch, naming trainer.l1."""
    class SetPenalty(Callback):
        def on_epoch_end(self, trainer, record):
            setattr(trainer, name, value)

    s = moons(100)
    model = model64()
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=1e-2), batch_size=32, epochs=3,
                      callbacks=[SetPenalty()], progress=False)
    with pytest.raises(ValueError, match=rf"^trainer.{name} must be .*{re.escape(said)}"):
        trainer.fit(s.X_train, s.y_train)
    assert trainer.epoch == 1


def test_a_resume_with_l1_and_a_callbacks_l1_ends_as_the_uninterrupted_run(tmp_path):
    """The checkpoint holds l1 as it is now (l1_now, as l2_now): a run stopped after epoch 2 and resumed
    with a trainer made with l1=0.1 goes on at the 0.4 the callback set, bit for bit the whole run."""
    s = moons(200)

    def trainer(callbacks):
        model = model64()
        return Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=1e-2), l1=0.1, batch_size=32, epochs=4,
                       callbacks=callbacks, seed=0, progress=False)

    whole = trainer([SetL1(), StopAtEpoch(99), Checkpoint(tmp_path / "whole")])
    whole.fit(s.X_train, s.y_train)
    first = trainer([SetL1(), StopAtEpoch(2), Checkpoint(tmp_path / "cut")])
    first.fit(s.X_train, s.y_train)
    assert first.epoch == 2 and first.l1 == 0.4
    resumed = trainer([SetL1(), StopAtEpoch(99), Checkpoint(tmp_path / "cut")])
    resumed.fit(s.X_train, s.y_train, resume=tmp_path / "cut")
    assert resumed.l1 == 0.4 and resumed.epoch == 4
    for name, value in whole.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value, err_msg=name)
    assert resumed.history["train_cost"] == whole.history["train_cost"]
    # the run's provenance records l1 as it was made with: another l1 is a resume of another run
    other = Trainer(resumed.model, SoftmaxCrossEntropy(), Adam(resumed.model, lr=1e-2), l1=0.2, batch_size=32,
                    epochs=6, seed=0, progress=False)
    with pytest.raises(ValueError, match="l1 was 0.1 in the checkpoint, this run has 0.2"):
        other.fit(s.X_train, s.y_train, resume=tmp_path / "cut")


def test_a_checkpoint_without_l1_resumes_as_a_run_without_it(tmp_path):
    """A checkpoint of an xdl before l1 (no l1_now, no l1 in its provenance or in the command's options)
    resumes at l1 = 0, what its run trained with, and a resume with another l1 is refused as another
    run's; a damaged l1_now is refused by name."""
    from conftest import edit_saved  # (rewrites a checkpoint's extra, as an older or damaged file)

    s = moons(100)

    def trainer(epochs, **kwargs):
        model = model64()
        return Trainer(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), batch_size=32, epochs=epochs, seed=0,
                       progress=False, callbacks=[Checkpoint(tmp_path)], **kwargs)

    trainer(1).fit(s.X_train, s.y_train)
    path = tmp_path / "checkpoint.npz"

    def older(header, arrays):
        del header["extra"]["l1_now"], header["extra"]["provenance"]["l1"]

    edit_saved(path, older)
    with pytest.raises(ValueError, match="resume: l1 was 0.0 in the checkpoint, this run has 0.5"):
        trainer(2, l1=0.5).fit(s.X_train, s.y_train, resume=tmp_path)
    resumed = trainer(2)
    resumed.fit(s.X_train, s.y_train, resume=tmp_path)
    assert resumed.epoch == 2 and resumed.l1 == 0.0
    assert TrainConfig(l1=0.5).first_change({"l2": 0.0}) == ("l1", 0.0, 0.5)  # (the xdl command's options, too)
    assert TrainConfig().first_change({"l2": 0.0}) is None
    edit_saved(path, lambda header, arrays: header["extra"].update(l1_now=-1))
    with pytest.raises(ValueError, match="its 'l1_now' is -1, expected a number ≥ 0"):
        trainer(3).fit(s.X_train, s.y_train, resume=tmp_path)


BAD = [(-1.0, "finite number ≥ 0"), (math.nan, "finite number ≥ 0"), (math.inf, "finite number ≥ 0"),
       (True, "finite number ≥ 0"), (1e39, "at most 3.4e\\+38"), ("0.1", "finite number ≥ 0")]


@pytest.mark.parametrize("bad, said", BAD, ids=["negative", "nan", "inf", "bool", "beyond-float32", "str"])
def test_a_bad_l1_is_refused_by_name_before_any_work(bad, said):
    xdl.seed(0)
    model = xdl.nn.mlp(2, [4], 2)
    state = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=f"^l1 must be (a|at most).*{said}" if "at most" not in said
                       else f"^l1 must be {said}, float32's largest number"):
        Trainer(model, SoftmaxCrossEntropy(), SGD(model), l1=bad)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, state[k])
    if isinstance(bad, float) and not isinstance(bad, bool):  # (TrainConfig's fields are typed: a str is refused
        with pytest.raises(ValueError, match=f"TrainConfig: l1 must be .*{said}"):  # as not a number, elsewhere)
            TrainConfig(l1=bad)
    s = moons(60)
    clf = MLPClassifier(hidden=4, epochs=1, backend="numpy", l1=bad)
    with pytest.raises(ValueError, match="MLPClassifier: l1"):
        clf.fit(s.X_train, s.y_train)
    assert not hasattr(clf, "model_")


def test_fit_many_with_k_l1s_ends_where_each_ends_alone():
    X, y = xdl.datasets.digits()
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1.0)
    X, y, dev = X[:200], y[:200], (X[200:260], y[200:260])
    common = dict(hidden=[12], epochs=3, patience=0, batch_size=64, progress=False, dropout=0.0, schedule="none",
                  batch_norm=False)
    configs = [TrainConfig(seed=1, l1=0.0, **common), TrainConfig(seed=2, l1=0.5, **common),
               TrainConfig(seed=3, l1=2.0, l2=0.3, **common), TrainConfig(seed=4, l1=0.05, lr=1e-2, **common)]
    with xdl.use("numpy"):
        results = fit_many(configs, X, y, dev=dev, seed=11, dtype="float64")
        for config, result in zip(configs, results):
            xdl.seed(config.seed)
            model = config.build_model(X.shape[1], 10).astype(np.float64)
            trainer = config.build_trainer(model)
            assert trainer.l1 == config.l1
            trainer.seed = 11
            trainer.fit(X, y, dev=dev)
            assert result.status == "completed"
            for name, value in model.state_dict().items():
                got = result.model.state_dict()[name]
                assert np.linalg.norm(got - value) <= 1e-10 * np.linalg.norm(value), (config.l1, name)


def test_train_l1_flag_and_config_key_reach_the_run(tmp_path, capsys):
    fast = ["--dataset", "moons", "--hidden", "8", "--epochs", "2", "--no-progress"]
    assert main(["train", *fast, "--l1", "0.01", "--out", str(tmp_path / "flag")]) == 0
    report = json.loads((tmp_path / "flag" / "report.json").read_text())
    assert report["config"]["l1"] == 0.01
    (tmp_path / "run.toml").write_text("l1 = 0.02\nepochs = 2\n")
    assert main(["train", "--config", str(tmp_path / "run.toml"), "--dataset", "moons", "--hidden", "8",
                 "--no-progress", "--out", str(tmp_path / "file")]) == 0
    assert json.loads((tmp_path / "file" / "report.json").read_text())["config"]["l1"] == 0.02
    capsys.readouterr()
    assert main(["train", *fast, "--l1", "-1", "--out", str(tmp_path / "bad")]) == 1
    assert "--l1 must be a finite number ≥ 0, got -1.0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "λ₁/m·Σ|W|" in capsys.readouterr().out


def test_gradcheck_with_l1_passes_away_from_zero_and_at_zero(capsys):
    assert main(["gradcheck", "--dataset", "moons", "--hidden", "5", "3", "--l1", "0.1", "--no-batch-norm"]) == 0
    text = capsys.readouterr().out
    assert "(great)" in text or "(ok)" in text, text
    # a weight of exactly 0: backprop's sign(0) = 0 is the mean of |W|'s slopes ∓λ/m there, which the central
    # difference computes too: the check agrees (no kink to explain)
    model = model64(hidden=(3,))
    model[0].weight.data[0, 0] = 0.0
    s = moons(16)
    loss = SoftmaxCrossEntropy()
    result = xdl.gradcheck(lambda: loss(model(s.X_train[:8]), s.y_train[:8]) + l1(model, 5.0, m=8),
                           dict(model.named_parameters()))
    assert result.verdict in ("great", "ok") and result.worst.kink is None, result


def test_l1_is_searchable_and_the_default_space_leaves_it_out():
    from xdl.tune.space import DEFAULT_SPACE, Space
    from xdl.tune.search import trial_config

    assert "l1" not in DEFAULT_SPACE
    space = Space.from_dict({"l1": {"log_uniform": [1e-4, 1.0]}})
    points = space.sample(np.random.default_rng(0), 5)
    assert all(1e-4 <= p["l1"] <= 1.0 for p in points)
    config = trial_config(TrainConfig(hidden=[4]), points[0], "trial")
    assert config.l1 == points[0]["l1"] and config.build_trainer(config.build_model(2, 2)).l1 == points[0]["l1"]
    with pytest.raises(ValueError, match="l1 must be a finite number ≥ 0"):
        trial_config(TrainConfig(hidden=[4]), {"l1": -0.5}, "trial")


def test_mlpclassifier_l1_is_a_parameter_the_fit_trains_with():
    from sklearn.base import clone

    s = moons(120)
    clf = clone(MLPClassifier(hidden=4, epochs=2, backend="numpy", l1=0.3))
    assert clf.get_params()["l1"] == 0.3 and MLPClassifier().get_params()["l1"] == 0.0
    clf.fit(s.X_train, s.y_train)
    assert clf.trainer_.l1 == 0.3


def test_an_estimator_pickled_before_l1_goes_on_with_its_optimizer():
    """An MLPClassifier pickled by an xdl before l1 (no l1 parameter, its trainer's options without it)
    trains on at partial_fit as one pickled now: l1 = 0, and Adam's moments kept — the options it was
    trained with read as differing, and a new trainer dropped them."""
    import pickle

    s = moons(120)
    clf = MLPClassifier(hidden=4, epochs=2, backend="numpy").fit(s.X_train, s.y_train)
    state = pickle.loads(pickle.dumps(clf)).__dict__
    del state["l1"], state["_trainer_options_"]["l1"]
    older = MLPClassifier.__new__(MLPClassifier)
    older.__setstate__(state)
    now = pickle.loads(pickle.dumps(clf))
    for estimator in (older, now):
        estimator.partial_fit(s.X_train, s.y_train)
    assert older.l1 == 0.0
    for name, value in now.model_.state_dict().items():
        np.testing.assert_array_equal(older.model_.state_dict()[name], value, err_msg=name)



def test_an_unfitted_estimator_pickles_as_one_of_an_xdl_before_l1():
    """An estimator not fitted has no trainer's options to complete (`ADDED_OPTIONS`): it loads as it
    was, older (no l1) or not, and fits."""
    import pickle

    for state in (MLPClassifier(hidden=4, epochs=1, l1=0.5).__getstate__(),
                  MLPClassifier(hidden=4, epochs=1).__getstate__()):
        assert "_trainer_options_" not in state
        loaded = MLPClassifier.__new__(MLPClassifier)
        loaded.__setstate__(pickle.loads(pickle.dumps(state)))
        assert loaded.get_params()["l1"] == state["l1"] and not hasattr(loaded, "_trainer_options_")
    older = {k: v for k, v in state.items() if k != "l1"}
    loaded = MLPClassifier.__new__(MLPClassifier)
    loaded.__setstate__(older)
    assert loaded.l1 == 0.0
    s = moons(60)
    loaded.fit(s.X_train, s.y_train)

def test_a_study_of_an_xdl_before_l1_resumes_without_it_and_refuses_another_l1(tmp_path):
    """A study's base options saved by an xdl before l1 lack it: its trials trained without it. Its resume
    with l1 = 0.5 was let through (a key the saved study lacks was not compared), its later trials trained
    with a penalty the saved ones had not, ranked together; with l1 = 0 (or a space that searches l1) it goes on."""
    from xdl.tune import tune

    X, y = xdl.datasets.moons(60, noise=0.2, seed=0)
    dev, X, y = (X[45:], y[45:]), X[:45], y[:45]
    base = TrainConfig(epochs=1, hidden=[3], progress=False, patience=0)
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}}
    tune(X, y, dev, space=space, trials=2, base=base, directory=tmp_path)
    path = tmp_path / "trials.json"
    doc = json.loads(path.read_text())
    del doc["meta"]["base"]["l1"]  # as an xdl before l1 wrote it
    doc["trials"] = doc["trials"][:1]
    path.write_text(json.dumps(doc, indent=1))
    before = path.read_text()
    with pytest.raises(ValueError, match=r"base\.l1 0\.0, this one has 0\.5"):
        tune(X, y, dev, space=space, trials=2, base=TrainConfig(**{**vars(base), "l1": 0.5}), directory=tmp_path,
             resume=True)
    assert path.read_text() == before
    study = tune(X, y, dev, space=space, trials=2, base=base, directory=tmp_path, resume=True)
    assert [t.number for t in study.trials] == [0, 1]


def test_gradcheck_says_l1_kinks_in_several_layers_are_kinks_not_bugs():
    """Weights within ε of 0 in two layers: the second's difference was listed as "also differing like a bug"."""
    xdl.seed(0)
    model = model64(hidden=(4,))
    model[0].weight.data[0, 0] = 3e-8
    model[2].weight.data[1, 1] = -2e-8
    s = moons(16)
    loss = SoftmaxCrossEntropy()
    result = xdl.gradcheck(lambda: loss(model(s.X_train[:8]), s.y_train[:8]) + l1(model, 1.0, m=8),
                           dict(model.named_parameters()))
    assert result.worst.kink is not None and result.also == [], result
    assert len(result.also_kinks) == 1 and "differing like a bug" not in str(result), result
