"""The seed notebook's network: conv 8@3x3 (valid), ReLU, max pool 2, dense 1352 -> 10."""

from __future__ import annotations

import numpy as np

from convnp.init import default_rng
from convnp.layers import Conv2D, Dense, Flatten, MaxPool2D, NotebookMaxPool2D, ReLU
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
) -> Sequential:
    """Build the notebook's network.

    Parameters
    ----------
    init : {"he", "notebook"}
        ``"he"`` draws He-normal weights from ``rng``; ``"notebook"`` loads exactly the notebook's initial weights
        (see :func:`notebook_weights`) and ignores ``rng``.
    rng : np.random.Generator, optional
    dtype : float32 (default) or float64
    notebook_maxpool : bool
        Swap in :class:`~convnp.layers.NotebookMaxPool2D`, the notebook's wrong max-pool backward, to show what it
        did. Never for real training.

    Shape: input ``(N, 28, 28, 1)``, output logits ``(N, 10)``; 13,610 parameters.
    """
    if init not in ("he", "notebook"):
        raise ValueError(f"notebook: init must be 'he' or 'notebook', got {init!r}")
    rng = default_rng(rng)
    pool = NotebookMaxPool2D(2) if notebook_maxpool else MaxPool2D(2)
    model = Sequential(
        [
            Conv2D(1, 8, 3, rng=rng, dtype=dtype),  # (N, 26, 26, 8)
            ReLU(),
            pool,  # (N, 13, 13, 8)
            Flatten(),  # (N, 1352)
            Dense(13 * 13 * 8, 10, rng=rng, dtype=dtype),  # (N, 10)
        ],
        input_shape=INPUT_SHAPE,
    )
    if init == "notebook":
        model.load_state_dict(notebook_weights(dtype))
    return model


def notebook_normalize(x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """The notebook's input scaling, ``x / 255 - 0.5``, with a channel axis: ``(N, 28, 28)`` -> ``(N, 28, 28, 1)``."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]  # (N, H, W) -> (N, H, W, 1)
    return (x.astype(dtype) / 255 - 0.5).astype(dtype)
