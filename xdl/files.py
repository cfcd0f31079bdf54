"""File helpers every writer in xdl uses: atomic replacement and an early writability check."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path, write, binary: bool = True) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync, then one rename over
    ``path``: readers see the old file or the new one, never a partial one, and an interrupted
    write leaves the old file as it was.

    >>> import json, tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "report.json"
    >>> _ = atomic_write(target, lambda f: json.dump({"ok": True}, f), binary=False)
    >>> target.read_text()
    '{"ok": true}'
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"save: directory {str(directory)!r} does not exist")
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"save: directory {str(directory)!r} is not writable")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def check_writable_dir(directory, what: str) -> Path:
    """Create ``directory`` if needed; fail now, before any training, if it cannot be written.
    ``what`` names it in the error ("output directory")."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermissionError(f"{what} {str(directory)!r} cannot be created: {e.strerror}") from None
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {str(directory)!r} is not a writable directory")
    return directory
