"""`progress_bar`: the tqdm bar of a training loop (a `Trainer`'s, `fit_many`'s) and of a search's
trials, shown on a terminal or in a notebook only; `above_bars`: a line written while one is drawn.
"""

from __future__ import annotations

import sys


def progress_bar(enabled: bool | None, total: int, unit: str = "batch"):
    """A tqdm bar on stderr counting ``total`` ``unit``s (a search's bar counts trials): ``enabled`` None shows it on a terminal (or as a notebook's widget)
    only — none where stderr is closed (``2>&-``: tqdm's own check would write to None and fail the
    run). No bar asked for is tqdm's console bar, disabled: `tqdm.auto` is imported only for a bar
    that may show (in a Jupyter kernel without ipywidgets its import warns "IProgress not found.
    Please update jupyter and ipywidgets" — at a fit with ``progress=False``, an `MLPClassifier`'s
    or `fit_many`'s)."""
    if sys.stderr is None or not hasattr(sys.stderr, "isatty"):
        enabled = False
    if enabled is False:
        from tqdm import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(total=total, unit=unit, disable=None if enabled is None else not enabled, leave=False,
                dynamic_ncols=True)


def above_bars(report, *args):
    """``report(*args)`` (a report's line: ``print``, a logger's method) with the bars drawn on stdout or
    stderr cleared first and drawn again after it, as ``tqdm.write`` writes (tqdm's
    ``external_write_mode``): written under a bar, the line ran on from the bar's text, which stayed
    on the screen, a half-line, at each report."""
    from tqdm import tqdm

    with tqdm.external_write_mode():
        return report(*args)
