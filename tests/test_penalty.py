"""The L2 and L1 weight penalties as one node over all the weights (`xdl.functions.penalties.WeightPenalty`):
its cost and the gradients it adds agree with the plain per-weight formula — λ/(2m)·Σ‖W‖², λ/m·Σ|W|; (λ/m)·W,
(λ/m)·sign(W) — on many generated models and lists of parameters: weights back to back in a model's buffer,
scattered, listed twice, frozen, of two dtypes, not contiguous, a plain tensor, and fit_many's stacked models."""

import warnings

import numpy as np
import pytest

import xdl
from xdl.config import TrainConfig
from xdl.losses import l1, l2
from xdl.ops.penalty import penalty_sums
from xdl.tensor import role_of

CASES = 60  # generated per backend and penalty


def reference(weights, kind, lambd, m):
    """The per-weight formula in float64 on the host: (cost, {id(w): gradient added})."""
    distinct = list({id(w): w for w in weights}.values())
    arrays = [xdl.backend.array_to_numpy(w.data).astype(np.float64) for w in distinct]
    if kind == "l2":
        cost = lambd / (2 * m) * sum(float((a * a).sum()) for a in arrays)
        grads = {id(w): lambd / m * a for w, a in zip(distinct, arrays)}
    else:
        cost = lambd / m * sum(float(np.abs(a).sum()) for a in arrays)
        grads = {id(w): lambd / m * np.sign(a) for w, a in zip(distinct, arrays)}
    return cost, grads


def generated(rng, backend):
    """A model and what a penalty is given of it (the model, or a list of parameters), with some of its
    weights frozen, zeros among them and gradients already there (the penalty's add to them)."""
    dtype = np.float64
    sizes = [int(n) for n in rng.integers(1, 7, size=rng.integers(1, 4))]
    model = xdl.nn.mlp(int(rng.integers(1, 6)), sizes, int(rng.integers(1, 5)),
                       batch_norm=bool(rng.integers(2))).astype(dtype)
    weights = model.parameters("weight")
    for w in weights:
        w.data[...] = backend.asarray(rng.standard_normal(w.shape) * (rng.random(w.shape) > 0.2))  # exact 0s too
        w.grad[...] = backend.asarray(rng.standard_normal(w.shape))
    shape = rng.integers(7)
    given = model
    if shape == 1:  # the model's parameters, as a list, in another order
        given = list(model.parameters())[::-1]
    elif shape == 2:  # a weight listed twice (tied): counted once
        given = list(model.parameters()) + [weights[0]]
    elif shape == 3 and len(weights) > 2:  # every other weight: a gap between them
        given = weights[::2]
    elif shape == 4:  # weights of another model of another dtype beside them
        other = xdl.nn.mlp(3, [2], 2).astype(np.float32)
        for w in other.parameters("weight"):
            w.grad[...] = 0.5
        given = list(model.parameters()) + list(other.parameters())
    elif shape == 5:  # parameters of no buffer: one a transposed (not contiguous) view, one a plain tensor
        given = [xdl.Parameter(xdl.tensor(backend.asarray(rng.standard_normal((3, 4))).T)),
                 xdl.tensor(backend.asarray(rng.standard_normal((2, 2))), requires_grad=True), weights[-1]]
    elif shape == 6:  # a model with a parameter rebound by hand (PyTorch's habit): no longer a view of the buffer
        weights[0].grad = backend.asarray(rng.standard_normal(weights[0].shape))
    if rng.integers(3) == 0:
        frozen = weights[int(rng.integers(len(weights)))]
        frozen.requires_grad = False
    return given


