"""Ctrl-C and SIGTERM during training: finish the current step, save, and say how to resume."""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Training stopped by a signal after a finished step. ``checkpoint`` is the resumable
    checkpoint written then (None when the trainer has no `Checkpoint` callback). ``ended``: what
    the interrupted work had finished, for its caller to keep, where that work says (a search's
    batch of trials: the outcomes of those that had ended, by index). ``results``: `fit_many`'s K
    results as they stood (None from a `Trainer`, whose model the caller holds). ``study``: an
    interrupted `xdl.tune.tune`'s `Study` of the trials that had finished (None elsewhere).
    ``over``: the signal came once the run was over (at or after its last step: its last epoch's,
    or the epoch's a stop ended): the fit ended as it would have (``on_train_end``: early stopping's
    best weights put back), then raised this, so that a loop over fits — a search's trials — stops
    there too."""

    def __init__(self, signal_name: str, epoch: int, step: int, checkpoint=None, over: bool = False):
        self.signal_name, self.epoch, self.step, self.checkpoint = signal_name, epoch, step, checkpoint
        self.over = over
        self.ended = {}
        self.results = None
        self.study = None
        self.where = f"in epoch {epoch} after step {step}" if step else f"after epoch {epoch - 1}"  # (epoch: the next)
        saved = (f"resumable checkpoint: {str(checkpoint)!r}" if checkpoint is not None
                 else "nothing was saved (the trainer has no Checkpoint callback)")
        super().__init__(f"training interrupted by {signal_name} {self.where}"
                         f"{', as its run ended (its end done)' if over else ''}; {saved}")

    def __reduce__(self):
        """Rebuilt from its message and attributes (BaseException's ``cls(*args)`` passed the message
        as the signal's name and failed): pickled across processes — a worker's estimator
        interrupted under GridSearchCV(n_jobs=2) — or copied, it stays itself."""
        return _rebuilt, (type(self), self.args, dict(self.__dict__))


def _rebuilt(cls, args, attributes):
    """An `Interrupted` (or subclass) with ``args`` and ``attributes``, its __init__ not called."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(attributes)
    return error


class SignalFlag:
    """While active, SIGINT and SIGTERM set ``.received`` (the signal's name) instead of stopping the
    process, so the loop can stop at a step boundary. A second signal acts as usual: the previous
    handlers come back at the first. Signals can only be handled in the main thread; elsewhere
    this does nothing."""

    def __init__(self):
        self.received: str | None = None
        self._previous = {}

    def __enter__(self) -> SignalFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self._restore()
