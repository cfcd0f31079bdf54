"""`TrainConfig`'s inverse_sqrt schedule and its decay_k (``xdl train --schedule inverse_sqrt --decay-k K``): the
course's k/√epoch·α0 decay, its rates from a config, the command line and history.json; decay_k checked, refused
where no schedule reads it, searched by a tune space, batched by fit_many; runs, studies and estimators of an xdl
before it load and resume."""

import dataclasses
import json
import math
import pickle

import numpy as np
import pytest
from conftest import edit_saved

import xdl
from xdl.cli import main
from xdl.config import ADDED_OPTIONS, FLOAT32_RATES, SCHEDULE_OPTIONS, SCHEDULES, TrainConfig
from xdl.optim.optimizer import check_rate
from xdl.sklearn import MLPClassifier
from xdl.train import fit_many

FAST = ["--dataset", "moons", "--hidden", "8", "--epochs", "3", "--no-progress"]


def course_rate(lr: float, k: float, epoch: int) -> float:
    """The course's decay, α = k/√epoch·α0, at xdl's epoch count (from 0, the first two epochs at k·α0)."""
    return k / math.sqrt(max(epoch, 1)) * lr


def records(out) -> list[dict]:
    return json.loads((out / "history.json").read_text())["records"]


def test_inverse_sqrt_is_a_schedule_reading_lr_and_decay_k_alone():
    assert "inverse_sqrt" in SCHEDULES and SCHEDULE_OPTIONS["inverse_sqrt"] == ("lr", "decay_k")
    assert ADDED_OPTIONS["decay_k"] == TrainConfig().decay_k == 1.0  # (what a run before it trained with)


def test_a_configs_rates_are_the_course_formula_on_many_rates_ks_and_epochs():
    """600 (lr, decay_k) pairs, log-uniform over lr in [1e-6, 1] and decay_k in [1e-3, 1e3], each at 12 epochs
    from 0 to 10⁶: the config's schedule gives k/√epoch·α0 to a few ulps."""
    rng = np.random.default_rng(0)
    epochs = [0, 1, 2, 3, 4, 9, 10, 99, 100, 12345, 999_999, 10**6]
    for lr, k in zip(10 ** rng.uniform(-6, 0, 600), 10 ** rng.uniform(-3, 3, 600)):
        schedule = TrainConfig(schedule="inverse_sqrt", lr=float(lr), decay_k=float(k)).build_schedule()
        assert [schedule(e) for e in epochs] == pytest.approx([course_rate(lr, k, e) for e in epochs], rel=1e-14)


def test_inverse_sqrt_with_its_defaults_starts_at_lr_as_every_other_decay():
    """decay_k = 1: the first epoch trains at lr, the rate a config's lr is (the initial one with a schedule)."""
    for schedule in ("inverse_time", "exponential", "staircase", "step", "cosine", "inverse_sqrt"):
        assert TrainConfig(schedule=schedule, lr=0.02).build_schedule()(0) == 0.02, schedule


@pytest.mark.parametrize("bad", [0.0, -0.5, math.nan, math.inf, -math.inf])
def test_a_decay_k_not_a_finite_number_above_0_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="config: decay_k must be a finite number > 0"):
        TrainConfig.from_dict({"schedule": "inverse_sqrt", "decay_k": bad})
    with pytest.raises(TypeError, match="decay_k must be a number"):
        TrainConfig(decay_k="0.5")


def test_a_first_rate_beyond_float32_is_refused_at_its_epoch_though_the_last_is_in_range():
    """inverse_sqrt falls from lr·decay_k: the check of the last epoch alone (every other schedule's largest rate
    past lr) let 0.1·1e40 through, to fail in the run's first epoch."""
    with pytest.raises(ValueError, match=r"schedule 'inverse_sqrt' \(lr=0.1, decay_k=1e\+40\) gives lr 1e\+39 at "
                                         r"epoch 1 of 1000000000000;"):
        TrainConfig(schedule="inverse_sqrt", lr=0.1, decay_k=1e40, epochs=10**12)
    assert TrainConfig(schedule="inverse_sqrt", lr=0.1, decay_k=1e38, epochs=10**12).decay_k == 1e38
    with pytest.raises(ValueError, match="gives lr 3e\\+57 at epoch 21 of 200"):  # (a growing one: as before)
        TrainConfig(schedule="step", decay_factor=1e30)


