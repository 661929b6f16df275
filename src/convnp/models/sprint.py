"""The quickest network to 99% on 2 CPU cores: one 5x5 convolution, a max pool, dropout, two dense layers."""

from __future__ import annotations

import numpy as np

from convnp.models.spec import build_network
from convnp.sequential import Sequential

INPUT_SHAPE = (28, 28, 1)


def sprint(
    rng: np.random.Generator | None = None,
    dtype=np.float32,
    *,
    input_shape: tuple = INPUT_SHAPE,
    num_classes: int = 10,
) -> Sequential:
    """A network built to reach 99% MNIST test accuracy in the least training time on 2 CPU cores.

    ``conv 16@5x5 "same", max pool, ReLU -> dropout 0.25, dense 128, ReLU, dropout 0.25 -> dense 10``.

    Parameters
    ----------
    rng : np.random.Generator, optional
        Source of the initial weights; each Dropout gets its own Generator spawned from it, so the same seed
        gives the same weights and the same masks. ``None`` draws a fresh unseeded Generator.
    dtype : float32 (default) or float64
    input_shape : tuple (H, W, C)
        One image; at least 2x2 (one 2x2 pool). The first dense layer's size follows from it.
    num_classes : int
        The number of logits.

    Returns
    -------
    Sequential
        Input ``(N, *input_shape)``, output logits ``(N, num_classes)``; at the defaults, ``(N, 28, 28, 1)`` to
        ``(N, 10)``, 403,242 parameters, 401,536 of them in the 3136 -> 128 dense layer.

    Notes
    -----
    Cost per image (:func:`convnp.flops.model_flops`): 1.5 MFLOP forward, 3.7 MFLOP for a training step, a
    nineteenth of ``convnet``'s and an eighth of ``best``'s. Its recipe, ``convnp.models.recipes.RECIPES["sprint"]``,
    is the default of ``benchmarks/time_to_accuracy.py``, the race against PyTorch it was built for.

    Why this shape: a second convolution would reach 99% in fewer epochs, but with every second convolution
    tried (16 to 64 channels) convnp trained at 0.7-1.0x PyTorch's images/s, so the race against PyTorch could
    not be won (``docs/performance.md``). With a single convolution on the one-channel image, convnp's work is
    one im2col product (:mod:`convnp.ops.conv_blocked`), a 16-channel pool, ReLU on the pooled values, dropout
    and dense layers: the layers where it is as fast as PyTorch or faster. What the one convolution lacks in
    depth, more epochs make up: 5x5 filters "same"-padded (a 14 x 14 x 16 map for the dense layer) reached 99%
    after 7-8 epochs here; 3x3 filters after 8.5-12, or not within 12.

    ReLU follows the pool: the maximum commutes with ReLU, and this way it runs on a quarter of the values.
    """
    return build_network(layers(num_classes), input_shape, rng, dtype, num_classes=num_classes, name="sprint")


def layers(num_classes: int = 10) -> list[dict]:
    """The layer descriptions of :func:`sprint` (:mod:`convnp.models.spec`); at 28x28x1 the shapes are in comments."""
    return [
        {"type": "Conv2D", "out_channels": 16, "kernel_size": 5, "padding": "same"},  # (N, 28, 28, 16)
        {"type": "MaxPool2D", "kernel_size": 2},  # (N, 14, 14, 16)
        {"type": "ReLU"},
        {"type": "Flatten"},  # (N, 3136)
        {"type": "Dropout", "p": 0.25},
        {"type": "Dense", "out_features": 128},  # (N, 128)
        {"type": "ReLU"},
        {"type": "Dropout", "p": 0.25},
        {"type": "Dense", "out_features": num_classes},  # (N, num_classes)
    ]
