"""Nothing is lost on divergence, interruption or resume, and every input is checked where it enters:
each case asserts the message names the argument or option and that nothing in memory or on disk
was lost or half-changed."""

import importlib.util
import json
import os
import signal
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import StopAtEpoch, edit_saved

import xdl
from xdl.data import split
from xdl.losses import BinaryCrossEntropy, SoftmaxCrossEntropy
from xdl.optim import SGD, Adam, Momentum
from xdl.train import Callback, Checkpoint, EarlyStopping, Interrupted, Trainer

ROOT = Path(__file__).resolve().parents[1]


def moons(m=600, seed=0):
    X, y = xdl.datasets.moons(m, noise=0.2, seed=seed)
    return split(X, y, seed=seed)


def trainer_for(epochs=6, callbacks=(), optimizer=Adam, seed=0, activation="relu", dropout=0.2, **kwargs):
    xdl.seed(seed)
    model = xdl.nn.mlp(2, [16, 8], 2, batch_norm=True, dropout=dropout, activation=activation)
    return Trainer(model, kwargs.pop("loss", SoftmaxCrossEntropy()), optimizer(model, lr=kwargs.pop("lr", 0.01)),
                   epochs=epochs, callbacks=list(callbacks), seed=seed, progress=False, batch_size=32, **kwargs)


def state_of(trainer):
    return {**trainer.model.state_dict(),
            **{f"opt{i}": a for i, a in enumerate(a for g in trainer.optimizer.state_dict()["state"]
                                                   for st in g for a in st.values())}}


def assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# -- divergence --------------------------------------------------------------------------------
class Corrupt(Callback):
    """After the checkpoint of epoch ``at`` is written (order > Checkpoint's), break the run."""

    order = 200

    def __init__(self, at, how):
        self.at, self.how = at, how

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.at:
            self.how(trainer.model)


def test_divergence_keeps_the_last_good_checkpoint_and_names_it(tmp_path):
    s = moons()
    ckpt = Checkpoint(tmp_path)

    def blow_up(model):
        model.parameters()[0].data[...] = np.inf  # the next step's cost is NaN

    trainer = trainer_for(epochs=6, callbacks=[ckpt, Corrupt(3, blow_up)])
    with pytest.raises(FloatingPointError) as error, np.errstate(all="ignore"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    message = str(error.value)
    assert "at epoch 4, step 1" in message and "after epoch 3" in message and str(ckpt.path) in message
    saved = xdl.load(ckpt.path)  # the good state of epoch 3, not the diverged one
    assert all(np.isfinite(v).all() for v in saved.state_dict().values())
    resumed = trainer_for(epochs=5, callbacks=[Checkpoint(tmp_path), Corrupt(None, blow_up)])  # and it resumes
    resumed.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=tmp_path)
    assert resumed.history["epoch"] == [1, 2, 3, 4, 5] and np.isfinite(resumed.history["train_cost"]).all()


@pytest.mark.parametrize("failing", ["checkpoint.npz", "best.npz"])
def test_a_failed_checkpoint_write_names_the_file_and_keeps_the_previous_one(tmp_path, disk_full_from, failing):
    s = moons()
    ckpt = Checkpoint(tmp_path, monitor="train_cost")  # improves every epoch here: best.npz, then checkpoint.npz
    disk_full_from(6 if failing == "checkpoint.npz" else 5)  # epoch 3's
    trainer = trainer_for(epochs=6, callbacks=[ckpt])
    with pytest.raises(OSError, match=rf"writing the checkpoint '{tmp_path / failing}' after epoch 3 failed: "
                                      r".*No space left on device; .* holds what it held before"):
        trainer.fit(s.X_train, s.y_train)
    disk_full_from(None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz", "checkpoint.npz"]  # no temporary left
    assert xdl.serialization.read_extra(ckpt.path)[0]["epoch"] == 2 and trainer.last_checkpoint_at == (2, 0)
    best_epoch = xdl.serialization.read_extra(ckpt.best_path)[0]["epoch"]
    # checkpoint.npz never names a best score that best.npz does not hold; nor does the callback
    assert best_epoch == (3 if failing == "checkpoint.npz" else 2)
    assert ckpt.best == trainer.history.records[best_epoch - 1]["train_cost"]



@pytest.mark.parametrize("failing", ["best.npz", "checkpoint.npz"])
def test_a_failed_first_checkpoint_write_says_no_file_was_kept(tmp_path, disk_full_from, failing):
    """The first write of a file failing leaves none there: the error does not say it "holds what it held
    before" (a file the user would look for in vain)."""
    s = moons()
    disk_full_from(1 if failing == "best.npz" else 2)  # epoch 1's best.npz, then its checkpoint.npz
    with pytest.raises(OSError, match=rf"writing the checkpoint '{tmp_path / failing}' after epoch 1 failed: "
                                      r".*No space left on device$"):
        trainer_for(epochs=2, callbacks=[Checkpoint(tmp_path, monitor="train_cost")]).fit(s.X_train, s.y_train)
    disk_full_from(None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if failing == "best.npz" else ["best.npz"])

def test_divergence_before_the_first_checkpoint_says_none_was_written_yet(tmp_path):
    s = moons()
    trainer = trainer_for(epochs=3, callbacks=[Checkpoint(tmp_path)], lr=1e30)
    with pytest.raises(FloatingPointError, match="at epoch 1, .*no good state was saved yet"), np.errstate(all="ignore"):
        trainer.fit(s.X_train, s.y_train)
    assert not (tmp_path / "checkpoint.npz").exists()


def test_a_non_finite_epoch_end_cost_stops_before_the_checkpoint_is_written(tmp_path):
    s = moons()
    ckpt = Checkpoint(tmp_path)

    def poison_running_variance(model):  # training (batch statistics) is fine, evaluation is NaN
        for _, module in model.named_modules():
            if isinstance(module, xdl.nn.BatchNorm):
                module.running_var[...] = -1e6

    trainer = trainer_for(epochs=6, callbacks=[ckpt, Corrupt(2, poison_running_variance)], eval_train=False)
    with pytest.raises(FloatingPointError, match=r"the dev cost became nan at the end of epoch 3 \(after step \d+\)"), \
            np.errstate(all="ignore"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    with np.errstate(invalid="ignore"):
        extra, _ = xdl.serialization.read_extra(ckpt.path)
    assert extra["epoch"] == 2 and all(np.isfinite(r["dev_cost"]) for r in extra["history"]["records"])
    assert json.dumps(extra)  # nothing NaN was written


def test_checkpoints_keep_the_last_and_the_best_epoch(tmp_path):
    s = moons(200)
    trainer = trainer_for(epochs=8, callbacks=[Checkpoint(tmp_path)], lr=0.05)
    history = trainer.fit(s.X_train[:40], s.y_train[:40], dev=(s.X_dev, s.y_dev))
    best_epoch = int(np.argmin(history["dev_cost"])) + 1
    best_extra, _ = xdl.serialization.read_extra(tmp_path / "best.npz")
    last_extra, _ = xdl.serialization.read_extra(tmp_path / "checkpoint.npz")
    assert best_extra["epoch"] == best_epoch and last_extra["epoch"] == 8
    best = xdl.load(tmp_path / "best.npz")
    assert trainer.evaluate(s.X_dev, s.y_dev)["cost"] >= Trainer(
        best, SoftmaxCrossEntropy(), SGD(best)).evaluate(s.X_dev, s.y_dev)["cost"] - 1e-9


# -- options checked before any work -----------------------------------------------------------
@pytest.mark.parametrize("flags, message", [
    (["--base-error", "2", "--epochs", "40"], "--base-error must be in [0, 1)"),
    (["--schedule", "step", "--decay-factor", "0"], "--decay-factor must be a finite number > 0, got 0.0"),
    (["--decay-base", "-1"], "--decay-base must be a finite number > 0, got -1.0"),
    (["--schedule", "step", "--decay-factor", "1e30", "--epochs", "200"],
     "schedule 'step' (lr=0.003, decay_factor=1e+30, decay_every=10) gives lr 3e+57 at epoch 21 of 200; "
     "the rate must stay at most 3.4e+38, float32's largest number"),
    (["--beta1", "1"], "--beta1 must be in [0, 1)"),
    (["--hidden", str(2**63)], "--hidden must be a non-empty list of sizes in [1, 1,048,576], got [9223372036854775808]"),
    (["--eps", "0"], "--eps must be a finite number > 0"),
])
def test_options_are_checked_before_any_work(tmp_path, capsys, monkeypatch, flags, message):
    from xdl import cli
    from xdl.cli import parser

    def training(*args, **kwargs):
        raise AssertionError("trained before the options were checked")

    monkeypatch.setattr(parser, "train", training)  # (the command's run, as `build_parser` sets it)
    out = tmp_path / "run"
    assert cli.main(["train", *flags, "--out", str(out), "--no-progress"]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing trained, nothing written


def test_trainer_checks_every_planned_learning_rate_first():
    s = moons(100)
    trainer = trainer_for(epochs=10, schedule=lambda epoch: 0.01 - 0.002 * epoch)
    before = state_of(trainer)
    with pytest.raises(ValueError, match=r"schedule\(6\) \(the rate of epoch 7\) is -0.002"):
        trainer.fit(s.X_train, s.y_train)
    assert_same_state(before, state_of(trainer))
    xdl.seed(0)
    model = xdl.nn.mlp(2, [4], 2)
    per_step = Trainer(model, SoftmaxCrossEntropy(), SGD(model, lr=lambda t: 1.0 if t < 3 else float("nan")),
                       epochs=5, progress=False)
    with pytest.raises(ValueError, match="the optimizer's lr schedule at step 3 .* is nan"):
        per_step.fit(s.X_train, s.y_train)
    with pytest.raises(ValueError, match=r"lr is 1e-50: .*float32's positive range"):  # 0 in float32: refused when set
        SGD(model, lr=1e-50)


def test_a_schedule_that_decays_below_float32s_smallest_rate_runs_at_0_as_pytorchs():
    """Refused up front before (an exponential decay over many epochs), while one reaching exactly 0
    ran; a rate that small is 0 in the update either way. A first rate that small stays refused."""
    s = moons(100)
    trainer = trainer_for(epochs=3, schedule=lambda epoch: 0.01 if epoch == 0 else 1e-46)
    trainer.fit(s.X_train, s.y_train)
    assert trainer.history["lr"] == [0.01, 0.0, 0.0]
    xdl.seed(0)
    model = xdl.nn.mlp(2, [4], 2)
    per_step = Trainer(model, SoftmaxCrossEntropy(), SGD(model, lr=lambda t: 0.1 * 1e-25 ** t), epochs=2, progress=False)
    per_step.fit(s.X_train, s.y_train)  # steps 2 on: 1e-26, 1e-51 (0 in float32), …
    with pytest.raises(ValueError, match=r"schedule\(0\) \(the rate of epoch 1\) is 1e-46: a learning rate must be"):
        trainer_for(epochs=3, schedule=lambda epoch: 1e-46).fit(s.X_train, s.y_train)


@pytest.mark.parametrize("first", [1e-46, 1e-300])
def test_a_first_rate_too_small_for_float32_that_a_callback_schedules_is_refused_at_the_epochs_start(first):
    """A schedule set by a callback's on_train_begin is read first at epoch 1's start, past the checks before
    the run: its first rate below float32's smallest (1.4e-45) is refused there as before the run — not run
    at 0 as a decayed rate is (an epoch that trains nothing, unsaid)."""

    class ScheduleAtBegin(Callback):
        def on_train_begin(self, trainer):
            trainer.schedule = lambda epoch: first

    s = moons(100)
    trainer = trainer_for(epochs=2, callbacks=[ScheduleAtBegin()])
    with pytest.raises(ValueError, match=r"schedule\(0\) \(the rate of epoch 1\) is 1e-\d+: a learning rate must be"):
        trainer.fit(s.X_train, s.y_train)
    assert len(trainer.history) == 0


def test_a_schedule_returning_a_0d_array_is_a_rate_to_the_trainer_as_to_the_optimizer():
    """np.where(e < 5, 0.1, 0.01) is array(0.1): the optimizer took it, the Trainer refused it as
    outside float32's positive range; None was refused as outside it too."""
    s = moons(100)
    schedule = lambda count: np.where(count < 2, 0.1, 0.01)  # noqa: E731
    assert trainer_for(epochs=3, schedule=schedule).fit(s.X_train, s.y_train)["lr"] == [0.1, 0.1, 0.01]
    xdl.seed(0)
    model = xdl.nn.mlp(2, [4], 2)
    Trainer(model, SoftmaxCrossEntropy(), SGD(model, lr=schedule), epochs=1, progress=False).fit(s.X_train, s.y_train)
    with pytest.raises(TypeError, match=r"the lr schedule '<lambda>' returned None at count 0; a schedule returns a "
                                        r"number"):
        trainer_for(epochs=2, schedule=lambda e: None).fit(s.X_train, s.y_train)


def test_a_run_of_any_length_starts_at_once_and_a_late_bad_rate_stops_it_when_it_comes(monkeypatch):
    epochs_read = []
    build_schedule = xdl.config.TrainConfig.build_schedule

    def counted(config):
        schedule = build_schedule(config)
        return None if schedule is None else (lambda epoch: epochs_read.append(epoch) or schedule(epoch))

    monkeypatch.setattr(xdl.config.TrainConfig, "build_schedule", counted)
    with pytest.raises(ValueError, match=r"gives lr 5.23e\+38 at epoch 138 of 1000000000000000"):
        xdl.config.TrainConfig(epochs=10**15, schedule="exponential", decay_base=2.0)  # 0.003·2¹³⁷: beyond float32's largest
    assert xdl.config.TrainConfig(epochs=10**15, schedule="exponential", decay_base=0.5).epochs == 10**15  # decays to 0
    assert xdl.config.TrainConfig(epochs=10**15).epochs == 10**15
    assert 0 < len(epochs_read) < 3 * 50  # bisected (log2 10¹⁵ ≈ 50 steps a check), not one call per epoch
    monkeypatch.undo()
    monkeypatch.setattr(xdl.train.trainer, "PRECHECKED_RATES", 3)
    s = moons(100)
    trainer = trainer_for(epochs=10, schedule=lambda epoch: 0.01 if epoch < 5 else float("inf"))
    with pytest.raises(ValueError, match=r"schedule\(5\) \(the rate of epoch 6\) is inf"):
        trainer.fit(s.X_train, s.y_train)
    assert len(trainer.history) == 5 and trainer.optimizer.lr == 0.01  # five good epochs, the bad rate unset


# -- interruption -----------------------------------------------------------------------------
class SignalAtStep:
    """An augmentation that is the identity but sends ``sig`` to this process at a given call."""

    def __init__(self, at_call, sig=signal.SIGINT):
        self.calls, self.at_call, self.sig = 0, at_call, sig

    def __call__(self, X, rng):
        self.calls += 1
        if self.calls == self.at_call:
            os.kill(os.getpid(), self.sig)
        return X


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_epoch_then_resume_ends_with_the_same_weights(tmp_path, sig):
    s = moons()  # 360 examples, batches of 32: 12 steps per epoch
    straight = trainer_for(epochs=4, augment=SignalAtStep(at_call=-1))
    straight.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))

    first = trainer_for(epochs=4, augment=SignalAtStep(at_call=17, sig=sig), callbacks=[Checkpoint(tmp_path, every=None)])
    with pytest.raises(Interrupted) as stop:
        first.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert stop.value.signal_name == sig.name and (stop.value.epoch, stop.value.step) == (2, 5)
    assert "in epoch 2 after step 5" in str(stop.value) and str(tmp_path / "checkpoint.npz") in str(stop.value)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored

    resumed = trainer_for(epochs=4, augment=SignalAtStep(at_call=-1), callbacks=[Checkpoint(tmp_path, every=None)])
    history = resumed.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=tmp_path)
    assert history["epoch"] == [1, 2, 3, 4]
    assert_same_state(straight.model.state_dict(), resumed.model.state_dict())
    np.testing.assert_allclose(history["train_cost"], straight.history["train_cost"], rtol=1e-12)



@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_a_signal_writes_the_resumable_state_through_every_checkpoint(tmp_path):
    """A run checkpointing into two directories (a local one and a shared one) stopped by a signal writes its
    state mid-epoch into each: the second was left at its last epoch's end, and a resume from it trained
    again the steps the first held."""
    s = moons()  # 12 steps per epoch
    directories = [tmp_path / "local", tmp_path / "shared"]
    for directory in directories:
        directory.mkdir()
    trainer = trainer_for(epochs=4, augment=SignalAtStep(at_call=17),
                          callbacks=[Checkpoint(directory) for directory in directories])
    with pytest.raises(Interrupted) as stop:
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert (stop.value.epoch, stop.value.step) == (2, 5)
    for directory in directories:  # (1 epoch done, 5 steps into the second)
        extra, _ = xdl.serialization.read_extra(directory / "checkpoint.npz")
        assert (extra["epoch"], extra["step"]) == (1, 5), directory

