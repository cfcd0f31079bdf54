"""Layers and models: gradients, initialization, batch norm, dropout, the flat buffer."""

import copy
import inspect
import itertools
import pickle
import re

import numpy as np
import pytest

import xdl
from xdl.losses import BinaryCrossEntropy, MeanSquaredError, SoftmaxCrossEntropy, l1, l2
from xdl.nn import BatchNorm, Dense, Dropout, LeakyReLU, ReLU, Sequential, Sigmoid, Softmax, Tanh
from conftest import CopyingHost, cupy_available, t64


def f64(layer):
    return layer.astype(np.float64)


@pytest.mark.parametrize("make", [lambda: Dense(4, 3), lambda: Dense(4, 3, bias=False), ReLU, lambda: LeakyReLU(0.2),
                                  Tanh, Sigmoid, Softmax, lambda: Softmax(axis=0)],
                         ids=["dense", "dense_nobias", "relu", "leaky", "tanh", "sigmoid", "softmax", "softmax_axis0"])
def test_layer_gradients(backend, rng, make):
    layer = f64(make())
    x = t64(backend, rng.uniform(0.1, 1.5, (5, 4)) * rng.choice([-1, 1], (5, 4)))
    weights = t64(backend, rng.standard_normal(layer(x).shape), requires_grad=False)  # (any layer's output)
    result = xdl.gradcheck(lambda: (layer(x) * weights).sum(), [x, *layer.parameters()])
    assert result.difference < 1e-7, str(result)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients(backend, rng, training):
    bn = f64(BatchNorm(3))
    bn.running_mean[...] = backend.asarray(rng.standard_normal(3))
    bn.running_var[...] = backend.asarray(rng.uniform(0.5, 2.0, 3))
    bn.gamma.data[...] = backend.asarray(rng.uniform(0.5, 2.0, 3))
    bn.train(training)
    x = t64(backend, rng.standard_normal((6, 3)) * 3 + 2)
    weights = t64(backend, rng.standard_normal((6, 3)), requires_grad=False)
    result = xdl.gradcheck(lambda: ((bn(x) * weights) ** 2).sum(), [x, bn.gamma, bn.beta])
    assert result.difference < 1e-7, str(result)


def test_batchnorm_evaluation_s_backward_reads_the_statistics_of_its_forward(backend, rng):
    """A graph recorded in evaluation mode read the running statistics at its backward, as they
    were then: a training-mode forward (or a load_state_dict) between them, which writes them in
    place, gave x the gradient γ/√(σ² + ε) of statistics it was never normalized with, silently."""
    bn = f64(BatchNorm(3))
    bn.running_var[...] = backend.asarray(rng.uniform(0.5, 2.0, 3))
    x = t64(backend, rng.standard_normal((6, 3)) * 3 + 2)
    bn.eval()
    expected = 1.0 / np.sqrt(xdl.to_numpy(bn.running_var) + bn.eps)  # ∂Σy/∂x with γ = 1
    cost = bn(x).sum()
    bn.train()
    bn(t64(backend, rng.standard_normal((6, 3)) * 10))  # the running statistics written in place
    cost.backward()
    np.testing.assert_allclose(xdl.to_numpy(x.grad), np.broadcast_to(expected, (6, 3)), rtol=1e-12)


def test_dropout_gradient_with_fixed_mask(backend, rng):
    x = t64(backend, rng.standard_normal((6, 5)))
    mask = backend.asarray(rng.random((6, 5)) >= 0.3)
    result = xdl.gradcheck(lambda x: (xdl.functions.dropout(x, 0.3, mask=mask) ** 2).sum(), [x])
    assert result.difference < 1e-7, str(result)
    y = xdl.functions.dropout(x, 0.3, mask=mask)
    assert np.allclose(y.numpy(), x.numpy() * backend.to_numpy(mask) / 0.7)


@pytest.mark.parametrize("loss_name", ["softmax_ce_int", "softmax_ce_onehot", "bce", "mse"])
def test_loss_gradients(backend, rng, loss_name):
    z = t64(backend, rng.standard_normal((7, 3 if loss_name.startswith("softmax") else 1)) * 3)
    labels = rng.integers(0, 3, 7)
    if loss_name == "softmax_ce_int":
        fn = lambda z: SoftmaxCrossEntropy()(z, labels)
    elif loss_name == "softmax_ce_onehot":
        fn = lambda z: SoftmaxCrossEntropy()(z, np.eye(3)[labels])
    elif loss_name == "bce":
        fn = lambda z: BinaryCrossEntropy()(z, (labels > 0).astype(float))
    else:
        targets = rng.standard_normal(7)
        fn = lambda z: MeanSquaredError()(z, targets)
    result = xdl.gradcheck(fn, [z])
    assert result.difference < 1e-7, str(result)


def test_losses_match_definitions(backend, rng):
    z = rng.standard_normal((6, 4)) * 5
    y = rng.integers(0, 4, 6)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = -np.log(p[np.arange(6), y]).mean()
    assert SoftmaxCrossEntropy()(t64(backend, z), y).item() == pytest.approx(expected, rel=1e-12)
    big = t64(backend, np.array([[1000.0, -1000.0]]))
    assert SoftmaxCrossEntropy()(big, np.array([1])).item() == pytest.approx(2000.0)  # stable, no inf
    zb, yb = rng.standard_normal(6) * 4, (rng.random(6) > 0.5).astype(float)
    s = 1 / (1 + np.exp(-zb))
    bce = -(yb * np.log(s) + (1 - yb) * np.log(1 - s)).mean()
    assert BinaryCrossEntropy()(t64(backend, zb), yb).item() == pytest.approx(bce, rel=1e-12)
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 4\)"):
        SoftmaxCrossEntropy()(t64(backend, z), np.array([0, 1, 2, 3, 4, 0]))


def test_losses_match_definitions_at_their_edges(backend, rng):
    """Where a formula's mutants agree with it on the usual inputs: MSE of (m, k) outputs is the
    mean over all m·k elements (a sum over the batch averaged over m alone passed, as every test's
    targets were (m,) or (m, 1)); a BCE label just above 1 is refused (only 2 was tried); and the
    fused softmax cross-entropy gives NaN for the class index C, one past the last (its docstring:
    an index outside [0, C) gives that row a NaN loss), as for −1."""
    z, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    assert MeanSquaredError()(t64(backend, z), y).item() == pytest.approx(((z - y) ** 2).mean(), rel=1e-12)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 1\].*got values in \[0.0, 1.2\]"):
        BinaryCrossEntropy()(t64(backend, np.zeros(2)), np.array([0.0, 1.2]))
    logits = t64(backend, np.zeros((3, 4)))
    for outside in (4, -1):
        assert np.isnan(xdl.functions.softmax_cross_entropy(logits, np.array([0, outside, 2])).item())



def _softmax_cross_entropy(z, labels):
    """The mean of −log softmax(z)[i, labels[i]] over the rows, in NumPy."""
    p = np.exp(z - z.max(1, keepdims=True))
    return -np.log((p / p.sum(1, keepdims=True))[np.arange(len(labels)), labels]).mean()


def test_a_loss_reads_targets_it_does_not_own_on_the_host(backend, rng):
    """`_as_array` reads targets that are no array of the loss's backend (a list, a tuple: no dtype)
    and masked arrays (a masked value is NaN, refused, not the fill value under it) on the host
    first; the costs are NumPy's."""
    z, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    for targets in (y.tolist(), tuple(map(tuple, y)), np.ma.masked_array(y)):
        assert MeanSquaredError()(t64(backend, z), targets).item() == pytest.approx(((z - y) ** 2).mean(), rel=1e-12)
    labels = rng.integers(0, 3, 5)
    expected = _softmax_cross_entropy(z, labels)
    assert SoftmaxCrossEntropy()(t64(backend, z), labels.tolist()).item() == pytest.approx(expected, rel=1e-12)
    masked = np.ma.masked_array(y.copy(), mask=np.zeros(y.shape, bool))
    masked[2, 1] = np.ma.masked
    masked.data[2, 1] = -9999.0
    with pytest.raises(ValueError, match="targets contain NaN or Inf"):
        MeanSquaredError()(t64(backend, z), masked)


@pytest.mark.gpu
def test_a_loss_reads_targets_held_on_another_backend(rng):
    """Outputs on the host with targets on the device, and the other way round: the targets are
    copied to the outputs' backend (NumPy cannot read a CuPy array implicitly), the costs NumPy's."""
    if not cupy_available():
        pytest.skip("needs CuPy and an NVIDIA GPU")
    host, device = xdl.backend.get_backend("numpy"), xdl.backend.get_backend("cupy")
    z, y, labels = rng.standard_normal((5, 3)), rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    for outputs_on, targets_on in ((host, device), (device, host)):
        cost = MeanSquaredError()(t64(outputs_on, z), targets_on.asarray(y)).item()
        assert cost == pytest.approx(((z - y) ** 2).mean(), rel=1e-12)
        cost = SoftmaxCrossEntropy()(t64(outputs_on, z), targets_on.asarray(labels)).item()
        assert cost == pytest.approx(_softmax_cross_entropy(z, labels), rel=1e-12)

def three_layer_model():
    return Sequential(Dense(4, 5), BatchNorm(5), ReLU(), Dropout(0.5), Dense(5, 4, init="xavier"), Tanh(),
                      Dense(4, 3, init="glorot"))


def test_whole_model_with_l2_gradient(backend, rng):
    xdl.seed(3)
    model = f64(three_layer_model())
    X = rng.standard_normal((8, 4))
    y = rng.integers(0, 3, 8)
    cost = lambda: SoftmaxCrossEntropy()(model(X), y) + l2(model, 0.7, m=8)
    result = xdl.gradcheck(cost, model.parameters())
    assert result.difference < 1e-7, str(result)
    assert model[3].training  # dropout was only switched off during the check
    result_l1 = xdl.gradcheck(lambda: SoftmaxCrossEntropy()(model(X), y) + l1(model, 0.3, m=8), model.parameters())
    assert result_l1.difference < 1e-7, str(result_l1)


def test_l2_penalty_value_covers_weights_only(backend):
    model = Sequential(Dense(2, 2), BatchNorm(2), Dense(2, 1))
    for p in model.parameters():
        p.data[...] = 2.0
    # weights: 4 + 2 elements of value 2 → Σ‖W‖² = 24; biases, γ, β excluded
    assert l2(model, lambd=0.5, m=4).item() == pytest.approx(0.5 / 8 * 24)
    assert l1(model, lambd=0.5, m=4).item() == pytest.approx(0.5 / 4 * 12)


@pytest.mark.parametrize("penalty", [l1, l2])
@pytest.mark.parametrize("args, error, match", [
    ((float("nan"),), ValueError, r"lambd must be a finite number ≥ 0, got nan"),
    ((float("inf"),), ValueError, r"lambd must be a finite number ≥ 0, got inf"),
    (("0.1",), ValueError, r"lambd must be a finite number ≥ 0, got '0.1'"),
    ((0.1, 0), ValueError, r"m must be a number > 0"),
])
def test_penalty_arguments_are_checked_by_name(penalty, args, error, match):
    with pytest.raises(error, match=f"{penalty.__name__}: {match}"):
        penalty(Sequential(Dense(2, 2)), *args)
    with pytest.raises(TypeError, match=f"{penalty.__name__}: expected a model or a list of its parameters, got str"):
        penalty("model", 0.1)


def manual_sgd(model, X, y, loss, lr, steps):
    for _ in range(steps):
        model.zero_grad()
        loss(model(X), y).backward()
        for p in model.parameters():
            p.data -= lr * p.grad  # in place, as the optimizers do


def test_zeros_init_never_breaks_symmetry(backend, rng):
    model = Sequential(Dense(3, 4, init="zeros"), Sigmoid(), Dense(4, 2, init="zeros"))
    X = rng.standard_normal((20, 3)).astype(np.float32)
    y = rng.integers(0, 2, 20)
    manual_sgd(model, X, y, SoftmaxCrossEntropy(), lr=0.5, steps=30)
    w1, w2 = backend.to_numpy(model[0].weight.data), backend.to_numpy(model[2].weight.data)
    assert np.abs(w2).max() > 1e-3  # it did train
    assert np.allclose(w1, w1[:, :1])  # every hidden unit has the same incoming weights
    assert np.allclose(w2, w2[:1, :])  # and the same outgoing weights


@pytest.mark.filterwarnings("error")  # (NumPy's overflow in the cast is not the message)
def test_weights_drawn_not_finite_are_refused_naming_the_layer_and_init():
    """normal(1e39) gave ±inf in float32 with NumPy's cast warning alone, and an initializer of one's
    own giving NaN nothing at all: fit then called the run's first cost a divergence."""
    for init, name in (("normal(1e39)", "'normal(1e39)'"), (lambda shape: np.full(shape, np.nan), "'<lambda>'")):
        with pytest.raises(ValueError, match=f"^Dense: init {re.escape(name)} drew weights that are not finite in float32"):
            xdl.nn.Dense(4, 3, init=init)
    assert np.isfinite(xdl.nn.Dense(4, 3, init="normal(1e39)", dtype=np.float64).weight.data).all()


@pytest.mark.parametrize("name,expected", [("he", lambda i, o: 2 / i), ("xavier", lambda i, o: 1 / i),
                                           ("glorot", lambda i, o: 2 / (i + o))])
def test_initializer_variance(name, expected):
    xdl.seed(0)
    n_in, n_out = 400, 300
    w = xdl.init.get(name)((n_in, n_out))
    n = w.size
    # sample variance of n normals has relative standard error √(2/n) ≈ 0.4%; allow 5σ
    assert w.var() == pytest.approx(expected(n_in, n_out), rel=5 * np.sqrt(2 / n))
    assert abs(w.mean()) < 5 * np.sqrt(expected(n_in, n_out) / n)
    assert xdl.init.normal(10)((400, 300)).std() == pytest.approx(10, rel=0.02)
    assert not xdl.init.zeros((3, 2)).any()
    with pytest.raises(ValueError, match="unknown initializer 'lecun'"):
        xdl.init.get("lecun")
    with pytest.raises(ValueError, match=r"initializer 'normal\(-1\)': normal's scale must be a finite number ≥ 0"):
        xdl.init.get("normal(-1)")  # (was "unknown initializer": the name is known, its scale is not one)


def test_same_seed_same_weights(backend):
    xdl.seed(5)
    a = Dense(3, 3).weight.numpy()
    xdl.seed(5)
    assert np.array_equal(a, Dense(3, 3).weight.numpy())


def test_batchnorm_normalizes_and_tracks_running_stats(backend, rng):
    bn = BatchNorm(4, momentum=0.9)
    X = (rng.standard_normal((256, 4)) * [1, 10, 0.1, 3] + [5, -2, 100, 0]).astype(np.float32)
    y = bn(X).numpy()
    x64 = X.astype(np.float64)
    mu, var = x64.mean(0), x64.var(0)
    # float32 input: a feature at 100 ± 0.1 is quantized at ~1e-4 of its spread; ε shrinks σ² = 0.01 a bit
    assert np.allclose(y.mean(0), 0, atol=5e-4)
    assert np.allclose(y.var(0), var / (var + 1e-5), atol=1e-4)
    assert np.allclose(y, (x64 - mu) / np.sqrt(var + 1e-5), atol=5e-4)
    assert np.allclose(backend.to_numpy(bn.running_mean), 0.1 * mu, rtol=1e-5)
    assert np.allclose(backend.to_numpy(bn.running_var), 0.9 + 0.1 * x64.var(0, ddof=1), rtol=1e-5)
    bn.eval()
    expected = (x64 - 0.1 * mu) / np.sqrt(0.9 + 0.1 * x64.var(0, ddof=1) + 1e-5)
    assert np.allclose(bn(X).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_batchnorm_running_statistics_average_from_where_they_are(backend, rng):
    """running ← m·running + (1 − m)·batch's, from running statistics away from 0 and 1 and over two
    batches: the test above starts from the defaults (0 and 1), where m·0 = 0/m hid a mean that was
    divided by m instead of multiplied."""
    bn = f64(BatchNorm(3, momentum=0.8))
    start_mean, start_var = rng.standard_normal(3) * 4, rng.uniform(2.0, 5.0, 3)
    bn.running_mean[...], bn.running_var[...] = backend.asarray(start_mean), backend.asarray(start_var)
    mean, var = start_mean.copy(), start_var.copy()
    for _ in range(2):
        X = rng.standard_normal((10, 3)) * [1, 3, 0.5] + [2, -1, 7]
        bn(t64(backend, X))
        mean = 0.8 * mean + 0.2 * X.mean(0)
        var = 0.8 * var + 0.2 * X.var(0, ddof=1)
    np.testing.assert_allclose(backend.to_numpy(bn.running_mean), mean, rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(bn.running_var), var, rtol=1e-12)


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9, 0.99])
def test_batchnorm_running_statistics_start_at_0_and_1_uncorrected_as_its_docstring_says(backend, rng, momentum):
    """After t batches of the same data the running mean is (1 − momentumᵗ)·μ and the running variance
    momentumᵗ + (1 − momentumᵗ)·σ² (unbiased): the EWA from 0 and 1 without the course's division by
    1 − momentumᵗ — a convention the docstring states, as a student comparing the evaluation-time statistics
    with the course's bias-corrected EWA needs it said (it was said only in a Keras keyword's refusal)."""
    bn = f64(BatchNorm(3, momentum=momentum))
    X = rng.standard_normal((8, 3)) * [1, 3, 0.5] + [2, -1, 7]
    mu, var = X.mean(0), X.var(0, ddof=1)
    for t in range(1, 13):
        bn(t64(backend, X))
        kept = momentum ** t  # the start's weight left after t batches
        np.testing.assert_allclose(backend.to_numpy(bn.running_mean), (1 - kept) * mu, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(backend.to_numpy(bn.running_var), kept + (1 - kept) * var, rtol=1e-12)
    doc = " ".join(BatchNorm.__doc__.split())
    assert "running mean starts at 0 and the running variance at 1" in doc and "bias-corrected" in doc


def test_batchnorm_s_gamma_is_a_scale_and_beta_a_shift_as_the_module_doc_names_them():
    """γ's role is "scale" and β's "shift" (`xdl.nn.module`'s roles): ``parameters(role)`` finds each by its own, and
    neither is a weight or a bias (β as a "bias" passed every test)."""
    bn = BatchNorm(3)
    assert (bn.gamma.role, bn.beta.role) == ("scale", "shift")
    assert bn.parameters("scale") == [bn.gamma] and bn.parameters("shift") == [bn.beta]
    assert bn.parameters("weight") == [] and bn.parameters("bias") == []


def test_batchnorm_rejects_batch_of_one(backend):
    bn = BatchNorm(3)
    with pytest.raises(ValueError, match="at least 2 examples"):
        bn(np.ones((1, 3), dtype=np.float32))
    # a trained model asked for one example's output in training mode (xdl.load keeps the mode it was
    # saved in, as PyTorch's does): the error says how to predict
    model = xdl.nn.mlp(2, [4], 2, batch_norm=True)
    with pytest.raises(ValueError, match=r"got 1; to predict, use model.predict\(X\) or model\(X, training=False\)"):
        model(np.ones((1, 2), dtype=np.float32))
    assert model.predict(np.ones((1, 2), dtype=np.float32)).shape == (1,)
    bn.eval()
    assert bn(np.ones((1, 3), dtype=np.float32)).shape == (1, 3)  # fine in evaluation


def test_batchnorm_widens_a_float16_input_to_its_own_dtype(backend, rng):
    """A float16 tensor into a float32 BatchNorm was normalized in float16: (x − μ)² overflowed at
    65504, so the outputs were 0 and running_var inf for good (a Dense widens such an input by its
    product). y = γ·(x − μ_B)/√(σ²_B + ε) + β, computed in the layer's dtype."""
    bn = BatchNorm(3, momentum=0.0)
    x = (300 * rng.standard_normal((64, 3))).astype(np.float16)
    y = bn(xdl.tensor(backend.asarray(x)))
    x64 = x.astype(np.float64)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-5), atol=1e-5)
    np.testing.assert_allclose(backend.to_numpy(bn.running_var), x64.var(0, ddof=1), rtol=1e-5)


