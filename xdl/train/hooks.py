"""The callback protocol as a training loop calls it: `check_callback` (an xdl `Callback`, not one
with Keras's or Lightning's hooks or signatures, `FOREIGN_HOOKS`), `check_distinct_callbacks`,
`check_callbacks_fit` (each callback's ``check_fits``) and `call_hook`, which calls one hook and reads
the stop it asked (`keras_stop`: Keras's ``model.stop_training``) — for a `Trainer` and a
`xdl.train.ManyTrainer` alike.
"""

from __future__ import annotations

import inspect
import math
import numbers

from xdl.caller import warn_caller
from xdl.train.callback import Callback
from xdl.train.checkpoint import Checkpoint

# Keras's callback hooks that xdl's Callback has not (a method of that name would never be called)
FOREIGN_HOOKS = frozenset({"on_epoch_begin", "on_batch_begin", "on_batch_end", "on_train_batch_begin",
                           "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin",
                           "on_test_batch_end", "on_predict_begin", "on_predict_end", "on_predict_batch_begin",
                           "on_predict_batch_end",
                           # Lightning's: its on_train_end takes (trainer, module), xdl's (trainer) alone
                           "on_fit_start", "on_fit_end", "on_train_start", "on_train_epoch_start", "on_train_epoch_end",
                           "on_validation_start", "on_validation_end", "on_validation_epoch_start",
                           "on_validation_epoch_end", "on_save_checkpoint", "on_load_checkpoint",
                           "on_before_backward", "on_after_backward", "on_before_optimizer_step",
                           # Keras calls these before training; xdl's hooks are given the trainer instead
                           "set_model", "set_params"})


def check_callback(cb, steps: bool = True) -> None:
    """``cb`` is an xdl `Callback` whose hooks xdl calls: not one with Keras's or Lightning's hooks
    (`FOREIGN_HOOKS`, never called) or Keras's on_epoch_end or on_train_batch_end signature — for a
    `Trainer` and a `ManyTrainer` alike, before any work; ``steps=False`` (`fit_many`, which calls
    no hook after each step): not one overriding ``on_step_end`` either."""
    if not isinstance(cb, Callback):
        raise TypeError(f"callbacks must be xdl.train.Callback instances, got {cb!r}")
    order = getattr(cb, "order", None)
    if isinstance(order, bool) or not isinstance(order, numbers.Real) or math.isnan(order):
        raise TypeError(f"callbacks: {type(cb).__name__}.order must be a number (callbacks run by increasing order; "
                        f"Checkpoint's is {Checkpoint.order}), got {order!r}")
    _check_keras_signature(cb)
    foreign = sorted(FOREIGN_HOOKS & set(dir(type(cb))))
    if foreign:  # a Keras hook would never be called
        step = " (after each step, on_step_end(self, trainer, cost))" \
            if steps and any("batch" in n for n in foreign) else ""
        raise TypeError(f"callbacks: {type(cb).__name__}.{foreign[0]} is no hook of xdl's Callback, which has "
                        f"{', '.join(n for n in dir(Callback) if n.startswith('on_'))}{step}: it would never be called")
    _check_lightning_exception_hook(cb)
    if not steps and type(cb).on_step_end is not Callback.on_step_end:
        raise TypeError(f"callbacks: {type(cb).__name__}.on_step_end would never be called: fit_many calls its "
                        "callbacks at epochs' ends (on_train_begin, on_epoch_end, on_train_end), not after each step "
                        "of its K models; a Trainer calls it")


def keras_stop(trainer, cb) -> None:
    """Keras's ``self.model.stop_training = True``, written as ``trainer.model.stop_training`` by
    callback ``cb`` (of a `Trainer` or a `xdl.train.ManyTrainer`): the run stops, as Keras's does,
    saying xdl's flag (set on the model, it was an attribute nothing read: the run trained on to its
    last epoch)."""
    if trainer.model.__dict__.pop("stop_training", None) is True:
        warn_caller(f"{type(cb).__name__} set trainer.model.stop_training (Keras's model.stop_training): the run "
                    "stops; xdl's flag is trainer.stop_training")
        trainer.stop_training = True


