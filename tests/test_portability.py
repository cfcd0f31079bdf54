"""Windows and macOS, simulated here: what CPython lacks there (fcntl, os.pread/pwrite, os.pathconf,
os.fchmod before 3.13), what it does otherwise (os.kill's signal 0, the shells' quoting, cp1252 text),
each patched in for one test."""

import errno
import os
import sys
import types

import numpy as np
import pytest

import xdl
from xdl import files, lock
from xdl.train import History


def windows_kill(pid, sig):
    """CPython's os.kill on Windows: signal 0 is CTRL_C_EVENT, sent by GenerateConsoleCtrlEvent, which
    fails for a pid that is no console group (ERROR_INVALID_PARAMETER) — never ProcessLookupError."""
    raise OSError(errno.EINVAL, "The parameter is incorrect", None, 87)


@pytest.fixture
def windows_os(monkeypatch):
    """This process as CPython 3.11/3.12 on Windows sees its os module: no fcntl, no msvcrt either
    (a test that needs one adds it), no pread/pwrite/pathconf/fchmod, Windows' os.kill."""
    monkeypatch.setitem(sys.modules, "fcntl", None)
    monkeypatch.setitem(sys.modules, "msvcrt", None)
    for name in ("pread", "pwrite", "pathconf", "fchmod"):
        monkeypatch.delattr(os, name, raising=False)
    monkeypatch.setattr(os, "kill", windows_kill)


class FakeMsvcrt(types.ModuleType):
    """msvcrt.locking as Windows does it: a byte range locked through one descriptor cannot be locked
    through another (this process's too) until it is unlocked; a failed LK_NBLCK is EACCES."""

    LK_UNLCK, LK_NBLCK = 0, 2

    def __init__(self):
        super().__init__("msvcrt")
        self.held = {}  # (device, inode, offset) -> fd

    def locking(self, fd, mode, nbytes):
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino, os.lseek(fd, 0, os.SEEK_CUR))
        if mode == self.LK_UNLCK:
            self.held.pop(key, None)
        elif self.held.setdefault(key, fd) != fd:
            raise OSError(errno.EACCES, "Permission denied")


def test_saving_and_loading_work_where_the_os_module_lacks_posix_calls(windows_os, tmp_path):
    """Every save failed on Windows, before writing anything: os.pathconf (the temporary's name) is
    POSIX's, and os.fchmod Windows' only from Python 3.13 — an AttributeError, so no model,
    checkpoint, history or study could be written."""
    model = xdl.nn.mlp(4, [3], 2)
    path = xdl.save(model, tmp_path / "model.npz")
    np.testing.assert_array_equal(xdl.load(path).state_dict()["0.weight"], model.state_dict()["0.weight"])
    assert History.load(History([{"epoch": 1, "cost": 0.5}]).save(tmp_path / "h.json"))["cost"] == [0.5]
    assert sorted(os.listdir(tmp_path)) == ["h.json", "model.npz"]


def test_a_stale_temporary_on_windows_fails_no_save(tmp_path, monkeypatch):
    """A killed writer's temporary was judged by os.kill(pid, 0): on Windows that sends a Ctrl-C (or
    fails, WinError 87), never ProcessLookupError — the next save raised. Windows asks OpenProcess."""
    monkeypatch.setattr(os, "kill", windows_kill)
    monkeypatch.setattr(sys, "platform", "win32")
    path = tmp_path / "model.npz"
    (tmp_path / f"{files._temporary_prefix(path)}999999999.abcdefgh.tmp").write_bytes(b"x")
    xdl.save(xdl.nn.mlp(4, [3], 2), path)  # (no kernel32 here: the temporary is kept, as a live writer's)
    assert path.is_file()


def test_a_directory_lock_is_taken_and_let_go_without_pread_or_flock(windows_os, tmp_path):
    """The lock file was read and written with os.pread/os.pwrite, POSIX's: on Windows every xdl
    train, xdl tune and Checkpoint failed at its start, an AttributeError."""
    with lock.DirectoryLock(tmp_path, "--out", lock.RUN) as held:
        assert held.took_over is None and '"pid"' in (tmp_path / "run.lock").read_text()
    assert not (tmp_path / "run.lock").exists()


