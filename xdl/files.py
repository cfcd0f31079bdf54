"""File helpers: atomic replacement and an early writability check (every writer in xdl uses
them), and reading a TOML file named by an option."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import json
import os
import re
import stat
import sys
import tempfile
import tomllib
import uuid
from pathlib import Path

import numpy as np


def check_path(path, what: str) -> Path:
    """``path`` as a Path when it names a file: a str, bytes or os.PathLike. Anything else is a
    TypeError naming ``what`` (the function), before any work: ``open`` would take an int as a file
    descriptor (``0`` would read stdin, and close it), and a file object or None would fail deep
    inside; '' is a ValueError (``Path('')`` is the current directory).

    >>> check_path(None, "load")
    Traceback (most recent call last):
    ...
    TypeError: load: path must be a file name (str or os.PathLike), got NoneType
    """
    if not isinstance(path, str | bytes | os.PathLike):
        stream = " (file objects are not supported: pass the file's name)" if hasattr(path, "read") or \
            hasattr(path, "write") else ""
        raise TypeError(f"{what}: path must be a file name (str or os.PathLike), got {type(path).__name__}{stream}")
    path = os.fsdecode(path)
    if not path:
        raise ValueError(f"{what}: the path is ''; name the file")
    return Path(path)


def check_target(path, what: str = "save") -> Path:
    """Where `atomic_write` writes ``path``: checked before any work (the caller's too), every error
    naming ``what`` and the path. A character device or a pipe (``/dev/null``, a FIFO another process
    reads) is written into, as ``open`` writes it: it has no contents to keep whole, and a rename
    would put a regular file in its place; another kind of file that is not a regular one (a block
    device, a socket) is refused — a model written over a disk is never what was meant. A symbolic
    link gives the file it points to (the link stays a link)."""
    path = check_path(path, what)
    try:
        mode = os.stat(path).st_mode  # (through a link)
    except OSError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):  # found now, not at the rename (which would name the temporary)
        raise IsADirectoryError(f"{what}: {str(path)!r} is a directory; name the file to write")
    if _written_in_place(path):
        return path
    if mode is not None and not stat.S_ISREG(mode):
        raise ValueError(f"{what}: {str(path)!r} is not a regular file (a block device or a socket); name a file")
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        if directory.exists():
            raise NotADirectoryError(f"{what}: {str(path)!r}: {str(directory)!r} is a file, not a directory")
        raise FileNotFoundError(f"{what}: directory {str(directory)!r} does not exist")
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"{what}: directory {str(directory)!r} is not writable")
    if mode is not None and not os.access(path, os.W_OK):  # open() would refuse it (the rename would not)
        raise PermissionError(f"{what}: {str(path)!r} is write-protected; make it writable, or save elsewhere")
    return path


def atomic_write(path, write, binary: bool = True, what: str = "save") -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync, then one rename over
    ``path``: readers see the old file or the new one, never a partial one, and an interrupted
    write leaves the old file as it was. Permissions are those ``open`` would give: the old file's
    when it is replaced (a write-protected one is refused, as ``open`` refuses it), else what the
    umask gives a new file. Temporaries that a killed writer
    left beside ``path`` are removed. ``path`` is checked first (`check_target`): a character
    device or a pipe is written into directly, as ``open`` would. Errors name ``path``, never the
    temporary file; ``what`` names the caller in them ("save"); a Ctrl-C is raised as itself, never as
    the error the writer's clean-up raised on top of it (`_interrupt_behind`). Text (``binary=False``)
    is UTF-8 in any locale: JSON, TOML and Markdown are, and xdl reads them back as UTF-8 (a locale of
    ASCII failed a benchmark's results.md on its '±' once the benchmark had run).

    >>> import json, tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "report.json"
    >>> _ = atomic_write(target, lambda f: json.dump({"ok": True}, f), binary=False)
    >>> target.read_text()
    '{"ok": true}'
    """
    path = check_target(path, what)
    if _written_in_place(path):
        buffered = io.BufferedWriter(_Unseekable(path, "w"))
        with buffered if binary else io.TextIOWrapper(buffered, encoding="utf-8") as f:  # (what open() builds)
            write(f)
        return path
    directory = path.parent if str(path.parent) else Path(".")
    remove_stale_temporaries(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_temporary_prefix(path)}{os.getpid()}.", suffix=".tmp", dir=directory)
        try:  # mkstemp makes 0600; a saved file is like any other
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        # (os.fchmod is POSIX's, and Windows' only from Python 3.13: there the path's chmod, which sets
        # what Windows keeps of a mode, its read-only flag; without it every save failed, an AttributeError)
        os.fchmod(fd, mode) if hasattr(os, "fchmod") else os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            # a directory made read-only meanwhile keeps it (a later write removes it, its writer gone): the
            # error said is the write's, naming the file, not the cleanup's, naming the temporary
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        interrupt = _interrupt_behind(e)
        if interrupt is not None:  # said as the Ctrl-C (or SIGTERM) it is: the caller's way on is a stop's
            raise interrupt from None
        if isinstance(e, OSError) and e.errno is not None and (tmp is None or e.filename in (None, tmp)):
            raise type(e)(e.errno, e.strerror, str(path)) from None  # a full disk: name the file, not the temporary
        raise
    return path


def _interrupt_behind(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (a `KeyboardInterrupt`, SIGTERM's and a Trainer's stop included) that ``error``, an
    error of a writer's own clean-up, was raised on top of — else None. A signal handled as zipfile
    begins closing an archive's member (before its ``try``) leaves the member open, and the archive's
    close, on the way out, raised "Can't close the ZIP file while there is an open writing handle on
    it": that ValueError took the interrupt's place (a second Ctrl-C lands in the checkpoint the
    first one's stop writes), and the caller said an error of the file where the user had stopped it."""
    if isinstance(error, KeyboardInterrupt):
        return None  # (raised as it is)
    seen, behind = {id(error)}, error.__context__
    while behind is not None and id(behind) not in seen:  # (a chain may loop)
        if isinstance(behind, KeyboardInterrupt):
            return behind
        seen.add(id(behind))
        behind = behind.__context__
    return None


class _Unseekable(io.FileIO):
    """A device or a pipe, written from start to end: it has no position to seek to. (/dev/null
    says it has one, always 0, which np.savez's zipfile would take for its entries' offsets; where
    there is none, zipfile, and matplotlib, write in order.)"""

    def seekable(self) -> bool:
        return False

    def seek(self, *args):
        raise io.UnsupportedOperation("seek")

    def tell(self):
        raise io.UnsupportedOperation("tell")


def _written_in_place(path) -> bool:
    """Whether ``path`` is a character device or a pipe (through a link): written into, not replaced."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


# what mkstemp adds to the prefix: the writer's pid (pid_max is at most 2²², 7 digits), ".", 8 random
# characters and ".tmp"; with room to spare
_TEMPORARY_TAIL = 24
_TEMPORARY_REST = re.compile(r"(\d+)\.[a-z0-9_]{8}\.tmp")  # that tail (mkstemp's names: a-z, 0-9 and _)


def _temporary_prefix(path: Path) -> str:
    """``.<name>.``, which says whose temporary it is — or, for a name so long that the temporary's
    would pass the file system's limit (a long but legal name), ``.<hash of the name>.``: as much the
    target's own, and of fixed length."""
    prefix = f".{path.name}."
    try:
        longest = os.pathconf(path.parent if str(path.parent) else ".", "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # (Windows has no pathconf: every save failed on it)
        longest = 255  # (NAME_MAX on Linux's file systems; NTFS's is 255 characters)
    if len(os.fsencode(prefix)) + _TEMPORARY_TAIL <= longest:
        return prefix
    return f".{hashlib.sha256(os.fsencode(path.name)).hexdigest()[:16]}."


def _umask() -> int:
    try:  # Linux says it without changing it (setting it is racy when other threads create files)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(path) -> list[Path]:
    """Remove the temporaries of interrupted writes to ``path`` (``.<name>.<pid>.<random>.tmp``)
    whose writer process no longer exists; a live writer's are left alone. Returns the removed."""
    path = Path(path)
    removed = []
    prefix = _temporary_prefix(path)
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        # the rest is exactly mkstemp's: ``.a.*.tmp`` matches another target's too (``.a.4000000.npz.<pid>.….tmp``,
        # a save of a.4000000.npz under way, whose "pid" 4000000 no process has)
        tail = _TEMPORARY_REST.fullmatch(tmp.name[len(prefix):])
        if tail and not _alive(int(tail[1])):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:  # gone (another writer cleaned it up first), or not this user's to remove (another
                pass         # user's, in a sticky directory such as /tmp): left, and the save goes on
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists. ``os.kill(pid, 0)`` asks on POSIX; on Windows signal 0 is
    CTRL_C_EVENT (``GenerateConsoleCtrlEvent``: an OSError, or a Ctrl-C sent to a console group), never
    ProcessLookupError, so Windows asks ``OpenProcess`` instead; where it cannot be asked, alive (a
    temporary kept is harmless, one removed under a live writer is not)."""
    if sys.platform == "win32":
        return _alive_on_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _alive_on_windows(pid: int) -> bool:
    """Windows: a process is alive while ``OpenProcess`` opens it and its exit code is STILL_ACTIVE
    (259); a pid no process has fails to open (ERROR_INVALID_PARAMETER, 87)."""
    try:
        import ctypes
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.OpenProcess.restype = ctypes.c_void_p  # a HANDLE: a pointer, not the C int ctypes assumes
        kernel32.GetExitCodeProcess.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_ulong)]
        kernel32.CloseHandle.argtypes = [ctypes.c_void_p]
    except (ImportError, AttributeError, OSError):
        return True
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() != 87  # access denied: it exists, owned by someone else
    try:
        code = ctypes.c_ulong()
        return not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) or code.value == 259
    finally:
        kernel32.CloseHandle(handle)


def python_value(v):
    """A NumPy scalar or 0-d array as the Python number it holds, else ``v`` as it is: a setting kept
    for JSON or TOML (a trial, a checkpoint's record) or for a formula (NEP 50 keeps a NumPy scalar's
    dtype against Python floats: a schedule of np.float32(3e-3) rounded its every rate to float32). A
    datetime64 or timedelta64 is kept as it is, to be refused as no number (a date of nanoseconds fixed
    in a search space was taken as 1.7·10¹⁸ epochs)."""
    if not (isinstance(v, np.generic | np.ndarray) and np.ndim(v) == 0) or v.dtype.kind in "mM":
        return v  # (a datetime64's or timedelta64's item is a date, a duration or a bare int of its unit: no number)
    item = v.item()  # (a longdouble's item is itself: the float it holds, which JSON and TOML take)
    return item if not isinstance(item, np.generic) else float(item) if isinstance(item, np.floating) else \
        int(item) if isinstance(item, np.integer) else item


def json_number(value):
    """``json.dump``'s ``default`` for NumPy numbers (a callback's record may hold one): the Python
    number it holds (`python_value`); anything else is still refused."""
    # (a number only: a datetime64's or timedelta64's item is a date, a duration or a bare int of its unit, written as
    # if a count; bytes_'s is bytes)
    if isinstance(value, np.number | np.bool_) and not isinstance(value, np.timedelta64) \
            and isinstance(plain := python_value(value), bool | int | float):
        return plain
    raise TypeError(f"{type(value).__name__} {value!r} cannot be written as JSON")


class EncodedJSON:
    """JSON text encoded already, which `json_dumps` writes as it is: a long run's history records,
    each encoded once (`History.to_encoded_dict`) — re-encoded at every checkpoint, they cost a run
    of 3,000 epochs 12 ms a save, growing with every epoch."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def json_dumps(value) -> str:
    """``json.dumps(value, default=json_number)``, each `EncodedJSON` within ``value`` written as the
    text it holds (the same bytes as the value it encodes, encoded here)."""
    token, parts = f"xdl-encoded-{uuid.uuid4().hex}-", []  # (random: in no string of value)

    def default(v):
        if isinstance(v, EncodedJSON):
            parts.append(v.text)
            return f"{token}{len(parts) - 1}"
        return json_number(v)

    text = json.dumps(value, default=default)
    return re.sub(f'"{token}(\\d+)"', lambda m: parts[int(m.group(1))], text) if parts else text


def home_meant(name: str) -> str | None:
    """The path ``name`` meant where it starts with '~' (``os.path.expanduser``'s), which a shell
    expands at a word's start only (not after ``--config=``, nor in a TOML value); else None."""
    home = os.path.expanduser(name) if name.startswith("~") else name
    return home if home != name else None


def check_no_tilde(name: str, what: str) -> None:
    """A path starting with '~' is refused, naming ``what``: nothing expands it here (a shell does at
    the start of a word only — not in a TOML value, nor after ``--out=``), and a directory named
    '~' made in the current one looks like the home directory (``rm -rf ~`` to clean it up)."""
    if name.startswith("~"):
        home = home_meant(name)
        meant = f"{home!r}?, or " if home else ""
        raise ValueError(f"{what} {name!r} starts with '~', which nothing expands here: give the path itself "
                         f"({meant}{'./' + name!r} for a directory of that name here)")


def os_error(caught: OSError, message: str) -> OSError:
    """An error of ``caught``'s type that says ``message`` and keeps its ``errno``, so that a caller's
    ``e.errno == errno.EACCES`` still holds (``type(e)(message)`` had errno None). Its filename is not
    copied: with one set, str(e) is Python's "[Errno 13] Permission denied: 'name'", not ``message``
    (which names the file)."""
    error = type(caught)(message)
    error.errno = caught.errno
    return error


def check_directory_name(directory, what: str) -> Path:
    """``directory`` as a Path; '' is refused, naming ``what``: Path('') is the current directory,
    which a run would fill with its files unasked — and so is a name of blanks or with a control
    character (a stray quote or newline in a script), which no one means, and one starting with '~'
    (`check_no_tilde`)."""
    name = str(directory)
    if not name:
        raise ValueError(f"{what} must name a directory, got ''")
    check_no_tilde(name, what)
    last = Path(name).name  # ('' for '.' and '/': names of directories, not blanks)
    if not name.strip() or (last and not last.strip()) or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError(f"{what} must name a directory, got {name!r} (blank, or with a control character)")
    return Path(directory)


def check_reachable(path, what: str, named=None) -> None:
    """Refuse ``path`` (a directory ``what`` names, or a path inside ``named``, the directory it
    names) whose name cannot be looked up — over the file system's 255 bytes, or a directory on the
    way that cannot be searched — naming ``what``: the first look at it failed as a bare "[Errno 36]
    File name too long: '…'". Missing is fine (it is made)."""
    named = path if named is None else named
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):  # made later, or refused as a file by its own check
        return
    except OSError as e:
        inside = f" (looking up {str(path)!r})" if Path(path) != Path(named) else ""
        raise os_error(e, f"{what} {str(named)!r} cannot be used: {e.strerror}{inside}") from None


def missing_directories(path: Path) -> list[Path]:
    """``path`` and its parents that do not exist yet, ``path`` first (``a/b/c`` with none of them there: c, b, a):
    what `check_writable_dir` makes for it (a dangling symlink is there: it is no directory to make)."""
    missing = []
    while not path.exists() and not path.is_symlink() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def check_writable_dir(directory, what: str) -> Path:
    """Create ``directory`` if needed; fail now, before any training, if it cannot be written.
    ``what`` names it in the error ("output directory")."""
    directory = check_directory_name(directory, what)
    check_reachable(directory, what)  # (exists() raised a bare "[Errno 36] File name too long")
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{what} {str(directory)!r} is a file, not a directory")
    if directory.is_symlink() and not directory.exists():  # (mkdir said "File exists" of what is not there)
        raise FileNotFoundError(f"{what} {str(directory)!r} is a symbolic link to {os.readlink(directory)!r}, which "
                                "does not exist: make that directory, or name another")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # its own type: a PermissionError said "No such file or directory" of /proc/xx
        raise os_error(e, f"{what} {str(directory)!r} cannot be created: {e.strerror or e}") from None
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {str(directory)!r} is not a writable directory")
    return directory


def check_output_file(path, what: str) -> Path:
    """``path`` as a Path if a file can be written there (its directory exists and is writable; it
    is not itself a directory); else an error naming ``what`` (the flag, "--json") and the path.
    Makes nothing: the file is written (atomically) by the benchmark."""
    if not str(path):  # Path('') is the current directory
        raise ValueError(f"{what} must name a file, got ''")
    check_no_tilde(str(path), what)  # (it said "directory '~' does not exist")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {str(path)!r} is a directory; name a file (in it, say "
                                f"{str(path / 'x.json')!r})")
    directory = path.parent
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{what} {str(path)!r}: {str(directory)!r} is a file, not a directory")
    if not directory.is_dir():
        raise FileNotFoundError(f"{what} {str(path)!r}: directory {str(directory)!r} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {str(path)!r}: directory {str(directory)!r} is not writable")
    return path


