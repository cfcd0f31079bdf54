"""`import_error`: what a feature says when the package of an extra it needs does not import.

A package that is not installed names the extra to install (``pip install 'xdl[plot]'``); one that
is installed but fails to import — a release built for NumPy 1 under NumPy 2 (matplotlib before
3.8.4), a dependency of its own missing or broken — is told apart, with its own error: the advice
to install what is there sent the user round in a circle.
"""

from __future__ import annotations


def import_error(error: ImportError, modules: tuple[str, ...], needs: str, extra: str) -> ImportError:
    """The ImportError to raise for ``error``, met importing ``modules`` (import names:
    "matplotlib", or "dask", "distributed", "dask.distributed"): "``needs``: pip install
    'xdl[``extra``]'" where one of them is not installed, or is a release without the submodule
    or the name imported (too old: the extra's floor upgrades it) — ``error.name`` is one or a
    submodule of one, or so is the name of the error it was raised from (dask.distributed
    re-raises distributed's "No module named" as a message of its own, without a name) — else
    "``needs``, which is installed but failed to import: ``error``", with the upgrade that
    replaces a release too old for this NumPy; that one keeps ``error`` as its cause (raise it as
    it is: its traceback shows where the import failed)."""
    names = [getattr(e, "name", None) or "" for e in (error, error.__cause__)]
    if any(name == m or name.startswith(m + ".") for name in names for m in modules):
        new = ImportError(f"{needs}: pip install 'xdl[{extra}]'")
        new.__cause__ = None
    else:
        new = ImportError(f"{needs}, which is installed but failed to import: {error} (pip install --upgrade "
                          f"'xdl[{extra}]' replaces a release too old for this NumPy)")
        new.__cause__ = error
    new.__suppress_context__ = True
    return new
