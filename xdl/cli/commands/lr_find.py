"""``xdl lr-find``: the learning-rate range test of the model, loss and optimizer the options build, its
sweep and suggestion printed with the ``xdl train`` that trains at it (`lr_find_command`)."""

from __future__ import annotations

import dataclasses
import inspect
import sys
import warnings

import numpy as np

import xdl
from xdl.cli.options import check_flags_read
from xdl.cli.refused import refuse_config_resume
from xdl.cli.run_model import split_and_model
from xdl.cli.text import model_summary, note_once, precision_note, shell_quoted, shell_word
from xdl.config import TrainConfig, flag_of
from xdl.data.validation import counted


LR_FIND_ROWS = 10  # about as many rows of the sweep printed (every ⌈steps/10⌉-th step; its last and suggestion's)


def lr_find_command(config: TrainConfig, args) -> int:
    """The learning-rate range test (`xdl.train.lr_find`) of the model, loss and optimizer ``config``'s options
    build (as `train`'s: `split_and_model`, `TrainConfig.build_trainer`), on its dataset's training split; print
    the sweep (`_sweep_table`), the suggestion and the ``xdl train`` that trains at it (`_train_command`), and
    save the plot at ``--plot``. Writes nothing else. Every option checked before any work."""
    from xdl.plots import figure_path, save_figure
    from xdl.train.lr_find import check_sweep, lr_find

    refuse_config_resume(config, "lr-find", "tests")  # (its run's flags: refused by `refuse_flags`, before)
    check_flags_read(config, args, readers=("optimizer",))  # (its schedule's flags are refused by `REFUSES`)
    smoothing = inspect.signature(lr_find).parameters["smoothing"].default
    min_lr, max_lr, steps, stop_factor, _ = check_sweep(args.min_lr, args.max_lr, args.steps, args.mode,
                                                        args.stop_factor, smoothing, np.float32, name=flag_of, who="")
    if args.plot is not None:
        try:
            figure_path(args.plot, "--plot")
        except ImportError as e:  # (matplotlib missing: the extra named, before any work)
            raise ImportError(f"--plot: {e}") from None
    with xdl.use(config.backend, precision=config.precision) as backend:
        xdl.seed(config.seed)
        parts, _, model = split_and_model(config)
        trainer = config.build_trainer(model)
        print(f"xdl {xdl.__version__} lr-find: backend {backend.name} on {backend.device_name()}"
              f"{precision_note(backend)}; dataset {config.dataset}: its {len(parts.X_train)} training examples")
        print(f"model: {model_summary(model)}; optimizer {config.optimizer}, batch size {config.batch_size}; "
              f"{counted(steps, 'step')}, lr from {min_lr:g} to {max_lr:g} ({args.mode})")
        with warnings.catch_warnings():
            warnings.simplefilter("always", append=True)  # (after the user's, as xdl train's)
            warnings.showwarning = note_once()
            # (no suggestion: said below, as the error; an epoch schedule's rate: xdl train's --lr is its α0)
            warnings.filterwarnings("ignore", message="lr_find: (no suggestion|trainer has an epoch schedule)")
            found = lr_find(trainer, parts.X_train, parts.y_train, min_lr=min_lr, max_lr=max_lr, steps=steps,
                            mode=args.mode, stop_factor=stop_factor)
    print(_sweep_table(found))
    print(_stopped(found, steps))
    if args.plot is not None:
        print(f"wrote {save_figure(found.plot(), args.plot)}")
    if found.suggestion is None:
        print(f"xdl lr-find: error: no suggestion: {found.why_none_named(flag_of)}", file=sys.stderr)
        return 1
    print(f"suggestion: lr {found.suggestion:.3g} (where the smoothed loss falls fastest); train with it:\n"
          f"  {_train_command(args, found.suggestion)}")
    return 0


def _sweep_table(found) -> str:
    """The sweep's step, rate and smoothed loss, every ⌈n/`LR_FIND_ROWS`⌉-th of its n steps, its last and the
    suggestion's (marked)."""
    n = len(found.lrs)
    rows = {*range(0, n, max(1, -(-n // LR_FIND_ROWS))), n - 1} if n else set()
    at = found.suggestion_step
    lines = [f"{'step':>6}  {'lr':>9}  {'smoothed loss':>13}"]
    for k in sorted(rows | ({at} if at is not None else set())):
        lines.append(f"{k + 1:>6}  {found.lrs[k]:>9.3g}  {found.losses[k]:>13.4g}"
                     + ("  ← suggestion" if k == at else ""))
    return "\n".join(lines)


def _stopped(found, steps: int) -> str:
    """Why the sweep of ``steps`` steps ended, in the command's words (its flags). A divergence is the trainer's
    (`lr_find`): a step's cost not finite (the next step's, not recorded), or at an epoch's end its cost far above
    where it started or its state not finite (that epoch's steps recorded) — the result does not say which."""
    n = len(found.lrs)
    return {"steps": f"stopped: all {counted(steps, 'step')} trained",
            "stop_factor": f"stopped at step {n}: the smoothed loss rose above --stop-factor × its lowest",
            "diverged": f"stopped after step {n}: the run diverged (xdl train's divergence rule: a cost or the state "
                        "no longer finite, or the epoch's cost far above where it started)"}[found.stopped]


def _train_command(args, lr: float) -> str:
    """The ``xdl train`` of the options given to ``xdl lr-find`` (its ``--config`` file and the flags typed, as
    given), at the rate ``lr`` (3 significant digits)."""
    words = ["xdl", "train"] + (["--config", shell_word(str(args.config))] if args.config is not None else [])
    for f in dataclasses.fields(TrainConfig):
        if not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        if f.type == "bool":
            words.append(flag_of(f.name) if value else "--no-" + flag_of(f.name)[2:])
        else:
            words += [flag_of(f.name), *(str(v) for v in value)] if f.type == "list[int]" else \
                [flag_of(f.name), shell_quoted(str(value))]
    return " ".join(words + ["--lr", f"{lr:.3g}"])
