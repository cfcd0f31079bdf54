"""`TrainConfig`'s plateau_patience and plateau_factor (``xdl train --plateau-patience N``): the run's rate
lowered as `ReduceLROnPlateau`'s rule says, resumed bit for bit, refused beside an epoch schedule, switched on
or off on a resume, by fit_many and by a batched search; a run of an xdl before them resumes."""

import json
import shutil

import numpy as np
import pytest
from conftest import edit_saved
from test_plateau import reference_rates

import xdl
from xdl.cli import main
from xdl.config import SCHEDULES, TrainConfig
from xdl.train import ReduceLROnPlateau, Trainer, fit_many

RUN = ["--dataset", "digits", "--hidden", "16", "--schedule", "none", "--patience", "0", "--no-progress", "--lr",
       "0.05", "--checkpoint-every", "1"]


def records(out) -> list[dict]:
    return json.loads((out / "history.json").read_text())["records"]


def without_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in rows]


def weights(out) -> dict:
    with np.load(out / "model.npz") as data:
        return {name: data[name] for name in data.files}


@pytest.mark.parametrize("patience, factor", [(1, 0.5), (2, 0.5), (2, 0.1), (3, 0.3)])
def test_xdl_train_lowers_the_rate_where_the_dev_cost_stops_improving(tmp_path, capsys, patience, factor):
    """Each epoch's lr (history.json) is ReduceLROnPlateau's reference rule on the run's own dev costs (min_delta
    1e-4, Keras's patience count), and the rate was lowered at least once in 12 epochs."""
    out = tmp_path / "run"
    assert main(["train", *RUN, "--epochs", "12", "--plateau-patience", str(patience), "--plateau-factor",
                 str(factor), "--out", str(out)]) == 0
    capsys.readouterr()
    rows = records(out)
    after = reference_rates([r["dev_cost"] for r in rows], 0.05, patience, 0, 1e-4, factor, 0.0)
    np.testing.assert_allclose([r["lr"] for r in rows], [0.05, *after[:-1]], rtol=1e-6)
    assert rows[-1]["lr"] < 0.05
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["plateau_patience"] == patience and report["config"]["plateau_factor"] == factor


@pytest.mark.parametrize("killed_in", [3, 6, 9])
def test_a_run_killed_mid_run_resumes_bit_for_bit(tmp_path, capsys, monkeypatch, killed_in):
    """Killed in epoch k (after epoch k − 1's checkpoint, its plateau's best and wait and the lowered rate in it),
    `--resume` ends where the run not killed ends: the same weights and records (but for their times)."""
    plan = [*RUN, "--epochs", "12", "--plateau-patience", "2", "--plateau-factor", "0.5"]
    assert main(["train", *plan, "--out", str(tmp_path / "whole")]) == 0
    epoch, epochs = Trainer._train_epoch, []

    def killed(self, *args, **kwargs):
        epochs.append(1)
        if len(epochs) == killed_in:
            raise KeyboardInterrupt
        return epoch(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_epoch", killed)
    assert main(["train", *plan, "--out", str(tmp_path / "cut")]) != 0
    monkeypatch.undo()
    assert main(["train", "--resume", str(tmp_path / "cut" / "checkpoints"), "--no-progress"]) == 0
    capsys.readouterr()
    assert without_times(records(tmp_path / "cut")) == without_times(records(tmp_path / "whole"))
    whole, resumed = weights(tmp_path / "whole"), weights(tmp_path / "cut")
    assert whole.keys() == resumed.keys()
    for name in whole:
        np.testing.assert_array_equal(resumed[name], whole[name])


def test_a_resume_may_change_the_plateaus_settings_but_not_switch_it_on_or_off(tmp_path, capsys):
    on, off = tmp_path / "on", tmp_path / "off"
    assert main(["train", *RUN, "--epochs", "3", "--plateau-patience", "2", "--out", str(on)]) == 0
    assert main(["train", *RUN, "--epochs", "3", "--out", str(off)]) == 0
    capsys.readouterr()
    for run, flags in ((on, ["--plateau-patience", "0"]), (off, ["--plateau-patience", "2"])):
        assert main(["train", "--resume", str(run / "checkpoints"), "--epochs", "5", "--no-progress", *flags]) == 1
        said = capsys.readouterr().err
        assert "--plateau-patience: the checkpoint in" in said and "cannot be switched on or off on a resume" in said
        assert len(records(run)) == 3  # (nothing trained, nothing written over)
    assert main(["train", "--resume", str(on / "checkpoints"), "--epochs", "5", "--no-progress",
                 "--plateau-patience", "4", "--plateau-factor", "0.5"]) == 0
    assert len(records(on)) == 5
    assert json.loads((on / "report.json").read_text())["config"]["plateau_patience"] == 4


def test_a_checkpoint_of_an_xdl_before_the_plateau_resumes_without_it_and_is_refused_switching_it_on():
    """A checkpoint whose options lack plateau_patience and plateau_factor (an xdl's before them) trained
    without the plateau, as plateau_patience 0: a resume at the default goes on; one with plateau_patience 3
    switches the plateau on, refused as over a run of 0."""
    import dataclasses

    saved = {k: v for k, v in dataclasses.asdict(TrainConfig(schedule="none")).items()
             if k not in ("plateau_patience", "plateau_factor")}
    assert TrainConfig(schedule="none").check_resume(saved, "R/checkpoints", 2) is None
    with pytest.raises(ValueError, match=r"^--plateau-patience: the checkpoint in 'R/checkpoints' was made with 0, "
                                         r"this run has 3; the lowering on a plateau .* cannot be switched on or off"):
        TrainConfig(schedule="none", plateau_patience=3).check_resume(saved, "R/checkpoints", 2)


@pytest.mark.parametrize("schedule", [s for s in SCHEDULES if s != "none"])
def test_train_refuses_the_plateau_beside_an_epoch_schedule_naming_both_before_any_work(tmp_path, capsys, schedule):
    out = tmp_path / "run"
    assert main(["train", *RUN, "--epochs", "2", "--schedule", schedule, "--plateau-patience", "3",
                 "--out", str(out)]) == 1
    said = capsys.readouterr().err
    assert f"--plateau-patience 3 lowers the rate on a plateau, and schedule {schedule!r} sets it" in said, said
    assert not out.exists()


def test_train_refuses_a_plateau_factor_no_plateau_reads(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *RUN, "--epochs", "2", "--plateau-factor", "0.5", "--out", str(out)]) == 1
    assert "--plateau-factor is read with --plateau-patience N (N ≥ 1) alone" in capsys.readouterr().err
    assert not out.exists()


