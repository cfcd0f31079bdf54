"""benchmarks/gpu_checks.sh, the one call a lent GPU gets: its steps fit the call's time, each script it
runs takes the flags it passes, and the gpu tests never run on a device come first (tests/conftest.py)."""

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import conftest
from test_bench import load_benchmark_script

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_checks.sh"
CALL_BUDGET = 560  # seconds: a device call's limit is 600, the rest its start's and the logs' transfers
KILL_GRACE = 3  # seconds a step may run past its limit before `timeout -k` kills it


def steps() -> list[tuple[str, int, list[str]]]:
    """[(name, limit in seconds, command's words)] of each ``step NAME SECONDS COMMAND...`` line."""
    found = []
    for line in SCRIPT.read_text().splitlines():
        if line.startswith("step "):
            _, name, limit, *command = shlex.split(line, comments=True)
            found.append((name, int(limit), command))
    return found


def test_the_steps_and_the_lines_before_them_end_within_the_calls_budget():
    """Each step's limit and its kill grace, and each line before the steps under its own `timeout`: a call
    whose steps all run to their limits still ends, with its logs, inside the device's 600 s."""
    text = SCRIPT.read_text()
    assert "timeout -k 3 " in text  # (KILL_GRACE, as step() runs each step)
    preamble = [line for line in text.splitlines() if re.match(r"(nvidia-smi|python3?) ", line)]
    assert not preamble, f"a line outside a step with no time limit of its own: {preamble}"
    guarded = [int(s) for s in re.findall(r"^timeout (\d+) ", text, re.M)]
    found = steps()
    assert {name for name, _, _ in found} >= {"gpu-tests", "report", "batched", "profile", "bn-paths",
                                               "batched-vs-alone", "acceptance"}
    total = sum(limit + KILL_GRACE for _, limit, _ in found) + sum(guarded)
    assert total <= CALL_BUDGET, (total, [(name, limit) for name, limit, _ in found])


def test_the_line_that_names_cupy_runs_over_the_stand_in():
    """The summary's ``python3 -c`` line, over tests/fakecupy: it said AttributeError: __version__ (CuPy has it)."""
    line = next(line for line in SCRIPT.read_text().splitlines() if re.match(r"timeout \d+ python3 -c ", line))
    code = shlex.split(line)[4]
    path = os.pathsep.join(str(p) for p in (ROOT / "tests" / "fakecupy", ROOT))
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": path}, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and re.match(r"python 3\.\d+\.\d+ cupy 14\.", result.stdout), result


class Parsed(Exception):
    """Raised right after a script's parser took its arguments: what follows is the script's work."""


def benchmark_calls() -> list[tuple[str, list[str]]]:
    """[(script's name, its arguments)] of each step that runs a script of benchmarks/."""
    calls = []
    for _, _, command in steps():
        scripts = [i for i, word in enumerate(command) if word.startswith("benchmarks/")]
        if scripts:
            i = scripts[0]
            calls.append((Path(command[i]).stem, command[i + 1:]))
    return calls


@pytest.mark.parametrize("name, arguments", benchmark_calls(), ids=[name for name, _ in benchmark_calls()])
def test_each_script_the_call_runs_imports_and_takes_the_flags_it_passes(name, arguments, monkeypatch, tmp_path):
    """A script that no longer imports (profile_step read check_penalty from where it had moved) or refuses a
    flag gpu_checks.sh passes would fail only on the device, the lent minutes gone: each is loaded and its parser
    given the step's arguments ($out a folder here), stopped there."""
    parse = argparse.ArgumentParser.parse_args

    def parsed(parser, args=None, namespace=None):
        parse(parser, args, namespace)
        raise Parsed

    script = load_benchmark_script(name, monkeypatch)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parsed)
    with pytest.raises(Parsed):
        script.main([word.replace("$out", str(tmp_path)) for word in arguments])


class Item:
    """What `conftest.device_priority` reads of a collected test."""

    def __init__(self, file, name, gpu=True):
        self.path, self.name, self.originalname, self.gpu = Path("tests") / file, name + "[cupy]", name, gpu

    def get_closest_marker(self, name):
        return object() if name == "gpu" and self.gpu else None


def test_the_gpu_tests_never_run_on_a_device_come_first_in_their_lists_order():
    """A gpu test of FIRST_ON_A_DEVICE runs before every other (a step stopped by its limit has their results),
    in the list's order (the kernels first); the rest keep their order; each entry names tests that exist."""
    items = [Item("test_nn.py", "test_dense"), Item("test_graph.py", "test_a_captured_run_x"),
             Item("test_kernels.py", "test_bce_and_mse_kernels_match_the_reference", gpu=False),
             Item("test_kernels.py", "test_bce_and_mse_kernels_match_the_reference"), Item("test_nn.py", "test_relu"),
             Item("test_kernels.py", "test_tanh_sigmoid_and_leaky_relu_kernels_match_the_reference")]
    conftest.pytest_collection_modifyitems(None, items)
    assert [(item.path.name, item.originalname[:18], item.gpu) for item in items] == [
        ("test_kernels.py", "test_tanh_sigmoid_", True), ("test_kernels.py", "test_bce_and_mse_k", True),
        ("test_graph.py", "test_a_captured_ru", True), ("test_nn.py", "test_dense", True),
        ("test_kernels.py", "test_bce_and_mse_k", False), ("test_nn.py", "test_relu", True)]
    for file, fragment in conftest.FIRST_ON_A_DEVICE:
        assert re.search(rf"^def test_\w*{fragment}", (ROOT / "tests" / file).read_text(), re.M), (file, fragment)
