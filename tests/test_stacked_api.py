"""The stacked models' API at its edges (`xdl.nn.stack`, `StackedOptimizer`, `stacked_softmax_cross_entropy`,
`ManyTrainer.stop_model`): what it cannot do is refused by name, before anything changes."""

import contextlib
import pickle
import re

import numpy as np
import pytest

import xdl
from conftest import OtherBackend, memory_mapped
from xdl.config import TrainConfig
from xdl.flat import pack
from xdl.nn import Dense, Module, Sequential, StackError, stack
from xdl.optim import SGD, Adam, Momentum, StackedOptimizer, param_groups
from xdl.train import Callback, fit_many
from xdl.train.many import ManyTrainer

RNG = np.random.default_rng(0)
X, Y = RNG.standard_normal((32, 4)), RNG.integers(0, 3, 32)


def models(k=2, dtype=np.float64):
    out = []
    for seed in range(k):
        xdl.seed(seed)
        out.append(xdl.nn.mlp(4, [8], 3).astype(dtype))
    return out


def step(stacked, optimizer):
    optimizer.zero_grad()
    xdl.stacked_softmax_cross_entropy(stacked(X), Y).sum().backward()
    optimizer.step()


def assert_still_stacked(stacked):
    """Every parameter is still a view of the stack's (K, P) buffer, and a step of a stacked optimizer
    moves what `model(k)` takes out (nothing was copied out of the buffer)."""
    assert all(np.shares_memory(p.data, stacked.data) and np.shares_memory(p.grad, stacked.grad)
               for p in stacked.parameters())
    step(stacked, StackedOptimizer(stacked, [SGD(m, lr=0.5) for m in models(stacked.n_models)]))
    with stacked.evaluating():
        out = stacked(X).numpy()
    for k in range(stacked.n_models):
        np.testing.assert_allclose(stacked.model(k).eval()(X).numpy(), out[:, k], rtol=1e-12)


# -- finding 1: a stack's parameters are never packed out of its buffer -------------------------
@pytest.mark.parametrize("use", [
    lambda st: SGD(st, lr=0.1),
    lambda st: Adam([{"params": st.parameters()[:1]}], lr=0.1),
    lambda st: Sequential(st),
    lambda st: Sequential(Dense(4, 4), st),
    lambda st: pack(st.parameters()),
])
def test_an_ordinary_optimizer_or_an_enclosing_model_is_refused_and_the_stack_stays_whole(use):
    stacked = stack(models())
    before = [(p.data, p.grad) for p in stacked.parameters()]
    with pytest.raises(TypeError, match=r"belongs to a Stacked model .*xdl.optim.StackedOptimizer .*not inside "
                                        r"another model"):
        use(stacked)
    assert all(p.data is data and p.grad is grad for p, (data, grad) in zip(stacked.parameters(), before))
    assert_still_stacked(stacked)


def test_a_module_holding_a_stack_is_not_moved_half_way():
    class Holder(Module):
        def __init__(self, stacked):
            super().__init__()
            self.stacked = stacked

    stacked = stack(models())
    holder = Holder(stacked)
    with pytest.raises(TypeError, match=r"belongs to a Stacked model"):
        holder.to(OtherBackend())
    assert all(p.backend is stacked.backend for p in stacked.parameters())
    assert_still_stacked(stacked)


# -- finding 2: the per-model optimizers' parameters, groups, flags; frozen parameters ---------
def by_name(model):
    return dict(model.named_parameters())


@pytest.mark.parametrize("make, match", [
    (lambda m: SGD([{"params": [by_name(m)["0.weight"]], "lr": 0.0},
                    {"params": [by_name(m)["2.weight"], by_name(m)["0.bias"], by_name(m)["2.bias"]], "lr": 1.0}]),
     r"optimizers\[0\]: groups 0 and 1 both hold weights, with lr 0.0 and 1.0; .* one for the other parameters"),
    (lambda m: SGD([{"params": [by_name(m)["0.weight"], by_name(m)["0.bias"]], "lr": 0.001},
                    {"params": [by_name(m)["2.weight"], by_name(m)["2.bias"]], "lr": 1.0}], lr=0.1),
     r"optimizers\[0\]: groups 0 and 1 both hold weights, with lr 0.001 and 1.0"),
    (lambda m: SGD([by_name(m)["2.weight"], by_name(m)["2.bias"]], lr=0.5),
     r"optimizers\[0\] holds 2 parameters \(27 values\), a model of the stack 4 \(67 values\): .*\(SGD\(model\)"),
    (lambda m: SGD(m, lr=0.1, check_finite=True), r"optimizers\[0\] has check_finite=True"),
])
def test_what_a_stacked_optimizer_cannot_represent_is_refused(make, match):
    ms = models()
    stacked = stack(ms)
    with pytest.raises(ValueError, match=match):
        StackedOptimizer(stacked, [make(m) for m in ms])


def test_groups_that_split_weights_from_the_rest_or_agree_are_taken_as_each_model_alone():
    def layered(m):  # per layer, with the same settings: one region
        p = by_name(m)
        return Momentum([{"params": [p["0.weight"], p["0.bias"]]}, {"params": [p["2.weight"], p["2.bias"]]}], lr=0.1)

    for make, regions in ((layered, 1), (lambda m: Momentum(param_groups(m, 0.01), lr=0.1), 2)):
        ms = models()
        stacked = stack(ms)
        together = StackedOptimizer(stacked, [make(m) for m in ms])
        assert len(together.regions) == regions
        alone = [make(m) for m in ms]
        for _ in range(3):
            step(stacked, together)
            for m, opt in zip(ms, alone):
                opt.zero_grad()
                xdl.losses.SoftmaxCrossEntropy()(m(X), Y).backward()
                opt.step()
        for k, m in enumerate(ms):
            for (name, a), b in zip(stacked.model(k).named_parameters(), m.parameters()):
                np.testing.assert_allclose(a.data, b.data, rtol=1e-12, atol=1e-15, err_msg=name)


def test_a_frozen_parameter_stays_frozen_in_the_stack_and_a_stacked_optimizer_refuses_it():
    ms = models()
    for m in ms:
        m.layers[0].weight.requires_grad = False
    stacked = stack(ms)
    assert not stacked.layers[0].weight.requires_grad and stacked.layers[2].weight.requires_grad
    assert [p.requires_grad for p in stacked.model(1).parameters()] == [p.requires_grad for p in ms[1].parameters()]
    with pytest.raises(ValueError, match=r"stacked: parameter\(s\) 0.weight are frozen \(requires_grad False\)"):
        StackedOptimizer(stacked, [SGD(m, lr=0.1) for m in ms])
    ms[1].layers[0].weight.requires_grad = True
    with pytest.raises(StackError, match=r"parameter 0.weight is trainable in model 1, frozen in model 0"):
        stack(ms)


def test_a_stacked_optimizer_given_its_arguments_swapped_or_an_ordinary_model_says_which_comes_first():
    """StackedOptimizer(optimizers, stacked) failed inside with "'list' object has no attribute
    'n_models'", and an ordinary Sequential in place of the stack with the same words."""
    ms = models()
    stacked = stack(ms)
    with pytest.raises(TypeError, match=r"^stacked must be a Stacked model \(xdl.nn.stack\(models\)\), got list: "
                                        r"StackedOptimizer\(stacked, optimizers\), the stack first"):
        StackedOptimizer([SGD(m, lr=0.1) for m in ms], stacked)
    with pytest.raises(TypeError, match=r"^stacked must be a Stacked model .*got Sequential"):
        StackedOptimizer(ms[0], [SGD(ms[0], lr=0.1)])


def test_a_rule_of_ones_own_is_stacked_only_once_its_update_says_it_takes_k_models():
    """A rule written for one model reads h["lr"][0]: stacked, every model stepped at model 0's rate,
    unsaid. Its class declares ``stacks = True`` once its update takes (K, n) rows and (K,) settings;
    a subclass that writes an update of its own declares it again."""
    class SignSGD(xdl.optim.Optimizer):
        def __init__(self, params=None, lr=0.01):
            super().__init__(params, lr=lr)

        def update(self, flat, state, h, step, steps_done=None):
            flat.data -= h["lr"][0] * np.sign(flat.grad)

    class LoudAdam(Adam):
        def update(self, flat, state, h, step, steps_done=None):
            super().update(flat, state, h, step, steps_done)

    ms = models()
    stacked = stack(ms)
    with pytest.raises(TypeError, match=r"^optimizers: SignSGD's update \(SignSGD.update\) is not declared to take "
                                        r"stacked models' \(K, n\) rows and \(K,\) settings: once it does, set stacks "
                                        r"= True on SignSGD"):
        StackedOptimizer(stacked, [SignSGD(m, lr=0.1 * (k + 1)) for k, m in enumerate(ms)])
    with pytest.raises(TypeError, match=r"LoudAdam's update \(LoudAdam.update\) is not declared"):
        StackedOptimizer(stacked, [LoudAdam(m) for m in ms])

    class StackedSignSGD(SignSGD):  # K rates as a (K, 1) column: each row at its own
        stacks = True

        def update(self, flat, state, h, step, steps_done=None):
            flat.data -= h["lr"].reshape(-1, *([1] * (flat.data.ndim - 1))) * np.sign(flat.grad)

    class QuietAdam(Adam):  # Adam's update, inherited: stacks as Adam
        pass

    assert StackedOptimizer(stacked, [QuietAdam(m) for m in ms]).rule.stacks
    StackedOptimizer(stacked, [StackedSignSGD(m, lr=0.1 * (k + 1)) for k, m in enumerate(ms)])