def test_a_toml_file_sets_the_plateau_and_build_trainer_adds_its_callback(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('schedule = "none"\nplateau_patience = 4\nplateau-factor = 0.25\n')
    config = TrainConfig.from_toml(path)
    assert (config.plateau_patience, config.plateau_factor) == (4, 0.25)
    trainer = config.build_trainer(config.build_model(4, 3))
    plateaus = [cb for cb in trainer.callbacks if isinstance(cb, ReduceLROnPlateau)]
    assert len(plateaus) == 1 and trainer.schedule is None
    assert (plateaus[0].monitor, plateaus[0].patience, plateaus[0].factor) == ("dev_cost", 4, 0.25)
    assert not any(isinstance(cb, ReduceLROnPlateau) for cb in TrainConfig().build_trainer(
        TrainConfig().build_model(4, 3)).callbacks)
    path.write_text("plateau_patience = 4\n")  # (the default schedule, inverse_time)
    with pytest.raises(ValueError, match=r"run.toml'?: plateau_patience 4 lowers .* schedule 'inverse_time' sets"):
        TrainConfig.from_toml(path)


FACTOR_RANGE = r"plateau_factor must be a number in \(0, 1\)"


@pytest.mark.parametrize("key, value, said", [
    ("plateau_patience", -1, "plateau_patience must be ≥ 0"),
    ("plateau_patience", 1.5, "plateau_patience must be an integer"),
    ("plateau_patience", True, "plateau_patience must be an integer"),
    ("plateau_factor", 0, FACTOR_RANGE), ("plateau_factor", 1, FACTOR_RANGE), ("plateau_factor", -0.5, FACTOR_RANGE),
    ("plateau_factor", float("nan"), FACTOR_RANGE), ("plateau_factor", "0.5", "plateau_factor must be a number")])
def test_bad_plateau_values_are_named(key, value, said):
    with pytest.raises((TypeError, ValueError), match=said):
        TrainConfig(schedule="none", **{key: value})


def small(**overrides) -> TrainConfig:
    return TrainConfig(**{**dict(hidden=[8], epochs=2, patience=0, schedule="none", progress=False), **overrides})


def test_fit_many_refuses_a_config_with_the_plateau_naming_it():
    X, y = xdl.datasets.moons(100, noise=0.2, seed=0)
    with pytest.raises(ValueError, match=r"configs\[1\]: plateau_patience 3 lowers a model's rate"):
        fit_many([small(), small(plateau_patience=3)], X, y, dev=(X, y))


@pytest.mark.parametrize("execution", ["batched", "dask"])
@pytest.mark.parametrize("base, space", [
    (dict(plateau_patience=2), None),
    ({}, {"plateau_patience": 2, "lr": {"log_uniform": [1e-3, 1e-1]}}),
    ({}, {"plateau_patience": {"choice": [0, 3]}}),
    ({}, {"plateau_patience": {"int_uniform": [0, 3]}})])
def test_a_batched_search_refuses_the_plateau_before_any_trial(tmp_path, execution, base, space):
    from xdl.tune import tune

    X, y = xdl.datasets.moons(100, noise=0.2, seed=0)
    space = space or {"lr": {"log_uniform": [1e-3, 1e-1]}}
    with pytest.raises(ValueError, match=f"execution {execution!r} trains the trials together .* give execution "
                                         "sequential"):
        tune(X, y, (X, y), space=space, trials=2, execution=execution, base=small(**base), directory=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_a_batched_search_whose_space_turns_the_plateau_off_runs():
    from xdl.tune import tune

    X, y = xdl.datasets.moons(100, noise=0.2, seed=0)
    study = tune(X, y, (X, y), space={"plateau_patience": 0, "lr": {"log_uniform": [1e-3, 1e-1]}}, trials=2,
                 execution="batched", base=small(plateau_patience=2))
    assert [t.status for t in study.trials] == ["completed"] * 2


def test_a_sequential_search_lowers_each_trials_rate_on_its_plateau():
    from xdl.tune import tune

    X, y = xdl.datasets.moons(200, noise=0.3, seed=0)
    study = tune(X, y, (X[:60], y[:60]), space={"lr": {"choice": [0.3, 0.5]}}, trials=2, strategy="grid",
                 execution="sequential", base=small(plateau_patience=1, plateau_factor=0.5, epochs=8, lr=0.3))
    assert [t.status for t in study.trials] == ["completed"] * 2
    for trial in study.trials:
        rates = trial.curves["lr"]
        assert rates[0] == trial.params["lr"] and min(rates) < rates[0], rates


@pytest.mark.parametrize("execution", ["sequential", "batched"])
@pytest.mark.parametrize("base, space", [
    ({}, {"plateau_factor": {"uniform": [0.2, 0.6]}}),
    ({}, {"plateau_factor": 0.5, "lr": {"log_uniform": [1e-3, 1e-1]}}),
    (dict(plateau_patience=2), {"plateau_patience": 0, "plateau_factor": {"choice": [0.2, 0.5]}})])
def test_a_search_refuses_a_plateau_factor_no_trial_reads_before_any_trial(tmp_path, execution, base, space):
    from xdl.tune import tune

    X, y = xdl.datasets.moons(100, noise=0.2, seed=0)
    with pytest.raises(ValueError, match="plateau_factor is read only where plateau_patience > 0"):
        tune(X, y, (X, y), space=space, trials=2, execution=execution, base=small(**base), directory=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_a_sequential_search_of_the_plateau_factor_reads_it_where_the_plateau_is_on():
    from xdl.tune import tune

    X, y = xdl.datasets.moons(100, noise=0.2, seed=0)
    for base, space in [(dict(plateau_patience=1), {"plateau_factor": {"choice": [0.2, 0.5]}}),
                        ({}, {"plateau_patience": {"choice": [0, 2]}, "plateau_factor": {"choice": [0.2, 0.5]}})]:
        study = tune(X, y, (X, y), space=space, trials=2, strategy="grid", execution="sequential",
                     base=small(**base))
        assert [t.status for t in study.trials] == ["completed"] * 2


def test_xdl_tune_refuses_the_plateau_batched_naming_the_flags(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["tune", "--dataset", "moons", "--hidden", "8", "--epochs", "2", "--schedule", "none",
                 "--plateau-patience", "2", "--no-progress", "--trials", "2", "--out", str(out)]) == 1
    said = capsys.readouterr().err
    assert "--execution 'batched' trains the trials together" in said and "--plateau-patience is 2" in said, said
    assert not out.exists()


def test_a_run_of_an_xdl_before_the_plateau_resumes_and_refuses_switching_it_on(tmp_path, capsys):
    """A run directory whose checkpoint and report record no plateau options (an xdl before them, as 95711fe
    wrote it) ran without one: it resumes, and bit for bit as the run not interrupted; with
    --plateau-patience it is refused."""
    whole, old = tmp_path / "whole", tmp_path / "old"
    assert main(["train", *RUN, "--epochs", "5", "--out", str(whole)]) == 0
    assert main(["train", *RUN, "--epochs", "3", "--out", str(old)]) == 0
    capsys.readouterr()

    def older(header, arrays):
        config = header["extra"]["run_info"]["config"]
        del config["plateau_patience"], config["plateau_factor"]

    edit_saved(old / "checkpoints" / "checkpoint.npz", older)
    report = json.loads((old / "report.json").read_text())
    del report["config"]["plateau_patience"], report["config"]["plateau_factor"]
    (old / "report.json").write_text(json.dumps(report))
    copy = tmp_path / "copy"
    shutil.copytree(old, copy)
    assert main(["train", "--resume", str(copy / "checkpoints"), "--epochs", "5", "--schedule", "none",
                 "--plateau-patience", "2", "--no-progress"]) == 1
    assert "--plateau-patience: the checkpoint in" in capsys.readouterr().err
    assert main(["train", "--resume", str(old / "checkpoints"), "--epochs", "5", "--no-progress"]) == 0
    assert without_times(records(old)) == without_times(records(whole))
    for name, value in weights(whole).items():
        np.testing.assert_array_equal(weights(old)[name], value)
