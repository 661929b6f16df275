"""LeNet-5 (LeCun et al. 1998) adapted to 28x28 MNIST: two tanh convolutions with average pools, three dense layers."""

from __future__ import annotations

import numpy as np

from convnp.models.spec import build_network
from convnp.sequential import Sequential

INPUT_SHAPE = (28, 28, 1)


def lenet5(
    rng: np.random.Generator | None = None,
    dtype=np.float32,
    *,
    input_shape: tuple = INPUT_SHAPE,
    num_classes: int = 10,
) -> Sequential:
    """LeNet-5: conv 6@5x5, avg pool, conv 16@5x5, avg pool, dense 120, 84, 10, with tanh between.

    Parameters
    ----------
    rng : np.random.Generator, optional
        Source of the initial weights; ``None`` draws a fresh unseeded Generator (never NumPy's global state).
    dtype : float32 (default) or float64
    input_shape : tuple (H, W, C)
        One image; at least 12x12 (a "same" 5x5 convolution, a 2x2 pool, a valid 5x5 convolution, a 2x2 pool).
        The first dense layer's size follows from it.
    num_classes : int
        The number of logits.

    Returns
    -------
    Sequential
        Input ``(N, *input_shape)``, output logits ``(N, num_classes)``; at the defaults, ``(N, 28, 28, 1)`` to
        ``(N, 10)``, 61,706 parameters.

    Notes
    -----
    The original took 32x32 inputs (MNIST digits padded by 2); here the first convolution pads 2 ("same")
    instead, so C1 still produces 28x28 maps. Other departures from the paper:

    - C3 connects every S2 map to every C3 map, not the paper's sparse table of 60 connections;
    - S2/S4 are plain 2x2 averages: the paper's pools had a trainable coefficient and bias per map and a
      squashing function after them;
    - the output is a Dense layer of 10 logits for softmax cross-entropy, not the paper's Euclidean RBF units;
    - ``tanh`` replaces the scaled ``1.7159 tanh(2x/3)``, and weights are Glorot-uniform (Glorot & Bengio 2010),
      the initialisation derived for tanh networks.

    References: LeCun, Bottou, Bengio & Haffner 1998, "Gradient-Based Learning Applied to Document Recognition",
    Proc. IEEE 86(11), section II.B.
    """
    return build_network(layers(num_classes), input_shape, rng, dtype, num_classes=num_classes, name="lenet5")


def layers(num_classes: int = 10) -> list[dict]:
    """The layer descriptions of :func:`lenet5` (:mod:`convnp.models.spec`); at 28x28x1 the shapes are in comments."""
    glorot = {"weight_init": "glorot"}
    return [
        {"type": "Conv2D", "out_channels": 6, "kernel_size": 5, "padding": "same", **glorot},  # C1: (N, 28, 28, 6)
        {"type": "Tanh"},
        {"type": "AvgPool2D", "kernel_size": 2},  # S2: (N, 14, 14, 6)
        {"type": "Conv2D", "out_channels": 16, "kernel_size": 5, **glorot},  # C3: (N, 10, 10, 16)
        {"type": "Tanh"},
        {"type": "AvgPool2D", "kernel_size": 2},  # S4: (N, 5, 5, 16)
        {"type": "Flatten"},  # (N, 400)
        {"type": "Dense", "out_features": 120, **glorot},  # C5: (N, 120)
        {"type": "Tanh"},
        {"type": "Dense", "out_features": 84, **glorot},  # F6: (N, 84)
        {"type": "Tanh"},
        {"type": "Dense", "out_features": num_classes, **glorot},  # output logits: (N, num_classes)
    ]
