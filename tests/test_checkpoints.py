"""What a checkpoint keeps and what a resume compares (`xdl.train.checkpoint`, `xdl.train.provenance`):
cases the run-level tests in test_reliability.py did not tell apart from wrong code."""

from pathlib import Path

import numpy as np
import pytest

import xdl
from xdl.data import split
from xdl.losses import SoftmaxCrossEntropy
from xdl.optim import Adam
from xdl.train import Callback, Checkpoint, Trainer
from xdl.train.provenance import data_digest


@pytest.mark.parametrize("seed", range(4))
def test_best_npz_keeps_the_first_epoch_of_a_tied_best(tmp_path, seed):
    """An accuracy on 5 dev examples ties from epoch to epoch: best.npz is the first epoch that reached
    the best (np.argmax's, EarlyStopping's and Keras's strict improvement), not a later one as good."""
    X, y = xdl.datasets.moons(45, noise=0.3, seed=seed)
    s = split(X, y, seed=seed, dev=5 / 45)
    xdl.seed(seed)
    model = xdl.nn.mlp(2, [8], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=0.02), epochs=8, seed=seed, progress=False,
                      batch_size=8, callbacks=[Checkpoint(tmp_path, monitor="dev_accuracy")])
    accuracy = trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))["dev_accuracy"]
    assert len(set(accuracy)) < len(accuracy)  # (the case: ties)
    best, _ = xdl.serialization.read_extra(tmp_path / "best.npz")
    assert best["epoch"] == int(np.argmax(accuracy)) + 1


def test_the_data_digest_tells_apart_every_change_of_values_order_dtype_or_shape():
    """Equal digests, equal data: the digest is of the values with their dtype and shape (the same bytes
    as (m, 2, 3) images or (m, 3, 2) ones, as int32 or float32, labels as (m,) or (m, 1), are other data),
    and of the labels too; a Fortran-ordered copy (a data frame's to_numpy()) is the same data."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 2, 3)).astype(np.float32), rng.integers(0, 3, size=50)
    same = [(np.asfortranarray(X), y), (X.copy(), y.copy())]
    other = [(X.reshape(50, 3, 2), y), (X.view(np.int32), y), (X, y.reshape(50, 1)), (X, (y + 1) % 3),
             (X[::-1], y[::-1]), (X, y.astype(np.int32)), (X.reshape(25, 2, 2, 3), y[:25])]
    for i in range(len(X)):  # one value changed anywhere, in each piece the digest reads
        changed = X.copy()
        changed[i, i % 2, i % 3] += 1
        other.append((changed, y))
    digest = data_digest(X, y)
    assert all(data_digest(*data) == digest for data in same)
    digests = [data_digest(*data)["sha1"] for data in other]
    assert digest["sha1"] not in digests and len(set(digests)) == len(digests)


def test_every_file_a_checkpoint_directory_holds_came_by_one_rename_of_a_synced_temporary(tmp_path, monkeypatch):
    """Nothing in a Checkpoint's directory is written in place, where a crash would leave half a file
    over the last good one: each checkpoint.npz and best.npz — those a run saves, and those a resume
    into another directory copies there (the run's best, and the checkpoint of a run that was over) —
    is a temporary beside it, fsync'd, then renamed over it."""
    import os

    from xdl import files

    synced, placed = set(), []
    fsync, replace = files.os.fsync, files.os.replace

    def observed_fsync(fd):
        synced.add(os.readlink(f"/proc/self/fd/{fd}") if os.path.isdir("/proc/self/fd") else fd)
        return fsync(fd)

    def observed_replace(source, target):
        assert not os.path.isdir("/proc/self/fd") or str(source) in synced, f"{source} renamed unsynced"
        placed.append((os.stat(source).st_ino, str(target)))
        return replace(source, target)

    monkeypatch.setattr(files.os, "fsync", observed_fsync)
    monkeypatch.setattr(files.os, "replace", observed_replace)
    X, y = xdl.datasets.moons(120, noise=0.3, seed=0)
    s = split(X, y, seed=0)

    def fit(directory, **kwargs):
        xdl.seed(0)
        model = xdl.nn.mlp(2, [8], 2)
        trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=0.02), epochs=2, seed=0, progress=False,
                          batch_size=16, callbacks=[Checkpoint(directory)])
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), **kwargs)

    fit(tmp_path / "a")
    with pytest.warns(UserWarning, match="the checkpoint's run is over"):
        fit(tmp_path / "b", resume=tmp_path / "a")  # (over: its files are copied into b)
    for directory in ("a", "b"):
        held = sorted(os.listdir(tmp_path / directory))
        assert held == ["best.npz", "checkpoint.npz"], held
        for name in held:
            path = tmp_path / directory / name
            assert (os.stat(path).st_ino, str(path)) in placed, f"{path} was written in place"


