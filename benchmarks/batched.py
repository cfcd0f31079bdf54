"""Caviar on one device: K digits MLPs trained at once with `xdl.train.fit_many`, against K
sequential runs — xdl's own `Trainer` and PyTorch eager — and against the best a PyTorch user can
build by hand: the K models fused with `torch.matmul` on stacked weights (K, in, out), batch norm
over the batch axis per model, one fused Adam over the stacked tensors, eager and (on a GPU)
captured as one CUDA graph per batch shape.

The model is ``xdl train``'s default: 64 → Dense 256 → BN → ReLU → Dropout 0.3 → Dense 128 → BN →
ReLU → Dropout 0.3 → Dense 10, Adam (lr 3e-3 spread over the K models), batch 64, on the 1079
training rows of the standardized digits (17 steps per epoch), a fixed number of epochs and no
early stopping. xdl's whole runs also build the models, measure the train set in evaluation mode
after every epoch (what its history records) and hand back the best model (a result's model is
taken out of the batch when first read); the PyTorch runs train only, so every ratio is
conservative for xdl. The steady column leaves out the run's setup: the
median epoch after the first (compilation, capture) as the trainer times it — its steps and its
evaluation of the train set — like the PyTorch peers' epochs, whose setup and capture are not timed.

    PYTHONPATH=$PWD python benchmarks/batched.py            # K = 1, 8, 64, 256; 30 epochs
    PYTHONPATH=$PWD python benchmarks/batched.py --quick    # K = 1, 16; 3 epochs (a CPU in minutes)

Sequential times are measured on ``--sequential`` runs (default 2) and multiplied by K: K sequential
xdl runs over the batched run's time is also its model-epochs per second over one model's (the one
column says both). Every argument is checked before any work (``--json``'s directory and the backend
too); the header and the JSON say what produced the figures (`xdl.bench.environment`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import xdl
from xdl.config import TrainConfig
from xdl.data import Standardizer, split
from xdl.data.validation import check_int
from xdl.files import atomic_write
from xdl.bench.environment import checked_backend, checked_dataset, environment, headline
from xdl.files import check_output_file
from xdl.bench.timing import faster, torch_on
from xdl.hostmemory import keep_freed_memory
from xdl.train import fit_many


def digits_training_set(dtype=np.float32):
    """The training part of ``xdl train``'s split, standardized: (X, y)."""
    X, y = xdl.datasets.digits()
    parts = split(X, y, seed=0)
    scaler = Standardizer().fit(parts.X_train)
    return scaler.transform(parts.X_train).astype(dtype), parts.y_train.astype(np.int64)


def configs(k: int, epochs: int) -> list[TrainConfig]:
    """K default configurations with their own seeds and learning rates (log-spaced around 3e-3)."""
    rates = np.geomspace(1e-3, 1e-2, k) if k > 1 else [3e-3]
    return [TrainConfig(seed=i, lr=float(lr), epochs=epochs, patience=0, progress=False) for i, lr in enumerate(rates)]


def synchronize():
    xdl.current_backend().synchronize()


def steady_epoch(history) -> float:
    """Median seconds of an epoch after the first (compilation, capture), as the trainer timed it
    (its steps and its evaluation of the train set)."""
    return statistics.median(r["seconds"] for r in (history.records[1:] or history.records))


def xdl_batched(k, X, y, epochs, eval_train=True) -> tuple[float, float, float]:
    """(seconds for fit_many to build and train K models for ``epochs`` and hand back the best —
    what a caviar user keeps —, its steady seconds per epoch, the seconds outside its epochs:
    building the K models, taking the best out). ``eval_train=False``: no pass over the train set
    after each epoch (the history keeps the steps' running averages), as the PyTorch peers."""
    synchronize()
    start = time.perf_counter()
    results = fit_many(configs(k, epochs), X, y, seed=0, eval_train=eval_train)
    best = min(results, key=lambda r: r.history.final()["train_cost"]).model
    synchronize()
    seconds = time.perf_counter() - start
    assert all(r.status == "completed" for r in results) and best is not None
    return seconds, steady_epoch(results[0].history), seconds - sum(r["seconds"] for r in results[0].history.records)


def xdl_one(X, y, epochs) -> tuple[float, float]:
    """(seconds for one model built and trained by an ordinary Trainer, its steady seconds per epoch)."""
    config = configs(1, epochs)[0]
    synchronize()
    start = time.perf_counter()
    xdl.seed(config.seed)
    model = config.build_model(X.shape[1], 10)
    history = config.build_trainer(model).fit(X, y)
    synchronize()
    return time.perf_counter() - start, steady_epoch(history)