@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_ctrl_c_on_the_command_then_resume_gives_the_uninterrupted_weights(tmp_path):
    options = ["train", "--dataset", "moons", "--hidden", "32", "32", "--epochs", "150", "--patience", "0",
               "--batch-size", "16", "--backend", "numpy", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "xdl.cli"]
    subprocess.run([*command, *options, "--out", str(tmp_path / "straight")], check=True, env=env,
                   capture_output=True)
    out = tmp_path / "stopped"
    process = subprocess.Popen([*command, *options, "--out", str(out)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / "checkpoints" / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "training interrupted by SIGINT" in stderr and f"--resume {out / 'checkpoints'}" in stderr
    assert (out / "history.json").is_file()
    resumed = subprocess.run([*command, *options, "--out", str(out), "--resume", str(out / "checkpoints")],
                             env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a, b = xdl.load(tmp_path / "straight" / "model.npz"), xdl.load(out / "model.npz")
    assert_same_state(a.state_dict(), b.state_dict())


# -- resume verifies what the checkpoint was made with ----------------------------------------
@pytest.mark.parametrize("change, message", [
    (dict(optimizer=Momentum), "optimizer was 'Adam' in the checkpoint, this run has 'Momentum'"),
    (dict(seed=5), "seed was 0 in the checkpoint, this run has 5"),
    (dict(activation="tanh"), "the model differs from the checkpoint's at layer 2: checkpoint ReLU(), this run Tanh()"),
    (dict(dropout=0.3), "layer 3: checkpoint Dropout(rate=0.2), this run Dropout(rate=0.3)"),
    (dict(lr=0.02), "optimizer setting 'lr' (group 0) was 0.01 in the checkpoint, this run has 0.02"),
    (dict(callbacks=[EarlyStopping(monitor="train_cost")]),
     "callbacks was ['Checkpoint'] in the checkpoint, this run has ['EarlyStopping', 'Checkpoint']"),
    (dict(data_seed=1), "the train data differ from the checkpoint's"),
    (dict(l2=0.1), "l2 was 0.0 in the checkpoint, this run has 0.1"),
])
def test_resume_refuses_a_different_run_before_changing_anything(tmp_path, change, message):
    s = moons()
    trainer_for(epochs=2, callbacks=[Checkpoint(tmp_path)]).fit(s.X_train, s.y_train)
    change = dict(change)
    data = moons(seed=change.pop("data_seed", 0))
    callbacks = [*change.pop("callbacks", []), Checkpoint(tmp_path)]
    other = trainer_for(epochs=4, callbacks=callbacks, **change)
    before = state_of(other)
    with pytest.raises(ValueError) as error:
        other.fit(data.X_train, data.y_train, resume=tmp_path)
    assert message in str(error.value), str(error.value)
    assert_same_state(before, state_of(other))
    assert other.epoch == 0 and len(other.history) == 0


def tied_trainer(tied, epochs, tmp_path):
    xdl.seed(0)
    first, second = xdl.nn.Dense(2, 8), xdl.nn.Dense(8, 8)
    third = second if tied else xdl.nn.Dense(8, 8)  # the same layer used twice, or a layer of its own
    model = xdl.nn.Sequential(first, xdl.nn.ReLU(), second, xdl.nn.ReLU(), third, xdl.nn.ReLU(), xdl.nn.Dense(8, 2))
    return Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=0.01), epochs=epochs, seed=0, progress=False,
                   batch_size=32, callbacks=[Checkpoint(tmp_path)])


@pytest.mark.parametrize("tied_then", [True, False])
def test_resume_with_a_layer_shared_in_one_run_only_names_the_model_not_frozen_parameters(tmp_path, tied_then):
    """A run of a model using one layer twice resumed with that layer's uses apart (or the other way)
    was refused as "frozen parameters differ: freeze the ones the run froze", while nothing was frozen:
    the second use's parameters have no name of their own in the tied model (named once, at the first)."""
    s = moons()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (save: a model using a layer twice is saved as a model of one's own)
        tied_trainer(tied_then, 2, tmp_path).fit(s.X_train, s.y_train)
        other = tied_trainer(not tied_then, 4, tmp_path)
        before = state_of(other)
        with pytest.raises(ValueError, match="the models differ: .*a layer used twice or a weight tied") as error:
            other.fit(s.X_train, s.y_train, resume=tmp_path)
    assert "frozen" not in str(error.value) and "'4.bias'" in str(error.value)
    assert_same_state(before, state_of(other))
    assert other.epoch == 0 and len(other.history) == 0


def frozen_trainer(frozen, epochs, tmp_path):
    xdl.seed(0)
    model = xdl.nn.mlp(2, [16, 8], 2, batch_norm=True)
    getattr(model[1], frozen).requires_grad = False  # BatchNorm(16)'s γ or β: the same shape
    return Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=0.01), epochs=epochs, seed=0, progress=False,
                   batch_size=32, callbacks=[Checkpoint(tmp_path)])


@pytest.mark.parametrize("frozen, evaluated, said", [
    # the optimizer's state is laid out by the parameters it trains: β frozen for γ loaded β's moments into γ
    ("beta", None, r"trained \['1.beta'\], this run's optimizer trains \['1.gamma'\] \(frozen parameters differ"),
    # a batch norm in evaluation (its statistics fixed), resumed training: its statistics moved from then on
    ("gamma", "1", r"the checkpoint's run ran \['1'\] in evaluation mode, this run none \(put the same ones in "
                   r"evaluation, .eval\(\), before resuming\)")])
def test_resume_refuses_other_frozen_parameters_or_modes_before_changing_anything(tmp_path, frozen, evaluated, said):
    """A run that froze γ (and put a batch norm in evaluation) resumed with β frozen (or its batch norm
    training) went on without a word (the shapes agree); the run as it was resumes. A model none of
    whose modules trains is trained whole: the same run as one in training mode."""
    s = moons()
    first = frozen_trainer("gamma", 2, tmp_path)
    if evaluated:
        first.model[int(evaluated)].eval()
    first.fit(s.X_train, s.y_train)
    other = frozen_trainer(frozen, 4, tmp_path)
    before = state_of(other)
    with pytest.raises(ValueError, match=said):
        other.fit(s.X_train, s.y_train, resume=tmp_path)
    assert_same_state(before, state_of(other))
    assert other.epoch == 0 and len(other.history) == 0
    same = frozen_trainer("gamma", 4, tmp_path)
    if evaluated:
        same.model[int(evaluated)].eval()
    else:
        same.model.eval()  # (trained in training mode, as the first was)
    same.fit(s.X_train, s.y_train, resume=tmp_path)
    assert same.epoch == 4 and same.model[1].training == (not evaluated)


def unfreezing_trainer(groups: int, epochs: int, directory=None, callbacks=(), schedule=None,
                       **settings) -> Trainer:
    """A moons MLP whose first batch norm's γ is frozen, checkpointed in ``directory`` (if given);
    with ``groups`` 2 its optimizer holds γ too, with ``settings`` (as the run's was when its
    checkpoint was written, after a layer was unfrozen and given to it: `UnfreezeAt`)."""
    xdl.seed(0)
    model = xdl.nn.mlp(2, [16, 8], 2, batch_norm=True)
    model[1].gamma.requires_grad = False
    optimizer = Adam(model, lr=0.01)
    if groups == 2:
        model[1].gamma.requires_grad = True
        optimizer.add_param_group({"params": [model[1].gamma], **settings})
    return Trainer(model, SoftmaxCrossEntropy(), optimizer, epochs=epochs, seed=0, progress=False, batch_size=32,
                   schedule=schedule, callbacks=[*callbacks, *([Checkpoint(directory)] if directory else [])])


class UnfreezeAt(Callback):
    """Gradual unfreezing within a fit: at ``epoch``'s end, γ of `unfreezing_trainer`'s model trains,
    given to the optimizer with ``settings`` (once: a resumed run's optimizer holds it already)."""

    def __init__(self, epoch: int, **settings):
        self.epoch, self.settings = epoch, settings

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch and len(trainer.optimizer.groups) == 1:
            trainer.model[1].gamma.requires_grad = True
            trainer.optimizer.add_param_group({"params": [trainer.model[1].gamma], **self.settings})


def test_a_run_that_added_a_param_group_between_fits_resumes_with_that_group(tmp_path):
    """Gradual unfreezing (PyTorch's ``add_param_group``, Lightning's BackboneFinetuning): a group
    added between two fits of one run was in the checkpoint's trained parameters but not in its
    optimizer settings (recorded as the trainer was made), so no optimizer resumed it: one group
    was refused for its parameters, the two groups for its settings."""
    s = moons()
    first = unfreezing_trainer(1, 2, tmp_path, lr=0.001)
    first.fit(s.X_train, s.y_train)
    first.model[1].gamma.requires_grad = True  # unfrozen at a lower rate, as the run goes on
    first.optimizer.add_param_group({"params": [first.model[1].gamma], "lr": 0.001})
    first.epochs = 3
    first.fit(s.X_train, s.y_train)
    resumed = unfreezing_trainer(2, 4, tmp_path, lr=0.001)
    resumed.fit(s.X_train, s.y_train, resume=tmp_path)
    assert resumed.epoch == 4
    other = unfreezing_trainer(2, 4, tmp_path, lr=0.002)  # the added group's settings are compared as the others'
    with pytest.raises(ValueError, match=r"optimizer setting 'lr' \(group 1\) was 0.001 in the checkpoint, this run "
                                         r"has 0.002"):
        other.fit(s.X_train, s.y_train, resume=tmp_path)


def test_a_run_whose_callback_added_a_param_group_resumes_with_that_group(tmp_path):
    """Gradual unfreezing inside one fit, as `Optimizer.check_trainable`'s message says it: a
    callback unfreezes a layer and gives it to the optimizer with ``add_param_group``. The run's
    record kept the groups the fit began with, its checkpoints the added group's state: resumed
    without that group it was refused for its state ("2 groups' first_steps, this optimizer 1
    groups"), with it for its settings ("optimizer settings was [one group]"): no way on."""
    s = moons()

    def unfreezing(groups, epochs, directory):
        return unfreezing_trainer(groups, epochs, directory, callbacks=[UnfreezeAt(1, lr=0.001)], lr=0.001)

    whole = unfreezing(1, epochs=3, directory=tmp_path / "whole")
    whole.fit(s.X_train, s.y_train)
    unfreezing(1, epochs=2, directory=tmp_path / "cut").fit(s.X_train, s.y_train)
    resumed = unfreezing(2, epochs=3, directory=tmp_path / "cut")
    resumed.fit(s.X_train, s.y_train, resume=tmp_path / "cut")
    assert resumed.epoch == 3 and len(resumed.optimizer.groups) == 2
    for p, q in zip(whole.model.parameters(), resumed.model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    with pytest.raises(ValueError, match=r"optimizer settings was \[.*, .*\] in the checkpoint"):
        unfreezing(1, epochs=3, directory=tmp_path / "cut").fit(s.X_train, s.y_train, resume=tmp_path / "cut")


def test_a_group_a_callback_adds_at_a_rate_of_its_own_is_refused_beside_an_epoch_schedule():
    """A callback's ``add_param_group({"params": ..., "lr": 1e-4})`` (the pretrained layers unfrozen
    at a small rate) under ``Trainer(schedule=...)``: the schedule set every group to its rate at the
    next epoch's start, the new group's too (0.005, 50 times the rate asked), without a word, where
    the same group added between fits is refused. Added at the rate the schedule sets, it trains on."""
    s = moons()

    def run(settings):
        return unfreezing_trainer(1, 3, callbacks=[UnfreezeAt(1, **settings)],
                                  schedule=xdl.optim.schedules.exponential(0.01, base=0.5))

    own = run({"lr": 1e-4})
    with pytest.raises(ValueError, match=r"^epoch 2: a parameter group was added during the run; schedule: it sets "
                                         r"every group's rate .* rates of their own \(0.01, 0.0001\)"):
        own.fit(s.X_train, s.y_train)
    assert own.optimizer.param_groups[1]["lr"] == 1e-4 and own.epoch == 1
    alike = run({})  # (the optimizer's default rate: the schedule's)
    alike.fit(s.X_train, s.y_train)
    assert alike.epoch == 3 and [g["lr"] for g in alike.optimizer.param_groups] == [0.0025, 0.0025]


def test_resume_tells_two_schedules_of_one_name_apart_by_their_rates(tmp_path):
    """A schedule of one's own was recorded by its name alone: a resume with another lambda (or the
    class made with other arguments) went on without a word, while another constant lr was refused."""
    s = moons()
    trainer_for(epochs=2, callbacks=[Checkpoint(tmp_path)], schedule=lambda e: 0.01 / (1 + e)).fit(s.X_train, s.y_train)
    other = trainer_for(epochs=4, callbacks=[Checkpoint(tmp_path)], schedule=lambda e: 0.05 / (1 + e))
    with pytest.raises(ValueError, match=r"^resume: rates of the schedules at counts 0, 1, 2, .* was \{'schedule': "
                                         r"\[0\.01, 0\.005, .* this run has \{'schedule': \[0\.05, 0\.025"):
        other.fit(s.X_train, s.y_train, resume=tmp_path)
    same = trainer_for(epochs=4, callbacks=[Checkpoint(tmp_path)], schedule=lambda e: 0.01 / (1 + e))
    assert same.fit(s.X_train, s.y_train, resume=tmp_path) and same.epoch == 4


class TupleBetas(xdl.optim.Optimizer):
    """SGD as a rule of one's own with PyTorch's tuple setting ``betas=(β₁, β₂)`` (which it does not read)."""

    def __init__(self, params=None, lr=0.01, betas=(0.9, 0.99)):
        super().__init__(params, lr=lr, betas=betas, weight_decay=0.0)

    def update(self, flat, state, h, step, steps_done=None):
        flat.params[0].backend.ops.sgd_update(flat.data, flat.grad, h["lr"], h["weight_decay"])


class Scaled(xdl.nn.Module):
    """y = x·s, a layer whose config holds a tuple (put in LAYERS by the test, as the layer recipe adds one)."""

    def __init__(self, shape=(8,)):
        super().__init__()
        self.config = {"shape": shape}
        self.add_parameter("s", np.ones(shape), "scale")

    def forward(self, x):
        return x * self.s


@pytest.mark.parametrize("layer, optimizer", [(Scaled, SGD), (xdl.nn.ReLU, TupleBetas)], ids=["layer", "optimizer"])
def test_a_run_whose_settings_hold_tuples_resumes_from_its_own_checkpoint(tmp_path, monkeypatch, layer, optimizer):
    """A checkpoint holds the run's settings as JSON, where a tuple is a list: the same run's
    ``betas=(0.9, 0.99)`` or ``shape=(8,)`` was refused ("[0.9, 0.99] in the checkpoint, this run
    has (0.9, 0.99)"), so the run could not be resumed at all."""
    monkeypatch.setitem(xdl.nn.LAYERS, "Scaled", Scaled)
    s = moons(200)

    def run(epochs, resume=None):
        xdl.seed(0)
        model = xdl.nn.Sequential(xdl.nn.Dense(2, 8), layer(), xdl.nn.Dense(8, 2))
        trainer = Trainer(model, SoftmaxCrossEntropy(), optimizer(model), epochs=epochs, seed=0, progress=False,
                          callbacks=[Checkpoint(tmp_path)])
        trainer.fit(s.X_train, s.y_train, resume=resume)
        return trainer

    run(1)
    assert run(2, resume=tmp_path).epoch == 2


def test_an_optimizer_refuses_another_optimizers_state():
    xdl.seed(0)
    model = xdl.nn.mlp(2, [4], 2)
    momentum = Momentum(model)
    before = momentum.state_dict()
    with pytest.raises(ValueError, match="optimizer state is Adam's, this optimizer is Momentum"):
        momentum.load_state_dict(Adam(model).state_dict())
    assert momentum.t == before["t"]
    with pytest.raises(ValueError, match=r"holds \['m', 'v'\], Momentum keeps \['v'\]"):
        momentum.load_state_dict({**Adam(model).state_dict(), "class": None})


def test_a_checkpoint_missing_an_optimizer_array_is_called_damaged(tmp_path):
    s = moons(100)
    trainer_for(epochs=1, callbacks=[Checkpoint(tmp_path)]).fit(s.X_train, s.y_train)
    with np.load(tmp_path / "checkpoint.npz") as saved:
        arrays = {name: saved[name] for name in saved.files}
    del arrays[next(name for name in arrays if name.endswith("optimizer/0/0/m"))]
    np.savez(tmp_path / "checkpoint.npz", **arrays)
    resumed = trainer_for(epochs=2, callbacks=[Checkpoint(tmp_path)])
    before = state_of(resumed)
    with pytest.raises(ValueError, match=r"has no optimizer state 'optimizer/0/0/m': the file is damaged "
                                         r"or was edited \(the run that wrote it used Adam too\)"):
        resumed.fit(s.X_train, s.y_train, resume=tmp_path)
    assert_same_state(before, state_of(resumed))


def _edit_checkpoint(path, change):
    edit_saved(path, lambda header, arrays: change(header["extra"], arrays))


@pytest.mark.parametrize("damage, said", [
    (lambda e, a: e["history"]["records"].__delitem__(slice(0, 1)), "its history holds 1 record for the 2 epochs"),
    (lambda e, a: e["history"]["records"].append({**e["history"]["records"][1], "epoch": 3}),
     "its history holds 3 records for the 2 epochs"),  # (a record past the epochs done: resumed as epoch 3's)
    (lambda e, a: e["history"]["records"][1].update(epoch="2"), "its history's record 2 is of epoch '2'"),
    (lambda e, a: e["history"]["records"][0].update(train_cost=[1, 2]), "its history.s record 1.s 'train_cost' is \\[1, 2\\]"),
    (lambda e, a: e["history"]["records"][0].update(dev_accuracy=1e30), "its history.s record 1.s "
                                                                         "'dev_accuracy' is 1e\\+30, expected a number in "
                                                                         "\\[0, 1\\]"),
    (lambda e, a: e.update(epoch=1.5), "its 'epoch' is 1.5, expected an integer ≥ 0"),
    (lambda e, a: e.update(step=-1), "its 'step' is -1"),
    (lambda e, a: e.pop("callbacks"), "it has no 'callbacks'"),
    (lambda e, a: e.update(provenance=[]), "its 'provenance' is \\[\\]"),
    (lambda e, a: e["provenance"]["data"].update(train=1.5), "its record of the run cannot be read"),
    (lambda e, a: e["optimizer_layout"].__setitem__(0, True), "its optimizer's state cannot be read"),
    (lambda e, a: a.update({"0.weight": np.full_like(a["0.weight"], np.nan)}), "'0.weight' holds NaN or Inf"),
    (lambda e, a: e.update(l2_now=-1), "its 'l2_now' is -1, expected a number ≥ 0"),  # (it was taken as none)
    (lambda e, a: e.update(l1_now=-2), "its 'l1_now' is -2, expected a number ≥ 0"),
    (lambda e, a: e.update(module_settings=[0.3]), "its 'module_settings' is \\[0.3\\]"),
], ids=["records-missing", "records-extra",
        "record-epoch", "record-cost", "record-accuracy", "epoch", "step", "callbacks", "provenance",
        "provenance-data", "optimizer-layout", "nan-weights", "l2-now", "l1-now", "module-settings"])
def test_a_damaged_run_state_in_a_checkpoint_is_refused_naming_the_file(tmp_path, damage, said):
    """Each field a resume reads of a checkpoint is of the kind save_checkpoint writes, and its history
    one record per epoch done (records 1..epoch): a damaged or edited one is refused naming the file and
    the field, before anything changes. Before, a history missing epochs resumed into records [1, 2, 7,
    8]; an epoch of 1.5 trained one more; a missing field was a KeyError, a list a TypeError; NaN weights
    trained, diverged at their first step and wrote their history over the run's."""
    s = moons(100)
    trainer_for(epochs=2, callbacks=[Checkpoint(tmp_path)]).fit(s.X_train, s.y_train)
    _edit_checkpoint(tmp_path / "checkpoint.npz", damage)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    resumed = trainer_for(epochs=4, callbacks=[Checkpoint(tmp_path)])
    before = state_of(resumed)
    with pytest.raises(ValueError, match=rf"resume: '.*checkpoint.npz' is damaged or was edited: {said}"):
        resumed.fit(s.X_train, s.y_train, resume=tmp_path)
    assert_same_state(before, state_of(resumed))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files

def test_a_callbacks_own_form_of_a_records_lr_resumes(tmp_path):
    """A callback may write a record's "lr" its own way — each group's rate, as PyTorch's
    get_last_lr() lists them: such a checkpoint, xdl's own, was refused as damaged."""
    class GroupRates(Callback):
        def on_epoch_end(self, trainer, record):
            record["lr"] = [g["lr"] for g in trainer.optimizer.param_groups]

    s = moons(100)
    trainer_for(epochs=1, callbacks=[GroupRates(), Checkpoint(tmp_path)]).fit(s.X_train, s.y_train)
    resumed = trainer_for(epochs=2, callbacks=[GroupRates(), Checkpoint(tmp_path)])
    resumed.fit(s.X_train, s.y_train, resume=tmp_path)
    assert [r["lr"] for r in resumed.history.records] == [[0.01], [0.01]]


@pytest.mark.parametrize("damage, said", [
    (lambda a: a.update({"extra/callback/0/0.weight": a["extra/callback/0/0.weight"].astype(bool)}),
     r"is damaged or was edited: callback 0's \(EarlyStopping's\) best state: '0.weight' holds bool values"),
    (lambda a: a.update({"extra/callback/0/0.weight": a["extra/callback/0/0.weight"][:1]}),
     r"does not fit the model: callback 0's \(EarlyStopping's\) best state: .*'0.weight'"),
    (lambda a: a.pop("extra/callback/0/0.weight"), r"does not fit the model: callback 0's \(EarlyStopping's\) best state: "
                                             r"state does not match the model: missing \['0.weight'\]"),
    (lambda a: a.update({"extra/callback/0/0.weight": np.full_like(a["extra/callback/0/0.weight"], np.inf)}),
     r"is damaged or was edited: callback 0's \(EarlyStopping's\) best state: '0.weight' holds NaN or Inf"),
], ids=["bool", "shape", "missing", "inf"])
def test_a_damaged_best_state_of_early_stopping_is_refused_before_the_resume_trains(tmp_path, damage, said):
    """EarlyStopping's best weights in a checkpoint were loaded as they were: integers or booleans cast
    (the run resumed and its model.npz ended with a 0/1 weight matrix), one of another shape or missing
    found at the end of the run, once its files were written over."""
    s = moons(100)

    def trainer(epochs):
        return trainer_for(epochs=epochs, callbacks=[EarlyStopping(monitor="train_cost", patience=5),
                                                                Checkpoint(tmp_path)])
    trainer(2).fit(s.X_train, s.y_train)
    _edit_checkpoint(tmp_path / "checkpoint.npz", lambda extra, arrays: damage(arrays))
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    resumed = trainer(4)
    before = state_of(resumed)
    with pytest.raises(ValueError, match=rf"resume: '.*checkpoint.npz' {said}"):
        resumed.fit(s.X_train, s.y_train, resume=tmp_path)
    assert_same_state(before, state_of(resumed))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files


class TwoLayers(xdl.nn.Module):
    """A model of the user's own: the provenance does not describe it (`describe` refuses it)."""

    def __init__(self, hidden):
        super().__init__()
        self.first, self.last = xdl.nn.Dense(2, hidden), xdl.nn.Dense(hidden, 2)

    def forward(self, x):
        return self.last(xdl.relu(self.first(x)))


def test_a_resume_into_a_custom_model_of_other_sizes_names_the_layers_not_the_optimizers_buffer(tmp_path):
    """A model of one's own, which no provenance describes, of other sizes than the checkpoint's was told
    "optimizer state 'm' of group 0 has shape (42,), this optimizer's is (82,)": a length naming no layer."""
    s = moons(100)

    def trainer(hidden, epochs):
        model = TwoLayers(hidden)
        return Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=1e-2), batch_size=32, epochs=epochs, seed=0,
                       progress=False, callbacks=[Checkpoint(tmp_path)])
    trainer(8, 1).fit(s.X_train, s.y_train)
    resumed = trainer(16, 2)
    before = state_of(resumed)
    with pytest.raises(ValueError, match=r"resume: '.*checkpoint.npz' does not fit the model: parameter "
                                         r"'first.weight': saved shape \(2, 8\) does not match the model's \(2, 16\); "
                                         r"resume with the model the run trained"):
        resumed.fit(s.X_train, s.y_train, resume=tmp_path)
    assert_same_state(before, state_of(resumed))