def test_a_resume_is_refused_for_each_setting_the_checkpoint_records_naming_it():
    """Each thing a run is made with is recorded (`provenance.record`) and a resume with another value
    refused by `verify`, naming it: a fact left out of the record went on unchecked (a resume with
    another batch size or loss trained another run into the checkpoint's)."""
    from xdl.train import provenance

    class OtherCost(SoftmaxCrossEntropy):
        pass

    def trainer(loss=SoftmaxCrossEntropy, dtype="float32", evaluating=False, max_grad_norm=None, **options):
        xdl.seed(0)
        model = xdl.nn.mlp(2, [8], 2, dropout=0.2).astype(dtype)
        if evaluating:
            model.layers[2].eval()
        settings = {"seed": 0, "batch_size": 32, "l2": 0.0, "l1": 0.0, "eval_train": True, **options}
        return Trainer(model, loss(), Adam(model, lr=0.01, max_grad_norm=max_grad_norm), epochs=2, progress=False,
                       **settings)

    data = {"train": {"examples": 10, "features": 2, "sha1": "0" * 40}}
    saved = provenance.record(trainer(), data)
    changes = {"batch_size": dict(batch_size=16), "seed": dict(seed=1), "l2": dict(l2=0.1), "l1": dict(l1=0.1),
               "eval_train": dict(eval_train=False), "loss": dict(loss=OtherCost), "dtype": dict(dtype="float64"),
               "evaluation": dict(evaluating=True), "max_grad_norm": dict(max_grad_norm=1.0)}
    for fact, change in changes.items():
        with pytest.raises(ValueError, match=fact) as error:
            provenance.verify(saved, provenance.record(trainer(**change), data), "checkpoint.npz")
        assert "checkpoint.npz" in str(error.value), fact
    provenance.verify(saved, provenance.record(trainer(), data), "checkpoint.npz")  # (the same run: no error)


def test_a_checkpoint_of_an_older_xdl_is_checked_on_what_it_recorded_and_on_what_its_run_had():
    """A fact an older xdl did not record is not checked (its checkpoints resume), except one whose value
    that xdl's runs all had (`provenance.ADDED_FACTS`: no l1, no clipping): a resume with l1 or
    max_grad_norm set is another run than that checkpoint's, and refused."""
    from xdl.train import provenance

    def facts(l1=0.0, max_grad_norm=None):
        xdl.seed(0)
        model = xdl.nn.mlp(2, [8], 2)
        trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=0.01, max_grad_norm=max_grad_norm), epochs=2,
                          seed=0, progress=False, l1=l1)
        return provenance.record(trainer, {"train": None})

    unrecorded = [key for key in facts() if key not in provenance.ADDED_FACTS]
    for left_out in unrecorded:  # (each fact, as if an older xdl had not recorded it)
        older = {key: value for key, value in facts().items() if key != left_out}
        provenance.verify(older, facts(), "old.npz")
    for fact, change in (("l1", dict(l1=0.1)), ("max_grad_norm", dict(max_grad_norm=1.0))):
        older = {key: value for key, value in facts().items() if key != fact}
        provenance.verify(older, facts(), "old.npz")  # (what that xdl's run had: the same run)
        with pytest.raises(ValueError, match=f"{fact} was"):
            provenance.verify(older, facts(**change), "old.npz")


