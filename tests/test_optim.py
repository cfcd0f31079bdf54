"""Optimizers against their formulas, schedules, minimize, bad input, checkpoints."""

import math
import re

import numpy as np
import pytest

import xdl
from xdl.nn import BatchNorm, Dense, ReLU, Sequential
from xdl.optim import SGD, Adam, AdamW, Momentum, RMSprop, param_groups, schedules
from conftest import OtherBackend, memory_mapped


def reference_step(name, p, g, state, t, h):
    """The formulas of ARCHITECTURE.md, written plainly in float64 NumPy."""
    lr, wd = h["lr"], h.get("weight_decay", 0.0)
    if name == "AdamW":
        p = p * (1 - lr * wd)
    elif wd:
        g = g + wd * p
    if name == "SGD":
        return p - lr * g
    if name in ("Momentum", "Nesterov"):
        state["v"] = h["beta"] * state["v"] + (1 - h["beta"]) * g
        direction = h["beta"] * state["v"] + (1 - h["beta"]) * g if name == "Nesterov" else state["v"]
        return p - lr * direction
    if name == "RMSprop":
        state["s"] = h["beta"] * state["s"] + (1 - h["beta"]) * g**2
        return p - lr * g / (np.sqrt(state["s"]) + h["eps"])
    state["m"] = h["beta1"] * state["m"] + (1 - h["beta1"]) * g
    state["v"] = h["beta2"] * state["v"] + (1 - h["beta2"]) * g**2
    m_hat = state["m"] / (1 - h["beta1"] ** t)
    v_hat = state["v"] / (1 - h["beta2"] ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + h["eps"])


OPTIMIZERS = {
    "SGD": (SGD, dict(lr=0.05, weight_decay=0.01)),
    "Momentum": (Momentum, dict(lr=0.05, beta=0.8, weight_decay=0.02)),
    "Nesterov": (lambda params, **h: Momentum(params, nesterov=True, **h), dict(lr=0.05, beta=0.9)),
    # (with weight decay: g + wd·p is both the numerator and what s averages — a numerator of g alone passed)
    "RMSprop": (RMSprop, dict(lr=0.01, beta=0.95, eps=1e-6, weight_decay=0.05)),
    "Adam": (Adam, dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.001)),
    "AdamW": (AdamW, dict(lr=0.01, beta1=0.85, beta2=0.99, eps=1e-7, weight_decay=0.1)),
}


def test_every_rule_xdl_optim_exports_is_in_the_formula_table_and_the_configurations():
    """ARCHITECTURE.md's optimizer recipe, step 4: a rule exported from `xdl.optim` but left out of
    `OPTIMIZERS` here (its formula, 100 steps) or of `xdl.config.OPTIMIZERS` (the command line,
    `fit_many`, the tuner, `xdl bench optimizers`), or of `KERAS_SPELLINGS` (Keras's names of its settings),
    passed every test."""
    from xdl.config import OPTIMIZERS as CONFIGURED, TrainConfig

    exported = {cls for cls in (getattr(xdl.optim, name) for name in xdl.optim.__all__)
                if isinstance(cls, type) and issubclass(cls, xdl.optim.Optimizer) and cls is not xdl.optim.Optimizer}
    tabled = {type(make([xdl.tensor([1.0], requires_grad=True)], **h)) for make, h in OPTIMIZERS.values()}
    configured = {type(build([xdl.tensor([1.0], requires_grad=True)], TrainConfig())) for _, build in CONFIGURED.values()}
    assert exported == tabled == configured == set(KERAS_SPELLINGS), (exported, tabled, configured)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_matches_formula_for_100_steps(backend, rng, name):
    make, h = OPTIMIZERS[name]
    shapes = [(7, 3), (5,), (1,)]
    values = [rng.standard_normal(s) for s in shapes]
    params = [xdl.Tensor(backend.asarray(v.copy()), requires_grad=True, backend=backend) for v in values]
    opt = make(params, **h)
    states = [{"v": 0.0, "s": 0.0, "m": 0.0} for _ in shapes]
    for t in range(1, 101):
        grads = [rng.standard_normal(s) for s in shapes]
        for p, g in zip(params, grads):
            p.grad[...] = backend.asarray(g)
        opt.step()
        values = [reference_step(name, v, g, st, t, h) for v, g, st in zip(values, grads, states)]
    for p, v in zip(params, values):
        got = p.numpy()
        assert np.linalg.norm(got - v) / np.linalg.norm(v) < 1e-6, name


@pytest.mark.parametrize("with_params_at", ["minimize", "constructor"])
def test_adam_minimize_parabola(backend, with_params_at):
    w = xdl.tensor([0.0], requires_grad=True)
    cost = lambda: w**2 - 10 * w + 25
    if with_params_at == "minimize":
        last = Adam(lr=0.1).minimize(cost, [w], steps=1000)
    else:
        last = Adam([w], lr=0.1).minimize(cost, steps=1000)
    assert abs(w.item() - 5.0) < 1e-4
    assert abs(last) < 1e-4  # float32: 25 − 50 + 25 rounds at ~2e-6


def test_a_group_added_later_counts_its_own_adam_steps(backend):
    """Its moments start at 0 when it joins, so its bias corrections count from there (PyTorch keeps
    a step per parameter): its first update is lr·sign(g), not 2.5 lr after 1000 steps of another
    group; a state_dict keeps where each group started."""
    a, b = xdl.tensor([1.0], requires_grad=True), xdl.tensor([5.0], requires_grad=True)
    opt = Adam(lr=0.01)
    opt.minimize(lambda: (a * a).sum(), [a], steps=1000)
    opt.minimize(lambda: (b * b).sum(), [b], steps=1)
    assert 5.0 - b.item() == pytest.approx(0.01, rel=1e-4)  # (float32 at 5: an ulp is 5e-7)
    state = opt.state_dict()
    assert state["t"] == 1001 and state["first_steps"] == [0, 1000]
    twin_a, twin_b = xdl.tensor([a.item()], requires_grad=True), xdl.tensor([b.item()], requires_grad=True)
    twin = Adam([{"params": [twin_a]}, {"params": [twin_b]}], lr=0.01)
    twin.load_state_dict(state)
    for optimizer, p in ((opt, b), (twin, twin_b)):
        optimizer.zero_grad()
        (p * p).sum().backward()
        optimizer.step()
    assert twin_b.item() == b.item()


TABLE_PROBLEMS = {
    "parabola": (lambda w: ((w - 3.0) ** 2).sum(), np.array([0.0, 0.0]), np.array([3.0, 3.0])),
    "rosenbrock": (lambda w: (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2, np.array([-1.0, 1.0]),
                   np.array([1.0, 1.0])),
}


# Rosenbrock's steps per rule: about twice those after which its iterate stays within 0.05 of (1, 1) (Adam 400,
# RMSprop 2,500, Momentum 3,400, SGD 7,000 in float64): 20,000 for every rule was 16 CPU seconds of the numpy suite
# and 75 of the gpu tests over tests/fakecupy, and a rule that slows down past twice its pace fails here.
ROSENBROCK_STEPS = {"adam": 1000, "rmsprop": 5000, "momentum": 7000, "sgd": 14000}


@pytest.mark.parametrize("problem", list(TABLE_PROBLEMS))
@pytest.mark.parametrize("name, make", [("adam", lambda p: Adam(p, lr=0.02)),
                                        ("rmsprop", lambda p: RMSprop(p, lr=0.003)),
                                        ("momentum", lambda p: Momentum(p, lr=0.002, beta=0.9)),
                                        ("sgd", lambda p: SGD(p, lr=0.001))],
                         ids=["adam", "rmsprop", "momentum", "sgd"])
def test_every_optimizer_solves_small_problems(backend, problem, name, make):
    fn, start, solution = TABLE_PROBLEMS[problem]
    w = xdl.tensor(start, requires_grad=True)
    opt = make([w])
    opt.minimize(lambda: fn(w), steps=ROSENBROCK_STEPS[name] if problem == "rosenbrock" else 3000)
    assert np.allclose(w.numpy(), solution, atol=0.05), w.numpy()


def test_schedules_match_formulas():
    assert schedules.inverse_time(0.2, decay_rate=1.0)(1) == pytest.approx(0.1)
    assert schedules.inverse_time(0.2, decay_rate=0.5)(4) == pytest.approx(0.2 / 3)
    assert schedules.exponential(0.1)(10) == pytest.approx(0.1 * 0.95**10)
    assert schedules.exponential(0.1, base=0.5)(3) == pytest.approx(0.0125)
    assert schedules.inverse_sqrt(0.1, k=2.0)(16) == pytest.approx(0.05)
    assert schedules.staircase(0.1, decay_rate=1.0, interval=10)(9) == pytest.approx(0.1)
    assert schedules.staircase(0.1, decay_rate=1.0, interval=10)(25) == pytest.approx(0.1 / 3)
    assert schedules.step_decay(0.1, factor=0.5, every=10)(35) == pytest.approx(0.0125)
    cos = schedules.cosine(1.0, total=100, min_lr=0.1)
    assert cos(0) == pytest.approx(1.0) and cos(50) == pytest.approx(0.55) and cos(100) == cos(500) == pytest.approx(0.1)
    warm = schedules.warmup(schedules.exponential(0.1), steps=4)
    assert warm(0) == pytest.approx(0.1 * 0.25) and warm(2) == pytest.approx(0.1 * 0.95**2 * 0.75)
    assert warm(3) == pytest.approx(0.1 * 0.95**3) and warm(8) == pytest.approx(0.1 * 0.95**8)
    assert schedules.warmup(0.3, 3)(0) == pytest.approx(0.1)
    for s in (schedules.inverse_time(0.3, decay_rate=2.0), schedules.exponential(0.3),
              schedules.staircase(0.3, decay_rate=1.0, interval=5),
              schedules.step_decay(0.3), schedules.cosine(0.3, 10), schedules.inverse_sqrt(0.3)):
        assert s(0) == pytest.approx(0.3), s.__name__  # count 0 (the first step or epoch) gives α₀


@pytest.mark.parametrize("make", [
    lambda f, i: schedules.inverse_time(f(3e-3), decay_rate=f(0.1)),
    lambda f, i: schedules.exponential(f(3e-3), base=f(0.9)), lambda f, i: schedules.inverse_sqrt(f(3e-3), f(2.0)),
    lambda f, i: schedules.staircase(f(3e-3), decay_rate=f(0.1), interval=i(3)),
    lambda f, i: schedules.step_decay(f(3e-3), factor=f(0.5), every=i(2)),
    lambda f, i: schedules.cosine(f(3e-3), i(30), min_lr=f(1e-4)),
    lambda f, i: schedules.warmup(f(3e-3), i(5)), lambda f, i: schedules.warmup(schedules.exponential(f(3e-3)), i(5))])
def test_a_schedule_of_numpy_numbers_gives_the_rates_of_the_same_python_numbers(make):
    """exponential(np.float32(3e-3), base=...) (a rate from Optuna, a frame, a NumPy grid) computed its
    formula in float32 (NEP 50), rounding each rate there: a run's rates, and so its weights, differed
    from those of the same value given as a Python float."""
    numpy_made = make(np.float32, np.int64)
    python_made = make(lambda v: float(np.float32(v)), int)
    for count in range(40):
        rate = numpy_made(count)
        assert type(rate) is float and rate == python_made(count), count
    assert numpy_made.__name__ == python_made.__name__


def test_schedule_as_lr_is_evaluated_per_step(backend):
    w = xdl.tensor([1.0], requires_grad=True)
    opt = SGD([w], lr=schedules.inverse_time(1.0, decay_rate=1.0))
    for t in range(3):  # t steps taken so far: the schedule's count
        w.grad[...] = 1.0
        assert opt.current_lr() == pytest.approx(1.0 / (1 + t))
        opt.step()
    assert w.item() == pytest.approx(1 - (1 + 1 / 2 + 1 / 3), rel=1e-6)


@pytest.mark.parametrize("maker", [schedules.exponential, schedules.inverse_sqrt, schedules.cosine])
def test_a_function_that_makes_a_schedule_given_as_one_is_named(backend, maker):
    """lr=schedules.exponential (not exponential(0.1)) was called with the count as its α₀: "lr0 must be
    a finite number > 0, got 0", of an lr0 never given (cosine: "a Keras schedule(epoch, lr)?")."""
    model = Sequential(Dense(2, 2))
    match = rf"is xdl.optim.schedules.{maker.__name__}, which makes a schedule: .* schedules.{maker.__name__}\(lr0"
    with pytest.raises(TypeError, match=rf"^lr {match}"):
        SGD(model, lr=maker)
    with pytest.raises(TypeError, match=rf"^schedule {match}"):
        xdl.train.Trainer(model, xdl.losses.SoftmaxCrossEntropy(), SGD(model), schedule=maker)
    with pytest.raises(TypeError, match=rf"^warmup: schedule {match}"):
        schedules.warmup(maker, 3)


def test_warmup_given_as_a_schedule_is_named_with_its_own_arguments():
    """lr=schedules.warmup is refused as the other makers are, but its example read warmup(lr0, ...):
    warmup takes the schedule (or rate) it warms up to, then its steps."""
    with pytest.raises(TypeError, match=r"^lr is xdl.optim.schedules.warmup, .*e.g. schedules.warmup\(schedule, \.\.\.\)$"):
        SGD(Sequential(Dense(2, 2)), lr=schedules.warmup)


def test_manual_lr_change(backend):
    w = xdl.tensor([0.0], requires_grad=True)
    opt = SGD([w], lr=0.1)
    w.grad[...] = 1.0
    opt.step()
    opt.lr = 0.01
    opt.step()
    assert w.item() == pytest.approx(-0.11)
    assert opt.lr == 0.01


def test_a_rate_one_group_refuses_changes_no_group(backend):
    """opt.lr = 1e39: float64's group can hold it, float32's cannot (inf there). Refused, it is no
    group's rate (the float64 group held it, and its next step moved its weights to −1e39)."""
    a = xdl.Tensor(backend.asarray(np.ones(2)), requires_grad=True, backend=backend)
    b = xdl.Tensor(backend.asarray(np.ones(2, dtype=np.float32)), requires_grad=True, backend=backend)
    opt = SGD([{"params": [a]}, {"params": [b]}], lr=0.1)
    with pytest.raises(ValueError, match=r"lr is 1e\+39: a learning rate must be 0 or a number in float32's"):
        opt.lr = 1e39
    assert [g.settings["lr"] for g in opt.groups] == [0.1, 0.1] and opt.lr == 0.1
    a.grad[...] = 1.0
    b.grad[...] = 1.0
    opt.step()
    assert a.numpy().tolist() == [0.9, 0.9]


def test_param_groups_skip_decay_on_biases_and_bn(backend):
    model = Sequential(Dense(3, 4), BatchNorm(4), Dense(4, 2))
    before = {n: p.numpy().copy() for n, p in model.named_parameters()}
    opt = SGD(param_groups(model, weight_decay=0.5), lr=0.1)
    model.zero_grad()
    opt.step()  # zero gradients: only weight decay moves anything
    for name, p in model.named_parameters():
        expected = before[name] * (1 - 0.05) if p.role == "weight" else before[name]
        assert np.allclose(p.numpy(), expected), name
    # the groups are contiguous ranges of the model's flat buffer: no copy was made
    buffer = model.parameters()[0]._flat[0]
    assert all(p._flat[0] is buffer for p in model.parameters())


def test_an_optimizer_shows_its_rule_and_each_groups_settings():
    """A notebook cell ending with an optimizer showed "<xdl.optim.rules.Adam object at 0x…>"
    (PyTorch's repr lists each group's settings)."""
    model = Sequential(Dense(3, 4), BatchNorm(4), Dense(4, 2))
    assert repr(Adam(model, lr=0.01)) == "Adam(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-08, weight_decay=0.0; 6 parameters)"
    assert repr(SGD(lr=schedules.exponential(0.1, base=0.9))) == \
        "SGD(lr=exponential(0.1, 0.9), weight_decay=0.0; no parameters yet)"
    assert repr(Momentum(param_groups(model, 0.01))).splitlines() == [
        "Momentum(",
        "  group 0: lr=0.01, beta=0.9, nesterov=False, weight_decay=0.01; 2 parameters",
        "  group 1: lr=0.01, beta=0.9, nesterov=False, weight_decay=0.0; 4 parameters",
        ")"]


@pytest.mark.parametrize("max_grad_norm", [1e-3, 0.5, 1, 10.0])
def test_an_optimizer_that_clips_shows_its_max_grad_norm(max_grad_norm):
    """``SGD(model, lr=0.1, max_grad_norm=0.5)`` showed as one that clips nothing: ``SGD(lr=0.1, …)``."""
    model = Sequential(Dense(3, 4), BatchNorm(4), Dense(4, 2))
    shown = f"max_grad_norm={float(max_grad_norm)!r}"
    clipped = SGD(model, lr=0.1, max_grad_norm=max_grad_norm)
    assert repr(clipped) == f"SGD(lr=0.1, weight_decay=0.0; 6 parameters; {shown})"
    assert repr(Adam(param_groups(model, 0.01), max_grad_norm=max_grad_norm)).splitlines()[-2:] == [f"  {shown}", ")"]
    unclipped = SGD(model, lr=0.1, max_grad_norm=max_grad_norm)
    unclipped.max_grad_norm = None
    assert "max_grad_norm" not in repr(unclipped)


def test_param_groups_and_l2_read_tensors_without_a_role_alike(backend):
    """A matrix is a weight, a vector a bias, as a module registers them (param_groups put every plain
    tensor in the undecayed group, a decay asked for and silently dropped; l2 penalized all)."""
    W, b = xdl.tensor(np.ones((2, 2)), requires_grad=True), xdl.tensor(np.ones(2), requires_grad=True)
    groups = param_groups([W, b], 0.1)
    assert [([id(p) for p in g["params"]], g["weight_decay"]) for g in groups] == [([id(W)], 0.1), ([id(b)], 0.0)]
    assert xdl.losses.l2([W, b], 1.0).item() == 2.0  # λ/2·‖W‖², not b's
    alone = xdl.Parameter(backend.asarray(np.ones((3, 2))))  # no module gave it a role
    assert param_groups([alone], 0.1)[0]["weight_decay"] == 0.1 and xdl.losses.l2([alone], 2.0).item() == 6.0
    column = xdl.Parameter(backend.asarray(np.ones((3, 1))), role="bias")  # the course's b: (n, 1), a matrix
    assert xdl.losses.l2([alone, column], 2.0).item() == 6.0 and param_groups([column], 0.1)[0]["weight_decay"] == 0.0
    with pytest.raises(ValueError, match=r"Parameter: role must be one of weight, bias, scale, shift or None, got 'b'"):
        xdl.Parameter(np.ones(2), role="b")


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=-1e-3), "lr must be a finite number ≥ 0, got -0.001"), (dict(lr=-1), "lr must be"),
    (dict(lr=True), "lr must be a finite number ≥ 0, got True"), (dict(lr=10**400), "lr must be a finite number"),
    (dict(lr="0.1"), "lr must be"), (dict(beta1=True), r"beta1 must be in \[0, 1\), got True"),
    (dict(beta1=1.0), r"beta1 must be in \[0, 1\)"), (dict(beta2=-0.1), "beta2 must be in"),
    (dict(eps=0.0), "eps must be a finite number > 0"), (dict(weight_decay=-1.0), "weight_decay must be"),
    (dict(weight_decay=float("nan")), "weight_decay must be"),
])
def test_bad_hyperparameters_fail_at_construction(backend, kwargs, match):
    w = xdl.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match=match):
        Adam([w], **kwargs)


