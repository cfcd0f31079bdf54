"""The protocol: every optimizer gets the same budget on every problem.

For each (problem, optimizer): the learning rate is tuned by log-uniform random search over
[1e-4, 1] with ``trials`` runs (seeded: every optimizer tries the same rates), scored by the dev
accuracy it settled at (classification: `settled_accuracy`) or the final value (functions); the best rate is then trained with
``seeds`` seeds. Each run records its seed, its curve (per epoch, or per step for functions), the
final train/test accuracy and cost, and the steps and seconds to the problem's target (None when
it is never reached). A run that diverges or raises is recorded with its status and reason, never
fatal. What each column means — what the seconds include, when a run has diverged, where a
function run starts, which parameters are decayed — is `DEFINITIONS`, written with the results.

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
from xdl.bench.environment import environment
from xdl.bench.problems import (PROBLEMS, START_NOISE, Problem, build_model, classification_data, function_cost,
                                function_start)
from xdl.losses import BinaryCrossEntropy, SoftmaxCrossEntropy
from xdl.optim import Optimizer, param_groups
from xdl.optim.optimizer import rate_range
from xdl.config import OPTIMIZERS as CONFIG_OPTIMIZERS
from xdl.config import TrainConfig
from xdl.data import batch_bounds
from xdl.backend import SEEDS, thread_seed
from xdl.data.validation import check_bool, check_int, check_number
from xdl.files import home_meant
from xdl.tensor import enable_grad, no_grad, role_of
from xdl.train import Trainer, fit_many
from xdl.train.divergence import DIVERGENCE_FACTOR, divergence_factor, far_above

# The weight decay each rule is benchmarked with (the rest: none): AdamW's usual 0.01 (PyTorch's
# default), on weights only — decay on batch norm's γ and β or a bias pulls them to 0 for no
# regularizing gain, and on a function's x it moves the minimum the target is measured against.
WEIGHT_DECAY = {"adamw": 0.01}
MAX_RUNS = 100_000  # --seeds and --trials at most, each (2**64 was an array of that many rates, after the header)


def _configured(name: str, params, lr: float) -> Optimizer:
    """The rule ``name`` as the xdl command builds it (`xdl.config.OPTIMIZERS`, the one table of
    rules by name) with its default hyperparameters, at rate ``lr``; decayed by `WEIGHT_DECAY` on
    the weights only."""
    decay = WEIGHT_DECAY.get(name)
    settings = TrainConfig(lr=lr, schedule="none")  # (the rate checked as a constant one: the protocol's)
    return CONFIG_OPTIMIZERS[name][1](param_groups(params, decay) if decay else params, settings)


OPTIMIZERS = {name: functools.partial(_configured, name) for name in CONFIG_OPTIMIZERS}  # (params, lr) -> Optimizer
LR_RANGE = (1e-4, 1.0)


SETTLED_FRACTION = 0.1  # a search's rate is scored by its dev accuracy over this last part of its epochs


def settled_accuracy(curve) -> float:
    """A model's score in the learning-rate search: its mean dev accuracy over the last
    `SETTLED_FRACTION` of its epochs (at least one). On a dev set of 100 examples the last epoch
    alone tied many rates, and a tie went to the fewest steps — the largest rate, whose accuracy
    swung epoch to epoch: the seeds trained at it then fell short of what a rate that settled gives.
    Rounded to 12 decimals: equal means summed from other accuracies (0.93 and 0.96, 0.94 and 0.95)
    differed in their last bits, and that noise, not `_ranking`'s stated rule, broke their tie."""
    tail = max(1, math.ceil(SETTLED_FRACTION * len(curve)))
    return round(float(np.mean(curve[-tail:])), 12)


