"""K models in one batched pass (`xdl.nn.stack`, `StackedOptimizer`, `xdl.train.fit_many`): each
model ends exactly where the same configuration trained alone ends; per-model early stopping and
divergence; checkpoints and exact resume; bad input named."""

import ast
import dataclasses
import inspect
import math
import os
import re
import signal
import warnings

import numpy as np
import pytest

import xdl
import xdl.cli.resume
from xdl.config import OFF_VALUES, OPTIMIZERS, TrainConfig
from xdl.nn import StackError, stack
from conftest import CopyingHost, edit_saved
from xdl.optim import StackedOptimizer
from xdl.train import Callback, Checkpoint, Interrupted, fit_many
from xdl.train.many import ManyTrainer, check_shared
from xdl.train.trainer import KERAS_FIT_OPTIONS


@pytest.fixture(scope="module")
def digits():
    X, y = xdl.datasets.digits()
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1.0)
    return X[:320], y[:320], (X[320:420], y[320:420])


def small(**overrides) -> TrainConfig:
    values = dict(hidden=[24, 16], epochs=4, patience=0, batch_size=64, progress=False, dropout=0.0,
                  schedule="none")
    return TrainConfig(**{**values, **overrides})



def test_a_config_builds_the_same_model_every_time_and_leaves_the_generators_alone():
    """TrainConfig.seed says it seeds the initialization: build_model drew from the process's generator."""
    config = small(seed=5)
    xdl.seed(123)
    first = config.build_model(64, 10)
    drawn = xdl.backend.host_rng().random()
    second = config.build_model(64, 10)
    for name, value in first.state_dict().items():
        np.testing.assert_array_equal(value, second.state_dict()[name])
    xdl.seed(123)
    assert xdl.backend.host_rng().random() == drawn  # the process's generator moved by neither build
    xdl.seed(5)
    np.testing.assert_array_equal(xdl.nn.mlp(64, [24, 16], 10).state_dict()["0.weight"], first.state_dict()["0.weight"])

def alone(config, X, y, dev, seed, n_classes=10, dtype=np.float64, callbacks=()):
    """The configuration trained by an ordinary Trainer on the same batches (shuffle from ``seed``)."""
    xdl.seed(config.seed)
    model = config.build_model(X.shape[1], n_classes).astype(dtype)
    trainer = config.build_trainer(model, callbacks=callbacks)
    trainer.seed = seed
    history = trainer.fit(X, y, dev=dev)
    return model, history


def assert_same_weights(a, b, rtol):
    """Every array of ``a`` within ``rtol`` of ``b``'s, relative to its norm (‖a − b‖ ≤ rtol·‖b‖)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert np.linalg.norm(sa[name] - sb[name]) <= rtol * np.linalg.norm(sb[name]), name


# K = 8 models that differ in every hyperparameter that does not change shapes
EIGHT = [dict(seed=1, lr=3e-3, schedule="inverse_time", decay_rate=0.3),
         dict(seed=2, lr=1e-2, beta1=0.8, schedule="exponential", decay_base=0.7),
         dict(seed=3, lr=1e-3, beta2=0.99, l2=0.5),
         dict(seed=4, lr=5e-3, eps=1e-4, weight_decay=0.01),
         dict(seed=5, lr=2e-3, schedule="step", decay_factor=0.3, decay_every=2),
         dict(seed=6, lr=4e-3, init="xavier", l2=0.1, weight_decay=0.001),
         dict(seed=7, lr=7e-4, schedule="cosine"),
         dict(seed=8, lr=3e-3, schedule="staircase", decay_rate=1.0, decay_every=2)]


def test_eight_models_batched_end_with_the_weights_each_ends_with_alone_float64(digits):
    X, y, dev = digits
    configs = [small(**c) for c in EIGHT]
    with xdl.use("numpy"):
        results = fit_many(configs, X, y, dev=dev, seed=11, dtype="float64")
        for config, result in zip(configs, results):
            model, history = alone(config, X, y, dev, seed=11)
            assert result.status == "completed" and result.error is None
            assert_same_weights(result.model, model, 1e-10)
            assert result.history["lr"] == history["lr"]
            np.testing.assert_allclose(result.history["dev_cost"], history["dev_cost"], rtol=1e-10)
            assert result.history["dev_accuracy"] == history["dev_accuracy"]


def test_augmented_models_batched_end_with_the_weights_each_ends_with_alone(digits):
    """Shifted images (augment_shift) batched: each model trains on the batches a Trainer augments alone."""
    X, y, dev = digits
    configs = [small(augment_shift=1, seed=s, epochs=2) for s in (1, 2)]
    with xdl.use("numpy"):
        results = fit_many(configs, X, y, dev=dev, seed=11, dtype="float64")
        for config, result in zip(configs, results):
            model, history = alone(config, X, y, dev, seed=11)
            assert result.status == "completed"
            assert_same_weights(result.model, model, 1e-10)
            np.testing.assert_allclose(result.history["train_cost"], history["train_cost"], rtol=1e-10)
        unshifted = fit_many([small(seed=1, epochs=2)], X, y, dev=dev, seed=11, dtype="float64")[0]
    assert unshifted.history["train_cost"] != results[0].history["train_cost"]


def test_models_sharing_a_standardize_layer_are_built_as_alone(digits):
    """The K models are built in worker threads around one Standardize layer (as `xdl train`
    gives them): each starts and ends as it does alone, in float64, with the layer's statistics."""
    X, y, dev = digits
    scaler = xdl.data.Standardizer().fit(X)
    configs = [small(seed=s, lr=lr, epochs=2) for s, lr in ((1, 3e-3), (2, 1e-2), (3, 1e-3))]
    with xdl.use("numpy"):
        results = fit_many(configs, X, y, dev=dev, seed=2, dtype="float64", standardize=scaler.layer())
        for config, result in zip(configs, results):
            xdl.seed(config.seed)
            model = config.build_model(X.shape[1], 10, scaler.layer()).astype(np.float64)
            trainer = config.build_trainer(model)
            trainer.seed = 2
            trainer.fit(X, y, dev=dev)
            assert result.model.layers[0].mean.dtype == np.float64
            assert_same_weights(result.model, model, 1e-10)


@pytest.mark.parametrize("activation", list(xdl.nn.ACTIVATIONS))
def test_every_activation_the_mlps_take_can_be_stacked(activation):
    """ARCHITECTURE.md's layer recipe: an activation of `ACTIVATIONS` (``--activation``) that is not
    in `ELEMENTWISE` and has no stacked form is refused by `stack`, so by `fit_many` and `xdl tune`'s
    default batched execution, which no test tried."""
    models = [xdl.nn.mlp(3, [4], 2, activation=activation) for _ in range(2)]
    x = xdl.tensor(np.ones((5, 3), np.float32))
    out = stack(models)(x).numpy()
    for k, model in enumerate(models):
        np.testing.assert_allclose(out[:, k], model(x, training=False).numpy(), rtol=1e-6)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_every_update_rule_batched_equals_alone(digits, optimizer):
    """Every rule of `xdl.config.OPTIMIZERS` (``--optimizer``): a list of its own here passed a rule whose class did
    not say ``stacks = True``, which `StackedOptimizer`, so `fit_many` and `xdl tune`'s batched execution, refuse."""
    X, y, dev = digits
    configs = [small(optimizer=optimizer, seed=1, lr=0.05, beta1=0.9, epochs=2),
               small(optimizer=optimizer, seed=2, lr=0.01, beta1=0.5, epochs=2, weight_decay=0.01, l2=0.2)]
    with xdl.use("numpy"):
        results = fit_many(configs, X, y, dev=dev, seed=3, dtype="float64")
        for config, result in zip(configs, results):
            assert_same_weights(result.model, alone(config, X, y, dev, seed=3)[0], 1e-10)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "momentum"])
