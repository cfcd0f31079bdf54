"""The main job until the `xdl train` command lands: a batch-norm MLP trained with Adam and a
decaying learning rate on two interleaved half-moons (generated, seeded), reporting train and
dev accuracy. Run: ``python -m xdl.demo``."""

from __future__ import annotations

import time

import numpy as np

import xdl
from xdl.nn import BatchNorm, Dense, Dropout, ReLU, Sequential


def moons(m: int, noise: float = 0.2, seed: int = 0):
    """Two interleaved half circles in 2-D with Gaussian noise; labels 0/1."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, m)
    label = rng.integers(0, 2, m)
    x = np.where(label == 0, np.cos(t), 1 - np.cos(t))
    y = np.where(label == 0, np.sin(t), 0.5 - np.sin(t))
    X = np.stack([x, y], 1) + rng.normal(0, noise, (m, 2))
    return X.astype(np.float32), label


def main(epochs: int = 30, batch_size: int = 64, seed: int = 0) -> float:
    xdl.seed(seed)
    backend = xdl.current_backend()
    print(f"backend {backend.name} on {backend.device_name()}")
    X, y = moons(3000, seed=seed)
    X_train, y_train, X_dev, y_dev = X[:2400], y[:2400], X[2400:], y[2400:]
    model = Sequential(Dense(2, 64, bias=False), BatchNorm(64), ReLU(), Dropout(0.1),
                       Dense(64, 64, bias=False), BatchNorm(64), ReLU(), Dense(64, 2))
    opt = xdl.optim.Adam(model, lr=xdl.optim.schedules.inverse_time(0.01, 1e-3))
    loss = xdl.losses.SoftmaxCrossEntropy()
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(X_train))
        for i in range(0, len(order), batch_size):
            batch = order[i:i + batch_size]
            if len(batch) < 2:
                continue
            opt.zero_grad()
            loss(model(X_train[batch]), y_train[batch]).backward()
            opt.step()
    train_acc = float((model.predict(X_train) == y_train).mean())
    dev_acc = float((model.predict(X_dev) == y_dev).mean())
    print(f"{epochs} epochs in {time.perf_counter() - start:.1f} s: train accuracy {train_acc:.3f}, "
          f"dev accuracy {dev_acc:.3f}")
    return dev_acc


if __name__ == "__main__":
    main()
