"""SIGTERM stopping a command as Ctrl-C does (`Terminated`), the signal that stopped it, and the exit status a
shell gives for it."""

from __future__ import annotations

import contextlib
import signal


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, as Ctrl-C's KeyboardInterrupt: the same clean stop."""

    signal_name = "SIGTERM"


@contextlib.contextmanager
def terminate_as_interrupt():
    """While the command runs, SIGTERM stops it as Ctrl-C does (a Trainer's `SignalFlag` takes both
    over while it trains); the handler before is put back after."""
    def terminate(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def signal_of(stop: KeyboardInterrupt) -> str:
    """The signal that stopped the command: SIGTERM (`Terminated`, a Trainer's `Interrupted`) or Ctrl-C."""
    return getattr(stop, "signal_name", "SIGINT")


def signal_status(signal_name: str) -> int:
    """The exit status a shell gives a process that died of that signal (130 for SIGINT)."""
    return 128 + signal.Signals[signal_name].value
