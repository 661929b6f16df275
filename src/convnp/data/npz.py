"""Load users' own image data sets from ``.npz`` files, without ever unpickling."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from convnp.errors import DataError, DataNotFoundError

__all__ = ["load_npz"]

#: The optional array of class names: ``classes[i]`` names the integer label ``i``.
CLASSES_KEY = "classes"

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
                "save a numeric array (class names: a str array) instead"
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
    """Validate labels; return them as int64 of shape ``(N,)``, or (string labels) as str of shape ``(N,)``."""
    if y.ndim != 1:
        raise DataError(f"{path}: {key} has shape {y.shape} but expected (N,), one class index per image")
    if y.dtype.kind == "S":
        y = _decoded(y, key, path)
    if y.dtype.kind not in "uiU":
        hint = " (cast with y.astype(np.int64))" if y.dtype.kind == "f" else ""
        raise DataError(f"{path}: {key} has dtype {y.dtype} but expected integer class indices or class "
                        f"names (strings){hint}")
    if len(y) != n_samples:
        raise DataError(
            f"{path}: inconsistent numbers of samples: {x_key} has {n_samples} images but {key} has {len(y)} labels"
        )
    if y.dtype.kind == "U":
        return y
    if y.size:
        low, high = int(y.min()), int(y.max())
        if low < 0:
            index = int(np.argmin(y))
            raise DataError(f"{path}: {key} must be >= 0 (class indices), found {low} at index {index}")
        if high > np.iinfo(np.int64).max:
            raise DataError(f"{path}: {key} holds {high}, too large for an int64 class index")
    return y.astype(np.int64)


def _decoded(names: np.ndarray, key: str, path: Path) -> np.ndarray:
    """A bytes array ``(N,)`` (dtype ``S``) as str, read as UTF-8."""
    try:
        return np.char.decode(names, "utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: {key} holds bytes that are not UTF-8 text ({exc.reason}); store str names") from exc


def _check_classes(names: np.ndarray, path: Path) -> list[str]:
    """Validate the ``classes`` array: 1-D, strings, each non-empty and named once; return them as a list."""
    key = CLASSES_KEY
    if names.ndim != 1 or names.size == 0:
        raise DataError(f"{path}: {key} has shape {names.shape} but expected (K,), one name per class")
    if names.dtype.kind == "S":
        names = _decoded(names, key, path)
    if names.dtype.kind != "U":
        raise DataError(f"{path}: {key} has dtype {names.dtype} but expected strings, one name per class (save "
                        "them with np.array(names), a str array)")
    result = [str(n) for n in names]
    if "" in result:
        raise DataError(f"{path}: {key} names class {result.index('')} with an empty string; name every class")
    repeated = sorted({n for n in result if result.count(n) > 1})
    if repeated:
        raise DataError(f"{path}: {key} names {repeated[0]!r} more than once; each class needs its own name")
    return result


def _encode(y: np.ndarray, key: str, classes: list[str] | None, path: Path) -> tuple[np.ndarray, list[str] | None]:
    """Labels ``(N,)`` as int64 indices into ``classes``: names are looked up (without ``classes``: the sorted
    names themselves become the classes), integers checked to have a name."""
    if y.dtype.kind == "U":
        if classes is None:
            classes = sorted(str(n) for n in np.unique(y))
        index = {name: i for i, name in enumerate(classes)}
        names, inverse = np.unique(y, return_inverse=True)  # (U,), (N,)
        unknown = [str(n) for n in names if str(n) not in index]
        if unknown:
            first = int(np.flatnonzero(y == unknown[0])[0])
            raise DataError(f"{path}: {key} holds the label {unknown[0]!r} (first at index {first}), which is not "
                            f"one of the {len(classes)} classes {_shown(classes)}")
        lookup = np.array([index[str(n)] for n in names], dtype=np.int64)  # (U,)
        return lookup[inverse.reshape(-1)], classes
    if classes is not None and y.size and int(y.max()) >= len(classes):
        first = int(np.flatnonzero(y >= len(classes))[0])
        raise DataError(f"{path}: {key} holds the label {int(y[first])} (index {first}), but only "
                        f"{len(classes)} classes are named (labels 0-{len(classes) - 1}: {_shown(classes)})")
    return y, classes


def _shown(classes: list[str], most: int = 10) -> str:
    """The class names for a message, the first ``most`` of them."""
    more = f", ... ({len(classes) - most} more)" if len(classes) > most else ""
    return "[" + ", ".join(repr(c) for c in classes[:most]) + more + "]"


def load_npz(path: str | os.PathLike, keys: tuple[str, str] | None = None, *, classes=None,
             return_classes: bool = False):
    """Load an image classification data set from an ``.npz`` file.

    The file must hold arrays ``x`` and ``y``; if it has no ``x``, the pair ``x_train`` and ``y_train`` is used
    instead (the layout of ``mnist.npz`` and Keras-style files). It is read with ``allow_pickle=False``: arrays of
    Python objects are refused, never unpickled (a NumPy str array, dtype ``<U..``, is no object array).

    Labels are integers or class names (strings). An optional array ``classes`` (strings, shape ``(K,)``) names
    the integers: ``classes[i]`` is the name of label ``i``. String labels become integers: their index in
    ``classes`` when the file (or the ``classes`` argument) has names, else their index in the sorted list of
    the distinct names (so ``["dog", "cat", "dog"]`` becomes ``[1, 0, 1]`` with classes ``["cat", "dog"]``).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file, e.g. written by ``np.savez(path, x=x, y=y)`` or ``np.savez(path, x=x, y=names)``.
    keys : (str, str), optional
        Read this pair of arrays instead, e.g. ``("x_test", "y_test")``.
    classes : list of str, optional
        Names to number the labels by instead of the file's ``classes`` (e.g. the training split's, for a test).
    return_classes : bool
        Also return the class names.

    Returns
    -------
    x : ndarray of shape ``(N, H, W, C)``
        The images in their stored dtype (integer or float); a stored ``(N, H, W)`` gets a channel axis of 1.
    y : ndarray of shape ``(N,)``, int64
        Class indices, ``>= 0``.
    classes : list of K str, or None
        Only with ``return_classes``: the class names, or None for integer labels without names.

    Raises
    ------
    DataNotFoundError
        If ``path`` does not exist.
    DataError
        If the file is not an ``.npz`` archive, lacks the arrays, or they fail the checks: ``x`` must be 3-D or
        4-D with no empty axis, of an integer or float dtype, all finite; ``y`` must be 1-D, one label per image,
        integers ``>= 0`` (each named, if there are names) or names (each among ``classes``, if given);
        ``classes`` must be 1-D strings, non-empty and distinct. The message names the file, the array, what was
        expected and what was found.

    Examples
    --------
    >>> x, y, classes = load_npz("shapes.npz", return_classes=True)  # doctest: +SKIP
    """
    path = Path(path)
    with _open_npz(path) as npz:
        x_key, y_key = _keys(set(npz.files), keys, path)
        x = _read_array(npz, x_key, path)
        y = _read_array(npz, y_key, path)
        if classes is None and CLASSES_KEY in npz.files:
            classes = _check_classes(_read_array(npz, CLASSES_KEY, path), path)
    x = _check_x(x, x_key, path)
    y = _check_y(y, y_key, x.shape[0], x_key, path)
    y, classes = _encode(y, y_key, None if classes is None else [str(c) for c in classes], path)
    return (x, y, classes) if return_classes else (x, y)


def _keys(names: set, keys: tuple[str, str] | None, path: Path) -> tuple[str, str]:
    """The ``(x, y)`` pair of array names to read: ``keys``, else the first of :data:`_KEY_PAIRS` present."""
    for x_key, y_key in (keys,) if keys else _KEY_PAIRS:
        if x_key in names:
            break
    else:
        found = ", ".join(sorted(names)) or "no arrays"
        wanted = f"{keys[0]!r} and {keys[1]!r}" if keys else "'x' and 'y' (or 'x_train' and 'y_train')"
        raise DataError(f"{path}: expected arrays {wanted}, found {found}")
    if y_key not in names:
        raise DataError(f"{path}: has array {x_key!r} but no {y_key!r}; expected the labels in {y_key!r}")
    return x_key, y_key
