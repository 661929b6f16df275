"""A model that does not take digits, trained in about two seconds: sprint on 32x32 colour pictures, each class a
colour named by its name ("red", "blue", ...). Shared by the web tests of image models (tests/test_web_images.py,
tests/test_web_browser.py), which need a model whose answers can be told right from wrong at a glance.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

#: The classes: twelve colours, by name. The training data names them, so label i is sorted(COLOURS)[i].
COLOURS = {
    "red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "yellow": (240, 220, 40),
    "cyan": (40, 210, 220), "magenta": (210, 40, 200), "orange": (245, 140, 20), "purple": (110, 40, 160),
    "white": (245, 245, 245), "black": (15, 15, 15), "grey": (128, 128, 128), "brown": (120, 70, 30),
}
NAMES = sorted(COLOURS)


def noisy(names, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One ``(size, size, 3)`` uint8 picture per name: its colour plus noise; ``(N, size, size, 3)``."""
    base = np.array([COLOURS[str(n)] for n in names], dtype=np.float64)[:, None, None, :]  # (N, 1, 1, 3)
    return np.clip(base + rng.normal(0, 18, (len(names), size, size, 3)), 0, 255).astype(np.uint8)


def train_colour_model(folder: Path) -> Path:
    """Train sprint (32x32x3) for three epochs on 240 noisy colour pictures named by colour; the run folder.

    Seeded and on one thread, so the same weights every time; it names every test colour right (100% on 48).
    """
    from convnp.cli.main import main

    rng = np.random.default_rng(0)
    names = np.array(NAMES)
    y, y_test = names[np.arange(240) % 12], names[np.arange(48) % 12]
    data = folder / "colours.npz"
    np.savez(data, x=noisy(y, rng), y=y, x_test=noisy(y_test, rng), y_test=y_test)
    run = folder / "run"
    argv = ["train", "--data", str(data), "--model", "sprint", "--epochs", "3", "--optimizer", "adam", "--lr", "0.003",
            "--schedule", "constant", "--batch-size", "32", "--threads", "1", "--no-report", "--out", str(run)]
    assert main(argv) == 0
    return run


def framed(centre: str, margin: str, height: int = 60, width: int = 150) -> np.ndarray:
    """A wide ``(height, width, 3)`` uint8 picture: a ``centre`` square (``height`` wide) between two ``margin``
    bands. Cut to its centre it is all ``centre``; squashed, it would be mostly ``margin``."""
    x = np.empty((height, width, 3), np.uint8)
    x[:] = COLOURS[margin]
    left = (width - height) // 2
    x[:, left : left + height] = COLOURS[centre]
    return x


def png_bytes(pixels: np.ndarray) -> bytes:
    """``pixels`` `(H, W)` or `(H, W, 3)` uint8 as PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()