@pytest.mark.parametrize("flags, message", [
    (["--seed", "5"], "--seed: the checkpoint in"),
    (["--optimizer", "momentum"], "--optimizer: the checkpoint in"),
    (["--optimizer", "rmsprop"], "was made with 'adam', this run has 'rmsprop'"),
    (["--activation", "tanh"], "--activation: the checkpoint in"),
    (["--hidden", "8", "4"], "--hidden: the checkpoint in '{ckpt}' was made with 8, this run has 8 4"),
    (["--lr", "0.01"], "without resuming; to go on at another rate, write lr = 0.01 into control.toml in the run's "
                       "output directory before resuming"),  # (the way the README gives, which the error did not)
])
def test_the_command_names_the_option_a_resume_changes(tmp_path, capsys, flags, message):
    from xdl.cli import main

    base = ["train", "--dataset", "moons", "--hidden", "8", "--epochs", "2", "--no-progress", "--out", str(tmp_path)]
    assert main(base) == 0
    model_before = (tmp_path / "model.npz").read_bytes()
    ckpt_before = (tmp_path / "checkpoints" / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert main([*base, "--epochs", "4", *flags, "--resume", str(tmp_path / "checkpoints")]) == 1
    assert message.format(ckpt=tmp_path / "checkpoints") in capsys.readouterr().err
    assert (tmp_path / "model.npz").read_bytes() == model_before
    assert (tmp_path / "checkpoints" / "checkpoint.npz").read_bytes() == ckpt_before


def test_a_resume_takes_the_runs_own_options_unless_given_again(tmp_path, capsys, monkeypatch):
    from xdl.cli import main

    run = ["train", "--dataset", "moons", "--hidden", "8", "--lr", "0.02", "--optimizer", "momentum",
           "--patience", "0", "--base-error", "0.05", "--checkpoint-every", "2", "--no-progress"]
    assert main([*run, "--epochs", "3", "--out", str(tmp_path / "straight")]) == 0
    assert main([*run, "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    # nothing but --resume and what may change: the checkpoint's dataset, layers, optimizer, lr, base error
    # and checkpoint interval (from inside the checkpoints directory: --resume . names the run's)
    monkeypatch.chdir(tmp_path / "run" / "checkpoints")
    assert main(["train", "--resume", ".", "--epochs", "3", "--no-progress"]) == 0
    a, b = xdl.load(tmp_path / "straight" / "model.npz"), xdl.load(tmp_path / "run" / "model.npz")
    assert_same_state(a.state_dict(), b.state_dict())
    config = json.loads((tmp_path / "run" / "report.json").read_text())["config"]
    assert (config["hidden"], config["base_error"], config["checkpoint_every"]) == ([8], 0.05, 2)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_config_read_from_a_pipe_is_used(tmp_path):
    import threading

    from xdl.cli import main

    pipe = tmp_path / "config.toml"
    os.mkfifo(pipe)
    writer = threading.Thread(target=lambda: pipe.write_text('dataset = "moons"\nhidden = [3]\nepochs = 1\n'))
    writer.start()
    assert main(["train", "--config", str(pipe), "--no-progress", "--out", str(tmp_path / "run")]) == 0
    writer.join()
    config = json.loads((tmp_path / "run" / "report.json").read_text())["config"]
    assert (config["dataset"], config["hidden"]) == ("moons", [3])  # (read twice, the second read found it empty)


def test_a_classifier_whose_cost_rose_far_above_its_start_has_diverged():
    s = moons(200)
    trainer = trainer_for(epochs=20, optimizer=SGD, lr=200.0, dropout=0.0)  # finite, 10¹²-sized costs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError, match=r"the train cost became \S+ at the end of epoch \d+, above "
                                                     r"1e4 × ln C \(where a classifier starts\) = 6.93e\+03"):
            trainer.fit(s.X_train, s.y_train)


def test_a_classifier_that_starts_far_above_ln_c_and_falls_trains_on(tmp_path):
    """The course's large initialization (×30): a first step at 2.8e4, falling; it was called
    diverged at epoch 1 (8.8e3 > 1e4 × ln 2) and the input scale or the rate blamed. It diverges
    only above where it started, and a resume knows where that was."""
    from xdl.nn import Dense, ReLU, Sequential

    X, y = xdl.datasets.circles(300, noise=0.05, factor=0.8, seed=1)

    def trainer(epochs, callbacks=()):
        xdl.seed(3)
        model = Sequential(Dense(2, 10, init="normal(30)"), ReLU(), Dense(10, 5, init="normal(30)"), ReLU(),
                           Dense(5, 1, init="normal(30)"))
        return Trainer(model, BinaryCrossEntropy(), SGD(model, lr=0.01), batch_size=300, epochs=epochs,
                       progress=False, callbacks=list(callbacks))

    history = trainer(3, [Checkpoint(tmp_path)]).fit(X, y)
    assert history["train_cost"][0] > 6.93e3 and history["train_cost"] == sorted(history["train_cost"], reverse=True)
    resumed = trainer(6, [Checkpoint(tmp_path)])
    resumed.fit(X, y, resume=tmp_path)  # a resume knows where the run started
    assert len(resumed.history) == 6 and resumed._start_cost > 8e3
    xdl.seed(0)  # a falling run's end-of-epoch cost over the whole train set above its start from the step costs:
    wide = xdl.nn.Sequential(xdl.nn.Dense(64, 10))  # 4.33e4 against 4.24e4 (it was stopped, the inputs blamed)
    with xdl.no_grad():
        for p in wide.parameters():
            p.data[...] *= 30000
    digits, labels = xdl.datasets.digits()
    for seed in (0, 2, 3):
        Trainer(wide, SoftmaxCrossEntropy(), SGD(wide, lr=1.0), epochs=2, batch_size=64, seed=seed,
                progress=False).fit(digits / 16, labels)
    model = trainer(1).model  # batches of 64: the first one's cost near the epoch's
    Trainer(model, BinaryCrossEntropy(), SGD(model, lr=0.01), batch_size=64, epochs=2, seed=1, progress=False).fit(X, y)
    xdl.seed(0)
    model = xdl.nn.mlp(2, [32, 32], 2)  # Adam at lr 100 blows up within its first epoch: a start of 0.7, not its mean
    with pytest.raises(FloatingPointError, match=r"the train cost became \S+ at the end of epoch 1, above 1e4 × ln C"):
        Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=100.0), epochs=3, batch_size=32, seed=0,
                progress=False).fit(*xdl.datasets.moons(m=400, noise=0.2, seed=0))


def test_a_cost_has_diverged_only_above_the_limit_and_ten_times_where_the_run_started():
    """The rule itself, at its edges: above ln C's multiple where the run started below it, else above
    10 × its start (`START_FACTOR`, the factor the docs and messages say) — a run that began at the
    limit and reached 9.99 × its start goes on; at 10.01 ×, it has diverged."""
    from xdl.train.divergence import cost_limit, diverged_cost

    limit = cost_limit(2)
    assert diverged_cost(limit, limit, None, "x") is None and diverged_cost(limit, limit, 0.7, "x") is None
    assert "above 1e4 × ln C" in diverged_cost(limit * 1.001, limit, 0.7, "x")
    assert diverged_cost(9.99 * limit, limit, limit, "x") is None
    assert diverged_cost(10 * limit, limit, limit, "x") is None  # (above it, not at it)
    assert diverged_cost(10.01 * limit, limit, limit, "x").endswith(f"and 10 × where the run started, {limit:.3g}")


def test_a_checkpoint_from_before_starts_were_kept_resumes_on_the_limit_alone(tmp_path):
    s = moons(100)
    first = trainer_for(epochs=2, callbacks=[Checkpoint(tmp_path)])
    first.fit(s.X_train, s.y_train)
    path = tmp_path / "checkpoint.npz"
    edit_saved(path, lambda header, arrays: header["extra"].pop("start_cost"))  # as an older xdl wrote it
    resumed = trainer_for(epochs=3, callbacks=[Checkpoint(tmp_path)])
    resumed.fit(s.X_train, s.y_train, resume=tmp_path)
    assert resumed._start_cost is None and len(resumed.history) == 3


# -- labels and inputs ------------------------------------------------------------------------
@pytest.mark.parametrize("labels, message", [
    ([0, -1], r"class indices in \[0, 3\), got values in \[-1, 0\]"),
    ([0, 7], r"class indices in \[0, 3\), got values in \[0, 7\]"),
    ([0.5, 1], r"class indices \(integers\)"),
    ([0], "1 label for 2 examples"),
    ([[1, 0, 0]], r"labels of shape \(1, 3\)"),
    ([[1, 0, -1], [0, 1, 0]], "must be finite and ≥ 0"),
])
@pytest.mark.parametrize("form", ["list", "numpy", "tensor", "device"])
def test_softmax_labels_are_checked_in_every_form(backend, labels, message, form):
    logits = xdl.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    y = {"list": lambda v: v, "numpy": np.asarray, "tensor": xdl.tensor,
         "device": lambda v: backend.asarray(np.asarray(v))}[form](labels)
    with pytest.raises(ValueError, match=message):
        SoftmaxCrossEntropy()(logits, y)


def test_the_functional_op_makes_a_label_out_of_range_a_nan_never_another_class(backend):
    # the loss classes above check labels once per data set; the op leaves them unchecked (a check
    # per call would be a device sync) and gives what the GPU kernel gives, on every backend
    logits = xdl.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]], requires_grad=True)
    for bad in ([0, -1], [3, 0]):
        assert np.isnan(float(xdl.softmax_cross_entropy(logits, np.array(bad))))
    stacked = xdl.stacked_softmax_cross_entropy(xdl.tensor(np.zeros((2, 2, 3))), np.array([0, -1]))
    assert np.isnan(backend.to_numpy(stacked.data)).all()


def test_integer_tensors_stay_integer_labels(backend):
    logits = xdl.tensor([[0.0, 1.0], [1.0, 0.0]])
    y = xdl.tensor(np.array([1, 0]))
    assert y.dtype == np.int64
    assert SoftmaxCrossEntropy()(logits, y).item() == pytest.approx(np.log1p(np.exp(-1.0)), rel=1e-6)


def test_binary_and_squared_targets_are_checked(backend):
    z = xdl.tensor([0.0, 1.0])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 1\].*got values in \[-1.0, 2.0\]"):
        BinaryCrossEntropy()(z, [2, -1])
    with pytest.raises(ValueError, match="targets contain NaN or Inf"):
        xdl.losses.MeanSquaredError()(z, [0.0, np.nan])
    with pytest.raises(ValueError, match=r"targets of shape \(3,\) for outputs of shape \(2,\)"):
        BinaryCrossEntropy()(z, [0, 1, 1])
    with pytest.raises(ValueError, match=r"targets of shape \(3, 2\) for outputs of shape \(2, 3\)"):
        xdl.losses.MeanSquaredError()(xdl.tensor(np.zeros((2, 3))), np.zeros((3, 2)))  # was compared in memory order
    assert float(xdl.losses.MeanSquaredError()(xdl.tensor(np.zeros((4, 1))), np.ones(4)).numpy()) == 1.0  # (m,) for (m, 1)


def test_predict_and_evaluate_refuse_non_finite_input(backend):
    xdl.seed(0)
    model = xdl.nn.mlp(2, [4], 2)
    bad = np.array([[0.0, 1.0], [np.nan, 0.0]])
    with pytest.raises(ValueError, match=r"X contains NaN or Inf \(first at example 1, feature 0\)"):
        model.predict(bad)
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model), progress=False)
    with pytest.raises(ValueError, match="NaN or Inf"):
        trainer.evaluate(bad, [0, 1])


def test_fit_refuses_data_beyond_the_models_dtype_and_images_of_another_shape_before_training():
    """A float64 1e39 is finite but inf in a float32 model: named, not reported as a divergence;
    augmentation of 8×8 images refuses 2 features at once, not at the first batch."""
    s = moons()
    trainer = trainer_for(epochs=1)
    with pytest.raises(ValueError, match=r"X has values beyond float32's range .*example 0, feature 0"):
        trainer.fit(s.X_train.astype(np.float64) * 1e39, s.y_train)
    with pytest.raises(ValueError, match=r"X_dev has values beyond float32's range"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev.astype(np.float64) * 1e39, s.y_dev))
    trainer = trainer_for(epochs=1, augment=xdl.data.Augment((8, 8), shift=1))
    with pytest.raises(ValueError, match="augment sees examples as 8×8 images, so X must have 64 features, got 2"):
        trainer.fit(s.X_train, s.y_train)
    assert trainer.optimizer.t == 0 and len(trainer.history) == 0


# -- batch norm and the last batch ------------------------------------------------------------
def test_a_last_batch_of_one_is_merged_once_with_batch_norm(backend):
    s = moons()
    X, y = s.X_train[:97], s.y_train[:97]  # batches of 32: 32, 32, 32 and 1
    seen = []

    class Count:
        def __call__(self, Xb, rng):
            seen.append(len(Xb))
            return Xb

    trainer = trainer_for(epochs=2, augment=Count())
    with pytest.warns(UserWarning, match=r"last batch of each epoch would have 1 example.*merged.*\(33 examples; another batch_size") as w:
        trainer.fit(X, y)
    assert [x.filename for x in w if "last batch" in str(x.message)] == [__file__]  # once, at the caller's line
    assert seen == [32, 32, 33] * 2  # every example in every epoch
    with pytest.raises(ValueError, match="training set has 1 example.*batches of at least 2"):
        trainer_for(epochs=1).fit(X[:1], y[:1])


def test_every_loop_warns_of_a_merged_last_batch_at_the_users_line():
    """fit_many, ManyTrainer.fit and MLPClassifier.fit warn as Trainer.fit does, each attributed
    to the line that called into xdl (`xdl.caller.warn_caller`), however deep the warning is made."""
    from xdl.config import TrainConfig
    from xdl.train import ManyTrainer, fit_many

    s = moons()
    X, y = s.X_train[:97], s.y_train[:97]
    config = TrainConfig(dataset="moons", hidden=(8,), epochs=1, batch_size=32, patience=0, progress=False)
    calls = [lambda: fit_many([config, config], X, y), lambda: ManyTrainer([config, config]).fit(X, y)]
    if importlib.util.find_spec("sklearn") is not None:
        from xdl.sklearn import MLPClassifier

        calls.append(lambda: MLPClassifier(hidden=8, epochs=1, batch_size=32, batch_norm=True).fit(X, y))
    for call in calls:
        with pytest.warns(UserWarning, match=r"last batch of each epoch would have 1 example.*\(33 examples; ") as w:
            call()
        assert [(x.filename, x.lineno) for x in w if "last batch" in str(x.message)] == [
            (__file__, call.__code__.co_firstlineno)]  # this file's line that called into xdl
    with pytest.raises(ValueError, match="training set has 1 example.*batches of at least 2"):
        fit_many([config], X[:1], y[:1])


