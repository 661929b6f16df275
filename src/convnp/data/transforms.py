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


class Standardize:
    """Per-channel standardisation stored with a model: ``(x * scale - mean[c]) / std[c]``.

    ``scale`` brings stored pixels to ``[0, 1]`` (``1/255`` for uint8 images, 1 for floats). The statistics are
    measured once on the training images and saved in the checkpoint, so evaluation and prediction prepare their
    inputs exactly as training did.

    ``pixels=True`` says the images this preparation takes are pixels 0..255, whatever ``scale`` is (a network
    imported from elsewhere, which may want them unscaled): :class:`~convnp.inference.Classifier` then never takes
    it for a preparation of float images in [0, 1].
    """

    def __init__(self, scale: float, mean, std, *, pixels: bool = False):
        self.scale = float(scale)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) if s > 0 else 1.0 for s in std]
        self.pixels = bool(pixels)

    @classmethod
    def fit(cls, x, max_samples: int = 10000, max_values: int = 2**24) -> "Standardize":
        """Measure per-channel mean and std on ``x`` of shape ``(N, H, W, C)`` (an array, memory map or
        :class:`~convnp.data.views.Rows`).

        At most ``max_samples`` images and ``max_values`` pixel values (which bounds the float64 copy measured, to
        128 MiB by default) are used, evenly spaced through ``x`` so that data stored class by class is sampled
        from every class.
        """
        n, per_image = len(x), int(np.prod(x.shape[1:]))
        k = max(1, min(n, max_samples, max_values // max(per_image, 1)))
        rows = np.arange(n) if k == n else np.linspace(0, n - 1, k).round().astype(np.int64)  # (k,) ascending
        scale = 1.0 / 255.0 if x.dtype == np.uint8 else 1.0
        sample = np.asarray(x[rows]).astype(np.float64) * scale  # (k, H, W, C)
        return cls(scale, sample.mean(axis=(0, 1, 2)), sample.std(axis=(0, 1, 2)))

    def __call__(self, x: np.ndarray, dtype=np.float32) -> np.ndarray:
        """``x`` of shape ``(N, H, W, C)`` -> standardised ``dtype`` array of the same shape."""
        if x.shape[-1] != len(self.mean):
            raise ValueError(f"Standardize: expected images with {len(self.mean)} channel(s), got shape {x.shape}")
        mean = np.asarray(self.mean) / np.asarray(self.std)
        factor = self.scale / np.asarray(self.std)
        return (x.astype(dtype) * factor.astype(dtype) - mean.astype(dtype)).astype(dtype, copy=False)

    def to_dict(self) -> dict:
        return {"scale": self.scale, "mean": self.mean, "std": self.std, **({"pixels": True} if self.pixels else {})}

    @classmethod
    def from_dict(cls, d: dict) -> "Standardize":
        return cls(d["scale"], d["mean"], d["std"], pixels=bool(d.get("pixels", False)))
