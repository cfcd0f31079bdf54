"""Search spaces: each hyperparameter on its own scale.

A dimension draws uniformly in its *transformed* scale and maps back (Ng's course: sample the
exponent, not the value):

    uniform(a, b)         x = t,               t ~ U[a, b]
    log_uniform(a, b)     x = 10^t,            t ~ U[log10 a, log10 b]   (a learning rate, L2 or L1 λ)
    one_minus_log(a, b)   x = 1 − 10^t,        t ~ U[log10(1 − b), log10(1 − a)]   (an averaging β:
                          0.999 → 0.9995 matters as much as 0.9 → 0.95)
    int_uniform(a, b)     x = round(t),        t ~ U[a − ½, b + ½]   (each integer in [a, b] alike)
    choice(v₀, …, vₙ₋₁)   x = v[⌊t⌋],          t ~ U[0, n)

Narrowing (coarse to fine) takes a box in the transformed scale. A space is a dict
``name -> dimension or fixed value`` — a dimension as a table (``{"log_uniform": [low, high]}``) or
an object (``LogUniform(low, high)``, as Optuna takes its distributions) — or a TOML table::

    [lr]
    log_uniform = [1e-4, 1e-1]
    [beta1]
    one_minus_log = [0.8, 0.999]
    [hidden]
    choice = [[256, 128], [128, 64]]

>>> import numpy as np
>>> space = Space.from_dict({"lr": {"log_uniform": [1e-4, 1]}, "dropout": 0.2})
>>> trials = space.sample(np.random.default_rng(0), 3)
>>> [sorted(t) for t in trials][0], all(1e-4 <= t["lr"] <= 1 for t in trials)
(['dropout', 'lr'], True)
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from xdl.config import RUN_OPTIONS, TrainConfig
from xdl.data.validation import check_int, check_number
from xdl.files import python_value, read_toml
from xdl.tensor import refusing_named_elsewhere

# Options a search holds for all its trials, which a space therefore may not set: every trial
# trains on the data the search was given, split and shuffled by its seed (a trial of another seed
# would be another split's, which its best.toml could not reproduce), on its backend and precision;
# the rest describe a command's run, not a model (`fit_many` ignores them too).
NOT_SEARCHED = ("dataset", "precision", "seed", *RUN_OPTIONS)
# How `Space.sample` draws (a study records it: its points are drawn alike on a resume only by the
# same): 1, dimensions in the space's order from one stream; 2, in name order, each from a stream of its own.
SAMPLING = 2
# Narrowing stops at a box whose end values lie within this fraction of their size: no hyperparameter
# tells them apart, and a narrower box — its ends rounded to floats (then one value, an empty range) and
# back — may lose the point it was drawn around (zoom's centre): coarse to fine at shrink ½ for ~50
# rounds failed with "low must be < high", or "center's lr is ..., not a value of the space's".
RESOLUTION = 1e-12


# Optuna's keywords log and step, which no dimension takes here (its kind is its scale): what to say where one is
# given, keyed by (the kind it was given with, the keyword) — "step" alone for any kind — in the words of where it
# was written (`OPTUNA_WORDS`): a dimension's constructor, a space table's entry, or an Optuna distribution.
OPTUNA_HINTS = {
    ("uniform", "log"): "Optuna's {log} is {log_uniform} here (log10 of the value drawn uniformly)",
    ("log_uniform", "log"): "{kind} draws on a log scale already (Optuna's {log}): leave log out",
    ("one_minus_log", "log"): "{kind} draws on a log scale already (Optuna's {log}): leave log out",
    ("int_uniform", "log"): "xdl has no log-scaled integer: {int_uniform} draws each integer alike ({ratio}, for a log "
                            "scale)",
    ("choice", "log"): "a choice draws among its values as given (Optuna's {log} is for a range): leave log out",
    "step": "Optuna's step is not offered: {values}, for values on a step",
}
OPTUNA_WORDS = {  # each word of `OPTUNA_HINTS` as Python code and as a space table (TOML) write it
    "object": {"log": "log=True", "log_uniform": "LogUniform(low, high)", "int_uniform": "IntUniform",
               "ratio": "a choice of values spaced by a ratio, Choice([16, 32, 64, 128])",
               "values": "a choice of the values, Choice([...])"},
    "table": {"log": "log = true", "log_uniform": "the kind log_uniform = [low, high]", "int_uniform": "int_uniform",
              "ratio": "choice = [16, 32, 64, 128], values spaced by a ratio",
              "values": "choice = [...] of the values"},
}


def optuna_hint(kind: str, key: str, words: str, name: str | None = None) -> str | None:
    """What `OPTUNA_HINTS` says of Optuna's keyword ``key`` given with dimension ``kind`` (``"uniform"``, …), in
    ``words`` ("object" or "table", `OPTUNA_WORDS`), the dimension called ``name`` (its class's, its kind's by
    default); None for a keyword that is not Optuna's log or step."""
    hint = OPTUNA_HINTS.get("step" if key == "step" else (kind, key))
    return None if hint is None else hint.format(kind=name or kind, **OPTUNA_WORDS[words])


