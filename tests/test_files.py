"""Files xdl writes and reads by name: atomic writes (`xdl.files`), History files, figures."""

import errno
import io
import math
import os
import pickle
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xdl
from xdl import files, plots
from xdl.train import History
from xdl.tune.study import Study, Trial


def history(**columns):
    """A History of three epochs; ``columns`` replace whole columns (a list per name)."""
    records = [{"epoch": e, "train_cost": 1.0 / e, "train_accuracy": 0.5 + e / 10, "dev_cost": 1.2 / e,
                "dev_accuracy": 0.4 + e / 10, "lr": 1e-3, "seconds": 0.1, "step_seconds": 0.05} for e in (1, 2, 3)]
    for name, values in columns.items():
        for record, value in zip(records, values):
            record[name] = value
    return History(records)


def model():
    return xdl.nn.mlp(2, [3], 2)  # its file is a few kB: it fits in a pipe's buffer


def read_pipe(fd) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


# -- what a path may be ----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [None, 3, io.BytesIO(), 1.5], ids=["None", "int", "BytesIO", "float"])
def test_every_reader_and_writer_takes_a_file_name_and_says_so(tmp_path, bad):
    writers = {"save": lambda p: xdl.save(model(), p), "load": xdl.load, "History.save": history().save,
               "History.load": History.load, "plot_history": lambda p: plots.plot_history(history(), p)}
    if bad is None:
        del writers["plot_history"]  # (its figure, returned: `test_a_plot_without_a_path_is_a_figure_a_notebook_shows`)
    for what, call in writers.items():
        with pytest.raises(TypeError, match=rf"^{what}: path must be a file name \(str or os.PathLike\), got "
                                            rf"{type(bad).__name__}"):
            call(bad)
    with open(tmp_path / "f.npz", "wb") as f, pytest.raises(TypeError, match="file objects are not supported"):
        xdl.save(model(), f)
    assert os.listdir(tmp_path) == ["f.npz"] and (tmp_path / "f.npz").read_bytes() == b""


def test_a_file_descriptor_is_not_a_path_history_load_leaves_it_open(tmp_path):
    """open() takes an int as a file descriptor: History.load(0) read stdin and closed fd 0."""
    path = history().save(tmp_path / "h.json")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(TypeError, match="History.load: path must be a file name"):
            History.load(fd)
        os.fstat(fd)  # still open
    finally:
        os.close(fd)


def test_an_empty_path_is_refused_by_readers_as_by_writers():
    for call, what in ((xdl.load, "load"), (History.load, "History.load")):
        with pytest.raises(ValueError, match=f"^{what}: the path is ''; name the file"):
            call("")


def test_bytes_names_are_names(tmp_path):
    path = xdl.save(model(), os.fsencode(tmp_path / "m.npz"))
    assert xdl.load(os.fsencode(path)).state_dict().keys() == model().state_dict().keys()


def test_saving_under_a_regular_file_says_it_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    for call in (lambda p: xdl.save(model(), p), history().save):
        with pytest.raises(NotADirectoryError, match=r"'.*afile' is a file, not a directory"):
            call(tmp_path / "afile" / "m.npz")
    assert (tmp_path / "afile").read_text() == "x"


# -- devices and pipes -------------------------------------------------------------------------
def test_a_pipe_is_written_into_never_replaced(tmp_path):
    """As open() writes it (``torch.save`` to a FIFO another process reads): the rename of an atomic
    write put a regular file in the pipe's place."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    saved = model()
    for write, read in ((lambda: xdl.save(saved, fifo), lambda p: xdl.load(p)),
                        (lambda: history().save(fifo), History.load)):
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader there: the writer's open does not wait
        try:
            assert write() == fifo
            data = read_pipe(reader)
        finally:
            os.close(reader)
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)
        copy = tmp_path / "copy"
        copy.write_bytes(data)
        assert read(copy) is not None
        copy.unlink()
    assert sorted(os.listdir(tmp_path)) == ["pipe"]  # no temporary left


def test_a_character_device_is_written_into_never_replaced(tmp_path):
    """``xdl.save(model, "/dev/null")`` (timing a save) replaced /dev/null with a file. Here a private
    null device under tmp_path, where the system lets us make one."""
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        with open(null, "wb") as f:
            f.write(b"")
    except OSError:
        pytest.skip("cannot make a character device here (unprivileged)")
    assert xdl.save(model(), null) == null
    history().save(null)
    assert plots.plot_history(history(), null) == null
    assert stat.S_ISCHR(os.stat(null).st_mode) and sorted(os.listdir(tmp_path)) == ["null"]


def test_a_socket_is_refused_naming_it(tmp_path):
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        with pytest.raises(ValueError, match=r"save: '.*s' is not a regular file"):
            xdl.save(model(), path)
        assert stat.S_ISSOCK(os.stat(path).st_mode)


# -- long names ----------------------------------------------------------------------------------
def test_a_long_but_legal_name_is_saved_and_its_stale_temporaries_found(tmp_path):
    """The temporary's name was the target's plus ~20 characters: too long for a legal long name."""
    path = tmp_path / ("m" * 251 + ".npz")  # 255 bytes: the longest name
    stale = tmp_path / f"{files._temporary_prefix(path)}999999999.abcdefgh.tmp"  # a dead writer's
    stale.write_bytes(b"x")
    assert len(stale.name) < 64
    saved = model()
    assert xdl.save(saved, path) == path
    np.testing.assert_array_equal(xdl.load(path).state_dict()["0.weight"], saved.state_dict()["0.weight"])
    assert os.listdir(tmp_path) == [path.name]
    assert History.load(history().save(tmp_path / ("h" * 250 + ".json")))["epoch"] == [1, 2, 3]


@pytest.mark.parametrize("length", range(220, 256))
def test_every_legal_name_length_is_saved_its_temporary_within_the_limit(tmp_path, length):
    """A name close to the file system's limit (255 bytes): the temporary's name, the target's plus the
    writer's pid and mkstemp's tail, passed the limit unless the name was hashed (ENAMETOOLONG)."""
    path = tmp_path / ("m" * (length - 4) + ".npz")
    assert files.atomic_write(path, lambda f: f.write(b"saved")) == path
    assert os.listdir(tmp_path) == [path.name] and path.read_bytes() == b"saved"


@pytest.mark.parametrize("name", ["run[1].npz", "run[!x].npz", "r?n.npz", "r*n.npz", "[a-z].json"])
def test_stale_temporaries_of_a_name_with_glob_characters_are_found(tmp_path, name):
    """The name is looked up literally: as a glob pattern, ``run[1].npz``'s temporaries were looked for as
    ``run1.npz``'s, and a killed writer's stayed forever."""
    path = tmp_path / name
    stale = tmp_path / f"{files._temporary_prefix(path)}999999999.abcdefgh.tmp"  # a dead writer's
    stale.write_bytes(b"x")
    assert files.remove_stale_temporaries(path) == [stale]
    assert os.listdir(tmp_path) == []


def test_text_written_into_a_pipe_is_utf8_in_a_locale_that_is_not():
    """A pipe (here the standard output a caller reads) is written into, not replaced: its text went in the
    locale's encoding, and in an ASCII locale a '±' failed the write."""
    code = ("import sys; from xdl.files import atomic_write; "
            "atomic_write('/dev/stdout', lambda f: f.write('mean \\u00b1 sd \\u2192 \\u65e5\\u672c'), binary=False)")
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "mean ± sd → 日本".encode()