# -- finding 3: stop_model's arguments ------------------------------------------------------------
class StopAt(Callback):
    def __init__(self, k, status):
        self.k, self.status, self.seen = k, status, None

    def on_epoch_end(self, trainer, record):
        if trainer.epoch == 1:
            with pytest.raises(ValueError) as error:
                trainer.stop_model(self.k, self.status)
            self.seen = (str(error.value), list(trainer.status), trainer.optimizer.frozen.tolist())


@pytest.mark.parametrize("k, status, match", [
    (-1, "stopped", r"stop_model: k must be a model's index, an integer in \[0, 1\], got -1"),
    (2, "stopped", r"got 2"),
    (True, "stopped", r"got True"),
    (1, "training", r"stop_model: status must be one of 'stopped', 'pruned', got 'training'"),
    (1, "bogus", r"got 'bogus'"),
])
def test_stop_model_checks_its_arguments_before_anything_changes(k, status, match):
    X, y = xdl.datasets.digits()
    stop = StopAt(k, status)
    config = dict(hidden=[8], epochs=3, patience=0, progress=False)
    results = fit_many([TrainConfig(seed=0, **config), TrainConfig(seed=1, **config)], X[:200], y[:200],
                       callbacks=[stop])
    message, statuses, frozen = stop.seen
    assert re.search(match, message)
    assert statuses == ["training", "training"] and frozen == [False, False]
    assert [r.status for r in results] == ["completed", "completed"]
    assert [len(r.history) for r in results] == [3, 3]


# -- finding 4: a stacked optimizer's state is checked whole before any of it is written ----------
def adam_state():
    ms = models(3, np.float32)
    stacked = stack(ms)
    opt = StackedOptimizer(stacked, [Adam(m, lr=0.01) for m in ms])
    return opt, opt.state_dict()


@pytest.mark.parametrize("change, match", [
    (lambda sd: dict(sd, frozen=[True]), r"optimizer state frozen must be 3 flags \(one per model\), got \[True\]"),
    (lambda sd: dict(sd, frozen=[1, 0, 0]), r"optimizer state frozen\[0\] must be True or False, got 1"),
    (lambda sd: dict(sd, t=-3), r"optimizer state t must be an integer ≥ 0 \(the steps taken\), got -3"),
    (lambda sd: dict(sd, t=2.5), r"optimizer state t must be an integer ≥ 0"),
    (lambda sd: dict(sd, settings=[{**sd["settings"][0], "lr": [np.nan, 0.1, 0.1]}]),
     r"optimizer state settings\[0\], model 0: lr must be a finite number ≥ 0, got nan"),
    (lambda sd: dict(sd, settings=[{**sd["settings"][0], "lr": [0.1]}]),
     r"optimizer state settings\[0\]: lr must be 3 values \(one per model\), got \[0.1\]"),
    (lambda sd: dict(sd, settings=[{**sd["settings"][0], "beta2": [0.9, 0.9, 1.5]}]),
     r"optimizer state settings\[0\], model 2: beta2 must be in \[0, 1\)"),
    (lambda sd: dict(sd, settings=[{**sd["settings"][0], "eps": [1e-8, 1e-60, 1e-8]}]),
     r"optimizer state settings\[0\], model 1: eps is 1e-60, 0 in float32"),
    (lambda sd: dict(sd, settings=[{k: v for k, v in sd["settings"][0].items() if k != "eps"}]),
     r"optimizer state settings\[0\] must hold lr, beta1, beta2, eps, weight_decay"),
    (lambda sd: {k: v for k, v in sd.items() if k != "frozen"}, r"optimizer state has no frozen"),
    # these two were "does not fit this stacked optimizer (regions or buffers differ)", naming neither
    (lambda sd: dict(sd, settings=sd["settings"] * 2),
     r"optimizer state has 2 sets of settings for 1 part of each row: expected a list of one set .* or two "
     r"\(set apart, as by xdl.optim.param_groups\(model, weight_decay\)"),
    (lambda sd: dict(sd, state={"m": sd["state"]["m"]}),
     r"optimizer state holds buffers \['m'\], Adam keeps \['m', 'v'\]"),
])
def test_a_bad_state_is_refused_before_anything_is_written(change, match):
    opt, state = adam_state()
    opt.freeze(1)
    opt._state["m"][...] = 7  # what a half-done load would overwrite first
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(change(state))
    assert (opt._state["m"] == 7).all() and opt.t == 0
    assert opt.frozen.tolist() == [False, True, False] and opt.lr.tolist() == [0.01, 0.0, 0.01]


def test_a_good_state_loads_whole():
    opt, state = adam_state()
    opt.load_state_dict(dict(state, t=4, frozen=[False, True, False],
                             settings=[{**state["settings"][0], "lr": (0.1, 0.0, 0.3)}]))
    assert opt.t == 4 and opt.frozen.tolist() == [False, True, False] and opt.lr.tolist() == [0.1, 0.0, 0.3]
    # a setting as a NumPy array (the state through np.savez) was "lr must be 3 values, got array([3 values])"
    opt.load_state_dict(dict(state, settings=[{**state["settings"][0], "lr": np.array([0.2, 0.0, 0.4])}]))
    assert opt.lr.tolist() == [0.2, 0.0, 0.4]


# -- finding 9: set_lr names the model and refuses what is no rate ---------------------------------
@pytest.mark.parametrize("rates, match", [
    ([0.1, None], r"lr of model 1 must be a finite number ≥ 0, got None"),
    ([True, 0.1], r"lr of model 0 must be a finite number ≥ 0, got True"),
    ([0.1, np.nan], r"lr of model 1 must be a finite number ≥ 0, got nan"),
    ("0.1", r"lr of model 0 must be a finite number ≥ 0, got '0.1'"),
])
def test_set_lr_names_the_model_and_the_value(rates, match):
    ms = models()
    opt = StackedOptimizer(stack(ms), [SGD(m, lr=0.1) for m in ms])
    with pytest.raises(ValueError, match=match):
        opt.set_lr(rates)
    assert opt.lr.tolist() == [0.1, 0.1]
    opt.freeze(0)
    with pytest.raises(ValueError, match=r"lr of model 0 must be a number, got None"):
        opt.set_lr([None, 0.2])


def test_stack_refuses_a_model_sharing_layers_or_parameters():
    """KeyError 'weight' from inside stack, before; a Dropout used twice was stacked as two, its
    masks not those the model draws alone (a mask per call)."""
    layer, drop = Dense(3, 3), xdl.nn.Dropout(0.5)
    with pytest.raises(StackError, match=r"stack: models\[0\]'s layer 2 shares itself with layer 0 \(a layer used "
                                         r"twice, a tied weight\)"):
        stack([Sequential(layer, xdl.nn.ReLU(), layer)])
    with pytest.raises(StackError, match=r"layer 3 shares itself with layer 1"):
        stack([Sequential(Dense(3, 3), drop, Dense(3, 3), drop)])
    tied = Dense(3, 3)
    tied.weight = layer.weight
    with pytest.raises(StackError, match=r"layer 2 shares its parameters with layer 0"):
        stack([Sequential(layer, xdl.nn.ReLU(), tied)])
    relu = xdl.nn.ReLU()  # a stateless activation used twice (one self.relu, as PyTorch code has it): stacked
    models = [Sequential(Dense(3, 4), relu, Dense(4, 4), relu, Dense(4, 2)) for _ in range(2)]
    X = RNG.random((5, 3)).astype(np.float32)
    np.testing.assert_allclose(stack(models)(X).numpy()[:, 1], models[1](X).numpy(), rtol=1e-5, atol=1e-6)


# -- findings 5, 6: what stack takes ---------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda: [Dense(2, 3), Dense(2, 3)], r"stack: models\[0\] is a Dense; stack takes ordinary Sequential models"),
    (lambda: [Dense(2, 3)], r"stack: models\[0\] is a Dense"),
    (lambda: [Sequential(Dense(2, 3)), Dense(2, 3)], r"stack: models\[1\] is a Dense"),
    (lambda: [stack(models())], r"stack: models\[0\] is a Stacked"),
    (lambda: [xdl.nn.mlp(4, [8], 3), xdl.nn.mlp(4, [8], 3).to(OtherBackend())],
     r"stack: model 1 lives on backend 'otherlib', model 0 on 'numpy'"),
])
def test_stack_refuses_what_it_cannot_stack_by_name(make, match):
    with pytest.raises(StackError, match=match):
        stack(make())


