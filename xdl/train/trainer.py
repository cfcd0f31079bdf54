"""`Trainer`: the course's training loop as one call — mini-batches, L2/L1, a learning-rate schedule,
per-epoch train/dev metrics, callbacks, checkpoints and exact resumption.

Randomness is a pure function of the seed and the position in the run: the shuffle of epoch e
comes from (seed, e), the augmentation of its step k from (seed, e, k), and the dropout masks of
global step t from (seed, layer, t) (`xdl.ops.random`). So a run resumed from any checkpoint —
one written at an epoch's end, or mid-epoch when Ctrl-C or SIGTERM stopped it — ends with the
same weights as an uninterrupted one.

Nothing is lost: every cost that decides anything (each step's, and the epoch-end train and dev
costs) is checked before a checkpoint is written, so a diverging run stops with an error naming
the epoch and step and the checkpoint that holds its last good state. Host syncs: none per batch
on a GPU except for the progress bar's periodic refresh; step costs stay on the device and are
checked in one transfer at the epoch's end (at every step on the CPU, where a check costs nothing).

On a GPU the step (forward, loss, backward, L2/L1, update) is captured as a CUDA graph per batch
shape (`xdl.cuda_graph`) and replayed: the first step of each shape runs for real as the
warm-up, then is recorded. Its inputs are copied into fixed arrays per shape; the dropout key's
step and the optimizer's step count and rates live in device memory, so captured and eager runs
of one seed make the same masks and updates. ``capture="auto"`` runs eagerly where a step needs
the host (augmentation, a per-step lr schedule, ``check_finite``), and `eager_reason` says why.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import math
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from xdl import losses as _losses
from xdl.backend import SEEDS, get_backend, host_rng
from xdl.caller import keywords_of, warn_caller
from xdl.data import Augment, check_labels, training_batches
from xdl.data.validation import (check_bool, check_dev_pair, check_feature_names, check_int, check_list, counted,
                                 feature_names, per_example)
from xdl.files import json_number
from xdl.nn import Module
from xdl.nn.module import (PREDICTIONS, classes_of_logits, ends_in_probability, evaluating_here, input_features,
                           mode_here, restore_modes, training_modes)
from xdl.optim import SGD, Optimizer
from xdl.optim.optimizer import check_rate, rate_at, takes_arguments
from xdl.saved_fields import damaged
from xdl.serialization import check_stored_kinds, load, read_checkpoint
from xdl.tensor import Tensor, enable_grad, no_grad, refusing_options_elsewhere
from xdl.train import provenance
from xdl.train.callback import (Callback, callback_state, check_record, continues_run, ended_before_its_first_step,
                                key_not_str, load_callback_state)
from xdl.train.checkpoint import Checkpoint, check_resumes_into, save_resumable, stop_for_signal
from xdl.train.checkpoint_files import (check_checkpoint_kind, fewest_epochs, position, resume_path, upcoming,
                                        write_checkpoint)
from xdl.train.early_stopping import EarlyStopping
from xdl.train.fit_guards import (callbacks_held, callbacks_told_of_errors, check_callbacks_own, check_goes_on,
                                  check_monitored, check_same_examples, checkpoint_directories_held, FitClaim,
                                  FITTING, load_resumed, take_fit)
from xdl.train.captured import CapturedSteps, host_values, loop_capture
from xdl.train.divergence import (FIRST_EPOCH_HINT, FIRST_FORWARD_ADVICE, RATE_ADVICE, SMALLER_INIT, STANDARDIZE,
                                  START_FACTOR, cost_limit_of, diverged_cost, divergence_factor, first_forward_failure,
                                  first_step_advice, non_finite_state, overflow_unsaid, start_cost, state_advice,
                                  state_flags)
from xdl.train.history import History
from xdl.train.host_reads import read_together
from xdl.train.hooks import call_hook, check_callback, check_callbacks_fit, check_distinct_callbacks
from xdl.train.interrupt import Interrupted, SignalFlag
from xdl.train.plateau import ReduceLROnPlateau
from xdl.train.progress import progress_bar
from xdl.train.schedule_checks import check_schedule_fits, check_schedule_kind, warn_idle_end

REFRESH_STEPS = 20  # the progress bar shows the running cost every this many steps (one host sync)
PRECHECKED_RATES = 100_000  # rates checked before training, per kind (epoch schedule, step schedule)

# Keras's Model.fit options → the way here, said by `Trainer.fit`, `fit_many` and `ManyTrainer.fit` alike
# (`refuse_keras_options`): Python's "unexpected keyword argument 'validation_data'" did not say that the dev
# set is dev=, nor where the rest are. {run} is what takes a run's epochs and batch size (a Trainer, or each
# TrainConfig of a batch), {maker} what takes its callbacks, progress bar and seed
KERAS_FIT_OPTIONS = {
    "validation_data": "dev=(X_dev, y_dev)",
    "validation_split": "a dev set split off first: s = xdl.data.split(X, y), then fit on s.X_train, s.y_train with "
                        "dev=(s.X_dev, s.y_dev)",
    "epochs": "{run}(epochs=…), the run's total{train_on}",
    "batch_size": "{run}(batch_size=…)",
    "callbacks": "{maker}(callbacks=[…])",
    "verbose": "{maker}(progress=…) (True or False: a tqdm bar or none)",
    "shuffle": "not an option: each epoch is shuffled, from {maker}(seed=…)",
    "initial_epoch": "not an option: a fit goes on from where the run stopped (resume=… from a Checkpoint's "
                     "directory)",
    "class_weight": "class weights are not offered",
    "sample_weight": "example weights are not offered",
}

# how a Trainer trains on after a fit (Keras's second fit trains `epochs` more, or from initial_epoch on: here a fit
# trains the run's epochs not trained yet, and one after the last refuses)
TRAINS_ON = ("; to train on after a fit, raise it and fit again: trainer.epochs += 10 trains 10 more (Keras's "
             "fit(epochs=20, initial_epoch=10))")


def refuse_keras_options(options: dict, caller: str, own: str, run: str, maker: str, train_on: str = "",
                         elsewhere: dict | None = None) -> None:
    """Raise TypeError for the first of ``options``, keywords that ``caller`` does not take, saying where
    Keras's Model.fit option of that name is here (`KERAS_FIT_OPTIONS`, with ``run``, ``maker`` and ``train_on``,
    how a run trains on after a fit, for its fields), or else where ``elsewhere`` (keyword → where it is here)
    says it is, or else that it is none of ``caller``'s options (``own``)."""
    elsewhere = elsewhere or {}
    for name in options:
        if name in KERAS_FIT_OPTIONS:
            way = KERAS_FIT_OPTIONS[name].format(run=run, maker=maker, train_on=train_on)
        else:
            way = elsewhere.get(name, f"not an option of {caller} (its options: {own})")
        raise TypeError(f"{caller}() takes no option {name}=: {way}")


# options a Trainer's constructor does not take that an optimizer, Keras's fit or Lightning's Trainer do → where each
# is here (`refusing_options_elsewhere`): Python's "unexpected keyword argument 'max_grad_norm'" said neither whose
# it is nor how to give it
TRAINER_OPTIONS_ELSEWHERE = {
    "max_grad_norm": "it is the optimizer's: Adam(model, lr=1e-3, max_grad_norm=1.0) (or optimizer.max_grad_norm = "
                     "1.0) clips the gradients to that global 2-norm at each step",
    "global_clipnorm": "Keras's global_clipnorm is the optimizer's max_grad_norm here: Adam(model, lr=1e-3, "
                       "max_grad_norm=1.0)",
    "clipnorm": "Keras's clipnorm (each gradient clipped by its own norm) is not offered here; the optimizer's "
                "max_grad_norm clips them all by their one norm: Adam(model, lr=1e-3, max_grad_norm=1.0)",
    "gradient_clip_val": "Lightning's gradient_clip_val (its 'norm' algorithm) is the optimizer's max_grad_norm here: "
                         "Adam(model, lr=1e-3, max_grad_norm=1.0)",
    "lr": "it is the optimizer's: Adam(model, lr=1e-3) (a rate per epoch: Trainer(schedule=…))",
    "learning_rate": "Keras's learning_rate is the optimizer's lr here: Adam(model, lr=1e-3) (a rate per epoch: "
                     "Trainer(schedule=…))",
    "weight_decay": "it is the optimizer's: AdamW(model, lr=1e-3, weight_decay=0.01) (Trainer(l2=λ) adds the "
                    "penalty λ/(2m)·Σ‖W‖² to the cost instead)",
    "validation_data": "the dev set is fit's: trainer.fit(X, y, dev=(X_dev, y_dev))",
    "validation_split": "split a dev set off first: s = xdl.data.split(X, y), then trainer.fit(s.X_train, s.y_train, "
                        "dev=(s.X_dev, s.y_dev))",
    "verbose": "Keras's verbose is progress=… here (True or False: a tqdm bar or none)",
    "shuffle": "not an option: each epoch is shuffled, from seed=…",
    "max_epochs": "Lightning's max_epochs is Trainer(epochs=…) here, the run's total",  # (also said by fit: not fit's)
    "device": "the Trainer trains where the model is: model.to('cuda') (or build it under xdl.use('cuda')), then "
              "make the optimizer",
    "metrics": "not an option: the history records train_cost, dev_cost and, where the loss classifies, "
               "train_accuracy and dev_accuracy each epoch; a Callback's on_epoch_end adds another to the record "
               "(a column of the history), and trainer.evaluate(X, y) gives cost and accuracy",
    # fit's own (`FIT_OPTIONS`)
    "dev": "it is fit's: trainer.fit(X, y, dev=(X_dev, y_dev))",
    "resume": "it is fit's: trainer.fit(X, y, resume=directory) (a Checkpoint's directory, or its checkpoint file)",
    # Lightning's fit option (said by fit too: not in Keras's table)
    "ckpt_path": "Lightning's ckpt_path is fit's resume here: trainer.fit(X, y, resume=directory) (a Checkpoint's "
                 "directory, or its checkpoint file)",
    # Keras's fit options that are no constructor's keyword (fit says them from `KERAS_FIT_OPTIONS`)
    "initial_epoch": "Keras's fit option, and not one here: a fit goes on from where the run stopped "
                     "(trainer.fit(X, y, resume=directory) from a Checkpoint's directory)",
    "class_weight": "Keras's fit option; class weights are not offered here",
    "sample_weight": "Keras's fit option; example weights are not offered here",
    # a TrainConfig's, scikit-learn's MLPClassifier's (xdl.sklearn's): early stopping and the plateau are callbacks
    "patience": "early stopping is a callback: Trainer(callbacks=[EarlyStopping(patience=…)]) (xdl.train's; it "
                "watches the dev cost: fit(X, y, dev=…))",
    "early_stopping": "early stopping is a callback: Trainer(callbacks=[EarlyStopping(patience=…)]) (xdl.train's; "
                      "it watches the dev cost: fit(X, y, dev=…))",
    # (scikit-learn stops once more than n_iter_no_change epochs have not improved: patience counts them to it)
    "n_iter_no_change": "scikit-learn's n_iter_no_change is EarlyStopping's patience, one more, here: "
                        "Trainer(callbacks=[EarlyStopping(patience=n_iter_no_change + 1)]) (xdl.train's; it watches "
                        "the dev cost: fit(X, y, dev=…))",
    "validation_fraction": "split a dev set off first: s = xdl.data.split(X, y), then trainer.fit(s.X_train, "
                           "s.y_train, dev=(s.X_dev, s.y_dev))",
    **dict.fromkeys(("plateau_patience", "plateau_factor"),
                    "lowering the rate on a plateau is a callback: Trainer(callbacks=[ReduceLROnPlateau("
                    "patience=plateau_patience, factor=plateau_factor)]) (xdl.train's)"),
    "max_iter": "scikit-learn's max_iter is epochs here: Trainer(epochs=max_iter)",
    "random_state": "scikit-learn's random_state is seed here: Trainer(seed=random_state)",
    "alpha": "scikit-learn's alpha is l2 here, the same λ (the penalty λ/(2m)·Σ‖W‖², m the batch size): "
             "Trainer(l2=alpha)",
}
# fit's keywords, said to be fit's by the constructor (above): a test checks them against fit's signature
FIT_OPTIONS = ("dev", "resume")


TARGET_SCALE = 100.0  # a regression's targets' root mean square above which, or below 1/which, a run is warned