def test_a_save_removes_only_its_own_targets_stale_temporaries(tmp_path):
    """``.run.*.tmp`` matches the temporaries of ``run.4000000.npz`` too: read as a dead writer's of
    ``run`` (no process 4000000), a save of ``run`` deleted one whose writer was alive, and that save
    failed at its rename (FileNotFoundError)."""
    own = tmp_path / f"{files._temporary_prefix(tmp_path / 'run')}999999999.abcdefgh.tmp"  # a dead writer's
    other = tmp_path / f"{files._temporary_prefix(tmp_path / 'run.4000000.npz')}{os.getpid()}.abcd1234.tmp"
    for path in (own, other):
        path.write_bytes(b"x")
    assert files.remove_stale_temporaries(tmp_path / "run") == [own]
    assert other.exists() and not own.exists()


@pytest.mark.parametrize("binary", [True, False])
def test_every_byte_is_on_disk_before_the_one_rename_that_puts_it_in_place(tmp_path, monkeypatch, binary):
    """The order that makes a write survive a crash: all the data handed to the file descriptor, fsync'd,
    then one rename over the target (no copy, no write in place). Unflushed, the fsync synced a file
    missing its buffered tail, and a crash after the rename left a truncated file where the old one was."""
    events = []
    fsync, replace = files.os.fsync, files.os.replace

    def observed_fsync(fd):
        events.append(("fsync", os.fstat(fd).st_size))
        return fsync(fd)

    def observed_replace(source, target):
        events.append(("replace", Path(source).parent == tmp_path and Path(source).name.endswith(".tmp"),
                       Path(target)))
        return replace(source, target)

    monkeypatch.setattr(files.os, "fsync", observed_fsync)
    monkeypatch.setattr(files.os, "replace", observed_replace)
    for size in (0, 1, 100, 8191, 8192, 8193, 1 << 20):  # within, at and past io's default buffer
        path = tmp_path / f"out-{size}"
        path.write_bytes(b"old")
        events.clear()
        content = "x" * size
        files.atomic_write(path, lambda f: f.write(content.encode() if binary else content), binary=binary)
        assert events == [("fsync", size), ("replace", True, path)], size
        assert path.read_text() == content and sorted(os.listdir(tmp_path)) == sorted(
            f"out-{s}" for s in (0, 1, 100, 8191, 8192, 8193, 1 << 20) if s <= size)


@pytest.mark.parametrize("refused", ["directory", "file"])
def test_a_write_the_system_would_refuse_is_refused_before_any_work_leaving_the_file(tmp_path, monkeypatch, refused):
    """A directory not writable, or a write-protected file (which ``open`` refuses; a rename would not), is
    refused naming it before the writer runs: no temporary made, the old file as it was. (``os.access`` is
    patched: root may write anywhere, so chmod alone would not show it.)"""
    path = tmp_path / "model.npz"
    path.write_bytes(b"old")
    denied = tmp_path if refused == "directory" else path
    access = files.os.access
    monkeypatch.setattr(files.os, "access", lambda name, mode, **kw: Path(name) != denied and access(name, mode, **kw))
    calls = []
    with pytest.raises(PermissionError, match="not writable" if refused == "directory" else "write-protected") as error:
        files.atomic_write(path, calls.append)
    assert str(denied) in str(error.value) and calls == []
    assert os.listdir(tmp_path) == ["model.npz"] and path.read_bytes() == b"old"


def test_a_live_writers_temporary_is_left_and_a_dead_ones_removed(tmp_path):
    """A temporary of the same target is removed only where its writer's process is gone: a live
    writer's (this process, pid 1) is its save under way, whose rename would fail without it; a file
    not named as a writer's is not one."""
    path = tmp_path / "model.npz"
    prefix = files._temporary_prefix(path)
    live = [tmp_path / f"{prefix}{pid}.abcd1234.tmp" for pid in (os.getpid(), 1)]
    live.append(tmp_path / f"{prefix}mine.tmp")  # (no writer's name: a file of the user's, never removed)
    dead = [tmp_path / f"{prefix}{pid}.abcd1234.tmp" for pid in (999999999, 4194305)]
    for temporary in live + dead:
        temporary.write_bytes(b"x")
    assert sorted(files.remove_stale_temporaries(path)) == sorted(dead)
    xdl.save(model(), path)
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, *(t.name for t in live)])


