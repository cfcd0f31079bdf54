"""`xdl.lock.DirectoryLock`: a directory held by one search, run or benchmark at a time — what the
other tests reach only through the commands (the retries of a look, the file named and removed)."""

import errno
import fcntl
import os

import pytest

from xdl import lock


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def busy_flock(monkeypatch):
    """flock refusing the first ``state["busy"]`` exclusive tries (another descriptor holding the lock
    for a moment: `check_not_in_use`'s look), and the sleeps between tries, recorded, not slept."""
    state, flock = {"busy": 0, "tries": 0, "sleeps": []}, fcntl.flock

    def refusing(fd, operation):
        state["tries"] += 1
        if state["tries"] <= state["busy"]:
            raise BlockingIOError(errno.EWOULDBLOCK, os.strerror(errno.EWOULDBLOCK))
        return flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", refusing)
    monkeypatch.setattr(lock.time, "sleep", state["sleeps"].append)
    return state


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
@pytest.mark.parametrize("busy", range(lock.LOOK_TRIES + 2))
def test_acquire_waits_out_a_look_of_fewer_than_look_tries_and_then_names_the_holder(tmp_path, busy_flock, busy):
    """A lock held for the instant of another's look (`check_not_in_use`) is tried again, `LOOK_TRIES`
    times in all, `LOOK_SECONDS` apart, before the directory is said to be in use: taken at once, a run
    starting while ``xdl train --resume`` looked was refused as "in use" by no one at work. Refused, no
    descriptor is left open and the file is not this process's."""
    busy_flock["busy"] = busy
    before = open_descriptors()
    held = lock.DirectoryLock(tmp_path, "--out", lock.RUN)
    if busy < lock.LOOK_TRIES:
        with held:
            assert busy_flock["sleeps"] == [lock.LOOK_SECONDS] * busy
            assert f'"pid": {os.getpid()}' in held.path.read_text() and held.took_over is None
        assert not held.path.exists()
    else:
        with pytest.raises(lock.DirectoryInUseError, match=r"^--out '.*' is in use by another run"):
            held.acquire()
        assert busy_flock["sleeps"] == [lock.LOOK_SECONDS] * (lock.LOOK_TRIES - 1)
        assert busy_flock["tries"] == lock.LOOK_TRIES
    assert open_descriptors() == before


def test_a_look_of_an_instant_is_waited_out(tmp_path, busy_flock):
    """One try refused (a look holding the lock as the run starts) is never "in use": there is a retry."""
    busy_flock["busy"] = 1
    with lock.DirectoryLock(tmp_path, "--out", lock.RUN) as held:
        assert held.path.is_file() and busy_flock["tries"] == 2


@pytest.mark.parametrize("made_again", [False, True])
def test_a_lock_file_removed_by_its_ending_holder_as_it_is_taken_is_opened_again(tmp_path, monkeypatch, made_again):
    """The holder ending removes its file between this one's open and its flock (and another may have
    made a new one since): the flock is then on a file no one else opens, so acquire opens the path
    again — else two holders each held a lock of their own on one directory."""
    take, calls = lock._lock, []

    def removed_meanwhile(fd, tries=1):
        calls.append(fd)
        if len(calls) == 1:
            (tmp_path / "run.lock").unlink()
            if made_again:
                (tmp_path / "run.lock").write_text("")
        return take(fd, tries)

    monkeypatch.setattr(lock, "_lock", removed_meanwhile)
    before = open_descriptors()
    with lock.DirectoryLock(tmp_path, "--out", lock.RUN) as held:
        assert len(calls) == 2 and open_descriptors() == before + 1  # (the first file's closed, its flock gone)
        assert os.fstat(held._fd).st_ino == os.stat(held.path).st_ino
        assert f'"pid": {os.getpid()}' in held.path.read_text()
    assert not held.path.exists() and open_descriptors() == before


@pytest.mark.parametrize("host", ["h", "a-long-host-name." * 20])
def test_a_lock_left_by_a_killed_holder_is_taken_over_and_rewritten_whole(tmp_path, host):
    """A killed holder's file (its flock gone with it) is taken over, its holder said in ``took_over``,
    and the file then names this process alone: written over from its start without the truncate, a
    longer name left its tail behind, and the next look read no holder from it."""
    import json

    gone = {"pid": 999999999, "host": host, "started": "2026-01-01T00:00:00+00:00"}
    (tmp_path / "run.lock").write_text(json.dumps(gone))
    with lock.DirectoryLock(tmp_path, "--out", lock.RUN) as held:
        assert held.took_over == gone and "took over" in lock.took_over_note(held)
        assert json.loads(held.path.read_text())["pid"] == os.getpid()
        assert lock._holder(held._fd)["pid"] == os.getpid()
    with lock.DirectoryLock(tmp_path, "--out", lock.RUN) as again:  # (its own file, removed: nothing to take over)
        assert again.took_over is None


