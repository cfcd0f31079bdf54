"""A batch (`fit_many`, a `ManyTrainer`, its fit) given a model's option — a TrainConfig field: ``lr=``,
``max_grad_norm=``, ``epochs=`` — or another library's option of a run (Lightning's ``max_epochs``, Keras's
``learning_rate``, a device, metrics) says where it is: each TrainConfig's, one per model
(`xdl.train.many.BATCH_OPTIONS_ELSEWHERE`). ``ManyTrainer(configs, lr=1)`` gave Python's bare error and
``fit_many(configs, X, y, lr=1e-3)`` only "not an option of fit_many"."""

import dataclasses
import inspect
import re

import numpy as np
import pytest

import xdl
from xdl.config import TrainConfig
from xdl.train.many import IGNORED, PLATEAU, SHARED, ManyTrainer, fit_many
from xdl.train.trainer import KERAS_FIT_OPTIONS

X = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
y = np.arange(16) % 2
VALUES = (1e-3, 0, None, "cuda", [8])  # (refused before any value is read: each kind alike)

# each model's options: TrainConfig's fields but those a batch ignores, or takes itself (seed: its batches' order)
# (or takes from the backend: precision, which a TrainConfig's would leave as it is)
MODEL_OPTIONS = [f.name for f in dataclasses.fields(TrainConfig)
                 if f.name not in (*IGNORED, *PLATEAU, "seed", "precision")]
# another library's option of one run → a word of the way it is for a batch
PEER_WAYS = {"learning_rate": r"Keras's learning_rate is each TrainConfig's lr here: \[TrainConfig\(lr=…\) for …\]",
             "global_clipnorm": r"each TrainConfig's max_grad_norm here: \[TrainConfig\(max_grad_norm=1\.0\)",
             "clipnorm": r"not offered here; each TrainConfig's max_grad_norm",
             "gradient_clip_val": r"Lightning's .* each TrainConfig's max_grad_norm",
             "max_epochs": r"Lightning's max_epochs is each TrainConfig's epochs here.*\[TrainConfig\(epochs=…\)",
             "device": r"xdl\.use\('cuda'\)",
             "precision": r"not a TrainConfig's: .*xdl\.use\('cuda', precision='tf32'\)",
             "metrics": r"each model's history .* records train_cost"}
# Keras's fit options the constructor is given: each fit says them from KERAS_FIT_OPTIONS
CONSTRUCTOR_KERAS_WAYS = {"validation_data": r"the dev set is fit's: .*\.fit\(X, y, dev=\(X_dev, y_dev\)\)",
                          "validation_split": r"xdl\.data\.split", "verbose": r"progress=…", "shuffle": r"seed=…"}
UNKNOWN = ["bogus", "Lr", "lrs", "hiddens", "devices", "metric", "out", "base_error", "checkpoint_every", "backend"]


def each_configs(name: str) -> str:
    """The way (a pattern) a model's option ``name`` is said to be: each TrainConfig's."""
    each = " (the same in each: models trained together share it)" if name in SHARED else ", one per model"
    return re.escape(f"it is each TrainConfig's: [TrainConfig({name}=…) for …]{each}") + "$"


def model_way(name: str) -> str:
    """The way a fit says a model's option ``name`` is: Keras's fit's where it names one, else each config's."""
    if name in KERAS_FIT_OPTIONS:
        return re.escape(KERAS_FIT_OPTIONS[name].format(run="TrainConfig", maker="", train_on="")) + "$"
    return each_configs(name)


def refused(call, message: str) -> int:
    """``call`` with each of `VALUES` raises TypeError matching ``message``; the number of cases."""
    for value in VALUES:
        with pytest.raises(TypeError, match=message):
            call(value)
    return len(VALUES)


