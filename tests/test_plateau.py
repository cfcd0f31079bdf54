"""ReduceLROnPlateau: the rule against a plain-Python reference over generated sequences, its edges,
its arguments, resume exactness, what it refuses, and a real digits run whose rate drops."""

import math
import types

import numpy as np
import pytest
from conftest import StopAtEpoch

import xdl
from xdl.data import Standardizer, split
from xdl.losses import SoftmaxCrossEntropy
from xdl.optim import SGD, Adam, schedules
from xdl.config import TrainConfig
from xdl.train import Callback, Checkpoint, ReduceLROnPlateau, Trainer, fit_many


def reference_rates(values, lr0, patience, cooldown, min_delta, factor, min_lr, maximize=False):
    """The rule as PyTorch's scheduler loop is written (cooldown first), with Keras's patience
    count (lowered when the patience-th epoch in a row without improvement ends): the rate after each epoch."""
    best, wait, cool, lr, rates = math.inf, 0, 0, lr0, []
    for value in values:
        score = -value if maximize else value
        if cool > 0:  # a cooldown epoch: no epoch without improvement is counted, a best is still taken
            cool -= 1
            wait = 0
            if score < best - min_delta:
                best = score
        elif score < best - min_delta:
            best, wait = score, 0
        else:
            wait += 1
        if wait >= patience:
            if lr > min_lr:
                lr = max(lr * factor, min_lr)
            wait, cool = 0, cooldown
        rates.append(lr)
    return rates


def fake_trainer(rates, dtype=np.float64):
    """A trainer's face for `on_epoch_end`: an SGD of one group per rate over a small model."""
    xdl.seed(0)
    model = xdl.nn.Sequential(*[xdl.nn.Dense(2, 2) for _ in rates]).astype(dtype)  # (a layer per group)
    params = list(model.parameters())  # (each layer's weight and bias: one group each)
    groups = [{"params": params[2 * i:2 * i + 2], "lr": lr} for i, lr in enumerate(rates)]
    return types.SimpleNamespace(model=model, optimizer=SGD(groups, lr=0.1), epoch=0, step=0, resumed=False,
                                 schedule=None)


def run_rule(cb, trainer, values, monitor="dev_cost"):
    rates = []
    for epoch, value in enumerate(values, 1):
        cb.on_epoch_end(trainer, {"epoch": epoch, monitor: value})
        rates.append([g["lr"] for g in trainer.optimizer.param_groups])
    return rates


def test_generated_plateau_sequences_follow_the_reference_rule():
    """3,000 generated runs — values on a 0.5 grid (ties and steps of exactly min_delta, which do not
    improve: the comparison is strict), costs and accuracies, 1 to 3 groups (one at rate 0: frozen,
    left as it is) — give each group's rates of the reference, epoch by epoch."""
    rng = np.random.default_rng(0)
    lowered = 0
    for case in range(3000):
        patience, cooldown = int(rng.integers(1, 5)), int(rng.integers(0, 4))
        min_delta = float(rng.choice([0.0, 0.5, 1.0]))
        factor = float(rng.choice([0.1, 0.5, 0.25]))
        min_lr = float(rng.choice([0.0, 1e-3, 0.05]))
        steps = rng.choice([-1.0, -0.5, 0.0, 0.0, 0.5, 1.0], size=int(rng.integers(1, 40)))
        values = (10.0 + np.cumsum(steps)).tolist()
        monitor = "dev_accuracy" if case % 3 == 0 else "dev_cost"
        lrs = [float(rng.choice([0.1, 0.02, 1e-3]))] + [0.0, 0.3][:int(rng.integers(0, 3))]
        cb = ReduceLROnPlateau(monitor, factor=factor, patience=patience, min_delta=min_delta, cooldown=cooldown,
                               min_lr=min_lr)
        got = run_rule(cb, fake_trainer(lrs), values, monitor)
        for g, lr0 in enumerate(lrs):
            expected = reference_rates(values, lr0, patience, cooldown, min_delta, factor, min_lr,
                                       maximize=monitor == "dev_accuracy")
            assert [r[g] for r in got] == expected, (case, g, values)
        lowered += got[-1][0] != lrs[0]
    assert lowered > 1000  # (the cases do lower rates)