def test_a_first_rate_below_float32_is_refused_by_the_config_as_the_trainer_would_refuse_it():
    """lr·decay_k below float32's smallest positive number (0 there) passed the config, whose check of the rates
    looked for inf alone, and the run failed at its first epoch, once it had printed its model: 400 (lr, decay_k)
    pairs around that boundary are accepted exactly where the Trainer's rule takes the first epoch's rate."""
    low = FLOAT32_RATES[0]
    rng = np.random.default_rng(1)
    for lr, k in zip(10 ** rng.uniform(-6, 0, 400), low * 10 ** rng.uniform(-3, 3, 400)):
        lr, k = float(lr), float(k) / float(lr)  # (lr·k spread over three decades either side of the boundary)
        try:
            config = TrainConfig(schedule="inverse_sqrt", lr=lr, decay_k=k, epochs=10)
        except ValueError as e:
            assert "the first epoch's rate must be at least 1.4e-45" in str(e) and lr * k < low, (lr, k)
            with pytest.raises(ValueError, match="a learning rate must be 0 or a number in float32's"):
                check_rate(course_rate(lr, k, 0), "schedule(0)")
        else:
            assert check_rate(config.build_schedule()(0), "schedule(0)") == lr * k >= low, (lr, k)


def test_xdl_train_refuses_a_first_rate_below_float32_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *FAST, "--schedule", "inverse_sqrt", "--decay-k", "1e-60", "--out", str(out)]) == 1
    printed = capsys.readouterr()
    assert printed.out == "" and not out.exists()
    assert printed.err == ("xdl train: error: --schedule 'inverse_sqrt' (lr=0.003, decay_k=1e-60) gives lr 3e-63 "
                           "at epoch 1 of 3; the first epoch's rate must be at least 1.4e-45, float32's smallest "
                           "positive number (a later epoch's may decay to 0)\n")


def test_a_config_file_with_decay_k_reads_it_and_one_without_it_loads_at_1(tmp_path):
    """A file holding every option but decay_k (an older xdl's best.toml) loads, at decay_k 1."""
    path = tmp_path / "run.toml"
    path.write_text('schedule = "inverse_sqrt"\ndecay_k = 0.25\nlr = 0.1\n')
    config = TrainConfig.from_toml(path)
    assert (config.schedule, config.decay_k, config.build_schedule()(4)) == ("inverse_sqrt", 0.25, 0.0125)
    older = {k: v for k, v in dataclasses.asdict(TrainConfig(lr=0.01)).items() if k != "decay_k"}
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in older.items()))
    assert TrainConfig.from_toml(path) == TrainConfig(lr=0.01)


def test_xdl_train_decays_as_inverse_sqrt_and_its_history_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *FAST, "--lr", "0.1", "--schedule", "inverse_sqrt", "--decay-k", "0.5",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert [r["lr"] for r in records(out)] == pytest.approx([course_rate(0.1, 0.5, e) for e in range(3)], rel=1e-6)
    config = json.loads((out / "report.json").read_text())["config"]
    assert (config["schedule"], config["decay_k"]) == ("inverse_sqrt", 0.5)


