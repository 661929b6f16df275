"""Users' own image files -> network inputs: decoding (Pillow, or ``.npy``) and MNIST-style digit preparation.

Pillow is an optional extra (``pip install convnp[image]``), imported inside the functions that decode and resize, so
the rest of convnp stays NumPy-only (reading a ``.npy`` file needs no Pillow; resizing it does).

References
----------
1) Y. LeCun, C. Cortes, C. Burges, "The MNIST database of handwritten digits": "size normalized to fit in a
   20x20 pixel box while preserving their aspect ratio ... centered in a 28x28 image by computing the center of
   mass of the pixels, and translating the image so as to position this point at the center of the 28x28 field."
   http://yann.lecun.com/exdb/mnist/
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from convnp.errors import DataError, DataNotFoundError

__all__ = ["MAX_PIXELS", "read_image", "preprocess_digit", "load_digits", "load_images"]

#: Largest image accepted, in pixels (width x height). Checked from the header, before anything is decoded, so
#: a small file that claims a huge canvas (a decompression bomb) costs nothing.
MAX_PIXELS = 4096 * 4096

# ITU-R BT.601 luma weights: what Pillow's convert("L") uses, so .npy colour arrays and image files agree.
_LUMA = np.array([0.299, 0.587, 0.114])

# A blank sheet photographed or saved as JPEG still varies by a few grey levels; ink must stand out by more.
_MIN_CONTRAST = 16.0
# Pixels within this fraction of the contrast from the paper are paper (uneven lighting, JPEG ringing, the faint
# tails of anti-aliasing); they are zeroed so MNIST's exactly-black background is what the model sees.
_NOISE_FLOOR = 0.1

_NPY_MAGIC = b"\x93NUMPY"


# ---- decoding ------------------------------------------------------------------------------------------------------
def read_image(path, *, rgb: bool = False) -> np.ndarray:
    """Read an image file as floats in ``[0, 255]``, transparency composited onto the paper.

    Parameters
    ----------
    path : str or Path
        Anything Pillow decodes (PNG, JPEG, GIF (first frame), BMP, TIFF, WebP, ...; 1-, 8- and 16-bit grey,
        palette, RGB, RGBA, LA, CMYK, ...), or a NumPy ``.npy`` array of shape `(H, W)`, `(H, W, 1)`,
        `(H, W, 3)` or `(H, W, 4)` holding integers in 0..255 or floats in ``[0, 1]`` or ``[0, 255]``.
    rgb : bool
        Return the three colour channels instead of grey.

    Returns
    -------
    ndarray of shape `(H, W)` (grey, BT.601 luma), or `(H, W, 3)` with ``rgb=True``; float64 in ``[0, 255]``

    Raises
    ------
    DataError
        Naming the file: no such file, empty, not an image, damaged, too large (more than :data:`MAX_PIXELS`),
        an array of the wrong shape, type or range.

    Notes
    -----
    Transparent pixels need a colour. When most of the image is opaque, the opaque part is a sheet with the
    digit on it, and transparent margins take the sheet's (median) grey. When most of it is transparent, the
    opaque pixels are the strokes themselves (a drawing exported with a transparent background), and they are
    laid on white if they are dark and on black if they are light, so they always stand out.
    """
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: is not a file, expected an image")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes), expected an image")
    with open(path, "rb") as f:
        is_npy = f.read(len(_NPY_MAGIC)) == _NPY_MAGIC
    colour, alpha = _read_npy(path) if is_npy else _read_with_pillow(path)  # (H, W, 1|3), (H, W) or None
    if alpha is not None:
        colour = _composite(colour, alpha)
    if rgb:
        return np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour
    return colour[..., 0] if colour.shape[2] == 1 else colour @ _LUMA


def _check_size(path: Path, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise DataError(
            f"{path}: image is {width}x{height} pixels, more than the {MAX_PIXELS:,} ({int(MAX_PIXELS ** 0.5)}x"
            f"{int(MAX_PIXELS ** 0.5)}) accepted; scale it down first"
        )
    if width < 1 or height < 1:
        raise DataError(f"{path}: image is {width}x{height} pixels, expected at least 1x1")


def _read_with_pillow(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode with Pillow -> colour ``(H, W, 1|3)`` in [0, 255] and alpha ``(H, W)`` in [0, 1] (or None)."""
    Image = _import_pillow()
    from PIL import ImageOps, UnidentifiedImageError

    try:
        img = Image.open(path)
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image (no format that Pillow reads recognises it)") from None
    except Image.DecompressionBombError as err:
        # Pillow's own, looser bound (twice its MAX_IMAGE_PIXELS) tripped inside open(); report ours.
        raise DataError(f"{path}: image is too large: {err}; at most {MAX_PIXELS:,} pixels are accepted") from None
    except OSError as err:
        raise DataError(f"{path}: could not be opened as an image ({err})") from None
    with img:
        # The header is read, the pixels are not: refuse a decompression bomb before a single byte is inflated.
        _check_size(path, *img.size)
        try:
            img.seek(0)  # first frame of an animation (GIF, APNG, multi-page TIFF)
            # Phone photos are stored sideways with an EXIF note saying which way is up.
            img = ImageOps.exif_transpose(img)
            _check_size(path, *img.size)
            return _pillow_to_arrays(img)
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001
            # Decoders of untrusted files fail in many ways (OSError "truncated", SyntaxError, struct.error,
            # ValueError "unsupported mode", ...); each is the same fact for the user: this file cannot be read.
            raise DataError(
                f"{path}: image could not be decoded, damaged or unsupported ({type(err).__name__}: {err})"
            ) from None


