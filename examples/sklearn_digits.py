"""A real data set from a package registry, end to end: scikit-learn's 1,797 handwritten 8x8 digits as an .npz.

    python examples/sklearn_digits.py [--out DIR] [--pngs K]
    convnp train --data digits8x8.npz --model examples/tiny8.json --epochs 30 --out runs/digits8
    convnp evaluate runs/digits8 --data digits8x8.npz

scikit-learn ships the UCI "Optical Recognition of Handwritten Digits" test set (Alpaydin and Kaynak, 1998) inside
its wheel as ``sklearn/datasets/data/digits.csv.gz``: one row per image, 64 pixel values 0..16 (the ink counted in
4x4 blocks of a 32x32 bitmap) and then the label 0..9. This script fetches that wheel with ``pip download`` (never
installing it, and never importing scikit-learn), checks the member's SHA-256 against the one pinned below, so a
changed file is refused, and reads it with :mod:`zipfile`. The checked member is cached (57 KB) in
``sklearn-digits/`` of convnp's data cache (``$CONVNP_DATA``, else ``$XDG_CACHE_HOME/convnp``, else
``~/.cache/convnp``), so only the first run downloads the 13 MB wheel.

It writes ``DIR/digits8x8.npz`` (default: the current folder) with

- ``x`` `(1438, 8, 8)` and ``x_test`` `(359, 8, 8)`, uint8: the 0..16 values scaled to 0..255 (``round(v * 255 / 16)``);
- ``y``, ``y_test``: the class names ``"zero" .. "nine"`` as strings;
- ``classes``: ``"zero" .. "nine"``, so class ``i`` is the digit ``i`` (without it the names would be numbered in
  alphabetical order, ``"eight"`` first);

the test split being a fixed 20% of the images (359) chosen by ``np.random.default_rng(seed).permutation``, seed 0
unless ``--seed`` says otherwise, each split kept in the file's order. ``--pngs K`` also writes the first K test
images as 8x8 grey PNGs (``DIR/digits8x8-png/INDEX-NAME.png``, needs Pillow) to try ``convnp predict`` on.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from convnp.data import mnist_cache_dir

# One exact wheel: only its data file is read, so the same Linux wheel serves on any platform and Python.
REQUIREMENT = "scikit-learn==1.5.2"
WHEEL_TAGS = ["--platform", "manylinux_2_17_x86_64", "--python-version", "3.11", "--implementation", "cp",
              "--abi", "cp311"]
MEMBER = "sklearn/datasets/data/digits.csv.gz"
MEMBER_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
N_IMAGES = 1797
PIP_TIMEOUT_S = 300


def digits_cache_dir(cache_dir=None) -> Path:
    """Where the checked ``digits.csv.gz`` is kept: ``sklearn-digits/`` of convnp's data cache."""
    return mnist_cache_dir(cache_dir) / "sklearn-digits"


def _check(data: bytes, where: str) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    if digest != MEMBER_SHA256:
        raise ValueError(f"{where} has sha256 {digest}, expected {MEMBER_SHA256}; refusing it")
    return data


def download_member(timeout: float = PIP_TIMEOUT_S) -> bytes:
    """``digits.csv.gz`` from the pinned wheel, fetched by pip into a temporary folder; its SHA-256 checked."""
    with tempfile.TemporaryDirectory(prefix="convnp-sklearn-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
                   "--progress-bar", "off", *WHEEL_TAGS, "-d", tmp, REQUIREMENT]
        try:
            subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
        except subprocess.CalledProcessError as err:
            tail = " | ".join(line for line in (err.stderr or "").splitlines()[-3:] if line.strip())
            raise RuntimeError(f"`pip download {REQUIREMENT}` exited with status {err.returncode}: {tail}") from None
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"`pip download {REQUIREMENT}` did not finish within {timeout:g} s") from None
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            return _check(archive.read(MEMBER), f"{wheel.name}:{MEMBER}")


def fetch(cache_dir=None) -> bytes:
    """The checked ``digits.csv.gz``: from the cache, else downloaded and then cached (written atomically)."""
    folder = digits_cache_dir(cache_dir)
    path = folder / "digits.csv.gz"
    if path.is_file():
        try:
            return _check(path.read_bytes(), str(path))
        except ValueError as err:
            print(f"{err}; fetching it again", file=sys.stderr)
    data = download_member()
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    return data


def parse(csv_gz: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``digits.csv.gz`` -> images `(1797, 8, 8)` uint8 0..255 and digits `(1797,)` int64 0..9, checked."""
    table = np.loadtxt(io.StringIO(gzip.decompress(csv_gz).decode("ascii")), delimiter=",")  # (1797, 65)
    if table.shape != (N_IMAGES, 65):
        raise ValueError(f"digits.csv.gz: expected {N_IMAGES} rows of 64 pixels and a label, got shape {table.shape}")
    pixels, digits = table[:, :64], table[:, 64]
    if not (np.array_equal(pixels, np.round(pixels)) and pixels.min() >= 0 and pixels.max() <= 16):
        raise ValueError("digits.csv.gz: pixels must be whole numbers 0..16")
    if not set(np.unique(digits)) <= set(range(10)):
        raise ValueError("digits.csv.gz: labels must be the digits 0..9")
    x = np.round(pixels * 255 / 16).astype(np.uint8).reshape(N_IMAGES, 8, 8)  # (1797, 64) -> (1797, 8, 8)
    return x, digits.astype(np.int64)


def split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and test images: a seeded random ``test_fraction`` held out, each in file order."""
    n_test = round(test_fraction * n)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def write_pngs(folder: Path, x: np.ndarray, names: np.ndarray, k: int) -> list[Path]:
    """The first ``k`` images of ``x`` `(N, 8, 8)` as grey PNGs named ``INDEX-NAME.png``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i}-{names[i]}.png" for i in range(min(k, len(x)))]
    for i, path in enumerate(paths):
        Image.fromarray(x[i]).save(path)  # (8, 8) uint8: a grey ("L") image
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("."), help="folder to write digits8x8.npz into")
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default: convnp's data cache)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share of the images held out as test")
    parser.add_argument("--seed", type=int, default=0, help="seed of the Generator that picks the test images")
    parser.add_argument("--pngs", type=int, default=0, metavar="K", help="also write the first K test images as PNGs")
    args = parser.parse_args(argv)
    if not 0 < args.test_fraction < 1:
        parser.error(f"--test-fraction must be between 0 and 1, got {args.test_fraction}")

    print(f"cache: {digits_cache_dir(args.cache)}")
    try:
        x, digits = parse(fetch(args.cache))
    except (RuntimeError, ValueError, OSError, zipfile.BadZipFile, KeyError) as err:
        print(f"sklearn_digits: error: {err}", file=sys.stderr)
        return 1
    names = np.array(NAMES)[digits]  # (1797,) str
    train, test = split(len(x), args.test_fraction, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "digits8x8.npz"
    np.savez_compressed(path, x=x[train], y=names[train], x_test=x[test], y_test=names[test], classes=np.array(NAMES))
    print(f"wrote {path}: {len(train)} training and {len(test)} test images of 8x8, classes {', '.join(NAMES)}")
    if args.pngs:
        pngs = write_pngs(args.out / "digits8x8-png", x[test], names[test], args.pngs)
        print(f"wrote {len(pngs)} test image(s) as PNG: {pngs[0].parent}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
