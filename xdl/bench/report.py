"""What `xdl bench optimizers` writes: a Markdown table, the JSON of every run, a PNG of the curves
per problem, and a performance profile (Dolan & Moré 2002): for each optimizer, the fraction of
problems on which its median seconds-to-target is within a factor τ of the best optimizer's."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from xdl.files import atomic_write, check_writable_dir


def summary(results: dict) -> list[dict]:
    """One row per (problem, optimizer): the tuned lr, mean ± std of the final metric over the
    seeds, the median steps and seconds to the target, and how many runs failed."""
    rows = []
    for problem, per in results["problems"].items():
        for name, entry in per.items():
            runs = [r for r in entry["runs"] if r["status"] == "completed"]
            key = "test_accuracy" if runs and "test_accuracy" in runs[0] else "final_cost"
            values = np.array([r[key] for r in runs], dtype=np.float64)
            train = [r["train_accuracy"] for r in runs if "train_accuracy" in r]
            reached = [r for r in runs if r["steps_to_target"] is not None]
            rows.append({
                "problem": problem, "optimizer": name, "lr": entry["lr"], "metric": key,
                "mean": float(values.mean()) if len(values) else None,
                "std": float(values.std()) if len(values) else None,
                "train_accuracy": float(np.mean(train)) if train else None,
                "reached": f"{len(reached)}/{len(entry['runs'])}",
                "steps_to_target": float(np.median([r["steps_to_target"] for r in reached])) if reached else None,
                "seconds_to_target": float(np.median([r["seconds_to_target"] for r in reached])) if reached else None,
                "failed": len(entry["runs"]) - len(runs) + sum(s["status"] != "completed" for s in entry["search"]),
            })
    return rows


def markdown(results: dict) -> str:
    lines = ["| problem | optimizer | lr | final (mean ± std) | train accuracy | reached target | steps to target | "
             "s to target | diverged or crashed (search + runs) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary(results):
        final = "—" if r["mean"] is None else f"{r['metric'].replace('_', ' ')} {r['mean']:.4g} ± {r['std']:.2g}"
        lines.append(f"| {r['problem']} | {r['optimizer']} | {_g(r['lr'])} | {final} | {_g(r['train_accuracy'])} | "
                     f"{r['reached']} | {_g(r['steps_to_target'])} | {_g(r['seconds_to_target'])} | {r['failed']} |")
    return "\n".join(lines)


def profile(results: dict) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """(problems, τ values, optimizer → fraction of problems within τ of the best seconds-to-target)."""
    rows = summary(results)
    problems = list(results["problems"])
    names = list(dict.fromkeys(r["optimizer"] for r in rows))
    times = np.full((len(problems), len(names)), np.inf)
    for r in rows:
        if r["seconds_to_target"] is not None:
            times[problems.index(r["problem"]), names.index(r["optimizer"])] = max(r["seconds_to_target"], 1e-9)
    best = times.min(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):  # a problem no optimizer solved: inf/inf, every ratio ∞
        ratios = np.where(np.isfinite(best), times / best, np.inf)
    finite = ratios[np.isfinite(ratios)]
    taus = np.geomspace(1.0, max(2.0, float(finite.max()) * 1.1 if finite.size else 2.0), 200)
    return problems, taus, {n: (ratios[:, i][:, None] <= taus[None, :]).mean(axis=0) for i, n in enumerate(names)}


def write(results: dict, directory) -> list[Path]:
    """results.json, results.md, curves-<problem>.png per problem and profile.png in ``directory``
    (made if needed). A benchmark written there before is replaced whole: its figures that this
    one does not draw again are removed, so no figure describes other results."""
    directory = check_writable_dir(directory, "directory")
    files = [atomic_write(directory / "results.json", lambda f: json.dump(results, f, indent=1), binary=False),
             atomic_write(directory / "results.md", lambda f: f.write(markdown(results) + "\n"), binary=False)]
    files += _figures(results, directory)
    for stale in {*directory.glob("curves-*.png"), directory / "profile.png"} - set(files):
        stale.unlink(missing_ok=True)
    return files


def _figures(results: dict, directory: Path) -> list[Path]:
    """The curves of each problem and the performance profile, when matplotlib is there."""
    from xdl.plots import pyplot, save_figure

    try:
        plt = pyplot()
    except ImportError:  # the plot extra is not installed: the table and the JSON are written
        return []
    files = []
    for problem, per in results["problems"].items():
        fig, ax = plt.subplots(figsize=(6, 4))
        for i, (name, entry) in enumerate(per.items()):
            for j, r in enumerate(x for x in entry["runs"] if "curve" in x):
                ax.plot(np.arange(1, len(r["curve"]) + 1), r["curve"], color=plt.get_cmap("tab10")(i % 10),
                        alpha=0.6, label=name if j == 0 else None)
        function = any("final_cost" in r for e in per.values() for r in e["runs"])
        if function:
            ax.set_yscale("log")
        ax.set(xlabel="step" if function else "epoch", ylabel="f(x)" if function else "dev accuracy", title=problem)
        _legend(ax)
        files.append(save_figure(plt, fig, directory / f"curves-{problem}.png"))
    _, taus, fractions = profile(results)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, fraction in fractions.items():
        ax.step(taus, fraction, where="post", label=name)
    ax.set_xscale("log")
    ax.set(xlabel="τ (factor of the best seconds to target)", ylabel="fraction of problems", ylim=(0, 1.05),
           title="performance profile")
    _legend(ax)
    files.append(save_figure(plt, fig, directory / "profile.png"))
    return files


def crashes(results: dict) -> list[str]:
    """One line per optimizer and problem whose runs raised (a bug in an optimizer, not a
    divergence): how many of its runs, and the first error."""
    lines = []
    for problem, per in results["problems"].items():
        for name, entry in per.items():
            runs = [*entry["search"], *entry["runs"]]
            crashed = [r for r in runs if r["status"] == "crashed"]
            if crashed:
                lines.append(f"{name} on {problem}: {len(crashed)} of {len(runs)} runs crashed; first: "
                             f"{crashed[0]['error']}")
    return lines


def _legend(ax) -> None:
    """The legend of the lines drawn, or a word that there are none."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no run to draw: every one crashed or diverged", ha="center", transform=ax.transAxes)


def _g(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, float):  # 1,733 steps, not 1.73e+03
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value)