@pytest.mark.parametrize("patience, cooldown, values, lowered_after", [
    (1, 0, [5, 5, 5, 5], [2, 3, 4]),          # patience 1: each epoch without improvement (PyTorch's patience 0)
    (2, 0, [5, 5, 5, 5, 5], [3, 5]),
    (1, 2, [5, 5, 5, 5, 5, 5, 5], [2, 5]),    # two epochs of cooldown count nothing, then patience 1
    (2, 1, [5, 4, 4, 4, 3, 3, 3, 3], [4, 7]),  # a best taken during the cooldown (epoch 5) resets nothing more
    (3, 0, [5, 4, 5, 3, 5, 5, 5], [7]),       # an improvement resets the wait
])
def test_patience_and_cooldown_edges(patience, cooldown, values, lowered_after):
    cb = ReduceLROnPlateau(patience=patience, cooldown=cooldown, factor=0.5, min_delta=0)
    rates = [r[0] for r in run_rule(cb, fake_trainer([1.0]), values)]
    drops = [e for e, (a, b) in enumerate(zip([1.0] + rates, rates), 1) if b < a]
    assert drops == lowered_after


def test_min_lr_floors_each_group_and_a_group_below_it_is_left_as_it_is():
    cb = ReduceLROnPlateau(patience=1, factor=0.1, min_lr=0.01, min_delta=0)
    rates = run_rule(cb, fake_trainer([0.5, 0.005, 0.0]), [1, 1, 1, 1])
    assert rates == [[0.5, 0.005, 0.0], [0.05, 0.005, 0.0], [0.01, 0.005, 0.0], [0.01, 0.005, 0.0]]


def test_a_rate_lowered_below_float32s_smallest_positive_is_0_as_the_update_holds_it():
    """(else the optimizer refused it as out of float32's range, at an epoch's end of a long plateau)"""
    cb = ReduceLROnPlateau(patience=1, factor=0.1, min_delta=0)
    trainer = fake_trainer([1e-44], dtype=np.float32)
    assert [r[0] for r in run_rule(cb, trainer, [1, 1, 1])] == [1e-44, 0.0, 0.0]


@pytest.mark.parametrize("kwargs, error, said", [
    ({"patience": 0}, ValueError, r"patience must be a positive integer, got 0 \(patience=1 lowers"),
    ({"patience": -1}, ValueError, "patience must be a positive integer, got -1"),
    ({"patience": 2.0}, ValueError, "patience must be a positive integer, got 2.0"),
    ({"patience": True}, ValueError, "patience must be a positive integer, got True"),
    ({"factor": 1}, ValueError, r"factor must be a number in \(0, 1\), got 1"),
    ({"factor": 0}, ValueError, r"factor must be a number in \(0, 1\), got 0"),
    ({"factor": 2.0}, ValueError, "factor must be"),
    ({"factor": math.nan}, ValueError, "factor must be"),
    ({"factor": "0.1"}, ValueError, "factor must be"),
    ({"min_delta": -1e-4}, ValueError, "min_delta must be a number ≥ 0"),
    ({"min_delta": math.inf}, ValueError, "min_delta must be a number ≥ 0"),
    ({"cooldown": -1}, ValueError, "cooldown must be an integer ≥ 0, got -1"),
    ({"cooldown": 1.5}, ValueError, "cooldown must be an integer ≥ 0"),
    ({"min_lr": -1}, ValueError, "min_lr must be a number ≥ 0"),
    ({"min_lr": math.nan}, ValueError, "min_lr must be a number ≥ 0"),
    ({"min_lr": math.inf}, ValueError, "min_lr must be a number ≥ 0"),
    ({"monitor": "val_loss"}, ValueError, "monitor must be one of .*Keras's 'val_loss' is 'dev_cost'"),
    ({"monitor": "loss"}, ValueError, "monitor must be one of"),
    ({"mode": "min"}, TypeError, "takes no option mode=: the direction follows monitor"),
    ({"threshold": 1e-3}, TypeError, "takes no option threshold=: it is min_delta here"),
    ({"verbose": 1}, TypeError, "takes no option verbose="),
])
def test_bad_arguments_are_named(kwargs, error, said):
    with pytest.raises(error, match=said):
        ReduceLROnPlateau(**kwargs)


def moons(m=300):
    X, y = xdl.datasets.moons(m, noise=0.3, seed=0)
    return split(X, y, seed=0)


