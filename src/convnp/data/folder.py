"""A folder of image files, one sub-folder per class (torchvision's ``ImageFolder`` layout) -> uint8 arrays.

::

    DIR/cat/001.png          DIR/train/cat/...     (with DIR/train and DIR/test, those are the splits)
    DIR/dog/x.jpg            DIR/test/cat/...

The sub-folders' names, sorted, are the classes: label ``i`` is the i-th name. Files are read in two passes: every
header first (:func:`~convnp.data.image_files.image_header`: size and grey or colour, nothing inflated), which fixes
the common size and channel count, then every pixel (:func:`~convnp.data.image_files.read_image`). Images are
untrusted: a hidden file, a file that is not an image, a damaged one, a decompression bomb, a folder or a link
that leads nowhere where a file should be, is skipped with one logged line (logger ``"convnp.data"``, WARNING) and
counted; a class folder left with no image is a one-line :class:`~convnp.errors.DataError` naming it.

With a ``cache_dir``, the decoded arrays are kept in an ``.npz`` named by a hash of the folder's files (names, sizes,
modification times) and the options, so an unchanged folder is decoded once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convnp.data.image_files import image_header, read_image, resize
from convnp.errors import DataError, DataNotFoundError

__all__ = ["ImageFolder", "held_out", "is_image_folder", "load_image_folder", "scan_image_folder"]

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
    root = Path(path)
    if not root.is_dir():
        raise DataNotFoundError(f"{root}: no such folder, expected one sub-folder of images per class")
    skipped: dict[Path, str] = {}
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: holds no class sub-folder; expected one sub-folder of images per class "
                        "(its name is the class name), as DIR/cat/1.png, DIR/dog/2.png")
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        folder = root / name
        found = 0
        for entry in sorted(folder.iterdir()):
            reason = _not_a_candidate(entry)
            if reason:
                _skip(skipped, entry, reason)
                continue
            files.append((entry, label))
            found += 1
        if found == 0:
            raise DataError(f"{folder}: class folder {name!r} holds no image file")
    return classes, files, skipped


def load_image_folder(path, *, image_size: tuple[int, int] | None = None, channels: int | None = None,
                      classes: list[str] | None = None, cache_dir=None) -> ImageFolder:
    """Decode one split of an image folder into uint8 arrays.

    Parameters
    ----------
    path : str or Path
        A folder with one sub-folder per class (see :func:`scan_image_folder`).
    image_size : (height, width), optional
        Every image is resized to it. Default: the most common size among the files.
    channels : {1, 3}, optional
        1: grey (BT.601 luma), 3: colour (grey files repeated). Default: the most common among the files.
    classes : list of str, optional
        The class names this split must have (a test split's must be the training split's).
    cache_dir : str or Path, optional
        Keep the decoded arrays there (an uncompressed ``.npz``, read with ``allow_pickle=False``), keyed by the
        folder's path, its file list, each file's size and modification time, ``image_size`` and ``channels``: a
        second call with nothing changed reads the cache instead of decoding, a changed folder is decoded again
        (and replaces its old cache). An unreadable cache is decoded over, and a failed write only logged. None:
        no cache.

    Returns
    -------
    ImageFolder
        ``x`` of shape `(N, H, W, C)` uint8, ``y`` of shape `(N,)`, the classes, the files read and those skipped.

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
    names, candidates, skipped = scan_image_folder(root)
    if classes is not None and names != list(classes):
        raise DataError(f"{root}: classes {names} differ from the training split's {list(classes)}; the two splits "
                        "need the same class sub-folders")
    cache = None if cache_dir is None else _cache_file(Path(cache_dir), root, candidates, skipped, image_size, channels)
    result = None if cache is None else _read_cached(cache, root, names)
    if result is None:
        result = _decode_folder(root, names, candidates, skipped, image_size, channels)
        if cache is not None:
            _write_cached(cache, root, result)
    if result.skipped:
        logger.warning("%s: %d file(s) skipped, %d image(s) read", root, len(result.skipped), len(result.files))
    return result


def _decode_folder(root: Path, names, candidates, skipped, image_size, channels) -> ImageFolder:
    """Headers, then the common size and channels, then pixels: the decoding half of :func:`load_image_folder`."""
    headers = {}
    for file, _ in candidates:
        try:
            headers[file] = image_header(file)
        except DataError as err:
            _skip(skipped, file, _reason(err, file))
    _require_every_class(root, names, candidates, headers)
    sizes = Counter(h[:2] for h in headers.values())
    size = tuple(int(s) for s in image_size) if image_size is not None else _most_common(sizes)
    n_channels = channels if channels is not None else _most_common(Counter(h[2] for h in headers.values()))
    x, y, files = _decode(candidates, headers, size, n_channels, skipped)
    _require_every_class(root, names, [(f, label) for f, label in zip(files, y)], dict.fromkeys(files))
    return ImageFolder(x, y, names, files, skipped)


