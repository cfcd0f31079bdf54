"""`Checkpoint`: the run's last good state and its best one, written atomically into a directory, and
the resumable checkpoint a stop (Ctrl-C, SIGTERM) writes through it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from xdl.caller import warn_caller
from xdl.data.validation import check_int
from xdl.files import atomic_write, check_target, check_writable_dir
from xdl.tensor import refusing_options_elsewhere
from xdl.train.callback import Callback, check_monitor, continues_run, ended_before_its_first_step, measures_other_data
from xdl.train.checkpoint_files import BEST_FILE, CHECKPOINT_FILE, read_position, unfinished_run
from xdl.train.interrupt import Interrupted


# Keras's ModelCheckpoint options → the way here (`Checkpoint.__init__`): Python's "unexpected keyword argument
# 'save_best_only'" said neither that best.npz is always kept nor where the others are
KERAS_CHECKPOINT_OPTIONS = {
    "filepath": "Keras's filepath is a directory here: Checkpoint(directory) writes checkpoint.npz and best.npz "
                "into it",
    "save_best_only": "not an option: best.npz keeps the best epoch's state (by monitor) beside checkpoint.npz, the "
                      "last; every=None writes checkpoint.npz only at the run's end or stop",
    "save_weights_only": "not an option: each file holds the whole training state, and xdl.load(path) gives the "
                         "model from it",
    "mode": "the direction follows monitor: costs are minimized, accuracies maximized",
    "save_freq": "Keras's save_freq='epoch' is every=1 here (every=N: every N epochs); a save every N steps is a "
                 "Callback of your own whose on_step_end calls trainer.save_checkpoint(path)",
    "initial_value_threshold": "not offered: the first epoch's monitor value is the first best",
    "verbose": "not offered: a save is silent",
}
# the suffixes of model files, xdl's own and its peers' (Keras's .keras and .h5, Lightning's .ckpt, torch.save's .pt
# and .pth): a Checkpoint directory named so is a file path given in Keras's habit (`check_named_as_directory`)
MODEL_FILE_SUFFIXES = (".npz", ".keras", ".h5", ".ckpt", ".pt", ".pth")


class Checkpoint(Callback):
    """Keep the run's last good state and its best one in ``directory``, each written atomically
    (an interrupted save leaves the previous file intact):

    * ``checkpoint.npz`` — the whole training state every ``every`` epochs and at the run's last
      (None: only then, or when the run stops early or is interrupted by Ctrl-C/SIGTERM, then
      mid-epoch), so a finished run can be resumed with more epochs;
      ``Trainer.fit(..., resume=directory)`` continues from it;
    * ``best.npz`` — the same, at the epoch with the best ``monitor`` value so far ("dev_cost" by
      default; a dev metric's train counterpart when the run has no dev set, "train_cost" for
      "dev_cost"; accuracies are maximized).

    A directory removed while the run runs (a clean-up) is made again at the next save, with a warning.

    A `Trainer`'s are also model files: ``xdl.load(path)`` gives the model (a `fit_many` batch's
    hold its K models as one stack: each result's ``model`` is the ordinary one). The Trainer checks every cost
    before a checkpoint is written, so a diverging run never overwrites a good one; and a fit is
    refused in a directory whose checkpoint is another run's that is unfinished (`unfinished_run`)
    or cannot be read (`read_position`: the best.npz beside it may hold the best epoch), as ``xdl
    train`` refuses it — a new run, a resume from another directory (before it loads anything), a
    later fit that finds a checkpoint there it did not write (`_check_not_anothers`): a finished
    run's files are replaced. A later fit measuring the monitor on other data than the fit before it
    (`measures_other_data`) starts its best afresh.

    A Keras ModelCheckpoint option (``save_best_only=``, ``filepath=``, …) is refused saying where it is here
    (`KERAS_CHECKPOINT_OPTIONS`), and so is a directory named as a model file that is no directory yet
    (``Checkpoint("best.npz")``: `check_named_as_directory`).
    """

    order = 100

    @refusing_options_elsewhere(KERAS_CHECKPOINT_OPTIONS)
    def __init__(self, directory, every: int | None = 1, monitor: str = "dev_cost"):
        if isinstance(every, str):  # (Keras's ModelCheckpoint(filepath, monitor) order: "must be a positive integer")
            raise TypeError(f"Checkpoint: every is a str ({every!r}), as Keras's ModelCheckpoint's second argument, "
                            "its monitor; here the second is every (a positive integer or None) and the monitor a "
                            "keyword: Checkpoint(directory, monitor=…)")
        if every is not None:
            every = check_int(every, "Checkpoint: every", expected="a positive integer or None")
        if not isinstance(directory, str | os.PathLike) or not os.fspath(directory):
            raise TypeError(f"Checkpoint: directory must be a non-empty str or path, got {directory!r}")
        check_named_as_directory(Path(directory))
        check_monitor(monitor, "Checkpoint")
        self.directory, self.every, self.monitor = Path(directory), every, monitor
        self.best = None  # the best monitored value so far (sign-adjusted: smaller is better)

    @property
    def path(self) -> Path:
        return self.directory / CHECKPOINT_FILE

    @property
    def best_path(self) -> Path:
        return self.directory / BEST_FILE

    def on_train_begin(self, trainer) -> None:
        self._before = ((trainer.epoch, trainer.step), self.best)  # put back if the fit ends there (`on_exception`)
        check_writable_dir(self.directory, "Checkpoint directory")
        for path in (self.path, self.best_path):  # found now, not when the first epoch's state is written
            if path.is_dir():
                raise IsADirectoryError(f"Checkpoint: {str(path)!r} is a directory; the checkpoint is written there")
            if path.exists():  # (write-protected: refused, as open refuses it — after an epoch's work, it was)
                check_target(path, "Checkpoint")
        if not continues_run(trainer):  # a later fit of the same run keeps its best: best.npz is the run's
            self._check_not_anothers("to start afresh there")  # (the state that goes on with that run)
            self.best = None
            return
        self._check_still_own(trainer)
        if measures_other_data(trainer, self.monitor):
            self.best = None  # its first epoch replaces best.npz, kept until then
        elif trainer.resumed and trainer.last_checkpoint is not None and not self._holds(trainer.last_checkpoint):
            # resumed into another directory: the run's best so far comes along, over a best.npz of another run
            # there (kept, it was taken for this run's best — xdl train listed it — until the run did better; else
            # this one's best.npz would appear only at a new best)
            best = Path(trainer.last_checkpoint).parent / BEST_FILE
            if best.is_file():
                trainer.best_checkpoint = _copy(best, self.best_path)
        elif self.best_path.is_file():
            trainer.best_checkpoint = self.best_path

    def on_train_end(self, trainer) -> None:
        self.__dict__.pop("_before", None)
        # a resume into this directory of a run that was over trained nothing and saved nothing here: its
        # checkpoint comes along (byte for byte: the model may hold the best epoch's weights by now), as
        # best.npz did at the start — else this directory held best.npz alone, and a resume from it with
        # more epochs was refused, pointed at best.npz: the best epoch's state, not the run's end. So too a
        # resume from this directory's best.npz where no checkpoint.npz is (a kill before its last write)
        last = trainer.last_checkpoint
        if trainer.resumed and last is not None and (not self._holds(last) or not self.path.exists()
                                                     and Path(last).resolve() == self.best_path.resolve()):
            trainer.last_checkpoint = _copy(last, self.path)
            _written(trainer)[str(self.path.resolve())] = _identity(self.path)  # (`_check_still_own`)

    def on_exception(self, trainer, error) -> None:
        """A fit that ended before its first step (a later callback's ``on_train_begin`` refused it) keeps
        the run's best: one on other data had set it aside (`measures_other_data`), and the run's next fit,
        on its own data, wrote its first epoch over best.npz however much worse it was."""
        before = self.__dict__.pop("_before", None)
        if before is not None and ended_before_its_first_step(trainer, before[0]):
            self.best = before[1]

    def _holds(self, path) -> bool:
        """Whether ``path`` (a checkpoint file) lies in this callback's directory."""
        return Path(path).resolve().parent == self.directory.resolve()

    def check_resume_into(self, resumed) -> None:
        """A resume from ``resumed`` writes its checkpoints here: refused, before anything changes (the
        loops call this), where this directory is another one's and holds a checkpoint of an unfinished
        run (or one no run can read) — its resumable state, written over, as a new run is refused there."""
        if not self._holds(resumed):
            self._check_not_anothers(f"to go on from {str(resumed)!r} instead")

    def _check_still_own(self, trainer) -> None:
        """A later fit of ``trainer``'s run finds in ``directory`` the checkpoint this run wrote last,
        or none, or a finished run's: another unfinished run's, written there since by another
        trainer (a run started there once this one had ended), is refused, as a new run's fit refuses
        it; else this fit wrote over it, and the run it held was lost. (A resume into another run's
        directory is refused before it loads anything: `check_resume_into`.)"""
        if trainer.resumed:  # what is there is the run's own now, or a finished run's
            _written(trainer)[str(self.path.resolve())] = _identity(self.path)
            return
        if self.path.is_file() and _written(trainer).get(str(self.path.resolve())) != _identity(self.path):
            self._check_not_anothers("to go on with this trainer's run there", another="another")

    def _check_not_anothers(self, instead: str, another: str = "an") -> None:
        """The one refusal of the three ways a fit comes to a directory — a new run, a resume from
        elsewhere, a later fit finding a file it did not write — where its checkpoint is another run's
        that goes on (unfinished) or that no run can read (`_check_readable`): this fit would write
        over it. ``instead``: what the caller's fit would do, said with the way out."""
        self._check_readable()
        unfinished = unfinished_run(self.path)
        if unfinished is not None:
            raise FileExistsError(f"Checkpoint: {str(self.directory)!r} holds the checkpoint of {another} unfinished "
                                  f"run ({unfinished}): fit(..., resume={str(self.directory)!r}) continues it; "
                                  f"{instead}, remove {str(self.path)!r} first, or checkpoint elsewhere")

    def _check_readable(self) -> None:
        """A checkpoint there that cannot be read (damaged from outside: xdl's writes are atomic) is
        refused, as ``xdl train`` refuses it: no run can continue from it, but the best.npz beside it
        may hold the best epoch's state, which a new run would write over."""
        if not self.path.is_file():
            return
        try:
            read_position(self.path)
        except ValueError as e:
            kept = f"; {str(self.best_path)!r} may still hold the best epoch's state" if self.best_path.is_file() else ""
            raise FileExistsError(f"Checkpoint: {str(self.directory)!r} holds a checkpoint no run can continue from "
                                  f"({e}){kept}: to start afresh there, remove {str(self.path)!r} first, or "
                                  "checkpoint elsewhere") from None

    def on_epoch_end(self, trainer, record: dict) -> None:
        self._made_again(trainer)
        # without dev (or its metric), the train set's counterpart: dev_accuracy → train_accuracy
        monitor = self.monitor if record.get(self.monitor) is not None else self.monitor.replace("dev_", "train_")
        # (none measured: an epoch of `fit_many` in which no model trained to its end — its state is still saved)
        score = None if record.get(monitor) is None else (-1.0 if "accuracy" in monitor else 1.0) * record[monitor]
        if score is not None and (self.best is None or score < self.best):
            previous, self.best = self.best, score  # saved with the state, so best.npz knows its own score
            try:  # best.npz first: checkpoint.npz never records a best that best.npz does not hold
                trainer.best_checkpoint = trainer.save_checkpoint(self.best_path)
            except BaseException:
                self.best = previous
                raise
        if (self.every and record["epoch"] % self.every == 0) or trainer.stop_training or \
                record["epoch"] >= trainer.epochs:
            self.save_resumable(trainer)

    def save_resumable(self, trainer) -> Path:
        """Write ``checkpoint.npz`` now (the Trainer calls this when a signal stops the run)."""
        self._made_again(trainer)
        trainer.last_checkpoint = trainer.save_checkpoint(self.path)
        trainer.last_checkpoint_at = (trainer.epoch, trainer.step)
        _written(trainer)[str(self.path.resolve())] = _identity(self.path)  # (`_check_still_own`)
        for cb in trainer.callbacks:
            cb.on_checkpoint(trainer)
        return trainer.last_checkpoint

    def _made_again(self, trainer) -> None:
        """The directory made again where it was removed while the run ran (a clean-up): else the next
        save failed and the run stopped, its training lost with the checkpoint it would name to resume
        from (Keras's ModelCheckpoint makes its directory again). Its best.npz went with it, so the
        best starts again here: kept, checkpoint.npz recorded a best that no best.npz held (a run that
        did no better after the clean-up never wrote one, and named the file gone as its best)."""
        if self.directory.exists():
            return
        with contextlib.suppress(OSError):  # (one that cannot be made: the save's error names it)
            self.directory.mkdir(parents=True)
            self.best, trainer.best_checkpoint = None, None
            warn_caller(f"Checkpoint directory {str(self.directory)!r} was removed while the run ran: made again "
                        "(its best.npz is the best epoch from here on)")

    def state_dict(self):
        return {"best": self.best}, {}

    def load_state_dict(self, state, arrays):
        self.best = state.get("best")


def _identity(path) -> tuple | None:
    """What tells a file written apart from one written over it since (an atomic write makes a new
    file): (inode, size, modification time in ns), None where there is none."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


def _written(trainer) -> dict:
    """The checkpoint files ``trainer``'s run wrote or resumed from: resolved path → `_identity`."""
    return trainer.__dict__.setdefault("_checkpoints_written", {})


def named_as_model_file(directory: Path) -> bool:
    """Whether ``directory`` is named as a model file (its suffix, in any case, one of `MODEL_FILE_SUFFIXES`) and
    no directory of that name exists: one that exists is the user's, made so before."""
    return directory.suffix.lower() in MODEL_FILE_SUFFIXES and not directory.is_dir()


def check_named_as_directory(directory: Path) -> None:
    """Refuse a ``directory`` named as a model file (`MODEL_FILE_SUFFIXES`: Checkpoint("best.npz"), Keras's
    ModelCheckpoint(filepath) habit) where no directory of that name exists: it was made as a directory,
    holding best.npz/best.npz, without a word. One that exists is the user's (a run's made so before)."""
    if named_as_model_file(directory):
        instead = directory.with_suffix("")
        raise ValueError(f"Checkpoint: directory {str(directory)!r} is named as a {directory.suffix} file (Keras's "
                         f"ModelCheckpoint(filepath) takes a file); {KERAS_CHECKPOINT_OPTIONS['filepath']}: "
                         f"Checkpoint({str(instead)!r}) writes {str(instead / BEST_FILE)!r}")


def _copy(source, target: Path) -> Path:
    """``target``, written (atomically) with the bytes of the checkpoint file ``source``."""
    content = Path(source).read_bytes()
    return atomic_write(target, lambda f: f.write(content), what="Checkpoint")


def check_resumes_into(callbacks, resumed) -> None:
    """Each `Checkpoint` of ``callbacks`` may write the run resumed from ``resumed`` into its directory
    (`Checkpoint.check_resume_into`): called by a resume before it loads anything."""
    for cb in callbacks:
        if isinstance(cb, Checkpoint):
            cb.check_resume_into(resumed)


def save_resumable(trainer) -> Path | None:
    """Write a resumable checkpoint through every `Checkpoint` of ``trainer`` (a `Trainer` or a
    `xdl.train.ManyTrainer`) stopped between two steps; the last one's path (None without one)."""
    path = None
    for cb in trainer.callbacks:
        if isinstance(cb, Checkpoint):
            path = cb.save_resumable(trainer)
    return path


def stop_for_signal(trainer, signal_name: str):
    """Write a resumable checkpoint (`save_resumable`), then raise `Interrupted`, which says where
    the run stopped."""
    raise Interrupted(signal_name, trainer.epoch + 1, trainer.step, save_resumable(trainer))
