"""Inverted dropout: keep each unit with probability 1 − rate and scale kept units by 1/(1 − rate),
so E[y] = x in training and evaluation is the identity (no rescaling at test time)."""

from __future__ import annotations

import numpy as np

from xdl.checking import is_gradient_checking
from xdl.data.validation import check_bool, check_number
from xdl.function import Function
from xdl.functions.registry import Check, op
from xdl.ops.random import MAX_DROP_RATE
from xdl.tensor import Tensor


class Dropout(Function):
    """y = x·d/(1 − rate) with d ∈ {0, 1} the keep mask;  ∂L/∂x = ∂L/∂y·d/(1 − rate).

    The mask is ``mask`` when given, else the counter-based draw keyed by ``key`` = (seed, stream,
    step), made by the backend's fused op (in the kernel on the GPU, recomputed there for the
    backward instead of stored)."""

    rate: float
    mask: object = None
    key: object = None

    def forward(self, x):
        if self.key is not None:
            y, self.saved = self.backend.ops.dropout_forward(x, self.rate, *self.key)
            return y
        self.saved = self.mask.astype(x.dtype)
        self.saved *= 1.0 / (1.0 - self.rate)
        return x * self.saved

    def backward(self, gy):
        if self.key is not None:
            return (self.backend.ops.dropout_backward(gy, self.saved, self.rate, *self.key),)
        return (gy * self.saved,)


_CHECK_MASK = np.random.default_rng(0).random((6, 5)) >= 0.3


