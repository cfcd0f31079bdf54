"""Dtypes as a numerically careful user meets them: integers taken exactly, values a model's dtype
cannot hold refused where they come in, NumPy's (and PyTorch's) promotions, and a dtype change
named where it matters."""

import numpy as np
import pytest

import xdl
from xdl.losses import MeanSquaredError, SoftmaxCrossEntropy
from xdl.optim import SGD
from xdl.train import Checkpoint, Trainer


def identity_model(dtype):
    """y = x for one feature, in ``dtype``, predicting values."""
    model = xdl.nn.Sequential(xdl.nn.Dense(1, 1, init="zeros", bias=False)).astype(dtype)
    with xdl.no_grad():
        model[0].weight.data[...] = 1.0
    model.predicts = "values"
    return model


def test_integer_features_reach_a_float64_model_exactly_and_predict_checks_the_range():
    """Integers went through float32 on their way to any model (16777217 came out 16777216): now
    in the model's dtype, or float64 where float32 would round them; and predict refuses what its
    model cannot hold as fit does (it gave class 0 for a row of 1e39: inf, then NaN logits)."""
    X = np.array([[16777217], [123456789]])
    model = identity_model(np.float64)
    np.testing.assert_array_equal(model.predict(X), [16777217, 123456789])
    trainer = Trainer(model, MeanSquaredError(), SGD(model, lr=1e-3), progress=False)
    assert trainer.evaluate(X, X.astype(np.float64))["cost"] == 0.0
    assert xdl.data.Standardizer().fit(np.array([[2**30], [2**30 + 2]])).scale.tolist() == [1.0]  # a spread of 1, kept
    with pytest.raises(ValueError, match=r"^X has values beyond float32's range .* \(first at example 0, feature 1\)"):
        xdl.nn.mlp(3, [4], 2).predict(np.array([[0.0, 1e39, 0.0]]))


def test_a_resume_into_another_dtype_names_the_dtype(tmp_path):
    X, y = xdl.datasets.moons(100, seed=0)

    def trainer(dtype, epochs):
        xdl.seed(0)
        model = xdl.nn.mlp(2, [4], 2).astype(dtype)
        return Trainer(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), epochs=epochs,
                       callbacks=[Checkpoint(tmp_path)], progress=False)

    trainer(np.float32, 1).fit(X, y)
    with pytest.raises(ValueError, match=r"resume: dtype was 'float32' in the checkpoint, this run has 'float64'"):
        trainer(np.float64, 2).fit(X, y, resume=tmp_path)  # (it blamed the data: their digest is in the dtype)


def test_promotions_are_numpys_and_a_number_beside_booleans_counts():
    flags = xdl.tensor([True, False])
    assert (flags + 1).tolist() == [2, 1] and (flags * 5).tolist() == [5, 0]  # a bool tensor kept them bool
    assert (flags + 1).dtype == np.int64
    assert (xdl.tensor([1.5]) + 1).dtype == np.float32  # a Python number takes the tensor's dtype
    with pytest.raises(TypeError, match=r"tensor: dtype complex64 is not supported"):
        xdl.tensor([1.0], dtype=np.complex64)
    model = xdl.nn.mlp(2, [3], 2)
    complex_state = {name: a.astype(np.complex128) for name, a in model.state_dict().items()}
    with pytest.raises(TypeError, match=r"load_state_dict: '0.weight' holds complex128 values"):
        model.load_state_dict(complex_state)


def test_softmax_cross_entropy_checks_float_labels_before_casting_and_keeps_one_hot_rows_finite():
    logits = xdl.tensor(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 3\), got values in \[0, 1e\+20\]"):
        SoftmaxCrossEntropy()(logits, np.array([0.0, 1e20]))  # the cast wrapped to -9223372036854775808 first
    with pytest.raises(TypeError, match=r"softmax_cross_entropy: class indices must be integers, got dtype float64"):
        xdl.softmax_cross_entropy(logits, np.array([0.0, 1.0]))
    extreme = xdl.tensor(np.array([[3e38, -3e38]], np.float32))
    with np.errstate(over="ignore"):  # (the logits' difference is -inf in float32: the loss is still 0)
        assert SoftmaxCrossEntropy()(extreme, [[1.0, 0.0]]).item() == SoftmaxCrossEntropy()(extreme, [0]).item() == 0


