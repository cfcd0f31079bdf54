"""`save` and `load`: a model's architecture and state in one ``.npz`` file, no pickle.

The file holds every parameter and buffer under its dotted name, plus the architecture as JSON
(``__xdl_architecture__``); a file with ``extra`` (a training checkpoint's position, history and
callbacks' state) holds it as UTF-8 JSON (``__xdl_extra__``, format 2) and its ``extra_arrays``
under ``extra/``. Writes are atomic: the data goes to a temporary file in the same
directory, is flushed to disk, and replaces the target with one rename — an interrupted save
leaves the previous file as it was.
"""

from __future__ import annotations

import functools
import json
import tokenize
import zipfile
from pathlib import Path

import numpy as np

from xdl.backend import current_backend
from xdl.caller import warn_caller
from xdl.files import atomic_write, check_path, check_target, json_dumps
from xdl.nn import Module
from xdl.nn.architecture import build_on_host, describe
from xdl.nn.module import PREDICTIONS
from xdl.optim.optimizer import Optimizer
from xdl.saved_fields import damaged
from xdl.tensor import to_numpy

ARCHITECTURE_KEY = "__xdl_architecture__"
# A file's ``extra`` as UTF-8 JSON bytes beside the header (format 2): within the header, a NumPy string
# array, it took 4 bytes a character — a checkpoint's history, 2.6 MB of a 3,000-epoch run's, 16 MB of a
# batch of 16 models' after 1,000 epochs, written twice an epoch. A file without extra (a model file) is
# written as format 1, which an older xdl reads.
EXTRA_KEY = "__xdl_extra__"
FORMAT_VERSION = 2
EXTRA_PREFIX = "extra/"  # arrays stored beside the model (e.g. optimizer state in a checkpoint)


