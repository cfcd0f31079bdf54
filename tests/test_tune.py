"""Hyperparameter search: sampling on each scale, coarse to fine, resumable studies, bad input, CLI."""

import dataclasses
import importlib.util
import json
import math
import os
import re
import threading
import time
import warnings

import numpy as np
import pytest
from scipy import stats

import xdl
from xdl import cli
from xdl.config import TrainConfig
from xdl.data import split
from xdl.train import Trainer
from xdl.tune import Choice, LogUniform, OneMinusLog, Space, Uniform, tune, zoom


@pytest.fixture(scope="module")
def data():
    X, y = xdl.datasets.digits()
    s = split(X[:500], y[:500], seed=0)
    return s.X_train, s.y_train, (s.X_dev, s.y_dev)


BASE = TrainConfig(hidden=[16], epochs=2, patience=0, progress=False)


def test_log_uniform_draws_are_uniform_in_the_exponent():
    draws = LogUniform(1e-4, 1).sample(np.random.default_rng(0), 10_000)
    assert stats.kstest(np.log10(draws), "uniform", args=(-4, 4)).pvalue > 0.01
    betas = np.array(OneMinusLog(0.9, 0.999).sample(np.random.default_rng(1), 10_000))
    assert stats.kstest(np.log10(1 - betas), "uniform", args=(-3, 2)).pvalue > 0.01
    assert 0.9 <= betas.min() and betas.max() <= 0.999


def test_the_same_seed_draws_the_same_trials():
    space = Space.from_dict({"lr": {"log_uniform": [1e-4, 1]}, "hidden": {"choice": [[8], [16]]},
                             "batch_size": {"int_uniform": [16, 64]}, "dropout": {"uniform": [0, 0.5]}})
    a, b = space.sample(np.random.default_rng(3), 20), space.sample(np.random.default_rng(3), 20)
    assert a == b
    assert all(isinstance(t["batch_size"], int) and 16 <= t["batch_size"] <= 64 for t in a)
    assert {tuple(t["hidden"]) for t in a} == {(8,), (16,)}


def test_zoom_keeps_the_best_point_in_a_smaller_box():
    space = Space.from_dict({"lr": {"log_uniform": [1e-4, 1]}, "beta1": {"one_minus_log": [0.8, 0.999]},
                             "dropout": {"uniform": [0, 0.5]}, "hidden": {"choice": [[8], [16], [32], [64]]}})
    best = {"lr": 0.9, "beta1": 0.85, "dropout": 0.01, "hidden": [32]}  # near edges: the box moves inside
    narrow = zoom(space, best)
    for name, d in narrow.dimensions.items():
        old = space.dimensions[name]
        assert d.box[1] - d.box[0] < old.box[1] - old.box[0], name
        assert d.box[0] <= d.coordinate(best[name]) <= d.box[1], name
    assert all(1e-4 <= t["lr"] <= 1 for t in narrow.sample(np.random.default_rng(0), 200))


def test_coarse_to_fine_goes_on_for_rounds_after_its_boxes_reach_float_resolution(data):
    """Each round halves the box: after ~50 its ends are one float (an empty range: "low must be <
    high" at round 54 of 60, the search lost), or, rounded to floats and back, miss the centre they
    were drawn around. Narrowing stops at a box within `RESOLUTION` (10⁻¹²) of its values' size."""
    X, y, dev = data
    study = tune(X[:64], y[:64], dev, {"dropout": {"uniform": [0.0, 0.5]}}, trials=60, rounds=60,
                 strategy="coarse_to_fine", base=dataclasses.replace(BASE, hidden=[4], epochs=1))
    assert len(study.trials) == 60
    space = Space.from_dict({"lr": {"log_uniform": [1e-4, 3e-2]}, "beta1": {"one_minus_log": [0.8, 0.999]}})
    rng = np.random.default_rng(0)
    for _ in range(100):  # each round's best a draw of its box: the box holds it, ever narrower to 10⁻¹²
        best = space.sample(rng, 1)[0]
        space = zoom(space, best)
        assert all(d.box[0] <= d.coordinate(best[name]) <= d.box[1] for name, d in space.dimensions.items())
    assert all(0 < d.bounds[1] - d.bounds[0] < 1e-11 * d.bounds[1] for d in space.dimensions.values())


def test_a_space_names_a_bad_generator_or_count():
    """An int seed (scikit-learn's random_state) was "'int' object has no attribute 'spawn'"; a grid of
    0 or -3 points gave one, of 2.5 two."""
    space = Space.from_dict({"lr": {"log_uniform": [1e-4, 1e-1]}})
    for rng in (0, np.random.RandomState(0), None):
        with pytest.raises(TypeError, match="sample: rng must be a numpy.random.Generator"):
            space.sample(rng, 3)
    for n in (-1, 2.5, True):
        with pytest.raises(ValueError, match="sample: n must be an integer ≥ 0"):
            space.sample(np.random.default_rng(0), n)
    for n in (0, -3, 2.5):
        with pytest.raises(ValueError, match="grid: n must be a positive integer"):
            space.grid(n)
    assert space.sample(np.random.default_rng(0), 0) == [] and len(space.grid(np.int64(2))) == 2


def test_a_narrowed_space_says_what_it_samples():
    """Its spec (what a study records and a resume compares) and repr are of the narrowed bounds
    (they kept the full ones); a choice keeps ``shrink`` of its values, each as likely (a 4-way one
    kept 3 at 25/50/25), an integer range whole integers; a grid names no integer twice."""
    fine = zoom(Space.from_dict({"lr": LogUniform(1e-4, 1e-1)}), {"lr": 0.05}, shrink=0.1)
    low, high = fine.spec()["lr"]["log_uniform"]
    assert 0.03 < low < 0.05 < high < 0.08 and f"LogUniform({low!r}, {high!r})" in repr(fine)
    assert all(low <= t["lr"] <= high for t in fine.sample(np.random.default_rng(0), 100))
    four = Space.from_dict({"activation": {"choice": ["relu", "tanh", "sigmoid", "leaky_relu"]}})
    assert zoom(four, {"activation": "tanh"}).spec() == {"activation": {"choice": ["tanh", "sigmoid"]}}
    assert zoom(four, {"activation": "leaky_relu"}).spec() == {"activation": {"choice": ["sigmoid", "leaky_relu"]}}
    ints = Space.from_dict({"decay_every": {"int_uniform": [1, 10]}})
    narrow = zoom(ints, {"decay_every": 5})
    assert narrow.spec() == {"decay_every": {"int_uniform": [3, 7]}}
    counts = np.bincount([t["decay_every"] for t in narrow.sample(np.random.default_rng(0), 5000)])[3:]
    assert len(counts) == 5 and counts.min() > 900  # each of the five as likely
    assert zoom(Space.from_dict({"decay_every": {"int_uniform": [1, 2]}}), {"decay_every": 2}).grid(4) == \
        [{"decay_every": 2}]
    assert [t["decay_every"] for t in ints.grid(30)] == list(range(1, 11))  # no value twice ([1, 2, 2, 3] for 4 of 1–3)
    assert Space.from_dict({"decay_every": {"int_uniform": [1, 3]}}).grid(4) == [{"decay_every": v} for v in (1, 2, 3)]


def test_a_space_draws_the_same_points_in_any_key_order_and_a_choice_of_tuples_as_a_study_reads_it():
    a = Space({"lr": LogUniform(1e-3, 1e-1), "dropout": Uniform(0.1, 0.4)})
    b = Space({"dropout": Uniform(0.1, 0.4), "lr": LogUniform(1e-3, 1e-1)})
    assert a.sample(np.random.default_rng(5), 4) == b.sample(np.random.default_rng(5), 4)
    assert a.sample(np.random.default_rng(5), 9)[:4] == a.sample(np.random.default_rng(5), 4)  # more draw on
    hidden = Space({"hidden": Choice([(32,), (64,)])})  # read back from trials.json as lists
    assert hidden.spec() == {"hidden": {"choice": [[32], [64]]}}
    assert zoom(hidden, {"hidden": [64]}).spec() == zoom(hidden, {"hidden": (64,)}).spec() == \
        {"hidden": {"choice": [[64]]}}


def test_a_coarse_to_fine_study_resumes_whichever_round_found_its_best():
    """Each round zooms around the best of the rounds before it: a resumed study holds the later
    rounds' trials too, which must not move the box (a later round's best made the resume draw
    other points and refuse: "the space or seed changed")."""
    from xdl.tune.search import _rounds
    from xdl.tune.study import Study, Trial

    space = Space({"lr": LogUniform(1e-4, 1e-1), "hidden": Choice([[8], [16], [32]])})

    def run(study):
        drawn = []
        for round_, points in _rounds(space, 9, "coarse_to_fine", 3, 0, study):
            for params in points:
                number = len(drawn)
                drawn.append(params)
                if number not in study.finished():  # each later trial better than every earlier one
                    study.trials.append(Trial(number, round_, params, "completed", dev_accuracy=number / 10,
                                              dev_cost=1.0))
        return drawn

    study = Study({})
    first = run(study)
    assert run(study) == first  # resumed with all nine trials saved


def test_rounds_split_the_trials_evenly_the_first_rounds_taking_the_remainder():
    """coarse_to_fine and tpe draw ``trials`` points in ``rounds`` rounds: sizes that sum to the trials, differ by at
    most one, the larger first — against the split written out, for every trials ≤ 40 and rounds ≤ trials."""
    from xdl.tune.search import _round_sizes

    cases = 0
    for trials in range(1, 41):
        for rounds in range(1, trials + 1):
            q, r = divmod(trials, rounds)
            assert _round_sizes(trials, rounds) == [q + 1] * r + [q] * (rounds - r), (trials, rounds)
            cases += 1
    assert cases == 40 * 41 // 2


def test_check_search_rounds_and_tpe_seed_bounds_and_a_resume_refusing_another_split_of_rounds(tmp_path):
    """rounds defaults to min(2, trials) and is refused for grid as for random; tpe takes every seed below 2**32;
    a coarse_to_fine study resumes with its own trials and rounds only (its points are drawn per round: another
    split draws other points), where a random one may be given more trials."""
    from xdl.tune.search import check_search

    space = {"lr": {"log_uniform": [1e-3, 1e-1]}}
    assert [check_search(space, trials=n, strategy="coarse_to_fine")[2] for n in (1, 2, 5)] == [1, 2, 2]
    with pytest.raises(ValueError, match=r"^rounds is for the strategies that search in rounds .*'grid' draws"):
        check_search(space, trials=4, strategy="grid", rounds=2)
    if importlib.util.find_spec("optuna") is not None:
        check_search(space, trials=2, strategy="tpe", seed=2**32 - 1)
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32\) with strategy tpe"):
            check_search(space, trials=2, strategy="tpe", seed=2**32)
    search = dict(trials=4, strategy="coarse_to_fine", rounds=2)
    for strategy in ("coarse_to_fine", "random"):
        directory = tmp_path / strategy
        directory.mkdir()
        check_search(space, **{**search, "strategy": strategy, "rounds": None if strategy == "random" else 2},
                     directory=directory)[4].save()
    assert check_search(space, **search, directory=tmp_path / "coarse_to_fine", resume=True)[4].meta["rounds"] == 2
    assert check_search(space, trials=6, directory=tmp_path / "random", resume=True)[4].meta["trials"] == 6
    for change, said in ((dict(rounds=3), r"made with rounds 2, this one has 3\. "),
                         (dict(trials=6), r"made with trials 4, this one has 6\. ")):
        with pytest.raises(ValueError, match=said):
            check_search(space, **{**search, **change}, directory=tmp_path / "coarse_to_fine", resume=True)

def test_the_trials_a_search_plans_are_its_grids_points_for_grid():
    """What a timeout's message counts a search's trials out of: a grid's points (⌊n^(1/d)⌋ values per range: 3 × 3
    of 10 trials over two ranges, 2 × 2 of 8), the trials asked for otherwise."""
    from xdl.tune.search import planned_trials

    space = Space.from_dict({"lr": {"log_uniform": [1e-3, 1e-1]}, "dropout": {"uniform": [0.0, 0.5]}})
    assert [planned_trials(space, n, "grid") for n in (10, 8, 4)] == [9, 4, 4]
    assert [planned_trials(space, 10, strategy) for strategy in ("random", "coarse_to_fine", "tpe")] == [10] * 3


def test_coarse_to_fine_samples_the_second_round_around_the_first_rounds_best(data):
    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-4, 1e-1]}, "dropout": {"uniform": [0.0, 0.5]}}
    study = tune(X, y, dev, space, trials=12, strategy="coarse_to_fine", rounds=2, base=BASE, execution="batched")
    first = [t for t in study.trials if t.round == 0]
    best = min(first, key=lambda t: (-t.dev_accuracy, t.dev_cost))
    box = zoom(Space.from_dict(space), best.params)
    for t in (t for t in study.trials if t.round == 1):
        for name, d in box.dimensions.items():
            assert d.box[0] - 1e-12 <= d.coordinate(t.params[name]) <= d.box[1] + 1e-12


def test_batched_and_sequential_executions_give_the_same_trials(data):
    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}, "l2": {"log_uniform": [1e-3, 1.0]}}
    config = TrainConfig(hidden=[16], epochs=2, patience=0, progress=False, dropout=0.0)
    a = tune(X, y, dev, space, trials=3, base=config, execution="sequential")
    b = tune(X, y, dev, space, trials=3, base=config, execution="batched")
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    np.testing.assert_allclose([t.dev_cost for t in a.trials], [t.dev_cost for t in b.trials], rtol=1e-3)


def test_a_resumed_search_skips_finished_trials(data, tmp_path, monkeypatch):
    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}}
    full = tune(X, y, dev, space, trials=5, base=BASE, execution="sequential", directory=tmp_path)
    saved = json.loads((tmp_path / "trials.json").read_text())
    saved["trials"] = saved["trials"][:2]  # as if killed after two trials
    (tmp_path / "trials.json").write_text(json.dumps(saved))
    fits = []
    original = Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self, *a, **k: fits.append(1) or original(self, *a, **k))
    resumed = tune(X, y, dev, space, trials=5, base=BASE, execution="sequential", directory=tmp_path, resume=True)
    assert len(fits) == 3
    assert [t.params for t in resumed.trials] == [t.params for t in full.trials]
    np.testing.assert_allclose([t.dev_cost for t in resumed.trials], [t.dev_cost for t in full.trials], rtol=1e-6)
    with pytest.raises(ValueError, match=r"^resume: .* made with seed 0, this one has 1\. "
                                         r"Resuming continues the same search: its saved trials were made that way, "
                                         r"and the rest must be made alike .*; for another .* use a new directory"):
        tune(X, y, dev, space, trials=6, base=BASE, directory=tmp_path, resume=True, seed=1)
    with pytest.raises(ValueError, match=r"made with base\.epochs 2, this one has 3\. Resuming"):  # the one option
        tune(X, y, dev, space, trials=5, base=dataclasses.replace(BASE, epochs=3), directory=tmp_path, resume=True)
    older = json.loads((tmp_path / "trials.json").read_text())
    del older["meta"]["sampling"]  # a study an older xdl drew (in the space's order, from one stream)
    (tmp_path / "older").mkdir()
    (tmp_path / "older" / "trials.json").write_text(json.dumps(older))
    with pytest.raises(ValueError, match=r"^resume: the study in .* was drawn by another xdl \(sampling 1, this one "
                                         r"draws by 2"):
        tune(X, y, dev, space, trials=6, base=BASE, directory=tmp_path / "older", resume=True)
    # held whole, nothing is drawn: it resumes (to read it, write best.toml again), keeping its sampling
    whole = tune(X, y, dev, space, trials=5, base=BASE, directory=tmp_path / "older", resume=True)
    assert len(fits) == 3 and [t.params for t in whole.trials] == [t.params for t in full.trials]
    assert "sampling" not in json.loads((tmp_path / "older" / "trials.json").read_text())["meta"]
    with pytest.raises(ValueError, match=r"was drawn by another xdl \(sampling 1, this one draws by 2"):
        tune(X, y, dev, space, trials=6, base=BASE, directory=tmp_path / "older", resume=True)
    # a random search may be given more trials, as Optuna's study.optimize called again: its first five are its own
    more = tune(X, y, dev, space, trials=7, base=BASE, execution="sequential", directory=tmp_path, resume=True)
    assert len(fits) == 5 and [t.params for t in more.trials[:5]] == [t.params for t in full.trials]
    assert json.loads((tmp_path / "trials.json").read_text())["meta"]["trials"] == 7
    monkeypatch.setattr(Trainer, "fit", lambda self, *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # stopped before its first new trial: the study says 9 already
        tune(X, y, dev, space, trials=9, base=BASE, execution="sequential", directory=tmp_path, resume=True)
    assert json.loads((tmp_path / "trials.json").read_text())["meta"]["trials"] == 9
    with pytest.raises(ValueError, match=r"^trials is 6, but the study in .* holds trials up to number 6: a random "
                                         r"search resumes with at least as many trials"):
        tune(X, y, dev, space, trials=6, base=BASE, directory=tmp_path, resume=True)


def test_a_study_an_older_xdl_drew_resumes_whole_with_its_own_values_and_a_saved_trial_drawn_otherwise_is_refused(
        data, tmp_path, monkeypatch):
    """A study of another sampling held whole is not drawn again (its values are not this xdl's draws: compared,
    they were "the space or seed changed"); one of this sampling whose saved trial holds other values than this
    search draws for it is refused, naming the trial — neither trains anything."""
    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}}
    tune(X, y, dev, space, trials=3, base=BASE, directory=tmp_path / "now")
    saved = json.loads((tmp_path / "now" / "trials.json").read_text())
    older = json.loads(json.dumps(saved))
    del older["meta"]["sampling"]
    for trial, lr in zip(older["trials"], (0.002, 0.02, 0.05)):  # (its own draws)
        trial["params"]["lr"] = lr
    (tmp_path / "older").mkdir()
    (tmp_path / "older" / "trials.json").write_text(json.dumps(older))
    fits = []
    monkeypatch.setattr(Trainer, "fit", lambda self, *a, **k: fits.append(1))
    study = tune(X, y, dev, space, trials=3, base=BASE, directory=tmp_path / "older", resume=True)
    assert [t.params["lr"] for t in study.trials] == [0.002, 0.02, 0.05] and not fits
    failed = json.loads(json.dumps(saved))  # a failed trial is finished too: a resume does not train it again
    failed["trials"][2].update(status="failed", error="diverged: the cost became inf at epoch 1, step 1")
    (tmp_path / "now" / "trials.json").write_text(json.dumps(failed))
    study = tune(X, y, dev, space, trials=3, base=BASE, directory=tmp_path / "now", resume=True)
    assert [t.status for t in study.trials] == [saved["trials"][0]["status"], saved["trials"][1]["status"], "failed"]
    assert not fits
    drawn = saved["trials"][1]["params"]["lr"]
    saved["trials"][1]["params"]["lr"] = 0.05
    (tmp_path / "now" / "trials.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=rf"^resume: trial 1 of the saved study has {{'lr': 0\.05}}, this search draws "
                                         rf"{{'lr': {re.escape(repr(drawn))}}}: lr 0\.05 saved, "
                                         rf"{re.escape(repr(drawn))} drawn\. The study's space, seed and options are "
                                         r"this search's: its trials\.json was "
                                         r"edited, or another version of xdl or NumPy draws otherwise") as refused:
        tune(X, y, dev, space, trials=3, base=BASE, directory=tmp_path / "now", resume=True)
    assert not fits
    assert not getattr(refused.value, "__notes__", None)  # ("the same call with resume=True continues" was added)


@pytest.mark.parametrize("strategy", ["coarse_to_fine", "tpe"])
def test_a_halving_resume_whose_later_round_was_drawn_otherwise_says_what_differs_and_keeps_the_saved_trials(
        data, tmp_path, monkeypatch, strategy):
    """Successive halving, its earlier rounds run (their trials in trials.json) and a later round's trial holding
    other values than the resume draws for it: the refusal said "the space or seed changed", which the resume had
    just compared as the same; it names the values that differ, that the round is drawn from the saved rounds before
    it, and what can differ (an edited file, another version) — before any trial trains, the saved file as it was."""
    if strategy == "tpe":
        pytest.importorskip("optuna")
    from xdl.tune import SavedTrialMismatchError

    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}, "dropout": {"uniform": [0.0, 0.3]}}
    search = dict(trials=6, strategy=strategy, rounds=3, halving=2, base=dataclasses.replace(BASE, epochs=3),
                  directory=tmp_path)
    tune(X, y, dev, space, **search)
    saved = json.loads((tmp_path / "trials.json").read_text())
    saved["trials"] = [t for t in saved["trials"] if t["round"] < 2]  # the last round not run (a Ctrl-C)
    assert {t["round"] for t in saved["trials"]} == {0, 1} and any(t["status"] == "pruned" for t in saved["trials"])
    fits = []
    monkeypatch.setattr(Trainer, "fit", lambda self, *a, **k: fits.append(1))
    for number in (2, 3):  # (each trial of round 1, which round 0's saved results draw)
        edited = json.loads(json.dumps(saved))
        drawn = edited["trials"][number]["params"]["lr"]
        edited["trials"][number]["params"]["lr"] = 0.05
        text = json.dumps(edited, indent=1)
        (tmp_path / "trials.json").write_text(text)
        with pytest.raises(SavedTrialMismatchError, match=rf"^resume: trial {number} of the saved study has .*: lr "
                                                          rf"0\.05 saved, {re.escape(repr(drawn))} drawn\. The study's "
                                                          r"space, seed and options are this search's \(round 1 is "
                                                          r"drawn from the saved results of the rounds before it\): "
                                                          r"its trials\.json was edited.*run the search in a new "
                                                          r"directory$") as refused:
            tune(X, y, dev, space, **search, resume=True)
        assert "dropout" not in str(refused.value).split("}: ")[1]  # (only what differs is named)
        assert ("Optuna" in str(refused.value)) == (strategy == "tpe")
        assert not fits and (tmp_path / "trials.json").read_text() == text
        assert not getattr(refused.value, "__notes__", None)
        assert isinstance(refused.value, ValueError)


def test_a_diverging_trial_is_recorded_and_the_search_goes_on(data):
    X, y, dev = data
    base = TrainConfig(hidden=[16], epochs=2, patience=0, progress=False, optimizer="sgd", batch_norm=False)
    errors = {}
    for execution in ("sequential", "batched"):
        with np.errstate(all="ignore"):
            study = tune(X, y, dev, {"lr": {"choice": [1e30, 0.05]}}, trials=4, strategy="grid", base=base,
                         execution=execution)
        failed = [t for t in study.trials if t.status == "failed"]
        assert failed and all("diverged" in t.error for t in failed), execution
        assert not any(t.error.startswith("model ") for t in failed)  # a batch's place is no trial's name
        # where it diverged, without a Trainer's advice about a Checkpoint callback or fit_many's about
        # the state it keeps — the search keeps no model
        for t in failed:
            assert re.fullmatch(r"diverged: the cost became \S+ at epoch \d+, step \d+", t.error), (execution, t.error)
        errors[execution] = [t.error for t in failed]
        assert study.best.params["lr"] == 0.05
    assert errors["sequential"] == errors["batched"]  # one wording in every execution


@pytest.mark.parametrize("spec, match", [
    ({"lr": {"loguniform": [1e-4, 1]}}, r"lr: unknown kind 'loguniform'"),
    ({"lr": {"log_uniform": [0, 1]}}, r"lr: log_uniform needs bounds > 0"),
    ({"dropout": {"uniform": [0.5, 0.1]}}, r"dropout: low must be < high"),
    ({"learning_rate": {"log_uniform": [1e-4, 1]}}, r"unknown hyperparameter 'learning_rate'"),
    ({"beta1": {"one_minus_log": [0.9, 1.0]}}, r"beta1: one_minus_log samples β in \[low, high\] ⊂ \[0, 1\)"),
    ({"lr": {"log_uniform": [1e-4]}}, r"lr: log_uniform takes \[low, high\]"),
    ({"hidden": {"choice": 5}}, r"hidden: choice takes a list of values, got 5 \(int\)"),
    ({"optimizer": {"choice": "adam"}}, r"optimizer: choice takes a list of values, got 'adam' \(str\)"),
    ({"hidden": {"choice": []}}, r"hidden: choice needs at least one value"),
    ({"beta1": {"one_minus_log": [0.001, 0.1]}}, r"beta1: one_minus_log takes bounds on β, .*for 1 − β in "
                                                 r"\[0\.001, 0\.1\] write \[0\.9, 0\.999\]"),
    ({"epochs": {"int_uniform": [1.5, 4]}}, r"epochs: int_uniform needs integer bounds, got \[1\.5, 4\]"),
    ({"epochs": {"int_uniform": [True, 4]}}, r"epochs: int_uniform needs integer bounds, got \[True, 4\]"),
    ({"epochs": {"int_uniform": [1, 2**60]}}, r"epochs: int_uniform bounds must be within ±2\*\*53"),
    ({"lr": {"log_uniform": [float("nan"), 1]}}, r"lr: bounds must be finite numbers, got \[nan, 1\]"),
    ({"lr": {"log_uniform": ["1e-3", 1]}}, r"lr: bounds must be finite numbers, got \['1e-3', 1\]"),
    ({"dropout": {"uniform": [0.2, float("inf")]}}, r"dropout: bounds must be finite numbers, got \[0\.2, inf\]"),
    ({"dropout": {"uniform": [0.2, 0.2]}}, r"dropout: low must be < high, got \[0\.2, 0\.2\]; for the one value, "
                                           r"give it without a kind \(key = 0\.2\)"),
])
def test_bad_spaces_name_the_key(spec, match):
    with pytest.raises(ValueError, match=match):
        Space.from_dict(spec)


