"""Trainer, History, callbacks, resume, diagnose and plots — through the public API."""

import contextlib
import copy
import json
import os
import re
import signal
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import xdl
from xdl.data import Standardizer, split
from xdl.losses import SoftmaxCrossEntropy
from xdl.optim import Adam
from xdl.serialization import read_extra
from xdl.train import Callback, Checkpoint, EarlyStopping, Trainer


def moons_parts(m=1000, seed=0):
    X, y = xdl.datasets.moons(m, noise=0.2, seed=seed)
    return split(X, y, seed=seed)


def make_trainer(backend, optimizer="adam", lr=1e-3, epochs=5, dropout=0.0, callbacks=(), seed=0, **kwargs):
    xdl.seed(seed)
    model = xdl.nn.mlp(2, [16, 8], 2, batch_norm=True, dropout=dropout)
    opt = {"adam": xdl.optim.Adam, "gd": xdl.optim.SGD}[optimizer](model, lr=lr)
    kwargs.setdefault("batch_size", 64)
    return Trainer(model, SoftmaxCrossEntropy(), opt, epochs=epochs, callbacks=list(callbacks), seed=seed,
                   progress=False, **kwargs)


def test_adam_beats_plain_gradient_descent_on_moons(backend):
    """The course's optimization experiment: a 3-layer ReLU network on moons, mini-batches of 64, the
    same small learning rate: Adam reaches clearly higher training accuracy than plain GD."""
    X, y = xdl.datasets.moons(500, noise=0.2, seed=0)
    s = split(X, y, seed=0)
    accuracy = {}
    for name in ("gd", "adam"):
        xdl.seed(1)
        model = xdl.nn.mlp(2, [5, 2], 2, activation="relu")
        opt = {"adam": xdl.optim.Adam, "gd": xdl.optim.SGD}[name](model, lr=0.0007)
        trainer = Trainer(model, SoftmaxCrossEntropy(), opt, batch_size=64, epochs=300, seed=1, progress=False)
        trainer.fit(s.X_train, s.y_train)
        accuracy[name] = trainer.evaluate(s.X_train, s.y_train)["accuracy"]
    assert accuracy["adam"] > 0.88 and accuracy["adam"] > accuracy["gd"] + 0.1, accuracy


def test_history_records_every_epoch(backend):
    s = moons_parts()
    trainer = make_trainer(backend, epochs=4, schedule=xdl.optim.schedules.inverse_time(0.01, decay_rate=1.0))
    history = trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert history["epoch"] == [1, 2, 3, 4]
    np.testing.assert_allclose(history["lr"], [0.01 / (1 + e) for e in range(4)])
    for key in ("train_cost", "train_accuracy", "dev_cost", "dev_accuracy", "seconds", "step_seconds"):
        assert all(np.isfinite(v) for v in history[key]), key
    assert all(0 < steps < whole for steps, whole in zip(history["step_seconds"], history["seconds"]))  # evaluation apart
    assert history["train_cost"][-1] < history["train_cost"][0]
    final = trainer.evaluate(s.X_dev, s.y_dev)
    assert final == {"cost": pytest.approx(history[-1]["dev_cost"]), "accuracy": history[-1]["dev_accuracy"]}


@pytest.mark.parametrize("m", [50, 200, 301])
def test_the_accuracy_on_soft_label_rows_counts_each_rows_largest_as_its_class(m):
    """Soft label rows (label smoothing: 0.9 and 0.1, kept as rows by SoftmaxCrossEntropy) are right where
    the model's class is the row's argmax: the history's train and dev accuracies are those of the trained
    model, counted here by a loop of its own over the examples."""
    X, y = xdl.datasets.moons(2 * m, noise=0.3, seed=m)
    soft = np.where(np.eye(2)[y] == 1, 0.9, 0.1)
    trainer = make_trainer(None, epochs=2, batch_size=32, lr=0.01)
    history = trainer.fit(X[:m], soft[:m], dev=(X[m:], soft[m:]))
    predicted = trainer.model.predict(X)
    right = [int(predicted[i] == max(range(2), key=lambda c: soft[i, c])) for i in range(2 * m)]
    assert history[-1]["train_accuracy"] == pytest.approx(sum(right[:m]) / m)
    assert history[-1]["dev_accuracy"] == pytest.approx(sum(right[m:]) / m)


def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path):
    s = moons_parts()
    kwargs = dict(epochs=6, dropout=0.2, schedule=xdl.optim.schedules.inverse_time(0.01, decay_rate=0.5))
    straight = make_trainer(None, **kwargs)
    straight.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))

    first = make_trainer(None, **kwargs | {"epochs": 3}, callbacks=[EarlyStopping(patience=50),
                                                                    Checkpoint(tmp_path / "ckpt")])
    first.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    resumed = make_trainer(None, **kwargs, callbacks=[EarlyStopping(patience=50), Checkpoint(tmp_path / "ckpt")])
    history = resumed.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=tmp_path / "ckpt")
    assert history["epoch"] == [1, 2, 3, 4, 5, 6]
    # EarlyStopping restored the best epoch in both: compare raw weights of the final epoch instead
    straight_es = make_trainer(None, **kwargs, callbacks=[EarlyStopping(patience=50)])
    straight_es.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    for (name, a), (_, b) in zip(straight_es.model.state_dict().items(), resumed.model.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert history.best_epoch == straight_es.history.best_epoch
    # and without early stopping, against the plain uninterrupted run
    plain = make_trainer(None, **kwargs | {"epochs": 2}, callbacks=[Checkpoint(tmp_path / "plain")])
    plain.fit(s.X_train, s.y_train)
    plain_resumed = make_trainer(None, **kwargs, callbacks=[Checkpoint(tmp_path / "plain")])
    plain_resumed.fit(s.X_train, s.y_train, resume=tmp_path / "plain")
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), plain_resumed.model.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


class LearningRateFinder(Callback):
    """The learning-rate range test: from ``start``, the rate × ``factor`` after each step, each
    step's (rate, cost) recorded, the run stopped once the cost is 4 × its lowest; the weights
    and the optimizer's state it found put back at the end."""

    def __init__(self, start=1e-4, factor=1.3):
        self.start, self.factor, self.rates, self.costs = start, factor, [], []

    def on_train_begin(self, trainer):
        self.weights, self.state = trainer.model.state_dict(), trainer.optimizer.state_dict()
        trainer.optimizer.lr = self.start

    def on_step_end(self, trainer, cost):
        self.rates.append(trainer.optimizer.lr)
        self.costs.append(cost)
        if cost > 4 * min(self.costs):
            trainer.stop_training = True
        else:
            trainer.optimizer.lr = trainer.optimizer.lr * self.factor

    def on_train_end(self, trainer):
        trainer.model.load_state_dict(self.weights)
        trainer.optimizer.load_state_dict(self.state)


def test_a_learning_rate_finder_sees_each_steps_cost_stops_mid_epoch_and_restores(backend):
    """A per-step hook (Keras's on_train_batch_end) gets each step's cost, may set the rate for the
    next, and may stop the run after any step: the epoch is left mid-way, named, unrecorded."""
    s = moons_parts()  # 600 examples, batches of 64: 10 steps per epoch
    finder = LearningRateFinder()
    trainer = make_trainer(backend, epochs=50, callbacks=[finder])
    before = trainer.model.state_dict()
    history = trainer.fit(s.X_train, s.y_train)
    steps = trainer.epoch * 10 + trainer.step
    assert 0 < trainer.step < 10 and len(history) == trainer.epoch == history.stopped_epoch  # stopped mid-epoch
    assert history.stopped_by == f"stopped by LearningRateFinder in epoch {trainer.epoch + 1} after step {trainer.step}"
    assert len(finder.costs) == steps and finder.costs[-1] > 4 * min(finder.costs)
    np.testing.assert_allclose(finder.rates, [1e-4 * 1.3 ** k for k in range(steps)], rtol=1e-12)
    for name, value in trainer.model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    xdl.seed(0)  # the first step's cost is the first step's: that of the model as it was made, on batch 1
    again = make_trainer(backend, epochs=1)
    order = np.random.default_rng([trainer.seed, 0]).permutation(len(s.X_train))[:64]
    first = again.loss(again.model(s.X_train[order]), s.y_train[order])
    assert finder.costs[0] == pytest.approx(float(first.numpy()), rel=1e-5)


class StopAtStep(Callback):
    def __init__(self, step):
        self.step, self.steps = step, 0

    def on_step_end(self, trainer, cost):
        self.steps += 1
        trainer.stop_training = self.steps == self.step


def test_a_run_stopped_by_a_step_hook_goes_on_as_the_same_run(tmp_path):
    """Mid-epoch, as Ctrl-C: a later fit of the trainer, or a resume from the checkpoint written at
    the stop, ends with the weights of a run never stopped (dropout's draws included)."""
    s = moons_parts()
    kwargs = dict(epochs=3, dropout=0.2)
    straight = make_trainer(None, **kwargs)
    straight.fit(s.X_train, s.y_train)
    stopped = make_trainer(None, **kwargs, callbacks=[StopAtStep(13), Checkpoint(tmp_path)])
    history = stopped.fit(s.X_train, s.y_train)
    assert (stopped.epoch, stopped.step, len(history), history.stopped_by) == \
        (1, 3, 1, "stopped by StopAtStep in epoch 2 after step 3")
    resumed = make_trainer(None, **kwargs, callbacks=[StopAtStep(0), Checkpoint(tmp_path)])
    assert resumed.fit(s.X_train, s.y_train, resume=tmp_path)["epoch"] == [1, 2, 3]
    assert stopped.fit(s.X_train, s.y_train)["epoch"] == [1, 2, 3]  # a later fit of the stopped trainer
    for trainer in (resumed, stopped):
        assert trainer.history.stopped_by is None
        for name, value in straight.model.state_dict().items():
            np.testing.assert_array_equal(trainer.model.state_dict()[name], value, err_msg=name)


def test_a_keras_batch_hook_is_pointed_at_the_step_hook_in_a_trainer():
    class KerasBatchEnd(Callback):
        def on_train_batch_end(self, batch, logs=None):
            print(logs)

    with pytest.raises(TypeError, match=r"KerasBatchEnd.on_train_batch_end is no hook of xdl's Callback, which has "
                                        r".* \(after each step, on_step_end\(self, trainer, cost\)\): it would never"):
        make_trainer(None, callbacks=[KerasBatchEnd()])


class PutsBackOnError(Callback):
    """What a learning-rate finder does when its sweep diverges: the weights it found put back, in
    ``on_exception`` (``on_train_end`` is not called then)."""

    def on_train_begin(self, trainer):
        self.weights, self.errors = trainer.model.state_dict(), []

    def on_exception(self, trainer, error):
        self.errors.append(error)
        trainer.model.load_state_dict(self.weights)


def test_a_callback_is_told_of_the_error_that_ends_training_and_may_put_the_weights_back():
    """Lightning's on_exception: a divergence's FloatingPointError reached no callback, so a finder
    whose sweep diverged left the model at the sweep's weights."""
    s = moons_parts()
    back = PutsBackOnError()
    trainer = make_trainer(None, optimizer="gd", lr=1e6, epochs=3, callbacks=[back])
    before = trainer.model.state_dict()
    with pytest.raises(FloatingPointError, match="diverged") as raised:
        trainer.fit(s.X_train, s.y_train)
    assert back.errors == [raised.value]
    for name, value in trainer.model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


class FailsAtBegin(Callback):
    def on_train_begin(self, trainer):
        raise KeyError("a bug in my logger's set-up")


class FailsAtEnd(Callback):
    def on_train_end(self, trainer):
        raise KeyError("a bug in my logger's summary")


class FailsToCleanUp(Callback):
    def on_exception(self, trainer, error):
        raise RuntimeError("a bug in my logger's clean-up")


@pytest.mark.parametrize("before, after, lr", [([], [FailsAtBegin()], 1e-3), ([FailsAtEnd()], [], 1e-3),
                                               ([FailsToCleanUp()], [], 1e6)])  # (1e6: it diverges)
def test_every_callback_that_began_is_told_of_an_error_in_a_hook_at_the_runs_ends(before, after, lr):
    """A later callback's on_train_begin, an earlier one's on_train_end, an earlier one's on_exception:
    each error ended the fit with a finder's weights left at its sweep (on_train_end not called, and
    on_exception neither — only errors from the first step to the last on_epoch_end were told), though
    its on_train_begin had run. The first error a clean-up raises goes on, the fit's as its context."""
    s = moons_parts()
    back = PutsBackOnError()
    trainer = make_trainer(None, optimizer="gd", lr=lr, epochs=1, callbacks=[*before, back, *after])
    before_fit = trainer.model.state_dict()
    with pytest.raises((KeyError, RuntimeError, FloatingPointError)) as raised:
        trainer.fit(s.X_train, s.y_train)
    assert len(back.errors) == 1
    if isinstance(raised.value, RuntimeError):  # the clean-up's bug, the divergence under it
        assert isinstance(raised.value.__context__, FloatingPointError) and back.errors == [raised.value.__context__]
    for name, value in trainer.model.state_dict().items():
        np.testing.assert_array_equal(value, before_fit[name], err_msg=name)


class FailsToCleanUpSaying(Callback):
    def __init__(self, message):
        self.message = message

    def on_exception(self, trainer, error):
        raise RuntimeError(self.message)


def test_with_two_clean_ups_failing_every_callback_is_told_and_the_first_ones_error_goes_on():
    """`callbacks_told_of_errors`: as an ExitStack's exits, a later callback is told though an earlier
    one's on_exception raised, and the first such error goes to the caller, the training's as its
    context — neither the last hook's error nor the training's alone."""
    s = moons_parts()
    back = PutsBackOnError()
    trainer = make_trainer(None, optimizer="gd", lr=1e6, epochs=1,  # (1e6: it diverges)
                           callbacks=[FailsToCleanUpSaying("first clean-up"), back, FailsToCleanUpSaying("second")])
    before_fit = trainer.model.state_dict()
    with pytest.raises(RuntimeError) as raised, np.errstate(over="ignore", invalid="ignore"):  # (its divergence's)
        trainer.fit(s.X_train, s.y_train)
    assert str(raised.value) == "first clean-up"
    assert isinstance(raised.value.__context__, FloatingPointError) and back.errors == [raised.value.__context__]
    for name, value in trainer.model.state_dict().items():
        np.testing.assert_array_equal(value, before_fit[name], err_msg=name)


def test_a_callback_whose_on_train_begin_did_not_run_is_not_told():
    """It has nothing to clean up (its on_train_begin's state is not there to read)."""
    s = moons_parts()
    back = PutsBackOnError()
    with pytest.raises(KeyError, match="set-up"):
        make_trainer(None, callbacks=[FailsAtBegin(), back]).fit(s.X_train, s.y_train)
    assert not hasattr(back, "errors")


def test_a_checkpoint_saved_by_hand_after_a_fit_with_early_stopping_records_its_data(tmp_path):
    """EarlyStopping's fit took the data's digest: the hand-saved file left it out, so a resume on
    another data set was taken unchecked."""
    s, other = moons_parts(), moons_parts(seed=1)
    trainer = make_trainer(None, epochs=2, callbacks=[EarlyStopping(patience=5)])
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    trainer.save_checkpoint(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="resume: the train data differ from the checkpoint's"):
        make_trainer(None, epochs=4, callbacks=[EarlyStopping(patience=5)]).fit(
            other.X_train, other.y_train, dev=(other.X_dev, other.y_dev), resume=tmp_path / "c.npz")


def test_a_resume_with_the_labels_in_another_form_says_so(tmp_path):
    """Class indices then one-hot rows of the same labels train alike, but hash apart: the refusal
    said only "the data set or its split changed", sending the user after their data."""
    s = moons_parts()
    make_trainer(None, epochs=1, callbacks=[Checkpoint(tmp_path)]).fit(s.X_train, s.y_train)
    with pytest.raises(ValueError, match=r"the train data differ from the checkpoint's .* or its labels' form "
                                         r"\(class indices or one-hot rows"):
        make_trainer(None, epochs=2, callbacks=[Checkpoint(tmp_path)]).fit(s.X_train, np.eye(2)[s.y_train],
                                                                           resume=tmp_path)


def test_a_checkpoint_digests_one_hot_label_rows_as_given_negative_zeros_included(tmp_path):
    """Exact one-hot rows are trained as their class indices, but a checkpoint records the digest of the
    rows as given, in the model's dtype (what the runs recorded before rows were made indices): rows
    holding −0.0 were rebuilt of +0.0 for it, and a checkpoint written with them then said "the train
    data differ" on resuming."""
    from xdl.serialization import read_checkpoint
    from xdl.train.provenance import data_digest

    rng = np.random.default_rng(0)
    for case in range(12):
        dtype = (np.float32, np.float64)[case % 2]
        m, classes = int(rng.integers(5, 40)), int(rng.integers(2, 5))
        X = rng.standard_normal((m, 2))
        given = [np.eye(classes)[rng.integers(0, classes, n)] for n in (m, 7)]  # train, dev
        for rows in given:
            if case % 3 != 2:  # (every third case without: the rule)
                rows[(rows == 0) & (rng.random(rows.shape) < 0.5)] = -0.0
        given = [rows.astype((np.float64, np.float32, object, np.int8)[case % 4]) for rows in given]
        dev = (rng.standard_normal((7, 2)), given[1])
        xdl.seed(0)
        model = xdl.nn.mlp(2, [4], classes).astype(dtype)
        path = tmp_path / str(case)
        Trainer(model, SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=0.1), epochs=1, batch_size=8, progress=False,
                callbacks=[Checkpoint(path)]).fit(X, given[0], dev=dev)
        recorded = read_checkpoint(path / "checkpoint.npz")[0]["provenance"]["data"]
        assert recorded == {"train": data_digest(X.astype(dtype), given[0].astype(dtype)),
                            "dev": data_digest(dev[0].astype(dtype), given[1].astype(dtype))}, case
        xdl.seed(0)
        model = xdl.nn.mlp(2, [4], classes).astype(dtype)
        history = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=0.1), epochs=2, batch_size=8,
                          progress=False, callbacks=[Checkpoint(path)]).fit(X, given[0], dev=dev, resume=path)
        assert history["epoch"] == [1, 2]


def test_a_lightning_on_exception_is_refused_naming_xdls_signature():
    class LightningCleanUp(Callback):
        def on_exception(self, trainer, pl_module, exception):
            pass

    with pytest.raises(TypeError, match=r"LightningCleanUp.on_exception\(self, trainer, pl_module, exception\) is "
                                        r"Lightning's .*; xdl calls on_exception\(self, trainer, error\)"):
        make_trainer(None, callbacks=[LightningCleanUp()])


    class NoError(Callback):
        def on_exception(self, trainer):  # (it would fail at the clean-up, in place of the error it was told of)
            pass

    with pytest.raises(TypeError, match=r"NoError.on_exception\(self, trainer\) cannot be called with \(trainer, "
                                        r"error\): xdl calls on_exception\(self, trainer, error\)"):
        make_trainer(None, callbacks=[NoError()])


def test_a_trainer_copied_during_a_fit_is_told_to_be_copied_between_fits():
    """A deepcopy a callback takes at an epoch's end holds a run no later fit can go on with exactly
    (the epoch's other callbacks had not run): refused, and the message said only "a step"."""
    import copy

    class KeepTrainer(Callback):
        def on_epoch_end(self, trainer, record):
            self.copy = copy.deepcopy(trainer)

    keep = KeepTrainer()
    s = moons_parts()
    make_trainer(None, epochs=1, callbacks=[keep]).fit(s.X_train, s.y_train)
    with pytest.raises(RuntimeError, match=r"or it is a copy taken during a fit \(copy.deepcopy or pickle in a "
                                           r"callback: copy between fits\)"):
        keep.copy.fit(s.X_train, s.y_train)


def test_fit_many_refuses_a_step_hook_it_would_never_call():
    from xdl.config import TrainConfig
    from xdl.train.many import fit_many

    with pytest.raises(TypeError, match=r"callbacks: StopAtStep.on_step_end would never be called: fit_many calls"):
        fit_many([TrainConfig(hidden=(4,))], np.zeros((8, 2)), np.zeros(8, dtype=int), callbacks=[StopAtStep(1)])



def test_a_run_stopped_inside_its_first_epoch_keeps_its_weights_with_no_best_to_restore():
    """A step's hook stopping epoch 1 ends the fit before any epoch was measured: early stopping has no
    best epoch, so the model keeps the weights it has and the history names no best epoch (restoring
    "the best" loaded None)."""
    s = moons_parts()
    trainer = make_trainer(None, epochs=3, callbacks=[StopAtStep(2), EarlyStopping(patience=1)])
    history = trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert trainer.optimizer.t == 2 and history.best_epoch is None and len(history) == 0

class SaveAtStep(Callback):
    """A checkpoint after global step ``at`` (Keras's ModelCheckpoint(save_freq=n), Lightning's
    every_n_train_steps), written from the per-step hook."""

    def __init__(self, path, at):
        self.path, self.at = path, at

    def on_step_end(self, trainer, cost):
        if trainer.optimizer.t == self.at:
            trainer.save_checkpoint(self.path)


def test_a_checkpoint_a_step_hook_writes_mid_epoch_holds_the_epoch_so_far(tmp_path):
    """A checkpoint written between two steps holds the epoch's step costs and correct count so far
    (its `_partial`), as a stop's does: it held none, and the resumed epoch's record was of its steps
    since the checkpoint alone — without eval_train, a train cost of 0.38 for 0.80, accuracy 0.22 for
    0.5 (and a first epoch's start cost 0, the divergence rule's yardstick)."""
    s = moons_parts()  # 10 steps per epoch: step 15 is step 5 of epoch 2
    straight = make_trainer(None, epochs=2, eval_train=False, callbacks=[SaveAtStep(tmp_path / "s.npz", 15)])
    straight.fit(s.X_train, s.y_train)
    resumed = make_trainer(None, epochs=2, eval_train=False, callbacks=[SaveAtStep(tmp_path / "r.npz", 0)])
    history = resumed.fit(s.X_train, s.y_train, resume=tmp_path / "s.npz")
    for key in ("train_cost", "train_accuracy", "lr"):
        assert history[key] == straight.history[key], key
    for name, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value, err_msg=name)


def test_a_checkpoint_a_callback_of_ones_own_writes_records_the_run(tmp_path):
    """``trainer.save_checkpoint`` from a hook records what a resume must match, as a Checkpoint's
    file does: a run with no Checkpoint recorded nothing, so a resume on other data was taken,
    unchecked ("written by an older xdl"), and failed in numpy's words or trained on silently."""
    s = moons_parts()
    make_trainer(None, epochs=2, callbacks=[SaveAtStep(tmp_path / "s.npz", 15)]).fit(s.X_train, s.y_train)
    resumed = make_trainer(None, epochs=2, callbacks=[SaveAtStep(tmp_path / "r.npz", 0)])
    with pytest.raises(ValueError, match=r"resume: the train data differ from the checkpoint's \(600 examples"):
        resumed.fit(s.X_dev, s.y_dev, resume=tmp_path / "s.npz")



def test_a_checkpoint_saved_by_hand_after_a_fit_records_the_run_but_its_data(tmp_path):
    """PyTorch's habit, fit then save: the fit (no Checkpoint) took no digest of its data, and the
    file recorded nothing, so a resume with another rate was taken unchecked, "written by an older
    xdl". It records the run now; its data, never digested, are not checked."""
    s = moons_parts()
    trainer = make_trainer(None, epochs=2)
    trainer.fit(s.X_train, s.y_train)
    trainer.save_checkpoint(tmp_path / "c.npz")
    with pytest.raises(ValueError, match=r"resume: optimizer setting 'lr' \(group 0\) was 0.001 in the checkpoint, "
                                         r"this run has 0.01"):
        make_trainer(None, epochs=4, lr=1e-2).fit(s.X_train, s.y_train, resume=tmp_path / "c.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no "older xdl")
        assert len(make_trainer(None, epochs=4).fit(s.X_train, s.y_train, resume=tmp_path / "c.npz")) == 4

class FailsOnce(Callback):
    """A hook with a bug that shows at one step (a KeyError of a logger, say)."""

    def __init__(self, at):
        self.at, self.steps = at, 0

    def on_step_end(self, trainer, cost):
        self.steps += 1
        if self.steps == self.at:
            raise KeyError("loss")


def test_an_error_in_a_step_hook_leaves_a_run_a_later_fit_goes_on_with():
    """The hook runs after the step is whole (its update applied, its cost checked): the run is
    between two steps, as at a stop, so a later fit goes on from the next one as the same run. It
    was refused as a fit "stopped inside a step", the epoch's steps lost — all the run's with
    Checkpoint(every=None), which had written no checkpoint.npz to resume from."""
    s = moons_parts()
    straight = make_trainer(None, epochs=3, dropout=0.2)
    straight.fit(s.X_train, s.y_train)
    trainer = make_trainer(None, epochs=3, dropout=0.2, callbacks=[FailsOnce(13)])
    with pytest.raises(KeyError, match="loss"):
        trainer.fit(s.X_train, s.y_train)
    assert (trainer.epoch, trainer.step) == (1, 3)
    assert trainer.fit(s.X_train, s.y_train)["train_cost"] == straight.history["train_cost"]
    for name, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(trainer.model.state_dict()[name], value, err_msg=name)


class KerasBatchLogger(Callback):
    def on_step_end(self, batch, logs=None):  # Keras's on_train_batch_end signature: called with (trainer, cost)
        print(batch, logs["loss"])


def test_a_step_hook_with_keras_signature_is_refused_where_it_is_given():
    """It failed at the first step ("'float' object is not subscriptable"), inside the run; named
    before any step instead, as Keras's on_epoch_end is."""
    with pytest.raises(TypeError, match=r"KerasBatchLogger.on_step_end\(self, batch, logs=None\) is Keras's "
                                        r"on_train_batch_end\(self, batch, logs\); xdl calls on_step_end\(self, "
                                        r"trainer, cost\)"):
        make_trainer(None, callbacks=[KerasBatchLogger()])


class WritesControlThenStops(Callback):
    """The babysitter writes control.toml during an epoch that a step's hook then stops mid-way."""

    def __init__(self, directory, write_at, stop_at):
        self.directory, self.write_at, self.stop_at, self.steps = directory, write_at, stop_at, 0

    def on_step_end(self, trainer, cost):
        self.steps += 1
        if self.steps == self.write_at:
            (self.directory / "control.toml").write_text("lr = 0.0001\n")
        trainer.stop_training = self.steps == self.stop_at


def test_a_control_file_is_kept_for_the_run_a_step_hook_stopped_mid_epoch(tmp_path):
    """The run goes on (a resume, a later fit), so the file is for it, as after Ctrl-C: it was set
    aside as come "after the run's last epoch had begun" and never applied."""
    from xdl.train import Control

    s = moons_parts()
    callbacks = [WritesControlThenStops(tmp_path, 13, 15), Control(tmp_path), Checkpoint(tmp_path)]
    make_trainer(None, epochs=3, callbacks=callbacks).fit(s.X_train, s.y_train)
    assert (tmp_path / "control.toml").is_file()
    resumed = make_trainer(None, epochs=3, callbacks=[WritesControlThenStops(tmp_path, 0, 0), Control(tmp_path),
                                                      Checkpoint(tmp_path)])
    history = resumed.fit(s.X_train, s.y_train, resume=tmp_path)
    assert resumed.optimizer.lr == 1e-4 and "lr = 0.0001 from step 6 of epoch 2" in history[1]["control"]


class StopsFromStep(Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, cost):
        if trainer.optimizer.t >= self.step:
            trainer.stop_training = True


class NoStopBeforeStep(Callback):
    """A minimum of steps before any stop (Keras's start_from_epoch, counted in steps)."""

    order = 10

    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, cost):
        if trainer.optimizer.t < self.step:
            trainer.stop_training = False


def test_a_stop_a_later_step_hook_takes_back_is_not_named_as_the_runs_stop():
    """The run stopped after step 6; its history said "after step 3", the stop taken back then."""
    s = moons_parts()
    trainer = make_trainer(None, epochs=3, callbacks=[StopsFromStep(3), NoStopBeforeStep(6)])
    history = trainer.fit(s.X_train, s.y_train)
    assert (trainer.epoch, trainer.step) == (0, 6)
    assert history.stopped_by == "stopped by StopsFromStep in epoch 1 after step 6"


class StopsWhenTold(Callback):
    """Stops the run in on_train_begin once told (a budget spent since the last fit, say)."""

    def __init__(self):
        self.told = False

    def on_train_begin(self, trainer):
        trainer.stop_training = self.told


def test_a_stop_in_on_train_begin_is_named_after_a_stop_of_a_fit_before(tmp_path):
    """The history names this fit's stop: a name left by a stop before — the trainer's last fit's,
    a resumed checkpoint's — is none of it. It kept that one ("stopped by StopAtStep in epoch 2 after
    step 3" for a stop the callback asked before any step), and the mid-epoch place is said."""
    s = moons_parts()
    told = StopsWhenTold()
    trainer = make_trainer(None, epochs=3, callbacks=[StopAtStep(13), told, Checkpoint(tmp_path)])
    assert trainer.fit(s.X_train, s.y_train).stopped_by == "stopped by StopAtStep in epoch 2 after step 3"
    told.told = True
    history = trainer.fit(s.X_train, s.y_train)  # a later fit
    assert (trainer.epoch, trainer.step, history.stopped_by) == \
        (1, 3, "stopped by StopsWhenTold before step 4 of epoch 2")
    resumed = make_trainer(None, epochs=3, callbacks=[StopAtStep(0), StopsWhenTold(), Checkpoint(tmp_path)])
    resumed.callbacks[1].told = True
    assert resumed.fit(s.X_train, s.y_train, resume=tmp_path).stopped_by == \
        "stopped by StopsWhenTold before step 4 of epoch 2"


class CopiesAtStep(Callback):
    """Keeps a copy of the model after a step (an EMA's or a teacher's start, the best so far) and
    runs a training forward of its own there."""

    def __init__(self, X):
        self.X, self.copy, self.own = X, None, None

    def on_step_end(self, trainer, cost):
        if self.copy is None:
            self.copy = copy.deepcopy(trainer.model)
            self.own = [trainer.model(self.X, training=True).numpy() for _ in range(2)]


