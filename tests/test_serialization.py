import os
import re

import numpy as np
import pytest

import xdl
from xdl import serialization
from xdl.losses import SoftmaxCrossEntropy
from xdl.nn import BatchNorm, Dense, Dropout, ReLU, Sequential


def trained_model(rng):
    model = Sequential(Dense(4, 6), BatchNorm(6), ReLU(), Dropout(0.2), Dense(6, 3))
    X = rng.standard_normal((32, 4)).astype(np.float32)
    for _ in range(3):
        model.zero_grad()
        SoftmaxCrossEntropy()(model(X), rng.integers(0, 3, 32)).backward()
        for p in model.parameters():
            p.data -= 0.1 * p.grad
    return model, X


def test_round_trip_is_exact(backend, rng, tmp_path):
    model, X = trained_model(rng)
    path = xdl.save(model, tmp_path / "model.npz")
    loaded = xdl.load(path)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and "1.running_mean" in a
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert np.array_equal(model.predict_proba(X), loaded.predict_proba(X))
    assert repr(loaded) == repr(model)
    assert loaded.backend is backend and all(backend.owns(a) for _, a in loaded.named_buffers())
    flat = loaded.parameters()[0]._flat[0]  # one buffer there, every parameter a view of it
    assert all(p._flat[0] is flat for p in loaded.parameters()) and backend.owns(flat.data)


def test_round_trip_float64(backend, rng, tmp_path):
    model = Sequential(Dense(3, 2)).astype(np.float64)
    loaded = xdl.load(xdl.save(model, tmp_path / "m.npz"))
    assert loaded.dtype == np.float64


def test_interrupted_save_keeps_old_file(backend, rng, tmp_path, monkeypatch):
    model, _ = trained_model(rng)
    path = tmp_path / "model.npz"
    xdl.save(model, path)
    old = path.read_bytes()

    def failing_savez(f, **arrays):
        f.write(b"partial garbage")
        raise OSError("disk full")

    for p in model.parameters():
        p.data += 1
    monkeypatch.setattr(serialization.np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        xdl.save(model, path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary left behind
    monkeypatch.undo()
    xdl.load(path)


def test_wrong_architecture_names_the_parameter(backend, rng, tmp_path):
    model, _ = trained_model(rng)
    path = xdl.save(model, tmp_path / "model.npz")
    other = Sequential(Dense(4, 6), BatchNorm(6), ReLU(), Dropout(0.2), Dense(6, 5))
    before = other.state_dict()
    with pytest.raises(ValueError, match=r"parameter '4.weight': saved shape \(6, 3\) does not match the model's \(6, 5\)"):
        xdl.load(path, model=other)
    assert all(np.array_equal(before[k], v) for k, v in other.state_dict().items())  # nothing half-loaded
    with pytest.raises(ValueError, match=r"missing \['5.bias', '5.weight'\]"):
        xdl.load(path, model=Sequential(Dense(4, 6), BatchNorm(6), ReLU(), Dropout(0.2), Dense(6, 3), Dense(3, 3)))


def test_save_errors(backend, tmp_path):
    model = Sequential(Dense(2, 2))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        xdl.save(model, tmp_path / "missing" / "m.npz")
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(Exception):
        xdl.load(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="no such file"):
        xdl.load(tmp_path / "absent.npz")


def test_save_to_a_directory_is_refused_before_any_work(tmp_path, monkeypatch):
    model = Sequential(Dense(2, 2))
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "m.npz").write_bytes(b"kept")
    monkeypatch.setattr(Sequential, "state_dict", lambda self: pytest.fail("save serialized the model"))
    with pytest.raises(IsADirectoryError, match=re.escape(f"save: {str(runs)!r} is a directory; name the model file in it")):
        xdl.save(model, runs)
    assert os.listdir(tmp_path) == ["runs"] and os.listdir(runs) == ["m.npz"]  # no temporary left anywhere
    assert (runs / "m.npz").read_bytes() == b"kept"


def test_a_model_made_with_an_initializer_of_ones_own_loads_without_it(tmp_path):
    """Only the initializer's name is saved; the weights it drew are, so the file loads anyway."""
    model = xdl.nn.Sequential(xdl.nn.Dense(2, 3, init=lambda shape: np.full(shape, 0.5)))
    loaded = xdl.load(xdl.save(model, tmp_path / "own.npz"))
    np.testing.assert_array_equal(loaded.layers[0].weight.numpy(), np.full((2, 3), 0.5, dtype=np.float32))
    assert xdl.nn.describe(loaded) == xdl.nn.describe(model)  # the name kept: saved again, compared on resume



def test_build_without_initializing_draws_nothing_and_keeps_the_description(monkeypatch):
    """`build(description, initialize=False)`: zero weights for a state about to be loaded (what
    `xdl.load` and `Stacked.model` build), the same description, no initializer called; by
    default a fresh model is initialized (and still leaves the host stream alone)."""
    xdl.seed(3)
    model = xdl.nn.mlp(4, [5], 2, batch_norm=True)
    description = xdl.nn.describe(model)
    state = xdl.backend.host_rng().bit_generator.state
    he = xdl.init.INITIALIZERS["he"]

    def not_called(shape):
        raise AssertionError("an initializer ran for weights about to be overwritten")

    monkeypatch.setitem(xdl.init.INITIALIZERS, "he", not_called)
    empty = xdl.nn.build(description, initialize=False)
    monkeypatch.setitem(xdl.init.INITIALIZERS, "he", he)
    assert xdl.nn.describe(empty) == description
    assert all(not p.numpy().any() for p in empty.parameters("weight"))
    fresh = xdl.nn.build(description)
    assert all(p.numpy().any() for p in fresh.parameters("weight"))
    assert xdl.backend.host_rng().bit_generator.state == state


def test_load_state_dict_takes_tensors_and_lists_and_skips_other_names_when_not_strict():
    model = xdl.nn.Sequential(xdl.nn.Dense(2, 2))
    state = model.state_dict()
    model.load_state_dict({name: xdl.tensor(value + 1) for name, value in state.items()})
    np.testing.assert_array_equal(model.state_dict()["0.bias"], state["0.bias"] + 1)
    model.load_state_dict({name: value.tolist() for name, value in state.items()})
    np.testing.assert_array_equal(model.state_dict()["0.bias"], state["0.bias"])
    with pytest.raises(ValueError, match=r"missing \['0.bias'\], unexpected \['head.weight'\]"):
        model.load_state_dict({"0.weight": np.ones((2, 2)), "head.weight": np.ones(3)})
    model.load_state_dict({"0.weight": np.ones((2, 2)), "head.weight": np.ones(3)}, strict=False)
    assert model.state_dict()["0.weight"].sum() == 4 and model.state_dict()["0.bias"].sum() == state["0.bias"].sum()
    with pytest.raises(ValueError, match=r"parameter '0.weight': saved shape \(3, 2\)"):
        model.load_state_dict({"0.weight": np.ones((3, 2))}, strict=False)  # shapes still checked


def test_saving_an_optimizer_says_where_its_state_goes(tmp_path):
    model = xdl.nn.mlp(2, [3], 2)
    with pytest.raises(TypeError, match=r"got Adam; an optimizer's state is opt.state_dict\(\)"):
        xdl.save(xdl.optim.Adam(model), tmp_path / "opt.npz")
    assert not (tmp_path / "opt.npz").exists()
