"""The structure ARCHITECTURE.md promises: no import cycle, every module importable alone, backend
knowledge only in the backend classes, and no citation of files outside the repository."""

import ast
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xdl"


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def module_path(name: str) -> Path:
    path = ROOT.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imports_of(name: str, known: set[str]) -> set[str]:
    """The xdl modules ``name`` imports anywhere in its code (deferred imports count too: a cycle
    hidden inside a function is still a cycle)."""
    tree = ast.parse(module_path(name).read_text())
    package = name if module_path(name).name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return {m for m in found if m in known and m != name}


def test_the_import_graph_has_no_cycle():
    known = set(module_names())
    graph = {name: imports_of(name, known) for name in known}
    state, stack = {}, []

    def visit(name):
        state[name] = "open"
        stack.append(name)
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[name] = "done"

    for name in sorted(known):
        if name not in state:
            visit(name)


def test_every_module_imports_alone_in_a_fresh_interpreter():
    """``import xdl.m`` runs the package's ``__init__`` first, so a module that ``import xdl`` loads imports alone
    exactly when ``import xdl`` does: one fresh interpreter answers for all of those (it prints their names),
    and every other module gets one of its own (an interpreter per module, each loading all of xdl, was half
    a minute of the suite on 2 cores)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDL_BACKEND": "numpy"}

    def run(name, code=None):
        result = subprocess.run([sys.executable, "-c", code or f"import {name}"], capture_output=True, text=True,
                                env=env)
        return name, result.returncode, result.stderr.strip().splitlines()[-1:] if result.returncode else "", \
            result.stdout

    names = module_names()
    loaded_by_xdl = "import sys, xdl; print(*sorted(m for m in sys.modules if m.partition('.')[0] == 'xdl'))"
    _, code, err, printed = run("xdl", loaded_by_xdl)
    assert not code, [("xdl", err)]
    alone = [name for name in names if name not in printed.split()]
    assert "xdl" not in alone and len(alone) < len(names)
    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = [(name, err) for name, code, err, _ in pool.map(run, alone) if code]
    assert not failures, failures


def test_no_isort_skip_is_needed():
    assert not [str(p) for p in PACKAGE.rglob("*.py") if "isort: skip" in p.read_text()]


# Backend knowledge lives in xdl/backend.py and xdl/cuda/ only.
BACKEND_LEAKS = {
    "imports cupy": re.compile(r"^\s*(import cupyx?\b|from cupyx?\b)|import_module\(\s*[\"']cupyx?[\"']", re.M),
    "tests a backend's name": re.compile(r"\.name\s*[!=]=\s*[\"'](numpy|cupy)[\"']|[\"'](numpy|cupy)[\"']\s*[!=]=\s*\S*\.name\b"
                                        r"|\.name\s+(not\s+)?in\s*[(\[{][^)\]}]*[\"'](numpy|cupy)[\"']"),
    "probes for a device pointer": re.compile(r"hasattr\([^)]*[\"']ptr[\"']\)|\.data\.ptr\b"),
    "compares array modules": re.compile(r"\bxp\s+is\s+(not\s+)?(numpy|np|cupy)\b"),
}


def test_backend_knowledge_stays_in_the_backend_classes():
    allowed = {PACKAGE / "backend.py"}
    leaks = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]):
        if path in allowed or PACKAGE / "cuda" in path.parents:
            continue
        text = path.read_text()
        leaks += [f"{path.relative_to(ROOT)} {what}" for what, pattern in BACKEND_LEAKS.items() if pattern.search(text)]
    assert not leaks, leaks


def test_the_leak_patterns_catch_what_they_are_for():
    samples = {"imports cupy": "import cupy\n", "tests a backend's name": 'if backend.name == "numpy":',
               "probes for a device pointer": 'hasattr(a.data, "ptr")', "compares array modules": "if xp is cupy:"}
    for what, sample in samples.items():
        assert BACKEND_LEAKS[what].search(sample), what


def test_nothing_cites_files_outside_the_repository():
    cites = re.compile(r"DESIGN\.md|STYLE\.md|\.\./shared")
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").rglob("*"),
             ROOT / "README.md", ROOT / "ARCHITECTURE.md", *(ROOT / "kernels").glob("*.cu")]
    assert not [str(p.relative_to(ROOT)) for p in files if p.is_file() and cites.search(p.read_text())]


PUBLIC_PACKAGES = ("xdl", "xdl.nn", "xdl.optim", "xdl.train", "xdl.data", "xdl.tune", "xdl.bench")


def test_every_public_class_and_function_says_what_it_is():
    """``help(name)`` on a public name (each package's ``__all__``, and `TrainConfig`, which the
    estimator's and the search's docstrings send the reader to) gave only a signature for
    `xdl.Function`, the search's `Uniform`, `LogUniform`, `IntUniform` and `Choice`, and a generated
    one for `Split`, `GradcheckResult` and `TrainConfig`: each now has a docstring of its own."""
    import dataclasses
    import importlib
    import inspect

    from xdl.config import TrainConfig
    from xdl.gradcheck import GradcheckResult

    names = [(f"{package}.{name}", getattr(importlib.import_module(package), name))
             for package in PUBLIC_PACKAGES for name in importlib.import_module(package).__all__]
    names += [("xdl.config.TrainConfig", TrainConfig), ("xdl.gradcheck.GradcheckResult", GradcheckResult)]
    missing = []
    for where, obj in names:
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
        # (a dataclass or NamedTuple without one gets its signature as its docstring)
        generated = doc is not None and doc.startswith(f"{obj.__name__}(") and (
            dataclasses.is_dataclass(obj) or hasattr(obj, "_fields"))
        if not doc or not doc.strip() or generated:
            missing.append(where)
    assert not missing, f"public names without a docstring of their own: {missing}"


def test_every_parameter_of_the_main_entry_points_is_named_in_its_docstring():
    """``help(xdl.optim.Adam)``, an IDE's tooltip, said nothing of beta1, beta2, eps, check_finite or
    params (nor `Trainer`'s batch_size and callbacks, `fit_many`'s dtype and progress, `mlp`'s
    n_features and standardize, `MLPClassifier`'s lr, l2, dropout, …): each parameter is now named
    in double backquotes — alone or opening an expression (``bias=False``, ``(X, y)``) — in the
    docstring help() shows (a class's own, with its ``__init__``'s)."""
    import inspect

    import xdl
    from xdl.data import split
    from xdl.nn import BatchNorm, Dense, Module, mlp
    from xdl.optim import Optimizer, StackedOptimizer
    from xdl.sklearn import MLPClassifier
    from xdl.train import Trainer, fit_many, lr_find

    # every rule xdl.optim exports (a list of five here passed a sixth whose docstring left out a setting)
    rules = [rule for rule in (getattr(xdl.optim, name) for name in xdl.optim.__all__)
             if isinstance(rule, type) and issubclass(rule, Optimizer) and rule is not Optimizer]
    documented = [*rules, StackedOptimizer, Trainer, Trainer.evaluate, Module.predict,
                  Module.predict_proba, fit_many, mlp, MLPClassifier, BatchNorm, Dense, xdl.tensor, split, xdl.load,
                  lr_find]
    missing = []
    for obj in documented:
        function = obj.__init__ if inspect.isclass(obj) else obj
        doc = obj.__doc__ or ""
        if inspect.isclass(obj) and "__init__" in vars(obj):
            doc += inspect.getdoc(function) or ""
        missing += [f"{obj.__qualname__}: {name}" for name in inspect.signature(function).parameters
                    if name != "self" and not re.search(rf"``\(?{re.escape(name)}\b", doc)]
    assert not missing, f"parameters their docstrings do not name: {missing}"


def private_names_imported(path: Path, modules: str) -> list[str]:
    """The ``_private`` names (a leading underscore: "this module's own") that ``path`` imports from a module of
    the package ``modules``, each as ``module.name``: imported by name, or read from a module it imported
    (``from xdl.ops import penalty`` then ``penalty._check_kind``)."""
    tree = ast.parse(path.read_text())
    package = modules.split(".")

    def private(name):
        return name.startswith("_") and not name.startswith("__")

    def is_module(dotted):
        where = ROOT.joinpath(*dotted.split("."))
        return where.with_suffix(".py").is_file() or where.is_dir()

    imported = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
                and node.module.split(".")[:len(package)] == package]
    modules_bound = {alias.asname or alias.name: f"{node.module}.{alias.name}" for node in imported
                     for alias in node.names if is_module(f"{node.module}.{alias.name}")}
    modules_bound.update({alias.asname: alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                          for alias in node.names if alias.asname and alias.name.split(".")[:len(package)] == package})
    return [f"{node.module}.{alias.name}" for node in imported for alias in node.names if private(alias.name)] + \
        [f"{modules_bound[node.value.id]}.{node.attr}" for node in ast.walk(tree)
         if isinstance(node, ast.Attribute) and private(node.attr) and isinstance(node.value, ast.Name)
         and node.value.id in modules_bound]


def test_no_private_name_of_xdl_is_imported_by_another_module():
    """xdl/cli/ was one module, cli.py: split into one concept a module, its helpers kept their underscores while
    each was imported by another module of the package (``_note``, ``_shell_word``, ``_signal_status`` …), telling
    a reader "used only here" of names shared by several commands (as were ops.optim's chunk helpers, the
    optimizer's checks that the stacked one reuses, control's applied file). A name shared is public; a private
    one is its module's alone (tests may still import one, to test it)."""
    shared = {str(path.relative_to(ROOT)): names for path in sorted([*PACKAGE.rglob("*.py"),
                                                                     *(ROOT / "benchmarks").rglob("*.py")])
              if (names := private_names_imported(path, "xdl"))}
    assert not shared, shared


def test_private_names_imported_finds_a_private_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from xdl.cli.text import _note, shell_word\nfrom xdl.config import _private\n"
                      "def f():\n    from xdl.cli.commands.train import _one_class, __doc__\n")
    assert private_names_imported(sample, "xdl.cli") == ["xdl.cli.text._note", "xdl.cli.commands.train._one_class"]
    assert private_names_imported(sample, "xdl") == ["xdl.cli.text._note", "xdl.config._private",
                                                     "xdl.cli.commands.train._one_class"]
    sample.write_text("from xdl.ops import penalty\nimport xdl.cli.text as text\nfrom xdl.cli import text as words\n"
                      "penalty._check_kind('l2')\ntext._note(words._quoted(penalty.KINDS, penalty.__doc__))\n")
    assert sorted(private_names_imported(sample, "xdl")) == ["xdl.cli.text._note", "xdl.cli.text._quoted",
                                                             "xdl.ops.penalty._check_kind"]
    assert private_names_imported(sample, "xdl.cli") == ["xdl.cli.text._note", "xdl.cli.text._quoted"]
