"""`xdl.hostmemory.keep_freed_memory`: what it sets, when it leaves the process alone, and that freed
arrays are then reused without new page faults (counted, not timed)."""

import os
import subprocess
import sys

import pytest

import xdl.cli
from xdl import hostmemory
from xdl.cli import main

# 4 arrays of 16 MiB alive at once, then freed, 20 times: glibc by default maps and unmaps them
FAULTS = """
import resource, sys, numpy as np
from xdl.hostmemory import keep_freed_memory
kept = sys.argv[1] == "keep" and keep_freed_memory()
def faults(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
arrays = [np.ones(1 << 21) for _ in range(4)]; del arrays
before = faults()
for _ in range(20):
    arrays = [np.ones(1 << 21) for _ in range(4)]; del arrays
print(kept, faults() - before)
"""


@pytest.fixture
def calls(monkeypatch):
    made = []
    for name in (*hostmemory.USER_SETTINGS, "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hostmemory, "_glibc_mallopt", lambda: lambda parameter, value: made.append((parameter, value)) or 1)
    return made


def test_sets_the_mmap_threshold_then_the_trim_threshold(calls):
    assert hostmemory.keep_freed_memory() is True
    assert calls == [(hostmemory.M_MMAP_THRESHOLD, 32 << 20), (hostmemory.M_TRIM_THRESHOLD, 256 << 20)]


@pytest.mark.parametrize("name, value", [*((name, "65536") for name in hostmemory.USER_SETTINGS),
                                         ("GLIBC_TUNABLES", "glibc.cpu.x86_shstk=off:glibc.malloc.mmap_threshold=65536")])
def test_leaves_a_users_allocator_settings_alone(calls, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert hostmemory.keep_freed_memory() is False
    assert calls == []


def test_other_glibc_tunables_are_not_an_allocator_setting(calls, monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.cpu.x86_shstk=off")
    assert hostmemory.keep_freed_memory() is True and len(calls) == 2


def test_does_nothing_without_glibc_or_when_refused(calls, monkeypatch):
    monkeypatch.setattr(hostmemory, "_glibc_mallopt", lambda: None)
    assert hostmemory.keep_freed_memory() is False
    monkeypatch.setattr(hostmemory, "_glibc_mallopt", lambda: lambda parameter, value: 0)
    assert hostmemory.keep_freed_memory() is False


def test_the_xdl_command_keeps_freed_memory(calls, capsys, monkeypatch):
    monkeypatch.setattr(xdl.cli, "keep_freed_memory", hostmemory.keep_freed_memory)  # undo conftest's stand-in
    assert main(["train", "--epochs", "0"]) == 1  # refused after the setting, before any work
    assert "epochs" in capsys.readouterr().err
    assert len(calls) == 2


@pytest.mark.skipif(not sys.platform.startswith("linux") or hostmemory._glibc_mallopt() is None,
                    reason="glibc only")
def test_freed_arrays_are_reused_without_page_faults():
    def run(mode):
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True,
                             env={k: v for k, v in os.environ.items()
                                  if k not in (*hostmemory.USER_SETTINGS, "GLIBC_TUNABLES")}).stdout.split()
        return out[0] == "True", int(out[1])

    _, default_faults = run("default")
    kept, kept_faults = run("keep")
    assert kept
    if default_faults < 1000:
        pytest.skip(f"this C library already reuses the freed arrays ({default_faults} page faults)")
    assert kept_faults * 10 < default_faults, (kept_faults, default_faults)
