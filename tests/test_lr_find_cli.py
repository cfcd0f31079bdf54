"""``xdl lr-find``: the learning-rate range test from the command line — the model, data and optimizer of
``xdl train``'s options, on the training split; its table, suggestion and next command; ``--plot``; the
flags it refuses and the bad values, before any work, writing nothing."""

import dataclasses
import functools
import json
import math
import os
import re
import shlex
import signal
import sys

import numpy as np
import pytest

import xdl
from xdl.cli import LR_FIND_REFUSES, main
from xdl.config import TrainConfig, flag_of
from xdl.data import split
from xdl.train.lr_find import LRFindResult, RangeTest

LR_FIND = sys.modules["xdl.train.lr_find"]  # (the module: xdl.train.lr_find is its function)

FAST = ["--dataset", "moons", "--hidden", "8"]


def run(argv, capsys):
    """(exit status, stdout, stderr) of ``xdl lr-find`` with ``argv``."""
    status = main(["lr-find", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_it_prints_the_sweep_the_suggestion_and_the_train_command_that_trains_at_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = run([*FAST, "--optimizer", "momentum", "--beta1", "0.8", "--seed", "3"], capsys)
    assert status == 0 and err == "", err  # (no note of the default epoch schedule: --lr is its α0)
    assert os.listdir(tmp_path) == []  # (writes nothing: no xdl-run, no lock, no checkpoint)
    table = re.findall(r"^ +(\d+) +(\S+) +(\S+)(  ← suggestion)?$", out, re.M)
    steps = [int(row[0]) for row in table]
    assert steps[:2] == [1, 11] and steps[-1] == 100 and steps == sorted(steps) and 10 <= len(steps) <= 12
    marked = [row for row in table if row[3]]
    suggested = re.search(r"^suggestion: lr (\S+) ", out, re.M).group(1)
    assert len(marked) == 1 and float(marked[0][1]) == pytest.approx(float(suggested), rel=1e-2)
    command = out.strip().splitlines()[-1].strip()
    assert command == f"xdl train --dataset moons --hidden 8 --optimizer momentum --beta1 0.8 --seed 3 --lr {suggested}"
    # the command runs as printed (a run of its own: another --out, one epoch), at that rate
    assert main([*shlex.split(command)[1:], "--epochs", "1", "--no-progress", "--out", "run"]) == 0
    assert json.loads((tmp_path / "run" / "report.json").read_text())["config"]["lr"] == float(suggested)


def test_the_range_test_is_of_the_trainer_xdl_train_builds_on_the_training_split(capsys, monkeypatch):
    """The finder gets `TrainConfig.build_trainer`'s trainer of these options (its model, optimizer and
    settings, a run_info of the config) and the training split of the run's seed."""
    seen = {}

    @functools.wraps(LR_FIND.lr_find)  # (its signature: the flags' defaults)
    def finder(trainer, X, y, **sweep):
        seen.update(trainer=trainer, X=X, y=y, sweep=sweep)
        return LRFindResult(np.geomspace(1e-5, 1, 20), np.linspace(2, 1, 20), np.linspace(2, 1, 20), "exponential",
                            "steps")

    monkeypatch.setattr(LR_FIND, "lr_find", finder)
    flags = [*FAST, "--optimizer", "rmsprop", "--l2", "0.01", "--batch-size", "32", "--seed", "5", "--no-batch-norm"]
    status, _, err = run([*flags, "--min-lr", "1e-5", "--steps", "20", "--mode", "linear", "--stop-factor", "inf"],
                         capsys)
    assert status == 0, err
    trainer, config = seen["trainer"], seen["trainer"].run_info["config"]
    expected = TrainConfig(dataset="moons", hidden=[8], optimizer="rmsprop", l2=0.01, batch_size=32, seed=5,
                           batch_norm=False, backend=config["backend"])
    assert config == expected.__dict__
    assert type(trainer.optimizer).__name__ == "RMSprop" and trainer.l2 == 0.01 and trainer.batch_size == 32
    X, y = xdl.datasets.load("moons")
    np.testing.assert_array_equal(seen["X"], split(X, y, seed=5).X_train)
    assert seen["sweep"] == {"min_lr": 1e-5, "max_lr": 1.0, "steps": 20, "mode": "linear", "stop_factor": math.inf}


@pytest.mark.parametrize("name", sorted(LR_FIND_REFUSES))
def test_a_run_s_flag_is_refused_naming_it_before_any_work(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    value = {"bool": [], "list[int]": ["3"]}.get(TrainConfig.__dataclass_fields__[name].type, ["3"])
    for flag in (flag_of(name), *(["--no-" + flag_of(name)[2:]] if not value else [])):
        status, out, err = run([*FAST, flag, *value, "--seed", "1"], capsys)
        assert status == 1 and out == "", (flag, out)
        assert err.startswith(f"xdl lr-find: error: {flag} is ") and LR_FIND_REFUSES[name] in err, err
    assert os.listdir(tmp_path) == []


def test_every_refused_flag_given_is_named_at_once(capsys):
    status, out, err = run(["--epochs", "5", "--out", "x", "--lr", "0.1", "--no-progress"], capsys)
    assert status == 1 and out == ""
    assert "--epochs, --no-progress are xdl train's" in err and "--out is xdl train's" in err
    assert "--lr is the rate" in err


@pytest.mark.parametrize("flags, said", [
    *[(["--min-lr", v], "--min-lr must be a number > 0") for v in ("0", "-1e-3", "nan", "-inf")],
    *[(["--max-lr", v], "--max-lr must be a number > 0") for v in ("0", "-2", "nan")],
    *[(["--max-lr", v], "--max-lr is ") for v in ("1e39", "inf")],
    (["--min-lr", "1e-50"], "--min-lr is 1e-50: a learning rate must be a number in float32's"),
    *[(["--min-lr", lo, "--max-lr", hi], "--min-lr must be below --max-lr") for lo, hi in (("1", "1"), ("2", "1"))],
    *[(["--steps", v], "--steps must be an integer ≥ 2") for v in ("1", "0", "-3")],
    *[(["--stop-factor", v], "--stop-factor must be a number > 1") for v in ("1", "0.5", "nan", "-inf")],
])
def test_bad_values_are_refused_naming_the_flag_before_any_work(flags, said, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = run([*FAST, *flags], capsys)
    assert status == 1 and out == "" and err.startswith(f"xdl lr-find: error: {said}"), err
    assert os.listdir(tmp_path) == []


def test_a_config_file_gives_the_options_its_run_s_options_unread_and_its_resume_refused(tmp_path, capsys):
    config = tmp_path / "run.toml"  # (best.toml holds every option but out and resume: read as xdl train reads it)
    config.write_text('dataset = "moons"\nhidden = [8]\nlr = 0.5\nepochs = 3\npatience = 0\nout = "elsewhere"\n'
                      'schedule = "none"\nplateau_patience = 2\n')
    status, out, err = run(["--config", str(config), "--steps", "30"], capsys)
    assert status == 0, err
    assert not (tmp_path / "elsewhere").exists() and "Dense(2→8)" in out
    suggested = re.search(r"suggestion: lr (\S+)", out)[1]
    assert out.strip().endswith(f"xdl train --config {config} --lr {suggested}")
    config.write_text('dataset = "moons"\nresume = "xdl-run"\n')
    status, out, err = run(["--config", str(config)], capsys)
    assert status == 1 and out == "" and "--config: resume = 'xdl-run' continues an xdl train run" in err


def test_plot_saves_the_figure_and_without_matplotlib_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    status, out, err = run([*FAST, "--steps", "30", "--plot", str(tmp_path / "lr.png")], capsys)
    assert status == 0, err
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG" and f"wrote {tmp_path / 'lr.png'}" in out
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # (an import of it raises ImportError)
    status, out, err = run([*FAST, "--plot", str(tmp_path / "again.png")], capsys)
    assert status == 1 and out == "" and not (tmp_path / "again.png").exists()
    assert "xdl lr-find: error: --plot: plots need matplotlib: pip install 'xdl[plot]'" in err


def test_no_suggestion_is_an_error_after_the_table(capsys):
    status, out, err = run([*FAST, "--steps", "5"], capsys)
    assert status == 1 and "stopped: all 5 steps trained" in out and "xdl train" not in out
    assert err.count("no suggestion") == 1 and err.startswith("xdl lr-find: error: no suggestion: "), err
    assert "give more --steps (or a larger --stop-factor)" in err and "stop_factor" not in err, err


def python_names_in(text: str) -> list[str]:
    """lr_find's keywords (``min_lr``, ``stop_factor``) in ``text``: the command's words are its flags."""
    return re.findall(r"\b(?:min_lr|max_lr|stop_factor|smoothing)\b", text)


def test_no_suggestion_says_the_commands_flags_and_both_ways_of_a_loss_that_never_fell(capsys, monkeypatch):
    """"give more steps (or a larger stop_factor)" and "try a lower min_lr" reached the command line in lr_find's
    keywords, and the second was half the advice (rates too small to learn need a higher max_lr). Sweeps of each
    kind (too few points; a loss that only rose, or stayed nearly flat), of many lengths: the error names the
    flags alone, and a loss that never fell says both ways."""
    rng, finder = np.random.default_rng(0), LR_FIND.lr_find
    cases = 0
    for n in range(2, 80, 3):
        lrs = np.geomspace(1e-6, 1.0, n)
        for losses in (np.cumsum(rng.random(n)), 0.7 + 1e-4 * np.arange(n), np.r_[np.full(n - 2, np.nan), 1.0, 2.0]):
            found = LRFindResult(lrs, losses, losses.copy(), "exponential", "steps")
            monkeypatch.setattr(LR_FIND, "lr_find", functools.wraps(finder)(lambda *a, **k: found))
            status, out, err = run([*FAST, "--steps", str(n)], capsys)
            assert status == 1 and err.startswith("xdl lr-find: error: no suggestion: ") and not python_names_in(err)
            if n > 12 and np.isfinite(losses).all():
                assert ("never fell between --min-lr and --max-lr" in err and "try a lower --min-lr" in err
                        and "try a higher --max-lr" in err), err
            else:
                assert "give more --steps (or a larger --stop-factor)" in err, err
            cases += 1
    assert cases == 26 * 3


@pytest.mark.parametrize("optimizer, flag", [("sgd", "--beta2"), ("sgd", "--beta1"), ("sgd", "--eps"),
                                             ("momentum", "--beta2"), ("rmsprop", "--beta2")])
def test_an_unread_optimizer_flag_names_the_optimizer_alone(optimizer, flag, tmp_path, capsys, monkeypatch):
    """``xdl lr-find --optimizer sgd --beta2 0.9`` said "not read by --optimizer sgd or --schedule inverse_time",
    naming a flag the command refuses: only the optimizer reads its flags here."""
    monkeypatch.chdir(tmp_path)
    status, out, err = run([*FAST, "--optimizer", optimizer, flag, "0.9"], capsys)
    assert status == 1 and out == "" and os.listdir(tmp_path) == []
    assert err == (f"xdl lr-find: error: {flag} is not read by --optimizer {optimizer}: it would be ignored; leave it "
                   "out\n"), err


def test_ctrl_c_stops_it_with_130_writing_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    on_step_end = RangeTest.on_step_end

    def interrupted(self, trainer, cost):
        on_step_end(self, trainer, cost)
        if len(self.costs) == 13:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(RangeTest, "on_step_end", interrupted)
    status, out, err = run(FAST, capsys)
    assert status == 130 and "interrupted by SIGINT" in err and "suggestion" not in out
    assert os.listdir(tmp_path) == []
    # (it said "every file it had written is complete", of a command that writes none but --plot)
    assert "every file it had written" not in err and "it writes no file but --plot" in err, err


def test_help_offers_the_model_data_and_optimizer_flags_and_hides_the_refused_ones(capsys):
    with pytest.raises(SystemExit):
        main(["lr-find", "--help"])
    text = capsys.readouterr().out
    for flag in ("--min-lr", "--max-lr", "--steps", "--mode", "--stop-factor", "--plot", "--config", "--optimizer",
                 "--hidden", "--batch-size", "--seed", "--l2"):
        assert re.search(rf"(?<![\w-]){flag}(?![\w-])", text), flag
    for name in LR_FIND_REFUSES:
        assert not re.search(rf"(?<![\w-]){flag_of(name)}(?![\w-])", text), name


def test_the_readme_names_the_command_and_its_flags():
    """README's sentence on `xdl lr-find` names its own flags and flags it refuses, as they are."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    sentence = readme.split("`xdl lr-find`", 1)[1].split("\n\n", 1)[0]
    named = set(re.findall(r"`(--[a-z-]+)", sentence))
    own, refused = {"--min-lr", "--max-lr", "--steps", "--mode", "--stop-factor", "--plot"}, \
        {flag_of(name) for name in LR_FIND_REFUSES}
    assert own <= named and named <= own | refused and "--lr" in named, named


@pytest.mark.parametrize("flags, said", [
    (["--max-lr", "1e30", "--stop-factor", "inf"], r"stopped after step (\d+): the run diverged \(xdl train's "
                                                   r"divergence rule: a cost or the state no longer finite"),
    (["--max-lr", "1e30"], r"stopped at step (\d+): the smoothed loss rose above --stop-factor × its lowest"),
])
def test_a_sweep_stopped_early_says_why_in_the_command_s_words(flags, said, capsys):
    status, out, err = run([*FAST, "--optimizer", "sgd", "--no-batch-norm", "--min-lr", "1e-3", *flags], capsys)
    assert status == 0, err
    stopped = int(re.search(said, out, re.M)[1])
    last = re.findall(r"^ +(\d+) ", out, re.M)[-1]
    assert 10 < stopped < 100 and int(last) == stopped


@pytest.mark.parametrize("seed", range(2, 6))
def test_a_sweep_the_epoch_end_divergence_rule_stopped_is_not_said_to_have_lost_a_finite_loss(seed, capsys,
                                                                                            monkeypatch):
    """The trainer's divergence rule also stops a sweep at an epoch's end, every cost recorded finite, where the
    epoch's cost rose far above where the classifier started (digits: 17 steps an epoch): "the next step's loss was
    no longer finite" was false there (most sweeps with --stop-factor inf on digits ended so)."""
    from xdl.train.trainer import Trainer

    said, diverged = [], Trainer._diverged
    monkeypatch.setattr(Trainer, "_diverged", lambda self, what, *advice: said.append(what) or diverged(self, what,
                                                                                                       *advice))
    status, out, err = run(["--dataset", "digits", "--hidden", "16", "--optimizer", "sgd", "--no-batch-norm",
                            "--seed", str(seed), "--min-lr", "1e-3", "--max-lr", "1e30", "--stop-factor", "inf"],
                           capsys)
    assert status == 0, err
    assert len(said) == 1 and said[0].startswith("the train cost became ") and "at the end of epoch" in said[0], said
    stopped = re.search(r"^stopped after step (\d+): (.*)$", out, re.M)
    assert int(stopped[1]) % 17 == 0 and "the next step's loss was no longer finite" not in stopped[0], stopped[0]
    assert stopped[2].startswith("the run diverged (xdl train's divergence rule: "), stopped[0]


def test_architecture_names_every_command_built_from_train_config_s_options():
    """ARCHITECTURE.md's layout says which commands xdl/config.py's options build: every one taking ``--config``
    (xdl lr-find, added beside xdl gradcheck and xdl tune, was not named there)."""
    import argparse
    from pathlib import Path

    from xdl.cli import build_parser

    layout = (Path(__file__).resolve().parents[1] / "ARCHITECTURE.md").read_text()
    entry = " ".join(layout.split("\nxdl/config.py ", 1)[1].split("\nxdl/sklearn.py", 1)[0].split())
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    reading = [name for name, sub in commands.items() if any("--config" in a.option_strings for a in sub._actions)]
    assert "lr-find" in reading and [name for name in reading if f"xdl {name}" not in entry] == [], entry


def test_the_run_s_options_refused_are_those_the_range_test_has_no_use_for():
    """Each of xdl train's options that would be ignored here (its epochs, schedule, early stopping, plateau, dev
    set's base error, progress bar, output and resume; its --lr, swept) is refused, not read in silence."""
    assert set(LR_FIND_REFUSES) == {"epochs", "patience", "plateau_patience", "plateau_factor", "schedule",
                                    "decay_rate", "decay_base", "decay_every", "decay_factor", "decay_k", "base_error",
                                    "progress", "out", "checkpoint_every", "resume", "lr"}


@pytest.mark.parametrize("argv", [["--resume"], ["--out"], ["--hidden", "8", "--epochs", "3", "4"]])
def test_a_refused_flag_is_refused_whatever_values_follow_it(argv, capsys):
    status, out, err = run(argv, capsys)
    flag = next(word for word in argv if word in ("--resume", "--out", "--epochs"))
    assert status == 1 and out == "" and err.startswith(f"xdl lr-find: error: {flag} is xdl train's"), err


def test_an_optimizer_s_flag_its_optimizer_does_not_read_is_refused(capsys):
    status, out, err = run([*FAST, "--optimizer", "sgd", "--beta2", "0.9"], capsys)
    assert status == 1 and out == "" and "--beta2 is not read by --optimizer sgd" in err, err


def test_the_table_shows_every_ceil_n_over_10_th_step_the_last_and_the_suggestion_s_smoothed_loss(capsys, monkeypatch):
    """Of n = 25 steps: every 3rd (⌈25/10⌉) from the first, the last and the suggestion's, with the step's rate
    and smoothed loss (not the step cost)."""
    n = 25
    lrs, losses = np.geomspace(1e-5, 1.0, n), np.linspace(3.0, 1.0, n) ** 2
    losses[17] -= 0.5  # (the steepest descent: at step 17, 0-based 16 or 17)
    found = LRFindResult(lrs, losses, losses + 10.0, "exponential", "steps")
    monkeypatch.setattr(LR_FIND, "lr_find", functools.wraps(LR_FIND.lr_find)(lambda *args, **kwargs: found))
    status, out, err = run([*FAST, "--steps", str(n)], capsys)
    assert status == 0, err
    table = re.findall(r"^ +(\d+) +(\S+) +(\S+)(  ← suggestion)?$", out, re.M)
    at = int(np.flatnonzero(lrs == found.suggestion)[0])
    assert [int(row[0]) for row in table] == sorted({*range(1, n + 1, 3), n, at + 1})
    for step, lr, loss, marked in table:
        assert (float(lr), float(loss)) == (float(f"{lrs[int(step) - 1]:.3g}"), float(f"{losses[int(step) - 1]:.4g}"))
        assert bool(marked) == (int(step) == at + 1)


def test_the_train_command_gives_the_switches_typed_off_as_off(capsys, monkeypatch):
    found = LRFindResult(np.geomspace(1e-5, 1, 20), np.linspace(2, 1, 20) ** 2, np.linspace(2, 1, 20), "exponential",
                         "steps")
    monkeypatch.setattr(LR_FIND, "lr_find", functools.wraps(LR_FIND.lr_find)(lambda *args, **kwargs: found))
    status, out, err = run(["--dataset", "digits", "--hidden", "8", "4", "--no-batch-norm", "--augment-flip",
                            "--steps", "20"], capsys)
    assert status == 0, err
    assert out.strip().splitlines()[-1].strip() == \
        f"xdl train --dataset digits --hidden 8 4 --no-batch-norm --augment-flip --lr {found.suggestion:.3g}", out


def test_the_train_command_reads_back_as_the_flags_typed_whatever_their_values():
    """The suggested ``xdl train`` parsed as the flags given to ``xdl lr-find``, each value as typed: a value is no
    path (``--l2 -0.0``, which every non-negative option takes, was written ``--l2 ./-0.0``, refused by xdl train:
    "invalid float value"); a name, an init with its spaces and parentheses, a list, the switches both ways."""
    from xdl.cli import build_parser
    from xdl.cli.commands.lr_find import _train_command

    rng = np.random.default_rng(0)
    values = {"--l2": ["-0.0", "0.0", "1e-05"], "--l1": ["-0.0", "0.001"], "--dropout": ["-0.0", "0.25"],
              "--weight-decay": ["-0.0", "0.01"], "--max-grad-norm": ["-0.0", "1.5"], "--augment-noise": ["-0.0"],
              "--init": ["he", "normal(0.1)", "normal( 0.1 )"], "--hidden": ["8", "8 4"], "--seed": ["0", "3"],
              "--optimizer": ["sgd", "adam"], "--batch-norm": [None], "--no-capture": [None], "--dataset": ["moons"]}
    for _ in range(300):
        typed = []
        for flag in rng.permutation(list(values))[:int(rng.integers(1, len(values) + 1))]:
            value = values[flag][int(rng.integers(len(values[flag])))]
            typed += [flag] if value is None else [flag, *value.split(" ")] if flag == "--hidden" else [flag, value]
        given = build_parser().parse_args(["lr-find", *typed])
        words = shlex.split(_train_command(given, 0.0123))
        assert words[:2] == ["xdl", "train"] and words[-2:] == ["--lr", "0.0123"], words
        read = build_parser().parse_args(words[1:])
        names = [f.name for f in dataclasses.fields(TrainConfig) if hasattr(given, f.name)]
        assert {name: getattr(read, name) for name in names} == {name: getattr(given, name) for name in names}, typed
