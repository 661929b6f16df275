"""What MNIST is: its four IDX files, the sha256 of the published ones, and the checks every source's arrays pass.

Every source (a named folder, the cache, the mirrors, the PyPI package) returns the same four arrays, keyed as in
``IDX_FILES`` and checked by :func:`check_mnist`, so what one source serves is what any other would.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from convnp.errors import DataError

__all__ = ["IDX_FILES", "IDX_SHA256", "KEYS", "MAX_DOWNLOAD_BYTES", "check_mnist"]

# Array name -> standard IDX file name (the mirrors serve each with ".gz" appended).
IDX_FILES: dict[str, str] = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
KEYS = tuple(IDX_FILES)

# sha256 of the DECOMPRESSED files: gzip output differs between compressors, the IDX bytes do not.
# Sizes: 47040016, 60008, 7840016 and 10008 bytes. Looked up at call time (``published.IDX_SHA256``), so tests
# can trust files of their own.
IDX_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Largest download or decompressed member accepted; the biggest real file is 47 MB.
MAX_DOWNLOAD_BYTES = 64 * 2**20


def _check_images(x: object, what: str) -> None:
    if not isinstance(x, np.ndarray):
        raise DataError(f"{what}: expected an array of images, got {type(x).__name__}")
    if x.dtype != np.uint8:
        raise DataError(f"{what}: images have dtype {x.dtype} but expected uint8")
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(f"{what}: images have shape {x.shape} but expected (N, 28, 28)")
    if x.shape[0] == 0:
        raise DataError(f"{what}: holds no images")


def _check_labels(y: object, what: str) -> None:
    if not isinstance(y, np.ndarray):
        raise DataError(f"{what}: expected an array of labels, got {type(y).__name__}")
    if y.dtype != np.uint8:
        raise DataError(f"{what}: labels have dtype {y.dtype} but expected uint8")
    if y.ndim != 1:
        raise DataError(f"{what}: labels have shape {y.shape} but expected (N,)")
    if y.size and int(y.max()) >= 10:
        index = int(np.argmax(y))
        raise DataError(f"{what}: labels must be digits 0-9, found {int(y[index])} at index {index}")


def check_mnist(arrays: Mapping[str, object], where: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Check the four arrays and return them in ``KEYS`` order.

    Parameters
    ----------
    arrays : mapping of str to object
        ``x_train`` and ``x_test``, uint8 images of shape (N, 28, 28); ``y_train`` and ``y_test``, uint8 digits
        0-9 of shape (N,), as many as the images. Any N above 0 is accepted.
    where : mapping of str to str
        Where each array came from (a file, a URL, ``"path[key]"``), for the messages.

    Raises
    ------
    DataError
        Naming the array's origin, what was expected and what came.
    """
    for split in ("train", "test"):
        x_key, y_key = f"x_{split}", f"y_{split}"
        x, y = arrays[x_key], arrays[y_key]
        _check_images(x, where[x_key])
        _check_labels(y, where[y_key])
        if len(x) != len(y):
            raise DataError(
                f"inconsistent numbers of samples: {len(x)} images in {where[x_key]} "
                f"but {len(y)} labels in {where[y_key]}"
            )
    return {key: arrays[key] for key in KEYS}