@pytest.mark.parametrize("space, match", [
    ({"lr": (1e-4, 1e-1)}, r"space: lr = \[0.0001, 0.1\] cannot be trained: lr must be a number, got \[0.0001, 0.1\] "
                           r"\(list\); to search it, give its kind: lr = \{log_uniform = \[low, high\]\}"),
    ({"optimizer": {"choice": ["adam", "bogus"]}}, r"optimizer = 'bogus' \(of choice \['adam', 'bogus'\]\) cannot be "
                                                  r"trained: optimizer must be one of sgd"),
    ({"epochs": {"int_uniform": [0, 2]}}, r"epochs = 0 \(of int_uniform \[0, 2\]\) cannot be trained: epochs must be ≥ 1"),
    ({"dropout": {"uniform": [-0.5, 0.5]}}, r"dropout = -0.5 \(of uniform .*dropout must be a number in \[0, 0.998046875\]"),
    ({"hidden": {"choice": [[8], [0]]}}, r"hidden = \[0\] .*non-empty list of sizes in \[1, 1,048,576\]"),
])
def test_values_a_space_can_give_are_checked_before_any_trial(data, tmp_path, space, match):
    X, y, dev = data
    with pytest.raises(ValueError, match=match):
        tune(X, y, dev, space, trials=2, base=BASE, directory=tmp_path / "study")
    assert not (tmp_path / "study").exists()


def test_values_valid_alone_but_not_together_fail_their_trials_only(data):
    X, y, dev = data
    assert BASE.batch_norm  # batch_size 1 fails beside it, not beside the other value the space gives
    study = tune(X, y, dev, {"batch_norm": {"choice": [False, True]}, "batch_size": {"choice": [1, 32]}},
                 trials=4, strategy="grid", base=BASE)
    failed = [t for t in study.trials if t.status == "failed"]
    assert [t.params for t in failed] == [{"batch_norm": True, "batch_size": 1}]
    assert failed[0].error.startswith("invalid combination: batch_size must be ≥ 2 with batch_norm")


def test_bad_search_arguments(data):
    X, y, dev = data
    for kwargs, match in ((dict(trials=0), r"trials must be an integer in \[1, 1,000,000\], got 0"),
                          (dict(strategy="bayes"), r"strategy must be one of"),
                          (dict(execution="gpu"), r"execution must be one of"),
                          (dict(rounds=9, trials=4, strategy="coarse_to_fine"),
                           r"rounds must be an integer in \[1, trials\]"),
                          (dict(rounds=2), r"rounds is for the strategies that search in rounds .*'random' draws"),
                          (dict(min_epochs=3), r"min_epochs is the first rung of halving, .* give both, or neither")):
        with pytest.raises(ValueError, match=match):
            tune(X, y, dev, {"lr": {"log_uniform": [1e-3, 1e-1]}}, base=BASE, **kwargs)


def test_cli_tune_writes_a_best_config_that_xdl_train_accepts(tmp_path, capsys):
    out = tmp_path / "search"
    (tmp_path / "space.toml").write_text('[lr]\nlog_uniform = [1e-3, 3e-2]\n[dropout]\nuniform = [0.0, 0.3]\n')
    code = cli.main(["tune", "--space", str(tmp_path / "space.toml"), "--trials", "3", "--epochs", "2",
                     "--hidden", "16", "--out", str(out)])
    assert code == 0
    printed, err = capsys.readouterr()
    assert "batch/s" not in err  # progress bars on a terminal only, as xdl train's
    assert "| rank | trial | dev accuracy" in printed and "xdl train --config" in printed
    # each trial as it ends, on stderr (a search under nohup said nothing until its end)
    assert [line.split(" completed")[0] for line in err.splitlines() if line.startswith("trial ")] == \
        ["trial 0", "trial 1", "trial 2"]
    assert len(json.loads((out / "trials.json").read_text())["trials"]) == 3
    assert (out / "trials.png").read_bytes()[:4] == b"\x89PNG"
    assert cli.main(["train", "--config", str(out / "best.toml"), "--epochs", "1", "--out", str(tmp_path / "run"),
                     "--no-progress"]) == 0
    assert cli.main(["tune", "--trials", "0", "--out", str(out)]) == 1
    assert "--trials must be an integer in [1, 1,000,000]" in capsys.readouterr().err


def test_the_best_configuration_is_the_best_trials_on_the_searchs_base(data, tmp_path):
    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}}
    study = tune(X, y, dev, space, trials=3, base=BASE, directory=tmp_path)
    best = study.best_config()
    assert best.lr == study.best.params["lr"] and best.hidden == BASE.hidden and best.epochs == BASE.epochs
    assert f"lr = {study.best.params['lr']!r}" in study.write_best().read_text()
    with pytest.raises(ValueError, match=r"write_best: this study keeps no directory"):
        tune(X, y, dev, space, trials=1, base=BASE).write_best()


def test_a_standardizer_instead_of_its_layer_is_refused_before_the_directory_is_made(data, tmp_path):
    from xdl.data import Standardizer

    X, y, dev = data
    with pytest.raises(TypeError, match=r"standardize must be an xdl.nn.Standardize layer \(a Standardizer's .layer\(\)\)"):
        tune(X, y, dev, {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=1, base=BASE, directory=tmp_path / "d",
             standardize=Standardizer().fit(X))
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("execution", ["sequential", "batched"])
def test_fit_scales_each_trials_inputs_as_xdl_train_would(monkeypatch, execution):
    """A space that searches augmentation: each trial's scaling is measured as its own xdl train
    run's would be (on augmented copies where it augments), so best.toml trains what was scored."""
    X, y = xdl.datasets.digits()
    s = split(X[:500], y[:500], seed=0)
    fitted = []
    build = TrainConfig.build_standardize
    monkeypatch.setattr(TrainConfig, "build_standardize",
                        lambda self, X_train: fitted.append(self.augment_shift) or build(self, X_train))
    base = TrainConfig(dataset="digits", hidden=[16], epochs=1, patience=0, progress=False)
    study = tune(s.X_train, s.y_train, (s.X_dev, s.y_dev), {"augment_shift": {"choice": [0, 1]}}, trials=2,
                 strategy="grid", base=base, execution=execution, standardize="fit")
    assert sorted(fitted) == [0, 1] and len(study.trials) == 2
    with pytest.raises(ValueError, match='standardize must be a Standardize layer, "fit" or None'):
        tune(s.X_train, s.y_train, (s.X_dev, s.y_dev), {"augment_shift": {"choice": [0, 1]}}, trials=2,
             base=base, standardize="yes")


def test_a_grid_larger_than_the_trials_is_sampled_evenly_not_cut():
    space = Space.from_dict({"hidden": {"choice": [[8], [16], [64]]}, "optimizer": {"choice": ["adam", "sgd"]}})
    points = space.grid(4)  # of 6: every value of every axis, none twice
    assert len(points) == 4 and {tuple(p["hidden"]) for p in points} == {(8,), (16,), (64,)}
    assert {p["optimizer"] for p in points} == {"adam", "sgd"} and len({str(p) for p in points}) == 4
    assert len(space.grid(6)) == len(space.grid(60)) == 6
    wide = Space.from_dict({"hidden": {"choice": [[4], [8], [16], [32]]}, "optimizer": {"choice": ["adam", "sgd"]}})
    assert {p["optimizer"] for p in wide.grid(4)} == {"adam", "sgd"}  # even strides gave adam only


def test_a_space_of_tuples_resumes(data, tmp_path):
    X, y, dev = data
    space = {"hidden": {"choice": [(16,), (8, 8)]}}
    first = tune(X, y, dev, space, trials=2, base=BASE, directory=tmp_path)
    again = tune(X, y, dev, space, trials=2, base=BASE, directory=tmp_path, resume=True)  # JSON held lists
    assert [t.params for t in again.trials] == [t.params for t in first.trials]
    from xdl.plots import plot_study

    for given in (None, space, Space.from_dict(space)):  # the study's own space, a dict, a Space
        assert plot_study(again, tmp_path / "trials.png", given).read_bytes()[:4] == b"\x89PNG"


def test_cli_tune_says_what_the_space_replaces_and_how_many_trials_a_grid_runs(tmp_path, capsys):
    assert cli.main(["tune", *TINY, "--trials", "5", "--strategy", "grid", "--hidden", "8", "--out", str(tmp_path)]) == 0
    printed, err = capsys.readouterr()
    assert "note: --hidden is searched: the space's values take the place of what the command line gives" in err
    assert "3 trials, grid, batched (the grid 5 trials allow" in printed  # 4 ranges at their middles × 3 hidden choices
    assert len(json.loads((tmp_path / "trials.json").read_text())["trials"]) == 3


def test_mlp_classifier_in_randomized_search_cv_with_loguniform():
    from sklearn.model_selection import RandomizedSearchCV

    from xdl.sklearn import MLPClassifier

    X, y = xdl.datasets.digits()
    search = RandomizedSearchCV(MLPClassifier(hidden=[16], epochs=3, backend="numpy"),
                                {"lr": stats.loguniform(1e-4, 1e-1)}, n_iter=3, cv=2, random_state=0)
    search.fit(X[:300], y[:300])
    assert 1e-4 <= search.best_params_["lr"] <= 1e-1 and search.best_score_ > 0.3


def test_tpe_through_optuna_ask_and_tell_gives_the_same_records_and_resumes(data, tmp_path):
    pytest.importorskip("optuna")
    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}, "beta1": {"one_minus_log": [0.8, 0.99]},
             "hidden": {"choice": [[8], [16]]}, "dropout": {"uniform": [0.0, 0.3]}, "epochs": {"int_uniform": [2, 3]}}
    study = tune(X, y, dev, space, trials=6, strategy="tpe", rounds=2, base=BASE, execution="batched",
                 directory=tmp_path)
    assert all(type(t.params[name]) is kind for t in study.trials  # plain Python values, as JSON holds them
               for name, kind in (("lr", float), ("beta1", float), ("dropout", float), ("epochs", int)))
    again = tune(X, y, dev, space, trials=6, strategy="tpe", rounds=2, base=BASE, execution="batched")
    assert [t.params for t in study.trials] == [t.params for t in again.trials]
    assert all(t.status == "completed" and t.dev_accuracy is not None for t in study.trials)
    assert {tuple(t.params["hidden"]) for t in study.trials} <= {(8,), (16,)}
    assert all(0.8 <= t.params["beta1"] <= 0.99 for t in study.trials)
    saved = json.loads((tmp_path / "trials.json").read_text())
    saved["trials"] = saved["trials"][:4]
    (tmp_path / "trials.json").write_text(json.dumps(saved))
    resumed = tune(X, y, dev, space, trials=6, strategy="tpe", rounds=2, base=BASE, execution="batched",
                   directory=tmp_path, resume=True)
    assert [t.params for t in resumed.trials] == [t.params for t in study.trials]


