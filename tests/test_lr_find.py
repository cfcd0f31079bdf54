"""The learning-rate range test, `xdl.train.lr_find`: its rates and smoothed losses, its suggestion on
problems whose stable rates are known, its early stop, what it puts back (bit for bit, however it ends),
and its refusals — through the public API."""

import copy
import importlib
import itertools
import math
import os
import re
import pickle
import signal
import threading
import warnings

import numpy as np
import pytest

import xdl
from xdl.backend import host_rng
from xdl.data import split
from xdl.ewa import ewa
from xdl.losses import MeanSquaredError, SoftmaxCrossEntropy
from xdl.train import Interrupted, LRFindResult, Trainer, lr_find
from xdl.train.lr_find import (NEVER_FELL, PEER_OPTIONS, SKIP_FIRST, TOO_FEW_POINTS, RangeTest, steepest_descent,
                                 sweep_rates, why_none_said)

lr_find_module = importlib.import_module("xdl.train.lr_find")  # (xdl.train.lr_find is the function)


def regression(seed, m=2048, n=8):
    """A linear regression, y = X·w/‖w‖ + noise of unit-scale features, and its largest stable SGD rate:
    gradient descent on J = mean((Xw + b − y)²) diverges above 2/λ_max of J's Hessian 2·[X 1]ᵀ[X 1]/m."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n)).astype(np.float32)
    w = rng.standard_normal((n, 1))
    y = (X @ w / np.linalg.norm(w) + 0.1 * rng.standard_normal((m, 1))).astype(np.float32)
    design = np.hstack([X, np.ones((m, 1))]).astype(np.float64)
    stable = 2 / np.linalg.eigvalsh(2 * design.T @ design / m).max()
    return X, y, stable


def regression_trainer(seed, n=8, **kwargs):
    xdl.seed(seed)
    model = xdl.nn.Sequential(xdl.nn.Dense(n, 1))
    kwargs.setdefault("batch_size", 256)
    return Trainer(model, MeanSquaredError(), xdl.optim.SGD(model, lr=0.01), progress=False, seed=seed, **kwargs)


def moons_trainer(seed=0, lr=xdl.optim.schedules.inverse_time(1e-3, decay_rate=0.01), trainer_seed=0, **kwargs):
    """Batch norm, dropout, Adam with a per-step schedule: every kind of state the finder must put back."""
    xdl.seed(seed)
    model = xdl.nn.mlp(2, [16, 8], 2, batch_norm=True, dropout=0.2)
    return Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=lr), batch_size=64, epochs=3,
                   seed=trainer_seed, progress=False, **kwargs)


def moons(seed=0):
    X, y = xdl.datasets.moons(600, noise=0.2, seed=seed)
    return split(X, y, seed=seed)


@pytest.mark.parametrize("seed", range(8))
def test_the_suggestion_is_a_decade_below_the_rate_where_sgd_diverges(seed):
    """On linear regressions whose largest stable rate 2/λ_max is known (≈ 1), the sweep climbs until the
    loss explodes past it and the steepest descent of its smoothed loss lies 3 to 30 times below it."""
    X, y, stable = regression(seed)
    result = lr_find(regression_trainer(seed), X, y, min_lr=1e-4, max_lr=10.0)
    assert result.stopped == "stop_factor" and stable < result.lrs[-1] < 10.0, (result, stable)
    assert stable / 30 <= result.suggestion <= stable / 3, (result, stable)


def test_the_rates_rise_from_min_lr_to_max_lr_and_the_losses_are_the_costs_ewa():
    """Every step's rate is the sweep's (each group's, read by the step: the cost after step k is of the
    weights step k − 1 moved at rate k − 1), and losses are the bias-corrected EWA of the step costs."""
    X, y, _ = regression(0)
    for mode in ("exponential", "linear"):
        result = lr_find(regression_trainer(0), X, y, min_lr=1e-4, max_lr=1e-2, steps=30, mode=mode,
                         smoothing=0.9)
        assert result.stopped == "steps" and len(result.lrs) == 30
        np.testing.assert_array_equal(result.lrs, sweep_rates(1e-4, 1e-2, 30, mode))
        np.testing.assert_allclose(result.losses, ewa(result.costs, 0.9), rtol=1e-12)
    rates = sweep_rates(1e-4, 1e-2, 30, "exponential")
    np.testing.assert_allclose(np.diff(np.log(rates)), math.log(100) / 29, rtol=1e-9)
    np.testing.assert_allclose(np.diff(sweep_rates(1e-4, 1e-2, 30, "linear")), (1e-2 - 1e-4) / 29, rtol=1e-9)
    assert rates[0] == 1e-4 and rates[-1] == 1e-2  # (exactly the ends given)


def test_each_step_trains_at_its_rate():
    """The sweep's SGD steps are the rates' own: a loop of one's own at those rates, on the same batches,
    gives the same step costs."""
    X, y, _ = regression(1, m=512)
    trainer = regression_trainer(1)
    with pytest.warns(UserWarning, match="lr_find: no suggestion"):  # (6 steps: fewer than it skips)
        result = lr_find(trainer, X, y, min_lr=1e-3, max_lr=1.0, steps=6, stop_factor=math.inf)
    model, opt = trainer.model, trainer.optimizer
    batches = np.random.default_rng([1, 0]).permutation(512).reshape(2, 256)  # the shuffle of epoch e: (seed, e)
    batches = np.vstack([batches, np.random.default_rng([1, 1]).permutation(512).reshape(2, 256),
                         np.random.default_rng([1, 2]).permutation(512).reshape(2, 256)])
    costs = []
    for rate, rows in zip(result.lrs, batches):
        opt.lr = rate
        opt.zero_grad()
        cost = MeanSquaredError()(model(X[rows]), y[rows])
        cost.backward()
        opt.step()
        costs.append(cost.item())
    np.testing.assert_allclose(result.costs, costs, rtol=1e-6)


def everything(trainer) -> dict:
    """All a range test could change of ``trainer`` and what it shares with the finder, as comparable values."""
    model, opt = trainer.model, trainer.optimizer
    state = opt.state_dict()
    return {
        "model": model.state_dict(),
        "optimizer state": [[dict(st) for st in g] for g in state["state"]],
        "optimizer t": (opt.t, int(model.backend.to_numpy(opt.steps_done)[0])),
        "settings": [{k: v for k, v in s.items()} for s in state["settings"]],
        # (the rates held on the device for the next step; a per-step schedule's is written at each step)
        "held": [model.backend.to_numpy(g.held).tolist() for g in opt.groups if not callable(g.settings["lr"])],
        "first steps": state["first_steps"], "defaults": dict(opt.defaults),
        "modes": [(name, m.training) for name, m in model.named_modules()],
        "keys": [(name, m.__dict__.get("random_key"), m.__dict__.get("_draws")) for name, m in model.named_modules()],
        "model attributes": {k: model.__dict__.get(k) for k in ("predicts", "feature_names_in_", "_state_loads")},
        "generator": host_rng().bit_generator.state,
        "history": copy.deepcopy(trainer.history.to_dict()),
        "trainer": {k: v for k, v in vars(trainer).items() if isinstance(v, int | float | str | bool | type(None))},
    }


def assert_same(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key in before:
        if key == "model" or key == "optimizer state":
            flat_before = before[key] if key == "model" else {f"{i}/{j}/{k}": a for i, g in enumerate(before[key])
                                                               for j, st in enumerate(g) for k, a in st.items()}
            flat_after = after[key] if key == "model" else {f"{i}/{j}/{k}": a for i, g in enumerate(after[key])
                                                             for j, st in enumerate(g) for k, a in st.items()}
            assert flat_before.keys() == flat_after.keys()
            for name in flat_before:
                assert np.array_equal(flat_before[name], flat_after[name]), (key, name)
                assert flat_before[name].dtype == flat_after[name].dtype
        else:
            assert before[key] == after[key], key


def test_everything_is_put_back_bit_for_bit_and_the_run_goes_on_as_if_no_finder_ran():
    """After a fit's first epoch (moments, a step count, a per-step schedule, batch-norm statistics, a
    history), the sweep — to its stop — leaves all as it was; the trainer's next epochs then end with the
    weights and history of a twin that ran no finder."""
    s = moons()
    trainer, twin = moons_trainer(), moons_trainer()
    for t in (trainer, twin):
        t.epochs = 1
        t.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
        t.epochs = 3
    trainer.model.layers[1].eval()  # a batch norm kept in evaluation by the user: a fit would train it
    twin.model.layers[1].eval()
    before = everything(trainer)
    result = lr_find(trainer, s.X_train, s.y_train, min_lr=1e-5, max_lr=100.0)
    assert result.stopped == "stop_factor"
    assert_same(before, everything(trainer))
    for t in (trainer, twin):
        t.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    for name, value in twin.model.state_dict().items():
        np.testing.assert_array_equal(trainer.model.state_dict()[name], value, err_msg=name)
    keys = ("epoch", "train_cost", "dev_cost", "dev_accuracy", "lr")
    assert [{k: r[k] for k in keys} for r in trainer.history.records] == \
        [{k: r[k] for k in keys} for r in twin.history.records]


def test_a_trainer_without_a_seed_draws_it_from_the_generator_the_sweep_put_back():
    """A trainer made with seed=None draws its seed at its first fit from `xdl.seed`'s generator: the
    finder's fit draws one too, and the generator is put back, so the run draws the seed it would have."""
    s = moons()
    trainer = moons_trainer(trainer_seed=None)
    before = everything(trainer)
    lr_find(trainer, s.X_train, s.y_train, steps=20)
    assert_same(before, everything(trainer))
    assert trainer.seed is None


