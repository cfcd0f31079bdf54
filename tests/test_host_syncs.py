"""What a training step asks of the host on a GPU (issue 12: no host sync in the step), counted by the
CuPy stand-in's trace (`cupy.fake_trace`, tests/fakecupy): a steady step — any after its batch size's
first, inside an epoch — reads nothing from the device and copies nothing to it (the step costs are
checked in one transfer at the epoch's end), allocates as much as the step before it, and a captured
one is its graph's replay alone (the batch's gathers, its cost and its hits kept in the graph). Real CuPy
counts none of it: there these skip."""

import collections

import numpy as np
import pytest

import xdl
import xdl.train.many
import xdl.train.trainer
from xdl.config import TrainConfig
from xdl.optim import schedules
from xdl.train import Callback, EarlyStopping, ReduceLROnPlateau, Trainer, fit_many
from xdl.train.checkpoint import Checkpoint

pytestmark = pytest.mark.gpu

EPOCHS, BATCH, M = 3, 16, 96  # 6 steps an epoch


@pytest.fixture
def steps(cupy, monkeypatch):
    """The events of each step of the fits run in the test (a `Trainer`'s or `fit_many`'s): the trace's
    events between one step's progress tick and the next — a step and its loop's bookkeeping."""
    ticks = []

    class Ticking:
        def __init__(self, bar):
            self.bar = bar

        def update(self, n=1):
            ticks.append(len(trace.events))
            return self.bar.update(n)

        def __getattr__(self, name):
            return getattr(self.bar, name)

    for module in (xdl.train.trainer, xdl.train.many):
        made = module.progress_bar
        monkeypatch.setattr(module, "progress_bar", lambda *a, made=made, **k: Ticking(made(*a, **k)))
    with cupy.fake_trace(stacks=True) as trace:
        yield lambda: [trace.events[a:b] for a, b in zip(ticks, ticks[1:])]


def steady(per_step: list, steps_per_epoch: int) -> list:
    """The steps after the first epoch (its steps captured each batch size's graph) but an epoch's first
    (whose events hold the epoch's end before it: evaluation, the costs' check, callbacks)."""
    return [events for i, events in enumerate(per_step, start=1)
            if i > steps_per_epoch and i % steps_per_epoch != 0]


def counts(events) -> collections.Counter:
    return collections.Counter(kind for kind, _, _ in events)


def host_traffic(events) -> list:
    return [(kind, what, stack) for kind, what, stack in events if kind in ("read", "upload")]


def data(classes=3):
    rng = np.random.default_rng(0)
    return rng.standard_normal((M, 8)).astype(np.float32), rng.integers(0, classes, M)


TRAINERS = {
    "adam, batch norm, dropout, l2, l1": dict(model=dict(batch_norm=True, dropout=0.3), l2=0.1, l1=0.01),
    "momentum, epoch schedule": dict(optimizer=lambda m: xdl.optim.Momentum(m, lr=0.01, nesterov=True),
                                     schedule=schedules.cosine(1e-2, EPOCHS)),
    "rmsprop, running train metrics": dict(optimizer=lambda m: xdl.optim.RMSprop(m, lr=1e-3), eval_train=False),
    "adamw, early stopping, checkpoints": dict(optimizer=lambda m: xdl.optim.AdamW(m, lr=1e-3, weight_decay=0.01),
                                               callbacks=lambda d: [EarlyStopping(patience=5), Checkpoint(d)]),
}


