"""What xdl writes while a progress bar is drawn: each line on its own, the bar cleared first."""

import io
import os
import sys
import time
import warnings

import numpy as np

import xdl
from xdl.config import TrainConfig
from xdl.train import Callback, Trainer
from xdl.train.control import Control
from xdl.tune import tune


class Terminal(io.StringIO):
    """stdout and stderr of a terminal: what both write, in the order written."""

    def isatty(self):
        return True


def screen(written: str) -> list[str]:
    """The lines a terminal shows for ``written``: a carriage return writes over its line from the start."""
    lines = []
    for line in written.split("\n"):
        shown = ""
        for part in line.split("\r"):
            shown = part + shown[len(part):]
        lines.append(shown.rstrip())
    return lines


def on_a_terminal(monkeypatch) -> Terminal:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    return terminal


def test_a_searchs_report_printed_under_its_bar_starts_a_line_of_its_own(monkeypatch):
    terminal = on_a_terminal(monkeypatch)
    X, y = xdl.datasets.digits()
    X = X.astype(np.float32)
    tune(X[:200], y[:200], (X[200:300], y[200:300]), {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=2,
         base=TrainConfig(hidden=[8], epochs=2, patience=0, batch_size=50), progress=True, report=print)
    reports = [line for line in screen(terminal.getvalue()) if "trial" in line and "best so far" in line]
    assert len(reports) == 2 and all(line.startswith("trial ") for line in reports), reports


def test_a_warning_and_a_control_note_in_a_run_with_a_bar_start_lines_of_their_own(monkeypatch, tmp_path):
    terminal = on_a_terminal(monkeypatch)

    class Writes(Callback):  # control.toml, as a babysitter writes it: one applied, one rejected
        def on_epoch_end(self, trainer, record):
            if record["epoch"] in (1, 2):
                path = tmp_path / "control.toml"
                path.write_text("lr = 0.001\n" if record["epoch"] == 1 else "lr = -5\n")
                settled = time.time() - 5
                os.utime(path, (settled, settled))

    X, y = xdl.datasets.digits()
    model = xdl.nn.mlp(64, [8], 10)
    trainer = Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.Adam(model, lr=1e-2), batch_size=50,
                      epochs=4, callbacks=[Writes(), Control(tmp_path, report=print)], progress=True)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: \
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))  # Python's own
        trainer.fit(X[:300].astype(np.float32), y[:300])
    lines = screen(terminal.getvalue())
    applied = [line for line in lines if "control.toml at epoch 1:" in line]
    rejected = [line for line in lines if "control.toml at epoch 2 not applied" in line]
    assert len(applied) == 1 and applied[0].startswith("control.toml"), lines
    assert len(rejected) == 1 and rejected[0].startswith(__file__), lines
