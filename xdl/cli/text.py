"""Text the commands share: a path or a value as a word of a command line to copy, a model and the precision
said in a header, and notes on stderr (above a progress bar)."""

from __future__ import annotations

import os
import re
import shlex
import sys

from tqdm import tqdm


def shell_word(path) -> str:
    """``path`` as one word of a command line to copy: quoted for the shell (a space, a quote), and a
    relative name that starts with '-' as ``./-name`` (``--resume -run/checkpoints`` is read as two
    options, the suggested command refused: "argument --resume: expected one argument")."""
    path = str(path)
    return shell_quoted(f".{os.sep}{path}" if path.startswith("-") else path)


def shell_quoted(word: str) -> str:
    """``word`` quoted for the shell as one word of a command line to copy (as it is: a value, such as ``-0.0``,
    is no path to write as ``./-0.0``, which its flag refuses)."""
    if os.name == "nt":
        # Windows' shells (cmd, PowerShell) read a quoted word in double quotes: shlex's single quotes
        # reached --resume as part of the name ('xdl-run\checkpoints', every path having a backslash),
        # and the command the message gave was refused; a Windows name holds no '"'
        # (a ',' is PowerShell's array operator: quoted; cmd expands %VAR% even within quotes)
        return word if re.fullmatch(r"[\w@+=:./\\-]+", word, re.ASCII) else f'"{word}"'
    return shlex.quote(word)


def model_summary(model) -> str:
    """``model`` as a header says it: its layers (a dense one as ``Dense(in→out)``) and its number of parameters."""
    layers = " → ".join(repr(layer).split("(")[0] if not hasattr(layer, "in_features")
                        else f"Dense({layer.in_features}→{layer.out_features})" for layer in model.layers)
    return f"{layers} ({sum(p.size for p in model.parameters()):,} parameters)"


def precision_note(backend) -> str:
    """What a header adds of ``backend``'s precision: "" for float32; with tf32, TF32 matrix products on a GPU,
    no effect on the CPU."""
    if backend.precision != "tf32":
        return ""
    if backend.device_type == "cuda":
        return "; TF32 matrix products"
    return "; tf32 has no effect on the CPU (exact float32)"


def note(text: str) -> None:
    """A note for the person running the command: on stderr, above a progress bar, so that stdout
    holds the results a script reads (and a reader of stdout gone, ``| head``, stops no run)."""
    tqdm.write(text, file=sys.stderr)


def note_once():
    """A `warnings.showwarning` that prints each distinct message once, as a ``note:`` line above
    the progress bar."""
    shown = set()

    def show(message, category, filename, lineno, file=None, line=None):
        if str(message) not in shown:
            shown.add(str(message))
            note(f"note: {message}")

    return show