def test_a_model_a_step_hook_copies_draws_a_new_dropout_mask_at_each_training_pass():
    """As at an epoch's end: between two steps the step's dropout key is no key — a copy kept from
    a step's hook took it along and drew that one mask at each training pass, as did the hook's
    own forward in training mode. The run is the run without the hook, to the bit."""
    X, y = xdl.datasets.digits()
    X, y = (X[:128] / 16).astype(np.float32), y[:128]
    weights = []
    for callbacks in ([], [CopiesAtStep(X[:8])]):
        xdl.seed(0)
        model = xdl.nn.mlp(64, [32], 10, dropout=0.5)
        Trainer(model, SoftmaxCrossEntropy(), Adam(model), epochs=2, batch_size=32, progress=False,
                callbacks=callbacks).fit(X, y)
        weights.append(model.state_dict())
    keep = callbacks[0]
    twice = [keep.copy(X[:8], training=True).numpy() for _ in range(2)]
    assert not np.array_equal(*twice) and not np.array_equal(*keep.own)
    for name, value in weights[0].items():
        np.testing.assert_array_equal(weights[1][name], value, err_msg=name)


def test_checkpoint_is_a_loadable_model_file(tmp_path):
    s = moons_parts()
    trainer = make_trainer(None, epochs=2, callbacks=[Checkpoint(tmp_path)])
    trainer.fit(s.X_train, s.y_train)
    model = xdl.load(tmp_path / "checkpoint.npz")
    np.testing.assert_array_equal(model.predict(s.X_dev), trainer.model.predict(s.X_dev))


def test_early_stopping_restores_the_best_dev_cost_weights():
    s = moons_parts(300)
    X_train, y_train = s.X_train[:40], s.y_train[:40]  # tiny training set: the dev cost turns up soon
    xdl.seed(0)
    model = xdl.nn.mlp(2, [64, 64], 2)
    snapshots = {}

    class Snapshot(xdl.train.Callback):
        def on_epoch_end(self, trainer, record):
            snapshots[record["epoch"]] = trainer.model.state_dict()

    stopper = EarlyStopping(patience=5)
    trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=0.03), batch_size=8, epochs=300,
                      callbacks=[stopper, Snapshot()], progress=False)
    history = trainer.fit(X_train, y_train, dev=(s.X_dev, s.y_dev))
    dev_costs = history["dev_cost"]
    best = int(np.argmin(dev_costs)) + 1
    assert history.stopped_epoch == len(history) == best + 5 < 300
    assert history.best_epoch == best and history.final()["epoch"] == best
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, snapshots[best][name], err_msg=name)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_divergence_reported_before_a_fit_is_not_in_the_history_of_the_fit_that_trains_on(tmp_path):
    """A checkpoint saved by hand of a model made NaN reports the divergence in the history; the good state
    loaded again, the next fit trains from it, and its history reports no divergence."""
    s = moons_parts(300)
    trainer = make_trainer(None, epochs=1)
    trainer.fit(s.X_train, s.y_train)
    good = copy.deepcopy(trainer.model.state_dict())
    poisoned = dict(good)
    name = next(iter(poisoned))
    poisoned[name] = np.full_like(poisoned[name], np.nan)
    trainer.model.load_state_dict(poisoned)
    with pytest.raises(FloatingPointError, match="became NaN or Inf"):
        trainer.save_checkpoint(tmp_path / "checkpoint.npz")
    assert trainer.history.diverged is not None
    trainer.model.load_state_dict(good)
    trainer.epochs = 2
    history = trainer.fit(s.X_train, s.y_train)
    assert history.diverged is None and history["epoch"] == [1, 2]


def test_divergence_stops_with_the_epoch_and_step_and_keeps_the_checkpoint(tmp_path):
    s = moons_parts()
    trainer = make_trainer(None, optimizer="gd", lr=0.1, epochs=5, callbacks=[Checkpoint(tmp_path)])
    trainer.fit(s.X_train, s.y_train)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    trainer.epochs = 7
    trainer.optimizer.lr = 1e30  # explodes
    with pytest.raises(FloatingPointError, match=r"epoch 6, step \d+.*checkpoint"):
        trainer.fit(s.X_train, s.y_train)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before
    xdl.load(tmp_path / "checkpoint.npz")  # still loadable


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_gradient_descent_diverging_from_its_l2_term_names_l2():
    """With SGD the L2 gradient (λ/m)·W alone scales each weight by 1 − lr·λ/m a step: past
    lr·λ/m = 2 the weights grow whatever the data (lr 0.5, λ 200, m 32: 1 − 3.125). The error named
    only the rate (and unstandardized inputs); it names l2 and the factor."""
    s = moons_parts()
    xdl.seed(0)
    model = xdl.nn.mlp(2, [16], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=0.5), l2=200.0, batch_size=32,
                      epochs=3, progress=False, seed=0)
    with pytest.raises(FloatingPointError, match=r"try a smaller learning rate, or a smaller l2: .* 1 − lr·λ/m = "
                                                 r"-2\.12 a step \(lr 0\.5, λ 200, m 32 examples a batch\)"):
        trainer.fit(s.X_train, s.y_train)


# Diverging runs: sgd and adam at lr 1e30 (the cost NaN within the first epoch) and weights drawn at normal(1e20)
# (the forward overflows at the starting weights), with and without batch norm and dropout
DIVERGING = [dict(optimizer=optimizer, lr=1e30, init=init, batch_norm=batch_norm, dropout=dropout)
             for optimizer in ("sgd", "adam") for init in ("he", "normal(1e20)") for batch_norm in (False, True)
             for dropout in (0.0, 0.3)]


def overflowing_callback_class():
    """A callback whose own code overflows float32 at each epoch's end and each step's: what it warns
    of is its own, said within fit as without."""
    class Overflows(Callback):
        def on_epoch_end(self, trainer, record):
            np.float32(1e38) * 10

        def on_step_end(self, trainer, cost):
            np.float32(1e38) * 10
    return Overflows


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("settings", DIVERGING, ids=lambda s: "-".join(map(str, s.values())))
def test_a_diverging_run_ends_with_its_divergence_not_numpys_overflow_warnings(settings, dtype):
    """The divergence check names what happened; NumPy's "overflow encountered in matmul" and "invalid value
    encountered in subtract" of the steps (and of fit's forward of one example for the output's shape) came
    first, as noise — raised as errors under simplefilter("error"), before the run's own FloatingPointError.
    fit_many said none of them; neither do PyTorch and Keras."""
    from xdl.config import TrainConfig
    s = moons_parts(300)
    config = TrainConfig(hidden=[8], batch_size=32, epochs=2, patience=0, progress=False, schedule="none", seed=1,
                         **settings)
    xdl.seed(1)
    model = config.build_model(2, 2).astype(dtype)
    with xdl.use("numpy"), warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="the run started at a cost")  # (xdl's own, of a large start)
        with pytest.raises(FloatingPointError, match="^training diverged: "):
            config.build_trainer(model).fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))


def test_a_callbacks_and_an_augments_own_overflow_warnings_are_still_said_in_fit():
    """Only the epoch's own arithmetic goes unsaid: a step hook's, an epoch-end callback's and an augment's
    warnings are the user's code's, said as outside fit."""
    s = moons_parts(300)

    def augment(Xb, rng):
        np.float32(1e38) * 10
        return Xb

    trainer = make_trainer(None, epochs=2, callbacks=[overflowing_callback_class()()], augment=augment)
    with pytest.warns(RuntimeWarning, match="overflow encountered") as said:
        trainer.fit(s.X_train, s.y_train)
    steps = 2 * -(-len(s.X_train) // 64)
    assert len(said) == 2 * steps + 2  # each step's augment and hook, each epoch's end


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow warnings of the forward pass
def test_a_cost_not_finite_at_the_first_step_is_said_to_be_the_starting_weights_not_the_rate():
    """The first step's cost is the starting weights' (its update comes after it): a net whose
    activations overflow from its initialization was told "try a smaller learning rate", and was at
    lr = 1e-9 as at 1e-3. The error says that no update ran and what to change instead."""
    s = moons_parts()
    xdl.seed(0)
    model = xdl.nn.mlp(2, [8, 8], 2, init="normal(1e15)")  # finite weights, logits ~1e45: inf in float32
    trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=1e-9), batch_size=64, epochs=2,
                      progress=False, seed=0)
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 1, before any update: .* starting weights .*"
                                                 r"the learning rate is not the cause — .* initial weights") as e:
        trainer.fit(s.X_train, s.y_train)
    assert "smaller learning rate" not in str(e.value)
    assert str(e.value).endswith("or standardize the inputs (xdl.data.Standardizer)")  # (no leading Standardize)
    assert trainer.history.diverged.startswith("the cost became nan at epoch 1, step 1, before any update")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_model_holding_nan_is_refused_before_training_not_called_a_divergence():
    """A model left holding NaN (a diverged run's, caught; or an initializer beyond float32's range)
    is refused by fit before any work, as evaluate refuses it, naming where: its first cost is NaN,
    which was reported as this run diverging, "try a smaller learning rate"."""
    s = moons_parts()
    trainer = make_trainer(None, optimizer="gd", lr=1e-3, epochs=2)
    next(iter(trainer.model.parameters())).data[0, 0] = np.nan
    seed = trainer.seed
    with pytest.raises(ValueError, match=r"^fit: the model holds NaN or Inf in 0\.weight before training"):
        trainer.fit(s.X_train, s.y_train)
    assert (trainer.epoch, trainer.step, trainer.seed, trainer.history.records) == (0, 0, seed, [])  # nothing ran


@pytest.mark.parametrize("packed", [True, False])
def test_the_state_check_names_each_parameter_and_buffer_holding_nan_or_inf(packed):
    """`non_finite_state` flags each array of the state once — a flat buffer, a parameter outside one (a layer
    of its own, not packed), a buffer — and names the one holding NaN or Inf, in each place of each."""
    from xdl.train.divergence import non_finite_state

    def make():
        xdl.seed(0)
        return xdl.nn.mlp(2, [3], 2, batch_norm=True) if packed else xdl.nn.BatchNorm(3)

    assert all(getattr(p, "_flat", None) is not None for p in make().parameters()) is packed
    assert non_finite_state(make()) == []
    for name, _ in [*make().named_parameters(), *make().named_buffers()]:
        for bad in (np.nan, np.inf):
            model = make()
            array = {**{n: p.data for n, p in model.named_parameters()}, **dict(model.named_buffers())}[name]
            array[(-1,) * array.ndim] = bad
            assert non_finite_state(model) == [name], (name, bad)


def test_read_together_gives_each_part_back_as_float64_of_its_shape_and_none_for_none():
    """`read_together` (the epoch end's one host read): each part's values exactly — floats, booleans, counts
    below 2⁵³ —, of its shape, as float64; None where None, every part None or none given too. 300 cases."""
    from xdl.train.host_reads import read_together

    backend, rng = xdl.backend.get_backend("numpy"), np.random.default_rng(0)
    makers = [lambda s: rng.normal(size=s).astype(np.float32), lambda s: rng.normal(size=s),
              lambda s: rng.random(s) < 0.5, lambda s: rng.integers(0, 2**53, size=s)]
    for _ in range(300):
        parts = {f"part{j}": None if rng.random() < 0.3 else np.asarray(makers[rng.integers(4)](
            tuple(int(n) for n in rng.integers(0, 4, size=rng.integers(0, 3))))) for j in range(rng.integers(0, 5))}
        read = read_together(backend, **parts)
        assert list(read) == list(parts)
        for name, a in parts.items():
            if a is None:
                assert read[name] is None
            else:
                assert read[name].dtype == np.float64 and read[name].shape == a.shape, (name, a)
                np.testing.assert_array_equal(read[name], a.astype(np.float64))


def test_a_run_whose_cost_falls_in_its_first_epoch_started_at_that_epochs_mean_step_cost():
    """`start_cost` of the first epoch's step costs in step order (read at the epoch's end: `read_together`):
    the smaller of the first step's cost and the epoch's mean — for a falling run the mean, which the record
    holds as its running train cost (eval_train=False) —, not a later step's cost."""
    s = moons_parts()
    xdl.seed(0)
    model = xdl.nn.mlp(2, [16], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=0.05), batch_size=16, epochs=1, eval_train=False,
                      progress=False, seed=0)
    trainer.fit(s.X_train, s.y_train)
    assert trainer._start_cost == pytest.approx(trainer.history.records[0]["train_cost"], rel=1e-12)


@pytest.mark.parametrize("bad, match", [
    (dict(batch_size=0), "batch_size"), (dict(batch_size=-3), "batch_size"), (dict(epochs=0), "epochs"),
    (dict(l2=-1.0), "l2"),
])
def test_bad_trainer_settings(bad, match):
    with pytest.raises(ValueError, match=match):
        make_trainer(None, **bad)


def test_bad_inputs_are_rejected_before_training():
    s = moons_parts()
    trainer = make_trainer(None)
    weights = trainer.model.state_dict()
    X_nan = s.X_train.copy()
    X_nan[3, 1] = np.nan
    cases = [((s.X_train, s.y_train[:-1]), "same length"), ((X_nan, s.y_train), "NaN or Inf"),
             ((s.X_train, s.y_train + 5), "outside the model's 2 classes"),
             ((s.X_train[:, :1], s.y_train), "1 feature, the model expects 2")]
    for (X, y), match in cases:
        with pytest.raises(ValueError, match=match):
            trainer.fit(X, y)
    for name, value in trainer.model.state_dict().items():
        np.testing.assert_array_equal(value, weights[name])  # nothing trained half-way
    with pytest.raises(ValueError, match="expects 2"):
        trainer.evaluate(s.X_dev[:, :1], s.y_dev)


def test_a_trainer_needs_instances_and_an_optimizer_of_its_model():
    xdl.seed(0)
    model, other = xdl.nn.mlp(2, [4], 2), xdl.nn.mlp(2, [4], 2)
    with pytest.raises(ValueError, match="optimizer: 4 of its 4 parameters are not the model's"):
        Trainer(model, SoftmaxCrossEntropy(), Adam(other))  # would train nothing, silently
    with pytest.raises(TypeError, match=r"loss must be an xdl Loss or a function .*, got .*SoftmaxCrossEntropy'> "
                                        r"\(a class: make one"):
        Trainer(model, SoftmaxCrossEntropy, Adam(model))
    with pytest.raises(TypeError, match="optimizer must be an xdl Optimizer, got .*Adam'> \\(a class"):
        Trainer(model, SoftmaxCrossEntropy(), Adam)
    with pytest.raises(ValueError, match=r"optimizer holds no parameters; make it from the model, e.g. Adam\(model\)"):
        Trainer(model, SoftmaxCrossEntropy(), Adam(lr=0.1))
    with pytest.raises(TypeError, match="model must be an xdl Module, got 'model'"):
        Trainer("model", SoftmaxCrossEntropy(), Adam(model))
    one_output = xdl.nn.mlp(2, [4], 1)
    with pytest.raises(ValueError, match="SoftmaxCrossEntropy needs 2 or more outputs, the model gives 1; .*Binary"):
        Trainer(one_output, SoftmaxCrossEntropy(), Adam(one_output), progress=False).fit(np.zeros((8, 2)), np.zeros(8))
    with pytest.warns(UserWarning, match="model.predict will give classes"):  # (it says nothing of that)
        assert Trainer(model, lambda outputs, labels: (outputs * outputs).mean(), Adam(model)).loss  # one's own
    frozen = Adam(model.layers[-1])  # part of the model (the rest frozen) is fine
    assert Trainer(model, SoftmaxCrossEntropy(), frozen).optimizer is frozen


def test_softmax_cross_entropy_on_one_output_is_named_whatever_the_labels_not_as_a_label_outside_two_classes():
    """A one-output model with labels of three classes said "y has class index 2, outside the model's 2
    classes [0, 2)": a model of one output, and a loss that needs two or more whatever the labels."""
    xdl.seed(0)
    one_output = xdl.nn.mlp(2, [4], 1)
    trainer = Trainer(one_output, SoftmaxCrossEntropy(), Adam(one_output), progress=False)
    X, y = np.zeros((9, 2)), np.arange(9) % 3
    for run in (lambda: trainer.fit(X, y), lambda: trainer.evaluate(X, y)):
        with pytest.raises(ValueError, match=r"^y: SoftmaxCrossEntropy needs 2 or more outputs, the model gives 1"):
            run()


def test_running_statistics_that_overflow_in_the_first_forward_pass_are_no_rate_s_doing_and_said_so():
    """Weights drawn at normal(1e20) overflow a batch norm's running variance in the first forward pass,
    the cost staying finite: the run, at lr 1e-10, stopped at its first epoch's end with "try a smaller
    learning rate"."""
    s = moons_parts(200)
    xdl.seed(0)
    model = xdl.nn.mlp(2, [16, 8], 2, batch_norm=True, init="normal(1e20)")
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=1e-10), epochs=2, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (NumPy's overflow)
        with pytest.raises(FloatingPointError, match=r"running_var became NaN or Inf at epoch 1, step 1, in its "
                                                     r"forward pass, before any update: .*; the learning rate is not "
                                                     r"the cause"):
            trainer.fit(s.X_train, s.y_train)
    assert trainer.step == 1  # (stopped there, not at the epoch's end)


def test_a_second_fit_goes_on_with_the_run_and_says_when_there_is_nothing_left():
    s = moons_parts()
    trainer = make_trainer(None, epochs=2)
    trainer.fit(s.X_train, s.y_train)
    weights = trainer.model.state_dict()
    with pytest.raises(ValueError, match="fit: this trainer has trained all its 2 epochs; .*raise trainer.epochs"):
        trainer.fit(s.X_train, s.y_train)  # silently nothing, before
    for name, value in trainer.model.state_dict().items():
        np.testing.assert_array_equal(value, weights[name])
    trainer.epochs = 3
    assert trainer.fit(s.X_train, s.y_train)["epoch"] == [1, 2, 3]


class HalveLrAt(xdl.train.Callback):
    """Halves the optimizer's rate at the end of epoch ``epoch`` (as a plateau rule would)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch:
            trainer.optimizer.lr /= 2


def test_a_resume_keeps_the_rate_the_run_had_set(tmp_path):
    s = moons_parts()
    straight = make_trainer(None, optimizer="gd", lr=0.1, epochs=5, callbacks=[HalveLrAt(2)])
    straight.fit(s.X_train, s.y_train)
    first = make_trainer(None, optimizer="gd", lr=0.1, epochs=3, callbacks=[HalveLrAt(2), Checkpoint(tmp_path)])
    first.fit(s.X_train, s.y_train)
    resumed = make_trainer(None, optimizer="gd", lr=0.1, epochs=5, callbacks=[HalveLrAt(2), Checkpoint(tmp_path)])
    history = resumed.fit(s.X_train, s.y_train, resume=tmp_path)
    assert history["lr"] == straight.history["lr"] == [0.1, 0.1, 0.05, 0.05, 0.05]  # was 0.1 again after the resume
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


class SetLrAt(xdl.train.Callback):
    """Sets the optimizer's rate to ``lr`` at the end of epoch ``epoch`` (in a per-step schedule's place)."""

    def __init__(self, epoch, lr):
        self.epoch, self.lr = epoch, lr

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch:
            trainer.optimizer.lr = self.lr


def test_a_resume_keeps_a_rate_set_in_a_per_step_schedules_place(tmp_path):
    """lr = α₀·0.999ᵗ per step until epoch 2's end, 0.001 after: the checkpoint's 0.001 is the run's (a
    resume went back to the schedule, 0.0098 at epoch 4, and ended with other weights)."""
    s = moons_parts()

    def make(epochs, callbacks=()):
        return make_trainer(None, lr=xdl.optim.schedules.exponential(0.01, base=0.999), epochs=epochs,
                            callbacks=[SetLrAt(2, 0.001), *callbacks])

    straight = make(5)
    straight.fit(s.X_train, s.y_train)
    make(3, [Checkpoint(tmp_path)]).fit(s.X_train, s.y_train)
    resumed = make(5, [Checkpoint(tmp_path)])
    history = resumed.fit(s.X_train, s.y_train, resume=tmp_path)
    assert history["lr"][2:] == straight.history["lr"][2:] == [0.001] * 3
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_a_resume_says_a_schedule_set_during_the_run_is_not_in_its_checkpoint(tmp_path):
    """opt.lr = schedule at epoch 2's end, in a constant's place: a schedule is code, not saved, and
    the resume went back to the constructor's constant without a word — unless a callback sets it
    again as the resumed run begins."""
    s = moons_parts()
    schedule = xdl.optim.schedules.exponential(0.01, base=0.99)

    class ScheduleFrom2(xdl.train.Callback):
        def __init__(self, again):
            self.again = again

        def on_train_begin(self, trainer):
            if self.again and trainer.epoch >= 2:
                trainer.optimizer.lr = schedule

        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                trainer.optimizer.lr = schedule

    make_trainer(None, lr=0.01, epochs=3, callbacks=[ScheduleFrom2(False), Checkpoint(tmp_path)]).fit(s.X_train,
                                                                                                      s.y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # set again as the run began: nothing to say
        make_trainer(None, lr=0.01, epochs=4, callbacks=[ScheduleFrom2(True), Checkpoint(tmp_path / "other")]).fit(
            s.X_train, s.y_train, resume=tmp_path)
    with pytest.warns(UserWarning, match=r"resume: the run had a schedule as group 0's lr when '.*checkpoint.npz' "
                                         r"was written .*the resumed run goes on at 0.01: set the schedule again"):
        make_trainer(None, lr=0.01, epochs=4, callbacks=[ScheduleFrom2(False), Checkpoint(tmp_path)]).fit(
            s.X_train, s.y_train, resume=tmp_path)


class PlateauFrom(xdl.train.Callback):
    """Halves the rate at the end of each epoch from ``epoch`` on, in the epoch schedule's place (a plateau
    rule, Keras's ReduceLROnPlateau, that clears trainer.schedule as the docs say)."""

    def __init__(self, epoch, stop_at=None):
        self.epoch, self.stop_at = epoch, stop_at

    def on_epoch_end(self, trainer, record):
        if record["epoch"] >= self.epoch:
            trainer.schedule = None
            trainer.optimizer.lr /= 2
        if record["epoch"] == self.stop_at:
            trainer.stop_training = True