def optuna_keyword_hint(cls, key: str) -> str | None:
    """Where Optuna's keyword ``key`` of ``suggest_float``/``suggest_int`` (``log``, ``step``) is for dimension class
    ``cls`` (`refusing_named_elsewhere`: Python's "unexpected keyword argument 'log'" said not that a dimension's
    class is its scale here); None for any other keyword."""
    return optuna_hint(cls.kind, key, "object", cls.__name__)


class Dimension:
    """One searched hyperparameter: ``low``/``high`` bound its transformed scale (``box``)."""

    kind = ""

    def __init__(self, low: float, high: float):
        self.low, self.high = low, high  # the box in the transformed scale

    @property
    def box(self) -> tuple[float, float]:
        return self.low, self.high

    def value(self, t):
        """The hyperparameter value(s) at transformed coordinate(s) ``t``."""
        raise NotImplementedError

    def coordinate(self, x) -> float:
        """The transformed coordinate of value ``x`` (inverse of `value`)."""
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, n: int) -> list:
        return [python_value(v) for v in self.value(rng.uniform(self.low, self.high, n))]

    def grid(self, n: int) -> list:
        """``n`` values evenly spaced in the transformed scale (cell centres): low + (i + ½)·(high − low)/n."""
        with np.errstate(over="ignore"):
            steps = (np.arange(n) + 0.5) * (self.high - self.low) / n
        if not np.isfinite(steps).all():  # (i + ½)·(high − low) beyond floats (decay_rate in [0, 1e308]): inf
            # at every cell but the first, each trial refused as "decay_rate must be a finite number"; the
            # fraction first (not always: it rounds otherwise than the product, and a study's grid stays its own)
            steps = (np.arange(n) + 0.5) / n * (self.high - self.low)
        return [python_value(v) for v in self.value(self.low + steps)]

    def narrowed(self, low: float, high: float) -> Dimension:
        """The same kind of dimension over the box [low, high] of its transformed scale (within its
        own), with the bounds it then has in its own units: what its `spec` (a study's record) says;
        itself where the box's values are closer than `RESOLUTION` allows."""
        low, high = max(low, self.low), min(high, self.high)
        values = [python_value(v) for v in self.value(np.array([low, high]))]
        # a box's end at this one's end is this one's bound itself: 10^log10(x) may miss x by an ulp, which left
        # the bounds a user gave (lr 1 ulp below its low) or lost a trial at a bound (zoom's centre, next round)
        own = self.bounds if self.value(self.low) <= self.value(self.high) else self.bounds[::-1]
        values[0], values[1] = own[0] if low == self.low else values[0], own[1] if high == self.high else values[1]
        ends = sorted(values)
        if not ends[1] - ends[0] > RESOLUTION * max(abs(ends[0]), abs(ends[1])):
            return self  # as narrow as it gets (`RESOLUTION`)
        return self._over(*ends)

    @classmethod
    def _over(cls, low: float, high: float) -> Dimension:
        """A dimension of this kind over [low, high] in its own units, a box of this one's (`narrowed`), or as
        a study's record of such a box holds it (`Space.from_dict(..., recorded=True)`)."""
        return cls(low, high)

    def spec(self) -> dict:
        """The dimension as a space table entry: ``{kind: [low, high]}`` in its own units."""
        return {self.kind: list(self.bounds)}

    def __repr__(self) -> str:
        """Its class and bounds, as it is made in Python (``LogUniform(0.0001, 0.1)``): the space table's
        kind, ``log_uniform(0.0001, 0.1)``, named nothing xdl.tune has."""
        return f"{type(self).__name__}({', '.join(map(repr, next(iter(self.spec().values()))))})"


