"""`fit_many`: K training configurations fitted at once, as one stacked model (the course's caviar).

The K models share what changes shapes or the batches — `SHARED` options: layer sizes,
activation, batch norm, where dropout is, batch size, optimizer rule, augmentation — and each keeps
the rest: its seed (initialization and dropout masks), learning rate and schedule, β's, ε, L2,
L1, weight decay, dropout rate, epochs and early-stopping patience. `xdl.nn.stack` lays them out as one
model whose dense layers are batched products and whose batch-norm layers are the ordinary
kernels over (B, K·C); `xdl.optim.StackedOptimizer` updates all K in one launch per region.

Each model is trained as `Trainer` would train it alone (``TrainConfig.build_trainer``) on the
same mini-batches: the shuffle of epoch e comes from (seed, e), model k's initialization and
dropout masks from its own ``configs[k].seed``, its rate from its own schedule. A `Trainer` uses
one seed for both the shuffle and the masks, so model k ends exactly where
``configs[k].build_trainer`` ends when ``configs[k].seed == seed`` (without dropout, also with
``trainer.seed = seed`` for any config seed): in float64, to rounding; each row's optimizer update
is bit for bit the single model's. Per model: early stopping freezes it and keeps its best epoch's weights; a
non-finite cost marks it failed, puts back its state from the end of its last good epoch, and the
others go on.

Host syncs: on the GPU the step costs stay on the device and are read once per epoch (a model
that diverged mid-epoch is found then); on the CPU after every step. On a GPU the batch's step is
captured as one CUDA graph per batch size and replayed, as `Trainer` does (`xdl.train.captured`);
a model frozen by early stopping or divergence changes the step, which is then captured again.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xdl.backend import SEEDS, current_backend, get_backend, thread_backend, to_numpy_together
from xdl.caller import keywords_of, warn_caller
from xdl.config import RESUME_MAY_CHANGE, RUN_OPTIONS, TrainConfig
from xdl.data import check_features, check_labels, training_batches
from xdl.data.validation import (MAX_CLASSES, check_bool, check_dev_pair, check_feature_names, check_int,
                                 check_list, counted, feature_names, note_label_width)
from xdl.functions.penalties import WeightPenalty
from xdl.functions.stacked import stacked_softmax_cross_entropy
from xdl.nn import Module, Standardize, stack
from xdl.nn.module import evaluating_here, mode_here
from xdl.optim.optimizer import check_rate
from xdl.optim.stacked import StackedOptimizer
from xdl.saved_fields import check_fields, damaged, is_count, is_dict, is_list_of, is_number, is_records, optional
from xdl.serialization import load, read_extra
from xdl.tensor import Tensor, enable_grad, no_grad, refusing_options_elsewhere, to_numpy
from xdl.train.callback import callback_state, check_record, continues_run, load_callback_state
from xdl.train.checkpoint import Checkpoint, check_resumes_into, stop_for_signal
from xdl.train.checkpoint_files import check_checkpoint_kind, position, resume_path, upcoming, write_checkpoint
from xdl.train.early_stopping import EarlyStopping, patience_reason
from xdl.train.fit_guards import (callbacks_held, callbacks_told_of_errors, check_callbacks_own, check_goes_on,
                                  check_monitored, check_same_examples, checkpoint_directories_held, FitClaim,
                                  FITTING, load_resumed, take_fit)
from xdl.train.captured import CapturedSteps, loop_capture
from xdl.train.divergence import (FIRST_EPOCH_HINT, FIRST_FORWARD_ADVICE, cost_limit, diverged_cost,
                                  first_forward_failure, overflow_unsaid, start_cost, state_advice)
from xdl.train.history import History
from xdl.train.host_reads import read_together
from xdl.train.hooks import call_hook, check_callback, check_callbacks_fit, check_distinct_callbacks, keras_stop
from xdl.train.interrupt import Interrupted, SignalFlag
from xdl.train.progress import progress_bar
from xdl.train.provenance import data_digest
from xdl.train.trainer import network_data, penalty_examples, refuse_keras_options

# Options the K configurations must share: they change shapes, the batches, or the update rule.
SHARED = ("dataset", "hidden", "activation", "batch_norm", "batch_size", "optimizer", "augment_shift", "augment_noise",
          "augment_flip")
IGNORED = RUN_OPTIONS  # they describe the command line's run, not a model: fit_many ignores them
PLATEAU = ("plateau_patience", "plateau_factor")  # a resume may change them, but a batch never has a plateau
STOP_STATUSES = ("stopped", "pruned")  # what `ManyTrainer.stop_model` may say a stopped model's result is


def each_config(name: str, value: str = "…") -> str:
    """How the K models are given option ``name`` of a `TrainConfig`: in each one's, the same where they share it."""
    each = " (the same in each: models trained together share it)" if name in SHARED else ", one per model"
    return f"[TrainConfig({name}={value}) for …]{each}"


# a model's option (a TrainConfig's) or another library's option of a run, given to fit_many, a ManyTrainer or its
# fit → where it is for a batch (`refuse_keras_options` for the fits, after `KERAS_FIT_OPTIONS`;
# `refusing_options_elsewhere` for the constructor): Python's "unexpected keyword argument 'lr'", or "not an option
# of fit_many", said neither that each model has its own nor how to give it. Every TrainConfig field but those a
# batch ignores (`IGNORED`), takes itself as well (seed: its batches' order), refuses (`PLATEAU`) or takes from the
# backend in use (precision: a TrainConfig's is read by xdl train's xdl.use alone, and a batch refuses one other than
# the backend's, `TrainConfig.check_precision_in_use`)
BATCH_OPTIONS_ELSEWHERE = {
    **{f.name: f"it is each TrainConfig's: {each_config(f.name)}" for f in dataclasses.fields(TrainConfig)
       if f.name not in (*IGNORED, *PLATEAU, "seed", "precision")},
    "precision": "the batch's float32 matrix products take the precision of the backend in use at its first fit, not "
                 "a TrainConfig's: with xdl.use('cuda', precision='tf32'): fit_many(configs, X, y)",
    **dict.fromkeys(PLATEAU, "a batch has no plateau (fit_many does not lower a model's rate from its own dev cost): "
                             "train such a config alone, config.build_trainer(model), or xdl tune --execution "
                             "sequential"),
    "learning_rate": f"Keras's learning_rate is each TrainConfig's lr here: {each_config('lr')}",
    "global_clipnorm": "Keras's global_clipnorm is each TrainConfig's max_grad_norm here: "
                       f"{each_config('max_grad_norm', '1.0')}",
    "clipnorm": "Keras's clipnorm (each gradient clipped by its own norm) is not offered here; each TrainConfig's "
                f"max_grad_norm clips its model's gradients by their one norm: {each_config('max_grad_norm', '1.0')}",
    "gradient_clip_val": "Lightning's gradient_clip_val (its 'norm' algorithm) is each TrainConfig's max_grad_norm "
                         f"here: {each_config('max_grad_norm', '1.0')}",
    "max_epochs": "Lightning's max_epochs is each TrainConfig's epochs here, its model's total: "
                  f"{each_config('epochs')}",
    "device": "the batch trains on the backend in use at its first fit: with xdl.use('cuda'): fit_many(configs, X, y)",
    "metrics": "not an option: each model's history (its Result's .history) records train_cost, dev_cost, "
               "train_accuracy and dev_accuracy each epoch",
    "ckpt_path": "Lightning's ckpt_path is resume here: ManyTrainer(configs).fit(X, y, resume=directory) (as "
                 "fit_many(configs, X, y, resume=directory))",
}
# ManyTrainer.fit's keywords (a test checks them against its signature), fit_many's options that are the fit's → a
# value of each, as the constructor says them
BATCH_FIT_OPTIONS = {"dev": "(X_dev, y_dev)", "n_classes": "n_classes", "standardize": "standardize",
                     "resume": "directory"}
# the constructor's: the same, fit's own, and where Keras's fit options are (the fits say those from
# `KERAS_FIT_OPTIONS`)
MANY_TRAINER_OPTIONS_ELSEWHERE = {
    **BATCH_OPTIONS_ELSEWHERE,
    **{name: f"it is fit's: ManyTrainer(configs).fit(X, y, {name}={value}) (as fit_many(configs, X, y, {name}={value}))"
       for name, value in BATCH_FIT_OPTIONS.items()},
    "validation_data": "the dev set is fit's: ManyTrainer(configs).fit(X, y, dev=(X_dev, y_dev))",
    "validation_split": "split a dev set off first: s = xdl.data.split(X, y), then ManyTrainer(configs).fit(s.X_train, "
                        "s.y_train, dev=(s.X_dev, s.y_dev))",
    "verbose": "Keras's verbose is progress=… here (True or False: a tqdm bar or none)",
    "shuffle": "not an option: each epoch is shuffled, from seed=…",
    # Keras's fit options that are no constructor's keyword (the fits say them from `KERAS_FIT_OPTIONS`)
    "initial_epoch": "Keras's fit option, and not one here: a fit goes on from where the batch stopped "
                     "(ManyTrainer(configs).fit(X, y, resume=directory) from a Checkpoint's directory)",
    "class_weight": "Keras's fit option; class weights are not offered here",
    "sample_weight": "Keras's fit option; example weights are not offered here",
}