def test_a_step_runs_as_much_python_for_8_models_as_for_4(monkeypatch, optimizer):
    """Issue 13 on the CPU: the host's work of a steady step — the calls of xdl's Python functions between one
    step's end and the next — does not grow with K, for models of their own rates and β's (Adam's bias
    corrections were computed per model, K calls a step; `Stacked.set_random_key` checked each seed, 2·K).
    Without dropout: its NumPy reference draws each model's mask with a generator of its own key
    (`stacked_keep_mask`), K draws a layer, where the GPU's kernel draws all K."""
    import sys

    import xdl.train.many

    package, calls, made = os.path.dirname(xdl.__file__) + os.sep, [0], xdl.train.many.progress_bar

    def count(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(package):
            calls[0] += 1

    class Counting:  # each step's calls, from one step's end to the next
        def __init__(self, bar):
            self.bar, self.ends = bar, []

        def update(self, n=1):
            sys.setprofile(None)
            self.ends.append(calls[0])
            sys.setprofile(count)
            return self.bar.update(n)

        def close(self):
            sys.setprofile(None)
            return self.bar.close()

    bars = []

    def counting_bar(*args, **kwargs):
        bars.append(Counting(made(*args, **kwargs)))
        return bars[-1]

    monkeypatch.setattr(xdl.train.many, "progress_bar", counting_bar)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((96, 8)), rng.integers(0, 3, 96)

    def steady_steps(k_models):
        configs = [TrainConfig(optimizer=optimizer, lr=1e-3 * (1 + k), beta1=0.8 + 0.1 * (k % 2), beta2=0.999,
                               weight_decay=0.01, dropout=0.0, hidden=[12, 10], batch_size=16, epochs=2, patience=0,
                               seed=k) for k in range(k_models)]
        try:
            with xdl.use("numpy"):
                fit_many(configs, X, y)
        finally:
            sys.setprofile(None)
        ends = bars[-1].ends  # the second epoch's steps after its first (whose calls hold the first epoch's end)
        return {b - a for a, b in zip(ends[6:], ends[7:])}

    assert steady_steps(8) == steady_steps(4)


def test_models_of_one_seed_draw_each_dropout_mask_once(monkeypatch):
    """Issue 13 on the CPU: K models of one seed (`xdl.tune`'s trials) draw one Philox mask per dropout layer and
    step on NumPy, whatever K (it was one per model: K draws a layer)."""
    import xdl.ops.random as random

    drawn, real = [0], random.random_bits

    def counting(*args):
        drawn[0] += 1
        return real(*args)

    monkeypatch.setattr(random, "random_bits", counting)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((96, 8)), rng.integers(0, 3, 96)

    def draws(k_models):
        drawn[0] = 0
        configs = [TrainConfig(lr=1e-3 * (1 + k), dropout=0.1 + 0.1 * k, hidden=[12, 10], batch_size=16, epochs=2,
                               patience=0, seed=4) for k in range(k_models)]
        with xdl.use("numpy"):
            fit_many(configs, X, y)
        return drawn[0]

    assert draws(6) == draws(2) == 2 * 2 * 6  # 2 dropout layers, 2 epochs of 6 steps


def test_dropout_masks_are_those_each_model_draws_alone(digits):
    """The same seed: each model's masks (and so its weights) are what it gets alone, whatever
    its rate; different seeds: different masks."""
    X, y, dev = digits
    configs = [small(seed=5, dropout=rate, lr=lr) for rate, lr in ((0.1, 3e-3), (0.3, 1e-3), (0.5, 5e-3))]
    with xdl.use("numpy"):
        results = fit_many(configs, X, y, dev=dev, seed=5, dtype="float64")
        for config, result in zip(configs, results):
            assert_same_weights(result.model, alone(config, X, y, dev, seed=5)[0], 1e-10)
        models = []
        for s in (1, 2):
            xdl.seed(s)
            models.append(xdl.nn.mlp(8, [64], 2, dropout=0.5))
        stacked = stack(models)
        stacked.set_random_key([1, 2], step=3)
        dropout = stacked.layers[2]
        out = dropout(xdl.tensor(np.ones((16, 2, 64), np.float32))).numpy()
        keep = out != 0
        for k, s in enumerate((1, 2)):
            assert (keep[:, k] == xdl.ops.random.keep_mask((16, 64), 0.5, s, 3, 3)).all()
        assert (keep[:, 0] != keep[:, 1]).mean() > 0.3  # independent masks disagree about half the time


def test_float32_batched_ends_where_alone_ends(digits):
    """float32 too: each row's update rounds every derived hyperparameter once, as one model's
    does, and the batched products compute each model's product as its own (one GEMM per model)."""
    X, y, dev = digits
    configs = [small(**c) for c in EIGHT[:3]]
    with xdl.use("numpy"):
        results = fit_many(configs, X, y, dev=dev, seed=0, dtype="float32")
        for config, result in zip(configs, results):
            assert result.model.dtype == np.float32
            assert_same_weights(result.model, alone(config, X, y, dev, seed=0, dtype=np.float32)[0], 1e-6)


def test_without_the_train_sets_evaluation_each_history_is_that_of_a_trainer_doing_the_same(digits, tmp_path):
    """eval_train=False, as Trainer's: the train cost and accuracy are each model's step costs and
    hits over the epoch; the weights are those of the run that evaluates; a resume keeps the choice."""
    X, y, dev = digits
    configs = [small(seed=1, lr=3e-3), small(seed=2, lr=1e-2, l2=0.3)]
    with xdl.use("numpy"):
        evaluated = fit_many(configs, X, y, dev=dev, seed=4, dtype="float64")
        results = fit_many(configs, X, y, dev=dev, seed=4, dtype="float64", eval_train=False,
                           callbacks=[Checkpoint(tmp_path)])
        for config, result, other in zip(configs, results, evaluated):
            xdl.seed(config.seed)
            model = config.build_model(X.shape[1], 10).astype(np.float64)
            trainer = config.build_trainer(model)
            trainer.seed, trainer.eval_train = 4, False
            history = trainer.fit(X, y, dev=dev)
            assert_same_weights(result.model, model, 1e-10)
            assert_same_weights(result.model, other.model, 0.0)
            np.testing.assert_allclose(result.history["train_cost"], history["train_cost"], rtol=1e-12)
            assert result.history["train_accuracy"] == history["train_accuracy"]
            assert result.history["train_cost"] != other.history["train_cost"]  # running averages, not a pass
        with pytest.raises(ValueError, match=r"resume: eval_train differs from the checkpoint's \(False, now True\)"):
            fit_many(configs, X, y, dev=dev, seed=4, dtype="float64", resume=tmp_path)
        with pytest.raises(ValueError, match="eval_train must be True or False, got 'no'"):
            fit_many(configs, X, y, eval_train="no")


def test_per_model_early_stopping_keeps_each_models_best_epoch(digits):
    X, y, dev = digits
    configs = [small(seed=1, lr=0.05, patience=2, epochs=30), small(seed=2, lr=1e-3, patience=3, epochs=12)]
    with xdl.use("numpy"):
        results = fit_many(configs, X, y, dev=dev, seed=2, dtype="float64")
        for config, result in zip(configs, results):
            model, history = alone(config, X, y, dev, seed=2)
            assert len(result.history) == len(history)
            assert (result.history.best_epoch, result.history.stopped_epoch) == (history.best_epoch,
                                                                                history.stopped_epoch)
            assert_same_weights(result.model, model, 1e-10)
        assert results[0].status == "stopped"


def test_diverging_models_do_not_stop_or_corrupt_the_others(digits):
    """lr = 10 (a poor model, finite costs) and lr = 1e30 (NaN in epoch 1: marked failed, its last
    good state kept, its history says where) beside two good models, which end exactly as they
    do without them."""
    X, y, dev = digits
    config = dict(optimizer="sgd", batch_norm=False)
    good = [small(seed=1, lr=0.05, **config), small(seed=2, lr=0.1, **config)]
    poor, nan = small(seed=3, lr=10.0, **config), small(seed=4, lr=1e30, **config)
    with xdl.use("numpy"), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no NumPy overflow noise from the failed model's rows
        together = fit_many([good[0], poor, nan, good[1]], X, y, dev=dev, seed=0, dtype="float64")
        apart = fit_many(good, X, y, dev=dev, seed=0, dtype="float64")
    assert [r.status for r in together] == ["completed", "completed", "failed", "completed"]
    assert together[1].history["train_cost"][-1] > together[0].history["train_cost"][-1] + 0.5
    failed = together[2]
    assert failed.error.startswith("model 2 diverged: the cost became nan at epoch 1, step ")
    assert failed.error.endswith("it keeps its initial state")
    assert failed.error == f"model 2 diverged: {failed.history.diverged}; it keeps its initial state"  # where, as alone
    assert len(failed.history) == 0
    xdl.seed(4)
    initial = nan.build_model(64, 10).astype(np.float64)
    assert_same_weights(failed.model, initial, 0.0)
    for r, reference in zip([together[0], together[3]], apart):
        assert_same_weights(r.model, reference.model, 0.0)
        assert r.history["dev_cost"] == reference.history["dev_cost"]


def test_a_model_that_completed_its_epochs_reads_no_rate_past_them(digits):
    """Each config's schedule is checked over its own epochs (TrainConfig.validate); a model that
    completed them is frozen while the batch trains on. Its schedule was still read there: a growing
    one (α0·base^epoch, 1e-10 in its last epoch, 1e+50 in the batch's fifth) stopped the whole batch."""
    X, y, dev = digits
    growing = small(seed=1, schedule="exponential", decay_base=1e20, lr=1e-30, epochs=2)
    longer = small(seed=2, epochs=5)
    with xdl.use("numpy"):
        together = fit_many([growing, longer], X, y, dev=dev)  # (float32's range: float64's holds 1e+50)
        apart = [fit_many([config], X, y, dev=dev)[0] for config in (growing, longer)]
    assert [r.status for r in together] == ["completed", "completed"]
    for r, reference in zip(together, apart):
        assert_same_weights(r.model, reference.model, 1e-6)
        assert r.history["lr"] == reference.history["lr"]


def interrupt_at_step(monkeypatch, n: int) -> None:
    """Send this process SIGINT at a batch's ``n``-th training step (``monkeypatch.undo()`` ends it)."""
    from xdl.train.many import ManyTrainer

    step, calls = ManyTrainer._train_step, []

    def interrupted_step(self, Xb, yb):
        calls.append(1)
        if len(calls) == n:
            os.kill(os.getpid(), signal.SIGINT)
        return step(self, Xb, yb)

    monkeypatch.setattr(ManyTrainer, "_train_step", interrupted_step)


class InterruptAt(Callback):
    """Sends this process SIGINT at the end of epoch ``epoch`` (the first run only)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch:
            os.kill(os.getpid(), signal.SIGINT)


def test_a_ctrl_c_in_the_last_epoch_stops_fit_many_after_it(digits, tmp_path):
    """As a Trainer's: a Ctrl-C in the last epoch was dropped, the batch returned as if none came."""
    X, y, dev = digits
    configs = [small(epochs=2), small(epochs=2, lr=3e-3)]
    with pytest.raises(Interrupted, match="after epoch 2, as its run ended") as stop:
        fit_many(configs, X, y, dev=dev, callbacks=[InterruptAt(2), Checkpoint(tmp_path)])
    assert stop.value.over and [len(r.history) for r in stop.value.results] == [2, 2]


def test_a_resume_with_batch_norm_switched_names_the_config_not_a_damaged_file(digits, tmp_path):
    """Batch norm's running statistics are buffers of the stack: a resume with it switched on found the
    checkpoint's buffer arrays missing and called the good file "damaged or edited"."""
    X, y, dev = digits
    fit_many([small(epochs=1, batch_norm=False)], X, y, dev=dev, callbacks=[Checkpoint(tmp_path)])
    with pytest.raises(ValueError, match=r"resume: configs\[0\]\.batch_norm is True, the checkpoint's was False"):
        fit_many([small(epochs=2, batch_norm=True)], X, y, dev=dev, callbacks=[Checkpoint(tmp_path)], resume=tmp_path)


def test_checkpoint_and_resume_give_the_uninterrupted_result(digits, tmp_path):
    X, y, dev = digits
    configs = [small(seed=1, dropout=0.2, lr=3e-3, patience=2, epochs=6), small(seed=1, dropout=0.4, lr=1e-2, epochs=6)]
    with xdl.use("numpy"):
        straight = fit_many(configs, X, y, dev=dev, seed=4, callbacks=[InterruptAt(0)])
        with pytest.raises(Interrupted) as stop:
            fit_many(configs, X, y, dev=dev, seed=4, callbacks=[InterruptAt(3), Checkpoint(tmp_path)])
        assert stop.value.checkpoint == tmp_path / "checkpoint.npz"
        resumed = fit_many(configs, X, y, dev=dev, seed=4, callbacks=[InterruptAt(0), Checkpoint(tmp_path)],
                           resume=tmp_path)
        for a, b in zip(straight, resumed):
            assert_same_weights(a.model, b.model, 0.0)
            assert a.history["dev_cost"] == b.history["dev_cost"] and a.status == b.status
        with pytest.raises(ValueError, match=r"configs\[1\]\.lr is 0\.02, the checkpoint's was 0\.01"):
            fit_many([configs[0], small(seed=1, dropout=0.4, lr=2e-2, epochs=6)], X, y, dev=dev, seed=4,
                     callbacks=[InterruptAt(0), Checkpoint(tmp_path)], resume=tmp_path)
        # the batch's checkpoint is not one run's, nor the other way round: each says what resumes it
        one = configs[0].build_trainer(configs[0].build_model(X.shape[1], 10), callbacks=[Checkpoint(tmp_path / "one")])
        with pytest.raises(ValueError, match=r"checkpoint.npz' is a checkpoint of fit_many .*fit_many\(\.\.\., resume"):
            one.fit(X, y, dev=dev, resume=tmp_path)
        one.fit(X, y, dev=dev)
        with pytest.raises(ValueError, match=r"is a checkpoint of one Trainer run \(Trainer.fit"):
            fit_many(configs, X, y, dev=dev, seed=4, resume=tmp_path / "one")
        with pytest.raises(ValueError, match=r"load: .* is a checkpoint of fit_many, K models in one stack, not one"):
            xdl.load(tmp_path / "checkpoint.npz")
        with pytest.raises(ValueError, match=r"--resume: .* is a checkpoint of fit_many"):
            xdl.cli.resume.check_resume(dataclasses.replace(configs[0], resume=str(tmp_path)))


def test_a_batch_resumed_from_inside_an_epoch_cannot_end_before_that_epoch(digits, tmp_path, monkeypatch):
    """As a Trainer's run (`fewest_epochs`): a batch stopped after step k of epoch e + 1, resumed with
    epochs = e, returned its models "training", k steps into an epoch no history recorded."""
    X, y, dev = digits  # 320 examples, batches of 64: 5 steps per epoch
    configs = [small(seed=1, epochs=4), small(seed=2, lr=1e-2, epochs=4)]
    with xdl.use("numpy"):
        interrupt_at_step(monkeypatch, 7)  # after step 2 of epoch 2
        with pytest.raises(Interrupted, match="in epoch 2 after step 2"):
            fit_many(configs, X, y, dev=dev, callbacks=[Checkpoint(tmp_path)])
        monkeypatch.undo()
        short = [dataclasses.replace(c, epochs=1) for c in configs]
        with pytest.raises(ValueError, match=r"configs\[0\]\.epochs: .* has trained 1 epoch and 2 steps of epoch 2 "
                                             r"and this run has configs\[0\]\.epochs 1: a run cannot train fewer"):
            fit_many(short, X, y, dev=dev, callbacks=[Checkpoint(tmp_path)], resume=tmp_path)
        results = fit_many([dataclasses.replace(c, epochs=2) for c in configs], X, y, dev=dev,
                           callbacks=[Checkpoint(tmp_path)], resume=tmp_path)
        assert [r.status for r in results] == ["completed", "completed"] and len(results[0].history) == 2


def test_a_batch_resumed_from_inside_an_epoch_without_the_train_sets_evaluation_counts_the_whole_epoch(
        digits, tmp_path, monkeypatch):
    """eval_train=False: the epoch's train accuracy counts the hits of the steps before the stop (kept
    in the checkpoint) and after the resume, as the uninterrupted run's does."""
    X, y, dev = digits  # 5 steps per epoch
    configs = [small(seed=1, epochs=3), small(seed=2, lr=1e-2, epochs=3)]
    with xdl.use("numpy"):
        whole = fit_many(configs, X, y, dev=dev, seed=4, dtype="float64", eval_train=False)
        interrupt_at_step(monkeypatch, 8)  # after step 3 of epoch 2
        with pytest.raises(Interrupted, match="in epoch 2 after step 3"):
            fit_many(configs, X, y, dev=dev, seed=4, dtype="float64", eval_train=False,
                     callbacks=[Checkpoint(tmp_path)])
        monkeypatch.undo()
        resumed = fit_many(configs, X, y, dev=dev, seed=4, dtype="float64", eval_train=False,
                           callbacks=[Checkpoint(tmp_path)], resume=tmp_path)
    for a, b in zip(resumed, whole):
        assert a.history["train_accuracy"] == b.history["train_accuracy"]
        np.testing.assert_allclose(a.history["train_cost"], b.history["train_cost"], rtol=1e-12)


def test_a_ctrl_c_without_a_checkpoint_keeps_the_k_models_trained_so_far(digits):
    """A Trainer's model is trained in place, the caller's after a Ctrl-C; fit_many's caller holds no
    trainer: Interrupted.results are the K results as they stood (model k after epoch e: as uninterrupted
    after e epochs), not the whole batch's work lost."""
    X, y, dev = digits
    configs = [small(seed=1, epochs=6), small(seed=2, lr=1e-2, epochs=2)]
    with xdl.use("numpy"):
        with pytest.raises(Interrupted) as stop:
            fit_many(configs, X, y, dev=dev, callbacks=[InterruptAt(3)])
        assert stop.value.checkpoint is None and len(stop.value.results) == 2
        assert str(stop.value).endswith("nothing was saved (the trainer has no Checkpoint callback); the 2 results as "
                                        "they stood are in its .results")  # (not "all lost")
        assert [r.status for r in stop.value.results] == ["training", "completed"]
        first_three = fit_many([dataclasses.replace(configs[0], epochs=3), configs[1]], X, y, dev=dev)
        for kept, straight in zip(stop.value.results, first_three):
            assert_same_weights(kept.model, straight.model, 0.0)
            assert kept.history["dev_cost"] == straight.history["dev_cost"]


def test_each_result_is_an_ordinary_model(digits, tmp_path):
    X, y, dev = digits
    with xdl.use("numpy"):
        result = fit_many([small(seed=1, epochs=2), small(seed=2, epochs=2)], X, y, dev=dev)[1]
        xdl.save(result.model, tmp_path / "m.npz")
        loaded = xdl.load(tmp_path / "m.npz")
        assert (loaded.predict(dev[0]) == result.model.predict(dev[0])).all()
        assert type(result.model).__name__ == "Sequential"


def test_a_config_and_a_result_show_only_the_options_set(digits):
    # every one of TrainConfig's 34 options made a config 530 characters and each of fit_many's K results a
    # screen of a notebook's output; shown as scikit-learn shows an estimator (print_changed_only), and
    # TrainConfig(...) of what it shows is the same config
    assert repr(TrainConfig()) == "TrainConfig()"
    config = small(lr=1e-2, seed=1, epochs=1)
    assert repr(config) == ("TrainConfig(hidden=[24, 16], dropout=0.0, lr=0.01, schedule='none', epochs=1, "
                            "patience=0, seed=1, progress=False)")
    assert eval(repr(config), {"TrainConfig": TrainConfig}) == config
    X, y, dev = digits
    with xdl.use("numpy"):
        result = fit_many([config], X, y, dev=dev)[0]
    assert repr(result) == (f"Result(config={config!r}, history=History(1 epoch, stopped_epoch=None, "
                            "best_epoch=None), status='completed', error=None)")


def test_a_result_takes_its_model_out_when_first_read(digits, monkeypatch):
    """results() builds no model: a search keeping histories pays for none, a user keeping the best
    pays for one. Results asked for mid-run keep the batch as it was then; a copy of a result
    (dataclasses.replace) and a pickled one hold the same model."""
    import pickle

    from xdl.train import Callback

    X, y, dev = digits
    taken, early = [], {}

    class ResultsAfterTheFirstEpoch(Callback):
        def on_epoch_end(self, trainer, record):
            if trainer.epoch == 1:  # every model still training: their rows come from the batch as it is
                early["results"], early["state"] = trainer.results(), trainer.model.model_state(1)

    with xdl.use("numpy"):
        real = xdl.nn.Stacked.model
        monkeypatch.setattr(xdl.nn.Stacked, "model", lambda self, k, row=None: taken.append(k) or real(self, k, row))
        results = fit_many([small(seed=1, epochs=3), small(seed=2, epochs=3)], X, y, dev=dev,
                           callbacks=[ResultsAfterTheFirstEpoch()])
        assert taken == []
        model = early["results"][1].model  # read after two more epochs trained the batch on
        assert taken == [1] and early["results"][1].model is model
        for name, value in model.state_dict().items():
            np.testing.assert_array_equal(value, early["state"][name])
        assert dataclasses.replace(early["results"][1], status="pruned").model is model
        copy = pickle.loads(pickle.dumps(results[0]))  # taken out first: the pickle holds an ordinary model
        assert taken == [1, 0]
        assert (copy.model.predict(dev[0]) == results[0].model.predict(dev[0])).all()
        assert not np.array_equal(results[1].model.state_dict()["0.weight"], model.state_dict()["0.weight"])


def test_fit_many_leaves_the_callers_standardize_layer_as_it_is(digits):
    X, y, dev = digits
    layer = xdl.data.Standardizer().fit(X).layer()
    mean = layer.mean
    with xdl.use("numpy"):
        results = fit_many([small(seed=1, epochs=1)], X, y, standardize=layer, dtype="float64")
    assert layer.mean is mean  # untouched: the models got a copy (statistics are float64 in a model of any dtype)
    assert results[0].model.layers[0].mean.dtype == np.float64


def test_fit_many_leaves_the_process_generators_alone(digits):
    """Each model's weights come from its own seed in this thread: the user's seeded streams go on
    as if fit_many had not run."""
    X, y, dev = digits
    with xdl.use("numpy") as backend:
        xdl.seed(11)
        fit_many([small(seed=1, epochs=1, dropout=0.2), small(seed=2, epochs=1, dropout=0.2)], X, y)
        after = xdl.backend.host_rng().standard_normal(3), backend.rng.random(3)
        xdl.seed(11)
        assert np.array_equal(after[0], xdl.backend.host_rng().standard_normal(3))
        assert np.array_equal(after[1], backend.rng.random(3))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_norm_momentum_and_statistics_per_model(dtype):
    """Each model's running statistics are the bits it keeps alone, float32 too (on NumPy: alone on a
    GPU runs the kernel, to float32 rounding): the factors m, 1 − m and (1 − m)·n/(n − 1) are rounded
    from float64 once, as a Python float momentum's are."""
    models = []
    for s, momentum in ((1, 0.9), (2, 0.5), (3, 0.99)):
        xdl.seed(s)
        m = xdl.nn.mlp(5, [6], 3, batch_norm=True)
        m.layers[1].momentum = momentum
        models.append(m.astype(dtype))
    stacked = stack(models)
    x = np.random.default_rng(0).normal(size=(9, 5)).astype(dtype)
    out = stacked(x).numpy()
    for k, m in enumerate(models):
        np.testing.assert_allclose(out[:, k], m(x).numpy(), rtol=1e-12 if dtype == np.float64 else 1e-6)
        for name in ("running_mean", "running_var"):
            np.testing.assert_array_equal(getattr(stacked.model(k).layers[1], name), getattr(m.layers[1], name))



@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch", [9, 3000])  # on a GPU: the one-launch forward, and bn_stats + bn_normalize
def test_stacked_batch_norm_momenta_give_each_model_its_own_statistics_bit_for_bit(backend, dtype, batch):
    """K models opening on batch norm, momenta of their own (0 and one near 1 among them): a few training passes
    of the stack leave each model's running statistics the bits it keeps alone, on either backend — on a GPU
    each feature's momentum read by the kernels, as one model's number is (they ran at momentum 1 and the
    statistics were updated again from 1/σ, σ² taken back from 1/√(σ² + ε): float rounding off)."""
    models = []
    for s, momentum in ((1, 0.0), (2, 0.5), (3, 0.9999)):
        xdl.seed(s)
        models.append(xdl.nn.Sequential(xdl.nn.BatchNorm(5, momentum=momentum), xdl.nn.Dense(5, 3)).astype(dtype))
    stacked = stack(models)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = backend.asarray((rng.normal(size=(batch, 5)) * 3 + 100).astype(dtype))
        stacked(x)
        for m in models:
            m(x)
    for k, m in enumerate(models):
        for name in ("running_mean", "running_var"):
            np.testing.assert_array_equal(backend.to_numpy(getattr(stacked.model(k).layers[0], name)),
                                          backend.to_numpy(getattr(m.layers[0], name)), err_msg=f"{k} {name}")


@pytest.mark.parametrize("target", ["stand-in", "backend"])
def test_models_built_on_the_host_stack_onto_another_backend(backend, target):
    """`stack(models, backend)`: the K models' weights and statistics land on ``backend`` in one
    upload (what fit_many does with models built on the host), and compute what each computes,
    whichever backend is current; each model taken back out lives there too."""
    backend = CopyingHost() if target == "stand-in" else backend
    models = []
    with xdl.use("numpy"):
        for s in (1, 2, 3):
            xdl.seed(s)
            m = xdl.nn.mlp(5, [6], 3, batch_norm=True, standardize=xdl.nn.Standardize(5, np.arange(5), np.ones(5)))
            m.layers[2].running_mean[...] = s  # statistics of its own, carried over too
            models.append(m.astype(np.float64).eval())
    stacked = stack(models, backend).eval()
    assert backend.owns(stacked.data) and stacked.backend is backend
    assert all(backend.owns(array) for _, array in stacked.named_buffers())
    x = np.random.default_rng(0).normal(size=(9, 5))
    out = stacked(backend.asarray(x)).numpy()
    taken_out = [stacked.model(k) for k in range(3)]  # ordinary models on the stack's backend
    assert all(m.backend is backend and backend.owns(m.parameters()[0]._flat[0].data) for m in taken_out)
    with xdl.use("numpy"):
        for m, back, k in zip(models, taken_out, range(3)):
            np.testing.assert_allclose(out[:, k], m(x).numpy(), rtol=1e-12)
            for name, value in m.state_dict().items():
                np.testing.assert_array_equal(backend.to_numpy(getattr_path(back, name)), value, err_msg=name)


def getattr_path(module, name: str):
    """The array at a state-dict name ("2.running_mean", "0.weight") of ``module``."""
    *path, last = name.split(".")
    for part in path:
        module = getattr(module, part)
    value = getattr(module, last)
    return value.data if isinstance(value, xdl.Tensor) else value


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("other, match", [
    (dict(hidden=[24]), r"hidden is \[24\] in configs\[1\] but \[24, 16\] in configs\[0\]"),
    (dict(activation="tanh"), r"activation is 'tanh' in configs\[1\] but 'relu'"),
    (dict(batch_norm=False), r"batch_norm is False in configs\[1\] but True"),
    (dict(optimizer="sgd"), r"optimizer is 'sgd' in configs\[1\] but 'adam'"),
    (dict(batch_size=32), r"batch_size is 32 in configs\[1\] but 64"),
    (dict(dropout=0.3), r"dropout is 0\.3 in configs\[1\] but 0\.0"),
])
def test_configs_that_differ_in_a_shared_key_are_refused_naming_it(digits, other, match):
    X, y, dev = digits
    with pytest.raises(ValueError, match=match):
        fit_many([small(), small(**other)], X, y, dev=dev)


def test_bad_arguments_are_named_before_any_work(digits):
    X, y, dev = digits
    with pytest.raises(ValueError, match=r"configs: no configurations \(K = 0\)"):
        fit_many([], X, y)
    with pytest.raises(TypeError, match=r"configs\[1\] must be a TrainConfig"):
        fit_many([small(), {"lr": 0.1}], X, y)
    with pytest.raises(ValueError, match=r"configs\[0\] has patience 5.*dev=\(X_dev, y_dev\)"):
        fit_many([small(patience=5)], X, y)
    with pytest.raises(ValueError, match=r"y has 10 labels for 320 examples"):
        fit_many([small()], X, y[:10])
    for dtype in ("int32", "float16"):
        with pytest.raises(ValueError, match=r"dtype must be float32 or float64"):
            fit_many([small()], X, y, dtype=dtype)
    with pytest.raises(ValueError, match=r"y_dev must be \(m,\) class indices or \(m, C\) one-hot rows"):
        fit_many([small()], X, y, dev=(dev[0], np.full((len(dev[1]), 10), 0.1)))  # soft rows: no one class each
    with pytest.raises(ValueError, match=r"X_dev has no examples"):
        fit_many([small()], X, y, dev=(dev[0][:0], dev[1][:0]))
    with pytest.raises(ValueError, match=r"^X has no examples$"):
        fit_many([small()], X[:0], y[:0])
    beyond = y.copy()
    beyond[3] = 10  # one past the 10 columns of the one-hot dev rows: the error names the labels that hold it
    with pytest.raises(ValueError, match=r"^y has class index 10, outside the 10 classes the one-hot label rows"):
        fit_many([small()], X, beyond, dev=(dev[0], np.eye(10)[dev[1]]))
    with pytest.raises(ValueError, match=r"^y_dev has class index 10, outside the 10 classes"):
        fit_many([small()], X, np.eye(10)[y], dev=(dev[0], np.where(dev[1] == 0, 10, dev[1])))
    models = []
    for s in (1, 2):
        xdl.seed(s)
        models.append(xdl.nn.mlp(4, [8], 3))
    stacked = stack(models)
    optimizers = [xdl.optim.Adam(xdl.nn.mlp(4, [8], 3)) for _ in range(2)]
    with pytest.raises(ValueError, match=r"optimizers: 1 optimizer for a stack of 2 models"):
        StackedOptimizer(stacked, optimizers[:1])
    opt = StackedOptimizer(stacked, optimizers)
    with pytest.raises(ValueError, match=r"lr: 3 values for a stack of 2 models"):
        opt.set_lr([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"lr of model 1 must be a finite number ≥ 0, got -1.0"):
        opt.set_lr([0.1, -1.0])
    with pytest.raises(StackError, match=r"no models \(K = 0\)"):
        stack([])
    with pytest.raises(StackError, match=r"layer 0 \(Dense\): out_features is 9 in model 1, 8 in model 0"):
        stack([xdl.nn.mlp(4, [8], 3), xdl.nn.mlp(4, [9], 3)])


@pytest.mark.parametrize("options, match", [
    (dict(lr="0.01"), r"TrainConfig: lr must be a number, got '0.01' \(str\)"),
    (dict(epochs=2.5), r"TrainConfig: epochs must be an integer, got 2.5"),
    (dict(epochs="2"), r"TrainConfig: epochs must be an integer, got '2'"),
    (dict(dropout=None), r"TrainConfig: dropout must be a number, got None"),
    (dict(hidden=16), r"TrainConfig: hidden must be a list of integers, got 16"),
    (dict(hidden=[16.7]), r"TrainConfig: hidden must be a list of integers, got \[16.7\]"),
    (dict(hidden=np.array([[16]])), r"TrainConfig: hidden must be a list of integers"),
    (dict(batch_size=32.0), r"TrainConfig: batch_size must be an integer, got 32.0"),
    (dict(batch_size=True, batch_norm=False), r"TrainConfig: batch_size must be an integer, got True \(bool\)"),
    (dict(patience=1.5), r"TrainConfig: patience must be an integer, got 1.5"),
    (dict(patience=True), r"TrainConfig: patience must be an integer, got True"),
])
def test_config_types_are_checked_where_the_config_is_made(options, match):
    with pytest.raises(TypeError, match=match):
        small(**options)


@pytest.mark.parametrize("name", sorted(OFF_VALUES))
def test_a_none_for_an_option_that_can_be_off_says_the_value_that_is(name):
    """TrainConfig(max_grad_norm=None), PyTorch's and Keras's "no clipping", said only "must be a number, got None":
    TOML has no null, so each option that can be off says the value that turns it off — a value it takes."""
    with pytest.raises(TypeError, match=rf"^TrainConfig: {name} must be \w+ \w+, got None \(NoneType\); "
                                        rf"{re.escape(OFF_VALUES[name])} \(TOML has no null\)$"):
        small(**{name: None})
    off = ast.literal_eval(OFF_VALUES[name].split(" is ")[0])
    assert getattr(small(**{name: off}), name) == off


def test_max_grad_norm_0_is_no_clipping_as_its_none_message_says():
    model = xdl.nn.mlp(4, [8], 3)
    assert small(max_grad_norm=0).build_optimizer(model).max_grad_norm is None
    assert small(max_grad_norm=1.5).build_optimizer(model).max_grad_norm == 1.5
    with pytest.raises(TypeError, match=r"must be a number, got None \(NoneType\)$"):  # (an option never off)
        small(lr=None)


def test_config_options_set_later_are_checked_by_fit_many_naming_the_config(digits):
    X, y, _ = digits
    late = small()
    late.lr = "0.01"
    with pytest.raises(TypeError, match=r"^configs\[1\]: lr must be a number, got '0.01'"):
        fit_many([small(), late], X, y)
    for eps in (1e-320, 1e39):  # 0 or inf in float32
        with pytest.raises(ValueError, match=r"TrainConfig: eps must be in float32's positive range"):
            small(eps=eps)


def test_config_sequences_and_numpy_scalars_are_normalized():
    config = small(hidden=np.array([24, 16]), batch_size=np.int64(64), lr=np.float32(0.5))
    assert config == small(hidden=(24, 16), lr=0.5) == small(lr=0.5)
    assert type(config.hidden) is list and type(config.hidden[0]) is int and type(config.batch_size) is int
    check_shared([small(), small(hidden=(24, 16))])  # equal, so shared


def test_out_of_range_and_oversized_data_is_named_before_any_work(digits):
    X, y, dev = digits
    big = X.astype(np.float64) * 1e39  # finite in float64, inf in float32
    with pytest.raises(ValueError, match=r"^X has values beyond float32's range"):
        fit_many([small(), small(lr=1e-2)], big, y)
    with pytest.raises(ValueError, match=r"^X_dev has values beyond float32's range"):
        fit_many([small()], X, y, dev=(big[:100], dev[1]))
    with pytest.raises(ValueError, match=r"^configs: augment_shift \(dataset 'digits'\) sees examples as 8×8 images, "
                                         r"so X must have 64 features, got 30"):
        fit_many([small(augment_shift=1)], X[:, :30], y)
    for label, dtype in ((10**12, np.int64), (np.iinfo(np.int64).max, np.int64), (2**63 + 5, np.uint64)):
        labels = y.astype(dtype)
        labels[0] = label
        with pytest.raises(ValueError, match=rf"^y has class index {label}; .*at most MAX_CLASSES = {2**20}"):
            fit_many([small()], X, labels)
    for n_classes in (10**10, True, 0):
        with pytest.raises(ValueError, match=rf"^n_classes must be an integer in \[2, {2**20}\]"):
            fit_many([small()], X, y, n_classes=n_classes)
    with pytest.raises(ValueError, match=r"^y has class index 9, outside n_classes=9 classes \[0, 9\)$"):
        fit_many([small()], X, y, n_classes=9)
    dev_labels = np.where(y == 9, 12, y)  # the dev set's labels are the ones that do not fit: named
    with pytest.raises(ValueError, match=r"^y_dev has class index 12, outside n_classes=10 classes \[0, 10\)$"):
        fit_many([small()], X, y, dev=(X, dev_labels), n_classes=10)


def test_missing_or_misshapen_arguments_are_named(digits):
    X, y, _ = digits
    with pytest.raises(TypeError, match=r"^configs must be a list of TrainConfig instances, got None"):
        fit_many(None, X, y)
    with pytest.raises(TypeError, match=r"^callbacks must be a list of xdl.train.Callback instances, got 5"):
        fit_many([small()], X, y, callbacks=5)  # (None is none, as Keras's fit and the Trainer take it)
    with pytest.raises(ValueError, match=r"^dtype must be float32 or float64, got None"):
        fit_many([small()], X, y, dtype=None)
    with pytest.raises(TypeError, match=r"^standardize must be an xdl.nn.Standardize layer or None, got 5"):
        fit_many([small()], X, y, standardize=5)
    with pytest.raises(ValueError, match=r"^standardize has 10 features, X has 64"):
        fit_many([small()], X, y, standardize=xdl.nn.Standardize(10))
    with pytest.raises(ValueError, match=r"^X must be a rectangular array"):
        fit_many([small()], [[0.0, 1.0], [0.0]], [0, 1])
    with pytest.raises(ValueError, match=r"^X has no features, got shape \(320, 0\)"):
        fit_many([small()], np.zeros((320, 0)), y)


class StopAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch:
            trainer.stop_training = True


def test_a_callback_that_stops_the_batch_stops_every_model(digits):
    X, y, dev = digits
    with xdl.use("numpy"):
        results = fit_many([small(seed=1), small(seed=2)], X, y, dev=dev, callbacks=[StopAt(2)])
        assert [(r.status, r.history.stopped_epoch, len(r.history)) for r in results] == [("stopped", 2, 2)] * 2


def test_a_model_stopped_by_early_stopping_on_the_batch_says_the_stop_was_the_batchs(digits):
    """EarlyStopping on the batch reads the batch's record (its best model's dev cost each epoch):
    once the best model completed, a model still improving was stopped with "dev cost did not
    improve for 2 epochs" in its own history, false of it."""
    X, y, dev = digits
    with xdl.use("numpy"):
        results = fit_many([small(seed=1, lr=1e-2, epochs=2, patience=0), small(seed=2, lr=1e-3, epochs=10, patience=0)],
                           X, y, dev=dev, callbacks=[xdl.train.EarlyStopping(patience=1, restore_best=False)])
    second = results[1].history
    assert results[1].status == "stopped" and len(second) < 10 and second["dev_cost"] == sorted(second["dev_cost"])[::-1]
    assert second.stopped_by == "stopped with the batch: dev cost did not improve for 1 epoch"


class NoBudget(Callback):
    def on_train_begin(self, trainer):
        trainer.stop_training = True


def test_a_callback_that_stops_the_batch_before_it_trains_stops_every_model_naming_it(digits):
    """As a Trainer's: each model's result says it was stopped, and by what (it said "training",
    after fit had returned)."""
    X, y, dev = digits
    results = fit_many([small(seed=1), small(seed=2)], X, y, dev=dev, callbacks=[NoBudget()])
    assert [(r.status, r.history.stopped_epoch, r.history.stopped_by, len(r.history)) for r in results] == \
        [("stopped", 0, "stopped with the batch: stopped by NoBudget before epoch 1", 0)] * 2


def test_a_stack_a_callback_copies_draws_a_new_dropout_mask_at_each_training_pass(digits):
    """As a Trainer's model: a copy a callback keeps took the key of the epoch's last step, one mask
    at every training pass of the copy."""
    import copy

    X, y, dev = digits

    class KeepCopy(Callback):
        def on_epoch_end(self, trainer, record):
            self.copy = copy.deepcopy(trainer.model)

    keep = KeepCopy()
    with xdl.use("numpy"):
        fit_many([small(seed=1, dropout=0.5, epochs=1), small(seed=2, dropout=0.5, epochs=1)], X, y,
                 callbacks=[keep], capture=False)
        x = X[:8, None, :].repeat(2, axis=1).astype(np.float32)  # (B, K, C): each model's input
        twice = [keep.copy(x, training=True).numpy() for _ in range(2)]
    assert not np.array_equal(*twice)


def test_a_stop_by_a_callback_after_the_checkpoint_is_saved_by_it(digits, tmp_path):
    """As a Trainer's: with every=5, a stop at epoch 2 by a callback ordered after the Checkpoint
    left no checkpoint.npz; each Checkpoint that ran before the stop saves the stopped batch."""
    X, y, dev = digits

    class StopLate(Callback):
        order = 200

        def on_epoch_end(self, trainer, record):
            trainer.stop_training = record["epoch"] == 2

    results = fit_many([small(seed=1, epochs=4)], X, y, dev=dev, callbacks=[StopLate(), Checkpoint(tmp_path, every=5)])
    assert (results[0].status, len(results[0].history)) == ("stopped", 2)
    assert (tmp_path / "checkpoint.npz").is_file()


def test_a_callback_is_told_of_the_error_that_ends_the_batch(digits):
    """As a Trainer's: every callback's on_exception sees the error before it goes on."""
    X, y, dev = digits

    class Fails(Callback):
        def on_epoch_end(self, trainer, record):
            raise KeyError("a bug in my logger")

    class Told(Callback):
        errors = []

        def on_exception(self, trainer, error):
            self.errors.append(error)

    told = Told()
    with pytest.raises(KeyError, match="a bug in my logger") as raised:
        fit_many([small(seed=1)], X, y, dev=dev, callbacks=[Fails(), told])
    assert told.errors == [raised.value]


def test_a_resume_trains_completed_models_on_when_given_more_epochs(digits, tmp_path):
    """As ``xdl train --resume --epochs``: a batch that completed 2 epochs, resumed with 4, ends where a
    straight 4-epoch batch ends; a model that completed before the batch's last epoch cannot catch
    up, a finished batch resumed as it was ends as it ended, and only epochs and patience change."""
    X, y, dev = digits

    def run(epochs, resume=None, **change):
        configs = [small(seed=1, epochs=epochs[0], dropout=0.2, schedule="inverse_time", decay_rate=0.3),
                   small(**{"seed": 2, "epochs": epochs[1], "lr": 1e-2, "dropout": 0.1, **change})]
        return fit_many(configs, X, y, dev=dev, seed=3, dtype="float64", resume=resume,
                        callbacks=[Checkpoint(tmp_path, every=None)])

    with xdl.use("numpy"):
        straight = fit_many([small(seed=1, epochs=4, dropout=0.2, schedule="inverse_time", decay_rate=0.3),
                             small(seed=2, epochs=3, lr=1e-2, dropout=0.1)], X, y, dev=dev, seed=3, dtype="float64")
        first = run((2, 2))
        with pytest.warns(UserWarning, match=r"resume: every model .* has finished .*nothing to train; the batch ends "
                                              r"as it ended"):
            ended = run((2, 2), resume=tmp_path)
        for a, b in zip(first, ended):  # (killed while writing its outputs: a resume gives them)
            assert a.status == b.status == "completed" and a.history["dev_cost"] == b.history["dev_cost"]
            assert_same_weights(a.model, b.model, 0.0)
        with pytest.raises(ValueError, match=r"resume: configs\[1\]\.lr is 0\.02, the checkpoint's was 0\.01; .*only their "
                                             r"epochs, patience, precision may change"):
            run((4, 3), resume=tmp_path, lr=2e-2)
        with pytest.raises(ValueError, match=r"configs\[1\]\.patience: .* cannot be switched on or off"):
            run((4, 3), resume=tmp_path, patience=2)
        resumed = run((4, 3), resume=tmp_path)
        for a, b in zip(straight, resumed):
            assert a.status == b.status == "completed" and len(b.history) == len(a.history)
            assert_same_weights(a.model, b.model, 0.0)
            assert a.history["dev_cost"] == b.history["dev_cost"]
        # model 1 completed at epoch 3, the batch went on to 4: it cannot train on in step with model 0
        with pytest.raises(ValueError, match=r"configs\[1\]\.epochs is 5, but model 1 completed its 3 epochs before "
                                             r"the batch's epoch 4"):
            run((6, 5), resume=tmp_path)
        fit_many([small(seed=1, epochs=4, schedule="cosine")], X, y, dev=dev, seed=3,
                 callbacks=[Checkpoint(tmp_path / "cosine", every=None)])
        with pytest.raises(ValueError, match=r"configs\[0\]\.epochs: .*cosine schedule .* spans 4 epochs"):
            fit_many([small(seed=1, epochs=6, schedule="cosine")], X, y, dev=dev, seed=3,
                     callbacks=[Checkpoint(tmp_path / "cosine", every=None)], resume=tmp_path / "cosine")


class TenthOfTheRate(Callback):
    """Keras's ReduceLROnPlateau at its simplest: every model's rate × 0.1 at each epoch's end."""

    def on_epoch_end(self, trainer, record):
        trainer.optimizer.lr = trainer.optimizer.lr * 0.1


def test_a_rate_a_callback_sets_is_the_rate_each_model_trains_at(digits, tmp_path):
    """``trainer.optimizer.lr = …`` in a callback: a model without a schedule trains on at that rate,
    as a Trainer's run does (the batch set each config's lr back at every epoch's start: the rate was
    never used, the history said the config's); the checkpoint holds it, so a resume goes on at it."""
    X, y, dev = digits
    configs = [small(seed=1, lr=1e-2), small(seed=2, lr=3e-3)]
    run = dict(dev=dev, seed=3, dtype="float64")
    with xdl.use("numpy"):
        results = fit_many(configs, X, y, callbacks=[TenthOfTheRate()], **run)
        for config, result in zip(configs, results):
            model, history = alone(config, X, y, dev, seed=3, callbacks=[TenthOfTheRate()])
            assert result.history["lr"] == history["lr"] == pytest.approx([config.lr * 0.1 ** e for e in range(4)])
            assert_same_weights(result.model, model, 1e-10)
        with pytest.raises(Interrupted):
            fit_many(configs, X, y, callbacks=[TenthOfTheRate(), InterruptAt(2), Checkpoint(tmp_path)], **run)
        resumed = fit_many(configs, X, y, callbacks=[TenthOfTheRate(), InterruptAt(0), Checkpoint(tmp_path)],
                           resume=tmp_path, **run)
        for a, b in zip(results, resumed):
            assert a.history["lr"] == b.history["lr"]
            assert_same_weights(a.model, b.model, 0.0)


def test_a_control_file_stops_a_batch_but_cannot_set_its_rates(digits, tmp_path):
    from xdl.train import Control

    X, y, dev = digits
    (tmp_path / "control.toml").write_text("lr = 0.01\n")
    with xdl.use("numpy"), pytest.warns(UserWarning, match="lr: a batch of models .* can stop it, not set its rates"):
        results = fit_many([small(lr=1e-3), small(lr=3e-3)], X, y, dev=dev, callbacks=[Control(tmp_path)])
    assert [r.history["lr"] for r in results] == [[1e-3] * 4, [3e-3] * 4]
    (tmp_path / "control.toml").write_text("stop = true\n")
    with xdl.use("numpy"):
        results = fit_many([small(), small(seed=2)], X, y, dev=dev, callbacks=[Control(tmp_path)])
    assert [len(r.history) for r in results] == [1, 1]
    assert [r.history.stopped_by for r in results] == ["stopped with the batch: control.toml at epoch 1"] * 2
    assert (tmp_path / "control-applied-epoch-1.toml").is_file()


def test_a_model_whose_state_becomes_non_finite_fails_as_alone_while_its_costs_stay_finite(digits):
    """A running variance that overflows (the dev cost stays finite: in evaluation β is the output)
    and weights made infinite by the last step of an epoch fail the model, as a Trainer fails."""
    X, y, dev = digits
    with xdl.use("numpy"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        config = small(seed=1, batch_norm=True, epochs=2, lr=1e-3)
        huge = fit_many([config], X * 1e19, y, dev=(dev[0] * 1e19, dev[1]), dtype="float32")[0]
        assert huge.status == "failed" and re.search(r"running_var became NaN or Inf at epoch 1, step 1, in its "
                                                     r"forward pass.*standardize the inputs", huge.error)  # as alone
        with pytest.raises(FloatingPointError, match=r"running_var became NaN or Inf at epoch 1, step 1, in its "
                                                     r"forward pass.*standardize the inputs"):
            alone(config, X * 1e19, y, (dev[0] * 1e19, dev[1]), seed=0, dtype=np.float32)
        one_step = dict(optimizer="sgd", batch_norm=False, batch_size=len(X), epochs=1)
        good, blown = fit_many([small(seed=1, lr=1e-2, **one_step), small(seed=1, lr=3e38, **one_step)], X * 100, y,
                               dtype="float32", eval_train=False)
    assert good.status == "completed" and blown.status == "failed"
    assert "weight" in blown.error and "became NaN or Inf in epoch 1" in blown.error
    assert all(np.isfinite(a).all() for a in blown.model.state_dict().values())  # its initial state, kept


def test_a_model_whose_cost_and_state_both_blew_up_is_said_to_diverge_as_alone():
    """`Trainer._check_record`'s order: the train cost far above ln C (and its first-epoch hint) is
    named before a running variance that overflowed with it. The batch named the variance, so a
    model's history.diverged was not the history its configuration gets alone."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((41, 2)), rng.integers(0, 2, 41)
    config = small(hidden=[2, 3], optimizer="nesterov", lr=1e30, beta1=0.0, batch_norm=True, batch_size=8,
                   epochs=1, seed=226)
    with xdl.use("numpy"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        batched = fit_many([config], X, y, dtype="float64", n_classes=2)[0]
        with pytest.raises(FloatingPointError) as error:
            alone(config, X, y, None, seed=0, n_classes=2)
    assert batched.status == "failed"
    assert batched.history.diverged.startswith("the train cost became ")
    assert batched.history.diverged in str(error.value)  # the same words, hint included
    assert batched.history.diverged.endswith("; in the first epoch already: unstandardized inputs make steps that "
                                             "large as a large rate does — standardize the inputs "
                                             "(xdl.data.Standardizer)")


class RaiseAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch:
            raise RuntimeError("stop here")


def test_a_resume_says_a_stopped_model_stays_stopped_whatever_its_patience(digits, tmp_path):
    """A Trainer's run stopped early trains on when resumed with a larger patience; a batch's model
    stopped before the batch's end cannot train in step with the others: it stays stopped — said,
    where the warning spoke only of raising the epochs of a completed model."""
    X, y, dev = digits

    def run(patience, resume=None):
        configs = [small(seed=1, lr=0.5, schedule="none", epochs=12, patience=patience), small(seed=2, epochs=12)]
        return fit_many(configs, X, y, dev=dev, seed=3, dtype="float64", resume=resume, callbacks=[Checkpoint(tmp_path)])

    with xdl.use("numpy"):
        first = run(1)
        assert first[0].status == "stopped" and len(first[0].history) < 12
        with pytest.warns(UserWarning) as said:
            again = run(4, resume=tmp_path)
    messages = [str(w.message) for w in said]
    assert re.fullmatch(rf"resume: model 0 was stopped by early stopping after {len(first[0].history)} epochs; it "
                        r"stays stopped .*configs\[0\]\.patience 4 is not applied to it", messages[0])
    assert messages[1].startswith("resume: every model of the checkpoint") and len(messages) == 2
    assert again[0].status == "stopped" and again[0].history["dev_cost"] == first[0].history["dev_cost"]


def test_a_resume_refuses_other_callback_types_or_classes_before_anything_changes(digits, tmp_path):
    X, y, dev = digits
    configs = [small(seed=1, epochs=2), small(seed=2, epochs=2)]
    with xdl.use("numpy"):
        fit_many(configs, X, y, dev=dev, callbacks=[xdl.train.Control(tmp_path), Checkpoint(tmp_path)])
        longer = [dataclasses.replace(c, epochs=4) for c in configs]
        trainer = xdl.train.ManyTrainer(longer, callbacks=[xdl.train.EarlyStopping(restore_best=False),
                                                           Checkpoint(tmp_path)])
        with pytest.raises(ValueError, match=r"resume: callbacks differs from the checkpoint's \(\['Control', "
                                             r"'Checkpoint'\], now \['EarlyStopping', 'Checkpoint'\]\)"):
            trainer.fit(X, y, dev=dev, resume=tmp_path)
        assert trainer.epoch == 0 and trainer.optimizer.t == 0  # nothing loaded
        with pytest.raises(ValueError, match=r"resume: n_classes differs from the checkpoint's \(10, now 12\)"):
            fit_many(longer, X, y, dev=dev, n_classes=12, resume=tmp_path,
                     callbacks=[xdl.train.Control(tmp_path), Checkpoint(tmp_path)])


def test_early_stopping_restoring_the_batch_is_refused_and_an_unfinished_model_says_training(digits):
    X, y, dev = digits
    with pytest.raises(ValueError, match=r"EarlyStopping\(restore_best=True\) would put the whole batch back.*"
                                         r"TrainConfig\(patience=...\)"):
        xdl.train.ManyTrainer([small(seed=1)], callbacks=[xdl.train.EarlyStopping()])
    stopping = xdl.train.ManyTrainer([small(seed=1)], callbacks=[xdl.train.EarlyStopping(restore_best=False)])
    with pytest.raises(ValueError, match=r"EarlyStopping monitors 'dev_cost', which this run does not measure"):
        stopping.fit(X, y)  # no dev: refused before any epoch, as by a Trainer
    assert stopping.epoch == 0 and stopping.model is None
    trainer = xdl.train.ManyTrainer([small(seed=1), small(seed=2)], callbacks=[RaiseAt(2)])
    with xdl.use("numpy"), pytest.raises(RuntimeError, match="stop here"):
        trainer.fit(X, y, dev=dev)
    assert [(r.status, len(r.history)) for r in trainer.results()] == [("training", 2)] * 2  # not "completed"


# -- a batch driven as a user drives it -----------------------------------------------------------
def test_a_batch_whose_last_training_models_diverge_returns_its_results_with_callbacks(digits, tmp_path):
    X, y, dev = digits
    from xdl.train import EarlyStopping

    configs = [small(epochs=2, optimizer="sgd", lr=0.1),  # completes; the other diverges after it
               small(epochs=6, optimizer="sgd", lr=0.1, schedule="exponential", decay_base=100.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for callbacks in ([Checkpoint(tmp_path / "c")], [EarlyStopping(patience=3, restore_best=False)]):
            results = fit_many(configs, X, y, dev=dev, callbacks=callbacks)
            assert [r.status for r in results] == ["completed", "failed"]


def test_a_stack_predicts_each_models_classes(rng):
    models = []
    for seed in (1, 2, 3):
        xdl.seed(seed)
        models.append(xdl.nn.mlp(4, [8], 5))
    stacked = stack(models)
    X = rng.standard_normal((6, 4)).astype(np.float32)
    np.testing.assert_array_equal(stacked.predict(X), np.stack([m.predict(X) for m in models], axis=1))
    np.testing.assert_allclose(stacked.predict_proba(X)[:, 2], models[2].predict_proba(X), rtol=1e-6)


def test_seeds_beyond_int64_beside_small_ones_draw_their_own_masks():
    from xdl.nn import Dense, Dropout, Sequential

    models = []
    for _ in range(2):
        xdl.seed(0)
        models.append(Sequential(Dense(3, 8), Dropout(0.5)).astype(np.float64))
    stacked = stack(models)
    stacked.set_random_key([5, 2**63 + 7], 0)
    out = stacked(np.ones((2, 3))).numpy()
    models[1].set_random_key(2**63 + 7, 0)
    np.testing.assert_array_equal(out[:, 1], models[1](np.ones((2, 3))).numpy())


def test_a_later_fit_of_a_batch_has_the_trainers_guards(digits):
    from xdl.train.many import ManyTrainer

    X, y, dev = digits
    batch = ManyTrainer([small(epochs=2), small(epochs=2, seed=1)])
    batch.fit(X, y)
    with pytest.raises(ValueError, match="every model of this batch has ended"):
        batch.fit(X, y)

    class StopOnce(Callback):
        stopped = False

        def on_epoch_end(self, trainer, record):
            if not self.stopped:
                self.stopped = True
                raise Interrupted("SIGINT", 1, 0)  # raised at the epoch's end: where its run is, unknown

    other = ManyTrainer([small(epochs=3)], callbacks=[StopOnce()])
    with pytest.raises(Interrupted):
        other.fit(X, y, n_classes=10)
    with pytest.raises(RuntimeError, match="stopped inside a step or an epoch's end"):
        other.fit(X, y)
    other._mid_step = False  # (as if it had stopped between epochs)
    with pytest.raises(ValueError, match=r"n_classes differs from the one this batch was built with by its first fit "
                                         r"\(10\)"):
        other.fit(X, y, n_classes=12)
    with pytest.raises(ValueError, match="progress must be True or False"):
        ManyTrainer([small()], progress="no")


class ResultsAt(Callback):
    def __init__(self, epoch):
        self.epoch, self.results = epoch, None

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch:
            self.results = trainer.results()


def test_results_taken_mid_run_keep_the_history_they_had(digits):
    X, y, dev = digits
    taken = ResultsAt(2)
    fit_many([small(epochs=4)], X, y, callbacks=[taken])
    assert len(taken.results[0].history) == 2


def test_a_resume_with_no_more_epochs_completes_and_standardize_is_compared(digits, tmp_path):
    X, y, dev = digits
    from xdl.data import Standardizer

    layer = Standardizer().fit(X).layer()

    class StopAt(Callback):
        order = 200  # after the Checkpoint wrote epoch 2

        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                raise Interrupted("SIGINT", 3, 0, "stopped for the test")

    with pytest.raises(Interrupted):
        fit_many([small(epochs=5)], X, y, standardize=layer, callbacks=[StopAt(), Checkpoint(tmp_path)])
    with pytest.raises(ValueError, match="resume: standardize differs from the checkpoint's"):
        fit_many([small(epochs=5)], X, y, callbacks=[StopAt(), Checkpoint(tmp_path)], resume=tmp_path)
    with pytest.warns(UserWarning, match="the checkpoint's run is over"):
        results = fit_many([small(epochs=2)], X, y, standardize=layer, callbacks=[StopAt(), Checkpoint(tmp_path)],
                           resume=tmp_path)
    assert results[0].status == "completed"


def test_each_models_start_is_kept_in_the_checkpoint_and_read_on_resuming(digits, tmp_path):
    """Where each model started (its first epoch's mean step cost) decides its divergence with the
    limit: a resume reads it back (a checkpoint without it falls back to the limit alone)."""
    from xdl.serialization import read_extra

    X, y, dev = digits
    configs = [small(seed=s, lr=lr, epochs=2) for s, lr in ((1, 3e-3), (2, 1e-2))]
    fit_many(configs, X, y, dev=dev, seed=3, eval_train=False, callbacks=[Checkpoint(tmp_path)])
    starts = read_extra(tmp_path / "checkpoint.npz")[0]["start_costs"]
    assert len(starts) == 2 and all(0 < s < 10 for s in starts)  # near ln 10, where a classifier starts
    more = [dataclasses.replace(c, epochs=3) for c in configs]
    fit_many(more, X, y, dev=dev, seed=3, eval_train=False, callbacks=[Checkpoint(tmp_path)], resume=tmp_path)
    assert read_extra(tmp_path / "checkpoint.npz")[0]["start_costs"] == starts


class KerasEpochEnd(Callback):
    def on_epoch_end(self, epoch, logs=None):  # Keras's signature: called with (trainer, record)
        print(epoch % 5, logs["val_loss"])


class KerasBatchEnd(Callback):
    def on_batch_end(self, batch, logs=None):  # Keras's hook: xdl calls none such
        print(batch)


@pytest.mark.parametrize("callback, said", [
    (KerasEpochEnd(), r"KerasEpochEnd.on_epoch_end\(self, epoch, logs=None\) is Keras's"),
    (KerasBatchEnd(), r"KerasBatchEnd.on_batch_end is no hook of xdl's Callback, which has .*on_train_end: it "
                     r"would never be called$")])  # (no hint at a hook after each step: fit_many calls none)
def test_a_keras_callback_is_refused_as_a_trainer_refuses_it(digits, callback, said):
    """A Trainer refuses a Keras hook or on_epoch_end signature when it is made; fit_many took them:
    the signature failed at the first epoch's end ("unsupported operand type(s) for %: 'ManyTrainer'
    and 'int'"), the hook was never called, unsaid."""
    X, y, dev = digits
    with pytest.raises(TypeError, match=said):
        fit_many([small(seed=1, epochs=1)], X, y, dev=dev, callbacks=[callback])


class FailsAtEpoch(Callback):
    def __init__(self, at, error=RuntimeError):
        self.at, self.error = at, error

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.at:
            raise self.error("the callback's own bug")


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])  # (a raw one: a callback's, a second Ctrl-C)
def test_an_error_raised_by_a_callback_keeps_the_models_trained_in_its_results(digits, error):
    """The caller holds no trainer: the error took every model's training with it (an interruption's
    results were kept, an error's not; a KeyboardInterrupt not xdl's `Interrupted` kept none either).
    Each result is its model at the end of the last epoch its history records, as that run trained to
    there ends."""
    X, y, dev = digits
    configs = [small(seed=1, lr=1e-3), small(seed=2, lr=1e-2)]
    with pytest.raises(error, match="the callback's own bug") as caught:
        fit_many(configs, X, y, dev=dev, callbacks=[FailsAtEpoch(2, error)])
    assert "the 2 results as they stood at the end of epoch 2 are in its .results" in caught.value.__notes__[0]
    shorter = fit_many([dataclasses.replace(c, epochs=2) for c in configs], X, y, dev=dev)
    for kept, alone in zip(caught.value.results, shorter):
        assert kept.status == "training" and kept.history["dev_cost"] == alone.history["dev_cost"]
        for name, value in alone.model.state_dict().items():
            np.testing.assert_array_equal(kept.model.state_dict()[name], value)


def test_a_refusal_before_any_epoch_carries_no_results(digits, tmp_path):
    """A fit refused before training (another unfinished run's checkpoint in the directory) was
    noted "the 1 results as they stood at the end of epoch 0 are in its .results": untrained models."""
    X, y, dev = digits
    after_the_checkpoint = type("FailsAfterCheckpoint", (FailsAtEpoch,), {"order": 200})(1)
    with pytest.raises(RuntimeError, match="the callback's own bug"):
        fit_many([small(seed=1)], X, y, dev=dev, callbacks=[Checkpoint(tmp_path), after_the_checkpoint])
    with pytest.raises(FileExistsError, match="holds the checkpoint of an unfinished run") as caught:
        fit_many([small(seed=1)], X, y, dev=dev, callbacks=[Checkpoint(tmp_path)])
    assert not hasattr(caught.value, "results") and not getattr(caught.value, "__notes__", None)


class KerasModelStop(Callback):
    def on_epoch_end(self, trainer, record):
        trainer.model.stop_training = True  # Keras's self.model.stop_training


def test_keras_model_stop_training_set_by_a_callback_stops_the_batch_as_a_trainers_run(digits):
    """A Trainer stops (saying xdl's flag); the batch trained on to its last epoch, unsaid."""
    X, y, dev = digits
    with pytest.warns(UserWarning, match=r"KerasModelStop set trainer.model.stop_training"):
        results = fit_many([small(seed=1)], X, y, dev=dev, callbacks=[KerasModelStop()])
    assert results[0].status == "stopped" and len(results[0].history) == 1


def test_a_callback_given_twice_is_refused_as_a_trainer_refuses_it(tmp_path):
    checkpoint = Checkpoint(tmp_path)
    with pytest.raises(ValueError, match=r"callbacks: Checkpoint\(.*\) is given twice"):
        fit_many([small(seed=1)], np.zeros((8, 4)), np.zeros(8, dtype=int), callbacks=[checkpoint, checkpoint])


@pytest.mark.parametrize("edit, said", [
    (lambda extra, arrays: extra.update(errors=[]), "its 'errors' is [], expected a list of 2 strings or nulls"),
    (lambda extra, arrays: extra["provenance"].pop("dev"), "its provenance has no 'dev'"),
    (lambda extra, arrays: extra.update(step=float("inf")), "its 'step' is inf, expected an integer ≥ 0"),
    (lambda extra, arrays: extra["stopping"].__setitem__(1, True), "its 'stopping' is [{"),
    (lambda extra, arrays: arrays.pop("good/buffer/0"), "it has no array 'good/buffer/0'")])
def test_a_damaged_batch_checkpoint_is_refused_naming_the_field_before_anything_changes(digits, tmp_path, edit, said):
    """A fit_many checkpoint's fields were read as they were: a damaged or edited file was a KeyError
    ('dev', 'good/buffer/0'), an OverflowError, a TypeError of the resume — and an ``errors`` list
    cut short trained the batch, wrote its checkpoints over the file, then failed as an IndexError.
    Refused as a Trainer's checkpoint is (`check_run_state`): the file and field named, nothing written."""
    from xdl.serialization import EXTRA_PREFIX

    X, y, dev = digits
    configs = [small(seed=1, epochs=1), small(seed=2, epochs=1)]
    with xdl.use("numpy"):
        fit_many(configs, X, y, dev=dev, callbacks=[Checkpoint(tmp_path)])
        path = tmp_path / "checkpoint.npz"
        def change(header, members):  # (xdl.save takes one model, not a batch's stack: the file rewritten as is)
            arrays = {k[len(EXTRA_PREFIX):]: members.pop(k) for k in list(members) if k.startswith(EXTRA_PREFIX)}
            edit(header["extra"], arrays)
            members.update({EXTRA_PREFIX + k: v for k, v in arrays.items()})

        edit_saved(path, change)
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        longer = [dataclasses.replace(c, epochs=2) for c in configs]
        with pytest.raises(ValueError, match=re.escape(f"resume: {str(path)!r} is damaged or was edited: {said}")):
            fit_many(longer, X, y, dev=dev, callbacks=[Checkpoint(tmp_path)], resume=tmp_path)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_batch_checkpoint_with_a_pruned_model_resumes(digits, tmp_path):
    """`stop_model(k, "pruned")` (`STOP_STATUSES`; `xdl.tune.pruning.BatchPruning`'s) writes status
    "pruned" into the batch's checkpoint: its resume was refused as a damaged file ("its 'status' is
    ['pruned', 'completed'], expected a list of 2 of training, completed, stopped, failed")."""
    class Prune(Callback):
        def on_epoch_end(self, trainer, record):
            trainer.stop_model(0, "pruned")  # (after epoch 1, while model 0 trains)

    X, y, dev = digits
    configs = [small(seed=1, epochs=2), small(seed=2, epochs=2)]
    with xdl.use("numpy"):
        fit_many(configs, X, y, dev=dev, callbacks=[Prune(), Checkpoint(tmp_path)])
        longer = [dataclasses.replace(c, epochs=3) for c in configs]
        results = fit_many(longer, X, y, dev=dev, callbacks=[Prune(), Checkpoint(tmp_path)], resume=tmp_path)
    assert [r.status for r in results] == ["pruned", "completed"]
    assert [len(r.history) for r in results] == [1, 3]


def test_a_refused_resume_leaves_an_interrupted_batch_able_to_go_on(digits, tmp_path):
    """ManyTrainer marked itself "stopped inside a step" before its load_checkpoint checked anything: a
    resume refused before anything was read (no checkpoint there, a typo) left a batch interrupted by
    Ctrl-C — no Checkpoint, so no other way on — refused every later fit."""
    from xdl.train.many import ManyTrainer
    X, y, _ = digits
    batch = ManyTrainer([small(epochs=2)], callbacks=[InterruptAt(1)])
    with pytest.raises(Interrupted):
        batch.fit(X, y)
    with pytest.raises(FileNotFoundError, match="resume: no checkpoint at"):
        batch.fit(X, y, resume=tmp_path / "no-such-run")
    assert batch.resumed is False
    results = batch.fit(X, y)
    assert batch.epoch == 2 and [r.status for r in results] == ["completed"]


def test_stop_model_leaves_a_model_already_stopped_as_it_is(digits):
    """A second `stop_model` of a model (another status, a later epoch) changes nothing: its result
    says the first stop."""
    class Stop(Callback):
        def on_epoch_end(self, trainer, record):
            trainer.stop_model(0, "pruned" if record["epoch"] == 1 else "stopped")

    X, y, dev = digits
    with xdl.use("numpy"):
        results = fit_many([small(seed=1, epochs=3), small(seed=2, epochs=3)], X, y, dev=dev, callbacks=[Stop()])
    assert [r.status for r in results] == ["pruned", "completed"]
    assert (results[0].history.stopped_epoch, results[0].history.stopped_by) == (1, "pruned by a callback")


def test_a_resume_with_a_patience_the_model_has_waited_out_stops_it_there_as_a_trainers_run(digits, tmp_path,
                                                                                             monkeypatch):
    """A Trainer's run resumed with a patience no larger than the epochs it has waited stays stopped
    there (`EarlyStopping.on_train_begin`); a batch's model trained another epoch, and went on where
    that one improved (waited 3 epochs, resumed with patience 2: it trained to epoch 7)."""
    X, y, dev = digits
    script = [1.0, 2.0, 2.0, 2.0, 0.5, 2.0, 2.0, 2.0]  # model 0's dev cost at each epoch
    evaluate = xdl.train.ManyTrainer._evaluation_sums

    def scripted(self, X_, y_, *args, **kwargs):
        out = evaluate(self, X_, y_, *args, **kwargs)  # (the summed costs: the dev cost is the sum / m)
        if len(X_) == len(dev[0]):
            out["cost"][0] = script[self.epoch] * len(X_)
        return out

    monkeypatch.setattr(xdl.train.ManyTrainer, "_evaluation_sums", scripted)

    def run(epochs, patience, resume=None):
        configs = [small(seed=1, epochs=epochs, patience=patience), small(seed=2, epochs=epochs)]
        return fit_many(configs, X, y, dev=dev, seed=3, resume=resume, callbacks=[Checkpoint(tmp_path)])

    with xdl.use("numpy"):
        first = run(4, 5)
        assert first[0].status == "completed" and first[0].history.best_epoch == 1
        resumed = run(8, 2, resume=tmp_path)
    assert resumed[0].status == "stopped" and resumed[0].history.stopped_epoch == 4
    assert resumed[0].history["dev_cost"] == script[:4] and resumed[0].history.best_epoch == 1
    assert resumed[0].history.stopped_by == "dev cost did not improve for 3 epochs"
    assert_same_weights(resumed[0].model, first[0].model, 0.0)  # its best epoch's, as before
    assert resumed[1].status == "completed" and len(resumed[1].history) == 8


def test_a_refused_batch_resume_names_the_checkpoint_file(digits, tmp_path):
    """A Trainer's refused resume names the checkpoint it compared with; a batch's named the option and
    both values but not the file (a script resuming one of several runs could not tell which)."""
    X, y, dev = digits
    fit_many([small(epochs=1), small(epochs=1, seed=1)], X, y, dev=dev, callbacks=[Checkpoint(tmp_path)])
    where = re.escape(repr(str(tmp_path / "checkpoint.npz")))
    for configs, kwargs, said in [
            ([small(epochs=2), small(epochs=2, seed=1, lr=1e-2)], {}, r"configs\[1\]\.lr is 0\.01"),
            ([small(epochs=2), small(epochs=2, seed=1)], {"seed": 1},
             r"seed differs from the checkpoint's \(0, now 1\)"),
            ([small(epochs=2)], {}, r"the checkpoint holds 2 models, configs has 1")]:
        with pytest.raises(ValueError, match=rf"resume: {said}.*{where}"):
            fit_many(configs, X, y, dev=dev, callbacks=[Checkpoint(tmp_path)], resume=tmp_path, **kwargs)


def test_a_batch_whose_every_model_stopped_early_writes_its_checkpoint_there(digits, tmp_path):
    """Every model stopped by early stopping before its epochs ends the batch (``stop_training``, as a
    Trainer's early stop): a Checkpoint of a longer period writes the batch's end at that epoch, so a
    resume finds the run over — without it the last checkpoint was an earlier epoch's, and a resume
    trained the stopped models again."""
    X, y, dev = digits
    configs = [small(seed=1, lr=0.05, patience=1, epochs=40), small(seed=2, lr=0.05, patience=1, epochs=40)]
    with xdl.use("numpy"):
        trainer = ManyTrainer(configs, dtype="float64", callbacks=[Checkpoint(tmp_path, every=100)])
        trainer.fit(X, y, dev=dev)
    assert trainer.status == ["stopped", "stopped"] and trainer.epoch < 40 and trainer.stop_training
    assert trainer.last_checkpoint_at == (trainer.epoch, 0)


def test_the_batch_records_best_model_is_the_one_best_at_that_epoch(digits):
    """The batch's record of an epoch names the model whose dev cost is lowest at that epoch (and its
    costs), not one best at an earlier epoch: a callback (a Checkpoint's best.npz) watches it."""
    X, y, dev = digits
    configs = [small(seed=1, lr=0.1), small(seed=2, lr=0.01), small(seed=3, lr=3e-3)]  # the best: 0, 0, 1, 1
    with xdl.use("numpy"):
        trainer = ManyTrainer(configs, dtype="float64")
        trainer.fit(X, y, dev=dev)
    for e, record in enumerate(trainer.history.records):
        costs = [h[e]["dev_cost"] for h in trainer.histories]
        assert record["best_model"] == int(np.argmin(costs)) and record["dev_cost"] == min(costs)
    assert len({record["best_model"] for record in trainer.history.records}) > 1  # (the best changed: a test)


def test_a_later_fit_of_a_batch_stopped_inside_an_epoch_refuses_other_examples(digits, monkeypatch):
    """As a Trainer's: a Ctrl-C inside an epoch, then a later fit on other data (as many steps or not)
    is refused, naming the examples — it went on from the step number over batches of other examples."""
    X, y, dev = digits
    trainer = ManyTrainer([small(epochs=2), small(epochs=2, lr=3e-3)])
    interrupt_at_step(monkeypatch, 2)
    with pytest.raises(Interrupted):
        trainer.fit(X, y, dev=dev)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"after step 2 of an epoch over 320 examples, and X has 300"):
        trainer.fit(X[:300], y[:300], dev=dev)
    assert [r.status for r in trainer.fit(X, y, dev=dev)] == ["completed", "completed"]  # (its data finishes it)


class EpochsSeen(Callback):
    """Keeps the epochs it saw across a resume (its state)."""

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, trainer, record):
        self.seen.append(record["epoch"])

    def state_dict(self):
        return {"seen": self.seen}, {}

    def load_state_dict(self, state, arrays):
        self.seen = list(state["seen"])