def test_the_command_trains_with_a_remainder_of_one(tmp_path, capsys):
    from xdl.cli import main

    with warnings.catch_warnings(record=True):
        assert main(["train", "--batch-size", "14", "--epochs", "2", "--no-progress", "--out", str(tmp_path)]) == 0
    assert "accuracy: train" in capsys.readouterr().out  # 1079 training examples: 77 × 14 + 1


# -- files --------------------------------------------------------------------------------------
def test_loading_anything_but_an_xdl_file_says_so(tmp_path):
    model = xdl.nn.mlp(2, [3], 2)
    good = xdl.save(model, tmp_path / "good.npz").read_bytes()
    cases = {
        "text.npz": (b"hello", "not an .npz archive"),
        "truncated.npz": (good[: len(good) // 2], "not an .npz archive, or a damaged one"),
        "empty.npz": (b"", "not an .npz archive"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=message) as error:
            xdl.load(tmp_path / name)
        assert name in str(error.value)
    np.savez(tmp_path / "plain.npz", a=np.arange(3))
    with pytest.raises(ValueError, match=r"plain.npz' is not an xdl model file \(an .npz archive without the __xdl_architecture__"):
        xdl.load(tmp_path / "plain.npz")
    np.savez(tmp_path / "pickled.npz", a=np.array([{}], dtype=object), __xdl_architecture__=np.array('{"format": 1}'))
    with pytest.raises(ValueError, match="holds pickled objects, which xdl files never do"):
        xdl.load(tmp_path / "pickled.npz")
    np.savez(tmp_path / "future.npz", __xdl_architecture__=np.array(json.dumps({"format": 99})))
    with pytest.raises(ValueError, match="has format 99; this xdl reads formats up to 2"):
        xdl.load(tmp_path / "future.npz")


def test_saved_files_follow_the_umask(tmp_path):
    model = xdl.nn.mlp(2, [3], 2)
    previous = os.umask(0o027)
    try:
        mode = stat.S_IMODE(os.stat(xdl.save(model, tmp_path / "m.npz")).st_mode)
    finally:
        os.umask(previous)
    assert mode == 0o640


@pytest.mark.skipif(os.name != "posix", reason="kill -9")
def test_kill_9_mid_save_leaves_no_stale_temporary_after_the_next_save(tmp_path):
    path = tmp_path / "big.npz"
    writer = ("import sys, numpy as np, xdl\n"
              "model = xdl.nn.Sequential(xdl.nn.Dense(2000, 4000))\n"
              "xdl.save(model, sys.argv[1]); print('saved', flush=True)\n"
              "while True: xdl.save(model, sys.argv[1])\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDL_BACKEND": "numpy"}
    stale = []
    for _ in range(20):  # the kill must land while a temporary exists
        process = subprocess.Popen([sys.executable, "-c", writer, str(path)], env=env, stdout=subprocess.PIPE)
        process.stdout.readline()
        deadline = time.time() + 10
        while not list(tmp_path.glob(".big.npz.*.tmp")) and time.time() < deadline:
            time.sleep(0.001)
        process.kill()
        process.wait()
        stale = list(tmp_path.glob(".big.npz.*.tmp"))
        if stale:
            break
    assert stale, "no temporary was caught mid-save"
    old = xdl.load(path)  # the file the killed writer left is whole
    xdl.save(xdl.nn.Sequential(xdl.nn.Dense(2, 2)), path)
    assert not list(tmp_path.glob(".big.npz.*.tmp"))
    assert xdl.load(path).state_dict()["0.weight"].shape == (2, 2) and old is not None


# -- found by trying it as a user: each once broke ---------------------------------------------
def regression_data(m=200):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((m, 3)).astype(np.float32)
    return X, X @ np.array([1.0, 2.0, -1.0]) + 0.1 * rng.standard_normal(m)


@pytest.mark.parametrize("scale, offset, said", [(1e4, 2e5, "1.96e+05"), (1e-6, 0.0, "2.26e-06"),
                                                 (4e-3, 0.0, "0.00904")])  # (below 1/TARGET_SCALE, 0.01)
def test_regression_targets_far_from_unit_scale_are_warned_of_and_the_advice_runs(scale, offset, said):
    """House prices of 2e5 trained for 100 epochs to a cost 2% below where it started (dev RMSE 2e5,
    scikit-learn's LinearRegression 9e3); quantities of 1e-6 (Adam at 1e-3) to a cost of 0.01 — small
    beside 1, 10⁹ times the targets' variance (dev R² of −1.7e9): each ended "completed" without a
    word. Unit-scale and all-0 targets are not warned of; the warning's recipe, followed as written,
    gives the predictions back in the targets' units."""
    X, y = regression_data(40)
    for targets, warned in ((offset + scale * y, True), (y, False), (np.zeros_like(y), False)):
        model = xdl.nn.mlp(3, [4], 1)
        trainer = Trainer(model, xdl.losses.MeanSquaredError(), SGD(model), epochs=1, progress=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(X, targets)
        told = [str(w.message) for w in caught if "unit scale" in str(w.message)]
        assert len(told) == warned and all(f"(root mean square {said})" in m and "Standardizer" in m for m in told)
    s = xdl.data.Standardizer().fit(y.reshape(len(y), -1))  # the recipe, as the warning writes it
    assert s.inverse_transform(model.predict(X).reshape(len(X), -1)).shape == (len(X), 1)


def test_regression_and_binary_targets_are_shaped_for_the_outputs_once():
    X, y = regression_data()
    xdl.seed(0)
    model = xdl.nn.mlp(3, [16], 1)
    trainer = Trainer(model, xdl.losses.MeanSquaredError(), Adam(model, lr=0.01), epochs=30, batch_size=32,
                      progress=False)
    history = trainer.fit(X, y)  # y (m,) for outputs (m, 1): compared element by element, not broadcast
    mse = float(((model.predict_outputs(X).ravel() - y) ** 2).mean())
    assert mse < 0.1 and history[-1]["train_cost"] == pytest.approx(mse, rel=1e-5)
    xdl.seed(0)
    model = xdl.nn.mlp(3, [16], 1)
    trainer = Trainer(model, BinaryCrossEntropy(), Adam(model, lr=0.01), epochs=30, batch_size=32, progress=False)
    assert trainer.fit(X, (y > 0).astype(int))[-1]["train_accuracy"] > 0.95
    with pytest.raises(TypeError, match="y: MeanSquaredError: targets must hold real numbers, got dtype <U1"):
        Trainer(model, xdl.losses.MeanSquaredError(), SGD(model), progress=False).fit(X, np.array(["a"] * len(X)))


def test_tensors_are_accepted_as_data():
    s = moons(200)
    trainer = trainer_for(epochs=2)
    history = trainer.fit(xdl.tensor(s.X_train), xdl.tensor(s.y_train), dev=(xdl.tensor(s.X_dev), s.y_dev))
    assert len(history) == 2 and trainer.evaluate(xdl.tensor(s.X_dev), xdl.tensor(s.y_dev))["accuracy"] > 0


def test_squared_error_computed_on_unshaped_targets_is_refused_not_broadcast(backend):
    """loss.compute(outputs, y) — the per-step call of a loop that prepared its targets once, as
    README's captured loop makes it — with (m, 1) outputs and (m,) targets compared every pair,
    (m, m): J = (1/m²) Σᵢ Σⱼ (ŷᵢ − yⱼ)², whose minimum is ŷ = mean(y), trained to without a word
    (sigmoid_binary_cross_entropy refused the same shapes)."""
    mse = xdl.losses.MeanSquaredError()
    out = xdl.tensor(np.zeros((4, 1)), backend=backend)
    with pytest.raises(ValueError, match=r"^MeanSquaredError: targets of shape \(4,\) for outputs of shape \(4, 1\)"):
        mse.compute(out, backend.asarray(np.arange(4.0)))
    prepared = mse.prepare(np.arange(4.0), (4, 1), backend, np.float64)
    assert mse.compute(out, prepared).item() == pytest.approx(np.mean(np.arange(4.0) ** 2))  # 3.5, not (m, m)'s


def test_regression_targets_of_objects_train_as_the_numbers_and_durations_are_refused():
    """y = table[:, -1] of a table of mixed types (or a pandas nullable Float64 column) holds numbers
    as objects: refused as "must hold real numbers" by MeanSquaredError and BinaryCrossEntropy, while
    X of objects and SoftmaxCrossEntropy's labels of objects trained. timedelta64 targets, which NumPy
    counts among its integers, trained on as nanoseconds (10¹⁰ for 10 s) without a word."""
    X, y = regression_data(40)
    fitted = []
    for targets in (y.astype(object), y):
        xdl.seed(0)
        model = xdl.nn.mlp(3, [4], 1)
        Trainer(model, xdl.losses.MeanSquaredError(), SGD(model), epochs=2, progress=False).fit(X, targets)
        fitted.append(model.state_dict())
    for name, value in fitted[0].items():
        np.testing.assert_array_equal(value, fitted[1][name])
    z = xdl.tensor(np.zeros(2))
    assert BinaryCrossEntropy()(z, np.array([0, 1], dtype=object)).item() == pytest.approx(np.log(2))
    with pytest.raises(TypeError, match=r"^y: MeanSquaredError: targets holds timedelta64\[s\] durations: convert them "
                                         r"to numbers in a unit first, e\.g\. targets / np\.timedelta64\(1, 's'\)"):
        Trainer(model, xdl.losses.MeanSquaredError(), SGD(model), progress=False).fit(X, np.arange(40).astype("m8[s]"))


def test_a_loss_given_a_tensor_of_targets_first_asks_whether_the_arguments_are_swapped():
    """mse(y_true, model(X)), Keras's order with y_true a tensor, was told "pass targets.detach()": the
    model's outputs, detached, train nothing. A multi-hot target for SoftmaxCrossEntropy is named
    as multi-label, BinaryCrossEntropy's."""
    xdl.seed(0)
    model = xdl.nn.Sequential(xdl.nn.Dense(3, 2))
    y_true = xdl.tensor(np.ones((4, 2)))
    for loss in (xdl.losses.MeanSquaredError(), BinaryCrossEntropy()):
        with pytest.raises(ValueError, match=r"as the outputs do not require grad, are the arguments swapped\? "
                                             r"loss\(outputs, targets\) is PyTorch's order"):
            loss(y_true, model(np.zeros((4, 3))))
    with pytest.raises(ValueError, match=r"rows with several 1s are multi-label targets .*BinaryCrossEntropy"):
        SoftmaxCrossEntropy()(model(np.zeros((2, 3))), np.array([[1, 1], [0, 1]]))
    with pytest.raises(ValueError, match=r"must sum to 1 .*got sums in \[0, 1\]$"):  # a row of 0s: no multi-label
        SoftmaxCrossEntropy()(model(np.zeros((2, 3))), np.array([[0, 0], [0, 1]]))
    learned = xdl.tensor(np.ones((4, 2)), requires_grad=True)  # outputs that require grad: the targets are told
    for loss, name in ((xdl.losses.MeanSquaredError(), "targets"), (SoftmaxCrossEntropy(), "labels")):
        with pytest.raises(ValueError, match=rf"^{type(loss).__name__}: {name} is a tensor that requires grad, .*; "
                                             rf"pass {name}.detach\(\) for fixed targets$"):
            loss(model(np.zeros((4, 3))), learned)


@pytest.mark.parametrize("labels", [np.array(["0", "1"]), np.array([0, None], dtype=object), np.array([0j, 1j])])
def test_losses_refuse_targets_that_are_not_real_numbers(backend, labels):
    for loss, z in ((SoftmaxCrossEntropy(), xdl.tensor([[0.0, 1.0], [1.0, 0.0]])),
                    (BinaryCrossEntropy(), xdl.tensor([0.0, 1.0])), (xdl.losses.MeanSquaredError(), xdl.tensor([0.0, 1.0]))):
        with pytest.raises(TypeError, match="must hold real numbers"):
            loss(z, labels)


def test_no_checkpoint_ever_holds_non_finite_weights(tmp_path):
    X, y = moons(200).X_train * 1e3, moons(200).y_train  # gradients of ~1e3: one step at float32's largest
    xdl.seed(0)                                            # rate takes the weights to inf
    model = xdl.nn.mlp(2, [8], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model, lr=3e38), epochs=3, batch_size=len(X),
                      eval_train=False, callbacks=[Checkpoint(tmp_path)], progress=False)
    with pytest.raises(FloatingPointError, match="became NaN or Inf in epoch 1"), np.errstate(all="ignore"):
        trainer.fit(X, y)  # the epoch's only cost is finite (computed before the update); the weights are not
    assert not (tmp_path / "checkpoint.npz").exists() and not (tmp_path / "best.npz").exists()
    # Ctrl-C while the rate spikes: the interrupt checkpoint is not written either
    xdl.seed(0)
    model = xdl.nn.mlp(2, [8], 2)
    ckpt = Checkpoint(tmp_path / "spike", every=None)
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model, lr=lambda t: 3e38 if t == 3 else 0.01), epochs=3,
                      batch_size=16, augment=SignalAtStep(at_call=4), callbacks=[ckpt], progress=False)
    with pytest.raises(FloatingPointError, match="NaN or Inf after step 4 of epoch 1"), np.errstate(all="ignore"):
        trainer.fit(X, y)
    assert not ckpt.path.exists()


def test_the_divergence_error_points_to_the_best_checkpoint_too(tmp_path):
    s = moons()
    ckpt = Checkpoint(tmp_path, every=None)

    def blow_up(model):
        model.parameters()[0].data[...] = np.inf

    trainer = trainer_for(epochs=6, callbacks=[ckpt, Corrupt(2, blow_up)])
    with pytest.raises(FloatingPointError, match=r"the best epoch's state is in '.*best.npz'"), np.errstate(all="ignore"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))


def test_dropout_draws_fresh_masks_after_fit():
    s = moons(100)
    trainer = trainer_for(epochs=1, dropout=0.5)
    trainer.fit(s.X_train, s.y_train)
    model = trainer.model.train()
    assert not np.array_equal(model(s.X_train).numpy(), model(s.X_train).numpy())


def test_resuming_the_same_trainer_with_a_schedule_and_old_or_short_checkpoints(tmp_path):
    s = moons()
    schedule = xdl.optim.schedules.inverse_time(0.01, decay_rate=0.5)
    trainer = trainer_for(epochs=4, schedule=schedule, callbacks=[Checkpoint(tmp_path)],
                          augment=SignalAtStep(at_call=20))
    with pytest.raises(Interrupted):
        trainer.fit(s.X_train, s.y_train)
    trainer.augment = SignalAtStep(at_call=-1)
    assert trainer.fit(s.X_train, s.y_train, resume=tmp_path)["epoch"] == [1, 2, 3, 4]  # lr moved; settings did not
    short = trainer_for(epochs=2, schedule=schedule, callbacks=[Checkpoint(tmp_path)], augment=SignalAtStep(-1))
    with pytest.raises(ValueError, match="the checkpoint has trained 4 epochs and this run has epochs=2: it cannot train fewer"):
        short.fit(s.X_train, s.y_train, resume=tmp_path)
    same = trainer_for(epochs=4, schedule=schedule, callbacks=[Checkpoint(tmp_path)], augment=SignalAtStep(-1))
    with pytest.warns(UserWarning, match=r"resume: the checkpoint's run is over \(its 4 epochs trained\): nothing to "
                                         "train; it ends as it ended"):  # (a run killed after its end), and says so
        assert same.fit(s.X_train, s.y_train, resume=tmp_path)["epoch"] == [1, 2, 3, 4]


def test_a_resume_from_inside_an_epoch_cannot_end_before_that_epoch(tmp_path):
    """A checkpoint after step k of epoch e + 1 has trained e epochs and k steps: fewest = e + 1
    (`fewest_epochs`). With epochs = e it was taken for a run over ("it ends as it ended") and
    returned a model k steps into an epoch its history has no record of."""
    s = moons()  # 360 examples, batches of 32: 12 steps per epoch
    first = trainer_for(epochs=4, augment=SignalAtStep(at_call=17), callbacks=[Checkpoint(tmp_path)])
    with pytest.raises(Interrupted):
        first.fit(s.X_train, s.y_train)  # stopped after step 5 of epoch 2
    short = trainer_for(epochs=1, augment=SignalAtStep(at_call=-1), callbacks=[Checkpoint(tmp_path)])
    before = state_of(short)
    with pytest.raises(ValueError, match=r"the checkpoint has trained 1 epoch and 5 steps of epoch 2 and this run "
                                         r"has epochs=1: it cannot train fewer; ask for 2 \(to finish the epoch"):
        short.fit(s.X_train, s.y_train, resume=tmp_path)
    assert_same_state(state_of(short), before)  # refused before anything changed
    import dataclasses

    config, saved = xdl.config.TrainConfig(epochs=1), dataclasses.asdict(xdl.config.TrainConfig(epochs=4))
    with pytest.raises(ValueError, match=r"--epochs: .* has trained 1 epoch and 5 steps of epoch 2 and this run has "
                                         r"--epochs 1: a run cannot train fewer; ask for 2"):
        config.check_resume(saved, "somewhere", 1, step=5)
    config.check_resume(saved, "somewhere", 1)  # at an epoch's end, as many epochs end the run as it ended
    finished = trainer_for(epochs=2, augment=SignalAtStep(at_call=-1), callbacks=[Checkpoint(tmp_path)])
    assert finished.fit(s.X_train, s.y_train, resume=tmp_path)["epoch"] == [1, 2]