@op(check=[Check((6, 5), args=(0.3,), mask=_CHECK_MASK), Check((6, 5), args=(0.5,), key=(3, 1, 7))])
def dropout(x, rate: float, training: bool = True, *, mask=None, key=None):
    """Inverted dropout of tensor ``x`` dropping each unit with probability ``rate``.

    ``mask`` and ``key`` are keywords only: PyTorch's F.dropout(input, p, training, inplace) takes
    inplace fourth, and ``dropout(x, 0.5, True, False)`` took False as the mask ("'bool' object has no
    attribute 'shape'").

    The keep mask is ``mask`` (``x``'s shape, True or 1 = keep) when given; else, with
    ``key = (seed, stream, step)``, the counter-based draw `xdl.ops.random.keep_mask` (the same on
    every backend, a pure function of the key: what `xdl.nn.Dropout` uses under a Trainer);
    else a draw from the backend's seeded generator. A fixed mask or key makes dropout
    deterministic, so gradient checking keeps it; otherwise gradient checking turns it off.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"dropout: x must be an xdl Tensor (xdl.tensor(array)), got {type(x).__name__}")
    rate = check_drop_rate(rate, "dropout: rate")
    check_bool(training, "dropout: training")  # a string "False" would be true
    if key is not None:
        key = checked_mask_key(key, "dropout")
    if mask is None or not training or rate == 0.0:
        return layer_dropout(x, rate, training, key)
    if tuple(mask.shape) != x.shape:
        raise ValueError(f"dropout: mask shape {tuple(mask.shape)} does not match input shape {x.shape}")
    mask = x.backend.asarray(mask.data if isinstance(mask, Tensor) else mask)
    if mask.dtype != np.bool_:  # 0/1, the course's (D < keep_prob).astype(int); not D = rand(...) itself,
        if not bool(((mask == 0) | (mask == 1)).all()):  # which would scale x by it
            raise ValueError("dropout: mask must be a keep mask, boolean or of 0s and 1s (1 = keep), got other "
                             "values; a keep mask is rand(...) >= rate")
        mask = mask != 0
    return Dropout.apply(x, mask=mask, rate=rate)


def layer_dropout(x, rate: float, training: bool, key):
    """`dropout` without its checks, its mask keyed by ``key`` or else drawn from the backend's generator: as
    `xdl.nn.Dropout` calls it at every forward, its rate and key checked where they were set
    (`xdl.nn.Dropout.checked_settings`; the key of a layer's second call in a pass is drawn from its checked one)."""
    if not training or rate == 0.0 or (key is None and is_gradient_checking()):
        return x
    if key is not None:
        return Dropout.apply(x, rate=rate, key=key)
    # drawn in x's dtype where the generator has one (float32, float64: the draws as before), else in float32
    # (NumPy draws no float16: "Unsupported dtype dtype('float16') for random")
    draw = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
    return Dropout.apply(x, mask=x.backend.rng.random(x.shape, dtype=draw) >= rate, rate=rate)


class ReLUDropout(Function):
    """y = max(x, 0)·d/(1 − rate), ReLU then dropout keyed by ``key`` as one node (one kernel each
    way on the GPU);  ∂L/∂x = ∂L/∂y·d/(1 − rate)·[y > 0]. Bit for bit what `relu` then `dropout`
    give: `xdl.nn.Sequential` runs a ReLU layer followed by a keyed Dropout layer so."""

    rate: float
    key: object

    def forward(self, x):
        self.y, self.saved = self.backend.ops.relu_dropout_forward(x, self.rate, *self.key)
        return self.y

    def backward(self, gy):
        return (self.backend.ops.relu_dropout_backward(gy, self.y, self.saved, self.rate, *self.key),)


@op(domain="nonzero", check=[Check((6, 5), args=(0.3, (3, 1, 7))), Check((2, 3, 40), args=(0.5, (0, 4, 2**40)))])
def relu_dropout(x, rate: float, key):
    """``dropout(relu(x), rate, key=key)`` as one op: the mask keyed by ``key`` = (seed, stream,
    step[, steps_done]) as `dropout` draws it; the same values and gradients, fewer launches."""
    rate = check_drop_rate(rate, "relu_dropout: rate")
    return layer_relu_dropout(x, rate, checked_mask_key(key, "relu_dropout"))


def layer_relu_dropout(x, rate: float, key):
    """`relu_dropout` without its checks, as `xdl.nn.Sequential` runs a ReLU and a keyed Dropout layer at every
    forward: the layer checked its rate and key where they were set (`layer_dropout`)."""
    return ReLUDropout.apply(x, rate=rate, key=key)


def check_drop_rate(rate, name: str) -> float:
    """A drop rate: a number in [0, `MAX_DROP_RATE`] (a string "0.5" was a raw comparison TypeError;
    a rate nearer 1 than the masks' 16-bit draws resolve kept E[y] = x no more)."""
    return check_number(rate, name, f"a number in [0, {MAX_DROP_RATE}] (the drop probability)",
                        lambda r: 0 <= r <= MAX_DROP_RATE)


def checked_mask_key(key, name: str, stacked: bool = False) -> tuple:
    """A mask's key as a tuple (seed, stream, step[, steps_done]): three integers, then (a captured
    step's) the backend's step counter — a key of another form failed inside the op, naming none
    of it. ``stacked``: the seed is K models' seeds, a sequence of integers (`stacked_dropout`'s).
    Every forward of a keyed layer runs this: no more than a look at each part."""
    def integer(k):
        return isinstance(k, int | np.integer) and not isinstance(k, bool)

    def seeds(k):  # (a 1-D integer array too: np.arange(K) seeds)
        if isinstance(k, np.ndarray):
            return k.ndim == 1 and k.dtype.kind in "iu"
        # Python ints by their types at once (6 µs for K = 256, where a call per seed took 60 µs a forward)
        return isinstance(k, tuple | list) and (set(map(type, k)) <= {int} or all(map(integer, k)))

    if not (isinstance(key, tuple | list) and len(key) in (3, 4) and all(map(integer, key[1:3]))
            and (seeds(key[0]) if stacked else integer(key[0]))):
        seed = "seeds (one integer per model)" if stacked else "seed"
        raise ValueError(f"{name}: key must be ({seed}, stream, step) of integers, or ({seed}, stream, step, "
                         f"steps_done) with the backend's step counter, got {key!r}")
    return tuple(key)
