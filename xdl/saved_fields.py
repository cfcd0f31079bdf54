"""The JSON fields of a file xdl wrote — a checkpoint's run state, a batch checkpoint's, a study's
trials — checked against the kinds xdl writes them in, before anything reads them into a run.

A damaged or hand-edited file is refused naming the file and the field (`damaged`), where it went
on to fail deep inside (a KeyError; a format error once the run had trained and written its files
over) or to resume wrong (a history missing epochs, a fractional epoch). A field is given as
``(key, fits, expected)``: ``fits(value)`` says whether its value is one xdl writes, ``expected``
says what that is, in the message.
"""

from __future__ import annotations


def is_count(value, low: int = 0) -> bool:
    """An integer (not a bool) ≥ ``low``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def is_number(value) -> bool:
    """An int or a float (not a bool): what JSON reads a number as."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_dict(value) -> bool:
    return isinstance(value, dict)


def optional(fits):
    """``fits``, or null (None): a field xdl writes as either."""
    return lambda value: value is None or fits(value)


def is_list_of(value, fits, length: int | None = None) -> bool:
    """A list (of ``length`` items, where given) each of which ``fits``."""
    return isinstance(value, list) and (length is None or len(value) == length) and all(map(fits, value))


def is_records(value) -> bool:
    """A history as `History.to_dict` writes it: a dict whose ``records`` are dicts."""
    return isinstance(value, dict) and is_list_of(value.get("records"), lambda r: isinstance(r, dict))


def damaged(path, what: str, who: str | None = "resume") -> ValueError:
    """The error for file ``path`` holding ``what`` (``"its 'epoch' is 1.5, expected …"``), said
    by ``who`` (the call reading it; None: the file alone)."""
    said = f"{who}: " if who else ""
    return ValueError(f"{said}{str(path)!r} is damaged or was edited: {what}; no xdl writes it so")


def check_fields(values: dict, fields, path, who: str | None = "resume", required=(), whose: str = "its") -> None:
    """Raise `damaged` for the first of ``fields`` that ``values`` holds and whose ``fits``
    refuses its value, or that it lacks and ``required`` names (the others may be absent: older
    files' layouts). ``whose``: the field's owner in the message ("its trial 3's")."""
    for key, fits, expected in fields:
        if key not in values:
            if key in required:
                raise damaged(path, f"it has no {key!r}", who)
        elif not fits(values[key]):
            raise damaged(path, f"{whose} {key!r} is {values[key]!r:.80}, expected {expected}", who)