def test_a_resumed_batch_gives_each_callback_its_state_back(digits, tmp_path):
    X, y, dev = digits
    configs = [small(epochs=4), small(epochs=4, lr=3e-3)]
    with pytest.raises(Interrupted):
        fit_many(configs, X, y, dev=dev, callbacks=[InterruptAt(2), EpochsSeen(), Checkpoint(tmp_path)])
    seen = EpochsSeen()
    fit_many(configs, X, y, dev=dev, callbacks=[InterruptAt(0), seen, Checkpoint(tmp_path)], resume=tmp_path)
    assert seen.seen == [1, 2, 3, 4]


def test_a_failed_models_optimizer_state_is_cleared_and_its_row_stays_finite(digits, tmp_path):
    """A model that diverged may have NaN in its Adam moments: kept, its frozen row (rate 0) still
    became 0·NaN = NaN at each later step, and every checkpoint of the batch held NaN weights and moments."""
    X, y, dev = digits
    configs = [small(seed=1, lr=3e-3), small(seed=2, lr=1e30)]
    with xdl.use("numpy"):
        trainer = ManyTrainer(configs, dtype="float64", callbacks=[Checkpoint(tmp_path)])
        trainer.fit(X, y, dev=dev)
    assert trainer.status == ["completed", "failed"]
    assert np.isfinite(trainer.model.data).all()
    for name, state in trainer.optimizer.state_dict()["state"].items():
        assert np.isfinite(state).all() and not state[1].any(), name