def test_a_tpe_search_leaves_optunas_logging_as_it_was(data):
    """The search set Optuna's verbosity to WARNING for good: a user's own study in the same session
    logged no "Trial 0 finished …" afterwards. It is quiet during the search only."""
    optuna = pytest.importorskip("optuna")
    X, y, dev = data
    before = optuna.logging.get_verbosity()
    try:
        optuna.logging.set_verbosity(optuna.logging.INFO)
        tune(X, y, dev, {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=2, strategy="tpe", base=BASE)
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
    finally:
        optuna.logging.set_verbosity(before)


def test_tpe_searches_in_threads_leave_optunas_logging_as_it_was():
    """Two TPE searches at once (threads: a user's study with n_jobs=2, say) each put back the
    verbosity it found — the other's WARNING: the first to end gave INFO back while the other still
    asked (its "A new study created" printed), the last left WARNING for good. The quiet is counted:
    from the first search's asking to the last one's end."""
    optuna = pytest.importorskip("optuna")
    from xdl.tune.search import _optuna_quiet

    before = optuna.logging.get_verbosity()
    try:
        optuna.logging.set_verbosity(optuna.logging.INFO)
        first, second = _optuna_quiet(optuna), _optuna_quiet(optuna)
        first.__enter__()
        second.__enter__()  # (what two threads' searches do: the second asks while the first does)
        first.__exit__(None, None, None)
        assert optuna.logging.get_verbosity() == optuna.logging.WARNING  # the second still asks, quietly
        second.__exit__(None, None, None)
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
    finally:
        optuna.logging.set_verbosity(before)


def test_dask_trials_equal_a_sequential_run_and_survive_a_killed_worker():
    """2 workers: the same records as a sequential run with the same seed (float64: to rounding);
    a worker killed while it trains makes Dask run its batch again elsewhere — every trial
    recorded exactly once."""
    distributed = pytest.importorskip("dask.distributed")
    import threading

    X, y = xdl.datasets.digits()
    s = split(X, y, seed=0)
    X, y, dev = s.X_train, s.y_train, (s.X_dev, s.y_dev)
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}, "l2": {"log_uniform": [1e-3, 1.0]}}
    base = TrainConfig(hidden=[256], epochs=60, patience=0, progress=False, dropout=0.0)  # ~1 s per batch
    local = tune(X, y, dev, space, trials=6, base=base, execution="sequential", dtype="float64")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        killed = []
        killer = threading.Thread(target=_kill_a_worker_while_it_trains, args=(client, killed))
        killer.start()
        remote = tune(X, y, dev, space, trials=6, base=base, execution="dask", scheduler=cluster.scheduler_address,
                      dtype="float64")
        killer.join()
    assert killed == [True], "no worker was killed while it trained"
    assert [t.number for t in remote.trials] == list(range(6))
    assert [t.params for t in remote.trials] == [t.params for t in local.trials]
    np.testing.assert_allclose([t.dev_cost for t in remote.trials], [t.dev_cost for t in local.trials], rtol=1e-9)
    assert [t.dev_accuracy for t in remote.trials] == [t.dev_accuracy for t in local.trials]


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_killing_xdl_tune_then_resume_skips_the_finished_trials(tmp_path, how):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "search"
    command = [sys.executable, "-m", "xdl.cli", "tune", "--trials", "6", "--execution", "sequential", "--epochs", "15",
               "--patience", "0", "--hidden", "64", "--no-progress", "--backend", "numpy", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, finished = time.time() + 120, []
    while time.time() < deadline and process.poll() is None:
        try:
            finished = json.loads((out / "trials.json").read_text())["trials"]
        except (OSError, ValueError):
            finished = []
        if len(finished) >= 2:
            break
        time.sleep(0.05)
    process.send_signal(getattr(signal, how))  # SIGKILL: no chance to clean up; SIGINT: Ctrl-C
    err = process.communicate(timeout=60)[1]
    assert 2 <= len(finished) < 6, "the search ended before it could be killed"
    if how == "SIGINT":
        assert process.returncode == 130 and "xdl tune: interrupted by SIGINT" in err and "with --resume" in err, err
    done = {t["number"]: t for t in json.loads((out / "trials.json").read_text())["trials"]}
    result = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    if how == "SIGKILL":  # it had no chance to let go of --out: the resume takes its lock over, and says so
        assert f"note: took over {str(out / 'search.lock')!r} from process {process.pid} on" in result.stderr, \
            result.stderr
    assert not (out / "search.lock").exists()
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert [t["number"] for t in trials] == list(range(6))
    for t in trials:
        if t["number"] in done:
            assert t == done[t["number"]]  # kept as written, not trained again


def test_xdl_tune_resume_takes_the_study_options_from_its_directory(tmp_path, capsys):
    out = tmp_path / "study"
    options = ["--trials", "3", "--strategy", "coarse_to_fine", "--halving", "2", "--seed", "3", *TINY[:2],
               "--epochs", "2", *TINY[4:]]
    assert cli.main(["tune", *options, "--out", str(out)]) == 0
    whole = json.loads((out / "trials.json").read_text())
    cut = {**whole, "trials": whole["trials"][:1]}  # as if stopped after the first trial
    (out / "trials.json").write_text(json.dumps(cut))
    capsys.readouterr()
    assert cli.main(["tune", "--resume", "--out", str(out)]) == 0  # no other flag: the study's options
    assert f"3 trials, coarse_to_fine, batched; resuming the study in {str(out)!r} (1 trial saved)" in \
        capsys.readouterr().out
    resumed = json.loads((out / "trials.json").read_text())
    assert resumed["meta"] == whole["meta"]
    key = ("number", "round", "params", "status", "epochs", "dev_accuracy")
    assert [{k: t[k] for k in key} for t in resumed["trials"]] == [{k: t[k] for k in key} for t in whole["trials"]]
    for flags, named in ((["--trials", "4"], "--trials 3, this one has 4"),
                         (["--strategy", "random"], "--strategy 'coarse_to_fine', this one has 'random'"),
                         (["--seed", "4"], "made with --seed 3, this one has 4. Resuming"),  # (once: it said it twice)
                         (["--epochs", "3"], "--epochs 2, this one has 3"),  # (the flag: it said base.epochs)
                         (["--halving", "3"], "--halving 2, this one has 3")):
        assert cli.main(["tune", "--resume", "--out", str(out), *flags]) == 1  # a given option must match
        err = capsys.readouterr().err
        assert named in err and err.rstrip().endswith("for another search, use a new --out")
    (out / "trials.json").write_text(json.dumps({**whole, "meta": {**whole["meta"], "halving": None}}))
    assert cli.main(["tune", "--resume", "--out", str(out), "--halving", "3"]) == 1
    assert "--halving not given, this one has 3" in capsys.readouterr().err  # (it said "--halving None")
    (out / "trials.json").write_text(json.dumps({**whole, "meta": {**whole["meta"], "base": {"epochs": -1}}}))
    assert cli.main(["tune", "--resume", "--out", str(out)]) == 1
    assert f"--resume: the base options of the study in {str(out)!r}: epochs must be" in capsys.readouterr().err


def test_ctrl_c_before_a_trial_is_saved_says_there_is_nothing_to_resume(tmp_path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "search"
    command = [sys.executable, "-u", "-m", "xdl.cli", "tune", "--trials", "2", "--execution", "sequential", "--epochs",
               "100000", "--patience", "0", "--no-progress", "--backend", "numpy", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while "tune: backend numpy" not in process.stdout.readline():  # until the search starts its first trial
            assert process.poll() is None, process.communicate()[1]
        process.send_signal(signal.SIGINT)
        err = process.communicate(timeout=60)[1]
    finally:
        process.kill()  # never left training its 100,000 epochs
    assert process.returncode == 130 and "before a trial was saved; nothing to continue" in err, err
    assert "--resume" not in err.replace("without --resume", "") and not (out / "trials.json").exists()


def test_ctrl_c_in_a_batched_group_keeps_the_trials_that_had_ended(data, tmp_path, monkeypatch):
    import os
    import signal

    from xdl.train import Callback, Interrupted
    from xdl.tune import search

    class InterruptAfter(Callback):  # Ctrl-C at the end of the group's second epoch
        def on_epoch_end(self, trainer, record):
            if trainer.epoch == 2:
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(search._Search, "batch_pruning", lambda self: [InterruptAfter()])
    X, y, dev = data
    space = {"lr": {"choice": [1e-3, 1e30]}, "epochs": {"choice": [1, 4]}}  # lr 1e30 diverges in its first epoch
    out = tmp_path / "study"
    with xdl.use("numpy"), pytest.raises(Interrupted) as stop:
        tune(X, y, dev, space, trials=4, strategy="grid", execution="batched", base=BASE, directory=out)
    assert stop.value.signal_name == "SIGINT"
    assert str(stop.value) == f"search interrupted by SIGINT; its 3 finished trials are in {str(out / 'trials.json')!r}: " \
                              "the same call with resume=True continues the search (the unfinished trials start again)"
    assert not (out / "search.lock").exists()  # the directory is let go at a Ctrl-C too
    kept = {t["number"]: t for t in json.loads((out / "trials.json").read_text())["trials"]}
    # the two that diverged and the 1-epoch one that completed are kept; the 4-epoch one trains again on resume
    assert sorted((t["params"]["lr"], t["params"]["epochs"], t["status"]) for t in kept.values()) == \
        [(1e-3, 1, "completed"), (1e30, 1, "failed"), (1e30, 4, "failed")]
    assert all(t["seconds"] > 0 for t in kept.values())
    monkeypatch.undo()
    with xdl.use("numpy"):
        study = tune(X, y, dev, space, trials=4, strategy="grid", execution="batched", base=BASE, directory=out,
                     resume=True)
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert [(t.params["lr"], t.params["epochs"], t.status) for t in study.trials if t.number not in kept] == \
        [(1e-3, 4, "completed")]
    for t in study.trials:
        if t.number in kept:
            assert dataclasses.asdict(t) == kept[t.number]  # not trained again
    # a first group stopped before any of its trials ended leaves no study (nothing to resume)
    monkeypatch.setattr(search._Search, "batch_pruning", lambda self: [InterruptAfter()])
    with xdl.use("numpy"), pytest.raises(Interrupted, match=r"^search interrupted by SIGINT; no trial had finished: "
                                                           r"nothing was saved$"):
        tune(X, y, dev, {"lr": {"choice": [1e-3, 1e-2]}}, trials=2, strategy="grid", execution="batched",
             base=dataclasses.replace(BASE, epochs=4), directory=tmp_path / "none")
    assert not (tmp_path / "none" / "trials.json").exists()


@pytest.mark.skipif(__import__("os").name != "posix", reason="POSIX signals")
def test_ctrl_c_in_a_sequential_trials_last_epoch_keeps_that_trial(data, tmp_path, ctrl_c_in_a_last_epoch):
    """A Ctrl-C in a trial's last epoch stops the search once the trial has ended (its fit raises
    Interrupted with ``over``): the trial, whole, was lost with the search ("no trial had finished:
    nothing was saved") and trained again on resuming — where a batched search keeps it."""
    from xdl.train import Interrupted

    X, y, dev = data
    space, out = {"lr": {"choice": [1e-3, 1e-2]}}, tmp_path / "study"
    with xdl.use("numpy"), pytest.raises(Interrupted, match="its 1 finished trial is in"):
        tune(X, y, dev, space, trials=2, strategy="grid", execution="sequential", base=BASE, directory=out)
    kept = json.loads((out / "trials.json").read_text())["trials"]
    assert [(t["number"], t["status"], t["epochs"]) for t in kept] == [(0, "completed", 2)]
    with xdl.use("numpy"):
        study = tune(X, y, dev, space, trials=2, strategy="grid", execution="sequential", base=BASE, directory=out,
                     resume=True)
    assert [(t.number, t.status) for t in study.trials] == [(0, "completed"), (1, "completed")]
    assert dataclasses.asdict(study.trials[0]) == kept[0]  # not trained again


def test_a_resumed_batched_search_trains_its_groups_in_their_order_and_prunes_the_same(data, tmp_path, monkeypatch):
    """Trials 0 and 2 share shapes (hidden [3]), trial 1 does not: a Ctrl-C after trial 0 was pruned at rung 1 left
    trial 2 to train again, and the resume trained trial 1's group first — it met rung values other than the
    uninterrupted search's (trial 0's, without trial 2's), and went on where that search pruned it."""
    import os
    import signal

    from xdl.train import Interrupted
    from xdl.train.many import ManyTrainer
    from xdl.tune import Study

    accuracy = {((3,), 0.01): 0.5, ((2,), 0.01): 0.7, ((3,), 0.03): 0.9}  # each trial's dev accuracy, every epoch
    train_epoch, ctrl_c = ManyTrainer._train_epoch, []

    def scripted(self, *args, **kwargs):
        record = train_epoch(self, *args, **kwargs)
        if ctrl_c:
            os.kill(os.getpid(), signal.SIGINT)  # (taken at the end of this epoch, the first group's first)
        for k, history in enumerate(self.histories):
            if history.records and history[-1]["epoch"] == self.epoch:
                history[-1]["dev_accuracy"] = accuracy[tuple(self.configs[k].hidden), self.configs[k].lr]
        return record

    monkeypatch.setattr(ManyTrainer, "_train_epoch", scripted)
    X, y, dev = data
    space = {"hidden": {"choice": [[3], [2]]}, "lr": {"choice": [0.01, 0.02, 0.03]}}  # seed 5 draws the 3 above
    search = dict(trials=3, seed=5, base=dataclasses.replace(BASE, epochs=4), execution="batched", halving=2)
    whole = tune(X, y, dev, space, **search)
    assert [(t.params["hidden"], t.status, t.epochs) for t in whole.trials] == \
        [([3], "pruned", 1), ([2], "pruned", 1), ([3], "completed", 4)]
    ctrl_c.append(True)
    with pytest.raises(Interrupted):
        tune(X, y, dev, space, directory=tmp_path, **search)
    assert [(t.number, t.status) for t in Study.load(tmp_path).trials] == [(0, "pruned")]
    ctrl_c.clear()
    resumed = tune(X, y, dev, space, directory=tmp_path, resume=True, **search)
    assert [(t.status, t.epochs) for t in resumed.trials] == [(t.status, t.epochs) for t in whole.trials]


def test_ctrl_c_in_a_dask_search_says_what_it_kept_and_a_search_without_directory_keeps_it(data, monkeypatch):
    """A Dask search's Ctrl-C, while it waited on its workers, raised a bare KeyboardInterrupt from
    inside distributed (a notebook showed no word of the trials kept, as a sequential search's
    `Interrupted` says); and a search without a directory lost its finished trials ("went with it"):
    the `Interrupted` now holds them in ``.study``, as fit_many's holds its ``.results``."""
    from xdl.train import Interrupted
    from xdl.tune import search

    def one_trial_then_ctrl_c(todo, round_, s):  # one trial recorded, then Ctrl-C in as_completed's wait
        search._sequential(todo[:1], round_, s)
        raise KeyboardInterrupt

    monkeypatch.setattr(search, "_dask", one_trial_then_ctrl_c)
    X, y, dev = data
    with xdl.use("numpy"), pytest.raises(KeyboardInterrupt) as stop:  # (a bare one, uncaught, ends the session)
        tune(X, y, dev, {"lr": {"choice": [1e-3, 1e-2]}}, trials=2, strategy="grid", execution="dask", base=BASE)
    assert isinstance(stop.value, Interrupted) and stop.value.signal_name == "SIGINT"
    assert str(stop.value) == "search interrupted by SIGINT; its 1 finished trial is in its .study (no directory " \
                              "was given: tune(..., directory=...) keeps a search's trials to resume)"
    assert [(t.number, t.status, t.params) for t in stop.value.study.trials] == [(0, "completed", {"lr": 1e-3})]



def test_a_rounds_groups_keep_dropout_apart_in_the_order_of_their_first_trials_finished_ones_counted():
    """Trials with and without dropout train in separate batches; the groups go in the order of their
    first trial of the round, a trial already in the study counted (one of another round, or an
    invalid combination, recorded as failed and in no group, is passed over)."""
    from types import SimpleNamespace

    from xdl.tune.search import _groups

    base = TrainConfig(hidden=[4], epochs=2)
    todo = [(2, {"dropout": 0.0}), (3, {"dropout": 0.3}), (4, {"dropout": 0.0})]
    invalid = SimpleNamespace(round=0, number=0, params={"batch_size": 1, "batch_norm": True})
    ended = SimpleNamespace(round=0, number=1, params={"dropout": 0.3})
    other_round = SimpleNamespace(round=1, number=0, params={"dropout": 0.0})
    study = SimpleNamespace(trials=[invalid, ended, other_round])
    assert [[n for n, _, _ in group] for group in _groups(todo, 0, base, study)] == [[3], [2, 4]]
    study.trials = []
    assert [[n for n, _, _ in group] for group in _groups(todo, 0, base, study)] == [[2, 4], [3]]

@pytest.mark.parametrize("execution", ["sequential", "batched"])
def test_successive_halving_prunes_poor_trials_at_rungs(data, execution, tmp_path):
    X, y, dev = data
    base = TrainConfig(hidden=[16], epochs=8, patience=0, progress=False)
    study = tune(X, y, dev, {"lr": {"log_uniform": [1e-5, 1e-1]}}, trials=8, base=base, execution=execution,
                 halving=2, min_epochs=1)
    pruned = [t for t in study.trials if t.status == "pruned"]
    assert pruned and all(t.epochs in (1, 2, 4) for t in pruned)
    assert sum(t.epochs for t in study.trials) < 8 * 8  # epochs saved
    assert study.best.status == "completed" and study.best.epochs == 8
    if importlib.util.find_spec("matplotlib") is not None:  # pruned trials drawn hollow, with their own legend entry
        from xdl.plots import plot_study

        assert plot_study(study, tmp_path / "trials.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match=r"halving must be an integer η ≥ 2"):
        tune(X, y, dev, {"lr": {"log_uniform": [1e-5, 1e-1]}}, trials=2, base=base, halving=1)


def test_halving_puts_its_rungs_below_the_epochs_the_space_gives_and_never_prunes_a_last_epoch(data):
    X, y, dev = data
    space = {"epochs": {"choice": [2, 8]}, "lr": {"log_uniform": [1e-2, 1e-1]}}
    study = tune(X, y, dev, space, trials=12, base=BASE, halving=2, min_epochs=1)  # BASE trains 2 epochs
    pruned = [t for t in study.trials if t.status == "pruned"]
    assert any(t.epochs == 4 for t in pruned)  # a rung at 4: the space's 8 epochs, not the base's 2
    assert all(t.epochs < t.params["epochs"] for t in pruned)  # one at its own last epoch has ended
    assert {t.epochs for t in study.trials if t.status == "completed"} <= {2, 8}
    tune(X, y, dev, {"epochs": 8, "lr": 0.01}, trials=1, base=BASE, halving=2, min_epochs=2)  # below 8: taken


def test_a_trial_early_stopping_ends_at_a_rung_is_stopped_not_pruned_as_in_a_batch(data):
    """Sequential: EarlyStopping (patience) ended the trial at a rung's epoch, then `Pruning` called it
    pruned — a batched search's same trial was "stopped" and ranked (it could be the best there, never here)."""
    from xdl.train.callback import Callback
    from xdl.tune.pruning import Pruning

    X, y, dev = data

    class StopAt2(Callback):  # (as EarlyStopping does, before the search's Pruning)
        def on_epoch_end(self, trainer, record):
            trainer.stop_training = record["epoch"] == 2 or trainer.stop_training

    for before, pruned_at in (([StopAt2()], None), ([], 2)):
        pruning = Pruning({2: [1.5]}, eta=2)  # (1.5: above any accuracy, so a loser at rung 2)
        trainer = BASE.build_trainer(xdl.nn.mlp(64, [4], 10), callbacks=[*before, pruning])
        trainer.epochs = 4
        history = trainer.fit(X, y, dev=dev)
        assert (len(history), pruning.pruned_at) == (2, pruned_at)


def test_pruning_refuses_the_other_kind_of_trainer_before_any_work(data):
    """BatchPruning given a plain Trainer raised AttributeError ('histories') at its first rung, after training to
    it; Pruning given to fit_many ended all K models on the best one's value ("stopped", none pruned). Each is
    refused at the fit, before any epoch, naming the other; at every rung set and eta, each takes its own kind."""
    from xdl.train.many import ManyTrainer, fit_many
    from xdl.tune.pruning import BatchPruning, Pruning

    X, y, dev = data
    cases = 0
    for rung, eta in ((1, 2), (2, 3), (1, 4)):
        recorded = {rung: [1.5]}  # (above any accuracy: a loser at the rung)
        model = xdl.nn.mlp(64, [4], 10)
        weights = {name: value.copy() for name, value in model.state_dict().items()}
        trainer = BASE.build_trainer(model, callbacks=[BatchPruning(recorded, eta)])
        with pytest.raises(ValueError, match=r"^BatchPruning prunes fit_many's K models .*given a Trainer: give a "
                                             r"Trainer's run Pruning\(recorded, eta\)$"):
            trainer.fit(X, y, dev=dev)
        assert trainer.epoch == 0 and not trainer.history
        for name, value in model.state_dict().items():
            np.testing.assert_array_equal(value, weights[name])
        configs = [dataclasses.replace(BASE, seed=k, hidden=[4]) for k in range(2)]
        batch = ManyTrainer(configs, callbacks=[Pruning(recorded, eta)])
        with pytest.raises(ValueError, match=r"^Pruning stops one Trainer's run .*give fit_many "
                                             r"BatchPruning\(recorded, eta\), which prunes each model$"):
            batch.fit(X, y, dev=dev)
        assert batch.model is None and batch.epoch == 0
        pruned = fit_many(configs, X, y, dev=dev, callbacks=[BatchPruning(recorded, eta)])
        assert [r.status for r in pruned] == (["pruned"] * 2 if rung < BASE.epochs else ["completed"] * 2)
        pruning = Pruning(recorded, eta)
        BASE.build_trainer(xdl.nn.mlp(64, [4], 10), callbacks=[pruning]).fit(X, y, dev=dev)
        assert pruning.pruned_at == (rung if rung < BASE.epochs else None)
        cases += 1
    assert cases == 3


def test_rungs_are_min_epochs_times_powers_of_eta_strictly_below_the_largest_epochs():
    """min_epochs·ηʳ < max_epochs, an independent count: a rung at max_epochs itself is none (a trial's
    last epoch ends it, it is never pruned there)."""
    from xdl.tune.pruning import rungs

    for min_epochs, eta, max_epochs in [(1, 2, 8), (1, 2, 9), (2, 3, 18), (2, 3, 19), (3, 2, 3), (3, 2, 4), (5, 4, 2)]:
        expected = [min_epochs * eta ** r for r in range(max_epochs) if min_epochs * eta ** r < max_epochs]
        assert rungs(min_epochs, eta, max_epochs) == expected
    assert rungs(1, 2, 8) == [1, 2, 4]


def test_the_values_recorded_at_a_rung_are_every_trials_that_reached_it_pruned_there_too():
    """A trial with r epochs of dev accuracy (one pruned at rung r: stopped right after it) counts at
    rung r, as at the rungs before; one with fewer does not, nor a None (an epoch not measured)."""
    from xdl.tune.pruning import recorded_at
    from xdl.tune.study import Study, Trial

    study = Study({})
    curves = [[0.5, 0.6], [0.4, 0.7, 0.8, 0.9], [0.3], [None, 0.2], []]
    study.trials = [Trial(i, 0, {}, "pruned", dev_accuracy=0.1, dev_cost=1.0, curves={"dev_accuracy": c})
                    for i, c in enumerate(curves)]
    expected = {r: [c[r - 1] for c in curves if len(c) >= r and c[r - 1] is not None] for r in (1, 2, 4)}
    assert recorded_at(study, [1, 2, 4]) == expected == {1: [0.5, 0.4, 0.3], 2: [0.6, 0.7, 0.2], 4: [0.9]}


def _in_top_share(value, peers, eta) -> bool:
    """Whether fewer than max(1, ⌊n/η⌋) of the n values (``peers`` and ``value``) beat ``value``: a plain count."""
    n = len(peers) + 1
    return sum(v > value for v in peers) < max(1, n // eta)


def test_goes_on_is_a_top_share_by_a_plain_count_at_every_eta_and_ties():
    """`goes_on` against a count of the values above it, over draws with ties (values on a coarse grid), 1 to 9
    peers and η 2 to 5: the share kept depends on η and on how many values were recorded."""
    from xdl.tune.pruning import goes_on

    rng, cases = np.random.default_rng(0), 0
    for _ in range(600):
        eta, n = int(rng.integers(2, 6)), int(rng.integers(1, 10))
        peers = [float(v) for v in rng.integers(0, 6, n) / 5]
        value = float(rng.integers(0, 6) / 5)
        assert goes_on(value, peers, eta) == _in_top_share(value, peers, eta), (value, peers, eta)
        cases += 1
    assert cases == 600


def test_pruning_and_batch_pruning_keep_the_top_share_of_their_own_eta():
    """Each callback compares at a rung by its own η (a search's halving=3 kept the top third, not the top half):
    a trainer stopped, and a batch's models pruned, exactly where a plain count says (`_in_top_share`)."""
    from types import SimpleNamespace

    from xdl.tune.pruning import BatchPruning, Pruning

    recorded = [0.9, 0.8, 0.7, 0.6, 0.5]
    cases = 0
    for eta in (2, 3, 4, 6):
        for value in (0.95, 0.85, 0.75, 0.65, 0.55, 0.45):
            trainer = SimpleNamespace(epochs=4, stop_training=False)
            pruning = Pruning({2: recorded}, eta)
            pruning.on_epoch_end(trainer, {"epoch": 2, "dev_accuracy": value})
            kept = _in_top_share(value, recorded, eta)
            assert (trainer.stop_training, pruning.pruned_at) == ((False, None) if kept else (True, 2)), (eta, value)
            cases += 1
        values = [0.95, 0.85, 0.75, 0.65]  # a batch of 4 at rung 2, compared with the recorded and each other
        pruned = []  # (a ManyTrainer's parts BatchPruning reads, and its stop_model recording each call)
        batch = SimpleNamespace(histories=[[{"dev_accuracy": 0.0}, {"dev_accuracy": v}] for v in values],
                                status=["training"] * 4, configs=[SimpleNamespace(epochs=4)] * 4,
                                stop_model=lambda k, status: pruned.append((k, status)))
        BatchPruning({2: recorded}, eta).on_epoch_end(batch, {"epoch": 2})
        expected = [(k, "pruned") for k, v in enumerate(values)
                    if not _in_top_share(v, recorded + values[:k] + values[k + 1:], eta)]
        assert pruned == expected, (eta, pruned)
        cases += 1
    assert cases == 4 * 7


def test_a_studys_table_ranks_the_top_k_in_a_markdown_table_of_one_column_per_hyperparameter():
    """``table()`` holds the best 10 (its default k), ``table(k)`` the best k, ranked 1…k; every row has
    the header's columns (a separator row of other width is no Markdown table)."""
    from xdl.tune.study import Study, Trial

    study = Study({})
    study.trials = [Trial(i, 0, {"lr": 0.01 * (i + 1), "hidden": [8]}, "completed", dev_accuracy=0.5 + 0.01 * i,
                          dev_cost=1.0, epochs=2) for i in range(12)]
    rows = study.table().splitlines()
    assert len(rows) == 2 + 10 and {row.count("|") for row in rows} == {6 + 2 + 1}
    assert rows[1] == "|" + "---:|" * 8
    assert rows[0] == "| rank | trial | dev accuracy | dev cost | trained | status | hidden | lr |"  # (the epochs a
    # trial trained, apart from an epochs hyperparameter: both were headed "epochs")
    assert "failed" not in study.table()
    study.trials.append(Trial(12, 0, {"lr": 0.5}, "failed", error="diverged at epoch 1"))
    assert study.table().endswith("\n1 trial failed; first: trial 12: diverged at epoch 1")
    top = study.table(3).splitlines()[2:5]
    assert [row.split("|")[1:3] for row in top] == [[f" {rank} ", f" {number} "] for rank, number in
                                                    ((1, 11), (2, 10), (3, 9))]


def test_a_random_search_of_one_trial_is_given_more_on_resume(data, tmp_path):
    X, y, dev = data
    tune(X, y, dev, {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=1, base=BASE, directory=tmp_path)
    study = tune(X, y, dev, {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=3, base=BASE, directory=tmp_path,
                 resume=True)  # (its rounds, 1 then 2, are no setting of a random search)
    assert len(study.trials) == 3


def test_a_space_of_options_the_optimizer_does_not_read_is_refused(data):
    X, y, dev = data
    base = dataclasses.replace(BASE, optimizer="sgd", schedule="none")
    with pytest.raises(ValueError, match=r"space: beta1 is not read by optimizer 'sgd' or schedule 'none'"):
        tune(X, y, dev, {"beta1": {"one_minus_log": [0.8, 0.999]}}, trials=2, base=base)
    tune(X, y, dev, {"beta1": {"one_minus_log": [0.8, 0.999]}, "optimizer": {"choice": ["sgd", "adam"]}},
         trials=1, base=base)  # read by some trials: taken
    # the space's own fixed optimizer is the one every trial runs: it decides, not the base's
    with pytest.raises(ValueError, match=r"space: beta1 is not read by optimizer 'sgd' or schedule 'none'"):
        tune(X, y, dev, {"beta1": {"one_minus_log": [0.8, 0.999]}, "optimizer": "sgd"}, trials=1,
             base=dataclasses.replace(base, optimizer="adam"))
    study = tune(X, y, dev, {"beta1": {"one_minus_log": [0.8, 0.999]}, "optimizer": "adam"}, trials=1, base=base)
    assert len(study.trials) == 1


def test_search_arguments_of_numpy_types_are_taken_and_others_named(data, tmp_path):
    X, y, dev = data
    study = tune(X, y, dev, {"lr": np.float32(0.01), "batch_size": np.int64(32), "dropout": Uniform(0, 0.4)},
                 trials=1, base=BASE)
    assert study.trials[0].params["batch_size"] == 32
    with pytest.raises(ValueError, match="resume must be True or False"):
        tune(X, y, dev, {"lr": 0.01}, trials=1, base=BASE, directory=tmp_path, resume="no")
    with pytest.raises(ValueError, match=r"int_uniform bounds must be within ±2\*\*53"):
        Space.from_dict({"patience": {"int_uniform": [1, 10**19]}})
    space = Space({"lr": LogUniform(1e-4, 1e-1), "hidden": Choice([[8], [16]])})
    with pytest.raises(ValueError, match=r"zoom: shrink must be a number in \(0, 1\], got -1"):
        zoom(space, {"lr": 1e-2, "hidden": [8]}, -1)
    with pytest.raises(ValueError, match=r"zoom: center's hidden is \[64\], not a value"):
        zoom(space, {"lr": 1e-2, "hidden": [64]})
    with pytest.raises(ValueError, match=r"zoom: center's lr is 1.0, not a value"):
        zoom(space, {"lr": 1.0, "hidden": [8]})
    with pytest.raises(ValueError, match="table: k must be a positive integer, got -1"):
        study.table(-1)
    with pytest.raises(ValueError, match="X has 1 example: batch norm needs batches of at least 2"):
        tune(X[:1], y[:1], dev, {"lr": 0.01}, trials=1, base=dataclasses.replace(BASE, batch_norm=True),
             directory=tmp_path / "one")
    assert not (tmp_path / "one").exists()


# -- input checked before any work, naming the argument (the flag on the command line) -------------
TINY = ["--dataset", "moons", "--epochs", "1", "--hidden", "8", "--no-progress"]


@pytest.mark.parametrize("spec, key", [({"dataset": {"choice": ["digits", "moons"]}}, "dataset"),
                                       ({"backend": "cupy", "lr": {"log_uniform": [1e-3, 1e-2]}}, "backend"),
                                       ({"precision": {"choice": ["float32", "tf32"]}}, "precision")])
def test_options_every_trial_shares_are_refused_in_the_space(data, tmp_path, capsys, spec, key):
    """A trial trains on the search's data and backend: a space that sets them would be recorded but not used."""
    X, y, dev = data
    with pytest.raises(ValueError, match=rf"space: {key} cannot be in a search space.*set it as base\.{key}"):
        tune(X, y, dev, spec, trials=2, base=BASE, directory=tmp_path / "python")
    space = tmp_path / "space.toml"
    space.write_text("\n".join(f"{k} = {json.dumps(v)}" if not isinstance(v, dict) else
                               f"[{k}]\n" + "\n".join(f"{kind} = {json.dumps(a)}" for kind, a in v.items())
                               for k, v in spec.items()) + "\n")
    assert cli.main(["tune", "--space", str(space), "--trials", "2", *TINY, "--out", str(tmp_path / "cli")]) == 1
    printed = capsys.readouterr()
    assert f"--space: {key} cannot be in a search space" in printed.err and f"set it as --{key}" in printed.err
    assert "tune: backend" not in printed.out  # refused before the data was loaded
    assert not (tmp_path / "python").exists() and not (tmp_path / "cli").exists()


def test_a_run_directory_in_the_space_is_refused_naming_the_studys(data, tmp_path, capsys):
    X, y, dev = data
    with pytest.raises(ValueError, match=r"space: out cannot be in a search space: trials keep no run directory of "
                                         r"their own \(the study's directory is directory\)"):
        tune(X, y, dev, {"out": "elsewhere"}, trials=2, base=BASE)
    space = tmp_path / "space.toml"
    space.write_text('resume = "old"\n')
    assert cli.main(["tune", "--space", str(space), *TINY, "--out", str(tmp_path / "cli")]) == 1
    assert "--space: resume cannot be in a search space: trials keep no run directory of their own (the study's " \
           "directory is --out)" in capsys.readouterr().err


@pytest.mark.parametrize("space, flag, said", [
    ('optimizer = "sgd"\n', "--beta2", "--beta2 is not read by --space's optimizer = 'sgd' or --schedule inverse_time"),
    ('schedule = "none"\n', "--decay-rate",
     "--decay-rate is not read by --optimizer adam or --space's schedule = 'none'")])
def test_a_flag_the_spaces_fixed_optimizer_or_schedule_does_not_read_is_refused(tmp_path, capsys, space, flag, said):
    """A space's ``optimizer = "sgd"`` is every trial's optimizer: ``--beta2`` beside it is ignored as it is beside
    ``--optimizer sgd``, which xdl train and xdl tune refuse (it was recorded in the base and best.toml, unused)."""
    path = tmp_path / "space.toml"
    path.write_text(space + "[lr]\nlog_uniform = [1e-3, 1e-1]\n")
    options = ["--space", str(path), flag, "0.5", "--trials", "2", *TINY, "--out", str(tmp_path / "t")]
    assert cli.main(["tune", *options]) == 1
    assert f"{said}: it would be ignored; leave it out" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()



@pytest.mark.parametrize("space, flags, kept", [
    ('[optimizer]\nchoice = ["sgd", "adam"]\n', ["--optimizer", "sgd", "--beta2", "0.75"], "beta2 = 0.75"),
    ('[schedule]\nchoice = ["none", "exponential"]\n', ["--schedule", "none", "--decay-rate", "0.75"],
     "decay_rate = 0.75"),
    ('plateau_patience = 2\n', ["--schedule", "none", "--execution", "sequential", "--plateau-factor", "0.75"],
     "plateau_factor = 0.75")])
def test_a_flag_read_by_an_optimizer_schedule_or_plateau_of_the_space_is_taken(tmp_path, capsys, space, flags, kept):
    """A flag that the command line's optimizer or schedule does not read is read by the trials where the space
    searches the optimizer or schedule (``--beta2`` beside a searched [sgd, adam] is adam's), and --plateau-factor
    where the space fixes plateau_patience = 2: taken into every trial's options (best.toml), not refused."""
    path = tmp_path / "space.toml"
    path.write_text(space + "[lr]\nlog_uniform = [1e-3, 1e-1]\n")
    options = ["--space", str(path), *flags, "--trials", "2", *TINY, "--out", str(tmp_path / "t")]
    assert cli.main(["tune", *options]) == 0, capsys.readouterr().err
    assert "would be ignored" not in capsys.readouterr().err
    assert kept in (tmp_path / "t" / "best.toml").read_text().splitlines()


@pytest.mark.parametrize("key", ["plateau_patience", "plateau-patience"])
def test_a_config_files_option_is_named_as_its_key_there_however_spelt(tmp_path, capsys, monkeypatch, key):
    """An option of the --config file (``plateau-patience = 2``, a key a file may spell with a dash) that the
    search refuses is named as the file's key, not as a flag never typed (--plateau-patience)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(f'{key} = 2\nschedule = "none"\n')
    assert cli.main(["tune", "--config", "c.toml", "--trials", "2", *TINY, "--out", "t"]) == 1
    assert capsys.readouterr().err == ("xdl tune: error: --execution 'batched' trains the trials together (fit_many), "
                                       "whose models cannot lower their rates on a plateau, and plateau_patience (in "
                                       "'c.toml') is 2: give --execution sequential, which trains one trial at a time "
                                       "with its own plateau\n")
    assert sorted(os.listdir(tmp_path)) == ["c.toml"]

@pytest.mark.parametrize("space, base, who", [
    ({"augment_shift": Choice([0, 1]), "lr": Choice([1e-3, 1e-2])}, {}, "space: augment_shift"),
    ({"lr": Choice([1e-3, 1e-2])}, {"augment_flip": True}, "base: augment_flip")])
def test_augmentation_of_data_that_are_not_the_datasets_images_is_refused_before_any_trial(data, tmp_path, space,
                                                                                              base, who):
    """Augmentation sees X as images of base.dataset's shape (8×8 for digits): X of another width was named by
    the first trial that augments ("augment sees …"), after the trials before it had trained."""
    X, y, (X_dev, y_dev) = data
    with pytest.raises(ValueError, match=rf"^{who} \(base.dataset 'digits'\) sees examples as 8×8 images, so X must "
                                         r"have 64 features, got 10"):
        tune(X[:, :10], y, (X_dev[:, :10], y_dev), space, trials=4, strategy="grid",
             base=dataclasses.replace(BASE, **base), directory=tmp_path / "s")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("strategy", ["random", "grid"])
def test_one_trial_needs_no_rounds_for_strategies_that_ignore_them(tmp_path, strategy):
    assert cli.main(["tune", "--trials", "1", "--strategy", strategy, *TINY, "--out", str(tmp_path / "t")]) == 0
    assert len(json.loads((tmp_path / "t" / "trials.json").read_text())["trials"]) == 1


@pytest.mark.parametrize("flags, message", [
    (["--strategy", "tpe", "--rounds", "0"], "--rounds must be an integer in [1, --trials]"),
    (["--strategy", "coarse_to_fine", "--trials", "3", "--rounds", "5"], "--rounds must be an integer in [1, --trials]"),
    (["--halving", "0"], "--halving must be an integer η ≥ 2"),
    (["--halving", "2", "--min-epochs", "0"], "--min-epochs must be a positive integer, got 0"),
    (["--trials", "4", "--epochs", "2", "--halving", "3", "--min-epochs", "10"],
     "--min-epochs (10) must be below the most epochs a trial trains (2: --epochs or the space's) with --halving"),
    (["--top", "-1"], "--top must be a positive integer, got -1"),
    (["--top", "0"], "--top must be a positive integer, got 0"),
    (["--trials", "0"], "--trials must be an integer in [1, 1,000,000], got 0"),
    (["--strategy", "grid", "--trials", str(2**64)], "--trials must be an integer in [1, 1,000,000], got 1844"),
    (["--timeout", "0"], "--timeout must be a number of seconds > 0, got 0.0"),
    (["--timeout", "-5"], "--timeout must be a number of seconds > 0, got -5.0"),
    (["--timeout", "nan"], "--timeout must be a number of seconds > 0, got nan"),
])
def test_bad_tune_options_are_named_by_flag_before_any_work(tmp_path, capsys, flags, message):
    out = tmp_path / "tz"
    assert cli.main(["tune", *TINY, *flags, "--out", str(out)]) == 1
    printed = capsys.readouterr()
    assert message in printed.err, printed.err
    assert "tune: backend" not in printed.out  # before the data was loaded and the header printed
    assert not out.exists()  # no directory left behind


@pytest.mark.parametrize("text, reason", [("{not json", "Expecting property name"),
                                          ('{"trials": []}', 'expected {"meta": {...}, "trials": [...]}'),
                                          ('{"meta": {}, "trials": [{"lr": 1}]}', "unexpected keyword argument")])
def test_resuming_a_file_that_is_not_a_study_says_so(tmp_path, capsys, text, reason):
    (tmp_path / "trials.json").write_text(text)
    assert cli.main(["tune", "--resume", "--trials", "2", *TINY, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"--resume: {str(tmp_path / 'trials.json')!r} is not a trials file xdl wrote (" in err and reason in err
    assert cli.main(["tune", "--trials", "2", *TINY, "--out", str(tmp_path)]) == 1  # nor is it replaced
    assert "is not a trials file xdl wrote" in capsys.readouterr().err
    assert (tmp_path / "trials.json").read_text() == text


def test_a_new_search_never_replaces_a_saved_study(data, tmp_path, capsys):
    out = tmp_path / "tu3"
    assert cli.main(["tune", "--trials", "3", *TINY, "--out", str(out)]) == 0
    saved = (out / "trials.json").read_text()
    assert cli.main(["tune", "--trials", "2", *TINY, "--out", str(out)]) == 1
    assert (f"--out {str(out)!r} already holds a study of 3 trials: pass --resume to continue it, or another --out"
            in capsys.readouterr().err)
    X, y, dev = data
    with pytest.raises(FileExistsError, match=r"directory .* already holds a study of 3 trials: pass resume=True"):
        tune(X, y, dev, trials=2, base=BASE, directory=out)
    assert (out / "trials.json").read_text() == saved


def test_search_arguments_are_checked_before_any_trial(data, tmp_path, monkeypatch):
    from xdl.tune import search

    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}}
    for execution in ("_sequential", "_batched"):
        monkeypatch.setattr(search, execution, lambda *a: pytest.fail("a trial trained before the input was checked"))
    (tmp_path / "afile").write_text("")
    for kwargs, error, match in (
            (dict(seed=-1), ValueError, r"seed must be an integer ≥ 0, got -1"),
            (dict(seed=1.5), ValueError, r"seed must be an integer ≥ 0, got 1.5"),
            (dict(seed=-1, strategy="grid"), ValueError, r"seed must be an integer ≥ 0"),
            (dict(y=np.array(["a"] * len(y))), ValueError, r"y must hold integer class indices"),
            (dict(y=np.eye(10)[y]), ValueError, r"y must be \(m,\) class indices .* \(one-hot rows: give "
                                                r"y.argmax\(axis=1\)\)"),
            (dict(dev=(dev[0],)), ValueError, r"dev must be a pair \(X_dev, y_dev\).*tuple of length 1"),
            (dict(dev=(dev[0][:, :3], dev[1])), ValueError, r"X_dev has 3 features"),
            (dict(dtype="float16", execution="sequential"), ValueError, r"dtype must be float32 or float64"),
            # np.dtype(None) is float64: the search trained in float64 where fit_many refuses None
            (dict(dtype=None), ValueError, r"dtype must be float32 or float64, got None"),
            (dict(halving=2, min_epochs=2), ValueError, r"min_epochs \(2\) must be below the most epochs a trial trains \(2: base.epochs"),
            (dict(directory=""), ValueError, r"directory must name a directory"),
            (dict(resume=True, directory=None), ValueError, r"resume=True needs the directory"),
            (dict(directory=tmp_path / "afile"), NotADirectoryError, r"directory '.*afile' is a file, not a directory"),
            (dict(directory=123), TypeError, r"directory must be a path \(str or os.PathLike\), got 123 \(int\)"),
            (dict(progress="x"), ValueError, r"progress must be True or False, got 'x'")):
        arguments = dict(X=X, y=y, dev=dev, space=space, trials=2, base=BASE, directory=tmp_path / "new") | kwargs
        with pytest.raises(error, match=match):
            tune(arguments.pop("X"), arguments.pop("y"), arguments.pop("dev"), **arguments)
        assert not (tmp_path / "new").exists(), kwargs  # no directory made for a search that did not start


def test_array_likes_and_a_missing_directory_are_fine(data, tmp_path):
    X, y, (X_dev, y_dev) = data
    study = tune(X.tolist(), y.tolist(), [X_dev.tolist(), y_dev.tolist()], {"lr": {"log_uniform": [1e-3, 1e-1]}},
                 trials=1, base=BASE, directory=tmp_path / "new" / "study")
    assert len(json.loads((tmp_path / "new" / "study" / "trials.json").read_text())["trials"]) == 1
    assert study.best is not None


def test_a_dask_scheduler_that_does_not_answer_is_named(data, monkeypatch, tmp_path):
    import xdl.tune.search

    pytest.importorskip("dask.distributed")
    X, y, dev = data
    monkeypatch.setattr(xdl.tune.search, "CONNECT_SECONDS", 0.5)
    with pytest.raises(OSError, match=r"scheduler: no Dask scheduler answered at 'tcp://127\.0\.0\.1:1' within 0\.5 s"):
        tune(X, y, dev, None, trials=2, base=BASE, execution="dask", scheduler="tcp://127.0.0.1:1",
             directory=tmp_path / "study")
    assert not (tmp_path / "study").exists()  # connected to before anything was made


def test_dask_takes_a_connected_client_and_sends_every_round_to_it(data):
    """A ``distributed.Client`` as ``scheduler``: used for every round of a coarse-to-fine search
    (the data sent once, as tasks' results — `_held` — not again under the same keys) and left open,
    as the caller's."""
    from xdl.tune import search

    distributed = pytest.importorskip("dask.distributed")
    X, y, dev = data
    arguments = dict(space={"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=4, strategy="coarse_to_fine", rounds=2,
                     base=dataclasses.replace(BASE, epochs=1), dtype="float64")
    here = tune(X, y, dev, execution="batched", **arguments)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as \
            cluster, distributed.Client(cluster, set_as_default=False) as client:
        sent, submit = [], client.submit
        client.submit = lambda f, *a, **k: (f is search._held and sent.append(a)) or submit(f, *a, **k)
        there = tune(X, y, dev, execution="dask", scheduler=client, **arguments)
        assert client.status == "running" and len(sent) == 3  # X, y and dev, once
    assert [(t.round, t.params, t.dev_accuracy) for t in there.trials] == \
        [(t.round, t.params, t.dev_accuracy) for t in here.trials]


@pytest.mark.parametrize("reply", [None, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n" * 4])
def test_a_server_at_the_scheduler_address_that_is_no_dask_scheduler_is_named_in_time(data, monkeypatch, tmp_path,
                                                                                         reply):
    """A server that takes the connection and says nothing (distributed's handshake waited on it for
    ever) or answers HTTP (the dashboard's port 8787 given for the scheduler's: its bytes were read as
    a frame length, "Unable to allocate 3.07 EiB", then a 20 s close with a traceback) is an OSError
    naming the argument, within the connect time, before anything is made."""
    import contextlib
    import socket
    import threading
    import time

    import xdl.tune.search

    pytest.importorskip("dask.distributed")
    X, y, dev = data
    monkeypatch.setattr(xdl.tune.search, "CONNECT_SECONDS", 0.5)
    server, taken = socket.create_server(("127.0.0.1", 0)), []

    def answer():
        with contextlib.suppress(OSError):
            while True:
                connection = server.accept()[0]
                taken.append(connection)
                if reply is not None:
                    connection.sendall(reply)

    threading.Thread(target=answer, daemon=True).start()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    said = "no Dask scheduler answered at .* within 0.5 s" if reply is None else "is not a Dask scheduler"
    start = time.perf_counter()
    try:
        with pytest.raises(OSError, match=rf"^scheduler: .*{said}"):
            tune(X, y, dev, None, trials=2, base=BASE, execution="dask", scheduler=address,
                 directory=tmp_path / "study")
    finally:
        server.close()
        for connection in taken:
            connection.close()
    assert time.perf_counter() - start < 5 and taken
    assert not (tmp_path / "study").exists()


def test_a_dask_search_stopped_on_a_callers_client_cancels_its_batches_and_refuses_a_closed_one(data, monkeypatch,
                                                                                                  tmp_path):
    """Ctrl-C in a search on the caller's client (left open): the batches not recorded are cancelled
    — as_completed held them, and the cluster trained every batch of the round for nobody. A closed
    client is refused before anything is made (it failed once the directory was, as KeyError 'workers')."""
    import threading
    import time

    from xdl.tune import search

    distributed = pytest.importorskip("dask.distributed")
    X, y, dev = data
    started = DASK_STARTED  # (a closure's list was pickled by value: the batches appended to a copy)
    started.clear()

    def stop(line):
        raise KeyboardInterrupt

    monkeypatch.setattr(search, "train_group", _slow_train_group)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as \
            cluster, distributed.Client(cluster, set_as_default=False) as client:
        with pytest.raises(KeyboardInterrupt):  # 3 batches (a hidden size each) on one thread; stopped at the first
            tune(X, y, dev, {"hidden": {"choice": [[8], [16], [24]]}}, trials=3, strategy="grid", base=BASE,
                 execution="dask", scheduler=client, report=stop)
        time.sleep(0.3)
        assert not any(client.processing().values()), "the batches left were still the cluster's work"
        time.sleep(0.4)  # (what the queued batch would have taken)
        assert client.status == "running" and 1 <= len(started) <= 2, f"a batch left started training: {started}"
        unpicklable = xdl.nn.Standardize(X.shape[1])
        unpicklable.lock = threading.Lock()
        with pytest.raises(TypeError, match="^standardize cannot be sent to the Dask workers .*lock"):
            tune(X, y, dev, None, trials=2, base=BASE, execution="dask", scheduler=client, standardize=unpicklable,
                 directory=tmp_path / "s")
        client.close()
        with pytest.raises(ValueError, match="^scheduler: the distributed.Client given is closed"):
            tune(X, y, dev, None, trials=2, base=BASE, execution="dask", scheduler=client, directory=tmp_path / "s")
        assert not (tmp_path / "s").exists()


def test_xdl_tune_names_a_scheduler_that_does_not_answer_before_making_anything(monkeypatch, tmp_path, capsys):
    import xdl.tune.search

    pytest.importorskip("dask.distributed")
    monkeypatch.setattr(xdl.tune.search, "CONNECT_SECONDS", 0.5)
    out = tmp_path / "study"
    for address, message in (("tcp://127.0.0.1:1", "--scheduler: no Dask scheduler answered at 'tcp://127.0.0.1:1' "
                                                    "within 0.5 s"),
                             ("nonsense", "--scheduler must be a Dask scheduler's address (tcp://host:8786), got "
                                          "'nonsense'")):
        assert cli.main(["tune", *TINY, "--execution", "dask", "--scheduler", address, "--out", str(out)]) == 1
        printed = capsys.readouterr()
        assert message in printed.err, printed.err
        assert "tune: backend" not in printed.out and not out.exists()


# -- one search at a time in a directory (as Optuna's DuplicatedStudyError) -----------------------
def test_a_second_search_into_a_running_searchs_directory_is_refused_and_no_trial_is_lost(data, tmp_path,
                                                                                           monkeypatch, capsys):
    """While a search runs, another one into its directory — new or resumed, in Python or from the
    command line — is refused before any work, naming the directory and the process holding it;
    the running search keeps every trial, and lets the directory go at its end."""
    import os
    import socket
    import threading

    from xdl.tune import StudyInUseError, search

    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}}
    out = tmp_path / "study"
    inside, tried = threading.Event(), threading.Event()
    sequential = search._sequential

    def first_waits(todo, round_, running):  # the first search, holding the directory, until the others tried
        inside.set()
        assert tried.wait(60)
        sequential(todo, round_, running)

    monkeypatch.setattr(search, "_sequential", first_waits)
    result = {}
    first = threading.Thread(target=lambda: result.update(study=tune(X, y, dev, space, trials=2, base=BASE,
                                                                     directory=out)))
    first.start()
    try:
        assert inside.wait(60)
        holder = f"is in use by another search: process {os.getpid()} on {socket.gethostname()}, running since"
        for resume in (False, True):
            with pytest.raises(StudyInUseError, match=rf"^directory {re.escape(repr(str(out)))} {re.escape(holder)}"):
                tune(X, y, dev, space, trials=2, base=BASE, directory=out, resume=resume)
        for resume in ([], ["--resume"]):
            assert cli.main(["tune", *TINY, "--trials", "2", *resume, "--out", str(out)]) == 1
            printed = capsys.readouterr()
            assert f"--out {str(out)!r} {holder}" in printed.err, printed.err
            assert "tune: backend" not in printed.out  # before the data was loaded
    finally:
        tried.set()
        first.join(60)
    assert len(result["study"].trials) == 2
    assert len(json.loads((out / "trials.json").read_text())["trials"]) == 2
    assert not (out / "search.lock").exists()
    monkeypatch.undo()
    assert len(tune(X, y, dev, space, trials=2, base=BASE, directory=out, resume=True).trials) == 2


def test_a_search_lets_its_directory_go_after_an_error_and_takes_over_a_killed_ones(data, tmp_path, monkeypatch):
    from xdl.tune import search
    from xdl.lock import SEARCH

    LOCK_FILE = SEARCH.lock_file

    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}}
    monkeypatch.setattr(search, "_sequential", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        tune(X, y, dev, space, trials=1, base=BASE, directory=tmp_path)
    assert not (tmp_path / LOCK_FILE).exists()
    monkeypatch.undo()
    # the file a killed search leaves: its process is gone, so nothing holds the file's lock
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 4242, "host": "elsewhere", "started": "yesterday"}))
    with pytest.warns(UserWarning, match=r"took over '.*search\.lock' from process 4242 on elsewhere \(since "
                                         r"yesterday\), which is gone"):
        study = tune(X, y, dev, space, trials=1, base=BASE, directory=tmp_path)
    assert len(study.trials) == 1 and not (tmp_path / LOCK_FILE).exists()


# -- the best trial trained to its end ------------------------------------------------------------
def _study_of(directory, *trials):
    """A study of these trials, as a search into ``directory`` returns it (not saved yet)."""
    from xdl.tune import Study

    study = Study({"space": {"lr": {"log_uniform": [1e-3, 1e-1]}}, "base": {"hidden": [8], "epochs": 4}}, directory)
    study.trials = list(trials)
    return study


def test_the_best_trial_is_one_that_trained_to_its_end_never_a_pruned_one(tmp_path, monkeypatch, capsys):
    """As Optuna's best_trial: a pruned trial's accuracy is of fewer epochs (ASHA may prune one
    that beats, at its rung, what the others reach at the end); an early-stopped one did end."""
    import xdl.tune
    from xdl.tune import Trial

    out = tmp_path / "study"
    trials = [Trial(0, 0, {"lr": 0.01}, "completed", dev_accuracy=0.80, dev_cost=0.5, epochs=4),
              Trial(1, 0, {"lr": 0.02}, "pruned", dev_accuracy=0.95, dev_cost=0.2, epochs=2),
              Trial(2, 0, {"lr": 0.03}, "stopped", dev_accuracy=0.85, dev_cost=0.4, epochs=3),
              Trial(3, 0, {"lr": 0.04}, "failed", error="diverged: the cost became inf at epoch 1, step 2")]
    study = _study_of(out, *trials)
    assert study.best.number == 2 and [t.number for t in study.ranked()] == [2, 0]
    assert study.best_config().lr == 0.03
    # Optuna's names for the same (an Optuna user's first reach)
    assert study.best_trial is study.best and study.best_value == 0.85 and study.best_params == {"lr": 0.03}
    study.best_params["lr"] = 1.0  # (a copy: the trial keeps its own)
    assert study.best.params == {"lr": 0.03}
    table = study.table()
    assert [row.split("|")[2].strip() for row in table.splitlines()[2:] if row.startswith("| ")] == ["2", "0"]
    assert "1 trial pruned (stopped early at a rung, not ranked)" in table
    # the command's "best:" line and best.toml
    monkeypatch.setattr(xdl.tune, "tune", lambda *a, **k: study)
    assert cli.main(["tune", *TINY, "--trials", "4", "--out", str(out)]) == 0
    assert "best: trial 2, dev accuracy 0.8500" in capsys.readouterr().out
    assert "lr = 0.03\n" in (out / "best.toml").read_text()
    # none trained to the end: no best, and the command says why
    study = _study_of(tmp_path / "none", trials[1], trials[3])
    assert study.best is None
    for read in ("best_config()", "best_trial", "best_params", "best_value"):
        with pytest.raises(ValueError, match=r"no trial trained to the end \(pruned and failed ones do not count\)"):
            eval(f"study.{read}")
    assert cli.main(["tune", *TINY, "--trials", "2", "--out", str(tmp_path / "none")]) == 1
    # (an error as every other's: a script greps for the prefix)
    assert "xdl tune: error: no trial trained to the end (pruned and failed trials do not count)" in \
        capsys.readouterr().err


def test_best_params_and_the_dataframe_are_copies_a_list_value_too(tmp_path):
    """study.best_params "a copy" was a shallow one: hidden sizes appended to there changed the trial's own record
    (the next save wrote it, and best_config trained it); a data frame's cell alike. Optuna's are deep copies."""
    pytest.importorskip("pandas")
    from xdl.tune import Trial

    for hidden in ([16, 8], [[16], [8]], [{"a": [1]}]):
        trial = Trial(0, 0, {"hidden": json.loads(json.dumps(hidden)), "lr": 0.01}, "completed", dev_accuracy=0.9,
                      dev_cost=0.3, epochs=4)
        study = _study_of(tmp_path, trial)
        given, cell = study.best_params["hidden"], study.trials_dataframe()["params_hidden"][0]
        for value in (given, cell):
            value.append(4)
            if isinstance(value[0], list | dict):
                value[0].clear()
        assert trial.params["hidden"] == hidden and study.best.params == {"hidden": hidden, "lr": 0.01}


def test_tpe_tells_optuna_a_pruned_trial_as_pruned(data, monkeypatch):
    """Optuna's ask-and-tell for a pruned trial: its values reported per epoch, told
    TrialState.PRUNED without a value (Optuna takes its last report as it); TPE ranks such trials
    below the completed ones."""
    optuna = pytest.importorskip("optuna")
    made = []
    create_study = optuna.create_study
    monkeypatch.setattr(optuna, "create_study", lambda *a, **k: made.append(create_study(*a, **k)) or made[-1])
    X, y, dev = data
    study = tune(X, y, dev, {"lr": {"log_uniform": [1e-5, 1e-1]}}, trials=8, strategy="tpe", rounds=2,
                 base=dataclasses.replace(BASE, epochs=4), halving=2, execution="batched")
    told, state = made[0].trials, optuna.trial.TrialState
    assert any(t.status == "pruned" for t in study.trials) and any(t.status == "completed" for t in study.trials)
    assert [t.state for t in told] == [state.PRUNED if t.status == "pruned" else state.COMPLETE for t in study.trials]
    for ours, theirs in zip(study.trials, told):
        assert theirs.value == ours.dev_accuracy  # a pruned one's: its last report, at the rung it stopped
        if ours.status == "pruned":
            assert theirs.last_step == ours.epochs < 4


def test_tpe_draws_only_its_first_round_at_random(data, monkeypatch):
    """TPE's startup is the first round: with Optuna's default 10, a search of under 20 trials in two
    rounds asked every point of the random sampler, TPE never."""
    optuna = pytest.importorskip("optuna")
    drawn = []
    random_draw = optuna.samplers.RandomSampler.sample_independent
    monkeypatch.setattr(optuna.samplers.RandomSampler, "sample_independent",
                        lambda self, *a, **k: drawn.append(a[2]) or random_draw(self, *a, **k))
    X, y, dev = data
    tune(X, y, dev, {"lr": {"log_uniform": [1e-5, 1e-1]}}, trials=8, strategy="tpe", rounds=2, base=BASE,
         execution="batched")
    assert drawn == ["lr"] * 4


def test_a_search_of_fixed_values_only_and_one_minus_log_bounds_on_1_minus_beta_are_refused(data):
    X, y, dev = data
    with pytest.raises(ValueError, match=r"^space: trials=3 of a space that searches nothing .*: lr, dropout are "
                                         r"fixed, so every trial would be the same run"):
        tune(X, y, dev, {"lr": 0.01, "dropout": 0.1}, trials=3, base=BASE)  # trained the same run 3 times
    with pytest.raises(ValueError, match=r"beta1: one_minus_log takes bounds on β, .*: \[0.001, 0.1\] would search "
                                         r"β below 0.1, .*for 1 − β in \[0.001, 0.1\] write \[0.9, 0.999\]"):
        Space.from_dict({"beta1": {"one_minus_log": [1e-3, 1e-1]}})  # sampled β ≈ 0.001–0.1: no momentum
    assert Space.from_dict({"beta1": {"one_minus_log": [0.0, 0.9]}}).dimensions["beta1"].bounds == (0.0, 0.9)


def test_bounds_beyond_floats_are_refused_as_bounds_not_an_overflow():
    """An integer bound beyond floats (10**400 from a generated grid) raised float()'s OverflowError."""
    for make in (Uniform, LogUniform, OneMinusLog):
        for bounds in ((10**400, 10**401), (0, 10**400), (-10**400, 1), (0, math.nan), (0, "1")):
            with pytest.raises(ValueError, match=r"^bounds must be finite numbers, got \["):
                make(*bounds)


def test_a_one_minus_log_object_refuses_bounds_on_1_minus_beta_as_its_table_does():
    """OneMinusLog(low, high) bounds β, as {"one_minus_log": [low, high]} does: the course's range of
    1 − β (Optuna's suggest_float("one_minus_beta", 1e-3, 1e-1, log=True)) given to the object searched
    β ≈ 0.001–0.1 unsaid, where the table refused it. A narrowed box of a range the user gave may lie
    below β = ½ (coarse to fine around β = 0.05 of [0, 0.9])."""
    for make in (lambda: OneMinusLog(1e-3, 1e-1), lambda: Space.from_dict({"beta1": OneMinusLog(1e-3, 1e-1)})):
        with pytest.raises(ValueError, match=r"one_minus_log takes bounds on β, .*: \[0.001, 0.1\] would search β "
                                             r"below 0.1, .*for 1 − β in \[0.001, 0.1\] write \[0.9, 0.999\]"):
            make()
    narrow = zoom(Space({"beta1": OneMinusLog(0.0, 0.9)}), {"beta1": 0.05}, shrink=0.1).dimensions["beta1"]
    assert narrow.kind == "one_minus_log" and 0 <= narrow.bounds[0] <= 0.05 <= narrow.bounds[1] < 0.5
    assert all(narrow.bounds[0] <= b <= narrow.bounds[1] for b in narrow.sample(np.random.default_rng(0), 100))


def test_an_optuna_distribution_in_a_space_names_xdls_dimension():
    """A space takes xdl's dimensions "as Optuna takes its distributions": Optuna's own one in a space
    table was taken for a value every trial shares, refused as "lr must be a number, got
    FloatDistribution(…)"; it is named, with the xdl dimension that draws alike."""
    optuna = pytest.importorskip("optuna")
    D = optuna.distributions
    for given, same in ((D.FloatDistribution(1e-4, 1e-1, log=True), r"LogUniform\(0.0001, 0.1\)"),
                        (D.IntDistribution(16, 128), r"IntUniform\(16, 128\)"),
                        (D.IntDistribution(16, 256, log=True), r"IntUniform\(16, 256\); xdl has no log-scaled "
                                                               r"integer: IntUniform draws each integer alike \(a "
                                                               r"choice of values spaced by a ratio, Choice\(\[16, 32, "
                                                               r"64, 128\]\), for a log scale\)"),
                        (D.CategoricalDistribution([32, 64]), r"Choice\(\[32, 64\]\)"),
                        (D.FloatDistribution(0.0, 0.5, step=0.1), r"Uniform\(0.0, 0.5\); Optuna's step is not offered: "
                                                                  r"a choice of the values, Choice\(\[...\]\), for "
                                                                  r"values on a step")):
        with pytest.raises(TypeError, match=rf"^space: lr is Optuna's {type(given).__name__}\(.*\): a space takes "
                                            rf"xdl's dimensions .*: {same}$"):
            Space.from_dict({"lr": given})
    # the same where a Space is made from its parts: a distribution given as searched or as fixed
    given = D.FloatDistribution(0.0, 0.5)
    for dimensions, fixed in (({"dropout": given}, {}), ({"lr": LogUniform(1e-3, 1e-1)}, {"dropout": given})):
        with pytest.raises(TypeError, match=r"^space: dropout is Optuna's FloatDistribution\(.*: Uniform\(0.0, 0.5\)$"):
            Space(dimensions, fixed)


def test_optunas_log_and_step_to_a_dimension_name_the_way_here():
    """An Optuna user writes suggest_float's keywords into xdl's dimension: Python's "unexpected keyword argument
    'log'" said not that the scale is the dimension's class here."""
    from xdl.tune import IntUniform

    for make, said in ((lambda: Uniform(1e-4, 1e-1, log=True), r"Optuna's log=True is LogUniform\(low, high\) here"),
                       (lambda: LogUniform(1e-4, 1e-1, log=True), r"LogUniform draws on a log scale already"),
                       (lambda: OneMinusLog(0.9, 0.999, log=True), r"OneMinusLog draws on a log scale already"),
                       (lambda: IntUniform(16, 256, log=True), r"xdl has no log-scaled integer: IntUniform draws "
                                                               r"each integer alike"),
                       (lambda: Uniform(0.0, 0.5, step=0.1), r"Optuna's step is not offered: a choice of the "
                                                            r"values, Choice\(\[...\]\)"),
                       (lambda: IntUniform(16, 256, step=16), r"Optuna's step is not offered")):
        with pytest.raises(TypeError, match=r"^\w+\(\) got an unexpected keyword argument '(log|step)'; " + said):
            make()
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'base'$"):  # (another: Python's own)
        Uniform(0.0, 0.5, base=10)


@pytest.mark.parametrize("entry, said", [
    ({"uniform": [1e-4, 1e-1], "log": True}, r"Optuna's log = true is the kind log_uniform = \[low, high\] here"),
    ({"low": 1e-4, "high": 1e-1, "log": True}, r"Optuna's log = true is the kind log_uniform = \[low, high\] here"),
    ({"log_uniform": [1e-4, 1e-1], "log": True}, r"log_uniform draws on a log scale already .*: leave log out"),
    ({"one_minus_log": [0.9, 0.999], "log": True}, r"one_minus_log draws on a log scale already .*: leave log out"),
    ({"int_uniform": [16, 256], "log": True}, r"xdl has no log-scaled integer: int_uniform draws each integer alike "
                                              r"\(choice = \[16, 32, 64, 128\], values spaced by a ratio"),
    ({"choice": [16, 32], "log": True}, r"a choice draws among its values as given .*: leave log out"),
    ({"uniform": [0.0, 0.5], "step": 0.1}, r"Optuna's step is not offered: choice = \[...\] of the values"),
    ({"int_uniform": [16, 256], "step": 16}, r"Optuna's step is not offered"),
    ({"uniform": [0.0, 0.5], "log": False}, r"\{'uniform': \[0.0, 0.5\], 'log': False\}$"),  # (no hint to give)
    ({"uniform": [0.0, 0.5], "high": 1}, r"\{'uniform': \[0.0, 0.5\], 'high': 1\}$")])
def test_optunas_log_and_step_in_a_space_table_name_the_way_here(entry, said):
    """An Optuna user writes suggest_float's log/step as keys of a --space table's entry: "must name one kind"
    alone sent them to drop log and draw a rate uniformly; the table's way is said, in a table's words."""
    with pytest.raises(ValueError, match=r"^space: dropout must name one kind \(uniform, log_uniform, one_minus_log, "
                                         r"int_uniform, choice\) with its range, got .*" + said):
        Space.from_dict({"dropout": entry})


def test_optunas_log_and_step_are_said_alike_by_a_dimension_a_space_table_and_an_optuna_distribution():
    """The three places that meet Optuna's log/step (a dimension's constructor, a space table's entry, an Optuna
    distribution in a space) worded each hint apart — "xdl has no log-scaled integer (int_uniform …" in one, ": each
    integer alike" in another, without the way (a choice spaced by a ratio): each says `OPTUNA_HINTS`' one entry,
    in its own words (`OPTUNA_WORDS`)."""
    optuna = pytest.importorskip("optuna")
    from xdl.tune.space import KINDS, OPTUNA_HINTS, optuna_hint

    D = optuna.distributions
    as_distribution = {("uniform", "step"): D.FloatDistribution(0.0, 0.5, step=0.1),
                       ("int_uniform", "step"): D.IntDistribution(16, 256, step=16),
                       ("int_uniform", "log"): D.IntDistribution(16, 256, log=True)}
    cases = 0
    for kind in [*KINDS, "choice"]:
        for key, value in (("log", True), ("step", 16)):
            if key == "log" and (kind, key) not in OPTUNA_HINTS:
                continue
            bounds = [0, 3] if kind == "choice" else [16, 256] if kind == "int_uniform" else [0.9, 0.999]
            with pytest.raises(ValueError) as table:
                Space.from_dict({"epochs": {kind: bounds, key: value}})
            assert str(table.value).endswith("; " + optuna_hint(kind, key, "table")), str(table.value)
            if kind != "choice":
                cls = KINDS[kind]
                with pytest.raises(TypeError) as made:
                    cls(*bounds, **{key: value})
                assert str(made.value).endswith("; " + optuna_hint(kind, key, "object", cls.__name__))
            if (kind, key) in as_distribution:
                with pytest.raises(TypeError) as distribution:
                    Space.from_dict({"epochs": as_distribution[kind, key]})
                assert str(distribution.value).endswith("; " + optuna_hint(kind, key, "object"))
            cases += 1
    assert cases == 10  # (log with five kinds, step with five)
    for words in ("object", "table"):  # every word of every hint is said in both vocabularies
        assert all("{" not in optuna_hint(kind, key, words, "X") for kind, key in
                   [*(k for k in OPTUNA_HINTS if k != "step"), ("uniform", "step")])


def test_optunas_options_to_tune_name_the_way_here_before_anything_is_made(data, tmp_path):
    """An Optuna user's first reach, tune(..., n_trials=20) or load_if_exists=True, was Python's "unexpected keyword
    argument": each names tune's own option, before any check, trial or directory; another lists tune's options."""
    from xdl.tune.search import OPTUNA_OPTIONS_ELSEWHERE

    X, y, dev = data
    ways = {"n_trials": r"trials=32", "direction": r"maximizes",
            "directions": r"one objective", "sampler": r"strategy='tpe'", "pruner": r"halving=3",
            "study_name": r"directory='xdl-tune'", "storage": r"Study.load\('xdl-tune'\)",
            "load_if_exists": r"resume=True", "n_jobs": r"execution='batched'", "callbacks": r"report=print",
            "show_progress_bar": r"progress=True", "catch": r"recorded as failed"}
    assert set(ways) == set(OPTUNA_OPTIONS_ELSEWHERE)
    for name, way in ways.items():
        directory = tmp_path / name
        with pytest.raises(TypeError, match=rf"^tune\(\) takes no option {name}=: .*{way}"):
            tune(X, y, dev, {"lr": LogUniform(1e-3, 1e-1)}, base=BASE, directory=directory, **{name: 4})
        assert not directory.exists()
    with pytest.raises(TypeError, match=r"^tune\(\) takes no option trails=: not an option of tune \(its options: "
                                        r"space, trials, strategy, .*, report, timeout\)$"):
        tune(X, y, dev, {"lr": "not even a range"}, trails=4)  # (before the space's own check)


def test_a_trial_reads_as_optunas_frozen_trial(data):
    """study.best_trial.value, as an Optuna user reads it, raised AttributeError: a trial's value and state are
    its dev accuracy and its status in Optuna's names, as trials_dataframe gives them."""
    from xdl.tune import Trial

    X, y, dev = data
    study = tune(X, y, dev, {"lr": LogUniform(1e-3, 1e-1)}, trials=3, base=BASE, execution="batched")
    assert study.best_trial.value == study.best_value == study.best.dev_accuracy
    frame = study.trials_dataframe()
    assert list(frame["value"]) == [t.value for t in study.trials]
    assert list(frame["state"]) == [t.state for t in study.trials]
    for status, state, accuracy in (("completed", "COMPLETE", 0.8), ("stopped", "COMPLETE", 0.7),
                                    ("pruned", "PRUNED", 0.4), ("failed", "FAIL", None)):
        trial = Trial(0, 0, {"lr": 0.01}, status, dev_accuracy=accuracy, dev_cost=None if accuracy is None else 1.0)
        assert (trial.state, trial.value) == (state, accuracy)
        assert "value" not in dataclasses.asdict(trial) and "state" not in dataclasses.asdict(trial)  # (not saved)


# -- spaces: every key's own value named, Dimension objects in a dict, a Space checked as a dict --
def test_a_value_that_cannot_be_trained_is_named_not_another_key(data):
    X, y, dev = data
    with pytest.raises(ValueError, match=r"^space: init = 'random' cannot be trained: init must be one of"):
        tune(X, y, dev, {"dropout": 0.1, "init": "random"}, trials=1, base=BASE)
    with pytest.raises(ValueError, match=r"^space: the fixed values batch_norm = True, batch_size = 1 cannot be "
                                         r"trained together: batch_size must be ≥ 2 with batch_norm"):
        tune(X, y, dev, {"batch_norm": True, "batch_size": 1}, trials=1,
             base=dataclasses.replace(BASE, batch_norm=False))


def test_a_dict_may_hold_dimension_objects_as_optuna_takes_distributions(data):
    from xdl.tune import Choice

    X, y, dev = data
    space = {"lr": LogUniform(1e-3, 1e-1), "hidden": Choice([[8], [16]]), "dropout": 0.1}
    study = tune(X, y, dev, space, trials=2, base=dataclasses.replace(BASE, epochs=1), execution="batched")
    assert study.meta["space"] == {"lr": {"log_uniform": [1e-3, 1e-1]}, "hidden": {"choice": [[8], [16]]},
                                   "dropout": 0.1}
    assert all(1e-3 <= t.params["lr"] <= 1e-1 and t.params["dropout"] == 0.1 for t in study.trials)


def test_a_space_object_is_checked_as_a_dict_is():
    empty = r"^space: a search space is a non-empty table of hyperparameters, got \{\}$"
    for make in (lambda: Space({}), lambda: Space.from_dict({})):
        with pytest.raises(ValueError, match=empty):
            make()
    with pytest.raises(TypeError, match=r"^space: lr must be a Dimension \(Uniform, LogUniform, OneMinusLog, "
                                        r"IntUniform, Choice\), got \(0.001, 0.1\) \(tuple\); a range names its "
                                        r"scale, LogUniform\(low, high\) say, and a value every trial shares goes in "
                                        r"fixed=\{'lr': value\}"):
        Space({"lr": (1e-3, 1e-1)})
    for make in (lambda: Space({"learning_rate": LogUniform(1e-3, 1e-1)}),
                 lambda: Space({}, fixed={"learning_rate": 0.1})):
        with pytest.raises(ValueError, match=r"^space: unknown hyperparameter 'learning_rate'; known: hidden, ") as e:
            make()
        assert not {"seed", "out", "progress"} & set(str(e.value).split("known: ")[1].split(", "))  # not searchable
    with pytest.raises(ValueError, match=r"^space: lr is both searched and fixed; give it once"):
        Space({"lr": LogUniform(1e-3, 1e-1)}, fixed={"lr": 0.01})
    with pytest.raises(TypeError, match=r"^space: fixed must be a dict of hyperparameter names, got list"):
        Space({"lr": LogUniform(1e-3, 1e-1)}, fixed=[("dropout", 0.1)])


# -- a resume compares what changes the trials' results, and only that ------------------------------
def test_a_resume_compares_what_changes_the_trials_results_and_only_that(data, tmp_path, capsys):
    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}}
    base = dataclasses.replace(BASE, epochs=1)
    tune(X, y, dev, space, trials=1, base=base, directory=tmp_path)
    # how a step runs, what a search does not use, and the base value of an option the space sets: no result changes
    for changed in (dict(capture=False), dict(backend="numpy"), dict(base_error=0.1), dict(lr=0.01)):
        again = tune(X, y, dev, space, trials=1, base=dataclasses.replace(base, **changed), directory=tmp_path,
                     resume=True)
        assert len(again.trials) == 1
    # what the trials' results depend on: refused, named
    for kwargs, named in ((dict(dtype="float64"), "dtype 'float32', this one has 'float64'"),
                          (dict(base=dataclasses.replace(base, l2=0.5)), "base.l2 0.0, this one has 0.5"),
                          (dict(X=X[:-1], y=y[:-1]), "data.train.examples 300, this one has 299"),
                          (dict(standardize="fit"), "standardize None, this one has 'fit'")):
        arguments = dict(X=X, y=y, base=base) | kwargs
        with pytest.raises(ValueError, match=re.escape(f"made with {named}")):
            tune(arguments.pop("X"), arguments.pop("y"), dev, space, trials=1, directory=tmp_path, resume=True,
                 **arguments)
    # the command: the default space searches lr, so --lr changes no trial (and the note says so)
    out = tmp_path / "cli"
    assert cli.main(["tune", *TINY, "--trials", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["tune", "--resume", "--out", str(out), "--lr", "0.01"]) == 0
    assert "note: --lr is searched: the space's values take the place of what the command line gives" in \
        capsys.readouterr().err
    assert cli.main(["tune", "--resume", "--out", str(out), "--batch-size", "32"]) == 1
    assert "made with --batch-size 64, this one has 32. Resuming continues the same search: its saved trials " \
           "were made that way" in capsys.readouterr().err


def test_python_m_xdl_runs_the_xdl_command():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "xdl", "tune", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: xdl tune") and "TPE (Optuna's)" in " ".join(result.stdout.split())


def test_the_best_so_far_curve_ranks_as_study_best_pruned_trials_left_out():
    from xdl.plots import best_so_far
    from xdl.tune.study import Trial

    trials = [Trial(2, 0, {}, "completed", dev_accuracy=0.8, seconds=1.0),
              Trial(0, 0, {}, "pruned", dev_accuracy=0.95, seconds=0.5),  # at a rung: fewer epochs
              Trial(1, 0, {}, "failed", error="diverged", seconds=0.25),
              Trial(3, 0, {}, "stopped", dev_accuracy=0.9, seconds=2.0)]
    so_far, seconds = best_so_far(trials)
    assert np.isnan(so_far[:2]).all() and so_far[2:] == [0.8, 0.9]
    assert seconds == [0.5, 0.75, 1.75, 3.75]


def test_a_space_setting_checkpoint_every_is_told_a_search_writes_no_checkpoints(data):
    X, y, dev = data
    with pytest.raises(ValueError, match="checkpoint_every cannot be in a search space: a search's trials write no "
                                         "checkpoints"):
        tune(X, y, dev, {"checkpoint_every": 2, "lr": 0.01}, trials=1, base=BASE)


def test_a_study_resumes_on_the_same_data_given_in_another_shape_or_label_dtype(data, tmp_path):
    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}}
    tune(X, y, dev, space, trials=1, base=BASE, directory=tmp_path)
    study = tune(X.reshape(-1, 8, 8), y.astype(np.int32), dev, space, trials=2, base=BASE, directory=tmp_path,
                 resume=True)
    assert len(study.trials) == 2
    for again in (X.astype(np.float32), X.astype(">f4")):  # the models' float32 values: was "data.train.sha1 …"
        study = tune(again, y, dev, space, trials=len(study.trials) + 1, base=BASE, directory=tmp_path, resume=True)
    assert len(study.trials) == 4


def test_the_local_clusters_workers_start_with_ctrl_c_ignored_and_the_handler_comes_back(monkeypatch):
    """A terminal's Ctrl-C goes to the whole process group: every Dask worker printed its own
    KeyboardInterrupt traceback before the search's message. Workers inherit an ignored SIGINT."""
    import signal
    import threading
    import types

    from xdl.tune import search

    seen = []

    def cluster(**kwargs):
        seen.append(signal.getsignal(signal.SIGINT))
        return types.SimpleNamespace(close=lambda: None)

    fake = types.SimpleNamespace(LocalCluster=cluster, Client=lambda *a, **k: types.SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(search, "_distributed", lambda: fake)
    handler = signal.getsignal(signal.SIGINT)
    made = search._Search.__new__(search._Search)
    made.scheduler, made.owned = None, []
    made.dask_client()
    assert seen == [signal.SIG_IGN] and signal.getsignal(signal.SIGINT) is handler
    made.close()
    elsewhere = threading.Thread(target=lambda: search._interrupts_ignored().__enter__())
    elsewhere.start()  # (no handler can be set outside the main thread: nothing changes there)
    elsewhere.join()
    assert signal.getsignal(signal.SIGINT) is handler


def test_the_environment_the_local_clusters_nannies_set_is_put_back_when_the_search_closes(monkeypatch):
    """Dask's nannies set their workers' environment (pre-spawn-environ: OMP_NUM_THREADS=1, MALLOC_TRIM_THRESHOLD_)
    in the search's own process, where it stayed after the search: what was set before comes back, what
    was not is removed."""
    import os
    import types

    from xdl.tune import search

    def cluster(**kwargs):  # as a Nanny's start does
        os.environ.update(OMP_NUM_THREADS="1", MALLOC_TRIM_THRESHOLD_="65536")
        return types.SimpleNamespace(close=lambda: None)

    fake = types.SimpleNamespace(LocalCluster=cluster, Client=lambda *a, **k: types.SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(search, "_distributed", lambda: fake)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    made = search._Search.__new__(search._Search)
    made.scheduler, made.owned = None, []
    made.dask_client()
    assert os.environ["OMP_NUM_THREADS"] == "1"
    made.close()
    assert os.environ["OMP_NUM_THREADS"] == "4" and "MALLOC_TRIM_THRESHOLD_" not in os.environ


def test_xdl_tune_writes_its_files_before_a_reader_of_its_table_can_stop_it(tmp_path, monkeypatch):
    """`xdl tune … | head`: the table's print met the closed pipe first, and best.toml and trials.png
    were never written (status 1, no word)."""
    import io
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)

    class ClosedAfterTheHeader(io.StringIO):
        def write(self, text):
            if "| rank |" in text:
                raise BrokenPipeError(32, "Broken pipe")
            return super().write(text)

        def fileno(self):
            return devnull

    monkeypatch.setattr("sys.stdout", ClosedAfterTheHeader())
    assert cli.main(["tune", *TINY, "--trials", "2", "--out", str(tmp_path)]) == 1
    assert (tmp_path / "best.toml").is_file() and (tmp_path / "trials.json").is_file()
    os.close(devnull)


def test_a_failed_write_of_xdl_tune_says_what_is_kept_and_how_to_go_on(tmp_path, capsys, monkeypatch):
    """A full disk at trials.json or best.toml printed the bare OSError: nothing said the trials were
    kept or that --resume continues."""
    import xdl.files

    replace, writes = xdl.files.os.replace, []

    def full_at_the_second_trials_json(source, target, *args, **kwargs):
        if str(target).endswith("trials.json"):
            writes.append(target)
            if len(writes) == 2:
                raise OSError(28, "No space left on device", str(target))
        return replace(source, target, *args, **kwargs)

    monkeypatch.setattr(xdl.files.os, "replace", full_at_the_second_trials_json)
    out = tmp_path / "study"
    command = ["tune", *TINY, "--trials", "3", "--execution", "sequential", "--out", str(out)]
    assert cli.main(command) == 1
    assert (f"No space left on device: '{out / 'trials.json'}'; the trials saved are in '{out / 'trials.json'}': once "
            f"the directory can be written, continue with xdl tune --resume --out {out}") in capsys.readouterr().err
    monkeypatch.setattr(xdl.files.os, "replace", replace)
    assert cli.main(["tune", "--resume", "--out", str(out)]) == 0
    assert len(json.loads((out / "trials.json").read_text())["trials"]) == 3


@pytest.mark.parametrize("landing", ["best.toml", "trials.png"])
def test_a_ctrl_c_while_xdl_tune_writes_its_best_says_a_resume_writes_it(tmp_path, capsys, monkeypatch, landing):
    """Ctrl-C once every trial was saved, as best.toml or trials.png was written: the command said "what it
    was doing is not saved" and no way on; the same command again was refused (a study there), and a
    resumed search's best.toml was left the best of the trials before, unsaid."""
    import xdl.files

    replace = xdl.files.os.replace

    def ctrl_c_at(source, target, *args, **kwargs):
        if str(target).endswith(landing):
            raise KeyboardInterrupt
        return replace(source, target, *args, **kwargs)

    out = tmp_path / "study"
    monkeypatch.setattr(xdl.files.os, "replace", ctrl_c_at)
    assert cli.main(["tune", *TINY, "--trials", "2", "--execution", "sequential", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"xdl tune: interrupted by SIGINT while writing {landing}; its 2 trials are all in " \
           f"{str(out / 'trials.json')!r}: to write best.toml and trials.png, run xdl tune --resume --out {out}" in err
    assert sorted(p.name for p in out.iterdir()) == (["best.toml", "trials.json"] if landing == "trials.png" else
                                                     ["trials.json"])
    monkeypatch.setattr(xdl.files.os, "replace", replace)
    assert cli.main(["tune", "--resume", "--out", str(out)]) == 0  # (it trains nothing)
    assert sorted(p.name for p in out.iterdir()) == ["best.toml", "trials.json", "trials.png"]


@pytest.mark.parametrize("execution", ["sequential", "batched"])
def test_each_trial_is_reported_as_it_is_recorded_with_the_best_so_far(data, execution):
    """As Optuna logs "Trial 3 finished with value … Best is trial 1": a batch's trials too, each
    with the best among those before it."""
    X, y, dev = data
    lines = []
    study = tune(X, y, dev, {"lr": {"log_uniform": [1e-3, 1e3]}}, trials=4, base=BASE, execution=execution,
                 report=lines.append)
    assert len(lines) == 4
    best = None
    for line, trial in zip(lines, sorted(study.trials, key=lambda t: t.number)):
        assert line.startswith(trial.summary())
        if trial.complete and (best is None or (-trial.dev_accuracy, trial.dev_cost) < (-best.dev_accuracy, best.dev_cost)):
            best = trial
        assert line.endswith(f"; best so far: trial {best.number} ({best.dev_accuracy:.4f})" if best else trial.summary())
    failed = [t for t in study.trials if t.status == "failed"]  # lr 455: trial 0 diverges
    assert failed and all(re.fullmatch(rf"trial {t.number} failed \(lr=[0-9.e+]+\): diverged: .*", t.summary()) for t in failed)
    with pytest.raises(TypeError, match="report must be a function taking each trial's line"):
        tune(X, y, dev, {"lr": {"log_uniform": [1e-3, 1]}}, trials=1, base=BASE, report="print")


def test_a_searchs_study_pickles_without_the_report_it_was_given(data):
    """A study returned from a worker process (a multiprocessing Pool's, joblib's) is pickled: it kept
    the search's ``report``, a lambda, and failed "Can't pickle <function <lambda>>"."""
    import pickle

    X, y, dev = data
    lines = []
    study = tune(X, y, dev, {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=2, base=BASE,
                 report=lambda line: lines.append(line))
    copied = pickle.loads(pickle.dumps(study))
    assert len(lines) == 2 and [t.params for t in copied.trials] == [t.params for t in study.trials]


def test_int_uniform_draws_every_integer_alike_its_ends_too():
    """x = round(t), t ~ U[a − ½, b + ½]: each of a..b has a cell of width 1 (with t ~ U[a, b], the
    ends would have half a cell each and come half as often)."""
    from xdl.tune.space import IntUniform

    draws = np.array(IntUniform(1, 3).sample(np.random.default_rng(0), 30_000))
    assert set(draws.tolist()) == {1, 2, 3}
    np.testing.assert_allclose(np.bincount(draws)[1:] / len(draws), 1 / 3, atol=0.015)


def test_a_grid_takes_cell_centres_and_the_whole_root_of_n_per_axis():
    """n values of a range are the centres low + (i + ½)·(high − low)/n of its n cells; n points over
    d ranges take ⌊n^(1/d)⌋ values each, 4 for 64 over 3 (64^(1/3) is 3.9999999999999996 in floats)."""
    assert Uniform(0.0, 1.0).grid(4) == pytest.approx([0.125, 0.375, 0.625, 0.875])
    assert LogUniform(1e-4, 1.0).grid(2) == pytest.approx([1e-3, 1e-1])
    space = Space({"lr": LogUniform(1e-4, 1e-1), "l2": LogUniform(1e-4, 1.0), "dropout": Uniform(0.0, 0.5)})
    points = space.grid(64)
    assert len(points) == 64 and all(len({p[name] for p in points}) == 4 for name in ("lr", "l2", "dropout"))
    # a box narrowed to a point is the dimension itself (as narrow as it gets), at 0 too, where the ends' distance
    # and RESOLUTION's share of them are both 0 (a box of [0, 0] is no range)
    dropout = Uniform(-1.0, 1.0)
    assert dropout.narrowed(0.0, 0.0) is dropout and dropout.narrowed(0.5, 0.5) is dropout


def test_a_grid_over_a_range_near_floats_largest_is_finite():
    """(i + ½)·(high − low) overflowed before the division by n: a grid of decay_rate in [0, 1e308]
    (a range validate accepts) gave inf at every cell but the first, and those trials failed."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = Uniform(0.0, 1e308).grid(4)
    assert values == pytest.approx([1.25e307, 3.75e307, 6.25e307, 8.75e307])
    assert Uniform(1e307, 1.7e308).grid(3) == pytest.approx([1e307 + (i + 0.5) / 3 * 1.6e308 for i in range(3)])
    with pytest.raises(ValueError, match=r"uniform: high − low must be a finite number, got \[-1e\+308, 1e\+308\]"):
        Uniform(-1e308, 1e308)  # (its draws raised numpy's OverflowError, its grid was inf at every cell)
    points = Space.from_dict({"decay_rate": {"uniform": [0, 1e308]}}).grid(4)
    assert all(math.isfinite(p["decay_rate"]) for p in points)



def test_a_narrowed_dimension_stays_within_its_own_box_and_keeps_choices_mostly_inside():
    """Narrowing to a box beyond the dimension's keeps its own bounds (the search never leaves the space
    it was given); a choice keeps the values whose cells [i, i + 1) lie mostly in the box."""
    d = LogUniform(1e-4, 1e-1)
    assert d.narrowed(-10.0, 10.0).bounds == (1e-4, 1e-1)
    assert d.narrowed(-3.5, 10.0).bounds == pytest.approx((10**-3.5, 1e-1))
    letters = Choice(["a", "b", "c", "d"])
    assert letters.narrowed(0.4, 4.0).values == ["a", "b", "c", "d"]  # 0.6 of a's cell is in the box
    assert letters.narrowed(0.6, 4.0).values == ["b", "c", "d"]  # 0.4 of it is not most



@pytest.mark.parametrize("low, high, kept", [(0.0, 2.3, "ab"), (0.0, 2.6, "abc"), (0.4, 4.0, "abcd"), (0.6, 4.0, "bcd"),
                                             (1.45, 1.55, "b"), (1.2, 1.4, "b"), (2.6, 2.9, "c"), (0.0, 0.3, "a"),
                                             (3.7, 4.0, "d")])
def test_a_narrowed_choice_keeps_the_values_whose_cells_lie_mostly_in_the_box(low, high, kept):
    """Value i's cell is [i, i + 1): [0, 2.3] holds 0.3 of c's cell, not most of it; [0, 2.6] 0.6 of it; a box
    within one cell keeps that value (a mutant that read ``high − 0.25`` for ``high − 0.5`` kept c at 2.3 and
    passed every test)."""
    narrowed = Choice(list("abcd")).narrowed(low, high)
    assert narrowed.values == list(kept)


def test_a_choice_reads_each_coordinate_of_its_closed_box_as_the_value_whose_cell_holds_it():
    """Value i's cell is [i, i + 1); the box's top end, 4 of four values, is the last value's (a coordinate
    drawn at the box's end, or TPE's asked index, is never past the list)."""
    letters = Choice(list("abcd"))
    coordinates = [0.0, 0.99, 1.0, 2.5, 3.999, 4.0]
    assert letters.value(coordinates) == [list("abcd")[min(int(t), 3)] for t in coordinates]

def test_a_narrowed_int_uniform_is_the_int_uniform_of_its_integers_and_of_the_nearest_one_to_a_small_box():
    """The integers whose cells [k − ½, k + ½] lie mostly in the box, as `IntUniform(first, last)` has
    them — its box (k ± ½: what the next round of zoom narrows), grid and draws alike; a box inside one
    cell gives the integer nearest its centre."""
    from xdl.tune.space import IntUniform

    assert IntUniform(0, 9).grid(4) == [1, 3, 6, 8]  # the cells holding the centres 0.75, 3.25, 5.75, 8.25
    d = IntUniform(0, 10)
    for (low, high), (first, last) in [((2.6, 6.2), (3, 6)), ((-3.0, 30.0), (0, 10)), ((4.6, 4.9), (5, 5)),
                                       ((4.1, 4.3), (4, 4)), ((9.6, 9.9), (10, 10)), ((0.2, 0.4), (0, 0))]:
        narrowed = d.narrowed(low, high)
        assert narrowed.bounds == (first, last) and narrowed.box == (first - 0.5, last + 0.5)
        if first < last:
            same = IntUniform(first, last)
            assert narrowed.grid(3) == same.grid(3)
            assert narrowed.sample(np.random.default_rng(0), 20) == same.sample(np.random.default_rng(0), 20)


def test_a_grid_of_more_points_than_asked_goes_through_every_value_of_every_axis():
    """n = 5 points of a 5 × 3 grid: the diagonal (point i takes value i mod |axis| on each axis)
    has each of the five widths and each of the three optimizers."""
    widths = [[4], [8], [16], [32], [64]]
    space = Space.from_dict({"hidden": {"choice": widths}, "optimizer": {"choice": ["adam", "sgd", "momentum"]}})
    points = space.grid(5)
    assert [(p["hidden"], p["optimizer"]) for p in points] == [
        (widths[i], ["adam", "sgd", "momentum"][i % 3]) for i in range(5)]

def _kill_a_worker_while_it_trains(client, killed):
    """kill -9, as it were, of the first worker seen training a batch (after 0.3 s of it); ``killed``
    gets whether it was still training then."""
    import os
    import time

    deadline = time.time() + 60
    while time.time() < deadline and not killed:
        busy = [w for w, keys in client.processing().items() if any("train_group" in str(k) for k in keys)]
        if busy:
            time.sleep(0.3)  # inside the batch
            killed.append(bool(client.processing().get(busy[0])))
            try:
                client.run(os._exit, 1, workers=busy[:1])
            except Exception:  # noqa: BLE001 — the worker dies before it can answer
                pass
        time.sleep(0.05)


@pytest.mark.parametrize("workers, allowed_failures", [(1, 3), (2, 0)])
def test_a_dask_search_goes_on_when_the_workers_holding_its_data_are_killed(workers, allowed_failures):
    """A one-worker cluster's worker killed while it trained (or, of two, both: OOM-killed) ended
    the search with "FutureCancelledError: train_group-… cancelled for reason: already forgotten":
    the data had been scattered, and died with the workers that held them — the restarted worker
    had none, so no batch could run again. Now the data are tasks' results (`_held`), made again.
    With Dask's allowed failures spent (``KilledWorker``: a batch out of memory each time; 0 here)
    the trials of the batches the worker held are recorded as failed and the search goes on (it
    raised, and ended)."""
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("dask.distributed")
    import threading

    X, y = xdl.datasets.digits()
    s = split(X, y, seed=0)
    X, y, dev = s.X_train, s.y_train, (s.X_dev, s.y_dev)
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}, "hidden": {"choice": [[256], [128]]}}
    base = TrainConfig(hidden=[256], epochs=40, patience=0, progress=False, dropout=0.0)  # ~1 s per batch
    trials = 4 * workers
    here = tune(X, y, dev, space, trials=trials, base=base, execution="batched", dtype="float64")
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}), \
            distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) \
            as cluster, distributed.Client(cluster, set_as_default=False) as client:
        killed = []
        killer = threading.Thread(target=_kill_a_worker_while_it_trains, args=(client, killed))
        killer.start()
        there = tune(X, y, dev, space, trials=trials, base=base, execution="dask", scheduler=client, dtype="float64")
        killer.join()
    assert killed == [True], "the worker was not killed while it trained"
    assert [t.number for t in there.trials] == list(range(trials))
    failed = {t.number: t for t in there.trials if t.status == "failed"}
    if allowed_failures:
        assert not failed
    else:  # the batches the killed worker held (those queued there are blamed too: which ones is Dask's say)
        assert failed
        assert all(t.error.startswith("the Dask worker died each time it trained (1 time: out of memory?")
                   for t in failed.values())
    assert [(t.params, t.dev_accuracy) for t in there.trials if t.number not in failed] == \
        [(t.params, t.dev_accuracy) for t in here.trials if t.number not in failed]


def test_a_lost_dask_scheduler_is_named_with_what_did_not_finish(data):
    """The scheduler gone mid-search raised distributed's FutureCancelledError ("re-run your work"),
    and xdl tune printed its traceback; now a ConnectionError says so, the trials recorded kept."""
    distributed = pytest.importorskip("dask.distributed")
    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}, "hidden": {"choice": [[8], [16]]}}
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        def close_the_scheduler(line):
            if cluster.scheduler.status.name == "running":  # at the first batch's results: the other one is lost
                cluster.sync(cluster.scheduler.close)

        with pytest.raises(ConnectionError, match=r"^execution dask: the connection to the Dask scheduler was lost "
                                                  r"\((scheduler-connection-lost|it went away)\); 2 trials of this "
                                                  r"round did not finish\ntune: its 2 finished trials are in its "
                                                  r"\.study") as raised:
            tune(X, y, dev, space, trials=4, base=BASE, execution="dask", scheduler=client,
                 report=close_the_scheduler)
        assert len(raised.value.study.trials) == 2  # (the first batch's, lost with the search before)


def test_xdl_tune_tells_a_failure_that_is_no_write_without_blaming_the_directory(tmp_path, capsys, monkeypatch):
    """A Dask scheduler lost (or a cluster without workers: "No valid workers found", a TimeoutError)
    was told "once the directory can be written, continue with xdl tune --resume", as a full disk."""
    from xdl.tune import search

    def one_trial_then_the_scheduler_is_lost(todo, round_, s):
        search._sequential(todo[:1], round_, s)
        raise ConnectionError("execution dask: the connection to the Dask scheduler was lost")

    pytest.importorskip("dask.distributed")
    monkeypatch.setattr(search, "_dask", one_trial_then_the_scheduler_is_lost)
    out = tmp_path / "study"
    assert cli.main(["tune", *TINY, "--trials", "2", "--execution", "dask", "--out", str(out)]) == 1
    assert capsys.readouterr().err.endswith(
        f"error: execution dask: the connection to the Dask scheduler was lost; the trials saved are in "
        f"'{out / 'trials.json'}': continue with xdl tune --resume --out {out}\n")


@pytest.mark.parametrize("execution", ["sequential", "batched", "dask"])
def test_a_trial_whose_model_does_not_fit_in_memory_fails_and_the_search_goes_on(data, monkeypatch, execution):
    """A choice of hidden sizes too wide for memory raised MemoryError out of the search in every
    execution, the trial unrecorded: a resume drew the same point and failed again, so the search
    could never get past it (and xdl tune said "once the directory can be written"). It is now
    recorded as failed, as a diverged trial is."""
    if execution == "dask":
        distributed = pytest.importorskip("dask.distributed")
    build = TrainConfig.build_model

    def too_wide(self, *args, **kwargs):  # (an allocation of terabytes, without asking for one)
        if self.hidden == [1 << 20]:
            raise MemoryError(f"hidden {self.hidden}: the model's weights do not fit in memory (Unable to allocate …)")
        return build(self, *args, **kwargs)

    monkeypatch.setattr(TrainConfig, "build_model", too_wide)
    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}, "hidden": {"choice": [[16], [1 << 20]]}}
    arguments = dict(space=space, trials=6, base=BASE, execution=execution)
    if execution == "dask":  # (threads: the patched build is theirs too)
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as \
                cluster, distributed.Client(cluster, set_as_default=False) as client:
            study = tune(X, y, dev, scheduler=client, **arguments)
    else:
        study = tune(X, y, dev, **arguments)
    wide = [t for t in study.trials if t.params["hidden"] == [1 << 20]]
    assert len(study.trials) == 6 and wide and len(wide) < 6
    assert all(t.status == "failed" and t.error.startswith("hidden [1048576]: the model's weights do not fit in memory")
               for t in wide)
    assert all(t.status == "completed" for t in study.trials if t not in wide)


def test_a_batch_that_does_not_fit_in_memory_is_trained_in_halves(data, monkeypatch):
    """K models that do not fit together, where each alone does: halves, down to one trial each,
    with the records a sequential search gives (float64: to rounding)."""
    from xdl.train.many import ManyTrainer

    fit = ManyTrainer.fit

    def only_one_at_a_time(self, *args, **kwargs):
        if len(self.configs) > 1:
            raise MemoryError("Unable to allocate 9.1 TiB for an array with shape (3, 1000000, 1000000)")
        return fit(self, *args, **kwargs)

    X, y, dev = data
    arguments = dict(space={"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=3, base=BASE, dtype="float64")
    alone = tune(X, y, dev, execution="sequential", **arguments)
    monkeypatch.setattr(ManyTrainer, "fit", only_one_at_a_time)
    halves = tune(X, y, dev, execution="batched", **arguments)
    assert [(t.status, t.params, t.dev_accuracy) for t in halves.trials] == \
        [(t.status, t.params, t.dev_accuracy) for t in alone.trials]


def test_the_local_cluster_leaves_dasks_port_8787_to_a_cluster_that_holds_it():
    """With another Dask cluster running (a notebook's, its dashboard at 8787), xdl tune --execution
    dask printed "Port 8787 is already in use. Perhaps you already have a cluster running?" and an
    unclosed socket: its scheduler's HTTP server, made without a dashboard too, took Dask's port."""
    pytest.importorskip("dask.distributed")
    import contextlib
    import socket
    import warnings

    from xdl.tune import search

    held = socket.socket()
    with contextlib.suppress(OSError):  # (another process holding it is as good)
        held.bind(("", 8787))
        held.listen()
    made = search._Search.__new__(search._Search)
    made.scheduler, made.owned = None, []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            made.dask_client()
    finally:
        made.close()
        held.close()
    assert not [str(w.message) for w in caught if "8787" in str(w.message) or "unclosed" in str(w.message)]


def test_a_dask_scheduler_without_workers_is_named(data, monkeypatch):
    """A scheduler no worker had joined: "No valid workers found" after 10 s (the data's scatter),
    which xdl tune told as a directory that could not be written; named now, with what to start."""
    distributed = pytest.importorskip("dask.distributed")
    from xdl.tune import search

    monkeypatch.setattr(search, "CONNECT_SECONDS", 1)
    X, y, dev = data
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        with pytest.raises(TimeoutError, match=rf"^execution dask: no Dask worker joined the scheduler at {address} "
                                               rf"within 1 s: start some \(dask worker {address}\)$"):
            tune(X, y, dev, None, trials=2, base=BASE, execution="dask", scheduler=address)


def test_a_tpe_seed_optuna_cannot_take_is_named_before_the_directory_is_made(data, tmp_path):
    # TPESampler seeds NumPy's RandomState, seed ∈ [0, 2**32): 2**32 failed at the first round, after the directory
    # was made, as NumPy's "Seed must be between 0 and 2**32 - 1" (no argument named); random takes any seed ≥ 0
    X, y, dev = data
    with pytest.raises(ValueError, match=r"^seed must be an integer in \[0, 2\*\*32\) with strategy tpe .*got 4294967296"):
        tune(X, y, dev, {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=2, strategy="tpe", seed=2**32, base=BASE,
             directory=tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_space_of_one_value_choices_searches_nothing(data):
    # {"lr": {"choice": [0.01]}} is lr = 0.01: every trial the same run, as a fixed value's (refused for those)
    X, y, dev = data
    with pytest.raises(ValueError, match=r"^space: trials=3 of a space that searches nothing .*: dropout, lr \(a "
                                         r"choice of one value\) are fixed"):
        tune(X, y, dev, {"dropout": 0.1, "lr": {"choice": [0.01]}}, trials=3, base=BASE)
    assert len(tune(X, y, dev, {"lr": {"choice": [0.01]}}, trials=1, base=BASE).trials) == 1


def test_an_error_that_ends_a_search_carries_the_trials_that_had_finished(data, tmp_path):
    # a report (the user's logger) that raised at trial 1 lost trial 0 and 1 with the search when no directory
    # was given; an Optuna study keeps its trials when a callback raises
    X, y, dev = data
    lines = []

    def report(line):
        lines.append(line)
        if len(lines) == 2:
            raise RuntimeError("the logger failed")

    with pytest.raises(RuntimeError, match="the logger failed") as raised:
        tune(X, y, dev, {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=4, base=BASE, report=report)
    assert [t.number for t in raised.value.study.trials] == [0, 1]
    assert "its 2 finished trials are in its .study" in raised.value.__notes__[0]


@pytest.mark.parametrize("failing, said", [("dask", r"needs dask.distributed: pip install 'xdl\[tune\]'"),
                                           ("locket", r"installed but failed to import: No module named 'locket'")])
def test_a_dask_that_fails_to_import_is_told_from_one_not_installed(monkeypatch, failing, said):
    """Every ImportError read "pip install 'xdl[tune]'", the cause dropped: with dask.distributed
    installed and one of its own dependencies broken, the advice reinstalled what was there."""
    import builtins

    from xdl.tune.search import _distributed

    real = builtins.__import__

    def importing(name, *args, **kwargs):
        if name.startswith("dask"):
            raise ImportError(f"No module named {failing!r}", name=failing)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", importing)
    with pytest.raises(ImportError, match=said):
        _distributed()


def test_a_choice_draws_each_value_alike_and_zoom_keeps_the_centres_value_in_the_middle():
    """x = v[⌊t⌋], t ~ U[0, n) (the module docstring): each of n values with probability 1/n (a
    rounding ⌊t⌉ drew the first half as often, and passed); a choice's coordinate is its cell's
    centre, so zoom to one value around the centre keeps that value."""
    from xdl.tune.search import zoom
    from xdl.tune.space import Choice, Space
    draws = Choice([1, 2, 3, 4]).sample(np.random.default_rng(0), 40_000)
    shares = np.bincount(draws, minlength=5)[1:] / len(draws)
    np.testing.assert_allclose(shares, 0.25, atol=0.01)  # (σ of a share ≈ 0.002)
    space = Space({"hidden": Choice([[8], [16], [32], [64]])})
    for value in ([8], [32], [64]):
        assert zoom(space, {"hidden": value}, shrink=0.25).dimensions["hidden"].values == [value]


def test_a_sequential_search_s_bar_counts_trials(capsys):
    """The search's bar was the training loop's, its unit "batch": a search of 2 trials showed
    "0/2 [?batch/s]"."""
    X = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    tune(X, y, (X, y), {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=2, progress=True,
         base=TrainConfig(epochs=1, hidden=[4]))
    assert "0/2 [00:00<?, ?trial/s]" in capsys.readouterr().err  # (each trial's own bar counts its batches)


def test_workers_that_fail_to_start_name_the_script_s_main_guard(monkeypatch):
    """A script calling tune(execution="dask") at its top level starts a search in each worker, which
    imports it again: Dask said only "Nanny failed to start." — the way is named beside it."""
    distributed = pytest.importorskip("dask.distributed")

    def failing(*args, **kwargs):
        raise RuntimeError("Nanny failed to start.")

    monkeypatch.setattr(distributed, "LocalCluster", failing)
    X = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    with pytest.raises(RuntimeError, match="Nanny failed to start") as raised:
        tune(X, y, (X, y), {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=2, execution="dask",
             base=TrainConfig(epochs=1, hidden=[4]))
    assert "if __name__ == '__main__':" in raised.value.__notes__[-1]


def test_int_uniform_draws_every_integer_alike_near_the_largest_bounds_too():
    """x = a + ⌊u·(b − a + 1)⌋, u ~ U[0, 1) (`IntUniform.sample`): the bounds it takes, ±2**53, draw alike
    too (t ~ U[a − ½, b + ½] rounded, t near 2**53 fell on floats 1 or 2 apart: ties to even and the
    ends' rounding drew 2**53 − 1 three times in four), and small ranges draw what they drew before."""
    from xdl.tune.space import IntUniform
    for low in (2**48, 2**52, 2**53 - 1, -2**53):
        draws = np.array(IntUniform(low, low + 1).sample(np.random.default_rng(0), 20_000)) - low
        assert set(draws.tolist()) == {0, 1}
        assert stats.chisquare(np.bincount(draws)).pvalue > 1e-4  # (before: 1e-9 at 2**48, 0 at 2**53 − 1)
    odd = np.array(IntUniform(-2**53, 2**53).sample(np.random.default_rng(0), 1000)) % 2
    assert 400 < odd.sum() < 600  # (more than 2**53 integers: a 53-bit u's offsets were all even)
    wide = np.array(IntUniform(-2**53, 2**53).sample(np.random.default_rng(0), 1000), dtype=float) / 2**53
    assert wide.min() >= -1 and wide.max() <= 1 and 400 < (wide > 0).sum() < 600  # within its bounds, both halves
    old = np.clip(np.rint(np.random.default_rng(1).uniform(2.5, 9.5, 1000)), 3, 9)  # t ~ U[a − ½, b + ½], rounded
    assert IntUniform(3, 9).sample(np.random.default_rng(1), 1000) == old.astype(int).tolist()


def test_zoom_around_a_point_at_a_bound_keeps_it_and_the_bounds_a_user_gave():
    """A box moved to an edge ends at that edge exactly, and its end there is the dimension's bound
    itself: (high − w) + w fell an ulp short of high, and 10^log10(x) is not always x, so the next
    round's zoom around the same best trial raised "center's lr is …, not a value of the space's",
    and a narrowing at the low end drew lr below the low a user gave."""
    for d, name in ((LogUniform(90887.91322618249, 451328.98713183095), "lr"),
                    (Uniform(-4.2310754620742745, -4.227638509494816), "dropout"),
                    (OneMinusLog(0.4523058172630612, 0.9601703829117034), "beta1")):
        space = Space({name: d})
        for end in d.bounds:
            once = zoom(space, {name: end}, shrink=0.3)
            zoom(once, {name: end}, shrink=0.3)  # (raised: the centre was out of the box zoom had made around it)
            low, high = once.dimensions[name].bounds
            assert d.bounds[0] <= low <= end <= high <= d.bounds[1]
    assert LogUniform(1.7632164355185722, 6247.690506010698).narrowed(0.0, 3.0).bounds[0] == 1.7632164355185722


def test_zoom_around_a_choice_finds_its_value_not_one_equal_to_it():
    """A choice's coordinate is its value's cell, found as the study writes it: in [0, False, True],
    False == 0, and zoom around False narrowed to 0 (True, likewise, to 1 of [1, 1.0, True])."""
    space = Space({"augment_flip": Choice([0, False, True])})
    assert zoom(space, {"augment_flip": False}, shrink=0.3).dimensions["augment_flip"].values == [False]
    space = Space({"hidden": Choice([1, 1.0, True])})
    assert zoom(space, {"hidden": True}, shrink=0.3).dimensions["hidden"].values == [True]
    with pytest.raises(ValueError, match="not a value of the space"):
        zoom(Space({"hidden": Choice([1, 2])}), {"hidden": True})


def test_ctrl_c_while_trials_json_is_written_keeps_the_trials_it_names(data, tmp_path, monkeypatch):
    """A Ctrl-C that lands in `Study.save` (its fsync, a slow disk's longest wait) left the trial
    just recorded in the study but not in trials.json: the search said "its 1 finished trial is in
    trials.json", the directory was empty, and resume=True failed with "no trials.json". The
    finished trials are written again at the Ctrl-C, while the search still holds its directory."""
    import os

    from xdl import files
    from xdl.train import Interrupted

    fsync, calls = os.fsync, []

    def interrupted_fsync(fd):  # as a SIGINT delivered while the first trials.json is fsync'd
        calls.append(fd)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return fsync(fd)

    monkeypatch.setattr(files.os, "fsync", interrupted_fsync)
    X, y, dev = data
    out, space = tmp_path / "study", {"lr": {"log_uniform": [1e-3, 1e-1]}}
    base = dataclasses.replace(BASE, epochs=1)
    with xdl.use("numpy"), pytest.raises(Interrupted, match="its 1 finished trial is in"):
        tune(X, y, dev, space, trials=3, execution="sequential", base=base, directory=out)
    assert [t["number"] for t in json.loads((out / "trials.json").read_text())["trials"]] == [0]
    with xdl.use("numpy"):
        study = tune(X, y, dev, space, trials=3, execution="sequential", base=base, directory=out, resume=True)
    assert [t.number for t in study.trials] == [0, 1, 2]


@pytest.mark.parametrize("field, value, said", [
    ("dev_cost", None, "its trial 0's 'dev_cost' is None, expected a number"),
    ("params", None, "its trial 0's 'params' is None, expected a dict"),
    ("status", "done", "its trial 0's 'status' is 'done', expected one of completed, stopped, pruned, failed"),
    ("dev_accuracy", "0.9", "its trial 0's 'dev_accuracy' is '0.9', expected a number in [0, 1]"),
    ("epochs", 1.5, "its trial 0's 'epochs' is 1.5, expected an integer ≥ 0")])
def test_a_damaged_trial_in_trials_json_is_refused_before_a_resume_trains(data, tmp_path, field, value, said):
    """trials.json's trials were read as they were: a completed trial without its dev cost trained
    the resumed search's remaining trials, rewrote the study, then failed as "unsupported format
    string passed to NoneType.__format__" (Study.load's table() too); params of null, a TypeError.
    Refused now, naming the file, the trial and the field, with the directory untouched."""
    from xdl.tune.study import Study

    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}}
    tune(X, y, dev, space, trials=1, base=BASE, directory=tmp_path)
    saved = json.loads((tmp_path / "trials.json").read_text())
    saved["trials"][0][field] = value
    (tmp_path / "trials.json").write_text(json.dumps(saved))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match=re.escape(f"trials.json' is damaged or was edited: {said}")):
        Study.load(tmp_path)
    with pytest.raises(ValueError, match=re.escape(said)):
        tune(X, y, dev, space, trials=2, base=BASE, directory=tmp_path, resume=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_trials_json_holds_ranked_trials_with_dev_figures_and_accuracies_in_0_1_both_ends_taken(tmp_path):
    """A completed or early-stopped trial (both ranked) needs its dev figures; a pruned or failed one may hold null;
    a dev accuracy is in [0, 1], its ends included — each field against the rule written out, at every status."""
    from xdl.tune.study import Study, Trial

    cases = 0
    for status in ("completed", "stopped", "pruned", "failed"):
        for field, value in (("dev_cost", None), ("dev_accuracy", None), ("dev_accuracy", 0.0),
                             ("dev_accuracy", 1.0), ("dev_accuracy", 1.5), ("dev_accuracy", -0.25)):
            trial = Trial(0, 0, {"lr": 0.1}, status, None, 0.5, 1.0, 2)
            setattr(trial, field, value)
            study = Study({"space": {}}, tmp_path)
            study.trials = [trial]
            study.save()
            refused = value is None and status in ("completed", "stopped") or value is not None and not 0 <= value <= 1
            if refused:
                with pytest.raises(ValueError, match=rf"its trial 0's '{field}' is {value!r}, expected a number"):
                    Study.load(tmp_path)
            else:
                assert getattr(Study.load(tmp_path).trials[0], field) == value
            cases += 1
    assert cases == 24


def test_best_config_of_a_loaded_study_with_damaged_base_options_names_its_directory(tmp_path):
    """A trials.json whose base options were edited (decay_base = -1) gave "trial 0: decay_base must
    be …", naming no file (``xdl tune --resume`` names the study)."""
    from xdl.tune.study import Study, Trial

    saved = Study({"space": {}, "base": {"epochs": 3, "decay_base": -1}}, tmp_path)
    saved.add([Trial(0, 0, {"lr": 0.01}, "completed", dev_accuracy=0.9, dev_cost=0.3, epochs=3)])
    with pytest.raises(ValueError, match=rf"best_config: the study in {re.escape(repr(str(tmp_path)))} holds options "
                                         r"no run takes: trial 0: decay_base"):
        Study.load(tmp_path).best_config()


def test_a_study_loaded_or_resumed_from_its_trials_json_file_is_told_to_give_its_directory(tmp_path):
    """Study.load("xdl-tune/trials.json") said "no trials.json in 'xdl-tune/trials.json'": the file it
    asked for was the one given. A file is told apart, for each way in (Study.load, a resume, the CLI's)."""
    from xdl.tune.study import Study, Trial, saved_study

    saved = Study({"space": {}, "base": {"epochs": 3}}, tmp_path)
    saved.add([Trial(0, 0, {"lr": 0.01}, "completed", dev_accuracy=0.9, dev_cost=0.3, epochs=3)])
    (tmp_path / "notes.txt").write_text("a file of another name")
    for name in ("trials.json", "notes.txt"):
        for who in ("Study.load", "resume", "--resume"):
            with pytest.raises(NotADirectoryError, match=rf"^{re.escape(who)}: .*{re.escape(name)}' is a file; give "
                                                         r"the study's directory, which holds its trials.json$"):
                saved_study(tmp_path / name, who)
        with pytest.raises(NotADirectoryError, match=r"^Study.load: .* is a file"):
            Study.load(str(tmp_path / name))
    assert Study.load(tmp_path).best.params == {"lr": 0.01}



def test_a_dask_worker_trains_on_the_searchs_backend_and_precision(data, monkeypatch, fake_dask):
    """A Dask worker is a process of its own, whose backend was its XDL_BACKEND's (or auto's), not the
    search's: ``xdl tune --backend numpy --execution dask`` under XDL_BACKEND=cupy said "backend numpy"
    and failed on "backend 'cupy' is unavailable" in every batch, and --precision tf32 reached no worker.
    A worker of the search's own LocalCluster trains as sequential and batched do; one of a cluster it
    was given, with the base options' backend (auto: its own) and precision."""
    from xdl.train.many import ManyTrainer
    from xdl.tune import search

    X, y, dev = data
    seen, fit = [], ManyTrainer.fit

    def recorded(self, *args, **kwargs):
        seen.append((xdl.current_backend().name, xdl.current_backend().precision))
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(ManyTrainer, "fit", recorded)
    with xdl.use("numpy", precision="tf32"):
        study = tune(X, y, dev, {"lr": {"choice": [1e-3, 1e-2]}}, trials=2, strategy="grid", execution="dask",
                     base=BASE)
    assert len(study.trials) == 2 and seen == [("numpy", "tf32")]
    given = search._Search.__new__(search._Search)  # a cluster it was given: the base options'
    given.local, given.backend = False, ("numpy", "float32")
    given.base = dataclasses.replace(BASE, backend="cpu", precision="tf32")
    assert given.worker_backend() == ("cpu", "tf32")
    given.base = BASE
    assert given.worker_backend() == (None, "float32")


def test_a_studys_repr_names_its_best_trial_and_its_directory_only_when_it_has_one(tmp_path):
    """As a notebook cell shows it: the count, the completed ones, the best (a pruned trial is not),
    and "; in DIR" for a study kept on disk only."""
    from xdl.tune.study import Study, Trial

    study = Study({}, tmp_path)
    study.trials += [Trial(0, 0, {}, "completed", dev_accuracy=0.5, dev_cost=1.0),
                     Trial(1, 0, {}, "pruned", dev_accuracy=0.9, dev_cost=0.5),
                     Trial(2, 0, {}, "failed", error="boom")]
    assert repr(study) == f"Study(3 trials, 1 completed, best: trial 0 with dev accuracy 0.5000; in {str(tmp_path)!r})"
    assert repr(Study({})) == "Study(0 trials, 0 completed)"


def _better(a, b) -> bool:
    """Whether trial ``a`` ranks before ``b``: higher dev accuracy, then lower dev cost, then the lower number."""
    if a.dev_accuracy != b.dev_accuracy:
        return a.dev_accuracy > b.dev_accuracy
    if a.dev_cost != b.dev_cost:
        return a.dev_cost < b.dev_cost
    return a.number < b.number


def test_the_best_trial_and_the_ranking_break_ties_by_dev_cost_then_trial_number():
    """Trials of equal dev accuracy (a small dev set's few values) rank by dev cost, then the earlier trial: the
    best, the ranking and the table's order against a plain loop, over draws full of ties."""
    from xdl.tune.study import Study, Trial

    rng, cases = np.random.default_rng(1), 0
    for _ in range(200):
        n = int(rng.integers(1, 9))
        numbers = [int(k) for k in rng.permutation(n)]
        statuses = rng.choice(["completed", "stopped", "pruned", "failed"], n)
        study = Study({})
        study.trials = [Trial(k, 0, {"lr": 0.1}, str(s), *(("diverged", None, None) if s == "failed" else
                                                          (None, float(rng.choice([0.5, 0.75])),
                                                           float(rng.choice([1.0, 2.0])))))
                        for k, s in zip(numbers, statuses)]
        left, order = [t for t in study.trials if t.status in ("completed", "stopped")], []
        while left:  # selection by a plain loop: the best of those left, again and again
            best = left[0]
            for t in left[1:]:
                best = t if _better(t, best) else best
            order.append(best.number)
            left.remove(best)
        assert [t.number for t in study.ranked()] == order
        assert (study.best.number if study.best is not None else None) == (order[0] if order else None)
        rows = [row for row in study.table(k=n).splitlines()[2:] if row.startswith("| ")]
        assert [int(row.split("|")[2]) for row in rows] == order
        cases += 1
    assert cases == 200


def test_a_trial_without_a_dev_record_or_a_failed_one_with_one_says_its_status_and_error():
    """``ok`` is "not failed and has a dev record": a pruned trial saved without one (trials.json allows null) is
    not ok, and its line says its status (formatting None as a dev accuracy raised TypeError); a failed trial that
    kept the record of its epochs before it diverged is not ok either, and its line says its error."""
    from xdl.tune.study import Trial

    bare = Trial(4, 0, {"lr": 0.123456}, "pruned")  # (a float said in 3 significant digits)
    assert (bare.ok, bare.complete) == (False, False)
    assert bare.summary() == "trial 4 pruned (lr=0.123): None"
    failed = Trial(5, 0, {"lr": 0.5}, "failed", "diverged: the cost became inf at epoch 2, step 3", 0.4, 2.1, 1)
    assert (failed.ok, failed.complete) == (False, False)
    assert failed.summary() == "trial 5 failed (lr=0.5): diverged: the cost became inf at epoch 2, step 3"


def test_a_study_saved_with_an_added_option_resumes_with_it_and_one_saved_without_it_compares_its_default(tmp_path):
    """`Study.resume`'s ``added``: a saved base that lacks an added option (an older xdl's) is compared at the
    value it trained with; one that holds it, at its own — never the default over it (l1 0.5 saved and given)."""
    from xdl.config import ADDED_OPTIONS
    from xdl.tune.study import Study

    meta = {"space": {}, "trials": 2, "base": {"epochs": 2, "l1": 0.5}}
    (tmp_path / "new").mkdir()
    (tmp_path / "old").mkdir()
    Study(meta, tmp_path / "new").save()
    assert Study.resume(meta, tmp_path / "new", added=ADDED_OPTIONS).meta == meta
    Study({**meta, "base": {"epochs": 2}}, tmp_path / "old").save()  # (before l1: trained without it)
    with pytest.raises(ValueError, match=r"made with base\.l1 0\.0, this one has 0\.5\. Resuming"):
        Study.resume(meta, tmp_path / "old", added=ADDED_OPTIONS)
    resumed = Study.resume({**meta, "base": {"epochs": 2, "l1": 0.0}}, tmp_path / "old", added=ADDED_OPTIONS)
    assert resumed.meta["base"] == {"epochs": 2, "l1": 0.0}
    # a key only one side has is passed over in the meta and its base only: deeper, in the space, it differs
    wider = {**meta, "space": {"l2": {"uniform": [0.0, 0.1]}}, "halving": 2}
    with pytest.raises(ValueError, match=r"made with space\.l2 None, this one has \{'uniform': \[0\.0, 0\.1\]\}\. "):
        Study.resume(wider, tmp_path / "new", added=ADDED_OPTIONS)



def test_a_study_saved_before_each_added_option_resumes_with_that_options_default(tmp_path):
    """A study an older xdl saved, whose base lacks an option added since (l1, max_grad_norm, plateau_patience,
    plateau_factor, decay_k), trained as that option's default does: a resume with every option at its
    default (``TrainConfig()``'s) goes on with it; with another value of it, it is another search."""
    import dataclasses

    from xdl.config import ADDED_OPTIONS, TrainConfig
    from xdl.tune.study import Study

    defaults = dataclasses.asdict(TrainConfig())
    for name in ADDED_OPTIONS:
        meta = {"space": {}, "trials": 2, "base": defaults}
        directory = tmp_path / name
        directory.mkdir()
        Study({**meta, "base": {k: v for k, v in defaults.items() if k != name}}, directory).save()
        assert Study.resume(meta, directory, added=ADDED_OPTIONS).meta["base"] == defaults, name
        other = {**meta, "base": {**defaults, name: 0.5}}
        with pytest.raises(ValueError, match=rf"made with base\.{name} {defaults[name]!r}, this one has 0\.5\. "):
            Study.resume(other, directory, added=ADDED_OPTIONS)

def test_each_trial_of_a_batch_is_reported_in_number_order_with_the_best_before_it_and_its_own():
    """`Study.add`'s report: a batch's trials in number order, each line with the best completed trial among those
    recorded before and the batch's up to it — against a plain loop."""
    from xdl.tune.study import Study, Trial

    rng, cases = np.random.default_rng(2), 0
    for _ in range(50):
        lines, study = [], Study({})
        study.report = lines.append
        numbers = [int(k) for k in rng.permutation(8)]
        batches = [numbers[:3], numbers[3:]]
        trials = {k: Trial(k, 0, {}, str(rng.choice(["completed", "pruned", "failed"])), None,
                           float(rng.choice([0.5, 0.75, 0.9])), 1.0) for k in numbers}
        for t in trials.values():
            t.error, t.dev_accuracy = ("boom", None) if t.status == "failed" else (None, t.dev_accuracy)
        expected, best = [], None
        for batch in batches:
            study.add([trials[k] for k in batch])
            for k in sorted(batch):
                t = trials[k]
                if t.status == "completed" and (best is None or _better(t, best)):
                    best = t
                expected.append(t.summary() + (f"; best so far: trial {best.number} ({best.dev_accuracy:.4f})"
                                                if best is not None else ""))
        assert lines == expected
        cases += 1
    assert cases == 50


def test_a_studys_table_names_its_first_failed_trial_and_its_data_frame_each_trials_round(tmp_path):
    """The table's last line names the first failed trial (by number) of several; the data frame's round column is
    each trial's round; best.toml holds every option of the best configuration (true/false for a flag) but where
    a run writes and what it resumes, as TOML reads back."""
    import tomllib

    from xdl.tune.search import _options
    from xdl.tune.study import Study, Trial

    base = TrainConfig(hidden=[8], epochs=3, batch_norm=False)  # (progress: no option a study keeps)
    study = Study({"base": _options(base)}, tmp_path)
    study.trials = [Trial(0, 0, {"lr": 0.01}, "completed", dev_accuracy=0.7, dev_cost=1.0, epochs=3),
                    Trial(1, 0, {"lr": 9.0}, "failed", error="diverged: first"),
                    Trial(2, 1, {"lr": 0.02}, "completed", dev_accuracy=0.8, dev_cost=1.0, epochs=3),
                    Trial(3, 1, {"lr": 8.0}, "failed", error="diverged: second"),
                    Trial(4, 1, {"lr": 0.03}, "pruned", dev_accuracy=0.9, dev_cost=0.5, epochs=1)]
    assert study.table().endswith("\n1 trial pruned (stopped early at a rung, not ranked)\n"
                                  "\n2 trials failed; first: trial 1: diverged: first")
    if importlib.util.find_spec("pandas") is not None:
        assert study.trials_dataframe()["round"].tolist() == [0, 0, 1, 1, 1]
    written = tomllib.loads(study.write_best().read_text())
    expected = {k: v for k, v in dataclasses.asdict(dataclasses.replace(base, lr=0.02)).items()
                if k not in ("out", "resume") and v is not None}
    assert written == expected and written["batch_norm"] is False and written["lr"] == 0.02


def test_a_directory_named_trials_json_is_no_saved_study(tmp_path):
    """`Study.load` of a directory whose trials.json is a directory says there is no trials file (reading it was an
    IsADirectoryError, an OSError of the file's, not the missing study it is)."""
    from xdl.tune.study import Study

    (tmp_path / "trials.json").mkdir()
    with pytest.raises(FileNotFoundError, match=r"^Study\.load: no trials\.json in "):
        Study.load(tmp_path)


def test_a_trial_and_a_dimension_print_as_made_and_briefly():
    """A trial's repr leaves out its per-epoch curves (``study.best`` of a 200-epoch trial printed 16,000
    characters); a dimension's is the call that makes it (it printed ``log_uniform(0.0001, 0.1)``,
    which names nothing, and a choice's values as several arguments)."""
    from xdl.tune import IntUniform
    from xdl.tune.study import Trial

    curves = {key: [0.5] * 200 for key in ("train_cost", "dev_cost", "dev_accuracy", "lr")}
    trial = Trial(0, 0, {"lr": 0.001}, "completed", dev_accuracy=0.5, dev_cost=1.0, epochs=200, curves=curves)
    assert len(repr(trial)) < 300 and "dev_accuracy=0.5" in repr(trial)
    done = Trial(3, 0, {"lr": 0.001, "hidden": [8]}, "completed", dev_accuracy=0.95, dev_cost=0.1234, epochs=1,
                 seconds=1.5)  # (a search's report of each trial: a completed one's line, not a failed one's)
    assert done.summary() == ("trial 3 completed after 1 epoch (1.5 s): dev accuracy 0.9500, dev cost 0.1234; "
                              "hidden=[8], lr=0.001")
    namespace = {"Uniform": Uniform, "LogUniform": LogUniform, "OneMinusLog": OneMinusLog, "IntUniform": IntUniform,
                 "Choice": Choice}
    for dimension in (Uniform(0.0, 0.5), LogUniform(1e-4, 0.1), OneMinusLog(0.9, 0.999), IntUniform(1, 5),
                      Choice([[64], [128, 64]]), Choice(["adam", "sgd"])):
        again = eval(repr(dimension), namespace)  # noqa: S307 - the repr this test checks
        assert type(again) is type(dimension) and again.spec() == dimension.spec(), repr(dimension)
    assert repr(Space({"lr": LogUniform(1e-3, 1e-2)})) == "Space({'lr': LogUniform(0.001, 0.01)}, fixed={})"


def test_a_batched_search_over_dropout_with_zero_among_its_values_trains_every_trial(data):
    """A model without dropout has no Dropout layer: trials with dropout 0 and with dropout > 0 are
    batched apart, and every one trains."""
    X, y, dev = data
    study = tune(X, y, dev, {"dropout": {"choice": [0.0, 0.3]}}, trials=4, strategy="grid", base=BASE,
                 execution="batched")
    assert {t.params["dropout"] for t in study.trials} == {0.0, 0.3}
    assert all(t.status == "completed" for t in study.trials), [t.error for t in study.trials]


def test_a_study_encodes_each_trial_once_and_writes_the_bytes_json_dump_writes(tmp_path, monkeypatch):
    """``trials.json`` is rewritten at each trial recorded: a trial already written is not encoded
    again (a search re-encoded every trial at each, a cost growing with every trial) unless it
    changed, and the file holds the bytes ``json.dump(..., indent=1)`` writes."""
    from xdl.tune.study import TRIALS_FILE, Study, Trial

    asdict, encoded = dataclasses.asdict, []

    def counted(value, *args, **kwargs):  # (the trials study.save encodes, by number)
        if isinstance(value, Trial):
            encoded.append(value.number)
        return asdict(value, *args, **kwargs)

    def written(study):
        expected = json.dumps({"meta": study.meta, "trials": [asdict(t) for t in study.trials]}, indent=1)
        return (tmp_path / TRIALS_FILE).read_text(encoding="utf-8"), expected

    monkeypatch.setattr(dataclasses, "asdict", counted)
    study = Study({"space": {"lr": {"log_uniform": [1e-4, 0.1]}}, "base": {"hidden": [8], "note": 'a\n"é"'}}, tmp_path)
    study.save()
    assert written(study)[0] == written(study)[1]  # (no trials: "trials": [])
    study.add([Trial(1, 0, {"lr": 0.01}, "completed", dev_accuracy=0.5, dev_cost=0.7, epochs=2,
                     curves={"dev_cost": [0.9, 0.7], "lr": [0.01, 0.01]})])
    for number in (0, 2, 3):
        study.add([Trial(number, 0, {"lr": 0.1}, "failed", error="diverged\nat epoch 1")])
        assert encoded.count(1) == 1 and encoded.count(number) == 1
        assert written(study)[0] == written(study)[1]
    study.trials[1].curves["dev_cost"].append(0.6)  # changed in place: written as it is now
    study.save()
    assert encoded.count(1) == 2 and written(study)[0] == written(study)[1]
    monkeypatch.undo()
    assert [t.number for t in Study.load(tmp_path).trials] == [0, 1, 2, 3]


def test_a_trial_changed_in_place_to_equal_values_of_other_json_is_written_as_it_is_now(tmp_path):
    """``trials.json`` is the bytes ``json.dump(..., indent=1)`` writes of the trials as they are now:
    a trial changed in place to values ``==`` calls equal but JSON writes otherwise (0.0 → 0, → False,
    → -0.0; its params reordered) is encoded again — compared by ``==``, it kept its first JSON."""
    from xdl.tune.study import TRIALS_FILE, Study, Trial

    study = Study({"space": {}}, tmp_path)
    study.add([Trial(0, 0, {"lr": 0.01, "l2": 0.0}, "completed", dev_accuracy=1.0, dev_cost=0.0, epochs=1,
                     curves={"dev_cost": [0.0]})])
    trial = study.trials[0]
    for change in (lambda: setattr(trial, "dev_cost", 0), lambda: setattr(trial, "dev_cost", -0.0),
                   lambda: setattr(trial, "dev_accuracy", True), lambda: trial.curves["dev_cost"].__setitem__(0, False),
                   lambda: setattr(trial, "params", {"l2": 0.0, "lr": 0.01})):
        change()
        study.save()
        expected = json.dumps({"meta": study.meta, "trials": [dataclasses.asdict(t) for t in study.trials]}, indent=1)
        assert (tmp_path / TRIALS_FILE).read_text(encoding="utf-8") == expected


def test_dask_without_distributed_is_told_to_install_the_extra(monkeypatch):
    """``pip install dask`` alone: dask.distributed re-raises distributed's "No module named" as its
    own message, without a name, and xdl said "dask.distributed is installed but failed to import:
    dask.distributed is not installed"."""
    import builtins
    import sys

    dask = pytest.importorskip("dask")
    pytest.importorskip("dask.distributed")
    from xdl.tune.search import _distributed

    real = builtins.__import__

    def importing(name, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "dask.distributed")  # imported again, as where it never was
    monkeypatch.delattr(dask, "distributed", raising=False)
    monkeypatch.setattr(builtins, "__import__", importing)
    with pytest.raises(ImportError, match=r"^execution 'dask' needs dask.distributed: pip install 'xdl\[tune\]'$"):
        _distributed()


@pytest.mark.parametrize("error, said", [
    (ModuleNotFoundError("No module named 'optuna'", name="optuna"), r"needs Optuna: pip install 'xdl\[tune\]'$"),
    (ModuleNotFoundError("No module named 'sqlalchemy'", name="sqlalchemy"),
     r"needs Optuna, which is installed but failed to import: No module named 'sqlalchemy'")])
def test_an_optuna_that_fails_to_import_is_told_from_one_not_installed(monkeypatch, error, said):
    """A dependency of Optuna's own missing was told "needs Optuna: pip install 'xdl[tune]'", which
    changed nothing: Optuna was installed."""
    import builtins

    from xdl.tune.search import _optuna

    real = builtins.__import__

    def importing(name, *args, **kwargs):
        if name == "optuna":
            raise error
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", importing)
    with pytest.raises(ImportError, match=said):
        _optuna()


def test_a_studys_trials_as_a_dataframe_as_optunas(data, tmp_path, monkeypatch):
    """Optuna's study.trials_dataframe(): one row per trial in trial order, its state and value, a
    params_<name> column per hyperparameter (a list value kept as the list), from a saved study too."""
    import builtins

    from xdl.tune.study import Study

    pandas = pytest.importorskip("pandas")
    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}, "hidden": {"choice": [[8], [8, 4]]}}
    study = tune(X, y, dev, space, trials=3, base=BASE, directory=tmp_path / "s")
    frame = Study.load(tmp_path / "s").trials_dataframe()
    assert list(frame.columns) == ["number", "round", "state", "status", "value", "dev_cost", "epochs", "seconds",
                                   "error", "params_hidden", "params_lr"]
    assert frame["number"].tolist() == [0, 1, 2] and frame["status"].tolist() == [t.status for t in study.trials]
    # state in Optuna's names, as an Optuna user filters it (df[df.state == "COMPLETE"])
    assert frame["state"].tolist() == [{"completed": "COMPLETE", "stopped": "COMPLETE", "pruned": "PRUNED",
                                        "failed": "FAIL"}[t.status] for t in study.trials]
    assert frame["value"].tolist() == [t.dev_accuracy for t in study.trials]
    assert frame["params_hidden"].tolist() == [t.params["hidden"] for t in study.trials]
    assert frame["params_lr"].dtype == np.float64
    assert frame["dev_cost"].tolist() == [t.dev_cost for t in study.trials]
    assert frame["epochs"].tolist() == [t.epochs for t in study.trials]
    finished = Study.load(tmp_path / "s")
    finished.trials.reverse()  # (held in the order they ended: a dask round's, say)
    assert finished.trials_dataframe()["number"].tolist() == [0, 1, 2]
    assert isinstance(frame, pandas.DataFrame) and Study(study.meta).trials_dataframe().empty

    real = builtins.__import__

    def without_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ModuleNotFoundError("No module named 'pandas'", name="pandas")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_pandas)
    with pytest.raises(ImportError, match=r"^trials_dataframe needs pandas: pip install 'xdl\[tune\]'$"):
        study.trials_dataframe()


def test_a_dataframes_state_is_one_of_optunas_trial_states_for_every_status():
    """Optuna's trials_dataframe() says a trial's state by its TrialState's name: a frame whose
    state held xdl's "completed" and "failed" matched no df.state == "COMPLETE" of Optuna's users."""
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("pandas")
    from xdl.tune.study import TRIAL_STATUSES, Study, Trial

    study = Study({})
    study.trials = [Trial(i, 0, {"lr": 0.1}, status, *(("diverged", None, None) if status == "failed" else
                                                      (None, 0.5, 1.0))) for i, status in enumerate(TRIAL_STATUSES)]
    frame = study.trials_dataframe()
    assert set(frame["state"]) <= {s.name for s in optuna.trial.TrialState}
    assert frame["state"].tolist() == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL"]
    assert frame["status"].tolist() == list(TRIAL_STATUSES)


def test_a_tls_scheduler_address_without_tls_set_up_is_said_as_distributed_says_it():
    """The identity probe read distributed's refusal to open the connection (no TLS context: nothing
    was sent) as the server's reply, "'tls://…' is not a Dask scheduler (its reply is no Dask
    message: TypeError); give the scheduler's address": the address was right, the setup not."""
    pytest.importorskip("dask.distributed")
    from xdl.tune.search import connect

    with pytest.raises(TypeError, match="check your TLS configuration"):
        connect("tls://127.0.0.1:1")


def test_optuna_pruning_reports_each_epoch_and_prunes_a_trial_of_ones_own_objective(data):
    """As Optuna's Keras and Lightning callbacks: each epoch's dev accuracy reported at its epoch,
    optuna.TrialPruned where the pruner says, which study.optimize records as a pruned trial."""
    optuna = pytest.importorskip("optuna")
    from xdl.tune import OptunaPruning

    X, y, dev = data

    def train(trial, lr, monitor="dev_accuracy"):
        xdl.seed(0)
        model = xdl.nn.mlp(X.shape[1], [8], 10)
        trainer = Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=lr), epochs=4,
                          batch_size=32, progress=False, callbacks=[OptunaPruning(trial, monitor)])
        return trainer.fit(X, y, dev=dev)[-1][monitor]

    rates = iter([0.05, 0.0])  # (a rate of 0 learns nothing: pruned once it is below the first's)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1))
    study.optimize(lambda trial: train(trial, next(rates)), n_trials=2)
    first, second = study.trials
    assert first.state == optuna.trial.TrialState.COMPLETE and sorted(first.intermediate_values) == [1, 2, 3, 4]
    assert second.state == optuna.trial.TrialState.PRUNED and len(second.intermediate_values) < 4  # (stopped)
    with pytest.raises(ValueError, match="monitor 'dev_cost' is to minimize, and the trial's study is to maximize"):
        OptunaPruning(study.ask(), "dev_cost")  # (pruned for doing well: the pruner compares the other way)
    with pytest.raises(ValueError, match="OptunaPruning: monitor must be one of"):
        OptunaPruning(study.ask(), "val_accuracy")
    with pytest.raises(TypeError, match="OptunaPruning: trial must be an Optuna trial"):
        OptunaPruning(study)
    with pytest.raises(TypeError, match="OptunaPruning: trial must be an Optuna trial"):  # (one that cannot prune)
        OptunaPruning(type("Reporter", (), {"report": lambda self, value, step: None})())
    both = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.raises(ValueError, match="OptunaPruning: the trial's study has several objectives"):
        OptunaPruning(both.ask(), "dev_accuracy")


def test_optuna_pruning_takes_a_trial_of_no_study_and_trains_every_epoch(data):
    """Optuna's docs run an objective again with chosen values — objective(study.best_trial), a FrozenTrial (its
    recipe "re-use the best trial"), or objective(FixedTrial(params)) — and its pruning callbacks take them
    (should_prune is always False: optuna/optuna#3299 trains the final model so). A FrozenTrial was refused, so an
    objective with OptunaPruning could not be re-run with the best trial: each is taken, and the run trains all its
    epochs, unpruned, with a pruner that would have pruned it in a study."""
    optuna = pytest.importorskip("optuna")
    from xdl.tune import OptunaPruning

    X, y, dev = data

    def objective(trial):
        xdl.seed(0)
        model = xdl.nn.mlp(X.shape[1], [8], 10)
        lr = trial.suggest_float("lr", 0.0, 0.05)
        trainer = Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=lr), epochs=3,
                          batch_size=32, progress=False, callbacks=[OptunaPruning(trial, "dev_accuracy")])
        history = trainer.fit(X, y, dev=dev)
        assert len(history) == 3 and history.stopped_epoch is None  # (every epoch, unpruned)
        return history[-1]["dev_accuracy"]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))  # (prunes
    # every trial of the study at its first report: no accuracy is above 2)
    study.enqueue_trial({"lr": 0.05})
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED
    frozen = [*study.trials, *study.get_trials(), optuna.trial.create_trial(params={"lr": 0.05}, distributions={
        "lr": optuna.distributions.FloatDistribution(0.0, 0.05)}, value=1.0)]
    for trial in [*frozen, optuna.trial.FixedTrial({"lr": 0.05})]:
        assert 0 <= objective(trial) <= 1, type(trial).__name__  # (its three epochs, asserted in it)
        assert OptunaPruning(trial, "dev_accuracy").trial is trial