DEFINITIONS = {  # written into results.json and atop results.md: what each figure is
    "final": "the last value over the seeds that completed, mean ± sd (the sample standard deviation, ddof 1): a "
             "model's test accuracy after its last epoch, a function's f(x) after its last step",
    "steps to target": "median, over the seeds, of the optimizer steps until the target (a seed that never "
                       "reached it counting as ∞: none when half of them or more never did): a function's updates "
                       "until f ≤ target; a model's mini-batch steps to the end of the first epoch whose dev "
                       "accuracy ≥ target (counted at epoch ends)",
    "seconds to target": "median, over the seeds alike, of the wall-clock seconds of those steps (one sample per run, "
                         "so less steady than the steps): a function's steps (f, its gradient, the update, f read on "
                         "the host); a model's mini-batch steps only, the evaluation of train and dev after each "
                         "epoch left out; the seeds run after the search's runs of the same optimizer, or after one "
                         "untimed run where the search trained batched or did not run (a first run pays for first "
                         "calls: caches, and on a GPU kernel compilation; each run's capture of its step is its own)",
    "diverged": f"the cost became NaN or infinite, or rose above {divergence_factor()} × where it started — f(x₀) "
                "for a function (checked at every step); ln C, the cost of a uniform guess over C classes, for a "
                "model's train cost (checked after every epoch; and 10 × where it started, as the Trainer "
                "checks it); a diverged run is counted, its figures are not",
    "search score": "a rate's score in the learning-rate search: a model's mean dev accuracy over the last "
                    f"{SETTLED_FRACTION:.0%} of its epochs (at least one), a function's final f — among equal "
                    "scores, the fewer steps to the target, then the smaller rate",
    "starts": f"a function run starts at the problem's standard start + {START_NOISE:g}·z, z ~ N(0, I) drawn from "
              "the run's seed (so seeds are replicates, not copies of one deterministic run); a model run starts "
              "from its seed's initial weights and shuffles, on fixed data splits",
}