def test_a_batch_stopped_by_a_callback_saves_through_its_checkpoints_only(digits, tmp_path):
    """A callback that stops the batch (EarlyStopping on it) after another ran on the epoch: only a
    Checkpoint saves the stop (at its epoch, resumable); the callback before it has nothing to save."""
    X, y, dev = digits
    seen = EpochsSeen()
    trainer = ManyTrainer([small(seed=1, lr=1e-2, epochs=2), small(seed=2, lr=1e-3, epochs=10)],
                          callbacks=[seen, Checkpoint(tmp_path, every=100),
                                     xdl.train.EarlyStopping(patience=1, restore_best=False)])
    trainer.fit(X, y, dev=dev)
    assert trainer.status[1] == "stopped" and seen.seen == list(range(1, trainer.epoch + 1)) and trainer.epoch < 10
    assert trainer.last_checkpoint_at == (trainer.epoch, 0)


def test_images_and_dev_images_train_as_their_flat_rows(digits):
    """(m, 8, 8) images with (m, 8, 8) dev images: each flattened as the first layer takes them, the
    dev set too (its evaluation is of every model), the results those of the flat rows."""
    X, y, (X_dev, y_dev) = digits
    configs = [small(seed=1, epochs=2), small(seed=2, epochs=2, lr=1e-2)]
    with xdl.use("numpy"):
        flat = fit_many(configs, X, y, dev=(X_dev, y_dev), dtype="float64")
        images = fit_many(configs, X.reshape(-1, 8, 8), y, dev=(X_dev.reshape(-1, 8, 8), y_dev), dtype="float64")
    for a, b in zip(flat, images):
        assert a.history["dev_cost"] == b.history["dev_cost"]
        assert_same_weights(a.model, b.model, 0.0)