def test_optuna_pruning_refuses_a_monitor_the_run_does_not_measure_before_any_epoch(data):
    """A dev column with no dev set, or an accuracy of a regression's loss, was found at the first
    epoch's end — that epoch trained for nothing — and said as "the record of epoch 1 has no
    dev_accuracy (… the dev set given to fit …)" where a dev set was given: refused as
    EarlyStopping's are, before any epoch."""
    optuna = pytest.importorskip("optuna")
    from xdl.tune import OptunaPruning

    X, y, dev = data
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    model = xdl.nn.mlp(X.shape[1], [8], 10)
    trainer = Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=0.05), epochs=2,
                      progress=False, callbacks=[OptunaPruning(study.ask(), "dev_accuracy")])
    with pytest.raises(ValueError, match=r"^OptunaPruning monitors 'dev_accuracy', which this run does not measure: "
                                         r"pass dev=\(X_dev, y_dev\) to fit"):
        trainer.fit(X, y)
    assert trainer.epoch == 0 and len(trainer.history) == 0
    model = xdl.nn.mlp(X.shape[1], [8], 1)
    trainer = Trainer(model, xdl.losses.MeanSquaredError(), xdl.optim.SGD(model, lr=1e-3), epochs=2,
                      progress=False, callbacks=[OptunaPruning(study.ask(), "dev_accuracy")])
    column = lambda labels: labels.astype(np.float32).reshape(-1, 1)  # noqa: E731
    with pytest.raises(ValueError, match="OptunaPruning monitors 'dev_accuracy', but this run's loss measures no "
                                         "accuracy"):
        trainer.fit(X, column(y), dev=(dev[0], column(dev[1])))
    assert trainer.epoch == 0


