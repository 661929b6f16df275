"""Image files -> float pixels: one decoder for a file on disk (:func:`read_image`) and for the same file's bytes
held in memory, as an upload is (:func:`read_image_bytes`).

Both go through the same steps (Pillow's modes, 16-bit depths, transparency laid onto the paper, BT.601 grey), so
``convnp predict`` on a saved PNG and ``POST /api/predict`` with that PNG see the same pixels. Image files are
untrusted input: the pixel count is checked from the header before anything is inflated, and every decoder failure
becomes one :class:`~convnp.errors.DataError` line.

Pillow is an optional extra (``pip install convnp[image]``), imported inside the functions that need it, so the rest
of convnp stays NumPy-only (reading a ``.npy`` file needs no Pillow).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from convnp.errors import DataError, DataNotFoundError

__all__ = [
    "MAX_PIXELS", "ImageTooLargeError", "convert_channels", "fit_image", "image_header", "read_image",
    "read_image_bytes", "require_pillow", "save_side_by_side", "upright_size",
]

#: Largest image accepted, in pixels (width x height). Checked from the header, before anything is decoded, so
#: a small file that claims a huge canvas (a decompression bomb) costs nothing.
MAX_PIXELS = 4096 * 4096

# ITU-R BT.601 luma weights: what Pillow's convert("L") uses, so .npy colour arrays and image files agree.
_LUMA = np.array([0.299, 0.587, 0.114])

_NPY_MAGIC = b"\x93NUMPY"


class ImageTooLargeError(DataError):
    """The image declares more than :data:`MAX_PIXELS` pixels (found from its header, before decoding)."""


def require_pillow():
    """``PIL.Image``, or a RuntimeError saying how to install it (the same for every file, so not a DataError)."""
    try:
        from PIL import Image
    except ImportError:
        raise RuntimeError(
            "decoding and resizing images needs Pillow, an optional extra: pip install 'convnp[image]' "
            "(or pip install pillow)"
        ) from None
    return Image


# ---- the two entry points --------------------------------------------------------------------------------------------
def read_image(path, *, rgb: bool = False, max_side: int | None = None) -> np.ndarray:
    """Read an image file as floats in ``[0, 255]``, transparency composited onto the paper.

    Parameters
    ----------
    path : str or Path
        Anything Pillow decodes (PNG, JPEG, GIF (first frame), BMP, TIFF, WebP, ...; 1-, 8- and 16-bit grey,
        palette, RGB, RGBA, LA, CMYK, ...), or a NumPy ``.npy`` array of shape `(H, W)`, `(H, W, 1)`,
        `(H, W, 3)` or `(H, W, 4)` holding integers in 0..255 or floats in ``[0, 1]`` or ``[0, 255]``.
    rgb : bool
        Return the three colour channels instead of grey.
    max_side : int, optional
        Decode a large picture smaller, for a caller that will scale it down anyway (see :func:`_shrink`): the
        result's longer side is then between ``max_side`` and about twice it (a picture that is smaller already,
        and ``.npy`` arrays, are read as they are). Default: full size.

    Returns
    -------
    ndarray of shape `(H, W)` (grey, BT.601 luma), or `(H, W, 3)` with ``rgb=True``; float64 in ``[0, 255]``

    Raises
    ------
    DataError
        Naming the file: no such file, empty, not an image, damaged, too large (an :class:`ImageTooLargeError`:
        more than :data:`MAX_PIXELS`), an array of the wrong shape, type or range.

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
    _check_file(path)
    # (H, W, 1|3) colour and the alpha channel, if any
    colour, alpha = _read_npy(path) if _is_npy(path) else _read_with_pillow(path, f"{path}: ", max_side, rgb)
    return _finish(colour, alpha, rgb)


