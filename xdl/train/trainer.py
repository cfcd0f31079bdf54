"""`Trainer`: the course's training loop as one call — mini-batches, L2, a learning-rate schedule,
per-epoch train/dev metrics, callbacks, checkpoints and exact resumption.

Randomness is re-derived at every epoch from (seed, epoch): the shuffle, the augmentation and the
dropout masks of epoch e are the same whether the run got there directly or resumed from a
checkpoint, so a resumed run ends with the same weights as an uninterrupted one.

Host syncs: none per batch on a GPU except for the progress bar's periodic refresh; the costs of
an epoch's steps stay on the device and are checked for NaN/Inf in one transfer at the epoch's end
(at every step on the CPU, where a check costs nothing).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from xdl import losses as _losses
from xdl.data import check_features, check_labels, minibatches
from xdl.serialization import read_extra, save
from xdl.tensor import no_grad
from xdl.train.callbacks import CHECKPOINT_FILE, Callback
from xdl.train.history import History

CLASSIFICATION = (_losses.SoftmaxCrossEntropy, _losses.BinaryCrossEntropy)
REFRESH_STEPS = 20  # the progress bar shows the running cost every this many steps (one host sync)


class Trainer:
    """Train ``model`` on ``loss`` with ``optimizer`` in mini-batches.

    ``l2``: λ of the penalty λ/(2m)·Σ‖W‖² added to each batch's cost (m = batch size).
    ``schedule``: epochs completed → learning rate, set at the start of each epoch (so the first
    epoch uses schedule(0), as every count in `xdl.optim.schedules`); for a per-step schedule give
    the optimizer lr=schedule.
    ``augment``: called as ``augment(X_batch, rng)`` on each training batch (e.g. `xdl.data.Augment`).
    ``eval_train``: measure train cost/accuracy in evaluation mode on the whole training set after
    each epoch (comparable with dev, for bias/variance); False: the running averages of the epoch.
    ``progress``: a tqdm bar; None shows it only on a terminal.

    Costs in the history are the data loss without the L2 term, so train and dev compare alike.
    """

    def __init__(self, model, loss, optimizer, l2: float = 0.0, batch_size: int = 64, epochs: int = 10,
                 schedule=None, callbacks=(), augment=None, seed: int = 0, eval_train: bool = True,
                 progress: bool | None = None):
        if not isinstance(batch_size, int | np.integer) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(epochs, int | np.integer) or isinstance(epochs, bool) or epochs <= 0:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if not l2 >= 0:
            raise ValueError(f"l2 must be ≥ 0, got {l2}")
        if schedule is not None and not callable(schedule):
            raise TypeError(f"schedule must be a callable epoch → learning rate, got {schedule!r}")
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be xdl.train.Callback instances, got {cb!r}")
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.l2, self.batch_size, self.epochs, self.schedule = float(l2), int(batch_size), int(epochs), schedule
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)
        self.augment, self.seed, self.eval_train, self.progress = augment, int(seed), eval_train, progress
        self.history = History()
        self.epoch = 0  # epochs completed
        self.stop_training = False
        self.resumed = False
        self.last_checkpoint: Path | None = None

    # -- inputs -------------------------------------------------------------------------------
    @property
    def classification(self) -> bool:
        return isinstance(self.loss, CLASSIFICATION)

    def _check(self, X, y, name: str = ""):
        n_features = _input_features(self.model)
        X = check_features(X, f"X{name}", n_features)
        if self.classification:
            n_out = _output_width(self.model)
            y = check_labels(y, len(X), f"y{name}", n_classes=max(n_out, 2) if n_out else None)
        else:
            y = np.asarray(y)
            if len(y) != len(X):
                raise ValueError(f"X{name} has {len(X)} examples but y{name} has {len(y)} "
                                 "(they must have the same length)")
        return X.reshape(len(X), -1).astype(self.model.dtype, copy=False), y

    # -- the loop -----------------------------------------------------------------------------
    def fit(self, X, y, dev=None, resume=None) -> History:
        """Train for the remaining epochs and return the `History`.

        ``dev``: ``(X_dev, y_dev)`` for dev metrics (needed by EarlyStopping on dev_cost).
        ``resume``: a directory with a checkpoint written by `Checkpoint`: continue that run.
        """
        X, y = self._check(X, y)
        if len(X) == 0:
            raise ValueError("X has no examples")
        if dev is not None:
            if not (isinstance(dev, tuple | list) and len(dev) == 2):
                raise ValueError("dev must be a pair (X_dev, y_dev)")
            dev = self._check(*dev, name="_dev")
        self.stop_training, self.resumed = False, resume is not None
        if resume is not None:
            self.load_checkpoint(Path(resume) / CHECKPOINT_FILE)
        for cb in self.callbacks:
            cb.on_train_begin(self)
        if self.augment is None:  # batches are then cut on the device: one transfer, not one per batch
            backend = self.model.backend
            X, y = backend.asarray(X), backend.asarray(y)
            dev = (backend.asarray(dev[0]), backend.asarray(dev[1])) if dev is not None else None
        steps = -(-len(X) // self.batch_size)
        bar = _progress_bar(self.progress, total=(self.epochs - self.epoch) * steps)
        try:
            while self.epoch < self.epochs and not self.stop_training:
                record = self._train_epoch(X, y, dev, steps, bar)
                self.history.append(record)
                for cb in self.callbacks:
                    cb.on_epoch_end(self, record)
                if self.stop_training:
                    self.history.stopped_epoch = record["epoch"]
                bar.set_postfix(_postfix(record), refresh=False)
        finally:
            bar.close()
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    def _train_epoch(self, X, y, dev, steps: int, bar) -> dict:
        backend = self.model.backend
        e = self.epoch
        start = time.perf_counter()
        rng = np.random.default_rng([self.seed, e])  # shuffle and augmentation of epoch e
        backend.seed(int(np.random.SeedSequence([self.seed, e, 1]).generate_state(1)[0]))  # dropout masks
        if self.schedule is not None:
            self.optimizer.lr = float(self.schedule(e))
        lr = self.optimizer.current_lr()
        xp = backend.xp
        costs = xp.zeros(steps, dtype=np.float64)  # each step's mean cost, kept on the device
        correct = xp.zeros((), dtype=np.int64)
        checked = 0
        self.model.train()
        for step, (Xb, yb) in enumerate(minibatches(X, y, self.batch_size, seed=rng)):
            if self.augment is not None:
                Xb = self.augment(Xb, rng)
            self.optimizer.zero_grad()
            out = self.model(Xb)
            cost = self.loss(out, yb)
            total = cost + _losses.l2(self.model, self.l2, m=len(Xb)) if self.l2 else cost
            total.backward()
            self.optimizer.step()
            costs[step] = cost.data
            if self.classification and not self.eval_train:
                correct += _correct(xp, out.data, backend.asarray(yb))
            bar.update(1)
            if backend.host_sync_is_cheap or step + 1 == steps:
                self._check_finite(backend, costs, checked, step + 1, e)
                checked = step + 1
            if bar.disable is False and (step + 1) % REFRESH_STEPS == 0:
                bar.set_postfix(cost=f"{float(costs[step]):.4f}", refresh=False)
        record = {"epoch": e + 1}
        if self.eval_train:
            record.update(_prefixed("train", self._evaluate(X, y)))
        else:
            last = len(X) - (steps - 1) * self.batch_size  # every batch is full but the last
            record["train_cost"] = (float(costs[:-1].sum()) * self.batch_size + float(costs[-1]) * last) / len(X)
            record["train_accuracy"] = int(correct) / len(X) if self.classification else None
        record.update(_prefixed("dev", self._evaluate(*dev)) if dev is not None
                      else {"dev_cost": None, "dev_accuracy": None})
        record["lr"] = lr
        record["seconds"] = time.perf_counter() - start
        self.epoch = e + 1
        return record

    def _check_finite(self, backend, costs, start: int, stop: int, epoch: int) -> None:
        values = backend.to_numpy(costs[start:stop])
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            where = f"; the last checkpoint {str(self.last_checkpoint)!r} is intact" if self.last_checkpoint else ""
            raise FloatingPointError(
                f"training diverged: the cost became {values[bad[0]]} at epoch {epoch + 1}, step {start + bad[0] + 1} "
                f"(try a smaller learning rate){where}")

    @no_grad()
    def evaluate(self, X, y, batch_size: int = 1024) -> dict:
        """Cost (data loss) and accuracy (classification) of the model in evaluation mode."""
        return self._evaluate(*self._check(X, y), batch_size)

    def _evaluate(self, X, y, batch_size: int = 1024) -> dict:
        backend = self.model.backend
        xp = backend.xp
        cost_sum, correct = xp.zeros((), dtype=np.float64), xp.zeros((), dtype=np.int64)
        with self.model.evaluating():
            for i in range(0, len(X), batch_size):
                out = self.model(X[i:i + batch_size])
                yb = y[i:i + batch_size]
                cost_sum += self.loss(out, yb).data * len(yb)
                if self.classification:
                    correct += _correct(xp, out.data, backend.asarray(yb))
        m = max(len(X), 1)
        return {"cost": float(cost_sum) / m, "accuracy": int(correct) / m if self.classification else None}

    # -- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self, path) -> Path:
        """Model, optimizer state, epoch, history and callback states in one file (atomic)."""
        opt = self.optimizer.state_dict()
        arrays = {f"optimizer/{g}/{f}/{name}": a for g, group in enumerate(opt["state"])
                  for f, state in enumerate(group) for name, a in state.items()}
        callbacks = []
        for i, cb in enumerate(self.callbacks):
            state, cb_arrays = cb.state_dict()
            callbacks.append(state)
            arrays.update({f"callback/{i}/{k}": v for k, v in cb_arrays.items()})
        extra = {"epoch": self.epoch, "optimizer_t": opt["t"], "history": self.history.to_dict(),
                 "callbacks": callbacks, "seed": self.seed}
        path = save(self.model, path, extra=extra, extra_arrays=arrays)
        self.last_checkpoint = path
        return path

    def load_checkpoint(self, path) -> None:
        """Restore the state `save_checkpoint` wrote (the model and optimizer must match it)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"resume: no checkpoint at {str(path)!r}")
        extra, arrays = read_extra(path)
        if not extra or "optimizer_t" not in extra:
            raise ValueError(f"resume: {str(path)!r} is a model file, not a training checkpoint")
        if len(extra["callbacks"]) != len(self.callbacks):
            raise ValueError(f"resume: the checkpoint has {len(extra['callbacks'])} callbacks' state, "
                             f"this trainer has {len(self.callbacks)} callbacks")
        from xdl.serialization import load

        load(path, model=self.model)
        opt = self.optimizer.state_dict()
        state = [[{name: arrays[f"optimizer/{g}/{f}/{name}"] for name in st} for f, st in enumerate(group)]
                 for g, group in enumerate(opt["state"])]
        self.optimizer.load_state_dict({"t": extra["optimizer_t"], "settings": opt["settings"], "state": state})
        for i, (cb, cb_state) in enumerate(zip(self.callbacks, extra["callbacks"])):
            prefix = f"callback/{i}/"
            cb.load_state_dict(cb_state, {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
        self.history = History.from_dict(extra["history"])
        self.epoch, self.seed, self.last_checkpoint = int(extra["epoch"]), int(extra["seed"]), path


def _correct(xp, out, labels):
    """Number of correct predictions: argmax for several outputs, logit > 0 for one."""
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    pred = out.argmax(axis=1) if out.ndim == 2 and out.shape[1] > 1 else (out.reshape(-1) > 0)
    return (pred == labels.reshape(-1)).sum()


def _prefixed(prefix: str, metrics: dict) -> dict:
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


def _postfix(record: dict) -> dict:
    keys = ("train_cost", "dev_cost", "dev_accuracy")
    return {k: f"{record[k]:.4f}" for k in keys if record.get(k) is not None}


def _input_features(model) -> int | None:
    for _, module in model.named_modules():
        for attr in ("in_features", "features"):
            if isinstance(getattr(module, attr, None), int):
                return getattr(module, attr)
    return None


def _output_width(model) -> int | None:
    width = None
    for _, module in model.named_modules():
        if isinstance(getattr(module, "out_features", None), int):
            width = module.out_features
    return width


def _progress_bar(enabled: bool | None, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="batch", disable=None if enabled is None else not enabled, leave=False,
                dynamic_ncols=True)