def test_a_sweep_that_diverges_stops_before_the_step_whose_cost_is_not_finite_and_puts_back():
    """Plain SGD climbing to 1e30: a step's cost overflows (the trainer's divergence) before the smoothed
    loss passes stop_factor; the steps before it are the result, and the model is as it was."""
    X, y, _ = regression(2)
    trainer = regression_trainer(2)
    before = everything(trainer)
    with pytest.warns(UserWarning, match="lr_find: no suggestion"), np.errstate(over="ignore"):
        result = lr_find(trainer, X, y, min_lr=1e-3, max_lr=1e30, steps=40, stop_factor=math.inf)
    assert result.stopped == "diverged" and 2 < len(result.lrs) < 40
    assert np.isfinite(result.costs).all() and result.costs[-1] > 1e6 * result.costs[0]
    assert_same(before, everything(trainer))
    with pytest.warns(UserWarning, match="lr_find: no suggestion"):  # (its stop_factor: earlier)
        result = lr_find(trainer, X, y, min_lr=1e-3, max_lr=1e30, steps=40)
    assert result.stopped == "stop_factor" and result.losses[-1] > 4 * result.losses[:-1].min()
    assert_same(before, everything(trainer))


def test_a_model_not_finite_at_its_first_step_is_the_starting_weights_fault_and_raises():
    X, y, _ = regression(3)
    trainer = regression_trainer(3)
    with xdl.no_grad():
        trainer.model.layers[0].weight.data[...] = 1e30  # (finite, its outputs' squares overflow float32)
    before = everything(trainer)
    with pytest.raises(FloatingPointError, match="before any update"), np.errstate(over="ignore"):
        lr_find(trainer, X, y)
    assert_same(before, everything(trainer))