def test_optuna_pruning_in_fit_many_passes_an_epoch_no_model_ended(data):
    """fit_many's epoch in which every model diverged has no best model, and so no dev accuracy:
    OptunaPruning passed it as EarlyStopping does, where it raised "the record of epoch 1 has no
    dev_accuracy (… the dev set given to fit …)" in place of the K failed results."""
    optuna = pytest.importorskip("optuna")
    from xdl.train import fit_many
    from xdl.tune import OptunaPruning

    X, y, dev = data
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial = optuna.create_study(direction="maximize").ask()
    configs = [TrainConfig(lr=lr, seed=k, epochs=2, patience=0, hidden=[8]) for k, lr in enumerate([1e5, 1e6])]
    results = fit_many(configs, X, y, dev=dev, callbacks=[OptunaPruning(trial, "dev_accuracy")])
    assert [r.status for r in results] == ["failed", "failed"] and trial.study.trials[0].intermediate_values == {}


def test_a_zoomed_space_recorded_by_a_study_reads_back():
    """`zoom` may narrow an integer range to one value and β to a box below ½ (`narrowed`): a study of
    that space records them as its spec, which `Space.from_dict` refused ("low must be < high", "one_minus_log
    takes bounds on β") — the study could not be plotted (`plot_study`) or resumed (``xdl tune --resume``).
    Read as a record they are the same space; written by hand they are still refused."""
    space = Space.from_dict({"epochs": {"int_uniform": [1, 2]}, "beta1": {"one_minus_log": [0.0, 0.9]}})
    narrow = zoom(space, {"epochs": 1, "beta1": 0.05}, shrink=0.1)
    assert narrow.spec()["epochs"] == {"int_uniform": [1, 1]} and narrow.spec()["beta1"]["one_minus_log"][1] < 0.5
    spec = json.loads(json.dumps(narrow.spec()))
    study = xdl.tune.Study({"space": spec})
    study.trials = [xdl.tune.Trial(0, 0, {"epochs": 1, "beta1": 0.01}, "completed", dev_accuracy=0.9, dev_cost=0.3)]
    assert len(xdl.plots.plot_study(study).axes) == 4
    again = Space.from_dict(spec, recorded=True)
    assert again.spec() == narrow.spec()
    assert again.sample(np.random.default_rng(0), 50) == narrow.sample(np.random.default_rng(0), 50)
    for key, message in (("epochs", "low must be < high"), ("beta1", "one_minus_log takes bounds on β")):
        with pytest.raises(ValueError, match=f"space: {key}: {message}"):
            Space.from_dict({key: spec[key]})
    with pytest.raises(ValueError, match=r"space: epochs: int_uniform needs integer bounds, got \[1.5, 1.5\]"):
        Space.from_dict({"epochs": {"int_uniform": [1.5, 1.5]}}, recorded=True)


