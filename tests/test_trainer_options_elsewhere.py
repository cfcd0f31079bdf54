"""A Trainer given an option that is the optimizer's, fit's or another library's says where it is here
(`xdl.train.trainer.TRAINER_OPTIONS_ELSEWHERE`): Python's "Trainer.__init__() got an unexpected keyword
argument 'max_grad_norm'" said neither whose it is nor how to give it."""

import inspect
import re

import numpy as np
import pytest

import xdl
from xdl.losses import SoftmaxCrossEntropy
from xdl.optim import Adam
from xdl.train import Trainer


def parts():
    model = xdl.nn.mlp(4, [3], 2)
    return model, SoftmaxCrossEntropy(), Adam(model, lr=1e-3)


def table():
    from xdl.train.trainer import TRAINER_OPTIONS_ELSEWHERE  # (here: the file's other tests run on a base without it)
    return TRAINER_OPTIONS_ELSEWHERE


# the brief's options and a word of the way each should name
EXPECTED_WAYS = [("max_grad_norm", r"optimizer's: Adam\(model, lr=1e-3, max_grad_norm="),
                 ("clipnorm", r"max_grad_norm"), ("global_clipnorm", r"max_grad_norm"),
                 ("gradient_clip_val", r"Lightning's .* max_grad_norm"), ("lr", r"optimizer's: Adam\(model, lr="),
                 ("learning_rate", r"Keras's learning_rate is the optimizer's lr"),
                 ("weight_decay", r"optimizer's: .*weight_decay="), ("validation_data", r"dev=\(X_dev, y_dev\)"),
                 ("validation_split", r"xdl\.data\.split"), ("verbose", r"progress="),
                 ("shuffle", r"each epoch is shuffled"), ("max_epochs", r"epochs=…"),
                 ("device", r"model\.to\('cuda'\).*xdl\.use"), ("metrics", r"the history records")]


@pytest.mark.parametrize("option, way", EXPECTED_WAYS)
def test_a_trainer_given_an_option_of_elsewhere_says_where_it_is(option, way):
    with pytest.raises(TypeError, match=rf"^Trainer\(\) got an unexpected keyword argument '{option}'; .*{way}"):
        Trainer(*parts(), epochs=3, **{option: 1.0})


def test_each_option_of_the_table_is_refused_before_any_work_with_its_way(monkeypatch):
    """Every entry, with each of several values and beside valid settings: the message is the table's, and the
    constructor's body never ran (its first check, of the parts, not called; the parts left as they were)."""
    import xdl.train.trainer as trainer_module
    ran = []
    monkeypatch.setattr(trainer_module, "_check_parts", lambda *a: ran.append(a))
    model, loss, optimizer = parts()
    weights = {name: value.copy() for name, value in model.state_dict().items()}
    cases = 0
    for option, way in table().items():
        for value in (1.0, 0, None, "cuda", [1]):
            for settings in ({}, {"epochs": 2}, {"seed": 1, "progress": False}):
                message = f"Trainer() got an unexpected keyword argument {option!r}; {way}"
                with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
                    Trainer(model, loss, optimizer, **settings, **{option: value})
                cases += 1
    assert cases == len(table()) * 15 and not ran
    assert optimizer.max_grad_norm is None and optimizer.groups[0].settings["lr"] == 1e-3
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, weights[name])


def test_no_option_of_the_table_is_a_trainer_keyword_and_each_way_named_is_taken_there():
    """The table refuses only what the constructor does not take, and each ``Maker(keyword=…)`` a way names is a
    keyword of that maker (so the way said works)."""
    trainer_keywords = set(inspect.signature(Trainer.__init__).parameters)
    assert not set(table()) & trainer_keywords
    makers = {"Adam": xdl.optim.Adam, "AdamW": xdl.optim.AdamW, "Trainer": Trainer, "fit": Trainer.fit}
    named = 0
    for way in table().values():
        for maker, arguments in re.findall(r"(\w+)\(([^()]*)", way):  # (a call's text up to its first paren)
            for keyword in re.findall(r"(\w+)=", arguments) if maker in makers else ():
                assert keyword in inspect.signature(makers[maker]).parameters, way
                named += 1
    assert named >= 15


