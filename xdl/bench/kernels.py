"""Speed of the fused ops (`xdl bench kernels`, ``benchmarks/report.py``): xdl vs. naive ``xp``
expressions vs. PyTorch, each case against a copy of its own byte count measured in the same run (a case that
fits in a cache is held to the cache's speed, not to main memory's); the pytest-benchmark suites in
``benchmarks/`` time the same cases.

Each case counts the fewest bytes its op must move (every input read once, every output written
once): fp32 Adam 28 B/parameter, SGD 12, Momentum and RMSprop 20; batch-norm forward and inference
8 B/element, forward+backward 20; dropout forward+backward 16 (its mask is recomputed, not stored);
ReLU forward+backward 20 (x → y, then ∂L/∂y and y → ∂L/∂x), and ReLU then dropout as one op 20 too; tanh,
sigmoid and leaky ReLU forward+backward 20 as ReLU;
the L2 penalty's node forward+backward 16 (w, then w and g read, g written); binary cross-entropy and the mean
squared error forward+backward 20 (z and y, then z and y read, ∂L/∂z written).
Batch norm is also timed through the public API (``bn(x)``, ``bn(x).backward(dy)``): what autodiff
adds to its kernels.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

import xdl
from xdl.backend import Backend
from xdl.bench.environment import environment, headline
from xdl.bench.steps import STEP_SHAPES, format_step_table, main_job_seconds_per_epoch, step_rows
from xdl.bench.timing import faster, time_call, time_calls, torch_on
from xdl.files import atomic_write, check_output_file
from xdl.tensor import enable_grad


@dataclass
class Row:
    case: str
    impl: str
    seconds: float
    bytes: int
    copy_gbps: float | None = None  # a copy of the same bytes on the same device in the same run (`against_copies`)

    @property
    def gbps(self) -> float:
        return self.bytes / self.seconds / 1e9

    @property
    def percent_of_copy(self) -> float | None:
        """100 · gbps / copy_gbps: the share of the speed of a copy moving as many bytes; None where unmeasured."""
        return 100 * self.gbps / self.copy_gbps if self.copy_gbps else None


@dataclass
class Case:
    """One benchmark case: the bytes it must move and, per implementation, a call and the device
    synchronization that makes its time honest."""

    name: str
    bytes: int
    impls: dict[str, tuple[Callable[[], object], Callable[[], None]]] = field(default_factory=dict)

    def rows(self) -> list[Row]:
        return [Row(self.name, impl, seconds, self.bytes) for impl, seconds in time_calls(self.impls).items()]


def copy_bandwidth(backend: Backend, nbytes: int) -> Row:
    """``xp.copyto`` of ``nbytes`` of float32 (at least one) into another array: 2 · nbytes read + written."""
    xp = backend.xp
    src = xp.ones(max(1, nbytes // 4), dtype=xp.float32)
    dst = xp.empty_like(src)
    return Row("device copy", "xp.copyto", time_call(lambda: xp.copyto(dst, src), backend.synchronize), 2 * src.nbytes)


def against_copies(backend: Backend, rows: list[Row], copies: dict[int, Row]) -> list[Row]:
    """``rows``, each with the rate of a copy moving its own byte count (read + written: half of it copied),
    timed as the cases are; a size not yet in ``copies`` (bytes → copy row) is measured once and kept there."""
    for nbytes in dict.fromkeys(r.bytes for r in rows):
        if nbytes not in copies:
            copies[nbytes] = copy_bandwidth(backend, nbytes // 2)
    return [replace(r, copy_gbps=copies[r.bytes].gbps) for r in rows]


# -- optimizer cases ----------------------------------------------------------------------
OPT_BYTES = {"adam": 28, "adamw": 28, "sgd": 12, "momentum": 20, "rmsprop": 20}
MLP_SHAPES = ([(784,), (784,)] + [(784, 1024), (1024,)] + [(1024,), (1024,), (1024, 1024), (1024,)] * 9
              + [(1024,), (1024,), (1024, 10), (10,)])  # 784→10×1024→10, BN before every Dense: 44 tensors


def _flat_update(backend, rule, p, g, s):
    """The backend's update of ``rule`` (a rule not named here is a KeyError, not another's timing)."""
    ops = backend.ops
    return {"adam": lambda: ops.adam_update(p, g, s[0], s[1], 1e-3, 0.9, 0.999, 1e-8, 10),
            "adamw": lambda: ops.adam_update(p, g, s[0], s[1], 1e-3, 0.9, 0.999, 1e-8, 10, 0.01, True),
            "sgd": lambda: ops.sgd_update(p, g, 1e-3, 0.0),
            "momentum": lambda: ops.momentum_update(p, g, s[0], 1e-3, 0.9),
            "rmsprop": lambda: ops.rmsprop_update(p, g, s[0], 1e-3, 0.9, 1e-8)}[rule]


def _naive_update(xp, rule, p, g, s):
    """The same update as whole-array expressions (temporaries and all)."""
    b1, b2, lr, eps, t = 0.9, 0.999, 1e-3, 1e-8, 10

    def adam():
        s[0][...] = b1 * s[0] + (1 - b1) * g
        s[1][...] = b2 * s[1] + (1 - b2) * g * g
        p[...] = p - lr * (s[0] / (1 - b1**t)) / (xp.sqrt(s[1] / (1 - b2**t)) + eps)

    def adamw():
        p[...] = p * (1 - lr * 0.01)
        adam()

    def sgd():
        p[...] = p - lr * g

    def momentum():
        s[0][...] = 0.9 * s[0] + 0.1 * g
        p[...] = p - lr * s[0]

    def rmsprop():
        s[0][...] = 0.9 * s[0] + 0.1 * g * g
        p[...] = p - lr * g / (xp.sqrt(s[0]) + eps)

    return locals()[rule]


def _torch_optimizer(torch, device, rule, tensors):
    params = [torch.nn.Parameter(t) for t in tensors]
    for p in params:
        p.grad = torch.randn_like(p)
    fused = {"fused": True} if device == "cuda" else {}
    make = {"adam": lambda: torch.optim.Adam(params, lr=1e-3, **fused),
            "adamw": lambda: torch.optim.AdamW(params, lr=1e-3, **fused),
            "sgd": lambda: torch.optim.SGD(params, lr=1e-3, **fused),
            "momentum": lambda: torch.optim.SGD(params, lr=1e-3, momentum=0.9, **fused),
            "rmsprop": lambda: torch.optim.RMSprop(params, lr=1e-3, foreach=True)}
    opt = make[rule]()
    opt.step()
    # what runs: PyTorch picks foreach by itself on CUDA only; a CPU optimizer not told is its for-loop
    kind = "fused" if fused and rule != "rmsprop" else "foreach" if device == "cuda" or rule == "rmsprop" else "for-loop"
    return opt.step, kind


def fused_update_label(backend: Backend) -> str:
    """What xdl's update is on ``backend``: one kernel launch over the flat buffer on a GPU; on the
    CPU the NumPy reference, which walks the buffer in cache-sized chunks (`xdl.ops.optim`)."""
    return "xdl fused (1 launch)" if backend.device_type == "cuda" else "xdl (NumPy, chunked loop)"


def optimizer_case(backend: Backend, rule: str, n: int | None = None, shapes=None, with_naive=True) -> Case:
    """xdl's fused update over one flat buffer vs naive xp vs torch (one tensor, or ``shapes``)."""
    xp = backend.xp
    sizes = [int(np.prod(s)) for s in shapes] if shapes else [n]
    total = sum(sizes)
    name = f"{rule} {'MLP ' + str(len(shapes)) + ' tensors' if shapes else _count(n)} ({_count(total)} params)"
    rng = backend.rng
    p, g = rng.standard_normal(total, dtype=xp.float32), rng.standard_normal(total, dtype=xp.float32)
    state = [xp.zeros(total, dtype=xp.float32) for _ in range(2)]
    case = Case(name, OPT_BYTES[rule] * total)
    case.impls[fused_update_label(backend)] = (_flat_update(backend, rule, p, g, state), backend.synchronize)
    if with_naive:
        case.impls["naive xp"] = (_naive_update(xp, rule, p, g, state), backend.synchronize)
    torch, device, sync = torch_on(backend)
    if torch is not None:
        tensors = [torch.randn(*(s if shapes else (n,)), device=device) for s in (shapes or [None])]
        step, kind = _torch_optimizer(torch, device, rule, tensors)
        case.impls[f"torch {kind}"] = (step, sync)
    return case