def save(model: Module, path, extra: dict | None = None, extra_arrays: dict | None = None) -> Path:
    """Write ``model`` (architecture + parameters + buffers) to ``path`` atomically.

    Kept with it, as ``torch.save(model)`` keeps them: each parameter's dtype (a model may mix
    float32 and float64 layers), which parameters are frozen (``requires_grad`` False: Keras's
    ``trainable``) and which modules are in evaluation mode (``model.eval()``); `load` gives them
    back to the model it builds. A custom model (a Module of your own, a subclass of a layer or of
    Sequential) is saved by its state: load it with ``model=``.

    ``extra`` (a dict of JSON values: numbers, strings, lists, dicts, None) and ``extra_arrays``
    (name → array of numbers, strings or booleans: an object array would need pickle) ride along in
    the same file, e.g. a training checkpoint's optimizer state; `load` reads the model and ignores
    them (`read_extra` returns them). A file with ``extra`` is of format 2 (its JSON stored as UTF-8
    beside the header, `EXTRA_KEY`), one without of format 1; `load` reads both. ``path`` is a file
    name (str or os.PathLike), not a file object; ``/dev/null`` and pipes are written into as ``open``
    would.
    """
    if not isinstance(model, Module):
        hint = ("; an optimizer's state is opt.state_dict() (pickle it), and a Trainer's Checkpoint keeps it with "
                "the model") if isinstance(model, Optimizer) else \
            ("; xdl.save(model, path) saves the model with its state (torch.save(model.state_dict())'s habit), and "
             "xdl.load(path, model=m) loads it into m") if isinstance(model, dict) else \
            "; the model comes first: xdl.save(model, path)" if isinstance(path, Module) else ""
        raise TypeError(f"save: model must be an xdl Module, got {type(model).__name__}{hint}")
    check_target(path, "save")  # (a directory, a missing one, ...) before any work; written by atomic_write
    if model.predicts is not None and model.predicts not in PREDICTIONS:  # (load would call the file damaged)
        raise ValueError(f"save: model.predicts must be one of {PREDICTIONS} or None, got {model.predicts!r}")
    if extra is not None and not isinstance(extra, dict):  # (load would call the file damaged)
        raise TypeError(f"save: extra must be a dict of JSON values or None, got {type(extra).__name__}")
    extra_arrays = _extra_arrays(extra_arrays)
    names = {name for name, _ in model.named_parameters()} | {name for name, _ in model.named_buffers()}
    clash = sorted(names & {"file", "allow_pickle"})  # np.savez's own keywords: one would be dropped or refused
    if clash:
        raise ValueError(f"save: the model has a parameter or buffer named {clash[0]!r}, a name the .npz writer takes "
                         "as its own argument: rename it (a submodule's, 'layer.file', is fine)")
    try:
        architecture = describe(model)
    except TypeError:
        architecture = None
    state = model.state_dict()
    if architecture is not None and (differs := _rebuilt_differs(architecture, state, model.dtype)) is not None:
        warn_caller(f"save: the model's state differs from what its layers describe ({differs}), so load could not "
                    "rebuild it: it is saved as a model of one's own, which xdl.load(path, model=...) loads into a "
                    "model made in code")
        architecture = None
    arrays = {**state, **extra_arrays}
    header = {"format": 1 if extra is None else FORMAT_VERSION, "architecture": architecture,
              "dtype": str(model.dtype), "predicts": model.predicts, "extra": None,
              "feature_names": list(model.feature_names_in_) if model.feature_names_in_ is not None else None,
              "frozen": [name for name, p in model.named_parameters() if not p.requires_grad],
              "evaluating": [prefix for prefix, m in model.named_modules() if not m.training]}
    try:
        if extra is not None:
            arrays[EXTRA_KEY] = np.frombuffer(json_dumps(extra).encode("utf-8"), dtype=np.uint8)  # (NumPy numbers too)
    except (TypeError, ValueError) as e:
        raise TypeError(f"save: extra must be a dict of JSON values (numbers, strings, lists, dicts, None): "
                        f"{e}") from None
    arrays[ARCHITECTURE_KEY] = np.array(json_dumps(header))
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def is_many_checkpoint(extra: dict | None) -> bool:
    """Whether a file's ``extra`` is a `fit_many` checkpoint's (its own marker, not a user's key)."""
    return isinstance(extra, dict) and extra.get("many") is True and "provenance" in extra


def _rebuilt_differs(architecture: dict, state: dict, dtype) -> str | None:
    """What the model `load` would build from ``architecture`` in ``dtype`` (the header's) lacks or has
    beyond ``state`` (names and shapes: the first difference in words), or None where it would take the
    state as it is."""
    try:
        shapes = dict(_rebuilt_shapes(json.dumps(architecture, sort_keys=True), np.dtype(dtype).name))
    except (TypeError, ValueError) as e:  # (a layer's config it no longer takes)
        return f"its layers cannot be built again: {e}"
    missing, extra = sorted(set(shapes) - set(state)), sorted(set(state) - set(shapes))
    if missing or extra:
        return (f"the state {'has ' + ', '.join(extra) if extra else 'lacks ' + ', '.join(missing)}"[:200]
                + ": a layer used twice, an attribute or buffer added, …")
    shaped = next((name for name in state if tuple(state[name].shape) != shapes[name]), None)
    return None if shaped is None else f"{shaped} is {tuple(state[shaped].shape)}, its layer's {shapes[shaped]}"


@functools.lru_cache(maxsize=64)
def _rebuilt_shapes(architecture: str, dtype: str) -> tuple:
    """(name, shape) of each parameter and buffer of the model `load` builds from ``architecture``
    (its JSON) in ``dtype``: built once per architecture and dtype (zeros, nothing drawn), not at
    every checkpoint."""
    rebuilt = build_on_host(json.loads(architecture), dtype)
    return tuple((name, tuple(p.shape)) for name, p in rebuilt.named_parameters()) + \
        tuple((name, tuple(array.shape)) for name, array in rebuilt.named_buffers())