# -- PyTorch peers -------------------------------------------------------------------------------
def torch_one(torch, X, y, epochs, device) -> float:
    """Seconds for one PyTorch eager run of the same model (fused Adam on CUDA)."""
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.3),
                          nn.Linear(256, 128, bias=False), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.3),
                          nn.Linear(128, 10)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, **({"fused": True} if device == "cuda" else {}))
    Xt, yt = torch.as_tensor(X, device=device), torch.as_tensor(y, device=device)

    def step(idx):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(Xt[idx]), yt[idx])
        loss.backward()
        opt.step()

    return timed_epochs(torch, len(X), epochs, device, step)


def timed_epochs(torch, m, epochs, device, step) -> float:
    """Seconds for ``epochs`` of ``step(indices)`` over xdl's batches (batch 64) in its shuffles."""
    bounds = xdl.data.batch_bounds(m, 64, 2)
    _sync(torch, device)
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.as_tensor(np.random.default_rng([0, epoch]).permutation(m), device=device)
        for a, b in bounds:
            step(order[a:b])
    _sync(torch, device)
    return time.perf_counter() - start


class TorchFused:
    """K models fused by hand: stacked weights, one batched product per layer, batch norm over
    (B, K·C), dropout, one fused Adam over the stacked tensors."""

    def __init__(self, torch, k, device):
        self.torch, self.k, self.device = torch, k, device
        g = torch.Generator(device="cpu").manual_seed(0)
        sizes = [(64, 256), (256, 128), (128, 10)]
        self.weights = [(torch.randn(k, a, b, generator=g) * (2.0 / a) ** 0.5).to(device).requires_grad_()
                        for a, b in sizes]
        self.gammas = [torch.ones(k * c, device=device, requires_grad=True) for c in (256, 128)]
        self.betas = [torch.zeros(k * c, device=device, requires_grad=True) for c in (256, 128)]
        self.bias = torch.zeros(k, 1, 10, device=device, requires_grad=True)
        self.running = [(torch.zeros(k * c, device=device), torch.ones(k * c, device=device)) for c in (256, 128)]
        params = [*self.weights, *self.gammas, *self.betas, self.bias]
        lr = torch.tensor(3e-3, device=device) if device == "cuda" else 3e-3
        options = {"fused": True, "capturable": True} if device == "cuda" else {}
        self.opt = torch.optim.Adam(params, lr=lr, **options)

    def step(self, x, y):
        F, k = self.torch.nn.functional, self.k
        self.opt.zero_grad()  # set_to_none, as PyTorch's capture recipe: no memset and no add per parameter
        h = x  # (B, 64), shared: the first product broadcasts it to (K, B, 256)
        for layer in range(2):
            h = self.torch.matmul(h, self.weights[layer])  # (K, B, C)
            kk, b, c = h.shape
            flat = h.transpose(0, 1).reshape(b, kk * c)  # (B, K·C): batch norm per model and feature
            mean, var = self.running[layer]
            flat = F.batch_norm(flat, mean, var, self.gammas[layer], self.betas[layer], training=True, momentum=0.1)
            flat = F.dropout(F.relu(flat), 0.3, training=True)
            h = flat.reshape(b, kk, c).transpose(0, 1)
        logits = self.torch.matmul(h, self.weights[2]) + self.bias  # (K, B, 10)
        loss = F.cross_entropy(logits.reshape(-1, 10), y.repeat(k)) * k  # Σ_k each model's mean
        loss.backward()
        self.opt.step()
        return loss


def torch_fused(torch, k, X, y, epochs, device, capture: bool) -> float:
    """Seconds for the hand-fused K models, eager or captured (one CUDA graph per batch size)."""
    model = TorchFused(torch, k, device)
    Xt, yt = torch.as_tensor(X, device=device), torch.as_tensor(y, device=device)
    bounds = xdl.data.batch_bounds(len(X), 64, 2)
    graphs = {}
    if capture:  # static inputs per batch size; warm-up on a side stream, then capture
        for size in sorted({b - a for a, b in bounds}):
            xs, ys = Xt[:size].clone(), yt[:size].clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    model.step(xs, ys)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                model.step(xs, ys)
            graphs[size] = (graph, xs, ys)

    def step(idx):
        if capture:
            graph, xs, ys = graphs[len(idx)]
            torch.index_select(Xt, 0, idx, out=xs)
            torch.index_select(yt, 0, idx, out=ys)
            graph.replay()
        else:
            model.step(Xt[idx], yt[idx])

    return timed_epochs(torch, len(X), epochs, device, step)


