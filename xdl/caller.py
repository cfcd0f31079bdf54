"""How xdl meets the code that calls it: `warn_caller`, a warning that points at the user's line, however deep in
xdl it is raised; `keywords_of`, the keywords a callable takes (what a refusal of another keyword compares with).

`warnings.warn`'s ``stacklevel`` counts frames, so a fixed level is right for one call path only
(``fit_many`` → ``ManyTrainer.fit`` → … is one frame deeper than ``ManyTrainer.fit`` called
directly). This walks out of the package instead, as Python 3.12's ``skip_file_prefixes`` does.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import warnings

PACKAGE = os.path.join(os.path.realpath(os.path.dirname(__file__)), "")  # with its trailing separator


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn with ``message``, attributed to the first frame outside the xdl package (the code that
    called into xdl: a script, a test, a doctest, scikit-learn calling an estimator's ``fit``)."""
    from tqdm import tqdm

    frame, level = sys._getframe(1), 2  # stacklevel 2: warn_caller's caller
    while frame is not None and in_package(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    # a progress bar drawn (a run's: the warning comes mid-run) is cleared first and drawn again after:
    # written under it, the warning ran on from the bar's text, which stayed on the screen
    with tqdm.external_write_mode(file=sys.stderr):
        warnings.warn(message, category, stacklevel=level)


@functools.lru_cache(maxsize=1024)
def in_package(filename: str) -> bool:
    """Whether code of ``filename`` is xdl's. Names in angle brackets (``<string>``, ``<doctest …>``,
    ``<stdin>``) are no files: they are the user's, so code xdl generates is compiled under the
    name of the module that generates it."""
    return not filename.startswith("<") and os.path.realpath(filename).startswith(PACKAGE)


def keywords_of(fn, left_out: tuple = ()) -> list[str]:
    """The names ``fn`` takes by keyword, in its signature's order (``self`` and ``left_out`` left out)."""
    return [name for name, p in inspect.signature(fn).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in ("self", *left_out)]
