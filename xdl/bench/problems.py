"""The benchmark problems: small, seeded, offline, each with a target.

Two optimizer sanity checks — functions minimized from near a standard start, scored by their value:

    quadratic    f(x) = ½·Σᵢ λᵢ·xᵢ², λ log-spaced over [1, 100] (condition number 100), 10-D, near x₀ = 1
    rosenbrock   f(x, y) = (1 − x)² + 100·(y − x²)², near (−1.5, 2)

A function run starts at the standard point plus ``START_NOISE``·z, z ~ N(0, I) drawn from the run's
seed (`function_start`), as optimizer benchmarks draw a deterministic test function's start at
random: gradient descent on a fixed function from a fixed start is one computation, and its
"seeds" would be copies of one run, their spread 0. With the start drawn, a function's seeds are
replicates as a model's are (other initial weights and shuffles), and mean ± sd over them says how
an optimizer fares near the standard start, not at one point.

and classification problems — a model trained in mini-batches, scored by dev/test accuracy:

    moons        the course's 2-5-2-1 ReLU network, sigmoid output, mini-batches of 64, 300 examples
    circles      a deep (6 × 16) tanh MLP: vanishing gradients
    digits       an MLP 64-128-64-10 with batch norm
    mnist1d      an MLP 40-128-128-10 on MNIST-1D (the ``data`` extra)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import xdl
from xdl.data import Standardizer, split


@dataclass
class Problem:
    """``kind`` "function" (minimize ``cost`` over ``start``) or "classification" (train ``model``
    on ``data``). ``target``: the value a run must reach (a cost at most, or a dev accuracy at
    least); ``budget``: steps (function) or epochs (classification), full and ``--quick``."""

    name: str
    kind: str
    target: float
    budget: tuple[int, int]  # (full, quick)
    batch_size: int = 64
    details: dict = field(default_factory=dict)

    def steps(self, quick: bool) -> int:
        return self.budget[1] if quick else self.budget[0]


PROBLEMS = {
    "quadratic": Problem("quadratic", "function", target=1e-4, budget=(1000, 300)),
    "rosenbrock": Problem("rosenbrock", "function", target=1e-3, budget=(3000, 1000)),
    "moons": Problem("moons", "classification", target=0.90, budget=(2000, 600), batch_size=64,
                     details={"hidden": [5, 2], "activation": "relu", "outputs": 1}),
    "circles": Problem("circles", "classification", target=0.95, budget=(300, 100), batch_size=64,
                       details={"hidden": [16] * 6, "activation": "tanh", "outputs": 2}),
    "digits": Problem("digits", "classification", target=0.95, budget=(40, 15), batch_size=64,
                      details={"hidden": [128, 64], "activation": "relu", "outputs": 10, "batch_norm": True}),
    "mnist1d": Problem("mnist1d", "classification", target=0.60, budget=(60, 20), batch_size=128,
                       details={"hidden": [128, 128], "activation": "relu", "outputs": 10}),
}
QUICK = ("quadratic", "rosenbrock", "moons", "digits")
# The spread of a function run's start around the standard one: small beside the standard start's
# distance from the minimum (√10 for the quadratic, √7.25 ≈ 2.7 for Rosenbrock), so every start keeps the
# problem's character (the ill-conditioned directions, the curved valley) while the runs differ.
START_NOISE = 0.1


def function_cost(name: str):
    """(the standard start, cost(x) -> Tensor) of a function problem."""
    if name == "quadratic":
        scales = np.geomspace(1.0, 100.0, 10)
        return np.ones(10), lambda x: (x * x * xdl.tensor(scales)).sum() * 0.5
    if name == "rosenbrock":
        def rosenbrock(x):
            a, b = x[0], x[1]
            return (1 - a) ** 2 + 100 * (b - a * a) ** 2
        return np.array([-1.5, 2.0]), rosenbrock
    raise KeyError(name)


def function_start(name: str, seed: int) -> np.ndarray:
    """The start of a run of function problem ``name`` with ``seed``: x₀ + START_NOISE·z, z ~ N(0, I)
    from ``seed`` (float64).

    >>> bool((function_start("rosenbrock", 1) == function_start("rosenbrock", 1)).all())
    True
    >>> bool((function_start("rosenbrock", 1) != function_start("rosenbrock", 2)).all())
    True
    """
    standard = function_cost(name)[0].astype(np.float64)
    return standard + START_NOISE * np.random.default_rng(seed).standard_normal(standard.shape)


def classification_data(name: str, seed: int = 0):
    """The problem's split (train/dev/test, standardized on train) — fixed for every run."""
    if name == "moons":
        X, y = xdl.datasets.moons(500, noise=0.2, seed=3)
        parts = split(X, y, dev=0.2, test=0.2, seed=seed)
    elif name == "circles":
        X, y = xdl.datasets.circles(1000, noise=0.1, seed=3)
        parts = split(X, y, seed=seed)
    else:
        X, y = xdl.datasets.load(name)
        parts = split(X, y, seed=seed)
    scaler = Standardizer().fit(parts.X_train)
    return tuple(scaler.transform(a).astype(np.float32) if i % 2 == 0 else a for i, a in enumerate(parts))


def build_model(problem: Problem, n_features: int):
    d = problem.details
    return xdl.nn.mlp(n_features, d["hidden"], d["outputs"], activation=d["activation"],
                      batch_norm=d.get("batch_norm", False))