@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_the_penalty_node_agrees_with_the_per_weight_formula_on_generated_models(backend, kind):
    penalty = {"l2": l2, "l1": l1}[kind]
    rng = np.random.default_rng(12 if kind == "l2" else 13)
    for case in range(CASES):
        given = generated(rng, backend)
        params = given.parameters() if hasattr(given, "parameters") else given
        weights = [w for w in params if role_of(w) == "weight"]
        before = {id(w): None if w.grad is None else xdl.backend.array_to_numpy(w.grad).astype(np.float64).copy()
                  for w in weights}
        lambd, m = float(rng.uniform(0, 3)), int(rng.integers(1, 50))
        cost = penalty(given, lambd, m)
        want_cost, want_grads = reference(weights, kind, lambd, m)
        assert cost.dtype == np.result_type(*(w.dtype for w in weights)), case
        exact = all(w.dtype == np.float64 for w in weights)  # (float32 weights are summed in float32, as before)
        np.testing.assert_allclose(cost.item(), want_cost, rtol=1e-12 if exact else 1e-6, err_msg=f"case {case}")
        cost.backward()
        for w in {id(w): w for w in weights}.values():
            if not w.requires_grad:  # frozen: its gradient left as it was
                got = None if w.grad is None else xdl.backend.array_to_numpy(w.grad)
                assert (got is None and before[id(w)] is None) or np.array_equal(got, before[id(w)]), case
                continue
            want = want_grads[id(w)] + (0 if before[id(w)] is None else before[id(w)])
            rtol = 1e-12 if w.dtype == np.float64 else 1e-6
            np.testing.assert_allclose(xdl.backend.array_to_numpy(w.grad), want, rtol=rtol, atol=rtol,
                                       err_msg=f"case {case}")


def test_a_model_s_weights_are_penalized_over_their_range_of_its_buffer_in_one_pass(backend, monkeypatch):
    """A model's weights, back to back at its buffer's start: one pass each way over that range (the cost and
    its gradient: one kernel each on a GPU)."""
    calls = []
    ops = backend.ops
    for name in ("penalty_forward", "penalty_backward", "penalty_sums", "penalty_gradient"):
        method = getattr(ops, name)
        monkeypatch.setattr(ops, name, lambda *a, method=method, name=name: calls.append((name, a[0].shape))
                            or method(*a))
    model = xdl.nn.mlp(4, [5, 3], 2)
    l2(model, 0.1, 8).backward()
    n = sum(w.size for w in model.parameters("weight"))
    assert calls == [("penalty_forward", (n,)), ("penalty_backward", (n,))]


@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_fit_many_s_penalty_is_each_model_s_alone(backend, kind):
    """fit_many's one node over the stacked weight columns gives model k the cost and the gradient
    xdl.losses gives it alone with its own λ_k (a model with λ = 0 among them), and nothing to the rest."""
    from xdl.train.many import ManyTrainer, _penalty

    lambdas, m = [0.0, 0.4, 1.3], 8
    configs = [TrainConfig(seed=k, hidden=[4, 3], batch_norm=True, **{kind: lambdas[k]}) for k in range(3)]
    trainer = ManyTrainer(configs, dtype="float64")
    trainer._build(5, 3, None)
    stacked = trainer.model
    for w in stacked.parameters("weight"):  # exact zeros among the weights
        w.data[...] = w.data * backend.asarray(np.random.default_rng(1).random(w.shape) > 0.2)
    stacked.zero_grad()
    cost = _penalty(stacked, kind, trainer._penalty_scales(kind, m))
    cost.backward()
    penalty, want = {"l2": l2, "l1": l1}[kind], 0.0
    grads = xdl.backend.array_to_numpy(stacked.grad)
    for k in range(3):
        alone = stacked.model(k)
        alone.zero_grad()
        one = penalty(alone, lambdas[k], m)
        one.backward()
        want += one.item()
        alone_grads = np.concatenate([xdl.backend.array_to_numpy(p.grad).reshape(-1) for _, p in alone.flat_order()])
        np.testing.assert_allclose(grads[k], alone_grads, rtol=1e-12, atol=0, err_msg=f"model {k}")
    np.testing.assert_allclose(cost.item(), want, rtol=1e-12)


