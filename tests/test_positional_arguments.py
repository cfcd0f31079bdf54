"""Arguments by position in a peer library's order (PyTorch's, Keras's), where the same position means
another setting here: refused, saying what the peer's argument is here and its keyword — not taken as
that other setting. ``BatchNorm(64, 1e-5)`` (PyTorch's eps second) was momentum=1e-5 here, the running
statistics the last batch's; ``Trainer(model, loss, opt, 32)`` was l2=32; ``EarlyStopping("dev_cost", 1, 3)``
(Keras's min_delta second) was patience 1. The settings after the ones every user passes by position
are keywords only."""

import copy
import inspect
import itertools
import pickle
import re

import numpy as np
import pytest

import xdl
from xdl.config import TrainConfig
from xdl.nn import BatchNorm, Dense, Dropout, LeakyReLU, ReLU
from xdl.optim import SGD, Adam, AdamW, Momentum, RMSprop, schedules
from xdl.train import EarlyStopping, ReduceLROnPlateau


def prefixes(args: tuple) -> list[tuple]:
    """Every call a user writes with the first n of a peer's positional ``args``, n from 1 to all."""
    return [args[:n] for n in range(1, len(args) + 1)]


# a layer's peer positional orders past the arguments taken here: (class, its positional names here, the values)
LAYER_ORDERS = [
    # PyTorch's BatchNorm1d(num_features, eps, momentum, affine, track_running_stats)
    (BatchNorm, ("features",), (64,), (1e-5, 0.1, True, True)),
    # Keras's BatchNormalization(axis, momentum, epsilon) (axis the features' here)
    (BatchNorm, ("features",), (64,), (0.99, 1e-3)),
    # PyTorch's Linear(in_features, out_features, bias, device, dtype)
    (Dense, ("in_features", "out_features"), (3, 2), (False, None, np.float64)),
    (Dense, ("in_features", "out_features"), (3, 2), (True,)),
    # Keras's Dense(units, activation, use_bias), with in_features first
    (Dense, ("in_features", "out_features"), (3, 2), (None, False)),
]
LAYER_KEYWORDS = {BatchNorm: ("eps=", "momentum="), Dense: ("bias=",)}
LAYER_CASES = [(cls, names, given + extra) for cls, names, given, rest in LAYER_ORDERS for extra in prefixes(rest)]


@pytest.mark.parametrize("cls, names, args", LAYER_CASES)
def test_a_layer_refuses_a_peers_positional_setting_naming_its_keyword_here(cls, names, args):
    plural = "" if len(names) == 1 else "s"
    said = (f"{cls.__name__}() takes {len(names)} positional argument{plural} ({', '.join(names)}) "
            f"but {len(args)} were given; PyTorch's")
    with pytest.raises(TypeError, match=re.escape(said)) as refused:
        cls(*args)
    assert all(keyword in str(refused.value) for keyword in LAYER_KEYWORDS[cls])


# PyTorch's Dropout(p, inplace), LeakyReLU(negative_slope, inplace), ReLU(inplace): (layer, args, what is said)
INPLACE_CASES = [
    *[(Dropout, (rate, inplace), "Dropout() takes 1 positional argument (rate) but 2 were given; PyTorch's second")
      for rate in (0.0, 0.5) for inplace in (False, True)],
    *[(LeakyReLU, (slope, inplace), "LeakyReLU() takes 1 positional argument (slope) but 2 were given; PyTorch's "
                                    "second") for slope in (0.01, 0.2) for inplace in (False, True)],
    *[(ReLU, (inplace,), "ReLU() takes 0 positional arguments but 1 were given; PyTorch's first")
      for inplace in (False, True)],
]


@pytest.mark.parametrize("layer, args, said", INPLACE_CASES)
def test_pytorchs_inplace_by_position_is_refused_saying_it_is_not_offered(layer, args, said):
    """Dropout(0.5, True) and LeakyReLU(0.2, True) met Python's bare "takes from 1 to 2 positional arguments",
    ReLU(True) "Module.__init__() takes 1 positional argument", naming neither the layer nor inplace."""
    with pytest.raises(TypeError, match=re.escape(said) + r".*inplace\), is not offered here"):
        layer(*args)


@pytest.mark.parametrize("momentum, eps", [(0.9, 1e-5), (0.5, 1e-3), (0.0, 0.1)])
def test_batch_norms_settings_by_name_are_as_given(momentum, eps):
    bn = BatchNorm(8, momentum=momentum, eps=eps, dtype=np.float64)
    assert (bn.momentum, bn.eps, bn.gamma.dtype) == (momentum, eps, np.float64)


@pytest.mark.parametrize("bias", [False, True])
def test_dense_settings_by_name_are_as_given(bias):
    layer = Dense(3, 2, init="zeros", bias=bias, dtype=np.float64)
    assert (layer.bias is not None, layer.weight.dtype, float(abs(layer.weight.numpy()).sum())) == (bias, np.float64, 0)


