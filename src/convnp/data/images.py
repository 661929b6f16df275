"""Pictures -> network inputs: MNIST-style digit preparation (:func:`preprocess_digit`), the preparation of any
other model's input (:func:`preprocess_image`: its channels, scaled keeping the aspect ratio and centre-cropped),
and image files read into batches.

Reading and decoding the files is :mod:`convnp.data.image_files`'s job; this module makes what it returns look like
what a model was trained on. Pillow (an optional extra, ``pip install convnp[image]``) is needed here only to
resize, and is imported when it is.

References
----------
1) Y. LeCun, C. Cortes, C. Burges, "The MNIST database of handwritten digits": "size normalized to fit in a
   20x20 pixel box while preserving their aspect ratio ... centered in a 28x28 image by computing the center of
   mass of the pixels, and translating the image so as to position this point at the center of the 28x28 field."
   http://yann.lecun.com/exdb/mnist/
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convnp.data.digit_photo import (
    Components, choose_digit, dilate, ink_strength, label_components, measure_components, otsu_threshold,
    paper_brightness, remove_ruling,
)
from convnp.data.image_files import convert_channels, fit_image, read_image, require_pillow
from convnp.errors import DataError

__all__ = [
    "WORK_SIDE", "Ink", "check_stands_out", "crop_to_ink", "dark_on_light", "digit_ink", "find_ink", "load_digits",
    "load_images", "mnist_box", "preprocess_digit", "preprocess_image", "working_size",
]

# A blank sheet photographed or saved as JPEG still varies by a few grey levels; ink must stand out by more.
_MIN_CONTRAST = 16.0
#: Photos are prepared at most this large (longest side, pixels): a digit needs far fewer to fill a 20-pixel box,
#: and the steps' cost grows with the pixels. Larger pictures are scaled down first.
WORK_SIDE = 512
# Pen strokes are at most this share of the picture's shorter side wide (a digit filling the frame: about 1/8);
# the paper's estimate fills dark details up to twice this with the paper around them.
_STROKE_SHARE = 0.08
# The digit's ink must stand this many standard deviations of the paper's own grain above the paper: sensor noise
# alone reaches about 4 in a few hundred thousand pixels, a pencil stroke on noisy paper 5 or more.
_NOISE_SIGMAS = 5.0
# Pictures smaller than this a side are drawings or arrays, not photos: their "grain" is the drawing itself.
_PHOTO_SIDE = 64


# ---- MNIST-style preparation -----------------------------------------------------------------------------------------
def preprocess_digit(grey: np.ndarray, size: int = 28, box: int = 20) -> np.ndarray:
    """Make a picture of one digit look like an MNIST digit: light ink on black, fitted and centred.

    Parameters
    ----------
    grey : ndarray of shape `(H, W)`, values in [0, 255]
        One digit on paper of any colour and any lighting, in any size (from :func:`read_image`): a drawing, a
        scan or a photo (uneven light, a shadow, noise, JPEG, coloured ink or paper, the digit anywhere).
    size : int
        Side of the output square (MNIST: 28).
    box : int
        The digit's longer side after scaling (MNIST: 20), ``1 <= box <= size``.

    Returns
    -------
    ndarray of shape `(size, size)`, float64 in [0, 255], the brightest pixel exactly 255

    Raises
    ------
    DataError
        If the image holds no ink: blank, flat to within a few grey levels, or nothing that stands out from the
        paper's own noise.

    Notes
    -----
    Steps (:mod:`convnp.data.digit_photo` holds the ones on arrays), then MNIST's (see the module's reference):

    1. A picture larger than :data:`WORK_SIDE` is scaled down to it.
    2. Light ink on dark paper is inverted, so the ink is dark: with the best-fitting plane of light taken out,
       the ink is on the side (darker or lighter) that reaches furthest from the paper (the median).
    3. The paper's brightness at each pixel is estimated by a closing (a local maximum, then minimum) of the lightly
       smoothed picture over a square wider than a pen stroke, and divided out: ink strength ``1 - grey / paper``
       is the same in a shadow as in full light. The printed lines of ruled or squared paper are divided out of
       it the same way (:func:`~convnp.data.digit_photo.remove_ruling`): straight lines across most of the
       picture, three or more alike.
    4. Otsu's threshold of the ink strength separates ink from paper; the ink's 8-connected regions are labelled,
       and the digit is the region with most ink (weighed by how central it is, discounted if it runs off the
       edge) plus the regions near it that are not specks. It must stand out from the paper's noise.
    5. The digit's ink, from half the threshold (its soft edges) to full strength at its 95th percentile, is
       cropped to its bounding box; the longer side is scaled to ``box`` pixels keeping the aspect ratio
       (Pillow's antialiased bilinear filter on the float image; a side never drops below one pixel).
    6. The result is placed in a ``size x size`` canvas so its centre of mass lands on the centre,
       ``(size / 2, size / 2)`` in pixel indices, which is where MNIST's digits have theirs (the mean over the
       first 10,000 training digits is (14.00, 14.00)). The shift is whole pixels, clamped so nothing is cut off.
    7. The values are stretched so the maximum is 255.
    """
    x = _checked_grey(grey, size, box)
    x = working_size(x)  # 1) (h, w), longest side <= WORK_SIDE
    x = dark_on_light(x)  # 2)
    x = digit_ink(x)  # 3), 4), 5) digit's ink in [0, 1] on exact black, (h, w)
    x = crop_to_ink(x)  # 5) (h, w) bounding box of the ink
    return mnist_box(x, size, box)  # 5), 6), 7)


def mnist_box(x: np.ndarray, size: int, box: int) -> np.ndarray:
    """Steps 5-7: ink ``(h, w)`` scaled so its longer side is ``box``, centred by mass on a ``(size, size)``
    canvas, stretched to a maximum of 255."""
    h, w = x.shape
    scale = box / max(h, w)
    x = _resize(x, max(1, round(h * scale)), max(1, round(w * scale)))  # (new_h, new_w)
    canvas = _centre_by_mass(x, size)  # (size, size)
    # full range, as MNIST's strokes are (divide first: peak / peak is exactly 1, so the brightest is exactly 255)
    return np.clip(canvas / canvas.max() * 255.0, 0.0, 255.0)


def _checked_grey(grey, size, box) -> np.ndarray:
    """``preprocess_digit``'s arguments checked; the picture as float64 ``(H, W)``."""
    grey = np.asarray(grey)
    if grey.ndim != 2 or 0 in grey.shape:
        raise ValueError(f"preprocess_digit: expected a grey image of shape (H, W), got shape {grey.shape}")
    if grey.dtype.kind not in "uif":
        raise TypeError(f"preprocess_digit: expected real pixel values, got dtype {grey.dtype}")
    for name, value in (("size", size), ("box", box)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"preprocess_digit: {name} must be a positive integer, got {value!r}")
    if box > size:
        raise ValueError(f"preprocess_digit: box ({box}) must fit in the canvas of side size ({size})")
    x = grey.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError("preprocess_digit: the image holds NaN or infinite values")
    return x


