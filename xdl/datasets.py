"""Datasets for the course's experiments: generated ones (seeded, no files) and two small real ones
that never touch the network.

==========  ================================================================  =================
`moons`     two interleaved half circles in 2-D, Gaussian noise               2 classes
`circles`   a circle inside a ring in 2-D                                     2 classes
`spirals`   K interleaved spiral arms in 2-D (the classic planar data)        K classes
`digits`    scikit-learn's bundled 8×8 handwritten digits (1797 × 64)         10 classes, ``data`` extra
`mnist1d`   MNIST-1D generated locally by ``mnist1d.data.make_dataset``       10 classes, ``data`` extra
==========  ================================================================  =================

Each returns ``(X, y)``: float32 features (m, n) and int64 labels (m,).
"""

from __future__ import annotations

import random
import threading

import numpy as np

from xdl.data.validation import check_int, check_number
from xdl.extras import import_error

__all__ = ["DATASETS", "moons", "circles", "spirals", "digits", "mnist1d", "load", "check_available"]


# mnist1d's generator is NumPy's global one: calls in threads at once take turns (a thread of the user's
# drawing from np.random meanwhile would still see it seeded)
_GLOBAL_GENERATOR = threading.Lock()


def _check_m(m):
    check_int(m, "m (number of examples)", low=2)


# The largest noise (a standard deviation) the generators take: a normal draw made from 53-bit uniforms
# stays within ±40 (−ln 2⁻⁵³ ≈ 37), so a coordinate, at most 2 + 40·noise, stays finite in float32
# (±3.4e38), and a spiral's angle in float64. (A useful noise is below 1, the data's scale.)
MAX_NOISE = 1e36


def _checked(noise, seed, name: str) -> float:
    """``noise`` (a standard deviation) and ``seed``, checked before anything is drawn; the noise as
    a float, −0.0 as 0.0 (NumPy refuses a scale of −0.0 as "scale < 0", naming no argument)."""
    check_number(noise, f"{name}: noise", f"a number in [0, {MAX_NOISE:g}] (beyond, X would overflow float32)",
                 lambda v: 0 <= v <= MAX_NOISE)
    check_int(seed, f"{name}: seed", low=0)
    return float(noise) + 0.0


def moons(m: int = 1000, noise: float = 0.2, seed: int = 0):
    """Two interleaved half circles with Gaussian noise of standard deviation ``noise``."""
    _check_m(m)
    noise = _checked(noise, seed, "moons")
    rng = np.random.default_rng(seed)
    label = np.arange(m) % 2
    t = rng.uniform(0, np.pi, m)
    x = np.where(label == 0, np.cos(t), 1 - np.cos(t))
    y = np.where(label == 0, np.sin(t), 0.5 - np.sin(t))
    X = np.stack([x, y], 1) + rng.normal(0, noise, (m, 2))
    return X.astype(np.float32), label.astype(np.int64)


def circles(m: int = 1000, noise: float = 0.1, factor: float = 0.5, seed: int = 0):
    """Class 0 on the unit circle, class 1 on a circle of radius ``factor``, plus noise."""
    _check_m(m)
    noise = _checked(noise, seed, "circles")
    check_number(factor, "circles: factor", "in (0, 1)", lambda v: 0 < v < 1)
    rng = np.random.default_rng(seed)
    label = np.arange(m) % 2
    t = rng.uniform(0, 2 * np.pi, m)
    r = np.where(label == 0, 1.0, factor)
    X = np.stack([r * np.cos(t), r * np.sin(t)], 1) + rng.normal(0, noise, (m, 2))
    return X.astype(np.float32), label.astype(np.int64)


def spirals(m: int = 1000, classes: int = 3, noise: float = 0.2, seed: int = 0):
    """``classes`` spiral arms: radius grows along each arm, angle noise ``noise``."""
    _check_m(m)
    noise = _checked(noise, seed, "spirals")
    check_int(classes, "spirals: classes", low=2)
    if classes > m:  # each arm needs an example
        raise ValueError(f"spirals: classes={classes} arms need at least as many examples, got m={m}")
    rng = np.random.default_rng(seed)
    label = np.arange(m) % classes
    r = rng.uniform(0.05, 1, m)
    t = label * (2 * np.pi / classes) + 4 * r + rng.normal(0, noise, m)
    X = np.stack([r * np.sin(t), r * np.cos(t)], 1)
    return X.astype(np.float32), label.astype(np.int64)


def digits():
    """scikit-learn's 8×8 digits (bundled with scikit-learn, no download); pixels 0–16."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise import_error(e, (NEEDS["digits"][0],), NEEDS["digits"][1], "data")
    data = load_digits()
    return data.data.astype(np.float32), data.target.astype(np.int64)


def mnist1d(m: int = 5000, seed: int = 42):
    """MNIST-1D (Greydanus 2020): 40-sample 1-D signals of 10 digit templates, generated here
    with ``mnist1d.data.make_dataset`` (never downloaded); train and test parts joined. That
    function seeds NumPy's global generator and Python's ``random``: calls take turns, and both
    are put back as they were (a thread drawing from them meanwhile sees them seeded)."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:
        raise import_error(e, (NEEDS["mnist1d"][0],), NEEDS["mnist1d"][1], "data")
    _check_m(m)
    if m % 10:  # make_dataset draws as many of each of the 10 digits
        raise ValueError(f"mnist1d: m must be a multiple of 10 (as many examples of each digit), got {m}")
    check_int(seed, "mnist1d: seed", low=0, high=2**32 - 1, expected="an integer in [0, 2**32)")  # NumPy's global seed
    args = get_dataset_args()
    args.num_samples, args.seed = int(m), int(seed)
    with _GLOBAL_GENERATOR:  # make_dataset seeds NumPy's global generator and Python's: one call at a time,
        state, python_state = np.random.get_state(), random.getstate()  # and leave them as they were
        try:
            data = make_dataset(args)
        finally:
            np.random.set_state(state)
            random.setstate(python_state)
    X = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    y = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
    return X, y


DATASETS = {"digits": digits, "moons": moons, "circles": circles, "spirals": spirals, "mnist1d": mnist1d}
# the data sets that need a package of the ``data`` extra: the module, and what to install
NEEDS = {"digits": ("sklearn", "the digits dataset needs scikit-learn"),
         "mnist1d": ("mnist1d", "the mnist1d dataset needs the mnist1d package")}


def check_available(name: str) -> None:
    """Raise the ImportError `load(name)` would for a missing package, naming the extra to install,
    without loading anything: for a command to say so before its work, not after it."""
    import importlib.util

    if name in NEEDS and importlib.util.find_spec(NEEDS[name][0]) is None:
        raise ImportError(f"{NEEDS[name][1]}: pip install 'xdl[data]'")


def load(name: str):
    """``(X, y)`` of a dataset by name (one of `DATASETS`) with its defaults."""
    if not isinstance(name, str) or name not in DATASETS:  # (a list is no key: unhashable)
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]()