def _check_target_scale(loss, y: np.ndarray) -> None:
    """A regression's targets far from unit scale, rms(y) = √(Σ y² / n) > `TARGET_SCALE` (prices of
    2e5, say) or, not all 0, < 1/`TARGET_SCALE` (quantities of 1e-6), warned of: the outputs start
    at about unit scale and a step moves them by about the rate, so such a run ends far from its
    targets — its cost barely fallen, or fallen to a number that looks small beside 1 and is
    orders of magnitude above the targets' spread — saying nothing."""
    if not (isinstance(loss, _losses.Loss) and loss.predicts == "values"):
        return
    rms = math.sqrt(float(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0
    if rms > TARGET_SCALE or 0 < rms < 1 / TARGET_SCALE:
        warn_caller(f"y: {type(loss).__name__}'s targets are far from unit scale (root mean square {rms:.3g}), "
                    "the scale a network's outputs start at and its steps are sized for: standardize them — "
                    "s = xdl.data.Standardizer().fit(y.reshape(len(y), -1)), train on s.transform(...) and "
                    "read predictions through s.inverse_transform(model.predict(X).reshape(len(X), -1)) "
                    "(scikit-learn's TransformedTargetRegressor)")


def _augmented(augment, Xb: np.ndarray, rng, epoch: int, step: int, backend) -> np.ndarray:
    """``augment(Xb, rng)``, checked: an array (the host's, or ``backend``'s) of the batch's shape,
    finite (a NaN it made would be called a divergence, and the learning rate blamed)."""
    out = augment(Xb, rng)
    if not (isinstance(out, np.ndarray) or backend.owns(out)):
        raise TypeError(f"augment returned a {type(out).__name__} for the batch of epoch {epoch + 1}, step "
                        f"{step + 1}: it must return an array of the batch's shape {Xb.shape}")
    if out.shape != Xb.shape:
        raise ValueError(f"augment returned shape {out.shape} for a batch of shape {Xb.shape} (epoch {epoch + 1}, "
                         f"step {step + 1}): it must return the batch's shape")
    if out.dtype.kind not in "biuf":  # (objects or strings failed in isfinite, complex numbers in the step)
        raise TypeError(f"augment returned an array of dtype {out.dtype} for the batch of epoch {epoch + 1}, step "
                        f"{step + 1}: it must return real numbers (the batch's dtype is {Xb.dtype})")
    on_host = isinstance(out, np.ndarray)  # (a device batch is read only where a read is cheap: no sync per step)
    if (on_host or backend.host_sync_is_cheap) and not bool((np if on_host else backend.xp).isfinite(out).all()):
        raise ValueError(f"augment returned NaN or Inf in the batch of epoch {epoch + 1}, step {step + 1}")
    return out


def _checked_run_info(run_info) -> dict:
    """A copy of ``run_info``, a dict of JSON values (what a checkpoint stores), or an error naming
    it now — not at the first checkpoint, after an epoch trained."""
    if run_info is None:
        return {}
    if not isinstance(run_info, dict):
        raise TypeError(f"run_info must be a dict of JSON values or None, got {type(run_info).__name__}")
    try:
        json.dumps(run_info, default=json_number)
    except (TypeError, ValueError) as e:
        raise TypeError(f"run_info must hold JSON values (numbers, strings, lists, dicts, None): {e}") from None
    found = key_not_str(run_info)
    if found:  # (JSON writes it as a string: the checkpoint's run_info would hold "1" for 1)
        raise TypeError(f"run_info: its keys are written as JSON's, strings: {found[0]!r} ({type(found[0]).__name__}) "
                        "is not one")
    return dict(run_info)


def penalty_examples(batch_size: int, m: int) -> int:
    """The m of the L2 penalty λ/(2m)·Σ‖W‖² at every step of a run on m examples: the batch size (m
    when smaller). A last, smaller batch gets the penalty of the others: dividing by its own size
    (1 when m mod B = 1) made that step decay the weights B times as hard (to 0 at lr·λ = 1)."""
    return min(batch_size, m)


class Trainer:
    """Train ``model`` on ``loss`` with ``optimizer`` in mini-batches.

    ``l2``: λ of the penalty λ/(2m)·Σ‖W‖² added to each batch's cost (m = `penalty_examples`: the
    batch size, the same at every step), a number ≥ 0 and at most the model dtype's largest; 0, the
    default, adds none.
    ``l1``: λ₁ of the penalty λ₁/m·Σ|W| (`xdl.losses.l1`) added likewise, the same m, checked as
    ``l2`` (Keras's ``kernel_regularizer=l1(λ₁/m)``, whose penalty is not divided by m: it drives
    weights towards zero, `xdl.losses.l1`); its gradient is (λ₁/m)·sign(W), 0 at a weight of exactly 0.
    Both may be set (elastic net); 0, the default, adds none.
    ``batch_size``: the examples of each training step, a positive integer (64 by default; at least 2
    with batch norm in the model, checked at fit). Each epoch's shuffled set is cut into batches of
    this size, the last one holding what is left (a set smaller than it is one batch).
    ``epochs``: the run's epochs in all, a positive integer: `fit` trains those not trained yet
    (raise it for a later fit to train on).
    ``schedule``: epochs completed → learning rate, set at the start of each epoch (so the first
    epoch uses schedule(0), as every count in `xdl.optim.schedules`; a callback that sets the rate
    itself clears ``trainer.schedule``, as `Control` does — a checkpoint keeps it cleared —, or the next
    epoch sets it back, warning once); for a
    per-step schedule give the optimizer lr=schedule. Either is evaluated over the planned run before training (its first
    `PRECHECKED_RATES` epochs or steps, so a run of 10⁹ epochs starts at once): a rate outside the
    model dtype's positive range (0 or inf in the update) fails then, naming the epoch or step, and
    one beyond those when it comes. An epoch schedule beside a per-step one is refused.
    ``callbacks``: a list of `xdl.train.Callback` instances (`EarlyStopping`, `ReduceLROnPlateau` — refused
    beside an epoch schedule —, `Checkpoint`, `Control`, one of your own), each given once; they run by
    increasing ``order`` (as given where equal), their hooks called at the run's start and end, after each step
    and at each epoch's end (none by default).
    ``augment``: called as ``augment(X_batch, rng)`` on each training batch (e.g. `xdl.data.Augment`).
    ``seed``: the run's shuffles, dropout masks and augmentation are pure functions of it and of the
    position in the run; None (the default) draws it at the first fit from the generator `xdl.seed`
    seeds, as PyTorch's shuffling follows ``torch.manual_seed`` (``trainer.seed`` then says which),
    and a resume takes its checkpoint's (a drawn seed is no setting to compare).
    ``eval_train``: measure train cost/accuracy in evaluation mode on the whole training set after
    each epoch (comparable with dev, for bias/variance); False: the running averages of the epoch.
    ``progress``: a tqdm bar; None shows it only on a terminal or in a notebook (tqdm.auto's widget).
    ``run_info``: JSON-able facts about the run stored in its checkpoints (the ``xdl`` command
    keeps its options there, to check a ``--resume``).
    ``capture``: "auto" captures each batch shape's step as a CUDA graph where it can (cupy, and
    nothing in the step needs the host: `eager_reason`; a callback's change that makes it need the host,
    an lr set per step, is warned of at the next epoch's start); True insists (an error says why it
    cannot, at the fit's start or at that epoch's); False runs every step eagerly.

    Costs in the history are the data loss without the L2 and L1 terms, so train and dev compare alike.
    With batch norm in the model, a last batch of one example is merged into the batch before it
    (a warning says so once per fit).

    The settings after ``optimizer`` are keywords only: ``Trainer(model, loss, opt, 32)``, batch_size
    in a Keras habit (``fit(x, y, 32)``), was l2=32 and trained on under that penalty without a word.
    An option that lives elsewhere — the optimizer's ``lr``, ``max_grad_norm``, ``weight_decay``, fit's dev set
    (``dev``, Keras's ``validation_data``), Lightning's ``max_epochs``, a TrainConfig's or scikit-learn's early
    stopping (``patience``, ``early_stopping``: a callback) — is refused saying where (`TRAINER_OPTIONS_ELSEWHERE`).
    """

    l1 = 0.0  # (a Trainer pickled before l1 was an option trains without it, as it did)

    @refusing_options_elsewhere(TRAINER_OPTIONS_ELSEWHERE)
    def __init__(self, model, loss, optimizer, *, l2: float = 0.0, batch_size: int = 64, epochs: int = 10,
                 schedule=None, callbacks=(), augment=None, seed: int | None = None, eval_train: bool = True,
                 progress: bool | None = None, run_info: dict | None = None, capture="auto", l1: float = 0.0):
        _check_parts(model, loss, optimizer)
        check_int(batch_size, "batch_size")
        check_int(epochs, "epochs")
        if seed is not None:
            check_int(seed, "seed", low=0, high=SEEDS - 1, expected="an integer in [0, 2**64) or None")
        for name, lambd in (("l2", l2), ("l1", l1)):
            _losses.check_penalty(lambd, name, model.dtype)
        check_schedule_kind(schedule)
        predicts = getattr(loss, "predicts", None)
        # (xdl.save would refuse it, after the run; a str first: an array's `in` was NumPy's "truth value")
        if predicts is not None and (not isinstance(predicts, str) or predicts not in PREDICTIONS):
            raise ValueError(f"loss.predicts must be one of {PREDICTIONS} (what model.predict then gives) or None, "
                             f"got {predicts!r}")
        if not isinstance(loss, _losses.Loss) and predicts is None:  # what predict will give, said before the run
            warn_caller(f"loss: {getattr(loss, '__name__', type(loss).__name__)} says nothing of what the model "
                        "predicts, so model.predict will give classes (each row's argmax); set its predicts to "
                        "'values' (a regression) or 'labels' (yes/no per output), as xdl's losses say it")
        if isinstance(loss, _losses.Loss) and predicts in ("classes", "labels") and model.outputs_probabilities():
            last = model
            while last.last_submodule() is not None:  # (the innermost last layer: a model may end in a model)
                last = last.last_submodule()
            raise ValueError(f"model: it ends in {type(last).__name__}, so its outputs are probabilities, "
                             f"and {type(loss).__name__} takes logits (it applies the "
                             f"{'softmax' if loss.predicts == 'classes' else 'sigmoid'} itself, stably): remove the "
                             "last layer (predict_proba applies it)")
        check_schedule_fits(schedule, optimizer)
        if isinstance(callbacks, Callback):
            raise TypeError(f"callbacks must be a list of xdl.train.Callback instances, got one: callbacks=[{callbacks!r}]")
        callbacks = check_list(() if callbacks is None else callbacks, "callbacks", "xdl.train.Callback")  # (read once)
        # (a class is callable with two arguments too: augment=Augment was called as Augment(X_batch, rng) at the
        # first step, and refused there naming image_shape)
        if augment is not None and not (callable(augment) and not isinstance(augment, type)
                                        and takes_arguments(augment, 2)):
            raise TypeError(f"augment must be a callable (X_batch, rng) -> X_batch, e.g. "
                            f"xdl.data.Augment((8, 8), shift=1), got {augment!r}")
        for cb in callbacks:
            check_callback(cb)
        check_distinct_callbacks(callbacks)
        check_bool(eval_train, "eval_train")
        check_bool(progress, "progress", allow_none=True)  # (a string "no" would be a truth value: a bar)
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self._network = model  # what the steps run on their inputs (`Module.network_input`, set by fit)
        self.l2, self.batch_size, self.epochs, self._schedule = float(l2), int(batch_size), int(epochs), schedule
        self.l1 = float(l1)
        self._given_schedule = schedule  # what the run was made with (a checkpoint records it)
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)
        self.run_info = _checked_run_info(run_info)
        self._captured = CapturedSteps(capture, model.backend)  # the graphs of the captured steps
        self._eager_reason_said = None  # why the last epoch's steps ran eagerly, None if captured: said by the
        # fit's log line (`eager_reason`), and at an epoch's start where a callback's change made them eager
        self._seed_drawn = seed is None  # drawn at the first fit (`_take_seed`), or a resume's checkpoint's
        self.augment, self.eval_train, self.progress = augment, bool(eval_train), progress
        self.seed = None if seed is None else int(seed)
        self._settings = [dict(g.settings) for g in optimizer.groups]  # as given: a schedule changes lr later
        self.history = History()
        self.epoch = 0  # epochs completed
        self.step = 0  # steps completed in the current epoch (non-zero only in a mid-epoch checkpoint)
        self.stop_training = False
        self._step_hooks = []  # the callbacks whose on_step_end a fit calls (`fit`)
        self._modes = []  # each module's mode flag in a fit's steps (`fit`)
        self.resumed = False
        self.last_checkpoint: Path | None = None  # the last good state written by a Checkpoint callback
        self.last_checkpoint_at: tuple[int, int] | None = None  # its (epochs completed, steps into the next)
        self.best_checkpoint: Path | None = None  # the best epoch's state, by the Checkpoint's monitor
        self._partial = None  # the current epoch's progress: step costs, correct count, seconds
        self._so_far = None  # within an epoch's steps: its progress as a `_partial` (`_train_epoch`)
        self._mid_step = False  # inside an epoch that no record or stop has closed (a second Ctrl-C, an error)
        self._provenance_record = None  # what checkpoints of this fit record (provenance.record)
        self._cost_limit = None  # the train cost above which this fit has diverged (`cost_limit`), set by fit
        self._start_cost = None  # where the run started (`start_cost`), known from its first epoch's end
        self._measured_on = None  # the data digests of the last fit (`_digests`), where a callback keeps a best
        self._one_hot_rows = {}  # `_check`'s name -> `_OneHotRows`, where its one-hot label rows became indices
        self.data_changed = frozenset()  # the metrics this fit measures on other data than the one before (`_changed`)

    def __repr__(self) -> str:
        """What a notebook cell ending with the trainer shows: its parts, the settings given that are
        not the defaults (scikit-learn's estimators print so), and how far it has trained —
        ``Trainer(model=Sequential(2,410 parameters), loss=SoftmaxCrossEntropy(), optimizer=Adam(…),
        batch_size=64, epochs=10; 3 of 10 epochs trained)``."""
        size = sum(p.size for p in self.model.parameters())
        parts = [f"model={type(self.model).__name__}({size:,} parameters)", f"loss={self.loss!r}",
                 f"optimizer={self.optimizer!r}", f"batch_size={self.batch_size}", f"epochs={self.epochs}"]
        given = {"l2": self.l2, "l1": self.l1, "schedule": self._given_schedule, "callbacks": self.callbacks or None,
                 "augment": self.augment, "seed": None if self._seed_drawn else self.seed,
                 "eval_train": self.eval_train, "progress": self.progress, "capture": self._captured.capture}
        defaults = {name: p.default for name, p in inspect.signature(Trainer.__init__).parameters.items()}
        defaults["callbacks"] = None
        parts += [f"{name}={value!r}" for name, value in given.items() if value != defaults[name]]
        return f"Trainer({', '.join(parts)}; {self.epoch} of {self.epochs} epochs trained)"

    @property
    def start_cost(self) -> float | None:
        """Where the run started (`xdl.train.divergence.start_cost`: at most its first step's cost, at
        the initial weights), known from its first epoch's end (a resume's from its checkpoint); None before."""
        return self.__dict__.get("_start_cost")  # (a trainer pickled before starts were kept: None)

    @property
    def schedule(self):
        """The epoch schedule (epochs completed → learning rate) that sets the rate at each epoch's
        start, or None."""
        return self.__dict__.get("_schedule", self.__dict__.get("schedule"))  # (a trainer pickled before: its own)

    @schedule.setter
    def schedule(self, schedule) -> None:
        """Set between fits or by a callback (None: the rate is the optimizer's, as `Control` sets it),
        checked as the constructor checks it: one set beside a per-step lr replaced that schedule for
        good at the next epoch's start, one set over groups with rates of their own set them all alike,
        a maker (``schedules.exponential``) said "lr0 must be > 0, got 0", all unsaid or misnamed."""
        check_schedule_kind(schedule)
        check_schedule_fits(schedule, self.optimizer)
        self.__dict__.pop("schedule", None)
        self._schedule = schedule

    def _take_seed(self) -> None:
        """A seed to be drawn (none given, and no checkpoint's taken: `load_checkpoint`): the next
        draw of `xdl.seed`'s generator."""
        if self.seed is None:
            self.seed = int(host_rng().integers(SEEDS, dtype=np.uint64))

    # -- inputs -------------------------------------------------------------------------------
    @property
    def classification(self) -> bool:
        """Whether the loss trains a classifier, whose accuracy is measured (`Loss.predicts`)."""
        return getattr(self.loss, "predicts", None) in ("classes", "labels")

    @property
    def _each_output(self) -> bool:
        """Whether each output is a yes/no label of its own (binary cross-entropy), for the accuracy."""
        return getattr(self.loss, "predicts", None) == "labels"

    def _check(self, X, y, name: str = ""):
        """X and y as host arrays for the model: X checked and flattened to (m, features)
        (`Module.checked_input`; not yet the network's inputs, made by fit), y checked and,
        for an xdl loss, shaped for the outputs once (`Loss.prepare`), so the steps call
        `Loss.compute` unchecked — a bad label is named now, not at its batch. Integer X stays
        integers (``cast=False``): `network_data` makes the network's float inputs of it once — cast
        here first, uint8 pixels took 8× their size in fit and evaluate, not 4×."""
        given = X  # (m, H, W) images, flattened next: `Augment.check` compares (H, W)
        X = self.model.checked_input(X, f"X{name}", input_features(self.model), cast=False)
        given = np.shape(given) if isinstance(given, list | tuple) else getattr(given, "shape", None)  # (checked)
        if len(X) == 0:
            raise ValueError(f"X{name} has no examples")
        if y is None:
            raise TypeError(f"y{name} is None; the labels (or targets) of X{name} are needed")  # (fit's or evaluate's)
        if isinstance(self.augment, Augment):  # images of its shape: a mismatch named now, not at a batch
            self.augment.check(tuple(given[1:]) if given is not None and len(given) > 2 else X.shape[1], f"X{name}",
                               "augment")
        shape = (len(X), *self._output_shape(X))
        if isinstance(self.loss, _losses.SoftmaxCrossEntropy):  # class indices, in the checks' own words
            # the model's classes, its outputs: fewer than 2 the loss refuses below, whatever the labels (checked
            # against 2 here, labels of 3 classes were "outside the model's 2 classes" of a one-output model)
            n_out = shape[1] if len(shape) == 2 and shape[1] >= 2 else None
            y = check_labels(y, len(X), f"y{name}", n_classes=n_out, x_name=f"X{name}")
        else:
            # (a generator was "a single value array(<generator …>)", a sparse column not named: as check_labels)
            y = per_example(y, f"y{name}", f"an array of one target per example of X{name}")
            if len(y) != len(X):
                raise ValueError(f"X{name} has {counted(len(X), 'example')} but y{name} has {len(y)} "
                                 "(they must have the same length)")
        if isinstance(self.loss, _losses.Loss):
            rows = y if y.ndim == 2 else None
            try:
                y = self.loss.prepare(y, shape, get_backend("numpy"), self.model.dtype)
            except (TypeError, ValueError) as e:
                raise type(e)(f"y{name}: {e}") from None
            # exact one-hot rows come back as class indices (SoftmaxCrossEntropy's fused loss takes them): their
            # digest is still the rows' (`_digests`), as a checkpoint of a run given them recorded it
            self.__dict__.setdefault("_one_hot_rows", {})[name] = \
                _OneHotRows.of(rows, self.model.dtype) if rows is not None and y.ndim == 1 else None
        else:  # a function of (outputs, labels): targets with the outputs' shape, as Keras lines y_true up with
            if y.shape != shape and y.size == math.prod(shape):  # y_pred — (m,) against (m, 1) would broadcast
                y = y.reshape(shape)  # to (m, m) in the function's arithmetic, silently
            self._check_loss_value(X, y)
        return X, y

    @no_grad()
    def _check_loss_value(self, X, y) -> None:
        """A loss function of one's own gives one number for a batch (its mean over it): one made
        per example (Keras's per-sample form), or a float, is named now — found at the first step's
        backward pass, it would leave the run inside a step."""
        with evaluating_here():  # the labels on the model's backend, as a step gives them (a host array beside a
            # device tensor is refused: on the GPU every function of one's own failed here, before the run)
            value = self.loss(self.model(X[:2].astype(self.model.dtype)), self.model.backend.asarray(y[:2]))
        if not (isinstance(value, Tensor) and value.size == 1):
            got = f"a tensor of shape {value.shape}" if isinstance(value, Tensor) else f"a {type(value).__name__}"
            raise TypeError(f"loss: {getattr(self.loss, '__name__', type(self.loss).__name__)}(outputs, labels) "
                            f"returned {got}; it must return the batch's cost as a one-element xdl tensor (the mean "
                            "over the batch, as xdl's losses and Keras's reductions give)")

    @no_grad()
    def _output_shape(self, X) -> tuple:
        """The shape of the model's output for one example, from a forward pass of X's first one in
        evaluation mode (which changes nothing): what the targets are shaped for. Its values are not
        read: an overflow at the starting weights is the first step's check's to say (`overflow_unsaid`)."""
        with evaluating_here(), overflow_unsaid():
            out = self.model(X[:1].astype(self.model.dtype))
        if isinstance(self.loss, _losses.Loss) and self.classification and ends_in_probability(out):
            raise ValueError(f"model: its forward ends in a {out.made_by.__name__.lower()}, so its outputs are "
                             f"probabilities, and {type(self.loss).__name__} takes logits (it applies the "
                             f"{'softmax' if self.loss.predicts == 'classes' else 'sigmoid'} itself, stably): leave "
                             "it out of the forward (predict_proba applies it)")
        return tuple(out.shape[1:])

    @property
    def _step_loss(self):
        """The per-batch loss: `Loss.compute` (`_check` prepared the targets), else the loss."""
        return self.loss.compute if isinstance(self.loss, _losses.Loss) else self.loss

    capture = loop_capture

    def eager_reason(self) -> str | None:
        """Why this trainer's steps run eagerly, or None when they are captured as CUDA graphs."""
        reason = self._captured.eager_reason(self.model.backend, self.augment is not None)
        if reason is not None:
            return reason
        if not isinstance(self.optimizer, Optimizer):
            return f"the optimizer ({type(self.optimizer).__name__}) is not an xdl.optim.Optimizer"
        if any(callable(g.settings["lr"]) for g in self.optimizer.groups):
            return "the optimizer's lr is a per-step schedule computed on the host"
        if self.optimizer.check_finite:
            return "check_finite reads every gradient on the host"
        return None

    def _batches(self, m: int) -> list[tuple[int, int]]:
        """The batches of an epoch: a last one smaller than the model can train on is merged."""
        min_size = max(module.min_batch for _, module in self.model.named_modules())
        if self.batch_size < min_size:
            raise ValueError(f"batch_size={self.batch_size} is smaller than the model can train on: batch norm "
                             f"needs batches of at least {min_size}")
        return training_batches(m, self.batch_size, min_size)

    def _check_rates(self, steps: int) -> None:
        """Every learning rate the planned run will use is within the model dtype's positive range
        (`check_rate`; checked now, up to `PRECHECKED_RATES` of each kind; a later bad one when it comes)."""
        for epoch in range(min(self.epochs, PRECHECKED_RATES)) if self.schedule is not None else ():
            what = f"schedule({epoch}) (the rate of epoch {epoch + 1})"
            check_rate(rate_at(self.schedule, epoch, what), what, self.model.dtype, decayed=epoch > 0)
        check_schedule_fits(self.schedule, self.optimizer)  # (set since it was made: opt.lr = a per-step schedule)
        for g, group in enumerate(self.optimizer.groups):
            lr = group.settings["lr"]
            if callable(lr):
                for t in self._run_counts(steps)[:PRECHECKED_RATES]:
                    what = f"the optimizer's lr schedule at step {t} (group {g})"
                    check_rate(rate_at(lr, t, what), what, self.model.dtype, decayed=t > 0)
            elif self.schedule is None:  # a constant rate (an epoch schedule replaces it)
                check_rate(lr, f"the optimizer's lr (group {g})", self.model.dtype)

    def _warn_idle_ends(self, steps: int) -> None:
        """`warn_idle_end` for the epoch schedule and each group's per-step one, as the run will use
        them from where it stands — read after a resume's checkpoint is loaded and its callbacks' on_train_begin
        ran: before, a run whose schedule `Control` had cleared (its rate set by hand) was told its
        schedule's last epochs train nothing, and a resumed run counted them from its first epoch.
        Rates checked by `_check_rates` (within `PRECHECKED_RATES`: a longer run is not read)."""
        if self.schedule is not None and self.epochs <= PRECHECKED_RATES:
            rates = [rate_at(self.schedule, epoch, f"schedule({epoch})") for epoch in range(self.epochs)]
            warn_idle_end(rates, self.epoch, "epoch", "the schedule")
        for g, group in enumerate(self.optimizer.groups):
            lr = group.settings["lr"]
            if callable(lr) and self.epochs * steps <= PRECHECKED_RATES:
                counts = self._run_counts(steps)
                rates = [rate_at(lr, t, f"the optimizer's lr schedule at step {t} (group {g})") for t in counts]
                at = f" (read at the optimizer's step count, {counts.start} at the run's first step)" \
                    if counts.start else ""
                warn_idle_end(rates, self.optimizer.t - counts.start, "step", f"group {g}'s per-step lr schedule{at}")

    def _run_counts(self, steps: int) -> range:
        """The optimizer's step counts at this run's steps (``epochs`` of ``steps``), which its per-step
        schedules are read at: the steps still to come count on from the optimizer's count now, the
        steps done before them are at most as many as it took. The first is 0 for a new optimizer, more
        for one that stepped before the run (a loop of one's own, another Trainer's fit, an earlier fit
        of another batch size). (Read from 0, a run on a used optimizer was checked over counts it never
        reaches: a cosine past its end trained nothing, unsaid.)"""
        t = self.optimizer.t
        done = min(t, self.epoch * steps + self.step)
        return range(t - done, t + (self.epochs - self.epoch) * steps - self.step)

    # -- the loop -----------------------------------------------------------------------------
    def fit(self, X, y, dev=None, resume=None, **keras_options) -> History:
        """Train for the remaining epochs of the run and return the `History` (the run goes on
        from where a previous ``fit`` stopped — Ctrl-C, early stopping, a ``stop`` — on the same
        trainer; one whose epochs are all trained refuses: raise ``epochs``, or make a new Trainer).
        The history is the run's, one object over its fits (``trainer.history``: every epoch so far),
        where Keras returns one per fit: ``copy.deepcopy`` it to keep one fit's as it was.

        ``dev``: ``(X_dev, y_dev)`` for dev metrics (needed by EarlyStopping on dev_cost).
        ``resume``: the directory a `Checkpoint` wrote to (or its checkpoint file): continue that run
        (it must have been made with the same model, loss, optimizer, settings, seed, data and
        callback types; what differs is named before anything changes). A fit that starts a run is
        refused where its `Checkpoint` would write over an unfinished run's checkpoint. A checkpoint
        of a run that was over — its epochs trained, or stopped early by `EarlyStopping` — trains
        nothing and ends as the run ended (a run killed after its end), warning so; a run a control
        file or a callback of your own stopped goes on (unless the callback stops it again: only
        `EarlyStopping`'s stop is part of the run's state).

        Ctrl-C or SIGTERM finishes the current step, writes a resumable checkpoint (with a
        `Checkpoint` callback) and raises `xdl.train.Interrupted`, which says where it is — at or after the
        run's last step, once the run has ended as it would (``on_train_end``; ``Interrupted.over``); a second
        one stops it inside a step, after which only a resume from the checkpoint goes on. (Python
        delivers signals to the main thread: a fit in another thread runs on through them; stop it
        with a callback's ``trainer.stop_training = True``, or a `Control` file's ``stop = true``.) A
        callback's stop from ``on_step_end`` leaves the epoch mid-way as Ctrl-C does, without raising.
        Each `Checkpoint` directory is this fit's alone while it runs (`checkpoint_directories_held`),
        and the trainer too: a second fit of it while one runs (another thread's) is refused (`take_fit`).
        A fit records its steps' gradients whatever block it is called in (a caller's ``xdl.no_grad()``: its
        backward failed, "on a tensor that does not require grad").
        A Keras option (``validation_data=``, ``epochs=``, …) is refused, saying where it is here
        (`KERAS_FIT_OPTIONS`), as is one of the constructor's (``l2=``) and one the constructor would refuse
        saying where (``lr=``, ``max_grad_norm=``, …: `FIT_OPTIONS_ELSEWHERE`).
        """
        # (before any work: Python's own message named the keyword only)
        refuse_keras_options(keras_options, "Trainer.fit", ", ".join(FIT_OPTIONS), run="Trainer", maker="Trainer",
                             train_on=TRAINS_ON, elsewhere=FIT_OPTIONS_ELSEWHERE)
        claim = FitClaim(self)
        try:
            take_fit(claim, "trainer", "Trainer")
            with enable_grad():
                return self._fit(X, y, dev, resume)
        finally:
            FITTING.discard(claim)  # (first, one call: no interrupt between the fit's end and it, `FitClaim`)

    def _fit(self, X, y, dev, resume) -> History:
        """`fit`, the trainer's only fit running (`take_fit`)."""
        checkpoint = None if resume is None else resume_path(resume)
        for name in ("epochs", "batch_size"):  # set by hand since (a later fit trains on by raising trainer.epochs)
            check_int(getattr(self, name), f"fit: trainer.{name}")
        reason = self.eager_reason()
        self._eager_reason_said = reason  # (the run's log line says it: `xdl train`'s "steps:")
        if self.capture is True and reason is not None:
            raise ValueError(f"capture=True, but this run's steps cannot be captured: {reason}")
        # a model converted or moved since the Trainer was made (model.astype between fits): refused here, before
        # the callbacks' on_train_begin and the modes change, not by the first step's zero_grad
        self.optimizer.check_placed()
        self.optimizer.check_trainable(self.model)
        if resume is None:
            check_goes_on(self, "trainer", "Trainer")
        continuing = resume is None and continues_run(self)  # (the callbacks' state goes on: this run's, checked)
        check_callbacks_own(self, continuing)
        if resume is None and self.epoch >= self.epochs:  # it would return at once, training nothing
            raise ValueError(f"fit: this trainer has trained all its {counted(self.epochs, 'epoch')}; fit trains the "
                             "remaining epochs of its run: raise trainer.epochs to train on, or make a new Trainer")
        bad = non_finite_state(self.model) if resume is None else []  # (a resume loads its checkpoint's state)
        if bad:  # the first step's cost would be NaN, and called a divergence of this run's learning rate
            raise ValueError(f"fit: the model holds NaN or Inf in {', '.join(bad[:3])}{', …' if len(bad) > 3 else ''} "
                             "before training (a diverged run's state, or weights drawn beyond the dtype's range?): "
                             "load a good state (model.load_state_dict, xdl.load) or build the model again")
        names = feature_names(X)  # (a data frame's columns: the model's from this fit, `check_feature_names`)
        X, y = self._check(X, y)
        self._cost_limit = cost_limit_of(self.loss, self._output_shape(X[:1]))
        _check_target_scale(self.loss, y)
        if resume is None:
            check_same_examples(self, len(X), "trainer", "Trainer")
        if dev is not None:
            dev = check_dev_pair(dev)
            # X's columns, which the model takes only once the run begins: a dev frame of them in another
            # order was read by position on a first fit (its costs, early stopping and best epoch of no model)
            check_feature_names(dev[0], names, "X_dev")
            dev = self._check(*dev, name="_dev")
        check_monitored(self.callbacks, dev, accuracy=self.classification)
        check_callbacks_fit(self)  # (ReduceLROnPlateau's: a rate it lowers that an epoch schedule would set back)
        bounds = self._batches(len(X))
        self._penalty_m = penalty_examples(self.batch_size, len(X))
        self._check_rates(len(bounds))
        if resume is None:  # (a resume's: once its checkpoint says which schedule goes on, and where)
            self._warn_idle_ends(len(bounds))
        checkpointing = any(isinstance(cb, Checkpoint) for cb in self.callbacks)
        if resume is None:  # (every check passed: the generator moves for a fit that runs)
            self._take_seed()
        # a callback of one's own may write checkpoints (trainer.save_checkpoint, from a step's hook every n steps):
        # its data are digested for them as for a Checkpoint's (`save_checkpoint` records the run with them) —
        # without, a resume from one was unchecked (another data set taken)
        own = any(not type(cb).__module__.startswith("xdl.") for cb in self.callbacks)
        compared = checkpointing or own or any(isinstance(cb, EarlyStopping | ReduceLROnPlateau)
                                               for cb in self.callbacks)  # (bests kept)
        data = _digests(self, X, y, dev) if resume is not None or compared else None
        # a group added since the trainer was made (add_param_group between fits: gradual unfreezing) is given
        # with the settings it has now, as a trainer made with it would read them: recorded as made, the run's
        # checkpoints held its parameters but not its settings, and no optimizer could resume them
        self._note_added_groups()
        self._groups_at_fit = len(self.optimizer.groups)  # (one a callback adds: checked at the next epoch's start)
        self._provenance_record = provenance.record(self, data) if resume is not None or checkpointing else None
        flags = self.stop_training, self.resumed  # (put back if the resume is refused)
        self.stop_training, self.resumed = False, resume is not None
        self.data_changed = _changed(getattr(self, "_measured_on", None), data) if resume is None else frozenset()
        # (the modules' own modes, which the fit sets: a fit called within model(x, training=False), say,
        # would train, and capture its step, in evaluation mode)
        with checkpoint_directories_held(self.callbacks), callbacks_held(self, continuing) as told, \
                mode_here(None), self._measured_on_kept_if_no_step(), \
                callbacks_told_of_errors(self) as begun:  # (a resume's reads included)
            if resume is not None:
                load_resumed(self, checkpoint, flags, told)
                self._take_seed()  # (a checkpoint of an xdl that kept no seed)
            X, dev, self._network = network_data(self.model, X, dev, on_host=self.augment is None)
            if getattr(self.loss, "predicts", None) is not None:  # what model.predict gives: classes, labels, values
                self.model.predicts = self.loss.predicts
            # a frame's columns, which predict's frames must then have, in this order (an array's fit: none, as
            # scikit-learn's fit forgets them)
            self.model.feature_names_in_ = names
            # a name a stop before left (a fit's, the checkpoint's) is none of this fit's: kept, a stop asked now
            # was named as that one (the resume's warning below says it, for a run that was over)
            ended_by, self.history.stopped_by = self.history.stopped_by, None
            rates_before = [g.settings["lr"] for g in self.optimizer.groups]
            for cb in self.callbacks:
                call_hook(self, cb, "on_train_begin", where=f" before {upcoming(self.epoch, self.step)}")
                told.append(cb)  # (its state is this fit's from here: `callbacks_held`)
                begun.append(cb)  # told of an error from here on: a later one's on_train_begin, or on_train_end's
            _check_rate_kept_at_begin(self, rates_before)
            # the data this run's bests are measured on from here: a fit refused before (another run's checkpoint in
            # a Checkpoint's directory, a callback's error) measured nothing, and a later fit on the data before it
            # was taken for one on other data, its early stopping's and checkpoint's bests started afresh
            self._measured_on = data
            if resume is not None:
                self._check_schedules_set()
                self._check_module_settings()
                self._warn_idle_ends(len(bounds))
            # a run killed after its end (its checkpoint's stop or epochs; not a stop asked for on resuming)
            if resume is not None and (self.epoch >= self.epochs or self.stop_training and self.history.stopped_epoch):
                why = self.history.stopped_by or ended_by or f"its {counted(self.epoch, 'epoch')} trained"
                more = "patience" if self.stop_training and self.history.stopped_epoch else "epochs"  # (early stopping's)
                warn_caller(f"resume: the checkpoint's run is over ({why}): nothing to train; it ends as it ended — "
                            f"raise {more} to train on")
            # this fit's stop, if any, is the one to report: one from before (a checkpoint's, a first
            # fit's) is over once training goes on; a callback may stop it here already (a stop read on resuming)
            self.history.stopped_epoch = self.epoch if self.stop_training else None
            self.history.diverged = None  # (a divergence a fit before reported is over too: it trains from a good state)
            # what its train figures are: `diagnose` read running averages in training mode (dropout on) as
            # the model's training error, and told a model that overfits to train a bigger network
            self.history.train_running = not self.eval_train
            if not self.stop_training:
                self.history.stopped_by = None
            if self.augment is None:  # batches are then cut on the device: one transfer, not one per batch
                backend = self.model.backend
                X, y = backend.asarray(X), backend.asarray(y)
                dev = (backend.asarray(dev[0]), backend.asarray(dev[1])) if dev is not None else None
            bar = progress_bar(self.progress, total=(self.epochs - self.epoch) * len(bounds) - self.step)
            # (only callbacks that override the per-step hook are called at each step: it reads the cost)
            self._step_hooks = [cb for cb in self.callbacks if type(cb).on_step_end is not Callback.on_step_end]
            # the mode each module trains in (`training_modes`), put back at each epoch's start and after each
            # step's hooks (a callback's model.eval() undone)
            self._modes = training_modes(self.model)
            came = self._train(X, y, dev, bounds, bar)
            for cb in self.callbacks:
                cb.on_train_end(self)
        if came is not None:  # a signal once the run was over: it ended as it would, and stops its caller's loop
            # (raised outside the block: the callbacks had their on_train_end, not an error's on_exception after it)
            raise Interrupted(came, self.epoch + 1, self.step, self.last_checkpoint, over=True)
        return self.history

    @contextlib.contextmanager
    def _measured_on_kept_if_no_step(self):
        """Within a fit: one that ends before its first step (a callback's refusal, a frozen parameter
        refused at the epoch's start) leaves the data measured last as it was — as `EarlyStopping` and
        `Checkpoint` put their bests back then, which the next fit on the new data compared with."""
        before, position = getattr(self, "_measured_on", None), (self.epoch, self.step)  # (a Trainer pickled before)
        try:
            yield
        except BaseException:
            if ended_before_its_first_step(self, position):
                self._measured_on = before
            raise

    def _train(self, X, y, dev, bounds, bar) -> str | None:
        """The epochs of a fit, from its position until its last epoch or a stop; the name of a signal
        that came once the run was over (at or after its last step: its last epoch's, or the epoch's a
        stop ended), for `fit` to raise after the run's end — one before stops the run where it is
        (`stop_for_signal`)."""
        try:
            with SignalFlag() as signals:
                while self.epoch < self.epochs and not self.stop_training:
                    # (once an epoch: the epoch-end callbacks below run under the caller's settings)
                    with overflow_unsaid() as callers:
                        record = self._train_epoch(X, y, dev, bounds, bar, signals, callers)
                    if record is None:  # stopped mid-epoch by a step's hook: the epoch goes on at a later fit
                        self.history.stopped_epoch = self.epoch
                        break
                    self.history.append(record)
                    record = self.history.records[-1]  # what a callback adds to it is in the history
                    unsaved = []  # the Checkpoints that saved no stop: a later callback (its order) may stop
                    number = record["epoch"]
                    for cb in self.callbacks:
                        # stopped by one before (a Checkpoint's state records it), or not
                        self.history.stopped_epoch = record["epoch"] if self.stop_training else None
                        call_hook(self, cb, "on_epoch_end", record)
                        check_record(record, cb, number)  # before a later one (a Checkpoint) writes it
                        if isinstance(cb, Checkpoint) and not self.stop_training:
                            unsaved.append(cb)
                    self.history.stopped_epoch = record["epoch"] if self.stop_training else None
                    if self.stop_training:  # the run's last state, saved by each (with every=5, a stop at
                        for cb in unsaved:  # epoch 3 left only epoch 0's checkpoint to resume from)
                            cb.save_resumable(self)
                    self._mid_step = False  # the epoch is closed: its record taken and every callback run on it
                    bar.set_postfix(_postfix(record), refresh=False)
                    if signals.received and self.epoch < self.epochs and not self.stop_training:
                        stop_for_signal(self, signals.received)
                return signals.received  # (one in the last epoch was dropped: a loop over fits trained on)
        finally:
            bar.close()
            self.model.set_random_key(None)  # a loop of the user's own after fit draws fresh masks
            self._captured.clear()  # a next fit captures again
            self._so_far = None  # (no epoch's steps run now)

    def _train_epoch(self, X, y, dev, bounds, bar, signals, callers: dict) -> dict:
        """One epoch's steps and record, under `overflow_unsaid`; ``callers``: the NumPy settings it
        yielded, which the user's code run here (the augment, the step hooks) runs under."""
        backend, xp = self.model.backend, self.model.backend.xp
        e, steps = self.epoch, len(bounds)
        # a parameter a callback froze or unfroze: refused here, on the host (a captured step replays
        # without running the optimizer's own check in its step)
        self.optimizer.check_trainable(self.model)
        for name in ("l2", "l1"):  # a callback's trainer.l1 = None trained without it, unsaid, and -1 was refused
            # at each epoch, as losses' lambd at each call
            _losses.check_penalty(getattr(self, name), f"trainer.{name}", self.model.dtype)
        self._note_added_groups()  # (a callback's add_param_group at the last epoch's end)
        if self.schedule is not None and len(self.optimizer.groups) > getattr(self, "_groups_at_fit", 0):
            # a group a callback added (gradual unfreezing) at a rate of its own: the schedule set it to the
            # others' rate at this epoch's start, unsaid (the same group added between fits is refused)
            try:
                check_schedule_fits(self.schedule, self.optimizer)
            except ValueError as error:
                raise ValueError(f"epoch {e + 1}: a parameter group was added during the run; {error}") from None
        start = time.perf_counter()
        if self.schedule is not None:
            what = f"schedule({e}) (the rate of epoch {e + 1})"
            rate = check_rate(rate_at(self.schedule, e, what), what, self.model.dtype,
                              decayed=e > 0)  # beyond PRECHECKED_RATES too
            _check_rate_kept(self, e, rate)
            self.optimizer.lr = rate
            self._schedule_set = (self.schedule, rate)
        else:  # no schedule set this epoch's rate: one set again later is not compared with the rate it set before
            self._schedule_set = None  # it was cleared (a warning for a rate the callback meant)
        lr = self.optimizer.current_lr()
        restore_modes(self._modes)  # (before a captured step's settings are compared: the modes it replays)
        reason = self.eager_reason()
        if self._eager_reason_said is None and reason not in (None, self._captured.failure) and \
                self.capture is not False:  # (set off by a callback: as asked)
            # a callback changed the captured step since the epoch before (opt.lr = a per-step schedule at its end):
            # said once, as a capture that fails mid-epoch says it (the run's log line said the steps were captured);
            # refused under capture=True, as `fit` refuses it and as a step hook's change fails its capture (the
            # epochs after it ran eagerly, unsaid). Steps eager before (check_finite) are not said to be so anew.
            if self.capture is True:
                raise ValueError(f"epoch {e + 1}: capture=True, but this run's steps cannot be captured: {reason}")
            warn_caller(f"steps run eagerly from here on: {reason}")
        self._eager_reason_said, captured = reason, reason is None
        # each step's mean cost and the epoch's correct count (a multi-label example counts its share of right
        # labels), kept on the device; captured, the same arrays each epoch, which the steps' graphs write
        if captured:
            costs, correct = self._captured.totals(steps)
        else:
            costs, correct = xp.zeros(steps, dtype=np.float64), xp.zeros((), dtype=np.float64)
        seconds_before = 0.0
        if self._partial is not None:  # resuming mid-epoch
            costs[:self.step] = backend.asarray(np.asarray(self._partial["costs"], dtype=np.float64))
            correct += float(self._partial["correct"])
            seconds_before = float(self._partial["seconds"])
            lr = self._partial.get("lr", lr)  # the epoch's: the rate of its first step (a per-step schedule's too)
            self._partial = None
        # what `_epoch_so_far` reads (``costs`` and ``correct``: the arrays the steps write into, in place)
        self._so_far = {"costs": costs, "correct": correct, "seconds": seconds_before, "start": start, "lr": lr,
                        "examples": len(X)}
        order = np.random.default_rng([self.seed, e]).permutation(len(X))  # the shuffle of epoch e
        if not isinstance(X, np.ndarray):
            order = backend.asarray(order)
        checked = self.step
        if captured:  # the dropout key's step and the epoch's, counted on by each step on the device
            steps_done = self._captured.start_epoch(e * steps + self.step, self.step, (X, y), order, bounds)
            self.model.set_random_key(self.seed, 0, steps_done=steps_done)
            settings = self._replay_settings()
        # from the epoch's first step until its record (or a stop's `_partial`): an exception in between
        # leaves the run where no fit can go on exactly
        self._mid_step = True
        for step in range(self.step, steps):
            if captured and self._captured.failure is None:  # (its graph writes costs[step] and adds its hits)
                self._captured.epoch_step(self._train_step, bounds[step][1] - bounds[step][0],
                                          version=(self.optimizer.version, settings))
            else:
                idx = order[bounds[step][0]:bounds[step][1]]
                Xb, yb = X[idx], y[idx]
                if self.augment is not None:  # (batches cut on the host: the labels go to the device as the
                    # evaluation's do, or a loss met host labels beside device outputs, refused: MSE and any loss
                    # of one's own did not train with augmentation on the GPU)
                    with np.errstate(**callers):
                        Xb = _augmented(self.augment, Xb, np.random.default_rng([self.seed, e, step]), e, step,
                                        backend)
                    yb = backend.asarray(yb)
                self.model.set_random_key(self.seed, e * steps + step)
                cost, hits = self._train_step(Xb, yb)
                costs[step] = cost
                if hits is not None:
                    correct += hits
            self.step = step + 1
            bar.update(1)
            if backend.host_sync_is_cheap or self._step_hooks or step + 1 == steps or signals.received:
                read = self._check_costs(backend, costs, checked, step + 1)  # (steps checked..step, on the host)
                checked = step + 1
            if e == 0 and step == 0:
                self._check_first_forward()
            if self._step_hooks:
                # between two steps the step's key is no key, as after the epoch's steps: a copy of the model a
                # hook keeps (an EMA's start, the best so far) or a forward of its own in training mode drew
                # that step's masks at every call (the next step sets its key again; a captured one reads the
                # counter, given back after the hooks)
                self.model.set_random_key(None)
                try:
                    # (this step's cost as the check read it: with hooks it reads every step, and a second
                    # read of costs[step] was a second sync a step on a GPU)
                    with np.errstate(**callers):
                        self._step_end(float(read[-1]))
                    # a parameter a hook froze: refused now, before the next step's forward moves any state (the
                    # optimizer's own check came after it eagerly, and a replay runs none) — where a next step of
                    # this epoch runs: after its last, the epoch's record and checkpoints come first and the next
                    # epoch's start refuses it (a freeze after the run's last step trains nothing: fit ends)
                    if step + 1 < steps and not (self.stop_training or signals.received):
                        self.optimizer.check_trainable(self.model)
                except BaseException:
                    # the step is whole (its update applied, its cost checked): an error a hook raised leaves
                    # the run between two steps, as a stop does, and a later fit goes on from the next one
                    # (it was refused as one stopped inside a step, its epoch's steps lost)
                    self._partial, self._mid_step = self._epoch_so_far(), False
                    raise
                # what the epoch's start does for an epoch-end callback's change, done for a step hook's: its
                # model.eval() undone (the steps run in the fit's modes), and, captured, its change of what the
                # step reads on the host (a dropout rate, l2, a .data rebound) compared now — a
                # replay runs no Python, and went on with the old values until the epoch's end, a rebound .data
                # left out of the training and then written back over it
                restore_modes(self._modes)
                if captured:
                    self.model.set_random_key(self.seed, 0, steps_done=steps_done)
                    settings = self._replay_settings()
            if (signals.received or self.stop_training) and step + 1 < steps:  # the epoch left mid-way
                self._partial, self._so_far = self._epoch_so_far(), None
                self._mid_step = False
                if signals.received:
                    stop_for_signal(self, signals.received)
                save_resumable(self)
                return None
            if bar.disable is False and (step + 1) % REFRESH_STEPS == 0:
                bar.set_postfix(cost=f"{float(costs[step]):.4f}", refresh=False)
        # the last step's key is no key for what runs after the steps: a callback's copy of the model
        # (copy.deepcopy(trainer.model), kept as the best) or a forward of its own in training mode drew
        # that step's masks at every call, one fixed mask ever after (the next epoch sets its keys again)
        self.model.set_random_key(None)
        self._so_far = None  # (the steps are over: the record, not a `_partial`, holds the epoch from here)
        step_seconds = seconds_before + time.perf_counter() - start  # (the last step's cost check synced)
        # what the record and its checks need of the device, read in one transfer: each evaluation's sums, the
        # step costs (the first epoch's start; the running train cost), the hits, the state's finite flags
        train = self._evaluation_sums(X, y, captured=captured) if self.eval_train else {}
        dev_sums = self._evaluation_sums(*dev, captured=captured) if dev is not None else {}
        at_end = read_together(backend, costs=costs if e == 0 or not self.eval_train else None,
                               correct=None if self.eval_train else correct,
                               train_cost=train.get("cost"), train_correct=train.get("correct"),
                               dev_cost=dev_sums.get("cost"), dev_correct=dev_sums.get("correct"),
                               model=state_flags(self.model), optimizer=self.optimizer.state_flags())
        if e == 0:
            self._start_cost = start_cost(at_end["costs"], bounds)
            if self._cost_limit is not None and self._start_cost > self._cost_limit:  # it trains on: said once
                unscaled = self._network is self.model  # (no leading Standardize)
                causes = f"{'inputs far from unit scale or ' if unscaled else ''}a large initialization"
                advice = f"{STANDARDIZE + ' or ' if unscaled else ''}{SMALLER_INIT}"
                warn_caller(f"the run started at a cost of {self._start_cost:.3g}, above {divergence_factor()} × ln C "
                            f"(where a classifier starts) = {self._cost_limit:.3g}: {causes} — {advice}; "
                            f"it diverges only if its cost rises to {START_FACTOR} times where it started")
        record = {"epoch": e + 1}
        if self.eval_train:
            record.update(_prefixed("train", self._metrics(at_end["train_cost"], at_end["train_correct"], y)))
        else:
            sizes = np.array([b - a for a, b in bounds], dtype=np.float64)
            record["train_cost"] = float(at_end["costs"] @ sizes) / len(X)
            record["train_accuracy"] = float(at_end["correct"]) / len(X) if self.classification else None
        record.update(_prefixed("dev", self._metrics(at_end["dev_cost"], at_end["dev_correct"], dev[1]))
                      if dev is not None else {"dev_cost": None, "dev_accuracy": None})
        self._check_record(record, steps, at_end["model"], at_end["optimizer"])
        record["lr"] = lr
        record["seconds"] = seconds_before + time.perf_counter() - start
        record["step_seconds"] = step_seconds
        self.epoch, self.step = e + 1, 0  # (`_mid_step` until the callbacks have run on the record)
        return record

    def _replay_settings(self) -> tuple:
        """Before the next captured step, what a replay does not redo, done here: a .data rebound by a
        callback written back into the flat buffer the graph trains (zero_grad's write-back: the
        step's own runs only at its capture); and the settings the step was captured under, to be
        compared with the model's now (`host_settings`: a change captures the step again)."""
        self.optimizer.zero_grad()
        return self._captured.settings("step", self.model, self.l2, self.l1, self.optimizer,
                                       len(self.optimizer.groups), self.eval_train, self.loss, host_values(self.loss))

    def _epoch_so_far(self) -> dict:
        """The epoch's progress after its ``self.step`` steps, as a `_partial`: what a checkpoint
        written mid-epoch holds — at a stop, or by a step's hook (one every n steps) — so that the
        resumed epoch's record (its train cost and accuracy without ``eval_train``, its first epoch's
        `start_cost`) is the uninterrupted run's, not one of its steps since the checkpoint alone."""
        live = self._so_far
        return {"costs": self.model.backend.to_numpy(live["costs"][:self.step]).tolist(),
                "correct": float(live["correct"]), "seconds": live["seconds"] + time.perf_counter() - live["start"],
                "lr": live["lr"], "examples": live["examples"], "batch_size": self.batch_size}

    def _step_end(self, cost: float) -> None:
        """Each overriding callback's `Callback.on_step_end` after a step; a stop one asks is named,
        with where it came."""
        for cb in self._step_hooks:
            call_hook(self, cb, "on_step_end", cost, where=f" in epoch {self.epoch + 1} after step {self.step}")

    def _train_step(self, Xb, yb):
        """One step on a batch: (its mean cost, its correct count or None) as device arrays."""
        self.optimizer.zero_grad()
        out = self._network(Xb)
        cost = self._step_loss(out, yb)
        total = cost + _losses.l2(self.model, self.l2, m=self._penalty_m) if self.l2 else cost
        if self.l1:
            total = total + _losses.l1(self.model, self.l1, m=self._penalty_m)
        total.backward()
        self.optimizer.step()
        hits = None
        if self.classification and not self.eval_train:
            hits = _correct(self.model.backend.xp, out.data, self.model.backend.asarray(yb), self._each_output)
        return cost.data, hits

    def _note_added_groups(self) -> None:
        """Groups added to the optimizer since the trainer last looked (``add_param_group`` between
        fits, or from a callback within one: gradual unfreezing) join the run as given, with the
        settings they have now, and the run's record (`provenance.record`) says them: a checkpoint
        that held their state while its record said the groups the fit began with resumed into no
        optimizer (one made without them: "2 groups' state, this optimizer 1"; with them: "optimizer
        settings was [1 group]")."""
        added = self.optimizer.groups[len(self._settings):]
        if not added:
            return
        # one at the rate an epoch schedule set (add_param_group's default: the optimizer's rate now) is given the
        # first group's rate, as an optimizer made for the resume has it: recorded at the schedule's rate of the
        # moment (epoch 2's 0.005, say), no optimizer resumed it — made with that rate, the schedule refused it as
        # a rate of its own
        lr = self.optimizer.groups[0].settings["lr"]
        for group in added:
            settings = dict(group.settings)
            if self.schedule is not None and not callable(lr) and settings["lr"] == lr:
                settings["lr"] = self._settings[0]["lr"]
            self._settings.append(settings)
        if getattr(self, "_provenance_record", None) is not None:
            now = provenance.record(self, self._provenance_record.get("data"))
            self._provenance_record = {**self._provenance_record,
                                       **{k: v for k, v in now.items() if k in provenance.GROUP_FACTS or
                                          k.startswith(provenance.RATES_FACT)}}

    def _given_settings(self) -> list[dict]:
        """Each group's settings as the optimizer was made with them (a group added since: none)."""
        given = getattr(self, "_settings", [])
        return [given[i] if i < len(given) else {} for i in range(len(self.optimizer.groups))]

    def _check_module_settings(self) -> None:
        """A layer's numeric setting (a dropout rate, a batch norm's momentum) that differs from the
        one the resumed checkpoint was written with — set during the run, by a callback, and not set
        again by its ``on_train_begin`` — is said: it is the module's, not saved as a weight, and the
        run would go on with the value the model was made with, unsaid."""
        path, saved = getattr(self, "_module_settings", (None, None))
        self._module_settings = (None, None)
        if saved is None:
            return
        now = _module_settings(self.model)
        for name, settings in saved.items():
            if not isinstance(settings, dict) or name not in now:
                continue
            for key, value in settings.items():
                held = now[name].get(key, value)
                # (NaN, a setting of one's own for "none", is the one it was: NaN != NaN said "was nan … is nan")
                if held != value and not (held != held and value != value):
                    module = dict(self.model.named_modules())[name]
                    warn_caller(f"resume: module {name!r} ({type(module).__name__}): its {key} was {value!r} when "
                                f"{str(path)!r} was written (set during the run, by a callback?), and the resumed "
                                f"model's is {held!r}: the run goes on with {held!r}; set it "
                                "again in the callback's on_train_begin when trainer.resumed to go on as it went")
                    return

    def _check_schedules_set(self) -> None:
        """A setting that was a schedule when the resumed checkpoint was written (set during the run:
        ``opt.lr = schedule``) and is not one now — no callback set it again — is said: a schedule is
        code, not saved, and the run would go on at the rate the optimizer was made with, unsaid."""
        path, scheduled = getattr(self, "_scheduled", (None, []))
        for i, name in scheduled:
            value = self.optimizer.groups[i].settings.get(name)
            if not callable(value):
                warn_caller(f"resume: the run had a schedule as group {i}'s {name} when {str(path)!r} was written (a "
                            f"schedule is code, not saved); the resumed run goes on at {value!r}: set the schedule "
                            "again as the run did (a callback's on_train_begin, say) to go on as it went")
        # one that replaced the optimizer's own schedule (a callback's opt.lr = another) and is that own one
        # again — no callback set it again —: the resumed run went on with the constructor's, unsaid
        given = self._given_settings()
        for i, name in getattr(self, "_replaced", ()) if path is not None else ():
            value = self.optimizer.groups[i].settings.get(name)
            if callable(value) and i < len(given) and value is given[i].get(name):  # (a number: said above)
                warn_caller(f"resume: the run had another schedule as group {i}'s {name} than the optimizer was made "
                            f"with when {str(path)!r} was written (a schedule is code, not saved); the resumed run "
                            f"goes on with the optimizer's own, {getattr(value, '__name__', value)}: set the schedule "
                            "again in a callback's on_train_begin when trainer.resumed")
        self._scheduled, self._replaced = (None, []), []
        replaced = getattr(self, "_schedule_replaced", None)
        if replaced is not None and self.schedule is self._given_schedule:
            # (made without one: it goes on at the checkpoint's rate, and there is no "one it was made with")
            goes_on = ("with the one the Trainer was made with" if self.schedule is not None else
                       "without one, at the checkpoint's rate (the Trainer was made with none)")
            warn_caller(f"resume: a callback had replaced the trainer's schedule when {str(replaced)!r} was written (a "
                        f"schedule is code, not saved); the resumed run goes on {goes_on}: set trainer.schedule again "
                        "in the callback's on_train_begin to go on as it went")
        self._schedule_replaced = None

    # -- stopping -----------------------------------------------------------------------------
    def _diverged(self, what: str, advice: str | None = None) -> FloatingPointError:
        if advice is None:
            advice = RATE_ADVICE + self._l2_advice() + self._large_start_advice()
        self._divergence_advice = advice  # (the estimator's error ends with it too: `MLPClassifier.fit`)
        kept = []
        if self.last_checkpoint is not None:
            kept.append(f"the last good state ({position(*self.last_checkpoint_at)}) is in "
                        f"{str(self.last_checkpoint)!r}")
        if self.best_checkpoint is not None:
            kept.append(f"the best epoch's state is in {str(self.best_checkpoint)!r}")
        if not kept:
            kept = ["no good state was saved yet (its Checkpoint callback had not written one)"
                    if any(isinstance(cb, Checkpoint) for cb in self.callbacks)
                    else "no checkpoint holds a good state (a Checkpoint callback keeps one)"]
        best = next((cb for cb in self.callbacks if isinstance(cb, EarlyStopping) and cb.restore_best
                     and cb.best_state is not None), None)
        if best is not None:  # as Keras's restore_best_weights on a NaN stop: the model is not left holding NaN
            self.model.load_state_dict(best.best_state)
            self.history.best_epoch = best.best_epoch
            kept.append(f"the model holds its best epoch's weights again (epoch {best.best_epoch}, EarlyStopping's)")
        kept = "; ".join(kept)
        self.history.diverged = what  # history.json says so, not only the error
        return FloatingPointError(f"training diverged: {what}; {kept}; {advice}")

    def _large_start_advice(self) -> str:
        """The initial weights' part in a divergence of a run that started above the cost limit (a
        classifier's `DIVERGENCE_FACTOR` × ln C, warned of at its first epoch's end): weights drawn that
        large (normal(1e17) on digits) overflowed a batch norm's running variance at a later batch of
        the first epoch, at lr 1e-10, and the run stopped told of the rate alone."""
        start = self.__dict__.get("_start_cost")  # (known from the first epoch's end; a Trainer pickled before: none)
        if start is None or self._cost_limit is None or not start > self._cost_limit:
            return ""
        return (f", or {SMALLER_INIT}: the run started at a cost of {start:.3g}, above "
                f"{divergence_factor()} × ln C (where a classifier starts) = {self._cost_limit:.3g}")

    def _state_advice(self) -> str:
        """What to change where the optimizer's state overflowed (`state_advice`, at the groups' largest
        weight decay)."""
        decays = [g.settings.get("weight_decay") for g in self.optimizer.groups]
        return state_advice(max((d for d in decays if isinstance(d, int | float) and not isinstance(d, bool)),
                                default=0))

    def _l2_advice(self) -> str:
        """The L2 term's part in a divergence of plain gradient descent (`xdl.optim.SGD`): its gradient
        (λ/m)·W alone scales each weight by 1 − lr·λ/m a step, which grows the weights, flipping their
        sign at each step, once lr·λ/m > 2 — at any rate the data loss would allow. A λ of 200 at lr 0.5
        and batch 32 (lr·λ/m = 3.1) diverged, told only of the rate and of unstandardized inputs."""
        if not self.l2 or type(self.optimizer) is not SGD:  # (adaptive rules bound the step: no such factor)
            return ""
        lr = self.optimizer.current_lr()
        factor = lr * self.l2 / self._penalty_m
        if not factor > 2:
            return ""
        return (f", or a smaller l2: the L2 term alone scales each weight by 1 − lr·λ/m = {1 - factor:.3g} a step "
                f"(lr {lr:g}, λ {self.l2:g}, m {counted(self._penalty_m, 'example')} a batch), which grows them once "
                "lr·λ/m > 2")

    def _check_costs(self, backend, costs, start: int, stop: int) -> np.ndarray:
        """The step costs ``costs[start:stop]``, read in one transfer, as a host array once all are
        finite; else the divergence error naming the first that is not."""
        values = backend.to_numpy(costs[start:stop])
        finite = np.isfinite(values)
        if finite.all():  # (the usual case, read at every step on the CPU: no search for the first that is not)
            return values
        bad = np.flatnonzero(~finite)
        where = f"the cost became {values[bad[0]]} at epoch {self.epoch + 1}, step {start + bad[0] + 1}"
        if self.epoch == 0 and start + bad[0] == 0:
            # the first step's cost is the starting weights' (its update comes after it): no rate made it, and
            # "try a smaller learning rate" sent a user whose 50-layer net overflowed from normal(1) to lr = 1e-9
            raise self._diverged(
                f"{where}, before any update: the model's outputs at its starting weights are not finite",
                first_step_advice(standardized=self._network is not self.model))
        raise self._diverged(where)

    def _check_first_forward(self) -> None:
        """The buffers after the run's first step (one host read, once a run): a batch norm's running
        statistics are the first forward pass's, at the starting weights, before any update — NaN or
        Inf there is no rate's doing. Weights drawn at normal(1e20) overflowed the running variance
        while the cost stayed finite, and the run stopped at its first epoch's end told to try a smaller
        learning rate (at lr 1e-10), under its own warning of a large start."""
        buffers = {name for name, _ in self.model.named_buffers()}
        bad = [name for name in non_finite_state(self.model) if name in buffers] if buffers else []
        if bad:
            raise self._diverged(first_forward_failure(bad), FIRST_FORWARD_ADVICE)

    def _check_record(self, record: dict, steps: int, model_flags=None, optimizer_flags=None) -> None:
        """The epoch-end costs decide early stopping and checkpoints: they must be finite, and so
        must the state (a batch norm's running variance can overflow while the costs stay finite):
        the model's and the optimizer's finite flags (`state_flags`) as read with the epoch's costs,
        or read here (None)."""
        for key in ("train_cost", "dev_cost"):
            value = record.get(key)
            if value is not None and not math.isfinite(value):
                raise self._diverged(f"the {key.replace('_', ' ')} became {value} at the end of epoch "
                                     f"{record['epoch']} (after step {steps})")
        why = None if self._cost_limit is None else \
            diverged_cost(record["train_cost"], self._cost_limit, getattr(self, "_start_cost", None),
                          f"the end of epoch {record['epoch']}")  # (a Trainer pickled before starts were kept: none)
        if why is not None:  # finite, but far above where a classifier starts, and above where this one started
            first = FIRST_EPOCH_HINT if record["epoch"] == 1 and self._network is self.model else ""  # (no Standardize)
            raise self._diverged(why + first)
        bad = non_finite_state(self.model, model_flags)
        if bad:
            raise self._diverged(f"{', '.join(bad)} became NaN or Inf in epoch {record['epoch']}")
        # (the model's finite: its updates 0 or NaN from there, unsaid)
        bad = self.optimizer.non_finite_state(optimizer_flags)
        if bad:
            raise self._diverged(f"the optimizer's state ({', '.join(bad)}) became NaN or Inf in epoch "
                                 f"{record['epoch']}: its updates are 0 or NaN from there", self._state_advice())


    # -- evaluation ---------------------------------------------------------------------------
    @no_grad()
    def evaluate(self, X, y, batch_size: int = 1024) -> dict:
        """Cost (data loss) and accuracy (classification) of the model in evaluation mode, in this
        thread only (`xdl.nn.module.mode_here`: another thread may predict with the model, or train
        it, meanwhile); a model whose state holds NaN or Inf (a diverged run's) is refused, naming where — its outputs
        would be NaN, and NaN rows counted as class 0.

        ``X``: the examples, (m, features) or (m, …) (images: flattened), as `fit` takes them: finite,
        at least one. ``y``: their labels or targets, as `fit` takes them for this loss (class indices
        for `SoftmaxCrossEntropy`). ``batch_size``: the examples of each forward pass, a positive
        integer: it bounds the memory a pass takes (the cost differs between sizes only by rounding).
        Returns ``{"cost": …, "accuracy": …}``: the data loss averaged over the m examples (no penalty)
        and the accuracy, None for a regression."""
        check_int(batch_size, "batch_size")
        X, y = self._check(X, y)
        bad = non_finite_state(self.model)
        if bad:
            raise ValueError(f"evaluate: the model holds NaN or Inf in {', '.join(bad[:3])}"
                             f"{', …' if len(bad) > 3 else ''} (a diverged run's state?): load a good state first")
        if self.augment is None and self.model._host_layer() is not None:  # (a Standardize first: on the host)
            X, self._network = self.model.network_input(X)
        else:  # cast to the model's dtype a batch at a time, by `_evaluate`: cast whole, a uint8 set took 4× its size
            self._network = self.model
        return self._evaluate(X, y, batch_size)

    def _evaluate(self, X, y, batch_size: int = 1024) -> dict:
        """Cost and accuracy in evaluation mode (`_evaluation_sums`, read in one transfer)."""
        sums = read_together(self.model.backend, **self._evaluation_sums(X, y, batch_size))
        return self._metrics(sums["cost"], sums["correct"], y)

    def _metrics(self, cost_sum, correct, y) -> dict:
        """``{"cost": Σ cost / m, "accuracy": hits / (m·k)}`` (None for a regression) from an evaluation's
        sums read on the host (`_evaluation_sums`) over the m examples of ``y``, k labels each for
        yes/no labels (one otherwise)."""
        m = max(len(y), 1)
        k = math.prod(y.shape[1:]) if self._each_output else 1
        return {"cost": float(cost_sum) / m, "accuracy": float(correct) / (m * k) if self.classification else None}

    @no_grad()  # (called within a fit, which records: each batch's forward kept its graph and activations)
    def _evaluation_sums(self, X, y, batch_size: int = 1024, captured: bool = False) -> dict:
        """``{"cost": Σ batch cost × batch size, "correct": Σ hits}`` in evaluation mode, 0-d device
        arrays, not read (`_metrics` makes them the cost and the accuracy). ``captured`` (within a fit
        whose steps are captured, X and y on the device): each batch's forward pass is a graph per batch
        shape, the batch copied into its input arrays (`CapturedSteps.call`)."""
        backend = self.model.backend
        xp = backend.xp
        cost_sum, correct = xp.zeros((), dtype=np.float64), xp.zeros((), dtype=np.float64)
        step_loss = self._step_loss
        # (a BatchNorm's eps, its statistics' arrays; the loss, and a loss of one's own's attributes)
        settings = self._captured.settings("evaluate", self.model, self.loss, host_values(self.loss)) if captured else None

        # yes/no labels (binary cross-entropy) counted as right labels, each example's share k of them taken once
        # at the end (`_metrics`): the shares summed batch by batch (2/3 + 1/3 + …) rounded by the batches' bounds,
        # so the accuracy of one model on one set changed in its last bit with batch_size

        def batch(Xb, yb):
            out = self._network(Xb)
            hits = _correct(xp, out.data, yb, self._each_output, shares=False) if self.classification else None
            return step_loss(out, yb).data * len(yb), hits

        with evaluating_here():
            for i in range(0, len(X), batch_size):
                Xb, yb = X[i:i + batch_size], backend.asarray(y[i:i + batch_size])
                if Xb.dtype != self.model.dtype:  # (`evaluate`'s integer or float64 X; a fit's is cast already)
                    Xb = Xb.astype(self.model.dtype)
                if captured and self._captured.failure is None:
                    cost, hits = self._captured.call("evaluate", batch, Xb, yb, version=settings)
                else:
                    cost, hits = batch(Xb, yb)
                cost_sum += cost
                if hits is not None:
                    correct += hits
        return {"cost": cost_sum, "correct": correct}

    # -- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self, path) -> Path:
        """Model, optimizer state, position (epoch, and step within it), history, callback states
        and the run's provenance in one file, written atomically — never a non-finite model: that
        raises the divergence error instead, and the previous file stays. After a fit whose
        `EarlyStopping` put the best epoch's weights back, the file holds the run's last weights (what
        the run goes on from, as its position and optimizer state are the last epoch's); the model
        keeps the best."""
        at = position(self.epoch, self.step)
        bad = non_finite_state(self.model)
        if bad:
            raise self._diverged(f"{', '.join(bad)} became NaN or Inf {at}")
        self._note_added_groups()  # (one added by a step's hook, saved before the next epoch's start)
        opt = self.optimizer.state_dict()
        arrays = {f"optimizer/{g}/{f}/{name}": a for g, group in enumerate(opt["state"])
                  for f, state in enumerate(group) for name, a in state.items()}
        callbacks = []
        for i, cb in enumerate(self.callbacks):
            state, cb_arrays = callback_state(cb)
            callbacks.append(state)
            arrays.update({f"callback/{i}/{k}": v for k, v in cb_arrays.items()})
        # the groups' settings as they are now (an lr a callback or `opt.lr = …` set is the run's); a
        # per-step schedule is code, not state: the resuming optimizer's own is used
        settings = [{k: v for k, v in group.items() if not callable(v)} for group in opt["settings"]]
        partial = self._partial
        if partial is None and self.step and getattr(self, "_so_far", None) is not None:
            partial = self._epoch_so_far()  # written by a step's hook (a checkpoint every n steps)
        extra = {"epoch": self.epoch, "epochs": self.epochs, "step": self.step, "partial": partial,
                 "optimizer_t": opt["t"], "optimizer_first_steps": opt["first_steps"],
                 "optimizer": opt["class"], "optimizer_settings": settings, "optimizer_layout": opt["layout"],
                 "optimizer_max_grad_norm": opt["max_grad_norm"],
                 "optimizer_scheduled": [sorted(k for k, v in group.items() if callable(v)) for group in opt["settings"]],
                 # of those, the ones set in place of the schedule the optimizer was made with (opt.lr = another)
                 "optimizer_replaced": [sorted(k for k, v in group.items() if callable(v) and v is not given.get(k))
                                        for group, given in zip(opt["settings"], self._given_settings())],
                 "schedule": _schedule_state(self),
                 "history": self.history.to_encoded_dict(), "callbacks": callbacks,
                 "seed": self.seed, "run_info": self.run_info,
                 # a fit without Checkpoint recorded none: one saved by hand (after it, or by a callback of one's
                 # own) records the run, with the data digest the fit took — else without, which a resume does
                 # not check
                 "provenance": self._provenance_record or provenance.record(self, getattr(self, "_measured_on", None)),
                 "start_cost": getattr(self, "_start_cost", None),  # (a Trainer pickled before starts were kept)
                 # l2, l1 and the layers' numeric settings as they are now (a callback's trainer.l2 = …, a
                 # dropout rate, a batch norm's momentum): the provenance holds them as the fit began, so a resume
                 # went on with the values the run was made with, unsaid, and ended with other weights
                 "l2_now": self.l2, "l1_now": self.l1, "module_settings": _module_settings(self.model)}
        model = self.model
        for cb in self.callbacks:  # after a fit, the best epoch's weights its EarlyStopping put back: the file holds
            # the run's last ones, which its position and optimizer state go with (as its Checkpoint's last file) —
            # a resume from it went on from the best epoch's weights with the last epoch's moments, a run never run
            last = cb.run_weights(self.model) if isinstance(cb, EarlyStopping) else None
            if last is not None:
                model = copy.deepcopy(self.model)
                model.load_state_dict(last)
                extra["history"]["best_epoch"] = None  # (as the file's weights: no best epoch's put back in them)
                break
        return write_checkpoint(model, path, at, extra, arrays)

    def load_checkpoint(self, path) -> None:
        """Restore the state `save_checkpoint` wrote. Everything is read and checked against this
        trainer (see `xdl.train.provenance`) before anything in memory changes."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"resume: no checkpoint at {str(path)!r}")
        extra, arrays, model_state = read_checkpoint(path)
        check_checkpoint_kind(extra, path, many=False)
        # a seed this trainer was to draw is the run's own, its checkpoint's (a process of its own draws another):
        # compared as that, taken once every check passed
        drawn = getattr(self, "_seed_drawn", False) and extra.get("seed") is not None
        if drawn and self._provenance_record is not None:
            self._provenance_record = dict(self._provenance_record, seed=int(extra["seed"]))
        if self._provenance_record is not None:
            if extra.get("provenance") is not None:
                # (the model's names before the file's record is read: an error of a model of one's own is not
                # the file's damage)
                names = (set(model_state), {n for n, _ in self.model.named_parameters()}
                         | {n for n, _ in self.model.named_buffers()})
                try:
                    provenance.verify(extra["provenance"], self._provenance_record, path, names)
                except (TypeError, AttributeError, KeyError, IndexError) as e:  # (a record of kinds no xdl wrote: a
                    # layer's config a list, the data's a number) named as the file's damage, not Python's words
                    raise damaged(path, f"its record of the run cannot be read ({type(e).__name__}: {e})") from None
            else:
                warn_caller(f"resume: {str(path)!r} was written by an older xdl and records nothing of the run that "
                            "made it; it is resumed unchecked")
        done, trained, ask = fewest_epochs(int(extra["epoch"]), int(extra.get("step", 0)))
        if done > self.epochs:  # (inside an epoch: that epoch is part of the run, as far as it went)
            raise ValueError(f"resume: the checkpoint has trained {trained} and this run has epochs="
                             f"{self.epochs}: it cannot train fewer; {ask}")
        if len(extra["callbacks"]) != len(self.callbacks):
            saved_callbacks = counted(len(extra["callbacks"]), "callback")
            raise ValueError(f"resume: the checkpoint holds the state of {saved_callbacks}, this trainer has "
                             f"{counted(len(self.callbacks), 'callback')} ({str(path)!r})")
        check_resumes_into(self.callbacks, path)  # (not over another run's resumable state)
        opt = self.optimizer.state_dict()
        try:
            state = [[{name: arrays[f"optimizer/{g}/{f}/{name}"] for name in st} for f, st in enumerate(group)]
                     for g, group in enumerate(opt["state"])]
        except KeyError as e:
            made_with = extra.get("optimizer")
            why = (f"it was made with {made_with}, this run uses {opt['class']}" if made_with != opt["class"] else
                   f"the file is damaged or was edited (the run that wrote it used {made_with} too)")
            raise ValueError(f"resume: {str(path)!r} has no optimizer state {e.args[0]!r}: {why}") from None
        saved_settings = extra.get("optimizer_settings") or [{}] * len(opt["settings"])  # none: an older file
        # the checkpoint's numbers are the run's as they were: a rate set in a per-step schedule's place too (the
        # resumed run went back to the schedule); a schedule the run kept is code, not saved: the resuming
        # optimizer's own is used
        settings = [{**now, **then} for now, then in zip(opt["settings"], saved_settings)]
        # settings that were schedules when the file was written (opt.lr = schedule during the run: code, not
        # saved), checked once the callbacks' on_train_begin could set them again (`_check_schedules_set`)
        self._scheduled = (path, [(i, name) for i, names in enumerate(extra.get("optimizer_scheduled") or [])
                                  for name in names])
        self._replaced = [(i, name) for i, names in enumerate(extra.get("optimizer_replaced") or []) for name in names]
        saved_opt = {"class": extra.get("optimizer", opt["class"]), "t": extra["optimizer_t"],
                     "first_steps": extra.get("optimizer_first_steps", [0] * len(opt["settings"])),  # (older: 0)
                     "settings": settings, "state": state, "layout": extra.get("optimizer_layout"),
                     "max_grad_norm": extra.get("optimizer_max_grad_norm")}  # (older: None, as they trained)
        # the model's first: one of other sizes (of one's own: no provenance describes it) was told of the optimizer's
        # flat state alone, a length naming no layer; an early stopping's best state too (it failed at the end of the
        # run, its files written over, or loaded integer weights as 0s and 1s)
        self._check_saved_model_state(model_state, path)
        for i, cb in enumerate(self.callbacks):
            best = {k[len(f"callback/{i}/"):]: v for k, v in arrays.items() if k.startswith(f"callback/{i}/")}
            if isinstance(cb, EarlyStopping) and best:
                self._check_saved_model_state(best, path, f"callback {i}'s (EarlyStopping's) best state: ")
        try:
            self.optimizer.check_state_dict(saved_opt)
        except (TypeError, AttributeError, KeyError, IndexError) as e:  # (a layout of kinds no xdl wrote)
            raise damaged(path, f"its optimizer's state cannot be read ({type(e).__name__}: {e})") from None
        load(path, model=self.model)
        # from here the trainer holds part of the checkpoint's state until the end: a failure on the way
        # (a callback's load_state_dict) leaves it where only a resume goes on (`_mid_step`)
        self._mid_step = True
        self.optimizer.load_state_dict(saved_opt)
        for i, (cb, cb_state) in enumerate(zip(self.callbacks, extra["callbacks"])):
            prefix = f"callback/{i}/"
            load_callback_state(cb, cb_state, {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
        self.history = History.from_dict(extra["history"])
        self.epoch, self.step, self._partial = int(extra["epoch"]), int(extra.get("step", 0)), extra.get("partial")
        self._start_cost = extra.get("start_cost")  # (None from an older checkpoint: the limit alone decides)
        # the run's λ as it was (a callback may have set it), as its rate (checked by `check_run_state`; None:
        # an older checkpoint's)
        if extra.get("l2_now") is not None:
            self.l2 = float(extra["l2_now"])
        if extra.get("l1_now") is not None:  # (None: a checkpoint of an xdl before l1, or saved by hand without it)
            self.l1 = float(extra["l1_now"])
        # layer settings a callback changed during the run, said once the callbacks' on_train_begin could set
        # them again (`_check_module_settings`)
        self._module_settings = (path, extra.get("module_settings"))
        # a callback had cleared the epoch schedule (a plateau rule setting the rate itself): the resumed run
        # goes on without it, at the checkpoint's rate, as the run went on — it set schedule(epoch) over that
        # rate at the next epoch, unsaid, and ended with other weights; one replaced by another (code, not
        # saved) is said once the callbacks could set it again (`_check_schedules_set`)
        saved_schedule = extra.get("schedule")
        if saved_schedule == "cleared":
            self._schedule = None
        elif saved_schedule is not None:  # the given one, as the run had it then: a trainer that resumes its own
            self._schedule = self._given_schedule  # checkpoint kept the schedule its run cleared after it, unsaid
        self._schedule_replaced = path if saved_schedule == "replaced" else None
        self._schedule_set = None  # (the rate is the checkpoint's: no epoch of this fit's schedule set it)
        if drawn:
            self.seed = int(extra["seed"])
        self._mid_step = False
        self.last_checkpoint, self.last_checkpoint_at = path, (self.epoch, self.step)

    def _check_saved_model_state(self, state: dict, path, what: str = "") -> None:
        """Raise ValueError unless ``state``, read from checkpoint ``path``, is one this trainer's
        model loads: names and shapes (`Module.check_state_dict`), floating values stored as such
        (`check_stored_kinds`), all finite — `save_checkpoint` never writes NaN or Inf (it raises the
        divergence instead): a resume from one trained, diverged at its first step and wrote its
        history over the run's. ``what``: whose state it is, if not the model's."""
        try:
            self.model.check_state_dict(state)
        except (ValueError, TypeError) as e:
            raise ValueError(f"resume: {str(path)!r} does not fit the model: {what}{e}; resume with the model the run "
                             "trained") from None
        check_stored_kinds(self.model, state, path, "resume", what)
        bad = next((name for name, a in state.items() if a.dtype.kind == "f" and not np.isfinite(a).all()), None)
        if bad is not None:
            raise damaged(path, f"{what}{bad!r} holds NaN or Inf")


TRAINER_PARTS = ("model", "loss", "optimizer")  # the constructor's positional arguments
# what `Trainer.fit` says of an option it does not take: the constructor's own (from its signature: ``fit(X, y,
# l2=…)`` said only "not an option of Trainer.fit"), then those the constructor refuses saying where
FIT_OPTIONS_ELSEWHERE = {
    **dict.fromkeys(TRAINER_PARTS, "it is the constructor's: Trainer(model, loss, optimizer), then trainer.fit(X, y)"),
    **{name: f"it is the constructor's: Trainer(model, loss, optimizer, {name}=…)"
       for name in keywords_of(Trainer.__init__, TRAINER_PARTS)},
    **TRAINER_OPTIONS_ELSEWHERE,
}


def _schedule_state(trainer) -> str:
    """Where ``trainer``'s epoch schedule stands, for its checkpoints: "given" (the one it was made
    with, or none given), "cleared" (a callback set ``trainer.schedule = None``: it sets the rate
    itself) or "replaced" (a callback set another: code, not saved)."""
    if trainer.schedule is trainer._given_schedule:
        return "given"
    return "cleared" if trainer.schedule is None else "replaced"


def _check_rate_kept(trainer, epoch: int, rate: float) -> None:
    """Warn (once per trainer) where the epoch schedule is to set epoch ``epoch + 1``'s ``rate`` over
    one set since it set the last epoch's — ``trainer.optimizer.lr = …`` in a callback (a plateau rule,
    Keras's ReduceLROnPlateau), or one group's (``param_groups[i]["lr"] = …``), while ``trainer.schedule``
    is kept: the schedule's rate replaces it, and the run trained on at the schedule's rates as if the
    callback had done nothing."""
    set_before = getattr(trainer, "_schedule_set", None)
    trainer._schedule_set = None
    if set_before is None or set_before[0] is not trainer.schedule or getattr(trainer, "_rate_kept_said", False):
        return
    # every group's: one group's set alone (``opt.param_groups[1]["lr"] = …``) was replaced, unsaid
    changed = [(i, g.settings["lr"]) for i, g in enumerate(trainer.optimizer.groups)
               if callable(g.settings["lr"]) or g.settings["lr"] not in (set_before[1], rate)]
    if not changed:
        return
    when = f"after the schedule set epoch {epoch}'s, {set_before[1]:.6g}"
    _warn_rate_replaced(trainer, changed, when, epoch, rate)


def _check_rate_kept_at_begin(trainer, rates_before: list) -> None:
    """`_check_rate_kept` for a rate a callback's ``on_train_begin`` set (the rate it found, say, or a
    warm restart's) while ``trainer.schedule`` is kept: the first epoch's start set the schedule's in its
    place, and the run trained on at the schedule's rates, unsaid — no epoch of this fit had set one
    to compare it with. ``rates_before``: each group's lr as the callbacks were called."""
    if trainer.schedule is None or trainer.stop_training or trainer.epoch >= trainer.epochs \
            or getattr(trainer, "_rate_kept_said", False):
        return
    epoch = trainer.epoch
    rate = rate_at(trainer.schedule, epoch, f"schedule({epoch})")
    # (one set to the schedule's own rate loses nothing)
    now = [g.settings["lr"] for g in trainer.optimizer.groups]
    changed = [(i, lr) for i, (lr, before) in enumerate(zip(now, rates_before))
               if lr is not before and (callable(lr) or lr not in (before, rate))]
    if changed:
        _warn_rate_replaced(trainer, changed, "as the run began (a callback's on_train_begin)", epoch, rate)