def test_a_dead_writers_temporary_this_user_may_not_remove_is_left_and_the_save_goes_on(tmp_path, monkeypatch):
    """In a sticky directory (/tmp) another user's leftover temporary cannot be removed: its PermissionError
    failed the save of this user's file, whose own write had nothing to do with it."""
    import errno

    path = tmp_path / "model.npz"
    path.write_bytes(b"old")
    theirs = tmp_path / f"{files._temporary_prefix(path)}999999999.abcd1234.tmp"
    theirs.write_bytes(b"x")
    unlink = Path.unlink

    def refused(self, *args, **kwargs):  # (as a sticky directory refuses it; chmod would not stop root)
        if self == theirs:
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), os.fspath(self))
        return unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", refused)
    assert files.remove_stale_temporaries(path) == []
    xdl.save(model(), path)
    assert theirs.read_bytes() == b"x" and xdl.load(path) is not None
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, theirs.name])


def test_a_name_too_long_is_reported_against_the_target_never_the_temporary(tmp_path):
    path = tmp_path / ("m" * 300 + ".npz")
    with pytest.raises(OSError) as error:
        xdl.save(model(), path)
    assert error.value.filename == str(path) and "too long" in str(error.value)
    assert os.listdir(tmp_path) == []


def test_a_directory_made_read_only_during_a_write_is_reported_against_the_target(tmp_path, monkeypatch):
    """The rename refused (the directory made read-only while the file was written: chmod a-w, by
    another process), the temporary's removal was refused too, and that second error — naming the
    temporary — took the first's place."""
    import errno

    path = tmp_path / "model.npz"
    path.write_bytes(b"old")

    def refused(name, *args, **kwargs):  # (as the directory refuses them; chmod would not stop root)
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(name))

    monkeypatch.setattr(files.os, "replace", refused)
    monkeypatch.setattr(files.os, "unlink", refused)
    with pytest.raises(PermissionError) as error:
        xdl.save(model(), path)
    assert error.value.filename == str(path) and ".tmp" not in str(error.value)
    assert path.read_bytes() == b"old"


def test_a_ctrl_c_as_the_npz_writer_closes_a_member_is_said_as_the_ctrl_c(tmp_path, monkeypatch):
    """A second Ctrl-C lands in the checkpoint the first one's stop writes. Where it landed as zipfile
    began closing a member (before its ``try``), the archive's own close then refused ("Can't close the
    ZIP file while there is an open writing handle on it"): that ValueError took the interrupt's place,
    and ``xdl train`` said it as an error of its own, with no word of the checkpoint that still stood."""
    import zipfile

    path = tmp_path / "checkpoint.npz"
    before = model()
    xdl.save(before, path)
    close, landed = zipfile._ZipWriteFile.close, []

    def interrupted_close(self):  # as a signal handled at the method's first instruction
        if not landed:
            landed.append(self)
            raise KeyboardInterrupt
        return close(self)

    monkeypatch.setattr(zipfile._ZipWriteFile, "close", interrupted_close)
    with pytest.raises(KeyboardInterrupt):
        xdl.save(model(), path)
    assert landed and os.listdir(tmp_path) == [path.name]  # no temporary left
    np.testing.assert_array_equal(xdl.load(path).state_dict()["0.weight"], before.state_dict()["0.weight"])
    member = landed[0]  # (left open by the interrupt: let it and its archive go quietly, not in a later test's GC)
    member._zipfile._writing, member._zipfile.fp = False, None
    io.BufferedIOBase.close(member)


# -- History files ---------------------------------------------------------------------------------
def test_a_history_comes_back_as_saved_non_finite_values_and_none_apart(tmp_path):
    """NaN and ±infinity are written as Python's json writes them (so they come back, and JSON's null
    stays None: a value not measured); a file of an older xdl reads as before."""
    h = history(train_cost=[float("nan"), 0.5, 0.4], dev_cost=[float("inf"), -float("inf"), None])
    loaded = History.load(h.save(tmp_path / "h.json"))
    assert math.isnan(loaded["train_cost"][0]) and loaded["train_cost"][1:] == [0.5, 0.4]
    assert loaded["dev_cost"] == [float("inf"), -float("inf"), None]
    (tmp_path / "old.json").write_text('{"records": [{"epoch": 1, "train_cost": NaN}], "best_epoch": null}')
    assert math.isnan(History.load(tmp_path / "old.json")["train_cost"][0])


# -- figures -------------------------------------------------------------------------------------
def drawn(monkeypatch, **columns) -> dict:
    """plot_history's lines of a history with ``columns``, by panel title and label."""
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig) or path)
    plots.plot_history(history(**columns), "unused.png")
    return {(ax.get_title(), line.get_label()): (list(line.get_xdata()), list(line.get_ydata()))
            for ax in figures[0].axes for line in ax.lines}