def test_a_resume_keeps_the_epoch_schedule_a_callback_cleared(tmp_path):
    """lr = 0.1·0.9^e until epoch 2's end, then halved each epoch by the callback (schedule cleared): the
    resumed run went back to the schedule, 0.0729 at epoch 4 where the run had 0.0225, unsaid, and ended
    with other weights."""
    s = moons_parts()
    schedule = xdl.optim.schedules.exponential(0.1, base=0.9)

    def make(callbacks):
        return make_trainer(None, optimizer="gd", lr=0.1, epochs=5, schedule=schedule, callbacks=callbacks)

    straight = make([PlateauFrom(2)])
    straight.fit(s.X_train, s.y_train)
    make([PlateauFrom(2, stop_at=3), Checkpoint(tmp_path)]).fit(s.X_train, s.y_train)
    resumed = make([PlateauFrom(2, stop_at=3), Checkpoint(tmp_path)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = resumed.fit(s.X_train, s.y_train, resume=tmp_path)
    assert straight.history["lr"] == pytest.approx([0.1, 0.09, 0.045, 0.0225, 0.01125])
    assert history["lr"] == straight.history["lr"]  # was [0.1, 0.09, 0.045, 0.0729, 0.06561]
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_a_trainer_resuming_its_own_checkpoint_takes_the_schedule_the_checkpoint_had(tmp_path):
    """A checkpoint written while the schedule was the given one, resumed by the trainer whose run cleared it
    after (PlateauFrom(3)): the resumed epoch 3 is schedule(2) = 0.081, as the run had it, as a new trainer's
    resume has it — the trainer kept its own cleared schedule, 0.09 on, unsaid."""
    s = moons_parts()
    schedule = xdl.optim.schedules.exponential(0.1, base=0.9)

    def make(directory):
        return make_trainer(None, optimizer="gd", lr=0.1, epochs=5, schedule=schedule,
                            callbacks=[PlateauFrom(3, stop_at=2), Checkpoint(directory)])

    trainer = make(tmp_path / "run")
    trainer.fit(s.X_train, s.y_train)  # epochs 1, 2 at the schedule's rates: its checkpoint has it "given"
    kept = tmp_path / "epoch2"
    kept.mkdir()
    (kept / "checkpoint.npz").write_bytes((tmp_path / "run" / "checkpoint.npz").read_bytes())
    trainer.fit(s.X_train, s.y_train)  # epoch 3's end clears the schedule
    assert trainer.schedule is None
    fresh = make(tmp_path / "fresh")
    fresh.fit(s.X_train, s.y_train, resume=kept)
    trainer.fit(s.X_train, s.y_train, resume=kept)
    assert trainer.history["lr"] == fresh.history["lr"] == pytest.approx([0.1, 0.09, 0.081, 0.0405, 0.02025])


def test_a_schedule_a_callback_clears_and_sets_again_is_no_rate_set_under_it():
    """Cleared at epoch 2's end (the rate held at 0.01 for epoch 3), set again at epoch 3's: epoch 4 is
    schedule(3), as the callback asked — the warning compared 0.01 with epoch 2's rate, which the schedule
    had set before it was cleared, and said the callback had set a rate under a kept schedule."""
    s = moons_parts()
    schedule = xdl.optim.schedules.exponential(0.1, base=0.9)

    class Hold(xdl.train.Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                trainer.schedule = None
                trainer.optimizer.lr = 0.01
            elif record["epoch"] == 3:
                trainer.schedule = schedule

    trainer = make_trainer(None, optimizer="gd", lr=0.1, epochs=5, schedule=schedule, callbacks=[Hold()])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = trainer.fit(s.X_train, s.y_train)
    assert history["lr"] == pytest.approx([0.1, 0.09, 0.01, 0.0729, 0.06561])


def test_a_resume_of_a_schedule_set_where_none_was_given_says_it_goes_on_without_one(tmp_path):
    """A trainer made without a schedule, one set by a callback at epoch 2's end and not set again on resuming:
    the warning said the run went on "with the one the Trainer was made with" — there was none."""
    s = moons_parts()

    class ScheduleFrom2(xdl.train.Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                trainer.schedule = xdl.optim.schedules.exponential(0.05, base=0.5)
            if record["epoch"] == 3:
                trainer.stop_training = True

    make_trainer(None, optimizer="gd", lr=0.1, epochs=5, callbacks=[ScheduleFrom2(), Checkpoint(tmp_path)]).fit(
        s.X_train, s.y_train)
    with pytest.warns(UserWarning, match=r"goes on without one, at the checkpoint's rate \(the Trainer was made with "
                                         r"none\): set trainer.schedule again"):
        make_trainer(None, optimizer="gd", lr=0.1, epochs=5, callbacks=[ScheduleFrom2(), Checkpoint(tmp_path)]).fit(
            s.X_train, s.y_train, resume=tmp_path)


def test_a_rate_a_callback_sets_under_a_kept_epoch_schedule_is_said():
    """trainer.optimizer.lr /= 2 at epoch 2's end with trainer.schedule kept: the schedule sets epoch 3's rate
    over it — said once, not trained on as if the callback had done nothing, silently."""
    s = moons_parts()
    trainer = make_trainer(None, optimizer="gd", lr=0.1, epochs=4,
                           schedule=xdl.optim.schedules.exponential(0.1, base=0.9), callbacks=[HalveLrAt(2)])
    with pytest.warns(UserWarning, match=r"rate was set to 0.045 after the schedule set epoch 2's, 0.09.*"
                                         r"clears the schedule \(trainer.schedule = None"):
        history = trainer.fit(s.X_train, s.y_train)
    assert history["lr"] == pytest.approx([0.1, 0.09, 0.081, 0.0729])  # (the schedule's, as documented)


def test_a_rate_a_callbacks_on_train_begin_sets_under_a_kept_epoch_schedule_is_said():
    """trainer.optimizer.lr = 0.5 in on_train_begin (a rate found before, a warm restart's) with
    trainer.schedule kept: the first epoch's start set the schedule's rate over it and the run trained
    as if the callback had done nothing, unsaid — only a rate set after an epoch of the fit was compared.
    Set to the rate the schedule gives the first epoch, nothing is replaced or said."""

    class SetAtBegin(xdl.train.Callback):
        def __init__(self, rate):
            self.rate = rate

        def on_train_begin(self, trainer):
            trainer.optimizer.lr = self.rate

    s = moons_parts()
    schedule = xdl.optim.schedules.exponential(0.1, base=0.9)
    trainer = make_trainer(None, optimizer="gd", lr=0.1, epochs=2, schedule=schedule, callbacks=[SetAtBegin(0.5)])
    with pytest.warns(UserWarning, match=r"^the optimizer's rate was set to 0.5 as the run began \(a callback's "
                                         r"on_train_begin\), and the schedule sets epoch 1's now, 0.1, in its place"):
        history = trainer.fit(s.X_train, s.y_train)
    assert history["lr"] == pytest.approx([0.1, 0.09])  # (the schedule's, as documented)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_trainer(None, optimizer="gd", lr=0.3, epochs=2, schedule=schedule,
                     callbacks=[SetAtBegin(0.1)]).fit(s.X_train, s.y_train)


@pytest.mark.parametrize("next_rate", [False, True])
def test_one_groups_rate_a_callback_sets_under_a_kept_epoch_schedule_is_said(next_rate):
    """``opt.param_groups[1]["lr"] /= 10`` at epoch 2's end (the biases slower, say) with
    trainer.schedule kept: the schedule sets every group's rate at epoch 3's start, that one's too —
    said as for ``opt.lr``, where only group 0's rate was compared and this one was replaced unsaid.
    Set to the rate the schedule gives epoch 3 (what it sets next), nothing is replaced or said."""

    class SetGroup1At2(xdl.train.Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                group = trainer.optimizer.param_groups[1]
                group["lr"] = trainer.schedule(2) if next_rate else group["lr"] / 10

    s = moons_parts()
    xdl.seed(0)
    model = xdl.nn.mlp(2, [16, 8], 2, batch_norm=True)
    opt = xdl.optim.SGD(xdl.optim.param_groups(model, 0.0), lr=0.1)
    trainer = Trainer(model, SoftmaxCrossEntropy(), opt, epochs=3, seed=0, progress=False, batch_size=64,
                      schedule=xdl.optim.schedules.exponential(0.1, base=0.9), callbacks=[SetGroup1At2()])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(s.X_train, s.y_train)
    said = [str(w.message) for w in caught if "rate was set to" in str(w.message)]
    expected = [] if next_rate else ["the optimizer's group 1's rate was set to 0.009 after the schedule set epoch 2's"]
    assert len(said) == len(expected) and all(m.startswith(e) for m, e in zip(said, expected)) and trainer.epoch == 3


def test_a_dev_monitor_only_a_reading_callback_needs_is_not_refused_without_dev(tmp_path):
    """Only a callback that reads its monitor each epoch (``reads_monitor``: EarlyStopping,
    OptunaPruning) needs the dev set for a dev one: a Checkpoint on dev_cost, or a callback of one's
    own with a ``monitor`` attribute, fits without one as before."""

    class Mine(xdl.train.Callback):
        monitor = "dev_cost"

    s = moons_parts()
    for callback in (xdl.train.Checkpoint(tmp_path, monitor="dev_cost"), Mine()):
        model = xdl.nn.mlp(2, [4], 2)
        trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=0.1), epochs=1, progress=False,
                          callbacks=[callback])
        trainer.fit(s.X_train, s.y_train)
        assert trainer.epoch == 1


def test_a_later_fit_of_the_run_keeps_its_best_checkpoint_and_early_stopping_state(tmp_path):
    s = moons_parts()
    dev = (s.X_dev, s.y_dev)
    stopping = EarlyStopping(patience=50)
    trainer = make_trainer(None, lr=1e-2, epochs=4, callbacks=[stopping, Checkpoint(tmp_path)])
    trainer.fit(s.X_train, s.y_train, dev=dev)
    best, best_epoch = stopping.best, stopping.best_epoch
    best_file = (tmp_path / "best.npz").read_bytes()
    trainer.optimizer.lr = 5.0  # training on at a rate that makes every later epoch worse
    trainer.epochs = 6
    history = trainer.fit(s.X_train, s.y_train, dev=dev)
    assert min(history["dev_cost"][4:]) > -best  # (best is sign-adjusted: the lowest dev cost)
    assert (tmp_path / "best.npz").read_bytes() == best_file  # was replaced by epoch 5's, before
    assert stopping.best_epoch == best_epoch == history.best_epoch  # restored the run's best, not this fit's
    assert stopping.best == best


@pytest.mark.parametrize("make, match", [
    (lambda d: EarlyStopping(monitor="dev_acuracy"), r"EarlyStopping: monitor must be one of dev_cost, dev_accuracy"),
    (lambda d: Checkpoint(d, monitor="dev_acc"), r"Checkpoint: monitor must be one of .*got 'dev_acc'"),
    (lambda d: Checkpoint(d, monitor=None), r"Checkpoint: monitor must be one of .*got None"),
    (lambda d: EarlyStopping(monitor="val_loss"), r"got 'val_loss' \(Keras's 'val_loss' is 'dev_cost' here\)"),
    (lambda d: EarlyStopping(min_delta="0.1"), r"EarlyStopping: min_delta must be a number ≥ 0, got '0.1'"),
    (lambda d: Checkpoint(123), r"Checkpoint: directory must be a non-empty str or path, got 123"),
])
def test_callback_arguments_are_checked_where_they_are_made(tmp_path, make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make(tmp_path)


def test_callback_numbers_may_be_numpy_numbers():
    assert EarlyStopping(min_delta=np.float32(0.01)).min_delta == pytest.approx(0.01)
    assert EarlyStopping(min_delta=np.int64(0)).min_delta == 0.0


def test_a_checkpoint_file_name_taken_by_a_directory_is_refused_before_training(tmp_path):
    (tmp_path / "checkpoint.npz").mkdir()
    s = moons_parts()
    trainer = make_trainer(None, epochs=2, callbacks=[Checkpoint(tmp_path)])
    with pytest.raises(IsADirectoryError, match=r"checkpoint.npz' is a directory"):
        trainer.fit(s.X_train, s.y_train)
    assert trainer.epoch == 0


class OverflowRunningVariance(xdl.train.Callback):
    """Sets the batch norm's running variance to Inf at the end of epoch 1: the costs stay finite
    (x/√∞ = 0), as when a growing rate makes it overflow."""

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == 1:
            trainer.model.layers[1].running_var[...] = np.inf


def test_a_state_that_became_non_finite_stops_the_run_without_a_checkpoint_to_write(tmp_path):
    s = moons_parts()
    trainer = make_trainer(None, epochs=4, callbacks=[OverflowRunningVariance()])
    with pytest.raises(FloatingPointError, match=r"training diverged: 1\.running_var became NaN or Inf in epoch 2"):
        trainer.fit(s.X_train, s.y_train)
    assert trainer.history["epoch"] == [1]  # the bad epoch is not recorded as one trained
    assert trainer.history.diverged == "1.running_var became NaN or Inf in epoch 2"
    trainer.history.save(tmp_path / "history.json")
    assert json.loads((tmp_path / "history.json").read_text())["diverged"] == trainer.history.diverged


@pytest.mark.parametrize("bad, match", [
    (dict(callbacks=EarlyStopping()), r"callbacks must be a list .*got one: callbacks=\[EarlyStopping\(monitor="),
    (dict(augment="flip"), r"augment must be a callable \(X_batch, rng\) -> X_batch.*got 'flip'"),
])
def test_trainer_parts_of_the_wrong_kind_are_named(bad, match):
    xdl.seed(0)
    model = xdl.nn.mlp(2, [8], 2)
    with pytest.raises(TypeError, match=match):
        Trainer(model, SoftmaxCrossEntropy(), Adam(model), **bad)


def test_an_epoch_schedule_over_groups_with_rates_of_their_own_is_refused():
    xdl.seed(0)
    model = xdl.nn.mlp(2, [8], 2)
    groups = [{"params": model.parameters("weight"), "lr": 1e-3}, {"params": model.parameters("bias"), "lr": 1e-1}]
    with pytest.raises(ValueError, match=r"schedule: it sets every group's rate .*rates of their own \(0.001, 0.1\)"):
        Trainer(model, SoftmaxCrossEntropy(), xdl.optim.SGD(groups, lr=1e-2),
                schedule=xdl.optim.schedules.exponential(1e-2, base=0.5))
    Trainer(model, SoftmaxCrossEntropy(), xdl.optim.SGD(groups, lr=1e-2))  # without one, each keeps its own


def test_two_schedules_are_refused():
    xdl.seed(0)
    model = xdl.nn.mlp(2, [4], 2)
    per_step = Adam(model, lr=xdl.optim.schedules.exponential(0.1, base=0.5))
    with pytest.raises(ValueError, match="schedule: the optimizer's lr is already a per-step schedule"):
        Trainer(model, SoftmaxCrossEntropy(), per_step, schedule=xdl.optim.schedules.inverse_time(0.05, decay_rate=1.0))


def test_a_resume_says_a_per_step_schedule_a_callback_replaced_is_not_in_its_checkpoint(tmp_path):
    """lr = 0.01·0.999ᵗ per step, replaced at epoch 2's end by opt.lr = 0.003·0.5ᵗ (a schedule: code, not
    saved): the resume went on with the optimizer's own 0.01·0.999ᵗ — epoch 4 at 0.0098 where the run
    had ~0 — without a word (it warned only where the resumed setting was no schedule at all)."""
    s = moons_parts()
    replacement = xdl.optim.schedules.exponential(0.003, base=0.5)

    def make(epochs, again=False):
        class Replace(xdl.train.Callback):
            def on_train_begin(self, trainer):
                if again and trainer.epoch >= 2:
                    trainer.optimizer.lr = replacement

            def on_epoch_end(self, trainer, record):
                if record["epoch"] == 2:
                    trainer.optimizer.lr = replacement

        return make_trainer(None, lr=xdl.optim.schedules.exponential(0.01, base=0.999), epochs=epochs,
                            callbacks=[Replace(), Checkpoint(tmp_path)])

    make(3).fit(s.X_train, s.y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # set again as the run began: nothing to say
        make(4, again=True).fit(s.X_train, s.y_train, resume=tmp_path)
    make(3).fit(s.X_train, s.y_train)  # (a fresh run's checkpoint at epoch 3 again)
    resumed = make(4)
    with pytest.warns(UserWarning, match=r"resume: the run had another schedule as group 0's lr than the optimizer was "
                                         r"made with .*goes on with the optimizer's own, exponential\(0.01, 0.999\)"):
        resumed.fit(s.X_train, s.y_train, resume=tmp_path)
    resumed.epochs = 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once, by the resume: a later fit of the run is no resume
        resumed.fit(s.X_train, s.y_train)
        # a run whose schedule no callback replaced resumes without a word
        plain = lambda epochs: make_trainer(None, lr=xdl.optim.schedules.exponential(0.01, base=0.999),  # noqa: E731
                                            epochs=epochs, callbacks=[Checkpoint(tmp_path / "plain")])
        plain(2).fit(s.X_train, s.y_train)
        plain(3).fit(s.X_train, s.y_train, resume=tmp_path / "plain")


@pytest.mark.parametrize("schedule, match", [
    (xdl.optim.schedules.exponential, r"schedule is xdl.optim.schedules.exponential, which makes a schedule"),
    (lambda epoch, lr: lr, r"schedule must take one argument, the epochs completed"),
    (0.01, r"schedule must be a callable epoch → learning rate, got 0.01"),
])
def test_a_schedule_set_on_the_trainer_is_checked_as_the_constructors(schedule, match):
    """trainer.schedule = … between fits (or in a callback) was taken as it came: a maker failed at the
    next fit with "lr0 must be a finite number > 0, got 0", a number ran as a constant."""
    xdl.seed(0)
    model = xdl.nn.mlp(2, [4], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=0.1))
    with pytest.raises(TypeError, match=match):
        trainer.schedule = schedule
    assert trainer.schedule is None


def test_an_epoch_schedule_set_beside_a_per_step_one_or_over_groups_rates_is_refused():
    """What the constructor refuses, set afterwards: the epoch schedule replaced the per-step lr for good at
    the next epoch's start (and set every group's own rate alike), silently."""
    s = moons_parts()
    trainer = make_trainer(None, lr=xdl.optim.schedules.exponential(0.01, base=0.999), epochs=2)
    trainer.fit(s.X_train, s.y_train)
    with pytest.raises(ValueError, match="schedule: the optimizer's lr is already a per-step schedule"):
        trainer.schedule = xdl.optim.schedules.exponential(0.01, base=0.5)
    xdl.seed(0)
    model = xdl.nn.mlp(2, [8], 2)
    groups = [{"params": model.parameters("weight"), "lr": 1e-3}, {"params": model.parameters("bias"), "lr": 1e-1}]
    grouped = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.SGD(groups, lr=1e-2))
    with pytest.raises(ValueError, match=r"rates of their own \(0.001, 0.1\)"):
        grouped.schedule = xdl.optim.schedules.exponential(1e-2, base=0.5)
    # the other order: opt.lr = a per-step schedule under a kept epoch schedule, refused by the next fit
    kept = make_trainer(None, optimizer="gd", lr=0.1, epochs=2, schedule=xdl.optim.schedules.exponential(0.1, base=0.9))
    kept.fit(s.X_train, s.y_train)
    kept.optimizer.lr, kept.epochs = xdl.optim.schedules.exponential(0.05, base=0.999), 3
    with pytest.raises(ValueError, match="schedule: the optimizer's lr is already a per-step schedule"):
        kept.fit(s.X_train, s.y_train)
    assert kept.epoch == 2


def test_a_per_step_schedule_a_callback_sets_under_a_kept_epoch_schedule_is_said():
    """opt.lr = schedule at epoch 2's end with trainer.schedule kept: the epoch schedule replaced it at the
    next epoch's start — the warning for a number set there passed over a schedule, unsaid."""
    s = moons_parts()

    class PerStepFrom2(xdl.train.Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                trainer.optimizer.lr = xdl.optim.schedules.exponential(0.05, base=0.999)

    trainer = make_trainer(None, optimizer="gd", lr=0.1, epochs=4,
                           schedule=xdl.optim.schedules.exponential(0.1, base=0.9), callbacks=[PerStepFrom2()])
    with pytest.warns(UserWarning, match=r"rate was set to a per-step schedule, exponential\(0.05, 0.999\), after "
                                         r"the schedule set epoch 2's, 0.09"):
        history = trainer.fit(s.X_train, s.y_train)
    assert history["lr"] == pytest.approx([0.1, 0.09, 0.081, 0.0729])  # (the schedule's, as documented)


def test_diagnose_verdicts_and_history_json(tmp_path):
    d = xdl.diagnose({"train_accuracy": 0.99, "dev_accuracy": 0.90})
    assert d.verdict == "high variance" and any("regularization" in s for s in d.next_steps)
    assert xdl.diagnose({"train_accuracy": 0.80, "dev_accuracy": 0.79}, base_error=0.05).verdict == "high bias"
    assert xdl.diagnose({"train_accuracy": 0.80, "dev_accuracy": 0.70}).verdict == "high bias and high variance"
    assert xdl.diagnose({"train_accuracy": 0.97, "dev_accuracy": 0.96}, base_error=0.02).verdict == "good"
    assert "below the base error 20.00%" in xdl.diagnose({"train_accuracy": 0.85, "dev_accuracy": 0.85},
                                                          base_error=0.2).next_steps[0]
    # gaps of exactly the tolerance are not high, whatever the accuracies' rounding (1 − 0.98 > 0.02)
    assert xdl.diagnose({"train_accuracy": 0.98, "dev_accuracy": 0.96}).verdict == "good"
    assert xdl.diagnose({"train_accuracy": 0.93, "dev_accuracy": 0.91}, base_error=0.05).verdict == "good"
    for bad, match in (({"train_accuracy": float("nan"), "dev_accuracy": 0.9}, r"train_accuracy must be a number in \[0, 1\]"),
                       ({"train_accuracy": 1.5, "dev_accuracy": 0.9}, r"train_accuracy must be a number in \[0, 1\]"),
                       ({"train_accuracy": 0.9, "dev_accuracy": "0.9"}, r"dev_accuracy must be a number in \[0, 1\], got '0.9'")):
        with pytest.raises(ValueError, match=match):
            xdl.diagnose(bad)
    with pytest.raises(ValueError, match=r"tolerance must be a number in \[0, 1\)"):
        xdl.diagnose({"train_accuracy": 0.9, "dev_accuracy": 0.9}, tolerance=float("nan"))
    with pytest.raises(ValueError, match=r"base_error must be a number in \[0, 1\), got None"):
        xdl.diagnose({"train_accuracy": 0.9, "dev_accuracy": 0.9}, base_error=None)
    with pytest.raises(TypeError, match="diagnose takes a History or a record dict"):
        xdl.diagnose([0.9, 0.8])
    history = xdl.History([{"epoch": 1, "train_accuracy": 0.9, "dev_accuracy": 0.8}], best_epoch=1)
    assert xdl.diagnose(history).variance == pytest.approx(0.1)
    history.save(tmp_path / "h.json")
    assert json.loads((tmp_path / "h.json").read_text())["best_epoch"] == 1
    assert xdl.History.load(tmp_path / "h.json")["dev_accuracy"] == [0.8]
    history.records[0]["gap"] = np.float32(0.25)  # a callback's own NumPy number
    assert xdl.History.load(history.save(tmp_path / "h.json"))[0]["gap"] == 0.25
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="is not a history History.save wrote"):
        xdl.History.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="best_epoch is 3, but no record is of that epoch"):
        xdl.History(history.records, best_epoch=3).final()
    three = [{"epoch": e, "dev_cost": c} for e, c in ((1, 0.5), (2, 0.3), (3, 0.4))]
    assert xdl.History(three).final() == three[-1]  # the last epoch's, unless a best was restored
    assert xdl.History(three, best_epoch=2).final() == three[1]


def test_learning_curves_png(tmp_path):
    s = moons_parts()
    trainer = make_trainer(None, epochs=3)
    history = trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    from xdl.plots import plot_history

    path = plot_history(history, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.pyplot as plt

    for bad, match in ((1.5, r"plot_history: smoothing must be a number in \[0, 1\).*got 1.5"),
                       ("0.6", r"plot_history: smoothing must be .*got '0.6'")):
        with pytest.raises(ValueError, match=match):
            plot_history(history, tmp_path / "bad.png", smoothing=bad)
    with pytest.raises(OSError):
        plot_history(history, tmp_path / "no such directory" / "curves.png")
    assert not plt.get_fignums()  # a failed call leaves no figure open


def test_standardized_digits_model_learns(backend):
    X, y = xdl.datasets.digits()
    s = split(X, y)
    xdl.seed(0)
    model = xdl.nn.mlp(64, [32], 10, batch_norm=True, standardize=Standardizer().fit(s.X_train).layer())
    trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=3e-3), epochs=5, progress=False)
    history = trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert history[-1]["dev_accuracy"] > 0.9


class WriteControl(xdl.train.Callback):
    """Plays the babysitter: writes ``text`` as control.toml at the end of epoch ``epoch``."""

    order = 10  # before Control reads the file

    def __init__(self, directory, epoch, text):
        self.directory, self.epoch, self.text = directory, epoch, text

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch:
            (self.directory / "control.toml").write_text(self.text)


@pytest.mark.parametrize("epoch", [1, 2])
def test_a_control_given_to_a_new_run_starts_it_afresh(tmp_path, epoch):
    """One Control given to a run, then to a new trainer's run: the new run starts with no rate set by hand
    and no notes — the file the first run applied (lr, at epoch ``epoch``) is that run's alone."""
    from xdl.train import Control

    parts = moons_parts(300)
    control = Control(tmp_path)
    first = make_trainer(None, epochs=2, callbacks=[WriteControl(tmp_path, epoch, "lr = 0.0005\n"), control])
    first.fit(parts.X_train, parts.y_train)
    assert control.lr == 5e-4 and len(control.notes) == 1
    history = make_trainer(None, epochs=2, callbacks=[control]).fit(parts.X_train, parts.y_train)
    assert control.lr is None and control.notes == []
    assert history["lr"] == [1e-3, 1e-3] and "control" not in history


def test_control_file_changes_the_rate_and_stops_and_a_resume_replays_it(tmp_path):
    from xdl.train import Control

    parts = moons_parts(300)
    schedule = xdl.optim.schedules.inverse_time(1e-2, decay_rate=0.5)
    run = tmp_path / "run"
    run.mkdir()
    trainer = make_trainer(None, epochs=6, schedule=schedule,
                           callbacks=[WriteControl(run, 2, "lr = 0.0005\n"), Control(run)])
    history = trainer.fit(parts.X_train, parts.y_train)
    assert history["lr"][:2] == [schedule(0), schedule(1)] and history["lr"][2:] == [5e-4] * 4
    assert history[1]["control"] == "control.toml at epoch 2: lr = 0.0005 from epoch 3 in the schedule's place"
    assert (run / "control-applied-epoch-2.toml").is_file() and not (run / "control.toml").exists()

    # interrupted after epoch 4 (a checkpoint of the first 4 epochs), then resumed: the rate set by
    # hand is replayed, and the run ends where the uninterrupted one did
    other = tmp_path / "other"
    other.mkdir()
    first = make_trainer(None, epochs=4, schedule=schedule, callbacks=[WriteControl(other, 2, "lr = 0.0005\n"),
                                                                       Control(other), Checkpoint(other)])
    first.fit(parts.X_train, parts.y_train)
    resumed = make_trainer(None, epochs=6, schedule=schedule, callbacks=[WriteControl(other, 2, "lr = 0.0005\n"),
                                                                         Control(other), Checkpoint(other)])
    resumed.fit(parts.X_train, parts.y_train, resume=other)
    assert resumed.history["lr"] == history["lr"]
    for a, b in zip(resumed.model.parameters(), trainer.model.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    stopped = make_trainer(None, epochs=6, callbacks=[WriteControl(run, 3, "stop = true\n"), Control(run)])
    assert len(stopped.fit(parts.X_train, parts.y_train)) == 3

    bad = make_trainer(None, epochs=3, callbacks=[WriteControl(run, 1, "lr = -1\n"), Control(run)])
    with pytest.warns(UserWarning, match="control.toml at epoch 1 not applied: lr is -1: a learning rate must be"):
        history = bad.fit(parts.X_train, parts.y_train)
    assert "not applied: lr is -1: a learning rate must be a number in float32's positive range" in history[0]["control"] and len(history) == 3
    assert (run / "control-rejected-epoch-1.toml").is_file()


def test_a_control_files_rate_is_refused_over_groups_with_rates_of_their_own(tmp_path):
    """``lr = …`` sets every group's rate (``opt.lr``): over groups with rates of their own (a head
    trained 100× faster than its body) it replaced them by one, silently — refused, as the Trainer
    refuses an epoch schedule over them; groups of one rate (weight decay's) take it."""
    from xdl.train import Control

    parts = moons_parts(300)
    xdl.seed(0)
    model = xdl.nn.mlp(2, [16, 8], 2, batch_norm=True)
    head = {id(p) for p in model.layers[-1].parameters()}
    body = [p for p in model.parameters() if id(p) not in head]
    opt = Adam([{"params": body, "lr": 1e-4}, {"params": list(model.layers[-1].parameters()), "lr": 1e-2}])
    trainer = Trainer(model, SoftmaxCrossEntropy(), opt, epochs=3, progress=False, seed=0,
                      callbacks=[WriteControl(tmp_path, 1, "lr = 0.001\n"), Control(tmp_path)])
    with pytest.warns(UserWarning, match=r"control.toml at epoch 1 not applied: lr: it sets every group's rate to "
                                         r"one, and the optimizer's groups have rates of their own \(0.0001, 0.01\)"):
        trainer.fit(parts.X_train, parts.y_train)
    assert [g["lr"] for g in opt.param_groups] == [1e-4, 1e-2]
    assert (tmp_path / "control-rejected-epoch-1.toml").is_file()
    xdl.seed(0)
    model = xdl.nn.mlp(2, [16, 8], 2, batch_norm=True)
    opt = Adam(xdl.optim.param_groups(model, 1e-3), lr=1e-2)  # two groups, one rate
    trainer = Trainer(model, SoftmaxCrossEntropy(), opt, epochs=3, progress=False, seed=0,
                      callbacks=[WriteControl(tmp_path, 1, "lr = 0.001\n"), Control(tmp_path)])
    assert trainer.fit(parts.X_train, parts.y_train)["lr"] == [1e-2, 1e-3, 1e-3]


def test_a_rate_set_by_hand_that_diverged_is_corrected_by_a_control_file_read_on_resuming(tmp_path):
    """The last good checkpoint holds the rate that diverged; a control file written before the
    resume replaces it before the first step, so the advice "a smaller rate" can be followed."""
    from xdl.train import Control

    parts = moons_parts(300)
    run = tmp_path / "run"
    run.mkdir()
    callbacks = [WriteControl(run, 1, "lr = 1e30\n"), Control(run), Checkpoint(run / "checkpoints")]
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="after epoch 1"):
        make_trainer(None, lr=0.01, epochs=3, callbacks=callbacks).fit(parts.X_train, parts.y_train)
    (run / "control.toml").write_text("lr = 0.001\n")
    callbacks = [WriteControl(run, 1, "lr = 1e30\n"), Control(run), Checkpoint(run / "checkpoints")]  # as before
    resumed = make_trainer(None, lr=0.01, epochs=3, callbacks=callbacks)
    history = resumed.fit(parts.X_train, parts.y_train, resume=run / "checkpoints")
    assert history["lr"] == [0.01, 1e-3, 1e-3]  # epoch 1 as it ran; then the corrected rate
    assert history[1]["control"] == "control.toml on resuming (before epoch 2): lr = 0.001 from epoch 2"
    assert (run / "control-applied-resume-2.toml").is_file() and np.isfinite(history["train_cost"]).all()


def test_a_control_file_read_on_resuming_stays_until_the_run_goes_on(tmp_path, monkeypatch):
    """Applied before the first step, but renamed (and noted) only once an epoch ends: a resume
    that fails first finds it again; a stop read on resuming is noted with the last epoch."""
    from xdl.train import Control

    parts = moons_parts(300)
    run = tmp_path / "run"
    run.mkdir()

    def trainer(epochs):
        return make_trainer(None, epochs=epochs, callbacks=[Control(run), Checkpoint(run / "checkpoints")])

    trainer(2).fit(parts.X_train, parts.y_train)
    (run / "control.toml").write_text("lr = 0.002\n")

    def unwritable(directory, what):
        raise PermissionError(f"{what} {str(directory)!r} is not a writable directory")

    monkeypatch.setattr(xdl.train.fit_guards, "check_writable_dir", unwritable)
    with pytest.raises(PermissionError, match="Checkpoint directory"):
        trainer(4).fit(parts.X_train, parts.y_train, resume=run / "checkpoints")
    assert (run / "control.toml").read_text() == "lr = 0.002\n"  # still there for the next try
    monkeypatch.undo()
    monkeypatch.setattr(xdl.train.control, "SETTLE_SECONDS", 0.0)  # (undone with the rest: conftest's)
    history = trainer(4).fit(parts.X_train, parts.y_train, resume=run / "checkpoints")
    assert history[2]["control"] == "control.toml on resuming (before epoch 3): lr = 0.002 from epoch 3"
    assert history["lr"][2:] == [0.002, 0.002] and not (run / "control.toml").exists()

    (run / "control.toml").write_text("stop = true\n")
    stopped = trainer(6)
    history = stopped.fit(parts.X_train, parts.y_train, resume=run / "checkpoints")
    assert len(history) == 4 and history[3]["control"] == "control.toml on resuming (before epoch 5): stop"
    assert (run / "control-applied-resume-5.toml").is_file() and not (run / "control.toml").exists()

    (run / "control.toml").write_text("lr = 1e-50\n")  # below float32's range: the update would use 0
    with pytest.warns(UserWarning, match=r"lr is 1e-50: a learning rate must be a number in float32's positive range \[1.4e-45, 3.4e\+38\]"):
        trainer(5).fit(parts.X_train, parts.y_train, resume=run / "checkpoints")

    (run / "control.toml").write_text("lr = 0.001\nstop = true\n")  # a rate for when the run goes on, and a stop
    history = trainer(7).fit(parts.X_train, parts.y_train, resume=run / "checkpoints")
    assert len(history) == 5 and not (run / "control.toml").exists()  # renamed once a checkpoint held it
    history = trainer(7).fit(parts.X_train, parts.y_train, resume=run / "checkpoints")
    assert history["lr"][5:] == [0.001, 0.001]  # was the schedule's again: the rate went with the file
    assert "lr = 0.001 from epoch 6, stop" in history[4]["control"]


class SignalAt:
    """An identity augmentation that sends this process SIGINT at its ``at``-th call (a step)."""

    def __init__(self, at):
        self.calls, self.at = 0, at

    def __call__(self, X, rng):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return X


