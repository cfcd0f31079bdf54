"""`TrainConfig`: every option of ``xdl train`` / ``xdl gradcheck`` in one place — defaults, the
``--config file.toml`` format, the command-line flags and their help all come from these fields —
and the builders that turn a config into a model, an optimizer and a schedule.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field

import numpy as np

from xdl import optim
from xdl.backend import BACKEND_CHOICES, PRECISIONS, SEEDS, thread_seed
from xdl.data import Augment, Standardizer
from xdl.data.validation import counted
from xdl.datasets import DATASETS
from xdl.files import check_directory_name, check_no_tilde, read_toml
from xdl.init import INITIALIZERS, canonical_name, is_named
from xdl.losses import SoftmaxCrossEntropy, check_penalty
from xdl.functions.regularization import check_drop_rate
from xdl.nn import ACTIVATIONS, mlp
from xdl.train.checkpoint_files import fewest_epochs
from xdl.train.early_stopping import EarlyStopping
from xdl.train.plateau import ReduceLROnPlateau
from xdl.train.trainer import Trainer

__all__ = ["TrainConfig", "OPTIMIZERS", "SCHEDULE_OPTIONS", "SCHEDULES", "AUGMENTED_COPIES", "FLOAT32_RATES",
           "MAX_NOISE", "MAX_WIDTH", "RUN_OPTIONS", "RESUME_MAY_CHANGE", "ADDED_OPTIONS", "IMAGE_SHAPES", "TYPE_NAMES",
           "OFF_VALUES", "first_change", "unread_options", "flag_of"]

# name -> (the options it reads besides lr, (params, config) -> optimizer): the `optimizer` option's
# choices, what each reads (an option typed for another is refused) and how each is built
OPTIMIZERS = {
    "sgd": ((), lambda params, c: optim.SGD(params, lr=c.lr)),
    "momentum": (("beta1",), lambda params, c: optim.Momentum(params, lr=c.lr, beta=c.beta1)),
    "nesterov": (("beta1",), lambda params, c: optim.Momentum(params, lr=c.lr, beta=c.beta1, nesterov=True)),
    "rmsprop": (("beta1", "eps"), lambda params, c: optim.RMSprop(params, lr=c.lr, beta=c.beta1, eps=c.eps)),
    "adam": (("beta1", "beta2", "eps"),
             lambda params, c: optim.Adam(params, lr=c.lr, beta1=c.beta1, beta2=c.beta2, eps=c.eps)),
    # weight_decay=0: the decay is `weight_decay`'s, on the weights only (`build_optimizer`'s groups) —
    # not AdamW's own default of 0.01 on every parameter, batch norm's γ and β and the biases too
    "adamw": (("beta1", "beta2", "eps"),
              lambda params, c: optim.AdamW(params, lr=c.lr, beta1=c.beta1, beta2=c.beta2, eps=c.eps,
                                            weight_decay=0.0)),
}
SCHEDULE_OPTIONS = {"none": (), "inverse_time": ("lr", "decay_rate"), "exponential": ("lr", "decay_base"),
                    "staircase": ("lr", "decay_rate", "decay_every"), "step": ("lr", "decay_factor", "decay_every"),
                    "inverse_sqrt": ("lr", "decay_k"), "cosine": ("lr", "epochs")}  # the options each schedule reads
SCHEDULES = tuple(SCHEDULE_OPTIONS)
AUGMENTED_COPIES = 4  # augmented copies of the training set the input scaling is measured on
FLOAT32_RATES = optim.optimizer.rate_range(np.float32)  # the models' default dtype
# augment_noise's σ at most: |draw| ≤ 10σ (odds of more: 10⁻²³) stays below float32's largest number, the images'
MAX_NOISE = float(np.finfo(np.float32).max) / 10
MAX_WIDTH = 2**20  # a hidden layer's units at most (2**20 × 2**20 float32 weights are 4 TiB already)
# Options that describe a command line's run (where and how it runs, what it shows), not a model.
RUN_OPTIONS = ("backend", "out", "checkpoint_every", "resume", "progress", "base_error", "capture")
# a config's precision by default: a backend's own (exact float32), and one that a batch or a search takes as the
# backend's in use, whatever that is (`TrainConfig.check_precision_in_use`), and records as that (`at_precision_in_use`)
DEFAULT_PRECISION = "float32"
# Options a --resume may change: the rest describe the run and must match its checkpoint.
RESUME_MAY_CHANGE = ("epochs", "patience", "plateau_patience", "plateau_factor", "base_error", "backend", "precision",
                     "capture", "out", "checkpoint_every", "resume", "progress")
IMAGE_SHAPES = {"digits": (8, 8)}  # datasets whose examples are images (augmentation applies)
# Options added since a run's options may have been saved, with what such a run trained with: its resume is
# compared with that (a run of an xdl before l1 trained without it: a resume with --l1 0.1 is another run)
ADDED_OPTIONS = {"l1": 0.0, "max_grad_norm": 0.0, "plateau_patience": 0, "plateau_factor": 0.1, "decay_k": 1.0}


def first_change(saved: dict, now: dict) -> tuple[str, object, object] | None:
    """(name, saved value, value now) of the first option of ``now`` outside `RESUME_MAY_CHANGE`
    that differs from ``saved`` (options both hold, an `ADDED_OPTIONS` one missing from ``saved`` at the value
    it stands for), or None: one run's options, as a resume keeps them."""
    def same(name, then, now):  # (an initializer by its one spelling: normal(10) is normal(10.0))
        try:
            return then == now or (name == "init" and canonical_name(then) == canonical_name(now))
        except (TypeError, ValueError):  # (a file no xdl wrote)
            return False

    saved = {**ADDED_OPTIONS, **saved}
    for name, value in now.items():
        if name not in RESUME_MAY_CHANGE and name in saved and not same(name, saved[name], value):
            return name, saved[name], value
    return None


