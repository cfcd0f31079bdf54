"""Learning-curve pictures (matplotlib, the ``plot`` extra): cost and accuracy per epoch for train
and dev, raw and smoothed by an exponentially weighted average, and the learning rate."""

from __future__ import annotations

from pathlib import Path

from xdl.ewa import ewa


def plot_history(history, path, smoothing: float = 0.6) -> Path:
    """Save the curves of a `History` as a PNG at ``path``; ``smoothing`` is the EWA's β (0: none)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'xdl[plot]'") from None
    if not len(history):
        raise ValueError("plot_history: the history is empty")
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
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