def test_fit_many_says_each_models_option_is_its_configs():
    """Every TrainConfig field a batch neither ignores nor takes, given to fit_many, is refused before anything
    (the configs, here not TrainConfigs, never checked), saying it is each TrainConfig's."""
    cases = 0
    for name in MODEL_OPTIONS:
        cases += refused(lambda value: fit_many(["not a config"], X, y, **{name: value}),
                         rf"^fit_many\(\) takes no option {name}=: {model_way(name)}")
    assert cases == len(MODEL_OPTIONS) * len(VALUES) and {"lr", "max_grad_norm", "weight_decay", "dropout"} <= set(
        MODEL_OPTIONS)


def test_a_many_trainer_says_each_models_option_is_its_configs():
    """As fit_many: ``ManyTrainer(configs, lr=1)`` (Python's bare error) and its fit given one, before any work."""
    batch = ManyTrainer([TrainConfig(hidden=[3], epochs=1)])
    cases = 0
    for name in MODEL_OPTIONS:  # (the constructor: each config's, Keras's epochs and batch_size too)
        cases += refused(lambda value: ManyTrainer(["not a config"], **{name: value}),
                         rf"^ManyTrainer\(\) got an unexpected keyword argument '{name}'; {each_configs(name)}")
        cases += refused(lambda value: batch.fit(X, y, **{name: value}),
                         rf"^ManyTrainer\.fit\(\) takes no option {name}=: {model_way(name)}")
    assert cases == 2 * len(MODEL_OPTIONS) * len(VALUES)
    assert batch.model is None and batch.epoch == 0  # nothing built, nothing trained


@pytest.mark.parametrize("name", PLATEAU)
def test_a_batch_given_a_plateau_option_says_it_has_none_and_where_one_is(name):
    """fit_many refuses a config with a plateau: its option given to a batch points to a run alone, not to the
    configs."""
    way = r"a batch has no plateau .*config\.build_trainer\(model\), or xdl tune --execution sequential$"
    assert refused(lambda value: fit_many(["not a config"], X, y, **{name: value}),
                   rf"^fit_many\(\) takes no option {name}=: {way}") == len(VALUES)


@pytest.mark.parametrize("option, way", PEER_WAYS.items())
def test_a_batch_says_where_another_librarys_option_is(option, way):
    batch = ManyTrainer([TrainConfig(hidden=[3], epochs=1)])
    cases = refused(lambda value: fit_many(["not a config"], X, y, **{option: value}),
                    rf"^fit_many\(\) takes no option {option}=: .*{way}")
    cases += refused(lambda value: ManyTrainer(["not a config"], **{option: value}),
                     rf"^ManyTrainer\(\) got an unexpected keyword argument '{option}'; .*{way}")
    cases += refused(lambda value: batch.fit(X, y, **{option: value}),
                     rf"^ManyTrainer\.fit\(\) takes no option {option}=: .*{way}")
    assert cases == 3 * len(VALUES) and batch.model is None


@pytest.mark.parametrize("option, way", CONSTRUCTOR_KERAS_WAYS.items())
def test_a_many_trainer_says_where_a_keras_fit_option_is(option, way):
    refused(lambda value: ManyTrainer(["not a config"], **{option: value}),
            rf"^ManyTrainer\(\) got an unexpected keyword argument '{option}'; .*{way}")


@pytest.mark.parametrize("option", UNKNOWN)
def test_an_unknown_keyword_keeps_its_message(option):
    """A keyword no table names (a typo, a run option the batch ignores) gets the message it had."""
    with pytest.raises(TypeError, match=rf"^fit_many\(\) takes no option {option}=: not an option of fit_many \(its "
                                        r"options: dev, seed, dtype, n_classes, standardize, callbacks, resume, "
                                        r"progress, capture, eval_train\)$"):
        fit_many(["not a config"], X, y, **{option: 1})
    with pytest.raises(TypeError, match=rf"^ManyTrainer\.__init__\(\) got an unexpected keyword argument "
                                        rf"'{option}'$"):
        ManyTrainer(["not a config"], **{option: 1})
    with pytest.raises(TypeError, match=rf"^ManyTrainer\.fit\(\) takes no option {option}=: not an option of "
                                        r"ManyTrainer\.fit \(its options: dev, n_classes, standardize, resume\)$"):
        ManyTrainer([TrainConfig(hidden=[3])]).fit(X, y, **{option: 1})