def _warn_rate_replaced(trainer, changed: list, when: str, epoch: int, rate: float) -> None:
    """Say (once per trainer) that the epoch schedule sets epoch ``epoch + 1``'s ``rate`` over the first of
    ``changed``'s (group, lr), which a callback set ``when``."""
    trainer._rate_kept_said = True
    group, now = changed[0]
    # (a per-step schedule set there, opt.lr = schedule, is replaced for good: it was passed over, unsaid)
    what = f"a per-step schedule, {getattr(now, '__name__', now)}," if callable(now) else f"{now:.6g}"
    whose = "the optimizer's rate" if group == 0 else f"the optimizer's group {group}'s rate"
    warn_caller(f"{whose} was set to {what} {when}, and the schedule sets epoch {epoch + 1}'s now, {rate:.6g}, in "
                "its place: a callback that sets the rate itself clears the schedule (trainer.schedule = None, as "
                "Control does), or the schedule sets its own rate back at each epoch's start")


def _module_settings(model) -> dict:
    """Each module's numeric settings as it holds them now (`Module.current_config`: a dropout's rate,
    a batch norm's momentum and eps), by module name: what a checkpoint records of them."""
    found = {}
    for name, module in model.named_modules():
        numbers = {k: float(v) for k, v in module.current_config().items()
                   if isinstance(v, int | float | np.floating) and not isinstance(v, bool)}
        if numbers:
            found[name] = numbers
    return found