class Uniform(Dimension):
    """A value uniform in [low, high] (dropout, say): ``{"uniform": [low, high]}`` in a space table."""

    kind = "uniform"

    @refusing_named_elsewhere(optuna_keyword_hint)
    def __init__(self, low: float, high: float):
        _check_range(low, high)
        if not math.isfinite(float(high) - float(low)):  # (bounds ±1e308: its draws raised NumPy's OverflowError
            # "high - low range exceeds valid bounds", and its grid was inf at every cell)
            raise ValueError(f"uniform: high − low must be a finite number, got [{low}, {high}]")
        super().__init__(float(low), float(high))
        self.bounds = (float(low), float(high))

    def value(self, t):
        return np.asarray(t, dtype=np.float64)

    def coordinate(self, x) -> float:
        return float(x)


class LogUniform(Dimension):
    """A value in [low, high], low > 0, with log₁₀ of it uniform (a learning rate, L2's or L1's λ: each decade
    as likely): ``{"log_uniform": [low, high]}`` in a space table."""

    kind = "log_uniform"

    @refusing_named_elsewhere(optuna_keyword_hint)
    def __init__(self, low: float, high: float):
        _check_range(low, high)
        if low <= 0:
            raise ValueError(f"log_uniform needs bounds > 0 (it samples log10 of the value), got low={low}")
        super().__init__(math.log10(low), math.log10(high))
        self.bounds = (float(low), float(high))

    def value(self, t):
        return 10.0 ** np.asarray(t, dtype=np.float64)

    def coordinate(self, x) -> float:
        return math.log10(x)


class OneMinusLog(Dimension):
    """β in [low, high] with 1 − β log-uniform: the bounds are β's (``[0.9, 0.999]`` draws 1 − β
    between 10⁻³ and 10⁻¹; a ``high`` below ½, the range of 1 − β written as β's, is refused)."""

    kind = "one_minus_log"

    @refusing_named_elsewhere(optuna_keyword_hint)
    def __init__(self, low: float, high: float):
        self._set(low, high)
        if high < 0.5:  # the course's (and Optuna's suggest_float(..., log=True)) range of 1 − β, written as β's:
            # refused as the table form refuses it — OneMinusLog(1e-3, 1e-1) searched β ≈ 0.001–0.1, no momentum
            raise ValueError(f"one_minus_log takes bounds on β, and draws 1 − β log-uniformly between 1 − high and "
                             f"1 − low: [{low}, {high}] would search β below {high}, hardly an average; for 1 − β in "
                             f"[{low}, {high}] write [{1 - high:g}, {1 - low:g}]")

    def _set(self, low, high) -> None:
        _check_range(low, high)
        if not 0 <= low < high < 1:
            raise ValueError(f"one_minus_log samples β in [low, high] ⊂ [0, 1) via log10(1 − β), got [{low}, {high}]")
        Dimension.__init__(self, math.log10(1 - high), math.log10(1 - low))
        self.bounds = (float(low), float(high))

    @classmethod
    def _over(cls, low: float, high: float) -> Dimension:
        """A box of this dimension's: one of β below ½ there is a narrowing of a range the user gave
        (coarse to fine around β = 0.1 of [0, 0.9]), not the mistake `__init__` refuses."""
        copy = object.__new__(cls)
        copy._set(low, high)
        return copy

    def value(self, t):
        return 1.0 - 10.0 ** np.asarray(t, dtype=np.float64)

    def coordinate(self, x) -> float:
        return math.log10(1 - x)


