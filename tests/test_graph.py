"""Captured steps: the optimizer's values in device memory, `xdl.cuda_graph`, `Trainer(capture=...)`.

On the CPU a stand-in for graph capture (`emulated_capture`) runs the Trainer's captured path: the
warm-up for real, the "capture" call with every array the step writes restored afterwards (a
capture runs nothing), and each replay as the step's array work with its host effects deferred to
the graph, as a CUDA graph replays kernels and no Python. It checks the path's bookkeeping: static
inputs, device counters, warm-up results, host effects. On cupy the same tests capture for real.
"""

import os
import signal
import warnings

import numpy as np
import pytest

import xdl
import xdl.flat
import xdl.graph
import xdl.train.captured
import xdl.train.trainer
from xdl.backend import CaptureError
from xdl.data import split
from xdl.losses import SoftmaxCrossEntropy
from xdl.optim.optimizer import MAX_STEPS
from xdl.optim import schedules
from xdl.tensor import note_written
from xdl.train import Trainer


# -- the optimizer's values in device memory ----------------------------------------------------
def test_the_held_rate_follows_lr_and_a_manual_change(backend):
    w = xdl.tensor(np.zeros(3), requires_grad=True)
    opt = xdl.optim.Adam([w], lr=0.01, beta1=0.8)
    g = opt.groups[0]
    assert g.held_names == ("lr", "beta1", "beta2", "eps", "weight_decay")
    np.testing.assert_array_equal(backend.to_numpy(g.held), [0.01, 0.8, 0.999, 1e-8, 0.0])
    opt.lr = 0.5  # between epochs: written at once, before any step
    assert backend.to_numpy(g.held)[0] == 0.5


def test_the_step_count_lives_on_the_device_and_follows_t(backend):
    w = xdl.tensor(np.ones(4), requires_grad=True)
    opt = xdl.optim.Adam([w], lr=0.1)
    for _ in range(3):
        opt.minimize(lambda: (w * w).sum())
    assert opt.t == 3 and int(backend.to_numpy(opt.steps_done)[0]) == 3
    opt.t = 7
    assert int(backend.to_numpy(opt.steps_done)[0]) == 7


def test_adam_reading_its_step_from_the_counter_matches_the_host_step(backend):
    rng = np.random.default_rng(0)
    p0, g0 = rng.standard_normal(1031), rng.standard_normal(1031)
    arrays = {}
    for how in ("host", "counter"):
        p, g, m, v = (backend.asarray(a.copy()) for a in (p0, g0, np.zeros(1031), np.zeros(1031)))
        for t in range(1, 6):
            if how == "host":
                backend.ops.adam_update(p, g, m, v, 0.01, 0.9, 0.999, 1e-8, t, 0.01)
            else:
                held = backend.asarray(np.array([0.01, 0.9, 0.999, 1e-8, 0.01]))
                backend.ops.adam_update(p, g, m, v, *(held[i:i + 1] for i in range(4)), 1, held[4:5],
                                        steps_done=backend.asarray(np.array([t - 1])))
        arrays[how] = backend.to_numpy(p)
    np.testing.assert_allclose(arrays["counter"], arrays["host"], rtol=1e-15 if backend.name == "numpy" else 1e-12)


# -- xdl.cuda_graph ---------------------------------------------------------------------------------
def test_cuda_graph_on_the_cpu_says_it_needs_cupy_before_anything_runs():
    calls = []
    with xdl.use("numpy"), pytest.raises(CaptureError, match="CUDA graphs need the cupy backend") as refused:
        xdl.cuda_graph(lambda: calls.append(1), warmup=2)
    assert calls == [] and refused.value.warmup_result is None  # the caller calls its step itself
    with pytest.raises(CaptureError, match="on the numpy backend call the step itself"):
        xdl.cuda_graph(lambda: None, backend="cpu")  # backend as model.to takes it
    with pytest.raises(TypeError, match=r"cuda_graph: backend must be a backend name .* got 0$"):
        xdl.cuda_graph(lambda: None, backend=0)


@pytest.mark.parametrize("fails", ["on the cpu", "in the capture"])
def test_a_refused_capture_leaves_no_cycle_holding_the_callers_model(monkeypatch, fails):
    """cuda_graph held its error in a local, and the error's traceback held that frame: a cycle through
    every frame between (the caller's too), so a model the caller dropped — its weights, gradients and
    the step's activations — lived on until a full garbage collection, as flat buffers once did."""
    import contextlib
    import gc
    import types
    import weakref

    if fails == "in the capture":
        recorder = types.SimpleNamespace(begin=lambda: None, capturing=lambda: False, end=lambda: None)
        fake = types.SimpleNamespace(supports_graphs=True, captured_constants=lambda: [],
                                     graph_scope=contextlib.contextmanager(lambda: (yield recorder)))
        monkeypatch.setattr(xdl.graph, "current_backend", lambda: fake)

    def train():
        model = xdl.nn.mlp(3, [4], 2)

        def step():
            if xdl.graph.capturing():
                raise ValueError("not capturable")
            return model

        with pytest.raises(CaptureError):
            xdl.graph.cuda_graph(step)
        return weakref.ref(model.parameters()[0]._flat[0])

    enabled = gc.isenabled()
    gc.disable()
    try:
        assert train()() is None
    finally:
        if enabled:
            gc.enable()


@pytest.mark.parametrize("warmup", [-1, 1.5, True])
def test_cuda_graph_refuses_a_bad_warmup(warmup):
    with pytest.raises(ValueError, match="warmup must be an integer"):
        xdl.cuda_graph(lambda: None, warmup=warmup)


def test_host_effects_run_now_outside_a_capture_and_are_kept_for_replays_inside():
    ran = []
    xdl.graph.host_effect(lambda: ran.append(1))
    assert ran == [1] and not xdl.graph.capturing()
    xdl.graph.require_not_capturing("anything")  # not capturing: nothing to refuse


def test_a_capture_started_within_another_ones_warm_up_is_refused_not_waited_for(monkeypatch):
    """The inner call waited for the lock the outer one held: forever."""
    import contextlib
    import types

    recorder = types.SimpleNamespace(begin=lambda: None, capturing=lambda: False, end=lambda: None)
    fake = types.SimpleNamespace(supports_graphs=True, captured_constants=lambda: [],
                                 graph_scope=contextlib.contextmanager(lambda: (yield recorder)))
    monkeypatch.setattr(xdl.graph, "current_backend", lambda: fake)
    with pytest.raises(CaptureError, match=r"a capture is already recording \(captures do not nest\)"):
        xdl.graph.cuda_graph(lambda: xdl.graph.cuda_graph(lambda: None))
    assert not xdl.graph._one_capture.locked() and not xdl.graph._capture.scope


def test_a_capture_records_its_own_threads_effects_only():
    """A step of another thread (a prediction, a Trainer.evaluate beside a captured training) was
    refused as if captured, or its host effects (an optimizer's step count) went to the graph."""
    import threading

    xdl.graph._capture.effects = recorded = []  # as while this thread records a step
    seen = []

    def elsewhere():
        seen.append(xdl.graph.capturing())
        xdl.graph.host_effect(lambda: seen.append("ran"))
        xdl.graph.require_not_capturing("a loss check")

    try:
        worker = threading.Thread(target=elsewhere)
        worker.start()
        worker.join()
        assert seen == [False, "ran"] and recorded == [] and xdl.graph.capturing()
    finally:
        xdl.graph._capture.effects = None


@pytest.fixture
def cupy_backend():
    """The cupy backend, seeded (the test skipped without a GPU)."""
    from tests.conftest import cupy_available

    if not cupy_available():
        pytest.skip("needs cupy and a GPU")
    with xdl.use("cupy") as backend:
        xdl.seed(0)
        yield backend


def user_step(model, opt, x, backend):
    """A user's training step on the fixed input array ``x`` (32 rows) and labels of 0, as the README writes
    one for `xdl.cuda_graph`."""
    loss = SoftmaxCrossEntropy()
    y = loss.prepare(backend.asarray(np.zeros(32, np.int64)), (32, 3), backend, model.dtype)  # (checked once)

    def step():
        opt.zero_grad()
        cost = loss.compute(model(xdl.Tensor(x, backend=backend)), y)
        cost.backward()
        opt.step()
        return cost.data
    return step