def test_a_resume_checkpointing_into_another_runs_directory_keeps_that_runs_state(tmp_path):
    """A resume writing its checkpoints into a directory holding another run's unfinished checkpoint
    wrote over it (that run's way on lost), where a new run there is refused: refused too, before
    anything changes; into a finished run's directory, the run's best.npz comes along over that run's."""
    s = moons()
    for name, seed, at in (("one", 0, 17), ("other", 5, 29)):
        trainer = trainer_for(epochs=4, seed=seed, augment=SignalAtStep(at_call=at),
                              callbacks=[Checkpoint(tmp_path / name)])
        with pytest.raises(Interrupted):
            trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    theirs = (tmp_path / "other" / "checkpoint.npz").read_bytes()
    resumed = trainer_for(epochs=4, augment=SignalAtStep(at_call=-1), callbacks=[Checkpoint(tmp_path / "other")])
    before = state_of(resumed)
    with pytest.raises(FileExistsError, match=r"'.*other' holds the checkpoint of an unfinished run \(after step 5 of "
                                              r"epoch 3\): fit\(\.\.\., resume='.*other'\) continues it; to go on "
                                              r"from '.*one/checkpoint.npz' instead, remove"):
        resumed.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=tmp_path / "one")
    assert (tmp_path / "other" / "checkpoint.npz").read_bytes() == theirs and resumed.epoch == 0
    assert_same_state(state_of(resumed), before)
    finished = trainer_for(epochs=1, seed=5, callbacks=[Checkpoint(tmp_path / "done")])
    finished.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))  # another run's best.npz there
    one = trainer_for(epochs=2, augment=SignalAtStep(at_call=-1), callbacks=[Checkpoint(tmp_path / "one2")])
    one.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=tmp_path / "one")  # a finished leg of run one
    goes_on = trainer_for(epochs=2, augment=SignalAtStep(at_call=-1), callbacks=[Checkpoint(tmp_path / "done")])
    with pytest.warns(UserWarning, match="nothing to train"):
        goes_on.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=tmp_path / "one2")
    assert goes_on.best_checkpoint == tmp_path / "done" / "best.npz"
    assert (tmp_path / "done" / "best.npz").read_bytes() == (tmp_path / "one2" / "best.npz").read_bytes()


@pytest.mark.parametrize("first, then, message", [
    (["--schedule", "cosine", "--epochs", "3"], ["--schedule", "cosine", "--epochs", "6"],
     "--epochs: the cosine schedule of the checkpoint"),
    (["--patience", "15"], ["--patience", "0"], "--patience: the checkpoint in"),
    (["--epochs", "3"], ["--epochs", "2"], "--epochs: the checkpoint in .* has trained 3 epochs and this run has --epochs 2: a run cannot train fewer"),
    # another schedule resumed as cosine over more epochs: its schedule named, not "the cosine schedule of the
    # checkpoint spans 3 epochs" (it had none), blaming --epochs, which may change under its own schedule
    *((["--schedule", schedule, *flags], ["--schedule", "cosine", "--epochs", "6"],
      f"--schedule: the checkpoint in .* was made with '{schedule}', this run has 'cosine'")
      for schedule, flags in (("inverse_sqrt", ["--decay-k", "0.5"]), ("inverse_time", []), ("none", []),
                              ("exponential", []), ("step", []), ("staircase", []))),
])
def test_resume_options_that_may_change_only_in_some_ways(tmp_path, capsys, first, then, message):
    from xdl.cli import main

    base = ["train", "--dataset", "moons", "--hidden", "8", "--no-progress", "--out", str(tmp_path)]
    assert main([*base, "--epochs", "3", *first]) == 0
    capsys.readouterr()
    assert main([*base, *then, "--resume", str(tmp_path / "checkpoints")]) == 1
    import re
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.parametrize("flags, message", [
    (["--seed", "-1"], "seed must be ≥ 0"),
    (["--batch-size", "1"], "--batch-size must be ≥ 2 with batch_norm"),
])
def test_more_options_checked_before_work(tmp_path, capsys, flags, message):
    from xdl.cli import main

    assert main(["train", *flags, "--out", str(tmp_path / "o")]) == 1
    assert message in capsys.readouterr().err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("dtype, l2", [(np.float32, 1e39), (np.float32, 10**400), (np.float64, 10**400)],
                         ids=["float32-1e39", "float32-10**400", "float64-10**400"])
def test_an_l2_the_models_dtype_cannot_hold_is_refused_where_it_is_given(dtype, l2):
    """λ/(2m)·Σ‖W‖² and (λ/m)·W are computed in the model's dtype: an l2 beyond its largest number was
    taken, and the first step's cost was NaN — the run stopped as diverged, advising a smaller learning
    rate (a Python int beyond floats: an OverflowError from float(l2) instead)."""
    xdl.seed(0)
    model = xdl.nn.mlp(2, [4], 2).astype(dtype)
    with pytest.raises(ValueError, match=f"l2 must be at most .*{np.dtype(dtype)}'s largest number"):
        Trainer(model, SoftmaxCrossEntropy(), SGD(model), l2=l2)
    Trainer(model, SoftmaxCrossEntropy(), SGD(model), l2=1e38)  # within float32: a number it holds


def test_trainer_and_seed_arguments_are_checked():
    xdl.seed(0)
    model = xdl.nn.mlp(2, [4], 2, batch_norm=True)
    for kwargs, message in ((dict(l2=float("inf")), "l2 must be a finite number ≥ 0"),
                            (dict(seed=1.5), r"seed must be an integer in \[0, 2\*\*64\)"),
                            (dict(seed=-1), "seed must be an integer"), (dict(seed=2**64), r"got 18446744073709551616")):
        with pytest.raises(ValueError, match=message):
            Trainer(model, SoftmaxCrossEntropy(), SGD(model), **kwargs)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*64\) or None"):
        xdl.seed(-1)
    for bad in ("no", None, 1):  # a truthy string would evaluate, None would not: refused, as fit_many does
        with pytest.raises(ValueError, match=f"eval_train must be True or False, got {bad!r}"):
            Trainer(model, SoftmaxCrossEntropy(), SGD(model), eval_train=bad)
    s = moons(100)
    with pytest.raises(ValueError, match="batch_size=1 is smaller than the model can train on"):
        Trainer(model, SoftmaxCrossEntropy(), SGD(model), batch_size=1, progress=False).fit(s.X_train, s.y_train)
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model), progress=False)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        trainer.evaluate(s.X_dev, s.y_dev, batch_size=0)
    with pytest.raises(ValueError, match="no examples"):
        trainer.evaluate(np.zeros((0, 2)), np.zeros(0, dtype=int))


@pytest.mark.parametrize("params, message", [
    (dict(epochs=2.5), "epochs must be an integer"), (dict(hidden=4.5), "hidden must be a list of integers"),
    (dict(seed=-1), "seed must be"), (dict(lr="a"), "lr must be a number"),
    (dict(early_stopping=True, validation_fraction=0), r"validation_fraction must be in \(0, 1\)"),
])
def test_classifier_hyperparameters_are_named(params, message):
    pytest.importorskip("sklearn")
    from xdl.sklearn import MLPClassifier

    X, y = xdl.datasets.moons(40)
    with pytest.raises((TypeError, ValueError), match=message):
        MLPClassifier(**params).fit(X, y)


def test_classifier_early_stopping_needs_data_to_hold_out():
    pytest.importorskip("sklearn")
    from xdl.sklearn import MLPClassifier

    X, y = xdl.datasets.moons(4)
    # ⌈0.1 · 4⌉ = 1 held out, as scikit-learn's (round(0.4) held out 0); too few to validate on
    with pytest.raises(ValueError, match=r"= 1 of 4 examples \(as scikit-learn's\), which leaves 1 for validation"):
        MLPClassifier(early_stopping=True).fit(X, y)


def test_integer_inputs_give_outputs_in_the_models_dtype(backend):
    model = xdl.nn.mlp(2, [4], 2)
    assert model(xdl.tensor([[1, 2]])).dtype == np.float32


