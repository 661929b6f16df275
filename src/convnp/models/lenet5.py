"""LeNet-5 (LeCun et al. 1998) adapted to 28x28 MNIST: two tanh convolutions with average pools, three dense layers."""

from __future__ import annotations

import numpy as np

from convnp.init import default_rng
from convnp.layers import AvgPool2D, Conv2D, Dense, Flatten, Tanh
from convnp.sequential import Sequential

INPUT_SHAPE = (28, 28, 1)


def lenet5(rng: np.random.Generator | None = None, dtype=np.float32) -> Sequential:
    """LeNet-5: conv 6@5x5, avg pool, conv 16@5x5, avg pool, dense 120, 84, 10, with tanh between.

    Parameters
    ----------
    rng : np.random.Generator, optional
        Source of the initial weights; ``None`` draws a fresh unseeded Generator (never NumPy's global state).
    dtype : float32 (default) or float64

    Returns
    -------
    Sequential
        Input ``(N, 28, 28, 1)``, output logits ``(N, 10)``; 61,706 parameters.

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
    rng = default_rng(rng)
    init = {"weight_init": "glorot", "rng": rng, "dtype": dtype}
    return Sequential(
        [
            Conv2D(1, 6, 5, padding="same", **init),  # C1: (N, 28, 28, 6)
            Tanh(),
            AvgPool2D(2),  # S2: (N, 14, 14, 6)
            Conv2D(6, 16, 5, **init),  # C3: (N, 10, 10, 16)
            Tanh(),
            AvgPool2D(2),  # S4: (N, 5, 5, 16)
            Flatten(),  # (N, 400)
            Dense(5 * 5 * 16, 120, **init),  # C5: (N, 120)
            Tanh(),
            Dense(120, 84, **init),  # F6: (N, 84)
            Tanh(),
            Dense(84, 10, **init),  # output logits: (N, 10)
        ],
        input_shape=INPUT_SHAPE,
    )
