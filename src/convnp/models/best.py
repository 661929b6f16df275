"""The strongest network for 2 CPU cores: two blocks of batch-normalised 3x3 convolutions, dense 128, dropout."""

from __future__ import annotations

import numpy as np

from convnp.init import default_rng
from convnp.layers import BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from convnp.sequential import Sequential

INPUT_SHAPE = (28, 28, 1)


def best(rng: np.random.Generator | None = None, dtype=np.float32) -> Sequential:
    """The zoo's strongest network, sized to train within 30 minutes on 2 CPU cores (target: ~99.6% on MNIST).

    ``[conv 16@3x3, BN, ReLU] x 2, max pool -> [conv 32@3x3, BN, ReLU] x 2, max pool -> dense 128, BN, ReLU,
    dropout 0.4 -> dense 10``, every convolution "same"-padded.

    Parameters
    ----------
    rng : np.random.Generator, optional
        Source of the initial weights; the Dropout gets its own Generator spawned from it, so the same seed gives
        the same weights and the same masks. ``None`` draws a fresh unseeded Generator.
    dtype : float32 (default) or float64

    Returns
    -------
    Sequential
        Input ``(N, 28, 28, 1)``, output logits ``(N, 10)``; 218,714 parameters.

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
    rng = default_rng(rng)
    init = {"rng": rng, "dtype": dtype}
    return Sequential(
        [
            *_conv_bn_relu(1, 16, init),  # (N, 28, 28, 16)
            *_conv_bn_relu(16, 16, init),  # (N, 28, 28, 16)
            MaxPool2D(2),  # (N, 14, 14, 16)
            *_conv_bn_relu(16, 32, init),  # (N, 14, 14, 32)
            *_conv_bn_relu(32, 32, init),  # (N, 14, 14, 32)
            MaxPool2D(2),  # (N, 7, 7, 32)
            Flatten(),  # (N, 1568)
            Dense(7 * 7 * 32, 128, bias=False, **init),  # (N, 128)
            BatchNorm1D(128, dtype=dtype),
            ReLU(),
            Dropout(0.4, rng=rng.spawn(1)[0]),
            Dense(128, 10, **init),  # (N, 10)
        ],
        input_shape=INPUT_SHAPE,
    )


def _conv_bn_relu(in_channels: int, out_channels: int, init: dict) -> list:
    """A "same"-padded 3x3 convolution without bias (BatchNorm's ``beta`` is its bias), BatchNorm and ReLU.

    ``init`` holds the ``rng`` the convolution draws its weights from and the ``dtype`` of both parameterised layers.
    """
    return [
        Conv2D(in_channels, out_channels, 3, padding="same", bias=False, **init),  # (N, H, W, out_channels)
        BatchNorm2D(out_channels, dtype=init["dtype"]),
        ReLU(),
    ]
