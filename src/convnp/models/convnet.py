"""PyTorch's MNIST example network: two ReLU convolutions, a max pool, dropout, two dense layers."""

from __future__ import annotations

import numpy as np

from convnp.models.spec import build_network
from convnp.sequential import Sequential

INPUT_SHAPE = (28, 28, 1)


def convnet(
    rng: np.random.Generator | None = None,
    dtype=np.float32,
    *,
    input_shape: tuple = INPUT_SHAPE,
    num_classes: int = 10,
) -> Sequential:
    """PyTorch's MNIST example: conv 32@3x3, conv 64@3x3, max pool, dropout, dense 128, dropout, dense 10.

    Parameters
    ----------
    rng : np.random.Generator, optional
        Source of the initial weights; each Dropout gets its own Generator spawned from it, so the same seed
        gives the same weights and the same masks. ``None`` draws a fresh unseeded Generator.
    dtype : float32 (default) or float64
    input_shape : tuple (H, W, C)
        One image; at least 6x6 (two valid 3x3 convolutions, a 2x2 pool). The first dense layer's size follows from it.
    num_classes : int
        The number of logits.

    Returns
    -------
    Sequential
        Input ``(N, *input_shape)``, output logits ``(N, num_classes)``; at the defaults, ``(N, 28, 28, 1)`` to
        ``(N, 10)``, 1,199,882 parameters, 1,179,776 of them in the 9216 -> 128 dense layer.

    Notes
    -----
    The layout and dropout rates are those of ``Net`` in PyTorch's example; the weights are He-normal rather than
    PyTorch's default (Kaiming-uniform with ``a = sqrt(5)``), as everywhere in convnp's ReLU networks.

    References: https://github.com/pytorch/examples/blob/main/mnist/main.py
    """
    return build_network(layers(num_classes), input_shape, rng, dtype, num_classes=num_classes, name="convnet")


def layers(num_classes: int = 10) -> list[dict]:
    """The layer descriptions of :func:`convnet` (:mod:`convnp.models.spec`); at 28x28x1 the shapes are in comments."""
    return [
        {"type": "Conv2D", "out_channels": 32, "kernel_size": 3},  # (N, 26, 26, 32)
        {"type": "ReLU"},
        {"type": "Conv2D", "out_channels": 64, "kernel_size": 3},  # (N, 24, 24, 64)
        {"type": "ReLU"},
        {"type": "MaxPool2D", "kernel_size": 2},  # (N, 12, 12, 64)
        {"type": "Dropout", "p": 0.25},
        {"type": "Flatten"},  # (N, 9216)
        {"type": "Dense", "out_features": 128},  # (N, 128)
        {"type": "ReLU"},
        {"type": "Dropout", "p": 0.5},
        {"type": "Dense", "out_features": num_classes},  # (N, num_classes)
    ]