@pytest.mark.parametrize("option", ["bogus", "Lr", "lrs", "max_grad_norms", "devices", "metric", "validation"])
def test_a_trainer_given_an_unknown_keyword_gets_pythons_error(option):
    with pytest.raises(TypeError, match=rf"^Trainer\.__init__\(\) got an unexpected keyword argument '{option}'$"):
        Trainer(*parts(), **{option: 1})


def test_the_trainer_keeps_its_signature_and_repr():
    """`Trainer.__repr__` reads the constructor's defaults from its signature: the check in front keeps it."""
    names = list(inspect.signature(Trainer.__init__).parameters)
    assert names[:4] == ["self", "model", "loss", "optimizer"] and "l1" in names and "capture" in names
    trainer = Trainer(*parts(), epochs=3, seed=2)
    assert repr(trainer).endswith(", epochs=3, seed=2; 0 of 3 epochs trained)")


def said_by_fit() -> dict:
    """The table's entries `Trainer.fit` says: those Keras's fit has no entry for (`KERAS_FIT_OPTIONS` first), but
    fit's own keywords (the constructor says they are fit's)."""
    from xdl.train.trainer import KERAS_FIT_OPTIONS
    fit_keywords = set(inspect.signature(Trainer.fit).parameters)
    return {option: way for option, way in table().items() if option not in {*KERAS_FIT_OPTIONS, *fit_keywords}}


def test_fit_given_an_option_of_the_table_says_where_it_is_before_any_work():
    """``trainer.fit(X, y, lr=…)`` said "not an option of Trainer.fit (its options: dev, resume)" where the
    constructor's table knows the way: every entry Keras's fit table lacks, with each of several values, is the
    table's way, and the trainer trains nothing."""
    model, loss, optimizer = parts()
    trainer = Trainer(model, loss, optimizer, epochs=1, progress=False)
    X, y = np.zeros((8, 4), np.float32), np.arange(8) % 2
    weights = {name: value.copy() for name, value in model.state_dict().items()}
    cases = 0
    for option, way in said_by_fit().items():
        for value in (1.0, 0, None, "cuda", [1]):
            with pytest.raises(TypeError, match=f"^{re.escape(f'Trainer.fit() takes no option {option}=: {way}')}$"):
                trainer.fit(X, y, **{option: value})
            cases += 1
    assert cases == 5 * len(said_by_fit()) >= 50 and trainer.epoch == 0 and not trainer.history
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, weights[name])


def test_each_way_fit_says_reads_right_for_fit():
    """A way said by fit names a keyword bare (``epochs=…``) only where fit takes it: Lightning's max_epochs said
    "epochs=… here", which fit refuses; each ``Maker(keyword=…)`` is a keyword of that maker."""
    makers = {"Adam": xdl.optim.Adam, "AdamW": xdl.optim.AdamW, "Trainer": Trainer, "fit": Trainer.fit}
    fit_keywords = set(inspect.signature(Trainer.fit).parameters)
    for option, way in said_by_fit().items():
        for keyword in re.findall(r"(?<![\w(])(\w+)=…", way):
            assert keyword in fit_keywords, (option, way)
        for maker, keyword in re.findall(r"(\w+)\((\w+)=", way):
            assert maker not in makers or keyword in inspect.signature(makers[maker]).parameters, (option, way)
    assert "max_epochs" in said_by_fit()


@pytest.mark.parametrize("option", ["bogus", "Lr", "lrs", "max_grad_norms", "devices", "metric", "l2s", "seeds"])
def test_fit_given_an_unknown_keyword_keeps_its_message(option):
    model, loss, optimizer = parts()
    with pytest.raises(TypeError, match=rf"^Trainer\.fit\(\) takes no option {option}=: not an option of Trainer\.fit "
                                        r"\(its options: dev, resume\)$"):
        Trainer(model, loss, optimizer).fit(np.zeros((4, 4), np.float32), np.arange(4) % 2, **{option: 1})


def constructor_keywords() -> list[str]:
    """The Trainer constructor's keywords that Keras's fit has none of (fit says those from `KERAS_FIT_OPTIONS`)."""
    from xdl.train.trainer import KERAS_FIT_OPTIONS
    return [name for name in inspect.signature(Trainer.__init__).parameters
            if name != "self" and name not in KERAS_FIT_OPTIONS]


