"""`Study`: every trial of a search — its hyperparameters, dev curve, epochs, seconds, status — kept
in ``trials.json``, rewritten atomically after each trial (or batch of trials), so an interrupted
search resumes without redoing finished trials; the best configuration as a TOML file that
``xdl train --config`` reads."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

from xdl.data.validation import check_int, counted
from xdl.extras import import_error
from xdl.files import atomic_write
from xdl.saved_fields import check_fields, is_count, is_dict, is_number, optional
from xdl.train.progress import above_bars

TRIALS_FILE = "trials.json"
BEST_FILE = "best.toml"


@dataclass
class Trial:
    """One configuration tried: ``status`` is "completed", "stopped" (early stopping), "pruned"
    (successive halving stopped it at a rung) or "failed" (``error`` says why: diverged, an
    invalid combination, out of memory, or its Dask worker died each time it trained).
    ``dev_accuracy``/``dev_cost``: the record the model ends with (its best epoch under early
    stopping)."""

    number: int
    round: int
    params: dict
    status: str
    error: str | None = None
    dev_accuracy: float | None = None
    dev_cost: float | None = None
    epochs: int = 0
    seconds: float = 0.0
    # per epoch: train_cost, dev_cost, dev_accuracy, lr (not in the repr: 4 numbers an epoch printed `study.best`
    # as 16,000 characters after 200 epochs)
    curves: dict = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """It trained and has a dev record (a pruned trial's is of the epochs it had when stopped at a
        rung: the model it ended with, the best epoch's where early stopping put that back)."""
        return self.status != "failed" and self.dev_accuracy is not None

    @property
    def complete(self) -> bool:
        """It trained to its own end — its epochs, or early stopping — as Optuna's COMPLETE: only
        such trials compete for the best. A pruned trial stopped at a rung, where its accuracy is
        one of fewer epochs than the others' (ASHA can prune a trial that beats, at epoch 27 of
        30, what the completed ones reached at 30)."""
        return self.status in ("completed", "stopped") and self.dev_accuracy is not None

    @property
    def value(self) -> float | None:
        """Its dev accuracy, what a search maximizes (Optuna's ``FrozenTrial.value``, the ``value`` of
        `Study.trials_dataframe`; ``study.best_trial.value`` raised AttributeError): None where it failed."""
        return self.dev_accuracy

    @property
    def state(self) -> str:
        """Its ``status`` as Optuna's ``TrialState`` names it (`OPTUNA_STATES`: "COMPLETE" for a completed or
        early-stopped trial, "PRUNED", "FAIL"), the ``state`` of `Study.trials_dataframe`."""
        return OPTUNA_STATES[self.status]

    def summary(self) -> str:
        """The trial in one line, as a search reports it when it is recorded (Optuna's "Trial 3
        finished with value … and parameters …")."""
        params = ", ".join(f"{k}={_short(v)}" for k, v in sorted(self.params.items()))
        if not self.ok:
            return f"trial {self.number} {self.status} ({params}): {self.error}"
        return (f"trial {self.number} {self.status} after {counted(self.epochs, 'epoch')} "
                f"({self.seconds:.3g} s): dev accuracy {self.dev_accuracy:.4f}, dev cost {self.dev_cost:.4f}; {params}")


class Study:
    """The trials of one search (``meta``: what made them — space, strategy, seed, base options —
    checked on resume)."""

    def __init__(self, meta: dict, directory=None):
        self.meta, self.trials = dict(meta), []
        self.directory = Path(directory) if directory is not None else None
        self.report = None  # called with each trial's line as it is recorded (`tune`'s report), or None
        # why the search that returned it stopped before its last trial (its timeout), or None: done, or loaded —
        # the call's, as report is (not in trials.json: a resume goes on whatever stopped the search before)
        self.stopped: str | None = None

    def __repr__(self) -> str:
        """Its trials, how many trained to their end, the best and where it is kept, as a notebook
        cell ending with the study shows it: ``Study(8 trials, 7 completed, best: trial 3 with dev
        accuracy 0.9500; in 'xdl-tune')``."""
        n, best = len(self.trials), self.best
        done = sum(t.complete for t in self.trials)
        where = f"; in {str(self.directory)!r}" if self.directory is not None else ""
        ranked = f", best: trial {best.number} with dev accuracy {best.dev_accuracy:.4f}" if best is not None else ""
        stopped = f"; stopped: {self.stopped}" if self.stopped is not None else ""
        return f"Study({counted(n, 'trial')}, {done} completed{ranked}{where}{stopped})"

    @classmethod
    def load(cls, directory) -> Study:
        """The study saved in ``directory`` (its ``trials.json``), to look at in Python — ``best``,
        ``table()``, ``best_config()`` — as Optuna's ``load_study``; nothing is trained or written.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     saved = Study({"space": {}, "base": {"epochs": 3}}, directory)
        ...     saved.add([Trial(0, 0, {"lr": 0.01}, "completed", dev_accuracy=0.9, dev_cost=0.3, epochs=3)])
        ...     loaded = Study.load(directory)
        >>> loaded.best.params, loaded.best_config().lr
        ({'lr': 0.01}, 0.01)
        >>> loaded  # doctest: +ELLIPSIS
        Study(1 trial, 1 completed, best: trial 0 with dev accuracy 0.9000; in '...')
        """
        meta, trials = saved_study(directory, "Study.load")
        study = cls(meta, directory)
        study.trials = trials
        return study

    @classmethod
    def resume(cls, meta: dict, directory, who: str = "resume", unchanging=(), option=lambda key: key,
               added=None) -> Study:
        """The study in ``directory``, after checking it was made by the same search: every key of
        ``meta`` the saved study holds must be equal, but those named in ``unchanging`` (dotted:
        ``base.capture``), which change no trial's result (every difference is named; ``who``
        names the argument in errors: ``--resume`` for the command, and ``option`` an option by its
        key: ``--dataset`` for ``base.dataset``, ``--trials`` for ``trials``). A key the saved study lacks
        (written by an older xdl) is not compared: nothing says what it was — but for ``added``'s base
        options (`xdl.config.ADDED_OPTIONS`), compared at the value such a study trained with."""
        saved, trials = saved_study(directory, who)
        if added and isinstance(saved.get("base"), dict):  # (a study before l1 trained without it: --l1 0.1 is
            # another search, whose later trials were trained with it beside the saved ones, unsaid)
            saved = {**saved, "base": {**added, **saved["base"]}}
        # (once each: the command's --seed is the search's seed and base.seed alike)
        differences = list(dict.fromkeys(_differences(saved, meta, skip=set(unchanging), option=option)))
        if differences:
            # a study's points are drawn for its number of trials (and rounds): more trials make another study
            raise ValueError(f"{who}: the search in {str(directory)!r} was made with {'; '.join(differences)}. "
                             "Resuming continues the same search: its saved trials were made that way, and the "
                             "rest must be made alike to be compared with them (a random search may be given more "
                             "trials); for another search, use a new "
                             f"{'--out' if who.startswith('--') else 'directory'}")
        study = cls(meta, directory)
        study.trials = trials
        return study

    def add(self, trials) -> None:
        """Record finished ``trials`` (kept in trial-number order), rewrite ``trials.json``, and
        report each (`Trial.summary`, with the best so far)."""
        self.trials.extend(trials)
        self.trials.sort(key=lambda t: t.number)
        self.save()
        if self.report is not None:
            reported = {id(t) for t in trials}
            best = min((t for t in self.trials if t.complete and id(t) not in reported), key=_rank, default=None)
            for trial in sorted(trials, key=lambda t: t.number):  # (a batch's: the best so far as each comes)
                if trial.complete:
                    best = min((t for t in (best, trial) if t is not None), key=_rank)
                above_bars(self.report, trial.summary() + (f"; best so far: trial {best.number} "
                                                           f"({best.dev_accuracy:.4f})" if best is not None else ""))

    def save(self) -> Path | None:
        """Rewrite ``trials.json``: the bytes of ``json.dump({"meta": meta, "trials": [asdict(trial), ...]},
        f, indent=1)``, each trial encoded once and again only when it changed (its pickle, `_fingerprint`,
        is another) — encoded anew at each trial recorded, every trial so far cost a search a time growing
        with every trial (27 ms a trial after 600 of 2 epochs each, against 4 ms of training)."""
        if self.directory is None:
            return None
        encoded, kept, parts = self.__dict__.get("_encoded", {}), {}, []  # a trial's pickle → its JSON at depth 2
        for trial in self.trials:
            key = _fingerprint(trial)
            text = encoded.get(key) if key is not None else None
            if text is None:  # (JSON strings hold no newline: each line indented one level deeper)
                text = "  " + json.dumps(dataclasses.asdict(trial), indent=1).replace("\n", "\n  ")
            if key is not None:
                kept[key] = text
            parts.append(text)
        self._encoded = kept
        trials = "[\n" + ",\n".join(parts) + "\n ]" if parts else "[]"
        text = '{\n "meta": ' + json.dumps(self.meta, indent=1).replace("\n", "\n ") + ',\n "trials": ' + trials + "\n}"
        return atomic_write(self.directory / TRIALS_FILE, lambda f: f.write(text), binary=False)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_encoded"}  # (a cache: made again)

    def finished(self) -> dict[int, Trial]:
        return {t.number: t for t in self.trials}

    def ranked(self, below: int | None = None) -> list[Trial]:
        """Trials that trained to their end (`Trial.complete`: not pruned, not failed), best first:
        higher dev accuracy, then lower dev cost, then the earlier trial. ``below``: of the trials
        numbered below it only (what a search in rounds knew after them: a resumed one holds later
        rounds' trials too)."""
        return sorted((t for t in self.trials if t.complete and (below is None or t.number < below)), key=_rank)

    @property
    def best(self) -> Trial | None:
        """The best trial that trained to its end (as Optuna's ``best_trial``, a pruned one never
        is), or None when none did (every trial failed or was pruned)."""
        ranked = self.ranked()
        return ranked[0] if ranked else None

    @property
    def best_trial(self) -> Trial:
        """`best`, as Optuna's ``study.best_trial`` gives it: a ValueError where no trial trained to
        its end (``best`` is None there)."""
        if self.best is None:
            raise ValueError("no trial trained to the end (pruned and failed ones do not count): there is no best "
                             "trial (table() says why)")
        return self.best

    @property
    def best_params(self) -> dict:
        """The best trial's hyperparameters (Optuna's ``study.best_params``): a deep copy (a list value, hidden sizes,
        appended to changed the trial's own record, which the next save wrote, and its best_config)."""
        return copy.deepcopy(self.best_trial.params)

    @property
    def best_value(self) -> float:
        """The best trial's dev accuracy, what a search maximizes (Optuna's ``study.best_value``, the
        ``value`` of `trials_dataframe`)."""
        return self.best_trial.dev_accuracy

    def table(self, k: int = 10) -> str:
        """The top ``k`` trials as a Markdown table (``trained``: the epochs a trial trained, beside an
        ``epochs`` hyperparameter the space sets: both were headed "epochs")."""
        k = check_int(k, "table: k")
        names = sorted({n for t in self.trials for n in t.params})
        rows = ["| rank | trial | dev accuracy | dev cost | trained | status | " + " | ".join(names) + " |",
                "|" + "---:|" * (6 + len(names))]
        for rank, t in enumerate(self.ranked()[:k], 1):
            values = [_short(t.params.get(n)) for n in names]
            rows.append(f"| {rank} | {t.number} | {t.dev_accuracy:.4f} | {t.dev_cost:.4f} | {t.epochs} | {t.status} | "
                        + " | ".join(values) + " |")
        pruned = [t for t in self.trials if t.status == "pruned"]
        if pruned:  # not ranked: each one's accuracy is of the epochs it had when stopped
            rows.append(f"\n{counted(len(pruned), 'trial')} pruned (stopped early at a rung, not ranked)")
        failed = [t for t in self.trials if t.status == "failed"]
        if failed:
            rows.append(f"\n{counted(len(failed), 'trial')} failed; first: trial {failed[0].number}: {failed[0].error}")
        return "\n".join(rows)

    def trials_dataframe(self):
        """The trials as a pandas DataFrame, one row each in trial order, as Optuna's
        ``study.trials_dataframe()``: ``number``, ``round``, ``state`` (as Optuna names it:
        "COMPLETE" for a completed or early-stopped trial, "PRUNED", "FAIL"), ``status`` (xdl's:
        `Trial.status`), ``value`` (its dev accuracy), ``dev_cost``, ``epochs``, ``seconds``,
        ``error``, then a ``params_<name>`` column per hyperparameter (None where a trial had no such
        one; a list value, hidden sizes, held as a copy of the list). Needs pandas (the ``tune`` extra)."""
        try:
            import pandas
        except ImportError as e:
            raise import_error(e, ("pandas",), "trials_dataframe needs pandas", "tune")
        names = sorted({n for t in self.trials for n in t.params})
        columns = ["number", "round", "state", "status", "value", "dev_cost", "epochs", "seconds", "error",
                   *(f"params_{n}" for n in names)]
        # (Optuna's names in state: df[df.state == "COMPLETE"], as an Optuna user filters, found none in xdl's; each
        # value a copy: a cell's list changed in place was the trial's own record)
        rows = [[t.number, t.round, t.state, t.status, t.value, t.dev_cost, t.epochs,
                 t.seconds, t.error, *(copy.deepcopy(t.params.get(n)) for n in names)]
                for t in sorted(self.trials, key=lambda t: t.number)]
        return pandas.DataFrame(rows, columns=columns)

    def best_config(self):
        """The best trial's `TrainConfig`: the search's base options (``meta["base"]``) with the
        trial's values."""
        from xdl.config import TrainConfig

        best = self.best_trial
        try:
            return TrainConfig.from_dict({**self.meta["base"], **best.params}, source=f"trial {best.number}")
        except (TypeError, ValueError) as e:
            if self.directory is None:
                raise
            # (a study loaded from its directory: the file to look at named, not the trial's words alone)
            raise type(e)(f"best_config: the study in {str(self.directory)!r} holds options no run takes: {e}") \
                from None

    def write_best(self) -> Path:
        """``best.toml`` in the study's directory: every option of `best_config` but where a run
        writes (``out``: the default, or ``--out``; a ``--resume`` with it goes on in its run's
        directory) and what it resumes, for ``xdl train --config``."""
        if self.directory is None:
            raise ValueError("write_best: this study keeps no directory (tune(..., directory=...)); "
                             "best_config() gives the configuration")
        values = {k: v for k, v in dataclasses.asdict(self.best_config()).items() if k not in ("resume", "out")}
        text = "".join(f"{k} = {_toml(v)}\n" for k, v in values.items())
        return atomic_write(self.directory / BEST_FILE, lambda f: f.write(text), binary=False)


def _fingerprint(trial: Trial) -> bytes | None:
    """``trial``'s pickle: equal bytes only where its JSON is the same (the same types and values, a
    dict's keys in the same order, -0.0 told from 0.0 — not ``==``, for which 1 == 1.0 == True, and a
    trial changed so in place kept the JSON it was first written with); None where it does not pickle
    (encoded at every save)."""
    try:
        return pickle.dumps(trial, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


def saved_study(directory, who: str = "resume") -> tuple[dict, list[Trial]]:
    """The meta and the trials of the study saved in ``directory`` (a resume's, `Study.load`'s;
    errors name ``who``): a directory that is no path (None) a TypeError naming it, not Path's
    "expected str, bytes or os.PathLike object"; a file (its trials.json) a NotADirectoryError."""
    if not isinstance(directory, str | os.PathLike):
        raise TypeError(f"{who}: directory must be a path (str or os.PathLike), got {type(directory).__name__}")
    path = Path(directory) / TRIALS_FILE
    if Path(directory).is_file():  # (its trials.json named: "no trials.json in '…/trials.json'" was said)
        raise NotADirectoryError(f"{who}: {str(directory)!r} is a file; give the study's directory, which holds "
                                 f"its {TRIALS_FILE}")
    if not path.is_file():
        raise FileNotFoundError(f"{who}: no {TRIALS_FILE} in {str(directory)!r}")
    try:
        return read_trials(path)
    except ValueError as e:
        raise ValueError(f"{who}: {e}") from None


def read_trials(path) -> tuple[dict, list[Trial]]:
    """The meta and the trials of the ``trials.json`` at ``path``; a file that `Study.save` did not
    write (not JSON, another layout, a trial with other fields) is a ValueError saying so."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not (isinstance(data, dict) and isinstance(data.get("meta"), dict) and isinstance(data.get("trials"), list)):
            raise ValueError('expected {"meta": {...}, "trials": [...]}')
        trials = [Trial(**t) for t in data["trials"]]
    except (ValueError, TypeError) as e:  # bad JSON or UTF-8 is a ValueError; Trial(**t) a TypeError
        raise ValueError(f"{str(path)!r} is not a trials file xdl wrote ({e})") from None
    for i, trial in enumerate(trials):
        _check_trial(trial, path, f"its trial {i}'s")
    return data["meta"], trials


TRIAL_STATUSES = ("completed", "stopped", "pruned", "failed")  # a trial's status in trials.json
# each status as Optuna's TrialState names it (`Trial.complete`: an early-stopped trial is one of its COMPLETE)
OPTUNA_STATES = {"completed": "COMPLETE", "stopped": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}


def _check_trial(trial: Trial, path, whose: str) -> None:
    """Raise `damaged` unless ``trial``, read from the ``trials.json`` at ``path``, has fields of
    the kinds `Study.save` writes. One of another kind was read as it was — a completed trial
    without its dev cost trained a resumed search's remaining trials, then failed as "unsupported
    format string passed to NoneType.__format__"; params of null, a TypeError of Study.load's table."""
    ranked = trial.status in ("completed", "stopped")  # (their dev figures rank them: `_rank`)
    null = "" if ranked else ", or null"
    check_fields(vars(trial), (
        ("number", is_count, "an integer ≥ 0"), ("round", is_count, "an integer ≥ 0"),
        ("params", is_dict, "a dict of the trial's values"),
        ("status", lambda v: v in TRIAL_STATUSES, "one of " + ", ".join(TRIAL_STATUSES)),
        ("error", optional(lambda v: isinstance(v, str)), "a string or null"),
        ("dev_accuracy", lambda v: v is None and not ranked or is_number(v) and not (v < 0 or v > 1),
         "a number in [0, 1]" + null),  # (NaN passes, as a ranking takes it: the study's words say what it was)
        ("dev_cost", lambda v: v is None and not ranked or is_number(v), "a number" + null),
        ("epochs", is_count, "an integer ≥ 0"), ("seconds", is_number, "a number"),
        ("curves", is_dict, "a dict of lists")), path, who=None, whose=whose)


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _rank(trial: Trial) -> tuple:
    """Better trials first: higher dev accuracy, then lower dev cost, then the earlier trial."""
    return -trial.dev_accuracy, trial.dev_cost, trial.number


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _differences(saved: dict, now: dict, skip=frozenset(), prefix: str = "", option=lambda key: key) -> list[str]:
    """``"key <saved>, this one has <now>"`` for each key whose value differs, looking into nested
    dicts (a base configuration names its one changed option, not its whole self twice); dotted
    keys in ``skip`` are not compared, nor a key of the meta or of its base options that only one
    side holds (a study an older xdl wrote has no record of it; a check made before the data is
    known has none of the data's) — deeper, in the space say, a key only one side has differs."""
    out = []
    for key in [*now, *(k for k in saved if k not in now)]:
        name = f"{prefix}{key}"
        if name in skip or ((key not in saved or key not in now) and prefix in ("", "base.")):
            continue
        then, value = saved.get(key), now.get(key)
        if isinstance(then, dict) and isinstance(value, dict):
            out += _differences(then, value, skip, f"{name}.", option)
        elif then != value:
            label = option(name) if prefix in ("", "base.") else name
            # (a flag not given is said so: "--halving None" names a value the flag does not take)
            said = [("not given" if v is None and label.startswith("--") else repr(v)) for v in (then, value)]
            out.append(f"{label} {said[0]}, this one has {said[1]}")
    return out
