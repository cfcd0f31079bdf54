"""Whether a gradient check runs in this thread.

A check (`xdl.gradcheck`) calls the cost J many times at nearby inputs and compares the values, so
J must be one deterministic function of its inputs, and a check may not change the model it calls.
Within a check, then, a layer's training forward draws no random numbers (xdl's dropout without a
fixed mask or key is the identity; with one, its mask is one function of it) and updates no state of its own (batch norm's running statistics stay
as they are); a layer of one's own that draws or keeps state reads `is_gradient_checking()` to do
the same. The mode is the thread's own, as `no_grad`'s: a model another thread trains meanwhile
drops units and moves its statistics.
"""

from __future__ import annotations

import contextlib
import threading

__all__ = ["is_gradient_checking", "gradient_checking"]


class _Mode(threading.local):
    checking = False


_mode = _Mode()


def is_gradient_checking() -> bool:
    """True within `gradient_checking` (while `xdl.gradcheck` runs) in this thread."""
    return _mode.checking


@contextlib.contextmanager
def gradient_checking():
    """Within this block, in this thread only, `is_gradient_checking()` is True. Blocks nest: each
    gives back the mode it found (a check that calls a check leaves the outer one checking)."""
    previous, _mode.checking = _mode.checking, True
    try:
        yield
    finally:
        _mode.checking = previous
