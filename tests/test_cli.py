"""The ``xdl`` command: help, config files, bad input, train and gradcheck end to end."""

import dataclasses
import io
import itertools
import json
import os
import re
import subprocess
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import xdl
import xdl.cli
from xdl.cli import REFUSES, main
from xdl.config import flag_of
from xdl.config import TrainConfig
from xdl.train import divergence

FAST = ["--dataset", "moons", "--hidden", "8", "--epochs", "3", "--no-progress"]


def test_every_command_and_subcommand_prints_its_help(capsys):
    import argparse

    from xdl.cli import build_parser

    def commands(parser, path=()):
        yield path
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from commands(sub, (*path, name))

    paths = list(commands(build_parser()))
    assert ("bench", "kernels") in paths and ("tune",) in paths
    for path in paths:
        with pytest.raises(SystemExit) as done:
            main([*path, "--help"])
        printed = capsys.readouterr().out
        assert done.value.code == 0 and "usage: xdl" in printed, path
        if path == ("tune",):  # its --seed seeds the search's draws too (the Python API keeps them apart)
            assert "dropout); and the strategy's draws of the trials' points" in " ".join(printed.split())


def test_help_lists_commands_and_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "train" in capsys.readouterr().out
    for command in ("train", "gradcheck"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        for f in dataclasses.fields(TrainConfig):  # gradcheck trains nothing: a run's options are not its flags
            offered = f.name not in REFUSES.get(command, ())
            flag = re.escape("--" + f.name.replace("_", "-"))
            assert bool(re.search(rf"(?<![\w-]){flag}(?![\w-])", text)) == offered, f.name
        assert "--config" in text and "default: digits" in text and "(default: None)" not in text
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    text = capsys.readouterr().out
    assert "(default: None)" not in text and "a local one) (default" not in text  # one default each, shown once


def test_argparse_errors_are_one_line_as_the_command_s_own(capsys):
    for argv, said in ((["train", "--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
                       (["gradcheck", "--trials", "3"], "unrecognized arguments: --trials 3")):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert err == f"xdl {argv[0]}: error: {said} (see xdl {argv[0]} --help)\n"


def test_a_resume_with_no_out_goes_on_in_the_run_s_directory(tmp_path, capsys, monkeypatch):
    """--resume RUN/checkpoints alone writes RUN's files (it wrote ./xdl-run's, and RUN stayed unfinished)."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", *FAST, "--epochs", "2", "--out", "runA"]) == 0
    before = json.loads((tmp_path / "runA" / "history.json").read_text())["records"]
    assert main(["train", *FAST, "--epochs", "3", "--resume", "runA/checkpoints"]) == 0
    assert not (tmp_path / "xdl-run").exists()
    records = json.loads((tmp_path / "runA" / "history.json").read_text())["records"]
    assert len(before) == 2 and [r["epoch"] for r in records] == [1, 2, 3]


def test_a_resume_goes_on_in_the_run_its_checkpoints_name_and_takes_this_commands_place_and_machine(tmp_path,
                                                                                                  monkeypatch):
    """--resume . from inside RUN/checkpoints goes on in RUN, as --resume RUN/checkpoints does; a checkpoint
    copied into a directory of another name belongs to no run: the rest goes to ./xdl-run, neither into that
    directory's parent nor into the --out of the run it came from. The resumed run's backend and progress bar
    are this command's (the defaults here), not the first run's."""
    from xdl.serialization import read_extra

    monkeypatch.chdir(tmp_path)
    assert main(["train", *FAST, "--epochs", "1", "--backend", "cpu", "--out", "runA"]) == 0
    (tmp_path / "kept").mkdir()
    shutil.copy(tmp_path / "runA" / "checkpoints" / "checkpoint.npz", tmp_path / "kept")
    monkeypatch.chdir(tmp_path / "runA" / "checkpoints")
    assert main(["train", "--epochs", "2", "--resume", "."]) == 0
    assert sorted(p.name for p in (tmp_path / "runA" / "checkpoints").iterdir()) == ["best.npz", "checkpoint.npz"]
    records = json.loads((tmp_path / "runA" / "history.json").read_text())["records"]
    assert [r["epoch"] for r in records] == [1, 2]
    saved = read_extra(tmp_path / "runA" / "checkpoints" / "checkpoint.npz")[0]["run_info"]["config"]
    assert (saved["backend"], saved["progress"], Path(saved["out"])) == ("auto", True, tmp_path / "runA")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--epochs", "2", "--resume", "kept"]) == 0
    records = json.loads((tmp_path / "xdl-run" / "history.json").read_text())["records"]
    assert [r["epoch"] for r in records] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "runA", "xdl-run"]
    assert [r["epoch"] for r in json.loads((tmp_path / "runA" / "history.json").read_text())["records"]] == [1, 2]


def test_a_resumed_runs_time_line_says_its_mean_takes_in_the_epochs_before_it(tmp_path, capsys, monkeypatch):
    """The time line's ms per epoch is the mean of history["seconds"] over every epoch; after a resume
    that includes the first run's, so it says so (it read "this run 0.1 s (3694 ms per epoch)" for 2 epochs)."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", *FAST, "--epochs", "2", "--out", "runA"]) == 0
    assert "over all" not in capsys.readouterr().out  # a run of its own: its mean is its own
    assert main(["train", *FAST, "--epochs", "3", "--resume", "runA/checkpoints"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("time:"))
    assert "ms per epoch over all 3, the resumed run's included" in line, line


class _StopInEpochTwo(xdl.train.Callback):
    """Ctrl-C (SIGINT) after step 3 of a run's second epoch."""
    steps = None

    def on_epoch_end(self, trainer, record):
        self.steps = 0

    def on_step_end(self, trainer, cost):
        if self.steps is not None:
            self.steps += 1
            if self.steps == 3:
                os.kill(os.getpid(), signal.SIGINT)


def test_train_writes_model_history_report_and_curves(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["train", *FAST, "--out", str(out), "--checkpoint-every", "1"]) == 0
    text = capsys.readouterr().out
    for phrase in ("backend numpy", "accuracy: train", "dev", "test", "diagnosis:", "ms per epoch", "files written"):
        assert phrase in text, phrase
    for name in ("model.npz", "history.json", "report.json", "curves.png", "checkpoints/checkpoint.npz"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["hidden"] == [8] and 0 <= report["metrics"]["test"]["accuracy"] <= 1
    assert len(json.loads((out / "history.json").read_text())["records"]) == 3
    # continue the same run for two more epochs from its checkpoint
    assert main(["train", *FAST[:-3], "--epochs", "5", "--no-progress", "--out", str(out), "--checkpoint-every", "1",
                 "--resume", str(out / "checkpoints")]) == 0
    assert len(json.loads((out / "history.json").read_text())["records"]) == 5
    assert "holds a finished run" not in "".join(capsys.readouterr())  # (a resume goes on with it)
    # a new run there replaces the finished one's files, and says so
    assert main(["train", *FAST, "--out", str(out)]) == 0
    assert f"note: --out {str(out)!r} holds a finished run; this run replaces its files" in capsys.readouterr().err
    # the replaced run's report, left there, does not make a replacing run killed at its epoch count finished
    from xdl.train import Trainer

    epoch, epochs = Trainer._train_epoch, []

    def killed_in_its_fourth_epoch(self, *args, **kwargs):  # after epoch 3's checkpoint, as a kill would stop it
        epochs.append(1)
        if len(epochs) == 4:
            raise KeyboardInterrupt
        return epoch(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_epoch", killed_in_its_fourth_epoch)
    assert main(["train", *FAST, "--epochs", "6", "--seed", "5", "--out", str(out), "--checkpoint-every", "1"]) != 0
    monkeypatch.undo()
    capsys.readouterr()
    assert json.loads((out / "report.json").read_text())["epochs"] == 3  # the earlier run's: this one looked over
    assert main(["train", *FAST, "--out", str(out)]) == 1
    assert "holds an unfinished run (its checkpoint: after epoch 3 of 6)" in capsys.readouterr().err


@pytest.mark.parametrize("change", [["--patience", "5"], ["--precision", "tf32"], ["--init", "normal(.01)"]])
def test_a_finished_run_resumed_with_nothing_to_train_stays_finished(tmp_path, capsys, monkeypatch, change):
    """A resume of a run that was over may change its --patience or --precision ("it ends as it ended"):
    its report then holds those options, its checkpoint the run's. The run is finished — a new run
    replaces it — not "stopped while writing its outputs" (the new run was refused, pointing at a resume
    that had just succeeded)."""
    monkeypatch.chdir(tmp_path)
    run = [*FAST, "--epochs", "1", "--patience", "2", "--init", "normal"]
    assert main(["train", *run, "--out", "R"]) == 0
    assert main(["train", "--resume", "R/checkpoints", "--no-progress", *change]) == 0
    capsys.readouterr()
    assert main(["train", *run, "--out", "R"]) == 0
    assert "holds a finished run; this run replaces its files" in capsys.readouterr().err


@pytest.mark.parametrize("earlier", ["leg", "run"])
def test_a_report_left_by_an_earlier_leg_or_another_run_does_not_make_a_run_stopped_while_writing_finished(
        tmp_path, capsys, monkeypatch, earlier):
    """A run over by its epochs but stopped while writing its outputs (its checkpoint written, not its
    report.json) is refused by a new run, pointing at the resume that writes them — also where a report.json
    is left there: its run's first leg's (1 epoch, the run's options: a run that was over has more epochs
    since), or another run's of as many epochs (--seed 1). Neither is the outputs of the run the checkpoint
    holds; the checkpoint is kept as it was."""
    monkeypatch.chdir(tmp_path)
    run = [*FAST[:-3], "--no-progress", "--out", "R"]
    if earlier == "leg":
        assert main(["train", *run, "--epochs", "1"]) == 0
        report = Path("R/report.json").read_bytes()
        assert main(["train", "--resume", "R/checkpoints", "--epochs", "2", "--no-progress"]) == 0
        trained = "its 2 epochs trained"
    else:
        assert main(["train", *run, "--epochs", "1", "--seed", "1"]) == 0
        report = Path("R/report.json").read_bytes()
        assert main(["train", *run, "--epochs", "1"]) == 0
        trained = "its 1 epoch trained"
    Path("R/report.json").write_bytes(report)  # (the run was stopped before its own report.json was written)
    checkpoint = Path("R/checkpoints/checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert main(["train", *run, "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert f"--out 'R' holds a run that was over ({trained}) but whose outputs were not all written" in err, err
    assert "--resume R/checkpoints goes on from there" in err
    assert Path("R/checkpoints/checkpoint.npz").read_bytes() == checkpoint


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_a_report_of_as_many_epochs_does_not_make_a_run_stopped_inside_the_next_finished(tmp_path, capsys,
                                                                                        monkeypatch):
    """Ctrl-C at step 3 of epoch 2, beside a report.json of the run's options and of the epoch its checkpoint
    completed (1): the run is unfinished — its checkpoint is 3 steps into epoch 2 — and a new run is refused,
    pointing at the resume; it replaced the checkpoint, taking the report for the run's outputs."""
    from xdl.serialization import read_extra

    monkeypatch.chdir(tmp_path)
    build = xdl.config.TrainConfig.build_trainer
    with monkeypatch.context() as patched:
        patched.setattr(xdl.config.TrainConfig, "build_trainer",
                        lambda self, model, callbacks=(): build(self, model, [*callbacks, _StopInEpochTwo()]))
        assert main(["train", *FAST, "--out", "R"]) == 130
    checkpoint = Path("R/checkpoints/checkpoint.npz").read_bytes()
    config = read_extra(Path("R/checkpoints/checkpoint.npz"))[0]["run_info"]["config"]
    Path("R/report.json").write_text(json.dumps({"epochs": 1, "config": config}))
    capsys.readouterr()
    assert main(["train", *FAST, "--out", "R"]) == 1
    err = capsys.readouterr().err
    assert "--out 'R' holds an unfinished run (its checkpoint: after step 3 of epoch 2): continue it with --resume " \
           "R/checkpoints" in err, err
    assert Path("R/checkpoints/checkpoint.npz").read_bytes() == checkpoint


def test_config_file_sets_options_and_flags_override_it(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('dataset = "moons"\nhidden = [4]\nepochs = 2\nprogress = false\nlr = 1\n')
    out = tmp_path / "out"
    assert main(["train", "--config", str(config), "--epochs", "1", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["epochs"] == 1 and report["config"]["hidden"] == [4] and report["config"]["lr"] == 1.0


@pytest.mark.parametrize("line, flags, said", [
    ("epochs = 1.5", ["--epochs", "1"], "epochs must be an integer, got 1.5"),
    ('optimizer = "adamx"', ["--optimizer", "adam"], "optimizer must be one of sgd, .*, got 'adamx'")])
def test_a_bad_value_in_a_config_file_is_refused_though_a_flag_overrides_it(tmp_path, capsys, line, flags, said):
    """The file was checked only as merged with the flags: a value a flag overrode was never looked
    at, and the same file failed later, used without that flag."""
    config = tmp_path / "run.toml"
    config.write_text(f'dataset = "moons"\nhidden = [4]\n{line}\n')
    assert main(["train", "--config", str(config), *flags, "--out", str(tmp_path / "out")]) == 1
    assert re.search(f"error: config file '.*run.toml' \\(its value, though a flag overrides it\\): {said}",
                     capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("line, flags, said", [
    ("epochs = 0", ["--epochs", "1"], "epochs must be ≥ 1, got 0"),
    ("lr = -1", ["--lr", "0.1"], "lr must be a finite number > 0, got -1"),
    ("batch_size = 1", ["--batch-size", "8"], "batch_size must be ≥ 2 with batch_norm")])
def test_an_out_of_range_value_in_a_config_file_is_refused_though_a_flag_overrides_it(tmp_path, capsys, line, flags,
                                                                                     said):
    """Its type and choices were checked, not its range: epochs = 0 under --epochs 1 trained, and the
    same file failed later without the flag."""
    config = tmp_path / "run.toml"
    config.write_text(f'dataset = "moons"\nhidden = [4]\n{line}\n')
    assert main(["train", "--config", str(config), *flags, "--out", str(tmp_path / "out")]) == 1
    assert re.search(f"error: config file '.*run.toml' \\(its values, without the flags that override them\\): "
                     f"{said}", capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_a_flag_that_makes_a_config_files_value_good_counts_though_another_overrides_one(tmp_path, capsys):
    """batch_size = 1 under --no-batch-norm trains; adding --epochs 1 over the file's epochs = 3 had
    the file's values checked without every flag ("batch_size must be ≥ 2 with batch_norm")."""
    config = tmp_path / "run.toml"
    config.write_text('dataset = "moons"\nhidden = [4]\nbatch_size = 1\nepochs = 3\n')
    assert main(["train", "--config", str(config), "--no-batch-norm", "--epochs", "1", "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0, capsys.readouterr().err


def test_a_resume_of_a_model_file_says_what_the_file_is(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *FAST, "--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", *FAST, "--out", str(tmp_path / "S"), "--resume", str(out / "model.npz")]) == 1
    assert capsys.readouterr().err == (f"xdl train: error: --resume: {str(out / 'model.npz')!r} is a model file, "
                                       "not a training checkpoint\n")
    assert not (tmp_path / "S").exists()


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_a_run_stopped_inside_an_epoch_is_not_resumed_to_end_before_that_epoch(tmp_path, capsys, monkeypatch):
    """Stopped after step 3 of epoch 2, the run has trained 1 epoch and 3 steps: --epochs 1 is refused, naming
    --epochs and what to ask for, before anything is written (else it ended 3 steps into an epoch of no record)."""
    build = xdl.config.TrainConfig.build_trainer
    with monkeypatch.context() as patched:
        patched.setattr(xdl.config.TrainConfig, "build_trainer",
                        lambda self, model, callbacks=(): build(self, model, [*callbacks, _StopInEpochTwo()]))
        assert main(["train", *FAST, "--out", str(tmp_path / "R")]) == 130
    capsys.readouterr()
    before = {p: p.read_bytes() for p in (tmp_path / "R").rglob("*") if p.is_file()}
    assert main(["train", "--epochs", "1", "--resume", str(tmp_path / "R" / "checkpoints")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("xdl train: error: --epochs: the checkpoint in ") and (
        "has trained 1 epoch and 3 steps of epoch 2 and this run has --epochs 1: a run cannot train fewer; ask for 2 "
        "(to finish the epoch it stopped in) or more") in err
    assert {p: p.read_bytes() for p in (tmp_path / "R").rglob("*") if p.is_file()} == before


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_a_run_stopped_inside_its_first_epoch_writes_no_history(tmp_path, capsys, monkeypatch):
    """Ctrl-C at step 2 of epoch 1: the checkpoint holds those steps, the history no epoch — no empty
    history.json is written beside it (a run's file of no record, which curves and a reader take for a run's)."""
    import signal

    class StopAtStepTwo(xdl.train.Callback):
        steps = 0

        def on_step_end(self, trainer, cost):
            self.steps += 1
            if self.steps == 2:
                os.kill(os.getpid(), signal.SIGINT)

    build = xdl.config.TrainConfig.build_trainer
    monkeypatch.setattr(xdl.config.TrainConfig, "build_trainer",
                        lambda self, model, callbacks=(): build(self, model, [*callbacks, StopAtStepTwo()]))
    assert main(["train", *FAST, "--out", str(tmp_path / "R")]) == 130
    assert "to continue, run the same command with --resume" in capsys.readouterr().err
    assert (tmp_path / "R" / "checkpoints" / "checkpoint.npz").is_file()
    assert not (tmp_path / "R" / "history.json").exists()


def test_a_resume_refusing_a_config_files_option_names_it_in_the_file(tmp_path, capsys):
    """``lr = 0.01`` in a --config file that resumes a run made at 0.003 was refused as "--lr: …",
    a flag never typed; a flag given is named as a flag still."""
    assert main(["train", *FAST, "--epochs", "1", "--out", str(tmp_path / "R")]) == 0
    config = tmp_path / "q.toml"
    config.write_text(f'resume = "{(tmp_path / "R" / "checkpoints").as_posix()}"\nepochs = 2\nlr = 0.01\n')
    capsys.readouterr()
    assert main(["train", "--config", str(config)]) == 1
    assert f"error: lr in {str(config)!r}: the checkpoint in " in capsys.readouterr().err
    assert main(["train", "--config", str(config), "--lr", "0.02"]) == 1
    assert "error: --lr: the checkpoint in " in capsys.readouterr().err
    config.write_text(f'resume = "{(tmp_path / "R" / "checkpoints").as_posix()}"\nepochs = 2\n')
    assert main(["train", "--config", str(config), "--batch-size", "7"]) == 1  # a dashed flag, named as typed
    assert "error: --batch-size: the checkpoint in " in capsys.readouterr().err


@pytest.mark.parametrize("where, said", [("nowhere", "no checkpoint checkpoint.npz at 'nowhere' (no such directory)"),
                                         ("empty", "no checkpoint checkpoint.npz in 'empty'"),
                                         ("junk.npz", "load: 'junk.npz' is not an xdl model file"),
                                         (os.devnull, f"no checkpoint checkpoint.npz at {os.devnull!r} (not a "
                                                      "directory, nor a file)")])
def test_a_config_files_resume_with_no_checkpoint_is_named_as_its_key(tmp_path, capsys, monkeypatch, where, said):
    """resume = "nowhere" in a --config file was refused as "--resume: no checkpoint …", a flag never
    typed, the file unnamed; the flag, given, is named as the flag still."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk.npz").write_text("junk")
    (tmp_path / "r.toml").write_text(f'resume = "{where}"\n')
    assert main(["train", *FAST, "--config", "r.toml"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"xdl train: error: resume in 'r.toml': {said}") and err.count("\n") == 1
    assert main(["train", *FAST, "--config", "r.toml", "--resume", where]) == 1
    assert f"xdl train: error: --resume: {said}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "junk.npz", "r.toml"]  # nothing made


@pytest.mark.parametrize("option, value, said", [("l2", "str", "l2 must be a number, got 'str'"),
                                                   ("hidden", [0], "hidden must be a non-empty list")])
@pytest.mark.parametrize("with_file", [False, True])
def test_a_damaged_option_in_a_checkpoint_is_named_as_the_checkpoints(tmp_path, capsys, option, value, said, with_file):
    """A resumed run's options are its checkpoint's run_info: one damaged there (l2 = "str") was
    refused as "--l2 must be a number", a flag never typed, or as the --config file's, which does not
    hold it — the file to look at is the checkpoint, named; nothing is written."""
    from xdl.serialization import read_checkpoint

    assert main(["train", *FAST, "--epochs", "1", "--out", str(tmp_path / "R")]) == 0
    checkpoint = tmp_path / "R" / "checkpoints" / "checkpoint.npz"
    extra, arrays, _ = read_checkpoint(checkpoint)
    extra["run_info"]["config"][option] = value
    xdl.save(xdl.load(checkpoint), checkpoint, extra=extra, extra_arrays=arrays)
    before = {p: p.read_bytes() for p in (tmp_path / "R").rglob("*") if p.is_file()}
    config = tmp_path / "q.toml"
    config.write_text("epochs = 2\n")
    given = ["--config", str(config)] if with_file else ["--epochs", "2"]
    capsys.readouterr()
    assert main(["train", *given, "--resume", str(checkpoint.parent)]) == 1
    err = capsys.readouterr().err
    assert f"error: --resume: {str(checkpoint)!r} is damaged or was edited: its run's options (run_info): {said}" in err
    assert {p: p.read_bytes() for p in (tmp_path / "R").rglob("*") if p.is_file()} == before
    if with_file:  # the resume the file gives: named as its key there, not as a flag never typed
        config.write_text(f"epochs = 2\nresume = {str(checkpoint.parent)!r}\n")
        assert main(["train", "--config", str(config)]) == 1
        assert f"error: resume in {str(config)!r}: {str(checkpoint)!r} is damaged" in capsys.readouterr().err


def test_gradcheck_checks_a_sample_of_each_parameter_when_asked(capsys):
    """Every element of the default model's 51,210 took 5½ minutes here, silent after its header."""
    assert main(["gradcheck", "--elements", "5"]) == 0
    printed = capsys.readouterr().out
    assert "two evaluations of J per element checked (40 elements: 5 or all of each parameter)" in printed
    assert "(great)" in printed
    assert main(["gradcheck", "--elements", "0"]) == 2  # an error, not a failed check (1), as diff's and cmp's
    assert "--elements must be a positive integer (elements checked per parameter), got 0" in capsys.readouterr().err


def test_gradcheck_interrupted_does_not_speak_of_files_it_had_written(tmp_path, capsys, monkeypatch):
    """Ctrl-C in xdl gradcheck said "every file it had written is complete (writes are atomic)" of a command that
    writes none; xdl tune's message is as it was."""
    monkeypatch.chdir(tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(xdl, "gradcheck", interrupted)
    assert main(["gradcheck", "--elements", "2"]) == 130
    err = capsys.readouterr().err
    assert "xdl gradcheck: interrupted by SIGINT; it writes no file; what it was doing is not saved" in err, err
    assert "every file it had written" not in err and os.listdir(tmp_path) == []
    assert xdl.cli.INTERRUPTED_WRITES[None].startswith("every file it had written is complete (writes are atomic)")


def test_the_courses_initialization_experiment_runs_from_the_command_line(tmp_path, capsys):
    """zeros and normal(SCALE) are the course's first two initializations: the layers took them, the
    options refused them (only Python could run the experiment)."""
    zeros, large = tmp_path / "zeros", tmp_path / "large"
    assert main(["train", *FAST, "--init", "zeros", "--out", str(zeros)]) == 0
    assert main(["train", *FAST, "--init", "normal(10)", "--out", str(large)]) == 0
    assert json.loads((large / "report.json").read_text())["config"]["init"] == "normal(10)"
    weights = {name: xdl.load(out / "model.npz").state_dict() for name, out in (("zeros", zeros), ("large", large))}
    hidden = [key for key in weights["zeros"] if key.endswith("weight")][:-1]
    assert all(np.all(weights["zeros"][key] == 0) for key in hidden)  # no symmetry broken: nothing learned there
    assert np.std(xdl.nn.mlp(2, [64], 2, init="normal(10)", batch_norm=False)[0].weight.numpy()) > 5
    # resumed with the scale spelt otherwise: the same initializer (was: "the checkpoint was made with
    # 'normal(10)', this run has 'normal(10.0)'"); another scale stays refused
    def resumed(epochs, init):
        return main(["train", *FAST[:-3], "--epochs", str(epochs), "--no-progress", "--init", init,
                     "--resume", str(large / "checkpoints"), "--out", str(large)])

    assert resumed(4, "normal(1e1)") == 0
    capsys.readouterr()
    assert resumed(5, "normal(5)") == 1
    assert "--init: the checkpoint in" in capsys.readouterr().err
    for bad in ("random", "normal(-1)", "normal(inf)", "normal(x)"):
        assert main(["train", *FAST, "--init", bad, "--out", str(tmp_path / "bad")]) == 1
        assert (f"--init must be one of zeros, normal, xavier, glorot, he or normal(SCALE) with a finite SCALE ≥ 0, "
                f"got {bad!r}") in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("text, message", [
    ('dataset = "moons"\nlearning_rate = 0.1\n', "unknown key 'learning_rate'"),
    ('epochs = "ten"\n', "epochs must be an integer, got 'ten'"),
    ('hidden = 64\n', "hidden must be a list of integers"),
    ('optimizer = "no_such_rule"\n', "optimizer must be one of"),
    ('batch_norm = 1\n', "batch_norm must be true or false"),
    ('epochs = [\n', "not valid TOML"),
    # an integer beyond floats, where a float is read: an OverflowError's traceback, naming neither key nor file
    ('l2 = ' + '1' * 400 + '\n', "l2 must be a finite number, got an integer beyond floats' range (400 digits)"),
])
def test_bad_config_files_are_named(tmp_path, capsys, text, message):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    out = tmp_path / "out"
    assert main(["train", "--config", str(config), "--out", str(out)]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "0"], "--batch-size must be ≥ 1"), (["--epochs", "-1"], "--epochs must be ≥ 1"),
    (["--dropout", "1.5"], "--dropout must be a number in [0, 0.998046875]"), (["--augment-shift", "1"], "image datasets"),
    (["--beta1", "1.5"], "--beta1 must be in [0, 1), got 1.5"), (["--decay-every", "0"], "--decay-every must be ≥ 1"),
])
def test_bad_flags_are_named(tmp_path, capsys, flags, message):
    assert main(["train", "--dataset", "moons", *flags, "--out", str(tmp_path / "o")]) == 1
    assert message in capsys.readouterr().err


def test_a_run_from_zero_weights_is_sent_to_a_random_initialization_not_a_bigger_network(tmp_path, capsys):
    """--init zeros: every unit of a layer starts, and stays, the same (the course's first lesson),
    so the run's high bias is its initialization's. The next steps said "train a bigger network"
    and "train longer", which learn no more from zeros; a random start comes first in their place.
    A run from a random start is not told."""
    assert main(["train", *FAST, "--init", "zeros", "--out", str(tmp_path / "zeros")]) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "zeros" / "report.json").read_text())["diagnosis"]
    assert "high bias" in report["verdict"]
    assert report["next_steps"][0].startswith("initialize the weights randomly (--init he; xavier for tanh): from "
                                              "--init zeros every unit of a layer computes the same")
    assert "next steps:\n  - initialize the weights randomly" in printed  # printed as written
    assert not any(step.startswith(("train a bigger network", "train longer")) for step in report["next_steps"])
    assert main(["train", *FAST, "--out", str(tmp_path / "he")]) == 0
    assert "initialize the weights randomly" not in capsys.readouterr().out


def test_a_run_from_too_large_a_normal_init_is_sent_to_a_fan_in_scale_first(tmp_path, capsys):
    """--init normal(10), the course's "random × 10": tanh on digits ended at 29% train accuracy and
    was told "train a bigger network" first, nothing of its start (100% from xavier). A run whose start
    cost was far above ln C is told its initialization first; one from he, or normal(0.01), is not."""
    flags = ["--dataset", "moons", "--hidden", "32", "--epochs", "3", "--no-progress", "--no-batch-norm",
             "--dropout", "0", "--activation", "tanh"]
    assert main(["train", *flags, "--init", "normal(10)", "--out", str(tmp_path / "large")]) == 0
    report = json.loads((tmp_path / "large" / "report.json").read_text())["diagnosis"]
    assert "high bias" in report["verdict"]
    assert report["next_steps"][0].startswith("initialize the weights at a scale for their fan-in (--init he; xavier "
                                              "for tanh): from --init normal(10) the run started at a cost of ")
    assert "train a bigger network (more hidden units or layers)" in report["next_steps"]  # (it still helps a little)
    for init in ("he", "normal(0.01)"):
        capsys.readouterr()
        assert main(["train", *flags, "--init", init, "--out", str(tmp_path / init)]) == 0
        assert "initialize the weights at a scale" not in capsys.readouterr().out


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions and a non-root user")
def test_unwritable_output_directory_fails_before_training(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["train", *FAST, "--out", str(locked / "run")]) == 1
        assert "cannot be created" in capsys.readouterr().err
        assert main(["train", *FAST, "--out", str(locked)]) == 1
        assert "not a writable directory" in capsys.readouterr().err
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_gradcheck_passes_a_correct_model_whose_small_gradients_read_as_rounding(capsys):
    """sigmoid with the normal init: a bias's gradients are too small for finite differences at
    ε = 1e-7 (rounding); checked again at 100·ε they agree, and the check passes, naming it."""
    assert main(["gradcheck", "--dataset", "moons", "--hidden", "5", "3", "--activation", "sigmoid", "--init",
                 "normal", "--no-batch-norm", "--dropout", "0"]) == 0
    printed = capsys.readouterr().out
    assert "(ok)" in printed and "rounding" in printed and "0.bias" not in printed and "1.bias (agrees" in printed


def test_gradcheck_command(capsys):
    assert main(["gradcheck", "--dataset", "moons", "--hidden", "4", "--dropout", "0.3"]) == 0
    assert "dropout is off while checking" in capsys.readouterr().err
    assert main(["gradcheck", "--dataset", "moons", "--hidden", "5", "3", "--l2", "0.1"]) == 0
    text = capsys.readouterr().out
    assert "gradient check: difference" in text and "(great)" in text


def test_gradcheck_from_a_zero_start_says_so_not_that_j_ignores_the_weights(capsys):
    """The course's zeros experiment, checked: on moons' balanced examples every gradient is 0 at
    zero weights, and the check said "J does not depend on these inputs" and asked whether J was
    computed from a copy of the model — of the command's own J, which does depend on them."""
    for init in ("zeros", "normal(0)"):
        assert main(["gradcheck", "--dataset", "moons", "--hidden", "4", "--dropout", "0", "--init", init]) == 1
        out, err = capsys.readouterr()
        assert "(inconclusive)" in out and "or they sit where all its gradients are 0" in out
        assert f"note: --init {init} starts every weight at 0" in err and "--init he" in err
    assert main(["gradcheck", "--dataset", "moons", "--hidden", "4", "--dropout", "0", "--elements", "2"]) == 0
    assert "starts every weight at 0" not in capsys.readouterr().err


def test_gradcheck_of_weights_too_large_for_its_step_names_the_init_not_an_eps_it_has_no_flag_for(capsys):
    """--init normal(1e9) (any finite scale is allowed) draws weights whose ulp is above the check's
    ε: the error said "give an eps of at least …", and the command's only --eps is Adam's, which a
    check ignores — given, it was noted as ignored and the same error came back."""
    args = ["gradcheck", "--dataset", "moons", "--hidden", "4", "--init", "normal(1e9)", "--elements", "3"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "xdl gradcheck: error: --init normal(1e9) drew weights too large to check" in err
    assert "give --init a smaller scale" in err and "eps of at least" not in err


def test_a_run_diverging_from_a_large_start_names_the_initial_weights_beside_the_rate(tmp_path, capsys):
    """--init normal(1e17) at lr 1e-10: a batch norm's running variance overflowed within the first epoch
    (the weights still the initial ones), and the run stopped told "try a smaller learning rate" alone,
    under its own note that it had started at a cost of 1.2e18, a large initialization."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (NumPy's overflow)
        assert main(["train", "--init", "normal(1e17)", "--lr", "1e-10", "--epochs", "1", "--no-progress",
                     "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert re.search(r"error: training diverged: .*try a smaller learning rate, or draw smaller initial weights \(he "
                     r"for ReLU, xavier for tanh\): the run started at a cost of 1\.\d+e\+18, above 1e4 × ln C",
                     err), err


def test_resume_of_a_run_directory_holding_only_a_best_epoch_names_it_and_the_command_it_gives_runs(tmp_path, capsys):
    """--resume OUT (not OUT/checkpoints) of a run killed before its first checkpoint.npz said "no
    checkpoint checkpoint.npz in 'OUT'" and nothing of the best.npz there, as OUT/checkpoints does;
    and the command that one gave asked for an --out OTHER the resume does not need."""
    out = tmp_path / "run"
    assert main(["train", *FAST, "--out", str(out)]) == 0
    (out / "checkpoints" / "checkpoint.npz").unlink()  # as a kill before the first one leaves it (and report.json)
    (out / "report.json").unlink()
    best = out / "checkpoints" / "best.npz"
    for given in (out, out / "checkpoints"):
        capsys.readouterr()
        assert main(["train", *FAST, "--resume", str(given)]) == 1
        err = capsys.readouterr().err
        assert f"it holds a best epoch: --resume {best} continues from it" in err and "OTHER" not in err
    assert main(["train", *FAST, "--resume", str(best)]) == 0  # the command it names, into the run's own --out
    assert (out / "report.json").is_file()
    # and the run's checkpoint.npz is there again (a resume that trained nothing wrote none: the directory held
    # best.npz alone, and a resume with more epochs was refused again, pointed back at best.npz)
    assert (out / "checkpoints" / "checkpoint.npz").is_file()
    assert main(["train", *FAST[:4], "--epochs", "5", "--no-progress", "--resume", str(out / "checkpoints")]) == 0


def test_gradcheck_exits_1_on_a_failed_check_and_2_on_an_error(monkeypatch, capsys, tmp_path):
    """A script tells them apart, as diff's and cmp's: both were 1."""
    from xdl.functions.elementwise import ReLU

    monkeypatch.setattr(ReLU, "backward", lambda self, gy: (2 * self.backend.ops.relu_backward(gy, self.y),))
    args = ["gradcheck", "--dataset", "moons", "--hidden", "4", "--no-batch-norm", "--dropout", "0"]
    assert main(args) == 1
    assert "(bug)" in capsys.readouterr().out
    assert main([*args, "--elements", "-1"]) == 2
    monkeypatch.setattr(ReLU, "backward", lambda self, gy: 1 / 0)  # a crash is an error too (Python's status was 1)
    assert main(args) == 2
    assert "ZeroDivisionError" in capsys.readouterr().err
    monkeypatch.setattr(xdl.datasets, "load", lambda *args, **kwargs: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # another command's crash is Python's own (its traceback, status 1)
        main(["train", *FAST, "--out", str(tmp_path / "run")])


@pytest.mark.parametrize("flag, value, why", [
    ("--precision", "tf32", "(it checks in float64, which --precision, of float32 matrix products, does not change)"),
    ("--lr", "0.1", "(it checks J of the model these options build, at its initial weights, on a fixed batch: no "
                    "optimizer, schedule, batch size, augmentation or diagnosis)"),
    ("--base-error", "0.1", "on a fixed batch: no optimizer, schedule, batch size, augmentation or diagnosis)"),
])
def test_gradcheck_refuses_a_training_runs_flag_saying_why(capsys, flag, value, why):
    """Spelt out here, not read from REFUSES (a table the other tests take their cases from)."""
    assert main(["gradcheck", "--dataset", "moons", flag, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xdl gradcheck: error: {flag} is xdl train's, not gradcheck's (")
    assert err.endswith(why + "\n")


def test_lr_find_refuses_no_progress_saying_why(capsys):
    assert main(["lr-find", "--dataset", "moons", "--no-progress"]) == 1
    assert capsys.readouterr().err == ("xdl lr-find: error: --no-progress is xdl train's, not lr-find's (it trains "
                                       "--steps batches at rising rates, with no epochs, schedule, dev set or progress "
                                       "bar): add to the xdl train it suggests\n")


def test_a_memory_error_that_says_nothing_is_named_by_its_type(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(xdl.datasets, "load", lambda *args, **kwargs: (_ for _ in ()).throw(MemoryError()))
    assert main(["train", *FAST, "--out", str(tmp_path / "run")]) == 1
    assert capsys.readouterr().err == "xdl train: error: MemoryError\n"


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_a_dangling_link_in_out_named_as_a_runs_file_is_refused_as_a_file_of_the_users(tmp_path, capsys):
    """A link to nowhere named model.npz: the run would write through it, to wherever it points."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.npz").symlink_to(tmp_path / "nowhere.npz")
    assert main(["train", *FAST, "--out", str(out)]) == 1
    assert capsys.readouterr().err == (f"xdl train: error: --out {str(out)!r} holds model.npz that no xdl train wrote: "
                                       "this run would write over it; give another --out, or move it away\n")
    assert not (tmp_path / "nowhere.npz").exists()


# each command that refuses flags → its exit status for an error (gradcheck's 1 is a check that failed)
ERROR_STATUS = {"gradcheck": 2, "lr-find": 1, "tune": 1}


def _boolean(name: str) -> bool:
    """Whether a refused flag is a run's switch (--progress, --no-progress); a peer's (tune's --n-trials) is none."""
    field = TrainConfig.__dataclass_fields__.get(name)
    return field is not None and field.type == "bool"


@pytest.mark.parametrize("command, name", [(command, name) for command in REFUSES for name in sorted(REFUSES[command])])
def test_a_command_refuses_a_run_s_flag_naming_it_and_why_before_any_work(command, name, tmp_path, capsys,
                                                                          monkeypatch):
    """xdl gradcheck met a run's flag (--epochs, --out, --resume, …) with argparse's "unrecognized arguments",
    where xdl lr-find named it with why: both refuse them alike (`REFUSES`, a table per command), each flag
    (--progress and --no-progress both) with any values, in any place, writing nothing — and xdl tune an Optuna
    user's flag (--n-trials, --sampler, --load-if-exists, …), naming its own."""
    monkeypatch.chdir(tmp_path)
    assert set(ERROR_STATUS) == set(REFUSES)
    boolean = _boolean(name)
    flags = [flag_of(name), "--no-" + flag_of(name)[2:]] if boolean else [flag_of(name)]
    for flag in flags:
        for values in [[]] if boolean else [["3"], ["a", "b"], []]:
            for argv in ([command, "--dataset", "moons", flag, *values, "--seed", "1"], [command, flag, *values]):
                status, (out, err) = main(argv), capsys.readouterr()
                assert status == ERROR_STATUS[command] and out == "", (argv, out)
                assert err == f"xdl {command}: error: {flag} is {REFUSES[command][name]}\n", err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command", sorted(REFUSES))
def test_a_command_names_every_refused_flag_at_once_grouped_by_why(command, capsys):
    names = sorted(REFUSES[command])
    reasons = {REFUSES[command][name] for name in names}
    argv = [command, *[a for name in names for a in ((flag_of(name),) if _boolean(name) else (flag_of(name), "1"))]]
    status, err = main(argv), capsys.readouterr().err
    assert status == ERROR_STATUS[command]
    said = err.removeprefix(f"xdl {command}: error: ").rstrip("\n").split("; ")
    assert len(said) == len(reasons) and all(any(reason in part for part in said) for reason in reasons), err
    assert all(re.search(rf"(?<![\w-]){flag_of(name)}(?![\w-])", err) for name in names), err


def test_xdl_tune_names_optunas_flags_with_its_own():
    """An Optuna user's flags were argparse's bare "unrecognized arguments": each names xdl tune's flag, as
    tune() names its keyword (`OPTUNA_OPTIONS_ELSEWHERE`); --timeout is xdl tune's own."""
    from xdl.tune.search import OPTUNA_OPTIONS_ELSEWHERE

    assert set(REFUSES["tune"]) <= set(OPTUNA_OPTIONS_ELSEWHERE) and "timeout" not in OPTUNA_OPTIONS_ELSEWHERE
    ways = {"n_trials": "--trials", "sampler": "--strategy", "pruner": "--halving", "study_name": "--out",
            "storage": "--out", "load_if_exists": "--resume", "n_jobs": "--execution"}
    assert set(ways) | {"direction"} == set(REFUSES["tune"])
    for name, flag in ways.items():
        assert re.search(rf"(?<![\w-]){flag}(?![\w-])", REFUSES["tune"][name]), name
    assert "maximizes the dev accuracy" in REFUSES["tune"]["direction"]  # (no flag of xdl tune's: one objective)
    assert main(["tune", "--direction", "minimize"]) == 1


def test_console_script_is_installed():
    """`xdl` on PATH (pip install -e . puts it next to the interpreter)."""
    exe = os.path.join(os.path.dirname(sys.executable), "xdl")
    if not os.path.exists(exe):
        pytest.skip("xdl console script not installed in this environment")
    result = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("xdl ")


def test_precision_option_is_checked_and_said(tmp_path, capsys):
    assert main(["train", *FAST, "--backend", "numpy", "--precision", "tf32", "--out", str(tmp_path / "run")]) == 0
    assert "tf32 has no effect on the CPU" in capsys.readouterr().out
    # tune's header says it as train's (it said nothing), and one trial is "1 trial" (was "1 trials")
    assert main(["tune", *FAST[:4], "--epochs", "1", "--trials", "1", "--precision", "tf32", "--no-progress",
                 "--out", str(tmp_path / "study")]) == 0
    assert "tf32 has no effect on the CPU (exact float32); dataset moons" in (out := capsys.readouterr().out)
    assert "examples; 1 trial, random" in out
    with pytest.raises(SystemExit):
        main(["train", *FAST, "--precision", "fp16"])
    assert "--precision" in capsys.readouterr().err


def test_build_trainer_refuses_a_precision_the_gpu_would_not_train_at(backend, tmp_path, capsys):
    """A Trainer built from a config of precision tf32 trained at the backend's float32 on a GPU, unsaid (fit_many
    and tune refused it): build_trainer refuses it there, before any work, where the backend's differs — the
    default takes the backend's, and on the CPU any is taken (exact float32). Its callers that set the backend
    from the config (xdl train, xdl lr-find) train at it."""
    import itertools

    from xdl.backend import PRECISIONS

    X, y = xdl.datasets.load("moons")
    cases = 0
    for theirs, mine in itertools.product(PRECISIONS, PRECISIONS):
        config = TrainConfig(dataset="moons", hidden=[8], epochs=1, patience=0, progress=False, precision=mine)
        with xdl.use(backend.name, precision=theirs):
            model = config.build_model(2, 2)
            if backend.device_type == "cuda" and mine not in ("float32", theirs):
                with pytest.raises(ValueError, match=rf"^build_trainer: config\.precision is '{mine}', but its "
                                                     rf"Trainer trains at the precision of the backend in use, and "
                                                     rf"cupy's is '{theirs}': set it with "
                                                     rf"xdl\.use\('cupy', precision='{mine}'\)"):
                    config.build_trainer(model)
            else:
                assert len(config.build_trainer(model).fit(X[:64], y[:64])) == 1
        cases += 1
    assert cases == 4
    on = ["--dataset", "moons", "--hidden", "8", "--backend", backend.name, "--precision", "tf32"]
    assert main(["train", *on, "--epochs", "1", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    assert main(["lr-find", *on, "--steps", "30"]) in (0, 1)  # (1: a sweep without a suggestion)
    assert "precision is" not in capsys.readouterr().err


def test_build_trainers_checkpoints_record_the_precision_it_trains_at(backend, tmp_path):
    """A Trainer built from a config at the default under a tf32 GPU backend trained at tf32 and its checkpoints'
    options (run_info) said float32. They record the precision it trains at: the backend's on a GPU, the config's
    own on the CPU (exact float32) — as xdl train, which sets the backend's from its --precision, records it."""
    import itertools

    from xdl.backend import PRECISIONS
    from xdl.serialization import read_extra
    from xdl.train import Checkpoint

    X, y = xdl.datasets.load("moons")
    cases = 0
    for theirs, mine in itertools.product(PRECISIONS, PRECISIONS):
        if backend.device_type == "cuda" and mine not in ("float32", theirs):
            continue  # (refused: test_build_trainer_refuses_a_precision_the_gpu_would_not_train_at)
        config = TrainConfig(dataset="moons", hidden=[8], epochs=1, patience=0, progress=False, precision=mine)
        recorded = theirs if backend.device_type == "cuda" else mine
        with xdl.use(backend.name, precision=theirs):
            trainer = config.build_trainer(config.build_model(2, 2), callbacks=[Checkpoint(tmp_path / f"{cases}")])
            trainer.fit(X[:64], y[:64])
        assert trainer.run_info["config"] == dataclasses.asdict(dataclasses.replace(config, precision=recorded))
        assert read_extra(tmp_path / f"{cases}" / "checkpoint.npz")[0]["run_info"]["config"]["precision"] == recorded
        assert config.precision == mine
        cases += 1
    assert cases == (3 if backend.device_type == "cuda" else 4)
    for precision in PRECISIONS:  # xdl train's: the backend's set from its config's
        out = tmp_path / f"run-{precision}"
        assert main(["train", "--dataset", "moons", "--hidden", "8", "--epochs", "1", "--no-progress", "--backend",
                     backend.name, "--precision", precision, "--out", str(out)]) == 0
        assert read_extra(out / "checkpoints" / "checkpoint.npz")[0]["run_info"]["config"]["precision"] == precision


def test_the_run_says_once_how_its_steps_run(tmp_path, capsys):
    assert main(["train", *FAST, "--backend", "numpy", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert out.count("steps: eager (the numpy backend has no CUDA graphs)") == 1
    assert main(["train", *FAST, "--backend", "numpy", "--no-capture", "--out", str(tmp_path / "b")]) == 0
    assert "steps: eager (capture is off)" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["tune", "--trials", "2", *FAST], ["bench", "optimizers", "--quick",
                                                                         "--problem", "quadratic"]])
def test_an_empty_out_is_refused_not_the_current_directory(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--out", ""]) == 1
    assert "--out must name a directory, got ''" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written where the command ran


def test_a_diverged_run_says_how_to_go_on_and_does(tmp_path, capsys):
    """A rate set by hand diverges; the error says how to resume with a smaller one, and that works."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "control.toml").write_text("lr = 1e30\n")
    with np.errstate(all="ignore"):
        assert main(["train", *FAST, "--out", str(out)]) == 1
    printed, err = capsys.readouterr()
    assert "note: control.toml at epoch 1: lr = 1e+30 from epoch 2" in err  # said as it was applied (notes: stderr)
    assert "training diverged" in err and f"into '{out / 'control.toml'}'" in err
    assert f"with --resume {out / 'checkpoints'} (its state after epoch 1)" in err
    # resumed into another directory and diverging before it saves: the way on is still the first one's
    other = tmp_path / "other"
    other.mkdir()
    (other / "control.toml").write_text("lr = 1e30\n")
    with np.errstate(all="ignore"):
        more = [*FAST[:-3], "--epochs", "4", "--no-progress"]
    assert main(["train", *more, "--out", str(other), "--resume", str(out / "checkpoints")]) == 1
    assert f"with --resume {out / 'checkpoints'} (its state after epoch 1)" in capsys.readouterr().err
    (out / "control.toml").write_text("lr = 0.01\n")
    assert main(["train", *FAST, "--out", str(out), "--resume", str(out / "checkpoints")]) == 0
    assert "lr = 0.01 from epoch 2" in json.loads((out / "history.json").read_text())["records"][1]["control"]
    assert "goes on" not in capsys.readouterr().err  # replaced as the run resumed: nothing of 1e30 goes on
    # resumed again (more epochs), with no new file: the summary names the options' rate, a note the one in force
    assert main(["train", *FAST[:-3], "--epochs", "4", "--no-progress", "--out", str(out), "--resume",
                 str(out / "checkpoints")]) == 0
    assert "note: the rate control.toml set goes on: lr = 0.01, in place of the options' lr and schedule" in \
        capsys.readouterr().err


def test_a_new_run_never_replaces_an_unfinished_runs_checkpoint_and_a_resume_says_what_it_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "control.toml").write_text("lr = 1e30\n")  # diverges in epoch 2: the checkpoint holds epoch 1
    with np.errstate(all="ignore"):
        assert main(["train", *FAST, "--out", str(out)]) == 1
    saved = (out / "checkpoints" / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert main(["train", *FAST, "--out", str(out)]) == 1  # the same command, without --resume
    assert (f"--out {str(out)!r} holds an unfinished run (its checkpoint: after epoch 1 of 3): continue it with "
            f"--resume {out / 'checkpoints'}, or give another --out" in capsys.readouterr().err)
    assert (out / "checkpoints" / "checkpoint.npz").read_bytes() == saved
    (out / "control.toml").write_text("lr = 0.01\n")
    assert main(["train", *FAST, "--out", str(out), "--resume", str(out / "checkpoints")]) == 0
    assert f"resuming {str(out / 'checkpoints' / 'checkpoint.npz')!r}: its state after epoch 1, to epoch 3" in \
        capsys.readouterr().err
    other = tmp_path / "other"  # an unfinished run elsewhere is not replaced by a resume into its directory
    (other / "checkpoints").mkdir(parents=True)
    (other / "checkpoints" / "checkpoint.npz").write_bytes(saved)
    more = [*FAST[:-3], "--epochs", "4", "--no-progress"]
    assert main(["train", *more, "--out", str(other), "--resume", str(out / "checkpoints")]) == 1
    assert f"--out {str(other)!r} holds an unfinished run" in capsys.readouterr().err
    assert main(["train", *FAST, "--out", str(out)]) == 0  # a finished run's files are replaced, as by a rerun


def test_a_run_an_older_xdl_stopped_early_is_over_though_its_history_names_no_stop(tmp_path, capsys):
    """An older xdl saved its last checkpoint before it set history.stopped_epoch or stopped_by: its
    stop was in its EarlyStopping's wait alone, which a resume reads; a new run there was refused by
    the Checkpoint as over an unfinished run ("after epoch 6 of 60")."""
    from xdl.serialization import read_checkpoint
    from xdl.train.checkpoint_files import unfinished_run

    out = tmp_path / "run"
    assert main(["train", *FAST[:-3], "--epochs", "60", "--patience", "1", "--lr", "0.05", "--no-progress",
                 "--out", str(out)]) == 0
    path = out / "checkpoints" / "checkpoint.npz"
    extra, arrays, _ = read_checkpoint(path)
    stopped = extra["history"].pop("stopped_epoch")
    assert stopped < 60 and extra["history"].pop("stopped_by")
    xdl.save(xdl.load(path), path, extra=extra, extra_arrays=arrays)  # as that xdl wrote it
    assert unfinished_run(path) is None
    (out / "report.json").unlink()  # killed while writing its outputs: its resume writes them
    capsys.readouterr()
    assert main(["train", *FAST, "--out", str(out)]) == 1
    assert f"holds a run that was over (stopped early at epoch {stopped}) but whose outputs" in capsys.readouterr().err
    assert main(["train", "--resume", str(out / "checkpoints"), "--no-progress", "--patience", "1"]) == 0
    err = capsys.readouterr().err  # (its own patience: it stays stopped, its outputs written; no "it trains on")
    assert err.endswith(f"checkpoint.npz': its state after epoch {stopped}, to epoch 60\n"), err
    assert main(["train", "--resume", str(out / "checkpoints"), "--no-progress", "--patience", "3"]) == 0
    assert f"(the run had stopped early at epoch {stopped}; with --patience 3 it trains on)" in capsys.readouterr().err


def test_a_finished_run_resumed_into_another_out_can_go_on_from_there(tmp_path, capsys):
    """A run that was over, resumed with another --out, trains nothing and writes its outputs there:
    its checkpoint.npz goes there too, the state the run goes on from (OTHER then held best.npz
    alone, and ``--resume OTHER/checkpoints --epochs 5`` was refused, pointed at best.npz: the best
    epoch's state, not the run's end), and the summary lists OTHER's files, not the first --out's."""
    out, other = tmp_path / "run", tmp_path / "other"
    assert main(["train", *FAST, "--patience", "0", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--no-progress", "--out", str(other), "--resume", str(out / "checkpoints")]) == 0
    printed = capsys.readouterr().out
    assert (other / "checkpoints" / "checkpoint.npz").read_bytes() == (out / "checkpoints" / "checkpoint.npz").read_bytes()
    assert str(other / "checkpoints" / "checkpoint.npz") in printed and str(out / "checkpoints") not in printed
    assert main(["train", "--no-progress", "--epochs", "5", "--resume", str(other / "checkpoints")]) == 0
    assert json.loads((other / "history.json").read_text())["records"][-1]["epoch"] == 5


def test_a_finished_run_keeps_a_checkpoint_to_go_on_from_with_more_epochs(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *FAST, "--checkpoint-every", "0", "--patience", "0", "--out", str(out)]) == 0
    assert (out / "checkpoints" / "checkpoint.npz").is_file()  # written at the last epoch
    more = [*FAST[:-3], "--epochs", "5", "--no-progress", "--patience", "0"]
    assert main(["train", *more, "--checkpoint-every", "0", "--out", str(out), "--resume",
                 str(out / "checkpoints")]) == 0
    assert json.loads((out / "history.json").read_text())["records"][-1]["epoch"] == 5
    # its files load back as the README says
    X, y = xdl.datasets.load("moons")
    for name in ("model.npz", "checkpoints/best.npz", "checkpoints/checkpoint.npz"):
        assert xdl.load(out / name).predict(X[:4]).shape == (4,)
    assert xdl.train.History.load(out / "history.json")["epoch"] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("argv, message", [
    (["train", "--config", ""], "--config: expected a TOML file, got ''"),
    (["train", "--resume", "nowhere"], "--resume: no checkpoint checkpoint.npz at 'nowhere' (no such directory)"),
    (["train", "--augment-noise", "0.1", "--dataset", "moons"], "error: --augment-noise: augmentation applies to "
                                                                      "image datasets (digits), not 'moons'"),
    (["train", "--augment-shift", "8"], "--augment-shift must be an integer in [0, 8), got 8"),
    # (was: X contains NaN or Inf, after the run had started)
    (["train", "--augment-noise", "1e38"], "--augment-noise must be at most 3.4e+37"),
    # (was: the run started, and stopped at its first step as diverged, advising a smaller learning rate)
    (["train", "--l2", "1e39"], "--l2 must be at most 3.4e+38, float32's largest number (the model's dtype, "
                                "which the penalty is computed in), got 1e+39"),
    (["train", "--weight-decay", "1e300"], "--weight-decay must be at most 3.4e+38"),
    # a negative number with an exponent is a value (was: argument --lr: expected one argument)
    (["train", "--lr", "-1e-3"], "--lr must be a finite number > 0, got -0.001"),
    (["bench", "optimizers", "--lr", "-1e-3"], "--lr must be a number in float32's positive range"),
    (["train", "--optimizer", "sgd", "--beta2", "0.1"], "--beta2 is not read by --optimizer sgd or --schedule "
                                                       "inverse_time: it would be ignored"),
    (["train", "--schedule", "none", "--decay-every", "3"], "--decay-every is not read by --optimizer adam or "
                                                            "--schedule none"),
    # two flags for nothing: the first of the options' order named (TrainConfig's fields), whatever order typed
    (["train", "--optimizer", "sgd", "--beta2", "0.1", "--beta1", "0.5"], "--beta1 is not read by --optimizer sgd"),
])
def test_option_errors_say_what_was_typed(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_a_run_diverging_before_any_checkpoint_leaves_no_empty_checkpoint_directory(tmp_path, capsys):
    out = tmp_path / "run"
    with np.errstate(all="ignore"):
        assert main(["train", *FAST, "--lr", "1e30", "--out", str(out)]) == 1
    assert "no good state was saved yet" in capsys.readouterr().err
    assert not (out / "checkpoints").exists()


def test_a_failed_checkpoint_write_says_how_to_go_on(tmp_path, capsys, disk_full_from):
    out = tmp_path / "run"
    disk_full_from(4)  # epochs 1 and 2 write best.npz, then checkpoint.npz: epoch 2's fails
    assert main(["train", *FAST, "--out", str(out), "--patience", "0"]) == 1
    err = capsys.readouterr().err
    assert f"writing the checkpoint '{out / 'checkpoints' / 'checkpoint.npz'}' after epoch 2 failed" in err
    assert f"--resume {out / 'checkpoints'} (its state after epoch 1)" in err
    disk_full_from(None)
    assert main(["train", *FAST, "--out", str(out), "--patience", "0", "--resume", str(out / "checkpoints")]) == 0
    assert json.loads((out / "history.json").read_text())["records"][-1]["epoch"] == 3


def growing_rate(decay_base: float) -> list[str]:
    """Options of a 6-epoch run with --checkpoint-every 0 whose rate grows by ``decay_base`` per epoch
    (an exponential "decay" above 1): it diverges, the sooner the larger the base."""
    return [*FAST[:4], "--epochs", "6", "--no-progress", "--lr", "0.01", "--optimizer", "sgd", "--no-batch-norm",
            "--dropout", "0", "--schedule", "exponential", "--decay-base", str(decay_base), "--checkpoint-every", "0"]


def test_a_run_stopped_before_its_first_checkpoint_keeps_the_best_of_its_epochs(tmp_path, capsys, disk_full_from):
    """--checkpoint-every 0: best.npz holds every epoch a run trained until its last. A divergence in
    epoch 5, or a full disk at epoch 3's write, removed it with the checkpoints (as a lone best after a
    first epoch, which the same command redoes), while the Trainer's message said "the best epoch's
    state is in …best.npz" (the failed write's, that it "holds what it held before"): every epoch lost.
    It is kept, and the message says how to go on from it."""
    diverging = growing_rate(decay_base=300)  # diverges in epoch 5
    out = tmp_path / "run"
    best = out / "checkpoints" / "best.npz"
    with np.errstate(all="ignore"):
        assert main(["train", *diverging, "--out", str(out)]) == 1
    assert f"run the same command with --resume {best}" in capsys.readouterr().err
    assert best.is_file()
    (out / "control.toml").write_text("lr = 0.001\n")
    assert main(["train", *diverging, "--out", str(out), "--resume", str(best)]) == 0
    assert json.loads((out / "history.json").read_text())["records"][-1]["epoch"] == 6

    out = tmp_path / "full"
    best = out / "checkpoints" / "best.npz"
    disk_full_from(3)  # epochs 1 and 2 write best.npz; epoch 3's fails
    assert main(["train", *FAST, "--out", str(out), "--patience", "0", "--checkpoint-every", "0"]) == 1
    assert f"its best epoch is kept: once the directory can be written, run the same command with --resume {best}" \
        in capsys.readouterr().err
    assert best.is_file()
    disk_full_from(None)
    assert main(["train", *FAST, "--out", str(out), "--patience", "0", "--checkpoint-every", "0",
                 "--resume", str(best)]) == 0


def test_a_divergence_in_epoch_two_keeps_the_best_epoch_its_message_names(tmp_path, capsys):
    """--checkpoint-every 0, diverging in epoch 2: the Trainer's message said "the best epoch's state
    is in …best.npz", and the best.npz of epoch 1 was removed after it (a lone best of one epoch is
    removed where a stop's message does not name it)."""
    diverging = growing_rate(decay_base=30000)
    out = tmp_path / "run"
    best = out / "checkpoints" / "best.npz"
    with np.errstate(all="ignore"):
        assert main(["train", *diverging, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "at the end of epoch 2" in err and f"the best epoch's state is in '{best}'" in err
    assert f"run the same command with --resume {best}" in err
    assert best.is_file()
    assert main(["train", *diverging, "--out", str(out)]) == 1  # a new run there would write over it
    assert f"continue from its best epoch with --resume {best} (into this --out or another)" in capsys.readouterr().err
    (out / "control.toml").write_text("lr = 0.001\n")
    assert main(["train", *diverging, "--out", str(out), "--resume", str(best)]) == 0
    assert json.loads((out / "history.json").read_text())["records"][-1]["epoch"] == 6


def test_a_failed_first_checkpoint_leaves_no_lone_best_and_the_same_command_runs_again(tmp_path, capsys,
                                                                                       disk_full_from):
    """Epoch 1's best.npz written, its checkpoint.npz not: the best was left alone, and the same
    command was refused ("a run's best epoch but no checkpoint")."""
    out = tmp_path / "run"
    disk_full_from(2)
    assert main(["train", *FAST, "--out", str(out)]) == 1
    assert f"writing the checkpoint '{out / 'checkpoints' / 'checkpoint.npz'}' after epoch 1 failed" in \
        capsys.readouterr().err
    assert not (out / "checkpoints").exists()
    disk_full_from(None)
    assert main(["train", *FAST, "--out", str(out)]) == 0


def test_out_of_memory_while_writing_a_checkpoint_is_said_as_a_failed_write(tmp_path, capsys, monkeypatch):
    """A MemoryError in a checkpoint's write printed "xdl train: error:" and nothing else."""
    import xdl.serialization

    savez, calls = xdl.serialization.np.savez, []

    def savez_out_of_memory(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # epoch 2's checkpoint.npz
            raise MemoryError()
        return savez(*args, **kwargs)

    monkeypatch.setattr(xdl.serialization.np, "savez", savez_out_of_memory)
    out = tmp_path / "run"
    assert main(["train", *FAST, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"writing the checkpoint '{out / 'checkpoints' / 'checkpoint.npz'}' after epoch 2 failed: out of memory; " \
           f"'{out / 'checkpoints' / 'checkpoint.npz'}' holds what it held before" in err
    assert f"--resume {out / 'checkpoints'} (its state after epoch 1)" in err


def test_a_history_that_cannot_be_written_leaves_the_way_on_said(tmp_path, capsys, monkeypatch):
    """A divergence's or an interruption's message (and its --resume) was replaced by history.json's
    write error; so was a checkpoint's by the lock file's, in a directory made read-only."""
    import signal

    import xdl.lock
    import xdl.train.history

    def no_room(*args, **kwargs):
        raise OSError(28, "No space left on device", "history.json")

    monkeypatch.setattr(xdl.train.history.History, "save", no_room)
    out = tmp_path / "run"
    out.mkdir()
    (out / "control.toml").write_text("lr = 1e30\n")  # diverges in epoch 2: the checkpoint holds epoch 1
    with np.errstate(all="ignore"):
        assert main(["train", *FAST, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "note: the history was not written: [Errno 28] No space left on device" in err
    assert "training diverged" in err and f"with --resume {out / 'checkpoints'} (its state after epoch 1)" in err

    class SignalAfterEpoch(xdl.train.Callback):
        def on_epoch_end(self, trainer, record):
            os.kill(os.getpid(), signal.SIGINT)

    build = xdl.config.TrainConfig.build_trainer
    monkeypatch.setattr(xdl.config.TrainConfig, "build_trainer",
                        lambda self, model, callbacks=(): build(self, model, [*callbacks, SignalAfterEpoch()]))
    assert main(["train", *FAST, "--out", str(tmp_path / "other")]) == 130
    err = capsys.readouterr().err
    assert "xdl train: training interrupted by SIGINT" in err and "to continue, run the same command" in err

    unlink = Path.unlink
    monkeypatch.setattr(Path, "unlink", lambda self, *a, **k: (_ for _ in ()).throw(PermissionError(13, "denied"))
                        if self.name == "run.lock" else unlink(self, *a, **k))
    (tmp_path / "locked").mkdir()
    lock = xdl.lock.DirectoryLock(tmp_path / "locked", "--out", xdl.lock.RUN).acquire()
    lock.release()  # the file stays (its holder gone: the next takes it over); no error in place of the run's


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_a_second_ctrl_c_as_the_stopped_runs_history_is_written_still_says_how_to_go_on(tmp_path, capsys,
                                                                                         monkeypatch):
    """Ctrl-C twice: the first stops the run at a step and its checkpoint is written; the second came as
    history.json was written after it, and the command said "what it was doing is not saved" — of a run
    whose training was saved — and not the --resume that continues it."""
    import signal

    import xdl.train.history

    class SignalAfterEpoch(xdl.train.Callback):
        def on_epoch_end(self, trainer, record):
            os.kill(os.getpid(), signal.SIGINT)

    def second_ctrl_c(self, path):
        raise KeyboardInterrupt

    build = xdl.config.TrainConfig.build_trainer
    monkeypatch.setattr(xdl.config.TrainConfig, "build_trainer",
                        lambda self, model, callbacks=(): build(self, model, [*callbacks, SignalAfterEpoch()]))
    monkeypatch.setattr(xdl.train.history.History, "save", second_ctrl_c)
    out = tmp_path / "run"
    assert main(["train", *FAST, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "note: the history was not written (interrupted again)" in err and "not saved" not in err
    assert f"to continue, run the same command with --resume {out / 'checkpoints'} (its state after epoch 1)" in err


def test_flipping_digits_is_noted(tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--augment-flip", "--no-progress", "--out", str(tmp_path)]) == 0
    assert "note: --augment-flip mirrors digits" in capsys.readouterr().err


def test_adamw_without_weight_decay_is_noted_as_adam(tmp_path, capsys):
    """It trained as adam, bit for bit, without a word (PyTorch's AdamW decays at 0.01 unasked)."""
    args = ["train", *FAST, "--optimizer", "adamw", "--out"]
    assert main([*args, str(tmp_path / "a")]) == 0
    assert "note: --optimizer adamw with --weight-decay 0 is adam" in capsys.readouterr().err
    assert main([*args, str(tmp_path / "b"), "--weight-decay", "0.01"]) == 0
    assert "is adam" not in capsys.readouterr().err


def test_a_stop_says_who_stopped_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "control.toml").write_text("stop = true\n")
    assert main(["train", *FAST, "--epochs", "20", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "stopped early at epoch 1: control.toml at epoch 1" in printed.out  # not "did not improve"
    # one left from before (a finished run's) is obeyed: said as the run begins, not only when it stops it
    assert printed.err.index("note: control.toml was there before this run began: it is read at epoch 1's end") < \
        printed.err.index("note: control.toml at epoch 1: stop")
    assert json.loads((out / "report.json").read_text())["stopped_by"] == "control.toml at epoch 1"
    assert main(["train", *FAST, "--epochs", "40", "--patience", "2", "--lr", "0.5", "--schedule", "none",
                 "--out", str(tmp_path / "early")]) == 0
    printed = capsys.readouterr().out
    assert "stopped early at epoch" in printed and ": dev cost did not improve for 2 epochs" in printed


def test_a_rejected_control_file_is_noted_once_while_the_run_goes_on(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "control.toml").write_text("lr = -1\n")  # read at epoch 1's end, rejected, training goes on
    assert main(["train", *FAST, "--out", str(out)]) == 0
    printed, err = capsys.readouterr()
    assert err.count("note: control.toml at epoch 1 not applied: lr is -1: a learning rate must be a number") == 1
    assert "note:" not in printed and "accuracy:" in printed  # notes on stderr, the results on stdout
    assert (out / "control-rejected-epoch-1.toml").is_file()


def test_the_users_warning_filters_decide_over_the_notes(tmp_path, capsys):
    """`python -W ignore -m xdl train` or PYTHONWARNINGS=ignore: the notes of warnings were printed
    anyway (the command's own "always" went before the user's filters); after them, it is the
    default for what they leave."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "control.toml").write_text("lr = -1\n")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="control.toml")  # (as -W ignore::UserWarning puts it first)
        assert main(["train", *FAST, "--out", str(out)]) == 0
    assert "not applied" not in capsys.readouterr().err
    assert (out / "control-rejected-epoch-1.toml").is_file()  # (rejected all the same: only the note is not said)


def test_xdl_backend_picks_the_backend_unless_a_flag_does(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDL_BACKEND", "torch")
    for command in (["train", *FAST, "--out", str(tmp_path / "run")], ["bench", "kernels", "--quick"]):
        assert main(command) == 1
        assert "XDL_BACKEND='torch' is not a backend; expected one of numpy, cupy, auto" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    config = tmp_path / "run.toml"
    config.write_text('backend = "cupy"\n')
    monkeypatch.setenv("XDL_BACKEND", "numpy")  # beats the file; a flag beats both
    parser = xdl.cli.build_parser()
    assert xdl.cli.config_from_args(parser.parse_args(["train", "--config", str(config)]), parser).backend \
        == "numpy"
    assert xdl.cli.config_from_args(parser.parse_args(["train", "--backend", "auto"]), parser).backend == "auto"


def test_an_unavailable_backend_no_flag_named_says_where_it_came_from(tmp_path, capsys, monkeypatch):
    """XDL_BACKEND=cupy (or a config file's backend = "cupy") on a machine without CuPy or a GPU
    failed with "backend 'cupy' is unavailable" alone: the user had given no --backend."""
    if xdl.backend._cupy_or_reason()[0] is not None:
        pytest.skip("cupy is available here")
    monkeypatch.setenv("XDL_BACKEND", "cupy")
    assert main(["train", *FAST, "--out", str(tmp_path / "run")]) == 1
    assert "(XDL_BACKEND=cupy chose it; --backend auto takes what this machine has)" in capsys.readouterr().err
    bench = ["bench", "optimizers", "--quick", "--problem", "quadratic", "--optimizer", "sgd", "--seeds", "1"]
    assert main([*bench, "--trials", "2", "--out", str(tmp_path / "bench")]) == 1  # (its --backend: None, not given)
    assert "(XDL_BACKEND=cupy chose it; --backend auto takes what this machine has)" in capsys.readouterr().err
    monkeypatch.delenv("XDL_BACKEND")
    config = tmp_path / "run.toml"
    config.write_text('backend = "cupy"\n')
    assert main(["train", *FAST, "--config", str(config), "--out", str(tmp_path / "run")]) == 1
    assert "(the --config file or the resumed study chose it;" in capsys.readouterr().err
    assert main(["train", *FAST, "--backend", "cupy", "--out", str(tmp_path / "run")]) == 1
    assert "chose it" not in capsys.readouterr().err  # the flag the user gave: nothing to add
    assert not (tmp_path / "run").exists() and not (tmp_path / "bench").exists()


def test_small_slips_get_a_pointed_answer(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *FAST, "--out", str(out)]) == 0
    assert main(["train", *FAST, "--out", str(out), "--resume", str(out)]) == 1  # the run's directory
    assert f"did you mean --resume {out / 'checkpoints'}?" in capsys.readouterr().err
    typo = out / "checkpoints" / "checkpoint"  # (a name beside the checkpoint: its directory meant)
    assert main(["train", *FAST, "--out", str(out), "--resume", str(typo)]) == 1
    assert capsys.readouterr().err == (f"xdl train: error: --resume: no checkpoint checkpoint.npz at {str(typo)!r} "
                                       f"(no such directory); did you mean --resume {out / 'checkpoints'}?\n")
    # the checkpoint file itself is taken as its directory is (here: with nothing left to train, the run's
    # outputs written again, as they were)
    assert main(["train", *FAST, "--out", str(out), "--resume", str(out / "checkpoints" / "checkpoint.npz")]) == 0
    assert "nothing to train; it ends as it ended" in capsys.readouterr().err
    assert main(["bench"]) == 2  # no benchmark named: the bench command's own help
    assert "usage: xdl bench" in capsys.readouterr().out
    assert main(["tune", "--scheduler", "tcp://127.0.0.1:8786", "--out", str(tmp_path / "t")]) == 1
    assert "--scheduler is the address of a Dask scheduler, for --execution dask" in capsys.readouterr().err
    with pytest.raises(IsADirectoryError, match="is a directory; name the model file in it"):
        xdl.load(out)
    with pytest.raises(TypeError, match="save: model must be an xdl Module, got str"):
        xdl.save("model", tmp_path / "m.npz")


def test_empty_out_or_config_and_a_bad_resume_are_refused_before_anything_is_made(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *FAST, "--out", ""]) == 1
    assert "out must name a directory" in capsys.readouterr().err
    assert main(["train", *FAST, "--config", ""]) == 1
    assert "--config" in capsys.readouterr().err
    assert main(["train", *FAST, "--out", "run", "--resume", "nowhere"]) == 1
    assert "--resume" in capsys.readouterr().err
    assert main(["train", *FAST, "--out", "run", "--resume", ""]) == 1  # not a fresh run in disguise
    assert "--resume: expected a checkpoint directory, got ''" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_out_that_is_a_file_is_named(tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    for command in (["train", "--epochs", "1", "--no-progress"], ["tune", "--trials", "1", "--epochs", "1"]):
        assert main([*command, "--out", str(tmp_path / "afile")]) == 1
        assert f"{str(tmp_path / 'afile')!r} is a file, not a directory" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "mine"


# -- found by a newcomer with bad input, and a user who cannot lose work ---------------------------
def test_a_flag_given_beside_a_config_file_is_named_as_the_flag(tmp_path, capsys):
    config = tmp_path / "ok.toml"
    config.write_text("epochs = 1\n")
    assert main(["train", "--config", str(config), "--epochs", "0", "--out", str(tmp_path / "run")]) == 1
    assert "error: --epochs must be ≥ 1, got 0" in capsys.readouterr().err
    config.write_text("epochs = 0\n")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 1
    assert f"config file {str(config)!r}: epochs must be ≥ 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_flag_no_optimizer_or_schedule_reads_names_a_config_files_choice_as_the_files(tmp_path, capsys):
    """The schedule a --config file chose is named as its key in the file (was: "--schedule none", a flag
    never typed)."""
    config = tmp_path / "run.toml"
    config.write_text('schedule = "none"\n')
    for command in ("train", "tune"):
        assert main([command, "--config", str(config), "--decay-rate", "0.1", "--out", str(tmp_path / "out")]) == 1
        assert (f"error: --decay-rate is not read by --optimizer adam or schedule = 'none' in {str(config)!r}: it "
                "would be ignored") in capsys.readouterr().err
    assert main(["train", "--config", str(config), "--schedule", "step", "--decay-rate", "0.1", "--out",
                 str(tmp_path / "out")]) == 1  # (a flag over the file's: the flag)
    assert "--decay-rate is not read by --optimizer adam or --schedule step" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bench_refuses_a_rate_or_a_rule_no_run_can_use_before_any_work(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "optimizers", "--lr", "1e39", "--problem", "quadratic", "--out", str(out)]) == 1
    assert "--lr must be a number in float32's positive range" in capsys.readouterr().err
    for source, message in (("x = (\n", "cannot load it: running .*broken.py raised SyntaxError"),
                            ("raise SystemExit(3)\n", "cannot load it: running .*broken.py raised SystemExit: 3"),
                            ("from xdl.optim import Optimizer\nclass X(Optimizer):\n    pass\n",
                             r"X has no update of its own \(NotImplementedError\)"),
                            ("from xdl.optim import SGD\nclass X(SGD):\n    def __init__(self, params):\n"
                             "        super().__init__(params)\n", r"X\(params, lr=...\) cannot be made \(TypeError")):
        (tmp_path / "broken.py").write_text(source)
        assert main(["bench", "optimizers", "--optimizer", f"{tmp_path / 'broken.py'}:X", "--problem", "quadratic",
                     "--out", str(out)]) == 1
        assert re.search(message, capsys.readouterr().err)
    assert not out.exists()


def test_tune_refuses_what_it_would_ignore(tmp_path, capsys):
    out = str(tmp_path / "t")
    assert main(["tune", "--space", "", "--out", out]) == 1
    assert "--space: expected a TOML file, got ''" in capsys.readouterr().err
    assert main(["tune", "--optimizer", "sgd", "--beta2", "0.5", "--out", out]) == 1
    assert "--beta2 is not read by --optimizer sgd" in capsys.readouterr().err
    config = tmp_path / "c.toml"
    config.write_text('resume = "nowhere"\n')
    assert main(["tune", "--config", str(config), "--out", out]) == 1
    assert "--config: resume = 'nowhere' continues an xdl train run" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
    from xdl.tune.search import check_search
    space = check_search(None, 4, "random", "sequential", None, 0, TrainConfig(optimizer="sgd"), None, False)[0]
    assert "beta1" not in space.spec() and "lr" in space.spec()  # SGD reads no β1: not searched by default


@pytest.mark.parametrize("out", [" ", "a\nb"])
def test_an_output_directory_of_blanks_or_control_characters_is_refused(tmp_path, capsys, out):
    assert main(["train", *FAST, "--out", str(tmp_path / out)]) == 1
    assert "--out must name a directory, got" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


def test_a_json_file_under_a_file_is_named_as_such(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError, match=r"--json '.*/f/k.json': '.*/f' is a file, not a directory"):
        xdl.files.check_output_file(tmp_path / "f" / "k.json", "--json")


def test_a_json_file_starting_with_a_tilde_is_refused_as_out_is(capsys):
    """'~/k.json' quoted: nothing expands it; it said "directory '~' does not exist"."""
    assert main(["bench", "kernels", "--quick", "--json", "~/k.json"]) == 1
    assert "--json '~/k.json' starts with '~', which nothing expands here" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--config", "--space"])
def test_a_missing_toml_file_starting_with_a_tilde_says_what_was_meant(capsys, option):
    """--config=~/run.toml: the shell leaves '~' after '=' as it is; it said only "no such file"."""
    command = ["train", "--config=~/no-such-xdl.toml"] if option == "--config" else ["tune", "--space=~/no-such-xdl.toml"]
    assert main(command) == 1
    home = os.path.expanduser("~/no-such-xdl.toml")
    assert f"{option}: no such file '~/no-such-xdl.toml' ('~' is not expanded here: did you mean {home!r}?)" \
        in capsys.readouterr().err


def test_a_failed_command_leaves_no_empty_output_directory_of_its_own(tmp_path, capsys):
    out = tmp_path / "nest" / "a" / "run"  # diverges at epoch 1, before any checkpoint
    assert main(["train", *FAST, "--optimizer", "sgd", "--lr", "1e30", "--no-batch-norm", "--schedule", "none",
                 "--out", str(out)]) == 1
    assert "diverged" in capsys.readouterr().err and not (tmp_path / "nest").exists()  # (nest/a was left)
    kept = tmp_path / "kept"
    kept.mkdir()
    assert main(["train", *FAST, "--optimizer", "sgd", "--lr", "1e30", "--no-batch-norm", "--schedule", "none",
                 "--out", str(kept)]) == 1
    assert kept.is_dir()  # one the user made stays


def test_a_failed_search_leaves_no_empty_output_directory_of_its_own(tmp_path, capsys, monkeypatch):
    """xdl tune's --out (its own flag, not a run's out) made and the search failing after: removed, as xdl train's."""
    out = tmp_path / "nest" / "T"
    load = xdl.datasets.load

    def load_failing_once_out_is_made(*args, **kwargs):
        if out.exists():
            raise OSError(5, "Input/output error")
        return load(*args, **kwargs)

    monkeypatch.setattr(xdl.datasets, "load", load_failing_once_out_is_made)
    assert main(["tune", *FAST[:4], "--trials", "2", "--out", str(out)]) == 1
    assert "Input/output error" in capsys.readouterr().err and not (tmp_path / "nest").exists()


def test_sigterm_stops_a_command_as_ctrl_c_does():
    import signal

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(xdl.cli.Terminated) as stop:
        with xdl.cli.terminate_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # (the handler raises first)
    assert stop.value.signal_name == "SIGTERM" and isinstance(stop.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) == before


def test_an_early_stopped_run_killed_before_its_outputs_is_finished_by_resume_as_it_ended(tmp_path, capsys):
    out = tmp_path / "run"
    options = ["--dataset", "moons", "--hidden", "8", "--epochs", "60", "--patience", "2", "--no-progress",
               "--out", str(out)]
    assert main(["train", *options]) == 0
    first = xdl.load(out / "model.npz").state_dict()
    stopped = json.loads((out / "report.json").read_text())["stopped_epoch"]
    assert stopped is not None and stopped < 60
    (out / "report.json").unlink()  # killed while writing its outputs
    (out / "model.npz").unlink()
    capsys.readouterr()
    assert main(["train", *options]) == 1  # a new run there would replace it
    assert "holds a run that was over (dev cost did not improve for 2 epochs) but whose outputs were not all " \
           "written" in capsys.readouterr().err
    assert main(["train", *options, "--resume", str(out / "checkpoints")]) == 0
    printed = capsys.readouterr()
    assert "nothing to train; it ends as it ended" in printed.out + printed.err
    again = xdl.load(out / "model.npz").state_dict()
    assert all(np.array_equal(first[k], again[k]) for k in first)  # not trained on past its stop
    assert json.loads((out / "report.json").read_text())["stopped_epoch"] == stopped


def test_a_finished_run_whose_checkpoint_was_removed_is_replaced_by_a_new_run(tmp_path, capsys):
    """Its report.json, written last, says the run there finished: the best.npz left alone beside it is
    no run to go on with, and a new run replaces the files, saying so, as over any finished run."""
    out = tmp_path / "run"
    assert main(["train", *FAST, "--epochs", "1", "--out", str(out)]) == 0
    (out / "checkpoints" / "checkpoint.npz").unlink()
    capsys.readouterr()
    assert main(["train", *FAST, "--epochs", "1", "--out", str(out)]) == 0
    assert f"note: --out {str(out)!r} holds a finished run; this run replaces its files" in capsys.readouterr().err
    assert (out / "checkpoints" / "checkpoint.npz").is_file()


def test_a_new_run_never_replaces_a_best_epoch_no_checkpoint_continues(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *FAST, "--out", str(out)]) == 0
    (out / "report.json").unlink()
    (out / "checkpoints" / "checkpoint.npz").write_bytes(b"damaged")
    assert main(["train", *FAST, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "holds a checkpoint no run can continue from" in err and "best.npz' may still hold" in err
    assert main(["train", *FAST, "--out", str(out), "--resume", str(out / "checkpoints")]) == 1
    err = capsys.readouterr().err  # (its resume names the best epoch left beside it too)
    assert err.startswith("xdl train: error: --resume: ") and "best.npz' may still hold the best epoch's state" in err
    (out / "checkpoints" / "checkpoint.npz").unlink()
    assert main(["train", *FAST, "--out", str(out)]) == 1
    assert f"--resume {out / 'checkpoints' / 'best.npz'} (into this --out or another)" in capsys.readouterr().err
    assert (out / "checkpoints" / "best.npz").is_file()
    assert main(["train", *FAST, "--epochs", "4", "--out", str(out), "--resume", str(out / "checkpoints" / "best.npz")]) == 0


def test_a_run_never_writes_over_a_file_of_the_users_in_its_out(tmp_path, capsys):
    """``--out proj`` holding the user's own history.json (or tune's --out a best.toml of theirs): the
    run replaced it without a word. A file of a run's own name that the command did not write is
    refused before any work; a run's own files, left after its checkpoints were removed to start
    afresh (as the refusal of an unfinished run says), are replaced as before."""
    out = tmp_path / "proj"
    out.mkdir()
    for name in ("history.json", "model.npz", "report.json", "curves.png"):
        (out / name).write_text("my notes")
        assert main(["train", *FAST, "--out", str(out)]) == 1
        assert f"--out {str(out)!r} holds {name} that no xdl train wrote" in capsys.readouterr().err
        assert (out / name).read_text() == "my notes" and not (out / "checkpoints").exists()
        (out / name).unlink()
    assert main(["train", *FAST, "--out", str(out)]) == 0
    shutil.rmtree(out / "checkpoints")  # its model, history, report and curves stay: all the run's own
    assert main(["train", *FAST, "--out", str(out)]) == 0
    study = tmp_path / "study"
    study.mkdir()
    (study / "best.toml").write_text("lr = 0.1\n")
    assert main(["tune", "--dataset", "moons", "--epochs", "1", "--trials", "1", "--no-progress",
                 "--out", str(study)]) == 1
    assert f"--out {str(study)!r} holds best.toml that no xdl tune wrote" in capsys.readouterr().err
    assert (study / "best.toml").read_text() == "lr = 0.1\n" and not (study / "trials.json").exists()


def test_a_run_holds_its_out_alone_while_it_runs(tmp_path, capsys):
    from xdl.lock import RUN, DirectoryLock

    out = tmp_path / "run"
    out.mkdir()
    with DirectoryLock(out, "--out", RUN):  # another run at work there (a second process, say)
        assert main(["train", *FAST, "--out", str(out)]) == 1
        assert main(["train", *FAST, "--out", str(out), "--resume", str(out / "checkpoints")]) == 1
    err = capsys.readouterr().err
    assert err.count(f"--out {str(out)!r} is in use by another run: process {os.getpid()}") == 2
    assert "two would each write their checkpoints over the other's" in err
    assert main(["train", *FAST, "--out", str(out)]) == 0 and not (out / "run.lock").exists()


def test_a_second_benchmark_in_one_out_is_refused(tmp_path, capsys):
    from xdl.lock import BENCH, DirectoryLock

    (tmp_path / "B").mkdir()
    with DirectoryLock(tmp_path / "B", "--out", BENCH):
        assert main(["bench", "optimizers", "--quick", "--out", str(tmp_path / "B")]) == 1
    assert "--out" in (err := capsys.readouterr().err) and "is in use by another benchmark" in err


def test_best_toml_leaves_where_a_run_writes_to_the_run(tmp_path):
    """A --config best.toml --resume RUN/checkpoints went on in best.toml's out (xdl-run), not in RUN."""
    from xdl.tune.study import Study

    assert main(["tune", *FAST[:4], "--epochs", "2", "--trials", "2", "--no-progress", "--out", str(tmp_path / "T")]) == 0
    text = (tmp_path / "T" / "best.toml").read_text()
    assert "\nout =" not in "\n" + text and "resume" not in text
    assert Study.load(tmp_path / "T").best_config().out == "xdl-run"


def test_a_resume_into_another_out_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *FAST, "--epochs", "2", "--out", "R"]) == 0
    assert main(["train", *FAST, "--epochs", "3", "--resume", "R/checkpoints", "--out", "S"]) == 0
    assert "the rest of the run goes to --out 'S', not to 'R'" in capsys.readouterr().err


def test_a_resume_into_another_out_refuses_a_lone_best_epoch_of_another_run_there(tmp_path, capsys, monkeypatch):
    """A best.npz alone in --out is taken up by a resume of its own run only: another run's (another seed)
    is a best epoch no checkpoint continues, refused as a new run there refuses it, and left as it was."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", *FAST, "--epochs", "1", "--out", "R"]) == 0
    assert main(["train", *FAST, "--epochs", "1", "--seed", "7", "--out", "S"]) == 0
    for name in ("checkpoints/checkpoint.npz", "report.json"):
        (tmp_path / "S" / name).unlink()
    best = (tmp_path / "S" / "checkpoints" / "best.npz").read_bytes()
    capsys.readouterr()
    assert main(["train", *FAST, "--epochs", "2", "--resume", "R/checkpoints", "--out", "S"]) == 1
    assert "error: --out 'S' holds a run's best epoch" in capsys.readouterr().err
    assert (tmp_path / "S" / "checkpoints" / "best.npz").read_bytes() == best


def test_a_resume_goes_on_in_the_out_of_its_config_file(tmp_path, capsys, monkeypatch):
    """A resume with no --out goes on in its run's directory, but a --config file's ``out = "S"`` is an out given:
    the run goes on there, as with --out S, and the run's own directory is left as it was."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", *FAST, "--epochs", "2", "--out", "R"]) == 0
    before = {path.name: path.read_bytes() for path in (tmp_path / "R").iterdir() if path.is_file()}
    (tmp_path / "c.toml").write_text('out = "S"\n')
    assert main(["train", *FAST, "--epochs", "3", "--config", "c.toml", "--resume", "R/checkpoints"]) == 0
    assert "the rest of the run goes to --out 'S', not to 'R'" in capsys.readouterr().err
    assert len(json.loads((tmp_path / "S" / "history.json").read_text())["records"]) == 3
    assert {path.name: path.read_bytes() for path in (tmp_path / "R").iterdir() if path.is_file()} == before


def test_a_resume_into_another_out_stopped_before_its_first_checkpoint_there_goes_on_by_the_same_command(
        tmp_path, capsys, monkeypatch):
    """A resume into another --out copies the run's best.npz there first; stopped before its first
    checkpoint there (a divergence, whose message says to run the same command again, or a kill), it
    left that copy alone, and the same command was refused ("a run's best epoch but no checkpoint")."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", *FAST, "--epochs", "2", "--out", "R"]) == 0
    Path("S").mkdir()
    Path("S/control.toml").write_text("lr = 1e30\n")  # applied on resuming: diverges in epoch 3
    more = [*FAST[:-3], "--epochs", "4", "--no-progress", "--resume", "R/checkpoints"]
    with np.errstate(all="ignore"):
        assert main(["train", *more, "--out", "S"]) == 1
    assert "write `lr = …` into 'S/control.toml' and run the same command" in capsys.readouterr().err
    assert sorted(p.name for p in Path("S/checkpoints").iterdir()) == ["best.npz"]  # R's, copied in
    Path("S/control.toml").write_text("lr = 0.01\n")
    assert main(["train", *more, "--out", "S"]) == 0
    assert [r["epoch"] for r in json.loads(Path("S/history.json").read_text())["records"]] == [1, 2, 3, 4]
    # a best epoch of another run there is still not written over
    assert main(["train", *FAST, "--epochs", "2", "--seed", "7", "--out", "Q"]) == 0
    Path("T/checkpoints").mkdir(parents=True)
    Path("T/checkpoints/best.npz").write_bytes(Path("Q/checkpoints/best.npz").read_bytes())
    capsys.readouterr()
    assert main(["train", *more, "--out", "T"]) == 1
    assert "holds a run's best epoch" in capsys.readouterr().err


def test_a_resume_into_the_out_of_a_finished_run_replaces_its_best_by_the_runs(tmp_path, capsys, monkeypatch):
    """"this run replaces its files": the best.npz of the run there (another seed) was kept and listed
    as the resumed run's best — xdl.load gave another run's model — until the run did better."""
    from xdl.serialization import read_extra

    monkeypatch.chdir(tmp_path)
    assert main(["train", *FAST[:-3], "--epochs", "2", "--no-progress", "--seed", "7", "--out", "S"]) == 0
    assert main(["train", *FAST[:-3], "--epochs", "2", "--no-progress", "--out", "R"]) == 0
    capsys.readouterr()
    # (its epochs all trained: it ends as it ended, no better epoch to write a best.npz of its own)
    assert main(["train", *FAST[:-3], "--epochs", "2", "--no-progress", "--resume", "R/checkpoints", "--out", "S"]) == 0
    assert "holds a finished run; this run replaces its files" in capsys.readouterr().err
    assert Path("S/checkpoints/best.npz").read_bytes() == Path("R/checkpoints/best.npz").read_bytes()
    assert read_extra("S/checkpoints/best.npz")[0]["seed"] == 0


def test_a_resume_into_another_out_takes_up_a_best_of_the_run_spelt_otherwise(tmp_path, capsys, monkeypatch):
    """The run's best.npz from its first leg (--init normal) under the checkpoint of a leg resumed
    with --init normal(0.01), the same initializer (a resume takes it): a resume into another --out
    stopped before its first checkpoint there left that best.npz, and the same command was refused
    ("a run's best epoch but no checkpoint"), its provenance compared by ``==``, not as a resume's."""
    monkeypatch.chdir(tmp_path)
    leg = [*FAST[:-3], "--no-progress", "--init"]
    assert main(["train", *leg, "normal", "--epochs", "2", "--out", "R"]) == 0
    first_best = Path("R/checkpoints/best.npz").read_bytes()
    assert main(["train", *leg, "normal(0.01)", "--epochs", "3", "--resume", "R/checkpoints"]) == 0
    Path("R/checkpoints/best.npz").write_bytes(first_best)  # (its third epoch no better than its second)
    Path("S").mkdir()
    Path("S/control.toml").write_text("lr = 1e30\n")  # diverges in epoch 4, before S's first checkpoint
    more = [*leg, "normal(0.01)", "--epochs", "5", "--resume", "R/checkpoints", "--out", "S"]
    with np.errstate(all="ignore"):
        assert main(["train", *more]) == 1
    assert sorted(p.name for p in Path("S/checkpoints").iterdir()) == ["best.npz"]
    Path("S/control.toml").write_text("lr = 0.01\n")
    capsys.readouterr()
    assert main(["train", *more]) == 0, capsys.readouterr().err
    assert [r["epoch"] for r in json.loads(Path("S/history.json").read_text())["records"]] == [1, 2, 3, 4, 5]


def test_a_resume_from_a_best_npz_stopped_before_its_first_checkpoint_names_that_file(tmp_path, capsys, monkeypatch):
    """--resume R/checkpoints/best.npz --out S diverging in its first epoch: the message said "run the
    same command with --resume R/checkpoints (its state after epoch 1)", which resumes R's
    checkpoint.npz — after epoch 3, another state. It names the best.npz the run went on from."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", *FAST[:-3], "--epochs", "1", "--no-progress", "--out", "R"]) == 0
    first_best = Path("R/checkpoints/best.npz").read_bytes()
    assert main(["train", *FAST[:-3], "--epochs", "3", "--no-progress", "--resume", "R/checkpoints"]) == 0
    Path("R/checkpoints/best.npz").write_bytes(first_best)  # (its later epochs no better than its first)
    Path("S").mkdir()
    Path("S/control.toml").write_text("lr = 1e30\n")
    capsys.readouterr()
    with np.errstate(all="ignore"):
        assert main(["train", *FAST[:-3], "--epochs", "3", "--no-progress", "--resume", "R/checkpoints/best.npz",
                     "--out", "S"]) == 1
    assert "run the same command with --resume R/checkpoints/best.npz (its state after epoch 1)" in \
        capsys.readouterr().err


def test_a_checkpoints_directory_of_ones_own_does_not_make_a_curves_png_the_runs(tmp_path, capsys):
    """``--out proj`` holding the project's own checkpoints/ (PyTorch's files) and its own curves.png:
    a checkpoints/ directory counted as a run's, and the run wrote over the picture. A run's
    checkpoint there (or its other outputs) makes a curves.png a run's."""
    out = tmp_path / "proj"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "epoch10.pt").write_text("weights")
    (out / "curves.png").write_text("my figure")
    assert main(["train", *FAST, "--out", str(out)]) == 1
    assert f"--out {str(out)!r} holds curves.png that no xdl train wrote" in capsys.readouterr().err
    assert (out / "curves.png").read_text() == "my figure"
    (out / "curves.png").unlink()
    assert main(["train", *FAST, "--out", str(out)]) == 0
    assert main(["train", *FAST, "--out", str(out)]) == 0  # its own curves.png, replaced by a rerun


def test_a_second_search_in_one_out_is_refused_by_its_flag_before_any_output(tmp_path, capsys):
    from xdl.lock import SEARCH, DirectoryLock

    (tmp_path / "T").mkdir()
    with DirectoryLock(tmp_path / "T", "directory", SEARCH):
        assert main(["tune", *FAST[:4], "--trials", "2", "--out", str(tmp_path / "T")]) == 1
    captured = capsys.readouterr()
    assert "--out" in captured.err and "is in use by another search" in captured.err and captured.out == ""
    # --resume of a search at work that has written no trials.json yet: in use, not "no study there"
    with DirectoryLock(tmp_path / "T", "directory", SEARCH):
        assert main(["tune", *FAST[:4], "--trials", "2", "--resume", "--out", str(tmp_path / "T")]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"xdl tune: error: --out {str(tmp_path / 'T')!r} is in use by another search: "
                                   f"process {os.getpid()}") and captured.out == ""
    assert os.listdir(tmp_path / "T") == []  # (nothing written there: the lock was its holder's)


@pytest.mark.parametrize("meta", [{"base": {}}, {"space": {}}, {"base": {}, "space": []}])
def test_a_resumed_study_without_base_options_or_space_is_refused_before_any_trial(tmp_path, capsys, meta):
    """A trials.json whose meta lacks the base options or the space (not xdl tune's) cannot be continued: said
    as such, not a KeyError of the missing half, and the directory is left as it was."""
    (tmp_path / "T").mkdir()
    (tmp_path / "T" / "trials.json").write_text(json.dumps({"meta": meta, "trials": []}))
    assert main(["tune", *FAST[:4], "--trials", "2", "--resume", "--out", str(tmp_path / "T")]) == 1
    assert capsys.readouterr().err == (f"xdl tune: error: --resume: the study in {str(tmp_path / 'T')!r} keeps no "
                                       "base options or space (was it written by xdl tune?)\n")
    assert os.listdir(tmp_path / "T") == ["trials.json"]


def test_gradcheck_refuses_a_config_file_s_resume_naming_the_file_s_key(tmp_path, capsys):
    (tmp_path / "r.toml").write_text('resume = "somewhere"\n')
    assert main(["gradcheck", "--config", str(tmp_path / "r.toml")]) == 2
    assert "--config: resume = 'somewhere' continues an xdl train run" in capsys.readouterr().err


def test_tune_refuses_a_config_file_s_out_it_would_not_write_to(tmp_path, capsys, monkeypatch):
    """out = "runs" in a --config file given to xdl tune was ignored without a word: the study went to
    xdl-tune. Refused before any work; --out the same directory takes the file as it is."""
    monkeypatch.chdir(tmp_path)
    Path("c.toml").write_text('out = "runs"\n')
    assert main(["tune", *FAST, "--trials", "1", "--config", "c.toml"]) == 1
    assert "--config: out = 'runs' is an xdl train run's directory; xdl tune writes its study to --out " \
           "('xdl-tune'): give --out runs" in capsys.readouterr().err
    assert not Path("xdl-tune").exists() and not Path("runs").exists()
    assert main(["tune", *FAST, "--epochs", "1", "--trials", "1", "--config", "c.toml", "--out", "runs"]) == 0
    assert Path("runs/trials.json").is_file()


def test_a_home_shorthand_or_a_second_config_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """out = "~/runs" in a TOML file made a directory named '~' here; a second --config replaced the
    first, unread."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text('dataset = "moons"\nout = "~/runs/a"\n')
    assert main(["train", "--config", "c.toml"]) == 1
    assert "config file 'c.toml': out '~/runs/a' starts with '~', which nothing expands here" in capsys.readouterr().err
    assert main(["train", *FAST, "--out=~/x"]) == 1 and "--out '~/x' starts with '~'" in capsys.readouterr().err
    (tmp_path / "b.toml").write_text('dataset = "circles"\n')
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--config", "c.toml", "--config", "b.toml"])
    assert stopped.value.code == 2 and "--config given twice ('c.toml' and 'b.toml')" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.toml", "c.toml"]


def test_notes_go_to_stderr_and_a_closed_stderr_or_a_reader_gone_stops_nothing(tmp_path):
    """Notes on stdout mixed with the results (and a reader of stdout gone stopped a run, blaming its
    directory); with stderr closed the progress bar failed the run; `| true` ended in status 120."""
    base = [sys.executable, "-m", "xdl", "train", "--dataset", "moons", "--hidden", "8", "--epochs", "3"]
    command = [*base, "--no-progress", "--out", str(tmp_path / "run")]
    assert subprocess.run(command, capture_output=True).returncode == 0
    again = subprocess.run(command, capture_output=True, text=True)
    assert "note: --out" in again.stderr and "note:" not in again.stdout and "accuracy" in again.stdout
    closed = subprocess.run([*base, "--out", str(tmp_path / "run")], stdout=subprocess.PIPE,  # (a bar if it can,
                            stderr=subprocess.DEVNULL, text=True, preexec_fn=lambda: os.close(2))  # and a note)
    assert closed.returncode == 0 and "accuracy" in closed.stdout and "note:" not in closed.stdout
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # (stdout buffered: flushed at the end)
    piped = subprocess.run(f"{subprocess.list2cmdline([*base, '--out', str(tmp_path / 'piped')])} | true",
                           shell=True, capture_output=True, text=True, env=env)
    assert "Exception ignored" not in piped.stderr and (tmp_path / "piped" / "model.npz").is_file()


def test_main_called_with_stderr_closed_leaves_it_closed(monkeypatch, tmp_path):
    """A program calling main with no stderr (pythonw, 2>&-) got sys.stderr back as an open /dev/null,
    never closed (a ResourceWarning at exit), where `for_any_text` says what the stream was is put back."""
    monkeypatch.setattr(sys, "stderr", None)
    assert main(["train", "--dataset", "moons", "--lr", "-1", "--out", str(tmp_path / "run")]) == 1
    assert sys.stderr is None and not (tmp_path / "run").exists()


def test_a_closed_stdout_or_a_character_it_cannot_encode_fails_no_run(tmp_path):
    """The model line's → in an ASCII locale (PYTHONIOENCODING=ascii; LC_ALL=C without Python's UTF-8
    mode, a Latin-1 one) failed the run before it trained; an --out of undecodable bytes failed it after,
    status 1 and the list of its files unsaid; with stdout closed (>&-) a finished run ended in a
    traceback. stdout now writes what it cannot encode as stderr does."""
    base = [sys.executable, "-m", "xdl", "train", *FAST]
    escaped = subprocess.run([*base, "--out", str(tmp_path / "a")], capture_output=True,
                             env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert escaped.returncode == 0, escaped.stderr
    assert b"Standardize \\u2192 Dense(2\\u21928)" in escaped.stdout and b"accuracy" in escaped.stdout
    out = os.fsencode(tmp_path) + b"/run\xff"  # (a name from another system's encoding)
    named = subprocess.run([*base, "--out", out], capture_output=True, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert named.returncode == 0 and out + b"/model.npz\n" in named.stdout, named.stderr
    closed = subprocess.run([*base, "--out", str(tmp_path / "c")], capture_output=True,
                            preexec_fn=lambda: os.close(1))
    assert closed.returncode == 0 and b"Traceback" not in closed.stderr and (tmp_path / "c" / "model.npz").is_file()


def test_a_command_suggested_for_a_directory_named_with_a_dash_can_be_run(tmp_path, capsys, monkeypatch):
    """--out=-t works, but the commands printed for it (`xdl train --config -t/best.toml`, `--resume
    -r/checkpoints`) were refused by argparse: "argument --config: expected one argument"."""
    monkeypatch.chdir(tmp_path)
    assert main(["tune", *FAST, "--epochs", "1", "--trials", "1", "--out=-t"]) == 0
    assert "train it with: xdl train --config ./-t/best.toml" in capsys.readouterr().out
    assert main(["train", "--config", "./-t/best.toml", "--no-progress", "--out=-r"]) == 0
    Path("-r/report.json").unlink()  # (stopped while writing its outputs)
    assert main(["train", *FAST, "--out=-r"]) == 1
    assert "--resume ./-r/checkpoints goes on from there" in capsys.readouterr().err
    assert main(["train", "--resume", "./-r/checkpoints", "--no-progress"]) == 0 and Path("-r/report.json").is_file()


def test_an_output_directory_that_cannot_be_looked_up_is_named(tmp_path, capsys, monkeypatch):
    """A name over 255 bytes failed as "[Errno 36] File name too long: '…'", an --out that cannot be
    searched as "Permission denied: 'out/checkpoints/checkpoint.npz'": neither named --out."""
    monkeypatch.chdir(tmp_path)
    for command in ("train", "tune"):
        assert main([command, *FAST, "--out", "a" * 256]) == 1
        assert capsys.readouterr().err == f"xdl {command}: error: --out {'a' * 256!r} cannot be used: File name too long\n"
    assert main(["bench", "optimizers", "--out", "a" * 256]) == 1  # (a benchmark's, checked before it runs anything)
    assert capsys.readouterr().err == f"xdl bench: error: --out {'a' * 256!r} cannot be used: File name too long\n"
    real_stat = os.stat

    def stat(path, *args, **kwargs):  # (root searches any directory: its refusal, as another user meets it)
        if str(path) == os.path.join("shut", "checkpoints"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    Path("shut").mkdir()
    monkeypatch.setattr(os, "stat", stat)
    assert main(["train", *FAST, "--out", "shut"]) == 1
    assert capsys.readouterr().err == ("xdl train: error: --out 'shut' cannot be used: Permission denied (looking up "
                                       "'shut/checkpoints')\n")
    assert os.listdir("shut") == []


def write_protect(monkeypatch, path) -> None:
    """``os.access`` says ``path`` (alone: in place of one an earlier call named) cannot be written,
    as another user's file reads (root writes any)."""
    real_access = getattr(os.access, "real", os.access)

    def access(name, mode, *args, **kwargs):
        return False if Path(name) == Path(path) and mode & os.W_OK else real_access(name, mode, *args, **kwargs)

    access.real = real_access
    monkeypatch.setattr(os, "access", access)


def test_a_write_protected_output_or_checkpoint_is_refused_before_training(tmp_path, capsys, monkeypatch):
    """A read-only model.npz in --out was found when the run was over and wrote its outputs; a
    read-only checkpoint.npz after the first epoch had trained, its work lost."""
    out = tmp_path / "run"
    assert main(["train", *FAST, "--out", str(out)]) == 0
    capsys.readouterr()
    before = {name: (out / name).read_bytes() for name in ("model.npz", "checkpoints/checkpoint.npz")}
    for name in before:
        write_protect(monkeypatch, out / name)
        assert main(["train", *FAST, "--epochs", "5", "--resume", str(out / "checkpoints")]) == 1
        err = capsys.readouterr().err
        assert f"{out / name}' is write-protected; make it writable, or save elsewhere" in err and "epoch 4" not in err
        assert {name: (out / name).read_bytes() for name in before} == before


def test_a_resume_refused_for_a_write_protected_checkpoint_leaves_the_run_s_files_as_they_were(tmp_path, capsys,
                                                                                                 monkeypatch):
    """A read-only checkpoint.npz or best.npz was found by the Checkpoint once the resumed run's state
    was loaded: the refusal then rewrote the finished run's history.json (its best epoch lost) and
    said "once the directory can be written", of a directory that could be."""
    out = tmp_path / "run"
    assert main(["train", *FAST, "--out", str(out)]) == 0
    capsys.readouterr()
    history = (out / "history.json").read_bytes()
    for name in ("checkpoint.npz", "best.npz"):
        write_protect(monkeypatch, out / "checkpoints" / name)
        assert main(["train", *FAST, "--epochs", "5", "--resume", str(out / "checkpoints")]) == 1
        err = capsys.readouterr().err
        assert err.endswith(f"xdl train: error: --out: '{out / 'checkpoints' / name}' is write-protected; make it "
                            "writable, or save elsewhere\n")
        assert (out / "history.json").read_bytes() == history and not (out / "run.lock").exists()


def test_a_resume_refused_for_a_directory_in_a_checkpoint_s_place_leaves_the_run_s_files_as_they_were(tmp_path,
                                                                                                    capsys):
    """A directory named best.npz (or checkpoint.npz) in the run's checkpoints/ was left to `Checkpoint`,
    which found it once the resumed run's state was loaded: the refusal then rewrote the finished
    run's history.json, and said "once the directory can be written", of a directory that could be."""
    out = tmp_path / "run"
    assert main(["train", *FAST, "--out", str(out)]) == 0
    capsys.readouterr()
    (out / "checkpoints" / "best.npz").unlink()
    (out / "checkpoints" / "best.npz").mkdir()
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    assert main(["train", *FAST, "--epochs", "5", "--resume", str(out / "checkpoints")]) == 1
    assert capsys.readouterr().err == f"xdl train: error: --out: '{out / 'checkpoints' / 'best.npz'}' is a " \
                                      "directory; name the file to write\n"
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == before


def test_a_write_protected_checkpoints_directory_is_refused_before_any_work_and_left_there(tmp_path, capsys,
                                                                                           monkeypatch):
    """An empty checkpoints/ that cannot be written was refused by `Checkpoint` ("Checkpoint directory
    … is not a writable directory") once the data were read and the model built — and then removed,
    a directory the run had not made."""
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    write_protect(monkeypatch, out / "checkpoints")
    assert main(["train", *FAST, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"xdl train: error: --out: directory '{out / 'checkpoints'}' is not writable\n" \
        and captured.out == ""
    assert os.listdir(out) == ["checkpoints"]


def test_a_resume_named_with_a_tilde_or_too_long_a_name_is_refused_naming_resume(tmp_path, capsys, monkeypatch):
    """--resume=~/run/checkpoints (no shell expands it there) was refused as "--out '~/run' starts
    with '~'", an option never typed (the run's directory, where a resume goes on); a name over the
    file system's 255 bytes as a bare "[Errno 36] File name too long"."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", *FAST, "--resume=~/run/checkpoints"]) == 1
    assert capsys.readouterr().err.startswith("xdl train: error: --resume '~/run/checkpoints' starts with '~'")
    long = "r" * 256
    assert main(["train", *FAST, "--resume", long]) == 1
    assert capsys.readouterr().err == f"xdl train: error: --resume {long!r} cannot be used: File name too long\n"
    with pytest.raises(OSError, match=r"^resume 'r{256}' cannot be used: File name too long$"):
        xdl.train.checkpoint_files.resume_path(long)
    (tmp_path / "c.toml").write_text(f"resume = '{long}'\n")  # (a config file's, named as its key there)
    assert main(["train", *FAST, "--config", "c.toml"]) == 1
    assert capsys.readouterr().err == (f"xdl train: error: config file 'c.toml': resume {long!r} cannot be used: "
                                       "File name too long\n")
    assert os.listdir(tmp_path) == ["c.toml"]


@pytest.mark.parametrize("name", ["trials.json", "best.toml", "trials.png"])
def test_a_resumed_search_refuses_a_write_protected_file_before_any_trial(tmp_path, capsys, monkeypatch, name):
    """A read-only best.toml or trials.png was found once the resumed search's trials had trained, and
    refused as "save:" / "plot_study:"; the advice given, to resume again, met the same file."""
    out = tmp_path / "tune"
    assert main(["tune", *FAST[:4], "--epochs", "1", "--trials", "1", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    write_protect(monkeypatch, out / name)
    assert main(["tune", "--resume", "--out", str(out), "--trials", "2", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"xdl tune: error: --out: '{out / name}' is write-protected; make it writable, or save " \
                           "elsewhere\n" and "trial 1" not in captured.out
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


@pytest.mark.parametrize("name", ["results.json", "results.md", "profile.png", "curves-quadratic.png"])
def test_a_benchmark_refuses_a_write_protected_result_before_it_runs(tmp_path, capsys, monkeypatch, name):
    """A read-only result of the benchmark it replaces was found once the new one had run — which
    cannot be resumed: its measurements were lost."""
    out = tmp_path / "bench"
    command = ["bench", "optimizers", "--optimizer", "sgd", "--problem", "quadratic", "--seeds", "1", "--lr", "0.01",
               "--out", str(out)]
    assert main(command) == 0
    capsys.readouterr()
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    write_protect(monkeypatch, out / name)
    assert main(command) == 1
    captured = capsys.readouterr()
    assert captured.err == f"xdl bench: error: --out: '{out / name}' is write-protected; make it writable, or save " \
                           "elsewhere\n" and captured.out == ""
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("command, status", [(["gradcheck", "--elements", "2"], 2), (["lr-find", "--steps", "30"], 1)])
def test_a_reader_gone_is_the_commands_error_status(unbuffered, command, status):
    """A reader of stdout gone (`| head -1`) ends a command as an error: status 1, but xdl gradcheck's 2 (any
    error; its 1 is "the check failed, and nothing else") — a check that passed said 1, failed. The pipe is closed
    before the command writes, so that every line it writes meets a reader gone."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | ({"PYTHONUNBUFFERED": "1"} if unbuffered
                                                                             else {})
    process = subprocess.Popen([sys.executable, "-m", "xdl", *command, "--dataset", "moons", "--hidden", "8"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    process.stdout.close()
    error = process.stderr.read().decode()
    assert process.wait() == status and "error" not in error and "Exception ignored" not in error


def test_an_unbuffered_stdout_whose_reader_has_gone_stops_no_run(tmp_path):
    """With PYTHONUNBUFFERED=1 (as Dockerfiles set it) each line is written as printed: `| head -1`
    made the next one a BrokenPipeError, and the run stopped before it trained, silently, with status 1
    (buffered, the lines left only at the end, and the run was done); `2>&1 | head -1` so at a note."""
    command = [sys.executable, "-m", "xdl", "train", *FAST, "--out", str(tmp_path / "run")]
    piped = subprocess.run(f"{subprocess.list2cmdline(command)} | head -1", shell=True, capture_output=True,
                           text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert piped.stdout.startswith("xdl ") and piped.stdout.count("\n") == 1 and piped.stderr == ""
    assert (tmp_path / "run" / "model.npz").is_file() and (tmp_path / "run" / "report.json").is_file()
    before = (tmp_path / "run" / "model.npz").read_bytes()  # and a note on stderr, through the same pipe:
    both = subprocess.run(f"{subprocess.list2cmdline([*command, '--seed', '1'])} 2>&1 | head -1", shell=True,
                          capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert both.stdout.startswith("xdl ") and (tmp_path / "run" / "model.npz").read_bytes() != before


def test_a_socket_whose_reader_has_gone_stops_no_run_as_a_pipe_s_does(tmp_path):
    """Node's spawn (libuv) gives a command a socket, not a pipe: its reader gone, the next line was a
    BrokenPipeError that ended the run, silently, status 1, where `| head` lets the run finish."""
    import socket

    ours, theirs = socket.socketpair()
    run = subprocess.Popen([sys.executable, "-m", "xdl", "train", *FAST, "--out", str(tmp_path / "run")],
                           stdout=theirs, stderr=subprocess.PIPE)
    theirs.close()
    with ours, ours.makefile("rb") as reader:  # read one line, then go (as `head -1`)
        assert reader.readline().startswith(b"xdl ")
    assert run.communicate(timeout=120)[1] == b"" and run.returncode == 1
    assert (tmp_path / "run" / "model.npz").is_file() and (tmp_path / "run" / "report.json").is_file()


class KernelStream(io.TextIOBase):
    """ipykernel's OutStream as `for_any_text` sees it: text goes to the cell (``shown``); its fileno is
    the kernel process's original stdout (a pipe where the server's output is piped: Docker, a spawner)."""

    encoding = "UTF-8"

    def __init__(self, fd):
        self.shown, self.fd = [], fd

    def write(self, text):
        self.shown.append(text)
        return len(text)

    def fileno(self):
        return self.fd


def test_main_called_in_a_notebook_prints_into_the_cell(tmp_path, monkeypatch):
    """`for_any_text` wrapped the stream's fileno() in a file of its own: ipykernel's stream has no
    line_buffering (an AttributeError before any work), and had it, the run's lines would have gone to
    the kernel's log instead of the cell."""
    read, write = os.pipe()
    cell = KernelStream(write)
    monkeypatch.setattr(sys, "stdout", cell)
    try:
        assert main(["train", *FAST, "--out", str(tmp_path / "run")]) == 0
    finally:
        os.close(write)
    assert sys.stdout is cell and "files written" in "".join(cell.shown)
    with os.fdopen(read, "rb") as log:
        assert log.read() == b""


def test_the_device_kinds_xdl_backend_takes_are_taken_by_the_flag_and_the_config_file(tmp_path, capsys):
    """XDL_BACKEND=cpu was taken, --backend cpu refused by argparse and backend = "cpu" by the config."""
    assert main(["train", *FAST, "--backend", "cpu", "--out", str(tmp_path / "a")]) == 0
    (tmp_path / "c.toml").write_text('backend = "cpu"\n')
    assert main(["train", *FAST, "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "b")]) == 0
    from xdl.sklearn import MLPClassifier

    X, y = xdl.datasets.moons(120)
    assert MLPClassifier(hidden=[4], epochs=1, backend="cpu").fit(X, y).predict(X).shape == (120,)


# -- files of an older xdl -----------------------------------------------------------------------
def _as_before_control(checkpoint: Path, provenance: bool = True) -> None:
    """Rewrite a checkpoint of ``xdl train`` as an xdl before control.toml wrote it: no Control among
    its callbacks (its state, its name, its monitor), and — ``provenance`` False — an xdl before
    provenance, which recorded neither it nor the run's options."""
    from xdl.serialization import read_extra

    extra, arrays = read_extra(checkpoint)
    names = extra["provenance"]["callbacks"]
    i = names.index("Control")
    extra["callbacks"].pop(i)
    arrays = {(f"callback/{int(k.split('/')[1]) - 1}/{k.split('/', 2)[2]}" if k.startswith("callback/")
               and int(k.split("/")[1]) > i else k): v for k, v in arrays.items()
              if not k.startswith(f"callback/{i}/")}
    for key in ("callbacks", "monitors"):
        extra["provenance"][key].pop(i)
    if not provenance:
        del extra["provenance"], extra["run_info"]
    xdl.save(xdl.load(checkpoint), checkpoint, extra=extra, extra_arrays=arrays)


@pytest.mark.parametrize("provenance", [True, False])
def test_a_checkpoint_of_an_xdl_before_control_toml_resumes(tmp_path, capsys, monkeypatch, provenance):
    """A run of an xdl before control.toml goes on without it (a Control added to it is a callback
    the checkpoint has no state for: 'callbacks was ['EarlyStopping', 'Checkpoint'] in the
    checkpoint, this run has [..., 'Control', ...]' — it could not be resumed at all); one of an xdl
    before provenance, whose options are given again, is told the --patience its run had."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", *FAST, "--epochs", "2", "--out", "run"]) == 0
    _as_before_control(tmp_path / "run" / "checkpoints" / "checkpoint.npz", provenance)
    capsys.readouterr()
    if not provenance:  # (its options not recorded: the command's again; --patience 0 is not its run's)
        assert main(["train", *FAST, "--epochs", "4", "--patience", "0", "--resume", "run/checkpoints"]) == 1
        assert "its run had early stopping: give the command's options again" in capsys.readouterr().err
    again = [*FAST, "--epochs", "4"] if not provenance else ["--epochs", "4", "--no-progress"]
    assert main(["train", *again, "--resume", "run/checkpoints"]) == 0
    assert "written by a run without control.toml (an older xdl's)" in capsys.readouterr().err
    assert len(xdl.train.History.load(tmp_path / "run" / "history.json")) == 4
    # a run of --patience 0 held its Checkpoint's state alone: --patience 0 again goes on, and a control.toml
    # written there since is said to be left unread
    assert main(["train", *FAST, "--epochs", "2", "--patience", "0", "--out", "bare"]) == 0
    _as_before_control(tmp_path / "bare" / "checkpoints" / "checkpoint.npz", provenance)
    (tmp_path / "bare" / "control.toml").write_text("lr = 0.01\n")
    capsys.readouterr()
    assert main(["train", *FAST, "--epochs", "3", "--patience", "0", "--resume", "bare/checkpoints"]) == 0
    assert "the run goes on without it (the control.toml there is not read)" in capsys.readouterr().err
    assert len(xdl.train.History.load(tmp_path / "bare" / "history.json")) == 3


def test_main_called_with_its_stdout_readers_gone_keeps_no_descriptor(tmp_path, monkeypatch):
    """Where stdout's reader had gone (a stream of a program's own, which main does not rewrap, its
    flush failing), main pointed its descriptor at a /dev/null it opened and never closed: one
    descriptor more per call from a program (a loop calling main)."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("counts descriptors in /proc/self/fd")
    assert main(["train", *FAST, "--out", str(tmp_path / "first")]) == 0  # (what a first run opens for good: fonts)
    read, write = os.pipe()
    os.close(read)  # the reader gone (| head)

    class Gone(KernelStream):
        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Gone(write))
    before = len(os.listdir("/proc/self/fd"))
    try:
        main(["train", *FAST, "--out", str(tmp_path / "run")])
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        os.close(write)


def test_a_ctrl_c_in_the_last_epoch_says_the_training_is_over_and_the_resume_writes_the_files(tmp_path, capsys,
                                                                                              ctrl_c_in_a_last_epoch):
    """It said "to continue, run the same command with --resume": there was nothing left to train."""
    run = tmp_path / "run"
    assert main(["train", *FAST, "--out", str(run)]) == 130
    err = capsys.readouterr().err
    assert "as its run ended" in err and "its training is over; for its files (model, report, curves), run the " \
        f"same command with --resume {run / 'checkpoints'}" in err and not (run / "model.npz").exists()
    assert main(["train", *FAST, "--out", str(run), "--resume", str(run / "checkpoints")]) == 0
    assert (run / "model.npz").is_file()


def test_a_ctrl_c_as_a_control_file_stops_the_run_says_how_to_continue_not_that_its_training_is_over(
        tmp_path, monkeypatch, capsys):
    """The fit ended with the control file's stop and raised Interrupted(over=True): "its training is over;
    for its files, resume" — and the resume trained the run's other epochs (a control file's stop goes on)."""
    import signal

    from xdl.train import Trainer

    epoch, sent = Trainer._train_epoch, []

    def ctrl_c_in_epoch_1(self, *args):  # once, after its steps, before its record
        record = epoch(self, *args)
        if not sent:
            sent.append(os.kill(os.getpid(), signal.SIGINT))
        return record

    monkeypatch.setattr(Trainer, "_train_epoch", ctrl_c_in_epoch_1)
    run = tmp_path / "run"
    run.mkdir()
    (run / "control.toml").write_text("stop = true\n")
    os.utime(run / "control.toml", (1e9, 1e9))  # (settled: read at epoch 1's end)
    assert main(["train", *FAST, "--out", str(run)]) == 130
    err = capsys.readouterr().err
    assert "control.toml at epoch 1: stop" in err and "its training is over" not in err
    assert f"to continue, run the same command with --resume {run / 'checkpoints'}" in err


def test_xdl_train_says_a_model_that_predicts_one_class_learned_nothing():
    """Adam at lr 1 without batch norm on digits predicted one class (10%) and was told "train a bigger
    network"; the first step now names the class and a smaller rate."""
    from xdl.cli import ONE_CLASS
    from xdl.cli.commands.train import _one_class

    xdl.seed(0)  # (weights drawn unseeded predicted one class for the varied inputs below once in 30 runs)
    model = xdl.nn.mlp(4, [3], 3)
    with xdl.no_grad():
        model.parameters()[-1].data[...] = np.array([0.0, 50.0, 0.0], dtype=np.float32)  # the last bias: class 1
    X = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    one = _one_class(model, X, 3)
    assert one == {"label": 1, "share": 1.0}
    step = ONE_CLASS.format(**one, ln_c=float(np.log(3)), lower=0.3 / 10)
    assert "class 1 for 100.0%" in step and step.endswith("try --lr 0.03")
    with xdl.no_grad():
        model.parameters()[-1].data[...] = 0
    assert _one_class(model, X * 100, 3) is None  # predictions that vary


def test_xdl_train_tells_a_model_too_slow_to_leave_one_class_to_train_on_not_to_lower_its_rate(tmp_path, capsys):
    """A small start and a rate too small to move it (cost ln 2 throughout) predicts one class too: it was told
    "a rate too large does this … try --lr 1e-07", a rate that learns less still, and not to train longer."""
    run = ["train", *FAST, "--epochs", "2", "--lr", "1e-6", "--init", "normal(0.001)", "--no-batch-norm",
           "--dropout", "0", "--schedule", "none"]
    assert main([*run, "--out", str(tmp_path / "slow")]) == 0
    out = capsys.readouterr().out
    assert "avoidable bias 50.00%" in out and "predicts class" not in out and "try --lr" not in out
    assert "train longer" in out
    from xdl.cli.commands.train import _rose_above_ln_c
    from xdl.train.history import History

    rose, stayed = History(), History()
    for epoch, (high, low) in enumerate(((15.2, 0.69315), (2.34, 0.69314))):  # Adam at lr 1 on digits: 15, then ln 10
        rose.append({"epoch": epoch + 1, "train_cost": high})
        stayed.append({"epoch": epoch + 1, "train_cost": low})
    assert _rose_above_ln_c(rose, 10) and not _rose_above_ln_c(stayed, 2)


def test_tune_resume_names_a_config_files_option_by_its_key(tmp_path, capsys):
    # a resumed study refused for an option its --config file changed names the file's key, not a flag never typed
    out = tmp_path / "study"
    assert main(["tune", *FAST[:4], "--epochs", "1", "--trials", "1", "--no-progress", "--out", str(out)]) == 0
    config = tmp_path / "c.toml"
    config.write_text("batch_size = 32\n")  # (not searched: the default space's are not compared)
    capsys.readouterr()
    assert main(["tune", "--resume", "--out", str(out), "--config", str(config), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"batch_size (in {str(config)!r}) 64, this one has 32" in err and "--batch-size" not in err
    assert main(["tune", "--resume", "--out", str(out), "--batch-size", "32", "--no-progress"]) == 1
    assert "--batch-size 64, this one has 32" in capsys.readouterr().err  # a flag typed is named as one


def test_a_run_that_stopped_early_is_not_told_to_stop_early(tmp_path, capsys):
    """--patience restores the lowest dev cost's weights: "stop early on the dev cost", among a high
    variance's next steps, asked for what the run had done, and changes nothing followed."""
    assert main(["train", "--hidden", "32", "--dropout", "0", "--epochs", "16", "--patience", "2", "--no-progress",
                 "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["best_epoch"] is not None and report["diagnosis"]["verdict"] == "high variance"
    accuracies = {f"{part}_accuracy": report["metrics"][part]["accuracy"] for part in ("train", "dev")}
    assert "stop early on the dev cost" in xdl.diagnose(accuracies).next_steps
    assert "stop early on the dev cost" not in report["diagnosis"]["next_steps"]


def test_a_configs_trainer_takes_its_options_progress_and_penalties_included():
    """``--no-progress`` is a Trainer without a bar, ``progress`` (the default) one on a terminal only
    (None); l2 and l1 are the trainer's — a trainer built without them trained as the defaults, unsaid
    where no terminal shows the bar."""
    model = TrainConfig(hidden=[4]).build_model(2, 2)
    assert TrainConfig(hidden=[4]).build_trainer(model).progress is None
    trainer = TrainConfig(hidden=[4], progress=False, l2=0.25, l1=0.5).build_trainer(model)
    assert trainer.progress is False and (trainer.l2, trainer.l1) == (0.25, 0.5)


def _diverging_at_epoch_two(monkeypatch, advice: str) -> None:
    """The trainer's check at epoch 2's end diverges with ``advice``: a patch, as no natural input reaches each
    advice after a checkpoint (an optimizer's state overflowing, say, in a 3-epoch moons run)."""
    from xdl.train.trainer import Trainer

    check = Trainer._check_record

    def diverging(self, record, steps, *flags):
        if record["epoch"] == 2:
            raise self._diverged("the test's divergence at the end of epoch 2", advice)
        return check(self, record, steps, *flags)

    monkeypatch.setattr(Trainer, "_check_record", diverging)


ADVICES = {  # advice → whether it is the rate's (control.toml's lr is the way on)
    divergence.RATE_ADVICE: True,
    divergence.RATE_ADVICE + ", or a smaller l2: …": True,
    divergence.state_advice(0.0): False,
    divergence.state_advice(0.5): False,
    divergence.FIRST_FORWARD_ADVICE: False,
    divergence.first_step_advice(standardized=True): False,
}


@pytest.mark.parametrize("kept", ["checkpoint", "best"])
@pytest.mark.parametrize("advice", ADVICES)
def test_a_divergences_way_on_fits_its_advice(tmp_path, capsys, monkeypatch, advice, kept):
    """After a divergence the error said to write `lr = …` into control.toml and resume whatever its advice
    was, after "the learning rate is not the cause" too: the rate's way only where the advice is the rate's,
    else a new run's (its options are the change; a resume keeps them)."""
    _diverging_at_epoch_two(monkeypatch, advice)
    out = tmp_path / "run"
    every = ["--checkpoint-every", "0"] if kept == "best" else []
    assert main(["train", *FAST, *every, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    resume = out / "checkpoints" / ("best.npz" if kept == "best" else "")
    assert "training diverged: the test's divergence at the end of epoch 2; the " in err and advice in err
    state = "its best epoch" if kept == "best" else "the last good state"
    assert (f"to do so from {state}, write `lr = …` into '{out / 'control.toml'}' and run the same command with "
            f"--resume {resume}" in err) is ADVICES[advice]
    assert ("a new run makes that change (another --out, without --resume: a resume keeps the run's options)"
            in err) is not ADVICES[advice]


@pytest.mark.parametrize("flags, refused", [
    (["--lr", "0.5"], ["--lr"]),
    (["--optimizer", "sgd", "--lr", "0.5", "--batch-size", "8"], ["--optimizer", "--lr", "--batch-size"]),
    (["--schedule", "inverse_time", "--decay-rate", "0.5"], ["--schedule", "--decay-rate"]),
    (["--weight-decay", "0.1", "--max-grad-norm", "1", "--base-error", "0.1"],
     ["--weight-decay", "--max-grad-norm", "--base-error"]),
])
def test_gradcheck_refuses_the_training_flags_it_does_not_read(capsys, flags, refused):
    """xdl gradcheck took --lr, --optimizer, --schedule, … (which it does not read: it checks J of the model the
    options build, at its initial weights) and noted them as ignored after its work had begun, where a run's other
    flags (--epochs, --out) are refused before any work: they are refused alike, named together with why."""
    status, (out, err) = main(["gradcheck", "--dataset", "moons", "--hidden", "4", "--dropout", "0", *flags]), \
        capsys.readouterr()
    assert status == 2 and out == "", out
    why = xdl.cli.GRADCHECK_REFUSES[refused[0].removeprefix("--").replace("-", "_")]
    assert err == f"xdl gradcheck: error: {', '.join(refused)} {'is' if len(refused) == 1 else 'are'} {why}\n", err


def test_gradcheck_reads_or_refuses_every_option_of_a_run():
    """Each option of a run is read by xdl gradcheck (`GRADCHECK_READS`) or refused as a flag (`GRADCHECK_REFUSES`),
    never both, never neither (a flag neither read nor refused would be ignored)."""
    reads, refuses = set(xdl.cli.GRADCHECK_READS), set(xdl.cli.GRADCHECK_REFUSES)
    assert reads | refuses == {f.name for f in dataclasses.fields(TrainConfig)} and not reads & refuses


def test_xdl_train_without_matplotlib_writes_every_other_output_and_says_why_there_are_no_curves(
        tmp_path, capsys, monkeypatch):
    """matplotlib is an extra (xdl[plot]): a run without it trains, writes its model, history and report, and
    lists the curves it could not draw with the reason, not an error after the training."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # (an import of it raises ImportError)
    out = tmp_path / "run"
    assert main(["train", *FAST, "--epochs", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(no curves.png: plots need matplotlib: pip install 'xdl[plot]'" in printed
    assert not (out / "curves.png").exists()
    assert {"model.npz", "history.json", "report.json"} <= {p.name for p in out.iterdir()}


def _commands_with_an_out_flag():
    """Each command (its words: ("bench", "optimizers")) whose --out, shown in its help, names a directory."""
    from xdl.cli import build_parser
    from xdl.cli.parser_flags import shown_actions
    return [command for command, action in shown_actions(build_parser()) if "--out" in action.option_strings]


def test_every_command_s_out_named_as_a_model_file_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """xdl train --out best.npz made a directory named best.npz (holding model.npz) without a word, as
    Checkpoint("best.npz") did: every command's --out (and a --config file's out) named with a model file's
    suffix, that is no directory yet, is refused before any work, naming the directory meant; nothing is made."""
    from xdl.train.checkpoint import MODEL_FILE_SUFFIXES
    commands = _commands_with_an_out_flag()
    assert sorted(commands) == [("bench", "optimizers"), ("train",), ("tune",)]
    monkeypatch.chdir(tmp_path)
    cases = 0
    for words in commands:
        for suffix in MODEL_FILE_SUFFIXES:
            for stem, spelled in itertools.product(("best", "runs/v1.2/model"), (suffix, suffix.upper())):
                out = f"{stem}{spelled}"
                given = [["--out", out]]
                if words == ("train",):  # (a --config file's out too)
                    Path("run.toml").write_text(f"out = {out!r}\n")
                    given.append(["--config", "run.toml"])
                for flags in given:
                    assert main([*words, *flags]) == 1
                    said = capsys.readouterr().err
                    assert said == (f"xdl {words[0]}: error: --out {out!r} is named as a {Path(out).suffix} file, but "
                                    f"it names the directory xdl {words[0]} writes its files in (it would be made as a "
                                    f"directory of that name): give a directory's name, --out {stem!r}\n"), said
                    cases += 1
                assert sorted(p.name for p in tmp_path.iterdir()) == (["run.toml"] if words == ("train",) else [])
        Path("run.toml").unlink(missing_ok=True)
    assert cases == 4 * len(MODEL_FILE_SUFFIXES) * (2 + 1 + 1)


def test_an_out_of_a_model_file_s_name_that_is_a_directory_already_or_another_name_is_taken(tmp_path, monkeypatch):
    """The check refuses only what would be made as a directory named as a file: one that exists is the user's,
    and names without a model file's suffix (v1.2, best.npz.d, .npz) are directories' names."""
    from xdl.cli.output_directory import check_out_named_as_directory
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kept.npz").mkdir()
    for out in ("kept.npz", "runs/v1.2", "best.npz.d", ".npz", "results.json", "xdl-run", tmp_path / "kept.npz"):
        for command in ("train", "tune", "bench"):
            assert check_out_named_as_directory(Path(out), command) is None


def _config_file(path: Path, options: dict) -> Path:
    """``path`` written as a TOML file of ``options``."""
    def value(v):
        return "true" if v is True else "false" if v is False else json.dumps(v)

    path.write_text("".join(f"{key} = {value(v)}\n" for key, v in options.items()))
    return path


def test_a_config_key_one_letter_off_is_refused_naming_the_file_and_the_key_meant(tmp_path, capsys):
    """An unknown --config key was refused with every known key after it, the one meant among them: every
    option's name with one letter left out (where that is no other option's so) is refused naming the file,
    the key and the option as the closest known key, before any work."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    cases = 0
    for name in names:
        for typo in {name[:i] + name[i + 1:] for i in range(len(name))}:
            meant = {other for other in names if typo in {other[:i] + other[i + 1:] for i in range(len(other))}}
            if meant != {name} or not typo.strip("_"):  # (l of l1 and l2, beta of beta1 and beta2: no one key)
                continue
            config = _config_file(tmp_path / "run.toml", {"epochs": 1, typo: 1})
            assert main(["train", "--config", str(config), "--out", str(tmp_path / "out")]) == 1
            said = capsys.readouterr().err
            assert said.startswith(f"xdl train: error: config file {str(config)!r}: unknown key {typo!r} (closest "
                                   f"known key: {name!r}); known keys: dataset, "), said
            cases += 1
    assert cases > 250 and sorted(p.name for p in tmp_path.iterdir()) == ["run.toml"]


def test_a_config_key_that_is_a_command_s_flag_is_refused_naming_the_flag(tmp_path, capsys):
    """A --config key that is no option of a run but another command's flag (lr-find's steps, tune's trials)
    was refused with the known keys, or named as the closest option ('steps' → 'eps'): every such flag of
    every command, as a key (both spellings), is refused by every command that reads a --config file, naming
    the key, the file and the flag, before any work."""
    from xdl.cli import build_parser
    from xdl.cli.parser_flags import command_flags
    flags = command_flags(build_parser())  # key → the commands' flags ("xdl tune --trials")
    assert {"xdl lr-find --steps", "xdl tune --trials", "xdl gradcheck --elements"} <= {*sum(flags.values(), [])}
    cases = 0
    for named in flags.values():
        flag = named[0].split()[-1]
        for key in {flag[2:], flag[2:].replace("-", "_")}:
            config = _config_file(tmp_path / "run.toml", {key: 1})
            for command in ("train", "tune", "lr-find", "gradcheck"):
                assert main([command, "--config", str(config)]) == (2 if command == "gradcheck" else 1)
                said = capsys.readouterr().err
                assert said.startswith(f"xdl {command}: error: config file {str(config)!r}: unknown key {key!r}: a "
                                       "config file holds a run's options (xdl train --help), and "), said
                own = [f for f in named if f.split()[1] == command]  # (its own flag: the one to give instead)
                assert said.endswith(f"the flag {own[0]}: give it on the command line\n" if own else
                                     f"the flag {' and '.join(named)}, which xdl {command} has not\n"), said
                cases += 1
    assert cases >= 4 * len(flags) and sorted(p.name for p in tmp_path.iterdir()) == ["run.toml"]


def test_every_option_a_command_takes_is_a_config_key_it_accepts(tmp_path, monkeypatch):
    """The keys a --config file may hold stay accepted: for each command that reads one, every option of a run
    it takes as a flag (from its parser), with its default value, in both spellings, makes the config; and so
    does every option but resume (best.toml's keys: a command ignores a run's options it has no use for)."""
    import argparse

    from xdl.cli import build_parser
    monkeypatch.delenv("XDL_BACKEND", raising=False)
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    defaults = TrainConfig()
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    cases = 0
    for command in ("train", "tune", "lr-find", "gradcheck"):
        keys = {action.dest for action in commands[command]._actions
                if action.dest in fields and action.help != argparse.SUPPRESS}
        assert len(keys) >= 10 and ("out" in keys) == (command == "train"), (command, keys)
        for keys, spelled in itertools.product((keys, set(fields) - {"resume"}),
                                               (lambda key: key, lambda key: key.replace("_", "-"))):
            config = _config_file(tmp_path / f"{command}.toml",
                                  {spelled(key): getattr(defaults, key) for key in sorted(keys)})
            args = parser.parse_args([command, "--config", str(config)])
            made = xdl.cli.config_from_args(args, parser)
            assert all(getattr(made, key) == getattr(defaults, key) for key in keys), command
            cases += len(keys)
    assert cases > 4 * 2 * (10 + 37)


def test_reraised_os_errors_keep_their_type_and_errno_with_the_readable_message(tmp_path, monkeypatch):
    """check_writable_dir, check_reachable and read_toml re-raised an OSError as type(e)(message): its errno was
    None, so a caller's ``e.errno == errno.EACCES`` failed. Each errno a file system gives, at each of the
    three places, comes back of its type, with its errno and the message naming the option and the path."""
    import errno

    from xdl.files import check_reachable, check_writable_dir, read_toml
    codes = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EIO, errno.ENOTDIR, errno.ELOOP,
             errno.ENAMETOOLONG, errno.EDQUOT, errno.ENOENT, errno.EISDIR)
    path = tmp_path / "run"
    cases = 0
    for code in codes:
        def failing(*args, code=code, **kwargs):
            raise OSError(code, os.strerror(code), str(path))

        expected = type(OSError(code, "x"))  # (PermissionError for EACCES, as Python makes it)
        for where, call, said in (
                ("mkdir", lambda: check_writable_dir(path, "--out"), f"--out {str(path)!r} cannot be created"),
                ("stat", lambda: check_reachable(path, "--out"), f"--out {str(path)!r} cannot be used"),
                ("open", lambda: read_toml(path, "--config"), "--config")):
            if where == "stat" and code in (errno.ENOENT, errno.ENOTDIR):
                continue  # (missing is fine there: made later)
            with monkeypatch.context() as patched:
                if where == "stat":
                    patched.setattr(os, "stat", failing)
                else:
                    patched.setattr(Path, where, failing)
                with pytest.raises(OSError) as raised:
                    call()
            error = raised.value
            assert type(error) is expected and error.errno == code, (where, code, error)
            assert str(error).startswith(said) and "[Errno" not in str(error), str(error)
            cases += 1
    assert cases == 3 * len(codes) - 2


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_diverging_run_prints_its_divergence_and_no_note_of_numpys_overflow(tmp_path, capsys, optimizer):
    """The CLI turns warnings into notes: "note: overflow encountered in matmul" and "note: invalid value
    encountered in subtract" came before the run's own error, which names what happened."""
    assert main(["train", *FAST, "--optimizer", optimizer, "--lr", "1e30", "--no-batch-norm", "--schedule", "none",
                 "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "error: training diverged: the cost became nan at epoch 1, step " in err
    assert "encountered" not in err, err