def network_data(model, X, dev, on_host: bool):
    """``(X, dev, network)``: a run's checked X and dev pair as the network's inputs, and the module
    that runs on them (`Module.network_input`: a leading Standardize applied on the host with the
    statistics the model holds now — a resumed run's —, unless ``on_host`` is False: batches
    augmented on the host see the raw values, as the model's own layer then does)."""
    X, network = model.network_input(X, "X", on_host=on_host)
    if dev is not None:
        dev = (model.network_input(dev[0], "X_dev", on_host=on_host)[0], dev[1])
    return X, dev, network


class _OneHotRows(NamedTuple):
    """Exact one-hot label rows `Loss.prepare` gave as their class indices, as `_digests` hashes them:
    their ``width`` C and where they held −0.0 (``negative_zeros``: the rows' sign bits, packed, 1 bit a
    label; None where none was, the rule). A −0.0 equals 0 and trains as one, but the rows as prepared
    before (the model's dtype, each divided by its sum of exactly 1) kept its sign: a checkpoint of
    such rows recorded it, and rows rebuilt of +0.0 alone digested apart (its resume refused as other data)."""

    width: int
    negative_zeros: np.ndarray | None

    @classmethod
    def of(cls, given: np.ndarray, dtype) -> _OneHotRows:
        """The rows ``given`` (m, C) to `_check` (in the model's ``dtype``, as prepared: objects as numbers)."""
        signs = np.signbit(given.astype(dtype, copy=False)) if given.dtype.kind in "fO" else None  # (ints have none)
        return cls(given.shape[1], np.packbits(signs, axis=None) if signs is not None and signs.any() else None)

    def rows(self, indices: np.ndarray, dtype) -> np.ndarray:
        """The (m, C) rows of class ``indices`` in ``dtype``, −0.0 where the rows given held it."""
        rows = np.eye(self.width, dtype=dtype)[indices]
        if self.negative_zeros is not None:
            negative = np.unpackbits(self.negative_zeros, count=rows.size).view(bool).reshape(rows.shape)
            rows[negative] = -0.0  # (all of them zeros: a row's 1 is > 0, signbit False)
        return rows