# a rule's peers' positional orders after (params, lr), and the keyword here the message names
RULE_ORDERS = [
    # PyTorch's SGD(params, lr, momentum, dampening, weight_decay, nesterov); Keras's SGD(lr, momentum, nesterov, wd)
    (Momentum, (0.9, 0.0, 5e-4, True), "beta"),
    (Momentum, (0.9, True, 1e-4), "beta"),
    # PyTorch's RMSprop(params, lr, alpha, eps, weight_decay, momentum, centered); Keras's (lr, rho, momentum, eps)
    (RMSprop, (0.99, 1e-8, 0.0, 0.9, False), "beta"),
    (RMSprop, (0.9, 0.9, 1e-7), "beta"),
    # PyTorch's Adam(params, lr, betas, eps, weight_decay, amsgrad); Keras's Adam(lr, beta_1, beta_2, epsilon, amsgrad)
    (Adam, ((0.9, 0.999), 1e-8, 0.0, False), "beta1"),
    (Adam, (0.9, 0.999, 1e-7, True), "beta1"),
    (AdamW, ((0.9, 0.999), 1e-8, 0.01, False), "beta1"),
    (AdamW, (0.9, 0.999, 1e-7, True), "beta1"),
    (SGD, (0.9, 0.0, 5e-4, True), "beta"),
]
RULE_CASES = [(cls, extra, keyword) for cls, rest, keyword in RULE_ORDERS for extra in prefixes(rest)]


def test_the_peers_orders_cover_every_rule_xdl_optim_exports():
    """ARCHITECTURE.md's optimizer recipe: a rule left out of `RULE_ORDERS` passed every test with its settings
    after lr taken by position (no ``*``), a peer's order then silently read as other settings."""
    exported = {rule for rule in (getattr(xdl.optim, name) for name in xdl.optim.__all__)
                if isinstance(rule, type) and issubclass(rule, xdl.optim.Optimizer) and rule is not xdl.optim.Optimizer}
    assert {cls for cls, _, _ in RULE_ORDERS} == exported


@pytest.mark.parametrize("cls, extra, keyword", RULE_CASES)
def test_a_rule_refuses_a_peers_positional_setting_naming_its_keyword_here(cls, extra, keyword):
    """Momentum(params, 0.1, 0.9) as PyTorch's SGD took steps 10× smaller (lr/(1 − β) is PyTorch's step);
    RMSprop(params, 0.001, 0.9, 0.9) in Keras's order took its momentum as eps."""
    model = xdl.nn.mlp(3, [4], 2)
    said = (f"{cls.__name__}() takes 2 positional arguments (params, lr) but {2 + len(extra)} were given; "
            f"PyTorch's third, ")
    with pytest.raises(TypeError, match=re.escape(said)) as refused:
        cls(model, 0.01, *extra)
    assert re.search(rf"\b{keyword}\b", str(refused.value))


