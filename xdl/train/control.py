"""`Control`: babysitting a running run through a ``control.toml`` (a new rate, a stop), applied at an
epoch's end, noted in the history, renamed once a checkpoint holds it."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from xdl.caller import warn_caller
from xdl.files import parse_toml
from xdl.optim.optimizer import Optimizer, check_rate, rates_of_their_own
from xdl.train.callback import Callback, continues_run
from xdl.train.checkpoint import Checkpoint
from xdl.train.checkpoint_files import upcoming
from xdl.train.progress import above_bars


CONTROL_FILE = "control.toml"
# a control file modified this recently is left for a later epoch's end: it may be half-written
SETTLE_SECONDS = 0.5
SETTLE_WAITS = 20  # on resuming, a control file still changing is waited for this many times SETTLE_SECONDS at most


@dataclass
class AppliedControl:
    """A control file whose settings took effect, waiting to be renamed once a checkpoint holds them."""

    note: str
    name: str  # what it is renamed to
    content: bytes  # what it held: a file written over it since is a new one, read as usual


_Applied = AppliedControl  # the name the pickles of a Control by an older xdl hold (loaded by it)


class Control(Callback):
    """Babysitting a run (the course's panda): at each epoch's end, read ``directory/control.toml``
    if it exists — ``lr = 0.001`` (the rate from the next epoch on, replacing the schedule) and/or
    ``stop = true`` — apply it, note it in the epoch's history record (``control``), and rename the
    file ``control-applied-epoch-<n>.toml`` once a checkpoint holds its effect (at once without a
    `Checkpoint` callback; so a run stopped before then — a failed checkpoint write, a divergence —
    finds the file again on resuming). A resumed run goes on at the checkpoint's rate (the one set
    here, or one a callback set after it, `ReduceLROnPlateau`'s; set here again from its state for a
    checkpoint of an older xdl), then applies a file written while it was stopped before its first step
    (the way on after a rate that diverged; ``control-applied-resume-<n>.toml``, ``…-<n>-2.toml`` for
    a second one at that epoch; with ``stop``, no
    epoch runs, so a checkpoint is written then, holding a rate given with it). A file that does
    not parse or holds another key is left unapplied (renamed ``control-rejected-….toml`` at once),
    noted, and reported as a warning: training goes on. A batch of models (`fit_many`) takes
    ``stop`` only: its rates are one per model. ``report``: called with the note of each file
    applied, as it is (``xdl train`` prints it). A file modified less than `SETTLE_SECONDS` ago is
    read at a later epoch's end (it may be half-written; on resuming, it is waited for); write it
    whole (or to another name, then ``mv``) for it to apply at the next."""

    order = 50  # after early stopping, before checkpoints (which then save what was applied)

    def __init__(self, directory, report=None):
        if isinstance(directory, bool) or not isinstance(directory, str | os.PathLike) or not os.fspath(directory):
            raise TypeError(f"Control: directory must be a path (str or os.PathLike) of the directory to read "
                            f"{CONTROL_FILE} from, got {directory!r}")
        if not Path(directory).is_dir():  # a typo would watch a file that is never there
            raise ValueError(f"Control: directory {os.fspath(directory)!r} does not exist (make it, or give the run's)")
        if report is not None and not callable(report):
            raise TypeError(f"Control: report must be a function taking each note (print, say) or None, got {report!r}")
        self.directory, self.report = Path(directory), report
        self.lr = None  # the rate set by hand, if any
        self.notes: list[str] = []
        self._on_resume: str | None = None  # the note of a file applied on resuming, for the first epoch's record
        self._pending: AppliedControl | None = None  # applied, not yet renamed
        self._held: dict | None = None  # the checkpoint's `_pending` (name, sha256): applied, in its state, not renamed
        self._seen: tuple | None = None  # the control file's (mtime, size, inode) at a look, and when first seen so
        # on resuming, set the rate again: a checkpoint of an older xdl (its optimizer's settings not saved) reset it
        self._replays = False

    @property
    def path(self) -> Path:
        return self.directory / CONTROL_FILE

    def on_train_begin(self, trainer) -> None:
        # (a note applied on resuming that no epoch's record took yet — the run stopped again inside that
        # epoch — goes on to this fit's first record: kept, and in the checkpoints' state)
        continuing = continues_run(trainer)
        if not continuing or trainer.resumed:  # (a later fit of the run keeps its file applied and not yet
            # renamed — the last fit ended by an error before a checkpoint held it —: forgotten, the file was
            # applied again at this fit's first epoch end, over a rate set by hand between the fits)
            self._pending = None
        if not continuing:
            self.lr, self.notes, self._on_resume = None, [], None
            if self.path.is_file() and self.report is not None:  # left from before (a finished run's, say): obeyed
                self.report(f"{CONTROL_FILE} was there before this run began: it is read at epoch 1's end (remove it "
                            "to train without it)")
            return
        if not trainer.resumed:  # a later fit of the run: its rate set by hand is in place, and kept for the
            return               # checkpoints it writes (their optimizer holds it)
        replayed = self.lr
        if replayed is not None and self._replays:  # replay: the resumed run keeps the rate set by hand
            self._set_lr(trainer, replayed)
        self._settle_held()
        starts = upcoming(trainer.epoch, trainer.step)
        unrecorded = self._on_resume  # (the checkpoint's)
        self._on_resume = self._apply(trainer, f"on resuming (before {starts})", f"resume-{trainer.epoch + 1}",
                                      starts, wait=True)
        self._on_resume = "; ".join(filter(None, (unrecorded, self._on_resume))) or None
        if replayed is not None and self.lr == replayed == trainer.optimizer.lr and self.report is not None:  # (not
            # replaced just now, nor lowered since by a callback:
            # xdl train's summary above names the options' lr and schedule, which it stands in place of)
            self.report(f"the rate {CONTROL_FILE} set goes on: lr = {replayed!r}, in place of the options' lr and "
                        "schedule")
        # no epoch will run — a stop, or a run whose epochs are all trained (resumed to write its outputs) —
        # so a checkpoint is written now: else a rate applied here (its file renamed) would be gone at the next resume
        if self._on_resume is not None and (trainer.stop_training or trainer.epoch >= trainer.epochs):
            self._note_with_last_epoch(trainer)
            for cb in trainer.callbacks:  # so one holds what was applied (a rate with the stop) now
                if isinstance(cb, Checkpoint):
                    cb.save_resumable(trainer)

    def on_epoch_end(self, trainer, record: dict) -> None:
        epoch = record["epoch"]
        notes = [note for note in (self._on_resume, self._apply(trainer, f"at epoch {epoch}", f"epoch-{epoch}",
                                                                f"epoch {epoch + 1}")) if note]
        self._on_resume = None
        if notes:
            trainer.history.records[-1]["control"] = "; ".join(notes)  # the history's copy of ``record``

    def on_checkpoint(self, trainer) -> None:
        self._settle()  # the checkpoint holds what was applied

    def on_train_end(self, trainer) -> None:
        self._note_with_last_epoch(trainer)  # no epoch ran (a stop read on resuming)
        self._settle()  # the run is over: nothing left to resume at an earlier state
        if trainer.step:  # stopped mid-epoch (by a step's hook): the run goes on at a later fit or a resume,
            return  # which reads the file (set aside as come after the run's end, it was never applied)
        if self._pending is not None and self.path.is_file():  # applied, but its rename failed (held open): a
            # resume renames it (the checkpoint holds it as applied); a new run in this directory would obey it
            warn_caller(f"{CONTROL_FILE} was applied but could not be renamed {self._pending.name}: remove it before "
                        "a new run in this directory, which would obey it at its first epoch")
        elif self.path.is_file():  # written during the last epoch (or not settled at its end): never read — set
            # aside and said, so that a later run in this directory does not obey it at its first epoch
            aside = self.directory / f"control-unread-end-{trainer.epoch}.toml"
            with contextlib.suppress(OSError):
                self.path.replace(aside)
                warn_caller(f"{CONTROL_FILE} came after the run's last epoch had begun: not applied, set aside as "
                            f"{aside.name}")

    def _note_with_last_epoch(self, trainer) -> None:
        """The note of a file applied on resuming, added to the last epoch's record (when no epoch of
        this fit took it)."""
        # (no record yet — a stop read on resuming inside epoch 1 —: kept for the first record, as after a Ctrl-C)
        if self._on_resume is not None and trainer.history.records:
            last = trainer.history.records[-1]
            last["control"] = "; ".join(filter(None, (last.get("control"), self._on_resume)))
            self._on_resume = None

    def _apply(self, trainer, when: str, suffix: str, starts: str, wait: bool = False) -> str | None:
        """Read and apply the control file if there is one; return its note (None: none, or the
        file applied already and waiting for a checkpoint). A rejected one changed nothing: it is
        renamed at once and reported as a warning. ``wait``: for a file that has not settled, wait
        until it has (on resuming: the file written just before is for the run's first step)."""
        if not self.path.is_file():  # a directory of that name is not a control file
            return None
        for _ in range(SETTLE_WAITS if wait else 1):
            with contextlib.suppress(OSError):  # (gone meanwhile: nothing to apply)
                age = self._unchanged_for()
                if age >= SETTLE_SECONDS:
                    break
                if wait:
                    time.sleep(SETTLE_SECONDS - age)
        else:  # being written, perhaps: a half-written "lr = 0.00" read as 0; a later epoch reads it
            return None
        try:
            content = self.path.read_bytes()
            if self._pending is not None and content == self._pending.content:
                return None
            wanted = parse_toml(content)
            unknown = sorted(set(wanted) - {"lr", "stop"})
            if unknown:
                raise ValueError(f"unknown key(s) {', '.join(unknown)} (known: lr, stop)")
            lr = wanted.get("lr")
            if lr is not None and not isinstance(trainer.optimizer, Optimizer):
                raise ValueError("lr: a batch of models (fit_many) has a rate per model; a control file can stop "
                                 "it, not set its rates")
            if lr is not None:  # > 0, as the command's --lr: a rate of 0 would freeze the run
                if not isinstance(lr, bool) and lr == 0:
                    raise ValueError(f"lr must be > 0, got {lr!r} (to end the run, write stop = true)")
                check_rate(lr, "lr", trainer.model.dtype, zero=False)
                _check_one_rate(trainer.optimizer)
            if not isinstance(wanted.get("stop", False), bool):
                raise ValueError(f"stop must be true or false, got {wanted['stop']!r}")
        except (OSError, ValueError) as e:  # (a TOMLDecodeError is one, as parse_toml's not UTF-8)
            note = f"{CONTROL_FILE} {when} not applied: {e}"
            warn_caller(note)  # the babysitter should see it, not only the history
            with contextlib.suppress(OSError):  # it changed nothing: renamed now, not once a checkpoint is written
                self.path.replace(self.directory / self._unused(f"control-rejected-{suffix}"))
            self.notes.append(note)
            return note
        done = []
        if lr is not None:
            replaced = " in the schedule's place" if getattr(trainer, "schedule", None) is not None else ""
            self.lr = float(lr)
            self._set_lr(trainer, self.lr)
            done.append(f"lr = {self.lr:g} from {starts}{replaced}")
        if wanted.get("stop"):
            trainer.stop_training = True
            trainer.history.stopped_by = f"{CONTROL_FILE} {when}"
            done.append("stop")
        note = f"{CONTROL_FILE} {when}: " + (", ".join(done) or "nothing to apply")
        self.notes.append(note)
        if self.report is not None:
            above_bars(self.report, note)  # (at an epoch's end: the run's bar is drawn)
        self._pending = AppliedControl(note, self._unused(f"control-applied-{suffix}"), content)
        if not any(isinstance(cb, Checkpoint) for cb in trainer.callbacks):
            self._settle()  # no checkpoint will hold it: nothing to wait for
        return note

    def _unused(self, stem: str) -> str:
        """``stem.toml``, or ``stem-2.toml``, ``stem-3.toml``, … where a file of that name is there: a
        second file read on resuming at the same epoch (the run interrupted again inside it) was renamed
        over the first, which was lost."""
        name, i = f"{stem}.toml", 1
        while (self.directory / name).exists():
            i += 1
            name = f"{stem}-{i}.toml"
        return name

    def _unchanged_for(self) -> float:
        """Seconds the control file has not changed for: since its mtime, or — an mtime ahead of this
        clock (written from another machine, over a network file system) — since the first look that
        found it as it is now (mtime, size, inode). By the mtime alone, such a file would never have
        settled: never read, then set aside at the run's end as come too late."""
        status = self.path.stat()
        seen, now = (status.st_mtime_ns, status.st_size, status.st_ino), time.monotonic()
        if self._seen is None or self._seen[0] != seen:
            self._seen = (seen, now)
        return max(time.time() - status.st_mtime, now - self._seen[1])

    def _settle(self) -> None:
        """Rename the applied file, unless a new one has taken its place since (read as usual)."""
        if self._pending is None:
            return
        try:
            if self.path.read_bytes() == self._pending.content:
                self.path.replace(self.directory / self._pending.name)
        except FileNotFoundError:  # removed meanwhile: nothing to rename
            pass
        except OSError:  # not renamed (held open elsewhere, an I/O error): still pending — forgotten, the next
            return       # epoch's end read it as a new file and applied it again, noted twice, named for that epoch
        self._pending = None

    def _settle_held(self) -> None:
        """Rename the control file the checkpoint resumed from had applied (its effect is in that state:
        the run was killed after the checkpoint, before the rename), rather than apply it again: read
        again, it was noted a second time in the history and renamed as a file given on resuming — and
        a ``stop = true`` stopped the resume that was meant to train on after it. A file written over it
        since (another content) is a new one, read as usual."""
        held, self._held = self._held, None
        if held is None:
            return
        if (self.directory / held["name"]).exists():  # renamed after the checkpoint: the file there is a new one
            return
        with contextlib.suppress(OSError):  # removed or unreadable meanwhile: nothing to rename
            if hashlib.sha256(self.path.read_bytes()).hexdigest() == held["sha256"]:
                self.path.replace(self.directory / held["name"])

    @staticmethod
    def _set_lr(trainer, lr: float) -> None:
        trainer.schedule = None
        trainer.optimizer.lr = lr

    def state_dict(self):
        applied = None if self._pending is None else \
            {"name": self._pending.name, "sha256": hashlib.sha256(self._pending.content).hexdigest()}
        # ("rate_held": the checkpoint's optimizer holds the rate as it is now — the one set here, or one a callback
        # set after it, a plateau's lowering —, which a replay of lr on resuming put back to the file's; without
        # it, a checkpoint of an xdl before it, the rate is set again)
        return {"lr": self.lr, "notes": self.notes, "unrecorded": self._on_resume, "applied": applied,
                "rate_held": True}, {}

    def load_state_dict(self, state, arrays):
        self.lr, self.notes = state.get("lr"), list(state.get("notes", []))
        self._replays = state.get("rate_held") is not True
        applied = state.get("applied")  # (a checkpoint of an xdl before it has none; one edited by hand is ignored)
        ok = isinstance(applied, dict) and all(isinstance(applied.get(key), str) for key in ("name", "sha256"))
        self._held = applied if ok and re.fullmatch(r"control-applied-[\w-]+\.toml", applied["name"]) else None
        self._on_resume = state.get("unrecorded")  # applied on resuming, in no epoch's record yet


def _check_one_rate(optimizer) -> None:
    """A control file's ``lr`` is one rate for every group (``opt.lr = …``): refused where the groups
    have rates of their own (a head trained faster than its body, each group's schedule), as `Trainer`
    refuses an epoch schedule over them."""
    rates = rates_of_their_own(optimizer)
    if rates is not None:
        raise ValueError(f"lr: it sets every group's rate to one, and the optimizer's groups have rates of their own "
                         f"({rates}); set them in Python (opt.param_groups[i]['lr'] = …, in a callback)")
