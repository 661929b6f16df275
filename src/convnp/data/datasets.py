"""Named data sets for the command line: ``mnist`` or a path to a user's ``.npz``."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convnp.data.mnist import load_mnist
from convnp.data.npz import load_npz


@dataclass
class Dataset:
    """Training and (optional) test arrays. Images ``(N, H, W, C)`` in their stored dtype; labels int64 ``(N,)``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        top = int(self.y_train.max())
        if self.y_test is not None and len(self.y_test):
            top = max(top, int(self.y_test.max()))
        return top + 1


def load_dataset(spec: str = "mnist", *, mnist_dir=None) -> Dataset:
    """Load ``"mnist"`` (via :func:`load_mnist`) or a ``.npz`` file.

    A ``.npz`` supplies its training set as ``x``/``y`` (or ``x_train``/``y_train``) and, if present, a test set
    as ``x_test``/``y_test``; see :func:`convnp.data.load_npz` for the checks.
    """
    if spec == "mnist":
        x_train, y_train, x_test, y_test = load_mnist(mnist_dir)
        return Dataset("mnist", x_train[..., None], y_train.astype(np.int64), x_test[..., None], y_test.astype(np.int64))
    path = Path(spec)
    x_train, y_train = load_npz(path)
    x_test = y_test = None
    if zipfile.is_zipfile(path) and {"x_test.npy", "y_test.npy"} <= set(zipfile.ZipFile(path).namelist()):
        x_test, y_test = load_npz(path, keys=("x_test", "y_test"))
        if x_test.shape[1:] != x_train.shape[1:]:
            raise ValueError(
                f"{path}: x_test images have shape {x_test.shape[1:]} but the training images {x_train.shape[1:]}"
            )
    return Dataset(str(path), x_train, y_train, x_test, y_test)