def test_the_batch_s_seed_given_to_its_fit_says_it_is_the_constructors_and_each_models_its_configs():
    """seed is the batch's own (its batches' order) and each TrainConfig's (its model's initialization and dropout):
    ManyTrainer.fit(seed=…) said "not an option of ManyTrainer.fit"; it names both, each value alike."""
    batch = ManyTrainer([TrainConfig(hidden=[3], epochs=1)])
    way = (r"it is the constructor's, the batches' order: ManyTrainer\(configs, seed=…\) \(as fit_many\(configs, X, y, "
           r"seed=…\)\); each model's initialization and dropout masks take its TrainConfig's seed$")
    assert refused(lambda value: batch.fit(X, y, seed=value), rf"^ManyTrainer\.fit\(\) takes no option seed=: {way}")
    assert batch.model is None and batch.epoch == 0


def constructor_keywords() -> list[str]:
    """The ManyTrainer constructor's keywords but configs that Keras's fit has none of (fit says those from
    `KERAS_FIT_OPTIONS`)."""
    return [name for name in inspect.signature(ManyTrainer.__init__).parameters
            if name not in ("self", "configs") and name not in KERAS_FIT_OPTIONS]


def test_a_many_trainers_fit_given_a_constructor_keyword_says_it_is_the_constructors():
    """fit_many's options are the constructor's or fit's: ``batch.fit(X, y, dtype=…)`` said only "not an option of
    ManyTrainer.fit". Each keyword of the constructor's signature, with each of several values, is said to be the
    constructor's (and fit_many's), before any work: nothing built, nothing trained."""
    batch = ManyTrainer([TrainConfig(hidden=[3], epochs=1)])
    cases = 0
    for name in constructor_keywords():
        whose = "constructor's, the batches' order" if name == "seed" else "constructor's"
        said = f"{whose}: ManyTrainer(configs, {name}=…) (as fit_many(configs, X, y, {name}=…))"
        cases += refused(lambda value: batch.fit(X, y, **{name: value}),
                         rf"^ManyTrainer\.fit\(\) takes no option {name}=: it is the {re.escape(said)}")
        assert name in inspect.signature(fit_many).parameters
    assert cases == len(VALUES) * len(constructor_keywords()) and {"seed", "dtype", "progress", "capture",
                                                                   "eval_train"} <= set(constructor_keywords())
    assert batch.model is None and batch.epoch == 0


def test_a_many_trainer_given_a_fit_keyword_says_it_is_fits():
    """``ManyTrainer(configs, dev=…)`` (fit_many's option, given to the constructor) met Python's bare error: each of
    fit's keywords (its signature's) is said to be fit's (and fit_many's), before the configs are checked."""
    from xdl.train.many import BATCH_FIT_OPTIONS
    fit_keywords = [name for name, p in inspect.signature(ManyTrainer.fit).parameters.items()
                    if name not in ("self", "X", "y") and p.kind is not p.VAR_KEYWORD]
    assert fit_keywords == list(BATCH_FIT_OPTIONS)
    cases = 0
    for name in fit_keywords:
        cases += refused(lambda value: ManyTrainer(["not a config"], **{name: value}),
                         rf"^ManyTrainer\(\) got an unexpected keyword argument '{name}'; it is fit's: "
                         rf"ManyTrainer\(configs\)\.fit\(X, y, {name}=.+\) "
                         rf"\(as fit_many\(configs, X, y, {name}=.+\)\)$")
        assert name in inspect.signature(fit_many).parameters
    assert cases == len(VALUES) * 4