def trainer_for(callbacks, epochs=8, lr=0.05, schedule=None, optimizer=Adam):
    xdl.seed(0)
    model = xdl.nn.mlp(2, [16], 2, batch_norm=True, dropout=0.1)
    return Trainer(model, SoftmaxCrossEntropy(), optimizer(model, lr=lr), epochs=epochs, batch_size=32,
                   callbacks=callbacks, seed=0, progress=False, schedule=schedule)


def without_times(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "step_seconds")} for r in history.records]


@pytest.mark.parametrize("cut", [1, 3, 4, 6, 7])
def test_a_run_interrupted_at_epoch_k_and_resumed_is_bit_for_bit_the_uninterrupted_one(tmp_path, cut):
    """Its best, wait and cooldown are in the checkpoint, and the rates it set with the optimizer: the run
    lowers its rate at epochs 4 and 7; cut at 3 and 6 it waits, at 4 and 7 it cools down."""
    s = moons()

    def plateau():
        return ReduceLROnPlateau(patience=2, cooldown=1, factor=0.5, min_delta=0.01)

    whole = trainer_for([plateau(), StopAtEpoch(99), Checkpoint(tmp_path / "whole")])
    whole.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    rates = whole.history["lr"]
    assert len(set(rates)) > 2 and rates == sorted(rates, reverse=True)  # (the rate drops, more than once)
    directory = tmp_path / f"cut-{cut}"
    trainer_for([plateau(), StopAtEpoch(cut), Checkpoint(directory)]).fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    resumed_plateau = plateau()
    resumed = trainer_for([resumed_plateau, StopAtEpoch(99), Checkpoint(directory)])
    resumed.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=directory)
    assert resumed.epoch == whole.epoch == 8
    for name, value in whole.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value, err_msg=name)
    assert without_times(resumed.history) == without_times(whole.history)
    assert resumed_plateau.state_dict() == whole.callbacks[0].state_dict()
    assert resumed.optimizer.lr == whole.optimizer.lr


def test_an_epoch_schedule_or_a_per_step_lr_is_refused_before_the_fit_trains():
    s = moons()
    trainer = trainer_for([ReduceLROnPlateau()], schedule=schedules.exponential(0.05, base=0.9))
    before = trainer.model.state_dict()
    with pytest.raises(ValueError, match="ReduceLROnPlateau: the trainer has an epoch schedule"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert trainer.epoch == 0 and trainer.step == 0
    for name, value in before.items():
        np.testing.assert_array_equal(trainer.model.state_dict()[name], value)
    trainer = trainer_for([ReduceLROnPlateau()], lr=schedules.cosine(0.05, 100))
    with pytest.raises(ValueError, match="group 0's lr is a per-step schedule"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert trainer.epoch == 0 and trainer.step == 0


def test_a_dev_monitor_without_dev_is_refused_before_the_fit_trains():
    s = moons()
    trainer = trainer_for([ReduceLROnPlateau()])
    with pytest.raises(ValueError, match="ReduceLROnPlateau monitors 'dev_cost', which this run does not measure"):
        trainer.fit(s.X_train, s.y_train)
    assert trainer.epoch == 0


def test_fit_many_refuses_it_naming_the_way():
    s = moons()
    configs = [TrainConfig(lr=lr, epochs=2, patience=0, hidden=[8]) for lr in (1e-2, 3e-2)]
    with pytest.raises(ValueError, match="ReduceLROnPlateau sets one model's rate.*give each TrainConfig a schedule"):
        fit_many(configs, s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), callbacks=[ReduceLROnPlateau()])


def test_a_later_fit_goes_on_with_its_state_and_one_on_other_data_starts_afresh():
    """Two fits of one trainer (2 epochs, then 2 more) are the run of 4; a fit on another dev set (its labels
    flipped: a higher cost than the run's best) starts its best and wait afresh."""
    s = moons()

    def plateau():
        return ReduceLROnPlateau(patience=1, factor=0.5, min_delta=0.02)

    whole = trainer_for([plateau()], epochs=6)
    whole.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    cb = plateau()
    trainer = trainer_for([cb], epochs=3)
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    trainer.epochs = 6
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert trainer.history["lr"] == whole.history["lr"] and len(set(whole.history["lr"])) > 1
    assert cb.state_dict() == whole.callbacks[0].state_dict()
    for name, value in whole.model.state_dict().items():
        np.testing.assert_array_equal(trainer.model.state_dict()[name], value, err_msg=name)
    trainer.epochs = 7
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, 1 - s.y_dev))
    assert cb.wait == 0 and cb.best == trainer.history[-1]["dev_cost"] > whole.callbacks[0].best