# -- batch-norm cases ---------------------------------------------------------------------
LAYER_IMPL = "xdl layer: bn(x)"  # the same work through `xdl.nn.BatchNorm` and autodiff


def batchnorm_case(backend: Backend, mode: str, n: int, c: int) -> Case:
    """mode: "train fwd", "train fwd+bwd" or "inference": the kernels called directly, the same
    through the public API (``bn(x)``, ``bn(x).backward(dy)``), naive xp and PyTorch."""
    xp, ops = backend.xp, backend.ops
    rng = backend.rng
    x = rng.standard_normal((n, c), dtype=xp.float32)
    dy = rng.standard_normal((n, c), dtype=xp.float32)
    gamma, beta = xp.ones(c, xp.float32), xp.zeros(c, xp.float32)
    rm, rv = xp.zeros(c, xp.float32), xp.ones(c, xp.float32)
    case = Case(f"batchnorm {mode} {n}x{c}", (20 if mode == "train fwd+bwd" else 8) * n * c)

    def xdl_fn():
        if mode == "inference":
            return ops.batchnorm_inference(x, gamma, beta, rm, rv, 1e-5)
        y, mean, inv = ops.batchnorm_train_forward(x, gamma, beta, rm, rv, 0.9, 1e-5)
        if mode == "train fwd+bwd":
            ops.batchnorm_backward(dy, x, gamma, mean, inv)

    def naive_fn():
        if mode == "inference":
            return (x - rm) / xp.sqrt(rv + 1e-5) * gamma + beta
        mean, var = x.mean(0), x.var(0)
        inv = 1 / xp.sqrt(var + 1e-5)
        x_hat = (x - mean) * inv
        y = x_hat * gamma + beta
        if mode == "train fwd+bwd":
            dbeta, dgamma = dy.sum(0), (dy * x_hat).sum(0)
            return gamma * inv / n * (n * dy - dbeta - x_hat * dgamma)
        return y

    with xdl.use(backend.name):
        layer = xdl.nn.BatchNorm(c, momentum=0.9)
    layer.train(mode != "inference")
    inputs = xdl.Tensor(x, backend=backend)

    def layer_fn():  # the public API, autodiff and all: what a user's model runs
        y = layer(inputs)
        if mode == "train fwd+bwd":
            y.backward(dy)

    case.impls["xdl kernels"] = (xdl_fn, backend.synchronize)
    case.impls[LAYER_IMPL] = (layer_fn, backend.synchronize)
    case.impls["naive xp"] = (naive_fn, backend.synchronize)
    torch, device, sync = torch_on(backend)
    if torch is not None:
        tx = torch.randn(n, c, device=device, requires_grad=(mode == "train fwd+bwd"))
        tdy = torch.randn(n, c, device=device)
        tw, tb = torch.ones(c, device=device, requires_grad=True), torch.zeros(c, device=device, requires_grad=True)
        trm, trv = torch.zeros(c, device=device), torch.ones(c, device=device)
        F = torch.nn.functional

        def torch_fn():
            if mode == "inference":
                with torch.no_grad():
                    return F.batch_norm(tx, trm, trv, tw, tb, training=False)
            if mode == "train fwd":
                with torch.no_grad():
                    return F.batch_norm(tx, trm, trv, tw, tb, training=True, momentum=0.1)
            # autograd.grad hands the gradients back: .backward() added them into tx.grad (an extra
            # read-read-write of (n, c) per call, 12 B/element, which xdl's kernels do not do)
            torch.autograd.grad(F.batch_norm(tx, trm, trv, tw, tb, training=True, momentum=0.1), (tx, tw, tb), tdy)

        case.impls["torch"] = (torch_fn, sync)
    return case