def test_no_option_said_elsewhere_is_a_callers_keyword_and_each_way_named_is_taken_there():
    """Each table refuses only what its caller does not take; each ``Maker(keyword=…)`` a way names is a keyword
    of that maker, and a bare ``keyword=…`` one of the caller's maker (so the way said works)."""
    from xdl.train.many import BATCH_OPTIONS_ELSEWHERE, MANY_TRAINER_OPTIONS_ELSEWHERE
    makers = {"TrainConfig": TrainConfig, "ManyTrainer": ManyTrainer, "fit_many": fit_many, "fit": ManyTrainer.fit}
    callers = [(BATCH_OPTIONS_ELSEWHERE, fit_many, fit_many), (BATCH_OPTIONS_ELSEWHERE, ManyTrainer.fit, ManyTrainer),
               (MANY_TRAINER_OPTIONS_ELSEWHERE, ManyTrainer, ManyTrainer)]
    named = 0
    for table, caller, maker in callers:
        assert not set(table) & set(inspect.signature(caller).parameters)
        for name, way in table.items():
            if caller is not ManyTrainer and name in KERAS_FIT_OPTIONS:
                continue  # (a fit says Keras's from its own table)
            for call, keyword in re.findall(r"(\w+)\((\w+)=", way):
                assert keyword in inspect.signature(makers[call]).parameters, way
                named += 1
            for keyword in re.findall(r"(?<![\w(])(\w+)=…", way):  # (bare: the caller's own)
                assert keyword in inspect.signature(maker).parameters, (caller, way)
                named += 1
    assert named >= 2 * len(MODEL_OPTIONS)


def test_a_many_trainer_keeps_its_signature_and_builds_as_before():
    names = list(inspect.signature(ManyTrainer.__init__).parameters)
    assert names == ["self", "configs", "seed", "dtype", "callbacks", "progress", "capture", "eval_train"]
    with xdl.use("numpy"):
        batch = ManyTrainer([TrainConfig(hidden=[3], epochs=1, patience=0), TrainConfig(hidden=[3], seed=1)], seed=2)
    assert batch.seed == 2 and batch.n_models == 2 and batch.epochs == 200


def test_every_keras_fit_option_given_to_a_many_trainer_says_where_it_is():
    """``ManyTrainer(configs, initial_epoch=3)`` (``class_weight=``, ``sample_weight=``): Keras's fit options that
    its fits say met Python's bare error at the constructor. Each Keras fit option that is no constructor keyword
    is said, with several values, before the configs are checked."""
    from xdl.train.many import MANY_TRAINER_OPTIONS_ELSEWHERE
    keywords = set(inspect.signature(ManyTrainer.__init__).parameters)
    cases = 0
    for option in (name for name in KERAS_FIT_OPTIONS if name not in keywords):
        way = re.escape(MANY_TRAINER_OPTIONS_ELSEWHERE[option])
        cases += refused(lambda value: ManyTrainer(["not a config"], **{option: value}),
                         rf"^ManyTrainer\(\) got an unexpected keyword argument '{option}'; {way}$")
    assert cases == 9 * len(VALUES)  # (epochs, batch_size: each config's; verbose, shuffle, the dev set's, these)
    assert MANY_TRAINER_OPTIONS_ELSEWHERE["initial_epoch"].startswith("Keras's fit option")


def test_lightnings_ckpt_path_is_said_to_be_resume_by_a_batch():
    batch = ManyTrainer([TrainConfig(hidden=[3], epochs=1)])
    way = r"Lightning's ckpt_path is resume here: ManyTrainer\(configs\)\.fit\(X, y, resume=directory\)"
    cases = refused(lambda value: fit_many(["not a config"], X, y, ckpt_path=value),
                    rf"^fit_many\(\) takes no option ckpt_path=: {way}")
    cases += refused(lambda value: ManyTrainer(["not a config"], ckpt_path=value),
                     rf"^ManyTrainer\(\) got an unexpected keyword argument 'ckpt_path'; {way}")
    cases += refused(lambda value: batch.fit(X, y, ckpt_path=value),
                     rf"^ManyTrainer\.fit\(\) takes no option ckpt_path=: {way}")
    assert cases == 3 * len(VALUES) and batch.model is None and batch.epoch == 0