def _pillow_to_arrays(img) -> tuple[np.ndarray, np.ndarray | None]:
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        # 16-bit and 32-bit grey have no alpha in Pillow; bring them to 0..255 by their nominal range.
        grey = np.asarray(img, dtype=np.float64)
        grey = _high_depth_to_255(grey, mode)
        return grey[..., None], None  # (H, W) -> (H, W, 1)
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in img.info
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float64)  # (H, W, 4); palette tRNS handled by Pillow
        colour, alpha = rgba[..., :3], rgba[..., 3] / 255.0
        if mode in ("LA", "La", "L") or (mode in ("P", "PA") and _is_grey(colour)):
            colour = colour[..., :1]
        return colour, alpha
    if mode == "L":
        return np.asarray(img, dtype=np.float64)[..., None], None
    if mode == "1":
        return np.asarray(img.convert("L"), dtype=np.float64)[..., None], None
    colour = np.asarray(img.convert("RGB"), dtype=np.float64)  # CMYK, YCbCr, P, LAB, HSV -> (H, W, 3)
    return colour, None


def _is_grey(colour: np.ndarray) -> bool:
    return bool(np.all(colour[..., 0] == colour[..., 1]) and np.all(colour[..., 1] == colour[..., 2]))


def _high_depth_to_255(grey: np.ndarray, mode: str) -> np.ndarray:
    if mode == "F":
        top = 1.0 if grey.size and np.nanmax(grey) <= 1.0 else 255.0
    elif mode.startswith("I;16"):
        top = 65535.0
    else:  # "I": 32-bit; 16-bit PNGs open in this mode on older Pillows
        peak = float(grey.max()) if grey.size else 0.0
        top = 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else peak
    return np.clip(np.nan_to_num(grey) * (255.0 / top), 0.0, 255.0)


