"""Speed of a whole training step (`benchmarks/report.py`, after the kernels' table): xdl eager and
captured (`xdl.cuda_graph`) against PyTorch eager (fused Adam) and PyTorch's whole step captured
as one CUDA graph, on the same device in the same run; and the main job's (``xdl train``
defaults, digits) time per epoch on this backend and on the CPU of the same machine.

The model is ``(Dense no-bias → BatchNorm → ReLU → Dropout 0.2) × L → Dense``, softmax
cross-entropy, Adam (lr 1e-3), float32 — the same layers on both sides. Small steps are decided
by host overhead (launches and Python per step), large ones by the matrix products: each step's "% of matmul" is
its matrix products' FLOPs per second (`step_flops`) over a plain product's of its largest shape (`matmul_call`),
timed in the same rounds as the steps — the limit a compute-bound step is held to.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import xdl
from xdl.bench.timing import time_calls, torch_on
from xdl.losses import SoftmaxCrossEntropy, l1 as l1_penalty, l2 as l2_penalty

STEP_SHAPES = ((128, 784, 256, 3), (512, 784, 1024, 4), (4096, 784, 2048, 4))  # batch, inputs, width, layers


@dataclass
class StepRow:
    case: str
    impl: str
    seconds: float
    launches: dict | None = None  # the captured step's graph nodes by kind (what an eager step launches)
    flops: int | None = None  # the step's matrix-product FLOPs (`step_flops`)
    matmul_flops_per_s: float | None = None  # a plain product's of its largest shape, in the same rounds

    @property
    def percent_of_matmul(self) -> float | None:
        """100 · (flops / seconds) / matmul_flops_per_s, or None where either was not measured."""
        if self.flops is None or not self.matmul_flops_per_s:
            return None
        return 100 * self.flops / self.seconds / self.matmul_flops_per_s


MATMUL = "plain matmul"  # the reference product's name among a case's timed calls (not a row)


def dense_shapes(features: int, width: int, layers: int) -> list[tuple[int, int]]:
    """(in, out) of each Dense of the step's model: features → width, (layers − 1) × width → width, width → 10."""
    return [(features, width)] + [(width, width)] * (layers - 1) + [(width, 10)]


def step_flops(batch: int, features: int, width: int, layers: int) -> int:
    """The matrix-product FLOPs of one step, 2·B·in·out per product of each Dense: its forward x·W, its ∂L/∂W =
    xᵀ·∂L/∂y and its ∂L/∂x = ∂L/∂y·Wᵀ, but for the first Dense, whose input needs no gradient (neither side
    computes it): Σ 3·2·B·in·out − 2·B·features·width."""
    return sum(3 * 2 * batch * i * o for i, o in dense_shapes(features, width, layers)) - 2 * batch * features * width


def matmul_call(backend, batch: int, features: int, width: int, layers: int):
    """A plain float32 product (B, in)·(in, out) of the step's Dense with the most weights, into a preallocated
    output through the backend's matmul (on cupy xdl's cuBLAS handle, at the precision in force, as the step's
    products): (the call, its FLOPs 2·B·in·out)."""
    rows, columns = max(dense_shapes(features, width, layers), key=lambda shape: shape[0] * shape[1])
    rng = np.random.default_rng(0)  # (not the backend's generator: the steps' draws stay as they were)
    a, b = (backend.asarray(rng.standard_normal(shape).astype(np.float32))
            for shape in ((batch, rows), (rows, columns)))
    out = backend.xp.empty((batch, columns), dtype=np.float32)
    return (lambda: backend.ops.matmul(a, b, out=out)), 2 * batch * rows * columns


def xdl_step(backend, batch, features, width, layers, captured: bool, l2: float = 0.0, l1: float = 0.0):
    """A step function on fixed input arrays, eager or as a replayed CUDA graph; ``l2``, ``l1``: the weight
    penalties added to its cost, as a `Trainer`'s (each left out at 0)."""
    xp = backend.xp
    xdl.seed(0)
    model = xdl.nn.mlp(features, [width] * layers, 10, batch_norm=True, dropout=0.2)
    opt = xdl.optim.Adam(model, lr=1e-3)
    loss = SoftmaxCrossEntropy()
    rng = np.random.default_rng(0)
    x = backend.asarray(rng.standard_normal((batch, features)).astype(np.float32))
    y = backend.asarray(loss.prepare(rng.integers(0, 10, batch), (batch, 10), xdl.backend.get_backend("numpy"),
                                     np.float32))
    counter = xp.zeros(1, dtype=np.int64)
    model.train()
    model.set_random_key(0, 0, steps_done=counter)
    inputs = xdl.Tensor(x, backend=backend)

    def step():
        opt.zero_grad()
        cost = loss.compute(model(inputs), y)
        total = cost + l2_penalty(model, l2, m=batch) if l2 else cost
        if l1:
            total = total + l1_penalty(model, l1, m=batch)
        total.backward()
        opt.step()
        xp.add(counter, 1, out=counter)  # the next step's dropout key
        return cost.data

    return xdl.cuda_graph(step, backend=backend, warmup=2) if captured else step


