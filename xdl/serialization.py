"""`save` and `load`: a model's architecture and state in one ``.npz`` file, no pickle.

The file holds every parameter and buffer under its dotted name, plus the architecture as JSON
(``__xdl_architecture__``). Writes are atomic: the data goes to a temporary file in the same
directory, is flushed to disk, and replaces the target with one rename — an interrupted save
leaves the previous file as it was.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from xdl.backend import current_backend
from xdl.caller import warn_caller
from xdl.files import atomic_write, json_number
from xdl.nn import Module
from xdl.nn.architecture import build_on_host, describe
from xdl.nn.module import PREDICTIONS
from xdl.optim.optimizer import Optimizer

ARCHITECTURE_KEY = "__xdl_architecture__"
FORMAT_VERSION = 1
EXTRA_PREFIX = "extra/"  # arrays stored beside the model (e.g. optimizer state in a checkpoint)


def save(model: Module, path, extra: dict | None = None, extra_arrays: dict | None = None) -> Path:
    """Write ``model`` (architecture + parameters + buffers) to ``path`` atomically.

    ``extra`` (JSON-able) and ``extra_arrays`` (name → array) ride along in the same file, e.g. a
    training checkpoint's optimizer state; `load` reads the model and ignores them (`read_extra`
    returns them).
    """
    if not isinstance(model, Module):
        hint = ("; an optimizer's state is opt.state_dict() (pickle it), and a Trainer's Checkpoint keeps it with "
                "the model") if isinstance(model, Optimizer) else ""
        raise TypeError(f"save: model must be an xdl Module, got {type(model).__name__}{hint}")
    if isinstance(path, str) and not path:  # Path('') is the current directory
        raise ValueError("save: the path is ''; name the model file to write")
    if model.predicts is not None and model.predicts not in PREDICTIONS:  # (load would call the file damaged)
        raise ValueError(f"save: model.predicts must be one of {PREDICTIONS} or None, got {model.predicts!r}")
    path = Path(path)
    if path.is_dir():  # else found only at the final rename, after all the work, naming the temporary file
        raise IsADirectoryError(f"save: {str(path)!r} is a directory; name the model file in it")
    try:
        architecture = describe(model)
    except TypeError:
        architecture = None
    arrays = model.state_dict()
    for name, array in (extra_arrays or {}).items():
        arrays[EXTRA_PREFIX + name] = np.asarray(array)
    header = {"format": FORMAT_VERSION, "architecture": architecture, "dtype": str(model.dtype),
              "predicts": model.predicts, "extra": extra}
    arrays[ARCHITECTURE_KEY] = np.array(json.dumps(header, default=json_number))  # a callback's NumPy numbers too
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def read_extra(path) -> tuple[dict | None, dict[str, np.ndarray]]:
    """The ``extra`` header and ``extra_arrays`` stored by `save` in ``path``."""
    header, state = _read(path)
    arrays = {k[len(EXTRA_PREFIX):]: v for k, v in state.items() if k.startswith(EXTRA_PREFIX)}
    return header.get("extra"), arrays


def _read(path) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and arrays of an xdl file; anything else (not an .npz, an .npz without the xdl
    header, a damaged or truncated file, pickled arrays, a newer format) is a ValueError naming the
    file."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"load: {str(path)!r} is a directory; name the model file in it")
    if not path.is_file():
        raise FileNotFoundError(f"load: no such file {str(path)!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"load: {str(path)!r} is not an xdl model file (not an .npz archive, or a damaged one)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if ARCHITECTURE_KEY not in data.files:
                raise LookupError(f"an .npz archive without the {ARCHITECTURE_KEY} entry")
            header = json.loads(str(data[ARCHITECTURE_KEY]))
            state = {k: data[k] for k in data.files if k != ARCHITECTURE_KEY}
    except LookupError as e:
        raise ValueError(f"load: {str(path)!r} is not an xdl model file ({e.args[0]})") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:  # ValueError: pickled or bad JSON
        reason = "it holds pickled objects, which xdl files never do" if "pickle" in str(e) else f"{type(e).__name__}: {e}"
        raise ValueError(f"load: {str(path)!r} is damaged or not an xdl model file ({reason})") from None
    version = header.get("format") if isinstance(header, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise ValueError(f"load: {str(path)!r} has format {version!r}; this xdl reads formats up to {FORMAT_VERSION} "
                         "(was it written by a newer xdl?)")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1 \
            or not isinstance(header.get("extra") or {}, dict):
        raise ValueError(f"load: {str(path)!r} is damaged or not an xdl model file (its header is not xdl's: "
                         f"format {version!r})")
    return header, state


NARROWER_OR_WIDER = {"float16": "float32", "longdouble": "float64", "float128": "float64", "float96": "float64"}


def load(path, model: Module | None = None) -> Module:
    """Read a file written by `save`: a new model built from the saved architecture, or the
    saved state copied into ``model`` (which must have the same parameter names and shapes)."""
    if model is not None and not isinstance(model, Module):
        raise TypeError(f"load: model must be an xdl Module to load the state into (or None), got {model!r}")
    header, state = _read(path)
    state = {k: v for k, v in state.items() if not k.startswith(EXTRA_PREFIX)}
    target = None  # where a model built here goes once filled: the current backend
    if model is None:
        if (header.get("extra") or {}).get("many"):
            raise ValueError(f"load: {str(path)!r} is a checkpoint of fit_many, K models in one stack, not one "
                             "model: fit_many(..., resume=its directory) continues it, and each of its results' "
                             ".model is an ordinary model (xdl.save it)")
        if header.get("architecture") is None:
            raise ValueError(f"load: {str(path)!r} holds a custom model; pass model= to load its state into it")
        target = current_backend()
        dtype = header.get("dtype")
        if dtype in NARROWER_OR_WIDER:  # saved by an xdl that made such layers: converted, and said, not lost
            warn_caller(f"load: {str(path)!r} holds a {dtype} model; xdl's layers are float32 or float64: it is "
                        f"loaded as {NARROWER_OR_WIDER[dtype]}")
            dtype = NARROWER_OR_WIDER[dtype]
        try:
            model = build_on_host(header["architecture"], dtype)  # filled there, then moved
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise ValueError(f"load: {str(path)!r} describes a model xdl cannot build ({type(e).__name__}: {e})") from None
        except MemoryError as e:  # (a damaged header's sizes, or a model too large for this machine)
            raise MemoryError(f"load: the model {str(path)!r} describes does not fit in memory ({e})") from None
    predicts = header.get("predicts")  # absent from files of xdl before it: classes, as they were read
    if predicts is not None and predicts not in PREDICTIONS:
        raise ValueError(f"load: {str(path)!r} is damaged: its model predicts {predicts!r}, not one of {PREDICTIONS}")
    try:
        model.load_state_dict(state)
    except ValueError as e:
        raise ValueError(f"load: {str(path)!r} does not fit the model: {e}") from None
    if predicts is not None:
        model.predicts = predicts
    return model if target is None else model.to(target)