def test_a_second_holder_is_refused_on_windows(windows_os, tmp_path, monkeypatch):
    """Without fcntl the directory was not locked at all: two runs in one --out each wrote their
    checkpoints over the other's, two searches their trials.json. Windows locks a byte past the
    holder's name with msvcrt.locking, which excludes another descriptor as flock does."""
    msvcrt = FakeMsvcrt()
    monkeypatch.setitem(sys.modules, "msvcrt", msvcrt)
    first = lock.DirectoryLock(tmp_path, "--out", lock.RUN).acquire()
    with pytest.raises(lock.DirectoryInUseError, match=rf"^--out '.*' is in use by another run: process "
                                                       rf"{os.getpid()} on "):
        lock.DirectoryLock(tmp_path, "--out", lock.RUN).acquire()
    with pytest.raises(lock.DirectoryInUseError):
        lock.check_not_in_use(tmp_path, "--out", lock.RUN)
    first.release()
    assert msvcrt.held == {} and not (tmp_path / "run.lock").exists()
    with lock.DirectoryLock(tmp_path, "--out", lock.RUN) as again:
        assert again.took_over is None


def test_a_look_on_windows_unlocks_the_byte_it_locked(windows_os, tmp_path, monkeypatch):
    """A look (`check_not_in_use`) at a free directory locks the lock file's byte for an instant: it must
    unlock it before closing the file (Microsoft's documentation leaves a lock closed unreleased for a
    while), or the run that looked was refused its own directory as "in use"."""
    msvcrt = FakeMsvcrt()
    monkeypatch.setitem(sys.modules, "msvcrt", msvcrt)
    (tmp_path / "run.lock").write_text('{"pid": 999999999, "host": "h", "started": "then"}')  # a killed run's
    lock.check_not_in_use(tmp_path, "--out", lock.RUN)
    assert msvcrt.held == {}
    with lock.DirectoryLock(tmp_path, "--out", lock.RUN) as held:
        assert held.took_over["pid"] == 999999999
    assert msvcrt.held == {}

def test_the_resume_command_is_quoted_as_windows_shells_read_it(monkeypatch):
    """shlex's single quotes are POSIX shells': on Windows every path has a backslash, so every
    suggested --resume came quoted 'xdl-run\\checkpoints', which cmd passes on quotes and all."""
    from xdl.cli import text
    from xdl.cli.text import shell_word

    monkeypatch.setattr(text, "os", types.SimpleNamespace(name="nt", sep="\\"))  # (not os.name: pathlib reads it)
    assert shell_word("xdl-run\\checkpoints") == "xdl-run\\checkpoints"
    assert shell_word("C:\\Users\\me\\my runs\\checkpoints") == '"C:\\Users\\me\\my runs\\checkpoints"'
    assert shell_word("runs,a") == '"runs,a"'  # (PowerShell's array operator)
    monkeypatch.undo()
    assert shell_word("my runs/checkpoints") == "'my runs/checkpoints'"  # (POSIX shells: as before)


@pytest.mark.parametrize("record", [{"train_accuracy": 0.85, "dev_accuracy": 0.84},   # high bias
                                    {"train_accuracy": 0.99, "dev_accuracy": 0.90},   # high variance
                                    {"train_accuracy": 0.90, "dev_accuracy": 0.80}])  # both
def test_a_diagnosis_prints_where_output_is_cp1252(record):
    """On Windows a script's stdout redirected to a file or a pipe (CI) is cp1252: the README's
    ``print(..., xdl.diagnose(history))`` raised UnicodeEncodeError on 'λ' after the training ran."""
    str(xdl.diagnose(record)).encode("cp1252")


def test_a_windows_path_in_a_double_quoted_toml_string_is_explained(tmp_path):
    """TOML reads "C:\\Users\\me" as escapes: the error said "Invalid hex value (at line 1, column 12)"."""
    path = tmp_path / "run.toml"
    path.write_text('out = "C:\\Users\\me\\run"\n')
    with pytest.raises(ValueError, match=r"Invalid hex value .*; a backslash in a \"...\" string starts an escape: "
                                         r"write a Windows path in single quotes"):
        files.read_toml(path, "--config")