@dataclass(eq=False)  # a record of one run: compared by identity, as its model and history are
class Result:
    """One configuration's outcome: ``model`` (an ordinary model: its best epoch's weights with
    early stopping, else its last good ones), ``history``, ``status`` — "completed" (ran its
    epochs), "stopped" (early stopping, or a callback's `ManyTrainer.stop_model`), "pruned" (a
    search stopped it), "failed" (diverged; ``error`` says where) or "training" (the batch ended
    before this model did — Ctrl-C, an error —, or the results were asked mid-run: a resume goes on).

    ``model`` is taken out of the batch when first read: a search that keeps only the histories,
    or a user who keeps only the best model, pays for one model, not K. Until then a result holds
    the batch's stacked model and a copy of its own state (kept when it stopped, or taken when
    the results were asked for); a copy of the result (``dataclasses.replace``) made after its
    model was read shares it; pickling takes it out first. Results compare by identity, as the
    runs they record."""

    config: TrainConfig
    history: History
    status: str
    error: str | None = None
    take_model: Callable[[], Module] | None = field(default=None, repr=False)

    @functools.cached_property
    def model(self) -> Module:
        if self.take_model is None:
            raise AttributeError("this Result was made without a model (take_model=None)")
        model = self.take_model()
        self.take_model = functools.partial(_given, model)  # the batch can go; a copy of the result has it too
        return model

    def __getstate__(self) -> dict:
        if self.take_model is not None:
            self.model  # noqa: B018 - taken out now: the pickle holds an ordinary model, not the batch
        return self.__dict__


def _given(model: Module) -> Module:
    """What a `Result`'s ``take_model`` is once its model was taken out: that model."""
    return model


# the weight penalties a configuration sets per model (`WeightPenalty`'s kinds: λ_k/(2m)·Σ‖W_k‖², λ_k/m·Σ|W_k|)
PENALTIES = ("l2", "l1")
OPTIMIZER_STATE = "the optimizer's "  # how `_non_finite_state` names a model's rows of the rule's state


def class_indices(y: np.ndarray, name: str) -> tuple[np.ndarray, int | None]:
    """Checked labels ``y`` (`check_labels`) as (m,) int64 class indices, with the number of columns
    of one-hot rows (None for indices): the K models' fused loss takes each example's class, and a
    row of 0s and a single 1 names one exactly, as a `Trainer`'s SoftmaxCrossEntropy reads it
    (Keras's categorical labels). Soft rows name no one class: refused, naming ``name``."""
    if y.ndim == 1:
        return y.astype(np.int64, copy=False), None
    if not (y.shape[1] >= 2 and y.dtype.kind in "biuf" and bool(np.isin(y, (0, 1)).all())
            and bool((y.sum(axis=1) == 1).all())):
        raise ValueError(f"{name} must be (m,) class indices or (m, C) one-hot rows (0s and a single 1) for "
                         f"fit_many, got shape {y.shape} and dtype {y.dtype}: its K models' loss takes each "
                         "example's class, which soft rows do not name")
    return y.argmax(axis=1).astype(np.int64), int(y.shape[1])


def check_shared(configs) -> None:
    """Raise ValueError naming the first `SHARED` option (or dropout's placement) on which a
    configuration differs from ``configs[0]``, with both values."""
    first = configs[0]
    for k, c in enumerate(configs[1:], 1):
        for key in SHARED:
            if getattr(c, key) != getattr(first, key):
                raise ValueError(f"configs: {key} is {getattr(c, key)!r} in configs[{k}] but {getattr(first, key)!r} "
                                 f"in configs[0]; models trained together must share {', '.join(SHARED)}")
        if (c.dropout > 0) != (first.dropout > 0):
            raise ValueError(f"configs: dropout is {c.dropout!r} in configs[{k}] but {first.dropout!r} in configs[0]; "
                             "the rates may differ but not whether a model has dropout layers")


def fit_many(configs, X, y, dev=None, seed: int = 0, dtype="float32", n_classes: int | None = None,
             standardize=None, callbacks=(), resume=None, progress: bool | None = False,
             capture="auto", eval_train: bool = True, **keras_options) -> list[Result]:
    """Fit the `TrainConfig` s ``configs`` at once on ``(X, y)`` and return one `Result` each.

    ``y`` (and ``y_dev``): (m,) class indices, or (m, C) one-hot rows, C classes (not soft rows: the
    K models' fused loss takes each example's class).

    ``dev``: ``(X_dev, y_dev)``, needed when a configuration has ``patience`` > 0 (early stopping
    on the dev cost, as ``xdl train``). ``seed``: the mini-batch order, shared by the K models (a
    `Trainer`'s seed also keys its dropout masks; here each model's come from its config's seed) —
    0 unless given, as the K configurations' own seeds are (a `Trainer` without one draws it from
    `xdl.seed`'s generator).
    ``dtype``: the K models' parameters' dtype, float32 (the default) or float64 (a NumPy dtype or its
    name); X is cast to it. ``progress``: a tqdm bar over the batch's steps — True shows it, None
    only on a terminal or in a notebook, False (the default, unlike a `Trainer`'s None) none.
    ``n_classes``: the output width (default: the largest label + 1; at most `MAX_CLASSES`). ``standardize``: a
    `xdl.nn.Standardize` layer each model starts with (as ``xdl train`` builds them); none by
    default. ``callbacks`` see the batch (`ManyTrainer`; each one's ``check_fits`` is given it before any
    work, as a `Trainer`'s fit gives it itself: `ReduceLROnPlateau` refuses it): a `Checkpoint` keeps the whole batch
    resumable and ``resume=directory`` (or its checkpoint file) continues it exactly — with the same
    configurations but for their epochs and patience (and precision; as ``xdl train --resume``): a
    model still training may be given more epochs, and one that completed its epochs at the
    checkpoint trains on when given more (a batch whose every model has finished ends as it ended,
    with a warning). ``capture``: as `Trainer`'s — on a GPU the batch's step is one CUDA graph per
    batch size ("auto": where it can, `eager_reason`). Ctrl-C or SIGTERM raises
    `xdl.train.Interrupted` after the current step, as a `Trainer`'s fit does; its ``results`` are
    the K results as they stood (a model still training says "training"), with or without a
    `Checkpoint`. ``eval_train``: as `Trainer`'s — each model's train cost and accuracy measured in evaluation
    mode on the whole training set after each epoch; False: the running averages of its steps
    (no pass over the training set: an epoch is its steps and the dev set's evaluation).
    The batch's float32 matrix products take the precision of the backend in use (``xdl.use(..., precision=…)``),
    not a config's: on a GPU a config whose precision is set to another than the backend's is refused before any
    work, one left at the default (float32) takes the backend's (`TrainConfig.check_precision_in_use`), and the
    results' configs and the checkpoints record the precision it trained at (`TrainConfig.at_precision_in_use`).
    ``keras_options``: none is taken; a Keras option (``validation_data=``, ``epochs=``, …) is refused,
    saying where it is here, as by `Trainer.fit` (`KERAS_FIT_OPTIONS`), and so is a model's (``lr=``: each
    TrainConfig's) or a Lightning one (`BATCH_OPTIONS_ELSEWHERE`).

    >>> import xdl
    >>> from xdl.config import TrainConfig
    >>> X, y = xdl.datasets.digits()
    >>> configs = [TrainConfig(lr=lr, epochs=2, patience=0, hidden=[32]) for lr in (1e-3, 3e-3, 1e-2)]
    >>> results = fit_many(configs, X[:500], y[:500])
    >>> [r.status for r in results], len(results[2].history)
    (['completed', 'completed', 'completed'], 2)
    """
    refuse_keras_options(keras_options, "fit_many", "dev, seed, dtype, n_classes, standardize, callbacks, resume, "
                         "progress, capture, eval_train", run="TrainConfig", maker="fit_many",
                         elsewhere=BATCH_OPTIONS_ELSEWHERE)
    trainer = ManyTrainer(configs, seed=seed, dtype=dtype, callbacks=callbacks, progress=progress, capture=capture,
                          eval_train=eval_train)
    try:
        return trainer.fit(X, y, dev=dev, n_classes=n_classes, standardize=standardize, resume=resume)
    except Interrupted as stop:
        # the caller holds no trainer to ask: the K results as they stood go with the exception (a Trainer's
        # model, trained in place, is the caller's after a Ctrl-C; so is each of these — "training" unless ended)
        stop.results = trainer.results()
        stop.args = (f"{stop.args[0]}; the {len(stop.results)} results as they stood are in its .results",)
        raise
    except (Exception, KeyboardInterrupt) as error:
        # an error once the batch trained (a callback's, raised at an epoch's end; out of memory in a step; a
        # second Ctrl-C, which acts as Python's, or a callback's own KeyboardInterrupt):
        # the caller, holding no trainer, lost every model's training with it. The K results at the end of
        # the last epoch their histories record go with it, as an interruption's do
        # (none before an epoch's record: a refusal before training — another run's checkpoint there, a callback
        # in another fit — would carry K untrained models, "as they stood at the end of epoch 0")
        trained = trainer.model is not None and not trainer._loading and len(trainer.history)
        try:
            results = trainer.results(last_epoch=True) if trained else None
        except Exception:  # (none to give: the error raised is the one to see, not this one's)
            results = None
        if results is not None:
            error.results = results
            error.add_note(f"fit_many: the {len(error.results)} results as they stood at the end of epoch "
                           f"{trainer.history[-1]['epoch']} are in its .results")
        raise