class RefuseLaterFits(Callback):
    """Ordered after the plateau: refuses in on_train_begin (as a Checkpoint finding another run's file)."""

    order = 10
    refuse = False

    def on_train_begin(self, trainer):
        if self.refuse:
            raise RuntimeError("refused")


def test_a_fit_refused_before_its_first_step_leaves_its_state_as_the_fit_before_left_it():
    """A fit on other data resets the best and wait in on_train_begin; refused there by a later callback, it
    trained nothing: the next fit on the run's data goes on from the state before, not from a reset one."""
    s = moons()
    cb, refusing = ReduceLROnPlateau(patience=2, factor=0.5, min_delta=0.01), RefuseLaterFits()
    trainer = trainer_for([cb, refusing], epochs=3)
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    state, refusing.refuse, trainer.epochs = cb.state_dict(), True, 4
    assert state[0]["wait"] == 1  # (a reset would show)
    with pytest.raises(RuntimeError, match="refused"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, 1 - s.y_dev))
    assert cb.state_dict() == state and trainer.epoch == 3


def digits_run(backend_name, epochs=12):
    X, y = xdl.datasets.digits()
    s = split(X, y, seed=0)
    with xdl.use(backend_name):
        xdl.seed(0)
        model = xdl.nn.mlp(64, [32], 10, standardize=Standardizer().fit(s.X_train).layer())
        plateau = ReduceLROnPlateau(patience=2, factor=0.2, min_delta=0.01)
        trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model, lr=0.5), epochs=epochs, batch_size=64,
                          callbacks=[plateau], seed=0, progress=False)
        return trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))


def rates_expected(history, lr0=0.5, factor=0.2):
    """Each epoch's rate as the reference rule gives it from the dev costs before it."""
    return [lr0] + reference_rates(history["dev_cost"], lr0, 2, 0, 0.01, factor, 0.0)[:-1]


def test_a_real_digits_run_lowers_its_rate_where_the_dev_cost_stops_improving():
    history = digits_run("numpy")
    assert history["lr"] == pytest.approx(rates_expected(history), rel=1e-12)
    assert min(history["lr"]) < 0.5  # (the rate dropped in this run)
    assert history[-1]["dev_accuracy"] > 0.9


@pytest.mark.gpu
def test_a_captured_digits_run_lowers_its_rate_as_the_cpus_run_does():
    """On cupy the step is a CUDA graph: a rate set at an epoch's end is read by the next replay."""
    pytest.importorskip("cupy")
    on_gpu = digits_run("cupy")
    assert on_gpu["lr"] == pytest.approx(rates_expected(on_gpu), rel=1e-12) and min(on_gpu["lr"]) < 0.5


class WriteControlFile(Callback):
    """Plays the babysitter: writes control.toml (lr = 0.04) at epoch 1's end, before Control reads it."""

    order = 10

    def __init__(self, directory):
        self.directory = directory

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == 1 and not trainer.resumed:
            (self.directory / "control.toml").write_text("lr = 0.04\n")


def test_a_resume_goes_on_at_the_plateaus_rate_lowered_after_a_control_files_rate(tmp_path):
    """Control set lr = 0.04 at epoch 1; the plateau lowered it at epochs 4 and 7. A run cut at 6 and resumed
    replayed the file's 0.04 over the checkpoint's 0.02 (Control's resume set its rate again): epoch 7 trained
    at twice the rate, and the run ended with other weights."""
    from xdl.train import Control

    s = moons()

    def trainer(directory, cut):
        directory.mkdir(exist_ok=True)
        return trainer_for([ReduceLROnPlateau(patience=2, cooldown=1, factor=0.5, min_delta=0.01),
                            WriteControlFile(directory), Control(directory), StopAtEpoch(cut), Checkpoint(directory)])

    whole = trainer(tmp_path / "whole", 99)
    whole.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert whole.history["lr"] == [0.05, 0.04, 0.04, 0.04, 0.02, 0.02, 0.02, 0.01]
    trainer(tmp_path / "cut", 6).fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    resumed = trainer(tmp_path / "cut", 99)
    resumed.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=tmp_path / "cut")
    assert resumed.history["lr"] == whole.history["lr"]
    for name, value in whole.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value, err_msg=name)


