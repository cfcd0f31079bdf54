"""Speed of a whole training step (`benchmarks/report.py`, after the kernels' table): xdl eager and
captured (`xdl.cuda_graph`) against PyTorch eager (fused Adam) and PyTorch's whole step captured
as one CUDA graph, on the same device in the same run; and the main job's (``xdl train``
defaults, digits) time per epoch on this backend and on the CPU of the same machine.

The model is ``(Dense no-bias → BatchNorm → ReLU → Dropout 0.2) × L → Dense``, softmax
cross-entropy, Adam (lr 1e-3), float32 — the same layers on both sides. Small steps are decided
by host overhead (launches and Python per step), large ones by the matrix products.
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
    again with TF32 matrix products on both sides): the rows of each case as it is measured."""
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
            try:
                seconds = time_calls(calls)  # in turn: the ratios hold if the machine drifts
            finally:
                if device == "cuda":
                    torch.backends.cuda.matmul.allow_tf32 = False
        yield [StepRow(name, impl, seconds[impl], fn.nodes() if impl == "xdl captured" else None)
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
    lines = ["| step | implementation | median time | × torch eager's time | × torch graph's time "
             "| launches per step |",
             "|---|---|---:|---:|---:|---|"]
    for case in dict.fromkeys(r.case for r in rows):
        group = [r for r in rows if r.case == case]
        ref = {r.impl: r.seconds for r in group}
        for r in group:
            ratios = [f"{r.seconds / ref[k]:.2f}×" if k in ref and k != r.impl else "" for k in ("torch eager",
                                                                                                 "torch graph")]
            launches = "" if not r.launches else \
                f"{sum(r.launches.values())} ({', '.join(f'{n} {k.lower()}' for k, n in sorted(r.launches.items()))})"
            lines.append(f"| {case} | {r.impl} | {r.seconds * 1e3:.3f} ms | {ratios[0]} | {ratios[1]} | {launches} |")
    return "\n".join(lines)