def test_a_curve_is_drawn_at_the_epochs_that_recorded_it(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    lines = drawn(monkeypatch, dev_cost=[None, 0.6, 0.4])
    assert lines[("cost", "dev")] == ([2, 3], [0.6, 0.4])  # the whole dev curve was dropped
    assert lines[("cost", "dev (EWA β=0.6)")][0] == [2, 3]


def test_smoothing_goes_on_after_a_nan_epoch(monkeypatch, tmp_path):
    """As TensorBoard smooths: over the finite values (the EWA was NaN from the NaN epoch on)."""
    monkeypatch.chdir(tmp_path)
    lines = drawn(monkeypatch, train_cost=[1.0, float("nan"), 0.5])
    x, y = lines[("cost", "train (EWA β=0.6)")]
    assert x == [1, 3] and np.allclose(y, xdl.ewa.ewa([1.0, 0.5], 0.6))


def test_smoothing_leaves_out_infinite_values():
    """As NaN: an infinite cost (an overflowed epoch) is drawn where it was, but the EWA goes over the finite
    values alone — through one it was infinite (or NaN, after −∞ and +∞) ever after."""
    costs = [1.0, float("inf"), 0.5, -float("inf"), 0.25]
    fig = plots.plot_history(History([{"epoch": e, "train_cost": c} for e, c in enumerate(costs, 1)]), smoothing=0.6)
    raw, smoothed = fig.axes[0].lines[:2]
    assert list(raw.get_xdata()) == [1, 2, 3, 4, 5] and list(raw.get_ydata()) == costs
    assert smoothed.get_label() == "train (EWA β=0.6)" and list(smoothed.get_xdata()) == [1, 3, 5]
    assert np.allclose(smoothed.get_ydata(), xdl.ewa.ewa([1.0, 0.5, 0.25], 0.6))


def random_history(rng) -> History:
    """A history of 1 to 6 epochs whose drawn columns are each absent, or hold numbers, None and NaN at random."""
    epochs = int(rng.integers(1, 7))
    records = [{"epoch": e} for e in range(1, epochs + 1)]
    for name in ("train_cost", "dev_cost", "train_accuracy", "dev_accuracy", "lr"):
        if rng.random() < 0.75:
            for record in records:
                draw = rng.random()
                record[name] = None if draw < 0.2 else float("nan") if draw < 0.3 else round(float(rng.random()), 3)
    if all(record.get(name) is None for record in records for name in plots.CURVES):
        records[0]["train_cost"] = 0.5
    best = int(rng.integers(1, epochs + 1)) if rng.random() < 0.5 else None
    return History(records, best_epoch=best, stopped_epoch=epochs if best is not None else None)


def expected_panels(history, smoothing) -> dict:
    """What plot_history draws, found from the history alone: per panel title, (label, x, y, alpha) of each line —
    a column at the epochs that recorded it, and its EWA over its finite values (xdl.ewa.ewa) where β > 0."""
    panels = {}
    for metric in ("cost", "accuracy"):
        lines = []
        for split in ("train", "dev"):
            points = [(r["epoch"], r[f"{split}_{metric}"]) for r in history if r.get(f"{split}_{metric}") is not None]
            if points:
                lines.append((split, [e for e, _ in points], [v for _, v in points], 0.3 if smoothing else 1.0))
                finite = [(e, v) for e, v in points if math.isfinite(v)]
                if smoothing and finite:
                    lines.append((f"{split} (EWA β={smoothing})", [e for e, _ in finite],
                                  list(xdl.ewa.ewa([v for _, v in finite], smoothing)), 1.0))
        if lines:
            panels[metric] = lines
    rates = [(r["epoch"], r["lr"]) for r in history if r.get("lr") is not None]
    if rates:
        panels["learning rate"] = [(None, [e for e, _ in rates], [v for _, v in rates], 1.0)]
    return panels


def test_each_curve_is_its_column_at_the_epochs_that_recorded_it_and_its_ewa(rng):
    """plot_history of 25 random histories: per panel (cost, accuracy, learning rate; none a history leaves
    empty) the lines, their data, labels and opacity as `expected_panels` finds them from the records; the
    axes' labels; a dotted line at the best epoch in every panel where one was restored, none otherwise."""
    for _ in range(25):
        history, smoothing = random_history(rng), [0, 0.6, 0.9][rng.integers(3)]
        fig = plots.plot_history(history, smoothing=smoothing)
        panels = expected_panels(history, smoothing)
        assert [ax.get_title() for ax in fig.axes] == list(panels)
        for ax, (title, lines) in zip(fig.axes, panels.items()):
            ylabel = "learning rate" if title == "learning rate" else title
            assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", ylabel)
            curves = ax.lines[:len(lines)]
            for line, (label, x, y, alpha) in zip(curves, lines, strict=True):
                assert label is None and line.get_label().startswith("_") or line.get_label() == label
                assert list(line.get_xdata()) == x
                np.testing.assert_allclose(np.asarray(line.get_ydata(), dtype=float), y, equal_nan=True)
                assert (line.get_alpha() or 1.0) == alpha
            marks = [list(line.get_xdata()) for line in ax.lines[len(lines):]]
            assert marks == ([] if history.best_epoch is None else [[history.best_epoch] * 2])
            assert (ax.get_legend() is not None) == (title != "learning rate")


def test_the_smoothing_is_a_beta_in_0_to_1_one_excluded():
    """β = 1 would hold the first value for ever; a bool or a string is no number."""
    for beta in (1, 1.0, -0.1, 2, True, "0.5", float("nan")):
        with pytest.raises((ValueError, TypeError), match=r"^plot_history: smoothing must be a number in \[0, 1\)"):
            plots.plot_history(history(), smoothing=beta)
    for beta in (0, 0.0, 0.999):
        assert plots.plot_history(history(), smoothing=beta).axes


def shown_alone(line) -> list:
    """The points of ``line`` a reader sees with no line through them: those its markers mark (a
    line through one point draws nothing)."""
    if line.get_marker() in ("None", None, "", " "):
        return []
    every = line.get_markevery()
    return [(line.get_xdata()[i], line.get_ydata()[i]) for i in (range(len(line.get_xdata())) if every is None else every)]


def test_a_one_epoch_history_shows_its_values():
    """A run of one epoch (``xdl train --epochs 1``) had every panel blank but for its legend:
    each curve a line through one point. A value with no finite neighbour is marked."""
    fig = plots.plot_history(History(history().records[:1]))
    for ax in fig.axes:
        assert ax.lines and all(shown_alone(line) == [(1, line.get_ydata()[0])] for line in ax.lines), ax.get_title()
    # a value between NaNs alike; the curve's others are a line, unmarked
    train = plots.plot_history(history(train_cost=[1.0, float("nan"), 0.5]), smoothing=0).axes[0].lines[0]
    assert shown_alone(train) == [(1, 1.0), (3, 0.5)]
    assert shown_alone(plots.plot_history(history()).axes[0].lines[0]) == []


def test_a_history_without_the_learning_rate_has_no_empty_panel():
    """As a regression's accuracy: a panel none of its columns fill is left out."""
    fig = plots.plot_history(History([{k: v for k, v in r.items() if k != "lr"} for r in history()]))
    assert [ax.get_title() for ax in fig.axes] == ["cost", "accuracy"]


def test_a_search_of_one_completed_trial_shows_its_best_so_far():
    """A study whose one trial that trained to its end is its last (or its only one) had its best
    so far panels blank: a step through one point draws nothing."""
    study = Study({"space": {"lr": {"log_uniform": [1e-3, 1.0]}}})
    study.trials = [Trial(0, 0, {"lr": 0.1}, "pruned", dev_accuracy=0.9, dev_cost=0.3, epochs=1, seconds=1.0),
                    Trial(1, 0, {"lr": 0.02}, "completed", dev_accuracy=0.8, dev_cost=0.3, epochs=3, seconds=2.0)]
    by_trials, by_seconds = plots.plot_study(study).axes[-2:]
    assert shown_alone(by_trials.lines[0]) == [(2, 0.8)] and shown_alone(by_seconds.lines[0]) == [(3.0, 0.8)]


STUDY_SPACE = {"dropout": {"uniform": [0.0, 0.5]}, "lr": {"log_uniform": [1e-4, 1.0]},
               "beta2": {"one_minus_log": [0.9, 0.999]}, "optimizer": {"choice": ["adam", "sgd", "momentum"]}}


def random_study(rng) -> Study:
    """A study over `STUDY_SPACE` (a dimension of each scale) of 1 to 12 trials in 1 to 3 rounds, numbered out
    of order, each completed, stopped, pruned or failed (one at least not failed)."""
    study = Study({"space": STUDY_SPACE})
    count = int(rng.integers(1, 13))
    for number in rng.permutation(count):
        status = ("completed", "stopped", "pruned", "failed")[rng.integers(4)]
        params = {"dropout": round(float(rng.uniform(0, 0.5)), 3), "lr": float(10 ** rng.uniform(-4, 0)),
                  "beta2": float(1 - 10 ** rng.uniform(-3, -1)),
                  "optimizer": ("adam", "sgd", "momentum")[rng.integers(3)]}
        accuracy = None if status == "failed" else round(float(rng.random()), 3)
        study.trials.append(Trial(int(number), int(rng.integers(0, 3)), params, status, dev_accuracy=accuracy,
                                  error="diverged" if status == "failed" else None,
                                  seconds=round(float(rng.uniform(0.1, 5.0)), 2)))
    if all(t.status == "failed" for t in study.trials):
        study.trials[0].status, study.trials[0].dev_accuracy, study.trials[0].error = "completed", 0.5, None
    return study


def expected_scatter(study, name) -> list:
    """What plot_study draws against hyperparameter ``name``, found from the trials alone: per round (in order)
    its finished then its pruned trials (failed ones left out), as (label, hollow, [(x, dev accuracy)]) — x
    1 − β for one_minus_log, the choice's position for a choice."""
    kind, = STUDY_SPACE[name]
    drawn = [t for t in study.trials if t.status != "failed"]
    groups = []
    for r in sorted({t.round for t in drawn}):
        for pruned in (False, True):
            chosen = [t for t in drawn if t.round == r and (t.status == "pruned") == pruned]
            x = [1 - t.params[name] if kind == "one_minus_log" else
                 STUDY_SPACE[name]["choice"].index(t.params[name]) if kind == "choice" else t.params[name]
                 for t in chosen]
            if chosen:
                groups.append((f"round {r + 1}" + (", pruned" if pruned else ""), pruned,
                               [(v, t.dev_accuracy) for v, t in zip(x, chosen)]))
    return groups


def test_each_trial_is_drawn_against_each_hyperparameter_and_the_best_so_far_as_study_best_ranks(rng):
    """plot_study of 20 random studies: per hyperparameter panel, each round's finished and pruned trials (pruned
    hollow, a colour per round, labelled by round from 1) at their value on its scale (log axes for log_uniform
    and one_minus_log, 1 − β for the latter); a legend where rounds or pruned trials are told apart; and the
    best dev accuracy so far of completed and stopped trials (NaN before the first), in trial number order,
    as steps after each trial against its number and against the seconds of training so far."""
    import matplotlib.colors

    tab10 = matplotlib.colormaps["tab10"]
    for case in range(20):
        study = random_study(rng)
        fig = plots.plot_study(study)
        assert [ax.get_title() for ax in fig.axes] == [*STUDY_SPACE, "best so far", "best so far"], case
        for ax, name in zip(fig.axes, STUDY_SPACE):
            kind, = STUDY_SPACE[name]
            assert ax.get_xscale() == ("log" if kind in ("log_uniform", "one_minus_log") else "linear"), (case, name)
            assert ax.get_xlabel() == ("1 − beta2" if kind == "one_minus_log" else name)
            groups = expected_scatter(study, name)
            assert [c.get_label() for c in ax.collections] == [label for label, _, _ in groups], (case, name)
            for collection, (label, hollow, points) in zip(ax.collections, groups):
                np.testing.assert_allclose(collection.get_offsets(), points)
                r = int(label.split()[1].rstrip(",")) - 1
                assert np.allclose(collection.get_edgecolor(), matplotlib.colors.to_rgba(tab10(r % 10)))
                faces = collection.get_facecolor()
                assert (len(faces) == 0 or np.all(faces[:, 3] == 0)) if hollow else \
                    np.allclose(faces, matplotlib.colors.to_rgba(tab10(r % 10))), (case, label)
        drawn = [t for t in study.trials if t.status != "failed"]
        told_apart = len({t.round for t in drawn}) > 1 or any(t.status == "pruned" for t in drawn)
        assert (fig.axes[0].get_legend() is not None) == told_apart, case
        in_order = sorted(study.trials, key=lambda t: t.number)
        finished = [t.dev_accuracy if t.status in ("completed", "stopped") else np.nan for t in in_order]
        so_far, seconds = np.fmax.accumulate(finished), np.cumsum([t.seconds for t in in_order])
        by_trials, by_seconds = fig.axes[-2].lines[0], fig.axes[-1].lines[0]
        assert list(by_trials.get_xdata()) == list(range(1, len(in_order) + 1))
        np.testing.assert_allclose(by_seconds.get_xdata(), seconds)
        for line in (by_trials, by_seconds):
            np.testing.assert_allclose(np.asarray(line.get_ydata(), dtype=float), so_far, equal_nan=True)
            assert line.get_drawstyle() == "steps-post"


def test_a_study_without_a_trial_trained_to_its_end_is_refused():
    study = Study({"space": STUDY_SPACE})
    study.trials = [Trial(0, 0, {"dropout": 0.1, "lr": 0.01, "beta2": 0.9, "optimizer": "adam"}, "failed",
                          error="diverged", seconds=1.0)]
    with pytest.raises(ValueError, match="^plot_study: no trial trained to the end"):
        plots.plot_study(study)


def test_a_choice_of_values_equal_under_eq_puts_each_trial_in_its_own_column():
    """As `Choice.coordinate` finds a value, by its JSON: by ==, True was drawn in 1's column and
    False in 0's, and a trial's True passed as one of [1, 2]."""
    study = Study({"space": {"dropout": {"choice": [1, 1.0, True]}}})
    study.trials = [Trial(i, 0, {"dropout": v}, "completed", dev_accuracy=a, dev_cost=0.3)
                    for i, (v, a) in enumerate([(True, 0.9), (1.0, 0.8), (1, 0.7)])]
    ax = plots.plot_study(study).axes[0]
    assert ax.collections[0].get_offsets().tolist() == [[2, 0.9], [1, 0.8], [0, 0.7]]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "1.0", "True"]
    with pytest.raises(ValueError, match="^plot_study: a trial's dropout is True, none of the space's choices"):
        plots.plot_study(study, None, {"dropout": {"choice": [1, 2]}})