@pytest.mark.parametrize("then, now, same", [("normal(10)", "normal(10.0)", True), ("normal(1e1)", "normal(10)", True),
                                             ("normal", "normal(0.01)", True), ("normal(10)", "normal(1)", False),
                                             ("he", "normal", False)])
def test_a_resume_compares_an_initializer_by_its_one_spelling(then, now, same):
    """normal(10) is normal(10.0) (a config file's integer, a script's float): the same run, resumed."""
    from xdl.train import provenance

    def facts(init):
        return {"architecture": {"layers": [{"class": "Dense", "config": {"units": 2, "init": init}}]}}

    if same:
        provenance.verify(facts(then), facts(now), "checkpoint.npz")
    else:
        with pytest.raises(ValueError, match="the model differs from the checkpoint's at layer 0"):
            provenance.verify(facts(then), facts(now), "checkpoint.npz")


@pytest.mark.parametrize("saved, now, change", [
    ({"init": "normal(10)"}, {"init": "normal(10.0)"}, None), ({"init": "normal(1e1)"}, {"init": "normal(10)"}, None),
    ({"init": "normal"}, {"init": "normal(0.01)"}, None),
    ({"init": "normal(10)"}, {"init": "normal(1)"}, ("init", "normal(10)", "normal(1)")),
    ({"init": "normal(x)"}, {}, ("init", "normal(x)", "he")), ({"init": 3}, {}, ("init", 3, "he")),
    ({"l1": 0.5}, {}, ("l1", 0.5, 0.0)), ({"max_grad_norm": 1.0}, {}, ("max_grad_norm", 1.0, 0.0)),
    ({"decay_k": 2.0}, {}, ("decay_k", 2.0, 1.0)), ({"l1": 0.0, "decay_k": 1.0}, {}, None),
    ({}, {"l1": 0.5}, ("l1", 0.0, 0.5)), ({}, {"schedule": "inverse_sqrt", "decay_k": 2.0}, ("decay_k", 1.0, 2.0)),
    ({"lr": 0.1}, {"lr": 0.1}, None), ({"lr": 0.1}, {}, ("lr", 0.1, 0.003)),
    ({"epochs": 3, "patience": 2, "out": "a"}, {"epochs": 9, "patience": 5, "out": "b"}, None)])
def test_a_resume_s_config_keeps_each_option_an_added_one_at_what_an_older_run_trained_with(saved, now, change):
    """`TrainConfig.first_change` against a checkpoint's options: an initializer by its one spelling (an
    unreadable one, a file no xdl wrote, is another), an option a checkpoint holds at a value other than what
    it stands for when missing (`ADDED_OPTIONS`: l1 0, decay_k 1) is a change, and so is one set now that an
    older run had not; epochs, patience and out may change on a resume; an option neither added nor saved is
    not compared."""
    from xdl.config import TrainConfig

    assert TrainConfig(**now).first_change(saved) == change


@pytest.mark.parametrize("wait, patience", [(w, p) for p in (1, 2, 5) for w in range(p + 2)])
def test_an_xdl_train_checkpoint_is_over_once_its_wait_reaches_the_patience(wait, patience):
    """An older `xdl train` run whose EarlyStopping had waited ``patience`` epochs stopped there (its
    resume stops at once): finished, not unfinished, however many epochs it had asked for."""
    from xdl.train.checkpoint_files import waited_out_patience

    extra = {"run_info": {"config": {"patience": patience}}, "callbacks": [{"wait": wait}, {}],
             "provenance": {"callbacks": ["EarlyStopping", "Checkpoint"]}}
    assert waited_out_patience(extra) == (wait >= patience)


