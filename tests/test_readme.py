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


def readme_text() -> str:
    return (ROOT / "README.md").read_text()


def test_the_readme_says_a_second_backward_of_one_tensor_accumulates():
    """README said xdl's graph rules are PyTorch's "made stricter"; a second backward of the same loss is
    not refused (PyTorch refuses it) but accumulates the gradients again, which README now says."""
    import numpy as np

    import xdl

    model = xdl.nn.mlp(4, [3], 2)
    x, y = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32), np.array([0, 1, 0, 1, 1])
    cost = xdl.losses.SoftmaxCrossEntropy()(model(x), y)
    cost.backward()
    once = [xdl.to_numpy(p.grad).copy() for p in model.parameters()]
    cost.backward()
    assert all(np.allclose(xdl.to_numpy(p.grad), 2 * g) for p, g in zip(model.parameters(), once))
    sentence = " ".join(readme_text().split("A second backward of the same tensor", 1)[-1].split(".", 1)[0].split())
    assert sentence.startswith("is not refused: it accumulates the gradients again"), sentence


def test_the_readme_says_which_optimizers_and_problems_bench_quick_runs():
    """README listed all six problems right after `xdl bench optimizers --quick`, which runs four of them
    (`xdl.bench.QUICK`) with four optimizers."""
    from xdl.bench import PROBLEMS, QUICK

    shown = {"quadratic": "quadratic", "rosenbrock": "Rosenbrock", "moons": "moons", "circles": "circles",
             "digits": "digits", "mnist1d": "MNIST-1D"}
    assert set(shown) == set(PROBLEMS)
    quick = readme_text().split("--quick", 1)[1].split("writes", 1)[0]
    assert [name for name in QUICK if shown[name] not in quick] == [], quick
    assert [name for name in PROBLEMS if name not in QUICK and shown[name] in quick] == [], quick
    assert "SGD, Momentum, RMSprop and Adam" in " ".join(quick.split()), quick


def test_the_readme_and_the_docstrings_name_every_rule_and_activation():
    """ARCHITECTURE.md's optimizer and layer recipes: README's first paragraph and `MLPClassifier`'s docstring list
    the rules, `mlp`'s and `MLPClassifier`'s the activations of `ACTIVATIONS` — a rule or an activation added to
    the tables and to none of them passed every test."""
    import xdl
    from xdl.config import OPTIMIZERS
    from xdl.nn import ACTIVATIONS, mlp
    from xdl.sklearn import MLPClassifier

    first = " ".join(readme_text().split("\n\n", 2)[1].split())
    rules = [name for name in xdl.optim.__all__ if isinstance(getattr(xdl.optim, name), type)
             and issubclass(getattr(xdl.optim, name), xdl.optim.Optimizer) and name != "Optimizer"]
    assert [rule for rule in rules if not re.search(rf"\b{rule}\b", first)] == [], first
    classifier, layers = " ".join(MLPClassifier.__doc__.split()), " ".join(mlp.__doc__.split())
    assert [name for name in OPTIMIZERS if f'"{name}"' not in classifier] == []
    assert [name for name in ACTIVATIONS if f'"{name}"' not in classifier or f'"{name}"' not in layers] == []


def test_the_readmes_notebook_paragraph_holds(tmp_path):
    """What README's notebook paragraph says of `fit` called again: it goes on with the run, refuses
    once every epoch is trained until `trainer.epochs` grows, returns the run's one `History` (a frame
    of epochs as `pd.DataFrame(history.history)` or `pd.DataFrame(history)`), and a model put in
    evaluation mode is trained in training mode and left in training mode."""
    pd = pytest.importorskip("pandas")
    import xdl
    from xdl.data import split
    from xdl.train import Trainer

    X, y = xdl.datasets.digits()
    s = split(X, y, seed=0)
    model = xdl.nn.mlp(64, [8], 10)
    trainer = Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.Adam(model), epochs=1, progress=False)
    first = trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    with pytest.raises(ValueError, match="has trained all its 1 epochs?.*raise trainer.epochs"):
        trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    trainer.epochs += 2
    model.eval()
    history = trainer.fit(s.X_train, s.y_train, dev=(s.X_dev, s.y_dev))
    assert history is first and model.training
    assert "left in training mode" in readme_text()
    for frame in (pd.DataFrame(history.history), pd.DataFrame(history)):
        assert frame["epoch"].tolist() == [1, 2, 3] and "dev_accuracy" in frame.columns


def test_the_readmes_sections_come_in_a_newcomers_order():
    """Install and first run, the command line, the Python API, the GPU, search, benchmarks: GPU and
    benchmark paragraphs stood between the command line and the Python API, under no heading."""
    headings = re.findall(r"^## (.+)$", readme_text(), re.M)
    assert headings == ["Quickstart", "The command line", "Python", "GPU", "Many models and hyperparameter search",
                        "Benchmarks", "Layout"], headings


def test_the_readme_names_every_hook_a_callback_may_override():
    """README's list of `Callback`'s hooks left out `on_checkpoint`, then `check_fits` (no on_ name: unchecked)."""
    import inspect

    from xdl.train import Callback

    paragraph = readme_text().split("A callback of your own subclasses `xdl.train.Callback`", 1)[1].split("\n\n", 1)[0]
    hooks = [name for name, _ in inspect.getmembers(Callback, inspect.isfunction) if not name.startswith("_")]
    assert [name for name in hooks if f"`{name}(" not in paragraph] == [], paragraph


def exit_statuses() -> dict[str, str]:
    """README's exit-status list: status ("0", "1", "2", "128 + N") → its item, on one line."""
    listed = (ROOT / "README.md").read_text().split("Their exit status:\n\n", 1)[1].split("\n\n", 1)[0]
    return {status: " ".join(text.split()) for status, text in re.findall(r"^- ([^:]+): (.*?)(?=^- |\Z)", listed,
                                                                           re.M | re.S)}


def test_the_readmes_exit_statuses_are_each_command_s(capsys):
    """README's exit-status list said gradcheck's 1 and 2 and nothing of xdl lr-find's 1 for "no suggestion" and
    for a run's flag it refuses (xdl gradcheck's, then argparse's 2 "unrecognized arguments", is its 2 of any
    error): the status each command gives is in the item that names it so."""
    from xdl.cli import REFUSES, main

    items = exit_statuses()
    assert list(items) == ["0", "1", "2", "128 + N"], items
    said = {"lr-find": ("`xdl lr-find`: `--epochs`", "--epochs"),
            "gradcheck": ("`xdl gradcheck`: any error, a run's flag it refuses", "--epochs"),
            "tune": ("`xdl tune`: `--n-trials`", "--n-trials")}
    assert set(said) == set(REFUSES)
    for command, (words, flag) in said.items():
        status = main([command, "--dataset", "moons", flag, "3"])
        assert words in items[str(status)] and flag in capsys.readouterr().err, (command, status)
    status = main(["lr-find", "--dataset", "moons", "--hidden", "8", "--steps", "5"])
    assert "no suggestion" in capsys.readouterr().err and "`xdl lr-find`: no suggestion" in items[str(status)]
    assert "`xdl gradcheck`: the check failed" in items["1"] and "`xdl gradcheck`: the check passed" in items["0"]
