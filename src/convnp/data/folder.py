"""A folder of image files, one sub-folder per class (torchvision's ``ImageFolder`` layout) -> uint8 arrays.

::

    DIR/cat/001.png          DIR/train/cat/...     (with DIR/train and DIR/test, those are the splits)
    DIR/dog/x.jpg            DIR/test/cat/...

The sub-folders' names, sorted, are the classes: label ``i`` is the i-th name. Files are read in two passes: every
header first (:func:`~convnp.data.image_files.image_header`: size and grey or colour, nothing inflated), which fixes
the common size and channel count, then every pixel (:func:`~convnp.data.image_files.read_image`), both passes
spread over worker processes (:mod:`~convnp.data.folder_decode`). Images are
untrusted: a hidden file, a file that is not an image, a damaged one, a decompression bomb, a folder or a link
that leads nowhere where a file should be, is skipped with one logged line (logger ``"convnp.data"``, WARNING) and
counted; a class folder left with no image is a one-line :class:`~convnp.errors.DataError` naming it.

With a ``cache_dir``, the decoded pixels are streamed to a ``.npy`` file named by a hash of the folder's files (names,
sizes, modification times) and the options (:mod:`~convnp.data.folder_cache`), so an unchanged folder is decoded
once, and read back as a memory map: a folder larger than memory can be decoded and trained on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convnp.data.folder_cache import (
    PixelWriter, cache_path, new_cache_folder, read_cache, relative_name, remove_older, write_index,
)
from convnp.data.folder_decode import PIXEL_CHUNK, Progress, decode_pixels, default_processes, read_headers
from convnp.errors import DataError, DataNotFoundError

__all__ = ["ImageFolder", "held_out", "is_image_folder", "load_image_folder", "relative_name", "scan_image_folder"]

logger = logging.getLogger("convnp.data")


@dataclass
class ImageFolder:
    """One split of an image folder, decoded.

    Attributes
    ----------
    x : ndarray of shape `(N, H, W, C)`, uint8
    y : ndarray of shape `(N,)`, int64; ``classes[y[i]]`` names image ``i``
    classes : list of K str
        The class sub-folders' names, sorted.
    files : list of N Path
        The file each image came from, in the order of ``x``.
    skipped : dict of Path -> str
        Files left out, with the reason (hidden, not an image, damaged, ...).
    """

    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    files: list[Path] = field(default_factory=list)
    skipped: dict[Path, str] = field(default_factory=dict)


def held_out(names, fraction: float) -> np.ndarray:
    """Which files a test split of ``fraction`` holds out, decided by each file's name alone.

    A file is held out when the SHA-256 of its name (``"class/file.png"``), read as a number in [0, 1), is below
    ``fraction``: no seed is needed to find the split again (``convnp evaluate`` does), and adding or removing files
    never moves the others between the splits.

    Parameters
    ----------
    names : list of N str, the files' paths relative to the folder
    fraction : float in [0, 1)

    Returns
    -------
    ndarray of shape `(N,)`, bool; True: in the test split
    """
    top = float(2**64)
    draws = [int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / top for name in names]
    return np.array(draws, dtype=np.float64).reshape(-1) < fraction


def is_image_folder(path) -> bool:
    """Whether ``path`` is a folder (to be read by :func:`load_image_folder`) rather than a file."""
    return Path(path).is_dir()


def scan_image_folder(path) -> tuple[list[str], list[tuple[Path, int]], dict[Path, str]]:
    """The classes and candidate files of one split, before anything is opened.

    Parameters
    ----------
    path : str or Path
        A folder with one sub-folder per class.

    Returns
    -------
    classes : list of K str, the sub-folders' names, sorted (hidden sub-folders are not classes)
    files : list of (Path, int), each file with its label, sorted by class then name
    skipped : dict of Path -> str, the hidden files and the entries that are not files (each logged)

    Raises
    ------
    DataNotFoundError
        No such folder.
    DataError
        No class sub-folder, or a class sub-folder with no file at all.
    """
    classes, files, skipped, _ = _scan(Path(path))
    return classes, files, skipped


def _scan(root: Path) -> tuple:
    """:func:`scan_image_folder`'s work, plus each file's ``[relative name, size, modification time]`` (the cache's
    key), read from the directory listing: one ``stat`` a file, no path parsing beyond making its Path."""
    if not root.is_dir():
        raise DataNotFoundError(f"{root}: no such folder, expected one sub-folder of images per class")
    skipped: dict[Path, str] = {}
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: holds no class sub-folder; expected one sub-folder of images per class "
                        "(its name is the class name), as DIR/cat/1.png, DIR/dog/2.png")
    files: list[tuple[Path, int]] = []
    stamps: list[list] = []
    for label, name in enumerate(classes):
        folder = root / name
        with os.scandir(folder) as listing:  # DirEntry knows a regular file without a stat call each
            entries = sorted(listing, key=lambda e: e.name)
        found = len(files)
        for entry in entries:
            reason = _not_a_candidate(entry)
            if reason:
                _skip(skipped, folder / entry.name, reason)
                continue
            files.append((folder / entry.name, label))  # 6x quicker than parsing entry.path whole
            stamps.append(_stamp(entry, name))
        if len(files) == found:
            raise DataError(f"{folder}: class folder {name!r} holds no image file")
    return classes, files, skipped, stamps


def _stamp(entry: os.DirEntry, class_name: str) -> list:
    """``[class/file, size, modification time in ns]`` of a file, or -1s when it cannot be read."""
    try:
        st = entry.stat()
        return [f"{class_name}/{entry.name}", st.st_size, st.st_mtime_ns]
    except OSError:
        return [f"{class_name}/{entry.name}", -1, -1]


def load_image_folder(path, *, image_size: tuple[int, int] | None = None, channels: int | None = None,
                      classes: list[str] | None = None, cache_dir=None, processes: int | None = None,
                      progress=None) -> ImageFolder:
    """Decode one split of an image folder into uint8 arrays.

    Parameters
    ----------
    path : str or Path
        A folder with one sub-folder per class (see :func:`scan_image_folder`).
    image_size : (height, width), optional
        Every image is brought to it, keeping its aspect ratio (scaled to cover, then centre-cropped:
        :func:`~convnp.data.image_files.fit_image`). Default: the most common size among the files.
    channels : {1, 3}, optional
        1: grey (BT.601 luma), 3: colour (grey files repeated). Default: the most common among the files.
    classes : list of str, optional
        The class names this split must have (a test split's must be the training split's).
    cache_dir : str or Path, optional
        Keep the decoded pixels there (:mod:`~convnp.data.folder_cache`), keyed by the folder's path, its file
        list, each file's size and modification time, ``image_size`` and ``channels``: a second call with nothing
        changed memory-maps the cache instead of decoding, a changed folder is decoded again (and replaces its old
        cache). An unreadable cache is decoded over, a failed write only logged. None: ``x`` in memory.
    processes : int, optional
        Worker processes decoding the files (default: one per CPU this process may use).
    progress : file, optional
        Where a progress bar (on a terminal) or a closing summary line goes; None: silent.

    Returns
    -------
    ImageFolder
        ``x`` of shape `(N, H, W, C)` uint8 (read-only and memory-mapped when cached), ``y`` of shape `(N,)`,
        the classes, the files read and those skipped.

    Raises
    ------
    DataError
        A one-line message naming the folder: no class sub-folder, a class folder with no readable image, classes
        that differ from ``classes``, an invalid ``image_size`` or ``channels``.
    """
    root = Path(path)
    if channels not in (None, 1, 3):
        raise DataError(f"channels: expected 1 (grey) or 3 (colour), got {channels!r}")
    if image_size is not None and (len(image_size) != 2 or min(int(s) for s in image_size) < 1):
        raise DataError(f"image_size: expected (height, width), each at least 1, got {image_size!r}")
    names, candidates, skipped, stamps = _scan(root)
    if classes is not None and names != list(classes):
        raise DataError(f"{root}: classes {names} differ from the training split's {list(classes)}; the two splits "
                        "need the same class sub-folders")
    cache = None if cache_dir is None else cache_path(Path(cache_dir), root, stamps, candidates, skipped,
                                                      image_size, channels)
    cached = None if cache is None else read_cache(cache, names)
    if cached is not None:
        logger.info("%s read from its cache %s", root, cache)
        by_name = {stamp[0]: f for stamp, (f, _) in zip(stamps, candidates)} | {relative_name(f): f for f in skipped}
        result = ImageFolder(cached["x"], cached["y"], names, [by_name[p] for p in cached["files"]],
                             dict(zip((by_name[p] for p in cached["skipped_files"]), cached["skipped_reasons"])))
    else:
        result = _decode_folder(root, names, candidates, skipped, (image_size, channels), cache, processes, progress)
    if result.skipped:
        logger.warning("%s: %d file(s) skipped, %d image(s) read", root, len(result.skipped), len(result.files))
    return result


def _decode_folder(root: Path, names, candidates, skipped, options, cache, processes, progress) -> ImageFolder:
    """Headers, then the common size and channels, then pixels (into ``cache`` when given, memory-mapped back):
    the decoding half of :func:`load_image_folder`."""
    readable, size, n_channels = _read_headers(root, names, candidates, skipped, options, processes)
    bar = Progress(str(root), len(readable), progress)
    tmp = _cache_folder(cache)
    store = _Store(tmp, (*size, n_channels))
    try:
        reasons = decode_pixels([f for f, _ in readable], size, n_channels, store.append, processes=processes,
                                progress=bar)
        x = store.finish()
    except BaseException:
        store.abort()
        raise
    kept = [(file, label) for (file, label), reason in zip(readable, reasons) if reason is None]
    bar.finish(min(processes or default_processes(), max(1, -(-len(readable) // PIXEL_CHUNK))), len(kept))
    for (file, _), reason in zip(readable, reasons):
        if reason is not None:
            _skip(skipped, file, reason)
    y = np.array([label for _, label in kept], dtype=np.int64)
    files = [file for file, _ in kept]
    try:
        _require_every_class(root, names, kept, dict.fromkeys(files))
    except DataError:
        store.abort()  # no half-made cache left behind
        raise
    if tmp is not None and write_index(tmp, cache, y, names, files, skipped):
        remove_older(cache)
        x = np.load(cache / "x.npy", mmap_mode="r", allow_pickle=False)
    return ImageFolder(x, y, names, files, skipped)


def _read_headers(root: Path, names, candidates, skipped, options, processes) -> tuple:
    """Every candidate's header -> ``(readable candidates, (height, width), channels)``, the size and channels
    ``options`` asks for or else the most common; unreadable files go to ``skipped``."""
    image_size, channels = options
    files = [file for file, _ in candidates]
    headers = {}
    for file, header in zip(files, read_headers(files, processes)):
        if isinstance(header, str):
            _skip(skipped, file, header)
        else:
            headers[file] = header
    _require_every_class(root, names, candidates, headers)
    size = tuple(int(s) for s in image_size) if image_size is not None else _most_common(
        Counter(h[:2] for h in headers.values()))
    n_channels = channels if channels is not None else _most_common(Counter(h[2] for h in headers.values()))
    return [(file, label) for file, label in candidates if file in headers], size, n_channels


def _cache_folder(cache: Path | None) -> Path | None:
    """A temporary folder to decode ``cache`` into, or None (no cache asked for, or none can be made: logged).

    An old cache of that name is one :func:`~convnp.data.folder_cache.read_cache` refused: it is removed first."""
    if cache is None:
        return None
    try:
        shutil.rmtree(cache, ignore_errors=True)
        return new_cache_folder(cache)
    except OSError as err:
        logger.warning("cannot write the folder cache %s (%s); decoding into memory", cache, err)
        return None


class _Store:
    """Where decoded chunks go: a :class:`~convnp.data.folder_cache.PixelWriter` in ``tmp``, else a list in memory."""

    def __init__(self, tmp: Path | None, image_shape: tuple[int, int, int]):
        self.image_shape = image_shape
        self.chunks: list[np.ndarray] = []
        self.writer = None if tmp is None else PixelWriter(tmp / "x.npy", image_shape)

    def append(self, images: np.ndarray) -> None:
        if self.writer is not None:
            self.writer.append(images)
        else:
            self.chunks.append(images)

    def finish(self) -> np.ndarray | None:
        """The images in memory `(N, H, W, C)` uint8, or None when written to the cache (memory-mapped after)."""
        if self.writer is not None:
            self.writer.close()
            return np.load(self.writer.path, mmap_mode="r", allow_pickle=False)
        return np.concatenate(self.chunks) if self.chunks else np.zeros((0, *self.image_shape), dtype=np.uint8)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            shutil.rmtree(self.writer.path.parent, ignore_errors=True)


def _not_a_candidate(entry: os.DirEntry) -> str | None:
    """Why ``entry`` of a class folder is not even opened (hidden, a folder, a link to nowhere), or None."""
    if entry.name.startswith("."):
        return "hidden file"
    try:
        if entry.is_dir():
            return "a folder, not an image file"
        if not entry.is_file():
            return "not a regular file (a broken or looping link?)"
    except OSError as err:  # a symlink loop raises ELOOP on some Pythons
        return f"cannot be read ({err.strerror or err})"
    return None


def _skip(skipped: dict, file: Path, reason: str) -> None:
    skipped[file] = reason
    logger.warning("skipped %s: %s", file, reason)


def _require_every_class(root: Path, names, candidates, readable) -> None:
    """A one-line DataError naming the first class folder none of whose files is in ``readable``."""
    have = {label for file, label in candidates if file in readable}
    for label, name in enumerate(names):
        if label not in have:
            raise DataError(f"{root / name}: class folder {name!r} holds no readable image")


def _most_common(counts: Counter):
    """The most common key; ties go to the largest (the larger size, colour over grey), so the choice is stable."""
    top = max(counts.values())
    return max(key for key, n in counts.items() if n == top)