# -- dropout cases -------------------------------------------------------------------------
def dropout_case(backend: Backend, n: int, c: int, rate: float = 0.3) -> Case:
    """Forward + backward of dropout on (n, c): the mask is a pure function of its key, drawn in
    the kernel both times and never stored, so the fewest bytes are x, y, ∂L/∂y, ∂L/∂x: 16 B/element."""
    xp, ops = backend.xp, backend.ops
    rng = backend.rng
    x, gy = rng.standard_normal((n, c), dtype=xp.float32), rng.standard_normal((n, c), dtype=xp.float32)
    case = Case(f"dropout fwd+bwd {n}x{c}", 16 * n * c)
    key = (0, 1, 2)

    def xdl_fn():
        _, saved = ops.dropout_forward(x, rate, *key)
        ops.dropout_backward(gy, saved, rate, *key)

    def naive_fn():
        scaled = (rng.random((n, c), dtype=xp.float32) >= rate).astype(xp.float32) * (1 / (1 - rate))
        return x * scaled, gy * scaled

    case.impls["xdl kernels"] = (xdl_fn, backend.synchronize)
    case.impls["naive xp"] = (naive_fn, backend.synchronize)
    _torch_forward_backward(case, backend, n, c, lambda F, tx: F.dropout(tx, rate, training=True))
    return case