def working_size(x: np.ndarray) -> np.ndarray:
    """Step 1: ``x`` ``(H, W)`` scaled down so its longest side is at most :data:`WORK_SIDE`."""
    h, w = x.shape
    if max(h, w) <= WORK_SIDE:
        return x
    scale = WORK_SIDE / max(h, w)
    return _resize(x, max(1, round(h * scale)), max(1, round(w * scale)))


def dark_on_light(x: np.ndarray) -> np.ndarray:
    """Step 2: ``x`` ``(H, W)`` with its ink dark: inverted (``255 - x``) when the ink is lighter than the paper.

    The light across a page is close to a plane, so the plane of least squares through the picture is taken out
    first; the paper is then the median of what remains, and the ink is on the side (darker or lighter) that
    reaches furthest from it. A flat picture counts as dark ink when the paper is light.
    """
    H, W = x.shape
    step = max(1, min(H, W) // 64)  # the plane from a sparse grid of pixels: a few thousand are plenty
    yy, xx = np.mgrid[0:H:step, 0:W:step]
    design = np.stack([np.ones(yy.size), yy.ravel() / H, xx.ravel() / W], axis=1)  # (n, 3)
    coef = np.linalg.lstsq(design, x[::step, ::step].ravel(), rcond=None)[0]
    rows, cols = np.arange(H)[:, None] / H, np.arange(W)[None, :] / W
    residual = x - (coef[0] + coef[1] * rows + coef[2] * cols)  # (H, W)
    paper = float(np.median(residual))
    darker, lighter = paper - float(residual.min()), float(residual.max()) - paper
    if darker > lighter or (darker == lighter and float(np.median(x)) > 127.5):
        return x
    return 255.0 - x  # light ink on dark paper -> dark ink on light paper


def digit_ink(x: np.ndarray) -> np.ndarray:
    """Steps 3-5: the ink of the digit in a picture of dark ink on light paper.

    Parameters
    ----------
    x : ndarray of shape `(H, W)`, float, dark ink on light paper (any lighting)

    Returns
    -------
    ndarray of shape `(H, W)`, float64 in [0, 1]: 0 everywhere but on the digit, 1 at its full strength

    Raises
    ------
    DataError
        "no ink found": nothing differs from the paper by :data:`_MIN_CONTRAST` grey levels, or nothing stands
        out from the paper's noise.
    """
    found = find_ink(x)  # 3), 4)
    keep = choose_digit(found.parts, x.shape)
    chosen = np.concatenate([[False], keep])[found.labels]  # (H, W): pixels of the kept regions
    check_stands_out(chosen, found.depth)
    return found.soft(chosen)  # 5)


@dataclass(frozen=True)
class Ink:
    """What :func:`find_ink` finds in a picture ``(H, W)``: ``strength`` (:func:`ink_strength`, `(H, W)`), the
    Otsu ``threshold`` on it, the ``labels`` `(H, W)` of the regions above it and their measurements ``parts``,
    ``depth`` (grey levels below the paper, `(H, W)`), and the ``block`` the paper was estimated on."""

    strength: np.ndarray
    threshold: float
    labels: np.ndarray
    parts: Components
    depth: np.ndarray
    block: int

    def soft(self, chosen: np.ndarray) -> np.ndarray:
        """The ink of the ``chosen`` pixels `(H, W)` (bool) and their soft edges, from half the threshold up to
        full strength (1) at the chosen pixels' 95th percentile; 0 elsewhere. -> `(H, W)` float64 in [0, 1]."""
        low, high = self.threshold / 2, float(np.percentile(self.strength[chosen], 95))
        soft = np.clip((self.strength - low) / max(high - low, 1e-12), 0.0, 1.0)
        return soft * (dilate(chosen, 1 + self.block) > 0)  # the strokes' soft edges, nothing further


#: What a refusal says was expected, for one digit (convnp predict, the page's digit pad).
ONE_DIGIT = "one digit drawn on a plain background"


def find_ink(x: np.ndarray, expected: str = ONE_DIGIT) -> Ink:
    """Steps 3-4 up to the regions: the paper divided out, Otsu's threshold, the regions of ink labelled.

    Parameters
    ----------
    x : ndarray of shape `(H, W)`, float, dark ink on light paper (any lighting)
    expected : str
        What a refusal says was expected (:data:`ONE_DIGIT`, or a row of digits for :mod:`convnp.data.digit_row`).

    Returns
    -------
    Ink

    Raises
    ------
    DataError
        "no ink found: the image is flat": nothing differs from the paper by :data:`_MIN_CONTRAST` grey levels.
    """
    h, w = x.shape
    block = max(1, min(h, w) // 128)  # the paper estimated on tiles of a few pixels in a large picture
    smooth = int(min(h, w) >= 128)  # a small picture has no grain to smooth, and every pixel counts
    paper = paper_brightness(x, stroke_radius=max(1, int(np.ceil(_STROKE_SHARE * min(h, w)))), block=block,
                             smooth_radius=smooth)  # (H, W)
    depth = paper - x  # grey levels below the paper, (H, W)
    contrast = float(depth.max())
    if contrast < _MIN_CONTRAST:
        raise DataError(
            f"no ink found: the image is flat (every pixel within {contrast:.0f} grey levels of the paper, "
            f"at least {_MIN_CONTRAST:.0f} needed); expected {expected}"
        )
    strength = remove_ruling(ink_strength(x, paper))  # (H, W); ruled or squared paper's lines taken out
    threshold = otsu_threshold(strength)
    labels, n = label_components(strength > threshold)
    return Ink(strength, threshold, labels, measure_components(labels, n, strength), depth, block)


def check_stands_out(chosen: np.ndarray, depth: np.ndarray, expected: str = ONE_DIGIT) -> None:
    """Refuse a digit whose ink does not stand out from the paper's own grain (a blank photo's noise, the inside
    of a shadow), or lies within :data:`_MIN_CONTRAST` grey levels of the paper.

    Measured in grey levels below the paper (``depth``), where a sensor's noise is the same in light and in
    shadow; the paper's level and noise (a robust standard deviation) come from every pixel, most being paper. A
    picture under :data:`_PHOTO_SIDE` pixels a side is no photo (a drawing, an MNIST-sized array): any mark
    :data:`_MIN_CONTRAST` grey levels deep counts there, whatever the rest holds.
    """
    if not chosen.any():
        raise DataError(f"no ink found: no mark darker than the paper around it; expected {expected}")
    centre = float(np.median(depth))
    grain = 1.4826 * float(np.median(np.abs(depth - centre))) if min(depth.shape) >= _PHOTO_SIDE else 0.0
    level = float(depth[chosen].mean())
    if level - centre < _NOISE_SIGMAS * grain or float(depth[chosen].max()) < _MIN_CONTRAST:
        raise DataError(
            f"no ink found: nothing stands out from the paper's own grain (the darkest marks are "
            f"{(level - centre) / max(grain, 1e-12):.1f} noise levels deep, at least {_NOISE_SIGMAS:.0f} needed); "
            f"expected {expected}"
        )


def crop_to_ink(x: np.ndarray) -> np.ndarray:
    """Step 5: ``(H, W)`` cropped to the bounding box of its non-zero pixels, ``(h, w)``."""
    rows, cols = np.flatnonzero(x.any(axis=1)), np.flatnonzero(x.any(axis=0))
    return x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # (h, w) bounding box of the ink


def _centre_by_mass(x: np.ndarray, size: int) -> np.ndarray:
    """Step 4: ``x`` ``(h, w)`` on a ``(size, size)`` canvas, its centre of mass moved to the canvas centre by a
    whole-pixel shift that keeps every pixel on the canvas."""
    new_h, new_w = x.shape
    mass = x.sum()
    cy = float((x.sum(axis=1) * np.arange(new_h)).sum() / mass)
    cx = float((x.sum(axis=0) * np.arange(new_w)).sum() / mass)
    top = int(np.clip(round(size / 2 - cy), 0, size - new_h))
    left = int(np.clip(round(size / 2 - cx), 0, size - new_w))
    canvas = np.zeros((size, size))
    canvas[top : top + new_h, left : left + new_w] = x
    return canvas


def _resize(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a float image ``(H, W)`` with Pillow's antialiased bilinear filter; -> ``(height, width)``."""
    if x.shape == (height, width):
        return x.copy()
    Image = require_pillow()
    img = Image.fromarray(x.astype(np.float32), mode="F")
    out = np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float64)
    return np.clip(out, 0.0, 255.0)  # float rounding can stray a hair outside the input's range


# ---- files -> batches ------------------------------------------------------------------------------------------------
def load_digits(paths, *, size: int = 28, box: int = 20) -> np.ndarray:
    """Read image files of single digits and prepare them as MNIST was (see :func:`preprocess_digit`).

    Parameters
    ----------
    paths : iterable of str or Path
    size, box : int
        Canvas side and digit box, as in :func:`preprocess_digit`.

    Returns
    -------
    ndarray of shape `(N, size, size, 1)`, float32 in [0, 255] (the stored scale of MNIST's uint8 pixels)

    Raises
    ------
    DataError
        For the first file that cannot be read or holds no ink; the message starts with its path.
    """
    out = []
    for path in _as_paths(paths):
        grey = read_image(path, max_side=WORK_SIDE)  # a large photo decoded small: it is scaled to this anyway
        try:
            digit = preprocess_digit(grey, size=size, box=box)
        except DataError as err:
            raise DataError(f"{path}: {err}") from None
        out.append(digit[..., None])  # (size, size) -> (size, size, 1)
    return np.stack(out).astype(np.float32) if out else np.zeros((0, size, size, 1), np.float32)


def load_images(paths, input_shape: tuple) -> np.ndarray:
    """Read image files and prepare each for a model of ``input_shape`` that is not a digit model
    (:func:`preprocess_image`: the model's channels, scaled to cover the input keeping the aspect ratio, the centre
    cut out).

    Parameters
    ----------
    paths : iterable of str or Path
    input_shape : tuple (H, W, C)
        The model's input; ``C`` is 1 (grey) or 3 (RGB).

    Returns
    -------
    ndarray of shape `(N, H, W, C)`, float32 holding whole numbers 0..255

    Raises
    ------
    DataError
        For the first file that cannot be read; the message starts with its path.
    """
    H, W, C = _checked_input_shape(input_shape, "load_images")
    out = [preprocess_image(read_image(path, rgb=C == 3), (H, W, C)) for path in _as_paths(paths)]
    return np.stack(out) if out else np.zeros((0, H, W, C), np.float32)


def preprocess_image(picture: np.ndarray, input_shape: tuple) -> np.ndarray:
    """Make a decoded picture the input of a model of ``input_shape`` (any model but a digit model).

    Parameters
    ----------
    picture : ndarray of shape `(h, w)` (grey) or `(h, w, C)`, C 1 or 3, values in [0, 255]
        As :func:`~convnp.data.image_files.read_image` and ``read_image_bytes`` return it.
    input_shape : tuple (H, W, C)
        The model's input; ``C`` is 1 (grey) or 3 (RGB).

    Returns
    -------
    ndarray of shape `(H, W, C)`, float32 holding whole numbers 0..255

    Notes
    -----
    1. Channels as the model's (:func:`~convnp.data.image_files.convert_channels`): colour becomes grey by BT.601
       luma, grey becomes three equal channels.
    2. Rounded to uint8, as a folder's images are when ``convnp train`` decodes them, so a file gives the model
       the same pixels in training and in prediction.
    3. Scaled to cover ``(H, W)`` keeping the aspect ratio and cut to its centre
       (:func:`~convnp.data.image_files.fit_image`, torchvision's ``Resize`` + ``CenterCrop``): a wide photo
       loses its left and right ends rather than being squashed.
    """
    H, W, C = _checked_input_shape(input_shape, "preprocess_image")
    pixels = convert_channels(picture, C)  # 1) (h, w, C)
    pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)  # 2)
    return fit_image(pixels, (H, W)).astype(np.float32)  # 3) (H, W, C)


def _checked_input_shape(input_shape, caller: str) -> tuple[int, int, int]:
    """``input_shape`` as ``(H, W, C)`` ints with C 1 or 3, or a ValueError naming ``caller``."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or min(shape) < 1 or shape[2] not in (1, 3):
        raise ValueError(f"{caller}: expected a model input (H, W, C) with 1 (grey) or 3 (RGB) channels, got shape "
                         f"{tuple(input_shape)}")
    return shape


def _as_paths(paths) -> list[Path]:
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError(f"expected a list of paths, got a single path {paths!r}; wrap it in a list")
    return [Path(p) for p in paths]