@pytest.mark.parametrize("extra", [{"note": "mine"}, {"epochs": 3, "history": {}}, {}])
def test_a_model_file_with_an_extra_of_ones_own_is_no_run_to_go_on_with(tmp_path, extra):
    """A file whose extra holds no position (a model saved with a user's own extra, in a directory a run
    checkpoints to) is a model file: refused as no checkpoint by a resume (ValueError), and no unfinished run
    to go on with — not a bare KeyError from reading the position it lacks."""
    from xdl.train.checkpoint_files import read_position, unfinished_run

    path = xdl.save(xdl.nn.mlp(2, [3], 2), tmp_path / "checkpoint.npz", extra=extra)
    with pytest.raises(ValueError, match=r"checkpoint.npz' is a model file, not a training checkpoint"):
        read_position(path)
    assert unfinished_run(path) is None


@pytest.mark.parametrize("status", [["completed", "stopped"], ["failed", "pruned", "completed"], ["training"],
                                    ["completed", "training", "training"]])
def test_a_fit_many_checkpoint_is_unfinished_while_a_model_of_it_trains(tmp_path, status):
    """A `fit_many` checkpoint at an epoch's end is a run to go on with while one of its models is still
    training, said with how many; with none (each completed, stopped, pruned or failed) it is over, and a
    new run may start in its directory."""
    from xdl.train.checkpoint_files import unfinished_run

    extra = {"many": True, "provenance": {}, "epoch": 2, "status": status}
    path = xdl.save(xdl.nn.mlp(2, [3], 2), tmp_path / "checkpoint.npz", extra=extra)
    training = status.count("training")
    assert unfinished_run(path) == (f"{training} of its models still training after epoch 2" if training else None)


@pytest.mark.parametrize("name", ["checkpoint.npz", "best.npz"])
def test_a_write_protected_checkpoint_file_is_refused_before_the_first_epoch(tmp_path, monkeypatch, name):
    """A file the Checkpoint would write over that is write-protected (which ``open`` refuses; a rename would not)
    is refused as the fit begins, naming it: found at the first save, it was after an epoch's work. (``os.access``
    is patched: root may write anywhere.)"""
    from xdl import files

    X, y = xdl.datasets.moons(40, seed=0)
    model = xdl.nn.mlp(2, [3], 2)
    Trainer(model, SoftmaxCrossEntropy(), Adam(model), epochs=1, progress=False,
            callbacks=[Checkpoint(tmp_path)]).fit(X, y)  # a finished run's files: a new run may start there
    protected, access = tmp_path / name, files.os.access
    monkeypatch.setattr(files.os, "access",
                        lambda path, mode, **kw: Path(path) != protected and access(path, mode, **kw))
    model = xdl.nn.mlp(2, [3], 2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model), epochs=2, progress=False,
                      callbacks=[Checkpoint(tmp_path)])
    with pytest.raises(PermissionError, match=rf"^Checkpoint: '.*{name}' is write-protected"):
        trainer.fit(X, y)
    assert len(trainer.history) == 0


def _moons_run(seed: int):
    """Moons split into train and dev, as a run of ``seed`` takes them."""
    X, y = xdl.datasets.moons(160, noise=0.3, seed=seed)
    return split(X, y, seed=seed)


def _trainer(seed: int, callbacks, lr=0.05, epochs=3):
    """A Trainer of a small MLP drawn with ``seed`` (no batch norm, no dropout: rate 0 leaves its dev cost)."""
    xdl.seed(seed)
    model = xdl.nn.mlp(2, [8], 2, batch_norm=False, dropout=0.0)
    return Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=lr), epochs=epochs, seed=seed, progress=False,
                   batch_size=16, callbacks=callbacks)


def _best_file(directory: Path):
    """best.npz's epoch and its model's state (arrays on the host)."""
    best, _ = xdl.serialization.read_extra(directory / "best.npz")
    return best["epoch"], _state(xdl.load(directory / "best.npz"))


def _state(model) -> dict:
    """``model``'s parameters and buffers, on the host."""
    return {name: np.asarray(xdl.to_numpy(value)) for name, value in model.state_dict().items()}