@pytest.mark.parametrize("how", ["SIGINT", "KeyboardInterrupt"])
def test_ctrl_c_in_the_middle_puts_everything_back(monkeypatch, how):
    """Ctrl-C (the trainer finishes the step, raises `Interrupted`), or a KeyboardInterrupt raised inside
    the sweep (a second one, mid-step): either goes on to the caller, with everything put back."""
    s = moons()
    trainer = moons_trainer()
    trainer.fit(s.X_train, s.y_train)
    trainer.epochs = 5
    before = everything(trainer)
    on_step_end = RangeTest.on_step_end

    def interrupted(self, trainer, cost):
        on_step_end(self, trainer, cost)
        if len(self.costs) == 13:
            if how == "SIGINT":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                raise KeyboardInterrupt

    monkeypatch.setattr(RangeTest, "on_step_end", interrupted)
    with pytest.raises(Interrupted if how == "SIGINT" else KeyboardInterrupt) as stop:
        lr_find(trainer, s.X_train, s.y_train)
    assert_same(before, everything(trainer))
    if how == "SIGINT":  # the sweep's position, not its finder's epoch or Checkpoint
        assert str(stop.value).startswith("lr_find interrupted by SIGINT after 13 of its 100 steps (last rate ")
        assert "epoch" not in str(stop.value) and "Checkpoint" not in str(stop.value)
        assert pickle.loads(pickle.dumps(stop.value)).args == stop.value.args


def test_ctrl_c_as_the_state_is_put_back_waits_for_the_end_of_it(monkeypatch):
    """A Ctrl-C that lands in `KeptState.put_back` — the sweep's fit had given the handlers back — is raised
    once everything is back: in its middle, the generator, the dropout keys and the model's attributes stayed
    the finder's (a drawn seed moved, a state load counted that EarlyStopping reads as the user's)."""
    s = moons()
    trainer = moons_trainer(trainer_seed=None)
    before = everything(trainer)
    restore_modes = lr_find_module.restore_modes

    def interrupted(modes):
        os.kill(os.getpid(), signal.SIGINT)
        restore_modes(modes)

    monkeypatch.setattr(lr_find_module, "restore_modes", interrupted)
    with pytest.raises(KeyboardInterrupt) as interrupt:
        lr_find(trainer, s.X_train, s.y_train, steps=20)
    assert_same(before, everything(trainer))
    assert "SIGINT as the sweep's state was put back" in str(interrupt.value)


def test_a_fit_of_the_trainer_from_another_thread_during_the_sweep_is_refused_and_loses_nothing(monkeypatch):
    """A background thread's fit of the trainer while lr_find sweeps it is refused, as a second fit of a
    fitting trainer is: it trained the model beside the sweep, and its epochs were then put back under the
    history's records of them (its work lost, the history saying it was done)."""
    s = moons()
    trainer = moons_trainer()
    before = everything(trainer)
    on_step_end, refusals = RangeTest.on_step_end, []

    def fit():
        try:
            trainer.fit(s.X_train, s.y_train)
        except RuntimeError as e:
            refusals.append(str(e))

    def fit_from_another_thread(self, finder, cost):
        on_step_end(self, finder, cost)
        if len(self.costs) == 5:
            thread = threading.Thread(target=fit)
            thread.start()
            thread.join()

    monkeypatch.setattr(RangeTest, "on_step_end", fit_from_another_thread)
    lr_find(trainer, s.X_train, s.y_train, min_lr=1e-5, max_lr=1.0, steps=30)
    assert len(refusals) == 1 and "fitting already" in refusals[0]
    assert_same(before, everything(trainer))