def test_bad_search_arguments_are_named_before_a_directory_is_made(data, tmp_path):
    """The base, the dtype and a resume without a directory are named by `tune` before any trial, and
    no study directory is made; the flags' names under ``xdl tune`` (`check_search(flags=True)`)."""
    from xdl.tune.search import check_search

    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}}
    for kwargs, error, match in (
            (dict(base={"epochs": 2}), TypeError, r"base must be a TrainConfig, got dict"),
            (dict(base=BASE, dtype=3.5), TypeError, r"dtype must be a floating dtype name, got 3\.5"),
            (dict(base=BASE, dtype="float16"), ValueError, r"dtype must be float32 or float64, got float16"),
            (dict(base=BASE, dtype="int32"), ValueError, r"dtype must be float32 or float64, got int32"),
            (dict(base=BASE, resume=True), ValueError, r"resume=True needs the directory of the study to continue"),
            (dict(base=BASE, resume="yes"), ValueError, r"resume must be True or False, got 'yes'")):
        directory = None if kwargs.get("resume") is True else tmp_path / "study"
        with pytest.raises(error, match=match):
            tune(X, y, dev, space, trials=2, directory=directory, **kwargs)
        assert not (tmp_path / "study").exists()
    with pytest.raises(ValueError, match=r"--resume must be True or False"):
        check_search(space, base=BASE, directory=tmp_path / "study", resume="yes", flags=True)


