"""Pictures (matplotlib, the ``plot`` extra): learning curves — cost and accuracy per epoch for
train and dev, raw and smoothed by an exponentially weighted average, and the learning rate — and a
hyperparameter search's trials."""

from __future__ import annotations

import functools
import io
import itertools
import json
import math
import numbers
from os import PathLike
from pathlib import Path

from xdl.data.validation import check_number
from xdl.ewa import ewa
from xdl.extras import import_error
from xdl.files import atomic_write, check_target
from xdl.train.history import History

__all__ = ["plot_history", "plot_study", "best_so_far"]


CURVES = ("train_cost", "dev_cost", "train_accuracy", "dev_accuracy", "lr")  # the History columns drawn


def plot_history(history, path=None, smoothing: float = 0.6):
    """Save the curves of a `History` as an image at ``path`` (the format its suffix names: .png,
    .pdf, .svg, …; none: PNG) and return the path; ``path=None``: return the matplotlib ``Figure``
    instead, which a notebook shows inline (``fig.savefig(...)`` writes it). ``smoothing`` is the
    EWA's β (0: none).

    A curve is drawn at the epochs that recorded it (a dev set measured in some epochs: those), and
    smoothed over its finite values, as TensorBoard smooths (one NaN epoch leaves a gap, not NaN
    ever after); a column the history lacks is left out, and a panel none of its columns fill (a
    regression's accuracy, the learning rate of a history without it). A value with no finite
    neighbour (a one-epoch run's) is marked: a line through it alone draws nothing. Every argument is
    checked before anything is drawn, and a failure leaves no figure open."""
    if not isinstance(history, History):
        raise TypeError(f"plot_history(history, path): history must be an xdl History (what Trainer.fit returns, "
                        f"or History.load(...)), got {type(history).__name__}{_other_plot(history)}")
    smoothing = check_number(smoothing, "plot_history: smoothing", "a number in [0, 1) (the EWA's β)",
                             lambda b: 0 <= b < 1)
    path = None if path is None else figure_path(path, "plot_history")
    if not len(history):
        raise ValueError("plot_history: the history is empty")
    columns = _columns(history)
    # (a regression records no accuracy: no empty panel for it)
    metrics = [metric for metric in ("cost", "accuracy")
               if any(v is not None for split in ("train", "dev") for v in columns[f"{split}_{metric}"])]
    rates = any(v is not None for v in columns["lr"])  # (a history without the rate: no empty panel either)
    panels = len(metrics) + rates
    fig, axes = subplots(1, panels, figsize=(4.3 * panels, 3.8), squeeze=False)
    axes = axes[0]  # (one panel, the learning rate's alone: an array of one, not an Axes)
    for ax, metric in zip(axes, metrics):
        for split, color in (("train", "tab:blue"), ("dev", "tab:orange")):
            _curve(ax, columns["epoch"], columns[f"{split}_{metric}"], color, split, smoothing)
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        if ax.lines:
            ax.legend()
    if rates:
        _curve(axes[-1], columns["epoch"], columns["lr"], "tab:green", None, 0)
        axes[-1].set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    for ax in axes:
        _whole_numbers(ax)
        if history.best_epoch is not None:
            ax.axvline(history.best_epoch, color="gray", linestyle=":", linewidth=1)
    return _finished(fig, path)


def _other_plot(value) -> str:
    """A hint for a wrong first argument of a plot: the arguments swapped, or the other plot's."""
    from xdl.tune.study import Study

    if isinstance(value, str | PathLike):
        return "; the arguments are (history, path)"
    return "; a search's trials are plot_study(study, path)" if isinstance(value, Study) else ""


def _columns(history) -> dict[str, list]:
    """The epochs and the plotted columns of ``history`` (None in an epoch that did not record one),
    checked before a figure is made: every epoch numbered, every value a number or None, something to
    plot."""
    columns = {name: [record.get(name) for record in history] for name in ("epoch", *CURVES)}
    for name, values in columns.items():
        for i, value in enumerate(values):
            if not (isinstance(value, numbers.Real) or (value is None and name != "epoch")):
                raise ValueError(f"plot_history: record {i} has {name} {value!r}, expected a number"
                                 + ("" if name == "epoch" else " or None"))
    if all(value is None for name in CURVES for value in columns[name]):
        raise ValueError(f"plot_history: the history has none of the columns drawn ({', '.join(CURVES)})")
    return columns


def _curve(ax, epochs, values, color, label, smoothing) -> None:
    """``values`` against ``epochs`` where recorded, and their EWA over the finite ones (β = ``smoothing``)."""
    points = [(e, v) for e, v in zip(epochs, values) if v is not None]
    if not points:
        return
    x, y = zip(*points)
    ax.plot(x, y, color=color, alpha=0.3 if smoothing else 1.0, label=label, **_alone_marked(y))
    finite = [(e, v) for e, v in points if math.isfinite(v)]
    if smoothing and finite:
        x, y = zip(*finite)
        ax.plot(x, ewa(y, smoothing), color=color, label=f"{label} (EWA β={smoothing})", **_alone_marked(y))