def test_file_names_with_glob_characters_and_kept_permissions(tmp_path):
    model = xdl.nn.mlp(2, [3], 2)
    other = tmp_path / ".model1.npz.999999999.abcd.tmp"  # another file's temporary, of a dead writer
    other.write_bytes(b"x")
    path = xdl.save(model, tmp_path / "model[1].npz")
    assert other.exists()  # not touched: it belongs to model1.npz
    os.chmod(path, 0o600)
    xdl.save(model, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # replacing a file keeps its permissions


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write any file")
def test_a_write_protected_file_is_not_replaced(tmp_path):
    """As ``open`` (and ``torch.save``) refuse it: the rename of an atomic write would replace it."""
    path = xdl.save(xdl.nn.mlp(2, [3], 2), tmp_path / "kept.npz")
    before = path.read_bytes()
    os.chmod(path, 0o444)
    with pytest.raises(PermissionError, match=r"save: '.*kept.npz' is write-protected"):
        xdl.save(xdl.nn.mlp(2, [4], 2), path)
    assert path.read_bytes() == before


def test_load_names_the_file_when_the_model_does_not_fit(tmp_path):
    path = xdl.save(xdl.nn.mlp(2, [3], 2), tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"load: '.*m.npz' does not fit the model: parameter"):
        xdl.load(path, model=xdl.nn.mlp(2, [5], 2))
    with pytest.raises(TypeError, match=r"load: model must be an xdl Module to load the state into \(or None\), "
                                        r"got 'm.npz'"):
        xdl.load(path, model="m.npz")
    np.savez(tmp_path / "odd.npz", __xdl_architecture__=np.array(json.dumps(
        {"format": 1, "architecture": {"class": "Dense", "config": {"in_features": "two"}}, "dtype": "float32"})))
    with pytest.raises(ValueError, match="odd.npz' describes a model xdl cannot build"):
        xdl.load(tmp_path / "odd.npz")


def test_a_config_file_that_is_not_toml_text_or_spells_an_option_twice_is_named(tmp_path):
    from xdl.config import TrainConfig

    twice = tmp_path / "twice.toml"
    twice.write_text("batch_size = 32\nbatch-size = 16\n")
    with pytest.raises(ValueError, match=r"'batch_size' and 'batch-size' are the same option"):
        TrainConfig.from_toml(twice)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe epochs = 1\n")
    with pytest.raises(ValueError, match=r"--config '.*binary.toml' is not valid TOML"):
        TrainConfig.from_toml(binary)
    with pytest.raises(IsADirectoryError, match=r"--config: '.*' is a directory, not a TOML file"):
        TrainConfig.from_toml(tmp_path)


def test_a_config_files_options_may_be_spelled_with_dashes_as_the_flags_are(tmp_path):
    """``batch-size = 32`` in a --config file is batch_size, as --batch-size is (the same option spelled
    twice is refused, above); a flag over it is taken as over ``batch_size = 32``, and a bad value is named."""
    from xdl.config import TrainConfig

    dashed = tmp_path / "dashed.toml"
    dashed.write_text('batch-size = 32\ndecay-rate = 0.5\nbatch-norm = false\n')
    config = TrainConfig.from_toml(dashed)
    assert (config.batch_size, config.decay_rate, config.batch_norm) == (32, 0.5, False)
    assert TrainConfig.from_toml(dashed, overrides={"batch_size": 8}).batch_size == 8
    assert TrainConfig.from_dict({"max-grad-norm": 2.0}).max_grad_norm == 2.0
    dashed.write_text("decay-rate = -1.0\n")
    with pytest.raises(ValueError, match=r"^config file '.*dashed.toml': decay_rate must be a finite number ≥ 0, "
                                         r"got -1\.0$"):
        TrainConfig.from_toml(dashed)


def test_resume_names_a_bad_value_and_takes_the_checkpoint_file_too(tmp_path):
    """``resume=``: the directory a Checkpoint wrote to or its file, in both loops; another value is
    refused, naming ``resume``, before anything is trained."""
    from xdl.config import TrainConfig
    from xdl.train import fit_many

    s = moons()
    straight = trainer_for(epochs=4)
    straight.fit(s.X_train, s.y_train)
    first = trainer_for(epochs=2, callbacks=[Checkpoint(tmp_path)])
    first.fit(s.X_train, s.y_train)
    for bad, error, message in ((123, TypeError, "resume must be the directory a Checkpoint wrote to .* got 123"),
                                (True, TypeError, "got True"), ("", ValueError, "resume: '' names no directory")):
        trainer = trainer_for(epochs=4, callbacks=[Checkpoint(tmp_path)])
        with pytest.raises(error, match=message):
            trainer.fit(s.X_train, s.y_train, resume=bad)
        assert trainer.epoch == 0 and trainer.optimizer.t == 0
        with pytest.raises(error, match=message):
            fit_many([TrainConfig(dataset="moons", hidden=(8,), epochs=1, patience=0)], s.X_train, s.y_train,
                     resume=bad)
    resumed = trainer_for(epochs=4, callbacks=[Checkpoint(tmp_path)])
    resumed.fit(s.X_train, s.y_train, resume=tmp_path / "checkpoint.npz")  # the file itself
    assert state_of(resumed).keys() == state_of(straight).keys()
    for name, value in state_of(straight).items():
        np.testing.assert_array_equal(state_of(resumed)[name], value)


def test_a_warning_made_deep_in_xdl_points_at_the_users_line(monkeypatch):
    """`warn_caller` walks out of the package through generated op functions too (compiled under
    a name in the package), and never counts a <string>, <stdin> or <doctest> frame as xdl's."""
    from xdl.caller import in_package, warn_caller
    from xdl.ops import NumpyOps

    # a matmul that warns, as code of the package (a file name in it) would
    source = "def matmul(self, *args, **kwargs):\n    warn_caller('a product was made')\n    return base(self, *args, **kwargs)\n"
    scope = {"warn_caller": warn_caller, "base": NumpyOps.matmul}
    exec(compile(source, str(Path(xdl.__file__).parent / "ops" / "<warning matmul>"), "exec"), scope)
    monkeypatch.setattr(NumpyOps, "matmul", scope["matmul"])
    model, x = xdl.nn.mlp(2, [4], 2), xdl.tensor(np.ones((3, 2), np.float32), backend=xdl.backend.get_backend("numpy"))
    with pytest.warns(UserWarning, match="a product was made") as w:
        line = sys._getframe().f_lineno + 1
        model(x)
    assert {(x.filename, x.lineno) for x in w} == {(__file__, line)}
    assert not any(in_package(name) for name in ("<string>", "<stdin>", "<doctest xdl.tensor[0]>", __file__))
    assert in_package(xdl.__file__) and in_package(str(Path(xdl.__file__).parent / "functions" / "<op linear>"))


# -- a data scientist's tasks beyond digits (regression, binary and multi-label, custom data) ---
def test_a_regression_model_predicts_values_and_keeps_saying_so_after_a_save(tmp_path):
    X, y = regression_data()
    xdl.seed(0)
    model = xdl.nn.mlp(3, [16], 1)
    Trainer(model, xdl.losses.MeanSquaredError(), Adam(model, lr=0.01), epochs=20, batch_size=32,
            progress=False).fit(X, y)
    assert model.predicts == "values"
    predictions = model.predict(X)  # its outputs, (m,) for one: not the classes a logit > 0 would give
    assert predictions.shape == (len(X),) and np.array_equal(predictions, model.predict_outputs(X).ravel())
    with pytest.raises(ValueError, match="predict_proba: this model predicts values"):
        model.predict_proba(X)
    loaded = xdl.load(xdl.save(model, tmp_path / "regression.npz"))
    assert loaded.predicts == "values" and np.array_equal(loaded.predict(X), predictions)


def test_multi_label_binary_cross_entropy_measures_each_label_and_predicts_them():
    X, y = regression_data()
    labels = np.stack([y > 0, X[:, 0] > 0], axis=1).astype(np.float32)  # two yes/no labels per example
    xdl.seed(0)
    model = xdl.nn.mlp(3, [16], 2)
    trainer = Trainer(model, BinaryCrossEntropy(), Adam(model, lr=0.01), epochs=30, batch_size=32, progress=False)
    history = trainer.fit(X, labels)
    logits = model.predict_outputs(X)
    share = float(((logits > 0) == (labels > 0.5)).mean())  # Keras's binary accuracy
    assert history[-1]["train_accuracy"] == pytest.approx(share, abs=1e-12) and share > 0.9
    assert trainer.evaluate(X, labels)["accuracy"] == pytest.approx(share, abs=1e-12)
    p = model.predict_proba(X)  # each label's probability (not a softmax across them)
    assert p.shape == (len(X), 2) and np.allclose(p, 1 / (1 + np.exp(-logits.astype(np.float64))), rtol=1e-5)
    assert np.array_equal(model.predict(X), (logits > 0).astype(np.int64))


def test_a_multi_label_accuracy_does_not_depend_on_the_evaluation_batch_size():
    """accuracy = Σᵢ (right labels of i)/k / m = (right labels)/(m·k), one division: the shares
    summed batch by batch (2/3 + 1/3 + …) rounded at the batches' bounds, and evaluate's accuracy
    of one model on one set changed in its last bit with batch_size (0.6533333333333334 at 1,
    0.6533333333333333 at 50)."""
    rng = np.random.default_rng(1)
    X, labels = rng.normal(size=(50, 4)).astype(np.float32), rng.integers(0, 2, (50, 3))
    xdl.seed(0)
    model = xdl.nn.mlp(4, [6], 3)
    trainer = Trainer(model, BinaryCrossEntropy(), Adam(model, lr=0.01), epochs=2, batch_size=8, progress=False)
    trainer.fit(X, labels)
    right = int(((model.predict_outputs(X) > 0) == (labels > 0.5)).sum())
    accuracies = {trainer.evaluate(X, labels, batch_size=size)["accuracy"] for size in (1, 7, 50, 99)}
    assert accuracies == {right / (50 * 3)}
    # and the cost is the loss's over the set: its mean over the m·k labels, as each batch's is (no second ÷ k)
    cost = BinaryCrossEntropy()(xdl.tensor(model.predict_outputs(X)), xdl.tensor(labels.astype(np.float32)))
    assert trainer.evaluate(X, labels)["cost"] == pytest.approx(float(cost.numpy()), rel=1e-5)


def test_binary_cross_entropy_takes_soft_labels_in_either_shape_and_counts_their_nearer_class():
    X, y = regression_data()
    soft = 1 / (1 + np.exp(-2 * y))  # probabilities, not 0/1
    accuracies = []
    for labels in (soft, soft[:, None]):
        xdl.seed(0)
        model = xdl.nn.mlp(3, [16], 1)
        trainer = Trainer(model, BinaryCrossEntropy(), Adam(model, lr=0.01), epochs=10, batch_size=32,
                          progress=False)
        record = trainer.fit(X, labels)[-1]
        right = float(((model.predict_outputs(X).ravel() > 0) == (soft > 0.5)).mean())
        assert record["train_accuracy"] == pytest.approx(right, abs=1e-12) and right > 0.8
        accuracies.append(record["train_accuracy"])
    assert accuracies[0] == accuracies[1]
    with pytest.raises(ValueError, match=r"^y: BinaryCrossEntropy: labels must be in \[0, 1\]"):
        Trainer(model, BinaryCrossEntropy(), SGD(model), progress=False).fit(X, (y > 0) * 2)


@pytest.mark.parametrize("callback", [EarlyStopping(monitor="dev_accuracy", restore_best=False),
                                      Checkpoint("unused", monitor="dev_accuracy")])
def test_monitoring_an_accuracy_a_regression_does_not_measure_is_refused_before_any_step(callback):
    X, y = regression_data()
    xdl.seed(0)
    model = xdl.nn.mlp(3, [8], 1)
    opt = Adam(model, lr=0.01)
    trainer = Trainer(model, xdl.losses.MeanSquaredError(), opt, epochs=3, progress=False, callbacks=[callback])
    with pytest.raises(ValueError, match=f"{type(callback).__name__} monitors 'dev_accuracy', but this run's loss "
                                         "measures no accuracy"):
        trainer.fit(X[:150], y[:150], dev=(X[150:], y[150:]))
    assert opt.t == 0 and trainer.epoch == 0


class NoDeclaredWidth(xdl.nn.Module):
    """A model of a user's own: parameters of its own, no ``out_features`` anywhere."""

    def __init__(self):
        super().__init__()
        self.w = xdl.Parameter(np.random.default_rng(0).standard_normal((2, 2)).astype(np.float32) * 0.1)

    def forward(self, x):
        return x @ self.w


def test_a_model_of_no_declared_width_has_every_label_checked_before_its_first_step():
    s = moons(200)
    model = NoDeclaredWidth()
    opt = Adam(model, lr=0.01)
    y = s.y_train.copy()
    y[-1] = 5  # the last batch's: found at step 8 of the first epoch before
    trainer = Trainer(model, SoftmaxCrossEntropy(), opt, epochs=2, batch_size=16, progress=False)
    with pytest.raises(ValueError, match=r"^y has class index 5, outside the model's 2 classes \[0, 2\)"):
        trainer.fit(s.X_train, y)
    assert opt.t == 0 and trainer.step == 0
    assert len(trainer.fit(s.X_train, s.y_train)) == 2 and opt.t == 2 * -(-len(y) // 16)
    targets = s.X_train[:, 0].copy()
    targets[3] = np.nan
    model = NoDeclaredWidth()
    model.w = xdl.Parameter(np.zeros((2, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="y: MeanSquaredError: targets contain NaN or Inf"):
        Trainer(model, xdl.losses.MeanSquaredError(), SGD(model), progress=False).fit(s.X_train, targets)


def test_labels_that_are_missing_nan_or_of_another_length_are_named():
    s = moons(200)
    trainer = trainer_for(epochs=1)
    with pytest.raises(TypeError, match="^y is None; the labels \\(or targets\\) of X are needed"):
        trainer.fit(s.X_train, None)
    with pytest.raises(TypeError, match="^y is None; the labels \\(or targets\\) of X are needed"):
        trainer.evaluate(s.X_train, None)  # (it said "fit needs the labels")
    with pytest.raises(ValueError, match="^y must be an array of one class label per example of X, got a single value "
                                         "array\\(1\\)"):
        trainer.fit(s.X_train, 1)  # (it said "y has 0 labels for 120 examples")
    model = xdl.nn.mlp(2, [3], 1)
    regression = Trainer(model, xdl.losses.MeanSquaredError(), SGD(model), progress=False)
    with pytest.raises(ValueError, match="^y must be an array of one target per example of X, got a single value"):
        regression.fit(s.X_train, 1.5)
    y = s.y_train.astype(float)
    y[3] = np.nan
    with pytest.raises(ValueError, match=r"^y must hold integer class indices, got NaN or Inf \(first at example 3\)"):
        trainer.fit(s.X_train, y)
    with pytest.raises(ValueError, match=r"\(X_dev and y_dev must have the same length\)"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev[:-1]))
    X, targets = regression_data()
    model = xdl.nn.mlp(3, [8], 1)
    with pytest.raises(ValueError, match=r"^y: MeanSquaredError: targets have values beyond float32's range"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # and no overflow warning from the check itself
            Trainer(model, xdl.losses.MeanSquaredError(), SGD(model), progress=False).fit(X, targets * 1e38)


def test_numbers_held_as_objects_are_features_as_scikit_learn_reads_them():
    s = moons(200)
    X = s.X_train.astype(object)  # a pandas frame of nullable Int64 columns reads so
    history = trainer_for(epochs=1).fit(X, s.y_train)
    assert len(history) == 1
    X[0, 0] = None  # a missing value: NaN, as scikit-learn reads it
    with pytest.raises(ValueError, match=r"X contains NaN or Inf \(first at example 0, feature 0\)"):
        trainer_for(epochs=1).fit(X, s.y_train)
    X[0, 0] = "a"
    with pytest.raises(TypeError, match=r"X must hold numbers, got dtype object holding values that are not numbers "
                                        r"\(first: 'a' at example 0, feature 0\)"):
        trainer_for(epochs=1).fit(X, s.y_train)


# -- found by a user who cannot lose work ----------------------------------------------------------
def test_files_are_written_where_a_link_points_and_a_failed_write_names_the_file(tmp_path, monkeypatch):
    model = xdl.nn.mlp(2, [3], 2)
    target = xdl.save(model, tmp_path / "real.npz")
    (tmp_path / "link.npz").symlink_to(target)
    xdl.save(xdl.nn.mlp(2, [3], 2), tmp_path / "link.npz")
    assert (tmp_path / "link.npz").is_symlink() and xdl.load(tmp_path / "link.npz") is not None
    with pytest.raises(ValueError, match="save: the path is ''"):
        xdl.save(model, "")
    before = target.read_bytes()

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"No space left on device: '.*real.npz'"):
        xdl.save(model, target)
    assert target.read_bytes() == before


def test_a_plot_is_written_atomically(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from xdl.plots import plot_history

    history = trainer_for(epochs=2).fit(moons(200).X_train, moons(200).y_train)
    path = plot_history(history, tmp_path / "curves.png")
    before = path.read_bytes()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError, match="No space left on device: '.*curves.png'"):
        plot_history(history, path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]


@pytest.mark.parametrize("header_change,match", [
    ({"format": True}, "damaged or not an xdl model file"), ({"format": -5}, "damaged or not an xdl model file"),
    ({"extra": "hi"}, "damaged or not an xdl model file"), ({"format": 99}, "has format 99"),
    ({"format": 0}, "damaged or not an xdl model file"), ({"format": 3}, "has format 3; this xdl reads formats up to")])
def test_a_model_file_with_a_header_not_xdls_is_named(tmp_path, header_change, match):
    path = xdl.save(xdl.nn.mlp(2, [3], 2), tmp_path / "m.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["__xdl_architecture__"]))
    arrays["__xdl_architecture__"] = np.array(json.dumps({**header, **header_change}))
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match):
        xdl.load(path)


def test_a_resume_refuses_other_augmentation_or_evaluation_of_the_train_set(tmp_path):
    s = moons()
    trainer_for(epochs=2, callbacks=[Checkpoint(tmp_path)]).fit(s.X_train, s.y_train)
    with pytest.raises(ValueError, match="resume: augment was None in the checkpoint"):
        trainer_for(epochs=3, callbacks=[Checkpoint(tmp_path)], augment=lambda X, rng: X).fit(
            s.X_train, s.y_train, resume=tmp_path)
    with pytest.raises(ValueError, match="resume: eval_train was True in the checkpoint, this run has False"):
        trainer_for(epochs=3, callbacks=[Checkpoint(tmp_path)], eval_train=False).fit(
            s.X_train, s.y_train, resume=tmp_path)


def test_a_control_file_written_just_before_a_resume_is_waited_for_and_applied(tmp_path, monkeypatch):
    from xdl.train import Control

    s = moons()
    trainer_for(epochs=2, callbacks=[Control(tmp_path), Checkpoint(tmp_path)]).fit(s.X_train, s.y_train)
    monkeypatch.setattr(xdl.train.control, "SETTLE_SECONDS", 0.3)
    (tmp_path / "control.toml").write_text("lr = 0.0123")  # just now: not settled yet
    history = trainer_for(epochs=3, callbacks=[Control(tmp_path), Checkpoint(tmp_path)]).fit(
        s.X_train, s.y_train, resume=tmp_path)
    assert history["lr"][-1] == 0.0123 and (tmp_path / "control-applied-resume-3.toml").exists()


# -- found by a researcher reproducing results -----------------------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_a_mid_epoch_resume_under_a_per_step_schedule_records_the_epochs_rate(tmp_path):
    s = moons()
    # (per step: the optimizer's lr)
    schedule = lambda: xdl.optim.schedules.inverse_time(3e-3, decay_rate=0.01)  # noqa: E731

    def trainer(augment, callbacks=()):
        xdl.seed(0)
        model = xdl.nn.mlp(2, [16], 2)
        return Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=schedule()), epochs=3, batch_size=32,
                       augment=augment, callbacks=list(callbacks), progress=False)

    straight = trainer(SignalAtStep(at_call=-1)).fit(s.X_train, s.y_train)
    with pytest.raises(Interrupted):
        trainer(SignalAtStep(at_call=17), [Checkpoint(tmp_path, every=None)]).fit(s.X_train, s.y_train)
    resumed = trainer(SignalAtStep(at_call=-1), [Checkpoint(tmp_path, every=None)]).fit(
        s.X_train, s.y_train, resume=tmp_path)
    assert resumed["lr"] == straight["lr"]  # the resumed epoch's was the rate of the step it resumed at


def test_a_fit_stopped_inside_a_step_cannot_be_gone_on_with_only_resumed(tmp_path):
    class StopInside:  # a second Ctrl-C: the KeyboardInterrupt no signal handler caught, inside a step
        calls = 0

        def __call__(self, X, rng):
            self.calls += 1
            if self.calls == 5:
                raise KeyboardInterrupt
            return X

    s = moons()
    trainer = trainer_for(epochs=2, augment=StopInside(), callbacks=[Checkpoint(tmp_path)])
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(s.X_train, s.y_train)
    with pytest.raises(RuntimeError, match="last fit was stopped inside a step .* resume from its last checkpoint"):
        trainer.fit(s.X_train, s.y_train)  # its update may have been applied: going on would apply it twice


def test_searching_the_seed_is_refused_and_a_sequential_search_leaves_the_generators_alone():
    from xdl.backend import host_rng
    from xdl.tune import tune

    s = moons()
    with pytest.raises(ValueError, match="space: seed cannot be in a search space"):
        tune(s.X_train, s.y_train, (s.X_dev, s.y_dev), {"seed": {"choice": [7, 8]}}, trials=2)
    xdl.seed(100)
    before = host_rng().bit_generator.state
    tune(s.X_train, s.y_train, (s.X_dev, s.y_dev), {"lr": {"log_uniform": [1e-3, 1e-2]}}, trials=1,
         base=xdl.config.TrainConfig(hidden=[8], epochs=1, progress=False), execution="sequential")
    assert host_rng().bit_generator.state == before


def test_loading_a_model_touches_no_generator(tmp_path, monkeypatch):
    path = xdl.save(xdl.nn.mlp(2, [3], 2), tmp_path / "m.npz")

    def no_draws():
        raise AssertionError("load drew from (or rewound) the host generator another thread may be drawing from")

    monkeypatch.setattr(xdl.nn.architecture, "host_rng_copy", no_draws)  # (what `build` draws from)
    assert xdl.load(path) is not None


# -- found by a Keras user porting a workflow --------------------------------------------------------
@pytest.mark.parametrize("last,loss", [(xdl.nn.Softmax, SoftmaxCrossEntropy), (xdl.nn.Sigmoid, BinaryCrossEntropy)])
def test_a_probability_output_with_a_loss_of_logits_is_refused_where_made(last, loss):
    model = xdl.nn.Sequential(xdl.nn.Dense(2, 4), xdl.nn.ReLU(), xdl.nn.Dense(4, 2 if last is xdl.nn.Softmax else 1),
                              last())
    with pytest.raises(ValueError, match=f"model: it ends in {last.__name__}, so its outputs are probabilities, "
                                         f"and {loss.__name__} takes logits"):
        Trainer(model, loss(), Adam(model), progress=False)


def test_keras_habits_are_named_where_they_would_do_nothing():
    class EpochBegin(xdl.train.Callback):
        def on_epoch_begin(self, trainer):  # a Keras hook
            pass

    model = xdl.nn.mlp(2, [4], 2)
    with pytest.raises(TypeError, match=r"EpochBegin.on_epoch_begin is no hook of xdl's Callback"):
        Trainer(model, SoftmaxCrossEntropy(), Adam(model), callbacks=[EpochBegin()], progress=False)
    with pytest.raises(TypeError, match=r"schedule must take one argument, the epochs completed"):
        Trainer(model, SoftmaxCrossEntropy(), Adam(model), schedule=lambda epoch, lr: lr, progress=False)
    with pytest.raises(TypeError, match="load_state_dict: state must be a dict name → array"):
        model.load_state_dict([p.numpy() for p in model.parameters()])
    s = moons(200)
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model), epochs=1, progress=False)
    model[0].weight.requires_grad = False  # frozen after its optimizer was made: Adam would move it still
    with pytest.raises(ValueError, match=r"optimizer: it was made when 0.weight trained, and it is frozen now"):
        trainer.fit(s.X_train, s.y_train)
    optimizer = Adam(model)  # made while 0.weight is frozen: it leaves it out
    model[0].weight.requires_grad = True  # and unfrozen (fine-tuning): it would get gradients and no update
    with pytest.raises(ValueError, match=r"optimizer: it was made when 0.weight was frozen, which it left out, and it "
                                         r"trains now"):
        Trainer(model, SoftmaxCrossEntropy(), optimizer, epochs=1, progress=False).fit(s.X_train, s.y_train)
    optimizer.add_param_group({"params": [model[0].weight]})  # given to it: it trains
    before = model[0].weight.numpy().copy()
    Trainer(model, SoftmaxCrossEntropy(), optimizer, epochs=1, progress=False).fit(s.X_train, s.y_train)
    assert not np.array_equal(before, model[0].weight.numpy())
    head = Adam(model[2].parameters())  # an optimizer of some parameters only, as PyTorch's: the rest stay
    Trainer(model, SoftmaxCrossEntropy(), head, epochs=1, progress=False).fit(s.X_train, s.y_train)


@pytest.mark.parametrize("epoch", [1, 2])
def test_a_freeze_after_an_epochs_last_step_is_refused_after_its_record(tmp_path, epoch):
    """A parameter a step hook freezes is refused before another step of the epoch (it would move),
    and after the epoch's last step by the next epoch's start, as an epoch-end callback's freeze: it
    was refused at once, epoch 1's record and checkpoint lost with it, and a freeze after the run's
    last step (no step follows) failed the fit."""
    s = moons(200)
    steps = -(-len(s.X_train) // 32)
    from xdl.train.checkpoint_files import read_position

    class FreezeAtLastStep(Callback):
        def on_step_end(self, trainer, cost):
            if trainer.epoch + 1 == epoch and trainer.step == steps:
                trainer.model[0].weight.requires_grad = False

    trainer = trainer_for(epochs=2, callbacks=[FreezeAtLastStep(), Checkpoint(tmp_path)])
    if epoch == 2:
        trainer.fit(s.X_train, s.y_train)
    else:
        with pytest.raises(ValueError, match=r"it was made when 0.weight trained, and it is frozen now.*; to stop it "
                                             r"training within a run \(a callback\), .* set the rate of a group of "
                                             r"its own to 0"):
            trainer.fit(s.X_train, s.y_train)
    assert len(trainer.history) == epoch and (trainer.epoch, trainer.step) == (epoch, 0)
    assert read_position(tmp_path / "checkpoint.npz")[1:] == (epoch, 0)


@pytest.mark.parametrize("schedule", [None, xdl.optim.schedules.exponential(0.01, base=0.5)])
def test_a_group_whose_rate_a_callback_sets_to_0_stops_training_within_the_run(schedule):
    """What the refusal of a freeze within a run advises: the layer's group at a rate of 0 — its
    weights stay as they were from then on (weight decay and L2 scale with the rate), the others train
    — and under an epoch schedule, which would set the rate again at the next epoch, the schedule
    cleared too (the advice said the first half only)."""
    s = moons(200)
    xdl.seed(0)
    model = xdl.nn.mlp(2, [8], 2)
    first = list(model[0].parameters())
    rest = [p for p in model.parameters() if all(p is not q for q in first)]
    optimizer = xdl.optim.AdamW([{"params": first}, {"params": rest}], lr=0.01, weight_decay=0.1)
    kept = {}

    class StopLayer0(Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 1:
                trainer.optimizer.param_groups[0]["lr"] = 0
                trainer.schedule = None  # (the advice's second half: a no-op without one)
                kept.update(first=[p.numpy().copy() for p in first], rest=[p.numpy().copy() for p in rest])

    first[0].requires_grad = False
    with pytest.raises(ValueError, match=r"param_groups\[i\]\['lr'\] = 0; under an epoch schedule, .* clear it too: "
                                         r"trainer.schedule = None"):
        optimizer.check_trainable()
    first[0].requires_grad = True
    trainer = Trainer(model, SoftmaxCrossEntropy(), optimizer, epochs=3, l2=0.1, progress=False, seed=0,
                      schedule=schedule, callbacks=[StopLayer0()])
    trainer.fit(s.X_train, s.y_train)
    assert all(np.array_equal(p.numpy(), q) for p, q in zip(first, kept["first"]))
    assert not any(np.array_equal(p.numpy(), q) for p, q in zip(rest, kept["rest"]))


def test_a_later_fit_after_astype_is_refused_before_it_starts():
    """trainer.fit; model.astype("float64"); trainer.fit again: the optimizer holds the float32 buffers
    (`Optimizer.check_placed`), refused by fit itself — no callback's on_train_begin, the model's
    evaluation mode kept — as `Trainer(...)` refuses it, not by the first step's zero_grad."""
    class Begins(Callback):
        begun = 0

        def on_train_begin(self, trainer):
            self.begun += 1

    s = moons(200)
    model = xdl.nn.mlp(2, [4], 2)
    begins = Begins()
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model), epochs=1, callbacks=[begins], progress=False)
    trainer.fit(s.X_train, s.y_train)
    model.astype("float64").eval()
    trainer.epochs += 1
    with pytest.raises(RuntimeError, match=r"Adam: the parameters moved to new storage"):
        trainer.fit(s.X_train, s.y_train)
    assert begins.begun == 1 and not model.training  # nothing of the fit began


def test_a_call_takes_kerass_training_flag_and_keeps_the_modules_mode():
    xdl.seed(0)
    model = xdl.nn.mlp(2, [8], 2, batch_norm=True, dropout=0.5)
    X = np.random.default_rng(0).standard_normal((16, 2))
    model.train()
    inference = model(X, training=False).numpy()
    assert model.training and np.array_equal(inference, model.predict_outputs(X))
    model.eval()
    model(X, training=True)
    assert not model.training
    with pytest.raises(ValueError, match="training must be True or False"):
        model(X, training="no")