def test_a_dev_set_of_one_example_is_measured_as_a_trainer_measures_it(digits):
    X, y, (X_dev, y_dev) = digits
    config = small(seed=1, epochs=2)
    with xdl.use("numpy"):
        result = fit_many([config], X, y, dev=(X_dev[:1], y_dev[:1]), seed=3, dtype="float64")[0]
        _, history = alone(config, X, y, (X_dev[:1], y_dev[:1]), seed=3)
    np.testing.assert_allclose(result.history["dev_cost"], history["dev_cost"], rtol=1e-10)
    assert result.history["dev_accuracy"] == history["dev_accuracy"]


def test_a_standardized_batch_runs_each_relu_and_dropout_as_one_op_as_a_stack_does(digits, monkeypatch):
    """fit_many's step with a leading Standardize runs the stack after it (`network_input`'s ``stack[1:]``):
    that slice was a plain Sequential, whose pairing knows one model's Dropout only, so each ReLU and
    stacked dropout ran as two ops (two kernels each way on the GPU, and an activation more in memory)
    where the whole stack runs them as one `stacked_relu_dropout` — the same values, bit for bit."""
    X, y, dev = digits
    standardize = xdl.data.Standardizer().fit(X).layer()
    configs = [small(dropout=0.3, seed=k, epochs=1) for k in range(3)]
    ops = xdl.current_backend().ops
    calls = []
    for name in ("stacked_relu_dropout_forward", "stacked_dropout_forward"):
        original = getattr(ops, name)
        monkeypatch.setattr(ops, name, lambda *a, _original=original, _name=name, **k: (calls.append(_name),
                                                                                        _original(*a, **k))[1])
    fit_many(configs, X, y, dev=dev, standardize=standardize, capture=False)
    assert calls and set(calls) == {"stacked_relu_dropout_forward"}
    whole = stack([c.build_model(X.shape[1], 10, standardize) for c in configs])
    assert type(whole[1:])._pair is type(whole)._pair  # a slice of a stack pairs its layers as the stack does