def parse_toml(content: bytes) -> dict:
    """TOML from a file's bytes: UTF-8 text, with or without the byte-order mark Windows editors
    write (tomllib read it as "Invalid statement (at line 1, column 1)"); other bytes (UTF-16, say)
    are a ValueError saying TOML is UTF-8."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"TOML is UTF-8 text, and this is not (byte {e.start}: {e.reason}): save it as UTF-8") \
            from None
    return tomllib.loads(text)


def _backslash_hint(path: Path, error: ValueError) -> str:
    """Where TOML refused an escape in a file with a backslash: a Windows path in a "…" string
    (``out = "C:\\Users\\me\\run"``), whose ``\\U`` TOML reads as an escape — said as "Invalid hex
    value (at line 1, column 12)", nothing about paths."""
    message = str(error)
    if not any(word in message for word in ("hex value", "Unescaped", "escape")):
        return ""
    with contextlib.suppress(OSError):
        if b"\\" in path.read_bytes():
            return ("; a backslash in a \"...\" string starts an escape: write a Windows path in single quotes "
                    "('C:\\Users\\me\\run') or with forward slashes")
    return ""


def read_toml(path, option: str) -> dict:
    """The TOML file at ``path`` (`parse_toml`); a missing or malformed file is an error naming ``option``."""
    if not str(path):  # Path('') is the current directory: not what was typed
        raise ValueError(f"{option}: expected a TOML file, got ''")
    path = Path(path)
    try:
        with path.open("rb") as f:
            return parse_toml(f.read())
    except FileNotFoundError as e:
        home = home_meant(str(path))  # (--config=~/run.toml: the shell left the '~')
        meant = f" ('~' is not expanded here: did you mean {home!r}?)" if home else ""
        raise os_error(e, f"{option}: no such file {str(path)!r}{meant}") from None
    except ValueError as e:  # (a TOMLDecodeError is one)
        raise ValueError(f"{option} {str(path)!r} is not valid TOML: {e}{_backslash_hint(path, e)}") from None
    except IsADirectoryError as e:
        raise os_error(e, f"{option}: {str(path)!r} is a directory, not a TOML file") from None
    except OSError as e:  # (permission, an I/O error: named, not a bare "[Errno 5] Input/output error")
        raise os_error(e, f"{option}: cannot read {str(path)!r}: {e.strerror or e}") from None