@pytest.mark.parametrize("left", ["", "42", "[1, 2]", '"text"', "{not json", "own"])
def test_a_lock_file_naming_no_other_holder_is_taken_without_a_take_over(tmp_path, left):
    """A file naming no holder — empty (its maker had not written it yet), not xdl's JSON object, or
    naming this very process (its own file, left where the directory refused its removal) — is taken
    with ``took_over`` None: no "process … which is gone" said of this one, nor an AttributeError."""
    import json

    own = {"pid": os.getpid(), "host": "here", "started": "2026-01-01T00:00:00+00:00"}
    (tmp_path / "run.lock").write_text(json.dumps(own) if left == "own" else left)
    with lock.DirectoryLock(tmp_path, "--out", lock.RUN) as held:
        assert held.took_over is None and json.loads(held.path.read_text())["pid"] == os.getpid()


def test_release_is_harmless_twice_or_before_acquire_and_leaves_anothers_file(tmp_path):
    """release of a lock not held (never taken, or released already: a `with` around an explicit
    release) does nothing — nor removes the file of the holder that has the directory since."""
    lock.DirectoryLock(tmp_path, "--out", lock.RUN).release()
    with lock.DirectoryLock(tmp_path, "--out", lock.RUN) as first:
        first.release()
        assert not first.path.exists()
        second = lock.DirectoryLock(tmp_path, "--out", lock.RUN).acquire()
    assert second.path.is_file()  # (first's __exit__: a second release, which left second's file alone)
    second.release()
    assert not second.path.exists()


def test_release_removes_its_own_lock_file_only(tmp_path):
    """Where the file at the path is no longer the one held (removed meanwhile, and another holder's
    made there since), release leaves it: removed, that holder's directory was free to a third."""
    held = lock.DirectoryLock(tmp_path, "--out", lock.RUN).acquire()
    held.path.unlink()
    held.path.write_text('{"pid": 1, "host": "another"}')
    held.release()
    assert held.path.read_text() == '{"pid": 1, "host": "another"}'


def raising(error):
    """A stand-in for a call that fails with ``error``."""
    def fail(*args, **kwargs):
        raise error
    return fail


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_a_lock_file_the_directory_will_not_let_go_is_left_and_the_directory_free(tmp_path, monkeypatch):
    """A directory made read-only during the run keeps its lock file (PermissionError at the removal): release
    says nothing (the run's own error, if one stopped it, is the one said) and lets the file go, so the next
    holder takes it."""
    before = open_descriptors()
    held = lock.DirectoryLock(tmp_path, "--out", lock.RUN).acquire()
    with monkeypatch.context() as patched:
        patched.setattr(lock.Path, "unlink", raising(PermissionError(errno.EACCES, "Permission denied")))
        held.release()
    assert held.path.is_file() and open_descriptors() == before
    with lock.DirectoryLock(tmp_path, "--out", lock.RUN) as again:
        assert again.took_over is None  # (its own process's name in it: nothing taken over)


def test_a_look_where_flock_needs_a_descriptor_open_for_writing_still_finds_the_holder(tmp_path, monkeypatch):
    """On NFS flock is emulated with fcntl's record locks, and an exclusive one on a descriptor opened
    read-only fails (EBADF): a look that opened the file read-only took that for "cannot look" and let a
    second run into a directory in use."""
    flock = fcntl.flock

    def emulated_on_nfs(fd, operation):
        if operation & fcntl.LOCK_EX and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", emulated_on_nfs)
    with lock.DirectoryLock(tmp_path, "--out", lock.RUN):
        with pytest.raises(lock.DirectoryInUseError, match=rf"process {os.getpid()} on "):
            lock.check_not_in_use(tmp_path, "--out", lock.RUN)
    lock.check_not_in_use(tmp_path, "--out", lock.RUN)


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EIO, errno.EBADF])
def test_a_flock_that_fails_for_another_reason_is_that_error_never_in_use(tmp_path, busy_flock, monkeypatch, code):
    """Only "held by another" (EWOULDBLOCK) is tried again and said as "in use"; another error (no locks on
    this file system: ENOLCK) is raised as itself by acquire at once — said as "in use by a process that has
    not written its name yet", it sent the user looking for a process that did not exist — and a look leaves
    the decision to acquire."""
    monkeypatch.setattr(fcntl, "flock", raising(OSError(code, os.strerror(code))))
    with pytest.raises(OSError) as raised:
        lock.DirectoryLock(tmp_path, "--out", lock.RUN).acquire()
    assert raised.value.errno == code and not isinstance(raised.value, lock.DirectoryInUseError)
    assert busy_flock["sleeps"] == []
    assert lock.check_not_in_use(tmp_path, "--out", lock.RUN) is None