def torch_step(torch, device, batch, features, width, layers, captured: bool, tf32: bool):
    torch.manual_seed(0)
    blocks, inputs = [], features
    for _ in range(layers):
        blocks += [torch.nn.Linear(inputs, width, bias=False), torch.nn.BatchNorm1d(width), torch.nn.ReLU(),
                   torch.nn.Dropout(0.2)]
        inputs = width
    model = torch.nn.Sequential(*blocks, torch.nn.Linear(inputs, 10)).to(device)
    cuda = device == "cuda"
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=cuda, capturable=captured)
    x = torch.randn(batch, features, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = tf32

    def step():
        # PyTorch's default (set_to_none) and its whole-network capture recipe: backward writes each gradient
        # afresh (captured: into the graph's pool). Zeroed in place, every step paid a memset and one add per
        # parameter that a PyTorch user's step does not
        opt.zero_grad()
        cost = torch.nn.functional.cross_entropy(model(x), y)
        cost.backward()
        opt.step()
        return cost

    if not captured:
        return step
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def step_rows(backend, shapes=STEP_SHAPES) -> Iterator[list[StepRow]]:
    """Seconds per step of each implementation for each shape (and, on a GPU, the largest shape
    again with TF32 matrix products on both sides), with the step's matrix-product FLOPs and a plain product's
    rate timed in the same rounds (`matmul_call`, at the case's precision): the rows of each case as it is
    measured."""
    gpu = backend.supports_graphs
    torch, device, sync = torch_on(backend)
    cases = [(shape, "float32") for shape in shapes] + ([(shapes[-1], "tf32")] if gpu else [])
    for (batch, features, width, layers), precision in cases:
        name = f"B={batch}, {features}→{layers}×{width}→10" + (" tf32" if precision == "tf32" else "")
        with xdl.use(backend.name, precision=precision):  # the xdl steps run at this precision when called
            calls = {}
            for captured in (False, True) if gpu else (False,):
                fn = xdl_step(backend, batch, features, width, layers, captured)
                calls["xdl captured" if captured else "xdl eager"] = (fn, backend.synchronize)
            if torch is not None:  # torch's TF32 switch is global: set here, for its steps' calls below
                for captured in (False, True) if gpu else (False,):
                    fn = torch_step(torch, device, batch, features, width, layers, captured, precision == "tf32")
                    calls["torch graph" if captured else "torch eager"] = (fn, sync)
            matmul, matmul_flops = matmul_call(backend, batch, features, width, layers)
            try:  # in turn, the product too: the ratios hold if the machine drifts
                seconds = time_calls({**calls, MATMUL: (matmul, backend.synchronize)})
            finally:
                if device == "cuda":
                    torch.backends.cuda.matmul.allow_tf32 = False
        flops, matmul_rate = step_flops(batch, features, width, layers), matmul_flops / seconds[MATMUL]
        yield [StepRow(name, impl, seconds[impl], fn.nodes() if impl == "xdl captured" else None, flops, matmul_rate)
               for impl, (fn, _) in calls.items()]


def main_job_seconds_per_epoch(backend_name: str) -> float:
    """Seconds per epoch of ``xdl train``'s default run (digits, defaults, early stopping as it
    stops) on ``backend_name``: the mean over all its epochs, the first's compilation and capture
    included, as ``xdl train`` prints it (a median of the later epochs read lower than a user sees)."""
    from xdl.config import TrainConfig
    from xdl.data import Standardizer, split

    config = TrainConfig(backend=backend_name, progress=False)
    with xdl.use(backend_name):
        xdl.seed(config.seed)
        X, y = xdl.datasets.load(config.dataset)
        parts = split(X, y, seed=config.seed)
        model = config.build_model(X.shape[1], int(y.max()) + 1, Standardizer().fit(parts.X_train).layer())
        history = config.build_trainer(model).fit(parts.X_train, parts.y_train, dev=(parts.X_dev, parts.y_dev))
    return statistics.fmean(history["seconds"])


def format_step_table(rows: list[StepRow]) -> str:
    # (the ratios are times: below 1× is faster than torch, as the kernels table's "× torch's time")
    lines = ["| step | implementation | median time | % of matmul | × torch eager's time | × torch graph's time "
             "| launches per step |",
             "|---|---|---:|---:|---:|---:|---|"]
    for case in dict.fromkeys(r.case for r in rows):
        group = [r for r in rows if r.case == case]
        ref = {r.impl: r.seconds for r in group}
        for r in group:
            ratios = [f"{r.seconds / ref[k]:.2f}×" if k in ref and k != r.impl else "" for k in ("torch eager",
                                                                                                 "torch graph")]
            launches = "" if not r.launches else \
                f"{sum(r.launches.values())} ({', '.join(f'{n} {k.lower()}' for k, n in sorted(r.launches.items()))})"
            share = "" if r.percent_of_matmul is None else f"{r.percent_of_matmul:.0f}%"
            lines.append(f"| {case} | {r.impl} | {r.seconds * 1e3:.3f} ms | {share} | {ratios[0]} | {ratios[1]} "
                         f"| {launches} |")
    return "\n".join(lines)
