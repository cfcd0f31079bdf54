"""``max_grad_norm``, every optimizer's (Keras's ``global_clipnorm``): the gradients clipped to a global 2-norm at
the start of each step, as `xdl.optim.clip_grad_norm` between backward and step — through `Trainer`, `fit_many`,
`TrainConfig` and ``xdl train --max-grad-norm``, kept in state dicts and checkpoints."""

import numpy as np
import pytest

import xdl
from xdl.cli import main
from xdl.config import TrainConfig
from xdl.optim import SGD, Adam, AdamW, Momentum, RMSprop, StackedOptimizer, clip_grad_norm
from xdl.train import fit_many

RULES = (SGD, Momentum, RMSprop, Adam, AdamW)
BAD = (0, -1.0, float("inf"), float("nan"), True, "1", [1.0])


def host(backend, array) -> np.ndarray:
    return np.array(backend.to_numpy(array))


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_refuses_a_bad_max_grad_norm_by_name_before_placing_anything(rule):
    model = xdl.nn.mlp(3, [4], 2)
    places = [p._flat for p in model.parameters()]
    for bad in BAD:
        with pytest.raises(ValueError, match=r"max_grad_norm must be None \(no clipping\) or a finite number > 0"):
            rule(model, max_grad_norm=bad)
        assert [p._flat for p in model.parameters()] == places
    opt = rule(model, max_grad_norm=2)
    assert opt.max_grad_norm == 2.0 and isinstance(opt.max_grad_norm, float)
    for bad in BAD:
        with pytest.raises(ValueError, match="max_grad_norm"):
            opt.max_grad_norm = bad
        assert opt.max_grad_norm == 2.0
    with pytest.raises(TypeError, match="Keras's 'global_clipnorm' is max_grad_norm here"):
        rule(model, global_clipnorm=1.0)


def batch(rng, model, m=16):
    X = rng.standard_normal((m, 4)) * 3
    y = rng.integers(0, 3, m)
    return X, y


def backward(model, X, y):
    loss = xdl.losses.SoftmaxCrossEntropy()
    loss(model(X), y).backward()


@pytest.mark.parametrize("rule", RULES)
def test_a_step_with_max_grad_norm_is_clip_grad_norm_then_a_step_bit_for_bit(backend, rule):
    """12 models per rule (float64 and float32, max norms of 1e-3 to 1e2: some clipped, some not), 3 steps each:
    the optimizer's clipping equals the hand loop's clip_grad_norm between backward and step, bit for bit."""
    rng = np.random.default_rng(3)
    for i in range(12):
        dtype = (np.float64, np.float32)[i % 2]
        max_norm = float(10 ** rng.uniform(-3, 2))
        xdl.seed(i)
        clipped = xdl.nn.mlp(4, [6, 5], 3, batch_norm=bool(i % 3)).astype(dtype).to(backend)
        by_hand = xdl.nn.mlp(4, [6, 5], 3, batch_norm=bool(i % 3)).astype(dtype).to(backend)
        by_hand.load_state_dict(clipped.state_dict())
        opt, hand = rule(clipped, lr=0.01, max_grad_norm=max_norm), rule(by_hand, lr=0.01)
        for _ in range(3):
            X, y = batch(rng, clipped)
            for model, o in ((clipped, opt), (by_hand, hand)):
                o.zero_grad()
                backward(model, X.astype(dtype), y)
            clip_grad_norm(by_hand, max_norm)
            opt.step()
            hand.step()
        for a, b in zip(clipped.parameters(), by_hand.parameters()):
            np.testing.assert_array_equal(host(backend, a.data), host(backend, b.data))