def test_no_suggestion_where_too_few_points_or_the_loss_never_falls_is_said():
    X, y, _ = regression(4)
    with pytest.warns(UserWarning, match=r"lr_find: no suggestion: 0 finite smoothed losses past the first 10"):
        result = lr_find(regression_trainer(4), X, y, steps=SKIP_FIRST)
    assert result.suggestion is None and len(result.lrs) == SKIP_FIRST
    rng = np.random.default_rng(4)
    for n in range(SKIP_FIRST + 3, 60, 7):  # a loss that only rises: no descent to suggest
        lrs = sweep_rates(1e-6, 1.0, n, "exponential")
        rising = np.cumsum(rng.random(n))
        suggestion, why = steepest_descent(lrs, rising, "exponential")
        assert suggestion is None and why_none_said(why, rising).startswith("the smoothed loss never fell"), n
        at = SKIP_FIRST + (n - SKIP_FIRST - 1) // 2  # past the points a suggestion leaves out
        falls = np.cumsum(rng.random(n))[::-1].copy()
        falls[at:] -= 5.0  # its steepest fall: between at − 1 and at
        suggestion, _ = steepest_descent(lrs, falls, "exponential")
        assert suggestion in (lrs[at - 1], lrs[at]), n


def test_a_loss_that_never_fell_says_both_ways_and_each_reason_names_the_callers_settings():
    """"the smoothed loss never fell … try a lower min_lr" was half the advice: rates all too small to learn
    (a flat loss) need a higher max_lr. Over sweeps of many lengths and both modes — rising, nearly flat, and with too
    few finite points —: the reason is data (``no_suggestion``), ``why_none`` words it in lr_find's keywords and
    ``why_none_named`` in a caller's (a command's flags)."""
    from xdl.config import flag_of
    from xdl.train.lr_find import NEVER_FELL, TOO_FEW_POINTS

    rng = np.random.default_rng(7)
    cases = 0
    for n, mode in itertools.product(range(2, 70, 4), ("exponential", "linear")):
        lrs = sweep_rates(1e-6, 1.0, n, mode)
        for losses in (np.cumsum(rng.random(n)), 2.3 + 1e-4 * np.arange(n), np.r_[np.full(n - 1, np.inf), 1.0]):
            result = LRFindResult(lrs, losses, losses.copy(), mode, "steps")
            assert result.suggestion is None and result.no_suggestion in (NEVER_FELL, TOO_FEW_POINTS)
            if result.no_suggestion == NEVER_FELL:
                assert np.isfinite(losses).all() and n > SKIP_FIRST + 2
                assert result.why_none.startswith("the smoothed loss never fell between min_lr and max_lr: ")
                assert "try a lower min_lr" in result.why_none and "try a higher max_lr" in result.why_none
                named = result.why_none_named(flag_of)
                assert "--min-lr and --max-lr" in named and "a lower --min-lr" in named and "a higher --max-lr" in named
            else:
                assert result.why_none.endswith("give more steps (or a larger stop_factor)")
                assert result.why_none_named(flag_of).endswith("give more --steps (or a larger --stop-factor)")
            assert result.why_none in repr(result)
            cases += 1
    assert cases == 17 * 2 * 3
    falls = LRFindResult(sweep_rates(1e-6, 1.0, 40, "exponential"), np.linspace(3, 1, 40), np.linspace(3, 1, 40),
                         "exponential", "steps")
    assert falls.suggestion is not None and falls.no_suggestion == falls.why_none == falls.why_none_named(flag_of) == ""


@pytest.mark.parametrize("arguments, error, match", [
    ({"min_lr": 0.0}, ValueError, "lr_find: min_lr must be a number > 0, got 0.0"),
    ({"min_lr": -1e-3}, ValueError, "lr_find: min_lr must be a number > 0"),
    ({"max_lr": math.nan}, ValueError, "lr_find: max_lr must be a number > 0"),
    ({"max_lr": 1e39}, ValueError, r"lr_find: max_lr is 1e\+39: a learning rate must be a number in float32's"),
    ({"min_lr": 1.0, "max_lr": 1.0}, ValueError, "lr_find: min_lr must be below max_lr"),
    ({"min_lr": 2.0, "max_lr": 1.0}, ValueError, "lr_find: min_lr must be below max_lr"),
    ({"min_lr": "1e-7"}, ValueError, "lr_find: min_lr must be a number > 0"),
    ({"steps": 1}, ValueError, "lr_find: steps must be an integer ≥ 2"),
    ({"steps": 10.0}, ValueError, "lr_find: steps must be an integer ≥ 2"),
    ({"steps": True}, ValueError, "lr_find: steps must be an integer ≥ 2"),
    ({"mode": "exp"}, ValueError, "lr_find: mode must be one of 'exponential', 'linear', got 'exp'"),
    ({"mode": None}, ValueError, "lr_find: mode must be one of"),
    ({"stop_factor": 1.0}, ValueError, "lr_find: stop_factor must be a number > 1"),
    ({"stop_factor": -4}, ValueError, "lr_find: stop_factor must be a number > 1"),
    ({"smoothing": 1.0}, ValueError, r"lr_find: smoothing must be a number in \[0, 1\)"),
    ({"smoothing": -0.1}, ValueError, r"lr_find: smoothing must be a number in \[0, 1\)"),
])
def test_bad_arguments_are_refused_before_any_work(arguments, error, match):
    X, y, _ = regression(5, m=64)
    trainer = regression_trainer(5)
    before = everything(trainer)
    with pytest.raises(error, match=match):
        lr_find(trainer, X, y, **arguments)
    assert_same(before, everything(trainer))
    assert trainer.optimizer.version == 0  # (not even a rate set and put back)