def _decode(candidates, headers, size, n_channels, skipped) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Read every file whose header was read -> x `(N, H, W, C)` uint8, y `(N,)` int64, the files read."""
    images, labels, files = [], [], []
    for file, label in candidates:
        if file not in headers:
            continue
        try:
            pixels = read_image(file, rgb=n_channels == 3)  # (H, W) or (H, W, 3), float64 in [0, 255]
        except DataError as err:
            _skip(skipped, file, _reason(err, file))
            continue
        pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
        images.append(resize(pixels if pixels.ndim == 3 else pixels[..., None], size))
        labels.append(label)
        files.append(file)
    x = np.stack(images) if images else np.zeros((0, *size, n_channels), dtype=np.uint8)
    return x, np.array(labels, dtype=np.int64), files


def _not_a_candidate(entry: Path) -> str | None:
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


def _reason(err: DataError, file: Path) -> str:
    """A DataError's message without the leading ``"path: "``."""
    text = str(err)
    prefix = f"{file}: "
    return text[len(prefix):] if text.startswith(prefix) else text


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


# ---- the cache of a decoded folder -----------------------------------------------------------------------------------
_CACHE_VERSION = 1
_CACHE_KEYS = ("x", "y", "classes", "files", "skipped_files", "skipped_reasons")


def _cache_file(cache_dir: Path, root: Path, candidates, skipped, image_size, channels) -> Path:
    """``cache_dir/<folder hash>-<content hash>.npz``: the content hash covers every file's name, size and
    modification time, the skipped entries and the options, so any change gives another name."""
    def stamp(file: Path) -> list:
        try:
            st = file.stat()
            return [str(file.relative_to(root)), st.st_size, st.st_mtime_ns]
        except OSError:
            return [str(file.relative_to(root)), -1, -1]

    content = json.dumps({
        "version": _CACHE_VERSION, "image_size": None if image_size is None else [int(s) for s in image_size],
        "channels": channels, "files": [[*stamp(f), label] for f, label in candidates],
        "skipped": sorted(str(p.relative_to(root)) for p in skipped),
    })
    folder = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir / f"{folder}-{hashlib.sha256(content.encode()).hexdigest()[:24]}.npz"


def _read_cached(cache: Path, root: Path, names: list[str]) -> ImageFolder | None:
    """The folder as cached, or None (no cache, or one that fails its checks: logged, then decoded over)."""
    if not cache.is_file():
        return None
    try:
        with np.load(cache, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in _CACHE_KEYS}
        x, y = arrays["x"], arrays["y"]
        if x.dtype != np.uint8 or x.ndim != 4 or y.shape != (len(x),) or arrays["classes"].tolist() != names:
            raise ValueError("arrays of the wrong shape, type or classes")
    except Exception as err:  # noqa: BLE001 - a damaged cache is only a slower start
        logger.warning("folder cache %s unreadable (%s: %s); decoding %s again", cache, type(err).__name__, err, root)
        return None
    logger.info("%s read from its cache %s", root, cache)
    skipped = dict(zip((root / p for p in arrays["skipped_files"].tolist()), arrays["skipped_reasons"].tolist()))
    return ImageFolder(x, y.astype(np.int64), names, [root / p for p in arrays["files"].tolist()], skipped)


def _write_cached(cache: Path, root: Path, result: ImageFolder) -> None:
    """Write ``cache`` atomically and remove the folder's older caches; a failure is logged, never raised."""
    tmp = None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=".folder-", suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, x=result.x, y=result.y, classes=np.array(result.classes, dtype=str),
                     files=np.array([str(p.relative_to(root)) for p in result.files], dtype=str),
                     skipped_files=np.array([str(p.relative_to(root)) for p in result.skipped], dtype=str),
                     skipped_reasons=np.array(list(result.skipped.values()), dtype=str))
        os.replace(tmp, cache)
        tmp = None
        for old in cache.parent.glob(f"{cache.name.split('-')[0]}-*.npz"):
            if old != cache:
                old.unlink(missing_ok=True)
    except OSError as err:
        logger.warning("could not write the folder cache %s (%s); the images were decoded all the same", cache, err)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