def relu_dropout_case(backend: Backend, n: int, c: int, rate: float = 0.3) -> Case:
    """Forward + backward of ReLU then dropout on (n, c) as one op (what a Trainer's model runs): x → y,
    then ∂L/∂y and y → ∂L/∂x, the mask drawn in the kernel both times: 20 B/element. Beside it the
    pair run as two ops each way, naive xp and PyTorch's relu then dropout."""
    xp, ops, rng = backend.xp, backend.ops, backend.rng
    x, gy = rng.standard_normal((n, c), dtype=xp.float32), rng.standard_normal((n, c), dtype=xp.float32)
    case = Case(f"relu+dropout fwd+bwd {n}x{c}", 20 * n * c)
    key = (0, 1, 2)

    def fused():
        y, saved = ops.relu_dropout_forward(x, rate, *key)
        ops.relu_dropout_backward(gy, y, saved, rate, *key)

    def pair():
        r = ops.relu_forward(x)
        y, saved = ops.dropout_forward(r, rate, *key)
        ops.relu_backward(ops.dropout_backward(gy, saved, rate, *key), r)

    def naive_fn():
        scaled = (rng.random((n, c), dtype=xp.float32) >= rate).astype(xp.float32) * (1 / (1 - rate))
        y = xp.maximum(x, 0) * scaled
        return y, gy * scaled * (y > 0)

    case.impls["xdl kernels"] = (fused, backend.synchronize)
    case.impls["xdl relu, dropout"] = (pair, backend.synchronize)
    case.impls["naive xp"] = (naive_fn, backend.synchronize)
    _torch_forward_backward(case, backend, n, c, lambda F, tx: F.dropout(F.relu(tx), rate, training=True))
    return case


def _torch_forward_backward(case: Case, backend: Backend, n: int, c: int, forward) -> None:
    """Add PyTorch's ``forward(torch.nn.functional, x)`` on an (n, c) input, then its backward, to
    ``case`` (when PyTorch is there). The backward returns ∂L/∂x (`torch.autograd.grad`) as xdl's
    kernels do: ``.backward()`` would add it into ``x.grad`` on every call after the first, an extra
    12 B/element timed as PyTorch's."""
    torch, device, sync = torch_on(backend)
    if torch is not None:
        tx = torch.randn(n, c, device=device, requires_grad=True)
        tgy = torch.randn(n, c, device=device)
        case.impls["torch"] = (lambda: torch.autograd.grad(forward(torch.nn.functional, tx), tx, tgy), sync)


