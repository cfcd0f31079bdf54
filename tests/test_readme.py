"""The README's two quickstart commands are what CI runs, and the main job works."""

import json
from pathlib import Path

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