def _alone_marked(values) -> dict:
    """``plot``'s arguments that mark each finite value of ``values`` with no finite neighbour: a
    line through a point alone draws nothing (a one-epoch run's curves, a one-trial search's best so
    far, a value between NaNs were blank panels with a legend)."""
    finite = [math.isfinite(v) for v in values]
    alone = [i for i, f in enumerate(finite)
             if f and not (i > 0 and finite[i - 1]) and not (i + 1 < len(finite) and finite[i + 1])]
    return {"marker": "o", "markersize": 4, "markevery": alone} if alone else {}


def _whole_numbers(ax) -> None:
    """Ticks at whole numbers on ``ax``'s x axis, of epochs or trials (one epoch's was ticked 0.96, 0.98, …)."""
    ax.xaxis.set_major_locator(matplotlib().ticker.MaxNLocator(integer=True, min_n_ticks=1))


def plot_study(study, path=None, space=None):
    """Save a search's trials as an image at ``path`` (as `plot_history`; None: return the
    ``Figure``): dev accuracy against each searched
    hyperparameter on its own scale (log axes for log-uniform ones, 1 − β on a log axis for
    one_minus_log, one column per choice), a colour per round, a pruned trial hollow (its accuracy
    is of the epochs it had when stopped); and the best dev accuracy so far (of trials that trained to their end, as
    ``study.best``) against trials and against seconds.
    ``space``: a `Space` or its dict; None: the study's own."""
    from xdl.tune.space import Space, value_key
    from xdl.tune.study import Study

    if isinstance(path, dict | Space):
        raise TypeError("plot_study(study, path, space=None): the path comes second, the space third")
    if not isinstance(study, Study):
        swapped = "; the arguments are (study, path)" if isinstance(study, str | PathLike) else \
            "; a History's curves are plot_history(history, path)" if isinstance(study, History) else ""
        raise TypeError(f"plot_study(study, path): study must be an xdl.tune Study (what tune returns, or "
                        f"Study.load(directory)), got {type(study).__name__}{swapped}")
    path = None if path is None else figure_path(path, "plot_study")
    trials = [t for t in study.trials if t.ok]
    if not trials:
        raise ValueError("plot_study: no trial trained to the end")
    if space is None and "space" not in study.meta:  # (a Study made in code: was a bare KeyError 'space')
        raise ValueError("plot_study: the study records no space: pass space=, the one its trials searched")
    try:
        # a dict as `tune` takes it (its entries Dimensions, LogUniform(…) say: was "Object of type LogUniform is
        # not JSON serializable") made a Space first, whose spec is JSON
        spec = study.meta["space"] if space is None else (space if isinstance(space, Space)
                                                          else Space.from_dict(space)).spec()
        # as the trials hold their values (tuples as lists); recorded: a `zoom`ed space's boxes too (its int_uniform
        # of one value was refused, "low must be < high", and so the plot of its study)
        space = Space.from_dict(json.loads(json.dumps(spec)), recorded=True)
    except ValueError as e:
        raise ValueError(f"plot_study: {e}") from None
    unsearched = sorted({name for name in space.dimensions for t in trials if name not in t.params})
    if unsearched:  # (a bare KeyError, half-way through drawing)
        raise ValueError(f"plot_study: the trials hold no value of {', '.join(unsearched)}: space= must be the "
                         "space they searched")
    unchosen = next(((name, t.params[name]) for name, d in space.dimensions.items() if d.kind == "choice"
                     for t in trials if value_key(t.params[name]) not in map(value_key, d.values)), None)
    if unchosen is not None:  # (a bare "'adam' is not in list", half-way through drawing)
        raise ValueError(f"plot_study: a trial's {unchosen[0]} is {unchosen[1]!r}, none of the space's choices: "
                         "space= must be the space they searched")
    columns = len(space.dimensions) + 2
    fig, axes = subplots(1, columns, figsize=(3.6 * columns, 3.4), squeeze=False)
    _draw_study(axes, space, trials, study.trials)
    return _finished(fig, path)


def _finished(fig, path: Path | None):
    """The figure written at ``path`` (its path returned), or, with none, laid out and returned."""
    if path is not None:
        return save_figure(fig, path)
    fig.tight_layout()
    return fig


