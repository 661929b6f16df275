"""A number written in a picture, read digit by digit: the digits of the row found and prepared
(:func:`convnp.data.digit_row.read_row`), each classified by a digit model.

``convnp read`` (files, :func:`read_number_file`) and the page's ``POST /api/read`` (uploads) both read through
:func:`read_number`, so a file and the same file uploaded give the same number and boxes. A large photo is decoded
small first (a JPEG in Pillow's draft mode), as ``convnp predict`` decodes it: the row is found at
:data:`~convnp.data.images.WORK_SIDE` pixels anyway, and the boxes are given back in the file's own pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from convnp.data.digit_row import read_row
from convnp.data.image_files import read_image, upright_size
from convnp.data.images import WORK_SIDE
from convnp.errors import DataError
from convnp.inference import MNIST_SHAPE, Classifier

__all__ = ["ReadDigit", "read_number", "read_number_file", "scale_box"]


@dataclass(frozen=True)
class ReadDigit:
    """One digit read.

    Attributes
    ----------
    label : int
        The most probable class (an index into the classifier's ``class_names``).
    probabilities : ndarray of shape `(K,)`
        One per class, summing to 1.
    box : tuple of int
        ``(top, left, bottom, right)``, inclusive, in the pixels of the picture as given (or of ``size``).
    image : ndarray of shape `(28, 28)`, float64 in [0, 255]
        The digit as the network saw it: prepared as MNIST's digits were, before standardisation.
    """

    label: int
    probabilities: np.ndarray
    box: tuple[int, int, int, int]
    image: np.ndarray


def read_number(classifier: Classifier, grey: np.ndarray, *, size: tuple[int, int] | None = None) -> list[ReadDigit]:
    """The digits written in a row in ``grey``, left to right, each classified by ``classifier``.

    Parameters
    ----------
    classifier : Classifier
        A digit model, of input :data:`~convnp.inference.MNIST_SHAPE`. Its confidence also chooses how a group of
        touching digits is cut (:func:`~convnp.data.digit_row.read_row`).
    grey : ndarray of shape `(h, w)`, values in [0, 255]
        The picture, as :func:`~convnp.data.image_files.read_image` returns it.
    size : (H, W), optional
        The size of the picture ``grey`` was decoded from, when it was decoded smaller (``max_side``): the boxes
        are then given in its pixels. Default: ``grey``'s own.

    Returns
    -------
    list of ReadDigit, left to right (at least one)

    Raises
    ------
    DataError
        "no ink found": no digit in the picture.
    ValueError
        ``classifier`` is not a digit model.
    """
    if classifier.input_shape != MNIST_SHAPE:
        raise ValueError(f"read_number: needs a digit model (input {MNIST_SHAPE}), but {classifier.name} takes "
                         f"images of shape {classifier.input_shape}")

    def confidence(images):  # (m, 28, 28) -> (m,): the model's top probability, to choose between cuts
        return classifier.predict_proba(images[..., None]).max(axis=1)

    digits = read_row(grey, confidence=confidence)
    images = np.stack([d.image for d in digits])  # (N, 28, 28), pixels 0..255
    probs = classifier.predict_proba(images[..., None])  # (N, K)
    shape = np.shape(grey)[:2]
    return [ReadDigit(int(p.argmax()), p, scale_box(d.box, shape, size or shape), d.image)
            for d, p in zip(digits, probs)]


def read_number_file(classifier: Classifier, path) -> list[ReadDigit]:
    """:func:`read_number` of an image file (or ``.npy`` array), decoded small when it is large; the boxes are in the
    file's pixels (turned upright by its EXIF orientation, as it is decoded). Raises DataError naming the file."""
    grey = read_image(path, max_side=WORK_SIDE)  # (h, w); its errors name the file
    try:
        return read_number(classifier, grey, size=upright_size(path))
    except DataError as err:
        raise DataError(f"{path}: {err}") from None


def scale_box(box: tuple[int, int, int, int], shape: tuple[int, int], size: tuple[int, int]) -> tuple[int, ...]:
    """A box ``(top, left, bottom, right)``, inclusive, in a picture of ``shape`` `(h, w)` -> the same box in the
    picture of ``size`` `(H, W)` it was scaled from: the pixels its pixels cover there."""
    top, left, bottom, right = box
    (h, w), (H, W) = shape, size
    if (h, w) == (H, W):
        return tuple(int(v) for v in box)
    fy, fx = H / h, W / w
    return (int(top * fy), int(left * fx), min(H, math.ceil((bottom + 1) * fy)) - 1,
            min(W, math.ceil((right + 1) * fx)) - 1)