def test_a_weight_frozen_between_the_forward_and_the_backward_gets_no_gradient(backend):
    """Freezing a parameter after the cost was computed leaves its ``.grad`` as it was, as `Tensor.backward`
    leaves it for a gradient an op returns (and PyTorch's): the penalty's pass over the weights' range, a
    dense layer's bias gradient by a product with ones and its weight gradient by β = 1 added into the frozen
    parameters' views of the flat gradient buffer all the same."""
    rng = np.random.default_rng(14)
    loss = xdl.losses.SoftmaxCrossEntropy()
    for case in range(12):
        sizes = [int(n) for n in rng.integers(1, 6, size=rng.integers(1, 3))]
        model = xdl.nn.mlp(4, sizes, 3)
        model.zero_grad()
        params = list(model.parameters())
        for p in params:
            p.grad[...] = backend.asarray(rng.standard_normal(p.shape).astype(p.dtype))
        x = xdl.tensor(backend.asarray(rng.standard_normal((6, 4)).astype(np.float32)))
        cost = loss(model(x), rng.integers(0, 3, 6)) + l2(model, 0.5, 6) + l1(model, 0.1, 6)
        frozen = [p for p in params if rng.integers(2)] or params[:1]
        before = [xdl.backend.array_to_numpy(p.grad).copy() for p in frozen]
        for p in frozen:
            p.requires_grad = False
        cost.backward()
        for p, grad in zip(frozen, before):
            np.testing.assert_array_equal(xdl.backend.array_to_numpy(p.grad), grad, err_msg=f"case {case}")


def test_the_gradient_is_that_of_the_values_the_forward_summed(backend):
    """A weight whose ``.data`` is rebound (not written in place: no write refuses the backward) after the
    cost was computed gets the gradient of the values the cost was made of, as any op's saved inputs give
    it — outside a buffer's range as inside it (the weight-by-weight pass read the new ``.data``)."""
    rng = np.random.default_rng(15)
    for penalty, slope in ((l2, lambda a: a), (l1, np.sign)):
        plain = xdl.Parameter(backend.asarray(rng.standard_normal((2, 3)).astype(np.float32)))
        model = xdl.nn.mlp(3, [4], 2)
        model.zero_grad()
        weights = [plain, *model.parameters("weight")]
        then = [xdl.backend.array_to_numpy(w.data).copy() for w in weights]
        cost = penalty(weights, 0.8, 4)
        for w in weights:
            w.data = w.data * 3 - 1
        cost.backward()
        for w, values in zip(weights, then):
            np.testing.assert_allclose(xdl.backend.array_to_numpy(w.grad), 0.8 / 4 * slope(values), rtol=1e-6)


def test_each_stacked_model_s_sum_is_its_row_summed_alone_bit_for_bit():
    """`penalty_sums` of K stacked models' (K, n) weights, chunk by chunk: each model's Σ w² and Σ|w| is that
    of its row alone, to the bit — the chunks' totals summed pairwise for each (NumPy sums pairwise along the
    last axis only: a (chunks, K) stack summed over axis 0 added them one after another, up to 10× further
    from the exact sum in float32)."""
    rng = np.random.default_rng(16)
    for case in range(40):
        K, chunk = int(rng.integers(2, 6)), int(rng.integers(1, 9))
        w = (rng.standard_normal((K, int(rng.integers(1, 4000)))) + 3).astype(np.float32)
        for kind in ("l2", "l1"):
            stacked = penalty_sums(np, w, kind, chunk=chunk)  # (under MIN_COLUMNS: ``chunk`` columns, as alone)
            alone = [penalty_sums(np, row, kind, chunk=chunk) for row in w]
            np.testing.assert_array_equal(stacked, np.array(alone), err_msg=f"case {case}, {kind}")