def test_fit_given_a_constructor_keyword_says_it_is_the_constructors_before_any_work():
    """``trainer.fit(X, y, l2=…)`` said only "not an option of Trainer.fit": each keyword of the constructor's
    signature, with each of several values, is said to be the constructor's, with the call that takes it (the
    parts by position: ``Trainer(model, loss, optimizer)``), and the trainer trains nothing."""
    model, loss, optimizer = parts()
    trainer = Trainer(model, loss, optimizer, epochs=1, progress=False)
    X, y = np.zeros((8, 4), np.float32), np.arange(8) % 2
    weights = {name: value.copy() for name, value in model.state_dict().items()}
    cases = 0
    for name in constructor_keywords():
        call = "Trainer(model, loss, optimizer)" if name in ("model", "loss", "optimizer") else \
            f"Trainer(model, loss, optimizer, {name}=…)"
        for value in (1.0, 0, None, "cuda", [1]):
            with pytest.raises(TypeError, match=f"^{re.escape(f'Trainer.fit() takes no option {name}=: it is the ')}"
                                                f"constructor's: {re.escape(call)}"):
                trainer.fit(X, y, **{name: value})
            cases += 1
    assert cases == 5 * len(constructor_keywords()) >= 5 * 12 and {"l2", "seed", "l1", "capture"} <= set(
        constructor_keywords())
    assert trainer.epoch == 0 and not trainer.history
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, weights[name])


def test_a_trainer_given_a_fit_keyword_says_it_is_fits_before_any_work(monkeypatch):
    """``Trainer(model, loss, opt, dev=…)`` met Python's bare error: each of fit's keywords (its signature's) is
    said to be fit's, with the call that takes it, before the constructor's body runs."""
    import xdl.train.trainer as trainer_module
    ran = []
    monkeypatch.setattr(trainer_module, "_check_parts", lambda *a: ran.append(a))
    fit_keywords = [name for name, p in inspect.signature(Trainer.fit).parameters.items()
                    if name not in ("self", "X", "y") and p.kind is not p.VAR_KEYWORD]
    assert tuple(fit_keywords) == trainer_module.FIT_OPTIONS
    cases = 0
    for name in fit_keywords:
        for value in (1.0, 0, None, (np.zeros((2, 4)), np.zeros(2)), "directory"):
            with pytest.raises(TypeError, match=rf"^Trainer\(\) got an unexpected keyword argument '{name}'; it is "
                                                rf"fit's: trainer\.fit\(X, y, {name}="):
                Trainer(*parts(), epochs=2, **{name: value})
            cases += 1
    assert cases == 5 * len(fit_keywords) == 10 and not ran


# a TrainConfig's, scikit-learn's or xdl.sklearn's option of a run that is a callback's or another keyword here →
# a pattern of the way each is said, and the calls in it (maker, keyword) that must take the keyword named
CALLBACK_WAYS = {
    "patience": (r"early stopping is a callback: Trainer\(callbacks=\[EarlyStopping\(patience=…\)\]\)",
                 [("EarlyStopping", "patience")]),
    "early_stopping": (r"early stopping is a callback: Trainer\(callbacks=\[EarlyStopping\(patience=…\)\]\)",
                       [("EarlyStopping", "patience")]),
    "n_iter_no_change": (r"EarlyStopping's patience, one more, here: .*EarlyStopping\(patience=n_iter_no_change \+ 1\)",
                         [("EarlyStopping", "patience")]),
    "plateau_patience": (r"ReduceLROnPlateau\(patience=plateau_patience, factor=plateau_factor\)",
                         [("ReduceLROnPlateau", "patience"), ("ReduceLROnPlateau", "factor")]),
    "plateau_factor": (r"ReduceLROnPlateau\(patience=plateau_patience, factor=plateau_factor\)",
                       [("ReduceLROnPlateau", "patience"), ("ReduceLROnPlateau", "factor")]),
    "validation_fraction": (r"xdl\.data\.split\(X, y\).*dev=\(s\.X_dev, s\.y_dev\)", [("fit", "dev")]),
    "max_iter": (r"scikit-learn's max_iter is epochs here: Trainer\(epochs=max_iter\)$", [("Trainer", "epochs")]),
    "random_state": (r"scikit-learn's random_state is seed here: Trainer\(seed=random_state\)$", [("Trainer", "seed")]),
    "alpha": (r"scikit-learn's alpha is l2 here, the same λ .*Trainer\(l2=alpha\)$", [("Trainer", "l2")]),
}