class ManyTrainer:
    """The loop of `fit_many`, with the attributes a `Callback` uses on a `Trainer`: ``model``
    (the `xdl.nn.Stacked` model), ``optimizer``, ``epoch``, ``step``, ``stop_training``,
    ``history`` (one record per epoch for the batch: the best model's costs and ``active``, the
    number still training) and ``histories`` (one `History` per model). A model's option (``lr=``), or
    another library's of a run, given to it is refused saying where (`MANY_TRAINER_OPTIONS_ELSEWHERE`)."""

    @refusing_options_elsewhere(MANY_TRAINER_OPTIONS_ELSEWHERE)
    def __init__(self, configs, seed: int = 0, dtype="float32", callbacks=(), progress: bool | None = False,
                 capture="auto", eval_train: bool = True):
        configs = [configs] if isinstance(configs, TrainConfig) else check_list(configs, "configs", "TrainConfig")
        if not configs:
            raise ValueError("configs: no configurations (K = 0); give at least one TrainConfig")
        for k, c in enumerate(configs):
            if not isinstance(c, TrainConfig):
                raise TypeError(f"configs[{k}] must be a TrainConfig, got {type(c).__name__}")
            c.validate(f"configs[{k}]")  # its options' types and values (one set after construction too)
            if c.plateau_patience:  # (as ReduceLROnPlateau in callbacks: its check_fits)
                raise ValueError(f"configs[{k}]: plateau_patience {c.plateau_patience} lowers a model's rate from its "
                                 "own dev cost, which fit_many does not do (its K models' rates are one array, set "
                                 "by each config's schedule): give it plateau_patience 0 and a schedule, or train it "
                                 "alone (TrainConfig.build_trainer)")
        check_shared(configs)
        check_int(seed, "seed", low=0, high=SEEDS - 1, expected="an integer in [0, 2**64)")
        check_bool(eval_train, "eval_train")
        check_bool(progress, "progress", allow_none=True)  # (a string "no" would be a truth value: a bar)
        try:
            dtype = np.dtype(dtype) if dtype is not None else None  # np.dtype(None) is float64: not a default here
        except TypeError:
            raise TypeError(f"dtype must be a floating dtype name, got {dtype!r}") from None
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        callbacks = check_list(() if callbacks is None else callbacks, "callbacks", "xdl.train.Callback")
        for cb in callbacks:
            check_callback(cb, steps=False)  # (a Trainer's checks: a Keras hook or signature named now, not at an
            # epoch's end; and no per-step hook, which fit_many never calls)
            if isinstance(cb, EarlyStopping) and cb.restore_best:  # its restore would miss the results
                raise ValueError("callbacks: EarlyStopping(restore_best=True) would put the whole batch back at the "
                                 "epoch the batch's best model was best at, not each model at its own: give each "
                                 "config a patience (TrainConfig(patience=...)) for per-model early stopping, "
                                 "which keeps each model's best epoch, or EarlyStopping(restore_best=False) to stop "
                                 "the batch")
        check_distinct_callbacks(callbacks)
        self._captured = CapturedSteps(capture)  # the graphs of the captured steps (its backend: the model's)
        self.configs, self.seed, self.dtype, self.eval_train = configs, int(seed), dtype, bool(eval_train)
        self._trained_configs = configs  # as each fit trains them: at the backend's precision (`at_precision_in_use`)
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)
        self.progress = progress
        self.batch_size = configs[0].batch_size
        self.epochs = max(c.epochs for c in configs)
        self.model = self.optimizer = None  # built by fit, once the data gives the sizes
        self.history = History()
        self.epoch = self.step = 0
        self.stop_training = self.resumed = False
        self.last_checkpoint = self.last_checkpoint_at = self.best_checkpoint = None
        self._start_costs = None  # where each model started (`start_cost`), from the first epoch's end
        self._partial = None
        self._mid_step = False  # inside an epoch that no record or stop has closed (as `Trainer`'s)
        self._built_with = None  # (n_classes, standardize's statistics) the first fit built the batch with
        self._loading = False  # within a resume's load of its checkpoint (a failure there: no results to give)

    def _check_width(self, example_shape: tuple, standardize) -> None:
        """What sees each example (of ``example_shape``) before the first layer takes X's width: the
        Standardize layer, and augmentation (as images of the dataset's shape: (4, 16) examples were
        flipped as 8×8 rows of their values, as `Augment.check` says); a mismatch is named now, not in a step."""
        check_standardize(standardize, int(np.prod(example_shape)))
        c = self.configs[0]
        augment = c.build_augment()
        if augment is not None:
            options = ", ".join(key for key in ("augment_shift", "augment_noise", "augment_flip") if getattr(c, key))
            augment.check(example_shape, "X", f"configs: {options} (dataset {c.dataset!r})")

    @property
    def n_models(self) -> int:
        return len(self.configs)

    # -- building -----------------------------------------------------------------------------
    def _build(self, n_features: int, n_classes: int, standardize) -> None:
        models = self._build_on_host(n_features, n_classes, standardize)
        self.model = stack(models, current_backend())  # one upload of the stack, not K × each parameter
        self.optimizer = StackedOptimizer(self.model, [c.build_optimizer(m) for c, m in zip(self.configs, models)])
        self._lambdas = {name: np.array([getattr(c, name) for c in self.configs]) for name in PENALTIES}
        self._scales_cache = {}  # (penalty, m) -> _penalty_scales
        self._schedules = [c.build_schedule() for c in self.configs]
        self._augment = self.configs[0].build_augment()
        self._captured.backend = self.model.backend
        k = self.n_models
        self.histories = [History(train_running=not self.eval_train) for _ in range(k)]  # (as `Trainer`'s)
        self.status = ["training"] * k  # then completed, stopped or failed
        self.errors: list[str | None] = [None] * k
        self._stopping = [{"best": math.inf, "best_epoch": None, "wait": 0} for _ in range(k)]
        # rows kept aside: each early-stopping model's best epoch, and each frozen model's last
        # state (a frozen model still runs forward, so its batch-norm statistics would drift)
        self._kept = {"best": [None] * k, "final": [None] * k}
        self._good = self._snapshot()  # every model's state at the end of its last good epoch

    def _build_on_host(self, n_features: int, n_classes: int, standardize) -> list[Module]:
        """The K models on the host (initial weights are host draws on any backend), model k
        exactly as after ``xdl.seed(configs[k].seed)``: built in worker threads, each with its own
        generator (`TrainConfig.build_model`'s), as NumPy draws without holding the GIL."""
        host = get_backend("numpy")
        if standardize is not None:  # the K models share it: converted once here (a copy: the caller's stays
            standardize = copy.deepcopy(standardize).astype(self.dtype)  # as it is), never by a worker

        def build(config):
            with thread_backend(host):
                return config.build_model(n_features, n_classes, standardize).astype(self.dtype)

        if len(self.configs) == 1:
            return [build(self.configs[0])]
        with ThreadPoolExecutor(min(len(self.configs), _usable_cpus())) as pool:
            return list(pool.map(build, self.configs))

    def _penalty_scales(self, name: str, m: int):
        """The (K, 1) device column λ_k/m of penalty ``name`` (`PENALTIES`), in the models' dtype, for m =
        `penalty_examples` (made once per penalty and m): `WeightPenalty`'s per-model ``slope``."""
        key = (name, m)
        if key not in self._scales_cache:
            self._scales_cache[key] = self.model.backend.asarray((self._lambdas[name] / m).reshape(-1, 1),
                                                                 dtype=self.dtype)
        return self._scales_cache[key]

    capture = loop_capture

    def eager_reason(self) -> str | None:
        """Why the batch's steps run eagerly, or None when they are captured as CUDA graphs."""
        backend = self.model.backend if self.model is not None else current_backend()
        return self._captured.eager_reason(backend, self.configs[0].build_augment() is not None)

    def _snapshot(self, into: dict | None = None) -> dict:
        """A copy of every model's state: new, or written over ``into`` (the epoch's copy reuses the
        last one's memory: fresh pages for K models each epoch cost more than the copy)."""
        if into is None:
            return {"data": self.model.data.copy(), "buffers": [a.copy() for _, a in self.model.named_buffers()]}
        into["data"][...] = self.model.data
        for kept, (_, a) in zip(into["buffers"], self.model.named_buffers()):
            kept[...] = a
        return into

    # -- the loop -----------------------------------------------------------------------------
    def fit(self, X, y, dev=None, n_classes=None, standardize=None, resume=None, **keras_options) -> list[Result]:
        """`fit_many`'s fit of this batch (its options: as there); a Keras option is refused, saying where
        it is here (`KERAS_FIT_OPTIONS`), as are the constructor's (``seed=``), a model's and a Lightning one
        (`MANY_FIT_OPTIONS_ELSEWHERE`)."""
        refuse_keras_options(keras_options, "ManyTrainer.fit", ", ".join(BATCH_FIT_OPTIONS),
                             run="TrainConfig", maker="ManyTrainer", elsewhere=MANY_FIT_OPTIONS_ELSEWHERE)
        claim = FitClaim(self)
        try:
            take_fit(claim, "batch", "ManyTrainer")  # (a second fit meanwhile: refused)
            with enable_grad():  # (a caller's no_grad block: its steps record gradients all the same, as a Trainer's)
                return self._fit(X, y, dev, n_classes, standardize, resume)
        finally:
            FITTING.discard(claim)  # (first, one call: no interrupt between the fit's end and it, `FitClaim`)

    def _fit(self, X, y, dev, n_classes, standardize, resume) -> list[Result]:
        checkpoint = None if resume is None else resume_path(resume)
        if resume is None:
            check_goes_on(self, "batch", "ManyTrainer")
        continuing = resume is None and continues_run(self)  # (the callbacks' state goes on: this run's, checked)
        check_callbacks_own(self, continuing)
        if resume is None and self.model is not None and "training" not in self.status:
            raise ValueError("fit: every model of this batch has ended (its epochs, early stopping or a divergence): "
                             "fit trains the rest of its run; make a new ManyTrainer (or fit_many) to train more")
        reason = self.eager_reason()
        if self.capture is True and reason is not None:
            raise ValueError(f"capture=True, but the batch's steps cannot be captured: {reason}")
        # a frame's columns, which each model then keeps (`Module.feature_names_in_`, as a Trainer's): predict on
        # a frame of them in another order read them by position, silently
        names = feature_names(X)
        check_feature_names(X, self.model.feature_names_in_ if self.model is not None else None)
        X = check_features(X, "X", dtype=self.dtype)
        if len(X) == 0:
            raise ValueError("X has no examples")
        dev = check_dev_pair(dev) if dev is not None else None
        if dev is not None:
            check_feature_names(dev[0], names, "X_dev")
        y, width = class_indices(check_labels(y, len(X), "y"), "y")  # (m,) int64: what the fused loss takes
        if dev is not None:
            dev_X = check_features(dev[0], "X_dev", int(np.prod(X.shape[1:])), dtype=self.dtype)
            if len(dev_X) == 0:
                raise ValueError("X_dev has no examples")
            dev_y, dev_width = class_indices(check_labels(dev[1], len(dev_X), "y_dev", x_name="X_dev"), "y_dev")
            if width is not None and dev_width is not None and dev_width != width:
                raise ValueError(f"y_dev's one-hot rows have {dev_width} columns, y's {width}: the same classes, "
                                 "so as many columns")
            width = width if width is not None else dev_width
            dev = (dev_X, dev_y)
        if width is not None and isinstance(n_classes, int | np.integer) and not isinstance(n_classes, bool) \
                and n_classes != width:  # (a bad one: below)
            raise ValueError(f"n_classes={n_classes!r}, but the one-hot label rows have {width} columns (a class "
                             "each): give as many, or leave n_classes out")
        # one-hot rows say how many classes there are, seen or not (as a Trainer's model of that width takes them)
        observed = max(int(max(y.max(), dev[1].max() if dev is not None and len(dev[1]) else 0)) + 1, width or 0)
        if width is not None and observed > width:  # class indices beside them, beyond their columns
            raise ValueError(f"{'y' if y.max() >= width else 'y_dev'} has class index {observed - 1}, outside the "
                             f"{width} classes the one-hot label rows have [0, {width})")
        if n_classes is None:
            n_classes = max(observed, 2)
            if width is None:  # (one-hot rows' columns are classes the caller named, not a largest label's reach)
                note_label_width((y, dev[1]) if dev is not None else (y,), n_classes)
        elif (isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer)
              or not 2 <= n_classes <= MAX_CLASSES):  # (one output of a softmax is always 1: nothing is learned)
            raise ValueError(f"n_classes must be an integer in [2, {MAX_CLASSES}] (MAX_CLASSES), got {n_classes!r}")
        elif observed > n_classes:  # the labels that do not fit, named
            name = "y" if y.max() + 1 == observed else "y_dev"
            raise ValueError(f"{name} has class index {observed - 1}, outside n_classes={n_classes} classes "
                             f"[0, {n_classes})")
        check_monitored(self.callbacks, dev, accuracy=True)
        backend = self.model.backend if self.model is not None else current_backend()  # (where the batch trains)
        trained = [c.at_precision_in_use(backend, f"configs[{k}]", "fit_many") for k, c in enumerate(self.configs)]
        check_callbacks_fit(self)  # (before the first fit builds the batch: self.model and self.optimizer None then)
        needs_dev = [k for k, c in enumerate(self.configs) if c.patience]
        if needs_dev and dev is None:
            raise ValueError(f"configs[{needs_dev[0]}] has patience {self.configs[needs_dev[0]].patience}: early "
                             "stopping watches the dev cost, so pass dev=(X_dev, y_dev) (or set patience 0)")
        self._check_width(X.shape[1:], standardize)  # (an example's shape: images of augmentation's, not another)
        X = X.reshape(len(X), -1)
        built_with = (int(n_classes), _standardize_digest(standardize))
        if self._built_with is not None and built_with != self._built_with:  # the batch is built by its first fit
            what = "n_classes" if built_with[0] != self._built_with[0] else "standardize"
            raise ValueError(f"fit: {what} differs from the one this batch was built with by its first fit "
                             f"({self._built_with[0] if what == 'n_classes' else 'another layer or none'}); a later "
                             "fit goes on with the same batch: give the same, or make a new ManyTrainer")
        if resume is None:
            check_same_examples(self, len(X), "batch", "ManyTrainer")
        if dev is not None:
            dev = (dev[0].reshape(len(dev[0]), -1), dev[1])
        bounds = self._batches(len(X))
        self._penalty_m = penalty_examples(self.batch_size, len(X))
        if self.model is None:
            self._build(X.shape[1], n_classes, standardize)
            self._built_with = built_with
        self._cost_limit = cost_limit(int(n_classes))  # (as a Trainer's of one model)
        self._trained_configs = trained  # what its results and checkpoints record
        self._provenance = {"configs": [_described(c) for c in trained], "seed": self.seed,
                            "eval_train": self.eval_train, "callbacks": [type(cb).__name__ for cb in self.callbacks],
                            "dtype": str(self.dtype), "n_classes": int(n_classes), "standardize": built_with[1],
                            "data": data_digest(X.astype(self.dtype, copy=False), y),  # (the data as given)
                            "dev": data_digest(dev[0].astype(self.dtype, copy=False), dev[1]) if dev is not None
                            else None}
        flags = self.stop_training, self.resumed  # (put back if the resume is refused)
        self.stop_training, self.resumed = False, resume is not None
        # (the modules' own modes, which the fit sets: a fit called within model(x, training=False), say,
        # would train, and capture its step, in evaluation mode)
        with checkpoint_directories_held(self.callbacks), callbacks_held(self, continuing) as told, \
                mode_here(None), callbacks_told_of_errors(self) as begun:  # (a resume's reads included)
            if resume is not None:
                self._loading = True  # (fit_many: a failure there has no results to give)
                load_resumed(self, checkpoint, flags, told)
                self._loading = False
            X, dev, self._network = network_data(self.model, X, dev, on_host=self._augment is None)
            self.model.predicts = "classes"  # each model taken out predicts classes (a softmax cross-entropy)
            self.model.feature_names_in_ = names  # (each model taken out keeps them: `Stacked.model`)
            self.history.stopped_by = None  # (a name a stop before left is none of this fit's, as a Trainer's)
            for cb in self.callbacks:
                call_hook(self, cb, "on_train_begin", where=f" before {upcoming(self.epoch, self.step)}")
                told.append(cb)  # (its state is this fit's from here: `callbacks_held`)
                begun.append(cb)  # told of an error from here on (as a Trainer's)
            self._stop_if_asked()
            backend = self.model.backend
            if self._augment is None:
                X, y = backend.asarray(X), backend.asarray(y)
            y_device = backend.asarray(y)
            if dev is not None:
                dev = (backend.asarray(dev[0]), backend.asarray(dev[1]))
            bar = progress_bar(self.progress, total=(self.epochs - self.epoch) * len(bounds) - self.step)
            try:
                with SignalFlag() as signals:
                    while self.epoch < self.epochs and not self.stop_training and "training" in self.status:
                        # a model that diverges is marked failed and the others go on, its error said once (as a
                        # Trainer's); the callbacks below run under the caller's settings
                        with overflow_unsaid():
                            record = self._train_epoch(X, y, y_device, dev, bounds, bar, signals)
                        self.history.append(record)
                        record = self.history.records[-1]  # what a callback adds to it is in the history
                        unsaved = []  # the Checkpoints that saved no stop: a later callback (its order) may stop
                        number = record["epoch"]
                        for cb in self.callbacks:
                            cb.on_epoch_end(self, record)
                            check_record(record, cb, number)  # before a later one (a Checkpoint) writes it
                            keras_stop(self, cb)
                            if isinstance(cb, Checkpoint) and not self.stop_training:
                                unsaved.append(cb)
                        self._stop_if_asked()
                        if self.stop_training:  # the stopped models' state, saved by each (as a Trainer's)
                            for cb in unsaved:
                                cb.save_resumable(self)
                        self._mid_step = False  # the epoch is closed: its record taken and every callback run on it
                        if signals.received and self.epoch < self.epochs and "training" in self.status:
                            stop_for_signal(self, signals.received)
                    came = signals.received  # once the batch was over: raised after its end (as a Trainer's)
            finally:
                bar.close()
                self.model.set_random_key(None)
                self._captured.clear()  # a next fit captures again
            for cb in self.callbacks:
                cb.on_train_end(self)
        if came is not None:  # (outside the block, as a Trainer's: no on_exception after on_train_end)
            raise Interrupted(came, self.epoch + 1, self.step, self.last_checkpoint, over=True)
        return self.results()

    def _batches(self, m: int) -> list[tuple[int, int]]:
        min_size = 2 if self.configs[0].batch_norm else 1
        return training_batches(m, self.batch_size, min_size)

    def _train_epoch(self, X, y, y_device, dev, bounds, bar, signals) -> dict:
        model, backend = self.model, self.model.backend
        xp, e, steps, k = backend.xp, self.epoch, len(bounds), self.n_models
        start = time.perf_counter()
        rates = self._rates(e)
        self.optimizer.set_lr(rates)
        captured = self.eager_reason() is None
        if captured:  # (the same arrays each epoch, which the steps' graphs write)
            costs, correct = self._captured.totals(steps, (k,), (k,), np.int64)
        else:
            costs = xp.zeros((steps, k), dtype=np.float64)  # each step's cost per model, on the device
            correct = None if self.eval_train else xp.zeros(k, dtype=np.int64)  # the epoch's hits per model
        correct = None if self.eval_train else correct  # (the graphs' hits array: written, not read then)
        seconds_before = 0.0
        if self._partial is not None:  # resuming mid-epoch
            costs[:self.step] = backend.asarray(np.asarray(self._partial["costs"], dtype=np.float64))
            if correct is not None:
                correct[...] = backend.asarray(np.asarray(self._partial["correct"], dtype=np.int64))
            seconds_before = float(self._partial["seconds"])
            self._partial = None
        order = np.random.default_rng([self.seed, e]).permutation(len(X))  # as Trainer shuffles epoch e
        if not isinstance(X, np.ndarray):
            order = backend.asarray(order)
        seeds = [c.seed for c in self.configs]
        checked = self.step
        if captured:  # the dropout key's step and the epoch's, counted on by each step on the device
            steps_done = self._captured.start_epoch(e * steps + self.step, self.step, (X, y), order, bounds)
            model.set_random_key(seeds, 0, steps_done=steps_done)
            settings = self._captured.settings("step", model, self.eval_train)  # as Trainer's: what a replay keeps
        model.train()
        self._mid_step = True
        for step in range(self.step, steps):
            if captured and self._captured.failure is None:  # (its graph writes costs[step] and adds its hits)
                for name in PENALTIES:  # made before a capture: they outlive its graph
                    self._penalty_scales(name, self._penalty_m)
                self._captured.epoch_step(self._train_step, bounds[step][1] - bounds[step][0],
                                          version=(self.optimizer.version, settings))
            else:
                idx = order[bounds[step][0]:bounds[step][1]]
                Xb, yb = X[idx], y[idx]
                if self._augment is not None:  # on the host, as Trainer does
                    Xb = backend.asarray(self._augment(Xb, np.random.default_rng([self.seed, e, step])))
                    yb = backend.asarray(yb)
                model.set_random_key(seeds, e * steps + step)
                cost, hits = self._train_step(Xb, yb)
                costs[step] = cost
                if hits is not None:
                    correct += hits
            self.step = step + 1
            bar.update(1)
            if backend.host_sync_is_cheap or step + 1 == steps or signals.received:
                self._check_costs(costs, checked, step + 1)
                checked = step + 1
            if e == 0 and step == 0:
                self._check_first_forward()
            if signals.received and step + 1 < steps:
                self._partial = {"costs": backend.to_numpy(costs[:step + 1]).tolist(),
                                 "correct": None if correct is None else backend.to_numpy(correct).tolist(),
                                 "seconds": seconds_before + time.perf_counter() - start, "examples": len(X),
                                 "batch_size": self.batch_size}
                self._mid_step = False
                stop_for_signal(self, signals.received)
        model.set_random_key(None)  # the last step's key is no key for a callback's copy of the stack (as Trainer's)
        step_seconds = seconds_before + time.perf_counter() - start  # (the last step's cost check synced)
        # what the records and their checks need of the device, read in one transfer (as Trainer's): each
        # evaluation's sums, the step costs (the first epoch's starts; the running train costs), the hits, and the
        # state's finite flags
        train = self._evaluation_sums(X, y_device, captured=captured) if self.eval_train else {}
        dev_sums = self._evaluation_sums(*dev, captured=captured) if dev is not None else {}
        at_end = read_together(backend, costs=costs if e == 0 or not self.eval_train else None,
                               correct=None if self.eval_train else correct,
                               train_cost=train.get("cost"), train_correct=train.get("correct"),
                               dev_cost=dev_sums.get("cost"), dev_correct=dev_sums.get("correct"),
                               state=self._state_flags())
        if self.eval_train:
            train = _metrics(at_end["train_cost"], at_end["train_correct"], len(X))
        else:  # as Trainer's: each model's step costs weighted by their batch sizes, and its hits
            sizes = np.array([b - a for a, b in bounds], dtype=np.float64)
            train = {"cost": (at_end["costs"].T @ sizes / len(X)).tolist(),
                     "accuracy": (at_end["correct"] / len(X)).tolist()}
        dev_metrics = _metrics(at_end["dev_cost"], at_end["dev_correct"], len(dev[0])) if dev is not None else None
        seconds = seconds_before + time.perf_counter() - start  # the whole epoch, as Trainer times one
        if e == 0:  # where each model started (`start_cost`)
            self._start_costs = start_cost(at_end["costs"], bounds).tolist()
        self.epoch, self.step = e + 1, 0
        return self._end_epoch(train, dev_metrics, rates, steps, seconds, step_seconds, at_end["state"])

    def _rates(self, epoch: int) -> np.ndarray:
        """The K models' learning rates in epoch ``epoch`` (from 0): their schedules', or their lr — a
        schedule's that decayed below the dtype's smallest positive number as 0, as `Trainer` holds it;
        0 for a model no longer training (frozen: its schedule is not read past its own epochs, the
        ones `TrainConfig.validate` checked it over — a growing one may leave float32's range later)."""
        return np.array([self._rate(k, epoch) if self.status[k] == "training" else 0.0 for k in range(self.n_models)])

    def _rate(self, k: int, epoch: int) -> float:
        """Model k's learning rate in epoch ``epoch`` (from 0), as `_rates` gives a training model's:
        its schedule's, else the rate its optimizer holds — its lr, or one a callback set
        (``trainer.optimizer.lr = …``), kept as a `Trainer` without a schedule keeps it (set back to
        the config's lr each epoch, a callback's rate was never used) — or its lr once frozen (0 held)."""
        schedule = self._schedules[k]
        if schedule is None:
            return self.configs[k].lr if self.optimizer.frozen[k] else float(self.optimizer.lr[k])
        return check_rate(float(schedule(epoch)), f"model {k}'s rate in epoch {epoch + 1}", self.dtype,
                          decayed=epoch > 0)

    def _train_step(self, Xb, yb):
        """One step of the K models on a batch: (their costs, their correct counts or None), (K,)
        device arrays."""
        self.optimizer.zero_grad()
        out = self._network(Xb)
        cost = stacked_softmax_cross_entropy(out, yb)  # (K,): each model's mean cost (labels checked by fit)
        total = None  # Σ_k J_k plus the penalties, where one is set
        for name in PENALTIES:
            if self._lambdas[name].any():
                total = (cost.sum() if total is None else total) + _penalty(self.model, name,
                                                                            self._penalty_scales(name, self._penalty_m))
        if total is not None:
            total.backward()
        else:  # Σ_k J_k's gradient, ∂/∂J_k = 1 for each model, as the sum's backward gives it (a 1 broadcast) —
            backend = self.model.backend  # without the sum and its seed of 1 (two launches on the GPU)
            cost.backward(backend.xp.broadcast_to(backend.scalar(1, cost.dtype), cost.shape))
        self.optimizer.step()
        return cost.data, None if self.eval_train else _hits(out.data, yb)

    def _check_costs(self, costs, start: int, stop: int) -> None:
        """Fail every training model whose cost in steps [start, stop) is not finite."""
        values = self.model.backend.to_numpy(costs[start:stop])
        finite = np.isfinite(values)
        if finite.all():  # (the usual case, read at every step on the CPU: no search for the models that are not)
            return
        for k in np.flatnonzero(~finite.all(axis=0)):
            if self.status[k] == "training":
                step = start + int(np.flatnonzero(~np.isfinite(values[:, k]))[0])
                self._fail(k, f"the cost became {values[step - start, k]} at epoch {self.epoch + 1}, step {step + 1}")

    def _fail(self, k: int, what: str, advice: str | None = None) -> None:
        """Stop model k for good: its state goes back to the end of its last good epoch (``what``: where
        and how it diverged, its history's ``diverged``; ``advice`` ends its error, as a Trainer's)."""
        kept, best = len(self.histories[k]), self._stopping[k].get("best_epoch") if self._kept["best"][k] else None
        self.errors[k] = (f"model {k} diverged: {what}; its result holds its best epoch's weights (epoch {best})"
                          if best is not None else f"model {k} diverged: {what}; it keeps its state after epoch {kept}"
                          if kept else f"model {k} diverged: {what}; it keeps its initial state")
        if advice is not None:
            self.errors[k] += f"; {advice}"
        self.histories[k].diverged = what  # where, as a Trainer's history says it
        self.status[k] = "failed"
        self.optimizer.freeze(k, clear_state=True)  # its state may hold NaN
        good = {"data": self._good["data"][k].copy(), "buffers": [a[k].copy() for a in self._good["buffers"]]}
        self.model.set_row(k, good)
        self._kept["final"][k] = good

    def _end_epoch(self, train: dict, dev: dict | None, rates, steps: int, seconds: float,
                   step_seconds: float, state_flags=None) -> dict:
        """Record each training model's epoch, apply early stopping and the epoch limits; ``state_flags``:
        `_state_flags` as read with the epoch's costs (None: read here)."""
        non_finite = self._non_finite_state(finite=state_flags)
        for k in range(self.n_models):
            if self.status[k] != "training":
                continue
            record = {"epoch": self.epoch, "train_cost": train["cost"][k], "train_accuracy": train["accuracy"][k],
                      "dev_cost": dev["cost"][k] if dev else None, "dev_accuracy": dev["accuracy"][k] if dev else None}
            # the checks of `Trainer._check_record`, in its order and words
            bad = [key for key in ("train_cost", "dev_cost") if record[key] is not None and not math.isfinite(record[key])]
            if bad:
                self._fail(k, f"the {bad[0].replace('_', ' ')} became {record[bad[0]]} at the end of epoch "
                              f"{self.epoch} (after step {steps})")
                continue
            why = diverged_cost(record["train_cost"], self._cost_limit, None if self._start_costs is None else
                                self._start_costs[k], f"the end of epoch {self.epoch}")
            if why is not None:  # finite, but far above where a classifier starts and where this one started
                first = FIRST_EPOCH_HINT if self.epoch == 1 and self._network is self.model else ""  # (no Standardize)
                self._fail(k, why + first)
                continue
            if k in non_finite:  # (a running variance can overflow while the costs stay finite)
                # an overflowed optimizer state is told what to change as a Trainer's is: not the rate
                advice = state_advice(self.configs[k].weight_decay) \
                    if any(name.startswith(OPTIMIZER_STATE) for name in non_finite[k]) else None
                self._fail(k, f"{', '.join(non_finite[k])} became NaN or Inf in epoch {self.epoch}", advice)
                continue
            record.update(lr=float(rates[k]), seconds=seconds, step_seconds=step_seconds)
            self.histories[k].append(record)
            self._early_stopping(k, record)
            if self.status[k] == "training" and self.epoch >= self.configs[k].epochs:
                self.status[k] = "completed"
            if self.status[k] != "training":
                self.optimizer.freeze(k)
                self._kept["final"][k] = self.model.row(k)
        self._good = self._snapshot(into=self._good)
        if "training" not in self.status:
            self.stop_training = True  # every model is done: callbacks see the run's end (a Checkpoint saves)
        active = [k for k in range(self.n_models) if self.status[k] != "failed" and self.histories[k].records
                  and self.histories[k][-1]["epoch"] == self.epoch]
        best = min(active, key=lambda k: (self.histories[k][-1]["dev_cost"] if dev else
                                          self.histories[k][-1]["train_cost"]), default=None)
        record = {"epoch": self.epoch, "active": self.status.count("training"), "best_model": best}
        for key in ("train_cost", "train_accuracy", "dev_cost", "dev_accuracy"):
            record[key] = self.histories[best][-1][key] if best is not None else None
        record.update(seconds=seconds, step_seconds=step_seconds)
        return record

    def _check_first_forward(self) -> None:
        """As `Trainer._check_first_forward`, model by model (one host read, once a run): a training
        model whose running statistics are NaN or Inf after the first step got them from its first
        forward pass, at its starting weights — it fails, told to standardize the inputs or draw smaller
        initial weights, not to lower a rate that is not the cause (it failed at the epoch's end, as a
        state that became NaN in training); the others go on."""
        for k, names in self._non_finite_state(buffers_only=True).items():
            self._fail(k, first_forward_failure(names), FIRST_FORWARD_ADVICE)

    def _checked_state(self, buffers_only: bool = False) -> tuple[list, list]:
        """(the arrays `_state_flags` checks, (name, array) for each name `_non_finite_state` may give): the
        stack's data, buffers and optimizer state (its buffers alone: ``buffers_only``)."""
        buffers = list(self.model.named_buffers())
        if buffers_only:
            return [a for _, a in buffers], buffers
        state = [(f"{OPTIMIZER_STATE}{name}", a) for name, a in self.optimizer.state_arrays().items()]
        named = [(name, p.data) for name, p in self.model.named_parameters()] + buffers + state
        return [self.model.data, *(a for _, a in buffers + state)], named

    def _state_flags(self, buffers_only: bool = False):
        """Each checked array's (K,) finite flags (`_checked_state`), stacked on the device and not read —
        (arrays, K) booleans —, or None where there is no array to check (no batch norm: no buffers)."""
        arrays, _ = self._checked_state(buffers_only)
        xp = self.model.backend.xp
        return xp.stack([xp.isfinite(a.reshape(self.n_models, -1)).all(axis=1) for a in arrays]) if arrays else None

    def _non_finite_state(self, buffers_only: bool = False, finite=None) -> dict[int, list[str]]:
        """Model k → the names of its parameters, buffers and optimizer state (its buffers alone:
        ``buffers_only``) holding NaN or Inf, for each training model that has any (as `Trainer`
        checks its model's and optimizer's state each epoch — an overflowed state, Adam's v at a
        weight_decay of 1e20, stops the updates while the costs stay finite); the names looked up only
        for a model that has one. ``finite``: `_state_flags` already read on the host (with other values:
        one read in all); None: read here, one host read."""
        backend, training = self.model.backend, np.array([s == "training" for s in self.status])
        if finite is None:
            stacked = self._state_flags(buffers_only)
            if stacked is None:
                return {}
            finite = backend.to_numpy(stacked)
        bad = np.flatnonzero(training & ~finite.astype(bool).all(axis=0))
        if not bad.size:  # (the usual epoch: no names to look up)
            return {}
        _, named = self._checked_state(buffers_only)
        return {int(k): [name for name, a in named if not bool(backend.xp.isfinite(a[k]).all())] for k in bad}

    def _stop_if_asked(self) -> None:
        """A callback that stopped the batch (``stop_training``) stops every model still training,
        as early stopping stops one."""
        if self.stop_training:
            for k, status in enumerate(self.status):
                if status == "training":
                    self.stop_model(k)
                    if self.history.stopped_by:  # the batch's reason, said to be the batch's: EarlyStopping's "dev
                        # cost did not improve" is of the batch's record (its best model's), not of a model improving
                        self.histories[k].stopped_by = f"stopped with the batch: {self.history.stopped_by}"

    def stop_model(self, k: int, status: str = "stopped") -> None:
        """Stop model k after this epoch, as early stopping does (a callback's way to prune it):
        it is frozen with its state kept; its result says ``status`` (one of `STOP_STATUSES`).
        Both are checked before anything changes; a model already stopped stays as it is."""
        k = check_int(k, "stop_model: k", low=0, high=self.n_models - 1,
                      expected=f"a model's index, an integer in [0, {self.n_models - 1}]")
        if status not in STOP_STATUSES:
            raise ValueError(f"stop_model: status must be one of {', '.join(map(repr, STOP_STATUSES))}, got {status!r}")
        if self.status[k] != "training":
            return
        self.status[k] = status
        self.histories[k].stopped_epoch = self.epoch
        self.histories[k].stopped_by = f"{status} by a callback"
        self.optimizer.freeze(k)
        self._kept["final"][k] = self.model.row(k)

    def _early_stopping(self, k: int, record: dict) -> None:
        """`EarlyStopping(patience=configs[k].patience)` on the dev cost, for model k alone."""
        patience, state = self.configs[k].patience, self._stopping[k]
        if not patience:
            return
        if record["dev_cost"] < state["best"]:
            state.update(best=record["dev_cost"], best_epoch=record["epoch"], wait=0)
            self._kept["best"][k] = self.model.row(k)
        else:
            state["wait"] += 1
            if state["wait"] >= patience:
                self.status[k] = "stopped"
                self.histories[k].stopped_epoch = record["epoch"]
                self.histories[k].stopped_by = patience_reason("dev_cost", state["wait"])

    @no_grad()
    def _evaluation_sums(self, X, y, batch_size: int = 1024, captured: bool = False) -> dict:
        """Each model's summed cost (Σ batch cost × batch size) and hits in evaluation mode, not read:
        {"cost": (K,) float64, "correct": (K,) int64} device arrays (`_metrics` makes them costs and
        accuracies); ``captured``: each batch's pass a graph, as `Trainer._evaluation_sums`'."""
        xp, k = self.model.backend.xp, self.n_models
        cost_sum, correct = xp.zeros(k, dtype=np.float64), xp.zeros(k, dtype=np.int64)
        settings = self._captured.settings("evaluate", self.model) if captured else None

        def batch(Xb, yb):
            out = self._network(Xb)
            return stacked_softmax_cross_entropy(out, yb).data * len(yb), _hits(out.data, yb)

        with evaluating_here():
            for i in range(0, len(X), batch_size):
                Xb, yb = X[i:i + batch_size], y[i:i + batch_size]
                if captured and self._captured.failure is None:
                    cost, hits = self._captured.call("evaluate", batch, Xb, yb, version=settings)
                else:
                    cost, hits = batch(Xb, yb)
                cost_sum += cost
                correct += hits
        return {"cost": cost_sum, "correct": correct}

    # -- results ------------------------------------------------------------------------------
    def results(self, last_epoch: bool = False) -> list[Result]:
        """One `Result` per configuration: model k with its best epoch's weights under early
        stopping (as `EarlyStopping` restores them), else its last good ones — each taken out of
        the batch when first read (`Result.model`). ``last_epoch``: a model still training as it was
        at the end of the last epoch its history records (after an error inside an epoch: its steps
        since may be half done), not as it is now."""
        # one copy of the batch, for models still training (results asked mid-run): as it is, or at its last epoch's end
        now = getattr(self, "_good", None) if last_epoch else None
        out = []
        for k, config in enumerate(self._trained_configs):
            history, best, final = self.histories[k], self._kept["best"][k], self._kept["final"][k]
            row = best if best is not None else final
            if row is None:
                now = now or self._snapshot()
                row = {"data": now["data"][k], "buffers": [a[k] for a in now["buffers"]]}
            if self.status[k] == "training":  # a result taken mid-run: its history as it is now, not the live one
                history = History.from_dict(history.to_dict())
            if best is not None:
                history.best_epoch = self._stopping[k]["best_epoch"]
            out.append(Result(config, history, self.status[k], self.errors[k],
                              take_model=functools.partial(self.model.model, k, row)))
        return out

    # -- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self, path) -> Path:
        """The whole batch — weights, statistics, optimizer state, each model's status, history and
        early-stopping state, the position in the run — in one file, written atomically."""
        opt = self.optimizer.state_dict()
        to_numpy = self.model.backend.to_numpy
        arrays = {f"optimizer/{name}": a for name, a in opt.pop("state").items()}
        arrays["good/data"] = to_numpy(self._good["data"])
        statistics = {f"good/buffer/{i}": a for i, a in enumerate(self._good["buffers"])}
        for kind, rows in self._kept.items():
            for k, row in enumerate(rows):
                if row is not None:
                    arrays[f"{kind}/{k}/data"] = to_numpy(row["data"])
                    statistics.update({f"{kind}/{k}/buffer/{i}": a for i, a in enumerate(row["buffers"])})
        # every copy's statistics (small) in one host read per dtype, not one per array: each is a sync on a GPU
        arrays.update(zip(statistics, to_numpy_together(self.model.backend, statistics.values())))
        callbacks = []
        for i, cb in enumerate(self.callbacks):
            state, cb_arrays = callback_state(cb)
            callbacks.append(state)
            arrays.update({f"callback/{i}/{name}": v for name, v in cb_arrays.items()})
        extra = {"many": True, "epoch": self.epoch, "step": self.step, "partial": self._partial, "optimizer": opt,
                 "status": self.status, "errors": self.errors,
                 "histories": [h.to_encoded_dict() for h in self.histories], "history": self.history.to_encoded_dict(),
                 "callbacks": callbacks, "provenance": self._provenance,
                 "stopping": self._stopping, "start_costs": self._start_costs}
        return write_checkpoint(self.model, path, position(self.epoch, self.step), extra, arrays)

    def load_checkpoint(self, path) -> None:
        """Restore what `save_checkpoint` wrote, after checking it was made by the same configs,
        seed, dtype and data (the first difference is named; nothing changes before)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"resume: no checkpoint at {str(path)!r}")
        extra, arrays = read_extra(path)
        check_checkpoint_kind(extra, path, many=True)
        _check_many_provenance(extra, path)
        saved = extra["provenance"]
        if len(saved["configs"]) != self.n_models:
            raise ValueError(f"resume: the checkpoint holds {counted(len(saved['configs']), 'model')}, configs has "
                             f"{self.n_models} ({str(path)!r})")
        # the configs before the arrays: a batch of another architecture keeps other buffers (batch norm's running
        # statistics), which the arrays' check named as missing from a "damaged or edited" file
        for k, (then, now) in enumerate(zip(saved["configs"], self.configs)):
            changed = now.first_change(then)  # (the saved configs leave `IGNORED` out)
            if changed is not None:
                may_change = [key for key in RESUME_MAY_CHANGE if key in then and key not in PLATEAU]
                raise ValueError(f"resume: configs[{k}].{changed[0]} is {changed[2]!r}, the checkpoint's was "
                                 f"{changed[1]!r}; a batch resumes with the configurations it was made with (only "
                                 f"their {', '.join(may_change)} may change) ({str(path)!r})")
        _check_many_state(extra, arrays, path, self.n_models, len(self._good["buffers"]))
        # the callbacks by type, as a Trainer's run compares them (each loads the state of its own kind);
        # a checkpoint from before a key was recorded: eval_train was True, callbacks and n_classes unknown
        before = {"eval_train": True, "callbacks": self._provenance["callbacks"],
                  "n_classes": self._provenance["n_classes"]}
        before["standardize"] = self._provenance["standardize"]
        for key in ("seed", "dtype", "data", "dev", "eval_train", "callbacks", "n_classes", "standardize"):
            then = saved[key] if key in saved else before[key]
            if then != self._provenance[key]:
                raise ValueError(f"resume: {key} differs from the checkpoint's ({then!r}, now "
                                 f"{self._provenance[key]!r}) ({str(path)!r})")
        if len(extra["callbacks"]) != len(self.callbacks):
            saved_callbacks = counted(len(extra["callbacks"]), "callback")
            raise ValueError(f"resume: the checkpoint holds the state of {saved_callbacks}, this run has "
                             f"{counted(len(self.callbacks), 'callback')} ({str(path)!r})")
        check_resumes_into(self.callbacks, path)  # (not over another run's resumable state)
        trains_on = self._trains_on(extra, path)
        opt = dict(extra["optimizer"], state={name[len("optimizer/"):]: a for name, a in arrays.items()
                                               if name.startswith("optimizer/")})
        self.optimizer.check_state_dict(opt)  # everything checked before anything is written
        load(path, model=self.model)
        # from here the batch holds part of the checkpoint's state until the end: a failure on the way leaves it
        # where only a resume goes on (`_mid_step`; a refusal above changed nothing, and the batch trains on)
        self._mid_step = True
        self.optimizer.load_state_dict(opt)
        backend = self.model.backend
        n_buffers = len(self._good["buffers"])
        self._good = {"data": backend.asarray(arrays["good/data"]),
                      "buffers": [backend.asarray(arrays[f"good/buffer/{i}"]) for i in range(n_buffers)]}
        for kind, rows in self._kept.items():
            for k in range(self.n_models):
                rows[k] = None if f"{kind}/{k}/data" not in arrays else {
                    "data": backend.asarray(arrays[f"{kind}/{k}/data"]),
                    "buffers": [backend.asarray(arrays[f"{kind}/{k}/buffer/{i}"]) for i in range(n_buffers)]}
        self._stopping = [dict(s, best=float(s["best"])) for s in extra["stopping"]]
        for i, (cb, cb_state) in enumerate(zip(self.callbacks, extra["callbacks"])):
            prefix = f"callback/{i}/"
            load_callback_state(cb, cb_state, {n[len(prefix):]: v for n, v in arrays.items() if n.startswith(prefix)})
        self.status, self.errors = list(extra["status"]), list(extra["errors"])
        self.histories = [History.from_dict(h) for h in extra["histories"]]
        for history in self.histories:  # (a checkpoint written before histories said it)
            history.train_running = not self.eval_train
        self.history = History.from_dict(extra["history"])
        self.epoch, self.step, self._partial = int(extra["epoch"]), int(extra["step"]), extra["partial"]
        self._start_costs = extra.get("start_costs")  # (None from an older checkpoint: the limit alone decides)
        for k in trains_on:  # completed at this epoch, given more epochs now
            self.status[k], self._kept["final"][k] = "training", None
            self.optimizer.unfreeze(k, self._rate(k, self.epoch))
        for k, config in enumerate(self.configs):  # resumed with a patience no larger than the epochs it has waited:
            # stopped where it is, as a Trainer's EarlyStopping stops a run resumed so (it trained another epoch, and
            # went on where that one improved)
            wait = self._stopping[k]["wait"]
            if self.status[k] == "training" and config.patience and wait >= config.patience:
                self.status[k] = "stopped"
                self.histories[k].stopped_epoch = len(self.histories[k])
                self.histories[k].stopped_by = patience_reason("dev_cost", wait)
                self.optimizer.freeze(k)
                self._kept["final"][k] = self.model.row(k)
        ended = [k for k, c in enumerate(self.configs)  # resumed with no more epochs than it has trained
                 if self.status[k] == "training" and not self.step and len(self.histories[k]) >= c.epochs]
        for k in ended:
            self.status[k] = "completed"
            self.optimizer.freeze(k)
            self._kept["final"][k] = self.model.row(k)
        if ended and "training" not in self.status:
            warn_caller("resume: the checkpoint's run is over (every model has trained its epochs): nothing to "
                        "train; it ends as it ended — give the configs more epochs to train on")
        self._mid_step = False
        self.last_checkpoint, self.last_checkpoint_at = path, (self.epoch, self.step)

    def _trains_on(self, extra: dict, path: Path) -> list[int]:
        """Check each model's epochs and patience against the checkpoint's (`TrainConfig.check_resume`'s
        rules: epochs more than it has trained, patience not switched on or off); return the models
        that had completed their epochs and train on (given more, at the batch's epoch: in step with
        the others)."""
        saved, epoch, trains_on = extra["provenance"]["configs"], int(extra["epoch"]), []
        for k, (status, config) in enumerate(zip(extra["status"], self.configs)):
            done = len(extra["histories"][k]["records"])
            if status == "completed" and config.epochs != saved[k]["epochs"]:
                if done != epoch or int(extra["step"]):
                    raise ValueError(f"resume: configs[{k}].epochs is {config.epochs}, but model {k} completed its "
                                     f"{counted(done, 'epoch')} before the batch's epoch "
                                     f"{epoch + 1 if extra['step'] else epoch}: "
                                     "it can only train on in step with the others; keep its epochs")
                trains_on.append(k)
            if status == "training" or k in trains_on:
                config.check_resume(saved[k], str(path), done, option=lambda name, k=k: f"configs[{k}].{name}",
                                    step=int(extra["step"]))  # (a model training is at the batch's step)
            elif status == "stopped" and config.patience > saved[k]["patience"]:  # (a Trainer's run trains on)
                warn_caller(f"resume: model {k} was stopped by early stopping after {counted(done, 'epoch')}; it stays "
                            f"stopped (a model of a batch trains only in step with the others): configs[{k}].patience "
                            f"{config.patience} is not applied to it")
        if "training" not in extra["status"] and not trains_on:  # as a Trainer's run over: it ends as it ended
            warn_caller(f"resume: every model of the checkpoint in {str(path)!r} has finished (completed, stopped "
                        "or failed): nothing to train; the batch ends as it ended — raise the epochs of a completed "
                        "model (one without a cosine schedule, which spans its epochs) to train it on")
        return trains_on


# a model's status in a batch checkpoint (a model `stop_model` pruned is one xdl writes)
MODEL_STATUSES = ("training", "completed", *STOP_STATUSES, "failed")


# what `ManyTrainer.fit` says of an option it does not take: the constructor's own (from its signature: ``fit(X, y,
# seed=…)`` said only "not an option of ManyTrainer.fit"), then a model's or another library's
MANY_FIT_OPTIONS_ELSEWHERE = {
    **{name: f"it is the constructor's: ManyTrainer(configs, {name}=…) (as fit_many(configs, X, y, {name}=…))"
       for name in keywords_of(ManyTrainer.__init__, ("configs",))},
    "seed": "it is the constructor's, the batches' order: ManyTrainer(configs, seed=…) (as fit_many(configs, X, y, "
            "seed=…)); each model's initialization and dropout masks take its TrainConfig's seed",
    **BATCH_OPTIONS_ELSEWHERE,
}


def _check_many_provenance(extra: dict, path) -> None:
    """A `fit_many` checkpoint's provenance, of the kind `ManyTrainer.save_checkpoint` writes: a dict of
    the batch's configs (dicts), seed, dtype, data and dev — what a resume compares first."""
    provenance = extra.get("provenance")
    if not (is_dict(provenance) and is_list_of(provenance.get("configs"), is_dict)):
        raise damaged(path, f"its 'provenance' is {provenance!r:.80}, expected a dict of the batch's configs (dicts), "
                            "seed, dtype and data")
    missing = [key for key in ("seed", "dtype", "data", "dev") if key not in provenance]
    if missing:
        raise damaged(path, f"its provenance has no {missing[0]!r}")


