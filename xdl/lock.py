"""`DirectoryLock`: a search (`xdl tune`), a training run (`xdl train`, a fit's `Checkpoint`
directory) or a benchmark (`xdl bench optimizers`) holds its directory alone while it runs.

Two searches writing one ``trials.json`` would each rewrite it from their own list of trials, and
the last writer's list would be all that is left; two runs in one ``--out`` would each write their
checkpoints over the other's. So the one at work holds a lock file in the directory (`SEARCH`:
``search.lock``, `RUN`: ``run.lock``): the file names the holder (process id, host, start), and
the holder keeps an exclusive ``flock`` on it — which the operating system releases when the
process ends, however it ends, so a lock left by a killed one is found free and taken over (and
the taker says whose it was). At its end the holder removes the file. A second one, new or
resumed, is refused before any work, naming the directory and the holder (as Optuna's
``DuplicatedStudyError`` refuses a second study of one name).

>>> import tempfile
>>> directory = tempfile.mkdtemp()
>>> with DirectoryLock(directory):
...     DirectoryLock(directory).acquire()
Traceback (most recent call last):
...
xdl.lock.DirectoryInUseError: directory '...' is in use by another search: process ...
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LockKind:
    """What holds a directory: its lock file, its name in messages, and why two cannot share one
    (``{who}``: the argument naming the directory)."""

    lock_file: str
    noun: str
    why: str


SEARCH = LockKind("search.lock", "search", "A study takes one search at a time — two would each rewrite trials.json "
                "from their own trials; wait for that one to end (then resume adds to what it saved), or use "
                "another {who}")
RUN = LockKind("run.lock", "run", "A directory takes one training run at a time — two would each write their "
             "checkpoints over the other's; wait for that one to end (or stop it: Ctrl-C, or stop = true in its "
             "control.toml), or use another {who}")
BENCH = LockKind("bench.lock", "benchmark", "A directory takes one benchmark at a time — two would each write their "
               "results over the other's; wait for that one to end, or use another {who}")
# `check_not_in_use` holds the lock for the instant of a look: a holder starting then tries again
# (LOOK_TRIES attempts LOOK_SECONDS apart) rather than take the look for a holder at work
LOOK_TRIES, LOOK_SECONDS = 5, 0.02


class DirectoryInUseError(FileExistsError):
    """Another search or run holds the directory."""



class DirectoryLock:
    """The exclusive hold of a ``kind`` of holder (`SEARCH`, `RUN`) on ``directory`` (which must exist):
    `acquire` takes it or raises `DirectoryInUseError` naming ``who`` (the argument: ``directory``,
    ``--out``) and the holder; `release` gives it back. ``took_over``: the holder of a lock left
    behind by a process that is gone (its pid and host), when `acquire` took that one over."""

    def __init__(self, directory, who: str = "directory", kind: LockKind = SEARCH):
        self.directory, self.who, self.kind = Path(directory), who, kind
        self.path = self.directory / kind.lock_file
        self.took_over: dict | None = None
        self._fd: int | None = None

    def acquire(self) -> DirectoryLock:
        """Take the directory (an flock on its lock file, which then names this process), or raise
        `DirectoryInUseError` naming the process that holds it."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = _lock(fd, tries=LOOK_TRIES)
            except DirectoryInUseError:
                holder = _holder(fd)
                os.close(fd)
                raise DirectoryInUseError(in_use(self.directory, self.who, holder, self.kind)) from None
            except BaseException:
                os.close(fd)
                raise
            # a holder that was ending removed the file after we opened it: our lock is on a file no
            # other holder will open, so try again with the one now at the path
            if _same_file(fd, self.path):
                break
            os.close(fd)
        left = _holder(fd)  # a holder still named in the file had no chance to remove it (killed)
        self.took_over = left if locked and left and left.get("pid") != os.getpid() else None
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
        except BaseException as e:
            # (a full disk) the descriptor holds the flock: closed, or this process would hold the directory
            # until it ends, and refuse its own next try as "in use"; the error names the file
            os.close(fd)
            if isinstance(e, OSError) and e.errno is not None and e.filename is None:
                raise type(e)(e.errno, e.strerror, str(self.path)) from None
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file (while still holding it: one waiting on this file then finds
        it gone and makes its own) and let go."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if _same_file(fd, self.path):
                # a directory made read-only meanwhile keeps the file: the next holder takes it over (its
                # holder is gone), and the error that stopped the run, if one did, is the one said
                with contextlib.suppress(OSError):
                    self.path.unlink()
        finally:
            os.close(fd)  # the flock goes with it

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def check_not_in_use(directory, who: str = "directory", kind: LockKind = SEARCH) -> None:
    """Raise `DirectoryInUseError` if a running holder of that ``kind`` holds ``directory`` — a look only,
    taking nothing, so that a command can say so before it loads any data (`DirectoryLock.acquire`
    decides, later)."""
    path = Path(directory) / kind.lock_file
    try:  # read-write: an exclusive lock on a read-only descriptor fails on NFS (flock emulated by fcntl)
        fd = os.open(path, os.O_RDWR)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return  # nothing to look at, or not ours to look at: `DirectoryLock.acquire` decides
    try:
        try:
            _lock(fd)
        except DirectoryInUseError:
            raise DirectoryInUseError(in_use(directory, who, _holder(fd), kind)) from None
        except OSError:
            return  # a file system that cannot lock it for a look: `acquire` decides
    finally:
        os.close(fd)  # (a lock taken for the look goes with it)


def in_use(directory, who: str, holder: dict | None, kind: LockKind = SEARCH) -> str:
    path = Path(directory) / kind.lock_file
    if holder:
        named = f"process {holder.get('pid')} on {holder.get('host')}, running since {holder.get('started')}"
    else:
        named = "a process that has not written its name yet"
    return (f"{who} {str(directory)!r} is in use by another {kind.noun}: {named} (it holds {str(path)!r}). "
            + kind.why.format(who=who))


def took_over_note(lock: DirectoryLock) -> str:
    """What a search or run says when it took over a lock left behind."""
    holder = lock.took_over
    return (f"took over {str(lock.path)!r} from process {holder.get('pid')} on {holder.get('host')} (since "
            f"{holder.get('started')}), which is gone: that {lock.kind.noun} ended without letting the directory go "
            "(killed?)")


def _lock(fd: int, tries: int = 1) -> bool:
    """An exclusive flock on ``fd`` (True), or `DirectoryInUseError` (a bare one: the caller names
    it) after ``tries`` attempts `LOOK_SECONDS` apart; False where the system has no flock (nothing
    is locked). flock, not fcntl's record locks: those do not exclude a second open of the file by
    the same process, which two searches in two threads would be."""
    try:  # POSIX: imported here, so that importing xdl works anywhere
        import fcntl
    except ImportError:  # (Windows) no flock to hold: the directory is not locked
        return False

    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
        if attempt + 1 < tries:
            time.sleep(LOOK_SECONDS)
    raise DirectoryInUseError()


def _holder(fd: int) -> dict | None:
    """The holder a lock file names, or None (empty: its maker has not written it yet; or not ours)."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