@pytest.mark.gpu
def test_a_captured_user_step_replays_with_new_inputs_and_counts_the_optimizer_steps(cupy_backend):
    backend = cupy_backend
    model = xdl.nn.mlp(5, [16], 3, batch_norm=True)
    opt = xdl.optim.Adam(model, lr=0.01)
    x = backend.asarray(np.zeros((32, 5), np.float32))
    step = user_step(model, opt, x, backend)
    rng = np.random.default_rng(0)
    x[...] = backend.asarray(rng.standard_normal((32, 5)).astype(np.float32))
    graph = xdl.cuda_graph(step)
    assert opt.t == 1  # the warm-up step; the capture counts nothing
    costs = []
    for _ in range(5):
        x[...] = backend.asarray(rng.standard_normal((32, 5)).astype(np.float32))
        costs.append(float(graph()))
    assert opt.t == 6 and int(backend.to_numpy(opt.steps_done)[0]) == 6
    assert len(set(costs)) == 5 and all(np.isfinite(costs))
    nodes = graph.nodes()  # the step's launches, read from CUDA's DOT dump of the graph
    assert nodes is not None and nodes.get("KERNEL", 0) > 10, nodes


@pytest.mark.gpu
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("convert", ["astype", "to_and_back", "freeze"])
def test_a_captured_step_of_a_converted_model_is_refused_before_its_graph_replays(cupy_backend, convert,
                                                                                   batch_norm):
    """A graph reads and writes memory by address: after ``model.astype`` or ``model.to`` (new flat buffers, new
    running statistics) a replay updated the old parameters the optimizer holds, and wrote the batch norm's
    statistics into memory freed since — on a GPU the pool's next array's (the stand-in: an illegal address);
    a parameter frozen since went on moving. Refused before the replay runs, as an eager step is; a step
    captured again trains the converted model."""
    backend = cupy_backend
    model = xdl.nn.mlp(5, [16], 3, batch_norm=batch_norm)
    inputs = np.random.default_rng(0).standard_normal((32, 5))

    def captured(model):
        opt = xdl.optim.Adam(model, lr=0.01)
        return opt, xdl.cuda_graph(user_step(model, opt, backend.asarray(inputs.astype(model.dtype)), backend))

    opt, graph = captured(model)
    graph()
    if convert == "astype":
        model.astype(np.float64)
    elif convert == "to_and_back":
        model.to("numpy").to(backend)
    else:
        model[0].weight.requires_grad = False
    with pytest.raises((RuntimeError, ValueError),
                       match="capture the step again|make the optimizer after that|frozen now") as refused:
        graph()
    assert "IllegalAddress" not in str(refused.value) and opt.t == 2  # refused before the replay ran
    before = model.state_dict()
    opt, graph = captured(model)  # captured again: the converted model trains
    graph()
    assert opt.t == 2 and any((before[k] != v).any() for k, v in model.state_dict().items())


@pytest.mark.gpu
@pytest.mark.parametrize("change", ["buffer assigned", "buffer added again", "buffer deleted", "parameter assigned",
                                    "packed by another optimizer", "packed anew", "left-out unfrozen", "group added",
                                    "first steps loaded", "count set to its most", "count replayed to its most"])
def test_a_change_after_a_passed_replay_check_refuses_the_next_replay(cupy_backend, change):
    """A graph whose checks passed skips them while nothing they read changed (`xdl.graph.CheckedState`: a steady
    replay compares one count); each change they read is noted, so the replay after it is refused before it runs,
    as an eager step is — without its note, the replay wrote a buffer freed since (the stand-in: an illegal
    address), left a group it never captured untrained, passed Adam the old first step, or wrapped the count."""
    backend = cupy_backend
    model = xdl.nn.mlp(5, [16], 3, batch_norm=True)
    if change == "left-out unfrozen":
        model[3].bias.requires_grad = False  # left out by the optimizer
    opt = xdl.optim.Adam(model, lr=0.01)
    other = xdl.nn.mlp(5, [4], 3)  # (its parameters placed in its own buffer now: adding them places nothing)
    x = backend.asarray(np.random.default_rng(0).standard_normal((32, 5)).astype(np.float32))
    graph = xdl.cuda_graph(user_step(model, opt, x, backend))
    if change == "count replayed to its most":
        opt.t = MAX_STEPS - 2  # (the two replays below count it to its most)
    graph()  # checked
    graph()  # not checked again: nothing changed
    if change == "buffer assigned":
        model[1].running_mean = backend.xp.zeros(16, dtype=np.float32)
    elif change == "buffer added again":
        model[1].add_buffer("running_mean", np.zeros(16))
    elif change == "buffer deleted":
        del model[1].running_var
    elif change == "parameter assigned":
        model[0].weight = xdl.Parameter(backend.asarray(np.ones((5, 16), np.float32)))
    elif change == "packed by another optimizer":  # (not back to back in the model's buffer: packed anew)
        xdl.optim.SGD([model[0].weight, model[3].bias], lr=0.1)
    elif change == "packed anew":  # (what that optimizer's packing does, without its own group's note)
        xdl.flat.pack([model[0].weight, model[3].bias])
    elif change == "left-out unfrozen":
        model[3].bias.requires_grad = True
    elif change == "group added":
        opt.add_param_group({"params": other.parameters()})
    elif change == "first steps loaded":
        state = opt.state_dict()
        opt.load_state_dict({**state, "first_steps": [2]})
    elif change == "count set to its most":
        opt.t = MAX_STEPS
    t = opt.t
    with pytest.raises((RuntimeError, ValueError, AttributeError, OverflowError),
                       match="capture the step again|frozen|has no attribute|another step would wrap") as refused:
        graph()
    assert "IllegalAddress" not in str(refused.value) and opt.t == t  # refused before the replay ran


@pytest.mark.gpu
@pytest.mark.parametrize("convert", ["astype", "to_and_back"])
def test_a_captured_forward_reading_buffers_only_is_refused_after_they_are_converted(cupy_backend, convert):
    """A model of buffers and no parameters (nothing packed anew, noting the change): its conversion notes its
    buffers' (`CheckedState`), so a captured forward reading them by address is refused, not replayed on memory
    freed since."""
    backend = cupy_backend

    class Offset(xdl.nn.Module):
        def __init__(self):
            super().__init__()
            self.add_buffer("offset", np.arange(5.0))

        def forward(self, x):
            return x + xdl.Tensor(self.offset)

    model = Offset()
    x = xdl.Tensor(backend.asarray(np.ones((4, 5), np.float32)), backend=backend)
    graph = xdl.cuda_graph(lambda: model(x).data)
    graph()
    graph()
    if convert == "astype":
        model.astype(np.float64)
    else:
        model.to("numpy").to(backend)
    with pytest.raises(RuntimeError, match="capture the step again") as refused:
        graph()
    assert "IllegalAddress" not in str(refused.value)


@pytest.mark.gpu
@pytest.mark.parametrize("convert", ["astype", "to_and_back"])
def test_the_refusal_of_a_moved_models_replay_names_the_optimizer_to_make_again(cupy_backend, convert):
    """The replay's refusal says what to do: capturing the step again with the optimizer made before the move
    is refused in turn (it holds the old copies), so the message asks for the optimizer made anew too."""
    backend = cupy_backend
    model = xdl.nn.mlp(5, [16], 3)
    inputs = np.random.default_rng(0).standard_normal((32, 5))
    opt = xdl.optim.SGD(model, lr=0.01)
    graph = xdl.cuda_graph(user_step(model, opt, backend.asarray(inputs.astype(np.float32)), backend))
    if convert == "astype":
        model.astype(np.float64)
    else:
        model.to("numpy").to(backend)
    x = backend.asarray(inputs.astype(model.dtype))
    with pytest.raises(RuntimeError, match="capture the step again") as refused:
        graph()
    assert "optimizer" in str(refused.value) and "made anew" in str(refused.value)
    with pytest.raises(RuntimeError, match="make the optimizer after that"):
        xdl.cuda_graph(user_step(model, opt, x, backend))  # the old optimizer: refused, as the message says
    opt = xdl.optim.SGD(model, lr=0.01)
    xdl.cuda_graph(user_step(model, opt, x, backend))()  # as the message says: trains
    assert opt.t == 2