def call_hook(trainer, cb, hook: str, *args, where: str = "") -> None:
    """Callback ``cb``'s ``hook(trainer, *args)`` (of a `Trainer` or a `xdl.train.ManyTrainer`), then
    the stop it asked: Keras's ``model.stop_training`` read (`keras_stop`), and a stop ``cb`` set
    named in the history — "stopped by Name" + ``where`` — unless it said why itself (`EarlyStopping`,
    a `Control` file); a stop a later callback takes back (``trainer.stop_training = False``) is no
    stop of the run, nor named. The one rule of each hook: on_train_begin, on_step_end, on_epoch_end."""
    stopped = trainer.stop_training
    getattr(cb, hook)(trainer, *args)
    keras_stop(trainer, cb)
    if trainer.stop_training and not stopped and trainer.history.stopped_by is None:
        trainer.history.stopped_by = f"stopped by {type(cb).__name__}{where}"
    elif not trainer.stop_training:
        trainer.history.stopped_by = None


def check_distinct_callbacks(callbacks) -> None:
    """Each callback is given once: one given twice runs twice at each epoch's end (an
    `EarlyStopping` counted two epochs of patience per epoch and stopped early, saying it waited
    epochs it had not), and its state is saved twice."""
    seen = set()
    for cb in callbacks:
        if id(cb) in seen:
            raise ValueError(f"callbacks: {cb!r} is given twice (the same instance): it would run twice at each "
                             "epoch's end; give it once")
        seen.add(id(cb))


def check_callbacks_fit(trainer) -> None:
    """Each of ``trainer.callbacks``' ``check_fits(trainer)``, in their order: a `Trainer`'s fit and a
    `ManyTrainer`'s call it once their arguments are checked, before any work or change (a ManyTrainer's
    model and optimizer are None until its first fit builds them, after this) — where a callback refuses a
    trainer it cannot work with (`ReduceLROnPlateau`: an epoch schedule, or fit_many's K rates)."""
    for cb in trainer.callbacks:
        cb.check_fits(trainer)


def _check_lightning_exception_hook(cb) -> None:
    """``cb.on_exception`` takes (trainer, error) — not Lightning's (trainer, pl_module, exception),
    nor any other arity —, which would fail with a TypeError of its own at the moment it is to clean
    up, in place of the error it was told of."""
    hook = type(cb).on_exception
    if hook is Callback.on_exception:
        return
    try:
        signature = inspect.signature(hook)
    except (TypeError, ValueError):  # (a builtin, say: nothing to read)
        return
    try:
        signature.bind(cb, None, None)
    except TypeError:
        positional = [p for p in signature.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        lightning = " is Lightning's on_exception(self, trainer, pl_module, exception);" if len(positional) == 4 else \
            " cannot be called with (trainer, error):"
        raise TypeError(f"callbacks: {type(cb).__name__}.on_exception{signature}{lightning} xdl calls "
                        "on_exception(self, trainer, error): the model is trainer.model") from None


def _check_keras_signature(cb) -> None:
    """``cb.on_epoch_end`` takes (trainer, record), not Keras's (epoch, logs), and ``cb.on_step_end``
    (trainer, cost), not Keras's on_train_batch_end (batch, logs): called with the trainer as its epoch
    or batch, a Keras callback fails at the first epoch's end or step (``logs["val_loss"]``,
    ``logs["loss"]`` of a float, ``batch % 100``), inside the run; named here instead."""
    for hook_name, index, keras, ours, says in (
            ("on_epoch_end", "epoch", "on_epoch_end(self, epoch, logs)", "on_epoch_end(self, trainer, record)",
             "the record is the epoch's logs (record['epoch'], counted from 1; record['dev_cost'] is Keras's "
             "val_loss)"),
            ("on_step_end", "batch", "on_train_batch_end(self, batch, logs)", "on_step_end(self, trainer, cost)",
             "cost is the step's mean cost (Keras's logs['loss'] is the epoch's running mean up to the batch: "
             "average the costs yourself for it), trainer.step the steps of the epoch done "
             "(Keras's batch + 1)")):
        hook = getattr(type(cb), hook_name)
        if hook is getattr(Callback, hook_name):
            continue
        try:
            parameters = inspect.signature(hook).parameters
        except (TypeError, ValueError):  # (a builtin, say: nothing to read)
            continue
        names, logs = list(parameters), parameters.get("logs")
        # Keras's is (self, epoch, logs=None): an xdl hook may call its record "logs" (trainer, logs), which
        # xdl passes it always, so with no default — or with one, after a first parameter named trainer
        # ((self, trainer, logs=None) is xdl's, whatever the default)
        keras_logs = logs is not None and logs.default is not inspect.Parameter.empty and names[1:2] != ["trainer"]
        if names[1:2] == [index] or keras_logs:
            raise TypeError(f"callbacks: {type(cb).__name__}.{hook_name}{inspect.signature(hook)} is Keras's "
                            f"{keras}; xdl calls {ours}: {says}")
