"""File helpers: atomic replacement and an early writability check (every writer in xdl uses
them), and reading a TOML file named by an option."""

from __future__ import annotations

import glob
import os
import stat
import tempfile
import tomllib
from pathlib import Path

import numpy as np


def atomic_write(path, write, binary: bool = True) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync, then one rename over
    ``path``: readers see the old file or the new one, never a partial one, and an interrupted
    write leaves the old file as it was. Permissions are those ``open`` would give: the old file's
    when it is replaced (a write-protected one is refused, as ``open`` refuses it), else what the
    umask gives a new file. Temporaries that a killed writer
    left beside ``path`` are removed.

    >>> import json, tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "report.json"
    >>> _ = atomic_write(target, lambda f: json.dump({"ok": True}, f), binary=False)
    >>> target.read_text()
    '{"ok": true}'
    """
    if isinstance(path, str) and not path:  # Path('') is the current directory
        raise ValueError("save: the path is ''; name the file to write")
    path = Path(path)
    if path.is_dir():  # found now, not at the rename (which would name the temporary file)
        raise IsADirectoryError(f"save: {str(path)!r} is a directory; name the file to write")
    if path.is_symlink():  # the file it points to is what the caller means (the link stays a link)
        path = Path(os.path.realpath(path))
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"save: directory {str(directory)!r} does not exist")
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"save: directory {str(directory)!r} is not writable")
    if path.exists() and not os.access(path, os.W_OK):  # open() would refuse it (the rename would not)
        raise PermissionError(f"save: {str(path)!r} is write-protected; make it writable, or save elsewhere")
    remove_stale_temporaries(path)
    prefix = _temporary_prefix(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}.", suffix=".tmp", dir=directory)
    try:
        try:  # mkstemp makes 0600; a saved file is like any other
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None and e.filename in (None, tmp):  # a full disk: name the file
            raise type(e)(e.errno, e.strerror, str(path)) from None
        raise
    return path


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


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
    for tmp in path.parent.glob(f"{glob.escape(_temporary_prefix(path))}*.tmp"):
        pid = tmp.name[len(_temporary_prefix(path)):].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                tmp.unlink()
                removed.append(tmp)
            except FileNotFoundError:
                pass  # another writer cleaned it up first
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def json_number(value):
    """``json.dump``'s ``default`` for NumPy numbers (a callback's record may hold one): the Python
    number it holds; anything else is still refused."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} cannot be written as JSON")


def check_directory_name(directory, what: str) -> Path:
    """``directory`` as a Path; '' is refused, naming ``what``: Path('') is the current directory,
    which a run would fill with its files unasked — and so is a name of blanks or with a control
    character (a stray quote or newline in a script), which no one means."""
    name = str(directory)
    if not name:
        raise ValueError(f"{what} must name a directory, got ''")
    last = Path(name).name  # ('' for '.' and '/': names of directories, not blanks)
    if not name.strip() or (last and not last.strip()) or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError(f"{what} must name a directory, got {name!r} (blank, or with a control character)")
    return Path(directory)


def check_writable_dir(directory, what: str) -> Path:
    """Create ``directory`` if needed; fail now, before any training, if it cannot be written.
    ``what`` names it in the error ("output directory")."""
    directory = check_directory_name(directory, what)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{what} {str(directory)!r} is a file, not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermissionError(f"{what} {str(directory)!r} cannot be created: {e.strerror}") from None
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {str(directory)!r} is not a writable directory")
    return directory


def check_output_file(path, what: str) -> Path:
    """``path`` as a Path if a file can be written there (its directory exists and is writable; it
    is not itself a directory); else an error naming ``what`` (the flag, "--json") and the path.
    Makes nothing: the file is written (atomically) by the benchmark."""
    if not str(path):  # Path('') is the current directory
        raise ValueError(f"{what} must name a file, got ''")
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


def read_toml(path, option: str) -> dict:
    """The TOML file at ``path``; a missing or malformed file is an error naming ``option``."""
    if not str(path):  # Path('') is the current directory: not what was typed
        raise ValueError(f"{option}: expected a TOML file, got ''")
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{option}: no such file {str(path)!r}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:  # TOML is UTF-8 text
        raise ValueError(f"{option} {str(path)!r} is not valid TOML: {e}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{option}: {str(path)!r} is a directory, not a TOML file") from None