def test_a_history_column_a_callback_adds_later_and_membership_read_as_keras_does():
    class FromEpochTwo(xdl.train.Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] >= 2:
                trainer.history.records[-1]["note"] = "two"

    s = moons(200)
    history = trainer_for(epochs=3, callbacks=[FromEpochTwo()]).fit(s.X_train, s.y_train)
    assert history["note"] == [None, "two", "two"] and "note" in history.columns and "dev_cost" in history
    assert "nothing" not in history
    assert history.history["note"] == [None, "two", "two"] and list(history.history) == history.columns  # Keras's


def test_a_checkpoint_without_dev_keeps_the_best_of_the_train_counterpart(tmp_path):
    s = moons(200)
    trainer = trainer_for(epochs=4, callbacks=[Checkpoint(tmp_path, monitor="dev_accuracy")])
    history = trainer.fit(s.X_train, s.y_train)
    best = int(np.argmax(history["train_accuracy"])) + 1  # (the first of equals)
    assert xdl.serialization.read_extra(tmp_path / "best.npz")[0]["epoch"] == best


def test_the_keras_checks_leave_users_own_names_and_modes_alone():
    class Helper(xdl.train.Callback):
        on_gpu = False  # (a name of the user's own that starts as a hook does)

        def on_improvement(self):
            pass

    model = xdl.nn.mlp(2, [4], 2, batch_norm=True)
    Trainer(model, SoftmaxCrossEntropy(), Adam(model), callbacks=[Helper()], progress=False)  # accepted
    model.train()
    model[1].eval()  # a batch norm kept in evaluation while the rest trains
    model(np.zeros((3, 2)), training=False)
    assert model.training and not model[1].training

    class ReadsIt(xdl.nn.Module):
        def forward(self, x, training=False):
            self.seen = (training, self.training)
            return x

    reads = ReadsIt()
    reads(np.zeros((1, 2)), training=True)
    assert reads.seen == (True, True) and reads.training  # (its mode as before: training)


def state_at_a_later_fit(between):
    """A run restored to its best by `EarlyStopping`, ``between(trainer)``, then a later fit: the
    trainer and its model's state when that fit begins."""
    s = moons()
    trainer = trainer_for(epochs=3, callbacks=[EarlyStopping(patience=1)])
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    between(trainer)
    trainer.epochs, seen = 4, []

    class Seen(xdl.train.Callback):
        def on_train_begin(self, t):
            seen.append(t.model.state_dict())

    trainer.callbacks.append(Seen())
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    return trainer, seen[0]


def test_a_later_fit_goes_on_from_weights_the_user_loaded_after_a_restore():
    _, state = state_at_a_later_fit(lambda t: t.model.load_state_dict(
        {name: np.zeros_like(a) for name, a in t.model.state_dict().items()}))
    assert all(not a.any() for a in state.values())


def test_a_forward_pass_after_a_restore_does_not_read_as_weights_of_the_users_own():
    kept = {}

    def forward(trainer):
        kept.update(trainer.callbacks[0].run_state)  # the run's last weights, which a later fit goes on from
        trainer.model(moons().X_dev)  # in training mode: batch norm's running statistics move, the weights do not

    trainer, state = state_at_a_later_fit(forward)
    assert all(np.array_equal(state[name], kept[name]) for name, _ in trainer.model.named_parameters())


def test_a_fit_stopped_at_an_epochs_end_cannot_be_gone_on_with_only_resumed(monkeypatch):
    s = moons()
    trainer = trainer_for(epochs=2, eval_train=False)
    real = Trainer._evaluation_sums
    monkeypatch.setattr(Trainer, "_evaluation_sums", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))  # a second Ctrl-C in the dev evaluation
    monkeypatch.setattr(Trainer, "_evaluation_sums", real)
    with pytest.raises(RuntimeError, match="stopped inside a step or an epoch's end"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))  # its epoch's costs are gone: it read 0.0


# -- callbacks of the user's own: their errors and state ------------------------------------------
class RaiseAt(Callback):
    def __init__(self, epoch):
        self.epoch, self.armed = epoch, True

    def on_epoch_end(self, trainer, record):
        if self.armed and record["epoch"] == self.epoch:
            raise ValueError("a bug in my logger")


def callback_trainer(callbacks, epochs=4):
    xdl.seed(0)
    model = xdl.nn.mlp(2, [8], 2)
    return Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=1e-2), epochs=epochs, callbacks=callbacks,
                   progress=False)


def test_an_error_in_a_callback_at_an_epochs_end_leaves_only_a_resume(tmp_path):
    """The epoch's record was taken and some callbacks had not seen it (EarlyStopping, Checkpoint): a
    later fit went on from the next epoch as if they had, restoring the wrong best epoch."""
    s = moons(200)
    raising = RaiseAt(2)
    trainer = callback_trainer([raising, Checkpoint(tmp_path)])
    with pytest.raises(ValueError, match="a bug in my logger"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    raising.armed = False
    with pytest.raises(RuntimeError, match=r"stopped inside a step or an epoch's end \(.*a callback's too\)"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    history = trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=tmp_path)  # from epoch 1's checkpoint
    straight = callback_trainer([RaiseAt(99), Checkpoint(tmp_path / "straight")])
    assert history["dev_cost"] == straight.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))["dev_cost"]


class Counting(Callback):
    def __init__(self, fails=False):
        self.seen, self.fails = 0, fails

    def on_epoch_end(self, trainer, record):
        self.seen += 1

    def state_dict(self):
        return {"seen": self.seen}, {}

    def load_state_dict(self, state, arrays):
        if self.fails:
            raise KeyError("seen_renamed")
        self.seen = state["seen"]


def test_a_resume_a_callback_fails_is_named_and_leaves_only_a_resume(tmp_path):
    s = moons(200)
    callback_trainer([Counting(), Checkpoint(tmp_path)], epochs=2).fit(s.X_train, s.y_train)
    failing = Counting(fails=True)
    trainer = callback_trainer([failing, Checkpoint(tmp_path)])
    with pytest.raises(ValueError, match=r"resume: Counting.load_state_dict\(state, arrays\) failed on the "
                                         r"checkpoint's state \{'seen': 2\}: KeyError: 'seen_renamed'"):
        trainer.fit(s.X_train, s.y_train, resume=tmp_path)
    with pytest.raises(RuntimeError, match="its resume failed partway"):  # the model holds the checkpoint's weights
        trainer.fit(s.X_train, s.y_train)
    failing.fails = False
    trainer.fit(s.X_train, s.y_train, resume=tmp_path)
    assert failing.seen == 4 and trainer.epoch == 4


def test_a_new_run_is_refused_over_an_unfinished_runs_checkpoint(tmp_path):
    """As ``xdl train`` refuses it: a fit without resume= wrote its first epoch over the checkpoint
    of an interrupted run. A finished run's checkpoint is replaced, as by any rerun."""
    s = moons(200)
    callback_trainer([RaiseAt(99), Checkpoint(tmp_path)], epochs=2).fit(s.X_train, s.y_train)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    callback_trainer([RaiseAt(99), Checkpoint(tmp_path)], epochs=2).fit(s.X_train, s.y_train)  # over: replaced
    raising = RaiseAt(2)
    with pytest.raises(ValueError, match="a bug in my logger"):  # stopped after epoch 1's checkpoint
        callback_trainer([raising, Checkpoint(tmp_path)], epochs=4).fit(s.X_train, s.y_train)
    kept = (tmp_path / "checkpoint.npz").read_bytes()
    assert kept != before
    with pytest.raises(FileExistsError, match=r"Checkpoint: '.*' holds the checkpoint of an unfinished run \(after "
                                              r"epoch 1 of 4\): fit\(\.\.\., resume='.*'\) continues it"):
        callback_trainer([RaiseAt(99), Checkpoint(tmp_path)]).fit(s.X_train, s.y_train)
    assert (tmp_path / "checkpoint.npz").read_bytes() == kept


def test_a_new_run_is_refused_over_a_checkpoint_that_cannot_be_read(tmp_path):
    """As ``xdl train`` refuses it: a damaged checkpoint.npz (truncated from outside) let a new run
    start there, and its first best epoch wrote over the best.npz beside it."""
    s = moons(200)
    callback_trainer([RaiseAt(99), Checkpoint(tmp_path)], epochs=2).fit(s.X_train, s.y_train)
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(path.read_bytes()[:100])
    best = (tmp_path / "best.npz").read_bytes()
    with pytest.raises(FileExistsError, match=r"Checkpoint: '.*' holds a checkpoint no run can continue from \(.*\); "
                                              r"'.*best.npz' may still hold the best epoch's state: to start afresh"):
        callback_trainer([RaiseAt(99), Checkpoint(tmp_path)]).fit(s.X_train, s.y_train)
    assert (tmp_path / "best.npz").read_bytes() == best and len(path.read_bytes()) == 100
    xdl.save(xdl.nn.mlp(2, [3], 2), path)  # a model file there, not a checkpoint: no position, as xdl train says
    with pytest.raises(FileExistsError, match=r"holds a checkpoint no run can continue from \('.*checkpoint.npz' is a "
                                              r"model file, not a training checkpoint"):
        callback_trainer([RaiseAt(99), Checkpoint(tmp_path)]).fit(s.X_train, s.y_train)


def test_a_callbacks_state_and_record_are_checked_and_named(tmp_path):
    """Lightning habits: a state_dict of one dict, a non-JSON value, an array in the record, its hook
    names — each named where it happens, not as an unpacking error at the first checkpoint."""
    s = moons(200)

    class OneDict(Callback):
        def state_dict(self):
            return {"seen": 1, "best": 2.0}

    class Unwritable(Callback):
        def state_dict(self):
            return {"classes": {1, 2}}, {}

    class ArrayColumn(Callback):
        def on_epoch_end(self, trainer, record):
            record["f1"] = np.array([0.5, 0.7])

    class LightningHook(Callback):
        def on_train_epoch_end(self, trainer, module):
            pass

    for callback, message in ((OneDict(), r"OneDict.state_dict must return a pair \(a dict of JSON values, a dict "
                                          r"of NumPy arrays\).* got dict"),
                              (Unwritable(), r"Unwritable.state_dict: its first dict is written as JSON")):
        with pytest.raises(TypeError, match=message):
            callback_trainer([callback, Checkpoint(tmp_path / type(callback).__name__)], epochs=1).fit(s.X_train,
                                                                                                        s.y_train)
    for checkpoints in ([], [Checkpoint(tmp_path / "array")]):  # named before a checkpoint writes the record
        with pytest.raises(TypeError, match=r"the record of epoch 1 holds 'f1' = array\(\[0.5, 0.7\]\) \(ndarray\) "
                                            r"after ArrayColumn.on_epoch_end: a column holds numbers"):
            callback_trainer([ArrayColumn(), *checkpoints], epochs=1).fit(s.X_train, s.y_train)
    with pytest.raises(TypeError, match=r"LightningHook.on_train_epoch_end is no hook of xdl's Callback"):
        callback_trainer([LightningHook()])


@pytest.mark.parametrize("state, got", [(({"seen": 1},), "tuple"), (({}, {}, {}), "tuple"), (([], {}), "tuple"),
                                        (({}, [("w", 1)]), "tuple"), ([{}, {}], "list"), (None, "NoneType")])
def test_a_callbacks_state_dict_that_is_no_pair_of_dicts_is_named(tmp_path, state, got):
    """state_dict returns exactly two dicts, as a tuple: one dict, three, a list in place of a dict (or a list
    of the two) is named as the callback's mistake at the first checkpoint, not read on as a pair."""

    class Odd(Callback):
        def state_dict(self):
            return state

    s = moons(200)
    with pytest.raises(TypeError, match=rf"Odd.state_dict must return a pair \(a dict of JSON values, a dict of NumPy "
                                        rf"arrays\), as xdl's Callback.state_dict does; got {got}"):
        callback_trainer([Odd(), Checkpoint(tmp_path)], epochs=1).fit(s.X_train, s.y_train)


def test_a_callbacks_arrays_are_checked_and_named_as_its_own(tmp_path):
    """The second dict of a state_dict: a key that is no string came back from the checkpoint as one
    ({1: a} as {"1": a}: the resumed load_state_dict's arrays[1] a KeyError), and an object array
    was named as the file's "callback/0/x", not as the callback's."""
    s = moons(200)

    class IntKey(Callback):
        def state_dict(self):
            return {}, {1: np.ones(2)}

    class Objects(Callback):
        def state_dict(self):
            return {}, {"x": np.array([{"a": 1}], dtype=object)}

    class Ragged(Callback):
        def state_dict(self):
            return {}, {"x": [[1.0, 2.0], [3.0]]}

    for callback, message in ((IntKey(), r"IntKey.state_dict: its second dict names arrays in the checkpoint, by "
                                         r"strings: 1 \(int\) would come back on resuming as '1'"),
                              (Objects(), r"Objects.state_dict: its second dict's 'x' holds Python objects"),
                              (Ragged(), r"Ragged.state_dict: its second dict's 'x' is not an array")):
        with pytest.raises(TypeError, match=message):
            callback_trainer([callback, Checkpoint(tmp_path / type(callback).__name__)], epochs=1).fit(s.X_train,
                                                                                                        s.y_train)


def test_xdls_record_columns_a_callback_rewrites_are_refused_naming_it(tmp_path):
    """An accuracy rewritten in percent, a NaN cost, an epoch counted from 0: the run wrote them into
    its checkpoints, and their resume refused them as damaged or edited files ("no xdl writes it
    so"); a string cost failed in the progress bar's format, naming neither."""
    s = moons(200)

    class Rewrite(Callback):
        def __init__(self, column, value):
            self.column, self.value = column, value

        def on_epoch_end(self, trainer, record):
            record[self.column] = self.value

    for column, value, message in (("train_accuracy", 95.0, r"'train_accuracy' = 95.0 after Rewrite.on_epoch_end: "
                                                            r"xdl's column train_accuracy is a number in \[0, 1\] "
                                                            r"or None"),
                                   ("train_cost", float("nan"), r"'train_cost' = nan after Rewrite.on_epoch_end"),
                                   ("train_cost", "low", r"'train_cost' = 'low' after Rewrite.on_epoch_end"),
                                   ("train_accuracy", True, r"'train_accuracy' = True after Rewrite.on_epoch_end"),
                                   ("epoch", 0, r"holds 'epoch' = 0 after Rewrite.on_epoch_end")):
        with pytest.raises(ValueError, match=message):
            callback_trainer([Rewrite(column, value), Checkpoint(tmp_path / column)], epochs=1).fit(s.X_train,
                                                                                                     s.y_train)
    # a column of one's own, and xdl's lr or seconds written another way (a list per group), go on
    history = callback_trainer([Rewrite("lr", [1e-2, 1e-3]), Rewrite("accuracy_pct", 95.0)], epochs=1).fit(s.X_train,
                                                                                                          s.y_train)
    assert history.records[-1]["accuracy_pct"] == 95.0
    # xdl's own columns rewritten as NumPy's numbers (a float32 accuracy, an integer cost) are numbers too
    history = callback_trainer([Rewrite("train_accuracy", np.float32(0.5)), Rewrite("train_cost", np.int64(2))],
                               epochs=1).fit(s.X_train, s.y_train)
    assert history.records[-1]["train_accuracy"] == 0.5 and history.records[-1]["train_cost"] == 2


def test_l2_and_layer_settings_a_callback_set_go_on_at_a_resume(tmp_path):
    """A callback's trainer.l2 = … (as its optimizer.lr = …) is the run's, in its checkpoints; a dropout
    rate or batch-norm momentum it set is the module's, not saved: a resume went on with the values
    the model was made with, unsaid, and ended with other weights than the uninterrupted run."""
    s = moons(200)

    class Change(Callback):
        def __init__(self, rate_again=False):
            self.rate_again = rate_again

        def on_train_begin(self, trainer):
            if self.rate_again and trainer.resumed and trainer.epoch >= 1:
                trainer.model[2].rate = 0.05  # (set again, as the docs say, when resumed)

        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 1:
                trainer.l2, trainer.model[2].rate = 0.5, 0.05

    def trainer(callbacks):
        xdl.seed(0)
        model = xdl.nn.mlp(2, [8], 2, dropout=0.2)
        return Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=1e-2), epochs=3, callbacks=callbacks, seed=0,
                       progress=False)

    whole = trainer([Change(rate_again=True), StopAtEpoch(99), Checkpoint(tmp_path / "whole")])
    whole.fit(s.X_train, s.y_train)
    for rate_again in (True, False):
        directory = tmp_path / f"again-{rate_again}"
        trainer([Change(), StopAtEpoch(2), Checkpoint(directory)]).fit(s.X_train, s.y_train)
        resumed = trainer([Change(rate_again), StopAtEpoch(99), Checkpoint(directory)])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            resumed.fit(s.X_train, s.y_train, resume=directory)
        said = [str(w.message) for w in caught if "rate was 0.05" in str(w.message)]
        assert resumed.l2 == 0.5
        if rate_again:
            assert not said
            for name, value in whole.model.state_dict().items():
                np.testing.assert_array_equal(resumed.model.state_dict()[name], value)
        else:
            assert len(said) == 1 and "module '2' (Dropout)" in said[0] and "on_train_begin" in said[0]


def test_a_layer_setting_of_nan_that_nothing_changed_is_not_said_at_a_resume(tmp_path):
    """A module of one's own whose config holds NaN (its "none"): every resume warned "its high was
    nan when … was written …, and the resumed model's is nan" (NaN != NaN), nothing having changed."""
    s = moons(200)

    class Clip(xdl.nn.Module):
        def __init__(self):
            super().__init__()
            self.high = float("nan")
            self.config = {"high": self.high}

        def forward(self, x):
            return x

    def trainer(epochs):
        xdl.seed(0)
        model = xdl.nn.Sequential(Clip(), *xdl.nn.mlp(2, [8], 2))
        return Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=1e-2), epochs=epochs,
                       callbacks=[Checkpoint(tmp_path)], progress=False)

    trainer(1).fit(s.X_train, s.y_train)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(2).fit(s.X_train, s.y_train, resume=tmp_path)
    assert not [str(w.message) for w in caught if "resume: module" in str(w.message)]


def test_a_stop_of_the_users_own_callback_is_named_and_a_resume_goes_on(tmp_path):
    s = moons(200)

    class StopAt(Callback):
        def on_epoch_end(self, trainer, record):
            trainer.stop_training = trainer.stop_training or record["epoch"] == 2

    history = callback_trainer([StopAt(), Checkpoint(tmp_path)]).fit(s.X_train, s.y_train)
    assert (history.stopped_epoch, history.stopped_by, len(history)) == (2, "stopped by StopAt", 2)
    resumed = callback_trainer([StopAt(), Checkpoint(tmp_path)]).fit(s.X_train, s.y_train, resume=tmp_path)
    assert (len(resumed), resumed.stopped_epoch, resumed.stopped_by) == (4, None, None)  # (only EarlyStopping's stays)