def read_image_bytes(data: bytes, *, rgb: bool = False, max_side: int | None = None) -> np.ndarray:
    """Decode an image file held in memory (an upload), exactly as :func:`read_image` decodes it from disk.

    Parameters
    ----------
    data : bytes
        Anything Pillow reads (PNG, JPEG, GIF (first frame), BMP, TIFF, WebP, ...). ``.npy`` arrays are files only.
    rgb : bool
        Return the three colour channels instead of grey.
    max_side : int, optional
        As :func:`read_image`'s: decode a large picture smaller.

    Returns
    -------
    ndarray of shape `(H, W)` (grey, BT.601 luma), or `(H, W, 3)` with ``rgb=True``; float64 in ``[0, 255]``

    Raises
    ------
    DataError
        Empty, not an image, damaged or unsupported.
    ImageTooLargeError
        More than :data:`MAX_PIXELS` pixels, read from the header before any pixel is inflated.
    """
    if not data:
        raise DataError("empty image (0 bytes)")
    colour, alpha = _read_with_pillow(io.BytesIO(data), "", max_side, rgb)  # (H, W, 1|3), (H, W) or None
    return _finish(colour, alpha, rgb)


def _finish(colour: np.ndarray, alpha: np.ndarray | None, rgb: bool) -> np.ndarray:
    """Colour ``(H, W, 1|3)`` and alpha ``(H, W)`` (or None) -> grey ``(H, W)``, or RGB ``(H, W, 3)``."""
    if alpha is not None:
        colour = _composite(colour, alpha)
    if rgb:
        return np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour
    return _grey(colour)


# ---- Pillow ----------------------------------------------------------------------------------------------------------
def _check_size(where: str, width: int, height: int) -> None:
    """Refuse a canvas over :data:`MAX_PIXELS` or an empty one; ``where`` prefixes the message (``"path: "``)."""
    if width * height > MAX_PIXELS:
        side = int(MAX_PIXELS**0.5)
        raise ImageTooLargeError(
            f"{where}image is {width}x{height} pixels, more than the {MAX_PIXELS:,} ({side}x{side}) accepted; "
            "scale it down first"
        )
    if width < 1 or height < 1:
        raise DataError(f"{where}image is {width}x{height} pixels, expected at least 1x1")


def _check_file(path: Path) -> None:
    """Refuse, naming ``path``, what is not a file or is an empty one."""
    if not path.is_file():
        raise DataError(f"{path}: is not a file, expected an image")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes), expected an image")


def _is_npy(path: Path) -> bool:
    """Whether the file starts as a ``.npy`` array does (its magic bytes), whatever its name."""
    with open(path, "rb") as f:
        return f.read(len(_NPY_MAGIC)) == _NPY_MAGIC


def _open(source, where: str):
    """``PIL.Image.open(source)``, every failure one DataError line starting with ``where``."""
    Image = require_pillow()
    from PIL import UnidentifiedImageError

    try:
        return Image.open(source)
    except UnidentifiedImageError:
        raise DataError(f"{where}not an image (no format that Pillow reads recognises it)") from None
    except Image.DecompressionBombError as err:
        # Pillow's own, looser bound (twice its MAX_IMAGE_PIXELS) tripped inside open(); report ours.
        raise ImageTooLargeError(
            f"{where}image is too large: {err}; at most {MAX_PIXELS:,} pixels are accepted"
        ) from None
    except Exception as err:  # noqa: BLE001 - any failure to open untrusted bytes is the same fact for the user
        raise DataError(f"{where}could not be opened as an image ({type(err).__name__}: {err})") from None


