"""`tune`: a hyperparameter search — which points to try (the strategy) and how to train them (the
execution) — recorded in a `Study`.

Strategies (each yields rounds of points; a later round may look at the study):

    random           n points drawn at once from the space (seeded: the same seed, the same points)
    grid             about n^(1/d) values per dimension (for comparison: wasteful when few matter)
    coarse_to_fine   ``rounds`` rounds; each next round samples a box around the best trial so far,
                     ``shrink`` times the previous box's width in every dimension's own scale
    tpe              Optuna's TPE sampler through its ask-and-tell interface (the ``tune`` extra),
                     in every dimension's transformed scale; ``rounds`` batches of asks, each batch
                     told its results before the next is asked: the first drawn at random (TPE's
                     startup trials), each later one by TPE from the results so far

Executions: "sequential" trains one trial at a time with `Trainer` (the course's panda);
"batched" trains the trials that share shapes together with `xdl.train.fit_many` (caviar);
"dask" sends such batches to Dask workers (one machine's cores, or a cluster).
Each trial is ``base`` (a `TrainConfig`) with the point's values; its model starts from
``base.seed`` (no space searches ``seed``), and all trials see the same batches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xdl.backend import current_backend, use
from xdl.caller import keywords_of, warn_caller
from xdl.config import ADDED_OPTIONS, DEFAULT_PRECISION, IMAGE_SHAPES, TrainConfig, unread_options
from xdl.data import Augment, check_features, check_labels
from xdl.data.validation import (check_bool, check_dev_pair, check_feature_names, check_int, check_number,
                                 counted, feature_names, note_label_width, rows)
from xdl.extras import import_error
from xdl.files import check_directory_name, check_reachable, check_writable_dir, missing_directories, python_value
from xdl.tensor import to_numpy
from xdl.train.interrupt import Interrupted
from xdl.train.many import SHARED, ManyTrainer, check_standardize
from xdl.train.progress import progress_bar
from xdl.train.provenance import data_digest
from xdl.lock import DirectoryLock, check_not_in_use, took_over_note
from xdl.tune.pruning import BatchPruning, Pruning, recorded_at, rungs
from xdl.tune.space import DEFAULT_SPACE, NOT_SEARCHED, SAMPLING, Space, value_key
from xdl.tune.study import TRIALS_FILE, Study, Trial, read_trials, saved_study

STRATEGIES = ("random", "grid", "coarse_to_fine", "tpe")
EXECUTIONS = ("sequential", "batched", "dask")
CONNECT_SECONDS = 10  # how long a search waits for the Dask scheduler it is given
SHRINK = 0.5  # coarse to fine: each round's box is this fraction of the previous one's width
ROUNDS = 2  # coarse_to_fine and tpe: rounds by default (fewer when there are fewer trials)
TPE_MAX_SEED = 2**32 - 1  # the largest seed Optuna's TPESampler takes (a legacy RandomState's)
# a study's meta keys that are `xdl tune` options of the same name (its dtype and sampling are not)
FLAGGED_META = ("trials", "strategy", "rounds", "seed", "halving", "min_epochs")
MAX_TRIALS = 1_000_000  # a search's trials at most (a grid of 2**64 was built point by point, without end)
# Base options a resumed search may change, as it may change its execution: they change no trial's
# result beyond rounding — how a step runs (a captured step computes what an eager one does; another
# backend, the same float32 arithmetic in another order) — or nothing a search does (it writes no
# checkpoint and diagnoses nothing). The rest shape each trial, and so does precision (tf32 products
# are float32 ones with a 10-bit mantissa), dtype and the data: a resume mixing them is refused.
RESUME_MAY_CHANGE = ("backend", "capture", "checkpoint_every", "base_error")
# Optuna's keywords of create_study, load_study and study.optimize that tune does not take → its way here (as
# `xdl.train.many.BATCH_OPTIONS_ELSEWHERE` for fit_many): Python's "unexpected keyword argument 'n_trials'" said
# neither that tune has the option nor under which name
OPTUNA_OPTIONS_ELSEWHERE = {
    "n_trials": "Optuna's n_trials is trials here: tune(X, y, dev, space, trials=32)",
    "direction": "a search maximizes the dev accuracy (study.best_value, each trial's value), its one objective; each "
                 "trial's dev_cost is recorded beside it (study.trials_dataframe())",
    "directions": "a search has one objective, the dev accuracy it maximizes (study.best_value); each trial's dev_cost "
                  "is recorded beside it (study.trials_dataframe())",
    "sampler": "Optuna's sampler is strategy here: strategy='tpe' (Optuna's TPESampler, seeded by seed=…), 'random', "
               "'grid' or 'coarse_to_fine'",
    "pruner": "Optuna's pruner is halving here: halving=3 stops poor trials at the rungs min_epochs·3^r (asynchronous "
              "successive halving, as Optuna's SuccessiveHalvingPruner(reduction_factor=3))",
    **dict.fromkeys(("study_name", "storage"), "a study is kept in a directory here: tune(..., directory='xdl-tune') "
                                               "writes its trials.json, and Study.load('xdl-tune') reads it back"),
    "load_if_exists": "Optuna's load_if_exists is resume here: tune(..., directory=d, resume=True) continues the study "
                      "in d (a new search refuses a directory that holds one)",
    "n_jobs": "trials train together with execution='batched' (those that share shapes as one batch: fit_many) or "
              "'dask' (batches over Dask workers); 'sequential' trains one at a time",
    "callbacks": "Optuna's callbacks (called after each trial) are report here: report=print is called with each "
                 "trial's line as it is recorded; a trial's Trainer takes no callback of the caller's",
    "show_progress_bar": "Optuna's show_progress_bar is progress here: progress=True (None: a bar on a terminal only)",
    "catch": "not needed: a trial that fails (diverged, an invalid combination, out of memory) is recorded as failed "
             "(its Trial.error says why) and the search goes on",
}


def tune(X, y, dev, space=None, trials: int = 32, strategy: str = "random", execution: str = "sequential",
         rounds: int | None = None, seed: int = 0, base: TrainConfig | None = None, directory=None,
         resume: bool = False, standardize=None, progress: bool | None = False, scheduler=None,
         halving: int | None = None, min_epochs: int = 1, dtype="float32", report=None, timeout=None,
         **optuna_options) -> Study:
    """Search ``space`` (a `Space`, a dict, or None for `DEFAULT_SPACE` less what ``base``'s optimizer
    and schedule do not read; what it searches takes the place of ``base``'s value) with ``trials`` trials,
    training on ``(X, y)`` and scoring on ``dev = (X_dev, y_dev)`` by the dev accuracy each model
    ends with. ``seed`` seeds the strategy's draws; every trial's model and batches come from
    ``base.seed``. ``rounds``: coarse_to_fine and tpe (default 2, or ``trials`` if fewer; tpe's
    first round is drawn at random, TPE's startup, and each later one by TPE). ``grid``
    trains up to ``trials`` points (`Space.grid`: ⌊trials^(1/d)⌋ values per range, every choice).
    ``directory``: where the study keeps ``trials.json`` (created if needed; ``resume=True``
    continues the study there, and a new search refuses a directory that holds one).
    ``execution="dask"`` spreads batches of trials over a `LocalCluster` (its workers are new
    processes: call it from a script under ``if __name__ == "__main__":``), or over the cluster
    whose scheduler is at ``scheduler`` (a batch lost with its worker runs again; one that killed each
    worker that ran it, Dask's ``allowed-failures`` + 1, fails its trials; a scheduler lost is a
    ConnectionError). ``halving=η`` stops poor trials early at the rungs
    min_epochs·ηʳ (`xdl.tune.pruning`: asynchronous successive halving; such trials are "pruned").
    ``dtype``: the models' (float64 makes every execution agree to rounding — but for ``halving``,
    whose asynchronous promotions depend on the order in which trials reach a rung: another
    execution, or a resume, may prune others — and so, under ``tpe``, whose later rounds are drawn
    from the results, draw others). ``standardize``: a
    `xdl.nn.Standardize` layer every model starts with, "fit" for each trial's own fitted on ``X``
    as `TrainConfig.build_standardize` does (on augmented copies too, where the trial augments),
    or None. ``scheduler``: an address (connected to before anything is made: one where no scheduler
    answers is an error) or a connected ``distributed.Client`` (used, and left open); its workers train
    with ``base``'s backend and precision (the search's own local cluster: the search's), set per
    process (`xdl.use`): start them with one thread each (``dask worker --nthreads 1``), or two
    batches at once on one worker set each other's. Elsewhere trials train at the precision of the backend in use
    (`xdl.use`; ``xdl tune`` sets it from ``--precision``): on a GPU a ``base.precision`` set to another is refused
    before any work, one left at the default takes the backend's (`TrainConfig.check_precision_in_use`), and the
    study records the one they trained at (its base, best.toml: `TrainConfig.at_precision_in_use`). ``progress``:
    True, False, or None for a bar on a terminal only. ``report``: called with a line for each trial
    as it is recorded (`Trial.summary` and the best so far, as Optuna logs "Trial 3 finished …";
    ``print``, say; ``xdl tune`` prints them on stderr), or None. Every argument is checked before anything is
    trained or written. While it runs, the search holds ``directory`` alone (`xdl.lock`): a
    second search there, new or resumed, is refused (`StudyInUseError`, naming the holder). A
    resume compares what makes each trial's result — the space, trials, strategy, rounds, seed,
    halving, dtype, the data, ``standardize`` and every base option but `RESUME_MAY_CHANGE` and those
    the space sets — with the saved study's. Returns the `Study`; ``study.best`` is the best trial
    that trained to its end. Ctrl-C stops the search with `xdl.train.Interrupted`, whose ``.study``
    holds the trials that had finished (as ``directory`` does, where ``resume=True`` goes on); so
    does SIGTERM while a trial trains in this process (its `Trainer` takes the signal), but between
    trials, or while a Dask search waits on its workers, SIGTERM ends the process as Python's
    default does (the ``xdl tune`` command takes it as Ctrl-C throughout). Another error that ends
    the search once a trial has finished (a ``report`` that raised, a lost Dask scheduler) carries
    the study too, as its ``.study``. ``timeout``: seconds (> 0), or None for no budget — as Optuna's
    ``optimize(timeout=)``, once they have passed since the call began (`clock`) no new trial starts (sequential:
    between trials; batched: between groups; dask: no round's batches are sent, those sent finish — all of a round's
    are on the cluster's queue together, so that workers that join, or an adaptive cluster's, take them) and the
    study returned holds every trial that finished, its ``stopped`` saying that the budget ended it (None where the
    search ran to its end); the trials not started are not recorded (none may start, as in Optuna's,
    whose budget is checked before its first trial too: a ``directory`` this call made is then removed, empty), and
    with ``directory`` the same call with ``resume=True`` (with or without a timeout: it is this call's, not the
    study's) goes on where it stopped, as after a Ctrl-C. ``optuna_options``: none is taken; Optuna's
    ``n_trials=``, ``load_if_exists=``, … is refused saying the way here (`OPTUNA_OPTIONS_ELSEWHERE`).

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
    for name in optuna_options:  # (before any check or work: a misspelt option too)
        way = OPTUNA_OPTIONS_ELSEWHERE.get(name, f"not an option of tune (its options: {', '.join(TUNE_OPTIONS)})")
        raise TypeError(f"tune() takes no option {name}=: {way}")
    started = clock()  # (Optuna's timeout counts from the call's start: checking the data and a cluster's start too)
    given_precision = DEFAULT_PRECISION if base is None else getattr(base, "precision", None)
    # (a cluster given trains with base's own: `worker_backend`)
    trained_on = current_backend() if execution != "dask" or scheduler is None else None
    space, base, rounds, dtype, study = check_search(space, trials, strategy, execution, rounds, seed, base,
                                                     directory, resume, halving, min_epochs, dtype,
                                                     scheduler=scheduler, backend=trained_on, timeout=timeout)
    X, y, dev = _check_data(X, y, dev, dtype)
    _check_augment_width(space, base, int(np.prod(X.shape[1:])))
    if len(X) < 2 and (base.batch_norm or "batch_norm" in space.spec()):  # named now, not by each trial
        raise ValueError(f"X has {len(X)} example: batch norm needs batches of at least 2")
    if isinstance(standardize, str) and standardize != "fit":
        raise ValueError(f'standardize must be a Standardize layer, "fit" or None, got {standardize!r}')
    if not isinstance(standardize, str):
        check_standardize(standardize, int(np.prod(X.shape[1:])))
    if execution == "dask" and standardize is not None and not isinstance(standardize, str):
        _check_shippable(standardize, "standardize")
    check_bool(progress, "progress", allow_none=True)  # (a string "no" would be a truth value)
    if report is not None and not callable(report):
        raise TypeError(f"report must be a function taking each trial's line (print, say) or None, got {report!r}")
    meta = {**study.meta, "standardize": _standardize_record(standardize),
            "data": json.loads(json.dumps({"train": _digest(X, y, dtype), "dev": _digest(*dev, dtype)}))}
    # a scheduler given by address is connected to now, before anything is made: a wrong one fails here
    client = connect(scheduler) if execution == "dask" and isinstance(scheduler, str) else None
    search = _Search(base, X, y, dev, study, standardize, progress, scheduler if client is None else client,
                     rungs(min_epochs, halving, largest_epochs(space, base)) if halving else [], halving, dtype,
                     owned=[client] if client is not None else [],
                     deadline=None if timeout is None else started + check_timeout(timeout, "timeout"))
    train = {"sequential": _sequential, "batched": _batched, "dask": _dask}[execution]
    try:
        with _holding(directory) as made:
            # read again, now that no other search can write it: what one saved since the check is in it
            study = search.study = _study(meta, directory, resume, lambda param: param, False,
                                          _unchanging(space, strategy), given_precision)
            study.report = report
            if resume:  # its meta as this search's at once (more trials: a Ctrl-C before the next trial keeps them)
                study.save()
            try:
                _search_rounds(space, trials, strategy, rounds, seed, study, train, search)
                study.stopped = _stopped_by_timeout(study, directory, timeout, space, trials, strategy, made) \
                    if search.timed_out else None
            except KeyboardInterrupt:
                # a Ctrl-C while trials.json was written (its fsync) left the trials just recorded in the study but
                # not in the file, which the message then named as holding them: written again, while still held
                if study.trials:
                    with contextlib.suppress(OSError):  # (a full disk: the Ctrl-C is still what is said)
                        study.save()
                raise
    except KeyboardInterrupt as stop:  # its words are a trainer's (a checkpoint): a search keeps its study instead
        # (a Dask search's Ctrl-C arrives as a bare KeyboardInterrupt, where it waits on its workers: it said
        # nothing of what was kept, as a sequential or batched search's did)
        interrupted = stop if isinstance(stop, Interrupted) else \
            Interrupted(getattr(stop, "signal_name", "SIGINT"), 0, 0)  # (the CLI's SIGTERM names itself)
        if interrupted is not stop:  # (no trainer's epoch and step: "after epoch -1" was no place)
            interrupted.where = "while the search waited on its trials"
        interrupted.study = search.study  # the finished trials, with or without a directory (fit_many's .results)
        interrupted.args = (f"search interrupted by {interrupted.signal_name}; {_kept(search.study, directory)}",)
        raise interrupted from None
    except Exception as error:  # a report that raised, a lost Dask scheduler: the finished trials go with the error,
        # as an Optuna study keeps them when a callback raises (without a directory they were lost with the search)
        if search.study.trials and not isinstance(error, SavedTrialMismatchError):
            with contextlib.suppress(AttributeError, TypeError):  # (an exception that takes no attribute)
                error.study = search.study
                error.add_note(f"tune: {_kept(search.study, directory)}")
        raise
    finally:  # a Ctrl-C too: Dask's clients and workers closed in order, not killed at exit
        search.close()
        # the report is this search's, as Optuna's callbacks are optimize's: a study kept it (a lambda, a
        # notebook's logger) and failed to pickle ("Can't pickle <function <lambda>>"), returned from a worker
        search.study.report = None
    return study


TUNE_OPTIONS = keywords_of(tune, ("X", "y", "dev"))  # tune's own options, said with one it does not take


def _search_rounds(space, trials, strategy, rounds, seed, study, train, search) -> None:
    """Train each round's points that ``study`` does not hold yet (numbered in drawing order); a
    saved trial drawn with other values is a `SavedTrialMismatchError`. A study drawn by
    another xdl's sampling, which `_study` resumes only whole, draws nothing."""
    if study.meta.get("sampling") != SAMPLING and strategy != "grid":
        return
    number = 0
    for round_, points in _rounds(space, trials, strategy, rounds, seed, study):
        done = study.finished()
        todo = []
        for params in points:
            params = json.loads(json.dumps(params))  # as trials.json holds them (a choice's tuples as lists)
            if number in done and done[number].params != params:
                raise SavedTrialMismatchError(_drawn_otherwise(done[number], params, strategy))
            if number not in done:
                todo.append((number, params))
            number += 1
        if not todo:
            continue
        if search.out_of_time():  # (the round's points are drawn again by a resume, as those of a Ctrl-C'd round)
            return
        train(todo, round_, search)
        if search.timed_out:  # a round cut short: no next round is drawn from its part
            return


class SavedTrialMismatchError(ValueError):
    """A resume refused, before it trains anything (its saved trials as they were), because a trial of the saved
    study holds other values than the search draws for that trial number, though the study's space, seed and options
    are the search's (its ``trials.json`` edited, or another version of xdl, NumPy or Optuna drawing otherwise): the
    search cannot go on from it, and a resume of it again would be refused again (tune's note, "the same call with
    resume=True continues the search", is not added), so it is run in a new directory. A ValueError, as other
    refused resumes are."""


def _drawn_otherwise(saved: Trial, drawn: dict, strategy: str) -> str:
    """The message of `SavedTrialMismatchError`: the trial, the values that differ (saved → drawn), why the space or
    seed cannot be the cause (compared by `Study.resume` before), and what can be."""
    keys = sorted(k for k in {*saved.params, *drawn} if saved.params.get(k) != drawn.get(k))
    differ = ", ".join(f"{k} {saved.params.get(k)!r} saved, {drawn.get(k)!r} drawn" for k in keys)
    later = f" (round {saved.round} is drawn from the saved results of the rounds before it)" \
        if saved.round and strategy in ("coarse_to_fine", "tpe") else ""
    versions = "xdl, NumPy or Optuna (its TPE sampler)" if strategy == "tpe" else "xdl or NumPy"
    return (f"resume: trial {saved.number} of the saved study has {saved.params}, this search draws {drawn}: "
            f"{differ}. The study's space, seed and options are this search's{later}: its {TRIALS_FILE} was edited, "
            f"or another version of {versions} draws otherwise, and the search cannot go on from it; its saved "
            "trials are left as they are: run the search in a new directory")


def clock() -> float:
    """The seconds a search's ``timeout`` is counted in: `time.monotonic` (a system clock set meanwhile moves no
    budget), read here so that a test's fake clock takes its place."""
    return time.monotonic()


def check_timeout(timeout, name: str) -> float | None:
    """``timeout`` as a float of seconds > 0 (inf: no budget, as None), or None; else a ValueError naming ``name``."""
    if timeout is None:
        return None
    expected = "a number of seconds > 0" + ("" if name.startswith("--") else ", or None for no budget")
    return check_number(timeout, name, expected, lambda v: v > 0)


def planned_trials(space: Space, trials: int, strategy: str) -> int:
    """The trials a search draws: ``trials``, but a grid's points (`Space.grid`: up to ``trials``) for grid."""
    return len(space.grid(trials)) if strategy == "grid" else trials


def _stopped_by_timeout(study: Study, directory, timeout: float, space: Space, trials: int, strategy: str,
                        made=()) -> str:
    """What a search its ``timeout`` ended leaves (`Study.stopped`): its trials recorded of those it
    draws, and how to go on; ``made``: the directories the search made (`_holding`), removed where it
    recorded no trial."""
    planned = planned_trials(space, trials, strategy)
    if directory is None:
        way = "no directory was given: tune(..., directory=...) keeps a search to resume"
    elif not (Path(directory) / TRIALS_FILE).is_file():  # (a new search that recorded no trial)
        removed = f" (the directory {str(directory)!r} it made is removed)" if made else ""
        way = f"nothing was saved to resume{removed}: the same call again, with a longer timeout, starts it"
    else:
        way = "the same call with resume=True goes on where it stopped"
    n = len(study.trials)
    return f"its timeout of {timeout:g} s passed with {n} of {counted(planned, 'trial')} recorded; {way}"


@contextlib.contextmanager
def _interrupts_ignored():
    """SIGINT ignored while processes are started, which inherit that (a terminal's Ctrl-C goes to
    its whole process group: each Dask worker printed its own KeyboardInterrupt traceback before the
    search's message); the handler put back after. Outside the main thread, where no handler can be
    set, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _kept(study: Study, directory) -> str:
    """What an interrupted search leaves: its finished trials, where a resume finds them."""
    n = len(study.trials)
    if directory is None:
        return (f"its {n} finished trial{'s are' if n != 1 else ' is'} in its .study (no directory was given: "
                "tune(..., directory=...) keeps a search's trials to resume)") if n else "no trial had finished"
    if not n:
        return "no trial had finished: nothing was saved"
    return (f"its {n} finished trial{'s are' if n != 1 else ' is'} in {str(Path(directory) / TRIALS_FILE)!r}: the "
            "same call with resume=True continues the search (the unfinished trials start again)")


def connect(scheduler: str, who: str = "scheduler"):
    """A ``distributed.Client`` of the Dask scheduler at ``scheduler``, connected now (within
    `CONNECT_SECONDS`); an address where none answers is an OSError naming ``who`` (the argument:
    ``--scheduler`` for the command), raised before a search makes anything."""
    distributed = _distributed()
    _check_address(scheduler, who)

    def unanswered(why) -> str:
        return (f"{who}: no Dask scheduler answered at {scheduler!r} within {CONNECT_SECONDS} s ({why}); start one "
                f"(dask scheduler) or leave {who} out for a local cluster")

    # asked first, within the time: distributed's Client waits on a server that takes the connection without a word
    # for ever (its handshake's read has no timeout), and read another's reply (8787, the dashboard's HTTP) as a frame
    # length ("Unable to allocate 3.07 EiB"), then spent 20 s closing in its __del__ with a traceback
    try:
        kind = _server_type(scheduler, distributed)
    except (OSError, TimeoutError) as e:  # refused, unreachable, or silent
        raise OSError(unanswered(str(e) or "it took the connection and said nothing: a dashboard's "
                                 "port, 8787, where the scheduler's is 8786?")) from None
    # (an error of this side's, before anything was sent — a tls:// address without the TLS configuration,
    # tcp:// where the configuration requires encryption — is raised as distributed words it)
    if kind != "Scheduler":
        raise OSError(f"{who}: {scheduler!r} is not a Dask scheduler ({kind}); give the scheduler's address "
                      "(tcp://host:8786 by default; 8787 is its dashboard, a worker's address is no scheduler's)")
    try:
        return distributed.Client(scheduler, timeout=CONNECT_SECONDS, set_as_default=False)
    except OSError as e:  # distributed's TimeoutError and refused connections
        raise OSError(unanswered(e)) from None


def _server_type(address: str, distributed) -> str:
    """What the Dask server at ``address`` says it is ("Scheduler", "Worker", ...; a reply that is no
    Dask message, as that), asked within `CONNECT_SECONDS` in a thread of its own (the caller's may
    run an event loop: a notebook's); a TimeoutError where it does not say, an OSError where nothing
    takes the connection, and distributed's own error where it refuses to connect (no TLS set up)."""
    import asyncio
    import concurrent.futures

    from distributed.comm import connect as open_comm

    async def ask():
        try:  # (distributed's refusals on this side, made before it sends anything, raised as they are)
            comm = await open_comm(address, timeout=CONNECT_SECONDS,
                                   **distributed.Security().get_connection_args("client"))
        except MemoryError:  # its handshake read: an HTTP status line read as a frame's length
            return "its reply is no Dask message: MemoryError"
        try:
            await comm.write({"op": "identity", "reply": True})
            reply = await comm.read()
        except (OSError, TimeoutError):
            raise
        except Exception as e:  # (the same, or another's bytes)
            return f"its reply is no Dask message: {type(e).__name__}"
        finally:
            comm.abort()
        return reply.get("type", repr(reply)) if isinstance(reply, dict) else repr(reply)[:80]

    async def within():
        return await asyncio.wait_for(ask(), CONNECT_SECONDS)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, within()).result()


def _check_address(scheduler: str, who: str) -> None:
    """``scheduler`` has the form of a Dask address (checked without a Client: one made for a
    malformed address takes seconds to give up when it is collected)."""
    from distributed.comm import get_address_host_port, parse_address
    from distributed.comm.registry import get_backend

    try:
        scheme = parse_address(scheduler)[0]
        get_backend(scheme)
        if scheme in ("tcp", "tls", "ws", "wss"):  # host:port (ucx and inproc say theirs otherwise)
            get_address_host_port(scheduler)
    except ValueError as e:
        raise ValueError(f"{who} must be a Dask scheduler's address (tcp://host:8786), got {scheduler!r} "
                         f"({e})") from None


@contextlib.contextmanager
def _holding(directory):
    """``directory`` (made now, if needed) held by this search alone while the block runs, and let
    go after it however it ends (an error, a Ctrl-C); nothing for a search that keeps no directory.
    Yields the directories made for it (`missing_directories`), which are removed again where the search left
    them empty — no trial recorded: a timeout before the first, a Ctrl-C or an error before one ended
    — so that a search that saved nothing leaves nothing (an empty directory is no study to resume)."""
    if directory is None:
        yield []
        return
    made = missing_directories(Path(directory))
    check_writable_dir(directory, "directory")  # created only now that every argument has passed
    try:
        with DirectoryLock(directory, "directory") as lock:
            if lock.took_over:
                warn_caller(took_over_note(lock))
            yield made
    finally:  # (once let go: the lock file is gone, and another search that took it since holds a file there)
        for path in made:  # the directory first, then each parent made for it
            try:
                path.rmdir()
            except OSError:  # not empty (trials.json, another's lock, a file of the user's): kept, with its parents
                break


def _unchanging(space: Space, strategy: str) -> tuple[str, ...]:
    """The meta's keys a resume does not compare: base options that change no trial's result
    (`RESUME_MAY_CHANGE`), and those the space sets — every trial takes the space's value, so the
    base's is never used (``xdl tune --resume --lr 0.01`` with a space that searches lr); and a
    random search's trials: its first n points are the same however many are drawn (`Space.sample`),
    so it may be given more (as Optuna's ``study.optimize`` called again)."""
    grows = ("trials",) if strategy == "random" else ()
    ignored = ("rounds",) if strategy in ("random", "grid") else ()  # (derived from trials, and not read)
    # ("precision": base.precision's, which is compared: a marker of a study whose base records what it trained at)
    return (*(f"base.{key}" for key in (*RESUME_MAY_CHANGE, *space.spec())), *grows, *ignored, "precision")


def _standardize_record(standardize):
    """What the meta keeps of ``standardize``: "fit", None, or a given layer's statistics' digest."""
    if standardize is None or isinstance(standardize, str):
        return standardize
    return {"layer": data_digest(to_numpy(standardize.mean), to_numpy(standardize.scale))["sha1"]}


def check_search(space=None, trials=32, strategy="random", execution="sequential", rounds=None, seed=0, base=None,
                 directory=None, resume=False, halving=None, min_epochs=1, dtype="float32", flags=False,
                 scheduler=None, backend=None, timeout=None):
    """Check `tune`'s arguments other than the data — nothing is read but a saved study and whether
    a running search holds ``directory`` (`check_not_in_use`), nothing is written — and return
    (space, base, rounds, dtype, study): the `Space`, the checked base, the number of rounds, the
    dtype's name and the `Study` to continue (``resume``) or to start.
    ``flags``: name the ``xdl tune`` flags in errors (``--min-epochs``), not the parameters, so
    the command can check its options before it loads any data; a function ``(param, flag) → name``
    names them in its stead (a base option read from a ``--config`` file by its key there). ``backend``: the one
    the trials train on, whose precision the returned base takes on a GPU (`TrainConfig.at_precision_in_use`), or
    None where they train at the base's own (xdl tune sets the backend's from it; a Dask cluster given)."""
    def name(param: str) -> str:
        if not flags:
            return param
        flag = {"directory": "--out"}.get(param, "--" + param.removeprefix("base.").replace("_", "-"))
        return flags(param, flag) if callable(flags) else flag

    base = TrainConfig() if base is None else base
    if not isinstance(base, TrainConfig):
        raise TypeError(f"base must be a TrainConfig, got {type(base).__name__}")
    base.validate("base")  # its fields may have been set after it was made
    if space is None:  # the default, less what the base's optimizer and schedule do not read (β1 for SGD)
        space = {k: v for k, v in DEFAULT_SPACE.items() if k not in unread_options(base, DEFAULT_SPACE)}
    space = space if isinstance(space, Space) else Space.from_dict(space)
    fixed = next((key for key in NOT_SEARCHED if key in space.spec()), None)
    if fixed in ("out", "resume"):  # in xdl tune, --out and --resume are the study's, not a trial's
        raise ValueError(f"{name('space')}: {fixed} cannot be in a search space: trials keep no run directory of "
                         f"their own (the study's directory is {name('directory')})")
    if fixed == "seed":
        raise ValueError(f"{name('space')}: seed cannot be in a search space: every trial's model and batches come "
                         f"from the search's {name('base.seed')}, so that trials differ by their hyperparameters alone "
                         "(xdl tune splits the data by it too); to measure the spread over seeds, train the best "
                         "configuration with several (xdl bench optimizers reports it per optimizer)")
    if fixed == "checkpoint_every":  # (no flag or option of a search sets it)
        raise ValueError(f"{name('space')}: checkpoint_every cannot be in a search space: a search's trials write "
                         "no checkpoints (the study keeps each trial's result as it ends)")
    if fixed:  # a trial would be recorded with the value but trained without it
        raise ValueError(f"{name('space')}: {fixed} cannot be in a search space: it is the same for every trial "
                         f"(the data, the backend and the run's options are the search's); set it as "
                         f"{name('base.' + fixed)}")
    _check_space_values(space, base, name)
    _check_space_read(space, base, name)
    _check_plateau_read(space, base, name)
    trials = check_int(trials, name("trials"), high=MAX_TRIALS, expected=f"an integer in [1, {MAX_TRIALS:,}]")
    # a choice of one value is a fixed value too: {"lr": {"choice": [0.01]}} trained the same run ``trials`` times
    single = [key for key, d in space.dimensions.items() if d.kind == "choice" and len(d.values) == 1]
    if len(single) == len(space.dimensions) and trials > 1:
        fixed = [*space.fixed, *(f"{key} (a choice of one value)" for key in single)]
        verb = "is" if len(fixed) == 1 else "are"
        raise ValueError(f"{name('space')}: {name('trials')}={trials} of a space that searches nothing (a range or a "
                         f"choice): {', '.join(fixed)} {verb} fixed, so every trial would be the same run; give "
                         "one trial, or a hyperparameter to search")
    if strategy not in STRATEGIES:
        raise ValueError(f"{name('strategy')} must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if execution not in EXECUTIONS:
        raise ValueError(f"{name('execution')} must be one of {', '.join(EXECUTIONS)}, got {execution!r}")
    _check_plateau_executed(space, base, execution, name)
    if strategy == "tpe":
        _optuna()  # missing extras fail now, not once the directory is made
    if execution == "dask":
        distributed = _distributed()
        if scheduler is not None and not isinstance(scheduler, str | distributed.Client):
            raise TypeError(f"{name('scheduler')} must be a Dask scheduler's address (tcp://host:8786) or a "
                            f"distributed.Client, got {scheduler!r} ({type(scheduler).__name__})")
        if isinstance(scheduler, str):
            _check_address(scheduler, name("scheduler"))
        elif scheduler is not None and scheduler.status in ("closing", "closed"):  # (it failed, once the directory
            # was made, as "KeyError: 'workers'")
            raise ValueError(f"{name('scheduler')}: the distributed.Client given is {scheduler.status}; give a "
                             "connected one, or its scheduler's address")
    elif scheduler is not None:  # it would be ignored
        raise ValueError(f"{name('scheduler')} is the address of a Dask scheduler, for {name('execution')} dask; "
                         f"this search's {name('execution')} is {execution!r}")
    if rounds is not None and strategy in ("random", "grid"):  # it would be ignored
        raise ValueError(f"{name('rounds')} is for the strategies that search in rounds (coarse_to_fine, tpe); "
                         f"{strategy!r} draws its {name('trials')} at once")
    # unset: the default, capped by trials, so that random and grid (which ignore rounds) take any trials
    rounds = min(ROUNDS, trials) if rounds is None else \
        check_int(rounds, name("rounds"), high=trials,
                  expected=f"an integer in [1, {name('trials')}] ({name('trials')} is {trials})")
    seed = check_int(seed, name("seed"), low=0)
    if strategy == "tpe" and seed > TPE_MAX_SEED:  # Optuna's sampler seeds NumPy's RandomState: a larger seed failed
        # at the first round, after the directory was made, as NumPy's "Seed must be between 0 and 2**32 - 1"
        raise ValueError(f"{name('seed')} must be an integer in [0, 2**32) with {name('strategy')} tpe (Optuna's TPE "
                         f"sampler seeds NumPy's RandomState), got {seed!r}")
    if halving is not None:
        halving = check_int(halving, name("halving"), low=2,
                            expected="an integer η ≥ 2 (keep the top 1/η at each rung)")
    min_epochs = check_int(min_epochs, name("min_epochs"))
    if halving is None and min_epochs != 1:  # it would be ignored
        raise ValueError(f"{name('min_epochs')} is the first rung of {name('halving')}, which this search does not "
                         "use; give both, or neither")
    if halving is not None and min_epochs >= largest_epochs(space, base):
        raise ValueError(f"{name('min_epochs')} ({min_epochs}) must be below the most epochs a trial trains "
                         f"({largest_epochs(space, base)}: {name('base.epochs')} or the space's) with {name('halving')}: "
                         "its first rung would come at or after the last epoch, so no trial could be stopped early")
    resume = check_bool(resume, name("resume"))
    check_timeout(timeout, name("timeout"))  # (this call's budget: no part of the study, nor of what a resume compares)
    try:
        # np.dtype(None) is float64: None is no default here (the search trained in float64, unsaid), as fit_many's
        dtype = np.dtype(dtype) if dtype is not None else None
    except TypeError:
        raise TypeError(f"dtype must be a floating dtype name, got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):  # what fit_many trains in; float16 would overflow
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    given_precision = base.precision
    if backend is not None:  # (every trial's precision: the space cannot set it)
        base = base.at_precision_in_use(backend, name("base"), "tune")
    meta = {"space": space.spec(), "trials": trials, "strategy": strategy, "rounds": rounds, "seed": seed,
            "base": _options(base), "halving": halving, "min_epochs": min_epochs, "dtype": str(dtype),
            "sampling": SAMPLING, "precision": base.precision}
    meta = json.loads(json.dumps(meta))  # as trials.json holds it (tuples as lists), so a resume compares alike
    if directory is not None and str(directory):  # a running search's directory: said before anything else
        check_reachable(_directory(directory, name), name("directory"))  # (its lock's name, looked up next)
        check_not_in_use(directory, name("directory"))
    return space, base, rounds, str(dtype), _study(meta, directory, resume, name, flags,
                                                   _unchanging(space, strategy), given_precision)


def _study(meta: dict, directory, resume: bool, name, flags: bool, unchanging=(), given_precision=None) -> Study:
    """The saved study to continue (its meta compared but for the keys in ``unchanging``), or a
    new one for a directory that holds none (never overwrite a user's results). (`check_search`
    has refused a directory a running search holds; `tune` calls this again once it holds it.)
    ``given_precision``: the base's as given, which a study of an older xdl recorded (`_as_compared`)."""
    if directory is not None:
        check_directory_name(_directory(directory, name), name("directory"))
    if resume:
        if directory is None:
            raise ValueError("resume=True needs the directory of the study to continue")
        saved_meta, saved_trials = saved_study(directory, name("resume"))
        drawn = saved_meta.get("sampling")
        if drawn != SAMPLING and meta["strategy"] != "grid":  # (a grid draws nothing; an older study has
            # no sampling: Study.resume would not compare it)
            if not set(range(meta["trials"])) <= {t.number for t in saved_trials}:
                raise ValueError(f"{name('resume')}: the study in {str(directory)!r} was drawn by another xdl "
                                 f"(sampling {drawn or 1}, this one draws by {SAMPLING}: `Space.sample`), so its "
                                 f"trials cannot be drawn alike to go on; run the search in a new "
                                 f"{name('directory')} (one it holds whole resumes with its own "
                                 f"{name('trials')}: nothing is drawn)")
            # whole, nothing is drawn (`_search_rounds`); it keeps its sampling, so a later resume asking for more
            # trials is refused as this one would be
            meta = {**{k: v for k, v in meta.items() if k != "sampling"},
                    **({"sampling": drawn} if drawn is not None else {})}
        study = Study.resume(_as_compared(meta, saved_meta, given_precision), directory, name("resume"), unchanging,
                             option=lambda key: name(key) if key.startswith("base.") or key in FLAGGED_META else key,
                             added=ADDED_OPTIONS)
        study.meta = dict(meta)  # (its base as trained: the study's record from now on)
        saved = max((t.number + 1 for t in study.trials), default=0)
        if saved > meta["trials"]:  # (a random search's may grow, not shrink: its saved trials would be left out)
            raise ValueError(f"{name('trials')} is {meta['trials']}, but the study in {str(directory)!r} holds "
                             f"trials up to number {saved - 1}: a random search resumes with at least as many "
                             "trials (more draw on where it stopped)")
        return study
    path = None if directory is None else Path(directory) / TRIALS_FILE
    if path is not None and path.exists():
        try:
            n = len(read_trials(path)[1])
        except ValueError as e:  # not a study: no resume either, and still not ours to replace
            raise FileExistsError(f"{name('directory')}: {e}; move it away, or pass another "
                                  f"{name('directory')}") from None
        raise FileExistsError(f"{name('directory')} {str(directory)!r} already holds a study of "
                              f"{counted(n, 'trial')}: pass {'--resume' if flags else 'resume=True'} "
                              f"to continue it, or another {name('directory')}")
    return Study(meta, directory)


def _as_compared(meta: dict, saved: dict, given_precision) -> dict:
    """``meta`` as a resume compares it with the ``saved`` study's: a study of an older xdl, without "precision"
    (the marker of a base that records the precision its trials trained at), recorded its base's as given — the
    default, float32, where a search on a GPU trained at the backend's —, and is compared with that, as it was."""
    if "precision" in saved or given_precision is None:
        return meta
    return {**meta, "base": {**meta["base"], "precision": given_precision}}


def _directory(directory, name):
    """``directory`` if it is a path (a str or an os.PathLike), else a TypeError naming it."""
    if not isinstance(directory, str | os.PathLike):
        raise TypeError(f"{name('directory')} must be a path (str or os.PathLike), got {directory!r} "
                        f"({type(directory).__name__})")
    return directory


def _check_augment_width(space: Space, base: TrainConfig, n_features: int) -> None:
    """A trial that augments sees X's examples as images of ``base.dataset``'s shape (h × w):
    where one can (the base's or the space's augment_* values), X must have h·w features — named
    now, not by the first such trial, once the trials before it had trained."""
    keys = ("augment_shift", "augment_noise", "augment_flip")
    for key in keys:
        if key in space.dimensions:
            d = space.dimensions[key]
            values, who = d.values if d.kind == "choice" else list(d.bounds), "space"
        else:
            values, who = ([space.fixed[key]], "space") if key in space.fixed else ([getattr(base, key)], "base")
        if any(values) and base.dataset in IMAGE_SHAPES:  # (augmenting with another dataset: refused before)
            Augment(IMAGE_SHAPES[base.dataset]).check(n_features, source=f"{who}: {key} (base.dataset "
                                                                         f"{base.dataset!r})")


def _check_data(X, y, dev, dtype: str):
    """``X``, ``y`` and ``dev = (X_dev, y_dev)`` as checked NumPy arrays (`xdl.data`'s checks name
    them; X's values within the models' ``dtype``), y's as (m,) class indices: the output width is
    the largest label + 1."""
    names = feature_names(X)  # (a data frame's columns, read before the arrays forget them)
    X = check_features(X, "X", dtype=dtype)
    y = check_labels(y, len(X), "y")
    dev = check_dev_pair(dev, ": trials are compared on the dev set")
    # a dev frame of X's columns in another order was read by position: every trial scored on misread examples
    # and the best one chosen by them, silently (as a Trainer's and fit_many's X_dev are checked)
    check_feature_names(dev[0], names, "X_dev")
    X_dev = check_features(dev[0], "X_dev", int(np.prod(X.shape[1:])), dtype=dtype)
    y_dev = check_labels(dev[1], len(X_dev), "y_dev", x_name="X_dev")
    for label, labels in (("y", y), ("y_dev", y_dev)):
        if labels.ndim != 1 or not len(labels):
            hint = f" (one-hot rows: give {label}.argmax(axis=1))" if labels.ndim == 2 and labels.shape[1] > 1 else ""
            raise ValueError(f"{label} must be (m,) class indices with m ≥ 1, got shape {labels.shape}{hint}")
    note_label_width((y, y_dev), _n_classes(y, (X_dev, y_dev)))
    return X, y, (X_dev, y_dev)


def _optuna():
    try:
        import optuna
    except ImportError as e:
        raise import_error(e, ("optuna",), "strategy 'tpe' needs Optuna", "tune")
    return optuna


# A LocalCluster's workers are new processes that import the user's script again (multiprocessing's
# "spawn"): one that calls tune at its top level starts a search in each, which fails them all
WORKERS_IMPORT_THE_SCRIPT = ("tune(execution='dask') could not start its workers. Each is a new process that "
                             "imports your script again: a script calls tune under `if __name__ == '__main__':` (a "
                             "worker's error above about its 'bootstrapping phase' says this was the cause)")


def _distributed():
    try:
        from dask import distributed
    except ImportError as e:  # (dask without distributed, pip install dask, is not installed: its error's cause says)
        raise import_error(e, ("dask", "distributed", "dask.distributed"), "execution 'dask' needs dask.distributed",
                           "tune")
    return distributed


def _rounds(space: Space, trials: int, strategy: str, rounds: int, seed: int, study: Study):
    if strategy == "random":
        yield 0, space.sample(np.random.default_rng([seed, 0]), trials)
    elif strategy == "grid":
        yield 0, space.grid(trials)
    elif strategy == "tpe":
        yield from _tpe(space, trials, rounds, seed, study)
    else:  # coarse to fine
        current, drawn = space, 0
        for r, n in enumerate(_round_sizes(trials, rounds)):
            yield r, current.sample(np.random.default_rng([seed, r]), n)
            drawn += n
            ranked = study.ranked(below=drawn)  # the rounds so far (a resumed study holds later ones too)
            if not ranked:
                continue  # every trial failed: search the same box again
            current = zoom(current, ranked[0].params)


def _round_sizes(trials: int, rounds: int) -> list[int]:
    return [trials // rounds + (r < trials % rounds) for r in range(rounds)]


def _tpe(space: Space, trials: int, rounds: int, seed: int, study: Study):
    """Rounds of points asked of an Optuna study (TPE, seeded), each told its trials' dev accuracy
    (pruned ones as pruned, failed ones as failed) from ``study`` before the next round is asked —
    so a resumed search, whose finished trials are in ``study``, asks the same points again."""
    optuna = _optuna()
    # TPE draws at random until it has n_startup_trials results (Optuna's default 10): the first round,
    # so that every later round is TPE's (a round is asked before any of its results is told)
    startup = _round_sizes(trials, rounds)[0]
    with _optuna_quiet(optuna):
        asker = optuna.create_study(direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup))
    distributions = {name: optuna.distributions.CategoricalDistribution(list(range(len(d.values))))
                     if d.kind == "choice" else optuna.distributions.FloatDistribution(*d.box)
                     for name, d in sorted(space.dimensions.items())}  # in name order, as `Space.sample` draws
    number = 0
    for r, n in enumerate(_round_sizes(trials, rounds)):
        with _optuna_quiet(optuna):
            asked = [asker.ask(distributions) for _ in range(n)]
        yield r, [{**space.fixed, **{name: d.value([t.params[name]])[0] if d.kind == "choice"
                                     else python_value(d.value(t.params[name]))
                                     for name, d in space.dimensions.items()}} for t in asked]
        finished = study.finished()
        with _optuna_quiet(optuna):
            for i, t in enumerate(asked):
                result = finished.get(number + i)
                if result is not None and result.complete:
                    asker.tell(t, result.dev_accuracy)
                elif result is not None and result.status == "pruned":
                    # as a pruned Optuna trial: its dev accuracies reported per epoch, told PRUNED with no
                    # value (Optuna takes the last report as it; TPE ranks pruned trials below completed
                    # ones, by how far they got and then that value)
                    for epoch, value in enumerate(result.curves.get("dev_accuracy", ()), 1):
                        if value is not None:
                            t.report(value, epoch)
                    asker.tell(t, state=optuna.trial.TrialState.PRUNED)
                else:
                    asker.tell(t, state=optuna.trial.TrialState.FAIL)
        number += n


_QUIET = {"depth": 0, "before": None}  # `_optuna_quiet` blocks open in the process, and the verbosity before the first
_QUIET_LOCK = threading.Lock()


@contextlib.contextmanager
def _optuna_quiet(optuna):
    """Optuna's INFO lines ("A new study created", "Trial 3 finished …": the search reports its own
    trials) off within the block, and the caller's verbosity back after it. The setting is the
    process's: set once, as it was, it silenced the user's own studies for the rest of the session;
    so it is counted — the first block open takes the verbosity, the last one closed puts it back (two
    searches in threads each put back what the other had set: the user's studies stayed silent, or
    a search's "A new study created" was printed)."""
    with _QUIET_LOCK:
        if _QUIET["depth"] == 0:
            _QUIET["before"] = optuna.logging.get_verbosity()
            optuna.logging.set_verbosity(max(_QUIET["before"], optuna.logging.WARNING))
        _QUIET["depth"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET["depth"] -= 1
            if _QUIET["depth"] == 0:
                optuna.logging.set_verbosity(_QUIET["before"])


def zoom(space: Space, center: dict, shrink: float = SHRINK) -> Space:
    """``space`` narrowed, in every dimension's own scale, to a box ``shrink`` times as wide
    around ``center`` (moved inside the old box where it would cross an edge). ``shrink`` in
    (0, 1]; ``center`` holds a value of every dimension, within it (a trial's params)."""
    if not isinstance(space, Space):  # (a str failed as "'str' object has no attribute 'dimensions'")
        raise TypeError(f"zoom: space must be an xdl.tune.Space, got {type(space).__name__}")
    check_number(shrink, "zoom: shrink", "a number in (0, 1]", lambda v: 0 < v <= 1)
    if not isinstance(center, dict):
        raise TypeError(f"zoom: center must be a dict of the space's values (a trial's params), got {center!r}")
    for key, d in space.dimensions.items():
        if not _holds(d, center.get(key)):
            raise ValueError(f"zoom: center's {key} is {center.get(key)!r}, not a value of the space's {d!r}")
    boxes = {}
    for name, d in space.dimensions.items():
        low, high = d.box
        width = (high - low) * shrink
        if d.kind == "choice":  # whole values: the centre's and those beside it, ``shrink`` of them (at least 1)
            width = max(1, math.ceil(width))
            start = math.floor(d.coordinate(center[name])) - (width - 1) // 2
        else:
            start = d.coordinate(center[name]) - width / 2
        start = min(max(start, low), high - width)
        # moved to the top: (high − width) + width may fall an ulp short of high, and a centre there out of the box
        boxes[name] = (start, high if start == high - width else start + width)
    return space.narrowed(boxes)


def _holds(d, value) -> bool:
    """Whether ``value`` is one of dimension ``d``'s: a choice's value, or a number in its range."""
    if d.kind == "choice":
        return value_key(value) in {value_key(v) for v in d.values}  # (True is no value of [1, 2], though True == 1)
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return False
    try:
        t = d.coordinate(value)
    except (ValueError, OverflowError):  # (a log of a number ≤ 0)
        return False
    return math.isfinite(t) and d.box[0] <= t <= d.box[1]


def trial_config(base: TrainConfig, params: dict, source: str) -> TrainConfig:
    """``base`` with a trial's ``params``; an invalid combination is an error naming ``source``."""
    return TrainConfig.from_dict({**_options(base), **params}, source=source)


def _config_or_failure(base: TrainConfig, number: int, round_: int, params: dict, study: Study):
    """The trial's configuration, or None with the trial recorded as failed: its values are each
    valid (`check_search`), but not together (batch_size 1 with batch_norm, say)."""
    try:
        return trial_config(base, params, "invalid combination")
    except (TypeError, ValueError) as e:
        study.add([_trial(number, round_, params, error=str(e))])
        return None


def largest_epochs(space: Space, base: TrainConfig) -> int:
    """The most epochs a trial of the search trains: the space's (fixed, a choice's largest, a
    range's top) where it sets them, else the base's — where the rungs of halving may lie."""
    if "epochs" in space.fixed:
        return int(space.fixed["epochs"])
    d = space.dimensions.get("epochs")
    if d is None:
        return base.epochs
    return int(max(d.values if d.kind == "choice" else d.bounds))


def _check_space_read(space: Space, base: TrainConfig, name) -> None:
    """Refuse a searched or fixed option that the trials' optimizer and schedule do not read (β2
    beside SGD): every trial would be the same run in it. Where the space searches the optimizer or
    the schedule, what is read differs from trial to trial: nothing is refused."""
    if {"optimizer", "schedule"} & set(space.dimensions):
        return
    config = dataclasses.replace(base, **{k: v for k, v in space.fixed.items() if k in ("optimizer", "schedule")})
    unread = unread_options(config, space.spec())
    if unread:
        raise ValueError(f"{name('space')}: {unread[0]} is not read by optimizer {config.optimizer!r} or schedule "
                         f"{config.schedule!r}: every trial would be the same run in it; leave it out, or search "
                         "the optimizer or schedule too")


def _check_plateau_read(space: Space, base: TrainConfig, name) -> None:
    """Refuse a searched or fixed plateau_factor where every trial's plateau_patience is 0 (the base's or the
    space's fixed one, not searched): no trial lowers its rate, so every trial would be the same run in it (as
    `_check_space_read` refuses β2 beside SGD, and the command line --plateau-factor without --plateau-patience)."""
    if "plateau_factor" not in space.spec() or "plateau_patience" in space.dimensions:
        return
    patience = space.fixed.get("plateau_patience", base.plateau_patience)
    if not patience:
        where = "the space's plateau_patience" if "plateau_patience" in space.fixed else \
            name("base.plateau_patience")
        raise ValueError(f"{name('space')}: plateau_factor is read only where plateau_patience > 0, and {where} is "
                         f"{patience!r} (off): every trial would be the same run in it; leave it out, or give "
                         "plateau_patience N (N ≥ 1) with schedule none")


def _check_plateau_executed(space: Space, base: TrainConfig, execution: str, name) -> None:
    """Refuse a batched or dask search whose trials may lower their rate on a plateau (plateau_patience > 0 in
    the base, a fixed value or a searched one): it trains them with `fit_many`, which refuses that; a sequential
    search trains each trial with its own `Trainer`, which does it."""
    if execution == "sequential":
        return
    d = space.dimensions.get("plateau_patience")
    values = [space.fixed.get("plateau_patience", base.plateau_patience)] if d is None else \
        d.values if d.kind == "choice" else list(d.bounds)
    on = next((v for v in values if v), None)
    if on is not None:
        where = "the space's plateau_patience" if "plateau_patience" in space.spec() else name("base.plateau_patience")
        raise ValueError(f"{name('execution')} {execution!r} trains the trials together (fit_many), whose models "
                         f"cannot lower their rates on a plateau, and {where} is {on!r}: give {name('execution')} "
                         "sequential, which trains one trial at a time with its own plateau")


def _check_space_values(space: Space, base: TrainConfig, name) -> None:
    """Every value the space can give makes a valid configuration: each fixed value, each choice
    and both ends of each range (every option's own check is a range or a set, so the ends stand
    for what lies between), with ``base``'s other options — or, where it fails with them, with
    the space's fixed values, and with another searched option at one of its values beside them
    (batch_size 1 beside a searched batch_norm); then the fixed values together. An error names
    the key whose value is at fault: a value is tried with the base alone first, and that try's
    error is the one told (not another fixed value's, which fails every try that holds it).
    Refused before any trial is spent."""
    candidates = {key: d.values if d.kind == "choice" else list(d.bounds) for key, d in space.dimensions.items()}
    options = _options(base)
    beside = [dict(space.fixed)] + [{**space.fixed, other: v} for other, values in candidates.items() for v in values]
    checks = []  # (option, value, what the value is, advice)
    for key, value in space.fixed.items():
        advice = (f"; to search it, give its kind: {key} = {{log_uniform = [low, high]}} (or uniform, "
                  "one_minus_log, int_uniform, choice)") if isinstance(value, list | tuple) else ""
        checks.append((key, value, "", advice))
    for key, d in space.dimensions.items():
        checks += [(key, value, f" (of {d.kind} {d.spec()[d.kind]})", "") for value in candidates[key]]
    for key, value, what, advice in checks:
        error = _first_error(options, [{}, *({k: v for k, v in b.items() if k != key} for b in beside)], {key: value})
        if error is not None:
            raise ValueError(f"{name('space')}: {key} = {value!r}{what} cannot be trained: {error}{advice}")
    if len(space.fixed) > 1:  # each is fine beside the base; together too?
        error = _first_error(options, beside, {})
        if error is not None:
            values = ", ".join(f"{key} = {value!r}" for key, value in space.fixed.items())
            raise ValueError(f"{name('space')}: the fixed values {values} cannot be trained together: {error}")


def _first_error(options: dict, tries: list[dict], values: dict) -> str | None:
    """None if ``options`` with one of ``tries`` and ``values`` make a valid configuration, else
    the first try's error."""
    errors = []
    for other in tries:
        try:
            TrainConfig.from_dict({**options, **other, **values}, source="")
            return None
        except (TypeError, ValueError) as e:
            errors.append(str(e).removeprefix(": "))
    return errors[0]


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
    scheduler: object  # a connected distributed.Client, or None: a LocalCluster's, at the first batch
    rungs: list[int]
    eta: int | None
    dtype: str
    owned: list = field(default_factory=list)  # what `close` closes: Dask clients and clusters this search made
    held_data: list | None = None  # X, y and dev as Dask futures (`_held`), once the first batch is sent
    environ: dict = field(default_factory=dict)  # the variables a LocalCluster set in os.environ: their values before
    # the backend and precision the search runs on (`xdl.use`, xdl tune's --backend and --precision): a Dask worker
    # is a process of its own, whose backend was its XDL_BACKEND's or auto's, whatever the search's was
    backend: tuple = field(default_factory=lambda: (current_backend().name, current_backend().precision))
    local: bool = False  # whether the Dask cluster is a `LocalCluster` this search started
    deadline: float | None = None  # the `clock` time after which no trial starts (tune's timeout), or None
    timed_out: bool = False  # whether the deadline stopped a trial from starting (`out_of_time`)

    def out_of_time(self) -> bool:
        """Whether the deadline has passed (`clock` ≥ it, as Optuna's elapsed ≥ timeout), so that no trial
        starts: once it has, it stays so (a round cut short ends the search, its later rounds are not drawn)."""
        self.timed_out = self.timed_out or self.deadline is not None and clock() >= self.deadline
        return self.timed_out

    def dask_client(self):
        """The Dask client batches go to: ``scheduler``'s, or one of a `LocalCluster` (one worker
        process per core) started at the first batch and kept for the search's later rounds."""
        if self.scheduler is None:
            distributed = _distributed()
            # quiet: its workers' logs as a Ctrl-C closes them are not the user's news (the search says what
            # it kept; a trial's error reaches the search through its future)
            before = dict(os.environ)
            with _interrupts_ignored():  # a terminal's Ctrl-C reaches the workers too: the search closes them
                # (one pressed while the cluster starts, a few seconds, is lost: press it again)
                # no dashboard; its scheduler's HTTP server (always made) on a free port: at Dask's 8787, one another
                # cluster held (a notebook's) had the search print "Port 8787 is already in use" and an unclosed socket
                try:
                    cluster = distributed.LocalCluster(threads_per_worker=1, processes=True, dashboard_address=None,
                                                       scheduler_kwargs={"dashboard_address": ":0"},
                                                       silence_logs=logging.CRITICAL)
                except RuntimeError as e:  # Dask's words, "Nanny failed to start.", named neither cause nor way
                    e.add_note(WORKERS_IMPORT_THE_SCRIPT)
                    raise
                finally:  # (a cluster that failed to start too: `close` puts back what its nannies had set)
                    # its nannies set their workers' environment in this process's own (Dask's pre-spawn-environ:
                    # OMP_NUM_THREADS=1, MALLOC_TRIM_THRESHOLD_, ...), where it outlived the search: a later `xdl
                    # train` started from here ran on one BLAS thread, and `keep_freed_memory` took the user to have
                    # chosen
                    self.environ = {name: before.get(name) for name in {*before, *os.environ}
                                    if before.get(name) != os.environ.get(name)}
            self.owned.append(cluster)
            self.local = True
            self.scheduler = distributed.Client(cluster, timeout=CONNECT_SECONDS, set_as_default=False)
            self.owned.append(self.scheduler)
        return self.scheduler

    def worker_backend(self) -> tuple:
        """(backend, precision) a Dask worker trains with: the search's own on its `LocalCluster`
        (this machine's processes, as sequential and batched train on it); on a cluster it was given,
        the base options' (another machine's workers: ``backend`` "auto" is each one's own, None)."""
        if not self.local:
            return (None if self.base.backend == "auto" else self.base.backend), self.base.precision
        return self.backend

    def close(self) -> None:
        """Let go of the data on the workers; close the clients and clusters the search made, the
        last made first; put back the environment variables its local cluster set."""
        self.held_data = None
        try:
            while self.owned:
                self.owned.pop().close()
        finally:
            for name, value in self.environ.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self.environ = {}

    def standardize_for(self, config: TrainConfig):
        """The Standardize layer a model of ``config`` starts with (`tune`'s ``standardize``)."""
        return config.build_standardize(self.X) if isinstance(self.standardize, str) else self.standardize

    def batch_pruning(self) -> list:
        """A `BatchPruning` with the rung values recorded so far, if the search halves."""
        return [BatchPruning(recorded_at(self.study, self.rungs), self.eta)] if self.rungs else []


def _sequential(todo, round_, search: _Search) -> None:
    """Panda: one trial at a time, each recorded as soon as it ends."""
    study, X, y, dev = search.study, search.X, search.y, search.dev
    # ("?batch/s" it said; closed however the loop ends: a Ctrl-C left it drawn under the message)
    with progress_bar(search.progress, total=len(todo), unit="trial") as bar:
        for number, params in todo:
            if search.out_of_time():  # (the trials recorded so far stand; the rest are not started)
                return
            start = time.perf_counter()
            config = _config_or_failure(search.base, number, round_, params, study)
            if config is None:
                continue
            try:
                model = config.build_model(int(np.prod(X.shape[1:])), _n_classes(y, dev),
                                           search.standardize_for(config))
                model.astype(search.dtype)
            except MemoryError as e:  # its model does not fit (a choice of hidden sizes too wide): fails, as in a batch
                study.add([_trial(number, round_, params, error=_out_of_memory(e),
                                  seconds=time.perf_counter() - start)])
                bar.update(1)
                continue
            pruning = Pruning(recorded_at(study, search.rungs), search.eta) if search.rungs else None
            trainer = config.build_trainer(model, callbacks=[pruning] if pruning else [])
            trainer.progress = search.progress  # the running trial's own bar, with its live costs
            interrupted = None
            try:
                history = trainer.fit(X, y, dev=dev)
            except Interrupted as stop:  # a trial that had ended (Ctrl-C in its last epoch) is kept, as batched's are
                if not stop.over:
                    raise
                history, interrupted = trainer.history, stop
            except (FloatingPointError, MemoryError) as e:  # (history.diverged: where, without a run's own advice)
                error = _diverged(trainer.history.diverged) if trainer.history.diverged else \
                    _out_of_memory(e) if isinstance(e, MemoryError) else str(e)
                study.add([_trial(number, round_, params, trainer.history, "failed", error,
                                  time.perf_counter() - start)])
                bar.update(1)
                continue
            status = "completed" if history.stopped_epoch is None else \
                "pruned" if pruning is not None and pruning.pruned_at else "stopped"
            study.add([_trial(number, round_, params, history, status, seconds=time.perf_counter() - start)])
            if interrupted is not None:
                raise interrupted
            bar.update(1)


def _batched(todo, round_, search: _Search) -> None:
    """Caviar: the trials that share shapes trained together by `fit_many`, a group at a time."""
    for group in _groups(todo, round_, search.base, search.study):
        if search.out_of_time():  # between groups: the groups trained stand, the rest are not started
            return
        configs = [c for _, _, c in group]  # they share their augmentation (`SHARED`), so one scaling
        start = time.perf_counter()
        try:
            outcomes, seconds = train_group(configs, search.X, search.y, search.dev, search.base.seed,
                                            search.standardize_for(configs[0]), search.progress,
                                            search.batch_pruning(), search.dtype)
        except Interrupted as stop:  # the trials that had ended (pruned, stopped, diverged) are kept
            seconds = (time.perf_counter() - start) / len(configs)  # each one's share, as train_group's
            if stop.ended:  # (none: nothing to add, and a first group leaves no study to resume)
                search.study.add([_trial(group[k][0], round_, group[k][1], *outcome, seconds)
                                  for k, outcome in stop.ended.items()])
            raise
        search.study.add([_trial(number, round_, params, *outcome, seconds) for (number, params, _), outcome in
                          zip(group, outcomes)])


def _dask(todo, round_, search: _Search) -> None:
    """Caviar spread over Dask workers (`_Search.dask_client`: a `LocalCluster` of one worker per
    core, or the scheduler the search was given): each worker trains batches of trials that share
    shapes with `fit_many`; a batch lost with its worker is run again elsewhere by Dask, and each
    result is recorded once, as it arrives."""
    _dask_rounds(search.dask_client(), todo, round_, search, _distributed())


def _dask_rounds(client, todo, round_, search: _Search, distributed) -> None:
    """Submit the round's batches to ``client``'s workers and record each result as it arrives: a
    batch lost with its worker is run again by Dask, its data made again if they were lost too
    (`_held`); one that killed every worker that ran it (Dask's ``KilledWorker``, after
    ``allowed-failures``: out of memory, say) is recorded as failed and the search goes on; a lost
    scheduler is a ConnectionError."""
    try:  # (the data and the batches, sent to a cluster of none, would wait unsaid)
        client.wait_for_workers(1, timeout=CONNECT_SECONDS)
    except TimeoutError:
        raise TimeoutError(f"execution dask: no Dask worker joined the scheduler at {client.scheduler.address} within "
                           f"{CONNECT_SECONDS} s: start some (dask worker {client.scheduler.address})") from None
    # (counted by nthreads, which lists every worker: distributed 2025.4 to 2026.6's scheduler_info() lists five,
    # and a round sent one batch a worker left the others idle)
    workers = len(client.nthreads())
    groups = _groups(todo, round_, search.base, search.study, parts=workers)
    if search.held_data is None:  # once per search, each piece a task of its own (`_held`)
        import dask

        with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1PiB"}):  # (sent once, on purpose)
            search.held_data = [client.submit(_held, part, pure=False) for part in (search.X, search.y, search.dev)]
        try:  # on every worker, as a broadcast scatter: batches go to idle workers, not to the one that made the
            # data (Dask weighs the copy: 100 MB put 3 batches of 4 on one of 2 workers)
            client.replicate(search.held_data)
        except Exception:  # (a placement only: a worker lost meanwhile fails Dask's sample of the workers, a
            pass  # ValueError, and the batches read the data wherever they are, or as made again)
    data = search.held_data
    pruning = search.batch_pruning()  # the rung values recorded before this round
    futures = {client.submit(train_group, [c for _, _, c in group], *data, search.base.seed,
                             search.standardize_for(group[0][2]),
                             False, pruning, search.dtype, search.worker_backend(), pure=False, retries=2): group
               for group in groups}
    left = dict(futures)  # the batches not recorded yet
    try:
        _record_as_completed(client, futures, left, round_, search, distributed)
    finally:  # a Ctrl-C or an error: the batches not recorded are cancelled (as_completed held them until each ended:
        # a cluster of the caller's, left open, trained every batch of the round for nobody, its data held meanwhile)
        if left and client.status == "running":
            with contextlib.suppress(Exception):  # (a scheduler lost meanwhile: nothing left to cancel there)
                client.cancel(list(left))


def _record_as_completed(client, futures: dict, left: dict, round_, search: _Search, distributed) -> None:
    """Record each of ``futures``' batches as it ends, taking it out of ``left`` (`_dask_rounds`)."""
    for future in distributed.as_completed(futures, loop=client.loop):  # (the client is no default one)
        group = left.pop(future)
        try:
            outcomes, seconds = future.result()
        except distributed.KilledWorker as e:  # (an error a batch raises is the search's, as in the other executions)
            tries = e.allowed_failures + 1
            error = (f"the Dask worker died each time it trained ({counted(tries, 'time')}: out of memory? the "
                     "workers' logs say)")
            search.study.add([_trial(number, round_, params, error=error) for number, params, _ in group])
            continue
        except distributed.CancelledError as e:
            if getattr(e, "reason", None) != "scheduler-connection-lost" and client.status == "running":
                raise
            # (distributed 2024.1 gives no reason: its message is the task's key, nothing to a user)
            n, why = len(group) + sum(len(g) for g in left.values()), getattr(e, "reason", None) or "it went away"
            raise ConnectionError(f"execution dask: the connection to the Dask scheduler was lost ({why}); "
                                  f"{counted(n, 'trial')} of this round did not finish") from None
        search.study.add([_trial(number, round_, params, *outcome, seconds) for (number, params, _), outcome in
                          zip(group, outcomes)])


def _check_shippable(value, name: str) -> None:
    """``value`` pickles as Dask sends it to a worker (cloudpickle), else a TypeError naming ``name``
    — at the first batch, it was Dask's "Could not serialize object of type LLGExpr" after an
    ERROR log and three tracebacks, once the study's directory was made."""
    import cloudpickle

    try:
        cloudpickle.dumps(value)
    except Exception as e:
        raise TypeError(f"{name} cannot be sent to the Dask workers (execution dask pickles it): {type(e).__name__}: "
                        f"{e}") from None


def _held(value):
    """``value``, as the result of a Dask task: the data a search's batches read. A scattered copy
    lost with the workers that held it is gone (a one-worker cluster's worker killed once: the
    batches that read it were cancelled, and the search with them); a task's result is computed
    again on a worker that lives."""
    return value


def _groups(todo, round_, base, study, parts: int = 1) -> list[list]:
    """The trials to train, as lists of (number, params, config) that share `SHARED` options (an
    invalid combination is recorded as failed at once); each split in up to ``parts`` batches."""
    def key_of(config):
        return tuple(repr(getattr(config, k)) for k in SHARED) + (config.dropout > 0,)

    groups: dict[tuple, list] = {}
    for number, params in todo:
        config = _config_or_failure(base, number, round_, params, study)
        if config is None:
            continue
        groups.setdefault(key_of(config), []).append((number, params, config))
    # in the order of each group's first trial of the round, its finished ones counted: a resume's groups are trained
    # in the order they had (one whose first trials had ended before a Ctrl-C went after the next, which then met
    # other rung values under halving, and pruned others than the uninterrupted search)
    first = {key: group[0][0] for key, group in groups.items()}
    for trial in study.trials:
        if trial.round == round_:
            with contextlib.suppress(TypeError, ValueError):  # (an invalid combination: in no group)
                key = key_of(trial_config(base, trial.params, "invalid combination"))
                if key in first:
                    first[key] = min(first[key], trial.number)
    batches = []
    for _, group in sorted(groups.items(), key=lambda item: first[item[0]]):
        size = -(-len(group) // parts)
        batches += [group[i:i + size] for i in range(0, len(group), size)]
    return batches


def train_group(configs, X, y, dev, seed, standardize=None, progress=False, callbacks=(), dtype="float32",
                backend=None):
    """Train ``configs`` together (`fit_many`): ([(history, status, error)] per config, seconds per
    trial) — what a search records; a plain function, so a Dask worker can run it. ``backend``:
    (name or None, precision) to train with (`xdl.use`), as the search's `_Search.worker_backend`
    gives it to a worker; None: the current backend as it is."""
    if backend is not None:
        name, precision = backend
        with use(name if name is not None else current_backend(), precision=precision):
            return train_group(configs, X, y, dev, seed, standardize, progress, callbacks, dtype)
    start = time.perf_counter()
    try:
        trainer = ManyTrainer(configs, seed=seed, dtype=dtype, callbacks=callbacks, progress=progress,
                              capture="auto" if configs[0].capture else False)
        results = trainer.fit(X, y, dev=dev, n_classes=_n_classes(y, dev), standardize=standardize)
    except Interrupted as stop:  # Ctrl-C: the trials that had ended go with it (``ended``: index -> outcome)
        ended = [k for k, status in enumerate(trainer.status) if status != "training"]
        outcomes = _outcomes(trainer.results())
        stop.ended = {k: outcomes[k] for k in ended}
        raise
    except MemoryError as e:  # K models at once do not fit: each half alone, down to a trial whose model alone does
        # not (a choice of hidden sizes too wide), which fails as a diverged one does — the search goes on (raised,
        # it ended the search, and a resume drew the same point and ended again)
        if len(configs) == 1:
            return [(None, "failed", _out_of_memory(e))], time.perf_counter() - start
        outcomes, half = [], len(configs) // 2
        for part in (configs[:half], configs[half:]):
            try:
                outcomes += train_group(part, X, y, dev, seed, standardize, progress, callbacks, dtype)[0]
            except Interrupted as stop:  # (``ended`` of the whole batch: the first half's and this one's)
                stop.ended = {**dict(enumerate(outcomes)), **{len(outcomes) + k: o for k, o in stop.ended.items()}}
                raise
        return outcomes, (time.perf_counter() - start) / len(configs)
    return _outcomes(results), (time.perf_counter() - start) / len(configs)  # each trial's share of the batch


def _out_of_memory(e: MemoryError) -> str:
    """A trial's error where its model, or its batch's, did not fit in memory."""
    said = str(e) or "MemoryError"
    return said if "memory" in said else f"out of memory: {said}"


def _outcomes(results) -> list[tuple]:
    """(history, status, error) of each `fit_many` result, a divergence worded as a sequential
    trial's (`_diverged`, from ``history.diverged``: where, without the batch's place and state)."""
    return [(r.history, r.status, _diverged(r.history.diverged) if r.history.diverged else r.error) for r in results]


def _diverged(what: str) -> str:
    """A diverged trial's error, the same in every execution: where its cost or state became
    non-finite (its curves end at its last good epoch). Neither a checkpoint (a Trainer's
    advice) nor a kept state (fit_many's) is news in a search, which keeps no model."""
    return f"diverged: {what}"


def _digest(X, y, dtype: str) -> dict:
    """The data's digest as a study keeps it: X's rows (an image set flattened) in the models'
    ``dtype``, as they take them, and y as class indices (int64) — as `Trainer` and `fit_many`
    compare the data of a resume: the same data given in another shape, float dtype, byte order or
    label dtype resumes. (A study of flat float32 X and int64 labels, xdl tune's, has the digest it
    had before; one made with X of another dtype, image-shaped X or other label dtypes before these
    rules does not resume.)"""
    return data_digest(rows(X).astype(dtype, copy=False), y.astype(np.int64, copy=False))


def _n_classes(y, dev) -> int:
    """The output width: the largest label + 1, at least 2 (as `fit_many`'s: one output of a softmax
    is always 1)."""
    return max(int(max(np.max(y), np.max(dev[1]))) + 1, 2)