def test_the_sums_and_gradients_are_the_plain_formulas_in_one_chunk_or_several_and_a_bad_kind_is_refused():
    """Σ w² and Σ|w| along the last axis, of (n,), (K, n) and empty weights: with ``chunk=None`` (the whole
    array as one chunk, the path CupyOps takes, untested on the CPU otherwise) NumPy's own sums of the whole,
    bit for bit; in chunks of 5 columns the same sums to rounding (a sum that kept only the first chunk's total,
    or an empty (K, 0) region's 0-d sum, passed every test). The gradient is c·w or c·sign(w); a kind other than
    "l2" or "l1" is refused before anything is summed or added (it was computed as L1)."""
    from xdl.ops.penalty import penalty_gradient

    rng = np.random.default_rng(17)
    for shape in [(0,), (1,), (7,), (37,), (3, 0), (3, 41), (2, 5000)]:  # (7,): two chunks of 5 columns
        w = rng.standard_normal(shape).astype(np.float32)
        c = 0.25 if len(shape) == 1 else rng.uniform(0.1, 1.0, (shape[0], 1))
        for kind, value, slope in (("l2", w * w, w), ("l1", np.abs(w), np.sign(w))):
            whole, chunked = penalty_sums(np, w, kind, chunk=None), penalty_sums(np, w, kind, chunk=5)
            assert whole.shape == chunked.shape == shape[:-1] and whole.dtype == chunked.dtype == np.float32
            np.testing.assert_array_equal(whole, value.sum(axis=-1))
            np.testing.assert_allclose(chunked, value.astype(np.float64).sum(axis=-1), rtol=1e-5)
            grad = rng.standard_normal(shape).astype(np.float32)
            want = grad + (np.asarray(c).astype(np.float32) * slope)
            penalty_gradient(np, grad, w, c, kind, chunk=None)
            np.testing.assert_allclose(grad, want, rtol=1e-6, err_msg=f"{shape}, {kind}")
    w, grad = np.ones(4, np.float32), np.zeros(4, np.float32)
    for call in (lambda: penalty_sums(np, w, "l3"), lambda: penalty_gradient(np, grad, w, 1.0, "L2", chunk=None)):
        with pytest.raises(ValueError, match=r"penalty kind must be one of \('l2', 'l1'\), got"):
            call()
    assert not grad.any()


# -- the ranges found once and kept (`weight_ranges`' memo on the flat buffer) --------------------------------
def same_ranges(backend, got, want) -> bool:
    """Whether two `weight_ranges` answers are the same: indices, and views of the same places (or None)."""
    if len(got) != len(want):
        return False
    for (indices, span), (want_indices, want_span) in zip(got, want):
        if indices != want_indices or (span is None) != (want_span is None):
            return False
        if span is not None and not (all(backend.address(a) == backend.address(b) and a.shape == b.shape
                                         for a, b in zip(span[:2], want_span[:2]))
                                     and all(a is b for a, b in zip(span[2], want_span[2]))):
            return False
    return True


def check_penalty_lands_in_place(backend, model, weights):
    """l2 and l1 of ``weights``: the cost of their values now, the gradient added into their ``.grad`` now."""
    for penalty, slope in ((l2, lambda a: a), (l1, np.sign)):
        before = [xdl.backend.array_to_numpy(w.grad).astype(np.float64) for w in weights]
        values = [xdl.backend.array_to_numpy(w.data).astype(np.float64) for w in weights]
        cost = penalty(weights, 0.6, 3)
        want = sum(0.1 * (v * v).sum() if penalty is l2 else 0.2 * np.abs(v).sum() for v in values)
        np.testing.assert_allclose(cost.item(), want, rtol=1e-6)
        cost.backward()
        for w, b, v in zip(weights, before, values):
            np.testing.assert_allclose(xdl.backend.array_to_numpy(w.grad), b + 0.2 * slope(v), rtol=1e-6, atol=1e-7)


def test_a_steady_steps_ranges_are_those_found_before_and_anything_that_moves_a_weight_finds_them_again(backend):
    """`weight_ranges` of the same weights, each with the arrays it had, is the answer found before (the same
    object: no address asked); after anything that gives a weight or its buffer other arrays it is found again
    — the answer a search from scratch gives — and the penalty sums the weights' values now and adds into
    their gradients now."""
    from xdl.functions.penalties import _find_ranges, weight_ranges
    from xdl.losses import _weights

    def rebind_data(model):
        w = model.parameters("weight")[1]
        w.data = w.data * 1.0

    def rebind_grad(model):
        w = model.parameters("weight")[0]
        w.grad = w.grad.copy()

    def written_back(model):  # a rebound .grad an optimizer writes back into its place: a view again
        rebind_grad(model)
        xdl.optim.SGD(model, lr=0.0).step()

    def rebind_buffer(model):
        flat = model.parameters("weight")[0]._flat[0]
        flat.data, flat.grad = flat.data.copy(), flat.grad.copy()

    def nest(model):  # placed inside another model: packed anew
        return xdl.nn.Sequential(model, xdl.nn.Dense(2, 3))

    changes = {"astype": lambda m: m.astype(np.float64), "astype back": lambda m: m.astype(np.float64).astype(
        np.float32), "to": lambda m: m.to("numpy" if backend.name != "numpy" else backend), "data rebound":
        rebind_data, "grad rebound": rebind_grad, "grad written back": written_back, "buffer's arrays rebound":
        rebind_buffer, "nested": nest, "frozen": lambda m: setattr(m.parameters("weight")[0], "requires_grad", False)}
    for name, change in changes.items():
        model = xdl.nn.mlp(4, [5, 3], 2)
        xdl.optim.SGD(model, lr=0.1).zero_grad()
        found = weight_ranges(_weights(model))
        assert weight_ranges(_weights(model)) is found, name  # a steady step: nothing asked again
        assert weight_ranges(list(_weights(model))[::-1]) is not found  # other weights' list: its own
        model = change(model) or model
        weights = _weights(model)
        again = weight_ranges(weights)
        assert same_ranges(model.backend, again, _find_ranges(weights)), name
        moved_none = name == "frozen" or (name == "to" and backend.name == "numpy")  # (to the backend it is on)
        assert (again is found) == moved_none, name
        assert weight_ranges(weights) is again, name
        check_penalty_lands_in_place(model.backend, model, [w for w in weights if w.requires_grad])


