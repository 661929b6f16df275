"""The seed notebook's network: conv 8@3x3 (valid), ReLU, max pool 2, dense 1352 -> 10."""

from __future__ import annotations

import numpy as np

from convnp.models.spec import build_network
from convnp.sequential import Sequential

INPUT_SHAPE = (28, 28, 1)


def notebook_weights(dtype=np.float64) -> dict[str, np.ndarray]:
    """Exactly the notebook's initial weights, as a ``state_dict`` for :func:`notebook`.

    The notebook calls ``np.random.seed(1)`` then ``randn(3, 3, 8) / 3`` for the filters and
    ``randn(1352, 10) / 135`` for the dense layer, with zero biases. A private ``RandomState(1)`` draws the same
    stream without touching NumPy's global state. The notebook's filters ``(3, 3, 8)`` gain an input-channel axis
    ``(3, 3, 1, 8)``; its dense rows follow ``P.reshape(m, 13 * 13 * 8)`` of ``(m, 13, 13, 8)`` maps, which is the
    row order of our channels-last :class:`~convnp.layers.Flatten`, so they map one to one.
    """
    legacy = np.random.RandomState(1)
    conv_w = legacy.randn(3, 3, 8) / 3  # the notebook's (f, f, n_filters)
    dense_w = legacy.randn(1352, 10) / 135
    return {
        "0.weight": conv_w[:, :, None, :].astype(dtype),  # (3, 3, 8) -> (kH, kW, C_in=1, C_out=8)
        "0.bias": np.zeros(8, dtype=dtype),
        "4.weight": dense_w.astype(dtype),
        "4.bias": np.zeros(10, dtype=dtype),
    }


def notebook(
    init: str = "he",
    rng: np.random.Generator | None = None,
    dtype=np.float32,
    *,
    notebook_maxpool: bool = False,
    input_shape: tuple = INPUT_SHAPE,
    num_classes: int = 10,
) -> Sequential:
    """Build the notebook's network.

    Parameters
    ----------
    init : {"he", "notebook"}
        ``"he"`` draws He-normal weights from ``rng``; ``"notebook"`` loads exactly the notebook's initial weights
        (see :func:`notebook_weights`) and ignores ``rng``; it needs the default ``input_shape`` and ``num_classes``.
    rng : np.random.Generator, optional
    dtype : float32 (default) or float64
    notebook_maxpool : bool
        Swap in :class:`~convnp.layers.NotebookMaxPool2D`, the notebook's wrong max-pool backward, to show what it
        did. Never for real training.
    input_shape : tuple (H, W, C)
        One image; at least 4x4 (a valid 3x3 convolution, a 2x2 pool). The dense layer's size follows from it.
    num_classes : int
        The number of logits.

    Shape: input ``(N, *input_shape)``, output logits ``(N, num_classes)``; at the defaults, ``(N, 28, 28, 1)`` to
    ``(N, 10)``, 13,610 parameters.
    """
    if init not in ("he", "notebook"):
        raise ValueError(f"notebook: init must be 'he' or 'notebook', got {init!r}")
    if init == "notebook" and (tuple(input_shape) != INPUT_SHAPE or num_classes != 10):
        raise ValueError(f"notebook: init='notebook' loads the notebook's own weights, for input_shape={INPUT_SHAPE} "
                         f"and num_classes=10, got input_shape={tuple(input_shape)} and num_classes={num_classes}")
    pool = "NotebookMaxPool2D" if notebook_maxpool else "MaxPool2D"
    model = build_network(layers(num_classes, pool), input_shape, rng, dtype, num_classes=num_classes, name="notebook")
    if init == "notebook":
        model.load_state_dict(notebook_weights(dtype))
    return model


def layers(num_classes: int = 10, pool: str = "MaxPool2D") -> list[dict]:
    """The layer descriptions of :func:`notebook` (:mod:`convnp.models.spec`); at 28x28x1 the shapes are in comments."""
    return [
        {"type": "Conv2D", "out_channels": 8, "kernel_size": 3},  # (N, 26, 26, 8)
        {"type": "ReLU"},
        {"type": pool, "kernel_size": 2},  # (N, 13, 13, 8)
        {"type": "Flatten"},  # (N, 1352)
        {"type": "Dense", "out_features": num_classes},  # (N, num_classes)
    ]


def notebook_normalize(x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """The notebook's input scaling, ``x / 255 - 0.5``, with a channel axis: ``(N, 28, 28)`` -> ``(N, 28, 28, 1)``."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]  # (N, H, W) -> (N, H, W, 1)
    return (x.astype(dtype) / 255 - 0.5).astype(dtype)