def test_the_norm_runs_over_every_group_together():
    """param_groups' two groups (weights, biases) are clipped by one norm, as clip_grad_norm clips the model."""
    rng = np.random.default_rng(4)
    for i in range(20):
        xdl.seed(i)
        a, b = xdl.nn.mlp(4, [6], 3).astype(np.float64), xdl.nn.mlp(4, [6], 3).astype(np.float64)
        b.load_state_dict(a.state_dict())
        max_norm = float(10 ** rng.uniform(-3, 1))
        opt = SGD(xdl.optim.param_groups(a, 0.1), lr=0.1, max_grad_norm=max_norm)
        hand = SGD(xdl.optim.param_groups(b, 0.1), lr=0.1)
        X, y = batch(rng, a)
        backward(a, X, y)
        backward(b, X, y)
        clip_grad_norm(b, max_norm)
        opt.step()
        hand.step()
        for p, q in zip(a.parameters(), b.parameters()):
            np.testing.assert_allclose(p.data, q.data, rtol=1e-13, atol=1e-15)


def test_a_trainer_with_max_grad_norm_equals_one_clipping_by_hand_between_backward_and_step():
    """The Trainer's run (float64) with Adam(max_grad_norm=0.05) ends bit for bit where the same run ends whose
    optimizer's step calls clip_grad_norm first (the hand loop's place: after backward, before the update)."""
    X, y = xdl.datasets.moons(300, noise=0.2, seed=0)
    runs = []
    for how in ("option", "hand"):
        xdl.seed(0)
        model = xdl.nn.mlp(2, [16, 8], 2, batch_norm=True).astype(np.float64)

        class HandClipped(Adam):
            def step(self, closure=None, model=model):
                clip_grad_norm(model, 0.05)
                return super().step(closure)

        opt = Adam(model, lr=0.05, max_grad_norm=0.05) if how == "option" else HandClipped(model, lr=0.05)
        trainer = xdl.train.Trainer(model, xdl.losses.SoftmaxCrossEntropy(), opt, batch_size=32, epochs=3, seed=1,
                                    progress=False)
        trainer.fit(X, y)
        runs.append(model.state_dict())
    for name in runs[0]:
        np.testing.assert_array_equal(runs[0][name], runs[1][name])


@pytest.mark.parametrize("rule", [SGD, Adam])
def test_a_frozen_parameters_leftover_gradient_counts_in_neither_the_option_nor_clip_grad_norm_of_the_model(rule):
    """A parameter frozen after a backward keeps that gradient; an optimizer given the model leaves it out,
    and so does clip_grad_norm given the model (it counted it: the two ways then trained apart)."""
    X = np.random.default_rng(0).standard_normal((16, 4))
    y = np.arange(16) % 3
    runs = []
    for how in ("option", "hand"):
        xdl.seed(0)
        model = xdl.nn.mlp(4, [8], 3).astype(np.float64)
        loss = xdl.losses.SoftmaxCrossEntropy()
        loss(model(X), y).backward()
        next(iter(model.parameters())).requires_grad = False  # (its gradient stays as the backward left it)
        opt = rule(model, lr=0.1, max_grad_norm=0.01) if how == "option" else rule(model, lr=0.1)
        for _ in range(5):
            loss(model(X), y).backward()
            if how == "hand":
                clip_grad_norm(model, 0.01)
            opt.step()
            opt.zero_grad()
        runs.append(model.state_dict())
    for name in runs[0]:
        np.testing.assert_array_equal(runs[0][name], runs[1][name])


def test_a_state_dict_keeps_max_grad_norm_and_an_older_one_loads_as_none():
    model = xdl.nn.mlp(3, [4], 2)
    opt = Adam(model, max_grad_norm=0.5)
    state = opt.state_dict()
    assert state["max_grad_norm"] == 0.5
    other = Adam(model)
    other.load_state_dict(state)
    assert other.max_grad_norm == 0.5
    older = {k: v for k, v in state.items() if k != "max_grad_norm"}
    opt.load_state_dict(older)
    assert opt.max_grad_norm is None
    opt.max_grad_norm = 0.25
    for bad in BAD:
        with pytest.raises(ValueError, match="optimizer state's max_grad_norm must be None"):
            opt.load_state_dict({**state, "max_grad_norm": bad})
        assert opt.max_grad_norm == 0.25  # nothing changed


