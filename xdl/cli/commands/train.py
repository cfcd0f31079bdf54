"""``xdl train``: train the model of the options on its dataset's split, write its model, history, curves
and report, and print its accuracy and a diagnosis with next steps (`train`)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import xdl
from xdl.cli.commands.stopped_run import (divergence_way_on, end_interrupted_run, keep_history, resume_command,
                                          resume_from_best, without_a_lone_best)
from xdl.cli.options import check_flags_read
from xdl.cli.output_directory import check_no_foreign_outputs, refuse_write_protected
from xdl.cli.resume import check_resume, resumed_without_control, resumed_run_directory
from xdl.cli.run_directory import check_no_unfinished_run, run_outputs
from xdl.cli.run_model import split_and_model
from xdl.cli.signals import signal_of, signal_status
from xdl.cli.text import model_summary, note, note_once, precision_note
from xdl.config import TrainConfig
from xdl.data.validation import counted
from xdl.diagnose import NEXT_STEPS, STOP_EARLY, diagnose
from xdl.files import atomic_write, check_target, check_writable_dir, os_error
from xdl.init import canonical_name, starts_symmetric
from xdl.lock import RUN, DirectoryLock, check_not_in_use, took_over_note
from xdl.train import BEST_FILE, CHECKPOINT_FILE, Checkpoint, Control, Interrupted
from xdl.train.checkpoint_files import resume_path
from xdl.train.control import CONTROL_FILE


# The first next step of a high-bias run whose weights started equal (`xdl.init.starts_symmetric`)
SYMMETRIC_START = ("initialize the weights randomly (--init he; xavier for tanh): from --init {init} every unit of "
                   "a layer computes the same and gets the same gradient, so no bigger network or longer run learns "
                   "more")
# The first next step of a high-bias run from --init normal(SCALE) that started far above ln C, a uniform guess's
# cost (the course's "random × 10": tanh on digits from normal(10) ended at 29% train accuracy, told "train a bigger
# network", 100% from xavier): weights too large for their fan-in saturate tanh and sigmoid and blow up the logits
LARGE_START = ("initialize the weights at a scale for their fan-in (--init he; xavier for tanh): from --init {init} "
               "the run started at a cost of {cost:.3g}, {ratio:.3g} × ln C (a uniform guess's): weights that large "
               "saturate tanh and sigmoid and make the logits huge, where a bigger network or a longer run learns "
               "slowly if at all")
LARGE_START_FACTOR = 5  # how far above ln C a run's start cost is `LARGE_START`'s (normal(0.01) starts at ln C)
# The first next step of a high-bias run whose model predicts one class for (nearly) every training example
# (`ONE_CLASS`): it learned nothing — Adam at lr 1 on digits without batch norm, its ReLUs dead after a cost of 15
# in epoch 1, stayed at 10% and was told "train a bigger network", which learns no more at that rate
ONE_CLASS = ("the model predicts class {label} for {share:.1%} of the training examples: it learned nothing a bigger "
             "network or a longer run would add to; a rate too large does this (a train cost in history.json that "
             "rose above ln C = {ln_c:.3g} and stayed near it): try --lr {lower:g}")
ONE_CLASS_SHARE = 0.99
# how far above ln C a train cost rose for `ONE_CLASS` to blame the rate: a model that predicts alike for every
# example costs about ln C, and one whose rate is too small to move it from a small start (--init normal(0.001), lr
# 1e-6) stays there — at or just below ln C — predicting one class too: a smaller rate would learn less still
ONE_CLASS_ROSE = 1.1


def train(config: TrainConfig, args=None) -> int:
    out = Path(config.out)
    check_flags_read(config, args)
    check_not_in_use(out, "--out", RUN)  # a look: a run at work there is named before anything else
    resuming, saved = check_resume(config, args) if config.resume else (None, None)
    without_control = resumed_without_control(config, out, saved) if config.resume else None
    run_dir = resumed_run_directory(config.resume) if config.resume else None
    if run_dir is not None and run_dir.resolve() != out.resolve():
        resuming += f"; the rest of the run goes to --out {str(out)!r}, not to {str(run_dir)!r}"
    own = out / "checkpoints" / CHECKPOINT_FILE
    replacing = None
    if not config.resume or resume_path(config.resume).resolve() != own.resolve():  # (a resume into another --out)
        replacing = check_no_unfinished_run(out, resumed=resume_path(config.resume) if config.resume else None)
    check_no_foreign_outputs(out, run_outputs(out), "xdl train")
    with xdl.use(config.backend, precision=config.precision) as backend, contextlib.ExitStack() as held:
        check_writable_dir(out, "--out")  # before any work, after every check: fail fast, make nothing
        refuse_write_protected(out / name for name in run_outputs(out))
        # the checkpoints too — a file write-protected or a directory in its place, or checkpoints/ itself: found
        # by `Checkpoint` once a resumed run's state was loaded, the refusal rewrote its history.json (its best
        # epoch lost), and a write-protected checkpoints/ with none in it was then removed
        if (out / "checkpoints").is_dir():
            for name in (CHECKPOINT_FILE, BEST_FILE):
                check_target(out / "checkpoints" / name, "--out")
        lock = held.enter_context(DirectoryLock(out, "--out", RUN))  # one run at a time writes its checkpoints
        xdl.seed(config.seed)
        print(f"xdl {xdl.__version__}: backend {backend.name} on {backend.device_name()}{precision_note(backend)}")
        if resuming:
            note(resuming)
        if replacing:
            note(replacing)
        if lock.took_over:
            note(f"note: {took_over_note(lock)}")
        if without_control:
            note(without_control)
        parts, n_classes, model = split_and_model(config)
        print(f"dataset {config.dataset}: {len(parts.X_train)} train / {len(parts.X_dev)} dev / "
              f"{len(parts.X_test)} test examples, {parts.X_train.shape[1]} features, {n_classes} classes")
        print(f"model: {model_summary(model)}; optimizer {config.optimizer}, lr {config.lr:g}, "
              f"schedule {config.schedule}")
        if config.augment_flip and config.dataset == "digits":
            note("note: --augment-flip mirrors digits left to right, and a mirrored 2 or 7 is no digit; "
                 "shifts and noise keep the label")
        if config.optimizer == "adamw" and not config.weight_decay:  # (PyTorch's AdamW decays at 0.01 unasked)
            note("note: --optimizer adamw with --weight-decay 0 is adam: its decoupled decay is --weight-decay")
        checkpoint = Checkpoint(out / "checkpoints", every=config.checkpoint_every or None)
        # (a run of an xdl before control.toml goes on without it: its checkpoint holds no Control's state)
        trainer = config.build_trainer(model, callbacks=[checkpoint] if without_control else [
            Control(out, report=lambda text: note(f"note: {text}")), checkpoint])  # the babysitter sees it now
        reason = trainer.eager_reason()
        print("steps: captured as CUDA graphs (one per batch shape)" if reason is None else f"steps: eager ({reason})")
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", append=True)  # (after the user's: `-W ignore`, PYTHONWARNINGS)
                warnings.showwarning = note_once()  # as they come (a rejected control.toml is news now)
                history = trainer.fit(parts.X_train, parts.y_train, dev=(parts.X_dev, parts.y_dev),
                                      resume=config.resume or None)
        except Interrupted as stop:
            return end_interrupted_run(stop, trainer, out)
        except KeyboardInterrupt as stop:  # a second signal, before the step finished: the last checkpoint stands
            signal_name = signal_of(stop)
            if trainer.last_checkpoint is None:
                best = without_a_lone_best(trainer, out)
                if best is None:
                    raise
                print(f"\nxdl train: interrupted by {signal_name} before the step finished; its best epoch is kept: "
                      f"to continue from it, {resume_from_best(best)}", file=sys.stderr)
                return signal_status(signal_name)
            print(f"\nxdl train: interrupted by {signal_name} before the step finished; the last checkpoint "
                  f"stands: to continue, {resume_command(trainer)}", file=sys.stderr)
            return signal_status(signal_name)
        except FloatingPointError as e:
            keep_history(trainer, out)
            if trainer.last_checkpoint is None:
                best = without_a_lone_best(trainer, out, named=True)
                if best is None:
                    raise
                raise FloatingPointError(
                    f"{e}{divergence_way_on(trainer, out, 'its best epoch', resume_from_best(best))}") from None
            # the way on from the last good state, whose rate (maybe set by hand) is the one that diverged
            raise FloatingPointError(
                f"{e}{divergence_way_on(trainer, out, 'the last good state', resume_command(trainer))}") from None
        except BrokenPipeError:  # a reader of stdout or stderr gone (`2>&1 | head`): no directory to blame
            raise
        except OSError as e:  # a checkpoint could not be written: training stopped there
            keep_history(trainer, out)
            if trainer.last_checkpoint is not None:
                raise os_error(e, f"{e}; once the directory can be written, {resume_command(trainer)}") from None
            best = without_a_lone_best(trainer, out)
            if best is None:
                raise
            raise os_error(e, f"{e}; its best epoch is kept: once the directory can be written, "
                              f"{resume_from_best(best)}") from None
        seconds = time.perf_counter() - start
        try:
            metrics = {name: trainer.evaluate(Xp, yp) for name, Xp, yp in
                       (("train", parts.X_train, parts.y_train), ("dev", parts.X_dev, parts.y_dev),
                        ("test", parts.X_test, parts.y_test))}
            diagnosis = diagnose({"train_accuracy": metrics["train"]["accuracy"],
                                  "dev_accuracy": metrics["dev"]["accuracy"]}, base_error=config.base_error,
                                 dev_examples=len(parts.X_dev))
            if "high bias" in diagnosis.verdict:
                # a bigger network or a longer run learns no more from weights that start equal, or after a rate
                # that left the model predicting one class: those steps give way to the one that helps
                first, ln_c = None, float(np.log(n_classes))
                if starts_symmetric(config.init):
                    first = SYMMETRIC_START.format(init=config.init)
                elif _large_start(trainer.start_cost, config.init, ln_c):  # (before ONE_CLASS: the start, not the rate)
                    # put first: a bigger network still learns a little more from it (29% → 47%), so both stay
                    diagnosis.next_steps.insert(0, LARGE_START.format(init=config.init, cost=trainer.start_cost,
                                                                      ratio=trainer.start_cost / ln_c))
                elif _rose_above_ln_c(history, n_classes) and (one := _one_class(model, parts.X_train, n_classes)):
                    first = ONE_CLASS.format(**one, ln_c=ln_c, lower=config.lr / 10)
                if first is not None:
                    diagnosis.next_steps = [first] + [step for step in diagnosis.next_steps
                                                      if step not in NEXT_STEPS["high bias"][:2]]
            if history.best_epoch is not None:  # (--patience: the weights are the lowest dev cost's already)
                diagnosis.next_steps = [step for step in diagnosis.next_steps if step != STOP_EARLY]
            files = _write_outputs(out, model, history, config, metrics, diagnosis)
            files += [str(p) for p in dict.fromkeys((trainer.last_checkpoint, trainer.best_checkpoint)) if p]
        except (KeyboardInterrupt, OSError, MemoryError) as e:  # the training is done and saved: say how to get
            if trainer.last_checkpoint is None:                    # the rest
                raise
            stop = signal_of(e) if isinstance(e, KeyboardInterrupt) else None
            what = f"interrupted by {stop}" if stop else f"{e}" if isinstance(e, OSError) else f"out of memory ({e})"
            kept = f"its training is over and kept in {str(trainer.last_checkpoint)!r}"
            if (history.stopped_by or "").startswith(CONTROL_FILE):  # a resume trains on after a control stop
                print(f"\nxdl train: {what} while writing the run's outputs; {kept} (stopped by {CONTROL_FILE}: "
                      f"xdl.load gives its model; {resume_command(trainer)} trains on from there)", file=sys.stderr)
            else:
                print(f"\nxdl train: {what} while writing the run's outputs; {kept}: to write them, "
                      f"{resume_command(trainer)}", file=sys.stderr)
            return signal_status(stop) if stop else 1
    _report(history, metrics, diagnosis, seconds, files, resumed=bool(config.resume))
    return 0


def _one_class(model, X, n_classes: int) -> dict | None:
    """The class ``model`` predicts for at least `ONE_CLASS_SHARE` of ``X`` (``label``, ``share``),
    None where its predictions vary (or there is one class to predict)."""
    counts = np.bincount(np.asarray(model.predict(X)).reshape(-1), minlength=n_classes)
    share = counts.max() / counts.sum()
    return {"label": int(counts.argmax()), "share": share} if n_classes > 1 and share >= ONE_CLASS_SHARE else None


def _large_start(start_cost: float | None, init: str, ln_c: float) -> bool:
    """Whether a run from ``init``, a normal(SCALE), started (``start_cost``: at most its first step's
    cost, the initial weights') above `LARGE_START_FACTOR` · ln C: its scale, not the rate, is why (he,
    xavier and glorot draw at a scale for the fan-in already)."""
    return (canonical_name(init).startswith("normal(") and start_cost is not None and ln_c > 0
            and start_cost > LARGE_START_FACTOR * ln_c)


def _rose_above_ln_c(history, n_classes: int) -> bool:
    """Whether an epoch's train cost in ``history`` rose above `ONE_CLASS_ROSE` · ln C (C =
    ``n_classes``): what a rate too large does before it leaves the model predicting one class."""
    costs = [c for c in history["train_cost"] if c is not None] if len(history) else []
    return n_classes > 1 and bool(costs) and max(costs) > ONE_CLASS_ROSE * float(np.log(n_classes))


def _write_outputs(out: Path, model, history, config, metrics, diagnosis) -> list[str]:
    files = [xdl.save(model, out / "model.npz"), history.save(out / "history.json")]
    try:
        from xdl.plots import plot_history

        files.append(plot_history(history, out / "curves.png"))
    except ImportError as e:
        files.append(f"(no curves.png: {e})")
    report = {"config": dataclasses.asdict(config), "metrics": metrics, "diagnosis": dataclasses.asdict(diagnosis),
              "epochs": len(history), "stopped_epoch": history.stopped_epoch, "stopped_by": history.stopped_by,
              "best_epoch": history.best_epoch}
    # last: a report of the run's epochs says its outputs are all written (`check_no_unfinished_run`)
    files.append(atomic_write(out / "report.json", lambda f: json.dump(report, f, indent=1), binary=False))
    return [str(f) for f in files]


def _report(history, metrics, diagnosis, seconds, files, resumed: bool = False) -> None:
    epochs = len(history)
    if history.stopped_epoch:
        print(f"stopped early at epoch {history.stopped_epoch}: {history.stopped_by or 'a callback stopped it'}")
    if history.best_epoch:
        print(f"weights restored from epoch {history.best_epoch} (lowest dev cost)")
    print("accuracy: " + "  ".join(f"{name} {m['accuracy']:.2%}" for name, m in metrics.items()))
    print(f"diagnosis: {diagnosis}")
    per_epoch = np.mean(history["seconds"]) if epochs else 0.0  # all epochs, resumed runs included
    # a resumed run's mean takes in the epochs before it: said, or it reads as this run's (2 epochs in
    # 0.1 s "(3694 ms per epoch)")
    over = f" over all {epochs}, the resumed run's included" if resumed else ""
    print(f"time: {counted(epochs, 'epoch')}, this run {seconds:.1f} s ({1000 * per_epoch:.0f} ms per epoch{over})")
    print("files written:\n" + "\n".join(f"  {f}" for f in files))