def _read_npy(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """An ``.npy`` image -> colour ``(H, W, 1|3)`` in [0, 255] and alpha ``(H, W)`` in [0, 1] (or None)."""
    try:
        # Memory-mapped: the shape and dtype come from the header, the data is read only once they pass.
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err) or "object" in str(err).lower():
            raise DataError(f"{path}: holds Python objects (dtype=object), which convnp will not unpickle") from None
        raise DataError(f"{path}: could not be read as a .npy array ({err})") from None
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: damaged or truncated .npy array ({err})") from None
    shape = arr.shape
    if not (arr.ndim == 2 or (arr.ndim == 3 and shape[2] in (1, 3, 4))):
        raise DataError(
            f"{path}: array of shape {shape} is not an image; expected (H, W) grey, (H, W, 1), (H, W, 3) RGB "
            "or (H, W, 4) RGBA"
        )
    _check_size(path, shape[1], shape[0])
    if arr.dtype.kind not in "uif":
        raise DataError(
            f"{path}: array of dtype {arr.dtype} is not an image; expected uint8 pixels 0..255 or floats "
            "in [0, 1] or [0, 255]"
        )
    is_float = arr.dtype.kind == "f"
    x = np.array(arr, dtype=np.float64)  # reads the data; (H, W[, C])
    del arr  # closes the memory map
    if x.ndim == 2:
        x = x[..., None]  # (H, W) -> (H, W, 1)
    if not np.isfinite(x).all():
        raise DataError(f"{path}: array holds NaN or infinite values")
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 255:
        raise DataError(
            f"{path}: pixel values span [{low:g}, {high:g}]; expected 0..255 (or floats in [0, 1])"
        )
    if is_float and high <= 1.0:
        x = x * 255.0  # floats in [0, 1], the usual scale of float images
    if x.shape[2] == 4:
        return x[..., :3], x[..., 3] / 255.0
    return x, None


def _composite(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Lay ``colour`` `(H, W, C)` with ``alpha`` `(H, W)` in [0, 1] over the paper grey (see read_image Notes)."""
    a = alpha[..., None]  # (H, W, 1)
    if alpha.mean() > 0.5:
        # Mostly opaque: a sheet; its median grey is the paper, which transparent margins continue.
        opaque = alpha > 0.5
        paper = float(np.median(_grey(colour)[opaque]))
    else:
        # Mostly transparent: the opaque pixels are strokes; give them a backdrop they contrast with.
        weight = alpha.sum()
        ink = float((_grey(colour) * alpha).sum() / weight) if weight > 0 else 0.0
        paper = 255.0 if ink < 127.5 else 0.0
    return colour * a + paper * (1.0 - a)


def _grey(colour: np.ndarray) -> np.ndarray:
    return colour[..., 0] if colour.shape[2] == 1 else colour @ _LUMA


# ---- MNIST-style preparation -----------------------------------------------------------------------------------------
def preprocess_digit(grey: np.ndarray, size: int = 28, box: int = 20) -> np.ndarray:
    """Make a picture of one digit look like an MNIST digit: light ink on black, fitted and centred.

    Parameters
    ----------
    grey : ndarray of shape `(H, W)`, values in [0, 255]
        One digit on a plain background of any colour, in any size (from :func:`read_image`).
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
        If the image holds no ink (blank, or flat to within a few grey levels).

    Notes
    -----
    Steps, following MNIST (see the module's reference):

    1. The paper is the median of the outer ring of pixels. The ink is on the side (darker or lighter than the
       paper) that reaches furthest from it; dark ink is inverted, so ink is bright, and the paper is subtracted,
       so it is black.
    2. The lowest 10% of the contrast is taken off (uneven paper, JPEG noise), so the background is exactly
       black; what remains is ink, and the image is cropped to its bounding box.
    3. The longer side is scaled to ``box`` pixels keeping the aspect ratio (Pillow's antialiased bilinear filter
       on the float image; a side never drops below one pixel).
    4. The result is placed in a ``size x size`` canvas so its centre of mass lands on the centre,
       ``(size / 2, size / 2)`` in pixel indices, which is where MNIST's digits have theirs (the mean over the
       first 10,000 training digits is (14.00, 14.00)). The shift is whole pixels, clamped so nothing is cut off.
    5. The values are stretched so the maximum is 255.
    """
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

    # 1) paper colour and ink polarity
    ring = np.concatenate([x[0], x[-1], x[1:-1, 0], x[1:-1, -1]])
    paper = float(np.median(ring))
    darker, lighter = paper - float(x.min()), float(x.max()) - paper
    if darker > lighter or (darker == lighter and paper > 127.5):
        x = paper - x  # dark ink on light paper -> bright ink on black
    else:
        x = x - paper
    x = np.clip(x, 0.0, None)
    contrast = float(x.max())
    if contrast < _MIN_CONTRAST:
        raise DataError(
            f"no ink found: the image is flat (every pixel within {contrast:.0f} grey levels of the paper, "
            f"at least {_MIN_CONTRAST:.0f} needed); expected one digit drawn on a plain background"
        )

    # 2) drop the paper's noise, crop to the ink
    x = np.clip(x - _NOISE_FLOOR * contrast, 0.0, None)
    rows, cols = np.flatnonzero(x.any(axis=1)), np.flatnonzero(x.any(axis=0))
    x = x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # (h, w) bounding box of the ink

    # 3) longer side -> box, aspect kept
    h, w = x.shape
    scale = box / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    x = _resize(x, new_h, new_w)

    # 4) centre of mass -> canvas centre, by a whole-pixel shift that keeps every pixel on the canvas
    mass = x.sum()
    cy = float((x.sum(axis=1) * np.arange(new_h)).sum() / mass)
    cx = float((x.sum(axis=0) * np.arange(new_w)).sum() / mass)
    top = int(np.clip(round(size / 2 - cy), 0, size - new_h))
    left = int(np.clip(round(size / 2 - cx), 0, size - new_w))
    canvas = np.zeros((size, size))
    canvas[top : top + new_h, left : left + new_w] = x

    # 5) full range, as MNIST's strokes are (divide first: peak / peak is exactly 1, so the brightest is exactly 255)
    return np.clip(canvas / canvas.max() * 255.0, 0.0, 255.0)


def _resize(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a float image ``(H, W)`` with Pillow's antialiased bilinear filter; -> ``(height, width)``."""
    if x.shape == (height, width):
        return x.copy()
    Image = _import_pillow()
    img = Image.fromarray(x.astype(np.float32), mode="F")
    out = np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float64)
    return np.clip(out, 0.0, 255.0)  # float rounding can stray a hair outside the input's range


