"""The README's two quickstart commands are what CI runs, and the main job works."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[test]" && pytest' in readme
    assert 'pip install -e ".[test]"' in ci and "\npytest " in ci


def test_main_job_learns_moons(capsys):
    from xdl import demo

    assert demo.main(epochs=15) > 0.95
    assert "dev accuracy" in capsys.readouterr().out