@pytest.mark.gpu
@pytest.mark.parametrize("convert", ["astype", "to_and_back"])
def test_a_captured_forward_of_a_moved_model_is_refused_before_its_graph_replays(cupy_backend, convert):
    """A graph of a forward alone (no optimizer, no buffers: an MLP's predictions) reads the parameters by
    address: after ``model.astype`` or ``model.to`` (new flat buffers) its replay read memory
    freed since — the pool's next array on a GPU, an illegal address on the stand-in. Refused before it
    replays; a forward captured again reads the model's parameters where they are."""
    backend = cupy_backend
    model = xdl.nn.mlp(5, [16, 8], 3)
    inputs = np.random.default_rng(1).standard_normal((4, 5))
    x = xdl.Tensor(backend.asarray(inputs.astype(np.float32)), backend=backend)
    graph = xdl.cuda_graph(lambda: model(x).data)
    graph()
    if convert == "astype":
        model.astype(np.float64)
        x = xdl.Tensor(backend.asarray(inputs), backend=backend)
    else:
        model.to("numpy").to(backend)
    with pytest.raises(RuntimeError, match="capture the step again") as refused:
        graph()
    assert "IllegalAddress" not in str(refused.value)
    graph = xdl.cuda_graph(lambda: model(x).data)
    graph()
    want = xdl.backend.array_to_numpy(model(x).data)
    np.testing.assert_allclose(xdl.backend.array_to_numpy(graph.result), want, rtol=1e-6)


def test_a_write_noted_in_a_captured_step_is_counted_at_each_replay_not_at_the_capture():
    """count(w) ← count at each replay: a capture writes nothing and a replay runs no Python, so an
    optimizer's note_written, run once at the capture, refused a graph recorded before a capture
    of warmup=0 (nothing written) and let one recorded before graph() backpropagate the old
    activations through the weights a replay wrote, silently."""
    w = xdl.tensor(np.ones(3), requires_grad=True)
    before = (w * w).sum()
    xdl.graph._capture.effects = effects = []  # as while this thread records a step
    try:
        note_written([w])  # an optimizer's step under capture: recorded, not made
    finally:
        xdl.graph._capture.effects = None
    before.backward()  # nothing was written: accepted
    recorded = (w * w).sum()
    for effect in effects:  # a replay: its kernels wrote w, then its host effects run
        effect()
    with pytest.raises(RuntimeError, match="written in place"):
        recorded.backward()


@pytest.mark.gpu
def test_backward_through_a_graph_recorded_before_a_replayed_step_is_refused(cupy_backend):
    """As after an eager step (`xdl.tensor.WriteClock`): a replay wrote the weights the graph read."""
    backend = cupy_backend
    model = xdl.nn.mlp(5, [16], 3)
    opt = xdl.optim.SGD(model, lr=0.1)
    x = xdl.Tensor(backend.asarray(np.random.default_rng(0).standard_normal((32, 5)).astype(np.float32)))

    def step():
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()

    graph = xdl.cuda_graph(step)
    out = model(x).sum()
    graph()
    with pytest.raises(RuntimeError, match="written in place"):
        out.backward()


# -- Trainer(capture=...) ----------------------------------------------------------------------------
def moons(m=600):
    X, y = xdl.datasets.moons(m, noise=0.2, seed=0)
    return split(X, y, seed=0)


def weights(backend, model):
    return np.concatenate([backend.to_numpy(p.data).ravel() for p in model.parameters()])


def trainer(capture, epochs=3, dropout=0.2, lr=0.01, optimizer=None, **kwargs):
    xdl.seed(0)
    model = xdl.nn.mlp(2, [32, 16], 2, batch_norm=True, dropout=dropout)
    opt = optimizer(model) if optimizer is not None else xdl.optim.Adam(model, lr=lr)
    return Trainer(model, SoftmaxCrossEntropy(), opt, batch_size=50, epochs=epochs, seed=3, progress=False,
                   capture=capture, **kwargs)


class EmulatedGraph:
    def __init__(self, fn, arrays, effects, result, warmup_result, version):
        self.fn, self.arrays, self.effects = fn, arrays, effects
        self.result, self.warmup_result = result, warmup_result
        self.version = version  # the step's Python runs again here: check a real graph would not be stale

    def __call__(self):
        assert self.version(), "replayed a graph captured before a model was frozen"
        xdl.graph._capture.effects = []  # the replayed work's host effects are the graph's, run below
        try:
            out = self.fn()
        finally:
            xdl.graph._capture.effects = None
        for effect in self.effects:
            effect()
        for target, value in zip(self.result, out):  # a replay writes the arrays of the capture
            if target is not None:
                target[...] = value
        return self.result


def emulated_capture(monkeypatch, tr):
    """Make the numpy backend capture for ``tr``'s steps (see the module docstring)."""
    monkeypatch.setattr(xdl.backend.NumpyBackend, "supports_graphs", True)

    def written_arrays():
        opt = tr.optimizer
        # (the step counts — the dropout key's and the epoch's — and the epoch's costs and hits the steps write)
        arrays = [opt.steps_done, tr._captured._steps, *tr._captured._totals]
        if isinstance(opt, xdl.optim.StackedOptimizer):  # fit_many's K models
            arrays += [r.held for r in opt.regions] + list(opt._state.values()) + [tr.model.data, tr.model.grad]
        else:
            arrays += [g.held for g in opt.groups]
            arrays += [a for g in opt.groups for st in g.state for a in st.values()]
            arrays += [a for g in opt.groups for f in g.flats for a in (f.data, f.grad)]
        return arrays + [a for _, a in tr.model.named_buffers()]

    def cuda_graph(fn, backend=None, warmup=1):
        captures.append(fn)
        warmup_result = None
        for _ in range(warmup):
            warmup_result = fn()
        saved = [a.copy() for a in written_arrays()]
        effects = []
        xdl.graph._capture.effects = effects
        try:
            result = fn()
        except CaptureError as error:
            error.warmup_result = warmup_result
            raise
        finally:
            xdl.graph._capture.effects = None
            for a, s in zip(written_arrays(), saved):
                a[...] = s
        result = tuple(None if r is None else np.array(r) for r in result)
        captured_under = getattr(tr.optimizer, "version", None)
        training = fn.__name__ == "counted_step"  # an evaluation pass does not depend on what is frozen
        return EmulatedGraph(fn, written_arrays(), effects, result, warmup_result,
                             lambda: not training or getattr(tr.optimizer, "version", None) == captured_under)

    monkeypatch.setattr(xdl.train.captured, "cuda_graph", cuda_graph)
    captures = []
    return captures  # one entry per capture made


def captured_trainer(monkeypatch, backend, **kwargs):
    tr = trainer("auto", **kwargs)
    if backend.name == "numpy":
        emulated_capture(monkeypatch, tr)
    assert tr.eager_reason() is None
    return tr


def test_a_captured_run_ends_with_the_eager_runs_weights(backend, monkeypatch):
    """Dropout on, an inverse-time schedule, a last batch of another size (360 = 7·50 + 10)."""
    s = moons()
    runs = {}
    for how in ("eager", "captured"):
        tr = trainer(False) if how == "eager" else captured_trainer(monkeypatch, backend)
        tr.schedule = schedules.inverse_time(0.01, decay_rate=1.0)
        history = tr.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
        assert how == "eager" or tr.eager_reason() is None  # captured to the end, no failure
        runs[how] = (weights(backend, tr.model), history.records, tr.optimizer.t)
    (w_eager, h_eager, t_eager), (w_captured, h_captured, t_captured) = runs["eager"], runs["captured"]
    assert t_eager == t_captured == 3 * 8
    np.testing.assert_array_equal(w_captured, w_eager)  # bitwise: the same kernels in the same order
    for a, b in zip(h_eager, h_captured, strict=True):
        timed = ("seconds", "step_seconds")  # the wall clock differs; every measured figure is the same
        assert {k: v for k, v in a.items() if k not in timed} == {k: v for k, v in b.items() if k not in timed}


def test_a_captured_run_with_a_batch_norm_in_evaluation_ends_as_an_eager_one(backend, monkeypatch):
    """A batch norm the user put in evaluation stays so in the steps (its running statistics fixed,
    the rest training): the captured steps replay that mode, as the eager ones run it."""
    s = moons()
    runs = {}
    for how in ("eager", "captured"):
        tr = trainer(False) if how == "eager" else captured_trainer(monkeypatch, backend)
        first = next(m for m in tr.model.layers if isinstance(m, xdl.nn.BatchNorm))
        first.eval()
        before = backend.to_numpy(first.running_mean).copy()
        tr.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
        assert how == "eager" or tr.eager_reason() is None
        assert not first.training
        np.testing.assert_array_equal(backend.to_numpy(first.running_mean), before)
        runs[how] = weights(backend, tr.model)
    np.testing.assert_array_equal(runs["captured"], runs["eager"])