def test_a_model_whose_first_forward_pass_overflows_its_running_statistics_fails_told_of_its_init():
    """`Trainer._check_first_forward`'s check, model by model: weights drawn at normal(1e20) overflow a batch
    norm's running variance in the first forward pass while the cost stays finite; the batch failed that
    model only at the epoch's end, told "try a smaller learning rate" (at lr 1e-10). It fails after the first
    step in the Trainer's words, the others go on."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 2)), rng.integers(0, 2, 64)
    good = small(hidden=[16, 8], batch_norm=True, optimizer="adam", lr=1e-3, batch_size=16, epochs=2, seed=1)
    huge = dataclasses.replace(good, init="normal(1e20)", lr=1e-10)
    with xdl.use("numpy"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (NumPy's overflow)
        results = fit_many([good, huge], X, y, n_classes=2)
        with pytest.raises(FloatingPointError) as error:
            alone(huge, X, y, None, seed=0, n_classes=2, dtype=np.float32)
    assert [r.status for r in results] == ["completed", "failed"]
    said = results[1].history.diverged
    assert re.match(r"^(\d\.)?running_var became NaN or Inf at epoch 1, step 1, in its forward pass, before any update",
                    said)
    assert said.partition(" became ")[2] in str(error.value)  # the same words as alone (the stack's names: "1.")
    assert results[1].error.endswith("; the learning rate is not the cause — standardize the inputs "
                                     "(xdl.data.Standardizer) or draw smaller initial weights (he for ReLU, xavier "
                                     "for tanh)")
    assert len(results[0].history) == 2


def test_a_model_whose_optimizer_state_overflows_fails_and_the_others_go_on():
    """The Trainer's check of its optimizer's state, model by model: a weight_decay of 1e20 overflows Adam's
    second moment (v = inf, each step 0 from there) while the costs stay finite; the batch called that model
    completed. It fails, named and told to lower its decay as a Trainer is (`divergence.state_advice`: the rate
    does not scale the state); the other trains on."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 2)), rng.integers(0, 2, 64)
    good = small(hidden=[8], optimizer="adam", lr=1e-3, batch_size=16, epochs=2, seed=1)
    with xdl.use("numpy"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        results = fit_many([good, dataclasses.replace(good, weight_decay=1e20)], X, y, n_classes=2)
    assert [r.status for r in results] == ["completed", "failed"]
    assert results[1].history.diverged == "the optimizer's v became NaN or Inf in epoch 1"
    assert results[1].error.endswith("; try a smaller weight_decay (now 1e+20): the rule's state holds the decayed "
                                     "gradient g + wd·p, which Adam and RMSprop square — the learning rate does not "
                                     "scale it")
    assert len(results[0].history) == 2


def test_each_result_model_carries_the_settings_a_callback_set_on_the_stack(rng):
    """A callback's rates, momenta and ε set on the stack trained the models; each `Result.model` was rebuilt
    with the ones of the configurations, and computed other outputs than its model in the stack."""
    class Settings(Callback):
        def on_epoch_end(self, trainer, record):
            for layer in trainer.model.layers:
                if type(layer).__name__ == "StackedDropout":
                    layer.rates = [0.05, 0.45]
                if type(layer).__name__ == "StackedBatchNorm":
                    layer.momentum, layer.eps = [0.2, 0.7], 0.01

    X, y = rng.normal(size=(64, 5)), rng.integers(0, 3, 64)
    configs = [small(hidden=[6], epochs=2, batch_size=16, dropout=rate, batch_norm=True, seed=s)
               for s, rate in ((1, 0.2), (2, 0.3))]
    trainer = ManyTrainer(configs, seed=3, dtype="float64", callbacks=[Settings()])
    results = trainer.fit(X, y)
    trainer.model.set_random_key([4, 5], 2)
    out = trainer.model(X).numpy()
    for k, result in enumerate(results):
        model = result.model
        layers = {type(layer).__name__: layer for layer in model.layers}
        assert (layers["Dropout"].rate, layers["BatchNorm"].momentum, layers["BatchNorm"].eps) == \
            ([0.05, 0.45][k], [0.2, 0.7][k], 0.01)
        model.set_random_key(4 + k, 2)
        np.testing.assert_allclose(model(X).numpy(), out[:, k], rtol=1e-10, atol=1e-12)


def test_a_float64_result_with_an_eps_of_float64_only_is_taken_out_and_saved(digits, tmp_path):
    """A float64 batch whose batch norms' ε was set on the stack to 1e-50 (0 in float32): each result's model
    is built in float64, not in float32 and then cast (which refused that ε), and saved and loaded whole."""
    X, y, dev = digits

    class TinyEps(Callback):
        def on_epoch_end(self, trainer, record):
            for layer in trainer.model.layers:
                if type(layer).__name__ == "StackedBatchNorm":
                    layer.eps = 1e-50

    with xdl.use("numpy"):
        results = fit_many([small(seed=1, epochs=1, batch_norm=True), small(seed=2, epochs=1, batch_norm=True)],
                           X, y, dtype="float64", callbacks=[TinyEps()])
        for result in results:
            model = result.model
            assert model.dtype == np.float64 and [bn.eps for bn in model.layers if isinstance(bn, xdl.nn.BatchNorm)]\
                == [1e-50, 1e-50]
            loaded = xdl.load(xdl.save(model, tmp_path / f"{result.config.seed}.npz"))
            assert (loaded.predict(dev[0]) == model.predict(dev[0])).all()


KERAS_FIT_WAYS = [("validation_data", r"dev=\(X_dev, y_dev\)"), ("validation_split", "xdl.data.split"),
                  ("epochs", r"TrainConfig\(epochs="), ("batch_size", r"TrainConfig\(batch_size="),
                  ("initial_epoch", "resume="), ("class_weight", "not offered"), ("sample_weight", "not offered")]


@pytest.mark.parametrize("option, way", KERAS_FIT_WAYS + [("verbose", r"fit_many\(progress="),
                                                          ("shuffle", r"from fit_many\(seed=")])
def test_fit_many_says_where_a_keras_option_is(digits, option, way):
    """``fit_many(configs, X, y, validation_data=…, epochs=…)`` as Keras's fit: Python's bare "unexpected keyword
    argument" where `Trainer.fit` said the way here. Refused before any work (no configuration checked)."""
    X, y, dev = digits
    with pytest.raises(TypeError, match=rf"^fit_many\(\) takes no option {option}=: .*{way}"):
        fit_many([small()], X, y, **{option: dev})
    with pytest.raises(TypeError, match=r"^fit_many\(\) takes no option devv=: not an option of fit_many \(its "
                                        r"options: dev, seed, dtype, n_classes, standardize, callbacks, resume, "):
        fit_many(["not a config"], X, y, devv=dev)  # (the keyword refused first: before the configs' check)


@pytest.mark.parametrize("option, way", KERAS_FIT_WAYS + [
    ("verbose", r"ManyTrainer\(progress="), ("shuffle", r"from ManyTrainer\(seed="),
    ("callbacks", r"ManyTrainer\(callbacks=\[…\]\)"), ("devv", r"its options: dev, n_classes, standardize, resume")])
def test_many_trainer_fit_says_where_a_keras_option_is(digits, option, way):
    """As `fit_many`: ``ManyTrainer.fit`` refuses a Keras option saying where it is, before building the batch."""
    X, y, dev = digits
    batch = ManyTrainer([small(epochs=1), small(epochs=1, seed=1)])
    with pytest.raises(TypeError, match=rf"^ManyTrainer.fit\(\) takes no option {option}=: .*{way}"):
        batch.fit(X, y, **{option: dev})
    assert batch.model is None  # nothing built, nothing trained
    assert [r.status for r in batch.fit(X, y, dev=dev)] == ["completed", "completed"]  # (dev= is the way)


@pytest.mark.parametrize("caller, run, maker", [("Trainer.fit", xdl.train.Trainer, xdl.train.Trainer),
                                                ("fit_many", TrainConfig, fit_many),
                                                ("ManyTrainer.fit", TrainConfig, ManyTrainer)])
def test_every_keyword_a_keras_fit_hint_names_is_taken_there(caller, run, maker):
    """Each way `KERAS_FIT_OPTIONS` names as ``Maker(keyword=…)`` is a keyword of that maker, as each fit fills
    the table in."""
    named = {"Trainer": xdl.train.Trainer, "TrainConfig": TrainConfig, "fit_many": fit_many, "ManyTrainer": ManyTrainer}
    calls = 0
    for way in KERAS_FIT_OPTIONS.values():
        text = way.format(run=run.__name__, maker=maker.__name__, train_on="")  # (Trainer's tip names Keras's fit)
        for name, keyword in re.findall(r"(\w+)\((\w+)=", text):
            assert keyword in inspect.signature(named[name]).parameters, (caller, text)
            calls += 1
    assert calls >= 5


def test_a_resume_with_another_number_of_models_or_callbacks_names_it_and_leaves_the_checkpoint(digits, tmp_path):
    """A batch resumed with fewer or more configs than its checkpoint holds, or from a checkpoint whose
    callbacks' states are not one per callback (an older file, or one edited by hand), is refused naming the
    counts and the file before anything is read into the batch or written over the checkpoint."""
    X, y, dev = digits
    configs = [small(seed=k, epochs=2) for k in (1, 2, 3)]
    with xdl.use("numpy"):
        fit_many(configs[:2], X, y, dev=dev, callbacks=[Checkpoint(tmp_path, every=None)])
    path = tmp_path / "checkpoint.npz"
    saved = path.read_bytes()
    for n in (1, 3):
        with xdl.use("numpy"), pytest.raises(ValueError, match=rf"resume: the checkpoint holds 2 models, configs has "
                                                               rf"{n} \('.*checkpoint\.npz'\)"):
            fit_many(configs[:n], X, y, dev=dev, callbacks=[Checkpoint(tmp_path, every=None)], resume=tmp_path)
        assert path.read_bytes() == saved
    edit_saved(path, lambda header, arrays: header["extra"]["callbacks"].append({}))
    edited = path.read_bytes()
    with xdl.use("numpy"), pytest.raises(ValueError, match=r"resume: the checkpoint holds the state of 2 "
                                                           r"callbacks, this run has 1 callback \('.*npz'\)"):
        fit_many(configs[:2], X, y, dev=dev, callbacks=[Checkpoint(tmp_path, every=None)], resume=tmp_path)
    assert path.read_bytes() == edited


class RefusesBatches(Callback):
    """Refuses a ManyTrainer in check_fits from fit number ``from_fit`` on (1: the first), noting what it was given
    and whether any later hook ran."""

    def __init__(self, from_fit=1):
        self.from_fit, self.given, self.begun = from_fit, [], 0

    def check_fits(self, trainer):
        self.given.append((trainer, trainer.model is None))
        if len(self.given) >= self.from_fit:
            raise ValueError("RefusesBatches: no batch")

    def on_train_begin(self, trainer):
        self.begun += 1


def test_a_callbacks_check_fits_refuses_a_batch_before_any_work(digits, tmp_path):
    """fit_many called no callback's check_fits: one that refuses a ManyTrainer trained on, silently. Each fit —
    a first one, through fit_many or a ManyTrainer, a resume, a later fit — gives it the ManyTrainer before any
    work: no model built or loaded, no on_train_begin, no checkpoint written or changed, the history as it was."""
    X, y, dev = digits
    configs = [small(seed=1, epochs=2), small(seed=2, epochs=2, lr=3e-3)]
    with xdl.use("numpy"):
        fit_many(configs, X, y, dev=dev, callbacks=[Checkpoint(tmp_path / "saved", every=None)])
    saved = (tmp_path / "saved" / "checkpoint.npz").read_bytes()
    cases = 0
    for order in (-1, 0, 5):
        for resume in (None, tmp_path / "saved"):
            for through in ("fit_many", "ManyTrainer"):
                refuses = RefusesBatches()
                refuses.order = order  # (before, among or after the Checkpoint, which runs last)
                directory = tmp_path / f"new-{cases}" if resume is None else resume
                callbacks = [refuses, Checkpoint(directory, every=None)]
                trainer = ManyTrainer(configs, callbacks=callbacks)
                with xdl.use("numpy"), pytest.raises(ValueError, match="RefusesBatches: no batch"):
                    if through == "fit_many":
                        fit_many(configs, X, y, dev=dev, callbacks=callbacks, resume=resume)
                    else:
                        trainer.fit(X, y, dev=dev, resume=resume)
                assert len(refuses.given) == 1 and refuses.given[0][1] and refuses.begun == 0, (order, resume, through)
                if through == "ManyTrainer":
                    assert refuses.given[0][0] is trainer and trainer.model is None and len(trainer.history) == 0
                assert not (tmp_path / f"new-{cases}").exists()
                assert (tmp_path / "saved" / "checkpoint.npz").read_bytes() == saved
                cases += 1
    later = RefusesBatches(from_fit=2)  # a later fit of a batch Ctrl-C stopped, which goes on
    trainer = ManyTrainer([small(seed=1, epochs=3)], callbacks=[later, InterruptAt(1)])
    with xdl.use("numpy"):
        with pytest.raises(Interrupted):
            trainer.fit(X, y, dev=dev)
        weights, history = trainer.model.data.copy(), [dict(r) for r in trainer.history]
        with pytest.raises(ValueError, match="RefusesBatches: no batch"):
            trainer.fit(X, y, dev=dev)
    assert [(given is trainer, unbuilt) for given, unbuilt in later.given] == [(True, True), (True, False)]
    assert later.begun == 1 and trainer.epoch == 1 and [dict(r) for r in trainer.history] == history
    np.testing.assert_array_equal(trainer.model.data, weights)
    assert cases == 12


def built_in_callbacks(tmp_path) -> dict:
    """One of each `Callback` subclass xdl defines (xdl.train's and xdl.tune's), by class."""
    import types

    from xdl.train import Control, EarlyStopping, ReduceLROnPlateau
    from xdl.train.lr_find import RangeTest
    from xdl.tune.optuna_pruning import OptunaPruning
    from xdl.tune.pruning import BatchPruning, Pruning

    trial = types.SimpleNamespace(report=lambda value, step: None, should_prune=lambda: False)
    return {cb.__class__: cb for cb in (EarlyStopping(restore_best=False), ReduceLROnPlateau(),
                                        Checkpoint(tmp_path / "checkpoint"), Control(tmp_path),
                                        OptunaPruning(trial), Pruning({}, 2), BatchPruning({}, 2),
                                        RangeTest(np.array([1e-3, 1e-2]), 4.0, 0.98))}


def subclasses(cls) -> set:
    return {sub for direct in cls.__subclasses__() for sub in {direct, *subclasses(direct)}}


def test_every_built_in_callbacks_check_fits_takes_a_many_trainer(digits, tmp_path):
    """Every callback xdl defines, given a ManyTrainer before its first fit (no model, no optimizer) and after
    one, takes it or refuses it with a ValueError naming fit_many — not an AttributeError or a TypeError on a
    Trainer's attribute (ReduceLROnPlateau's said the optimizer was "a NoneType", then "a StackedOptimizer");
    Pruning, one run's, names the batch's own, BatchPruning."""
    import xdl.tune.optuna_pruning  # noqa: F401 - (its callback is one of xdl's)

    X, y, dev = digits
    made = built_in_callbacks(tmp_path)
    assert {c for c in subclasses(Callback) if c.__module__.startswith("xdl.")} == set(made)
    fitted = ManyTrainer([small(seed=1, epochs=1), small(seed=2, epochs=1)])
    with xdl.use("numpy"):
        fitted.fit(X, y, dev=dev)
    refusing = set()
    for trainer in (ManyTrainer([small(seed=1, epochs=1), small(seed=2, epochs=1)]), fitted):
        for cls, cb in made.items():
            try:
                cb.check_fits(trainer)
            except ValueError as e:
                assert "fit_many" in str(e) and ("rate each" in str(e) or "BatchPruning(" in str(e)), (cls, e)
                refusing.add(cls)
    assert refusing == {xdl.train.ReduceLROnPlateau, xdl.tune.pruning.Pruning}


def test_a_plateau_given_to_a_batch_is_refused_by_its_check_fits_at_the_fit(digits):
    """ReduceLROnPlateau's refusal of a batch is its check_fits's (the one place a callback refuses a trainer),
    at the fit before any work, naming fit_many and why; the rest of its checks never see the batch."""
    from xdl.train import ReduceLROnPlateau

    X, y, dev = digits
    for k in (1, 3):
        plateau = ReduceLROnPlateau()
        trainer = ManyTrainer([small(seed=s, epochs=1) for s in range(k)], callbacks=[plateau])
        with xdl.use("numpy"), pytest.raises(ValueError, match=r"^ReduceLROnPlateau sets one model's rate from its own "
                                                               r"record; fit_many's K models have a rate each"):
            trainer.fit(X, y, dev=dev)
        assert trainer.model is None and plateau.best == math.inf


def test_a_configs_precision_is_refused_where_it_is_not_the_backends_on_a_gpu():
    """A config's precision other than the default is refused (naming the config, its value, the backend's
    and the way) where it differs from the backend's on a GPU; the default takes the backend's, and on the CPU
    every precision is exact float32, as xdl train --precision tf32 runs there."""
    import itertools
    import types

    from xdl.backend import PRECISIONS

    cases = 0
    for device, name, theirs, mine in itertools.product(("cpu", "cuda"), ("numpy", "cupy"), PRECISIONS, PRECISIONS):
        backend = types.SimpleNamespace(device_type=device, name=name, precision=theirs)
        config = small(precision=mine)
        if device == "cuda" and mine not in ("float32", theirs):
            with pytest.raises(ValueError, match=rf"^configs\[3\]\.precision is '{mine}', but fit_many trains at the "
                                                 rf"precision of the backend in use, and {name}'s is '{theirs}': set "
                                                 rf"it with xdl\.use\('{name}', precision='{mine}'\)"):
                config.check_precision_in_use(backend, "configs[3]", "fit_many")
        else:
            assert config.check_precision_in_use(backend, "configs[3]", "fit_many") is None
        cases += 1
    assert cases == 16


def test_a_config_at_the_precision_in_use_is_the_one_it_trains_at():
    """What a run records of a config (`at_precision_in_use`): on a GPU the backend's precision, the one its
    products are computed at (a config at the default, float32, takes the backend's; another is refused, as by
    check_precision_in_use); on the CPU, exact float32 whatever is set, the config itself (as xdl train records its
    --precision there). The config given is left as it was."""
    import itertools
    import types

    from xdl.backend import PRECISIONS

    cases = 0
    for device, theirs, mine in itertools.product(("cpu", "cuda"), PRECISIONS, PRECISIONS):
        backend = types.SimpleNamespace(device_type=device, name="cupy", precision=theirs)
        config = small(precision=mine)
        if device == "cuda" and mine not in ("float32", theirs):
            with pytest.raises(ValueError, match=r"^configs\[1\]\.precision is 'tf32', but fit_many trains at"):
                config.at_precision_in_use(backend, "configs[1]", "fit_many")
        else:
            trained = config.at_precision_in_use(backend, "configs[1]", "fit_many")
            assert trained.precision == (theirs if device == "cuda" else mine)
            assert dataclasses.replace(trained, precision=mine) == config  # (nothing else differs)
        assert config.precision == mine
        cases += 1
    assert cases == 8


@pytest.mark.parametrize("backend_precision", ["float32", "tf32"])
def test_results_and_checkpoints_record_the_precision_the_batch_trained_at(backend, digits, tmp_path,
                                                                          backend_precision):
    """fit_many under xdl.use('cupy', precision='tf32') trained a config at the default at tf32, and its results'
    configs and its checkpoint's said float32: xdl train --config of such a config reproduced it at float32. They
    record the precision the batch trained at: the backend's on a GPU, the config's own on the CPU (exact float32
    whatever it says). The configs given are left as they were; a resume of the batch under the same backend is
    taken."""
    from xdl.serialization import read_extra

    X, y, dev = digits
    X, y = X[:64], y[:64]
    configs = [small(seed=k, epochs=1, hidden=[8]) for k in range(2)]
    recorded = backend_precision if backend.device_type == "cuda" else "float32"
    with xdl.use(backend, precision=backend_precision):
        results = fit_many(configs, X, y, dev=dev, callbacks=[Checkpoint(tmp_path)])
        assert [r.config.precision for r in results] == [recorded] * 2
        saved = read_extra(tmp_path / "checkpoint.npz")[0]["provenance"]["configs"]
        assert [c["precision"] for c in saved] == [recorded] * 2
        again = fit_many([small(seed=k, epochs=2, hidden=[8]) for k in range(2)], X, y, dev=dev,
                         callbacks=[Checkpoint(tmp_path)], resume=tmp_path)
        assert [r.config.precision for r in again] == [recorded] * 2
    assert [c.precision for c in configs] == ["float32"] * 2
    assert [dataclasses.replace(r.config, precision="float32") for r in results] == configs


@pytest.mark.parametrize("backend_precision", ["float32", "tf32"])
def test_a_configs_trainer_records_the_precision_it_trains_at(backend, backend_precision):
    """`TrainConfig.build_trainer`'s run_info (what its checkpoints record and a resume compares) holds the
    precision its Trainer trains at, as fit_many's results do: under xdl.use('cupy', precision='tf32') a config
    at the default trains at tf32 and records tf32; on the CPU its own, float32. The config is left as it was."""
    config = small(hidden=[4], epochs=1)
    recorded = backend_precision if backend.device_type == "cuda" else "float32"
    with xdl.use(backend, precision=backend_precision):
        trainer = config.build_trainer(config.build_model(3, 2))
    assert trainer.run_info["config"]["precision"] == recorded
    assert trainer.run_info["config"] == {**dataclasses.asdict(config), "precision": recorded}
    assert config.precision == "float32"


@pytest.mark.parametrize("backend_precision", ["float32", "tf32"])
def test_fit_many_refuses_a_config_whose_precision_the_gpu_would_not_train_at(backend, digits, backend_precision):
    """fit_many trained a config of precision tf32 at the backend's float32, unsaid: refused on a GPU before
    any work; one at the default takes the backend's (xdl.use's way), and on the CPU any is taken."""
    import itertools

    X, y, dev = digits
    X, y = X[:64], y[:64]
    with xdl.use(backend, precision=backend_precision):
        for precisions in itertools.product(("float32", "tf32"), repeat=2):
            configs = [small(seed=k, epochs=1, hidden=[8], precision=p) for k, p in enumerate(precisions)]
            refused = [k for k, p in enumerate(precisions) if p not in ("float32", backend_precision)]
            if backend.device_type == "cuda" and refused:
                trainer = ManyTrainer(configs)
                with pytest.raises(ValueError, match=rf"^configs\[{refused[0]}\]\.precision is 'tf32', but fit_many "
                                                     rf"trains at .* cupy's is 'float32': set it with "
                                                     rf"xdl\.use\('cupy', precision='tf32'\)"):
                    trainer.fit(X, y, dev=dev)
                assert trainer.model is None
            else:
                assert [r.status for r in fit_many(configs, X, y, dev=dev)] == ["completed"] * 2


# K = 3 models that differ in what EIGHT shares: momentum β, max_grad_norm, dropout rate, patience and epochs; of
# one seed, fit_many's: a model's dropout masks are keyed by its config's seed, a Trainer's by its own (its order's)
EACH_OWN = [dict(seed=7, lr=0.05, beta1=0.9, max_grad_norm=0.5, dropout=0.1, patience=1, epochs=5),
            dict(seed=7, lr=0.02, beta1=0.5, dropout=0.3, epochs=3),
            dict(seed=7, lr=0.1, beta1=0.0, max_grad_norm=2.0, dropout=0.2, weight_decay=0.01, l2=0.1, patience=2,
                 epochs=5)]


@pytest.mark.parametrize("optimizer", ["nesterov", "adam"])
def test_models_of_their_own_momentum_clipping_dropout_and_stopping_batched_equal_each_alone_float64(digits, optimizer):
    """Mutation testing: the oracle of the issue over the per-model settings no other float64 test varies together
    — each model of the batch ends with the weights, rates, costs and stopping epoch it has trained alone."""
    X, y, dev = digits
    configs = [small(optimizer=optimizer, **c) for c in EACH_OWN]
    with xdl.use("numpy"):
        results = fit_many(configs, X, y, dev=dev, seed=7, dtype="float64")
        for config, result in zip(configs, results):
            model, history = alone(config, X, y, dev, seed=7)
            assert_same_weights(result.model, model, 1e-10)
            assert result.history["lr"] == history["lr"]
            np.testing.assert_allclose(result.history["dev_cost"], history["dev_cost"], rtol=1e-10)
            assert (result.history.best_epoch, result.history.stopped_epoch) == (history.best_epoch,
                                                                                history.stopped_epoch)
            assert result.model.state_dict().keys() == model.state_dict().keys()
            rates = [layer.rate for layer in result.model.layers if type(layer).__name__ == "Dropout"]
            assert rates == [config.dropout] * len(config.hidden)


def test_a_dev_cost_that_ties_its_best_is_no_improvement_as_alone(digits):
    """Mutation testing (``<`` made ``<=``): a rate decayed to nothing leaves the dev cost exactly as it was each epoch;
    a tie is no improvement for a Trainer's EarlyStopping, so the batched model stops at the epoch it stops at alone."""
    X, y, dev = digits
    config = small(optimizer="sgd", batch_norm=False, lr=0.05, schedule="exponential", decay_base=1e-300, patience=2,
                   epochs=8, seed=3)
    with xdl.use("numpy"), pytest.warns(UserWarning, match="train nothing"):  # (the rate's decay to 0 is said)
        result = fit_many([config, small(optimizer="sgd", batch_norm=False, seed=4)], X, y, dev=dev, seed=3,
                          dtype="float64")[0]
        model, history = alone(config, X, y, dev, seed=3)
    assert history["dev_cost"][2] == history["dev_cost"][1]  # the tie the test is about
    assert (result.status, result.history.best_epoch, result.history.stopped_epoch) == \
        ("stopped", history.best_epoch, history.stopped_epoch)
    assert_same_weights(result.model, model, 1e-10)


class FrozenRows(Callback):
    """Records, after each epoch, which models the stacked optimizer holds frozen and its state rows."""

    def __init__(self):
        self.frozen, self.velocity = [], []

    def on_epoch_end(self, trainer, record):
        self.frozen.append(trainer.optimizer.frozen.tolist())
        self.velocity.append(trainer.optimizer.state_dict()["state"]["v"].copy())


def test_a_model_done_before_the_others_is_frozen_with_its_optimizer_state_as_it_ended():
    """Mutation testing (the freeze in `_end_epoch` dropped: its rate 0 still kept its weights): a model that has
    completed its epochs is frozen at once, and its momentum, which a checkpoint saves, stays as its last step left
    it."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 6)), rng.integers(0, 3, 64)
    configs = [small(optimizer="momentum", hidden=[5], batch_size=16, epochs=e, seed=e) for e in (1, 3)]
    frozen_rows = FrozenRows()
    with xdl.use("numpy"):
        fit_many(configs, X, y, dtype="float64", callbacks=[frozen_rows])
    assert frozen_rows.frozen == [[True, False], [True, False], [True, True]]
    ends = frozen_rows.velocity
    assert np.abs(ends[0][0]).sum() > 0 and (ends[1][0] == ends[0][0]).all() and (ends[2][0] == ends[0][0]).all()
    assert (ends[1][1] != ends[0][1]).any()  # (the other model's moved on)


def test_each_models_dropout_masks_are_keyed_by_its_own_configs_seed(digits):
    """Mutation testing (every model keyed by configs[0]'s seed): the tests above give their dropout models one seed.
    Model 1, of fit_many's seed, ends as it does alone beside a model 0 of another seed (whose masks, keyed by its
    config's seed while a Trainer keys them by its own, are not the ones it draws alone)."""
    X, y, dev = digits
    configs = [small(seed=2, dropout=0.2, epochs=2), small(seed=7, dropout=0.3, lr=1e-2, epochs=2)]
    with xdl.use("numpy"):
        results = fit_many(configs, X, y, dev=dev, seed=7, dtype="float64")
        assert_same_weights(results[1].model, alone(configs[1], X, y, dev, seed=7)[0], 1e-10)


def test_a_model_with_batch_norm_that_diverges_beside_another_keeps_its_own_last_good_epoch(digits):
    """Mutation testing (the row put back on a divergence took model k − 1's statistics): the diverging models of the
    tests above had no batch norm or no neighbour. Model 1's rate explodes in epoch 2; it fails and its result is
    the model its configuration gives alone in one epoch, running statistics included, not model 0's."""
    X, y, dev = digits
    exploding = small(optimizer="sgd", lr=0.05, schedule="exponential", decay_base=1e30, epochs=2, seed=2)
    with xdl.use("numpy"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        results = fit_many([small(optimizer="sgd", lr=0.2, epochs=2, seed=1), exploding], X, y, dev=dev, seed=3,
                           dtype="float64")
        one_epoch = alone(dataclasses.replace(exploding, epochs=1), X, y, dev, seed=3)[0]
    assert [r.status for r in results] == ["completed", "failed"]
    assert_same_weights(results[1].model, one_epoch, 1e-10)


@pytest.mark.parametrize("stop_at", [3, 12, 19, 22])  # steps into the run, 5 an epoch (the last one smaller)
def test_a_batch_interrupted_inside_an_epoch_resumes_to_the_uninterrupted_batch_exactly(digits, tmp_path,
                                                                                       monkeypatch, stop_at):
    """The strongest oracle of a batch's checkpoint: stopped by a Ctrl-C after any step (its position in
    the epoch, the dropout keys, early stopping's best and wait, statuses, histories) and resumed, every
    model ends bit for bit as the uninterrupted batch's — its weights (the best epoch's under patience),
    history, best and stopped epochs and status — with 300 examples: a last batch of 44. Model 0 stops
    early (best epoch 4, stopped after 5), model 1 completes its 3 epochs, model 2 its 6."""
    X, y, dev = digits
    X, y = X[:300], y[:300]
    configs = [small(seed=2, dropout=0.3, lr=0.1, patience=1, epochs=6),
               small(seed=3, dropout=0.2, lr=1e-2, epochs=3),
               small(seed=1, dropout=0.3, lr=0.05, patience=1, epochs=6)]  # (batch norm: the default)
    options = dict(dev=dev, seed=4, dtype="float64")
    with xdl.use("numpy"):
        whole = fit_many(configs, X, y, **options)
        interrupt_at_step(monkeypatch, stop_at)
        with pytest.raises(Interrupted):
            fit_many(configs, X, y, callbacks=[Checkpoint(tmp_path)], **options)
        monkeypatch.undo()
        resumed = fit_many(configs, X, y, callbacks=[Checkpoint(tmp_path)], resume=tmp_path, **options)
    timed = ("seconds", "step_seconds")
    assert [(r.status, r.history.best_epoch, r.history.stopped_epoch) for r in whole] == \
        [("stopped", 4, 5), ("completed", None, None), ("completed", 6, None)]
    for k, (a, b) in enumerate(zip(resumed, whole)):
        assert (a.status, a.history.best_epoch, a.history.stopped_epoch) == \
            (b.status, b.history.best_epoch, b.history.stopped_epoch), k
        assert [{key: v for key, v in r.items() if key not in timed} for r in a.history.records] == \
            [{key: v for key, v in r.items() if key not in timed} for r in b.history.records], k
        assert_same_weights(a.model, b.model, 0.0)


def test_an_error_inside_an_epoch_gives_each_model_as_it_was_at_the_end_of_the_epoch_before(digits, monkeypatch):
    """An error raised by a step (out of memory, say) half-way through epoch 2: each result is its model
    at the end of epoch 1, bit for bit the batch trained for one epoch — not its weights after the steps
    of epoch 2 that ran, which no history record describes."""
    X, y, dev = digits  # 5 steps per epoch
    configs = [small(seed=1, lr=1e-2, dropout=0.2), small(seed=2, lr=3e-3, dropout=0.1)]
    step, calls = ManyTrainer._train_step, []

    def failing_step(self, Xb, yb):
        calls.append(1)
        if len(calls) == 8:  # step 3 of epoch 2
            raise MemoryError("out of memory in a step")
        return step(self, Xb, yb)

    with xdl.use("numpy"):
        monkeypatch.setattr(ManyTrainer, "_train_step", failing_step)
        with pytest.raises(MemoryError) as caught:
            fit_many(configs, X, y, dev=dev, dtype="float64")
        monkeypatch.undo()
        one_epoch = fit_many([dataclasses.replace(c, epochs=1) for c in configs], X, y, dev=dev, dtype="float64")
    assert "results as they stood at the end of epoch 1" in caught.value.__notes__[0]
    for kept, alone in zip(caught.value.results, one_epoch):
        assert kept.status == "training" and kept.history["dev_cost"] == alone.history["dev_cost"]
        assert_same_weights(kept.model, alone.model, 0.0)


def test_a_model_a_callback_prunes_keeps_its_state_of_that_epoch_while_the_batch_trains_on(digits):
    """`stop_model(k, "pruned")` after epoch 2 of 4: model k's result is its state at that epoch's end,
    bit for bit the same batch's model k given 2 epochs — its batch norm's running statistics too, which
    the batch's later forward passes in training mode move for every row, frozen or not."""
    class PruneAt(Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                trainer.stop_model(0, "pruned")

    X, y, dev = digits
    configs = [small(seed=1, lr=1e-2, dropout=0.2), small(seed=2, lr=3e-3, dropout=0.1)]  # (batch norm: default)
    with xdl.use("numpy"):
        pruned = fit_many(configs, X, y, dev=dev, dtype="float64", callbacks=[PruneAt()])
        shorter = fit_many([dataclasses.replace(configs[0], epochs=2), configs[1]], X, y, dev=dev, dtype="float64")
    assert [r.status for r in pruned] == ["pruned", "completed"]
    assert [r.status for r in shorter] == ["completed", "completed"]
    assert pruned[0].history["dev_cost"] == shorter[0].history["dev_cost"]
    for a, b in zip(pruned, shorter):
        assert_same_weights(a.model, b.model, 0.0)


def test_each_models_history_is_its_history_alone_and_the_batchs_record_is_its_best_models(digits):
    """Each model's history — costs, accuracies and rates of every epoch — and its model's predicted
    classes are the ones the same config trained alone by a Trainer records and predicts (float64; the
    accuracies exactly: the same hits), and the batch's record of each epoch is that epoch's record of
    the model it names best (the lowest dev cost)."""
    X, y, dev = digits
    configs = [small(seed=1, lr=1e-2, schedule="inverse_time", decay_rate=0.5, epochs=3),
               small(seed=2, lr=3e-3, schedule="exponential", decay_base=0.8, epochs=3)]
    with xdl.use("numpy"):
        batch = ManyTrainer(configs, seed=2, dtype="float64")
        results = batch.fit(X, y, dev=dev)
        for config, result in zip(configs, results):
            model, history = alone(config, X, y, dev, seed=2)
            taken = result.model  # (taken out of the batch: an ordinary model, in training mode as alone's)
            assert taken.training == model.training
            np.testing.assert_array_equal(taken.predict(dev[0]), model.predict(dev[0]))  # classes, as alone's
            for key in ("train_accuracy", "dev_accuracy", "lr"):
                assert result.history[key] == history[key], key
            for key in ("train_cost", "dev_cost"):
                np.testing.assert_allclose(result.history[key], history[key], rtol=1e-10, err_msg=key)
    for record in batch.history.records:
        best = results[record["best_model"]].history[record["epoch"] - 1]
        assert record["dev_cost"] == min(r.history[record["epoch"] - 1]["dev_cost"] for r in results)
        assert {key: record[key] for key in ("train_cost", "train_accuracy", "dev_cost", "dev_accuracy")} == \
            {key: best[key] for key in ("train_cost", "train_accuracy", "dev_cost", "dev_accuracy")}


def test_results_compare_by_identity_as_their_docstring_says():
    """Result's docstring: results compare by identity, as the runs they record — two made of the same fields
    (one config, equal histories, a status) are two runs: unequal, both kept in a set or as dict keys, and
    list.index finds the one asked for; a copy (dataclasses.replace) is another result, equal only to itself."""
    from xdl.train import History
    from xdl.train.many import Result
    config = TrainConfig(epochs=1)
    cases = 0
    for status, error in (("completed", None), ("stopped", None), ("failed", "diverged at epoch 1"),
                          ("pruned", None), ("training", None)):
        first, second = (Result(config, History(), status, error) for _ in range(2))
        copy = dataclasses.replace(first)
        assert first == first and first != second and first != copy and copy == copy
        assert len({first, second, copy}) == 3 and {first: 1, second: 2}[second] == 2
        assert [second, first].index(first) == 1 and copy.config is config and copy.history is first.history
        cases += 1
    assert cases == 5


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_callbacks_own_overflow_warnings_are_said_beside_a_failed_models_silence(optimizer, dtype):
    """The batch's epochs say nothing of a diverging model's overflow (its status and error say it, as a
    Trainer's FloatingPointError does), but an epoch-end callback's own ``np.float32(1e38) * 10`` is the
    user's code's: silenced too, when the errstate covered the whole loop, callbacks included."""
    class Overflows(Callback):
        def on_epoch_end(self, trainer, record):
            np.float32(1e38) * 10

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 4)), rng.integers(0, 3, 64)
    good = small(hidden=[8], optimizer=optimizer, lr=1e-3, batch_size=16, epochs=3, seed=1, batch_norm=False)
    with xdl.use("numpy"), warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        results = fit_many([good, dataclasses.replace(good, lr=1e30)], X, y, n_classes=3, dtype=dtype,
                           callbacks=[Overflows()])
    assert [r.status for r in results] == ["completed", "failed"]
    assert "diverged" in results[1].error
    assert [str(w.message) for w in said if w.category is RuntimeWarning] == \
        ["overflow encountered in scalar multiply"] * 3