def test_a_space_given_as_tune_takes_it_draws_the_study():
    """tune(space={"lr": LogUniform(…)}) searched it; plot_study(study, None, that dict) raised
    "Object of type LogUniform is not JSON serializable"."""
    from xdl.tune.space import LogUniform

    study = Study({})
    study.trials = [Trial(0, 0, {"lr": 0.01}, "completed", dev_accuracy=0.9, dev_cost=0.3)]
    for space in ({"lr": LogUniform(1e-3, 1.0)}, {"lr": {"log_uniform": [np.float32(1e-3), 1.0]}, "epochs": np.int64(3)}):
        assert plots.plot_study(study, None, space).axes[0].get_xscale() == "log"


def test_a_study_its_space_does_not_fit_is_named_before_drawing():
    """Bare KeyErrors ('space', 'weight_decay') and a space's error that named no plot."""
    trials = [Trial(0, 0, {"lr": 0.01}, "completed", dev_accuracy=0.9, dev_cost=0.3)]
    for meta, space, message in [({"base": {}}, None, "the study records no space: pass space="),
                                 ({"space": {"lr": {"log_uniform": [1e-3, 1.0]}}}, {"weight_decay": {"uniform": [0, 1]}},
                                  "the trials hold no value of weight_decay: space= must be the space they searched"),
                                 ({"space": {}}, None, "space: a search space is"),
                                 ({"space": {"lr": {"log_uniform": [1e-3, 1.0]}}}, {"lr": {"choice": [0.1, 0.2]}},
                                  "a trial's lr is 0.01, none of the space's choices")]:
        study = Study(meta)
        study.trials = trials
        with pytest.raises(ValueError, match=f"^plot_study: {message}"):
            plots.plot_study(study) if space is None else plots.plot_study(study, None, space)


