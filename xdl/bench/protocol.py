"""The protocol: every optimizer gets the same budget on every problem.

For each (problem, optimizer): the learning rate is tuned by log-uniform random search over
[1e-4, 1] with ``trials`` runs (seeded: every optimizer tries the same rates), scored by the final
dev accuracy (classification) or the final value (functions); the best rate is then trained with
``seeds`` seeds. Each run records its curve (per epoch, or per step for functions), the final
train/test accuracy and cost, and the steps and seconds to the problem's target (None when it is
never reached). A run that diverges or raises is recorded with its status and reason, never fatal.

Optimizers are the `xdl.optim.Optimizer` classes by name (`OPTIMIZERS`), or a user's own
``module:Name`` / ``path/to/file.py:Name`` (`load_optimizer`): a subclass of `Optimizer` with the
same interface (its ``update`` over flat buffers, a NumPy reference, optionally a kernel).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import xdl
from xdl.bench.problems import PROBLEMS, Problem, build_model, classification_data, function_cost
from xdl.losses import BinaryCrossEntropy, SoftmaxCrossEntropy
from xdl.optim import SGD, Adam, AdamW, Momentum, Optimizer, RMSprop
from xdl.config import OPTIMIZERS as CONFIG_OPTIMIZERS
from xdl.config import TrainConfig
from xdl.data import batch_bounds
from xdl.data.validation import check_int
from xdl.tensor import no_grad
from xdl.train import Callback, Trainer, fit_many

OPTIMIZERS = {
    "sgd": lambda params, lr: SGD(params, lr=lr),
    "momentum": lambda params, lr: Momentum(params, lr=lr, beta=0.9),
    "nesterov": lambda params, lr: Momentum(params, lr=lr, beta=0.9, nesterov=True),
    "rmsprop": lambda params, lr: RMSprop(params, lr=lr),
    "adam": lambda params, lr: Adam(params, lr=lr),
    "adamw": lambda params, lr: AdamW(params, lr=lr),
}
LR_RANGE = (1e-4, 1.0)


@functools.cache  # a user's file runs once per process, however often its options are checked
def load_optimizer(spec: str):
    """``"module:Name"`` or ``"path/to/file.py:Name"`` → a builder ``(params, lr) -> optimizer``."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise ValueError(f"--optimizer {spec!r}: expected a known name ({', '.join(OPTIMIZERS)}) or module:Name")
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise FileNotFoundError(f"no such file {where!r}")
            module_spec = importlib.util.spec_from_file_location(f"xdl_bench_user_{path.stem}", path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
        cls = getattr(module, name)
    except (ImportError, FileNotFoundError, AttributeError) as e:
        raise ValueError(f"--optimizer {spec!r}: cannot load it ({e})") from None
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise ValueError(f"--optimizer {spec!r}: {name} must be a subclass of xdl.optim.Optimizer")
    return lambda params, lr: cls(params, lr=lr)


def builders(names) -> dict:
    """name → builder for known names and ``module:Name`` specs (named by their class name)."""
    out = {}
    for name in names:
        if name in OPTIMIZERS:
            out[name] = OPTIMIZERS[name]
        elif ":" in name:
            label = name.rpartition(":")[2]
            if label in out:  # results are keyed by the class name: one would replace the other
                raise ValueError(f"--optimizer {name!r}: another optimizer in this benchmark is also named {label!r}; "
                                 "give its class another name")
            out[label] = load_optimizer(name)
        else:
            raise ValueError(f"--optimizer {name!r}: unknown; known: {', '.join(OPTIMIZERS)}, or module:Name")
    return out


class _Curve(Callback):
    """Records, per epoch, the steps and seconds so far (to find when the target was reached)."""

    def __init__(self, steps_per_epoch: int):
        self.steps_per_epoch, self.seconds, self.start = steps_per_epoch, [], None

    def on_train_begin(self, trainer):
        self.start = time.perf_counter()

    def on_epoch_end(self, trainer, record):
        self.seconds.append(time.perf_counter() - self.start)


def run(problem: Problem, build, lr: float, seed: int, quick: bool, data=None) -> dict:
    """One training run: its status, curve, final metrics, steps and seconds to the target."""
    xdl.seed(seed)
    try:
        return _function_run(problem, build, lr, quick) if problem.kind == "function" else \
            _classification_run(problem, build, lr, seed, quick, data)
    except FloatingPointError as e:
        return {"lr": lr, "seed": seed, "status": "diverged", "error": str(e)}
    except Exception as e:  # noqa: BLE001 — a user's optimizer may raise anything; the suite goes on
        return {"lr": lr, "seed": seed, "status": "crashed", "error": f"{type(e).__name__}: {e}"}


def _function_run(problem, build, lr, quick) -> dict:
    start, cost = function_cost(problem.name)
    x = xdl.tensor(start.astype(np.float64), requires_grad=True)
    opt = build([x], lr)
    values, reached, seconds, t0 = [], None, None, time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is caught by its value below
        for step in range(problem.steps(quick)):
            opt.zero_grad()
            value = cost(x)
            value.backward()
            opt.step()
            v = float(value.item())
            values.append(v)
            if not math.isfinite(v):
                return {"lr": lr, "status": "diverged", "error": f"f became {v} at step {step + 1}", "curve": values}
            if reached is None and v <= problem.target:
                reached, seconds = step + 1, time.perf_counter() - t0
        final = float(cost(x).item())
    return {"lr": lr, "status": "completed", "final_cost": final, "score": -final, "steps_to_target": reached,
            "seconds_to_target": seconds, "seconds": time.perf_counter() - t0, "curve": values}


def _classification_run(problem, build, lr, seed, quick, data) -> dict:
    X_train, y_train, X_dev, y_dev, X_test, y_test = data
    model = build_model(problem, X_train.shape[1])
    loss = BinaryCrossEntropy() if problem.details["outputs"] == 1 else SoftmaxCrossEntropy()
    opt = build(model, lr)
    steps_per_epoch = max(1, len(X_train) // problem.batch_size)
    curve = _Curve(steps_per_epoch)
    trainer = Trainer(model, loss, opt, batch_size=problem.batch_size, epochs=problem.steps(quick), seed=seed,
                      callbacks=[curve], progress=False)
    history = trainer.fit(X_train, y_train, dev=(X_dev, y_dev))
    test = trainer.evaluate(X_test, y_test)
    hit = next((i for i, a in enumerate(history["dev_accuracy"]) if a >= problem.target), None)
    return {"lr": lr, "seed": seed, "status": "completed", "train_accuracy": history[-1]["train_accuracy"],
            "dev_accuracy": history[-1]["dev_accuracy"], "test_accuracy": test["accuracy"], "test_cost": test["cost"],
            "score": history[-1]["dev_accuracy"],
            "steps_to_target": None if hit is None else (hit + 1) * len(trainer._batches(len(X_train))),
            "seconds_to_target": None if hit is None else curve.seconds[hit], "seconds": curve.seconds[-1],
            "curve": history["dev_accuracy"]}


def batched_runs(problem: Problem, optimizer: str, rates, seed: int, quick: bool, data) -> list[dict]:
    """The runs of ``rates`` trained at once (`fit_many`, one model per rate, all from ``seed``):
    the same records as `run` gives one by one (to float rounding; seconds are the batch's)."""
    X_train, y_train, X_dev, y_dev, X_test, y_test = data
    d = problem.details
    configs = [TrainConfig(hidden=d["hidden"], activation=d["activation"], batch_norm=d.get("batch_norm", False),
                           dropout=0.0, optimizer=optimizer, lr=float(r), schedule="none", epochs=problem.steps(quick),
                           patience=0, batch_size=problem.batch_size, seed=seed, progress=False) for r in rates]
    results = fit_many(configs, X_train, y_train, dev=(X_dev, y_dev), seed=seed, n_classes=d["outputs"])
    steps = len(batch_bounds(len(X_train), problem.batch_size, 2 if d.get("batch_norm") else 1))
    out = []
    for r, result in zip(rates, results):
        history = result.history
        if result.status == "failed":
            out.append({"lr": float(r), "seed": seed, "status": "diverged", "error": result.error})
            continue
        with no_grad(), result.model.evaluating():
            logits = result.model(X_test)
            test_cost = float(SoftmaxCrossEntropy()(logits, y_test).item())
        seconds = np.cumsum(history["seconds"]).tolist()
        hit = next((i for i, a in enumerate(history["dev_accuracy"]) if a >= problem.target), None)
        out.append({"lr": float(r), "seed": seed, "status": "completed",
                    "train_accuracy": history[-1]["train_accuracy"], "dev_accuracy": history[-1]["dev_accuracy"],
                    "test_accuracy": float((logits.numpy().argmax(axis=1) == y_test).mean()), "test_cost": test_cost,
                    "score": history[-1]["dev_accuracy"],
                    "steps_to_target": None if hit is None else (hit + 1) * steps,
                    "seconds_to_target": None if hit is None else seconds[hit], "seconds": seconds[-1],
                    "curve": history["dev_accuracy"]})
    return out


def check_options(problems, optimizers, seeds: int = 3, trials: int = 8, seed: int = 0,
                  lr: float | None = None) -> dict:
    """Raise ValueError naming the flag (``--seeds``) of the first bad option; return name →
    builder of ``optimizers`` (a user's rule loaded, so a bad one fails before any work)."""
    unknown = [p for p in problems if p not in PROBLEMS]
    if unknown:
        raise ValueError(f"--problem {unknown[0]!r}: unknown; known: {', '.join(PROBLEMS)}")
    for what, value, low in (("seeds", seeds, 1), ("trials", trials, 1), ("seed", seed, 0)):
        check_int(value, f"--{what}", low=low)
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, int | float | np.integer | np.floating)
                           or not math.isfinite(lr) or lr <= 0):  # a rate ≤ 0 or NaN only diverges
        raise ValueError(f"--lr must be a finite number > 0, got {lr!r}")
    return builders(optimizers)


