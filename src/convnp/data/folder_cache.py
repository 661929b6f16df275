"""The cache of a decoded image folder: its pixels in a ``.npy`` file that training memory-maps, its index beside.

::

    <cache_dir>/<folder hash>-<content hash>/x.npy       (N, H, W, C) uint8, written a chunk at a time
    <cache_dir>/<folder hash>-<content hash>/index.npz   y, classes, files, skipped files and their reasons

The content hash covers every file's name, size and modification time, the entries skipped before decoding and the
options (:func:`cache_path`), so a changed folder gets another name and is decoded again; the folder's older
caches are then removed. Both files are read with ``allow_pickle=False``. A cache is written into a temporary
folder and renamed into place whole, so a reader sees a complete cache or none.

The pixels are streamed to disk as they are decoded (:class:`PixelWriter`) rather than gathered in memory: decoding a
folder larger than memory needs only a chunk's worth, and reading it back is a memory map, so training holds a
batch in memory, not the data set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

__all__ = [
    "PixelWriter", "cache_path", "new_cache_folder", "read_cache", "relative_name", "remove_older", "write_index",
]

logger = logging.getLogger("convnp.data")

#: Bumped whenever what a cache holds changes meaning, so older caches are decoded over.
CACHE_VERSION = 3
_INDEX_KEYS = ("y", "classes", "files", "skipped_files", "skipped_reasons")

# A fixed header length leaves room for any shape, so the real image count can be written after the pixels.
_HEADER_BYTES = 128
_NPY_MAGIC = b"\x93NUMPY\x01\x00"


def relative_name(file: Path) -> str:
    """``"class/file.png"``: a file's name within its split, as the cache and the held-out split know it (a class
    folder's files lie directly in it)."""
    return f"{file.parent.name}/{file.name}"


def cache_path(cache_dir: Path, root: Path, stamps, candidates, skipped, image_size, channels) -> Path:
    """``cache_dir/<folder hash>-<content hash>``: the folder's path, then its files (name, size, modification
    time, label), the entries skipped before decoding and the options.

    Parameters
    ----------
    stamps : list of N ``[relative name, size, modification time in ns]``, the files in the order of ``candidates``
    candidates : list of N (Path, int), the files to decode and their labels
    skipped : dict of Path -> str
    image_size : (height, width) or None; channels : 1, 3 or None (None: chosen from the files)
    """
    content = json.dumps({
        "version": CACHE_VERSION, "image_size": None if image_size is None else [int(s) for s in image_size],
        "channels": channels, "files": [[*stamp, label] for stamp, (_, label) in zip(stamps, candidates)],
        "skipped": sorted(relative_name(p) for p in skipped),
    })
    folder = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir / f"{folder}-{hashlib.sha256(content.encode()).hexdigest()[:24]}"


def read_cache(cache: Path, names: list[str]) -> dict | None:
    """The cached folder, or None (no cache, or one failing its checks: logged, then decoded over).

    Returns
    -------
    dict with ``x`` (a read-only memory map of shape `(N, H, W, C)`, uint8), ``y`` `(N,)` int64, and ``files``,
    ``skipped_files``, ``skipped_reasons`` (lists of str; files as ``"class/file.png"``)
    """
    if not (cache / "x.npy").is_file():
        return None
    try:
        x = np.load(cache / "x.npy", mmap_mode="r", allow_pickle=False)
        with np.load(cache / "index.npz", allow_pickle=False) as npz:
            index = {key: npz[key] for key in _INDEX_KEYS}
        if x.dtype != np.uint8 or x.ndim != 4 or index["y"].shape != (len(x),) or index["classes"].tolist() != names:
            raise ValueError("arrays of the wrong shape, type or classes")
    except Exception as err:  # noqa: BLE001 - a damaged cache is only a slower start
        logger.warning("folder cache %s unreadable (%s: %s); decoding again", cache, type(err).__name__, err)
        return None
    return {"x": x, "y": index["y"].astype(np.int64), **{k: index[k].tolist() for k in _INDEX_KEYS[2:]}}


class PixelWriter:
    """Images appended a chunk at a time to a ``.npy`` file of shape `(N, H, W, C)`, uint8, N counted as they come.

    The header is rewritten with the final count by :meth:`close`; until then the file is not a valid array.
    """

    def __init__(self, path: Path, image_shape: tuple[int, int, int]):
        self.path = Path(path)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.count = 0
        self._file = open(self.path, "wb")
        self._file.write(_npy_header((0, *self.image_shape)))

    def append(self, images: np.ndarray) -> None:
        """Write ``images`` of shape `(k, H, W, C)`, uint8, after those written before."""
        if images.dtype != np.uint8 or images.shape[1:] != self.image_shape:
            raise ValueError(f"PixelWriter.append: expected uint8 images of shape (k, *{self.image_shape}), got "
                             f"{images.dtype} {images.shape}")
        self._file.write(np.ascontiguousarray(images).data)
        self.count += len(images)

    def close(self) -> None:
        self._file.seek(0)
        self._file.write(_npy_header((self.count, *self.image_shape)))
        self._file.close()

    def abort(self) -> None:
        self._file.close()


def _npy_header(shape: tuple) -> bytes:
    """A version 1.0 ``.npy`` header for a C-ordered uint8 array of ``shape``, always :data:`_HEADER_BYTES` long.

    The format (NumPy's ``numpy.lib.format``): the magic string and version, the dictionary's length as a
    little-endian uint16, then the dictionary as a Python literal padded with spaces and ended by a newline.
    """
    text = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {tuple(int(d) for d in shape)}, }}"
    room = _HEADER_BYTES - len(_NPY_MAGIC) - 2
    if len(text) + 1 > room:
        raise ValueError(f"_npy_header: shape {shape} does not fit a {_HEADER_BYTES}-byte header")
    return _NPY_MAGIC + struct.pack("<H", room) + text.ljust(room - 1).encode("latin1") + b"\n"


def new_cache_folder(cache: Path) -> Path:
    """A temporary folder beside ``cache`` to write it into (renamed into place by :func:`write_index`)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=cache.parent, prefix=f".{cache.name}-", suffix=".tmp"))


def write_index(tmp: Path, cache: Path, y, classes, files, skipped: dict) -> bool:
    """Write ``index.npz`` into ``tmp`` (whose ``x.npy`` is complete) and rename ``tmp`` to ``cache``. Files are
    stored by :func:`relative_name`.

    Returns whether ``cache`` now holds this folder's cache. Another process may have written the same cache first
    (both decoding one folder): then its copy is kept and ``tmp`` removed. Failures are logged, never raised.
    """
    def relative(paths) -> np.ndarray:
        return np.array([relative_name(p) for p in paths], dtype=str)

    try:
        with open(tmp / "index.npz", "wb") as f:
            np.savez(f, y=np.asarray(y, dtype=np.int64), classes=np.array(classes, dtype=str), files=relative(files),
                     skipped_files=relative(skipped), skipped_reasons=np.array(list(skipped.values()), dtype=str))
        try:
            os.rename(tmp, cache)
        except OSError:
            if not (cache / "index.npz").is_file():
                raise
        return True
    except OSError as err:
        logger.warning("could not write the folder cache %s (%s); the images were decoded all the same", cache, err)
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_older(cache: Path) -> None:
    """Remove the caches of the same folder other than ``cache`` (a folder's content changed: its old decode)."""
    folder = cache.name.split("-")[0]
    for old in cache.parent.glob(f"{folder}-*"):
        if old != cache and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
