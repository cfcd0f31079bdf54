"""Weight initializers: ``init(shape) -> NumPy array`` for a weight of shape (n_in, n_out).

Weights are drawn on the host from the generator `xdl.seed` seeds, so one seed gives the same
initial weights on every backend.

========  ==================  ===========================================================
name      variance            use
========  ==================  ===========================================================
zeros     0                   biases; for weights it fails to break symmetry (every unit
                              of a layer stays identical)
normal    scale²              the course's "random": ``normal(0.01)``; ``normal(10)`` explodes
xavier    1/n_in              tanh networks: the course's "Xavier" (LeCun normal; not
                              PyTorch's ``xavier_normal_``, which is ``glorot`` here)
glorot    2/(n_in + n_out)    tanh/sigmoid networks (Glorot & Bengio; PyTorch's
                              ``xavier_normal_``; Keras's ``glorot_normal`` has this
                              variance, its draws cut at ±2.27σ: ±2 sd of the
                              wider normal it truncates)
he        2/n_in              ReLU networks (He et al.)
========  ==================  ===========================================================

>>> import xdl
>>> xdl.seed(0)
>>> round(float(xdl.init.he((256, 128)).var()), 4)  # ≈ 2/256
0.0078
"""

from __future__ import annotations

import math
import re

import numpy as np

from xdl.backend import host_rng
from xdl.data.validation import check_int, check_number

__all__ = ["INITIALIZERS", "zeros", "normal", "xavier", "glorot", "he", "get", "starts_symmetric", "canonical_name", "is_named",
           "recorded_name"]


def _fans(shape, name: str) -> tuple[int, int]:
    """(n_in, n_out) of a weight ``shape`` (n_out = 1 for a vector), a tuple of positive integers: a
    zero fan would divide by 0, and an int is no shape to read fans from."""
    if not isinstance(shape, tuple | list) or not shape:
        raise ValueError(f"{name}: shape must be a tuple of positive integers (n_in, n_out), got {shape!r}")
    sizes = [check_int(size, f"{name}: shape[{i}]", expected="a positive integer (a dimension of the weight)")
             for i, size in enumerate(shape)]
    return sizes[0], sizes[1] if len(sizes) > 1 else 1


def zeros(shape) -> np.ndarray:
    """All zeros."""
    _fans(shape, "zeros")  # a shape of positive integers, as the others take
    return np.zeros(shape)


def normal(scale: float = 0.01):
    """An initializer drawing N(0, 1)·scale."""
    check_number(scale, "normal: scale", "a finite number ≥ 0", lambda s: 0 <= s < math.inf)

    def init(shape) -> np.ndarray:
        _fans(shape, "normal")  # a shape of positive integers, as the others take
        return host_rng().standard_normal(shape) * scale

    init.__name__ = f"normal({scale})"
    return init


def xavier(shape) -> np.ndarray:
    """N(0, 1/n_in): the course's "Xavier" initialization, LeCun normal (PyTorch's and Keras's
    Xavier/Glorot normal, N(0, 2/(n_in + n_out)), is `glorot`)."""
    n_in, _ = _fans(shape, "xavier")
    return host_rng().standard_normal(shape) * np.sqrt(1.0 / n_in)


def glorot(shape) -> np.ndarray:
    """N(0, 2/(n_in + n_out))."""
    n_in, n_out = _fans(shape, "glorot")
    return host_rng().standard_normal(shape) * np.sqrt(2.0 / (n_in + n_out))


def he(shape) -> np.ndarray:
    """N(0, 2/n_in)."""
    n_in, _ = _fans(shape, "he")
    return host_rng().standard_normal(shape) * np.sqrt(2.0 / n_in)


INITIALIZERS = {"zeros": zeros, "normal": normal(), "xavier": xavier, "glorot": glorot, "he": he}