@pytest.mark.parametrize("name", [*PEER_OPTIONS, "epochs"])
def test_lightnings_and_fastais_keywords_say_the_way_here_before_any_work(name):
    """Lightning's ``lr_find(num_training=…)``, fastai's ``lr_find(start_lr=…)``, …: Python's "unexpected keyword
    argument" named the keyword only; each now says lr_find's way, and a keyword it names is one lr_find takes."""
    import inspect

    X, y, _ = regression(5, m=64)
    trainer = regression_trainer(5)
    before = everything(trainer)
    with pytest.raises(TypeError, match=f"lr_find\\(\\) got an unexpected keyword argument '{name}'; ") as raised:
        lr_find(trainer, X, y, **{name: 1})
    assert_same(before, everything(trainer))
    assert trainer.optimizer.version == 0
    named = re.findall(r"is (\w+) here|(\w+)=math.inf", str(raised.value))
    taken = inspect.signature(lr_find).parameters
    assert all(word in taken for pair in named for word in pair if word), (named, str(raised.value))


def test_a_trainer_that_is_not_one_or_is_fitting_now_or_has_rates_of_their_own_is_refused():
    X, y, _ = regression(6, m=64)
    with pytest.raises(TypeError, match="lr_find: trainer must be an xdl.train.Trainer"):
        lr_find(regression_trainer(6).model, X, y)
    xdl.seed(6)
    model = xdl.nn.mlp(8, [4], 1)
    groups = [{"params": model.parameters()[:2], "lr": 0.1}, {"params": model.parameters()[2:], "lr": 0.01}]
    trainer = Trainer(model, MeanSquaredError(), xdl.optim.SGD(groups, lr=0.1), progress=False)
    with pytest.raises(ValueError, match=r"lr_find: trainer's optimizer has groups with rates of their own "
                                         r"\(0.1, 0.01\)"):
        lr_find(trainer, X, y)

    class FindsMidFit(xdl.train.Callback):
        def on_epoch_end(self, trainer, record):
            lr_find(trainer, X, y)

    trainer = regression_trainer(6, callbacks=[FindsMidFit()])
    with pytest.raises(RuntimeError, match="lr_find: trainer is fitting now"):
        trainer.fit(X, y)


def test_the_plot_draws_the_sweep_and_marks_the_suggestion():
    pytest.importorskip("matplotlib")
    X, y, _ = regression(7)
    result = lr_find(regression_trainer(7), X, y, min_lr=1e-4, max_lr=10.0)
    fig = result.plot()
    ax, = fig.axes
    assert ax.get_xscale() == "log" and len(ax.lines) == 3
    np.testing.assert_array_equal(ax.lines[1].get_xdata(), result.lrs)
    assert ax.lines[2].get_xdata()[0] == result.suggestion
    assert result.plot(ax=ax) is ax
    assert isinstance(result, LRFindResult)


def test_captured_steps_read_the_finders_rate_and_everything_is_put_back(backend):
    """On cupy the sweep's steps are captured (one graph per batch size) and read the rate from device
    memory, which each step's hook rewrites: the costs are an eager sweep's (capture=False), so each step
    used its rate, and the state is put back (on numpy both are eager)."""
    s = moons()
    costs = {}
    for capture in ("auto", False):
        trainer = moons_trainer(capture=capture)
        trainer.fit(s.X_train, s.y_train)
        trainer.epochs = 5
        before = everything(trainer)
        result = lr_find(trainer, s.X_train, s.y_train, min_lr=1e-5, max_lr=100.0)
        assert_same(before, everything(trainer))
        costs[capture] = result.costs
    assert len(costs["auto"]) > 20
    np.testing.assert_array_equal(costs["auto"], costs[False])


def test_a_model_or_fit_many_s_loop_given_as_trainer_is_told_how_to_make_one():
    """A newcomer's slips: the model itself, or a `ManyTrainer` (K models), in the trainer's place."""
    from xdl.config import TrainConfig
    from xdl.train.many import ManyTrainer

    X, y, _ = regression(8, m=64)
    with pytest.raises(TypeError, match=r"got Sequential: make one of the model, lr_find\(Trainer\(model, loss, "):
        lr_find(regression_trainer(8).model, X, y)
    many = ManyTrainer([TrainConfig(hidden=[4]), TrainConfig(hidden=[4], lr=0.01)])
    with pytest.raises(TypeError, match=r"got ManyTrainer: the range test trains one model; test each configuration "
                                        r"on its own, lr_find\(config.build_trainer"):
        lr_find(many, X, y)


@pytest.mark.parametrize("schedule", [None, xdl.optim.schedules.inverse_time(0.01, decay_rate=0.1),
                                      xdl.optim.schedules.cosine(0.01, 10)])