def test_numpy_numbers_are_numbers_and_a_flag_is_checked_not_converted(backend):
    w = xdl.tensor([1.0], requires_grad=True)
    assert Adam([w], lr=np.int64(1), weight_decay=np.int64(0)).lr == 1
    with pytest.raises(ValueError, match="nesterov must be True or False, got 'no'"):
        Momentum([w], nesterov="no")  # bool("no") is True: a flag is checked, never converted


def test_a_flag_is_passed_as_it_is_and_never_held_as_a_number(backend):
    w = xdl.tensor([1.0], requires_grad=True)
    opt = Momentum([w], lr=0.1, nesterov=True)
    assert opt.groups[0].held_names == ("lr", "beta", "weight_decay")
    with pytest.raises(ValueError, match="nesterov must be True or False, got 1"):
        opt.add_param_group({"params": [xdl.tensor([2.0], requires_grad=True)], "nesterov": 1})


def test_param_groups_read_and_set_each_groups_settings_as_pytorchs_do(backend):
    """``for g in opt.param_groups: g["lr"] = …`` changes the next step as ``opt.lr = …`` does, per
    group; a bad value or name is refused before anything changes."""
    model = Sequential(Dense(3, 4), BatchNorm(4), Dense(4, 2))
    twin = Sequential(Dense(3, 4), BatchNorm(4), Dense(4, 2))
    twin.load_state_dict(model.state_dict())
    opt = Adam(param_groups(model, weight_decay=0.1), lr=0.01)
    reference = Adam(param_groups(twin, weight_decay=0.1), lr=0.01)
    groups = opt.param_groups
    assert [len(g["params"]) for g in groups] == [2, 4] and groups[0]["params"][0] is opt.groups[0].params[0]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0] and list(groups[0]) == ["params", *opt.groups[0].settings]
    x = xdl.tensor(np.random.default_rng(0).standard_normal((5, 3)))
    for m, o in ((model, opt), (twin, reference)):  # a step at the first rates
        o.zero_grad()
        (m(x) ** 2).sum().backward()
        o.step()
    groups[1]["lr"] = 0.5  # the biases' and BN's group only: held on the device at once, before any step
    assert backend.to_numpy(opt.groups[1].held)[0] == 0.5 and backend.to_numpy(opt.groups[0].held)[0] == 0.01
    assert opt.version == 0  # a held number: a captured step reads it, nothing to capture again
    reference.groups[1].settings["lr"] = 0.5
    for m, o in ((model, opt), (twin, reference)):
        o.zero_grad()
        (m(x) ** 2).sum().backward()
        o.step()
    assert opt.lr == 0.01 and opt.groups[1].settings["lr"] == 0.5
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, twin.state_dict()[name])
    before = dict(opt.groups[0].settings)
    with pytest.raises(ValueError, match=r"beta1 must be in \[0, 1\)"):
        groups[0]["beta1"] = 1.0
    with pytest.raises(ValueError, match="lr must be a finite number ≥ 0"):
        groups[0]["lr"] = -1.0
    with pytest.raises(KeyError, match="Adam has no setting 'betas'"):
        groups[0]["betas"] = (0.9, 0.99)
    with pytest.raises(KeyError, match=r"Adam has no setting 'momentum' \(its settings: params, lr, beta1"):
        groups[0]["momentum"]
    assert isinstance(groups[0]["params"], tuple)  # appending to it would add nothing: it cannot be appended to
    with pytest.raises(TypeError, match="add_param_group"):
        groups[0]["params"] = []
    with pytest.raises(TypeError, match="cannot be removed"):
        del groups[0]["lr"]
    with pytest.raises(KeyError, match="Adam has no setting 'betas'"):
        groups[0].update(lr=0.5, betas=(0.9, 0.9))  # checked as a whole: the lr is not written either
    with pytest.raises(ValueError, match=r"beta1 must be in \[0, 1\)"):
        groups[0].update({"lr": 0.7, "beta1": 1.5})
    assert opt.groups[0].settings == before and backend.to_numpy(opt.groups[0].held)[0] == 0.01
    groups[0].update({"beta1": 0.8}, eps=1e-6)
    assert (opt.groups[0].settings["beta1"], opt.groups[0].settings["eps"]) == (0.8, 1e-6)
    before = dict(opt.groups[0].settings)
    assert isinstance(opt.param_groups, tuple)  # groups are added with add_param_group, not by appending
    groups[0]["lr"] = schedules.inverse_time(0.01, decay_rate=1.0)  # read on the host: a captured step is made again
    assert opt.version == 1 and opt.current_lr(opt.groups[0]) == 0.01 / (1 + 2)  # two steps taken


def test_mixed_backends_fail_at_construction(backend):
    other = OtherBackend()
    a = xdl.tensor([1.0], requires_grad=True)
    b = xdl.Tensor(np.zeros(2, dtype=np.float32), requires_grad=True, backend=other)
    with pytest.raises(ValueError, match=rf"mixed backends \(({backend.name} and otherlib|otherlib and {backend.name})\)"):
        Adam([a, b])


def test_non_finite_gradient_is_reported_not_applied(backend):
    w = xdl.Parameter(backend.asarray(np.ones(3, dtype=np.float32)), name="layer.weight")
    opt = Adam([w], lr=0.1, check_finite=True)
    w.grad[...] = backend.asarray(np.array([1.0, np.nan, 0.0], dtype=np.float32))
    with pytest.raises(FloatingPointError, match=r"layer\.weight before step 1"):
        opt.step()
    assert np.array_equal(w.numpy(), np.ones(3)) and opt.t == 0


def test_state_dict_round_trip_continues_identically(backend, rng):
    def run(split):
        w = xdl.tensor(np.linspace(-1, 1, 5), requires_grad=True)
        opt = Adam([w], lr=0.05)
        grads = np.random.default_rng(0).standard_normal((10, 5))
        for i, g in enumerate(grads):
            if i == split:
                saved = opt.state_dict()
                opt = Adam([w], lr=0.05)
                opt.load_state_dict(saved)
            w.grad[...] = backend.asarray(g)
            opt.step()
        return w.numpy()

    assert np.array_equal(run(split=None), run(split=4))



def test_load_state_dict_restores_each_groups_settings_as_pytorchs_does():
    """A state carries its groups' hyperparameters: an optimizer made with others takes the saved
    lr, β₁, β₂, ε and weight decay (PyTorch's load_state_dict restores param_groups), so it steps as
    the saved one would. Why: with the settings left out of the load, every test still passed."""
    w, u = xdl.tensor(np.linspace(-1, 1, 5), requires_grad=True), xdl.tensor(np.ones(3), requires_grad=True)
    saved = Adam([{"params": [w], "lr": 0.05, "beta1": 0.5}, {"params": [u], "weight_decay": 0.2}], lr=0.02,
                 beta2=0.9, eps=1e-3)
    fresh = Adam([{"params": [w]}, {"params": [u]}], lr=0.1)
    fresh.load_state_dict(saved.state_dict())
    for g_saved, g_fresh in zip(saved.param_groups, fresh.param_groups):
        assert {k: v for k, v in g_fresh.items() if k != "params"} == {k: v for k, v in g_saved.items() if k != "params"}
    w.grad[...], u.grad[...] = 1.0, 1.0
    before = w.numpy().copy()
    fresh.step()  # t = 1: p − lr·m̂/(√v̂ + ε) with m̂ = g, v̂ = g²
    np.testing.assert_allclose(w.numpy(), before - 0.05 * 1.0 / (1.0 + 1e-3), rtol=1e-12)

def test_a_state_with_settings_the_optimizer_would_refuse_is_refused_before_anything_changes(backend):
    w = xdl.tensor(np.linspace(-1, 1, 5), requires_grad=True)
    opt = Adam([w], lr=0.05)
    for name, value, match in (("beta1", 7.0, r"group 0: beta1 must be in \[0, 1\), got 7.0"),
                               ("betas", (0.9, 0.9), r"settings \['betas'\] that Adam does not take"),
                               ("lr", -1.0, "group 0: lr must be a finite number ≥ 0")):
        saved = opt.state_dict()
        saved["settings"][0][name] = value
        with pytest.raises(ValueError, match=match):
            opt.load_state_dict(saved)
        assert opt.groups[0].settings == {"lr": 0.05, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}


def test_chunked_reference_equals_naive_expressions(rng):
    n = (1 << 16) + 3  # several chunks and a ragged tail
    p, g = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    m, v = np.zeros(n, np.float32), np.zeros(n, np.float32)
    from xdl.ops import optim
    pc, mc, vc = p.copy(), m.copy(), v.copy()
    optim.adam_update(np, pc, g, mc, vc, 0.01, 0.9, 0.999, 1e-8, step=1)
    m_n = 0.1 * g
    v_n = 0.001 * g * g
    p_n = p - 0.01 * (m_n / 0.1) / (np.sqrt(v_n / 0.001) + 1e-8)
    assert np.allclose(pc, p_n, rtol=1e-5, atol=1e-6) and np.allclose(mc, m_n) and np.allclose(vc, v_n)