def _normal_scale(init) -> float | None:
    """The scale ``init`` gives `normal` by name ("normal(0.5)": 0.5, any float spelling), or None:
    no such name, or its scale no number. The one reading of the name: `get`, `starts_symmetric` and
    `canonical_name` each parsed it, and may not disagree."""
    scale = re.fullmatch(r"normal\((.+)\)", init) if isinstance(init, str) else None
    try:
        return float(scale.group(1)) if scale is not None else None
    except ValueError:  # (not a number)
        return None


def get(init):
    """An initializer from a name ("he", "xavier", "glorot", "zeros", "normal", or "normal(0.5)":
    `normal`'s name for a scale, as a layer records it) or a callable."""
    if init is normal:  # the factory, not an initializer: it took the weight's shape for its scale
        raise TypeError("init: xdl.init.normal makes an initializer, it is none: give normal(scale), e.g. "
                        "normal(0.01), or the name 'normal' or 'normal(0.01)'")
    if callable(init):
        return init
    value = _normal_scale(init)  # (None: not a number, named below with the names there are)
    if value is not None:
        if not 0 <= value < math.inf:  # (was "unknown initializer": the name is known, its scale is not one)
            raise ValueError(f"initializer {init!r}: normal's scale must be a finite number ≥ 0, got {value}")
        return normal(value)
    if not isinstance(init, str) or init not in INITIALIZERS:  # (a list is no key: unhashable)
        raise ValueError(f"unknown initializer {init!r}; expected one of {', '.join(INITIALIZERS)}, 'normal(scale)' "
                         "or a callable")
    return INITIALIZERS[init]


def starts_symmetric(init) -> bool:
    """Whether the initializer ``init`` (a name, or `zeros`) gives every weight the same value:
    "zeros" or "normal(0)". Every unit of a layer then computes the same and gets the same
    gradient, so the units stay the same however long they train (the course's "fails to break
    symmetry"; with ReLU no weight moves at all).

    >>> starts_symmetric("zeros"), starts_symmetric("normal(0.0)"), starts_symmetric("normal(10)")
    (True, True, False)
    """
    return init is zeros or init == "zeros" or _normal_scale(init) == 0


def canonical_name(init):
    """``init``'s one spelling, to compare a resume's with its checkpoint's: `normal`'s scale as a
    float ("normal(10)", "normal(1e1)" and "normal(10.0)" are "normal(10.0)"; "normal" is
    "normal(0.01)", its default); anything else as given.

    >>> canonical_name("normal(1e1)"), canonical_name("normal"), canonical_name("he")
    ('normal(10.0)', 'normal(0.01)', 'he')
    """
    if init == "normal":
        return canonical_name(INITIALIZERS["normal"].__name__)
    scale = _normal_scale(init)
    return f"normal({scale!r})" if scale is not None else init  # (not a number: no initializer `get` makes)


def is_named(init) -> bool:
    """Whether ``init`` (a layer's recorded init) names an initializer `get` makes: not a function
    of one's own, which a description keeps by name only."""
    try:
        get(init)
    except ValueError:
        return False
    return isinstance(init, str)


def recorded_name(init) -> str:
    """The name a layer records for its ``init`` (its description's, `xdl.nn.build` draws it again
    by): a name as given; one of these initializers by its name ("he", "normal(0.5)"); one's own by
    its ``__name__`` ("custom" without one) — or, where that names one of these ("xavier"), by its
    module and qualified name ("__main__.xavier"), which names none: `build` then refuses to draw it
    again, where it drew this module's initializer of that name in its place, without a word.

    >>> recorded_name(he), recorded_name(normal(0.5)), recorded_name("glorot")
    ('he', 'normal(0.5)', 'glorot')
    """
    if isinstance(init, str):
        return init
    name = getattr(init, "__name__", "custom")
    if not isinstance(name, str):
        return "custom"
    if getattr(init, "__module__", None) == __name__ or not is_named(name):  # (ours: `he`, `normal(0.5)`'s)
        return name
    return f"{getattr(init, '__module__', None) or '?'}.{getattr(init, '__qualname__', name)}"