def test_a_trainer_with_an_epoch_schedule_is_told_to_make_the_schedule_from_the_suggestion(schedule):
    """An epoch schedule sets the rate at each epoch's start: the README's `trainer.optimizer.lr = found.suggestion`
    is overwritten by it at the next fit, unsaid (the run trained at the schedule's rates); warned where there is
    one, and a suggestion to make it from."""
    X, y, _ = regression(9)
    trainer = regression_trainer(9, schedule=schedule, epochs=10)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        found = lr_find(trainer, X, y, min_lr=1e-4, max_lr=10.0)
    about = [str(w.message) for w in said if "epoch schedule" in str(w.message)]
    assert found.suggestion is not None
    assert about == ([] if schedule is None else [
        "lr_find: trainer has an epoch schedule, which sets the optimizer's rate at each epoch's start "
        "(trainer.optimizer.lr = found.suggestion is overwritten at the next one): to train at the suggestion, make "
        "the schedule from it: trainer.schedule = xdl.optim.schedules.inverse_time(found.suggestion, decay_rate=…), "
        "say"]), about
    if schedule is not None:  # (what it warns of: the rate set by hand is not the one trained at)
        trainer.optimizer.lr = found.suggestion
        trainer.epochs = 1
        assert trainer.fit(X, y)["lr"] == [0.01]


def test_the_suggestion_is_the_steepest_fall_per_decade_not_per_unit_of_rate_as_the_readme_says():
    """On an exponential sweep the suggestion is the steepest slope against log₁₀ lr (fastai's ``steep``), not
    against lr (Lightning's ``suggestion()``, d loss / d lr, which divides each fall by its rate's small step at the
    sweep's small rates): a loss that falls a little per step at small rates and most per step at large ones is
    suggested at the large ones, where Lightning's rule picks a small one. README said only "where that loss falls
    fastest", unlike its peers' rule."""
    from pathlib import Path

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    said = readme.split("Which rate?", 1)[1].split("```python", 1)[0]
    assert "falls fastest against log₁₀ lr" in said and "Lightning's `suggestion()` takes the slope against the rate " \
        "itself" in said, said
    rng = np.random.default_rng(0)
    for n in range(40, 120, 9):
        lrs = sweep_rates(1e-6, 1.0, n, "exponential")
        steep = int(0.7 * n)  # (from here the loss falls 20× faster per step)
        falls = np.where(np.arange(n) < steep, 0.001, 0.02) * (1 + 0.1 * rng.random(n))
        losses = 3 - np.cumsum(falls)
        losses[-3:] += 1.0  # (the rise a stop ends with)
        suggestion, _ = steepest_descent(lrs, losses, "exponential")
        kept = slice(SKIP_FIRST, n - 1)
        lightnings = lrs[kept][np.argmin(np.gradient(losses[kept], lrs[kept]))]
        assert suggestion >= lrs[steep - 1] > lightnings, (n, suggestion, lightnings)


def steps_of(costs, stop_factor, smoothing, rates):
    """`RangeTest` of ``rates`` fed ``costs`` step by step on a stand-in trainer until it stops the run: (the
    test, the rate each step left set, whether the run was stopped)."""
    from types import SimpleNamespace

    test = RangeTest(rates, stop_factor, smoothing)
    trainer = SimpleNamespace(stop_training=False, optimizer=SimpleNamespace(param_groups=[{"lr": None}]))
    set_rates = []
    for cost in costs:
        test.on_step_end(trainer, cost)
        set_rates.append(trainer.optimizer.param_groups[0]["lr"])
        if trainer.stop_training:
            break
    return test, set_rates, trainer.stop_training


@pytest.mark.parametrize("costs, stop_factor, smoothing, stopped, steps", [
    ([1.0, 10.0, 1.0], 4.0, 0.0, "stop_factor", 2),  # (from the second step on)
    ([1.0, 4.0, 1.0], 4.0, 0.0, "steps", 3),  # (above stop_factor × the lowest, not at it)
    ([10.0, 1.0, 1.0, 5.0, 1.0], 4.0, 0.0, "stop_factor", 4),  # (× the lowest so far, not the first)
    ([1.0, 1.0, 1.0, 10.0, 1.0], 4.0, 0.9, "steps", 5),  # (the smoothed loss, 3.6, not the step cost)
    ([1.0, 1.0, 1.0, 30.0], 4.0, 0.9, "stop_factor", 4),  # (smoothed: 9.3)
    ([1.0, math.inf, 1.0], math.inf, 0.0, "diverged", 2),
    ([math.inf, 1.0], 4.0, 0.0, "diverged", 1),
    ([1.0, math.nan, 1.0], 4.0, 0.9, "diverged", 2),
    ([3.0, 2.0, 1.0], math.inf, 0.0, "steps", 3),
])
def test_the_range_test_stops_where_its_smoothed_loss_says(costs, stop_factor, smoothing, stopped, steps):
    """After step k it stops at a smoothed loss not finite ("diverged"), or above stop_factor × the lowest so
    far from the second step on ("stop_factor"), or after the last rate ("steps"); else it sets rates[k + 1]."""
    rates = np.geomspace(1e-3, 1.0, len(costs))
    test, set_rates, stop = steps_of(costs, stop_factor, smoothing, rates)
    assert (test.stopped, len(test.costs)) == (stopped, steps) and stop
    # (after each step but the last, the next step's rate; none set after the step that stops)
    assert set_rates == [*rates[1:steps], rates[steps - 1] if steps > 1 else None]
    result = test.result("exponential")
    assert result.stopped == stopped and np.array_equal(result.lrs, rates[:steps])
    np.testing.assert_allclose(result.losses[np.isfinite(result.losses)],
                               ewa(result.costs, smoothing)[np.isfinite(result.losses)], rtol=1e-12)