class HooksSeen(Callback):
    """Records the name of each run-level hook called on it."""

    def __init__(self):
        self.seen = []

    def on_train_begin(self, trainer):
        self.seen.append("on_train_begin")

    def on_train_end(self, trainer):
        self.seen.append("on_train_end")

    def on_exception(self, trainer, error):
        self.seen.append("on_exception")


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("at", [1, 3, 12])
def test_ctrl_c_inside_an_epoch_stops_the_run_there_not_as_a_run_that_ended(at):
    """SIGINT at step ``at`` of a run of 10 steps an epoch (not its last step) raises Interrupted
    at once, ``over`` False: the callbacks are told of it (on_exception), not of a run's end (on_train_end),
    and the trainer stands after that step, the epoch unrecorded."""
    from xdl.train import Interrupted

    parts = moons_parts(1000)  # 600 examples, batches of 64: 10 steps an epoch
    seen = HooksSeen()
    trainer = make_trainer(None, epochs=3, augment=SignalAt(at), callbacks=[seen])
    with pytest.raises(Interrupted) as stop:
        trainer.fit(parts.X_train, parts.y_train)
    assert stop.value.over is False
    assert seen.seen == ["on_train_begin", "on_exception"]
    assert (trainer.epoch, trainer.step) == divmod(at, 10) and len(trainer.history) == at // 10


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_a_control_file_read_on_resuming_is_noted_when_the_run_stops_again_in_that_epoch(tmp_path):
    """The note of a file applied on resuming goes to the record of the epoch it was applied in; a
    run stopped again inside that epoch lost it (the file renamed, the rate kept, the history silent):
    it is in the checkpoint's state until a record takes it."""
    from xdl.train import Control, Interrupted

    parts = moons_parts(1000)  # 600 examples, batches of 64: 10 steps per epoch

    def trainer(at):
        return make_trainer(None, epochs=3, augment=SignalAt(at), callbacks=[Control(tmp_path), Checkpoint(tmp_path)])

    with pytest.raises(Interrupted, match="in epoch 2 after step 3"):
        trainer(13).fit(parts.X_train, parts.y_train)
    (tmp_path / "control.toml").write_text("lr = 0.002\n")
    with pytest.raises(Interrupted, match="in epoch 2 after step 5"):
        trainer(2).fit(parts.X_train, parts.y_train, resume=tmp_path)
    assert (tmp_path / "control-applied-resume-2.toml").is_file()  # a checkpoint holds its rate
    history = trainer(-1).fit(parts.X_train, parts.y_train, resume=tmp_path)
    assert history[1]["control"] == "control.toml on resuming (before step 4 of epoch 2): lr = 0.002 from step 4 of epoch 2"
    assert history["lr"][2] == 0.002 and "control" not in history[2]


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_a_second_control_file_read_on_resuming_in_the_same_epoch_keeps_the_first(tmp_path):
    """Two files given on resuming at the same epoch (the run interrupted again inside it): the
    second was renamed control-applied-resume-2.toml over the first, which was lost; the rejected
    ones alike."""
    from xdl.train import Control, Interrupted

    parts = moons_parts(1000)  # 600 examples, batches of 64: 10 steps per epoch

    def trainer(at):
        return make_trainer(None, epochs=3, augment=SignalAt(at), callbacks=[Control(tmp_path), Checkpoint(tmp_path)])

    with pytest.raises(Interrupted, match="in epoch 2 after step 3"):
        trainer(13).fit(parts.X_train, parts.y_train)
    for text in ("lr = 0.002\n", "lr = 0.003\n", "lr = -1\n", "lr = -2\n"):
        (tmp_path / "control.toml").write_text(text)
        with pytest.raises(Interrupted, match="in epoch 2"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (the rejected ones' warnings)
            trainer(1).fit(parts.X_train, parts.y_train, resume=tmp_path)
    assert (tmp_path / "control-applied-resume-2.toml").read_text() == "lr = 0.002\n"
    assert (tmp_path / "control-applied-resume-2-2.toml").read_text() == "lr = 0.003\n"
    assert (tmp_path / "control-rejected-resume-2.toml").read_text() == "lr = -1\n"
    assert (tmp_path / "control-rejected-resume-2-2.toml").read_text() == "lr = -2\n"


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_a_control_stop_read_on_resuming_in_the_first_epoch_is_noted_and_the_same_file_again_is_read(tmp_path):
    """A file applied on resuming inside epoch 1 with ``stop`` (no record yet) lost its note; the
    same text written again before the next resume was taken for the file the checkpoint held,
    renamed unread, and its stop ignored."""
    from xdl.train import Control, Interrupted

    parts = moons_parts(1000)

    def trainer(at):
        return make_trainer(None, epochs=2, augment=SignalAt(at), callbacks=[Control(tmp_path), Checkpoint(tmp_path)])

    with pytest.raises(Interrupted, match="in epoch 1 after step 3"):
        trainer(3).fit(parts.X_train, parts.y_train)
    (tmp_path / "control.toml").write_text("lr = 0.002\nstop = true\n")
    assert len(trainer(-1).fit(parts.X_train, parts.y_train, resume=tmp_path)) == 0
    (tmp_path / "control.toml").write_text("lr = 0.002\nstop = true\n")  # a stop again, the same text
    resumed = trainer(-1)
    assert len(resumed.fit(parts.X_train, parts.y_train, resume=tmp_path)) == 0
    assert resumed.history.stopped_by == "control.toml on resuming (before step 4 of epoch 1)"
    assert (tmp_path / "control-applied-resume-1-2.toml").is_file()
    history = trainer(-1).fit(parts.X_train, parts.y_train, resume=tmp_path)
    assert history[0]["control"].count("control.toml on resuming (before step 4 of epoch 1)") == 2


def test_a_ctrl_c_in_the_last_epoch_stops_the_fit_once_the_run_has_ended(tmp_path):
    """A Ctrl-C at the last epoch's last step was dropped: the fit returned as if none came, and a loop
    over fits (a sequential search's trials, a user's loop over rates) trained on. The run ends as it
    would (early stopping's best weights put back, which a mid-run Interrupted skips and no later fit
    of a finished run could do), then the fit raises: a resume has nothing left to train."""
    from xdl.train import Interrupted

    parts = moons_parts(1000)  # 600 examples, batches of 64: 10 steps per epoch
    dev = (parts.X_dev, parts.y_dev)

    def trainer(at, *callbacks):
        return make_trainer(None, lr=0.1, epochs=3, augment=SignalAt(at), callbacks=[EarlyStopping(patience=5),
                                                                                     *callbacks])

    whole = trainer(-1)
    whole.fit(parts.X_train, parts.y_train, dev=dev)
    assert whole.history.best_epoch < 3  # (the best weights are not the last: the test sees them put back)
    interrupted = trainer(30, Checkpoint(tmp_path))
    with pytest.raises(Interrupted, match="after epoch 3, as its run ended") as stop:
        interrupted.fit(parts.X_train, parts.y_train, dev=dev)
    assert stop.value.over and interrupted.history.best_epoch == whole.history.best_epoch
    for a, b in zip(interrupted.model.parameters(), whole.model.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.warns(UserWarning, match="nothing to train"):
        resumed = trainer(-1, Checkpoint(tmp_path)).fit(parts.X_train, parts.y_train, dev=dev, resume=tmp_path)
    assert resumed["dev_cost"] == whole.history["dev_cost"]


def test_a_control_file_with_a_byte_order_mark_is_applied(tmp_path):
    """Notepad's UTF-8 (a byte-order mark first) was rejected: "Invalid statement (at line 1, column 1)"."""
    from xdl.train import Control

    parts = moons_parts(300)
    trainer = make_trainer(None, epochs=3, callbacks=[WriteControl(tmp_path, 1, "\ufefflr = 0.0005\n"), Control(tmp_path)])
    assert trainer.fit(parts.X_train, parts.y_train)["lr"][1:] == [5e-4, 5e-4]


def test_a_later_fit_keeps_the_rate_set_by_hand_in_its_checkpoints(tmp_path):
    """Callbacks keep their state in a later fit of the run (`continues_run`): the rate a control
    file set goes on in the later fit (the schedule was cleared), so its checkpoints hold it too —
    a resume from one replays it and ends as the uninterrupted run, not back on the schedule."""
    from xdl.train import Control

    parts = moons_parts(300)
    schedule = xdl.optim.schedules.inverse_time(1e-2, decay_rate=0.5)

    class StopAt(Callback):
        order = 200

        def on_epoch_end(self, trainer, record):
            trainer.stop_training = record["epoch"] == 6

    def trainer(run, epochs, *extra):
        return make_trainer(None, epochs=epochs, schedule=schedule,
                            callbacks=[WriteControl(run, 2, "lr = 0.0005\n"), Control(run),
                                       Checkpoint(run / "checkpoints"), *extra])

    runs = []
    for name, extra in (("whole", ()), ("stopped", (StopAt(),))):
        run = tmp_path / name
        run.mkdir()
        first = trainer(run, 4, *extra)
        first.fit(parts.X_train, parts.y_train)
        first.epochs = 8
        runs.append(first)
        history = first.fit(parts.X_train, parts.y_train)  # a later fit: epochs 5 to 8 (6, stopped)
    assert runs[0].history["lr"][2:] == [5e-4] * 6 and len(history) == 6
    resumed = trainer(tmp_path / "stopped", 8, StopAt())
    history = resumed.fit(parts.X_train, parts.y_train, resume=tmp_path / "stopped" / "checkpoints")
    assert history["lr"] == runs[0].history["lr"]  # was schedule(6), schedule(7) after the resume
    for a, b in zip(resumed.model.parameters(), runs[0].model.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_rate_read_on_resuming_a_run_that_is_over_is_kept_for_the_resume_that_trains_on(tmp_path):
    """A finished run resumed (to write its outputs) trains no epoch, so no epoch's checkpoint would
    hold a rate its control file set: one is written then, as for a stop — else the file, renamed
    "applied", would be gone and the next resume (more epochs) train at the schedule's rate."""
    from xdl.train import Control

    parts = moons_parts(300)
    schedule = xdl.optim.schedules.inverse_time(1e-2, decay_rate=0.5)
    run = tmp_path / "run"
    run.mkdir()

    def trainer(epochs):
        return make_trainer(None, epochs=epochs, schedule=schedule,
                            callbacks=[Control(run), Checkpoint(run / "checkpoints")])

    trainer(2).fit(parts.X_train, parts.y_train)
    (run / "control.toml").write_text("lr = 0.0005\n")
    with pytest.warns(UserWarning, match="the checkpoint's run is over"):
        trainer(2).fit(parts.X_train, parts.y_train, resume=run / "checkpoints")  # nothing to train
    assert (run / "control-applied-resume-3.toml").is_file()
    history = trainer(4).fit(parts.X_train, parts.y_train, resume=run / "checkpoints")
    assert history["lr"] == [schedule(0), schedule(1), 5e-4, 5e-4]  # was schedule(2), schedule(3): the rate lost
    assert history[1]["control"] == "control.toml on resuming (before epoch 3): lr = 0.0005 from epoch 3 in the " \
                                    "schedule's place"


def test_a_control_file_applied_at_an_epoch_whose_checkpoint_failed_is_applied_again_on_resuming(
        tmp_path, disk_full_from):
    from xdl.train import Control

    parts = moons_parts(300)
    run = tmp_path / "run"
    run.mkdir()

    def trainer(epochs, *extra):
        return make_trainer(None, epochs=epochs, callbacks=[*extra, Control(run), Checkpoint(run / "checkpoints")])

    disk_full_from(4)  # epochs 1 and 2 write best.npz, then checkpoint.npz: epoch 2's fails
    with pytest.raises(OSError, match="after epoch 2 failed"):
        trainer(4, WriteControl(run, 2, "lr = 0.002\n")).fit(parts.X_train, parts.y_train)
    disk_full_from(None)
    assert (run / "control.toml").is_file()  # the checkpoint on disk (epoch 1) does not hold its rate
    history = trainer(4, WriteControl(run, 99, "")).fit(parts.X_train, parts.y_train, resume=run / "checkpoints")
    assert history[1]["control"] == "control.toml on resuming (before epoch 2): lr = 0.002 from epoch 2"
    assert history["lr"][1:] == [0.002] * 3 and (run / "control-applied-resume-2.toml").is_file()


@pytest.mark.parametrize("text", ["lr = 0.002\n", "stop = true\n"])
def test_a_control_file_applied_by_a_run_killed_before_renaming_it_is_not_applied_again(tmp_path, monkeypatch,
                                                                                        text):
    """Killed after the checkpoint that holds a control file's effect was written, before the file was
    renamed: the resume renames it as the run would have, rather than read it again (a second note in
    the history, a stop that stopped the resume meant to train on), and goes on as the run without the kill."""
    from xdl.train import Control

    parts = moons_parts(300)
    runs = {name: tmp_path / name for name in ("whole", "killed")}
    for run in runs.values():
        run.mkdir()

    def trainer(run, epochs, *extra):
        return make_trainer(None, epochs=epochs, callbacks=[*extra, Control(run), Checkpoint(run / "ck")])

    whole = trainer(runs["whole"], 3, WriteControl(runs["whole"], 2, text)).fit(parts.X_train, parts.y_train)

    class Killed(BaseException):
        pass

    def killed(self, trainer):  # the process dies at epoch 2's rename (SIGKILL): its checkpoint is on disk
        if trainer.epoch == 2:
            raise Killed()
        settle(self, trainer)

    settle = Control.on_checkpoint

    with monkeypatch.context() as patch:
        patch.setattr(Control, "on_checkpoint", killed)
        with pytest.raises(Killed):
            trainer(runs["killed"], 3, WriteControl(runs["killed"], 2, text)).fit(parts.X_train, parts.y_train)
    assert (runs["killed"] / "control.toml").is_file()
    resumed = trainer(runs["killed"], 3, WriteControl(runs["killed"], 99, "")).fit(parts.X_train, parts.y_train,
                                                                               resume=runs["killed"] / "ck")

    def records(history):
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in history.records]

    # the same records as the run that was not killed; a resume after a stop trains on, as it does there
    assert records(resumed)[:len(whole)] == records(whole) and len(resumed) == 3
    assert sorted(p.name for p in runs["killed"].glob("control*")) == ["control-applied-epoch-2.toml"]


@pytest.mark.parametrize("every", [1, None])
def test_an_applied_control_file_is_renamed_once_a_checkpoint_holds_it(tmp_path, every):
    from xdl.train import Control

    parts = moons_parts(300)
    run = tmp_path / "run"
    run.mkdir()

    class Look(xdl.train.Callback):  # after the checkpoint: is the file still there?
        order, seen = 200, {}

        def on_epoch_end(self, trainer, record):
            self.seen[record["epoch"]] = sorted(p.name for p in run.glob("control*.toml"))

    writes = [WriteControl(run, 1, "lr = 0.01\n"), WriteControl(run, 2, "lr = 0.002\n"),
              WriteControl(run, 4, "lr = 0.01\n")]  # the first text again: a new file, read as one
    trainer = make_trainer(None, epochs=5, callbacks=[*writes, Control(run), Checkpoint(run / "ck", every=every),
                                                      Look()])
    history = trainer.fit(parts.X_train, parts.y_train)
    assert history["lr"] == [1e-3, 0.01, 0.002, 0.002, 0.01]
    if every == 1:  # renamed as soon as the epoch's checkpoint holds it
        assert Look.seen[1] == ["control-applied-epoch-1.toml"]
        assert Look.seen[2] == ["control-applied-epoch-1.toml", "control-applied-epoch-2.toml"]
    else:  # no checkpoint until the end: the newest file waits there (older ones were written over)
        assert Look.seen[1] == Look.seen[2] == Look.seen[3] == ["control.toml"]
    assert sorted(p.name for p in run.glob("control*.toml")) == (
        ["control-applied-epoch-1.toml", "control-applied-epoch-2.toml", "control-applied-epoch-4.toml"]
        if every == 1 else ["control-applied-epoch-4.toml"])


def test_without_a_checkpoint_an_applied_control_file_is_renamed_at_once(tmp_path):
    from xdl.train import Control

    parts = moons_parts(300)
    run = tmp_path / "run"
    run.mkdir()
    trainer = make_trainer(None, epochs=3, callbacks=[WriteControl(run, 1, "lr = 0.01\n"), Control(run)])
    trainer.fit(parts.X_train, parts.y_train)
    assert [p.name for p in run.glob("control*.toml")] == ["control-applied-epoch-1.toml"]


class FailsAtStep(xdl.train.Callback):
    """A callback's bug: raises once, after step ``at`` of the run."""

    def __init__(self, at):
        self.at, self.failed = at, False

    def on_step_end(self, trainer, cost):
        if trainer.optimizer.t == self.at and not self.failed:
            self.failed = True
            raise RuntimeError("a callback's bug")


def test_a_later_fit_after_an_error_does_not_apply_the_control_file_its_run_applied_again(tmp_path):
    """Applied at epoch 1, waiting for a checkpoint (every=None) to be renamed, the file was read again
    at the later fit's first epoch end: noted twice, and its rate put over the one set by hand."""
    from xdl.train import Control

    parts = moons_parts(300)
    run = tmp_path / "run"
    run.mkdir()
    callbacks = [WriteControl(run, 1, "lr = 0.01\n"), Control(run), Checkpoint(run / "ck", every=None),
                 FailsAtStep(6)]
    trainer = make_trainer(None, epochs=4, callbacks=callbacks)
    with pytest.raises(RuntimeError, match="a callback's bug"):
        trainer.fit(parts.X_train, parts.y_train)
    assert (trainer.epoch, trainer.optimizer.lr) == (1, 0.01)
    trainer.optimizer.lr = 0.003  # the user's rate for the rest of the run
    history = trainer.fit(parts.X_train, parts.y_train)
    assert history["lr"][2:] == [0.003, 0.003]
    assert [bool(r.get("control")) for r in history.records] == [True, False, False, False]
    assert sorted(p.name for p in run.glob("control*.toml")) == ["control-applied-epoch-1.toml"]


def test_with_augmentation_the_input_scaling_is_measured_on_augmented_examples():
    """A nearly blank pixel's clean spread is tiny; the ink a shift moves into it would be hundreds
    of standard deviations out. Measured on augmented copies too, the scaling keeps it in range."""
    X, _ = xdl.datasets.digits()
    clean = xdl.config.TrainConfig().build_standardize(X)
    shifted = xdl.config.TrainConfig(augment_shift=1).build_standardize(X)
    rng = np.random.default_rng(1)
    batch = xdl.config.TrainConfig(augment_shift=1).build_augment()(X[:256].copy(), rng)
    worst = {name: float(np.abs(layer(batch).numpy()).max()) for name, layer in (("clean", clean), ("shifted", shifted))}
    assert worst["clean"] > 100 and worst["shifted"] < 40, worst
    again = xdl.config.TrainConfig(augment_shift=1).build_standardize(X)  # seeded: the same scaling every run
    np.testing.assert_array_equal(again.scale, shifted.scale)


def test_a_stop_is_reported_for_the_fit_that_stopped_and_forgotten_when_training_goes_on(tmp_path):
    from xdl.train import Control

    parts = moons_parts(300)
    run = tmp_path / "run"
    run.mkdir()

    def trainer(epochs):
        return make_trainer(None, epochs=epochs, callbacks=[Control(run), Checkpoint(run / "ck")])

    (run / "control.toml").write_text("stop = true\n")
    first = trainer(6).fit(parts.X_train, parts.y_train)
    assert (first.stopped_epoch, first.stopped_by) == (1, "control.toml at epoch 1")
    resumed = trainer(3).fit(parts.X_train, parts.y_train, resume=run / "ck")  # the checkpoint held that stop
    assert len(resumed) == 3 and (resumed.stopped_epoch, resumed.stopped_by) == (None, None)
    (run / "control.toml").write_text("stop = true\n")
    again = trainer(6).fit(parts.X_train, parts.y_train, resume=run / "ck")  # read on resuming: no epoch runs
    assert len(again) == 3 and (again.stopped_epoch, again.stopped_by) == (3, "control.toml on resuming (before epoch 4)")


def test_a_checkpoint_holds_a_callbacks_numpy_numbers(tmp_path):
    class Gap(xdl.train.Callback):
        def on_epoch_end(self, trainer, record):
            trainer.history.records[-1]["gap"] = np.float32(record["train_cost"])

    parts = moons_parts(300)
    trainer = make_trainer(None, epochs=2, callbacks=[Gap(), Checkpoint(tmp_path)])
    trainer.fit(parts.X_train, parts.y_train)
    saved = xdl.serialization.read_extra(tmp_path / "checkpoint.npz")[0]["history"]["records"]
    assert [type(r["gap"]) for r in saved] == [float, float]


def test_the_l2_penalty_of_a_last_smaller_batch_is_the_others(backend):
    # λ/(2m) with m its own size made a last batch of 1 decay the weights 64 times as hard: with
    # lr·λ = 1 it zeroed them (the course's m is fixed over a run; Keras and PyTorch do not scale by it)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((129, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    norms = []
    for n in (128, 129):
        xdl.seed(0)
        model = xdl.nn.mlp(4, [8], 2)
        Trainer(model, SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=0.1), batch_size=64, epochs=3, l2=10.0,
                progress=False).fit(X[:n], y[:n])
        norms.append(np.linalg.norm(model[0].weight.numpy()))
    assert norms[1] == pytest.approx(norms[0], rel=0.25)  # one more example: another shuffle; was 0.0004 of it
    assert xdl.train.trainer.penalty_examples(64, 129) == 64 and xdl.train.trainer.penalty_examples(64, 10) == 10



def test_weights_of_ones_own_loaded_after_restoring_the_best_are_what_a_checkpoint_and_a_later_fit_take(tmp_path):
    """The run's last weights stand in for the best EarlyStopping restored only while the model holds
    those: weights the user loads after the fit (even the best again) are the ones a checkpoint
    written by hand holds and a later fit trains on from."""
    s = moons_parts(300)
    trainer = make_trainer(None, lr=0.1, epochs=4, callbacks=[EarlyStopping(patience=20)])
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert trainer.history.best_epoch < 4  # (the best is not the last epoch: the weights differ)
    own = {name: np.full_like(a, 0.01) for name, a in trainer.model.state_dict().items()}
    trainer.model.load_state_dict(own)
    saved = xdl.load(trainer.save_checkpoint(tmp_path / "own.npz")).state_dict()
    for name, value in own.items():
        np.testing.assert_array_equal(saved[name], value, err_msg=name)
    seen = []

    class FirstStep(Callback):
        def on_train_begin(self, trainer):
            seen.append({name: a.copy() for name, a in trainer.model.state_dict().items()})

    trainer.callbacks.append(FirstStep())
    trainer.epochs = 5
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    for name, value in own.items():
        np.testing.assert_array_equal(seen[0][name], value, err_msg=name)

def test_a_later_fit_after_restoring_the_best_goes_on_from_the_runs_last_weights():
    """As the uninterrupted run: the best weights restored at the first fit's end are put back to
    the run's last before it trains on (its optimizer state is the last epoch's)."""
    s = moons_parts(300)
    straight = make_trainer(None, lr=0.05, epochs=8, callbacks=[EarlyStopping(patience=20)])
    straight.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    twice = make_trainer(None, lr=0.05, epochs=4, callbacks=[EarlyStopping(patience=20)])
    twice.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    twice.epochs = 8
    history = twice.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert history["dev_cost"] == straight.history["dev_cost"]
    for a, b in zip(twice.model.parameters(), straight.model.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


class BestEpochSeen(Callback):
    """Notes the history's best_epoch at each epoch's end (after early stopping and the checkpoints)."""

    order = 200

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, trainer, record):
        self.seen.append(trainer.history.best_epoch)


def test_a_later_fit_after_restoring_the_best_no_longer_says_the_best_epoch_is_in_the_model(tmp_path):
    """history.best_epoch says early stopping put that epoch's weights back: a later fit puts the run's
    last ones back to train on, and its epochs, its checkpoints and a Ctrl-C's history kept naming the
    best epoch of the fit before (the uninterrupted run's say none until its end); a later fit refused
    before its first step leaves the best in the model and says so again."""
    s = moons_parts(300)
    data = (s.X_train, s.y_train), {"dev": (s.X_dev, s.y_dev)}
    straight_seen, twice_seen = BestEpochSeen(), BestEpochSeen()
    straight = make_trainer(None, lr=0.05, epochs=6, callbacks=[EarlyStopping(patience=20), straight_seen,
                                                                Checkpoint(tmp_path / "straight")])
    straight.fit(*data[0], **data[1])
    twice = make_trainer(None, lr=0.05, epochs=3, callbacks=[EarlyStopping(patience=20), twice_seen,
                                                             Checkpoint(tmp_path / "twice")])
    twice.fit(*data[0], **data[1])
    assert twice.history.best_epoch is not None  # (restored at the first fit's end)

    class Refuses(Callback):
        def on_train_begin(self, trainer):
            raise RuntimeError("refused")

    best_epoch = twice.history.best_epoch
    twice.callbacks.append(Refuses())
    twice.epochs = 6
    with pytest.raises(RuntimeError, match="refused"):
        twice.fit(*data[0], **data[1])
    assert twice.history.best_epoch == best_epoch  # (the model holds that epoch's weights again)
    twice.callbacks.pop()
    twice.fit(*data[0], **data[1])
    assert twice_seen.seen == straight_seen.seen == [None] * 6
    assert twice.history.best_epoch == straight.history.best_epoch
    for name in ("checkpoint.npz", "best.npz"):
        histories = [read_extra(tmp_path / run / name)[0]["history"] for run in ("straight", "twice")]
        assert [h["best_epoch"] for h in histories] == [None, None], name


def test_a_checkpoint_saved_by_hand_after_restoring_the_best_resumes_as_the_uninterrupted_run(tmp_path):
    """``trainer.save_checkpoint`` after a fit whose EarlyStopping put the best epoch's weights back
    writes the run where it is — its last weights, which its position and optimizer state go with —
    as its Checkpoint's last file holds it: it held the best epoch's weights with the last epoch's
    moments, and a resume from it trained a run that never was."""
    s = moons_parts(300)
    straight = make_trainer(None, lr=0.1, epochs=8, callbacks=[EarlyStopping(patience=20)])
    straight.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    first = make_trainer(None, lr=0.1, epochs=4, callbacks=[EarlyStopping(patience=20)])
    first.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert first.history.best_epoch < 4  # (the model holds an earlier epoch's weights than the run's last)
    best = {name: a.copy() for name, a in first.model.state_dict().items()}
    path = first.save_checkpoint(tmp_path / "by-hand.npz")
    for name, a in first.model.state_dict().items():  # (the model itself keeps the best)
        np.testing.assert_array_equal(a, best[name])
    # its history, as its weights, the run's where it is: no best epoch put back (as its Checkpoint's last file)
    assert read_extra(path)[0]["history"]["best_epoch"] is None and first.history.best_epoch is not None
    resumed = make_trainer(None, lr=0.1, epochs=8, callbacks=[EarlyStopping(patience=20)])
    history = resumed.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=path)
    assert history["dev_cost"] == straight.history["dev_cost"] and history.best_epoch == straight.history.best_epoch
    for a, b in zip(resumed.model.parameters(), straight.model.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    first.epochs = 8  # a later fit of the trainer goes on from the same weights
    first.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    for a, b in zip(first.model.parameters(), straight.model.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


class Adds(Callback):
    def on_epoch_end(self, trainer, record):
        record["gap"] = record["dev_cost"] - record["train_cost"]


def test_what_a_callback_adds_to_the_record_is_in_the_history_as_keras_logs(tmp_path):
    s = moons_parts(300)
    history = make_trainer(None, epochs=2, callbacks=[Adds()]).fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert history["gap"] == [r["dev_cost"] - r["train_cost"] for r in history.records]
    assert xdl.History.load(history.save(tmp_path / "h.json"))["gap"] == history["gap"]
    with pytest.raises(ValueError, match=r"History.load: .* is not a history History.save wrote"):
        xdl.History.load(xdl.save(xdl.nn.mlp(2, [3], 2), tmp_path / "model.npz"))


def test_early_stopping_on_a_dev_metric_without_dev_is_refused_before_any_epoch():
    s = moons_parts(300)
    trainer = make_trainer(None, epochs=3, callbacks=[EarlyStopping()])
    with pytest.raises(ValueError, match=r"EarlyStopping monitors 'dev_cost', which this run does not measure"):
        trainer.fit(s.X_train, s.y_train)
    assert trainer.epoch == 0 and len(trainer.history) == 0


def test_a_control_file_is_read_once_it_has_settled_and_its_arguments_are_checked(tmp_path, monkeypatch):
    """A file modified within SETTLE_SECONDS may be half-written ("lr = 0.00" of "lr = 0.0005"): it
    waits for a later epoch's end; lr = 0 is refused (it would freeze the run; --lr refuses it too)."""
    from xdl.train import Control

    monkeypatch.setattr(xdl.train.control, "SETTLE_SECONDS", 3600.0)  # never settled in this test
    s = moons_parts(300)
    (tmp_path / "control.toml").write_text("lr = 0.00")
    with pytest.warns(UserWarning, match="not applied, set aside as control-unread-end-2.toml"):
        history = make_trainer(None, epochs=2, callbacks=[Control(tmp_path)]).fit(s.X_train, s.y_train)
    assert "control" not in history.records[-1] and history["lr"] == [1e-3, 1e-3]
    assert not (tmp_path / "control.toml").exists()  # so no later run in this directory obeys it at its start
    (tmp_path / "control.toml").write_text("lr = 0.00")
    monkeypatch.setattr(xdl.train.control, "SETTLE_SECONDS", 0.0)
    with pytest.warns(UserWarning, match=r"control.toml at epoch 1 not applied: lr must be > 0, got 0.0"):
        history = make_trainer(None, epochs=2, callbacks=[Control(tmp_path)]).fit(s.X_train, s.y_train)
    assert history["lr"] == [1e-3, 1e-3] and (tmp_path / "control-rejected-epoch-1.toml").exists()
    for bad, error, match in ((None, TypeError, "Control: directory must be a path"),
                              (5, TypeError, "Control: directory must be a path"),
                              (tmp_path / "typo", ValueError, r"Control: directory .*typo' does not exist")):
        with pytest.raises(error, match=match):
            Control(bad)
    with pytest.raises(TypeError, match=r"Control: report must be a function"):
        Control(tmp_path, report="x")
    with pytest.raises(ValueError, match=r"EarlyStopping: restore_best must be True or False, got 'no'"):
        EarlyStopping(restore_best="no")
    with pytest.raises(ValueError, match=r"EarlyStopping: patience must be a positive integer, got True"):
        EarlyStopping(patience=True)


def test_a_control_file_with_an_mtime_ahead_of_the_clock_is_read_once_it_has_not_changed(tmp_path, monkeypatch):
    """Written from another machine whose clock is ahead (a network file system), the file's mtime
    is in the future: settled once it is as a look SETTLE_SECONDS ago found it — not never (then set
    aside at the end as if it had come during the last epoch), nor, on resuming, waited for in vain."""
    import os
    import time

    from xdl.train import Control

    monkeypatch.setattr(xdl.train.control, "SETTLE_SECONDS", 0.05)
    s = moons_parts(300)

    class WriteAhead(Callback):  # the file of WriteControl, stamped an hour ahead
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 1:
                (tmp_path / "control.toml").write_text("lr = 0.002\n")
                ahead = time.time() + 3600
                os.utime(tmp_path / "control.toml", (ahead, ahead))
            time.sleep(0.06)  # each epoch's end SETTLE_SECONDS after the last one's

    trainer = make_trainer(None, epochs=4, callbacks=[WriteAhead(), Control(tmp_path), Checkpoint(tmp_path / "ck")])
    history = trainer.fit(s.X_train, s.y_train)
    assert history["lr"] == [1e-3, 1e-3, 0.002, 0.002]  # seen at epoch 1's end, read at epoch 2's: was 1e-3 to the end
    assert history[1]["control"] == "control.toml at epoch 2: lr = 0.002 from epoch 3"
    (tmp_path / "control.toml").write_text("lr = 0.0005\n")
    ahead = time.time() + 3600
    os.utime(tmp_path / "control.toml", (ahead, ahead))
    resumed = make_trainer(None, epochs=5, callbacks=[WriteAhead(), Control(tmp_path), Checkpoint(tmp_path / "ck")])
    history = resumed.fit(s.X_train, s.y_train, resume=tmp_path / "ck")
    assert history["lr"][4] == 0.0005  # a look, a wait, read: was waited for SETTLE_WAITS times, then left unread
    assert (tmp_path / "control-applied-resume-5.toml").is_file()


def test_diagnose_says_a_variance_the_dev_set_cannot_resolve():
    # a 2-unit network on digits: 359 dev examples at 58.8% error measure it to ±5.2%, and gaps of +3.1% and
    # −2.8% (two splits of the same data) read "high variance" and "dev and train may differ"
    d = xdl.diagnose({"train_accuracy": 0.443, "dev_accuracy": 0.4123}, dev_examples=359)
    assert d.verdict == "high bias and high variance"
    assert d.next_steps[0].startswith("the variance 3.07% is within the dev error's sampling error: its interval on "
                                      "359 dev examples, 58.67% ± 5.17% (Agresti–Coull), holds the training error "
                                      "55.70%")
    d = xdl.diagnose({"train_accuracy": 0.468, "dev_accuracy": 0.4958}, dev_examples=359)
    assert "sampling error" in d.next_steps[0]
    assert not any("same distribution" in step for step in d.next_steps)
    d = xdl.diagnose({"train_accuracy": 0.87, "dev_accuracy": 1.0}, dev_examples=5)  # 0 errors of 5: no certainty
    assert "sampling error" in d.next_steps[0] and not any("same distribution" in s for s in d.next_steps)
    # gaps the dev set does resolve, or no dev size given: as before
    for record, n in (({"train_accuracy": 1.0, "dev_accuracy": 0.9777}, 359), ({"train_accuracy": 0.87,
                                                                               "dev_accuracy": 1.0}, 500),
                      ({"train_accuracy": 0.443, "dev_accuracy": 0.4123}, None)):
        assert not any("sampling error" in step for step in xdl.diagnose(record, dev_examples=n).next_steps)
    for bad in (0, 2.5, True, "5"):
        with pytest.raises(ValueError, match="dev_examples must be a positive integer"):
            xdl.diagnose({"train_accuracy": 0.9, "dev_accuracy": 0.9}, dev_examples=bad)


def test_diagnose_gives_the_agresti_coull_interval_of_a_small_dev_set():
    """The sampling error is 2·√(p̃(1 − p̃)/(n + 4)), p̃ = (n·dev error + 2)/(n + 4): 0 errors of 5 is
    ±27.72% (p̃ = 2/9), not the ±28.87% of p̃ = 2/8 or the 0 of the plain binomial's p = 0."""
    d = xdl.diagnose({"train_accuracy": 0.87, "dev_accuracy": 1.0}, dev_examples=5)
    assert d.next_steps[0].startswith("the variance -13.00% is within the dev error's sampling error: its interval "
                                      "on 5 dev examples, 22.22% ± 27.72%")
    d = xdl.diagnose({"train_accuracy": 0.9, "dev_accuracy": 0.8}, dev_examples=6)  # p̃ = (1.2 + 2)/10 = 0.32
    assert "on 6 dev examples, 32.00% ± 29.50%" in d.next_steps[0]



def test_diagnose_reads_a_training_error_on_the_intervals_edge_as_held():
    """The interval p̃ ± 2·√(p̃(1 − p̃)/(n + 4)), p̃ = (n·dev error + 2)/(n + 4), is closed: a training error
    on its lower edge, to the last bit, is held (the gap unresolved); one a bit further out is not."""
    tried = 0
    for n in (20, 50, 100, 359, 1000):
        for wrong in range(n // 4, n // 2):
            dev_accuracy = 1 - wrong / n
            p = (n * (1 - dev_accuracy) + 2) / (n + 4)
            start = 1 - (p - edge_gap(p, n))  # the floats about 1 − (p̃ − 2·SE), the edge's training accuracy
            near = [start + k * np.spacing(start) for k in range(-4, 5)]
            on_edge = [a for a in near if abs(p - (1 - a)) == edge_gap(p, n)]
            further = [a for a in near if abs(p - (1 - a)) > edge_gap(p, n)]
            if not on_edge or not further:
                continue
            for accuracy, held in ((on_edge[0], True), (further[0], False)):
                record = {"train_accuracy": accuracy, "dev_accuracy": dev_accuracy}
                steps = xdl.diagnose(record, dev_examples=n).next_steps
                assert any("sampling error" in step for step in steps) == held, (n, wrong, accuracy)
            tried += 1
    assert tried >= 15, tried  # (21: the floats of most edges miss it by a bit)



def test_diagnose_names_a_gap_exactly_twice_the_other_less_rounding_as_the_larger():
    """A gap at least twice the other — x + 10⁻⁶ ≥ 2·y, the 10⁻⁶ for float rounding — is named first
    ("work on the variance first"), to the last bit; a bias a bit larger than half of it names neither."""
    tried = 0
    for wrong in range(300, 400):
        record = {"train_accuracy": 1 - wrong / 1000, "dev_accuracy": 0.3}
        train_error, dev_error = 1 - record["train_accuracy"], 1 - record["dev_accuracy"]  # (as given, in floats)
        variance = dev_error - train_error  # (x, the larger)
        start = train_error - (variance + 1e-6) / 2  # the base error that makes the bias y = (x + 10⁻⁶)/2
        bases = sorted(start + k * np.spacing(start) for k in range(-8, 9))
        on_edge = [b for b in bases if variance + 1e-6 == 2 * (train_error - b)]
        beyond = [b for b in bases if variance + 1e-6 < 2 * (train_error - b)]  # a larger bias: not twice
        if not on_edge or not beyond:
            continue
        for base_error, named in ((on_edge[0], True), (beyond[-1], False)):
            steps = xdl.diagnose(record, base_error=base_error).next_steps
            assert steps[0].startswith("work on the variance first") == named, (wrong, base_error)
        tried += 1
    assert tried >= 50, tried

def edge_gap(p, n):
    """Two standard errors of Agresti–Coull's p̃ on n examples: 2·√(p̃(1 − p̃)/(n + 4))."""
    return 2 * (p * (1 - p) / (n + 4)) ** 0.5

def test_diagnose_reads_a_gap_of_one_dev_example_as_unresolved():
    """Agresti–Coull's interval is centred on p̃: one dev example, wrong, is 60% ± 43.82%, which holds a training
    error of 33.33% — not a resolved variance of 66.67% to work on first (about the dev error, 100% ± 43.82%)."""
    d = xdl.diagnose({"train_accuracy": 2 / 3, "dev_accuracy": 0.0}, dev_examples=1)
    assert d.next_steps[0].startswith("the variance 66.67% is within the dev error's sampling error: its interval on "
                                      "1 dev example, 60.00% ± 43.82% (Agresti–Coull), holds the training error "
                                      "33.33%")
    # one the interval about p̃ leaves out stays resolved: 1 of 1 wrong against a training error of 10%
    assert not any("sampling error" in s for s in xdl.diagnose({"train_accuracy": 0.9, "dev_accuracy": 0.0},
                                                               dev_examples=1).next_steps)


def test_diagnose_notes_a_dev_error_far_below_the_training_error():
    d = xdl.diagnose({"train_accuracy": 0.80, "dev_accuracy": 0.95})
    assert d.next_steps[0].startswith("the dev error is 15.00% below the training error: check that dev and train "
                                      "come from the same distribution")
    assert not any("below the training error" in s for s in xdl.diagnose({"train_accuracy": 0.95,
                                                                           "dev_accuracy": 0.96}).next_steps)


def test_a_second_fit_into_a_checkpoint_directory_in_use_is_refused(tmp_path):
    """Two fits checkpointing into one directory (threads of one process, or two processes) would
    write their checkpoints over each other's: the second is refused while the first runs, naming it
    — a resume of the running one too — and the directory is free again once the first ends."""
    import threading

    from xdl.lock import DirectoryInUseError
    from xdl.train import Callback, Checkpoint

    X, y = xdl.datasets.moons(120, seed=0)
    started, finish = threading.Event(), threading.Event()

    class Hold(Callback):
        def on_epoch_end(self, trainer, record):
            started.set()
            finish.wait(30)

    def trainer(*callbacks):
        xdl.seed(0)
        model = xdl.nn.mlp(2, [8], 2)
        return Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-2), epochs=2,
                       progress=False, callbacks=[Checkpoint(tmp_path), *callbacks])

    first = threading.Thread(target=trainer(Hold()).fit, args=(X, y))
    first.start()
    try:
        assert started.wait(30)
        for resume in (None, tmp_path):
            with pytest.raises(DirectoryInUseError, match="Checkpoint directory .* is in use by another run"):
                trainer().fit(X, y, resume=resume)
    finally:
        finish.set()
        first.join(30)
    with pytest.warns(UserWarning, match="nothing to train"):  # free again (its run over)
        assert trainer(Hold()).fit(X, y, resume=tmp_path).records[-1]["epoch"] == 2


def test_a_lock_file_that_cannot_be_written_is_named_and_lets_the_directory_go(tmp_path, monkeypatch):
    """A full disk as a fit took its Checkpoint directory: the lock file's write failed with a bare
    "[Errno 28] No space left on device", and its descriptor — holding the flock — stayed open, so
    the same fit once there was room again was refused, "in use by another run", by this process."""
    import errno

    import xdl.lock

    X, y = xdl.datasets.moons(120, seed=0)

    def trainer():
        model = xdl.nn.mlp(2, [8], 2)
        return Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.Adam(model), epochs=1, progress=False,
                       callbacks=[Checkpoint(tmp_path)])

    def disk_full(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(xdl.lock.os, "pwrite", disk_full)
    with pytest.raises(OSError, match="No space left on device") as error:
        trainer().fit(X, y)
    assert error.value.filename == str(tmp_path / "run.lock")
    monkeypatch.undo()  # room again
    assert trainer().fit(X, y).records[-1]["epoch"] == 1


def test_a_checkpoint_directory_removed_while_the_run_runs_is_made_again(tmp_path):
    """A clean-up removed the Checkpoint directory while a fit ran: its next save failed ("directory
    ... does not exist") and the run stopped there, its training lost with the checkpoint it named
    to resume from (Keras's ModelCheckpoint makes its directory again)."""
    import shutil

    from xdl.train.checkpoint_files import read_position

    X, y = xdl.datasets.moons(120, seed=0)
    directory = tmp_path / "checkpoints"

    class CleanUp(Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                shutil.rmtree(directory)

    model = xdl.nn.mlp(2, [8], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model), epochs=3, progress=False,
                      callbacks=[CleanUp(), Checkpoint(directory)])
    with pytest.warns(UserWarning, match="was removed while the run ran: made again"):
        assert trainer.fit(X, y).records[-1]["epoch"] == 3
    assert read_position(directory / "checkpoint.npz")[1] == 3


def test_a_checkpoint_directory_made_again_holds_the_best_epoch_from_there_on(tmp_path):
    """The clean-up took best.npz with the directory; the run did no better after it (its rate 0):
    best.npz was never written again, yet checkpoint.npz recorded the old best's score (a resume would
    write none until it beat it) and ``trainer.best_checkpoint`` named the file gone (xdl train
    listed it as written). The best starts again at the directory made again."""
    import shutil

    from xdl.serialization import read_extra

    X, y = xdl.datasets.moons(200, seed=0)
    directory = tmp_path / "checkpoints"

    class CleanUp(Callback):
        order = 200  # after the Checkpoint: the next epoch's save finds the directory gone

        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                shutil.rmtree(directory)
                trainer.optimizer.lr = 0.0  # no better from here on

    model = xdl.nn.mlp(2, [8], 2, batch_norm=False, dropout=0.0)
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=0.01), epochs=4, progress=False,
                      callbacks=[CleanUp(), Checkpoint(directory)])
    with pytest.warns(UserWarning, match="was removed while the run ran: made again"):
        trainer.fit(X[:150], y[:150], dev=(X[150:], y[150:]))
    assert trainer.best_checkpoint == directory / "best.npz" and trainer.best_checkpoint.is_file()
    best = read_extra(directory / "best.npz")[0]
    assert best["epoch"] == 3  # the first after the clean-up: the best of those the directory saw
    recorded = read_extra(directory / "checkpoint.npz")[0]["callbacks"][0]["best"]  # (the Checkpoint's state)
    assert recorded == best["callbacks"][0]["best"]