@pytest.mark.parametrize("argv, message", [
    (["train", "--decay-k", "0.5"], "--decay-k is not read by --optimizer adam or --schedule inverse_time: it "
                                    "would be ignored"),
    (["train", "--schedule", "none", "--decay-k", "0.5"], "--decay-k is not read by --optimizer adam or --schedule "
                                                          "none"),
    (["train", "--schedule", "inverse_sqrt", "--decay-rate", "0.1"], "--decay-rate is not read by --optimizer adam "
                                                                     "or --schedule inverse_sqrt"),
    (["train", "--schedule", "inverse_sqrt", "--decay-k", "0"], "--decay-k must be a finite number > 0, got 0.0"),
    (["train", "--schedule", "inverse_sqrt", "--lr", "0.1", "--decay-k", "1e40"], "gives lr 1e+39 at epoch 1"),
    (["tune", "--decay-k", "0.5"], "--decay-k is not read by --optimizer adam or --schedule inverse_time"),
    (["lr-find", "--decay-k", "0.5"], "--decay-k is xdl train's, not lr-find's"),
])
def test_decay_k_flag_errors_name_it(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_a_run_of_an_xdl_before_decay_k_resumes_and_refuses_another_decay_k(tmp_path, capsys):
    """A checkpoint and report recording no decay_k (an xdl before it) resume; a --config holding decay_k = 0.5 is
    another run than the one it trained (at 1, `ADDED_OPTIONS`), refused by name."""
    out = tmp_path / "old"
    assert main(["train", *FAST, "--epochs", "2", "--out", str(out)]) == 0

    def older(header, arrays):
        del header["extra"]["run_info"]["config"]["decay_k"]

    edit_saved(out / "checkpoints" / "checkpoint.npz", older)
    report = json.loads((out / "report.json").read_text())
    del report["config"]["decay_k"]
    (out / "report.json").write_text(json.dumps(report))
    other = tmp_path / "other.toml"
    other.write_text("decay_k = 0.5\n")
    capsys.readouterr()
    assert main(["train", "--config", str(other), "--resume", str(out / "checkpoints"), "--epochs", "3",
                 "--no-progress"]) == 1
    said = capsys.readouterr().err
    assert f"decay_k in {str(other)!r}: the checkpoint in" in said and "was made with 1.0, this run has 0.5" in said
    assert main(["train", "--resume", str(out / "checkpoints"), "--epochs", "3", "--no-progress"]) == 0
    assert [r["epoch"] for r in records(out)] == [1, 2, 3]


@pytest.fixture(scope="module")
def digits():
    X, y = xdl.datasets.digits()
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1.0)
    return X[:320], y[:320], (X[320:420], y[320:420])


def test_fit_many_of_configs_with_different_decay_k_ends_as_each_alone(digits):
    """decay_k is per model, as decay_rate: K models of other k's batched end with the weights and rates each ends
    with alone (float64)."""
    from test_many import alone, assert_same_weights, small

    X, y, dev = digits
    configs = [small(seed=s, lr=1e-2, schedule="inverse_sqrt", decay_k=k) for s, k in ((1, 0.5), (2, 1.0), (3, 2.0))]
    with xdl.use("numpy"):
        results = fit_many(configs, X, y, dev=dev, seed=11, dtype="float64")
        for config, result in zip(configs, results):
            model, history = alone(config, X, y, dev, seed=11)
            assert result.status == "completed"
            assert_same_weights(result.model, model, 1e-10)
            assert result.history["lr"] == history["lr"]
            assert history["lr"] == pytest.approx([course_rate(1e-2, config.decay_k, e) for e in range(4)], rel=1e-15)


def test_a_search_of_decay_k_trains_each_trial_at_its_k_and_resumes_a_study_saved_without_it(tmp_path):
    """A space searches decay_k under inverse_sqrt (refused under a schedule that does not read it); a study whose
    base an xdl before decay_k saved resumes."""
    from xdl.tune import tune

    X, y = xdl.datasets.moons(60, noise=0.2, seed=0)
    dev, X, y = (X[45:], y[45:]), X[:45], y[:45]
    base = TrainConfig(epochs=2, hidden=[3], progress=False, patience=0, schedule="inverse_sqrt", lr=0.05)
    space = {"decay_k": {"log_uniform": [0.1, 10.0]}}
    study = tune(X, y, dev, space=space, trials=3, base=base, directory=tmp_path)
    ks = [t.params["decay_k"] for t in study.trials]
    assert len(set(ks)) == 3 and all(0.1 <= k <= 10 for k in ks)
    assert study.best_config().decay_k in ks and study.best_config().schedule == "inverse_sqrt"
    with pytest.raises(ValueError, match="decay_k is not read by optimizer 'adam' or schedule 'inverse_time'"):
        tune(X, y, dev, space=space, trials=2, base=dataclasses.replace(base, schedule="inverse_time"))
    path = tmp_path / "trials.json"
    doc = json.loads(path.read_text())
    del doc["meta"]["base"]["decay_k"]  # as an xdl before decay_k wrote it
    doc["trials"] = doc["trials"][:2]
    path.write_text(json.dumps(doc, indent=1))
    resumed = tune(X, y, dev, space=space, trials=3, base=base, directory=tmp_path, resume=True)
    assert [t.params for t in resumed.trials] == [t.params for t in study.trials]


