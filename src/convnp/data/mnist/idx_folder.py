"""A folder of the four MNIST IDX files: found, each file's magic number checked, read, or refused in one line.

A folder the user names (``idx_dir=``, ``--mnist-dir`` or ``$CONVNP_MNIST_DIR``) is the only source then: it is
never replaced by the cache or a download, which would train on other data than the user asked for. It fills the
cache only when its files are the published ones and there is no cache yet: a subset of MNIST, or another data set
in its format, must not become what a later plain ``load_mnist()`` returns.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

import convnp.data.mnist.published as published
from convnp.data.idx import gunzip, parse_idx
from convnp.data.mnist.cache import CACHE_FILENAME, mnist_cache_dir, write_cache
from convnp.data.mnist.published import IDX_FILES, KEYS, check_mnist
from convnp.errors import DataError, DataNotFoundError

__all__ = ["named_mnist_folder", "read_mnist_folder"]

logger = logging.getLogger("convnp.data")

# Each file's magic number: two zero bytes, type 0x08 (unsigned byte), then 3 dimensions (N, 28, 28) for images
# or 1 (N,) for labels; 2051 and 2049 read as big-endian integers, as the MNIST page gives them.
_IDX_MAGIC: dict[str, bytes] = {
    "x_train": b"\x00\x00\x08\x03",
    "y_train": b"\x00\x00\x08\x01",
    "x_test": b"\x00\x00\x08\x03",
    "y_test": b"\x00\x00\x08\x01",
}


def named_mnist_folder(idx_dir: str | os.PathLike | None, name: str = "idx_dir") -> tuple[str, str] | None:
    """``(folder, what to call it)`` for the folder the user named: ``idx_dir``, else ``$CONVNP_MNIST_DIR``, else None.

    An empty ``$CONVNP_MNIST_DIR`` counts as unset.
    """
    if idx_dir is not None:
        return os.fspath(idx_dir), name
    if os.environ.get("CONVNP_MNIST_DIR"):
        return os.environ["CONVNP_MNIST_DIR"], "$CONVNP_MNIST_DIR"
    return None


def _find_idx_file(folder: Path, name: str) -> Path | None:
    dotted = name.replace("-idx", ".idx")  # "t10k-images.idx3-ubyte", a common spelling of the same file
    for candidate in (name, name + ".gz", dotted, dotted + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _read_folder_file(path: Path, key: str) -> tuple[np.ndarray, bytes]:
    """One IDX file of a named folder -> (its array, its decompressed bytes), its magic number checked first."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path.name}: cannot be read ({exc.strerror or exc})") from exc
    raw = gunzip(data, path.name) if data[:2] == b"\x1f\x8b" else data
    expected = _IDX_MAGIC[key]
    what = "images" if key.startswith("x") else "labels"
    if len(raw) < 4:
        raise DataError(
            f"{path.name}: is {len(raw)} bytes long, too short for an MNIST {what} file "
            f"(expected the magic number {expected.hex(' ')}, then the sizes and the data)"
        )
    if raw[:4] != expected:
        n_dims = expected[3]
        raise DataError(
            f"{path.name}: is not an MNIST {what} file: its magic number is {raw[:4].hex(' ')}, expected "
            f"{expected.hex(' ')} ({int.from_bytes(expected, 'big')}: unsigned bytes, {n_dims} dimension"
            f"{'s' if n_dims > 1 else ''})"
        )
    return parse_idx(raw, path.name), raw


def _read_idx_folder(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, bytes]]:
    """The four arrays of ``folder``, checked, and each file's decompressed bytes (for the hash check)."""
    if not folder.exists():
        raise DataNotFoundError("no such folder")
    if not folder.is_dir():
        raise DataError("is a file, expected a folder holding the four MNIST IDX files")
    paths = {key: _find_idx_file(folder, name) for key, name in IDX_FILES.items()}
    missing = [IDX_FILES[key] for key, path in paths.items() if path is None]
    if missing:
        present = sorted(p.name for p in folder.iterdir())
        listing = ", ".join(present[:12]) + (", ..." if len(present) > 12 else "") if present else "nothing"
        raise DataNotFoundError(f"lacks {', '.join(missing)} (each may also end in .gz); it holds {listing}")
    arrays, raws = {}, {}
    for key, path in paths.items():
        arrays[key], raws[key] = _read_folder_file(path, key)
    return check_mnist(arrays, {key: path.name for key, path in paths.items()}), raws


def _is_published_mnist(raws: Mapping[str, bytes]) -> bool:
    expected = published.IDX_SHA256  # looked up now, so tests can trust files of their own
    return all(hashlib.sha256(raws[key]).hexdigest() == expected.get(name) for key, name in IDX_FILES.items())


def read_mnist_folder(
    folder: str | os.PathLike,
    *,
    name: str = "idx_dir",
    cache_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read MNIST from a folder of its four IDX files, or refuse the folder; nothing else is tried.

    Parameters
    ----------
    folder : str or os.PathLike
        Holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte``, each optionally gzipped and ending in ``.gz`` (``t10k-images.idx3-ubyte``
        spellings are accepted too). The files are checked for format (magic numbers, sizes, lengths, labels 0-9,
        as many labels as images), not hashed, so another 28x28 data set in MNIST's format (Fashion-MNIST) or a
        subset of MNIST loads as well.
    name : str, default "idx_dir"
        What the caller calls the folder, for the messages: ``"--mnist-dir"``, ``"$CONVNP_MNIST_DIR"``...
    cache_dir : str or os.PathLike, optional
        The cache of :func:`~convnp.data.load_mnist` (see :func:`mnist_cache_dir`). It is never read here; it is
        written only when it does not exist yet and the four files are the published MNIST (their sha256 match).

    Returns
    -------
    x_train, y_train, x_test, y_test : ndarray
        uint8 images ``(N, 28, 28)`` and labels ``(N,)``, in the files' order.

    Raises
    ------
    DataNotFoundError
        If the folder does not exist or lacks one of the files; the message names the missing files and lists
        what the folder holds.
    DataError
        If a file is malformed: ``"{name} {folder}: {file}: {what is wrong}"``, one line.
    """
    if str(folder) == "":
        raise DataNotFoundError(f"{name}: expected a folder holding the four MNIST IDX files, got an empty path")
    path = Path(folder).expanduser()
    try:
        arrays, raws = _read_idx_folder(path)
    except DataError as exc:
        raise type(exc)(f"{name} {folder}: {exc}") from exc
    except OSError as exc:  # a folder that cannot be listed
        raise DataError(f"{name} {folder}: cannot be read ({exc.strerror or exc})") from exc
    logger.info("MNIST read from %s %s", name, folder)
    cache_path = mnist_cache_dir(cache_dir) / CACHE_FILENAME
    if not cache_path.exists() and _is_published_mnist(raws):
        write_cache(cache_path, arrays)
    return tuple(arrays[key] for key in KEYS)  # type: ignore[return-value]