def digits():
    X, y = xdl.datasets.digits()
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1.0)
    return X[:256], y[:256], (X[256:320], y[256:320])


def small(**overrides) -> TrainConfig:
    values = dict(hidden=[16, 12], epochs=3, patience=0, batch_size=64, progress=False, dropout=0.0,
                  schedule="none", lr=0.05)
    return TrainConfig(**{**values, **overrides})


def test_fit_many_of_different_max_norms_ends_as_each_trained_alone_float64():
    """K = 5 configs: no clipping, and max norms from tight (every step clipped) to loose, with a weight decay
    (two regions of the stack's rows) — each model ends where a Trainer of its config alone ends (float64)."""
    X, y, dev = digits()
    configs = [small(seed=s, max_grad_norm=m, weight_decay=wd, optimizer=o)
               for s, m, wd, o in ((1, 0.0, 0.0, "adam"), (2, 0.05, 0.0, "adam"), (3, 0.5, 0.01, "adam"),
                                   (4, 5.0, 0.0, "adam"), (5, 0.01, 0.01, "adam"))]
    results = fit_many(configs, X, y, dev=dev, seed=11, dtype="float64")
    for config, result in zip(configs, results):
        xdl.seed(config.seed)
        model = config.build_model(X.shape[1], 10).astype(np.float64)
        trainer = config.build_trainer(model)
        trainer.seed = 11
        history = trainer.fit(X, y, dev=dev)
        assert result.status == "completed"
        assert trainer.optimizer.max_grad_norm == (config.max_grad_norm or None)
        for name, value in model.state_dict().items():
            np.testing.assert_allclose(result.model.state_dict()[name], value, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(result.history["dev_cost"], history["dev_cost"], rtol=1e-10)


def test_a_stacked_optimizer_holds_each_models_max_norm_and_its_state_dict_round_trips():
    models = [xdl.nn.mlp(3, [4], 2) for _ in range(3)]
    stacked = xdl.nn.stack(models)
    opt = StackedOptimizer(stacked, [SGD(m, max_grad_norm=n) for m, n in zip(models, (None, 0.5, 2.0))])
    assert opt.max_grad_norm == [None, 0.5, 2.0]
    opt.max_grad_norm[0] = 9.0  # (a copy: the list it holds is changed by load_state_dict alone)
    assert opt.max_grad_norm == [None, 0.5, 2.0]
    state = opt.state_dict()
    assert state["max_grad_norm"] == [None, 0.5, 2.0]
    fresh = [xdl.nn.mlp(3, [4], 2) for _ in range(3)]
    other = StackedOptimizer(xdl.nn.stack(fresh), [SGD(m) for m in fresh])
    other.load_state_dict(state)
    assert other.max_grad_norm == [None, 0.5, 2.0]
    other.load_state_dict({k: v for k, v in state.items() if k != "max_grad_norm"})  # an older state: none
    assert other.max_grad_norm == [None, None, None]
    for bad in ([0.5, 0.5], [0.5] * 4, [None, 0.0, 1.0], [None, float("inf"), 1.0], 0.5):  # (2 and 4 of 3)
        with pytest.raises(ValueError, match="optimizer state max_grad_norm"):
            other.load_state_dict({**state, "max_grad_norm": bad})
        assert other.max_grad_norm == [None, None, None]


def test_a_stacked_step_clips_each_model_by_its_own_max_norm_and_leaves_the_unclipped_alone():
    """Row k of the (K, P) gradient is scaled by min(1, max_k/(‖g_k‖ + 1e-6)); None (inf) multiplies by exactly 1,
    an infinite gradient's row too (not NaN, as inf/inf would make it)."""
    rng = np.random.default_rng(5)
    for _ in range(20):
        models = [xdl.nn.mlp(3, [4], 2).astype(np.float64) for _ in range(4)]
        stacked = xdl.nn.stack(models)
        norms = [None if rng.random() < 0.3 else float(10 ** rng.uniform(-2, 2)) for _ in models]
        opt = StackedOptimizer(stacked, [SGD(m, lr=1.0, max_grad_norm=n) for m, n in zip(models, norms)])
        grad = rng.standard_normal(stacked.grad.shape) * 10 ** rng.uniform(-2, 2)
        grad[0, 0] = np.inf if norms[0] is None else grad[0, 0]
        stacked.grad[...] = grad
        before = stacked.data.copy()
        opt.step()
        for k, n in enumerate(norms):
            scale = 1.0 if n is None else min(1.0, n / (np.linalg.norm(grad[k]) + 1e-6))
            np.testing.assert_allclose(stacked.data[k], before[k] - grad[k] * scale, rtol=1e-14, atol=1e-300)


def test_train_refuses_a_bad_max_grad_norm_naming_the_flag(capsys):
    for bad in ("-1", "inf", "nan"):
        assert main(["train", "--dataset", "moons", "--hidden", "8", "--epochs", "1", "--no-progress",
                     "--max-grad-norm", bad]) != 0
        assert "--max-grad-norm must be a finite number ≥ 0" in capsys.readouterr().err


def test_a_diverging_rate_is_kept_finite_by_max_grad_norm_through_xdl_train(tmp_path, capsys):
    """SGD at lr 30 on moons diverges (the run stops on its cost); --max-grad-norm 0.1 bounds each step
    to lr·0.1 and the run completes with finite costs. Its checkpoint records the option: a resume with another
    is refused, one with the same goes on."""
    common = ["train", "--dataset", "moons", "--hidden", "16", "--no-progress", "--optimizer", "sgd", "--lr", "30",
              "--schedule", "none", "--no-batch-norm", "--dropout", "0", "--epochs", "6", "--patience", "0"]
    assert main([*common, "--out", str(tmp_path / "free")]) != 0
    assert "training diverged" in capsys.readouterr().err
    assert main([*common, "--max-grad-norm", "0.1", "--out", str(tmp_path / "clipped"), "--checkpoint-every",
                 "1"]) == 0
    capsys.readouterr()
    resume = ["--resume", str(tmp_path / "clipped" / "checkpoints"), "--epochs", "8"]
    assert main([*common, "--max-grad-norm", "0.2", *resume]) != 0
    assert "--max-grad-norm: the checkpoint in" in capsys.readouterr().err
    assert main([*common, "--max-grad-norm", "0.1", *resume]) == 0


def moons_trainer(max_grad_norm, epochs):
    """A small SGD run on moons (seed 0, its data order's 1) clipped to ``max_grad_norm`` (None: not)."""
    xdl.seed(0)
    model = xdl.nn.mlp(2, [8], 2)
    opt = SGD(model, lr=0.5, max_grad_norm=max_grad_norm)
    return xdl.train.Trainer(model, xdl.losses.SoftmaxCrossEntropy(), opt, batch_size=50, epochs=epochs, seed=1,
                             progress=False)


def test_a_trainer_checkpoint_restores_max_grad_norm_and_refuses_another(tmp_path):
    X, y = xdl.datasets.moons(200, noise=0.2, seed=0)

    whole = moons_trainer(0.05, 4)
    whole.fit(X, y)
    first = moons_trainer(0.05, 2)
    first.fit(X, y)
    first.save_checkpoint(tmp_path / "ck.npz")
    with pytest.raises(ValueError, match="max_grad_norm"):
        moons_trainer(0.1, 4).fit(X, y, resume=tmp_path / "ck.npz")
    with pytest.raises(ValueError, match="max_grad_norm"):
        moons_trainer(None, 4).fit(X, y, resume=tmp_path / "ck.npz")
    resumed = moons_trainer(0.05, 4)
    resumed.fit(X, y, resume=tmp_path / "ck.npz")
    assert resumed.optimizer.max_grad_norm == 0.05
    for p, q in zip(resumed.model.parameters(), whole.model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.gpu
def test_a_captured_run_with_max_grad_norm_ends_as_the_eager_one(backend, monkeypatch):
    """The clipping is captured with the step (nothing it allocates breaks the capture, nothing read back), and
    the captured run ends bit for bit where the eager run ends; max_grad_norm changed by a callback within the run
    (tighter, then off, then on) captures the step again, as the eager steps read it."""
    from test_graph import captured_trainer, moons, trainer, weights

    class Tighten(xdl.train.Callback):
        def on_epoch_end(self, trainer, record):
            trainer.optimizer.max_grad_norm = {0: 0.02, 1: None}.get(trainer.epoch - 1, 0.05)

    s = moons()
    runs = {}
    for how in ("eager", "captured"):
        make = {"optimizer": lambda m: Adam(m, lr=0.05, max_grad_norm=0.05), "callbacks": [Tighten()], "epochs": 4}
        tr = trainer(False, **make) if how == "eager" else captured_trainer(monkeypatch, backend, **make)
        tr.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
        assert how == "eager" or tr.eager_reason() is None
        runs[how] = weights(backend, tr.model)
    np.testing.assert_array_equal(runs["captured"], runs["eager"])


@pytest.mark.parametrize("rule", RULES)
def test_a_step_refused_by_check_finite_leaves_the_gradients_unclipped(backend, rule):
    """check_finite=True refuses a step with a NaN or an infinite gradient before the clipping: the other
    gradients stay as backward left them (clipped by an infinite or NaN norm, they were 0 or NaN)."""
    rng = np.random.default_rng(31)
    for bad in (float("nan"), float("inf"), -float("inf")):
        model = xdl.nn.mlp(4, [5], 3).to(backend)
        opt = rule(model, max_grad_norm=0.5, check_finite=True)
        backward(model, *batch(rng, model))
        weight = next(iter(model.parameters()))
        weight.grad[0, 0] = bad
        grads = [host(backend, p.grad).copy() for p in model.parameters()]
        with pytest.raises(FloatingPointError):
            opt.step()
        for p, was in zip(model.parameters(), grads):
            np.testing.assert_array_equal(host(backend, p.grad), was)


def test_an_optimizer_pickled_before_max_grad_norm_unpickles_unclipped():
    """An optimizer pickled by an xdl before max_grad_norm (no ``_max_grad_norm``) clips nothing, as it did."""
    import copy
    import pickle

    rng = np.random.default_rng(32)
    model = xdl.nn.mlp(4, [5], 3)
    opt = Adam(model, lr=0.01)
    old_model, old = copy.deepcopy((model, opt))
    del old.__dict__["_max_grad_norm"]
    old_model, old = pickle.loads(pickle.dumps((old_model, old)))
    assert old.max_grad_norm is None and old.state_dict()["max_grad_norm"] is None
    X, y = batch(rng, model)
    for m, o in ((model, opt), (old_model, old)):
        backward(m, X, y)
        o.step()
    for a, b in zip(model.parameters(), old_model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)


def test_a_stacked_state_with_bad_max_norms_is_refused_before_any_change():
    """A state whose max_grad_norm is not K values, each None or a finite number > 0, changes nothing: not the
    rates, the step count, the max norms nor the (K, P) state its other entries hold."""
    def stacked_optimizer(lr, max_norms):
        models = [xdl.nn.mlp(3, [4], 2) for _ in range(3)]
        return StackedOptimizer(xdl.nn.stack(models), [Momentum(m, lr=lr, max_grad_norm=n)
                                                        for m, n in zip(models, max_norms)])

    source = stacked_optimizer(0.3, (1.0, None, 2.0))
    source.model.grad[...] = 1.0
    source.step()
    state = source.state_dict()
    target = stacked_optimizer(0.01, (None, 0.5, None))
    kept = target.state_dict()
    for bad in ([0.5, 0.5], [0.5] * 4, [None, 0.0, 1.0], [None, float("nan"), 1.0], [None, float("inf"), 1.0], 0.5,
                None, "1"):
        with pytest.raises(ValueError, match="optimizer state max_grad_norm"):
            target.load_state_dict({**state, "max_grad_norm": bad})
        now = target.state_dict()
        assert now["settings"] == kept["settings"] and now["t"] == kept["t"] == 0
        assert now["max_grad_norm"] == [None, 0.5, None]
        for name, values in kept["state"].items():
            np.testing.assert_array_equal(now["state"][name], values)


def test_a_stacked_optimizer_pickled_before_max_grad_norm_unpickles_unclipped():
    """A StackedOptimizer pickled by an xdl before max_grad_norm (no max norms held) clips no model, as it did."""
    import copy
    import pickle

    rng = np.random.default_rng(33)
    models = [xdl.nn.mlp(3, [4], 2).astype(np.float64) for _ in range(3)]
    opt = StackedOptimizer(xdl.nn.stack(models), [SGD(m, lr=1.0) for m in models])
    old = copy.deepcopy(opt)
    del old.__dict__["_max_grad_norms"], old.__dict__["_max_norms_held"]
    old = pickle.loads(pickle.dumps(old))
    assert old.max_grad_norm == [None] * 3 and old.state_dict()["max_grad_norm"] == [None] * 3
    grad = rng.standard_normal(opt.model.grad.shape) * 100
    for o in (opt, old):
        o.model.grad[...] = grad
        o.step()
    np.testing.assert_array_equal(old.model.data, opt.model.data)


def test_a_checkpoint_of_an_xdl_before_max_grad_norm_resumes_unclipped_and_refuses_a_clipped_run(tmp_path):
    """A checkpoint without max_grad_norm (in its provenance and its optimizer's state) trained unclipped: a resume
    with max_grad_norm is another run's, refused by name; one without goes on. The xdl command's options saved
    without it compare alike (`ADDED_OPTIONS`)."""
    from conftest import edit_saved

    X, y = xdl.datasets.moons(200, noise=0.2, seed=0)

    first = moons_trainer(None, 1)
    first.fit(X, y)
    first.save_checkpoint(tmp_path / "ck.npz")

    def older(header, arrays):
        del header["extra"]["optimizer_max_grad_norm"], header["extra"]["provenance"]["max_grad_norm"]

    edit_saved(tmp_path / "ck.npz", older)
    with pytest.raises(ValueError, match="resume: max_grad_norm was None in the checkpoint, this run has 0.5"):
        moons_trainer(0.5, 2).fit(X, y, resume=tmp_path / "ck.npz")
    resumed = moons_trainer(None, 2)
    resumed.fit(X, y, resume=tmp_path / "ck.npz")
    assert resumed.epoch == 2 and resumed.optimizer.max_grad_norm is None
    assert TrainConfig(max_grad_norm=0.5).first_change({"l2": 0.0}) == ("max_grad_norm", 0.0, 0.5)
    assert TrainConfig().first_change({"l2": 0.0}) is None


def test_a_stacked_optimizers_max_norms_loaded_anew_count_as_a_change_a_captured_step_must_see():
    """Its version (what a captured fit_many step was captured at) counts a load that changes the max norms, once,
    and not one that leaves them: the held (K,) array is another, or none, after such a load."""
    models = [xdl.nn.mlp(3, [4], 2) for _ in range(3)]
    opt = StackedOptimizer(xdl.nn.stack(models), [SGD(m, max_grad_norm=n) for m, n in zip(models, (None, 0.5, None))])
    state = opt.state_dict()

    def versions_counted(max_norms) -> int:
        version = opt.version
        opt.load_state_dict({**state, "max_grad_norm": max_norms})
        return opt.version - version

    same = versions_counted([None, 0.5, None])
    for max_norms in ([1.0, 0.5, None], [None, None, None], [None, 0.5, None], [2.0, 2.0, 2.0], [None, 0.5, None]):
        assert versions_counted(max_norms) == same + 1 and opt.max_grad_norm == max_norms
    assert versions_counted([None, 0.5, None]) == same
