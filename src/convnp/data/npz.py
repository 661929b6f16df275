"""Load users' own image data sets from ``.npz`` files, without ever unpickling."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from convnp.errors import DataError, DataNotFoundError

__all__ = ["load_npz"]

# (x, y) key pairs looked for, in order of preference.
_KEY_PAIRS = (("x", "y"), ("x_train", "y_train"))


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    """Open ``path`` as an ``.npz`` archive with ``allow_pickle=False``, with errors that say what is wrong."""
    if not path.exists():
        raise DataNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: is not a file, expected an .npz archive")
    # np.load on a non-zip, non-.npy file reports "pickled data" even for a text file; check the signature first.
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: is not an .npz archive (no zip signature); save arrays with np.savez(path, x=x, y=y)")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: could not be read as an .npz archive ({exc})") from exc


def _read_array(npz: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    """Read one member; an object array is refused by NumPy with allow_pickle=False and reported here."""
    try:
        return npz[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError(
                f"{path}: array {key!r} holds Python objects (dtype=object), which convnp will not unpickle; "
                "save a numeric array instead"
            ) from exc
        raise DataError(f"{path}: array {key!r} could not be read ({exc})") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: array {key!r} could not be read ({exc})") from exc


def _check_x(x: np.ndarray, key: str, path: Path) -> np.ndarray:
    """Validate images; return them as ``(N, H, W, C)``."""
    if x.ndim not in (3, 4):
        raise DataError(f"{path}: {key} has shape {x.shape} but expected (N, H, W) or (N, H, W, C)")
    if 0 in x.shape:
        raise DataError(f"{path}: {key} has shape {x.shape}; every dimension must be at least 1")
    if x.dtype.kind not in "uif":
        raise DataError(
            f"{path}: {key} has dtype {x.dtype} but expected a real number type (uint8 pixels, or float); "
            "bool, complex, string and object arrays are not images"
        )
    if x.dtype.kind == "f":
        finite = np.isfinite(x)
        if not finite.all():
            n_bad = int(x.size - np.count_nonzero(finite))
            first = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise DataError(f"{path}: {key} has {n_bad} non-finite values (NaN or inf), the first at index {first}")
    if x.ndim == 3:
        x = x[..., np.newaxis]  # (N, H, W) -> (N, H, W, 1): one channel, the package's channels-last layout
    return x


def _check_y(y: np.ndarray, key: str, n_samples: int, x_key: str, path: Path) -> np.ndarray:
    """Validate labels; return them as int64 of shape ``(N,)``."""
    if y.ndim != 1:
        raise DataError(f"{path}: {key} has shape {y.shape} but expected (N,), one class index per image")
    if y.dtype.kind not in "ui":
        hint = " (cast with y.astype(np.int64))" if y.dtype.kind == "f" else ""
        raise DataError(f"{path}: {key} has dtype {y.dtype} but expected integer class indices{hint}")
    if len(y) != n_samples:
        raise DataError(
            f"{path}: inconsistent numbers of samples: {x_key} has {n_samples} images but {key} has {len(y)} labels"
        )
    if y.size:
        low, high = int(y.min()), int(y.max())
        if low < 0:
            index = int(np.argmin(y))
            raise DataError(f"{path}: {key} must be >= 0 (class indices), found {low} at index {index}")
        if high > np.iinfo(np.int64).max:
            raise DataError(f"{path}: {key} holds {high}, too large for an int64 class index")
    return y.astype(np.int64)


def load_npz(path: str | os.PathLike, keys: tuple[str, str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load an image classification data set from an ``.npz`` file.

    The file must hold arrays ``x`` and ``y``; if it has no ``x``, the pair ``x_train`` and ``y_train`` is used
    instead (the layout of ``mnist.npz`` and Keras-style files). It is read with ``allow_pickle=False``: arrays of
    Python objects are refused, never unpickled.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file, e.g. written by ``np.savez(path, x=x, y=y)``.
    keys : (str, str), optional
        Read this pair of arrays instead, e.g. ``("x_test", "y_test")``.

    Returns
    -------
    x : ndarray of shape ``(N, H, W, C)``
        The images, channels-last, in their stored dtype (integer or float). A stored ``(N, H, W)`` array gets a
        channel axis of size 1.
    y : ndarray of shape ``(N,)``, int64
        Class indices, ``>= 0``.

    Raises
    ------
    DataNotFoundError
        If ``path`` does not exist.
    DataError
        If the file is not an ``.npz`` archive, lacks the arrays, or they fail the checks: ``x`` must be 3-D or
        4-D with no empty axis, of an integer or float dtype, all finite; ``y`` must be 1-D, integer, ``>= 0``,
        one label per image. The message names the file, the array, what was expected and what was found.

    Examples
    --------
    >>> np.savez("digits.npz", x=images, y=labels)  # doctest: +SKIP
    >>> x, y = load_npz("digits.npz")  # doctest: +SKIP
    >>> x.shape  # doctest: +SKIP
    (1797, 8, 8, 1)
    """
    path = Path(path)
    with _open_npz(path) as npz:
        names = set(npz.files)
        for x_key, y_key in (keys,) if keys else _KEY_PAIRS:
            if x_key in names:
                break
        else:
            found = ", ".join(sorted(names)) or "no arrays"
            wanted = f"{keys[0]!r} and {keys[1]!r}" if keys else "'x' and 'y' (or 'x_train' and 'y_train')"
            raise DataError(f"{path}: expected arrays {wanted}, found {found}")
        if y_key not in names:
            raise DataError(f"{path}: has array {x_key!r} but no {y_key!r}; expected the labels in {y_key!r}")
        x = _read_array(npz, x_key, path)
        y = _read_array(npz, y_key, path)
    x = _check_x(x, x_key, path)
    y = _check_y(y, y_key, x.shape[0], x_key, path)
    return x, y
