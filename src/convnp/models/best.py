"""The strongest network for 2 CPU cores: two blocks of batch-normalised 3x3 convolutions, dense 128, dropout."""

from __future__ import annotations

import numpy as np

from convnp.models.spec import build_network
from convnp.sequential import Sequential

INPUT_SHAPE = (28, 28, 1)


def best(
    rng: np.random.Generator | None = None,
    dtype=np.float32,
    *,
    input_shape: tuple = INPUT_SHAPE,
    num_classes: int = 10,
) -> Sequential:
    """The zoo's strongest network, sized to train within 30 minutes on 2 CPU cores (target: ~99.6% on MNIST).

    ``[conv 16@3x3, BN, ReLU] x 2, max pool -> [conv 32@3x3, BN, ReLU] x 2, max pool -> dense 128, BN, ReLU,
    dropout 0.4 -> dense 10``, every convolution "same"-padded.

    Parameters
    ----------
    rng : np.random.Generator, optional
        Source of the initial weights; the Dropout gets its own Generator spawned from it, so the same seed gives
        the same weights and the same masks. ``None`` draws a fresh unseeded Generator.
    dtype : float32 (default) or float64
    input_shape : tuple (H, W, C)
        One image; at least 4x4 (two 2x2 pools). The first dense layer's size follows from it.
    num_classes : int
        The number of logits.

    Returns
    -------
    Sequential
        Input ``(N, *input_shape)``, output logits ``(N, num_classes)``; at the defaults, ``(N, 28, 28, 1)`` to
        ``(N, 10)``, 218,714 parameters.

    Notes
    -----
    Cost per image (:func:`convnp.flops.model_flops`): 9.8 MFLOP forward, 29.1 MFLOP for a training step. The
    same layout at 32/64 channels with a 256-unit dense layer (the usual Keras/PyTorch MNIST recipe) costs 38 MFLOP
    forward and 115 MFLOP per training image, four times over the budget of a 30-minute run on 2 cores, so the
    widths were halved; the dense layer is 128 wide, and at this size its 0.2 M weights already hold most of the
    parameters. On two worker processes each batch is split in two, its BatchNorm statistics summed over both
    halves (:mod:`convnp.parallel.shard`); its training speed is in ``docs/performance.md``.

    Convolutions and dense layers followed by BatchNorm have no bias: BN's ``beta`` does its job, and BN would
    subtract any bias anyway. The schedule that goes with it is ``convnp.models.recipes.RECIPES["best"]``.

    References: Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale Image Recognition"
    (stacked 3x3 convolutions); Ioffe & Szegedy 2015, "Batch Normalization"; Srivastava et al. 2014, "Dropout".
    """
    return build_network(layers(num_classes), input_shape, rng, dtype, num_classes=num_classes, name="best")


def layers(num_classes: int = 10) -> list[dict]:
    """The layer descriptions of :func:`best` (:mod:`convnp.models.spec`); at 28x28x1 the shapes are in comments."""
    return [
        *_conv_bn_relu(16),  # (N, 28, 28, 16)
        *_conv_bn_relu(16),  # (N, 28, 28, 16)
        {"type": "MaxPool2D", "kernel_size": 2},  # (N, 14, 14, 16)
        *_conv_bn_relu(32),  # (N, 14, 14, 32)
        *_conv_bn_relu(32),  # (N, 14, 14, 32)
        {"type": "MaxPool2D", "kernel_size": 2},  # (N, 7, 7, 32)
        {"type": "Flatten"},  # (N, 1568)
        {"type": "Dense", "out_features": 128, "bias": False},  # (N, 128)
        {"type": "BatchNorm1D"},
        {"type": "ReLU"},
        {"type": "Dropout", "p": 0.4},
        {"type": "Dense", "out_features": num_classes},  # (N, num_classes)
    ]


def _conv_bn_relu(out_channels: int) -> list[dict]:
    """A "same"-padded 3x3 convolution without bias (BatchNorm's ``beta`` is its bias), BatchNorm and ReLU."""
    return [
        {"type": "Conv2D", "out_channels": out_channels, "kernel_size": 3, "padding": "same", "bias": False},
        {"type": "BatchNorm2D"},
        {"type": "ReLU"},
    ]
