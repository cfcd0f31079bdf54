"""The command's stdout and stderr: any text written as the stream can take it, and a reader that has gone
(``| head``) dropping the rest instead of failing the run (`for_any_text`, `flush_stdout`)."""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import stat
import sys


@contextlib.contextmanager
def for_any_text(name: str):
    """``sys.stdout`` or ``sys.stderr`` (``name``) that takes whatever the command prints, for as long
    as it runs: closed (``>&-``) it is /dev/null (None failed a finished run's last flush, a traceback
    and status 1); a character its encoding lacks (→ and λ in an ASCII or Latin-1 locale, or under
    PYTHONIOENCODING=ascii; a file name's undecodable bytes, which Python keeps as surrogates) is
    written as stderr writes it — escaped (``\\u2192``), or on UTF-8 the name's own bytes — instead
    of failing the run before its training, or after it, its report unsaid; and a pipe (or a socket,
    what Node's spawn gives) whose reader has gone (``| head -3``, ``2>&1 | head -3``) takes the rest
    unread, as a buffered stdout did (unbuffered, PYTHONUNBUFFERED=1, the next line stopped the run,
    silently, status 1). Yields whether that reader went. What the stream was is put back (a program
    may call main). A stream that is not Python's own file (pytest's, a notebook kernel's, whose
    ``fileno`` is the process's original descriptor, not the cell) is left as it is."""
    stream = getattr(sys, name)
    if stream is None:
        with open(os.devnull, "w") as devnull:
            setattr(sys, name, devnull)
            try:
                yield lambda: False
            finally:
                setattr(sys, name, None)
        return
    if not isinstance(stream, io.TextIOWrapper):  # (rewrapped, its fileno's text would bypass it: ipykernel's
        yield lambda: False                         # went to the kernel's log, not the cell — or failed, no
        return                                      # line_buffering)
    try:
        utf8 = codecs.lookup(stream.encoding).name == "utf-8"
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, TypeError, LookupError, ValueError, OSError):  # (a wrapper over no file descriptor)
        yield lambda: False
        return
    pipe = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)  # (a socket's reader gone fails a write as a pipe's does)
    errors = stream.errors if stream.errors not in ("strict", "surrogateescape") else \
        "surrogateescape" if utf8 else "backslashreplace"
    if not pipe and errors == stream.errors:
        yield lambda: False
        return
    with contextlib.suppress(BrokenPipeError):
        stream.flush()
    raw = (_ReaderMayGo if pipe else io.FileIO)(stream.fileno(), "w", closefd=False)
    buffered = isinstance(getattr(stream, "buffer", None), io.BufferedIOBase)  # (-u, PYTHONUNBUFFERED: not)
    setattr(sys, name, io.TextIOWrapper(io.BufferedWriter(raw) if buffered else raw, encoding=stream.encoding,
                                        errors=errors, line_buffering=stream.line_buffering,
                                        write_through=stream.write_through))
    try:
        yield lambda: getattr(raw, "gone", False)
    finally:
        with contextlib.suppress(OSError):
            getattr(sys, name).flush()
        setattr(sys, name, stream)


class _ReaderMayGo(io.FileIO):
    """A pipe (or socket) to stdout's or stderr's reader, which may go before the command ends
    (``| head``): what is written after is dropped, as /dev/null drops it, not an error in the middle
    of a run."""

    gone = False

    def write(self, data) -> int:
        if not self.gone:
            try:
                return super().write(data)
            except (BrokenPipeError, ConnectionResetError):  # (a socket's reader gone with data unread: a reset)
                self.gone = True
        return memoryview(data).nbytes


def flush_stdout() -> None:
    """Flush stdout; where its reader has gone, point it at /dev/null so that Python's flush at exit
    does not fail (an "Exception ignored" and status 120 after the command's own)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, sys.stdout.fileno())
            finally:  # (dup2 made its copy: one descriptor kept per call of main from a program otherwise)
                os.close(null)