def _same_state(a: dict, b: dict) -> bool:
    """Whether two `_state`s hold the same names and the same values, bit for bit."""
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("seed", range(3))
def test_a_new_run_with_the_checkpoint_of_a_finished_one_keeps_its_own_best(tmp_path, seed):
    """A Checkpoint given to a new trainer (a new run, in the directory of the finished run it served) starts
    its best afresh: best.npz is the new run's best epoch, named by ``trainer.best_checkpoint`` — not the old
    run's, kept because the new run's epochs were worse than the best of another model."""
    s, checkpoint = _moons_run(seed), Checkpoint(tmp_path)
    first = _trainer(seed, [checkpoint], epochs=4)
    first.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    second = _trainer(seed + 10, [checkpoint], lr=1e-4, epochs=1)  # (an untrained model's cost: worse)
    second.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert second.history["dev_cost"][0] > min(first.history["dev_cost"])  # (the case)
    epoch, state = _best_file(tmp_path)
    assert second.best_checkpoint == tmp_path / "best.npz"
    assert epoch == 1 and _same_state(state, _state(second.model))


@pytest.mark.parametrize("seed", range(3))
def test_a_later_fit_on_another_dev_set_writes_its_first_epoch_as_the_best(tmp_path, seed):
    """A later fit of the run measuring its dev cost on other data (here, the dev labels flipped: a far higher
    cost) starts the best afresh: its first epoch is best.npz, not the best of the fit before, kept because the
    old dev set's costs were lower."""
    s = _moons_run(seed)
    trainer = _trainer(seed, [Checkpoint(tmp_path)])
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    trainer.epochs = 4
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, 1 - s.y_dev))
    assert trainer.history["dev_cost"][3] > min(trainer.history["dev_cost"][:3])  # (the case)
    epoch, state = _best_file(tmp_path)
    assert epoch == 4 and _same_state(state, _state(trainer.model))
    assert trainer.best_checkpoint == tmp_path / "best.npz"


@pytest.mark.parametrize("seed", range(3))
def test_a_resume_of_a_run_that_was_over_names_its_best_checkpoint(tmp_path, seed):
    """A resume into the run's own directory that trains nothing (the run was over) names the run's best.npz
    as ``trainer.best_checkpoint`` (``xdl train`` lists it), though no epoch of this fit wrote it."""
    s = _moons_run(seed)
    _trainer(seed, [Checkpoint(tmp_path)]).fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    resumed = _trainer(seed, [Checkpoint(tmp_path)])
    with pytest.warns(UserWarning, match="the checkpoint's run is over"):
        resumed.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=tmp_path)
    assert resumed.best_checkpoint == tmp_path / "best.npz"


@pytest.mark.parametrize("seed", range(3))
def test_a_fit_refused_before_its_first_step_leaves_the_runs_best_for_the_next(tmp_path, seed):
    """A later fit on another dev set set the best aside, then a callback after the Checkpoint refused it before
    its first step: the best is the run's again, so the next fit, on the run's own dev set, at rate 0 (its epoch
    as good as the last one) leaves best.npz at the run's best epoch — not its own epoch written over it."""

    class Refuse(Callback):
        order = 200  # (after the Checkpoint's on_train_begin)
        refusing = False

        def on_train_begin(self, trainer):
            if self.refusing:
                raise ValueError("refused")

    s, refuse = _moons_run(seed), Refuse()
    trainer = _trainer(seed, [Checkpoint(tmp_path), refuse])
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    costs, (best_epoch, best_state) = list(trainer.history["dev_cost"]), _best_file(tmp_path)
    trainer.epochs, refuse.refusing = 4, True
    with pytest.raises(ValueError, match="refused"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, 1 - s.y_dev))
    refuse.refusing, trainer.optimizer.lr = False, 0.0
    trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert trainer.history["dev_cost"][3] >= min(costs)  # (the case: no better)
    epoch, state = _best_file(tmp_path)
    assert epoch == best_epoch == int(np.argmin(costs)) + 1 and _same_state(state, best_state)
    assert trainer.best_checkpoint == tmp_path / "best.npz"