def relu_case(backend: Backend, n: int, c: int) -> Case:
    """Forward + backward of ReLU on (n, c): one kernel each way, the backward reading the forward's
    output instead of a stored mask: x, y, ∂L/∂y, y, ∂L/∂x — 20 B/element."""
    xp, ops, rng = backend.xp, backend.ops, backend.rng
    x, gy = rng.standard_normal((n, c), dtype=xp.float32), rng.standard_normal((n, c), dtype=xp.float32)
    case = Case(f"relu fwd+bwd {n}x{c}", 20 * n * c)

    def naive_fn():
        positive = x > 0
        return x * positive, gy * positive

    case.impls["xdl kernels"] = (lambda: ops.relu_backward(gy, ops.relu_forward(x)), backend.synchronize)
    case.impls["naive xp"] = (naive_fn, backend.synchronize)
    _torch_forward_backward(case, backend, n, c, lambda F, tx: F.relu(tx))
    return case


ACTIVATIONS = ("tanh", "sigmoid", "leaky_relu")  # activation_case's, each one kernel each way on a GPU


def activation_case(backend: Backend, name: str, n: int, c: int) -> Case:
    """Forward + backward of tanh, sigmoid or leaky ReLU (slope 0.01) on (n, c), as `relu_case`: one kernel each
    way, the backward reading the forward's output — 20 B/element; naive ``xp`` is the expressions they were."""
    xp, ops, rng = backend.xp, backend.ops, backend.rng
    x, gy = rng.standard_normal((n, c), dtype=xp.float32), rng.standard_normal((n, c), dtype=xp.float32)
    case = Case(f"{name} fwd+bwd {n}x{c}", 20 * n * c)
    forward, backward = getattr(ops, f"{name}_forward"), getattr(ops, f"{name}_backward")
    if name == "leaky_relu":
        def fused():
            return backward(gy, forward(x, 0.01), 0.01)

        def naive_fn():
            positive = x > 0
            return xp.where(positive, x, x * 0.01), xp.where(positive, gy, gy * 0.01)
    else:
        def fused():
            return backward(gy, forward(x))

        def naive_fn():
            y = xp.tanh(x) if name == "tanh" else 1 / (1 + xp.exp(-x))
            return y, gy * (1 - y * y) if name == "tanh" else gy * y * (1 - y)

    case.impls["xdl kernels"] = (fused, backend.synchronize)
    case.impls["naive xp"] = (naive_fn, backend.synchronize)
    _torch_forward_backward(case, backend, n, c, lambda F, tx: F.leaky_relu(tx, 0.01) if name == "leaky_relu"
                            else getattr(F, name)(tx))
    return case


LOSSES = ("bce", "mse")  # loss_case's: binary cross-entropy of logits and the mean squared error


def loss_case(backend: Backend, name: str, n: int) -> Case:
    """Forward + backward of binary cross-entropy of logits (``name`` "bce") or the mean squared error ("mse") over
    n elements: one kernel each way, the mean in the forward's last block — z and y read, then z and y read and
    ∂L/∂z written: 20 B/element; naive ``xp`` is the expressions they were."""
    xp, ops, rng = backend.xp, backend.ops, backend.rng
    z = rng.standard_normal(n, dtype=xp.float32)
    y = rng.random(n, dtype=xp.float32) if name == "bce" else rng.standard_normal(n, dtype=xp.float32)
    gy = xp.ones((), dtype=xp.float32)
    case = Case(f"{name} fwd+bwd {_count(n)}", 20 * n)
    if name == "bce":
        def fused():
            return ops.binary_cross_entropy_forward(z, y), ops.binary_cross_entropy_backward(z, y, gy)

        def naive_fn():
            cost = (xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))).mean()
            return cost, (1 / (1 + xp.exp(-z)) - y) * (gy / n)
    else:
        def fused():
            return ops.squared_error_forward(z, y), ops.squared_error_backward(z, y, gy)

        def naive_fn():
            diff = z - y
            return (diff * diff).mean(), 2 * diff * (gy / n)

    case.impls["xdl kernels"] = (fused, backend.synchronize)
    case.impls["naive xp"] = (naive_fn, backend.synchronize)
    torch, device, sync = torch_on(backend)
    if torch is not None:
        tz = torch.randn(n, device=device, requires_grad=True)
        ty = torch.rand(n, device=device)
        loss = (torch.nn.functional.binary_cross_entropy_with_logits if name == "bce"
                else torch.nn.functional.mse_loss)
        case.impls["torch"] = (lambda: torch.autograd.grad(loss(tz, ty), tz), sync)
    return case


