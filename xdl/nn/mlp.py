"""`mlp`: the fully connected classifier the course builds, as one call."""

from __future__ import annotations

from xdl.nn.layers import BatchNorm, Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Standardize, Tanh
from xdl.nn.sequential import Sequential

ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid}


def mlp(n_features: int, hidden, n_outputs: int, activation: str = "relu", init: str = "he",
        batch_norm: bool = False, dropout: float = 0.0, standardize: Standardize | None = None) -> Sequential:
    """[Standardize] → (Dense → [BatchNorm] → activation → [Dropout]) per hidden size → Dense.

    With batch norm the hidden Dense layers have no bias (β does its job). The output layer gives
    logits: pair it with `SoftmaxCrossEntropy` (n_outputs = classes) or `BinaryCrossEntropy` (1).

    >>> mlp(64, [32, 16], 10, batch_norm=True, dropout=0.1)[0]
    Dense(in_features=64, out_features=32, init='he', bias=False)
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    hidden = [int(h) for h in hidden]
    if any(h < 1 for h in hidden):
        raise ValueError(f"hidden layer sizes must be positive integers, got {hidden}")
    layers = [standardize] if standardize is not None else []
    width = n_features
    for size in hidden:
        layers.append(Dense(width, size, init=init, bias=not batch_norm))
        if batch_norm:
            layers.append(BatchNorm(size))
        layers.append(ACTIVATIONS[activation]())
        if dropout:
            layers.append(Dropout(dropout))
        width = size
    out_init = "xavier" if activation in ("tanh", "sigmoid") else init
    layers.append(Dense(width, n_outputs, init=out_init))
    return Sequential(*layers)
