"""How a stopped ``xdl train`` run goes on: its history kept, a lone best epoch kept or removed, and the
command that continues it (from its last checkpoint or its best epoch), said with the stop."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from xdl.cli.signals import signal_status
from xdl.cli.text import note, shell_word
from xdl.train import CHECKPOINT_FILE, Interrupted
from xdl.train.checkpoint_files import position
from xdl.train.control import CONTROL_FILE
from xdl.train.divergence import RATE_ADVICE


def end_interrupted_run(stop: Interrupted, trainer, out: Path) -> int:
    """Ctrl-C or SIGTERM: the Trainer finished its step and wrote the checkpoint; keep the history
    too and say how to continue."""
    try:
        keep_history(trainer, out)
    except KeyboardInterrupt:  # a second Ctrl-C just after the first (its checkpoint written): the way on is
        note("note: the history was not written (interrupted again)")  # still said, not "not saved"
    print(f"\nxdl train: {stop}", file=sys.stderr)
    # (its epochs trained, or early stopping's stop: the resume trains nothing, and writes them; after a control
    # file's stop it trains on, as after a stop without a signal)
    if stop.over and not (trainer.history.stopped_by or "").startswith(CONTROL_FILE):
        print(f"its training is over; for its files (model, report, curves), {resume_command(trainer)}",
              file=sys.stderr)
    else:
        print(f"to continue, {resume_command(trainer)}", file=sys.stderr)
    return signal_status(stop.signal_name)


def keep_history(trainer, out: Path) -> None:
    """A stopped run's good epochs in history.json, for the curves; a failed write (the disk may be
    full) is a note beside the message that says how to go on, not in its place."""
    if len(trainer.history):
        try:
            trainer.history.save(out / "history.json")
        except OSError as e:
            note(f"note: the history was not written: {e}")


def without_a_lone_best(trainer, out: Path, named: bool = False) -> Path | None:
    """A run stopped before its first checkpoint leaves no best.npz alone (the same command would be
    refused: a best epoch, but no checkpoint to continue from) nor an empty checkpoints/ (a new run
    holds no other: `check_no_unfinished_run`) — unless it trained past its first epoch, which the
    same command redoes: with --checkpoint-every 0 (or N) that best.npz holds every epoch of the run,
    and removed, they were lost while the Trainer's message (or the failed write's) said where they
    were — or the stop's message ``named`` it (a divergence's says "the best epoch's state is in …"
    from the first epoch on). The best.npz kept is returned (`resume_from_best`), else None."""
    best = trainer.best_checkpoint
    if best is not None and (trainer.epoch > 1 or named) and Path(best).is_file():
        return Path(best)
    with contextlib.suppress(OSError):
        if best is not None:
            best.unlink(missing_ok=True)
        (out / "checkpoints").rmdir()
    return None


def resume_from_best(best: Path) -> str:
    """How to go on from a run's lone best.npz (a resume from it into its own --out: `_best_of_run`)."""
    return f"run the same command with --resume {shell_word(str(best))}"


def divergence_way_on(trainer, out: Path, state: str, resume: str) -> str:
    """What a divergence's error adds to the trainer's advice: where that is the rate's (`RATE_ADVICE`), how
    to go on from ``state`` at another rate — ``lr = …`` in control.toml, then ``resume`` —; otherwise (the
    rate is not the cause: the starting weights, the inputs, the weight decay) how to make that change: a new
    run's options, which a resume keeps as they were."""
    advice = trainer.__dict__.get("_divergence_advice")  # (None: not the trainer's divergence check, said as before)
    if advice is None or advice.startswith(RATE_ADVICE):
        return f": to do so from {state}, write `lr = …` into {str(out / 'control.toml')!r} and {resume}"
    return ": a new run makes that change (another --out, without --resume: a resume keeps the run's options)"


def resume_command(trainer) -> str:
    """How to go on from the trainer's last good checkpoint (this run's, or the one it resumed)."""
    last = Path(trainer.last_checkpoint)
    # a checkpoint.npz by its directory; a best.npz resumed from by its name (its directory's checkpoint.npz is
    # another state, of a later epoch: the "same command" went on from there)
    named = last.parent if last.name == CHECKPOINT_FILE else last
    return (f"run the same command with --resume {shell_word(str(named))} "
            f"(its state {position(*trainer.last_checkpoint_at)})")