def penalty_case(backend: Backend, n: int) -> Case:
    """The L2 penalty's node over n weights, forward + backward (`WeightPenalty`'s passes: the cost, then
    g·(λ/m)·W added into the gradient range): w read, then w and g read and g written — 16 B/weight in fp32."""
    xp, ops, rng = backend.xp, backend.ops, backend.rng
    w, g = rng.standard_normal(n, dtype=xp.float32), rng.standard_normal(n, dtype=xp.float32)
    gy = xp.ones((), dtype=xp.float32)
    case = Case(f"l2 penalty fwd+bwd {_count(n)}", 16 * n)

    def xdl_fn():
        ops.penalty_forward(w, "l2", 0.01)
        ops.penalty_backward(g, w, gy, 0.01, "l2")

    def naive_fn():
        cost = (w * w).sum() * 0.005
        g[...] += gy * 0.01 * w
        return cost

    case.impls["xdl kernels"] = (xdl_fn, backend.synchronize)
    case.impls["naive xp"] = (naive_fn, backend.synchronize)
    return case


def _count(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}K" if n >= 1e3 else str(n)


def format_table(rows: list[Row]) -> str:
    """A markdown table: time, GB/s, % of the bandwidth of a copy of the case's own bytes, ratios to naive and to
    torch."""
    lines = ["| case | implementation | median time | GB/s | % of same-size copy | vs naive xp | vs torch |",
             "|---|---|---:|---:|---:|---:|---:|"]
    by_case: dict[str, list[Row]] = {}
    for r in rows:
        by_case.setdefault(r.case, []).append(r)
    for case, group in by_case.items():
        naive = next((r for r in group if r.impl == "naive xp"), None)
        torch = next((r for r in group if r.impl.startswith("torch")), None)
        for r in group:
            vs_naive = faster(naive.seconds, r.seconds) if naive and r is not naive else ""
            vs_torch = f"{r.seconds / torch.seconds:.2f}× torch's time" if torch and r is not torch else ""
            share = "" if r.percent_of_copy is None else f"{r.percent_of_copy:.0f}%"
            lines.append(f"| {case} | {r.impl} | {_duration(r.seconds)} | {_rate(r.gbps)} | {share} | {vs_naive} | "
                         f"{vs_torch} |")
    return "\n".join(lines)


def api_overhead(rows: list[Row]) -> str:
    """One line: each batch-norm case's time through the public API over the kernels' own."""
    kernels = {r.case: r.seconds for r in rows if r.impl == "xdl kernels"}
    ratios = [f"{r.case.removeprefix('batchnorm ')} {r.seconds / kernels[r.case]:.2f}×" for r in rows
              if r.impl == LAYER_IMPL and r.case in kernels]
    return "batch norm through the public API (bn(x), bn(x).backward(dy)) vs the kernels alone: " + \
        (", ".join(ratios) or "no case")


def _rate(gbps: float) -> str:
    """GB/s as a whole number from 100 on (a GPU's thousands), else to 3 digits: a CPU's 0.33 GB/s was "0"."""
    return f"{gbps:.0f}" if gbps >= 99.95 else f"{gbps:.3g}"


def _duration(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} µs"


