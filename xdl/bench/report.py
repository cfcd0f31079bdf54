"""What `xdl bench optimizers` writes: a Markdown table under a header that says what produced it
and what each column means, the JSON of every run, a PNG of the curves per problem, and
performance profiles (Dolan & Moré 2002): for each optimizer, the fraction of problems on which its
median steps to the target — and, beside it, its median seconds — is within a factor τ of the best
optimizer's. Steps come first: they are exact and the same on every machine, while seconds are one
wall-clock sample per run."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np

from xdl.bench.environment import headline
from xdl.caller import warn_caller
from xdl.data.validation import counted
from xdl.files import atomic_write, check_writable_dir

PROFILE_MEASURES = {"steps": "steps to target", "seconds": "seconds to target"}


def summary(results: dict) -> list[dict]:
    """One row per (problem, optimizer): the tuned lr; the final metric's mean and sample standard
    deviation (ddof 1; None below 2 runs) over the ``n`` seeds that completed; the median steps and
    seconds to the target over every seed, one that did not reach it counting as never (so None
    unless more than half of them reached it: a target reached once in three seeds is not
    reached); how many runs diverged and crashed (search and seeds together)."""
    rows = []
    for problem, per in results["problems"].items():
        for name, entry in per.items():
            runs = [r for r in entry["runs"] if r["status"] == "completed"]
            key = "test_accuracy" if runs and "test_accuracy" in runs[0] else "final_cost"
            values = np.array([r[key] for r in runs], dtype=np.float64)
            train = [r["train_accuracy"] for r in runs if "train_accuracy" in r]
            reached = [r for r in runs if r["steps_to_target"] is not None]
            every = [*entry["search"], *entry["runs"]]
            rows.append({
                "problem": problem, "optimizer": name, "lr": entry["lr"], "metric": key, "n": len(values),
                "mean": float(values.mean()) if len(values) else None,
                # (statistics.stdev sums exactly: NumPy's gave 3 seeds of 0.97 an sd of 1.4e-16, not 0)
                "sd": float(statistics.stdev(values.tolist())) if len(values) > 1 else None,
                "train_accuracy": float(np.mean(train)) if train else None,
                "reached": f"{len(reached)}/{len(entry['runs'])}",
                "steps_to_target": _median_to_target(entry["runs"], "steps_to_target"),
                "seconds_to_target": _median_to_target(entry["runs"], "seconds_to_target"),
                "diverged": sum(r["status"] == "diverged" for r in every),
                "crashed": sum(r["status"] == "crashed" for r in every),
            })
    return rows


def _median_to_target(runs: list[dict], key: str) -> float | None:
    """The median of ``key`` over ``runs``, a run that did not reach the target (or did not
    complete) as ∞; None where that median is ∞ (half the runs or more never reached it)."""
    values = [r[key] if r["status"] == "completed" and r["steps_to_target"] is not None else math.inf for r in runs]
    median = float(np.median(values)) if values else math.inf
    return median if math.isfinite(median) else None


def markdown(results: dict) -> str:
    """results.md: what produced the results and how (environment, protocol, budgets, what each
    column means; a run stopped part way says so), then the table."""
    seeds = results.get("seeds")
    lines = header(results) + [
        f"| problem | optimizer | lr | final (mean ± sd over {counted(seeds, 'seed')}) | train accuracy | "
        "reached target | steps to target | s to target | diverged / crashed (search + runs) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary(results):
        final = "—" if r["mean"] is None else f"{r['metric'].replace('_', ' ')} {r['mean']:.4g}" + \
            (f" ± {r['sd']:.2g}" if r["sd"] is not None else "") + (f" (n = {r['n']})" if r["n"] != seeds else "")
        lines.append(f"| {r['problem']} | {r['optimizer']} | {_g(r['lr'])} | {final} | {_g(r['train_accuracy'])} | "
                     f"{r['reached']} | {_g(r['steps_to_target'])} | {_g(r['seconds_to_target'])} | "
                     f"{r['diverged']} / {r['crashed']} |")
    return "\n".join(lines)


def header(results: dict) -> list[str]:
    """The lines above the table: a title, the environment, an interruption, then the protocol
    and the definitions, one bullet each."""
    lines = ["# xdl bench optimizers", ""]
    if results.get("environment"):
        lines += [headline(results["environment"]), ""]
    if results.get("interrupted"):
        planned = results.get("planned", {})
        total = len(planned.get("problems", ())) * len(planned.get("optimizers", ()))
        done = sum(len(per) for per in results["problems"].values())
        lines += [f"**Interrupted**: the benchmark was stopped after {done} of {total or '?'} (problem, optimizer) "
                  "pairs; the table holds only those, and the rest were not run.", ""]
    low, high = results.get("lr_range") or (None, None)
    if results.get("lr") is not None:
        search = f"no search: every optimizer at lr {results['lr']:g}, {results.get('seeds')} seeds"
    else:
        search = (f"log-uniform random search over [{_g(low)}, {_g(high)}], the same {results.get('trials')} rates "
                  f"for every optimizer (from seed {results.get('seed')}), the best by its search score (below); then "
                  f"{results.get('seeds')} seeds at that rate (seed {results.get('seed')} + 1, + 2, …)")
    lines.append(f"- learning rate: {search}")
    edges = [f"{name} on {problem} ({entry['lr_at_edge']})" for problem, per in results["problems"].items()
             for name, entry in per.items() if entry.get("lr_at_edge")]
    if edges:
        lines.append(f"- **the best rate is the largest or smallest drawn** for {', '.join(edges)}: a better one may "
                     f"lie beyond it (a larger --trials draws nearer the ends of [{_g(low)}, {_g(high)}]; --lr tries "
                     "one outside them)")
    budgets = results.get("budgets") or {}
    if budgets:
        lines.append("- budgets and targets" + (" (--quick)" if results.get("quick") else "") + ": " + "; ".join(
            f"{name} {b['budget']:,} {b['unit']}" + (f" of batch {b['batch_size']}" if b.get("batch_size") else "")
            + ", " + b["target_of"].replace("target", f"{b['target']:g}") for name, b in budgets.items()))
    decay = _decay_line(results)
    if decay:
        lines.append(f"- weight decay: {decay}")
    for term, meaning in (results.get("definitions") or {}).items():
        lines.append(f"- {term}: {meaning}")
    return lines + [""]


def _decay_line(results: dict) -> str:
    """Each optimizer's weight decay as its runs were built: "adamw 0.01 on weights (decoupled);
    sgd, adam: none — …"."""
    decayed, built = {}, {}
    for per in results["problems"].values():
        for name, entry in per.items():
            record = entry.get("optimizer")
            if record is None:
                continue
            built.setdefault(name, record)
            for group in record["groups"]:
                if group.get("weight_decay"):
                    decayed.setdefault(name, {})[(group["weight_decay"], group["parameters"])] = record
    if not built:
        return ""
    parts = [f"{name} " + ", ".join(f"{wd:g} on {where}" for wd, where in by) +
             (" (decoupled)" if next(iter(by.values()))["decoupled_decay"] else "") for name, by in decayed.items()]
    plain = [name for name in built if name not in decayed]
    if plain:
        parts.append(f"{', '.join(plain)}: none")
    weights_only = all(where == "weights" for by in decayed.values() for _, where in by)
    return "; ".join(parts) + (" — biases, batch norm's γ and β and a function's x (not weights) are not decayed"
                               if decayed and weights_only else "")