class IntUniform(Dimension):
    """An integer in [low, high], bounds included, each as likely (a layer width, the epochs):
    ``{"int_uniform": [low, high]}`` in a space table."""

    kind = "int_uniform"

    @refusing_named_elsewhere(optuna_keyword_hint)
    def __init__(self, low: int, high: int):
        _check_int_bounds(low, high)
        _check_range(low, high)
        super().__init__(low - 0.5, high + 0.5)
        self.bounds = (int(low), int(high))

    @classmethod
    def _over(cls, low: int, high: int) -> Dimension:
        """The integers in [low, high], of one value too: a box `narrowed` made (or a study's record of one,
        `Space.from_dict(..., recorded=True)`), no range a user could give, which `__init__` refuses."""
        if low != high:
            return cls(low, high)
        _check_int_bounds(low, high)
        copy = object.__new__(cls)
        Dimension.__init__(copy, low - 0.5, high + 0.5)
        copy.bounds = (int(low), int(high))
        return copy

    def value(self, t):
        return np.clip(np.rint(np.asarray(t, dtype=np.float64)), *self.bounds).astype(np.int64)

    def sample(self, rng: np.random.Generator, n: int) -> list:
        """x = a + ⌊u·(b − a + 1)⌋, u ~ U[0, 1): round(t) of t ~ U[a − ½, b + ½] drawn from the same u, but
        as an offset from a — t itself, near 2**48 and beyond, fell on a grid of floats coarse enough that
        ties (rounded to even) and the ends' rounding made the integers unlike: [2**53 − 1, 2**53] drew
        the first 3 times in 4. More than 2**53 integers (a 53-bit u reaches every second one): drawn as
        integers (`Generator.integers`)."""
        low, high = self.bounds
        if high - low + 1 > 2**53:
            return [low + int(k) for k in rng.integers(0, high - low + 1, size=n)]
        count = float(high - low + 1)
        offsets = np.minimum(np.floor(rng.random(n) * count), count - 1).astype(np.int64)
        return [low + int(k) for k in offsets]

    def coordinate(self, x) -> float:
        return float(x)

    def grid(self, n: int) -> list:
        """``n`` integers evenly spaced, or every integer of the range when it has no more than ``n``
        (no value twice)."""
        low, high = self.bounds
        return list(range(low, high + 1)) if high - low + 1 <= n else super().grid(n)

    def narrowed(self, low: float, high: float) -> Dimension:
        """The integers whose cells lie mostly in the box [low, high] (at least the one nearest its
        centre), each as likely: an `IntUniform` of them, or of one value."""
        first, last = max(math.ceil(low), self.bounds[0]), min(math.floor(high), self.bounds[1])
        if first > last:
            first = last = int(np.clip(round((low + high) / 2), *self.bounds))
        return self._over(int(first), int(last))


class Choice(Dimension):
    """One of ``values`` (any JSON values: hidden sizes, an optimizer's name), each as likely:
    ``{"choice": [...]}`` in a space table. Its grid is every value, whatever ``n``."""

    kind = "choice"

    def __init__(self, values):
        if not isinstance(values, list | tuple):  # a string would be its letters, a number no list at all
            raise ValueError(f"choice takes a list of values, got {values!r} ({type(values).__name__})")
        values = [as_json(v) for v in values]  # as a study stores them: (32,) is read back as [32]
        if not values:
            raise ValueError("choice needs at least one value")
        super().__init__(0.0, float(len(values)))
        self.values = values

    def value(self, t):
        index = np.clip(np.floor(np.asarray(t, dtype=np.float64)), 0, len(self.values) - 1).astype(int)
        return [self.values[i] for i in np.atleast_1d(index)]

    def sample(self, rng, n):
        return self.value(rng.uniform(self.low, self.high, n))

    def grid(self, n):
        """Every value, whatever ``n`` (`Space.grid` goes through every choice)."""
        first, last = int(math.floor(self.low)), int(math.ceil(self.high))
        return self.values[first:last]

    def coordinate(self, x) -> float:
        # found by its JSON, not ==: in [0, False] or [1, 1.0, True] False == 0, so zoom narrowed around 0
        return [value_key(v) for v in self.values].index(value_key(x)) + 0.5

    def narrowed(self, low: float, high: float) -> Dimension:
        """The values whose cells lie mostly in the box [low, high] (at least the one at its
        centre), each as likely."""
        first, last = max(math.ceil(low - 0.5), 0), min(math.floor(high - 0.5), len(self.values) - 1)
        if first > last:
            first = last = int(np.clip(math.floor((low + high) / 2), 0, len(self.values) - 1))
        return Choice(self.values[first:last + 1])

    def spec(self):
        return {self.kind: self.values}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.values!r})"  # (one list: ``Choice([64], [128])`` is no call it takes)