@pytest.mark.parametrize("rows", [None, 3])
@pytest.mark.parametrize("rule", ["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"])
def test_every_chunked_update_equals_the_whole_array_formula(rule, rows, rng):
    """Each update rule walked in chunks of 5 columns (several chunks and a ragged tail, for one model's
    (n,) buffer and K models' (K, n)) takes the steps its formula, written on whole arrays, takes: only
    Adam's chunked path was compared, so a wrong chunk width in the others' loops passed every test."""
    from xdl.ops import optim

    shape = (23,) if rows is None else (rows, 23)
    p = rng.standard_normal(shape)
    lr, beta, beta2, eps, wd = 0.1, 0.8, 0.95, 1e-3, 0.05
    state = [np.zeros(shape), np.zeros(shape)]
    ref_p, ref = p.copy(), [np.zeros(shape), np.zeros(shape)]
    for t in range(1, 4):
        g = rng.standard_normal(shape)
        gw = g + wd * ref_p if rule != "adamw" else g  # coupled L2, except AdamW's decoupled decay
        if rule == "sgd":
            optim.sgd_update(np, p, g, lr, wd, chunk=5)
            ref_p = ref_p - lr * gw
        elif rule in ("momentum", "nesterov"):
            optim.momentum_update(np, p, g, state[0], lr, beta, rule == "nesterov", wd, chunk=5)
            ref[0] = beta * ref[0] + (1 - beta) * gw
            ref_p = ref_p - lr * (beta * ref[0] + (1 - beta) * gw if rule == "nesterov" else ref[0])
        elif rule == "rmsprop":
            optim.rmsprop_update(np, p, g, state[0], lr, beta, eps, wd, chunk=5)
            ref[0] = beta * ref[0] + (1 - beta) * gw**2
            ref_p = ref_p - lr * gw / (np.sqrt(ref[0]) + eps)
        else:
            optim.adam_update(np, p, g, state[0], state[1], lr, beta, beta2, eps, t, wd, rule == "adamw", chunk=5)
            if rule == "adamw":
                ref_p = ref_p * (1 - lr * wd)
            ref[0] = beta * ref[0] + (1 - beta) * gw
            ref[1] = beta2 * ref[1] + (1 - beta2) * gw**2
            ref_p = ref_p - lr * (ref[0] / (1 - beta**t)) / (np.sqrt(ref[1] / (1 - beta2**t)) + eps)
        np.testing.assert_allclose(p, ref_p, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(state[0], ref[0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(state[1], ref[1], rtol=1e-12, atol=1e-15)


def test_the_numpy_updates_left_to_their_defaults_take_plain_steps_without_decay(rng):
    """`xdl.ops.optim`'s functions called with their defaults: momentum is the classical rule, not
    Nesterov's, and no weight decay is added — v ← β·v + (1 − β)·g, p ← p − lr·v; s ← β·s + (1 − β)·g²,
    p ← p − lr·g/(√s + ε); p ← p − lr·g."""
    from xdl.ops import optim

    lr, beta, eps = 0.1, 0.8, 1e-3
    start = rng.standard_normal(40)
    got = {rule: start.copy() for rule in ("momentum", "rmsprop", "sgd")}
    expected = {rule: start.copy() for rule in got}
    v, s, ref_v, ref_s = np.zeros(40), np.zeros(40), np.zeros(40), np.zeros(40)
    for _ in range(3):
        g = rng.standard_normal(40)
        optim.momentum_update(np, got["momentum"], g, v, lr, beta)
        optim.rmsprop_update(np, got["rmsprop"], g, s, lr, beta, eps)
        optim.sgd_update(np, got["sgd"], g, lr)
        ref_v, ref_s = beta * ref_v + (1 - beta) * g, beta * ref_s + (1 - beta) * g**2
        expected["momentum"] -= lr * ref_v
        expected["rmsprop"] -= lr * g / (np.sqrt(ref_s) + eps)
        expected["sgd"] -= lr * g
        for rule in got:
            np.testing.assert_allclose(got[rule], expected[rule], rtol=1e-12, atol=1e-12, err_msg=rule)

def test_an_empty_buffer_takes_every_update_as_no_change():
    from xdl.ops import optim

    empty = np.zeros(0)
    optim.sgd_update(np, empty, empty, 0.1, 0.01, chunk=5)
    optim.momentum_update(np, empty, empty, empty.copy(), 0.1, 0.9, True, 0.01, chunk=5)
    optim.rmsprop_update(np, empty, empty, empty.copy(), 0.1, 0.9, 1e-8, 0.01, chunk=5)
    optim.adam_update(np, empty, empty, empty.copy(), empty.copy(), 0.1, 0.9, 0.999, 1e-8, 1, 0.01, True, chunk=5)
    assert empty.shape == (0,)


@pytest.mark.parametrize("rule, documented", [
    (SGD, {"lr": 0.01, "weight_decay": 0.0}),
    (Momentum, {"lr": 0.01, "beta": 0.9, "nesterov": False, "weight_decay": 0.0}),
    (RMSprop, {"lr": 0.001, "beta": 0.9, "eps": 1e-8, "weight_decay": 0.0}),
    (Adam, {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}),
    (AdamW, {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}),
])
def test_each_rule_has_its_documented_defaults_and_checks_no_gradient_unless_asked(rule, documented):
    """The defaults the docstrings give (PyTorch's, but AdamW's decay of 0.01 and Adam's 0.001) and
    ``check_finite`` False, `Optimizer.__init__`'s: a rule's own default of True (a host read per step, refused in a
    captured step) was a mutant every test passed."""
    w = xdl.tensor(np.ones(2), requires_grad=True)
    opt = rule([w])
    assert {name: opt.param_groups[0][name] for name in documented} == documented
    assert opt.check_finite is False


def test_ewa_bias_correction():
    values = np.full(20, 5.0)
    assert np.allclose(xdl.ewa.ewa(values, 0.9), 5.0)
    raw = xdl.ewa.ewa(values, 0.9, bias_correction=False)
    assert raw[0] == pytest.approx(0.5) and raw[-1] == pytest.approx(5 * (1 - 0.9**20))
    assert math.isclose(xdl.ewa.EWA(0.5).update(4.0), 4.0)
    # β = 0 is in [0, 1): no averaging, v_t = x_t (refusing it passed every test)
    np.testing.assert_array_equal(xdl.ewa.ewa([1.0, 3.0, -2.0], beta=0.0), [1.0, 3.0, -2.0])
    vectors = np.stack([values, 2 * values], axis=1)  # a sequence of vectors: each averaged elementwise
    np.testing.assert_allclose(xdl.ewa.ewa(vectors, 0.9), np.stack([xdl.ewa.ewa(values), xdl.ewa.ewa(2 * values)], 1))
    with pytest.raises(ValueError, match="EWA: bias_correction must be True or False, got 'no'"):
        xdl.ewa.EWA(0.9, bias_correction="no")  # a string was read as true


def test_ewa_takes_booleans_as_0_and_1_and_refuses_strings():
    """ewa's values are real numbers: booleans average as 0/1 (v₁ = 1, v₂ = 0.9·0.1 = 0.09 before the
    correction, 0.09/(1 − 0.81) after), and strings are refused, not parsed ("1.5" averaged as 1.5 under a mutant
    that read ``dtype != bool`` for ``dtype == bool``, which every test passed)."""
    np.testing.assert_allclose(xdl.ewa.ewa([True, False], 0.9, bias_correction=False), [0.1, 0.09])
    np.testing.assert_allclose(xdl.ewa.ewa(np.array([True, False]), 0.9), [1.0, 0.09 / 0.19])
    with pytest.raises(TypeError, match="ewa: values must be real numbers"):
        xdl.ewa.ewa(["1.5", "2"])


def test_a_running_ewa_of_float32_values_is_kept_in_float64_as_ewa_keeps_it():
    """EWA.update of float32 numbers or arrays averaged in float32 (NEP 50: β·v + (1 − β)·x keeps x's
    dtype), each step rounding v_t by ε·|v|: over a window of 1/(1 − β) steps at β = 0.9999, values
    1e4 ± 1 settled 6 below their mean (ewa of the same values: 1e-8 off)."""
    values = (1e4 + np.random.default_rng(0).standard_normal(30_000)).astype(np.float32)
    expected = xdl.ewa.ewa(values, 0.9999)[-1]
    scalars, rows = xdl.ewa.EWA(0.9999), xdl.ewa.EWA(0.9999)
    for x in values:
        last = scalars.update(x)
        row = rows.update(x.reshape(1))
    assert last == pytest.approx(expected, rel=1e-12) and row[0] == pytest.approx(expected, rel=1e-12)
    assert np.asarray(last).dtype == np.float64
    buffer = xdl.ewa.EWA(0.5, bias_correction=False).update(memoryview(np.ones(2, np.float32)))  # (no .astype)
    assert buffer.dtype == np.float64 and buffer.tolist() == [0.5, 0.5]


def test_an_eps_that_is_0_in_the_parameters_dtype_is_refused(backend):
    """Positive in Python, 0 in float32: √v + ε = 0 and 0/0 where a gradient is 0 (NaN weights)."""
    w = xdl.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    for make in (lambda: Adam([w], eps=1e-50), lambda: RMSprop([w], eps=1e-50)):
        with pytest.raises(ValueError, match=r"eps is 1e-50, 0 in float32 \(the parameters' dtype\): it must be at "
                                             r"least 1.4e-45 there"):
            make()
    opt = Adam([w])
    with pytest.raises(ValueError, match="eps is 1e-50, 0 in float32"):
        opt.param_groups[0]["eps"] = 1e-50
    assert opt.param_groups[0]["eps"] == 1e-8
    Adam([xdl.tensor(np.array([1.0, 2.0]), requires_grad=True)], eps=1e-50)  # float64 holds it


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule", ["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"])
def test_per_model_hyperparameters_update_each_row_bit_for_bit_as_alone(rule, dtype):
    """K = 3 rows with their own lr, β's, ε and weight decay: each row ends exactly where the
    single-model update with that row's Python floats leaves it (derived values rounded once)."""
    from xdl.backend import get_backend
    from xdl.ops import NumpyOps

    ops = NumpyOps(get_backend("numpy"))
    rng = np.random.default_rng(0)
    lr, beta, beta2 = np.array([0.01, 0.003, 0.02]), np.array([0.9, 0.85, 0.99]), np.array([0.999, 0.99, 0.9])
    eps, wd = np.array([1e-8, 1e-6, 1e-4]), np.array([0.0, 0.01, 0.1])
    p, g = (rng.standard_normal((3, 1000)).astype(dtype) for _ in range(2))
    m, v = np.zeros_like(p), np.zeros_like(p)
    rows = [(p[k].copy(), m[k].copy(), v[k].copy()) for k in range(3)]
    calls = {
        "sgd": lambda P, M, V, h: ops.sgd_update(P, g if P.ndim == 2 else g[h["k"]], h["lr"], h["wd"]),
        "momentum": lambda P, M, V, h: ops.momentum_update(P, g if P.ndim == 2 else g[h["k"]], M, h["lr"], h["b"],
                                                           False, h["wd"]),
        "nesterov": lambda P, M, V, h: ops.momentum_update(P, g if P.ndim == 2 else g[h["k"]], M, h["lr"], h["b"],
                                                           True, h["wd"]),
        "rmsprop": lambda P, M, V, h: ops.rmsprop_update(P, g if P.ndim == 2 else g[h["k"]], M, h["lr"], h["b"],
                                                         h["e"], h["wd"]),
        "adam": lambda P, M, V, h: ops.adam_update(P, g if P.ndim == 2 else g[h["k"]], M, V, h["lr"], h["b"],
                                                   h["b2"], h["e"], 3, h["wd"], False),
        "adamw": lambda P, M, V, h: ops.adam_update(P, g if P.ndim == 2 else g[h["k"]], M, V, h["lr"], h["b"],
                                                    h["b2"], h["e"], 3, h["wd"], True),
    }
    for _ in range(3):
        calls[rule](p, m, v, {"lr": lr, "b": beta, "b2": beta2, "e": eps, "wd": wd})
        for k, (pk, mk, vk) in enumerate(rows):
            calls[rule](pk, mk, vk, {"k": k, "lr": float(lr[k]), "b": float(beta[k]), "b2": float(beta2[k]),
                                     "e": float(eps[k]), "wd": float(wd[k])})
    for k, (pk, mk, vk) in enumerate(rows):
        np.testing.assert_array_equal(p[k], pk)
        np.testing.assert_array_equal(m[k], mk)


def test_two_models_sharing_a_layer_each_with_an_optimizer_are_told_the_way_that_works():
    """The second optimizer packs the shared trunk anew, away from the first's buffer: the first is
    refused (as PyTorch's would not be), saying how a shared layer is trained here."""
    trunk = Sequential(Dense(4, 8), ReLU())
    first, second = Sequential(trunk, Dense(8, 2)), Sequential(trunk, Dense(8, 3))
    opt = Adam(first, lr=1e-2)
    Adam(second, lr=1e-2)
    with pytest.raises(RuntimeError, match=r"two models sharing a layer train it with one optimizer: of a module "
                                           r"holding both, on the sum of their losses"):
        opt.step()


@pytest.mark.parametrize("move", ["astype", "wrap"])
def test_an_optimizer_refuses_to_step_once_its_parameters_moved(move):
    """model.astype and placing a model in a bigger one pack the parameters anew: an optimizer made
    before would update (and zero) the old copies while the model never changes, so it says so."""
    xdl.seed(0)
    body = Sequential(Dense(2, 8), BatchNorm(8), Dense(8, 3))
    opt = Adam(body, lr=1e-2)
    model = body.astype(np.float64) if move == "astype" else Sequential(body, Dense(3, 2))
    with pytest.raises(RuntimeError, match=r"Adam: the parameters moved to new storage after this optimizer was made"):
        opt.zero_grad()
    with pytest.raises(RuntimeError, match=r"make the optimizer after that, e.g. Adam\(model\)"):
        opt.step()
    with pytest.raises(RuntimeError, match="moved to new storage"):  # refused by a Trainer before it starts
        xdl.train.Trainer(model, xdl.losses.SoftmaxCrossEntropy(), opt)
    fresh = Adam(model, lr=1e-2)
    fresh.zero_grad()
    (model(np.arange(8.0).reshape(4, 2)) ** 2).sum().backward()
    before = body.layers[0].weight.numpy().copy()
    fresh.step()
    assert not np.array_equal(body.layers[0].weight.numpy(), before)  # the new optimizer moves the model


def test_an_optimizer_packing_part_of_another_ones_parameters_stops_that_one():
    xdl.seed(0)
    model = Sequential(Dense(2, 8), Dense(8, 3))
    first = SGD(param_groups(model, 0.0), lr=0.1)  # views of the model's buffer (weights, then biases)
    second = SGD(model.layers[1], lr=0.1)  # layer 1's weight and bias are not side by side there: packed anew
    with pytest.raises(RuntimeError, match="SGD: the parameters moved .*another optimizer packing part of them"):
        first.step()
    second.step()  # the one that holds them now


def test_a_bad_rate_in_one_group_stops_the_step_before_any_group_moves():
    xdl.seed(0)
    model = Sequential(Dense(2, 3), Dense(3, 2))
    opt = SGD([{"params": model.layers[0].parameters(), "lr": 0.1},
               {"params": model.layers[1].parameters(), "lr": lambda t: 1e-50}])  # 0 in float32
    (model(np.ones((4, 2))) ** 2).sum().backward()
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"the lr at step 1 \(group 1\) is 1e-50: .*0 or a number in float32's positive range"):
        opt.step()
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_an_optimizer_of_a_model_uses_its_buffer_as_it_is_so_other_optimizers_of_it_coexist():
    xdl.seed(0)
    model = Sequential(Dense(2, 8), BatchNorm(8), Dense(8, 3))
    flat = model.parameters()[0]._flat[0]
    adam = Adam(model, lr=1e-2)  # the model's parameters in their own order; the buffer holds weights first
    assert all(p._flat[0] is flat for p in model.parameters())  # no copy: it was repacked in that order, before
    adamw = AdamW(param_groups(model, 1e-2), lr=1e-2)  # two ranges of the same buffer
    (model(np.arange(8.0).reshape(4, 2)) ** 2).sum().backward()
    adam.step()
    adamw.zero_grad()  # both still hold the model's parameters
    adam.zero_grad()


def test_an_optimizer_state_saved_in_the_given_order_is_laid_out_as_the_buffer_holds_it():
    """A state saved without a layout (an xdl whose buffers kept the order parameters were given
    in) is rearranged to the buffer's order (weights first) when loaded."""
    xdl.seed(0)
    model = Sequential(Dense(2, 4), Dense(4, 3))
    opt = Adam(model, lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        (model(np.arange(8.0).reshape(4, 2)) ** 3).sum().backward()
        opt.step()
    state = opt.state_dict()
    assert state["layout"] == [[[0, 2, 1, 3]]]  # w0, w1, b0, b1 of the given (w0, b0, w1, b1)
    sizes = [p.size for p in model.parameters()]
    old = {**state, "layout": None}
    pieces = {}
    for name, array in state["state"][0][0].items():  # as the older xdl wrote it: w0, b0, w1, b1
        parts = np.split(array, np.cumsum([sizes[i] for i in (0, 2, 1, 3)])[:-1])
        pieces[name] = np.concatenate([parts[j] for j in (0, 2, 1, 3)])
    old["state"] = [[pieces]]
    fresh = Adam(model, lr=1e-2)
    fresh.load_state_dict(old)
    for name, array in fresh.state_dict()["state"][0][0].items():
        np.testing.assert_array_equal(array, state["state"][0][0][name], err_msg=name)
    with pytest.raises(ValueError, match=r"optimizer state of group 0 lays its parameters out as \[\[0, 1\]\]"):
        fresh.load_state_dict({**state, "layout": [[[0, 1]]]})


def test_a_frozen_parameter_is_left_out_of_a_models_optimizer_and_named_when_given():
    xdl.seed(0)
    model = Sequential(Dense(2, 4), Dense(4, 3))
    model.layers[0].weight.requires_grad = False
    frozen = model.layers[0].weight.numpy().copy()
    opt = AdamW(model, lr=1e-2)  # weight decay would move it, were it in
    opt.zero_grad()
    (model(np.arange(8.0).reshape(4, 2)) ** 2).sum().backward()
    opt.step()
    np.testing.assert_array_equal(model.layers[0].weight.numpy(), frozen)
    assert len(opt.parameters()) == 3
    with pytest.raises(TypeError, match=r"params\[0\] must be a tensor that requires grad.*a frozen parameter"):
        Adam(model.parameters(), lr=1e-2)
    decayed = AdamW(param_groups(model, 1e-2), lr=1e-2)  # the weight-decay split leaves it out too
    assert [len(g["params"]) for g in decayed.param_groups] == [1, 2]
    for p in model.parameters():
        p.requires_grad = False
    with pytest.raises(ValueError, match=r"every parameter of the model is frozen"):
        Adam(model, lr=1e-2)


def test_a_step_refuses_a_parameter_frozen_or_unfrozen_since_the_optimizer_was_made():
    def step(model, opt):
        opt.zero_grad()
        (model(np.arange(8.0).reshape(4, 2)) ** 2).sum().backward()
        opt.step()

    xdl.seed(0)
    model = Sequential(Dense(2, 4), Dense(4, 3))
    opt = Adam(model, lr=0.1)
    step(model, opt)
    model.layers[0].weight.requires_grad = False  # momentum would still move it
    before = [p.numpy().copy() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"made when 0.weight trained, and it is frozen now"):
        step(model, opt)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.numpy(), b)  # nothing updated
    model.layers[0].weight.requires_grad = True
    step(model, opt)  # as it was made: it trains on

    model.layers[0].weight.requires_grad = False
    frozen_out = Adam(model, lr=0.1)  # made without it
    model.layers[0].weight.requires_grad = True  # fine-tuning it: it would get gradients and never an update
    with pytest.raises(ValueError, match="was frozen, which it left out, and it trains now"):
        step(model, frozen_out)


def test_a_trainer_refuses_a_parameter_that_came_after_its_optimizer_was_made_of_the_model():
    """An untied weight (or a parameter assigned into a child) was never trained, silently: the
    optimizer made of the model did not hold it. One replaced is named as replaced."""
    X, y = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32), np.arange(64) % 3
    first, second = Dense(4, 4), Dense(4, 4)
    second.weight = first.weight  # tied
    model = Sequential(first, xdl.nn.ReLU(), second, xdl.nn.ReLU(), Dense(4, 3))
    opt = Adam(model, lr=1e-2)
    model[2].weight = xdl.Parameter(model[0].weight.numpy().copy())  # untied
    trainer = xdl.train.Trainer(model, xdl.losses.SoftmaxCrossEntropy(), opt, batch_size=32, epochs=1,
                                progress=False)
    with pytest.raises(ValueError, match=r"optimizer: it was made of the model's parameters, and 2.weight came since "
                                         r"\(a layer or parameter assigned, a tied weight untied\)"):
        trainer.fit(X, y)
    opt.add_param_group({"params": [model[2].weight]})  # what the message offers
    trainer.fit(X, y)
    head = Sequential(Dense(4, 8), xdl.nn.ReLU(), Dense(8, 3))  # an optimizer of a part: "train only the head"
    for opt in (SGD(head[2:], lr=0.1), SGD(param_groups(head[2], 0.01), lr=0.1), SGD(list(head[2].parameters()))):
        before = head[0].weight.numpy().copy()
        xdl.train.Trainer(head, xdl.losses.SoftmaxCrossEntropy(), opt, epochs=1, progress=False).fit(X, y)
        np.testing.assert_array_equal(head[0].weight.numpy(), before)  # (it holds the head's only)
    replaced = Sequential(Dense(4, 8), xdl.nn.ReLU(), Dense(8, 3))
    opt = Adam(replaced)
    replaced[2].weight = xdl.Parameter(np.ones((8, 3), np.float32))
    with pytest.raises(ValueError, match=r"1 of its 4 parameters are not the model's \(2.weight replaced or removed "
                                         r"since it was made\)"):
        xdl.train.Trainer(replaced, xdl.losses.SoftmaxCrossEntropy(), opt)


@pytest.mark.parametrize("make, match", [
    (lambda: schedules.inverse_time(1e-2, decay_rate=-1.0), r"decay_rate must be a finite number ≥ 0, got -1.0"),
    (lambda: schedules.exponential(1e-2, base=-0.5), r"base must be a finite number > 0, got -0.5"),
    (lambda: schedules.inverse_sqrt(1e-2, 0), r"k must be a finite number > 0, got 0"),
    (lambda: schedules.staircase(1e-2, decay_rate=-1.0, interval=2), r"decay_rate must be a finite number ≥ 0"),
    (lambda: schedules.step_decay(1e-2, factor=0.0), r"factor must be a finite number > 0, got 0.0"),
    (lambda: schedules.cosine(1e-2, 10, min_lr=-1), r"min_lr must be a finite number ≥ 0, got -1"),
    (lambda: schedules.cosine(1e-2, 10, min_lr=1.0), r"min_lr must be at most lr0 \(0.01\), got 1.0"),
    (lambda: schedules.cosine(1e-2, 10, min_lr=0.015), r"min_lr must be at most lr0 \(0.01\), got 0.015"),  # (just above)
    (lambda: schedules.warmup(-1, 3), r"warmup: schedule .* must be a finite number > 0, got -1"),
    (lambda: schedules.warmup("abc", 3), r"warmup: schedule .* must be a finite number > 0, got 'abc'"),
    (lambda: Adam(None, lr=1e-2).step(), r"Adam.step: the optimizer has no parameters"),
])
def test_a_schedule_refuses_arguments_that_make_no_rate_where_it_is_made(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_cosine_schedule_reaches_zero_and_holds_it_as_pytorchs_does():
    xdl.seed(0)
    model = Sequential(Dense(2, 4), Dense(4, 2))
    X, y = np.random.default_rng(0).standard_normal((32, 2)), np.arange(32) % 2
    trainer = xdl.train.Trainer(model, xdl.losses.SoftmaxCrossEntropy(), SGD(model, lr=0.1), epochs=4,
                                schedule=schedules.cosine(0.1, total=2), progress=False)
    with pytest.warns(UserWarning, match="the schedule is 0 from epoch 3 to the run's last, 4"):
        history = trainer.fit(X, y)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.0, 0.0])
    weights = model.state_dict()
    trainer.epochs = 5
    with pytest.warns(UserWarning, match="the schedule is 0 from epoch 5 to the run's last, 5: that epoch trains nothing"):
        trainer.fit(X, y)  # at rate 0: no step moves the weights
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, weights[name])