@pytest.mark.parametrize("axis", [-1, 1, 0, -2])
def test_a_stacked_softmax_normalizes_each_models_own_axis(axis):
    """Softmax(axis=1) normalized across the K models in a stack (its activations are (B, K, C)):
    each model's outputs summed to 1.84, the models' to 1."""
    X = RNG.random((3, 4)).astype(np.float32)
    ms = []
    for seed in (1, 2):
        xdl.seed(seed)
        ms.append(Sequential(Dense(4, 3), xdl.nn.Softmax(axis=axis)))
    out = stack(ms)(X).numpy()
    for k, m in enumerate(ms):
        np.testing.assert_allclose(out[:, k], m(X).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(StackError, match=r"stack: Softmax\(axis=2\): a model's activations here are \(batch, "
                                         r"features\), axis 0 or 1"):
        stack([Sequential(Dense(4, 3), xdl.nn.Softmax(axis=2)) for _ in range(2)])


# -- finding 7: a standardizing stack takes each model's own input ---------------------------------
def test_a_standardizing_stack_takes_a_shared_or_a_per_model_input():
    layer = xdl.data.Standardizer().fit(RNG.random((10, 4))).layer()
    ms = [xdl.nn.mlp(4, [8], 3, standardize=layer) for _ in range(2)]
    stacked = stack(ms).eval()
    per_model = RNG.random((5, 2, 4)).astype(np.float32)
    out = stacked(per_model).numpy()
    for k, m in enumerate(ms):
        np.testing.assert_allclose(out[:, k], m.eval()(per_model[:, k]).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stacked(per_model[:, 0]).numpy()[:, 1], ms[1](per_model[:, 0]).numpy(), rtol=1e-5,
                               atol=1e-6)
    for shape in ((5, 3, 4), (5, 5)):
        with pytest.raises(ValueError, match=r"StackedStandardize: input of shape .*; expected \(B, 4\) or "
                                             r"\(B, 2, 4\)"):
            stacked(np.ones(shape, np.float32))


# -- the stacked loss checks shapes and dtype as the single-model op does -----------------------
@pytest.mark.parametrize("labels, error, match", [
    ([0.5, 1, 2, 0], TypeError, r"class indices must be integers, got dtype float64"),
    ([[0, 1, 0]] * 4, ValueError, r"labels \(B,\) class indices, got logits \(4, 2, 3\) and labels \(4, 3\)"),
    ([0, 1], ValueError, r"got logits \(4, 2, 3\) and labels \(2,\)"),
])
def test_stacked_softmax_cross_entropy_checks_its_labels_shape_and_dtype(labels, error, match):
    logits = xdl.tensor(RNG.standard_normal((4, 2, 3)))
    with pytest.raises(error, match=r"stacked_softmax_cross_entropy: .*" + match):
        xdl.stacked_softmax_cross_entropy(logits, labels)


@pytest.mark.parametrize("key", [((1, 2, 3), "a", 7), ((1, 2, 3), 0), (5, 0, 7), ((1.5, 2, 3), 0, 7),
                                 ((1, True, 3), 0, 7)])
def test_stacked_dropout_checks_its_key_as_dropout_does(key):
    """A key of another form failed inside the op ("not all arguments converted during string
    formatting", "'int' object is not iterable"), or a float seed drew seed 1's masks without a word."""
    x = xdl.tensor(np.ones((5, 3, 4)))
    with pytest.raises(ValueError, match=r"stacked_dropout: key must be \(seeds \(one integer per model\), stream, "
                                         r"step\) of integers, .*got " + re.escape(repr(key))):
        xdl.stacked_dropout(x, (0.2, 0.5, 0.0), key)


def test_stacked_dropout_takes_its_seeds_as_an_integer_array_too():
    """np.arange(K) as the K seeds drew their masks before the key's check, which refused all but a
    tuple or list; a float array is still refused."""
    x = xdl.tensor(np.ones((5, 3, 4)))
    np.testing.assert_array_equal(xdl.stacked_dropout(x, (0.2, 0.5, 0.0), (np.array([1, 2, 3]), 0, 7)).numpy(),
                                  xdl.stacked_dropout(x, (0.2, 0.5, 0.0), ((1, 2, 3), 0, 7)).numpy())
    with pytest.raises(ValueError, match=r"stacked_dropout: key must be \(seeds"):
        xdl.stacked_dropout(x, (0.2, 0.5, 0.0), (np.array([1.0, 2.0, 3.0]), 0, 7))


def test_stacked_softmax_cross_entropy_is_each_model_s_single_loss():
    logits = xdl.tensor(RNG.standard_normal((4, 2, 3)))
    expected = [xdl.softmax_cross_entropy(logits[:, k], np.array([0, 1, 2, 1])).item() for k in range(2)]
    for labels in ([0, 1, 2, 1], np.array([0, 1, 2, 1], np.uint8)):
        np.testing.assert_allclose(xdl.stacked_softmax_cross_entropy(logits, labels).numpy(), expected, rtol=1e-12)
    # bit for bit, in float32 too, at a batch long enough for NumPy's pairwise sums (a column's sum differed by
    # an ulp: the costs fit_many and a batched search record differed from each model's alone)
    z, y = (3 * RNG.standard_normal((1024, 3, 10))).astype(np.float32), RNG.integers(0, 10, 1024)
    alone = [xdl.softmax_cross_entropy(xdl.tensor(np.ascontiguousarray(z[:, k])), y).item() for k in range(3)]
    assert xdl.stacked_softmax_cross_entropy(xdl.tensor(z), y).numpy().tolist() == alone


def test_a_stack_assigned_into_a_model_or_a_model_holding_one_converted_is_refused_first():
    """An owning model would pack the stack's parameters into its buffer: refused before the stack is
    registered (the model keeps its layer) or any parameter converted."""
    st = stack([xdl.nn.mlp(4, [8], 3) for _ in range(2)])
    outer = xdl.nn.mlp(4, [8], 3)
    first = outer.layers[0]
    with pytest.raises(TypeError, match="belongs to a Stacked"):
        outer[0] = st
    assert outer.layers[0] is first and "0" in outer._modules and outer._modules["0"] is first

    class Holder(xdl.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

    holder = Holder(st)
    with pytest.raises(TypeError, match="belongs to a Stacked"):
        holder.astype(np.float64)
    assert st.dtype == np.float32 and all(np.shares_memory(p.data, st.data) for p in st.parameters())


@pytest.mark.parametrize("norms", [(None, 0.5, None), (1.0, 2.0, 3.0), (None, None, 0.25)])
def test_a_stacked_optimizer_prints_each_models_max_grad_norm_where_one_clips(norms):
    """An `Optimizer`'s repr shows its max_grad_norm; a StackedOptimizer's showed none of its K, on one line or
    on a part's each; one that clips no model shows none, as before."""
    ms = models(3)
    opt = StackedOptimizer(stack(ms), [SGD(m, lr=0.1, max_grad_norm=n) for m, n in zip(ms, norms)])
    assert repr(opt).endswith(f"; max_grad_norm={list(norms)!r})")
    opt.freeze(0)
    assert repr(opt).endswith(f"; max_grad_norm={list(norms)!r}; frozen: [0])")
    ms = models(3)
    opt = StackedOptimizer(stack(ms), [SGD(param_groups(m, 0.1), lr=0.1, max_grad_norm=n) for m, n in zip(ms, norms)])
    assert repr(opt).splitlines()[-2:] == [f"  max_grad_norm={list(norms)!r}", ")"]
    ms = models(3)
    assert "max_grad_norm" not in repr(StackedOptimizer(stack(ms), [SGD(m, lr=0.1) for m in ms]))


@pytest.mark.parametrize("copy_of", [lambda o: __import__("copy").deepcopy(o),
                                     lambda o: __import__("pickle").loads(__import__("pickle").dumps(o))])
def test_a_copied_stack_s_parameters_are_views_of_its_buffers(copy_of):
    st = stack([xdl.nn.mlp(4, [8], 3) for _ in range(2)])
    copied = copy_of(st)
    assert all(np.shares_memory(p.data, copied.data) and np.shares_memory(p.grad, copied.grad)
               for p in copied.parameters())
    np.testing.assert_array_equal(copied.data, st.data)
    X = np.ones((5, 4), np.float32)
    np.testing.assert_array_equal(copied.model(1).predict_outputs(X), st.model(1).predict_outputs(X))


@pytest.mark.parametrize("copy_of", [lambda o: __import__("copy").deepcopy(o),
                                     lambda o: __import__("pickle").loads(__import__("pickle").dumps(o)),
                                     memory_mapped])  # (a pair sent to a joblib worker: its state was read-only)
def test_a_stack_and_its_optimizer_copied_together_train_as_the_originals(copy_of):
    from xdl.optim import Adam, StackedOptimizer

    models = [xdl.nn.mlp(4, [8], 3) for _ in range(2)]
    st = stack(models)
    pairs = [(st, StackedOptimizer(st, [Adam(m, lr=lr) for m, lr in zip(models, (1e-2, 3e-2))]))]
    pairs.append(copy_of(pairs[0]))
    for s, o in pairs:
        s.grad[...] = 1.0
        o.step()
    np.testing.assert_array_equal(pairs[1][0].data, pairs[0][0].data)
    assert not np.array_equal(pairs[1][0].data, stack(models).data)  # (it moved)


def test_a_stack_runs_its_layers_settings_as_they_are_now_and_standardizes_integers_in_float64():
    from xdl.data import Standardizer
    from xdl.nn import Dense, LeakyReLU, Sequential, stack

    models = []
    for _ in range(2):
        xdl.seed(0)
        models.append(Sequential(Dense(3, 4), LeakyReLU(0.01), Dense(4, 2)))
    for m in models:
        m[1].slope = 0.5  # (the stack was built with the slope it was made with)
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(stack(models)(x).numpy()[:, 0], models[0](x).numpy(), rtol=1e-6)
    big = (2**25 + np.arange(12).reshape(4, 3)).astype(np.int64)
    model = xdl.nn.mlp(3, [4], 2, standardize=Standardizer().fit(big).layer())
    np.testing.assert_allclose(stack([model])(xdl.tensor(big)).numpy()[:, 0], model(xdl.tensor(big)).numpy(),
                               rtol=1e-5)


def test_assigning_lr_sets_every_models_rate_or_one_each():
    """``opt.lr = 0.01`` in a fit_many callback failed after its epoch: "property 'lr' has no setter"."""
    ms = models()
    opt = StackedOptimizer(stack(ms), [SGD(m, lr=0.1) for m in ms])
    opt.lr = 0.01
    assert opt.lr.tolist() == [0.01, 0.01]
    opt.lr = [0.2, 0.3]
    assert opt.lr.tolist() == [0.2, 0.3]
    with pytest.raises(ValueError, match=r"lr of model 1 must be a finite number ≥ 0, got None"):
        opt.lr = [0.1, None]


def test_a_stack_refuses_a_layer_appended_and_zeroes_its_gradients_as_a_model_does():
    """Sequential's append, inherited, added a layer the stack ran and ``model(k)`` (built from each
    model's description) did not have: the stack computed what none of its models did, unsaid.
    zero_grad takes PyTorch's set_to_none, as Module's and Optimizer's do."""
    stacked = stack(models())
    optimizer = StackedOptimizer(stacked, [SGD(m, lr=0.5) for m in models()])
    for grow in (lambda: stacked.append(xdl.nn.ReLU()), lambda: stacked.extend([xdl.nn.ReLU()])):
        with pytest.raises(TypeError, match=r"^Stacked: a layer cannot be added to a stack of 2 models"):
            grow()
    with pytest.raises(TypeError, match=r"^Stacked: a layer of a stack of 2 models cannot be replaced"):
        stacked[-1] = xdl.nn.Dense(8, 3)  # (it was taken: an ordinary layer among the stacked ones)
    with pytest.raises(TypeError, match=r"^Stacked: a layer of a stack of 2 models cannot be replaced"):
        setattr(stacked, "1", xdl.nn.Sigmoid())  # PyTorch's replace-by-name (it was taken: model(k) kept its ReLU)
    assert len(stacked) == len(stacked.model(0).layers)
    stacked.grad[...] = 1
    stacked.zero_grad(set_to_none=True)
    optimizer.zero_grad(set_to_none=True)
    assert not stacked.grad.any()
    assert_still_stacked(stacked)


def test_a_stacked_step_takes_a_closure_as_an_optimizers_does():
    """``StackedOptimizer.step(closure)``: the closure's cost returned, after the same update."""
    stacked, other = xdl.nn.stack(models()), xdl.nn.stack(models())
    a = StackedOptimizer(stacked, [SGD(m, lr=0.5) for m in models()])
    b = StackedOptimizer(other, [SGD(m, lr=0.5) for m in models()])

    def closure():
        a.zero_grad()
        cost = xdl.stacked_softmax_cross_entropy(stacked(X), Y).sum()
        cost.backward()
        return cost

    cost = a.step(closure)
    step(other, b)
    assert np.isfinite(cost.item())
    np.testing.assert_array_equal(stacked.data, other.data)


def test_set_lr_keeps_a_frozen_models_rate_0_and_freeze_with_clear_state_zeroes_its_state():
    """set_lr gives a frozen model rate 0 whatever it is given for it (its gradient row is zeroed, but Adam's
    moments still move a weight at any other rate), and freeze(k, clear_state=True) leaves model k's state 0."""
    ms = models(3)
    stacked = stack(ms)
    opt = StackedOptimizer(stacked, [Adam(m, lr=0.01) for m in ms])
    step(stacked, opt)
    opt.freeze(1)
    opt.set_lr([0.1, 0.2, 0.3])
    assert opt.lr.tolist() == [0.1, 0.0, 0.3]
    frozen = stacked.data[1].copy()
    step(stacked, opt), step(stacked, opt)
    np.testing.assert_array_equal(stacked.data[1], frozen)
    opt.freeze(2, clear_state=True)
    assert all((opt.state_dict()["state"][name][2] == 0).all() for name in ("m", "v"))
    assert all(np.abs(opt.state_dict()["state"][name][0]).max() > 0 for name in ("m", "v"))  # (model 0's kept)


def test_a_frozen_models_optimizer_state_stays_as_freeze_left_it_and_unfreeze_goes_on_from_it():
    """freeze(k) zeroed model k's gradient row and rate, but the shared update still ran over its state:
    v ← β·v + (1 − β)·(0 + wd·p) a step, so after 3 frozen steps its momentum was 0.73 of what it was and
    `unfreeze` went on from that, not from "its state as freeze left it". Here model 1, paused, then
    unfrozen, takes the steps its own Momentum takes when it is not stepped meanwhile."""
    ms = models(2)
    stacked = stack(ms)
    opt = StackedOptimizer(stacked, [Momentum(m, lr=0.1, beta=0.9, weight_decay=0.01) for m in ms])
    alone = Momentum(ms[1], lr=0.1, beta=0.9, weight_decay=0.01)
    grads = [RNG.standard_normal(stacked.grad.shape) for _ in range(6)]

    def stacked_step(g):
        stacked.grad[...] = g
        opt.step()

    def alone_step(g):
        ms[1].zero_grad()
        for name, p in ms[1].named_parameters():
            p.grad[...] = g[1, stacked._columns()[name]].reshape(p.shape)
        alone.step()

    stacked_step(grads[0]), alone_step(grads[0])
    opt.freeze(1)
    data, v = stacked.data[1].copy(), opt._state["v"][1].copy()
    for g in grads[1:4]:
        stacked_step(g)
    np.testing.assert_array_equal(stacked.data[1], data)
    np.testing.assert_array_equal(opt.state_dict()["state"]["v"][1], v)  # (what a checkpoint keeps)
    opt.unfreeze(1, 0.1)
    for g in grads[4:]:
        stacked_step(g), alone_step(g)
    np.testing.assert_array_equal(stacked.data[1], np.concatenate([p.data.reshape(-1) for _, p in ms[1].flat_order()]))


@pytest.mark.parametrize("rate", [1e39, 1e-46])
def test_a_rate_outside_the_stacks_dtype_is_refused_as_an_optimizers(rate):
    """A float32 stack took set_lr([1e39, …]): the update rounded it to inf and model 0's weights were
    −inf after one step (fit_many then said the model diverged), and 1e-46 was 0 — where the model's own
    optimizer refuses both (``opt.lr = 1e39``). Refused by name, before any rate changes."""
    ms = models(2, np.float32)
    opt = StackedOptimizer(stack(ms), [SGD(m, lr=0.1) for m in ms])
    with pytest.raises(ValueError, match=r"lr is .*float32's positive range"):
        SGD(ms[0], lr=0.1).lr = rate
    with pytest.raises(ValueError, match=r"^lr of model 0 is .*: a learning rate must be 0 or a number in float32's"):
        opt.set_lr([rate, 0.2])
    opt.freeze(1)
    with pytest.raises(ValueError, match=r"^lr of model 1 is .*float32's positive range"):
        opt.unfreeze(1, rate)
    state = opt.state_dict()
    with pytest.raises(ValueError, match=r"settings\[0\], model 0: lr is .*float32's positive range"):
        opt.load_state_dict(dict(state, settings=[{**state["settings"][0], "lr": [rate, 0.0]}]))
    assert opt.lr.tolist() == [np.float64(0.1), 0.0] and opt.frozen.tolist() == [False, True]


def test_set_row_checks_the_whole_row_before_writing_and_row_takes_the_models_indices():
    """A row without its statistics wrote the weights, then raised KeyError 'buffers' (one with too
    few buffers wrote what zip gave); row(3) said NumPy's "index 3 is out of bounds", and row(-1)
    was taken where model(-1) and freeze(-1) refuse it."""
    xdl.seed(0)
    ms = [xdl.nn.mlp(4, [8], 3, batch_norm=True) for _ in range(2)]
    stacked = stack(ms)
    good, before = stacked.row(0), stacked.row(1)
    for row in ({"data": good["data"]}, {**good, "buffers": good["buffers"][:1]}, {**good, "data": good["data"][:-1]}):
        with pytest.raises(ValueError, match=r"^set_row: row must be what row\(k\) gives"):
            stacked.set_row(1, row)
        after = stacked.row(1)
        np.testing.assert_array_equal(after["data"], before["data"])
        for a, b in zip(after["buffers"], before["buffers"], strict=True):
            np.testing.assert_array_equal(a, b)
    for call in (lambda: stacked.row(2), lambda: stacked.row(-1), lambda: stacked.set_row(-1, good),
                 lambda: stacked.model_state(2), lambda: stacked.description(2), lambda: stacked.description(-1)):
        with pytest.raises(IndexError, match="a stack of 2 models has models 0 to 1"):
            call()
    stacked.set_row(1, good)
    np.testing.assert_array_equal(stacked.row(1)["data"], good["data"])


def test_set_row_takes_a_row_of_host_arrays(backend):
    """A row kept as NumPy arrays (a checkpoint's, `to_numpy`'s) goes back into a stack on either backend:
    on cupy, ``data[k] = host_row`` is CuPy's `fill` of the row's view, which refused it ("non-scalar
    numpy.ndarray cannot be used for fill")."""
    stacked = stack([xdl.nn.mlp(4, [8], 3, batch_norm=True) for _ in range(2)])
    to_numpy = backend.to_numpy
    row = stacked.row(0)
    host = {"data": to_numpy(row["data"]), "buffers": [to_numpy(b) for b in row["buffers"]]}
    stacked.set_row(1, host)
    after = stacked.row(1)
    np.testing.assert_array_equal(to_numpy(after["data"]), host["data"])
    for a, b in zip(after["buffers"], host["buffers"], strict=True):
        np.testing.assert_array_equal(to_numpy(a), b)



def test_set_row_writes_the_models_statistics_as_well_as_its_weights():
    """Mutation testing (set_row's statistics left unwritten): the rows of the tests above held the statistics of
    new batch-norm layers, 0s and 1s in both models, so a row put back without them passed. Here each model's differ:
    the row of model 0 put into model 1 makes model 1 hold model 0's weights and statistics, and model 0 keeps both."""
    xdl.seed(0)
    ms = [xdl.nn.mlp(4, [8], 3, batch_norm=True) for _ in range(2)]
    for k, m in enumerate(ms):
        batch_norm = m.layers[1]
        batch_norm.running_mean[...] = np.arange(8) + 10 * k
        batch_norm.running_var[...] = 1 + np.arange(8) / 4 + k
    stacked = stack(ms)
    zero = stacked.row(0)
    assert not np.array_equal(zero["buffers"][0], stacked.row(1)["buffers"][0])  # (what the test is about)
    stacked.set_row(1, zero)
    for k in (0, 1):
        row = stacked.row(k)
        np.testing.assert_array_equal(row["data"], zero["data"])
        for a, b in zip(row["buffers"], zero["buffers"], strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("first", [lambda k: xdl.nn.Dropout(0.2 + 0.1 * k),
                                   lambda k: xdl.nn.BatchNorm(4, momentum=0.5 + 0.2 * k, dtype=np.float64)])
def test_models_opening_on_dropout_or_batch_norm_stack_and_train_each_as_alone(first):
    """A model whose first layer is Dropout or BatchNorm (input dropout, normalized inputs) stacked,
    then raised at its first training pass: the shared (B, n) input reached the per-model layer
    ("stacked_dropout: input (32, 4) ... expected (B, K, C)", "not enough values to unpack")."""
    ms = []
    for k in range(2):
        xdl.seed(k)
        ms.append(Sequential(first(k), Dense(4, 3, dtype=np.float64)))
    alone, stacked = ms, stack(ms)  # (the models' values copied in: each goes on alone)
    stacked.set_random_key([5, 6])
    for k, m in enumerate(alone):
        m.set_random_key(5 + k)
    stacked.zero_grad()
    out = stacked(X)
    xdl.stacked_softmax_cross_entropy(out, Y).sum().backward()
    for k, m in enumerate(alone):
        m.zero_grad()
        own = m(X)
        xdl.softmax_cross_entropy(own, Y).backward()
        np.testing.assert_allclose(out.numpy()[:, k], own.numpy(), rtol=1e-12, atol=1e-14)
        grads = dict(stacked.named_parameters())
        for name, p in m.named_parameters():
            np.testing.assert_allclose(grads[name].grad[k], p.grad, rtol=1e-12, atol=1e-14)
    with stacked.evaluating():
        assert stacked(X).shape == (32, 2, 3)


def test_models_opening_on_batch_norm_or_dropout_take_x_as_each_model_alone_takes_it():
    """X itself reaches the stacked BatchNorm or Dropout where a model opens on one: integer
    features (pixel values), which BatchNorm alone takes in its dtype, raised "Cannot cast ufunc
    'subtract' output"; a wrong width "reshape: cannot reshape a tensor of shape (2, 4) into (10,)";
    and integers given to Dropout "Unsupported dtype dtype('int64') for random"."""
    Xi = RNG.integers(0, 255, (32, 4))
    ms = []
    for k in range(2):
        xdl.seed(k)
        ms.append(Sequential(xdl.nn.BatchNorm(4, momentum=0.5 + 0.2 * k), Dense(4, 3)))
    alone, stacked = ms, stack(ms)
    out = stacked(Xi)
    for k, m in enumerate(alone):
        own = m(Xi)
        assert out.dtype == own.dtype == np.float32
        np.testing.assert_allclose(out.numpy()[:, k], own.numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"^StackedBatchNorm: input of shape \(32, 5\); expected \(B, 4\) or "
                                         r"\(B, 2, 4\) for 2 models of 4 features$"):
        stacked(RNG.standard_normal((32, 5)))
    stacked = stack([Sequential(xdl.nn.Dropout(0.5), Dense(4, 3)) for _ in range(2)])
    with pytest.raises(TypeError, match=r"^StackedDropout: expected a floating input, got int64"):
        stacked(Xi)


def test_a_stacked_optimizer_prints_its_rule_and_each_models_settings():
    """It printed as ``<xdl.optim.stacked.StackedOptimizer object at 0x…>``; an `Optimizer` prints its
    rule and settings. One line where the weights and the others share their settings, one a part
    where `param_groups` set them apart; frozen models named."""
    ms = models(3)
    opt = StackedOptimizer(stack(ms), [Adam(m, lr=lr) for m, lr in zip(ms, (0.001, 0.003, 0.01))])
    assert repr(opt) == ("StackedOptimizer(Adam of 3 models; lr=[0.001, 0.003, 0.01], beta1=[0.9, 0.9, 0.9], "
                         "beta2=[0.999, 0.999, 0.999], eps=[1e-08, 1e-08, 1e-08], weight_decay=[0.0, 0.0, 0.0])")
    opt.freeze(1)
    assert "lr=[0.001, 0.0, 0.01]" in repr(opt) and repr(opt).endswith("; frozen: [1])")
    ms = models(2)
    opt = StackedOptimizer(stack(ms), [Momentum(param_groups(m, 0.1), lr=0.01, nesterov=True) for m in ms])
    assert repr(opt).splitlines() == [
        "StackedOptimizer(Momentum of 2 models:",
        "  weights: lr=[0.01, 0.01], beta=[0.9, 0.9], nesterov=True, weight_decay=[0.1, 0.1]",
        "  other parameters: lr=[0.01, 0.01], beta=[0.9, 0.9], nesterov=True, weight_decay=[0.0, 0.0]",
        ")"]


@pytest.mark.parametrize("copy_of", [lambda o: __import__("copy").deepcopy(o),
                                     lambda o: __import__("pickle").loads(__import__("pickle").dumps(o))])
def test_a_stacked_optimizer_of_two_regions_copied_with_its_stack_trains_as_the_original(copy_of):
    """Weights with a weight decay, the other parameters without (`param_groups`): two regions of each
    row, each made a view of its own columns again in the copy — the second's start is the first's width."""
    from xdl.optim import AdamW, StackedOptimizer, param_groups

    models = [xdl.nn.mlp(4, [8], 3) for _ in range(2)]
    st = stack(models)
    pairs = [(st, StackedOptimizer(st, [AdamW(param_groups(m, wd), lr=1e-2) for m, wd in zip(models, (0.1, 0.3))]))]
    assert len(pairs[0][1].regions) == 2
    pairs.append(copy_of(pairs[0]))
    for s, o in pairs:
        s.grad[...] = 1.0
        o.step()
    np.testing.assert_array_equal(pairs[1][0].data, pairs[0][0].data)
    assert all(np.shares_memory(r.data, pairs[1][0].data) for r in pairs[1][1].regions)


def test_an_unkeyed_stacked_dropout_scales_what_it_keeps_as_each_models_dropout():
    """A stack training outside fit_many (no key): model k's activations are 0 or x/(1 − rate_k), about
    rate_k of them 0, as its own inverted Dropout makes them."""
    from xdl.nn import Dropout, Sequential

    st = stack([Sequential(Dropout(0.25)), Sequential(Dropout(0.5))]).train()
    out = st(np.full((2000, 8), 2.0, np.float32)).numpy()
    for k, rate in enumerate((0.25, 0.5)):
        kept = out[:, k] != 0
        np.testing.assert_allclose(out[:, k][kept], 2.0 / (1 - rate), rtol=1e-6)
        assert abs(1 - kept.mean() - rate) < 0.02


def test_one_seed_keys_every_models_dropout_as_that_seed_given_to_each():
    from xdl.nn import Dropout, Sequential

    st = stack([Sequential(Dropout(0.25)), Sequential(Dropout(0.5))]).train()
    x = np.ones((64, 8), np.float32)
    st.set_random_key(7, 3)
    one = st(x).numpy()
    st.set_random_key([7, 7], 3)
    np.testing.assert_array_equal(one, st(x).numpy())


@pytest.mark.parametrize("k", [2, -1, True, 1.0])
def test_freeze_and_unfreeze_refuse_an_index_of_no_model(k):
    """An index of no model (-1 included, as `Stacked.row` refuses it) is refused by name, nothing changed."""
    from xdl.optim import Adam, StackedOptimizer

    models = [xdl.nn.mlp(4, [8], 3) for _ in range(2)]
    st = stack(models)
    opt = StackedOptimizer(st, [Adam(m, lr=1e-2) for m in models])
    with pytest.raises(IndexError, match=r"^freeze: model .* is not one of the 2 models \(0 to 1\)"):
        opt.freeze(k)
    with pytest.raises(IndexError, match=r"^unfreeze: model .* is not one of the 2 models \(0 to 1\)"):
        opt.unfreeze(k, 1e-2)
    assert not opt.frozen.any() and opt.lr.tolist() == [1e-2, 1e-2]


def test_an_optimizer_state_of_another_number_of_models_is_refused_not_broadcast():
    """A (1, P) moment loaded into a stack of 2 models was spread over both rows by NumPy's broadcast."""
    from xdl.optim import Adam, StackedOptimizer

    models = [xdl.nn.mlp(4, [8], 3) for _ in range(2)]
    st = stack(models)
    opt = StackedOptimizer(st, [Adam(m, lr=1e-2) for m in models])
    state = opt.state_dict()
    width = st.data.shape[1]
    state["state"]["m"] = np.ones((1, width))
    with pytest.raises(ValueError, match=rf"^optimizer state 'm' has shape \(1, {width}\), this one \(2, {width}\)"):
        opt.load_state_dict(state)
    assert not opt.state_dict()["state"]["m"].any()


def test_a_frozen_models_row_stays_as_it_is_whatever_its_gradient():
    """freeze zeroes the model's gradient row before each update: an inf there (a diverged model's)
    left its weights NaN through Adam's moments, at a rate of 0 (0·NaN)."""
    from xdl.optim import Adam, StackedOptimizer

    models = [xdl.nn.mlp(4, [8], 3) for _ in range(2)]
    st = stack(models)
    opt = StackedOptimizer(st, [Adam(m, lr=1e-2) for m in models])
    opt.freeze(0)
    before = st.data.copy()
    st.grad[0] = np.inf
    st.grad[1] = 1.0
    opt.step()
    np.testing.assert_array_equal(st.data[0], before[0])
    assert not np.array_equal(st.data[1], before[1])


def test_stack_refuses_models_of_another_number_of_layers():
    """A model with a layer more (an activation, no parameters) was stacked as model 0's layers: the
    stack computed what model(1), rebuilt from its own layers, does not."""
    from xdl.nn import Dense, ReLU, Sequential

    with pytest.raises(StackError, match=r"^model 1 has 3 layers, model 0 has 2"):
        stack([Sequential(Dense(4, 3), ReLU()), Sequential(Dense(4, 3), ReLU(), ReLU())])


def test_a_batch_takes_the_largest_seed():
    assert ManyTrainer([TrainConfig(hidden=[4])], seed=2**64 - 1).seed == 2**64 - 1
    with pytest.raises(ValueError, match="seed"):
        ManyTrainer([TrainConfig(hidden=[4])], seed=2**64)


# -- a model taken out carries the stack's settings as they are now ---------------------------------------
def random_models(rng, k: int, n_in: int) -> list:
    """K models of one random architecture (an opening Standardize, Dropout or BatchNorm or none; dense layers,
    each maybe followed by batch norm, an activation, maybe dropout; maybe a Softmax), each with its own rates,
    momenta, running statistics and weights."""
    from xdl.nn import BatchNorm, Dropout, LeakyReLU, ReLU, Sigmoid, Softmax, Standardize, Tanh

    plan, width = [], n_in
    opening = rng.choice(["none", "std", "drop", "bn"])
    if opening != "none":
        plan.append((opening, width))
    for _ in range(rng.integers(1, 3)):
        plan.append(("dense", width, width := int(rng.integers(2, 6))))
        plan += [("bn", width)] * (rng.random() < 0.5) + [("act", int(rng.integers(4)))]
        plan += [("drop", width)] * (rng.random() < 0.6)
    plan.append(("dense", width, int(rng.integers(2, 4))))
    plan += [("softmax",)] * (rng.random() < 0.3)
    activations = [ReLU, Tanh, Sigmoid, lambda: LeakyReLU(0.01)]
    out = []
    for model in range(k):
        xdl.seed(model)
        layers = []
        for kind, *sizes in plan:
            if kind == "bn":
                layer = BatchNorm(sizes[0], momentum=float(rng.uniform(0, 0.99)), dtype=np.float64)
                layer.running_mean[...] = rng.normal(size=sizes[0])
                layer.running_var[...] = rng.uniform(0.5, 2, sizes[0])
            else:
                layer = {"std": lambda: Standardize(sizes[0], rng.normal(size=sizes[0]), rng.uniform(0.5, 2, sizes[0])),
                         "drop": lambda: Dropout(float(rng.choice([0.0, 0.1, 0.3, 0.5]))),
                         "dense": lambda: Dense(*sizes, dtype=np.float64),
                         "act": lambda: activations[sizes[0]](), "softmax": Softmax}[kind]()
            layers.append(layer)
        out.append(Sequential(*layers).astype(np.float64))
    return out


def set_on_the_stack(rng, stacked) -> None:
    """Settings set by hand on the stack, at random: rates, momenta (one or one per model), ε, a slope, a frozen
    parameter, a layer or the whole stack in evaluation mode."""
    k = stacked.n_models
    for layer in stacked.layers:
        name = type(layer).__name__
        if name == "StackedDropout" and rng.random() < 0.6:
            layer.rates = rng.choice([0.0, 0.2, 0.4, 0.6], k)
        if name == "StackedBatchNorm" and rng.random() < 0.6:
            layer.momentum = float(rng.uniform(0, 0.99)) if rng.random() < 0.5 else rng.uniform(0, 0.99, k)
        if name == "StackedBatchNorm" and rng.random() < 0.4:
            layer.eps = float(rng.choice([1e-3, 1e-1]))
        if name == "LeakyReLU" and rng.random() < 0.6:
            layer.slope = float(rng.uniform(0.05, 0.5))
        if layer.parameters() and rng.random() < 0.2:
            layer.parameters()[0].requires_grad = False
        if rng.random() < 0.15:
            layer.eval()
    if rng.random() < 0.2:
        stacked.eval()


def assert_each_model_taken_out_computes_as_in_the_stack(stacked, take, x, seeds):
    """``take(k)`` (model k taken out) computes model k's outputs of the stack in the modes as set and in
    evaluation, keyed by model k's seed, and leaves the running statistics the stack's training pass leaves."""
    for evaluating in (False, True):
        copied, taken = pickle.loads(pickle.dumps(stacked)), [take(k) for k in range(stacked.n_models)]
        copied.set_random_key(seeds, 3)
        with copied.mode(False) if evaluating else contextlib.nullcontext():
            out = copied(x).numpy()
        for k, model in enumerate(taken):
            assert [m.training for _, m in model.named_modules()] == [m.training for _, m in stacked.named_modules()]
            assert [p.requires_grad for p in model.parameters()] == [p.requires_grad for p in stacked.parameters()]
            model.set_random_key(seeds[k], 3)
            with model.mode(False) if evaluating else contextlib.nullcontext():
                np.testing.assert_allclose(model(x).numpy(), out[:, k], rtol=1e-10, atol=1e-12)
            after = copied.model(k).state_dict()
            for name, array in model.state_dict().items():
                np.testing.assert_allclose(array, after[name], rtol=1e-10, atol=1e-12, err_msg=name)


def saved_and_loaded(model, directory):
    path = directory / "model.xdl"
    xdl.save(model, path)
    return xdl.load(path)


@pytest.mark.parametrize("seed", range(4))
def test_a_model_taken_out_carries_the_settings_set_on_the_stack_since(seed, tmp_path):
    """`Stacked.model(k)` rebuilt model k from its description at stacking time: rates, momenta, ε and slopes set
    on the stack since, and its modules' modes, were lost — the model taken out (and a pickled stack's, and the
    file xdl.save wrote of it) computed other outputs than model k inside the stack. 4 × 15 random cases."""
    rng = np.random.default_rng(seed)
    for _ in range(15):
        k, n_in = int(rng.integers(1, 4)), int(rng.integers(2, 5))
        stacked = stack(random_models(rng, k, n_in))
        set_on_the_stack(rng, stacked)
        x, seeds = rng.normal(size=(6, n_in)), [int(s) for s in rng.integers(0, 1000, k)]
        assert_each_model_taken_out_computes_as_in_the_stack(stacked, stacked.model, x, seeds)
        copied = pickle.loads(pickle.dumps(stacked))
        assert_each_model_taken_out_computes_as_in_the_stack(stacked, copied.model, x, seeds)
        assert_each_model_taken_out_computes_as_in_the_stack(
            stacked, lambda j: saved_and_loaded(stacked.model(j), tmp_path), x, seeds)


def test_the_description_of_model_k_of_a_stack_set_nothing_on_is_model_ks():
    """`Stacked.description(k)` reads each layer's settings back from the stack: nothing set on it since,
    they are model k's (`describe`) — a Softmax(axis=1), stacked along the stack's last axis, keeps its axis 1."""
    from xdl.nn import LeakyReLU, Softmax, describe

    rng = np.random.default_rng(7)
    cases = [random_models(rng, int(rng.integers(1, 4)), int(rng.integers(2, 5))) for _ in range(20)]
    cases.append([Sequential(Dense(3, 4, dtype=np.float64), LeakyReLU(0.2), Dense(4, 2, dtype=np.float64),
                             Softmax(axis=1)) for _ in range(2)])
    for ms in cases:
        stacked = stack(ms)
        assert [stacked.description(k) for k in range(len(ms))] == [describe(m) for m in ms]


def test_a_per_column_momentum_is_refused_where_a_models_columns_differ():
    """A model's BatchNorm has one momentum: K·C per-column momenta that differ within a model ran in the stack,
    and model(k) took out another (its description's)."""
    stacked = stack([Sequential(xdl.nn.BatchNorm(3, momentum=m), Dense(3, 2)) for m in (0.5, 0.9)])
    layer = stacked.layers[0]
    with pytest.raises(ValueError, match=re.escape("model 1's 3 columns differ: [0.2, 0.2, 0.3]")):
        layer.momentum = [0.5, 0.5, 0.5, 0.2, 0.2, 0.3]
    assert layer.momentum.tolist() == [0.5, 0.5, 0.5, 0.9, 0.9, 0.9]  # (as it was)
    layer.momentum = [0.1, 0.1, 0.1, 0.7, 0.7, 0.7]
    assert [stacked.model(k).layers[0].momentum for k in range(2)] == [0.1, 0.7]


def test_stack_takes_the_models_modes_predictions_and_columns_and_model_k_gives_them_back():
    """The stack started in training mode whatever its models' modes (a model in evaluation came back out
    training, and the stack dropped units it did not), and kept no frame columns (model(k) lost them)."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        ms = random_models(rng, int(rng.integers(1, 4)), 3)
        evaluating = [i for i in range(len(ms[0])) if rng.random() < 0.3]
        for m in ms:
            for i in evaluating:
                m[i].eval()
            m.predicts, m.feature_names_in_ = "values", ("a", "b", "c")
        stacked = stack(ms)
        x = rng.normal(size=(5, 3))
        stacked.set_random_key([3] * len(ms), 1)
        out = stacked(x).numpy()
        for k, m in enumerate(ms):
            taken = stacked.model(k)
            assert [t.training for _, t in taken.named_modules()] == [t.training for _, t in m.named_modules()]
            assert (taken.predicts, taken.feature_names_in_) == ("values", ("a", "b", "c"))
            m.set_random_key(3, 1)
            np.testing.assert_allclose(out[:, k], m(x).numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("change,match", [
    (lambda m: m[1].eval(), "layer 1 is in evaluation mode in model 1, in training mode in model 0"),
    (lambda m: m.eval(), "the model is in evaluation mode in model 1"),
    (lambda m: setattr(m, "predicts", "values"), "model 1 predicts values, model 0 classes"),
    (lambda m: setattr(m, "feature_names_in_", ("a", "b", "c", "d")),
     r"model 1 was fitted on columns \['a', 'b', 'c', 'd'\], model 0 on no data frame"),
])
def test_stack_refuses_models_whose_modes_predictions_or_columns_differ(change, match):
    ms = models(2)
    ms[0].predicts = "classes"  # (None is classes too)
    change(ms[1])
    with pytest.raises(StackError, match=match):
        stack(ms)


# -- a stacked parameter's .data or .grad rebound by hand: written into the stack's buffers ------------------------
def rebound_value(rng, p, values):
    """``values`` as a user rebinds them: an array of the stack's dtype or another, a Tensor, or an array computed
    from the parameter's own (PyTorch's ``p.data = p.data * 2``)."""
    kind = rng.integers(4)
    if kind == 3:
        values[...] = p.data * 2 - 0.5
    return [values, values.astype(np.float32), xdl.tensor(values), values.copy()][kind]


def squares(out):
    return (out * out).sum()


@pytest.mark.parametrize("seed", range(8))
def test_a_stacked_parameters_data_rebound_by_hand_is_what_the_forward_the_state_and_the_step_read(seed):
    rng = np.random.default_rng(seed)
    originals = random_models(rng, int(rng.integers(1, 4)), 3)
    stacked = stack(originals).eval()  # (masks and batch statistics out of it: each model computes as alone)
    x = rng.normal(size=(6, 3))
    new = {}
    for name, p in stacked.named_parameters():
        if rng.random() < 0.7 or not new:
            new[name] = rng.normal(size=p.shape)
            p.data = rebound_value(rng, p, new[name])
    assert all(np.shares_memory(p.data, stacked.data) for p in stacked.parameters())
    state = stacked.state_dict()
    for name, values in new.items():
        np.testing.assert_allclose(state[name], values, rtol=1e-6, err_msg=name)  # (float32 given: rounded)
    alone = [stacked.model(k) for k in range(stacked.n_models)]  # each carries the values rebound
    out = stacked(x).numpy()
    for k, model in enumerate(alone):
        np.testing.assert_allclose(model(x).numpy(), out[:, k], rtol=1e-10, atol=1e-12)
    rates = rng.uniform(0.01, 0.1, stacked.n_models)
    optimizer = StackedOptimizer(stacked, [SGD(m, lr=lr) for m, lr in zip(originals, rates)])
    optimizer.zero_grad()
    squares(stacked(x)).backward()
    optimizer.step()
    for k, model in enumerate(alone):  # one step of each model alone, from the values rebound
        model_optimizer = SGD(model, lr=rates[k])
        model_optimizer.zero_grad()
        squares(model(x)).backward()
        model_optimizer.step()
        after = stacked.model(k).state_dict()
        for name, array in model.state_dict().items():
            np.testing.assert_allclose(after[name], array, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("seed", range(4))
def test_a_stacked_parameters_grad_rebound_by_hand_or_to_none_is_what_the_step_reads(seed):
    """PyTorch's ``p.grad = None`` loop before backward (the gradient then went into arrays of their own, and
    the step read the stack's zeros: nothing trained), or ``p.grad = array``: the stack's gradient buffer."""
    rng = np.random.default_rng(seed)
    originals = random_models(rng, 2, 3)
    x = rng.normal(size=(6, 3))
    stacks = [stack(originals).eval() for _ in range(2)]
    optimizers = [StackedOptimizer(s, [SGD(m, lr=0.05) for m in originals]) for s in stacks]
    stacks[0].grad[...] = rng.normal(size=stacks[0].grad.shape)  # (stale: set_to_none drops it)
    for p in stacks[0].parameters():
        p.grad = None
    optimizers[1].zero_grad()
    for s, o in zip(stacks, optimizers):
        squares(s(x)).backward()
        o.step()
    assert all(np.shares_memory(p.grad, stacks[0].grad) for p in stacks[0].parameters())
    np.testing.assert_array_equal(stacks[0].data, stacks[1].data)
    assert not np.array_equal(stacks[0].data, stack(originals).data)  # (it trained)
    given = {name: rng.normal(size=p.shape) for name, p in stacks[0].named_parameters()}
    before = {name: p.data.copy() for name, p in stacks[0].named_parameters()}
    for name, p in stacks[0].named_parameters():
        p.grad = given[name]
    optimizers[0].step()
    for name, p in stacks[0].named_parameters():  # SGD: w − lr·g, of the gradients given
        np.testing.assert_allclose(p.data, before[name] - 0.05 * given[name], rtol=1e-12, err_msg=name)


def assert_set_refused_leaving(stacked, holder, attribute, value, bound, buffers, message):
    """``holder.attribute = value`` raises a ValueError matching ``message``, and ``holder`` keeps ``bound`` and
    ``stacked``'s buffers their values (``buffers``: copies of its data and grad)."""
    with pytest.raises(ValueError, match=message):
        setattr(holder, attribute, value)
    assert getattr(holder, attribute) is bound
    np.testing.assert_array_equal(stacked.data, buffers[0])
    np.testing.assert_array_equal(stacked.grad, buffers[1])


@pytest.mark.parametrize("attribute", ["data", "grad"])
def test_a_stacked_parameter_rebound_to_another_shape_is_refused_before_anything_changes(attribute):
    stacked = stack(models(3))
    for name, p in stacked.named_parameters():
        bound, buffers = getattr(p, attribute), (stacked.data.copy(), stacked.grad.copy())
        wrong = [np.zeros(p.shape[1:]), np.zeros((*p.shape, 1)), np.zeros((4, *p.shape[1:])), np.zeros(()),
                 xdl.tensor(np.zeros(p.shape[1:]))] + [None] * (attribute == "data")
        for value in wrong:
            assert_set_refused_leaving(stacked, p, attribute, value, bound, buffers,
                                       rf"{attribute}: parameter '{name.split('.')[-1]}' of a Stacked "
                                       rf"model .* of shape \({p.shape[0]}, ")
    assert_still_stacked(stacked)


@pytest.mark.parametrize("seed", range(8))
def test_a_stacks_own_buffers_rebound_by_hand_are_written_into_them_and_the_stack_stays_one(seed):
    """``stacked.data = array`` / ``stacked.grad = …`` on the stack itself (not on a parameter) rebound its (K, P)
    buffers, the layers' parameters still views of the old ones: the forward read the old values, ``row``,
    ``model(k)`` and ``state_dict``'s columns the new. As a parameter's rebind: written into the buffers."""
    rng = np.random.default_rng(seed)
    stacked = stack(random_models(rng, int(rng.integers(1, 4)), 3)).eval()
    data, grad = stacked.data, stacked.grad
    x = rng.normal(size=(6, 3))
    values = rng.normal(size=data.shape)
    stacked.data = rebound_value(rng, stacked, values)
    gradient = rng.normal(size=grad.shape)
    stacked.grad = [gradient, xdl.tensor(gradient), None][int(rng.integers(3))]
    assert stacked.data is data and stacked.grad is grad
    np.testing.assert_allclose(stacked.data, values, rtol=1e-6)  # (float32 given: rounded)
    assert all(np.shares_memory(p.data, data) and np.shares_memory(p.grad, grad) for p in stacked.parameters())
    out = stacked(x).numpy()
    for k in range(stacked.n_models):  # each model taken out has the values given and computes the stack's forward
        np.testing.assert_array_equal(stacked.row(k)["data"], data[k])
        np.testing.assert_allclose(stacked.model(k)(x).numpy(), out[:, k], rtol=1e-10, atol=1e-12)


def test_a_stacks_own_buffers_rebound_on_either_backend_take_host_arrays_too(backend):
    """On cupy, ``stacked.data = host_array`` (a checkpoint's row, as `set_row` takes one) is copied into the device
    buffer; an array of the backend is written as it is."""
    stacked = stack(models(2, np.float32), backend)
    data, grad, to_numpy = stacked.data, stacked.grad, backend.to_numpy
    values = RNG.normal(size=data.shape).astype(np.float32)
    stacked.data, stacked.grad = values, backend.asarray(np.ones(grad.shape, np.float32))
    assert stacked.data is data and stacked.grad is grad
    np.testing.assert_array_equal(to_numpy(data), values)
    assert (to_numpy(grad) == 1).all()
    x = np.ones((5, 4), np.float32)
    out = stacked(x).numpy()
    for k in range(2):
        np.testing.assert_allclose(stacked.model(k)(x).numpy(), out[:, k], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("attribute", ["data", "grad"])
def test_a_stacks_own_buffer_rebound_to_another_shape_is_refused_before_anything_changes(attribute):
    stacked = stack(models(3))
    bound, buffers = getattr(stacked, attribute), (stacked.data.copy(), stacked.grad.copy())
    shape = bound.shape
    for value in [np.zeros(shape[1:]), np.zeros((*shape, 1)), np.zeros((4, shape[1])), np.zeros(()),
                  xdl.tensor(np.zeros(shape[1:])), [[0.0] * shape[1]] * shape[0]] + [None] * (attribute == "data"):
        assert_set_refused_leaving(stacked, stacked, attribute, value, bound, buffers,
                                   rf"{attribute}: a Stacked model's {attribute} is its \(K, P\) buffer, "
                                   rf"whose views its parameters are, of shape \({shape[0]}, {shape[1]}\)")
    assert_still_stacked(stacked)


def test_a_graph_recorded_before_a_stacked_parameters_data_is_rebound_is_refused_as_after_a_step():
    """The forward saved the parameter's view, whose values the rebind wrote: its backward would combine
    the activations of then with the weights of now (an ordinary model's rebind leaves the saved array as it was)."""
    stacked = stack(models())
    cost = squares(stacked(X))
    weight = stacked.layers[0].weight
    weight.data = weight.data * 2
    with pytest.raises(RuntimeError, match="written in place"):
        cost.backward()



def test_a_graph_recorded_before_a_stacks_own_data_is_rebound_is_refused_as_after_a_step():
    """``stack.data = x`` writes every parameter's values (their views of the buffer): a backward of a graph
    recorded before would combine the activations of then with the weights of now."""
    stacked = stack(models())
    cost = squares(stacked(X))
    stacked.data = stacked.data * 2
    with pytest.raises(RuntimeError, match="written in place"):
        cost.backward()

def test_a_stacked_parameters_data_and_grad_rebound_go_into_the_stacks_buffers_on_either_backend(backend):
    stacked = stack(models(2, np.float32), backend)
    x = np.ones((5, 4), np.float32)
    views = [(p.data, p.grad) for p in stacked.parameters()]  # (the stack's: `assert_still_stacked`)
    stacked.grad.fill(1)
    for p in stacked.parameters():
        p.data, p.grad = p.data * 2 - 1, None
    to_numpy = backend.to_numpy
    assert all(p.data is data and p.grad is grad for p, (data, grad) in zip(stacked.parameters(), views))
    assert not to_numpy(stacked.grad).any()
    state, out = stacked.state_dict(), stacked(x).numpy()
    for name, p in stacked.named_parameters():
        np.testing.assert_array_equal(state[name], to_numpy(p.data), err_msg=name)
    for k in range(2):
        np.testing.assert_allclose(stacked.model(k)(x).numpy(), out[:, k], rtol=1e-6, atol=1e-6)


def test_optimizers_a_stack_cannot_take_are_named_by_index():
    """Not an Optimizer, rules of two classes, one that has stepped, one with a per-step rate: each
    is refused naming the optimizer (its index) and what to give instead."""
    def stepped(m):
        o = SGD(m, lr=0.1)
        o.t = 3
        return o

    for makers, error, said in (
            ((lambda m: SGD(m, lr=0.1), lambda m: "adam"), TypeError,
             r"optimizers\[1\] is a str, expected an xdl\.optim\.Optimizer"),
            ((lambda m: SGD(m, lr=0.1), lambda m: Adam(m)), ValueError,
             r"optimizers: the models' optimizers must be one class, got Adam, SGD"),
            ((lambda m: Momentum(m, lr=0.1), lambda m: SGD(m, lr=0.1)), ValueError,
             r"optimizers: the models' optimizers must be one class, got Momentum, SGD"),
            ((lambda m: SGD(m, lr=0.1), stepped), ValueError,
             r"optimizers\[1\] has taken 3 steps; stack fresh optimizers"),
            ((lambda m: SGD(m, lr=lambda t: 0.1), lambda m: SGD(m, lr=0.1)), ValueError,
             r"optimizers\[0\] has a per-step lr schedule; stacked models take their rates per epoch \(set_lr\)")):
        ms = models()
        stacked = stack(ms)
        with pytest.raises(error, match=said):
            StackedOptimizer(stacked, [make(m) for make, m in zip(makers, ms)])


@pytest.mark.parametrize("flags", [(True, False, False), (False, False, True), (False, True, True)])
def test_models_whose_optimizers_differ_in_nesterov_are_refused_by_name(flags):
    """Mutation testing (the flag check's ``any`` made ``all``): one update rule runs for the K models, so optimizers
    that differ in a flag are refused wherever the odd one is, not trained as model 0's rule says."""
    ms = [xdl.nn.mlp(4, [8], 3) for _ in flags]
    optimizers = [Momentum(m, lr=0.01, nesterov=flag) for m, flag in zip(ms, flags)]
    with pytest.raises(ValueError, match=rf"^optimizers: nesterov is {flags[0]} for one model and {not flags[0]} for "
                                         "another; stacked models share one update rule$"):
        StackedOptimizer(stack(ms), optimizers)