def value_key(value) -> str:
    """``value`` as a study writes it: the same key for the same value, another for True and 1, 1 and 1.0."""
    return json.dumps(as_json(value), sort_keys=True)


def as_json(value):
    """``value`` as JSON gives it back: tuples and NumPy arrays as lists, NumPy numbers as Python's."""
    if isinstance(value, np.ndarray) and value.ndim:
        value = list(value)
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    return python_value(value)


KINDS = {d.kind: d for d in (Uniform, LogUniform, OneMinusLog, IntUniform)}
DIMENSIONS = (*KINDS.values(), Choice)


class Space:
    """``name -> Dimension`` (searched) and ``name -> value`` (fixed): at least one of them, each
    name a `xdl.config.TrainConfig` option (or one of ``options``, their names, when given).

    >>> Space({"lr": LogUniform(1e-4, 1e-1)}, fixed={"dropout": 0.2}).spec()
    {'dropout': 0.2, 'lr': {'log_uniform': [0.0001, 0.1]}}
    """

    def __init__(self, dimensions: dict[str, Dimension], fixed: dict | None = None, *, source: str = "space",
                 options=None):
        fixed = {} if fixed is None else fixed
        for argument, given in (("dimensions", dimensions), ("fixed", fixed)):
            if not isinstance(given, dict):
                raise TypeError(f"{source}: {argument} must be a dict of hyperparameter names, got "
                                f"{type(given).__name__}")
        _check_not_empty({**dimensions, **fixed}, source)
        for name, d in dimensions.items():
            _check_name(name, source, options)
            _check_not_optunas(d, f"{source}: {name}")
            if not isinstance(d, Dimension):  # a range given as a bare pair: which scale is not said
                raise TypeError(f"{source}: {name} must be a Dimension ({', '.join(c.__name__ for c in DIMENSIONS)}), "
                                f"got {d!r} ({type(d).__name__}); a range names its scale, LogUniform(low, high) "
                                f"say, and a value every trial shares goes in fixed={{{name!r}: value}}")
        for name in fixed:
            _check_name(name, source, options)
            # (Space(dims, fixed={"dropout": FloatDistribution(0, 0.5)}) was refused later as "dropout must be a number")
            _check_not_optunas(fixed[name], f"{source}: {name}")
            if name in dimensions:
                raise ValueError(f"{source}: {name} is both searched and fixed; give it once")
        # fixed values as a study stores them (JSON): NumPy numbers and arrays as Python's
        self.dimensions, self.fixed, self.options = dict(dimensions), {k: as_json(v) for k, v in fixed.items()}, options

    @classmethod
    def from_dict(cls, spec: dict, source: str = "space", options=None, *, recorded: bool = False) -> Space:
        """The space a table describes: ``name -> {kind: [low, high]}`` or ``{"choice": [...]}``
        (searched), a `Dimension` (searched: as Optuna takes its distributions), or a value
        (fixed). ``recorded``: ``spec`` is a study's record (`spec`) of a space that may be `zoom`'s,
        whose boxes a range written by hand may not be: an int_uniform of one value, a one_minus_log of
        β below ½ (refused there, a study of such a space could not be plotted or resumed)."""
        if not isinstance(spec, dict):
            raise ValueError(f"{source}: a search space is a non-empty table of hyperparameters, got {spec!r}")
        _check_not_empty(spec, source)
        dimensions, fixed = {}, {}
        for name, entry in spec.items():
            _check_name(name, source, options)
            if isinstance(entry, Dimension):
                dimensions[name] = entry
                continue
            _check_not_optunas(entry, f"{source}: {name}")
            if not isinstance(entry, dict):
                fixed[name] = entry
                continue
            if len(entry) != 1:
                raise ValueError(f"{source}: {name} must name one kind ({', '.join([*KINDS, 'choice'])}) "
                                 f"with its range, got {entry!r}{_optuna_table_keys_hint(entry)}")
            kind, args = next(iter(entry.items()))
            try:
                if kind == "choice":
                    dimensions[name] = Choice(args)
                elif kind in KINDS:
                    if not isinstance(args, list | tuple) or len(args) != 2:
                        raise ValueError(f"{kind} takes [low, high], got {args!r}")
                    # (OneMinusLog refuses the course's 1 − β range; a narrowed box is no user's mistake)
                    dimensions[name] = KINDS[kind]._over(*args) if recorded else KINDS[kind](*args)
                else:
                    raise ValueError(f"unknown kind {kind!r}; known: {', '.join([*KINDS, 'choice'])}")
            except (TypeError, ValueError) as e:
                raise ValueError(f"{source}: {name}: {e}") from None
        return cls(dimensions, fixed, source=source, options=options)

    @classmethod
    def from_toml(cls, path, options=None) -> Space:
        return cls.from_dict(read_toml(path, "--space"), source=f"space {str(path)!r}", options=options)

    def spec(self) -> dict:
        return {**self.fixed, **{name: d.spec() for name, d in self.dimensions.items()}}

    def sample(self, rng: np.random.Generator, n: int) -> list[dict]:
        """``n`` points, each dimension drawn as a vector from a stream of its own (``rng``'s children,
        in the order of the names: the same space written in another order draws the same points,
        and the first k of n points are the k points drawn alone)."""
        if not isinstance(rng, np.random.Generator):  # an int seed, as scikit-learn's random_state, or a
            # RandomState: named here, not as "'int' object has no attribute 'spawn'"
            raise TypeError(f"sample: rng must be a numpy.random.Generator (np.random.default_rng(seed)), got "
                            f"{rng!r} ({type(rng).__name__})")
        n = check_int(n, "sample: n", low=0, expected="an integer ≥ 0")
        names = sorted(self.dimensions)
        streams = rng.spawn(len(names))
        columns = {name: self.dimensions[name].sample(stream, n) for name, stream in zip(names, streams)}
        return [{**self.fixed, **{name: columns[name][i] for name in columns}} for i in range(n)]

    def grid(self, n: int) -> list[dict]:
        """Up to ``n`` points of a grid of ⌊n^(1/d)⌋ values per range (d dimensions) and every
        choice: fewer than ``n`` when that is all the grid has; when the choices make it larger,
        ``n`` of its points that go through every value of every axis where ``n`` allows (not its
        first ``n``, which would leave choices out)."""
        n = check_int(n, "grid: n")  # (0 or -3 gave a point, 2.5 two)
        per = max(1, int(math.floor(n ** (1 / max(len(self.dimensions), 1)) + 1e-9)))
        axes = [[(name, v) for v in self.dimensions[name].grid(per)] for name in sorted(self.dimensions)]
        points = [dict(self.fixed)]
        for axis in axes:
            points = [{**p, name: v} for p in points for name, v in axis]
        if len(points) <= n:
            return points
        # too many: the diagonal first (point i takes value i mod |axis| on every axis, so each axis
        # goes through all its values), then the grid in order, until n
        sizes, chosen = [len(axis) for axis in axes], {}
        for i in range(len(points)):
            index = 0
            for size in sizes:  # the grid's order: the first axis outermost
                index = index * size + i % size
            chosen.setdefault(index, None)
            if len(chosen) == n:
                break
        for index in range(len(points)):
            if len(chosen) == n:
                break
            chosen.setdefault(index, None)
        return [points[index] for index in sorted(chosen)]

    def narrowed(self, boxes: dict[str, tuple[float, float]]) -> Space:
        return Space({name: d.narrowed(*boxes[name]) if name in boxes else d for name, d in self.dimensions.items()},
                     self.fixed, options=self.options)

    def __repr__(self) -> str:
        return f"Space({self.dimensions}, fixed={self.fixed})"