@enable_grad()  # its cases time backward passes: under a caller's no_grad they failed
def report(quick: bool = False, json_path=None, json_flag: str = "json_path") -> None:
    """Print one table of every case on the current backend (``quick``: without the 100M-parameter
    case, the 65536×1024 batch-norm, dropout and ReLU cases, and the B=4096 train step) under a
    line saying what produced it (`environment`);
    ``json_path``: also write the rows and that record there — checked before any work, an error
    naming ``json_flag`` (the command's "--json")."""
    if json_path is not None:
        json_path = check_output_file(json_path, json_flag)
    backend = xdl.current_backend()
    env = environment(backend)
    xdl.seed(0)
    gpu = backend.device_type == "cuda"
    copy = copy_bandwidth(backend, (1 << 30) if gpu else (1 << 28))  # main memory's: the header's figure
    rows, steps, epochs, copies = [], [], {}, {}

    def measured(new_rows=(), complete=False):
        """Add rows and write the JSON with everything measured so far: a run stopped by a time
        limit keeps its figures (the file is replaced whole, never left half written), saying it
        is not ``complete``."""
        rows.extend(against_copies(backend, list(new_rows), copies))  # each size's copy just after its case
        if json_path:  # (date and device also at the top, where readers of older files find them)
            figures = {"date": env["date"][:10], "device": env["device"], "backend": env["backend"], "quick": quick,
                       "complete": complete, "environment": env, "copy_gbps": copy.gbps,
                       "rows": [r.__dict__ | {"gbps": r.gbps} for r in rows],
                       "steps": [r.__dict__ for r in steps], "main_job_seconds_per_epoch": epochs}
            atomic_write(json_path, lambda f: json.dump(figures, f, indent=1), binary=False)

    for n in ([1_000_000, 10_000_000] + ([] if quick else [100_000_000])):
        measured(optimizer_case(backend, "adam", n).rows())
    measured(optimizer_case(backend, "adam", shapes=MLP_SHAPES).rows())
    for rule in ("adamw", "sgd", "momentum", "rmsprop"):
        measured(optimizer_case(backend, rule, 10_000_000).rows())
    shapes = [(1024, 1024), (8192, 4096)] + ([] if quick else [(65536, 1024)])
    for mode in ("train fwd", "train fwd+bwd", "inference"):
        for n, c in shapes:
            measured(batchnorm_case(backend, mode, n, c).rows())
    for case in (dropout_case, relu_case, relu_dropout_case):
        for n, c in shapes:
            measured(case(backend, n, c).rows())
    for name in ACTIVATIONS:
        for n, c in shapes:
            measured(activation_case(backend, name, n, c).rows())
    for n in (1_000_000, 10_000_000):
        measured(penalty_case(backend, n).rows())
    for name in LOSSES:
        for n in (1 << 20, 1 << 24):
            measured(loss_case(backend, name, n).rows())

    print(f"# xdl benchmark report{' (--quick)' if quick else ''} — {headline(env)}")
    print(f"measured copy bandwidth: {copy.gbps:.0f} GB/s (bytes read + written)")
    print(f"% of same-size copy: each case against a copy of its own bytes on this device, timed as the cases "
          f"({len(copies)} sizes in this run; a case that fits in a cache is held to the cache's speed)\n")
    print(format_table(rows))
    print("\n" + api_overhead(rows))
    if torch_on(backend)[0] is None:
        print("\n(PyTorch not installed here, or not on this device: the vs torch column is empty)")

    for case_rows in step_rows(backend, STEP_SHAPES[:2] if quick else STEP_SHAPES):
        steps.extend(case_rows)
        measured()
    print("\n## train step (forward, loss, backward, Adam update)\n")
    print("% of matmul: the step's matrix-product FLOPs (2·B·in·out per product: each Dense's forward and ∂L/∂W, "
          "and its ∂L/∂x but the first's) per second over a plain product of its largest shape's, timed in the "
          "same rounds\n")
    print(format_step_table(steps))
    try:
        xdl.datasets.check_available("digits")
    except ImportError as e:  # the rest of the report stands without it
        print(f"\nmain job (xdl train defaults, digits): not measured — {e}")
        measured(complete=True)
        return
    epochs[backend.name] = main_job_seconds_per_epoch(backend.name)
    measured(complete=not gpu)
    if gpu:
        epochs["numpy"] = main_job_seconds_per_epoch("numpy")
        measured(complete=True)
    print("\nmain job (xdl train defaults, digits), time per epoch as xdl train prints it (all epochs): "
          + ", ".join(f"{name} {1e3 * s:.1f} ms" for name, s in epochs.items()))
