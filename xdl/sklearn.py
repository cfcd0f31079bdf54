"""`MLPClassifier`: an xdl network as a scikit-learn estimator (``fit``/``partial_fit``/``predict``/
``predict_proba``/``predict_log_proba``/``score``; usable in `Pipeline`, `GridSearchCV` and
`RandomizedSearchCV`).

Needs scikit-learn (``pip install 'xdl[sklearn]'``). Inputs are checked with scikit-learn's own
``validate_data`` and standardized with the training statistics: by the estimator in float64,
before the cast to the network's float32 (a feature with a large offset and a small spread — x·0.01
+ 1e6 — keeps it), and by the `Standardize` layer that ``model_`` starts with, so the network alone
(``xdl.save(clf.model_)``) takes raw inputs too. Labels may be any values (``classes_`` maps them).
A fit draws from generators of its own, keyed by ``seed`` (fits in threads at once give the fits
made one by one; the process's generators are left alone). A fitted estimator pickles (the trainer
is left out).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import math

import numpy as np

from xdl.extras import import_error

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as e:  # (one installed but failing to import was told to install it: `import_error`)
    raise import_error(e, ("sklearn",), "xdl.sklearn needs scikit-learn ≥ 1.6", "sklearn")

from xdl.backend import SEEDS, array_to_numpy, on_device, resolve_backend, thread_backend, thread_seed
from xdl.caller import warn_caller
from xdl.config import ADDED_OPTIONS, SCHEDULE_OPTIONS, TrainConfig
from xdl.data import Standardizer, split
from xdl.data.validation import check_bool, check_int, check_number, first_where, standardized
from xdl.nn.mlp import ACTIVATIONS
from xdl.nn.module import modes_of, restore_modes
from xdl.train.divergence import RATE_ADVICE
from xdl.train.early_stopping import EarlyStopping
from xdl.train.interrupt import Interrupted
from xdl.train.plateau import ReduceLROnPlateau

__all__ = ["MLPClassifier"]


ARCHITECTURE = ("hidden", "activation", "batch_norm", "dropout")  # the options a fitted network is made of
# the options of fit's callbacks (early stopping, the plateau), which partial_fit leaves out (`_training`)
CALLBACK_OPTIONS = ("patience", "plateau_patience", "plateau_factor")
# the schedules' own settings, each read by some schedules only (by the others ignored, as scikit-learn's
# estimators ignore a solver's setting under another solver: a grid may cross them)
SCHEDULE_SETTINGS = tuple(sorted({name for reads in SCHEDULE_OPTIONS.values() for name in reads} - {"lr", "epochs"}))
NETWORK_DTYPE = np.dtype(np.float32)  # the dtype of the layers `TrainConfig.build_model` makes (xdl's default)
# the dtypes ``validate_data`` leaves X in (any other becomes float64): small integers too, as MNIST's uint8
# pixels, which the standardization reads a piece at a time in float64 — cast whole to float64 first, a
# uint8 set took 12× its size in fit and predict (8× the float64 copy, 4× the network's float32 inputs)
INPUT_DTYPES = (np.float64, np.float32, np.uint8, np.int8, np.uint16, np.int16)


try:  # scikit-learn's own, so an ``except`` on it catches ours; both a ValueError and a TypeError
    from sklearn.utils._param_validation import InvalidParameterError
except ImportError:  # (a private module: where a release moves it, one of the same bases)
    class InvalidParameterError(ValueError, TypeError):
        """A constructor parameter of the estimator is invalid."""


# scikit-learn's MLPClassifier parameters that are named otherwise here (`_hinting_sklearn_names`)
SKLEARN_NAMES = {
    "hidden_layer_sizes": "hidden",
    "alpha": "l2 (the same λ: the cost minimized + λ/2m·Σ‖W‖², m the batch size — a last, smaller batch's too, "
             "which scikit-learn divides by its own size; 0 by default)",
    "learning_rate_init": "lr",
    "max_iter": "epochs",
    "solver": "optimizer ('sgd', 'momentum', 'nesterov', 'adam', …; scikit-learn's solver='sgd' with its defaults "
              "momentum=0.9 and nesterovs_momentum=True is optimizer='nesterov'; 'lbfgs' is not offered)",
    "random_state": "seed",
    # (scikit-learn stops once more than n_iter_no_change epochs have not improved: patience counts them to it)
    "n_iter_no_change": "patience, one more (n_iter_no_change=10 stops at the 11th epoch without improvement, as "
                        "patience=11 does)",
    "tol": "no parameter (early stopping counts any fall of the dev cost as an improvement; plateau_patience, a fall "
           "of more than 1e-4, scikit-learn's default tol)",
    # (scikit-learn's docs say two epochs; its code lowers the rate once more than n_iter_no_change have not improved;
    # its docs say invscaling's t is a time step, its code sets the rate at each epoch's end, t the samples seen)
    "learning_rate": "schedule ('constant' is schedule='none'; 'invscaling', lr/(t + 1)**power_t from each epoch's "
                     "end on, t the examples trained on so far, has no match: schedule='inverse_sqrt' is "
                     "lr·decay_k/√max(epoch, 1), its default power_t 0.5, and 'inverse_time' "
                     "lr/(1 + decay_rate·epoch)) and, for 'adaptive', "
                     "plateau_patience=n_iter_no_change + 1 (11 with its default 10) with plateau_factor=0.2 (its "
                     "division by 5) and schedule='none', watching the training cost (with early_stopping=True, "
                     "the dev cost, and a patience above plateau_patience: early stopping stops, where "
                     "scikit-learn's lowers the rate instead)",
    "power_t": "no parameter (scikit-learn's 'invscaling', lr/(t + 1)**power_t from each epoch's end on, t the "
               "examples trained on so far, has no match; its default power_t 0.5 is schedule='inverse_sqrt', "
               "lr·decay_k/√max(epoch, 1), and schedule='inverse_time' decays lr/(1 + decay_rate·epoch))",
    "momentum": "no parameter (optimizer='momentum' or 'nesterov' takes β = 0.9, scikit-learn's default momentum)",
    "nesterovs_momentum": "optimizer='nesterov' (True) or optimizer='momentum' (False)",
    "beta_1": "no parameter (optimizer='adam' takes β₁ = 0.9, scikit-learn's default beta_1)",
    "beta_2": "no parameter (optimizer='adam' takes β₂ = 0.999, scikit-learn's default beta_2)",
    "epsilon": "no parameter (optimizer='adam' takes ε = 1e-8, scikit-learn's default epsilon)",
    "shuffle": "no parameter (every epoch shuffles the examples, drawn from seed, as scikit-learn's shuffle=True)",
    "verbose": "no parameter (each epoch's costs are in history_, the training cost in loss_curve_ as scikit-learn's)",
    "max_fun": "no parameter ('lbfgs', which it bounds, is not offered: optimizer takes mini-batch ones, 'adam' by "
               "default)",
}
# scikit-learn's values of parameters named alike here that are spelled otherwise (`_refuse_sklearn_values`)
SKLEARN_VALUES = {("activation", "logistic"): "it is 'sigmoid' here",
                  # (the offered ones read from the table: a list written here would miss one added there)
                  ("activation", "identity"): f"it is not offered here ({', '.join(ACTIVATIONS)})",
                  ("batch_size", "auto"): "it is min(200, n_samples): give that integer here"}


def _hinting_sklearn_names(init):
    """``init`` refusing a keyword scikit-learn's MLPClassifier takes under another name here, with
    that name (a bare "unexpected keyword argument 'alpha'" said nothing of ``l2``); its signature
    stays ``init``'s (`functools.wraps`: scikit-learn's ``get_params`` reads it)."""
    @functools.wraps(init)
    def checked(self, *args, **kwargs):
        _refuse_sklearn_names(kwargs, "MLPClassifier() got an unexpected keyword argument")
        init(self, *args, **kwargs)

    return checked


def _refuse_sklearn_names(keys, said: str, error: type[Exception] = TypeError) -> None:
    """An ``error`` for the first of ``keys`` that scikit-learn's MLPClassifier takes under another
    name here (`SKLEARN_NAMES`), ``said`` opening it — the constructor's (a TypeError, as Python's),
    and ``set_params``' (a ValueError, as scikit-learn's), which ``GridSearchCV`` calls with a
    grid's keys (``{"alpha": [...]}``, scikit-learn's habit)."""
    for key in keys:
        if key in SKLEARN_NAMES:
            raise error(f"{said} {key!r}; scikit-learn's {key} is {SKLEARN_NAMES[key]} here")


def _refuse_sklearn_values(estimator) -> None:
    """A ValueError for the first parameter holding a scikit-learn value spelled otherwise here
    (`SKLEARN_VALUES`), naming the way: ``batch_size='auto'`` was told only "must be an integer"."""
    for (name, value), way in SKLEARN_VALUES.items():
        given = getattr(estimator, name)
        if isinstance(given, str) and given == value:
            raise ValueError(f"MLPClassifier: {name}={value!r} is scikit-learn's; {way}")


def _keep_names(estimator) -> None:
    """``model_.feature_names_in_`` = the estimator's (the frame's columns ``validate_data`` kept), or
    None: the network is trained on arrays here, and alone (``xdl.save(clf.model_)``, loaded and
    given a frame) it read a frame of the same columns in another order by position, silently."""
    names = getattr(estimator, "feature_names_in_", None)
    estimator.model_.feature_names_in_ = tuple(str(n) for n in names) if names is not None else None


def _warn_stopping_before_plateau(config: TrainConfig) -> None:
    """Warn where early stopping (``patience`` epochs without a fall of the dev cost) stops the run before the
    plateau (``plateau_patience`` epochs without one) lowers the rate: patience ≤ plateau_patience, both on.
    scikit-learn's learning_rate="adaptive" lowers the rate where its early stopping would stop (it stops only
    once the rate is below 1e-6); here each counts on its own, and the first to reach its count acts."""
    if config.patience and config.plateau_patience and config.patience <= config.plateau_patience:
        warn_caller(f"MLPClassifier: early stopping (patience={config.patience}) stops the run before the plateau "
                    f"(plateau_patience={config.plateau_patience}) lowers the rate: scikit-learn's "
                    "learning_rate='adaptive' lowers it instead of stopping; for that, give a patience above "
                    "plateau_patience (a few times it: each lowering then has epochs to help)")


def held_out_count(validation_fraction, n: int) -> int:
    """The examples early stopping holds out of ``n``: ⌈validation_fraction · n⌉, scikit-learn's (its
    train_test_split's test_size, in the same float product: 0.28 · 25 is 7.000000000000001, 8 held out)."""
    return math.ceil(float(validation_fraction) * n)


