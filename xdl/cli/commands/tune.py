"""``xdl tune``: search hyperparameters around the options, print the top trials, write the study (`tune`)."""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from pathlib import Path

import xdl
from xdl.cli.options import check_flags_read
from xdl.cli.output_directory import check_no_foreign_outputs, refuse_write_protected
from xdl.cli.resume import resumed_study
from xdl.cli.signals import signal_of, signal_status
from xdl.cli.text import note, note_once, precision_note, shell_word
from xdl.config import TrainConfig
from xdl.data import split
from xdl.data.validation import check_int, counted
from xdl.files import check_writable_dir
from xdl.lock import check_not_in_use


def tune(config: TrainConfig, args) -> int:
    """Search around ``config`` on its dataset's train/dev split; print the top trials, write
    ``trials.json`` and ``best.toml`` in ``--out``."""
    from xdl.tune import Space, tune as search
    from xdl.tune.search import check_search, connect, planned_trials
    from xdl.tune.study import BEST_FILE as BEST_CONFIG, TRIALS_FILE

    # every option first, named by its flag: before any data is loaded or directory made (search checks again)
    if config.resume:  # a --config file's (the flag is the study's switch): it would be ignored
        raise ValueError(f"--config: resume = {config.resume!r} continues an xdl train run; xdl tune continues a "
                         "study with --resume (a switch, the study in --out)")
    if config.out != TrainConfig.out and config.out != args.tune_out:  # (a --config file's) it was ignored unsaid
        raise ValueError(f"--config: out = {config.out!r} is an xdl train run's directory; xdl tune writes its study "
                         f"to --out ({args.tune_out!r}): give --out {shell_word(config.out)}, or remove out from "
                         "the file")
    saved, saved_trials = resumed_study(args)  # --resume: what is not given is the study's

    def option(name, default=None):
        given = getattr(args, name, None)
        return given if given is not None else saved.get(name, default)

    space = Space.from_toml(args.space) if args.space is not None else \
        Space.from_dict(saved["space"], source="--resume: the study's space", recorded=True) if saved else None
    trials, strategy, halving, min_epochs = option("trials", 32), option("strategy", "random"), option("halving"), \
        option("min_epochs", 1)
    rounds = args.rounds if args.rounds is not None or strategy in ("random", "grid") else saved.get("rounds")
    in_file = getattr(args, "config_keys", ())

    def named(param, flag):
        # an option the --config file gave, not a flag, by its key there (a resume refused for the file's
        # dropout = 0.2 said "--dropout 0.3, this one has 0.2", a flag never typed, as check_resume's note says)
        key = param.removeprefix("base.")
        return f"{key} (in {str(args.config)!r})" if key in in_file and not hasattr(args, key) else flag

    searched = check_search(space, trials, strategy, args.execution, rounds, config.seed, config, args.tune_out,
                            args.tune_resume, halving, min_epochs, flags=named, scheduler=args.scheduler,
                            timeout=args.timeout)[0]
    check_int(args.top, "--top")
    check_flags_read(config, args, searched=searched.dimensions, fixed=searched.fixed)
    overridden = [f"--{name.replace('_', '-')}" for name in searched.spec() if hasattr(args, name)]
    if overridden:
        note(f"note: {', '.join(overridden)} {'is' if len(overridden) == 1 else 'are'} searched: the space's "
             "values take the place of what the command line gives")
    planned = planned_trials(searched, trials, strategy)
    out = Path(args.tune_out)
    check_not_in_use(out, "--out")  # a search at work there is named before anything else (as xdl train's)
    # a study's best.toml and trials.png are written beside its trials.json, never alone
    check_no_foreign_outputs(out, dict.fromkeys((BEST_CONFIG, "trials.png"),
                                                lambda path: (out / TRIALS_FILE).is_file()), "xdl tune")
    with xdl.use(config.backend, precision=config.precision) as backend, contextlib.ExitStack() as held:
        scheduler = args.scheduler
        if args.execution == "dask" and scheduler is not None:  # the cluster answers before anything is made
            scheduler = connect(scheduler, "--scheduler")
            held.callback(scheduler.close)
        check_writable_dir(out, "--out")  # made only now that the options, the backend and the cluster are good
        refuse_write_protected(out / name for name in (TRIALS_FILE, BEST_CONFIG, "trials.png"))  # (a resumed
        # search's: refused once its trials had trained)
        X, y = xdl.datasets.load(config.dataset)
        parts = split(X, y, seed=config.seed)
        start = time.perf_counter()
        try:  # (the header too: a Ctrl-C just after it is the search's, with its message)
            print(f"xdl {xdl.__version__} tune: backend {backend.name} on {backend.device_name()}"
                  f"{precision_note(backend)}; dataset {config.dataset}: {len(parts.X_train)} train / "
                  f"{len(parts.X_dev)} dev examples; {counted(planned, 'trial')}, {strategy}, {args.execution}"
                  + (f" (the grid {trials} trials allow: every choice, the same number of values in each range)"
                     if planned != trials else "")
                  + (f"; resuming the study in {str(out)!r} ("
                     f"{counted(len(saved_trials), 'trial')} saved)" if args.tune_resume else "")
                  + (f"; timeout {args.timeout:g} s" if args.timeout is not None else ""))
            with warnings.catch_warnings():
                warnings.simplefilter("always", append=True)  # (after the user's, as xdl train's)
                warnings.showwarning = note_once()  # a lock taken over from a killed search, say
                with _search_writes(out):  # trials.json (a full disk: the search stops there)
                    study = search(parts.X_train, parts.y_train, (parts.X_dev, parts.y_dev), space, trials=trials,
                                   strategy=strategy, execution=args.execution, rounds=rounds, seed=config.seed,
                                   base=config, directory=out, resume=args.tune_resume,
                                   standardize="fit", progress=config.progress_bar,  # each trial's, as xdl train's
                                   scheduler=scheduler, halving=halving, min_epochs=min_epochs, timeout=args.timeout,
                                   report=note)  # each trial as it ends: a search under nohup says how it goes
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM (the running trial's Trainer stopped at a step)
            signal_name = signal_of(stop)
            if (out / TRIALS_FILE).is_file():
                print(f"\nxdl tune: interrupted by {signal_name}; the trials that finished are in "
                      f"{str(out / TRIALS_FILE)!r}; to continue (the unfinished trials start again), run the same "
                      f"command with --resume (the study keeps its options: xdl tune --resume --out "
                      f"{shell_word(str(out))} is enough)", file=sys.stderr)
            else:
                print(f"\nxdl tune: interrupted by {signal_name} before a trial was saved; nothing to continue: run "
                      "the same command again (without --resume)", file=sys.stderr)
            return signal_status(signal_name)
    if study.stopped is not None and not study.trials:
        print(f"xdl tune: stopped at --timeout {args.timeout:g} s before a trial finished; nothing to continue: run "
              "the same command again with a longer --timeout", file=sys.stderr)
        return 1
    best, writing = study.best, BEST_CONFIG
    try:
        with _search_writes(out):  # best.toml, trials.png: the files first, as a reader of stdout gone (| head)
            if best is not None:   # stops the printing, not them
                path = study.write_best()
                writing = "trials.png"
                try:
                    from xdl.plots import plot_study

                    picture = f" and {plot_study(study, out / 'trials.png')}"
                except ImportError as e:
                    picture = f" (no trials.png: {e})"
    except KeyboardInterrupt as stop:  # every trial is saved, and a resume (training none) writes them: said so —
        # "what it was doing is not saved" sent the user to the same command, refused (a study there), and a
        # resumed search's best.toml was left the best of the trials before it
        signal_name, saved = signal_of(stop), len(study.trials)
        print(f"\nxdl tune: interrupted by {signal_name} while writing {writing}; its {counted(saved, 'trial')} "
              f"{'is' if saved == 1 else 'are all'} in {str(out / TRIALS_FILE)!r}: to write {BEST_CONFIG} and "
              f"trials.png, run xdl tune --resume --out {shell_word(str(out))}", file=sys.stderr)
        return signal_status(signal_name)
    finally:  # (the table, a failed write's too: the trials are all in trials.json)
        print(study.table(args.top))
    if best is None:
        _say_stopped(study, out, args.timeout, planned)
        print("xdl tune: error: no trial trained to the end (pruned and failed trials do not count); see "
              f"{str(out / TRIALS_FILE)!r} for the reasons", file=sys.stderr)  # (as every failure's, a script's grep)
        return 1
    print(f"\nbest: trial {best.number}, dev accuracy {best.dev_accuracy:.4f}; {time.perf_counter() - start:.1f} s")
    print(f"wrote {out / 'trials.json'}, {path}{picture}; train it with: xdl train --config {shell_word(str(path))}")
    _say_stopped(study, out, args.timeout, planned)
    return 0


def _say_stopped(study, out: Path, timeout: float, planned: int) -> None:
    """A search its --timeout ended says so on stderr, with the --resume that goes on (as an interrupted one's
    words), last but for the error of a search with no trial completed: "done" and "out of time" read alike
    otherwise. Nothing for a search that ran to its end."""
    from xdl.tune.study import TRIALS_FILE

    if study.stopped is None:
        return
    print(f"xdl tune: stopped at --timeout {timeout:g} s with {len(study.trials)} of {counted(planned, 'trial')} "
          f"saved in {str(out / TRIALS_FILE)!r} (the rest not started); to continue, run the same command with "
          f"--resume (the study keeps its options: xdl tune --resume --out {shell_word(str(out))} is enough; "
          "--timeout is this run's)", file=sys.stderr)


@contextlib.contextmanager
def _search_writes(out: Path):
    """A search's files written within: one that fails (a full disk) says what is kept and how to go
    on from it; a reader of stdout gone is no file to blame."""
    from xdl.tune.study import TRIALS_FILE

    try:
        yield
    except BrokenPipeError:
        raise
    except (OSError, MemoryError) as e:
        # "once the directory can be written" only where a write failed (it names its file, in ``out``): a lost
        # Dask scheduler or a cluster without workers is no directory's fault
        wrote = isinstance(e, OSError) and e.filename is not None and \
            Path(e.filename).resolve().parent == out.resolve()
        when = "once the directory can be written, " if wrote else ""
        kept = f"no trial was saved: {when}run the same command again" if not (out / TRIALS_FILE).is_file() else \
            (f"the trials saved are in {str(out / TRIALS_FILE)!r}: {when}continue with xdl tune --resume --out "
             f"{shell_word(str(out))}")
        raise OSError(f"{str(e) or type(e).__name__}; {kept}") from None
