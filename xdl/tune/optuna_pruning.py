"""`OptunaPruning`: a `Trainer` in an Optuna objective of one's own reports each epoch to the trial
and stops where the study's pruner says so, as Optuna's integrations for Keras and Lightning do.

    def objective(trial):
        model = xdl.nn.mlp(64, [trial.suggest_int("hidden", 16, 256, log=True)], 10)
        optimizer = xdl.optim.Adam(model, lr=trial.suggest_float("lr", 1e-4, 1e-1, log=True))
        trainer = Trainer(model, SoftmaxCrossEntropy(), optimizer, epochs=30,
                          callbacks=[OptunaPruning(trial, "dev_accuracy")])
        history = trainer.fit(X, y, dev=(X_dev, y_dev))
        return history[-1]["dev_accuracy"]

    optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner()).optimize(objective)
"""

from __future__ import annotations

from xdl.extras import import_error
from xdl.train.callback import Callback, check_monitor


class OptunaPruning(Callback):
    """At each epoch's end, ``trial.report(record[monitor], epoch)``; where ``trial.should_prune()``,
    raise ``optuna.TrialPruned`` (the objective's caller, ``study.optimize``, records the trial as
    pruned). The epoch is numbered as xdl's records number it, from 1 (Optuna's Keras and Lightning
    integrations count from 0: a pruner's ``n_warmup_steps`` holds one epoch fewer here).
    ``monitor``: one of the run's columns (`xdl.train.callback.MONITORED`), measured on the dev set
    given to ``fit`` for the dev ones; the study's direction must fit it (maximize an accuracy,
    minimize a cost). Given to `fit_many`, the K models are one trial: it reports the batch's record
    (its best model's), and a prune stops them all. ``trial`` may be one of no study, as Optuna's docs
    pass to an objective to run it again with chosen values — ``study.best_trial`` (a FrozenTrial: its
    recipe "re-use the best trial") or ``optuna.trial.FixedTrial(params)`` (to debug an objective or
    train the final model) —: their ``report`` keeps nothing and ``should_prune`` is always False, so
    the run trains all its epochs, unpruned, as Optuna's own pruning callbacks do with them."""

    reads_monitor = True  # (a fit checks before any epoch that the run measures it: `check_monitored`)

    def __init__(self, trial, monitor: str = "dev_accuracy"):
        check_monitor(monitor, "OptunaPruning")
        if not (callable(getattr(trial, "report", None)) and callable(getattr(trial, "should_prune", None))):
            raise TypeError(f"OptunaPruning: trial must be an Optuna trial (the objective's argument), got "
                            f"{type(trial).__name__}")
        # the study's direction checked here, before a fit (or its resume) changes anything
        directions = getattr(getattr(trial, "study", None), "directions", None)
        if directions is not None:  # (None: a trial of one's own making, nothing to check it against)
            if len(directions) != 1:
                raise ValueError("OptunaPruning: the trial's study has several objectives, and Optuna prunes a trial "
                                 "of one objective only")
            wanted = "maximize" if "accuracy" in monitor else "minimize"
            if directions[0].name.lower() != wanted:  # (pruned for doing well: the pruner compares the other way)
                raise ValueError(f"OptunaPruning: monitor {monitor!r} is to {wanted}, and the trial's study is to "
                                 f"{directions[0].name.lower()}: create it with direction={wanted!r}, or monitor "
                                 "another column")
        self.trial, self.monitor = trial, monitor

    def on_epoch_end(self, trainer, record: dict) -> None:
        value, epoch = record.get(self.monitor), record["epoch"]
        if value is None and record.get("best_model", 0) is None:
            return  # an epoch of `fit_many` in which no model trained to its end (the last ones diverged)
        if value is None:
            raise ValueError(f"OptunaPruning: the record of epoch {epoch} has no {self.monitor} (a dev column is "
                             "measured on the dev set given to fit: fit(X, y, dev=(X_dev, y_dev)))")
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            try:
                from optuna import TrialPruned
            except ImportError as e:
                raise import_error(e, ("optuna",), "OptunaPruning needs Optuna", "tune")
            raise TrialPruned(f"pruned at epoch {epoch}: {self.monitor} {value:.6g}")