def _draw_study(axes, space, trials, every_trial) -> None:
    """`plot_study`'s panels: ``trials`` (those that trained to their end) against each hyperparameter
    of ``space``; the best so far of ``every_trial``."""
    colors = matplotlib().colormaps["tab10"]
    for ax, name in zip(axes[0], space.dimensions):
        d = space.dimensions[name]
        for r, pruned in itertools.product(sorted({t.round for t in trials}), (False, True)):
            chosen = [t for t in trials if t.round == r and (t.status == "pruned") == pruned]
            x = [t.params[name] for t in chosen]
            if d.kind == "one_minus_log":
                x = [1 - v for v in x]
            elif d.kind == "choice":  # (its column found by its JSON, as `Choice.coordinate`: by ==, True was 1's)
                x = [int(d.coordinate(v)) for v in x]
            if chosen:
                ax.scatter(x, [t.dev_accuracy for t in chosen], s=14, edgecolors=colors(r % 10),
                           facecolors="none" if pruned else colors(r % 10),
                           label=f"round {r + 1}" + (", pruned" if pruned else ""))
        if d.kind in ("log_uniform", "one_minus_log"):
            ax.set_xscale("log")
        if d.kind == "choice":
            ax.set_xticks(range(len(d.values)), [str(v) for v in d.values], rotation=20)
        ax.set(xlabel=f"1 − {name}" if d.kind == "one_minus_log" else name, ylabel="dev accuracy", title=name)
    if len({t.round for t in trials}) > 1 or any(t.status == "pruned" for t in trials):
        axes[0][0].legend()
    so_far, seconds = best_so_far(every_trial)
    axes[0][-2].step(range(1, len(so_far) + 1), so_far, where="post", **_alone_marked(so_far))
    axes[0][-2].set(xlabel="trials", ylabel="best dev accuracy so far", title="best so far")
    _whole_numbers(axes[0][-2])
    axes[0][-1].step(seconds, so_far, where="post", **_alone_marked(so_far))
    axes[0][-1].set(xlabel="seconds of training", ylabel="best dev accuracy so far", title="best so far")


def best_so_far(trials) -> tuple[list[float], list[float]]:
    """In trial order: the best dev accuracy so far, ranked as `Study.best` ranks (trials that trained
    to their end: a pruned one's accuracy is of fewer epochs; NaN before the first of them), and the
    seconds of training so far."""
    best, so_far, seconds, elapsed = float("nan"), [], [], 0.0
    for t in sorted(trials, key=lambda t: t.number):
        if t.complete and not t.dev_accuracy <= best:  # (NaN: the first)
            best = t.dev_accuracy
        elapsed += t.seconds
        so_far.append(best)
        seconds.append(elapsed)
    return so_far, seconds


def matplotlib():
    """The matplotlib package, with its `Figure` (ImportError naming the extra without it)."""
    try:
        import matplotlib
        import matplotlib.figure
        import matplotlib.ticker
    except ImportError as e:
        raise import_error(e, ("matplotlib",), "plots need matplotlib", "plot")
    return matplotlib


def subplots(*args, figsize=None, **kwargs):
    """``(fig, axes)`` as ``pyplot.subplots(*args, figsize=..., **kwargs)`` makes them, but
    ``Figure(figsize).subplots(...)``: a figure pyplot does not hold, as matplotlib's guide has a
    library or a server make one. pyplot would choose the process's backend (xdl switched it to
    Agg, and a notebook's inline plots or a program's windows stopped showing after an xdl plot)
    and keep the figure open until closed; this one is the caller's to drop, and `save_figure`
    draws it with its format's own canvas (Agg for PNG) whatever backend the caller uses."""
    fig = _shown_inline(matplotlib().figure.Figure)(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


@functools.cache
def _shown_inline(figure_class):
    """``Figure`` with ``_repr_png_``: a notebook cell ending with one shows the picture, with or
    without ``%matplotlib inline`` (IPython draws a plain Figure only once that has registered its
    printer, and pyplot would not hold this one to draw it at the cell's end)."""
    class Figure(figure_class):
        def _repr_png_(self) -> bytes:
            image = io.BytesIO()
            self.savefig(image, dpi=100, format="png")
            return image.getvalue()

        def __reduce__(self):  # (a class made here has no name pickle can find: made again by `_inline_figure`)
            return _inline_figure, (), self.__getstate__()

    return Figure


def _inline_figure():
    """An empty figure of `_shown_inline`'s class, which unpickling fills with its state: a figure
    pickles as matplotlib's own does (``pickle.dump(fig, f)`` to edit it later, or to send it to
    another process)."""
    figure_class = _shown_inline(matplotlib().figure.Figure)
    return figure_class.__new__(figure_class)


def figure_path(path, what: str) -> Path:
    """``path`` checked before anything is drawn: a file that can be written (`check_target`), its
    suffix a format matplotlib writes (none: PNG); ``what`` (the function) names it in the error."""
    path = check_target(path, what)
    matplotlib()  # (or the ImportError naming the extra)
    from matplotlib.backend_bases import FigureCanvasBase

    supported = FigureCanvasBase.get_supported_filetypes()
    if _format(path) not in supported:
        raise ValueError(f"{what}: {str(path)!r} names the format {_format(path)!r}, which matplotlib does not write; "
                         f"use one of .{', .'.join(sorted(supported))} (or no suffix: PNG)")
    return path


def _format(path: Path) -> str:
    return path.suffix[1:].lower() or "png"


def save_figure(fig, path) -> Path:
    """Lay out and write ``fig`` (made by `subplots`: nothing to close) at ``path``, in the format
    its suffix names."""
    path = figure_path(path, "save_figure")
    fig.tight_layout()
    # atomically, as every file xdl writes: a full disk leaves the previous figure whole
    atomic_write(path, lambda f: fig.savefig(f, dpi=100, format=_format(path)))
    return path