def _digests(trainer, X, y, dev) -> dict:
    """The data digests of a fit (`provenance.record`'s data), over `_check`'s X in the model's dtype
    (the data as given, not as a model's statistics standardize it: a run's digest is the same
    resumed or not)."""
    dtype = trainer.model.dtype
    one_hot = trainer.__dict__.get("_one_hot_rows", {})

    def labels(y, name):  # one-hot rows prepared as class indices hashed as the rows, in the model's dtype, they
        # were prepared as before (a checkpoint's digest of them resumes; indices then rows now are refused, as before)
        rows = one_hot.get(name)
        return y if rows is None else rows.rows(y, dtype)

    return {"train": provenance.data_digest(X.astype(dtype, copy=False), labels(y, "")),
            "dev": provenance.data_digest(dev[0].astype(dtype, copy=False), labels(dev[1], "_dev"))
            if dev is not None else None}


def _changed(before: dict | None, now: dict | None) -> frozenset:
    """The metrics' prefixes ("train", "dev") that a later fit measures on other data than the fit
    before it (`_digests`; a dev metric without dev is measured on the train set, as `Checkpoint`
    falls back): a best kept from there is no yardstick here (`xdl.train.callback.measures_other_data`)."""
    if before is None or now is None:
        return frozenset()

    def measured_on(data, prefix):
        return data[prefix] if prefix == "train" or data["dev"] is not None else ("train", data["train"])

    return frozenset(p for p in ("train", "dev") if measured_on(before, p) != measured_on(now, p))