def test_the_ranges_kept_hold_no_array_of_another_buffer(backend):
    """A penalty over weights of two models (or of two dtypes) kept, on the first's buffer, the other's arrays:
    the second model dropped or converted, its weights and gradients stayed alive as long as the first model
    (until 8 other lists of weights had come). Each such list is found each call, the penalty still lands in
    place, and a model's own weights' ranges are still found once and kept."""
    import gc
    import weakref

    from xdl.functions.penalties import weight_ranges
    from xdl.losses import _weights

    for change in ("dropped", "astype", "nested"):
        kept = xdl.nn.mlp(4, [5], 2).to(backend)
        other = xdl.nn.mlp(6, [7, 3], 2).to(backend)
        xdl.optim.SGD(kept, lr=0.1).zero_grad()
        xdl.optim.SGD(other, lr=0.1).zero_grad()
        both = _weights(kept) + _weights(other)
        check_penalty_lands_in_place(backend, kept, both)
        own = weight_ranges(_weights(kept))
        assert weight_ranges(_weights(kept)) is own  # (kept: every weight in the buffer it is kept on)
        arrays = {id(a): weakref.ref(a) for a in (other.parameters()[0]._flat[0].data,
                                                  other.parameters()[0]._flat[0].grad)}
        del both
        if change == "dropped":
            del other
        elif change == "astype":
            other.astype(np.float64)
        else:  # placed inside another model: packed anew
            other = xdl.nn.Sequential(other, xdl.nn.Dense(2, 3))
        gc.collect()
        assert all(ref() is None for ref in arrays.values()), change
        assert weight_ranges(_weights(kept)) is own, change
    mixed = xdl.nn.Sequential(xdl.nn.Dense(3, 4), xdl.nn.Dense(4, 2).astype(np.float64)).to(backend)
    xdl.optim.SGD(mixed, lr=0.1).zero_grad()
    check_penalty_lands_in_place(backend, mixed, _weights(mixed))