@pytest.mark.parametrize("capture", ["auto", False])
@pytest.mark.parametrize("case", list(TRAINERS))
def test_a_steady_trainer_step_reads_nothing_on_the_host(steps, tmp_path, case, capture):
    settings = dict(TRAINERS[case])
    model = xdl.nn.mlp(8, [12, 10], 3, **settings.pop("model", {}))
    optimizer = settings.pop("optimizer", lambda m: xdl.optim.Adam(m, lr=1e-3))(model)
    callbacks = settings.pop("callbacks", lambda d: [])(tmp_path)
    X, y = data()
    trainer = Trainer(model, xdl.losses.SoftmaxCrossEntropy(), optimizer, batch_size=BATCH, epochs=EPOCHS, seed=1,
                      progress=False, capture=capture, callbacks=callbacks, **settings)
    trainer.fit(X, y, dev=(X[:32], y[:32]))
    assert (trainer.eager_reason() is None) == (capture == "auto"), trainer.eager_reason()
    each = steady(steps(), M // BATCH)
    assert len(each) == (EPOCHS - 1) * (M // BATCH - 1)
    for events in each:
        assert not host_traffic(events), host_traffic(events)[0][2]
    assert len({counts(events)["alloc"] for events in each}) == 1  # none kept from one step to the next
    if capture == "auto":  # (`test_a_steady_captured_trainer_step_is_one_replay_and_nothing_else`)
        assert all(counts(events) == {"graph": 1} for events in each), [counts(events) for events in each]


@pytest.mark.parametrize("case", list(TRAINERS))
def test_a_steady_captured_trainer_step_is_one_replay_and_nothing_else(steps, tmp_path, case):
    """Issue 12: a steady captured step is its graph's replay alone — no launch, read, upload or allocation
    beside it, the last smaller batch's too (100 = 6·16 + 4). The gathers of the batch into the graph's inputs,
    the write of its cost and the sum of its hits were 3–4 launches around the replay, each a few µs of host
    time beside a whole step's graph of ~0.3 ms on an H100; the graph now does them at the step held on the
    device, and the epoch's costs and accuracy are the eager run's."""
    m = 100
    X, y = np.random.default_rng(0).standard_normal((m, 8)).astype(np.float32), np.arange(m) % 3
    ends = {}
    for capture in (False, "auto"):
        settings = dict(TRAINERS[case])
        xdl.seed(0)
        model = xdl.nn.mlp(8, [12, 10], 3, **settings.pop("model", {}))
        optimizer = settings.pop("optimizer", lambda m: xdl.optim.Adam(m, lr=1e-3))(model)
        callbacks = settings.pop("callbacks", lambda d: [])(tmp_path / str(capture))
        trainer = Trainer(model, xdl.losses.SoftmaxCrossEntropy(), optimizer, batch_size=BATCH, epochs=EPOCHS,
                          seed=1, progress=False, capture=capture, callbacks=callbacks, **settings)
        history = trainer.fit(X, y, dev=(X[:32], y[:32]))
        ends[capture] = ([{k: v for k, v in r.items() if "seconds" not in k} for r in history.records],
                         np.concatenate([p.data.get().ravel() for p in model.parameters()]))
    assert trainer.eager_reason() is None
    per_epoch = -(-m // BATCH)
    each = steady(steps()[EPOCHS * per_epoch:], per_epoch)  # (the captured fit's: the eager one's came first)
    assert len(each) == (EPOCHS - 1) * (per_epoch - 1)
    assert all(counts(events) == {"graph": 1} for events in each), [counts(events) for events in each]
    assert ends["auto"][0] == ends[False][0]
    np.testing.assert_array_equal(ends["auto"][1], ends[False][1])


@pytest.mark.parametrize("capture", ["auto", False])
def test_a_steady_fit_many_step_reads_nothing_on_the_host(steps, tmp_path, capture):
    X, y = data()
    configs = [TrainConfig(lr=1e-3 * (k + 1), l2=0.1 * k, seed=k, epochs=EPOCHS, patience=2, hidden=[12, 10],
                           batch_norm=True, dropout=0.1 * (k + 1), optimizer="adam", batch_size=BATCH)
               for k in range(3)]
    results = fit_many(configs, X, y, dev=(X[:32], y[:32]), capture=capture, callbacks=[Checkpoint(tmp_path)])
    assert [r.status for r in results] == ["completed"] * 3
    each = steady(steps(), M // BATCH)
    assert len(each) == (EPOCHS - 1) * (M // BATCH - 1)
    for events in each:
        assert not host_traffic(events), host_traffic(events)[0][2]
    assert len({counts(events)["alloc"] for events in each}) == 1
    if capture == "auto":  # (its graph gathers the batch and keeps the K costs and hits, as a Trainer's)
        assert all(counts(events) == {"graph": 1} for events in each), [counts(events) for events in each]


def test_an_eager_fit_many_step_launches_what_a_trainer_step_of_its_model_does(steps):
    """An eager steady step of K models (dropout, no batch norm, Adam) launches, for K = 1 and 4 alike, the kernels
    of a `Trainer`'s step of one such model — ReLU then dropout as one kernel each way (the stacked one), the loss's
    two — but the seed of its cost's backward (the K costs' gradient, 1 each, is a constant: no sum, no seed). It
    launched 21 (K = 1) and 22 (K = 4): ReLU and the stacked dropout apart (4 more), the K costs' sum (1) and its
    seed (1), and for K ≥ 2 a copy of the sum's broadcast gradient for the loss's backward (1)."""
    X, y = data()
    launched = {}
    for k_models in ("trainer", 1, 4):
        start = len(steps()) + bool(launched)  # (the window from one fit's last tick to the next fit's first)
        xdl.seed(0)
        if k_models == "trainer":
            model = xdl.nn.mlp(8, [12, 10], 3, dropout=0.3)
            Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-3), batch_size=BATCH,
                    epochs=EPOCHS, seed=1, progress=False, capture=False).fit(X, y)
        else:
            configs = [TrainConfig(lr=1e-3 * (k + 1), seed=k, epochs=EPOCHS, patience=0, hidden=[12, 10],
                                   batch_norm=False, dropout=0.1 + 0.05 * k, batch_size=BATCH) for k in range(k_models)]
            fit_many(configs, X, y, capture=False)
        each = steady(steps()[start:], M // BATCH)
        assert len(each) == (EPOCHS - 1) * (M // BATCH - 1)
        kernels = {tuple(sorted(what.split("<")[0] for kind, what, _ in events if kind == "launch")) for events in each}
        assert len(kernels) == 1, kernels  # every steady step alike
        launched[k_models] = collections.Counter(kernels.pop())
    trainer = launched["trainer"]
    assert trainer["relu_dropout_forward"] == trainer["relu_dropout_backward"] == 2 and trainer["ones"] == 1
    stacked = collections.Counter({("stacked_" + name if "relu_dropout" in name else name): n
                                   for name, n in trainer.items() if name != "ones"})
    assert launched[1] == launched[4] == stacked, (launched, stacked)
    assert sum(launched[1].values()) == sum(launched[4].values()) == 15 and sum(trainer.values()) == 16


def test_one_hot_label_rows_step_as_class_indices_do(steps):
    """Exact one-hot rows (Keras's categorical labels) are prepared once, on the host, as their class
    indices: an eager steady step reads nothing, and launches and allocates what the indices' step does —
    the fused loss, where the rows' NumPy-API path was 12 launches more forward, 3 back — and the run is
    theirs bit for bit."""
    X, y = data()
    per_step, histories = {}, {}
    for form, labels in (("indices", y), ("one-hot", np.eye(3, dtype=np.float32)[y])):
        # (the first fit's windows, and the one from its last tick to this fit's first)
        start = len(steps()) + (form != "indices")
        xdl.seed(0)
        model = xdl.nn.mlp(8, [12, 10], 3)
        trainer = Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-3), batch_size=BATCH,
                          epochs=EPOCHS, seed=1, progress=False, capture=False)
        histories[form] = trainer.fit(X, labels, dev=(X[:32], labels[:32])).records
        each = steady(steps()[start:], M // BATCH)
        for events in each:
            assert not host_traffic(events), host_traffic(events)[0][2]
        per_step[form] = [(counts(events)["launch"], counts(events)["alloc"]) for events in each]
    assert per_step["one-hot"] == per_step["indices"]
    assert [{k: v for k, v in r.items() if "seconds" not in k} for r in histories["one-hot"]] == \
        [{k: v for k, v in r.items() if "seconds" not in k} for r in histories["indices"]]


def test_a_step_hook_costs_one_read_of_the_step_cost(steps):
    """A callback's on_step_end gets the step's cost, read from the device: one sync a step, the same
    read that checks the cost is finite (the check's read and a second one for the hook were two)."""
    seen = []

    class Costs(Callback):
        def on_step_end(self, trainer, cost):
            seen.append(cost)

    model = xdl.nn.mlp(8, [12], 3)
    X, y = data()
    trainer = Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-3), batch_size=BATCH,
                      epochs=EPOCHS, seed=1, progress=False, callbacks=[Costs()])
    history = trainer.fit(X, y)
    each = steady(steps(), M // BATCH)
    assert [len(host_traffic(events)) for events in each] == [1] * len(each), \
        [[what for _, what, _ in host_traffic(events)] for events in each]
    assert len(seen) == EPOCHS * (M // BATCH) and all(isinstance(c, float) and np.isfinite(c) for c in seen)
    assert history.records[-1]["epoch"] == EPOCHS


def test_a_captured_step_replays_the_launches_of_the_eager_step(cupy):
    """The train-step benchmark's step (`xdl.bench.steps.xdl_step`): its graph's nodes are the kernels and
    products an eager step launches one by one — the stand-in records no node for a view or an empty array."""
    from xdl.bench.steps import xdl_step

    backend = xdl.current_backend()
    eager = xdl_step(backend, 32, 16, 8, 2, captured=False)
    eager()
    with cupy.fake_trace() as trace:
        eager()
    launches = counts(trace.events)["launch"] + trace.gemms()
    assert counts(trace.events)["read"] == 0
    captured = xdl_step(backend, 32, 16, 8, 2, captured=True)
    with cupy.fake_trace() as trace:
        captured()
    # 3 products each way, less the input's, and the output bias's gradient (a row of ones · ∂L/∂Y)
    assert counts(trace.events) == {"graph": 1} and trace.gemms() == 9
    assert captured.nodes() == {"KERNEL": launches}


def test_the_weight_penalties_cost_a_step_a_few_launches_whatever_the_number_of_weights(cupy):
    """L2 and L1 are one node each over the model's weights, which lie back to back in its flat buffer: a
    few launches and allocations each way over that range, as many for 2 weights as for 6 — eager and
    captured — and no host read (per weight, a product, a sum and an addition each way were 43 launches and
    40 allocations more a step for 3 weights)."""
    from xdl.bench.steps import xdl_step

    backend = xdl.current_backend()

    def launches(layers, **penalties):
        step = xdl_step(backend, 32, 16, 8, layers, captured=False, **penalties)
        step()
        with cupy.fake_trace() as trace:
            step()
        events = counts(trace.events)
        assert events["read"] == events["upload"] == 0
        captured = xdl_step(backend, 32, 16, 8, layers, captured=True, **penalties)
        captured()
        return events["launch"], events["alloc"], captured.nodes()["KERNEL"]

    added = {layers: np.subtract(launches(layers, l2=0.1, l1=0.01), launches(layers)) for layers in (1, 5)}
    assert (added[1] == added[5]).all(), added
    kernels, allocations, nodes = added[1]
    assert kernels <= 20 and allocations <= 14 and nodes == kernels, added


def test_the_stand_in_counts_what_cupy_reads_on_the_host(cupy):
    """Each of these blocks the host on CuPy until the device is done and copies from it."""
    x = cupy.arange(6, dtype=np.float32)
    with cupy.fake_trace() as trace:
        x.get(), x[1].item(), float(x[2]), bool(x[3] > 0), x.tolist(), f"{x[4]:.2f}", x[x > 2]
        one = x[5]
    reads = [what for kind, what, _ in trace.events if kind == "read"]
    assert len(reads) == 7, reads
    assert [kind for kind, _, _ in trace.events].count("upload") == 0
    one += 1  # a 0-d view, as CuPy's x[i]: written in place
    assert float(x[5]) == 6.0


def test_the_stand_in_records_an_out_given_by_position(cupy):
    """``xp.add(c, 1, c)`` writes ``c`` as ``out=c`` does: a launch, and a node of a graph captured over it.
    NumPy returns the ``out`` it was given, which the stand-in took for memory there was (a view): no launch,
    no node, and a replay left ``c`` as it was."""
    c, source, taken = cupy.zeros(3), cupy.arange(6.0), cupy.zeros(2)
    index = cupy.asarray(np.array([4, 1]))
    stream = cupy.cuda.Stream(non_blocking=True)
    with cupy.fake_trace() as trace, stream:
        stream.begin_capture()
        cupy.add(c, 1, c)
        cupy.take(source, index, 0, taken)
        source.sum(0, None, c[0])  # (a method's out, by position: a 0-d view)
        graph = stream.end_capture()
    assert counts(trace.events)["launch"] == 3
    for _ in range(2):
        graph.launch()
    assert c.get().tolist() == [15.0, 2.0, 2.0] and taken.get().tolist() == [4.0, 1.0]


def _stop_odd_models_after_the_first_epoch():
    class StopOdd(Callback):  # (a callback's `stop_model`: frozen as early stopping freezes a model)
        def on_epoch_end(self, trainer, record):
            if trainer.epoch == 1:
                for k in range(1, trainer.n_models, 2):
                    trainer.stop_model(k)
    return [StopOdd()]


# fit_many's configurations, model k's options (`TrainConfig`'s) from k: rates, β's, λ's, dropout rates and
# schedules' parameters differ per model, as in a search
BATCHES = {
    "xdl train's default model": dict(hidden=[256, 128]),
    "no batch norm, no dropout": dict(batch_norm=False, dropout=0.0),
    "dropout, no batch norm": dict(batch_norm=False),
    "batch norm, no dropout": dict(dropout=0.0),
    "l2 and l1": dict(l2=lambda k: 0.1 * (k % 3 + 1), l1=lambda k: 0.01 * (k % 2 + 1)),
    **{rule: dict(optimizer=rule, beta1=lambda k: 0.8 + 0.01 * (k % 5)) for rule in ("sgd", "momentum", "rmsprop")},
    "adamw": dict(optimizer="adamw", weight_decay=lambda k: 0.01 * (k % 2), beta2=lambda k: 0.99 + 0.001 * (k % 3)),
    "cosine schedule": dict(schedule="cosine"),
    "staircase schedule": dict(schedule="staircase", decay_every=1),
    "early stopping, odd models stopped": dict(patience=2, callbacks=_stop_odd_models_after_the_first_epoch),
    "a model in four diverged": dict(lr=lambda k: 1e20 if k % 4 == 3 else 1e-3),
}


@pytest.fixture
def per_step(cupy, monkeypatch):
    """``per_step(fit)``: fit() run with each steady step's events counted (`steady`): the trace's kinds, the
    cuBLAS products ("gemm") and the calls of xdl's own Python functions ("python": the host's work)."""
    import os
    import sys

    package = os.path.dirname(xdl.__file__) + os.sep
    python_calls = [0]

    def count(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(package):
            python_calls[0] += 1

    def run(fit):
        ticks, made = [], xdl.train.many.progress_bar

        class Ticking:  # profiles the steps steady ones are (the trace counts every step)
            def __init__(self, bar):
                self.bar = bar

            def update(self, n=1):
                sys.setprofile(None)
                ticks.append((len(trace.events), trace.gemms(), python_calls[0]))
                sys.setprofile(count)
                return self.bar.update(n)

            def close(self):
                sys.setprofile(None)
                return self.bar.close()

            def __getattr__(self, name):
                return getattr(self.bar, name)

        monkeypatch.setattr(xdl.train.many, "progress_bar", lambda *a, **k: Ticking(made(*a, **k)))
        try:
            with cupy.fake_trace() as trace:
                results = fit()
        finally:
            sys.setprofile(None)
        each = []
        for (a, gemms_a, calls_a), (b, gemms_b, calls_b) in zip(ticks, ticks[1:]):
            each.append(counts(trace.events[a:b]) + collections.Counter(gemm=gemms_b - gemms_a,
                                                                           python=calls_b - calls_a))
        return results, steady(each, M // BATCH)
    return run


@pytest.mark.parametrize("capture", ["auto", False])
@pytest.mark.parametrize("case", list(BATCHES))
def test_a_fit_many_step_asks_as_much_of_the_host_and_the_gpu_for_any_number_of_models(per_step, case, capture):
    """Issue 13: K models' steady step — captured or eager — launches, allocates, reads, multiplies (cuBLAS) and
    runs as much of xdl's Python for 8 models as for 4 (the GPU's work grows with K, the overhead does not), no
    more on the device for 4 than for 1 (one model's (B, 1, C) views are contiguous where K's are not: a few copies
    fewer), with
    models frozen (stopped, diverged) or not. A per-model Python loop on the step's path fails it: `checked_key`
    per seed in `Stacked.set_random_key`, an eager step's, was 2·K checks a step."""
    settings = dict(BATCHES[case])
    callbacks = settings.pop("callbacks", lambda: [])
    X, y = data()

    def fit(k_models):
        def option(value, k):
            return value(k) if callable(value) else value

        configs = [TrainConfig(**{"lr": 1e-3 * (1 + k % 5), "seed": k, "epochs": EPOCHS, "patience": 0,
                                  "hidden": [12, 10], "dropout": 0.1 + 0.05 * (k % 4), "batch_size": BATCH,
                                  "decay_rate": 0.05 + 0.01 * (k % 3),
                                  **{key: option(value, k) for key, value in settings.items()}})
                   for k in range(k_models)]
        xdl.seed(0)
        return per_step(lambda: fit_many(configs, X, y, dev=(X[:32], y[:32]), capture=capture,
                                         callbacks=callbacks()))

    steps_of = {}
    # (multiples of 4 beside 1: the kernels' vector width, picked by the (B, K·C) layout, takes another path of
    # Python, one call fewer or more, as K·C is one or not)
    for k_models in (1, 4, 8) if case != "a model in four diverged" else (4, 8):
        results, each = fit(k_models)
        assert len(each) == (EPOCHS - 1) * (M // BATCH - 1)
        statuses = collections.Counter(r.status for r in results)
        if case == "early stopping, odd models stopped":
            assert statuses["stopped"] == k_models // 2, statuses
        if case == "a model in four diverged":
            assert statuses["failed"] == k_models // 4, statuses
        for events in each:  # (nothing read nor copied to the device: `test_a_steady_fit_many_step_reads_nothing…`)
            assert events["read"] == events["upload"] == 0, events
        # every steady step alike, but an epoch's after a model froze (its gradient row zeroed: one launch more)
        steps_of[k_models] = sorted({tuple(sorted(events.items())) for events in each})
        if capture == "auto":
            assert all(events["graph"] == 1 and events["launch"] <= 4 for events in each), each
    several = [k_models for k_models in steps_of if k_models > 1]
    for k_models in several[1:]:
        assert steps_of[k_models] == steps_of[several[0]], (case, capture, steps_of)
    if 1 in steps_of:  # its device's work; its Python takes another path or two
        for few, many in zip(steps_of[1], steps_of[several[0]]):
            assert all(n <= dict(many)[kind] for kind, n in few if kind != "python"), (case, capture, steps_of)


def epoch_ends(per_step: list, steps_per_epoch: int) -> list:
    """The windows holding an epoch's end but the last's: from its last step's progress tick to the next
    epoch's first step's (the epoch's record, checks and callbacks, and the next epoch's start)."""
    return [events for i, events in enumerate(per_step, start=1) if i % steps_per_epoch == 0]


def reads_at_epoch_ends(per_step: list) -> list:
    """Each epoch end's host reads, named by the xdl function that asked for each (the innermost one)."""
    def asker(stack):
        frames = [line.split(" in ")[-1] for line in stack.splitlines() if "/xdl/" in line and ", in " in line]
        return next((f for f in reversed(frames) if f not in ("to_numpy", "<listcomp>", "<dictcomp>")), stack)
    return [[asker(stack) for kind, _, stack in events if kind == "read"]
            for events in epoch_ends(per_step, M // BATCH)]


EPOCH_END_RUNS = {  # (a dev set, eval_train, a schedule, early stopping)
    "dev, train evaluated": dict(dev=True),
    "no dev, train evaluated": dict(dev=False),
    "dev, running train metrics": dict(dev=True, eval_train=False),
    "no dev, running train metrics, schedule": dict(dev=False, eval_train=False, schedule=True),
    "dev, early stopping without restore": dict(dev=True, early_stopping=True),
    "dev, a plateau lowering the rate at each epoch's end": dict(dev=True, plateau=True),
}


@pytest.mark.parametrize("capture", ["auto", False])
@pytest.mark.parametrize("case", list(EPOCH_END_RUNS))
def test_an_epoch_end_reads_the_host_twice(steps, case, capture):
    """Issue 12: an epoch's end on the GPU is two host reads — its last step's cost check (which times the steps:
    ``step_seconds``) and one transfer of all the record and its checks need (`read_together`): the evaluations'
    costs and hits, the step costs, the model's and the optimizer's finite flags. They were 5–7 (each evaluation's
    cost and hits, the step costs again, the model's flags, the optimizer's), ~10–30 µs and a drain of the GPU's
    queue each, for a `Trainer` and for `fit_many` alike."""
    run = EPOCH_END_RUNS[case]
    X, y = data()
    dev = (X[:32], y[:32]) if run["dev"] else None
    xdl.seed(0)
    model = xdl.nn.mlp(8, [12, 10], 3, batch_norm=True, dropout=0.1)
    trainer = Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-3), batch_size=BATCH,
                      epochs=EPOCHS, seed=1, progress=False, capture=capture, eval_train=run.get("eval_train", True),
                      schedule=schedules.cosine(1e-2, EPOCHS) if run.get("schedule") else None,
                      callbacks=[EarlyStopping(patience=5, restore_best=False)] if run.get("early_stopping") else
                      [ReduceLROnPlateau(patience=1, factor=0.5, min_delta=10)] if run.get("plateau") else [])
    trainer.fit(X, y, dev=dev)
    if run.get("plateau"):  # (no epoch after the first improves by 10: each halves the next epoch's rate)
        assert trainer.history["lr"] == [1e-3 * 0.5 ** max(e - 1, 0) for e in range(EPOCHS)]
    configs = [TrainConfig(lr=1e-3 * (k + 1), seed=k, epochs=EPOCHS, patience=2 if run.get("early_stopping") else 0,
                           hidden=[12, 10], batch_norm=True, dropout=0.1, batch_size=BATCH,
                           schedule="cosine" if run.get("schedule") else "none") for k in range(3)]
    start = len(steps()) + 1  # (the window from the Trainer's last tick to fit_many's first)
    fit_many(configs, X, y, dev=dev, capture=capture, eval_train=run.get("eval_train", True))
    per_step = steps()
    for fit, ends in (("Trainer", reads_at_epoch_ends(per_step[:start - 1])),
                      ("fit_many", reads_at_epoch_ends(per_step[start:]))):
        assert len(ends) == EPOCHS - 1, (fit, ends)
        assert all(reads == ["_check_costs", "read_together"] for reads in ends), (fit, ends)


def test_evaluate_reads_its_cost_and_accuracy_at_once(cupy):
    """`Trainer.evaluate`: the model's state check and one read of its cost and hits (they were one each)."""
    X, y = data()
    model = xdl.nn.mlp(8, [12], 3, batch_norm=True)
    trainer = Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-3), progress=False)
    with cupy.fake_trace() as trace:
        metrics = trainer.evaluate(X, y, batch_size=40)
    assert counts(trace.events)["read"] == 2
    assert np.isfinite(metrics["cost"]) and 0 <= metrics["accuracy"] <= 1


def reads_of(cupy, call):
    """(what ``call`` returned, the host reads it made)."""
    with cupy.fake_trace(stacks=True) as trace:
        out = call()
    return out, [stack for kind, _, stack in trace.events if kind == "read"]


def train_model():
    """xdl train's model: a leading Standardize (float64 statistics), two batch norms (float32 ones), dropout."""
    X, _ = data()
    return xdl.nn.mlp(8, [12, 10], 3, batch_norm=True, dropout=0.3,
                      standardize=xdl.nn.Standardize(8, X.mean(0), X.std(0)))


def per_array(model) -> dict:
    """The state as it was read before: one copy per parameter and buffer."""
    return {**{name: p.data.get() for name, p in model.named_parameters()},
            **{name: a.get() for name, a in model.named_buffers()}}


def assert_same_state(state, expected):
    assert list(state) == list(expected)
    for name, value in expected.items():
        assert state[name].dtype == value.dtype and state[name].shape == value.shape, name
        np.testing.assert_array_equal(state[name], value, err_msg=name)


def test_a_state_dict_reads_each_flat_buffer_once_and_the_statistics_once_per_dtype(cupy):
    """A state dict read each parameter and buffer alone — 14 host reads of xdl train's model, each a copy and a
    sync on a GPU, at each improving epoch of an `EarlyStopping(restore_best=True)`, each checkpoint and each
    `xdl.save` —; now the one flat buffer of its parameters and its statistics once per dtype (float64 and
    float32): 3. The arrays are those reads' values, and stay so while the model trains on."""
    model = train_model()
    expected = per_array(model)
    state, reads = reads_of(cupy, model.state_dict)
    assert len(reads) == 3, reads
    assert_same_state(state, expected)
    for p in model.parameters():
        p.data[...] = 7
    for _, a in model.named_buffers():
        a[...] = 9
    assert_same_state(state, expected)


STATE_CASES = {  # (a model, a part of it, parameters out of their place) → the host reads its state takes
    "a whole model": (lambda m: m, 1 + 2),
    "its last layer (its weight and bias: two runs of the buffer, not the span between them)": (lambda m: m[9], 2),
    "a batch norm of it (γ and β: one run; its statistics)": (lambda m: m[2], 1 + 1),
    "a slice of it": (lambda m: m[4:], 2 + 1),
    "a weight rebound by hand (read alone)": (lambda m: (setattr(m[1].weight, "data", m[1].weight.data.copy()), m)[1],
                                              2 + 2),
    "float64": (lambda m: m.astype("float64"), 1 + 1),
}


@pytest.mark.parametrize("case", list(STATE_CASES))
def test_a_state_dict_reads_each_run_of_a_flat_buffer_once(cupy, case):
    make, expected_reads = STATE_CASES[case]
    model = make(train_model())
    rng = np.random.default_rng(1)
    for p in model.parameters():
        p.data[...] = cupy.asarray(rng.standard_normal(p.shape).astype(p.dtype))
    expected = per_array(model)
    state, reads = reads_of(cupy, model.state_dict)
    assert len(reads) == expected_reads, reads
    assert_same_state(state, expected)


def test_early_stopping_keeps_its_best_in_one_read_per_flat_buffer_and_dtype_of_statistics(cupy):
    model = train_model()
    trainer = Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-3), progress=False)
    stopping = EarlyStopping(patience=2)
    _, reads = reads_of(cupy, lambda: stopping.on_epoch_end(trainer, {"epoch": 1, "dev_cost": 1.0}))
    assert len(reads) == 3, reads
    assert_same_state(stopping.best_state, per_array(model))


def test_a_trainer_checkpoint_reads_the_model_once_per_flat_buffer(cupy, tmp_path):
    """`Trainer.save_checkpoint` after a fit whose `EarlyStopping` put the best weights back: the state check (1),
    Adam's m and v (2), whether the model still holds the best weights (1: was one per parameter) and the model's
    state (3: was 14). It was 25."""
    X, y = data()
    model = train_model()
    trainer = Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-3), batch_size=BATCH,
                      epochs=2, seed=1, progress=False, callbacks=[EarlyStopping(patience=5)])
    trainer.fit(X, y, dev=(X[:32], y[:32]))
    _, reads = reads_of(cupy, lambda: trainer.save_checkpoint(tmp_path / "last.npz"))
    assert len(reads) == 7, reads


def test_a_fit_many_checkpoint_reads_the_statistics_once_and_a_frozen_models_state_with_the_rest(cupy, tmp_path,
                                                                                                monkeypatch):
    """`fit_many`'s checkpoint: the optimizer's m and v (2, whatever the number of frozen models: a read per
    frozen model and name before), the batch's last good copy (1), each kept row's weights (one each), every copy's
    statistics (1: one per array before) and the stack's state (its (K, P) buffer once and its statistics: 2, were
    one per array). 34 and 55 reads became 9 and 12 here."""
    made = []
    save = xdl.train.many.ManyTrainer.save_checkpoint

    def counted_save(self, path):
        rows = sum(row is not None for kept in self._kept.values() for row in kept)
        out, reads = reads_of(cupy, lambda: save(self, path))
        made.append((len(reads), rows))
        return out

    monkeypatch.setattr(xdl.train.many.ManyTrainer, "save_checkpoint", counted_save)
    X, y = data()
    configs = [TrainConfig(lr=1e-3 * (k + 1), seed=k, epochs=2, patience=2, hidden=[12, 10], batch_norm=True,
                           dropout=0.1, batch_size=BATCH) for k in range(3)]
    fit_many(configs, X, y, dev=(X[:32], y[:32]), callbacks=[Checkpoint(tmp_path)])
    assert made and all(reads == 6 + rows for reads, rows in made), made
    assert any(rows == 6 for _, rows in made), made  # (the last: every model's best and final rows, all frozen)


def test_a_stacked_optimizers_state_is_one_read_per_name_with_frozen_models(cupy):
    models = [xdl.nn.mlp(8, [12], 3) for _ in range(3)]
    stacked = xdl.nn.stack(models)
    opt = xdl.optim.StackedOptimizer(stacked, [xdl.optim.Adam(m, lr=1e-2) for m in models])
    X, y = data()
    loss = xdl.losses.SoftmaxCrossEntropy()
    for step in range(4):
        if step == 2:
            opt.freeze(0)
            opt.freeze(2)
        stacked.zero_grad()
        out = stacked(cupy.asarray(X[:16]))
        cost = sum(loss(out[:, k], cupy.asarray(y[:16])) for k in range(3))
        cost.backward()
        opt.step()
    expected = {name: a.get() for name, a in opt.state_arrays().items()}
    for k, rows in opt._paused.items():
        for name, row in rows.items():
            expected[name][k] = row.get()
    state, reads = reads_of(cupy, opt.state_dict)
    assert len(reads) == 2, reads
    assert sorted(state["state"]) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(state["state"][name], value, err_msg=name)
