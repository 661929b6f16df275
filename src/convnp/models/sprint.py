"""The quickest network to 99% on 2 CPU cores: one 5x5 convolution, a max pool, dropout, two dense layers."""

from __future__ import annotations

import numpy as np

from convnp.init import default_rng
from convnp.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from convnp.sequential import Sequential

INPUT_SHAPE = (28, 28, 1)


def sprint(rng: np.random.Generator | None = None, dtype=np.float32) -> Sequential:
    """A network built to reach 99% MNIST test accuracy in the least training time on 2 CPU cores.

    ``conv 16@5x5 "same", max pool, ReLU -> dropout 0.25, dense 128, ReLU, dropout 0.25 -> dense 10``.

    Parameters
    ----------
    rng : np.random.Generator, optional
        Source of the initial weights; each Dropout gets its own Generator spawned from it, so the same seed
        gives the same weights and the same masks. ``None`` draws a fresh unseeded Generator.
    dtype : float32 (default) or float64

    Returns
    -------
    Sequential
        Input ``(N, 28, 28, 1)``, output logits ``(N, 10)``; 403,242 parameters, 401,536 of them in the
        3136 -> 128 dense layer.

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
    rng = default_rng(rng)
    init = {"rng": rng, "dtype": dtype}
    return Sequential(
        [
            Conv2D(1, 16, 5, padding="same", **init),  # (N, 28, 28, 16)
            MaxPool2D(2),  # (N, 14, 14, 16)
            ReLU(),
            Flatten(),  # (N, 3136)
            Dropout(0.25, rng=rng.spawn(1)[0]),
            Dense(14 * 14 * 16, 128, **init),  # (N, 128)
            ReLU(),
            Dropout(0.25, rng=rng.spawn(1)[0]),
            Dense(128, 10, **init),  # (N, 10)
        ],
        input_shape=INPUT_SHAPE,
    )