def test_mlpclassifier_takes_decay_k_and_goes_on_with_one_pickled_before_it():
    """decay_k is a parameter (TrainConfig's default), read by inverse_sqrt; an estimator pickled by an xdl before it
    (no decay_k, its trainer's options without it) trains on at partial_fit as one pickled now, Adam's moments kept."""
    X, y = xdl.datasets.moons(120, noise=0.2, seed=0)
    assert MLPClassifier().get_params()["decay_k"] == TrainConfig().decay_k
    clf = MLPClassifier(hidden=(4,), lr=0.1, epochs=2, schedule="inverse_sqrt", decay_k=0.5, backend="numpy").fit(X, y)
    assert [clf.trainer_.schedule(e) for e in range(3)] == pytest.approx([course_rate(0.1, 0.5, e) for e in range(3)])
    clf = MLPClassifier(hidden=(4,), epochs=2, backend="numpy").fit(X, y)
    state = pickle.loads(pickle.dumps(clf)).__dict__
    del state["decay_k"], state["_trainer_options_"]["decay_k"]
    older = MLPClassifier.__new__(MLPClassifier)
    older.__setstate__(state)
    now = pickle.loads(pickle.dumps(clf))
    for estimator in (older, now):
        estimator.partial_fit(X, y)
    assert older.decay_k == 1.0
    for name, value in now.model_.state_dict().items():
        np.testing.assert_array_equal(older.model_.state_dict()[name], value, err_msg=name)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_takes_float32_s_smallest_and_largest_rates_at_the_first_epoch(schedule):
    """The first epoch's rate must be at least float32's smallest positive number, and every epoch's at most its
    largest (`FLOAT32_RATES`): lr at either exactly is a first epoch at it, under every schedule (each starts at
    lr, and falls), and is taken; half the smallest and twice the largest, beyond float32's range, are refused."""
    for rate in FLOAT32_RATES:
        config = TrainConfig(lr=rate, schedule=schedule, epochs=5)
        assert config.build_schedule() is None or config.build_schedule()(0) == rate
    for rate in (FLOAT32_RATES[0] / 2, FLOAT32_RATES[1] * 2):
        with pytest.raises(ValueError, match="lr"):
            TrainConfig(lr=rate, schedule=schedule)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_each_schedule_gives_the_rate_its_help_says_at_every_epoch(schedule):
    """`TrainConfig.build_schedule` against each schedule's formula in the option's help, epoch from 0, computed here
    with distinct settings (so one read in another's place shows): inverse_time α0/(1 + decay_rate·epoch),
    exponential α0·decay_base^epoch, staircase α0/(1 + decay_rate·⌊epoch/decay_every⌋), step α0·decay_factor^⌊epoch/
    decay_every⌋, inverse_sqrt α0·decay_k/√max(epoch, 1), cosine α0·(1 + cos(π·epoch/epochs))/2; none: constant."""
    settings = dict(lr=0.1, decay_rate=0.5, decay_base=0.9, decay_every=3, decay_factor=0.25, decay_k=0.7, epochs=10)
    formulas = {"inverse_time": lambda e: 0.1 / (1 + 0.5 * e), "exponential": lambda e: 0.1 * 0.9**e,
                "staircase": lambda e: 0.1 / (1 + 0.5 * (e // 3)), "step": lambda e: 0.1 * 0.25 ** (e // 3),
                "inverse_sqrt": lambda e: 0.1 * 0.7 / math.sqrt(max(e, 1)),
                "cosine": lambda e: 0.1 * (1 + math.cos(math.pi * e / 10)) / 2}
    built = TrainConfig(schedule=schedule, **settings).build_schedule()
    if schedule == "none":
        assert built is None
        return
    assert [built(e) for e in range(10)] == pytest.approx([formulas[schedule](e) for e in range(10)], rel=1e-12)
