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
        self._locked = False

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
            try:  # (the descriptor holds the flock from here: closed on any error, an interrupt's too, or this
                # process held the directory until it ended, refusing its own next try as "in use")
                # a holder that was ending removed the file after we opened it: our lock is on a file no
                # other holder will open, so try again with the one now at the path
                if _same_file(fd, self.path):
                    self._name_this_process(fd, locked)
                    break
            except BaseException:
                _close(fd, locked)
                raise
            _close(fd, locked)
        self._fd, self._locked = fd, locked
        return self

    def _name_this_process(self, fd: int, locked: bool) -> None:
        """This process named in the lock file ``fd`` holds (``took_over``: the holder it named before,
        one that is gone); an OSError names the file."""
        left = _holder(fd)  # a holder still named in the file had no chance to remove it (killed)
        self.took_over = left if locked and left and left.get("pid") != os.getpid() else None
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        try:
            os.ftruncate(fd, 0)
            _write_at_start(fd, json.dumps(me).encode())
        except OSError as e:  # (a full disk)
            if e.errno is not None and e.filename is None:
                raise type(e)(e.errno, e.strerror, str(self.path)) from None
            raise

    def release(self) -> None:
        """Remove the lock file (while still holding it: one waiting on this file then finds
        it gone and makes its own) and let go."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        left = False  # the file is ours and still there (Windows removes no file that is open)
        try:
            if _same_file(fd, self.path):
                # a directory made read-only meanwhile keeps the file: the next holder takes it over (its
                # holder is gone), and the error that stopped the run, if one did, is the one said
                try:
                    self.path.unlink()
                except OSError:
                    left = True
            _unlock(fd, self._locked)
        finally:
            # the flock goes with it; first, one call: no interrupt lands before it (`_close`'s start took one,
            # and this process held the directory until it ended)
            os.close(fd)
        if left and os.name == "nt":  # closed, it can go (one another process opened since stays: it is theirs)
            with contextlib.suppress(OSError):
                self.path.unlink()

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
    locked = False
    try:
        try:
            locked = _lock(fd)
        except DirectoryInUseError:
            raise DirectoryInUseError(in_use(directory, who, _holder(fd), kind)) from None
        except OSError:
            return  # a file system that cannot lock it for a look: `acquire` decides
    finally:
        _close(fd, locked)  # (a lock taken for the look goes with it)


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


# Windows locks a byte range of the lock file (msvcrt.locking), and a locked range cannot be read by
# another process: the range lies past the holder's name (`_holder` reads 4096 bytes), where no one reads
WINDOWS_LOCK_OFFSET = 1 << 20


def _lock(fd: int, tries: int = 1) -> bool:
    """An exclusive flock on ``fd`` (True), or `DirectoryInUseError` (a bare one: the caller names
    it) after ``tries`` attempts `LOOK_SECONDS` apart; False where the system has no flock (nothing
    is locked). flock, not fcntl's record locks: those do not exclude a second open of the file by
    the same process, which two searches in two threads would be. Windows has no flock: there a
    byte of the file (`WINDOWS_LOCK_OFFSET`) is locked with ``msvcrt.locking``, which excludes every
    other descriptor, this process's too, and goes with the process (the directory was not locked
    there at all: two runs in one --out each wrote their checkpoints over the other's)."""
    try:  # POSIX: imported here, so that importing xdl works anywhere
        import fcntl
    except ImportError:
        fcntl = None
        try:
            import msvcrt
        except ImportError:  # neither: no lock to hold, the directory is not locked
            return False

    for attempt in range(tries):
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                _windows_locking(fd, msvcrt, msvcrt.LK_NBLCK)
            return True
        except OSError as e:
            # (msvcrt's held byte: EACCES, or EDEADLOCK, which on Linux is EDEADLK, an error flock must raise)
            held = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES) if fcntl is not None else \
                (errno.EACCES, getattr(errno, "EDEADLOCK", errno.EACCES))
            if e.errno not in held:
                raise
        if attempt + 1 < tries:
            time.sleep(LOOK_SECONDS)
    raise DirectoryInUseError()


def _windows_locking(fd: int, msvcrt, mode) -> None:
    """``msvcrt.locking`` of the byte at `WINDOWS_LOCK_OFFSET` (it locks from the file's position, which
    is put back)."""
    here = os.lseek(fd, 0, os.SEEK_CUR)
    os.lseek(fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)
    try:
        msvcrt.locking(fd, mode, 1)
    finally:
        os.lseek(fd, here, os.SEEK_SET)


def _close(fd: int, locked: bool) -> None:
    """Close ``fd``, letting go of its lock (`_unlock` first)."""
    try:
        _unlock(fd, locked)
    finally:
        os.close(fd)


def _unlock(fd: int, locked: bool) -> None:
    """Windows' byte lock on ``fd`` unlocked (Microsoft's documentation leaves a lock closed unreleased
    for a while); POSIX: nothing (an flock goes with the descriptor's close)."""
    if not locked:
        return
    try:
        import fcntl  # noqa: F401  (POSIX: the close releases it)
    except ImportError:
        import msvcrt
        with contextlib.suppress(OSError):
            _windows_locking(fd, msvcrt, msvcrt.LK_UNLCK)


def _holder(fd: int) -> dict | None:
    """The holder a lock file names, or None (empty: its maker has not written it yet; or not ours)."""
    try:
        holder = json.loads(_read_from_start(fd, 4096).decode())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _read_from_start(fd: int, size: int) -> bytes:
    """Up to ``size`` bytes from the file's start: ``os.pread`` where there is one (POSIX: the offset
    is left alone), else a seek and a read (Windows has no ``pread``: the lock failed there, an
    AttributeError, and no run or search could start)."""
    if hasattr(os, "pread"):
        return os.pread(fd, size, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, size)


def _write_at_start(fd: int, data: bytes) -> None:
    """``data`` written at the file's start: ``os.pwrite`` where there is one, else a seek and a write (Windows)."""
    if hasattr(os, "pwrite"):
        os.pwrite(fd, data, 0)
        return
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