def _extra_arrays(extra_arrays) -> dict[str, np.ndarray]:
    """``extra_arrays`` as NumPy arrays `load` can read, under their names in the file: no object
    array (np.savez would pickle it, and load refuses pickles)."""
    if extra_arrays is None:
        return {}
    if not isinstance(extra_arrays, dict) or not all(isinstance(name, str) for name in extra_arrays):
        got = "a dict with a name that is not a str" if isinstance(extra_arrays, dict) else type(extra_arrays).__name__
        raise TypeError(f"save: extra_arrays must be a dict name (str) → array, or None, got {got}")
    arrays = {}
    for name, array in extra_arrays.items():
        try:
            array = to_numpy(array)
        except (TypeError, ValueError) as e:  # (a ragged list)
            raise ValueError(f"save: extra_arrays[{name!r}] is not an array: {e}") from None
        if array.dtype.hasobject:
            raise TypeError(f"save: extra_arrays[{name!r}] holds Python objects (dtype {array.dtype}); an xdl file "
                            "holds arrays of numbers, strings or booleans, never pickles")
        arrays[EXTRA_PREFIX + name] = array
    return arrays


def read_extra(path) -> tuple[dict | None, dict[str, np.ndarray]]:
    """The ``extra`` header and ``extra_arrays`` stored by `save` in ``path``."""
    extra, arrays, _ = read_checkpoint(path)
    return extra, arrays


def read_checkpoint(path) -> tuple[dict | None, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(extra, extra_arrays, model_state)`` stored by `save` in ``path``, in one read."""
    header, state = _read(path)
    arrays = {k[len(EXTRA_PREFIX):]: v for k, v in state.items() if k.startswith(EXTRA_PREFIX)}
    return header.get("extra"), arrays, {k: v for k, v in state.items() if not k.startswith(EXTRA_PREFIX)}


def is_xdl_file(path) -> bool:
    """Whether ``path`` is a file `save` wrote, of any format (an .npz archive holding xdl's header,
    read without its arrays): a command writing a file of its name replaces its own, not a user's."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with np.load(path, allow_pickle=False) as data:
            return ARCHITECTURE_KEY in data.files
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, tokenize.TokenError):
        return False