def load_optimizer(spec: str):
    """``"module:Name"`` or ``"path/to/file.py:Name"`` → a builder ``(params, lr) -> optimizer``.
    A file is read again once it has changed (its modification time and size), as a module is not."""
    where = spec.rpartition(":")[0]
    try:  # (a notebook's second benchmark of an edited rule ran the first version, without a word)
        stat = Path(where).stat() if where.endswith(".py") else None
        version = None if stat is None else (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = None
    return _load_optimizer(spec, version)


@functools.cache  # a user's file runs once per version, however often its options are checked
def _load_optimizer(spec: str, version):
    """`load_optimizer`, for the file's ``version`` (its modification time and size; None: a module)."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise ValueError(f"--optimizer {spec!r}: expected a known name ({', '.join(OPTIMIZERS)}) or module:Name")
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():  # (--optimizer=~/rules.py:Name: the shell left the '~', as --config's)
                home = home_meant(where)
                raise FileNotFoundError(f"no such file {where!r}" + (f"; '~' is not expanded here: did you mean "
                                                                      f"{home!r}?" if home else ""))
            module_spec = importlib.util.spec_from_file_location(f"xdl_bench_user_{path.stem}", path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
        cls = getattr(module, name)
    except (ImportError, FileNotFoundError, AttributeError) as e:
        raise ValueError(f"--optimizer {spec!r}: cannot load it ({e})") from None
    except (Exception, SystemExit) as e:  # the user's file itself fails: its error, not a traceback through xdl
        raise ValueError(f"--optimizer {spec!r}: cannot load it: running {where} raised {type(e).__name__}: {e}") \
            from None
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise ValueError(f"--optimizer {spec!r}: {name} must be a subclass of xdl.optim.Optimizer")
    # one step on a throwaway parameter: a class no run could make, or one with no update (abstract),
    # is refused now, not in every run; a rule whose update fails is benchmarked, its runs recorded as crashed
    x = xdl.Parameter(np.ones(3))
    try:
        opt = cls([x], lr=1e-3)
    except Exception as e:
        raise ValueError(f"--optimizer {spec!r}: {name}(params, lr=...) cannot be made "
                         f"({type(e).__name__}{f': {e}' if str(e) else ''})") from None
    try:
        with enable_grad():  # (under a caller's no_grad the backward failed, and a rule with no update passed)
            (x * x).sum().backward()
        opt.step()
    except NotImplementedError:
        raise ValueError(f"--optimizer {spec!r}: {name} has no update of its own (NotImplementedError): a rule "
                         "subclasses xdl.optim.Optimizer and defines update(...)") from None
    except Exception:
        pass
    return lambda params, lr: cls(params, lr=lr)


def builders(names) -> dict:
    """name → builder for known names and ``module:Name`` specs (named by their class name)."""
    out = {}
    for name in names:
        if not isinstance(name, str):  # a class itself: "argument of type 'type' is not iterable"
            raise TypeError(f"--optimizer: a name ({', '.join(OPTIMIZERS)}) or 'module:Name', got {name!r}" +
                            (f" (a class of this session is '__main__:{name.__name__}')"
                             if isinstance(name, type) and name.__module__ == "__main__" else ""))
        if name not in OPTIMIZERS and ":" not in name:
            raise ValueError(f"--optimizer {name!r}: unknown; known: {', '.join(OPTIMIZERS)}, or module:Name")
        label = name if name in OPTIMIZERS else name.rpartition(":")[2]
        if label in out:  # results are keyed by the name: one would replace the other, in either order
            raise ValueError(f"--optimizer {name!r}: another optimizer in this benchmark is also named {label!r}; "
                             "give its class another name")
        out[label] = OPTIMIZERS[name] if name in OPTIMIZERS else load_optimizer(name)
    return out


def optimizer_record(opt) -> dict:
    """What an optimizer was built with, for the results: its class, whether its decay is
    decoupled (AdamW's p ← p·(1 − lr·wd)) and each group's settings but the rate (the run's ``lr``)
    with the parameters it holds — "weights", "others" (biases, γ, β, a function's x) or "all"."""
    groups = []
    for group in opt.param_groups:
        roles = {role_of(p) for p in group["params"]}
        holds = "weights" if roles == {"weight"} else "all" if "weight" in roles else "others"
        settings = {name: _plain(value) for name, value in group.items() if name not in ("params", "lr")}
        groups.append({"parameters": holds, "tensors": len(group["params"]), **settings})
    return {"class": type(opt).__name__, "decoupled_decay": bool(getattr(opt, "decoupled", False)), "groups": groups}


def _plain(value):
    """A setting as JSON holds it (a NumPy number as a Python one; a schedule or object by its repr)."""
    if isinstance(value, np.generic):
        return value.item()
    return value if isinstance(value, bool | int | float | str | type(None)) else repr(value)


def run(problem: Problem, build, lr: float, seed: int, quick: bool, data=None) -> dict:
    """One training run: its status, curve, final metrics, steps and seconds to the target, and
    the optimizer's settings (``"optimizer"``, `optimizer_record`). The initial weights are drawn
    as after ``xdl.seed(seed)``, from this thread's generator (`thread_seed`): the process's
    generators — a caller's ``xdl.seed`` stream — are left as they were, as `fit_many`'s are. A run
    records its gradients whatever block it is called in, as `Trainer.fit`'s do."""
    try:
        # (not xdl.seed: a benchmark called from Python would reseed its caller's generators; nothing
        # here draws from a device generator — a run's shuffles come from its Trainer's seed). Under a
        # caller's no_grad a function's run recorded no graph, and each was "crashed" at its first backward
        with thread_seed(seed), enable_grad():
            return _function_run(problem, build, lr, seed, quick) if problem.kind == "function" else \
                _classification_run(problem, build, lr, seed, quick, data)
    except FloatingPointError as e:
        return {"lr": lr, "seed": seed, "status": "diverged", "error": str(e)}
    except Exception as e:  # noqa: BLE001 — a user's optimizer may raise anything; the suite goes on
        return {"lr": lr, "seed": seed, "status": "crashed", "error": f"{type(e).__name__}: {e}"}


def _function_run(problem, build, lr, seed, quick) -> dict:
    _, cost = function_cost(problem.name)
    x = xdl.tensor(function_start(problem.name, seed), requires_grad=True)
    opt = build([x], lr)
    record = {"lr": lr, "seed": seed, "optimizer": optimizer_record(opt)}
    budget = problem.steps(quick)
    values, reached, seconds, limit, t0 = [], None, None, None, time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is caught by its value below
        for step in range(budget + 1):  # f after `step` updates; the last one is only measured
            value = cost(x)
            v = float(value.item())
            values.append(v)
            if limit is None:  # (the Trainer's rule for a classifier's cost: a function's, from f(x₀))
                limit = DIVERGENCE_FACTOR * abs(v)
            if not math.isfinite(v) or v > limit:
                error = f"f became {v} at step {step}" if not math.isfinite(v) else \
                    far_above("f", v, f"step {step}", "f(x₀)", limit)
                return record | {"status": "diverged", "error": error, "curve": values}
            if reached is None and v <= problem.target:
                reached, seconds = step, time.perf_counter() - t0
            if step == budget:
                break
            opt.zero_grad()
            value.backward()
            opt.step()
    return record | {"status": "completed", "final_cost": v, "score": -v, "steps_to_target": reached,
                     "seconds_to_target": seconds, "seconds": time.perf_counter() - t0, "curve": values}


def _classification_run(problem, build, lr, seed, quick, data) -> dict:
    X_train, y_train, X_dev, y_dev, X_test, y_test = data
    model = build_model(problem, X_train.shape[1])
    outputs = problem.details["outputs"]
    loss = BinaryCrossEntropy() if outputs == 1 else SoftmaxCrossEntropy()
    opt = build(model, lr)
    record = {"lr": lr, "seed": seed, "optimizer": optimizer_record(opt)}
    trainer = Trainer(model, loss, opt, batch_size=problem.batch_size, epochs=problem.steps(quick), seed=seed,
                      progress=False)  # (it stops a run whose cost rose above DIVERGENCE_FACTOR × ln C itself)
    history = trainer.fit(X_train, y_train, dev=(X_dev, y_dev))
    # the training steps' seconds, as the trainer times them apart from each epoch's evaluation passes
    steps_so_far = np.cumsum(history["step_seconds"]).tolist()
    test = trainer.evaluate(X_test, y_test)
    hit = next((i for i, a in enumerate(history["dev_accuracy"]) if a >= problem.target), None)
    return record | {
        "status": "completed", "train_accuracy": history[-1]["train_accuracy"],
        "dev_accuracy": history[-1]["dev_accuracy"], "test_accuracy": test["accuracy"], "test_cost": test["cost"],
        "score": settled_accuracy(history["dev_accuracy"]),
        "steps_to_target": None if hit is None else (hit + 1) * len(trainer._batches(len(X_train))),
        "seconds_to_target": None if hit is None else steps_so_far[hit], "seconds": steps_so_far[-1],
        "evaluation_seconds": sum(history["seconds"]) - steps_so_far[-1], "curve": history["dev_accuracy"]}


def batched_runs(problem: Problem, optimizer: str, rates, seed: int, quick: bool, data) -> list[dict]:
    """The runs of ``rates`` trained at once (`fit_many`, one model per rate, all from ``seed``):
    the same records as `run` gives one by one (to float rounding), but for time: ``batch_seconds``,
    the whole batch's wall clock (the K trials' steps and their evaluations), and no seconds to the
    target — which no summary reads from a search."""
    X_train, y_train, X_dev, y_dev, X_test, y_test = data
    d = problem.details
    configs = [TrainConfig(hidden=d["hidden"], activation=d["activation"], batch_norm=d.get("batch_norm", False),
                           dropout=0.0, optimizer=optimizer, lr=float(r), schedule="none", epochs=problem.steps(quick),
                           patience=0, batch_size=problem.batch_size, seed=seed, progress=False,
                           weight_decay=WEIGHT_DECAY.get(optimizer, 0.0))  # on weights only, as `run`'s
               for r in rates]
    began = time.perf_counter()
    results = fit_many(configs, X_train, y_train, dev=(X_dev, y_dev), seed=seed, n_classes=d["outputs"])
    batch_seconds = time.perf_counter() - began
    steps = len(batch_bounds(len(X_train), problem.batch_size, 2 if d.get("batch_norm") else 1))
    out = []
    for r, result in zip(rates, results):
        history = result.history
        if result.status == "failed":  # (a cost not finite, or above DIVERGENCE_FACTOR × ln C: as `run`'s Trainer)
            out.append({"lr": float(r), "seed": seed, "status": "diverged", "error": result.error})
            continue
        with no_grad(), result.model.evaluating():
            logits = result.model(X_test)
            test_cost = float(SoftmaxCrossEntropy()(logits, y_test).item())
        hit = next((i for i, a in enumerate(history["dev_accuracy"]) if a >= problem.target), None)
        out.append({"lr": float(r), "seed": seed, "status": "completed",
                    "train_accuracy": history[-1]["train_accuracy"], "dev_accuracy": history[-1]["dev_accuracy"],
                    "test_accuracy": float((logits.numpy().argmax(axis=1) == y_test).mean()), "test_cost": test_cost,
                    "score": settled_accuracy(history["dev_accuracy"]),
                    "steps_to_target": None if hit is None else (hit + 1) * steps,
                    "batch_seconds": batch_seconds, "curve": history["dev_accuracy"]})
    return out


def _available(problem: str) -> bool:
    """Whether ``problem``'s data set can be loaded here (its extra installed)."""
    try:
        xdl.datasets.check_available(problem)
    except ImportError:
        return False
    return True


def check_options(problems, optimizers, seeds: int = 3, trials: int = 8, seed: int = 0,
                  lr: float | None = None) -> dict:
    """Raise ValueError naming the flag (``--seeds``) of the first bad option; return name →
    builder of ``optimizers`` (a user's rule loaded, so a bad one fails before any work)."""
    for flag, names in (("--problem", problems), ("--optimizer", optimizers)):
        if isinstance(names, str):  # a string would be its letters
            raise TypeError(f"{flag}: a list of names, got {names!r}")
    problems, optimizers = list(problems), list(optimizers)  # (any iterable of names: PROBLEMS' keys too)
    for flag, names in (("--problem", problems), ("--optimizer", optimizers)):
        if not names:
            raise ValueError(f"{flag}: no names given; a benchmark needs at least one")
    unknown = [p for p in problems if p not in PROBLEMS]
    if unknown:
        raise ValueError(f"--problem {unknown[0]!r}: unknown; known: {', '.join(PROBLEMS)}")
    for name in problems:  # a data set's package missing is said now, not after the other problems ran
        try:
            xdl.datasets.check_available(name)
        except ImportError as e:  # (named as a problem, not a flag: the default list may hold it)
            others = [p for p in problems if p != name and _available(p)]
            rest = f" (or run the others: --problem {' '.join(others)})" if others else ""
            raise ImportError(f"problem {name}: {e}{rest}") from None
    for flag, names in (("--problem", problems), ("--optimizer", optimizers)):
        twice = next((name for i, name in enumerate(names) if name in names[:i]), None)
        if twice is not None:  # one row would hold one of them: the table would count what was not run
            raise ValueError(f"{flag} {twice!r} is given twice; name each once")
    for what, value, low, high in (("seeds", seeds, 1, MAX_RUNS), ("trials", trials, 1, MAX_RUNS),
                                   ("seed", seed, 0, None)):
        check_int(value, f"--{what}", low=low, high=high,
                  expected=f"an integer in [{low}, {high:,}]" if high else None)
    if int(seed) + int(seeds) >= SEEDS:  # the runs' seeds, seed + 1 … seed + seeds (Python's ints: no int64 wrap)
        raise ValueError(f"--seed {seed} with --seeds {seeds}: the runs are seeded {seed} + 1 … {seed} + {seeds}, "
                         f"which must stay below 2**64; give a smaller --seed")
    if lr is not None:  # > 0 (0 trains nothing), and one float32's models can hold: else every run fails
        low, high = rate_range(np.float32)
        check_number(lr, "--lr", f"a number in float32's positive range [{low:.3g}, {high:.3g}]",
                     lambda rate: low <= rate <= high)
    return builders(optimizers)


def benchmark(problems, optimizers, seeds: int = 3, trials: int = 8, seed: int = 0, quick: bool = False,
              lr: float | None = None, progress=None, batched: bool | None = None) -> dict:
    """Run the protocol; returns ``{"problems": {problem: {optimizer: {"search": [...], "lr": best,
    "runs": [...], "optimizer": its settings as built}}}}`` beside what produced them
    (``"environment"``), the options, the lr range, each problem's budget and target (``"budgets"``)
    and what each figure means (``"definitions"``). ``lr``: skip the search and use this rate for
    every optimizer.
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
    names = problems if isinstance(problems, str) else list(problems)  # (read twice: an iterable once)
    build = check_options(names, optimizers, seeds, trials, seed, lr)
    # as Python's numbers: a NumPy one (np.int64 seeds) passed the checks, then failed results.md's
    # plural and results.json's dump once every run was over
    seeds, trials, seed, lr = int(seeds), int(trials), int(seed), None if lr is None else float(lr)
    check_bool(quick, "quick")
    if batched is not None:
        check_bool(batched, "batched")
    if progress is not None and not callable(progress):  # (it failed as "'int' object is not callable" at the first pair)
        raise TypeError(f"progress: expected a function taking each line of progress, or None, got {progress!r}")
    rates = (10.0 ** np.random.default_rng(seed).uniform(*np.log10(LR_RANGE), trials)).tolist()
    if batched is None:  # where the device allows: a GPU, on which K small models cost about one
        batched = xdl.current_backend().device_type == "cuda"
    results = {"environment": environment(xdl.current_backend()),
               "seed": seed, "quick": quick, "seeds": seeds, "trials": None if lr is not None else trials, "lr": lr,
               "lr_range": None if lr is not None else list(LR_RANGE), "batched": batched,
               "planned": {"problems": names, "optimizers": list(build)},
               "budgets": {name: budget(PROBLEMS[name], quick) for name in names},
               "definitions": DEFINITIONS, "problems": {}}
    yield results
    for name in names:
        problem = PROBLEMS[name]
        data = classification_data(name) if problem.kind == "classification" else None
        for opt_name, make in build.items():
            if progress:
                progress(f"{name}: {opt_name}")
            warmed = False  # whether the search ran this optimizer's model alone (`run`) already
            if lr is not None:
                search = []
            # (an xdl rule by its name: a user's class named "sgd" was searched as xdl's SGD)
            elif batched and make is OPTIMIZERS.get(opt_name) and problem.kind == "classification" \
                    and problem.details["outputs"] > 1:
                search = batched_runs(problem, opt_name, rates, seed, quick, data)
            else:
                search, warmed = [run(problem, make, r, seed, quick, data) for r in rates], True
            good = [s for s in search if s["status"] == "completed" and math.isfinite(s["score"])]
            best = lr if lr is not None else (max(good, key=_ranking)["lr"] if good else None)
            if best is not None and not warmed:  # untimed: a first run pays for first calls (DEFINITIONS)
                run(problem, make, best, seed, quick, data)
            runs = [] if best is None else [run(problem, make, best, seed + 1 + i, quick, data) for i in range(seeds)]
            built = [r.pop("optimizer") for r in [*runs, *search] if "optimizer" in r]  # the same but for lr
            results["problems"].setdefault(name, {})[opt_name] = {
                "search": search, "lr": best, "runs": runs, "optimizer": built[0] if built else None,
                # a best rate that is the largest (smallest) drawn: a wider range may hold a better one
                "lr_at_edge": None if lr is not None or best is None or len(rates) < 3 else
                "largest" if best == max(rates) else "smallest" if best == min(rates) else None}
            yield results


def _ranking(trial: dict) -> tuple:
    """How a search's trials are ordered (the best is the largest): the score; among equal scores
    (a dev accuracy of 100 examples moves by 0.01), the fewer steps to the target, then the smaller
    rate — a stated rule, not the order the rates were drawn in."""
    steps = trial["steps_to_target"]
    return trial["score"], -(math.inf if steps is None else steps), -trial["lr"]


def budget(problem: Problem, quick: bool) -> dict:
    """A problem's budget and target as the results state them."""
    function = problem.kind == "function"
    return {"kind": problem.kind, "budget": problem.steps(quick), "unit": "steps" if function else "epochs",
            "batch_size": None if function else problem.batch_size, "target": problem.target,
            "target_of": "f(x) ≤ target" if function else "dev accuracy ≥ target"}
