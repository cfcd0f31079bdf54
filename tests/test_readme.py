"""The README's two quickstart commands are what CI runs, the main job works, and every Python
example of the README and of ARCHITECTURE.md's recipes runs."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[test]" && pytest' in readme
    assert 'pip install -e ".[test]"' in ci and "\npytest " in ci


def test_readme_main_command_is_xdl_train():
    readme = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[data,plot]" && xdl train' in readme


def test_main_job_reaches_97_percent_on_digits(tmp_path, capsys):
    """`xdl train` with its defaults (only the output directory moved) on the CPU."""
    from xdl.cli import main

    assert main(["train", "--out", str(tmp_path), "--backend", "numpy", "--no-progress"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["metrics"]["test"]["accuracy"] >= 0.97, report["metrics"]
    assert "files written" in capsys.readouterr().out


def python_examples(name: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / name).read_text(), re.S)


@pytest.mark.parametrize("index", range(len(python_examples("README.md"))))
def test_readme_python_example_runs(index, tmp_path):
    code = python_examples("README.md")[index]
    env = {**os.environ, "XDL_BACKEND": "numpy", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), "the example prints its result"


def test_readme_and_architecture_have_examples():
    assert len(python_examples("README.md")) >= 2
    assert python_examples("ARCHITECTURE.md")  # the op recipe, run by tests/test_autodiff.py


def test_readme_names_the_options_a_resume_may_change():
    """README's resume paragraph lists the flags `xdl train --resume` lets change; that list is
    `xdl.config.RESUME_MAY_CHANGE` (less --resume itself), so a flag added to one is named in the other."""
    from xdl.config import RESUME_MAY_CHANGE

    readme = (ROOT / "README.md").read_text()
    paragraph = readme.split("`xdl train --resume xdl-run/checkpoints` goes on", 1)[1].split("may be given", 1)[0]
    named = set(re.findall(r"`--([a-z-]+)`", paragraph))
    assert named == {k.replace("_", "-") for k in RESUME_MAY_CHANGE if k != "resume"}, named


def test_the_losses_table_says_binary_cross_entropy_takes_k_labels():
    """`xdl.losses`' table said BinaryCrossEntropy takes (m,) or (m, 1) targets; README and the class
    say k outputs give k yes/no labels, which a fit on (m, 4) targets trains."""
    import xdl

    row = xdl.losses.__doc__.split("`BinaryCrossEntropy`", 1)[1].split("`MeanSquaredError`", 1)[0]
    assert "(m, k)" in row and "m·k" in row, row  # (its J then the mean over all m·k terms)