def test_a_steady_penalty_walks_no_module_and_a_model_changed_since_is_walked_again(backend, monkeypatch):
    """l2 and l1 of a model walked its whole tree each call (a Trainer's every step) for a list that changes
    only with the model: kept while no change is counted (`CheckedState`); after anything that changes what the
    model's parameters are — a layer appended, replaced or nested, a parameter added or removed inside a child,
    a role set by hand, a freeze, a conversion, a copy — the penalty covers the weights the model has now, and
    lands in their gradients now."""
    import copy

    from xdl.nn.module import Module

    walks = []
    walk = Module.named_modules

    def counted(self, prefix=""):
        walks.append(self)
        return walk(self, prefix)

    def append(m):
        m.append(xdl.nn.Dense(2, 3))

    def replace(m):
        m[0] = xdl.nn.Dense(4, 5)

    def nest(m):
        return xdl.nn.Sequential(m, xdl.nn.Dense(2, 2))

    def add_parameter(m):
        m[2].extra = xdl.Parameter(xdl.tensor(np.ones((3, 3), np.float32), backend=m.backend).data)

    def remove_parameter(m):
        m[0].weight = None

    def role_by_hand(m):
        m[2].weight.role = "bias"

    def matrix_bias(m):  # a role taken back: read by the shape again
        m[0].bias.role = None
        m[0].bias = xdl.Parameter(xdl.tensor(np.ones((5, 2), np.float32), backend=m.backend).data)

    changes = [None, append, replace, nest, add_parameter, remove_parameter, role_by_hand, matrix_bias,
               lambda m: setattr(m[0].weight, "requires_grad", False), lambda m: m.astype(np.float64),
               copy.deepcopy]
    for case, change in enumerate(changes):
        model = xdl.nn.Sequential(xdl.nn.Dense(4, 5), xdl.nn.ReLU(), xdl.nn.Dense(5, 2)).to(backend)
        l2(model, 0.5, 4)
        monkeypatch.setattr(Module, "named_modules", counted)
        for penalty in (l2, l1, l2):
            penalty(model, 0.5, 4)
        assert walks == [], case  # a steady call: nothing walked
        monkeypatch.setattr(Module, "named_modules", walk)
        model = change(model) or model if change is not None else model
        for kind, penalty in (("l2", l2), ("l1", l1)):
            weights = [p for p in model.parameters() if role_of(p) == "weight"]  # (walked now)
            for w in weights:
                if w.grad is not None:  # (one added since has none yet)
                    w.grad[...] = 0
            cost = penalty(model, 0.5, 4)
            want, grads = reference(weights, kind, 0.5, 4)
            np.testing.assert_allclose(cost.item(), want, rtol=1e-6, err_msg=str(case))
            cost.backward()
            for w in weights:
                if w.requires_grad:
                    np.testing.assert_allclose(xdl.backend.array_to_numpy(w.grad), grads[id(w)], rtol=1e-6,
                                               atol=1e-7, err_msg=str(case))


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_model_s_penalty_is_over_the_copy_s_buffer(backend, how):
    """A model copied (deepcopy, pickle) after its penalty ranges were found: the copy's penalty sums the copy's
    weights and adds into the copy's gradients, and leaves the original's as they were (the ranges found are
    the original's buffer's, never copied with it)."""
    import copy
    import pickle

    from xdl.functions.penalties import weight_ranges
    from xdl.losses import _weights

    model = xdl.nn.mlp(4, [5, 3], 2)
    xdl.optim.SGD(model, lr=0.1).zero_grad()
    l2(model, 0.5, 4).backward()
    found = weight_ranges(_weights(model))
    clone = copy.deepcopy(model) if how == "deepcopy" else pickle.loads(pickle.dumps(model))
    for w in clone.parameters("weight"):
        w.data[...] = w.data * 2 - 1  # in place: the copy's buffer
    original = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    original_grads = [xdl.backend.array_to_numpy(w.grad).copy() for w in model.parameters("weight")]
    assert weight_ranges(_weights(clone)) is not found
    check_penalty_lands_in_place(backend, clone, _weights(clone))
    for (name, value), now in zip(original.items(), model.state_dict().values()):
        np.testing.assert_array_equal(now, value, err_msg=name)
    for w, grad in zip(model.parameters("weight"), original_grads):
        np.testing.assert_array_equal(xdl.backend.array_to_numpy(w.grad), grad)
    assert weight_ranges(_weights(model)) is found  # the original's still hold


def test_a_run_with_penalties_resumed_from_its_checkpoint_ends_as_the_uninterrupted_run(tmp_path):
    """l2 and l1 over a run stopped after epoch 2 and resumed — by a trainer whose model's penalty ranges were
    found before the checkpoint was loaded into it — end with the uninterrupted run's weights, bit for bit."""
    from xdl.train import Checkpoint, Trainer

    X, y = xdl.datasets.moons(300, noise=0.2, seed=0)

    def trainer(epochs, folder):
        xdl.seed(0)
        model = xdl.nn.mlp(2, [8, 4], 2)
        l2(model, 0.1, 8).backward()  # the ranges found on this model's buffer before any resume
        optimizer = xdl.optim.Adam(model, lr=0.01)
        return Trainer(model, xdl.losses.SoftmaxCrossEntropy(), optimizer, epochs=epochs, batch_size=32, l2=0.3,
                       l1=0.01, seed=0, progress=False, callbacks=[Checkpoint(tmp_path / folder)])

    whole = trainer(4, "whole")
    whole.fit(X, y)
    trainer(2, "cut").fit(X, y)
    resumed = trainer(4, "cut")
    resumed.fit(X, y, resume=tmp_path / "cut")
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert resumed.history["train_cost"] == whole.history["train_cost"]