def _sync(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="K = 1, 16 and 3 epochs (a CPU in minutes)")
    parser.add_argument("--models", type=int, nargs="+", help="values of K (default 1 8 64 256; quick: 1 16)")
    parser.add_argument("--epochs", type=int, help="epochs per run (default 30; quick: 3)")
    parser.add_argument("--sequential", type=int, default=2, help="runs timed for the sequential estimates")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peers")
    parser.add_argument("--json", help="also write the figures to this JSON file (benchmarks/acceptance.py reads it)")
    args = parser.parse_args(argv)
    try:  # every argument before any work: a 0 given is refused, not replaced by the default
        ks = [check_int(k, "--models") for k in args.models] if args.models is not None else \
            ([1, 16] if args.quick else [1, 8, 64, 256])
        epochs = check_int(args.epochs, "--epochs") if args.epochs is not None else (3 if args.quick else 30)
        check_int(args.sequential, "--sequential")
        if args.json is not None:
            check_output_file(args.json, "--json")
    except (ValueError, OSError) as e:
        parser.error(str(e))
    backend = checked_backend(parser)  # (XDL_BACKEND=cupy without a GPU: one line naming it, not a traceback)
    checked_dataset(parser, "digits")  # (scikit-learn missing: one line naming the extra, not a traceback)
    keep_freed_memory()  # as the xdl command does

    gpu = backend.device_type == "cuda"
    X, y = digits_training_set()
    torch = None
    if not args.no_torch:
        # on a GPU, a PyTorch without CUDA (a CPU wheel, a driver it cannot use) is left out as an absent one:
        # its first .to("cuda") raised before any row, and the run's JSON, xdl's figures too, was never written
        torch = torch_on(backend)[0]
        if torch is None:
            print("(PyTorch not installed" + (", or without CUDA here" if gpu else "") + ": its columns are left out)")
    device = "cuda" if gpu else "cpu"
    xdl_batched(min(ks), X, y, 1)  # warm-up: kernels compiled, caches filled
    one_xdl, one_steady = min(xdl_one(X, y, epochs) for _ in range(args.sequential))
    one_torch = min(torch_one(torch, X, y, epochs, device) for _ in range(args.sequential)) if torch else None

    env = environment(backend)
    print(f"# batched training — {headline(env)}")
    print(f"{len(X)} rows, batch 64, {epochs} epochs; one model alone: xdl Trainer {one_xdl / epochs * 1e3:.1f} ms "
          f"per epoch over the whole run (built, trained), {one_steady * 1e3:.1f} ms per steady epoch"
          + (f"; PyTorch eager {one_torch / epochs * 1e3:.1f} ms per epoch" if torch else "") + "\n")
    print("Whole run: fit_many building and training the K models and handing back the best, per epoch; setup: "
          "the part of it outside the epochs (building, taking the best out). Steady: the median epoch after the "
          "first (training steps and the train set's evaluation), as the PyTorch peers' epochs are timed without "
          "their setup and capture. Training only: the same with fit_many(eval_train=False) — no pass over the "
          "train set, the PyTorch peers' work — which the ratio to the hand-fused graph uses. vs K sequential xdl: "
          "K one-model runs' time over the whole run's, which is also its model-epochs/s over one model's.\n")
    header = ["K", "xdl batched ms/epoch, whole run", "setup ms", "steady", "steady, training only",
              "model-epochs/s", "vs K sequential xdl"]
    if torch:
        header += ["vs K sequential torch eager", "torch fused eager ms/epoch"] + (
            ["torch fused graph ms/epoch", "xdl training only / torch graph"] if gpu else [])
    print("| " + " | ".join(header) + " |")
    print("|" + "---:|" * len(header))
    figures = {"date": env["date"][:10], "device": env["device"], "environment": env, "epochs": epochs,
               "sequential": args.sequential, "complete": False,  # until the last K's row is in
               "one_xdl_seconds": one_xdl, "one_torch_seconds": one_torch, "rows": []}
    for k in ks:
        seconds, steady, setup = xdl_batched(k, X, y, epochs)
        training = xdl_batched(k, X, y, epochs, eval_train=False)[1]
        rate = k * epochs / seconds
        figures["rows"].append({"k": k, "seconds": seconds, "setup_seconds": setup, "steady_seconds_per_epoch": steady,
                                "training_seconds_per_epoch": training})
        row = [str(k), f"{seconds / epochs * 1e3:.1f}", f"{setup * 1e3:.0f}", f"{steady * 1e3:.1f}",
               f"{training * 1e3:.1f}", f"{rate:.0f}", faster(k * one_xdl, seconds, 1)]
        if torch:
            fused = torch_fused(torch, k, X, y, epochs, device, capture=False)
            row += [faster(k * one_torch, seconds, 1), f"{fused / epochs * 1e3:.1f}"]
            figures["rows"][-1]["torch_fused_eager_seconds"] = fused
            if gpu:
                graph = torch_fused(torch, k, X, y, epochs, device, capture=True)
                row += [f"{graph / epochs * 1e3:.1f}", f"{training / (graph / epochs):.2f}"]
                figures["rows"][-1]["torch_fused_graph_seconds"] = graph
        print("| " + " | ".join(row) + " |")
        figures["complete"] = k == ks[-1]
        if args.json:  # after each K: a run stopped by a time limit keeps what it measured
            atomic_write(args.json, lambda f: json.dump(figures, f, indent=1), binary=False)


if __name__ == "__main__":
    main()