def test_a_figure_is_written_in_the_format_its_suffix_names_in_either_case(tmp_path):
    """.svg, .SVG, .pdf, .Png …: the format matplotlib writes for the suffix, its case aside (none: PNG)."""
    starts = {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF", "eps": b"%!PS"}
    for i, (name, format) in enumerate([("h.svg", "svg"), ("h.SVG", "svg"), ("h.Pdf", "pdf"), ("h.PNG", "png"),
                                        ("h.eps", "eps"), ("h", "png")]):
        path = tmp_path / str(i) / name
        path.parent.mkdir()
        assert plots.plot_history(history(), path) == path
        assert path.read_bytes().startswith(starts[format]), name


def test_bad_arguments_are_refused_before_anything_is_drawn(tmp_path, monkeypatch):
    def no_figure(*args, **kwargs):
        raise AssertionError("a figure was made")

    monkeypatch.setattr(plots, "subplots", no_figure)
    h, study = history(), Study({"space": {}})
    cases = [(lambda: plots.plot_history(str(tmp_path / "p.png"), h), TypeError, r"got str; the arguments are \(history, path\)"),
             (lambda: plots.plot_history({"epoch": [1]}, tmp_path / "p.png"), TypeError, "must be an xdl History.*got dict"),
             (lambda: plots.plot_history(study, tmp_path / "p.png"), TypeError, r"got Study; a search's trials are plot_study"),
             (lambda: plots.plot_study(str(tmp_path / "s.png"), study), TypeError, r"got str; the arguments are \(study, path\)"),
             (lambda: plots.plot_study(None, tmp_path / "s.png"), TypeError, "study must be an xdl.tune Study.*got NoneType"),
             (lambda: plots.plot_history(h, tmp_path / "p.xyz"), ValueError, "names the format 'xyz', which matplotlib does not write"),
             (lambda: plots.plot_history(h, tmp_path / "missing" / "p.png"), FileNotFoundError, "does not exist"),
             (lambda: plots.plot_history(history(train_cost=["x", 1, 1]), tmp_path / "p.png"), ValueError,
              "record 0 has train_cost 'x', expected a number or None"),
             (lambda: plots.plot_history(History([{"epoch": 1, "gap": 0.1}]), tmp_path / "p.png"), ValueError,
              "none of the columns drawn"),
             (lambda: plots.plot_history(History(), tmp_path / "p.png"), ValueError,
              "^plot_history: the history is empty$"),
             (lambda: plots.plot_history(history(epoch=[1, None, 3]), tmp_path / "p.png"), ValueError,
              "record 1 has epoch None, expected a number$"),
             (lambda: plots.plot_history(history(dev_cost=[0.5, 1j, 0.4]), tmp_path / "p.png"), ValueError,
              r"record 1 has dev_cost 1j, expected a number or None")]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()
    assert os.listdir(tmp_path) == []


def test_a_plot_that_fails_while_drawing_leaves_no_figure_open(tmp_path, monkeypatch):
    plt = pytest.importorskip("matplotlib.pyplot")
    plt.close("all")

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(plots, "ewa", broken)
    with pytest.raises(RuntimeError, match="drawing failed"):
        plots.plot_history(history(), tmp_path / "p.png")
    assert plt.get_fignums() == [] and os.listdir(tmp_path) == []


def test_a_plot_leaves_the_callers_matplotlib_backend_and_figures_alone(tmp_path):
    """plot_history ran ``matplotlib.use("Agg")``: after it, a notebook's inline plots and a program's
    windows no longer showed (the process's backend was Agg). Its figure is made off pyplot now."""
    pytest.importorskip("matplotlib")
    code = ("import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot as plt; plt.figure()\n"
            "from xdl.plots import plot_history; from xdl.train import History\n"
            "plot_history(History([{'epoch': 1, 'train_cost': 1.0, 'lr': 0.1}]), 'p.png')\n"
            "print(matplotlib.get_backend(), plt.get_fignums())")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "XDL_BACKEND": "numpy"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["svg", "[1]"] and (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_a_plot_without_a_path_is_a_figure_a_notebook_shows(tmp_path, monkeypatch):
    """plot_history and plot_study needed a path: a notebook cell ending with one showed nothing."""
    matplotlib = pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    fig = plots.plot_history(history())
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 3
    assert fig._repr_png_()[:4] == b"\x89PNG"  # (what IPython shows, with or without %matplotlib inline)
    again = pickle.loads(pickle.dumps(fig))  # as matplotlib's own figures ("Can't pickle local object")
    assert len(again.axes) == 3 and again._repr_png_()[:4] == b"\x89PNG"
    study = Study({"space": {"lr": {"log_uniform": [1e-3, 1e-1]}}})
    study.trials.append(Trial(0, 0, {"lr": 0.01}, "completed", dev_accuracy=0.9, dev_cost=0.3, epochs=2, seconds=1.0))
    assert isinstance(plots.plot_study(study), matplotlib.figure.Figure) and os.listdir(tmp_path) == []


def test_a_history_without_some_columns_is_plotted_with_those_it_has(tmp_path):
    """A History made by hand (only a dev cost, no learning rate): a KeyError after the figure was made."""
    path = plots.plot_history(History([{"epoch": 1, "dev_cost": 0.5}, {"epoch": 2, "dev_cost": 0.4}]),
                              tmp_path / "p.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_a_regression_s_history_is_plotted_without_an_empty_accuracy_panel(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from xdl.plots import plot_history
    from xdl.train import History

    history = History([{"epoch": e, "train_cost": 1.0 / e, "dev_cost": 1.2 / e, "train_accuracy": None,
                        "dev_accuracy": None, "lr": 0.01} for e in (1, 2, 3)])
    shown, original = [], plots.subplots
    monkeypatch.setattr(plots, "subplots", lambda *a, **kw: shown.append(a) or original(*a, **kw))
    plot_history(history, tmp_path / "h.png")
    assert shown == [(1, 2)] and (tmp_path / "h.png").is_file()  # cost and learning rate


def test_text_files_are_written_and_read_as_utf8_in_a_locale_that_is_not(tmp_path):
    """Text went in the locale's encoding: in an ASCII locale (LC_ALL=C without Python's UTF-8 mode; a
    Latin-1 one fails alike) a benchmark's results.md failed on its '±' once the benchmark had run, and
    the kernels' sources (formulas in their comments) could not be read."""
    code = ("import codecs, locale, sys; from xdl.files import atomic_write; from xdl.cuda.source import SOURCES; "
            "assert codecs.lookup(locale.getpreferredencoding(False)).name == 'ascii', locale.getpreferredencoding(False); "
            "atomic_write(sys.argv[1], lambda f: f.write('mean \\u00b1 sd \\u2192 \\u65e5\\u672c'), binary=False); "
            "[source.kernels() for source in SOURCES.values()]")  # (the command line itself ASCII)
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "results.md")], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "results.md").read_bytes() == "mean ± sd → 日本".encode()