def test_a_captured_penalty_step_gives_the_eager_steps_bits(backend):
    """l2 + l1 and their gradients captured as a CUDA graph and replayed: the eager step's bits (the sums are
    merged in a fixed order by the kernel's last block, no float atomics), and over weights written since the
    capture, their values now."""
    if not backend.supports_graphs:
        pytest.skip("CUDA graphs need the cupy backend")
    rng = np.random.default_rng(18)
    model = xdl.nn.mlp(30, [300, 40], 5)  # 10,700 weights: a grid of several blocks
    out = backend.xp.zeros((), dtype=np.float32)

    def step():
        model.zero_grad()
        cost = l2(model, 0.7, 5) + l1(model, 0.05, 5)
        cost.backward()
        out[...] = cost.data

    def eager_then_replayed(graph):
        step()
        eager = [xdl.backend.array_to_numpy(out).copy()] + [xdl.backend.array_to_numpy(p.grad).copy()
                                                            for p in model.parameters()]
        graph()
        replayed = [xdl.backend.array_to_numpy(out)] + [xdl.backend.array_to_numpy(p.grad) for p in model.parameters()]
        for a, b in zip(eager, replayed):
            np.testing.assert_array_equal(a, b)

    graph = xdl.cuda_graph(step)
    for _ in range(3):
        eager_then_replayed(graph)
        for w in model.parameters("weight"):
            w.data[...] = backend.asarray(rng.standard_normal(w.shape).astype(np.float32) * (rng.random(w.shape) > 0.3))


@pytest.mark.parametrize("penalty", [l2, l1])
@pytest.mark.parametrize("lambd", [1e39, 1e40, 10**400])
def test_a_lambd_beyond_the_weights_dtype_is_refused_as_the_trainer_refuses_it(penalty, lambd):
    """l2(model, 1e40, m) of a float32 model returned inf (its gradient inf too), where Trainer(l2=1e40)
    refused the value: one check (`xdl.losses.check_penalty`), by name, before any work; a float64 model
    holds it."""
    model = xdl.nn.mlp(2, [4], 2)
    with pytest.raises(ValueError, match=rf"^{penalty.__name__}: lambd must be at most 3.4e\+38, float32's largest"):
        penalty(model, lambd, 4)
    with pytest.raises(ValueError, match=r"^l2 must be at most 3.4e\+38, float32's largest"):
        xdl.train.Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.SGD(model), l2=lambd)
    if lambd < 1e300:
        assert np.isfinite(penalty(model.astype(np.float64), lambd, 4).item())


@pytest.mark.parametrize("lambd", [np.complex128(1), np.timedelta64(1, "s"), np.float16(np.inf)])
def test_a_lambd_that_is_no_finite_real_number_is_refused_by_name_by_the_penalties_and_the_trainer(lambd):
    """One check (`xdl.losses.check_penalty`) for l2, l1 and a Trainer: a NumPy complex λ was taken by l2 and l1
    (its imaginary part dropped under NumPy's ComplexWarning), where check_number had refused it; a duration was
    NumPy's "ufunc 'less' did not contain a loop"."""
    model = xdl.nn.mlp(2, [4], 2)
    for penalty in (l2, l1):
        with pytest.raises(ValueError, match=rf"^{penalty.__name__}: lambd must be a finite number ≥ 0, got "):
            penalty(model, lambd, 4)
    with pytest.raises(ValueError, match=r"^l1 must be a finite number ≥ 0, got "):
        xdl.train.Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.SGD(model), l1=lambd)