def test_dropout_keeps_fraction_and_expectation(backend):
    layer = Dropout(0.3)
    x = np.ones((1000, 1000), dtype=np.float32)
    y = layer(x).numpy()
    kept = (y != 0).mean()
    assert kept == pytest.approx(0.7, abs=0.005)
    assert y.mean() == pytest.approx(1.0, abs=0.01)  # E[output] = input
    assert np.allclose(y[y != 0], 1 / 0.7)
    layer.eval()
    assert np.array_equal(layer(x).numpy(), x)
    with pytest.raises(ValueError, match="rate must be a number in"):
        Dropout(1.0)



@pytest.mark.parametrize("rate", [0.0, 0.1, 0.25, 0.5, 0.75, 0.9])
def test_dropout_p_is_pytorchs_name_of_its_rate(backend, rate):
    """``layer.p = …`` (PyTorch's name, a dropout schedule's habit) set a plain attribute that no forward
    read: the layer went on dropping at its old rate. ``p`` is now ``rate``, read, set and made with."""
    made = Dropout(p=rate)
    assert made.rate == made.p == rate and made.config == {"rate": rate}
    layer = Dropout(0.5)
    layer.p = rate
    assert layer.rate == layer.p == rate and "p" not in vars(layer)
    y = layer(np.ones((500, 400), dtype=np.float32)).numpy()
    assert (y != 0).mean() == pytest.approx(1 - rate, abs=0.01)
    with pytest.raises(ValueError, match=r"Dropout: rate must be a number in .*got 1.5"):
        layer.p = 1.5
    assert layer.rate == rate  # (refused before anything changed)
    with pytest.raises(TypeError, match=r"Dropout: give the drop probability once, as rate \(or p"):
        Dropout(rate, p=rate)


@pytest.mark.parametrize("made", [lambda: Dropout(), lambda: Dropout(None), lambda: Dropout(p=None)])
def test_dropout_made_without_a_rate_is_refused_as_a_rate_of_none_set_by_hand(made):
    """No rate (or None as rate or p) is the error ``layer.rate = None`` gives, ValueError naming the rate: the
    constructor raised TypeError there, where a setting's assignment and its constructor refuse alike."""
    with pytest.raises(ValueError, match=r"^Dropout: rate must be a number in .*got None$"):
        made()
    layer = Dropout(0.5)
    with pytest.raises(ValueError, match=r"^Dropout: rate must be a number in .*got None$"):
        layer.rate = None


MLP_ERRORS = [
    (dict(hidden=32), r"mlp: hidden must be a non-empty list of positive integers.*got 32 \(one hidden layer of 32: \[32\]\)"),
    (dict(hidden=[3.7]), r"mlp: hidden must be a non-empty list of positive integers.*got \[3.7\]"),
    (dict(hidden=[]), r"mlp: hidden must be a non-empty list"),
    (dict(hidden="32"), r"mlp: hidden must be .*got '32'"),
    (dict(hidden=[4, True]), r"mlp: hidden must be .*got \[4, True\]"),
    (dict(hidden=[4, 0]), r"mlp: hidden must be .*got \[4, 0\]"),
    (dict(dropout="0.5"), r"mlp: dropout must be a number in \[0, 0.998046875\] \(the drop probability\), got '0.5'"),
    (dict(dropout=1.0), r"mlp: dropout must be a number in \[0, 0.998046875\]"),
    (dict(n_features=4.0), r"mlp: n_features must be a positive integer, got 4.0"),
    (dict(n_outputs=0), r"mlp: n_outputs must be a positive integer, got 0"),
    (dict(activation=["relu"]), r"mlp: activation must be one of relu, .*got \['relu'\]"),
    (dict(batch_norm="no"), r"mlp: batch_norm must be True or False, got 'no'"),
    (dict(standardize=xdl.nn.Standardize(5)), r"mlp: standardize must be a Standardize layer of 4 features"),
]


@pytest.mark.parametrize("change, message", MLP_ERRORS, ids=[repr(change) for change, _ in MLP_ERRORS])
def test_mlp_checks_its_arguments_before_drawing_weights(change, message):
    xdl.seed(0)
    with pytest.raises(ValueError, match=message):
        xdl.nn.mlp(**(dict(n_features=4, hidden=[3], n_outputs=2) | change))
    first = xdl.nn.mlp(4, [3], 2)[0].weight.numpy()
    xdl.seed(0)
    assert np.array_equal(first, xdl.nn.mlp(4, [3], 2)[0].weight.numpy())  # the failed call drew nothing


def test_mlp_takes_sizes_as_any_sequence_of_integers():
    for hidden in ([3, 2], (3, np.int64(2)), np.array([3, 2]), range(3, 1, -1)):
        model = xdl.nn.mlp(4, hidden, 2, dropout=np.float32(0.5))
        assert [layer.out_features for layer in model.layers if isinstance(layer, Dense)] == [3, 2, 2]
        assert model[2].rate == 0.5


@pytest.mark.parametrize("make, message", [
    (lambda: Dropout("0.5"), r"Dropout: rate must be a number in \[0, 0.998046875\] \(the drop probability\), got '0.5'"),
    (lambda: Dropout(float("nan")), r"Dropout: rate must be a number in \[0, 0.998046875\].*got nan"),
    (lambda: Dropout(True), r"Dropout: rate must be .*got True"),
    (lambda: Dense(True, 2), r"Dense: in_features must be a positive integer, got True"),
    (lambda: Dense(2, 2.0), r"Dense: out_features must be a positive integer, got 2.0"),
    (lambda: Dense(2, 2, bias="False"), r"Dense: bias must be True or False, got 'False'"),
    (lambda: Dense(2, 2, dtype=np.int32), r"Dense: dtype must be float32 or float64 or None"),
    (lambda: Dense(2, 2, dtype="float99"), r"Dense: dtype must be float32 or float64.*got 'float99'"),
    (lambda: Dense(2, 2, dtype=np.float16), r"Dense: dtype must be float32 or float64 or None, got <class "),
    (lambda: BatchNorm(3, momentum="0.9"), r"BatchNorm: momentum must be a number in \[0, 1\), got '0.9'"),
    (lambda: BatchNorm(3, momentum=1.0), r"BatchNorm: momentum must be a number in \[0, 1\), got 1.0"),
    (lambda: BatchNorm(3, eps=float("inf")), r"BatchNorm: eps must be a finite number > 0 in float32, got inf"),
    (lambda: BatchNorm(3, eps=0), r"BatchNorm: eps must be a finite number > 0 in float32, got 0"),
    (lambda: BatchNorm(3, eps=1e-50), r"BatchNorm: eps must be a finite number > 0 in float32, got 1e-50"),
    (lambda: BatchNorm(np.True_), r"BatchNorm: features must be a positive integer"),
    (lambda: BatchNorm(3, dtype="int64"), r"BatchNorm: dtype must be float32 or float64"),
    (lambda: LeakyReLU("0.1"), r"LeakyReLU: slope must be a finite number, got '0.1'"),
    (lambda: LeakyReLU(float("nan")), r"LeakyReLU: slope must be a finite number, got nan"),
    (lambda: xdl.nn.Standardize(2, mean=[0.0, np.nan]), r"Standardize: mean must be finite, and scale finite and > 0"),
    (lambda: xdl.nn.Standardize(2, scale=[1.0, np.inf]), r"Standardize: mean must be finite, and scale finite"),
    (lambda: xdl.nn.Standardize(2, scale=[1.0, 0.0]), r"Standardize: mean must be finite, and scale finite and > 0"),
    (lambda: xdl.nn.Standardize(2, scale=[-0.0, 1.0]), r"Standardize: mean must be finite, and scale finite and > 0"),
    (lambda: xdl.nn.Standardize(2, scale=[1.0, 2.0, 3.0]), r"Standardize: mean and scale must be \(2,\), got \(2,\) and \(3,\)"),
    (lambda: xdl.nn.Standardize(True), r"Standardize: features must be a positive integer, got True"),
])
def test_layer_arguments_are_checked_with_named_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_softmax_layer_takes_an_axis_and_keeps_it_in_its_description():
    assert Softmax().config == {"axis": -1} and Softmax(np.int64(0)).axis == 0
    assert xdl.nn.architecture.build({"class": "Softmax"}).axis == -1  # described before it had one
    for axis in (1.5, True):  # (a bool is no axis, though an int)
        with pytest.raises(TypeError, match=rf"Softmax: axis must be an integer, got {axis}"):
            Softmax(axis)


def test_layer_arguments_keep_accepting_numbers_of_any_kind():
    assert Dropout(0).rate == 0.0 and Dropout(np.float32(0.25)).rate == 0.25
    assert BatchNorm(np.int64(3), momentum=np.float32(0.5), eps=1).config == {"features": 3, "momentum": 0.5, "eps": 1.0}
    assert LeakyReLU(-2).slope == -2.0 and Dense(np.int32(2), 3, dtype="float64").weight.dtype == np.float64


def test_parameters_stay_views_into_flat_buffer(backend, rng):
    model = three_layer_model()
    buffer = model.parameters()[0]._flat[0]
    xp = backend.xp

    def all_views():
        return all(xp.shares_memory(p.data, buffer.data) and xp.shares_memory(p.grad, buffer.grad)
                   for p in model.parameters())

    assert all_views()
    assert buffer.size == sum(p.size for p in model.parameters())
    X, y = rng.standard_normal((16, 4)).astype(np.float32), rng.integers(0, 3, 16)
    before = backend.to_numpy(buffer.data).copy()
    manual_sgd(model, X, y, SoftmaxCrossEntropy(), lr=0.1, steps=3)
    assert all_views()
    assert not np.array_equal(before, backend.to_numpy(buffer.data))  # training wrote into the buffer
    model.zero_grad()
    assert not backend.to_numpy(buffer.grad).any()
    # weights come first, so weights and the rest are two contiguous ranges
    roles = [p.role for p in sorted(model.parameters(), key=lambda p: p._flat[1])]
    assert roles == sorted(roles, key=lambda r: r != "weight")


def random_parameters(rng, count: int) -> list:
    """``count`` parameters of random shapes (a 0-d one among them), float32 or float64, some with a gradient."""
    params = []
    for _ in range(count):
        shape = tuple(int(n) for n in rng.integers(1, 4, size=rng.integers(0, 3)))
        dtype = [np.float32, np.float64][rng.integers(2)]
        p = xdl.Parameter(xdl.tensor(rng.standard_normal(shape).astype(dtype)))
        if rng.random() < 0.5:
            p.grad = xdl.tensor(rng.standard_normal(shape).astype(dtype)).data
        params.append(p)
    return params


def test_pack_places_each_parameter_at_the_sum_of_the_sizes_before_it_values_and_gradients_kept(rng):
    """`xdl.flat.pack`: per dtype, in the order given, parameter i at offset Σ_{j<i} size_j of a buffer of
    Σ size_j; its values and its gradient (zeros where it had none) copied there, the buffer listing its
    parameters in that order. 200 random sets."""
    for _ in range(200):
        params = random_parameters(rng, int(rng.integers(1, 6)))
        before = [(p.numpy().copy(), None if p.grad is None else np.array(p.grad)) for p in params]
        noted = xdl.graph.CheckedState.now
        buffers = xdl.flat.pack(params)
        assert xdl.graph.CheckedState.now > noted  # (new places: a graph captured on the old ones checks again)
        dtypes = list(dict.fromkeys(p.dtype for p in params))
        assert [b.data.dtype for b in buffers] == dtypes
        for flat, dtype in zip(buffers, dtypes):
            group = [p for p in params if p.dtype == dtype]
            offsets = np.cumsum([0] + [p.size for p in group])
            assert flat.params == group and all(a is b for a, b in zip(flat.params, group))
            assert flat.size == flat.grad.size == offsets[-1]
            for p, offset, end in zip(group, offsets[:-1], offsets[1:]):
                assert p._flat == (flat, offset)
                assert np.shares_memory(p.data, flat.data[offset:end])
                assert np.shares_memory(p.grad, flat.grad[offset:end])
        for p, (data, grad) in zip(params, before):
            np.testing.assert_array_equal(p.numpy(), data)
            np.testing.assert_array_equal(p.grad, np.zeros_like(data) if grad is None else grad)
            np.testing.assert_array_equal(p._flat[0].data[p._flat[1]:p._flat[1] + p.size], data.reshape(-1))


def test_pack_refuses_parameters_of_two_backends_before_moving_any():
    """Parameter 1 of another backend (as parameter 2 or later): refused by `pack` itself, naming both
    backends, every parameter left where it was."""
    from conftest import OtherBackend

    for count in (2, 3):
        params = [xdl.Parameter(xdl.tensor(np.ones(2, dtype=np.float32))) for _ in range(count)]
        params[1] = xdl.Parameter(xdl.Tensor(np.ones(2, dtype=np.float32), backend=OtherBackend()))
        arrays = [p.data for p in params]
        with pytest.raises(TypeError, match=r"^pack: parameters of different backends \(numpy and otherlib\)"):
            xdl.flat.pack(params)
        assert all(p.data is a and getattr(p, "_flat", None) is None for p, a in zip(params, arrays))


def test_a_flat_buffer_lists_its_parameters_still_alive_only():
    """A buffer holds its parameters weakly: one dropped is left out of ``params`` (and of its pickle)."""
    import gc

    params = [xdl.Parameter(xdl.tensor(np.full(2, float(i), dtype=np.float32))) for i in range(3)]
    (flat,) = xdl.flat.pack(params)
    kept = [params[0], params[2]]
    del params
    gc.collect()
    assert flat.params == kept and all(a is b for a, b in zip(flat.params, kept))
    assert flat.__getstate__()["params"] == kept


def test_moving_parameters_from_several_buffers_keeps_their_gradients():
    """`xdl.flat.move` of parameters not back to back in one buffer (each moved alone, then packed anew on the
    target): values and gradients kept, each a view of the new buffer."""
    a, b = (xdl.Parameter(xdl.tensor(np.full(3, v, dtype=np.float32))) for v in (1.0, 2.0))
    xdl.flat.pack([a])
    xdl.flat.pack([b])
    a.grad[...], b.grad[...] = 5.0, 7.0
    target = CopyingHost()
    (flat,) = xdl.flat.move([a, b], target)
    assert a.backend is target and b.backend is target and flat.params == [a, b]
    assert flat.data.tolist() == [1.0] * 3 + [2.0] * 3 and flat.grad.tolist() == [5.0] * 3 + [7.0] * 3
    assert all(xdl.flat.is_view_of(p, flat, offset) for p, offset in ((a, 0), (b, 3)))


def test_a_parameter_is_a_view_of_its_buffer_at_its_offset_only_while_neither_array_is_rebound(rng):
    """`xdl.flat.is_view_of(p, flat, offset)`: p.data and p.grad start at element ``offset`` of the buffer's
    arrays — at no other offset, and no longer once either is rebound to an array of its own."""
    model = xdl.nn.mlp(3, [4, 5], 2)
    params = model.parameters()
    flat = params[0]._flat[0]
    for p in params:
        offset = p._flat[1]
        assert xdl.flat.is_view_of(p, flat, offset)
        assert not any(xdl.flat.is_view_of(p, flat, other) for other in range(flat.size) if other != offset)
    for p in params:
        p.grad = np.zeros(p.shape, dtype=p.dtype)
        assert not xdl.flat.is_view_of(p, flat, p._flat[1])


def test_the_range_a_group_fills_is_the_buffers_values_and_gradients_there():
    """`xdl.flat.contiguous_range`: a model's weights (first in its buffer, given in any order) are the views of
    buffer[0:Σ sizes] (values and gradients); a group with a gap between its parameters, or one rebound, has none."""
    model = xdl.nn.mlp(3, [4, 5], 2)
    for p in model.parameters():
        p.grad[...] = np.arange(p.size).reshape(p.shape) + 100.0 * p._flat[1]
    weights = [p for p in model.parameters() if p.role == "weight"]
    flat, stop = weights[0]._flat[0], sum(p.size for p in weights)
    for order in itertools.permutations(weights):
        data, grad = xdl.flat.contiguous_range(list(order))
        assert np.shares_memory(data, flat.data) and np.shares_memory(grad, flat.grad)
        np.testing.assert_array_equal(data, flat.data[:stop])
        np.testing.assert_array_equal(grad, np.concatenate([p.grad.reshape(-1) for p in weights]))
    assert xdl.flat.contiguous_range([weights[0], weights[2]]) is None
    weights[1].data = weights[1].data.copy()  # (rebound: the range would no longer be what it trains)
    assert xdl.flat.contiguous_range(weights) is None


