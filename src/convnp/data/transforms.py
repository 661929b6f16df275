"""Turning stored images into network inputs."""

from __future__ import annotations

import numpy as np

# Mean and standard deviation of the 60k MNIST training pixels scaled to [0, 1] (the figures PyTorch's MNIST
# example uses); standardising with them centres the inputs, which plain SGD needs to train quickly.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


def to_float_images(x: np.ndarray, dtype=np.float32, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> np.ndarray:
    """Scale uint8 images to ``[0, 1]`` and standardise: ``(x / 255 - mean) / std``.

    Parameters
    ----------
    x : ndarray of shape `(N, H, W)` or `(N, H, W, C)`, uint8
    Returns
    -------
    ndarray of shape `(N, H, W, C)` (a channel axis of 1 is added to 3-D input), of ``dtype``
    """
    if x.dtype != np.uint8:
        raise ValueError(f"to_float_images: expected uint8 pixels 0-255, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]  # (N, H, W) -> (N, H, W, 1)
    if x.ndim != 4:
        raise ValueError(f"to_float_images: expected images of shape (N, H, W) or (N, H, W, C), got {x.shape}")
    scale = np.asarray(1.0 / (255.0 * std), dtype=dtype)
    shift = np.asarray(mean / std, dtype=dtype)
    return x.astype(dtype) * scale - shift