def falls(n):
    """A smoothed loss of n steps falling ever more slowly after `SKIP_FIRST`: its steepest descent at the
    first point a suggestion reads, 100 − (k − 10) + 0.01·(k − 10)²."""
    k = np.arange(n, dtype=np.float64)
    return 100.0 - (k - SKIP_FIRST) + 0.01 * (k - SKIP_FIRST) ** 2


@pytest.mark.parametrize("mode", ["exponential", "linear"])
@pytest.mark.parametrize("n", [SKIP_FIRST + 3, SKIP_FIRST + 8, 40, 100])
def test_the_suggestion_leaves_out_the_last_point_and_reads_finite_losses_only(mode, n):
    """A fall at the last point (a stop's last step) is left out; so are losses that are not finite
    (a suggestion over the finite ones); one finite point, or a flat loss, has no descent to suggest."""
    lrs = sweep_rates(1e-4, 1.0, n, mode)
    expected = lrs[SKIP_FIRST]
    # (linear: falling in lr ever more slowly, steepest at its first point read, as in log10 lr at its last)
    losses = falls(n) if mode == "exponential" else 100.0 - lrs * (1.0 - 0.1 * lrs)
    assert steepest_descent(lrs, losses, mode) == (expected, "")
    dropped = losses.copy()
    dropped[-1] -= 1e6  # (the last point: steepest by far, left out)
    assert steepest_descent(lrs, dropped, mode) == (expected, "")
    if n > SKIP_FIRST + 4:
        gaps = losses.copy()
        gaps[SKIP_FIRST + 1:-2:2] = np.nan  # (not finite: left out; the slopes of the rest)
        suggestion, why = steepest_descent(lrs, gaps, mode)
        assert suggestion == expected and why == "", (suggestion, why)
    one = np.full(n, np.nan)
    one[SKIP_FIRST] = 1.0
    assert steepest_descent(lrs, one, mode) == (None, TOO_FEW_POINTS)
    assert why_none_said(TOO_FEW_POINTS, one) == (
        f"1 finite smoothed loss past the first {SKIP_FIRST} steps and before the last, and a slope needs 2: give "
        "more steps (or a larger stop_factor)")
    even = np.arange(1, n + 1) / 8  # (spaced exactly: a flat loss's slopes are 0, not rounding's ± 1e-17)
    assert steepest_descent(even, np.full(n, 2.0), "linear") == (None, NEVER_FELL)


def test_the_plot_marks_the_suggestion_on_the_smoothed_loss():
    pytest.importorskip("matplotlib")
    n = 40
    lrs = sweep_rates(1e-4, 1.0, n, "exponential")
    costs = falls(n) + np.random.default_rng(0).random(n)
    result = LRFindResult(lrs, falls(n), costs, "exponential", "steps")
    ax = result.plot().axes[0]
    at = SKIP_FIRST
    assert result.suggestion == lrs[at]
    assert (ax.lines[2].get_xdata()[0], ax.lines[2].get_ydata()[0]) == (lrs[at], result.losses[at])
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), costs)


def test_a_key_and_feature_names_of_the_user_s_own_are_put_back():
    """A dropout key the user gave (a loop of one's own draws masks from it) and the columns of the frame the
    model was fitted on: the finder's fit (its keys, an array's no names) leaves them as they were."""
    pd = pytest.importorskip("pandas")
    s = moons()
    trainer = moons_trainer()
    frame = pd.DataFrame(s.X_train, columns=["a", "b"])
    trainer.fit(frame, s.y_train)
    trainer.model.set_random_key(7, step=3)
    trainer.model.load_state_dict(trainer.model.state_dict())  # (a load of the user's: EarlyStopping counts them)
    before = everything(trainer)
    assert before["model attributes"]["_state_loads"] == 1
    assert before["model attributes"]["feature_names_in_"] == ("a", "b")
    assert any(key is not None for _, key, _ in before["keys"])
    lr_find(trainer, s.X_train, s.y_train, steps=30)
    assert_same(before, everything(trainer))
    fresh = moons_trainer()  # (and no names where it had none: a frame's fit sets them)
    before = everything(fresh)
    lr_find(fresh, frame, s.y_train, steps=30)
    assert_same(before, everything(fresh))