def test_a_checkpoint_of_an_older_xdl_without_the_optimizers_settings_still_has_controls_rate_set_again(tmp_path):
    """(the case Control's replay is kept for: such a resume's optimizer holds the rate it was made with)"""
    from conftest import edit_saved

    from xdl.train import CHECKPOINT_FILE, Control

    s = moons()

    def trainer(cut):
        return trainer_for([WriteControlFile(tmp_path), Control(tmp_path), StopAtEpoch(cut), Checkpoint(tmp_path)])

    trainer(2).fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))

    def as_older(extra):
        extra.pop("optimizer_settings")
        for state in extra["callbacks"]:
            state.pop("rate_held", None)

    edit_saved(tmp_path / CHECKPOINT_FILE, lambda header, arrays: as_older(header["extra"]))
    resumed = trainer(99)
    resumed.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=tmp_path)
    assert resumed.history["lr"] == [0.05] + [0.04] * 7


def test_costs_of_any_magnitude_follow_the_reference_rule():
    """The first epoch's value is a best whatever its size (the best starts at inf): costs of 1e12 or 1e300
    lower the rate where the reference lowers it."""
    rng = np.random.default_rng(41)
    for case in range(50):
        magnitude = 10.0 ** rng.uniform(0, 300)
        values = list(magnitude * rng.uniform(0.5, 1.5, size=int(rng.integers(1, 12))))
        patience, cooldown = int(rng.integers(1, 4)), int(rng.integers(0, 3))
        cb = ReduceLROnPlateau(patience=patience, cooldown=cooldown, factor=0.5, min_delta=0)
        rates = [r[0] for r in run_rule(cb, fake_trainer([0.1]), values)]
        assert rates == reference_rates(values, 0.1, patience, cooldown, 0, 0.5, 0.0), (case, values)


def test_an_optimizer_not_of_xdl_is_refused_naming_its_class():
    trainer = types.SimpleNamespace(schedule=None, optimizer=types.SimpleNamespace(groups=[], param_groups=[]))
    with pytest.raises(TypeError, match="sets the rates of an xdl Optimizer's groups, and the trainer's optimizer "
                                        "is a SimpleNamespace"):
        ReduceLROnPlateau().check_fits(trainer)


def test_a_record_without_the_monitor_is_refused_naming_it():
    cb = ReduceLROnPlateau(monitor="dev_accuracy", patience=1)
    with pytest.raises(ValueError, match="ReduceLROnPlateau monitors 'dev_accuracy', which this run does not "
                                         "measure"):
        cb.on_epoch_end(fake_trainer([0.1]), {"epoch": 1, "dev_cost": 0.5})
    assert (cb.best, cb.wait, cb.cooldown_left) == (math.inf, 0, 0)


def test_a_group_whose_lr_became_a_schedule_is_refused_before_any_rate_is_lowered():
    cb = ReduceLROnPlateau(patience=1, factor=0.5, min_delta=0)
    trainer = fake_trainer([0.1, 0.2])
    run_rule(cb, trainer, [1.0])
    trainer.optimizer.param_groups[1]["lr"] = schedules.inverse_time(0.2, decay_rate=0.1)
    with pytest.raises(ValueError, match="group 1's lr became a per-step schedule"):
        run_rule(cb, trainer, [1.0])
    assert trainer.optimizer.param_groups[0]["lr"] == 0.1


def test_a_callback_given_to_a_new_trainer_starts_afresh():
    """A new run (another trainer, not a resume) is no yardstick's continuation: the best, wait and cooldown
    start afresh, and its rates are those of a callback made for it."""
    s = moons()

    def plateau():
        return ReduceLROnPlateau(patience=1, factor=0.5, min_delta=0.02, cooldown=2)

    reused = plateau()
    trainer_for([reused], epochs=5).fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert reused.best < math.inf
    again, fresh = trainer_for([reused], epochs=5), trainer_for([plateau()], epochs=5)
    for trainer in (again, fresh):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert again.history["lr"] == fresh.history["lr"] and len(set(fresh.history["lr"])) > 1
    assert reused.state_dict() == fresh.callbacks[0].state_dict()