def test_changing_lr_between_epochs_changes_a_captured_run_as_an_eager_one(backend, monkeypatch):
    from xdl.train import Callback

    class Halve(Callback):
        def on_epoch_end(self, trainer, record):
            trainer.optimizer.lr = trainer.optimizer.lr / 2

    s = moons()
    ends = {}
    for how in ("eager", "captured"):
        tr = trainer(False, callbacks=[Halve()]) if how == "eager" else \
            captured_trainer(monkeypatch, backend, callbacks=[Halve()])
        tr.fit(s.X_train, s.y_train)
        assert how == "eager" or tr.eager_reason() is None
        ends[how] = weights(backend, tr.model)
    np.testing.assert_array_equal(ends["captured"], ends["eager"])


def test_a_flag_set_through_param_groups_captures_the_step_again(backend, monkeypatch):
    """Nesterov's flag is compiled into the update, not held on the device: setting it between
    epochs counts the optimizer's version, so a captured run captures its step again and ends as
    the eager run (the emulation asserts no graph is replayed past its version)."""
    from xdl.train import Callback

    class Toggle(Callback):
        def on_epoch_end(self, trainer, record):
            for group in trainer.optimizer.param_groups:
                group["nesterov"] = not group["nesterov"]

    def momentum(model):
        return xdl.optim.Momentum(model, lr=0.05, beta=0.9)

    s = moons()
    ends = {}
    for how in ("eager", "captured"):
        tr = trainer(False, optimizer=momentum, callbacks=[Toggle()]) if how == "eager" else \
            captured_trainer(monkeypatch, backend, optimizer=momentum, callbacks=[Toggle()])
        tr.fit(s.X_train, s.y_train)
        assert tr.optimizer.version == 3 and (how == "eager" or tr.eager_reason() is None)
        ends[how] = weights(backend, tr.model)
    np.testing.assert_array_equal(ends["captured"], ends["eager"])


def test_a_nan_cost_in_a_captured_run_stops_with_the_epoch_and_step(backend, monkeypatch):
    s = moons()
    tr = captured_trainer(monkeypatch, backend, dropout=0.0)
    tr.optimizer = xdl.optim.SGD(tr.model, lr=0.1)
    tr.fit(s.X_train, s.y_train)
    tr.epochs = 5
    tr.optimizer.lr = 1e30  # between epochs, as a schedule would: the captured steps explode
    with pytest.raises(FloatingPointError, match=r"epoch 4, step \d+"), np.errstate(all="ignore"):
        tr.fit(s.X_train, s.y_train)


@pytest.mark.parametrize("setup, reason", [
    (dict(augment=lambda X, rng: X), "augmentation runs on the host"),
    (dict(lr_schedule=True), "per-step schedule"),
    (dict(check_finite=True), "check_finite"),
])
def test_auto_runs_eagerly_where_a_step_needs_the_host_and_says_why(setup, reason, monkeypatch):
    with xdl.use("numpy"):
        monkeypatch.setattr(xdl.backend.NumpyBackend, "supports_graphs", True)  # as if on a GPU
        xdl.seed(0)
        model = xdl.nn.mlp(2, [8], 2)
        lr = schedules.inverse_time(0.1, decay_rate=1.0) if setup.pop("lr_schedule", False) else 0.1
        opt = xdl.optim.Adam(model, lr=lr, check_finite=setup.pop("check_finite", False))
        tr = Trainer(model, SoftmaxCrossEntropy(), opt, progress=False, **setup)
        assert reason in tr.eager_reason()
        s = moons(200)
        with pytest.raises(ValueError, match="capture=True, but this run.s steps cannot be captured: .*" + reason):
            Trainer(model, SoftmaxCrossEntropy(), opt, progress=False, capture=True, **setup).fit(s.X_train, s.y_train)
        assert opt.t == 0  # refused before any work


class PerStepFromEpoch2(xdl.train.Callback):
    """Sets a per-step lr schedule at the first epoch's end: the next epochs' steps need the host."""

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == 1:
            trainer.optimizer.lr = schedules.inverse_time(0.01, decay_rate=1.0)


def test_auto_says_once_why_steps_run_eagerly_when_a_callback_makes_them_need_the_host(backend, monkeypatch):
    """A per-step schedule set at an epoch's end (or check_finite turned on) makes the next epochs' steps need
    the host: they ran eagerly without a word, where the same schedule set by a step hook warned ("steps run
    eagerly from here on") — and the run's log line had said its steps were captured."""
    tr = captured_trainer(monkeypatch, backend, epochs=4, callbacks=[PerStepFromEpoch2()])
    s = moons()
    with pytest.warns(UserWarning, match="steps run eagerly from here on: the optimizer's lr is a per-step") as said:
        tr.fit(s.X_train, s.y_train)
    assert len([w for w in said if "eagerly" in str(w.message)]) == 1  # once, not at each epoch
    assert "per-step schedule" in tr.eager_reason()


def test_auto_says_nothing_anew_of_steps_eager_from_the_fits_start(backend, monkeypatch):
    """Steps eager from the fit's start (check_finite: the run's log line said so) stay eager when a callback
    sets a per-step schedule: the reason changes, not the steps, and "steps run eagerly from here on" was said."""
    tr = trainer("auto", epochs=3, callbacks=[PerStepFromEpoch2()],
                 optimizer=lambda model: xdl.optim.Adam(model, lr=0.01, check_finite=True))
    if backend.name == "numpy":
        emulated_capture(monkeypatch, tr)
    assert "check_finite" in tr.eager_reason()
    s = moons()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tr.fit(s.X_train, s.y_train)
    assert "per-step schedule" in tr.eager_reason() and len(tr.history.records) == 3


def test_capture_true_refuses_a_callbacks_change_that_makes_the_steps_eager(backend, monkeypatch):
    """capture=True insists: a per-step schedule set at an epoch's end is refused at the next epoch's start,
    as `fit` refuses it and as the same change made by a step hook fails its capture — the run's epochs after
    it ran eagerly, without a word."""
    tr = captured_trainer(monkeypatch, backend, epochs=4, callbacks=[PerStepFromEpoch2()])
    tr.capture = True
    s = moons()
    with pytest.raises(ValueError, match="epoch 2: capture=True, but this run's steps cannot be captured: the "
                                         "optimizer's lr is a per-step schedule"):
        tr.fit(s.X_train, s.y_train)
    assert tr.epoch == 1 and tr.step == 0 and len(tr.history.records) == 1


class HeadFirst(xdl.nn.Module):
    """A model of a user's own whose last registered layer is not its last: 16 wide, outputs 2."""

    def __init__(self):
        super().__init__()
        self.head = xdl.nn.Dense(16, 2)
        self.body = xdl.nn.Dense(2, 16)

    def forward(self, x):
        return self.head(self.body(x).relu())


def test_targets_are_shaped_for_the_models_real_output_and_its_steps_captured(monkeypatch):
    """The Trainer reads the output's shape from a forward pass of one example — not from the last
    layer that declares a width (16 here, which shaped nothing right) — so the targets are
    prepared once and the steps can be captured."""
    with xdl.use("numpy"):
        monkeypatch.setattr(xdl.backend.NumpyBackend, "supports_graphs", True)
        xdl.seed(0)
        model = HeadFirst()
        tr = Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model), epochs=2, progress=False, capture="auto")
        assert tr.eager_reason() is None
        s = moons(200)
        X, y = tr._check(s.X_train, s.y_train)
        assert tr._output_shape(X) == (2,) and y.dtype == np.int64 and tr._step_loss == tr.loss.compute
        with pytest.raises(ValueError, match=r"^y has class index 2, outside the model's 2 classes"):
            tr._check(s.X_train, np.where(s.y_train == 1, 2, 0))


def test_capture_true_on_the_cpu_is_refused_before_any_work():
    with xdl.use("numpy"):
        tr = trainer(True)
        s = moons(200)
        with pytest.raises(ValueError, match="the numpy backend has no CUDA graphs"):
            tr.fit(s.X_train, s.y_train)
        assert tr.optimizer.t == 0 and trainer(False).eager_reason() == "capture is off"


@pytest.mark.parametrize("capture", ["yes", 1, None, 0.0, np.True_])
def test_a_bad_capture_value_is_named(capture):
    with pytest.raises(ValueError, match="capture must be 'auto', True or False"):
        trainer(capture)