def test_a_loss_function_of_one_s_own_gets_targets_shaped_as_the_outputs():
    """(m,) targets against (m, 1) outputs broadcast to (m, m) in the function's arithmetic: the run
    trained on another objective (dev cost 4.7 against 0.008) and its accuracy was another's."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5], np.float32)

    def squared(outputs, targets):
        assert outputs.shape == targets.shape
        d = outputs - targets
        return (d * d).mean()

    squared.predicts = "values"
    costs = []
    for loss in (xdl.losses.MeanSquaredError(), squared):
        xdl.seed(0)
        model = xdl.nn.mlp(3, [16], 1)
        history = Trainer(model, loss, Adam(model, lr=1e-2), epochs=5, progress=False).fit(X, y, dev=(X, y))
        costs.append(history.final()["dev_cost"])
    assert costs[1] == pytest.approx(costs[0], rel=1e-5)


def test_a_device_run_gives_its_losses_labels_on_the_device():
    """A loss meets the labels on the model's backend, as outputs − labels needs: in the check of a
    function of one's own before the run (called on two examples) and in the steps of a run with
    augmentation (whose batches are cut on the host). Given as host arrays, a device model's
    outputs − labels was refused ("a NumPy array cannot be combined with a tensor"): on the GPU no
    function of one's own trained, nor MSE with augmentation. `CopyingHost` owns only the arrays
    it made, as a device backend does; its run is the NumPy run."""
    from xdl.backend import thread_backend

    from conftest import CopyingHost

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5], np.float32)

    def squared(outputs, targets):
        d = outputs - targets
        return (d * d).mean()

    def noise(Xb, rng):
        return Xb + 0.01 * rng.standard_normal(Xb.shape).astype(Xb.dtype)

    squared.predicts = "values"
    for loss in (xdl.losses.MeanSquaredError(), squared):
        costs = []
        for backend in (xdl.backend.get_backend("numpy"), CopyingHost()):
            with thread_backend(backend):
                xdl.seed(0)
                model = xdl.nn.mlp(3, [8], 1)
                history = Trainer(model, loss, Adam(model), epochs=2, progress=False, augment=noise).fit(X, y)
            assert model.backend is backend
            costs.append(history.final()["train_cost"])
        assert costs[1] == costs[0]


def test_a_loss_function_is_checked_before_the_run():
    X, y = xdl.datasets.moons(60, seed=0)
    xdl.seed(0)
    model = xdl.nn.mlp(2, [4], 1)

    def per_example(outputs, targets):
        return ((outputs - targets) ** 2).sum(axis=1)

    per_example.predicts = "values"
    trainer = Trainer(model, per_example, Adam(model), epochs=1, progress=False)
    with pytest.raises(TypeError, match=r"loss: per_example\(outputs, labels\) returned a tensor of shape \(2,\)"):
        trainer.fit(X, y)
    trainer.loss.predicts = "values"
    trainer.loss = xdl.losses.MeanSquaredError()
    assert trainer.fit(X, y).final()["epoch"] == 1  # (the refused fit left it usable)

    def said_wrong(outputs, targets):
        return ((outputs - targets) ** 2).mean()

    said_wrong.predicts = "value"
    with pytest.raises(ValueError, match=r"loss.predicts must be one of .* got 'value'"):
        Trainer(model, said_wrong, Adam(model))
    with pytest.warns(UserWarning, match="model.predict will give classes"):
        Trainer(model, lambda outputs, targets: ((outputs - targets) ** 2).mean(), Adam(model))


def test_a_model_ending_in_a_model_that_ends_in_a_sigmoid_is_refused_with_binary_cross_entropy():
    from xdl.nn import Dense, Sequential, Sigmoid

    model = Sequential(Sequential(Dense(5, 8), xdl.nn.ReLU(), Dense(8, 1), Sigmoid()))
    assert model.outputs_probabilities()
    with pytest.raises(ValueError, match="it ends in Sigmoid, so its outputs are probabilities"):
        Trainer(model, xdl.losses.BinaryCrossEntropy(), Adam(model))


def test_a_trainers_shuffles_and_masks_follow_xdl_seed_unless_given_a_seed():
    """Trainer(seed=0) by default: after xdl.seed(1), xdl.seed(2) or fresh entropy, every run had one
    shuffle and one set of dropout masks, the spread over seeds measured too small."""
    X, y = xdl.datasets.digits()
    X, y = X[:256] / 16, y[:256]

    def run(global_seed, **given):
        xdl.seed(0)
        model = xdl.nn.mlp(64, [16], 10, dropout=0.5)  # the same initial weights every time
        xdl.seed(global_seed)
        trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model), epochs=1, progress=False, **given)
        trainer.fit(X, y)
        return trainer.seed, model.state_dict()["0.weight"]

    (a, first), (b, again), (c, other) = run(1), run(1), run(2)
    assert a == b and np.array_equal(first, again) and a != c and not np.array_equal(first, other)
    given = [run(s, seed=7) for s in (1, 2)]
    assert given[0][0] == given[1][0] == 7 and np.array_equal(given[0][1], given[1][1])
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*64\) or None, got -1"):
        run(1, seed=-1)


def test_a_model_a_callback_copies_draws_a_new_dropout_mask_at_each_training_pass():
    """The best kept as ``copy.deepcopy(trainer.model)`` (PyTorch's idiom; an EMA, a teacher) took the key
    of the epoch's last step with it: each training pass of the copy (fine-tuning it, Monte Carlo
    dropout) drew that one mask, as a forward in training mode of the callback's own did. The steps'
    keys are cleared when the steps end: passes there draw from the backend's generator."""
    import copy

    X, y = xdl.datasets.digits()
    X, y = (X[:128] / 16).astype(np.float32), y[:128]

    class KeepCopy(Callback):
        def on_epoch_end(self, trainer, record):
            self.copy = copy.deepcopy(trainer.model)
            self.own = [trainer.model(X[:8], training=True).numpy() for _ in range(2)]

    xdl.seed(0)
    model = xdl.nn.mlp(64, [32], 10, dropout=0.5)
    keep = KeepCopy()
    Trainer(model, SoftmaxCrossEntropy(), Adam(model), epochs=1, progress=False, callbacks=[keep]).fit(X, y)
    twice = [keep.copy(X[:8], training=True).numpy() for _ in range(2)]
    assert not np.array_equal(*twice) and not np.array_equal(*keep.own)


def test_a_drawn_seed_is_the_checkpoints_on_resuming_and_a_refused_resume_leaves_it_undrawn(tmp_path):
    """A new process draws another seed: its resume was refused as another run's. A resume refused
    for another reason kept the checkpoint's seed for a later fresh fit."""
    X, y = xdl.datasets.moons(200)

    def trainer(epochs):
        model = xdl.nn.mlp(2, [8], 2, dropout=0.2)
        return Trainer(model, SoftmaxCrossEntropy(), Adam(model), epochs=epochs, progress=False,
                       callbacks=[Checkpoint(tmp_path)])

    first = trainer(2)
    first.fit(X, y)
    xdl.seed(None)  # as a new process: the generator elsewhere
    resumed = trainer(3)
    resumed.fit(X, y, resume=tmp_path)
    assert resumed.seed == first.seed and len(resumed.history) == 3
    model = xdl.nn.mlp(2, [8], 2)
    xdl.save(model, tmp_path / "model.npz")
    refused = Trainer(model, SoftmaxCrossEntropy(), Adam(model), epochs=2, progress=False)
    with pytest.raises(ValueError, match="is a model file, not a training checkpoint"):
        refused.fit(X, y, resume=tmp_path / "model.npz")  # (an AttributeError, before)
    assert refused.seed is None


def test_a_later_fit_on_other_data_measures_its_bests_anew(tmp_path):
    """Fine-tuning with a second fit on new data (as a Keras user calls fit again): early stopping
    and the best checkpoint compare this data's costs with each other, not with the best of data
    the run no longer sees — which stopped the new fit after `patience` epochs while its dev cost fell,
    and put back the first fit's weights, its training thrown away. A dev set given where the first
    fit had none is other data too (best.npz kept a train cost no dev cost could beat)."""
    s = moons_parts(600)
    flipped = (s.X_train, 1 - s.y_train), (s.X_dev, 1 - s.y_dev)  # the new task: every label the other one
    stopping = EarlyStopping(patience=2)
    trainer = make_trainer(None, lr=1e-2, epochs=6, callbacks=[stopping])
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    trainer.epochs += 6
    history = trainer.fit(*flipped[0], dev=flipped[1])
    assert len(history) == 12 and history.stopped_epoch is None  # its dev cost fell: stopped after 2, before
    assert history.best_epoch > 6  # the model holds this fit's best, not the first fit's (was epoch 6)
    assert trainer.evaluate(*flipped[1])["accuracy"] > 0.5

    checkpoint = Checkpoint(tmp_path)
    trainer = make_trainer(None, lr=1e-2, epochs=3, callbacks=[checkpoint])
    trainer.fit(s.X_train, s.y_train)  # no dev: best.npz by the train cost
    trainer.epochs = 5
    history = trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))  # by the dev cost from here
    best = xdl.serialization.read_extra(tmp_path / "best.npz")[0]
    assert best["epoch"] == 3 + 1 + int(np.argmin(history["dev_cost"][3:]))  # was epoch 3's, by its train cost


class KerasStop(Callback):
    """Keras's idiom, ``self.model.stop_training = True``, written with xdl's trainer."""

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == 2:
            trainer.model.stop_training = True


def test_keras_model_stop_training_set_by_a_callback_stops_the_run():
    s = moons_parts(300)
    trainer = make_trainer(None, epochs=5, callbacks=[KerasStop()])
    with pytest.warns(UserWarning, match=r"KerasStop set trainer.model.stop_training .*trainer.stop_training"):
        history = trainer.fit(s.X_train, s.y_train)  # trained all 5 epochs, silently, before
    assert len(history) == 2 and history.stopped_epoch == 2 and "stop_training" not in vars(trainer.model)


class KerasLogger(Callback):
    def on_epoch_end(self, epoch, logs=None):  # Keras's signature: called with (trainer, record)
        print(epoch, logs["val_loss"])


def test_a_callback_with_keras_on_epoch_end_signature_is_refused_where_it_is_given():
    """It would fail after the first epoch (a KeyError, or epoch the Trainer), leaving a trainer no
    fit goes on with; named before any epoch instead."""
    with pytest.raises(TypeError, match=r"KerasLogger.on_epoch_end\(self, epoch, logs=None\) is Keras's .*"
                                        r"on_epoch_end\(self, trainer, record\)"):
        make_trainer(None, callbacks=[KerasLogger()])


class RecordPrinter(Callback):
    def on_epoch_end(self, trainer, logs):  # xdl's signature, its record named as Keras names it
        print(logs["epoch"], logs["train_cost"])


class KerasLoggerRenamed(Callback):
    def on_epoch_end(self, ep, logs=None):  # Keras's, its epoch named otherwise
        print(ep, logs["val_loss"])


def test_an_xdl_on_epoch_end_whose_record_is_named_logs_is_taken():
    """The check read any parameter named "logs" as Keras's: (self, trainer, logs), which xdl calls
    rightly, was refused as Keras's (self, epoch, logs). Keras's logs has a default (logs=None)."""
    s = moons_parts(300)
    assert len(make_trainer(None, epochs=1, callbacks=[RecordPrinter()]).fit(s.X_train, s.y_train)) == 1
    with pytest.raises(TypeError, match=r"KerasLoggerRenamed.on_epoch_end\(self, ep, logs=None\) is Keras's"):
        make_trainer(None, callbacks=[KerasLoggerRenamed()])


class RecordPrinterWithDefault(Callback):
    def on_epoch_end(self, trainer, logs=None):  # xdl's signature: its record named logs, given a default
        print(logs["epoch"], logs["train_cost"])


def test_an_xdl_on_epoch_end_whose_logs_has_a_default_is_taken():
    """(self, trainer, logs=None) is xdl's signature (xdl passes the record always; the default is
    never read): it was refused as Keras's (self, epoch, logs), whose first parameter is no trainer."""
    s = moons_parts(300)
    assert len(make_trainer(None, epochs=1, callbacks=[RecordPrinterWithDefault()]).fit(s.X_train, s.y_train)) == 1


class TakesStopBack(Callback):
    """Keeps training whatever early stopping says (a minimum number of epochs)."""

    def on_epoch_end(self, trainer, record):
        trainer.stop_training = False


def test_a_stop_a_later_callback_takes_back_is_not_recorded_as_the_runs_stop():
    s = moons_parts(300)
    trainer = make_trainer(None, lr=0.05, epochs=8, callbacks=[EarlyStopping(patience=1), TakesStopBack()])
    history = trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert len(history) == 8  # it trained on to its last epoch
    assert history.stopped_epoch is None and history.stopped_by is None  # was a stop at its last epoch, and its reason


@pytest.mark.parametrize("name, value", [("epochs", "12"), ("epochs", 7.5), ("batch_size", 0), ("batch_size", "32")])
def test_a_trainers_epochs_and_batch_size_set_by_hand_are_checked_at_fit(name, value):
    """``trainer.epochs`` is how a later fit trains on (its docs say so): a float trained round it up,
    a string failed in a comparison, batch_size 0 was said as batch norm's need."""
    s = moons_parts(300)
    trainer = make_trainer(None, epochs=2)
    trainer.fit(s.X_train, s.y_train)
    trainer.epochs = 4
    setattr(trainer, name, value)
    with pytest.raises(ValueError, match=rf"fit: trainer.{name} must be a positive integer, got {value!r}"):
        trainer.fit(s.X_train, s.y_train)
    assert trainer.epoch == 2


def test_an_interruption_pickles_and_copies_as_itself():
    """BaseException rebuilt it as cls(*args), the message as the signal's name: a TypeError
    (an estimator interrupted in a GridSearchCV(n_jobs=2) worker crosses processes)."""
    import copy
    import pickle

    from xdl.train import Interrupted

    stop = Interrupted("SIGINT", 3, 0, None)
    stop.results = ["kept"]
    for back in (pickle.loads(pickle.dumps(stop)), copy.copy(stop)):
        assert type(back) is Interrupted and str(back) == str(stop) and back.where == "after epoch 2"
        assert back.epoch == 3 and back.results == ["kept"] and back.signal_name == "SIGINT"


def test_no_bar_asked_for_imports_no_notebook_bar(monkeypatch, recwarn):
    """In a Jupyter kernel without ipywidgets, a fit with progress=False (an MLPClassifier's, a
    fit_many's) warned "TqdmWarning: IProgress not found. Please update jupyter and ipywidgets" for
    a bar no one asked for: `tqdm.auto` was imported for the disabled bar too."""
    import sys
    import types

    import tqdm.notebook

    for name in ("tqdm.auto", "tqdm.autonotebook"):  # imported afresh, as in a new kernel
        monkeypatch.delitem(sys.modules, name, raising=False)
    # a Jupyter kernel (what tqdm.autonotebook looks for) whose environment lacks ipywidgets
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))
    shell = type("ZMQInteractiveShell", (), {})()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    monkeypatch.setattr(tqdm.notebook, "IProgress", None)
    model = xdl.nn.mlp(4, [3], 2)
    Trainer(model, SoftmaxCrossEntropy(), Adam(model), epochs=1, progress=False).fit(np.eye(4), [0, 1, 0, 1])
    assert [str(w.message) for w in recwarn] == [] and "tqdm.auto" not in sys.modules


def test_diagnose_names_a_gap_of_exactly_twice_the_other_whatever_the_rounding():
    """Train 95%, dev 85%: avoidable bias 5%, variance 10% — exactly `CLEARLY_LARGER` (2) times, "at least" twice,
    though 0.1 − 0.05 in floats is 0.09999999999999998 against 2 × 0.050000000000000044. Both within tolerance
    0.15 ("good"), the larger beyond half of it: the variance is named first (a mutant that read ``x − ROUNDING``
    for ``x + ROUNDING`` dropped it, and every test passed)."""
    d = xdl.diagnose({"train_accuracy": 0.95, "dev_accuracy": 0.85}, tolerance=0.15)
    assert d.verdict == "good"
    assert d.next_steps[0] == "work on the variance first: 10.00% against an avoidable bias of 5.00%"


@pytest.mark.parametrize("base_error", [0.25, 0.5, 0.125])
def test_diagnose_says_a_dev_error_equal_to_the_base_error_is_not_below_it(base_error):
    """Train 100%, dev error exactly the base error (1 − accuracy exact in floats): the training error is
    below the base error, the dev error "is not" — not "only by 0.00%, within tolerance"."""
    d = xdl.diagnose({"train_accuracy": 1.0, "dev_accuracy": 1 - base_error}, base_error=base_error)
    assert d.dev_error == base_error
    assert d.next_steps[0].startswith(f"the training error is below the base error {base_error:.2%}, the dev "
                                      "error is not: the model has learned its training examples")

@pytest.mark.parametrize("tolerance", [0.02, 0.04, 0.1, 0.15, 0.3])
def test_diagnose_reads_a_good_models_gap_of_exactly_half_the_tolerance_as_no_work(tolerance):
    """A "good" model's larger gap is named only beyond half ``tolerance``: an avoidable bias of exactly
    half of it, whatever the rounding of 1 − accuracy, has the model checked on the test set; 10⁻⁵ more
    is named first."""
    for gap, named in ((tolerance / 2, False), (tolerance / 2 + 1e-5, True)):
        d = xdl.diagnose({"train_accuracy": 1 - gap, "dev_accuracy": 1 - gap}, tolerance=tolerance)
        assert d.verdict == "good"
        expected = "work on the avoidable bias first" if named else "check the model on the test set"
        assert d.next_steps[0].startswith(expected), (gap, d.next_steps[0])

@pytest.mark.parametrize("dev_accuracy", [0.92, 0.88])
def test_diagnose_reads_a_variance_of_exactly_the_tolerance_as_no_gap_to_resolve(dev_accuracy):
    """Train 90%, dev 92% or 88% on 50 dev examples: a variance of ∓2 points, exactly the tolerance
    (−0.020000000000000018 in floats), is within it — neither "dev below train" nor a gap the dev set cannot
    resolve is said, though p̃ ± 2 SE (about 11% ± 8.6%) holds the training error (a mutant that read
    ``−tolerance + ROUNDING`` said it was unresolved, and every test passed)."""
    from xdl.diagnose import NEXT_STEPS

    d = xdl.diagnose({"train_accuracy": 0.90, "dev_accuracy": dev_accuracy}, dev_examples=50)
    assert abs(d.variance) == pytest.approx(0.02) and d.verdict == "high bias"
    assert d.next_steps == NEXT_STEPS["high bias"]
    assert not any("sampling error" in step or "below the training error" in step for step in d.next_steps)


def test_diagnose_reads_the_epoch_early_stopping_restored():
    """Errors are those of the epoch whose weights the model ends with (`History.final`): the restored
    best epoch's, not the last trained one's."""
    history = xdl.History([{"epoch": 1, "train_accuracy": 0.90, "dev_accuracy": 0.88},
                           {"epoch": 2, "train_accuracy": 0.99, "dev_accuracy": 0.80}], best_epoch=1)
    d = xdl.diagnose(history)
    assert d.train_error == pytest.approx(0.10) and d.variance == pytest.approx(0.02)


def test_diagnose_says_when_the_training_error_is_a_running_average_in_training_mode(tmp_path):
    """With eval_train=False the train accuracy is the epoch's running average with dropout on,
    which overstates the training error: the same weights read as high bias (digits, dropout 0.5:
    3.8% against 0.7% in evaluation), so the diagnosis says so first — kept through
    History.save/load and in fit_many's histories; an eval_train=True history says nothing."""
    X, y = xdl.datasets.digits()
    s = split(X, y, seed=0)
    notes = {}
    for eval_train in (True, False):
        model = xdl.nn.mlp(64, [16], 10, dropout=0.5, standardize=Standardizer().fit(s.X_train).layer())
        trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=3e-3), epochs=2, seed=0, eval_train=eval_train)
        history = trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
        loaded = xdl.History.load(history.save(tmp_path / f"history-{eval_train}.json"))
        notes[eval_train] = [any("running average" in step for step in xdl.diagnose(h).next_steps)
                             for h in (history, loaded)]
    assert notes == {True: [False, False], False: [True, True]}
    config = xdl.config.TrainConfig(hidden=[8], epochs=1, patience=0)
    result, = xdl.train.fit_many([config], s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), eval_train=False)
    assert xdl.diagnose(result.history).next_steps[0].startswith("the training error is the epochs' running average")


@pytest.mark.parametrize("option, way", [("restore_best_weights", "it is restore_best here"),
                                          ("mode", "costs are minimized, accuracies maximized"),
                                          ("baseline", "not offered"), ("start_from_epoch", "not offered"),
                                          ("verbose", "history.stopped_by"), ("patiense", "not an option")])
def test_early_stopping_given_a_keras_option_says_the_way_here(option, way):
    """EarlyStopping(restore_best_weights=True) said Python's "unexpected keyword argument"."""
    with pytest.raises(TypeError, match=rf"^EarlyStopping\(\) takes no option {option}=: .*{way}"):
        EarlyStopping(**{option: 1})


# Keras's ModelCheckpoint options → a word of the way each is said here
KERAS_CHECKPOINT_WAYS = {"filepath": r"directory here: Checkpoint\(directory\)", "save_best_only": r"best\.npz keeps",
                         "save_weights_only": r"xdl\.load\(path\) gives the model", "mode": r"accuracies maximized",
                         "save_freq": r"every=1 here .*trainer\.save_checkpoint\(path\)",
                         "initial_value_threshold": r"not offered", "verbose": r"a save is silent"}


