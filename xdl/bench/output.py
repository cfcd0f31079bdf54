"""A benchmark's output file, checked before any work: a benchmark runs for minutes, and a path it
cannot write found only at its first write (after the first case, or at the end) wastes them."""

from __future__ import annotations

import os
from pathlib import Path


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
    if not directory.is_dir():
        raise FileNotFoundError(f"{what} {str(path)!r}: directory {str(directory)!r} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {str(path)!r}: directory {str(directory)!r} is not writable")
    return path