def unread_options(config: TrainConfig, given) -> list[str]:
    """The options among ``given`` (names) that belong to an optimizer or a schedule, but not to
    ``config``'s (``--beta2`` with sgd, ``--decay-rate`` with no schedule): they would be ignored."""
    reads = {*OPTIMIZERS[config.optimizer][0], *SCHEDULE_OPTIONS[config.schedule]}
    tied = {name for names in (*(r for r, _ in OPTIMIZERS.values()), *SCHEDULE_OPTIONS.values()) for name in names}
    tied -= {"lr", "epochs"}  # read by every run
    return [name for name in given if name in tied and name not in reads]


def _opt(default, help: str, choices=None):
    return field(default=default, metadata={"help": help, "choices": choices})


def _default(option: dataclasses.Field):
    """An option's default value (made by its factory where it has one: a list)."""
    return option.default_factory() if option.default is dataclasses.MISSING else option.default


@dataclass
class TrainConfig:
    """Every option of a run, with its default: what each means is its field's help
    (``dataclasses.fields(TrainConfig)``, each ``metadata["help"]``; ``xdl train --help`` prints
    them all), and a ``--config`` TOML file holds the same keys. Each value is checked when the
    config is made (`validate`); the ``build_*`` methods make the model, optimizer, schedule and
    trainer the options describe."""

    dataset: str = _opt("digits", "dataset to train on", tuple(DATASETS))
    hidden: list[int] = field(default_factory=lambda: [256, 128], metadata={"help": "hidden layer sizes"})
    activation: str = _opt("relu", "hidden activation", tuple(ACTIVATIONS))
    init: str = _opt("he", "weight initialization (he: N(0, 2/n_in); xavier: N(0, 1/n_in), the course's; glorot: "
                     "N(0, 2/(n_in + n_out)), PyTorch's xavier_normal_; normal(SCALE): N(0, SCALE²), the course's "
                     "random, normal = normal(0.01); zeros: no symmetry broken, nothing learned)")
    batch_norm: bool = _opt(True, "batch norm after each hidden Dense layer")
    dropout: float = _opt(0.3, "dropout rate after each hidden activation (0: none)")
    l2: float = _opt(0.0, "L2 penalty λ (the cost minimized + λ/2m·Σ‖W‖², m the batch size, as scikit-learn's "
                          "alpha but for a last, smaller batch, which it divides by its own size; the costs recorded "
                          "leave it out)")
    l1: float = _opt(0.0, "L1 penalty λ₁ (the cost minimized + λ₁/m·Σ|W|, m the batch size as l2's, as Keras's "
                          "kernel_regularizer=l1(λ₁/m); it drives weights towards 0; the costs recorded leave it "
                          "out)")
    optimizer: str = _opt("adam", "optimization algorithm", tuple(OPTIMIZERS))
    lr: float = _opt(3e-3, "learning rate α (the initial one with a schedule)")
    beta1: float = _opt(0.9, "β of momentum and RMSprop, β1 of Adam")
    beta2: float = _opt(0.999, "β2 of Adam")
    eps: float = _opt(1e-8, "ε of RMSprop and Adam")
    weight_decay: float = _opt(0.0, "weight decay on weights (decoupled for adamw, which at 0 is adam)")
    max_grad_norm: float = _opt(0.0, "clip the gradients to this global 2-norm at each step, g·min(1, max/(‖g‖₂ + "
                                     "1e-6)), as Keras's global_clipnorm (0: no clipping)")
    schedule: str = _opt("inverse_time", "learning-rate schedule over epochs (cosine: α0·(1 + cos(π·epoch/epochs))/2, "
                                         "epoch from 0)", SCHEDULES)
    decay_rate: float = _opt(0.05, "inverse_time: α0/(1 + decay_rate·epoch), epoch from 0; staircase: "
                                   "α0/(1 + decay_rate·⌊epoch/decay_every⌋)")
    decay_base: float = _opt(0.95, "exponential: α0·decay_base^epoch (> 0)")
    decay_every: int = _opt(10, "staircase interval and step period, in epochs")
    decay_factor: float = _opt(0.5, "step: multiply α by this (> 0) every decay_every epochs")
    # 1: the course's k/√epoch·α0 starts at α0, as the other decays do (its first epoch trains at lr)
    decay_k: float = _opt(1.0, "inverse_sqrt: α0·decay_k/√max(epoch, 1), epoch from 0 (> 0; the first two epochs "
                               "both at α0·decay_k)")
    batch_size: int = _opt(64, "mini-batch size")
    epochs: int = _opt(200, "maximum number of epochs")
    patience: int = _opt(15, "early stopping patience in epochs on the dev cost (0: off)")
    plateau_patience: int = _opt(0, "reduce the rate on a plateau: multiply it by plateau_factor once the dev cost has "
                                    "not improved by 1e-4 for this many epochs, as Keras's ReduceLROnPlateau "
                                    "(with schedule none; 0: off)")
    plateau_factor: float = _opt(0.1, "the factor in (0, 1) a plateau multiplies the rate by (plateau_patience)")
    augment_shift: int = _opt(0, "image datasets: random shifts of up to this many pixels")
    augment_noise: float = _opt(0.0, "image datasets: Gaussian noise of this standard deviation")
    augment_flip: bool = _opt(False, "image datasets: random left-right flips")
    base_error: float = _opt(0.0, "base (e.g. human-level) error for the bias/variance diagnosis")
    backend: str = _opt("auto", "array backend (auto: cupy if a GPU answers, else numpy; cpu, cuda: numpy, cupy; "
                                        "XDL_BACKEND, when set, takes the place of a config file's)", BACKEND_CHOICES)
    precision: str = _opt(DEFAULT_PRECISION, "float32 matrix products on a GPU: float32 (exact) or tf32 (tensor cores, "
                                     "as PyTorch's allow_tf32); the CPU stays exact", PRECISIONS)
    capture: bool = _opt(True, "on a GPU, capture each training step as a CUDA graph and replay it (where a "
                               "step needs the host, or with --no-capture, steps run eagerly)")
    seed: int = _opt(0, "random seed (split, initialization, shuffling, dropout)")
    out: str = _opt("xdl-run", "output directory (model, history, curves)")
    checkpoint_every: int = _opt(1, "write a resumable checkpoint every this many epochs and at the last (0: "
                                    "only at the last, or when stopped); the best epoch's is kept beside it")
    resume: str = _opt("", "continue a run from its checkpoints: the directory (OUT/checkpoints) or its "
                           "checkpoint.npz; options not given again are the run's")
    progress: bool = _opt(True, "progress bar (shown on a terminal only)")

    # -- reading and checking -----------------------------------------------------------------
    @classmethod
    def from_toml(cls, path, overrides: dict | None = None, defaults: dict | None = None,
                  data: dict | None = None) -> TrainConfig:
        """``defaults`` (else the fields' own), then the TOML file's keys, then ``overrides``; every
        value checked. ``data``: the file's keys, read already (a pipe, ``<(...)``, reads once)."""
        data = read_toml(path, "--config") if data is None else data
        spelled = {}
        for key in data:  # batch_size and batch-size are one option: both in a file is a slip
            first = spelled.setdefault(key.replace("-", "_"), key)
            if first != key:
                raise ValueError(f"config file {str(path)!r}: {first!r} and {key!r} are the same option; keep one")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in data.items():  # a value a flag overrides is the file's still, checked as its others are
            name = key.replace("-", "_")
            if name in fields and name in (overrides or {}):  # (epochs = 1.5 passed while --epochs 1 was given)
                where = f"config file {str(path)!r} (its value, though a flag overrides it)"
                _check_choice(fields[name], _checked(name, fields[name].type, value, where), where)
        config = cls.from_dict({**(defaults or {}), **data, **(overrides or {})}, source=f"config file {str(path)!r}")
        in_file = {key.replace("-", "_") for key in data}
        if in_file & set(overrides or {}):
            # and its values as the file gives them, each in range (epochs = 0, lr = -1 passed under --epochs 1,
            # --lr 0.1, their types and choices checked above, and the same file failed later without the flags);
            # the flags that set options the file does not hold still count (batch_size = 1 is good under
            # --no-batch-norm: it was refused once another flag overrode one of the file's values)
            others = {k: v for k, v in (overrides or {}).items() if k not in in_file}
            cls.from_dict({**(defaults or {}), **data, **others},
                          source=f"config file {str(path)!r} (its values, without the flags that override them)")
        return config

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> TrainConfig:
        names = [f.name for f in dataclasses.fields(cls)]
        config = cls()
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in names:  # (a typo's closest key first: the known ones alone hid it)
                closest = difflib.get_close_matches(name, names, n=1)
                hint = f" (closest known key: {closest[0]!r})" if closest else ""
                raise ValueError(f"{source}: unknown key {key!r}{hint}; known keys: {', '.join(names)}")
            setattr(config, name, value)  # set, then checked by validate: its errors name ``source``
        config.validate(source)
        return config

    def __repr__(self) -> str:
        """The options that differ from their defaults, as scikit-learn shows an estimator
        (``print_changed_only``): all 34 made a config 530 characters, and each of `fit_many`'s K
        results a screen of a notebook's output. ``TrainConfig(...)`` of it is the same config."""
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                   if getattr(self, f.name) != _default(f)]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __post_init__(self):
        # checked where it is made, from Python as from a file or the command line
        self.validate("TrainConfig")

    def validate(self, source: str = "config") -> None:
        """Check every option's type (normalizing it: NumPy scalars to Python ones, any sequence of
        integers to a list) and value; raise naming ``source`` and the option. `fit_many` calls it
        again, so an option assigned after construction is checked too."""
        checked = {f.name: _checked(f.name, f.type, getattr(self, f.name), source) for f in dataclasses.fields(self)}
        for name, value in checked.items():  # equal values, as plain types (so configs compare and save alike)
            setattr(self, name, value)
        for f in dataclasses.fields(self):
            _check_choice(f, getattr(self, f.name), source)
        if not is_named(self.init):  # (a name, not a choice: normal(SCALE) takes any scale ≥ 0)
            raise ValueError(f"{source}: init must be one of {', '.join(INITIALIZERS)} or normal(SCALE) with a "
                             f"finite SCALE ≥ 0, got {self.init!r}")
        for name in ("batch_size", "epochs", "decay_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{source}: {name} must be ≥ 1, got {getattr(self, name)}")
        for name in ("patience", "plateau_patience", "augment_shift", "checkpoint_every", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{source}: {name} must be ≥ 0, got {getattr(self, name)}")
        if self.seed >= SEEDS:  # a dropout mask's key holds it in 64 bits: 2**64 would draw seed 0's masks
            raise ValueError(f"{source}: seed must be below 2**64, got {self.seed}")
        if self.batch_norm and self.batch_size < 2:
            raise ValueError(f"{source}: batch_size must be ≥ 2 with batch_norm (a batch of one has no variance), "
                             f"got {self.batch_size}")
        if not self.hidden or min(self.hidden) < 1 or max(self.hidden) > MAX_WIDTH:
            raise ValueError(f"{source}: hidden must be a non-empty list of sizes in [1, {MAX_WIDTH:,}], got "
                             f"{self.hidden}")
        check_drop_rate(self.dropout, f"{source}: dropout")
        for name in ("lr", "eps", "decay_base", "decay_factor", "decay_k"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                raise ValueError(f"{source}: {name} must be a finite number > 0, got {getattr(self, name)}")
        low, high = FLOAT32_RATES
        for name in ("lr", "eps"):  # the update holds them in the model's dtype (float32 by default),
            if not low <= getattr(self, name) <= high:  # where a smaller one is 0, a larger one inf
                raise ValueError(f"{source}: {name} must be in float32's positive range [{low:.3g}, {high:.3g}], "
                                 f"got {getattr(self, name)}")
        # (resume first: a resume's out, unless given, is its run's directory, and a '~' there was blamed on out)
        check_no_tilde(str(self.resume), f"{source}: resume")
        check_directory_name(self.out, f"{source}: out")
        for name in ("l2", "l1", "weight_decay"):  # λ's: they multiply the float32 weights, where a larger one is inf
            check_penalty(getattr(self, name), f"{source}: {name}", np.float32)  # (the Trainer's check, in its words)
        for name in ("augment_noise", "decay_rate", "max_grad_norm"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{source}: {name} must be a finite number ≥ 0, got {getattr(self, name)}")
        if self.augment_noise > MAX_NOISE:  # (a larger σ's draws overflow the float32 images to inf: the run
            # failed after it had started, on "X contains NaN or Inf", under NumPy's overflow warning)
            raise ValueError(f"{source}: augment_noise must be at most {MAX_NOISE:.3g} (float32's largest number / 10: "
                             f"the images are float32, and a draw of more than 10σ is never seen), got "
                             f"{self.augment_noise}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{source}: {name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.base_error < 1:
            raise ValueError(f"{source}: base_error must be in [0, 1) (an error rate), got {self.base_error}")
        self._check_schedule(source)
        self._check_plateau(source)
        augments = [name for name in ("augment_shift", "augment_noise", "augment_flip") if getattr(self, name)]
        if augments and self.dataset not in IMAGE_SHAPES:  # (the option first: the command line names its flag)
            raise ValueError(f"{source}: {augments[0]}: augmentation applies to image datasets "
                             f"({', '.join(IMAGE_SHAPES)}), not {self.dataset!r}")
        try:  # Augment's own checks against the dataset's images (a shift below their side), now
            self.build_augment()
        except ValueError as e:  # "shift must be …": the option is augment_shift
            raise ValueError(f"{source}: augment_{e}") from None

    def _check_schedule(self, source: str) -> None:
        """The schedule gives a rate float32 holds at every epoch of the planned run (checked now,
        not at the epoch where it would fail); one that decays below float32's smallest positive
        number is 0 there and runs (the Trainer's rule, `check_rate`), one that grows to inf not, and
        the first epoch's is at least that smallest number (the Trainer refuses a smaller one there: it is
        no decayed rate)."""
        schedule = self.build_schedule()
        if schedule is None:
            return
        options = ", ".join(f"{k}={getattr(self, k)}" for k in SCHEDULE_OPTIONS[self.schedule])

        rate = schedule  # (inf beyond floats, not an OverflowError: the schedules' own rule)

        def bad(epoch):  # inf once the update holds it in float32
            return not rate(epoch) <= FLOAT32_RATES[1]

        # With the options validate allows, every schedule is monotone in the epoch, so its largest rate is the
        # first epoch's or the last's: a falling one's is the first's (lr, but inverse_sqrt's lr·decay_k, beyond
        # float32 for a large decay_k); a growing one's bad rate stays bad once reached, so if the last epoch's is
        # bad, bisect for the first (any number of epochs in a few dozen calls).
        first, last = 0, self.epochs - 1
        if not rate(first) >= FLOAT32_RATES[0]:  # (inverse_sqrt's lr·decay_k: the run failed once it had started)
            raise ValueError(f"{source}: schedule {self.schedule!r} ({options}) gives lr {rate(first):.3g} at epoch 1 "
                             f"of {self.epochs}; the first epoch's rate must be at least {FLOAT32_RATES[0]:.3g}, "
                             "float32's smallest positive number (a later epoch's may decay to 0)")
        if bad(first):
            last = first
        elif not bad(last):
            return
        while first < last:
            middle = (first + last) // 2
            first, last = (first, middle) if bad(middle) else (middle + 1, last)
        raise ValueError(f"{source}: schedule {self.schedule!r} ({options}) gives lr {rate(first):.3g} at epoch "
                         f"{first + 1} of {self.epochs}; the rate must stay at most {FLOAT32_RATES[1]:.3g}, float32's "
                         "largest number")

    def _check_plateau(self, source: str) -> None:
        """plateau_factor in (0, 1); a plateau (plateau_patience > 0) only with schedule none: an epoch
        schedule sets the rate at each epoch's start, over the one the plateau lowered."""
        if not 0 < self.plateau_factor < 1:  # (NaN too)
            raise ValueError(f"{source}: plateau_factor must be a number in (0, 1), got {self.plateau_factor}")
        if self.plateau_patience and self.schedule != "none":
            raise ValueError(f"{source}: plateau_patience {self.plateau_patience} lowers the rate on a plateau, and "
                             f"schedule {self.schedule!r} sets it at each epoch's start over the lowered one; give "
                             "schedule none with plateau_patience (or plateau_patience 0 with the schedule)")

    def check_precision_in_use(self, backend, source: str, runner: str) -> None:
        """Refuse, naming ``source``, a precision set here — not the default, float32, which takes the
        backend's — that differs from the one ``backend`` computes float32 matrix products at
        (`Backend.precision`), on a GPU: ``runner`` (fit_many, a search, `build_trainer`'s Trainer) trains at
        the backend's, set by ``xdl.use``, and reads no config's (``xdl train`` sets the backend's from its
        config's). On the CPU every precision is exact float32 (as ``xdl train --precision tf32`` runs there):
        any is taken."""
        if backend.device_type == "cpu" or self.precision in (DEFAULT_PRECISION, backend.precision):
            return
        raise ValueError(f"{source}.precision is {self.precision!r}, but {runner} trains at the precision of the "
                         f"backend in use, and {backend.name}'s is {backend.precision!r}: set it with "
                         f"xdl.use({backend.name!r}, precision={self.precision!r}) around the call (or leave "
                         f"precision at its default, {DEFAULT_PRECISION!r}: the backend's)")

    def at_precision_in_use(self, backend, source: str, runner: str) -> TrainConfig:
        """This config with the precision ``runner`` trains it at on ``backend``, which is what a run records of it
        (a Result's config, a search's base and best.toml, a checkpoint's run_info): the backend's on a GPU (a
        precision set here to another is refused, `check_precision_in_use`); on the CPU, where every precision is
        exact float32, its own (as ``xdl train --precision tf32`` records it there, for a GPU to take)."""
        self.check_precision_in_use(backend, source, runner)
        if backend.device_type == "cpu" or self.precision == backend.precision:
            return self
        return dataclasses.replace(self, precision=backend.precision)

    # -- building -----------------------------------------------------------------------------
    @property
    def progress_bar(self) -> bool | None:
        """``progress`` as the loops take it: None (a bar on a terminal only) or False."""
        return None if self.progress else False

    def build_model(self, n_features: int, n_classes: int, standardize=None):
        """The MLP these options describe, its weights drawn as after ``xdl.seed(self.seed)`` (from a
        generator of this call's own: the process's are left as they were, and two builds, or
        builds in threads, give the same model)."""
        try:
            with thread_seed(self.seed):
                return mlp(n_features, self.hidden, n_classes, activation=self.activation, init=self.init,
                           batch_norm=self.batch_norm, dropout=self.dropout, standardize=standardize)
        except MemoryError as e:  # NumPy's words name an array's shape, not the option that asked for it
            raise MemoryError(f"hidden {self.hidden}: the model's weights do not fit in memory ({e})") from None

    def build_optimizer(self, model):
        """The optimizer named by ``optimizer`` (an `OPTIMIZERS` entry) over ``model``; weight decay
        goes to the weights only (`xdl.optim.param_groups`); ``max_grad_norm`` is the optimizer's (0: None)."""
        params = optim.param_groups(model, self.weight_decay) if self.weight_decay else model
        optimizer = OPTIMIZERS[self.optimizer][1](params, self)
        optimizer.max_grad_norm = self.max_grad_norm or None
        return optimizer

    def build_schedule(self):
        """epochs completed (0 for the first epoch) → learning rate, or None for a constant rate."""
        s = optim.schedules
        return {"none": lambda: None,
                "inverse_time": lambda: s.inverse_time(self.lr, decay_rate=self.decay_rate),
                "exponential": lambda: s.exponential(self.lr, base=self.decay_base),
                "staircase": lambda: s.staircase(self.lr, decay_rate=self.decay_rate, interval=self.decay_every),
                "step": lambda: s.step_decay(self.lr, factor=self.decay_factor, every=self.decay_every),
                "inverse_sqrt": lambda: s.inverse_sqrt(self.lr, k=self.decay_k),
                "cosine": lambda: s.cosine(self.lr, self.epochs)}[self.schedule]()

    def build_trainer(self, model, callbacks=(), plateau_monitor: str = "dev_cost"):
        """The `Trainer` these options describe for ``model``: softmax cross-entropy, the configured
        optimizer, L2, L1, schedule and augmentation, `EarlyStopping` on the dev cost when ``patience``
        is set, `ReduceLROnPlateau` on ``plateau_monitor`` (factor ``plateau_factor``, its other settings
        its defaults) when ``plateau_patience`` is, then ``callbacks``. Its checkpoints carry these options
        (``run_info``), so a resume can check them (`check_resume`). A Trainer's float32 matrix products take
        the precision of the backend in use (``xdl.use(..., precision=…)``, which xdl train sets from these
        options): a ``precision`` set here other than that of ``model``'s backend, on a GPU, is refused
        (`check_precision_in_use`), as fit_many and tune refuse it; the default takes the backend's, and the
        checkpoints' options record the one it trains at (`at_precision_in_use`)."""
        stopping = [EarlyStopping(patience=self.patience)] if self.patience else []
        plateau = [ReduceLROnPlateau(plateau_monitor, factor=self.plateau_factor, patience=self.plateau_patience)] \
            if self.plateau_patience else []
        trainer = Trainer(model, SoftmaxCrossEntropy(), self.build_optimizer(model), l2=self.l2, l1=self.l1,
                          batch_size=self.batch_size, epochs=self.epochs, schedule=self.build_schedule(),
                          callbacks=[*stopping, *plateau, *callbacks], augment=self.build_augment(), seed=self.seed,
                          progress=self.progress_bar, capture="auto" if self.capture else False)
        # (once the Trainer has checked its parts: the model's backend is then a Module's; nothing is changed yet)
        trained = self.at_precision_in_use(trainer.model.backend, "build_trainer: config", "its Trainer")
        trainer.run_info = {"config": dataclasses.asdict(trained)}
        return trainer

    def check_resume(self, saved: dict, where: str, epochs_done: int, option=None, step: int = 0) -> None:
        """Raise ValueError naming the first option that differs from ``saved`` (the options of the
        run that wrote the checkpoint in ``where``, after ``epochs_done`` epochs and ``step`` steps
        into the next) among those that describe the run. Only `RESUME_MAY_CHANGE` may differ, and of
        them ``epochs`` only to as many as the checkpoint has trained or more — the epoch it stopped
        in counted (`fewest_epochs`) — (and not under a cosine schedule, which spans them) and
        ``patience`` and ``plateau_patience`` not between 0 and more.
        ``option(name)`` names an option as the caller knows it (default: the command's flag)."""
        option = option or flag_of
        fewest, trained, ask = fewest_epochs(epochs_done, step)
        if self.epochs < fewest:  # (as many: the run is over, and ends as it ended)
            raise ValueError(f"{option('epochs')}: the checkpoint in {where!r} has trained {trained} and "
                             f"this run has {option('epochs')} {self.epochs}: a run cannot train fewer; {ask}")
        # (both cosine: a checkpoint of another schedule resumed with --schedule cosine is refused below, naming
        # --schedule; it was told "the cosine schedule of the checkpoint spans N epochs", blaming --epochs)
        if self.schedule == saved.get("schedule") == "cosine" and saved.get("epochs") != self.epochs:
            raise ValueError(f"{option('epochs')}: the cosine schedule of the checkpoint in {where!r} spans "
                             f"{counted(saved.get('epochs'), 'epoch')}, this run has {self.epochs}; "
                             "it cannot change on a resume")
        if (saved.get("patience", 0) == 0) != (self.patience == 0):
            raise ValueError(f"{option('patience')}: the checkpoint in {where!r} was made with {saved.get('patience')!r}, "
                             f"this run has {self.patience!r}; early stopping (patience > 0) cannot be switched on or "
                             "off on a resume, only its patience changed")
        if (saved.get("plateau_patience", 0) == 0) != (self.plateau_patience == 0):  # (an older run's: 0, none)
            raise ValueError(f"{option('plateau_patience')}: the checkpoint in {where!r} was made with "
                             f"{saved.get('plateau_patience', 0)!r}, this run has {self.plateau_patience!r}; the "
                             "lowering on a plateau (plateau_patience > 0) cannot be switched on or off on a resume, "
                             "only its patience and factor changed")
        changed = self.first_change(saved)
        if changed is not None:
            name, then, now = changed
            # a rate goes on changed through the run's control file (`xdl.train.Control`), read before the first step
            rate = (f"; to go on at another rate, write lr = {_shown(now)} into control.toml in the run's output "
                    "directory before resuming") if name == "lr" else ""
            raise ValueError(f"{option(name)}: the checkpoint in {where!r} was made with {_shown(then)}, this run has "
                             f"{_shown(now)}; resume with the same options (only "
                             f"{', '.join(option(k) for k in RESUME_MAY_CHANGE if k != 'resume')} may change), "
                             f"or start a new run without resuming{rate}")

    def first_change(self, saved: dict) -> tuple[str, object, object] | None:
        """(name, saved value, this value) of the first option outside `RESUME_MAY_CHANGE` that
        differs from ``saved`` (a checkpoint's options), or None: what a resume must keep."""
        return first_change(saved, {f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    def build_augment(self):
        if not (self.augment_shift or self.augment_noise or self.augment_flip):
            return None
        return Augment(IMAGE_SHAPES[self.dataset], flip=self.augment_flip, shift=self.augment_shift,
                       noise=self.augment_noise)

    def build_standardize(self, X_train):
        """The `xdl.nn.Standardize` layer the model starts with: each feature's mean and spread on
        the training examples as the model sees them — with augmentation, on ``X_train`` and
        `AUGMENTED_COPIES` augmented copies of it (seeded by ``seed``). Measured on the clean images
        only, a pixel that is almost always blank gets a tiny spread, and the ink a shift moves
        into it lands hundreds of standard deviations out: digits trained with a one-pixel shift
        reached 85% dev accuracy in 15 epochs that way, 94% this way."""
        augment = self.build_augment()
        if augment is None:
            return Standardizer().fit(X_train).layer()
        rng = np.random.default_rng([self.seed, 1 << 30])  # a stream of its own (epoch e shuffles with [seed, e])
        copies = [augment(np.array(X_train, dtype=np.float32), rng) for _ in range(AUGMENTED_COPIES)]
        return Standardizer().fit(np.concatenate([np.asarray(X_train, dtype=np.float32), *copies])).layer()


def flag_of(name: str) -> str:
    """An option as ``xdl train`` spells it: ``--decay-rate``."""
    return "--" + name.replace("_", "-")


def _shown(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else repr(value)


TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
              "list[int]": "a list of integers"}
# the value of each option that turns off what it does, said to a None (PyTorch's and Keras's "off": TOML has no
# null, so an option is never None; `_checked`)
OFF_VALUES = {"dropout": "0 is no dropout", "l2": "0 is no penalty", "l1": "0 is no penalty",
              "weight_decay": "0 is no decay", "max_grad_norm": "0 is no clipping",
              "patience": "0 is no early stopping", "plateau_patience": "0 is no lowering on a plateau",
              "augment_shift": "0 is no shifts", "augment_noise": "0 is no noise",
              "checkpoint_every": "0 is a checkpoint only at the last epoch or when stopped",
              "resume": "'' is a new run"}


def _check_choice(f: dataclasses.Field, value, source: str) -> None:
    """``value`` one of field ``f``'s choices, where it has some."""
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ValueError(f"{source}: {f.name} must be one of {', '.join(choices)}, got {value!r}")


def _checked(name: str, type_name: str, value, source: str):
    """``value`` if it has the field's type (ints are accepted as floats, NumPy scalars as Python
    ones, any sequence of integers as a list), else a clear error."""
    # (a timedelta64 is a NumPy integer: a duration is no count, as a datetime64 is not)
    integer = lambda v: isinstance(v, int | np.integer) \
        and not isinstance(v, bool | np.bool_ | np.timedelta64)  # noqa: E731
    ok = {"int": integer,
          "float": lambda v: integer(v) or isinstance(v, float | np.floating),
          "bool": lambda v: isinstance(v, bool | np.bool_),
          "str": lambda v: isinstance(v, str),
          "list[int]": lambda v: (isinstance(v, list | tuple) or isinstance(v, np.ndarray) and v.ndim == 1)
          and all(integer(i) for i in v)}[type_name]
    if not ok(value):
        off = f"; {OFF_VALUES[name]} (TOML has no null)" if value is None and name in OFF_VALUES else ""
        raise TypeError(f"{source}: {name} must be {TYPE_NAMES[type_name]}, got {value!r} ({type(value).__name__})"
                        f"{off}")
    convert = {"int": int, "float": float, "bool": bool, "str": str, "list[int]": lambda v: [int(i) for i in v]}
    try:
        return convert[type_name](value)
    except OverflowError:  # an integer beyond floats (a TOML key of 400 digits): float() named neither it nor the file
        raise ValueError(f"{source}: {name} must be a finite number, got an integer beyond floats' range "
                         f"({len(str(abs(value)))} digits)") from None