def test_an_optimizer_of_parameters_never_placed_packs_them_in_the_order_given():
    """`xdl.flat.flat_views` of parameters in no buffer yet (made by hand): packed anew, one buffer per dtype."""
    a, b = (xdl.Parameter(xdl.tensor(np.full(2, v, dtype=np.float32))) for v in (1.0, 2.0))
    (flat,) = xdl.flat.flat_views([b, a])
    assert flat.params == [b, a] and flat.data.tolist() == [2.0, 2.0, 1.0, 1.0]


def test_a_copied_model_keeps_its_gradients_and_a_value_rebound_by_hand_in_its_buffer():
    """A deep copy or a pickle makes the copy's parameters views of its buffer's copy again (`xdl.flat.view_again`):
    with the gradients they had, and a ``.data`` rebound by hand before the copy written into that buffer."""
    model = xdl.nn.mlp(3, [4], 2)
    for i, p in enumerate(model.parameters()):
        p.grad[...] = i + 1.0
    rebound = model.parameters()[1]
    rebound.data = np.full(rebound.shape, 7.0, dtype=np.float32)
    for copied in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        params = copied.parameters()
        flat = params[0]._flat[0]
        assert all(xdl.flat.is_view_of(p, flat, p._flat[1]) for p in params)
        assert [float(p.grad.reshape(-1)[0]) for p in params] == [i + 1.0 for i in range(len(params))]
        np.testing.assert_array_equal(params[1].data, np.full(rebound.shape, 7.0))


def test_parameters_are_viewed_again_only_in_a_buffer_that_lists_them_and_can_be_written():
    """`xdl.flat.view_again`: False, nothing changed, where a parameter's buffer does not list it or is read-only."""
    a, b = (xdl.Parameter(xdl.tensor(np.full(2, v, dtype=np.float32))) for v in (1.0, 2.0))
    (flat,) = xdl.flat.pack([a, b])
    for unlisted in (True, False):
        a.data, b.data = np.full(2, 3.0, dtype=np.float32), np.full(2, 4.0, dtype=np.float32)
        arrays = (a.data, b.data)
        if unlisted:
            flat.params = [a]
        else:
            flat.params = [a, b]
            flat.data.flags.writeable = False
        assert xdl.flat.view_again([a, b]) is False
        assert (a.data, b.data) == arrays and flat.data.tolist() == [1.0, 1.0, 2.0, 2.0]


def test_host_copies_read_each_run_of_a_buffer_once_and_give_each_parameter_its_values(monkeypatch, rng):
    """Where a host read is a sync (a device's: here NumPy said to be one), `xdl.flat.host_copies` reads each
    run of parameters lying back to back once — any subset of a model's, in any order — and hands each its
    values, as a copy; one rebound by hand is read alone."""
    monkeypatch.setattr(xdl.backend.NumpyBackend, "host_sync_is_cheap", False)
    reads = []
    real = xdl.flat.host_copy
    monkeypatch.setattr(xdl.flat, "host_copy", lambda backend, array: reads.append(array.size) or real(backend, array))
    model = xdl.nn.mlp(3, [1, 4], 1)  # (biases of one element: runs one element apart)
    params = model.parameters()
    for _ in range(100):
        chosen = [params[i] for i in rng.permutation(len(params))[:rng.integers(1, len(params) + 1)]]
        reads.clear()
        copies = xdl.flat.host_copies(chosen)
        for p, c in zip(chosen, copies):
            np.testing.assert_array_equal(c, p.numpy())
            assert not np.shares_memory(c, p.data)
        offsets = sorted((p._flat[1], p._flat[1] + p.size) for p in chosen)
        runs = 1 + sum(stop != start for (_, stop), (start, _) in zip(offsets, offsets[1:]))
        assert len(reads) == runs and sum(reads) == sum(p.size for p in chosen)
    params[0].data = np.full(params[0].shape, 9.0, dtype=np.float32)
    assert xdl.flat.host_copies(params[:1])[0].tolist() == params[0].data.tolist()



@pytest.mark.parametrize("target", ["stand-in", "backend"])
def test_a_model_moves_to_another_backend_with_its_values_and_gradients(backend, rng, target):
    """``model.to(backend)``: each parameter a view of one flat buffer there (one copy, not one per
    parameter), values, gradients and batch-norm statistics kept, the model computing what it did;
    an optimizer made before the move refuses to step, one made after trains."""
    with xdl.use("numpy"):
        model = xdl.nn.mlp(4, [6, 5], 3, batch_norm=True)
    X = rng.standard_normal((16, 4)).astype(np.float32)
    model.eval()
    with xdl.use("numpy"):
        before = model(X).numpy()
    for p in model.parameters():
        p.grad[...] = rng.standard_normal(p.shape)
    state, grads = model.state_dict(), [p.grad.copy() for p in model.parameters()]
    stale = xdl.optim.SGD(model, lr=0.1)
    other = CopyingHost() if target == "stand-in" else backend
    assert model.to(other) is model and model.backend is other
    flat = model.parameters()[0]._flat[0]
    assert other.owns(flat.data) and other.owns(flat.grad) and flat.size == sum(p.size for p in model.parameters())
    for p, g in zip(model.parameters(), grads):
        assert p.backend is other and p._flat[0] is flat and other.owns(p.data) and other.owns(p.grad)
        np.testing.assert_array_equal(other.to_numpy(p.grad), g)
    assert all(other.owns(a) for _, a in model.named_buffers())
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[name], err_msg=name)
    if other is not xdl.backend.get_backend("numpy"):  # moved: the old optimizer would update the old copies
        with pytest.raises(RuntimeError, match="the parameters moved to new storage"):
            stale.step()
    # used where it now lives, whichever backend is current (the inputs follow the model)
    with xdl.use("numpy"):
        np.testing.assert_allclose(model.predict_outputs(X), before, rtol=1e-5, atol=1e-6)
        model.train()
        y = rng.integers(0, 3, 16)
        history = xdl.train.Trainer(model, SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=0.01), epochs=2,
                                    batch_size=8, progress=False).fit(X, y)
    assert len(history.records) == 2 and model.backend is other
    assert not np.array_equal(other.to_numpy(model.parameters()[0]._flat[0].data), np.concatenate(
        [state[name].ravel() for name, _ in model.flat_order()]))  # trained in the moved buffer


def test_moving_or_converting_to_what_a_model_has_changes_nothing(backend):
    model = xdl.nn.mlp(4, [6], 3, batch_norm=True)
    arrays = [p.data for p in model.parameters()] + [a for _, a in model.named_buffers()]
    assert model.to(backend) is model and model.astype(model.dtype) is model
    assert all(a is b for a, b in zip([p.data for p in model.parameters()] + [a for _, a in model.named_buffers()],
                                      arrays, strict=True))
    assert model.to(backend.device_type) is model
    assert all(a is b for a, b in zip([p.data for p in model.parameters()], arrays))
    with pytest.raises(TypeError, match=r"to: backend must be a backend name \(numpy, cupy, auto\), a device kind "
                                        r"\(cpu, cuda\) or an xdl Backend, got 3$"):
        model.to(3)
    with pytest.raises(TypeError, match=r"to: <class 'numpy.float64'> is a dtype; model.astype\('float64'\) converts"):
        model.to(np.float64)
    with pytest.raises(TypeError, match=r"to: backend must be .* got <class 'xdl.backend.NumpyBackend'>$"):
        model.to(xdl.NumpyBackend)  # the class, not a backend (NumPy takes any class for the object dtype)
    with pytest.raises(TypeError, match=r"to: 'float64' is a dtype; model.astype\('float64'\) converts a model"):
        model.to("float64")
    with pytest.raises(ValueError, match=r"unknown backend 'gpu'; expected one of numpy, cupy, auto"):
        model.to("gpu")
    stacked = xdl.nn.stack([model])
    with pytest.raises(TypeError, match=r"a Stacked model cannot move: .* stack\(models, backend\)"):
        stacked.to(backend)
    assert stacked.astype(np.float32) is stacked
    with pytest.raises(TypeError, match=r"a Stacked model cannot change dtype \(float32 → float64\)"):
        stacked.astype(np.float64)



def test_an_attribute_named_as_a_module_method_or_a_dotted_name_is_refused():
    """self.flatten = Flatten() (PyTorch's quickstart) shadowed Module.flatten: astype failed half way,
    the model left converted and unplaced; a dotted name made two state_dict keys one."""
    class Net(xdl.nn.Module):
        def __init__(self, name, value):
            super().__init__()
            setattr(self, name, value)

    for name in ("flatten", "predict", "mode"):
        with pytest.raises(AttributeError, match=rf"Net.{name}: '{name}' is a method of xdl.nn.Module, which xdl calls "
                                                 rf"on every model; name the attribute otherwise \(e.g. '{name}_'\)"):
            Net(name, Dense(4, 3))
    for name, value in (("a.weight", xdl.Parameter(np.ones((2, 2), np.float32))), ("", Dense(2, 2))):
        with pytest.raises(ValueError, match=r"Net: the name of a parameter, submodule or buffer cannot contain '\.' "
                                             rf"or be empty .*got '{re.escape(name)}'"):
            Net(name, value)
    with pytest.raises(ValueError, match=r"cannot contain '\.'"):
        Dense(2, 2).add_buffer("a.b", np.zeros(2))
    Net("flatten_", Dense(4, 3)).astype(np.float64)  # what the message offers
    wrapped = Dense(2, 2)
    plain = wrapped.forward
    wrapped.forward = lambda x: plain(x) * 2  # an instance's forward wrapped, as in PyTorch: __call__ runs it
    np.testing.assert_allclose(wrapped(np.ones((1, 2), np.float32)).numpy(), 2 * plain(xdl.tensor(np.ones((1, 2),
                               np.float32))).numpy())


@pytest.mark.parametrize("fused", [False, True])
def test_a_dropout_called_twice_in_a_forward_pass_draws_two_masks_under_a_key(backend, fused, monkeypatch):
    """A Dropout reused after two layers drew the same mask at both calls under a Trainer's key (two
    thirds of the units kept where a quarter should be); now a mask per call, the same ones at every
    pass of the same step, and the first call's the mask it always drew."""
    drop = Dropout(0.5)
    X = np.ones((200, 50), np.float32)
    xdl.seed(0)
    model = Sequential(Dense(50, 50), ReLU(), drop, Dense(50, 50), ReLU(), drop) if fused else Sequential(drop, drop)
    model.set_random_key(0, step=3)
    first = model(X).numpy()
    assert np.array_equal(model(X).numpy(), first)  # a pass again: the same masks
    if not fused:
        assert abs((first != 0).mean() - 0.25) < 0.02  # was 0.50: one mask twice
        once = drop(X).numpy() != 0  # a pass of the layer alone: its first call's key, the one it is given
        np.testing.assert_array_equal(once, xdl.functions.dropout(xdl.tensor(X), 0.5, key=drop.random_key).numpy() != 0)
    else:
        seen, relu_dropout = [], xdl.nn.sequential.layer_relu_dropout
        monkeypatch.setattr(xdl.nn.sequential, "layer_relu_dropout",
                            lambda x, rate, key: seen.append(key) or relu_dropout(x, rate, key))
        model(X)
        assert seen[0] == drop.random_key and seen[1][1] == drop.random_key[1] + xdl.nn.module.REPEAT_STREAMS


def test_a_relu_before_a_keyed_dropout_runs_as_one_op_with_the_pairs_values(backend, rng, monkeypatch):
    """Under a key (a Trainer's), `Sequential` runs ReLU → Dropout as `relu_dropout` (one node, one
    kernel each way on the GPU): outputs, weight gradients and batch-norm statistics bit for bit
    those of the two layers run one after the other; without a key, or in evaluation, no fusion."""
    import xdl.nn.sequential

    X = rng.standard_normal((32, 6)).astype(np.float32)

    def run(fuse: bool, key: bool = True, training: bool = True):
        xdl.seed(3)
        model = xdl.nn.mlp(6, [8, 5], 3, batch_norm=True, dropout=0.3).train(training)
        if key:
            model.set_random_key(7, step=11)
        with monkeypatch.context() as m:
            if not fuse:
                m.setattr(xdl.nn.sequential, "_fused", lambda layer, after: False)
            out = model(X)
            nodes = []
            node = out
            while node._fn is not None:  # the chain of nodes back to the input
                nodes.append(type(node._fn).__name__)
                node = node._fn.inputs[0]
            if training:
                (out * out).sum().backward()
        return out.numpy(), [p.grad.copy() if training else None for p in model.parameters()], \
            model.state_dict(), nodes

    fused, pair = run(True), run(False)
    assert fused[3].count("ReLUDropout") == 2 and "ReLUDropout" not in pair[3] and "Dropout" in pair[3]
    np.testing.assert_array_equal(fused[0], pair[0])
    for a, b in zip(fused[1], pair[1]):
        np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
    for name in fused[2]:
        np.testing.assert_array_equal(fused[2][name], pair[2][name], err_msg=name)
    assert "ReLUDropout" not in run(True, key=False)[3]  # the backend's generator: dropout as it is
    assert "ReLUDropout" not in run(True, training=False)[3]


def test_predict_in_batches(backend, rng):
    model = Sequential(Dense(4, 3))
    X = rng.standard_normal((10, 4)).astype(np.float32)
    proba = model.predict_proba(X, batch_size=3)
    assert proba.shape == (10, 3) and np.allclose(proba.sum(1), 1, atol=1e-6)
    assert np.array_equal(model.predict(X), proba.argmax(1))
    assert np.allclose(proba, model.predict_proba(X, batch_size=100), atol=1e-6)
    binary = Sequential(Dense(4, 1))
    p = binary.predict_proba(X)
    assert p.shape == (10, 2) and np.allclose(p.sum(1), 1)
    none = X[:0]  # no rows: the shapes of no predictions, not of nothing
    assert model.predict_proba(none).shape == model.predict_outputs(none).shape == (0, 3)
    assert model.predict(none).shape == (0,) and binary.predict_proba(none).shape == (0, 2)
    with pytest.raises(ValueError, match=r"^X has 5 features, the model expects 4$"):  # (as fit says it)
        model.predict(np.ones((10, 5)))


def test_predict_of_examples_of_the_wrong_width_names_the_shape_given():
    """predict of images (m, h, w) whose h·w is not the model's width named the shape the first
    layer saw, flattened: "Dense(64→8): expected input of shape (m, 64), got (1, 256)"."""
    model = xdl.nn.mlp(64, [8], 10)
    for shape in [(1, 16, 16), (4, 3, 8), (0, 3, 3), (2, 4, 4, 5), (3, 1, 63), (5, 65, 1)]:
        for predicting in (model.predict, model.predict_proba, model.predict_outputs):
            with pytest.raises(ValueError, match=rf"^X of shape {re.escape(str(shape))} has "
                                                 rf"{int(np.prod(shape[1:]))} features, the model expects 64$"):
                predicting(np.zeros(shape))
    for shape in [(1, 8, 8), (4, 2, 32), (0, 64, 1), (2, 4, 4, 4)]:  # (h·w the width: flattened, as fit takes them)
        assert model.predict(np.zeros(shape)).shape == (shape[0],)
    standardized = xdl.nn.Sequential(xdl.nn.Standardize(4, np.zeros(4), np.ones(4)), xdl.nn.Dense(4, 2))
    with pytest.raises(ValueError, match=r"^X of shape \(3, 3, 3\) has 9 features, the model expects 4$"):
        standardized.predict(np.zeros((3, 3, 3)))


class Cropping(Sequential):
    """A Sequential of one's own whose forward reads the first ``width`` of X's features only."""

    def __init__(self, width, *layers):
        super().__init__(*layers)
        self.width = width

    def forward(self, x):
        return super().forward(x[:, :self.width])


def test_a_sequential_with_its_own_forward_takes_the_width_its_forward_reads():
    """A subclass with its own forward is a model of one's own (it may crop X before its first layer): predict
    and fit refused the X it reads ("X has 6 features, the model expects 4"), checked against its first layer's
    width as a Sequential that runs its layers in order is."""
    for width, extra in itertools.product([1, 4, 7], [1, 2, 9]):
        model = Cropping(width, Dense(width, 3), ReLU(), Dense(3, 2))
        X = np.random.default_rng(width).normal(size=(6, width + extra))
        assert model.predict(X).shape == (6,) and model.predict_proba(X).shape == (6, 2)
        history = xdl.train.Trainer(model, SoftmaxCrossEntropy(), xdl.optim.SGD(model), epochs=1,
                                    progress=False).fit(X, np.arange(6) % 2)
        assert len(history) == 1
        in_order = Sequential(Dense(width, 3), ReLU(), Dense(3, 2))  # (its own layers' width, checked first)
        with pytest.raises(ValueError, match=rf"^X has {width + extra} features, the model expects {width}$"):
            in_order.predict(X)


class Direct(xdl.nn.Module):
    """Parameters assigned as attributes, as a PyTorch user writes them."""

    def __init__(self):
        super().__init__()
        self.w = xdl.Parameter(np.ones((3, 2), dtype=np.float32))
        self.b = xdl.Parameter(np.zeros(2, dtype=np.float32))

    def forward(self, x):
        return x @ self.w + self.b