def _check_many_state(extra: dict, arrays: dict, path, n_models: int, n_buffers: int) -> None:
    """The fields of a `fit_many` checkpoint's ``extra`` (and the arrays beside it) that a resume
    reads as they are, of the kinds `ManyTrainer.save_checkpoint` writes, one per model where it
    keeps one per model — as `check_run_state` checks a `Trainer`'s. Without it a damaged or edited
    file was a KeyError ('dev', 'good/buffer/0'), a TypeError or an OverflowError of the resume; an
    ``errors`` list cut short trained the batch, wrote its checkpoints, then failed as an IndexError.
    ``n_models``: the models resumed, as many as the checkpoint's configs (the resume checked its
    provenance and their number first: `_check_many_provenance`); ``n_buffers``: the stacked model's
    buffers, each kept copy holds them all."""
    n = n_models
    fields = (("epoch", is_count, "an integer ≥ 0"), ("step", is_count, "an integer ≥ 0"),
              ("partial", optional(is_dict), "a dict or null"), ("optimizer", is_dict, "a dict"),
              ("status", lambda v: is_list_of(v, lambda s: s in MODEL_STATUSES, n),
               f"a list of {n} of {', '.join(MODEL_STATUSES)}"),
              ("errors", lambda v: is_list_of(v, optional(lambda e: isinstance(e, str)), n),
               f"a list of {n} strings or nulls"),
              ("histories", lambda v: is_list_of(v, is_records, n), f"a list of {n} histories (dicts of records)"),
              ("history", is_records, "a dict of records (dicts)"),
              ("callbacks", lambda v: is_list_of(v, is_dict),
               "a list of the callbacks' states (dicts)"),
              ("stopping", lambda v: is_list_of(v, lambda s: isinstance(s, dict) and is_number(s.get("best")), n),
               f"a list of {n} dicts with a best cost"),
              ("start_costs", optional(lambda v: is_list_of(v, optional(is_number), n)),
               f"a list of {n} numbers, or null"))
    check_fields(extra, fields, path, required=[key for key, _, _ in fields if key != "start_costs"])
    kept = ["good/data", *(f"good/buffer/{i}" for i in range(n_buffers))]
    for kind in ("final", "best"):  # a model's kept copy: its row and every buffer, or none of them
        kept += [f"{kind}/{k}/{name}" for k in range(n) if f"{kind}/{k}/data" in arrays
                 for name in ("data", *(f"buffer/{i}" for i in range(n_buffers)))]
    absent = next((name for name in kept if name not in arrays), None)
    if absent is not None:
        raise damaged(path, f"it has no array {absent!r}")