def check_held_out(n_dev: int, n: int, classes, class_counts) -> None:
    """Refuse a hold-out scikit-learn's MLPClassifier(early_stopping=True) refuses: a validation set under 2
    examples, no training example, and for two classes (which it splits stratified) a class of one example or a
    training set under 2 — a training set of one is taken for three classes or more, which it does not stratify."""
    two = len(classes) == 2
    if two and class_counts.min() < 2:
        label = classes.tolist()[int(class_counts.argmin())]
        raise ValueError(f"MLPClassifier: early_stopping holds out a validation set stratified by y's two classes, "
                         f"and class {label!r} has 1 example: each needs at least 2, one for each part (as "
                         "scikit-learn's); give more examples of it, or early_stopping=False")
    need = 2 if two else 1  # (stratified: one of each class)
    if n_dev < 2 or n - n_dev < need:
        raise ValueError(f"MLPClassifier: early_stopping holds out ⌈validation_fraction · n⌉ = {n_dev} of {n} "
                         f"examples (as scikit-learn's), which leaves {n_dev} for validation and {n - n_dev} for "
                         f"training; validation needs at least 2 and training {need}: give more examples, or "
                         "another validation_fraction")


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """A fully connected classifier trained with mini-batches (see `xdl.config.TrainConfig` for
    the meaning of each hyperparameter; ``hidden`` may be one size, as scikit-learn's
    ``hidden_layer_sizes``): each hidden size in [1, 2**20]. ``activation``: the hidden layers',
    "relu" (the default), "leaky_relu", "tanh" or "sigmoid"; the weights start from He's N(0, 2/n_in)
    (``xdl.init.he``; scikit-learn's from Glorot's uniform, whatever the activation). ``batch_norm``: True puts batch norm
    after each hidden Dense layer (``batch_size`` then ≥ 2). ``dropout``: the drop probability after
    each hidden activation, a number in [0, 1 − 2⁻⁹] (0: none). ``l2``: λ of the penalty
    λ/(2m)·Σ‖W‖² on the weights added to each batch's cost (m ``batch_size``, a last, smaller batch's
    too; scikit-learn's ``alpha``, which divides that one by its own size), a finite number ≥ 0 and at most float32's largest. ``l1``: λ₁ of the penalty
    λ₁/m·Σ|W| added likewise (scikit-learn's MLP has none; Keras's ``kernel_regularizer=l1(λ₁/m)``: it
    drives weights towards 0), checked as ``l2``; 0, the default, is none. ``optimizer``: "sgd",
    "momentum", "nesterov", "rmsprop", "adam" (the default) or "adamw" (scikit-learn's ``solver``;
    β₁ = 0.9, β₂ = 0.999, ε = 1e-8). ``lr``: the learning rate (a schedule's first), a number > 0 in
    float32's positive range [1.4e-45, 3.4e38] (scikit-learn's ``learning_rate_init``).
    ``batch_size``: the examples of each step, a positive integer. ``epochs``: the epochs a ``fit``
    trains at most, a positive integer (scikit-learn's ``max_iter``). ``weight_decay``: a finite
    number ≥ 0 and at most float32's largest, on the weights only (not biases, nor batch norm's γ
    and β): decoupled with "adamw" (p ← p·(1 − lr·wd) each step), coupled with the others
    (g ← g + wd·p); 0, the default, is none. ``max_grad_norm``: the gradients clipped to this global 2-norm
    at each step, g ← g·min(1, max_grad_norm/(‖g‖₂ + 1e-6)) (Keras's ``global_clipnorm``; scikit-learn's MLP has
    none), a finite number ≥ 0; 0, the default, is none. ``plateau_patience``: the rate multiplied by
    ``plateau_factor`` (in (0, 1), 0.1 by default) once the cost watched has not fallen more than 1e-4 below its
    best for this many epochs in a row (`xdl.train.ReduceLROnPlateau`), an integer ≥ 0, 0 (the default) none; with
    schedule "none" only, as `TrainConfig`'s. It watches the dev cost with ``early_stopping``, else the training
    cost, as scikit-learn's ``learning_rate="adaptive"`` watches its validation score or training loss: that is
    plateau_patience = n_iter_no_change + 1 (11 by default), plateau_factor = 0.2, on a flat plateau (scikit-learn's
    best follows every fall, even one below its tol: a fall slower than 1e-4 an epoch lowers its rate, not this
    one's) — but where scikit-learn's lowers the rate instead of stopping early, here early stopping stops once
    ``patience`` epochs have not improved: a ``fit`` with both warns where patience ≤ plateau_patience (the rate is
    never lowered before the stop; give a patience above it). ``backend``: where the network
    trains, "auto" (the default: cupy if a GPU answers, else numpy), "numpy", "cupy", or "cpu" / "cuda" (numpy /
    cupy); X and y may be arrays of either (CuPy ones are copied to the host, as `Trainer.fit` reads
    them), and what it returns is NumPy's, as ``model.predict``'s (``classes_`` may be strings, which
    CuPy cannot hold). ``early_stopping``: hold out ``validation_fraction`` (in (0, 1); without early stopping
    any in [0, 1), unread, as scikit-learn's) of the training data as a dev set — ⌈validation_fraction · n⌉ of
    its n examples, refused as scikit-learn's where that is under 2 (`check_held_out`) — and stop after ``patience``
    (≥ 1) epochs without a fall of its cost (scikit-learn's watches the validation accuracy), keeping the best
    epoch's network. ``warm_start``: as
    scikit-learn's, a second ``fit`` trains the fitted network on instead of a new one (with a new
    optimizer, and early stopping looking for the best epoch of this fit) — its architecture options
    and classes must stay as they were. Fitted: ``model_``, ``history_`` and ``n_iter_`` (the epochs
    trained by the last ``fit``), ``classes_`` and ``loss_curve_`` (the training cost of each epoch,
    over warm starts too). ``model_`` starts with a `Standardize` layer holding the training
    statistics; the estimator itself standardizes in float64 and runs the layers after it (module
    docstring). A ``fit`` that fails — bad input, a diverging run — leaves the estimator as it was:
    the network and attributes of the fit before, or unfitted; one stopped by Ctrl-C keeps the
    network trained so far, fitted, and raises `xdl.train.Interrupted` (`fit`). ``seed``: an integer
    makes every fit the same (the default, 0); None draws a new seed at each fit, as scikit-learn's
    ``random_state=None`` (`partial_fit` goes on with the fitted estimator's). ``schedule``'s
    settings, with `TrainConfig`'s defaults: ``decay_rate`` (read by inverse_time and staircase
    only), ``decay_base`` (exponential only), ``decay_factor`` (step only), ``decay_every``
    (staircase and step only), ``decay_k`` (inverse_sqrt only); under another schedule each is ignored, as
    scikit-learn's ``MLPClassifier`` ignores ``momentum`` unless ``solver="sgd"`` (so a grid may cross them)."""

    # decay_base, decay_every, decay_factor, weight_decay, l1, max_grad_norm, the plateau's and decay_k last: arguments
    # given by position keep their meaning
    @_hinting_sklearn_names
    def __init__(self, hidden=(100,), activation="relu", batch_norm=False, dropout=0.0, l2=0.0,
                 optimizer="adam", lr=1e-3, batch_size=64, epochs=100, schedule="none", decay_rate=0.05,
                 early_stopping=False, validation_fraction=0.1, patience=10, backend="auto", seed=0,
                 warm_start=False, decay_base=0.95, decay_every=10, decay_factor=0.5, weight_decay=0.0,
                 l1=0.0, max_grad_norm=0.0, plateau_patience=0, plateau_factor=0.1, decay_k=1.0):
        self.hidden, self.activation, self.batch_norm, self.dropout, self.l2 = hidden, activation, batch_norm, dropout, l2
        self.optimizer, self.lr, self.batch_size, self.epochs = optimizer, lr, batch_size, epochs
        self.schedule, self.decay_rate, self.decay_base = schedule, decay_rate, decay_base
        self.decay_every, self.decay_factor, self.weight_decay = decay_every, decay_factor, weight_decay
        self.l1, self.max_grad_norm = l1, max_grad_norm
        self.plateau_patience, self.plateau_factor, self.decay_k = plateau_patience, plateau_factor, decay_k
        self.early_stopping, self.validation_fraction, self.patience = early_stopping, validation_fraction, patience
        self.backend, self.seed, self.warm_start = backend, seed, warm_start

    def set_params(self, **params):
        """scikit-learn's, with scikit-learn's names of these parameters said as the constructor says
        them: a grid of ``alpha`` (GridSearchCV's set_params) was told only "Invalid parameter"."""
        _refuse_sklearn_names(params, "MLPClassifier.set_params(): invalid parameter", ValueError)
        return super().set_params(**params)

    def _config(self, going_on: bool = False) -> TrainConfig:
        """The hyperparameters as a `TrainConfig`: every constructor parameter checked, by name, on
        every fit and partial_fit (as scikit-learn's ``_parameter_constraints``), before any work;
        a bad one is an `InvalidParameterError`, both a ValueError and a TypeError, as scikit-learn's.
        ``going_on``: the call trains the fitted estimator's run on (`partial_fit`; see `_run_seed`)."""
        try:
            return self._checked_config(going_on)
        except (TypeError, ValueError) as e:
            raise InvalidParameterError(str(e)) from None

    def _run_seed(self, going_on: bool) -> int:
        """``seed``; for None, a new one from the OS (scikit-learn's random_state=None; NumPy's global
        state is left alone) — but a call that goes on with the fitted estimator's run keeps the seed
        its trainer was made with: drawn anew, it would differ from the trainer's, and a new trainer
        would drop the optimizer's state at every `partial_fit` (so a seed is drawn once per fitted
        estimator; a `fit` draws anew)."""
        if self.seed is not None:
            # (None is a seed here too: TrainConfig's "must be an integer" left it out; and a RandomState or
            # Generator, scikit-learn's random_state, is no integer a checkpoint or a refit could key again)
            return check_int(self.seed, "MLPClassifier: seed", low=0, high=SEEDS - 1,
                             expected="an integer in [0, 2**64) or None (not a RandomState or Generator: give "
                                      "an integer, as the seed it was made with)")
        if going_on and "_trainer_options_" in self.__dict__:  # (pickled with the estimator)
            return self._trainer_options_["seed"]
        return int(np.random.default_rng().integers(2**31))

    def _checked_config(self, going_on: bool) -> TrainConfig:
        _refuse_sklearn_values(self)
        for name in ("batch_norm", "early_stopping", "warm_start"):  # strictly: "no" and 0 are no switches
            check_bool(getattr(self, name), f"MLPClassifier: {name}")
        # ≥ 1 whether or not early stopping is on: patience=0 would hold out a dev set and never stop
        check_int(self.patience, "MLPClassifier: patience")
        # [0, 1) as scikit-learn's; 0 holds out nothing, which early stopping has nothing to watch on
        check_number(self.validation_fraction, "MLPClassifier: validation_fraction",
                     "in (0, 1) with early_stopping=True" if self.early_stopping else "in [0, 1)",
                     lambda fraction: 0 < fraction < 1 if self.early_stopping else 0 <= fraction < 1)
        hidden = self.hidden
        if isinstance(hidden, int | np.integer) and not isinstance(hidden, bool):  # one layer, as scikit-learn's
            hidden = [hidden]
        elif isinstance(hidden, list | tuple | np.ndarray):
            hidden = list(hidden)
        config = TrainConfig.from_dict({
            "hidden": hidden, "activation": self.activation, "batch_norm": self.batch_norm, "dropout": self.dropout,
            "l2": self.l2, "l1": self.l1, "weight_decay": self.weight_decay, "optimizer": self.optimizer, "lr": self.lr,
            "max_grad_norm": self.max_grad_norm, "plateau_patience": self.plateau_patience,
            "plateau_factor": self.plateau_factor, "batch_size": self.batch_size,
            "epochs": self.epochs, "schedule": self.schedule,
            **{name: getattr(self, name) for name in SCHEDULE_SETTINGS},
            "patience": self.patience if self.early_stopping else 0, "backend": self.backend,
            "seed": self._run_seed(going_on), "progress": False}, source="MLPClassifier")
        return config

    def fit(self, X, y):
        """Train ``epochs`` epochs on ``(X, y)`` (class docstring). Ctrl-C (or SIGTERM) finishes the step
        and keeps the network trained so far — with early stopping, its best epoch's — as a fitted
        estimator (``n_iter_``: the epochs it finished), then raises `xdl.train.Interrupted`: as
        scikit-learn's MLPClassifier keeps it, and Keras's and PyTorch's models hold it, rather than
        throwing away hours of training (a second Ctrl-C, inside a step, leaves the estimator as it was)."""
        warm = isinstance(self.warm_start, bool | np.bool_) and bool(self.warm_start) and hasattr(self, "model_")
        interrupted = self._atomically(warm, self._fit, X, y)
        if interrupted is not None:
            raise interrupted
        return self

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``(X, y)``, going on from the fitted network and its optimizer (scikit-learn's
        incremental learning; after `fit` too). The first call needs ``classes``: every label ``y``
        will ever hold. The network's input scaling is measured on the first call's ``X``;
        ``early_stopping`` and ``plateau_patience`` do not apply (there is no held-out set of a stream, and each
        call's cost is on other data: after a ``fit`` with them, the calls go on from the network it kept, with its
        optimizer and the rate it reached, without stopping or lowering it); the seed is the
        fitted estimator's (``seed=None`` draws one per fitted estimator); an option changed between
        calls (``lr``, ``optimizer``, ``seed``, …) takes effect with a new optimizer. ``n_iter_`` and
        ``loss_curve_`` count every epoch of the calls, and of a ``fit`` before them (scikit-learn's
        ``n_iter_`` counts the last call's alone: 1 after each ``partial_fit``). A pickled estimator
        goes on where it was (its epoch count and optimizer state are pickled with it). The schedule runs on over the calls'
        epochs: a cosine one spans ``epochs`` and is refused beyond them (its rate is 0 there)."""
        return self._atomically(hasattr(self, "model_"), self._partial_fit, X, y, classes)

    def _atomically(self, in_place: bool, fit, *args):
        """``fit(*args)``; when it fails — bad input, a diverging run, Ctrl-C in `partial_fit` or
        inside a step — the estimator is put back as it was (`fit`'s Ctrl-C between steps is
        returned, not raised: its network is kept): its attributes and, when the call trains the
        fitted network ``in_place`` (a warm start, `partial_fit`), its weights, its modules' modes
        (evaluation, as a fit leaves them) and its trainer's position and optimizer state."""
        before = dict(self.__dict__)
        model, trainer = before.get("model_"), before.get("trainer_") if in_place else None
        weights = None if not in_place else {name: np.array(a, copy=True) for name, a in model.state_dict().items()}
        modes = None if not in_place else modes_of(model)  # (a fit trains in training mode: predicting reads eval's)
        # the history as it stands: a fit appends records (and may note its last, a Control's on resume), so its
        # length, a copy of its last record and its other fields put it back (a deep copy of it all made each
        # partial_fit cost a copy of every epoch so far: 24 ms a call after 1,500 calls, against 7 ms of training)
        history = None if trainer is None else trainer.history
        position = None if trainer is None else (
            dict(trainer.__dict__), (history, len(history.records), copy.deepcopy(history.records[-1:]),
                                     {k: v for k, v in history.__dict__.items() if k not in ("records", "_encoded")}),
            trainer.optimizer.state_dict())
        try:
            return fit(*args)
        except BaseException as e:
            # where a run diverged (the Trainer's words speak of Checkpoint callbacks, which an estimator has not)
            diverged = getattr(getattr(self.__dict__.get("trainer_"), "history", None), "diverged", None) \
                if isinstance(e, FloatingPointError) else None
            # and what to change, as the Trainer said it ("a smaller lr" was told where the rate was not the cause)
            advice = getattr(self.__dict__.get("trainer_"), "_divergence_advice", RATE_ADVICE)
            if weights is not None:
                model.load_state_dict(weights)
                restore_modes(modes)
            if position is not None:
                attributes, (history, length, last, fields), optimizer = position
                del history.records[length:]
                history.records[length - len(last):] = last
                for key in set(history.__dict__) - set(fields) - {"records", "_encoded"}:
                    del history.__dict__[key]
                history.__dict__.update(fields)  # (its _encoded, a cache, checks each record against it)
                trainer.__dict__.update(attributes)  # (its history the object put back here)
                trainer.optimizer.load_state_dict(optimizer)
            self.__dict__.clear()
            self.__dict__.update(before)
            if diverged:
                raise FloatingPointError(f"MLPClassifier: training diverged: {diverged}; the estimator is as it was "
                                         f"before this call; {advice}") from None
            raise

    def _fit(self, X, y):
        config = self._config()
        _warn_stopping_before_plateau(config)
        warm = bool(self.warm_start) and hasattr(self, "model_")
        if warm:
            self._check_architecture(config, "warm_start trains the fitted network on", "set warm_start=False")
        X, y = validate_data(self, _unmasked(X, "X"), _unmasked(y, "y"), dtype=INPUT_DTYPES, reset=not warm)
        check_classification_targets(y)  # continuous targets are not classes
        classes, y_index = np.unique(y, return_inverse=True)
        if len(classes) < 2:  # the class as given (0.0, 'a'), not as NumPy spells its scalar
            raise ValueError(f"MLPClassifier: y has one class ({classes.tolist()[0]!r}); a classifier needs at least "
                             "two")
        if warm and not np.array_equal(classes, self.classes_):
            raise ValueError(f"MLPClassifier: warm_start trains the fitted network on, whose classes are "
                             f"{self.classes_.tolist()}; y has {classes.tolist()}")
        self.classes_ = classes
        dev = None
        if self.early_stopping:
            n_dev = held_out_count(self.validation_fraction, len(X))
            class_counts = np.bincount(y_index)
            check_held_out(n_dev, len(X), classes, class_counts)
            # stratified where each class has 2 examples (scikit-learn's stratifies two classes alone, and fits a
            # class of one among three or more without a word): asked of split by default, a class of one was
            # warned of as split's, by its index, with split's stratify=True as the way — an option this
            # estimator has not
            stratify = bool(class_counts.min() >= 2)
            parts = split(X, y_index, dev=n_dev, test=0, seed=config.seed, stratify=stratify)
            X, y_index, dev = parts.X_train, parts.y_train, (parts.X_dev, parts.y_dev)
        # the network's input scaling: measured on this training set, or the fitted network's on a warm start
        scaler = self._input_scaler() if warm else Standardizer().fit(X)
        dtype = self.model_.dtype if warm else NETWORK_DTYPE
        # the split's parts are copies of this fit's own: standardized in place (a float32 set's parts and their
        # standardized copies took 2× the set beside it)
        X = _network_input(X, scaler, dtype, in_place=dev is not None)
        if dev is not None:
            dev = (_network_input(dev[0], scaler, dtype, in_place=True), dev[1])
        with thread_backend(resolve_backend(config.backend, "MLPClassifier: backend")) as backend, thread_seed(config.seed):
            if warm:  # the fitted network, its input scaling too, on this fit's backend
                self.model_.to(backend)
            else:
                self._scaler_ = scaler
                self.model_ = config.build_model(X.shape[1], len(self.classes_), scaler.layer())
                self.loss_curve_ = []
            # the plateau watches what scikit-learn's learning_rate='adaptive' watches: the held-out set, else the
            # training cost (the estimator has no dev set without early stopping)
            watched = "dev_cost" if dev is not None else "train_cost"
            self.trainer_ = config.build_trainer(_network(self.model_), plateau_monitor=watched)
            self._trainer_options_ = _training(config)
            self.__dict__.pop("_trainer_position_", None)  # a pickled partial_fit's: this fit starts its own run
            interrupted = None
            try:
                self.history_ = self.trainer_.fit(X, y_index, dev=dev)
            except Interrupted as stop:  # after a finished step: the network is whole, and kept (`fit`)
                interrupted, self.history_ = stop, self.trainer_.history
                for callback in self.trainer_.callbacks:  # the end the trainer skipped: the best epoch's weights
                    if isinstance(callback, EarlyStopping) and not stop.over:  # (over: it ran)
                        callback.on_train_end(self.trainer_)
            self.model_.eval()  # what predicting reads, switched by no call (see predict_proba)
            _keep_names(self)
        self._architecture_ = {key: getattr(config, key) for key in ARCHITECTURE}
        self.n_iter_ = len(self.history_)  # this fit's epochs, as scikit-learn's MLPClassifier
        self.loss_curve_ = self.loss_curve_ + list(self.history_["train_cost"])  # a new list: `before`'s stays
        if interrupted is not None:
            # where it stopped as Interrupted says it (at an epoch's end, its epoch is the next one, not begun)
            best = self.history_.best_epoch  # (early stopping's: its network is the best epoch's, put back)
            kept = f"the network of its best epoch ({best})" if best is not None else "the network trained so far"
            interrupted.args = (f"MLPClassifier: training interrupted by {interrupted.signal_name} {interrupted.where}; "
                                f"{kept} is kept, fitted (n_iter_={self.n_iter_}: the epochs it finished)",)
        return interrupted

    def _partial_fit(self, X, y, classes):
        # no early stopping, no plateau on a stream: each call's data is another (`partial_fit`)
        config = dataclasses.replace(self._config(going_on=True), patience=0, plateau_patience=0)
        first = not hasattr(self, "model_")
        if first and classes is None:
            raise ValueError("MLPClassifier: the first partial_fit needs classes, every label y will ever hold "
                             "(e.g. classes=np.unique(y_all))")
        if first:
            known = _class_labels(classes)
            if len(known) < 2:
                raise ValueError(f"MLPClassifier: classes holds {len(known)} class(es); a classifier needs at least two")
        else:
            self._check_architecture(config, "partial_fit trains the fitted network on", "call fit")
            known = self.classes_
            if classes is not None and not np.array_equal(_class_labels(classes), known):
                raise ValueError(f"MLPClassifier: classes is {_class_labels(classes).tolist()}, the network's "
                                 f"classes are {known.tolist()}")
        X, y = validate_data(self, _unmasked(X, "X"), _unmasked(y, "y"), dtype=INPUT_DTYPES, reset=first)
        check_classification_targets(y)
        unknown = np.setdiff1d(y, known)
        if len(unknown):
            raise ValueError(f"MLPClassifier: y holds {unknown.tolist()}, not among the classes {known.tolist()}")
        y_index = np.searchsorted(known, y)
        trainer = getattr(self, "trainer_", None)
        done = 0 if first else trainer.epoch if trainer is not None else \
            self.__dict__.get("_trainer_position_", {}).get("epoch", 0)
        if config.schedule == "cosine" and done >= config.epochs:  # it would train at its end's rate, 0
            raise ValueError(f"MLPClassifier: the cosine schedule spans epochs={config.epochs}, all trained: its rate "
                             "is 0 from here on; raise epochs (set_params(epochs=...)) to train on")
        scaler = Standardizer().fit(X) if first else self._input_scaler()  # measured on the first call's X
        X = _network_input(X, scaler, NETWORK_DTYPE if first else self.model_.dtype)
        with thread_backend(resolve_backend(config.backend, "MLPClassifier: backend")) as backend, thread_seed(config.seed):
            if first:
                self.classes_, self.loss_curve_, self.n_iter_, self._scaler_ = known, [], 0, scaler
                self.model_ = config.build_model(X.shape[1], len(known), scaler.layer())
            else:
                self.model_.to(backend)
            same = getattr(self, "_trainer_options_", None) == _training(config)
            if trainer is None or not same:  # a new trainer: the epochs counted on, the optimizer too if it can
                pickled = self.__dict__.pop("_trainer_position_", None) if trainer is None else None
                self.trainer_ = config.build_trainer(_network(self.model_))
                self.trainer_.epoch = trainer.epoch if trainer is not None else pickled["epoch"] if pickled else 0
                if pickled and same:
                    self.trainer_.optimizer.load_state_dict(pickled["optimizer"])
                self._trainer_options_ = _training(config)
            else:  # fit's trainer goes on without its early stopping and plateau (`partial_fit`; a new list: a
                # failed call puts the trainer's back)
                self.trainer_.callbacks = [cb for cb in trainer.callbacks
                                           if not isinstance(cb, EarlyStopping | ReduceLROnPlateau)]
            self.trainer_.epochs = self.trainer_.epoch + 1
            before = len(self.trainer_.history)
            history = self.trainer_.fit(X, y_index)
            self.model_.eval()  # what predicting reads, switched by no call (see predict_proba)
            _keep_names(self)
        self._architecture_ = {key: getattr(config, key) for key in ARCHITECTURE}
        self.history_ = history
        self.n_iter_ = getattr(self, "n_iter_", 0) + len(history) - before
        # (this call's records: history["train_cost"] built the column over every epoch so far, at each call)
        self.loss_curve_ = self.loss_curve_ + [r.get("train_cost") for r in history.records[before:]]
        return self

    def _check_architecture(self, config: TrainConfig, why: str, instead: str) -> None:
        """A call that trains the fitted network on: the options that made it must not have changed."""
        for key, fitted in getattr(self, "_architecture_", {}).items():
            if getattr(config, key) != fitted:
                raise ValueError(f"MLPClassifier: {why}, made with {key}={fitted!r}; {key} is now "
                                 f"{getattr(config, key)!r} ({instead} to fit a new one)")

    def predict_proba(self, X) -> np.ndarray:
        """P(class | x), (m, C), columns in the order of ``classes_``; in the network's dtype, whose
        precision they have (a float32 product's last digits differ with the batch it is in). Safe
        from several threads at once: a fit leaves ``model_`` in evaluation mode, so predicting
        switches no mode (a model switched to evaluation and back by each call would let one call
        see another's training mode: dropout and batch statistics)."""
        check_is_fitted(self, "model_")
        X = validate_data(self, _unmasked(X, "X"), reset=False, dtype=INPUT_DTYPES)
        return _network(self.model_).predict_proba(_network_input(X, self._input_scaler(), self.model_.dtype))

    def score(self, X, y, sample_weight=None) -> float:
        """The accuracy of `predict` on ``(X, y)`` (scikit-learn's ``ClassifierMixin.score``), ``y`` and
        ``sample_weight`` of any backend: scikit-learn's ``accuracy_score`` reads them through
        ``np.asarray``, which a CuPy array refuses."""
        return super().score(X, _unmasked(y, "y"), sample_weight=_unmasked(sample_weight, "sample_weight"))

    def predict_log_proba(self, X) -> np.ndarray:
        """log P(class | x): the log of `predict_proba` (as scikit-learn's MLPClassifier), taken in
        float64 so it orders the classes as the probabilities do; −inf where a probability rounds to
        0, without a divide-by-zero warning."""
        proba = self.predict_proba(X)  # checks that the estimator is fitted, first
        with np.errstate(divide="ignore"):
            return np.log(proba, dtype=np.float64)

    def predict(self, X) -> np.ndarray:
        """The class of each example, (m,): the label of ``classes_`` whose `predict_proba` is highest
        (the first on a tie)."""
        proba = self.predict_proba(X)  # checks that the estimator is fitted, first
        return self.classes_[proba.argmax(axis=1)]

    def _input_scaler(self) -> Standardizer:
        """The float64 statistics the fitted network's inputs are standardized with; for an estimator
        pickled before they were kept, those its `Standardize` layer holds."""
        scaler = self.__dict__.get("_scaler_")
        if scaler is None:
            layer, scaler = self.model_[0], Standardizer()
            scaler.mean, scaler.scale = (layer.backend.to_numpy(a).astype(np.float64)
                                         for a in (layer.mean, layer.scale))
        return scaler

    def __getstate__(self) -> dict:
        """Pickles (and ``joblib.dump``s) without the trainer — the model, classes and history are
        what a fitted estimator needs —, keeping its epoch count and optimizer state for `partial_fit`."""
        state = dict(self.__dict__)
        trainer = state.pop("trainer_", None)
        if trainer is not None:
            state["_trainer_position_"] = {"epoch": trainer.epoch, "optimizer": trainer.optimizer.state_dict()}
        return state

    def __setstate__(self, state: dict) -> None:
        """An estimator pickled by an older xdl lacks the parameters added since (``weight_decay``,
        ``decay_base``): each takes its default, what that xdl trained with — else it loaded, then
        failed at ``predict`` on the attribute missing. Its trainer's options lack the options added
        since too (``l1``): they take what that xdl trained with (`ADDED_OPTIONS`), or a `partial_fit`
        read them as changed and made a new trainer, dropping the optimizer's state."""
        defaults = {name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
                    if name != "self"}
        if isinstance(state.get("_trainer_options_"), dict):
            options = {**ADDED_OPTIONS, **state["_trainer_options_"]}
            state = {**state, "_trainer_options_": {k: v for k, v in options.items() if k not in CALLBACK_OPTIONS}}
        super().__setstate__({**defaults, **state})


def _unmasked(values, name: str):
    """A masked array's masked values as NaN, missing values (`xdl.backend.array_to_numpy`), which
    ``validate_data`` refuses by name: it reads a masked array through ``np.asarray``, which drops the
    mask, and the estimator trained on and predicted from the fill values under it (-9999), unsaid.
    One of strings (class labels) with a value masked is refused, naming ``name``: no NaN stands
    for it, and the label under the mask was trained on as the example's class. A device array (CuPy's)
    comes to the host, as `Trainer.fit` and ``model.predict`` read one: ``validate_data`` reads it through
    ``np.asarray``, which CuPy refuses ("Implicit conversion to a NumPy array is not allowed"), so a fit on
    the GPU's data failed inside scikit-learn, naming neither the argument nor the way."""
    if not isinstance(values, np.ma.MaskedArray):
        return array_to_numpy(values) if on_device(values) else values
    mask = np.ma.getmaskarray(values)
    if values.dtype.kind not in "biuf" and mask.any():
        raise ValueError(f"{name} contains masked values (first at example {int(np.argwhere(mask)[0][0])}); "
                         "drop those examples or fill them first")
    return array_to_numpy(values)


def _class_labels(classes) -> np.ndarray:
    """`partial_fit`'s ``classes`` as its sorted distinct labels, checked as scikit-learn's
    ``unique_labels`` checks them, naming the argument: a 1-D array-like (a set or a string is one
    object to NumPy — it read as "classes holds 1 class(es)") of discrete labels of one kind
    (continuous values refused; None among strings was NumPy's sorting TypeError)."""
    try:
        labels = np.asarray(classes)
    except ValueError:  # a ragged list
        labels = None
    if labels is None or labels.ndim != 1:
        raise ValueError(f"MLPClassifier: classes must be a 1-D array-like of labels (e.g. np.unique(y_all)), got "
                         f"{classes!r:.80}")
    try:
        check_classification_targets(labels)
        return np.unique(labels)
    except (TypeError, ValueError) as e:
        raise ValueError(f"MLPClassifier: classes must hold discrete labels of one kind, got {classes!r:.80} ({e})") \
            from None


def _training(config: TrainConfig) -> dict:
    """The options a trainer is built with, but for those `partial_fit` goes on through: its number
    of epochs (it counts them) — unless a cosine schedule spans them — and `CALLBACK_OPTIONS` (`fit`'s
    early stopping and plateau, which `partial_fit` sets to 0 and leaves out of a trainer it goes on with)."""
    return {key: value for key, value in dataclasses.asdict(config).items()
            if key not in CALLBACK_OPTIONS and (key != "epochs" or config.schedule == "cosine")}


def _network(model):
    """The network after its first layer, the `Standardize` one (a view sharing its layers): what
    the estimator trains and runs on the inputs it standardizes itself (`_network_input`)."""
    return model[1:]


def _network_input(X: np.ndarray, scaler: Standardizer, dtype, in_place: bool = False) -> np.ndarray:
    """``X`` as the network after its `Standardize` layer takes it: z = (x − μ)/σ computed in
    float64 from the estimator's float64 statistics, then cast to the network's ``dtype``
    (`xdl.data.validation.standardized`, which refuses a z beyond it). Checked first, with no
    overflow warning: x must fit in ``dtype`` too (the `Standardize` layer of ``model_`` takes raw
    x in it, and fit refuses what it could not). ``in_place``: X is the caller's own copy (early
    stopping's split), standardized into itself where it is in ``dtype`` already."""
    high = np.finfo(dtype).max
    wide = np.issubdtype(X.dtype, np.floating) and np.finfo(X.dtype).max > high  # (small integers fit any float)
    bad = first_where(X, lambda piece: np.abs(piece) > high) if wide else None
    if bad is not None:  # (looked for piece by piece: a float64 X's magnitudes whole were a copy of it)
        i, j = bad
        raise ValueError(f"MLPClassifier: X has values beyond the range of {np.dtype(dtype)}, the dtype the network "
                         f"computes in (±{high:.3g}; first at example {i}, feature {j}: {X[i, j]:.6g}); "
                         "scale the data")
    out = X if in_place and X.dtype == dtype and X.flags.c_contiguous and X.flags.writeable else None
    return standardized(X, scaler.mean, scaler.scale, dtype, "MLPClassifier: X", out=out)