@pytest.mark.parametrize("cls, settings", [
    (Momentum, {"beta": 0.5, "nesterov": True, "weight_decay": 1e-3}),
    (RMSprop, {"beta": 0.99, "eps": 1e-6, "weight_decay": 1e-3}),
    (Adam, {"beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 1e-3}),
    (AdamW, {"beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 1e-3}),
])
def test_a_rules_settings_by_name_are_as_given(cls, settings):
    opt = cls(xdl.nn.mlp(3, [4], 2), 0.05, **settings)
    assert opt.defaults == {"lr": 0.05, **settings}


def trainer_parts():
    model = xdl.nn.mlp(3, [4], 2)
    return model, xdl.losses.SoftmaxCrossEntropy(), Adam(model, lr=1e-3)


# Keras's fit(x, y, batch_size, epochs): the numbers after the parts in that habit
@pytest.mark.parametrize("extra", prefixes((32, 5)) + prefixes((0.0, 32, 5, None)))
def test_a_trainer_takes_its_settings_by_name_only(extra):
    with pytest.raises(TypeError, match=r"takes 4 positional arguments but \d+ were given"):
        xdl.Trainer(*trainer_parts(), *extra)
    trainer = xdl.Trainer(*trainer_parts(), l2=0.5, batch_size=32, epochs=5)
    assert (trainer.l2, trainer.batch_size, trainer.epochs) == (0.5, 32, 5)


# Keras's EarlyStopping(monitor, min_delta, patience, verbose, mode, baseline, restore_best_weights)
@pytest.mark.parametrize("extra", prefixes((1, 3, 0, "auto")) + prefixes((0.0, 5)) + prefixes((3, 0.01, False)))
def test_early_stoppings_settings_after_the_monitor_are_by_name_only(extra):
    """EarlyStopping("dev_cost", 1, 3), Keras's min_delta=1 and patience=3, was patience 1 and min_delta 3."""
    with pytest.raises(TypeError, match=r"takes from 1 to 2 positional arguments but \d+ were given"):
        EarlyStopping("dev_cost", *extra)
    stopping = EarlyStopping("dev_cost", patience=3, min_delta=1, restore_best=False)
    assert (stopping.patience, stopping.min_delta, stopping.restore_best) == (3, 1.0, False)


# Keras's ReduceLROnPlateau(monitor, factor, patience, verbose, mode, min_delta, cooldown, min_lr)
@pytest.mark.parametrize("extra", prefixes((1, "auto", 1e-4, 0, 0.0)) + prefixes((0, "min")))
def test_a_plateaus_settings_after_the_patience_are_by_name_only(extra):
    """ReduceLROnPlateau("dev_cost", 0.5, 5, 1), Keras's verbose=1 fourth, was min_delta=1."""
    with pytest.raises(TypeError, match=r"takes from 1 to 4 positional arguments but \d+ were given"):
        ReduceLROnPlateau("dev_cost", 0.5, 5, *extra)
    plateau = ReduceLROnPlateau("dev_cost", 0.5, 5, min_delta=0.01, cooldown=2, min_lr=1e-6)
    assert (plateau.factor, plateau.patience, plateau.min_delta, plateau.cooldown, plateau.min_lr) == \
        (0.5, 5, 0.01, 2, 1e-6)


@pytest.mark.parametrize("extra", [()] + prefixes(("min", 0.5)))
def test_a_plateau_given_an_optimizer_first_in_pytorchs_order_says_where_it_goes(extra):
    """PyTorch's ReduceLROnPlateau(optimizer, mode, factor, patience) was told "monitor must be one of"."""
    optimizer = Adam(xdl.nn.mlp(3, [4], 2))
    with pytest.raises(TypeError, match=r"monitor is an optimizer \(Adam\), PyTorch's first argument; it sets "
                                        r"the trainer's optimizer: give it to Trainer\(callbacks=\[...\]\)"):
        ReduceLROnPlateau(optimizer, *extra)


class SquareDense(Dense):
    """A user's layer taking its sizes as ``*sizes``: any number of them, by position."""

    def __init__(self, *sizes, bias=True):
        super().__init__(sizes[0], sizes[-1], bias=bias)


class DoubledMomentum(Momentum):
    """A user's rule taking its own settings as ``*args`` after lr (Momentum's are by name)."""

    def __init__(self, params, lr, *args):
        super().__init__(params, 2 * lr, beta=args[0] if args else 0.9)


@pytest.mark.parametrize("sizes", [(3,), (3, 2), (3, 4, 2), (3, 5, 4, 2)])
def test_a_subclass_taking_any_number_of_arguments_is_not_refused_its_parents_peers_order(sizes):
    """The parent's hint (Dense's: PyTorch's third is bias) is about the parent's own positional arguments;
    a subclass's ``__init__(self, *sizes)`` takes any number of them, which the hint refused."""
    layer = SquareDense(*sizes)
    assert (layer.weight.shape, layer.bias is not None) == ((sizes[0], sizes[-1]), True)
    model = xdl.nn.mlp(3, [4], 2)
    optimizer = DoubledMomentum(model, 0.1, 0.5)
    assert (optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["beta"]) == (0.2, 0.5)


DERIVED = ("n_models", "n_weights", "descriptions")  # (a stack's, `xdl.nn.stacked.DERIVED`)


def small_stack():
    return xdl.nn.stack([xdl.nn.mlp(3, [4], 2, batch_norm=True) for _ in range(3)])


@pytest.mark.parametrize("name", DERIVED)
@pytest.mark.parametrize("value", [5, 0, [], None])
def test_a_stacks_derived_attributes_are_refused_by_name(name, value):
    """``stack.n_models = 5`` on a stack of 3 made model(4) fail with "list index out of range" and
    set_random_key ask for 5 seeds; n_weights moved the weight columns; descriptions other models."""
    stack = small_stack()
    before = getattr(stack, name)
    with pytest.raises(AttributeError, match=rf"Stacked: {name} is what the stack of 3 models was made of, not a "
                                             r"setting: stack the models again \(xdl.nn.stack\)"):
        setattr(stack, name, value)
    assert getattr(stack, name) == before


def test_a_stack_copied_keeps_what_it_was_made_of():
    stack = small_stack()
    for copied in (copy.deepcopy(stack), pickle.loads(pickle.dumps(stack))):
        assert [getattr(copied, name) for name in DERIVED] == [getattr(stack, name) for name in DERIVED]
        assert xdl.nn.describe(copied.model(2)) == xdl.nn.describe(stack.model(2))


# PyTorch's F.dropout(input, p, training, inplace)
@pytest.mark.parametrize("inplace", [False, True])
def test_the_dropout_function_takes_its_mask_and_key_by_name_only(inplace):
    x = xdl.tensor(np.ones((4, 3)))
    with pytest.raises(TypeError, match=r"takes from 2 to 3 positional arguments but 4 were given"):
        xdl.dropout(x, 0.5, True, inplace)
    kept = xdl.dropout(x, 0.5, True, mask=np.eye(4, 3, dtype=bool))
    np.testing.assert_array_equal(kept.numpy(), 2 * np.eye(4, 3))


# a schedule's peers' positional orders past the arguments taken here: (maker, its positional names here, the
# values, the peer's rest) and the keywords here the message names
SCHEDULE_ORDERS = [
    # PyTorch's StepLR(optimizer, step_size, gamma, last_epoch): step_decay(lr0, 30) was factor=30, a rate growing
    # 30× every 10 counts; and the order of xdl before (factor, every)
    (schedules.step_decay, ("lr0",), (0.1,), (30, 0.1, -1), ("every=", "factor=")),
    (schedules.step_decay, ("lr0",), (0.1,), (0.5, 10), ("every=", "factor=")),
    # Keras's InverseTimeDecay(initial_learning_rate, decay_steps, decay_rate, staircase, name)
    (schedules.inverse_time, ("lr0",), (0.1,), (1000, 0.5, False, "decay"), ("decay_rate=",)),
    (schedules.staircase, ("lr0",), (0.1,), (1000, 0.5, True, "decay"), ("decay_rate=", "interval=")),
    (schedules.staircase, ("lr0",), (0.1,), (2, 10), ("decay_rate=", "interval=")),  # (where 2 was decay_rate)
    # Keras's ExponentialDecay(initial_learning_rate, decay_steps, decay_rate, staircase, name); PyTorch's
    # ExponentialLR(optimizer, gamma, last_epoch)
    (schedules.exponential, ("lr0",), (0.1,), (1000, 0.96, True, "decay"), ("base=",)),
    (schedules.exponential, ("lr0",), (0.1,), (0.9, -1), ("base=",)),
    # Keras's CosineDecay(initial_learning_rate, decay_steps, alpha, name, warmup_target, warmup_steps): alpha is a
    # fraction of lr0, not min_lr; PyTorch's CosineAnnealingLR(optimizer, T_max, eta_min, last_epoch)
    (schedules.cosine, ("lr0", "total"), (0.1, 1000), (0.1, "decay", 0.2, 10), ("min_lr=",)),
    (schedules.cosine, ("lr0", "total"), (0.1, 1000), (1e-4, -1), ("min_lr=",)),
]
SCHEDULE_CASES = [(maker, names, given + extra, keywords) for maker, names, given, rest, keywords in SCHEDULE_ORDERS
                  for extra in prefixes(rest)]


@pytest.mark.parametrize("maker, names, args, keywords", SCHEDULE_CASES)
def test_a_schedule_refuses_a_peers_positional_setting_naming_its_keyword_here(maker, names, args, keywords):
    """cosine(0.1, 1000, 0.1) in Keras's order (alpha=0.1, a tenth of lr0) ended at min_lr 0.1, lr0 itself;
    staircase(0.1, 1000, 0.5) was decay_rate 1000 at a step every 0.5 counts: each silently another schedule."""
    plural = "" if len(names) == 1 else "s"
    said = (f"{maker.__name__}() takes {len(names)} positional argument{plural} ({', '.join(names)}) "
            f"but {len(args)} were given; ")
    with pytest.raises(TypeError, match=re.escape(said)) as refused:
        maker(*args)
    assert re.search(r"(PyTorch|Keras)'s (second|third), ", str(refused.value))
    assert all(keyword in str(refused.value) for keyword in keywords)


def keras_cosine(count, initial_learning_rate, decay_steps, alpha=0.0):
    """Keras's CosineDecay (no warm-up):
    α₀·((1 − alpha)·(1 + cos(π·min(count, decay_steps)/decay_steps))/2 + alpha)."""
    return initial_learning_rate * ((1 - alpha) * (1 + np.cos(np.pi * min(count, decay_steps) / decay_steps)) / 2
                                    + alpha)


def pytorch_cosine(count, lr0, T_max, eta_min=0.0):
    """PyTorch's CosineAnnealingLR up to T_max: eta_min + (α₀ − eta_min)·(1 + cos(π·count/T_max))/2."""
    return eta_min + (lr0 - eta_min) * (1 + np.cos(np.pi * count / T_max)) / 2


# a schedule's call with its peer's keywords: (maker, by position, the peer's keywords, the peer's rate at a count
# given those (keywords and α₀), the counts compared); α₀ is lr0 = 0.1
COUNTS = range(41)
SCHEDULE_PEER_KEYWORDS = [
    # PyTorch's StepLR(optimizer, step_size, gamma)
    (schedules.step_decay, (0.1,), dict(step_size=3, gamma=0.5), lambda c: 0.1 * 0.5 ** (c // 3), COUNTS),
    (schedules.step_decay, (0.1,), dict(gamma=0.2), lambda c: 0.1 * 0.2 ** (c // 10), COUNTS),
    # Keras's ExponentialDecay(initial_learning_rate, decay_steps, decay_rate, staircase=True)
    (schedules.step_decay, (0.1,), dict(decay_steps=4, decay_rate=0.5), lambda c: 0.1 * 0.5 ** (c // 4), COUNTS),
    (schedules.step_decay, (), dict(initial_learning_rate=0.1, decay_rate=0.96, decay_steps=7),
     lambda c: 0.1 * 0.96 ** (c // 7), COUNTS),
    # PyTorch's ExponentialLR(optimizer, gamma); Keras's ExponentialDecay(initial_learning_rate, decay_steps,
    # decay_rate)
    (schedules.exponential, (0.1,), dict(gamma=0.9), lambda c: 0.1 * 0.9**c, COUNTS),
    (schedules.exponential, (0.1,), dict(decay_steps=4, decay_rate=0.5), lambda c: 0.1 * 0.5 ** (c / 4), COUNTS),
    (schedules.exponential, (), dict(initial_learning_rate=0.1, decay_rate=0.96, decay_steps=10),
     lambda c: 0.1 * 0.96 ** (c / 10), COUNTS),
    # Keras's InverseTimeDecay(initial_learning_rate, decay_steps, decay_rate, staircase)
    (schedules.inverse_time, (0.1,), dict(decay_steps=4, decay_rate=0.5), lambda c: 0.1 / (1 + 0.5 * c / 4), COUNTS),
    (schedules.inverse_time, (), dict(initial_learning_rate=0.1, decay_steps=1, decay_rate=2.0),
     lambda c: 0.1 / (1 + 2.0 * c), COUNTS),
    (schedules.staircase, (0.1,), dict(decay_rate=0.5, decay_steps=3), lambda c: 0.1 / (1 + 0.5 * (c // 3)), COUNTS),
    (schedules.staircase, (), dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=1.0),
     lambda c: 0.1 / (1 + (c // 7)), COUNTS),
    # Keras's CosineDecay(initial_learning_rate, decay_steps, alpha): alpha a fraction of α₀
    (schedules.cosine, (0.1, 10), dict(alpha=0.2), lambda c: keras_cosine(c, 0.1, 10, 0.2), COUNTS),
    (schedules.cosine, (0.1,), dict(decay_steps=20, alpha=0.5), lambda c: keras_cosine(c, 0.1, 20, 0.5), COUNTS),
    (schedules.cosine, (), dict(initial_learning_rate=0.1, decay_steps=20), lambda c: keras_cosine(c, 0.1, 20), COUNTS),
    # PyTorch's CosineAnnealingLR(optimizer, T_max, eta_min): periodic past T_max, where xdl's holds
    (schedules.cosine, (0.1,), dict(T_max=10), lambda c: pytorch_cosine(c, 0.1, 10), range(11)),
    (schedules.cosine, (0.1,), dict(T_max=30, eta_min=0.01), lambda c: pytorch_cosine(c, 0.1, 30, 0.01), range(31)),
    (schedules.cosine, (0.1, 30), dict(eta_min=0.05), lambda c: pytorch_cosine(c, 0.1, 30, 0.05), range(31)),
    (schedules.inverse_sqrt, (), dict(initial_learning_rate=0.1), lambda c: 0.1 / max(c, 1) ** 0.5, COUNTS),
    # Keras's CosineDecay(warmup_steps=…), its steps here (the ramp xdl's)
    (schedules.warmup, (0.1,), dict(warmup_steps=4), lambda c: 0.1 * min(1, (c + 1) / 4), COUNTS),
    (schedules.warmup, (), dict(warmup_target=0.1, warmup_steps=4), lambda c: 0.1 * min(1, (c + 1) / 4), COUNTS),
]


@pytest.mark.parametrize("maker, args, keywords, peer, counts", SCHEDULE_PEER_KEYWORDS)
def test_a_schedule_refuses_a_peers_keyword_and_the_way_it_says_gives_the_peers_rates(maker, args, keywords, peer,
                                                                                       counts):
    """step_decay(0.1, step_size=30, gamma=0.1), cosine(0.1, 100, alpha=0.1), exponential(0.1, decay_steps=…,
    decay_rate=…) met Python's bare "unexpected keyword argument": each says the keyword here and, where the
    meaning differs, the value from the peer's (Keras's alpha is a fraction of α₀); done as said, each peer's
    keyword in turn, the schedule gives the peer's rates."""
    given, names = dict(keywords), {"lr0": 0.1, **keywords}
    for _ in range(len(keywords) + 1):  # each peer's keyword is refused in turn, until the call is xdl's
        try:
            schedule = maker(*args, **given)
            break
        except TypeError as refused:
            said = re.fullmatch(rf"{maker.__name__}\(\) got an unexpected keyword argument '(\w+)'; "
                                r"(PyTorch|Keras)('s \w+(\(staircase=True\))?)?'s \1: give (\w+)=(.+?) here( \(.+\))?",
                                str(refused))
            assert said, str(refused)
            name, keyword, value = said.group(1), said.group(5), said.group(6)
            assert name in keywords and keyword in inspect.signature(maker).parameters
            del given[name]
            given[keyword] = eval(value, {}, names)
    else:
        raise AssertionError(f"{maker.__name__}(*{args}, **{given}) still refused")
    np.testing.assert_allclose([schedule(c) for c in counts], [peer(c) for c in counts], rtol=1e-12)


def keras_decay(kind: str, staircase: bool, lr0: float, decay_steps: int, decay_rate: float):
    """Keras's InverseTimeDecay ("inverse_time": α₀ / (1 + decay_rate·p)) or ExponentialDecay ("exponential":
    α₀·decay_rate^p) at a count, p = count / decay_steps, ⌊count / decay_steps⌋ with staircase=True."""
    def rate(count):
        p = count // decay_steps if staircase else count / decay_steps
        return lr0 / (1 + decay_rate * p) if kind == "inverse_time" else lr0 * decay_rate**p
    return rate


def made_as_said(maker, given: dict, names: dict):
    """``maker(**given)`` (Keras's keywords), its refusals followed until a call is taken: a keyword whose way is
    this maker's ("give decay_rate=decay_rate / decay_steps here") is replaced by it; Keras's staircase is left out
    where the message says its value is this maker ("staircase=True is this maker", "staircase=False is
    inverse_time itself"), else the call it names is made. The first refusal of a call with staircase= names it."""
    given = dict(given)
    for turn in range(len(given) + 1):
        try:
            return maker(**given)
        except TypeError as refused:
            said = str(refused)
        name = re.match(rf"{maker.__name__}\(\) got an unexpected keyword argument '(\w+)'; ", said).group(1)
        assert name in given and (turn or name == "staircase" or "staircase" not in given), said
        if name == "staircase":
            value = f"staircase={given.pop('staircase')}"
            way = re.search(rf"{value} is (this maker: leave it out|\w+ itself: leave it out|(\w+\(.+?\)) here)", said)
            assert way, said
            if way.group(2):  # another maker: the call the message writes, in Keras's names
                return eval(way.group(2), vars(schedules), names)
            continue
        keyword, value = re.search(r"'s \w+: give (\w+)=(.+?) here", said).groups()
        assert keyword in inspect.signature(maker).parameters
        del given[name]
        given[keyword] = eval(value, {}, names)
    raise AssertionError(f"{maker.__name__}(**{given}) still refused")


# Keras's decays with staircase=: (the maker here, Keras's decay it is the peer of)
STAIRCASE_MAKERS = [(schedules.inverse_time, "inverse_time"), (schedules.staircase, "inverse_time"),
                    (schedules.exponential, "exponential"), (schedules.step_decay, "exponential")]
STAIRCASE_CASES = [(maker, kind, staircase, decay_steps, decay_rate) for maker, kind in STAIRCASE_MAKERS
                   for staircase in (True, False) for decay_steps in (1, 3, 7) for decay_rate in (0.5, 0.96)]


@pytest.mark.parametrize("maker, kind, staircase, decay_steps, decay_rate", STAIRCASE_CASES)
def test_keras_staircase_is_refused_naming_the_maker_here_and_the_way_said_gives_keras_rates(
        maker, kind, staircase, decay_steps, decay_rate):
    """``inverse_time(lr0, …, staircase=True)`` in Keras's InverseTimeDecay's words met Python's bare "unexpected
    keyword argument 'staircase'": the staircase forms are other makers here (staircase, step_decay). It is
    refused first — before the keywords whose way is this maker's, in whatever order given —, and the way it says
    (for staircase=True and False, from each of the four makers) gives Keras's rates."""
    names = dict(lr0=0.1, initial_learning_rate=0.1, decay_steps=decay_steps, decay_rate=decay_rate)
    keras = dict(initial_learning_rate=0.1, decay_steps=decay_steps, decay_rate=decay_rate, staircase=staircase)
    for order in (list(keras), list(reversed(keras))):
        schedule = made_as_said(maker, {name: keras[name] for name in order}, names)
        np.testing.assert_allclose([schedule(c) for c in COUNTS],
                                   [keras_decay(kind, staircase, 0.1, decay_steps, decay_rate)(c) for c in COUNTS],
                                   rtol=1e-12)


@pytest.mark.parametrize("keywords", [dict(initial_learning_rate=0.0), dict(initial_learning_rate=0.01),
                                      dict(initial_learning_rate=0.0, warmup_target=0.1)])
def test_warmup_refuses_keras_initial_learning_rate_saying_where_its_ramp_starts(keywords):
    """``warmup(…, initial_learning_rate=…)`` (Keras's CosineDecay's start of its warm-up) met Python's bare
    "unexpected keyword argument": it is refused saying the ramp here starts at schedule / steps; with Keras's
    other warm-up keywords, those are answered first (their way is a keyword here)."""
    with pytest.raises(TypeError, match=r"^warmup\(\) got an unexpected keyword argument '(\w+)'; Keras's "
                                        r"CosineDecay's \1: ") as refused:
        schedules.warmup(0.1, 4, **keywords)
    if "warmup_target" in keywords:
        assert "'warmup_target'" in str(refused.value)
    else:
        assert "rises from schedule / steps at count 0" in str(refused.value)


@pytest.mark.parametrize("schedule, maker, settings", [
    ("exponential", schedules.exponential, dict(decay_base=0.9)),
    ("inverse_sqrt", schedules.inverse_sqrt, dict(decay_k=0.5)),
    ("staircase", schedules.staircase, dict(decay_rate=0.3, decay_every=3)),
    ("step", schedules.step_decay, dict(decay_factor=0.5, decay_every=3))])
def test_a_maker_given_train_configs_names_says_its_own_and_the_way_said_gives_the_configs_rates(schedule, maker,
                                                                                                 settings):
    """``inverse_sqrt(lr0, decay_k=0.5)`` — TrainConfig's (xdl train's --decay-k) name of the maker's k — met Python's
    bare "unexpected keyword argument"; each of TrainConfig's names is refused saying the maker's, and the call as
    said gives the rates of TrainConfig's schedule."""
    given, refused_names = dict(settings), []
    for _ in range(len(settings) + 1):
        try:
            made = maker(0.1, **given)
            break
        except TypeError as refused:
            said = re.fullmatch(rf"{maker.__name__}\(\) got an unexpected keyword argument '(\w+)'; TrainConfig's \1: "
                                r"give (\w+)=\1 here", str(refused))
            assert said, str(refused)
            refused_names.append(said.group(1))
            given[said.group(2)] = given.pop(said.group(1))
    assert sorted(refused_names) == sorted(set(settings) - {"decay_rate"})  # (decay_rate: the maker's own name too)
    built = TrainConfig(schedule=schedule, lr=0.1, epochs=40, **settings).build_schedule()
    assert [made(c) for c in range(40)] == [built(c) for c in range(40)]


def keras_cosine_warmup(count, initial_learning_rate, decay_steps, alpha, warmup_target, warmup_steps):
    """Keras's CosineDecay with a warm-up: from initial_learning_rate up to warmup_target over warmup_steps
    counts, then the cosine from warmup_target over decay_steps more (floor alpha·warmup_target)."""
    if count < warmup_steps:
        return initial_learning_rate + (warmup_target - initial_learning_rate) * count / warmup_steps
    return keras_cosine(count - warmup_steps, warmup_target, decay_steps, alpha)


@pytest.mark.parametrize("warmup_steps", [1, 4, 10])
@pytest.mark.parametrize("decay_steps, alpha, warmup_target", [(5, 0.0, 0.1), (20, 0.1, 0.1), (20, 0.0, 1.0),
                                                                (5, 0.5, 1.0)])
def test_keras_cosine_warm_up_is_refused_naming_warmup_and_the_way_said_decays_as_keras_after_the_ramp(
        warmup_steps, decay_steps, alpha, warmup_target):
    """``cosine(lr0, total, warmup_steps=…, warmup_target=…)`` (Keras's CosineDecay's) met Python's bare error: a
    warm-up is warmup's here. Made as the message writes it, the schedule is Keras's from the ramp's end on, and
    on the ramp xdl's (warmup's: base·(count + 1)/steps)."""
    for keyword in ("warmup_steps", "warmup_target"):
        with pytest.raises(TypeError) as refused:
            schedules.cosine(0.0, decay_steps, **{keyword: warmup_steps if keyword == "warmup_steps" else 0.1})
        said = str(refused.value)
        assert said.startswith(f"cosine() got an unexpected keyword argument '{keyword}'; Keras's CosineDecay's "
                               f"{keyword}: a warm-up is warmup's here: ")
    schedule_said = re.search(r"(warmup\(lambda count: .*?, warmup_steps\)) with base = (cosine\([^()]*\))", said)
    names = dict(warmup_steps=warmup_steps, decay_steps=decay_steps, alpha=alpha, warmup_target=warmup_target)
    names["base"] = eval(schedule_said.group(2), vars(schedules), names)
    schedule = eval(schedule_said.group(1), {**vars(schedules), **names})  # (the lambda reads base as a global)
    counts = range(warmup_steps + decay_steps + 5)
    expected = [keras_cosine_warmup(c, 0.0, decay_steps, alpha, warmup_target, warmup_steps) if c >= warmup_steps
                else warmup_target * (c + 1) / warmup_steps for c in counts]
    np.testing.assert_allclose([schedule(c) for c in counts], expected, rtol=1e-12, atol=1e-15)


def test_a_whole_keras_cosine_call_with_a_warm_up_is_refused_first_for_the_warm_up():
    """``cosine(initial_learning_rate=…, decay_steps=…, alpha=…, warmup_target=…, warmup_steps=…)``, Keras's
    whole call in any order: the warm-up is named first, as Keras's staircase=True is — its way makes lr0
    warmup_target and min_lr alpha * warmup_target, where "give lr0=initial_learning_rate here" (the rate the
    ramp starts from, 0 by Keras's habit: refused as lr0) and "min_lr=alpha * lr0" led elsewhere."""
    keras = dict(initial_learning_rate=0.0, decay_steps=100, alpha=0.1, warmup_target=0.1, warmup_steps=10)
    orders = list(itertools.permutations(keras))
    for order in orders:
        with pytest.raises(TypeError) as refused:
            schedules.cosine(**{name: keras[name] for name in order})
        assert re.match(r"cosine\(\) got an unexpected keyword argument 'warmup_(steps|target)'; Keras's CosineDecay's "
                        r"warmup_\w+: a warm-up is warmup's here: ", str(refused.value)), (order, str(refused.value))
    assert len(orders) == 120


# each schedule by name, with its name as xdl recorded it when its settings were taken by position too: a
# checkpoint records it (a resume compares it), so one written before still resumes
SCHEDULES_BY_NAME = [
    (lambda: schedules.inverse_time(0.1, decay_rate=0.5), "inverse_time(0.1, 0.5)", lambda c: 0.1 / (1 + 0.5 * c)),
    (lambda: schedules.exponential(0.1, base=0.9), "exponential(0.1, 0.9)", lambda c: 0.1 * 0.9**c),
    (lambda: schedules.inverse_sqrt(0.1, 2.0), "inverse_sqrt(0.1, 2.0)", lambda c: 0.2 / max(c, 1) ** 0.5),
    (lambda: schedules.staircase(0.1, decay_rate=0.5, interval=3), "staircase(0.1, 0.5, 3)",
     lambda c: 0.1 / (1 + 0.5 * (c // 3))),
    (lambda: schedules.step_decay(0.1, factor=0.5, every=3), "step_decay(0.1, 0.5, 3)",
     lambda c: 0.1 * 0.5 ** (c // 3)),
    (lambda: schedules.step_decay(0.1), "step_decay(0.1, 0.5, 10)", lambda c: 0.1 * 0.5 ** (c // 10)),
    (lambda: schedules.cosine(0.1, 10, min_lr=0.01), "cosine(0.1, 10, 0.01)",
     lambda c: 0.01 + 0.09 * (1 + np.cos(np.pi * min(c, 10) / 10)) / 2),
    (lambda: schedules.warmup(schedules.cosine(0.1, 10), 3), "warmup(cosine(0.1, 10, 0.0), 3)",
     lambda c: 0.1 * (1 + np.cos(np.pi * min(c, 10) / 10)) / 2 * min(1, (c + 1) / 3)),
]


@pytest.mark.parametrize("make, recorded, formula", SCHEDULES_BY_NAME)
def test_a_schedules_settings_by_name_are_as_given_and_it_is_named_as_before(make, recorded, formula):
    schedule = make()
    assert repr(schedule) == recorded and repr(pickle.loads(pickle.dumps(schedule))) == recorded
    np.testing.assert_allclose([schedule(c) for c in range(40)], [formula(c) for c in range(40)], rtol=1e-12)


def test_a_constructor_of_ones_own_taking_any_keyword_gets_pytorchs_and_keras_keywords_itself():
    """A layer or rule of one's own whose constructor takes ``**options`` may take any keyword, PyTorch's and
    Keras's too: they reach it, no hint refuses them first."""
    class Tagged(xdl.nn.Module):
        def __init__(self, **options):
            super().__init__()
            self.options = dict(options)

        def forward(self, x):
            return x

    class Noted(xdl.optim.SGD):
        def __init__(self, params, **options):
            super().__init__(params, lr=0.1)
            self.options = dict(options)

    layer_keywords = {"device": "cpu", "inplace": True, "name": "t", "trainable": False, "input_shape": (3,)}
    assert Tagged(**layer_keywords).options == layer_keywords
    rule_keywords = {"foreach": True, "clipnorm": 1.0, "global_clipnorm": 1.0, "momentum": 0.9, "learning_rate": 1}
    assert Noted(xdl.nn.mlp(2, [2], 1), **rule_keywords).options == rule_keywords