def test_gradients_set_to_none_and_data_rebound_by_hand_are_written_back_into_the_flat_buffer():
    """PyTorch's loops: ``p.grad = None`` before backward (set_to_none), ``p.data = array``; the
    update reads the flat buffers, so they go back there (they were ignored: no step moved)."""
    xdl.seed(0)
    model = Sequential(Dense(2, 3), Dense(3, 1))
    X, y = np.random.default_rng(0).standard_normal((16, 2)), np.ones((16, 1))
    opt = SGD(model, lr=0.1)
    model.layers[0].weight.data = np.zeros((2, 3), dtype=np.float32)  # a fresh start, by hand
    for _ in range(3):
        for p in model.parameters():
            p.grad = None
        ((model(X) - y) ** 2).mean().backward()
        opt.step()
    weight = model.layers[0].weight
    assert np.shares_memory(weight.data, weight._flat[0].data) and np.shares_memory(weight.grad, weight._flat[0].grad)
    assert np.abs(weight.numpy()).sum() > 0  # it trained from zeros
    opt.zero_grad(set_to_none=True)  # PyTorch's keyword: zeroed, as the buffer is read whole
    assert not np.any(weight.grad)
    weight.data = np.zeros((3, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"weight.data was rebound to shape \(3, 2\); the parameter's shape is \(2, 3\)"):
        opt.step()


def test_a_configured_adamw_decays_the_weights_by_weight_decay_and_nothing_else():
    # AdamW's own default (0.01, PyTorch's) on every parameter made TrainConfig's weight_decay = 0 decay
    # batch norm's γ and β and the biases too
    from xdl.config import TrainConfig

    model = xdl.nn.mlp(4, [3], 2, batch_norm=True)
    plain = TrainConfig(optimizer="adamw", weight_decay=0.0).build_optimizer(model)
    assert [g["weight_decay"] for g in plain.param_groups] == [0.0]
    decayed = TrainConfig(optimizer="adamw", weight_decay=0.05).build_optimizer(model)
    assert [(len(g["params"]), g["weight_decay"]) for g in decayed.param_groups] == [(2, 0.05), (3, 0.0)]


def test_a_checkpoint_keeps_where_each_group_started(tmp_path):
    """A group added after some steps counts its own Adam steps; a Trainer's checkpoint keeps that,
    so a resumed run ends where a straight one does (it started every group at 0)."""
    from xdl.losses import SoftmaxCrossEntropy
    from xdl.train import Checkpoint, Trainer

    X, y = xdl.datasets.moons(120, seed=0)

    def trainer(epochs, directory, warm_steps):
        xdl.seed(0)
        model = xdl.nn.mlp(2, [8], 2)
        optimizer = Adam(model[0].parameters(), lr=1e-2)
        for _ in range(warm_steps):  # the first layer alone, then the head joins
            optimizer.zero_grad()
            (model(X) ** 2).mean().backward()
            optimizer.step()
        optimizer.add_param_group({"params": model[2].parameters()})
        return Trainer(model, SoftmaxCrossEntropy(), optimizer, epochs=epochs, callbacks=[Checkpoint(directory)],
                       progress=False)

    straight = trainer(2, tmp_path / "straight", 5)
    straight.fit(X, y)
    assert [g.first_step for g in straight.optimizer.groups] == [0, 5]
    first = trainer(1, tmp_path / "resumed", 5)
    first.fit(X, y)
    resumed = trainer(2, tmp_path / "resumed", 5)
    resumed.fit(X, y, resume=tmp_path / "resumed")
    assert [g.first_step for g in resumed.optimizer.groups] == [0, 5]
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("copy_of", [lambda o: __import__("copy").deepcopy(o),
                                     lambda o: __import__("pickle").loads(__import__("pickle").dumps(o)),
                                     memory_mapped])
def test_a_copied_optimizer_updates_its_own_copies(copy_of):
    """A copy copies views apart; the copy's parameters are made views of its buffers again, so its
    step moves them (it read a zero gradient and wrote into a buffer nothing read) and its held
    hyperparameters are the ones it writes. A group over part of a model's buffer too."""
    q = xdl.Parameter(np.ones(3))
    copied = copy_of(SGD([q], lr=0.1))
    q2 = copied.groups[0].params[0]
    copied.zero_grad()
    q2.grad[...] = 1.0
    copied.step()
    np.testing.assert_allclose(q2.numpy(), 0.9)
    np.testing.assert_array_equal(q.numpy(), 1.0)  # the original's parameter is not the copy's
    copied.lr = 0.5  # held where the update reads it
    copied.step()
    np.testing.assert_allclose(q2.numpy(), 0.4)

    xdl.seed(0)
    model = xdl.nn.mlp(4, [5], 3).astype("float64")
    part = copy_of(Adam(model[2].parameters(), lr=0.1))
    params = part.groups[0].params
    for p in params:
        p.grad[...] = 1.0
    before = [p.numpy().copy() for p in params]
    part.step()
    for p, b in zip(params, before):
        np.testing.assert_allclose(p.numpy(), b - 0.1, rtol=1e-6)


@pytest.mark.parametrize("copy_of", [lambda o: __import__("copy").deepcopy(o),
                                     lambda o: __import__("pickle").loads(__import__("pickle").dumps(o)),
                                     memory_mapped])
def test_a_model_and_its_optimizer_copied_together_train_as_the_originals(copy_of):
    """A snapshot of the training state (PyTorch's deepcopy((model, opt))): the copies share their
    buffers again, and a step of each pair gives the same weights. joblib's read-only memory maps
    too (a pair sent to a ``Parallel`` worker): the model was placed anew, its optimizer refused as
    moved, and the optimizer's state and batch norm's statistics raised "output array is read-only"."""
    X, y = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32), np.arange(20) % 3
    xdl.seed(0)
    model = xdl.nn.mlp(4, [5], 3, batch_norm=True)
    optimizer = Adam(model, lr=0.01)
    pairs = [(model, optimizer), copy_of((model, optimizer))]
    for m, o in pairs:
        o.zero_grad()
        xdl.losses.SoftmaxCrossEntropy()(m(X), y).backward()
        o.step()
    for a, b in zip(pairs[0][0].parameters(), pairs[1][0].parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert all(np.shares_memory(p.data, pairs[1][1].groups[0].flats[0].data) for p in pairs[1][0].parameters())


@pytest.mark.parametrize("copy_of", [lambda o: __import__("copy").deepcopy(o),
                                     lambda o: __import__("pickle").loads(__import__("pickle").dumps(o)),
                                     memory_mapped])
def test_a_copied_optimizer_of_two_groups_each_a_run_of_the_model_s_buffer_updates_its_own_copies(copy_of):
    """Groups of the weights and of the biases, each a run of the model's one flat buffer (weights first): the copy's
    group buffers are made views of the copied model's buffer again, so its step moves its parameters — w − 0.1·1
    and b − 0.5·1 by hand — and not the original's (left copies of the runs, the step wrote into arrays that no
    parameter viewed)."""
    xdl.seed(0)
    model = xdl.nn.mlp(4, [5], 3).astype("float64")
    optimizer = SGD([{"params": model.parameters("weight"), "lr": 0.1},
                     {"params": model.parameters("bias"), "lr": 0.5}])
    whole = model.parameters()[0]._flat[0]
    assert all(g.flats[0] is not whole and np.shares_memory(g.flats[0].data, whole.data) for g in optimizer.groups)
    originals = [p.numpy().copy() for p in model.parameters()]
    copied = copy_of(optimizer)
    copied.zero_grad()
    for g in copied.groups:
        for p in g.params:
            p.grad[...] = 1.0
    before = [[p.numpy().copy() for p in g.params] for g in copied.groups]
    copied.step()
    for g, values, lr in zip(copied.groups, before, (0.1, 0.5)):
        for p, value in zip(g.params, values):
            np.testing.assert_allclose(p.numpy(), value - lr)
    for p, value in zip(model.parameters(), originals):
        np.testing.assert_array_equal(p.numpy(), value)


@pytest.mark.parametrize("cap", [0.1, 0.25, 0.5])
def test_a_schedule_whose_signature_cannot_be_read_is_taken(cap):
    """``functools.partial(min, cap)`` (count → min(cap, count)) has no signature `inspect` reads (a builtin's): its
    arguments cannot be told, so it is taken, not refused as a Keras schedule(epoch, lr). SGD on w = 1, gradient 1:
    rate min(cap, 0) = 0 at the first step, cap at the second and third, so w = 1 − 2·cap."""
    import functools

    w = xdl.Parameter(np.ones(2))
    optimizer = SGD([w], lr=functools.partial(min, cap))
    for _ in range(3):
        optimizer.zero_grad()
        w.grad[...] = 1.0
        optimizer.step()
    np.testing.assert_allclose(w.numpy(), 1 - 2 * cap)


def _adam_after_steps(n=3):
    p = xdl.Parameter(np.ones(3))
    optimizer = Adam([p], lr=0.1)
    for _ in range(n):
        optimizer.zero_grad()
        p.grad[...] = 1.0
        optimizer.step()
    return optimizer


@pytest.mark.parametrize("edit, match", [
    ({"t": "abc"}, "t .*integer ≥ 0"), ({"t": -3}, "t .*integer ≥ 0"), ({"t": 2.7}, "t .*integer"),
    ({"t": True}, "t .*integer"), ({"first_steps": [99]}, r"first_steps\[0\].*\[0, t = 3\]"),
    ({"first_steps": ["x"]}, r"first_steps\[0\]"), ({"first_steps": [0, 0]}, "2 groups' first_steps"),
    ({"settings": []}, "0 groups' settings"), ({"t": None, "drop": "t"}, "with 't', 'state' and 'settings'"),
    # beyond the device's int64 count: passed, wrote the moments and settings, then an OverflowError
    ({"t": 2**63}, "t .*integer ≥ 0 and at most 9223372036854775807"),
])
def test_load_state_dict_checks_the_step_count_before_writing(edit, match):
    """Adam's t = 1 − first_step + t must be ≥ 1 (1 − β₂ᵗ < 0 gave a complex square root at the next
    step); a refused state changes nothing, its moments and settings included."""
    import copy

    state = copy.deepcopy(_adam_after_steps().state_dict())
    state["settings"][0]["lr"] = 0.5
    state.update({k: v for k, v in edit.items() if k != "drop"})
    state.pop(edit.get("drop"), None)
    fresh = _adam_after_steps(0)
    with pytest.raises(ValueError, match=match):
        fresh.load_state_dict(state)
    assert fresh.t == 0 and fresh.lr == 0.1
    np.testing.assert_array_equal(fresh.groups[0].state[0]["m"], 0.0)


@pytest.mark.parametrize("other, why", [((4, [6], 3), "a model of other sizes"), ((4, [5], 3), "listed in another order")])
def test_load_state_dict_of_other_parameters_names_the_first_that_differs(other, why):
    """A model of other sizes was told "optimizer state 'm' of group 0 has shape (43,), this optimizer's is
    (51,)": a buffer's length, naming no parameter (the parameters' shapes are now checked first)."""
    xdl.seed(0)
    saved = Adam(xdl.nn.mlp(4, [5], 3), lr=0.01).state_dict()
    model = xdl.nn.mlp(*other)
    params = model.parameters()[::-1] if why.startswith("listed") else model.parameters()
    fresh = Adam(params, lr=0.01)
    with pytest.raises(ValueError, match=rf"shapes .*\(first differing at params\[0\]: {why}\?"):
        fresh.load_state_dict(saved)


def test_a_refused_rate_changes_nothing():
    """A Keras-style schedule(epoch, lr), or one that returns no number, is refused where it is set:
    by ``opt.lr``, a group's ``lr`` or a new group's; the optimizer steps on as before."""
    p = xdl.Parameter(np.ones(3))
    optimizer = SGD([p], lr=0.1)
    with pytest.raises(TypeError, match="schedule of one argument"):
        optimizer.lr = lambda epoch, lr: lr * 0.9
    with pytest.raises(TypeError, match="returned None at count 0"):
        optimizer.param_groups[0]["lr"] = lambda count: None
    with pytest.raises(TypeError, match="returned None at count 0"):
        optimizer.lr = lambda count: None
    b = xdl.Parameter(np.ones(2))
    with pytest.raises(TypeError, match="schedule of one argument"):
        optimizer.add_param_group({"params": [b], "lr": lambda epoch, lr: lr})
    assert optimizer.lr == 0.1 and len(optimizer.groups) == 1 and optimizer.defaults["lr"] == 0.1
    optimizer.add_param_group({"params": [b], "lr": 0.01})  # b was not left half-added
    optimizer.zero_grad()
    p.grad[...] = 1.0
    optimizer.step()
    np.testing.assert_allclose(p.numpy(), 0.9)


def test_a_refused_group_moves_no_parameter():
    """Every check runs before a group's parameters are placed: a refused group (eps 0 in float32)
    leaves the model's buffer, and the optimizer already over it, as they were."""
    X, y = np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32), np.arange(40) % 3
    xdl.seed(0)
    model = xdl.nn.mlp(4, [5], 3)
    first = Adam(model, lr=0.01)
    params = model.parameters()
    with pytest.raises(ValueError, match="eps is 1e-50, 0 in float32"):
        Adam([params[0], params[3]], eps=1e-50)  # not back to back: would be packed anew
    first.zero_grad()
    xdl.losses.SoftmaxCrossEntropy()(model(X), y).backward()
    first.step()  # still over the model's buffer