def profile(results: dict, by: str = "steps") -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """(problems, τ values, optimizer → fraction of problems within τ of the best median steps to
    the target — or, ``by="seconds"``, seconds)."""
    if by not in PROFILE_MEASURES:
        raise ValueError(f"by must be one of {', '.join(PROFILE_MEASURES)}, got {by!r}")
    rows = summary(results)
    names = list(dict.fromkeys(r["optimizer"] for r in rows))
    # the problems every optimizer ran on (an interrupted benchmark's last one lacks some: not theirs to fail)
    problems = [p for p, per in results["problems"].items() if len(per) == len(names)]
    rows = [r for r in rows if r["problem"] in problems]
    times = np.full((len(problems), len(names)), np.inf)
    for r in rows:
        if r[f"{by}_to_target"] is not None:  # (0 steps: the start was on target; ratios need > 0)
            times[problems.index(r["problem"]), names.index(r["optimizer"])] = max(r[f"{by}_to_target"], 1e-9)
    best = times.min(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):  # a problem no optimizer solved: inf/inf, every ratio ∞
        ratios = np.where(np.isfinite(best), times / best, np.inf)
    finite = ratios[np.isfinite(ratios)]
    taus = np.geomspace(1.0, max(2.0, float(finite.max()) * 1.1 if finite.size else 2.0), 200)
    return problems, taus, {n: (ratios[:, i][:, None] <= taus[None, :]).mean(axis=0) for i, n in enumerate(names)}


RESULT_FILES = ("results.json", "results.md")