def test_a_resume_with_a_callback_of_another_type_is_refused_naming_the_callbacks():
    """Callbacks are recorded by type: a resume whose EarlyStopping is a ReduceLROnPlateau (both watching
    dev_cost, so the monitors agree) is another run, refused naming both lists — not the early stopping's
    state loaded into the other callback."""
    from xdl.train import EarlyStopping, ReduceLROnPlateau, provenance

    def facts(callback):
        xdl.seed(0)
        model = xdl.nn.mlp(2, [4], 2)
        trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=0.01), epochs=2, seed=0, progress=False,
                          callbacks=[callback])
        return provenance.record(trainer, {"train": None})

    saved = facts(EarlyStopping())
    provenance.verify(saved, facts(EarlyStopping()), "checkpoint.npz")
    with pytest.raises(ValueError, match=r"^resume: callbacks was \['EarlyStopping'\] in the checkpoint, this run "
                                         r"has \['ReduceLROnPlateau'\]"):
        provenance.verify(saved, facts(ReduceLROnPlateau()), "checkpoint.npz")


@pytest.mark.parametrize("part, then, now", [("train", "a", "b"), ("dev", "c", "d"), ("dev", None, "d"),
                                             ("dev", "c", None)])
def test_a_resume_on_other_data_names_the_part_that_differs(part, then, now):
    """Each part of the data — the train set and the dev set, one given in one run only — is named where it
    differs, with both digests ("none" for a part a run had not)."""
    from xdl.train import provenance

    def digest(key):
        return None if key is None else {"examples": 10, "features": 2, "sha1": key * 40}

    def data(value):
        digests = {"train": digest("a"), "dev": digest("c"), part: digest(value)}
        return {"data": {name: d for name, d in digests.items() if d is not None}}

    said = {key: "none" if key is None else f"10 examples × 2 features, sha1 {key * 10}" for key in (then, now)}
    with pytest.raises(ValueError, match=rf"^resume: the {part} data differ from the checkpoint's "
                                         rf"\({said[then]} then, {said[now]} now\)"):
        provenance.verify(data(then), data(now), "checkpoint.npz")
    provenance.verify(data(then), data(then), "checkpoint.npz")


class _CrashAfterCheckpoint(Callback):
    order = 200  # after the Checkpoint: the epoch's state is saved, the run unfinished

    def __init__(self, at=None):
        self.at = at

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.at:
            raise RuntimeError("crash")


@pytest.mark.parametrize("seed", range(3))
def test_a_later_fit_tells_another_runs_checkpoint_of_the_same_size_from_its_own(tmp_path, monkeypatch, seed):
    """a's run ended, b's — the same model, data and settings but for its epochs: a checkpoint of the same size —
    began in a's directory and stopped after 2 of 6 epochs. a's later fit is refused, b's checkpoint kept: a file
    is told apart from the one a wrote by more than its size (inode and modification time). (The trainer's clock
    is stopped: the epochs' seconds, recorded in the history, are then of one length in both files.)"""
    import types

    from xdl.train import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(perf_counter=lambda: 0.0))
    s = _moons_run(seed)
    a = _trainer(seed, [Checkpoint(tmp_path), _CrashAfterCheckpoint()], epochs=2)
    a.fit(s.X_train, s.y_train)
    size = (tmp_path / "checkpoint.npz").stat().st_size
    b = _trainer(seed, [Checkpoint(tmp_path), _CrashAfterCheckpoint(at=2)], epochs=6)
    with pytest.raises(RuntimeError, match="crash"):
        b.fit(s.X_train, s.y_train)
    b_state = (tmp_path / "checkpoint.npz").read_bytes()
    assert len(b_state) == size  # (the case)
    a.epochs = 4
    with pytest.raises(FileExistsError, match=r"holds the checkpoint of another unfinished run \(after epoch 2 of 6\)"):
        a.fit(s.X_train, s.y_train)
    assert (tmp_path / "checkpoint.npz").read_bytes() == b_state