class FailAtEpoch(Callback):
    """Ordered after the plateau: notes its state at each epoch's end, then fails at the end of ``epoch``."""

    order = 10

    def __init__(self, plateau, epoch):
        self.plateau, self.epoch, self.seen = plateau, epoch, []

    def on_epoch_end(self, trainer, record):
        self.seen.append(self.plateau.state_dict())
        if record["epoch"] == self.epoch:
            raise RuntimeError("failed")


@pytest.mark.parametrize("epoch", [1, 2, 4])
def test_a_fit_failing_after_its_first_step_keeps_the_state_its_epochs_left(epoch):
    """(only a fit that ended before its first step puts back the state it began with)"""
    s = moons()
    cb = ReduceLROnPlateau(patience=1, factor=0.5, min_delta=0.02, cooldown=1)
    failing = FailAtEpoch(cb, epoch)
    trainer = trainer_for([cb, failing], epochs=6)
    with pytest.raises(RuntimeError, match="failed"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert cb.state_dict() == failing.seen[-1] and cb.best < math.inf


def test_a_fit_refused_before_its_first_step_puts_back_its_cooldown_too():
    s = moons()
    cb, refusing = ReduceLROnPlateau(patience=1, factor=0.5, min_delta=1.0, cooldown=5), RefuseLaterFits()
    trainer = trainer_for([cb, refusing], epochs=2)
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    state, refusing.refuse, trainer.epochs = cb.state_dict(), True, 4
    assert state[0]["cooldown_left"] > 0  # (a reset would show)
    with pytest.raises(RuntimeError, match="refused"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, 1 - s.y_dev))
    assert cb.state_dict() == state


@pytest.mark.parametrize("key", ["wait", "cooldown_left"])
def test_a_state_whose_counts_are_not_integers_at_least_0_is_refused_naming_them(key):
    for bad in (-1, 1.5, "2", None, True):
        cb = ReduceLROnPlateau()
        with pytest.raises(ValueError, match=f"ReduceLROnPlateau state: {key} must be an integer ≥ 0"):
            cb.load_state_dict({"best": 1.0, "wait": 0, "cooldown_left": 0, key: bad}, {})


@pytest.mark.parametrize("cut, goes_on", [(3, True), (6, False)])
def test_a_resume_says_the_control_files_rate_goes_on_only_where_no_plateau_lowered_it_since(tmp_path, cut, goes_on):
    """Cut at 3 the checkpoint holds the file's 0.04 (Control's report says it goes on); cut at 6 the plateau's
    0.02, which the report would have misnamed as the file's."""
    from xdl.train import Control

    s = moons()
    notes = []

    def trainer(stop):
        return trainer_for([ReduceLROnPlateau(patience=2, cooldown=1, factor=0.5, min_delta=0.01),
                            WriteControlFile(tmp_path), Control(tmp_path, report=notes.append), StopAtEpoch(stop),
                            Checkpoint(tmp_path)])

    trainer(cut).fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    notes.clear()
    trainer(99).fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=tmp_path)
    said = [note for note in notes if "goes on" in note]
    assert said == (["the rate control.toml set goes on: lr = 0.04, in place of the options' lr and schedule"]
                    if goes_on else [])


def test_a_plateau_after_other_callbacks_is_checked_too():
    """Every callback's check_fits is asked, not only the first's: a plateau listed after early stopping and a
    checkpoint is refused with an epoch schedule as one listed alone, and with fit_many."""
    from xdl.train import EarlyStopping

    s = moons()
    trainer = trainer_for([EarlyStopping(patience=3), Callback(), ReduceLROnPlateau()],
                          schedule=schedules.exponential(0.05, base=0.9))
    with pytest.raises(ValueError, match="ReduceLROnPlateau: the trainer has an epoch schedule"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert trainer.epoch == 0 and trainer.step == 0
    configs = [TrainConfig(lr=lr, epochs=2, patience=0, hidden=[8]) for lr in (1e-2, 3e-2)]
    with pytest.raises(ValueError, match="ReduceLROnPlateau sets one model's rate"):
        fit_many(configs, s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), callbacks=[Callback(), ReduceLROnPlateau()])