def _read_with_pillow(source, where: str, max_side: int | None = None,
                      rgb: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode a path or a file object -> colour ``(H, W, 1|3)`` in [0, 255] and alpha ``(H, W)`` in [0, 1] (or
    None), shrunk towards ``max_side`` if given (a JPEG then decoded straight to grey unless ``rgb``); ``where``
    (``"path: "`` or ``""``) starts every message."""
    from PIL import ImageOps

    img = _open(source, where)
    with img:
        # The header is read, the pixels are not: refuse a decompression bomb before a single byte is inflated.
        _check_size(where, *img.size)
        try:
            img.seek(0)  # first frame of an animation (GIF, APNG, multi-page TIFF)
            if max_side is not None:
                img = _shrink(img, max_side, rgb)
            # Phone photos are stored sideways with an EXIF note saying which way is up.
            img = ImageOps.exif_transpose(img)
            _check_size(where, *img.size)
            return _pillow_to_arrays(img)
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001
            # Decoders of untrusted files fail in many ways (OSError "truncated", SyntaxError, struct.error,
            # ValueError "unsupported mode", ...); each is the same fact for the user: this file cannot be read.
            raise DataError(
                f"{where}image could not be decoded, damaged or unsupported ({type(err).__name__}: {err})"
            ) from None


# Pillow modes whose pixels Image.reduce averages (others are decoded at full size).
_REDUCIBLE = ("L", "LA", "RGB", "RGBA", "I", "F")


def _shrink(img, max_side: int, rgb: bool):
    """A large picture decoded small: a JPEG at the coarsest of its DCT scales (1/2, 1/4, 1/8: Pillow's draft
    mode, no full-size decode at all) that keeps both sides at least ``max_side`` (and, unless ``rgb``, only its
    luma channel, which is BT.601 grey), then any picture whose longer side is still twice ``max_side`` or more
    averaged down by a whole factor (``Image.reduce``)."""
    if img.format == "JPEG" and max(img.size) > max_side:
        img.draft("L" if not rgb and img.mode in ("RGB", "YCbCr") else img.mode, (max_side, max_side))
    factor = max(img.size) // max(int(max_side), 1)
    if factor >= 2 and img.mode in _REDUCIBLE:
        img = img.reduce(factor)
    return img


def _pillow_to_arrays(img) -> tuple[np.ndarray, np.ndarray | None]:
    """A decoded Pillow image -> colour ``(H, W, 1|3)`` in [0, 255] and alpha ``(H, W)`` in [0, 1] (or None)."""
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


# ---- .npy ------------------------------------------------------------------------------------------------------------
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
    _check_size(f"{path}: ", shape[1], shape[0])
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
        return x[..., :3], x[..., 3] / 255.0  # (H, W, 3), (H, W)
    return x, None


# ---- colour -> grey --------------------------------------------------------------------------------------------------
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
    """Colour ``(H, W, 1|3)`` -> grey ``(H, W)`` (BT.601 luma for RGB)."""
    return colour[..., 0] if colour.shape[2] == 1 else colour @ _LUMA


# ---- for folders of images and other models' inputs: the header alone, resizing, fitting, channels -------------------
# Pillow modes whose pixels are one grey channel (alpha aside); every other mode is read as colour.
_GREY_MODES = ("1", "L", "LA", "La", "I", "F")


def image_header(path) -> tuple[int, int, int]:
    """An image file's size and channel count, from its header alone (nothing is inflated).

    Parameters
    ----------
    path : str or Path
        An image file Pillow reads (PNG, JPEG, GIF, BMP, TIFF, WebP, ...).

    Returns
    -------
    (height, width, channels) : tuple of int
        ``channels`` is 1 for grey files (1-bit, 8-bit, 16-bit and 32-bit grey, grey with alpha) and 3 for every
        other (RGB, RGBA, palette, CMYK, ...).

    Raises
    ------
    DataError
        Naming the file: not a file, empty, not an image, too large (:class:`ImageTooLargeError`).
    """
    path = Path(path)
    _check_file(path)
    where = f"{path}: "
    img = _open(path, where)
    with img:
        width, height = img.size
        _check_size(where, width, height)
        grey = img.mode in _GREY_MODES or img.mode.startswith("I;16")
        return height, width, 1 if grey else 3


# EXIF orientations that turn a picture a quarter turn (5: transpose, 6: 270 degrees, 7: transverse, 8: 90 degrees).
_QUARTER_TURNS = (5, 6, 7, 8)


def upright_size(source) -> tuple[int, int]:
    """The size of the picture :func:`read_image` or :func:`read_image_bytes` gives at full size, from the header
    alone: what a picture decoded small (``max_side``) stands for, so that places found in it can be given in the
    file's own pixels.

    Parameters
    ----------
    source : str, Path or bytes
        An image file (or a ``.npy`` array), or an image file's bytes.

    Returns
    -------
    (height, width) : tuple of int
        The stored size, turned as the decoders turn it by the EXIF orientation (a phone photo stored sideways);
        a ``.npy`` array's first two sides.

    Raises
    ------
    DataError
        As :func:`read_image` (or :func:`read_image_bytes`) raises it for the header: not an image, too large.
    """
    if isinstance(source, (bytes, bytearray)):
        stream, where = io.BytesIO(source), ""
    else:
        stream = path = Path(source)
        _check_file(path)
        if _is_npy(path):
            return tuple(int(n) for n in np.load(path, mmap_mode="r", allow_pickle=False).shape[:2])
        where = f"{path}: "
    img = _open(stream, where)
    with img:
        width, height = img.size
        _check_size(where, width, height)
        turned = img.getexif().get(0x0112) in _QUARTER_TURNS  # 0x0112: the EXIF orientation tag
    return (width, height) if turned else (height, width)


def fit_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale ``image`` to cover ``size`` keeping its aspect ratio, then cut out the centre: nothing is stretched and
    no border is added.

    Parameters
    ----------
    image : ndarray of shape `(h, w, C)` (or `(h, w)`), uint8 or float
        Any number of channels; float values of any range (finite).
    size : (H, W)
        The output's height and width.

    Returns
    -------
    ndarray of shape `(H, W, C)` (or `(H, W)`), the dtype of ``image``
        uint8 is rounded and clipped back to 0..255; floats stay within the range of ``image``'s values. A copy of
        ``image`` when it has that size already.

    Raises
    ------
    ValueError
        ``size`` not two positive integers; ``image`` empty, of another rank, or holding NaN or infinity.
    TypeError
        ``image`` neither uint8 nor float.

    Notes
    -----
    The scale is ``s = max(H / h, W / w)``: the side that is shorter relative to the output fits it exactly and the
    other overflows, its two ends cut off equally. This is torchvision's evaluation transform ``Resize(side)`` then
    ``CenterCrop(size)``, without rounding the intermediate size: each output pixel is resampled straight from the
    centred source box of ``W / s`` by ``H / s`` pixels, with Pillow's bilinear filter (antialiased when shrinking),
    in float32, one channel at a time.
    """
    height, width = _checked_size(size)
    x = _checked_image(image)
    h, w = x.shape[:2]
    if (h, w) == (height, width):
        return x.copy()
    scale = max(height / h, width / w)
    box_w, box_h = width / scale, height / scale  # the source region that becomes the output; w >= box_w, h >= box_h
    left, top = (w - box_w) / 2, (h - box_h) / 2
    box = (left, top, left + box_w, top + box_h)
    Image = require_pillow()
    planes = x[..., None] if x.ndim == 2 else x  # (h, w, C)
    out = np.stack([
        np.asarray(Image.fromarray(np.ascontiguousarray(planes[..., c], dtype=np.float32))
                   .resize((width, height), Image.Resampling.BILINEAR, box=box))
        for c in range(planes.shape[2])
    ], axis=-1)  # (H, W, C), float32
    out = out[..., 0] if x.ndim == 2 else out
    if x.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    # The filter's weights are non-negative, so only float32 rounding can stray outside the input's range.
    return np.clip(out, x.min(), x.max()).astype(x.dtype)


def _checked_size(size) -> tuple[int, int]:
    """``fit_image``'s ``size`` as two positive ints, or a ValueError naming it."""
    try:
        height, width = size
    except (TypeError, ValueError):
        raise ValueError(f"fit_image: size must be (height, width), got {size!r}") from None
    for value in (height, width):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"fit_image: size must be two positive integers (height, width), got {size!r}")
    return int(height), int(width)


