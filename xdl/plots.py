"""Pictures (matplotlib, the ``plot`` extra): learning curves — cost and accuracy per epoch for
train and dev, raw and smoothed by an exponentially weighted average, and the learning rate — and a
hyperparameter search's trials."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from xdl.data.validation import check_number
from xdl.files import atomic_write
from xdl.ewa import ewa


def plot_history(history, path, smoothing: float = 0.6) -> Path:
    """Save the curves of a `History` as an image at ``path`` (the format its suffix names: .png,
    .pdf, .svg, …); ``smoothing`` is the EWA's β (0: none)."""
    smoothing = check_number(smoothing, "plot_history: smoothing", "a number in [0, 1) (the EWA's β)",
                             lambda b: 0 <= b < 1)
    if not len(history):
        raise ValueError("plot_history: the history is empty")
    plt = pyplot()
    epochs = history["epoch"]
    panels = [("cost", "cost"), ("accuracy", "accuracy")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (metric, label) in zip(axes, panels):
        for split, color in (("train", "tab:blue"), ("dev", "tab:orange")):
            values = history[f"{split}_{metric}"]
            if any(v is None for v in values):
                continue
            ax.plot(epochs, values, color=color, alpha=0.3 if smoothing else 1.0, label=f"{split}")
            if smoothing:
                ax.plot(epochs, ewa(values, smoothing), color=color, label=f"{split} (EWA β={smoothing})")
        ax.set(xlabel="epoch", ylabel=label, title=label)
        ax.legend()
    axes[2].plot(epochs, history["lr"], color="tab:green")
    axes[2].set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    for ax in axes:
        if history.best_epoch is not None:
            ax.axvline(history.best_epoch, color="gray", linestyle=":", linewidth=1)
    return save_figure(plt, fig, path)


def plot_study(study, path, space=None) -> Path:
    """Save a search's trials as an image at ``path`` (as `plot_history`): dev accuracy against each searched
    hyperparameter on its own scale (log axes for log-uniform ones, 1 − β on a log axis for
    one_minus_log, one column per choice), a colour per round, a pruned trial hollow (its accuracy
    is its last rung's); and the best dev accuracy so far (of trials that trained to their end, as
    ``study.best``) against trials and against seconds.
    ``space``: a `Space` or its dict; None: the study's own."""
    from xdl.tune.space import Space

    if isinstance(path, dict | Space):
        raise TypeError("plot_study(study, path, space=None): the path comes second, the space third")
    plt = pyplot()
    trials = [t for t in study.trials if t.ok]
    if not trials:
        raise ValueError("plot_study: no trial trained to the end")
    spec = study.meta["space"] if space is None else space.spec() if isinstance(space, Space) else space
    space = Space.from_dict(json.loads(json.dumps(spec)))  # as the trials hold their values (tuples as lists)
    names = list(space.dimensions)
    fig, axes = plt.subplots(1, len(names) + 2, figsize=(3.6 * (len(names) + 2), 3.4), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, name in zip(axes[0], names):
        d = space.dimensions[name]
        for r, pruned in itertools.product(sorted({t.round for t in trials}), (False, True)):
            chosen = [t for t in trials if t.round == r and (t.status == "pruned") == pruned]
            x = [t.params[name] for t in chosen]
            if d.kind == "one_minus_log":
                x = [1 - v for v in x]
            elif d.kind == "choice":
                x = [d.values.index(v) for v in x]
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
    so_far, seconds = best_so_far(study.trials)
    axes[0][-2].step(range(1, len(so_far) + 1), so_far, where="post")
    axes[0][-2].set(xlabel="trials", ylabel="best dev accuracy so far", title="best so far")
    axes[0][-1].step(seconds, so_far, where="post")
    axes[0][-1].set(xlabel="seconds of training", ylabel="best dev accuracy so far", title="best so far")
    return save_figure(plt, fig, path)


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


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (ImportError naming the extra without it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'xdl[plot]'") from None
    return plt


def save_figure(plt, fig, path) -> Path:
    """Lay out, write ``fig`` at ``path`` (in the format its suffix names) and close it — also when
    writing fails, so a failed call leaves no figure open."""
    try:
        fig.tight_layout()
        path = Path(path)
        # atomically, as every file xdl writes: a full disk leaves the previous figure whole
        atomic_write(path, lambda f: fig.savefig(f, dpi=100, format=path.suffix[1:] or "png"))
    finally:
        plt.close(fig)
    return path