@pytest.mark.parametrize("name", ["l2", "l1", "weight_decay"])
@pytest.mark.parametrize("lambd", [-1.0, -1e-300, float("nan"), float("inf"), -float("inf"), 3.5e38, 1e39, 1e300])
def test_a_config_refuses_a_bad_lambd_in_the_trainers_words(name, lambd):
    """TrainConfig kept a λ check of its own beside `xdl.losses.check_penalty` (the Trainer's), in other words
    ("at most 3.4e+38, float32's largest number", without why): one check, the config's option named."""
    with pytest.raises(ValueError) as trainers:
        xdl.losses.check_penalty(lambd, f"config: {name}", np.float32)
    with pytest.raises(ValueError) as configs:
        TrainConfig.from_dict({name: lambd})
    assert str(configs.value) == str(trainers.value)


def test_a_small_lambd_of_a_narrow_dtype_is_compared_without_a_warning():
    """A float16 λ met float32's largest number in its own dtype, which NumPy's comparison cast it to (inf, under
    "overflow encountered in cast"): compared as a Python float, it is taken quietly."""
    model = xdl.nn.mlp(2, [4], 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for penalty in (l2, l1):
            assert np.isfinite(penalty(model, np.float16(0.5), 4).item())


def test_a_gradient_rebound_between_the_penalty_and_its_backward_gets_the_penalty_and_the_buffer_does_not(backend):
    """A weight's ``.grad`` rebound by hand after the cost was computed (its range found then) and before the
    backward: the penalty's gradient c·w (L2) or c·sign(w) (L1), c = λ/m, lands in the array it has now, and the
    buffer's range it left keeps what it held — for each weight of the model in turn."""
    from xdl.losses import _weights

    for penalty, slope in ((l2, lambda a: a), (l1, np.sign)):
        for k in range(3):
            model = xdl.nn.mlp(4, [5, 3], 2).to(backend)
            xdl.optim.SGD(model, lr=0.1).zero_grad()
            weights = _weights(model)
            cost = penalty(weights, 0.6, 3)
            left = weights[k].grad
            weights[k].grad = backend.asarray(np.ones(weights[k].shape, dtype=np.float32))
            cost.backward()
            for j, w in enumerate(weights):
                expected = 0.2 * slope(xdl.backend.array_to_numpy(w.data).astype(np.float64)) + (j == k)
                np.testing.assert_allclose(xdl.backend.array_to_numpy(w.grad), expected, rtol=1e-6, atol=1e-7)
            np.testing.assert_array_equal(xdl.backend.array_to_numpy(left), 0.0)


@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_stacked_weights_outside_a_buffer_get_each_model_s_cost_and_gradient_weight_by_weight(backend, kind):
    """K models' (K, …) weights that fill no range of a buffer (plain tensors), slope a (K, 1) column of λ_k/m:
    the cost Σ_k (λ_k/m)/2·Σ_W ‖W_k‖² (L2) or Σ_k (λ_k/m)·Σ_W Σ|W_k| (L1), ∂/∂W_k = g·(λ_k/m)·W_k or
    g·(λ_k/m)·sign(W_k) — written out in NumPy, for many draws."""
    from xdl.functions.penalties import WeightPenalty, weight_ranges

    rng = np.random.default_rng(21)
    for _ in range(10):
        values = [rng.standard_normal(shape) for shape in ((3, 4, 5), (3, 5, 2), (3, 2))]
        slopes, g = rng.uniform(0.1, 2.0, size=(3, 1)), rng.uniform(0.5, 2.0)
        weights = [xdl.tensor(v, requires_grad=True) for v in values]
        cost = WeightPenalty.apply(*weights, kind=kind, slope=backend.asarray(slopes), ranges=weight_ranges(weights))
        rows = [v.reshape(3, -1) for v in values]
        per_model = sum((r * r).sum(axis=1) / 2 if kind == "l2" else np.abs(r).sum(axis=1) for r in rows)
        np.testing.assert_allclose(cost.item(), (per_model * slopes[:, 0]).sum(), rtol=1e-12)
        cost.backward(np.array(g))
        for w, v in zip(weights, values):
            column = slopes.reshape((3,) + (1,) * (v.ndim - 1))
            np.testing.assert_allclose(backend.to_numpy(w.grad), g * column * (v if kind == "l2" else np.sign(v)),
                                       rtol=1e-12)
