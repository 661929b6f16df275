"""Odd and hostile image files, shared by the ``convnp predict`` tests (test_hostile_input.py) and the server tests
(test_web_fuzz.py), so both front doors are held to the same cases.

Every odd-but-valid file shows the same digit (an MNIST test digit, redrawn as dark ink on white paper) and must get
the same answer as the plain 8-bit grey PNG; every broken one must be refused with a one-line reason.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` grey pixels with 64 bytes of data: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _save(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def paper(digit: np.ndarray, side: int = 112) -> np.ndarray:
    """An MNIST digit ``(28, 28)`` (light on dark) as dark ink on white paper, ``side`` pixels square, uint8."""
    big = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    return 255 - np.asarray(big)


#: The files of :func:`valid_files` that decode to the plain grey PNG's pixels: 16-bit values are the 8-bit ones times
#: 257; black ink whose alpha is its darkness composites onto white paper as the same greys; grey+alpha is opaque;
#: the GIF's first frame is the grey image with a palette of grey levels. Their answers must match the plain PNG's to
#: rounding. The others (two JPEGs, a 64-colour palette) move pixels by a few grey levels.
LOSSLESS = ("grey.png", "grey16.png", "rgba.png", "la.png", "animated.gif")


def valid_files(digit: np.ndarray, other: np.ndarray) -> dict[str, bytes]:
    """Name -> file bytes: the same digit in many modes and formats; ``other`` is a second digit for the GIF's
    second frame (only the first frame counts)."""
    grey = paper(digit)
    L = Image.fromarray(grey)
    ink = 255 - grey  # 0 = paper
    rgba = np.zeros((*grey.shape, 4), np.uint8)
    rgba[..., 3] = ink  # black strokes, opaque where the ink is, on a transparent sheet
    la = Image.fromarray(np.stack([grey, np.full_like(grey, 255)], -1), "LA")
    frames = [L.convert("P"), Image.fromarray(paper(other)).convert("P")]
    return {
        "grey.png": _save(L, "PNG"),
        "grey16.png": _save(Image.fromarray(grey.astype(np.uint16) * 257), "PNG"),
        "palette.png": _save(L.convert("RGB").quantize(64), "PNG"),
        "rgba.png": _save(Image.fromarray(rgba, "RGBA"), "PNG"),
        "la.png": _save(la, "PNG"),
        "cmyk.jpg": _save(L.convert("CMYK"), "JPEG", quality=95),
        "rgb.jpg": _save(L.convert("RGB"), "JPEG", quality=95),
        "animated.gif": _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
    }


def broken_files() -> dict[str, tuple[bytes, int, str]]:
    """Name -> (file bytes, the server's status, a phrase the one-line reason must hold)."""
    noise = _save(Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)), "PNG")
    truncated = noise[: len(noise) // 2]  # cut inside the pixel data
    return {
        "empty.png": (b"", 400, "empty"),
        "text.png": (b"this is not a picture of a digit\n", 400, "not an image"),
        "truncated.png": (truncated, 400, "could not be decoded"),
        "bomb.png": (png_header_only(100_000, 100_000), 413, "too large"),
        "big.png": (png_header_only(5000, 5000), 413, "5000x5000 pixels"),
        "one-pixel.png": (_save(Image.new("L", (1, 1), 0), "PNG"), 400, "no ink found"),
        "blank.jpg": (_save(Image.new("RGB", (60, 60), (250, 250, 245)), "JPEG"), 400, "no ink found"),
    }