def _standardize_digest(standardize) -> str | None:
    """What a batch's provenance records of its ``standardize`` layer: its statistics' digest, or None."""
    if standardize is None:
        return None
    return data_digest(to_numpy(standardize.mean), to_numpy(standardize.scale))["sha1"]


def check_standardize(standardize, n_features: int) -> None:
    """``standardize`` is None or a `Standardize` layer of ``n_features`` inputs."""
    if standardize is not None and not isinstance(standardize, Standardize):
        hint = " (a Standardizer's .layer())" if hasattr(standardize, "layer") else ""
        raise TypeError(f"standardize must be an xdl.nn.Standardize layer{hint} or None, got {standardize!r}")
    if standardize is not None and standardize.features != n_features:
        raise ValueError(f"standardize has {standardize.features} features, X has {n_features}")


def _metrics(cost_sum: np.ndarray, correct: np.ndarray, m: int) -> dict:
    """{"cost": Σ cost / m, "accuracy": hits / m}, lists of K, from an evaluation's sums read on the host
    (`ManyTrainer._evaluation_sums`) over m examples."""
    m = max(m, 1)
    return {"cost": (cost_sum / m).tolist(), "accuracy": (correct / m).tolist()}


def _hits(logits, labels):
    """Each model's correct predictions: logits (B, K, C), class indices (B,) → (K,)."""
    return (logits.argmax(axis=2) == labels[:, None]).sum(axis=0)


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the OS says), not the machine's."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def _described(config: TrainConfig) -> dict:
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in IGNORED}


def _penalty(model, kind: str, slopes) -> Tensor:
    """Σ_k of each model's penalty ``kind`` (`PENALTIES`), λ_k/(2m)·Σ‖W_k‖² or λ_k/m·Σ|W_k| as `xdl.losses.l2`
    and `xdl.losses.l1` compute it alone (gradient (λ_k/m)·W_k or (λ_k/m)·sign(W_k), 0 at a weight of exactly
    0), ``slopes`` the (K, 1) column λ_k/m (`_penalty_scales`): one node over the stack's weight columns
    [0, n_weights) of its (K, P) buffers, one pass each way over that (K, n_weights) region."""
    weights = model.parameters("weight")
    columns = slice(0, model.n_weights)
    region = (model.data[:, columns], model.grad[:, columns], tuple(w.grad for w in weights))
    return WeightPenalty.apply(*weights, kind=kind, slope=slopes, ranges=((tuple(range(len(weights))), region),))