def _check_parts(model, loss, optimizer) -> None:
    """A model, a loss (an xdl `Loss`, or a function of outputs and labels) and an optimizer, as
    instances, the optimizer holding this model's parameters where they live now."""
    for name, value, ok, expected, example in (
            ("model", model, isinstance(model, Module), "an xdl Module", "xdl.nn.mlp(...)"),
            ("loss", loss, callable(loss) and not isinstance(loss, type),
             "an xdl Loss or a function (outputs, labels) → cost", "SoftmaxCrossEntropy()"),
            ("optimizer", optimizer, isinstance(optimizer, Optimizer), "an xdl Optimizer", "Adam(model)")):
        if not ok:
            made = f" (a class: make one, e.g. {example})" if isinstance(value, type) else ""
            raise TypeError(f"{name} must be {expected}, got {value!r}{made}")
    own = {id(p) for p in model.parameters()}
    optimizer.check_placed()  # made before the model was converted or wrapped: it would train nothing
    held = optimizer.parameters()
    if not held:
        raise ValueError(f"optimizer holds no parameters; make it from the model, e.g. {type(optimizer).__name__}(model)")
    foreign = [p for p in held if id(p) not in own]
    if foreign:
        named = optimizer.names()  # its names when it was made of a model: which of them the model lost
        gone = [named[id(p)] for p in foreign if id(p) in named]
        why = (f"{', '.join(gone[:3])}{', …' if len(gone) > 3 else ''} replaced or removed since it was made"
               if gone else "an optimizer made for another model?")
        raise ValueError(f"optimizer: {len(foreign)} of its {len(held)} parameters are not the model's ({why}); "
                         f"make it from this one, e.g. {type(optimizer).__name__}(model)")


def _correct(xp, out, labels, each_output: bool, shares: bool = True):
    """Number of correct predictions: argmax for several outputs, logit > 0 for one. With
    ``each_output`` (binary cross-entropy) each output is a yes/no label, right when logit > 0 is
    target > 0.5 (a soft target counts as its nearer class), and an example counts the share of its
    labels that are right (Keras's binary accuracy); ``shares=False``: the number of right labels,
    an integer (Σ shares = that / k, k labels an example, divided once by the caller)."""
    if each_output:
        right = (out > 0) == (labels > 0.5)
        if not shares:
            return right.sum()
        return right.reshape(len(right), -1).mean(axis=1, dtype=np.float64).sum()
    if labels.ndim == 2 and labels.shape[1] > 1:  # one-hot rows
        labels = labels.argmax(axis=1)
    return (classes_of_logits(out) == labels.reshape(-1)).sum()


def _prefixed(prefix: str, metrics: dict) -> dict:
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


def _postfix(record: dict) -> dict:
    keys = ("train_cost", "dev_cost", "dev_accuracy")
    return {k: f"{record[k]:.4f}" for k in keys if record.get(k) is not None}