def _checked_image(image) -> np.ndarray:
    """``fit_image``'s ``image`` as an array of shape `(h, w[, C])`, uint8 or float, or an error naming it."""
    x = np.asarray(image)
    if x.ndim not in (2, 3) or 0 in x.shape:
        raise ValueError(f"fit_image: image must have shape (h, w, C) or (h, w), non-empty, got shape {x.shape}")
    if x.dtype != np.uint8 and x.dtype.kind != "f":
        raise TypeError(f"fit_image: image must be uint8 or float, got dtype {x.dtype}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError("fit_image: image holds NaN or infinite values")
    return x


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Give a picture ``channels`` channels: colour -> grey by BT.601 luma (as Pillow's ``convert("L")``), grey ->
    colour by repeating it; a picture with that many already is returned as it is.

    Parameters
    ----------
    image : ndarray of shape `(h, w)`, `(h, w, 1)` or `(h, w, 3)`
    channels : {1, 3}

    Returns
    -------
    ndarray of shape `(h, w, channels)`; float64 when colour became grey, else the dtype of ``image``
    """
    if channels not in (1, 3):
        raise ValueError(f"convert_channels: channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    x = np.asarray(image)
    if x.ndim == 2:
        x = x[..., None]  # (h, w) -> (h, w, 1)
    if x.ndim != 3 or x.shape[2] not in (1, 3):
        raise ValueError(f"convert_channels: image must have shape (h, w), (h, w, 1) or (h, w, 3), got {x.shape}")
    if x.shape[2] == channels:
        return x
    return np.repeat(x, 3, axis=2) if channels == 3 else _grey(x.astype(np.float64))[..., None]


# ---- pictures for people ---------------------------------------------------------------------------------------------
def save_side_by_side(path, picture: np.ndarray, prepared: np.ndarray, *, height: int = 224,
                      caption: str | None = None) -> Path:
    """Write a PNG showing ``picture`` beside ``prepared``, the same height: a file as the user gave it, and the
    input the network saw.

    Parameters
    ----------
    path : str or Path
        Where to write (a PNG, whatever the name's suffix).
    picture : ndarray of shape `(h, w)` or `(h, w, 3)`, values in [0, 255]
        Scaled (bilinear) to ``height`` keeping its aspect ratio.
    prepared : ndarray of shape `(H, W)`, `(H, W, 1)` or `(H, W, 3)`, values in [0, 255]
        Enlarged by whole pixels (each a crisp square), so its own pixels stay visible.
    height : int
    caption : str, optional
        Written under the two pictures (the answer, say).

    Returns
    -------
    Path : ``path``
    """
    Image = require_pillow()
    from PIL import ImageDraw

    def rgb(x):
        x = np.clip(np.rint(np.asarray(x, dtype=np.float64)), 0, 255).astype(np.uint8)
        x = x[..., 0] if x.ndim == 3 and x.shape[2] == 1 else x
        return Image.fromarray(x).convert("RGB")

    left, right = rgb(picture), rgb(prepared)
    width = max(1, round(left.width * height / left.height))
    left = left.resize((width, height), Image.Resampling.BILINEAR)
    scale = max(1, height // right.height)
    right = right.resize((right.width * scale, right.height * scale), Image.Resampling.NEAREST)
    gap, footer = 8, 18 if caption else 0
    sheet = Image.new("RGB", (left.width + gap + right.width, max(height, right.height) + footer), (128, 128, 128))
    sheet.paste(left, (0, 0))
    sheet.paste(right, (left.width + gap, 0))
    if caption:
        ImageDraw.Draw(sheet).text((4, sheet.height - footer + 3), caption, fill=(255, 255, 255))
    path = Path(path)
    sheet.save(path, format="PNG")
    return path
