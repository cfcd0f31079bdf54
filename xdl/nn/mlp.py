"""`mlp`: the fully connected classifier the course builds, as one call."""

from __future__ import annotations

import numpy as np

from xdl.data.validation import MAX_FEATURES, check_bool, check_n_features
from xdl.nn.layers import BatchNorm, Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Standardize, Tanh, check_drop_rate
from xdl.nn.sequential import Sequential

ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid}


def mlp(n_features: int, hidden, n_outputs: int, activation: str = "relu", init: str = "he",
        batch_norm: bool = False, dropout: float = 0.0, standardize: Standardize | None = None) -> Sequential:
    """[Standardize] → (Dense → [BatchNorm] → activation → [Dropout]) per hidden size → Dense.

    Every Dense layer draws its weights with ``init``. With batch norm the hidden Dense layers have
    no bias (β does its job). The output layer gives
    logits: pair it with `SoftmaxCrossEntropy` (n_outputs = classes) or `BinaryCrossEntropy` (1, or
    one per label of a multi-label task).

    ``n_features``: the inputs' width (features per example; an image's pixels), a positive integer
    of at most 2**31 − 1, as ``n_outputs``. ``hidden``: the hidden layers' sizes, a non-empty list
    (tuple, range or 1-D array) of such integers. ``activation``: one of "relu", "leaky_relu",
    "tanh", "sigmoid". ``init``: as `Dense`'s. ``batch_norm``: True or False. ``dropout``: the drop
    probability after each hidden activation, a number in [0, 1 − 2⁻⁹] (0, the default: no Dropout
    layer). ``standardize``: a `Standardize` layer of ``n_features`` features put first (e.g.
    ``Standardizer().fit(X_train).layer()``), so the model scales its own inputs and `xdl.save`
    keeps the statistics with it; None (the default): the inputs are taken as they are.

    >>> mlp(64, [32, 16], 10, batch_norm=True, dropout=0.1)[0]
    Dense(in_features=64, out_features=32, init='he', bias=False)
    """
    # all checked before the first layer draws its weights from the host generator
    check_n_features(n_features, "mlp: n_features")
    check_n_features(n_outputs, "mlp: n_outputs")
    hidden = hidden.tolist() if isinstance(hidden, np.ndarray) else hidden
    if not isinstance(hidden, list | tuple | range) or len(hidden) == 0 \
            or any(isinstance(h, bool) or not isinstance(h, int | np.integer) or not 1 <= h <= MAX_FEATURES
                   for h in hidden):  # (a width past MAX_FEATURES: refused by its Dense after the layers before drew)
        hint = f" (one hidden layer of {hidden}: [{hidden}])" if isinstance(hidden, int | np.integer) else ""
        raise ValueError(f"mlp: hidden must be a non-empty list of positive integers (each at most 2**31 − 1), a size "
                         f"per hidden layer, got {hidden!r}{hint}")
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"mlp: activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    check_drop_rate(dropout, "mlp: dropout")
    check_bool(batch_norm, "mlp: batch_norm")
    if standardize is not None and not (isinstance(standardize, Standardize) and standardize.features == n_features):
        raise ValueError(f"mlp: standardize must be a Standardize layer of {n_features} features (or None), got "
                         f"{standardize!r}")
    hidden = [int(h) for h in hidden]
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
    layers.append(Dense(width, n_outputs, init=init))
    return Sequential(*layers)