def earlier_results(directory: Path, what: str = "directory") -> dict | None:
    """The results of the benchmark written in ``directory`` before (None: none there). A
    results.json or results.md there that no benchmark wrote is refused: a benchmark would write
    over a user's file."""
    if not Path(directory).is_dir():  # nothing there yet, or a file: `check_writable_dir` names it (was "holds  that
        return None                    # no optimizer benchmark wrote", the results.json under a file unreadable)
    try:
        earlier = json.loads((directory / "results.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        earlier = None
    except (OSError, ValueError):  # unreadable, or no JSON
        earlier = {}
    if earlier is None and not (directory / "results.md").exists():
        return None
    if not isinstance(earlier, dict) or not isinstance(earlier.get("problems"), dict):
        held = [name for name in RESULT_FILES if (directory / name).exists()]
        raise FileExistsError(f"{what} {str(directory)!r} holds {' and '.join(held)} that no optimizer benchmark "
                              "wrote (this one would write over them): give another directory")
    return earlier


def write(results: dict, directory) -> list[Path]:
    """results.json, results.md, curves-<problem>.png per problem and profile.png in ``directory``
    (made if needed). A benchmark written there before is replaced whole: its figures that this
    one does not draw again are removed (one that cannot be is warned of), so no figure describes
    other results (a directory that holds results no benchmark wrote is refused, `earlier_results`)."""
    directory = check_writable_dir(directory, "directory")
    earlier = earlier_results(directory)
    # the JSON first: results it cannot hold fail before any file is replaced (results.md and the
    # figures were written, and removed, over a results.json that then described other results)
    text, table = json.dumps(results, indent=1), markdown(results)
    drawn = set() if earlier is None else {directory / f"curves-{p}.png" for p in earlier["problems"]}
    files = _figures(results, directory)
    # results.md after the figures (the slow part, where a Ctrl-C or a failing plot lands): written before
    # them, it was left describing this benchmark beside the earlier results.json — or, in a new directory,
    # alone, and the next benchmark there was refused as "results.md that no optimizer benchmark wrote"
    files.insert(0, atomic_write(directory / "results.md", lambda f: f.write(table + "\n"), binary=False))
    # results.json after them: it says what the directory's figures are (`earlier_results`), so a write that
    # fails before it leaves the earlier one, whose figures the next write removes
    files.insert(0, atomic_write(directory / "results.json", lambda f: f.write(text), binary=False))
    # then the earlier figures this one did not draw again. One that cannot be removed (held open by a
    # viewer) is named, not raised: raised before results.json, it lost the results; after, the run's
    # results were all written — and no later write knows of that figure, so the user is told to remove it
    for stale in {*drawn, directory / "profile.png"} - set(files) if earlier is not None else ():
        try:
            stale.unlink(missing_ok=True)
        except OSError as e:
            warn_caller(f"{str(stale)!r} is the earlier benchmark's figure, of results this directory no longer "
                        f"holds, and could not be removed ({e.strerror or e}): remove it by hand")
    return files


def _figures(results: dict, directory: Path) -> list[Path]:
    """The curves of each problem and the performance profile, when matplotlib is there."""
    from xdl.plots import matplotlib, save_figure, subplots

    try:
        colors = matplotlib().colormaps["tab10"]
    except ImportError:  # the plot extra is not installed: the table and the JSON are written
        return []
    files = []
    for problem, per in results["problems"].items():
        fig, ax = subplots(figsize=(6, 4))
        # the problem's kind as the results record it: a function's runs that all diverged hold no final_cost, and
        # their f(x) was drawn as "dev accuracy" per "epoch" from 1, on a linear scale
        kind = (results.get("budgets") or {}).get(problem, {}).get("kind")
        function = kind == "function" if kind is not None else \
            any("final_cost" in r for e in per.values() for r in e["runs"])
        first = 0 if function else 1  # a function's curve starts at f(x₀), after 0 steps; a model's after epoch 1
        for i, (name, entry) in enumerate(per.items()):
            for j, r in enumerate(x for x in entry["runs"] if "curve" in x):
                ax.plot(np.arange(first, len(r["curve"]) + first), r["curve"], color=colors(i % 10),
                        alpha=0.6, label=name if j == 0 else None)
        if function:
            ax.set_yscale("log")
        ax.set(xlabel="step" if function else "epoch", ylabel="f(x)" if function else "dev accuracy", title=problem)
        _legend(ax)
        files.append(save_figure(fig, directory / f"curves-{problem}.png"))
    fig, axes = subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (by, measure) in zip(axes, PROFILE_MEASURES.items()):
        _, taus, fractions = profile(results, by)
        for name, fraction in fractions.items():
            ax.step(taus, fraction, where="post", label=name)
        ax.set_xscale("log")
        ax.set(xlabel=f"τ (factor of the best median {measure})", ylim=(0, 1.05),
               title=f"performance profile: {measure}" + (" (one sample per run)" if by == "seconds" else ""))
        _legend(ax)
    axes[0].set_ylabel("fraction of problems")
    files.append(save_figure(fig, directory / "profile.png"))
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
        return f"{value:,.0f}" if abs(value) >= 999.5 else f"{value:.3g}"  # (999.5 to 3 digits was "1e+03")
    return str(value)