@pytest.mark.parametrize("option", CALLBACK_WAYS)
def test_a_run_option_of_a_config_or_scikit_learn_says_where_it_is_to_the_constructor_and_fit(option, monkeypatch):
    """``Trainer(model, loss, opt, patience=5)`` (a TrainConfig's, xdl.sklearn's), ``early_stopping=True``,
    scikit-learn's ``n_iter_no_change=``, ``max_iter=``: Python's bare error at the constructor, "not an option of
    Trainer.fit" at fit. Each is said, before any work, with the call that takes it (whose keyword it takes)."""
    import xdl.train.trainer as trainer_module
    way, calls = CALLBACK_WAYS[option]
    model, loss, optimizer = parts()
    trainer = Trainer(model, loss, optimizer, epochs=1, progress=False)
    ran = []
    monkeypatch.setattr(trainer_module, "_check_parts", lambda *a: ran.append(a))
    X, y = np.zeros((8, 4), np.float32), np.arange(8) % 2
    for value in (5, True, 0.1, None, "dev_cost"):
        with pytest.raises(TypeError, match=rf"^Trainer\(\) got an unexpected keyword argument '{option}'; .*{way}"):
            Trainer(model, loss, optimizer, **{option: value})
        with pytest.raises(TypeError, match=rf"^Trainer\.fit\(\) takes no option {option}=: .*{way}"):
            trainer.fit(X, y, **{option: value})
    assert not ran and trainer.epoch == 0 and not trainer.history
    makers = {"EarlyStopping": xdl.train.EarlyStopping, "ReduceLROnPlateau": xdl.train.ReduceLROnPlateau,
              "Trainer": Trainer, "fit": Trainer.fit}
    for maker, keyword in calls:
        assert keyword in inspect.signature(makers[maker]).parameters



def test_every_keras_fit_option_given_to_the_constructor_says_where_it_is_before_any_work(monkeypatch):
    """Keras's fit options that are no constructor keyword (``Trainer(…, initial_epoch=3)``, ``class_weight=``,
    ``sample_weight=``) met Python's bare error, though fit says them: each, with several values, is said to be
    Keras's fit's and how it is here, before the constructor's body runs."""
    import xdl.train.trainer as trainer_module
    from xdl.train.trainer import KERAS_FIT_OPTIONS
    ran = []
    monkeypatch.setattr(trainer_module, "_check_parts", lambda *a: ran.append(a))
    keywords = set(inspect.signature(Trainer.__init__).parameters)
    cases = 0
    for option in (name for name in KERAS_FIT_OPTIONS if name not in keywords):
        for value in (3, {0: 2.0}, np.ones(8), None, "balanced"):
            with pytest.raises(TypeError, match=rf"^Trainer\(\) got an unexpected keyword argument '{option}'; "
                                                rf"{re.escape(table()[option])}$"):
                Trainer(*parts(), epochs=2, **{option: value})
            cases += 1
    assert cases == 5 * 7 and not ran  # (validation_data, validation_split, verbose, shuffle and these three)
    for option in ("initial_epoch", "class_weight", "sample_weight"):
        assert table()[option].startswith("Keras's fit option")


def test_lightnings_ckpt_path_is_said_to_be_fits_resume_by_the_constructor_and_fit():
    """Lightning's ``trainer.fit(model, ckpt_path=…)``: Python's bare error at the constructor, "not an option of
    Trainer.fit" at fit; both say it is fit's resume=, and nothing trains."""
    model, loss, optimizer = parts()
    trainer = Trainer(model, loss, optimizer, epochs=1, progress=False)
    X, y = np.zeros((8, 4), np.float32), np.arange(8) % 2
    way = r"Lightning's ckpt_path is fit's resume here: trainer\.fit\(X, y, resume=directory\)"
    for value in ("last", "best", "run/checkpoint.xdl", None):
        with pytest.raises(TypeError, match=rf"^Trainer\(\) got an unexpected keyword argument 'ckpt_path'; {way}"):
            Trainer(model, loss, optimizer, ckpt_path=value)
        with pytest.raises(TypeError, match=rf"^Trainer\.fit\(\) takes no option ckpt_path=: {way}"):
            trainer.fit(X, y, ckpt_path=value)
    assert trainer.epoch == 0 and not trainer.history
