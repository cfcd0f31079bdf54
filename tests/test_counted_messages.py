"""Counts in messages go through one helper (`xdl.data.validation.counted`): "1 example", "2 examples" —
never "1 examples" or "1 trial(s)". Each message that counts is reached at 1 and at other counts."""

import re
import warnings

import numpy as np
import pytest

import xdl
from xdl.config import TrainConfig
from xdl.data.validation import counted
from xdl.train.early_stopping import patience_reason
from xdl.tune.study import Study, Trial


def said_once(text: str, n: int, noun: str) -> bool:
    """``text`` counts ``n`` ``noun``s in the one right form (and not in the other, nor as "noun(s)")."""
    other = f"{n} {noun}" if n != 1 else f"{n} {noun}s"
    return re.search(rf"\b{re.escape(counted(n, noun))}\b", text) is not None and f"{noun}(s)" not in text \
        and re.search(rf"\b{re.escape(other)}\b", text) is None


def test_counted_is_singular_at_one_alone():
    assert [counted(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]


@pytest.mark.parametrize("n", [0, 1, 2])
def test_run_and_study_summaries_count_their_epochs_and_trials(n):
    assert said_once(patience_reason("dev_cost", n), n, "epoch")
    assert said_once(Trial(1, 0, {"lr": 0.1}, "completed", None, 0.9, 0.3, n, 1.0).summary(), n, "epoch")
    study = Study({})
    study.trials = [Trial(i, 0, {}, status, "x" if status == "failed" else None,
                          None if status == "failed" else 0.5, 0.3, 1, 1.0)
                    for i in range(n) for status in ("pruned", "failed")]
    assert said_once(repr(study), 2 * n, "trial")
    if n:  # (was "1 trial(s) pruned", "1 trial(s) failed")
        table = study.table()
        assert f"\n{counted(n, 'trial')} pruned" in table and f"\n{counted(n, 'trial')} failed;" in table
        assert "trial(s)" not in table


@pytest.mark.parametrize("n", [1, 2])
def test_an_optimizer_shows_its_groups_parameters_counted(n):
    params = [xdl.Parameter(np.zeros((2, 2), np.float32)) for _ in range(n)]
    assert said_once(repr(xdl.optim.SGD(params, lr=0.1)), n, "parameter")


@pytest.mark.parametrize("models, optimizers", [(1, 2), (2, 1), (3, 1), (2, 3)])
def test_a_stacked_optimizer_counts_the_optimizers_and_models_it_was_given(models, optimizers):
    """(was "1 optimizers for a stack of 2 models", "2 optimizers for a stack of 1 models")"""
    stack = xdl.nn.stack([xdl.nn.mlp(2, [3], 2) for _ in range(models)])
    with pytest.raises(ValueError) as e:
        xdl.optim.StackedOptimizer(stack, [xdl.optim.SGD(xdl.nn.mlp(2, [3], 2)) for _ in range(optimizers)])
    assert said_once(str(e.value), optimizers, "optimizer") and said_once(str(e.value), models, "model")
    if models == 1:
        assert repr(xdl.optim.StackedOptimizer(stack, [xdl.optim.SGD(xdl.nn.mlp(2, [3], 2))])).startswith(
            "StackedOptimizer(SGD of 1 model;")


@pytest.mark.parametrize("sets", [2, 3])
def test_a_stacked_optimizers_state_counts_its_sets_of_settings_and_the_parts_of_a_row(sets):
    """(was "for 1 part(s) of each row")"""
    models = [xdl.nn.mlp(2, [3], 2) for _ in range(2)]
    optimizer = xdl.optim.StackedOptimizer(xdl.nn.stack(models), [xdl.optim.Adam(m) for m in models])
    state = optimizer.state_dict()
    with pytest.raises(ValueError) as e:
        optimizer.load_state_dict(dict(state, settings=state["settings"][:1] * sets))
    assert said_once(str(e.value), sets, "set") and said_once(str(e.value), 1, "part")


@pytest.mark.parametrize("n", [1, 2])
def test_a_trainer_counts_the_examples_of_an_x_longer_or_shorter_than_y(n):
    """A loss of no labels (a regression's): its X and y checked by the Trainer (was "X has 1 examples")."""
    model = xdl.nn.mlp(2, [3], 1, batch_norm=False)
    trainer = xdl.train.Trainer(model, xdl.losses.MeanSquaredError(), xdl.optim.SGD(model), epochs=1, progress=False)
    with pytest.raises(ValueError, match="must have the same length") as e:
        trainer.fit(np.ones((n, 2), np.float32), np.ones((n + 1, 1), np.float32))
    assert said_once(str(e.value), n, "example")


@pytest.mark.parametrize("spanned", [1, 2])
def test_a_resume_of_a_cosine_schedule_counts_the_epochs_it_spans(spanned):
    """(was "spans 1 epochs")"""
    config = TrainConfig(schedule="cosine", epochs=3)
    saved = {**{name: getattr(config, name) for name in config.__dataclass_fields__}, "epochs": spanned}
    with pytest.raises(ValueError, match="cosine schedule") as e:
        config.check_resume(saved, "w", 1)
    assert said_once(str(e.value), spanned, "epoch")


@pytest.mark.parametrize("batch_size", [1, 2])
def test_the_l2_advice_counts_the_examples_of_a_batch(batch_size):
    """(was "m 1 examples a batch")"""
    xdl.seed(0)
    model = xdl.nn.mlp(2, [4], 2, batch_norm=False)
    trainer = xdl.train.Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=0.5), l2=200.0,
                                batch_size=batch_size, epochs=2, progress=False)
    X, y = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32), np.arange(8) % 2
    with warnings.catch_warnings(), pytest.raises(FloatingPointError, match="or a smaller l2") as e:
        warnings.simplefilter("ignore")  # (NumPy's overflow, and the warning of a large start)
        trainer.fit(X, y)
    assert said_once(str(e.value).partition("or a smaller l2")[2], batch_size, "example")