def test_an_output_directory_linked_to_nowhere_is_named_as_such(tmp_path):
    """mkdir of a dangling link failed as "--out 'runs' cannot be created: File exists", of a name that
    ls shows, in red, and that does not exist."""
    (tmp_path / "runs").symlink_to("gone/runs")
    with pytest.raises(FileNotFoundError, match=r"^--out '.*runs' is a symbolic link to 'gone/runs', which does not "
                                                r"exist: make that directory, or name another$"):
        files.check_writable_dir(tmp_path / "runs", "--out")
    (tmp_path / "gone" / "runs").mkdir(parents=True)
    assert files.check_writable_dir(tmp_path / "runs", "--out") == tmp_path / "runs"


@pytest.mark.parametrize("code", [errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC,
                                  errno.ELOOP, errno.EIO])
def test_a_directory_that_cannot_be_created_is_refused_as_the_system_refused_it(tmp_path, monkeypatch, code):
    """Every mkdir failure was a PermissionError, whose text then said "No such file or directory"
    (tune(..., directory="/proc/xx")): the type is the one the system's error has, the text its words."""
    def refused(self, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(self))

    expected = type(OSError(code, os.strerror(code)))
    monkeypatch.setattr(Path, "mkdir", refused)
    with pytest.raises(expected, match=rf"^--out '.*runs' cannot be created: {re.escape(os.strerror(code))}$") as error:
        files.check_writable_dir(tmp_path / "runs", "--out")
    assert type(error.value) is expected


