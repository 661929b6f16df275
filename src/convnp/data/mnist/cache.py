"""The MNIST cache: one uint8 ``mnist.npz``, where it lives, read with ``allow_pickle=False``, written atomically.

Whatever a download served is cached, so later calls read one local file instead of the network.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from convnp.data.mnist.published import KEYS, check_mnist
from convnp.data.npz import _open_npz, _read_array
from convnp.errors import DataError, DataNotFoundError

__all__ = ["CACHE_FILENAME", "mnist_cache_dir", "read_cache", "write_cache"]

logger = logging.getLogger("convnp.data")

CACHE_FILENAME = "mnist.npz"


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


def read_cache(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of the cache file ``path``, checked.

    Raises
    ------
    DataNotFoundError
        If there is no such file.
    DataError
        If it is not an ``.npz``, lacks an array, holds objects, or an array fails :func:`check_mnist`.
    """
    if not path.exists():
        raise DataNotFoundError(f"no file {path}")
    with _open_npz(path) as npz:
        missing = [key for key in KEYS if key not in npz.files]
        if missing:
            raise DataError(f"{path}: lacks array(s) {', '.join(missing)}; it holds {', '.join(npz.files)}")
        arrays = {key: _read_array(npz, key, path) for key in KEYS}
    return check_mnist(arrays, {key: f"{path}[{key}]" for key in KEYS})


def write_cache(path: Path, arrays: Mapping[str, np.ndarray]) -> bool:
    """Write the cache atomically; on failure log a warning and return False (the data is still good to use)."""
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