def test_a_layer_setting_a_callback_changes_captures_the_step_again(backend, monkeypatch):
    """A replay runs no Python: a Dropout's rate, a BatchNorm's momentum and the L2 strength are kernel
    arguments and constants of the graph, so a callback's change (a dropout schedule, PyTorch's
    ``model[3].p = 0.0``) went unread by a captured run while an eager one followed it. Each batch
    size (50, 10) is captured again after the change, once, and the run ends as the eager one."""
    from xdl.train import Callback

    class Schedule(Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 1:
                trainer.model.layers[3].rate = 0.0  # (mlp: Dense, BatchNorm, ReLU, Dropout, …)
                trainer.model.layers[1].momentum = 0.5
                trainer.l2 = 0.1

    s = moons()
    ends = {}
    for how in ("eager", "captured"):
        tr = trainer(False if how == "eager" else "auto", callbacks=[Schedule()])
        captures = emulated_capture(monkeypatch, tr) if how == "captured" and backend.name == "numpy" else None
        tr.fit(s.X_train, s.y_train)
        assert how == "eager" or tr.eager_reason() is None
        ends[how] = weights(backend, tr.model)
        if captures is not None:
            assert [fn.__name__ for fn in captures].count("counted_step") == 2 + 2
    np.testing.assert_array_equal(ends["captured"], ends["eager"])


@pytest.mark.parametrize("before, after", [(0.0, 0.2), (0.1, 0.3)], ids=["switched-on", "changed"])
def test_a_callbacks_trainer_l1_captures_the_step_again(backend, monkeypatch, before, after):
    """L1's λ₁/m is a constant of the captured graph (and at 0 the term is not in it): a callback's
    trainer.l1 = … is a setting the replay compares, as trainer.l2 — each batch size captured again,
    once, and the run ends as the eager one."""
    from xdl.train import Callback

    class Schedule(Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 1:
                trainer.l1 = after

    s = moons()
    ends = {}
    for how in ("eager", "captured"):
        tr = trainer(False if how == "eager" else "auto", callbacks=[Schedule()], l1=before)
        captures = emulated_capture(monkeypatch, tr) if how == "captured" and backend.name == "numpy" else None
        tr.fit(s.X_train, s.y_train)
        ends[how] = weights(backend, tr.model)
        if captures is not None:
            assert [fn.__name__ for fn in captures].count("counted_step") == 2 + 2
    np.testing.assert_array_equal(ends["captured"], ends["eager"])


class Tempered(xdl.nn.Module):
    """A model of one's own: logits = fc2(relu(fc1(x)))·scale, ``scale`` a plain attribute that no
    config names (a temperature, a residual weight, a warm-up factor)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = xdl.nn.Dense(2, 16), xdl.nn.Dense(16, 2)
        self.scale = 1.0

    def forward(self, x):
        return self.fc2(xdl.relu(self.fc1(x))) * self.scale


class WeightedCrossEntropy(SoftmaxCrossEntropy):
    """A loss of one's own: weight·softmax cross-entropy, ``weight`` a plain attribute."""

    def __init__(self):
        self.weight = 1.0

    def compute(self, logits, labels):
        return super().compute(logits, labels) * self.weight


def test_a_step_hooks_change_is_read_by_the_next_captured_step_as_by_an_eager_one(backend, monkeypatch):
    """A callback's ``on_step_end`` (Keras's ``on_train_batch_end``) that sets a Dropout's rate and the
    L2 strength, rebinds a weight's ``.data`` and puts a batch norm in evaluation after step 2: the
    settings were compared at each epoch's start only, so the replays went on with the old rate and
    L2 to the epoch's end, the rebound ``.data`` was trained nowhere (a replay updates the flat
    buffer; the weight ended as the hook left it, the epoch's updates lost) and the batch norm
    trained in evaluation eagerly only. Now compared after the hooks, as at an epoch's start (and
    the modes put back): the size-50 step is captured again at step 3, once — 50, 50, 10 in epoch 1,
    none in epoch 2 — and the run ends as the eager one."""
    from xdl.train import Callback

    class PerBatch(Callback):
        def __init__(self):
            self.steps = 0

        def on_step_end(self, trainer, cost):
            self.steps += 1
            if self.steps == 2:
                trainer.model.layers[3].rate = 0.0  # (mlp: Dense, BatchNorm, ReLU, Dropout, …)
                trainer.l2 = 0.5
                first = trainer.model.layers[0].weight
                first.data = first.data * 0.5
                trainer.model.layers[1].eval()

    s = moons()
    ends = {}
    for how in ("eager", "captured"):
        tr = trainer(False if how == "eager" else "auto", epochs=2, callbacks=[PerBatch()])
        captures = emulated_capture(monkeypatch, tr) if how == "captured" and backend.name == "numpy" else None
        tr.fit(s.X_train, s.y_train)
        assert how == "eager" or tr.eager_reason() is None
        ends[how] = weights(backend, tr.model)
        if captures is not None:
            assert [fn.__name__ for fn in captures].count("counted_step") == 3
    np.testing.assert_array_equal(ends["captured"], ends["eager"])


def test_an_attribute_a_callback_changes_in_a_model_or_loss_of_ones_own_captures_the_step_again(backend, monkeypatch):
    """A replay runs no Python: ``self.scale`` read by a model's forward, or ``self.weight`` by a
    loss's compute, is a constant of the graph, recorded at the capture. A callback halving the one
    and tripling the other each epoch was read by an eager run and not by a captured one, whose
    weights and history ended elsewhere without a word. Each of the 3 epochs captures its batch
    sizes (50, 10) and evaluation shapes again, and the run ends as the eager one, bit for bit."""
    from xdl.train import Callback

    class Anneal(Callback):
        def on_epoch_end(self, trainer, record):
            trainer.model.scale *= 0.5
            trainer.loss.weight *= 3.0

    s = moons()
    ends = {}
    for how in ("eager", "captured"):
        xdl.seed(0)
        model = Tempered()
        tr = Trainer(model, WeightedCrossEntropy(), xdl.optim.Adam(model, lr=0.01), batch_size=50, epochs=3, seed=3,
                     progress=False, capture=False if how == "eager" else "auto", callbacks=[Anneal()])
        captures = emulated_capture(monkeypatch, tr) if how == "captured" and backend.name == "numpy" else None
        history = tr.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
        assert how == "eager" or tr.eager_reason() is None
        ends[how] = (weights(backend, tr.model), [r["dev_cost"] for r in history.records])
        if captures is not None:
            assert [fn.__name__ for fn in captures].count("counted_step") == 3 * 2
    np.testing.assert_array_equal(ends["captured"][0], ends["eager"][0])
    assert ends["captured"][1] == ends["eager"][1]


def test_a_loss_a_callback_switches_to_takes_over_a_captured_run(backend, monkeypatch):
    """``trainer.loss = …`` mid-run (a loss weighted 0 from epoch 2 on): a captured run kept replaying
    the loss recorded with the step, as it kept a replaced optimizer's update; here the new loss has
    no gradient, so Adam's moments decay and the weights keep moving only as an eager run's do."""
    from xdl.train import Callback

    class Switch(Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 1:
                trainer.loss = WeightedCrossEntropy()
                trainer.loss.weight = 0.0

    s = moons()
    ends = {}
    for how in ("eager", "captured"):
        tr = trainer(False if how == "eager" else "auto", callbacks=[Switch()])
        captures = emulated_capture(monkeypatch, tr) if how == "captured" and backend.name == "numpy" else None
        history = tr.fit(s.X_train, s.y_train)
        assert how == "eager" or tr.eager_reason() is None
        ends[how] = (weights(backend, tr.model), history["train_cost"])
        if captures is not None:  # each batch size captured again with the new loss
            assert [fn.__name__ for fn in captures].count("counted_step") == 2 + 2
    np.testing.assert_array_equal(ends["captured"][0], ends["eager"][0])
    assert ends["captured"][1] == ends["eager"][1]


def test_a_loss_whose_eq_compares_arrays_switched_to_by_a_callback_takes_over_a_captured_run(backend, monkeypatch):
    """A class-weighted loss as a dataclass (its ``__eq__`` compares its fields, an array among them),
    replaced each epoch by a callback: a captured run compared the new loss with the one its graphs
    were recorded with by ``==``, and raised "The truth value of an array … is ambiguous" at epoch 2's
    start, where an eager run trained on. A loop's loss is the object its graph read: compared by
    identity."""
    import dataclasses

    from xdl.train import Callback

    @dataclasses.dataclass
    class ClassWeighted(SoftmaxCrossEntropy):
        weights: np.ndarray

        def compute(self, logits, labels):
            return super().compute(logits, labels) * float(self.weights[0])

    class Halve(Callback):
        def on_epoch_end(self, trainer, record):
            trainer.loss = ClassWeighted(np.array([0.5 ** record["epoch"], 1.0]))

    s = moons()
    ends = {}
    for how in ("eager", "captured"):
        tr = trainer(False if how == "eager" else "auto", callbacks=[Halve()])
        tr.loss = ClassWeighted(np.array([1.0, 1.0]))
        captures = emulated_capture(monkeypatch, tr) if how == "captured" and backend.name == "numpy" else None
        history = tr.fit(s.X_train, s.y_train)
        assert how == "eager" or tr.eager_reason() is None
        ends[how] = (weights(backend, tr.model), history["train_cost"])
        if captures is not None:  # each epoch's new loss: each batch size (50, 10) captured again
            assert [fn.__name__ for fn in captures].count("counted_step") == 3 * 2
    np.testing.assert_array_equal(ends["captured"][0], ends["eager"][0])
    assert ends["captured"][1] == ends["eager"][1]


def test_eval_train_switched_off_by_a_callback_counts_the_steps_hits_in_a_captured_run(backend, monkeypatch):
    """``trainer.eval_train = False`` from epoch 2 on: the train accuracy then comes from the
    steps' hits, which the step captured under eval_train=True does not count — a captured run
    recorded a train accuracy of 0.0 where an eager one measured it."""
    from xdl.train import Callback

    class Switch(Callback):
        def on_epoch_end(self, trainer, record):
            trainer.eval_train = False

    s = moons()
    accuracies = {}
    for how in ("eager", "captured"):
        tr = trainer(False, callbacks=[Switch()]) if how == "eager" else \
            captured_trainer(monkeypatch, backend, callbacks=[Switch()])
        history = tr.fit(s.X_train, s.y_train)
        accuracies[how] = history["train_accuracy"]
    assert min(accuracies["eager"]) > 0.5
    assert accuracies["captured"] == accuracies["eager"]


def test_a_layer_unfrozen_and_given_to_the_optimizer_by_a_callback_trains_in_a_captured_run(backend, monkeypatch):
    """Fine-tuning as `Optimizer.check_trainable`'s message says it: unfreeze, then
    ``optimizer.add_param_group``. The step recorded while the layer was frozen has neither its
    gradient nor its update, and no flag of the optimizer changed: replayed, the layer never moved
    on a GPU while an eager run trained it. Each batch size is captured again after the change."""
    from xdl.train import Callback

    class Unfreeze(Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 1:
                layer = trainer.model.layers[0]
                for p in layer.parameters():
                    p.requires_grad = True
                trainer.optimizer.add_param_group({"params": layer.parameters()})

    def frozen_first(model):
        for p in model.layers[0].parameters():
            p.requires_grad = False
        return xdl.optim.Adam(model, lr=0.01)

    s = moons()
    ends = {}
    for how in ("eager", "captured"):
        tr = trainer(False if how == "eager" else "auto", optimizer=frozen_first, callbacks=[Unfreeze()])
        first = backend.to_numpy(tr.model.layers[0].weight.data).copy()
        captures = emulated_capture(monkeypatch, tr) if how == "captured" and backend.name == "numpy" else None
        tr.fit(s.X_train, s.y_train)
        assert how == "eager" or tr.eager_reason() is None
        assert not np.array_equal(backend.to_numpy(tr.model.layers[0].weight.data), first)  # it trained
        ends[how] = weights(backend, tr.model)
        if captures is not None:
            assert [fn.__name__ for fn in captures].count("counted_step") == 2 + 2
    np.testing.assert_array_equal(ends["captured"], ends["eager"])


def test_an_optimizer_a_callback_switches_to_takes_over_a_captured_run(backend, monkeypatch):
    """``trainer.optimizer = SGD(...)`` mid-run (Adam's warm start, then SGD): a captured run kept
    replaying Adam's update, recorded with the step; here the new rate is 0, so the weights stop."""
    from xdl.train import Callback

    class Switch(Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 1:
                trainer.optimizer = xdl.optim.SGD(trainer.model, lr=0.0)
                self.after = weights(backend, trainer.model)

    s = moons()
    switch = Switch()
    tr = trainer("auto", callbacks=[switch])
    captures = emulated_capture(monkeypatch, tr) if backend.name == "numpy" else None
    tr.fit(s.X_train, s.y_train)
    assert tr.eager_reason() is None
    np.testing.assert_array_equal(weights(backend, tr.model), switch.after)
    if captures is not None:  # each batch size captured again with the new optimizer
        assert [fn.__name__ for fn in captures].count("counted_step") == 2 + 2


def test_a_parameter_rebound_by_a_callback_is_trained_in_its_place_by_a_captured_run(backend, monkeypatch):
    """``p.data = …`` in a callback (PyTorch's ``p.data = p.data.clamp(…)``) is written back into the
    flat buffer by the optimizer's zero_grad, which a replay does not run (the step's Python runs at
    its capture only): the graph trained the buffer, the parameter kept the callback's array, and
    the run's weights were lost to predict and save. Here each replay runs no Python at all: the
    parameters must be their buffer's views again from the next epoch on."""
    from xdl.flat import is_view_of
    from xdl.train import Callback

    class Clip(Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 1:
                for p in trainer.model.parameters():
                    p.data = trainer.model.backend.xp.clip(p.data, -0.5, 0.5)

    s = moons()
    tr = captured_trainer(monkeypatch, backend, epochs=2, callbacks=[Clip()])
    if backend.name == "numpy":
        monkeypatch.setattr(EmulatedGraph, "__call__", lambda graph: graph.result)  # no Python, as a CUDA graph
    tr.fit(s.X_train, s.y_train)
    assert tr.eager_reason() is None
    assert all(is_view_of(p, *p._flat) for p in tr.model.parameters())


def test_a_step_that_cannot_be_captured_goes_on_eagerly_under_auto_and_says_why(backend, monkeypatch):
    """A loss that reads the device from the host: the capture fails after its warm-up; "auto"
    warns once and trains on eagerly, ending as an eager run does."""
    s = moons()
    ends = {}
    for how in ("eager", "auto"):
        tr = trainer(False) if how == "eager" else captured_trainer(monkeypatch, backend)
        compute = tr.loss.compute

        def host_reading_loss(out, y, compute=compute):
            xdl.graph.require_not_capturing("a loss that reads the device")
            return compute(out, y)

        tr.loss.compute = host_reading_loss
        if how == "auto":
            with pytest.warns(UserWarning, match="steps run eagerly from here on: cannot capture a loss"):
                tr.fit(s.X_train, s.y_train)
            assert "a loss that reads the device" in tr.eager_reason()
        else:
            tr.fit(s.X_train, s.y_train)
        ends[how] = weights(backend, tr.model)
    np.testing.assert_array_equal(ends["auto"], ends["eager"])


def test_a_step_that_cannot_be_captured_stops_a_capture_true_run_with_why(backend, monkeypatch):
    """Under capture=True the capture's failure stands: the fit raises it, naming what could not be
    captured, where "auto" warns and trains on eagerly — an eager run is what the caller refused."""
    s = moons()
    tr = captured_trainer(monkeypatch, backend)
    tr.capture = True
    compute = tr.loss.compute

    def host_reading_loss(out, y):
        xdl.graph.require_not_capturing("a loss that reads the device")
        return compute(out, y)

    tr.loss.compute = host_reading_loss
    with pytest.raises(CaptureError, match="a loss that reads the device"):
        tr.fit(s.X_train, s.y_train)
    assert tr.epoch == 0 and tr._captured.failure is None  # (no epoch trained on eagerly)


# -- the memory of graphs: CupyBackend's bookkeeping, on a stand-in for cupy ----------------------
class FakePool:
    def __init__(self):
        self.used, self.freed = 0, 0

    def malloc(self, size):
        raise AssertionError("nothing allocates in these tests")

    def free_all_blocks(self):
        self.freed += 1

    def used_bytes(self):
        return self.used


class FakeStream:
    capturing = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def record(self):
        return None

    def wait_event(self, event):
        pass

    def is_capturing(self):
        return FakeStream.capturing


def fake_cupy():
    """Just enough of cupy for CupyBackend's graph scope and constants: the allocator in effect
    is recorded in ``cuda.allocator``."""
    import contextlib
    import types

    cuda = types.SimpleNamespace(allocator="outside", MemoryPool=FakePool, Stream=lambda non_blocking: FakeStream(),
                                 get_current_stream=FakeStream, get_allocator=lambda: cuda.allocator)

    @contextlib.contextmanager
    def using_allocator(allocator):
        before, cuda.allocator = cuda.allocator, allocator
        try:
            yield
        finally:
            cuda.allocator = before

    cuda.using_allocator = using_allocator
    return types.SimpleNamespace(cuda=cuda, random=np.random, asarray=np.asarray, ndarray=np.ndarray)


def test_a_graphs_pool_lives_with_it_and_caches_made_in_its_warm_up_do_not_come_from_it():
    from xdl.backend import CupyBackend

    cp = fake_cupy()
    backend = CupyBackend(cp)
    with backend.graph_scope() as recorder:
        pool = recorder.pool
        assert cp.cuda.allocator == pool.malloc  # the step allocates from the graph's own pool
        with backend.lasting_memory():
            assert cp.cuda.allocator == "outside"  # a cache: from the allocator outside
        backend.scalar(0.5, np.float32)  # a constant made in the warm-up
    assert cp.cuda.allocator == "outside" and backend._retired_pools == []
    pool.used = 64  # an array the graph returned is still held
    del recorder  # the graph is dropped
    assert backend._retired_pools == [pool] and pool.freed == 0  # nothing freed from a finalizer
    FakeStream.capturing = True
    try:
        backend.release_graph_memory()  # someone is capturing: not a safe point
        assert pool.freed == 0
    finally:
        FakeStream.capturing = False
    backend.release_graph_memory()
    assert pool.freed == 1 and backend._retired_pools == [pool]  # kept: its live block needs it
    pool.used = 0
    backend.release_graph_memory()
    assert backend._retired_pools == []


def test_a_graph_keeps_its_step_and_what_the_step_holds_alive():
    """A replay reads and writes the step's arrays by address: a graph made in a function that returns only
    it (xdl.bench.steps' xdl_step) must keep its step's model, optimizer and inputs alive, or each replay
    works on memory CuPy's pool has given to other arrays."""
    import contextlib
    import gc
    import types
    import weakref

    from xdl.backend import NumpyBackend

    class GraphBackend(NumpyBackend):  # graph bookkeeping only: begin, end, replay
        supports_graphs = True

        @contextlib.contextmanager
        def graph_scope(self):
            state = {"on": False}
            yield types.SimpleNamespace(begin=lambda: state.update(on=True), end=lambda: state.update(on=False),
                                        capturing=lambda: state["on"])

        def replay(self, graph):
            pass

    def graph_of_a_step():  # the step's arrays are held by its closure alone
        inputs = np.ones(4)
        return xdl.cuda_graph(lambda: inputs * 2, backend=GraphBackend(0)), weakref.ref(inputs)

    graph, inputs = graph_of_a_step()
    gc.collect()
    assert inputs() is not None
    del graph
    gc.collect()
    assert inputs() is None  # (and dropped with the graph)


def test_a_losss_check_of_its_targets_inside_a_capture_is_refused_naming_the_way_out(monkeypatch):
    logits = xdl.tensor(np.zeros((2, 3), np.float32))
    monkeypatch.setattr(xdl.graph._capture, "effects", [], raising=False)  # as while xdl.cuda_graph records a step
    with pytest.raises(CaptureError, match=r"SoftmaxCrossEntropy's check .* loss.compute"):
        SoftmaxCrossEntropy()(logits, [0, 2])


def test_a_new_constant_or_host_hyperparameter_inside_a_capture_is_refused(monkeypatch):
    """What a replay cannot redo — a copy from the host — raises CaptureError naming it."""
    from xdl.backend import CupyBackend, NumpyBackend
    from xdl.cuda.ops import CupyOps

    backend = CupyBackend(fake_cupy())
    backend.scalar(2.0, np.float32)
    FakeStream.capturing = True
    try:
        assert float(backend.scalar(2.0, np.float32)) == 2.0  # made before: read from the cache
        with pytest.raises(CaptureError, match="constant 3.0"):
            backend.scalar(3.0, np.float32)
    finally:
        FakeStream.capturing = False
    host = NumpyBackend(0)
    ops = CupyOps.__new__(CupyOps)  # just the hyperparameter upload, on the CPU
    ops.backend, ops.xp, ops._uploaded = host, np, {}
    monkeypatch.setattr(host, "capturing", lambda: True)
    with pytest.raises(CaptureError, match="lr, beta as host numbers"):
        ops._per_model_values({"lr": 0.1, "beta": [0.9]}, 1)
    held = np.array([0.1])
    assert ops._per_model_values({"lr": held}, 1) == {"lr": held}  # an optimizer's held value: fine


# -- fit_many: the K models' step captured --------------------------------------------------------
def test_a_captured_batch_of_models_ends_as_an_eager_one_through_freezing_and_divergence(backend, monkeypatch):
    """Dropout on, per-model rates and schedules; one model stops early (frozen: the step is
    captured again) and one diverges (failed, frozen): every model ends bitwise as eagerly."""
    from xdl.config import TrainConfig
    from xdl.train.many import ManyTrainer

    X, y = xdl.datasets.digits()
    X = ((X - X.mean(axis=0)) / (X.std(axis=0) + 1.0))[:420]
    y = y[:420]
    common = dict(hidden=[24, 16], epochs=8, batch_size=64, progress=False, dropout=0.2)
    configs = [TrainConfig(seed=1, lr=3e-3, schedule="inverse_time", decay_rate=0.5, **common),
               TrainConfig(seed=2, lr=0.3, patience=1, **common),
               TrainConfig(seed=3, lr=1e30, **common),
               TrainConfig(seed=4, lr=1e-2, beta1=0.8, l2=0.3, **common)]
    ends = {}
    for capture in (False, "auto"):
        xdl.seed(0)
        many = ManyTrainer(configs, seed=5, capture=capture)
        captures = None
        if capture == "auto":
            if backend.name == "numpy":
                captures = emulated_capture(monkeypatch, many)
            assert many.eager_reason() is None
        with np.errstate(all="ignore"):
            results = many.fit(X[:300], y[:300], dev=(X[300:], y[300:]))
        ends[capture] = [(r.status, np.concatenate([a.ravel() for a in r.model.state_dict().values()]),
                          r.history["train_cost"]) for r in results]
        if capture == "auto":
            assert many.eager_reason() is None  # every step was captured (a failure would say why)
        if captures is not None:  # each batch size (64, 44) captured again after each freeze (the
            # failure at the first step, when one size had no graph yet), and the train and dev evaluations
            assert len(captures) == 2 + 1 + 2 + 2
    assert [e[0] for e in ends["auto"]][1:3] == ["stopped", "failed"]
    for (status, weights_, costs), (status_e, weights_e, costs_e) in zip(ends["auto"], ends[False]):
        assert status == status_e and costs == costs_e
        np.testing.assert_array_equal(weights_, weights_e)


def test_a_graphs_launches_are_counted_from_its_dot_text():
    """CupyBackend.graph_nodes reads CUDA's DOT dump of a graph (cudaGraphDebugDotPrint): each node
    record's label starts with its type; edges are not nodes."""
    from xdl.backend import dot_node_kinds
    from xdl.bench.steps import StepRow, format_step_table

    dot = "\n".join(['digraph dot {', 'subgraph cluster_1 {', 'label="graph_1" graph[style="dashed"];',
                     '"graph_1_node_0"[style="solid" shape="record" label="{', 'KERNEL', '| {ID | 0}', '}"];',
                     '"graph_1_node_1"[style="solid" shape="record" label="{MEMSET | {ID | 1}}"];',
                     '"graph_1_node_2"[style="solid" shape="record" label="{KERNEL | {ID | 2}}"];',
                     '"graph_1_node_0" -> "graph_1_node_1" [style="solid"];', '"graph_1_node_1" -> "graph_1_node_2";',
                     '}', '}'])
    assert dot_node_kinds(dot) == {"KERNEL": 2, "MEMSET": 1}
    assert dot_node_kinds("digraph dot {}") is None
    table = format_step_table([StepRow("B=8", "xdl captured", 1e-4, {"KERNEL": 2, "MEMSET": 1}),
                               StepRow("B=8", "xdl eager", 3e-4)])
    assert "| 3 (2 kernel, 1 memset) |" in table


def digits_part(m=420):
    X, y = xdl.datasets.digits()
    return ((X - X.mean(axis=0)) / (X.std(axis=0) + 1.0))[:m], y[:m]


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("eval_train", [True, False])
def test_a_captured_batch_interrupted_mid_epoch_resumes_as_an_uninterrupted_eager_one(monkeypatch, tmp_path,
                                                                                     eval_train):
    """The dropout key's step counter starts a resumed epoch at its step: the masks, and so the
    weights, are those of a run never stopped; without the train set's evaluation, the epoch's
    step costs and hits carry over too."""
    from xdl.config import TrainConfig
    from xdl.train import Checkpoint, Interrupted
    from xdl.train.many import ManyTrainer

    X, y = digits_part(300)  # batches 64, 64, 64, 64, 44
    configs = [TrainConfig(seed=s, lr=lr, hidden=[24, 16], epochs=3, patience=0, dropout=0.2, progress=False)
               for s, lr in ((1, 3e-3), (2, 1e-2))]
    with xdl.use("numpy"):
        straight = ManyTrainer(configs, seed=5, capture=False, eval_train=eval_train).fit(X, y)
        replays = 0
        original = EmulatedGraph.__call__

        def interrupting(graph):
            nonlocal replays
            replays += 1
            if replays == 6:  # epoch 2, step 3
                os.kill(os.getpid(), signal.SIGINT)
            return original(graph)

        monkeypatch.setattr(EmulatedGraph, "__call__", interrupting)
        first = ManyTrainer(configs, seed=5, callbacks=[Checkpoint(tmp_path, every=None)], eval_train=eval_train)
        emulated_capture(monkeypatch, first)
        with pytest.raises(Interrupted) as stop:
            first.fit(X, y)
        assert (stop.value.epoch, stop.value.step) == (2, 3)
        resumed = ManyTrainer(configs, seed=5, callbacks=[Checkpoint(tmp_path, every=None)], eval_train=eval_train)
        emulated_capture(monkeypatch, resumed)
        results = resumed.fit(X, y, resume=tmp_path)
    for a, b in zip(straight, results):
        for name, value in a.model.state_dict().items():
            np.testing.assert_array_equal(b.model.state_dict()[name], value, err_msg=name)
        assert a.history["train_cost"] == b.history["train_cost"]
        assert a.history["train_accuracy"] == b.history["train_accuracy"]


def test_fit_many_names_a_bad_capture_and_refuses_capture_true_on_the_cpu_before_work():
    from xdl.config import TrainConfig
    from xdl.train.many import ManyTrainer

    config = TrainConfig(hidden=[8], epochs=1, patience=0, progress=False)
    with pytest.raises(ValueError, match="capture must be 'auto', True or False, got 'yes'"):
        xdl.train.fit_many([config], *digits_part(100), capture="yes")
    with xdl.use("numpy"):
        many = ManyTrainer([config], capture=True)
        with pytest.raises(ValueError, match="capture=True, but the batch's steps cannot be captured: the numpy"):
            many.fit(*digits_part(100))
        assert many.model is None  # refused before anything was built


def test_the_stacked_optimizers_values_reach_the_device_at_once_and_not_within_a_capture(backend):
    """set_lr, freeze and a resume rewrite the held values now (a captured step reads them at its
    next replay); freezing bumps the version; a change inside a capture is refused."""
    from xdl.optim import Adam, StackedOptimizer

    xdl.seed(0)
    models = [xdl.nn.mlp(3, [4], 2) for _ in range(3)]
    stacked = xdl.nn.stack(models)
    opt = StackedOptimizer(stacked, [Adam(m, lr=lr) for m, lr in zip(models, (0.1, 0.2, 0.3))])
    held = lambda: backend.to_numpy(opt.regions[0].held)  # noqa: E731
    names = list(n for n, v in opt.regions[0].settings.items() if isinstance(v, np.ndarray))
    assert held()[names.index("lr")].tolist() == [0.1, 0.2, 0.3]
    opt.set_lr([0.5, 0.6, 0.7])
    assert held()[names.index("lr")].tolist() == [0.5, 0.6, 0.7]
    version = opt.version
    opt.freeze(1)
    assert held()[names.index("lr")].tolist() == [0.5, 0.0, 0.7] and opt.version == version + 1
    for k, lr, error in ((3, 0.1, IndexError), (True, 0.1, IndexError), (1, -0.1, ValueError)):
        with pytest.raises(error, match="unfreeze: model True|unfreeze: model 3|lr"):
            opt.unfreeze(k, lr)
    assert opt.frozen.tolist() == [False, True, False]  # nothing changed by a refused call
    opt.unfreeze(1, 0.25)
    assert held()[names.index("lr")].tolist() == [0.5, 0.25, 0.7] and opt.version == version + 2
    assert not opt.frozen.any()
    opt.freeze(1)
    state = opt.state_dict()
    state["t"], state["settings"][0]["lr"] = 9, [0.1, 0.0, 0.1]
    opt.load_state_dict(state)
    assert held()[names.index("lr")].tolist() == [0.1, 0.0, 0.1] and int(backend.to_numpy(opt.steps_done)[0]) == 9
    xdl.graph._capture.effects = []  # as inside a capture
    try:
        opt.regions[0].settings["lr"] = np.array([0.2, 0.0, 0.2])
        with pytest.raises(CaptureError, match="change of the stacked models' hyperparameters"):
            opt.step()
    finally:
        xdl.graph._capture.effects = None


def test_a_captured_multi_label_run_measures_each_label_as_an_eager_one(backend, monkeypatch):
    """Binary cross-entropy over two yes/no labels per example: the per-label accuracy counted
    inside the captured step (eval_train off) and in the captured evaluation, as eagerly."""
    s = moons()
    two = lambda X, y: np.stack([y, X[:, 0] > 0.5], axis=1).astype(np.float32)  # noqa: E731
    runs = {}
    for how in ("eager", "captured"):
        tr = trainer(False if how == "eager" else "auto", eval_train=False)
        tr.loss = xdl.losses.BinaryCrossEntropy()
        if how == "captured" and backend.name == "numpy":
            emulated_capture(monkeypatch, tr)
        history = tr.fit(s.X_train, two(s.X_train, s.y_train), dev=(s.X_dev, two(s.X_dev, s.y_dev)))
        assert how == "eager" or tr.eager_reason() is None
        runs[how] = [{k: v for k, v in r.items() if k not in ("seconds", "step_seconds")} for r in history.records]
    assert runs["captured"] == runs["eager"] and 0.5 < runs["eager"][-1]["dev_accuracy"] <= 1


@pytest.mark.gpu
@pytest.mark.parametrize("read", ["hyperparameter", "step counter"])
def test_a_reference_update_that_reads_the_device_inside_a_capture_is_refused_naming_what(cupy_backend, read):
    """An update with no kernel for its layout (a held rate of float32, not float64; a step counter of
    int32) runs the NumPy reference, which reads those device values on the host: inside a capture it
    failed on CUDA's own "operation not permitted when stream is capturing", naming nothing of xdl's."""
    backend = cupy_backend
    p, g = (backend.asarray(np.full(8, v, np.float32)) for v in (1.0, 0.5))
    m, v = backend.xp.zeros_like(p), backend.xp.zeros_like(p)
    if read == "hyperparameter":
        lr = backend.asarray(np.array([0.1], np.float32))
        step, said = (lambda: backend.ops.sgd_update(p, g, lr)), "an update's per-model hyperparameters"
    else:
        counter = backend.asarray(np.array([3], np.int32))
        step, said = (lambda: backend.ops.adam_update(p, g, m, v, 0.1, 0.9, 0.999, 1e-8, 1, steps_done=counter)), \
            "the step counter"
    with pytest.raises(CaptureError, match=f"^cannot capture {said} read on the host by the NumPy reference") \
            as refused:
        xdl.cuda_graph(step, backend)
    assert "cudaError" not in str(refused.value)
    step()  # eagerly: the reference runs


@pytest.mark.gpu
def test_a_kept_calls_graph_reads_each_calls_own_arrays(cupy_backend):
    """`CapturedSteps.call` copies every call's arrays into the fixed ones its graph reads: a later call of the
    same shapes (the dev set after the training set) replays on its own values, not the first call's."""
    from xdl.train.captured import CapturedSteps

    xp, rng = cupy_backend.xp, np.random.default_rng(5)
    steps = CapturedSteps("auto", cupy_backend)
    hosts = [rng.standard_normal((4, 3)) for _ in range(3)]
    for host in hosts:  # the first call warms up and captures; the others replay
        got = steps.call("double", lambda a: xp.multiply(a, 2.0), xp.asarray(host))
        np.testing.assert_array_equal(got.get(), 2.0 * host)
    assert steps.failure is None