def _import_pillow():
    """``PIL.Image``, or a RuntimeError saying how to install it (the same for every file, so not a DataError)."""
    try:
        from PIL import Image
    except ImportError:
        raise RuntimeError(
            "decoding and resizing images needs Pillow, an optional extra: pip install 'convnp[image]' "
            "(or pip install pillow)"
        ) from None
    return Image


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
        grey = read_image(path)
        try:
            digit = preprocess_digit(grey, size=size, box=box)
        except DataError as err:
            raise DataError(f"{path}: {err}") from None
        out.append(digit[..., None])  # (size, size) -> (size, size, 1)
    return np.stack(out).astype(np.float32) if out else np.zeros((0, size, size, 1), np.float32)


def load_images(paths, input_shape: tuple) -> np.ndarray:
    """Read image files and resize each to ``input_shape`` ``(H, W, C)`` as it is (no cropping or inversion).

    For models trained on something other than MNIST-style digits.

    Parameters
    ----------
    paths : iterable of str or Path
    input_shape : tuple (H, W, C)
        The model's input; ``C`` is 1 (grey) or 3 (RGB).

    Returns
    -------
    ndarray of shape `(N, H, W, C)`, float32 in [0, 255]
    """
    H, W, C = (int(d) for d in input_shape)
    if C not in (1, 3):
        raise ValueError(
            f"load_images: expected a model input of 1 (grey) or 3 (RGB) channels, got shape {tuple(input_shape)}"
        )
    out = []
    for path in _as_paths(paths):
        image = read_image(path, rgb=C == 3)
        planes = image[..., None] if C == 1 else image  # (h, w, C)
        out.append(np.stack([_resize(planes[..., c], H, W) for c in range(C)], axis=-1))  # (H, W, C)
    return np.stack(out).astype(np.float32) if out else np.zeros((0, H, W, C), np.float32)


def _as_paths(paths) -> list[Path]:
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError(f"expected a list of paths, got a single path {paths!r}; wrap it in a list")
    return [Path(p) for p in paths]