def test_a_parameter_assigned_directly_gets_a_role_from_its_shape(backend):
    """ndim ≥ 2: a "weight" (decayed, first in the flat buffer); a vector or a scalar: a "bias";
    a role given before assigning is kept, an unknown one refused."""
    model = Direct()
    assert (model.w.role, model.b.role) == ("weight", "bias") and model.parameters("weight") == [model.w]
    model.b.data[...] = 10
    assert l2(model, 1.0, m=1).item() == pytest.approx(3.0)  # Σw² / 2: the bias is not penalized
    assert Direct().astype(np.float64).dtype == np.float64 and Direct().to(backend).backend is backend
    wrapped = Sequential(Direct())
    assert [n for n, _ in wrapped.flat_order()] == ["0.w", "0.b"]
    explicit = xdl.Parameter(np.ones((2, 2), dtype=np.float32))
    explicit.role = "scale"
    model.s = explicit
    assert model.s.role == "scale"
    odd = xdl.Parameter(np.ones(2, dtype=np.float32))
    odd.role = "gain"
    with pytest.raises(ValueError, match=r"Direct.g: role must be one of \('weight', 'bias', 'scale', 'shift'\), "
                                         r"got 'gain'"):
        model.g = odd
    assert "g" not in dict(model.named_parameters()) and not hasattr(model, "g")
    with pytest.raises(ValueError, match=r"parameters: role must be one of weight, bias, scale, shift or None, got "
                                         r"'gain'"):
        model.parameters("gain")  # it gave [] for any word
    with pytest.raises(ValueError, match=r"got True \(PyTorch's recurse"):
        model.parameters(True)


def test_modes_and_strictness_are_true_or_false():
    """A string or 0 is no mode: ``model.train("no")`` left ``training == "no"`` (truthy: dropout on)."""
    model = xdl.nn.mlp(2, [3], 2, dropout=0.5)
    for bad in ("no", 0, None):
        with pytest.raises(ValueError, match=r"train: mode must be True or False, got "):
            model.train(bad)
    assert model.training is True and model.train(np.bool_(False)).training is False
    with pytest.raises(ValueError, match=r"load_state_dict: strict must be True or False, got 'no'"):
        model.load_state_dict(model.state_dict(), strict="no")


class Holder(xdl.nn.Module):
    def __init__(self):
        super().__init__()
        self.add_parameter("w", np.ones(2), "weight")
        self.sub = Dense(2, 2)
        self.add_buffer("count", np.zeros(1), np.int64)

    def forward(self, x):
        return self.sub(x * self.w)