def test_checkpoint_given_a_keras_option_says_the_way_here_before_any_work(tmp_path):
    """Checkpoint(directory, save_best_only=True), Keras's ModelCheckpoint's words, met Python's bare "unexpected
    keyword argument": each option of Keras's, with each of several values and beside valid settings, is refused
    saying the way here (the table's, whose every keyword named is Checkpoint's), before the directory is read."""
    import inspect
    from xdl.train.checkpoint import KERAS_CHECKPOINT_OPTIONS
    assert set(KERAS_CHECKPOINT_OPTIONS) == set(KERAS_CHECKPOINT_WAYS)
    keywords = set(inspect.signature(Checkpoint.__init__).parameters)
    cases = 0
    for option, way in KERAS_CHECKPOINT_OPTIONS.items():
        assert re.search(KERAS_CHECKPOINT_WAYS[option], way) and option not in keywords
        assert all(keyword in keywords for keyword in re.findall(r"\b(\w+)=", way) if keyword != "save_freq")
        for value in (True, 1, "epoch", None, "val_loss"):
            for settings in ({}, {"every": 2}, {"monitor": "dev_accuracy"}):
                message = f"Checkpoint() got an unexpected keyword argument {option!r}; {way}"
                with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
                    Checkpoint(tmp_path / "run", **settings, **{option: value})
                cases += 1
    assert cases == 7 * 15 and not (tmp_path / "run").exists()
    with pytest.raises(TypeError, match=r"^Checkpoint\.__init__\(\) got an unexpected keyword argument 'evry'$"):
        Checkpoint(tmp_path, evry=2)  # (no table entry: Python's own words)
    assert repr(Checkpoint(tmp_path, every=3)).endswith("every=3, monitor='dev_cost')")


def test_checkpoint_given_a_model_file_s_name_says_it_takes_a_directory_before_making_one(tmp_path, monkeypatch):
    """Checkpoint("best.npz"), Keras's ModelCheckpoint(filepath) habit, made a directory named best.npz
    (holding best.npz/best.npz) without a word: a name with a model file's suffix is refused where no
    directory of that name exists, before anything is made; one that exists, or another name, is taken."""
    from xdl.train.checkpoint import MODEL_FILE_SUFFIXES
    monkeypatch.chdir(tmp_path)
    cases = 0
    for suffix in MODEL_FILE_SUFFIXES:
        for stem in ("best", "runs/model", "runs/v1.2/weights"):
            for spelled in (suffix, suffix.upper()):
                for given in (f"{stem}{spelled}", Path(f"{stem}{spelled}"), tmp_path / f"{stem}{spelled}"):
                    said = (rf"^Checkpoint: directory '.*{re.escape(stem + spelled)}' is named as a "
                            rf"{re.escape(spelled)} file .*Checkpoint\('.*{re.escape(stem)}'\) writes "
                            rf"'.*{re.escape(stem)}/best\.npz'$")
                    with pytest.raises(ValueError, match=said):
                        Checkpoint(given)
                    cases += 1
    assert cases == len(MODEL_FILE_SUFFIXES) * 18 and list(tmp_path.iterdir()) == []
    (tmp_path / "kept.npz").mkdir()  # (a directory of the name already: the user's, made so before)
    for directory in ("kept.npz", "runs/v1.2", "checkpoints", ".npz", "best.npz.d", "best.json", tmp_path):
        assert Checkpoint(directory).directory == Path(directory)


KERAS_MONITOR_NAMES = ("val_loss", "val_accuracy", "loss", "accuracy", "dev_cost", "", "dev_accuracy")


@pytest.mark.parametrize("monitor", KERAS_MONITOR_NAMES)
def test_checkpoint_given_a_monitor_second_in_keras_s_order_says_the_order(monitor, tmp_path):
    """Checkpoint(directory, "val_loss"), Keras's ModelCheckpoint(filepath, monitor) order, was refused as "every
    must be a positive integer or None" without naming the order: a str where every is, by position or keyword,
    is said to be Keras's monitor there, with the way here, before the directory is made."""
    said = (rf"^Checkpoint: every is a str \({re.escape(repr(monitor))}\), as Keras's ModelCheckpoint's second "
            r"argument, its monitor; here the second is every \(a positive integer or None\) and the monitor a "
            r"keyword: Checkpoint\(directory, monitor=…\)$")
    for call in (lambda: Checkpoint(tmp_path / "run", monitor), lambda: Checkpoint(tmp_path / "run", every=monitor),
                 lambda: Checkpoint(tmp_path / "run", monitor, "dev_cost")):
        with pytest.raises(TypeError, match=said):
            call()
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match=r"^Checkpoint: every must be a positive integer or None, got 2\.5$"):
        Checkpoint(tmp_path, 2.5)  # (not a str: the check's own words)


def test_early_stopping_patience_0_says_keras_patience_0_is_1_here():
    """Keras's default patience=0 stops at the first epoch without improvement (wait ≥ patience
    once wait = 1): that is patience=1 here, which the refusal of 0 says."""
    with pytest.raises(ValueError, match=r"got 0 \(patience=1 stops at the first epoch without improvement, "
                                         r"as Keras's patience=0"):
        EarlyStopping(patience=0)
    with pytest.raises(ValueError, match=r"patience must be a positive integer, got -1$"):
        EarlyStopping(patience=-1)


def test_a_history_column_asked_by_its_keras_name_is_told_xdls():
    """history["val_loss"] said only "no column 'val_loss'", where EarlyStopping names it."""
    history = xdl.History([{"epoch": 1, "train_cost": 0.5, "dev_cost": 0.6}])
    with pytest.raises(KeyError, match=r"no column 'val_loss' \(Keras's 'val_loss' is 'dev_cost' here\)"):
        history["val_loss"]
    with pytest.raises(KeyError, match=r"no column 'val_cost'; columns"):
        history["val_cost"]
    # Keras's own idiom, history.history["val_loss"], said a bare KeyError: 'val_loss'
    with pytest.raises(KeyError, match=r"no column 'val_loss' \(Keras's 'val_loss' is 'dev_cost' here\)"):
        history.history["val_loss"]
    assert history.history == {"epoch": [1], "train_cost": [0.5], "dev_cost": [0.6]}


def test_a_history_record_asked_by_a_wrong_index_is_told_the_records_it_has():
    """history[3] of 3 epochs said list's bare "list index out of range", history[1.0] "list indices must be
    integers or slices, not float": neither named the history nor what it holds. Every index in and out of
    range, of histories of 0 to 3 records, and keys of other types (a bool too: history[True] gave record 1)."""
    for length in range(4):
        history = xdl.History([{"epoch": e + 1, "train_cost": 1.0 / (e + 1)} for e in range(length)])
        for index in range(-length - 3, length + 3):
            if -length <= index < length:
                assert history[index] == history.records[index] == history[np.int64(index)]
            else:
                records = "1 record" if length == 1 else f"{length} records"
                with pytest.raises(IndexError, match=rf"^History has {records} \(one an epoch\), got index "
                                                     rf"{index} \(history\[-1\] is the last\)$"):
                    history[index]
        assert history[1:] == history.records[1:]
        for key in (1.0, None, (0, 1), [0], np.float64(0.0), True, False, np.True_):
            with pytest.raises(TypeError, match=r"^History is indexed by a column's name \(a str\) or a record's "
                                                rf"index \(an int, or a slice\), got {type(key).__name__}$"):
                history[key]


def test_an_empty_history_has_every_column_empty_and_its_flags_are_python_bools():
    """A history of no epoch yet (a callback's on_train_begin reads one) gives [] for any column, as a list of its
    records would, and no record; ``train_running`` given as any truth value is a bool, as its file writes it."""
    empty = xdl.History()
    assert empty["dev_cost"] == [] and empty["val_loss"] == [] and empty.columns == [] and len(empty) == 0
    assert len(xdl.History([{"epoch": 1, "lr": 0.1}, {"epoch": 2, "lr": 0.1}, {"epoch": 3, "lr": 0.1}])) == 3
    with pytest.raises(IndexError, match=r"^History has 0 records"):
        empty[0]
    for given, kept in ((np.True_, True), (1, True), (0, False), (np.False_, False)):
        assert xdl.History(train_running=given).train_running is kept
        assert xdl.History.from_dict(xdl.History(train_running=given).to_dict()).train_running is kept
    for keras, ours in (("val_acc", "dev_accuracy"), ("val_accuracy", "dev_accuracy"), ("acc", "train_accuracy"),
                        ("accuracy", "train_accuracy"), ("loss", "train_cost"), ("val_loss", "dev_cost")):
        with pytest.raises(KeyError, match=rf"no column '{keras}' \(Keras's '{keras}' is '{ours}' here\)"):
            xdl.History([{"epoch": 1}])[keras]
    fields = {"stopped_epoch": 3, "stopped_by": "Stop", "best_epoch": 1, "diverged": "epoch 3, step 2",
              "train_running": True}
    history = xdl.History([{"epoch": 1}], **fields)
    assert history.to_dict() == {"records": [{"epoch": 1}], **fields}
    assert repr(history) == "History(1 epoch, stopped_epoch=3, best_epoch=1)"
    assert {name: getattr(xdl.History.from_dict(history.to_dict()), name) for name in fields} == fields


def test_history_columns_records_and_what_it_saves_are_kept_as_given(tmp_path):
    """Columns in the order they first appear (Keras's history.history keys), None in an epoch that
    did not record one; the records are the history's own copies; save then load gives back every
    field (stopped_by, diverged) as it was."""
    first = {"epoch": 1, "train_cost": 0.5}
    history = xdl.History([first], stopped_epoch=2, best_epoch=1, diverged="epoch 2, step 3", stopped_by="Stop")
    later = {"epoch": 2, "train_cost": 0.4, "gap": 0.1}
    history.append(later)
    first["train_cost"], later["gap"] = 9.0, 9.0  # the caller's dicts, changed after
    assert history.columns == ["epoch", "train_cost", "gap"]
    assert history["gap"] == [None, 0.1] and history["train_cost"] == [0.5, 0.4]
    loaded = xdl.History.load(history.save(tmp_path / "history.json"))
    assert loaded.to_dict() == history.to_dict()
    assert (loaded.stopped_by, loaded.diverged, loaded.best_epoch) == ("Stop", "epoch 2, step 3", 1)


@pytest.mark.parametrize("eval_train", [True, False])
def test_a_historys_train_running_says_eval_train_off_and_survives_its_file(tmp_path, eval_train):
    """``train_running`` is True exactly where the run's train figures are running averages (eval_train=False),
    kept by to_dict/from_dict and save/load; a history written before the field existed (no key) held
    evaluated figures: False."""
    s = moons_parts(200)
    history = make_trainer(None, epochs=1, eval_train=eval_train).fit(s.X_train, s.y_train)
    assert history.train_running is (not eval_train)
    assert xdl.History.from_dict(history.to_dict()).train_running is (not eval_train)
    assert xdl.History.load(history.save(tmp_path / "history.json")).train_running is (not eval_train)
    older = {k: v for k, v in history.to_dict().items() if k != "train_running"}
    assert xdl.History.from_dict(older).train_running is False


def test_a_historys_records_encoded_for_a_checkpoint_are_the_bytes_of_the_records_as_they_are_now():
    """A checkpoint encodes each record once (`History.to_encoded_dict`: re-encoding them all at every
    save grew with every epoch) and again where it changed since: the file's bytes are those of the
    records as they are at the save, whatever changed in place."""
    import pickle

    from xdl.files import json_dumps, json_number

    history = xdl.History([{"epoch": 1, "train_cost": 0.5, "lr": [0.1, 0.2]}])

    def same():
        assert json_dumps({"history": history.to_encoded_dict()}) == \
            json.dumps({"history": history.to_dict()}, default=json_number)

    same()
    history.append({"epoch": 2, "mine": np.float32(0.25), "gap": float("nan"), "note": 'a "quoted" \\ one'})
    same()
    history.records[0]["lr"][1] = 0.3  # a list in an earlier record, changed in place
    same()
    history.records[0]["control"] = "control.toml at epoch 1: stop"  # (as Control notes one on resuming)
    same()
    del history.records[1]
    same()
    history.records = [{"epoch": 1, "train_cost": 0.125}]
    same()
    copied = pickle.loads(pickle.dumps(history))
    assert "_encoded" not in vars(copied) and copied.to_dict() == history.to_dict()
    history = copied
    same()


@pytest.mark.parametrize("epochs", [1, 5, 40])
def test_a_historys_save_for_a_checkpoint_encodes_only_the_records_new_or_changed_since(monkeypatch, epochs):
    """`History.to_encoded_dict` at every epoch's checkpoint encodes each record of numbers once: the next
    save encodes the epoch added, and a record whose value was replaced, not the ones before (counted
    as calls of the json.dumps it encodes with)."""
    import xdl.train.history as history_module

    encoded = []

    class CountingJSON:
        def __getattr__(self, name):
            return getattr(json, name)

        def dumps(self, value, **kwargs):
            encoded.append(value)
            return json.dumps(value, **kwargs)

    monkeypatch.setattr(history_module, "json", CountingJSON())
    history = xdl.History([{"epoch": e + 1, "train_cost": 1.0 / (e + 1), "lr": 0.1} for e in range(epochs)])
    history.to_encoded_dict()
    assert len(encoded) == epochs
    history.append({"epoch": epochs + 1, "train_cost": 0.01, "lr": 0.1})
    encoded.clear()
    history.to_encoded_dict()
    assert encoded == [history.records[-1]]
    history.records[0]["train_cost"] = 2.0  # (another object: encoded again)
    encoded.clear()
    history.to_encoded_dict()
    assert encoded == [history.records[0]]


@pytest.mark.parametrize("before, after", [(0, 0.0), (1.0, 1), (True, 1), (0.0, -0.0), (np.float64(2.0), 2),
                                           (np.float32(1), [1, 2]), ([1, 2], np.float32(1)), ([0], [0.0])])
def test_a_historys_encoded_record_changed_to_an_equal_value_of_other_json_is_encoded_again(before, after):
    """A record was encoded again only where it compared unequal (``==``) to a copy of it as encoded:
    a value replaced by an equal one of other JSON (0 by 0.0, True by 1, 0.0 by -0.0) kept its old
    bytes, a record reordered kept its old order, and a NumPy number replaced by a list (or the other
    way) failed the save with NumPy's "truth value of an array … is ambiguous"."""
    from xdl.files import json_dumps, json_number

    history = xdl.History([{"epoch": 1, "mine": before, "other": 0.5}])
    history.to_encoded_dict()
    history.records[0]["mine"] = after
    assert json_dumps(history.to_encoded_dict()) == json.dumps(history.to_dict(), default=json_number)
    history.records[0]["mine"] = history.records[0].pop("mine")  # the same values, in another order
    assert json_dumps(history.to_encoded_dict()) == json.dumps(history.to_dict(), default=json_number)


def test_callbacks_pickled_by_an_older_xdl_load(tmp_path):
    """An older xdl's callbacks were all of xdl.train.callbacks, and its pickles name them there: a
    Control holding a file applied, not yet renamed (its `AppliedControl`, then named ``_Applied``), failed to load
    with "Can't get attribute '_Applied' on <module 'xdl.train.callbacks'>"; one pickled by the xdl of
    xdl.train.control's ``_Applied`` loads too."""
    import pickle

    from xdl.train import Control
    from xdl.train.control import AppliedControl

    control = Control(tmp_path)
    control._pending = AppliedControl("lr = 0.1 at epoch 1", "control-applied-epoch-1.toml", b"lr = 0.1")
    for callback in (control, EarlyStopping(patience=2), Checkpoint(tmp_path), Callback()):
        data = pickle.dumps(callback, protocol=2)  # (its module names as text lines: renamed as the older xdl's)
        data = data.replace(b"\nAppliedControl\n", b"\n_Applied\n")  # (its name then)
        assert (b"xdl.train.control\n_Applied\n" in data) == (callback is control)
        in_callbacks = data
        for module in ("callback", "checkpoint", "control", "early_stopping"):
            in_callbacks = in_callbacks.replace(f"xdl.train.{module}\n".encode(), b"xdl.train.callbacks\n")
        assert b"xdl.train.callbacks\n" in in_callbacks
        for older in (data, in_callbacks):  # (the xdl of xdl.train.control's _Applied; the one before it)
            loaded = pickle.loads(older)
            assert type(loaded) is type(callback) and vars(loaded).keys() == vars(callback).keys()
            if callback is control:
                assert loaded._pending == control._pending


def test_a_trainer_its_loss_and_callbacks_print_their_settings_and_progress():
    """A notebook cell ending with the trainer showed ``<xdl.train.trainer.Trainer object at 0x…>``."""
    trainer = make_trainer("numpy", epochs=2, callbacks=[EarlyStopping(patience=3)], l2=0.01)
    X, y, X_dev, y_dev = moons_parts(m=64)[:4]
    assert repr(trainer.loss) == "SoftmaxCrossEntropy()"
    assert repr(EarlyStopping(patience=3)) == "EarlyStopping(monitor='dev_cost', patience=3, min_delta=0.0, restore_best=True)"
    assert repr(Callback()) == "Callback()"
    before = repr(trainer)
    assert before.startswith(f"Trainer(model=Sequential({sum(p.size for p in trainer.model.parameters()):,} parameters), "
                             f"loss=SoftmaxCrossEntropy(), optimizer={trainer.optimizer!r}, batch_size=")
    assert "l2=0.01, callbacks=[EarlyStopping(monitor='dev_cost', patience=3" in before and "seed=0" in before
    assert "capture=" not in before and before.endswith("; 0 of 2 epochs trained)")
    trainer.fit(X, y, dev=(X_dev, y_dev))
    assert repr(trainer).endswith("; 2 of 2 epochs trained)")


def test_one_early_stopping_given_to_two_trainers_is_refused_where_a_later_fit_would_go_on_with_the_others():
    """A later fit goes on with its callbacks' state; one EarlyStopping given to trainer b since
    held b's best: a's later fit stopped at once ("did not improve for 3 epochs", b's cost its
    yardstick) and restored b's weights into a's model, its history saying a's epoch was best."""
    s = moons_parts(300)
    stopping = EarlyStopping(patience=3)
    a = make_trainer(None, lr=1e-4, epochs=2, callbacks=[stopping])
    b = make_trainer(None, lr=1e-2, epochs=2, callbacks=[stopping], seed=1)
    a.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    b.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))  # a fit of its own: the callback starts afresh, as Keras's
    before = a.model.state_dict()
    a.epochs = 6
    with pytest.raises(ValueError, match=r"this EarlyStopping was in another trainer's fit since this trainer's last"):
        a.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert a.epoch == 2 and all(np.array_equal(v, before[k]) for k, v in a.model.state_dict().items())
    a.callbacks = [EarlyStopping(patience=3)]  # its own: the run goes on
    assert len(a.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))) == 6


class FitsAnother(Callback):
    """Starts another trainer's fit from within this one's (as a second thread would, at once)."""

    def __init__(self, other, data):
        self.other, self.data, self.error = other, data, None

    def on_epoch_end(self, trainer, record):
        try:
            self.other.fit(*self.data)
        except RuntimeError as e:
            self.error = e


def test_a_callback_in_a_fit_running_now_is_refused_by_another_trainers_fit():
    """Two fits sharing one EarlyStopping mixed their bests and waits: one stopped epochs early."""
    s = moons_parts(300)
    stopping = EarlyStopping(patience=3, monitor="train_cost")
    other = make_trainer(None, epochs=1, callbacks=[stopping], seed=1)
    starter = FitsAnother(other, (s.X_train, s.y_train))
    trainer = make_trainer(None, epochs=1, callbacks=[stopping, starter])
    trainer.fit(s.X_train, s.y_train)
    assert "is in the fit of another trainer running now" in str(starter.error) and other.epoch == 0
    assert len(other.fit(s.X_train, s.y_train)) == 1  # once that fit is over, a fit of its own takes it


def test_a_callback_taken_out_of_a_trainer_fitting_now_may_be_given_to_another():
    """A callback is in a fit running now only where it is among that trainer's callbacks: one its
    run's trainer no longer holds (trainer.callbacks changed between fits) is free for another
    trainer's first fit meanwhile."""
    s = moons_parts(300)
    stopping = EarlyStopping(patience=3, monitor="train_cost")
    first = make_trainer(None, epochs=1, callbacks=[stopping])
    first.fit(s.X_train, s.y_train)
    other = make_trainer(None, epochs=1, callbacks=[stopping], seed=1)
    starter = FitsAnother(other, (s.X_train, s.y_train))
    first.callbacks, first.epochs = [starter], 2
    first.fit(s.X_train, s.y_train)
    assert starter.error is None and other.epoch == 1


def test_a_fit_failing_before_a_callback_began_leaves_it_to_the_run_it_was_in():
    """A callback a failed fit never told (an earlier callback's on_train_begin raised) is put back as
    the state of the run it was in before — trainer b's here, not a's, whose later fit would go on
    from b's best — rather than forgotten."""
    s = moons_parts(300)
    stopping = EarlyStopping(patience=3, monitor="train_cost")
    a = make_trainer(None, epochs=1, callbacks=[stopping])
    a.fit(s.X_train, s.y_train)
    make_trainer(None, epochs=1, callbacks=[stopping], seed=1).fit(s.X_train, s.y_train)  # b: a fit of its own
    with pytest.raises(KeyError, match="set-up"):
        make_trainer(None, epochs=1, callbacks=[FailsAtBegin(), stopping], seed=2).fit(s.X_train, s.y_train)
    a.epochs = 2
    with pytest.raises(ValueError, match="this EarlyStopping was in another trainer's fit since this trainer's last"):
        a.fit(s.X_train, s.y_train)
    assert a.epoch == 1


def test_a_dead_callbacks_run_is_forgotten():
    """`callbacks_held` notes each callback's run by its id; a callback collected takes its entry
    with it (a search making thousands of trainers would otherwise keep one per callback)."""
    import gc
    import weakref

    from xdl.train import fit_guards

    s = moons_parts(100)
    stopping = EarlyStopping(patience=3, monitor="train_cost")
    trainer = make_trainer(None, epochs=1, callbacks=[stopping])
    trainer.fit(s.X_train, s.y_train)
    key, alive = id(stopping), weakref.ref(stopping)
    assert fit_guards._RUNS[key][0]() is stopping
    del stopping, trainer
    gc.collect()
    assert alive() is None and key not in fit_guards._RUNS


def test_a_callback_given_twice_is_refused():
    """It ran twice at each epoch's end: EarlyStopping(patience=4) stopped after 2 epochs without
    improvement, saying it had waited 4."""
    stopping = EarlyStopping(patience=4)
    with pytest.raises(ValueError, match=r"callbacks: EarlyStopping\(monitor='dev_cost', patience=4.*\) is given twice"):
        make_trainer(None, callbacks=[stopping, stopping])


class CrashAfterCheckpoint(Callback):
    order = 200  # after the Checkpoint: the epoch's state is saved, the run unfinished

    def __init__(self, at=2):
        self.at = at

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.at:
            raise RuntimeError("crash")


def test_a_later_fit_does_not_write_over_another_unfinished_run_checkpointed_there_since(tmp_path):
    """a's run ended (its 2 epochs), so b, a new run, may start in its directory; b stopped after 2 of
    6 epochs. a's later fit (more epochs) then wrote over b's checkpoint, the only state b resumes from."""
    s = moons_parts(300)
    a = make_trainer(None, epochs=2, callbacks=[Checkpoint(tmp_path)])
    a.fit(s.X_train, s.y_train)
    b = make_trainer(None, epochs=6, callbacks=[Checkpoint(tmp_path), CrashAfterCheckpoint()], seed=1)
    with pytest.raises(RuntimeError, match="crash"):
        b.fit(s.X_train, s.y_train)
    b_state = (tmp_path / "checkpoint.npz").read_bytes()
    a.epochs = 4
    with pytest.raises(FileExistsError, match=r"holds the checkpoint of another unfinished run \(after epoch 2 of 6\)"):
        a.fit(s.X_train, s.y_train)
    assert (tmp_path / "checkpoint.npz").read_bytes() == b_state
    elsewhere = make_trainer(None, epochs=6, callbacks=[Checkpoint(tmp_path / "c"), CrashAfterCheckpoint()])
    with pytest.raises(RuntimeError, match="crash"):
        elsewhere.fit(s.X_train, s.y_train)
    with pytest.raises(FileExistsError, match=r"holds the checkpoint of an unfinished run"):  # resumed into b's too
        make_trainer(None, epochs=6, callbacks=[Checkpoint(tmp_path), CrashAfterCheckpoint(None)]).fit(
            s.X_train, s.y_train, resume=tmp_path / "c")
    assert (tmp_path / "checkpoint.npz").read_bytes() == b_state
    resumed = make_trainer(None, epochs=6, callbacks=[Checkpoint(tmp_path), CrashAfterCheckpoint(None)], seed=1)
    assert len(resumed.fit(s.X_train, s.y_train, resume=tmp_path)) == 6  # b goes on, as it would have
    resumed.epochs = 7  # and its own later fit writes over its own
    assert len(resumed.fit(s.X_train, s.y_train)) == 7


def test_a_later_fit_refuses_a_checkpoint_it_did_not_write_that_no_run_can_read_as_a_new_run_does(tmp_path):
    """The three ways a fit comes to a directory (a new run, a resume from elsewhere, a later fit) share
    one refusal (`Checkpoint._check_not_anothers`): a later fit finding a damaged checkpoint.npz there
    that it did not write wrote over it, where a new run is refused (its best.npz may be the best state)."""
    s = moons_parts(300)
    a = make_trainer(None, epochs=2, callbacks=[Checkpoint(tmp_path)])
    a.fit(s.X_train, s.y_train)
    (tmp_path / "checkpoint.npz").write_bytes(b"PK\x03\x04 damaged")
    a.epochs = 3
    with pytest.raises(FileExistsError, match=r"holds a checkpoint no run can continue from"):
        a.fit(s.X_train, s.y_train)
    assert (tmp_path / "checkpoint.npz").read_bytes() == b"PK\x03\x04 damaged" and a.epoch == 2


class KerasSelfModel(Callback):
    def on_epoch_end(self, trainer, record):
        self.model.save("model.keras")  # Keras's self.model: xdl's is trainer.model


class KerasSetModel(Callback):
    def set_model(self, model):  # Keras calls it before training; xdl never does
        self.net = model


def test_keras_self_model_and_set_model_are_named_with_the_xdl_way():
    """"'KerasSelfModel' object has no attribute 'model'" said nothing of the trainer each hook gets;
    set_model was never called, the attribute it set missing later."""
    s = moons_parts(300)
    with pytest.raises(AttributeError, match=r"'KerasSelfModel' object has no attribute 'model': xdl gives each hook "
                                             r"the trainer — trainer.model"):
        make_trainer(None, epochs=1, callbacks=[KerasSelfModel()]).fit(s.X_train, s.y_train)
    with pytest.raises(TypeError, match=r"KerasSetModel.set_model is no hook of xdl's Callback"):
        make_trainer(None, callbacks=[KerasSetModel()])
    with pytest.raises(AttributeError, match=r"^'Callback' object has no attribute 'modle'$"):
        Callback().modle


class LateOrder(Callback):
    order = "last"


def test_a_callback_order_that_is_no_number_is_named():
    """Sorting the callbacks failed with "'<' not supported between instances of 'int' and 'str'"."""
    with pytest.raises(TypeError, match=r"LateOrder.order must be a number .*got 'last'"):
        make_trainer(None, callbacks=[LateOrder(), EarlyStopping()])


class RatesByEpoch(Callback):
    def __init__(self):
        self.rates = {}

    def on_epoch_end(self, trainer, record):
        self.rates[record["epoch"]] = record["lr"]

    def state_dict(self):
        return {"rates": self.rates}, {}

    def load_state_dict(self, state, arrays):
        self.rates = state["rates"]


def test_a_callback_state_with_keys_json_turns_into_strings_is_refused(tmp_path):
    """JSON's keys are strings: {1: 0.01} came back on resuming as {"1": 0.01}, and the resumed run's
    epochs were added beside them as integers, silently."""
    s = moons_parts(300)
    trainer = make_trainer(None, epochs=2, callbacks=[RatesByEpoch(), Checkpoint(tmp_path)])
    with pytest.raises(TypeError, match=r"RatesByEpoch.state_dict: .* keys are strings: 1 \(int\) would come back "
                                        r"on resuming as \"1\""):
        trainer.fit(s.X_train, s.y_train)