def benchmark(problems, optimizers, seeds: int = 3, trials: int = 8, seed: int = 0, quick: bool = False,
              lr: float | None = None, progress=None, batched: bool | None = None) -> dict:
    """Run the protocol; returns ``{"problems": {problem: {optimizer: {"search": [...], "lr": best,
    "runs": [...]}}}}``. ``lr``: skip the search and use this rate for every optimizer.
    ``batched``: train a search's trials at once with `xdl.train.fit_many` where the problem and
    the optimizer allow it (softmax outputs, an xdl rule); None: on a GPU only. Every argument is
    checked first (`check_options`)."""
    results = None
    for results in benchmark_steps(problems, optimizers, seeds, trials, seed, quick, lr, progress, batched):
        pass
    return results


def benchmark_steps(problems, optimizers, seeds: int = 3, trials: int = 8, seed: int = 0, quick: bool = False,
                    lr: float | None = None, progress=None, batched: bool | None = None) -> Iterator[dict]:
    """`benchmark`, yielding its results as they grow: once before the first (problem, optimizer)
    pair and after each (the same dict, holding the pairs done), so a caller stopped part way
    keeps what was measured."""
    names = list(problems)
    build = check_options(names, optimizers, seeds, trials, seed, lr)
    rates = (10.0 ** np.random.default_rng(seed).uniform(*np.log10(LR_RANGE), trials)).tolist()
    if batched is None:  # where the device allows: a GPU, on which K small models cost about one
        batched = xdl.current_backend().device_type == "cuda"
    results = {"seed": seed, "quick": quick, "seeds": seeds, "trials": trials, "lr": lr, "batched": batched,
               "problems": {}}
    yield results
    for name in names:
        problem = PROBLEMS[name]
        data = classification_data(name) if problem.kind == "classification" else None
        for opt_name, make in build.items():
            if progress:
                progress(f"{name}: {opt_name}")
            if lr is not None:
                search = []
            elif batched and opt_name in CONFIG_OPTIMIZERS and problem.kind == "classification" \
                    and problem.details["outputs"] > 1:
                search = batched_runs(problem, opt_name, rates, seed, quick, data)
            else:
                search = [run(problem, make, r, seed, quick, data) for r in rates]
            good = [s for s in search if s["status"] == "completed" and math.isfinite(s["score"])]
            best = lr if lr is not None else (max(good, key=lambda s: s["score"])["lr"] if good else None)
            runs = [] if best is None else [run(problem, make, best, seed + 1 + i, quick, data) for i in range(seeds)]
            results["problems"].setdefault(name, {})[opt_name] = {"search": search, "lr": best, "runs": runs}
            yield results