def _check_not_optunas(entry, who: str) -> None:
    """``entry`` is no Optuna distribution: one was taken for a value every trial shares, and refused
    as "lr must be a number, got FloatDistribution(…)" — xdl's own dimension, the one the docs liken
    to Optuna's distributions, unsaid."""
    kind = type(entry).__name__
    if not type(entry).__module__.startswith("optuna.") or not kind.endswith("Distribution"):
        return
    if kind == "CategoricalDistribution":
        same = f"Choice({list(entry.choices)!r})"
    elif kind in ("FloatDistribution", "IntDistribution"):
        scale = "int_uniform" if kind == "IntDistribution" else "log_uniform" if entry.log else "uniform"
        same = f"{KINDS[scale].__name__}({entry.low!r}, {entry.high!r})"
        if kind == "IntDistribution" and entry.log:
            same += f"; {optuna_hint('int_uniform', 'log', 'object')}"
        elif getattr(entry, "step", None) not in (None, 1):
            same += f"; {optuna_hint(scale, 'step', 'object')}"
    else:
        same = "its xdl dimension (Uniform, LogUniform, OneMinusLog, IntUniform, Choice)"
    raise TypeError(f"{who} is Optuna's {entry!r}: a space takes xdl's dimensions (from xdl.tune), as Optuna "
                    f"takes its distributions: {same}")