def test_zoom_names_a_bad_space_or_centre():
    space = Space({"lr": LogUniform(1e-4, 1e-1), "hidden": Choice([[8], [16]])})
    for args, error, match in (
            (({"lr": LogUniform(1e-4, 1e-1)}, {"lr": 1e-3}), TypeError, r"zoom: space must be an xdl\.tune\.Space, "
                                                                          r"got dict"),
            ((space, [1e-3, [8]]), TypeError, r"zoom: center must be a dict of the space's values"),
            ((space, {"lr": 1e-3}), ValueError, r"zoom: center's hidden is None, not a value of the space's"),
            ((space, {"lr": 1.0, "hidden": [8]}), ValueError, r"zoom: center's lr is 1\.0, not a value"),
            ((space, {"lr": 1e-3, "hidden": [32]}), ValueError, r"zoom: center's hidden is \[32\], not a value")):
        with pytest.raises(error, match=match):
            zoom(*args)
    assert zoom(space, {"lr": 1e-3, "hidden": [8]}).dimensions["lr"].bounds[0] >= 1e-4


def test_a_study_whose_trials_all_failed_has_no_best_and_says_why(data, tmp_path):
    """Optuna's ``best_trial``, ``best_params`` and ``best_value`` raise where no trial trained to its
    end; `best_config` and `write_best` too, and the table names the failures. Every trial here diverges."""
    X, y, dev = data
    base = TrainConfig(hidden=[16], epochs=2, patience=0, progress=False, optimizer="sgd", batch_norm=False)
    space = {"lr": {"log_uniform": [1e29, 1e30]}}
    for directory in (None, tmp_path / "study"):
        with np.errstate(all="ignore"):
            study = tune(X, y, dev, space, trials=2, base=base, directory=directory)
        assert study.best is None and [t.status for t in study.trials] == ["failed", "failed"]
        for name in ("best_trial", "best_params", "best_value"):
            with pytest.raises(ValueError, match=r"no trial trained to the end \(pruned and failed ones do not "
                                                 r"count\): there is no best trial"):
                getattr(study, name)
        with pytest.raises(ValueError, match=r"no trial trained to the end"):
            study.best_config()
        said = r"write_best: this study keeps no directory" if directory is None else r"no trial trained to the end"
        with pytest.raises(ValueError, match=said):
            study.write_best()
        assert "2 trials failed; first: trial 0: diverged: the cost became" in study.table()
    assert not (tmp_path / "study" / "best.toml").exists()