@pytest.mark.parametrize("make, key, hint", [
    (lambda g: Momentum(g, lr=0.1), "momentum", r"PyTorch's 'momentum' is beta here, but its SGD\(lr, momentum=β\) "
                                                r"is Momentum\(lr=lr/\(1 − β\), beta=β\)"),
    (lambda g: SGD(g), "momentum", r"PyTorch's 'momentum' is xdl.optim.Momentum's beta"),
    (lambda g: RMSprop(g), "alpha", "PyTorch's 'alpha' is beta here"),
    (lambda g: RMSprop(g), "momentum", "PyTorch's 'momentum' is not in RMSprop here"),  # (was: "is beta here")
    (lambda g: Adam(g), "betas", "PyTorch's 'betas' is beta1 and beta2 here"),
    (lambda g: SGD(g), "lr_typo", "its settings: lr, weight_decay"),
])
def test_a_group_key_the_optimizer_does_not_take_is_refused(make, key, hint):
    """A key kept and never read would train with the default (PyTorch's names for xdl's settings)."""
    with pytest.raises(ValueError, match=f"settings \\['{key}'\\].*{hint}"):
        make([{"params": [xdl.Parameter(np.ones(3))], key: 0.5}])


@pytest.mark.parametrize("make, key, hint", [
    (lambda m: SGD(m, lr=0.1, momentum=0.9), "momentum", r"PyTorch's 'momentum' is xdl.optim.Momentum's beta"),
    (lambda m: Adam(m, betas=(0.9, 0.99)), "betas", "PyTorch's 'betas' is beta1 and beta2 here"),
    (lambda m: AdamW(m, betas=(0.9, 0.99)), "betas", "PyTorch's 'betas' is beta1 and beta2 here"),
    (lambda m: RMSprop(m, alpha=0.99), "alpha", "PyTorch's 'alpha' is beta here"),
    # the lr its SGD's comes with too: the keyword named first may be nesterov (SGD(m, nesterov=True, momentum=0.9))
    (lambda m: SGD(m, nesterov=True, momentum=0.9), "nesterov",
     r"PyTorch's 'nesterov' is a flag of xdl.optim.Momentum \(PyTorch's SGD\(lr, momentum=β, nesterov=True\) is "
     r"Momentum\(lr=lr/\(1 − β\), beta=β, nesterov=True\)\)"),
    (lambda m: Adam(m, amsgrad=True), "amsgrad", "PyTorch's 'amsgrad' is not offered here"),
    # every PyTorch optimizer's (Python's bare "unexpected keyword argument" before)
    (lambda m: Adam(m, foreach=True), "foreach", "PyTorch's 'foreach' is not needed here: each parameter group's "
                                                 "update is one fused pass"),
    (lambda m: AdamW(m, fused=True), "fused", "PyTorch's 'fused' is not needed here"),
    (lambda m: SGD(m, maximize=True), "maximize", "PyTorch's 'maximize' is not offered here: minimize the negated"),
    (lambda m: RMSprop(m, capturable=True), "capturable", r"PyTorch's 'capturable' is not needed here: a captured "
                                                          r"step \(xdl.cuda_graph\) reads the step count"),
    (lambda m: Momentum(m, dampening=0.9), "dampening", "PyTorch's 'dampening' is not offered here: "
                                                        "xdl.optim.Momentum's v ← β·v"),
    (lambda m: SGD(m, dampening=0.9), "dampening", "PyTorch's 'dampening' is not offered here"),
    (lambda m: RMSprop(m, centered=True), "centered", "PyTorch's 'centered' is not offered here"),
])
def test_a_pytorch_keyword_a_constructor_does_not_take_says_what_it_is_here(make, key, hint):
    """``SGD(model.parameters(), lr=0.1, momentum=0.9)`` as PyTorch spells it: Python's TypeError
    named the keyword but not that Momentum is the rule (a group's key said so already)."""
    model = xdl.nn.mlp(3, [4], 2)
    before = model.state_dict()
    with pytest.raises(TypeError, match=f"got an unexpected keyword argument '{key}'; {hint}"):
        make(model)
    for name, value in model.state_dict().items():  # refused before the parameters were placed
        np.testing.assert_array_equal(value, before[name])
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'$"):  # no hint to give: Python's words
        SGD(model, foo=1)


# Keras's spelling of each rule's settings → xdl's (Keras's SGD momentum and nesterov are PyTorch's: above)
KERAS_SPELLINGS = {SGD: {"learning_rate": "lr"}, Momentum: {"learning_rate": "lr"},
                   RMSprop: {"learning_rate": "lr", "rho": "beta", "epsilon": "eps"},
                   Adam: {"learning_rate": "lr", "beta_1": "beta1", "beta_2": "beta2", "epsilon": "eps"},
                   AdamW: {"learning_rate": "lr", "beta_1": "beta1", "beta_2": "beta2", "epsilon": "eps"}}
KERAS_NOT_HERE = {"decay": r"a schedule here: lr=xdl.optim.schedules.inverse_time\(lr, decay_rate=decay\)",
                  **{key: "not offered here" for key in ("clipnorm", "clipvalue")},
                  "global_clipnorm": r"max_grad_norm here \(every rule's: the gradients clipped to that global 2-norm"}


@pytest.mark.parametrize("rule, key, hint", [(rule, key, f"{ours} here") for rule, names in KERAS_SPELLINGS.items()
                                             for key, ours in names.items()] +
                         [(rule, key, hint) for rule in KERAS_SPELLINGS for key, hint in KERAS_NOT_HERE.items()])
def test_a_keras_keyword_a_constructor_does_not_take_says_what_it_is_here(rule, key, hint):
    """``Adam(learning_rate=1e-3, beta_1=0.9, epsilon=1e-7)`` as Keras spells it met Python's bare "unexpected
    keyword argument" where PyTorch's names were told xdl's; as a constructor's keyword and as a group's key."""
    model = xdl.nn.mlp(3, [4], 2)
    before = model.state_dict()
    with pytest.raises(TypeError, match=f"{rule.__name__}\\(\\) got an unexpected keyword argument '{key}'; "
                                        f"Keras's '{key}' is {hint}"):
        rule(model, **{key: 0.5})
    for name, value in model.state_dict().items():  # refused before the parameters were placed
        np.testing.assert_array_equal(value, before[name])
    with pytest.raises(ValueError, match=f"settings \\['{key}'\\].*; Keras's '{key}' is {hint}"):
        rule([{"params": [xdl.Parameter(np.ones(3))], key: 0.5}])
    ours = KERAS_SPELLINGS[rule].get(key)
    if ours is not None:  # the spelling said is taken, under that name
        assert rule(model, **{ours: 0.5}).defaults[ours] == 0.5


def test_keras_decay_is_the_inverse_time_schedule_its_hint_names():
    """What the hint for Keras's 'decay' says: Keras 2's SGD(lr, decay=d) steps p ← p − lr/(1 + d·t)·g, t the
    steps done before this one, as SGD(lr=schedules.inverse_time(lr, decay_rate=d)) does."""
    rng = np.random.default_rng(2)
    for lr, decay in rng.uniform(0.01, 1.0, size=(5, 2)):
        grads = rng.standard_normal((20, 3))
        w = xdl.Parameter(np.zeros(3))
        opt = SGD([w], lr=schedules.inverse_time(lr, decay_rate=decay))
        p = np.zeros(3)
        for t, g in enumerate(grads):
            w.grad[...] = g
            opt.step()
            p -= lr / (1 + decay * t) * g
        np.testing.assert_allclose(w.numpy(), p, rtol=1e-12, atol=1e-12)