def _read(path) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and arrays of an xdl file; anything else (not an .npz, an .npz without the xdl
    header, a damaged or truncated file, pickled arrays, a newer format) is a ValueError naming the
    file."""
    path = check_path(path, "load")
    if path.is_dir():
        raise IsADirectoryError(f"load: {str(path)!r} is a directory; name the model file in it")
    if not path.is_file():
        if path.exists():  # (a pipe, a device: np.load reads no archive from them)
            raise ValueError(f"load: {str(path)!r} is not a regular file (a pipe or a device?); name an .npz file")
        raise FileNotFoundError(f"load: no such file {str(path)!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"load: {str(path)!r} is not an xdl model file (not an .npz archive, or a damaged one)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if ARCHITECTURE_KEY not in data.files:
                raise LookupError(f"an .npz archive without the {ARCHITECTURE_KEY} entry")
            header = json.loads(str(data[ARCHITECTURE_KEY]))
            state = {k: _native(_array(data, k)) for k in data.files if k not in (ARCHITECTURE_KEY, EXTRA_KEY)}
            if isinstance(header, dict) and EXTRA_KEY in data.files:
                header["extra"] = _decoded(_array(data, EXTRA_KEY))
    except LookupError as e:
        raise ValueError(f"load: {str(path)!r} is not an xdl model file ({e.args[0]})") from None
    except MemoryError as e:  # an array's header asks for more than there is: a damaged file (a flipped bit of a
        # shape; read before the data it would check) or a model too large here — named, as `load` names a model
        # it cannot build
        raise MemoryError(f"load: {str(path)!r} holds an array that does not fit in memory ({e}): a damaged file, "
                          "or a model too large for this machine") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, NotImplementedError, RuntimeError,
            tokenize.TokenError) as e:
        # ValueError: pickled or bad JSON; NotImplementedError, RuntimeError: zipfile's "zip file version 9.9",
        # "compression method not supported", "is encrypted" (a damaged header's bits: xdl writes none of them);
        # TokenError: a member's .npy header with an unclosed bracket (a flipped bit of its padding, read before
        # the CRC that would catch it: NumPy's fallback parser tokenizes it)
        reason = "it holds pickled objects, which xdl files never do" if "pickle" in str(e) else f"{type(e).__name__}: {e}"
        raise ValueError(f"load: {str(path)!r} is damaged or not an xdl model file ({reason})") from None
    version = header.get("format") if isinstance(header, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise ValueError(f"load: {str(path)!r} has format {version!r}; this xdl reads formats up to {FORMAT_VERSION} "
                         "(was it written by a newer xdl?)")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1 \
            or not isinstance(header.get("extra") or {}, dict) or not isinstance(header.get("dtype", ""), str):
        raise ValueError(f"load: {str(path)!r} is damaged or not an xdl model file (its header is not xdl's: "
                         f"format {version!r})")
    if version >= 2 and not isinstance(header.get("extra"), dict):  # (save writes format 2 only with an extra:
        # without its member, the file read as a model file — "not a training checkpoint", fit_many's "a custom model")
        raise ValueError(f"load: {str(path)!r} is damaged (format {version} without the {EXTRA_KEY} member it holds "
                         "its extra in, or with one that is not a dict)")
    return header, state


def _array(data, name: str) -> np.ndarray:
    """Member ``name`` of the open .npz ``data``; a ValueError where it is not an .npy array: NumPy gives
    the raw bytes of a member that does not start as one (zeroed bytes, a file edited by hand), which
    failed later as a bare AttributeError, not the damaged file it is."""
    array = data[name]
    if not isinstance(array, np.ndarray):
        raise ValueError(f"its member {name!r} is not an .npy array")
    return array


def _decoded(encoded: np.ndarray):
    """The JSON value a format-2 file holds as UTF-8 bytes (`EXTRA_KEY`); a ValueError where it is not."""
    if encoded.dtype != np.uint8 or encoded.ndim != 1:
        raise ValueError(f"its {EXTRA_KEY} is {encoded.dtype} of shape {encoded.shape}, not UTF-8 bytes")
    return json.loads(encoded.tobytes().decode("utf-8"))  # (a UnicodeDecodeError is a ValueError)


NARROWER_OR_WIDER = {"float16": "float32", "longdouble": "float64", "float128": "float64", "float96": "float64"}


def _native(array: np.ndarray) -> np.ndarray:
    """``array`` in this machine's byte order: a member stored big-endian ('>f4': NumPy's savez of
    such an array, another machine's file) gave a model whose dtype was '>f4', which `save` then
    wrote as such and `load` could not build again ("dtype must be float32 or float64")."""
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def load(path, model: Module | None = None) -> Module:
    """Read a file written by `save`: a new model built from the saved architecture, or the
    saved state copied into ``model`` (which must have the same parameter names and shapes).

    A model built here is as it was saved, as ``torch.load`` gives back a saved model: its
    parameters' dtypes, its frozen parameters and its modules' training or evaluation mode (a file
    of an xdl from before they were kept: all trainable, in training mode). Loaded into ``model``,
    only values are copied, as PyTorch's ``load_state_dict`` and Keras's ``load_weights`` copy them:
    that model keeps its own dtypes, frozen parameters and mode.

    ``path``: the file's name, a str, bytes or os.PathLike (not a file object), as `save` wrote it
    (``model.npz``; a `Checkpoint`'s ``checkpoint.npz`` and ``best.npz`` load the same way). A file
    that is missing, not an xdl model file or damaged is an error naming it."""
    if model is not None and not isinstance(model, Module):
        raise TypeError(f"load: model must be an xdl Module to load the state into (or None), got {model!r}")
    path = check_path(path, "load")
    header, state = _read(path)
    state = {k: v for k, v in state.items() if not k.startswith(EXTRA_PREFIX)}
    target = None  # where a model built here goes once filled: the current backend
    if model is None:
        if is_many_checkpoint(header.get("extra")):
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
        _restore_dtypes(model, state)
        _restore_flags(model, header, path)
    predicts = header.get("predicts")  # absent from files of xdl before it: classes, as they were read
    if predicts is not None and predicts not in PREDICTIONS:
        raise ValueError(f"load: {str(path)!r} is damaged: its model predicts {predicts!r}, not one of {PREDICTIONS}")
    check_stored_kinds(model, state, path, "load")
    try:
        model.load_state_dict(state)
    except (ValueError, TypeError) as e:  # (TypeError: complex or string values)
        raise ValueError(f"load: {str(path)!r} does not fit the model: {e}") from None
    if predicts is not None:
        model.predicts = predicts
    names = header.get("feature_names")  # (a data frame's columns it was trained on: predict checks a frame's)
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        model.feature_names_in_ = tuple(names)
    return model if target is None else model.to(target)


def check_stored_kinds(model: Module, state: dict, path, who: str, what: str = "") -> None:
    """Raise ValueError where ``state``, a model's state read from file ``path``, holds a floating
    parameter or buffer of ``model`` as integers or booleans: `save` writes each in its own dtype, so
    such a member is a damaged or edited file — `Module.load_state_dict` casts (PyTorch's habit for a
    state in memory), and weights of 0 and 1 were loaded without a word. ``what``: whose state it is."""
    arrays = dict(model.named_parameters()) | dict(model.named_buffers())
    cast = next((name for name, value in state.items() if name in arrays and np.dtype(arrays[name].dtype).kind == "f"
                 and np.asarray(value).dtype.kind in "biu"), None)
    if cast is not None:
        raise damaged(path, f"{what}{cast!r} holds {state[cast].dtype} values, the model's is "
                            f"{np.dtype(arrays[cast].dtype)}", who)  # (save writes each in its own dtype)


def _restore_dtypes(model: Module, state: dict) -> None:
    """Each parameter and floating buffer of a model just built (all in the header's dtype) in the
    float32 or float64 it was saved in — a model may mix them (`Dense(..., dtype=)`), and the
    architecture does not say — the parameters packed anew, one flat buffer per dtype."""
    def saved(name, array):
        dtype = state[name].dtype if name in state else array.dtype  # (a missing one: load_state_dict says)
        return dtype if dtype.name in ("float32", "float64") and array.dtype.kind == "f" else array.dtype

    repack = False
    for name, p in model.named_parameters():
        if (dtype := saved(name, p.data)) != p.dtype:
            p.data, repack = p.data.astype(dtype), True
    modules = dict(model.named_modules())
    for name, array in list(model.named_buffers()):
        owner, _, attribute = name.rpartition(".")
        if attribute in modules[owner].float64_buffers:
            continue  # float64 in a model of any dtype (an older file's float32 values are widened)
        if (dtype := saved(name, array)) != array.dtype:
            setattr(modules[owner], attribute, array.astype(dtype))
    if repack:
        model.flatten()


def _restore_flags(model: Module, header: dict, path) -> None:
    """The frozen parameters and the modules in evaluation mode of a model just built, as saved."""
    parameters = dict(model.named_parameters())
    modules = dict(model.named_modules())
    frozen, evaluating = header.get("frozen", []), header.get("evaluating", [])  # (older files: neither)
    for key, names, known in (("frozen", frozen, parameters), ("evaluating", evaluating, modules)):
        if not isinstance(names, list) or not all(isinstance(name, str) and name in known for name in names):
            raise ValueError(f"load: {str(path)!r} is damaged: its {key!r} entry {names!r:.200} does not name the "
                             "model's " + ("parameters" if known is parameters else "modules"))
    for name in frozen:
        parameters[name].requires_grad = False
    for name in evaluating:
        modules[name].training = False