def test_two_steps_are_the_fewest_a_sweep_takes():
    """steps ≥ 2: its two rates are min_lr and max_lr (too few points past the first ones to suggest one)."""
    X, y, _ = regression(10, m=512)
    with pytest.warns(UserWarning, match="lr_find: no suggestion"):
        result = lr_find(regression_trainer(10), X, y, min_lr=1e-3, max_lr=1e-2, steps=2)
    assert result.lrs.tolist() == [1e-3, 1e-2] and result.stopped == "steps"


def test_smoothing_0_records_the_step_costs_themselves():
    X, y, _ = regression(11, m=512)
    result = lr_find(regression_trainer(11), X, y, min_lr=1e-4, max_lr=1e-1, steps=20, smoothing=0.0)
    assert result.stopped == "steps" and np.array_equal(result.losses, result.costs)


def test_the_finder_trains_with_the_trainer_s_settings():
    """The finder's `Trainer` takes the given one's model, loss, optimizer, L2, L1, batch size, augmentation,
    seed and capture, and as many epochs as steps (where the batch size is the whole set's: a batch an epoch)."""
    X, y, _ = regression(12, m=256)

    def augment(Xb, rng):
        return Xb + 0.01 * rng.standard_normal(Xb.shape).astype(Xb.dtype)

    trainer = regression_trainer(12, l2=0.01, l1=0.001, augment=augment, capture=False)
    seen = []
    on_step_end = RangeTest.on_step_end

    def recorded(self, finder, cost):
        seen.append(finder)
        on_step_end(self, finder, cost)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RangeTest, "on_step_end", recorded)
        result = lr_find(trainer, X, y, min_lr=1e-4, max_lr=1e-2, steps=25)
    finder = seen[0]
    assert finder is not trainer and all(f is finder for f in seen)
    assert (finder.model, finder.loss, finder.optimizer) == (trainer.model, trainer.loss, trainer.optimizer)
    settings = ("l2", "l1", "batch_size", "augment", "seed", "capture")
    assert {k: getattr(finder, k) for k in settings} == {k: getattr(trainer, k) for k in settings}
    assert result.stopped == "steps" and len(result.lrs) == 25  # (one batch an epoch: 25 epochs)


def test_a_schedule_is_not_warned_of_where_there_is_no_suggestion():
    X, y, _ = regression(13, m=512)
    trainer = regression_trainer(13, schedule=xdl.optim.schedules.inverse_time(0.01, decay_rate=0.1), epochs=10)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        lr_find(trainer, X, y, steps=5)
    assert [str(w.message).split(":")[1] for w in said] == [" no suggestion"]


def test_the_readme_says_lr_find_s_defaults():
    """README's sentence on lr_find gives its defaults as its signature has them (min_lr, max_lr, mode,
    smoothing, stop_factor by name; steps as "trains 100 batches")."""
    import inspect
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    sentence = " ".join(readme.split("`xdl.train.lr_find(trainer, X, y)`", 1)[1].split("\n\n", 1)[0].split())
    defaults = {name: p.default for name, p in inspect.signature(lr_find).parameters.items()
                if p.default is not p.empty}
    # (the sentence names peers' settings too, Lightning's `update_attr=True`: lr_find's own are compared)
    said = {k: v for k, v in re.findall(r"`(\w+)=([^`]+)`", sentence) if k in defaults}
    assert {k: repr(defaults[k]) if isinstance(defaults[k], str) else float(defaults[k]) for k in said} == \
        {k: v.replace('"', "'") if v.startswith('"') else float(v) for k, v in said.items()}
    assert set(said) == set(defaults) - {"steps"} and f"trains {defaults['steps']} batches" in sentence


@pytest.mark.gpu
def test_a_captured_sweep_replays_its_step_at_each_rate_as_the_eager_sweep_trains_and_puts_the_state_back(cupy):
    """On the device the sweep's steps replay one captured graph, which reads each step's rate from the device
    (`set_every_rate`): the step costs of the captured sweep are the eager sweep's, and the model is put back
    bit for bit (no GPU test ran lr_find's captured path: a graph that kept its first rate swept nothing)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(96, 6)).astype(np.float32), rng.integers(0, 3, 96)
    sweeps = {}
    for capture in (False, True):
        xdl.seed(0)
        model = xdl.nn.mlp(6, [16], 3, batch_norm=True, dropout=0.2)
        trainer = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-2, max_grad_norm=0.5),
                          batch_size=16, epochs=2, seed=5, capture=capture)
        before = {name: xdl.to_numpy(value) for name, value in model.state_dict().items()}
        with cupy.fake_trace() as trace:
            sweeps[capture] = lr_find(trainer, X, y, steps=25, max_lr=3.0)
        replays = sum(kind == "graph" for kind, _, _ in trace.events)
        assert replays == (len(sweeps[capture].costs) - 1 if capture else 0), replays  # (the first step captures)
        after = {name: xdl.to_numpy(value) for name, value in model.state_dict().items()}
        assert all(np.array_equal(before[name], after[name]) for name in before)
    assert len(sweeps[True].costs) == 25 and np.array_equal(sweeps[True].costs, sweeps[False].costs)
    assert sweeps[True].suggestion == sweeps[False].suggestion is not None