def test_momentum_takes_pytorchs_sgd_steps_at_lr_over_one_minus_beta():
    """What the hint for PyTorch's 'momentum' says: SGD(lr, momentum=β), b ← β·b + g, p ← p − lr·b."""
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((20, 3))
    w = xdl.Parameter(np.zeros(3))
    opt = Momentum([w], lr=0.1 / (1 - 0.9), beta=0.9)
    p, b = np.zeros(3), np.zeros(3)
    for g in grads:
        w.grad[...] = g
        opt.step()
        b = 0.9 * b + g
        p -= 0.1 * b
    np.testing.assert_allclose(w.numpy(), p, rtol=1e-12, atol=1e-12)


def test_nesterov_momentum_takes_pytorchs_nesterov_sgd_steps_at_lr_over_one_minus_beta():
    """What the hint for PyTorch's 'nesterov' says: SGD(lr, momentum=β, nesterov=True), b ← β·b + g,
    p ← p − lr·(g + β·b)."""
    rng = np.random.default_rng(1)
    grads = rng.standard_normal((20, 3))
    w = xdl.Parameter(np.zeros(3))
    opt = Momentum([w], lr=0.1 / (1 - 0.9), beta=0.9, nesterov=True)
    p, b = np.zeros(3), np.zeros(3)
    for g in grads:
        w.grad[...] = g
        opt.step()
        b = 0.9 * b + g
        p -= 0.1 * (g + 0.9 * b)
    np.testing.assert_allclose(w.numpy(), p, rtol=1e-12, atol=1e-12)


def test_a_parameter_twice_in_a_group_and_flags_that_are_no_bools_are_refused():
    w = xdl.Parameter(np.ones(3))
    with pytest.raises(ValueError, match="appears twice in the group"):
        SGD([w, w], lr=0.1)
    with pytest.raises(ValueError, match="check_finite must be True or False, got 'no'"):
        SGD([w], check_finite="no")
    with pytest.raises(ValueError, match="set_to_none must be True or False"):
        SGD([w]).zero_grad(set_to_none="x")


def test_growing_schedules_reach_inf_not_an_overflow_error():
    """Beyond floats a growing schedule gives inf (as float math does), which the optimizer names."""
    assert schedules.exponential(0.1, base=1.5)(2000) == math.inf
    assert schedules.step_decay(0.1, factor=2, every=1)(5000) == math.inf
    assert schedules.exponential(0.1, base=0.5)(5000) == 0.0
    p = xdl.Parameter(np.ones(3))
    optimizer = SGD([p], lr=schedules.exponential(0.1, base=1.5))
    optimizer.t = 2000
    with pytest.raises(ValueError, match="the lr at step 2001 .* is inf"):
        optimizer.step()
    np.testing.assert_array_equal(p.numpy(), 1.0)


def test_a_lone_tensor_is_one_parameter_and_a_set_or_a_non_leaf_is_refused():
    w = xdl.tensor(np.ones(3), requires_grad=True)
    opt = SGD([{"params": w}], lr=0.1)  # PyTorch takes a lone tensor there
    for _ in range(3):
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
    np.testing.assert_allclose(w.numpy(), 0.8**3)  # w ← w − 0.1·2w
    v = xdl.tensor([3.0, 1.0], requires_grad=True)
    SGD(lr=0.1).minimize(lambda: (v * v).sum(), v, steps=5)
    np.testing.assert_allclose(v.numpy(), [3 * 0.8**5, 0.8**5], rtol=1e-6)  # (float32)
    with pytest.raises(TypeError, match=r"params\[0\] is the result of an operation \(Multiply\), not a leaf"):
        SGD([xdl.tensor(np.ones(2), requires_grad=True) * 2], lr=0.1)
    with pytest.raises(TypeError, match="an ordered collection of tensors .* not a set"):
        Adam({w}, lr=0.1)


def test_a_state_of_parameters_listed_in_another_order_is_refused():
    a, b = xdl.tensor(np.zeros(4), requires_grad=True), xdl.tensor(np.zeros(2), requires_grad=True)
    opt = Adam([a, b], lr=0.1)
    a.grad[...], b.grad[...] = 1, -1
    opt.step()
    swapped = Adam([xdl.tensor(np.zeros(2), requires_grad=True), xdl.tensor(np.zeros(4), requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match=r"of shapes \[\[4\], \[2\]\], this optimizer's are \[\[2\], \[4\]\]"):
        swapped.load_state_dict(opt.state_dict())
    assert swapped.t == 0


def test_data_and_grad_rebound_to_another_backends_arrays_are_written_back_as_their_values(backend):
    """``p.grad = np.full(...)`` on a cupy parameter (and a cupy array on a numpy one): zero_grad and step copy
    its values into the parameter's flat buffers, as they do an array of its own backend; the check that it was
    rebound asked the parameter's backend for the other array's address and failed ("'memoryview' object has no
    attribute 'ptr'", "__array_interface__")."""
    host = xdl.backend.get_backend("numpy")
    for own, other in ((backend, host), (host, backend)):
        w = xdl.tensor([1.0, 2.0, 3.0], requires_grad=True, backend=own)
        opt = SGD([w], lr=0.5)
        w.grad = other.asarray(np.full(3, 2.0))
        opt.step()  # p ← p − lr·g
        np.testing.assert_array_equal(w.numpy(), [0.0, 1.0, 2.0])
        w.data, w.grad = other.asarray(np.full(3, 4.0)), other.asarray(np.full(3, 100.0))
        opt.zero_grad()
        assert own.owns(w.data) and own.owns(w.grad)
        np.testing.assert_array_equal(w.numpy(), [4.0, 4.0, 4.0])
        np.testing.assert_array_equal(own.to_numpy(w.grad), 0)


def test_zero_grad_zeroes_a_gradient_rebound_by_hand_and_t_is_checked():
    w = xdl.tensor(np.ones(3), requires_grad=True)
    opt = SGD([w], lr=0.1)
    w.grad = np.full(3, 100.0)
    opt.zero_grad()
    np.testing.assert_array_equal(w.grad, 0)
    (w * 1.0).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.numpy(), 0.9)
    for bad in (-3, 2.7, "3", True, 2**63):  # 2**63: an OverflowError filling the int64 count, t said 2**63 after
        with pytest.raises(ValueError, match=r"t \(the steps taken\) must be an integer ≥ 0"):
            opt.t = bad
    assert opt.t == 1 and int(opt.steps_done[0]) == 1


def test_minimize_takes_a_count_of_steps_not_a_bool():
    """steps: int; Python's True is an int, and minimize(..., steps=True) ran one step."""
    w = xdl.tensor(np.ones(3), requires_grad=True)
    opt = SGD([w], lr=0.1)
    for bad in (True, 0, 2.0):
        with pytest.raises(ValueError, match="minimize: steps must be a positive integer"):
            opt.minimize(lambda: (w * w).sum(), steps=bad)
    assert opt.t == 0
    np.testing.assert_array_equal(w.numpy(), 1.0)


def test_minimize_under_no_grad_records_its_costs_gradients_as_steps_closure_does():
    """A notebook cell's ``with xdl.no_grad():`` around minimize: its backward failed with "backward() on
    a tensor that does not require grad", where ``opt.step(closure)`` runs the closure under enable_grad."""
    w = xdl.tensor(np.ones(3), requires_grad=True)
    opt = SGD([w], lr=0.1)
    with xdl.no_grad():
        assert opt.minimize(lambda: (w * w).sum(), steps=2) == pytest.approx(3 * 0.8 ** 2)
        assert not xdl.is_grad_enabled()
    np.testing.assert_allclose(w.numpy(), 0.8 ** 2)


def test_an_optimizer_with_a_schedule_pickles():
    import pickle

    w = xdl.tensor(np.ones(3), requires_grad=True)
    opt = Adam([w], lr=schedules.warmup(schedules.cosine(1e-3, 1000), 10))
    w.grad[...] = 1
    opt.step()
    copy = pickle.loads(pickle.dumps(opt))
    assert repr(copy.lr) == "warmup(cosine(0.001, 1000, 0.0), 10)" and copy.lr(5) == opt.lr(5)
    assert pickle.loads(pickle.dumps(opt.state_dict()))["t"] == 1


def test_an_optimizer_pickled_by_an_older_xdl_unpickles_and_trains_its_model():
    import copy
    import pickle

    xdl.seed(0)
    model = Sequential(Dense(4, 5), Dense(5, 3))
    opt = Adam(model, lr=0.01)
    x = np.random.default_rng(0).normal(size=(8, 4))
    opt.zero_grad()
    (model(x) ** 2).sum().backward()
    opt.step()
    old_model, old = copy.deepcopy((model, opt))  # as an older xdl pickled them: no places, views, first
    del old.left_out                                # steps nor parameters left out
    for g in old.groups:
        del g.placed, g.views, g.first_step
    for m, o in ((model, opt), pickle.loads(pickle.dumps((old_model, old)))):
        o.zero_grad()
        (m(x) ** 2).sum().backward()
        o.step()
        assert o.t == 2
    np.testing.assert_array_equal(m(x).numpy(), model(x).numpy())  # the copy updated its own model, as opt did


def test_a_refused_optimizer_moves_no_parameter_and_names_come_from_the_model():
    xdl.seed(0)
    model = Sequential(Dense(4, 5), Dense(5, 3))
    named = dict(model.named_parameters())
    adam = Adam(model, lr=0.01)
    with pytest.raises(ValueError, match="PyTorch's 'momentum' is xdl.optim.Momentum's beta"):
        SGD([{"params": [named["0.weight"], named["0.bias"]]}, {"params": [named["1.weight"]], "momentum": 0.9}],
            lr=0.1)
    adam.zero_grad()  # its parameters were not packed away by the refused optimizer's first group
    named["0.weight"].requires_grad = False
    decayed = AdamW(param_groups(model, 0.01), lr=0.01)
    named["0.weight"].requires_grad = True
    with pytest.raises(ValueError, match="made when 0.weight was frozen, which it left out"):
        decayed.step()
    checked = SGD(model, lr=0.1, check_finite=True)
    checked.zero_grad()
    (model(np.array([[np.nan, 0, 0, 0]])) ** 2).sum().backward()
    with pytest.raises(FloatingPointError, match=r"in parameter\(s\) 0.weight, 1.weight, 0.bias"):
        checked.step()
    with pytest.raises(ValueError, match="lr is 1e\\+39: a learning rate must be 0 or a number in float32's"):
        checked.param_groups[0]["lr"] = 1e39


def test_schedules_at_the_edges_of_their_formulas():
    """step_decay: α₀·factor^⌊count/every⌋ changes at count = every, not one before; cosine with
    min_lr = α₀ is the constant α₀ (min_lr ≤ α₀ is allowed, as its error says)."""
    step = schedules.step_decay(0.1, factor=0.5, every=10)
    assert step(9) == pytest.approx(0.1) and step(10) == pytest.approx(0.05)
    flat = schedules.cosine(0.1, total=10, min_lr=0.1)
    assert [flat(count) for count in (0, 5, 10, 20)] == pytest.approx([0.1] * 4)


SCHEDULES_MADE = [schedules.inverse_time(0.1, decay_rate=1.0), schedules.exponential(0.1, base=0.9),
                  schedules.inverse_sqrt(0.1), schedules.staircase(0.1, decay_rate=0.5, interval=3),
                  schedules.step_decay(0.1, factor=0.5, every=10), schedules.cosine(0.1, 10),
                  schedules.warmup(schedules.cosine(0.1, 10), 3)]


@pytest.mark.parametrize("schedule", SCHEDULES_MADE, ids=repr)
@pytest.mark.parametrize("count", [-1, -0.5, math.nan, "3", None, True, [2]])
def test_a_schedule_called_with_no_count_of_steps_done_names_it(schedule, count):
    """A count is the steps (or epochs) done, a number ≥ 0: inverse_time(0.1, decay_rate=1.0)(-1) raised a bare
    ZeroDivisionError, a negative count elsewhere gave a rate above α₀ (exponential's α₀/base) or a cosine's
    rate of count 1, NaN gave NaN, and "3" or None a TypeError from inside the formula."""
    expected = (rf"^{re.escape(repr(schedule))}: count must be a number ≥ 0 \(the steps or epochs done before the "
                rf"one the rate is for\), got {re.escape(repr(count))}$")
    with pytest.raises(ValueError, match=expected):
        schedule(count)


@pytest.mark.parametrize("schedule", SCHEDULES_MADE, ids=repr)
def test_a_schedule_takes_any_count_of_steps_done(schedule):
    """Counts of NumPy's integers and floats (Keras's steps may be floats), large ones too."""
    for count in (0, 1.5, np.int64(7), np.float32(2.0), 10**30):
        assert schedule(count) >= 0


def test_adamw_decays_by_default_as_pytorchs_does():
    """PyTorch's AdamW has weight_decay=0.01: p ← p·(1 − lr·wd) before the Adam step, so a weight with
    no gradient shrinks by lr·0.01 (AdamW without a decay would be Adam)."""
    w = xdl.tensor(np.array([1.0]), requires_grad=True)
    opt = AdamW([w], lr=0.1)
    assert opt.param_groups[0]["weight_decay"] == 0.01
    w.grad[...] = 0.0
    opt.step()
    assert w.item() == pytest.approx(1.0 - 0.1 * 0.01, rel=1e-12)


@pytest.mark.parametrize("kwargs,match", [(dict(eps=0.0), "eps must be a finite number > 0, got 0.0"),
                                          (dict(eps=-1e-8), "eps must be a finite number > 0"),
                                          (dict(beta=1.0), r"beta must be in \[0, 1\)")])
def test_rmsprop_checks_its_eps_and_beta_at_construction(kwargs, match):
    """ε = 0 is 0/0 = NaN where a gradient and its average are 0; a negative ε divides by √s − |ε|."""
    w = xdl.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match=match):
        RMSprop([w], **kwargs)


class LazyMomentum(xdl.optim.Optimizer):
    """v ← β·v + (1 − β)·g;  p ← p − lr·v, its v made at the first step (PyTorch's lazy state) instead
    of declared in ``state_names``."""

    def __init__(self, params=None, lr=0.01, beta=0.9):
        super().__init__(params, lr=lr, beta=beta)

    def update(self, flat, state, h, step, steps_done=None):
        if "v" not in state:
            state["v"] = flat.params[0].backend.xp.zeros_like(flat.data)
        state["v"] *= h["beta"][0]
        state["v"] += (1 - h["beta"][0]) * flat.grad
        flat.data -= h["lr"][0] * state["v"]