def _optuna_table_keys_hint(entry: dict) -> str:
    """Where Optuna's ``log``/``step`` keywords, written as keys of a space table's entry (``uniform = [1e-4, 1e-1]``
    beside ``log = true``, or suggest_float's ``low``, ``high``, ``log``), are in a table's words: "must name one
    kind" alone sent an Optuna user to drop ``log`` and draw a rate uniformly. "" for an entry without them."""
    kinds = [key for key in entry if key in (*KINDS, "choice")]
    kind = kinds[0] if kinds else "uniform"  # (suggest_float's low, high and log: a range, its scale unsaid)
    if entry.get("log") is True:
        return f"; {optuna_hint(kind, 'log', 'table')}"
    if "step" in entry:
        return f"; {optuna_hint(kind, 'step', 'table')}"
    return ""


def _check_not_empty(entries: dict, source: str) -> None:
    if not entries:  # every trial would be the base configuration: one training run, not a search
        raise ValueError(f"{source}: a search space is a non-empty table of hyperparameters, got {{}}")


def _check_name(name, source: str, options) -> None:
    """``name`` is one of ``options`` (default: the `TrainConfig` options; an unknown one is told
    those a search may vary, not `NOT_SEARCHED`, which the search refuses with its reason)."""
    if options is None:
        options = [f.name for f in dataclasses.fields(TrainConfig)]
        if name not in options:
            options = [o for o in options if o not in NOT_SEARCHED]
    if name not in options:
        raise ValueError(f"{source}: unknown hyperparameter {name!r}; known: {', '.join(options)}")


def _check_int_bounds(low, high) -> None:
    if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in (low, high)):
        raise ValueError(f"int_uniform needs integer bounds, got [{low!r}, {high!r}]")
    if not all(-2**53 <= v <= 2**53 for v in (low, high)):  # (drawn in float64, then rounded)
        raise ValueError(f"int_uniform bounds must be within ±2**53, got [{low}, {high}]")


def _check_range(low, high) -> None:
    try:  # (check_number: an int beyond floats is inf there; math.isfinite raised float()'s OverflowError)
        for v in (low, high):
            check_number(v, "bounds", "finite numbers", math.isfinite)
    except ValueError:
        raise ValueError(f"bounds must be finite numbers, got [{low!r}, {high!r}]") from None
    if not low < high:
        same = f"; for the one value, give it without a kind (key = {low})" if low == high else ""
        raise ValueError(f"low must be < high, got [{low}, {high}]{same}")


# The default space for the default model (`xdl tune` without --space).
DEFAULT_SPACE = {"lr": {"log_uniform": [1e-4, 3e-2]}, "beta1": {"one_minus_log": [0.8, 0.99]},
                 "l2": {"log_uniform": [1e-4, 3.0]}, "dropout": {"uniform": [0.0, 0.5]},
                 "hidden": {"choice": [[256, 128], [128, 64], [512, 256]]}}