def test_a_search_directory_the_system_cannot_make_is_refused_by_what_it_is(tmp_path):
    """A file on the way (and /proc, where a directory cannot be made): each error's type and text agree."""
    X, y = xdl.datasets.moons(40)
    (tmp_path / "notes").write_text("mine")
    cases = [(tmp_path / "notes" / "search", NotADirectoryError, "Not a directory")]
    if sys.platform.startswith("linux") and os.path.isdir("/proc/self"):
        cases += [(Path("/proc/xx"), FileNotFoundError, "No such file or directory")]
    for directory, expected, words in cases:
        with pytest.raises(expected, match=rf"^directory '{re.escape(str(directory))}' cannot be created: {words}$"):
            xdl.tune.tune(X, y, (X, y), {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=1, directory=directory)


def test_a_checkpoint_directory_that_cannot_be_looked_up_is_named_as_xdl_train_names_it(tmp_path):
    """The check sat in the command (`xdl train --out`): a Checkpoint of a name over 255 bytes failed
    as a bare "[Errno 36] File name too long: '…'". `check_writable_dir` looks the name up first."""
    with pytest.raises(OSError, match=r"^Checkpoint directory '.*a' cannot be used: File name too long$"):
        files.check_writable_dir(tmp_path / ("a" * 256), "Checkpoint directory")
    X, y = xdl.datasets.moons(40)  # a search's directory too (its lock's name failed first, as bare)
    with pytest.raises(OSError, match=r"^directory '.*a' cannot be used: File name too long$"):
        xdl.tune.tune(X, y, (X, y), {"lr": {"log_uniform": [1e-3, 1e-1]}}, trials=1, directory=tmp_path / ("a" * 256))


def test_a_toml_file_that_cannot_be_read_is_named(tmp_path, monkeypatch):
    from xdl.files import read_toml

    path = tmp_path / "run.toml"
    path.write_text("epochs = 2\n")

    def failing_open(self, *args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(type(path), "open", failing_open)
    with pytest.raises(OSError, match=r"^--config: cannot read '.*run.toml': Input/output error$"):
        read_toml(path, "--config")


def test_toml_with_a_byte_order_mark_is_read_and_another_encoding_named(tmp_path):
    """Notepad's UTF-8 starts with a byte-order mark: "Invalid statement (at line 1, column 1)" for a
    file that shows as ``epochs = 2``; PowerShell's UTF-16 read as a codec's words."""
    from xdl.files import read_toml

    path = tmp_path / "run.toml"
    path.write_bytes(b"\xef\xbb\xbfepochs = 2\n")
    assert read_toml(path, "--config") == {"epochs": 2}
    path.write_bytes("epochs = 2\n".encode("utf-16"))
    with pytest.raises(ValueError, match=r"^--config '.*run.toml' is not valid TOML: TOML is UTF-8 text, and this is "
                                         r"not \(byte 0: invalid start byte\): save it as UTF-8$"):
        read_toml(path, "--config")


def test_epoch_and_trial_axes_are_ticked_at_whole_numbers():
    """One epoch's panels were ticked 0.96, 0.98, …: epochs and trials are counted, ticked whole."""
    fig = plots.plot_history(History(history().records[:1]))
    for ax in fig.axes:
        ticks = ax.xaxis.get_major_locator().tick_values(0.95, 1.05)
        assert len(ticks) and all(float(t).is_integer() for t in ticks), (ax.get_title(), ticks)


def test_json_number_writes_numpy_numbers_and_refuses_times_and_bytes():
    """A record's datetime64 was written as a nanosecond int (or failed naming a date it never held), a
    timedelta64 as a bare count of its unit; a NumPy number is written as the number it holds."""
    import json

    from xdl.files import json_number

    values = [np.float32(0.5), np.int8(-1), np.uint64(2**63 + 1), np.bool_(True), np.longdouble(0.25), np.float16(1.5)]
    assert json.dumps(values, default=json_number) == "[0.5, -1, 9223372036854775809, true, 0.25, 1.5]"
    for value in (np.datetime64(1, "ns"), np.datetime64("2020-01-01"), np.timedelta64(3), np.timedelta64(3, "s"),
                  np.bytes_(b"a"), np.complex64(1j), np.void(b"ab")):
        with pytest.raises(TypeError, match=rf"^{type(value).__name__} .* cannot be written as JSON$"):
            json.dumps([value], default=json_number)


@pytest.mark.parametrize("error, said", [
    (ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib"),
     r"^plots need matplotlib: pip install 'xdl\[plot\]'$"),
    # matplotlib 3.7 under NumPy 2: its extension modules fail as they load (the error has no name)
    (ImportError("numpy.core.multiarray failed to import"),
     r"^plots need matplotlib, which is installed but failed to import: numpy.core.multiarray failed to import "
     r"\(pip install --upgrade 'xdl\[plot\]'")])
def test_a_matplotlib_that_fails_to_import_is_told_from_one_not_installed(tmp_path, monkeypatch, error, said):
    """A matplotlib built for NumPy 1 was told "plots need matplotlib: pip install 'xdl[plot]'",
    which changed nothing where it was installed; now its error, and the upgrade, are said."""
    import builtins

    real = builtins.__import__

    def importing(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise error
        return real(name, *args, **kwargs)

    history = History()
    history.append({"epoch": 0, "cost": 1.0})
    monkeypatch.setattr(builtins, "__import__", importing)
    with pytest.raises(ImportError, match=said) as raised:
        plots.plot_history(history, tmp_path / "curves.png")
    assert raised.value.__cause__ is (None if error.name else error)  # (a broken one's traceback is kept)
    assert not (tmp_path / "curves.png").exists()


@pytest.mark.parametrize("name", ["my runs", "run 1", " lead", "x\u00a0y"])
def test_a_directory_name_with_a_space_is_a_name_not_a_control_character(tmp_path, name):
    """Only blank names and control characters (below 32, and 127) are refused: a space inside a name
    ("my runs", the usual folder on a desktop) is a name like any other, and a run writes there."""
    assert files.check_writable_dir(tmp_path / name, "Checkpoint directory") == tmp_path / name
    assert (tmp_path / name).is_dir()