@pytest.mark.parametrize("seed", range(3))
def test_a_resume_compares_its_epochs_with_the_best_of_the_run_before_it(tmp_path, seed):
    """A run stopped after 2 of its 4 epochs is resumed; its rate is 0 from epoch 3 on (so epoch 3 is as good as
    epoch 2, no better): best.npz stays the run's best epoch — the Checkpoint's best comes back with the
    checkpoint, not started afresh, where the resume's first epoch was written over the best however worse."""
    s = _moons_run(seed)
    steps = -(-len(s.X_train) // 16)  # (per epoch, batches of 16)

    def trainer(crash_at):
        xdl.seed(seed)
        model = xdl.nn.mlp(2, [8], 2, batch_norm=False, dropout=0.0)
        rate = lambda t: 0.05 if t < 2 * steps else 0.0  # noqa: E731  (0 from epoch 3)
        return Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=rate), epochs=4, seed=seed, progress=False,
                       batch_size=16, callbacks=[Checkpoint(tmp_path), _CrashAfterCheckpoint(at=crash_at)])

    idle = pytest.warns(UserWarning, match="train nothing")  # (so meant: said at each fit)
    with idle, pytest.raises(RuntimeError, match="crash"):
        trainer(2).fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    best_epoch, best_state = _best_file(tmp_path)
    resumed = trainer(None)
    with pytest.warns(UserWarning, match="train nothing"):
        resumed.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev), resume=tmp_path)
    costs = resumed.history["dev_cost"]
    assert costs[2] == costs[3] >= min(costs[:2])  # (the case: no better after the resume)
    epoch, state = _best_file(tmp_path)
    assert epoch == best_epoch == int(np.argmin(costs)) + 1 and _same_state(state, best_state)
    assert resumed.best_checkpoint == tmp_path / "best.npz"


@pytest.mark.parametrize("name", ["init", "lr", "optimizer"])
def test_a_checkpoint_option_no_xdl_wrote_that_cannot_be_compared_is_a_change(name):
    """A saved value that == cannot compare (an array of two values, from a file no xdl wrote) is not the run's:
    `first_change` names it, rather than failing on the array's truth or passing it as the same."""
    from xdl.config import TrainConfig

    config = TrainConfig()
    saved = {name: np.array([getattr(config, name), getattr(config, name)])}
    found = TrainConfig().first_change(saved)
    assert found is not None and found[0] == name and found[2] == getattr(config, name), found


@pytest.mark.parametrize("seed", [1, 7])
def test_a_resume_by_a_trainer_given_another_seed_is_refused_and_a_path_as_text_is_read(tmp_path, seed):
    """Through `Trainer.fit(resume=…)`, not `provenance.verify` alone: a trainer given its own seed
    (another batch order and dropout masks) resuming a checkpoint of seed 0 is refused, naming the
    seed, before its model changes; the same run's trainer reads the file named by a str as by a Path."""
    X, y = xdl.datasets.moons(120, noise=0.3, seed=0)

    def trainer(seed: int, epochs: int) -> Trainer:
        xdl.seed(0)
        model = xdl.nn.mlp(2, [8], 2, dropout=0.2)
        return Trainer(model, SoftmaxCrossEntropy(), Adam(model, lr=0.01), epochs=epochs, seed=seed, progress=False,
                       callbacks=[Checkpoint(tmp_path)])

    trainer(0, 2).fit(X, y)
    other = trainer(seed, 4)
    before = other.model.state_dict()
    with pytest.raises(ValueError, match="seed"):
        other.fit(X, y, resume=tmp_path)
    for name, value in other.model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    same = trainer(0, 4)
    same.load_checkpoint(str(tmp_path / "checkpoint.npz"))
    assert (same.epoch, same.step, len(same.history)) == (2, 0, 2)
