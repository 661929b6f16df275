"""Uploaded bytes -> a grey picture, decoded exactly as :func:`convnp.data.images.read_image` decodes files.

The file reader takes a path; a web request holds bytes. This module opens those bytes with Pillow and hands the
result to the same helpers the file reader uses (mode handling, transparency, BT.601 grey), so ``convnp predict``
on a saved PNG and ``POST /api/predict`` with the same PNG see the same pixels.
"""

from __future__ import annotations

import io

import numpy as np

from convnp.data.images import MAX_PIXELS, _composite, _grey, _import_pillow, _pillow_to_arrays
from convnp.errors import DataError

__all__ = ["ImageTooLargeError", "read_image_bytes"]


class ImageTooLargeError(DataError):
    """The image declares more than :data:`~convnp.data.images.MAX_PIXELS` pixels (checked before decoding)."""


def read_image_bytes(data: bytes) -> np.ndarray:
    """Decode an image held in memory to grey floats.

    Parameters
    ----------
    data : bytes
        Anything Pillow reads (PNG, JPEG, GIF (first frame), BMP, TIFF, WebP, ...).

    Returns
    -------
    ndarray of shape `(H, W)`, float64 in ``[0, 255]`` (BT.601 luma, transparency composited onto the paper)

    Raises
    ------
    DataError
        Empty, not an image, damaged or unsupported.
    ImageTooLargeError
        More than :data:`~convnp.data.images.MAX_PIXELS` pixels, read from the header before any pixel is inflated.
    """
    if not data:
        raise DataError("empty image (0 bytes)")
    Image = _import_pillow()
    from PIL import ImageOps, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise DataError("not an image (no format that Pillow reads recognises it)") from None
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(f"image is too large: {err}; at most {MAX_PIXELS:,} pixels are accepted") from None
    except Exception as err:  # noqa: BLE001 - any decoder failure on untrusted bytes is the same fact for the user
        raise DataError(f"could not be opened as an image ({type(err).__name__}: {err})") from None
    with img:
        _check_size(*img.size)  # header only: a decompression bomb is refused before it inflates
        try:
            img.seek(0)  # first frame of an animation
            img = ImageOps.exif_transpose(img)
            _check_size(*img.size)
            colour, alpha = _pillow_to_arrays(img)  # (H, W, 1|3), (H, W) or None
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001
            raise DataError(
                f"image could not be decoded, damaged or unsupported ({type(err).__name__}: {err})"
            ) from None
    if alpha is not None:
        colour = _composite(colour, alpha)
    return _grey(colour)


def _check_size(width: int, height: int) -> None:
    side = int(MAX_PIXELS**0.5)
    if width * height > MAX_PIXELS:
        raise ImageTooLargeError(
            f"image is {width}x{height} pixels, more than the {MAX_PIXELS:,} ({side}x{side}) accepted; "
            "scale it down first"
        )
    if width < 1 or height < 1:
        raise DataError(f"image is {width}x{height} pixels, expected at least 1x1")