def test_the_runs_last_epochs_at_rate_0_are_said_to_train_nothing():
    """cosine(0.5, 3) over 6 epochs, or a per-step cosine whose total was meant in epochs: the last
    epochs ran at rate 0, training nothing, without a word (`xdl train` and MLPClassifier refuse a
    cosine schedule past its end). A 0 before other rates, a warm-up's first, is no warning."""
    s = moons_parts()
    cosine = xdl.optim.schedules.cosine
    with pytest.warns(UserWarning, match=r"^the schedule is 0 from epoch 4 to the run's last, 6: those 3 epochs "
                                         r"train nothing \(does it span fewer than the run, or count epochs as steps\?\)"):
        history = make_trainer(None, optimizer="gd", lr=0.5, epochs=6, schedule=cosine(0.5, 3)).fit(s.X_train,
                                                                                                      s.y_train)
    assert history["lr"][3:] == [0.0, 0.0, 0.0]
    with pytest.warns(UserWarning, match=r"^group 0's per-step lr schedule is 0 from step 5 to the run's last.*"
                                         r"or count steps as epochs\?\)"):
        make_trainer(None, optimizer="gd", lr=cosine(0.5, 4), epochs=3).fit(s.X_train, s.y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_trainer(None, optimizer="gd", lr=0.5, epochs=3, schedule=lambda e: 0.1 * e).fit(s.X_train, s.y_train)
        make_trainer(None, optimizer="gd", lr=0.5, epochs=3, schedule=cosine(0.5, 3)).fit(s.X_train, s.y_train)


def test_a_per_step_schedule_is_read_at_the_optimizers_count_when_checked_before_the_run():
    """A Trainer made with an optimizer that stepped before (another Trainer's run, a loop of one's
    own) reads its per-step schedule at the optimizer's count, 20 here: a cosine over 30 steps left the
    run's last 20 at rate 0, and the check before the run read counts 0 to 29 and said nothing."""
    s = moons_parts()  # 600 examples: 10 steps an epoch
    cosine = xdl.optim.schedules.cosine
    first = make_trainer(None, optimizer="gd", lr=0.5, epochs=2)
    first.fit(s.X_train, s.y_train)
    opt = first.optimizer
    assert opt.t == 20
    opt.lr = cosine(0.5, 30)
    with pytest.warns(UserWarning, match=r"^group 0's per-step lr schedule \(read at the optimizer's step count, "
                                         r"20 at the run's first step\) is 0 from step 11 to the run's last, 30: "
                                         r"those 20 steps"):
        history = Trainer(first.model, SoftmaxCrossEntropy(), opt, batch_size=64, epochs=3, seed=0,
                          progress=False).fit(s.X_train, s.y_train)
    assert history["lr"][1:] == [0.0, 0.0]
    opt.lr = cosine(0.5, 100)  # spans the counts it is read at, 50 to 79: nothing to say
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(first.model, SoftmaxCrossEntropy(), opt, batch_size=64, epochs=3, seed=0,
                progress=False).fit(s.X_train, s.y_train)


def test_a_per_step_schedule_is_read_at_the_counts_a_later_fit_of_the_trainer_reaches():
    """A second fit in batches of 32 (19 steps an epoch, after 2 of 10) steps at counts 20 to 38, and one
    with an optimizer given since at its own counts 0 to 9: read at the run's position in epochs of the
    fit's steps, the first was told cosine(0.5, 40) is 0 over counts 41 to 57 and a linear decay refused at
    count 41, negative there, the second that cosine(0.5, 10) trains nothing over 20 steps it never takes."""
    s = moons_parts()  # 600 examples: 10 steps of 64, 19 of 32
    cosine = xdl.optim.schedules.cosine
    for lr in (cosine(0.5, 40), lambda count: 0.5 * (1 - count / 40)):
        trainer = make_trainer(None, optimizer="gd", lr=0.5, epochs=2)
        trainer.fit(s.X_train, s.y_train)
        trainer.optimizer.lr, trainer.batch_size, trainer.epochs = lr, 32, 3
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert trainer.fit(s.X_train, s.y_train)["lr"][2] == pytest.approx(lr(20))
        assert trainer.optimizer.t == 39
    trainer = make_trainer(None, optimizer="gd", lr=0.5, epochs=2)
    trainer.fit(s.X_train, s.y_train)
    trainer.optimizer, trainer.epochs = xdl.optim.SGD(trainer.model, lr=cosine(0.5, 10)), 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert trainer.fit(s.X_train, s.y_train)["lr"][2] == 0.5
    assert trainer.optimizer.t == 10


def test_a_resumed_run_whose_schedule_control_cleared_is_not_told_its_schedule_trains_nothing(tmp_path):
    """cosine(0.5, 3) for a run of 6 epochs, whose rate the babysitter's control.toml set by hand at
    epoch 1 (the schedule cleared). Resumed, the run was told that epochs 4 to 6 train nothing — read
    from the schedule it was made with, before its checkpoint said it was cleared — while they
    trained at the rate set by hand."""
    from xdl.train import Control

    s = moons_parts()
    cosine = xdl.optim.schedules.cosine

    def trainer(epochs):
        return make_trainer(None, optimizer="gd", lr=0.5, epochs=epochs, schedule=cosine(0.5, 3), callbacks=[
            WriteControl(tmp_path, 1, "lr = 0.05\n"), Control(tmp_path), Checkpoint(tmp_path)])

    trainer(2).fit(s.X_train, s.y_train)  # (interrupted after epoch 2, say)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = trainer(6).fit(s.X_train, s.y_train, resume=tmp_path)
    assert history["lr"][1:] == [0.05] * 5


def test_early_stopping_counts_an_improvement_only_beyond_min_delta_in_the_monitors_direction():
    """On a run's records, as Keras's: an improvement is a value better than the best by more than
    min_delta (an equal value, or one better by min_delta or less, waits); accuracies are maximized.
    Each was a mutant (≤ for <, best + min_delta, accuracy minimized) that every test passed."""
    from types import SimpleNamespace

    from xdl.train import EarlyStopping

    def run(values, **options):
        es = EarlyStopping(restore_best=False, patience=2, **options)
        trainer = SimpleNamespace(stop_training=False, history=SimpleNamespace(stopped_by=None))
        for epoch, value in enumerate(values, 1):
            es.on_epoch_end(trainer, {"epoch": epoch, es.monitor: value})
            if trainer.stop_training:
                return epoch, es.best_epoch
        return None, es.best_epoch

    assert run([1.0, 1.0, 1.0]) == (3, 1)  # no better: two epochs waited
    assert run([1.0, 0.95, 0.95, 0.5], min_delta=0.1) == (3, 1)  # better by 0.05 ≤ min_delta: no improvement
    assert run([1.0, 0.85, 0.8, 0.76], min_delta=0.1) == (4, 2)  # 0.15 better, then 0.05 and 0.09 below 0.85
    assert run([0.5, 0.6, 0.7, 0.8], monitor="dev_accuracy") == (None, 4)  # rising accuracy keeps improving
    assert run([0.8, 0.7, 0.6], monitor="dev_accuracy") == (3, 1)  # falling accuracy: no improvement
    # min_delta in the accuracy's own units: 0.08 better is no improvement at 0.1 (a sign of −2 halved it)
    assert run([0.5, 0.58, 0.58], monitor="dev_accuracy", min_delta=0.1) == (3, 1)
    assert run([0.5, 0.62, 0.62], monitor="dev_accuracy", min_delta=0.1) == (None, 2)


def test_early_stopping_waits_five_epochs_by_default():
    """The default patience is 5 (the signature's, which the docstring's "patience epochs" reads): a run with no
    improvement after its first epoch stops at epoch 6, not before (a default of 6 was a mutant every test passed)."""
    from types import SimpleNamespace

    from xdl.train import EarlyStopping

    es = EarlyStopping(restore_best=False)
    trainer = SimpleNamespace(stop_training=False, history=SimpleNamespace(stopped_by=None))
    epoch = 0
    while not trainer.stop_training and epoch < 10:
        epoch += 1
        es.on_epoch_end(trainer, {"epoch": epoch, "dev_cost": 1.0})
    assert epoch == 6 and trainer.history.stopped_by == "dev cost did not improve for 5 epochs"


def test_early_stopping_refuses_an_epoch_record_without_its_monitor_unless_no_model_of_many_finished():
    """A record without the monitored value is refused by name (a mutant that read ``value is None or …`` skipped
    it silently, and every test passed: the fit's own check comes first); a `fit_many` epoch in which no model
    trained to its end (``best_model`` None) is skipped."""
    from types import SimpleNamespace

    es = EarlyStopping(restore_best=False, patience=1)
    trainer = SimpleNamespace(stop_training=False, history=SimpleNamespace(stopped_by=None))
    with pytest.raises(ValueError, match="EarlyStopping monitors 'dev_cost', which this run does not measure"):
        es.on_epoch_end(trainer, {"epoch": 1, "train_cost": 0.5})
    es.on_epoch_end(trainer, {"epoch": 1, "best_model": None})
    assert es.wait == 0 and es.best_epoch is None and not trainer.stop_training


def test_early_stopping_keeps_its_best_weights_through_a_checkpoint_and_sees_weights_written_over_them():
    """`load_state_dict` puts back the best epoch's weights a checkpoint holds (``dict(arrays) and None`` lost
    them: a resumed run restored nothing); `run_weights` is the run's last weights only while the model holds
    the best ones bit for bit: a weight written in place since is the user's, not the run's to overwrite."""
    from xdl.train import EarlyStopping
    from xdl.train.early_stopping import _loads

    model = xdl.nn.Dense(3, 2)
    es = EarlyStopping()
    es.best_state, es.best, es.best_epoch = model.state_dict(), 0.5, 3
    state, arrays = es.state_dict()
    resumed = EarlyStopping()
    resumed.load_state_dict(state, arrays)
    assert resumed.best_epoch == 3 and sorted(resumed.best_state) == sorted(model.state_dict())
    assert all(np.array_equal(resumed.best_state[k], v) for k, v in model.state_dict().items())
    es.run_state, es._loads_at_end = {"weight": np.zeros((3, 2))}, _loads(model)
    assert es.run_weights(model) is es.run_state  # the model still holds the best: the run goes on from its last
    model.weight.data[0, 0] += 1.0
    assert es.run_weights(model) is None  # written over: the user's weights


def test_a_later_fit_after_an_early_stop_waits_its_patience_anew_as_keras_s_fit():
    """A second ``fit`` of a run that early stopping stopped trains on, patience anew (Keras's fit): a
    count left at patience would stop it after one epoch (a mutant every test passed)."""
    X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = xdl.nn.mlp(3, [4], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=0.0), epochs=10, progress=False,
                      callbacks=[EarlyStopping(patience=2)])  # (rate 0: the dev cost never improves)
    assert trainer.fit(X, y, dev=(X, y))["epoch"] == [1, 2, 3]
    assert trainer.fit(X, y, dev=(X, y))["epoch"] == [1, 2, 3, 4, 5]


class EvalAtEpochEnd(Callback):
    def on_epoch_end(self, trainer, record):
        trainer.model.eval()  # (and never back: the loop puts its modes back)


def test_a_batch_norm_the_user_put_in_evaluation_keeps_its_statistics_while_the_rest_trains():
    """PyTorch's fine-tuning idiom, model.train(); bn.eval(): each epoch put every module in training
    mode, so the batch norm's running statistics moved (and its flag said training after the fit). A
    model wholly in evaluation (model.eval(), to predict) still trains in training mode, and a
    callback's model.eval() at an epoch's end is undone at the next epoch's start."""
    X, y = xdl.datasets.moons(200, noise=0.2, seed=0)
    xdl.seed(0)
    model = xdl.nn.mlp(2, [8], 2, batch_norm=True, dropout=0.2)
    bn = next(m for m in model.layers if isinstance(m, xdl.nn.BatchNorm))
    bn.eval()
    statistics = {name: a.copy() for name, a in model.state_dict().items() if "running" in name}
    Trainer(model, SoftmaxCrossEntropy(), Adam(model), epochs=2, progress=False).fit(X, y)
    assert not bn.training and model.training
    for name, value in statistics.items():
        np.testing.assert_array_equal(model.state_dict()[name], value)

    for callbacks in ((), (EvalAtEpochEnd(),)):
        xdl.seed(0)
        model = xdl.nn.mlp(2, [8], 2, batch_norm=True).eval()
        moved = []
        Trainer(model, SoftmaxCrossEntropy(), Adam(model), epochs=2, progress=False,
                callbacks=[*callbacks, type("Watch", (Callback,), {"on_epoch_end": lambda self, t, r: moved.append(
                    {n: a.copy() for n, a in t.model.state_dict().items() if "running" in n})})()]).fit(X, y)
        for before, after in zip([statistics, moved[0]], moved):  # each epoch's steps moved them
            assert all(not np.array_equal(before[name], after[name]) for name in before)


class Mixture(xdl.nn.Module):
    """A model of one's own with an attribute named ``modes`` (a mixture's count of them)."""

    def __init__(self, modes=3):
        super().__init__()
        self.modes = modes
        self.first, self.last = xdl.nn.Dense(2, 8), xdl.nn.Dense(8, 2)

    def forward(self, x):
        return self.last(xdl.relu(self.first(x)))


def test_a_model_of_ones_own_may_name_an_attribute_modes():
    """The modes a fit keeps are read by a function (`modes_of`), not a Module method: a method's name
    is refused as an attribute, and ``self.modes = 3`` raised "'modes' is a method of xdl.nn.Module"
    where it had built."""
    X, y = xdl.datasets.moons(100, noise=0.2, seed=0)
    xdl.seed(0)
    model = Mixture()
    Trainer(model, SoftmaxCrossEntropy(), Adam(model), epochs=1, progress=False).fit(X, y)
    assert model.modes == 3 and model.training


def test_a_dropped_trainer_frees_its_models_buffers_without_the_garbage_collector():
    """Each parameter holds its flat buffer and the buffer listed its parameters: a cycle, so a dropped
    model's weights and gradients (and its optimizer's state) lived on until a full garbage collection
    — a loop over trials held several models at once (64 MiB more resident per 8M-parameter model)."""
    import gc
    import pickle
    import weakref

    parts = moons_parts(300)
    enabled = gc.isenabled()
    gc.disable()
    try:
        trainer = make_trainer(None, epochs=1)
        trainer.fit(parts.X_train, parts.y_train)
        copied = pickle.loads(pickle.dumps(trainer))  # (a copy's buffers still list its parameters)
        assert copied.model.parameters()[0]._flat[0].params == [p for _, p in copied.model.flat_order()]
        weight = trainer.model.parameters()[0]
        alive = weakref.ref(weight), weakref.ref(weight._flat[0])
        del trainer, weight
        assert [ref() for ref in alive] == [None, None]
    finally:
        if enabled:
            gc.enable()


def test_a_later_fit_finishing_an_epoch_cut_short_is_refused_another_batch_size():
    """The epoch's steps are of its batches: with another trainer.batch_size it went on from its step
    number in other batches — examples skipped (64, then 128: steps 2 and 3 of 128 left examples
    128..256 of the shuffle out), or NumPy's "could not broadcast" where it had fewer steps now. Set
    back, the run goes on as the uninterrupted one; once the epoch is over, another size is taken."""
    s = moons_parts(600)
    straight = make_trainer(None, epochs=2)
    straight.fit(s.X_train, s.y_train)
    trainer = make_trainer(None, epochs=2, callbacks=[StopAtStep(2)])
    trainer.fit(s.X_train, s.y_train)
    assert (trainer.epoch, trainer.step) == (0, 2)
    for size in (128, 512):
        trainer.batch_size = size
        with pytest.raises(ValueError, match=rf"stopped in epoch 1 after step 2 of an epoch in batches of 64, and "
                                             rf"its batch_size is {size} now: set it back to 64"):
            trainer.fit(s.X_train, s.y_train)
        assert (trainer.epoch, trainer.step, len(trainer.history)) == (0, 2, 0)
    trainer.batch_size = 64
    assert trainer.fit(s.X_train, s.y_train)["train_cost"] == straight.history["train_cost"]
    for name, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(trainer.model.state_dict()[name], value, err_msg=name)
    trainer.batch_size, trainer.epochs = 128, 3
    assert len(trainer.fit(s.X_train, s.y_train)) == 3


class RefusesOnce(Callback):
    """A callback whose on_train_begin refuses a fit once, after early stopping's (a Checkpoint finding
    another run's unfinished checkpoint in its directory refuses so)."""
    order = 200

    def __init__(self):
        self.refuse = False

    def on_train_begin(self, trainer):
        if self.refuse:
            self.refuse = False
            raise RuntimeError("refused")


def test_a_later_fit_refused_before_its_first_step_leaves_the_best_weights_and_the_bests_as_they_were():
    """Early stopping's on_train_begin had put the run's last weights in over the best it restored
    (for the steps to go on from) and, for a fit on other data, reset its best: the refused fit left the
    model holding the last epoch's weights while history.best_epoch named another, and a fit on the first
    data after it was taken for one on other data (its best started afresh)."""
    s = moons_parts(300)
    straight = make_trainer(None, lr=0.1, epochs=8, callbacks=[EarlyStopping(patience=20)])
    straight.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    refuses, stopping = RefusesOnce(), EarlyStopping(patience=20)
    trainer = make_trainer(None, lr=0.1, epochs=4, callbacks=[stopping, refuses])
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    best, state = trainer.model.state_dict(), stopping.state_dict()
    assert trainer.history.best_epoch < 4  # (the best is not the last epoch: the weights differ)
    trainer.epochs = 8
    for data in ((s.X_train, s.y_train), (s.X_train[:100], s.y_train[:100])):  # the same data, and other data
        refuses.refuse = True
        with pytest.raises(RuntimeError, match="refused"):
            trainer.fit(*data, dev=(s.X_dev, s.y_dev))
        for name, value in best.items():
            np.testing.assert_array_equal(trainer.model.state_dict()[name], value, err_msg=name)
        assert stopping.state_dict()[0] == state[0]
    history = trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))  # the run goes on as the uninterrupted one
    assert history["dev_cost"] == straight.history["dev_cost"] and history.best_epoch == straight.history.best_epoch
    for a, b in zip(trainer.model.parameters(), straight.model.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())



def test_a_run_resumed_from_the_checkpoint_of_its_early_stop_stays_stopped(tmp_path):
    """Patience 1 stops the run at its first epoch without improvement, epoch k; resumed from the
    checkpoint written then, with the same patience, it trains no epoch more and says why it stopped."""
    s = moons_parts(300)
    first = make_trainer(None, lr=0.05, epochs=60, callbacks=[EarlyStopping(patience=1), Checkpoint(tmp_path / "c")])
    stopped = first.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    k = stopped.stopped_epoch
    assert k is not None and k < 60 and stopped["dev_cost"][k - 1] >= min(stopped["dev_cost"][:k - 1])
    resumed = make_trainer(None, lr=0.05, epochs=60, callbacks=[EarlyStopping(patience=1), Checkpoint(tmp_path / "c")])
    with pytest.warns(UserWarning, match=r"the checkpoint's run is over \(dev cost did not improve for 1 epoch\)"):
        history = resumed.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=tmp_path / "c")
    assert history["epoch"] == list(range(1, k + 1)) and resumed.epoch == k
    assert history.stopped_by == "dev cost did not improve for 1 epoch"

def test_a_first_fit_refused_before_its_first_step_leaves_the_model_and_early_stopping_untouched():
    """The first fit of a trainer refused by a later callback's on_train_begin: nothing was swapped in
    (there is no best yet), so the refusal is the error raised and the weights are those the model was made with."""
    s = moons_parts(300)
    refuses, stopping = RefusesOnce(), EarlyStopping(patience=20)
    trainer = make_trainer(None, lr=0.1, epochs=4, callbacks=[stopping, refuses])
    made = trainer.model.state_dict()
    refuses.refuse = True
    with pytest.raises(RuntimeError, match="^refused$"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    for name, value in made.items():
        np.testing.assert_array_equal(trainer.model.state_dict()[name], value, err_msg=name)
    assert (stopping.best, stopping.best_epoch, stopping.wait, stopping.best_state) == (np.inf, None, 0, None)

class RaisesAtEpoch(Callback):
    """A callback whose on_epoch_end, after early stopping's, records each epoch's dev cost and, at
    epoch ``at``, the model's weights, then raises."""
    order = 200

    def __init__(self, at):
        self.at, self.dev_costs, self.weights = at, {}, None

    def on_epoch_end(self, trainer, record):
        self.dev_costs[record["epoch"]] = record["dev_cost"]
        if record["epoch"] == self.at:
            self.weights = trainer.model.state_dict()
            raise RuntimeError("raised at the epoch's end")


def test_a_later_fit_that_trained_and_then_raised_leaves_early_stopping_and_the_weights_where_training_left_them():
    """A fit that ran steps and then failed (a callback raising at its second epoch's end) is no fit
    refused before its first step: early stopping keeps the best and wait its epochs gave, and the model
    the weights training left — not the state before the fit, nor the best weights put back."""
    s = moons_parts(300)
    raises, stopping = RaisesAtEpoch(at=6), EarlyStopping(patience=20)
    trainer = make_trainer(None, lr=0.1, epochs=4, callbacks=[stopping, raises])
    history = trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert history.best_epoch < 4  # (the best restored over the last weights: the next fit swaps them back)
    trainer.epochs = 8
    with pytest.raises(RuntimeError, match="raised at the epoch's end"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    costs = [raises.dev_costs[epoch] for epoch in range(1, 7)]
    best_epoch = 1 + min(range(6), key=lambda k: (costs[k], k))  # the first of the smallest: min_delta 0
    assert (stopping.best_epoch, stopping.wait) == (best_epoch, 6 - best_epoch)
    assert stopping.best == min(costs) and trainer.history.best_epoch is None
    for name, value in raises.weights.items():
        np.testing.assert_array_equal(trainer.model.state_dict()[name], value, err_msg=name)

def test_a_second_fit_of_a_trainer_while_its_fit_runs_is_refused_and_the_run_is_one_fits():
    """A notebook's cell run again while a background thread's fit of the trainer goes on (or a
    callback fitting its own trainer): the second fit is refused, saying so, before it changes
    anything — two fits at once interleaved their steps, one was told the other "was stopped inside
    a step", and the history held both fits' epochs. The fit that runs ends as it would alone, and a
    fit after it goes on as usual."""
    X, y = xdl.datasets.moons(200, noise=0.2, seed=0)
    errors = []

    class FitsAgain(Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] != 1:
                return
            def fit_again():
                try:
                    trainer.fit(X, y)
                except RuntimeError as e:
                    errors.append(str(e))
            other = threading.Thread(target=fit_again)
            other.start()
            other.join()
            fit_again()  # (in this thread too: a callback's own fit of its trainer)

    trainer = make_trainer(None, epochs=3, callbacks=[FitsAgain()])
    alone = make_trainer(None, epochs=3)
    history = trainer.fit(X, y)
    assert len(errors) == 2 and all("this trainer is fitting already" in e for e in errors), errors
    assert [r["epoch"] for r in history] == [1, 2, 3]
    alone.fit(X, y)
    for p, q in zip(trainer.model.parameters(), alone.model.parameters()):
        assert np.array_equal(p.data, q.data)
    trainer.epochs = 4
    assert [r["epoch"] for r in trainer.fit(X, y)] == [1, 2, 3, 4]  # (the fit let the trainer go)


class GuardsLockInterrupted:
    """The fit guards' lock where a Ctrl-C lands while a fit waits for it (another thread starting a
    fit holds it: Python's lock waits are interrupted by signals): once ``armed``, each acquire raises
    KeyboardInterrupt."""

    def __init__(self):
        self.lock, self.armed = threading.Lock(), False

    def __enter__(self):
        if self.armed:
            raise KeyboardInterrupt
        return self.lock.__enter__()

    def __exit__(self, *exc):
        return self.lock.__exit__(*exc)


class ArmsAtTheEnd(Callback):
    """Arms ``lock`` at the run's end (``on_train_end``: the fit's clean-up comes next)."""

    def __init__(self, lock):
        self.lock = lock

    def on_train_end(self, trainer):
        self.lock.armed = True


@pytest.mark.parametrize("kind", ["Trainer", "ManyTrainer"])
def test_a_ctrl_c_in_the_clean_up_of_a_fit_leaves_neither_the_trainer_nor_its_callbacks_fitting(monkeypatch, kind):
    """A Ctrl-C in a fit's own clean-up (here: while it waits for the guards' lock after the run's
    end) left the trainer marked as fitting and its EarlyStopping as in a fit running now: every
    later fit of the trainer was refused, "this trainer is fitting already", and so was another
    trainer's first fit with that callback, "in the fit of another trainer running now"."""
    lock = GuardsLockInterrupted()
    monkeypatch.setattr(xdl.train.fit_guards, "_RUNS_LOCK", lock)
    X, y = xdl.datasets.moons(100, noise=0.2, seed=0)

    def made(callbacks):
        if kind == "Trainer":
            return make_trainer(None, epochs=1, callbacks=callbacks)
        return xdl.train.ManyTrainer([xdl.config.TrainConfig(hidden=[4], epochs=1, patience=0, seed=0)],
                                     callbacks=callbacks)

    stopping = EarlyStopping(patience=5, monitor="train_cost", restore_best=False)
    trainer = made([stopping, ArmsAtTheEnd(lock)])
    with contextlib.suppress(KeyboardInterrupt):  # (the clean-up that needs no lock is not interrupted)
        trainer.fit(X, y)
    lock.armed = False
    made([stopping]).fit(X, y)  # another trainer's first fit with the callback: its run is not running
    trainer.callbacks = [EarlyStopping(patience=5, monitor="train_cost", restore_best=False)]
    if kind == "Trainer":
        trainer.epochs = 2
        assert [r["epoch"] for r in trainer.fit(X, y)] == [1, 2]  # a later fit of the trainer goes on
    else:  # (refused by what it is past: its run has ended — not by the guard)
        with pytest.raises(ValueError, match="every model of this batch has ended"):
            trainer.fit(X, y)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no interval timer (Windows)")
def test_a_ctrl_c_at_any_moment_of_a_fits_start_or_end_leaves_the_trainer_free():
    """Ctrl-C's KeyboardInterrupt lands between any two bytecodes where Python checks for signals:
    after a call, at a function's start. Fired by a timer at random moments of fits (their
    training stubbed out: the guards' code is all that runs), one that landed after the trainer was
    marked as fitting and before its clean-up removed the mark (inside a context manager's exit, or
    before its ``try``) left the mark: a later fit of the trainer, or of a new trainer made at a dead
    one's address, was refused as "fitting already"."""
    rng = np.random.default_rng(0)
    armed = [False]

    def interrupt(signum, frame):
        if armed[0]:
            armed[0] = False
            raise KeyboardInterrupt

    class Stubbed(Trainer):
        def __init__(self):  # (nothing a stubbed fit reads)
            pass

        def _fit(self, *args):
            return None

    previous = signal.signal(signal.SIGALRM, interrupt)
    refused = []
    try:
        for delay in rng.uniform(1e-6, 4e-5, size=4000):
            trainer = Stubbed()
            armed[0] = True
            try:
                try:
                    signal.setitimer(signal.ITIMER_REAL, delay)
                    trainer.fit(None, None)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    armed[0] = False
            except KeyboardInterrupt:
                pass
            except RuntimeError as e:  # (a mark a dead trainer left, met by this one at its address)
                refused.append(str(e))
                continue
            try:
                trainer.fit(None, None)
            except RuntimeError as e:
                refused.append(str(e))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not refused, (len(refused), refused[0])


def test_a_ctrl_c_once_the_run_has_ended_tells_no_callback_of_an_error_after_its_end(tmp_path):
    """The fit ended as it would (each callback's on_train_end), then raised Interrupted(over=True) inside
    the block that tells callbacks of an error: each had on_exception too, which is called "instead of
    on_train_end" — a logger that closed its file at the end and notes an error in it raised "I/O
    operation on closed file", and that error went to the caller in the Interrupted's place."""
    from xdl.train import Interrupted

    class Log(Callback):
        def on_train_begin(self, trainer):
            self.file = open(tmp_path / "log.txt", "w")

        def on_train_end(self, trainer):
            self.file.close()

        def on_exception(self, trainer, error):
            self.file.write(f"failed: {error}\n")
            self.file.close()

    parts = moons_parts(1000)  # 600 examples, batches of 64: 10 steps per epoch
    with pytest.raises(Interrupted, match="as its run ended") as stop:
        make_trainer(None, epochs=3, augment=SignalAt(30), callbacks=[Log()]).fit(parts.X_train, parts.y_train)
    assert stop.value.over and (tmp_path / "log.txt").read_text() == ""


def test_a_later_fit_refused_before_its_first_step_leaves_the_checkpoints_best_as_it_was(tmp_path):
    """A refused fit on other data had set the Checkpoint's best aside (its bests start afresh there): the
    run's next fit, on its own data, wrote its first epoch over best.npz however much worse it was."""
    s, other = moons_parts(300), moons_parts(300, seed=1)
    checkpoint, refuses = Checkpoint(tmp_path), RefusesOnce()
    trainer = make_trainer(None, lr=0.05, epochs=3, callbacks=[checkpoint, refuses])
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    best, trainer.epochs = checkpoint.best, 4
    refuses.refuse = True
    with pytest.raises(RuntimeError, match="refused"):
        trainer.fit(other.X_train, other.y_train, dev=(other.X_dev, other.y_dev))
    assert checkpoint.best == best
    trainer.optimizer.lr = 5.0  # an epoch far worse than the best
    history = trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert history["dev_cost"][-1] > best and checkpoint.best == best


def test_a_fit_on_other_data_that_ends_before_its_first_step_leaves_the_data_measured_last():
    """A fit on other data that failed after every callback's on_train_begin but before its first step
    (a parameter frozen there, refused at the epoch's start) had recorded the new data as measured:
    early stopping put its best on the first data back, and the next fit on the new data, taken for the
    same, compared its epochs with that best. It goes on as the fit on the new data would have."""
    s, other = moons_parts(300), moons_parts(300, seed=1)

    class FreezesOnce(Callback):
        freeze = False

        def on_train_begin(self, trainer):
            if self.freeze:
                trainer.model.parameters()[0].requires_grad = self.freeze = False

    def run(refused):
        freezes, stopping = FreezesOnce(), EarlyStopping(patience=20)
        trainer = make_trainer(None, lr=0.05, epochs=3, callbacks=[stopping, freezes])
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
        trainer.epochs = 6
        if refused:
            freezes.freeze = True
            with pytest.raises(ValueError, match="frozen now"):
                trainer.fit(other.X_train, other.y_train, dev=(other.X_dev, other.y_dev))
            trainer.model.parameters()[0].requires_grad = True  # (the user's fix)
        trainer.fit(other.X_train, other.y_train, dev=(other.X_dev, other.y_dev))
        return trainer, stopping

    (straight, s_stop), (refused, r_stop) = run(False), run(True)
    assert (r_stop.best, r_stop.best_epoch) == (s_stop.best, s_stop.best_epoch)
    for a, b in zip(refused.model.parameters(), straight.model.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_diagnose_keeps_a_base_error_the_model_beats_only_on_its_training_examples():
    """A training error below the base error with the dev error above it was told "lower it": the model
    had learned its training examples' label noise, not beaten the base error."""
    # 20% of labels flipped (the Bayes error is 20%): a big unregularized model learns its 300 examples
    # (train 0%, dev 31%) and was told to lower the base error, which is right
    d = xdl.diagnose({"train_accuracy": 1.0, "dev_accuracy": 0.693}, base_error=0.2)
    assert d.verdict == "high variance"
    assert not any("lower it" in s for s in d.next_steps), d.next_steps
    assert d.next_steps[0].startswith("the training error is below the base error 20.00%, the dev error is not")
    # below it on the dev set too: the base error is too high
    d = xdl.diagnose({"train_accuracy": 0.85, "dev_accuracy": 0.85}, base_error=0.2)
    assert d.next_steps[0].endswith("lower it")


def test_diagnose_says_the_model_memorized_noise_only_where_its_variance_is_high():
    """Train error 17%, dev 18.5%, base 20% ("good", variance 1.5%) was told "the dev error is not [below the
    base error] … that is variance": the dev error is below it, and there is no variance to speak of."""
    for dev_accuracy in (0.815, 0.81):
        d = xdl.diagnose({"train_accuracy": 0.83, "dev_accuracy": dev_accuracy}, base_error=0.2)
        assert d.verdict == "good" and d.next_steps[0].endswith("lower it"), d.next_steps
    d = xdl.diagnose({"train_accuracy": 0.83, "dev_accuracy": 0.79}, base_error=0.2)  # variance 4%: memorized
    assert d.verdict == "high variance" and "the dev error is not" in d.next_steps[0]
    # the dev error below the base error, within tolerance: said so, not "is not" (dev 19%, base 20%)
    d = xdl.diagnose({"train_accuracy": 1.0, "dev_accuracy": 0.81}, base_error=0.2)
    assert d.verdict == "high variance" and "the dev error only by 1.00%, within tolerance: the model has learned" \
        in d.next_steps[0], d.next_steps


def test_a_refused_resume_leaves_the_trainer_and_its_callbacks_as_they_were(tmp_path):
    """A resume from a directory with no checkpoint (a typo) was refused, but had set trainer.resumed and
    taken its callbacks as this trainer's run's: the run they belonged to was then refused its next fit
    ("this EarlyStopping was in another trainer's fit since this trainer's last")."""
    s = moons_parts(m=64)
    X, y = s.X_train, s.y_train

    def trainer(stopping):
        model = xdl.nn.mlp(2, [4], 2)
        return Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=1e-2), batch_size=32, epochs=1,
                       callbacks=[stopping], progress=False, seed=0)

    stopping = EarlyStopping(monitor="train_cost", patience=10)
    first = trainer(stopping)
    first.fit(X, y)
    second = trainer(stopping)
    with pytest.raises(FileNotFoundError, match="resume: no checkpoint at"):
        second.fit(X, y, resume=tmp_path / "no-such-run")
    assert second.resumed is False
    first.epochs = 2
    assert first.fit(X, y)["epoch"] == [1, 2]


def test_a_fit_refused_by_its_checkpoint_leaves_the_callbacks_to_the_run_they_were(tmp_path):
    """A Checkpoint refusing in its own on_train_begin (its directory holds another trainer's unfinished run)
    changed nothing, but its fit took the callbacks as its run's: the run they belonged to — the one whose
    checkpoint that is — was refused its next fit ("was in another trainer's fit since")."""
    from xdl.train import Interrupted
    s = moons_parts(m=64)
    X, y = s.X_train, s.y_train

    class InterruptAfterFirst(Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 1:
                os.kill(os.getpid(), signal.SIGINT)

    def trainer(callbacks):
        model = xdl.nn.mlp(2, [4], 2)
        return Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=1e-2), batch_size=32, epochs=2,
                       callbacks=callbacks, progress=False, seed=0)

    checkpoint = Checkpoint(tmp_path)
    first = trainer([checkpoint, InterruptAfterFirst()])
    with pytest.raises(Interrupted):
        first.fit(X, y)
    with pytest.raises(FileExistsError, match="holds the checkpoint of an unfinished run"):
        trainer([checkpoint]).fit(X, y)
    first.callbacks = [checkpoint]
    assert first.fit(X, y)["epoch"] == [1, 2]