def test_a_rule_s_state_made_in_update_instead_of_declared_is_refused_there_naming_it(backend):
    """State an update added was kept in memory but never restored: a Trainer's resume read only the
    declared names from the checkpoint, and the run went on with v = 0 (weights off by 5%) unsaid."""
    w = xdl.tensor(np.ones(3), requires_grad=True, backend=backend)
    opt = LazyMomentum([w], lr=0.1)
    w.grad[...] = 1.0
    with pytest.raises(TypeError, match=r"LazyMomentum.update: state 'v' is not declared; list it in "
                                        r"LazyMomentum.state_names \(now \(\)\)"):
        opt.step()
    assert w.numpy().tolist() == [1.0, 1.0, 1.0] and opt.t == 0  # refused before it wrote anything
    LazyMomentum.state_names = ("v",)  # declared: the same update runs (its `in` test finds v)
    try:
        opt = LazyMomentum([w], lr=0.1)
        opt.step()
        assert np.allclose(w.numpy(), 0.99) and set(opt.state_dict()["state"][0][0]) == {"v"}
    finally:
        del LazyMomentum.state_names


def test_a_rule_of_ones_own_made_without_lr_is_told_to_give_one():
    """A subclass without an __init__ (README's SignSGD shape), made without lr: a bare KeyError: 'lr'."""
    class SignSGD(xdl.optim.Optimizer):
        def update(self, flat, state, h, step, steps_done=None):
            flat.data -= h["lr"][0] * np.sign(flat.grad)

    model = xdl.nn.mlp(2, [3], 2)
    with pytest.raises(TypeError, match=r"^SignSGD: lr is required \(give lr=…, or an __init__ passing a default"):
        SignSGD(model)
    assert SignSGD(model, lr=0.1).lr == 0.1


def test_optimizer_state_updated_from_pairs_or_with_or_takes_them_and_refuses_undeclared_ones():
    """``state.update(pairs)`` checked the names by reading the iterator, then added from it, spent:
    nothing; ``state |= {...}`` (dict's own) added an undeclared name unchecked."""
    from xdl.optim.optimizer import StateBuffers

    state = StateBuffers({"v": np.zeros(2)}, "Rule")
    state.update((name, np.ones(2)) for name in ["v"])
    assert state["v"].tolist() == [1.0, 1.0]
    state |= {"v": np.full(2, 2.0)}
    assert state["v"].tolist() == [2.0, 2.0]
    with pytest.raises(TypeError, match=r"^Rule.update: state 'm' is not declared"):
        state |= {"m": np.zeros(2)}
    assert set(state) == {"v"}


def test_step_takes_pytorchs_closure_calls_it_first_and_returns_its_cost():
    """``opt.step(closure)`` as PyTorch's: cost = closure() (zero_grad, cost, backward), then
    p ← p − lr·g with that gradient; the step returns the cost (None without a closure). Taking no
    argument, the step was refused with Python's "takes 1 positional argument but 2 were given"."""
    w = xdl.Parameter(np.array([0.0, 1.0]))
    opt = SGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        cost = ((w - 3.0) ** 2).sum()
        cost.backward()
        return cost

    with xdl.no_grad():  # the closure records its graph all the same (PyTorch's enable_grad)
        cost = opt.step(closure)
    np.testing.assert_allclose(float(cost.item()), 9.0 + 4.0)
    np.testing.assert_allclose(w.numpy(), [0.0 - 0.1 * -6.0, 1.0 - 0.1 * -4.0])
    assert opt.t == 1 and opt.step() is None
    with pytest.raises(TypeError, match="closure must be a function of no arguments.*got 5"):
        opt.step(5)
    assert opt.t == 2  # refused before anything ran
    ran = []
    with pytest.raises(ValueError, match="the optimizer has no parameters"):
        SGD(lr=0.1).step(lambda: ran.append(1))  # (the closure's forward and backward ran, then the refusal)
    assert not ran


def test_sgd_refuses_pytorchs_positional_momentum_rather_than_take_it_as_weight_decay():
    """PyTorch's ``SGD(params, 0.1, 0.9)`` is momentum 0.9; here the third argument was
    weight_decay, p ← p − lr·(g + 0.9·p), with no error. The settings after lr are keywords."""
    model = xdl.nn.mlp(3, [4], 2)
    with pytest.raises(TypeError, match=r"SGD\(\) takes 2 positional arguments \(params, lr\) but 3 were given; "
                                        r"PyTorch's third, SGD\(params, lr, momentum\), is xdl.optim.Momentum's beta"):
        SGD(model.parameters(), 0.1, 0.9)
    assert SGD(model, 0.1, weight_decay=0.9).param_groups[0]["weight_decay"] == 0.9


def test_data_and_grad_rebound_to_tensors_are_written_back_as_their_arrays():
    """``p.grad = xdl.tensor(...)``, ``p.data = xdl.tensor(...)`` (PyTorch's are tensors): the step
    reads their arrays, p ← p − lr·g, where it failed with "'Tensor' object has no attribute
    '__array_interface__'"."""
    w = xdl.Parameter(np.zeros(3))
    opt = SGD([w], lr=0.5)
    w.data = xdl.tensor([1.0, 2.0, 3.0], dtype=w.dtype)
    w.grad = xdl.tensor([2.0, 2.0, 2.0], dtype=w.dtype)
    opt.step()
    np.testing.assert_allclose(w.numpy(), [0.0, 1.0, 2.0])
    assert isinstance(w.grad, np.ndarray) and np.shares_memory(w.data, opt.groups[0].flats[0].data)


def test_a_group_setting_asked_by_pytorchs_name_is_told_xdls():
    """param_groups[0]["betas"] listed the settings only, where the constructor says beta1 and beta2."""
    opt = Adam(xdl.nn.mlp(2, [3], 2))
    for ask in (lambda: opt.param_groups[0]["betas"], lambda: opt.param_groups[0].update(betas=(0.9, 0.99))):
        with pytest.raises(KeyError, match=r"no setting 'betas' .*; PyTorch's 'betas' is beta1 and beta2 here"):
            ask()


def test_a_parameter_given_to_two_groups_is_named_with_the_group_holding_it():
    """Gradual unfreezing's slip: an optimizer made of the model while a layer trained already holds
    it, and adding it as a group of its own was refused as "a parameter appears in more than one
    group", naming neither the parameter nor where it is."""
    model = xdl.nn.Sequential(xdl.nn.Dense(3, 4), xdl.nn.Dense(4, 2))
    model[0].weight.requires_grad = False
    opt = xdl.optim.Adam(model)
    model[0].weight.requires_grad = True  # unfrozen, to train at a rate of its own
    with pytest.raises(ValueError, match=r"^params\[1\] \(shape \(4, 2\)\) is already in group 0: a parameter is in one "
                                         r"group only"):
        opt.add_param_group({"params": [model[0].weight, model[1].weight], "lr": 1e-4})
    assert len(opt.param_groups) == 1
    with pytest.raises(ValueError, match=r"^params\[0\] \(shape \(3, 4\)\) is already in an earlier group given"):
        xdl.optim.Adam([{"params": [model[0].weight]}, {"params": [model[0].weight]}])


@pytest.mark.parametrize("stacked", [False, True], ids=["optimizer", "stacked"])
def test_a_step_past_the_int64_step_count_is_refused_before_anything_is_written(stacked):
    """t = MAX_STEPS is accepted (the most the device's int64 count holds); the step after it wrapped that
    count to −2⁶³, Adam's t with it, and made the host's t 2⁶³: a state_dict no optimizer could load back."""
    from xdl.optim.optimizer import MAX_STEPS
    from xdl.optim.stacked import StackedOptimizer

    def make():
        models = [Sequential(Dense(2, 2)) for _ in range(2)]
        if not stacked:
            return models[0], Adam(models[0], lr=0.1)
        model = xdl.nn.stack(models)
        return model, StackedOptimizer(model, [Adam(m, lr=0.1) for m in models])

    model, opt = make()
    opt.t = MAX_STEPS
    before = [p.numpy().copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad[...] = 1.0
    with pytest.raises(OverflowError, match=r"t \(the steps taken\) is 9223372036854775807.*set t lower"):
        opt.step()
    assert opt.t == MAX_STEPS and int(opt.steps_done[0]) == MAX_STEPS
    assert all((p.numpy() == b).all() for p, b in zip(model.parameters(), before))
    make()[1].load_state_dict(opt.state_dict())  # its state loads back


@pytest.mark.parametrize("make", [
    lambda m, wd: SGD(m, lr=0.01, weight_decay=wd),
    lambda m, wd: Momentum(m, lr=0.01, weight_decay=wd),
    lambda m, wd: RMSprop(m, lr=0.01, weight_decay=wd),
    lambda m, wd: Adam(m, lr=0.01, weight_decay=wd),
    lambda m, wd: AdamW(m, lr=0.01, weight_decay=wd),
    lambda m, wd: Adam(param_groups(m, wd), lr=0.01),
])
def test_a_weight_decay_that_is_inf_in_the_parameters_dtype_is_refused_by_name(make):
    """weight_decay=1e39 passed its check (finite, ≥ 0) and was inf in the float32 update: one SGD or
    Adam step made the weights ±inf and the biases NaN (0·inf), as lr and eps beyond float32 are
    refused by name, and `Trainer`'s l2 and `TrainConfig`'s weight_decay."""
    model = xdl.nn.mlp(4, [3], 2)
    with pytest.raises(ValueError, match=r"weight_decay is 1e\+39, inf in float32 .*at most 3.4e\+38"):
        make(model, 1e39)
    opt = make(model, 3e38)  # float32's largest holds it
    with pytest.raises(ValueError, match=r"weight_decay is 1e\+39, inf in float32"):
        opt.param_groups[0]["weight_decay"] = 1e39
    assert opt.param_groups[0]["weight_decay"] == 3e38  # refused before anything changed
    assert make(model.astype(np.float64), 1e39).param_groups[0]["weight_decay"] == 1e39  # float64 holds it


@pytest.mark.parametrize("make", [Adam, RMSprop, Momentum])
def test_the_state_check_names_the_group_and_the_buffer_holding_nan_or_inf(make):
    """`non_finite_state` names each state buffer that holds NaN or Inf as "group g's name", g its group's index
    (two groups: `param_groups`), and none while all are finite — whether it reads the flags or is given them."""
    xdl.seed(0)
    model = xdl.nn.mlp(2, [3], 2)
    optimizer = make(param_groups(model, 0.1), lr=0.01)
    held = [(i, name, array) for i, group in enumerate(optimizer.groups) for st in group.state
            for name, array in st.items()]
    assert {i for i, _, _ in held} == {0, 1} and optimizer.non_finite_state() == []
    for i, name, array in held:
        for bad in (np.nan, -np.inf):
            array[0], before = bad, array[0]
            flags = optimizer.groups[0].flats[0].backend.to_numpy(optimizer.state_flags())
            assert optimizer.non_finite_state() == optimizer.non_finite_state(flags) == [f"group {i}'s {name}"]
            array[0] = before


# -- edges of the checks, each against a value written out by hand (mutation testing found them untested) ----------

F32 = np.finfo(np.float32)


@pytest.mark.parametrize("make", [
    lambda count: schedules.step_decay(0.1, every=count),
    lambda count: schedules.staircase(0.1, decay_rate=1.0, interval=count),
    lambda count: schedules.cosine(0.1, count),
    lambda count: schedules.warmup(0.1, count),
])
def test_a_count_between_0_and_1_is_refused_and_1_is_taken(make):
    """A count (every, interval, total, steps) is ≥ 1: 0.5 is none, 1 the least."""
    for count in (0.5, 1e-320, 0.999):
        with pytest.raises(ValueError, match=r"must be a finite number ≥ 1 \(a count of steps or epochs\)"):
            make(count)
    assert make(1)(0) == pytest.approx(0.1)


@pytest.mark.parametrize("betas", [dict(beta1=0.0), dict(beta2=0.0), dict(beta1=0.0, beta2=0.0)])
def test_a_beta_of_0_is_taken_and_steps_as_plain_sign_descent(betas):
    """β ∈ [0, 1): β₁ = β₂ = 0 is Adam without averages, m̂ = g, v̂ = g², a step of lr·g/(|g| + ε)."""
    p = xdl.Parameter(np.array([1.0, -2.0, 3.0]))
    optimizer = Adam([p], lr=0.1, eps=1e-8, **betas)
    p.grad[...] = [0.5, -4.0, 2.0]
    optimizer.step()
    if betas == dict(beta1=0.0, beta2=0.0):
        np.testing.assert_allclose(p.numpy(), [1.0 - 0.1, -2.0 + 0.1, 3.0 - 0.1], rtol=1e-7)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\), got 1.0"):
        Adam([xdl.Parameter(np.ones(2))], beta1=1.0)


@pytest.mark.parametrize("lr", [float(F32.smallest_subnormal), 1e-40, float(F32.tiny), float(F32.max)])
def test_a_rate_at_the_ends_of_float32s_positive_range_is_taken(lr):
    """float32 holds every rate in [2⁻¹⁴⁹, max]: subnormals too (1e-40 is below `tiny`, 1.18e-38)."""
    p = xdl.Parameter(np.zeros(2, dtype=np.float32))
    optimizer = SGD([p], lr=lr)
    p.grad[...] = [1.0, 0.0]
    optimizer.step()
    assert p.numpy().tolist() == [-np.float32(lr), 0.0]


@pytest.mark.parametrize("lr", [float(F32.smallest_subnormal) / 2, float(F32.max) * 1.0001])
def test_a_rate_just_outside_float32s_positive_range_is_refused(lr):
    with pytest.raises(ValueError, match=r"a learning rate must be 0 or a number in float32's positive range"):
        SGD([xdl.Parameter(np.zeros(2, dtype=np.float32))], lr=lr)


def test_a_rate_of_0_is_refused_where_0_is_not_allowed():
    from xdl.optim.optimizer import check_rate

    assert check_rate(0.0, "lr") == 0.0
    with pytest.raises(ValueError, match=r"^min_lr is 0.0: a learning rate must be a number in float32's"):
        check_rate(0.0, "min_lr", zero=False)
    assert check_rate(1e-3, "min_lr", zero=False) == 1e-3


def test_a_weight_decay_of_float32s_largest_is_taken_and_beyond_it_refused():
    assert SGD([xdl.Parameter(np.ones(2, dtype=np.float32))], weight_decay=float(F32.max)).defaults[
        "weight_decay"] == float(F32.max)
    with pytest.raises(ValueError, match="weight_decay is .*, inf in float32"):
        SGD([xdl.Parameter(np.ones(2, dtype=np.float32))], weight_decay=float(F32.max) * 1.0001)