def test_a_stop_by_a_callback_after_the_checkpoint_is_saved_by_it(tmp_path):
    """A callback ordered after Checkpoint (order 200) that stops the run: the Checkpoint had saved
    the epoch without the stop, or — every=5, a stop at epoch 3 — nothing at all, and a resume went
    back to the run's start. Each Checkpoint that ran before the stop saves the run's last state."""
    s = moons(200)

    class StopLate(Callback):
        order = 200

        def __init__(self, at):
            self.at = at

        def on_epoch_end(self, trainer, record):
            trainer.stop_training = record["epoch"] == self.at

    trainer = callback_trainer([StopLate(3), Checkpoint(tmp_path, every=5)], epochs=10)
    history = trainer.fit(s.X_train, s.y_train)
    assert (len(history), history.stopped_by) == (3, "stopped by StopLate")
    assert trainer.last_checkpoint_at == (3, 0) and (tmp_path / "checkpoint.npz").is_file()
    resumed = callback_trainer([StopLate(None), Checkpoint(tmp_path, every=5)], epochs=10)
    assert len(resumed.fit(s.X_train, s.y_train, resume=tmp_path)) == 10  # from epoch 3 on


@pytest.mark.parametrize("every", [None, 2, 5])
def test_a_stop_by_a_callback_before_the_checkpoint_is_saved_by_it(tmp_path, every):
    """A callback ordered before Checkpoint (EarlyStopping's way) that stops the run at an epoch the
    Checkpoint's ``every`` does not save: the Checkpoint saves that epoch, the run's last, for a resume."""
    s = moons(200)

    class StopEarly(Callback):
        order = 50

        def on_epoch_end(self, trainer, record):
            trainer.stop_training = record["epoch"] == 3

    trainer = callback_trainer([StopEarly(), Checkpoint(tmp_path, every=every)], epochs=10)
    assert len(trainer.fit(s.X_train, s.y_train)) == 3
    assert trainer.last_checkpoint_at == (3, 0)
    assert xdl.serialization.read_extra(tmp_path / "checkpoint.npz")[0]["epoch"] == 3

def test_a_stop_in_on_train_begin_is_named_as_one_at_an_epochs_end(tmp_path):
    """A callback that stops the run before it trains (a budget already spent, say) is named by
    the history, as it is at an epoch's end (stopped_by was None: a stop without a reason)."""
    s = moons(200)

    class NoBudget(Callback):
        def on_train_begin(self, trainer):
            trainer.stop_training = True

    history = callback_trainer([NoBudget()]).fit(s.X_train, s.y_train)
    assert (len(history), history.stopped_epoch, history.stopped_by) == (0, 0, "stopped by NoBudget before epoch 1")


def test_softmax_cross_entropy_reads_boolean_labels_as_classes_0_and_1():
    loss, out = SoftmaxCrossEntropy(), xdl.tensor(np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]))
    assert loss(out, np.array([True, False, True])).item() == loss(out, np.array([1, 0, 1])).item()


# -- the training loop as Keras users drive it ----------------------------------------------------
def test_callbacks_given_as_a_generator_run_and_none_means_none():
    s = moons(200)
    stopping = EarlyStopping(monitor="train_cost", patience=1)
    xdl.seed(0)
    model = xdl.nn.mlp(2, [16], 2)

    def make(callbacks):
        return Trainer(model, SoftmaxCrossEntropy(), SGD(model, lr=0.3), epochs=60, callbacks=callbacks, progress=False)

    trainer = make(filter(None, [stopping, None]))
    assert trainer.callbacks == [stopping]  # (the check read the filter once; sorting it found nothing left)
    assert len(trainer.fit(s.X_train, s.y_train)) < 60
    assert make(None).callbacks == []


def test_a_resume_refuses_a_callback_that_monitors_another_metric(tmp_path):
    s = moons(200)
    trainer_for(epochs=2, callbacks=[EarlyStopping(monitor="dev_accuracy"), Checkpoint(tmp_path)]).fit(
        s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    other = trainer_for(epochs=4, callbacks=[EarlyStopping(monitor="dev_cost"), Checkpoint(tmp_path)])
    before = state_of(other)
    with pytest.raises(ValueError, match=r"monitors was \['dev_accuracy', 'dev_cost'\] in the checkpoint, this run "
                                         r"has \['dev_cost', 'dev_cost'\]"):
        other.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=tmp_path)
    assert_same_state(before, state_of(other))


class BlowUpAfter(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch:
            trainer.optimizer.lr = 1e30


def test_a_diverged_run_puts_back_its_best_weights_and_a_nan_model_predicts_nothing():
    s = moons(200)
    stopping = EarlyStopping(monitor="train_cost", patience=5)
    trainer = trainer_for(epochs=10, callbacks=[stopping, BlowUpAfter(3)], optimizer=SGD, lr=0.1, dropout=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError, match=r"the model holds its best epoch's weights again \(epoch 3, "
                                                     r"EarlyStopping's\)"):
            trainer.fit(s.X_train, s.y_train)
    assert_same_state(trainer.model.state_dict(), stopping.best_state)
    assert trainer.history.best_epoch == 3
    assert trainer.evaluate(s.X_train, s.y_train)["cost"] == pytest.approx(min(trainer.history["train_cost"]), rel=1e-5)

    broken = trainer_for(epochs=1)
    broken.model[0].weight.data[...] = np.nan
    with pytest.raises(ValueError, match=r"predict: the model's outputs are NaN or Inf for 40 of 40 rows"):
        broken.model.predict(s.X_dev[:40])
    with pytest.raises(ValueError, match=r"evaluate: the model holds NaN or Inf in 0.weight"):
        broken.evaluate(s.X_dev, s.y_dev)


def test_a_later_fit_starts_from_weights_the_user_loaded_even_the_best_ones(tmp_path):
    s = moons(200)
    seen = {}

    class StartWeights(Callback):
        def on_train_begin(self, trainer):
            seen["w"] = trainer.model.state_dict()

    trainer = trainer_for(epochs=40, lr=0.05, callbacks=[EarlyStopping(patience=2), StartWeights(),
                                                          Checkpoint(tmp_path)])
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert trainer.history.stopped_epoch is not None
    xdl.load(tmp_path / "best.npz", model=trainer.model)  # to fine-tune from the best epoch
    loaded = trainer.model.state_dict()
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert_same_state(seen["w"], loaded)


@pytest.mark.parametrize("run_info, message", [
    ({"started": object()}, "run_info must hold JSON values"), ({1, 2}, "run_info must be a dict of JSON values")])
def test_run_info_is_checked_when_the_trainer_is_made(run_info, message):
    with pytest.raises(TypeError, match=message):
        trainer_for(run_info=run_info)


def test_a_run_whose_callback_cleared_its_schedule_resumes_from_its_checkpoint(tmp_path):
    s = moons(200)

    class Drop(Callback):  # the Trainer's documented way: set the rate, clear trainer.schedule
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                trainer.schedule, trainer.optimizer.lr = None, 0.001

    def make(epochs):
        return trainer_for(epochs=epochs, schedule=lambda e: 0.01, callbacks=[Drop(), Checkpoint(tmp_path)])

    trainer = make(3)
    trainer.fit(s.X_train, s.y_train)
    trainer.epochs = 5
    trainer.fit(s.X_train, s.y_train)  # its checkpoints still record the schedule the run was made with
    assert len(make(6).fit(s.X_train, s.y_train, resume=tmp_path)) == 6


def test_a_fit_after_a_mid_epoch_stop_refuses_other_data():
    s = moons(300)
    trainer = trainer_for(epochs=3, augment=SignalAtStep(at_call=9))
    with pytest.raises(Interrupted):
        trainer.fit(s.X_train, s.y_train)
    assert trainer.step == 3
    with pytest.raises(ValueError, match=r"stopped in epoch 2 after step 3 of an epoch over 180 examples, and X has "
                                         "20: give it the same data"):
        trainer.fit(s.X_train[:20], s.y_train[:20])
    assert len(trainer.fit(s.X_train, s.y_train)) == 3


def test_a_later_fit_finishes_an_epoch_an_older_xdls_checkpoint_cut_short(tmp_path):
    """A checkpoint of an xdl before an epoch cut short recorded its batch size (its partial without
    batch_size) holds none to compare with: a later fit of a trainer that loaded it finishes that epoch
    (its examples, recorded, are still checked)."""
    from conftest import edit_saved  # (rewrites a checkpoint's extra, as an older file)

    s = moons(300)
    stopped = trainer_for(epochs=3, augment=SignalAtStep(at_call=9))
    with pytest.raises(Interrupted):
        stopped.fit(s.X_train, s.y_train)
    path = stopped.save_checkpoint(tmp_path / "c.npz")
    edit_saved(path, lambda header, arrays: header["extra"]["partial"].pop("batch_size"))
    trainer = trainer_for(epochs=3, augment=SignalAtStep(at_call=0))
    trainer.load_checkpoint(path)
    assert (trainer.epoch, trainer.step) == (1, 3)
    with pytest.raises(ValueError, match="stopped in epoch 2 after step 3 of an epoch over 180 examples, and X has 20"):
        trainer.fit(s.X_train[:20], s.y_train[:20])
    assert trainer.fit(s.X_train, s.y_train)["epoch"] == [1, 2, 3]


def test_the_augmentation_and_schedules_are_checked_as_the_users_own_code():
    s = moons(200)
    with pytest.raises(ValueError, match=r"augment returned NaN or Inf in the batch of epoch 1, step 1"):
        trainer_for(augment=lambda X, rng: X * np.nan).fit(s.X_train, s.y_train)
    with pytest.raises(ValueError, match=r"augment returned shape \(2,\) for a batch of shape \(32, 2\)"):
        trainer_for(augment=lambda X, rng: X[0, :3]).fit(s.X_train, s.y_train)
    with pytest.raises(TypeError, match="augment must be a callable"):
        trainer_for(augment=lambda X: X)
    with pytest.raises(ValueError, match=r"schedule\(2\) \(the rate of epoch 3\): the schedule raised IndexError"):
        trainer_for(epochs=3, schedule=lambda e: [0.1, 0.05][e]).fit(s.X_train, s.y_train)
    assert Checkpoint("somewhere", every=np.int64(2)).every == 2


def test_an_augmentation_class_or_one_returning_no_real_numbers_is_named_as_the_augmentation():
    """``augment=Augment`` (the class: callable with two arguments) was taken and called as
    Augment(X_batch, rng) at the first step, refused there naming image_shape; a batch of objects,
    strings or complex numbers failed in NumPy's isfinite or in the tensor, naming no augment."""
    s = moons(200)
    with pytest.raises(TypeError, match=r"augment must be a callable \(X_batch, rng\) -> X_batch.*got <class "
                                        r"'xdl.data.augment.Augment'>"):
        trainer_for(augment=xdl.data.Augment)
    for dtype, shown in ((object, "object"), (str, "<U32"), (complex, "complex128")):
        trainer = trainer_for(epochs=1, augment=lambda X, rng, dtype=dtype: X.astype(dtype))
        with pytest.raises(TypeError, match=rf"augment returned an array of dtype {shown} for the batch "
                                            r"of epoch 1, step 1: it must return real numbers"):
            trainer.fit(s.X_train, s.y_train)
    trainer_for(epochs=1, augment=lambda X, rng: X.astype(np.float64)).fit(s.X_train, s.y_train)  # (cast, as X is)


def test_a_run_resumed_into_another_directory_brings_its_best_epoch_along(tmp_path):
    s = moons(200)
    trainer_for(epochs=2, callbacks=[Checkpoint(tmp_path / "a")]).fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    resumed = trainer_for(epochs=2, callbacks=[Checkpoint(tmp_path / "b")])  # over: it ends as it ended, there
    with pytest.warns(UserWarning, match="the checkpoint's run is over"):
        resumed.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=tmp_path / "a")
    assert (tmp_path / "b" / "best.npz").is_file() and resumed.best_checkpoint == tmp_path / "b" / "best.npz"


def test_a_checkpoint_of_an_older_xdl_that_stopped_early_is_a_finished_run(tmp_path):
    """An older xdl saved its last checkpoint before it set history.stopped_epoch (its stop in stopped_by
    alone): the run was taken for an unfinished one, and a new run there was refused."""
    from xdl.serialization import read_checkpoint
    from xdl.train.checkpoint_files import unfinished_run

    parts = moons(300)
    trainer = trainer_for(epochs=40, lr=0.05, callbacks=[EarlyStopping(patience=1), Checkpoint(tmp_path)])
    trainer.fit(parts.X_train, parts.y_train, dev=(parts.X_dev, parts.y_dev))
    assert trainer.history.stopped_epoch is not None and unfinished_run(tmp_path / "checkpoint.npz") is None
    extra, arrays, _ = read_checkpoint(tmp_path / "checkpoint.npz")
    extra["history"]["stopped_epoch"] = None  # as that xdl wrote it
    xdl.save(trainer.model, tmp_path / "older.npz", extra=extra, extra_arrays=arrays)
    assert unfinished_run(tmp_path / "older.npz") is None


def test_a_binary_classifier_whose_cost_rose_far_above_its_start_has_diverged():
    """Binary cross-entropy is held to 1e4 × ln 2 (each label a choice of two), as softmax's to ln C."""
    s = moons(200)
    xdl.seed(0)
    model = xdl.nn.mlp(2, [16, 8], 1, batch_norm=True)
    trainer = Trainer(model, BinaryCrossEntropy(), SGD(model, lr=200.0), epochs=20, seed=0, progress=False,
                      batch_size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError, match=r"the train cost became \S+ at the end of epoch 1, above "
                                                     r"1e4 × ln C \(where a classifier starts\) = 6.93e\+03"):
            trainer.fit(s.X_train, s.y_train)


@pytest.mark.parametrize("key", [1, None, True, 1.5])
def test_a_key_json_writes_as_a_string_is_refused_where_it_is_given(tmp_path, key):
    class State(Callback):
        def state_dict(self):
            return {"seen": {key: 1}}, {}

    class Column(Callback):
        def on_epoch_end(self, trainer, record):
            record[key] = 0.5

    class Nested(Callback):
        def on_epoch_end(self, trainer, record):
            record["counts"] = {key: 1}

    s = moons(64)
    for callback, message in ((State(), "keys are strings"), (Column(), "a column's name is a string"),
                              (Nested(), "use string keys")):
        with pytest.raises(TypeError, match=message):
            trainer_for(epochs=1, callbacks=[callback, Checkpoint(tmp_path / type(callback).__name__)]).fit(
                s.X_train, s.y_train)
    with pytest.raises(TypeError, match="run_info: its keys"):
        trainer_for(run_info={"options": {key: 1}})


@pytest.mark.parametrize("value", [np.datetime64(2, "ns"), np.timedelta64(2, "ns"), np.array(np.datetime64(2, "ns"))])
def test_a_date_or_a_duration_is_no_count_of_epochs(value):
    from xdl.config import TrainConfig
    from xdl.files import python_value
    from xdl.tune import Space

    assert python_value(value) is value
    with pytest.raises(TypeError, match="epochs must be an integer"):
        TrainConfig(epochs=value)
    assert Space({}, fixed={"epochs": value}).fixed["epochs"] is value  # (not 2: refused as a trial's config)


def test_a_group_a_callback_adds_at_the_rate_an_epoch_schedule_set_resumes(tmp_path):
    """The group added at epoch 2's end under an epoch schedule takes the optimizer's rate then,
    schedule(1) = 0.005, and was recorded with it: an optimizer made for the resume with the group
    (at the constructor's 0.01) was refused ("'lr' (group 1) was 0.005 in the checkpoint"), and one
    made with 0.005 by the schedule ("rates of their own"): the run could not go on. Its rate is the
    schedule's from the next epoch on, as the other groups'."""
    s = moons()

    def unfreezing(groups, epochs, directory):
        return unfreezing_trainer(groups, epochs, directory, callbacks=[UnfreezeAt(2)],
                                  schedule=xdl.optim.schedules.exponential(0.01, base=0.5))

    whole = unfreezing(1, epochs=3, directory=tmp_path / "whole")
    whole.fit(s.X_train, s.y_train)
    unfreezing(1, epochs=2, directory=tmp_path / "cut").fit(s.X_train, s.y_train)
    resumed = unfreezing(2, epochs=3, directory=tmp_path / "cut")
    resumed.fit(s.X_train, s.y_train, resume=tmp_path / "cut")
    assert resumed.epoch == 3 and [g["lr"] for g in resumed.optimizer.param_groups] == [0.0025, 0.0025]
    for p, q in zip(whole.model.parameters(), resumed.model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize("name", ["_lock", "_same_file", "_holder", "_read_from_start", "_write_at_start", "_close",
                                  "_unlock"])
def test_a_ctrl_c_anywhere_in_a_directory_locks_acquire_or_release_leaves_the_directory_free(tmp_path, name):
    """A Ctrl-C lands at the start of a Python function, among others: one at the start of each call
    that taking and letting go of a directory makes (a lock file read or written, the descriptor
    closed), once the flock was taken, left the descriptor open — this process held the directory
    until it ended, its next run or search there refused, "in use by another run: process <its own>"
    (or, interrupted once the lock file was removed, it kept a descriptor open for nothing)."""
    import xdl.lock as lock_module
    real = getattr(lock_module, name, None)
    if real is None:
        pytest.skip(f"xdl.lock has no {name}")
    calls = [0]

    def counted(*args, **kwargs):
        calls[0] += 1
        if calls[0] == interrupt_at[0]:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    interrupt_at = [0]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lock_module, name, counted)
        with lock_module.DirectoryLock(tmp_path, "--out", lock_module.RUN):
            pass
    made = calls[0]  # the calls of one acquire and release
    for at in range(1, made + 1):
        directory = tmp_path / f"{name}-{at}"
        directory.mkdir()
        calls[0], interrupt_at[0] = 0, at
        open_before = os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(lock_module, name, counted)
            with pytest.raises(KeyboardInterrupt):
                with lock_module.DirectoryLock(directory, "--out", lock_module.RUN):
                    pass
        if open_before:
            assert len(os.listdir("/proc/self/fd")) == len(open_before), f"{name}: call {at} of {made}"
        with lock_module.DirectoryLock(directory, "--out", lock_module.RUN) as again:  # (not "in use")
            assert again.took_over is None
