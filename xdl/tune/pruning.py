"""Successive halving at rungs, asynchronously (ASHA, Li et al. 2020; the rule Hyperband runs):
a trial reaching rung r (after min_epochs·ηʳ epochs) goes on only if its dev accuracy there is in
the top 1/η of all the dev accuracies recorded at that rung so far (at least the best one goes on).
Poor trials stop early and their epochs go to the promising ones.

>>> rungs(min_epochs=2, eta=3, max_epochs=40)
[2, 6, 18]
>>> goes_on(0.9, [0.95, 0.8, 0.7], eta=2), goes_on(0.75, [0.95, 0.8, 0.7], eta=2)
(True, False)
"""

from __future__ import annotations

import math

from xdl.train.callback import Callback
from xdl.train.many import ManyTrainer


def rungs(min_epochs: int, eta: int, max_epochs: int) -> list[int]:
    """The epochs at which trials are compared: min_epochs·ηʳ below ``max_epochs`` (the most any
    trial trains; a trial is compared at those below its own epochs)."""
    out, epoch = [], min_epochs
    while epoch < max_epochs:
        out.append(epoch)
        epoch *= eta
    return out


def goes_on(value: float, peers: list[float], eta: int) -> bool:
    """Whether ``value`` is among the top ⌊n/η⌋ (at least 1) of ``peers`` + itself (higher is better)."""
    values = sorted([*peers, value], reverse=True)
    keep = max(1, math.floor(len(values) / eta))
    return value >= values[keep - 1]


def recorded_at(study, rungs_: list[int]) -> dict[int, list[float]]:
    """rung → the dev accuracies the study's trials recorded there (those that reached it)."""
    return {r: [t.curves["dev_accuracy"][r - 1] for t in study.trials
                if len(t.curves.get("dev_accuracy", ())) >= r and t.curves["dev_accuracy"][r - 1] is not None]
            for r in rungs_}


class Pruning(Callback):
    """Stops a `Trainer` run (one trial) at a rung where it is not in the top 1/η of the values
    ``recorded`` there (`recorded_at`); ``pruned_at`` is that rung."""

    def __init__(self, recorded: dict[int, list[float]], eta: int):
        self.recorded, self.eta, self.pruned_at = recorded, eta, None

    def check_fits(self, trainer) -> None:
        """Refuse fit_many's `ManyTrainer`: its record is its best model's, and a stop here would end all
        K models on that one's value, as "stopped" — `BatchPruning` compares and prunes each."""
        if isinstance(trainer, ManyTrainer):
            raise ValueError("Pruning stops one Trainer's run from its record; fit_many's record is its best "
                             "model's, and a stop would end all K models: give fit_many BatchPruning(recorded, eta), "
                             "which prunes each model")

    def on_epoch_end(self, trainer, record):
        epoch = record["epoch"]  # (a trial at its last epoch has ended, not been stopped early)
        # nor has one that early stopping (a callback before) ends at this epoch: "stopped", as `BatchPruning`
        # leaves a model that fit_many's early stopping ended (as "pruned" it lost its place among the best)
        if epoch in self.recorded and epoch < trainer.epochs and not trainer.stop_training \
                and not goes_on(record["dev_accuracy"], self.recorded[epoch], self.eta):
            trainer.stop_training, self.pruned_at = True, epoch


class BatchPruning(Callback):
    """The same rule for the K models of a `ManyTrainer`: at a rung, each model still training is
    compared with the values ``recorded`` there and its batch peers'; the losers are stopped
    ("pruned")."""

    def __init__(self, recorded: dict[int, list[float]], eta: int):
        self.recorded, self.eta = recorded, eta

    def check_fits(self, trainer) -> None:
        """Refuse a `Trainer` (one model: no ``histories``, ``status`` or ``stop_model`` to prune by) before
        its fit trains, not with an AttributeError at its first rung."""
        if not isinstance(trainer, ManyTrainer):
            raise ValueError(f"BatchPruning prunes fit_many's K models (a ManyTrainer's), and was given a "
                             f"{type(trainer).__name__}: give a Trainer's run Pruning(recorded, eta)")

    def on_epoch_end(self, trainer, record):
        epoch = record["epoch"]
        if epoch not in self.recorded:
            return
        here = {k: h[epoch - 1]["dev_accuracy"] for k, h in enumerate(trainer.histories) if len(h) >= epoch}
        earlier = self.recorded[epoch]
        for k, value in here.items():
            peers = earlier + [v for j, v in here.items() if j != k]
            if trainer.status[k] == "training" and epoch < trainer.configs[k].epochs \
                    and not goes_on(value, peers, self.eta):
                trainer.stop_model(k, "pruned")
