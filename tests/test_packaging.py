"""The wheel carries what the installed package needs: the CUDA sources the loader compiles."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from xdl.cuda.source import SOURCES

ROOT = Path(__file__).resolve().parents[1]


def built(kind: str, directory: Path) -> Path:
    """The ``kind`` ("wheel" or "sdist") `python -m build` makes of the repository, in ``directory``."""
    pytest.importorskip("build")
    result = subprocess.run([sys.executable, "-m", "build", f"--{kind}", "--outdir", str(directory), str(ROOT)],
                            capture_output=True, text=True)
    if result.returncode and "Could not find a version" in result.stderr + result.stdout:
        pytest.skip("the build backend cannot be installed here (no package index)")
    assert result.returncode == 0, result.stderr[-2000:]
    (made,) = directory.glob("xdl-*.whl" if kind == "wheel" else "xdl-*.tar.gz")
    return made


def test_wheel_ships_every_kernel_source(tmp_path):
    wheel = built("wheel", tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for file in SOURCES:
        assert f"xdl/_kernels/{file}" in names, file
    assert "xdl/cuda/source.py" in names and not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    import xdl

    assert wheel.name.startswith(f"xdl-{xdl.__version__}-")  # the version is written once, in xdl/__init__.py
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)


def test_the_sdist_carries_what_its_own_tests_read(tmp_path):
    import tarfile

    names = {name.split("/", 1)[1] for name in tarfile.open(built("sdist", tmp_path)).getnames() if "/" in name}
    assert {"ARCHITECTURE.md", "README.md", "LICENSE", ".ci/run", "kernels/optim.cu", "tests/test_readme.py"} <= names


def test_the_numpy_floor_has_the_casting_rules_xdl_relies_on():
    """``numpy>=1.26`` let pip keep NumPy 1.26, whose value-based casting (before NEP 50, NumPy 2.0)
    broke xdl's dtype rules without an error: an int32 tensor + 2**40 came back unchanged (NumPy 2
    refuses the int: OverflowError) and relu of a 0-d float32 tensor was float64."""
    import tomllib

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert [d for d in dependencies if d.startswith("numpy")] == ["numpy>=2"]