def test_a_resume_failing_after_a_callback_took_the_checkpoints_state_keeps_it_from_its_run(tmp_path):
    """A resume whose later callback's load_state_dict failed had loaded the checkpoint's state into the
    callbacks before it, yet put them back as their former run's: that run's next fit went on from the
    checkpoint's best, and its EarlyStopping restored the checkpoint's best weights into its model."""
    s = moons_parts(m=64)
    X, y = s.X_train, s.y_train

    class Count(Callback):
        order = 60

        def __init__(self, fail=False):
            self.n, self.fail = 0, fail

        def on_epoch_end(self, trainer, record):
            self.n += 1

        def state_dict(self):
            return {"n": self.n}, {}

        def load_state_dict(self, state, arrays):
            if self.fail:
                raise RuntimeError("cannot load")
            self.n = state["n"]

    def trainer(callbacks, epochs):
        model = xdl.nn.mlp(2, [4], 2)
        return Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=1e-2), batch_size=32, epochs=epochs,
                       callbacks=callbacks, progress=False, seed=0)

    trainer([EarlyStopping(monitor="train_cost", patience=7), Count(), Checkpoint(tmp_path / "a")], 2).fit(X, y)
    stopping = EarlyStopping(monitor="train_cost", patience=7)
    first = trainer([stopping], 1)
    first.fit(X, y)
    with pytest.raises(ValueError, match="Count.load_state_dict"):
        trainer([stopping, Count(fail=True), Checkpoint(tmp_path / "b")], 4).fit(X, y, resume=tmp_path / "a")
    first.epochs = 2
    with pytest.raises(ValueError, match="this EarlyStopping was in another trainer's fit since"):
        first.fit(X, y)


def test_a_resume_failing_after_its_load_keeps_the_callbacks_from_their_former_run(tmp_path):
    """A resume that loaded the checkpoint's state into its callbacks, then failed (an earlier
    callback's on_train_begin raised), leaves them holding the checkpoint's state: the run they were
    in before is refused its next fit, which would go on from that checkpoint's best."""
    s = moons_parts(m=64)
    X, y = s.X_train, s.y_train

    def trainer(callbacks, epochs):
        model = xdl.nn.mlp(2, [4], 2)
        return Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=1e-2), batch_size=32, epochs=epochs,
                       callbacks=callbacks, progress=False, seed=0)

    class SetUp(Callback):
        def __init__(self, fail):
            self.fail = fail

        def on_train_begin(self, trainer):
            if self.fail:
                raise KeyError("a bug in my logger's set-up")

    saved = EarlyStopping(monitor="train_cost", patience=7)
    trainer([SetUp(fail=False), saved, Checkpoint(tmp_path / "a")], 2).fit(X, y)
    stopping = EarlyStopping(monitor="train_cost", patience=7)
    first = trainer([stopping], 1)
    first.fit(X, y)
    with pytest.raises(KeyError, match="set-up"):  # (SetUp's on_train_begin runs before stopping's)
        trainer([SetUp(fail=True), stopping, Checkpoint(tmp_path / "b")], 4).fit(X, y, resume=tmp_path / "a")
    assert stopping.state_dict()[0] == saved.state_dict()[0]  # the checkpoint's, not first's run's
    first.epochs = 2
    with pytest.raises(ValueError, match="this EarlyStopping was in another trainer's fit since"):
        first.fit(X, y)


def test_a_control_files_stop_that_is_not_true_or_false_is_refused_and_the_run_goes_on(tmp_path, monkeypatch):
    """stop = "yes" (a string, truthy) is refused, named, and set aside: the run trains its epochs."""
    from xdl.train import Control

    monkeypatch.setattr(xdl.train.control, "SETTLE_SECONDS", 0.0)
    s = moons_parts(300)
    (tmp_path / "control.toml").write_text('stop = "yes"\n')
    with pytest.warns(UserWarning, match=r"control.toml at epoch 1 not applied: stop must be true or false, got 'yes'"):
        history = make_trainer(None, epochs=2, callbacks=[Control(tmp_path)]).fit(s.X_train, s.y_train)
    assert len(history) == 2 and history.stopped_by is None
    assert (tmp_path / "control-rejected-epoch-1.toml").read_text() == 'stop = "yes"\n'


def test_binary_cross_entropy_running_train_accuracy_is_each_examples_share_of_right_labels():
    """eval_train=False: the epoch's train accuracy sums each example's share of right yes/no labels
    batch by batch; with weights that do not move (a rate of 1e-30) it is the evaluation's."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4)).astype(np.float32)
    Y = (rng.random((50, 3)) < 0.5).astype(np.float32)
    xdl.seed(0)
    model = xdl.nn.mlp(4, [8], 3)
    trainer = Trainer(model, xdl.losses.BinaryCrossEntropy(), xdl.optim.SGD(model, lr=1e-30), batch_size=16,
                      epochs=1, eval_train=False, progress=False, seed=0)
    history = trainer.fit(X, Y)
    accuracy = history.final()["train_accuracy"]
    assert accuracy == pytest.approx(trainer.evaluate(X, Y)["accuracy"], abs=1e-12) and 0 < accuracy < 1


def test_in_history_asks_for_a_column_by_name_and_for_a_record_by_value():
    history = make_trainer(None, epochs=2).fit(*moons_parts(200)[:2])
    assert "train_cost" in history and "val_loss" not in history
    assert history.records[1] in history and {"epoch": 3} not in history


def test_a_logit_of_exactly_0_is_a_no_for_the_accuracy_as_for_predict():
    """Binary cross-entropy's accuracy counts a label right when logit > 0 is target > 0.5, as
    `Module.predict` says yes for logit > 0 only: a 0 logit (zero weights) is a no, and so is a soft
    target of 0.5."""
    xdl.seed(0)
    model = xdl.nn.mlp(2, [4], 2)
    with xdl.no_grad():
        for p in model.parameters():
            p.data[...] = 0
    X = np.ones((4, 2), dtype=np.float32)
    Y = np.array([[0, 0], [0, 1], [1, 0], [0.5, 0]], dtype=np.float32)
    trainer = Trainer(model, xdl.losses.BinaryCrossEntropy(), xdl.optim.SGD(model, lr=0.1), progress=False)
    assert trainer.evaluate(X, Y)["accuracy"] == 0.75  # 6 of the 8 targets are no (0.5 among them)
    assert not np.asarray(model.predict(X)).any()


def test_a_fit_called_under_no_grad_trains_as_outside_it_and_leaves_the_block_as_it_was():
    """A notebook cell's ``with xdl.no_grad():`` around a fit (or a grad mode a Ctrl-C left off):
    its backward failed with "backward() on a tensor that does not require grad"."""
    def run(block):
        xdl.seed(0)
        trainer = make_trainer(None, epochs=2)
        with block():
            trainer.fit(*moons_parts(200)[:2])
            assert not xdl.is_grad_enabled() if block is xdl.no_grad else xdl.is_grad_enabled()
        return [p.numpy() for p in trainer.model.parameters()]

    for a, b in zip(run(xdl.no_grad), run(contextlib.nullcontext)):
        np.testing.assert_array_equal(a, b)
    configs = [xdl.config.TrainConfig(dataset="moons", hidden=[4], epochs=1, patience=0, seed=s) for s in (0, 1)]
    X, y = moons_parts(200)[:2]
    with xdl.no_grad():
        results = xdl.train.fit_many(configs, X, y)
    assert [r.status for r in results] == ["completed", "completed"]


def test_a_historys_epochs_are_integers_or_none_and_a_damaged_file_is_named(tmp_path):
    """``History(stopped_epoch=2.5)`` (or "2", a 0-d array, True) was kept, and its save then failed as
    no JSON; a NumPy integer is the int it holds."""
    assert type(xdl.History(stopped_epoch=np.int64(2), best_epoch=np.int32(1)).stopped_epoch) is int
    assert xdl.History(stopped_epoch=0).stopped_epoch == 0  # (a stop inside epoch 1, by a step's hook)
    for bad in (2.5, "2", np.array(1), True, -1):
        with pytest.raises(ValueError, match=r"^History: best_epoch must be an epoch \(an integer ≥ 0\) or None"):
            xdl.History(best_epoch=bad)
    (tmp_path / "history.json").write_text('{"records": [], "stopped_epoch": "2"}')
    with pytest.raises(ValueError, match=r"^History.load: '.*history.json' is damaged: History: stopped_epoch must"):
        xdl.History.load(tmp_path / "history.json")


def test_a_fits_evaluation_of_each_epoch_records_no_graph():
    """The train and dev passes at an epoch's end are evaluation, as `Trainer.evaluate`'s: within the
    fit, which records, each batch's forward built a graph, holding its activations to the batch's end."""
    recorded = []

    def loss(out, labels):
        recorded.append(out.requires_grad)
        return SoftmaxCrossEntropy()(out, labels)

    X, y, X_dev, y_dev = moons_parts(200)[:4]
    trainer = make_trainer(None, epochs=1, batch_size=len(X))
    trainer.loss = loss
    trainer.fit(X, y, dev=(X_dev, y_dev))
    assert recorded[-3:] == [True, False, False]  # the epoch's one step, then its train and dev passes


@pytest.mark.parametrize("monitor, said", [("val_loss", r"got 'val_loss' \(Keras's 'val_loss' is 'dev_cost' here\)"),
                                           (None, "got None")])
def test_a_callback_of_ones_own_that_reads_monitor_names_a_column_the_run_has_before_any_epoch(monitor, said):
    """`Callback.reads_monitor`: a callback of one's own reading ``record[self.monitor]`` was
    checked for a dev set and a loss with an accuracy, not for its monitor being a column at all —
    Keras's "val_loss" read None at every epoch's end, unsaid, and no ``monitor`` attribute failed
    there as an AttributeError."""
    seen = []

    class Watch(Callback):
        reads_monitor = True

        def __init__(self, monitor):
            if monitor is not None:
                self.monitor = monitor

        def on_epoch_end(self, trainer, record):
            seen.append(record.get(getattr(self, "monitor", None)))

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = xdl.nn.mlp(4, [8], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=0.1), epochs=2, progress=False,
                      callbacks=[Watch(monitor)])
    with pytest.raises(ValueError, match=r"^Watch \(reads_monitor True\): monitor must be one of dev_cost, "
                                         r"dev_accuracy, train_cost, train_accuracy, " + said):
        trainer.fit(X, y, dev=(X, y))
    assert seen == [] and trainer.epoch == 0
    trainer.callbacks[0].monitor = "dev_cost"  # (a column the run measures: it goes on)
    trainer.fit(X, y, dev=(X, y))
    assert len(seen) == 2 and all(isinstance(v, float) for v in seen)


def test_a_control_file_whose_rename_failed_is_not_applied_again_at_the_next_epoch(tmp_path, monkeypatch):
    """Applied at epoch 2, its rename failing once (an editor holding it open on Windows, an I/O
    error): the file was forgotten as applied, read again at epoch 3's end as a new one, applied and
    noted a second time, and named control-applied-epoch-3.toml."""
    from pathlib import Path
    from xdl.train import Control

    parts = moons_parts(200)
    run = tmp_path / "run"
    run.mkdir()
    real_replace, failed = Path.replace, []

    def replace(self, target):
        if self.name == "control.toml" and not failed:
            failed.append(target)
            raise PermissionError(13, "Permission denied", str(self))
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", replace)
    trainer = make_trainer(None, epochs=4, callbacks=[WriteControl(run, 2, "lr = 0.0005\n"), Control(run),
                                                      Checkpoint(run / "checkpoints")])
    history = trainer.fit(parts.X_train, parts.y_train, dev=(parts.X_dev, parts.y_dev))
    assert failed and [r.get("control") for r in history] == [
        None, "control.toml at epoch 2: lr = 0.0005 from epoch 3", None, None]
    assert sorted(p.name for p in run.glob("control*")) == ["control-applied-epoch-2.toml"]
    # its rename failing to the run's end: said, as a new run in the directory would obey it at its first epoch
    def held_open(self, target):
        if self.name == "control.toml":
            raise PermissionError(13, "Permission denied", str(self))
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", held_open)
    other = tmp_path / "other"
    other.mkdir()
    trainer = make_trainer(None, epochs=3, callbacks=[WriteControl(other, 2, "lr = 0.0005\n"), Control(other)])
    with pytest.warns(UserWarning, match=r"^control.toml was applied but could not be renamed "
                                         r"control-applied-epoch-2.toml: remove it before a new run"):
        trainer.fit(parts.X_train, parts.y_train, dev=(parts.X_dev, parts.y_dev))


def test_best_npz_keeps_the_first_of_epochs_that_tie_as_keras_does(tmp_path):
    """Epochs that measure the same value (a rate of 0 here; accuracies on a small dev set tie often):
    best.npz stays the first of them, as Keras's ModelCheckpoint(save_best_only=True) keeps it — a
    later tie is no improvement, and writing it moved the best epoch on without the run doing better."""
    from xdl.serialization import read_extra

    X, y = xdl.datasets.moons(100, noise=0.2, seed=0)
    xdl.seed(0)
    model = xdl.nn.mlp(2, [4], 2)
    history = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=0.0), epochs=3, progress=False,
                      callbacks=[Checkpoint(tmp_path)]).fit(X, y, dev=(X[:20], y[:20]))
    assert len(set(history["dev_cost"])) == 1
    assert read_extra(tmp_path / "best.npz")[0]["epoch"] == 1


@pytest.mark.parametrize("rule", ["Adam", "RMSprop"])
def test_an_optimizer_state_that_overflows_is_a_divergence_named_with_its_weight_decay(rule):
    """A weight_decay of 1e20 (coupled: g + wd·p) overflows the second moment Adam and RMSprop square it into
    (v = inf) while the weights and costs stay finite: each step m̂/(√v̂ + ε) was 0 from there, and the run
    ended as completed, the weights it decays no longer learning. Stopped as diverged at the epoch's end,
    told to lower the decay (the rate does not scale the state); a moderate decay trains on."""
    s = moons_parts(200)
    for decay, fails in ((1e20, True), (1e-2, False)):
        xdl.seed(0)
        model = xdl.nn.mlp(2, [8], 2)
        optimizer = getattr(xdl.optim, rule)(xdl.optim.param_groups(model, decay), lr=1e-3)
        trainer = Trainer(model, SoftmaxCrossEntropy(), optimizer, epochs=2, progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (NumPy's overflow)
            if not fails:
                trainer.fit(s.X_train, s.y_train)
                assert not optimizer.non_finite_state() and len(trainer.history) == 2
                continue
            with pytest.raises(FloatingPointError, match=r"the optimizer's state \(group 0's (v|s)\) became NaN or Inf "
                                                         r"in epoch 1: .*try a smaller weight_decay \(now 1e\+20\)"):
                trainer.fit(s.X_train, s.y_train)
        assert trainer.history.diverged.startswith("the optimizer's state (group 0's ")


@pytest.mark.parametrize("epochs, more", [(1, 1), (2, 3), (3, 1)])
def test_fit_given_epochs_says_how_to_train_on_and_the_way_said_trains_on(epochs, more):
    """A second ``trainer.fit(X, y, epochs=10)``, Keras's way to train 10 more: the refusal said the Trainer's
    epochs are the run's total, not how a run trains on (its "trainer.epochs += 10" tip was lost)."""
    s = moons_parts(200)
    trainer = make_trainer(None, epochs=epochs)
    trainer.fit(s.X_train, s.y_train)
    with pytest.raises(TypeError, match=r"Trainer.fit\(\) takes no option epochs=: Trainer\(epochs=…\), the run's "
                                        r"total; to train on after a fit, raise it and fit again: trainer.epochs \+= "
                                        r"10 trains 10 more \(Keras's fit\(epochs=20, initial_epoch=10\)\)"):
        trainer.fit(s.X_train, s.y_train, epochs=more)
    trainer.epochs += more  # the way said
    trainer.fit(s.X_train, s.y_train)
    assert len(trainer.history) == epochs + more and trainer.epoch == epochs + more


@pytest.mark.parametrize("option, way", [
    ("validation_data", r"dev=\(X_dev, y_dev\)"), ("validation_split", r"xdl.data.split"),
    ("epochs", r"Trainer\(epochs="), ("batch_size", r"Trainer\(batch_size="), ("callbacks", r"Trainer\(callbacks="),
    ("verbose", r"Trainer\(progress="), ("shuffle", r"each epoch is shuffled"), ("initial_epoch", r"resume="),
    ("class_weight", r"not offered"), ("sample_weight", r"not offered"), ("devv", r"its options: dev, resume")])
def test_fit_says_where_a_keras_option_is(backend, option, way):
    """Keras's ``model.fit(X, y, validation_data=…, epochs=…)``: Python's "unexpected keyword argument"
    named the keyword and not where it is here. Refused before any work: the trainer trains nothing."""
    s = moons_parts(200)
    trainer = make_trainer(backend, epochs=2)
    before = trainer.model.state_dict()
    with pytest.raises(TypeError, match=rf"Trainer.fit\(\) takes no option {option}=: .*{way}"):
        trainer.fit(s.X_train, s.y_train, **{option: (s.X_dev, s.y_dev)})
    assert trainer.epoch == 0 and all(np.array_equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev)).final()["epoch"] == 2  # (dev= is the way)


def test_a_resume_from_a_checkpoint_of_other_callbacks_names_their_counts_and_changes_nothing(tmp_path):
    """A checkpoint whose callbacks' states are not one per callback of the run (an older file, or one
    edited by hand: the provenance names the same callbacks) is refused naming both counts and the file,
    before the model or the file changes."""
    from conftest import edit_saved

    s = moons_parts()
    make_trainer(None, epochs=1, callbacks=[Checkpoint(tmp_path)]).fit(s.X_train, s.y_train)
    path = tmp_path / "checkpoint.npz"
    for extra_states in (1, 2):
        edit_saved(path, lambda header, arrays: header["extra"]["callbacks"].append({}))
        edited = path.read_bytes()
        trainer = make_trainer(None, epochs=2, callbacks=[Checkpoint(tmp_path)])
        before = trainer.model.state_dict()
        with pytest.raises(ValueError, match=rf"resume: the checkpoint holds the state of {1 + extra_states} "
                                             rf"callbacks, this trainer has 1 callback \('.*checkpoint\.npz'\)"):
            trainer.fit(s.X_train, s.y_train, resume=tmp_path)
        assert path.read_bytes() == edited
        after = trainer.model.state_dict()
        assert all(np.array_equal(before[name], after[name]) for name in before)


@pytest.mark.parametrize("text, said", [
    ("learning_rate = 0.1\n", r"unknown key\(s\) learning_rate \(known: lr, stop\)"),
    ("lr = 0.01\nstop = false\nepochs = 9\nbatch = 2\n", r"unknown key\(s\) batch, epochs \(known: lr, stop\)"),
    ("stop = 1\n", r"stop must be true or false, got 1"),
    ("stop = \"no\"\n", r"stop must be true or false, got 'no'"),
    ("lr = 0\n", r"lr must be > 0, got 0 \(to end the run, write stop = true\)"),
    ("lr = -0.0\n", r"lr must be > 0, got -0\.0"),
    ("lr = true\n", r"lr is True: a learning rate must be"),
    ("lr = \"0.1\"\n", r"lr is '0\.1': a learning rate must be"),
    ("lr = inf\n", r"lr is inf: a learning rate must be"),
    ("lr = 1e-3\nstop = tru\n", r""),  # (not TOML: its parser's words)
])
def test_a_rejected_control_file_is_named_set_aside_and_changes_nothing(tmp_path, text, said):
    """Every control file a run cannot apply is said (a warning and the epoch's record, naming what is
    wrong), renamed at once, and changes neither the rate nor the run's length."""
    from xdl.train import Control

    parts = moons_parts(200)
    plain = make_trainer(None, epochs=3, lr=1e-2).fit(parts.X_train, parts.y_train)
    trainer = make_trainer(None, epochs=3, lr=1e-2, callbacks=[WriteControl(tmp_path, 1, text), Control(tmp_path)])
    with pytest.warns(UserWarning, match=r"control\.toml at epoch 1 not applied: " + said):
        history = trainer.fit(parts.X_train, parts.y_train)
    assert "not applied" in history[0]["control"] and len(history) == 3
    assert history["lr"] == plain["lr"] and history["train_cost"] == plain["train_cost"]
    assert (tmp_path / "control-rejected-epoch-1.toml").read_text() == text
    assert not (tmp_path / "control.toml").exists()


def test_two_checkpoints_writing_into_one_directory_are_refused_before_any_work(tmp_path):
    """Two Checkpoint callbacks of one fit, a Trainer's or fit_many's, whose directories are the same
    however spelled (a trailing slash, a '..', a symbolic link) would write over each other's files:
    refused naming the directory before anything is made or trained."""
    from xdl.config import TrainConfig
    from xdl.train import fit_many

    s = moons_parts(100)
    (tmp_path / "link").symlink_to(tmp_path / "run", target_is_directory=True)
    spellings = [str(tmp_path / "run"), str(tmp_path / "run") + os.sep, str(tmp_path / "run" / ".." / "run"),
                 str(tmp_path / "link")]
    for i, a in enumerate(spellings):
        for b in spellings[i:]:
            callbacks = [Checkpoint(a), Checkpoint(b)]
            trainer = make_trainer(None, epochs=1, callbacks=callbacks)
            before = trainer.model.state_dict()
            with pytest.raises(ValueError, match=r"callbacks: two Checkpoint callbacks write into '.*'; give each "
                                                 r"its own directory"):
                trainer.fit(s.X_train, s.y_train)
            assert not (tmp_path / "run").exists() and len(trainer.history) == 0
            assert all(np.array_equal(before[n], v) for n, v in trainer.model.state_dict().items())
            with xdl.use("numpy"), pytest.raises(ValueError, match=r"two Checkpoint callbacks write into"):
                fit_many([TrainConfig(hidden=[4], epochs=1, patience=0, progress=False)], s.X_train, s.y_train,
                         callbacks=[Checkpoint(a), Checkpoint(b)])
            assert not (tmp_path / "run").exists()


def test_two_checkpoints_writing_into_one_directory_are_named_by_the_first_of_them_as_given(tmp_path):
    """Among three Checkpoints, the refusal names the directory two of them share, spelled as the
    first of those two was given — not the first Checkpoint's, which may be another directory."""
    import itertools

    s = moons_parts(100)
    (tmp_path / "link").symlink_to(tmp_path / "run", target_is_directory=True)
    one, same = str(tmp_path / "run"), str(tmp_path / "link")
    for order in itertools.permutations([str(tmp_path / "other"), one, same]):
        named = next(d for d in order if d in (one, same))  # the first of the two that share a directory
        trainer = make_trainer(None, epochs=1, callbacks=[Checkpoint(d) for d in order])
        said = rf"^callbacks: two Checkpoint callbacks write into {re.escape(repr(named))}; give each its own"
        with pytest.raises(ValueError, match=said):
            trainer.fit(s.X_train, s.y_train)
        assert not (tmp_path / "run").exists() and not (tmp_path / "other").exists()


@pytest.mark.parametrize("callback", [object(), "Checkpoint", EarlyStopping, None])
def test_a_callback_that_is_no_callback_instance_is_named_when_the_trainer_is_made(callback):
    with pytest.raises(TypeError, match=r"callbacks must be xdl.train.Callback instances, got "):
        make_trainer(None, epochs=1, callbacks=[callback])


@pytest.mark.parametrize("every, written", [(1, [1, 2, 3, 4, 5]), (2, [None, 2, 2, 4, 5]), (None, [None] * 4 + [5])])
def test_a_checkpoint_every_n_epochs_writes_at_each_nth_epoch_and_at_the_runs_end(tmp_path, every, written):
    """`Checkpoint(every=n)` writes checkpoint.npz at the end of epochs n, 2n, … and of the run's last
    epoch (None: at the end only): what a crash resumes from is the last of them, seen after each
    epoch by a callback that runs after the Checkpoint's."""
    class Seen(Callback):
        order = 200  # (after Checkpoint's 100)

        def __init__(self):
            self.at = []

        def on_epoch_end(self, trainer, record):
            self.at.append(None if trainer.last_checkpoint is None else trainer.last_checkpoint_at[0])

    s = moons_parts(200)
    seen = Seen()
    make_trainer(None, epochs=5, callbacks=[Checkpoint(tmp_path, every=every), seen]).fit(s.X_train, s.y_train)
    assert seen.at == written


@pytest.mark.parametrize("seed", [0, 1, 7, 2**40])
def test_a_configs_model_draws_its_weights_as_after_seeding_with_its_seed(seed):
    """`TrainConfig.build_model` draws as after ``xdl.seed(seed)`` (with a generator of its own): the model of
    each seed is that one, the models of two seeds differ, and its dropout is the config's, after each hidden
    activation."""
    config = xdl.config.TrainConfig(hidden=[6, 5], seed=seed, dropout=0.25)
    built = config.build_model(4, 3)
    xdl.seed(seed)
    expected = xdl.nn.mlp(4, [6, 5], 3, activation=config.activation, init=config.init,
                          batch_norm=config.batch_norm, dropout=0.25)
    assert built.state_dict().keys() == expected.state_dict().keys()
    for name, value in expected.state_dict().items():
        np.testing.assert_array_equal(built.state_dict()[name], value, err_msg=name)
    other = xdl.config.TrainConfig(hidden=[6, 5], seed=seed + 1, dropout=0.25).build_model(4, 3)
    assert not np.array_equal(other.state_dict()["0.weight"], built.state_dict()["0.weight"])
    rates = [layer.rate for layer in built if isinstance(layer, xdl.nn.Dropout)]
    assert rates == [0.25, 0.25], built


@pytest.mark.parametrize("activation, batch_norm, layers", [
    ("tanh", False, ["Dense", "Tanh", "Dropout", "Dense", "Tanh", "Dropout", "Dense"]),
    ("sigmoid", True, ["Dense", "BatchNorm", "Sigmoid", "Dropout", "Dense", "BatchNorm", "Sigmoid", "Dropout",
                       "Dense"]),
    ("relu", False, ["Dense", "ReLU", "Dropout", "Dense", "ReLU", "Dropout", "Dense"])])
def test_a_configs_model_has_its_activation_and_batch_norm_after_each_hidden_layer(activation, batch_norm, layers):
    """`TrainConfig.build_model`: each hidden Dense layer of ``hidden``'s sizes, then batch norm where
    ``batch_norm`` is set, the config's activation and its dropout; the output layer last."""
    config = xdl.config.TrainConfig(hidden=[6, 5], activation=activation, batch_norm=batch_norm)
    built = config.build_model(4, 3)
    assert [type(layer).__name__ for layer in built] == layers
    assert [layer.out_features for layer in built if isinstance(layer, xdl.nn.Dense)] == [6, 5, 3]


def test_with_augmentation_the_input_scaling_is_measured_on_the_examples_and_their_augmented_copies():
    """Measured on ``X_train`` and `AUGMENTED_COPIES` copies augmented with the stream [seed, 2**30] (what
    `build_standardize` documents): the mean and spread of those 5 sets together, computed here with NumPy."""
    X, _ = xdl.datasets.digits()
    X = X[:300]
    for options in (dict(augment_shift=1, seed=3), dict(augment_noise=0.5, seed=4)):
        config = xdl.config.TrainConfig(**options)
        rng = np.random.default_rng([config.seed, 1 << 30])
        copies = [config.build_augment()(np.array(X, dtype=np.float32), rng) for _ in range(4)]
        together = np.concatenate([X.astype(np.float32), *copies]).astype(np.float64)
        layer = config.build_standardize(X)
        np.testing.assert_allclose(layer.mean, together.mean(axis=0), rtol=1e-5, atol=1e-6, err_msg=str(options))
        np.testing.assert_allclose(layer.scale, together.std(axis=0), rtol=1e-4, atol=1e-6, err_msg=str(options))


@pytest.mark.parametrize("optimizer, settings", [
    ("rmsprop", {"lr": 0.003, "beta": 0.8, "eps": 0.001}),
    ("adam", {"lr": 0.003, "beta1": 0.8, "beta2": 0.95, "eps": 0.001}),
    ("adamw", {"lr": 0.003, "beta1": 0.8, "beta2": 0.95, "eps": 0.001, "weight_decay": 0.0}),
    ("momentum", {"lr": 0.003, "beta": 0.8})])
def test_a_configs_optimizer_takes_each_setting_it_reads(optimizer, settings):
    """`TrainConfig.build_optimizer` gives the optimizer the config's settings it reads (`OPTIMIZERS`): an eps set
    for RMSprop was left at the optimizer's own default."""
    config = xdl.config.TrainConfig(optimizer=optimizer, lr=0.003, eps=1e-3, beta1=0.8, beta2=0.95)
    taken = config.build_optimizer(xdl.nn.mlp(3, [4], 2)).state_dict()["settings"][0]
    assert {name: taken[name] for name in settings} == pytest.approx(settings)
