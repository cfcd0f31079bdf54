"""`tune`: a hyperparameter search — which points to try (the strategy) and how to train them (the
execution) — recorded in a `Study`.

Strategies (each yields rounds of points; a later round may look at the study):

    random           n points drawn at once from the space (seeded: the same seed, the same points)
    grid             about n^(1/d) values per dimension (for comparison: wasteful when few matter)
    coarse_to_fine   ``rounds`` rounds; each next round samples a box around the best trial so far,
                     ``shrink`` times the previous box's width in every dimension's own scale
    tpe              Optuna's TPE sampler through its ask-and-tell interface (the ``tune`` extra),
                     in every dimension's transformed scale; ``rounds`` batches of asks, each batch
                     told its results before the next is asked

Executions: "sequential" trains one trial at a time with `Trainer` (the course's panda);
"batched" trains the trials that share shapes together with `xdl.train.fit_many` (caviar);
"dask" sends such batches to Dask workers (one machine's cores, or a cluster).
Each trial is ``base`` (a `TrainConfig`) with the point's values; its model starts from
``base.seed`` unless the space searches ``seed``, and all trials see the same batches.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from xdl.backend import seed as seed_backend
from xdl.config import TrainConfig
from xdl.train.many import SHARED, fit_many
from xdl.tune.pruning import BatchPruning, Pruning, recorded_at, rungs
from xdl.tune.space import DEFAULT_SPACE, Space, python_value
from xdl.tune.study import Study, Trial

STRATEGIES = ("random", "grid", "coarse_to_fine", "tpe")
EXECUTIONS = ("sequential", "batched", "dask")
SHRINK = 0.5  # coarse to fine: each round's box is this fraction of the previous one's width


def tune(X, y, dev, space=None, trials: int = 32, strategy: str = "random", execution: str = "sequential",
         rounds: int = 2, seed: int = 0, base: TrainConfig | None = None, directory=None, resume: bool = False,
         standardize=None, progress: bool | None = False, scheduler: str | None = None,
         halving: int | None = None, min_epochs: int = 1, dtype="float32") -> Study:
    """Search ``space`` (a `Space`, a dict, or None for `DEFAULT_SPACE`) with ``trials`` trials,
    training on ``(X, y)`` and scoring on ``dev = (X_dev, y_dev)`` by the dev accuracy each model
    ends with. ``directory``: where the study keeps ``trials.json`` (and ``resume=True`` continues
    it). ``execution="dask"`` spreads batches of trials over a `LocalCluster`, or over the
    cluster whose scheduler is at ``scheduler``. ``halving=η`` stops poor trials early at the rungs
    min_epochs·ηʳ (`xdl.tune.pruning`: asynchronous successive halving; such trials are "pruned").
    ``dtype``: the models' (float64 makes every execution agree to rounding). Returns the `Study`;
    ``study.best`` is the best trial.

    >>> import xdl
    >>> from xdl.config import TrainConfig
    >>> from xdl.data import split
    >>> X, y = xdl.datasets.digits()
    >>> s = split(X[:600], y[:600], seed=0)
    >>> study = tune(s.X_train, s.y_train, (s.X_dev, s.y_dev), {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=4,
    ...              base=TrainConfig(hidden=[32], epochs=3, patience=0), execution="batched")
    >>> len(study.trials), study.best.dev_accuracy > 0.5
    (4, True)
    """
    base = base or TrainConfig()
    if not isinstance(base, TrainConfig):
        raise TypeError(f"base must be a TrainConfig, got {type(base).__name__}")
    space = space if isinstance(space, Space) else Space.from_dict(DEFAULT_SPACE if space is None else space)
    if isinstance(trials, bool) or not isinstance(trials, int | np.integer) or trials <= 0:
        raise ValueError(f"trials must be a positive integer, got {trials!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if execution not in EXECUTIONS:
        raise ValueError(f"execution must be one of {', '.join(EXECUTIONS)}, got {execution!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int | np.integer) or not 1 <= rounds <= trials:
        raise ValueError(f"rounds must be an integer in [1, trials], got {rounds!r}")
    if halving is not None and (isinstance(halving, bool) or not isinstance(halving, int | np.integer) or halving < 2):
        raise ValueError(f"halving must be an integer η ≥ 2 (keep the top 1/η at each rung), got {halving!r}")
    if isinstance(min_epochs, bool) or not isinstance(min_epochs, int | np.integer) or min_epochs < 1:
        raise ValueError(f"min_epochs must be a positive integer, got {min_epochs!r}")
    if dev is None:
        raise ValueError("dev=(X_dev, y_dev) is needed: trials are compared on the dev set")
    meta = {"space": space.spec(), "trials": int(trials), "strategy": strategy, "rounds": int(rounds),
            "seed": int(seed), "base": _options(base), "halving": halving, "min_epochs": int(min_epochs)}
    study = Study.resume(meta, directory) if resume else Study(meta, directory)
    if np.dtype(dtype).kind != "f":
        raise ValueError(f"dtype must be a floating dtype (float32 or float64), got {dtype!r}")
    train = {"sequential": _sequential, "batched": _batched, "dask": _dask}[execution]
    search = _Search(base, X, y, dev, study, standardize, progress, scheduler,
                     rungs(min_epochs, halving, base.epochs) if halving else [], halving, str(np.dtype(dtype)))
    number = 0
    for round_, points in _rounds(space, trials, strategy, rounds, seed, study):
        done = study.finished()
        todo = []
        for params in points:
            if number in done and done[number].params != params:
                raise ValueError(f"--resume: trial {number} of the saved study has {done[number].params}, this "
                                 f"search draws {params}; the space or seed changed")
            if number not in done:
                todo.append((number, params))
            number += 1
        if todo:
            train(todo, round_, search)
    return study


def _rounds(space: Space, trials: int, strategy: str, rounds: int, seed: int, study: Study):
    if strategy == "random":
        yield 0, space.sample(np.random.default_rng([seed, 0]), trials)
    elif strategy == "grid":
        yield 0, space.grid(trials)
    elif strategy == "tpe":
        yield from _tpe(space, trials, rounds, seed, study)
    else:  # coarse to fine
        current = space
        for r, n in enumerate(_round_sizes(trials, rounds)):
            yield r, current.sample(np.random.default_rng([seed, r]), n)
            best = study.best
            if best is None:
                continue  # every trial failed: search the same box again
            current = zoom(current, best.params)


def _round_sizes(trials: int, rounds: int) -> list[int]:
    return [trials // rounds + (r < trials % rounds) for r in range(rounds)]


def _tpe(space: Space, trials: int, rounds: int, seed: int, study: Study):
    """Rounds of points asked of an Optuna study (TPE, seeded), each told its trials' dev accuracy
    (failed ones as failed) from ``study`` before the next round is asked — so a resumed search,
    whose finished trials are in ``study``, asks the same points again."""
    try:
        import optuna
    except ImportError:
        raise ImportError("strategy 'tpe' needs Optuna: pip install 'xdl[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    asker = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    distributions = {name: optuna.distributions.CategoricalDistribution(list(range(len(d.values))))
                     if d.kind == "choice" else optuna.distributions.FloatDistribution(*d.box)
                     for name, d in space.dimensions.items()}
    number = 0
    for r, n in enumerate(_round_sizes(trials, rounds)):
        asked = [asker.ask(distributions) for _ in range(n)]
        yield r, [{**space.fixed, **{name: d.value([t.params[name]])[0] if d.kind == "choice"
                                     else python_value(d.value(t.params[name]))
                                     for name, d in space.dimensions.items()}} for t in asked]
        finished = study.finished()
        for i, t in enumerate(asked):
            result = finished.get(number + i)
            if result is not None and result.ok:
                asker.tell(t, result.dev_accuracy)
            else:
                asker.tell(t, state=optuna.trial.TrialState.FAIL)
        number += n


def zoom(space: Space, center: dict, shrink: float = SHRINK) -> Space:
    """``space`` narrowed, in every dimension's own scale, to a box ``shrink`` times as wide
    around ``center`` (moved inside the old box where it would cross an edge)."""
    boxes = {}
    for name, d in space.dimensions.items():
        low, high = d.box
        width = (high - low) * shrink
        if d.kind == "choice":
            width = max(1.0, np.ceil(width))
        start = min(max(d.coordinate(center[name]) - width / 2, low), high - width)
        boxes[name] = (start, start + width)
    return space.narrowed(boxes)


def trial_config(base: TrainConfig, params: dict, number: int) -> TrainConfig:
    return TrainConfig.from_dict({**_options(base), **params}, source=f"trial {number}")


def _options(config: TrainConfig) -> dict:
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in ("resume", "out", "progress")}


def _trial(number, round_, params, history=None, status="completed", error=None, seconds=0.0) -> Trial:
    if history is None or not len(history):
        return Trial(number, round_, params, "failed" if error else status, error, seconds=seconds)
    final = history.final()
    curves = {k: history[k] for k in ("train_cost", "dev_cost", "dev_accuracy", "lr")}
    return Trial(number, round_, params, status, error, final["dev_accuracy"], final["dev_cost"], len(history),
                 seconds, curves)


@dataclass
class _Search:
    """What every trial of a search is trained with."""

    base: TrainConfig
    X: object
    y: object
    dev: tuple
    study: Study
    standardize: object
    progress: bool | None
    scheduler: str | None
    rungs: list[int]
    eta: int | None
    dtype: str

    def batch_pruning(self) -> list:
        """A `BatchPruning` with the rung values recorded so far, if the search halves."""
        return [BatchPruning(recorded_at(self.study, self.rungs), self.eta)] if self.rungs else []


def _sequential(todo, round_, search: _Search) -> None:
    """Panda: one trial at a time, each recorded as soon as it ends."""
    from xdl.train.trainer import _progress_bar

    study, X, y, dev = search.study, search.X, search.y, search.dev
    bar = _progress_bar(search.progress, total=len(todo))
    for number, params in todo:
        start = time.perf_counter()
        try:
            config = trial_config(search.base, params, number)
        except (TypeError, ValueError) as e:
            study.add([_trial(number, round_, params, error=f"invalid combination: {e}")])
            continue
        seed_backend(config.seed)
        model = config.build_model(int(np.prod(X.shape[1:])), _n_classes(y, dev), search.standardize)
        model.astype(search.dtype)
        pruning = Pruning(recorded_at(study, search.rungs), search.eta) if search.rungs else None
        trainer = config.build_trainer(model, callbacks=[pruning] if pruning else [])
        trainer.progress = search.progress  # the running trial's own bar, with its live costs
        try:
            history = trainer.fit(X, y, dev=dev)
        except FloatingPointError as e:
            study.add([_trial(number, round_, params, trainer.history, "failed", str(e),
                              time.perf_counter() - start)])
        else:
            status = "completed" if history.stopped_epoch is None else \
                "pruned" if pruning is not None and pruning.pruned_at else "stopped"
            study.add([_trial(number, round_, params, history, status, seconds=time.perf_counter() - start)])
        bar.update(1)
    bar.close()


def _batched(todo, round_, search: _Search) -> None:
    """Caviar: the trials that share shapes trained together by `fit_many`, a group at a time."""
    for group in _groups(todo, round_, search.base, search.study):
        outcomes, seconds = train_group([c for _, _, c in group], search.X, search.y, search.dev, search.base.seed,
                                        search.standardize, search.progress, search.batch_pruning(), search.dtype)
        search.study.add([_trial(number, round_, params, *outcome, seconds) for (number, params, _), outcome in
                          zip(group, outcomes)])


def _dask(todo, round_, search: _Search) -> None:
    """Caviar spread over Dask workers (a `LocalCluster` of one worker per core, or the scheduler
    at ``search.scheduler``): each worker trains batches of trials that share shapes with
    `fit_many`; a batch lost with its worker is run again elsewhere by Dask, and each result is
    recorded once, as it arrives."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ImportError("execution 'dask' needs dask.distributed: pip install 'xdl[tune]'") from None
    cluster = None if search.scheduler else LocalCluster(threads_per_worker=1, processes=True, dashboard_address=None)
    with Client(search.scheduler or cluster) as client:
        workers = max(1, len(client.scheduler_info()["workers"]))
        groups = _groups(todo, round_, search.base, search.study, parts=workers)
        data = client.scatter([search.X, search.y, search.dev], broadcast=True)
        pruning = search.batch_pruning()  # the rung values recorded before this round
        futures = {client.submit(train_group, [c for _, _, c in group], *data, search.base.seed, search.standardize,
                                 False, pruning, search.dtype, pure=False, retries=2): group for group in groups}
        for future in as_completed(futures):
            outcomes, seconds = future.result()
            search.study.add([_trial(number, round_, params, *outcome, seconds) for (number, params, _), outcome in
                              zip(futures[future], outcomes)])
    if cluster is not None:
        cluster.close()


def _groups(todo, round_, base, study, parts: int = 1) -> list[list]:
    """The trials to train, as lists of (number, params, config) that share `SHARED` options (an
    invalid combination is recorded as failed at once); each split in up to ``parts`` batches."""
    groups: dict[tuple, list] = {}
    for number, params in todo:
        try:
            config = trial_config(base, params, number)
        except (TypeError, ValueError) as e:
            study.add([_trial(number, round_, params, error=f"invalid combination: {e}")])
            continue
        key = tuple(repr(getattr(config, k)) for k in SHARED) + (config.dropout > 0,)
        groups.setdefault(key, []).append((number, params, config))
    batches = []
    for group in groups.values():
        size = -(-len(group) // parts)
        batches += [group[i:i + size] for i in range(0, len(group), size)]
    return batches


def train_group(configs, X, y, dev, seed, standardize=None, progress=False, callbacks=(), dtype="float32"):
    """Train ``configs`` together (`fit_many`): ([(history, status, error)] per config, seconds per
    trial) — what a search records; a plain function, so a Dask worker can run it."""
    start = time.perf_counter()
    results = fit_many(configs, X, y, dev=dev, seed=seed, dtype=dtype, n_classes=_n_classes(y, dev),
                       standardize=standardize, callbacks=callbacks, progress=progress,
                       capture="auto" if configs[0].capture else False)
    seconds = (time.perf_counter() - start) / len(configs)  # each trial's share of the batch
    return [(r.history, r.status, r.error) for r in results], seconds


def _n_classes(y, dev) -> int:
    return int(max(np.max(y), np.max(dev[1]))) + 1
