"""PyTorch's MNIST example network: two ReLU convolutions, a max pool, dropout, two dense layers."""

from __future__ import annotations

import numpy as np

from convnp.init import default_rng
from convnp.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from convnp.sequential import Sequential

INPUT_SHAPE = (28, 28, 1)


def convnet(rng: np.random.Generator | None = None, dtype=np.float32) -> Sequential:
    """PyTorch's MNIST example: conv 32@3x3, conv 64@3x3, max pool, dropout, dense 128, dropout, dense 10.

    Parameters
    ----------
    rng : np.random.Generator, optional
        Source of the initial weights; each Dropout gets its own Generator spawned from it, so the same seed
        gives the same weights and the same masks. ``None`` draws a fresh unseeded Generator.
    dtype : float32 (default) or float64

    Returns
    -------
    Sequential
        Input ``(N, 28, 28, 1)``, output logits ``(N, 10)``; 1,199,882 parameters, 1,179,776 of them in the
        9216 -> 128 dense layer.

    Notes
    -----
    The layout and dropout rates are those of ``Net`` in PyTorch's example; the weights are He-normal rather than
    PyTorch's default (Kaiming-uniform with ``a = sqrt(5)``), as everywhere in convnp's ReLU networks.

    References: https://github.com/pytorch/examples/blob/main/mnist/main.py
    """
    rng = default_rng(rng)
    init = {"rng": rng, "dtype": dtype}
    return Sequential(
        [
            Conv2D(1, 32, 3, **init),  # (N, 26, 26, 32)
            ReLU(),
            Conv2D(32, 64, 3, **init),  # (N, 24, 24, 64)
            ReLU(),
            MaxPool2D(2),  # (N, 12, 12, 64)
            Dropout(0.25, rng=rng.spawn(1)[0]),
            Flatten(),  # (N, 9216)
            Dense(12 * 12 * 64, 128, **init),  # (N, 128)
            ReLU(),
            Dropout(0.5, rng=rng.spawn(1)[0]),
            Dense(128, 10, **init),  # (N, 10)
        ],
        input_shape=INPUT_SHAPE,
    )