def test_a_groups_rate_is_checked_in_its_narrowest_dtype():
    """A float64 layer first and a float32 one after: 1e-300 was checked in float64 only, and the
    float32 parameters took a rate of exactly 0."""
    model = xdl.nn.Sequential(xdl.nn.Dense(2, 3, dtype=np.float64), xdl.nn.Dense(3, 2))
    with pytest.raises(ValueError, match=r"lr is 1e-300: .* float32's positive range"):  # refused when set
        SGD(model, lr=1e-300)
    optimizer = SGD(model, lr=lambda t: 1e-300)  # a schedule's rates: checked as each comes
    (model(np.ones((1, 2))).sum()).backward()
    with pytest.raises(ValueError, match=r"the lr at step 1 \(group 0\) is 1e-300: .* float32's positive range"):
        optimizer.step()


def test_a_float16_model_file_loads_as_float32_and_a_narrowed_batch_norm_checks_its_eps(tmp_path):
    """Layers are float32 or float64 now: a float16 file (an older xdl made such layers) is loaded
    converted, with a warning, not refused; a BatchNorm whose eps `astype` made 0 is refused."""
    import json

    path = xdl.save(xdl.nn.mlp(2, [3], 2), tmp_path / "m.npz")
    arrays = dict(np.load(path))
    header = json.loads(str(arrays["__xdl_architecture__"]))
    arrays = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in arrays.items()}
    arrays["__xdl_architecture__"] = np.array(json.dumps({**header, "dtype": "float16"}))
    np.savez(tmp_path / "half.npz", **arrays)
    with pytest.warns(UserWarning, match=r"holds a float16 model; .* it is loaded as float32"):
        assert xdl.load(tmp_path / "half.npz").dtype == np.float32
    narrowed = xdl.nn.BatchNorm(2, eps=1e-50, dtype=np.float64).astype(np.float32)
    with pytest.raises(ValueError, match=r"BatchNorm: eps 1e-50 is 0 in float32"):
        narrowed(np.ones((4, 2), np.float32))


def test_predict_decides_on_the_logits_as_the_trainers_accuracy_does():
    """Class = argmax of the logits, label = logit > 0 (the rule of the Trainer's accuracy), not of
    float32 probabilities: σ(z) rounds to 0.5 for 0 < z < 1.2e-7, and the softmax of two logits one
    ulp apart is (0.5, 0.5), so predict gave class 0 where evaluate counted class 1 right."""
    def dense(weights):
        model = xdl.nn.Sequential(xdl.nn.Dense(1, len(weights), init="zeros"))
        with xdl.no_grad():
            model[0].weight.data[...] = np.array([weights], dtype=np.float32)
        return model

    X = np.array([[1e-8], [-1e-8]], dtype=np.float32)
    assert dense([1.0]).predict(X).tolist() == [1, 0]  # was [0, 0]: σ(1e-8) is 0.5 in float32
    labels = dense([1.0, -1.0])
    labels.predicts = "labels"
    assert labels.predict(X).tolist() == [[1, 0], [0, 1]]
    close = dense([0.01, np.nextafter(np.float32(0.01), np.float32(1))])  # logits one ulp apart
    assert close.predict(X[:1]).tolist() == [1]
    trainer = Trainer(close, SoftmaxCrossEntropy(), SGD(close), progress=False)
    assert trainer.evaluate(X[:1], np.array([1]))["accuracy"] == 1.0  # what predict says now


def test_a_list_of_numpy_values_keeps_their_dtype_as_torch_tensor_does():
    """``xdl.tensor`` promised PyTorch's inference: a list's NumPy values (scalars, rows) count with
    their own dtype, Python floats as float32 and ints as int64. NumPy read the list whole, so
    [np.float64(0.1)] or a list of float64 rows became float32 (a gradient check's inputs, rounded
    without a word) and [np.int32(1)] int64."""
    cases = [([np.float64(0.1), np.float64(0.2)], np.float64), ([np.zeros(2), np.ones(2)], np.float64),
             ((np.float64(1.0), 2.0), np.float64), ([[np.float64(1.0)], [2.0]], np.float64),
             ([np.float32(1.0), 2.5], np.float32), ([np.int32(1), 2.5], np.float32), ([1.5, 2], np.float32),
             ([np.int32(1)], np.int32), ([np.int32(1), 5], np.int64), ([True, np.int32(1)], np.int32),
             ([[1, 2], [3, 4]], np.int64), ([True, False], np.bool_)]
    for data, dtype in cases:
        assert xdl.tensor(data).dtype == dtype, data
    assert xdl.tensor([np.float64(0.1)]).item() == 0.1  # (not float32's 0.10000000149011612)