@pytest.mark.parametrize("execution", ["sequential", "batched"])
def test_a_base_precision_other_than_the_backends_is_refused_on_a_gpu_before_any_work(backend, data, tmp_path,
                                                                                      execution):
    """A search trains at the precision of the backend in use (xdl tune sets it from --precision): a base of
    precision tf32 searched on a float32 GPU trained every trial at float32, unsaid (sequential: Trainer; batched:
    fit_many). Refused before anything is made; taken where the backend's is tf32, and on the CPU (exact float32
    whatever the precision)."""
    X, y, dev = data
    base = dataclasses.replace(BASE, precision="tf32", epochs=1)
    for precision in ("float32", "tf32"):
        directory = tmp_path / precision
        with xdl.use(backend, precision=precision):
            search = dict(trials=2, strategy="grid", execution=execution, base=base, directory=directory)
            if backend.device_type == "cuda" and precision == "float32":
                with pytest.raises(ValueError, match=r"^base\.precision is 'tf32', but tune trains at the precision of "
                                                     r"the backend in use, and cupy's is 'float32': set it with "
                                                     r"xdl\.use\('cupy', precision='tf32'\)"):
                    tune(X, y, dev, {"lr": {"choice": [1e-3, 1e-2]}}, **search)
                assert not directory.exists()
            else:
                assert len(tune(X, y, dev, {"lr": {"choice": [1e-3, 1e-2]}}, **search).trials) == 2


def _recorded_precision(backend, backend_precision: str, base_precision: str = "float32") -> str:
    """The precision a search records: the backend's on a GPU, the base's own on the CPU (exact float32)."""
    return backend_precision if backend.device_type == "cuda" else base_precision


@pytest.mark.parametrize("execution", ["sequential", "batched"])
def test_a_search_records_the_precision_its_trials_trained_at(backend, data, tmp_path, execution):
    """Under xdl.use('cupy', precision='tf32') a search of a base at the default trained every trial at tf32 and
    recorded float32 — in trials.json, best.toml (xdl train --config reproduced it at float32) and best_config —,
    and a resume under a float32 backend was taken, mixing precisions. The study records the precision its trials
    trained at: the backend's on a GPU, the base's own on the CPU (where best.toml stays as it was); a resume at
    another precision is refused on a GPU, and at the same one taken."""
    from xdl.tune import Study

    X, y, dev = data
    space, cases = {"lr": {"choice": [1e-3, 1e-2]}}, 0
    for base_precision in ("float32", "tf32"):
        base = dataclasses.replace(BASE, epochs=1, precision=base_precision)
        for backend_precision in ("float32", "tf32"):
            if backend.device_type == "cuda" and base_precision not in ("float32", backend_precision):
                continue  # (refused: test_a_base_precision_other_than_the_backends_is_refused_on_a_gpu_…)
            directory = tmp_path / f"{base_precision}-{backend_precision}"
            recorded = _recorded_precision(backend, backend_precision, base_precision)
            search = dict(trials=2, strategy="grid", execution=execution, base=base, directory=directory)
            with xdl.use(backend, precision=backend_precision):
                study = tune(X, y, dev, space, **search)
                study.write_best()
            meta = json.loads((directory / "trials.json").read_text())["meta"]
            assert (meta["base"]["precision"], meta["precision"]) == (recorded, recorded)
            assert f'\nprecision = "{recorded}"\n' in (directory / "best.toml").read_text()
            assert study.best_config().precision == Study.load(directory).best_config().precision == recorded
            other = "float32" if backend_precision == "tf32" else "tf32"
            with xdl.use(backend, precision=other):
                if backend.device_type == "cuda" and base_precision == "float32":
                    with pytest.raises(ValueError, match=rf"was made with base\.precision '{recorded}', this one has "
                                                         rf"'{other}'"):
                        tune(X, y, dev, space, **search, resume=True)
                elif backend.device_type == "cpu":
                    assert len(tune(X, y, dev, space, **search, resume=True).trials) == 2  # (exact float32 both)
            with xdl.use(backend, precision=backend_precision):  # (the base as recorded, or as given)
                for given in (base, dataclasses.replace(base, precision=recorded)):
                    assert len(tune(X, y, dev, space, **{**search, "base": given}, resume=True).trials) == 2
            cases += 1
    assert cases == (3 if backend.device_type == "cuda" else 4)


def test_a_study_of_an_older_xdl_resumes_as_it_did(backend, data, tmp_path):
    """A study saved by an xdl before the precision its trials trained at was recorded holds its base's as given
    (float32, the default, where a search under a tf32 GPU trained at tf32) and no "precision" in its meta: it
    resumes as it did, compared with the base's precision as given; from then on it records the one it trains at,
    and a resume at another precision is refused on a GPU."""
    X, y, dev = data
    space = {"lr": {"choice": [1e-3, 1e-2, 3e-2]}}
    directory = tmp_path / "study"
    search = dict(strategy="random", execution="batched", base=dataclasses.replace(BASE, epochs=1),
                  directory=directory)  # (random: a resume may ask for more trials)
    with xdl.use(backend, precision="tf32"):
        tune(X, y, dev, space, trials=2, **search)
    path = directory / "trials.json"
    saved = json.loads(path.read_text())
    del saved["meta"]["precision"]
    saved["meta"]["base"]["precision"] = "float32"  # (as the older xdl recorded it)
    path.write_text(json.dumps(saved))
    recorded = _recorded_precision(backend, "tf32")
    with xdl.use(backend, precision="tf32"):
        study = tune(X, y, dev, space, trials=3, **search, resume=True)
    assert len(study.trials) == 3
    meta = json.loads(path.read_text())["meta"]
    assert (meta["base"]["precision"], meta["precision"]) == (recorded, recorded)
    with xdl.use(backend, precision="float32"):
        if backend.device_type == "cuda":
            with pytest.raises(ValueError, match=r"was made with base\.precision 'tf32', this one has 'float32'"):
                tune(X, y, dev, space, trials=3, **search, resume=True)
        else:
            assert len(tune(X, y, dev, space, trials=3, **search, resume=True).trials) == 3


@pytest.fixture
def fake_clock(monkeypatch):
    """The clock a search's timeout reads (`search.clock`), 10 s on for each trial recorded (`Study.add`): no
    real time passes, and a budget of t seconds starts no trial once ⌈t / 10⌉ have been recorded in the call."""
    from xdl.tune import search
    from xdl.tune.study import Study

    now, add = [0.0], Study.add
    monkeypatch.setattr(search, "clock", lambda: now[0])
    monkeypatch.setattr(Study, "add", lambda self, trials: (now.__setitem__(0, now[0] + 10 * len(trials)),
                                                             add(self, trials))[1])
    return now


@pytest.fixture
def fake_dask(monkeypatch):
    """execution="dask" on a stand-in client that trains each batch when it is submitted (in this process, as a
    worker process would: on its own backend, exact float32, whatever the caller's)."""
    import types

    from xdl.tune import search

    class Future:
        def __init__(self, value):
            self.value = value

        def result(self):
            return self.value

    class Client:
        scheduler, loop, status = types.SimpleNamespace(address="tcp://fake:1"), None, "running"

        def submit(self, fn, *args, pure=True, retries=None):
            args = [a.result() if isinstance(a, Future) else a for a in args]  # (as Dask passes a future's value)
            with xdl.use("numpy", precision="float32"):
                return Future(fn(*args))

        def wait_for_workers(self, n, timeout=None):
            pass

        def scheduler_info(self):
            return {"workers": {"one": {}}}

        def nthreads(self):
            return {"one": 1}

        def replicate(self, futures):
            pass

        def cancel(self, futures):
            pass

        def close(self):
            pass

    fake = types.SimpleNamespace(LocalCluster=lambda **kwargs: types.SimpleNamespace(close=lambda: None),
                                 Client=lambda *args, **kwargs: Client(),
                                 as_completed=lambda futures, loop=None: list(futures))
    monkeypatch.setattr(search, "_distributed", lambda: fake)


TIMED_SPACE = {"lr": {"log_uniform": [1e-3, 1e-1]}, "batch_size": {"choice": [16, 32]}}  # (two groups a round)
TRIAL_RECORD = ("number", "round", "params", "status", "epochs", "dev_accuracy")


def _records(study) -> list[dict]:
    return [{k: getattr(t, k) for k in TRIAL_RECORD} for t in study.trials]


@pytest.mark.parametrize("execution", ["sequential", "batched", "dask"])
@pytest.mark.parametrize("strategy", ["coarse_to_fine", "tpe"])
def test_a_timeout_starts_no_trial_once_it_has_passed_and_a_resume_goes_on_as_the_whole_search(
        data, tmp_path, fake_clock, fake_dask, strategy, execution):
    """Optuna's optimize(timeout=): once the budget has passed no trial starts — sequential between trials,
    batched between groups (both within a round), dask before a round's batches are sent — and the study holds
    the trials that finished, its ``stopped`` saying so; a resume, with or without a timeout, goes on where it
    stopped, and the study it ends with is the uninterrupted search's, trial by trial."""
    if strategy == "tpe":
        pytest.importorskip("optuna")
    X, y, dev = data
    search = dict(trials=8, strategy=strategy, rounds=2, execution=execution, base=dataclasses.replace(BASE, epochs=1))
    whole = tune(X, y, dev, TIMED_SPACE, **search)
    assert whole.stopped is None
    groups = {t.params["batch_size"] for t in whole.trials if t.round == 0}
    # the first call: its first trial (sequential), group (batched) or round (dask) only
    first = {"sequential": 1, "batched": sum(t.params["batch_size"] == whole.trials[0].params["batch_size"]
                                             for t in whole.trials if t.round == 0), "dask": 4}[execution]
    calls, counts = [dict(timeout=1), dict(timeout=1, resume=True), dict(resume=True)], []
    for call in calls:
        study = tune(X, y, dev, TIMED_SPACE, **search, directory=tmp_path, **call)
        counts.append(len(study.trials))
        saved = json.loads((tmp_path / "trials.json").read_text())
        assert [t["number"] for t in saved["trials"]] == [t.number for t in study.trials]  # every one recorded saved
        assert saved["meta"]["trials"] == 8  # (a resume's trials stay the search's)
        if len(study.trials) < 8:
            assert study.stopped.startswith(f"its timeout of 1 s passed with {len(study.trials)} of 8 trials "
                                            "recorded; the same call with resume=True goes on")
            assert "stopped: its timeout of 1 s" in repr(study)
    assert counts[0] == first and counts[0] < counts[1] <= counts[2] == 8, (counts, groups)
    assert study.stopped is None and _records(study) == _records(whole)
    np.testing.assert_allclose([t.dev_cost for t in study.trials], [t.dev_cost for t in whole.trials], rtol=1e-6)


@pytest.mark.parametrize("execution", ["sequential", "batched"])
def test_a_timeout_that_passes_with_no_trial_left_or_before_the_first_says_so(data, tmp_path, monkeypatch, execution):
    """A budget that passes after the last trial has started stops nothing (``stopped`` None: done); one that
    passes before the first starts none, and saves nothing to resume."""
    from xdl.tune import search

    X, y, dev = data
    now = [0.0]
    monkeypatch.setattr(search, "clock", lambda: now[0])
    study = tune(X, y, dev, {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=3, base=BASE, execution=execution,
                 report=lambda line: now.__setitem__(0, now[0] + 10), timeout=25)  # (the third starts at 20 s)
    assert len(study.trials) == 3 and study.stopped is None
    reads = iter([0.0])  # the call's start, then every later read an hour on
    monkeypatch.setattr(search, "clock", lambda: next(reads, 3600.0))
    study = tune(X, y, dev, {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=3, base=BASE, execution=execution,
                 directory=tmp_path / "s", timeout=60)
    assert study.trials == [] and study.stopped == ("its timeout of 60 s passed with 0 of 3 trials recorded; nothing "
                                                    f"was saved to resume (the directory {str(tmp_path / 's')!r} it "
                                                    "made is removed): the same call again, with a longer timeout, "
                                                    "starts it")
    assert not (tmp_path / "s").exists()  # (nothing left behind: the empty directory it made removed)


def test_a_search_that_saved_no_trial_leaves_no_directory_it_made(data, tmp_path, monkeypatch):
    """tune(directory=d, timeout=1e-9) started no trial (as Optuna's optimize, which checks its timeout before the
    first trial too) and left d made and empty; a search that records no trial — its timeout passed before the
    first, a Ctrl-C or an error before one ended — removes the directory it made, with the parents made for it; a
    directory that was there is kept, and so is one that holds a trial."""
    from xdl.tune import search

    X, y, dev = data
    space = {"lr": {"log_uniform": [1e-3, 1e-1]}}
    (tmp_path / "there").mkdir()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("the user's")
    cases = 0
    for ends in ("timeout", "ctrl-c", "error"):
        for given, left in ((tmp_path / "new", tmp_path / "new"), (tmp_path / "a" / "b" / "c", tmp_path / "a"),
                            (tmp_path / "there", None), (tmp_path / "there" / "new", tmp_path / "there" / "new"),
                            (tmp_path / "kept" / "x" / "y", tmp_path / "kept" / "x")):
            reads = iter([0.0])  # the call's start, then every later read an hour on
            monkeypatch.setattr(search, "clock", lambda: next(reads, 3600.0) if ends == "timeout" else 0.0)
            fail = {"ctrl-c": KeyboardInterrupt, "error": MemoryError}.get(ends)
            if fail is not None:
                monkeypatch.setattr(search, "_sequential", lambda todo, round_, s: (_ for _ in ()).throw(fail()))
            try:
                study = tune(X, y, dev, space, trials=2, base=BASE, directory=given, timeout=60)
                assert study.trials == [] and study.stopped is not None
            except (KeyboardInterrupt, MemoryError) as e:
                assert isinstance(e, fail) and ends != "timeout"
            monkeypatch.undo()
            assert (left is None or not left.exists()) and (tmp_path / "there").is_dir(), (ends, given)
            assert (tmp_path / "kept" / "notes.txt").read_text() == "the user's"
            cases += 1
    assert cases == 15
    study = tune(X, y, dev, space, trials=2, base=BASE, directory=tmp_path / "new", timeout=60)  # (a trial saved)
    assert len(study.trials) == 2 and (tmp_path / "new" / "trials.json").is_file()


from xdl.tune.search import train_group  # noqa: E402 (the real one, which `_slow_train_group` calls)

DASK_STARTED = []  # the batches `_slow_train_group` started


def _slow_train_group(configs, *args):
    """`train_group` that records its batch's hidden sizes in ``DASK_STARTED`` and takes 0.2 s more: a function of
    this module, which Dask sends by reference (a test's closure is pickled by value, its lists copied), so that a
    worker thread of this process appends to the test's own list."""
    if len(args) == 9:  # the search's call, its backend last (train_group calls itself under it, as this function)
        DASK_STARTED.append([c.hidden for c in configs])
        time.sleep(0.2)
    return train_group(configs, *args)


DASK_RUNNING = {"now": 0, "most": 0, "lock": threading.Lock(), "first": threading.Event()}  # (`_counted_train_group`)


def _counted_train_group(configs, *args):
    """`train_group` that counts in ``DASK_RUNNING`` the batches training at once (``most``: the largest count) and
    takes 2 s more (a function of this module, as `_slow_train_group`)."""
    if len(args) != 9:  # (train_group calling itself under the batch's backend)
        return train_group(configs, *args)
    with DASK_RUNNING["lock"]:
        DASK_RUNNING["now"] += 1
        DASK_RUNNING["most"] = max(DASK_RUNNING["most"], DASK_RUNNING["now"])
    DASK_RUNNING["first"].set()
    try:
        time.sleep(2)
        return train_group(configs, *args)
    finally:
        with DASK_RUNNING["lock"]:
            DASK_RUNNING["now"] -= 1


@pytest.mark.parametrize("grows", ["scaled", "adaptive"])
def test_a_dask_round_is_trained_by_the_workers_that_join_while_it_runs(data, monkeypatch, grows):
    """Every batch of a round is on the cluster's queue together (sent one a worker of those there at its start, a
    cluster whose workers join over time — dask-jobqueue's: the search waits for one — trained the round on that
    one, and an adaptive cluster, which scales on the tasks queued, never grew): the workers that join (scaled to 3
    once the first batch starts, or an adaptive cluster of 1 to 3) train them at once (each batch takes 2 s more,
    which an adaptive cluster's target counts)."""
    from xdl.tune import search

    distributed = pytest.importorskip("dask.distributed")
    X, y, dev = data
    monkeypatch.setattr(search, "train_group", _counted_train_group)
    DASK_RUNNING.update(now=0, most=0)
    DASK_RUNNING["first"].clear()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as \
            cluster, distributed.Client(cluster, set_as_default=False) as client:
        if grows == "scaled":
            threading.Thread(target=lambda: DASK_RUNNING["first"].wait(60) and cluster.scale(3), daemon=True).start()
        else:
            cluster.adapt(minimum=1, maximum=3, interval="100ms", wait_count=1)
        study = tune(X, y, dev, {"hidden": {"choice": [[8 * k] for k in range(1, 7)]}}, trials=6, strategy="grid",
                     base=BASE, execution="dask", scheduler=client)
    assert len(study.trials) == 6 and DASK_RUNNING["most"] > 1, DASK_RUNNING


def test_a_dask_round_sends_a_batch_to_each_worker_of_a_cluster_of_more_than_five(data, monkeypatch, fake_dask):
    """A round's trials are split in as many batches as the scheduler has workers: counted by scheduler_info(),
    which lists five of them alone in distributed 2025.4 to 2026.6, a cluster of eight trained a round of 8 trials
    as 4 batches of 2, four of its workers idle. Every worker is counted (Client.nthreads): 8 batches of 1, all sent
    before the first ends."""
    from xdl.tune import search

    fake = search._distributed()
    workers = {f"tcp://worker:{i}": 1 for i in range(8)}

    class EightWorkers(type(fake.Client())):
        def scheduler_info(self):  # (the first five, as those versions list them)
            return {"workers": dict(list(workers.items())[:5])}

        def nthreads(self):
            return dict(workers)

    sent_at_once, as_completed = [], fake.as_completed

    def recording(futures, loop=None):  # the batches sent before the first one ends
        sent_at_once.append(len(futures))
        return as_completed(futures, loop=loop)

    monkeypatch.setattr(fake, "Client", lambda *args, **kwargs: EightWorkers())
    monkeypatch.setattr(fake, "as_completed", recording)
    X, y, dev = data
    study = tune(X, y, dev, {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=8, base=BASE, execution="dask")
    assert sent_at_once == [8] and len(study.trials) == 8, sent_at_once


@pytest.mark.parametrize("timeout", [0, -1, -0.0, math.nan, "10", True, [5], 10**400 * -1])
def test_a_bad_timeout_is_named_before_anything_is_made(data, tmp_path, timeout):
    X, y, dev = data
    with pytest.raises(ValueError, match=r"^timeout must be a number of seconds > 0, or None for no budget, got "):
        tune(X, y, dev, {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=2, base=BASE, directory=tmp_path / "s",
             timeout=timeout)
    assert not (tmp_path / "s").exists()
    study = tune(X, y, dev, {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=2, base=BASE, timeout=math.inf)
    assert len(study.trials) == 2 and study.stopped is None  # (inf: no budget, as None)


def test_xdl_tune_timeout_says_it_in_the_header_and_its_end_and_resume_goes_on(tmp_path, capsys, fake_clock):
    """xdl tune --timeout: the header says the budget; a search it ended writes its best.toml of the trials so far
    and says last, on stderr, that it stopped at --timeout and that --resume goes on (as a Ctrl-C'd one); the
    resume, with no --timeout, finishes it as the whole search."""
    out, whole = tmp_path / "study", tmp_path / "whole"
    options = ["--trials", "4", "--strategy", "coarse_to_fine", "--execution", "sequential", *TINY]
    assert cli.main(["tune", *options, "--out", str(whole)]) == 0
    capsys.readouterr()
    assert cli.main(["tune", *options, "--timeout", "15", "--out", str(out)]) == 0
    printed, err = capsys.readouterr()
    assert "4 trials, coarse_to_fine, sequential; timeout 15 s\n" in printed
    assert err.splitlines()[-1] == (f"xdl tune: stopped at --timeout 15 s with 2 of 4 trials saved in "
                                    f"{str(out / 'trials.json')!r} (the rest not started); to continue, run the same "
                                    f"command with --resume (the study keeps its options: xdl tune --resume --out "
                                    f"{out} is enough; --timeout is this run's)")
    assert (out / "best.toml").is_file() and len(json.loads((out / "trials.json").read_text())["trials"]) == 2
    assert cli.main(["tune", "--resume", "--out", str(out)]) == 0
    assert "stopped at --timeout" not in capsys.readouterr().err
    key = ("number", "round", "params", "status", "epochs", "dev_accuracy")
    done, alone = (json.loads((d / "trials.json").read_text())["trials"] for d in (out, whole))
    assert [{k: t[k] for k in key} for t in done] == [{k: t[k] for k in key} for t in alone]


def test_xdl_tune_timeout_before_a_trial_finished_says_there_is_nothing_to_resume(tmp_path, capsys, monkeypatch):
    from xdl.tune import search

    reads = iter([0.0])
    monkeypatch.setattr(search, "clock", lambda: next(reads, 3600.0))
    out = tmp_path / "study"
    assert cli.main(["tune", "--trials", "2", *TINY, "--timeout", "60", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == ("xdl tune: stopped at --timeout 60 s before a trial finished; nothing to "
                                    "continue: run the same command again with a longer --timeout")
    assert not (out / "trials.json").exists()