def test_a_registered_name_is_reassigned_or_removed_as_in_pytorch(backend):
    """A parameter's name takes a Parameter or None, a submodule's a Module or None (TypeError
    naming it, nothing changed); None or del unregisters."""
    m = Holder()
    w = m.w
    with pytest.raises(TypeError, match=r"cannot assign a Tensor to Holder.w, a registered parameter: expected an "
                                        r"xdl.Parameter, or None to remove it \(to change its values"):
        m.w = xdl.tensor([5.0, 5.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"cannot assign a int to Holder.sub, a registered submodule: expected an "
                                        r"xdl.nn.Module, or None to remove it$"):
        m.sub = 3
    assert m.w is w and list(m.state_dict()) == ["w", "sub.weight", "sub.bias", "count"]
    m.w = xdl.Parameter(backend.asarray(np.full(2, 5.0, dtype=np.float32)))  # a Parameter replaces it
    assert m.state_dict()["w"].tolist() == [5.0, 5.0] and m.parameters()[0] is m.w
    m.sub = None
    assert m.sub is None and [n for n, _ in m.named_parameters()] == ["w"]
    del m.w
    del m.count
    assert not m.parameters() and not list(m.named_buffers()) and not hasattr(m, "w")
    m.sub = Dense(2, 2)
    m.sub = ReLU()  # a module replaces a module
    assert list(m.state_dict()) == []
    with pytest.raises(AttributeError):
        del m.w


def test_a_model_that_owns_a_flat_buffer_packs_anew_when_its_parameters_change(backend):
    """Its parameters stay views of one buffer, without those that left; an optimizer made before
    refuses to step (it holds the old storage), one made after trains them all."""
    model = Holder()
    model.flatten()
    stale = xdl.optim.SGD(model, lr=0.1)
    model.extra = xdl.Parameter(backend.asarray(np.ones((2, 3), dtype=np.float32)))
    buffer = model.parameters()[0]._flat[0]
    assert buffer.size == 2 + 4 + 2 + 6 and all(p._flat[0] is buffer for p in model.parameters())
    assert [n for n, _ in model.flat_order()][:3] == ["w", "extra", "sub.weight"] and model.extra.role == "weight"
    with pytest.raises(RuntimeError, match="moved to new storage"):
        stale.step()
    model.sub = None
    buffer = model.parameters()[0]._flat[0]
    assert buffer.size == 2 + 6 and all(p._flat[0] is buffer for p in model.parameters())
    opt = xdl.optim.SGD(model, lr=0.1)
    before = model.extra.numpy().copy()
    (model.extra.sum() + model.w.sum()).backward()
    opt.step()
    np.testing.assert_allclose(model.extra.numpy(), before - 0.1)


def test_astype_converts_only_floating_state_and_refuses_other_dtypes(backend):
    model = Holder()
    model.add_buffer("mask", np.ones(2), bool)
    model.add_buffer("mean", np.zeros(2))
    assert model.astype(np.float64) is model and model.dtype == np.float64
    assert {n: str(a.dtype) for n, a in model.named_buffers()} == {"count": "int64", "mask": "bool", "mean": "float64"}
    for dtype in (np.int32, "int64", bool, None, "float99", "float16", np.longdouble):
        with pytest.raises(ValueError, match=rf"astype: dtype must be float32 or float64, "
                                             rf"got {re.escape(repr(dtype))}$"):
            model.astype(dtype)
    assert model.dtype == np.float64 and model.mean.dtype == np.float64  # refused before any change


def test_astype_converts_a_buffer_of_another_dtype_beside_parameters_already_of_that_dtype(backend):
    """Every parameter float64 already, a floating buffer float32: ``astype(float64)`` widens the buffer (returning
    early on the parameters' dtype alone left it float32) and its values, and leaves the parameters as they were."""
    model = Holder().astype(np.float64)
    model.add_buffer("mean", np.array([0.1, 2.5]), np.float32)
    weights = [p.numpy().copy() for p in model.parameters()]
    assert model.astype(np.float64) is model
    assert model.mean.dtype == np.float64
    widened = np.array([0.1, 2.5], dtype=np.float32).astype(np.float64)
    np.testing.assert_array_equal(backend.to_numpy(model.mean), widened)
    assert all(p.dtype == np.float64 for p in model.parameters()) and model.count.dtype == np.int64
    for p, w in zip(model.parameters(), weights):
        np.testing.assert_array_equal(p.numpy(), w)


class Pair(xdl.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = Dense(2, 2)

    def forward(self, xy, scale=1.0):
        x, y = xy
        return self.fc(x) * scale + y


class Table(xdl.nn.Module):
    def __init__(self):
        super().__init__()
        self.add_parameter("table", np.arange(30.0).reshape(10, 3), "weight")

    def forward(self, idx):
        return self.table[idx]


def test_call_passes_tensors_and_structures_through_and_converts_only_array_likes(backend, rng):
    """A tuple or list of Tensors keeps the graph; extra arguments reach forward; integer inputs
    stay integers (indices); floating array-likes become the model's dtype."""
    enc = Dense(2, 2)
    h = enc(np.ones((1, 2), dtype=np.float32))
    Pair()((h, h), scale=2.0).sum().backward()
    assert enc.weight.grad is not None and np.abs(backend.to_numpy(enc.weight.grad)).sum() > 0  # the graph kept
    assert Pair()([h, h], 3.0).shape == (1, 2)

    class Two(xdl.nn.Module):
        def forward(self, x, y, *, z):
            return x + y + z

    assert Two()(xdl.tensor([1.0]), xdl.tensor([2.0]), z=xdl.tensor([3.0])).tolist() == [6.0]
    np.testing.assert_array_equal(Table()(np.array([1, 2])).numpy(), [[3, 4, 5], [6, 7, 8]])
    np.testing.assert_array_equal(Table()(xdl.tensor([9])).numpy(), [[27, 28, 29]])
    model = Dense(2, 1, dtype=np.float64)
    x = model([[0.1, 0.7]])  # read as float64 by NumPy, not through float32
    assert x.dtype == np.float64 and x.item() == pytest.approx(float(np.array([0.1, 0.7]) @ model.weight.numpy()[:, 0]),
                                                               rel=1e-15)
    assert Dense(2, 1)(rng.standard_normal((3, 2))).dtype == np.float32
    for layer in (Dense(2, 2), BatchNorm(2), xdl.nn.Standardize(2)):  # integer features: in the layer's dtype
        assert layer(np.array([[1, 2], [3, 4]])).dtype == np.float32
    with pytest.raises(TypeError, match=r"Dropout\(0.5\): expected a floating input, got int64; convert it with "
                                        r"x.astype\(model.dtype\)"):
        Dropout(0.5)(np.array([[1, 2], [3, 4]]))
    with pytest.raises(TypeError, match=r"Dense\(2→2\): expected a Tensor input, got a tuple"):
        Dense(2, 2)((h, h))


def test_a_slice_of_a_sequential_is_a_sequential_of_the_same_layers(backend):
    """As PyTorch's: the layers shared, and the model's parameters left where they are."""
    model = three_layer_model()
    optimizer = xdl.optim.SGD(model, lr=0.1)
    buffer = model.parameters()[0]._flat[0]
    part = model[1:4]
    assert type(part) is Sequential and len(part) == 3 and all(a is b for a, b in zip(part.layers, model.layers[1:4]))
    assert type(model[-1]) is Dense and type(model[::2]) is Sequential
    assert [id(p) for p in part.parameters()] == [id(model[1].gamma), id(model[1].beta)]
    assert all(p._flat[0] is buffer for p in model.parameters())
    optimizer.step()  # still in place: nothing moved
    model.eval()
    x = np.ones((4, 4), dtype=np.float32)
    np.testing.assert_array_equal(model[3:](model[:3](x)).numpy(), model(x).numpy())


def test_a_module_that_skips_super_init_is_told_to_call_it():
    class NoSuper(xdl.nn.Module):
        def __init__(self):
            self.size = 2  # a plain attribute is fine, as in PyTorch
            self.fc = Dense(2, 2)

    message = r"NoSuper: call Module.__init__\(\) \(super\(\).__init__\(\)\) before assigning parameters or submodules"
    with pytest.raises(AttributeError, match=message):
        NoSuper()

    class NoSuperBuffer(xdl.nn.Module):
        def __init__(self):
            self.add_buffer("count", np.zeros(1))

    with pytest.raises(AttributeError, match=message.replace("NoSuper", "NoSuperBuffer")):
        NoSuperBuffer()


def test_a_modules_state_is_its_own_copy_of_the_values_given():
    values = np.ones(4, dtype=np.float32)

    class Own(xdl.nn.Module):
        def __init__(self):
            super().__init__()
            self.add_parameter("w", values, "weight")
            self.add_buffer("counts", values)

    module = Own()
    module.load_state_dict({"w": np.zeros(4), "counts": np.zeros(4)})
    assert values.tolist() == [1.0] * 4  # was zeroed through the shared memory


def test_a_sequential_layer_is_replaced_by_index_and_never_removed_out_of_step():
    model = three_layer_model()
    model[-1] = Dense(4, 7)  # the forward runs the new layer, the registry holds it
    assert model(np.ones((2, 4), dtype=np.float32)).shape == (2, 7)
    assert model.layers[6] is model._modules["6"]
    for remove in (lambda: delattr(model, "1"), lambda: model.__delitem__(1)):
        with pytest.raises(TypeError, match="Sequential: layer 1 cannot be removed"):
            remove()
    with pytest.raises(TypeError, match="Sequential: layer 6 cannot be removed"):  # was "no attribute '-1'"
        del model[-1]
    with pytest.raises(TypeError, match=r"Sequential: layers \[1:\] cannot be removed"):
        del model[1:]
    for missing in (7, -8):  # no such layer: an IndexError, as model[i] = layer's (-8 was "no attribute '-8'")
        with pytest.raises(IndexError, match=rf"Sequential: layer {missing} of 7 \(indices -7 to 6\)"):
            del model[missing]
    with pytest.raises(TypeError, match="Sequential: layer 1 must be an xdl.nn.Module, got NoneType"):
        model[1] = None
    assert len(model) == 7


def test_integer_and_tuple_inputs_of_built_in_models_compute_in_their_dtype():
    assert xdl.nn.Dense(2, 3)(((1.0, 2.0), (3.0, 4.0))).shape == (2, 3)  # a tuple of rows, as a list
    stacked = xdl.nn.stack([xdl.nn.mlp(2, [3], 2), xdl.nn.mlp(2, [3], 2)])
    assert stacked(np.array([[1, 2]])).dtype == np.float32  # was float64 from integer features


# -- found by comparing with PyTorch --------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_keeps_its_relative_precision_for_negative_inputs(backend, dtype):
    z = np.linspace(-60, 30, 9001).astype(dtype)
    exact = 1 / (1 + np.exp(-z.astype(np.longdouble)))
    for y in (xdl.sigmoid(xdl.tensor(backend.asarray(z))).numpy(),  # the function, the layer and the loss's
              Sigmoid()(xdl.tensor(backend.asarray(z))).numpy()):
        assert y.dtype == dtype and (y > 0).all()  # (1 + tanh(z/2))/2 was 0 from z = −20 in float32
        assert float(np.max(np.abs(y - exact) / exact)) < 4 * np.finfo(dtype).eps
    z = t64(backend, [-30.0, -20.0, 0.0, 20.0])
    BinaryCrossEntropy()(z, np.zeros(4)).backward()
    expected = 1 / (1 + np.exp(-np.array([-30.0, -20.0, 0.0, 20.0]))) / 4
    np.testing.assert_allclose(backend.to_numpy(z.grad), expected, rtol=1e-14)


def test_soft_label_rows_within_the_tolerance_get_their_costs_own_gradient(backend, rng):
    z = rng.standard_normal((6, 4))
    labels = rng.dirichlet(np.ones(4), size=6) * (1 + 5e-5)  # sums 1 + 5e-5: accepted as rounding
    result = xdl.gradcheck(lambda z: SoftmaxCrossEntropy()(z, labels), t64(backend, z))
    assert result.difference < 1e-7  # the gradient p − y was not the derivative of −Σ y log p for them
    normalized = labels / labels.sum(axis=1, keepdims=True)
    assert SoftmaxCrossEntropy()(t64(backend, z), labels).item() == pytest.approx(
        SoftmaxCrossEntropy()(t64(backend, z), normalized).item(), rel=1e-14)


def test_exact_one_hot_rows_are_prepared_as_class_indices_with_the_rows_cost_and_gradient(backend, rng):
    """Rows of 0s and a single 1 (float, int or bool; Keras's categorical labels) are prepared as their class
    indices, what the fused loss takes (one kernel each way on the GPU), with the cost and gradient of the rows,
    −Σⱼ yⱼ log pⱼ = −log p_label and p − y, to float64 rounding; soft rows, and rows within the tolerance of
    a distribution that are not exactly one-hot, keep their rows."""
    loss, numpy = SoftmaxCrossEntropy(), xdl.backend.get_backend("numpy")
    for case in range(40):
        m, classes = int(rng.integers(1, 30)), int(rng.integers(2, 9))
        index = rng.integers(0, classes, m)
        rows = np.eye(classes)[index].astype([np.float64, np.float32, np.int8, np.bool_][case % 4])
        given = backend.asarray(rows) if case % 3 == 0 else rows  # (the backend's own array, read there)
        labels = loss.prepare(given, (m, classes), backend, np.float64)
        assert labels.shape == (m,) and labels.dtype == np.int64
        np.testing.assert_array_equal(backend.to_numpy(labels), index)
        z = rng.standard_normal((m, classes)) * 10.0 ** rng.uniform(-1, 2)
        fused, unfused = t64(backend, z), t64(backend, z)
        cost = loss.compute(fused, labels)
        want = xdl.softmax_cross_entropy(unfused, backend.asarray(rows.astype(np.float64)))  # the rows' own path
        cost.backward()
        want.backward()
        assert cost.item() == pytest.approx(want.item(), rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(backend.to_numpy(fused.grad), backend.to_numpy(unfused.grad), rtol=1e-12,
                                   atol=1e-15)
        near = np.eye(classes)[index] * (1 + 5e-5)  # within the tolerance, no one-hot row: kept, made exact
        soft = rng.dirichlet(np.ones(classes), size=m)
        for kept in (near, soft):
            prepared = loss.prepare(kept, (m, classes), numpy, np.float64)
            assert prepared.shape == (m, classes)
            np.testing.assert_allclose(prepared, kept / kept.sum(axis=1, keepdims=True), rtol=1e-15)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_mlp_draws_every_layer_with_the_init_asked_for(activation):
    model = xdl.nn.mlp(4, [5], 3, activation=activation, init="zeros")  # the output layer's was xavier's for tanh
    dense = [layer for layer in model if isinstance(layer, Dense)]
    assert len(dense) == 2 and all(layer.config["init"] == "zeros" and not layer.weight.numpy().any()
                                   for layer in dense)


def test_every_layer_is_rebuildable_and_exported():
    """ARCHITECTURE.md's layer recipe: a layer class of `xdl/nn/layers.py` is in `LAYERS` (so a
    saved model holding it is rebuilt) and in `xdl.nn`."""
    import inspect

    from xdl.nn import layers

    classes = {name for name, cls in inspect.getmembers(layers, inspect.isclass)
               if issubclass(cls, xdl.nn.Module) and cls.__module__ == layers.__name__}
    assert classes and classes <= set(xdl.nn.LAYERS) and classes <= set(xdl.nn.__all__)


def test_load_state_dict_returns_the_keys_it_left_out_as_pytorch_does():
    plain, normed = xdl.nn.mlp(4, [8], 2), xdl.nn.mlp(4, [8], 2, batch_norm=True)
    missing, unexpected = plain.load_state_dict(normed.state_dict(), strict=False)
    assert missing and set(missing) == set(plain.state_dict()) - set(normed.state_dict())
    assert set(unexpected) == set(normed.state_dict()) - set(plain.state_dict())
    result = plain.load_state_dict(plain.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    with pytest.raises(ValueError, match=r"buffer '1.running_mean': saved shape \(3,\)"):
        normed.load_state_dict({**normed.state_dict(), "1.running_mean": np.zeros(3)})


@pytest.mark.parametrize("call", ["predict", "evaluate", "training=False"])
def test_predict_from_several_threads_at_once_is_each_alone(call):
    """Interleaved mode switches put back each other's modes: some batches ran in training mode,
    dropout on and batch norm's running statistics moved; each call's mode is its thread's now
    (Trainer.evaluate and Keras's model(x, training=False) switched the shared flags still)."""
    import threading

    xdl.seed(0)
    model = xdl.nn.mlp(4, [16], 3, batch_norm=True, dropout=0.5)  # left in training mode, as after a fit
    X = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    y = np.arange(50) % 3
    trainer = xdl.train.Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.SGD(model), progress=False)
    run = {"predict": lambda: model.predict_outputs(X, batch_size=10),
           "evaluate": lambda: trainer.evaluate(X, y, batch_size=10)["cost"],
           "training=False": lambda: model(X, training=False).numpy()}[call]
    expected, stats = run(), model.state_dict()
    wrong = []

    def predict():
        for _ in range(50):
            if not np.array_equal(run(), expected):
                wrong.append(1)

    import sys

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often: mode switches interleave at once
    try:
        threads = [threading.Thread(target=predict) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not wrong and model.training
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, stats[name])


def test_a_call_in_training_mode_leaves_the_models_flags_as_they_are():
    xdl.seed(0)
    model = xdl.nn.mlp(4, [8], 3, batch_norm=True, dropout=0.5).eval()
    X = np.ones((6, 4), np.float32)
    model(X, training=True)  # batch statistics, dropout: in this call only
    assert not any(m.training for _, m in model.named_modules())
    with xdl.nn.module.mode_here(True):
        assert model.training and model[1].training
    assert not model.training


# -- a model of one's own, as a PyTorch user writes it ------------------------------------------
class _SigmoidHead(xdl.nn.Module):
    def __init__(self):
        super().__init__()
        self.dense, self.out = Dense(2, 1), Sigmoid()

    def forward(self, x):
        return self.out(self.dense(x))


def test_a_model_of_ones_own_ending_in_a_sigmoid_predicts_its_probabilities_once():
    model = _SigmoidHead()
    model.dense.weight.data[...] = [[5.0], [0.0]]
    X = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    p = model(X).numpy().ravel()
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], p, rtol=1e-6)  # not σ(σ(z))
    np.testing.assert_array_equal(model.predict(X), (p > 0.5).astype(int))
    trainer = xdl.train.Trainer(model, BinaryCrossEntropy(), xdl.optim.SGD(model), progress=False)
    with pytest.raises(ValueError, match="its forward ends in a sigmoid, so its outputs are probabilities"):
        trainer.fit(X, (X[:, 0] > 0).astype(int))  # read from its forward pass, before any step

    class SigmoidInside(xdl.nn.Module):  # a sigmoid registered last, used in the middle: its outputs are logits
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.act = Dense(2, 8), Dense(8, 3), Sigmoid()

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    inside = SigmoidInside()
    np.testing.assert_allclose(inside.predict_proba(X).sum(axis=1), 1, rtol=1e-6)
    xdl.train.Trainer(inside, SoftmaxCrossEntropy(), xdl.optim.SGD(inside), epochs=1, progress=False).fit(
        X, np.arange(200) % 3)


def test_modules_in_a_list_are_said_to_be_unregistered():
    class Blocks(xdl.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = [Dense(3, 3), Dense(3, 3)]

    with pytest.warns(UserWarning, match="Blocks.blocks: a list of modules or parameters is not registered"):
        Blocks()


def test_predict_names_a_forward_that_returns_more_than_one_tensor():
    class Pair(xdl.nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = Dense(3, 2)

        def forward(self, x):
            return self.dense(x), x

    with pytest.raises(TypeError, match="forward returned a tuple; predict needs one xdl Tensor"):
        Pair().predict(np.ones((2, 3), np.float32))


def test_predict_names_a_forward_that_does_not_keep_the_batch_s_rows():
    """predict writes each batch's outputs into its result at the batch's rows: a forward returning
    fewer rows (a sum over the batch, a reshape(-1, …) that merges examples) left the rest of the
    result as np.empty made it, returned as if predicted (the batches concatenated had shown it:
    3 rows for 5 examples)."""
    class Pooled(xdl.nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = Dense(3, 2)

        def forward(self, x):
            return self.dense(x).sum(axis=0, keepdims=True)

    for batch_size in (2, 5):
        with pytest.raises(ValueError, match=r"predict: the model's forward returned outputs of shape \(1, 2\) for a "
                                             r"batch of \d examples?; predict needs a row of outputs per example"):
            Pooled().predict_outputs(np.ones((5, 3), np.float32), batch_size=batch_size)


def test_modules_are_named_as_pytorch_names_them_and_nested_reprs_indent():
    model = Sequential(Sequential(Dense(2, 2), ReLU()), Dense(2, 1))
    assert [name for name, _ in model.named_modules()] == ["", "0", "0.0", "0.1", "1"]
    assert dict(model.named_modules())["0.0"] is model[0][0]
    assert [name for name, _ in model.named_parameters()] == ["0.0.weight", "0.0.bias", "1.weight", "1.bias"]
    assert "\n    (0): Dense(in_features=2" in repr(model)


def test_a_model_holding_its_own_configuration_object_as_config_prints_and_has_its_settings_read():
    from xdl.train.captured import host_settings

    class Settings:  # a configuration object (Hugging Face's models keep theirs as self.config)
        hidden = 4

    class Net(xdl.nn.Module):
        def __init__(self, config):
            super().__init__()
            self.config = config
            self.fc = Dense(3, config.hidden if config is not None else 4)

        def forward(self, x):
            return self.fc(x)

    for config in (Settings(), None):
        model = Net(config)
        assert repr(model).startswith("Net(\n  (fc): Dense(in_features=3, out_features=4")
        assert model.current_config() == {}
        assert host_settings(model)[0][0] == ("", "Net", {}, host_settings(model)[0][0][3], ())


@pytest.mark.parametrize("index, error", [(slice(2, 3), TypeError), (True, TypeError), (3, IndexError)])
def test_a_layer_is_replaced_by_its_index_only(index, error):
    model = xdl.nn.mlp(3, [4], 2)
    names = [name for name, _ in model.named_parameters()]
    with pytest.raises(error, match="Sequential: "):
        model[index] = Dense(4, 2)
    assert [name for name, _ in model.named_parameters()] == names and len(model) == 3


def test_a_layer_asked_by_a_wrong_index_is_told_the_layers_the_model_has():
    """model[5] of 3 layers said list's bare "list index out of range", model["0"] (PyTorch's state_dict name
    of it) "list indices must be integers or slices, not str": neither named the model nor its layers, where
    model[5] = layer and del model[5] do. Every index in and out of range, of models of 1 to 4 layers (a
    stacked one too), and keys of other types; iterating over the layers still ends at the last."""
    stacked = xdl.nn.stack([xdl.nn.mlp(3, [4], 2), xdl.nn.mlp(3, [4], 2)])
    for model in [Sequential(*[ReLU() for _ in range(n)]) for n in range(1, 5)] + [stacked]:
        n = len(model)
        for index in range(-n - 3, n + 3):
            if -n <= index < n:
                assert model[index] is model.layers[index] is model[np.int64(index)]
            else:
                with pytest.raises(IndexError, match=rf"^Sequential: layer {index} of {n} \(indices {-n} to "
                                                     rf"{n - 1}\)$"):
                    model[index]
        for key in ("0", 1.0, None, True, (0,)):
            with pytest.raises(TypeError, match=r"^Sequential: model\[i\] takes a layer's index i \(an int\) or a "
                                                rf"slice, got {re.escape(repr(key))}$"):
                model[key]
        assert list(model) == model.layers


def test_load_state_dict_names_a_value_that_is_no_array_or_does_not_fit_the_dtype():
    model = xdl.nn.mlp(3, [4], 2)
    state, before = model.state_dict(), model.state_dict()
    with pytest.raises(TypeError, match="'0.weight' holds 'abc'; a state holds arrays of real numbers"):
        model.load_state_dict({**state, "0.weight": "abc"})
    with pytest.raises(ValueError, match=r"'0.weight' holds values in \[1e\+39, 1e\+39\], beyond what the model's "
                                         "float32 holds"):
        model.load_state_dict({**state, "0.weight": np.full((3, 4), 1e39)})
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(array, before[name])


def test_build_draws_a_scaled_normal_again_and_refuses_an_initializer_it_cannot():
    model = Sequential(Dense(3, 4, init=xdl.init.normal(0.5)), ReLU())
    assert repr(model[0]) == "Dense(in_features=3, out_features=4, init='normal(0.5)', bias=True)"
    xdl.seed(0)
    rebuilt = xdl.nn.build(xdl.nn.describe(model))
    assert 0.3 < float(rebuilt[0].weight.numpy().std()) < 0.7  # drawn, not zeros

    def mine(shape):
        return np.ones(shape)

    with pytest.raises(ValueError, match="init 'mine', an initializer of one's own kept by name only"):
        xdl.nn.build(xdl.nn.describe(Sequential(Dense(3, 4, init=mine))))
    assert xdl.nn.build(xdl.nn.describe(Sequential(Dense(3, 4, init=mine))), initialize=False)[0].weight.numpy().sum() == 0


def test_build_refuses_an_initializer_of_ones_own_named_as_one_of_xdls():
    """An own ``def xavier(shape)`` (a uniform Glorot, say) was recorded as "xavier", and `build`
    drew xdl's N(0, 1/n_in) in its place without a word: it is recorded by its qualified name."""
    def xavier(shape):
        limit = np.sqrt(6 / sum(shape))
        return xdl.backend.host_rng().uniform(-limit, limit, shape)

    layer = Dense(3, 4, init=xavier)
    assert layer.config["init"] == f"{__name__}.test_build_refuses_an_initializer_of_ones_own_named_as_one_of_xdls." \
                                   "<locals>.xavier"
    with pytest.raises(ValueError, match="an initializer of one's own kept by name only"):
        xdl.nn.build(xdl.nn.describe(Sequential(layer)))
    # xdl's own, given as callables, keep their names and are drawn again
    for init, name in ((xdl.init.xavier, "xavier"), (xdl.init.normal(0.5), "normal(0.5)"), ("glorot", "glorot")):
        assert xdl.nn.build(xdl.nn.describe(Sequential(Dense(3, 4, init=init))))[0].config["init"] == name


def test_the_normal_factory_given_as_init_is_refused_saying_what_to_give():
    """``init=xdl.init.normal`` (the factory, as ``init=xdl.init.he``) took the weight's shape for
    its scale: "normal: scale must be a finite number ≥ 0, got (3, 2)"."""
    with pytest.raises(TypeError, match=r"xdl.init.normal makes an initializer, it is none: give normal\(scale\)"):
        Dense(3, 2, init=xdl.init.normal)


def test_a_loss_shows_its_public_settings_not_its_private_ones():
    """``Name(setting=value, …)`` of its public attributes: xdl's losses have none; a loss of one's own shows its
    settings and not its ``_`` ones (a mutant that showed only the private ones passed every test)."""
    class Huber(MeanSquaredError):
        def __init__(self, delta):
            self.delta, self._cache = delta, {}

    assert repr(SoftmaxCrossEntropy()) == "SoftmaxCrossEntropy()"
    assert repr(Huber(5.0)) == "Huber(delta=5.0)"


@pytest.mark.parametrize("loss", [SoftmaxCrossEntropy(), BinaryCrossEntropy(), MeanSquaredError()])
def test_a_loss_refuses_targets_that_require_grad(loss):
    teacher = xdl.tensor(np.full((4, 2), 0.5), requires_grad=True)  # a distillation's soft targets
    with pytest.raises(ValueError, match=r"is a tensor that requires grad.*\.detach\(\) for fixed targets"):
        loss(xdl.tensor(np.zeros((4, 2))), teacher)


def test_calling_a_model_on_float64_standardizes_as_predict_does_and_stack_names_a_layer_of_ones_own():
    from xdl.data import Standardizer
    from xdl.nn import StackError, stack

    xdl.seed(0)
    X = np.random.default_rng(0).standard_normal((1000, 1)) * 0.01 + 1e6  # its spread is lost in float32
    model = xdl.nn.mlp(1, [8], 2, standardize=Standardizer().fit(X).layer()).eval()
    np.testing.assert_array_equal(model(X[:3]).numpy(), model.predict_outputs(X[:3]))

    class Twice(xdl.nn.Module):
        def forward(self, x):
            return x * 2

    with pytest.raises(StackError, match="models\\[0\\] has a Twice layer, which cannot be stacked"):
        stack([Sequential(Dense(2, 3), Twice()) for _ in range(2)])
    assert callable(xdl.hostmemory.keep_freed_memory)  # (README's spelling, after import xdl alone)


@pytest.mark.parametrize("loss", [SoftmaxCrossEntropy(), BinaryCrossEntropy(), MeanSquaredError()])
def test_a_loss_given_the_targets_first_names_its_argument_order(loss):
    """loss(y_true, y_pred), Keras's order, said "'numpy.ndarray' object has no attribute 'backend'"."""
    targets = np.zeros((2, 3))
    for given in (targets, targets.tolist()):
        with pytest.raises(TypeError, match=r"outputs must be an xdl Tensor, .*PyTorch's order .*got (ndarray|list)$"):
            loss(given, xdl.tensor(targets))


def test_a_drop_rate_nearer_1_than_the_masks_resolve_is_refused():
    """Keyed masks keep a unit when its 16-bit draw reaches ⌈rate·2¹⁶⌉: at rate 0.9999 E[y] was 0.914·x,
    and from 1 − 2⁻¹⁶ every unit dropped. Rates up to 1 − 2⁻⁹ keep E[y] = x within 1%."""
    from xdl.ops.random import MAX_DROP_RATE

    from xdl.ops.random import LANE_BITS

    for rate in np.linspace(0, MAX_DROP_RATE, 1001):  # the rule's P(keep) against 1 − rate, up to the largest
        kept = (2**LANE_BITS - np.ceil(rate * 2**LANE_BITS)) / 2**LANE_BITS
        assert abs(kept / (1 - rate) - 1) < 0.01
    d = xdl.nn.Dropout(MAX_DROP_RATE)  # the largest is taken, and keeps about 1 in 512
    d.set_random_key(0, 0)
    assert abs(d(xdl.tensor(np.ones((2000, 2000), np.float32))).numpy().mean() - 1) < 0.05
    for make in (lambda: xdl.nn.Dropout(0.9999), lambda: xdl.nn.mlp(4, [3], 2, dropout=0.9999),
                 lambda: xdl.config.TrainConfig(dropout=0.9999),
                 lambda: xdl.functions.dropout(xdl.tensor(np.ones(4)), 0.9999)):
        with pytest.raises(ValueError, match=r"must be .*\[0, 0.998046875\]"):
            make()
    layer = xdl.nn.Dropout(0.5)
    with pytest.raises(ValueError, match=r"Dropout: rate must be a number in \[0, 0.998046875\]"):
        layer.rate = 0.9999  # set by hand: checked where it is set
    assert layer.rate == 0.5


@pytest.mark.parametrize("setting,value,message", [
    ("momentum", 1.5, r"BatchNorm: momentum must be a number in \[0, 1\), got 1.5"),
    ("momentum", 1.0, r"BatchNorm: momentum must be a number in \[0, 1\), got 1.0"),
    ("eps", -1.0, r"BatchNorm: eps must be a finite number > 0 in float32, got -1.0"),
    ("eps", float("nan"), r"BatchNorm: eps must be a finite number > 0 in float32, got nan"),
])
def test_batchnorm_settings_set_by_hand_are_checked_where_set(setting, value, message):
    """running = momentum·running + (1 − momentum)·batch: a momentum set by hand after construction
    (PyTorch's ``bn.momentum = …``, which `Module.current_config` reads back) was used unchecked — 1.5
    extrapolated the statistics, 1.0 froze them and saved a file xdl.load could not rebuild; an ε of
    −1 was called "0 in float32", and NaN made every output NaN. Checked where it is set (it was at
    each forward that read it), the layer left as it was."""
    bn = BatchNorm(3)
    with pytest.raises(ValueError, match=message):
        setattr(bn, setting, value)
    assert (bn.momentum, bn.eps) == (0.9, 1e-5)
    bn(xdl.tensor(np.arange(12.0, dtype=np.float32).reshape(4, 3)))  # (trains as before)


def _stacked_layer(kind):
    """A stack of three models (Dense, BatchNorm, ReLU, Dropout, Dense) and its layer of ``kind``."""
    models = []
    for seed in (1, 2, 3):
        xdl.seed(seed)
        models.append(xdl.nn.mlp(4, [5], 2, batch_norm=True, dropout=0.5))
    stacked = xdl.nn.stacked.stack(models)
    return stacked, next(layer for layer in stacked.layers if type(layer).__name__ == kind)


_BAD_SETTINGS = [  # (layer, setting, value refused, words of the error)
    (lambda: Dropout(0.5), "rate", 1.0, r"Dropout: rate must be a number in \[0, 0.998046875\] .*got 1.0"),
    (lambda: Dropout(0.5), "rate", -0.1, r"Dropout: rate must be .*got -0.1"),
    (lambda: Dropout(0.5), "rate", "0.5", r"Dropout: rate must be .*got '0.5'"),
    (lambda: Dropout(0.5), "rate", float("nan"), r"Dropout: rate must be .*got nan"),
    (lambda: Dropout(0.5), "rate", None, r"Dropout: rate must be .*got None"),
    (lambda: Dropout(0.5), "random_key", (1, 2), r"Dropout: random_key: key must be \(seed, stream, step\)"),
    (lambda: Dropout(0.5), "random_key", (1.0, 2, 3), r"Dropout: random_key: key must be"),
    (lambda: Dropout(0.5), "random_key", "key", r"Dropout: random_key: key must be"),
    (lambda: BatchNorm(3), "momentum", -0.1, r"BatchNorm: momentum must be a number in \[0, 1\), got -0.1"),
    (lambda: BatchNorm(3), "momentum", "0.9", r"BatchNorm: momentum must be .*got '0.9'"),
    (lambda: BatchNorm(3), "momentum", float("nan"), r"BatchNorm: momentum must be .*got nan"),
    (lambda: BatchNorm(3), "momentum", None, r"BatchNorm: momentum must be .*got None"),
    (lambda: BatchNorm(3), "eps", 0, r"BatchNorm: eps must be a finite number > 0 in float32, got 0"),
    (lambda: BatchNorm(3), "eps", float("inf"), r"BatchNorm: eps must be .*got inf"),
    (lambda: BatchNorm(3), "eps", 1e-50, r"BatchNorm: eps must be a finite number > 0 in float32, got 1e-50"),
    (lambda: BatchNorm(3, dtype=np.float64), "eps", 1e-400, r"BatchNorm: eps must be .* in float64, got 0.0"),
    (lambda: _stacked_layer("StackedBatchNorm")[1], "momentum", 1.5,
     r"StackedBatchNorm: momentum must be a number in \[0, 1\), got 1.5"),
    (lambda: _stacked_layer("StackedBatchNorm")[1], "momentum", [0.5, 1.0, 0.9],
     r"StackedBatchNorm: momentum must be .* one per model \(3\) .*: \[0.5, 1.0, 0.9\]"),
    (lambda: _stacked_layer("StackedBatchNorm")[1], "momentum", [0.5, 0.9],
     r"StackedBatchNorm: momentum must be .*of shape \(2,\)"),
    (lambda: _stacked_layer("StackedBatchNorm")[1], "eps", -1.0,
     r"StackedBatchNorm: eps must be a finite number > 0 in float32, got -1.0"),
    (lambda: _stacked_layer("StackedDropout")[1], "rates", [0.5, 1.0, 0.1],
     r"StackedDropout: rates\[1\] must be a number in \[0, 0.998046875\]"),
    (lambda: _stacked_layer("StackedDropout")[1], "rates", [0.5, 0.1], r"StackedDropout: rates must be 3 numbers"),
    (lambda: _stacked_layer("StackedDropout")[1], "rates", 0.5, r"StackedDropout: rates must be 3 numbers"),
    (lambda: _stacked_layer("StackedDropout")[1], "random_key", (1, 0, 3),
     r"StackedDropout: random_key: key must be \(seeds \(one integer per model\), stream, step\)"),
    (lambda: _stacked_layer("StackedDropout")[1], "random_key", ((1, 2), 0, 3),
     r"StackedDropout: random_key must hold 3 seeds \(one per model\), got 2"),
]


@pytest.mark.parametrize("make,setting,value,message", _BAD_SETTINGS)
def test_a_setting_a_forward_reads_is_refused_where_it_is_set(make, setting, value, message):
    """A layer's setting that its forward reads (a dropout's rate and key, a batch norm's momentum and ε, a
    stack's per-model ones) set by hand is refused at the assignment, naming it, the layer left as it was: it
    was checked at each forward that read it (a stack's not at all: a momentum of 1.5 extrapolated the
    statistics of every model, a rate of 1 made NaN), ~55 Python calls of a default model's training step."""
    layer = make()
    before = copy.deepcopy(layer.__dict__.get(setting))
    with pytest.raises(ValueError, match=message):
        setattr(layer, setting, value)
    after = layer.__dict__.get(setting)
    assert (after == before).all() if isinstance(after, np.ndarray) else after == before


@pytest.mark.parametrize("value", ["False", 0, None, np.array([False])])
def test_a_training_flag_set_by_hand_is_refused_where_it_is_set_unless_true_or_false(value):
    """``layer.training = …`` (PyTorch's way) is checked at the assignment, the flag left as it was: Dropout's
    forward, which checked it (`dropout`'s ``training``), reads it unchecked now — "False" dropped units in
    evaluation, without a word. A NumPy bool is taken, as a bool."""
    drop = Dropout(0.5)
    with pytest.raises(ValueError, match=r"^Dropout.training must be True or False, got "):
        drop.training = value
    assert drop.__dict__["training"] is True
    drop.training = np.bool_(False)
    assert drop.__dict__["training"] is False
    x = np.ones((4, 8))
    np.testing.assert_array_equal(drop(x).numpy(), x)


def test_settings_set_by_hand_are_kept_as_the_forward_reads_them():
    """Good values set by hand: numbers as floats, a stack's K values as one float where they are equal, else a
    value per column (its forward's form), the stack's rates read-only (written in place they went unseen)."""
    bn, drop = BatchNorm(3), Dropout(0.5)
    bn.momentum, bn.eps, drop.rate, drop.random_key = np.float32(0.5), 1, np.float64(0.25), [1, 2, 3]
    assert (type(bn.momentum), type(bn.eps), type(drop.rate), drop.random_key) == (float, float, float, (1, 2, 3))
    _, sbn = _stacked_layer("StackedBatchNorm")
    sbn.momentum = [0.5, 0.5, 0.5]
    assert sbn.momentum == 0.5
    sbn.momentum = np.array([0.5, 0.9, 0.0])
    np.testing.assert_array_equal(sbn.backend.to_numpy(sbn.momentum), np.repeat([0.5, 0.9, 0.0], 5))
    _, sdrop = _stacked_layer("StackedDropout")
    sdrop.rates = (0.1, 0, 0.2)
    with pytest.raises(ValueError, match="read-only"):
        sdrop.rates[0] = 1.0
    np.testing.assert_array_equal(sdrop.rates, [0.1, 0.0, 0.2])
    seeds = [4, 5, 6]
    sdrop.random_key = (seeds, 0, 7)
    seeds[0] = 9  # (a list of one's own, changed after: not the key's)
    assert sdrop.random_key == ((4, 5, 6), 0, 7)


def test_a_stacked_dropouts_rates_set_by_hand_are_the_ones_its_unkeyed_masks_draw_with():
    """Rates set after an unkeyed training pass (no Trainer's key: the backend's generator): the masks were
    drawn with the columns made from the rates before, made once per backend and dtype (0.5 kept where 0.9
    and 0.1 were set)."""
    stacked, drop = _stacked_layer("StackedDropout")
    x = xdl.tensor(np.ones((4000, 3, 5), np.float32))
    drop(x)
    drop.rates = np.array([0.9, 0.1, 0.5])
    kept = (drop(x).numpy() != 0).mean(axis=(0, 2))
    np.testing.assert_allclose(kept, [0.1, 0.9, 0.5], atol=0.02)


@pytest.mark.parametrize("kind,setting,value", [("Dropout", "rate", 1.0), ("BatchNorm", "momentum", 1.5),
                                                ("BatchNorm", "eps", -1.0), ("StackedDropout", "rates", [1.0] * 3),
                                                ("StackedBatchNorm", "momentum", 1.5)])
def test_a_pickle_of_an_older_xdl_loads_and_its_bad_settings_are_refused_there(kind, setting, value):
    """A pickle holds each setting in the layer's __dict__ as older xdl kept it (which checked it at each forward
    instead): it loads as it was, results bit for bit; one holding a bad value set by hand (never run) is refused
    as it loads, naming the setting — its forward would read it unchecked now."""
    if kind.startswith("Stacked"):
        model, layer = _stacked_layer(kind)
    else:
        xdl.seed(0)
        model = xdl.nn.mlp(4, [5], 2, batch_norm=True, dropout=0.5)
        layer = next(m for m in model.layers if type(m).__name__ == kind)
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    model.set_random_key(([1, 2, 3] if kind.startswith("Stacked") else 1), 5)
    copied = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(copied(x).numpy(), model(x).numpy())
    layer.__dict__[setting] = value  # (as an older xdl's assignment left it: unchecked)
    with pytest.raises(ValueError, match=rf"{kind}: {setting}"):
        pickle.loads(pickle.dumps(model))


# -- found by a PyTorch user porting a training loop ------------------------------------------------
class _Net(xdl.nn.Module):
    def __init__(self, head=None):
        super().__init__()
        self.body = Sequential(Dense(2, 4), ReLU())
        self.head = head or Dense(4, 1)

    def forward(self, x):
        return self.head(self.body(x))


@pytest.mark.parametrize("last, loss", [(Sigmoid, BinaryCrossEntropy), (Softmax, SoftmaxCrossEntropy)])
def test_a_loss_of_logits_given_probabilities_in_a_loop_of_ones_own_is_refused(last, loss):
    """nn.Sigmoid + nn.BCELoss, ported as Sigmoid + BinaryCrossEntropy: the cost of σ(σ(z)) is at least
    log(1 + e⁻¹) for every positive label, so the loop trained worse and nothing said so (the Trainer
    refused the model; a hand-written loop calls the loss alone)."""
    model = _Net(Sequential(Dense(4, 2 if last is Softmax else 1), last()))
    X, y = np.ones((4, 2), np.float32), np.array([0, 1, 1, 0])
    with pytest.raises(ValueError, match=rf"^{loss.__name__}: the outputs come from a {last.__name__.lower()}, so "
                                         rf"they are probabilities, and {loss.__name__} takes logits"):
        loss()(model(X), y)
    z = model.head[0](model.body(X))  # its logits: taken
    assert np.isfinite(loss()(z, y).item()) and np.isfinite(MeanSquaredError()(model(X), np.ones((4, z.shape[1]))).item())


class _SqueezedSigmoid(xdl.nn.Module):
    """PyTorch's binary head, ported: ``torch.sigmoid(self.fc(x)).squeeze(1)`` (for BCELoss)."""

    def __init__(self, tail):
        super().__init__()
        self.fc, self.tail = Dense(2, 1), tail

    def forward(self, x):
        return self.tail(xdl.sigmoid(self.fc(x)))


@pytest.mark.parametrize("tail", [lambda p: p.reshape(-1), lambda p: p.squeeze(1), lambda p: p[:, 0],
                                  lambda p: p.astype(np.float64), lambda p: xdl.clamp(p, 1e-7, 1 - 1e-7)],
                         ids=["reshape", "squeeze", "getitem", "astype", "clamp"])
def test_probabilities_reshaped_or_clamped_are_still_probabilities(tail):
    """y = sigmoid(z).reshape(-1) holds σ(z): an op that moves or bounds values keeps the ``made_by`` of
    its input. It said "made by a reshape", so BinaryCrossEntropy trained on σ(σ(z)) (cost ≥ log(1 + e⁻¹)
    per positive label), predict thresholded probabilities at 0 (all 1s) and predict_proba gave σ(σ(z))."""
    model = _SqueezedSigmoid(tail)
    model.fc.weight.data[...] = [[5.0], [0.0]]
    X = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    p = model(X).numpy().ravel()
    with pytest.raises(ValueError, match="^BinaryCrossEntropy: the outputs come from a sigmoid, so they are "
                                         "probabilities"):
        BinaryCrossEntropy()(model(X), (X[:, 0] > 0).astype(int))
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], p, rtol=1e-6)  # not σ(σ(z))
    np.testing.assert_array_equal(model.predict(X), (p > 0.5).astype(int))
    with pytest.raises(ValueError, match="its forward ends in a sigmoid, so its outputs are probabilities"):
        xdl.train.Trainer(model, BinaryCrossEntropy(), xdl.optim.SGD(model), progress=False).fit(X, X[:, 0] > 0)
    assert xdl.nn.module.ends_in_probability(xdl.sigmoid(xdl.tensor([[1.0]])).reshape(-1) * 2) is False  # a new op


def test_a_model_of_ones_own_prints_the_layers_it_holds():
    """print(model) said ``_Net()``: none of its layers, which PyTorch's print lists."""
    text = repr(_Net())
    assert text.startswith("_Net(\n  (body): Sequential(\n    (0): Dense(in_features=2, out_features=4")
    assert text.endswith("  )\n  (head): Dense(in_features=4, out_features=1, init='he', bias=True)\n)")
    assert repr(Dense(2, 3)) == "Dense(in_features=2, out_features=3, init='he', bias=True)"  # a layer: one line


def test_a_weight_is_initialized_by_item_assignment_under_no_grad(backend):
    """``with torch.no_grad(): layer.weight[...] = w`` was "'Parameter' object does not support item
    assignment"; it writes the parameter's place in the flat buffer, which the optimizer updates."""
    model = _Net().to(backend)
    optimizer = xdl.optim.SGD(model, lr=0.0)
    w = np.arange(8, dtype=np.float64).reshape(2, 4)
    with xdl.no_grad():
        model.body[0].weight[...] = w  # a NumPy array, cast to the weight's dtype
        model.body[0].bias[1:] = 0.5
        model.head.weight[:, 0] = xdl.tensor(backend.asarray(np.ones(4, np.float32)))
    optimizer.zero_grad()
    optimizer.step()  # (the optimizer's buffers hold them: it checks its parameters are where it placed them)
    np.testing.assert_array_equal(model.body[0].weight.numpy(), w)
    np.testing.assert_array_equal(model.body[0].bias.numpy(), [0, 0.5, 0.5, 0.5])
    np.testing.assert_array_equal(model.head.weight.numpy().ravel(), np.ones(4))
    with pytest.raises(RuntimeError, match=r"only under `with xdl.no_grad\(\):` and on a leaf .*gradients are recorded"):
        model.head.weight[0, 0] = 1.0
    doubled = model.head.weight * 2  # recorded: its backward may read what it saved
    with xdl.no_grad(), pytest.raises(RuntimeError, match=r"a result of an operation \(Multiply\)"):
        doubled[0, 0] = 0.0
    assert model.head.weight.numpy()[0, 0] == 1.0 and doubled.numpy()[0, 0] == 2.0


def test_pytorch_names_that_xdl_spells_otherwise_say_its_spelling():
    model, t = _Net(), xdl.tensor([1.0, 2.0])
    for owner, name, spelling in [(model, "modules", "named_modules()"), (model, "double", "astype('float64')"),
                                  (model, "register_buffer", "add_buffer(name, values)"),
                                  (t, "numel", "the attribute size"), (t, "float", "astype(np.float32)"),
                                  (t, "zero_", "an assignment under no_grad (with xdl.no_grad(): t[...] = values)")]:
        with pytest.raises(AttributeError, match=rf"no attribute '{name}'; for PyTorch's {name}\(\), use "
                                                 rf"{re.escape(spelling)}"):
            getattr(owner, name)
    opt = xdl.optim.Adam(model)
    for owner, name, spelling in [(t, "device", "the attribute backend"), (opt, "state", "state_dict()['state']")]:
        with pytest.raises(AttributeError, match=rf"no attribute '{name}'; for PyTorch's {name}, use "
                                                 rf"{re.escape(spelling)}"):  # read, not called: no "()"
            getattr(owner, name)
    for owner, name in [(t, "permute"), (model, "get_submodule"), (model, "get_parameter"), (opt, "get_last_lr"),
                        (model, "register_forward_hook")]:
        with pytest.raises(AttributeError, match=rf"for PyTorch's {name}\(\), use "):
            getattr(owner, name)
    # the ways the hints name work as written
    assert xdl.tensor(np.zeros((2, 3, 4))).transpose(2, 0, 1).shape == (4, 2, 3)
    name, layer = next((n, m) for n, m in model.named_modules() if n)
    assert dict(model.named_modules())[name] is layer
    pname, p = next(iter(model.named_parameters()))
    assert dict(model.named_parameters())[pname] is p
    with pytest.raises(AttributeError, match=r"^'_Net' object has no attribute 'nothing'$"):
        model.nothing
    with pytest.raises(AttributeError, match=r"^'Adam' object has no attribute 'nothing'$"):
        opt.nothing
    t.data = [1.0]  # a property's own error is not hidden behind "no attribute 'shape'"
    with pytest.raises(AttributeError, match="'list' object has no attribute 'shape'"):
        t.shape


def test_pytorch_module_names_that_xdl_spells_otherwise_say_its_spelling():
    """``nn.Linear``, ``torch.manual_seed``, ``optim.lr_scheduler`` met a bare "module 'xdl.nn' has no
    attribute 'Linear'": each name of the tables now says the way here, and every way named works."""
    import xdl.losses
    import xdl.nn
    import xdl.optim

    tables = [(xdl, "torch", xdl.PYTORCH_NAMES), (xdl.nn, "nn", xdl.nn.PYTORCH_NAMES),
              (xdl.losses, "nn", xdl.losses.PYTORCH_LOSSES), (xdl.optim, "optim", xdl.optim.PYTORCH_NAMES),
              # (torch.nn.utils.clip_grad_norm_, sought beside the optimizers, where clip_grad_norm is: said as
              # nn.utils', not as an optim.clip_grad_norm_ that PyTorch has not)
              (xdl.optim, "nn.utils", xdl.optim.PYTORCH_NN_UTILS_NAMES)]
    for module, torch_module, table in tables:
        for name, way in table.items():
            with pytest.raises(AttributeError, match=rf"^module '{module.__name__}' has no attribute '{name}'; for "
                                                     rf"PyTorch's {torch_module}.{name}, use {re.escape(way)}$"):
                getattr(module, name)
        with pytest.raises(AttributeError, match=rf"^module '{module.__name__}' has no attribute 'nothing'$"):
            module.nothing
        assert not hasattr(module, "nothing") and getattr(module, "nothing", None) is None
    # the ways named work as written
    assert isinstance(xdl.nn.Dense(3, 2), xdl.nn.Module) and xdl.nn.Dense(3, 2).weight.shape == (3, 2)
    assert xdl.nn.BatchNorm(4).features == 4 and len(xdl.nn.Sequential(xdl.nn.ReLU(), xdl.nn.Tanh())) == 2
    for loss in (xdl.losses.SoftmaxCrossEntropy, xdl.losses.MeanSquaredError, xdl.losses.BinaryCrossEntropy):
        assert isinstance(loss(), xdl.losses.Loss)
    assert callable(xdl.optim.schedules.step_decay(0.1, factor=0.5, every=2)) and xdl.tensor(np.ones(2)).shape == (2,)
    assert xdl.relu(xdl.tensor([-1.0, 1.0])).numpy().tolist() == [0.0, 1.0] and callable(xdl.log_softmax)
    # (lr_scheduler's ReduceLROnPlateau, the scheduler a PyTorch user looks for there, is a Trainer callback)
    assert "xdl.train.ReduceLROnPlateau" in xdl.optim.PYTORCH_NAMES["lr_scheduler"]
    assert issubclass(xdl.train.ReduceLROnPlateau, xdl.train.Callback)
    assert callable(xdl.seed)
    model = xdl.nn.mlp(3, [4], 2)
    model(np.ones((5, 3), np.float32)).sum().backward()
    way = xdl.optim.PYTORCH_NN_UTILS_NAMES["clip_grad_norm_"].split(" (")[0]
    assert float(eval(way, {"xdl": xdl, "model": model, "max_norm": 1e-3})) > 1e-3  # the norm before, clipped
    assert float(xdl.optim.clip_grad_norm(model, 1.0)) < 1e-3 + 1e-9


def test_the_way_said_for_torch_from_numpy_shares_the_arrays_memory_as_it_does():
    """``torch.from_numpy(a)`` shares ``a``'s memory (a write to ``a`` is seen by the tensor); the way said for it was
    ``xdl.tensor(array)``, which copies: the way said, run as written, now shares as PyTorch's does."""
    array = np.ones(3, dtype=np.float32)
    way = xdl.PYTORCH_NAMES["from_numpy"].split(" (")[0]
    shared = eval(way, {"xdl": xdl, "array": array})
    array[0] = 5
    assert shared.backend.name != "numpy" or shared.numpy()[0] == 5, way

def test_the_apply_hint_visits_a_shared_layer_once_as_pytorch_s_apply():
    """named_modules names a layer held in two places under each name (PyTorch's yields it once);
    the loop the hint for PyTorch's ``model.apply(fn)`` gave ran ``fn`` on it twice — a weight
    halved by fn was quartered. The loop it gives now runs fn once per module, as apply does."""
    shared = Dense(2, 2)
    model = Sequential(shared, ReLU(), shared)
    assert [name for name, _ in model.named_modules()] == ["", "0", "1", "2"]  # (as documented)
    with pytest.raises(AttributeError) as caught:
        model.apply
    loop = str(caught.value).split("use a loop over each module once: ")[1]
    w0 = shared.weight.numpy().copy()

    def fn(m):
        if isinstance(m, Dense):
            m.weight.data *= 0.5

    exec(loop, {"model": model, "fn": fn})
    np.testing.assert_array_equal(shared.weight.numpy(), w0 * 0.5)


def test_a_model_s_predicts_set_by_hand_is_checked_when_set():
    """predicts ∈ {"classes", "labels", "values", None}: a misspelt "value" is refused at once —
    predict read it as classes (a regression's outputs thresholded to 0/1), and only xdl.save
    refused it, after the predictions were used."""
    model = xdl.nn.mlp(3, [4], 1)
    with pytest.raises(ValueError, match=r"Sequential\.predicts must be one of 'classes', 'labels', 'values' or None"
                                         r" \(classes\), got 'value'"):
        model.predicts = "value"
    assert model.predicts is None  # unchanged: predicts classes as before
    model.predicts = "values"
    X = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(model.predict(X), model(X).numpy().ravel())
    model.predicts = None


def test_standardize_takes_statistics_of_the_backend_in_use(backend):
    """Built by hand from statistics computed on the device (``X.mean(0)`` of a CuPy X): CuPy's
    arrays refuse ``np.asarray``, so the layer failed with CuPy's own message, naming no argument."""
    X = backend.asarray(np.arange(12.0).reshape(4, 3))
    layer = xdl.nn.Standardize(3, mean=X.mean(axis=0), scale=X.std(axis=0))
    np.testing.assert_allclose(backend.to_numpy(layer.to(backend)(X).data).mean(axis=0), 0, atol=1e-6)


@pytest.mark.parametrize("container", [list, tuple])
@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_a_sequential_takes_its_layers_as_one_list_or_tuple_as_keras_s_does(backend, rng, container, n_layers):
    """Sequential([layer, …]) (Keras's form) as Sequential(layer, …): the same layers, numbered in order, and
    the forward of Dense(2, 3) → ReLU → Dense(3, 1) over as many of them, in NumPy (a list was refused as a
    layer that is no Module)."""
    xdl.seed(0)
    layers = [Dense(2, 3, dtype="float64"), ReLU(), Dense(3, 1, dtype="float64")][:n_layers]
    model = Sequential(container(layers))
    assert len(model) == n_layers and all(model[i] is layer for i, layer in enumerate(layers))
    assert [(name, module) for name, module in model.named_modules()][1:] == [(str(i), x) for i, x in enumerate(layers)]
    X = rng.standard_normal((4, 2))
    expected = X @ layers[0].weight.numpy() + layers[0].bias.numpy()
    if n_layers > 1:
        expected = np.maximum(expected, 0)
    if n_layers > 2:
        expected = expected @ layers[2].weight.numpy() + layers[2].bias.numpy()
    np.testing.assert_allclose(backend.to_numpy(model(X).data), expected, rtol=1e-12)


def test_batchnorm_keeps_the_digits_of_a_mean_far_from_its_spread(backend, rng):
    """μ = K + (1/N) Σᵢ (xᵢ − K) with K = x₀: in float32 the xᵢ − K of a feature at 1e4 ± 1 are exact,
    so μ keeps its digits; summed as they are, the rows' rounding at 1e4 (an ulp of 1e-3, N of them)
    moved μ by ~1e-2 of σ, and every output with it."""
    x = (1e4 + rng.standard_normal((4096, 3))).astype(np.float32)
    y = BatchNorm(3)(xdl.tensor(backend.asarray(x))).numpy()
    x64 = x.astype(np.float64)
    # the CUDA kernels normalize with μ itself, rounded to float32 (half an ulp at 1e4: 4.9e-4, in σ ≈ 1
    # units: test_batchnorm_kernels_match_reference's bound), where the reference subtracts K, then μ − K
    rounded_mean = 0.0 if backend.name == "numpy" else np.spacing(np.float32(1e4)) / 2 / x64.std(0)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-4 + np.max(rounded_mean))
    np.testing.assert_allclose(y, (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-5), atol=1e-3)


def test_batchnorm_evaluation_keeps_the_digits_of_a_mean_far_from_its_spread(backend, rng):
    """y = (x − running_mean)·γ/√(running_var + ε) + β with the mean subtracted first, as the training
    forward and the CUDA kernel do: folded into x·scale + (β − running_mean·scale), two float32 numbers
    of 1e4 cancelled and y at 1e4 ± 1 was off by 6.5e-4 in evaluation (4e-2 at 1e6 ± 1), where
    training kept 1e-7."""
    x = (1e4 + rng.standard_normal((256, 3))).astype(np.float32)
    bn = BatchNorm(3, momentum=0.0).to(backend)  # the running statistics are this batch's
    bn(xdl.tensor(backend.asarray(x)))
    bn.eval()
    y = bn(xdl.tensor(backend.asarray(x))).numpy()
    x64, mean, var = (a.astype(np.float64) for a in (x, backend.to_numpy(bn.running_mean), backend.to_numpy(bn.running_var)))
    np.testing.assert_allclose(y, (x64 - mean) / np.sqrt(var + 1e-5), atol=1e-5)


def test_a_weight_listed_twice_is_penalized_once(backend):
    """λ/(2m)·Σ‖W‖² and λ/m·Σ|W| over each weight once: an encoder's and its tied decoder's
    parameters joined list the shared weight twice, which doubled its term (and its gradient), while
    the model itself, whose parameters() lists it once, was penalized once."""
    encoder, decoder = Dense(2, 2), Dense(2, 2)
    decoder.weight = encoder.weight  # tied, as PyTorch's decoder.weight = encoder.weight
    encoder.weight.data[...] = backend.asarray(np.array([[1.0, -2.0], [3.0, -4.0]], np.float32))
    joined = encoder.parameters() + decoder.parameters()
    assert l2(joined, lambd=0.5, m=2).item() == pytest.approx(0.5 / 4 * 30)
    assert l1(joined, lambd=0.5, m=2).item() == pytest.approx(0.5 / 2 * 10)


def test_a_module_holding_its_parent_is_refused_where_it_is_assigned():
    """A child given a registered back-reference to its parent made the tree a cycle: nothing said so
    until the first parameters() recursed to Python's limit. Refused at the assignment, nothing changed."""
    class Child(xdl.nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = Dense(2, 2)

    class Parent(xdl.nn.Module):
        def __init__(self):
            super().__init__()
            self.child = Child()

    parent = Parent()
    with pytest.raises(ValueError, match="Child.owner: the Parent assigned holds this module"):
        parent.child.owner = parent
    with pytest.raises(ValueError, match="Parent.me: the Parent assigned holds this module"):
        parent.me = parent
    assert [name for name, _ in parent.named_parameters()] == ["child.dense.weight", "child.dense.bias"]
    shared = Dense(2, 2)
    parent.a, parent.b = shared, shared  # a module under two names is no cycle
    assert len(parent.parameters()) == 4


def test_l1_penalty_sums_the_absolute_values_of_every_weight(backend):
    """λ/m·Σ_W Σ|W|: weights of either sign each add their magnitude (a test with positive weights
    alone could not tell |W| from W)."""
    model = Sequential(Dense(2, 2), Dense(2, 1))
    model[0].weight.data[...] = backend.asarray(np.array([[1.0, -2.0], [3.0, -4.0]], np.float32))
    model[1].weight.data[...] = backend.asarray(np.array([[-5.0], [6.0]], np.float32))
    assert l1(model, lambd=0.5, m=2).item() == pytest.approx(0.5 / 2 * 21)


def test_soft_label_rows_that_are_no_distributions_are_refused(backend, rng):
    """The gradient (p − y)/m is the cost's only where each row of y sums to 1 (−Σ y log p has
    p·Σy − y): rows summing to 2, or to 0.5, are refused by name, not trained on."""
    z = t64(backend, rng.standard_normal((4, 3)))
    for labels in (np.eye(3)[[0, 1, 2, 0]] * 2, np.full((4, 3), 0.5 / 3)):
        with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: one-hot \(or soft\) label rows must sum to 1"):
            SoftmaxCrossEntropy()(z, labels)


class RunningCenter(xdl.nn.Module):
    """y = x − μ_B in training, x − running mean in evaluation; running = 0.9·running + 0.1·μ_B,
    updated as PyTorch's buffers are: the attribute assigned a new tensor in the forward."""

    def __init__(self, features):
        super().__init__()
        self.add_buffer("running_mean", np.zeros(features))

    def forward(self, x):
        if not self.training:
            return x - self.running_mean
        mu = x.mean(axis=0)
        self.running_mean = 0.9 * self.running_mean + 0.1 * mu.detach()  # a Tensor: its array is kept
        return x - mu


def test_a_buffer_assigned_a_tensor_keeps_its_array_and_anything_else_is_refused_naming_it(tmp_path):
    """A Tensor assigned to a buffer stayed a Tensor: the Trainer failed at the epoch's end ("operand
    'Tensor' does not support ufuncs") and a resume or load_state_dict in words about no_grad."""
    xdl.seed(0)
    model = Sequential(Dense(3, 4), RunningCenter(4), Dense(4, 2))
    X, y = np.random.default_rng(0).standard_normal((32, 3)), np.arange(32) % 2
    xdl.train.Trainer(model, SoftmaxCrossEntropy(), xdl.optim.SGD(model), epochs=2, progress=False,
                      callbacks=[xdl.train.Checkpoint(tmp_path)]).fit(X, y)
    assert isinstance(model[1].running_mean, np.ndarray) and model[1].running_mean.any()
    model.load_state_dict(model.state_dict())
    with pytest.raises(TypeError, match=r"cannot assign a int to RunningCenter.running_mean, a buffer: expected an "
                                        r"array of the backend"):
        model[1].running_mean = 0
    assert isinstance(model[1].running_mean, np.ndarray)


@pytest.mark.parametrize("seed, step", [(2**64, 0), (1e300, 0), (0.5, 0), (-1, 0), ("7", 0), (True, 0), (0, 1.7),
                                        (0, -1), (0, 2**64)])
def test_set_random_key_refuses_a_key_that_would_draw_another_keys_masks(seed, step):
    """The key holds seed and step in 64 bits each (`xdl.ops.random` takes them modulo 2**64) and
    took them through int(): seeds 2**64, 1e300, 0.5 and 0.9 all drew seed 0's masks, −1 seed
    2**64 − 1's, a step of 1.7 step 1's, without a word — as `Trainer` and `xdl.seed` refuse them."""
    model = Sequential(Dense(3, 8), Dropout(0.5))
    with pytest.raises(ValueError, match=r"set_random_key: (seed|step) must be an integer in \[0, 2\*\*64\)"):
        model.set_random_key(seed, step)
    model.set_random_key(2**64 - 1, 2**64 - 1)  # the largest of each: a key of its own
    with pytest.raises(ValueError, match=r"set_random_key: seed must be an integer in \[0, 2\*\*64\)"):
        xdl.nn.stack([model, model]).set_random_key([5, 2**64])


def test_a_module_assigned_to_a_sequential_as_an_attribute_is_refused_and_append_adds_a_layer():
    """PyTorch's Sequential runs every submodule; here the forward runs the numbered layers, so a
    layer added as the hint for add_module said (setattr) trained and was saved but never ran: the
    model was the identity without a word. It is refused, naming append, which adds a layer."""
    x = np.ones((2, 3), dtype=np.float32)
    model = Sequential()
    with pytest.raises(AttributeError, match=r"for PyTorch's add_module\(\), use append\(layer\)"):
        model.add_module
    with pytest.raises(TypeError, match=r"attribute 'fc0' would not run .*model.append\(layer\)"):
        model.fc0 = Dense(3, 4)
    assert len(model) == 0 and model.parameters() == []
    assert model.append(Dense(3, 4)) is model
    model.extend([ReLU(), Dense(4, 2)])
    assert len(model) == 3 and [name for name, _ in model.named_modules()] == ["", "0", "1", "2"]
    assert model(x).shape == (2, 2) and len(model.parameters()) == 4
    assert all(p._flat[0] is model.parameters()[0]._flat[0] for p in model.parameters())  # one buffer, packed anew
    with pytest.raises(TypeError, match=r"Sequential.extend: layers\[1\] is a str"):
        model.extend([ReLU(), "relu"])
    assert len(model) == 3  # checked before any was added


def test_extend_refused_at_a_later_layer_adds_none():
    """extend checked only that each was a Module, then appended one by one: a layer that append refuses
    (one holding the model) was refused after the layers before it had been added and the parameters
    packed anew — the model changed, an optimizer made of it refused to step."""
    model = Sequential(Dense(3, 4), ReLU())
    opt = xdl.optim.SGD(model, lr=0.1)
    places = [p._flat for p in model.parameters()]
    with pytest.raises(ValueError, match=r"Sequential.3: the Sequential assigned holds this module"):
        model.extend([Dense(4, 2), model])
    assert len(model) == 2 and [name for name, _ in model.named_modules()] == ["", "0", "1"]
    assert [p._flat for p in model.parameters()] == places
    opt.step()  # still the optimizer of this model


def test_extend_with_layers_of_two_backends_adds_none():
    """Each layer was checked against the model's parameters only: a model with none yet (Sequential())
    took the first layer, then refused the second, of another backend, as append would, the first added."""
    from conftest import OtherBackend

    model = Sequential(ReLU())
    with pytest.raises(TypeError, match=r"Sequential.extend: parameters of different backends \(\w+ and otherlib\)"):
        model.extend([Dense(2, 2), Dense(2, 2).to(OtherBackend())])
    assert len(model) == 1 and model.parameters() == []


def test_add_buffer_refuses_none_and_keeps_integer_and_boolean_dtypes():
    """PyTorch's register_buffer(name, None) as add_buffer(name, None) made a 0-d NaN buffer, and
    fit refused the model as holding NaN; an integer counter or a boolean mask became float32."""
    module = xdl.nn.Module()
    for make in (lambda: module.add_buffer("cache", None), lambda: module.add_parameter("w", None, "weight")):
        with pytest.raises(TypeError, match=r"values of '(cache|w)' is None"):
            make()
    assert list(module.state_dict()) == []
    assert module.add_buffer("count", np.zeros(1, dtype=np.int64)).dtype == np.int64
    assert module.add_buffer("mask", np.ones(2, dtype=bool)).dtype == np.bool_
    assert module.add_buffer("mean", np.zeros(2)).dtype == np.float32  # floats: a layer's default
    assert module.add_buffer("scaled", np.zeros(2, dtype=np.int64), np.float64).dtype == np.float64


def test_a_parameter_is_made_of_a_tensor_as_pytorch_s_nn_parameter():
    """It was refused as "not an array", with the advice xdl.tensor(data), which made a Tensor again."""
    t = xdl.tensor([[1.0, 2.0]], requires_grad=True)
    p = xdl.Parameter(t)
    assert p.requires_grad and p.is_leaf and p.data is t.data and p.backend is t.backend
    assert xdl.Parameter(xdl.tensor([1.0, 2.0])).shape == (2,)


def test_module_zero_grad_takes_set_to_none_as_the_optimizers_do():
    model = Sequential(Dense(2, 2))
    model.zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match="set_to_none"):
        model.zero_grad(set_to_none="yes")


def test_a_module_not_initialized_is_named_where_it_is_assigned():
    """The check for a module holding its parent walked the one assigned, and one whose __init__
    never called Module's failed there as "'Head' object has no attribute '_modules'"."""
    class Head(xdl.nn.Module):
        def __init__(self):  # (no super().__init__())
            pass

    model = Sequential(Dense(2, 2))
    with pytest.raises(AttributeError, match=r"^Sequential.1: the Head assigned was not initialized: call "
                                             r"Module.__init__\(\)"):
        model.append(Head())
    assert len(model) == 1
    with pytest.raises(IndexError, match=r"model.append\(layer\) adds one at the end"):
        model[1] = Dense(2, 2)


@pytest.mark.parametrize("option, way", [("reduction", "a sum is the mean times m"),
                                         ("label_smoothing", "soft label rows"), ("from_logits", "take logits always"),
                                         ("colour", "not an option of xdl's losses")])
def test_a_loss_given_a_pytorch_or_keras_option_says_the_way_here(option, way):
    """SoftmaxCrossEntropy(reduction="sum") said Python's "takes no arguments"."""
    with pytest.raises(TypeError, match=rf"^SoftmaxCrossEntropy\(\) takes no options, got {option}=: .*{way}"):
        xdl.losses.SoftmaxCrossEntropy(**{option: 1})
    assert isinstance(xdl.losses.BinaryCrossEntropy(), xdl.losses.Loss)


@pytest.mark.parametrize("loss, option, way", [
    ("MeanSquaredError", "from_logits", "takes the model's predictions as they are"),
    ("MeanSquaredError", "label_smoothing", "a regression has no labels to smooth"),
    ("MeanSquaredError", "pos_weight", "no positive class"),
    ("BinaryCrossEntropy", "label_smoothing", r"soft targets in \[0, 1\] as y, y·\(1 − ε\) \+ ε/2"),
    ("BinaryCrossEntropy", "from_logits", "take logits always"),
    ("SoftmaxCrossEntropy", "label_smoothing", r"soft label rows, y·\(1 − ε\) \+ ε/C")])
def test_a_loss_given_a_peer_option_is_told_its_own_way(loss, option, way):
    """MeanSquaredError(from_logits=…) was told "the losses take logits always", and
    BinaryCrossEntropy(label_smoothing=…) pointed to SoftmaxCrossEntropy's soft label rows."""
    with pytest.raises(TypeError, match=rf"^{loss}\(\) takes no options, got {option}=: .*{way}"):
        getattr(xdl.losses, loss)(**{option: 0.1})


def test_a_loss_told_of_reduction_says_the_count_its_mean_is_over():
    """reduction="sum" is told "a sum is the mean times N": N is m for SoftmaxCrossEntropy (one cost an example),
    m·k for BinaryCrossEntropy and MeanSquaredError of (m, k) outputs, which average every element (as PyTorch's
    BCEWithLogitsLoss and MSELoss do) — both were told m."""
    rng = np.random.default_rng(0)

    def summed(loss, z, y):  # the losses of every example (softmax) or element (the others), added
        if loss == "MeanSquaredError":
            return ((z - y) ** 2).sum()
        if loss == "BinaryCrossEntropy":
            return (np.logaddexp(0, z) - y * z).sum()
        shifted = z - z.max(1, keepdims=True)
        return -(y * (shifted - np.log(np.exp(shifted).sum(1, keepdims=True)))).sum()

    for loss, (m, k) in itertools.product(("SoftmaxCrossEntropy", "BinaryCrossEntropy", "MeanSquaredError"),
                                          [(1, 2), (3, 2), (4, 5), (2, 7)]):
        with pytest.raises(TypeError) as refused:
            getattr(xdl.losses, loss)(reduction="sum")
        count = re.search(r"a sum is the mean times (m·k|m)\b", str(refused.value)).group(1)
        z = rng.normal(size=(m, k))
        y = np.eye(k)[rng.integers(0, k, m)] if loss == "SoftmaxCrossEntropy" else rng.uniform(size=(m, k))
        cost = float(getattr(xdl.losses, loss)()(xdl.tensor(z), y).data)
        assert np.isclose(cost * (m * k if count == "m·k" else m), summed(loss, z, y)), (loss, m, k, count)


def test_no_loss_is_pointed_to_another_loss_for_a_peer_option():
    """Every loss × every peer keyword a table names: the way said names no other of xdl's losses."""
    losses = ("SoftmaxCrossEntropy", "BinaryCrossEntropy", "MeanSquaredError")
    options = {*xdl.losses.PYTORCH_OPTIONS, *xdl.losses.SIGMOID_OPTIONS, *xdl.losses.REGRESSION_OPTIONS}
    for loss, option in itertools.product(losses, sorted(options)):
        with pytest.raises(TypeError, match=rf"^{loss}\(\) takes no options, got {option}=: ") as refused:
            getattr(xdl.losses, loss)(**{option: 0.1})
        assert not [other for other in losses if other != loss and other in str(refused.value)], (loss, option)


def test_an_initializer_whose_name_is_no_string_is_recorded_as_custom():
    """`recorded_name` reads ``__name__``, which an object of one's own may hold as anything: a
    non-string one is recorded as "custom" (what build refuses to draw again), not put in the config."""
    class Drawn:
        __name__ = None

        def __call__(self, shape):
            return np.full(shape, 0.1)

    assert xdl.init.recorded_name(Drawn()) == "custom"
    assert Dense(2, 3, init=Drawn()).config["init"] == "custom"


def test_a_setting_set_to_none_reads_as_off_only_for_a_flag():
    """`Module.current_config`'s bias rule: a part a flag switched on that is None now is off
    (``layer.bias = None``); any other setting set to None — no plain value — is the one it was
    made with, as before the rule."""
    dense = Dense(2, 3)
    dense.bias = None
    assert dense.current_config()["bias"] is False
    class Widened(xdl.nn.Module):  # (a setting no check refuses None: a LeakyReLU's slope is refused, checked_settings)
        def __init__(self, width: int = 3):
            super().__init__()
            self.width = width
            self.config = {"width": width}

    layer = Widened()
    layer.width = None
    assert layer.current_config()["width"] == 3


def test_the_streams_set_random_key_numbers_are_the_named_modules_positions():
    """`set_random_key` numbers a drawing module's stream by its position in `named_modules` (a
    module held under two names counts at each), walked without making the names: the same order."""
    shared = xdl.nn.Dropout(0.2)
    inner = xdl.nn.Sequential(xdl.nn.Dense(3, 4), shared, xdl.nn.ReLU())
    model = xdl.nn.Sequential(xdl.nn.Dense(2, 3), xdl.nn.Dropout(0.1), inner, shared, xdl.nn.Dense(3, 2))
    walked = [module for _, module in model.named_modules()]
    assert [id(m) for m in model._each_module()] == [id(m) for m in walked]
    model.set_random_key(5, 7)
    last = max(i for i, m in enumerate(walked) if m is shared)
    assert model[1].random_key == (5, 2, 7) and shared.random_key == (5, last, 7)


# -- a PyTorch or Keras constructor keyword of a layer's peer: taken, or said what it is here ---------------------
KERAS_LAYER = ["name", "trainable", "dtype", "autocast", "input_shape", "activity_regularizer"]  # every Keras layer's
# each layer of xdl.nn: its arguments here, then its peers' constructor keywords (PyTorch's torch.nn, Keras's layers)
LAYER_PEERS = {
    "Dense": ({"in_features": 3, "out_features": 2},
              ["in_features", "out_features", "bias", "device", "dtype"],  # nn.Linear
              ["units", "activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
               "bias_regularizer", "kernel_constraint", "bias_constraint", "lora_rank", "input_dim", *KERAS_LAYER]),
    "ReLU": ({}, ["inplace"], ["max_value", "negative_slope", "threshold", *KERAS_LAYER]),
    "LeakyReLU": ({}, ["negative_slope", "inplace"], ["negative_slope", "alpha", *KERAS_LAYER]),
    "Tanh": ({}, [], KERAS_LAYER),  # (Keras's Activation("tanh"))
    "Sigmoid": ({}, [], KERAS_LAYER),
    "Softmax": ({}, ["dim"], ["axis", *KERAS_LAYER]),
    "Dropout": ({}, ["p", "inplace"], ["rate", "noise_shape", "seed", *KERAS_LAYER]),
    "BatchNorm": ({"features": 3},
                  ["num_features", "eps", "momentum", "affine", "track_running_stats", "device", "dtype"],  # 1d
                  ["axis", "momentum", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
                   "moving_mean_initializer", "moving_variance_initializer", "beta_regularizer", "gamma_regularizer",
                   "beta_constraint", "gamma_constraint", "synchronized", *KERAS_LAYER]),
    "Standardize": ({"features": 2}, [], ["axis", "mean", "variance", "invert", *KERAS_LAYER]),  # Normalization
    "Sequential": ({}, [], ["layers", "trainable", "name"]),
}
# a value each keyword a layer takes is given in the cases below
TAKEN_VALUES = {"in_features": 3, "out_features": 2, "bias": False, "dtype": "float64", "eps": 1e-3, "momentum": 0.5,
                "axis": 0, "p": 0.3, "rate": 0.3, "mean": np.zeros(2)}


def test_layer_peers_cover_every_layer():
    assert set(LAYER_PEERS) == set(xdl.nn.LAYERS)


@pytest.mark.parametrize("name, library, key", [
    (name, library, key) for name, (_, pytorch, keras) in LAYER_PEERS.items()
    for library, keys in (("PyTorch", pytorch), ("Keras", keras)) for key in keys])
def test_a_peers_constructor_keyword_is_taken_or_says_what_it_is_here(name, library, key):
    """``BatchNorm(num_features=64)``, ``Softmax(dim=1)``, ``Dense(3, units=2)`` as PyTorch or Keras spell them met
    Python's bare "unexpected keyword argument", where an optimizer's said xdl's spelling: a keyword a layer does not
    take says what it is here (a setting of its own, named by its name here, or what is offered instead), before
    anything is made. A keyword it takes is taken."""
    cls = xdl.nn.LAYERS[name]
    given, _, _ = LAYER_PEERS[name]
    takes = inspect.signature(cls).parameters
    if key in takes and takes[key].kind is not inspect.Parameter.VAR_POSITIONAL:
        cls(**{**given, key: TAKEN_VALUES[key]})
        return
    with pytest.raises(TypeError, match=rf"^{name}\(\) got an unexpected keyword argument '{key}'; "
                                        rf"(PyTorch|Keras)'s '{key}' is .*here") as refused:
        cls(**given, **{key: 1})
    ours = re.search(rf"'{key}' is (\w+) here", str(refused.value))
    assert ours is None or ours[1] in takes  # a name said to be this layer's is one of its arguments
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'foo'$"):  # no hint to give: Python's words
        cls(**given, foo=1)


def test_a_layer_or_parameter_assigned_again_to_its_own_name_stays_where_it_is():
    """``model[0] = model[0]`` (or ``layer.weight = layer.weight``) changes nothing: the parameters keep their
    places in the model's buffer, and an optimizer made before still steps them (by −lr·g)."""
    model = Sequential(Dense(2, 3), ReLU(), Dense(3, 1))
    optimizer = xdl.optim.SGD(model, lr=0.5)
    places = [p._flat for p in model.parameters()]
    model[0] = model[0]
    model[2].weight = model[2].weight
    assert [p._flat for p in model.parameters()] == places
    before = [p.numpy().copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad[...] = 1.0
    optimizer.step()
    for p, values in zip(model.parameters(), before):
        np.testing.assert_allclose(p.numpy(), values - 0.5, rtol=1e-6)


def test_a_name_registered_anew_leaves_the_registry_it_was_in():
    """A submodule's or a buffer's name given a parameter is that parameter only (PyTorch's rule): not listed
    also as the submodule's parameters, nor as a buffer."""
    module = xdl.nn.Module()
    module.a = Dense(2, 3)
    module.a = xdl.Parameter(np.ones(2))
    assert [name for name, _ in module.named_parameters()] == ["a"] and list(module._modules) == []
    bn = BatchNorm(2)
    bn.running_mean = xdl.Parameter(np.zeros(2))
    assert [name for name, _ in bn.named_buffers()] == ["running_var"]
    assert sorted(bn.state_dict()) == ["beta", "gamma", "running_mean", "running_var"]


def test_a_parameter_made_a_buffer_leaves_the_models_buffer_and_its_optimizer_is_told():
    model = Sequential(Dense(2, 3))
    model.extra = xdl.Parameter(np.ones(4))
    optimizer = xdl.optim.SGD(model, lr=0.1)
    model.add_buffer("extra", np.zeros(4))
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert sum(p.size for p in model.parameters()) == 9 == model[0].weight._flat[0].size
    with pytest.raises(RuntimeError, match="the parameters moved to new storage after this optimizer was made"):
        optimizer.step()


def test_a_mode_block_restores_each_modules_own_mode():
    """``with model.evaluating():`` evaluates every module, then gives each the mode it had: a batch norm
    kept in evaluation while the rest trains stays so, and the model trains again."""
    model = Sequential(Dense(2, 3), BatchNorm(3), Dropout(0.5))
    model.train()
    model[1].eval()
    with model.evaluating():
        assert [m.training for _, m in model.named_modules()] == [False] * 4
    assert [m.training for _, m in model.named_modules()] == [True, True, False, True]
    with model.mode(True):
        assert all(m.training for _, m in model.named_modules())
    assert model[1].training is False


def test_a_forward_of_ones_own_taking_training_is_given_the_calls_training():
    class Net(xdl.nn.Module):
        def __init__(self):
            super().__init__()
            self.seen = []

        def forward(self, x, training=None):
            self.seen.append(training)
            return x

    net = Net()
    x = xdl.tensor(np.ones((1, 2)))
    net(x, training=False)
    net(x, training=True)
    net(x)
    assert net.seen == [False, True, None]


def test_astype_keeps_a_standardizations_statistics_in_float64():
    """Standardize's mean and scale stay float64 in a model of any dtype: 1e6 + 1e-3 is kept (float32 rounds it)."""
    model = Sequential(xdl.nn.Standardize(2, mean=np.array([1e6 + 1e-3, 0.0]), scale=np.ones(2)), Dense(2, 1))
    model.astype(np.float64).astype(np.float32)
    assert model.dtype == np.float32 and model[0].mean.dtype == model[0].scale.dtype == np.float64
    assert model[0].mean.tolist() == [1e6 + 1e-3, 0.0]


def test_load_state_dict_writes_every_parameter_and_nested_buffer_in_place():
    """A loaded state is what the model holds and says: its state_dict gives it back (a nested batch norm's
    running statistics too), the parameters still views of the model's one buffer."""
    rng = np.random.default_rng(0)
    model = Sequential(Dense(2, 3), BatchNorm(3), Dense(3, 1))
    state = {name: rng.standard_normal(value.shape).astype(value.dtype) for name, value in model.state_dict().items()}
    state["1.running_var"] = np.abs(state["1.running_var"]) + 0.5
    places = [p._flat for p in model.parameters()]
    model.load_state_dict(state)
    assert [p._flat for p in model.parameters()] == places
    assert all(p.data.base is not None for p in model.parameters())  # (views, not arrays of their own)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[name], err_msg=name)


def test_astype_packs_the_converted_parameters_anew_with_zero_gradients():
    model = Sequential(Dense(2, 3), Dense(3, 1))
    for p in model.parameters():
        p.grad[...] = 1.0
    model.astype(np.float64)
    assert {p._flat[0] is model[0].weight._flat[0] for p in model.parameters()} == {True}
    assert model[0].weight._flat[0].data.dtype == np.float64
    for p in model.parameters():
        assert p.grad.dtype == np.float64 and not p.grad.any()


def test_a_strict_load_refuses_a_missing_or_an_unexpected_name_and_a_loose_one_lists_them():
    model = Sequential(Dense(2, 1))
    state = model.state_dict()
    missing = {"0.weight": state["0.weight"]}
    extra = {**state, "1.weight": np.zeros((1, 1), np.float32)}
    with pytest.raises(ValueError, match=r"missing \['0.bias'\], unexpected \[\]"):
        model.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"missing \[\], unexpected \['1.weight'\]"):
        model.load_state_dict(extra)
    assert model.load_state_dict(missing, strict=False) == (["0.bias"], [])
    assert model.load_state_dict(extra, strict=False) == ([], ["1.weight"])


def test_a_state_of_a_transposed_weight_is_refused_by_its_shape_and_changes_nothing():
    model = Sequential(Dense(2, 3), Dense(3, 1))
    before = model.state_dict()
    state = {**before, "0.bias": np.ones(3, np.float32), "1.weight": np.ones((1, 3), np.float32)}
    match = r"parameter '1.weight': saved shape \(1, 3\) does not match the model's \(3, 1\)"
    with pytest.raises(ValueError, match=match):
        model.load_state_dict(state)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_a_multi_label_logit_of_exactly_0_predicts_no_label_as_its_probability_of_one_half_does():
    """A label is predicted where its logit is > 0 (σ > 0.5): a logit of 0, σ = 0.5, is no label either way."""
    model = Sequential(Dense(2, 3, init="zeros"))
    model.predicts = "labels"
    X = np.ones((4, 2), np.float32)
    assert model.predict(X).tolist() == [[0, 0, 0]] * 4
    assert model.predict_proba(X).tolist() == [[0.5] * 3] * 4


def test_a_labels_model_of_one_output_predicts_as_a_binary_one():
    """One output is one label: predict gives (m,) classes, predict_proba the columns [1 − σ(z), σ(z)]."""
    model = Sequential(Dense(1, 1, init=lambda shape: np.ones(shape)))
    model.predicts = "labels"
    X = np.array([[-2.0], [3.0]], np.float32)
    assert model.predict(X).tolist() == [0, 1]
    p = 1 / (1 + np.exp(-X[:, 0].astype(np.float64)))
    np.testing.assert_allclose(model.predict_proba(X), np.stack([1 - p, p], axis=1), rtol=1e-6)


def test_an_initializer_of_ones_own_giving_another_shape_is_refused_by_dense():
    with pytest.raises(ValueError, match=r"Dense: init gave an array of shape \(3, 2\), the weight is \(2, 3\)"):
        Dense(2, 3, init=lambda shape: np.ones(shape[::-1]))


def test_the_layers_compute_their_formulas_with_their_settings():
    """Dense: X·W + b (b ≠ 0 too; bias=False: none); LeakyReLU: slope·x below 0 (0.01 by default, PyTorch's);
    Softmax along its axis; a model ending in a Sigmoid outputs probabilities."""
    X = np.array([[1.0, -2.0], [-3.0, 0.5]])
    layer = Dense(2, 3, dtype=np.float64)
    layer.bias.data[...] = [0.5, -1.0, 2.0]
    np.testing.assert_allclose(layer(xdl.tensor(X)).numpy(), X @ layer.weight.numpy() + [0.5, -1.0, 2.0])
    assert [name for name, _ in Dense(2, 3, bias=False).named_parameters()] == ["weight"]
    np.testing.assert_allclose(LeakyReLU()(xdl.tensor(X)).numpy(), np.where(X > 0, X, 0.01 * X))
    np.testing.assert_allclose(LeakyReLU(0.2)(xdl.tensor(X)).numpy(), np.where(X > 0, X, 0.2 * X))
    e = np.exp(X)
    np.testing.assert_allclose(Softmax(axis=0)(xdl.tensor(X)).numpy(), e / e.sum(axis=0), rtol=1e-12)
    assert Sequential(Dense(2, 1), Sigmoid()).outputs_probabilities()