def test_a_schedule_of_0d_arrays_gives_their_numbers():
    """``np.where(count < 1, 0.1, 0.01)`` is a 0-d array: the rate it holds (0.1, then 0.01) is used."""
    p = xdl.Parameter(np.zeros(1))
    optimizer = SGD([p], lr=lambda count: np.where(count < 1, 0.1, 0.01))
    for _ in range(2):
        p.grad[...] = 1.0
        optimizer.step()
    np.testing.assert_allclose(p.numpy(), [-0.1 - 0.01], rtol=1e-12)


def test_a_schedule_that_overflows_gives_inf_which_the_step_refuses():
    """Python's OverflowError from a schedule of one's own is inf (a rate beyond floats), not 0 (no step)."""
    from xdl.optim.optimizer import rate_at

    assert rate_at(lambda count: 10.0 ** (400 * count), 1) == math.inf
    p = xdl.Parameter(np.ones(2))
    optimizer = SGD([p], lr=lambda count: 0.1 if count == 0 else 10.0 ** (400 * count))
    p.grad[...] = 1.0
    optimizer.step()
    with pytest.raises(ValueError, match=r"the lr at step 2 \(group 0\) is inf"):
        optimizer.step()
    np.testing.assert_allclose(p.numpy(), 0.9)


def test_a_schedules_error_is_named_by_the_rate_where_a_name_is_given():
    from xdl.optim.optimizer import rate_at

    def schedule(count):
        return [0.1][count]

    with pytest.raises(IndexError):
        rate_at(schedule, 1)
    with pytest.raises(ValueError, match=r"^schedule\(1\): the schedule raised IndexError: list index out of range"):
        rate_at(schedule, 1, "schedule(1)")


def test_optimizer_state_setdefault_or_update_by_keyword_refuses_undeclared_names():
    from xdl.optim.optimizer import StateBuffers

    state = StateBuffers({"v": np.zeros(2)}, "Rule")
    state.update(v=np.ones(2))
    assert state.setdefault("v").tolist() == [1.0, 1.0]
    with pytest.raises(TypeError, match=r"^Rule.update: state 'm' is not declared"):
        state.update(m=np.zeros(2))
    with pytest.raises(TypeError, match=r"^Rule.update: state 's' is not declared"):
        state.setdefault("s", np.zeros(2))
    assert set(state) == {"v"}


def test_a_step_count_set_below_a_groups_start_starts_it_there():
    """A group added after 5 steps starts at 5; t set to 2 starts it at 2 (its Adam t: 1 at the next step)."""
    first = xdl.Parameter(np.ones(1))
    optimizer = Adam([first], lr=0.1)
    optimizer.t = 5
    later = xdl.Parameter(np.ones(1))
    optimizer.add_param_group({"params": [later]})
    assert optimizer.state_dict()["first_steps"] == [0, 5]
    version = optimizer.version
    optimizer.t = 2
    assert optimizer.state_dict()["first_steps"] == [0, 2]
    assert optimizer.version > version  # (a captured step holds the first steps: it is captured again)
    optimizer.t = 3
    assert optimizer.state_dict()["first_steps"] == [0, 2]


def test_an_optimizer_made_without_parameters_checks_its_rate():
    for lr in (-1.0, math.nan, "0.1"):
        with pytest.raises(ValueError, match="lr must be a finite number ≥ 0"):
            Adam(lr=lr)


@pytest.mark.parametrize("numpy_type", [np.float32, np.int64, np.int32, np.float64])
def test_a_numpy_count_gives_the_rate_of_the_python_count(numpy_type):
    """A count of NumPy's (a Trainer's epoch from an array) gives, bit for bit, the rate of the Python number."""
    made = [schedules.exponential(0.1, base=0.9), schedules.inverse_time(0.3, decay_rate=0.7),
            schedules.cosine(0.1, 13), schedules.step_decay(0.1, factor=0.3, every=3), schedules.inverse_sqrt(0.1, 3.0)]
    for schedule in made:
        for count in range(40):
            rate = schedule(numpy_type(count))
            assert type(rate) is float and rate == schedule(count), (schedule, count)


def test_a_first_group_added_after_steps_set_takes_adams_first_step():
    """Adam's first step of a group is lr·g/(|g| + ε) (m̂ = g, v̂ = g²), whatever t the optimizer says."""
    optimizer = Adam(lr=0.1, eps=1e-8)
    optimizer.t = 3
    p = xdl.Parameter(np.zeros(3))
    optimizer.add_param_group({"params": [p]})
    p.grad[...] = [2.0, -0.5, 1e-3]
    optimizer.step()
    g = np.array([2.0, -0.5, 1e-3])
    np.testing.assert_allclose(p.numpy(), -0.1 * g / (np.abs(g) + 1e-8), rtol=1e-12)
    assert optimizer.t == 4


def test_a_group_of_no_parameters_is_refused():
    for params in ([], [{"params": []}]):
        with pytest.raises(ValueError, match="an optimizer parameter group needs at least one parameter"):
            SGD(params, lr=0.1)


def test_a_flag_set_through_param_groups_is_what_the_next_step_reads():
    """nesterov set to True after a plain step: the next step goes along β·v + (1 − β)·g (PyTorch's Nesterov,
    as ARCHITECTURE.md writes it), v = β·v + (1 − β)·g, not along v."""
    p = xdl.Parameter(np.zeros(2))
    optimizer = Momentum([p], lr=0.5, beta=0.8)
    g1, g2 = np.array([1.0, -2.0]), np.array([0.5, 3.0])
    p.grad[...] = g1
    optimizer.step()
    optimizer.param_groups[0]["nesterov"] = True
    p.grad[...] = g2
    optimizer.step()
    v1 = 0.2 * g1
    v2 = 0.8 * v1 + 0.2 * g2
    np.testing.assert_allclose(p.numpy(), -0.5 * v1 - 0.5 * (0.8 * v2 + 0.2 * g2), rtol=1e-12)


def test_a_rate_a_groups_narrowest_dtype_cannot_hold_is_refused_when_the_group_is_made():
    """1e-46 is 0 in float32 (and a number in float64): a group holding both refuses it at once, not at its step."""
    params = [xdl.Parameter(np.ones(2, dtype=np.float64)), xdl.Parameter(np.ones(2, dtype=np.float32))]
    with pytest.raises(ValueError, match=r"a learning rate must be 0 or a number in float32's positive range"):
        SGD(params, lr=1e-46)
    assert SGD([xdl.Parameter(np.ones(2, dtype=np.float64))], lr=1e-46).lr == 1e-46


def test_lr_reads_the_first_groups_rate_and_setting_it_sets_every_groups_and_later_ones():
    """``opt.lr``: group 0's rate; ``opt.lr = 0.05`` sets every group's, and a group added later takes it."""
    a, b, c = (xdl.Parameter(np.zeros(1)) for _ in range(3))
    optimizer = SGD([{"params": [a], "lr": 0.3}, {"params": [b], "lr": 0.7}], lr=0.1)
    assert optimizer.lr == 0.3
    optimizer.lr = 0.05
    optimizer.add_param_group({"params": [c]})
    assert [group["lr"] for group in optimizer.param_groups] == [0.05, 0.05, 0.05]
    for p in (a, b, c):
        p.grad[...] = 2.0
    optimizer.step()
    assert [p.numpy().item() for p in (a, b, c)] == [-0.1, -0.1, -0.1]


def _without_shapes(state):  # (a state saved before "shapes" was recorded: the buffers' own checks then say it)
    return {k: v for k, v in state.items() if k != "shapes"}


@pytest.mark.parametrize("edit, match", [
    (lambda s: s["state"][0][0].update(x=np.zeros(3)), r"group 0 holds \['m', 'v', 'x'\], Adam keeps \['m', 'v'\]"),
    (lambda s: s["state"][0][0].pop("v"), r"group 0 holds \['m'\], Adam keeps \['m', 'v'\]"),
    (lambda s: s["state"][0].clear(), r"group 0 has 0 buffers per dtype, this optimizer 1"),
    (lambda s: s["state"][0][0].update(m=np.zeros(5)), r"'m' of group 0 has shape \(5,\), this optimizer's is \(3,\)"),
])
def test_a_hand_edited_optimizer_state_of_other_buffers_is_refused_and_changes_nothing(edit, match):
    p = xdl.Parameter(np.ones(3))
    optimizer = Adam([p], lr=0.1)
    p.grad[...] = 1.0
    optimizer.step()
    before = optimizer.state_dict()
    state = _without_shapes(optimizer.state_dict())
    edit(state)
    with pytest.raises(ValueError, match=match):
        optimizer.load_state_dict(state)
    after = optimizer.state_dict()
    assert after["t"] == 1
    for name in ("m", "v"):
        np.testing.assert_array_equal(after["state"][0][0][name], before["state"][0][0][name])


def test_the_schedules_defaults_are_their_documented_ones():
    """step_decay halves every 10 counts, exponential multiplies by 0.95 each, inverse_sqrt's k is 1."""
    assert [schedules.step_decay(0.1)(count) for count in (0, 9, 10, 19, 20)] == [0.1, 0.1, 0.05, 0.05, 0.025]
    assert schedules.exponential(0.1)(3) == 0.1 * 0.95 ** 3
    assert schedules.inverse_sqrt(0.1)(4) == 0.1 / 2


def test_minimize_given_the_parameters_it_holds_adds_no_group():
    w = xdl.tensor([0.0], requires_grad=True)
    optimizer = SGD([w], lr=0.25)
    assert optimizer.minimize(lambda: (w - 4.0) ** 2, [w], steps=1) == 16.0  # w ← 0 − 0.25·2·(0 − 4) = 2
    assert len(optimizer.param_groups) == 1 and w.numpy().tolist() == [2.0]
    assert len(optimizer.param_groups[0]) == len(list(optimizer.param_groups[0])) == 3  # params, lr, weight_decay


def test_a_gradient_set_to_none_after_a_step_counts_as_zero():
    """PyTorch's ``p.grad = None``: the next step reads a zero gradient (SGD: no move), not the last one's."""
    p = xdl.Parameter(np.zeros(2))
    optimizer = SGD([p], lr=0.5)
    p.grad[...] = [1.0, -2.0]
    optimizer.step()
    p.grad = None
    optimizer.step()
    assert p.numpy().tolist() == [-0.5, 1.0]


@pytest.mark.parametrize("name, kind, settings, reads", [
    ("sgd", SGD, {"lr": 0.01, "weight_decay": 0.0}, set()),
    ("momentum", Momentum, {"lr": 0.01, "beta": 0.8, "nesterov": False, "weight_decay": 0.0}, {"beta1"}),
    ("nesterov", Momentum, {"lr": 0.01, "beta": 0.8, "nesterov": True, "weight_decay": 0.0}, {"beta1"}),
    ("rmsprop", RMSprop, {"lr": 0.01, "beta": 0.8, "eps": 1e-6, "weight_decay": 0.0}, {"beta1", "eps"}),
    ("adam", Adam, {"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-6, "weight_decay": 0.0},
     {"beta1", "beta2", "eps"}),
    ("adamw", AdamW, {"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-6, "weight_decay": 0.0},
     {"beta1", "beta2", "eps"})])
def test_each_optimizer_option_is_built_with_the_settings_the_config_s_help_gives_it(name, kind, settings, reads):
    """`TrainConfig.build_optimizer`: beta1 is momentum's and RMSprop's β and Adam's β1, beta2 Adam's β2, eps
    RMSprop's and Adam's ε, nesterov Nesterov's momentum; adamw decays nothing at weight_decay 0 (not AdamW's own
    0.01), and the weights only at weight_decay > 0; max_grad_norm 0 is None. The options it reads, and no
    others, are the ones `unread_options` does not name."""
    from xdl.config import TrainConfig, unread_options

    model = xdl.nn.mlp(3, [4], 2)
    config = TrainConfig(optimizer=name, lr=0.01, beta1=0.8, beta2=0.95, eps=1e-6)
    optimizer = config.build_optimizer(model)
    assert type(optimizer) is kind and optimizer.defaults == settings and optimizer.max_grad_norm is None
    assert set(unread_options(config, ["beta1", "beta2", "eps", "lr", "epochs"])) == {"beta1", "beta2", "eps"} - reads
    decayed = TrainConfig(optimizer=name, weight_decay=0.1, max_grad_norm=2.0).build_optimizer(model)
    groups = [(sorted(p.ndim for p in group["params"]), group["weight_decay"]) for group in decayed.param_groups]
    assert decayed.max_grad_norm == 2.0 and groups == [([2, 2], 0.1), ([1, 1], 0.0)]  # the weights, the biases


@pytest.mark.parametrize("schedule, reads", [("none", set()), ("inverse_time", {"decay_rate"}),
                                             ("exponential", {"decay_base"}),
                                             ("staircase", {"decay_rate", "decay_every"}),
                                             ("step", {"decay_factor", "decay_every"}), ("inverse_sqrt", {"decay_k"}),
                                             ("cosine", set())])
def test_each_schedule_s_own_settings_are_the_ones_unread_options_leaves_out(schedule, reads):
    """The options a schedule reads, from its help: any other schedule setting given is unread (lr and epochs,
    read by every run, never are)."""
    from xdl.config import TrainConfig, unread_options

    settings = ["decay_rate", "decay_base", "decay_every", "decay_factor", "decay_k", "lr", "epochs"]
    assert set(unread_options(TrainConfig(schedule=schedule, optimizer="sgd"), settings)) \
        == {"decay_rate", "decay_base", "decay_every", "decay_factor", "decay_k"} - reads


@pytest.mark.parametrize("l2, l1, capture, patience, seed, progress", [(0.3, 0.1, False, 0, 5, False),
                                                                      (0.0, 0.2, True, 4, 2**40, True)])
def test_the_config_s_trainer_takes_its_penalties_capture_and_early_stopping(l2, l1, capture, patience, seed,
                                                                            progress):
    """`TrainConfig.build_trainer`: l2 is the Trainer's λ and l1 its λ₁ (not swapped), capture True is "auto"
    (a graph where a GPU runs it) and False none, patience > 0 adds an EarlyStopping of that patience, the seed
    is the Trainer's (its shuffles and dropout masks), and progress True is None (a bar on a terminal only)."""
    from xdl.config import TrainConfig
    from xdl.train import EarlyStopping

    config = TrainConfig(hidden=[4], l2=l2, l1=l1, capture=capture, patience=patience, batch_size=8, epochs=3,
                         seed=seed, progress=progress)
    trainer = config.build_trainer(config.build_model(3, 2))
    assert (trainer.l2, trainer.l1, trainer.capture) == (l2, l1, "auto" if capture else False)
    assert (trainer.batch_size, trainer.epochs, trainer.seed) == (8, 3, seed)
    assert trainer.progress is (None if progress else False)
    assert [c.patience for c in trainer.callbacks if isinstance(c, EarlyStopping)] == ([patience] if patience else [])
